/*
 * kind_query.c - query/<level>/<Keyword=value>/.../ directories.
 *
 *   query/studies/Modality=CT/PatientSex=F/   the matching studies as
 *   query/series/...                          relative symlinks into
 *   query/instances/...                       patients/, plus manifest.csv
 *                                             and manifest.jsonl
 *
 * Design notes
 * - Answered from the index only. At mount (index_set_warm: a thread of its
 *   own, as soon as the index is reopened) the tree is walked once
 *   (patients/ -> studies -> series -> instance .dcm entries) into an
 *   in-memory table in tree order, while a second thread reads every file
 *   record in one cursor pass (by id). A query that comes earlier waits on
 *   T.lock. Then, without the lock, one pass over the records copies the
 *   value of every indexed tag into columns (a uint32 offset per instance
 *   and tag into a value pool; equal values of consecutive instances share
 *   one copy, and are matched once) and per-series presence masks; until
 *   that is published, columns are pulled from the records on first use.
 *   Memory, per instance: ~48 B table + 4 B per indexed tag + the pool
 *   (~40 B on the bench archive): ~280 B with the 48 default tags. Big
 *   arrays are in huge-page-advised mappings (page faults are costly on
 *   VMs). Record pointers point into the LMDB map, valid while mounted
 *   (index.h).
 * - Matching (PS3.4 C.2.2.2, as QIDO-RS uses it): UI: exact, a list with
 *   ',' or '\'; DA/TM/DT: single value or range A-B, A-, -B (values padded
 *   with zeros to full precision, then compared as text); PN: case-
 *   insensitive, whole value or any single name component, with * and ?;
 *   other VRs: exact (IS/DS: numerically) or * ? wildcards, against any
 *   value of a multi-valued attribute; an empty value matches everything;
 *   a non-empty one never matches an absent or empty attribute.
 *   ModalitiesInStudy is computed: the study has an instance whose Modality
 *   matches (a ',' list allowed). A study / series matches when one of its
 *   instances matches every component.
 * - Errors are not "no matches": a malformed component (no '=', bad %-escape,
 *   unknown keyword, bad date/time, wildcard in a UID) is EINVAL; a known
 *   tag that the index does not hold is EOPNOTSUPP; each logs what to do.
 * - Ids: query directories get dynamic ids >= QUERY_ID_BASE from the FNV-1a
 *   hash of their path below query/; a table id -> parsed query (and its
 *   cached results and manifests) lives in memory, bounded: entries the
 *   kernel no longer knows (lookup count 0, see forget) are dropped when it
 *   is full; cached results are dropped beyond QCACHE_BYTES and recomputed
 *   (deterministically) when needed again. Symlinks need no state: their id
 *   is the target's id plus the depth of the directory they are in, enough
 *   to write the relative target.
 * - Listing order: tree order of the targets (stable). Names: the target's
 *   tree name; names that collide within one listing all get " ~xxxxxxxx"
 *   (FNV-1a of the target's path), before ".dcm" for instances.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/mman.h>

#include "fs.h"
#include "error.h"
#include "log.h"
#include "record.h"
#include "tags.h"

#define QTABLE_MAX 4096
#define QCACHE_BYTES ((size_t)512 << 20)
#define TAG_MODALITIES_IN_STUDY 0x00080061u
#define MAX_TERMS 64

enum { LV_STUDIES = 0, LV_SERIES = 1, LV_INSTANCES = 2 };
static const char *const level_names[] = { "studies", "series", "instances" };

struct sv {
	const char *s;
	size_t l;
};

/* ---- the instance table ---- */

struct tdir {
	uint64_t id;
	struct sv name;
	uint32_t parent;      /* index in the level above */
	uint32_t first, end;  /* instance range */
};

struct tinst {
	uint64_t id;
	struct sv name;       /* "<n>.dcm" */
	uint32_t series;
	const void *rec;
	size_t rec_len;
};

struct column {
	uint32_t tag;
	struct sv *v;
};

static struct {
	pthread_mutex_t lock;
	int built;
	int err;
	struct tdir *pat, *study, *series;
	size_t npat, nstudy, nseries, cpat, cstudy, cseries;
	struct tinst *inst;
	size_t ninst, cinst;
	struct column *cols;
	size_t ncols;
	/* per series: bit j set when an instance has a non-empty value of the
	 * j-th indexed tag (j < 64); NULL until computed (table_masks) */
	uint64_t *smask;
	const uint32_t *mtags;
	size_t nmtags;
	/* every indexed tag's values, copied out of the map (table_masks):
	 * vcell[j * ninst + i] is the offset in vpool of instance i's value
	 * of mtags[j] (a uint16 length, then the bytes; 0: absent). Equal
	 * values of consecutive instances share one copy. NULL until done. */
	uint32_t *vcell;
	char *vpool;
	size_t vpool_len;
	/* attributes of the root, for every query object */
	uint32_t uid, gid;
	int64_t mtime;
	/* the mount's warm-up (table_warm) is under way: requests wait for it
	 * (on ready) rather than pull columns from the records meanwhile */
	int warming;
	pthread_cond_t ready;
} T = { .lock = PTHREAD_MUTEX_INITIALIZER, .ready = PTHREAD_COND_INITIALIZER };

/* Take T.lock once the warm-up is over */
static void lock_ready(void)
{
	pthread_mutex_lock(&T.lock);
	while (T.warming)
		pthread_cond_wait(&T.ready, &T.lock);
}

struct walk {
	struct index *ix;
	int level;            /* 0 patients/, 1 patient, 2 study, 3 series */
	uint32_t parent;
	int err;
};

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

static void hfree(void *p)
{
	if (!p)
		return;
	size_t *h = (size_t *)p - 2;
	if (h[0])
		munmap(h, h[0]);
	else
		free(h);
}

static void *hrealloc(void *p, size_t size)
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
	hfree(p);
	return np;
}

static int grow(void **p, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 256;
	void *np = hrealloc(*p, nc * sz);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = nc;
	return 0;
}

static int walk_dir(struct index *ix, uint64_t id, int level, uint32_t parent);

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

/*
 * The file records by instance id, from one cursor pass over the "files" DB
 * (much cheaper than a node and a record lookup per instance). Only while
 * the table is built.
 */
struct frec {
	uint64_t id;
	const void *rec;
	size_t len;
};

static struct {
	struct frec *v;
	size_t n, cap;
	uint32_t *direct;     /* id -> index + 1, when ids are dense enough */
	uint64_t maxid;
	int err;
} F;

static int frec_cb(void *ctx, const char *relpath, size_t len, const void *val,
		   size_t vlen)
{
	const struct rec_head *h = val;
	(void)ctx; (void)relpath; (void)len;
	if (vlen < sizeof(*h) || h->status != REC_OK)
		return 0;
	if ((F.err = grow((void **)&F.v, &F.cap, F.n, sizeof(*F.v))))
		return 1;
	F.v[F.n].id = h->id;
	F.v[F.n].rec = val;
	F.v[F.n++].len = vlen;
	if (h->id > F.maxid)
		F.maxid = h->id;
	return 0;
}

static int frec_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct frec *)a)->id, y = ((const struct frec *)b)->id;
	return x < y ? -1 : x > y;
}

static int frec_load(struct index *ix)
{
	int rc = index_files_scan(ix, frec_cb, NULL);
	if (!rc)
		rc = F.err;
	if (rc)
		return rc;
	if (F.n && F.n < UINT32_MAX && F.maxid < 8 * (uint64_t)F.n + (1u << 20)) {
		F.direct = hcalloc(F.maxid + 1, sizeof(*F.direct));
		if (F.direct) {
			for (size_t i = 0; i < F.n; i++)
				F.direct[F.v[i].id] = (uint32_t)i + 1;
			return 0;
		}
	}
	qsort(F.v, F.n, sizeof(*F.v), frec_cmp);
	return 0;
}

struct frec_job {
	struct index *ix;
	int rc;
};

static void *frec_main(void *arg)
{
	struct frec_job *j = arg;
	j->rc = frec_load(j->ix);
	return NULL;
}

static int frec_find(uint64_t id, const void **rec, size_t *len)
{
	const struct frec *f = NULL;
	if (F.direct) {
		if (id <= F.maxid && F.direct[id])
			f = &F.v[F.direct[id] - 1];
	} else {
		size_t lo = 0, hi = F.n;
		while (lo < hi) {
			size_t m = (lo + hi) / 2;
			if (F.v[m].id == id) {
				f = &F.v[m];
				break;
			}
			if (F.v[m].id < id)
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

static void frec_free(void)
{
	hfree(F.v);
	hfree(F.direct);
	memset(&F, 0, sizeof(F));
}

static int walk_cb(void *ctx, uint64_t ino, const char *name, size_t nl,
		   uint64_t next)
{
	struct walk *w = ctx;
	unsigned k = ino_kind(ino);
	(void)next;
	if (w->level < 3 && k == KIND_DIR) {
		struct tdir **v = w->level == 0 ? &T.pat : w->level == 1 ? &T.study : &T.series;
		size_t *n = w->level == 0 ? &T.npat : w->level == 1 ? &T.nstudy : &T.nseries;
		size_t *c = w->level == 0 ? &T.cpat : w->level == 1 ? &T.cstudy : &T.cseries;
		if ((w->err = grow((void **)v, c, *n, sizeof(**v))))
			return 1;
		struct tdir *d = &(*v)[*n];
		d->id = ino_id(ino);
		d->name.s = name;
		d->name.l = nl;
		d->parent = w->parent;
		d->first = (uint32_t)T.ninst;
		uint32_t me = (uint32_t)(*n)++;
		w->err = walk_dir(w->ix, d->id, w->level + 1, me);
		(*v)[me].end = (uint32_t)T.ninst;
		return w->err != 0;
	}
	if (w->level == 3 && k == KIND_DCM) {
		if ((w->err = grow((void **)&T.inst, &T.cinst, T.ninst, sizeof(*T.inst))))
			return 1;
		struct tinst *t = &T.inst[T.ninst];
		t->id = ino_id(ino);
		t->name.s = name;
		t->name.l = nl;
		t->series = w->parent;
		t->rec = NULL;   /* from the "files" pass, see table_build_ix */
		t->rec_len = 0;
		T.ninst++;
	}
	return 0;
}

static int walk_dir(struct index *ix, uint64_t id, int level, uint32_t parent)
{
	struct walk w = { ix, level, parent, 0 };
	int rc = index_readdir(ix, id, 0, walk_cb, &w);
	return rc ? rc : w.err;
}

/* under T.lock */
static int table_build_ix(struct index *ix)
{
	struct node_view nv;
	if (T.built)
		return T.err;
	T.built = 1;
	T.err = index_node(ix, ID_ROOT, &nv);
	if (!T.err) {
		T.uid = nv.rec->uid;
		T.gid = nv.rec->gid;
		T.mtime = nv.rec->mtime_ns;
		/* the records (one pass over "files") on a second thread while
		 * this one walks the tree: both mostly wait on first touches of
		 * the map's pages */
		pthread_t th;
		struct frec_job job = { ix, 0 };
		int threaded = pthread_create(&th, NULL, frec_main, &job) == 0;
		if (!threaded)
			job.rc = frec_load(ix);
		T.err = walk_dir(ix, ID_PATIENTS, 0, 0);
		if (threaded)
			pthread_join(th, NULL);
		if (!T.err)
			T.err = job.rc;
		/* the instances' records, by id */
		for (size_t i = 0; i < T.ninst && !T.err; i++) {
			struct tinst *t = &T.inst[i];
			if (frec_find(t->id, &t->rec, &t->rec_len))
				continue;
			/* not in the id map (should not happen): look it up */
			T.err = index_node(ix, t->id, &nv);
			if (!T.err)
				T.err = index_file_record(ix, nv.relpath, nv.rec->path_len,
							  &t->rec, &t->rec_len);
		}
		frec_free();
	}
	if (T.err)
		dfs_log("query: cannot load the index: %s", dfs_strerror(T.err));
	return T.err;
}

/*
 * The presence masks of the series: one pass over every record, so that a
 * manifest row stops reading a study's or series' records once it has
 * every value that exists there. Runs after the table is built, without
 * T.lock (the table does not change once built), then publishes them.
 */
static void table_masks(struct index *ix)
{
	const uint32_t *tags;
	size_t nt;
	index_tags(ix, &tags, &nt);
	if (!tags) {
		tags = dfs_tag_numbers();
		nt = dfs_ntags;
	}
	size_t n = T.ninst;
	uint64_t *m = hcalloc(T.nseries ? T.nseries : 1, sizeof(*m));
	uint32_t *cell = NULL, *prev = NULL;
	char *pool = NULL;
	size_t plen = 8, pcap = 0;   /* offset 0 (and up to 7): "absent" */
	int ok = m != NULL;
	if (ok && nt && n && n <= UINT32_MAX / nt) {
		cell = hcalloc(nt * n, sizeof(*cell));
		prev = calloc(nt, sizeof(*prev));
		pcap = (size_t)64 << 20;
		pool = hmalloc(pcap);
		if (!cell || !prev || !pool) {
			hfree(cell);
			hfree(pool);
			cell = NULL;
			pool = NULL;
		}
	}
	for (size_t i = 0; ok && i < n; i++) {
		size_t pos = 0, l, j = 0;
		uint32_t t;
		const char *v;
		uint64_t bits = 0;
		while (j < nt && rec_step(T.inst[i].rec, T.inst[i].rec_len, &pos, &t, &v, &l)) {
			while (j < nt && tags[j] < t)
				j++;
			if (j >= nt || tags[j] != t)
				continue;
			if (l && j < 64)
				bits |= (uint64_t)1 << j;
			if (!cell || cell[j * n + i])
				continue;   /* a repeated tag: the first one counts */
			uint32_t o = prev[j];
			uint16_t pl;
			if (o) {
				memcpy(&pl, pool + o, 2);
				if (pl == l && memcmp(pool + o + 2, v, l) == 0) {
					cell[j * n + i] = o;
					continue;
				}
			}
			if (plen + 2 + l > pcap) {
				char *np = pcap * 2 <= UINT32_MAX ? hrealloc(pool, pcap * 2) : NULL;
				if (!np) {
					hfree(cell);
					hfree(pool);
					cell = NULL;
					pool = NULL;
					continue;
				}
				pool = np;
				pcap *= 2;
			}
			pl = (uint16_t)l;
			memcpy(pool + plen, &pl, 2);
			memcpy(pool + plen + 2, v, l);
			cell[j * n + i] = prev[j] = (uint32_t)plen;
			plen += 2 + l;
		}
		if (m)
			m[T.inst[i].series] |= bits;
	}
	free(prev);
	pthread_mutex_lock(&T.lock);
	if (T.smask || !m) {
		hfree(m);
		hfree(cell);
		hfree(pool);
	} else {
		T.mtags = tags;
		T.nmtags = nt;
		T.smask = m;
		T.vcell = cell;
		T.vpool = pool;
		T.vpool_len = plen;
	}
	pthread_mutex_unlock(&T.lock);
}

/* A column: the copied values when there, else values in the map */
struct colref {
	const uint32_t *off;
	const struct sv *sv;
};

static inline struct sv colv(const struct colref *c, size_t i)
{
	if (c->off) {
		struct sv v = { "", 0 };
		uint32_t o = c->off[i];
		if (o) {
			uint16_t l;
			memcpy(&l, T.vpool + o, 2);
			v.s = T.vpool + o + 2;
			v.l = l;
		}
		return v;
	}
	return c->sv[i];
}

/* the copied column of tag, or NULL */
static const uint32_t *vcolumn(uint32_t tag)
{
	if (!T.vcell)
		return NULL;
	size_t lo = 0, hi = T.nmtags;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (T.mtags[mid] < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= T.nmtags || T.mtags[lo] != tag)
		return NULL;
	return T.vcell + lo * T.ninst;
}

/* May the instances a..e hold a non-empty value of tag? (masks) */
static int mask_may_have(uint32_t a, uint32_t e, uint32_t tag)
{
	if (!T.smask || a >= e)
		return 1;
	size_t lo = 0, hi = T.nmtags;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (T.mtags[mid] < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo >= T.nmtags || T.mtags[lo] != tag || lo >= 64)
		return 1;
	for (uint32_t s = T.inst[a].series; s <= T.inst[e - 1].series; s++)
		if (T.smask[s] >> lo & 1)
			return 1;
	return 0;
}

static int table_build(struct dfs *fs)
{
	return table_build_ix(fs->ix);
}

/*
 * The table is loaded on a thread of its own as soon as the index is
 * reopened for the mount (index_set_warm), so it is usually ready before
 * the first query; a query that comes earlier waits for it on T.lock.
 */
static void table_warm(struct index *ix)
{
	pthread_mutex_lock(&T.lock);
	T.warming = 1;
	int rc = table_build_ix(ix);
	pthread_mutex_unlock(&T.lock);
	if (!rc)
		table_masks(ix);
	pthread_mutex_lock(&T.lock);
	T.warming = 0;
	pthread_cond_broadcast(&T.ready);
	pthread_mutex_unlock(&T.lock);
}

__attribute__((constructor)) static void table_warm_register(void)
{
	index_set_warm(table_warm);
}

/*
 * Make sure the columns of tags[0..n) exist (under T.lock): one pass over
 * the records for all missing ones (attributes are stored in ascending tag
 * order, so each record is read up to the largest tag wanted).
 */
static int columns_fill(const uint32_t *tags, size_t n)
{
	uint32_t miss[MAX_TERMS];
	struct sv *cv[MAX_TERMS];
	size_t nm = 0;
	uint32_t maxtag = 0;
	for (size_t k = 0; k < n && nm < MAX_TERMS; k++) {
		int have = 0;
		for (size_t i = 0; i < T.ncols && !have; i++)
			have = T.cols[i].tag == tags[k];
		for (size_t i = 0; i < nm && !have; i++)
			have = miss[i] == tags[k];
		if (!have)
			miss[nm++] = tags[k];
	}
	if (!nm)
		return 0;
	struct column *nc = realloc(T.cols, (T.ncols + nm) * sizeof(*nc));
	if (!nc)
		return -ENOMEM;
	T.cols = nc;
	for (size_t k = 0; k < nm; k++) {
		cv[k] = hcalloc(T.ninst ? T.ninst : 1, sizeof(struct sv));
		if (!cv[k]) {
			while (k--)
				hfree(cv[k]);
			return -ENOMEM;
		}
		if (miss[k] > maxtag)
			maxtag = miss[k];
	}
	for (size_t i = 0; i < T.ninst; i++) {
		size_t pos = 0, l, found = 0;
		uint32_t t;
		const char *v;
		while (found < nm && rec_step(T.inst[i].rec, T.inst[i].rec_len, &pos, &t, &v, &l)) {
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
		T.cols[T.ncols].tag = miss[k];
		T.cols[T.ncols++].v = cv[k];
	}
	return 0;
}

static const struct sv *column(uint32_t tag)
{
	for (size_t i = 0; i < T.ncols; i++)
		if (T.cols[i].tag == tag)
			return T.cols[i].v;
	if (columns_fill(&tag, 1))
		return NULL;
	return T.cols[T.ncols - 1].v;
}

/* ---- parsing a component ---- */

enum mtype { M_ANY, M_UID, M_RANGE, M_PN, M_STR };

struct term {
	uint32_t tag;
	char vr[3];
	enum mtype m;
	char *val;            /* decoded value */
	char **list;          /* M_UID (and ModalitiesInStudy): the values */
	size_t nlist;
	char lo[32], hi[32];  /* M_RANGE, normalized; "" open */
	int has_lo, has_hi;
	int wild, numeric;
	double num;
};

struct qres {
	uint32_t *idx;        /* matched instance / series / study indexes */
	size_t n;
	char **names;         /* link names, parallel to idx */
	uint32_t *by_name;    /* positions sorted by name */
	char *csv, *jsonl;
	size_t csv_len, jsonl_len;
	size_t bytes;
};

struct query {
	uint64_t qid;
	char *key;            /* "series/Modality=CT/..." */
	int level, depth;
	uint64_t parent_ino;
	struct term *t;
	size_t nt;
	uint64_t nlookup;
	uint64_t used;
	struct qres *res;
};

static struct {
	struct query **v;
	size_t n, cap;
	uint64_t clock;
	size_t cache_bytes;
} Q;

static void terms_free(struct term *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(t[i].val);
		for (size_t j = 0; j < t[i].nlist; j++)
			free(t[i].list[j]);
		free(t[i].list);
	}
	free(t);
}

static void res_free(struct qres *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->names[i]);
	free(r->names);
	hfree(r->idx);
	free(r->by_name);
	free(r->csv);
	free(r->jsonl);
	free(r);
}

static void query_free(struct query *q)
{
	if (!q)
		return;
	if (q->res)
		Q.cache_bytes -= q->res->bytes;
	res_free(q->res);
	terms_free(q->t, q->nt);
	free(q->key);
	free(q);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* %XX-decode; NULL on a bad escape or %00 */
static char *url_decode(const char *s, size_t l)
{
	char *o = malloc(l + 1), *p = o;
	if (!o)
		return NULL;
	for (size_t i = 0; i < l; i++) {
		if (s[i] != '%') {
			*p++ = s[i];
			continue;
		}
		if (i + 2 >= l) {
			free(o);
			return NULL;
		}
		int h = hexval(s[i + 1]);
		int g = hexval(s[i + 2]);
		if (h < 0 || g < 0 || (h == 0 && g == 0)) {
			free(o);
			return NULL;
		}
		*p++ = (char)(h * 16 + g);
		i += 2;
	}
	*p = 0;
	return o;
}

static int vr_in(const char *vr, const char *list)
{
	for (const char *p = list;; p += 3) {
		if (vr[0] == p[0] && vr[1] == p[1])
			return 1;
		if (!p[2])
			return 0;
	}
}

/* Normalize a DA/TM/DT value to full precision; 0 or -1 when malformed.
 * DA: YYYYMMDD; TM: HH[MM[SS[.F{1,6}]]] (':' ignored) -> HHMMSS.FFFFFF;
 * DT: YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]] -> YYYYMMDDHHMMSS.FFFFFF (zeros) */
static int norm_dt(const char *vr, const char *s, size_t l, char out[32])
{
	char d[32];
	size_t n = 0, frac = 0, wl = 0;
	int dot = 0, is_tm = vr[0] == 'T', is_da = vr[0] == 'D' && vr[1] == 'A';
	for (size_t i = 0; i < l; i++) {
		char c = s[i];
		if (c == ':' && is_tm)
			continue;
		if (c == '.' && !is_da && !dot) {
			dot = 1;
			continue;
		}
		if (c < '0' || c > '9' || n >= 30)
			return -1;
		if (dot)
			frac++;
		else
			wl++;
		d[n++] = c;
	}
	if (is_da) {
		if (n != 8)
			return -1;
		memcpy(out, d, 8);
		out[8] = 0;
		return 0;
	}
	size_t whole = is_tm ? 6 : 14;
	if (wl == 0 || wl > whole || frac > 6 || (dot && (wl != whole || !frac)) ||
	    (wl % 2) || (!is_tm && wl < 4))
		return -1;
	memset(out, '0', whole + 7);
	memcpy(out, d, wl);
	out[whole] = '.';
	memcpy(out + whole + 1, d + wl, frac);
	out[whole + 7] = 0;
	return 0;
}

static char *dupn(const char *s, size_t l)
{
	char *o = malloc(l + 1);
	if (o) {
		memcpy(o, s, l);
		o[l] = 0;
	}
	return o;
}

static int is_tag_indexed(const struct dfs *fs, uint32_t tag)
{
	const uint32_t *v;
	size_t n;
	index_tags(fs->ix, &v, &n);
	if (!v)   /* an index that predates the recorded tag set */
		return tags_by_tag(tag) != NULL;
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		if (v[m] == tag)
			return 1;
		if (v[m] < tag)
			lo = m + 1;
		else
			hi = m;
	}
	return 0;
}

static int split_list(struct term *t, const char *v, const char *seps)
{
	const char *p = v;
	for (;;) {
		size_t l = strcspn(p, seps);
		char **nl = realloc(t->list, (t->nlist + 1) * sizeof(*nl));
		if (!nl)
			return -ENOMEM;
		t->list = nl;
		if (!(t->list[t->nlist] = dupn(p, l)))
			return -ENOMEM;
		t->nlist++;
		if (!p[l])
			return 0;
		p += l + 1;
	}
}

/*
 * Parse "Keyword=value" into t. 0, -EINVAL (malformed), -EOPNOTSUPP (not
 * indexed) or -ENOMEM; why gets the reason.
 */
static int term_parse(struct dfs *fs, const char *name, struct term *t, char *why,
		      size_t whylen)
{
	const char *eq = strchr(name, '=');
	char kw[128];
	memset(t, 0, sizeof(*t));
	if (!eq || eq == name || (size_t)(eq - name) >= sizeof(kw)) {
		snprintf(why, whylen, "'%s' is not Keyword=value", name);
		return -EINVAL;
	}
	memcpy(kw, name, (size_t)(eq - name));
	kw[eq - name] = 0;
	if (strcmp(kw, "ModalitiesInStudy") == 0 || strcasecmp(kw, "00080061") == 0) {
		t->tag = TAG_MODALITIES_IN_STUDY;
		strcpy(t->vr, "CS");
	} else if (tags_parse(kw, &t->tag, t->vr)) {
		snprintf(why, whylen, "'%s' is not a DICOM keyword (see PS3.6) nor a tag as "
			 "GGGGEEEE", kw);
		return -EINVAL;
	}
	t->val = url_decode(eq + 1, strlen(eq + 1));
	if (!t->val) {
		snprintf(why, whylen, "bad %%-escape in '%s' (use %%XX, e.g. %%2F for '/')", name);
		return -EINVAL;
	}
	if (t->tag != TAG_MODALITIES_IN_STUDY && !is_tag_indexed(fs, t->tag)) {
		snprintf(why, whylen, "(%04X,%04X) %s is not indexed: remount with "
			 "-o index_tags=%08X (the files are re-parsed once)", t->tag >> 16,
			 t->tag & 0xFFFF, kw, t->tag);
		return -EOPNOTSUPP;
	}
	const char *v = t->val;
	size_t l = strlen(v);
	if (!l) {
		t->m = M_ANY;
		return 0;
	}
	if (t->tag == TAG_MODALITIES_IN_STUDY) {
		t->m = M_STR;
		t->wild = strpbrk(v, "*?") != NULL;
		return split_list(t, v, ",\\");
	}
	if (vr_in(t->vr, "UI")) {
		if (strpbrk(v, "*?")) {
			snprintf(why, whylen, "'%s': wildcards are not allowed for UIDs; "
				 "give a ','-separated list", name);
			return -EINVAL;
		}
		t->m = M_UID;
		return split_list(t, v, ",\\");
	}
	if (vr_in(t->vr, "DA TM DT")) {
		const char *dash = strchr(v, '-');
		t->m = M_RANGE;
		if (strpbrk(v, "*?") || (dash && strchr(dash + 1, '-')) || (!dash && 0)) {
			snprintf(why, whylen, "'%s': a %s value is a single value or a range A-B, "
				 "A- or -B", name, t->vr);
			return -EINVAL;
		}
		const char *a = v, *b = dash ? dash + 1 : v;
		size_t al = dash ? (size_t)(dash - v) : l, bl = dash ? strlen(b) : l;
		if (dash && !al && !bl) {
			snprintf(why, whylen, "'%s': empty range", name);
			return -EINVAL;
		}
		if ((al && norm_dt(t->vr, a, al, t->lo)) || (bl && norm_dt(t->vr, b, bl, t->hi))) {
			snprintf(why, whylen, "'%s': not a valid %s value (%s)", name, t->vr,
				 t->vr[0] == 'D' && t->vr[1] == 'A' ? "YYYYMMDD" :
				 t->vr[0] == 'T' ? "HHMMSS.FFFFFF" : "YYYYMMDDHHMMSS.FFFFFF");
			return -EINVAL;
		}
		t->has_lo = al != 0;
		t->has_hi = bl != 0;
		return 0;
	}
	t->wild = strpbrk(v, "*?") != NULL;
	if (vr_in(t->vr, "PN")) {
		t->m = M_PN;
		return 0;
	}
	t->m = M_STR;
	if (!t->wild && vr_in(t->vr, "IS DS")) {
		char *end;
		t->num = strtod(v, &end);
		t->numeric = end != v && *end == 0;
	}
	return 0;
}

/* ---- matching ---- */

/* * and ? wildcard match; ci: ASCII case-insensitive */
static char tolower_c(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static int wild(const char *p, const char *s, size_t l, int ci)
{
	size_t si = 0, star_p = (size_t)-1, star_s = 0, pi = 0;
	size_t pl = strlen(p);
	while (si < l) {
		if (pi < pl && (p[pi] == '?' ||
				(ci ? (tolower_c(p[pi]) == tolower_c(s[si])) : p[pi] == s[si])) &&
		    p[pi] != '*') {
			pi++;
			si++;
		} else if (pi < pl && p[pi] == '*') {
			star_p = pi++;
			star_s = si;
		} else if (star_p != (size_t)-1) {
			pi = star_p + 1;
			si = ++star_s;
		} else {
			return 0;
		}
	}
	while (pi < pl && p[pi] == '*')
		pi++;
	return pi == pl;
}

static int str_eq(const char *p, const char *s, size_t l, int ci)
{
	if (strlen(p) != l)
		return 0;
	return ci ? strncasecmp(p, s, l) == 0 : memcmp(p, s, l) == 0;
}

static int match_one(const struct term *t, const char *p, const char *s, size_t l)
{
	if (t->wild)
		return wild(p, s, l, 0);
	if (t->numeric) {
		char buf[64], *end;
		if (l == 0 || l >= sizeof(buf))
			return 0;
		memcpy(buf, s, l);
		buf[l] = 0;
		double d = strtod(buf, &end);
		while (*end == ' ')
			end++;
		return end != buf && *end == 0 && d == t->num;
	}
	return str_eq(p, s, l, 0);
}

static int match_pn(const struct term *t, struct sv v)
{
	const char *p = t->val;
	/* trailing '^' and '=' are not significant */
	while (v.l && (v.s[v.l - 1] == '^' || v.s[v.l - 1] == '=' || v.s[v.l - 1] == ' '))
		v.l--;
	if (t->wild ? wild(p, v.s, v.l, 1) : str_eq(p, v.s, v.l, 1))
		return 1;
	/* any single component of any group */
	size_t a = 0;
	for (size_t i = 0; i <= v.l; i++) {
		if (i == v.l || v.s[i] == '^' || v.s[i] == '=') {
			const char *c = v.s + a;
			size_t cl = i - a;
			while (cl && *c == ' ') {
				c++;
				cl--;
			}
			while (cl && c[cl - 1] == ' ')
				cl--;
			if (cl && (t->wild ? wild(p, c, cl, 1) : str_eq(p, c, cl, 1)))
				return 1;
			a = i + 1;
		}
	}
	return 0;
}

static int match_term(const struct term *t, struct sv v)
{
	switch (t->m) {
	case M_ANY:
		return 1;
	case M_UID:
		for (size_t i = 0; i < t->nlist; i++)
			if (str_eq(t->list[i], v.s, v.l, 0))
				return 1;
		return 0;
	case M_RANGE: {
		char n[32];
		if (!v.l || norm_dt(t->vr, v.s, v.l, n))
			return 0;
		if (t->has_lo && t->has_hi && strcmp(t->lo, t->hi) == 0 &&
		    strcmp(n, t->lo) == 0)
			return 1;
		if (t->has_lo && strcmp(n, t->lo) < 0)
			return 0;
		if (t->has_hi && strcmp(n, t->hi) > 0)
			return 0;
		return 1;
	}
	case M_PN:
		return v.l && match_pn(t, v);
	case M_STR:
		if (!v.l)
			return 0;
		if (match_one(t, t->val, v.s, v.l))
			return 1;
		/* any value of a multi-valued attribute */
		if (memchr(v.s, '\\', v.l)) {
			size_t a = 0;
			for (size_t i = 0; i <= v.l; i++)
				if (i == v.l || v.s[i] == '\\') {
					if (match_one(t, t->val, v.s + a, i - a))
						return 1;
					a = i + 1;
				}
		}
		return 0;
	}
	return 0;
}

static int match_mis(const struct term *t, struct sv v)
{
	if (!v.l)
		return 0;
	for (size_t i = 0; i < t->nlist; i++)
		if (t->wild ? wild(t->list[i], v.s, v.l, 0) : str_eq(t->list[i], v.s, v.l, 0))
			return 1;
	return 0;
}

/* ---- results ---- */

static uint64_t fnv1a(uint64_t h, const void *p, size_t l)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < l; i++) {
		h ^= c[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL

struct tb {
	char *s;
	size_t len, cap;
	int err;
};

static void tb_add(struct tb *b, const char *s, size_t l)
{
	if (b->err)
		return;
	if (b->len + l + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 4096;
		while (nc < b->len + l + 1)
			nc *= 2;
		char *p = realloc(b->s, nc);
		if (!p) {
			b->err = 1;
			return;
		}
		b->s = p;
		b->cap = nc;
	}
	memcpy(b->s + b->len, s, l);
	b->len += l;
	b->s[b->len] = 0;
}

static void tb_str(struct tb *b, const char *s)
{
	tb_add(b, s, strlen(s));
}

/* path below the mount root of match i of level lv (into b) */
static void target_path(struct tb *b, int lv, uint32_t i)
{
	const struct tdir *se = NULL, *st, *pa;
	const struct tinst *in = NULL;
	if (lv == LV_INSTANCES) {
		in = &T.inst[i];
		se = &T.series[in->series];
		st = &T.study[se->parent];
	} else if (lv == LV_SERIES) {
		se = &T.series[i];
		st = &T.study[se->parent];
	} else {
		st = &T.study[i];
	}
	pa = &T.pat[st->parent];
	tb_str(b, "patients/");
	tb_add(b, pa->name.s, pa->name.l);
	tb_add(b, "/", 1);
	tb_add(b, st->name.s, st->name.l);
	if (se) {
		tb_add(b, "/", 1);
		tb_add(b, se->name.s, se->name.l);
	}
	if (in) {
		tb_add(b, "/", 1);
		tb_add(b, in->name.s, in->name.l);
	}
}

static const struct sv *col_or_fail(uint32_t tag, int *err)
{
	const struct sv *c = column(tag);
	if (!c)
		*err = -ENOMEM;
	return c;
}

static int cmp_names(const void *a, const void *b, void *ctx)
{
	char **n = ctx;
	return strcmp(n[*(const uint32_t *)a], n[*(const uint32_t *)b]);
}

/* Evaluate q over the table (under T.lock). */
static int evaluate(struct query *q, struct qres **out)
{
	struct qres *r = calloc(1, sizeof(*r));
	struct colref cols[MAX_TERMS];
	uint32_t lastoff[MAX_TERMS];
	int lastres[MAX_TERMS];
	unsigned char *study_ok = NULL;
	int err = 0;
	if (!r)
		return -ENOMEM;
	{
		/* columns not copied by table_masks (not yet, or not indexed):
		 * from the records, one pass for all */
		uint32_t need[MAX_TERMS];
		size_t nn = 0;
		for (size_t k = 0; k < q->nt; k++) {
			uint32_t tag = q->t[k].tag == TAG_MODALITIES_IN_STUDY ? TAG_MODALITY : q->t[k].tag;
			if (!vcolumn(tag))
				need[nn++] = tag;
		}
		err = columns_fill(need, nn);
	}
	for (size_t k = 0; k < q->nt && !err; k++) {
		uint32_t tag = q->t[k].tag == TAG_MODALITIES_IN_STUDY ? TAG_MODALITY : q->t[k].tag;
		cols[k].off = vcolumn(tag);
		cols[k].sv = cols[k].off ? NULL : col_or_fail(tag, &err);
		lastoff[k] = 0;
		lastres[k] = -1;
	}
	/* ModalitiesInStudy: per study */
	for (size_t k = 0; k < q->nt && !err; k++) {
		if (q->t[k].tag != TAG_MODALITIES_IN_STUDY || q->t[k].m == M_ANY)
			continue;
		if (!study_ok) {
			study_ok = malloc(T.nstudy ? T.nstudy : 1);
			if (!study_ok) {
				err = -ENOMEM;
				break;
			}
			memset(study_ok, 1, T.nstudy);
		}
		for (size_t s = 0; s < T.nstudy; s++) {
			int any = 0;
			for (uint32_t i = T.study[s].first; i < T.study[s].end && !any; i++) {
				if (cols[k].off && cols[k].off[i] == lastoff[k] && lastres[k] >= 0) {
					any = lastres[k];
					continue;
				}
				any = match_mis(&q->t[k], colv(&cols[k], i));
				if (cols[k].off) {
					lastoff[k] = cols[k].off[i];
					lastres[k] = any;
				}
			}
			study_ok[s] &= (unsigned char)any;
		}
	}
	size_t cap = 0;
	int64_t last = -1;
	for (size_t k = 0; k < q->nt; k++) {
		lastoff[k] = 0;
		lastres[k] = -1;
	}
	for (size_t i = 0; i < T.ninst && !err; i++) {
		const struct tinst *in = &T.inst[i];
		uint32_t ser = in->series, st = T.series[ser].parent;
		if (study_ok && !study_ok[st])
			continue;
		int ok = 1;
		for (size_t k = 0; k < q->nt && ok; k++) {
			if (q->t[k].tag == TAG_MODALITIES_IN_STUDY)
				continue;
			if (cols[k].off) {
				/* equal consecutive values share an offset: match once */
				uint32_t o = cols[k].off[i];
				if (o != lastoff[k] || lastres[k] < 0) {
					lastoff[k] = o;
					lastres[k] = match_term(&q->t[k], colv(&cols[k], i));
				}
				ok = lastres[k];
			} else {
				ok = match_term(&q->t[k], cols[k].sv[i]);
			}
		}
		if (!ok)
			continue;
		uint32_t v = q->level == LV_INSTANCES ? (uint32_t)i :
			     q->level == LV_SERIES ? ser : st;
		if ((int64_t)v == last)
			continue;
		last = v;
		if (r->n == cap) {
			cap = cap ? cap * 2 : 256;
			uint32_t *nv = hrealloc(r->idx, cap * sizeof(*nv));
			if (!nv) {
				err = -ENOMEM;
				break;
			}
			r->idx = nv;
		}
		r->idx[r->n++] = v;
	}
	free(study_ok);
	/* names: the tree name; colliding ones all get " ~xxxxxxxx" */
	if (!err && r->n) {
		r->names = calloc(r->n, sizeof(*r->names));
		r->by_name = malloc(r->n * sizeof(*r->by_name));
		if (!r->names || !r->by_name)
			err = -ENOMEM;
	}
	for (size_t i = 0; i < r->n && !err; i++) {
		struct sv nm;
		uint32_t x = r->idx[i];
		nm = q->level == LV_INSTANCES ? T.inst[x].name :
		     q->level == LV_SERIES ? T.series[x].name : T.study[x].name;
		if (!(r->names[i] = dupn(nm.s, nm.l)))
			err = -ENOMEM;
		r->by_name[i] = (uint32_t)i;
	}
	for (int pass = 0; pass < 2 && !err && r->n; pass++) {
		qsort_r(r->by_name, r->n, sizeof(*r->by_name), cmp_names, r->names);
		int changed = 0;
		for (size_t i = 0; i < r->n && !err;) {
			size_t j = i + 1;
			while (j < r->n && strcmp(r->names[r->by_name[i]], r->names[r->by_name[j]]) == 0)
				j++;
			for (size_t k = i; j - i > 1 && k < j && !err; k++) {
				uint32_t pos = r->by_name[k];
				struct tb p = { 0 };
				char sfx[40], *nm = r->names[pos];
				target_path(&p, q->level, r->idx[pos]);
				uint64_t h = fnv1a(FNV_INIT, p.s ? p.s : "", p.len);
				free(p.s);
				if (pass == 0)
					snprintf(sfx, sizeof(sfx), " ~%08llx", (unsigned long long)(h >> 32));
				else
					snprintf(sfx, sizeof(sfx), "~%u", (unsigned)pos);
				size_t nl = strlen(nm), el = 0;
				if (q->level == LV_INSTANCES && nl > 4 && strcmp(nm + nl - 4, ".dcm") == 0)
					el = 4;
				char *n2 = malloc(nl + strlen(sfx) + 1);
				if (!n2) {
					err = -ENOMEM;
					break;
				}
				memcpy(n2, nm, nl - el);
				strcpy(n2 + nl - el, sfx);
				strcat(n2, nm + nl - el);
				free(nm);
				r->names[pos] = n2;
				changed = 1;
			}
			i = j;
		}
		if (!changed)
			break;
		if (pass == 1)
			qsort_r(r->by_name, r->n, sizeof(*r->by_name), cmp_names, r->names);
	}
	if (err) {
		res_free(r);
		return err;
	}
	r->bytes = sizeof(*r) + r->n * (sizeof(uint32_t) * 2 + sizeof(char *) + 32);
	*out = r;
	return 0;
}

/* ---- manifests ---- */

struct mcol {
	uint32_t tag;          /* 0: a count column */
	char name[64];
	int count;             /* 1 series, 2 instances (of a study/series) */
};

static int lv_has(int level, char tl)
{
	switch (level) {
	case LV_STUDIES: return tl == 'P' || tl == 'S';
	case LV_SERIES: return tl == 'P' || tl == 'S' || tl == 'E';
	default: return 1;
	}
}

static size_t manifest_cols(struct dfs *fs, int level, struct mcol *c, size_t max)
{
	const uint32_t *tags;
	size_t nt, n = 0;
	index_tags(fs->ix, &tags, &nt);
	if (!tags) {
		tags = dfs_tag_numbers();
		nt = dfs_ntags;
	}
	static const uint32_t uids[] = { 0x0020000D, 0x0020000E, 0x00080018 };
	static const char *const uidn[] = { "StudyInstanceUID", "SeriesInstanceUID",
					    "SOPInstanceUID" };
	for (int i = 0; i <= level && n < max; i++, n++) {
		c[n].tag = uids[i];
		c[n].count = 0;
		snprintf(c[n].name, sizeof(c[n].name), "%s", uidn[i]);
	}
	for (size_t i = 0; i < nt && n < max; i++) {
		uint32_t t = tags[i];
		if (t == 0x0020000D || t == 0x0020000E || t == 0x00080018 ||
		    t == TAG_SPECIFIC_CHARSET)
			continue;
		const struct dfs_tag *d = tags_by_tag(t);
		if (d && !lv_has(level, d->level))
			continue;
		char vr[3];
		c[n].tag = t;
		c[n].count = 0;
		if (d)
			snprintf(c[n].name, sizeof(c[n].name), "%s", d->keyword);
		else if (dcmdict_by_tag(t, vr, c[n].name, sizeof(c[n].name)))
			snprintf(c[n].name, sizeof(c[n].name), "%08X", t);
		n++;
	}
	if (level == LV_STUDIES && n + 3 <= max) {
		c[n].tag = TAG_MODALITIES_IN_STUDY;
		c[n].count = 0;
		strcpy(c[n++].name, "ModalitiesInStudy");
		c[n].tag = 0;
		c[n].count = 1;
		strcpy(c[n++].name, "NumberOfStudyRelatedSeries");
		c[n].tag = 0;
		c[n].count = 2;
		strcpy(c[n++].name, "NumberOfStudyRelatedInstances");
	} else if (level == LV_SERIES && n + 1 <= max) {
		c[n].tag = 0;
		c[n].count = 2;
		strcpy(c[n++].name, "NumberOfSeriesRelatedInstances");
	}
	return n;
}

static void csv_field(struct tb *b, const char *s, size_t l)
{
	if (!memchr(s, ',', l) && !memchr(s, '"', l) && !memchr(s, '\n', l) &&
	    !memchr(s, '\r', l)) {
		tb_add(b, s, l);
		return;
	}
	tb_add(b, "\"", 1);
	for (size_t i = 0; i < l; i++) {
		if (s[i] == '"')
			tb_add(b, "\"", 1);
		tb_add(b, s + i, 1);
	}
	tb_add(b, "\"", 1);
}

static void json_str(struct tb *b, const char *s, size_t l)
{
	tb_add(b, "\"", 1);
	for (size_t i = 0; i < l; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[8];
		if (c == '"' || c == '\\') {
			e[0] = '\\';
			e[1] = (char)c;
			tb_add(b, e, 2);
		} else if (c < 0x20) {
			snprintf(e, sizeof(e), "\\u%04x", c);
			tb_add(b, e, 6);
		} else {
			tb_add(b, s + i, 1);   /* records hold valid UTF-8 */
		}
	}
	tb_add(b, "\"", 1);
}

/* Value of column c for match x: the instance's own value, or for a
 * series / study the first non-empty one among its instances (tree order) */
static struct sv rec_val(uint32_t i, uint32_t tag)
{
	struct sv v = { "", 0 };
	if (!rec_attr(T.inst[i].rec, T.inst[i].rec_len, tag, &v.s, &v.l)) {
		v.s = "";
		v.l = 0;
	}
	return v;
}

/* First non-empty value of every column over the instances of match x
 * (one pass over each record, stopping when all are found) */
static void row_values(const struct mcol *mc, size_t nc, int level, uint32_t x,
		       struct sv *vals)
{
	uint32_t a, e;
	size_t missing = 0;
	if (level == LV_INSTANCES) {
		a = x;
		e = x + 1;
	} else if (level == LV_SERIES) {
		a = T.series[x].first;
		e = T.series[x].end;
	} else {
		a = T.study[x].first;
		e = T.study[x].end;
	}
	int from_rec[512];
	for (size_t k = 0; k < nc; k++) {
		vals[k].s = "";
		vals[k].l = 0;
		from_rec[k < 512 ? k : 511] = 0;
		if (!mc[k].tag || mc[k].count || mc[k].tag == TAG_MODALITIES_IN_STUDY)
			continue;
		const uint32_t *c = vcolumn(mc[k].tag);
		if (c) {
			/* the copied values: the first non-empty one */
			struct colref cr = { c, NULL };
			for (uint32_t i = a; i < e; i++)
				if (c[i] && (vals[k] = colv(&cr, i)).l)
					break;
			continue;
		}
		if (e - a <= 1 || mask_may_have(a, e, mc[k].tag)) {
			missing++;
			if (k < 512)
				from_rec[k] = 1;
		}
	}
	/* the wanted tags, ascending (attributes are stored in ascending tag
	 * order): one merge pass per record, up to the largest tag wanted */
	uint64_t want[512];
	size_t nw = 0;
	for (size_t k = 0; k < nc && k < 512 && nw < 512; k++)
		if (from_rec[k])
			want[nw++] = (uint64_t)mc[k].tag << 32 | k;
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
		while (w < nw && rec_step(T.inst[i].rec, T.inst[i].rec_len, &pos, &t, &v, &l)) {
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

static struct sv cell(const struct mcol *c, int level, uint32_t x,
		      char *tmp, size_t tmplen, struct tb *mods)
{
	struct sv v = { "", 0 };
	uint32_t a, e;
	if (level == LV_INSTANCES) {
		a = x;
		e = x + 1;
	} else if (level == LV_SERIES) {
		a = T.series[x].first;
		e = T.series[x].end;
	} else {
		a = T.study[x].first;
		e = T.study[x].end;
	}
	if (c->count) {
		uint64_t n = e - a;
		if (c->count == 1) {
			/* series are in tree order: a study's are contiguous */
			size_t lo = 0, hi = T.nseries, b;
			while (lo < hi) {
				size_t m = (lo + hi) / 2;
				if (T.series[m].parent < x)
					lo = m + 1;
				else
					hi = m;
			}
			b = lo;
			hi = T.nseries;
			while (lo < hi) {
				size_t m = (lo + hi) / 2;
				if (T.series[m].parent <= x)
					lo = m + 1;
				else
					hi = m;
			}
			n = lo - b;
		}
		snprintf(tmp, tmplen, "%llu", (unsigned long long)n);
		v.s = tmp;
		v.l = strlen(tmp);
		return v;
	}
	if (c->tag == TAG_MODALITIES_IN_STUDY) {
		/* distinct modalities in order of appearance, '\'-joined */
		mods->len = 0;
		if (mods->s)
			mods->s[0] = 0;
		struct colref mcol = { vcolumn(TAG_MODALITY), NULL };
		if (!mcol.off)
			mcol.sv = column(TAG_MODALITY);
		for (uint32_t i = a; i < e; i++) {
			struct sv m = mcol.off || mcol.sv ? colv(&mcol, i) : rec_val(i, TAG_MODALITY);
			if (!m.l)
				continue;
			int seen = 0;
			for (size_t p = 0; p < mods->len && !seen;) {
				size_t q = p;
				while (q < mods->len && mods->s[q] != '\\')
					q++;
				seen = q - p == m.l && memcmp(mods->s + p, m.s, m.l) == 0;
				p = q + 1;
			}
			if (!seen) {
				if (mods->len)
					tb_add(mods, "\\", 1);
				tb_add(mods, m.s, m.l);
			}
		}
		v.s = mods->s ? mods->s : "";
		v.l = mods->len;
		return v;
	}
	return v;   /* attributes: row_values() */
}

static int manifests(struct dfs *fs, struct query *q)
{
	struct qres *r = q->res;
	static __thread struct mcol mc[512];
	static __thread struct sv vals[512];
	size_t nc = manifest_cols(fs, q->level, mc, 512);
	struct tb csv = { 0 }, js = { 0 }, path = { 0 }, mods = { 0 };
	char tmp[32];
	if (r->csv)
		return 0;
	tb_str(&csv, "path,link");
	for (size_t k = 0; k < nc; k++) {
		tb_add(&csv, ",", 1);
		tb_str(&csv, mc[k].name);
	}
	tb_add(&csv, "\r\n", 2);
	for (size_t i = 0; i < r->n; i++) {
		path.len = 0;
		target_path(&path, q->level, r->idx[i]);
		const char *ps = path.s ? path.s : "";
		csv_field(&csv, ps, path.len);
		tb_add(&csv, ",", 1);
		csv_field(&csv, r->names[i], strlen(r->names[i]));
		tb_str(&js, "{\"path\":");
		json_str(&js, ps, path.len);
		tb_str(&js, ",\"link\":");
		json_str(&js, r->names[i], strlen(r->names[i]));
		row_values(mc, nc, q->level, r->idx[i], vals);
		for (size_t k = 0; k < nc; k++) {
			struct sv v = mc[k].count || mc[k].tag == TAG_MODALITIES_IN_STUDY ?
				      cell(&mc[k], q->level, r->idx[i], tmp, sizeof(tmp), &mods) : vals[k];
			tb_add(&csv, ",", 1);
			csv_field(&csv, v.s, v.l);
			tb_add(&js, ",", 1);
			json_str(&js, mc[k].name, strlen(mc[k].name));
			tb_add(&js, ":", 1);
			if (mc[k].count)
				tb_add(&js, v.s, v.l);
			else if (v.l)
				json_str(&js, v.s, v.l);
			else
				tb_str(&js, "null");
		}
		tb_add(&csv, "\r\n", 2);
		tb_add(&js, "}\n", 2);
	}
	free(path.s);
	free(mods.s);
	if (csv.err || js.err || path.err || mods.err) {
		free(csv.s);
		free(js.s);
		return -ENOMEM;
	}
	r->csv = csv.s;
	r->csv_len = csv.len;
	r->jsonl = js.s ? js.s : strdup("");
	r->jsonl_len = js.len;
	r->bytes += csv.len + js.len;
	Q.cache_bytes += csv.len + js.len;
	return 0;
}

/* ---- the query table ---- */

static struct query *q_find(uint64_t qid)
{
	for (size_t i = 0; i < Q.n; i++)
		if (Q.v[i]->qid == qid)
			return Q.v[i];
	return NULL;
}

static struct query *q_find_key(const char *key)
{
	for (size_t i = 0; i < Q.n; i++)
		if (strcmp(Q.v[i]->key, key) == 0)
			return Q.v[i];
	return NULL;
}

/* Drop cached results beyond QCACHE_BYTES (except keep) */
static void cache_trim(struct query *keep)
{
	while (Q.cache_bytes > QCACHE_BYTES) {
		struct query *old = NULL;
		for (size_t i = 0; i < Q.n; i++)
			if (Q.v[i] != keep && Q.v[i]->res &&
			    (!old || Q.v[i]->used < old->used))
				old = Q.v[i];
		if (!old)
			break;
		Q.cache_bytes -= old->res->bytes;
		res_free(old->res);
		old->res = NULL;
	}
}

static int q_insert(struct query *q)
{
	if (Q.n >= QTABLE_MAX) {
		/* forget queries the kernel does not know any more */
		size_t w = 0;
		for (size_t i = 0; i < Q.n; i++) {
			if (Q.v[i]->nlookup == 0 && Q.v[i]->qid >= QUERY_ID_BASE + 3)
				query_free(Q.v[i]);
			else
				Q.v[w++] = Q.v[i];
		}
		Q.n = w;
	}
	if (Q.n == Q.cap) {
		size_t nc = Q.cap ? Q.cap * 2 : 64;
		struct query **nv = realloc(Q.v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		Q.v = nv;
		Q.cap = nc;
	}
	Q.v[Q.n++] = q;
	return 0;
}

/* The query of directory qid: top levels are made on demand (under T.lock) */
static struct query *q_get(uint64_t qid)
{
	struct query *q = q_find(qid);
	if (q || qid >= QUERY_ID_BASE + 3 || qid < QUERY_ID_BASE)
		return q;
	q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->qid = qid;
	q->level = (int)(qid - QUERY_ID_BASE);
	q->key = strdup(level_names[q->level]);
	q->depth = 2;
	q->parent_ino = ino_make(ID_QUERY, KIND_DIR);
	if (!q->key || q_insert(q)) {
		query_free(q);
		return NULL;
	}
	return q;
}

/* Child query "parent/name" (under T.lock); 0 or an error with a log line */
static int q_child(struct dfs *fs, struct query *p, const char *name, struct query **out)
{
	char why[512];
	struct query *q;
	char *key = NULL;
	if (asprintf(&key, "%s/%s", p->key, name) < 0)
		return -ENOMEM;
	if ((q = q_find_key(key))) {
		free(key);
		*out = q;
		return 0;
	}
	if (p->nt + 1 > MAX_TERMS || p->depth + 1 >= (1 << (57 - QLINK_DEPTH_SHIFT))) {
		dfs_log("query '%s': too many components (at most %d)", key, MAX_TERMS);
		free(key);
		return -EINVAL;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		free(key);
		return -ENOMEM;
	}
	q->key = key;
	q->level = p->level;
	q->depth = p->depth + 1;
	q->parent_ino = ino_make(p->qid, KIND_QDIR);
	q->t = calloc(p->nt + 1, sizeof(*q->t));
	if (!q->t) {
		query_free(q);
		return -ENOMEM;
	}
	/* the parent's terms, re-parsed from the path (so they own their memory) */
	const char *s = strchr(key, '/');
	int rc = 0;
	while (s && !rc) {
		const char *e = strchr(s + 1, '/');
		char *comp = dupn(s + 1, e ? (size_t)(e - s - 1) : strlen(s + 1));
		if (!comp) {
			rc = -ENOMEM;
			break;
		}
		rc = term_parse(fs, comp, &q->t[q->nt], why, sizeof(why));
		q->nt++;
		free(comp);
		s = e;
	}
	if (rc) {
		if (rc != -ENOMEM)
			dfs_log("query '%s': %s (%s)", key, why,
				rc == -EOPNOTSUPP ? "EOPNOTSUPP" : "EINVAL");
		query_free(q);
		return rc;
	}
	uint64_t h = fnv1a(FNV_INIT, key, strlen(key)) % (((uint64_t)1 << 58) - 3);
	q->qid = QUERY_ID_BASE + 3 + h;
	while (q_find(q->qid))   /* a hash collision: next free id */
		q->qid = QUERY_ID_BASE + 3 + (q->qid - QUERY_ID_BASE - 3 + 1) % (((uint64_t)1 << 58) - 3);
	if ((rc = q_insert(q))) {
		query_free(q);
		return rc;
	}
	*out = q;
	return 0;
}

static int q_results(struct dfs *fs, struct query *q, int want_manifests)
{
	int rc = table_build(fs);
	if (rc)
		return rc;
	q->used = ++Q.clock;
	if (!q->res) {
		rc = evaluate(q, &q->res);
		if (rc)
			return rc;
		Q.cache_bytes += q->res->bytes;
	}
	if (want_manifests && (rc = manifests(fs, q)))
		return rc;

	cache_trim(q);
	return 0;
}

/* ---- symlinks: target from the nodes (no state needed) ---- */

static int link_target(struct dfs *fs, uint64_t ino, struct tb *b)
{
	unsigned k = ino_kind(ino);
	uint64_t id = ino_id(ino);
	unsigned depth = (unsigned)(id >> QLINK_DEPTH_SHIFT);
	uint64_t tid = id & (((uint64_t)1 << QLINK_DEPTH_SHIFT) - 1);
	int up = k == KIND_QLINK_STUDY ? 1 : k == KIND_QLINK_SERIES ? 2 : 3;
	const char *parts[4];
	size_t lens[4];
	struct node_view nv;
	for (int i = up; i >= 0; i--) {
		int rc = index_node(fs->ix, tid, &nv);
		if (rc)
			return rc;
		parts[i] = nv.name;
		lens[i] = nv.rec->name_len;
		tid = nv.rec->parent;
	}
	if (tid != ID_PATIENTS)
		return -ENOENT;
	for (unsigned i = 0; i < depth; i++)
		tb_add(b, "../", 3);
	tb_str(b, "patients");
	for (int i = 0; i <= up; i++) {
		tb_add(b, "/", 1);
		tb_add(b, parts[i], lens[i]);
	}
	if (k == KIND_QLINK_INSTANCE)
		tb_add(b, ".dcm", 4);
	return b->err ? -ENOMEM : 0;
}

/* ---- the FUSE side (called from ll.c) ---- */

int dfs_query_kind(unsigned kind)
{
	return kind >= KIND_QLINK_STUDY && kind <= KIND_QDIR;
}

static void base_stat(struct stat *st)
{
	st->st_uid = T.uid;
	st->st_gid = T.gid;
	stat_times(st, T.mtime);
}

static uint64_t link_ino(const struct query *q, uint32_t x)
{
	static const unsigned kinds[] = { KIND_QLINK_STUDY, KIND_QLINK_SERIES, KIND_QLINK_INSTANCE };
	uint64_t tid = q->level == LV_INSTANCES ? T.inst[x].id :
		       q->level == LV_SERIES ? T.series[x].id : T.study[x].id;
	return ino_make(tid | (uint64_t)q->depth << QLINK_DEPTH_SHIFT, kinds[q->level]);
}

/* under T.lock */
static int stat_locked(struct dfs *fs, uint64_t ino, struct stat *st)
{
	unsigned k = ino_kind(ino);
	int rc = table_build(fs);
	if (rc)
		return rc;
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_blksize = 65536;
	base_stat(st);
	if (k == KIND_QLINK_STUDY || k == KIND_QLINK_SERIES || k == KIND_QLINK_INSTANCE) {
		struct tb b = { 0 };
		rc = link_target(fs, ino, &b);
		free(b.s);
		if (rc)
			return rc;
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		st->st_size = (off_t)b.len;
		return 0;
	}
	struct query *q = q_get(ino_id(ino));
	if (!q)
		return -ESTALE;
	if (k == KIND_QDIR) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		st->st_size = 4096;
		st->st_blocks = 8;
		return 0;
	}
	rc = q_results(fs, q, 1);
	if (rc)
		return rc;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)(k == KIND_QMANIFEST_CSV ? q->res->csv_len : q->res->jsonl_len);
	st->st_blocks = (st->st_size + 511) / 512;
	return 0;
}

int dfs_query_stat(struct dfs *fs, uint64_t ino, struct stat *st)
{
	lock_ready();
	int rc = stat_locked(fs, ino, st);
	pthread_mutex_unlock(&T.lock);
	return rc;
}

static void ref(uint64_t ino)
{
	unsigned k = ino_kind(ino);
	if (k == KIND_QDIR || k == KIND_QMANIFEST_CSV || k == KIND_QMANIFEST_JSONL) {
		struct query *q = q_find(ino_id(ino));
		if (q)
			q->nlookup++;
	}
}

void dfs_query_forget(uint64_t ino, uint64_t n)
{
	unsigned k = ino_kind(ino);
	if (k != KIND_QDIR && k != KIND_QMANIFEST_CSV && k != KIND_QMANIFEST_JSONL)
		return;
	pthread_mutex_lock(&T.lock);
	struct query *q = q_find(ino_id(ino));
	if (q)
		q->nlookup = q->nlookup > n ? q->nlookup - n : 0;
	pthread_mutex_unlock(&T.lock);
}

static void entry_of(struct dfs *fs, const struct stat *st, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = st->st_ino;
	e->generation = 1;
	e->attr = *st;
	e->entry_timeout = fs->timeout;
	e->attr_timeout = fs->timeout;
}

int dfs_query_lookup(struct dfs *fs, uint64_t parent, const char *name,
		     struct fuse_entry_param *e)
{
	struct stat st;
	uint64_t ino = 0;
	int rc;
	lock_ready();
	struct query *p = q_get(ino_id(parent));
	if (!p) {
		rc = -ESTALE;
		goto out;
	}
	if (strcmp(name, "manifest.csv") == 0) {
		ino = ino_make(p->qid, KIND_QMANIFEST_CSV);
	} else if (strcmp(name, "manifest.jsonl") == 0) {
		ino = ino_make(p->qid, KIND_QMANIFEST_JSONL);
	} else {
		/* "Keyword=value" (Keyword: letters and digits) is a sub-query */
		size_t kl = strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				   "0123456789()," );
		if (kl && name[kl] == '=') {
			struct query *c;
			rc = q_child(fs, p, name, &c);
			if (rc)
				goto out;
			ino = ino_make(c->qid, KIND_QDIR);
		} else {
			rc = q_results(fs, p, 0);
			if (rc)
				goto out;
			struct qres *r = p->res;
			size_t lo = 0, hi = r->n;
			while (lo < hi) {
				size_t m = (lo + hi) / 2;
				int c = strcmp(r->names[r->by_name[m]], name);
				if (c == 0) {
					ino = link_ino(p, r->idx[r->by_name[m]]);
					break;
				}
				if (c < 0)
					lo = m + 1;
				else
					hi = m;
			}
			if (!ino) {
				rc = -ENOENT;
				goto out;
			}
		}
	}
	rc = stat_locked(fs, ino, &st);
	if (!rc) {
		entry_of(fs, &st, e);
		ref(ino);
	}
out:
	pthread_mutex_unlock(&T.lock);
	return rc;
}

int dfs_query_readlink(struct dfs *fs, uint64_t ino, char **out)
{
	struct tb b = { 0 };
	unsigned k = ino_kind(ino);
	if (k != KIND_QLINK_STUDY && k != KIND_QLINK_SERIES && k != KIND_QLINK_INSTANCE)
		return -EINVAL;
	int rc = link_target(fs, ino, &b);
	if (rc) {
		free(b.s);
		return rc;
	}
	*out = b.s;
	return 0;
}

/* Directory listing: ".", "..", manifest.csv, manifest.jsonl, the links */
int dfs_query_readdir(struct dfs *fs, fuse_req_t req, uint64_t ino, size_t size,
		      off_t off, int plus)
{
	char *buf = malloc(size);
	size_t len = 0;
	int rc;
	if (!buf)
		return -ENOMEM;
	lock_ready();
	struct query *q = q_get(ino_id(ino));
	rc = q ? q_results(fs, q, plus) : -ESTALE;
	if (rc)
		goto out;
	size_t total = 4 + q->res->n;
	struct tb path = { 0 };
	for (size_t pos = (size_t)off; pos < total; pos++) {
		struct stat st;
		const char *name;
		uint64_t eino;
		if (pos == 0) {
			name = ".";
			eino = ino;
		} else if (pos == 1) {
			name = "..";
			eino = q->parent_ino;
		} else if (pos == 2) {
			name = "manifest.csv";
			eino = ino_make(q->qid, KIND_QMANIFEST_CSV);
		} else if (pos == 3) {
			name = "manifest.jsonl";
			eino = ino_make(q->qid, KIND_QMANIFEST_JSONL);
		} else {
			name = q->res->names[pos - 4];
			eino = link_ino(q, q->res->idx[pos - 4]);
		}
		memset(&st, 0, sizeof(st));
		st.st_ino = eino;
		size_t n;
		if (plus && pos >= 2) {
			struct fuse_entry_param e;
			if (pos >= 4) {
				/* the link's size from the table: no node lookups */
				path.len = 0;
				target_path(&path, q->level, q->res->idx[pos - 4]);
				st.st_mode = S_IFLNK | 0777;
				st.st_nlink = 1;
				st.st_size = (off_t)(path.len + 3 * (size_t)q->depth);
				st.st_blksize = 65536;
				base_stat(&st);
			} else if ((rc = stat_locked(fs, eino, &st))) {
				break;
			}
			entry_of(fs, &st, &e);
			n = fuse_add_direntry_plus(req, buf + len, size - len, name, &e,
						   (off_t)pos + 1);
			if (n <= size - len)
				ref(eino);
		} else if (plus) {
			struct fuse_entry_param e;
			memset(&e, 0, sizeof(e));
			e.attr.st_mode = S_IFDIR;
			e.attr.st_ino = eino;
			n = fuse_add_direntry_plus(req, buf + len, size - len, name, &e,
						   (off_t)pos + 1);
		} else {
			st.st_mode = pos < 2 ? S_IFDIR : pos < 4 ? S_IFREG : S_IFLNK;
			n = fuse_add_direntry(req, buf + len, size - len, name, &st,
					      (off_t)pos + 1);
		}
		if (n > size - len)
			break;
		len += n;
	}
	free(path.s);
	if (rc && len)
		rc = 0;
out:
	pthread_mutex_unlock(&T.lock);
	if (!rc)
		fuse_reply_buf(req, buf, len);
	free(buf);
	return rc;
}

/* ---- manifests as file kinds ---- */

static int manifest_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
			 struct dfs_file *f)
{
	(void)nv;
	lock_ready();
	struct query *q = q_get(id);
	int rc = q ? q_results(fs, q, 1) : -ESTALE;
	if (!rc) {
		const char *s = f->kind == KIND_QMANIFEST_CSV ? q->res->csv : q->res->jsonl;
		f->len = f->kind == KIND_QMANIFEST_CSV ? q->res->csv_len : q->res->jsonl_len;
		f->buf = malloc(f->len ? f->len : 1);
		if (!f->buf)
			rc = -ENOMEM;
		else
			memcpy(f->buf, s, f->len);
	}
	pthread_mutex_unlock(&T.lock);
	return rc;
}

static int query_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
			 struct stat *st)
{
	(void)fs; (void)id; (void)nv; (void)st;
	return -ENOENT;   /* dfs_stat calls dfs_query_stat for these kinds */
}

const struct kind_ops kind_qmanifest = {
	.name = "manifest",
	.getattr = query_getattr,
	.open = manifest_open,
	.read = kind_buf_read,
	.release = kind_buf_release,
};

const struct kind_ops kind_qother = {
	.name = "query",
	.getattr = query_getattr,
};
