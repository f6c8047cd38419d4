/*
 * palette.c - PALETTE COLOR lookup tables (see palette.h, L1-L5).
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "palette.h"
#include "error.h"

#define FAIL(code, text) do { *why = (text); return (code); } while (0)

static uint16_t rd16(const uint8_t *p, int be)
{
	return be ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

/* the segmented data as a sequence of values (words, or bytes when 8-bit) */
struct seg {
	const uint8_t *p;
	size_t n;       /* values */
	int bytes, be;
};

static uint32_t seg_at(const struct seg *s, size_t i)
{
	return s->bytes == 1 ? s->p[i] : rd16(s->p + 2 * i, s->be);
}

static int push(struct px_lut *lut, uint32_t v)
{
	if (lut->len >= PX_LUT_MAX)
		return -1;
	lut->v[lut->len++] = (uint16_t)v;
	return 0;
}

/*
 * Expand segments from value index off (L3; pydicom's _expand_segmented_lut):
 * at most nseg segments (0: all). A linear segment starts from the last
 * entry so far (in an indirect segment: the entry before it).
 */
static int expand(const struct seg *s, size_t off, uint32_t nseg, int depth,
		  struct px_lut *lut, const char **why)
{
	uint32_t done = 0;
	if (depth > PX_LUT_MAX_DEPTH)
		FAIL(DFS_EPARSE, "segmented palette: indirect segments nest too deep");
	while (off + 1 < s->n) {
		uint32_t op = seg_at(s, off), len = seg_at(s, off + 1);
		off += 2;
		if (op == 0) {          /* discrete */
			for (uint32_t i = 0; i < len; i++) {
				if (off >= s->n)
					break;   /* pydicom: a short slice */
				if (push(lut, seg_at(s, off++)))
					FAIL(DFS_ETOOBIG, "segmented palette longer than 65536 entries");
			}
		} else if (op == 1) {   /* linear */
			if (!lut->len)
				FAIL(DFS_EPARSE, "segmented palette: the first segment is linear");
			uint32_t y0 = lut->v[lut->len - 1];
			if (off >= s->n)
				FAIL(DFS_EPARSE, "segmented palette: linear segment cut short");
			uint32_t y1 = seg_at(s, off++);
			if (lut->len + (uint64_t)len > PX_LUT_MAX)
				FAIL(DFS_ETOOBIG, "segmented palette longer than 65536 entries");
			if (y0 == y1 || len == 0) {
				for (uint32_t i = 0; i < len; i++)
					push(lut, y1);
			} else {
				/* numpy.around(numpy.linspace(y0 + step, y1, len)) */
				double step = ((double)y1 - (double)y0) / len;
				double start = y0 + step, stop = y1;
				double div = len - 1, delta = stop - start;
				double st = len > 1 ? delta / div : 0;
				for (uint32_t i = 0; i < len; i++) {
					double y;
					if (len > 1 && i == len - 1)
						y = stop;
					else if (st == 0)
						y = (double)i / (div ? div : 1) * delta + start;
					else
						y = i * st + start;
					double r = nearbyint(y);
					push(lut, r < 0 ? 0 : r > 65535 ? 65535 : (uint32_t)r);
				}
			}
		} else if (op == 2) {   /* indirect */
			if (!lut->len)
				FAIL(DFS_EPARSE, "segmented palette: the first segment is indirect");
			uint64_t target;
			if (s->bytes == 1) {
				if (off + 3 >= s->n)
					FAIL(DFS_EPARSE, "segmented palette: indirect segment cut short");
				/* pydicom's byte order for 8-bit segment offsets */
				static const int lo[4] = { 3, 2, 1, 0 }, hi[4] = { 2, 3, 0, 1 };
				const int *ix = s->be ? hi : lo;
				uint32_t b[4];
				for (int k = 0; k < 4; k++)
					b[k] = seg_at(s, off + (size_t)ix[k]);
				target = (uint64_t)(b[0] << 8 | b[1]) << 16 | (b[2] << 8 | b[3]);
				off += 4;
			} else {
				if (off + 1 >= s->n)
					FAIL(DFS_EPARSE, "segmented palette: indirect segment cut short");
				target = (uint64_t)seg_at(s, off + 1) << 16 | seg_at(s, off);
				off += 2;
			}
			if (target >= s->n)
				FAIL(DFS_EPARSE, "segmented palette: indirect offset out of range");
			int rc = expand(s, (size_t)target, len, depth + 1, lut, why);
			if (rc)
				return rc;
		} else {
			FAIL(DFS_EPARSE, "segmented palette: unknown segment type");
		}
		if (++done == nseg)
			return 0;
	}
	return 0;
}

int px_lut_build(const uint8_t *desc, size_t desc_len, const uint8_t *data,
		 size_t data_len, int segmented, int be, int sign,
		 struct px_lut *lut, const char **why)
{
	if (!desc || desc_len < 6)
		FAIL(DFS_EPARSE, "palette descriptor missing or short");
	if (!data)
		FAIL(DFS_EPARSE, "palette LUT data missing");
	uint32_t n = rd16(desc, be), bits = rd16(desc + 4, be);
	uint16_t f = rd16(desc + 2, be);
	lut->n = n ? n : 65536;
	lut->first = sign ? (int16_t)f : (int32_t)f;
	lut->len = 0;
	if (!segmented) {
		/* L2: bytes per entry from the data length */
		if (data_len == lut->n) {
			for (uint32_t i = 0; i < lut->n; i++)
				lut->v[i] = data[i];
		} else if (data_len == (size_t)lut->n * 2) {
			for (uint32_t i = 0; i < lut->n; i++)
				lut->v[i] = rd16(data + 2 * (size_t)i, be);
		} else {
			FAIL(DFS_EPARSE, "palette LUT data length does not fit 8 or 16 bits per entry");
		}
		lut->len = lut->n;
		return 0;
	}
	if (bits != 8 && bits != 16)
		FAIL(DFS_EPARSE, "segmented palette with bits per entry other than 8, 16");
	struct seg s = { data, bits == 8 ? data_len : data_len / 2, bits / 8, be };
	int rc = expand(&s, 0, 0, 0, lut, why);
	if (rc)
		return rc;
	if (lut->len < lut->n)
		FAIL(DFS_EPARSE, "segmented palette shorter than its descriptor");
	return 0;
}

int px_lut_apply(const struct px_lut *lut[3], const void *idx, uint32_t bytes,
		 int is_signed, uint64_t npix, uint16_t *out, const char **why)
{
	const uint8_t *p = idx;
	if (bytes != 1 && bytes != 2)
		FAIL(-EINVAL, "palette index of other than 8 or 16 bits");
	for (int c = 1; c < 3; c++)
		if (lut[c]->len != lut[0]->len || lut[c]->n != lut[0]->n ||
		    lut[c]->first != lut[0]->first)
			FAIL(DFS_EPARSE, "the red, green and blue palettes differ in size");
	int64_t first = lut[0]->first, last = (int64_t)lut[0]->n - 1;
	for (uint64_t i = 0; i < npix; i++) {
		int64_t v;
		if (bytes == 1)
			v = is_signed ? (int8_t)p[i] : p[i];
		else {
			uint16_t u = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
			v = is_signed ? (int16_t)u : u;
		}
		int64_t k = v >= first ? v - first : 0;   /* L4 */
		if (k > last)
			k = last;
		for (int c = 0; c < 3; c++)
			out[3 * i + (uint64_t)c] = lut[c]->v[k];
	}
	return 0;
}
