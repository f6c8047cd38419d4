/*
 * kind_level.c - the level files, generated from the index:
 *
 *   series.json        one QIDO-RS series result (level_json.h)
 *   study.json         one QIDO-RS study result
 *   patient.json       one QIDO-RS-like patient result
 *   study.fhir.json    FHIR R4 ImagingStudy (fhir.h)
 *   patient.fhir.json  FHIR R4 Patient
 *
 * and the per-mount cache of generated content the xattrs (xattr.c) share.
 *
 * Design notes
 * (K1) Everything comes from the index (node records, dirents, file
 *      records); no source file is read. This file only walks the tree in
 *      listing order (series dirs by name, instances by name) to feed an
 *      aggregate (levelagg.h: first non-empty value, A1); the writers are
 *      pure (level_json.c, fhir.c). Counts come from the tree.
 * (K2) Content is generated on the first getattr/open of a file and kept in
 *      a per-inode cache hanging off struct dfs (content is immutable while
 *      mounted); the cache is bounded and simply emptied when full. Keys are
 *      inode numbers; kind 0 (never a file) holds a directory's attribute
 *      set for the xattrs.
 * (K3) A cache hit gives a private copy: the entry may be freed (flush) as
 *      soon as the lock is dropped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "error.h"
#include "fhir.h"
#include "level_json.h"
#include "levelagg.h"
#include "record.h"
#include "tags.h"

/* ---- the index side: feeding the aggregates ---- */

/* an instance's record, de-identified under anon/ (owned by owner) */
static int inst_record(struct dfs *fs, uint64_t id, const void **rec, size_t *len,
		       struct levelagg *owner)
{
	struct node_view nv;
	int rc = index_node(fs->ix, id, &nv);
	if (rc)
		return rc;
	if (nv.rec->type != NODE_INSTANCE)
		return DFS_EINDEX;
	return dfs_anon_record(fs, &nv, rec, len, owner);
}

/* Children of a directory: sub-directories, or (series) instance ids. */
/* The instances of series `id` into a (until it is full); *ninst: how many. */
static int series_walk(struct dfs *fs, uint64_t id, struct levelagg *a, uint64_t *ninst)
{
	struct dfs_ids in;
	int rc = dfs_children(fs, id, KBIT(KIND_DCM), &in);
	for (size_t i = 0; !rc && i < in.n && !levelagg_full(a); i++) {
		const void *rec;
		size_t len;
		rc = inst_record(fs, in.v[i], &rec, &len, a);
		if (!rc)
			levelagg_record(a, rec, len);
	}
	if (ninst)
		*ninst = in.n;
	free(in.v);
	return rc;
}

int dfs_level_agg(struct dfs *fs, uint64_t id, int type, struct levelagg *a)
{
	struct dfs_ids c;
	int rc;
	if (levelagg_full(a))
		return 0;
	if (type == NODE_SERIES)
		return series_walk(fs, id, a, NULL);
	rc = dfs_children(fs, id, KBIT(KIND_DIR), &c);
	for (size_t i = 0; !rc && i < c.n && !levelagg_full(a); i++) {
		struct node_view nv;
		rc = index_node(fs->ix, c.v[i], &nv);
		if (!rc)
			rc = dfs_level_agg(fs, c.v[i], nv.rec->type, a);
	}
	free(c.v);
	return rc;
}

/* Series and instances below a study or patient directory (from the tree). */
static int count_below(struct dfs *fs, uint64_t id, int type, uint64_t *nstudies,
		       uint64_t *nseries, uint64_t *ninst)
{
	struct dfs_ids c;
	int rc = dfs_children(fs, id, KBIT(KIND_DIR), &c);
	for (size_t i = 0; !rc && i < c.n; i++) {
		struct node_view nv;
		rc = index_node(fs->ix, c.v[i], &nv);
		if (rc)
			break;
		if (type == NODE_PATIENT) {
			(*nstudies)++;
			rc = count_below(fs, c.v[i], NODE_STUDY, nstudies, nseries, ninst);
		} else {
			(*nseries)++;
			*ninst += nv.rec->nchildren;
		}
	}
	free(c.v);
	return rc;
}

/* Everything study.json and study.fhir.json need, in one pass. */
static int study_walk(struct dfs *fs, uint64_t id, struct levelagg_study *st)
{
	struct dfs_ids ser;
	int rc = levelagg_study_init(st);
	if (!rc)
		rc = dfs_children(fs, id, KBIT(KIND_DIR), &ser);
	if (rc) {
		levelagg_study_free(st);
		return rc;
	}
	for (size_t i = 0; !rc && i < ser.n; i++) {
		struct dfs_ids in;
		if ((rc = levelagg_study_series(st)) || (rc = dfs_children(fs, ser.v[i], KBIT(KIND_DCM), &in)))
			break;
		for (size_t j = 0; !rc && j < in.n; j++) {
			const void *rec;
			size_t len;
			rc = inst_record(fs, in.v[j], &rec, &len, &st->a);
			if (!rc)
				rc = levelagg_study_instance(st, rec, len);
		}
		free(in.v);
	}
	free(ser.v);
	if (rc)
		levelagg_study_free(st);
	else
		levelagg_study_finish(st);
	return rc;
}

/* ---- generating one level file ---- */

static int gen_series_json(struct dfs *fs, uint64_t id, struct jsonw *w)
{
	struct levelagg a;
	uint64_t n = 0;
	int rc = levelagg_init(&a, "ES");
	if (rc)
		return rc;
	rc = series_walk(fs, id, &a, &n);
	if (!rc)
		rc = level_json_series(w, &a, n);
	levelagg_free(&a);
	return rc;
}

static int gen_study(struct dfs *fs, uint64_t id, struct jsonw *w, int fhir)
{
	struct levelagg_study st;
	int rc = study_walk(fs, id, &st);
	if (rc)
		return rc;
	rc = fhir ? fhir_imaging_study(w, &st) : level_json_study(w, &st);
	levelagg_study_free(&st);
	return rc;
}

static int gen_patient(struct dfs *fs, uint64_t id, struct jsonw *w, int fhir)
{
	struct levelagg a;
	uint64_t nst = 0, nse = 0, nin = 0;
	int rc = levelagg_init(&a, "P");
	if (rc)
		return rc;
	rc = dfs_level_agg(fs, id, NODE_PATIENT, &a);
	if (!rc && !fhir)
		rc = count_below(fs, id, NODE_PATIENT, &nst, &nse, &nin);
	if (!rc)
		rc = fhir ? fhir_patient(w, &a) : level_json_patient(w, &a, nst, nse, nin);
	levelagg_free(&a);
	return rc;
}

/* ---- per-inode cache of generated content (K2, K3) ---- */

#define CACHE_BUCKETS 4096
#define CACHE_MAX_BYTES (64u << 20)

struct centry {
	uint64_t key;
	char *buf;
	size_t len;
	struct centry *next;
};

/* One per mount: struct dfs.lcache. */
struct dfs_lcache {
	pthread_mutex_t lock;
	size_t bytes;                        /* (lock) entries + contents */
	struct centry *slot[CACHE_BUCKETS];  /* (lock) hash chains */
};

int dfs_level_init(struct dfs *fs)
{
	struct dfs_lcache *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	int rc = pthread_mutex_init(&c->lock, NULL);
	if (rc) {
		free(c);
		return -rc;
	}
	fs->lcache = c;
	return 0;
}

static void cache_flush_locked(struct dfs_lcache *c)
{
	for (size_t i = 0; i < CACHE_BUCKETS; i++) {
		struct centry *e = c->slot[i];
		while (e) {
			struct centry *n = e->next;
			free(e->buf);
			free(e);
			e = n;
		}
		c->slot[i] = NULL;
	}
	c->bytes = 0;
}

void dfs_level_fini(struct dfs *fs)
{
	struct dfs_lcache *c = fs->lcache;
	if (!c)
		return;
	cache_flush_locked(c);   /* no request is running any more */
	pthread_mutex_destroy(&c->lock);
	free(c);
	fs->lcache = NULL;
}

void dfs_level_cache_drop(struct dfs *fs)
{
	struct dfs_lcache *c = fs->lcache;
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	cache_flush_locked(c);
	pthread_mutex_unlock(&c->lock);
}

static size_t cache_slot(uint64_t key)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 52) % CACHE_BUCKETS;
}

int dfs_level_cache_get(struct dfs *fs, uint64_t key, char **copy, size_t *len)
{
	struct dfs_lcache *c = fs->lcache;
	int found = 0;
	if (!c)
		return 0;
	pthread_mutex_lock(&c->lock);
	for (struct centry *e = c->slot[cache_slot(key)]; e; e = e->next) {
		if (e->key != key)
			continue;
		*len = e->len;
		found = 1;
		if (copy) {
			*copy = malloc(e->len ? e->len : 1);
			if (*copy)
				memcpy(*copy, e->buf, e->len);
			else
				found = 0;
		}
		break;
	}
	pthread_mutex_unlock(&c->lock);
	return found;
}

void dfs_level_cache_put(struct dfs *fs, uint64_t key, const char *buf, size_t len)
{
	struct dfs_lcache *c = fs->lcache;
	size_t cost = len + sizeof(struct centry);
	if (!c || cost > CACHE_MAX_BYTES / 4)
		return;
	struct centry *n = malloc(sizeof(*n));
	char *copy = malloc(len ? len : 1);
	if (!n || !copy) {
		free(n);
		free(copy);
		return;
	}
	memcpy(copy, buf, len);
	n->key = key;
	n->buf = copy;
	n->len = len;
	pthread_mutex_lock(&c->lock);
	size_t s = cache_slot(key);
	for (struct centry *e = c->slot[s]; e; e = e->next) {
		if (e->key == key) {   /* another thread was faster */
			pthread_mutex_unlock(&c->lock);
			free(copy);
			free(n);
			return;
		}
	}
	if (c->bytes + cost > CACHE_MAX_BYTES)
		cache_flush_locked(c);
	n->next = c->slot[s];
	c->slot[s] = n;
	c->bytes += cost;
	pthread_mutex_unlock(&c->lock);
}

/* ---- the file kinds ---- */

static int level_type(unsigned kind)
{
	switch (kind) {
	case KIND_SERIES_JSON: return NODE_SERIES;
	case KIND_STUDY_JSON: case KIND_STUDY_FHIR: return NODE_STUDY;
	case KIND_PATIENT_JSON: case KIND_PATIENT_FHIR: return NODE_PATIENT;
	}
	return -1;
}

/* The content of level file (id, kind); buf NULL: only the length. */
static int level_content(struct dfs *fs, uint64_t id, unsigned kind,
			 const struct node_view *nv, char **buf, size_t *len)
{
	uint64_t key = ino_make(id, kind);
	struct strbuf sb = STRBUF_INIT;
	struct jsonw w;
	int rc;
	if (nv->rec->type != level_type(kind))
		return -ENOENT;
	if (dfs_level_cache_get(fs, key, buf, len))
		return 0;
	jsonw_init(&w, &sb);
	switch (kind) {
	case KIND_SERIES_JSON: rc = gen_series_json(fs, id, &w); break;
	case KIND_STUDY_JSON: rc = gen_study(fs, id, &w, 0); break;
	case KIND_PATIENT_JSON: rc = gen_patient(fs, id, &w, 0); break;
	case KIND_STUDY_FHIR: rc = gen_study(fs, id, &w, 1); break;
	case KIND_PATIENT_FHIR: rc = gen_patient(fs, id, &w, 1); break;
	default: rc = -ENOENT;
	}
	if (!rc)
		rc = strbuf_addch(&sb, '\n');
	if (rc) {
		strbuf_release(&sb);
		return rc;
	}
	dfs_level_cache_put(fs, key, sb.buf, sb.len);
	*len = sb.len;
	if (buf)
		*buf = strbuf_detach(&sb, NULL);
	else
		strbuf_release(&sb);
	return 0;
}

static int level_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
			 struct stat *st, unsigned kind)
{
	size_t len;
	int rc = level_content(fs, id, kind, nv, NULL, &len);
	if (rc)
		return rc;
	stat_file(st, nv, nv->rec->mode & 0444, len);
	return 0;
}

#define GETATTR(fn, kind)                                                      \
	static int fn(struct dfs *fs, uint64_t id, const struct node_view *nv, \
		      struct stat *st)                                         \
	{                                                                      \
		return level_getattr(fs, id, nv, st, kind);                    \
	}
GETATTR(series_json_getattr, KIND_SERIES_JSON)
GETATTR(study_json_getattr, KIND_STUDY_JSON)
GETATTR(patient_json_getattr, KIND_PATIENT_JSON)
GETATTR(study_fhir_getattr, KIND_STUDY_FHIR)
GETATTR(patient_fhir_getattr, KIND_PATIENT_FHIR)

static int level_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		      struct dfs_file *f)
{
	return level_content(fs, id, f->kind, nv, &f->buf, &f->len);
}

#define LEVEL_KIND(var, nm, ga) \
	const struct kind_ops var = KIND_GENERATED(nm, ga, level_open);
LEVEL_KIND(kind_series_json, "series.json", series_json_getattr)
LEVEL_KIND(kind_study_json, "study.json", study_json_getattr)
LEVEL_KIND(kind_patient_json, "patient.json", patient_json_getattr)
LEVEL_KIND(kind_study_fhir, "study.fhir.json", study_fhir_getattr)
LEVEL_KIND(kind_patient_fhir, "patient.fhir.json", patient_fhir_getattr)
