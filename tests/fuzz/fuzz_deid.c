/*
 * fuzz_deid - anon/'s de-identification of one untrusted header
 * (index/dicom/deid.h): deid_header on the bytes as a file prefix, with two
 * keys, whose outputs must be equally long (D3: the size at getattr does
 * not depend on the key) and, when accepted, walk as DICOM (dcmwalk); then
 * the value rules on the bytes as a date, a date-time and a UID.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dcmwalk.h"
#include "deid.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static const struct deid_key ka = { { 1, 2, 3 } }, kb = { { 7, 7, 7 } };
	struct deid_patient pa, pb;
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	deid_patient(&ka, (const char *)d, n < 16 ? n : 16, &pa);
	deid_patient(&kb, (const char *)d, n < 16 ? n : 16, &pb);
	int ra = deid_header(&ka, &pa, d, n, &a);
	int rb = deid_header(&kb, &pb, d, n, &b);
	if (ra != rb || (ra == 0 && a.len != b.len))
		abort();   /* (D3) */
	if (ra == 0) {
		struct dcmwalk_result r;
		int w = dcmwalk_header((const uint8_t *)a.buf, a.len, a.len, &r);
		(void)w;   /* dcmwalk's rules are stricter than a rewrite's: no verdict */
	}
	static const uint32_t tags[] = { 0x00080020, 0x0008002A, 0x00080018, 0x00100010,
					  0x00080080, 0x00091001 };
	static const char *const vrs[] = { "DA", "DT", "UI", "PN", "LO", "LO" };
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		int x = deid_text(&ka, &pa, tags[i], vrs[i], (const char *)d, n, &a);
		size_t la = a.len;
		int y = deid_text(&kb, &pb, tags[i], vrs[i], (const char *)d, n, &b);
		if (x != y || (x == 1 && la != b.len))
			abort();   /* (D3) for values too */
	}
	strbuf_release(&a);
	strbuf_release(&b);
	return 0;
}
