/*
 * fuzz_pixels - the .npy / .png generators of index/dicom/pixels.c on attribute
 * combinations and pixel bytes chosen by the fuzzer (structured input, so
 * every branch is reachable without a whole DICOM file):
 *   bytes 0..11  Rows, Columns, NumberOfFrames, SamplesPerPixel,
 *                BitsAllocated, BitsStored, HighBit, PixelRepresentation +
 *                PlanarConfiguration, PhotometricInterpretation, flags
 *                (big endian, float tag, encapsulated), window
 *   byte 12      how the "decoded" buffer given to px_normalize differs
 *   rest         the source pixel bytes (native) or the decoded buffer
 * The record goes through px_info_from_record() like an indexed one.
 */

#include <stdio.h>
#include "fuzz_px.h"
#include "fuzz_rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct rec_buf rec;
	struct rec_head h;
	struct px_info pi;
	const char *why;

	if (n < FZ_HDR + 1)
		return 0;
	fz_record(d, n, &rec, &h, 0);
	if (px_info_from_record(rec.data, rec.len, &h, &pi, &why))
		return 0;
	fz_pixels(&pi, d, n, rec.data, rec.len);

	/* a decoded buffer (what GDCM would return) through px_normalize */
	if (pi.data_len > FUZZ_PX_MAX)
		return 0;
	uint8_t m = d[FZ_HDR];
	static const int photos[4] = { 0, PX_YBR_FULL, PX_YBR_FULL_422, PX_RGB };
	static const uint32_t bits[4] = { 0, 8, 16, 1 };
	struct px_decoded dec = {
		.rows = pi.rows + ((m >> 3) & 1), .cols = pi.cols, .frames = pi.frames,
		.spp = (m & 64) ? 3 : pi.spp,
		.bits_alloc = bits[(m >> 4) & 3] ? bits[(m >> 4) & 3] : pi.bits_alloc,
		.pixrep = pi.pixrep, .planar = (m >> 2) & 1, .photo = photos[m & 3],
		.is_float = pi.is_float,
		.data = d + FZ_HDR + 1, .len = n - FZ_HDR - 1,
	};
	if (pi.photo == PX_PALETTE && (m & 128))
		dec.spp = 3;
	unsigned char *out = malloc(pi.data_len ? (size_t)pi.data_len : 1);
	if (!out)
		return 0;
	if (px_normalize(&pi, &dec, out, &why) == 0)
		fz_png(&pi, rec.data, rec.len, out);
	free(out);
	return 0;
}
