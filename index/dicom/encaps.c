/*
 * encaps.c - the item stream of encapsulated Pixel Data (see encaps.h for
 * the rules E1-E4).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "encaps.h"
#include "error.h"

#define FAIL(code, text) do { *why = (text); return (code); } while (0)

static uint32_t rd32(const uint8_t *p, int be)
{
	return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
		  : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint64_t rd64le(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void encaps_free(struct encaps *e)
{
	free(e->frag);
	memset(e, 0, sizeof(*e));
}

int encaps_scan(const uint8_t *p, size_t len, int be, struct encaps *e,
		const char **why)
{
	size_t cap = 0, pos = 0;
	int first = 1;

	memset(e, 0, sizeof(*e));
	for (;;) {
		if (len - pos < 8)
			break;   /* (E2) the end of the buffer */
		uint32_t tag = rd32(p + pos, be);
		tag = be ? tag : (tag << 16 | tag >> 16);   /* group, element */
		uint32_t vl = rd32(p + pos + 4, be);
		if (tag == 0xFFFEE0DD) {
			pos += 8;
			e->delimited = 1;
			break;
		}
		if (tag != 0xFFFEE000)
			break;   /* (E2) not an item: trailing bytes */
		if (vl == 0xFFFFFFFFu)
			FAIL(DFS_EPARSE, "a pixel data item of undefined length");
		pos += 8;
		if (vl > len - pos)   /* (E4) */
			FAIL(DFS_ETRUNC, "a pixel data fragment runs past the end of the file");
		if (first) {
			e->bot_off = pos;
			e->bot_len = vl;
			first = 0;
		} else {
			if (e->nfrag == cap) {
				size_t nc = cap ? cap * 2 : 16;
				struct encaps_frag *nf = realloc(e->frag, nc * sizeof(*nf));
				if (!nf)
					FAIL(-ENOMEM, "out of memory");
				e->frag = nf;
				cap = nc;
			}
			e->frag[e->nfrag].off = pos;
			e->frag[e->nfrag].len = vl;
			e->nfrag++;
		}
		pos += vl;
	}
	e->end = pos;
	if (first)
		FAIL(DFS_EPARSE, "encapsulated pixel data without items");
	if (!e->nfrag)
		FAIL(DFS_EPARSE, "encapsulated pixel data without fragments");
	return 0;
}

/* Frames from ascending offsets relative to the first fragment's item tag:
 * 0, or 1 when they do not fit the fragments (E3: the table is ignored). */
static int by_offsets(const struct encaps *e, uint32_t nframes, int wide, const uint8_t *tab,
		      int be, struct encaps_frame *fr)
{
	uint64_t base = e->frag[0].off - 8;
	size_t k = 0;
	for (uint32_t i = 0; i < nframes; i++) {
		uint64_t o = wide ? rd64le(tab + (size_t)i * 8) : rd32(tab + (size_t)i * 4, be);
		if (o > UINT64_MAX - base)
			return 1;
		o += base;
		while (k < e->nfrag && e->frag[k].off - 8 < o)
			k++;
		if (k == e->nfrag || e->frag[k].off - 8 != o)
			return 1;
		if (i && k <= fr[i - 1].first)
			return 1;
		fr[i].first = (uint32_t)k;
	}
	if (fr[0].first != 0)
		return 1;
	for (uint32_t i = 0; i < nframes; i++)
		fr[i].count = (i + 1 < nframes ? fr[i + 1].first : (uint32_t)e->nfrag) - fr[i].first;
	return 0;
}

/* does the fragment end with FF D9 (EOI / EOC), trailing 00 allowed? */
static int ends_frame(const uint8_t *p, const struct encaps_frag *f)
{
	uint64_t n = f->len;
	const uint8_t *q = p + f->off;
	while (n && q[n - 1] == 0)
		n--;
	return n >= 2 && q[n - 2] == 0xFF && q[n - 1] == 0xD9;
}

int encaps_frames(const uint8_t *p, const struct encaps *e, uint32_t nframes,
		  const uint8_t *eot, size_t eot_len, int be,
		  struct encaps_frame *fr, const char **why)
{
	int rc = 1;
	if (!nframes)
		FAIL(DFS_EPARSE, "no frames");
	if (e->nfrag > UINT32_MAX)
		FAIL(DFS_ETOOBIG, "too many fragments");
	if (eot && eot_len / 8 == nframes)
		rc = by_offsets(e, nframes, 1, eot, be, fr);
	if (rc && e->bot_len && e->bot_len / 4 == nframes && nframes <= e->nfrag)
		rc = by_offsets(e, nframes, 0, p + e->bot_off, be, fr);
	if (rc) {
		if (nframes == 1) {
			fr[0].first = 0;
			fr[0].count = (uint32_t)e->nfrag;
		} else if (e->nfrag == nframes) {
			for (uint32_t i = 0; i < nframes; i++) {
				fr[i].first = i;
				fr[i].count = 1;
			}
		} else if (e->nfrag > nframes) {
			uint32_t i = 0, start = 0;
			for (uint32_t k = 0; k < e->nfrag; k++) {
				if (!ends_frame(p, &e->frag[k]) && k + 1 < e->nfrag)
					continue;
				if (i == nframes)
					FAIL(DFS_EPARSE, "more frames in the fragments than NumberOfFrames");
				fr[i].first = start;
				fr[i].count = k + 1 - start;
				i++;
				start = k + 1;
			}
			if (i != nframes)
				FAIL(DFS_EPARSE, "fewer frames in the fragments than NumberOfFrames");
		} else {
			FAIL(DFS_EPARSE, "fewer fragments than frames and no offset table");
		}
	}
	for (uint32_t i = 0; i < nframes; i++) {
		uint64_t n = 0;
		for (uint32_t k = 0; k < fr[i].count; k++)
			n += e->frag[fr[i].first + k].len;
		fr[i].len = n;
	}
	return 0;
}

void encaps_frame_copy(const uint8_t *p, const struct encaps *e,
		       const struct encaps_frame *fr, uint8_t *out)
{
	for (uint32_t k = 0; k < fr->count; k++) {
		const struct encaps_frag *f = &e->frag[fr->first + k];
		memcpy(out, p + f->off, f->len);
		out += f->len;
	}
}
