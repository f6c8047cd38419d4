/*
 * fgroups.c - the frame table of enhanced multi-frame objects (fgroups.h).
 *
 * Design notes
 * - One more dcmshim_walk of the header (the walk dcmjson.c makes hands the
 *   index top-level elements only): scan.c calls it only for instances
 *   with NumberOfFrames and for mosaics, so classic single-frame files pay
 *   nothing.
 * - The table (F1) stores a field once when every frame has the same
 *   value: an enhanced object keeps per frame what varies (mostly the
 *   position, the dimension indices): some 24-80 bytes per frame.
 * - The walk reports sequences and items as begin/end events; a small
 *   stack of (sequence tag, item number) frames tells where an element
 *   sits. An element counts only at depth 4: Shared (5200,9229) or
 *   Per-Frame (5200,9230) > item > a functional group macro > item.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fgroups.h"
#include "dcmshim.h"
#include "error.h"
#include "tags.h"

#define TAG_SHARED    0x52009229u
#define TAG_PERFRAME  0x52009230u
#define SEQ_POSITION  0x00209113u
#define SEQ_ORIENT    0x00209116u
#define SEQ_MEASURES  0x00289110u
#define SEQ_PVT       0x00289145u
#define SEQ_CONTENT   0x00209111u
#define SEQ_ECHO      0x00189114u
#define MAX_DEPTH     8
#define MAX_FRAMES    (1u << 20)

unsigned fg_width(int f, uint32_t ndim)
{
	static const unsigned w[FG_NFIELDS] = { 3, 6, 2, 2, 1, 1, 1, 0, 5 };
	return f == FG_DIM ? ndim : w[f];
}

/* the doubles of field f inside a frame */
static double *field(struct fg_frame *x, int f)
{
	switch (f) {
	case FG_POS: return x->pos;
	case FG_IOP: return x->iop;
	case FG_SPACING: return x->spacing;
	case FG_RESCALE: return &x->slope;    /* slope, inter: adjacent */
	case FG_TPI: return &x->tpi;
	case FG_ECHO: return &x->echo;
	case FG_TIME: return &x->time;
	case FG_MOSAIC: return x->mosaic;
	default: return x->dim;
	}
}

static void frame_clear(struct fg_frame *x)
{
	for (int f = 0; f < FG_NFIELDS; f++) {
		double *d = field(x, f);
		for (unsigned k = 0; k < fg_width(f, FG_MAXDIM); k++)
			d[k] = NAN;
	}
}

/* ---- the collector ---- */

struct col {
	struct fg_frame shared;
	struct fg_frame *pf;      /* per-frame items, npf of them */
	uint32_t npf, cap;
	uint32_t ndim;
	int any;                  /* a functional group sequence was seen */
	int err;
	int depth;
	uint8_t csa_block;        /* xx of (0029,00xx) "SIEMENS CSA HEADER", 0: none */
	uint32_t seq[MAX_DEPTH];  /* sequence tag at even depths */
	uint32_t item[MAX_DEPTH]; /* items so far in the sequence */
};

int fg_parse_ds(const char *v, size_t n, double *out, int max)
{
	char b[512];
	int k = 0;
	if (n >= sizeof(b))
		return 0;
	memcpy(b, v, n);
	b[n] = 0;
	char *p = b;
	while (k < max) {
		char *end;
		while (*p == ' ')
			p++;
		double d = strtod(p, &end);
		if (end == p || !isfinite(d))
			return k;
		out[k++] = d;
		while (*end == ' ')
			end++;
		if (*end != '\\')
			break;
		p = end + 1;
	}
	return k;
}

static int ds_values(const uint8_t *v, size_t n, double *out, int max)
{
	return fg_parse_ds((const char *)v, n, out, max);
}


/* DT "YYYYMMDDHHMMSS.FFFFFF" (offset ignored) -> seconds; 0 when bad */
static int dt_seconds(const uint8_t *v, size_t n, double *out)
{
	char b[40];
	while (n && (v[n - 1] == ' ' || v[n - 1] == 0))
		n--;
	if (n < 8 || n >= sizeof(b))
		return 0;
	memcpy(b, v, n);
	b[n] = 0;
	char *zone = strpbrk(b, "+-");
	if (zone)
		*zone = 0;
	size_t l = strlen(b), ip = strcspn(b, ".");
	int f[6] = { 0, 1, 1, 0, 0, 0 };
	static const int w[6] = { 4, 2, 2, 2, 2, 2 };
	size_t o = 0;
	for (int i = 0; i < 6 && o < ip; i++) {
		if (o + (size_t)w[i] > ip)
			return 0;
		int x = 0;
		for (int k = 0; k < w[i]; k++) {
			if (b[o + k] < '0' || b[o + k] > '9')
				return 0;
			x = x * 10 + (b[o + k] - '0');
		}
		f[i] = x;
		o += (size_t)w[i];
	}
	if (o != ip || f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > 31)
		return 0;
	double frac = 0;
	if (ip < l) {
		char *end;
		frac = strtod(b + ip, &end);
		if (*end || !isfinite(frac))
			return 0;
	}
	*out = (double)tags_days_from_civil(f[0], (unsigned)f[1], (unsigned)f[2]) * 86400.0 +
	       f[3] * 3600.0 + f[4] * 60.0 + f[5] + frac;
	return 1;
}

static uint64_t le_uint(const uint8_t *v, size_t w)
{
	uint64_t u = 0;
	for (size_t k = 0; k < w; k++)
		u |= (uint64_t)v[k] << (8 * k);
	return u;
}

/* the frame being filled, or NULL when the element is not ours */
static struct fg_frame *target(struct col *c, uint32_t *macro)
{
	if (c->depth != 4)
		return NULL;
	*macro = c->seq[2];
	if (c->seq[0] == TAG_SHARED)
		return c->item[0] == 1 ? &c->shared : NULL;
	if (c->seq[0] != TAG_PERFRAME || c->item[0] == 0 || c->item[0] > c->npf)
		return NULL;
	return &c->pf[c->item[0] - 1];
}

/* top-level elements: SpacingBetweenSlices and the CSA image header */
static void top_element(struct col *c, uint32_t tag, const uint8_t *v, size_t n)
{
	double d[3];
	if (tag == 0x00180088 && ds_values(v, n, d, 1) == 1) {
		c->shared.mosaic[4] = d[0];
	} else if ((tag & 0xFFFFFF00u) == 0x00290000u && (tag & 0xFF) >= 0x10) {
		static const char creator[] = "SIEMENS CSA HEADER";
		size_t l = n;
		while (l && (v[l - 1] == ' ' || v[l - 1] == 0))
			l--;
		if (l == sizeof(creator) - 1 && memcmp(v, creator, l) == 0 && !c->csa_block)
			c->csa_block = (uint8_t)(tag & 0xFF);
	} else if (c->csa_block && tag == (0x00290010u | (uint32_t)c->csa_block << 8)) {
		/* (0029,xx10): CSA Image Header Info */
		if (fg_csa_doubles(v, n, "NumberOfImagesInMosaic", d, 1) == 1 && d[0] >= 1)
			c->shared.mosaic[0] = d[0];
		if (fg_csa_doubles(v, n, "SliceNormalVector", d, 3) == 3)
			memcpy(c->shared.mosaic + 1, d, sizeof(d));
	}
}

static void cb_element(void *ctx, uint32_t tag, const char vr[2], const uint8_t *v,
		       size_t n, int64_t off)
{
	struct col *c = ctx;
	uint32_t macro;
	(void)off;
	if (c->depth == 0) {
		top_element(c, tag, v, n);
		return;
	}
	struct fg_frame *x = target(c, &macro);
	if (!x)
		return;
	/* decimal strings: (macro, tag) -> field, first value, count */
	static const struct { uint32_t macro, tag; int f, at, nv; } dsv[] = {
		{ SEQ_POSITION, 0x00200032, FG_POS, 0, 3 },
		{ SEQ_ORIENT, 0x00200037, FG_IOP, 0, 6 },
		{ SEQ_MEASURES, 0x00280030, FG_SPACING, 0, 2 },
		{ SEQ_PVT, 0x00281053, FG_RESCALE, 0, 1 },   /* slope */
		{ SEQ_PVT, 0x00281052, FG_RESCALE, 1, 1 },   /* intercept */
	};
	double d[6];
	for (size_t i = 0; i < sizeof(dsv) / sizeof(dsv[0]); i++)
		if (dsv[i].macro == macro && dsv[i].tag == tag) {
			if (ds_values(v, n, d, dsv[i].nv) == dsv[i].nv)
				memcpy(field(x, dsv[i].f) + dsv[i].at, d,
				       (size_t)dsv[i].nv * sizeof(double));
			return;
		}
	switch (macro) {
	case SEQ_CONTENT:
		if (tag == 0x00209128 && n == 4 && vr[0] == 'U' && vr[1] == 'L')
			x->tpi = (double)le_uint(v, 4);
		else if (tag == 0x00209157 && vr[0] == 'U' && vr[1] == 'L' && n % 4 == 0) {
			uint32_t k = (uint32_t)(n / 4);
			if (k > FG_MAXDIM)
				k = FG_MAXDIM;
			for (uint32_t i = 0; i < k; i++)
				x->dim[i] = (double)le_uint(v + 4 * i, 4);
			if (k > c->ndim)
				c->ndim = k;
		} else if (tag == 0x00189074 && dt_seconds(v, n, &d[0]))
			x->time = d[0];
		break;
	case SEQ_ECHO:
		if (tag == 0x00189082 && n == 8 && vr[0] == 'F' && vr[1] == 'D') {
			uint64_t u = le_uint(v, 8);
			memcpy(&d[0], &u, 8);
			if (isfinite(d[0]))
				x->echo = d[0];
		}
		break;
	}
}

static void push(struct col *c, uint32_t tag)
{
	if (c->depth < MAX_DEPTH) {
		c->seq[c->depth] = tag;
		c->item[c->depth] = 0;
	}
	c->depth++;
}

static void cb_seq_begin(void *ctx, uint32_t tag)
{
	struct col *c = ctx;
	if (c->depth == 0 && (tag == TAG_SHARED || tag == TAG_PERFRAME))
		c->any = 1;
	push(c, tag);
}

static void cb_item_begin(void *ctx)
{
	struct col *c = ctx;
	if (c->depth >= 1 && c->depth <= MAX_DEPTH)
		c->item[c->depth - 1]++;
	/* a new per-frame item */
	if (c->depth == 1 && c->seq[0] == TAG_PERFRAME && !c->err) {
		if (c->npf >= MAX_FRAMES) {
			c->err = -E2BIG;
		} else if (c->npf == c->cap) {
			uint32_t nc = c->cap ? c->cap * 2 : 64;
			struct fg_frame *p = realloc(c->pf, nc * sizeof(*p));
			if (!p) {
				c->err = -ENOMEM;
			} else {
				c->pf = p;
				c->cap = nc;
			}
		}
		if (!c->err)
			frame_clear(&c->pf[c->npf++]);
	}
	push(c, 0);
}

static void cb_end(void *ctx)
{
	struct col *c = ctx;
	if (c->depth > 0)
		c->depth--;
}

static void cb_seq_end(void *ctx, uint32_t tag)
{
	(void)tag;
	cb_end(ctx);
}

static const struct dcmshim_walk_ops ops = {
	.element = cb_element,
	.seq_begin = cb_seq_begin,
	.seq_end = cb_seq_end,
	.item_begin = cb_item_begin,
	.item_end = cb_end,
};

/* nothing set: every value NaN */
static int same(const double *a, const double *b, unsigned w)
{
	for (unsigned k = 0; k < w; k++)
		if (!(a[k] == b[k] || (isnan(a[k]) && isnan(b[k]))))
			return 0;
	return 1;
}

/* (F1): a pure function of the frames; host order like the record */
int fg_encode(const struct fg_frame *v, uint32_t n, uint32_t ndim, void **out,
	      size_t *outlen)
{
	struct fg_head h = { FG_VERSION, n, ndim, 0 };
	size_t nd = 0;
	if (ndim > FG_MAXDIM || n == 0)
		return -EINVAL;
	for (int f = 0; f < FG_NFIELDS; f++) {
		unsigned w = fg_width(f, ndim);
		const double *a = field((struct fg_frame *)&v[0], f);
		for (uint32_t i = 1; i < n; i++)
			if (!same(a, field((struct fg_frame *)&v[i], f), w)) {
				h.perframe |= 1u << f;
				break;
			}
		nd += (size_t)w * ((h.perframe >> f & 1) ? n : 1);
	}
	size_t len = sizeof(h) + nd * sizeof(double);
	unsigned char *t = malloc(len);
	if (!t)
		return -ENOMEM;
	memcpy(t, &h, sizeof(h));
	double *d = (double *)(void *)(t + sizeof(h));
	for (int f = 0; f < FG_NFIELDS; f++) {
		unsigned w = fg_width(f, ndim);
		uint32_t m = (h.perframe >> f & 1) ? n : 1;
		for (uint32_t i = 0; i < m; i++) {
			memcpy(d, field((struct fg_frame *)&v[i], f), w * sizeof(double));
			d += w;
		}
	}
	*out = t;
	*outlen = len;
	return 0;
}

int fg_collect(const void *buf, size_t len, int whole, uint32_t nframes,
	       void **out, size_t *outlen)
{
	struct dcmshim_info info;
	struct col *c = calloc(1, sizeof(*c));
	int rc;
	if (!c)
		return -ENOMEM;
	frame_clear(&c->shared);
	rc = dcmshim_walk(buf, len, whole, SIZE_MAX, &ops, c, &info);
	if (!rc && c->err)
		rc = c->err;
	if (!rc && !c->any && isnan(c->shared.mosaic[0]))
		rc = 1;
	if (!rc) {
		/* one frame per NumberOfFrames; a per-frame item overrides the
		 * shared value field by field */
		uint32_t n = nframes ? nframes : 1;
		struct fg_frame *v = n <= MAX_FRAMES ? malloc(n * sizeof(*v)) : NULL;
		if (!v) {
			rc = n <= MAX_FRAMES ? -ENOMEM : -E2BIG;
		} else {
			for (uint32_t i = 0; i < n; i++) {
				v[i] = c->shared;
				if (i >= c->npf)
					continue;
				for (int f = 0; f < FG_NFIELDS; f++) {
					double *dst = field(&v[i], f), *src = field(&c->pf[i], f);
					unsigned w = fg_width(f, FG_MAXDIM);
					/* a field is set as a whole (or its first value) */
					if (f == FG_RESCALE) {
						if (!isnan(src[0]))
							dst[0] = src[0];
						if (!isnan(src[1]))
							dst[1] = src[1];
					} else if (!isnan(src[0])) {
						memcpy(dst, src, w * sizeof(double));
					}
				}
			}
			rc = fg_encode(v, n, c->ndim, out, outlen);
			free(v);
		}
	}
	free(c->pf);
	free(c);
	return rc;
}

int fg_head_get(const void *t, size_t len, struct fg_head *h)
{
	if (!t || len < sizeof(*h))
		return -EINVAL;
	memcpy(h, t, sizeof(*h));
	if (h->version != FG_VERSION || h->ndim > FG_MAXDIM || h->nframes == 0 ||
	    h->nframes > MAX_FRAMES || h->perframe >> FG_NFIELDS)
		return -EINVAL;
	size_t nd = 0;
	for (int f = 0; f < FG_NFIELDS; f++)
		nd += (size_t)fg_width(f, h->ndim) * ((h->perframe >> f & 1) ? h->nframes : 1);
	return len == sizeof(*h) + nd * sizeof(double) ? 0 : -EINVAL;
}

void fg_frame(const void *t, size_t len, const struct fg_head *h, uint32_t i,
	      struct fg_frame *out)
{
	const unsigned char *d = (const unsigned char *)t + sizeof(*h);
	(void)len;      /* validated by fg_head_get (F2) */
	frame_clear(out);
	for (int f = 0; f < FG_NFIELDS; f++) {
		unsigned w = fg_width(f, h->ndim);
		int per = h->perframe >> f & 1;
		memcpy(field(out, f), d + (per ? (size_t)i * w : 0) * sizeof(double),
		       w * sizeof(double));
		d += (size_t)w * (per ? h->nframes : 1) * sizeof(double);
	}
}

/* ---- the CSA header ---- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)le_uint(p, 4);
}

int fg_csa_doubles(const uint8_t *buf, size_t len, const char *name, double *out,
		   int max)
{
	size_t o = 0;
	int sv10 = len >= 4 && memcmp(buf, "SV10", 4) == 0;
	if (sv10)
		o = 8;                  /* "SV10" + 4 unused bytes */
	if (o + 8 > len)
		return 0;
	uint32_t ntags = le32(buf + o);
	o += 8;                         /* count + an unused word */
	if (ntags == 0 || ntags > 1000)
		return 0;
	uint32_t first_items = 0;
	for (uint32_t t = 0; t < ntags; t++) {
		/* name[64] vm vr[4] syngodt nitems xx */
		if (o + 84 > len)
			return 0;
		const uint8_t *tn = buf + o;
		uint32_t nitems = le32(buf + o + 76);
		o += 84;
		if (nitems > 1000)
			return 0;
		if (t == 1)
			first_items = nitems;   /* the old layout's item lengths use it */
		int match = strnlen((const char *)tn, 64) == strlen(name) &&
			    memcmp(tn, name, strlen(name)) == 0;
		int got = 0;
		for (uint32_t i = 0; i < nitems; i++) {
			if (o + 16 > len)
				return 0;
			uint32_t il = sv10 ? le32(buf + o + 4) : le32(buf + o) - first_items;
			o += 16;
			if (il > len - o)
				return match ? got : 0;
			if (match && got < max && il) {
				double d;
				if (ds_values(buf + o, strnlen((const char *)buf + o, il), &d, 1) == 1)
					out[got++] = d;
				else
					return got;
			}
			o += (il + 3) & ~(size_t)3;
			if (o > len)
				o = len;
		}
		if (match)
			return got;
	}
	return 0;
}
