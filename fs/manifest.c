/*
 * manifest.c - the manifests of query/ directories, streamed (manifest.h):
 * a sizing pass that keeps checkpoints (M2), then rows generated per read
 * from the checkpoint before the read's offset, a few spans cached.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "manifest.h"
#include "query.h"
#include "strbuf.h"
#include "tags.h"

#define MCOL_MAX 512

struct mcol {
	uint32_t tag;          /* 0: a count column (count != 0) */
	char name[64];
	int count;             /* 1 series, 2 instances (of a study/series) */
};

static int lv_has(int level, char tl)
{
	switch (level) {
	case CAT_STUDIES: return tl == 'P' || tl == 'S';
	case CAT_SERIES: return tl == 'P' || tl == 'S' || tl == 'E';
	default: return 1;
	}
}

static void mcol_set(struct mcol *c, uint32_t tag, int count, const char *name)
{
	c->tag = tag;
	c->count = count;
	snprintf(c->name, sizeof(c->name), "%s", name);
}

static size_t manifest_cols(const struct catalog *cat, int level, struct mcol *c,
			    size_t max)
{
	static const uint32_t uids[] = { TAG_STUDY_INSTANCE_UID, TAG_SERIES_INSTANCE_UID,
					 TAG_SOP_INSTANCE_UID };
	static const char *const uidn[] = { "StudyInstanceUID", "SeriesInstanceUID",
					    "SOPInstanceUID" };
	size_t n = 0;
	for (int i = 0; i <= level && n < max; i++)
		mcol_set(&c[n++], uids[i], 0, uidn[i]);
	for (size_t i = 0; i < cat->ntags && n < max; i++) {
		uint32_t t = cat->tags[i];
		if (t == TAG_STUDY_INSTANCE_UID || t == TAG_SERIES_INSTANCE_UID ||
		    t == TAG_SOP_INSTANCE_UID || t == TAG_SPECIFIC_CHARSET)
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
	if (level == CAT_STUDIES && n + 3 <= max) {
		mcol_set(&c[n++], QUERY_TAG_MODALITIES_IN_STUDY, 0, "ModalitiesInStudy");
		mcol_set(&c[n++], 0, 1, "NumberOfStudyRelatedSeries");
		mcol_set(&c[n++], 0, 2, "NumberOfStudyRelatedInstances");
	} else if (level == CAT_SERIES && n + 1 <= max) {
		mcol_set(&c[n++], 0, 2, "NumberOfSeriesRelatedInstances");
	}
	return n;
}

/* One row's cells into vals (tmp: the computed ones) */
static void row_cells(struct catalog *cat, const struct mcol *mc, const uint32_t *tags,
		      size_t nc, int level, uint32_t x, struct cat_sv *vals,
		      struct strbuf *tmp)
{
	uint32_t a, e;
	catalog_range(cat, level, x, &a, &e);
	catalog_first_values(cat, a, e, tags, nc, vals);
	strbuf_reset(tmp);
	/* the computed cells, in one buffer: offsets first, pointers after */
	size_t off[MCOL_MAX];
	for (size_t k = 0; k < nc; k++) {
		off[k] = tmp->len;
		if (mc[k].count == 1)
			strbuf_addf(tmp, "%u", catalog_study_nseries(cat, x));
		else if (mc[k].count == 2)
			strbuf_addf(tmp, "%u", e - a);
		else if (mc[k].tag == QUERY_TAG_MODALITIES_IN_STUDY)
			catalog_modalities(cat, x, tmp);
	}
	for (size_t k = 0; k < nc; k++)
		if (mc[k].count || mc[k].tag == QUERY_TAG_MODALITIES_IN_STUDY) {
			vals[k].s = strbuf_str(tmp) + off[k];
			vals[k].l = (k + 1 < nc ? off[k + 1] : tmp->len) - off[k];
		}
}

/* One CSV cell (RFC 4180 quoting by strbuf_add_csv). (M1) A cell that a
 * spreadsheet would take for a formula (first byte = + - @, tab or CR) gets
 * a single quote in front, as OWASP's "CSV injection" page recommends;
 * manifest.jsonl keeps such values as they are. */
static void csv_cell(struct strbuf *csv, const char *s, size_t l)
{
	if (!l || !(s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' ||
		    s[0] == '\t' || s[0] == '\r')) {
		strbuf_add_csv(csv, s, l);
		return;
	}
	int q = memchr(s, ',', l) || memchr(s, '"', l) || memchr(s, '\n', l) ||
		memchr(s, '\r', l);
	if (q)
		strbuf_addch(csv, '"');
	strbuf_addch(csv, '\'');
	for (size_t i = 0; i < l; i++) {
		if (s[i] == '"')
			strbuf_addch(csv, '"');
		strbuf_addch(csv, s[i]);
	}
	if (q)
		strbuf_addch(csv, '"');
}

struct span {
	char *buf;            /* NULL: free */
	size_t len;
	uint64_t start;       /* its offset in the file */
	uint64_t used;
};

struct manifest {
	struct catalog *cat;
	int level;
	struct manifest_rows rows;
	struct mcol *mc;
	uint32_t *tags;       /* per column: the tag whose first value it shows, or 0 */
	size_t nc;
	uint64_t size[2];
	uint64_t *ck;         /* ck[2 * k + fmt]: where row k * STRIDE starts (M2) */
	size_t nck;
	pthread_mutex_t lock; /* the spans */
	struct span slot[2][MANIFEST_SLOTS];
	uint64_t clock;
};

/* the scratch of one generation */
struct gen {
	struct cat_sv *vals;
	struct strbuf path, tmp;
};

static int gen_init(struct gen *g)
{
	g->path = (struct strbuf)STRBUF_INIT;
	g->tmp = (struct strbuf)STRBUF_INIT;
	g->vals = malloc(MCOL_MAX * sizeof(*g->vals));
	return g->vals ? 0 : -ENOMEM;
}

static void gen_fini(struct gen *g)
{
	free(g->vals);
	strbuf_release(&g->path);
	strbuf_release(&g->tmp);
}

static void csv_header(const struct manifest *m, struct strbuf *csv)
{
	strbuf_addstr(csv, "path,link");
	for (size_t k = 0; k < m->nc; k++) {
		strbuf_addch(csv, ',');
		strbuf_addstr(csv, m->mc[k].name);
	}
	strbuf_add(csv, "\r\n", 2);
}

/* Row i into csv and / or js (NULL: not that one), M1 */
static void gen_row(struct manifest *m, struct gen *g, size_t i, struct strbuf *csv,
		    struct strbuf *js)
{
	const char *name = m->rows.npool + m->rows.noff[i];
	size_t nl = strlen(name);
	uint32_t x = m->rows.idx[i];
	strbuf_reset(&g->path);
	catalog_path(m->cat, m->level, x, &g->path);
	if (csv) {
		csv_cell(csv, strbuf_str(&g->path), g->path.len);
		strbuf_addch(csv, ',');
		csv_cell(csv, name, nl);
	}
	if (js) {
		strbuf_addstr(js, "{\"path\":");
		strbuf_add_json_str(js, strbuf_str(&g->path), g->path.len);
		strbuf_addstr(js, ",\"link\":");
		strbuf_add_json_str(js, name, nl);
	}
	row_cells(m->cat, m->mc, m->tags, m->nc, m->level, x, g->vals, &g->tmp);
	for (size_t k = 0; k < m->nc; k++) {
		struct cat_sv v = g->vals[k];
		if (csv) {
			strbuf_addch(csv, ',');
			csv_cell(csv, v.s, v.l);
		}
		if (js) {
			strbuf_addch(js, ',');
			strbuf_add_json_str(js, m->mc[k].name, strlen(m->mc[k].name));
			strbuf_addch(js, ':');
			if (m->mc[k].count)
				strbuf_add(js, v.s, v.l);
			else if (v.l)
				strbuf_add_json_str(js, v.s, v.l);
			else
				strbuf_addstr(js, "null");
		}
	}
	if (csv)
		strbuf_add(csv, "\r\n", 2);
	if (js)
		strbuf_add(js, "}\n", 2);
}

void manifest_free(struct manifest *m)
{
	if (!m)
		return;
	for (int f = 0; f < 2; f++)
		for (int s = 0; s < MANIFEST_SLOTS; s++)
			free(m->slot[f][s].buf);
	pthread_mutex_destroy(&m->lock);
	free(m->mc);
	free(m->tags);
	free(m->ck);
	free(m);
}

int manifest_new(struct catalog *cat, int level, const struct manifest_rows *rows,
		 struct manifest **out)
{
	struct manifest *m = calloc(1, sizeof(*m));
	struct strbuf csv = STRBUF_INIT, js = STRBUF_INIT;
	struct gen g;
	int rc = gen_init(&g);
	if (!m) {
		gen_fini(&g);
		return -ENOMEM;
	}
	pthread_mutex_init(&m->lock, NULL);
	m->cat = cat;
	m->level = level;
	m->rows = *rows;
	m->nck = (rows->n + MANIFEST_STRIDE - 1) / MANIFEST_STRIDE;
	m->mc = malloc(MCOL_MAX * sizeof(*m->mc));
	m->tags = malloc(MCOL_MAX * sizeof(*m->tags));
	m->ck = malloc((m->nck ? m->nck : 1) * 2 * sizeof(*m->ck));
	if (rc || !m->mc || !m->tags || !m->ck) {
		rc = -ENOMEM;
		goto out;
	}
	m->nc = manifest_cols(cat, level, m->mc, MCOL_MAX);
	/* the attribute columns: the first non-empty value below */
	for (size_t k = 0; k < m->nc; k++)
		m->tags[k] = m->mc[k].count || m->mc[k].tag == QUERY_TAG_MODALITIES_IN_STUDY ?
			     0 : m->mc[k].tag;
	/* M2: the sizing pass, a stride at a time */
	csv_header(m, &csv);
	uint64_t at[2] = { csv.len, 0 };
	for (size_t k = 0; k < m->nck && !rc; k++) {
		m->ck[2 * k] = at[0];
		m->ck[2 * k + 1] = at[1];
		strbuf_reset(&csv);
		strbuf_reset(&js);
		size_t e = (k + 1) * MANIFEST_STRIDE;
		for (size_t i = k * MANIFEST_STRIDE; i < e && i < rows->n; i++)
			gen_row(m, &g, i, &csv, &js);
		at[0] += csv.len;
		at[1] += js.len;
		if (strbuf_error(&csv) || strbuf_error(&js) || strbuf_error(&g.path) ||
		    strbuf_error(&g.tmp))
			rc = -ENOMEM;
	}
	m->size[0] = at[0];
	m->size[1] = at[1];
out:
	strbuf_release(&csv);
	strbuf_release(&js);
	gen_fini(&g);
	if (rc) {
		manifest_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

uint64_t manifest_size(const struct manifest *m, int fmt)
{
	return m->size[fmt != MANIFEST_CSV];
}

size_t manifest_bytes(const struct manifest *m)
{
	return sizeof(*m) + MCOL_MAX * (sizeof(*m->mc) + sizeof(*m->tags)) +
	       (m->nck ? m->nck : 1) * 2 * sizeof(*m->ck) +
	       2 * MANIFEST_SLOTS * MANIFEST_SPAN_MAX;
}

/* The cached span of fmt holding [off, off + want), copied to dst (lock) */
static int span_hit(struct manifest *m, int fmt, uint64_t off, size_t want, char *dst)
{
	for (int s = 0; s < MANIFEST_SLOTS; s++) {
		struct span *sp = &m->slot[fmt][s];
		if (sp->buf && sp->start <= off && off + want <= sp->start + sp->len) {
			memcpy(dst, sp->buf + (off - sp->start), want);
			sp->used = ++m->clock;
			return 1;
		}
	}
	return 0;
}

/* the generated span [start, start + len) into the least recently used
 * slot (lock); takes buf */
static void span_keep(struct manifest *m, int fmt, char *buf, size_t len, uint64_t start)
{
	struct span *old = &m->slot[fmt][0];
	for (int s = 1; s < MANIFEST_SLOTS; s++)
		if (m->slot[fmt][s].used < old->used)
			old = &m->slot[fmt][s];
	free(old->buf);
	old->buf = buf;
	old->len = len;
	old->start = start;
	old->used = ++m->clock;
}

/* at least this much is generated per miss: small sequential reads (a
 * direct_io reader's) hit the span the first one made */
#define GEN_MIN ((size_t)64 << 10)

int manifest_read(struct manifest *m, int fmt, uint64_t off, size_t size, char *dst,
		  size_t *got)
{
	int f = fmt != MANIFEST_CSV;
	uint64_t total = m->size[f];
	*got = 0;
	if (off >= total || !size)
		return 0;
	size_t want = total - off < size ? (size_t)(total - off) : size;
	pthread_mutex_lock(&m->lock);
	int hit = span_hit(m, f, off, want, dst);
	pthread_mutex_unlock(&m->lock);
	if (hit) {
		*got = want;
		return 0;
	}
	/* the last checkpoint at or before off (the CSV header is before
	 * checkpoint 0) */
	size_t lo = 0, hi = m->nck;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->ck[2 * mid + f] <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	struct strbuf sb = STRBUF_INIT;
	struct gen g;
	uint64_t start;
	size_t row;
	int rc = gen_init(&g);
	if (lo == 0) {
		start = 0;
		row = 0;
		if (!f)
			csv_header(m, &sb);
	} else {
		start = m->ck[2 * (lo - 1) + f];
		row = (lo - 1) * MANIFEST_STRIDE;
	}
	size_t need = (size_t)(off - start) + want;
	if (need < GEN_MIN)
		need = GEN_MIN;
	while (!rc && row < m->rows.n && sb.len < need) {
		if (row % MANIFEST_STRIDE == 0 && start + sb.len != m->ck[2 * (row / MANIFEST_STRIDE) + f])
			rc = -EIO;   /* M3 */
		gen_row(m, &g, row++, f ? NULL : &sb, f ? &sb : NULL);
		if (strbuf_error(&sb) || strbuf_error(&g.path) || strbuf_error(&g.tmp))
			rc = -ENOMEM;
	}
	if (!rc && (row == m->rows.n ? start + sb.len != total : start + sb.len < off + want))
		rc = -EIO;   /* M3 */
	gen_fini(&g);
	if (rc) {
		strbuf_release(&sb);
		return rc;
	}
	memcpy(dst, sb.buf + (off - start), want);
	*got = want;
	if (sb.len <= MANIFEST_SPAN_MAX) {
		size_t len;
		char *buf = strbuf_detach(&sb, &len);
		pthread_mutex_lock(&m->lock);
		span_keep(m, f, buf, len, start);
		pthread_mutex_unlock(&m->lock);
	}
	strbuf_release(&sb);
	return 0;
}
