/*
 * catalog.h - one refcounted, read-only snapshot of the index for the views
 * that work on whole levels (query/ today): every instance in tree order,
 * the patient / study / series spans over it, the values of every indexed
 * tag in columns, and ModalitiesInStudy computed once per study.
 *
 * Design notes
 * (C1) Built once per mount on a thread of its own (catalog_start, called
 *      by main.c right after index_reopen), so it is usually ready before
 *      the first query; catalog_get() waits for it. It is published whole:
 *      after that every field above "lazy columns" is immutable, so
 *      readers need no lock for them.
 * (C2) Refcounted: struct dfs holds one reference (its catalog slot, under
 *      the slot's lock); each user takes one with catalog_get() for the
 *      length of a request and drops it with catalog_put(). A later
 *      generation replaces the slot's catalog; the old one is freed when
 *      its last user puts it. Caches built over a catalog (query results)
 *      remember which one and are dropped when it changes.
 * (C3) Tree order: patients/ -> patient -> study -> series -> instance as
 *      the index lists them. An instance range [first, end) of a study or
 *      series is contiguous; a study's series are contiguous too.
 * (C4) ModalitiesInStudy of a study: the distinct non-empty Modality
 *      values of its instances, sorted by bytes (shorter first on a common
 *      prefix), as study.json gives them; '\'-joined in manifests.
 * (C5) Columns: the cell of instance i for tags[j] is the offset in vpool
 *      of its value (a uint16 length, then the bytes; 0: absent), kept per
 *      series where it can be: vser[j * nseries + s] is the cell of every
 *      instance of series s when they all have the same one, else
 *      CAT_VARY | k, and the cells of the series' instances are vx[k ..]
 *      in order (catalog_coff). Attributes of the patient, study and
 *      series cost 4 bytes per series, not per instance. Equal values of
 *      consecutive instances share one offset, so a matcher may reuse its
 *      last answer when the offset repeats. When the copy could not be
 *      made (memory), columns of values pointing into the records are
 *      made on first use instead (cols_lock).
 * (C6) Record and name pointers point into the LMDB map: the catalog holds
 *      the snapshots it read them in (index_snap_take, index.h I6) until it
 *      is freed, so a live update (I9) never reuses their pages. Its two
 *      build passes (tree walk, records) run on two threads: their
 *      snapshots must be one generation (index_snap_id), else it is built
 *      again.
 * (C7) A live update makes the slot stale (catalog_invalidate): the next
 *      catalog_get builds the next generation on the calling thread (users
 *      of the old one keep it until they put it, C2).
 * Memory, per instance: ~48 B table + 4 B per indexed tag whose value
 * varies within its series (SOPInstanceUID, InstanceNumber, positions...)
 * + the pool; per series 4 B per indexed tag. On the bench archive (50
 * tags): ~75 B per instance (7 MiB at 100,000), where a cell per instance
 * and tag took ~230 B (22 MiB). Big arrays are in huge-page-advised mappings (page faults are
 * costly on VMs).
 *
 * Errors: 0 or negative errno. Threading: see C1, C2; catalog_get,
 * catalog_put and catalog_column may be called from any thread.
 */
#ifndef DICOMFS_CATALOG_H
#define DICOMFS_CATALOG_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "arena.h"

struct dfs;
struct strbuf;

enum { CAT_STUDIES = 0, CAT_SERIES = 1, CAT_INSTANCES = 2 };

struct cat_sv {
	const char *s;
	size_t l;
};

struct cat_dir {
	uint64_t id;
	struct cat_sv name;
	uint32_t parent;      /* index in the level above */
	uint32_t first, end;  /* instance range (C3) */
};

struct cat_inst {
	uint64_t id;
	struct cat_sv name;   /* "<n>.dcm" */
	uint32_t series;
	const void *rec;      /* the file record (record.h), C6 */
	size_t rec_len;
};

struct cat_lazycol {
	uint32_t tag;
	struct cat_sv *v;     /* per instance */
};

struct catalog {
	int refs;                    /* atomic (C2) */
	/* immutable once published (C1) */
	struct cat_dir *pat, *study, *series;
	size_t npat, nstudy, nseries;
	struct cat_inst *inst;
	size_t ninst;
	uint32_t uid, gid;           /* of the root: for every query object */
	int64_t mtime;
	const uint32_t *tags;        /* the indexed tags, ascending */
	size_t ntags;
	uint64_t *smask;             /* per series: bit j, an instance has a
				      * non-empty value of tags[j] (j < 64) */
	uint32_t *vser;              /* C5; NULL: not copied */
	uint32_t *vx;                /* C5: the cells of varying series */
	size_t nvx;
	char *vpool;
	size_t vpool_len;
	struct cat_sv *mods;         /* C4: study s has mods[mod_first[s] ..
				      * mod_first[s + 1]) */
	uint32_t *mod_first;
	/* lazy columns (C5) */
	pthread_mutex_t cols_lock;
	struct cat_lazycol *cols;    /* cols_lock */
	size_t ncols;                /* cols_lock */
	struct index_snap *snap[2];  /* C6: the tree walk's, the records' */
	/* the instances' names (index.h I3: a listing hands them over in a
	 * buffer of its own) */
	struct arena names;
	/* the capacities while building */
	size_t cpat, cstudy, cseries, cinst;
};

/* The slot in struct dfs (fs->catalog). */
struct catalog_slot {
	pthread_mutex_t lock;
	pthread_cond_t ready;        /* signalled when building ends */
	int state;                   /* lock: 0 not started, 1 building, 2 done */
	int err;                     /* lock: why cur is NULL when done */
	struct catalog *cur;         /* lock: the current generation (C2) */
	pthread_t thread;
	int threaded;
};

/*
 * Start building the catalog of fs->ix on a thread of its own (C1); the
 * index must be open for the mount. 0 or -ENOMEM (then nothing started).
 */
int catalog_start(struct dfs *fs);
/* Wait for the build, drop the slot's reference, free the slot. Safe when
 * catalog_start failed or was not called. */
void catalog_stop(struct dfs *fs);
/*
 * A reference to the current catalog in *out (waits while it is being
 * built; builds it here when no thread could). 0 or the build's error
 * (logged once).
 */
int catalog_get(struct dfs *fs, struct catalog **out);
void catalog_put(struct catalog *c);
/* One more reference to c (which the caller holds one of); returns c. */
struct catalog *catalog_ref(struct catalog *c);
/* The index changed (C7): the next catalog_get builds a new generation. */
void catalog_invalidate(struct dfs *fs);
/* The LMDB map must grow (index/store.h S3): the slot lets go of its
 * catalog (and so of its snapshots, C6) at once; the next catalog_get
 * builds a new one. Users holding a reference keep theirs until they put
 * it (C2). */
void catalog_release(struct dfs *fs);

/* The range [*a, *e) of instances of match x at level (CAT_*). */
void catalog_range(const struct catalog *c, int level, uint32_t x, uint32_t *a,
		   uint32_t *e);
/* The number of series of study x. */
uint32_t catalog_study_nseries(const struct catalog *c, uint32_t x);
/* The path below the mount root of match x at level, added to sb. */
void catalog_path(const struct catalog *c, int level, uint32_t x, struct strbuf *sb);
/* ModalitiesInStudy of study x (C4), '\'-joined, added to sb. */
void catalog_modalities(const struct catalog *c, uint32_t x, struct strbuf *sb);

/* A column of values of one tag: cells (C5) or values. */
struct cat_col {
	const uint32_t *ser;         /* vser + j * nseries, or NULL */
	const struct cat_sv *sv;     /* else: per instance */
};
#define CAT_VARY 0x80000000u
/* The cell (offset into vpool, 0: absent) of instance i in col (C5),
 * whose ser is set. */
static inline uint32_t catalog_coff(const struct catalog *c, const struct cat_col *col,
				    size_t i)
{
	uint32_t s = c->inst[i].series, v = col->ser[s];
	return v & CAT_VARY ? c->vx[(v & ~CAT_VARY) + (i - c->series[s].first)] : v;
}
/* The columns of tags[0, n) (n <= 64) into cols: one pass over the
 * records for all that are not copied (C5). 0 or -ENOMEM. */
int catalog_columns(struct catalog *c, const uint32_t *tags, size_t n,
		    struct cat_col *cols);
static inline struct cat_sv catalog_colv(const struct catalog *c,
					 const struct cat_col *col, size_t i)
{
	if (col->ser) {
		struct cat_sv v = { "", 0 };
		uint32_t o = catalog_coff(c, col, i);
		if (o) {
			uint16_t l;
			__builtin_memcpy(&l, c->vpool + o, 2);
			v.s = c->vpool + o + 2;
			v.l = l;
		}
		return v;
	}
	return col->sv[i];
}

/*
 * The first non-empty value of tags[k] among the instances [a, e) (tree
 * order) into vals[k], for k < n; tags[k] == 0 is skipped (vals[k] empty).
 * The "first non-empty value below" of a series or study.
 */
void catalog_first_values(struct catalog *c, uint32_t a, uint32_t e,
			  const uint32_t *tags, size_t n, struct cat_sv *vals);

/* Big arrays in huge-page-advised mappings (small ones malloc()ed); the
 * results of the views use them too. NULL on failure; hfree(NULL) is fine. */
void *catalog_hrealloc(void *p, size_t size);
void catalog_hfree(void *p);

#endif
