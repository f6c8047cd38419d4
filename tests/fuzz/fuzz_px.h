/*
 * fuzz_px.h - shared by the dicomfs fuzz harnesses (tests/fuzz/): feed a
 * px_info to every pixel generator that takes untrusted bytes (native .npy
 * conversion, RLE decoder, normalization of a decoded buffer, PNG writer),
 * as fs/kind_pixels.c does, with sizes capped so one input stays fast.
 */
#ifndef DICOMFS_FUZZ_PX_H
#define DICOMFS_FUZZ_PX_H
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "pixels.h"
#include "record.h"

#define FUZZ_PX_MAX ((uint64_t)4 << 20)

struct fz_src {
	const uint8_t *p;
	size_t n;
};

/* as src_pread in fs/kind_pixels.c: -EIO at end of file */
static int fz_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct fz_src *s = ctx;
	if (off > s->n || len > s->n - off)
		return -EIO;
	memcpy(buf, s->p + off, len);
	return 0;
}

static void fz_png(const struct px_info *pi, const void *rec, size_t rlen,
		   const void *frame)
{
	struct px_window w;
	uint64_t sz = px_png_size(pi);
	if (rec)
		px_window_from_record(rec, rlen, &w);
	else
		memset(&w, 0, sizeof(w));
	if (sz > 2 * FUZZ_PX_MAX)
		return;
	unsigned char *png = malloc(sz ? sz : 1);
	if (!png)
		return;
	px_png_write(pi, &w, frame, png);
	free(png);
}

/* whole file in memory: what .npy / .png serve from it */
static void fz_pixels(const struct px_info *pi, const uint8_t *file, size_t n,
		      const void *rec, size_t rlen)
{
	static struct px_scratch s;
	const char *why;
	if (pi->data_len > FUZZ_PX_MAX || pi->data_len == 0)
		return;
	unsigned char *out = malloc((size_t)pi->data_len);
	if (!out)
		return;
	struct fz_src src = { file, n };
	if (pi->native) {
		/* the whole data, then reads at odd offsets (as the page cache
		 * asks: 4 KiB pieces, and a piece straddling the header) */
		if (px_native_read(pi, fz_pread, &src, out, 0, (size_t)pi->data_len, &s) == 0)
			fz_png(pi, rec, rlen, out);
		uint64_t off = pi->data_len / 3;
		px_native_read(pi, fz_pread, &src, out, off, 4097, &s);
		px_native_read(pi, fz_pread, &src, out, pi->data_len - 1, 4096, &s);
	} else if (pi->encapsulated && pi->pixel_offset < n) {
		if (px_rle_decode(pi, file + pi->pixel_offset, n - (size_t)pi->pixel_offset,
				  out, &why) == 0)
			fz_png(pi, rec, rlen, out);
	}
	free(out);
}
#endif
