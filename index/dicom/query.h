/*
 * query.h - the query language of the query/ directories: one path
 * component "Keyword=value" parsed into a term, and the PS3.4 matcher
 * (C.2.2.2, as QIDO-RS uses it) of a term against one attribute value as
 * the index stores it (record.h: the raw text, '\'-separated values).
 *
 * Design notes
 * (Q1) Pure: no FUSE, no LMDB, no globals, no I/O. What the mount knows
 *      (is a tag indexed?) comes in as a callback; fs/view_query.c is the
 *      caller, tests/unit_query.c and tests/fuzz/fuzz_query.c the others.
 * (Q2) Errors are not "no matches": a malformed component (no '=', bad
 *      %-escape or %00, unknown keyword, bad date/time (also a month,
 *      day, hour, minute or second that does not exist), wildcard in a
 *      UID, a range with two '-' or none of its ends, a range A-B with
 *      B before A, fuzzymatching= other than true / false) is -EINVAL; a
 *      known tag the index does not hold is -EOPNOTSUPP (checked after
 *      the keyword and the %-escapes, before the value); why says what to
 *      do.
 * (Q3) Matching (the PS3.4 default), by VR of the keyword:
 *      UI: exact, a list with ',' or '\';
 *      DA/TM/DT: a single value or a range A-B, A-, -B. A value stands for
 *        its period: DA YYYY, YYYYMM, YYYYMMDD (or ACR-NEMA YYYY.MM.DD);
 *        TM HH[MM[SS[.F]]]; DT YYYY[MM[DD[HH[MM[SS[.F]]]]]]: a low end is
 *        padded with '0' (its period's start), a high end with '9' (its
 *        period's end), a single value is the range of its period; the
 *        stored value is padded with zeros (query_norm_dt; a DA also
 *        read as YYYY.MM.DD) and compared as text between the ends; a
 *        stored value that does not normalise never matches;
 *      PN: ASCII case-insensitive (PS3.4 allows it for PN), on the whole
 *        value (trailing '^', '=' and spaces dropped) or on one whole
 *        component group, with '*' and '?';
 *      others: exact, or '*' '?' wildcards (case-sensitive); IS/DS without
 *        wildcards compare numerically;
 *      against any value of a multi-valued attribute (not UI).
 * (Q4) An empty query value matches everything (QM_ANY, Universal
 *      Matching); the value "" (two quotation marks, PS3.4 C.2.2.2.7 Empty
 *      Value Matching, QM_EMPTY) matches only an absent or empty
 *      attribute; any other value never matches an absent or empty one.
 * (Q5) ModalitiesInStudy (00080061) is not a stored attribute: the term is
 *      parsed here (a ','/'\' list, wildcards allowed), and the caller
 *      matches it with query_match_modality() against each distinct
 *      Modality of a study (the study matches when one matches; "" : the
 *      study has none).
 * (Q6) fuzzymatching=true (QUERY_FUZZY_KEY, named after QIDO-RS's
 *      parameter) is a component, not a condition (QM_OPT, tag 0): the
 *      caller passes its terms through query_terms_finish, which drops it
 *      and makes every other term of the path fuzzy (t->fuzzy), wherever
 *      it stands. A fuzzy term is ASCII case-insensitive (CS, LO, SH, ...,
 *      wildcards too, ModalitiesInStudy); a fuzzy PN matches as in Q3 or
 *      when every word of the query (split at ' ', '^', '=') starts a
 *      word of the value (its components, split at ' ' too), in any
 *      order. UI, DA/TM/DT and numeric IS/DS terms are unaffected.
 *
 * Errors: 0 or negative errno. Threading: no shared state; a parsed term
 * is read-only and may be matched from any thread.
 */
#ifndef DICOMFS_QUERY_H
#define DICOMFS_QUERY_H
#include <stddef.h>
#include <stdint.h>

#define QUERY_TAG_MODALITIES_IN_STUDY 0x00080061u

#define QUERY_FUZZY_KEY "fuzzymatching"

enum query_mtype { QM_ANY, QM_UID, QM_RANGE, QM_PN, QM_STR, QM_EMPTY, QM_OPT };

struct query_term {
	uint32_t tag;
	char vr[3];
	enum query_mtype m;
	char *val;            /* the %-decoded value */
	char **list;          /* QM_UID and ModalitiesInStudy: the values */
	size_t nlist;
	char lo[32], hi[32];  /* QM_RANGE: normalised ends */
	int has_lo, has_hi;
	int wild;             /* the value holds '*' or '?' */
	int numeric;          /* IS/DS: compare num */
	double num;
	int fuzzy;            /* Q6: QM_OPT: fuzzymatching=true; others: match fuzzily */
};

/* Is tag held by the index? (nonzero: yes) */
typedef int (*query_indexed_fn)(void *ctx, uint32_t tag);

/*
 * Parse the path component name ("Keyword=value"; Keyword a PS3.6 keyword,
 * GGGGEEEE, ModalitiesInStudy or fuzzymatching (Q6)) into *t. indexed may be NULL (every tag
 * is indexed). 0, -EINVAL, -EOPNOTSUPP (Q2) or -ENOMEM; on an error *t is
 * left empty (nothing to free) and why (whylen > 0) holds the reason.
 */
int query_term_parse(const char *name, query_indexed_fn indexed, void *ctx,
		     struct query_term *t, char *why, size_t whylen);
/* Free what t holds; t is left empty (query_term_free twice is fine). */
void query_term_free(struct query_term *t);
/* The terms t[0, *n) of one query path: drop its QM_OPT terms and apply
 * them to the others (Q6); *n is the count left. */
void query_terms_finish(struct query_term *t, size_t *n);

/* Does the stored value v[0, l) match t (Q3, Q4)? Not for
 * ModalitiesInStudy terms (see query_match_modality). */
int query_match(const struct query_term *t, const char *v, size_t l);
/* Does one Modality value v[0, l) match a ModalitiesInStudy term (Q5)? */
int query_match_modality(const struct query_term *t, const char *v, size_t l);

/* Is name shaped as a term ("Keyword=...": letters, digits, '(' ')' ','
 * before the '=')? Other names in a query directory are entries. */
int query_is_term_name(const char *name);

/* %XX-decode s[0, l) into a malloc()ed string; NULL on a bad escape, %00
 * or no memory. */
char *query_url_decode(const char *s, size_t l);
/* DA: YYYYMMDD; TM: HH[MM[SS[.F{1,6}]]] (':' ignored) -> HHMMSS.FFFFFF;
 * DT: YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]] -> YYYYMMDDHHMMSS.FFFFFF (zeros).
 * 0, or -1 when s is malformed. */
int query_norm_dt(const char *vr, const char *s, size_t l, char out[32]);
/* '*' / '?' pattern p against s[0, l); ci: ASCII case-insensitive */
int query_wild(const char *p, const char *s, size_t l, int ci);

#endif
