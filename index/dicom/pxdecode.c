/*
 * pxdecode.c - pixels of a whole file in memory (see pxdecode.h, D1-D4).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pxdecode.h"
#include "dcmshim.h"
#include "dcmwalk.h"
#include "encaps.h"
#include "error.h"
#include "palette.h"

/* top-level elements the decode needs (dcmwalk_elements) */
struct elems {
	uint64_t off[10];
	uint32_t len[10];
	int have[10];
};
enum { E_DESC = 0, E_DATA = 3, E_SEG = 6, E_EOT = 9 };

static void on_elem(void *ctx, uint32_t tag, const uint8_t vr[2], uint64_t off, uint32_t len)
{
	struct elems *el = ctx;
	int k = -1;
	(void)vr;
	if (tag >= 0x00281101 && tag <= 0x00281103)
		k = E_DESC + (int)(tag - 0x00281101);
	else if (tag >= 0x00281201 && tag <= 0x00281203)
		k = E_DATA + (int)(tag - 0x00281201);
	else if (tag >= 0x00281221 && tag <= 0x00281223)
		k = E_SEG + (int)(tag - 0x00281221);
	else if (tag == 0x7FE00001)
		k = E_EOT;
	if (k >= 0) {
		el->off[k] = off;
		el->len[k] = len;
		el->have[k] = 1;
	}
}

static const char *photo_name(int photo)
{
	switch (photo) {
	case PX_MONO1: return "MONOCHROME1";
	case PX_RGB: return "RGB";
	case PX_YBR_FULL: return "YBR_FULL";
	case PX_YBR_FULL_422: return "YBR_FULL_422";
	case PX_PALETTE: return "PALETTE COLOR";
	case PX_YBR_ICT: return "YBR_ICT";
	case PX_YBR_RCT: return "YBR_RCT";
	default: return "MONOCHROME2";
	}
}

/* what a decoder's photometric string means for px_normalize */
static int decoded_photo(const char *s)
{
	if (!strcmp(s, "YBR_FULL"))
		return PX_YBR_FULL;
	if (!strcmp(s, "YBR_FULL_422"))
		return PX_YBR_FULL_422;
	if (!strcmp(s, "RGB") || !strncmp(s, "YBR_ICT", 7) || !strncmp(s, "YBR_RCT", 7))
		return PX_RGB;   /* JPEG 2000: the codec undid ICT/RCT */
	if (!strncmp(s, "MONOCHROME", 10))
		return PX_MONO2;
	return 0;
}

static int normalize(const struct px_info *pi, const struct dcmshim_pixels *px,
		     const void *data, unsigned char *out, char *msg, size_t msglen)
{
	const char *why = NULL;
	struct px_decoded d = {
		.rows = px->rows, .cols = px->cols, .frames = px->frames, .spp = px->spp,
		.bits_alloc = px->bits_alloc, .pixrep = px->pixrep, .planar = px->planar,
		.is_float = px->is_float, .data = data, .len = px->len,
		.photo = decoded_photo(px->photometric),
	};
	if (px_normalize(pi, &d, out, &why)) {
		snprintf(msg, msglen, "cannot decode pixel data: %s (decoded %ux%ux%u, %u samples, %u bits, %s)",
			 why, px->rows, px->cols, px->frames, px->spp, px->bits_alloc, px->photometric);
		return -EIO;
	}
	return 0;
}

/* the caller's allocator, remembering what it gave */
struct actx {
	px_alloc_fn alloc;
	void *ctx;
	void *got;
};

static void *whole_alloc(void *ctx, size_t n)
{
	struct actx *a = ctx;
	return a->got = a->alloc(a->ctx, n);
}

/* D4: GDCM reads the whole file */
static int decode_whole(const uint8_t *file, size_t size, const struct px_info *pi,
			unsigned char *out, px_alloc_fn alloc, void *actx, char *msg, size_t msglen)
{
	struct dcmshim_pixels px;
	struct actx a = { alloc, actx, NULL };
	int rc = dcmshim_decode_pixels(file, size, pi->photo == PX_PALETTE, whole_alloc, &a, &px);
	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		snprintf(msg, msglen, "cannot decode pixel data: %s", px.error);
		return -EIO;
	}
	return normalize(pi, &px, a.got, out, msg, msglen);
}

/*
 * Compressed syntaxes no codec of GDCM 3.0 decodes: the reason given in
 * errors.tsv (pydicom 2.3 with GDCM, Pillow or pylibjpeg does not decode
 * them either).
 */
static const struct { const char *uid, *what; } undecodable[] = {
	{ "1.2.840.10008.1.2.4.94", "JPIP Referenced (the pixels are on a JPIP server)" },
	{ "1.2.840.10008.1.2.4.95", "JPIP Referenced Deflate (the pixels are on a JPIP server)" },
	{ "1.2.840.10008.1.2.4.100", "MPEG2 video" },
	{ "1.2.840.10008.1.2.4.100.1", "MPEG2 video" },
	{ "1.2.840.10008.1.2.4.101", "MPEG2 video" },
	{ "1.2.840.10008.1.2.4.101.1", "MPEG2 video" },
	{ "1.2.840.10008.1.2.4.102", "MPEG-4 AVC/H.264 video" },
	{ "1.2.840.10008.1.2.4.102.1", "MPEG-4 AVC/H.264 video" },
	{ "1.2.840.10008.1.2.4.103", "MPEG-4 AVC/H.264 video" },
	{ "1.2.840.10008.1.2.4.103.1", "MPEG-4 AVC/H.264 video" },
	{ "1.2.840.10008.1.2.4.104", "MPEG-4 AVC/H.264 video" },
	{ "1.2.840.10008.1.2.4.104.1", "MPEG-4 AVC/H.264 video" },
	{ "1.2.840.10008.1.2.4.105", "MPEG-4 AVC/H.264 video" },
	{ "1.2.840.10008.1.2.4.105.1", "MPEG-4 AVC/H.264 video" },
	{ "1.2.840.10008.1.2.4.106", "MPEG-4 AVC/H.264 video" },
	{ "1.2.840.10008.1.2.4.106.1", "MPEG-4 AVC/H.264 video" },
	{ "1.2.840.10008.1.2.4.107", "HEVC/H.265 video" },
	{ "1.2.840.10008.1.2.4.108", "HEVC/H.265 video" },
	{ "1.2.840.10008.1.2.4.110", "JPEG XL" },
	{ "1.2.840.10008.1.2.4.111", "JPEG XL" },
	{ "1.2.840.10008.1.2.4.112", "JPEG XL" },
	{ "1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000 (HTJ2K)" },
	{ "1.2.840.10008.1.2.4.202", "High-Throughput JPEG 2000 (HTJ2K)" },
	{ "1.2.840.10008.1.2.4.203", "High-Throughput JPEG 2000 (HTJ2K)" },
};

/* 0, or -EIO with msg naming a syntax that cannot be decoded */
static int syntax_check(const char *ts, char *msg, size_t msglen)
{
	for (size_t i = 0; i < sizeof(undecodable) / sizeof(undecodable[0]); i++)
		if (!strcmp(ts, undecodable[i].uid)) {
			snprintf(msg, msglen, "cannot decode pixel data: transfer syntax %s (%s) "
				 "has no decoder here", ts, undecodable[i].what);
			return -EIO;
		}
	return 0;
}

/* frame i of the decoded image lands at base + i * n */
struct fctx {
	px_alloc_fn alloc;
	void *actx;
	unsigned char *base;
	size_t n;
	uint32_t i, nframes;
	int mismatch;
};

static void *frame_alloc(void *ctx, size_t n)
{
	struct fctx *c = ctx;
	if (c->i == 0) {
		size_t total;
		if (__builtin_mul_overflow(n, (size_t)c->nframes, &total))
			return NULL;
		c->base = c->alloc(c->actx, total);
		c->n = n;
		return c->base;
	}
	if (n != c->n) {
		c->mismatch = 1;
		return NULL;
	}
	return c->base + (size_t)c->i * n;
}

/* D2: frame by frame through the codec of ts */
static int decode_frames(const uint8_t *file, size_t size, const struct dcmwalk_result *w,
			 const struct elems *el, const struct px_info *pi, const char *photo,
			 unsigned char *out, px_alloc_fn alloc, void *actx, char *msg, size_t msglen)
{
	const uint8_t *p = file + w->pixel_offset;
	const char *why = NULL;
	struct encaps e = { 0 };
	struct encaps_frame *fr = NULL;
	uint8_t *cs = NULL;
	struct dcmshim_pixels px, first = { 0 };
	if (syntax_check(w->ts, msg, msglen))
		return -EIO;
	int rc = encaps_scan(p, size - (size_t)w->pixel_offset, w->big_endian, &e, &why);
	if (!rc && pi->frames > e.nfrag) {
		why = "fewer fragments than frames";   /* every frame has its own (E3) */
		rc = DFS_EPARSE;
	}
	if (!rc) {
		fr = calloc(pi->frames, sizeof(*fr));
		rc = fr ? encaps_frames(p, &e, pi->frames,
					el->have[E_EOT] ? file + el->off[E_EOT] : NULL,
					el->have[E_EOT] ? el->len[E_EOT] : 0, w->big_endian, fr, &why)
			: -ENOMEM;
	}
	if (rc) {
		if (rc != -ENOMEM)
			snprintf(msg, msglen, "cannot decode pixel data: %s", why);
		goto out;
	}
	uint64_t maxlen = 0;
	for (uint32_t i = 0; i < pi->frames; i++)
		if (fr[i].len > maxlen)
			maxlen = fr[i].len;
	cs = malloc((size_t)maxlen + 2);
	if (!cs) {
		rc = -ENOMEM;
		goto out;
	}
	struct dcmshim_frame f = {
		.ts = w->ts, .photometric = photo, .rows = pi->rows, .cols = pi->cols,
		.spp = pi->spp, .bits_alloc = pi->bits_alloc, .bits_stored = pi->bits_stored,
		.high_bit = pi->high_bit, .pixrep = pi->pixrep, .planar = pi->planar,
	};
	struct fctx c = { alloc, actx, NULL, 0, 0, pi->frames, 0 };
	for (uint32_t i = 0; i < pi->frames; i++) {
		size_t n = (size_t)fr[i].len;
		encaps_frame_copy(p, &e, &fr[i], cs);
		if (n & 1)
			cs[n++] = 0;   /* fragments are even: the codec ignores the pad */
		c.i = i;
		rc = dcmshim_decode_frame(cs, n, &f, frame_alloc, &c, &px);
		if (rc == -ENOMEM && c.mismatch) {
			snprintf(msg, msglen, "cannot decode pixel data: frame %u decodes to another size "
				 "than frame 0", i);
			rc = DFS_EPARSE;
			goto out;
		}
		if (rc == -ENOMEM)
			goto out;
		if (rc) {
			snprintf(msg, msglen, "cannot decode pixel data (frame %u): %s", i, px.error);
			goto out;
		}
		if (i == 0)
			first = px;
		else if (px.rows != first.rows || px.cols != first.cols || px.spp != first.spp ||
			 px.bits_alloc != first.bits_alloc) {
			snprintf(msg, msglen, "cannot decode pixel data: frame %u differs from frame 0", i);
			rc = DFS_EPARSE;
			goto out;
		}
	}
	first.frames = pi->frames;
	first.len = (uint64_t)c.n * pi->frames;
	rc = normalize(pi, &first, c.base, out, msg, msglen);
out:
	free(cs);
	free(fr);
	encaps_free(&e);
	return rc == -ENOMEM ? rc : rc ? -EIO : 0;
}

/* the whole file as a px_pread_fn */
struct memsrc {
	const uint8_t *p;
	size_t n;
};

static int mem_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct memsrc *m = ctx;
	if (off > m->n || len > m->n - off)
		return -EIO;
	memcpy(buf, m->p + off, len);
	return 0;
}

/* D3 */
static int decode_palette(const uint8_t *file, size_t size, const struct dcmwalk_result *w,
			  const struct elems *el, const struct px_info *pi, unsigned char *out,
			  px_alloc_fn alloc, void *actx, char *msg, size_t msglen)
{
	const char *why = NULL;
	struct px_info ip = *pi;     /* the index image: MONOCHROME2 */
	struct px_lut *lut = NULL;
	const struct px_lut *l3[3];
	unsigned char *idx = NULL;
	int rc;

	ip.photo = PX_MONO2;
	ip.out_spp = 1;
	ip.out_bytes = pi->bits_alloc / 8;
	ip.out_signed = pi->pixrep != 0;
	ip.out_frame_bytes = pi->frame_pixels * ip.out_bytes;
	ip.data_len = ip.out_frame_bytes * pi->frames;
	lut = malloc(3 * sizeof(*lut));
	idx = malloc((size_t)ip.data_len ? (size_t)ip.data_len : 1);
	if (!lut || !idx) {
		rc = -ENOMEM;
		goto out;
	}
	for (int c = 0; c < 3; c++) {
		int seg = !el->have[E_DATA + c];
		int k = seg ? E_SEG + c : E_DATA + c;
		rc = px_lut_build(el->have[E_DESC + c] ? file + el->off[E_DESC + c] : NULL,
				  el->len[E_DESC + c], el->have[k] ? file + el->off[k] : NULL,
				  el->len[k], seg, w->big_endian, pi->pixrep != 0, &lut[c], &why);
		if (rc) {
			snprintf(msg, msglen, "cannot decode pixel data: %s", why);
			goto out;
		}
		l3[c] = &lut[c];
	}
	if (!w->encapsulated) {
		struct memsrc m = { file, size };
		struct px_scratch s = { 0 };
		ip.native = 1;
		ip.encapsulated = 0;
		ip.big_endian = w->big_endian;
		ip.pixel_offset = w->pixel_offset;
		ip.src_len = ip.data_len;
		ip.identity = 0;
		if (w->pixel_length < ip.src_len) {
			snprintf(msg, msglen, "cannot decode pixel data: pixel data shorter than "
				 "Rows x Columns x frames");
			rc = -EIO;
			goto out;
		}
		rc = px_native_read(&ip, mem_pread, &m, idx, 0, (size_t)ip.data_len, &s);
		px_scratch_free(&s);
		if (rc) {
			snprintf(msg, msglen, "cannot read the palette indices");
			goto out;
		}
	} else {
		ip.native = 0;
		ip.encapsulated = 1;
		ip.pixel_offset = w->pixel_offset;
		rc = px_rle_decode(&ip, file + w->pixel_offset, size - (size_t)w->pixel_offset,
				   idx, &why);
		if (rc < 0) {
			snprintf(msg, msglen, "cannot decode pixel data: %s", why);
			goto out;
		}
		if (rc == 1)
			rc = decode_frames(file, size, w, el, &ip, "MONOCHROME2", idx, alloc, actx,
					   msg, msglen);
		if (rc)
			goto out;
	}
	rc = px_lut_apply(l3, idx, ip.out_bytes, ip.out_signed,
			  pi->frame_pixels * pi->frames, (uint16_t *)(void *)out, &why);
	if (rc)
		snprintf(msg, msglen, "cannot decode pixel data: %s", why);
out:
	free(lut);
	free(idx);
	return rc == -ENOMEM ? rc : rc ? -EIO : 0;
}

int px_decode_file(const uint8_t *file, size_t size, const struct px_info *pi,
		   unsigned char *out, px_alloc_fn alloc, void *actx,
		   char *msg, size_t msglen)
{
	struct dcmwalk_result w;
	struct elems el = { 0 };
	const char *why = NULL;
	int rc = dcmwalk_header(file, size, size, &w);
	if (rc || w.deflated || !w.pixel_offset || w.pixel_offset > size)
		return decode_whole(file, size, pi, out, alloc, actx, msg, msglen);
	if (dcmwalk_elements(file, size, &w, on_elem, &el))
		return decode_whole(file, size, pi, out, alloc, actx, msg, msglen);
	if (pi->photo == PX_PALETTE)
		return decode_palette(file, size, &w, &el, pi, out, alloc, actx, msg, msglen);
	if (!w.encapsulated)
		return decode_whole(file, size, pi, out, alloc, actx, msg, msglen);
	rc = px_rle_decode(pi, file + w.pixel_offset, size - (size_t)w.pixel_offset, out, &why);
	if (rc < 0) {
		snprintf(msg, msglen, "cannot decode pixel data: %s", why);
		return -EIO;
	}
	if (rc == 0)
		return 0;
	return decode_frames(file, size, &w, &el, pi, photo_name(pi->photo), out, alloc, actx,
			     msg, msglen);
}
