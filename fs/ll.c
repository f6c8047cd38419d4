/*
 * ll.c - libfuse low-level operations.
 *
 * Inode numbers are index ids (see index.h): lookup never allocates, and
 * forget is a no-op, as in squashfuse. Entries and attributes carry long
 * timeouts and files keep their page cache: when the archive changes while
 * mounted (index.h I9), fs/live.c tells the kernel what to forget; only
 * the .dicomfs status files are volatile (direct_io, no attr cache). Every request gets exactly one reply; errors from the project
 * convention are converted with dfs_errno() here and nowhere else.
 * The kinds of a view whose nodes are not in the index (query/) are routed
 * to that view's hooks (fs.h: struct view_fs_ops, fs/views.c).
 * Zero-message opens (fs.h Z1..Z5): decided in ll_init; then ll_open and
 * ll_opendir answer ENOSYS (the kernel asks no more), a READ without a
 * handle opens its kind for itself (read_noopen, Z2), and the status
 * files are named by snapshot inodes in entry replies (fill_entry, Z4).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "fs.h"
#include "error.h"
#include "view.h"
#include "access.h"
#include "shared_buf.h"
#include "cpulat.h"

#define COUNT(fs, what) __atomic_fetch_add(&(fs)->counts.what, 1, __ATOMIC_RELAXED)

static struct dfs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static const struct kind_ops *kind_of(uint64_t ino)
{
	unsigned k = ino_kind(ino);
	return k < KIND_MAX ? dfs_kinds[k] : NULL;
}

/* the view that serves ino without the index, or NULL */
static const struct view_fs_ops *view_of(uint64_t ino)
{
	return dfs_view_of(ino_kind(ino));
}

/* the view whose directory ino is, or NULL (an index directory or no
 * directory) */
static const struct view_fs_ops *view_dir_of(uint64_t ino)
{
	const struct view_fs_ops *v = view_of(ino);
	return v && (v->dir_kinds & (1u << ino_kind(ino))) ? v : NULL;
}

int dfs_stat(struct dfs *fs, struct dfs_caller *c, uint64_t ino, struct stat *st)
{
	struct node_view nv;
	const struct kind_ops *k = kind_of(ino);
	const struct view_fs_ops *v = view_of(ino);
	if (!k || !k->getattr)
		return -ENOENT;
	if (v)
		return v->stat(fs, c, ino, st);
	/* a status snapshot (Z4) is owned and timed as .dicomfs/ */
	int rc = index_node(fs->ix, dfs_snap_is(ino) ? ID_DOTDIR : ino_id(ino), &nv);
	if (rc)
		return rc == -ENOENT ? -ENOENT : rc;
	memset(st, 0, sizeof(*st));
	rc = k->getattr(fs, ino_id(ino), &nv, st);
	st->st_ino = ino;
	/* st_blksize sizes the buffers of stdio and Python's open(): a file
	 * the page cache keeps gets a local filesystem's 4 KiB, so that
	 * np.load(p) reads its header without pulling 64 KiB (issue 17: -10 µs
	 * of a 128 KiB np.load); a file without page cache (direct_io: every
	 * read a request) gets 64 KiB */
	st->st_blksize = k->direct_io ? 65536 : 4096;
	if (!rc && c)
		dfs_access_stat(fs, c, ino, st);
	return rc;
}

/* a status file named by a snapshot of its own in entry replies (Z4) */
static int snapshot_kind(const struct dfs *fs, uint64_t ino)
{
	unsigned k = ino_kind(ino);
	return fs->zero_open && (k == KIND_STATUS || k == KIND_ERRORS) &&
	       ino_id(ino) == ID_DOTDIR;
}

/* An entry reply for ino. A status file (Z4) becomes a snapshot with one
 * lookup counted: a reply that does not reach the kernel gives it back
 * (entry_undo). */
static int fill_entry(struct dfs *fs, struct dfs_caller *c, uint64_t ino,
		      struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	int snap = snapshot_kind(fs, ino);
	if (snap) {
		int rc = dfs_snap_take(fs, ino_kind(ino), &ino);
		if (rc)
			return rc;
	}
	int rc = dfs_stat(fs, c, ino, &e->attr);
	if (rc) {
		if (snap)
			dfs_snap_forget(fs, ino, 1);
		return rc;
	}
	const struct kind_ops *k = kind_of(ino);
	e->ino = ino;
	e->generation = 1;
	e->entry_timeout = dfs_access_timeout(fs, ino);
	e->attr_timeout = k->volatile_attr ? 0 : e->entry_timeout;
	if (snap) {   /* immutable, looked up again at each path walk */
		e->attr_timeout = e->entry_timeout;
		e->entry_timeout = 0;
	}
	return 0;
}

static void entry_undo(struct dfs *fs, const struct fuse_entry_param *e)
{
	if (dfs_snap_is(e->ino))
		dfs_snap_forget(fs, e->ino, 1);
}

static void reply_err(fuse_req_t req, int rc)
{
	fuse_reply_err(req, dfs_errno(rc));
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct dfs *fs = fs_of(req);
	struct fuse_entry_param e;
	const struct view_fs_ops *v = view_dir_of(parent);
	struct dfs_caller c;
	uint64_t ino;
	int rc;

	COUNT(fs, lookup);
	dfs_caller(fs, req, &c);
	if (!dfs_access_ino(fs, &c, parent)) {
		fuse_reply_err(req, v ? EACCES : ENOENT);
		return;
	}
	if (v) {
		rc = v->lookup(fs, &c, parent, name, &e);
		if (rc)
			reply_err(req, rc);
		else
			fuse_reply_entry(req, &e);
		return;
	}
	if (ino_kind(parent) != KIND_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	rc = index_lookup(fs->ix, ino_id(parent), name, &ino);
	if (!rc && !dfs_access_ino(fs, &c, ino))
		rc = -ENOENT;   /* access.h A1, A2: not even the name */
	if (rc == -ENOENT) {
		/* negative entry, cached as long as a positive one */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = dfs_timeout(fs);
		fuse_reply_entry(req, &e);
		return;
	}
	if (!rc)
		rc = fill_entry(fs, &c, ino, &e);
	if (rc)
		reply_err(req, rc);
	else if (fuse_reply_entry(req, &e))
		entry_undo(fs, &e);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dfs *fs = fs_of(req);
	struct stat st;
	struct dfs_caller c;
	(void)fi;
	COUNT(fs, getattr);
	dfs_caller(fs, req, &c);
	int rc = dfs_access_ino(fs, &c, ino) ? dfs_stat(fs, &c, ino, &st)
					      : (view_of(ino) ? -EACCES : -ENOENT);
	if (rc) {
		reply_err(req, rc);
		return;
	}
	const struct kind_ops *k = kind_of(ino);
	fuse_reply_attr(req, &st, k->volatile_attr && !dfs_snap_is(ino) ? 0 :
				  dfs_access_timeout(fs, ino));
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino_kind(ino) != KIND_DIR && !view_dir_of(ino)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	struct dfs *fs = fs_of(req);
	COUNT(fs, opendir);
	if (fs->zero_opendir) {   /* Z1: the kernel asks no more */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	struct dfs_caller c;
	dfs_caller(fs, req, &c);
	if (!dfs_access_ino(fs, &c, ino)) {
		fuse_reply_err(req, view_dir_of(ino) ? EACCES : ENOENT);
		return;
	}
	/* the readdir cache is shared between users (access.h A3) */
	fi->cache_readdir = dfs_access_uniform(fs);
	fi->keep_cache = dfs_access_uniform(fs);
	fuse_reply_open(req, fi);
}

struct rd {
	fuse_req_t req;
	struct dfs *fs;
	char *buf;
	size_t size, len;
	int plus;
	int err;
	struct dfs_caller *c;  /* entries it may not see are left out */
};

static int rd_add(struct rd *r, uint64_t ino, const char *name, size_t nl,
		  uint64_t next, int nonode)
{
	char nm[NAME_MAX + 1];
	size_t n;
	if (nl > NAME_MAX)
		nl = NAME_MAX;
	memcpy(nm, name, nl);
	nm[nl] = 0;
	if (r->plus) {
		struct fuse_entry_param e;
		int rc = 0;
		if (nonode) {
			/* a readdirplus entry without a node (nodeid 0) */
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = ino;
			e.attr.st_mode = S_IFDIR;
		} else {
			rc = fill_entry(r->fs, r->c, ino, &e);
		}
		if (rc) {
			r->err = rc;
			return 1;
		}
		n = fuse_add_direntry_plus(r->req, r->buf + r->len, r->size - r->len,
					   nm, &e, (off_t)next);
		if (n > r->size - r->len)
			entry_undo(r->fs, &e);   /* not sent */
	} else {
		struct stat st = { .st_ino = ino,
				   .st_mode = ino_kind(ino) == KIND_DIR ? S_IFDIR : S_IFREG };
		n = fuse_add_direntry(r->req, r->buf + r->len, r->size - r->len, nm,
				      &st, (off_t)next);
	}
	if (n > r->size - r->len)
		return 1;
	r->len += n;
	return 0;
}

static int rd_cb(void *ctx, uint64_t ino, const char *name, size_t nl,
		 uint64_t next_pos)
{
	struct rd *r = ctx;
	if (!dfs_access_ino(r->fs, r->c, ino))
		return 0;
	/* positions 0 and 1 are "." and ".."; index position p is offset p+2 */
	return rd_add(ctx, ino, name, nl, next_pos + 2, 0);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       int plus)
{
	struct dfs *fs = fs_of(req);
	struct dfs_caller c;
	struct rd r = { req, fs, NULL, size, 0, plus, 0, &c };
	const struct view_fs_ops *v = view_dir_of(ino);
	struct node_view nv;
	int rc;

	COUNT(fs, readdir);
	dfs_caller(fs, req, &c);
	if (!dfs_access_ino(fs, &c, ino)) {
		fuse_reply_err(req, v ? EACCES : ENOENT);
		return;
	}
	if (v) {
		rc = v->readdir(fs, &c, req, ino, size, off, plus);
		if (rc)
			reply_err(req, rc);
		return;
	}
	r.buf = malloc(size);
	if (!r.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = index_node(fs->ix, ino_id(ino), &nv);
	if (rc)
		goto reply_error;
	if (off == 0 && rd_add(&r, ino, ".", 1, 1, 0))
		goto reply;
	if (off <= 1) {
		uint64_t pino = ino_make(nv.rec->parent, KIND_DIR);
		/* ".." of the root is outside the mount: no node. (A plain
		 * fuse_dirent in a readdirplus reply corrupts the reply: EIO.) */
		if (rd_add(&r, ino == FUSE_ROOT_ID ? FUSE_ROOT_ID : pino, "..", 2, 2,
			   ino == FUSE_ROOT_ID))
			goto reply;
	}
	rc = index_readdir(fs->ix, ino_id(ino), off < 2 ? 0 : (uint64_t)off - 2, rd_cb, &r);
	if (rc)
		goto reply_error;
	if (r.err && r.len == 0) {
		rc = r.err;
		goto reply_error;
	}
reply:
	fuse_reply_buf(req, r.buf, r.len);
	free(r.buf);
	return;
reply_error:
	free(r.buf);
	reply_err(req, rc);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, 0);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, 1);
}

/*
 * Open inode ino for caller c into f (zeroed by the caller): the kind's
 * open, its shared generated content, or content of the caller's own
 * (access.h A8). *own set when the content is the caller's. 0 or a
 * negative error. Used by OPEN and by a READ without a handle (Z2).
 */
static int open_kind(struct dfs *fs, struct dfs_caller *c, uint64_t ino, int flags,
		     struct dfs_file *f, int *own)
{
	const struct kind_ops *k = kind_of(ino);
	struct node_view nv;
	int rc;
	*own = 0;
	if (!k || !(k->open || k->generate))
		return k ? -EISDIR : -ENOENT;
	if (!dfs_access_ino(fs, c, ino))
		return -EACCES;
	rc = view_of(ino) ? 0 : index_node(fs->ix, ino_id(ino), &nv);
	if (rc)
		return rc;
	f->kind = ino_kind(ino);
	f->fd = -1;
	f->id = ino_id(ino);
	f->caller = c;
	f->flags = flags;
	/* content of its own for a filtered caller (access.h A8) */
	*own = k->per_caller && dfs_access_filtered(c);
	rc = *own ? k->generate(fs, ino_id(ino), &nv, f) :
	     k->generate ? kind_buf_open_shared(fs, ino_id(ino), &nv, f, k->generate)
			 : k->open(fs, ino_id(ino), &nv, f);
	f->caller = NULL;
	return rc;
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dfs *fs = fs_of(req);
	const struct kind_ops *k = kind_of(ino);
	struct dfs_file *f;
	int rc, own;

	COUNT(fs, open);
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (fs->zero_open) {   /* Z1: this one and every later open: no request */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	struct dfs_caller c;
	dfs_caller(fs, req, &c);
	f = calloc(1, sizeof(*f));
	if (!f) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = open_kind(fs, &c, ino, fi->flags, f, &own);
	if (rc) {
		free(f);
		reply_err(req, rc);
		return;
	}
	fi->fh = (uintptr_t)f;
	fi->direct_io = k->direct_io || own || f->direct_io;
	fi->keep_cache = !fi->direct_io;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* the open was interrupted: undo it */
		if (k->release)
			k->release(f);
		free(f);
	}
}

/* readahead.c RA1: the directory that lists ino: a .dcm's node's parent,
 * a file of sources/ its folder there */
static void ra_note(struct dfs *fs, fuse_ino_t ino)
{
	struct node_view nv;
	uint64_t id = ino_id(ino), dir;
	unsigned kind = ino_kind(ino);
	if (!dfs_ra_wanted(fs) || index_node(fs->ix, id, &nv) || (nv.rec->flags & NODE_F_ANON))
		return;
	if (kind == KIND_DCM)
		dfs_ra_note(fs, id, nv.rec->parent, kind);
	else if (nv.rec->path_len &&
		 index_source_dir(fs->ix, nv.relpath, nv.rec->path_len, &dir) == 0)
		dfs_ra_note(fs, id, dir, kind);
}

/* A READ without an open handle (Z2): the kind opened for this request. */
static void read_noopen(struct dfs *fs, fuse_req_t req, fuse_ino_t ino, size_t size,
			off_t off, int flags)
{
	const struct kind_ops *k = kind_of(ino);
	struct dfs_file f = { 0 };
	struct dfs_caller c;
	int rc, own;

	if (dfs_snap_is(ino)) {   /* Z4 */
		rc = dfs_snap_read(fs, ino, req, size, off);
		if (rc)
			reply_err(req, rc);
		return;
	}
	dfs_caller(fs, req, &c);
	rc = open_kind(fs, &c, ino, flags & ~O_ACCMODE, &f, &own);
	if (rc) {
		reply_err(req, rc);
		return;
	}
	if (f.direct_io || own)
		rc = -EAGAIN;   /* Z3 (own: Z1 rules it out) */
	else
		rc = k->read ? k->read(fs, &f, req, size, off) : -EBADF;
	if (k->release)
		k->release(&f);
	if (rc)
		reply_err(req, rc);
	else if (off == 0 && (k == &kind_dcm || k == &kind_source))
		ra_note(fs, ino);   /* readahead.c RA1 */
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct dfs *fs = fs_of(req);
	struct dfs_file *f = (struct dfs_file *)(uintptr_t)fi->fh;
	const struct kind_ops *k = kind_of(ino);
	COUNT(fs, read);
	if (!f) {
		read_noopen(fs, req, ino, size, off, fi->flags);
		return;
	}
	int rc = k && k->read ? k->read(fs, f, req, size, off) : -EBADF;
	if (rc)
		reply_err(req, rc);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dfs_file *f = (struct dfs_file *)(uintptr_t)fi->fh;
	const struct kind_ops *k = kind_of(ino);
	if (f) {
		if (k && k->release)
			k->release(f);
		free(f);
	}
	fuse_reply_err(req, 0);
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct dfs *fs = fs_of(req);
	const struct index_stats *s = index_stats(fs->ix);
	struct statvfs st = { 0 };
	(void)ino;
	st.f_bsize = 65536;
	st.f_frsize = 65536;
	/* the root and the views' top directories, and the stored levels */
	st.f_files = s->instances + s->series + s->studies + s->patients + 1 +
		     view_count(view_registry);
	st.f_namemax = 255;
	st.f_flag = ST_RDONLY | ST_NOSUID | ST_NODEV;
	fuse_reply_statfs(req, &st);
}

/* user.dicom.<Keyword> (xattr.c); size 0 asks for the length */
static void reply_xattr(fuse_req_t req, int rc, char *buf, size_t len, size_t size)
{
	if (rc)
		reply_err(req, rc);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, len ? buf : NULL, len);
	free(buf);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	char *buf = NULL;
	size_t len = 0;
	struct dfs_caller c;
	COUNT(fs_of(req), getxattr);
	dfs_caller(fs_of(req), req, &c);
	int rc = !dfs_access_attrs(fs_of(req), &c, ino) ? -EACCES :
		 view_of(ino) || dfs_snap_is(ino) ? -ENODATA : dfs_xattr_get(fs_of(req), ino, name, &buf, &len);
	reply_xattr(req, rc, buf, len, size);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = NULL;
	size_t len = 0;
	struct dfs_caller c;
	COUNT(fs_of(req), listxattr);
	dfs_caller(fs_of(req), req, &c);
	int rc = !dfs_access_attrs(fs_of(req), &c, ino) ? -EACCES :
		 view_of(ino) || dfs_snap_is(ino) ? 0 : dfs_xattr_list(fs_of(req), ino, &buf, &len);
	reply_xattr(req, rc, buf, len, size);
}

/* query/ symlinks (view_query.c) */
static void ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
	const struct view_fs_ops *v = view_of(ino);
	char *t = NULL;
	struct dfs_caller c;
	dfs_caller(fs_of(req), req, &c);
	int rc = !dfs_access_ino(fs_of(req), &c, ino) ? -EACCES :
		 v && v->readlink ? v->readlink(fs_of(req), ino, &t) : -EINVAL;
	if (rc)
		reply_err(req, rc);
	else
		fuse_reply_readlink(req, t);
	free(t);
}

/* lookup counts matter only for the nodes of views outside the index */
static void forget_one(struct dfs *fs, uint64_t ino, uint64_t nlookup)
{
	const struct view_fs_ops *v = view_of(ino);
	COUNT(fs, forget);
	if (dfs_snap_is(ino)) {   /* Z4 */
		dfs_snap_forget(fs, ino, nlookup);
		return;
	}
	if (v && v->forget)
		v->forget(fs, ino, nlookup);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(fs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		forget_one(fs_of(req), forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* ---- everything that would write ---- */

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *a, int to_set,
		       struct fuse_file_info *fi)
{
	(void)ino; (void)a; (void)to_set; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void ll_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t r)
{
	(void)p; (void)n; (void)m; (void)r;
	fuse_reply_err(req, EROFS);
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m)
{
	(void)p; (void)n; (void)m;
	fuse_reply_err(req, EROFS);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t p, const char *n)
{
	(void)p; (void)n;
	fuse_reply_err(req, EROFS);
}

static void ll_symlink(fuse_req_t req, const char *l, fuse_ino_t p, const char *n)
{
	(void)l; (void)p; (void)n;
	fuse_reply_err(req, EROFS);
}

static void ll_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np,
		      const char *nn, unsigned int f)
{
	(void)p; (void)n; (void)np; (void)nn; (void)f;
	fuse_reply_err(req, EROFS);
}

static void ll_link(fuse_req_t req, fuse_ino_t i, fuse_ino_t np, const char *nn)
{
	(void)i; (void)np; (void)nn;
	fuse_reply_err(req, EROFS);
}

static void ll_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m,
		      struct fuse_file_info *fi)
{
	(void)p; (void)n; (void)m; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void ll_write(fuse_req_t req, fuse_ino_t i, const char *b, size_t s,
		     off_t o, struct fuse_file_info *fi)
{
	(void)i; (void)b; (void)s; (void)o; (void)fi;
	fuse_reply_err(req, EROFS);
}

static void ll_setxattr(fuse_req_t req, fuse_ino_t i, const char *n, const char *v,
			size_t s, int f)
{
	(void)i; (void)n; (void)v; (void)s; (void)f;
	fuse_reply_err(req, EROFS);
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t i, const char *n)
{
	(void)i; (void)n;
	fuse_reply_err(req, EROFS);
}

static void ll_fallocate(fuse_req_t req, fuse_ino_t i, int m, off_t o, off_t l,
			 struct fuse_file_info *fi)
{
	(void)i; (void)m; (void)o; (void)l; (void)fi;
	fuse_reply_err(req, EROFS);
}

/*
 * Python's open() asks isatty() of every file it opens buffered (np.load(p),
 * pd.read_csv(p), open(p).read()): a TCGETS ioctl, which the kernel sends
 * to the daemon. Nothing here is a terminal, nor has an ioctl to offer;
 * answered here (not by libfuse's ENOSYS) so that the request counts
 * (status.json) and keeps the CPUs' wake-up latency low (cpulat.h L1):
 * for a loop of np.load calls it is the only request.
 */
static void ll_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
		     struct fuse_file_info *fi, unsigned flags, const void *in_buf,
		     size_t in_bufsz, size_t out_bufsz)
{
	struct dfs *fs = fs_of(req);
	(void)ino; (void)cmd; (void)arg; (void)fi; (void)flags; (void)in_buf;
	(void)in_bufsz; (void)out_bufsz;
	cpulat_touch(fs->cpulat);
	COUNT(fs, ioctl);
	fuse_reply_err(req, ENOTTY);
}

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
	struct dfs *fs = userdata;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* cached link targets are shared between users (access.h A3) */
	if ((conn->capable & FUSE_CAP_CACHE_SYMLINKS) && dfs_access_uniform(fs))
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/* Z1: zero-message opens; the generated content then outlives its
	 * reads (shared_buf.h SB7) */
	int zero = !fs->opens_each && !fs->allow_other && fs->snaps;
	if (zero && (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT)) {
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
		fs->zero_open = 1;
		if (fs->shared)
			shared_bufs_linger(fs->shared, 1);
	}
	if (zero && (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT)) {
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
		fs->zero_opendir = 1;
	}
}

/*
 * The requests that read the index end by releasing this thread's
 * snapshot (index.h I6): the next request sees the newest generation of a
 * live archive, and an idle thread pins no old pages. (The userdata is
 * read before the request is answered: req is gone after the reply.)
 */
#define SNAP_END(name, params, ...) \
	static void name##_req params \
	{ \
		struct dfs *fs = fs_of(req); \
		cpulat_touch(fs->cpulat);   /* cpulat.h L1 */ \
		name(__VA_ARGS__); \
		index_request_end(fs->ix); \
		shared_bufs_sweep(fs->shared);   /* SB7 */ \
	}
SNAP_END(ll_lookup, (fuse_req_t req, fuse_ino_t p, const char *n), req, p, n)
SNAP_END(ll_readlink, (fuse_req_t req, fuse_ino_t i), req, i)
SNAP_END(ll_getattr, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi), req, i, fi)
SNAP_END(ll_opendir, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi), req, i, fi)
SNAP_END(ll_readdir, (fuse_req_t req, fuse_ino_t i, size_t s, off_t o,
		      struct fuse_file_info *fi), req, i, s, o, fi)
SNAP_END(ll_readdirplus, (fuse_req_t req, fuse_ino_t i, size_t s, off_t o,
			  struct fuse_file_info *fi), req, i, s, o, fi)
SNAP_END(ll_open, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi), req, i, fi)
SNAP_END(ll_read, (fuse_req_t req, fuse_ino_t i, size_t s, off_t o,
		   struct fuse_file_info *fi), req, i, s, o, fi)
SNAP_END(ll_release, (fuse_req_t req, fuse_ino_t i, struct fuse_file_info *fi), req, i, fi)
SNAP_END(ll_statfs, (fuse_req_t req, fuse_ino_t i), req, i)
SNAP_END(ll_getxattr, (fuse_req_t req, fuse_ino_t i, const char *n, size_t s), req, i, n, s)
SNAP_END(ll_listxattr, (fuse_req_t req, fuse_ino_t i, size_t s), req, i, s)

const struct fuse_lowlevel_ops dfs_ll_ops = {
	.init = ll_init,
	.lookup = ll_lookup_req,
	.readlink = ll_readlink_req,
	.forget = ll_forget,
	.forget_multi = ll_forget_multi,
	.getattr = ll_getattr_req,
	.opendir = ll_opendir_req,
	.readdir = ll_readdir_req,
	.readdirplus = ll_readdirplus_req,
	.open = ll_open_req,
	.read = ll_read_req,
	.release = ll_release_req,
	.statfs = ll_statfs_req,
	.getxattr = ll_getxattr_req,
	.listxattr = ll_listxattr_req,
	.ioctl = ll_ioctl,
	.setattr = ll_setattr,
	.mknod = ll_mknod,
	.mkdir = ll_mkdir,
	.unlink = ll_unlink,
	.rmdir = ll_unlink,
	.symlink = ll_symlink,
	.rename = ll_rename,
	.link = ll_link,
	.create = ll_create,
	.write = ll_write,
	.setxattr = ll_setxattr,
	.removexattr = ll_removexattr,
	.fallocate = ll_fallocate,
};
