/*
 * catalog.c - the refcounted snapshot of the index (see catalog.h, C1-C6).
 *
 * Building (C1): the tree is walked once (patients/ -> studies -> series
 * -> instance .dcm entries) into the table in tree order, while a second
 * thread reads every file record in one cursor pass (by id). Then one pass
 * over the records copies the value of every indexed tag into columns and
 * per-series presence masks (C5), and one pass over the Modality column
 * gives each study its ModalitiesInStudy (C4). Only then is it published.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "catalog.h"
#include "fs.h"
#include "error.h"
#include "log.h"
#include "record.h"
#include "strbuf.h"
#include "tags.h"

/* ---- big arrays ---- */

/*
 * Big arrays (the table, the columns, large results) live in mappings
 * advised for transparent huge pages: on a VM a 4 KiB page fault can cost
 * tens of microseconds, and the table touches megabytes on its first use.
 * Small ones are malloc()ed; a 16-byte header says which (and the size).
 */
#define HUGE_MIN ((size_t)256 << 10)
#define HUGE_PAGE ((size_t)2 << 20)

static void *hmalloc(size_t size)
{
	size_t *h;
	if (size > SIZE_MAX / 2)
		return NULL;
	if (size + 16 < HUGE_MIN) {
		if (!(h = malloc(size + 16)))
			return NULL;
		h[0] = 0;
		h[1] = size;
		return h + 2;
	}
	size_t need = (size + 16 + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
	size_t len = need + HUGE_PAGE;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	char *a = (char *)(((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
	if (a > m)
		munmap(m, (size_t)(a - m));
	if (a + need < m + len)
		munmap(a + need, (size_t)(m + len - (a + need)));
#ifdef MADV_HUGEPAGE
	(void)madvise(a, need, MADV_HUGEPAGE);
#endif
	h = (size_t *)a;
	h[0] = need;
	h[1] = size;
	return h + 2;
}

static void *hcalloc(size_t n, size_t sz)
{
	if (sz && n > SIZE_MAX / 2 / sz)
		return NULL;
	void *p = hmalloc(n * sz);
	size_t *h = p;
	if (p && !h[-2])
		memset(p, 0, n * sz);   /* fresh mappings are zero already */
	return p;
}

void catalog_hfree(void *p)
{
	if (!p)
		return;
	size_t *h = (size_t *)p - 2;
	if (h[0])
		munmap(h, h[0]);
	else
		free(h);
}

void *catalog_hrealloc(void *p, size_t size)
{
	if (!p)
		return hmalloc(size);
	size_t *h = (size_t *)p - 2;
	if (h[0] && size + 16 <= h[0]) {
		h[1] = size;
		return p;
	}
	void *np = hmalloc(size);
	if (!np)
		return NULL;
	memcpy(np, p, h[1] < size ? h[1] : size);
	catalog_hfree(p);
	return np;
}

static int grow(void **p, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 256;
	void *np = catalog_hrealloc(*p, nc * sz);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = nc;
	return 0;
}

/* rec_next() (record.c), inlined: the hot loop of column fills and manifests */
static inline int rec_step(const unsigned char *p, size_t len, size_t *pos,
			   uint32_t *tag, const char **v, size_t *l)
{
	uint16_t l16;
	if (*pos == 0)
		*pos = sizeof(struct rec_head);
	if (len < sizeof(struct rec_head) || *pos + 8 > len)
		return 0;
	memcpy(tag, p + *pos, 4);
	memcpy(&l16, p + *pos + 6, 2);
	if (*pos + 8 + l16 > len)
		return 0;
	*v = (const char *)p + *pos + 8;
	*l = l16;
	*pos += 8 + l16;
	return 1;
}

/* ---- the file records by instance id (only while building) ---- */

/*
 * From one cursor pass over the "files" DB (much cheaper than a node and a
 * record lookup per instance).
 */
struct frec {
	uint64_t id;
	const void *rec;
	size_t len;
};

struct frecs {
	struct index *ix;
	struct index_snap *snap;  /* the snapshot its records point into (C6) */
	struct frec *v;
	size_t n, cap;
	uint32_t *direct;     /* id -> index + 1, when ids are dense enough */
	uint64_t maxid;
	int err;
};

static int frec_cb(void *ctx, const char *relpath, size_t len, const void *val,
		   size_t vlen)
{
	struct frecs *F = ctx;
	const struct rec_head *h = val;
	(void)relpath; (void)len;
	if (vlen < sizeof(*h) || h->status != REC_OK)
		return 0;
	if ((F->err = grow((void **)&F->v, &F->cap, F->n, sizeof(*F->v))))
		return 1;
	F->v[F->n].id = h->id;
	F->v[F->n].rec = val;
	F->v[F->n++].len = vlen;
	if (h->id > F->maxid)
		F->maxid = h->id;
	return 0;
}

static int frec_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct frec *)a)->id, y = ((const struct frec *)b)->id;
	return x < y ? -1 : x > y;
}

static void *frec_load(void *arg)
{
	struct frecs *F = arg;
	int rc = index_files_scan(F->ix, frec_cb, F);
	if (!rc)
		rc = F->err;
	F->snap = index_snap_take(F->ix);   /* C6: kept by the catalog */
	if (!rc && !F->snap)
		rc = -EIO;
	F->err = rc;
	if (rc)
		return NULL;
	if (F->n && F->n < UINT32_MAX && F->maxid < 8 * (uint64_t)F->n + (1u << 20)) {
		F->direct = hcalloc(F->maxid + 1, sizeof(*F->direct));
		if (F->direct) {
			for (size_t i = 0; i < F->n; i++)
				F->direct[F->v[i].id] = (uint32_t)i + 1;
			return NULL;
		}
	}
	qsort(F->v, F->n, sizeof(*F->v), frec_cmp);
	return NULL;
}

static int frec_find(const struct frecs *F, uint64_t id, const void **rec, size_t *len)
{
	const struct frec *f = NULL;
	if (F->direct) {
		if (id <= F->maxid && F->direct[id])
			f = &F->v[F->direct[id] - 1];
	} else {
		size_t lo = 0, hi = F->n;
		while (lo < hi) {
			size_t m = (lo + hi) / 2;
			if (F->v[m].id == id) {
				f = &F->v[m];
				break;
			}
			if (F->v[m].id < id)
				lo = m + 1;
			else
				hi = m;
		}
	}
	if (!f)
		return 0;
	*rec = f->rec;
	*len = f->len;
	return 1;
}

/* ---- the table ---- */

struct walk {
	struct catalog *c;
	struct index *ix;
	int level;            /* 0 patients/, 1 patient, 2 study, 3 series */
	uint32_t parent;
	int err;
};

static int walk_dir(struct catalog *c, struct index *ix, uint64_t id, int level,
		    uint32_t parent);

#define NAMES_CHUNK 65536

/* a copy of name (nl bytes) that lives as long as c, or NULL */
static const char *name_keep(struct catalog *c, const char *name, size_t nl)
{
	char *p = arena_alloc(&c->names, nl, NAMES_CHUNK);
	if (p)
		memcpy(p, name, nl);
	return p;
}

static int walk_cb(void *ctx, uint64_t ino, const char *name, size_t nl,
		   uint64_t next)
{
	struct walk *w = ctx;
	struct catalog *c = w->c;
	unsigned k = ino_kind(ino);
	(void)next;
	if (w->level < 3 && k == KIND_DIR) {
		struct cat_dir **v = w->level == 0 ? &c->pat : w->level == 1 ? &c->study : &c->series;
		size_t *n = w->level == 0 ? &c->npat : w->level == 1 ? &c->nstudy : &c->nseries;
		size_t *cp = w->level == 0 ? &c->cpat : w->level == 1 ? &c->cstudy : &c->cseries;
		if ((w->err = grow((void **)v, cp, *n, sizeof(**v))))
			return 1;
		struct cat_dir *d = &(*v)[*n];
		d->id = ino_id(ino);
		d->name.s = name;
		d->name.l = nl;
		d->parent = w->parent;
		d->first = (uint32_t)c->ninst;
		uint32_t me = (uint32_t)(*n)++;
		w->err = walk_dir(c, w->ix, d->id, w->level + 1, me);
		(*v)[me].end = (uint32_t)c->ninst;
		return w->err != 0;
	}
	if (w->level == 3 && k == KIND_DCM) {
		if ((w->err = grow((void **)&c->inst, &c->cinst, c->ninst, sizeof(*c->inst))))
			return 1;
		const char *kept = name_keep(c, name, nl);
		if (!kept) {
			w->err = -ENOMEM;
			return 1;
		}
		struct cat_inst *t = &c->inst[c->ninst++];
		t->id = ino_id(ino);
		t->name.s = kept;
		t->name.l = nl;
		t->series = w->parent;
		t->rec = NULL;   /* from the "files" pass, see table_build */
		t->rec_len = 0;
	}
	return 0;
}

static int walk_dir(struct catalog *c, struct index *ix, uint64_t id, int level,
		    uint32_t parent)
{
	struct walk w = { c, ix, level, parent, 0 };
	int rc = index_readdir(ix, id, 0, walk_cb, &w);
	return rc ? rc : w.err;
}

static int table_build(struct catalog *c, struct index *ix)
{
	struct node_view nv;
	int err = index_node(ix, ID_ROOT, &nv);
	if (err)
		return err;
	c->uid = nv.rec->uid;
	c->gid = nv.rec->gid;
	c->mtime = nv.rec->mtime_ns;
	/* the records (one pass over "files") on a second thread while this
	 * one walks the tree: both mostly wait on first touches of the map's
	 * pages */
	struct frecs F = { .ix = ix };
	pthread_t th;
	int threaded = pthread_create(&th, NULL, frec_load, &F) == 0;
	if (!threaded)
		frec_load(&F);
	err = walk_dir(c, ix, ID_PATIENTS, 0, 0);
	if (threaded)
		pthread_join(th, NULL);
	if (!err)
		err = F.err;
	/* C6: both passes must have read one generation (a live update may
	 * have committed between their first reads: then build again) */
	c->snap[0] = index_snap_take(ix);   /* this thread's reads */
	c->snap[1] = F.snap;
	if (!err && !c->snap[0])
		err = -EIO;
	if (!err && index_snap_id(F.snap) != index_snap_id(c->snap[0]))
		err = -EAGAIN;
	/* the instances' records, by id */
	for (size_t i = 0; i < c->ninst && !err; i++) {
		struct cat_inst *t = &c->inst[i];
		if (frec_find(&F, t->id, &t->rec, &t->rec_len))
			continue;
		/* not in the id map (should not happen): look it up */
		err = index_node(ix, t->id, &nv);
		if (!err)
			err = index_file_record(ix, nv.relpath, nv.rec->path_len,
						&t->rec, &t->rec_len);
	}
	catalog_hfree(F.v);
	catalog_hfree(F.direct);
	return err;
}

/*
 * The columns and the presence masks of the series (C5): one pass over
 * every record, a series at a time (its cells in tmp, then kept per series
 * or appended to vx). A failed copy leaves the columns to catalog_columns.
 */
static void table_columns(struct catalog *c, struct index *ix)
{
	const uint32_t *tags;
	size_t nt;
	index_tags(ix, &tags, &nt);
	if (!tags) {
		tags = dfs_tag_numbers();
		nt = dfs_ntags;
	}
	c->tags = tags;
	c->ntags = nt;
	size_t ns = c->nseries;
	uint64_t *m = hcalloc(ns ? ns : 1, sizeof(*m));
	uint32_t *ser = NULL, *prev = NULL, *tmp = NULL, *vx = NULL;
	size_t ntmp = 0, nvx = 0, cvx = 0;
	char *pool = NULL;
	size_t plen = 8, pcap = 0;   /* offset 0 (and up to 7): "absent" */
	int ok = m != NULL, copy = 0;
	if (ok && nt && ns && ns <= UINT32_MAX / nt) {
		ser = hcalloc(nt * ns, sizeof(*ser));
		prev = calloc(nt, sizeof(*prev));
		pcap = (size_t)16 << 20;
		pool = hmalloc(pcap);
		copy = ser && prev && pool;
	}
	for (size_t s = 0; ok && s < ns; s++) {
		uint32_t a = c->series[s].first, e = c->series[s].end, len = e - a;
		if (copy && (size_t)len * nt > ntmp) {
			free(tmp);
			ntmp = (size_t)len * nt;
			if (!(tmp = malloc(ntmp * sizeof(*tmp))))
				copy = 0;
		}
		if (copy)
			memset(tmp, 0, (size_t)len * nt * sizeof(*tmp));
		uint64_t bits = 0;
		for (uint32_t i = a; i < e; i++) {
			size_t pos = 0, l, j = 0;
			uint32_t t;
			const char *v;
			while (j < nt && rec_step(c->inst[i].rec, c->inst[i].rec_len, &pos, &t, &v, &l)) {
				while (j < nt && tags[j] < t)
					j++;
				if (j >= nt || tags[j] != t)
					continue;
				if (l && j < 64)
					bits |= (uint64_t)1 << j;
				uint32_t *cell = copy ? &tmp[j * len + (i - a)] : NULL;
				if (!cell || *cell)
					continue;   /* a repeated tag: the first one counts */
				uint32_t o = prev[j];
				uint16_t pl;
				if (o) {
					memcpy(&pl, pool + o, 2);
					if (pl == l && memcmp(pool + o + 2, v, l) == 0) {
						*cell = o;
						continue;
					}
				}
				if (plen + 2 + l > pcap) {
					char *np = pcap * 2 <= CAT_VARY ? catalog_hrealloc(pool, pcap * 2) : NULL;
					if (!np) {
						copy = 0;
						continue;
					}
					pool = np;
					pcap *= 2;
				}
				pl = (uint16_t)l;
				memcpy(pool + plen, &pl, 2);
				memcpy(pool + plen + 2, v, l);
				*cell = prev[j] = (uint32_t)plen;
				plen += 2 + l;
			}
		}
		m[s] |= bits;
		/* C5: one cell for the series, or its instances' cells in vx */
		for (size_t j = 0; copy && j < nt; j++) {
			const uint32_t *col = tmp + j * len;
			uint32_t k = 1;
			while (k < len && col[k] == col[0])
				k++;
			if (k >= len) {
				ser[j * ns + s] = len ? col[0] : 0;
				continue;
			}
			if (nvx + len > cvx) {
				size_t nc = cvx ? cvx * 2 : 65536;
				while (nc < nvx + len)
					nc *= 2;
				uint32_t *nv = nc < CAT_VARY ? realloc(vx, nc * sizeof(*nv)) : NULL;
				if (!nv) {
					copy = 0;
					break;
				}
				vx = nv;
				cvx = nc;
			}
			ser[j * ns + s] = CAT_VARY | (uint32_t)nvx;
			memcpy(vx + nvx, col, len * sizeof(*col));
			nvx += len;
		}
	}
	free(prev);
	free(tmp);
	if (!copy) {
		catalog_hfree(ser);
		catalog_hfree(pool);
		free(vx);
		ser = vx = NULL;
		pool = NULL;
		nvx = 0;
	} else if (nvx < cvx) {
		uint32_t *fit = realloc(vx, (nvx ? nvx : 1) * sizeof(*fit));
		if (fit)
			vx = fit;
	}
	c->smask = m;
	c->vser = ser;
	c->vx = vx;
	c->nvx = nvx;
	c->vpool = pool;
	c->vpool_len = plen;
}

/* the position of tag in c->tags, or c->ntags */
static size_t tag_pos(const struct catalog *c, uint32_t tag)
{
	size_t lo = 0, hi = c->ntags;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c->tags[mid] < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->ntags && c->tags[lo] == tag ? lo : c->ntags;
}

/* the copied column of tag (C5), or NULL */
static const uint32_t *vcolumn(const struct catalog *c, uint32_t tag)
{
	size_t j = tag_pos(c, tag);
	return c->vser && j < c->ntags ? c->vser + j * c->nseries : NULL;
}

static int sv_cmp(const void *x, const void *y)
{
	const struct cat_sv *a = x, *b = y;
	size_t l = a->l < b->l ? a->l : b->l;
	int r = l ? memcmp(a->s, b->s, l) : 0;
	return r ? r : (a->l < b->l ? -1 : a->l > b->l);
}

/* ModalitiesInStudy of every study (C4). 0 or -ENOMEM. */
static int table_modalities(struct catalog *c)
{
	struct cat_col col;
	uint32_t tag = TAG_MODALITY;
	size_t n = 0, cap = 0;
	if (catalog_columns(c, &tag, 1, &col))
		return -ENOMEM;
	c->mod_first = malloc((c->nstudy + 1) * sizeof(*c->mod_first));
	if (!c->mod_first)
		return -ENOMEM;
	for (size_t s = 0; s < c->nstudy; s++) {
		size_t first = n;
		uint32_t last = 0;
		c->mod_first[s] = (uint32_t)n;
		for (uint32_t i = c->study[s].first; i < c->study[s].end; i++) {
			uint32_t o = col.ser ? catalog_coff(c, &col, i) : 0;
			if (o && o == last)
				continue;   /* the same value as the previous one */
			struct cat_sv m = catalog_colv(c, &col, i);
			last = o;
			if (!m.l)
				continue;
			size_t k;
			for (k = first; k < n && sv_cmp(&c->mods[k], &m); k++)
				;
			if (k < n)
				continue;
			if (grow((void **)&c->mods, &cap, n, sizeof(*c->mods)))
				return -ENOMEM;
			c->mods[n++] = m;
		}
		qsort(c->mods + first, n - first, sizeof(*c->mods), sv_cmp);
	}
	c->mod_first[c->nstudy] = (uint32_t)n;
	return 0;
}

static void catalog_free(struct catalog *c)
{
	arena_release(&c->names);
	catalog_hfree(c->pat);
	catalog_hfree(c->study);
	catalog_hfree(c->series);
	catalog_hfree(c->inst);
	catalog_hfree(c->smask);
	catalog_hfree(c->vser);
	free(c->vx);
	catalog_hfree(c->vpool);
	catalog_hfree(c->mods);
	free(c->mod_first);
	for (size_t i = 0; i < c->ncols; i++)
		catalog_hfree(c->cols[i].v);
	free(c->cols);
	pthread_mutex_destroy(&c->cols_lock);
	index_snap_free(c->snap[0]);
	index_snap_free(c->snap[1]);
	free(c);
}

static int catalog_build(struct index *ix, struct catalog **out)
{
	struct catalog *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->cols_lock, NULL);
	c->refs = 1;
	int rc = table_build(c, ix);
	for (int tries = 0; rc == -EAGAIN && tries < 8; tries++) {
		catalog_free(c);   /* two generations mixed (C6): again */
		if (!(c = calloc(1, sizeof(*c))))
			return -ENOMEM;
		pthread_mutex_init(&c->cols_lock, NULL);
		c->refs = 1;
		rc = table_build(c, ix);
	}
	if (!rc) {
		table_columns(c, ix);
		rc = table_modalities(c);
	}
	if (rc) {
		catalog_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* ---- the slot ---- */

/* Build and publish (C1); called with the slot in state 1, without its lock */
static void slot_build(struct dfs *fs)
{
	struct catalog_slot *s = fs->catalog;
	struct catalog *c = NULL;
	int rc = catalog_build(fs->ix, &c);
	if (rc)
		dfs_log("query: cannot load the index: %s", dfs_strerror(rc));
	pthread_mutex_lock(&s->lock);
	struct catalog *old = s->cur;   /* the previous generation (C2) */
	s->cur = c;
	s->err = rc;
	s->state = 2;
	pthread_cond_broadcast(&s->ready);
	pthread_mutex_unlock(&s->lock);
	catalog_put(old);
}

void catalog_invalidate(struct dfs *fs)
{
	struct catalog_slot *s = fs->catalog;
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->state == 2)
		s->state = 0;   /* the next catalog_get builds the new one */
	pthread_mutex_unlock(&s->lock);
}

void catalog_release(struct dfs *fs)
{
	struct catalog_slot *s = fs->catalog;
	struct catalog *old = NULL;
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	if (s->state == 2) {
		old = s->cur;
		s->cur = NULL;
		s->state = 0;   /* the next catalog_get builds it again */
	}
	pthread_mutex_unlock(&s->lock);
	catalog_put(old);
}

static void *slot_main(void *arg)
{
	slot_build(arg);
	return NULL;
}

int catalog_start(struct dfs *fs)
{
	struct catalog_slot *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->ready, NULL);
	s->state = 1;
	fs->catalog = s;
	s->threaded = pthread_create(&s->thread, NULL, slot_main, fs) == 0;
	if (!s->threaded)
		s->state = 0;   /* catalog_get builds it */
	return 0;
}

void catalog_stop(struct dfs *fs)
{
	struct catalog_slot *s = fs->catalog;
	if (!s)
		return;
	if (s->threaded)
		pthread_join(s->thread, NULL);
	if (s->cur)
		catalog_put(s->cur);
	pthread_cond_destroy(&s->ready);
	pthread_mutex_destroy(&s->lock);
	free(s);
	fs->catalog = NULL;
}

int catalog_get(struct dfs *fs, struct catalog **out)
{
	struct catalog_slot *s = fs->catalog;
	int rc;
	if (!s)
		return -EIO;
	pthread_mutex_lock(&s->lock);
	while (s->state == 1)
		pthread_cond_wait(&s->ready, &s->lock);
	if (s->state == 0) {
		s->state = 1;
		pthread_mutex_unlock(&s->lock);
		slot_build(fs);
		pthread_mutex_lock(&s->lock);
	}
	rc = s->err;
	if (!rc) {
		__atomic_add_fetch(&s->cur->refs, 1, __ATOMIC_RELAXED);
		*out = s->cur;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

struct catalog *catalog_ref(struct catalog *c)
{
	__atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
	return c;
}

void catalog_put(struct catalog *c)
{
	if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
		catalog_free(c);
}

/* ---- reading ---- */

void catalog_range(const struct catalog *c, int level, uint32_t x, uint32_t *a,
		   uint32_t *e)
{
	if (level == CAT_INSTANCES) {
		*a = x;
		*e = x + 1;
	} else if (level == CAT_SERIES) {
		*a = c->series[x].first;
		*e = c->series[x].end;
	} else {
		*a = c->study[x].first;
		*e = c->study[x].end;
	}
}

uint32_t catalog_study_nseries(const struct catalog *c, uint32_t x)
{
	/* series are in tree order: a study's are contiguous (C3) */
	size_t lo = 0, hi = c->nseries, b;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (c->series[m].parent < x)
			lo = m + 1;
		else
			hi = m;
	}
	b = lo;
	hi = c->nseries;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (c->series[m].parent <= x)
			lo = m + 1;
		else
			hi = m;
	}
	return (uint32_t)(lo - b);
}

void catalog_path(const struct catalog *c, int level, uint32_t x, struct strbuf *sb)
{
	const struct cat_dir *se = NULL, *st, *pa;
	const struct cat_inst *in = NULL;
	if (level == CAT_INSTANCES) {
		in = &c->inst[x];
		se = &c->series[in->series];
		st = &c->study[se->parent];
	} else if (level == CAT_SERIES) {
		se = &c->series[x];
		st = &c->study[se->parent];
	} else {
		st = &c->study[x];
	}
	pa = &c->pat[st->parent];
	strbuf_addstr(sb, "patients/");
	strbuf_add(sb, pa->name.s, pa->name.l);
	strbuf_addch(sb, '/');
	strbuf_add(sb, st->name.s, st->name.l);
	if (se) {
		strbuf_addch(sb, '/');
		strbuf_add(sb, se->name.s, se->name.l);
	}
	if (in) {
		strbuf_addch(sb, '/');
		strbuf_add(sb, in->name.s, in->name.l);
	}
}

void catalog_modalities(const struct catalog *c, uint32_t x, struct strbuf *sb)
{
	for (uint32_t k = c->mod_first[x]; k < c->mod_first[x + 1]; k++) {
		if (k > c->mod_first[x])
			strbuf_addch(sb, '\\');
		strbuf_add(sb, c->mods[k].s, c->mods[k].l);
	}
}

/* the lazy column of tag, or NULL (under cols_lock) */
static const struct cat_sv *lazy_column(struct catalog *c, uint32_t tag)
{
	for (size_t i = 0; i < c->ncols; i++)
		if (c->cols[i].tag == tag)
			return c->cols[i].v;
	return NULL;
}

/*
 * Make the lazy columns of tags[0..n) (under cols_lock): one pass over the
 * records for all missing ones (attributes are stored in ascending tag
 * order, so each record is read up to the largest tag wanted).
 */
static int lazy_fill(struct catalog *c, const uint32_t *tags, size_t n)
{
	uint32_t miss[64];
	struct cat_sv *cv[64];
	size_t nm = 0;
	uint32_t maxtag = 0;
	for (size_t k = 0; k < n && nm < 64; k++) {
		int have = lazy_column(c, tags[k]) != NULL;
		for (size_t i = 0; i < nm && !have; i++)
			have = miss[i] == tags[k];
		if (!have)
			miss[nm++] = tags[k];
	}
	if (!nm)
		return 0;
	struct cat_lazycol *nc = realloc(c->cols, (c->ncols + nm) * sizeof(*nc));
	if (!nc)
		return -ENOMEM;
	c->cols = nc;
	for (size_t k = 0; k < nm; k++) {
		cv[k] = hcalloc(c->ninst ? c->ninst : 1, sizeof(struct cat_sv));
		if (!cv[k]) {
			while (k--)
				catalog_hfree(cv[k]);
			return -ENOMEM;
		}
		if (miss[k] > maxtag)
			maxtag = miss[k];
	}
	for (size_t i = 0; i < c->ninst; i++) {
		size_t pos = 0, l, found = 0;
		uint32_t t;
		const char *v;
		while (found < nm && rec_step(c->inst[i].rec, c->inst[i].rec_len, &pos, &t, &v, &l)) {
			if (t > maxtag)
				break;
			for (size_t k = 0; k < nm; k++)
				if (miss[k] == t) {
					cv[k][i].s = v;
					cv[k][i].l = l;
					found++;
				}
		}
	}
	for (size_t k = 0; k < nm; k++) {
		c->cols[c->ncols].tag = miss[k];
		c->cols[c->ncols++].v = cv[k];
	}
	return 0;
}

int catalog_columns(struct catalog *c, const uint32_t *tags, size_t n,
		    struct cat_col *cols)
{
	uint32_t need[64];
	size_t nn = 0;
	int rc = 0;
	if (n > 64)
		return -EINVAL;
	for (size_t k = 0; k < n; k++) {
		cols[k].ser = vcolumn(c, tags[k]);
		cols[k].sv = NULL;
		if (!cols[k].ser)
			need[nn++] = tags[k];
	}
	if (!nn)
		return 0;
	pthread_mutex_lock(&c->cols_lock);
	rc = lazy_fill(c, need, nn);
	for (size_t k = 0; k < n && !rc; k++)
		if (!cols[k].ser && !(cols[k].sv = lazy_column(c, tags[k])))
			rc = -ENOMEM;
	pthread_mutex_unlock(&c->cols_lock);
	return rc;
}

/* May the instances a..e hold a non-empty value of tag? (masks) */
static int mask_may_have(const struct catalog *c, uint32_t a, uint32_t e, uint32_t tag)
{
	if (!c->smask || a >= e)
		return 1;
	size_t j = tag_pos(c, tag);
	if (j >= c->ntags || j >= 64)
		return 1;
	for (uint32_t s = c->inst[a].series; s <= c->inst[e - 1].series; s++)
		if (c->smask[s] >> j & 1)
			return 1;
	return 0;
}

#define FIRST_MAX 512

void catalog_first_values(struct catalog *c, uint32_t a, uint32_t e,
			  const uint32_t *tags, size_t n, struct cat_sv *vals)
{
	size_t missing = 0;
	unsigned char from_rec[FIRST_MAX];
	for (size_t k = 0; k < n; k++) {
		vals[k].s = "";
		vals[k].l = 0;
		from_rec[k < FIRST_MAX ? k : FIRST_MAX - 1] = 0;
		if (!tags[k])
			continue;
		struct cat_col col = { vcolumn(c, tags[k]), NULL };
		if (col.ser) {
			/* the copied values: the first non-empty one */
			for (uint32_t i = a; i < e; i++)
				if (catalog_coff(c, &col, i) && (vals[k] = catalog_colv(c, &col, i)).l)
					break;
			continue;
		}
		if (e - a <= 1 || mask_may_have(c, a, e, tags[k])) {
			missing++;
			if (k < FIRST_MAX)
				from_rec[k] = 1;
		}
	}
	/* the wanted tags, ascending (attributes are stored in ascending tag
	 * order): one merge pass per record, up to the largest tag wanted */
	uint64_t want[FIRST_MAX];
	size_t nw = 0;
	for (size_t k = 0; k < n && k < FIRST_MAX; k++)
		if (from_rec[k])
			want[nw++] = (uint64_t)tags[k] << 32 | k;
	for (size_t i = 1; i < nw; i++)   /* nearly sorted: insertion sort */
		for (size_t j = i; j > 0 && want[j - 1] > want[j]; j--) {
			uint64_t x = want[j];
			want[j] = want[j - 1];
			want[j - 1] = x;
		}
	uint32_t maxtag = nw ? (uint32_t)(want[nw - 1] >> 32) : 0;
	for (uint32_t i = a; i < e && missing; i++) {
		size_t pos = 0, l, w = 0;
		uint32_t t;
		const char *v;
		while (w < nw && rec_step(c->inst[i].rec, c->inst[i].rec_len, &pos, &t, &v, &l)) {
			if (t > maxtag)
				break;
			while (w < nw && (uint32_t)(want[w] >> 32) < t)
				w++;
			for (size_t u = w; u < nw && (uint32_t)(want[u] >> 32) == t; u++) {
				size_t k = (size_t)(want[u] & 0xFFFFFFFFu);
				if (l && !vals[k].l) {
					vals[k].s = v;
					vals[k].l = l;
					if (missing)
						missing--;
				}
			}
		}
	}
}
