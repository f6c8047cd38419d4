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

struct source;
struct source_file;
struct dfs_pixels;
struct dfs_lcache;
struct dfs_vcache;
struct dfs_access;
struct dfs_caller;

/* One mount. Set up by main.c before the FUSE loop; the fields are
 * read-only while mounted unless marked otherwise. */
struct dfs {
	struct index *ix;
	const struct source *src;  /* where bytes come from: index_source(ix),
				    * no lock needed (source.h, R7) */
	double timeout;        /* entry/attr timeout for immutable nodes */
	uid_t uid;
	gid_t gid;
	uint64_t cache_bytes;  /* decoded-pixel cache bound (-o cache_size) */
	uint64_t max_image;    /* largest decoded image (or PNG frame) built in
				* memory (-o max_image; default cache_bytes/2) */
	unsigned max_threads;  /* FUSE threads (-o max_threads; kind_pixels.c P5),
				* fewer under a low fd limit (fdbudget.h F2) */
	unsigned max_threads_asked;   /* -o max_threads as given (P5) */
	int decode_ahead;      /* kind_pixels.c P10: 1 unless -o no_decode_ahead; set before
				* dfs_pixels_new, read-only after */
	int read_ahead;        /* readahead.c RA1: 1 unless -o no_read_ahead or
				* DICOMFS_NO_AHEAD=1; set
				* before the session loop, read-only after */
	struct dfs_ra *ra;     /* readahead.c: its own lock; dfs_ra_new/free */
	uint64_t open_bytes;   /* bound of the shared generated content
				* (-o open_size; shared_buf.h SB4) */
	/* shared_buf.h: generated content shared per inode while open; its
	 * own lock; set before the session loop, NULL: not shared */
	struct shared_bufs *shared;
	/* catalog.h: the current snapshot of the index; its fields are
	 * guarded by catalog_slot.lock (use catalog_get/catalog_put); the
	 * pointer is set by catalog_start before the session loop */
	struct catalog_slot *catalog;
	/* view_query.c: the query/ directories and their result cache,
	 * guarded by qview.lock; set by dfs_query_start */
	struct qview *query;
	struct dfs_pixels *px; /* kind_pixels.c: decode cache (its own lock),
				* decoder pool (worker.h, its own lock) and
				* per-thread buffers; dfs_pixels_new/free */
	/* generated level files and xattr sets (kind_level.c): set by
	 * dfs_level_init() before the session starts, freed by
	 * dfs_level_fini() after it ended; the pointer is immutable in
	 * between, the cache guards itself (its own mutex) */
	struct dfs_lcache *lcache;
	/* volume plans of series (kind_volume.c): set by dfs_volume_init(),
	 * freed by dfs_volume_fini(); guarded by its own mutex */
	struct dfs_vcache *vcache;
	/* access.h: who sees what (set by dfs_access_init after the index is
	 * reopened, before the session loop; immutable pointer, the cache
	 * guards itself); NULL: everyone sees everything */
	struct dfs_access *access;
	int allow_other;       /* -o allow_other (access.h A6) */
	/* the session, for notifications off the FUSE threads (access.h A7;
	 * live.c); set before dfs_access_init, immutable while mounted */
	struct fuse_session *se;
	/* live.c: the live thread's own state (only that thread touches it) */
	struct dfs_live *live;
	/* -o xattrs=all: the user.dicom.* attributes on every file (xattr.c
	 * X4); 0: on directories and .dcm only */
	int xattrs_all;
	/* -o opens=each: every open is a request (no Z1 below) */
	int opens_each;
	/* Z1: set by ll_init (before any other request), read-only after:
	 * the kernel sends no OPEN / OPENDIR (zero-message opens) */
	int zero_open;
	int zero_opendir;
	/* kind_dotdir.c Z4: status snapshots served as inodes of their own
	 * (its own lock); made by dfs_snaps_new before the session loop */
	struct dfs_snaps *snaps;
	/* cpulat.h: the CPUs' wake-up latency held low while requests arrive;
	 * set before the session loop (after daemonize), freed after it;
	 * NULL: off (L2, L4). Every request touches it (ll.c) */
	struct cpulat *cpulat;
	/* requests received, by kind (status.json "requests"; __atomic) */
	struct dfs_counts {
		uint64_t lookup, getattr, open, opendir, read, readdir, getxattr,
			listxattr, forget, ioctl;
	} counts;
};

/*
 * Zero-message opens (ll.c; README "Where the time goes"). The kernel
 * (FUSE_NO_OPEN_SUPPORT, FUSE_NO_OPENDIR_SUPPORT) stops sending OPEN and
 * RELEASE (OPENDIR, RELEASEDIR) for the whole connection once one OPEN
 * (OPENDIR) was answered ENOSYS; every file then keeps its page cache
 * (no direct_io, no per-open state) and every directory its readdir cache.
 * (Z1) Used only when all hold: the kernel offers it, -o opens=each is not
 *      given, and the mount has no allow_other (access.h A6: only the owner
 *      and root come in, both see everything, A3): no content is per caller
 *      (A8) and the shared page cache shows nobody what they could not
 *      read; default_permissions still checks the mode bits of each open.
 *      With allow_other every open stays a request (the archive may turn
 *      mixed while mounted, A7, and then needs per-caller opens).
 * (Z2) Every kind reads by inode: a READ without an open handle
 *      (fi->fh == 0) opens the kind for that request alone (the same open,
 *      so the same checks: source.h R2 on every READ of a source, an
 *      errors.tsv line and EIO/ENOENT for a changed or vanished one),
 *      serves it and releases it. Generated content is found again by
 *      inode in the shared table (shared_buf.h SB7) or the kinds' caches,
 *      and is the same bytes on every generation (the page cache may mix
 *      pages of two generations of one inode). What is cached (the kernel's
 *      pages, idle generated content) is served without a new check: a
 *      source changed under the mount is seen by the archive watch
 *      (live.c: re-indexed, its files' pages and shared content dropped);
 *      until then, or with no watch, its cached bytes are those it had
 *      when read and checked (with opens, each open checked again).
 * (Z3) An open that wanted direct_io (kind_pixels.c P9: O_NONBLOCK of
 *      pixels that need a decoder) cannot have it: such a READ fails with
 *      EAGAIN (a short read would be cached as the end of the file).
 *      -o opens=each keeps P9's prefix.
 * (Z4) The status files (kind_dotdir.c: status.json, errors.tsv) change
 *      while mounted: each lookup (or readdirplus entry) takes a snapshot
 *      and names it with an inode of its own (a new one only when the
 *      bytes differ), entry timeout 0 and attributes cached: an open file
 *      reads its snapshot whole and unchanged, the next path lookup sees
 *      the newest. A snapshot lives while the kernel holds its inode
 *      (lookups minus FORGETs), at most SNAP_MAX of them (older: ESTALE).
 * (Z5) The change feed (kind_changes.c) only grows and never moves a byte:
 *      its attributes are never cached, and a new size drops its pages.
 * (Z6) Query manifests of a live archive change while mounted and an open
 *      cannot pin the version it read (view_query.c V9): each lookup names
 *      a version, an inode whose bytes never change (view_query.c V11).
 */

/* An open file (fi->fh). */
struct dfs_file {
	unsigned kind;
	int fd;                /* source file, or -1 */
	char *buf;             /* generated content, or NULL */
	size_t len;
	uint64_t id;
	void *priv;            /* kind-specific open state */
	/* the caller, during open only (access.h: per_caller kinds) */
	struct dfs_caller *caller;
	int flags;             /* the open's flags (O_NONBLOCK: kind_pixels.c P9) */
	int direct_io;         /* set by an open: this open is direct_io */
};

/* an open that fills f->buf / f->len with generated content */
typedef int (*kind_gen_fn)(struct dfs *fs, uint64_t id, const struct node_view *nv,
			   struct dfs_file *f);

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
	/* instead of open: content generated into memory, once per inode
	 * while open and shared by its opens (kind_buf_open_shared; read and
	 * release are then kind_buf_read / kind_buf_release) */
	kind_gen_fn generate;
	int direct_io;
	int volatile_attr;     /* content may change while mounted */
	/* content depends on the caller (access.h A8): for a caller whose view
	 * is filtered, generated for that open alone (f->caller), direct_io */
	int per_caller;
};

/*
 * The FUSE side of a view whose nodes are not in the index (index/view.h):
 * for the kinds in `kinds`, ll.c asks these hooks instead of the index
 * (no index_node for getattr/open, no xattrs), and for the directory kinds
 * among them (`dir_kinds`) lookup and readdir too. Registered in fs/views.c,
 * one line per view. Replies and timeouts: as documented at each hook.
 * Threading: any FUSE thread.
 */
struct view_fs_ops {
	const char *name;    /* the view's name at the root (view.h) */
	uint32_t kinds;      /* bit k: kind k is this view's */
	uint32_t dir_kinds;  /* bit k: kind k is one of its directories */
	/* st of inode ino as caller c sees it; 0 or negative error */
	int (*stat)(struct dfs *fs, struct dfs_caller *c, uint64_t ino, struct stat *st);
	/* entry name in directory parent, e filled (timeouts included) */
	int (*lookup)(struct dfs *fs, struct dfs_caller *c, uint64_t parent,
		      const char *name, struct fuse_entry_param *e);
	/* replies to req itself on success (returns 0) */
	int (*readdir)(struct dfs *fs, struct dfs_caller *c, fuse_req_t req, uint64_t ino,
		       size_t size, off_t off, int plus);
	/* malloc()ed target of a symlink; -EINVAL for other kinds */
	int (*readlink)(struct dfs *fs, uint64_t ino, char **out);
	/* the kernel dropped nlookup references to ino (any kind of the view) */
	void (*forget)(struct dfs *fs, uint64_t ino, uint64_t nlookup);
};
/* The view owning kind k when its nodes are not in the index, else NULL. */
const struct view_fs_ops *dfs_view_of(unsigned kind);

/* a kind_ops of a kind that is served from memory or a source, no flags */
#define KIND_OPS(nm, ga, op, rd, rl) \
	{ .name = (nm), .getattr = (ga), .open = (op), .read = (rd), .release = (rl) }
/* a kind_ops of a kind whose content is generated and shared while open */
#define KIND_GENERATED(nm, ga, gen) \
	{ .name = (nm), .getattr = (ga), .generate = (gen), .read = kind_buf_read, \
	  .release = kind_buf_release }

extern const struct kind_ops *const dfs_kinds[KIND_MAX];
/*
 * kinds.c: -o files=LIST (groups dcm, json, npy, png, level, fhir, volume,
 * separated by ',' or '+'; dcm required): the kinds the mount serves and
 * lists (index_opts.kinds): every kind of dfs_kinds but the derived files
 * of the groups not named. list NULL: all. 0 or -EINVAL (msg one line).
 * dfs_files_group: 1 when word[0, len) is a group's name.
 */
int dfs_files_mask(const char *list, uint32_t *mask, char *msg, size_t msglen);
int dfs_files_group(const char *word, size_t len);
/* kind_dcm.c: sources/<relative path> (view_sources.c) */
extern const struct kind_ops kind_source;
extern const struct kind_ops kind_dir, kind_dcm, kind_status, kind_errors;
extern const struct kind_ops kind_npy, kind_png;
/* kind_pixels.c: "dicomfs --decode-worker", the decoder process: the jobs
 * of the mount that need GDCM, by frame tag (worker.h W5):
 * DFS_WJOB_PIXELS decodes pixel data (kind_pixels.c), DFS_WJOB_JSON
 * generates an <instance>.json (kind_json.c: dfs_json_worker_job, which
 * answers the frame; 0 to go on, 1 when the channel is unusable).
 * (K1) GDCM (dicomfs-gdcm.so) is never loaded into the mount process for
 *      .json: only decoder processes run dcmjson_build (tests/mount_json.sh
 *      checks /proc/PID/maps). */
enum { DFS_WJOB_PIXELS = 0, DFS_WJOB_JSON = 1 };
int dfs_decode_worker_main(void);
struct worker;
struct worker_head;
int dfs_json_worker_job(struct worker *ch, const struct worker_head *hd);
/* kind_pixels.c: the mount's decoder pool (worker.h), or NULL */
struct worker_pool *dfs_pixels_decoders(struct dfs *fs);
/*
 * kind_pixels.c: fs->px, from fs->cache_bytes; decoders are children of
 * exe (NULL: decode in-process), started on first use. 0 or -errno.
 * dfs_pixels_free after the FUSE loop (no file open any more).
 */
int dfs_pixels_new(struct dfs *fs, const char *exe);
void dfs_pixels_free(struct dfs *fs);
/*
 * kind_dcm.c: open the source of instance node nv and verify it is the
 * indexed file (source.h R2: regular, size, mtime, inode). On failure one
 * errors.tsv line, its reason prefixed with what ("" or "json: "), and
 * -ENOENT (gone) or -EIO. Close with source_close(fs->src, f).
 */
int dfs_source_open(struct dfs *fs, const struct node_view *nv, const char *what,
		    struct source_file *f);
/* dfs_source_open, reporting failures only when report (readahead.c RA3) */
int dfs_source_check(struct dfs *fs, const struct node_view *nv, struct source_file *f,
		     int report);
/*
 * readahead.c: read-ahead across files (RA1-RA5 there). dfs_ra_new before
 * the session loop (-ENOMEM); dfs_ra_note(id, dir, kind) from a FUSE thread
 * that served a READ at offset 0 of id's file of kind (KIND_DCM, KIND_SOURCE)
 * listed in directory dir (cheap;
 * starts the thread on first use); dfs_ra_pushed: files stored so far;
 * dfs_ra_stop after the loop (joins the thread: before the session goes);
 * dfs_ra_free (stops it too).
 */
int dfs_ra_new(struct dfs *fs);
/* RA1: read-ahead is on (-o no_read_ahead / DICOMFS_NO_AHEAD not given,
 * zero-message opens on): cheap, checked before any lookup for a note */
static inline int dfs_ra_wanted(const struct dfs *fs)
{
	return fs->ra && fs->read_ahead && fs->zero_open;
}
void dfs_ra_note(struct dfs *fs, uint64_t id, uint64_t dir, unsigned kind);
uint64_t dfs_ra_pushed(struct dfs *fs);
void dfs_ra_stop(struct dfs *fs);
void dfs_ra_free(struct dfs *fs);
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
/*
 * kind_pixels.c: a read of <instance>.npy of node id without an open
 * handle (zero-message opens, FUSE_CAP_NO_OPEN_SUPPORT): from the inode
 * alone, as open + read + release: the first read of a compressed image
 * decodes it, later ones answer from the decode cache; native images
 * are read from the source per read. Returns 1, having replied nothing,
 * when this .npy needs an open handle (a compressed image over a quarter
 * of -o cache_size, which an open holds instead of decoding it per read);
 * else as kind_ops.read (0: replied; a negative error to reply with).
 * The caller checks access (access.h) as for an open.
 */
int dfs_npy_read_noopen(struct dfs *fs, uint64_t id, fuse_req_t req, size_t size, off_t off);
/* kind_volume.c: volume.nii, volume.npy */
extern const struct kind_ops kind_volume_nii, kind_volume_npy;
/* kind_json.c: <instance>.json (DICOM JSON Model) */
extern const struct kind_ops kind_json;
/* kind_level.c: the level files */
extern const struct kind_ops kind_series_json, kind_study_json, kind_patient_json,
	kind_study_fhir, kind_patient_fhir;
/* kind_level.c: fs->lcache; 0 or -ENOMEM. fini: NULL-safe, idempotent. */
int dfs_level_init(struct dfs *fs);
/* kind_volume.c: the volume plan cache (fs->vcache), like the level cache */
int dfs_volume_init(struct dfs *fs);
void dfs_volume_fini(struct dfs *fs);

/*
 * kinds.c: the ids of the entries of directory dir_id whose kind is in mask
 * (bit k: KIND k), in listing order. Pass KBIT(KIND_DIR) for the
 * subdirectories, KBIT(KIND_DCM) for the instances (each once: every
 * instance has its .dcm). 0 or a negative error; out->v is malloc()ed
 * (free it) and NULL on error.
 */
#define KBIT(k) (1u << (k))
struct dfs_ids {
	uint64_t *v;
	size_t n, cap;
	uint32_t mask;
	int err;
};
int dfs_children(struct dfs *fs, uint64_t dir_id, uint32_t mask, struct dfs_ids *out);
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
 * view_query.c: query/<level>/<Keyword=value>/... (dynamic ids, see index.h).
 * The directories, manifests and symlinks of the query space bypass the
 * node lookup of the other kinds: ll.c routes them here. dfs_query_start
 * (0 or -ENOMEM) makes the view's state, after catalog_start;
 * dfs_query_stop frees it (before catalog_stop; safe if never started).
 */
extern const struct kind_ops kind_qmanifest, kind_qother;
int dfs_query_start(struct dfs *fs);
void dfs_query_stop(struct dfs *fs);
/* The LMDB map must grow (index/store.h S3): drop the results and the
 * view's catalog reference (taken again by the next request, V4). */
void dfs_query_release(struct dfs *fs);
int dfs_query_kind(unsigned kind);
int dfs_query_stat(struct dfs *fs, struct dfs_caller *c, uint64_t ino, struct stat *st);
int dfs_query_lookup(struct dfs *fs, struct dfs_caller *c, uint64_t parent,
		     const char *name, struct fuse_entry_param *e);
int dfs_query_readdir(struct dfs *fs, struct dfs_caller *c, fuse_req_t req, uint64_t ino,
		      size_t size, off_t off, int plus);
int dfs_query_readlink(struct dfs *fs, uint64_t ino, char **out);
void dfs_query_forget(struct dfs *fs, uint64_t ino, uint64_t nlookup);

/* serve / free f->buf[0, f->len): the read and release of kinds whose
 * content is generated into memory on open. kind_buf_release also drops a
 * shared content (f->priv, from kind_buf_open_shared). */
int kind_buf_read(struct dfs *fs, struct dfs_file *f, fuse_req_t req,
		  size_t size, off_t off);
void kind_buf_release(struct dfs_file *f);
/*
 * kinds.c: open f with content generated by gen (an open that fills
 * f->buf/f->len) once per inode (f->id, f->kind) while open, shared by
 * every open of it (shared_buf.h SB1..SB5); f->buf then points into the
 * shared content, f->priv holds it. Read with kind_buf_read, release with
 * kind_buf_release. 0 or negative error (gen's, or -ENOMEM / -EIO per SB4).
 */
int kind_buf_open_shared(struct dfs *fs, uint64_t id, const struct node_view *nv,
			 struct dfs_file *f, kind_gen_fn gen);

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

/*
 * kind_changes.c: the change feed (index.h I10): .dicomfs/changes.jsonl
 * (kind_changes, also since/<seq>.jsonl) and the directories changes/ and
 * changes/since/ (a view outside the index: fs/views.c).
 */
extern const struct kind_ops kind_changes, kind_changes_dir;
int dfs_changes_stat(struct dfs *fs, struct dfs_caller *c, uint64_t ino, struct stat *st);
int dfs_changes_lookup(struct dfs *fs, struct dfs_caller *c, uint64_t parent,
		       const char *name, struct fuse_entry_param *e);
int dfs_changes_readdir(struct dfs *fs, struct dfs_caller *c, fuse_req_t req, uint64_t ino,
			size_t size, off_t off, int plus);

/*
 * live.c: the archive changes while mounted (index.h I9). dfs_live_start
 * (after the session is mounted and the index reopened writable, before
 * the loop): starts the index's live thread with the hooks that tell the
 * kernel (notify_inval_entry / notify_delete / notify_inval_inode) and
 * drop what the caches built from the old generation; rescan_s as
 * index_live_start. dfs_live_stop: before the caches are freed; safe when
 * not started. 0 or negative errno (msg one line).
 */
int dfs_live_start(struct dfs *fs, int rescan_s, char *msg, size_t msglen);
void dfs_live_stop(struct dfs *fs);
/* The caches of generated content forget the old generation (live.c
 * calls them after each batch): level files and xattr sets (kind_level.c),
 * volume plans (kind_volume.c), decoded pixels of instance id (kind_pixels.c;
 * an entry in use stays until released). */
void dfs_level_cache_drop(struct dfs *fs);
/* kind_dotdir.c (Z4): the snapshot table; 0 or -ENOMEM; free: NULL-safe */
int dfs_snaps_new(struct dfs *fs);
void dfs_snaps_free(struct dfs *fs);
/* a snapshot of status kind k (KIND_STATUS, KIND_ERRORS) for an entry
 * reply: *ino its inode, one more lookup counted; 0 or negative error */
int dfs_snap_take(struct dfs *fs, unsigned k, uint64_t *ino);
/* 1 when ino names a snapshot (a status kind, id not ID_DOTDIR) */
int dfs_snap_is(uint64_t ino);
/* the kernel forgot n lookups of snapshot ino */
void dfs_snap_forget(struct dfs *fs, uint64_t ino, uint64_t n);
/* reply to req with up to size bytes at off of snapshot ino; 0 or a
 * negative error (-ESTALE: no longer held) */
int dfs_snap_read(struct dfs *fs, uint64_t ino, fuse_req_t req, size_t size, off_t off);
void dfs_volume_drop(struct dfs *fs);
void dfs_pixels_forget(struct dfs *fs, uint64_t id);

/*
 * kind_anon.c: the files of anon/ nodes (NODE_F_ANON). The .dcm of an anon
 * instance (kind_dcm.c hands its nodes over): getattr, open (*out), read
 * (replies itself: 0, or a negative error to reply with), release.
 * dfs_anon_record: an instance's record as its files may show it: the
 * index's, or for an anon node the de-identified one, then owned by owner
 * (levelagg_own). 0 or a negative error.
 */
struct dfs_anon_open;
struct levelagg;
int dfs_anon_dcm_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
			 struct stat *st);
int dfs_anon_dcm_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		      struct dfs_anon_open **out);
int dfs_anon_dcm_read(struct dfs_anon_open *o, fuse_req_t req, size_t size, off_t off);
/* the anon .dcm's first bytes: its header and up to extra bytes after it
 * (*buf malloc()ed, *have bytes), the header's length and the file's */
int dfs_anon_dcm_prefix(struct dfs *fs, uint64_t id, const struct node_view *nv,
			size_t extra, uint8_t **buf, size_t *have, uint64_t *hlen,
			uint64_t *total);
void dfs_anon_dcm_release(struct dfs_anon_open *o);
int dfs_anon_record(struct dfs *fs, const struct node_view *nv, const void **rec,
		    size_t *len, struct levelagg *owner);

extern const struct fuse_lowlevel_ops dfs_ll_ops;

/* Fill st for inode ino; 0 or negative error. */
/* st of ino as caller c sees it (c NULL: as the owner does) */
int dfs_stat(struct dfs *fs, struct dfs_caller *c, uint64_t ino, struct stat *st);

#endif
