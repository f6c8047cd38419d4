/*
 * kinds.c - the file kinds: .dcm originals and the .dicomfs status files.
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

static void stat_times(struct stat *st, int64_t ns)
{
	st->st_mtim.tv_sec = ns / 1000000000;
	st->st_mtim.tv_nsec = ns % 1000000000;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/* ---- directories ---- */

static int dir_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
		       struct stat *st)
{
	(void)fs;
	(void)id;
	if (nv->rec->type == NODE_INSTANCE)
		return -ENOENT;
	st->st_mode = S_IFDIR | (nv->rec->mode & 0555);
	st->st_nlink = nv->rec->nlink;
	st->st_uid = nv->rec->uid;
	st->st_gid = nv->rec->gid;
	st->st_size = 4096;
	st->st_blocks = 8;
	stat_times(st, nv->rec->mtime_ns);
	return 0;
}

static const struct kind_ops kind_dir = {
	.name = "directory",
	.getattr = dir_getattr,
};

/* ---- .dcm: the original bytes ---- */

static int dcm_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
		       struct stat *st)
{
	(void)fs;
	(void)id;
	if (nv->rec->type != NODE_INSTANCE)
		return -ENOENT;
	st->st_mode = S_IFREG | (nv->rec->mode & 0444);
	st->st_nlink = 1;
	st->st_uid = nv->rec->uid;
	st->st_gid = nv->rec->gid;
	st->st_size = (off_t)nv->rec->size;
	st->st_blocks = (st->st_size + 511) / 512;
	stat_times(st, nv->rec->mtime_ns);
	return 0;
}

static int dcm_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		    struct dfs_file *f)
{
	char rel[4096];
	struct stat st;
	(void)id;
	snprintf(rel, sizeof(rel), "%.*s", (int)nv->rec->path_len, nv->relpath);
	f->fd = openat(index_archive_fd(fs->ix), rel, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (f->fd < 0) {
		int e = errno;
		char why[128];
		snprintf(why, sizeof(why), "cannot open source: %s", strerror(e));
		index_report_error(fs->ix, rel, why);
		return e == ENOENT ? -ENOENT : -EIO;
	}
	if (fstat(f->fd, &st) || (uint64_t)st.st_size != nv->rec->size ||
	    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != nv->rec->mtime_ns) {
		index_report_error(fs->ix, rel,
				   "source changed since it was indexed (remount to re-index)");
		close(f->fd);
		f->fd = -1;
		return -EIO;
	}
	return 0;
}

static int dcm_read(struct dfs *fs, struct dfs_file *f, fuse_req_t req,
		    size_t size, off_t off)
{
	(void)fs;
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = f->fd;
	buf.buf[0].pos = off;
	/* fuse_reply_data() replies in every case, with EIO if pread fails */
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	return 0;
}

static void fd_release(struct dfs_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static const struct kind_ops kind_dcm = {
	.name = "dcm",
	.getattr = dcm_getattr,
	.open = dcm_open,
	.read = dcm_read,
	.release = fd_release,
};

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

static int text_read(struct dfs *fs, struct dfs_file *f, fuse_req_t req,
		     size_t size, off_t off)
{
	(void)fs;
	if (off < 0)
		return -EINVAL;
	if ((size_t)off >= f->len)
		size = 0;
	else if (size > f->len - (size_t)off)
		size = f->len - (size_t)off;
	fuse_reply_buf(req, size ? f->buf + off : NULL, size);
	return 0;
}

static void text_release(struct dfs_file *f)
{
	free(f->buf);
	f->buf = NULL;
}

static const struct kind_ops kind_status = {
	.name = "status.json",
	.getattr = status_getattr,
	.open = text_open,
	.read = text_read,
	.release = text_release,
	.direct_io = 1,
	.volatile_attr = 1,
};

static const struct kind_ops kind_errors = {
	.name = "errors.tsv",
	.getattr = errors_getattr,
	.open = text_open,
	.read = text_read,
	.release = text_release,
	.direct_io = 1,
	.volatile_attr = 1,
};

const struct kind_ops *const dfs_kinds[KIND_MAX] = {
	[KIND_DIR] = &kind_dir,
	[KIND_DCM] = &kind_dcm,
	[KIND_STATUS] = &kind_status,
	[KIND_ERRORS] = &kind_errors,
};
