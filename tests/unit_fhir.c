/* unit_fhir.c - the level files without a mount: the JSON writer
 * (index/base/jsonw.h), the aggregation rule (index/dicom/levelagg.h), the
 * QIDO-RS level JSON (level_json.h) and the FHIR R4 resources (fhir.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "unit.h"
#include "fhir.h"
#include "jsonw.h"
#include "level_json.h"
#include "levelagg.h"
#include "record.h"
#include "tags.h"

static struct lval L(const char *s)
{
	struct lval v = { s, strlen(s) };
	return v;
}

#define CHECK_HAS(hay, needle) \
	CHECK(strstr((hay), (needle)) != NULL, "'%s' not in '%s'", (needle), (hay))
#define CHECK_LACKS(hay, needle) \
	CHECK(strstr((hay), (needle)) == NULL, "'%s' unexpectedly in '%s'", (needle), (hay))

/* ---- index records, as the scan stores them ---- */

struct attr {
	uint32_t tag;
	const char *v;
};

/* a record of the given attributes (NULL-terminated list, any order) */
static struct rec_buf rec(const struct attr *a)
{
	struct rec_buf b = { 0 };
	struct rec_head h = { 0 };
	h.version = REC_VERSION;
	rec_begin(&b, &h);
	for (; a->v; a++)
		rec_add(&b, a->tag, "LO", a->v, strlen(a->v));
	return b;
}

/* ---- jsonw ---- */

static const char *dec(struct strbuf *sb, const char *s)
{
	struct jsonw w;
	strbuf_reset(sb);
	jsonw_init(&w, sb);
	jsonw_decimal(&w, s, strlen(s));
	return strbuf_str(sb);
}

static void test_jsonw(void)
{
	struct strbuf sb = STRBUF_INIT;
	struct jsonw w;
	jsonw_init(&w, &sb);
	jsonw_open_obj(&w);
	jsonw_key(&w, "a");
	jsonw_open_arr(&w);
	jsonw_u64(&w, 1);
	jsonw_cstr(&w, "x\"y\\z\n");
	jsonw_open_obj(&w);
	jsonw_close_obj(&w);
	jsonw_open_arr(&w);
	jsonw_close_arr(&w);
	jsonw_close_arr(&w);
	jsonw_key(&w, "b");
	jsonw_raw(&w, "null");
	jsonw_kcstr(&w, "c", "\xc3\xa9\xff");
	jsonw_kstr(&w, "d", "a\0b", 3);
	jsonw_close_obj(&w);
	CHECK_STR(strbuf_str(&sb),
		  "{\"a\":[1,\"x\\\"y\\\\z\\n\",{},[]],\"b\":null,\"c\":\"\xc3\xa9\\ufffd\","
		  "\"d\":\"a\\u0000b\"}");
	CHECK(jsonw_error(&w) == 0, "no error");
	/* a second value after a close gets its comma */
	strbuf_reset(&sb);
	jsonw_init(&w, &sb);
	jsonw_open_arr(&w);
	jsonw_open_obj(&w);
	jsonw_close_obj(&w);
	jsonw_open_obj(&w);
	jsonw_kcstr(&w, "k", "v");
	jsonw_close_obj(&w);
	jsonw_close_arr(&w);
	CHECK_STR(strbuf_str(&sb), "[{},{\"k\":\"v\"}]");

	CHECK_STR(dec(&sb, "12"), "12");
	CHECK_STR(dec(&sb, " 12 "), "12");
	CHECK_STR(dec(&sb, "-0"), "-0");
	CHECK_STR(dec(&sb, "1.50"), "1.50");        /* valid JSON: verbatim */
	CHECK_STR(dec(&sb, "+07"), "7");
	CHECK_STR(dec(&sb, ".5"), "0.5");
	CHECK_STR(dec(&sb, "00"), "0");
	CHECK_STR(dec(&sb, "1e400"), "1e400");      /* JSON grammar: verbatim */
	CHECK_STR(dec(&sb, "+1e400"), "\"+1e400\""); /* not finite */
	CHECK_STR(dec(&sb, "0x10"), "\"0x10\"");
	CHECK_STR(dec(&sb, "nan"), "\"nan\"");
	CHECK_STR(dec(&sb, "abc"), "\"abc\"");
	CHECK_STR(dec(&sb, ""), "null");
	CHECK_STR(dec(&sb, "  "), "null");
	strbuf_release(&sb);
}

/* ---- levelagg ---- */

static void test_levelagg(void)
{
	struct levelagg a;
	CHECK(levelagg_init(&a, "ES") == 0, "init");
	CHECK(!levelagg_full(&a), "not full");
	levelagg_offer(&a, TAG_MODALITY, "", 0);          /* empty: not kept */
	levelagg_offer(&a, TAG_MODALITY, "CT", 2);
	levelagg_offer(&a, TAG_MODALITY, "MR", 2);        /* (A1) first stays */
	levelagg_offer(&a, TAG_PATIENT_ID, "P1", 2);      /* level P: ignored */
	levelagg_offer(&a, 0x00990010u, "X", 1);          /* not indexed */
	struct lval m = levelagg_get(&a, TAG_MODALITY);
	CHECK(m.l == 2 && !memcmp(m.s, "CT", 2), "Modality first non-empty");
	CHECK(levelagg_get(&a, TAG_PATIENT_ID).l == 0, "other level not collected");
	CHECK(levelagg_get(&a, TAG_SERIES_DESCRIPTION).l == 0 &&
	      levelagg_get(&a, TAG_SERIES_DESCRIPTION).s != NULL, "absent is \"\"");
	struct attr r1[] = { { TAG_SERIES_DESCRIPTION, "" }, { TAG_SERIES_NUMBER, "3" },
			     { 0, NULL } };
	struct attr r2[] = { { TAG_SERIES_DESCRIPTION, "Desc" }, { TAG_SERIES_NUMBER, "4" },
			     { 0, NULL } };
	struct rec_buf b1 = rec(r1), b2 = rec(r2);
	levelagg_record(&a, b1.data, b1.len);
	levelagg_record(&a, b2.data, b2.len);
	CHECK(levelagg_get(&a, TAG_SERIES_NUMBER).l == 1 &&
	      levelagg_get(&a, TAG_SERIES_NUMBER).s[0] == '3', "SeriesNumber of the first");
	CHECK(levelagg_get(&a, TAG_SERIES_DESCRIPTION).l == 4, "description of the second");
	levelagg_free(&a);
	rec_release(&b1);
	rec_release(&b2);

	/* a "P" aggregate is full once its tags have values */
	CHECK(levelagg_init(&a, "P") == 0, "init P");
	for (size_t i = 0; i < dfs_ntags; i++)
		if (dfs_tags[i].level == 'P')
			levelagg_offer(&a, dfs_tags[i].tag, "x", 1);
	CHECK(levelagg_full(&a), "full");
	levelagg_free(&a);

	/* (A4) distinct, sorted bytewise, shorter first */
	struct lvset s = { 0 };
	const char *in[] = { "PT", "CT", "", "CT", "C", "MR", "PT" };
	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
		lvset_add(&s, L(in[i]));
	CHECK(s.n == 4, "4 distinct, got %zu", s.n);
	lvset_sort(&s);
	struct strbuf j = STRBUF_INIT;
	lvset_join(&s, '\\', &j);
	CHECK_STR(strbuf_str(&j), "C\\CT\\MR\\PT");
	strbuf_release(&j);
	lvset_free(&s);

	size_t pos = 0;
	struct lval c, v = L("a\\\\b");
	int n = 0;
	const char *want[] = { "a", "", "b" };
	while (lval_split(v, '\\', &pos, &c)) {
		CHECK(n < 3 && c.l == strlen(want[n]) && !memcmp(c.s, want[n], c.l),
		      "split component %d", n);
		n++;
	}
	CHECK(n == 3, "3 components, got %d", n);
	struct lval t = lval_trim(L(" \tx y \t"));
	CHECK(t.l == 3 && !memcmp(t.s, "x y", 3), "trim");
}

/* ---- a small study: two series, three instances ---- */

static struct rec_buf study_recs[3];

static void make_study(struct levelagg_study *st, const char *mod3, const char *tz)
{
	struct attr i1[] = {
		{ TAG_SOP_CLASS_UID, "1.2.840.10008.5.1.4.1.1.2" },
		{ TAG_SOP_INSTANCE_UID, "1.2.3.1.1" },
		{ TAG_STUDY_DATE, "20240229" }, { 0x00080021u, "20240301" },
		{ TAG_STUDY_TIME, "235959.123" }, { 0x00080031u, "0005" },
		{ TAG_ACCESSION_NUMBER, " ACC 1 " }, { TAG_MODALITY, "PT" },
		{ 0x00080090u, "Welby^Marcus^A^Dr.^MD" },
		{ 0x00080201u, tz },
		{ TAG_STUDY_DESCRIPTION, "Brain \"quoted\"" },
		{ TAG_SERIES_DESCRIPTION, "Axial" },
		{ TAG_PATIENT_NAME, "Doe^John" }, { TAG_PATIENT_ID, "PID1" },
		{ 0x00100040u, "M" }, { 0x00180015u, "HEAD" },
		{ TAG_STUDY_INSTANCE_UID, "1.2.3" }, { TAG_SERIES_INSTANCE_UID, "1.2.3.1" },
		{ TAG_SERIES_NUMBER, "+07" }, { TAG_INSTANCE_NUMBER, "1" },
		{ 0, NULL } };
	struct attr i2[] = {
		{ TAG_SOP_CLASS_UID, "" }, { TAG_SOP_INSTANCE_UID, "1.2.3.1.2" },
		{ TAG_MODALITY, "CT" }, { TAG_SERIES_INSTANCE_UID, "1.2.3.1" },
		{ TAG_INSTANCE_NUMBER, "-2" }, { 0, NULL } };
	struct attr i3[] = {
		{ TAG_SOP_CLASS_UID, "1.2.840.10008.5.1.4.1.1.4" },
		{ TAG_SOP_INSTANCE_UID, "1.2.3.2.1" }, { TAG_MODALITY, mod3 },
		{ TAG_SERIES_INSTANCE_UID, "1.2.3.2" }, { TAG_SERIES_NUMBER, "x" },
		{ TAG_INSTANCE_NUMBER, "3" }, { 0, NULL } };
	study_recs[0] = rec(i1);
	study_recs[1] = rec(i2);
	study_recs[2] = rec(i3);
	CHECK(levelagg_study_init(st) == 0, "study init");
	levelagg_study_series(st);
	levelagg_study_instance(st, study_recs[0].data, study_recs[0].len);
	levelagg_study_instance(st, study_recs[1].data, study_recs[1].len);
	levelagg_study_series(st);
	levelagg_study_instance(st, study_recs[2].data, study_recs[2].len);
	levelagg_study_finish(st);
}

static void free_study(struct levelagg_study *st)
{
	levelagg_study_free(st);
	for (int i = 0; i < 3; i++)
		rec_release(&study_recs[i]);
}

/* ---- level JSON ---- */

static void test_level_json(void)
{
	struct strbuf sb = STRBUF_INIT;
	struct jsonw w;
	struct levelagg_study st;

	make_study(&st, "", "+0130");
	CHECK(st.nser == 2 && st.ninst == 3, "2 series, 3 instances");
	jsonw_init(&w, &sb);
	CHECK(level_json_study(&w, &st) == 0, "study.json");
	CHECK_STR(strbuf_str(&sb),
		  "{\"00080020\":{\"vr\":\"DA\",\"Value\":[\"20240229\"]},"
		  "\"00080030\":{\"vr\":\"TM\",\"Value\":[\"235959.123\"]},"
		  "\"00080050\":{\"vr\":\"SH\",\"Value\":[\" ACC 1 \"]},"
		  "\"00080061\":{\"vr\":\"CS\",\"Value\":[\"CT\",\"PT\"]},"
		  "\"00080090\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"Welby^Marcus^A^Dr.^MD\"}]},"
		  "\"00081030\":{\"vr\":\"LO\",\"Value\":[\"Brain \\\"quoted\\\"\"]},"
		  "\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"Doe^John\"}]},"
		  "\"00100020\":{\"vr\":\"LO\",\"Value\":[\"PID1\"]},"
		  "\"00100030\":{\"vr\":\"DA\"},"
		  "\"00100040\":{\"vr\":\"CS\",\"Value\":[\"M\"]},"
		  "\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"1.2.3\"]},"
		  "\"00200010\":{\"vr\":\"SH\"},"
		  "\"00201206\":{\"vr\":\"IS\",\"Value\":[2]},"
		  "\"00201208\":{\"vr\":\"IS\",\"Value\":[3]}}");

	strbuf_reset(&sb);
	jsonw_init(&w, &sb);
	CHECK(level_json_series(&w, &st.ser[0].a, st.ser[0].ninst) == 0, "series.json");
	CHECK_STR(strbuf_str(&sb),
		  "{\"00080021\":{\"vr\":\"DA\",\"Value\":[\"20240301\"]},"
		  "\"00080031\":{\"vr\":\"TM\",\"Value\":[\"0005\"]},"
		  "\"00080060\":{\"vr\":\"CS\",\"Value\":[\"PT\"]},"
		  "\"0008103E\":{\"vr\":\"LO\",\"Value\":[\"Axial\"]},"
		  "\"00180015\":{\"vr\":\"CS\",\"Value\":[\"HEAD\"]},"
		  "\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"1.2.3\"]},"
		  "\"0020000E\":{\"vr\":\"UI\",\"Value\":[\"1.2.3.1\"]},"
		  "\"00200011\":{\"vr\":\"IS\",\"Value\":[7]},"
		  "\"00201209\":{\"vr\":\"IS\",\"Value\":[2]}}");
	free_study(&st);

	/* patient.json: counts as given; PN groups; multi-valued values */
	struct levelagg a;
	levelagg_init(&a, "P");
	levelagg_offer(&a, TAG_PATIENT_NAME, "A^B=\\==Ph^On", 12);
	levelagg_offer(&a, TAG_PATIENT_ID, "X\\\\Y", 4);
	strbuf_reset(&sb);
	jsonw_init(&w, &sb);
	CHECK(level_json_patient(&w, &a, 1, 2, 30) == 0, "patient.json");
	CHECK_STR(strbuf_str(&sb),
		  "{\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"A^B\"},"
		  "{\"Phonetic\":\"Ph^On\"}]},"
		  "\"00100020\":{\"vr\":\"LO\",\"Value\":[\"X\",null,\"Y\"]},"
		  "\"00100030\":{\"vr\":\"DA\"},\"00100040\":{\"vr\":\"CS\"},"
		  "\"00201200\":{\"vr\":\"IS\",\"Value\":[1]},"
		  "\"00201202\":{\"vr\":\"IS\",\"Value\":[2]},"
		  "\"00201204\":{\"vr\":\"IS\",\"Value\":[30]}}");
	levelagg_free(&a);

	/* single-valued VRs are not split; an all-empty PN value is null */
	strbuf_reset(&sb);
	jsonw_init(&w, &sb);
	jsonw_open_obj(&w);
	level_json_attr(&w, 0x00204000u, "LT", L("a\\b"));
	level_json_attr(&w, 0x00100010u, "PN", L("=\\x"));
	level_json_attr(&w, 0x00181050u, "DS", L("1.0\\ 2 \\\\abc"));
	jsonw_close_obj(&w);
	CHECK_STR(strbuf_str(&sb),
		  "{\"00204000\":{\"vr\":\"LT\",\"Value\":[\"a\\\\b\"]},"
		  "\"00100010\":{\"vr\":\"PN\",\"Value\":[null,{\"Alphabetic\":\"x\"}]},"
		  "\"00181050\":{\"vr\":\"DS\",\"Value\":[1.0,2,null,\"abc\"]}}");
	strbuf_release(&sb);
}

/* ---- FHIR ---- */

static const char *fdate(const char *s)
{
	static char b[24];
	return fhir_date(L(s), b) ? b : "-";
}

static const char *ftime(const char *s)
{
	static char b[24];
	return fhir_time(L(s), b) ? b : "-";
}

static const char *ftz(const char *s)
{
	static char b[8];
	return fhir_tz(L(s), b) ? b : "-";
}

static const char *fdt(const char *d, const char *t, const char *z)
{
	static char b[64];
	return fhir_datetime(L(d), L(t), L(z), b) ? b : "-";
}

static long fuint(const char *s)
{
	unsigned long v;
	return fhir_uint(L(s), &v) ? (long)v : -1;
}

static void test_fhir_values(void)
{
	CHECK_STR(fdate("20240229"), "2024-02-29");
	CHECK_STR(fdate(" 20000229 "), "2000-02-29");
	CHECK_STR(fdate("20230229"), "-");
	CHECK_STR(fdate("19000229"), "-");
	CHECK_STR(fdate("19800230"), "-");
	CHECK_STR(fdate("20241301"), "-");
	CHECK_STR(fdate("20240100"), "-");
	CHECK_STR(fdate("00000101"), "-");
	CHECK_STR(fdate("2024-01-01"), "-");
	CHECK_STR(fdate("2024010"), "-");
	CHECK_STR(fdate(""), "-");

	CHECK_STR(ftime("235959.123"), "23:59:59.123");
	CHECK_STR(ftime("0005"), "00:05:00");
	CHECK_STR(ftime("12"), "12:00:00");
	CHECK_STR(ftime("12:30:15"), "12:30:15");
	CHECK_STR(ftime("235960"), "23:59:60");
	CHECK_STR(ftime("120000.123456"), "12:00:00.123456");
	CHECK_STR(ftime("120000.1234567"), "-");
	CHECK_STR(ftime("120000."), "-");
	CHECK_STR(ftime("120000,5"), "-");
	CHECK_STR(ftime("123"), "-");
	CHECK_STR(ftime("2400"), "-");
	CHECK_STR(ftime("1260"), "-");
	CHECK_STR(ftime(""), "-");

	CHECK_STR(ftz("+0130"), "+01:30");
	CHECK_STR(ftz("-0500"), "-05:00");
	CHECK_STR(ftz("+1400"), "+14:00");
	CHECK_STR(ftz("+1500"), "-");
	CHECK_STR(ftz("+0160"), "-");
	CHECK_STR(ftz("0100"), "-");
	CHECK_STR(ftz("+01:00"), "-");

	CHECK_STR(fdt("20240229", "235959.123", "+0130"), "2024-02-29T23:59:59.123+01:30");
	CHECK_STR(fdt("20240229", "235959", ""), "2024-02-29");     /* no zone: date */
	CHECK_STR(fdt("20240229", "", "+0130"), "2024-02-29");
	CHECK_STR(fdt("20240229", "99", "+0130"), "2024-02-29");
	CHECK_STR(fdt("2024022", "1200", "+0130"), "-");

	CHECK(fuint("7") == 7, "7");
	CHECK(fuint("+07") == 7, "+07");
	CHECK(fuint(" 12 ") == 12, "trimmed");
	CHECK(fuint("2147483647") == 2147483647L, "max");
	CHECK(fuint("2147483648") == -1, "too large");
	CHECK(fuint("-1") == -1, "negative");
	CHECK(fuint("1.5") == -1, "not whole");
	CHECK(fuint("") == -1, "empty");

	/* (F5) */
	CHECK(fhir_patient_hash(L("PID1"), L("ignored")) == fnv1a(FNV1A_INIT, "PID1", 4),
	      "hash of PatientID");
	uint64_t h = fnv1a(FNV1A_INIT, "\0N", 2);
	CHECK(fhir_patient_hash(L(""), L("Doe^J")) == fnv1a(h, "Doe^J", 5),
	      "hash of \\0N + PatientName without PatientID");
}

static void patient(struct strbuf *sb, const char *pid, const char *name, const char *sex,
		    const char *birth)
{
	struct levelagg a;
	struct jsonw w;
	levelagg_init(&a, "P");
	levelagg_offer(&a, TAG_PATIENT_ID, pid, strlen(pid));
	levelagg_offer(&a, TAG_PATIENT_NAME, name, strlen(name));
	levelagg_offer(&a, 0x00100040u, sex, strlen(sex));
	levelagg_offer(&a, 0x00100030u, birth, strlen(birth));
	strbuf_reset(sb);
	jsonw_init(&w, sb);
	CHECK(fhir_patient(&w, &a) == 0, "fhir_patient");
	levelagg_free(&a);
}

static void test_fhir_patient(void)
{
	struct strbuf sb = STRBUF_INIT;
	char id[40];

	/* every name component; Ideographic and Phonetic groups */
	patient(&sb, " TZ/1 ", "Welby^Marcus^A^Dr.^MD=\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e"
		"=\xe3\x82\x84\xe3\x81\xbe\xe3\x81\xa0^\xe3\x81\x9f\xe3\x82\x8d\xe3\x81\x86\\Other^X",
		"F", "19800101");
	snprintf(id, sizeof(id), "\"id\":\"%016llx\"",
		 (unsigned long long)fnv1a(FNV1A_INIT, " TZ/1 ", 6));
	CHECK_HAS(strbuf_str(&sb), id);
	CHECK_STR(strbuf_str(&sb) + strlen("{\"resourceType\":\"Patient\",") + strlen(id) + 1,
		  "\"identifier\":[{\"value\":\"TZ/1\"}],"
		  "\"name\":[{\"text\":\"Dr. Marcus A Welby MD\",\"family\":\"Welby\","
		  "\"given\":[\"Marcus\",\"A\"],\"prefix\":[\"Dr.\"],\"suffix\":[\"MD\"]},"
		  "{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation\","
		  "\"valueCode\":\"IDE\"}],\"text\":\"\xe5\xa4\xaa\xe9\x83\x8e \xe5\xb1\xb1\xe7\x94\xb0\","
		  "\"family\":\"\xe5\xb1\xb1\xe7\x94\xb0\",\"given\":[\"\xe5\xa4\xaa\xe9\x83\x8e\"]},"
		  "{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation\","
		  "\"valueCode\":\"SYL\"}],\"text\":\"\xe3\x81\x9f\xe3\x82\x8d\xe3\x81\x86 \xe3\x82\x84\xe3\x81\xbe\xe3\x81\xa0\","
		  "\"family\":\"\xe3\x82\x84\xe3\x81\xbe\xe3\x81\xa0\",\"given\":[\"\xe3\x81\x9f\xe3\x82\x8d\xe3\x81\x86\"]}],"
		  "\"gender\":\"female\",\"birthDate\":\"1980-01-01\"}");

	/* a phonetic group alone; a middle name without a given name */
	patient(&sb, "P2", "==^^Mid", "M", "");
	CHECK_HAS(strbuf_str(&sb),
		  "\"name\":[{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/"
		  "iso21090-EN-representation\",\"valueCode\":\"SYL\"}],\"text\":\"Mid\","
		  "\"given\":[\"Mid\"]}],\"gender\":\"male\"}");

	/* absent values: no identifier, no name, unknown gender, no birthDate */
	patient(&sb, "", "", "X", "19800230");
	uint64_t h = fnv1a(FNV1A_INIT, "\0N", 2);
	snprintf(id, sizeof(id), "%016llx", (unsigned long long)h);
	char want[200];
	snprintf(want, sizeof(want),
		 "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"gender\":\"unknown\"}", id);
	CHECK_STR(strbuf_str(&sb), want);
	patient(&sb, "P3", " ^ = ", "O", "");
	CHECK_LACKS(strbuf_str(&sb), "\"name\"");
	CHECK_HAS(strbuf_str(&sb), "\"gender\":\"other\"");
	patient(&sb, "P4", "Doe", "MALE", "");
	CHECK_HAS(strbuf_str(&sb), "\"name\":[{\"text\":\"Doe\",\"family\":\"Doe\"}]");
	CHECK_HAS(strbuf_str(&sb), "\"gender\":\"unknown\"");
	strbuf_release(&sb);
}

static void test_fhir_study(void)
{
	struct strbuf sb = STRBUF_INIT;
	struct jsonw w;
	struct levelagg_study st;
	char ids[120];

	make_study(&st, "", "+0130");
	jsonw_init(&w, &sb);
	CHECK(fhir_imaging_study(&w, &st) == 0, "fhir_imaging_study");
	uint64_t ph = fnv1a(FNV1A_INIT, "PID1", 4);
	uint64_t sh = fnv1a(fnv1a(ph, "\0", 1), "1.2.3", 5);
	snprintf(ids, sizeof(ids), "{\"resourceType\":\"ImagingStudy\",\"id\":\"%016llx\",",
		 (unsigned long long)sh);
	CHECK(strncmp(strbuf_str(&sb), ids, strlen(ids)) == 0, "head %s", strbuf_str(&sb));
	const char *absent = "{\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/"
			     "data-absent-reason\",\"valueCode\":\"unknown\"}]}";
	char want[4096];
	snprintf(want, sizeof(want),
		 "\"identifier\":[{\"use\":\"official\",\"system\":\"urn:dicom:uid\","
		 "\"value\":\"urn:oid:1.2.3\"},{\"use\":\"usual\",\"type\":{\"coding\":[{\"system\":"
		 "\"http://terminology.hl7.org/CodeSystem/v2-0203\",\"code\":\"ACSN\"}]},"
		 "\"value\":\"ACC 1\"}],\"status\":\"available\","
		 "\"modality\":[{\"system\":\"http://dicom.nema.org/resources/ontology/DCM\",\"code\":\"CT\"},"
		 "{\"system\":\"http://dicom.nema.org/resources/ontology/DCM\",\"code\":\"PT\"}],"
		 "\"subject\":{\"reference\":\"Patient/%016llx\"},"
		 "\"started\":\"2024-02-29T23:59:59.123+01:30\","
		 "\"referrer\":{\"display\":\"Dr. Marcus A Welby MD\"},"
		 "\"numberOfSeries\":2,\"numberOfInstances\":3,"
		 "\"description\":\"Brain \\\"quoted\\\"\","
		 "\"series\":[{\"uid\":\"1.2.3.1\",\"number\":7,"
		 "\"modality\":{\"system\":\"http://dicom.nema.org/resources/ontology/DCM\",\"code\":\"PT\"},"
		 "\"description\":\"Axial\",\"numberOfInstances\":2,\"bodySite\":{\"display\":\"HEAD\"},"
		 "\"started\":\"2024-03-01T00:05:00+01:30\","
		 "\"instance\":[{\"uid\":\"1.2.3.1.1\",\"sopClass\":{\"system\":\"urn:ietf:rfc:3986\","
		 "\"code\":\"urn:oid:1.2.840.10008.5.1.4.1.1.2\"},\"number\":1},"
		 "{\"uid\":\"1.2.3.1.2\",\"sopClass\":%s}]},"
		 "{\"uid\":\"1.2.3.2\",\"modality\":%s,\"numberOfInstances\":1,"
		 "\"instance\":[{\"uid\":\"1.2.3.2.1\",\"sopClass\":{\"system\":\"urn:ietf:rfc:3986\","
		 "\"code\":\"urn:oid:1.2.840.10008.5.1.4.1.1.4\"},\"number\":3}]}]}",
		 (unsigned long long)ph, absent, absent);
	CHECK_STR(strbuf_str(&sb) + strlen(ids), want);
	free_study(&st);

	/* without a valid zone: dates only; the series' own modality */
	make_study(&st, "MR", "+2500");
	strbuf_reset(&sb);
	jsonw_init(&w, &sb);
	fhir_imaging_study(&w, &st);
	CHECK_HAS(strbuf_str(&sb), "\"started\":\"2024-02-29\",");
	CHECK_HAS(strbuf_str(&sb), "\"started\":\"2024-03-01\",");
	CHECK_HAS(strbuf_str(&sb), "\"code\":\"MR\"},{\"system\":\"http://dicom.nema.org/"
				   "resources/ontology/DCM\",\"code\":\"PT\"}]");
	free_study(&st);

	/* an empty study: no series, no modality, no accession */
	CHECK(levelagg_study_init(&st) == 0, "empty study");
	levelagg_study_finish(&st);
	strbuf_reset(&sb);
	jsonw_init(&w, &sb);
	fhir_imaging_study(&w, &st);
	CHECK_HAS(strbuf_str(&sb), "\"identifier\":[{\"use\":\"official\",\"system\":"
				   "\"urn:dicom:uid\",\"value\":\"urn:oid:\"}],\"status\":\"available\","
				   "\"subject\":");
	CHECK_HAS(strbuf_str(&sb), "\"numberOfSeries\":0,\"numberOfInstances\":0}");
	levelagg_study_free(&st);
	strbuf_release(&sb);
}

int main(void)
{
	test_jsonw();
	test_levelagg();
	test_level_json();
	test_fhir_values();
	test_fhir_patient();
	test_fhir_study();
	return unit_done();
}
