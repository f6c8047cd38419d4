/*
 * update.h - the update: bring the index up to date with the archive.
 * index_update (index.c, the top of index/) runs scan_update (scan.c: walk,
 * parse, write "files"), which ends with tree_build (tree.c: rewrite the
 * tree DBs from "files" and "keys" in the same write transaction, I4), or
 * for a live batch tree_update (the same, in place: I11).
 * Built on the store (store.h); nothing below includes this header.
 *
 * Errors: 0 or negative errno / DFS_* (error.h).
 * Threading: the thread that called index_open, before the mount (I5).
 */
#ifndef DICOMFS_UPDATE_H
#define DICOMFS_UPDATE_H
#include "store.h"

/* A growing list of node ids (malloc()ed v, n used, cap allocated). */
struct id_list {
	uint64_t *v;
	size_t n, cap;
};

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
	/* live, out: the tree was updated in place (tree_update, I11) and
	 * these directories' listings are all that may differ (ids, sorted,
	 * unique; the caller frees v); tree_full: rebuilt whole instead */
	struct id_list touched;
	int tree_full;
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
/* tree_build for an update that no reader can see before it ends (a mount's
 * own, never a live one: I4): each tree DB is committed when written, and
 * a new write transaction begun (*txnp; NULL after a failed commit), so
 * the dirty pages of one DB are held at a time. The tree stays invalid
 * (meta tree_valid 0, set by the caller) until the caller's last commit. */
int tree_build_split(struct index *ix, MDB_txn **txnp, uint64_t *next_id);

/* A source path an update re-parsed or removed, with its record before
 * when that was OK (else NULL); its record after is in "files" (none:
 * removed). */
struct tree_change {
	const char *rel;
	size_t rl;
	const void *old;
	size_t oldlen;
};

/* The changes of an update, and how many of the paths had a record
 * before that was skipped / failed (load()'s counts, status.json). */
struct tree_changes {
	const struct tree_change *v;
	size_t n;
	uint64_t old_skipped, old_errors;
};

/*
 * Bring the tree in txn from the state of the records before the changes
 * ch to the state after them (in "files" now), rewriting only what
 * the patients and studies of those records show (I11); the result is
 * what tree_build gives for the same records. The directories whose
 * listings were rewritten or removed are added to touched (sorted,
 * unique); *full is set when the tree was rebuilt whole instead (the
 * environment's DICOMFS_TREE_FULL=1, a benchmark and test knob).
 */
int tree_update(struct index *ix, MDB_txn *txn, uint64_t *next_id,
		const struct tree_changes *ch, struct id_list *touched, int *full);

#endif
