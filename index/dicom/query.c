/*
 * query.c - the query term parser and the PS3.4 matcher (see query.h for
 * the rules, Q1-Q5).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "naming.h"
#include "query.h"
#include "tags.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

char *query_url_decode(const char *s, size_t l)
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

/* query_norm_dt with the missing digits filled with fill ('0': the start
 * of the value's period, '9': its end); partial: a query value, whose DA
 * may be YYYY or YYYYMM (Q3) */
static int norm_fill(const char *vr, const char *s, size_t l, char out[32], char fill,
		     int partial)
{
	char d[32];
	size_t n = 0, frac = 0, wl = 0;
	int dot = 0, is_tm = vr[0] == 'T', is_da = vr[0] == 'D' && vr[1] == 'A';
	if (is_da && name_da_digits(s, l, d)) {   /* YYYYMMDD, ACR-NEMA YYYY.MM.DD */
		memcpy(out, d, 8);
		out[8] = 0;
		return 0;
	}
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
		if (!partial || (n != 4 && n != 6))
			return -1;
		memcpy(out, d, n);
		memset(out + n, fill, 8 - n);
		out[8] = 0;
		return 0;
	}
	size_t whole = is_tm ? 6 : 14;
	if (wl == 0 || wl > whole || frac > 6 || (dot && (wl != whole || !frac)) ||
	    (wl % 2) || (!is_tm && wl < 4))
		return -1;
	memset(out, fill, whole + 7);
	memcpy(out, d, wl);
	out[whole] = '.';
	memcpy(out + whole + 1, d + wl, frac);
	out[whole + 7] = 0;
	return 0;
}

int query_norm_dt(const char *vr, const char *s, size_t l, char out[32])
{
	return norm_fill(vr, s, l, out, '0', 0);
}

/* A query's DA / TM / DT value (already accepted by query_norm_dt) names a
 * real calendar day and time of day (Q2, query.h): month 01-12, day 01 to
 * the month's last, hour 00-23, minute 00-59, second 00-60 (leap second);
 * only the components given are checked. 1 when valid. */
static int dt_valid(const char *vr, const char *s, size_t l)
{
	char d[32];
	size_t n = 0;
	int is_da = vr[0] == 'D' && vr[1] == 'A';
	for (size_t i = 0; i < l && (is_da || s[i] != '.') && n < sizeof(d); i++)
		if (s[i] >= '0' && s[i] <= '9')
			d[n++] = s[i];
#define NUM2(p) ((d[(p)] - '0') * 10 + (d[(p) + 1] - '0'))
	size_t t0 = 0;    /* where the time of day starts in d */
	if (vr[0] == 'D') {
		if (n >= 6 && (NUM2(4) < 1 || NUM2(4) > 12))
			return 0;
		if (n >= 8) {
			int y = NUM2(0) * 100 + NUM2(2), m = NUM2(4), day = NUM2(6);
			static const int dim[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
			int last = dim[m - 1];
			if (m == 2 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
				last = 28;
			if (day < 1 || day > last)
				return 0;
		}
		if (vr[1] == 'A')
			return 1;
		t0 = 8;
	}
	if (n >= t0 + 2 && NUM2(t0) > 23)
		return 0;
	if (n >= t0 + 4 && NUM2(t0 + 2) > 59)
		return 0;
	if (n >= t0 + 6 && NUM2(t0 + 4) > 60)
		return 0;
#undef NUM2
	return 1;
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

static int split_list(struct query_term *t, const char *v, const char *seps)
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

int query_is_term_name(const char *name)
{
	size_t kl = strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			   "0123456789(),");
	return kl && name[kl] == '=';
}

void query_term_free(struct query_term *t)
{
	free(t->val);
	for (size_t j = 0; j < t->nlist; j++)
		free(t->list[j]);
	free(t->list);
	memset(t, 0, sizeof(*t));
}

/* The value part of query_term_parse: t->tag, t->vr and t->val are set */
static int parse_value(const char *name, struct query_term *t, char *why, size_t whylen)
{
	const char *v = t->val;
	size_t l = strlen(v);
	if (!l) {
		t->m = QM_ANY;
		return 0;
	}
	if (strcmp(v, "\"\"") == 0) {   /* Q4: Empty Value Matching */
		t->m = QM_EMPTY;
		return 0;
	}
	if (t->tag == QUERY_TAG_MODALITIES_IN_STUDY) {
		t->m = QM_STR;
		t->wild = strpbrk(v, "*?") != NULL;
		return split_list(t, v, ",\\");
	}
	if (vr_in(t->vr, "UI")) {
		if (strpbrk(v, "*?")) {
			snprintf(why, whylen, "'%s': wildcards are not allowed for UIDs; "
				 "give a ','-separated list", name);
			return -EINVAL;
		}
		t->m = QM_UID;
		return split_list(t, v, ",\\");
	}
	if (vr_in(t->vr, "DA TM DT")) {
		const char *dash = strchr(v, '-');
		t->m = QM_RANGE;
		if (strpbrk(v, "*?") || (dash && strchr(dash + 1, '-'))) {
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
		/* Q3: the low end from the start of its period, the high end
		 * to the end of its period */
		if ((al && norm_fill(t->vr, a, al, t->lo, '0', 1)) ||
		    (bl && norm_fill(t->vr, b, bl, t->hi, '9', 1))) {
			snprintf(why, whylen, "'%s': not a valid %s value (%s)", name, t->vr,
				 t->vr[0] == 'D' && t->vr[1] == 'A' ? "YYYY, YYYYMM or YYYYMMDD" :
				 t->vr[0] == 'T' ? "HH[MM[SS[.FFFFFF]]]" :
				 "YYYY[MM[DD[HH[MM[SS[.FFFFFF]]]]]]");
			return -EINVAL;
		}
		if ((al && !dt_valid(t->vr, a, al)) || (bl && !dt_valid(t->vr, b, bl))) {
			snprintf(why, whylen, "'%s': not a valid %s (no such %s)", name,
				 t->vr[0] == 'T' ? "time" : "date",
				 t->vr[0] == 'T' ? "time of day" : "day or time");
			return -EINVAL;
		}
		if (al && bl && strcmp(t->lo, t->hi) > 0) {
			snprintf(why, whylen, "'%s': the range ends before it starts", name);
			return -EINVAL;
		}
		t->has_lo = al != 0;
		t->has_hi = bl != 0;
		return 0;
	}
	t->wild = strpbrk(v, "*?") != NULL;
	if (vr_in(t->vr, "PN")) {
		t->m = QM_PN;
		return 0;
	}
	t->m = QM_STR;
	if (!t->wild && vr_in(t->vr, "IS DS")) {
		char *end;
		t->num = strtod(v, &end);
		t->numeric = end != v && *end == 0;
	}
	return 0;
}

int query_term_parse(const char *name, query_indexed_fn indexed, void *ctx,
		     struct query_term *t, char *why, size_t whylen)
{
	const char *eq = strchr(name, '=');
	char kw[128];
	int rc;
	memset(t, 0, sizeof(*t));
	if (!eq || eq == name || (size_t)(eq - name) >= sizeof(kw)) {
		snprintf(why, whylen, "'%s' is not Keyword=value", name);
		return -EINVAL;
	}
	memcpy(kw, name, (size_t)(eq - name));
	kw[eq - name] = 0;
	if (strcmp(kw, QUERY_FUZZY_KEY) == 0) {   /* Q6 */
		if (strcmp(eq + 1, "true") && strcmp(eq + 1, "false")) {
			snprintf(why, whylen, "'%s': %s is true or false", name, QUERY_FUZZY_KEY);
			return -EINVAL;
		}
		t->m = QM_OPT;
		t->fuzzy = strcmp(eq + 1, "true") == 0;
		return 0;
	}
	if (strcmp(kw, "ModalitiesInStudy") == 0 || strcasecmp(kw, "00080061") == 0) {
		t->tag = QUERY_TAG_MODALITIES_IN_STUDY;
		strcpy(t->vr, "CS");
	} else if (tags_parse(kw, &t->tag, t->vr)) {
		snprintf(why, whylen, "'%s' is not a DICOM keyword (see PS3.6) nor a tag as "
			 "GGGGEEEE", kw);
		return -EINVAL;
	}
	t->val = query_url_decode(eq + 1, strlen(eq + 1));
	if (!t->val) {
		snprintf(why, whylen, "bad %%-escape in '%s' (use %%XX, e.g. %%2F for '/')", name);
		rc = -EINVAL;
	} else if (t->tag != QUERY_TAG_MODALITIES_IN_STUDY && indexed &&
		   !indexed(ctx, t->tag)) {
		snprintf(why, whylen, "(%04X,%04X) %s is not indexed: remount with "
			 "-o index_tags=%08X (the files are re-parsed once)", t->tag >> 16,
			 t->tag & 0xFFFF, kw, t->tag);
		rc = -EOPNOTSUPP;
	} else {
		rc = parse_value(name, t, why, whylen);
		if (rc == -ENOMEM)
			snprintf(why, whylen, "out of memory");
	}
	if (rc)
		query_term_free(t);
	return rc;
}

void query_terms_finish(struct query_term *t, size_t *n)
{
	int fuzzy = 0;
	size_t w = 0;
	for (size_t i = 0; i < *n; i++) {
		if (t[i].m == QM_OPT) {
			fuzzy |= t[i].fuzzy;
			query_term_free(&t[i]);
		} else {
			t[w++] = t[i];
		}
	}
	for (size_t i = w; i < *n; i++)
		memset(&t[i], 0, sizeof(t[i]));
	*n = w;
	for (size_t i = 0; i < w; i++)
		t[i].fuzzy = fuzzy;
}

/* ---- matching ---- */

static char tolower_c(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* '*' / '?' pattern p[0, pl) against s[0, l) */
static int wild_n(const char *p, size_t pl, const char *s, size_t l, int ci)
{
	size_t si = 0, star_p = (size_t)-1, star_s = 0, pi = 0;
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

int query_wild(const char *p, const char *s, size_t l, int ci)
{
	return wild_n(p, strlen(p), s, l, ci);
}

static int str_eq(const char *p, const char *s, size_t l, int ci)
{
	if (strlen(p) != l)
		return 0;
	return ci ? strncasecmp(p, s, l) == 0 : memcmp(p, s, l) == 0;
}

/* one value of a QM_STR term (Q3; fuzzy: ASCII case-insensitive, Q6) */
static int match_one(const struct query_term *t, const char *s, size_t l)
{
	if (t->wild)
		return query_wild(t->val, s, l, t->fuzzy);
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
	return str_eq(t->val, s, l, t->fuzzy);
}

static int pn_one(const struct query_term *t, const char *s, size_t l)
{
	return t->wild ? query_wild(t->val, s, l, 1) : str_eq(t->val, s, l, 1);
}

static void trim_pn(const char *s, size_t *l, const char *drop)
{
	while (*l && strchr(drop, s[*l - 1]))
		(*l)--;
}

/* PS3.4 PN (Q3): the whole value, or one whole component group */
static int pn_whole(const struct query_term *t, const char *s, size_t l)
{
	trim_pn(s, &l, "^= ");
	if (pn_one(t, s, l))
		return 1;
	if (!memchr(s, '=', l))
		return 0;
	for (size_t a = 0, i = 0; i <= l; i++) {
		if (i == l || s[i] == '=') {
			size_t gl = i - a;
			trim_pn(s + a, &gl, "^ ");
			if (gl && pn_one(t, s + a, gl))
				return 1;
			a = i + 1;
		}
	}
	return 0;
}

static int pn_sep(char c)
{
	return c == ' ' || c == '^' || c == '=';
}

/* Does a word of s[0, l) start with the pattern w[0, wl)? (Q6) */
static int word_prefix(const char *w, size_t wl, const char *s, size_t l)
{
	int wild = memchr(w, '*', wl) || memchr(w, '?', wl);
	for (size_t a = 0, i = 0; i <= l; i++) {
		if (i < l && !pn_sep(s[i]))
			continue;
		const char *v = s + a;
		size_t vl = i - a;
		a = i + 1;
		if (!vl)
			continue;
		if (!wild) {
			if (vl >= wl && strncasecmp(v, w, wl) == 0)
				return 1;
			continue;
		}
		for (size_t k = 0; k <= vl; k++)
			if (wild_n(w, wl, v, k, 1))
				return 1;
	}
	return 0;
}

/* fuzzy PN (Q6): PS3.4's match, or every word of the query starts a word
 * (component, or a blank-separated part of one) of the value */
static int pn_fuzzy(const struct query_term *t, const char *s, size_t l)
{
	if (pn_whole(t, s, l))
		return 1;
	const char *q = t->val;
	size_t ql = strlen(q);
	int words = 0;
	for (size_t a = 0, i = 0; i <= ql; i++) {
		if (i < ql && !pn_sep(q[i]))
			continue;
		size_t wl = i - a;
		const char *w = q + a;
		a = i + 1;
		if (!wl)
			continue;
		words++;
		if (!word_prefix(w, wl, s, l))
			return 0;
	}
	return words > 0;
}

/* one value of a term that is not QM_ANY / QM_EMPTY / QM_OPT */
static int match_value(const struct query_term *t, const char *v, size_t l)
{
	switch (t->m) {
	case QM_UID:
		for (size_t i = 0; i < t->nlist; i++)
			if (str_eq(t->list[i], v, l, 0))
				return 1;
		return 0;
	case QM_RANGE: {
		char n[32];
		if (!l || query_norm_dt(t->vr, v, l, n))
			return 0;
		if (t->has_lo && strcmp(n, t->lo) < 0)
			return 0;
		if (t->has_hi && strcmp(n, t->hi) > 0)
			return 0;
		return 1;
	}
	case QM_PN:
		return l && (t->fuzzy ? pn_fuzzy(t, v, l) : pn_whole(t, v, l));
	case QM_STR:
		return l && match_one(t, v, l);
	default:
		return 0;
	}
}

static int blank(const char *v, size_t l)
{
	for (size_t i = 0; i < l; i++)
		if (v[i] != ' ' && v[i] != '\\' && v[i] != 0)
			return 0;
	return 1;
}

int query_match(const struct query_term *t, const char *v, size_t l)
{
	if (t->m == QM_ANY || t->m == QM_OPT)
		return 1;
	if (t->m == QM_EMPTY)
		return blank(v, l);
	if (match_value(t, v, l))
		return 1;
	/* any value of a multi-valued attribute */
	if (t->m != QM_UID && memchr(v, '\\', l)) {
		for (size_t a = 0, i = 0; i <= l; i++)
			if (i == l || v[i] == '\\') {
				if (match_value(t, v + a, i - a))
					return 1;
				a = i + 1;
			}
	}
	return 0;
}

int query_match_modality(const struct query_term *t, const char *v, size_t l)
{
	if (t->m == QM_ANY || t->m == QM_OPT)
		return 1;
	if (!l || t->m == QM_EMPTY)
		return 0;
	for (size_t i = 0; i < t->nlist; i++)
		if (t->wild ? query_wild(t->list[i], v, l, t->fuzzy) :
			      str_eq(t->list[i], v, l, t->fuzzy))
			return 1;
	return 0;
}
