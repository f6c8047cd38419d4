/*
 * kind_dcm.c - <instance>.dcm: the original file, byte for byte (pread/splice).
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

/* ---- .dcm: the original bytes ---- */

static int dcm_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
		       struct stat *st)
{
	(void)fs;
	(void)id;
	if (nv->rec->type != NODE_INSTANCE)
		return -ENOENT;
	st->st_mode = S_IFREG | (nv->rec->mode & 0444);
	st->st_nlink = nv->rec->nlink ? nv->rec->nlink : 1; /* patients/ + uids/ */
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

void kind_fd_release(struct dfs_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

const struct kind_ops kind_dcm = {
	.name = "dcm",
	.getattr = dcm_getattr,
	.open = dcm_open,
	.read = dcm_read,
	.release = kind_fd_release,
};

