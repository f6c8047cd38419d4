/*
 * kind_changes.c - the change feed (index.h I10) as files:
 *   .dicomfs/changes.jsonl           every line kept, growing (tail -f)
 *   .dicomfs/changes/since/<N>.jsonl the lines after sequence number N,
 *                                    growing too (resume after a restart)
 * Both read the "changes" DB at each read in the request's snapshot (I6):
 * a line keeps its byte offset for ever, so a reader that holds the file
 * open sees new lines appended, never a line moved. Sizes come from each
 * getattr (volatile_attr, direct_io: no kernel cache).
 * since/ lists nothing: its files are found by name (lookup only).
 * Who may read them: the mount owner and root (mode 0400/0500, as
 * errors.tsv, access.h A2: the lines carry the UIDs of every instance).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"

/* the feed's stream offset where file id of kind k starts */
static int feed_base(struct dfs *fs, unsigned k, uint64_t id, uint64_t *base)
{
	*base = 0;
	return k == KIND_CHANGES_SINCE ? index_feed_offset(fs->ix, id, base) : 0;
}

static void owner_stat(struct dfs *fs, struct stat *st, mode_t mode, uint64_t size)
{
	struct node_view nv;
	memset(st, 0, sizeof(*st));
	st->st_mode = mode;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = (off_t)size;
	st->st_blocks = (st->st_size + 511) / 512;
	if (index_node(fs->ix, ID_DOTDIR, &nv) == 0)
		stat_times(st, nv.rec->mtime_ns);
}

static int feed_size(struct dfs *fs, unsigned k, uint64_t id, uint64_t *size)
{
	struct index_feed f;
	uint64_t base;
	int rc = index_feed_info(fs->ix, &f);
	if (!rc)
		rc = feed_base(fs, k, id, &base);
	if (!rc)
		*size = f.end > base ? f.end - base : 0;
	return rc;
}

static int changes_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
			   struct stat *st)
{
	uint64_t size;
	(void)nv;
	int rc = feed_size(fs, KIND_CHANGES, id, &size);
	if (!rc)
		owner_stat(fs, st, S_IFREG | 0400, size);
	return rc;
}

static int changes_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
			struct dfs_file *f)
{
	(void)nv;
	uint64_t *base = malloc(sizeof(*base));
	if (!base)
		return -ENOMEM;
	int rc = feed_base(fs, f->kind, id, base);
	if (rc) {
		free(base);
		return rc;
	}
	f->priv = base;
	return 0;
}

static int changes_read(struct dfs *fs, struct dfs_file *f, fuse_req_t req, size_t size,
			off_t off)
{
	const uint64_t *base = f->priv;
	size_t got = 0;
	if (off < 0)
		return -EINVAL;
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return -ENOMEM;
	int rc = index_feed_read(fs->ix, *base + (uint64_t)off, buf, size, &got);
	if (!rc)
		fuse_reply_buf(req, got ? buf : NULL, got);
	free(buf);
	return rc;
}

static void changes_release(struct dfs_file *f)
{
	free(f->priv);
	f->priv = NULL;
}

const struct kind_ops kind_changes = {
	.name = "changes.jsonl",
	.getattr = changes_getattr,
	.open = changes_open,
	.read = changes_read,
	.release = changes_release,
	.direct_io = 1,
	.volatile_attr = 1,
};

/* changes/ and since/: served by the view hooks below (dfs_stat asks them) */
const struct kind_ops kind_changes_dir = {
	.name = "changes/",
	.getattr = changes_getattr,
};

/* ---- the view side of changes/ and changes/since/ (fs.h view_fs_ops) ---- */

int dfs_changes_stat(struct dfs *fs, struct dfs_caller *c, uint64_t ino, struct stat *st)
{
	(void)c;   /* the owner's only (mode 0400 / 0500, access.c) */
	uint64_t size;
	int rc = 0;
	switch (ino_kind(ino)) {
	case KIND_CHANGES_DIR:
		if (ino_id(ino) != ID_CHANGES && ino_id(ino) != ID_CHANGES_SINCE)
			return -ENOENT;
		owner_stat(fs, st, S_IFDIR | 0500, 4096);
		st->st_nlink = ino_id(ino) == ID_CHANGES ? 3 : 2;
		break;
	case KIND_CHANGES_SINCE:
		rc = feed_size(fs, KIND_CHANGES_SINCE, ino_id(ino), &size);
		if (!rc)
			owner_stat(fs, st, S_IFREG | 0400, size);
		break;
	default:
		return -ENOENT;
	}
	st->st_ino = ino;
	return rc;
}

int dfs_changes_lookup(struct dfs *fs, struct dfs_caller *c, uint64_t parent,
		       const char *name, struct fuse_entry_param *e)
{
	uint64_t ino = 0;
	if (parent == ino_make(ID_CHANGES, KIND_CHANGES_DIR) && !strcmp(name, "since")) {
		ino = ino_make(ID_CHANGES_SINCE, KIND_CHANGES_DIR);
	} else if (parent == ino_make(ID_CHANGES_SINCE, KIND_CHANGES_DIR)) {
		/* <N>.jsonl, N decimal without leading zeros */
		char *end;
		errno = 0;
		unsigned long long n = strtoull(name, &end, 10);
		if (errno || end == name || strcmp(end, ".jsonl") || (name[0] == '0' && end != name + 1) ||
		    name[0] < '0' || name[0] > '9' || n >= (1ull << (64 - INO_KIND_BITS)))
			return -ENOENT;
		ino = ino_make(n, KIND_CHANGES_SINCE);
	} else {
		return -ENOENT;
	}
	memset(e, 0, sizeof(*e));
	int rc = dfs_changes_stat(fs, c, ino, &e->attr);
	if (rc)
		return rc;
	e->ino = ino;
	e->generation = 1;
	e->entry_timeout = fs->timeout;
	e->attr_timeout = 0;   /* the sizes grow */
	return 0;
}

int dfs_changes_readdir(struct dfs *fs, struct dfs_caller *c, fuse_req_t req, uint64_t ino,
			size_t size, off_t off, int plus)
{
	struct { const char *name; uint64_t ino; } ent[3] = {
		{ ".", ino },
		{ "..", ino_id(ino) == ID_CHANGES ? ino_make(ID_DOTDIR, KIND_DIR)
						   : ino_make(ID_CHANGES, KIND_CHANGES_DIR) },
		{ "since", ino_make(ID_CHANGES_SINCE, KIND_CHANGES_DIR) },
	};
	size_t n = ino_id(ino) == ID_CHANGES ? 3 : 2, len = 0;
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return -ENOMEM;
	for (size_t i = off < 0 ? 0 : (size_t)off; i < n; i++) {
		size_t need;
		if (plus) {
			struct fuse_entry_param e;
			memset(&e, 0, sizeof(e));
			int rc = ent[i].ino == ino_make(ID_DOTDIR, KIND_DIR) ?
				dfs_stat(fs, c, ent[i].ino, &e.attr) :
				dfs_changes_stat(fs, c, ent[i].ino, &e.attr);
			if (rc) {
				free(buf);
				return rc;
			}
			e.ino = ent[i].ino;
			e.generation = 1;
			e.entry_timeout = fs->timeout;
			need = fuse_add_direntry_plus(req, buf + len, size - len, ent[i].name, &e,
						      (off_t)i + 1);
		} else {
			struct stat st = { .st_ino = ent[i].ino, .st_mode = S_IFDIR };
			need = fuse_add_direntry(req, buf + len, size - len, ent[i].name, &st,
						 (off_t)i + 1);
		}
		if (need > size - len)
			break;
		len += need;
	}
	fuse_reply_buf(req, buf, len);
	free(buf);
	return 0;
}
