/*
 * view_query.c - the query/<level>/<Keyword=value>/.../ directories:
 *
 *   query/studies/Modality=CT/PatientSex=F/   the matching studies as
 *   query/series/...                          relative symlinks into
 *   query/instances/...                       patients/, plus manifest.csv
 *                                             and manifest.jsonl
 *
 * The FUSE protocol of the query space (lookup, readdir, readlink, stat,
 * forget, manifest open) and the cache of results. The query language and
 * the matching rules are index/dicom/query.h; the table queries run over is
 * fs/catalog.h; the manifests are fs/manifest.h.
 *
 * Design notes
 * (V1) Answered from the catalog only (catalog_get: waits for the mount's
 *      background build). A study / series matches when one of its
 *      instances matches every component; ModalitiesInStudy is matched per
 *      study against its distinct modalities (catalog.h C4, query.h Q5).
 * (V2) Errors are not "no matches": a malformed component is EINVAL, a
 *      known tag that the index does not hold EOPNOTSUPP (query.h Q2);
 *      each logs what to do. A name that is no link of the listing, no
 *      manifest and not shaped as Keyword=value is EINVAL too (with a log
 *      line), but for names starting with '.': ENOENT, silently.
 * (V3) Ids: query directories get dynamic ids >= QUERY_ID_BASE from the
 *      FNV-1a hash of their path below query/ (the next free one on a
 *      collision); the three level directories are QUERY_ID_BASE + level.
 *      A table id -> parsed query lives in struct qview, bounded
 *      (QTABLE_MAX): when it is full, entries the kernel no longer knows
 *      (lookup count 0, see forget) are dropped, then, if it is still
 *      full, the least recently used eighth (an LRU): the table never
 *      holds more than QTABLE_MAX entries. An inode the kernel still
 *      knows whose entry was dropped answers ESTALE until the kernel looks
 *      its name up again, which makes the same id from the same path: so
 *      query directories and manifests get entry and attribute timeouts
 *      of QDIR_TIMEOUT (1 s), not the tree's (links need no entry, V5).
 * (V7) Manifests are never held whole (manifest.h M2): a listing
 *      (readdir, readdirplus) sizes neither (readdirplus gives their names
 *      without attributes); stat, lookup and open size both in one pass
 *      and keep the sizes and a checkpoint every 16 rows; reads generate
 *      the rows they cover.
 * (V4) Results (matches, names, the manifests' checkpoints and cached
 *      spans) are cached per query directory, dropped beyond a budget of
 *      -o open_size / QCACHE_SHARE bytes (least recently used first) and
 *      recomputed, deterministically, when needed again. They index the
 *      catalog they were computed from: each holds a reference to it, and
 *      the view drops every result when the current catalog changes (C2).
 * (V5) Symlinks need no state: their id is the target's id plus the depth
 *      of the directory they are in, enough to write the relative target
 *      from the nodes.
 * (V6) Listing order: tree order of the targets (stable). Names: the
 *      target's tree name; names that collide within one listing all get
 *      " ~xxxxxxxx" (FNV-1a of the target's path), before ".dcm" for
 *      instances (and "~<position>" if those still collide).
 * (V8) A caller who does not see everything (access.h A8) is answered
 *      from what it sees: rows its view allows, names deduplicated among
 *      those, manifests of those; such results are kept in a slot of
 *      their own per directory (one caller at a time, ACCESS_TTL seconds)
 *      and counted in the budget like the others.
 * (V9) Results are refcounted: the cache's slot holds one reference, each
 *      open manifest one more. An open reads the results it opened, at
 *      any offset, whatever the cache or a live update (catalog.h C7) does
 *      meanwhile: size and bytes of one version (manifest.h M3). Such an
 *      open is direct_io when the content is the caller's own (V8) or the
 *      archive may change (fs->live): the page cache of the inode would
 *      mix versions. A read without an open (f->priv NULL) reads the
 *      current results of the inode for f->caller. Results dropped from
 *      the cache but held by opens are no longer counted in the budget:
 *      they follow the open files.
 * (V10) When the LMDB map must grow (dfs_query_release, store.h S3), every
 *      result lets go of its catalog, so of the snapshot that pins the
 *      old map: at once, or when the read running on it ends (ulock,
 *      inflight). An open from before then reads ESTALE (with a log
 *      line): open it again. Growth is rare (64 MiB of room beyond the
 *      index, doubled each time) and an open manifest must not hold up
 *      the live update for STORE_GROW_WAIT_MS and fail it.
 * (V11) Versions (with zero-message opens on a live archive: fs.h Z1, Z6):
 *      no open reaches the view, so nothing could pin the version a reader
 *      started on. A lookup of a manifest names a version instead: an inode
 *      of its own (ids >= MVER_ID_BASE) holding the results it was made
 *      from (a reference, V9), whose bytes never change; entry timeout 0,
 *      so the next path lookup after a change names the next version. A
 *      version is reused while the view's catalog is the one it was made
 *      from; it goes when the kernel forgets it, when it is of an older
 *      catalog and was not used for MVER_IDLE s, or when more than
 *      MVER_MAX are kept (oldest first): its inode then reads ESTALE, as
 *      an open does after V10.
 * Threading: one lock (qview.lock) serialises the query table, the
 * results and evaluation; readlink needs none.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "catalog.h"
#include "fs.h"
#include "error.h"
#include "log.h"
#include "manifest.h"
#include "query.h"
#include "strbuf.h"
#include "tags.h"

#define QTABLE_MAX 4096
#define QDIR_TIMEOUT 1.0   /* s: entry/attr timeout of query dirs, manifests (V3) */
#define QCACHE_SHARE 4     /* V4: results within open_size / 4 */
#define QCACHE_MIN ((size_t)4 << 20)
#define MAX_TERMS 64
#define TRIM_ROWS 16384    /* V4: malloc_trim after evaluations this big */
#define MVER_ID_BASE ((uint64_t)3 << 57)   /* V11: above every query id (index.h) */
#define MVER_MAX 64        /* V11: versions kept at most */
#define MVER_IDLE 10       /* V11: s an older catalog's version is kept unused */

static const char *const level_names[] = { "studies", "series", "instances" };

struct qres {
	int refs;             /* atomic: the cache's slot, each open (V9) */
	struct catalog *cat;  /* a reference: what idx indexes (V4, V9);
			       * NULL once revoked and no read runs (V10) */
	struct qview *qv;
	struct qres *rprev, *rnext;   /* qv->reg_lock: every live result (V10) */
	pthread_mutex_t ulock;        /* inflight, revoked, cat once shared */
	int inflight;         /* ulock: reads generating from cat now */
	int revoked;          /* ulock: V10 */
	int level;
	uint32_t *idx;        /* matched instance / series / study indexes */
	size_t n;
	struct strbuf names;  /* link names, NUL-terminated, at noff[i] */
	uint32_t *noff;       /* parallel to idx */
	uint32_t *by_name;    /* positions sorted by name */
	struct manifest *man; /* NULL until sized (V7) */
	size_t bytes;
};

static inline const char *rname(const struct qres *r, size_t i)
{
	return r->names.buf + r->noff[i];
}

/* One query directory */
struct qdir {
	uint64_t qid;
	char *key;            /* "series/Modality=CT/..." */
	int level, depth;
	uint64_t parent_ino;
	struct query_term *t;
	size_t nt;
	uint64_t nlookup;
	uint64_t used;
	struct qres *res;     /* V4 */
	struct qres *cres;    /* V8: the results of caller (cuid, cgh) */
	uint32_t cuid;
	uint64_t cgh;
	int64_t ct;           /* when cres was made (CLOCK_MONOTONIC s) */
};

struct qview {
	pthread_mutex_t lock;
	pthread_mutex_t reg_lock;  /* after lock; the list of results (V10) */
	struct qres *reg;     /* reg_lock */
	struct qdir **v;      /* lock */
	size_t n, cap;        /* lock */
	uint64_t clock;       /* lock */
	size_t cache_bytes;   /* lock: bytes of every res */
	struct catalog *cat;  /* lock: the results' catalog (V4), a reference */
	size_t budget;        /* bytes of results kept (V4) */
	struct dfs *fs;
	struct dfs_log_limit loglim;   /* L2: query error lines */
	struct dfs_caller *caller;     /* lock: the request's, when filtered (V8) */
	struct mver *mv;      /* lock: manifest versions, newest first (V11) */
	size_t nmv;           /* lock */
	uint64_t mvseq;       /* lock: the next version's id - MVER_ID_BASE */
};

/* A manifest version (V11) */
struct mver {
	uint64_t id;          /* >= MVER_ID_BASE */
	uint64_t qid;
	unsigned kind;        /* KIND_QMANIFEST_CSV or _JSONL */
	struct qres *r;       /* a reference (V9) */
	const struct catalog *cat;   /* identity only: the view's when made */
	uint64_t nlookup;
	int64_t used;         /* CLOCK_MONOTONIC s of the last lookup or read */
	struct mver *next;
};

#define QUERY_LOG_PER_SEC 10   /* L2 (log.h) */

/* ---- results ---- */

static void res_free(struct qres *r)
{
	if (!r)
		return;
	if (r->qv) {   /* V10: out of the list */
		pthread_mutex_lock(&r->qv->reg_lock);
		if (r->rprev)
			r->rprev->rnext = r->rnext;
		else
			r->qv->reg = r->rnext;
		if (r->rnext)
			r->rnext->rprev = r->rprev;
		pthread_mutex_unlock(&r->qv->reg_lock);
	}
	pthread_mutex_destroy(&r->ulock);
	manifest_free(r->man);
	strbuf_release(&r->names);
	free(r->noff);
	free(r->idx);
	free(r->by_name);
	catalog_put(r->cat);
	free(r);
}

/* V9: results live while the cache or an open holds them */
static void res_put(struct qres *r)
{
	if (r && __atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0)
		res_free(r);
}

static void res_drop1(struct qview *qv, struct qres **r)
{
	if (!*r)
		return;
	qv->cache_bytes -= (*r)->bytes;
	res_put(*r);
	*r = NULL;
}

static void res_drop(struct qview *qv, struct qdir *q)
{
	res_drop1(qv, &q->res);
	res_drop1(qv, &q->cres);
}

static void qdir_free(struct qview *qv, struct qdir *q)
{
	if (!q)
		return;
	res_drop(qv, q);
	for (size_t i = 0; i < q->nt; i++)
		query_term_free(&q->t[i]);
	free(q->t);
	free(q->key);
	free(q);
}

static int cmp_names(const void *a, const void *b, void *ctx)
{
	const struct qres *r = ctx;
	return strcmp(rname(r, *(const uint32_t *)a), rname(r, *(const uint32_t *)b));
}

/* name of position pos := s[0, l) (appended to the pool) */
static int set_name(struct qres *r, size_t pos, const char *s, size_t l)
{
	size_t at = r->names.len;
	if (at > UINT32_MAX - l - 1)
		return -ENOMEM;
	strbuf_add(&r->names, s, l);
	strbuf_add(&r->names, "", 1);
	r->noff[pos] = (uint32_t)at;
	return strbuf_error(&r->names);
}

/* ModalitiesInStudy terms: per study (V1); *ok stays NULL without any */
static int match_studies(struct catalog *c, const struct qdir *q, unsigned char **ok)
{
	*ok = NULL;
	for (size_t k = 0; k < q->nt; k++) {
		if (q->t[k].tag != QUERY_TAG_MODALITIES_IN_STUDY || q->t[k].m == QM_ANY)
			continue;
		if (!*ok) {
			*ok = malloc(c->nstudy ? c->nstudy : 1);
			if (!*ok)
				return -ENOMEM;
			memset(*ok, 1, c->nstudy);
		}
		for (size_t s = 0; s < c->nstudy; s++) {
			int any = 0;
			for (uint32_t m = c->mod_first[s]; m < c->mod_first[s + 1] && !any; m++)
				any = query_match_modality(&q->t[k], c->mods[m].s, c->mods[m].l);
			if (q->t[k].m == QM_EMPTY)   /* "": a study without a Modality (Q5) */
				any = c->mod_first[s] == c->mod_first[s + 1];
			(*ok)[s] &= (unsigned char)any;
		}
	}
	return 0;
}

/* The matches of q, in tree order, into r->idx */
static int match_all(struct catalog *c, const struct qdir *q, struct qview *qv,
		     struct qres *r)
{
	struct cat_col cols[MAX_TERMS];
	uint32_t tags[MAX_TERMS], lastoff[MAX_TERMS];
	int lastres[MAX_TERMS];
	unsigned char *study_ok = NULL;
	for (size_t k = 0; k < q->nt; k++) {
		tags[k] = q->t[k].tag == QUERY_TAG_MODALITIES_IN_STUDY ? TAG_MODALITY : q->t[k].tag;
		lastoff[k] = 0;
		lastres[k] = -1;
	}
	int err = catalog_columns(c, tags, q->nt, cols);
	if (!err)
		err = match_studies(c, q, &study_ok);
	size_t cap = 0;
	int64_t last = -1;
	for (size_t i = 0; i < c->ninst && !err; i++) {
		uint32_t ser = c->inst[i].series, st = c->series[ser].parent;
		if (study_ok && !study_ok[st])
			continue;
		int ok = 1;
		for (size_t k = 0; k < q->nt && ok; k++) {
			if (q->t[k].tag == QUERY_TAG_MODALITIES_IN_STUDY)
				continue;
			if (cols[k].ser) {
				/* equal consecutive values share an offset (C5): match once */
				uint32_t o = catalog_coff(c, &cols[k], i);
				if (o != lastoff[k] || lastres[k] < 0) {
					struct cat_sv v = catalog_colv(c, &cols[k], i);
					lastoff[k] = o;
					lastres[k] = query_match(&q->t[k], v.s, v.l);
				}
				ok = lastres[k];
			} else {
				ok = query_match(&q->t[k], cols[k].sv[i].s, cols[k].sv[i].l);
			}
		}
		if (!ok)
			continue;
		uint32_t v = q->level == CAT_INSTANCES ? (uint32_t)i :
			     q->level == CAT_SERIES ? ser : st;
		if ((int64_t)v == last)
			continue;
		last = v;
		if (qv->caller) {
			/* V8: rows of what the caller sees only */
			uint64_t id = q->level == CAT_INSTANCES ? c->inst[v].id :
				      q->level == CAT_SERIES ? c->series[v].id : c->study[v].id;
			if (!dfs_access_path(qv->fs, qv->caller, id))
				continue;
		}
		if (r->n == cap) {
			cap = cap ? cap * 2 : 256;
			uint32_t *nv = realloc(r->idx, cap * sizeof(*nv));
			if (!nv) {
				err = -ENOMEM;
				break;
			}
			r->idx = nv;
		}
		r->idx[r->n++] = v;
	}
	free(study_ok);
	return err;
}

/* The pool of names without the ones dedup_names replaced, exact size */
static int names_compact(struct qres *r)
{
	size_t live = 0;
	for (size_t i = 0; i < r->n; i++)
		live += strlen(rname(r, i)) + 1;
	if (live == r->names.len)
		return 0;
	struct strbuf nb = STRBUF_INIT;
	if (strbuf_grow(&nb, live))
		return -ENOMEM;
	for (size_t i = 0; i < r->n; i++) {
		const char *nm = rname(r, i);
		r->noff[i] = (uint32_t)nb.len;
		strbuf_add(&nb, nm, strlen(nm) + 1);
	}
	strbuf_release(&r->names);
	r->names = nb;
	return 0;
}

/* Make the names of colliding entries unique (V6); pass 0 or 1 */
static int dedup_names(struct catalog *c, int level, struct qres *r, int pass,
		       int *changed)
{
	struct strbuf p = STRBUF_INIT;
	int err = 0;
	*changed = 0;
	qsort_r(r->by_name, r->n, sizeof(*r->by_name), cmp_names, r);
	for (size_t i = 0; i < r->n && !err;) {
		size_t j = i + 1;
		while (j < r->n && strcmp(rname(r, r->by_name[i]), rname(r, r->by_name[j])) == 0)
			j++;
		for (size_t k = i; j - i > 1 && k < j && !err; k++) {
			uint32_t pos = r->by_name[k];
			char sfx[40];
			const char *nm = rname(r, pos);
			strbuf_reset(&p);
			catalog_path(c, level, r->idx[pos], &p);
			uint64_t h = fnv1a(FNV1A_INIT, strbuf_str(&p), p.len);
			if (pass == 0)
				snprintf(sfx, sizeof(sfx), " ~%08llx", (unsigned long long)(h >> 32));
			else
				snprintf(sfx, sizeof(sfx), "~%u", (unsigned)pos);
			size_t nl = strlen(nm), el = 0;
			if (level == CAT_INSTANCES && nl > 4 && strcmp(nm + nl - 4, ".dcm") == 0)
				el = 4;
			char *n2 = NULL;
			int l2 = asprintf(&n2, "%.*s%s%s", (int)(nl - el), nm, sfx, nm + nl - el);
			if (l2 < 0) {
				err = -ENOMEM;
				break;
			}
			err = set_name(r, pos, n2, (size_t)l2);
			free(n2);
			*changed = 1;
		}
		i = j;
	}
	if (!err && strbuf_error(&p))
		err = -ENOMEM;
	strbuf_release(&p);
	return err;
}

/* Evaluate q over catalog c */
static int evaluate(struct qview *qv, const struct qdir *q, struct qres **out)
{
	struct catalog *c = qv->cat;
	struct qres *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->refs = 1;   /* the slot's (V9) */
	r->cat = catalog_ref(c);
	r->level = q->level;
	pthread_mutex_init(&r->ulock, NULL);
	r->qv = qv;   /* V10: into the list */
	pthread_mutex_lock(&qv->reg_lock);
	r->rnext = qv->reg;
	if (qv->reg)
		qv->reg->rprev = r;
	qv->reg = r;
	pthread_mutex_unlock(&qv->reg_lock);
	int err = match_all(c, q, qv, r);
	/* names: the tree name; colliding ones all get " ~xxxxxxxx" */
	if (!err && r->n) {
		r->noff = malloc(r->n * sizeof(*r->noff));
		r->by_name = malloc(r->n * sizeof(*r->by_name));
		if (!r->noff || !r->by_name)
			err = -ENOMEM;
	}
	for (size_t i = 0; i < r->n && !err; i++) {
		uint32_t x = r->idx[i];
		struct cat_sv nm = q->level == CAT_INSTANCES ? c->inst[x].name :
				   q->level == CAT_SERIES ? c->series[x].name : c->study[x].name;
		err = set_name(r, i, nm.s, nm.l);
		r->by_name[i] = (uint32_t)i;
	}
	for (int pass = 0; pass < 2 && !err && r->n; pass++) {
		int changed;
		err = dedup_names(c, q->level, r, pass, &changed);
		if (err || !changed)
			break;
		if (pass == 1)
			qsort_r(r->by_name, r->n, sizeof(*r->by_name), cmp_names, r);
	}
	if (!err)
		err = names_compact(r);
	if (err) {
		res_free(r);
		return err;
	}
	/* the exact-size arrays (malloc: given back to the system when freed) */
	uint32_t *fit = r->n ? realloc(r->idx, r->n * sizeof(*fit)) : NULL;
	if (fit)
		r->idx = fit;
	r->bytes = sizeof(*r) + r->n * sizeof(uint32_t) * 3 + r->names.alloc;
	/* V4: the transient buffers of a big evaluation (the names before
	 * dedup_names, glibc's raised mmap threshold keeps them in the heap)
	 * go back to the system now, not when the heap top moves */
	if (r->n >= TRIM_ROWS)
		malloc_trim(0);
	*out = r;
	return 0;
}

/* The manifests of q's results r, sized (V7, manifest.h M2) */
static int manifests(struct qview *qv, struct qres *r)
{
	if (r->man)
		return 0;
	struct manifest_rows rows = { r->idx, r->names.buf, r->noff, r->n };
	int rc = manifest_new(r->cat, r->level, &rows, &r->man);
	if (rc)
		return rc;
	size_t b = manifest_bytes(r->man);
	r->bytes += b;
	qv->cache_bytes += b;
	return 0;
}

/* ---- the query table ---- */

static struct qdir *q_find(struct qview *qv, uint64_t qid)
{
	for (size_t i = 0; i < qv->n; i++)
		if (qv->v[i]->qid == qid)
			return qv->v[i];
	return NULL;
}

static struct qdir *q_find_key(struct qview *qv, const char *key)
{
	for (size_t i = 0; i < qv->n; i++)
		if (strcmp(qv->v[i]->key, key) == 0)
			return qv->v[i];
	return NULL;
}

/* Drop cached results beyond the budget (except keep's), V4 */
static void cache_trim(struct qview *qv, struct qdir *keep)
{
	while (qv->cache_bytes > qv->budget) {
		struct qdir *old = NULL;
		for (size_t i = 0; i < qv->n; i++)
			if (qv->v[i] != keep && (qv->v[i]->res || qv->v[i]->cres) &&
			    (!old || qv->v[i]->used < old->used))
				old = qv->v[i];
		if (!old)
			break;
		res_drop(qv, old);
	}
}

static int cmp_used(const void *a, const void *b)
{
	uint64_t x = (*(struct qdir *const *)a)->used, y = (*(struct qdir *const *)b)->used;
	return x < y ? -1 : x > y;
}

static int q_insert(struct qview *qv, struct qdir *q)
{
	if (qv->n >= QTABLE_MAX) {
		/* forget queries the kernel does not know any more (V3) */
		size_t w = 0;
		for (size_t i = 0; i < qv->n; i++) {
			if (qv->v[i]->nlookup == 0 && qv->v[i]->qid >= QUERY_ID_BASE + 3)
				qdir_free(qv, qv->v[i]);
			else
				qv->v[w++] = qv->v[i];
		}
		qv->n = w;
	}
	if (qv->n >= QTABLE_MAX) {
		/* still full: the least recently used eighth goes (V3); the
		 * caller's entries were used last, the top levels stay */
		qsort(qv->v, qv->n, sizeof(*qv->v), cmp_used);
		size_t drop = QTABLE_MAX / 8, w = 0;
		for (size_t i = 0; i < qv->n; i++) {
			if (drop && qv->v[i]->qid >= QUERY_ID_BASE + 3) {
				qdir_free(qv, qv->v[i]);
				drop--;
			} else {
				qv->v[w++] = qv->v[i];
			}
		}
		qv->n = w;
	}
	if (qv->n == qv->cap) {
		size_t nc = qv->cap ? qv->cap * 2 : 64;
		struct qdir **nv = realloc(qv->v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		qv->v = nv;
		qv->cap = nc;
	}
	q->used = ++qv->clock;
	qv->v[qv->n++] = q;
	return 0;
}

/* The query of directory qid: top levels are made on demand */
static struct qdir *q_get(struct qview *qv, uint64_t qid)
{
	struct qdir *q = q_find(qv, qid);
	if (q)
		q->used = ++qv->clock;   /* V3: LRU */
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
	if (!q->key || q_insert(qv, q)) {
		qdir_free(qv, q);
		return NULL;
	}
	return q;
}

static int is_indexed(void *ctx, uint32_t tag)
{
	const struct dfs *fs = ctx;
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

/* The terms of key ("level/comp/comp..."), re-parsed from the path so that
 * each query owns its memory; 0 or an error with a log line (V2) */
static int parse_key(struct qview *qv, struct qdir *q)
{
	char why[512];
	const char *s = strchr(q->key, '/');
	int rc = 0;
	while (s && !rc) {
		const char *e = strchr(s + 1, '/');
		char *comp = strndup(s + 1, e ? (size_t)(e - s - 1) : strlen(s + 1));
		if (!comp)
			return -ENOMEM;
		rc = query_term_parse(comp, is_indexed, qv->fs, &q->t[q->nt], why, sizeof(why));
		free(comp);
		if (!rc)
			q->nt++;
		s = e;
	}
	if (!rc)
		query_terms_finish(q->t, &q->nt);   /* fuzzymatching= (query.h Q6) */
	if (rc && rc != -ENOMEM) {
		char ek[600], ew[700];   /* L1, L2 (log.h) */
		dfs_log_limited(&qv->loglim, "query '%s': %s (%s)",
				dfs_log_escape(q->key, strlen(q->key), ek, sizeof(ek)),
				dfs_log_escape(why, strlen(why), ew, sizeof(ew)),
				rc == -EOPNOTSUPP ? "EOPNOTSUPP" : "EINVAL");
	}
	return rc;
}

/* Child query "parent/name"; 0 or an error with a log line */
static int q_child(struct qview *qv, struct qdir *p, const char *name, struct qdir **out)
{
	struct qdir *q;
	char *key = NULL;
	if (asprintf(&key, "%s/%s", p->key, name) < 0)
		return -ENOMEM;
	if ((q = q_find_key(qv, key))) {
		free(key);
		*out = q;
		return 0;
	}
	if ((size_t)p->depth - 1 > MAX_TERMS || p->depth + 1 >= (1 << (57 - QLINK_DEPTH_SHIFT))) {
		char ek[600];   /* L1, L2 (log.h) */
		dfs_log_limited(&qv->loglim, "query '%s': too many components (at most %d)",
				dfs_log_escape(key, strlen(key), ek, sizeof(ek)), MAX_TERMS);
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
	/* every component of the key is parsed again (fuzzymatching= ones
	 * too, dropped after: p->nt may be fewer) */
	q->t = calloc((size_t)q->depth - 1, sizeof(*q->t));
	int rc = q->t ? parse_key(qv, q) : -ENOMEM;
	if (rc) {
		qdir_free(qv, q);
		return rc;
	}
	const uint64_t span = ((uint64_t)1 << 58) - 3;
	uint64_t h = fnv1a(FNV1A_INIT, key, strlen(key)) % span;
	q->qid = QUERY_ID_BASE + 3 + h;
	while (q_find(qv, q->qid))   /* a hash collision: next free id */
		q->qid = QUERY_ID_BASE + 3 + (q->qid - QUERY_ID_BASE - 3 + 1) % span;
	if ((rc = q_insert(qv, q))) {
		qdir_free(qv, q);
		return rc;
	}
	*out = q;
	return 0;
}

static int64_t mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

/* The results slot of q for the request's caller (V4, V8) */
static struct qres **res_slot(struct qview *qv, struct qdir *q)
{
	struct dfs_caller *c = qv->caller;
	if (!c)
		return &q->res;
	if (q->cres && (q->cuid != c->uid || q->cgh != c->gh ||
			mono_s() - q->ct >= ACCESS_TTL))
		res_drop1(qv, &q->cres);
	if (!q->cres) {
		q->cuid = c->uid;
		q->cgh = c->gh;
		q->ct = mono_s();
	}
	return &q->cres;
}

/* q's results into *out; want_manifests: 0 none, else sized (V7) */
static int q_results(struct qview *qv, struct qdir *q, int want_manifests,
		     struct qres **out)
{
	int rc;
	struct qres **slot = res_slot(qv, q);
	q->used = ++qv->clock;
	if (!*slot) {
		rc = evaluate(qv, q, slot);
		if (rc)
			return rc;
		qv->cache_bytes += (*slot)->bytes;
	}
	if (want_manifests && (rc = manifests(qv, *slot)))
		return rc;
	*out = *slot;
	cache_trim(qv, q);
	return 0;
}

/*
 * Enter the view for a request: the current catalog (V1; results of an
 * older one dropped, V4), then qv->lock. 0 (leave with view_leave) or the
 * catalog's error (nothing to leave).
 */
static int view_enter(struct dfs *fs, struct dfs_caller *caller, struct qview **out)
{
	struct qview *qv = fs->query;
	struct catalog *c;
	int rc = catalog_get(fs, &c);
	if (rc)
		return rc;
	pthread_mutex_lock(&qv->lock);
	if (qv->cat != c) {
		for (size_t i = 0; i < qv->n; i++)
			res_drop(qv, qv->v[i]);
		catalog_put(qv->cat);
		qv->cat = c;   /* the view keeps this reference */
	} else {
		catalog_put(c);
	}
	qv->caller = caller && dfs_access_filtered(caller) ? caller : NULL;
	*out = qv;
	return 0;
}

static void view_leave(struct qview *qv)
{
	qv->caller = NULL;
	pthread_mutex_unlock(&qv->lock);
}

/* ---- manifest versions (V11), under qv->lock ---- */

static int versioned(const struct qview *qv)
{
	return qv->fs->zero_open && qv->fs->live;
}

static int is_mver(uint64_t id)
{
	return id >= MVER_ID_BASE;
}

static void mver_unlink(struct qview *qv, struct mver **pp)
{
	struct mver *m = *pp;
	*pp = m->next;
	qv->nmv--;
	res_put(m->r);
	free(m);
}

/* the link to version id (*slot NULL: none) */
static struct mver **mver_slot(struct qview *qv, uint64_t id)
{
	struct mver **pp = &qv->mv;
	while (*pp && (*pp)->id != id)
		pp = &(*pp)->next;
	return pp;
}

static struct mver *mver_find(struct qview *qv, uint64_t id)
{
	return *mver_slot(qv, id);
}

static int res_revoked(struct qres *r)
{
	pthread_mutex_lock(&r->ulock);
	int v = r->revoked;
	pthread_mutex_unlock(&r->ulock);
	return v;
}

/* The version of manifest kind k of q that a lookup names (V11) */
static int mver_take(struct qview *qv, struct qdir *q, unsigned k, uint64_t *id)
{
	struct qres *r;
	struct mver *m;
	int64_t now = mono_s();
	int rc = q_results(qv, q, 1, &r);
	if (rc)
		return rc;
	for (struct mver **pp = &qv->mv; (m = *pp);) {
		if ((m->cat != qv->cat && now - m->used >= MVER_IDLE) || res_revoked(m->r))
			mver_unlink(qv, pp);
		else
			pp = &m->next;
	}
	for (m = qv->mv; m; m = m->next)
		if (m->qid == q->qid && m->kind == k && m->cat == qv->cat)
			break;
	if (!m) {
		if (!(m = calloc(1, sizeof(*m))))
			return -ENOMEM;
		m->id = MVER_ID_BASE + qv->mvseq++ % (((uint64_t)1 << 57) - 1);
		m->qid = q->qid;
		m->kind = k;
		m->r = r;
		__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
		m->cat = qv->cat;
		m->next = qv->mv;
		qv->mv = m;
		qv->nmv++;
		if (qv->nmv > MVER_MAX) {   /* the oldest goes */
			struct mver **pp = &qv->mv;
			while ((*pp)->next)
				pp = &(*pp)->next;
			mver_unlink(qv, pp);
		}
	}
	m->used = now;
	*id = m->id;
	return 0;
}

int dfs_query_start(struct dfs *fs)
{
	struct qview *qv = calloc(1, sizeof(*qv));
	if (!qv)
		return -ENOMEM;
	pthread_mutex_init(&qv->lock, NULL);
	pthread_mutex_init(&qv->reg_lock, NULL);
	dfs_log_limit_init(&qv->loglim, QUERY_LOG_PER_SEC);
	qv->fs = fs;
	qv->budget = (size_t)(fs->open_bytes / QCACHE_SHARE);
	if (qv->budget < QCACHE_MIN)
		qv->budget = QCACHE_MIN;
	fs->query = qv;
	return 0;
}

void dfs_query_release(struct dfs *fs)
{
	struct qview *qv = fs->query;
	if (!qv)
		return;
	pthread_mutex_lock(&qv->lock);
	for (size_t i = 0; i < qv->n; i++)
		res_drop(qv, qv->v[i]);
	catalog_put(qv->cat);
	qv->cat = NULL;
	/* V10: results held by opens let go of their catalogs (and so of
	 * their snapshots) now, or when their running read ends */
	pthread_mutex_lock(&qv->reg_lock);
	for (struct qres *r = qv->reg; r; r = r->rnext) {
		struct catalog *c = NULL;
		pthread_mutex_lock(&r->ulock);
		r->revoked = 1;
		if (!r->inflight) {
			c = r->cat;
			r->cat = NULL;
		}
		pthread_mutex_unlock(&r->ulock);
		catalog_put(c);
	}
	pthread_mutex_unlock(&qv->reg_lock);
	pthread_mutex_unlock(&qv->lock);
}

void dfs_query_stop(struct dfs *fs)
{
	struct qview *qv = fs->query;
	if (!qv)
		return;
	while (qv->mv)
		mver_unlink(qv, &qv->mv);
	for (size_t i = 0; i < qv->n; i++)
		qdir_free(qv, qv->v[i]);
	free(qv->v);
	catalog_put(qv->cat);
	pthread_mutex_destroy(&qv->lock);
	pthread_mutex_destroy(&qv->reg_lock);
	dfs_log_limit_destroy(&qv->loglim);
	free(qv);
	fs->query = NULL;
}

/* ---- symlinks: target from the nodes (no state needed, V5) ---- */

static int link_target(struct dfs *fs, uint64_t ino, struct strbuf *b)
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
		strbuf_add(b, "../", 3);
	strbuf_addstr(b, "patients");
	for (int i = 0; i <= up; i++) {
		strbuf_addch(b, '/');
		strbuf_add(b, parts[i], lens[i]);
	}
	if (k == KIND_QLINK_INSTANCE)
		strbuf_add(b, ".dcm", 4);
	return strbuf_error(b);
}

/* ---- the FUSE side (called from ll.c) ---- */

int dfs_query_kind(unsigned kind)
{
	return kind >= KIND_QLINK_STUDY && kind <= KIND_QDIR;
}

static int is_link_kind(unsigned k)
{
	return k == KIND_QLINK_STUDY || k == KIND_QLINK_SERIES || k == KIND_QLINK_INSTANCE;
}

static void base_stat(const struct catalog *c, struct stat *st)
{
	st->st_uid = c->uid;
	st->st_gid = c->gid;
	stat_times(st, c->mtime);
}

static uint64_t link_ino(const struct catalog *c, const struct qdir *q, uint32_t x)
{
	static const unsigned kinds[] = { KIND_QLINK_STUDY, KIND_QLINK_SERIES, KIND_QLINK_INSTANCE };
	uint64_t tid = q->level == CAT_INSTANCES ? c->inst[x].id :
		       q->level == CAT_SERIES ? c->series[x].id : c->study[x].id;
	return ino_make(tid | (uint64_t)q->depth << QLINK_DEPTH_SHIFT, kinds[q->level]);
}

/* under qv->lock */
static int stat_locked(struct qview *qv, uint64_t ino, struct stat *st)
{
	unsigned k = ino_kind(ino);
	int rc;
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_blksize = 65536;
	base_stat(qv->cat, st);
	if (is_link_kind(k)) {
		struct strbuf b = STRBUF_INIT;
		rc = link_target(qv->fs, ino, &b);
		st->st_size = (off_t)b.len;
		strbuf_release(&b);
		if (rc)
			return rc;
		st->st_mode = S_IFLNK | 0777;
		st->st_nlink = 1;
		return 0;
	}
	if (is_mver(ino_id(ino))) {   /* V11 */
		struct mver *m = mver_find(qv, ino_id(ino));
		if (!m || m->kind != k)
			return -ESTALE;
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)manifest_size(m->r->man, k == KIND_QMANIFEST_CSV ?
						   MANIFEST_CSV : MANIFEST_JSONL);
		st->st_blocks = (st->st_size + 511) / 512;
		return 0;
	}
	struct qdir *q = q_get(qv, ino_id(ino));
	if (!q)
		return -ESTALE;
	if (k == KIND_QDIR) {
		st->st_mode = S_IFDIR | 0555;
		st->st_nlink = 2;
		st->st_size = 4096;
		st->st_blocks = 8;
		return 0;
	}
	struct qres *r;
	rc = q_results(qv, q, 1, &r);
	if (rc)
		return rc;
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)manifest_size(r->man, k == KIND_QMANIFEST_CSV ? MANIFEST_CSV :
						    MANIFEST_JSONL);
	st->st_blocks = (st->st_size + 511) / 512;
	return 0;
}

int dfs_query_stat(struct dfs *fs, struct dfs_caller *c, uint64_t ino, struct stat *st)
{
	struct qview *qv;
	int rc = view_enter(fs, c, &qv);
	if (rc)
		return rc;
	rc = stat_locked(qv, ino, st);
	view_leave(qv);
	return rc;
}

static int counted_kind(unsigned k)
{
	return k == KIND_QDIR || k == KIND_QMANIFEST_CSV || k == KIND_QMANIFEST_JSONL;
}

static void ref(struct qview *qv, uint64_t ino)
{
	if (is_mver(ino_id(ino))) {
		struct mver *m = mver_find(qv, ino_id(ino));
		if (m)
			m->nlookup++;
	} else if (counted_kind(ino_kind(ino))) {
		struct qdir *q = q_find(qv, ino_id(ino));
		if (q)
			q->nlookup++;
	}
}

void dfs_query_forget(struct dfs *fs, uint64_t ino, uint64_t n)
{
	struct qview *qv = fs->query;
	if (!counted_kind(ino_kind(ino)) || !qv)
		return;
	pthread_mutex_lock(&qv->lock);
	if (is_mver(ino_id(ino))) {   /* V11: a version the kernel forgot goes */
		struct mver **pp = mver_slot(qv, ino_id(ino)), *m = *pp;
		if (m && (m->nlookup = m->nlookup > n ? m->nlookup - n : 0) == 0)
			mver_unlink(qv, pp);
	} else {
		struct qdir *q = q_find(qv, ino_id(ino));
		if (q)
			q->nlookup = q->nlookup > n ? q->nlookup - n : 0;
	}
	pthread_mutex_unlock(&qv->lock);
}

static void entry_of(struct dfs *fs, const struct stat *st, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = st->st_ino;
	e->generation = 1;
	e->attr = *st;
	double t = dfs_timeout(fs);   /* 0 in a mixed archive (V8, access.h A3) */
	unsigned k = ino_kind(st->st_ino);
	if (((k == KIND_QDIR && ino_id(st->st_ino) >= QUERY_ID_BASE + 3) ||
	     k == KIND_QMANIFEST_CSV || k == KIND_QMANIFEST_JSONL) && t > QDIR_TIMEOUT)
		t = QDIR_TIMEOUT;   /* V3: their table entry may go; look again soon */
	e->entry_timeout = t;
	e->attr_timeout = t;
	if (is_mver(ino_id(st->st_ino)))
		e->entry_timeout = 0;   /* V11: the next lookup names the newest */
}

/* The link named name in the results of p: its inode, or 0 */
static uint64_t find_link(struct qview *qv, struct qdir *p, struct qres *r,
			  const char *name)
{
	size_t lo = 0, hi = r->n;
	while (lo < hi) {
		size_t m = (lo + hi) / 2;
		int c = strcmp(rname(r, r->by_name[m]), name);
		if (c == 0)
			return link_ino(qv->cat, p, r->idx[r->by_name[m]]);
		if (c < 0)
			lo = m + 1;
		else
			hi = m;
	}
	return 0;
}

/* name, in directory p, is neither a link nor a manifest nor shaped as a
 * term (V2): -EINVAL with a log line; a name starting with '.' (what file
 * managers probe: .hidden, .directory) -ENOENT without one */
static int not_term(struct qview *qv, struct qdir *p, const char *name)
{
	char ek[600], en[300];   /* L1, L2 (log.h) */
	if (name[0] == '.')
		return -ENOENT;
	dfs_log_limited(&qv->loglim, "query '%s/%s': not a link here nor Keyword=value "
			"(EINVAL)", dfs_log_escape(p->key, strlen(p->key), ek, sizeof(ek)),
			dfs_log_escape(name, strlen(name), en, sizeof(en)));
	return -EINVAL;
}

/* The inode of name in directory p (under qv->lock) */
static int lookup_locked(struct qview *qv, struct qdir *p, const char *name, uint64_t *ino)
{
	struct qdir *c;
	int rc;
	if (strcmp(name, "manifest.csv") == 0 || strcmp(name, "manifest.jsonl") == 0) {
		unsigned k = name[9] == 'c' ? KIND_QMANIFEST_CSV : KIND_QMANIFEST_JSONL;
		uint64_t id = p->qid;
		if (versioned(qv) && (rc = mver_take(qv, p, k, &id)))
			return rc;
		*ino = ino_make(id, k);
	} else if (query_is_term_name(name)) {
		if ((rc = q_child(qv, p, name, &c)))
			return rc;
		*ino = ino_make(c->qid, KIND_QDIR);
	} else {
		struct qres *r;
		if ((rc = q_results(qv, p, 0, &r)))
			return rc;
		if (!(*ino = find_link(qv, p, r, name)))
			return not_term(qv, p, name);
	}
	return 0;
}

int dfs_query_lookup(struct dfs *fs, struct dfs_caller *c, uint64_t parent,
		     const char *name, struct fuse_entry_param *e)
{
	struct stat st;
	struct qview *qv;
	uint64_t ino = 0;
	int rc = view_enter(fs, c, &qv);
	if (rc)
		return rc;
	struct qdir *p = q_get(qv, ino_id(parent));
	rc = p ? lookup_locked(qv, p, name, &ino) : -ESTALE;
	if (!rc)
		rc = stat_locked(qv, ino, &st);
	if (!rc) {
		entry_of(fs, &st, e);
		ref(qv, ino);
	}
	view_leave(qv);
	return rc;
}

int dfs_query_readlink(struct dfs *fs, uint64_t ino, char **out)
{
	struct strbuf b = STRBUF_INIT;
	if (!is_link_kind(ino_kind(ino)))
		return -EINVAL;
	int rc = link_target(fs, ino, &b);
	if (rc) {
		strbuf_release(&b);
		return rc;
	}
	*out = strbuf_detach(&b, NULL);
	return *out ? 0 : -ENOMEM;
}

/* One readdirplus entry at position pos >= 2 into st (under qv->lock) */
static int plus_stat(struct qview *qv, struct qdir *q, struct qres *r, size_t pos,
		     uint64_t eino, struct strbuf *path, struct stat *st)
{
	if (pos < 4)
		return stat_locked(qv, eino, st);
	/* the link's size from the table: no node lookups */
	strbuf_reset(path);
	catalog_path(qv->cat, q->level, r->idx[pos - 4], path);
	st->st_mode = S_IFLNK | 0777;
	st->st_nlink = 1;
	st->st_size = (off_t)(path->len + 3 * (size_t)q->depth);
	st->st_blksize = 65536;
	base_stat(qv->cat, st);
	return 0;
}

/* Directory listing: ".", "..", manifest.csv, manifest.jsonl, the links */
int dfs_query_readdir(struct dfs *fs, struct dfs_caller *c, fuse_req_t req, uint64_t ino,
		      size_t size, off_t off, int plus)
{
	char *buf = malloc(size);
	size_t len = 0;
	struct qview *qv;
	struct strbuf path = STRBUF_INIT;
	if (!buf)
		return -ENOMEM;
	int rc = view_enter(fs, c, &qv);
	if (rc) {
		free(buf);
		return rc;
	}
	struct qdir *q = q_get(qv, ino_id(ino));
	struct qres *r = NULL;
	rc = q ? q_results(qv, q, 0, &r) : -ESTALE;   /* V7: no manifests */
	size_t total = rc ? 0 : 4 + r->n;
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
			name = rname(r, pos - 4);
			eino = link_ino(qv->cat, q, r->idx[pos - 4]);
		}
		memset(&st, 0, sizeof(st));
		st.st_ino = eino;
		size_t n;
		if (plus && pos >= 4) {
			struct fuse_entry_param e;
			if ((rc = plus_stat(qv, q, r, pos, eino, &path, &st)))
				break;
			entry_of(fs, &st, &e);
			n = fuse_add_direntry_plus(req, buf + len, size - len, name, &e,
						   (off_t)pos + 1);
			if (n <= size - len)
				ref(qv, eino);
		} else if (plus) {
			struct fuse_entry_param e;
			memset(&e, 0, sizeof(e));   /* a name only (V7) */
			e.attr.st_mode = pos < 2 ? S_IFDIR : S_IFREG;
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
	strbuf_release(&path);
	if (rc && len)
		rc = 0;
	view_leave(qv);
	if (!rc)
		fuse_reply_buf(req, buf, len);
	free(buf);
	return rc;
}

/* ---- manifests as file kinds (V9) ---- */

/* An open manifest: the results it reads, held (V9) */
struct mopen {
	struct qres *r;
	int fmt;
};

/* The sized results of manifest id for caller c, held (V9): 0 or an error */
static int manifest_results(struct dfs *fs, struct dfs_caller *c, uint64_t id,
			    struct qres **out)
{
	struct qview *qv;
	struct qres *r = NULL;
	int rc = view_enter(fs, c, &qv);
	if (rc)
		return rc;
	if (is_mver(id)) {   /* V11 */
		struct mver *m = mver_find(qv, id);
		rc = m ? 0 : -ESTALE;
		if (m) {
			r = m->r;
			m->used = mono_s();
		}
	} else {
		struct qdir *q = q_get(qv, id);
		rc = q ? q_results(qv, q, 1, &r) : -ESTALE;
	}
	if (!rc) {
		__atomic_add_fetch(&r->refs, 1, __ATOMIC_RELAXED);
		*out = r;
	}
	view_leave(qv);
	return rc;
}

static int manifest_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
			 struct dfs_file *f)
{
	struct mopen *o = calloc(1, sizeof(*o));
	(void)nv;
	if (!o)
		return -ENOMEM;
	int rc = manifest_results(fs, f->caller, id, &o->r);
	if (rc) {
		free(o);
		return rc;
	}
	o->fmt = f->kind == KIND_QMANIFEST_CSV ? MANIFEST_CSV : MANIFEST_JSONL;
	f->priv = o;
	/* V9: not through the page cache when the content is the caller's
	 * own (A8) or may change while mounted (the next version is another
	 * content under the same inode) */
	f->direct_io = (f->caller && dfs_access_filtered(f->caller)) ||
		       (fs->live && !is_mver(id));   /* a version never changes (V11) */
	return 0;
}

static int reply_bytes(void *req, const char *p, size_t n)
{
	fuse_reply_buf(req, p, n);
	return 0;
}

static int manifest_fread(struct dfs *fs, struct dfs_file *f, fuse_req_t req,
			  size_t size, off_t off)
{
	struct mopen *o = f->priv, tmp = { NULL, 0 };
	int rc;
	if (off < 0)
		return -EINVAL;
	if (!o) {
		/* V9: a read without an open: the current results of the
		 * inode for the caller; a mixed archive needs the caller */
		if (!f->caller && !dfs_access_uniform(fs))
			return -EACCES;
		if ((rc = manifest_results(fs, f->caller, f->id, &tmp.r)))
			return rc;
		tmp.fmt = f->kind == KIND_QMANIFEST_CSV ? MANIFEST_CSV : MANIFEST_JSONL;
		o = &tmp;
	}
	/* V10: a read generates from the catalog only while it is not revoked */
	struct qres *r = o->r;
	struct catalog *drop = NULL;
	pthread_mutex_lock(&r->ulock);
	int revoked = r->revoked;
	if (!revoked)
		r->inflight++;
	pthread_mutex_unlock(&r->ulock);
	if (revoked) {
		dfs_log_limited(&fs->query->loglim, "query: a manifest open from before the "
				"index map grew was read: open it again (ESTALE)");
		res_put(tmp.r);
		return -ESTALE;
	}
	rc = manifest_read(r->man, o->fmt, (uint64_t)off, size, reply_bytes, req);
	pthread_mutex_lock(&r->ulock);
	if (--r->inflight == 0 && r->revoked) {
		drop = r->cat;
		r->cat = NULL;
	}
	pthread_mutex_unlock(&r->ulock);
	catalog_put(drop);
	res_put(tmp.r);
	return rc;
}

static void manifest_release(struct dfs_file *f)
{
	struct mopen *o = f->priv;
	if (o) {
		res_put(o->r);
		free(o);
	}
	f->priv = NULL;
}

static int query_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
			 struct stat *st)
{
	(void)fs; (void)id; (void)nv; (void)st;
	return -ENOENT;   /* dfs_stat calls dfs_query_stat for these kinds */
}

/* no .generate, no .per_caller: the open holds the results, the reads
 * generate rows (V9); a filtered caller's open is direct_io (V8) */
const struct kind_ops kind_qmanifest = {
	.name = "manifest", .getattr = query_getattr, .open = manifest_open,
	.read = manifest_fread, .release = manifest_release,
};

const struct kind_ops kind_qother = {
	.name = "query",
	.getattr = query_getattr,
};
