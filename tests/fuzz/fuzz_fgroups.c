/*
 * fuzz_fgroups - the frame table and CSA header readers of
 * index/dicom/fgroups.c on arbitrary bytes: fg_csa_doubles() (a Siemens
 * CSA header, as found in (0029,xx10)), and fg_head_get() + fg_frame() of
 * every frame (a frame table as stored in an index record, which a corrupt
 * index could hold: F2). fg_collect() itself runs on every header
 * fuzz_header parses (scan.c's frame_table()).
 */

#include <math.h>
#include <stdio.h>
#include "fgroups.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static const char *names[] = { "NumberOfImagesInMosaic", "SliceNormalVector",
				       "ImaRelTablePosition", "" };
	double v[4];
	volatile double sink = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int k = fg_csa_doubles(d, n, names[i], v, 4);
		if (k < 0 || k > 4)
			__builtin_trap();
		for (int j = 0; j < k; j++)
			sink += v[j];
	}
	struct fg_head h;
	if (fg_head_get(d, n, &h) == 0) {
		struct fg_frame f;
		for (uint32_t i = 0; i < h.nframes; i++) {
			fg_frame(d, n, &h, i, &f);
			sink += f.pos[0];
		}
	}
	(void)sink;
	return 0;
}
