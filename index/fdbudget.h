/*
 * fdbudget.h - the file descriptors of the dicomfs process, as one budget.
 *
 * A mount holds fds for many things at once: its own (the FUSE channel,
 * LMDB, the log, the archive folder, inotify), the splice pipes libfuse
 * makes per FUSE thread, the channels of its worker processes (worker.h)
 * and the source files of open files, of decodes and of decode-ahead
 * (kind_pixels.c P10). The kernel sends RELEASE asynchronously, so the
 * files the users have closed may still hold their source fds: without a
 * budget, many readers under a low `ulimit -n` made opens fail with EMFILE.
 * One process-wide budget (the fd table is per process) decides instead.
 *
 * Design notes (invariants; code cites them as F1..F6)
 * (F1) The limit is RLIMIT_NOFILE, its soft value raised to the hard one
 *      at fdb_init (the daemon's first act after parsing options). Before
 *      fdb_init (unit tests, the parser processes) nothing is counted and
 *      every take succeeds.
 * (F2) fdb_threads(n) bounds the FUSE threads so that 3 fds each (the
 *      splice pipe pair libfuse keeps per thread, and one transient source
 *      fd of a read, F4) fit beside the process's own fds, the worker
 *      channels (F3), FDB_SLACK fds for short-lived use (a socketpair of a
 *      spawn, /proc reads, the log) and at least FDB_MIN_HELD held ones.
 * (F3) A worker pool reserves one fd per child it may have alive at once
 *      (max + max_suspect, worker.h) when it is made and gives them back
 *      when freed: a spawn never fails for want of an fd the budget gave
 *      away elsewhere.
 * (F4) Held fds: a source file kept open across requests (an open .dcm or
 *      native .npy, a decode's source) takes one with fdb_take, which
 *      never waits: when the budget is spent the source opens the file
 *      without keeping it (source_local.c: verified, closed, reopened and
 *      verified again per read, a transient fd covered by F2). So a user's
 *      open never sees EMFILE and no FUSE thread waits for an fd.
 *      An open used and closed within one request (a .json's source, a
 *      decode's) runs under fdb_transient(1) instead: it keeps its fd
 *      without taking one, as the per-thread transient fd of F2.
 * (F5) Optional work (decode-ahead) asks fdb_spare(n) first and skips its
 *      work unless n fds are free besides the held ones; it never makes a
 *      user's open go without an fd.
 * (F6) fdb_serving() recounts the process's own fds once the mount is
 *      set up (LMDB, FUSE channel, log opened since fdb_init), before any
 *      request: held fds are then the only ones that vary besides F2/F3.
 * Thread-safe (one mutex); cheap (a counter).
 */
#ifndef DICOMFS_FDBUDGET_H
#define DICOMFS_FDBUDGET_H

#define FDB_SLACK 24       /* F2: short-lived fds */
#define FDB_MIN_HELD 16    /* F2: held fds at least */
#define FDB_PER_THREAD 3   /* F2: a splice pipe pair and a transient fd */

/* F1: raise the soft limit, count the fds open now. */
void fdb_init(void);
/* F2: how many FUSE threads of want fit (at least 2); want when not inited. */
unsigned fdb_threads(unsigned want);
/* F6: recount the process's own fds (call before serving). */
void fdb_serving(void);
/* F3: reserve / give back n fds for worker channels. */
void fdb_reserve(int n);
void fdb_unreserve(int n);
/* F4: 1 when one more fd may be held (counted), 0 when spent. */
int fdb_take(void);
void fdb_put(void);
/* F4: while on, this thread's source opens keep their fd without taking
 * from the budget: an open, used and closed within one request (the
 * transient fd F2 gives every thread). Returns the previous state. */
int fdb_transient(int on);
int fdb_is_transient(void);
/* F5: 1 when at least n fds are free now (nothing taken). */
int fdb_spare(int n);
/* F1: 1 once fdb_init has run (the mount); 0 in the parser processes and
 * unit tests, where nothing is counted. */
int fdb_counting(void);
/* For status and tests: the limit, the fds that may be held, held now. */
void fdb_stats(int *limit, int *cap, int *held);

#endif
