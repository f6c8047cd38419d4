/*
 * feed.h - the change feed written by an update (feed.c; I9, I10 in
 * index.h). The update notes every source path it re-parsed or removed
 * with the record it had (feed_note), then calls feed_before_tree in its
 * write transaction before tree_build (the old tree: old paths, which
 * studies and series existed) and feed_after_tree after it (new paths,
 * the lines written to the "changes" DB). Reading: index_feed_* (index.h).
 *
 * Errors: 0 or negative errno / DFS_*. Threading: the updating thread.
 */
#ifndef DICOMFS_FEED_H
#define DICOMFS_FEED_H
#include "store.h"

/* lines kept (I10): older ones are dropped, their bytes read as '\n' */
#define FEED_KEEP 100000

struct feed_item {
	char *rel;             /* source path */
	size_t rl;
	void *old, *new;       /* OK records before / after (copies), or NULL */
	size_t oldlen, newlen;
	char *oldpath, *newpath;   /* its node in patients/ before / after */
};

/* a study (series NULL) or a series touched by the update */
struct feed_lvl {
	char *study, *series, *patient;
	char *path_old, *path_new;   /* its directory in patients/ */
	int before, after;           /* it exists in the old / new tree */
};

struct feed_batch {
	struct feed_item *v;
	size_t n, cap;
	struct feed_lvl *lvl;
	size_t nlvl, clvl;
	struct strbuf line;
	uint64_t seq, end, first;    /* meta feed_seq, feed_end, feed_first */
	uint64_t lines;              /* written by this update */
};

/* Path rel is re-parsed or gone; old is its record before (any status;
 * only an OK one counts), copied. 0 or -ENOMEM. */
int feed_note(struct feed_batch *fb, const char *rel, size_t rl, const void *old,
	      size_t oldlen);
int feed_before_tree(struct index *ix, MDB_txn *txn, struct feed_batch *fb);
int feed_after_tree(struct index *ix, MDB_txn *txn, struct feed_batch *fb);
void feed_release(struct feed_batch *fb);

#endif
