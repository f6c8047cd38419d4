/*
 * store.h - the floor of index/: the LMDB environment of one index, its
 * directory and lock, the meta DB, the per-thread read transaction and the
 * read API of index.h (index_node, index_lookup, index_readdir,
 * index_file_record, index_files_scan). The invariants it keeps are (I1)..
 * in index.h.
 *
 * Who includes it: the update (update.h: index.c, scan.c, tree.c), the
 * reports (report.c) and volreport.c; never fs/. store.c calls nothing
 * above it (the layers are drawn in index.h; tests/index_layers.sh checks
 * that the include and call graphs have no circle).
 *
 * Errors: 0 or negative errno / DFS_* (error.h); dfs_from_mdb maps LMDB's.
 * Threading: see the field groups of struct index.
 */
#ifndef DICOMFS_STORE_H
#define DICOMFS_STORE_H
#include <pthread.h>
#include <stdint.h>
#include <lmdb.h>

#include "index.h"
#include "log.h"
#include "strbuf.h"
#include "source.h"
#include "deid.h"

struct index {
	/* Set by index_open, read-only after it. */
	struct index_opts opts;
	char *archive_real;           /* realpath of the archive */
	int archive_fd;
	struct source src;            /* where bytes come from (source.h) */
	struct source_opts src_opts;  /* its options (the parser processes get
				       * them too); strings are the caller's or: */
	char *src_cache_dir;          /* the default cache_dir, owned */
	char *path;                   /* index directory (store_dir) */
	int serving_fd;               /* "serving", shared while the mount serves
				       * (index_serving, I5), or -1 */
	int lock_fd;                  /* "lock": exclusive while updating, shared
				       * while mounted (I5) */
	int private_index;            /* path is a private one: removed at exit */
	MDB_dbi meta, files, keys, nodes, names, dirents;
	MDB_dbi changes;              /* the change feed (feed.c, I9) */
	MDB_dbi aux;                  /* the tree's bookkeeping (tree.c, I11) */
	struct deid_key anon_key;     /* anon/'s key (view_anon.c) */

	/* Opened by index_open / index_reopen, closed by index_close_env (I8),
	 * on the main thread while no FUSE thread runs. */
	MDB_env *env;
	pthread_key_t txn_key;        /* each thread's read txn (I6) */
	int txn_key_ok;

	/* The map's size (S3): the reader gate. The two counters are atomic
	 * (seq_cst); map_lock and map_cond (CLOCK_MONOTONIC) only let readers
	 * sleep until a growth ends. */
	pthread_mutex_t map_lock;
	pthread_cond_t map_cond;
	unsigned map_readers;         /* active read txns and snapshots */
	int map_growing;              /* store_map_grow shuts readers out */

	/* Written by the update (one thread, before the mount) and, while
	 * mounted, by the live thread after each batch (live.c, I9): a
	 * reader of the counters (status.json, statfs) may see those of two
	 * adjacent batches mixed, each field whole (aligned 64-bit). tags,
	 * tags_note and walk_errors are the mount's update's only. */
	struct index_stats stats;
	int64_t built_at;
	uint32_t *tags;               /* indexed tags, ascending (scan.c) */
	size_t ntags;
	char *tags_note;              /* what changed in the tag set, or NULL */
	struct strbuf walk_errors;    /* this update's walk problems (TSV) */
	/* tree_build: "files" has no page written in the current write txn
	 * (scan.c commits the records first on a first build), so its records
	 * stay where they are in the map until the txn ends: read in place,
	 * not copied (issue 17) */
	int tree_recs_in_map;
	/* tree.c: the part of a first build in parts being built (I13), or
	 * NULL; the update's thread's only */
	struct tree_part *part;
	/* S4: the page cache warmed ahead of a first build's commits, or
	 * NULL; the update's thread's only */
	struct store_warm *warm;
	/* scan.c: files parsed whose records that early commit kept; an
	 * update retried for a full map (index.c) still counts them */
	uint64_t parsed_kept;
	/* index.h I12: commits not yet on disk, the "unsynced" marker present.
	 * The writer's only: the update before the mount, then the live
	 * thread (store_commit, store_sync). */
	int unsynced;

	/* Live updates (live.c): the live thread's state, set by
	 * index_live_start and freed by index_live_stop (main thread). */
	struct live *live;

	/* The reports (report.c), any thread while mounted. */
	pthread_mutex_t err_lock;
	struct strbuf run_errors;     /* problems found while mounted (TSV);
				       * guarded by err_lock */
	uint64_t pixel_decodes;       /* decodes started (atomic) */
	double progress_last;         /* the update's thread: last progress
				       * line, first item done (report.c R5) */
	double progress_t1;
	size_t progress_d1;
};

/* LMDB's return codes as ours: MDB_NOTFOUND -ENOENT, MDB_MAP_FULL -ENOSPC,
 * corruption DFS_EINDEX (I7), other positive codes -EIO. */
int dfs_from_mdb(int rc);

/*
 * The index directory, created when missing.
 * (S1) The index holds patient data: every directory of it that dicomfs
 *      trusts is a directory (or a symlink owned by this user to one)
 *      owned by the effective uid and not writable by group or others;
 *      anything else is refused with one line in msg (-EACCES), never
 *      used and never repaired. The trusted directories are the index
 *      directory itself and, for the default one, every component under
 *      the cache root (<cache>/dicomfs); missing ones are made 0700.
 * - in_use NULL: `given` (-o index=) when not NULL, else the default
 *   <cache>/dicomfs/<archive basename, sanitized>-<FNV-1a of archive_real,
 *   16 hex> where <cache> (the cache root) is $XDG_CACHE_HOME when set and
 *   not empty, /var/cache for root without XDG_CACHE_HOME, else
 *   $HOME/.cache, else (HOME unset or empty) the passwd home directory of
 *   the real uid + /.cache; with none of these the call fails (-ENOENT,
 *   msg asks for -o index=). Never a shared directory such as /tmp.
 * - in_use set (the index there serves another mount, I5): a new private
 *   directory $TMPDIR/dicomfs-index-XXXXXX (mkdtemp, 0700; /tmp without
 *   TMPDIR), removed by index_free.
 * Returns 0 with *out malloc()ed, or a negative errno with msg one line
 * (-ENOMEM: msg untouched). index_open turns any failure but -ENOMEM into
 * -EROFS (exit status 4).
 */
int store_dir(const char *given, const char *archive_real, const char *in_use,
	      char **out, char *msg, size_t msglen);

/*
 * The LMDB map (S3): address space reserved for the index, sized to it,
 * never the old fixed 256 GiB (which failed under `ulimit -v`).
 * - Opened at max(MAP_MIN 64 MiB, twice data.mdb), or $DICOMFS_INDEX_MAP_MIB
 *   MiB when set (tests start small to exercise growth).
 * - store_map_fit: after the walk, before any write transaction, the map
 *   is raised to the estimate for nfiles files (8 KiB each: records ~2-4
 *   KiB, the tree, and the copy-on-write pages of one rebuild).
 * - store_map_grow: a write transaction got MDB_MAP_FULL (-ENOSPC): the
 *   caller aborts it (and every read txn of its own thread), calls this,
 *   and retries. The map doubles (at least +64 MiB). Read txns of other
 *   threads pin the old mapping: they are counted (store_rtxn, snapshots)
 *   and growth waits for a moment when there is none (at most
 *   STORE_GROW_WAIT_MS, readers still welcome meanwhile); only during the
 *   remap itself do new ones wait (at most STORE_GATE_WAIT_MS, then
 *   -EIO).
 * - index_reopen (the mount): at least MAP_MIN beyond the data from the
 *   start (not with $DICOMFS_INDEX_MAP_MIB), since growth while mounted
 *   must wait for every snapshot: the live thread first asks the mount to
 *   let go of its long-lived ones (index_live_ops.release: the query
 *   catalog, fs/catalog.h C6, rebuilt by the next query), then grows. A
 *   snapshot still held after STORE_GROW_WAIT_MS fails the batch with a
 *   line saying to remount (the files are indexed then).
 * - When the address-space limit (RLIMIT_AS, ulimit -v) leaves no room,
 *   the map takes what it can and the message names RLIMIT_AS.
 */
#define MAP_MIN ((size_t)64 << 20)
#define MAP_PER_FILE ((size_t)8 << 10)
#define STORE_GROW_WAIT_MS 10000
#define STORE_GATE_WAIT_MS 2000
void store_map_fit(struct index *ix, size_t nfiles);
/* 0, or -ENOSPC / -EBUSY with msg one line (nothing changed). */
int store_map_grow(struct index *ix, char *msg, size_t msglen);

/* This thread's read transaction (I6), begun (or renewed) on first use
 * in a request, reset by index_request_end; NULL when it cannot be begun.
 * Only between index_reopen and index_close_env. */
MDB_txn *store_rtxn(struct index *ix);

/* meta DB values: u64 (native order, 8 bytes; DFS_EINDEX for another size)
 * and raw bytes. */
int meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *v);
int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v);
int meta_put_str(MDB_txn *txn, MDB_dbi dbi, const char *key, const char *v,
		 size_t len);

/* Big-endian keys: ids and positions sort numerically in LMDB's order. */
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

/*
 * I12 (index.h): store_commit is mdb_txn_commit for the index's writer,
 * which first marks the index unsynced (the "unsynced" file holding this
 * boot's id, synced with its directory: before any page of the commit can
 * reach the disk). Returns an LMDB code. store_sync: the writes on disk
 * (mdb_env_sync), then the marker removed; a no-op when nothing is
 * unsynced. Neither takes a lock: the writer's thread only.
 */
int store_commit(struct index *ix, MDB_txn *txn);
void store_sync(struct index *ix);

/*
 * (S4) The page cache ahead of the writer (issue 17). The first touch of a
 * fresh page costs 3-11 us on a VM whose host takes back free memory
 * (virtio-balloon free page reporting): a first build's commits write
 * about 1 KiB of new file pages an instance, which the writer would pay
 * for on the tree's last steps, single-threaded (20-30 ms at 20,000).
 * - store_warm_start: data.mdb is extended to `bytes` beyond the pages of
 *   the last commit (fallocate, which never shrinks a file nor touches its
 *   data: safe while the writer grows it, and over pages of the open write
 *   txn) and a thread of its own reads that range, 64 KiB at a time, while
 *   it is let go: the pages come to be in the page cache, zero and clean,
 *   and a commit later only copies into them. Reading changes nothing: a
 *   page the writer has written meanwhile is simply read. It starts
 *   paused.
 * - store_warm_go / store_warm_pause: any thread (the tree's helper says
 *   go when its core falls idle); the thread waits, paused, on a
 *   condition variable (no deadline: store_warm_end wakes it). It keeps
 *   ordinary priority on purpose: the writer may wait on a page it is
 *   reading (a folio lock), and a thread of lower priority could be
 *   starved by other load while holding one.
 * - store_warm_end: stops and joins the thread (after its current chunk),
 *   then gives back what LMDB does not use: data.mdb is cut to the end of
 *   its last page in use (mdb_env_info; pages beyond it are free by
 *   LMDB's own rule, and its last page never goes down). Only with no
 *   write transaction open (I5: the update is the only writer; LMDB's
 *   readers read no page beyond it). *ahead: bytes read ahead; *back:
 *   bytes cut; both 0 without a warm; either may be NULL.
 * The update's thread starts and ends it (ix->warm), one at a time. No
 * errors: a warm that cannot start (archive under WARM_MIN's 4 MiB of
 * pages, less than 4 x bytes free on the disk, no fallocate, no thread)
 * does nothing and the build runs as without it. DICOMFS_STORE_WARM=all
 * (tests) warms a small archive's build too, and store_warm_end then
 * lets the thread read its whole range before it joins (a test does not
 * depend on when the thread ran).
 */
struct store_warm;
#define STORE_WARM_PER_RECORD 1024
void store_warm_start(struct index *ix, size_t bytes);
void store_warm_go(struct store_warm *w);
void store_warm_pause(struct store_warm *w);
void store_warm_end(struct index *ix, size_t *ahead, size_t *back);

#endif
