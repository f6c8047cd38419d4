/*
 * kind_dotdir.c - .dicomfs/status.json and .dicomfs/errors.tsv.
 */
#include <errno.h>
#include <stdlib.h>

#include "fs.h"

/* ---- generated text: status.json, errors.tsv ---- */

static int text_make(struct dfs *fs, unsigned kind, char **buf, size_t *len)
{
	return kind == KIND_STATUS ? index_status_json(fs->ix, buf, len)
				   : index_errors_tsv(fs->ix, buf, len);
}

static int text_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
			struct stat *st, unsigned kind)
{
	char *buf;
	size_t len;
	if (id != ID_DOTDIR)
		return -ENOENT;
	int rc = text_make(fs, kind, &buf, &len);
	if (rc)
		return rc;
	free(buf);
	stat_file(st, nv, 0444, len);
	if (kind == KIND_ERRORS) {
		/* names protected sources: the mount owner's (access.h A2) */
		st->st_mode = S_IFREG | 0400;
		st->st_uid = fs->uid;
		st->st_gid = fs->gid;
	}
	return 0;
}

static int text_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		     struct dfs_file *f)
{
	(void)id;
	(void)nv;
	return text_make(fs, f->kind, &f->buf, &f->len);
}

/* a status file: regenerated on every open, never cached by the kernel */
#define TEXT_KIND(var, nm, kind)                                               \
	static int var##_getattr(struct dfs *fs, uint64_t id,                  \
				 const struct node_view *nv, struct stat *st)  \
	{                                                                      \
		return text_getattr(fs, id, nv, st, kind);                     \
	}                                                                      \
	const struct kind_ops var = {                                          \
		.name = nm,                                                    \
		.getattr = var##_getattr,                                      \
		.open = text_open,                                             \
		.read = kind_buf_read,                                         \
		.release = kind_buf_release,                                   \
		.direct_io = 1,                                                \
		.volatile_attr = 1,                                            \
	};
TEXT_KIND(kind_status, "status.json", KIND_STATUS)
TEXT_KIND(kind_errors, "errors.tsv", KIND_ERRORS)
