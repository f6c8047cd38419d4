/*
 * unit_encaps - the encapsulated Pixel Data parser (encaps.c), PALETTE
 * COLOR tables (palette.c) and the header walker's handling of fragments
 * inside items and of elements after Pixel Data (dcmwalk.c). Expected
 * values are written out by hand from PS3.5 A.4 / PS3.3 C.7.9 and
 * pydicom 2.3's apply_color_lut (numpy.around rounds half to even).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dcmwalk.h"
#include "encaps.h"
#include "error.h"
#include "palette.h"
#include "unit.h"

static uint8_t buf[4096];
static size_t blen;

static void put(const void *p, size_t n)
{
	memcpy(buf + blen, p, n);
	blen += n;
}

static void put16(uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };
	put(b, 2);
}

static void put32(uint32_t v)
{
	uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
	put(b, 4);
}

static void item(const void *p, uint32_t n)
{
	put16(0xFFFE);
	put16(0xE000);
	put32(n);
	put(p, n);
}

static void delim(void)
{
	put16(0xFFFE);
	put16(0xE0DD);
	put32(0);
}

/* JPEG-like frames: FF D8 k k k k FF D9 (8 bytes) */
static const uint8_t F0[8] = { 0xFF, 0xD8, 1, 1, 1, 1, 0xFF, 0xD9 };
static const uint8_t F1[8] = { 0xFF, 0xD8, 2, 2, 2, 2, 0xFF, 0xD9 };

static int frames_of(uint32_t nframes, const uint8_t *eot, size_t eot_len,
		     struct encaps_frame *fr, struct encaps *e)
{
	const char *why = NULL;
	int rc = encaps_scan(buf, blen, 0, e, &why);
	if (rc)
		return rc;
	return encaps_frames(buf, e, nframes, eot, eot_len, 0, fr, &why);
}

static void test_encaps(void)
{
	struct encaps e;
	struct encaps_frame fr[4];
	uint8_t out[64];
	const char *why;

	/* empty BOT, one fragment per frame */
	blen = 0;
	item("", 0);
	item(F0, 8);
	item(F1, 8);
	delim();
	CHECK(frames_of(2, NULL, 0, fr, &e) == 0, "one per frame");
	CHECK(e.nfrag == 2 && e.delimited && e.end == blen, "scan: 2 fragments, delimited");
	CHECK(fr[1].first == 1 && fr[1].count == 1 && fr[1].len == 8, "frame 1 = fragment 1");
	encaps_frame_copy(buf, &e, &fr[1], out);
	CHECK(memcmp(out, F1, 8) == 0, "frame 1's bytes");
	encaps_free(&e);

	/* frames spanning fragments, a BOT: offsets 0 and 2 x (8 + 4) */
	blen = 0;
	uint8_t bot[8] = { 0, 0, 0, 0, 24, 0, 0, 0 };
	item(bot, 8);
	item(F0, 4);
	item(F0 + 4, 4);
	item(F1, 2);
	item(F1 + 2, 6);
	delim();
	CHECK(frames_of(2, NULL, 0, fr, &e) == 0, "BOT");
	CHECK(fr[0].first == 0 && fr[0].count == 2 && fr[1].first == 2 && fr[1].count == 2,
	      "BOT: 2 + 2 fragments");
	encaps_frame_copy(buf, &e, &fr[1], out);
	CHECK(fr[1].len == 8 && memcmp(out, F1, 8) == 0, "BOT: frame 1 reassembled");
	encaps_free(&e);

	/* a BOT that does not fit (offset 5 is inside a fragment): ignored,
	 * frames by the EOI marker */
	bot[4] = 5;
	memcpy(buf + 8, bot, 8);
	CHECK(frames_of(2, NULL, 0, fr, &e) == 0 && fr[1].first == 2, "bad BOT ignored");
	encaps_free(&e);

	/* no BOT, more fragments than frames: the EOI marker ends a frame,
	 * 00 padding after it allowed; no delimiter, trailing padding element */
	blen = 0;
	item("", 0);
	uint8_t padded[10];
	memcpy(padded, F0, 8);
	padded[8] = padded[9] = 0;
	item(F0, 3);
	item(F0 + 3, 5);
	item(F1, 4);
	item(padded, 10);   /* frame 2: F1's head + padded F0 tail... */
	put16(0xFFFC);
	put16(0xFFFC);
	CHECK(frames_of(2, NULL, 0, fr, &e) == 0, "markers");
	CHECK(!e.delimited && e.nfrag == 4, "stopped at the padding element, not delimited");
	CHECK(fr[0].count == 2 && fr[1].first == 2 && fr[1].count == 2 && fr[1].len == 14,
	      "markers: 2 + 2 fragments");
	encaps_free(&e);
	CHECK(frames_of(3, NULL, 0, fr, &e) == DFS_EPARSE, "markers: 3 frames do not fit");
	encaps_free(&e);

	/* Extended Offset Table, empty BOT */
	blen = 0;
	item("", 0);
	item(F0, 8);
	item(F1, 8);
	delim();
	uint8_t eot[16] = { 0 };
	eot[8] = 16;
	CHECK(frames_of(2, eot, 16, fr, &e) == 0 && fr[1].first == 1, "EOT");
	encaps_free(&e);

	/* a fragment holding the bytes of a sequence delimiter */
	blen = 0;
	item("", 0);
	uint8_t emb[16] = { 0xFF, 0xD8, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0, 7, 7, 7, 7, 0xFF, 0xD9 };
	item(emb, 16);
	delim();
	CHECK(frames_of(1, NULL, 0, fr, &e) == 0 && e.nfrag == 1 && fr[0].len == 16,
	      "embedded delimiter stays inside its fragment");
	encaps_free(&e);

	/* errors */
	blen = 0;
	item("", 0);
	put16(0xFFFE);
	put16(0xE000);
	put32(100);         /* runs past the end */
	CHECK(encaps_scan(buf, blen, 0, &e, &why) == DFS_ETRUNC, "fragment past the end");
	encaps_free(&e);
	blen = 0;
	item("", 0);
	put16(0xFFFE);
	put16(0xE000);
	put32(0xFFFFFFFFu);
	CHECK(encaps_scan(buf, blen, 0, &e, &why) == DFS_EPARSE, "undefined-length item");
	encaps_free(&e);
	blen = 0;
	item("", 0);
	delim();
	CHECK(encaps_scan(buf, blen, 0, &e, &why) == DFS_EPARSE, "no fragments");
	encaps_free(&e);
	blen = 0;
	item("", 0);
	item(F0, 8);
	delim();
	CHECK(frames_of(2, NULL, 0, fr, &e) == DFS_EPARSE, "fewer fragments than frames");
	encaps_free(&e);
}

static void lut_of(struct px_lut *l, uint16_t n, uint16_t first, uint16_t bits,
		   const uint8_t *data, size_t len, int seg, int sign, int want_rc)
{
	uint8_t d[6] = { (uint8_t)n, (uint8_t)(n >> 8), (uint8_t)first, (uint8_t)(first >> 8),
			 (uint8_t)bits, (uint8_t)(bits >> 8) };
	const char *why = NULL;
	int rc = px_lut_build(d, 6, data, len, seg, 0, sign, l, &why);
	CHECK(rc == want_rc, "px_lut_build: %d, want %d (%s)", rc, want_rc, why ? why : "");
}

static void test_palette(void)
{
	static struct px_lut r, g, b;
	const struct px_lut *l3[3] = { &r, &g, &b };
	uint16_t out[3 * 8];
	const char *why;

	/* 16-bit entries are served as they are (50176, not 196) */
	uint16_t w[4] = { 0, 1000, 50176, 65535 };
	lut_of(&r, 4, 0, 16, (const uint8_t *)w, 8, 0, 0, 0);
	lut_of(&g, 4, 0, 16, (const uint8_t *)w, 8, 0, 0, 0);
	lut_of(&b, 4, 0, 16, (const uint8_t *)w, 8, 0, 0, 0);
	uint8_t idx8[5] = { 0, 1, 2, 3, 200 };
	CHECK(px_lut_apply(l3, idx8, 1, 0, 5, out, &why) == 0, "apply");
	CHECK(out[6] == 50176 && out[7] == 50176 && out[9] == 65535, "16-bit entries kept");
	CHECK(out[12] == 65535, "beyond the table: last entry");

	/* 8-bit entries packed in bytes, and 8-bit entries in 16-bit words */
	uint8_t by[4] = { 9, 8, 7, 6 };
	lut_of(&r, 4, 0, 8, by, 4, 0, 0, 0);
	CHECK(r.len == 4 && r.v[1] == 8, "8-bit bytes");
	uint16_t w8[4] = { 255, 128, 0, 1 };
	lut_of(&r, 4, 0, 8, (const uint8_t *)w8, 8, 0, 0, 0);
	CHECK(r.v[0] == 255 && r.v[3] == 1, "8-bit entries in words");
	lut_of(&r, 4, 0, 8, by, 3, 0, 0, DFS_EPARSE);

	/* descriptor first value 0: 65536 entries */
	static uint16_t big[65536];
	for (uint32_t i = 0; i < 65536; i++)
		big[i] = (uint16_t)(65535 - i);
	lut_of(&r, 0, 0, 16, (const uint8_t *)big, sizeof(big), 0, 0, 0);
	g = r;
	b = r;
	uint16_t idx16[2] = { 0, 65535 };
	CHECK(r.n == 65536 && px_lut_apply(l3, idx16, 2, 0, 2, out, &why) == 0 &&
	      out[0] == 65535 && out[3] == 0, "65536 entries");

	/* first mapped value 100: below -> entry 0, above -> last entry */
	lut_of(&r, 4, 100, 16, (const uint8_t *)w, 8, 0, 0, 0);
	g = r;
	b = r;
	uint16_t iv[4] = { 5, 100, 102, 4000 };
	CHECK(px_lut_apply(l3, iv, 2, 0, 4, out, &why) == 0 && out[0] == 0 && out[3] == 0 &&
	      out[6] == 50176 && out[9] == 65535, "first mapped value 100");
	/* signed: first mapped value -2 (PixelRepresentation 1) */
	lut_of(&r, 4, 0xFFFE, 16, (const uint8_t *)w, 8, 0, 1, 0);
	g = r;
	b = r;
	int16_t sv[3] = { -5, -2, 1 };
	CHECK(r.first == -2 && px_lut_apply(l3, sv, 2, 1, 3, out, &why) == 0 && out[0] == 0 &&
	      out[3] == 0 && out[6] == 65535, "signed first mapped value");

	/* segmented 16-bit: discrete 2 (10 20); linear 4 from 20 to 30 (22.5 25
	 * 27.5 30, rounded half to even: 22 25 28 30); linear 4 to 40 (32 35 38
	 * 40); indirect: 2 segments from word 0 (10 20, then 22 25 28 30) */
	uint16_t seg[] = { 0, 2, 10, 20, 1, 4, 30, 1, 4, 40, 2, 2, 0, 0 };
	lut_of(&r, 16, 0, 16, (const uint8_t *)seg, sizeof(seg), 1, 0, 0);
	static const uint16_t want[16] = { 10, 20, 22, 25, 28, 30, 32, 35, 38, 40,
					   10, 20, 22, 25, 28, 30 };
	CHECK(r.len == 16 && memcmp(r.v, want, sizeof(want)) == 0,
	      "segmented: %u entries, %u %u %u %u ... %u %u", r.len, r.v[2], r.v[6], r.v[8],
	      r.v[9], r.v[12], r.v[14]);
	/* shorter than its descriptor; a linear first segment; unknown opcode */
	lut_of(&r, 17, 0, 16, (const uint8_t *)seg, sizeof(seg), 1, 0, DFS_EPARSE);
	uint16_t lin[] = { 1, 3, 9 };
	lut_of(&r, 3, 0, 16, (const uint8_t *)lin, sizeof(lin), 1, 0, DFS_EPARSE);
	uint16_t bad[] = { 0, 1, 5, 7, 1 };
	lut_of(&r, 1, 0, 16, (const uint8_t *)bad, sizeof(bad), 1, 0, DFS_EPARSE);
	/* an indirect segment pointing at itself nests at most PX_LUT_MAX_DEPTH */
	uint16_t loop[] = { 0, 1, 5, 2, 0, 0, 0 };
	lut_of(&r, 1, 0, 16, (const uint8_t *)loop, sizeof(loop), 1, 0, DFS_EPARSE);

	/* 8-bit segmented: bytes */
	uint8_t s8[] = { 0, 2, 0, 9, 1, 2, 255, 0 };
	lut_of(&r, 4, 0, 8, s8, sizeof(s8), 1, 0, 0);
	CHECK(r.len == 4 && r.v[1] == 9 && r.v[2] == 132 && r.v[3] == 255,
	      "8-bit segmented: %u %u %u", r.v[1], r.v[2], r.v[3]);

	/* tables of different sizes */
	lut_of(&r, 4, 0, 16, (const uint8_t *)w, 8, 0, 0, 0);
	lut_of(&g, 3, 0, 16, (const uint8_t *)w, 6, 0, 0, 0);
	b = r;
	CHECK(px_lut_apply(l3, idx8, 1, 0, 1, out, &why) == DFS_EPARSE, "different sizes");
}

/* explicit VR little endian element helpers */
static void el_short(uint16_t g, uint16_t e, const char *vr, const void *v, uint16_t n)
{
	put16(g);
	put16(e);
	put(vr, 2);
	put16(n);
	put(v, n);
}

static void el_long(uint16_t g, uint16_t e, const char *vr, uint32_t n)
{
	put16(g);
	put16(e);
	put(vr, 2);
	put16(0);
	put32(n);
}

static void test_walk(void)
{
	struct dcmwalk_result r;
	/* preamble, meta, then an Icon Image Sequence whose item holds
	 * undefined-length OB pixel data (fragments with an embedded item
	 * delimiter's bytes), then top-level Pixel Data and a trailer */
	blen = 0;
	memset(buf, 0, 128);
	blen = 128;
	put("DICM", 4);
	el_short(0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1\0", 20);
	el_short(0x0008, 0x0060, "CS", "OT", 2);
	el_long(0x0088, 0x0200, "SQ", 0xFFFFFFFFu);
	put16(0xFFFE);
	put16(0xE000);
	put32(0xFFFFFFFFu);
	el_short(0x0028, 0x0010, "US", "\x02\x00", 2);
	el_long(0x7FE0, 0x0010, "OB", 0xFFFFFFFFu);
	item("", 0);
	uint8_t frag[8] = { 0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0 };
	item(frag, 8);
	delim();
	put16(0xFFFE);
	put16(0xE00D);
	put32(0);
	put16(0xFFFE);
	put16(0xE0DD);
	put32(0);
	el_short(0x0028, 0x0010, "US", "\x02\x00", 2);
	size_t px = blen;
	el_long(0x7FE0, 0x0010, "OW", 8);
	put("\1\2\3\4\5\6\7\10", 8);
	size_t tr = blen;
	el_short(0x7FE1, 0x0010, "LO", "ACME", 4);
	el_long(0xFFFC, 0xFFFC, "OB", 2);
	put("\0\0", 2);
	CHECK(dcmwalk_header(buf, blen, blen, &r) == 0, "icon with fragments in an item");
	CHECK(r.header_end == px && r.pixel_offset == px + 12 && r.pixel_length == 8,
	      "pixel data found after the icon");
	CHECK(dcmwalk_trailer(buf + tr, blen - tr, &r) == 0, "trailer walks");
	CHECK(dcmwalk_trailer(buf + tr, blen - tr - 1, &r) != 0, "a cut trailer does not");
	CHECK(dcmwalk_trailer(buf + px, blen - px, &r) != 0, "Pixel Data is not a trailer");
	CHECK(!r.ts_mismatch, "explicit VR little endian: no mismatch");

	/* a transfer syntax GDCM's reader does not know (HTJ2K): the data set
	 * is parsed alone, as for a mismatch */
	blen = 128;
	put("DICM", 4);
	el_short(0x0002, 0x0010, "UI", "1.2.840.10008.1.2.4.201\0", 24);
	el_short(0x0008, 0x0060, "CS", "OT", 2);
	CHECK(dcmwalk_header(buf, blen, blen, &r) == 0 && r.ts_mismatch &&
	      r.dataset_start == 128 + 4 + 8 + 24, "HTJ2K: data set alone");
}

int main(void)
{
	test_encaps();
	test_palette();
	test_walk();
	return unit_done();
}
