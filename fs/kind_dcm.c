/*
 * kind_dcm.c - <instance>.dcm: the original file, byte for byte (splice
 * from the source's fd, or its bytes read through the source), and
 * dfs_source_open: the one "open the source and check it is the indexed
 * file" of every kind (fs.h; source.h R2).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "error.h"
#include "log.h"
#include "record.h"
#include "source.h"

static int source_check(struct dfs *fs, const struct node_view *nv, const char *what,
			struct source_file *f, int report);

int dfs_source_open(struct dfs *fs, const struct node_view *nv, const char *what,
		    struct source_file *f)
{
	return source_check(fs, nv, what, f, 1);
}

int dfs_source_check(struct dfs *fs, const struct node_view *nv, struct source_file *f,
		     int report)
{
	return source_check(fs, nv, "", f, report);
}

static int source_check(struct dfs *fs, const struct node_view *nv, const char *what,
			struct source_file *f, int report)
{
	struct source_expect exp = { nv->rec->size, nv->rec->mtime_ns, 0 };
	struct rec_head h;
	const void *val;
	size_t vlen;
	char why[160];
	/* the inode is in the file record, not in the node; so is the mtime
	 * of an anon/ node, whose node shows it moved (view_anon.c) */
	if (index_file_record(fs->ix, nv->relpath, nv->rec->path_len, &val, &vlen) == 0 &&
	    rec_head_get(val, vlen, &h) == 0) {
		exp.ino = h.ino;
		exp.mtime_ns = h.mtime_ns;
	}
	int rc = source_open(fs->src, nv->relpath, nv->rec->path_len, &exp, f, why,
			     sizeof(why));
	if (rc && !report)
		return rc == -ENOENT ? -ENOENT : -EIO;
	if (rc) {
		char rel[4096], line[200];
		snprintf(rel, sizeof(rel), "%.*s", (int)nv->rec->path_len, nv->relpath);
		snprintf(line, sizeof(line), "%s%s", what, why);
		index_report_error(fs->ix, rel, line);
		return rc == -ENOENT ? -ENOENT : -EIO;
	}
	return 0;
}

/* ---- .dcm: the original bytes ---- */

struct dcm_open {
	const struct source *src;
	struct source_file sf;
	struct dfs_anon_open *anon;   /* an anon/ instance (kind_anon.c) */
};

static int dcm_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
		       struct stat *st)
{
	(void)fs;
	(void)id;
	if (nv->rec->type != NODE_INSTANCE)
		return -ENOENT;
	if (nv->rec->flags & NODE_F_ANON)
		return dfs_anon_dcm_getattr(fs, id, nv, st);
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
	struct dcm_open *o = malloc(sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->src = fs->src;
	o->anon = NULL;
	if (nv->rec->flags & NODE_F_ANON) {
		int rc = dfs_anon_dcm_open(fs, id, nv, &o->anon);
		if (rc) {
			free(o);
			return rc;
		}
		f->priv = o;
		return 0;
	}
	int rc = dfs_source_open(fs, nv, "", &o->sf);
	if (rc) {
		free(o);
		return rc;
	}
	f->fd = o->sf.fd;
	f->priv = o;
	return 0;
}

static int dcm_read(struct dfs *fs, struct dfs_file *f, fuse_req_t req,
		    size_t size, off_t off)
{
	struct dcm_open *o = f->priv;
	(void)fs;
	if (o->anon)
		return dfs_anon_dcm_read(o->anon, req, size, off);
	if (f->fd >= 0) {
		struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
		buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		buf.buf[0].fd = f->fd;
		buf.buf[0].pos = off;
		/* fuse_reply_data() replies in every case, with EIO if pread fails */
		fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
		return 0;
	}
	/* a source without an fd (source.h R5) */
	if ((uint64_t)off >= o->sf.size) {
		fuse_reply_buf(req, NULL, 0);
		return 0;
	}
	if (size > o->sf.size - (uint64_t)off)
		size = (size_t)(o->sf.size - (uint64_t)off);
	char *b = malloc(size ? size : 1);
	if (!b)
		return -ENOMEM;
	int rc = source_read(o->src, &o->sf, b, size, (uint64_t)off);
	if (!rc)
		fuse_reply_buf(req, b, size);
	free(b);
	return rc ? -EIO : 0;
}

static void dcm_release(struct dfs_file *f)
{
	struct dcm_open *o = f->priv;
	if (o && o->anon) {
		dfs_anon_dcm_release(o->anon);
		free(o);
	} else if (o) {
		source_close(o->src, &o->sf);
		free(o);
	}
	f->priv = NULL;
	f->fd = -1;
}

const struct kind_ops kind_dcm =
	KIND_OPS("dcm", dcm_getattr, dcm_open, dcm_read, dcm_release);

/* ---- sources/<relative path>: a source file (view_sources.c) ----
 * The bytes of the file record's source, checked as a .dcm's (source.h R2,
 * R3): an instance of patients/ (its node) or any other file (a node of
 * its own). nlink 1: sources/ lists each file once, and not as a hard
 * link of the .dcm (whose nlink counts patients/ and uids/). */

static int srcfile_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
			   struct stat *st)
{
	if (nv->rec->flags & NODE_F_ANON || !nv->rec->path_len)
		return -ENOENT;
	int rc = dcm_getattr(fs, id, nv, st);
	st->st_nlink = 1;
	return rc;
}

static int srcfile_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
			struct dfs_file *f)
{
	if (nv->rec->flags & NODE_F_ANON || !nv->rec->path_len)
		return -ENOENT;
	return dcm_open(fs, id, nv, f);
}

const struct kind_ops kind_source =
	KIND_OPS("source", srcfile_getattr, srcfile_open, dcm_read, dcm_release);
