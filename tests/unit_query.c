/* unit_query.c - the query term parser and the PS3.4 matcher (query.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "unit.h"
#include "query.h"
#include "tags.h"

#define S(x) x, strlen(x)

static char why[512];

/* parse name (every tag indexed); the result code */
static int parse(const char *name, struct query_term *t)
{
	why[0] = 0;
	return query_term_parse(name, NULL, NULL, t, why, sizeof(why));
}

/* does value v match the term name? -1 when name does not parse */
static int m(const char *name, const char *v)
{
	struct query_term t;
	if (parse(name, &t))
		return -1;
	int r = t.tag == QUERY_TAG_MODALITIES_IN_STUDY ? query_match_modality(&t, S(v)) :
		query_match(&t, S(v));
	query_term_free(&t);
	return r;
}

/* the same under fuzzymatching=true (query.h Q6), the option after or
 * before the term */
static int mf(const char *name, const char *v)
{
	struct query_term t[2];
	size_t n = 2;
	static int flip;
	flip ^= 1;
	if (parse(flip ? "fuzzymatching=true" : name, &t[0]))
		return -1;
	if (parse(flip ? name : "fuzzymatching=true", &t[1])) {
		query_term_free(&t[0]);
		return -1;
	}
	query_terms_finish(t, &n);
	if (n != 1 || !t[0].fuzzy || t[0].m == QM_OPT) {
		query_term_free(&t[0]);
		return -1;
	}
	int r = t[0].tag == QUERY_TAG_MODALITIES_IN_STUDY ? query_match_modality(&t[0], S(v)) :
		query_match(&t[0], S(v));
	query_term_free(&t[0]);
	return r;
}

#define FMATCH(name, v) CHECK(mf(name, v) == 1, "fuzzy '%s' should match '%s'", name, v)
#define FNOMATCH(name, v) CHECK(mf(name, v) == 0, "fuzzy '%s' should not match '%s'", name, v)
#define MATCH(name, v) CHECK(m(name, v) == 1, "'%s' should match '%s'", name, v)
#define NOMATCH(name, v) CHECK(m(name, v) == 0, "'%s' should not match '%s'", name, v)
#define BAD(name, err) do { struct query_term t_; int r_ = parse(name, &t_); \
	CHECK(r_ == (err), "'%s': %d, want %d (%s)", name, r_, err, why); \
	CHECK(r_ == 0 || why[0], "'%s': no reason given", name); \
	CHECK(t_.val == NULL && t_.list == NULL, "'%s': error left memory", name); \
	if (!r_) query_term_free(&t_); } while (0)

static int only_modality(void *ctx, uint32_t tag)
{
	(void)ctx;
	return tag == TAG_MODALITY;
}

int main(void)
{
	char out[32];
	struct query_term t;

	/* URL decoding */
	char *d = query_url_decode(S("A%2FB%20c%41"));
	CHECK_STR(d ? d : "(null)", "A/B cA");
	free(d);
	CHECK(query_url_decode(S("x%2")) == NULL, "truncated escape");
	CHECK(query_url_decode(S("x%zz")) == NULL, "bad hex");
	CHECK(query_url_decode(S("x%00y")) == NULL, "%%00");
	d = query_url_decode(S("%e9%C3%a9"));
	CHECK(d && strcmp(d, "\xe9\xc3\xa9") == 0, "mixed case hex");
	free(d);

	/* the shape of names */
	CHECK(query_is_term_name("Modality=CT"), "term");
	CHECK(query_is_term_name("(0008,0060)=CT"), "(g,e) term");
	CHECK(!query_is_term_name("=CT"), "no keyword");
	CHECK(!query_is_term_name("manifest.csv"), "file");
	CHECK(!query_is_term_name("1 CT.dcm"), "link");

	/* parse: tags, VRs, match types */
	CHECK(parse("Modality=CT", &t) == 0 && t.tag == TAG_MODALITY && t.m == QM_STR &&
	      strcmp(t.vr, "CS") == 0, "Modality");
	query_term_free(&t);
	CHECK(parse("00100010=doe", &t) == 0 && t.tag == TAG_PATIENT_NAME && t.m == QM_PN,
	      "GGGGEEEE");
	query_term_free(&t);
	CHECK(parse("PatientName=", &t) == 0 && t.m == QM_ANY, "empty: any");
	query_term_free(&t);
	CHECK(parse("SOPInstanceUID=1.2,3.4\\5.6", &t) == 0 && t.m == QM_UID && t.nlist == 3 &&
	      strcmp(t.list[2], "5.6") == 0, "UID list");
	query_term_free(&t);
	CHECK(parse("StudyDate=20200101-", &t) == 0 && t.m == QM_RANGE && t.has_lo &&
	      !t.has_hi && strcmp(t.lo, "20200101") == 0, "open range");
	query_term_free(&t);
	CHECK(parse("StudyTime=10-11:30", &t) == 0 && strcmp(t.lo, "100000.000000") == 0 &&
	      strcmp(t.hi, "113099.999999") == 0, "TM range: low end padded with 0, high with 9");
	query_term_free(&t);
	CHECK(parse("ModalitiesInStudy=CT,M?", &t) == 0 &&
	      t.tag == QUERY_TAG_MODALITIES_IN_STUDY && t.nlist == 2 && t.wild, "MIS");
	query_term_free(&t);
	CHECK(parse("00080061=CT", &t) == 0 && t.tag == QUERY_TAG_MODALITIES_IN_STUDY, "MIS tag");
	query_term_free(&t);
	CHECK(parse("SeriesNumber=7", &t) == 0 && t.numeric && t.num == 7, "IS numeric");
	query_term_free(&t);
	CHECK(parse("StudyDescription=A%2FB", &t) == 0 && strcmp(t.val, "A/B") == 0, "decoded");
	query_term_free(&t);
	query_term_free(&t);   /* twice is fine */

	/* parse: errors (Q2) */
	BAD("Modality", -EINVAL);
	BAD("=CT", -EINVAL);
	BAD("Foo=1", -EINVAL);
	BAD("StudyDescription=%zz", -EINVAL);
	BAD("StudyDescription=%00", -EINVAL);
	BAD("SOPInstanceUID=1.2*", -EINVAL);
	BAD("StudyDate=2020-01-01", -EINVAL);
	BAD("StudyDate=2020x", -EINVAL);
	BAD("StudyDate=202", -EINVAL);
	BAD("StudyDate=20200", -EINVAL);
	BAD("StudyDate=202013", -EINVAL);
	BAD("StudyDate=2020.1.1", -EINVAL);
	BAD("fuzzymatching=yes", -EINVAL);
	BAD("fuzzymatching=", -EINVAL);
	BAD("StudyDate=-", -EINVAL);
	BAD("StudyDate=2020*", -EINVAL);
	BAD("StudyTime=1", -EINVAL);
	BAD("StudyTime=1230.5", -EINVAL);
	BAD("StudyTime=123000.1234567", -EINVAL);
	/* dates and times that do not exist, reversed ranges (Q2) */
	BAD("StudyDate=00000000-99999999", -EINVAL);
	BAD("StudyDate=00000000", -EINVAL);
	BAD("StudyDate=99999999", -EINVAL);
	BAD("StudyDate=20201301", -EINVAL);
	BAD("StudyDate=20200132", -EINVAL);
	BAD("StudyDate=20200100", -EINVAL);
	BAD("StudyDate=20210229", -EINVAL);
	BAD("StudyDate=19000229", -EINVAL);
	BAD("StudyDate=20200431", -EINVAL);
	BAD("StudyDate=-20201332", -EINVAL);
	BAD("StudyDate=20201231-20200101", -EINVAL);
	BAD("StudyTime=240000", -EINVAL);
	BAD("StudyTime=126000", -EINVAL);
	BAD("StudyTime=12:30:61", -EINVAL);
	BAD("StudyTime=130000-120000", -EINVAL);
	BAD("AcquisitionDateTime=202013", -EINVAL);
	BAD("AcquisitionDateTime=2020023012", -EINVAL);
	BAD("AcquisitionDateTime=2020010125", -EINVAL);
	CHECK(parse("StudyDate=20200229", &t) == 0, "leap day 2020");
	query_term_free(&t);
	CHECK(parse("StudyDate=20000229-20001231", &t) == 0, "leap day 2000");
	query_term_free(&t);
	CHECK(parse("StudyDate=20200101-20200101", &t) == 0, "one-day range");
	query_term_free(&t);
	CHECK(parse("StudyTime=235960", &t) == 0, "leap second");
	query_term_free(&t);
	CHECK(parse("AcquisitionDateTime=2020", &t) == 0, "DT year only");
	query_term_free(&t);
	{
		char longkw[200];
		memset(longkw, 'A', 150);
		strcpy(longkw + 150, "=x");
		BAD(longkw, -EINVAL);
	}
	/* not indexed: EOPNOTSUPP, after the keyword and escape checks */
	why[0] = 0;
	CHECK(query_term_parse("PatientSex=F", only_modality, NULL, &t, why, sizeof(why)) ==
	      -EOPNOTSUPP && strstr(why, "index_tags=00100040"), "not indexed: %s", why);
	CHECK(query_term_parse("Foo=F", only_modality, NULL, &t, why, sizeof(why)) == -EINVAL,
	      "bad keyword first");
	CHECK(query_term_parse("PatientSex=%z", only_modality, NULL, &t, why, sizeof(why)) ==
	      -EINVAL, "bad escape first");
	CHECK(query_term_parse("ModalitiesInStudy=CT", only_modality, NULL, &t, why,
			       sizeof(why)) == 0, "MIS is always there");
	query_term_free(&t);
	CHECK(query_term_parse("Modality=CT", only_modality, NULL, &t, why, sizeof(why)) == 0,
	      "indexed");
	query_term_free(&t);

	/* DA / TM / DT normalisation */
	CHECK(query_norm_dt("DA", S("20200115"), out) == 0 && strcmp(out, "20200115") == 0, "DA");
	CHECK(query_norm_dt("DA", S("2020011"), out) != 0, "short DA");
	CHECK(query_norm_dt("DA", S("2020.0115"), out) != 0, "DA with a dot");
	CHECK(query_norm_dt("TM", S("10:15"), out) == 0 && strcmp(out, "101500.000000") == 0,
	      "TM with ':'");
	CHECK(query_norm_dt("TM", S("101500.5"), out) == 0 && strcmp(out, "101500.500000") == 0,
	      "TM fraction");
	CHECK(query_norm_dt("TM", S("1015.5"), out) != 0, "fraction without seconds");
	CHECK(query_norm_dt("DT", S("2020"), out) == 0 && strcmp(out, "20200000000000.000000") == 0,
	      "DT year");
	CHECK(query_norm_dt("DT", S("20"), out) != 0, "DT too short");
	CHECK(query_norm_dt("DT", S("202001011230"), out) == 0 &&
	      strcmp(out, "20200101123000.000000") == 0, "DT minutes");

	/* DA: YYYY and YYYYMM are their periods, alone or as range ends */
	MATCH("StudyDate=2001", "20010101");
	MATCH("StudyDate=2001", "20011231");
	NOMATCH("StudyDate=2001", "20020101");
	NOMATCH("StudyDate=2001", "20001231");
	MATCH("StudyDate=200102", "20010228");
	NOMATCH("StudyDate=200102", "20010301");
	MATCH("StudyDate=2001-2002", "20021231");
	NOMATCH("StudyDate=2001-2002", "20030101");
	MATCH("StudyDate=200112-", "20011201");
	NOMATCH("StudyDate=200112-", "20011130");
	MATCH("StudyDate=-200102", "20010228");
	NOMATCH("StudyDate=-200102", "20010301");
	MATCH("StudyDate=20011231-2002", "20020615");
	BAD("StudyDate=2002-2001", -EINVAL);
	CHECK(parse("StudyDate=2001-200102", &t) == 0 && strcmp(t.lo, "20010000") == 0 &&
	      strcmp(t.hi, "20010299") == 0, "DA period ends: %s %s", t.lo, t.hi);
	query_term_free(&t);
	/* ACR-NEMA YYYY.MM.DD: stored and queried (the stored text is kept) */
	MATCH("StudyDate=19930430", "1993.04.30");
	MATCH("StudyDate=1993", "1993.04.30");
	MATCH("StudyDate=19930101-19931231", "1993.04.30");
	NOMATCH("StudyDate=19940101-", "1993.04.30");
	MATCH("StudyDate=1993.04.30", "19930430");
	NOMATCH("StudyDate=1993", "1993.4.30");
	NOMATCH("StudyDate=1993", "1993-04-30");
	CHECK(query_norm_dt("DA", S("1993.04.30"), out) == 0 && strcmp(out, "19930430") == 0,
	      "legacy DA");
	CHECK(query_norm_dt("DA", S("2001"), out) != 0, "stored DA YYYY is not a date");

	/* Empty Value Matching (PS3.4 C.2.2.2.7): "" */
	CHECK(parse("StudyDate=\"\"", &t) == 0 && t.m == QM_EMPTY, "empty value");
	query_term_free(&t);
	MATCH("StudyDate=\"\"", "");
	NOMATCH("StudyDate=\"\"", "20200101");
	MATCH("PatientName=%22%22", "");
	NOMATCH("PatientName=%22%22", "Doe");
	MATCH("SOPInstanceUID=\"\"", "");
	NOMATCH("ModalitiesInStudy=\"\"", "CT");
	NOMATCH("StudyDate=2001", "");
	NOMATCH("StudyDate=-2001", "");

	/* ranges */
	MATCH("StudyDate=20200101-20201231", "20200615");
	MATCH("StudyDate=20200101-20201231", "20200101");
	MATCH("StudyDate=20200101-20201231", "20201231");
	NOMATCH("StudyDate=20200101-20201231", "20210101");
	MATCH("StudyDate=20200201-", "20300101");
	NOMATCH("StudyDate=20200201-", "20200131");
	MATCH("StudyDate=-20191231", "19991231");
	NOMATCH("StudyDate=-20191231", "20200101");
	MATCH("StudyDate=20200115", "20200115");
	NOMATCH("StudyDate=20200115", "20200116");
	NOMATCH("StudyDate=20200115", "");
	NOMATCH("StudyDate=20200101-", "garbage");
	MATCH("StudyTime=10-11", "103000");
	MATCH("StudyTime=10-11", "110000");
	/* a high end is the end of its period (Q3) */
	MATCH("StudyTime=10-11", "115959.9");
	NOMATCH("StudyTime=10-11", "120000");
	NOMATCH("StudyTime=10-11", "095959.999999");
	MATCH("StudyTime=1030", "103000.000");
	MATCH("StudyTime=1030", "103059");
	NOMATCH("StudyTime=1030", "103100");
	MATCH("StudyTime=103000", "103000.5");
	MATCH("AcquisitionDateTime=2020-2022", "20210630120000");
	MATCH("AcquisitionDateTime=2020-2021", "20211231235959.5");
	NOMATCH("AcquisitionDateTime=2020-2021", "20220101000000");
	MATCH("AcquisitionDateTime=2021", "20210630120000");

	/* UIDs: exact, lists */
	MATCH("SOPInstanceUID=1.2.3", "1.2.3");
	NOMATCH("SOPInstanceUID=1.2.3", "1.2.34");
	MATCH("SOPInstanceUID=1.2,1.3", "1.3");
	MATCH("SOPInstanceUID=1.2\\1.3", "1.2");
	NOMATCH("SOPInstanceUID=1.2,1.3", "1.4");

	/* wildcards, case, multi-valued */
	MATCH("SeriesDescription=*T1*", "AX T1 POST");
	NOMATCH("SeriesDescription=*T1*", "AX t1 POST");
	MATCH("SeriesDescription=C? *", "CT HEAD");
	NOMATCH("SeriesDescription=C? *", "CTA HEAD");
	NOMATCH("SeriesDescription=*", "");   /* Q4: not an empty attribute */
	MATCH("SeriesDescription=", "");
	NOMATCH("SeriesDescription=x", "");
	MATCH("Modality=CT", "CT");
	NOMATCH("Modality=CT", "ct");
	MATCH("ImageType=DERIVED", "ORIGINAL\\DERIVED\\AXIAL");
	MATCH("ImageType=AX*", "ORIGINAL\\PRIMARY\\AXIAL");
	NOMATCH("ImageType=PRIMARY", "ORIGINAL\\PRIMARYX");
	CHECK(query_wild("a*b?c", S("axxbyc"), 0), "wild");
	CHECK(!query_wild("a*b?c", S("axxbc"), 0), "wild ? needs a char");
	CHECK(query_wild("**", S(""), 0), "stars match empty");
	CHECK(query_wild("A*", S("abc"), 1), "ci");

	/* IS / DS numerically */
	MATCH("SeriesNumber=7", "7");
	MATCH("SeriesNumber=7", "007");
	MATCH("SliceThickness=2.5", "2.50");
	MATCH("SliceThickness=2.5", "2.5 ");
	NOMATCH("SeriesNumber=7", "17");
	MATCH("SeriesNumber=1*", "17");

	/* PN (PS3.4): case-insensitive, the whole value or one whole group */
	MATCH("PatientName=doe*", "Doe^John");
	MATCH("PatientName=doe^john", "Doe^John");
	NOMATCH("PatientName=JOHN", "Doe^John");
	NOMATCH("PatientName=doe", "Doe^John");
	MATCH("PatientName=doe^john", "Doe^John^^^");
	MATCH("PatientName=doe^john", "Doe^John==");
	MATCH("PatientName=*mada*", "Yamada^Taro=\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e");
	MATCH("PatientName=yamada^taro", "Yamada^Taro=\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e");
	MATCH("PatientName=\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e", "Yamada^Taro=\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e");
	NOMATCH("PatientName=\xe5\xb1\xb1\xe7\x94\xb0", "Yamada^Taro=\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e");
	NOMATCH("PatientName=john", "Doe^ John ");
	NOMATCH("PatientName=jo", "Doe^John");
	NOMATCH("PatientName=doe", "");
	MATCH("PatientName=", "");
	MATCH("PatientName=*^john", "Doe^John");
	MATCH("PatientName=smith", "Jones\\Smith");   /* any value */

	/* fuzzymatching=true (Q6) */
	FMATCH("Modality=ct", "CT");
	FMATCH("Modality=Ct", "CT");
	FNOMATCH("Modality=ct", "CTA");
	FMATCH("Manufacturer=*siemens*", "SIEMENS Healthineers");
	FMATCH("Manufacturer=siemens", "Siemens");
	FNOMATCH("Manufacturer=siemens", "Siemens AG");
	FMATCH("PatientName=peter", "Peter^Hans");
	FMATCH("PatientName=peter", "Meier^Peter");
	FMATCH("PatientName=pet", "Meier^Peter");
	FMATCH("PatientName=peter", "Petersen^Anna");
	FNOMATCH("PatientName=peter", "Meier^Hans");
	FNOMATCH("PatientName=eter", "Meier^Peter");
	FMATCH("PatientName=peter meier", "Meier^Peter");
	FMATCH("PatientName=meier^p", "Meier^Peter");
	FNOMATCH("PatientName=meier^x", "Meier^Peter");
	FMATCH("PatientName=p*r", "Meier^Peter");
	FMATCH("PatientName=van", "van Gogh^Vincent");
	FMATCH("PatientName=gogh", "van Gogh^Vincent");
	FMATCH("PatientName=taro", "Yamada^Taro=\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e");
	FMATCH("PatientName=\xe5\xb1\xb1", "Yamada^Taro=\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e");
	FNOMATCH("PatientName=peter", "");
	FMATCH("PatientName=doe^john", "DOE^JOHN");
	FMATCH("ModalitiesInStudy=mr,ct", "CT");
	FMATCH("ModalitiesInStudy=c?", "CT");
	FMATCH("SeriesDescription=*t1*", "AX T1 POST");
	FMATCH("SOPInstanceUID=1.2.3", "1.2.3");       /* UI: unaffected */
	FNOMATCH("SOPInstanceUID=1.2.3", "1.2.3.4");
	FMATCH("StudyDate=2001", "20010615");          /* dates: unaffected */
	FMATCH("SeriesNumber=7", "007");
	FMATCH("StudyDate=\"\"", "");
	FNOMATCH("StudyDate=\"\"", "20010615");
	CHECK(parse("fuzzymatching=false", &t) == 0 && t.m == QM_OPT && !t.fuzzy && t.tag == 0,
	      "fuzzymatching=false");
	query_term_free(&t);
	{
		struct query_term tt[3];
		size_t n = 3;
		CHECK(parse("Modality=ct", &tt[0]) == 0 && parse("fuzzymatching=false", &tt[1]) == 0 &&
		      parse("StudyDate=2001", &tt[2]) == 0, "three terms");
		query_terms_finish(tt, &n);
		CHECK(n == 2 && !tt[0].fuzzy && !tt[1].fuzzy && tt[1].m == QM_RANGE, "false: %zu", n);
		CHECK(query_match(&tt[0], S("CT")) == 0, "not fuzzy: case-sensitive");
		query_term_free(&tt[0]);
		query_term_free(&tt[1]);
	}
	CHECK(query_is_term_name("fuzzymatching=true"), "the option is term-shaped");

	/* ModalitiesInStudy: one distinct Modality of the study */
	MATCH("ModalitiesInStudy=CT,MR", "MR");
	MATCH("ModalitiesInStudy=CT\\MR", "CT");
	NOMATCH("ModalitiesInStudy=CT,MR", "SR");
	MATCH("ModalitiesInStudy=?R", "SR");
	NOMATCH("ModalitiesInStudy=CT", "");
	MATCH("ModalitiesInStudy=", "");

	return unit_done();
}
