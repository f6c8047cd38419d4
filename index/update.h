/*
 * update.h - the update: bring the index up to date with the archive.
 * index_update (index.c, the top of index/) runs scan_update (scan.c: walk,
 * parse, write "files"), which ends with tree_build (tree.c: rewrite the
 * tree DBs from "files" and "keys" in the same write transaction, I4).
 * Built on the store (store.h); nothing below includes this header.
 *
 * Errors: 0 or negative errno / DFS_* (error.h).
 * Threading: the thread that called index_open, before the mount (I5).
 */
#ifndef DICOMFS_UPDATE_H
#define DICOMFS_UPDATE_H
#include "store.h"

/*
 * What an update looks at. NULL for scan_update: the whole archive, before
 * the mount. A live update (live.c, I9): only the paths in roots (none
 * at or below another; "" is everything), in one write transaction.
 */
struct worker_pool;
struct scan_scope {
	const char *const *roots;
	size_t nroots;
	int live;
	struct worker_pool **pool;   /* live: the parser pool kept between
				      * batches (made on first use) */
	/* live: a file too young to parse (LIVE_STABLE_MS): queue it again */
	void (*defer)(void *ctx, const char *rel, size_t len);
	void *ctx;
	/* out: instances re-parsed in place (ids; malloc()ed, the caller
	 * frees), anything changed, feed lines written */
	uint64_t *updated;
	size_t nupdated, cupdated;
	int changed;
	uint64_t feed_lines;
	size_t parsed, removed;      /* a live batch's (status.json keeps the
				      * mount's update's phases) */
	double parse_seconds, tree_seconds, tree_cpu_seconds, commit_seconds;
};

/* The parser processes of an update (worker.h): at most max children;
 * NULL when parsing runs in-process (no executable, DICOMFS_INPROCESS). */
struct worker_pool *scan_pool_new(struct index *ix, int max);
/* the default number of parsers (-o scan_threads unset) */
int scan_parsers(void);

/* Walk and parse what changed, then rebuild the tree if anything did and
 * write the feed (I10); fills ix->stats; msg gets one line on failure. */
int scan_update(struct index *ix, struct scan_scope *sc, char *msg, size_t msglen);
/* Rebuild nodes/names/dirents from the OK records in txn (the caller's
 * write transaction); *next_id: the next free node id, advanced for new
 * directory keys. */
int tree_build(struct index *ix, MDB_txn *txn, uint64_t *next_id);

#endif
