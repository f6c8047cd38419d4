/* levelagg.c - see levelagg.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "levelagg.h"
#include "record.h"
#include "tags.h"

int levelagg_init(struct levelagg *a, const char *levels)
{
	a->v = calloc(dfs_ntags ? dfs_ntags : 1, sizeof(*a->v));
	if (!a->v)
		return -ENOMEM;
	a->levels = levels;
	a->missing = 0;
	a->own = NULL;
	a->nown = 0;
	for (size_t i = 0; i < dfs_ntags; i++)
		if (strchr(levels, dfs_tags[i].level))
			a->missing++;
	return 0;
}

void levelagg_free(struct levelagg *a)
{
	free(a->v);
	a->v = NULL;
	for (size_t i = 0; i < a->nown; i++)
		free(a->own[i]);
	free(a->own);
	a->own = NULL;
	a->nown = 0;
}

int levelagg_own(struct levelagg *a, void *p)
{
	void **n = realloc(a->own, (a->nown + 1) * sizeof(*n));
	if (!n) {
		free(p);
		return -ENOMEM;
	}
	a->own = n;
	a->own[a->nown++] = p;
	return 0;
}

void levelagg_offer(struct levelagg *a, uint32_t tag, const char *v, size_t l)
{
	const struct dfs_tag *t = tags_by_tag(tag);
	if (!t || !l || !strchr(a->levels, t->level))
		return;
	struct lval *x = &a->v[t - dfs_tags];
	if (x->l)
		return;   /* (A1) the first non-empty one stays */
	x->s = v;
	x->l = l;
	a->missing--;
}

void levelagg_record(struct levelagg *a, const void *rec, size_t len)
{
	if (!a->missing)
		return;
	for (size_t i = 0; i < dfs_ntags; i++) {
		const char *s;
		size_t l;
		if (a->v[i].l || !strchr(a->levels, dfs_tags[i].level))
			continue;
		if (rec_attr(rec, len, dfs_tags[i].tag, &s, &l) && l) {
			a->v[i].s = s;
			a->v[i].l = l;
			a->missing--;
		}
	}
}

struct lval levelagg_get(const struct levelagg *a, uint32_t tag)
{
	struct lval none = { "", 0 };
	const struct dfs_tag *t = tags_by_tag(tag);
	return t && a->v && a->v[t - dfs_tags].l ? a->v[t - dfs_tags] : none;
}

struct lval lval_rec(const void *rec, size_t len, uint32_t tag)
{
	struct lval v = { "", 0 };
	if (!rec_attr(rec, len, tag, &v.s, &v.l)) {
		v.s = "";
		v.l = 0;
	}
	return v;
}

struct lval lval_trim(struct lval v)
{
	while (v.l && (v.s[0] == ' ' || v.s[0] == '\t'))
		v.s++, v.l--;
	while (v.l && (v.s[v.l - 1] == ' ' || v.s[v.l - 1] == '\t' || v.s[v.l - 1] == 0))
		v.l--;
	return v;
}

int lval_split(struct lval v, char sep, size_t *pos, struct lval *out)
{
	if (*pos > v.l)
		return 0;
	const char *p = v.l > *pos ? memchr(v.s + *pos, sep, v.l - *pos) : NULL;
	size_t e = p ? (size_t)(p - v.s) : v.l;
	out->s = v.s + *pos;
	out->l = e - *pos;
	*pos = e + 1;
	return 1;
}

/* ---- sets (A4) ---- */

static int lval_eq(struct lval a, struct lval b)
{
	return a.l == b.l && (a.l == 0 || memcmp(a.s, b.s, a.l) == 0);
}

static int lval_cmp(const void *x, const void *y)
{
	const struct lval *a = x, *b = y;
	size_t l = a->l < b->l ? a->l : b->l;
	int c = l ? memcmp(a->s, b->s, l) : 0;
	return c ? c : (a->l < b->l ? -1 : a->l > b->l);
}

/* room for one more of size sz in *v (n used, *cap allocated) */
static int grow1(void **v, size_t *cap, size_t n, size_t sz, size_t first)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : first;
	void *p = realloc(*v, nc * sz);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = nc;
	return 0;
}

int lvset_add(struct lvset *s, struct lval v)
{
	if (!v.l)
		return 0;
	for (size_t k = 0; k < s->n; k++)
		if (lval_eq(s->v[k], v))
			return 0;
	if (grow1((void **)&s->v, &s->cap, s->n, sizeof(*s->v), 8))
		return -ENOMEM;
	s->v[s->n++] = v;
	return 0;
}

void lvset_sort(struct lvset *s)
{
	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), lval_cmp);
}

int lvset_join(const struct lvset *s, char sep, struct strbuf *out)
{
	for (size_t i = 0; i < s->n; i++) {
		if (i)
			strbuf_addch(out, sep);
		strbuf_add(out, s->v[i].s, s->v[i].l);
	}
	return strbuf_error(out);
}

void lvset_free(struct lvset *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* ---- a study with its series and instances ---- */

int levelagg_study_init(struct levelagg_study *st)
{
	memset(st, 0, sizeof(*st));
	return levelagg_init(&st->a, "SP");
}

int levelagg_study_series(struct levelagg_study *st)
{
	if (grow1((void **)&st->ser, &st->cap, st->nser, sizeof(*st->ser), 4))
		return -ENOMEM;
	struct levelagg_series *s = &st->ser[st->nser];
	memset(s, 0, sizeof(*s));
	if (levelagg_init(&s->a, "ES"))
		return -ENOMEM;
	st->nser++;
	return 0;
}

int levelagg_study_instance(struct levelagg_study *st, const void *rec, size_t len)
{
	if (!st->nser)
		return -EINVAL;
	struct levelagg_series *s = &st->ser[st->nser - 1];
	if (grow1((void **)&s->inst, &s->cap, s->ninst, sizeof(*s->inst), 16))
		return -ENOMEM;
	struct levelagg_inst *ii = &s->inst[s->ninst++];
	ii->uid = lval_rec(rec, len, TAG_SOP_INSTANCE_UID);
	ii->cls = lval_rec(rec, len, TAG_SOP_CLASS_UID);
	ii->num = lval_rec(rec, len, TAG_INSTANCE_NUMBER);
	st->ninst++;
	levelagg_record(&s->a, rec, len);
	levelagg_record(&st->a, rec, len);
	return lvset_add(&st->mods, lval_rec(rec, len, TAG_MODALITY));
}

void levelagg_study_finish(struct levelagg_study *st)
{
	lvset_sort(&st->mods);
}

void levelagg_study_free(struct levelagg_study *st)
{
	for (size_t i = 0; i < st->nser; i++) {
		levelagg_free(&st->ser[i].a);
		free(st->ser[i].inst);
	}
	free(st->ser);
	lvset_free(&st->mods);
	levelagg_free(&st->a);
	memset(st, 0, sizeof(*st));
}
