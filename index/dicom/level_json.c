/* level_json.c - see level_json.h. */
#include <stdio.h>
#include <string.h>

#include "level_json.h"
#include "tags.h"

/* VRs whose value is never split at '\' (L2) */
static int vr_multi(const char *vr)
{
	return strcmp(vr, "LT") && strcmp(vr, "ST") && strcmp(vr, "UT") &&
	       strcmp(vr, "UR");
}

/* one PN component: its non-empty groups, or null (L2) */
static void pn_value(struct jsonw *w, struct lval c)
{
	static const char *const grp[] = { "Alphabetic", "Ideographic", "Phonetic" };
	struct lval g;
	size_t gp = 0;
	int any = 0;
	for (int k = 0; k < 3 && lval_split(c, '=', &gp, &g); k++) {
		if (!g.l)
			continue;
		if (!any)
			jsonw_open_obj(w);
		any = 1;
		jsonw_kstr(w, grp[k], g.s, g.l);
	}
	if (any)
		jsonw_close_obj(w);
	else
		jsonw_raw(w, "null");
}

void level_json_attr(struct jsonw *w, uint32_t tag, const char *vr, struct lval v)
{
	char key[12];
	snprintf(key, sizeof(key), "%08X", tag);
	jsonw_key(w, key);
	jsonw_open_obj(w);
	jsonw_kcstr(w, "vr", vr);
	if (v.l) {
		struct lval c;
		size_t pos = 0;
		int multi = vr_multi(vr);
		int num = !strcmp(vr, "IS") || !strcmp(vr, "DS"), pn = !strcmp(vr, "PN");
		jsonw_key(w, "Value");
		jsonw_open_arr(w);
		while (multi ? lval_split(v, '\\', &pos, &c) : (pos++ == 0 && (c = v, 1))) {
			if (num)
				jsonw_decimal(w, c.s, c.l);
			else if (pn)
				pn_value(w, c);
			else if (c.l)
				jsonw_str(w, c.s, c.l);
			else
				jsonw_raw(w, "null");
		}
		jsonw_close_arr(w);
	}
	jsonw_close_obj(w);
}

static void count_attr(struct jsonw *w, uint32_t tag, uint64_t n)
{
	char t[24];
	snprintf(t, sizeof(t), "%llu", (unsigned long long)n);
	struct lval v = { t, strlen(t) };
	level_json_attr(w, tag, "IS", v);
}

struct lvl_attr {
	uint32_t tag;
	const char *vr;
};

static void attrs(struct jsonw *w, const struct levelagg *a, const struct lvl_attr *la,
		  size_t n)
{
	for (size_t i = 0; i < n; i++)
		level_json_attr(w, la[i].tag, la[i].vr, levelagg_get(a, la[i].tag));
}

#define NELEM(x) (sizeof(x) / sizeof((x)[0]))

int level_json_series(struct jsonw *w, const struct levelagg *a, uint64_t ninst)
{
	static const struct lvl_attr la[] = {
		{ TAG_SERIES_DATE, "DA" }, { TAG_SERIES_TIME, "TM" },
		{ TAG_MODALITY, "CS" }, { TAG_SERIES_DESCRIPTION, "LO" },
		{ TAG_BODY_PART, "CS" }, { TAG_STUDY_INSTANCE_UID, "UI" },
		{ TAG_SERIES_INSTANCE_UID, "UI" }, { TAG_SERIES_NUMBER, "IS" },
	};
	jsonw_open_obj(w);
	attrs(w, a, la, NELEM(la));
	count_attr(w, TAG_N_SERIES_INST, ninst);
	jsonw_close_obj(w);
	return jsonw_error(w);
}

int level_json_study(struct jsonw *w, const struct levelagg_study *st)
{
	static const struct lvl_attr la1[] = {
		{ TAG_STUDY_DATE, "DA" }, { TAG_STUDY_TIME, "TM" },
		{ TAG_ACCESSION_NUMBER, "SH" },
	};
	static const struct lvl_attr la2[] = {
		{ TAG_REFERRING, "PN" }, { TAG_STUDY_DESCRIPTION, "LO" },
		{ TAG_PATIENT_NAME, "PN" }, { TAG_PATIENT_ID, "LO" },
		{ TAG_PATIENT_BIRTH_DATE, "DA" }, { TAG_PATIENT_SEX, "CS" },
		{ TAG_STUDY_INSTANCE_UID, "UI" }, { TAG_STUDY_ID, "SH" },
	};
	struct strbuf m = STRBUF_INIT;
	int rc = lvset_join(&st->mods, '\\', &m);
	struct lval mods = { strbuf_str(&m), m.len };
	jsonw_open_obj(w);
	attrs(w, &st->a, la1, NELEM(la1));
	level_json_attr(w, TAG_MODALITIES_IN_STUDY, "CS", mods);
	attrs(w, &st->a, la2, NELEM(la2));
	count_attr(w, TAG_N_STUDY_SERIES, st->nser);
	count_attr(w, TAG_N_STUDY_INST, st->ninst);
	jsonw_close_obj(w);
	strbuf_release(&m);
	return rc ? rc : jsonw_error(w);
}

int level_json_patient(struct jsonw *w, const struct levelagg *a, uint64_t nstudies,
		       uint64_t nseries, uint64_t ninst)
{
	static const struct lvl_attr la[] = {
		{ TAG_PATIENT_NAME, "PN" }, { TAG_PATIENT_ID, "LO" },
		{ TAG_PATIENT_BIRTH_DATE, "DA" }, { TAG_PATIENT_SEX, "CS" },
	};
	jsonw_open_obj(w);
	attrs(w, a, la, NELEM(la));
	count_attr(w, TAG_N_PATIENT_STUDIES, nstudies);
	count_attr(w, TAG_N_PATIENT_SERIES, nseries);
	count_attr(w, TAG_N_PATIENT_INST, ninst);
	jsonw_close_obj(w);
	return jsonw_error(w);
}
