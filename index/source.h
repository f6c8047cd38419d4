/*
 * source.h - where the bytes of the archive come from.
 *
 * The index and the file kinds never open archive files themselves: they
 * ask the mount's source (after squashfuse's struct sqfs_input and
 * ratarmount's MountSource). A source lists the archive in key order for
 * the scan, opens an indexed instance and verifies it is the one that was
 * indexed, reads bytes, and may offer an fd (for splice and for handing
 * the file to a decoder process). The local folder (source_local.c) is the
 * first implementation; another one (a DICOMweb server, a tar file) is one
 * new file with a struct source_ops plus one line in source_registry[]
 * (source.c). (Today index_open still resolves the archive argument with
 * realpath() for the index's name and its "archive" meta before it calls
 * source_create: a spec that is not a folder needs that step to ask the
 * source for a stable name instead.)
 *
 * Design notes (invariants; code cites them as R1..R7)
 * (R1) walk() yields every regular file once, in key order: memcmp order
 *      of the relative paths (the key order of the index's "files" DB),
 *      so the scan merges it with the index in one pass. Problems (an
 *      unreadable directory, a dangling symlink, a loop) are reported
 *      through the problem callback, one line each, and are not fatal;
 *      only running out of memory is.
 * (R2) open() with an expectation verifies the file is the indexed one:
 *      a regular file with the indexed size and mtime, and the indexed
 *      inode when the record holds one (exp->ino != 0). Anything else is
 *      -EIO with why = "source changed since it was indexed (remount to
 *      re-index)"; a file that cannot be opened is -ENOENT (gone) or -EIO,
 *      why = "cannot open source: <strerror>". Without an expectation
 *      (the scan, which has just stat()ed the file) nothing is verified;
 *      a parser process's scan opens a directory's files through that
 *      directory's fd, kept from one file to the next (source_local.c
 *      scan_openat).
 * (R3) open() never blocks on what was swapped in: a FIFO, device or
 *      symlink put in the place of an indexed file gives -EIO at once.
 * (R4) read() fills the whole range or fails: 0, DFS_ETRUNC when the file
 *      ends first, or -errno. Any thread, any number at once.
 * (R5) struct source_file.fd is an fd of the open file when the source
 *      has one (splice, SCM_RIGHTS to a decoder), else -1: users must
 *      then go through read().
 * (R6) can_change: the source may change while mounted (the local folder
 *      can: R2 catches it per file). watch, when not NULL, reports changes
 *      as they happen (see struct source_ops).
 * (R7) A source is immutable after create (its fields are read-only), so
 *      every thread may use it without a lock; a struct source_file
 *      belongs to the thread that opened it until close. (The watch's own
 *      state is the watch thread's, started by watch, ended by unwatch;
 *      use_dir, when the source has it, is part of the making: called
 *      once, before walk.)
 * (R8) A watch reports paths, not events: fn gets a relative path (a file
 *      or a directory; "" for "anything may have changed", e.g. when the
 *      kernel's event queue overflowed) at least once after every change
 *      below it, and the caller re-walks that path (walk_under) to learn
 *      what it holds now. A directory moved in or out is one path. A file
 *      being written is reported when it is closed or moved into place
 *      (close_write / moved_to), not while it grows. fn runs on the watch
 *      thread and must not block for long. A watch started after a walk
 *      (the mount's) catches up: a directory whose mtime is not older
 *      than that walk's start (less a clock tick) is reported as it is
 *      watched, so a file created, renamed or removed before its
 *      directory's watch existed is still found (fn may then run on the
 *      thread calling watch, before it returns).
 * (R11) sizes_at_open: the walk cannot know sizes (a server lists UIDs, not
 *      bytes): its entries carry st_size 0, open() without an expectation
 *      sets f->size, and the scan takes the record's size from there and
 *      does not compare sizes to decide "unchanged" (mtime, inode, mode
 *      and owner still count). R2's size check stays: a file whose bytes
 *      differ in length from the indexed ones is "changed". A record of
 *      such a source whose bytes could not be had (EIO, ENOENT, EACCES, a
 *      timeout: the server, not the file) is parsed again at the next scan.
 * (R10) need: an open without an expectation (the scan) may give a file
 *      whose bytes are only partly there (a server's instance fetched up to
 *      its header): read() fetches what is missing by itself, but a user of
 *      the fd calls need(upto) first, which makes [0, upto) readable
 *      through the fd (0 or -errno; NULL: always whole).
 * (R12) walk_names: a walk for a scan that has nothing to compare (a
 *      first build: no records): the same files in the same order, but a
 *      file the directory listing already says is regular may come
 *      without its stat (st.st_mode 0: nothing of st is known; a real
 *      file's mode is never 0). The scan then takes it from the open file
 *      (fstat of the fd its open gives, the file the walk would have
 *      stat()ed: symlinks go the old way) or, where it opens nothing (a
 *      parser that died), from stat (R12's other op): one path lookup per
 *      file instead of two. NULL: walk.
 * (R9) permissions: the entries' modes and owners mean something per
 *      file (the local folder). A source without them (a server) is
 *      uniform for the access model (fs/access.h A3): no per-file check.
 *
 * Errors: 0 or negative errno / DFS_* (error.h).
 */
#ifndef DICOMFS_SOURCE_H
#define DICOMFS_SOURCE_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <errno.h>
#include <unistd.h>
#include "error.h"

struct strbuf;

struct source_opts {
	int follow_symlinks;   /* follow symlinks that leave the archive */
	/* a server (source_dicomweb.c); NULL/0: defaults */
	const char *cache_dir;         /* instance cache (default: <index>/cache) */
	uint64_t cache_bytes;          /* its bound (default 1 GiB) */
	const char *cafile;            /* CA certificates for TLS verification */
	const char *bearer_token_file; /* "Authorization: Bearer" from this file */
	const char *netrc_file;        /* basic auth from this netrc file */
	int timeout_s;                 /* a read's deadline (default 30) */
};

/* One file of the walk; rel is malloc()ed (freed by source_list_free). */
struct source_entry {
	char *rel;
	size_t rel_len;
	struct stat st;        /* of the file (symlinks followed); st_mode 0:
				* not known (R12, walk_names) */
};

struct source_list {
	struct source_entry *v;
	size_t n, cap;
};

/* The key order of R1: memcmp, then the shorter first. */
static inline int source_key_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	return c ? c : al < bl ? -1 : al > bl;
}

/* What the index knows of an instance (R2); ino 0: not known. */
struct source_expect {
	uint64_t size;
	int64_t mtime_ns;
	uint64_t ino;
};

struct source_file {
	int fd;                /* R5 */
	uint64_t size;
	void *priv;            /* the source's own state, or NULL */
};

/* A problem of the walk: path relative to the archive, why one line. */
typedef void (*source_problem_fn)(void *ctx, const char *path, const char *why);
/* A change seen by a watch: the relative path that changed. */
typedef void (*source_change_fn)(void *ctx, const char *rel, size_t rel_len);

struct source_ops {
	const char *name;      /* "local" */
	/*
	 * Make an instance for the archive spec (a folder, a URL, ...):
	 * -ENOTSUP when the spec is not of this kind (the registry tries the
	 * next one), other errors with a line in msg.
	 */
	int (*create)(const char *spec, const struct source_opts *o, void **inst,
		      char *msg, size_t msglen);
	void (*destroy)(void *inst);
	/* R1: the files, sorted, into *out (empty on entry) */
	int (*walk)(void *inst, struct source_list *out, source_problem_fn problem,
		    void *ctx);
	/* R2, R3: exp may be NULL; why (may be NULL) gets one line */
	int (*open)(void *inst, const char *rel, size_t rel_len,
		    const struct source_expect *exp, struct source_file *f,
		    char *why, size_t whylen);
	int (*read)(void *inst, const struct source_file *f, void *buf, size_t len,
		    uint64_t off);   /* R4 */
	void (*close)(void *inst, struct source_file *f);
	/*
	 * Optional (NULL: changes are found by the next mount's walk and, per
	 * file, by R2). A watch starts a thread (inotify for a folder, a
	 * ChangeFeed poll for a server) that calls fn for every path added,
	 * changed or removed while mounted (R8), until unwatch; the caller
	 * (index/live.c) re-walks those paths, re-parses what changed and
	 * commits a new index generation. 0, or -ENOSPC when the kernel's
	 * watch limit is reached (nothing started: the caller polls instead),
	 * or another negative errno. Not across fork(): call it in the
	 * process that serves.
	 */
	int (*watch)(void *inst, source_change_fn fn, void *ctx);
	/* Stop the watch thread (fn is not called after it returns); NULL
	 * when watch is NULL; a no-op when no watch runs. */
	void (*unwatch)(void *inst);
	/*
	 * R1 for one path only: the regular files at rel (a file: itself;
	 * a directory: every file below it; gone: none) into *out (empty on
	 * entry), sorted. rel "" is the whole archive (walk). NULL: callers
	 * use walk and keep what is under rel.
	 */
	int (*walk_under)(void *inst, const char *rel, size_t rel_len,
			  struct source_list *out, source_problem_fn problem, void *ctx);
	/* Optional (R12): walk, regular files maybe without their stat */
	int (*walk_names)(void *inst, struct source_list *out, source_problem_fn problem,
			  void *ctx);
	/* Optional (R12): the stat of rel, symlinks followed; 0 or -errno */
	int (*stat)(void *inst, const char *rel, size_t rel_len, struct stat *st);
	int can_change;        /* R6 */
	int sizes_at_open;     /* R11 */
	int permissions;       /* R9 */
	/* The archive's stable name (the index's "archive" meta and default
	 * directory): the folder's real path, the server's URL. */
	const char *(*name_of)(void *inst);
	/* Optional: the index directory, once, before walk (R7): a source
	 * that keeps files of its own (a cache) puts them under it unless its
	 * options say where. */
	int (*use_dir)(void *inst, const char *index_dir, char *msg, size_t msglen);
	/* Optional: the source's state as JSON members ("\"k\": v," lines of
	 * status.json); any thread. */
	void (*status)(void *inst, struct strbuf *out);
	/* Optional (R10): [0, upto) of f readable through f->fd. */
	int (*need)(void *inst, struct source_file *f, uint64_t upto);
};

/* A source: its operations and the instance they act on. */
struct source {
	const struct source_ops *ops;
	void *inst;
};

/* source.c: the registry (one line a source) */
extern const struct source_ops *const source_registry[];
extern const struct source_ops source_local;
extern const struct source_ops source_dicomweb;

/*
 * The options a parser process needs to make the same source (its
 * "--parse-worker ARCHIVE TAGS OPTS" argument): "key=value" lines.
 * source_opts_parse keeps pointers into arg (which must outlive o).
 */
/* R4 for a source whose files have an fd: pread until len bytes are read
 * (0), the file ends (DFS_ETRUNC) or an error (-errno). (Inline: the
 * sources use it and source.c's registry uses the sources, no call circle.) */
static inline int source_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;
	while (len) {
		ssize_t r = pread(fd, p, len, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return DFS_ETRUNC;
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

int source_opts_arg(const struct source_opts *o, struct strbuf *out);
int source_opts_parse(char *arg, struct source_opts *o);

/* The first source of the registry that takes spec. */
int source_create(const char *spec, const struct source_opts *o, struct source *out,
		  char *msg, size_t msglen);
void source_destroy(struct source *s);
void source_list_free(struct source_list *l);

static inline int source_walk(const struct source *s, struct source_list *out,
			      source_problem_fn problem, void *ctx)
{
	return s->ops->walk(s->inst, out, problem, ctx);
}
/* R12: walk_names when the source has it, else walk */
static inline int source_walk_names(const struct source *s, struct source_list *out,
				    source_problem_fn problem, void *ctx)
{
	return (s->ops->walk_names ? s->ops->walk_names : s->ops->walk)(s->inst, out, problem, ctx);
}
/* R12: the stat of an entry, from the walk, or asked now (st_mode 0) */
static inline int source_entry_stat(const struct source *s, const struct source_entry *e,
				    struct stat *st)
{
	if (e->st.st_mode) {
		*st = e->st;
		return 0;
	}
	return s->ops->stat ? s->ops->stat(s->inst, e->rel, e->rel_len, st) : -ENOSYS;
}
/* The files at or below rel (R1; walk_under, or walk filtered). */
int source_walk_under(const struct source *s, const char *rel, size_t rel_len,
		      struct source_list *out, source_problem_fn problem, void *ctx);
/* 1 when key k is rel itself or below it ("" holds everything). */
static inline int source_under(const char *rel, size_t rl, const char *k, size_t kl)
{
	if (!rl)
		return 1;
	return kl >= rl && memcmp(k, rel, rl) == 0 && (kl == rl || k[rl] == '/');
}

static inline int source_open(const struct source *s, const char *rel, size_t rel_len,
			      const struct source_expect *exp, struct source_file *f,
			      char *why, size_t whylen)
{
	return s->ops->open(s->inst, rel, rel_len, exp, f, why, whylen);
}
static inline int source_read(const struct source *s, const struct source_file *f,
			      void *buf, size_t len, uint64_t off)
{
	return s->ops->read(s->inst, f, buf, len, off);
}
static inline void source_close(const struct source *s, struct source_file *f)
{
	s->ops->close(s->inst, f);
}

#endif
