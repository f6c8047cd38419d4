/*
 * live.c - the archive changes while mounted (I9 in index.h): a queue of
 * paths fed by the source's watch (source.h R8) or a periodic rescan, one
 * thread that applies them in batches (scan_update with a scope, one write
 * transaction each) and tells the mount what changed in the tree.
 *
 * Design notes
 * - Debounce: a batch is taken when no path was queued for LIVE_QUIET_MS,
 *   or LIVE_MAX_WAIT_MS after its first path, so a steady stream of
 *   arrivals still shows within ~1 s. Files younger than LIVE_STABLE_MS
 *   are deferred by the scan and queued again (still being written).
 * - Paths become roots: sorted, duplicates and paths below another root
 *   dropped; "" (everything) swallows the rest.
 * - What changed for the kernel: the "names" DB of the snapshot before
 *   the batch and of the one after are merged (both sorted): every name
 *   added, removed or re-pointed is reported (index_live_ops.entry). The
 *   tree is updated in place (tree_update, I11), which names the
 *   directories it rewrote: only their names are merged; a tree rebuilt
 *   whole is merged whole.
 * - The parser pool (worker.h) stays between batches: no process start
 *   per arrival.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store.h"
#include "update.h"
#include "error.h"
#include "worker.h"
#include "naming.h"

struct live {
	struct index *ix;
	struct index_live_ops ops;
	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* CLOCK_MONOTONIC */
	int stop;                     /* lock */
	char **paths;                 /* lock: queued, malloc()ed */
	size_t n, cap;                /* lock */
	int64_t first_ns, last_ns;    /* lock: first / last queued of the batch */
	int rescan_s;
	int64_t next_rescan_ns;       /* live thread */
	int watching;                 /* lock: the source's watch runs (set by
				       * the live thread as it starts) */
	struct worker_pool *pool;     /* live thread: parser processes */
	uint64_t generation;          /* live thread */
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void index_live_note(struct index *ix, const char *rel, size_t rel_len)
{
	struct live *L = ix->live;
	if (!L)
		return;
	char *p = strndup(rel, rel_len);
	if (!p) {
		p = strdup("");   /* out of memory: re-walk everything later */
		if (!p)
			return;
	}
	pthread_mutex_lock(&L->lock);
	if (L->n == L->cap) {
		size_t cap = L->cap ? L->cap * 2 : 256;
		char **v = realloc(L->paths, cap * sizeof(*v));
		if (!v) {
			pthread_mutex_unlock(&L->lock);
			free(p);
			return;
		}
		L->paths = v;
		L->cap = cap;
	}
	int64_t now = mono_ns();
	if (!L->n)
		L->first_ns = now;
	L->last_ns = now;
	L->paths[L->n++] = p;
	pthread_cond_signal(&L->cond);
	pthread_mutex_unlock(&L->lock);
}

static void watch_cb(void *ctx, const char *rel, size_t rel_len)
{
	index_live_note(ctx, rel, rel_len);
}

static void defer_cb(void *ctx, const char *rel, size_t rel_len)
{
	index_live_note(ctx, rel, rel_len);
}

static int cmp_path(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	return source_key_cmp(x, strlen(x), y, strlen(y));
}

static int has_path(char **v, size_t n, const char *p, size_t len)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		int c = source_key_cmp(v[m], strlen(v[m]), p, len);
		if (!c)
			return 1;
		if (c < 0)
			lo = m + 1;
		else
			hi = m;
	}
	return 0;
}

/* sorted, unique, none at or below another; *n updated, the rest freed */
static void roots_normalize(char **v, size_t *n)
{
	size_t w = 0;
	qsort(v, *n, sizeof(*v), cmp_path);
	if (*n && !v[0][0]) {          /* "" sorts first: everything */
		for (size_t i = 1; i < *n; i++)
			free(v[i]);
		*n = 1;
		return;
	}
	char *drop = calloc(*n ? *n : 1, 1);
	for (size_t i = 0; i < *n; i++) {
		int d = i && !strcmp(v[i - 1], v[i]);
		for (const char *s = v[i]; !d && (s = strchr(s, '/')); s++)
			d = has_path(v, *n, v[i], (size_t)(s - v[i]));
		if (drop)
			drop[i] = (char)d;
	}
	for (size_t i = 0; i < *n; i++) {
		if (drop && drop[i])
			free(v[i]);
		else
			v[w++] = v[i];
	}
	free(drop);
	*n = w;
}

/* the cursor's entry is of directory pfx (8 bytes; NULL: any) */
static int in_dir(int rc, const MDB_val *k, const unsigned char *pfx)
{
	return rc == 0 && (!pfx || (k->mv_size >= 8 && memcmp(k->mv_data, pfx, 8) == 0));
}

/* index.h I3: the files of a group record (key: parent + base + NUL)
 * whose inode differs between its value before (o) and after (n), either
 * NULL (the record was not there), told to the mount */
static void group_diff(struct live *L, const MDB_val *k, const MDB_val *o, const MDB_val *n)
{
	uint64_t gi[2] = { 0, 0 };
	uint32_t mask[2] = { 0, 0 };
	const MDB_val *v[2] = { o, n };
	size_t bl = k->mv_size - 9;
	char name[NAME_BUF + 16];
	if (!L->ops.entry || bl > NAME_BUF || ((const char *)k->mv_data)[k->mv_size - 1])
		return;
	for (int i = 0; i < 2; i++)
		if (v[i] && v[i]->mv_size == 12) {
			memcpy(&gi[i], v[i]->mv_data, 8);
			memcpy(&mask[i], (const char *)v[i]->mv_data + 8, 4);
		}
	memcpy(name, (const char *)k->mv_data + 8, bl);
	for (const struct index_group_file *f = index_group_files; f->ext; f++) {
		uint64_t a = mask[0] & (1u << f->kind) ? ino_make(ino_id(gi[0]), f->kind) : 0;
		uint64_t b = mask[1] & (1u << f->kind) ? ino_make(ino_id(gi[1]), f->kind) : 0;
		if (a == b)
			continue;
		size_t el = strlen(f->ext);
		name[bl] = '.';
		memcpy(name + bl + 1, f->ext, el);
		L->ops.entry(L->ops.ctx, be64_get(k->mv_data), name, bl + 1 + el, a, b);
	}
}

/* every name that differs between the snapshots old and new, in
 * directory dir (all: in every directory) */
static int names_diff(struct live *L, MDB_txn *old, MDB_txn *new, int all, uint64_t dir)
{
	struct index *ix = L->ix;
	MDB_cursor *co, *cn;
	MDB_val ko, vo, kn, vn;
	unsigned char kb[8], *pfx = all ? NULL : kb;
	be64_put(kb, dir);
	int rc = mdb_cursor_open(old, ix->names, &co);
	if (rc)
		return dfs_from_mdb(rc);
	rc = mdb_cursor_open(new, ix->names, &cn);
	if (rc) {
		mdb_cursor_close(co);
		return dfs_from_mdb(rc);
	}
	ko.mv_size = kn.mv_size = 8;
	ko.mv_data = kn.mv_data = kb;
	int ro = mdb_cursor_get(co, &ko, &vo, all ? MDB_FIRST : MDB_SET_RANGE);
	int rn = mdb_cursor_get(cn, &kn, &vn, all ? MDB_FIRST : MDB_SET_RANGE);
	if (ro == 0 && !in_dir(ro, &ko, pfx))
		ro = MDB_NOTFOUND;
	if (rn == 0 && !in_dir(rn, &kn, pfx))
		rn = MDB_NOTFOUND;
	while (ro == 0 || rn == 0) {
		int c = ro ? 1 : rn ? -1 : source_key_cmp(ko.mv_data, ko.mv_size, kn.mv_data,
							 kn.mv_size);
		uint64_t a = 0, b = 0;
		const MDB_val *k = c <= 0 ? &ko : &kn;
		if (c <= 0 && vo.mv_size == 8)
			memcpy(&a, vo.mv_data, 8);
		if (c >= 0 && vn.mv_size == 8)
			memcpy(&b, vn.mv_data, 8);
		if (a != b && k->mv_size >= 8 && L->ops.entry)
			L->ops.entry(L->ops.ctx, be64_get(k->mv_data),
				     (const char *)k->mv_data + 8, k->mv_size - 8, a, b);
		if (k->mv_size > 8 && ((c <= 0 && vo.mv_size == 12) || (c >= 0 && vn.mv_size == 12)))
			group_diff(L, k, c <= 0 ? &vo : NULL, c >= 0 ? &vn : NULL);
		if (c <= 0 && (ro = mdb_cursor_get(co, &ko, &vo, MDB_NEXT)) == 0 &&
		    !in_dir(ro, &ko, pfx))
			ro = MDB_NOTFOUND;
		if (c >= 0 && (rn = mdb_cursor_get(cn, &kn, &vn, MDB_NEXT)) == 0 &&
		    !in_dir(rn, &kn, pfx))
			rn = MDB_NOTFOUND;
	}
	mdb_cursor_close(co);
	mdb_cursor_close(cn);
	return (ro == MDB_NOTFOUND || ro == 0) && (rn == MDB_NOTFOUND || rn == 0) ? 0 : -EIO;
}

static void apply(struct live *L, char **roots, size_t n)
{
	struct index *ix = L->ix;
	struct scan_scope sc = { .roots = (const char *const *)roots, .nroots = n,
				 .live = 1, .pool = &L->pool, .defer = defer_cb,
				 .ctx = ix };
	char msg[512] = "";
	MDB_txn *old = NULL, *new = NULL;
	int64_t t0 = mono_ns();
	int rc;
	for (int tries = 0;; tries++) {
		if (mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &old))
			old = NULL;
		rc = scan_update(ix, &sc, msg, sizeof(msg));
		if (rc != -ENOSPC || tries >= 8)
			break;
		/* the map is full (store.h S3): no txn of ours may stay */
		if (old)
			mdb_txn_abort(old);
		old = NULL;
		free(sc.updated);
		sc.updated = NULL;
		sc.nupdated = sc.cupdated = 0;
		/* snapshots (the query catalog's) pin the map: they go first,
		 * and are taken again by the next query */
		if (L->ops.release)
			L->ops.release(L->ops.ctx);
		if (store_map_grow(ix, msg, sizeof(msg)))
			break;
	}
	if (rc) {
		dfs_log("live update: %s", msg);
	} else if (sc.changed) {
		L->generation++;
		if (old && mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &new) == 0) {
			/* I11: an update in place names the directories it
			 * rewrote; a rebuild is compared whole */
			int drc = sc.tree_full ? names_diff(L, old, new, 1, 0) : 0;
			for (size_t i = 0; !sc.tree_full && i < sc.touched.n && !drc; i++)
				drc = names_diff(L, old, new, 0, sc.touched.v[i]);
			if (drc)
				dfs_log("live update: cannot compare the trees; the kernel's caches may lag until their timeout");
			mdb_txn_abort(new);
		}
		struct index_applied a = {
			.generation = L->generation, .parsed = sc.parsed,
			.removed = sc.removed, .feed_lines = sc.feed_lines,
			.updated = sc.updated, .nupdated = sc.nupdated,
			.seconds = (mono_ns() - t0) / 1e9,
			.parse_seconds = sc.parse_seconds,
			.tree_seconds = sc.tree_seconds,
			.commit_seconds = sc.commit_seconds,
			.tree_cpu_seconds = sc.tree_cpu_seconds,
		};
		if (L->ops.applied)
			L->ops.applied(L->ops.ctx, &a);
		index_request_end(ix);   /* the callbacks' reads (I6) */
	}
	if (old)
		mdb_txn_abort(old);
	free(sc.updated);
	free(sc.touched.v);
}

static void wait_until(struct live *L, int64_t when_ns)
{
	if (when_ns <= 0) {
		pthread_cond_wait(&L->cond, &L->lock);
		return;
	}
	/* CLOCK_MONOTONIC cond (index_live_start) */
	struct timespec ts = { when_ns / 1000000000, when_ns % 1000000000 };
	pthread_cond_timedwait(&L->cond, &L->lock, &ts);
}

/* The source's watch, or polling when it cannot start (live thread) */
static void live_watch(struct live *L)
{
	struct index *ix = L->ix;
	const struct source_ops *so = ix->src.ops;
	/* DICOMFS_WATCH_DELAY_MS=N (a test knob, at most 60 s): the watch
	 * starts N ms late, as on an archive of very many directories; what
	 * changed meanwhile is found by the catch-up (source.h R8) */
	const char *dl = getenv("DICOMFS_WATCH_DELAY_MS");
	if (dl) {
		int64_t end = mono_ns() + (int64_t)(atoi(dl) > 60000 ? 60000 : atoi(dl)) * 1000000;
		pthread_mutex_lock(&L->lock);
		while (!L->stop && mono_ns() < end)
			wait_until(L, end);
		pthread_mutex_unlock(&L->lock);
	}
	/* DICOMFS_NO_WATCH=1 (a test and benchmark knob): no watch, and no
	 * polling but -o rescan's: the index stays as mounted otherwise */
	int rc = so->watch && !getenv("DICOMFS_NO_WATCH") ? so->watch(ix->src.inst, watch_cb, ix)
							  : -ENOTSUP;
	pthread_mutex_lock(&L->lock);
	L->watching = rc == 0;
	/* a source without a watch (a server) is re-listed only with -o rescan */
	if (rc && L->rescan_s <= 0 && so->watch && !getenv("DICOMFS_NO_WATCH")) {
		L->rescan_s = LIVE_RESCAN_FALLBACK;
		dfs_log("the archive cannot be watched (%s): it is re-walked every %d s instead (-o rescan=SECONDS to choose)",
			rc == -ENOSPC ? "inotify watch limit reached, see fs.inotify.max_user_watches"
				      : dfs_strerror(rc), L->rescan_s);
	}
	L->next_rescan_ns = mono_ns() + (int64_t)L->rescan_s * 1000000000;
	pthread_mutex_unlock(&L->lock);
}

static void *live_main(void *arg)
{
	struct live *L = arg;
	struct index *ix = L->ix;
	store_sync(ix);   /* I12: the mount's update, once the mount answers */
	live_watch(L);
	/* a parser process started now, not with the first arrival: loading
	 * GDCM takes about a second (I9's 2 s) */
	int max = ix->opts.scan_threads > 0 ? ix->opts.scan_threads : scan_parsers();
	L->pool = scan_pool_new(ix, max);
	struct worker *w;
	if (L->pool && worker_get(L->pool, &w) == 0)
		worker_put(L->pool, w, WORKER_KEEP, NULL);
	pthread_mutex_lock(&L->lock);
	while (!L->stop) {
		int64_t now = mono_ns();
		if (L->rescan_s > 0 && now >= L->next_rescan_ns) {
			L->next_rescan_ns = now + (int64_t)L->rescan_s * 1000000000;
			pthread_mutex_unlock(&L->lock);
			index_live_note(L->ix, "", 0);
			pthread_mutex_lock(&L->lock);
			continue;
		}
		if (!L->n) {
			wait_until(L, L->rescan_s > 0 ? L->next_rescan_ns : 0);
			continue;
		}
		int64_t ready = L->last_ns + (int64_t)LIVE_QUIET_MS * 1000000;
		int64_t cap = L->first_ns + (int64_t)LIVE_MAX_WAIT_MS * 1000000;
		if (cap < ready)
			ready = cap;
		if (now < ready) {
			wait_until(L, ready);
			continue;
		}
		char **v = L->paths;
		size_t n = L->n;
		L->paths = NULL;
		L->n = L->cap = 0;
		pthread_mutex_unlock(&L->lock);
		roots_normalize(v, &n);
		apply(L, v, n);
		store_sync(ix);   /* I12: each batch on disk before the next */
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		pthread_mutex_lock(&L->lock);
	}
	pthread_mutex_unlock(&L->lock);
	return NULL;
}

int index_live_start(struct index *ix, int rescan_s, const struct index_live_ops *ops,
		     char *msg, size_t msglen)
{
	struct live *L = calloc(1, sizeof(*L));
	pthread_condattr_t ca;
	if (!L)
		return -ENOMEM;
	if (!ix->opts.live) {
		free(L);
		snprintf(msg, msglen, "live updates need a writable index (index_opts.live)");
		return -EINVAL;
	}
	L->ix = ix;
	L->ops = *ops;
	L->rescan_s = rescan_s;
	pthread_mutex_init(&L->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&L->cond, &ca);
	pthread_condattr_destroy(&ca);
	ix->live = L;
	/* the watch starts on the live thread (live_watch): the mount
	 * answers meanwhile, and the catch-up (source.h R8) reports what
	 * changed since the walk before the watches existed */
	int rc = pthread_create(&L->thread, NULL, live_main, L);
	if (rc) {
		snprintf(msg, msglen, "cannot start the live update thread: %s", strerror(rc));
		index_live_stop(ix);
		return -rc;
	}
	L->started = 1;
	return 0;
}

void index_live_stop(struct index *ix)
{
	struct live *L = ix->live;
	if (!L)
		return;
	if (L->started) {
		pthread_mutex_lock(&L->lock);
		L->stop = 1;
		pthread_cond_signal(&L->cond);
		pthread_mutex_unlock(&L->lock);
		pthread_join(L->thread, NULL);   /* the watch is started then */
	}
	store_sync(ix);   /* I12 */
	if (L->watching && ix->src.ops->unwatch)
		ix->src.ops->unwatch(ix->src.inst);   /* no note after this */
	ix->live = NULL;
	worker_pool_free(L->pool);
	for (size_t i = 0; i < L->n; i++)
		free(L->paths[i]);
	free(L->paths);
	pthread_cond_destroy(&L->cond);
	pthread_mutex_destroy(&L->lock);
	free(L);
}

int index_live_watching(const struct index *ix)
{
	struct live *L = ix->live;
	if (!L)
		return 0;
	pthread_mutex_lock(&L->lock);
	int w = L->watching;
	pthread_mutex_unlock(&L->lock);
	return w;
}
