/*
 * kind_pixels.c - <instance>.npy (decoded pixels) and <instance>.png (an
 * 8-bit preview of the first frame). Conventions: index/dicom/pixels.h.
 *
 * Design notes
 * - getattr derives both sizes from the indexed attributes (px_info):
 *   nothing is read or decoded.
 * - Native sources (uncompressed, not deflated): every read is a pread of
 *   the pixel bytes it needs, converted on the fly (byte swap, unpacking,
 *   masking, colour); when the stored bytes already are the .npy bytes the
 *   reply splices them from the source file. No GDCM, no copy of the file.
 * - Other sources are decoded by GDCM (dcmshim_decode_pixels) into a cache
 *   of decoded instances keyed by instance id and bounded by -o cache_size
 *   (bytes of entries no open file uses). One decode per instance at a time:
 *   later openers wait on the entry's condition variable. An open .npy
 *   holds its entry, so a file bigger than the cache is decoded once per
 *   open, not per read. Buffers of evicted entries are kept in a small pool
 *   and reused; each FUSE thread reuses its file and decoder buffers.
 * - A decode failure is EIO on open plus one errors.tsv line and log line;
 *   the failure is remembered (no retry until remount).
 * Bad files fail fast (issue 12; P6..P8)
 * (P6) Every decode has a budget scaled to the image (decode_budget): CPU
 *      time DECODE_CPU_FLOOR_MS + DECODE_CPU_MS_PER_MS per million samples
 *      (of the .npy, plus half the source's bytes). A decoder past its CPU
 *      budget (worker.h W10) is killed and the file is bad: EIO, an
 *      errors.tsv line and a log line, remembered. CPU time, so a busy
 *      machine slows a decode down but does not make its file bad.
 * (P7) Good files do not queue behind bad ones: a decoder that has used
 *      half its budget is suspect (W11): reniced, out of its slot (the next
 *      decode gets a fresh decoder at full priority; SUSPECT_DECODERS
 *      suspects at most), and it must end within twice its budget of wall
 *      time (at least DECODE_WALL_MIN_MS) or it is killed, the file bad as
 *      above. The budget is several times what the codecs need, so a good
 *      image is never suspect. One slot per CPU (a decode is CPU-bound);
 *      idle decoders beyond one per CPU exit (W12). A decode that is not
 *      suspect is bounded by a wall deadline of DECODE_WALL_SAFE_MS (or 4
 *      budgets): past it the machine is too busy, EAGAIN for that open
 *      (logged, not remembered).
 * (P8) A decoder that dies of SIGKILL it was not sent by the mount (the
 *      OOM killer, an administrator) costs no file: the decode is retried
 *      once on a fresh decoder (W4); a second death marks the file bad.
 *      A file marked bad answers EIO at once until remount (its cache entry
 *      stays PC_ERROR).
 * Memory (issue 11; P1..P4)
 * (P1) Every decoded byte in the mount process is counted against
 *      -o cache_size (pc->bytes): cached entries, entries held by open
 *      .npy files and volumes, decodes in progress (reserved before the
 *      buffer is allocated) and the frame buffer of a native .png preview.
 *      Buffers kept for reuse (the pool) are dropped before anyone waits.
 * (P2) When the bound is reached a new decode waits for room up to
 *      PX_ROOM_WAIT_MS (condition variable, deadline), then fails with
 *      ENOMEM for that file only. An image larger than the whole cache is
 *      admitted only into an empty cache.
 * (P3) Nothing the header claims drives an allocation past -o max_image
 *      (default cache_size/2): a decoded .npy (compressed source), a source
 *      file read whole for a decoder, or a .png frame above it is refused
 *      with EIO (as any image that cannot be decoded) and one errors.tsv
 *      line. Native .npy files need no buffer (read and converted per
 *      read) and are not limited.
 * (P4) Waits with deadlines only: on another opener's decode of the same
 *      instance (decode_wait_ms, then EIO), for room
 *      (P2), on a decoder (worker.h W1/W6). Per-thread buffers are
 *      not counted (TLS_KEEP each, used only for sources without an fd and
 *      for the in-process benchmark knob); nor is the .png output, in the
 *      shared, bounded table of generated content (shared_buf.h SB4).
 * (P5) Fairness: at most max_waiting FUSE threads (half of -o max_threads;
 *      under a low fd limit, which makes the threads fewer, all but 8 of them)
 *      are inside a decode or wait for one; an open of a .npy/.png/volume
 *      that would need one more fails at once with EAGAIN, so the other
 *      threads stay free for metadata and cached data. A decoder busy for
 *      DECODER_WAIT_MS is EAGAIN for that open too (not remembered).
 * (P10) Decode-ahead: when a FUSE thread has decoded an instance (a cache
 *      miss), the other instances of its series (its directory, in listing
 *      order after it, at most AHEAD_PER_SERIES) are decoded ahead by
 *      ahead_n background threads of the mount (one per CPU, at most
 *      AHEAD_MAX, started on first use) sharing that series, each on a
 *      decoder of its own (px->ahead, reniced to AHEAD_NICE), so the
 *      series is decoded in parallel on idle cores: it takes the next
 *      instance only while a CPU is idle (machine_busy: fewer runnable
 *      tasks than CPUs; else it looks again after AHEAD_IDLE_MS), so on a
 *      busy machine it neither competes nor leaves work half done for
 *      the readers to wait on. A decode-ahead entry is
 *      in the cache while it decodes (PC_DECODING, e->ahead): a reader of
 *      it waits for it while its decoder makes progress (ahead_wait_locked:
 *      a quarter of a CPU per AHEAD_POLL_MS) and takes over when it is
 *      starved (a busy machine) or late: the entry is then orphaned (out
 *      of the table, freed by its last holder) and its result dropped. So
 *      a serial reader no longer decodes what decode-ahead is decoding.
 *      A result is also dropped when a dfs_pixels_forget ran since before
 *      its index snapshot (px->forgets) or the decode failed (the direct
 *      read decodes again and reports it; a decoder killed costs only that
 *      work). It never evicts: it decodes only while the cache holds at
 *      most half its bound with the new entry, and only while the machine
 *      has MemAvailable above the bound (checked per instance). On by
 *      default; off with -o no_decode_ahead, DICOMFS_NO_AHEAD=1 (a
 *      benchmark knob) or DICOMFS_INPROCESS. Its decoders' channels are
 *      reserved in the fd budget (fdbudget.h F3) and it decodes only while
 *      AHEAD_FD_SPARE fds are free (F5), so many readers at a low
 *      `ulimit -n` never see EMFILE for it (mount_limits). A queue of
 *      AHEAD_QUEUE series; a full queue drops the note. Unmounting kills
 *      the decodes-ahead in flight (no wait).
 * (P11) Decoder processes keep their heap between decodes
 *      (DECODER_HEAP_KEEP: mmap and trim thresholds), so the codecs'
 *      buffers are not faulted in afresh for every image.
 * (P12) A new cache entry's buffer (ENTRY_POPULATE_MIN or more) is faulted
 *      in by one madvise(MADV_POPULATE_WRITE) (entry_alloc): on a VM a fresh
 *      4 KiB page costs ~27 us by fault (3.5 ms per 512 KiB), ~16 us so.
 * Every wait of a FUSE thread here, with its bound:
 *   another opener's decode of the same entry   decode_wait_ms: all of these
 *   a decode-ahead of it (P10)                   while it progresses; decode_wait_ms
 *   room in the cache (P2)                       PX_ROOM_WAIT_MS
 *   a free decoder process (worker.h W9)         DECODER_WAIT_MS
 *   a decoder's answer (worker.h W1, P6)         the decode's wall deadline,
 *                                                twice with a retry (P8)
 *   a shared .png being built (shared_buf.h SB1) SB_WAIT_MS
 *   reading a source (source.h)                  O_NONBLOCK; a regular file
 * - Every byte comes through the mount's source (source.h): native files
 *   are opened and verified by dfs_source_open (R2) and spliced when the
 *   source has an fd (R5); decoders get the fd or the bytes.
 * What is known before decoding (issue 16)
 * (P9) An open with O_NONBLOCK (file(1) opens so; content sniffers may)
 *      of a .npy or .png whose pixels need a decoder never starts or
 *      waits for one: the open is direct_io (no page cache, so a short
 *      read is not taken for the end of the file) and serves only the
 *      bytes computable from the index (px_prefix): the .npy header, the
 *      PNG signature and IHDR chunk. A read that starts within them gets
 *      the part within them (a short read), one past them EAGAIN: the
 *      data is not ready without blocking. Native sources need no decoder
 *      and are served whole; so are opens without O_NONBLOCK.
 * - State is per mount (struct dfs_pixels at fs->px, made and freed by
 *   main.c): the cache under its lock, the decoder pool (worker.h) and the
 *   key of the per-thread buffers. No globals here but constants.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "dcmshim.h"
#include "error.h"
#include "fdbudget.h"
#include "log.h"
#include "pixels.h"
#include "pxdecode.h"
#include "record.h"
#include "source.h"
#include "worker.h"

#define PC_BUCKETS 4096
#define PC_MAX_ENTRIES 100000
#define POOL_N 4
#define TLS_KEEP ((size_t)64 << 20)   /* per-thread buffers kept up to this */
#define MIN_DECODERS 2          /* decoder slots: one per CPU (P7) */
#define MAX_DECODERS 8
#define SUSPECT_DECODERS 8      /* suspects beside them (P7, worker.h W11) */
/* P6: a decode's budget; decoding runs about 4x slower under ASan */
#ifdef __SANITIZE_ADDRESS__
#define DECODE_SLOWER 4
#else
#define DECODE_SLOWER 1
#endif
/* other jobs of the decoders (JSON, fs.h): per frame awaited (W1) */
#define DECODE_TIMEOUT_MS (8000 * DECODE_SLOWER)
#define DECODE_CPU_FLOOR_MS (1000 * DECODE_SLOWER)
#define DECODE_CPU_MS_PER_MS (500 * DECODE_SLOWER)   /* per million samples */
#define DECODE_WALL_MIN_MS 5000    /* a suspect's (P7) */
#define DECODE_WALL_SAFE_MS 30000   /* any decode's (P7) */
#define PX_ROOM_WAIT_MS 10000
#define DECODER_WAIT_MS 60000   /* for a free decoder process (worker.h W9) */
#define AHEAD_PER_SERIES 256    /* P10 */
#define AHEAD_QUEUE 64
#define AHEAD_NICE 19
#define AHEAD_MAX 4             /* P10: decode-ahead threads at most */
#define AHEAD_POLL_MS 10        /* P10: a reader waiting on decode-ahead */
#define AHEAD_IDLE_MS 20        /* P10: no idle CPU: look again after this */
#define DECODER_HEAP_KEEP (32 << 20)   /* P11 */
#define ENTRY_POPULATE_MIN (256 << 10) /* P12 */
#define AHEAD_FD_SPARE 16       /* P10, fdbudget.h F5 */

enum { PC_DECODING, PC_READY, PC_ERROR };

struct pc_entry {
	uint64_t id;
	int state, err;
	int transient;          /* PC_ERROR to forget when unused (ENOMEM, EAGAIN) */
	unsigned refs;
	unsigned char *buf;
	size_t len, cap;
	struct pc_entry *hnext, *prev, *next;
	int ahead;              /* P10: decode-ahead's, decoding in slot ahead - 1 */
	int orphan;             /* P10: out of the table, freed at its last ref */
	pthread_cond_t cond;
};

/* The pixel state of one mount (fs->px): dfs_pixels_new / dfs_pixels_free. */
struct dfs_pixels {
	pthread_mutex_t lock;                 /* guards the cache fields below */
	struct pc_entry *bucket[PC_BUCKETS];  /* lock */
	struct pc_entry lru;                  /* lock; sentinel: next = newest */
	uint64_t bytes;                       /* lock */
	uint64_t cap;                         /* read-only: -o cache_size */
	uint64_t max_image;                   /* read-only: -o max_image (P3) */
	int inprocess;                        /* read-only: DICOMFS_INPROCESS */
	pthread_cond_t room;                  /* lock: bytes went down (P2) */
	unsigned waiting, max_waiting;        /* lock; read-only: P5 */
	size_t n;                             /* lock */
	struct { unsigned char *p; size_t cap; } pool[POOL_N];   /* lock */
	pthread_key_t tls_key;                /* read-only; each thread's buffers */
	struct worker_pool *decoders;         /* its own lock (worker.h) */
	/* P10: decode-ahead; ahead (its own lock) used by the ahead thread
	 * only; the rest under lock */
	struct worker_pool *ahead;            /* NULL: off */
	uint64_t forgets;                     /* lock: dfs_pixels_forget calls */
	struct { uint64_t dir, start; } aq[AHEAD_QUEUE];   /* lock: ring */
	unsigned aq_head, aq_n;               /* lock */
	uint64_t aq_last;                     /* lock: the last series noted */
	int ahead_started, ahead_stop;        /* lock: threads started; stop */
	unsigned ahead_n;                     /* read-only: threads (P10) */
	pid_t ahead_pid[AHEAD_MAX];           /* lock: each thread's decoder, decoding */
	pthread_t ahead_thread[AHEAD_MAX];    /* started: joined by free */
	pthread_cond_t ahead_cond;            /* lock: a note, a job's end, stop */
	struct {                              /* lock: the series decoded ahead */
		uint64_t *v;                  /* its instances; NULL: none */
		size_t n, pos, left;          /* next at pos, left still to do */
		unsigned users;               /* threads decoding one of them */
		int stop;
	} job;
	int job_building;                     /* lock: a thread lists a series */
	struct dfs *fs;                       /* read-only: for the thread */
};

static void ahead_stop(struct dfs_pixels *px);
static void ahead_note_locked(struct dfs_pixels *px, uint64_t dir, uint64_t id);
static void ahead_wait_locked(struct dfs_pixels *px, struct pc_entry *e, long wait_ms);
static void orphan_locked(struct dfs_pixels *pc, struct pc_entry *e);
static void unref_locked(struct dfs_pixels *pc, struct pc_entry *e);

static void lru_unlink(struct pc_entry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_front(struct dfs_pixels *pc, struct pc_entry *e)
{
	e->next = pc->lru.next;
	e->prev = &pc->lru;
	pc->lru.next->prev = e;
	pc->lru.next = e;
}

static unsigned char *pool_take_locked(struct dfs_pixels *pc, size_t need, size_t *cap)
{
	int best = -1;
	for (int i = 0; i < POOL_N; i++)
		if (pc->pool[i].p && pc->pool[i].cap >= need && pc->pool[i].cap / 2 <= need &&
		    (best < 0 || pc->pool[i].cap < pc->pool[best].cap))
			best = i;
	if (best < 0)
		return NULL;
	unsigned char *p = pc->pool[best].p;
	*cap = pc->pool[best].cap;
	pc->pool[best].p = NULL;
	return p;
}

static void pool_put_locked(struct dfs_pixels *pc, unsigned char *p, size_t cap)
{
	int slot = -1;
	for (int i = 0; i < POOL_N; i++)
		if (!pc->pool[i].p) {
			slot = i;
			break;
		} else if (slot < 0 || pc->pool[i].cap < pc->pool[slot].cap) {
			slot = i;  /* replace the smallest */
		}
	if (cap > pc->cap / 2 + 1 || (pc->pool[slot].p && pc->pool[slot].cap >= cap)) {
		free(p);
		return;
	}
	free(pc->pool[slot].p);
	pc->pool[slot].p = p;
	pc->pool[slot].cap = cap;
}

static void remove_locked(struct dfs_pixels *pc, struct pc_entry *e)
{
	struct pc_entry **pp = &pc->bucket[e->id % PC_BUCKETS];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(e);
	if (e->buf) {
		pc->bytes -= e->cap;
		pool_put_locked(pc, e->buf, e->cap);
	}
	pthread_cond_destroy(&e->cond);
	free(e);
	pc->n--;
}

void dfs_pixels_forget(struct dfs *fs, uint64_t id)
{
	struct dfs_pixels *pc = fs->px;
	if (!pc)
		return;
	pthread_mutex_lock(&pc->lock);
	pc->forgets++;   /* P10: a decode-ahead in flight is dropped */
	for (struct pc_entry *e = pc->bucket[id % PC_BUCKETS]; e; e = e->hnext)
		if (e->id == id) {
			if (e->refs == 0 && e->state != PC_DECODING)
				remove_locked(pc, e);
			break;
		}
	pthread_mutex_unlock(&pc->lock);
}

/* evict unused entries until extra more bytes fit (P1) */
static void evict_extra_locked(struct dfs_pixels *pc, uint64_t extra)
{
	struct pc_entry *e = pc->lru.prev;
	while (e != &pc->lru && (pc->bytes + extra > pc->cap || pc->n > PC_MAX_ENTRIES)) {
		struct pc_entry *prev = e->prev;
		if (e->refs == 0 && e->state != PC_DECODING &&
		    (e->buf || pc->n > PC_MAX_ENTRIES))
			remove_locked(pc, e);
		e = prev;
	}
}

static void evict_locked(struct dfs_pixels *pc)
{
	evict_extra_locked(pc, 0);
}

static void abs_deadline(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Count need bytes against the bound, waiting for room up to the deadline
 * (P1, P2): 0 or -ENOMEM. */
static int room_reserve_locked(struct dfs_pixels *pc, uint64_t need)
{
	struct timespec dl;
	abs_deadline(&dl, PX_ROOM_WAIT_MS);
	for (;;) {
		evict_extra_locked(pc, need);
		if (pc->bytes + need > pc->cap)
			for (int i = 0; i < POOL_N; i++) {
				free(pc->pool[i].p);
				pc->pool[i].p = NULL;
			}
		if (pc->bytes + need <= pc->cap || pc->bytes == 0) {
			pc->bytes += need;
			return 0;
		}
		if (pthread_cond_timedwait(&pc->room, &pc->lock, &dl) == ETIMEDOUT)
			return -ENOMEM;
	}
}

static void room_release_locked(struct dfs_pixels *pc, uint64_t n)
{
	pc->bytes -= n;
	pthread_cond_broadcast(&pc->room);
}

static void pc_put(struct dfs_pixels *pc, struct pc_entry *e)
{
	pthread_mutex_lock(&pc->lock);
	e->refs--;
	evict_locked(pc);
	pthread_cond_broadcast(&pc->room);
	pthread_mutex_unlock(&pc->lock);
}

/* P12: a new entry buffer's pages faulted in by one madvise instead of one
 * fault per 4 KiB page while the decoder's answer is copied in (about 40%
 * cheaper on this kind of VM); best effort (Linux 5.14). */
static unsigned char *entry_alloc(size_t n)
{
	unsigned char *p = malloc(n);
#ifdef MADV_POPULATE_WRITE
	if (p && n >= ENTRY_POPULATE_MIN) {
		uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095;
		uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)4095;
		if (e > a)
			madvise((void *)a, e - a, MADV_POPULATE_WRITE);
	}
#endif
	return p;
}

/* ---- per-thread buffers ---- */

struct tls_bufs {
	unsigned char *file, *dec;
	size_t file_cap, dec_cap;
	struct px_scratch scratch;
};

static void tls_free(void *p)
{
	struct tls_bufs *t = p;
	free(t->file);
	free(t->dec);
	px_scratch_free(&t->scratch);
	free(t);
}

static struct tls_bufs *tls(struct dfs_pixels *px)
{
	struct tls_bufs *t = pthread_getspecific(px->tls_key);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (t)
			pthread_setspecific(px->tls_key, t);
	}
	return t;
}

static void tls_trim(struct tls_bufs *t)
{
	if (t->file_cap > TLS_KEEP) {
		free(t->file);
		t->file = NULL;
		t->file_cap = 0;
	}
	if (t->dec_cap > TLS_KEEP) {
		free(t->dec);
		t->dec = NULL;
		t->dec_cap = 0;
	}
}

static void *dec_alloc(void *ctx, size_t n)
{
	struct tls_bufs *t = ctx;
	if (t->dec_cap < n) {
		free(t->dec);
		t->dec = malloc(n);
		t->dec_cap = t->dec ? n : 0;
	}
	return t->dec;
}

/* ---- the mount's pixel state ---- */

int dfs_pixels_new(struct dfs *fs, const char *exe)
{
	struct dfs_pixels *px = calloc(1, sizeof(*px));
	/* DICOMFS_INPROCESS=1: decode in the mount process (a benchmark knob,
	 * contrib/bench/bench_containment.sh) */
	const char *args[] = { "--decode-worker", NULL };
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	int inprocess = getenv("DICOMFS_INPROCESS") != NULL;
	struct worker_spec ws = {
		.exe = inprocess ? NULL : exe, .args = args,
		/* P7: slots, besides the suspects'; idle ones kept: one per CPU */
		.max = n < MIN_DECODERS ? MIN_DECODERS : n > MAX_DECODERS ? MAX_DECODERS : (int)n,
		.max_suspect = SUSPECT_DECODERS,
		.keep_idle = n < 1 ? 1 : (int)n,
		.timeout_ms = DECODE_TIMEOUT_MS,
		.get_timeout_ms = DECODER_WAIT_MS,   /* W9, P4 */
		.broken_msg = "cannot start decoder processes: compressed images give EAGAIN until remount",
	};
	int rc;
	if (!px)
		return -ENOMEM;
	pthread_mutex_init(&px->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&px->room, &ca);
	pthread_cond_init(&px->ahead_cond, &ca);
	pthread_condattr_destroy(&ca);
	px->fs = fs;
	px->lru.next = px->lru.prev = &px->lru;
	px->cap = fs->cache_bytes;
	px->inprocess = inprocess;
	px->max_image = fs->max_image ? fs->max_image : fs->cache_bytes / 2;
	/* P5: half of -o max_threads, and when the fd limit made the threads
	 * fewer (fdbudget.h F2), all of them but 8 left for metadata */
	unsigned asked = fs->max_threads_asked ? fs->max_threads_asked : fs->max_threads;
	px->max_waiting = fs->max_threads >= 4 ? asked / 2 : 1;
	if (fs->max_threads >= 4 && px->max_waiting > fs->max_threads / 2 &&
	    px->max_waiting > fs->max_threads - 8)
		px->max_waiting = fs->max_threads > 16 ? fs->max_threads - 8 : fs->max_threads / 2;
	rc = -pthread_key_create(&px->tls_key, tls_free);
	if (rc) {
		pthread_mutex_destroy(&px->lock);
		free(px);
		return rc;
	}
	rc = worker_pool_new(&ws, &px->decoders);
	if (rc) {
		pthread_key_delete(px->tls_key);
		pthread_mutex_destroy(&px->lock);
		free(px);
		return rc;
	}
	const char *no_ahead = getenv("DICOMFS_NO_AHEAD");
	if (fs->decode_ahead && !inprocess && !(no_ahead && *no_ahead && strcmp(no_ahead, "0"))) {
		/* P10: decoders of its own, one per CPU; without them, no
		 * decode-ahead */
		struct worker_spec wa = ws;
		px->ahead_n = n < 1 ? 1 : n > AHEAD_MAX ? AHEAD_MAX : (unsigned)n;
		wa.max = wa.keep_idle = wa.max_suspect = (int)px->ahead_n;
		wa.broken_msg = NULL;
		if (worker_pool_new(&wa, &px->ahead))
			px->ahead = NULL;
	}
	fs->px = px;
	return 0;
}

struct worker_pool *dfs_pixels_decoders(struct dfs *fs)
{
	return fs->px ? fs->px->decoders : NULL;
}

/* After the FUSE loop: no entry is held, no decoder is out. */
void dfs_pixels_free(struct dfs *fs)
{
	struct dfs_pixels *px = fs->px;
	if (!px)
		return;
	ahead_stop(px);
	worker_pool_free(px->decoders);
	while (px->lru.next != &px->lru)
		remove_locked(px, px->lru.next);
	for (int i = 0; i < POOL_N; i++)
		free(px->pool[i].p);
	/* the other threads' buffers went with them (tls_free) */
	struct tls_bufs *t = pthread_getspecific(px->tls_key);
	if (t)
		tls_free(t);
	pthread_key_delete(px->tls_key);
	pthread_cond_destroy(&px->room);
	pthread_cond_destroy(&px->ahead_cond);
	pthread_mutex_destroy(&px->lock);
	free(px);
	fs->px = NULL;
}

/* ---- sources ---- */

/* px_pread_fn over an open source file (R4; short is EIO) */
struct px_src {
	const struct source *src;
	const struct source_file *f;
};

static int px_src_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct px_src *s = ctx;
	int rc = source_read(s->src, s->f, buf, len, off);
	return rc == DFS_ETRUNC ? -EIO : rc;
}

/* The whole source into t->file: 0, -ENOMEM, or -EIO with msg set. */
static int read_whole(const struct source *src, const struct source_file *sf, size_t size,
		      struct tls_bufs *t, char *msg, size_t msglen)
{
	if (t->file_cap < size) {
		free(t->file);
		t->file = malloc(size ? size : 1);
		t->file_cap = t->file ? size : 0;
	}
	if (!t->file)
		return -ENOMEM;
	int rc = source_read(src, sf, t->file, size, 0);
	if (rc) {
		snprintf(msg, msglen, "cannot read source: %s",
			 dfs_strerror(rc == DFS_ETRUNC ? -EIO : rc));
		return -EIO;
	}
	return 0;
}

/* The record and pixel description of an instance node. */
static int node_info(struct dfs *fs, const struct node_view *nv, struct px_info *pi,
		     const void **rec, size_t *rlen, const char **why)
{
	struct rec_head h;
	const void *val;
	size_t vlen;
	if (nv->rec->type != NODE_INSTANCE)
		return -ENOENT;
	int rc = index_file_record(fs->ix, nv->relpath, nv->rec->path_len, &val, &vlen);
	if (rc)
		return rc;
	if (rec_head_get(val, vlen, &h))
		return -EIO;
	rc = px_info_from_record(val, vlen, &h, pi, why);
	if (rec) {
		*rec = val;
		*rlen = vlen;
	}
	return rc;
}

static void relpath(const struct node_view *nv, char *rel, size_t cap)
{
	snprintf(rel, cap, "%.*s", (int)nv->rec->path_len, nv->relpath);
}

/* Decode of a whole file in memory into out (index/dicom/pxdecode.h). */
static int decode_buffer(const void *file, size_t size, const struct px_info *pi,
			 unsigned char *out, struct tls_bufs *t, char *msg, size_t msglen)
{
	return px_decode_file(file, size, pi, out, dec_alloc, t, msg, msglen);
}

/* ---- decoder processes ----
 * GDCM and its codecs assert (abort) on some malformed input, so decoding
 * runs in "dicomfs --decode-worker" children of the mount's decoder pool
 * (worker.h). A request is one frame: struct wreq, with the open source
 * passed along (SCM_RIGHTS, W5) or, for a source without an fd (R5), its
 * bytes as the rest of the payload. The answer is one frame: aux 0 and
 * the normalized .npy data, or aux = the error and its message. A child
 * that dies or runs past its budget (P6) costs that one decode (EIO) and
 * is replaced (W4); one killed from outside is retried once (P8).
 */

struct wreq {
	struct px_info pi;
	uint64_t size;
};

#define WMSG 220   /* bytes of an error message from a decoder */

/* P6, P7: the CPU budget (ms) of decoding an image, the wall deadline of a
 * suspect decode and of any decode */
struct decode_budget {
	int64_t cpu_ms;
	int suspect_ms, wall_ms;
	double msamples;
};

static struct decode_budget decode_budget(const struct px_info *pi, uint64_t size)
{
	struct decode_budget b;
	double samples = (double)pi->data_len / (pi->out_bytes ? pi->out_bytes : 1);
	b.msamples = (samples + (double)size / 2) / 1e6;
	b.cpu_ms = DECODE_CPU_FLOOR_MS + (int64_t)(b.msamples * DECODE_CPU_MS_PER_MS);
	int64_t wall = 2 * b.cpu_ms < DECODE_WALL_MIN_MS ? DECODE_WALL_MIN_MS : 2 * b.cpu_ms;
	b.suspect_ms = wall > 86400000 ? 86400000 : (int)wall;
	wall = 4 * b.cpu_ms < DECODE_WALL_SAFE_MS ? DECODE_WALL_SAFE_MS : 4 * b.cpu_ms;
	b.wall_ms = wall > 86400000 ? 86400000 : (int)wall;
	return b;
}

/* How long another opener waits for a decode of this image (P4): every
 * wait of the decoding thread, the decode twice (P8). */
static long decode_wait_ms(const struct px_info *pi, uint64_t size)
{
	return PX_ROOM_WAIT_MS + DECODER_WAIT_MS + 2L * decode_budget(pi, size).wall_ms;
}

/* One decode on one decoder of pool (px->decoders; or px->ahead, with
 * ahead set to px: P10, reniced, its pid in px->ahead_pid[slot] while it decodes so
 * that ahead_stop can kill it): 0, -ENOMEM, -EIO or -EAGAIN (msg set), 1: no
 * decoder process, or 2: the decoder was killed from outside (P8) */
static int decode_on(struct worker_pool *pool, struct dfs_pixels *ahead, int slot,
		     const struct source_file *sf, uint64_t size, const struct px_info *pi,
		     unsigned char *out, struct iovec *iov, char *msg, size_t msglen)
{
	struct worker *w;
	struct worker_head hd;
	struct decode_budget b = decode_budget(pi, size);
	char text[WMSG + 1];
	int rc = worker_get(pool, &w);
	if (!rc && ahead) {
		setpriority(PRIO_PROCESS, (id_t)w->pid, AHEAD_NICE);   /* best effort */
		pthread_mutex_lock(&ahead->lock);
		int stop = ahead->ahead_stop;
		if (!stop)
			ahead->ahead_pid[slot] = w->pid;
		pthread_mutex_unlock(&ahead->lock);
		if (stop) {
			worker_put(pool, w, WORKER_KEEP, NULL);
			snprintf(msg, msglen, "stopping");
			return -EAGAIN;
		}
	}
	if (rc == DFS_ETIMEOUT) {   /* W9: busy, not broken */
		snprintf(msg, msglen, "every decoder stayed busy for %d s", DECODER_WAIT_MS / 1000);
		return -EAGAIN;
	}
	if (rc)
		return 1;
	worker_set_budget(w, b.wall_ms, b.cpu_ms, b.suspect_ms);   /* P6, P7 */
	rc = worker_send(w, DFS_WJOB_PIXELS, 0, iov, 2, sf->fd);
	if (!rc)
		rc = worker_recv_head(w, &hd);
	if (!rc && hd.len != (hd.aux ? hd.len : pi->data_len))
		rc = -EPROTO;
	if (!rc && hd.aux && hd.len > WMSG)
		rc = -EPROTO;
	if (!rc)
		rc = worker_recv_body(w, hd.aux ? (void *)text : out, hd.len);
	if (ahead) {
		pthread_mutex_lock(&ahead->lock);
		ahead->ahead_pid[slot] = 0;   /* before the child can be reaped */
		pthread_mutex_unlock(&ahead->lock);
	}
	if (rc) {
		int st = 0, suspect = worker_was_suspect(w);
		double cpu = (double)worker_cpu_ms(w) / 1000;
		worker_put(pool, w, WORKER_KILL, &st);
		if (rc == DFS_EBUDGET || (rc == DFS_ETIMEOUT && suspect)) {   /* P6, P7: bad */
			snprintf(msg, msglen,
				 "cannot decode pixel data: the decoder ran past its budget "
				 "(%.1f s of CPU in %.1f s for %.2f million samples; used %.1f s; killed)",
				 (double)b.cpu_ms / 1000, (double)b.suspect_ms / 1000, b.msamples, cpu);
			return -EIO;
		}
		if (rc == DFS_ETIMEOUT) {   /* P7: starved, not the file's fault */
			snprintf(msg, msglen,
				 "the decoder got %.1f s of CPU in %.1f s (machine busy): killed, "
				 "not marked bad", cpu, (double)b.wall_ms / 1000);
			return -EAGAIN;
		}
		if (rc == -EPIPE && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) {   /* P8 */
			snprintf(msg, msglen,
				 "cannot decode pixel data: the decoder was killed from outside "
				 "(signal 9, twice)");
			return 2;
		}
		if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
			snprintf(msg, msglen,
				 "cannot decode pixel data: the decoder died on it (signal %d, %s)",
				 WTERMSIG(st), strsignal(WTERMSIG(st)));
		else
			snprintf(msg, msglen, "cannot decode pixel data: the decoder died on it");
		return -EIO;
	}
	worker_put(pool, w, WORKER_KEEP, NULL);
	if (hd.aux) {
		text[hd.len] = 0;
		snprintf(msg, msglen, "%s", text);
		return hd.aux == -ENOMEM ? -ENOMEM : -EIO;
	}
	return 0;
}

/* decode_on the decoders of direct reads */
static int decode_once(struct dfs_pixels *px, const struct source_file *sf, uint64_t size,
		       const struct px_info *pi, unsigned char *out, struct iovec *iov,
		       char *msg, size_t msglen)
{
	return decode_on(px->decoders, NULL, 0, sf, size, pi, out, iov, msg, msglen);
}

/* 0, -ENOMEM, -EIO or -EAGAIN (msg set), or 1: no decoder process, decode
 * in-process. rel names the file in the log. */
static int worker_decode(struct dfs_pixels *px, const struct source *src,
			 const struct source_file *sf, uint64_t size, const struct px_info *pi,
			 unsigned char *out, struct tls_bufs *t, const char *rel,
			 char *msg, size_t msglen)
{
	struct wreq rq = { *pi, size };
	struct iovec iov[2] = { { &rq, sizeof(rq) }, { NULL, 0 } };
	int rc;
	if (sf->fd < 0) {
		rc = read_whole(src, sf, (size_t)size, t, msg, msglen);
		if (rc)
			return rc;
		iov[1].iov_base = t->file;
		iov[1].iov_len = (size_t)size;
	}
	rc = decode_once(px, sf, size, pi, out, iov, msg, msglen);
	if (rc == 2) {   /* P8: once more, on a fresh decoder */
		dfs_log("%s: the decoder was killed from outside (signal 9): decoding again", rel);
		rc = decode_once(px, sf, size, pi, out, iov, msg, msglen);
	}
	return rc == 2 ? -EIO : rc;
}

int dfs_decode_worker_main(void)
{
	struct worker ch;
	struct tls_bufs t = { 0 };
	/* a passed fd reads through the local source (R5) */
	const struct source fdsrc = { &source_local, NULL };
	unsigned char *out = NULL;
	size_t out_cap = 0;
	int rc = 0;
	worker_child_begin(&ch);   /* W3; no core files: the pool's limits (W2) */
	/* P11: the codecs' buffers (GDCM's fragment copy, its decoded frame,
	 * CharLS/OpenJPEG state) come from the heap and stay mapped between
	 * decodes instead of being mmap()ed and faulted in afresh each time
	 * (a fresh page costs about as much as decoding it); what an idle
	 * decoder keeps beyond its live buffers is bounded by the trim
	 * threshold (DECODER_HEAP_KEEP). */
	mallopt(M_MMAP_THRESHOLD, DECODER_HEAP_KEEP);
	mallopt(M_TRIM_THRESHOLD, DECODER_HEAP_KEEP);
	dcmshim_init();
	for (;;) {
		struct worker_head hd;
		struct wreq rq;
		char msg[WMSG] = "";
		int st;
		rc = worker_recv_head(&ch, &hd);
		if (rc) {
			rc = rc == -EPIPE ? 0 : 1;   /* end of input: done */
			break;
		}
		if (hd.tag == DFS_WJOB_JSON) {
			/* another job type (fs.h): answered there */
			if (dfs_json_worker_job(&ch, &hd)) {
				rc = 1;
				break;
			}
			continue;
		}
		if (hd.tag != DFS_WJOB_PIXELS || hd.len < sizeof(rq) ||
		    worker_recv_body(&ch, &rq, sizeof(rq))) {
			rc = 1;
			break;
		}
		struct source_file sf = { .fd = worker_take_fd(&ch), .size = rq.size };
		size_t size = (size_t)rq.size;
		if (out_cap < rq.pi.data_len) {
			free(out);
			out = malloc((size_t)rq.pi.data_len);
			out_cap = out ? (size_t)rq.pi.data_len : 0;
		}
		if (sf.fd < 0 && hd.len - sizeof(rq) == rq.size) {
			/* the bytes came along */
			if (t.file_cap < size) {
				free(t.file);
				t.file = malloc(size ? size : 1);
				t.file_cap = t.file ? size : 0;
			}
			if (!t.file || worker_recv_body(&ch, t.file, size)) {
				rc = 1;
				break;
			}
			st = out ? 0 : -ENOMEM;
		} else if (sf.fd < 0 || hd.len != sizeof(rq)) {
			rc = 1;     /* a request this decoder cannot follow */
			break;
		} else {
			st = out ? read_whole(&fdsrc, &sf, size, &t, msg, sizeof(msg)) : -ENOMEM;
			close(sf.fd);
		}
		if (!st)
			st = decode_buffer(t.file, size, &rq.pi, out, &t, msg, sizeof(msg));
		tls_trim(&t);
		struct iovec iov = st ? (struct iovec){ msg, strlen(msg) }
				      : (struct iovec){ out, (size_t)rq.pi.data_len };
		if (worker_send(&ch, 0, st, &iov, 1, -1)) {
			rc = 1;
			break;
		}
		if (out_cap > TLS_KEEP) {
			free(out);
			out = NULL;
			out_cap = 0;
		}
	}
	/* parent gone: free what we hold (LeakSanitizer runs at exit) */
	worker_child_end(&ch);
	free(t.file);
	free(t.dec);
	px_scratch_free(&t.scratch);
	free(out);
	return rc;
}

/* Decode the instance into out (pi->data_len bytes). */
static int decode_into(struct dfs *fs, const struct node_view *nv, const char *rel,
		       const struct px_info *pi, unsigned char *out)
{
	struct tls_bufs *t = tls(fs->px);
	struct source_file sf;
	char msg[256] = "";
	int rc;

	if (!t)
		return -ENOMEM;
	int tr = fdb_transient(1);   /* fdbudget.h F4: closed before we return */
	rc = dfs_source_open(fs, nv, "", &sf);
	if (rc) {
		fdb_transient(tr);
		return rc;
	}
	size_t size = (size_t)nv->rec->size;
	rc = worker_decode(fs->px, fs->src, &sf, size, pi, out, t, rel, msg, sizeof(msg));
	if (rc == 1 && fs->px->inprocess) {
		/* DICOMFS_INPROCESS=1, the benchmark baseline: decode here */
		rc = read_whole(fs->src, &sf, size, t, msg, sizeof(msg));
		if (!rc)
			rc = decode_buffer(t->file, size, pi, out, t, msg, sizeof(msg));
	} else if (rc == 1) {
		/* no decoder process could start (worker.h W7): GDCM never
		 * runs in the mount otherwise; this open fails (logged) */
		snprintf(msg, sizeof(msg), "no decoder process could be started");
		rc = -EAGAIN;
	}
	tls_trim(t);
	source_close(fs->src, &sf);
	fdb_transient(tr);
	if (rc == -EAGAIN) {   /* P5: transient, this open only */
		dfs_log("%s: %s", rel, msg);
		return rc;
	}
	if (rc && rc != -ENOMEM)
		index_report_error(fs->ix, rel, msg[0] ? msg : "cannot decode pixel data");
	return rc == -ENOMEM ? rc : rc ? -EIO : 0;
}

/* The decoded pixels of instance id, held (pc_put when done). */
static int pc_get(struct dfs *fs, uint64_t id, const struct node_view *nv,
		  const struct px_info *pi, struct pc_entry **out)
{
	struct dfs_pixels *pc = fs->px;
	struct pc_entry *e;
	char rel[4096];
	int rc;

	pthread_mutex_lock(&pc->lock);
again:
	for (e = pc->bucket[id % PC_BUCKETS]; e; e = e->hnext)
		if (e->id == id)
			break;
	if (e && e->state == PC_DECODING && e->ahead) {
		/* P10: decode-ahead is at it: wait while it progresses, else
		 * take over (it is dropped when it ends) */
		if (pc->waiting >= pc->max_waiting) {
			pthread_mutex_unlock(&pc->lock);   /* P5 */
			return -EAGAIN;
		}
		e->refs++;
		pc->waiting++;
		ahead_wait_locked(pc, e, decode_wait_ms(pi, nv->rec->size));
		pc->waiting--;
		if (e->state == PC_READY && !e->orphan) {
			lru_unlink(e);
			lru_front(pc, e);
			*out = e;
			pthread_mutex_unlock(&pc->lock);
			return 0;
		}
		if (!e->orphan)
			orphan_locked(pc, e);
		unref_locked(pc, e);
		goto again;
	}
	if (e) {
		struct timespec dl;
		abs_deadline(&dl, decode_wait_ms(pi, nv->rec->size));
		if (e->state == PC_DECODING && pc->waiting >= pc->max_waiting) {
			pthread_mutex_unlock(&pc->lock);   /* P5 */
			return -EAGAIN;
		}
		e->refs++;
		lru_unlink(e);
		lru_front(pc, e);
		rc = 0;
		if (e->state == PC_DECODING) {
			pc->waiting++;
			while (e->state == PC_DECODING && !rc)   /* P4 */
				if (pthread_cond_timedwait(&e->cond, &pc->lock, &dl) == ETIMEDOUT)
					rc = -EIO;
			pc->waiting--;
		}
		if (rc || e->state == PC_ERROR) {
			rc = rc ? rc : e->err;
			e->refs--;
			if (!e->refs && e->transient && e->state == PC_ERROR)
				remove_locked(pc, e);
			evict_locked(pc);
			pthread_mutex_unlock(&pc->lock);
			return rc;
		}
		*out = e;
		pthread_mutex_unlock(&pc->lock);
		return 0;
	}
	size_t need = pi->data_len ? (size_t)pi->data_len : 1;
	if (pi->data_len > pc->max_image || nv->rec->size > pc->max_image) {   /* P3 */
		char why[200];
		pthread_mutex_unlock(&pc->lock);
		snprintf(why, sizeof(why),
			 "image too large: %ux%ux%u decodes to %llu bytes from %llu, max_image is %llu",
			 pi->rows, pi->cols, pi->frames, (unsigned long long)pi->data_len,
			 (unsigned long long)nv->rec->size, (unsigned long long)pc->max_image);
		relpath(nv, rel, sizeof(rel));
		index_report_error(fs->ix, rel, why);
		return -EIO;
	}
	if (pc->waiting >= pc->max_waiting) {   /* P5 */
		pthread_mutex_unlock(&pc->lock);
		return -EAGAIN;
	}
	pc->waiting++;
	rc = room_reserve_locked(pc, need);   /* P1, P2 */
	if (rc) {
		pc->waiting--;
		pthread_mutex_unlock(&pc->lock);
		return rc;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		pc->waiting--;
		room_release_locked(pc, need);
		pthread_mutex_unlock(&pc->lock);
		return -ENOMEM;
	}
	e->id = id;
	e->state = PC_DECODING;
	e->refs = 1;
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&e->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	e->hnext = pc->bucket[id % PC_BUCKETS];
	pc->bucket[id % PC_BUCKETS] = e;
	lru_front(pc, e);
	pc->n++;
	size_t cap = 0;
	unsigned char *buf = pool_take_locked(pc, need, &cap);
	pthread_mutex_unlock(&pc->lock);

	if (!buf) {
		buf = entry_alloc(need);
		cap = need;
	}
	relpath(nv, rel, sizeof(rel));
	index_count_decode(fs->ix);
	rc = buf ? decode_into(fs, nv, rel, pi, buf) : -ENOMEM;

	pthread_mutex_lock(&pc->lock);
	room_release_locked(pc, need);   /* now counted as the entry's cap */
	pc->waiting--;
	if (rc) {
		free(buf);
		e->state = PC_ERROR;
		e->err = rc;
		e->transient = rc == -ENOMEM || rc == -EAGAIN;
		e->refs--;
		pthread_cond_broadcast(&e->cond);
		if (e->transient && e->refs == 0)
			remove_locked(pc, e);   /* transient: try again next time */
		evict_locked(pc);
		pthread_mutex_unlock(&pc->lock);
		return rc;
	}
	e->buf = buf;
	e->len = (size_t)pi->data_len;
	e->cap = cap;
	pc->bytes += cap;
	e->state = PC_READY;
	pthread_cond_broadcast(&e->cond);
	evict_locked(pc);
	*out = e;
	if (!(nv->rec->flags & NODE_F_ANON))
		ahead_note_locked(pc, nv->rec->parent, id);   /* P10 */
	pthread_mutex_unlock(&pc->lock);
	return 0;
}

/* ---- decode-ahead (P10) ---- */

static void *ahead_main(void *arg);

struct ahead_arg {
	struct dfs_pixels *px;
	int slot;
};

/* A decode of instance id of series dir was a miss: queue its series. */
static void ahead_note_locked(struct dfs_pixels *px, uint64_t dir, uint64_t id)
{
	if (!px->ahead || px->ahead_stop || dir == px->aq_last || px->aq_n == AHEAD_QUEUE)
		return;
	while (px->ahead_started < (int)px->ahead_n) {
		/* first use: after daemonize (main.c), on a FUSE thread; every
		 * signal blocked in the new threads, as in the FUSE threads */
		struct ahead_arg *aa = malloc(sizeof(*aa));
		sigset_t all, old;
		int rc = ENOMEM;
		if (aa) {
			aa->px = px;
			aa->slot = px->ahead_started;
			sigfillset(&all);
			pthread_sigmask(SIG_BLOCK, &all, &old);
			rc = pthread_create(&px->ahead_thread[px->ahead_started], NULL, ahead_main, aa);
			pthread_sigmask(SIG_SETMASK, &old, NULL);
		}
		if (rc) {
			free(aa);
			break;
		}
		px->ahead_started++;
	}
	if (!px->ahead_started) {
		worker_pool_free(px->ahead);   /* no child is out */
		px->ahead = NULL;
		return;
	}
	unsigned slot = (px->aq_head + px->aq_n) % AHEAD_QUEUE;
	px->aq[slot].dir = dir;
	px->aq[slot].start = id;
	px->aq_n++;
	px->aq_last = dir;
	pthread_cond_broadcast(&px->ahead_cond);
}

/* Stop and join the threads (dfs_pixels_free), then free their pool. */
static void ahead_stop(struct dfs_pixels *px)
{
	pthread_mutex_lock(&px->lock);
	px->ahead_stop = 1;
	pthread_cond_broadcast(&px->ahead_cond);
	int started = px->ahead_started;
	for (int i = 0; i < AHEAD_MAX; i++)
		if (px->ahead_pid[i] > 0)
			kill(px->ahead_pid[i], SIGKILL);   /* our child, mid-decode: no wait */
	pthread_mutex_unlock(&px->lock);
	for (int i = 0; i < started; i++)
		pthread_join(px->ahead_thread[i], NULL);
	free(px->job.v);
	px->job.v = NULL;
	worker_pool_free(px->ahead);
	px->ahead = NULL;
}

/* MemAvailable (bytes) from /proc/meminfo; UINT64_MAX when unknown */
static uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[128];
	unsigned long long kb;
	uint64_t r = UINT64_MAX;
	if (!f)
		return r;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
			r = (uint64_t)kb * 1024;
			break;
		}
	fclose(f);
	return r;
}

/* P10: take e out of the table (a failed or abandoned decode-ahead): it
 * is freed by whoever drops its last reference (unref_locked). */
static void orphan_locked(struct dfs_pixels *pc, struct pc_entry *e)
{
	struct pc_entry **pp = &pc->bucket[e->id % PC_BUCKETS];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(e);
	pc->n--;
	e->orphan = 1;
	pthread_cond_broadcast(&e->cond);
}

static void unref_locked(struct dfs_pixels *pc, struct pc_entry *e)
{
	(void)pc;
	if (--e->refs == 0 && e->orphan) {
		pthread_cond_destroy(&e->cond);
		free(e);
	}
}

/* CPU time (ns) of process pid, -1 if unknown */
static int64_t proc_cpu_ns(pid_t pid)
{
	clockid_t c;
	struct timespec ts;
	if (pid <= 0 || clock_getcpuclockid(pid, &c) || clock_gettime(c, &ts))
		return -1;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* P10: a reader wants instance e that decode-ahead is decoding: wait
 * while its decoder makes progress (at least a quarter of a CPU over
 * each AHEAD_POLL_MS), at most wait_ms. Returns with e no longer decoding
 * (READY, or orphaned: failed) or, when decode-ahead is starved (a busy
 * machine: nice 19) or late, still decoding: the caller takes over. */
static void ahead_wait_locked(struct dfs_pixels *px, struct pc_entry *e, long wait_ms)
{
	struct timespec end, dl;
	int64_t last = -1;
	int blind = 0;
	abs_deadline(&end, wait_ms);
	while (e->state == PC_DECODING && !e->orphan) {
		abs_deadline(&dl, AHEAD_POLL_MS);
		if (dl.tv_sec > end.tv_sec || (dl.tv_sec == end.tv_sec && dl.tv_nsec > end.tv_nsec))
			dl = end;
		if (pthread_cond_timedwait(&e->cond, &px->lock, &dl) == ETIMEDOUT) {
			if (e->state != PC_DECODING || e->orphan)
				break;
			if (dl.tv_sec == end.tv_sec && dl.tv_nsec == end.tv_nsec)
				return;   /* late */
			int64_t cpu = proc_cpu_ns(px->ahead_pid[e->ahead - 1]);
			if (cpu < 0) {
				if (++blind >= 2)
					return;   /* no decoder at work */
				continue;
			}
			if (last >= 0 && cpu - last < (int64_t)AHEAD_POLL_MS * 1000000 / 4)
				return;   /* starved */
			last = cpu;
		}
	}
}

/* Decode instance id ahead on thread slot: 0 done or skipped, 1 stop this
 * series (no room, memory or fds short, stopping). The entry is in the
 * table while it decodes (PC_DECODING, ahead set): a reader of it waits
 * for it (ahead_wait_locked) instead of decoding it twice, or takes over. */
static int ahead_one(struct dfs *fs, uint64_t id, int slot)
{
	struct dfs_pixels *px = fs->px;
	struct node_view nv;
	struct px_info pi;
	struct source_file sf;
	char msg[WMSG + 1] = "";
	uint64_t gen;

	/* before the snapshot: a forget after it drops this decode */
	pthread_mutex_lock(&px->lock);
	gen = px->forgets;
	pthread_mutex_unlock(&px->lock);
	if (index_node(fs->ix, id, &nv) || (nv.rec->flags & NODE_F_ANON) ||
	    node_info(fs, &nv, &pi, NULL, NULL, NULL) || pi.native || !pi.data_len ||
	    pi.data_len > px->max_image || nv.rec->size > px->max_image)
		return 0;
	if (mem_available() <= px->cap)
		return 1;   /* memory pressure: off */
	if (!fdb_spare(AHEAD_FD_SPARE))
		return 1;   /* fds are short (fdbudget.h F5): skip, never take the last */
	size_t need = (size_t)pi.data_len, cap = 0;
	pthread_mutex_lock(&px->lock);
	struct pc_entry *e;
	for (e = px->bucket[id % PC_BUCKETS]; e; e = e->hnext)
		if (e->id == id)
			break;
	if (e) {
		pthread_mutex_unlock(&px->lock);
		return 0;   /* cached, or being decoded */
	}
	if (px->ahead_stop || px->bytes + need > px->cap / 2 || px->n >= PC_MAX_ENTRIES / 2 ||
	    !(e = calloc(1, sizeof(*e)))) {
		pthread_mutex_unlock(&px->lock);
		return 1;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->cond, &ca);
	pthread_condattr_destroy(&ca);
	e->id = id;
	e->state = PC_DECODING;
	e->ahead = slot + 1;
	e->refs = 1;   /* ours until the decode ends */
	e->hnext = px->bucket[id % PC_BUCKETS];
	px->bucket[id % PC_BUCKETS] = e;
	lru_front(px, e);
	px->n++;
	px->bytes += need;   /* P1: counted while decoding */
	unsigned char *buf = pool_take_locked(px, need, &cap);
	pthread_mutex_unlock(&px->lock);
	if (!buf) {
		buf = entry_alloc(need);
		cap = need;
	}
	int rc = buf ? 0 : -ENOMEM;
	struct tls_bufs *t = tls(px);
	if (!rc && !t)
		rc = -ENOMEM;
	if (!rc)
		rc = dfs_source_open(fs, &nv, "", &sf);
	if (!rc) {
		struct wreq rq = { pi, nv.rec->size };
		struct iovec iov[2] = { { &rq, sizeof(rq) }, { NULL, 0 } };
		if (sf.fd < 0) {
			rc = read_whole(fs->src, &sf, (size_t)nv.rec->size, t, msg, sizeof(msg));
			iov[1].iov_base = t->file;
			iov[1].iov_len = (size_t)nv.rec->size;
		}
		if (!rc)
			rc = decode_on(px->ahead, px, slot, &sf, nv.rec->size, &pi, buf, iov,
				       msg, sizeof(msg));
		source_close(fs->src, &sf);
		tls_trim(t);
	}
	pthread_mutex_lock(&px->lock);
	room_release_locked(px, need);
	if (rc || e->orphan || gen != px->forgets) {
		/* dropped: failed (a direct read decodes again and reports it),
		 * abandoned by a reader, or forgotten */
		if (buf)
			pool_put_locked(px, buf, cap);
		if (!e->orphan)
			orphan_locked(px, e);
		unref_locked(px, e);
		pthread_mutex_unlock(&px->lock);
		return rc == -ENOMEM;
	}
	e->buf = buf;
	e->len = need;
	e->cap = cap;
	px->bytes += cap;
	e->ahead = 0;
	e->state = PC_READY;
	e->refs--;
	pthread_cond_broadcast(&e->cond);
	evict_locked(px);
	pthread_mutex_unlock(&px->lock);
	return 0;
}

/* The instances of series dir after start, in listing order, as the job
 * (lock held on entry and return; dropped while listing) */
static void ahead_job_locked(struct dfs_pixels *px, uint64_t dir, uint64_t start)
{
	struct dfs_ids ids;
	px->job_building = 1;
	pthread_mutex_unlock(&px->lock);
	int rc = dfs_children(px->fs, dir, KBIT(KIND_DCM), &ids);
	index_request_end(px->fs->ix);   /* I6: no old snapshot pinned */
	pthread_mutex_lock(&px->lock);
	px->job_building = 0;
	if (rc)
		return;
	if (ids.n < 2 || px->job.v) {
		free(ids.v);
		return;
	}
	size_t pos = 0;
	while (pos < ids.n && ids.v[pos] != start)
		pos++;
	px->job.v = ids.v;
	px->job.n = ids.n;
	px->job.pos = (pos + 1) % ids.n;
	px->job.left = ids.n - 1 < AHEAD_PER_SERIES ? ids.n - 1 : AHEAD_PER_SERIES;
	px->job.users = 0;
	px->job.stop = 0;
	pthread_cond_broadcast(&px->ahead_cond);
}

/* P10: no idle CPU now: more runnable tasks than CPUs (/proc/loadavg's
 * running count, this thread included) */
static int machine_busy(void)
{
	FILE *f = fopen("/proc/loadavg", "re");
	double l1, l5, l15;
	int run = 0, all = 0;
	if (!f)
		return 0;
	int n = fscanf(f, "%lf %lf %lf %d/%d", &l1, &l5, &l15, &run, &all);
	fclose(f);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	return n == 5 && cpus > 0 && run > cpus;
}

/* One of ahead_n threads: the job's instances in turn, then the next
 * queued series; only while a CPU is idle. */
static void *ahead_main(void *arg)
{
	struct ahead_arg aa = *(struct ahead_arg *)arg;
	struct dfs_pixels *px = aa.px;
	struct worker *w;
	free(arg);
	/* its decoder started now, ready when a CPU is idle */
	if (worker_get(px->ahead, &w) == 0) {
		setpriority(PRIO_PROCESS, (id_t)w->pid, AHEAD_NICE);
		worker_put(px->ahead, w, WORKER_KEEP, NULL);
	}
	pthread_mutex_lock(&px->lock);
	while (!px->ahead_stop) {
		if (px->job.v && px->job.left && !px->job.stop) {
			pthread_mutex_unlock(&px->lock);
			int busy = machine_busy();
			pthread_mutex_lock(&px->lock);
			if (busy) {
				struct timespec dl;
				abs_deadline(&dl, AHEAD_IDLE_MS);
				pthread_cond_timedwait(&px->ahead_cond, &px->lock, &dl);
				continue;
			}
			if (!px->job.v || !px->job.left || px->job.stop || px->ahead_stop)
				continue;
			uint64_t id = px->job.v[px->job.pos];
			px->job.pos = (px->job.pos + 1) % px->job.n;
			px->job.left--;
			px->job.users++;
			pthread_mutex_unlock(&px->lock);
			int stop = ahead_one(px->fs, id, aa.slot);
			index_request_end(px->fs->ix);   /* I6 */
			pthread_mutex_lock(&px->lock);
			px->job.users--;
			if (stop)
				px->job.stop = 1;
			pthread_cond_broadcast(&px->ahead_cond);
			continue;
		}
		if (px->job.v && !px->job.users) {   /* done */
			free(px->job.v);
			px->job.v = NULL;
		}
		if (!px->job.v && !px->job_building && px->aq_n) {
			uint64_t dir = px->aq[px->aq_head].dir, start = px->aq[px->aq_head].start;
			px->aq_head = (px->aq_head + 1) % AHEAD_QUEUE;
			px->aq_n--;
			ahead_job_locked(px, dir, start);
			continue;
		}
		pthread_cond_wait(&px->ahead_cond, &px->lock);
	}
	pthread_mutex_unlock(&px->lock);
	return NULL;
}

/* ---- open files ----
 * An open .npy, and a dfs_pixsrc of the other kinds, hold the instance's
 * data bytes: native sources as an open source file, read and converted
 * per read; others as a decode cache entry.
 */

struct dfs_pixsrc {
	struct px_info pi;
	struct dfs_pixels *px;
	const struct source *src;
	struct source_file sf;  /* native: sf.fd >= 0 or opened */
	int opened;
	struct pc_entry *ent;   /* decoded */
	int prefix_only;        /* P9: nothing held, the prefix is served */
};

/* Hold the data of the instance described in h->pi: 0, -ENOENT, -EIO, -ENOMEM. */
static int hold_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		     struct dfs_pixsrc *h)
{
	int rc;
	h->px = fs->px;
	h->src = fs->src;
	if (h->pi.native) {
		rc = dfs_source_open(fs, nv, "", &h->sf);
		h->opened = !rc;
		return rc;
	}
	/* an anon/ instance's pixels are its original's: one decode, one
	 * cache entry, one verdict for both (P8) */
	if (nv->rec->flags & NODE_F_ANON) {
		const void *val;
		size_t vlen;
		struct rec_head rh;
		if (!index_file_record(fs->ix, nv->relpath, nv->rec->path_len, &val, &vlen) &&
		    !rec_head_get(val, vlen, &rh))
			id = rh.id;
	}
	rc = pc_get(fs, id, nv, &h->pi, &h->ent);
	return rc && rc != -ENOMEM && rc != -EAGAIN ? -EIO : rc;
}

/* len data bytes at off (native: pread and converted) */
static int hold_read(struct dfs_pixsrc *h, void *out, uint64_t off, size_t len)
{
	if (h->ent) {
		memcpy(out, h->ent->buf + off, len);
		return 0;
	}
	struct tls_bufs *t = tls(h->px);
	struct px_src s = { h->src, &h->sf };
	if (!t)
		return -ENOMEM;
	return px_native_read(&h->pi, px_src_read, &s, out, off, len, &t->scratch) ? -EIO : 0;
}

static void hold_close(struct dfs_pixsrc *h)
{
	if (h->opened)
		source_close(h->src, &h->sf);
	h->opened = 0;
	if (h->ent)
		pc_put(h->px, h->ent);
	h->ent = NULL;
}

static int px_getattr_common(struct dfs *fs, const struct node_view *nv,
			     struct stat *st, int png)
{
	struct px_info pi;
	int rc = node_info(fs, nv, &pi, NULL, NULL, NULL);
	if (rc)
		return -ENOENT;
	st->st_mode = S_IFREG | (nv->rec->mode & 0444);
	st->st_nlink = nv->rec->nlink ? nv->rec->nlink : 1; /* patients/ + uids/ */
	st->st_uid = nv->rec->uid;
	st->st_gid = nv->rec->gid;
	st->st_size = (off_t)(png ? px_png_size(&pi) : pi.hdr_len + pi.data_len);
	st->st_blocks = (st->st_size + 511) / 512;
	stat_times(st, nv->rec->mtime_ns);
	return 0;
}

static int npy_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
		       struct stat *st)
{
	(void)id;
	return px_getattr_common(fs, nv, st, 0);
}

static int png_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
		       struct stat *st)
{
	(void)id;
	return px_getattr_common(fs, nv, st, 1);
}

/* ---- P9: the prefix known from the index ---- */

#define PX_PREFIX_MAX 256   /* >= sizeof(px_info.hdr), >= 33 */

/* 1 when open f of pixels pi serves the prefix only (P9) */
static int px_prefix_open(struct dfs_file *f, const struct px_info *pi)
{
	if (!(f->flags & O_NONBLOCK) || pi->native)
		return 0;
	f->direct_io = 1;
	return 1;
}

/* The first bytes of the .npy (png 0) or .png (1) of pi that the index
 * alone determines, into out (PX_PREFIX_MAX bytes); returns how many.
 * The .png's are px_png_write's: signature, IHDR (first frame, 8 bits,
 * grey or RGB). */
static size_t px_prefix(const struct px_info *pi, int png, unsigned char *out)
{
	if (!png) {
		size_t l = pi->hdr_len < PX_PREFIX_MAX ? pi->hdr_len : PX_PREFIX_MAX;
		memcpy(out, pi->hdr, l);
		return l;
	}
	unsigned char *h = out + 8;
	uint32_t v[2] = { pi->cols, pi->rows };
	memcpy(out, "\x89PNG\r\n\x1a\n", 8);
	memcpy(h, "\0\0\0\x0dIHDR", 8);
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 4; k++)
			h[8 + 4 * i + k] = (unsigned char)(v[i] >> (24 - 8 * k));
	h[16] = 8;
	h[17] = pi->out_spp == 3 ? 2 : 0;
	h[18] = h[19] = h[20] = 0;
	uint32_t crc = px_crc32(0, h + 4, 17);
	for (int k = 0; k < 4; k++)
		h[21 + k] = (unsigned char)(crc >> (24 - 8 * k));
	return 33;
}

/* reply to a read of [off, off + size) of a prefix-only open (P9) */
static int px_prefix_read(fuse_req_t req, const struct px_info *pi, int png,
			  size_t size, off_t off)
{
	unsigned char p[PX_PREFIX_MAX];
	size_t l = px_prefix(pi, png, p);
	uint64_t total = png ? px_png_size(pi) : pi->hdr_len + pi->data_len;
	if (off < 0)
		return -EINVAL;
	if ((uint64_t)off >= total || !size) {
		fuse_reply_buf(req, NULL, 0);
		return 0;
	}
	if ((uint64_t)off >= l)
		return -EAGAIN;
	if (size > l - (size_t)off)
		size = l - (size_t)off;
	fuse_reply_buf(req, (const char *)p + off, size);
	return 0;
}

static int npy_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		    struct dfs_file *f)
{
	struct dfs_pixsrc *h = calloc(1, sizeof(*h));
	int rc;
	if (!h)
		return -ENOMEM;
	rc = node_info(fs, nv, &h->pi, NULL, NULL, NULL);
	if (rc) {
		free(h);
		return -ENOENT;
	}
	if (px_prefix_open(f, &h->pi)) {   /* P9 */
		h->prefix_only = 1;
		f->priv = h;
		return 0;
	}
	rc = hold_open(fs, id, nv, h);
	if (rc) {
		free(h);
		return rc;
	}
	f->priv = h;
	return 0;
}

static int npy_read(struct dfs *fs, struct dfs_file *f, fuse_req_t req,
		    size_t size, off_t off)
{
	struct dfs_pixsrc *h = f->priv;
	const struct px_info *pi = &h->pi;
	uint64_t total = pi->hdr_len + pi->data_len, o = (uint64_t)off;
	(void)fs;
	if (h->prefix_only)
		return px_prefix_read(req, pi, 0, size, off);
	if (o >= total || !size) {
		fuse_reply_buf(req, NULL, 0);
		return 0;
	}
	if (size > total - o)
		size = (size_t)(total - o);
	size_t hpart = o < pi->hdr_len ? (size_t)(pi->hdr_len - o) : 0;
	if (hpart > size)
		hpart = size;
	uint64_t doff = o + hpart - pi->hdr_len;   /* data offset */
	size_t dlen = size - hpart;

	if (h->ent) {
		struct iovec iov[2] = {
			{ (char *)pi->hdr + o, hpart },
			{ h->ent->buf + doff, dlen } };
		if (!hpart)
			fuse_reply_iov(req, iov + 1, 1);
		else
			fuse_reply_iov(req, iov, dlen ? 2 : 1);
		return 0;
	}
	if (pi->identity && h->sf.fd >= 0) {   /* splice (R5) */
		struct {
			struct fuse_bufvec v;
			struct fuse_buf extra;
		} bv;
		memset(&bv, 0, sizeof(bv));
		bv.v.count = 0;
		if (hpart) {
			bv.v.buf[bv.v.count].mem = (char *)pi->hdr + o;
			bv.v.buf[bv.v.count].size = hpart;
			bv.v.count++;
		}
		if (dlen) {
			struct fuse_buf *b = bv.v.count ? &bv.extra : &bv.v.buf[0];
			b->flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY;
			b->fd = h->sf.fd;
			b->pos = (off_t)(pi->pixel_offset + doff);
			b->size = dlen;
			bv.v.count++;
		}
		fuse_reply_data(req, &bv.v, FUSE_BUF_SPLICE_MOVE);
		return 0;
	}
	char *buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, pi->hdr + o, hpart);
	int rc = dlen ? hold_read(h, buf + hpart, doff, dlen) : 0;
	if (rc) {
		free(buf);
		return rc;
	}
	fuse_reply_buf(req, buf, size);
	free(buf);
	return 0;
}

static void npy_release(struct dfs_file *f)
{
	struct dfs_pixsrc *h = f->priv;
	if (h) {
		hold_close(h);
		free(h);
	}
	f->priv = NULL;
}

static int png_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		    struct dfs_file *f)
{
	struct dfs_pixsrc h = { 0 };
	struct px_window w;
	const void *rec;
	size_t rlen;
	int rc = node_info(fs, nv, &h.pi, &rec, &rlen, NULL);
	if (rc)
		return -ENOENT;
	px_window_from_record(rec, rlen, &w);
	uint64_t size = px_png_size(&h.pi);
	struct dfs_pixels *pc = fs->px;
	if (size > pc->max_image || h.pi.out_frame_bytes > pc->max_image) {   /* P3 */
		char rel[4096], why[200];
		snprintf(why, sizeof(why),
			 "png: image too large: a %ux%u frame of %llu bytes, max_image is %llu",
			 h.pi.rows, h.pi.cols, (unsigned long long)h.pi.out_frame_bytes,
			 (unsigned long long)pc->max_image);
		relpath(nv, rel, sizeof(rel));
		index_report_error(fs->ix, rel, why);
		return -EIO;
	}
	uint64_t framebytes = h.pi.native ? h.pi.out_frame_bytes : 0;
	if (framebytes) {   /* P1: the frame buffer counts */
		pthread_mutex_lock(&pc->lock);
		rc = room_reserve_locked(pc, framebytes);
		pthread_mutex_unlock(&pc->lock);
		if (rc)
			return rc;
	}
	unsigned char *png = malloc((size_t)size);
	unsigned char *frame = framebytes ? malloc((size_t)framebytes) : NULL;
	if (!png || (framebytes && !frame)) {
		rc = -ENOMEM;
		goto out;
	}
	rc = hold_open(fs, id, nv, &h);
	if (!rc && h.pi.native) {
		rc = hold_read(&h, frame, 0, (size_t)h.pi.out_frame_bytes);
		if (!rc)
			rc = px_png_write(&h.pi, &w, frame, png);
		if (rc && rc != -ENOMEM) {   /* (-ENOMEM: no thread buffers) */
			char rel[4096];
			relpath(nv, rel, sizeof(rel));
			index_report_error(fs->ix, rel, "cannot read pixel data for the preview");
			rc = -EIO;
		}
	} else if (!rc) {
		rc = px_png_write(&h.pi, &w, h.ent->buf, png);
		if (rc)
			rc = rc == -ENOMEM ? rc : -EIO;
	}
	hold_close(&h);
out:
	free(frame);
	if (framebytes) {
		pthread_mutex_lock(&pc->lock);
		room_release_locked(pc, framebytes);
		pthread_mutex_unlock(&pc->lock);
	}
	if (rc) {
		free(png);
		return rc;
	}
	f->buf = (char *)png;
	f->len = (size_t)size;
	return 0;
}

const struct kind_ops kind_npy =
	KIND_OPS("npy", npy_getattr, npy_open, npy_read, npy_release);

/* fs.h: a read without an open handle */
int dfs_npy_read_noopen(struct dfs *fs, uint64_t id, fuse_req_t req, size_t size, off_t off)
{
	struct node_view nv;
	struct px_info pi;
	struct dfs_file f = { .kind = KIND_NPY, .fd = -1, .id = id, .flags = O_RDONLY };
	int rc = index_node(fs->ix, id, &nv);
	if (rc)
		return rc;
	if (node_info(fs, &nv, &pi, NULL, NULL, NULL))
		return -ENOENT;
	if (!pi.native && pi.data_len > fs->px->cap / 4)
		return 1;   /* an open holds it (P1: no decode per read) */
	rc = npy_open(fs, id, &nv, &f);
	if (rc)
		return rc;
	rc = npy_read(fs, &f, req, size, off);
	npy_release(&f);
	return rc;
}

/* .png opens: generated and shared (png_open), or the prefix (P9) */
static const char png_prefix_mark;

static int png_open_any(struct dfs *fs, uint64_t id, const struct node_view *nv,
			struct dfs_file *f)
{
	struct px_info pi;
	if (node_info(fs, nv, &pi, NULL, NULL, NULL))
		return -ENOENT;
	if (!px_prefix_open(f, &pi))
		return kind_buf_open_shared(fs, id, nv, f, png_open);
	struct px_info *keep = malloc(sizeof(*keep));
	if (!keep)
		return -ENOMEM;
	*keep = pi;
	f->buf = (char *)keep;
	f->priv = (void *)&png_prefix_mark;
	return 0;
}

static int png_read(struct dfs *fs, struct dfs_file *f, fuse_req_t req, size_t size,
		    off_t off)
{
	if (f->priv == &png_prefix_mark)
		return px_prefix_read(req, (const struct px_info *)(void *)f->buf, 1, size, off);
	return kind_buf_read(fs, f, req, size, off);
}

static void png_release(struct dfs_file *f)
{
	if (f->priv == &png_prefix_mark) {
		free(f->buf);
		f->buf = NULL;
		f->priv = NULL;
		return;
	}
	kind_buf_release(f);
}

const struct kind_ops kind_png =
	KIND_OPS("png", png_getattr, png_open_any, png_read, png_release);

/* ---- the pipeline for other kinds (fs.h: dfs_pixsrc_*) ---- */

int dfs_pixsrc_open(struct dfs *fs, uint64_t id, struct dfs_pixsrc **out)
{
	struct node_view nv;
	int rc = index_node(fs->ix, id, &nv);
	if (rc)
		return rc;
	struct dfs_pixsrc *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (node_info(fs, &nv, &s->pi, NULL, NULL, NULL)) {
		free(s);
		return -EIO;
	}
	rc = hold_open(fs, id, &nv, s);
	if (rc) {
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

const struct px_info *dfs_pixsrc_info(const struct dfs_pixsrc *s)
{
	return &s->pi;
}

int dfs_pixsrc_read(struct dfs_pixsrc *s, void *out, uint64_t off, size_t len)
{
	if (off > s->pi.data_len || len > s->pi.data_len - off)
		return -EINVAL;
	return hold_read(s, out, off, len);
}

void dfs_pixsrc_close(struct dfs_pixsrc *s)
{
	if (!s)
		return;
	hold_close(s);
	free(s);
}
