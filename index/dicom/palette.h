/*
 * palette.h - PALETTE COLOR lookup, in plain C (issue 12: GDCM's
 * ImageApplyLookupTable scales 16-bit entries down to 8 bits on some files).
 *
 * The .npy of a PALETTE COLOR image holds the LUT entries themselves, as
 * pydicom's apply_color_lut gives them:
 * (L1) Descriptor (0028,1101..1103): entries (0 means 65536), first mapped
 *      value (signed when PixelRepresentation is 1), nominal bits.
 * (L2) Plain LUT Data (0028,1201..1203): bytes per entry = data length /
 *      entries, which must be 1 or 2 (8-bit entries in 16-bit words are
 *      words: their values are served).
 * (L3) Segmented LUT Data (0028,1221..1223), PS3.3 C.7.9.2: words (bytes
 *      when the nominal bits are 8) holding discrete, linear and indirect
 *      segments; linear segments are interpolated as pydicom does
 *      (numpy.linspace from y0 + step to y1, rounded half to even).
 *      Indirect segments nest at most PX_LUT_MAX_DEPTH deep; a table never
 *      grows past 65536 entries.
 * (L4) A value below the first mapped value takes entry 0, one beyond the
 *      table the last entry. (pydicom 2.3 computes the index in the LUT's
 *      own integer type, which wraps for 16-bit values with an 8-bit
 *      table; here the index is never wrapped.)
 * (L5) The three tables must have the same number of entries, at least the
 *      descriptor's. An Alpha table is ignored (the .npy is RGB).
 *
 * Pure functions; errors: 0 or negative (error.h) with *why static text.
 */
#ifndef DICOMFS_PALETTE_H
#define DICOMFS_PALETTE_H
#include <stddef.h>
#include <stdint.h>

#define PX_LUT_MAX 65536
#define PX_LUT_MAX_DEPTH 8

struct px_lut {
	uint32_t n;             /* entries used (descriptor, L1) */
	int32_t first;          /* first mapped value */
	uint32_t len;           /* entries in v (>= n) */
	uint16_t v[PX_LUT_MAX];
};

/*
 * One channel's table from its descriptor value (6 bytes) and its plain or
 * segmented data (segmented != 0). be: the words are big-endian; sign:
 * PixelRepresentation (the first mapped value is signed).
 */
int px_lut_build(const uint8_t *desc, size_t desc_len, const uint8_t *data,
		 size_t data_len, int segmented, int be, int sign,
		 struct px_lut *lut, const char **why);

/*
 * RGB (interleaved, uint16) of npix index values idx (bytes 1 or 2 per
 * value, little-endian, already masked/sign-extended; is_signed: int8/16).
 */
int px_lut_apply(const struct px_lut *lut[3], const void *idx, uint32_t bytes,
		 int is_signed, uint64_t npix, uint16_t *out, const char **why);

#endif
