/*
 * fs.h - the FUSE side: inode number -> (node, kind) -> a file kind module.
 *
 * Every file kind is one small module with getattr/open/read/release, listed
 * in one table (kinds.c). ll.c owns the FUSE requests: one reply per
 * request, errors converted from the project convention only there.
 */
#ifndef DICOMFS_FS_H
#define DICOMFS_FS_H
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include "index.h"

struct dfs_lcache;
struct dfs {
	struct index *ix;
	double timeout;        /* entry/attr timeout for immutable nodes */
	uid_t uid;
	gid_t gid;
	uint64_t cache_bytes;  /* decoded-pixel cache bound (-o cache_size) */
	/* generated level files and xattr sets (kind_level.c): set by
	 * dfs_level_init() before the session starts, freed by
	 * dfs_level_fini() after it ended; the pointer is immutable in
	 * between, the cache guards itself (its own mutex) */
	struct dfs_lcache *lcache;
};

/* An open file (fi->fh). */
struct dfs_file {
	unsigned kind;
	int fd;                /* source file, or -1 */
	char *buf;             /* generated content, or NULL */
	size_t len;
	uint64_t id;
	void *priv;            /* kind-specific open state */
};

struct kind_ops {
	const char *name;
	/* fill st (mode, size, times, owner) for node nv */
	int (*getattr)(struct dfs *fs, uint64_t id, const struct node_view *nv,
		       struct stat *st);
	int (*open)(struct dfs *fs, uint64_t id, const struct node_view *nv,
		    struct dfs_file *f);
	/* reply to req with up to size bytes at off; returns 0 when it
	 * replied, or a negative error for the caller to reply with */
	int (*read)(struct dfs *fs, struct dfs_file *f, fuse_req_t req,
		    size_t size, off_t off);
	void (*release)(struct dfs_file *f);
	int direct_io;
	int volatile_attr;     /* content may change while mounted */
};

extern const struct kind_ops *const dfs_kinds[KIND_MAX];
extern const struct kind_ops kind_dir, kind_dcm, kind_status, kind_errors;
extern const struct kind_ops kind_npy, kind_png;
/* kind_pixels.c: "dicomfs --decode-worker", the pixel decoder process */
int dfs_decode_worker_main(void);
/*
 * kind_pixels.c: the pixel pipeline for other kinds. A held source of one
 * instance's .npy data bytes: native sources are pread (and converted) per
 * read, others decoded once into the shared decode cache (held until
 * close). 0 or negative error (-EIO for undecodable pixels).
 */
struct dfs_pixsrc;
struct px_info;
int dfs_pixsrc_open(struct dfs *fs, uint64_t id, struct dfs_pixsrc **out);
const struct px_info *dfs_pixsrc_info(const struct dfs_pixsrc *s);
int dfs_pixsrc_read(struct dfs_pixsrc *s, void *out, uint64_t off, size_t len);
void dfs_pixsrc_close(struct dfs_pixsrc *s);
/* kind_volume.c: volume.nii, volume.npy */
extern const struct kind_ops kind_volume_nii, kind_volume_npy;
/* kind_json.c: <instance>.json (DICOM JSON Model) */
extern const struct kind_ops kind_json;
/* kind_level.c: the level files */
extern const struct kind_ops kind_series_json, kind_study_json, kind_patient_json,
	kind_study_fhir, kind_patient_fhir;
/* kind_level.c: fs->lcache; 0 or -ENOMEM. fini: NULL-safe, idempotent. */
int dfs_level_init(struct dfs *fs);
void dfs_level_fini(struct dfs *fs);
/*
 * kind_level.c: the per-inode cache of generated content (key: an inode
 * number; kind 0 for xattr sets). get: 1 when found, *len set and, when
 * copy, a malloc()ed private copy in *copy; 0 when absent (or no memory for
 * the copy). put: keep a copy (best effort; the first one stays). Both
 * thread-safe; no cache (lcache NULL) is a permanent miss.
 */
int dfs_level_cache_get(struct dfs *fs, uint64_t key, char **copy, size_t *len);
void dfs_level_cache_put(struct dfs *fs, uint64_t key, const char *buf, size_t len);
/*
 * kind_level.c: offer the instance records below directory id (of node
 * type `type`) to a, in listing order, until it is full (levelagg.h A1).
 * 0 or a negative error.
 */
struct levelagg;
int dfs_level_agg(struct dfs *fs, uint64_t id, int type, struct levelagg *a);

/*
 * user.dicom.<Keyword> extended attributes of inode ino (xattr.c):
 * the NUL-terminated names, or one value; malloc()ed into *buf.
 * 0, -ENODATA (no such attribute), -EOPNOTSUPP (a namespace other than
 * user.*) or another negative error.
 */
int dfs_xattr_list(struct dfs *fs, uint64_t ino, char **buf, size_t *len);
int dfs_xattr_get(struct dfs *fs, uint64_t ino, const char *name, char **buf,
		  size_t *len);

/*
 * kind_query.c: query/<level>/<Keyword=value>/... (dynamic ids, see index.h).
 * The directories, manifests and symlinks of the query space bypass the
 * node lookup of the other kinds: ll.c routes them here.
 */
extern const struct kind_ops kind_qmanifest, kind_qother;
int dfs_query_kind(unsigned kind);
int dfs_query_stat(struct dfs *fs, uint64_t ino, struct stat *st);
int dfs_query_lookup(struct dfs *fs, uint64_t parent, const char *name,
		     struct fuse_entry_param *e);
int dfs_query_readdir(struct dfs *fs, fuse_req_t req, uint64_t ino, size_t size,
		      off_t off, int plus);
int dfs_query_readlink(struct dfs *fs, uint64_t ino, char **out);
void dfs_query_forget(uint64_t ino, uint64_t nlookup);

/* close f->fd: the release of kinds that keep a source fd */
void kind_fd_release(struct dfs_file *f);
/* serve / free f->buf[0, f->len): the read and release of kinds whose
 * content is generated into memory on open */
int kind_buf_read(struct dfs *fs, struct dfs_file *f, fuse_req_t req,
		  size_t size, off_t off);
void kind_buf_release(struct dfs_file *f);

static inline void stat_times(struct stat *st, int64_t ns)
{
	st->st_mtim.tv_sec = ns / 1000000000;
	st->st_mtim.tv_nsec = ns % 1000000000;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/* A regular file of size bytes with permissions perm, owned and timed as
 * node nv (the generated files). */
static inline void stat_file(struct stat *st, const struct node_view *nv,
			     mode_t perm, uint64_t size)
{
	st->st_mode = S_IFREG | perm;
	st->st_nlink = 1;
	st->st_uid = nv->rec->uid;
	st->st_gid = nv->rec->gid;
	st->st_size = (off_t)size;
	st->st_blocks = (st->st_size + 511) / 512;
	stat_times(st, nv->rec->mtime_ns);
}

extern const struct fuse_lowlevel_ops dfs_ll_ops;

/* Fill st for inode ino; 0 or negative error. */
int dfs_stat(struct dfs *fs, uint64_t ino, struct stat *st);

#endif
