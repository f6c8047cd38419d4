/* unit_naming.c - naming rules: sanitizing, formats, widths, suffixes. */
#include <string.h>
#include "unit.h"
#include "naming.h"

#define S(x) x, strlen(x)

int main(void)
{
	char out[NAME_BUF];

	/* sanitize */
	name_sanitize(S("a/b\\c"), out, sizeof(out));
	CHECK_STR(out, "a_b_c");
	name_sanitize(S("  lots   of\tspace  "), out, sizeof(out));
	CHECK_STR(out, "lots of space");
	name_sanitize("x\0y\x01z", 5, out, sizeof(out));
	CHECK_STR(out, "x_y_z");
	name_sanitize(S(".."), out, sizeof(out));
	CHECK_STR(out, "_.");
	name_sanitize(S("."), out, sizeof(out));
	CHECK_STR(out, "_");
	name_sanitize(S(".hidden"), out, sizeof(out));
	CHECK_STR(out, "_hidden");
	name_sanitize(S("caf\xc3\xa9"), out, sizeof(out));
	CHECK_STR(out, "caf\xc3\xa9");
	name_sanitize(S("bad\xff\xfe"), out, sizeof(out));
	CHECK_STR(out, "bad\xef\xbf\xbd\xef\xbf\xbd");
	name_sanitize(S("c1\xc2\x85x"), out, sizeof(out)); /* C1 control NEL */
	CHECK(strchr(out, '\x85') == NULL, "C1 control kept: %s", out);
	{
		char big[1000];
		memset(big, 'a', sizeof(big));
		size_t l = name_sanitize(big, sizeof(big), out, sizeof(out));
		CHECK(l <= NAME_BASE_MAX && strlen(out) == l, "long name %zu", l);
		/* multi-byte characters are never cut in half */
		for (size_t i = 0; i < 500; i++)
			memcpy(big + 2 * i, "\xc3\xa9", 2);
		l = name_sanitize(big, sizeof(big), out, sizeof(out));
		CHECK(l % 2 == 0, "utf-8 cut at %zu", l);
	}

	/* patient */
	name_patient(S("Doe^John"), S("PID123"), out);
	CHECK_STR(out, "Doe John (PID123)");
	name_patient(S("Doe^John^^^"), S(""), out);
	CHECK_STR(out, "Doe John");
	name_patient(S(""), S("PID9"), out);
	CHECK_STR(out, "PID9");
	name_patient(S(""), S(""), out);
	CHECK_STR(out, "Unknown patient");
	name_patient(S("Yamada^Tarou=\xe5\xb1\xb1\xe7\x94\xb0"), S("J1"), out);
	CHECK_STR(out, "Yamada Tarou (J1)");
	name_patient(S("Evil/Name"), S("../x"), out);
	CHECK_STR(out, "Evil_Name (_._x)");

	/* study */
	name_study(S("20240301"), S("CT CHEST"), S("ACC123"), S("1.2.3"), out);
	CHECK_STR(out, "2024-03-01 CT CHEST (ACC123)");
	name_study(S("20240301"), S(""), S(""), S("1.2.3"), out);
	CHECK_STR(out, "2024-03-01");
	name_study(S(""), S("Head"), S(""), S("1.2.3"), out);
	CHECK_STR(out, "Head");
	name_study(S(""), S(""), S(""), S("1.2.3"), out);
	CHECK_STR(out, "Study 1.2.3");
	name_study(S("2024"), S(""), S("A1"), S("1.2.3"), out);
	CHECK_STR(out, "2024 (A1)");

	/* glob-safe (N1): no * ? [ ] from values, no leading '~' */
	name_study(S("20240301"), S("CT [contrast]?"), S("A*1"), S("1.2.3"), out);
	CHECK_STR(out, "2024-03-01 CT _contrast__ (A_1)");
	name_study(S("1993.04.30"), S(""), S("[X]"), S("1.2.3"), out);
	CHECK_STR(out, "1993-04-30 (_X_)");
	name_study(S("1993.4.30"), S(""), S(""), S("1.2.3"), out);
	CHECK_STR(out, "1993.4.30");
	name_patient(S("~root^*"), S("ID?"), out);
	CHECK_STR(out, "_root _ (ID_)");
	name_sanitize(S("~x"), out, sizeof(out));
	CHECK_STR(out, "_x");
	name_sanitize(S("a~b"), out, sizeof(out));
	CHECK_STR(out, "a~b");
	name_series(S("2"), 3, S("MR"), S("T1 [gd] *"), S("1.2"), out);
	CHECK_STR(out, "002 MR T1 _gd_ _");
	name_instance(S(""), 2, S("1.2.*"), out);
	CHECK_STR(out, "1.2._");
	{
		/* no byte of any name is a glob special */
		static const char *vals[] = { "*", "?", "[", "]", "[a-z]*", "x?y", "~" };
		for (size_t i = 0; i < sizeof(vals) / sizeof(*vals); i++) {
			name_study(S(vals[i]), S(vals[i]), S(vals[i]), S(vals[i]), out);
			CHECK(!strpbrk(out, "*?[]") && out[0] != '~', "study %s", out);
			name_patient(S(vals[i]), S(vals[i]), out);
			CHECK(!strpbrk(out, "*?[]") && out[0] != '~', "patient %s", out);
			name_series(S(vals[i]), 3, S(vals[i]), S(vals[i]), S(vals[i]), out);
			CHECK(!strpbrk(out, "*?[]") && out[0] != '~', "series %s", out);
		}
	}

	/* series */
	name_series(S("3"), 3, S("CT"), S("Axial 5mm"), S("1.2"), out);
	CHECK_STR(out, "003 CT Axial 5mm");
	name_series(S("1001"), 4, S("MR"), S(""), S("1.2"), out);
	CHECK_STR(out, "1001 MR");
	name_series(S(""), 3, S(""), S(""), S("1.2.9"), out);
	CHECK_STR(out, "Series 1.2.9");
	name_series(S("-1"), 3, S("SR"), S(""), S("1.2"), out);
	CHECK_STR(out, "-1 SR");

	/* instance */
	name_instance(S("7"), 2, S("1.2.3.4"), out);
	CHECK_STR(out, "07");
	name_instance(S(" 12 "), 2, S("1.2.3.4"), out);
	CHECK_STR(out, "12");
	name_instance(S(""), 2, S("1.2.3.4"), out);
	CHECK_STR(out, "1.2.3.4");

	/* suffix: FNV-1a 64 of the UID, first 8 hex digits */
	CHECK(name_fnv1a(S("")) == 0xcbf29ce484222325ull, "fnv empty");
	CHECK(name_fnv1a(S("a")) == 0xaf63dc4c8601ec8cull, "fnv a");
	strcpy(out, "003 CT");
	name_add_suffix(out, S("a"));
	CHECK_STR(out, "003 CT ~af63dc4c");

	/* widths */
	CHECK(name_digits(0) == 1 && name_digits(9) == 1 && name_digits(10) == 2 &&
	      name_digits(1000) == 4, "digits");
	long long v;
	CHECK(name_parse_int(S("+12"), &v) && v == 12, "parse +12");
	CHECK(!name_parse_int(S("1.5"), &v), "parse 1.5");
	CHECK(!name_parse_int(S(""), &v), "parse empty");
	return unit_done();
}
