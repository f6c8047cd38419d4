/* unit_deid.c - de-identification (deid.h D1..D6): the table, pseudonyms,
 * date shifts, values, records, and headers in three encodings, checked
 * with dcmwalk (the project's own walker) and by searching the output for
 * every original value. pydicom and dcmdump read real outputs in
 * tests/mount_anon.sh. */
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <time.h>
#include <string.h>
#include "unit.h"
#include "dcmwalk.h"
#include "deid.h"
#include "record.h"
#include "strbuf.h"
#include "tags.h"

#define S(x) x, strlen(x)

static struct deid_key key_a = { { 1, 2, 3 } }, key_b = { { 9, 8, 7 } };

/* ---- a small DICOM writer (explicit or implicit, LE or BE) ---- */
struct w {
	struct strbuf b;
	int explicit, be;
};

static void u16(struct w *w, unsigned v)
{
	unsigned char x[2] = { w->be ? v >> 8 : v & 255, w->be ? v & 255 : v >> 8 };
	strbuf_add(&w->b, x, 2);
}

static void u32(struct w *w, uint32_t v)
{
	u16(w, w->be ? v >> 16 : v & 0xFFFF);
	u16(w, w->be ? v & 0xFFFF : v >> 16);
}

static int is_long(const char *vr)
{
	return strstr("OB OW SQ UN UT UC UR", vr) != NULL;
}

static void head(struct w *w, uint32_t tag, const char *vr, uint32_t len)
{
	u16(w, tag >> 16);
	u16(w, tag & 0xFFFF);
	if (!w->explicit || (tag >> 16) == 0xFFFE) {
		u32(w, len);
	} else if (is_long(vr)) {
		strbuf_add(&w->b, vr, 2);
		u16(w, 0);
		u32(w, len);
	} else {
		strbuf_add(&w->b, vr, 2);
		u16(w, len);
	}
}

static void el(struct w *w, uint32_t tag, const char *vr, const char *v)
{
	size_t l = strlen(v);
	head(w, tag, vr, (uint32_t)(l + (l & 1)));
	strbuf_add(&w->b, v, l);
	if (l & 1)
		strbuf_addch(&w->b, strcmp(vr, "UI") ? ' ' : 0);
}

static void meta(struct w *w, const char *ts)
{
	struct w m = { STRBUF_INIT, 1, 0 };
	static const char zero[128];
	el(&m, 0x00020002, "UI", "1.2.840.10008.5.1.4.1.1.2");
	el(&m, 0x00020003, "UI", "1.2.3.4.5.6.7.8.9.100");
	el(&m, 0x00020010, "UI", ts);
	el(&m, 0x00020016, "AE", "HOSPITALAE");
	strbuf_add(&w->b, zero, 128);
	strbuf_add(&w->b, "DICM", 4);
	struct w g = { STRBUF_INIT, 1, 0 };
	head(&g, 0x00020000, "UL", 4);
	u32(&g, (uint32_t)m.b.len);
	strbuf_add(&w->b, g.b.buf, g.b.len);
	strbuf_add(&w->b, m.b.buf, m.b.len);
	strbuf_release(&m.b);
	strbuf_release(&g.b);
}

/* a data set with identifying values at the top level, in a defined-length
 * sequence and in an undefined-length one, private elements, and pixels */
static size_t dataset(struct w *w)
{
	el(w, 0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2");
	el(w, 0x00080018, "UI", "1.2.3.4.5.6.7.8.9.100");
	el(w, 0x00080020, "DA", "20200115");
	el(w, 0x00080021, "DA", "20200116");
	el(w, 0x00080030, "TM", "101500");
	el(w, 0x00080050, "SH", "ACC12345");
	el(w, 0x00080060, "CS", "CT");
	el(w, 0x00080080, "LO", "St Elsewhere Hospital");
	el(w, 0x00080090, "PN", "Welby^Marcus");
	/* Referenced Image Sequence (X/Z/U*): kept, its UIDs replaced */
	{
		struct w it = { STRBUF_INIT, w->explicit, w->be };
		el(&it, 0x00081150, "UI", "1.2.840.10008.5.1.4.1.1.2");
		el(&it, 0x00081155, "UI", "1.2.3.4.5.6.7.8.9.99");
		el(&it, 0x00100010, "PN", "Nested^Name");
		head(w, 0x00081140, "SQ", (uint32_t)(it.b.len + 8));
		head(w, 0xFFFEE000, "", (uint32_t)it.b.len);
		strbuf_add(&w->b, it.b.buf, it.b.len);
		strbuf_release(&it.b);
	}
	el(w, 0x00090010, "LO", "SECRET CREATOR");
	el(w, 0x00091001, "LO", "private secret");
	el(w, 0x00100010, "PN", "Doe^Jane");
	el(w, 0x00100020, "LO", "PID4711");
	el(w, 0x00100030, "DA", "19700304");
	el(w, 0x00101000, "LO", "OTHERID77");
	/* Other Patient IDs Sequence (X), undefined length */
	head(w, 0x00101002, "SQ", 0xFFFFFFFF);
	head(w, 0xFFFEE000, "", 0xFFFFFFFF);
	el(w, 0x00100020, "LO", "OTHERPID99");
	head(w, 0xFFFEE00D, "", 0);
	head(w, 0xFFFEE0DD, "", 0);
	el(w, 0x0020000D, "UI", "1.2.3.4.5.6.7.8.9.1");
	el(w, 0x0020000E, "UI", "1.2.3.4.5.6.7.8.9.2");
	el(w, 0x00200052, "UI", "1.2.3.4.5.6.7.8.9.3");
	el(w, 0x00280010, "US", "");
	size_t header_end = w->b.len;
	head(w, 0x7FE00010, "OW", 4);
	strbuf_add(&w->b, "\1\2\3\4", 4);
	return header_end;
}

static const char *const secrets[] = {
	"ACC12345", "St Elsewhere", "Welby", "Marcus", "Nested", "SECRET CREATOR",
	"private secret", "Doe", "Jane", "PID4711", "19700304", "OTHERID77",
	"OTHERPID99", "20200115", "20200116", "1.2.3.4.5.6.7.8.9", "HOSPITALAE", NULL
};

static void check_header(const char *what, int explicit, int be, const char *ts)
{
	struct w w = { STRBUF_INIT, explicit, be };
	struct deid_patient p, q;
	deid_patient(&key_a, S("PID4711"), &p);
	deid_patient(&key_b, S("PID4711"), &q);
	if (ts)
		meta(&w, ts);
	size_t he = dataset(&w);
	struct strbuf out = STRBUF_INIT, out2 = STRBUF_INIT;
	int rc = deid_header(&key_a, &p, (const uint8_t *)w.b.buf, he, &out);
	CHECK(rc == 0, "%s: deid_header %d", what, rc);
	/* the original's pixel element follows (N1): the whole file walks */
	strbuf_add(&out, w.b.buf + he, w.b.len - he);
	struct dcmwalk_result r;
	rc = dcmwalk_header((const uint8_t *)out.buf, out.len, out.len, &r);
	CHECK(rc == 0 && r.has_meta && r.pixel_length == 4 &&
	      memcmp(out.buf + r.pixel_offset, "\1\2\3\4", 4) == 0,
	      "%s: the output does not walk (%d)", what, rc);
	CHECK(!!r.explicit_vr == explicit && !!r.big_endian == be, "%s: encoding changed", what);
	for (int i = 0; secrets[i]; i++)
		CHECK(!memmem(out.buf, out.len, secrets[i], strlen(secrets[i])),
		      "%s: '%s' is still in the output", what, secrets[i]);
	CHECK(memmem(out.buf, out.len, S(p.pid)) && memmem(out.buf, out.len, S(p.pname)),
	      "%s: pseudonyms missing", what);
	CHECK(memmem(out.buf, out.len, S("113100")) && memmem(out.buf, out.len, S("113107")) &&
	      memmem(out.buf, out.len, S("MODIFIED")),
	      "%s: the de-identification method is missing", what);
	/* the shifted study date is there, with the patient's offset */
	struct strbuf d = STRBUF_INIT;
	CHECK(deid_text(&key_a, &p, TAG_STUDY_DATE, "DA", S("20200115"), &d) == 1 &&
	      memmem(out.buf, out.len, d.buf, d.len), "%s: shifted date missing", what);
	/* (D3) the size does not depend on the key */
	rc = deid_header(&key_b, &q, (const uint8_t *)w.b.buf, he, &out2);
	CHECK(rc == 0 && out2.len + (w.b.len - he) == out.len, "%s: size depends on the key",
	      what);
	/* (D6) every prefix is either an error or a header, never a crash */
	for (size_t cut = 0; cut < he; cut += 1 + cut / 16) {
		strbuf_reset(&out2);
		rc = deid_header(&key_a, &p, (const uint8_t *)w.b.buf, cut, &out2);
		/* a prefix that ends on an element boundary is a (shorter) data
		 * set: its output must walk too */
		CHECK(rc < 0 || dcmwalk_header((const uint8_t *)out2.buf, out2.len, out2.len,
					       &r) == 0, "%s: prefix %zu", what, cut);
	}
	strbuf_release(&d);
	strbuf_release(&out);
	strbuf_release(&out2);
	strbuf_release(&w.b);
}

static long days_between(const char *a, const char *b)
{
	/* both YYYYMMDD within one era: via the shift itself */
	struct tm ta = { 0 }, tb = { 0 };
	sscanf(a, "%4d%2d%2d", &ta.tm_year, &ta.tm_mon, &ta.tm_mday);
	sscanf(b, "%4d%2d%2d", &tb.tm_year, &tb.tm_mon, &tb.tm_mday);
	ta.tm_year -= 1900, tb.tm_year -= 1900, ta.tm_mon--, tb.tm_mon--;
	return (long)((timegm(&tb) - timegm(&ta)) / 86400);
}

int main(void)
{
	/* (D1) the table: sorted, every action a known code */
	for (size_t i = 1; i < deid_ntable; i++)
		CHECK(deid_table[i - 1].tag <= deid_table[i].tag, "table not sorted at %zu", i);
	for (size_t i = 0; i < deid_ntable; i++)
		CHECK(strspn(deid_table[i].basic, "XZDUKC/") == strlen(deid_table[i].basic) &&
		      deid_table[i].basic[0], "row %zu: action '%s'", i, deid_table[i].basic);
	CHECK(deid_ntable > 600, "the table has %zu rows", deid_ntable);
	CHECK(strstr(deid_table_version, "2024e") != NULL, "version %s", deid_table_version);
	CHECK(deid_action_of(TAG_ACCESSION_NUMBER, NULL) == DEID_EMPTY, "AccessionNumber Z");
	CHECK(deid_action_of(0x00100030, NULL) == DEID_EMPTY, "PatientBirthDate Z");
	CHECK(deid_action_of(0x00080080, NULL) == DEID_DUMMY, "InstitutionName X/Z/D -> D");
	CHECK(deid_action_of(TAG_STUDY_DATE, NULL) == DEID_SHIFT, "StudyDate: Modified Dates C");
	CHECK(deid_action_of(TAG_STUDY_TIME, NULL) == DEID_KEEP, "StudyTime kept (D2)");
	CHECK(deid_action_of(TAG_SOP_INSTANCE_UID, NULL) == DEID_UID, "SOPInstanceUID U");
	CHECK(deid_action_of(0x00081140, NULL) == DEID_UID, "ReferencedImageSequence X/Z/U*");
	CHECK(deid_action_of(0x00091001, "LO") == DEID_REMOVE, "private removed");
	CHECK(deid_action_of(0x60003000, NULL) == DEID_REMOVE, "OverlayData (60xx) X");
	CHECK(deid_action_of(0x60223000, NULL) == DEID_REMOVE, "OverlayData 6022 X");
	CHECK(deid_action_of(0x50001234, NULL) == DEID_REMOVE, "Curve data X");
	CHECK(deid_action_of(TAG_MODALITY, NULL) == DEID_KEEP, "Modality kept");
	CHECK(deid_action_of(TAG_PATIENT_ID, NULL) == DEID_PID, "PatientID pseudonym");

	/* (D3) UIDs */
	char u1[DEID_UID_LEN + 1], u2[DEID_UID_LEN + 1], u3[DEID_UID_LEN + 1];
	deid_uid(&key_a, S("1.2.3"), u1);
	deid_uid(&key_a, "1.2.3\0", 6, u2);
	deid_uid(&key_b, S("1.2.3"), u3);
	CHECK(strlen(u1) == DEID_UID_LEN && strncmp(u1, "2.25.", 5) == 0 && u1[5] != '0',
	      "uid %s", u1);
	CHECK_STR(u1, u2);
	CHECK(strcmp(u1, u3) != 0, "another key, the same UID pseudonym");
	for (int i = 0; i < 200; i++) {
		char in[32];
		snprintf(in, sizeof(in), "1.2.%d", i);
		deid_uid(&key_b, S(in), u3);
		CHECK(strlen(u3) == DEID_UID_LEN, "uid length %zu", strlen(u3));
	}

	/* (D3, D4) patients */
	struct deid_patient p, p2, q;
	deid_patient(&key_a, S("PID4711"), &p);
	deid_patient(&key_a, S("PID4711"), &p2);
	deid_patient(&key_b, S("PID4711"), &q);
	CHECK(strcmp(p.pid, p2.pid) == 0 && p.days == p2.days, "pseudonyms not stable");
	CHECK(strcmp(p.pid, q.pid) != 0, "another key, the same pseudonym");
	CHECK(strlen(p.pid) == DEID_PID_LEN && strcmp(p.pname, p.pid) == 0, "pid %s", p.pid);
	CHECK(p.days <= -365 && p.days >= -3651, "days %d", p.days);

	/* dates: intervals kept, leap days, ranges, DT, garbage */
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	CHECK(deid_text(&key_a, &p, TAG_STUDY_DATE, "DA", S("20200115"), &a) == 1, "shift");
	CHECK(deid_text(&key_a, &p, TAG_STUDY_DATE, "DA", S("20240229"), &b) == 1, "shift");
	CHECK(a.len == 8 && b.len == 8, "date lengths %zu %zu", a.len, b.len);
	CHECK(days_between(a.buf, b.buf) == days_between("20200115", "20240229"),
	      "interval %s..%s", a.buf, b.buf);
	CHECK(days_between(a.buf, "20200115") == -p.days, "offset %s", a.buf);
	CHECK(deid_text(&key_a, &p, TAG_STUDY_DATE, "DA", S("20200115-20200201"), &b) == 1 &&
	      b.len == 17 && b.buf[8] == '-' && memcmp(b.buf, a.buf, 8) == 0, "range %s", b.buf);
	CHECK(deid_text(&key_a, &p, 0x0008002A, "DT", S("20200115101500.5+0100"), &b) == 1 &&
	      memcmp(b.buf, a.buf, 8) == 0 && strcmp(b.buf + 8, "101500.5+0100") == 0,
	      "DT %s", b.buf);
	CHECK(deid_text(&key_a, &p, TAG_STUDY_DATE, "DA", S("2017.01.01"), &b) == 1 && b.len == 0,
	      "not a date -> empty: %s", b.buf ? b.buf : "");
	CHECK(deid_text(&key_a, &p, TAG_STUDY_DATE, "DA", S("20200115\\20200116"), &b) == 1 &&
	      b.len == 17 && b.buf[8] == '\\', "multi-valued %s", b.buf);
	CHECK(deid_text(&key_a, &p, TAG_MODALITY, "CS", S("CT"), &b) == 0, "kept");
	CHECK(deid_text(&key_a, &p, 0x00091001, "LO", S("x"), &b) == 2, "removed");
	CHECK(deid_text(&key_a, &p, TAG_PATIENT_NAME, "PN", S("Doe^Jane"), &b) == 1 &&
	      strcmp(b.buf, p.pname) == 0, "name %s", b.buf);

	/* records (N3): the same actions */
	{
		struct rec_head h = { 0 };
		struct rec_buf r = { 0 }, o = { 0 };
		h.version = REC_VERSION;
		rec_begin(&r, &h);
		rec_add(&r, TAG_PATIENT_NAME, "PN", S("Doe^Jane"));
		rec_add(&r, TAG_PATIENT_ID, "LO", S("PID4711"));
		rec_add(&r, TAG_STUDY_DATE, "DA", S("20200115"));
		rec_add(&r, TAG_ACCESSION_NUMBER, "SH", S("ACC12345"));
		rec_add(&r, TAG_MODALITY, "CS", S("CT"));
		rec_add(&r, TAG_STUDY_INSTANCE_UID, "UI", S("1.2.3.4.5.6.7.8.9.1"));
		CHECK(deid_record(&key_a, r.data, r.len, &o) == 0, "deid_record");
		const char *v;
		size_t l;
		CHECK(rec_attr(o.data, o.len, TAG_PATIENT_ID, &v, &l) && l == 16 &&
		      memcmp(v, p.pid, 16) == 0, "record PatientID");
		CHECK(rec_attr(o.data, o.len, TAG_STUDY_DATE, &v, &l) && l == 8 &&
		      memcmp(v, a.buf, 8) == 0, "record StudyDate");
		CHECK(!rec_attr(o.data, o.len, TAG_ACCESSION_NUMBER, &v, &l), "record accession");
		CHECK(rec_attr(o.data, o.len, TAG_MODALITY, &v, &l) && l == 2, "record modality");
		for (int i = 0; secrets[i]; i++)
			CHECK(!memmem(o.data, o.len, secrets[i], strlen(secrets[i])),
			      "record: '%s' is still there", secrets[i]);
		rec_release(&r);
		rec_release(&o);
	}
	strbuf_release(&a);
	strbuf_release(&b);

	/* (D5, D6) headers */
	check_header("explicit LE", 1, 0, "1.2.840.10008.1.2.1");
	check_header("implicit LE", 0, 0, "1.2.840.10008.1.2");
	check_header("explicit BE", 1, 1, "1.2.840.10008.1.2.2");
	check_header("no meta, implicit", 0, 0, NULL);
	{
		struct w w = { STRBUF_INIT, 1, 0 };
		struct strbuf out = STRBUF_INIT;
		meta(&w, "1.2.840.10008.1.2.1.99");
		size_t he = dataset(&w);
		CHECK(deid_header(&key_a, &p, (const uint8_t *)w.b.buf, he, &out) < 0,
		      "deflated is refused");
		strbuf_release(&out);
		strbuf_release(&w.b);
	}
	return unit_done();
}
