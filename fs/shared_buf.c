/*
 * shared_buf.c - generated content shared per inode while open (the
 * contract and SB1..SB4 are in shared_buf.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "shared_buf.h"

#define SB_BUCKETS 256

enum { SB_BUILDING, SB_READY };

struct shared_buf {
	struct shared_bufs *t;
	uint64_t key;
	unsigned refs;     /* t->lock */
	int state;         /* t->lock */
	int retired;       /* t->lock: in no bucket any more (SB6) */
	char *buf;         /* immutable once READY (SB2) */
	size_t len;
	struct shared_buf *next;
	/* SB7: t->lock; in t's idle list (refs 0) when idle */
	int idle;
	int64_t idle_ns;   /* CLOCK_MONOTONIC when it went idle */
	struct shared_buf *iprev, *inext;
};

struct shared_bufs {
	pthread_mutex_t lock;
	pthread_cond_t cond;   /* a build ended or an entry went away */
	uint64_t cap;          /* read-only */
	uint64_t bytes;        /* lock: sum of READY entries' len */
	size_t n;              /* lock */
	struct shared_buf *bucket[SB_BUCKETS];   /* lock */
	int linger;            /* lock: SB7 */
	/* lock: the idle entries, most recently used first (SB7) */
	struct shared_buf *ihead, *itail;
	uint64_t ibytes;       /* lock: bytes of idle entries */
	int nidle;             /* idle entries (read without the lock: sweep) */
};

int shared_bufs_new(uint64_t cap, struct shared_bufs **out)
{
	struct shared_bufs *t = calloc(1, sizeof(*t));
	pthread_condattr_t ca;
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	t->cap = cap;
	*out = t;
	return 0;
}

void shared_bufs_free(struct shared_bufs *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < SB_BUCKETS; i++)
		while (t->bucket[i]) {   /* none should be left (contract) */
			struct shared_buf *e = t->bucket[i];
			t->bucket[i] = e->next;
			free(e->buf);
			free(e);
		}
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static struct shared_buf **slot(struct shared_bufs *t, uint64_t key)
{
	return &t->bucket[(key ^ key >> 17) % SB_BUCKETS];
}

static void unlink_locked(struct shared_bufs *t, struct shared_buf *e)
{
	if (e->retired)
		return;   /* SB6: unlinked already (still counted in bytes) */
	struct shared_buf **pp = slot(t, e->key);
	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	t->n--;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void idle_unlink_locked(struct shared_bufs *t, struct shared_buf *e)
{
	t->ibytes -= e->len;
	__atomic_store_n(&t->nidle, t->nidle - 1, __ATOMIC_RELAXED);
	if (e->iprev)
		e->iprev->inext = e->inext;
	else
		t->ihead = e->inext;
	if (e->inext)
		e->inext->iprev = e->iprev;
	else
		t->itail = e->iprev;
	e->iprev = e->inext = NULL;
	e->idle = 0;
}

/* free idle entry e (lock held): out of its bucket, its bytes uncounted */
static void idle_free_locked(struct shared_bufs *t, struct shared_buf *e)
{
	idle_unlink_locked(t, e);
	unlink_locked(t, e);
	t->bytes -= e->len;
	free(e->buf);
	free(e);
}

/* SB7: evict the oldest idle entries until len more bytes fit */
static void idle_evict_locked(struct shared_bufs *t, size_t len)
{
	while (t->itail && t->bytes && t->bytes + len > t->cap)
		idle_free_locked(t, t->itail);
}

static void deadline(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += SB_WAIT_MS / 1000;
	ts->tv_nsec += (long)(SB_WAIT_MS % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int shared_buf_get(struct shared_bufs *t, uint64_t key, shared_build_fn build,
		   void *ctx, struct shared_buf **h)
{
	struct timespec dl;
	struct shared_buf *e;
	int rc;

	deadline(&dl);
	pthread_mutex_lock(&t->lock);
	for (;;) {
		for (e = *slot(t, key); e; e = e->next)
			if (e->key == key)
				break;
		if (!e || e->state == SB_READY)
			break;
		/* SB1: another opener builds it */
		if (pthread_cond_timedwait(&t->cond, &t->lock, &dl) == ETIMEDOUT) {
			pthread_mutex_unlock(&t->lock);
			return -EIO;
		}
	}
	if (e) {
		if (e->idle)
			idle_unlink_locked(t, e);   /* SB7 */
		e->refs++;
		pthread_mutex_unlock(&t->lock);
		*h = e;
		return 0;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		pthread_mutex_unlock(&t->lock);
		return -ENOMEM;
	}
	e->t = t;
	e->key = key;
	e->refs = 1;
	e->state = SB_BUILDING;
	e->next = *slot(t, key);
	*slot(t, key) = e;
	t->n++;
	pthread_mutex_unlock(&t->lock);

	char *buf = NULL;
	size_t len = 0;
	rc = build(ctx, &buf, &len);

	pthread_mutex_lock(&t->lock);
	/* SB4: wait for room (idle entries go first, SB7), then give up */
	if (!rc)
		idle_evict_locked(t, len);
	while (!rc && t->bytes && t->bytes + len > t->cap)
		if (pthread_cond_timedwait(&t->cond, &t->lock, &dl) == ETIMEDOUT)
			rc = -ENOMEM;
	if (rc) {
		/* the waiters find no entry and build (or fail) themselves */
		unlink_locked(t, e);
		pthread_cond_broadcast(&t->cond);
		pthread_mutex_unlock(&t->lock);
		free(buf);
		free(e);
		return rc;
	}
	e->buf = buf;
	e->len = len;
	e->state = SB_READY;
	t->bytes += len;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	*h = e;
	return 0;
}

const char *shared_buf_data(const struct shared_buf *h, size_t *len)
{
	*len = h->len;
	return h->buf;
}

void shared_buf_put(struct shared_buf *h)
{
	struct shared_bufs *t;
	if (!h)
		return;
	t = h->t;
	pthread_mutex_lock(&t->lock);
	if (--h->refs) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	if (t->linger && !h->retired) {   /* SB7: idle, most recent first */
		h->idle = 1;
		h->idle_ns = now_ns();
		h->iprev = NULL;
		h->inext = t->ihead;
		if (t->ihead)
			t->ihead->iprev = h;
		else
			t->itail = h;
		t->ihead = h;
		t->ibytes += h->len;
		__atomic_store_n(&t->nidle, t->nidle + 1, __ATOMIC_RELAXED);
		/* idle bytes <= cap / SB_IDLE_SHARE, but the newest stays */
		while (t->itail != h && t->ibytes > t->cap / SB_IDLE_SHARE)
			idle_free_locked(t, t->itail);
		pthread_cond_broadcast(&t->cond);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	unlink_locked(t, h);   /* SB3 */
	t->bytes -= h->len;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	free(h->buf);
	free(h);
}

void shared_bufs_retire(struct shared_bufs *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	while (t->ihead)   /* SB6, SB7: nobody holds these */
		idle_free_locked(t, t->ihead);
	for (size_t i = 0; i < SB_BUCKETS; i++) {
		for (struct shared_buf *e = t->bucket[i]; e; e = e->next) {
			e->retired = 1;
			t->n--;
		}
		t->bucket[i] = NULL;
	}
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

void shared_bufs_usage(struct shared_bufs *t, uint64_t *bytes, size_t *entries)
{
	pthread_mutex_lock(&t->lock);
	*bytes = t->bytes;
	*entries = t->n;
	pthread_mutex_unlock(&t->lock);
}

void shared_bufs_linger(struct shared_bufs *t, int on)
{
	pthread_mutex_lock(&t->lock);
	t->linger = on;
	if (!on)
		while (t->ihead)
			idle_free_locked(t, t->ihead);
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

void shared_bufs_sweep(struct shared_bufs *t)
{
	if (!t || !__atomic_load_n(&t->nidle, __ATOMIC_RELAXED))
		return;
	int64_t old = now_ns() - (int64_t)SB_IDLE_MS * 1000000;
	pthread_mutex_lock(&t->lock);
	while (t->itail && t->itail->idle_ns < old)
		idle_free_locked(t, t->itail);
	pthread_mutex_unlock(&t->lock);
}
