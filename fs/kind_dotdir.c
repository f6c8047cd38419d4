/*
 * kind_dotdir.c - .dicomfs/status.json and .dicomfs/errors.tsv.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "error.h"
#include "log.h"

/* ---- generated text: status.json, errors.tsv ---- */

static int text_make(struct dfs *fs, unsigned kind, char **buf, size_t *len)
{
	return kind == KIND_STATUS ? index_status_json(fs->ix, buf, len)
				   : index_errors_tsv(fs->ix, buf, len);
}

static int text_getattr_kind(struct dfs *fs, const struct node_view *nv,
			     struct stat *st, unsigned kind)
{
	char *buf;
	size_t len;
	int rc = text_make(fs, kind, &buf, &len);
	if (rc)
		return rc;
	free(buf);
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_uid = nv->rec->uid;
	st->st_gid = nv->rec->gid;
	st->st_size = (off_t)len;
	st->st_blocks = (st->st_size + 511) / 512;
	stat_times(st, nv->rec->mtime_ns);
	return 0;
}

static int status_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
			  struct stat *st)
{
	return id == ID_DOTDIR ? text_getattr_kind(fs, nv, st, KIND_STATUS) : -ENOENT;
}

static int errors_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
			  struct stat *st)
{
	return id == ID_DOTDIR ? text_getattr_kind(fs, nv, st, KIND_ERRORS) : -ENOENT;
}

static int text_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		     struct dfs_file *f)
{
	(void)id;
	(void)nv;
	return text_make(fs, f->kind, &f->buf, &f->len);
}

const struct kind_ops kind_status = {
	.name = "status.json",
	.getattr = status_getattr,
	.open = text_open,
	.read = kind_buf_read,
	.release = kind_buf_release,
	.direct_io = 1,
	.volatile_attr = 1,
};

const struct kind_ops kind_errors = {
	.name = "errors.tsv",
	.getattr = errors_getattr,
	.open = text_open,
	.read = kind_buf_read,
	.release = kind_buf_release,
	.direct_io = 1,
	.volatile_attr = 1,
};

