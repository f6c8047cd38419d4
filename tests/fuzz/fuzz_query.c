/*
 * fuzz_query - the query term parser and matcher (query.h) on untrusted
 * names: a query/ path component is whatever a user types. The input's
 * first line is the component, each further line a stored value to match.
 * Parsed twice: every tag indexed, and only tags with an even element
 * (the EOPNOTSUPP path).
 * Invariants checked: the result is 0, -EINVAL, -EOPNOTSUPP or -ENOMEM;
 * an error gives a reason and leaves the term empty; an empty value
 * matches everything; the ends of a range are normalised (query_norm_dt
 * accepts its own output); %-decoding never lengthens.
 */

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "query.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static int even_element(void *ctx, uint32_t tag)
{
	(void)ctx;
	return (tag & 1) == 0;
}

static void check_term(const struct query_term *t, const char *vals, size_t vl)
{
	char out[32];
	if (t->m == QM_RANGE) {
		/* normalised ends are fixed points of query_norm_dt */
		if (t->has_lo && (query_norm_dt(t->vr, t->lo, strlen(t->lo), out) ||
				  strcmp(out, t->lo)))
			abort();
		if (t->has_hi && (query_norm_dt(t->vr, t->hi, strlen(t->hi), out) ||
				  strcmp(out, t->hi)))
			abort();
	}
	for (size_t a = 0; a <= vl;) {
		const char *nl = memchr(vals + a, '\n', vl - a);
		size_t e = nl ? (size_t)(nl - vals) : vl;
		int r = t->tag == QUERY_TAG_MODALITIES_IN_STUDY ?
			query_match_modality(t, vals + a, e - a) : query_match(t, vals + a, e - a);
		if (r != 0 && r != 1)
			abort();
		if (t->m == QM_ANY && !r)
			abort();
		a = e + 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	if (n > 4096)
		return 0;
	const uint8_t *nl = memchr(d, '\n', n);
	size_t cl = nl ? (size_t)(nl - d) : n;
	char *name = malloc(cl + 1);
	if (!name)
		return 0;
	memcpy(name, d, cl);
	name[cl] = 0;   /* a component holds no NUL: it ends there */
	const char *vals = nl ? (const char *)nl + 1 : "";
	size_t vl = nl ? n - cl - 1 : 0;

	char *dec = query_url_decode(name, strlen(name));
	if (dec && strlen(dec) > strlen(name))
		abort();
	free(dec);
	(void)query_is_term_name(name);

	for (int pass = 0; pass < 2; pass++) {
		struct query_term t;
		char why[512];
		why[0] = 0;
		int rc = query_term_parse(name, pass ? even_element : NULL, NULL, &t, why,
					  sizeof(why));
		if (rc != 0 && rc != -EINVAL && rc != -EOPNOTSUPP && rc != -ENOMEM)
			abort();
		if (rc) {
			if (!why[0] || t.val || t.list || t.nlist)
				abort();
			continue;
		}
		check_term(&t, vals, vl);
		query_term_free(&t);
	}
	free(name);
	return 0;
}
