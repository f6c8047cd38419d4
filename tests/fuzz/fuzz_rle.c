/*
 * fuzz_rle - px_rle_decode() (index/dicom/pixels.c, RLE Lossless in C) on
 * attribute combinations from the first FZ_HDR bytes (fuzz_rec.h) and an
 * encapsulated item stream: the rest of the input as it is (byte 12 odd),
 * or split into one fragment per frame after an empty offset table, so
 * the fuzzer spends its time on RLE headers and PackBits runs.
 */

#include <stdio.h>
#include <stdlib.h>
#include "fuzz_px.h"
#include "fuzz_rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

static void put_item(uint8_t *p, uint32_t l)
{
	p[0] = 0xFE; p[1] = 0xFF; p[2] = 0x00; p[3] = 0xE0;
	p[4] = (uint8_t)l; p[5] = (uint8_t)(l >> 8); p[6] = (uint8_t)(l >> 16);
	p[7] = (uint8_t)(l >> 24);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct rec_buf rec;
	struct rec_head h;
	struct px_info pi;
	const char *why;

	if (n < FZ_HDR + 1)
		return 0;
	fz_record(d, n, &rec, &h, 1);
	if (px_info_from_record(rec.data, rec.len, &h, &pi, &why))
		return 0;
	if (pi.data_len > FUZZ_PX_MAX || !pi.encapsulated)
		return 0;
	const uint8_t *body = d + FZ_HDR + 1;
	size_t blen = n - FZ_HDR - 1;
	uint8_t *items = NULL;
	size_t ilen = blen;
	if (!(d[FZ_HDR] & 1)) {
		/* BOT + one fragment per frame (+ a sequence delimiter) */
		uint32_t nf = pi.frames ? pi.frames : 1;
		items = malloc(blen + 8 * (nf + 2));
		if (!items)
			return 0;
		size_t o = 0, per = blen / nf, at = 0;
		put_item(items, 0);
		o = 8;
		for (uint32_t f = 0; f < nf; f++) {
			size_t l = f + 1 == nf ? blen - at : per;
			put_item(items + o, (uint32_t)l);
			memcpy(items + o + 8, body + at, l);
			o += 8 + l;
			at += l;
		}
		items[o] = 0xFE; items[o + 1] = 0xFF; items[o + 2] = 0xDD; items[o + 3] = 0xE0;
		memset(items + o + 4, 0, 4);
		ilen = o + 8;
		body = items;
	}
	unsigned char *out = malloc((size_t)pi.data_len);
	if (out && px_rle_decode(&pi, body, ilen, out, &why) == 0)
		fz_png(&pi, rec.data, rec.len, out);
	free(out);
	free(items);
	return 0;
}
