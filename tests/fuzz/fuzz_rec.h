/*
 * fuzz_rec.h - an index record built from the first FZ_HDR fuzzer bytes
 * (see fuzz_pixels.c): attributes as decimal text, as scan.c stores them.
 */
#ifndef DICOMFS_FUZZ_REC_H
#define DICOMFS_FUZZ_REC_H
#include <stdio.h>
#include <string.h>
#include "record.h"

#define FZ_HDR 12

static void fz_num(struct rec_buf *r, uint32_t tag, const char vr[2], long long v)
{
	char b[32];
	int l = snprintf(b, sizeof(b), "%lld", v);
	rec_add(r, tag, vr, b, (size_t)l);
}

/* encap: force encapsulated (RLE harness) */
static void fz_record(const uint8_t *d, size_t n, struct rec_buf *rec,
		      struct rec_head *h, int encap)
{
	static const char *const photos[] = {
		"MONOCHROME2", "MONOCHROME1", "RGB", "YBR_FULL", "YBR_FULL_422",
		"PALETTE COLOR", "YBR_ICT", "YBR_RCT", "HSV", NULL };
	static const uint32_t bits[] = { 8, 16, 1, 32, 64, 12, 0, 24 };
	static const uint32_t spps[] = { 1, 3, 1, 3, 2, 4, 0, 3 };
	uint8_t fl = d[10];

	memset(h, 0, sizeof(*h));
	h->version = REC_VERSION;
	h->status = REC_OK;
	h->size = n;
	h->pixel_tag = (fl & 6) == 2 ? 0x7FE00008 : (fl & 6) == 4 ? 0x7FE00009 : 0x7FE00010;
	h->flags = RECF_EXPLICIT_VR | ((fl & 1) ? RECF_BIG_ENDIAN : 0) |
		   ((encap || (fl & 8)) ? RECF_ENCAPSULATED : 0) |
		   ((fl & 16) ? RECF_DEFLATED : 0);
	h->pixel_offset = FZ_HDR + 1;
	h->pixel_length = n - FZ_HDR - 1;
	rec_begin(rec, h);
	fz_num(rec, 0x00280002, "US", spps[d[3] & 7]);
	if (!(fl & 32)) {
		static const char p422[] = "YBR_FULL_422";
		const char *p = photos[d[8] % 10];
		if (p)
			rec_add(rec, 0x00280004, "CS", p, strlen(p));
		else
			rec_add(rec, 0x00280004, "CS", p422, 0);
	}
	fz_num(rec, 0x00280006, "US", (d[7] >> 1) & 1);
	if (d[2] > 1)
		fz_num(rec, 0x00280008, "IS", 1 + d[2] % 5);
	fz_num(rec, 0x00280010, "US", 1 + d[0] % 40);
	fz_num(rec, 0x00280011, "US", 1 + d[1] % 40);
	if (!(fl & 64) || (d[4] & 8))
		fz_num(rec, 0x00280100, "US", bits[d[4] & 7]);
	if (d[5])
		fz_num(rec, 0x00280101, "US", d[5] % 65);
	if (d[6] != 0xff)
		fz_num(rec, 0x00280102, "US", d[6] % 65);
	fz_num(rec, 0x00280103, "US", d[7] & 1);
	if (fl & 128) {
		fz_num(rec, 0x00281050, "DS", (int8_t)d[9] * 37);
		fz_num(rec, 0x00281051, "DS", (int8_t)d[11] * 3);
		fz_num(rec, 0x00281053, "DS", (d[11] & 7) - 2);
	}
	memcpy(h, rec->data, sizeof(*h));
}
#endif
