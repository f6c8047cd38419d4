/*
 * levelagg.h - the value of an attribute at a level above the instances
 * (series, study, patient), as the level files, the xattrs and the query
 * manifests give it; pure: values come in, nothing is read.
 *
 * Design notes
 * (A1) The level value of an attribute is the FIRST NON-EMPTY value met
 *      walking the level's instances in listing order (series by name,
 *      instances by name): offer the values in that order; the first
 *      non-empty one offered for a tag stays. So it is a pure function of
 *      the index, byte-identical across mounts.
 * (A2) An aggregate only collects the tags of the levels it is made for
 *      ("P", "PS", "ES", "PSEI": dfs_tags[].level); levelagg_full() says
 *      every one of them has a value, so a walk can stop early.
 * (A3) Values are not copied: they point into the records offered (the
 *      index map, or the caller's memory), which must outlive the aggregate;
 *      memory handed over with levelagg_own() does (anon/'s de-identified
 *      records, fs/kind_anon.c).
 * (A4) ModalitiesInStudy is the distinct non-empty Modality values of the
 *      study's instances, sorted bytewise (memcmp, shorter first on a tie),
 *      '\'-joined where one string is needed.
 *
 * Errors: 0 or -ENOMEM (-EINVAL: misuse, see below). Threading: an aggregate belongs to one thread; no
 * global state.
 */
#ifndef DICOMFS_LEVELAGG_H
#define DICOMFS_LEVELAGG_H
#include <stddef.h>
#include <stdint.h>
#include "strbuf.h"

/* The attributes of the level files beyond tags.h's TAG_* */
#define TAG_SERIES_DATE         0x00080021u
#define TAG_SERIES_TIME         0x00080031u
#define TAG_MODALITIES_IN_STUDY 0x00080061u
#define TAG_REFERRING           0x00080090u
#define TAG_TZ_OFFSET           0x00080201u
#define TAG_PATIENT_BIRTH_DATE  0x00100030u
#define TAG_PATIENT_SEX         0x00100040u
#define TAG_BODY_PART           0x00180015u
#define TAG_STUDY_ID            0x00200010u
#define TAG_N_PATIENT_STUDIES   0x00201200u
#define TAG_N_PATIENT_SERIES    0x00201202u
#define TAG_N_PATIENT_INST      0x00201204u
#define TAG_N_STUDY_SERIES      0x00201206u
#define TAG_N_STUDY_INST        0x00201208u
#define TAG_N_SERIES_INST       0x00201209u

/* A value: s[0, l), not NUL-terminated; s never NULL ("" when absent). */
struct lval {
	const char *s;
	size_t l;
};

/* Attribute values of one level, by position in dfs_tags[] (A1, A2). */
struct levelagg {
	struct lval *v;
	size_t missing;        /* tags of `levels` still without a value */
	const char *levels;    /* dfs_tags[].level letters collected */
	void **own;            /* freed with the aggregate (levelagg_own) */
	size_t nown;
};

int levelagg_init(struct levelagg *a, const char *levels);
void levelagg_free(struct levelagg *a);
/* a malloc()ed block (a record offered to a) freed with a (A3); 0, or
 * -ENOMEM (p freed) */
int levelagg_own(struct levelagg *a, void *p);
/* every wanted tag has a value: offering more changes nothing (A2) */
static inline int levelagg_full(const struct levelagg *a) { return a->missing == 0; }
/* offer tag's value v[0, l) (A1): kept when the first non-empty one */
void levelagg_offer(struct levelagg *a, uint32_t tag, const char *v, size_t l);
/* offer every wanted attribute of an index record (record.h) */
void levelagg_record(struct levelagg *a, const void *rec, size_t len);
/* the level value of tag, or "" (absent, empty, not collected) */
struct lval levelagg_get(const struct levelagg *a, uint32_t tag);
/* tag's value in an index record, or "" */
struct lval lval_rec(const void *rec, size_t len, uint32_t tag);

/* v without leading spaces/tabs and trailing spaces/tabs/NULs */
struct lval lval_trim(struct lval v);
/* v split at sep: the component from *pos (start at 0); 0 after the last */
int lval_split(struct lval v, char sep, size_t *pos, struct lval *out);

/* A set of distinct values in order of arrival, sortable (A4). */
struct lvset {
	struct lval *v;
	size_t n, cap;
};
/* add v unless empty or already there */
int lvset_add(struct lvset *s, struct lval v);
void lvset_sort(struct lvset *s);
/* the values joined by sep (ModalitiesInStudy: '\\') */
int lvset_join(const struct lvset *s, char sep, struct strbuf *out);
void lvset_free(struct lvset *s);

/*
 * Everything study.json and study.fhir.json need: the study's values, its
 * series (their values and instances) and ModalitiesInStudy. Fill with
 * levelagg_study_series() per series and levelagg_study_instance() per
 * instance, in listing order, then levelagg_study_finish().
 */
struct levelagg_inst {
	struct lval uid, cls, num;   /* SOPInstanceUID, SOPClassUID, InstanceNumber */
};
struct levelagg_series {
	struct levelagg a;           /* levels "ES" */
	struct levelagg_inst *inst;
	size_t ninst, cap;
};
struct levelagg_study {
	struct levelagg a;           /* levels "SP" */
	struct levelagg_series *ser;
	size_t nser, cap;
	size_t ninst;                /* all series */
	struct lvset mods;           /* sorted after finish (A4) */
};
int levelagg_study_init(struct levelagg_study *st);
/* a new series (the last one until the next call) */
int levelagg_study_series(struct levelagg_study *st);
/* an instance record of the last series; -EINVAL before the first series */
int levelagg_study_instance(struct levelagg_study *st, const void *rec, size_t len);
void levelagg_study_finish(struct levelagg_study *st);
void levelagg_study_free(struct levelagg_study *st);

#endif
