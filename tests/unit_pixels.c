/* unit_pixels.c - .npy header, pixel conversions, native reads, PNG writer. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "unit.h"
#include "error.h"
#include "pixels.h"
#include "record.h"

struct kv { uint32_t tag; const char *vr, *val; };

/* a record with the given attributes; pixel data at offset 0x100 */
static struct rec_buf mkrec(const struct kv *a, uint8_t flags, uint64_t plen,
			    uint32_t ptag, struct rec_head *h)
{
	struct rec_buf b = { 0 };
	memset(h, 0, sizeof(*h));
	h->version = REC_VERSION;
	h->flags = flags;
	h->pixel_tag = ptag;
	h->pixel_offset = 0x100;
	h->pixel_length = plen;
	rec_begin(&b, h);
	for (; a && a->tag; a++)
		rec_add(&b, a->tag, a->vr, a->val, strlen(a->val));
	memcpy(h, b.data, sizeof(*h));
	return b;
}

static int info(const struct kv *a, uint8_t flags, uint64_t plen, uint32_t ptag,
		struct px_info *pi)
{
	struct rec_head h;
	struct rec_buf b = mkrec(a, flags, plen, ptag, &h);
	int rc = px_info_from_record(b.data, b.len, &h, pi, NULL);
	rec_release(&b);
	return rc;
}

struct mem { const unsigned char *p; size_t len; int calls; };

static int mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct mem *m = ctx;
	m->calls++;
	if (off + len > m->len)
		return -EIO;
	memcpy(buf, m->p + off, len);
	return 0;
}

/* every (off, len) window of the data equals the same bytes of a full read */
static void check_windows(const struct px_info *pi, struct mem *m, const char *what)
{
	struct px_scratch s = { 0 };
	unsigned char *full = malloc(pi->data_len), *part = malloc(pi->data_len);
	int rc = px_native_read(pi, mem_pread, m, full, 0, pi->data_len, &s), bad = 0;
	CHECK(rc == 0, "%s: full read %d", what, rc);
	for (uint64_t off = 0; off < pi->data_len && !bad; off += 3)
		for (size_t len = 1; off + len <= pi->data_len && len < 40 && !bad; len += 7) {
			memset(part, 0xAA, len);
			rc = px_native_read(pi, mem_pread, m, part, off, len, &s);
			if (rc || memcmp(part, full + off, len))
				bad = 1;
		}
	CHECK(!bad, "%s: partial reads differ from the full read", what);
	px_scratch_free(&s);
	free(full);
	free(part);
}

#define MONO(rows, cols, ba, bs, pr) \
	{ 0x00280002, "US", "1" }, { 0x00280004, "CS", "MONOCHROME2" }, \
	{ 0x00280010, "US", rows }, { 0x00280011, "US", cols }, \
	{ 0x00280100, "US", ba }, { 0x00280101, "US", bs }, \
	{ 0x00280103, "US", pr }

int main(void)
{
	struct px_info pi;
	int rc;

	/* checksums against the reference values */
	CHECK(px_crc32(0, "123456789", 9) == 0xCBF43926u, "crc32");
	CHECK(px_adler32(1, "Wikipedia", 9) == 0x11E60398u, "adler32");

	/* ---- header ---- */
	{
		struct kv a[] = { MONO("2", "3", "16", "12", "1"),
				  { 0x00280102, "US", "11" }, { 0 } };
		rc = info(a, RECF_EXPLICIT_VR, 12, 0x7FE00010, &pi);
		CHECK(rc == 0, "info %d", rc);
		CHECK_STR(pi.descr, "<i2");
		CHECK(pi.hdr_len % 64 == 0 && pi.hdr_len >= 64, "hdr_len %u", pi.hdr_len);
		CHECK(memcmp(pi.hdr, "\x93NUMPY\x01\x00", 8) == 0, "magic");
		CHECK(pi.hdr[8] + 256 * pi.hdr[9] == (int)pi.hdr_len - 10, "header length field");
		CHECK(pi.hdr[pi.hdr_len - 1] == '\n', "header ends in newline");
		CHECK(strstr(pi.hdr + 10, "'shape': (2, 3), }") != NULL, "shape 2-d: %.80s", pi.hdr + 10);
		CHECK(pi.data_len == 12 && pi.native && !pi.identity && pi.nbits == 12,
		      "data_len %llu native %d identity %d", (unsigned long long)pi.data_len,
		      pi.native, pi.identity);
	}
	{
		struct kv a[] = { { 0x00280002, "US", "3" }, { 0x00280004, "CS", "RGB" },
				  { 0x00280006, "US", "1" }, { 0x00280008, "IS", "4" },
				  { 0x00280010, "US", "5" }, { 0x00280011, "US", "7" },
				  { 0x00280100, "US", "8" }, { 0 } };
		rc = info(a, RECF_ENCAPSULATED, 0, 0x7FE00010, &pi);
		CHECK(rc == 0 && !pi.native, "rgb info %d", rc);
		CHECK(strstr(pi.hdr + 10, "'descr': '|u1'") && strstr(pi.hdr + 10, "'shape': (4, 5, 7, 3), }"),
		      "rgb header %.80s", pi.hdr + 10);
		CHECK(pi.data_len == 4 * 5 * 7 * 3, "rgb data_len");
	}
	{
		struct kv a[] = { { 0x00280010, "US", "4" }, { 0x00280011, "US", "4" }, { 0 } };
		rc = info(a, 0, 128, 0x7FE00009, &pi);
		CHECK(rc == 0, "double float %d", rc);
		CHECK_STR(pi.descr, "<f8");
		CHECK(pi.identity, "LE double is served as stored");
	}
	/* ---- knowably unservable ---- */
	{
		struct kv no_rows[] = { { 0x00280011, "US", "4" }, { 0x00280100, "US", "8" }, { 0 } };
		CHECK(info(no_rows, 0, 100, 0x7FE00010, &pi) < 0, "missing Rows accepted");
		struct kv ba12[] = { MONO("4", "4", "12", "12", "0"), { 0 } };
		CHECK(info(ba12, 0, 100, 0x7FE00010, &pi) < 0, "BitsAllocated 12 accepted");
		struct kv spp2[] = { MONO("4", "4", "8", "8", "0"), { 0x00280002, "US", "2" }, { 0 } };
		/* rec_attr finds the first SamplesPerPixel (1): use a fresh list */
		struct kv spp2b[] = { { 0x00280002, "US", "2" }, { 0x00280004, "CS", "RGB" },
				      { 0x00280010, "US", "4" }, { 0x00280011, "US", "4" },
				      { 0x00280100, "US", "8" }, { 0 } };
		(void)spp2;
		CHECK(info(spp2b, 0, 100, 0x7FE00010, &pi) < 0, "SamplesPerPixel 2 accepted");
		struct kv huge[] = { MONO("65535", "65535", "32", "32", "0"),
				     { 0x00280008, "IS", "2147483647" }, { 0 } };
		CHECK(info(huge, RECF_ENCAPSULATED, 100, 0x7FE00010, &pi) == DFS_ETOOBIG,
		      "absurd size accepted");
		struct kv badnf[] = { MONO("4", "4", "8", "8", "0"), { 0x00280008, "IS", "1A" }, { 0 } };
		CHECK(info(badnf, 0, 100, 0x7FE00010, &pi) < 0, "NumberOfFrames 1A accepted");
		struct kv ok[] = { MONO("4", "4", "8", "8", "0"), { 0 } };
		CHECK(info(ok, 0, 16, 0x7FE00010, &pi) == 0, "4x4 u1");
		CHECK(info(ok, 0, 15, 0x7FE00010, &pi) == DFS_ETRUNC, "short pixel data accepted");
		CHECK(info(ok, RECF_PIXEL_TRUNC, 16, 0x7FE00010, &pi) < 0, "truncated accepted");
		CHECK(info(ok, 0, 16, 0, &pi) < 0, "no pixel data accepted");
		struct kv ybr16[] = { { 0x00280002, "US", "3" }, { 0x00280004, "CS", "YBR_FULL" },
				      { 0x00280010, "US", "4" }, { 0x00280011, "US", "4" },
				      { 0x00280100, "US", "16" }, { 0 } };
		CHECK(info(ybr16, 0, 96, 0x7FE00010, &pi) < 0, "16-bit YBR accepted");
		struct kv argb[] = { { 0x00280002, "US", "3" }, { 0x00280004, "CS", "HSV" },
				     { 0x00280010, "US", "4" }, { 0x00280011, "US", "4" },
				     { 0x00280100, "US", "8" }, { 0 } };
		CHECK(info(argb, 0, 96, 0x7FE00010, &pi) == -ENOTSUP, "HSV accepted");
	}

	/* ---- masks ---- */
	{
		uint16_t v[3] = { 0xF800, 0x07FF, 0x0800 };
		px_mask(v, 3, 2, 12, 1);
		CHECK(v[0] == 0xF800 && v[1] == 0x07FF && (int16_t)v[2] == -2048,
		      "sign extension %04x %04x %04x", v[0], v[1], v[2]);
		uint16_t u[2] = { 0xF123, 0x0FFF };
		px_mask(u, 2, 2, 12, 0);
		CHECK(u[0] == 0x0123 && u[1] == 0x0FFF, "mask %04x %04x", u[0], u[1]);
		uint8_t b[2] = { 0x1F, 0x10 };
		px_mask(b, 2, 1, 5, 1);
		CHECK((int8_t)b[0] == -1 && (int8_t)b[1] == -16, "8-bit sign %d %d", (int8_t)b[0], (int8_t)b[1]);
	}
	/* ---- YBR ---- */
	{
		unsigned char p[9] = { 128, 128, 128, 255, 128, 128, 0, 0, 0 };
		px_ybr_to_rgb(p, 3);
		CHECK(p[0] == 128 && p[1] == 128 && p[2] == 128, "grey");
		CHECK(p[3] == 255 && p[4] == 255 && p[5] == 255, "white");
		CHECK(p[6] == 0 && p[7] == 135 && p[8] == 0, "ybr 0,0,0 -> %d %d %d", p[6], p[7], p[8]);
	}

	/* ---- native reads ---- */
	unsigned char file[0x100 + 4096];
	for (size_t i = 0; i < sizeof(file); i++)
		file[i] = (unsigned char)(i * 131 + 7);
	struct mem m = { file, sizeof(file), 0 };
	{
		/* big-endian signed 12-of-16, 3 frames of 5x7 */
		struct kv a[] = { MONO("5", "7", "16", "12", "1"), { 0x00280008, "IS", "3" }, { 0 } };
		rc = info(a, RECF_BIG_ENDIAN, 4000, 0x7FE00010, &pi);
		CHECK(rc == 0 && pi.multi && !pi.identity, "be info %d", rc);
		struct px_scratch s = { 0 };
		int16_t out[105];
		px_native_read(&pi, mem_pread, &m, out, 0, sizeof(out), &s);
		int bad = 0;
		for (int i = 0; i < 105; i++) {
			int16_t raw = (int16_t)(file[0x100 + 2 * i] << 8 | file[0x101 + 2 * i]);
			int16_t want = (int16_t)((uint16_t)raw << 4) >> 4;
			bad += out[i] != want;
		}
		CHECK(!bad, "big-endian 12-bit signed values");
		px_scratch_free(&s);
		check_windows(&pi, &m, "be16");
	}
	{
		/* 1 bit, 2 frames of 3x5 (frames not byte aligned) */
		struct kv a[] = { MONO("3", "5", "1", "1", "0"), { 0x00280008, "IS", "2" }, { 0 } };
		rc = info(a, 0, 4, 0x7FE00010, &pi);
		CHECK(rc == 0 && pi.data_len == 30 && pi.descr[2] == '1', "bits info %d", rc);
		struct px_scratch s = { 0 };
		unsigned char out[30];
		px_native_read(&pi, mem_pread, &m, out, 0, 30, &s);
		int bad = 0;
		for (int g = 0; g < 30; g++)
			bad += out[g] != ((file[0x100 + g / 8] >> (g % 8)) & 1);
		CHECK(!bad, "1-bit unpacking");
		px_scratch_free(&s);
		check_windows(&pi, &m, "bits");
	}
	{
		/* planar RGB 16-bit, 2 frames of 4x3 */
		struct kv a[] = { { 0x00280002, "US", "3" }, { 0x00280004, "CS", "RGB" },
				  { 0x00280006, "US", "1" }, { 0x00280008, "IS", "2" },
				  { 0x00280010, "US", "4" }, { 0x00280011, "US", "3" },
				  { 0x00280100, "US", "16" }, { 0 } };
		rc = info(a, 0, 144, 0x7FE00010, &pi);
		CHECK(rc == 0, "planar info %d", rc);
		struct px_scratch s = { 0 };
		uint16_t out[72];
		px_native_read(&pi, mem_pread, &m, out, 0, sizeof(out), &s);
		int bad = 0;
		for (int f = 0; f < 2; f++)
			for (int i = 0; i < 12; i++)
				for (int c = 0; c < 3; c++) {
					size_t so = 0x100 + ((size_t)f * 36 + c * 12 + i) * 2;
					bad += out[f * 36 + i * 3 + c] != (file[so] | file[so + 1] << 8);
				}
		CHECK(!bad, "planar -> interleaved");
		px_scratch_free(&s);
		check_windows(&pi, &m, "planar");
	}
	{
		/* YBR_FULL_422 4x6 */
		struct kv a[] = { { 0x00280002, "US", "3" }, { 0x00280004, "CS", "YBR_FULL_422" },
				  { 0x00280010, "US", "4" }, { 0x00280011, "US", "6" },
				  { 0x00280100, "US", "8" }, { 0 } };
		rc = info(a, 0, 48, 0x7FE00010, &pi);
		CHECK(rc == 0 && pi.data_len == 72, "422 info %d", rc);
		struct px_scratch s = { 0 };
		unsigned char out[72], want[72];
		px_native_read(&pi, mem_pread, &m, out, 0, 72, &s);
		for (int k = 0; k < 12; k++) {
			const unsigned char *q = file + 0x100 + 4 * k;
			unsigned char px[6] = { q[0], q[2], q[3], q[1], q[2], q[3] };
			memcpy(want + 6 * k, px, 6);
		}
		px_ybr_to_rgb(want, 24);
		CHECK(memcmp(out, want, 72) == 0, "YBR_FULL_422 upsampled and converted");
		px_scratch_free(&s);
		check_windows(&pi, &m, "ybr422");
	}
	{
		/* identity: one pread straight into the output */
		struct kv a[] = { MONO("8", "8", "16", "16", "0"), { 0 } };
		rc = info(a, 0, 128, 0x7FE00010, &pi);
		CHECK(rc == 0 && pi.identity, "identity info");
		struct px_scratch s = { 0 };
		unsigned char out[50];
		m.calls = 0;
		px_native_read(&pi, mem_pread, &m, out, 7, 50, &s);
		CHECK(m.calls == 1 && memcmp(out, file + 0x107, 50) == 0, "identity read");
		px_scratch_free(&s);
	}

	/* ---- decoded buffers ---- */
	{
		struct kv a[] = { { 0x00280002, "US", "3" }, { 0x00280004, "CS", "RGB" },
				  { 0x00280006, "US", "1" },
				  { 0x00280010, "US", "2" }, { 0x00280011, "US", "2" },
				  { 0x00280100, "US", "8" }, { 0 } };
		rc = info(a, RECF_ENCAPSULATED, 0, 0x7FE00010, &pi);
		unsigned char src[12] = { 1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24 }, out[12];
		struct px_decoded d = { 2, 2, 1, 3, 8, 0, 1, PX_RGB, 0, src, 12 };
		const char *why = NULL;
		rc = px_normalize(&pi, &d, out, &why);
		unsigned char want[12] = { 1, 11, 21, 2, 12, 22, 3, 13, 23, 4, 14, 24 };
		CHECK(rc == 0 && memcmp(out, want, 12) == 0, "normalize planar %d", rc);
		d.rows = 3;
		CHECK(px_normalize(&pi, &d, out, &why) == -EIO && why, "dimension mismatch accepted");
	}

	/* ---- PNG ---- */
	{
		struct kv a[] = { MONO("3", "4", "16", "16", "1"), { 0x00281050, "DS", "100\\200" },
				  { 0x00281051, "DS", "201" }, { 0x00281052, "DS", "-1000" }, { 0 } };
		struct rec_head h;
		struct rec_buf b = mkrec(a, 0, 24, 0x7FE00010, &h);
		rc = px_info_from_record(b.data, b.len, &h, &pi, NULL);
		struct px_window w;
		px_window_from_record(b.data, b.len, &w);
		CHECK(w.have && w.center == 100 && w.width == 201 && w.intercept == -1000 &&
		      w.slope == 1, "window");
		int16_t fr[12] = { 0, 1000, 1100, 1200, 1050, 1150, 999, 1001, 1099, 1101, 1199, 1201 };
		uint64_t sz = px_png_size(&pi);
		unsigned char *png = malloc(sz);
		rc = px_png_write(&pi, &w, fr, png);
		CHECK(rc == 0, "png write %d", rc);
		CHECK(sz == 8 + 25 + (2 + 5 + 3 * 5 + 4) + 12 + 12, "png size %llu", (unsigned long long)sz);
		CHECK(memcmp(png + sz - 12, "\0\0\0\0IEND\xae\x42\x60\x82", 12) == 0, "IEND");
		/* the stored block holds the scanlines: filter 0, then pixels */
		const unsigned char *raw = png + 33 + 8 + 2 + 5;
		CHECK(raw[0] == 0 && raw[1] == 0 && raw[2] == 1 && raw[3] == 128 && raw[4] == 255, "window values %d %d %d %d",
		      raw[1], raw[2], raw[3], raw[4]);
		free(png);
		rec_release(&b);
	}
	{
		/* several stored blocks and IDAT chunks */
		struct kv a[] = { { 0x00280002, "US", "3" }, { 0x00280004, "CS", "RGB" },
				  { 0x00280010, "US", "700" }, { 0x00280011, "US", "600" },
				  { 0x00280100, "US", "8" }, { 0 } };
		rc = info(a, RECF_ENCAPSULATED, 0, 0x7FE00010, &pi);
		uint64_t sz = px_png_size(&pi);
		unsigned char *fr = calloc(1, pi.out_frame_bytes), *png = malloc(sz);
		rc = px_png_write(&pi, NULL == fr ? NULL : &(struct px_window){ 0, 0, 0, 1, 0 }, fr, png);
		CHECK(rc == 0 && sz > (1u << 20) + 100, "big png %d %llu", rc, (unsigned long long)sz);
		free(fr);
		free(png);
	}
	return unit_done();
}
