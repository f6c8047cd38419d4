/*
 * pixels.c - .npy header, sample conversions, PNG writer (see pixels.h).
 *
 * Design notes
 * - Sizes come from the indexed attributes only, so getattr never decodes.
 *   Every product is checked for overflow and bounded by PX_MAX_BYTES.
 * - The native reader works on whole output pixels (pairs for YBR_FULL_422)
 *   in chunks: it reads the source bytes of those pixels, converts them into
 *   a scratch buffer and copies the requested slice, so a read at any offset
 *   costs O(len) and touches only the source bytes it needs.
 * - The PNG is uncompressed deflate ("stored" blocks of at most 65535
 *   bytes) split over IDAT chunks of at most PX_IDAT_MAX bytes: its size is
 *   a function of rows, columns and colour only.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pixels.h"
#include "record.h"
#include "error.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "pixels.c assumes a little-endian host"
#endif

#define PX_IDAT_MAX (1u << 20)
#define PX_CHUNK 65536     /* pixels converted per step */
#define PX_MAX_RATIO 16384 /* decoded bytes per byte of a compressed file */
#define PX_RATIO_FLOOR ((uint64_t)64 << 20)  /* ... above this size */

/* ---- attributes ---- */

/* The first value of a multi-valued string (v, l), trimmed, into buf:
 * 1, or 0 when empty or longer than cap - 1. */
static int first_of(const char *v, size_t l, char *buf, size_t cap)
{
	size_t n = 0;
	while (n < l && v[n] != '\\')
		n++;
	while (n && (v[n - 1] == ' ' || v[n - 1] == 0))
		n--;
	while (n && *v == ' ') {
		v++;
		n--;
	}
	if (!n || n >= cap)
		return 0;
	memcpy(buf, v, n);
	buf[n] = 0;
	return 1;
}

static int first_value(const void *rec, size_t len, uint32_t tag, char *buf,
		       size_t cap)
{
	const char *v;
	size_t l;
	return rec_attr(rec, len, tag, &v, &l) && first_of(v, l, buf, cap);
}

int px_value_long(const char *v, size_t l, long long *out)
{
	char b[64], *end;
	if (!v || !first_of(v, l, b, sizeof(b)))
		return 0;
	errno = 0;
	long long x = strtoll(b, &end, 10);
	if (errno || end == b || *end)
		return -1;
	*out = x;
	return 1;
}

/*
 * The Image Pixel attributes px_info_from_record reads, found in one pass
 * over the record (rec_attrs): it runs for every instance of every view
 * and volume at each tree build.
 */
enum { PXA_SPP, PXA_PHOTO, PXA_PLANAR, PXA_FRAMES, PXA_ROWS, PXA_COLS,
       PXA_BALLOC, PXA_BSTORED, PXA_HIGH, PXA_PIXREP, PXA_N };
_Static_assert(PXA_N == PX_ATTR_N, "px_attr_tags");
const uint32_t px_attr_tags[PX_ATTR_N] = {
	0x00280002, 0x00280004, 0x00280006, 0x00280008, 0x00280010, 0x00280011,
	0x00280100, 0x00280101, 0x00280102, 0x00280103,
};

int px_attr_long(const void *rec, size_t len, uint32_t tag, long long *out)
{
	const char *v;
	size_t l;
	return rec_attr(rec, len, tag, &v, &l) ? px_value_long(v, l, out) : 0;
}

int px_attr_double(const void *rec, size_t len, uint32_t tag, double *out)
{
	char b[64], *end;
	if (!first_value(rec, len, tag, b, sizeof(b)))
		return 0;
	errno = 0;
	double v = strtod(b, &end);
	if (errno || end == b || *end || !isfinite(v))
		return -1;
	*out = v;
	return 1;
}

static int photo_of(const char *v, size_t l)
{
	static const struct { const char *s; int p; } t[] = {
		{ "MONOCHROME1", PX_MONO1 }, { "MONOCHROME2", PX_MONO2 },
		{ "RGB", PX_RGB }, { "YBR_FULL", PX_YBR_FULL },
		{ "YBR_FULL_422", PX_YBR_FULL_422 }, { "PALETTE COLOR", PX_PALETTE },
		{ "YBR_ICT", PX_YBR_ICT }, { "YBR_RCT", PX_YBR_RCT },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strlen(t[i].s) == l && memcmp(t[i].s, v, l) == 0)
			return t[i].p;
	return 0;
}

#define FAIL(code, text) do { if (why) *why = (text); return (code); } while (0)

int px_info_from_record(const void *rec, size_t len, const struct rec_head *h,
			struct px_info *pi, const char **why)
{
	const char *v[PX_ATTR_N];
	size_t l[PX_ATTR_N];
	rec_attrs(rec, len, px_attr_tags, PX_ATTR_N, v, l);
	return px_info_from_attrs(v, l, h, pi, why);
}

int px_info_from_attrs(const char *const *av, const size_t *al, const struct rec_head *h,
		       struct px_info *pi, const char **why)
{
	long long v;
	int r;

	uint32_t ptag = h->pixel_tag;
	memset(pi, 0, sizeof(*pi));
	/* a deflated data set is not walked: its pixel data tag is unknown
	 * (Pixel Data assumed when Rows and Columns are there) */
	if (!ptag && (h->flags & RECF_DEFLATED))
		ptag = 0x7FE00010;
	if (!ptag)
		FAIL(-ENOENT, "no pixel data");
	if (h->flags & RECF_PIXEL_TRUNC)
		FAIL(DFS_ETRUNC, "pixel data truncated");
	if (ptag == 0x7FE00008)
		pi->is_float = 4;
	else if (ptag == 0x7FE00009)
		pi->is_float = 8;
	else if (ptag != 0x7FE00010)
		FAIL(-EINVAL, "unknown pixel data tag");

#define NEED(k, field, lo, hi, text) do { \
	r = px_value_long(av[k], al[k], &v); \
	if (r <= 0 || v < (lo) || v > (hi)) FAIL(-EINVAL, text); \
	pi->field = (uint32_t)v; } while (0)
#define OPT(k, field, dflt, lo, hi, text) do { \
	r = px_value_long(av[k], al[k], &v); \
	if (r < 0 || (r > 0 && (v < (lo) || v > (hi)))) FAIL(-EINVAL, text); \
	pi->field = r > 0 ? (uint32_t)v : (dflt); } while (0)

	NEED(PXA_ROWS, rows, 1, 65535, "missing or bad Rows");
	NEED(PXA_COLS, cols, 1, 65535, "missing or bad Columns");
	OPT(PXA_SPP, spp, 1, 1, 4, "bad SamplesPerPixel");
	if (pi->is_float)
		OPT(PXA_BALLOC, bits_alloc, (uint32_t)pi->is_float * 8, 1, 64,
		    "bad BitsAllocated");
	else
		NEED(PXA_BALLOC, bits_alloc, 1, 64, "missing or bad BitsAllocated");
	OPT(PXA_BSTORED, bits_stored, pi->bits_alloc, 1, pi->bits_alloc, "bad BitsStored");
	OPT(PXA_HIGH, high_bit, pi->bits_stored - 1, 0, pi->bits_alloc - 1, "bad HighBit");
	OPT(PXA_PIXREP, pixrep, 0, 0, 1, "bad PixelRepresentation");
	OPT(PXA_PLANAR, planar, 0, 0, 1, "bad PlanarConfiguration");
	OPT(PXA_FRAMES, frames, 1, 1, 0x7fffffff, "bad NumberOfFrames");
	pi->multi = pi->frames > 1;

	if (av[PXA_PHOTO] && al[PXA_PHOTO]) {
		pi->photo = photo_of(av[PXA_PHOTO], al[PXA_PHOTO]);
		if (!pi->photo)
			FAIL(-ENOTSUP, "unsupported PhotometricInterpretation");
	} else if (pi->spp == 1) {
		pi->photo = PX_MONO2;
	} else {
		FAIL(-EINVAL, "missing PhotometricInterpretation");
	}
	if (pi->spp == 1 && pi->photo != PX_MONO1 && pi->photo != PX_MONO2 &&
	    pi->photo != PX_PALETTE)
		FAIL(-ENOTSUP, "PhotometricInterpretation does not fit SamplesPerPixel 1");
	if (pi->spp == 3 && (pi->photo == PX_MONO1 || pi->photo == PX_MONO2 ||
			     pi->photo == PX_PALETTE))
		FAIL(-ENOTSUP, "PhotometricInterpretation does not fit SamplesPerPixel 3");
	if (pi->spp != 1 && pi->spp != 3)
		FAIL(-ENOTSUP, "SamplesPerPixel other than 1 and 3");

	pi->native = !(h->flags & (RECF_ENCAPSULATED | RECF_DEFLATED)) &&
		     h->pixel_offset != 0 && pi->photo != PX_PALETTE;
	pi->big_endian = !!(h->flags & RECF_BIG_ENDIAN);
	pi->encapsulated = !!(h->flags & RECF_ENCAPSULATED) && !(h->flags & RECF_DEFLATED);
	if (pi->encapsulated)
		pi->pixel_offset = h->pixel_offset;
	if (pi->is_float) {
		if (pi->bits_alloc != (uint32_t)pi->is_float * 8)
			FAIL(-EINVAL, "BitsAllocated does not fit float pixel data");
		if (h->flags & RECF_ENCAPSULATED)
			FAIL(-ENOTSUP, "encapsulated float pixel data");
		pi->out_bytes = (uint32_t)pi->is_float;
		pi->nbits = pi->bits_alloc;
	} else {
		if (pi->bits_alloc != 1 && pi->bits_alloc != 8 && pi->bits_alloc != 16 &&
		    pi->bits_alloc != 32)
			FAIL(-ENOTSUP, "BitsAllocated other than 1, 8, 16, 32");
		pi->out_bytes = pi->bits_alloc == 1 ? 1 : pi->bits_alloc / 8;
		pi->out_signed = pi->pixrep && pi->bits_alloc != 1;
		pi->nbits = pi->high_bit + 1;
	}
	if (pi->bits_alloc == 1 && pi->spp != 1)
		FAIL(-ENOTSUP, "BitsAllocated 1 with colour");
	if ((pi->photo == PX_YBR_FULL || pi->photo == PX_YBR_FULL_422) &&
	    pi->bits_alloc != 8)
		FAIL(-ENOTSUP, "YBR colour with BitsAllocated other than 8");
	if (pi->photo == PX_YBR_FULL_422 && pi->native && (pi->cols & 1))
		FAIL(-ENOTSUP, "YBR_FULL_422 with an odd number of columns");
	if ((pi->photo == PX_YBR_ICT || pi->photo == PX_YBR_RCT) && pi->native)
		FAIL(-ENOTSUP, "YBR_ICT/YBR_RCT outside JPEG 2000");
	if (pi->photo == PX_PALETTE) {
		if (pi->bits_alloc != 8 && pi->bits_alloc != 16)
			FAIL(-ENOTSUP, "PALETTE COLOR with BitsAllocated other than 8, 16");
		pi->out_spp = 3;
		pi->out_bytes = 2;
		pi->out_signed = 0;
	} else {
		pi->out_spp = pi->spp;
	}

	/* sizes, overflow-checked */
	uint64_t fp, ofb, total;
	if (__builtin_mul_overflow((uint64_t)pi->rows, (uint64_t)pi->cols, &fp) ||
	    __builtin_mul_overflow(fp, (uint64_t)pi->out_spp * pi->out_bytes, &ofb) ||
	    __builtin_mul_overflow(ofb, (uint64_t)pi->frames, &total) ||
	    total > PX_MAX_BYTES)
		FAIL(DFS_ETOOBIG, "pixel data too large");
	/* a compressed source cannot stand for more than PX_MAX_RATIO times
	 * its file size (RLE expands 64x at most, zlib ~1000x): otherwise a
	 * 4 KiB file saying 65535 x 65535 makes the mount allocate, decode
	 * and serve 4 GiB (GDCM fills what the codestream lacks) */
	if (!pi->native && total > PX_RATIO_FLOOR && total / PX_MAX_RATIO > h->size)
		FAIL(DFS_ETOOBIG, "pixel data too large for the size of the file");
	pi->frame_pixels = fp;
	pi->out_frame_bytes = ofb;
	pi->data_len = total;
	if (pi->native) {
		uint64_t npix = fp * pi->frames;
		if (pi->bits_alloc == 1)
			pi->src_len = (npix + 7) / 8;
		else if (pi->photo == PX_YBR_FULL_422)
			pi->src_len = npix * 2;
		else
			pi->src_len = npix * pi->spp * (pi->bits_alloc / 8);
		pi->pixel_offset = h->pixel_offset;
		if (h->pixel_length < pi->src_len)
			FAIL(DFS_ETRUNC, "pixel data shorter than Rows x Columns x frames");
		pi->identity = pi->bits_alloc >= 8 &&
			       (pi->out_bytes == 1 || !pi->big_endian) &&
			       (pi->is_float || pi->nbits == pi->bits_alloc) &&
			       (pi->photo == PX_MONO1 || pi->photo == PX_MONO2 ||
				pi->photo == PX_RGB) &&
			       (pi->spp == 1 || pi->planar == 0);
	}

	/* the .npy header */
	static const char *dt[2][9] = {
		{ 0, "|u1", "<u2", 0, "<u4", 0, 0, 0, 0 },
		{ 0, "|i1", "<i2", 0, "<i4", 0, 0, 0, 0 } };
	if (pi->is_float)
		snprintf(pi->descr, sizeof(pi->descr), "<f%d", pi->is_float);
	else
		snprintf(pi->descr, sizeof(pi->descr), "%s", dt[pi->out_signed][pi->out_bytes]);
	char shape[64], dict[200];
	if (pi->multi)
		snprintf(shape, sizeof(shape), "%u, %u, %u%s", pi->frames, pi->rows,
			 pi->cols, pi->out_spp == 3 ? ", 3" : "");
	else
		snprintf(shape, sizeof(shape), "%u, %u%s", pi->rows, pi->cols,
			 pi->out_spp == 3 ? ", 3" : "");
	int dl = snprintf(dict, sizeof(dict),
			  "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
			  pi->descr, shape);
	uint32_t total_hdr = (uint32_t)(10 + dl + 1 + 63) / 64 * 64;
	memcpy(pi->hdr, "\x93NUMPY\x01\x00", 8);
	pi->hdr[8] = (char)((total_hdr - 10) & 0xff);
	pi->hdr[9] = (char)((total_hdr - 10) >> 8);
	memcpy(pi->hdr + 10, dict, (size_t)dl);
	memset(pi->hdr + 10 + dl, ' ', total_hdr - 10 - (size_t)dl - 1);
	pi->hdr[total_hdr - 1] = '\n';
	pi->hdr_len = total_hdr;
	return 0;
}

/* ---- conversions ---- */

static void swap_samples(unsigned char *p, uint64_t n, uint32_t bytes)
{
	if (bytes == 2) {
		for (uint64_t i = 0; i < n; i++) {
			uint16_t v;
			memcpy(&v, p + i * 2, 2);
			v = __builtin_bswap16(v);
			memcpy(p + i * 2, &v, 2);
		}
	} else if (bytes == 4) {
		for (uint64_t i = 0; i < n; i++) {
			uint32_t v;
			memcpy(&v, p + i * 4, 4);
			v = __builtin_bswap32(v);
			memcpy(p + i * 4, &v, 4);
		}
	} else if (bytes == 8) {
		for (uint64_t i = 0; i < n; i++) {
			uint64_t v;
			memcpy(&v, p + i * 8, 8);
			v = __builtin_bswap64(v);
			memcpy(p + i * 8, &v, 8);
		}
	}
}

void px_mask(void *data, uint64_t n, uint32_t bytes, uint32_t nbits, int sgn)
{
	unsigned char *p = data;
	if (nbits >= bytes * 8 || nbits == 0)
		return;
	if (bytes == 1) {
		uint8_t m = (uint8_t)((1u << nbits) - 1);
		for (uint64_t i = 0; i < n; i++)
			p[i] = sgn ? (uint8_t)((int8_t)(p[i] << (8 - nbits)) >> (8 - nbits))
				   : (uint8_t)(p[i] & m);
	} else if (bytes == 2) {
		uint16_t m = (uint16_t)((1u << nbits) - 1);
		for (uint64_t i = 0; i < n; i++) {
			uint16_t v;
			memcpy(&v, p + i * 2, 2);
			v = sgn ? (uint16_t)((int16_t)(uint16_t)(v << (16 - nbits)) >> (16 - nbits))
				: (uint16_t)(v & m);
			memcpy(p + i * 2, &v, 2);
		}
	} else if (bytes == 4) {
		uint32_t m = (uint32_t)((1ull << nbits) - 1);
		for (uint64_t i = 0; i < n; i++) {
			uint32_t v;
			memcpy(&v, p + i * 4, 4);
			v = sgn ? (uint32_t)((int32_t)(v << (32 - nbits)) >> (32 - nbits))
				: (v & m);
			memcpy(p + i * 4, &v, 4);
		}
	}
}

void px_ybr_to_rgb(unsigned char *p, uint64_t npix)
{
	/* pydicom's matrix, in float32 like numpy */
	const float k_r_cr = (float)1.402, k_g_cb = (float)(-0.114 * 1.772 / 0.587),
		    k_g_cr = (float)(-0.299 * 1.402 / 0.587), k_b_cb = (float)1.772;
	for (uint64_t i = 0; i < npix; i++, p += 3) {
		float y = p[0], cb = (float)p[1] - 128.0f, cr = (float)p[2] - 128.0f;
		float c[3] = { y + k_r_cr * cr, y + k_g_cb * cb + k_g_cr * cr, y + k_b_cb * cb };
		for (int j = 0; j < 3; j++) {
			float v = floorf(c[j] + 0.5f);
			p[j] = v <= 0 ? 0 : v >= 255 ? 255 : (unsigned char)v;
		}
	}
}

static void ybr422_expand(const unsigned char *src, unsigned char *dst, uint64_t npix)
{
	for (uint64_t k = 0; k < npix; k += 2, src += 4, dst += 6) {
		dst[0] = src[0];
		dst[1] = src[2];
		dst[2] = src[3];
		dst[3] = src[1];
		dst[4] = src[2];
		dst[5] = src[3];
	}
}

static int grow(unsigned char **p, size_t *cap, size_t need)
{
	if (*cap >= need)
		return 0;
	unsigned char *n = realloc(*p, need);
	if (!n)
		return -ENOMEM;
	*p = n;
	*cap = need;
	return 0;
}

void px_scratch_free(struct px_scratch *s)
{
	free(s->src);
	free(s->dst);
	memset(s, 0, sizeof(*s));
}

/* Convert output pixels [a, b) (global pixel indexes) into dst. */
static int convert_range(const struct px_info *pi, px_pread_fn rd, void *ctx,
			 uint64_t a, uint64_t b, unsigned char *dst,
			 unsigned char *src)
{
	uint64_t n = b - a, fp = pi->frame_pixels;
	uint32_t bps = pi->bits_alloc / 8;
	int rc;

	if (pi->bits_alloc == 1) {
		uint64_t b0 = a / 8, b1 = (b + 7) / 8;
		rc = rd(ctx, src, (size_t)(b1 - b0), pi->pixel_offset + b0);
		if (rc)
			return rc;
		for (uint64_t g = a; g < b; g++)
			dst[g - a] = (src[g / 8 - b0] >> (g % 8)) & 1;
		return 0;
	}
	if (pi->photo == PX_YBR_FULL_422) {
		rc = rd(ctx, src, (size_t)(n * 2), pi->pixel_offset + a * 2);
		if (rc)
			return rc;
		ybr422_expand(src, dst, n);
		px_ybr_to_rgb(dst, n);
		return 0;
	}
	if (pi->spp == 3 && pi->planar == 1) {
		uint64_t f = a / fp, p = a % fp;
		for (uint32_t c = 0; c < 3; c++) {
			rc = rd(ctx, src + (size_t)(c * n * bps), (size_t)(n * bps),
				pi->pixel_offset + (f * 3 + c) * fp * bps + p * bps);
			if (rc)
				return rc;
		}
		if (bps == 1) {
			for (uint64_t i = 0; i < n; i++) {
				dst[i * 3] = src[i];
				dst[i * 3 + 1] = src[n + i];
				dst[i * 3 + 2] = src[2 * n + i];
			}
		} else {
			for (uint64_t i = 0; i < n; i++)
				for (uint32_t c = 0; c < 3; c++)
					memcpy(dst + (i * 3 + c) * bps, src + (c * n + i) * bps, bps);
		}
	} else {
		rc = rd(ctx, dst, (size_t)(n * pi->spp * bps),
			pi->pixel_offset + a * pi->spp * bps);
		if (rc)
			return rc;
	}
	uint64_t ns = n * pi->spp;
	if (pi->big_endian && bps > 1)
		swap_samples(dst, ns, bps);
	if (!pi->is_float && pi->nbits < pi->bits_alloc)
		px_mask(dst, ns, bps, pi->nbits, pi->out_signed);
	if (pi->photo == PX_YBR_FULL)
		px_ybr_to_rgb(dst, n);
	return 0;
}

int px_native_read(const struct px_info *pi, px_pread_fn rd, void *ctx,
		   void *out, uint64_t off, size_t len, struct px_scratch *s)
{
	unsigned char *o = out;
	uint64_t ps = (uint64_t)pi->out_spp * pi->out_bytes;
	if (!pi->native)
		return -EINVAL;
	if (off >= pi->data_len)
		return 0;
	if (len > pi->data_len - off)
		len = (size_t)(pi->data_len - off);
	if (!len)
		return 0;
	if (pi->identity)
		return rd(ctx, out, len, pi->pixel_offset + off);
	uint64_t g0 = off / ps, g1 = (off + len + ps - 1) / ps;
	if (pi->photo == PX_YBR_FULL_422) {
		g0 &= ~(uint64_t)1;
		g1 = (g1 + 1) & ~(uint64_t)1;
	}
	size_t chunk = PX_CHUNK;
	if (grow(&s->dst, &s->dst_cap, chunk * ps) ||
	    grow(&s->src, &s->src_cap, chunk * ps + 16))
		return -ENOMEM;
	for (uint64_t a = g0; a < g1;) {
		uint64_t b = g1 - a > chunk ? a + chunk : g1;
		if (pi->spp == 3 && pi->planar == 1 && pi->photo != PX_YBR_FULL_422) {
			uint64_t fend = (a / pi->frame_pixels + 1) * pi->frame_pixels;
			if (b > fend)
				b = fend;
		}
		int rc = convert_range(pi, rd, ctx, a, b, s->dst, s->src);
		if (rc)
			return rc;
		uint64_t lo = a * ps > off ? a * ps : off;
		uint64_t hi = b * ps < off + len ? b * ps : off + len;
		if (hi > lo)
			memcpy(o + (lo - off), s->dst + (lo - a * ps), (size_t)(hi - lo));
		a = b;
	}
	return 0;
}

int px_normalize(const struct px_info *pi, const struct px_decoded *d,
		 void *out, const char **why)
{
	unsigned char *o = out;
	const unsigned char *src = d->data;
	uint64_t fp = pi->frame_pixels, npix = fp * pi->frames;

	if (d->rows != pi->rows || d->cols != pi->cols || d->frames != pi->frames)
		FAIL(-EIO, "decoded image dimensions differ from the attributes");
	if (pi->photo == PX_PALETTE) {
		/* the decoder applied the LUT: RGB of 8 or 16 bits */
		if (d->spp != 3 || (d->bits_alloc != 8 && d->bits_alloc != 16))
			FAIL(-EIO, "palette lookup did not give RGB");
		uint32_t bps = d->bits_alloc / 8;
		if (d->len < npix * 3 * bps)
			FAIL(-EIO, "decoded pixel data too short");
		for (uint64_t i = 0; i < npix * 3; i++) {
			uint64_t f = i / (fp * 3), r = i % (fp * 3);
			uint64_t si = d->planar ? f * fp * 3 + (r % 3) * fp + r / 3 : i;
			uint16_t v;
			if (bps == 1)
				v = src[si];
			else
				memcpy(&v, src + si * 2, 2);
			memcpy(o + i * 2, &v, 2);
		}
		return 0;
	}
	if (d->spp != pi->spp)
		FAIL(-EIO, "decoded samples per pixel differ from the attributes");
	if (pi->is_float ? d->bits_alloc != pi->bits_alloc :
	    (d->bits_alloc != pi->bits_alloc && !(pi->bits_alloc == 1 && d->bits_alloc == 8)))
		FAIL(-EIO, "decoded bits allocated differ from the attributes");
	if (pi->bits_alloc == 1) {
		if (d->bits_alloc == 1 && d->len >= (npix + 7) / 8) {
			for (uint64_t g = 0; g < npix; g++)
				o[g] = (src[g / 8] >> (g % 8)) & 1;
		} else if (d->len >= npix) {
			for (uint64_t g = 0; g < npix; g++)
				o[g] = src[g] & 1;
		} else {
			FAIL(-EIO, "decoded pixel data too short");
		}
		return 0;
	}
	uint32_t bps = pi->bits_alloc / 8;
	int photo = d->photo ? d->photo : pi->photo;
	if (pi->spp == 3 && photo == PX_YBR_FULL_422 && d->len >= npix * 2 &&
	    d->len < npix * 3 && npix % 2 == 0) {
		/* subsampled as stored (RLE, deflated) */
		ybr422_expand(src, o, npix);
		px_ybr_to_rgb(o, npix);
		return 0;
	}
	if (d->len < npix * pi->spp * bps)
		FAIL(-EIO, "decoded pixel data too short");
	if (pi->spp == 3 && d->planar == 1) {
		for (uint64_t f = 0; f < pi->frames; f++) {
			const unsigned char *fs = src + f * fp * 3 * bps;
			unsigned char *fo = o + f * fp * 3 * bps;
			for (uint64_t i = 0; i < fp; i++)
				for (uint32_t c = 0; c < 3; c++)
					memcpy(fo + (i * 3 + c) * bps, fs + (c * fp + i) * bps, bps);
		}
	} else {
		memcpy(o, src, (size_t)(npix * pi->spp * bps));
	}
	if (!pi->is_float && pi->nbits < pi->bits_alloc)
		px_mask(o, npix * pi->spp, bps, pi->nbits, pi->out_signed);
	if (pi->spp == 3 && (photo == PX_YBR_FULL || photo == PX_YBR_FULL_422) && bps == 1)
		px_ybr_to_rgb(o, npix);
	return 0;
}

/* ---- RLE ---- */

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* PackBits into out[0, n); 0 or -1 when the data ends early */
static int packbits(const unsigned char *p, size_t len, unsigned char *out, uint64_t n,
		    size_t stride)
{
	uint64_t o = 0;
	size_t i = 0;
	while (o < n && i < len) {
		int c = (int8_t)p[i++];
		if (c >= 0) {
			uint64_t k = (uint64_t)c + 1;
			if (i + k > len)
				return -1;
			for (uint64_t j = 0; j < k && o < n; j++)
				out[(o++) * stride] = p[i + j];
			i += k;
		} else if (c != -128) {
			uint64_t k = (uint64_t)(1 - c);
			if (i >= len)
				return -1;
			for (uint64_t j = 0; j < k && o < n; j++)
				out[(o++) * stride] = p[i];
			i++;
		}
	}
	return o == n ? 0 : -1;
}

int px_rle_decode(const struct px_info *pi, const unsigned char *pix, size_t len,
		  void *out, const char **why)
{
	const unsigned char *frag[1024];
	size_t flen[1024], nf = 0, pos = 0;
	int first = 1;
	if (pi->bits_alloc < 8 || pi->photo == PX_PALETTE || pi->is_float)
		return 1;
	/* items: the basic offset table, then fragments */
	while (pos + 8 <= len) {
		uint32_t tag = (uint32_t)(pix[pos] | pix[pos + 1] << 8) << 16 | (pix[pos + 2] | pix[pos + 3] << 8);
		uint32_t l = le32(pix + pos + 4);
		pos += 8;
		if (tag == 0xFFFEE0DD)
			break;
		if (tag != 0xFFFEE000 || l > len - pos)
			return 1;
		if (!first) {
			if (nf == sizeof(frag) / sizeof(frag[0]))
				return 1;
			frag[nf] = pix + pos;
			flen[nf++] = l;
		}
		first = 0;
		pos += l;
	}
	if (nf != pi->frames || nf == 0)
		return 1;
	if (flen[0] < 64 || le32(frag[0]) < 1 || le32(frag[0]) > 15 || le32(frag[0] + 4) != 64)
		return 1;     /* not RLE */
	uint32_t bps = pi->bits_alloc / 8, nseg = pi->spp * bps;
	uint64_t fp = pi->frame_pixels;
	unsigned char *o = out;
	for (size_t f = 0; f < nf; f++) {
		const unsigned char *h = frag[f];
		if (flen[f] < 64 || le32(h) != nseg)
			FAIL(-EIO, "RLE segment count does not fit the attributes");
		unsigned char *fo = o + f * fp * pi->spp * bps;
		for (uint32_t s = 0; s < nseg; s++) {
			uint32_t a = le32(h + 4 + 4 * s);
			uint32_t b = s + 1 < nseg ? le32(h + 8 + 4 * s) : (uint32_t)flen[f];
			if (a < 64 || b < a || b > flen[f])
				FAIL(-EIO, "bad RLE segment offsets");
			uint32_t sample = s / bps, byte = bps - 1 - s % bps;
			if (packbits(h + a, b - a, fo + sample * bps + byte, fp,
				     (size_t)pi->spp * bps))
				FAIL(-EIO, "RLE segment too short");
		}
	}
	uint64_t ns = fp * pi->frames * pi->spp;
	if (pi->nbits < pi->bits_alloc)
		px_mask(out, ns, bps, pi->nbits, pi->out_signed);
	if (pi->photo == PX_YBR_FULL || pi->photo == PX_YBR_FULL_422)
		px_ybr_to_rgb(out, fp * pi->frames);
	return 0;
}

/* ---- PNG ---- */

static uint32_t crc_table[256];
static int crc_ready;

uint32_t px_crc32(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE)) {
		/* idempotent: racing threads compute the same table */
		for (uint32_t n = 0; n < 256; n++) {
			uint32_t c = n;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
			__atomic_store_n(&crc_table[n], c, __ATOMIC_RELAXED);
		}
		__atomic_store_n(&crc_ready, 1, __ATOMIC_RELEASE);
	}
	crc = ~crc;
	for (size_t i = 0; i < len; i++)
		crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

uint32_t px_adler32(uint32_t adler, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t a = adler & 0xffff, b = adler >> 16;
	while (len) {
		size_t n = len < 5552 ? len : 5552;
		len -= n;
		while (n--) {
			a += *p++;
			b += a;
		}
		a %= 65521;
		b %= 65521;
	}
	return b << 16 | a;
}

static uint64_t png_raw_len(const struct px_info *pi)
{
	uint32_t ch = pi->out_spp == 3 ? 3 : 1;
	return (uint64_t)pi->rows * (1 + (uint64_t)pi->cols * ch);
}

static uint64_t png_zlen(uint64_t raw)
{
	uint64_t nblk = raw ? (raw + 65534) / 65535 : 1;
	return 2 + nblk * 5 + raw + 4;
}

uint64_t px_png_size(const struct px_info *pi)
{
	uint64_t z = png_zlen(png_raw_len(pi));
	uint64_t nidat = (z + PX_IDAT_MAX - 1) / PX_IDAT_MAX;
	return 8 + 25 + z + 12 * nidat + 12;
}

static void be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* the zlib stream, spread over IDAT chunks */
struct emit {
	unsigned char *out;
	uint64_t pos;
	uint64_t z_left;      /* zlib bytes still to emit */
	uint32_t chunk_left;  /* room in the current IDAT */
	uint32_t crc;
	int open;
	uint64_t raw_left;    /* raw (filtered scanline) bytes still to emit */
	uint32_t blk_left;    /* raw bytes left in the current stored block */
	uint32_t adler;
};

static void em_bytes(struct emit *e, const unsigned char *p, uint64_t n)
{
	while (n) {
		if (!e->chunk_left) {
			if (e->open) {
				be32(e->out + e->pos, e->crc);
				e->pos += 4;
			}
			uint32_t l = e->z_left > PX_IDAT_MAX ? PX_IDAT_MAX : (uint32_t)e->z_left;
			be32(e->out + e->pos, l);
			memcpy(e->out + e->pos + 4, "IDAT", 4);
			e->crc = px_crc32(0, "IDAT", 4);
			e->pos += 8;
			e->chunk_left = l;
			e->open = 1;
		}
		uint32_t k = n < e->chunk_left ? (uint32_t)n : e->chunk_left;
		memcpy(e->out + e->pos, p, k);
		e->crc = px_crc32(e->crc, p, k);
		e->pos += k;
		e->chunk_left -= k;
		e->z_left -= k;
		p += k;
		n -= k;
	}
}

static void em_raw(struct emit *e, const unsigned char *p, uint64_t n)
{
	e->adler = px_adler32(e->adler, p, (size_t)n);
	while (n) {
		if (!e->blk_left) {
			uint32_t l = e->raw_left > 65535 ? 65535 : (uint32_t)e->raw_left;
			unsigned char h[5] = { (unsigned char)(e->raw_left <= 65535),
					       (unsigned char)l, (unsigned char)(l >> 8),
					       (unsigned char)~l, (unsigned char)(~l >> 8) };
			em_bytes(e, h, 5);
			e->blk_left = l;
		}
		uint32_t k = n < e->blk_left ? (uint32_t)n : e->blk_left;
		em_bytes(e, p, k);
		e->blk_left -= k;
		e->raw_left -= k;
		p += k;
		n -= k;
	}
}

static double sample_at(const struct px_info *pi, const unsigned char *p, uint64_t i)
{
	if (pi->is_float == 4) {
		float f;
		memcpy(&f, p + i * 4, 4);
		return f;
	}
	if (pi->is_float == 8) {
		double f;
		memcpy(&f, p + i * 8, 8);
		return f;
	}
	switch (pi->out_bytes) {
	case 1:
		return pi->out_signed ? (double)(int8_t)p[i] : (double)p[i];
	case 2: {
		uint16_t v;
		memcpy(&v, p + i * 2, 2);
		return pi->out_signed ? (double)(int16_t)v : (double)v;
	}
	default: {
		uint32_t v;
		memcpy(&v, p + i * 4, 4);
		return pi->out_signed ? (double)(int32_t)v : (double)v;
	}
	}
}

void px_window_from_record(const void *rec, size_t len, struct px_window *w)
{
	double c, wd;
	memset(w, 0, sizeof(*w));
	w->slope = 1;
	if (px_attr_double(rec, len, 0x00281053, &w->slope) <= 0 || w->slope == 0)
		w->slope = 1;
	if (px_attr_double(rec, len, 0x00281052, &w->intercept) <= 0)
		w->intercept = 0;
	if (px_attr_double(rec, len, 0x00281050, &c) > 0 &&
	    px_attr_double(rec, len, 0x00281051, &wd) > 0 && wd >= 1) {
		w->have = 1;
		w->center = c;
		w->width = wd;
	}
}

int px_png_write(const struct px_info *pi, const struct px_window *w,
		 const void *frame, unsigned char *out)
{
	const unsigned char *fr = frame;
	uint32_t ch = pi->out_spp == 3 ? 3 : 1;
	uint64_t raw = png_raw_len(pi);
	unsigned char *line = malloc(1 + (size_t)pi->cols * ch);
	if (!line)
		return -ENOMEM;

	memcpy(out, "\x89PNG\r\n\x1a\n", 8);
	unsigned char ihdr[25];
	be32(ihdr, 13);
	memcpy(ihdr + 4, "IHDR", 4);
	be32(ihdr + 8, pi->cols);
	be32(ihdr + 12, pi->rows);
	ihdr[16] = 8;
	ihdr[17] = ch == 3 ? 2 : 0;
	ihdr[18] = ihdr[19] = ihdr[20] = 0;
	be32(ihdr + 21, px_crc32(0, ihdr + 4, 17));
	memcpy(out + 8, ihdr, 25);

	struct emit e = { .out = out, .pos = 33, .z_left = png_zlen(raw),
			  .raw_left = raw, .adler = 1 };
	static const unsigned char zh[2] = { 0x78, 0x01 };
	em_bytes(&e, zh, 2);

	/* grey: rescale, then window or the frame's min/max */
	double lo = 0, hi = 0, scale = 0;
	int use_win = 0;
	uint64_t fp = pi->frame_pixels;
	if (ch == 1) {
		if (w->have) {
			use_win = 1;
		} else {
			int any = 0;
			for (uint64_t i = 0; i < fp; i++) {
				double x = sample_at(pi, fr, i) * w->slope + w->intercept;
				if (isnan(x))
					continue;
				if (!any || x < lo)
					lo = x;
				if (!any || x > hi)
					hi = x;
				any = 1;
			}
			scale = hi > lo ? 255.0 / (hi - lo) : 0;
		}
	}
	for (uint32_t r = 0; r < pi->rows; r++) {
		line[0] = 0;
		for (uint32_t c = 0; c < pi->cols; c++) {
			uint64_t i = (uint64_t)r * pi->cols + c;
			if (ch == 3) {
				for (uint32_t k = 0; k < 3; k++) {
					uint64_t si = i * 3 + k;
					uint32_t v;
					if (pi->out_bytes == 1) {
						v = fr[si];
					} else if (pi->out_bytes == 2) {
						uint16_t x;
						memcpy(&x, fr + si * 2, 2);
						v = ((uint32_t)x * 255 + 32767) / 65535;
					} else {
						uint32_t x;
						memcpy(&x, fr + si * 4, 4);
						v = x >> 24;
					}
					line[1 + c * 3 + k] = (unsigned char)v;
				}
				continue;
			}
			double x = sample_at(pi, fr, i) * w->slope + w->intercept, y;
			if (isnan(x)) {
				y = 0;
			} else if (use_win) {
				double c0 = w->center - 0.5, w1 = w->width - 1;
				if (x <= c0 - w1 / 2)
					y = 0;
				else if (x > c0 + w1 / 2)
					y = 255;
				else
					y = w1 > 0 ? ((x - c0) / w1 + 0.5) * 255 : 255;
			} else {
				y = (x - lo) * scale;
			}
			long v = lround(y);
			if (v < 0)
				v = 0;
			if (v > 255)
				v = 255;
			if (pi->photo == PX_MONO1)
				v = 255 - v;
			line[1 + c] = (unsigned char)v;
		}
		em_raw(&e, line, 1 + (uint64_t)pi->cols * ch);
	}
	unsigned char ad[4];
	be32(ad, e.adler);
	em_bytes(&e, ad, 4);
	be32(out + e.pos, e.crc);
	e.pos += 4;
	static const unsigned char iend[12] = { 0, 0, 0, 0, 'I', 'E', 'N', 'D',
						0xae, 0x42, 0x60, 0x82 };
	memcpy(out + e.pos, iend, 12);
	e.pos += 12;
	free(line);
	return e.pos == px_png_size(pi) ? 0 : -EIO;
}
