/* index_int.h - shared between index.c, scan.c and tree.c only. */
#ifndef DICOMFS_INDEX_INT_H
#define DICOMFS_INDEX_INT_H
#include <pthread.h>
#include <lmdb.h>
#include "index.h"
#include "source.h"

struct textbuf {
	char *s;
	size_t len, cap;
};
int tb_add(struct textbuf *t, const char *s, size_t n);
int tb_printf(struct textbuf *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void tb_release(struct textbuf *t);
/* one TSV line "path<TAB>reason\n" with tabs/newlines in either replaced */
int tb_tsv(struct textbuf *t, const char *path, const char *reason);

struct index {
	struct index_opts opts;
	char *archive_real;
	int archive_fd;
	struct source src;            /* where bytes come from (source.h) */
	char *path;
	int lock_fd;
	int private_index;
	MDB_env *env;
	MDB_dbi meta, files, keys, nodes, names, dirents;
	pthread_key_t txn_key;
	int txn_key_ok;
	struct index_stats stats;
	pthread_mutex_t err_lock;
	struct textbuf walk_errors;   /* this mount's walk problems (TSV) */
	struct textbuf run_errors;    /* problems found while mounted (TSV) */
	int64_t built_at;
	uint32_t *tags;               /* indexed tags, ascending (scan.c) */
	size_t ntags;
	char *tags_note;              /* what changed in the tag set, or NULL */
};

int scan_update(struct index *ix, char *msg, size_t msglen);
int tree_build(struct index *ix, MDB_txn *txn, uint64_t *next_id);

int meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *v);
int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v);
int meta_put_str(MDB_txn *txn, MDB_dbi dbi, const char *key, const char *v,
		 size_t len);

static inline void be64_put(unsigned char *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}
static inline void be32_put(unsigned char *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}
static inline uint64_t be64_get(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}
static inline uint32_t be32_get(const unsigned char *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 8 | p[i];
	return v;
}

int dfs_from_mdb(int rc);
#include "log.h"

#endif
