/*
 * fuzz_palette - PALETTE COLOR tables (index/dicom/palette.c): px_lut_build
 * on a descriptor and plain or segmented LUT data, then px_lut_apply on
 * index values, all from the input:
 *   byte 0     bit 0 segmented, bit 1 big-endian, bit 2 signed first value
 *              (PixelRepresentation 1), bit 3 16-bit indices, bit 4 signed
 *              indices
 *   bytes 1-6  the descriptor (3 x 16 bits)
 *   bytes 7-8  L, the LUT data length (little-endian)
 *   L bytes    LUT data (the same for red, green and blue; byte 9 + L of
 *              the input, when present, shortens blue's by 2: the tables
 *              then differ)
 *   rest       index values
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "palette.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct px_lut lut[3];
	if (n < 9)
		return 0;
	int seg = d[0] & 1, be = (d[0] >> 1) & 1, sign = (d[0] >> 2) & 1;
	uint32_t bytes = d[0] & 8 ? 2 : 1;
	int isig = (d[0] >> 4) & 1;
	size_t l = (size_t)d[7] | (size_t)d[8] << 8;
	if (l > n - 9)
		return 0;
	/* own allocations: ASan sees reads past the ends */
	uint8_t *desc = malloc(6), *data = malloc(l ? l : 1);
	size_t ni = (n - 9 - l) / bytes;
	uint8_t *idx = malloc(ni * bytes + 1);
	uint16_t *out = malloc(ni * 3 * sizeof(uint16_t) + 1);
	const char *why = NULL;
	if (desc && data && idx && out) {
		memcpy(desc, d + 1, 6);
		memcpy(data, d + 9, l);
		memcpy(idx, d + 9 + l, ni * bytes);
		int ok = 1;
		for (int c = 0; c < 3 && ok; c++) {
			size_t dl = c == 2 && ni && (d[9 + l] & 1) && l >= 2 ? l - 2 : l;
			ok = px_lut_build(desc, 6, data, dl, seg, be, sign, &lut[c], &why) == 0;
		}
		if (ok) {
			const struct px_lut *l3[3] = { &lut[0], &lut[1], &lut[2] };
			(void)px_lut_apply(l3, idx, bytes, isig, ni, out, &why);
		}
	}
	free(desc);
	free(data);
	free(idx);
	free(out);
	return 0;
}
