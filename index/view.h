/*
 * view.h - the top-level trees of the mount (views) and the tree-builder
 * API they are built with.
 *
 * The root of the mount lists one directory per view: .dicomfs/, patients/,
 * query/, uids/. A view is one module in index/views/ (view_<name>.c) that
 * defines a `const struct view` and the names of the files it lists; the
 * registry (index/views.c) lists the views, one line each. tree.c builds the
 * root from the registry (a loop: no view is named there) and calls each
 * view's build function, which writes the view's entries through the
 * tree_* functions below. A view whose nodes are not in the index (query/'s
 * query directories) also has a FUSE side: fs/views.c (fs.h: struct
 * view_fs_ops), one line per such view.
 *
 * Adding a view: index/views/view_x.c (its struct view with a reserved id
 * from index.h and a build function) + its line at the end of the registry
 * in index/views.c (and its name in the extern there) + its Makefile.am
 * line; for a dynamic view also its struct view_fs_ops and one line in
 * fs/views.c.
 *
 * Design notes (invariants; code cites them as (V1) ...)
 * (V1) Ids. Every view owns one reserved id (1 .. ID_FIRST-1, index.h) for
 *      its top directory, inode ino_make(id, KIND_DIR). The ids and names of
 *      the registered views are unique (tree_build fails with -EINVAL
 *      otherwise), and an id, once given to a view, is never given to
 *      another: inode numbers are stable across remounts and versions.
 * (V2) The root. Node ID_ROOT (NODE_ROOT, mode 0555) lists the views in
 *      bytewise name order at positions 0..n-1, whatever the registry
 *      order; its nlink is 2 + n (every view is a directory), nchildren n.
 *      Each top directory is a NODE_TOP node, parent ID_ROOT, mode 0555, the
 *      mtime/owner of the whole archive (tree.c), nlink 2 + the number of
 *      subdirectories its build reports, nchildren the number of entries.
 * (V3) Build order. The views are built in registry order, each once per
 *      tree build, in the write transaction of the tree. Directory ids taken
 *      from the "keys" DB are allocated in that order, so on a fresh index a
 *      new view appended to the registry leaves the ids of the others as they
 *      were: append, do not insert.
 * (V4) Derived files. The names of the files a directory level lists (the
 *      level files such as "series.json", and the extensions of an
 *      instance's files) are the views' and live in the tables below, not in
 *      tree.c. A directory lists its level files first (positions 0..),
 *      then its children; a child whose name equals a level file's gets a
 *      suffix (tree.c). Only the kinds the mount serves (index_opts.kinds)
 *      are listed. The kind numbers themselves (enum dfs_kind, index.h) are
 *      part of the inode scheme and stay in index.h.
 *
 * Errors: 0 / a count, or negative errno / DFS_* (error.h).
 * Threading: build functions run inside tree_build (one thread, the
 * updater's); the tables are constant.
 */
#ifndef DICOMFS_VIEW_H
#define DICOMFS_VIEW_H
#include <stdint.h>
#include "index.h"

/* The state of one tree build (tree.c); a view sees only this handle. */
struct tree_builder;

/* What a view's build reports about its top directory (V2). */
struct view_top {
	uint64_t nentries;    /* entries listed in the top directory */
	uint32_t nsubdirs;    /* how many of them are directories */
};

struct view {
	const char *name;     /* at the root; unique (V1) */
	uint64_t id;          /* reserved id of the top directory (V1) */
	/* write the entries below the top directory (whose node tree.c
	 * writes); fill *top. 0 or negative error. */
	int (*build)(struct tree_builder *tb, const struct view *v,
		     struct view_top *top);
};

/* The registry (index/views.c): NULL-terminated, in build order (V3). */
extern const struct view *const view_registry[];
/* The number of views in a NULL-terminated list such as view_registry. */
size_t view_count(const struct view *const *views);

/* ---- the tree-builder API (tree.c) ---- */

/*
 * List name in directory dir at position *pos as inode (id, kind), then
 * advance *pos. A kind the mount does not serve (index_opts.kinds) is not
 * listed: 0 and *pos unchanged. name: NUL-terminated, at most NAME_MAX
 * bytes, unique in dir.
 */
int tree_add(struct tree_builder *tb, uint64_t dir, uint32_t *pos, uint64_t id,
	     unsigned kind, const char *name);
/*
 * The instance hierarchies, built by tree.c, as the build functions of the
 * views that show them: patients/<patient>/<study>/<series>/ below
 * ID_PATIENTS, and uids/<study>/<series>/ below ID_UIDS (view_patients.c,
 * view_uids.c). Every entry of their top directory is a directory.
 */
int tree_patients(struct tree_builder *tb, const struct view *v,
		  struct view_top *top);
int tree_uids(struct tree_builder *tb, const struct view *v,
	      struct view_top *top);
/* anon/<patient>/<study>/<series>/ below ID_ANON: the patients/ shape,
 * names from de-identified values (view_anon.c) */
int tree_anon(struct tree_builder *tb, const struct view *v,
	      struct view_top *top);
/* sources/<relative path> below ID_SOURCES: every file record under its
 * path (view_sources.c) */
int tree_sources(struct tree_builder *tb, const struct view *v,
		 struct view_top *top);


/* ---- the names of the derived files (V4) ---- */

/* A derived file of a directory: its kind and its name. Tables end with
 * { 0, NULL }. (An instance's files, <instance name>.<ext>: index.h
 * index_group_files, I3.) */
struct level_file {
	unsigned kind;
	const char *name;
};

/* patients/ (view_patients.c): patient, study and series directories */
extern const struct level_file view_patient_files[], view_study_files[],
	view_series_files[];
/* uids/ (view_uids.c): study and series directories */
extern const struct level_file view_uid_study_files[], view_uid_series_files[];

#endif
