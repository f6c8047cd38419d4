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

/* Walk and parse what changed, then rebuild the tree if anything did;
 * fills ix->stats; msg gets one line on failure. */
int scan_update(struct index *ix, char *msg, size_t msglen);
/* Rebuild nodes/names/dirents from the OK records in txn (the caller's
 * write transaction); *next_id: the next free node id, advanced for new
 * directory keys. */
int tree_build(struct index *ix, MDB_txn *txn, uint64_t *next_id);

#endif
