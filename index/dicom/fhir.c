/* fhir.c - see fhir.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir.h"
#include "tags.h"

#define DCM_SYSTEM "http://dicom.nema.org/resources/ontology/DCM"

static int digits(struct lval v, size_t at, size_t n, int *out)
{
	int x = 0;
	if (at + n > v.l)
		return 0;
	for (size_t i = at; i < at + n; i++) {
		if (v.s[i] < '0' || v.s[i] > '9')
			return 0;
		x = x * 10 + (v.s[i] - '0');
	}
	*out = x;
	return 1;
}

int fhir_date(struct lval v, char out[24])
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, m, d;
	v = lval_trim(v);
	if (v.l != 8 || !digits(v, 0, 4, &y) || !digits(v, 4, 2, &m) ||
	    !digits(v, 6, 2, &d))
		return 0;
	if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 0;
	snprintf(out, 24, "%04d-%02d-%02d", y, m, d);
	return 1;
}

int fhir_time(struct lval v, char out[24])
{
	char t[32];
	size_t n = 0;
	int h = 0, m = 0, s = 0;
	v = lval_trim(v);
	for (size_t i = 0; i < v.l && n < sizeof(t) - 1; i++)
		if (v.s[i] != ':')
			t[n++] = v.s[i];
	if (n > sizeof(t) - 2)
		return 0;
	struct lval c = { t, n };
	if (n < 2 || !digits(c, 0, 2, &h) || h > 23)
		return 0;
	if (n >= 4 && (!digits(c, 2, 2, &m) || m > 59))
		return 0;
	if (n >= 6 && (!digits(c, 4, 2, &s) || s > 60))
		return 0;
	if (n == 3 || n == 5)
		return 0;
	size_t fl = 0;
	if (n > 6) {
		if (t[6] != '.' || n == 7 || n > 13)
			return 0;
		for (size_t i = 7; i < n; i++)
			if (t[i] < '0' || t[i] > '9')
				return 0;
		fl = n - 7;
	}
	int k = snprintf(out, 24, "%02d:%02d:%02d", h, m, s);
	if (fl)
		snprintf(out + k, 24 - (size_t)k, ".%.*s", (int)fl, t + 7);
	return 1;
}

int fhir_tz(struct lval v, char out[8])
{
	int h, m;
	v = lval_trim(v);
	if (v.l != 5 || (v.s[0] != '+' && v.s[0] != '-') || !digits(v, 1, 2, &h) ||
	    !digits(v, 3, 2, &m) || h > 14 || m > 59)
		return 0;
	snprintf(out, 8, "%c%02d:%02d", v.s[0], h, m);
	return 1;
}

int fhir_datetime(struct lval da, struct lval tm, struct lval tz, char out[64])
{
	char d[24], t[24], z[8];
	if (!fhir_date(da, d))
		return 0;
	if (fhir_time(tm, t) && fhir_tz(tz, z))
		snprintf(out, 64, "%sT%s%s", d, t, z);
	else
		snprintf(out, 64, "%s", d);
	return 1;
}

int fhir_uint(struct lval v, unsigned long *out)
{
	char t[24], *end;
	v = lval_trim(v);
	if (!v.l || v.l >= sizeof(t))
		return 0;
	memcpy(t, v.s, v.l);
	t[v.l] = 0;
	if (t[0] == '-')
		return 0;
	unsigned long long x = strtoull(t, &end, 10);
	if (*end || x > 2147483647ull)
		return 0;
	*out = (unsigned long)x;
	return 1;
}

uint64_t fhir_patient_hash(struct lval pid, struct lval pname)
{
	if (pid.l)
		return fnv1a(FNV1A_INIT, pid.s, pid.l);
	uint64_t h = fnv1a(FNV1A_INIT, "\0N", 2);
	return fnv1a(h, pname.s, pname.l);
}

static void fhir_id(char out[20], uint64_t h)
{
	snprintf(out, 20, "%016llx", (unsigned long long)h);
}

/* "k":"<prefix><v>" */
static void kstr_prefixed(struct jsonw *w, const char *k, const char *prefix,
			  struct lval v)
{
	struct strbuf t = STRBUF_INIT;
	strbuf_addstr(&t, prefix);
	strbuf_add(&t, v.s, v.l);
	if (k)
		jsonw_key(w, k);
	if (strbuf_error(&t))
		w->sb->failed = 1;   /* (S2): the output's error, sticky */
	else
		jsonw_str(w, strbuf_str(&t), t.len);
	strbuf_release(&t);
}

/* [{"url":url,"valueCode":code}] as the value of "extension" */
static void extension(struct jsonw *w, const char *url, const char *code)
{
	jsonw_key(w, "extension");
	jsonw_open_arr(w);
	jsonw_open_obj(w);
	jsonw_kcstr(w, "url", url);
	jsonw_kcstr(w, "valueCode", code);
	jsonw_close_obj(w);
	jsonw_close_arr(w);
}

static void coding(struct jsonw *w, const char *system, const char *prefix,
		   struct lval code)
{
	code = lval_trim(code);
	jsonw_open_obj(w);
	if (!code.l) {   /* (F4) */
		extension(w, "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
			  "unknown");
	} else {
		jsonw_kcstr(w, "system", system);
		kstr_prefixed(w, "code", prefix ? prefix : "", code);
	}
	jsonw_close_obj(w);
}

/* The components of one PN group: family^given^middle^prefix^suffix. */
struct pn {
	struct lval c[5];
};

static void pn_parse(struct lval g, struct pn *p)
{
	size_t pos = 0;
	memset(p, 0, sizeof(*p));
	for (int k = 0; k < 5; k++) {
		struct lval c;
		if (!lval_split(g, '^', &pos, &c))
			break;
		p->c[k] = lval_trim(c);
	}
}

/* "prefix given middle family suffix" (F3) */
static void pn_text(const struct pn *p, struct strbuf *t)
{
	static const int order[] = { 3, 1, 2, 0, 4 };
	int any = 0;
	for (int i = 0; i < 5; i++) {
		struct lval c = p->c[order[i]];
		if (!c.l)
			continue;
		if (any)
			strbuf_addch(t, ' ');
		strbuf_add(t, c.s, c.l);
		any = 1;
	}
}

/* one HumanName of a group whose text is non-empty (F3) */
static void human_name(struct jsonw *w, const struct pn *p, const struct strbuf *text,
		       const char *repr)
{
	jsonw_open_obj(w);
	if (repr)
		extension(w, "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation",
			  repr);
	jsonw_kstr(w, "text", text->buf, text->len);
	if (p->c[0].l)
		jsonw_kstr(w, "family", p->c[0].s, p->c[0].l);
	if (p->c[1].l || p->c[2].l) {
		jsonw_key(w, "given");
		jsonw_open_arr(w);
		for (int k = 1; k <= 2; k++)
			if (p->c[k].l)
				jsonw_str(w, p->c[k].s, p->c[k].l);
		jsonw_close_arr(w);
	}
	static const char *const fld[] = { NULL, NULL, NULL, "prefix", "suffix" };
	for (int k = 3; k <= 4; k++) {
		if (!p->c[k].l)
			continue;
		jsonw_key(w, fld[k]);
		jsonw_open_arr(w);
		jsonw_str(w, p->c[k].s, p->c[k].l);
		jsonw_close_arr(w);
	}
	jsonw_close_obj(w);
}

/* "name":[HumanName...] from the first value of PN v; nothing when no
 * group has a text (F3) */
static int names(struct jsonw *w, struct lval v)
{
	static const char *const repr[] = { NULL, "IDE", "SYL" };
	struct pn p[3];
	struct strbuf t[3] = { STRBUF_INIT, STRBUF_INIT, STRBUF_INIT };
	struct lval first, g;
	size_t pos = 0, gp = 0;
	int n = 0, any = 0, rc = 0;
	if (lval_split(v, '\\', &pos, &first))
		for (; n < 3 && lval_split(first, '=', &gp, &g); n++) {
			pn_parse(g, &p[n]);
			pn_text(&p[n], &t[n]);
			any |= t[n].len != 0;
		}
	if (any) {
		jsonw_key(w, "name");
		jsonw_open_arr(w);
		for (int k = 0; k < n; k++)
			if (t[k].len)
				human_name(w, &p[k], &t[k], repr[k]);
		jsonw_close_arr(w);
	}
	for (int k = 0; k < 3; k++) {
		if (strbuf_error(&t[k]))
			rc = -ENOMEM;
		strbuf_release(&t[k]);
	}
	return rc;
}

int fhir_patient(struct jsonw *w, const struct levelagg *a)
{
	char pidtxt[20], d[24];
	struct lval pid = levelagg_get(a, TAG_PATIENT_ID), name = levelagg_get(a, TAG_PATIENT_NAME);
	struct lval sex = lval_trim(levelagg_get(a, TAG_PATIENT_SEX));
	fhir_id(pidtxt, fhir_patient_hash(pid, name));
	jsonw_open_obj(w);
	jsonw_kcstr(w, "resourceType", "Patient");
	jsonw_kcstr(w, "id", pidtxt);
	struct lval tp = lval_trim(pid);
	if (tp.l) {
		jsonw_key(w, "identifier");
		jsonw_open_arr(w);
		jsonw_open_obj(w);
		jsonw_kstr(w, "value", tp.s, tp.l);
		jsonw_close_obj(w);
		jsonw_close_arr(w);
	}
	int rc = names(w, name);
	const char *gender = "unknown";
	if (sex.l == 1 && sex.s[0] == 'M')
		gender = "male";
	else if (sex.l == 1 && sex.s[0] == 'F')
		gender = "female";
	else if (sex.l == 1 && sex.s[0] == 'O')
		gender = "other";
	jsonw_kcstr(w, "gender", gender);
	if (fhir_date(levelagg_get(a, TAG_PATIENT_BIRTH_DATE), d))
		jsonw_kcstr(w, "birthDate", d);
	jsonw_close_obj(w);
	return rc ? rc : jsonw_error(w);
}

/* "k":{"display":v} when v (trimmed or not, as given) is non-empty */
static void display(struct jsonw *w, const char *k, const char *s, size_t l)
{
	if (!l)
		return;
	jsonw_key(w, k);
	jsonw_open_obj(w);
	jsonw_kstr(w, "display", s, l);
	jsonw_close_obj(w);
}

static void identifiers(struct jsonw *w, const struct levelagg *a, struct lval suid)
{
	jsonw_key(w, "identifier");
	jsonw_open_arr(w);
	jsonw_open_obj(w);
	jsonw_kcstr(w, "use", "official");
	jsonw_kcstr(w, "system", "urn:dicom:uid");
	kstr_prefixed(w, "value", "urn:oid:", suid);
	jsonw_close_obj(w);
	struct lval acc = lval_trim(levelagg_get(a, TAG_ACCESSION_NUMBER));
	if (acc.l) {
		jsonw_open_obj(w);
		jsonw_kcstr(w, "use", "usual");
		jsonw_key(w, "type");
		jsonw_open_obj(w);
		jsonw_key(w, "coding");
		jsonw_open_arr(w);
		jsonw_open_obj(w);
		jsonw_kcstr(w, "system", "http://terminology.hl7.org/CodeSystem/v2-0203");
		jsonw_kcstr(w, "code", "ACSN");
		jsonw_close_obj(w);
		jsonw_close_arr(w);
		jsonw_close_obj(w);
		jsonw_kstr(w, "value", acc.s, acc.l);
		jsonw_close_obj(w);
	}
	jsonw_close_arr(w);
}

/* "referrer":{"display":text} of the first ReferringPhysicianName group */
static int referrer(struct jsonw *w, const struct levelagg *a)
{
	struct lval rp = levelagg_get(a, TAG_REFERRING), first, g;
	size_t pos = 0, gp = 0;
	struct pn p;
	struct strbuf t = STRBUF_INIT;
	if (lval_split(rp, '\\', &pos, &first) && lval_split(first, '=', &gp, &g)) {
		pn_parse(g, &p);
		pn_text(&p, &t);
	}
	display(w, "referrer", t.buf, t.len);
	int rc = strbuf_error(&t);
	strbuf_release(&t);
	return rc;
}

static void series(struct jsonw *w, const struct levelagg_series *s, struct lval tz)
{
	char dt[64];
	unsigned long num;
	jsonw_open_obj(w);
	struct lval su = lval_trim(levelagg_get(&s->a, TAG_SERIES_INSTANCE_UID));
	jsonw_kstr(w, "uid", su.s, su.l);
	if (fhir_uint(levelagg_get(&s->a, TAG_SERIES_NUMBER), &num)) {
		jsonw_key(w, "number");
		jsonw_u64(w, num);
	}
	jsonw_key(w, "modality");
	coding(w, DCM_SYSTEM, NULL, levelagg_get(&s->a, TAG_MODALITY));
	struct lval sd = lval_trim(levelagg_get(&s->a, TAG_SERIES_DESCRIPTION));
	if (sd.l)
		jsonw_kstr(w, "description", sd.s, sd.l);
	jsonw_key(w, "numberOfInstances");
	jsonw_u64(w, s->ninst);
	struct lval bp = lval_trim(levelagg_get(&s->a, TAG_BODY_PART));
	display(w, "bodySite", bp.s, bp.l);
	struct lval stz = levelagg_get(&s->a, TAG_TZ_OFFSET);
	if (fhir_datetime(levelagg_get(&s->a, TAG_SERIES_DATE),
			  levelagg_get(&s->a, TAG_SERIES_TIME), stz.l ? stz : tz, dt))
		jsonw_kcstr(w, "started", dt);
	if (s->ninst) {
		jsonw_key(w, "instance");
		jsonw_open_arr(w);
	}
	for (size_t j = 0; j < s->ninst; j++) {
		const struct levelagg_inst *ii = &s->inst[j];
		jsonw_open_obj(w);
		struct lval u = lval_trim(ii->uid);
		jsonw_kstr(w, "uid", u.s, u.l);
		jsonw_key(w, "sopClass");
		coding(w, "urn:ietf:rfc:3986", "urn:oid:", ii->cls);
		if (fhir_uint(ii->num, &num)) {
			jsonw_key(w, "number");
			jsonw_u64(w, num);
		}
		jsonw_close_obj(w);
	}
	if (s->ninst)
		jsonw_close_arr(w);
	jsonw_close_obj(w);
}

int fhir_imaging_study(struct jsonw *w, const struct levelagg_study *st)
{
	const struct levelagg *a = &st->a;
	char sid[20], pid[20], dt[64], ref[32];
	struct lval suid = lval_trim(levelagg_get(a, TAG_STUDY_INSTANCE_UID));
	uint64_t ph = fhir_patient_hash(levelagg_get(a, TAG_PATIENT_ID),
					levelagg_get(a, TAG_PATIENT_NAME));
	fhir_id(pid, ph);
	/* (F5) per patient: the same study under two patients is two resources */
	uint64_t h = fnv1a(ph, "\0", 1);
	fhir_id(sid, fnv1a(h, suid.s, suid.l));

	jsonw_open_obj(w);
	jsonw_kcstr(w, "resourceType", "ImagingStudy");
	jsonw_kcstr(w, "id", sid);
	identifiers(w, a, suid);
	jsonw_kcstr(w, "status", "available");
	if (st->mods.n) {
		jsonw_key(w, "modality");
		jsonw_open_arr(w);
		for (size_t i = 0; i < st->mods.n; i++)
			coding(w, DCM_SYSTEM, NULL, st->mods.v[i]);
		jsonw_close_arr(w);
	}
	jsonw_key(w, "subject");
	jsonw_open_obj(w);
	snprintf(ref, sizeof(ref), "Patient/%s", pid);
	jsonw_kcstr(w, "reference", ref);
	jsonw_close_obj(w);
	struct lval tz = levelagg_get(a, TAG_TZ_OFFSET);
	if (fhir_datetime(levelagg_get(a, TAG_STUDY_DATE), levelagg_get(a, TAG_STUDY_TIME), tz, dt))
		jsonw_kcstr(w, "started", dt);
	int rc = referrer(w, a);
	jsonw_key(w, "numberOfSeries");
	jsonw_u64(w, st->nser);
	jsonw_key(w, "numberOfInstances");
	jsonw_u64(w, st->ninst);
	struct lval desc = lval_trim(levelagg_get(a, TAG_STUDY_DESCRIPTION));
	if (desc.l)
		jsonw_kstr(w, "description", desc.s, desc.l);
	if (st->nser) {
		jsonw_key(w, "series");
		jsonw_open_arr(w);
	}
	for (size_t i = 0; i < st->nser; i++)
		series(w, &st->ser[i], tz);
	if (st->nser)
		jsonw_close_arr(w);
	jsonw_close_obj(w);
	return rc ? rc : jsonw_error(w);
}
