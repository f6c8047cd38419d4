/*
 * fuzz_json - <instance>.json from untrusted bytes: dcmwalk_header() then
 * dcmjson_build() (GDCM through dcmshim_walk, the JSON emitter, the Pixel
 * Data element read from the file descriptor), with and without a name.
 * Invariants checked: the output is one JSON object ending in "}\n"; the
 * named length is the unnamed one plus nbulk * name bytes; the C header
 * walker (dcmelem.h, taken where it handles the input) and GDCM forced
 * (DCMJSON_WALK_GDCM) give the same return code and the same bytes.
 */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "dcmjson.h"
#include "dcmshim.h"
#include "dcmwalk.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static int mfd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct dcmwalk_result w;
	struct dcmjson_out a = { 0 }, b = { 0 }, g = { 0 };
	static const char name[] = "x y\"\\.dcm";

	if (mfd < 0) {
		dcmshim_init();
		mfd = memfd_create("fuzz_json", MFD_CLOEXEC);
		if (mfd < 0)
			abort();
	}
	if (ftruncate(mfd, 0) || (n && pwrite(mfd, d, n, 0) != (ssize_t)n))
		abort();
	if (dcmwalk_header(d, n, n, &w) != 0)
		return 0;
	if (w.header_end > n)
		abort();  /* contract: the header is inside the file */
	dcmjson_set_walker(DCMJSON_WALK_AUTO);
	int ra = dcmjson_build(d, n, n, &w, mfd, NULL, 0, &a);
	int rb = dcmjson_build(d, n, n, &w, mfd, name, sizeof(name) - 1, &b);
	if (ra != rb)
		abort();
	if (a.c_walk) {
		/* the C walker took it: GDCM must give the very same answer */
		dcmjson_set_walker(DCMJSON_WALK_GDCM);
		int rg = dcmjson_build(d, n, n, &w, mfd, NULL, 0, &g);
		dcmjson_set_walker(DCMJSON_WALK_AUTO);
		if (rg != ra || g.len != a.len || (a.len && memcmp(a.buf, g.buf, a.len)) ||
		    g.nbulk != a.nbulk || g.partial != a.partial ||
		    g.charset_warn != a.charset_warn)
			abort();
		dcmjson_release(&g);
	}
	if (ra == 0) {
		if (a.len < 3 || a.buf[0] != '{' || memcmp(a.buf + a.len - 2, "}\n", 2))
			abort();
		if (b.len != a.len + a.nbulk * dcmjson_name_bytes(name, sizeof(name) - 1))
			abort();
	}
	dcmjson_release(&a);
	dcmjson_release(&b);
	return 0;
}
