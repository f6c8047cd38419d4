/* unit_json.c - number formatting, base64, names, and one small data set
 * through dcmjson_build() (index/dicom/dcmjson.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "unit.h"
#include "dcmjson.h"
#include "dcmshim.h"
#include "dcmwalk.h"

static const char *d(double v)
{
	static char b[40];
	b[dcmjson_fmt_double(v, b)] = 0;
	return b;
}

static const char *fl(float v)
{
	static char b[40];
	b[dcmjson_fmt_float(v, b)] = 0;
	return b;
}

static const char *is(const char *s)
{
	static char b[40];
	size_t n = dcmjson_is(s, strlen(s), b);
	b[n] = 0;
	return n ? b : "-";
}

static const char *ds(const char *s)
{
	static char b[40];
	size_t n = dcmjson_ds(s, strlen(s), b);
	b[n] = 0;
	return n ? b : "-";
}

static const char *b64(const char *s, size_t n)
{
	static char b[64];
	b[dcmjson_base64((const uint8_t *)s, n, b)] = 0;
	return b;
}

/* append an explicit VR little endian element */
static size_t el(uint8_t *p, uint16_t g, uint16_t e, const char *vr,
		 const void *v, uint32_t n)
{
	size_t o = 0;
	p[o++] = (uint8_t)g; p[o++] = (uint8_t)(g >> 8);
	p[o++] = (uint8_t)e; p[o++] = (uint8_t)(e >> 8);
	p[o++] = (uint8_t)vr[0]; p[o++] = (uint8_t)vr[1];
	if (!strcmp(vr, "OB") || !strcmp(vr, "UN") || !strcmp(vr, "UT")) {
		p[o++] = 0; p[o++] = 0;
		for (int i = 0; i < 4; i++)
			p[o++] = (uint8_t)(n >> (8 * i));
	} else {
		p[o++] = (uint8_t)n; p[o++] = (uint8_t)(n >> 8);
	}
	memcpy(p + o, v, n);
	return o + n;
}

int main(void)
{
	CHECK_STR(d(0.1), "0.1");
	CHECK_STR(d(1.0), "1");
	CHECK_STR(d(-2.5), "-2.5");
	CHECK_STR(d(1e300), "1e+300");
	CHECK_STR(d(1e16), "1e+16");
	CHECK_STR(d(123456789012345.0), "123456789012345");
	CHECK_STR(d(0.0001), "0.0001");
	CHECK_STR(d(0.00001), "1e-05");
	CHECK_STR(d(-0.0), "-0.0");
	CHECK_STR(d(0.0), "0");
	CHECK_STR(fl(1e-7f), "1e-07");
	CHECK_STR(d(0.30000000000000004), "0.30000000000000004");
	CHECK_STR(d(1.0 / 0.0), "\"Infinity\"");
	CHECK_STR(fl(0.1f), "0.1");
	CHECK_STR(fl(3.14159274f), "3.1415927");
	CHECK_STR(is("42"), "42");
	CHECK_STR(is("+0007"), "7");
	CHECK_STR(is("-0"), "0");
	CHECK_STR(is("-12"), "-12");
	CHECK_STR(is("1.0"), "-");
	CHECK_STR(is("abc"), "-");
	CHECK_STR(is("99999999999999999999"), "-");
	CHECK_STR(ds("1.50"), "1.5");
	CHECK_STR(ds("-.5"), "-0.5");
	CHECK_STR(ds("1e3"), "1000");
	CHECK_STR(ds("5."), "5");
	CHECK_STR(ds("1e999"), "-");
	CHECK_STR(ds("NaN"), "-");
	CHECK_STR(ds("1,5"), "-");
	CHECK_STR(ds("0.0"), "0");
	CHECK_STR(ds("-0"), "-0.0");
	CHECK_STR(ds("00012.3400"), "12.34");
	CHECK_STR(ds("1200"), "1200");
	CHECK_STR(ds("0.00012"), "0.00012");
	CHECK_STR(ds("0.000012"), "1.2e-05");
	CHECK_STR(ds("+7"), "7");
	CHECK_STR(ds("."), "-");
	CHECK_STR(ds("-"), "-");
	{
		/* the shortcut for plain decimals (J3) gives what the general
		 * path gives: random digit strings of every shape */
		static const char alpha[] = "0123456789000.-+";
		unsigned long long x = 88172645463325252ULL;
		int diff = 0, fast = 0;
		for (int k = 0; k < 300000 && diff < 5; k++) {
			char in[24], a[40], b[40];
			x ^= x << 13; x ^= x >> 7; x ^= x << 17;
			size_t n = 1 + x % 20;
			for (size_t i = 0; i < n; i++) {
				x ^= x << 13; x ^= x >> 7; x ^= x << 17;
				in[i] = alpha[x % (sizeof(alpha) - 1)];
			}
			size_t la = dcmjson_ds(in, n, a), lb = dcmjson_ds_general(in, n, b);
			fast += la != 0;
			if (la != lb || memcmp(a, b, la)) {
				diff++;
				printf("DS %.*s: %.*s vs general %.*s\n", (int)n, in, (int)la, a,
				       (int)lb, b);
			}
		}
		CHECK(diff == 0, "DS shortcut differs");
		CHECK(fast > 1000, "DS shortcut taken %d times", fast);
	}
	CHECK_STR(ds("."), "-");
	CHECK_STR(b64("", 0), "");
	CHECK_STR(b64("f", 1), "Zg==");
	CHECK_STR(b64("fo", 2), "Zm8=");
	CHECK_STR(b64("foo", 3), "Zm9v");
	CHECK_STR(b64("foobar", 6), "Zm9vYmFy");
	CHECK(dcmjson_name_bytes("0001", 4) == 4, "plain name");
	CHECK(dcmjson_name_bytes("01 ~ab", 6) == 8, "space is %%20");
	CHECK(dcmjson_name_bytes("\xc3\xa9", 2) == 6, "UTF-8 bytes encoded");

	/* a small data set: Explicit VR Little Endian, no meta */
	static uint8_t f[8192];
	size_t n = 0;
	uint16_t us[2] = { 512, 7 };
	uint8_t at[4] = { 0x08, 0x00, 0x20, 0x00 };
	uint8_t big[2000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	n += el(f + n, 0x0008, 0x0005, "CS", "ISO_IR 100", 10);
	n += el(f + n, 0x0008, 0x0016, "UI", "1.2.3\0", 6);
	n += el(f + n, 0x0008, 0x0060, "CS", "MR", 2);
	n += el(f + n, 0x0009, 0x0010, "LO", "ACME", 4);
	n += el(f + n, 0x0009, 0x1001, "OB", big, sizeof(big));
	n += el(f + n, 0x0010, 0x0010, "PN", "M\xfcller^Hans=Y\\Doe", 18);
	n += el(f + n, 0x0018, 0x0050, "DS", "2.50\\x.y", 8);
	n += el(f + n, 0x0020, 0x0013, "IS", "7 ", 2);
	n += el(f + n, 0x0020, 0x5000, "AT", at, 4);
	n += el(f + n, 0x0028, 0x0010, "US", us, 4);
	n += el(f + n, 0x0040, 0x0001, "AE", "", 0);
	n += el(f + n, 0x0040, 0x0002, "LT", " a\"b\n ", 6);
	struct dcmwalk_result w;
	int rc = dcmwalk_header(f, n, n, &w);
	CHECK(rc == 0, "dcmwalk: %d", rc);
	dcmshim_init();
	struct dcmjson_out o = { 0 }, o2 = { 0 };
	rc = dcmjson_build(f, n, n, &w, -1, NULL, 0, &o);
	CHECK(rc == 0, "build: %d", rc);
	rc = dcmjson_build(f, n, n, &w, -1, "01 x", 4, &o2);
	CHECK(rc == 0, "build with name: %d", rc);
	CHECK(o.nbulk == 1, "nbulk %llu", (unsigned long long)o.nbulk);
	CHECK(o2.len == o.len + o.nbulk * dcmjson_name_bytes("01 x", 4),
	      "length with name %zu vs %zu", o2.len, o.len);
	char *s = malloc(o2.len + 1);
	memcpy(s, o2.buf, o2.len);
	s[o2.len] = 0;
	const char *want =
		"{\"00080005\":{\"vr\":\"CS\",\"Value\":[\"ISO_IR 100\"]},"
		"\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.3\"]},"
		"\"00080060\":{\"vr\":\"CS\",\"Value\":[\"MR\"]},"
		"\"00090010\":{\"vr\":\"LO\",\"Value\":[\"ACME\"]},"
		"\"00091001\":{\"vr\":\"OB\",\"BulkDataURI\":\"01%20x.dcm?offset=";
	CHECK(strncmp(s, want, strlen(want)) == 0, "json start: %.400s", s);
	CHECK(strstr(s, "&length=2000\"}") != NULL, "bulk length: %s", s);
	CHECK(strstr(s, "\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"M\xc3\xbcller^Hans\","
		     "\"Ideographic\":\"Y\"},{\"Alphabetic\":\"Doe\"}]}") != NULL, "PN: %s", s);
	CHECK(strstr(s, "\"00180050\":{\"vr\":\"DS\",\"Value\":[2.5,\"x.y\"]}") != NULL, "DS: %s", s);
	CHECK(strstr(s, "\"00200013\":{\"vr\":\"IS\",\"Value\":[7]}") != NULL, "IS: %s", s);
	CHECK(strstr(s, "\"00205000\":{\"vr\":\"AT\",\"Value\":[\"00080020\"]}") != NULL, "AT: %s", s);
	CHECK(strstr(s, "\"00280010\":{\"vr\":\"US\",\"Value\":[512,7]}") != NULL, "US: %s", s);
	CHECK(strstr(s, "\"00400001\":{\"vr\":\"AE\"}") != NULL, "empty AE: %s", s);
	CHECK(strstr(s, "\"00400002\":{\"vr\":\"LT\",\"Value\":[\" a\\\"b\\n\"]}}\n") != NULL,
	      "LT: %s", s);
	/* the bulk offset names the OB value bytes */
	const char *q = strstr(s, "offset=");
	if (q) {
		long off = strtol(q + 7, NULL, 10);
		CHECK(off > 0 && off + 2000 <= (long)n && !memcmp(f + off, big, 2000),
		      "offset %ld", off);
	}
	free(s);
	dcmjson_release(&o);
	dcmjson_release(&o2);
	return unit_done();
}
