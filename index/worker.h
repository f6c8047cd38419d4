/*
 * worker.h - the one pool of contained child processes of dicomfs.
 *
 * Code that may crash, hang or allocate without bound on untrusted input
 * (GDCM parsing headers for the scan, GDCM decoding pixels for .npy/.png)
 * runs in children of this executable started in a "mode" (argv[1], e.g.
 * "--parse-worker"). The parent talks to a child over one socket with
 * framed messages; a child that dies, misbehaves or misses a deadline
 * costs the job it had and is replaced. Users: index/scan.c (parsing:
 * batches of jobs, one child per scan thread) and fs/kind_pixels.c
 * (decoding: an fd per job, children shared by the FUSE threads).
 *
 * Design notes (invariants; code cites them as W1..W8)
 * (W1) A job's deadline is enforced by the pool, never by the child: each
 *      worker_recv_head() on the parent side starts a deadline of the
 *      spec's timeout_ms, which the frame's payload (worker_recv_body) and
 *      any output flushed meanwhile share. A missed deadline is
 *      DFS_ETIMEOUT; the caller then discards the child (W4).
 * (W2) Resource limits (address space, no core files) are applied by the
 *      pool with prlimit() right after the spawn, before the child can be
 *      sent a job. A child may lower its own soft limits per job (the
 *      parser does), never raise them. Under AddressSanitizer (which
 *      reserves terabytes of shadow memory) the address-space limit is off.
 * (W3) A child inherits only its channel (fd 0, read and write) and
 *      /dev/null on fds 1 and 2; worker_child_begin() closes every other fd
 *      it may have inherited, before it touches its input.
 * (W4) A child whose job failed (EOF, error, deadline, protocol error) is
 *      never reused: worker_put(..., WORKER_KILL) kills (SIGKILL) and reaps
 *      it and reports its wait status; the next worker_get() spawns a
 *      replacement. So one bad input costs one job, never the pool.
 * (W5) Frames: struct worker_head (tag, len, aux) then len payload bytes.
 *      An fd may ride with a frame (SCM_RIGHTS, parent to child only); it
 *      arrives with the read that brings the frame's first byte, so a
 *      sender passes an fd only when no other frame is in flight towards
 *      that child (request/response use). An fd that arrives where none is
 *      accepted (on the parent side) is closed at once.
 * (W6) worker_queue() buffers frames; a side flushes what it queued before
 *      it blocks reading. So a parent queues a batch and reads answers; a
 *      child answers a batch at once when it has no whole job buffered.
 * (W7) A failed spawn breaks the pool for good: every later worker_get()
 *      fails at once (the parser then works in-process before the mount
 *      serves; the decoders fail that open with EAGAIN), and the spec's
 *      broken_msg is logged once. A pool without an executable is broken
 *      from the start (DICOMFS_INPROCESS=1, a benchmark knob).
 * (W9) worker_get() waits for a child at most the spec's get_timeout_ms
 *      (when > 0), then fails with DFS_ETIMEOUT; a busy pool is not a
 *      broken one (W7): the caller fails that one job, it does not fall
 *      back to working in-process. Every wait of a parent thread on a child
 *      thus has a deadline: get (W9), send and receive (W1); the reaping
 *      after SIGKILL (W4) is the one untimed wait, and it ends when the
 *      kernel delivers the kill.
 * (W8) worker_pool_free() closes the channel of every idle child and waits
 *      for it (a child exits at end of input); it must not be called while
 *      a child is out (between worker_get and worker_put).
 *
 * Errors: 0 or negative errno / DFS_* (error.h): -EPIPE when the peer
 * closed, DFS_ETIMEOUT (W1), -EPROTO for a malformed frame, -ENOMEM.
 * Threading: a pool is shared by any number of threads (its own lock); a
 * struct worker belongs to the one thread that got it until worker_put.
 * The child side (worker_child_*) runs in the child's single thread.
 */
#ifndef DICOMFS_WORKER_H
#define DICOMFS_WORKER_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include "strbuf.h"

struct worker_spec {
	const char *exe;           /* this executable; NULL: no children (W7) */
	const char *const *args;   /* argv[1..], NULL-terminated: the mode first */
	uint64_t as_limit;         /* RLIMIT_AS of each child; 0: none (W2) */
	int max;                   /* children alive at once (>= 1) */
	int timeout_ms;            /* per frame awaited by the parent (W1) */
	int get_timeout_ms;        /* worker_get waits at most this (W9); 0: no
				    * limit (callers that are not FUSE threads) */
	const char *broken_msg;    /* logged once when a spawn fails, or NULL */
};

/* A frame's header (W5); len payload bytes follow. */
struct worker_head {
	uint64_t tag;              /* the caller's (job index, ...) */
	uint64_t len;              /* payload bytes */
	int32_t aux;               /* the caller's (a status, ...) */
	uint32_t pad;
};

/* One end of a channel: the parent's handle of a child, or a child's own. */
struct worker {
	pid_t pid;                 /* the child (parent side); 0 in the child */
	int fd;                    /* the channel */
	int passed_fd;             /* fd received with a frame, or -1 (W5) */
	int timeout_ms;            /* -1 in the child: it waits for work */
	int64_t deadline_ns;       /* of the frame being read (W1) */
	struct { char *p; size_t len, pos, cap; } in;
	struct strbuf out;         /* queued frames (W6) */
};

struct worker_pool;

/* 0 or -ENOMEM; the spec is copied (strings too). */
int worker_pool_new(const struct worker_spec *spec, struct worker_pool **out);
void worker_pool_free(struct worker_pool *p);   /* W8; NULL is fine */

/*
 * An idle child, spawned when none is idle and fewer than max are alive;
 * waits while max children are out (up to get_timeout_ms, W9). 0,
 * DFS_ETIMEOUT (W9: fail the job), or another negative error when the
 * pool is broken (W7): the caller works in-process then.
 */
int worker_get(struct worker_pool *p, struct worker **out);
enum { WORKER_KEEP = 0, WORKER_KILL = 1 };
/*
 * Give a child back: WORKER_KEEP makes it idle; WORKER_KILL (after any
 * failed job, W4) kills and reaps it and stores its wait status in
 * *status (if not NULL; 0 when it could not be reaped).
 */
void worker_put(struct worker_pool *p, struct worker *w, int how, int *status);
/* "signal 6 (Aborted)" / "exit status 1" for a wait status */
void worker_status_text(int status, char *buf, size_t len);

/* Queue one frame (W6): 0 or -ENOMEM. */
int worker_queue(struct worker *w, uint64_t tag, int32_t aux,
		 const struct iovec *iov, int niov);
/* Send what is queued, then this frame (with fd if >= 0, W5); on the
 * parent side under a fresh deadline (W1). 0, -EPIPE, DFS_ETIMEOUT, -errno. */
int worker_send(struct worker *w, uint64_t tag, int32_t aux,
		const struct iovec *iov, int niov, int fd);
/* Send what is queued (W6); the same errors. */
int worker_flush(struct worker *w);
/* The next frame's header (flushes first, W6; starts the deadline, W1):
 * 0, -EPIPE (peer gone, also a clean end of input), DFS_ETIMEOUT, -errno. */
int worker_recv_head(struct worker *w, struct worker_head *h);
/* n payload bytes into dst (straight from the socket when large). */
int worker_recv_body(struct worker *w, void *dst, size_t n);
/* The fd that came with the last frame (ownership passes), or -1. */
int worker_take_fd(struct worker *w);

/*
 * Child side: call first in a child's main (W3): closes inherited fds,
 * ignores SIGPIPE and makes self the channel on fd 0.
 */
void worker_child_begin(struct worker *self);
void worker_child_end(struct worker *self);   /* frees its buffers */

#endif
