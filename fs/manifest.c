/*
 * manifest.c - the manifest writers of query/ directories (manifest.h).
 */
#include <errno.h>
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

int manifest_write(struct catalog *cat, int level, const uint32_t *idx,
		   char *const *names, size_t n, struct strbuf *csv,
		   struct strbuf *js)
{
	struct mcol *mc = malloc(MCOL_MAX * sizeof(*mc));
	uint32_t *tags = malloc(MCOL_MAX * sizeof(*tags));
	struct cat_sv *vals = malloc(MCOL_MAX * sizeof(*vals));
	struct strbuf path = STRBUF_INIT, tmp = STRBUF_INIT;
	int rc = 0;
	if (!mc || !tags || !vals) {
		rc = -ENOMEM;
		goto out;
	}
	size_t nc = manifest_cols(cat, level, mc, MCOL_MAX);
	/* the attribute columns: the first non-empty value below */
	for (size_t k = 0; k < nc; k++)
		tags[k] = mc[k].count || mc[k].tag == QUERY_TAG_MODALITIES_IN_STUDY ?
			  0 : mc[k].tag;
	strbuf_addstr(csv, "path,link");
	for (size_t k = 0; k < nc; k++) {
		strbuf_addch(csv, ',');
		strbuf_addstr(csv, mc[k].name);
	}
	strbuf_add(csv, "\r\n", 2);
	for (size_t i = 0; i < n; i++) {
		strbuf_reset(&path);
		catalog_path(cat, level, idx[i], &path);
		csv_cell(csv, strbuf_str(&path), path.len);
		strbuf_addch(csv, ',');
		csv_cell(csv, names[i], strlen(names[i]));
		strbuf_addstr(js, "{\"path\":");
		strbuf_add_json_str(js, strbuf_str(&path), path.len);
		strbuf_addstr(js, ",\"link\":");
		strbuf_add_json_str(js, names[i], strlen(names[i]));
		row_cells(cat, mc, tags, nc, level, idx[i], vals, &tmp);
		for (size_t k = 0; k < nc; k++) {
			struct cat_sv v = vals[k];
			strbuf_addch(csv, ',');
			csv_cell(csv, v.s, v.l);
			strbuf_addch(js, ',');
			strbuf_add_json_str(js, mc[k].name, strlen(mc[k].name));
			strbuf_addch(js, ':');
			if (mc[k].count)
				strbuf_add(js, v.s, v.l);
			else if (v.l)
				strbuf_add_json_str(js, v.s, v.l);
			else
				strbuf_addstr(js, "null");
		}
		strbuf_add(csv, "\r\n", 2);
		strbuf_add(js, "}\n", 2);
	}
	if (strbuf_error(&path) || strbuf_error(&tmp) || strbuf_error(csv) || strbuf_error(js))
		rc = -ENOMEM;
out:
	strbuf_release(&path);
	strbuf_release(&tmp);
	free(mc);
	free(tags);
	free(vals);
	return rc;
}
