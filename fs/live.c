/*
 * live.c - the FUSE side of a live archive (index.h I9): after each batch
 * the index's live thread commits, this module tells the kernel and the
 * mount's caches what changed, so `ls` and `stat` show it at once (entries
 * and attributes otherwise live for fs->timeout, a day).
 *
 * Design notes
 * - Names: every name that differs between the old and the new tree
 *   (index_live_ops.entry, from a merge of the two "names" DBs, limited
 *   to the directories an update in place rewrote, index.h I11) is
 *   invalidated in its directory; a name that went away is
 *   fuse_lowlevel_notify_delete()d (the kernel also drops its dentry from
 *   any cwd), others notify_inval_entry() (new names: the negative entry
 *   cached by ll_lookup goes).
 * - Inodes: the directories holding those names, every directory above
 *   them (nlink, mtime, their level files and volumes, which aggregate
 *   what is below) and every kind of an instance re-indexed in place (same
 *   path, same inodes, new bytes) get notify_inval_inode(): attributes and
 *   page cache. Unchanged instances keep their inodes and cached pages.
 * - Caches of generated content (level files, volume plans, shared open
 *   content, decoded pixels of changed instances) forget the old
 *   generation; the query/ catalog becomes stale (catalog.h C7).
 * - All of it runs on the live thread, outside any FUSE request (a notify
 *   from inside a request handler could deadlock the kernel). Errors of
 *   notify (-ENOENT: the kernel does not know that inode) are ignored.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "access.h"
#include "catalog.h"
#include "shared_buf.h"
#include "log.h"

/* fs->live: the directories touched by the batch being applied */
struct dfs_live {
	uint64_t *dirs;
	size_t n, cap;
	uint64_t *seen;      /* directories invalidated in this batch */
	size_t nseen, cseen;
};

static int push(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		uint64_t *p = realloc(*v, c * sizeof(*p));
		if (!p)
			return -ENOMEM;
		*v = p;
		*cap = c;
	}
	(*v)[(*n)++] = x;
	return 0;
}

static void live_entry(void *ctx, uint64_t parent_id, const char *name, size_t nl,
		       uint64_t old_ino, uint64_t new_ino)
{
	struct dfs *fs = ctx;
	uint64_t pino = ino_make(parent_id, KIND_DIR);
	if (old_ino && !new_ino)
		fuse_lowlevel_notify_delete(fs->se, pino, old_ino, name, nl);
	else
		fuse_lowlevel_notify_inval_entry(fs->se, pino, name, nl);
	push(&fs->live->dirs, &fs->live->n, &fs->live->cap, parent_id);
}

/* the kinds that carry a directory's id and aggregate what is below it */
static const unsigned dir_kinds[] = {
	KIND_DIR, KIND_SERIES_JSON, KIND_STUDY_JSON, KIND_PATIENT_JSON,
	KIND_STUDY_FHIR, KIND_PATIENT_FHIR, KIND_VOLUME_NII, KIND_VOLUME_NPY,
};
static const unsigned inst_kinds[] = { KIND_DCM, KIND_JSON, KIND_NPY, KIND_PNG, KIND_SOURCE };

static int seen_before(struct dfs_live *L, uint64_t id)
{
	for (size_t i = 0; i < L->nseen; i++)
		if (L->seen[i] == id)
			return 1;
	push(&L->seen, &L->nseen, &L->cseen, id);
	return 0;
}

/* directory id and every directory above it, in the new tree */
static void inval_up(struct dfs *fs, uint64_t id)
{
	for (int depth = 0; depth < 16; depth++) {
		struct node_view nv;
		if (seen_before(fs->live, id))
			return;
		for (size_t k = 0; k < sizeof(dir_kinds) / sizeof(dir_kinds[0]); k++)
			fuse_lowlevel_notify_inval_inode(fs->se, ino_make(id, dir_kinds[k]), 0, 0);
		if (id == ID_ROOT || index_node(fs->ix, id, &nv))
			return;   /* the root, or gone (its parent lists it) */
		id = nv.rec->parent;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void live_applied(void *ctx, const struct index_applied *a)
{
	struct dfs *fs = ctx;
	struct dfs_live *L = fs->live;
	/* first the caches (a request right after an invalidation must not
	 * find the old content there), then the kernel */
	dfs_level_cache_drop(fs);
	dfs_volume_drop(fs);
	shared_bufs_retire(fs->shared);
	for (size_t i = 0; i < a->nupdated; i++)
		dfs_pixels_forget(fs, a->updated[i]);
	catalog_invalidate(fs);
	/* the archive's files or permissions changed: the access model
	 * checks uniformity again (access.h A7) */
	dfs_access_changed(fs);
	for (size_t i = 0; i < a->nupdated; i++) {
		uint64_t id = a->updated[i];
		struct node_view nv;
		for (size_t k = 0; k < sizeof(inst_kinds) / sizeof(inst_kinds[0]); k++)
			fuse_lowlevel_notify_inval_inode(fs->se, ino_make(id, inst_kinds[k]), 0, 0);
		if (index_node(fs->ix, id, &nv) == 0)
			inval_up(fs, nv.rec->parent);
	}
	qsort(L->dirs, L->n, sizeof(*L->dirs), cmp_u64);
	for (size_t i = 0; i < L->n; i++)
		if (!i || L->dirs[i] != L->dirs[i - 1])
			inval_up(fs, L->dirs[i]);
	L->n = 0;
	L->nseen = 0;
	dfs_log("live: batch %llu: %zu file(s) parsed, %zu removed, %llu feed line(s), %.3f s (parse %.3f, tree %.3f (CPU %.3f), commit %.3f)",
		(unsigned long long)a->generation, a->parsed, a->removed,
		(unsigned long long)a->feed_lines, a->seconds, a->parse_seconds,
		a->tree_seconds, a->tree_cpu_seconds, a->commit_seconds);
}

/* the map must grow (index/store.h S3): let go of every snapshot */
static void live_release(void *ctx)
{
	struct dfs *fs = ctx;
	dfs_query_release(fs);
	catalog_release(fs);
}

int dfs_live_start(struct dfs *fs, int rescan_s, char *msg, size_t msglen)
{
	fs->live = calloc(1, sizeof(*fs->live));
	if (!fs->live)
		return -ENOMEM;
	struct index_live_ops ops = { live_entry, live_applied, fs, live_release };
	int rc = index_live_start(fs->ix, rescan_s, &ops, msg, msglen);
	if (rc) {
		free(fs->live);
		fs->live = NULL;
	}
	return rc;
}

void dfs_live_stop(struct dfs *fs)
{
	if (!fs->live)
		return;
	index_live_stop(fs->ix);
	free(fs->live->dirs);
	free(fs->live->seen);
	free(fs->live);
	fs->live = NULL;
}
