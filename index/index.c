/*
 * index.c - environment life cycle, locking and the read side of the index.
 * The design notes are in index.h; scanning is in scan.c, the tree in tree.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "index_int.h"
#include "error.h"
#include "naming.h"
#include "record.h"
#include "volreport.h"

/* ---- small text buffers ---- */

int tb_add(struct textbuf *t, const char *s, size_t n)
{
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 256;
		while (cap < t->len + n + 1)
			cap *= 2;
		char *p = realloc(t->s, cap);
		if (!p)
			return -ENOMEM;
		t->s = p;
		t->cap = cap;
	}
	memcpy(t->s + t->len, s, n);
	t->len += n;
	t->s[t->len] = 0;
	return 0;
}

int tb_printf(struct textbuf *t, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	return tb_add(t, buf, (size_t)n);
}

static int tb_clean(struct textbuf *t, const char *s)
{
	for (; *s; s++) {
		char c = (*s == '\t' || *s == '\n' || *s == '\r') ? ' ' : *s;
		int rc = tb_add(t, &c, 1);
		if (rc)
			return rc;
	}
	return 0;
}

int tb_tsv(struct textbuf *t, const char *path, const char *reason)
{
	int rc = tb_clean(t, path);
	if (!rc)
		rc = tb_add(t, "\t", 1);
	if (!rc)
		rc = tb_clean(t, reason);
	if (!rc)
		rc = tb_add(t, "\n", 1);
	return rc;
}

void tb_release(struct textbuf *t)
{
	free(t->s);
	t->s = NULL;
	t->len = t->cap = 0;
}

/* ---- meta helpers ---- */

int dfs_from_mdb(int rc)
{
	switch (rc) {
	case 0: return 0;
	case MDB_NOTFOUND: return -ENOENT;
	case MDB_MAP_FULL: return -ENOSPC;
	case MDB_CORRUPTED: case MDB_INVALID: case MDB_VERSION_MISMATCH:
	case MDB_PAGE_NOTFOUND: case MDB_BAD_TXN:
		return DFS_EINDEX;
	default:
		return rc > 0 ? -EIO : rc;
	}
}

int meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *v)
{
	MDB_val k = { strlen(key), (void *)key }, d;
	int rc = mdb_get(txn, dbi, &k, &d);
	if (rc)
		return dfs_from_mdb(rc);
	if (d.mv_size != 8)
		return DFS_EINDEX;
	memcpy(v, d.mv_data, 8);
	return 0;
}

int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v)
{
	MDB_val k = { strlen(key), (void *)key }, d = { 8, &v };
	return dfs_from_mdb(mdb_put(txn, dbi, &k, &d, 0));
}

int meta_put_str(MDB_txn *txn, MDB_dbi dbi, const char *key, const char *v,
		 size_t len)
{
	MDB_val k = { strlen(key), (void *)key }, d = { len, (void *)v };
	return dfs_from_mdb(mdb_put(txn, dbi, &k, &d, 0));
}

/* ---- paths and locking ---- */

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(tmp, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static char *default_index_path(const char *archive_real)
{
	char base[PATH_MAX], name[NAME_BUF], *out = NULL;
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (geteuid() == 0 && !xdg)
		snprintf(base, sizeof(base), "/var/cache/dicomfs");
	else if (xdg && *xdg)
		snprintf(base, sizeof(base), "%s/dicomfs", xdg);
	else
		snprintf(base, sizeof(base), "%s/.cache/dicomfs", home ? home : "/tmp");
	const char *slash = strrchr(archive_real, '/');
	const char *bn = slash && slash[1] ? slash + 1 : "root";
	name_sanitize(bn, strlen(bn), name, 64);
	uint64_t h = name_fnv1a(archive_real, strlen(archive_real));
	if (asprintf(&out, "%s/%s-%016llx", base, name, (unsigned long long)h) < 0)
		return NULL;
	return out;
}

static int lock_take(struct index *ix, char *msg, size_t msglen)
{
	char lp[PATH_MAX];
	snprintf(lp, sizeof(lp), "%s/lock", ix->path);
	ix->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ix->lock_fd < 0) {
		snprintf(msg, msglen, "cannot create index lock '%s': %s", lp,
			 strerror(errno));
		return -errno;
	}
	if (flock(ix->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	if (errno != EWOULDBLOCK) {
		snprintf(msg, msglen, "cannot lock index '%s': %s", lp, strerror(errno));
		return -errno;
	}
	/* another mount serves this index: build a private one */
	close(ix->lock_fd);
	ix->lock_fd = -1;
	const char *tmp = getenv("TMPDIR");
	char *p = NULL;
	if (asprintf(&p, "%s/dicomfs-index-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
		return -ENOMEM;
	if (!mkdtemp(p)) {
		int e = errno;
		snprintf(msg, msglen, "index '%s' is in use and no private index could be made: %s",
			 ix->path, strerror(e));
		free(p);
		return -e;
	}
	dfs_log("index '%s' is in use by another mount; using a private index '%s' for this mount",
		ix->path, p);
	free(ix->path);
	ix->path = p;
	ix->private_index = 1;
	ix->stats.private_index = 1;
	return lock_take(ix, msg, msglen);
}

/* ---- environment ---- */

static void txn_destroy(void *p)
{
	mdb_txn_abort(p);
}

static int env_open(struct index *ix, int rdonly)
{
	MDB_txn *txn;
	int rc = mdb_env_create(&ix->env);
	if (rc)
		return dfs_from_mdb(rc);
	mdb_env_set_maxdbs(ix->env, 8);
	mdb_env_set_maxreaders(ix->env, 1024);
	mdb_env_set_mapsize(ix->env, (size_t)1 << 38);
	rc = mdb_env_open(ix->env, ix->path,
			  MDB_NOTLS | MDB_NOSYNC | (rdonly ? MDB_RDONLY : 0), 0600);
	if (rc)
		goto close_env;
	int dead;
	mdb_reader_check(ix->env, &dead);
	rc = mdb_txn_begin(ix->env, NULL, rdonly ? MDB_RDONLY : 0, &txn);
	if (rc)
		goto close_env;
	unsigned fl = rdonly ? 0 : MDB_CREATE;
	if ((rc = mdb_dbi_open(txn, "meta", fl, &ix->meta)) ||
	    (rc = mdb_dbi_open(txn, "files", fl, &ix->files)) ||
	    (rc = mdb_dbi_open(txn, "keys", fl, &ix->keys)) ||
	    (rc = mdb_dbi_open(txn, "nodes", fl, &ix->nodes)) ||
	    (rc = mdb_dbi_open(txn, "names", fl, &ix->names)) ||
	    (rc = mdb_dbi_open(txn, "dirents", fl, &ix->dirents))) {
		mdb_txn_abort(txn);
		goto close_env;
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		goto close_env;
	return 0;
close_env:
	mdb_env_close(ix->env);
	ix->env = NULL;
	return dfs_from_mdb(rc);
}

/* Check format and archive; wipe everything when they do not match. */
static int env_validate(struct index *ix)
{
	MDB_txn *txn;
	MDB_val k = { 6, "format" }, d;
	int rc = mdb_txn_begin(ix->env, NULL, 0, &txn);
	if (rc)
		return dfs_from_mdb(rc);
	int ok = 0;
	rc = mdb_get(txn, ix->meta, &k, &d);
	if (rc == 0 && d.mv_size == strlen(INDEX_FORMAT) &&
	    memcmp(d.mv_data, INDEX_FORMAT, d.mv_size) == 0) {
		MDB_val ka = { 7, "archive" };
		rc = mdb_get(txn, ix->meta, &ka, &d);
		ok = rc == 0 && d.mv_size == strlen(ix->archive_real) &&
		     memcmp(d.mv_data, ix->archive_real, d.mv_size) == 0;
	}
	if (!ok) {
		MDB_stat st;
		mdb_stat(txn, ix->files, &st);
		if (st.ms_entries)
			dfs_log("index '%s' was built by another version or for another archive; rebuilding",
				ix->path);
		MDB_dbi all[] = { ix->meta, ix->files, ix->keys, ix->nodes,
				  ix->names, ix->dirents };
		for (size_t i = 0; i < 6; i++) {
			rc = mdb_drop(txn, all[i], 0);
			if (rc)
				goto abort;
		}
		if ((rc = meta_put_str(txn, ix->meta, "format", INDEX_FORMAT,
				       strlen(INDEX_FORMAT))) ||
		    (rc = meta_put_str(txn, ix->meta, "archive", ix->archive_real,
				       strlen(ix->archive_real))) ||
		    (rc = meta_put_u64(txn, ix->meta, "next_id", ID_FIRST)) ||
		    (rc = meta_put_u64(txn, ix->meta, "tree_valid", 0)))
			goto abort_dfs;
		ix->stats.index_fresh = 1;
	}
	return dfs_from_mdb(mdb_txn_commit(txn));
abort:
	rc = dfs_from_mdb(rc);
abort_dfs:
	mdb_txn_abort(txn);
	return rc;
}

static void env_remove_files(const char *path)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/data.mdb", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s/lock.mdb", path);
	unlink(p);
}

int index_open(struct index **out, const struct index_opts *o, char *msg,
	       size_t msglen)
{
	struct index *ix = calloc(1, sizeof(*ix));
	int rc;
	struct stat st;

	if (!ix)
		return -ENOMEM;
	ix->opts = *o;
	ix->archive_fd = -1;
	ix->lock_fd = -1;
	pthread_mutex_init(&ix->err_lock, NULL);
	ix->archive_real = realpath(o->archive, NULL);
	if (!ix->archive_real || stat(ix->archive_real, &st) || !S_ISDIR(st.st_mode)) {
		rc = ix->archive_real ? -ENOTDIR : -errno;
		snprintf(msg, msglen, "archive '%s': %s", o->archive, strerror(-rc));
		goto free_ix;
	}
	ix->archive_fd = open(ix->archive_real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (ix->archive_fd < 0) {
		rc = -errno;
		snprintf(msg, msglen, "archive '%s': %s", o->archive, strerror(errno));
		goto free_ix;
	}
	struct source_opts so = { .follow_symlinks = o->follow_symlinks };
	rc = source_create(ix->archive_real, &so, &ix->src, msg, msglen);
	if (rc)
		goto free_ix;
	ix->path = o->path ? strdup(o->path) : default_index_path(ix->archive_real);
	if (!ix->path) {
		rc = -ENOMEM;
		goto free_ix;
	}
	rc = mkdir_p(ix->path);
	if (rc) {
		snprintf(msg, msglen, "index directory '%s': %s", ix->path, strerror(-rc));
		rc = rc == -ENOENT || rc == -EACCES ? -EROFS : rc;
		goto free_ix;
	}
	rc = lock_take(ix, msg, msglen);
	if (rc) {
		rc = -EROFS;
		goto free_ix;
	}
	rc = env_open(ix, 0);
	if (rc == DFS_EINDEX) {
		dfs_log("index '%s' is corrupt; rebuilding it", ix->path);
		env_remove_files(ix->path);
		rc = env_open(ix, 0);
	}
	if (!rc)
		rc = env_validate(ix);
	if (rc) {
		snprintf(msg, msglen, "index '%s': %s", ix->path, dfs_strerror(rc));
		rc = -EROFS;
		goto free_ix;
	}
	*out = ix;
	return 0;
free_ix:
	index_free(ix);
	return rc;
}

int index_update(struct index *ix, struct index_stats *st, char *msg,
		 size_t msglen)
{
	int rc = scan_update(ix, msg, msglen);
	if (!rc) {
		mdb_env_sync(ix->env, 1);
		/* downgrade: readers welcome, updaters elsewhere go private */
		flock(ix->lock_fd, LOCK_SH);
		ix->built_at = (int64_t)time(NULL);
	}
	if (st)
		*st = ix->stats;
	return rc;
}

/* A job run on its own thread once the environment is reopened for the
 * mount (fs/kind_query.c: loading its table before the first query);
 * joined before the environment closes. One index per process. */
static void (*warm_fn)(struct index *);
static pthread_t warm_thread;
static int warm_running;

void index_set_warm(void (*fn)(struct index *))
{
	warm_fn = fn;
}

static void *warm_main(void *arg)
{
	warm_fn(arg);
	return NULL;
}

void index_close_env(struct index *ix)
{
	if (warm_running) {
		pthread_join(warm_thread, NULL);
		warm_running = 0;
	}
	if (ix->txn_key_ok) {
		MDB_txn *t = pthread_getspecific(ix->txn_key);
		if (t)
			mdb_txn_abort(t);
		pthread_setspecific(ix->txn_key, NULL);
		pthread_key_delete(ix->txn_key);
		ix->txn_key_ok = 0;
	}
	if (ix->env)
		mdb_env_close(ix->env);
	ix->env = NULL;
}

int index_reopen(struct index *ix)
{
	int rc = env_open(ix, 1);
	if (rc)
		return rc;
	if (pthread_key_create(&ix->txn_key, txn_destroy))
		return -EAGAIN;
	ix->txn_key_ok = 1;
	if (warm_fn && !warm_running)
		warm_running = pthread_create(&warm_thread, NULL, warm_main, ix) == 0;
	return 0;
}

void index_free(struct index *ix)
{
	if (!ix)
		return;
	index_close_env(ix);
	if (ix->private_index && ix->path) {
		char p[PATH_MAX];
		env_remove_files(ix->path);
		snprintf(p, sizeof(p), "%s/lock", ix->path);
		unlink(p);
		rmdir(ix->path);
	}
	if (ix->lock_fd >= 0)
		close(ix->lock_fd);
	if (ix->archive_fd >= 0)
		close(ix->archive_fd);
	source_destroy(&ix->src);
	tb_release(&ix->walk_errors);
	tb_release(&ix->run_errors);
	pthread_mutex_destroy(&ix->err_lock);
	free(ix->archive_real);
	free(ix->path);
	free(ix->tags);
	free(ix->tags_note);
	free(ix);
}

const char *index_path(const struct index *ix) { return ix->path; }
void index_tags(const struct index *ix, const uint32_t **tags, size_t *n)
{
	*tags = ix->tags;
	*n = ix->ntags;
}
int index_archive_fd(const struct index *ix) { return ix->archive_fd; }
const struct source *index_source(const struct index *ix) { return &ix->src; }
const struct index_stats *index_stats(const struct index *ix) { return &ix->stats; }

/* ---- read side ---- */

static MDB_txn *rtxn(struct index *ix)
{
	MDB_txn *t = pthread_getspecific(ix->txn_key);
	if (t)
		return t;
	if (mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &t))
		return NULL;
	pthread_setspecific(ix->txn_key, t);
	return t;
}

int index_node(struct index *ix, uint64_t id, struct node_view *nv)
{
	unsigned char kb[8];
	MDB_val k = { 8, kb }, d;
	MDB_txn *t = rtxn(ix);
	if (!t)
		return -EIO;
	be64_put(kb, id);
	int rc = mdb_get(t, ix->nodes, &k, &d);
	if (rc)
		return dfs_from_mdb(rc);
	if (d.mv_size < sizeof(struct node_rec))
		return DFS_EINDEX;
	nv->rec = d.mv_data;
	if (sizeof(struct node_rec) + (uint64_t)nv->rec->name_len +
	    nv->rec->path_len > d.mv_size)
		return DFS_EINDEX;
	nv->name = (const char *)d.mv_data + sizeof(struct node_rec);
	nv->relpath = nv->name + nv->rec->name_len;
	return 0;
}

int index_lookup(struct index *ix, uint64_t parent_id, const char *name,
		 uint64_t *ino)
{
	unsigned char kb[8 + NAME_BUF];
	size_t nl = strlen(name);
	MDB_txn *t = rtxn(ix);
	if (!t)
		return -EIO;
	if (nl > NAME_MAX_BYTES)
		return -ENAMETOOLONG;
	be64_put(kb, parent_id);
	memcpy(kb + 8, name, nl);
	MDB_val k = { 8 + nl, kb }, d;
	int rc = mdb_get(t, ix->names, &k, &d);
	if (rc)
		return dfs_from_mdb(rc);
	if (d.mv_size != 8)
		return DFS_EINDEX;
	memcpy(ino, d.mv_data, 8);
	return 0;
}

int index_readdir(struct index *ix, uint64_t dir_id, uint64_t pos,
		  index_dirent_fn fn, void *ctx)
{
	unsigned char kb[12];
	MDB_cursor *c;
	MDB_txn *t = rtxn(ix);
	if (!t)
		return -EIO;
	if (pos > UINT32_MAX)
		return 0;
	be64_put(kb, dir_id);
	be32_put(kb + 8, (uint32_t)pos);
	MDB_val k = { 12, kb }, d;
	int rc = mdb_cursor_open(t, ix->dirents, &c);
	if (rc)
		return dfs_from_mdb(rc);
	rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	while (rc == 0) {
		if (k.mv_size != 12 || be64_get(k.mv_data) != dir_id)
			break;
		if (d.mv_size < 8) {
			rc = DFS_EINDEX;
			goto close_cursor;
		}
		uint64_t ino;
		memcpy(&ino, d.mv_data, 8);
		uint32_t p = be32_get((const unsigned char *)k.mv_data + 8);
		if (fn(ctx, ino, (const char *)d.mv_data + 8, d.mv_size - 8,
		       (uint64_t)p + 1))
			break;
		rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
	}
	rc = rc == MDB_NOTFOUND ? 0 : dfs_from_mdb(rc);
close_cursor:
	mdb_cursor_close(c);
	return rc;
}

int index_file_record(struct index *ix, const char *relpath, size_t len,
		      const void **val, size_t *vlen)
{
	MDB_txn *t = rtxn(ix);
	if (!t)
		return -EIO;
	MDB_val k = { len, (void *)relpath }, d;
	int rc = mdb_get(t, ix->files, &k, &d);
	if (rc)
		return dfs_from_mdb(rc);
	*val = d.mv_data;
	*vlen = d.mv_size;
	return 0;
}

int index_files_scan(struct index *ix, index_file_fn fn, void *ctx)
{
	MDB_cursor *c;
	MDB_txn *t = rtxn(ix);
	if (!t)
		return -EIO;
	MDB_val k, d;
	int rc = mdb_cursor_open(t, ix->files, &c);
	if (rc)
		return dfs_from_mdb(rc);
	rc = mdb_cursor_get(c, &k, &d, MDB_FIRST);
	while (rc == 0) {
		if (fn(ctx, k.mv_data, k.mv_size, d.mv_data, d.mv_size))
			break;
		rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
	}
	rc = rc == MDB_NOTFOUND || rc == 0 ? 0 : dfs_from_mdb(rc);
	mdb_cursor_close(c);
	return rc;
}

void index_report_error(struct index *ix, const char *relpath, const char *why)
{
	dfs_log("%s: %s", relpath, why);
	pthread_mutex_lock(&ix->err_lock);
	/* report each path once */
	size_t pl = strlen(relpath);
	int seen = 0;
	for (const char *p = ix->run_errors.s; p && *p;) {
		const char *nl = strchr(p, '\n');
		if ((size_t)(nl - p) > pl && memcmp(p, relpath, pl) == 0 && p[pl] == '\t') {
			seen = 1;
			break;
		}
		p = nl + 1;
	}
	if (!seen)
		tb_tsv(&ix->run_errors, relpath, why);
	pthread_mutex_unlock(&ix->err_lock);
}

static void json_str(struct textbuf *t, const char *s)
{
	tb_add(t, "\"", 1);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			tb_printf(t, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			tb_printf(t, "\\u%04x", (unsigned char)*s);
		else
			tb_add(t, s, 1);
	}
	tb_add(t, "\"", 1);
}

static uint64_t pixel_decodes;   /* debug counter: decodes started */

void index_count_decode(struct index *ix)
{
	(void)ix;
	__atomic_add_fetch(&pixel_decodes, 1, __ATOMIC_RELAXED);
}

int index_status_json(struct index *ix, char **buf, size_t *len)
{
	struct textbuf t = { 0 };
	const struct index_stats *s = &ix->stats;
	uint64_t run = 0;
	pthread_mutex_lock(&ix->err_lock);
	for (const char *p = ix->run_errors.s; p && *p; p++)
		run += *p == '\n';
	pthread_mutex_unlock(&ix->err_lock);
	tb_printf(&t, "{\n  \"version\": \"%s\",\n", PACKAGE_VERSION);
	tb_add(&t, "  \"archive\": ", 12);
	json_str(&t, ix->archive_real);
	tb_add(&t, ",\n  \"index_path\": ", 18);
	json_str(&t, ix->path);
	tb_printf(&t, ",\n  \"index_format\": \"%s\",\n  \"private_index\": %s,\n",
		  INDEX_FORMAT, s->private_index ? "true" : "false");
	tb_printf(&t,
		  "  \"files_seen\": %llu,\n  \"files_parsed\": %llu,\n"
		  "  \"files_removed\": %llu,\n  \"instances\": %llu,\n"
		  "  \"patients\": %llu,\n  \"studies\": %llu,\n  \"series\": %llu,\n"
		  "  \"skipped\": %llu,\n  \"errors\": %llu,\n  \"duplicates\": %llu,\n"
		  "  \"runtime_errors\": %llu,\n  \"tree_rebuilt\": %s,\n"
		  "  \"built_at\": %lld,\n  \"build_seconds\": %.3f,\n"
		  "  \"walk_seconds\": %.3f,\n  \"parse_seconds\": %.3f,\n"
		  "  \"tree_seconds\": %.3f,\n  \"tree_cpu_seconds\": %.3f,\n"
		  "  \"commit_seconds\": %.3f,\n"
		  "  \"files_per_second\": %.0f,\n",
		  (unsigned long long)s->files_seen, (unsigned long long)s->files_parsed,
		  (unsigned long long)s->files_removed, (unsigned long long)s->instances,
		  (unsigned long long)s->patients, (unsigned long long)s->studies,
		  (unsigned long long)s->series, (unsigned long long)s->skipped,
		  (unsigned long long)s->errors, (unsigned long long)s->duplicates,
		  (unsigned long long)run, s->tree_rebuilt ? "true" : "false",
		  (long long)ix->built_at, s->scan_seconds, s->walk_seconds,
		  s->parse_seconds, s->tree_seconds, s->tree_cpu_seconds, s->commit_seconds, s->files_per_second);
	tb_printf(&t, "  \"pixel_decodes\": %llu,\n",
		  (unsigned long long)__atomic_load_n(&pixel_decodes, __ATOMIC_RELAXED));
	/* the tags the index holds (query/ can match them), and whether this
	 * mount re-parsed everything because the set grew */
	tb_add(&t, "  \"indexed_tags\": [", 19);
	for (size_t i = 0; i < ix->ntags; i++)
		tb_printf(&t, "%s\"%08X\"", i ? ", " : "", ix->tags[i]);
	tb_printf(&t, "],\n  \"tags_reindexed\": %s,\n  \"tags_note\": ",
		  s->tags_reindexed ? "true" : "false");
	if (ix->tags_note)
		json_str(&t, ix->tags_note);
	else
		tb_add(&t, "null", 4);
	tb_add(&t, "\n}\n", 3);
	if (!t.s)
		return -ENOMEM;
	*buf = t.s;
	*len = t.len;
	return 0;
}

int index_errors_tsv(struct index *ix, char **buf, size_t *len)
{
	struct textbuf t = { 0 };
	MDB_cursor *c;
	MDB_val k, d;
	MDB_txn *txn = rtxn(ix);
	if (!txn)
		return -EIO;
	tb_add(&t, "path\treason\n", 12);
	tb_add(&t, ix->walk_errors.s ? ix->walk_errors.s : "", ix->walk_errors.len);
	int rc = mdb_cursor_open(txn, ix->files, &c);
	if (rc)
		goto out;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		struct rec_head h;
		char path[PATH_MAX];
		if (rec_head_get(d.mv_data, d.mv_size, &h) || h.status == REC_OK)
			continue;
		snprintf(path, sizeof(path), "%.*s", (int)k.mv_size, (char *)k.mv_data);
		char why[300];
		if (h.status == REC_SKIPPED && h.err == 0)
			snprintf(why, sizeof(why), "DICOMDIR (media directory; its files are indexed directly)");
		else
			snprintf(why, sizeof(why), "%s%s",
				 h.status == REC_SKIPPED ? "skipped: " : "error: ",
				 dfs_strerror(h.err));
		tb_tsv(&t, path, why);
	}
	mdb_cursor_close(c);
	MDB_val dk = { 4, "dups" };
	if (mdb_get(txn, ix->meta, &dk, &d) == 0)
		tb_add(&t, d.mv_data, d.mv_size);
	volreport_errors(ix, txn, &t);
	pthread_mutex_lock(&ix->err_lock);
	if (ix->run_errors.s)
		tb_add(&t, ix->run_errors.s, ix->run_errors.len);
	pthread_mutex_unlock(&ix->err_lock);
	rc = 0;
out:
	if (rc) {
		tb_release(&t);
		return dfs_from_mdb(rc);
	}
	*buf = t.s;
	*len = t.len;
	return 0;
}
