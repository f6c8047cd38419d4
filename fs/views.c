/*
 * views.c - the FUSE side of the views whose nodes are not in the index
 * (fs.h: struct view_fs_ops), one line per view in the registry below.
 * The index side of every view (its name, id and build) is index/view.h.
 */
#include <stddef.h>

#include "fs.h"


/* query/: query directories, manifests and symlinks (view_query.c) */
static const struct view_fs_ops query_fs = {
	.name = "query",
	.kinds = KBIT(KIND_QLINK_STUDY) | KBIT(KIND_QLINK_SERIES) |
		 KBIT(KIND_QLINK_INSTANCE) | KBIT(KIND_QMANIFEST_CSV) |
		 KBIT(KIND_QMANIFEST_JSONL) | KBIT(KIND_QDIR),
	.dir_kinds = KBIT(KIND_QDIR),
	.stat = dfs_query_stat,
	.lookup = dfs_query_lookup,
	.readdir = dfs_query_readdir,
	.readlink = dfs_query_readlink,
	.forget = dfs_query_forget,
};

/* .dicomfs/changes/ and changes/since/<seq>.jsonl (kind_changes.c) */
static const struct view_fs_ops changes_fs = {
	.name = ".dicomfs",
	.kinds = KBIT(KIND_CHANGES_DIR) | KBIT(KIND_CHANGES_SINCE),
	.dir_kinds = KBIT(KIND_CHANGES_DIR),
	.stat = dfs_changes_stat,
	.lookup = dfs_changes_lookup,
	.readdir = dfs_changes_readdir,
};

static const struct view_fs_ops *const registry[] = {
	&query_fs,
	&changes_fs,
	NULL,
};

const struct view_fs_ops *dfs_view_of(unsigned kind)
{
	if (kind >= KIND_MAX)
		return NULL;
	for (size_t i = 0; registry[i]; i++)
		if (registry[i]->kinds & KBIT(kind))
			return registry[i];
	return NULL;
}
