/*
 * volume.c - volume geometry and grouping (see volume.h).
 *
 * Design notes
 * - Input order does not matter: images are sorted by (projection on the
 *   normal, the 4-D attribute, the instance id) before anything else.
 * - Tolerances (positions and cosines are decimal text, often rounded):
 *   two images are at the same position when their projections differ by
 *   less than POS_EPS mm; orientations agree within COS_EPS per cosine;
 *   the step between consecutive positions may differ from the mean step
 *   by STEP_ABS + STEP_REL * |mean step| mm.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "volume.h"
#include "fgroups.h"
#include "pixels.h"
#include "record.h"

#define POS_EPS  0.01
#define COS_EPS  1e-3
#define SPC_EPS  1e-3
#define STEP_ABS 0.02
#define STEP_REL 0.01

enum key { KEY_DIM, KEY_TEMPORAL, KEY_ECHO, KEY_TIME, NKEYS };

#define TAG_IMAGE_TYPE 0x00080008u
#define TAG_ACQ_TIME 0x00080032u
#define TAG_ECHO     0x00180086u
#define TAG_THICKNESS 0x00180050u
#define TAG_IPP      0x00200032u
#define TAG_IOP      0x00200037u
#define TAG_TPI      0x00200100u
#define TAG_FRAMES   0x00280008u
#define TAG_SPACING  0x00280030u
#define TAG_INTER    0x00281052u
#define TAG_SLOPE    0x00281053u

const char *vol_dim4_name(int dim4, int enhanced)
{
	switch (dim4) {
	case VOL_4D_DIMINDEX: return "DimensionIndexValues";
	case VOL_4D_TEMPORAL: return enhanced ? "TemporalPositionIndex" : "TemporalPositionIdentifier";
	case VOL_4D_ECHO: return enhanced ? "EffectiveEchoTime" : "EchoNumbers";
	case VOL_4D_ACQTIME: return enhanced ? "FrameAcquisitionDateTime" : "AcquisitionTime";
	}
	return "";
}

static int ds_of(const char *v, size_t l, double *out, int max)
{
	return v && l ? fg_parse_ds(v, l, out, max) : 0;
}

static int attr_ds(const struct vol_in *in, uint32_t tag, double *out, int max)
{
	const char *v;
	size_t l;
	return rec_attr(in->rec, in->len, tag, &v, &l) ? ds_of(v, l, out, max) : 0;
}

/* "HHMMSS.frac" (or "HH:MM:SS.frac") -> seconds; 0 when absent/bad */
static int time_of(const char *v, size_t l, double *out)
{
	char b[64], d[64];
	size_t n = 0;
	if (!v || !l || l >= sizeof(b))
		return 0;
	memcpy(b, v, l);
	b[l] = 0;
	for (size_t i = 0; i < l; i++)
		if (b[i] != ':')
			d[n++] = b[i];
	d[n] = 0;
	char *dot = strchr(d, '.');
	size_t ip = dot ? (size_t)(dot - d) : n;
	if (ip < 2 || ip > 6 || ip % 2)
		return 0;
	double f[3] = { 0, 0, 0 };
	for (size_t i = 0; i < ip; i++)
		if (d[i] < '0' || d[i] > '9')
			return 0;
	for (size_t i = 0; i < ip / 2; i++)
		f[i] = (d[2 * i] - '0') * 10 + (d[2 * i + 1] - '0');
	double frac = 0;
	if (dot) {
		char *end;
		frac = strtod(dot, &end);
		if (*end || !isfinite(frac))
			return 0;
	}
	*out = f[0] * 3600 + f[1] * 60 + f[2] + frac;
	return 1;
}

/* One image: a single-frame instance, or one frame of a multi-frame one. */
struct item {
	const struct vol_in *in;
	uint32_t frame;
	double pos[3], d;
	double slope, inter;
	double key[NKEYS];    /* see enum key */
	int has[NKEYS];
	double iop[6], spacing[2];
	double dim[FG_MAXDIM];  /* DimensionIndexValues (ndim of them) */
	uint32_t ndim;          /* 0: none */
};

static int cmp_d(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	if (x->in->id != y->in->id)
		return x->in->id < y->in->id ? -1 : 1;
	return x->frame < y->frame ? -1 : x->frame > y->frame;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void say(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static double dot3(const double *a, const double *b)
{
	return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}

static double norm3(const double *a)
{
	return sqrt(dot3(a, a));
}

void vol_plan_free(struct vol_plan *p)
{
	free(p->ids);
	free(p->frames);
	free(p->slopes);
	free(p->inters);
	p->ids = NULL;
	p->frames = NULL;
	p->slopes = p->inters = NULL;
}

static void *dup_n(const void *src, size_t n)
{
	void *d = malloc(n ? n : 1);
	if (d && n)
		memcpy(d, src, n);
	return d;
}

int vol_plan_copy(struct vol_plan *dst, const struct vol_plan *src)
{
	*dst = *src;
	dst->ids = dup_n(src->ids, src->nslices * sizeof(*dst->ids));
	dst->frames = dup_n(src->frames, src->nslices * sizeof(*dst->frames));
	dst->slopes = dst->inters = NULL;
	if (src->rescale_float) {
		dst->slopes = dup_n(src->slopes, src->nslices * sizeof(double));
		dst->inters = dup_n(src->inters, src->nslices * sizeof(double));
	}
	if (!dst->ids || !dst->frames ||
	    (src->rescale_float && (!dst->slopes || !dst->inters))) {
		vol_plan_free(dst);
		return -ENOMEM;
	}
	return 0;
}

static int key_less(const struct item *a, const struct item *b, int k)
{
	if (a->key[k] != b->key[k])
		return a->key[k] < b->key[k];
	return cmp_d(a, b) < 0;
}

/* insertion sort of a group by key k, ties by id and frame (groups are small) */
static void sort_group(struct item *g, size_t m, int k)
{
	for (size_t i = 1; i < m; i++) {
		struct item t = g[i];
		size_t j = i;
		while (j > 0 && key_less(&t, &g[j - 1], k)) {
			g[j] = g[j - 1];
			j--;
		}
		g[j] = t;
	}
}

/* can key k split every group of m images (ng groups)? */
static int splits(struct item *v, size_t ng, size_t m, int k)
{
	for (size_t g = 0; g < ng; g++)
		for (size_t i = 0; i < m; i++)
			if (!v[g * m + i].has[k])
				return 0;
	double *ref = malloc(m * sizeof(double)), *cur = malloc(m * sizeof(double));
	int ok = ref && cur;
	for (size_t g = 0; g < ng && ok; g++) {
		double *dst = g ? cur : ref;
		for (size_t i = 0; i < m; i++)
			dst[i] = v[g * m + i].key[k];
		qsort(dst, m, sizeof(double), cmp_dbl);
		for (size_t i = 1; i < m && ok; i++)
			if (dst[i] == dst[i - 1])
				ok = 0;
		/* all but the acquisition time: the same values at every position */
		if (ok && g && k != KEY_TIME)
			for (size_t i = 0; i < m && ok; i++)
				if (cur[i] != ref[i])
					ok = 0;
	}
	free(ref);
	free(cur);
	return ok;
}

/* lexicographic order of the DimensionIndexValues components in mask */
static int cmp_dimtuple(const struct item *a, const struct item *b, uint32_t mask)
{
	for (uint32_t c = 0; c < a->ndim && c < b->ndim; c++)
		if ((mask >> c & 1) && a->dim[c] != b->dim[c])
			return a->dim[c] < b->dim[c] ? -1 : 1;
	return 0;
}

/*
 * KEY_DIM: the DimensionIndexValues without the components that stay the
 * same among the images of each position (the spatial ones: stack, in-stack
 * position), as a rank (lexicographic order of what is left).
 */
static int dim_keys(struct item *v, size_t n, size_t ng, size_t m)
{
	uint32_t nd = v[0].ndim, mask = 0;
	for (size_t i = 0; i < n; i++)
		if (!v[i].ndim || v[i].ndim != nd)
			return 0;
	for (uint32_t c = 0; c < nd; c++)
		for (size_t g = 0; g < ng && !(mask >> c & 1); g++)
			for (size_t i = 1; i < m; i++)
				if (v[g * m + i].dim[c] != v[g * m].dim[c]) {
					mask |= 1u << c;
					break;
				}
	if (!mask)
		return 0;
	/* rank: a bottom-up merge sort of pointers (qsort() has no argument
	 * for the mask) */
	struct item **o = malloc(n * sizeof(*o)), **t = malloc(n * sizeof(*t));
	if (!o || !t) {
		free(o);
		free(t);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		o[i] = &v[i];
	for (size_t w = 1; w < n; w *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * w) {
			size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
			size_t a = lo, b = mid, k = lo;
			while (a < mid || b < hi)
				t[k++] = (b >= hi || (a < mid && cmp_dimtuple(o[a], o[b], mask) <= 0))
						 ? o[a++] : o[b++];
		}
		struct item **sw = o;
		o = t;
		t = sw;
	}
	free(t);
	double rank = 0;
	for (size_t i = 0; i < n; i++) {
		if (i && cmp_dimtuple(o[i - 1], o[i], mask))
			rank++;
		o[i]->key[KEY_DIM] = rank;
		o[i]->has[KEY_DIM] = 1;
	}
	free(o);
	return 0;
}

/* the top-level value when a frame has none */
/* dst[0, nv) from a DS value, NaN unless it has nv numbers */
static void fill_of(const char *v, size_t l, double *dst, int nv)
{
	if (ds_of(v, l, dst, nv) != nv)
		for (int k = 0; k < nv; k++)
			dst[k] = NAN;
}

static void frame_fill(const struct vol_in *x, double *dst, int nv, uint32_t tag,
		       const double *fv)
{
	if (!isnan(fv[0])) {
		memcpy(dst, fv, (size_t)nv * sizeof(double));
		return;
	}
	const char *v;
	size_t l;
	if (!rec_attr(x->rec, x->len, tag, &v, &l))
		v = NULL;
	fill_of(v, l, dst, nv);
}

/* the size of an instance's images: whole frames, or mosaic tiles */
struct shape {
	uint32_t rows, cols;
	uint32_t tpr;           /* mosaic: tiles per row (and column); 0: none */
};

/* an image from the instance's top-level attributes (found in one pass:
 * every instance of every series, at each tree build) */
enum { IT_IPP, IT_IOP, IT_SPACING, IT_SLOPE, IT_INTER, IT_TPI, IT_ECHO, IT_TIME, IT_N };
static const uint32_t it_tags[IT_N] = {
	TAG_IPP, TAG_IOP, TAG_SPACING, TAG_SLOPE, TAG_INTER, TAG_TPI, TAG_ECHO, TAG_ACQ_TIME,
};

static void item_top(const struct vol_in *x, struct item *it)
{
	double t1;
	long long lv;
	const char *v[IT_N];
	size_t l[IT_N];
	rec_attrs(x->rec, x->len, it_tags, IT_N, v, l);
	fill_of(v[IT_IPP], l[IT_IPP], it->pos, 3);
	fill_of(v[IT_IOP], l[IT_IOP], it->iop, 6);
	fill_of(v[IT_SPACING], l[IT_SPACING], it->spacing, 2);
	if (ds_of(v[IT_SLOPE], l[IT_SLOPE], &t1, 1) == 1 && t1 != 0)
		it->slope = t1;
	if (ds_of(v[IT_INTER], l[IT_INTER], &t1, 1) == 1)
		it->inter = t1;
	if (px_value_long(v[IT_TPI], l[IT_TPI], &lv) > 0) {
		it->key[KEY_TEMPORAL] = (double)lv;
		it->has[KEY_TEMPORAL] = 1;
	}
	if (px_value_long(v[IT_ECHO], l[IT_ECHO], &lv) > 0) {
		it->key[KEY_ECHO] = (double)lv;
		it->has[KEY_ECHO] = 1;
	}
	it->has[KEY_TIME] = time_of(v[IT_TIME], l[IT_TIME], &it->key[KEY_TIME]);
}

/* an image from frame ff of a frame table (top level where it has none) */
static void item_frame(const struct vol_in *x, const struct fg_frame *ff, uint32_t ndim,
		       struct item *it)
{
	double t1;
	frame_fill(x, it->pos, 3, TAG_IPP, ff->pos);
	frame_fill(x, it->iop, 6, TAG_IOP, ff->iop);
	frame_fill(x, it->spacing, 2, TAG_SPACING, ff->spacing);
	if (!isnan(ff->slope) && ff->slope != 0)
		it->slope = ff->slope;
	else if (attr_ds(x, TAG_SLOPE, &t1, 1) == 1 && t1 != 0)
		it->slope = t1;
	if (!isnan(ff->inter))
		it->inter = ff->inter;
	else if (attr_ds(x, TAG_INTER, &t1, 1) == 1)
		it->inter = t1;
	double k3[3] = { ff->tpi, ff->echo, ff->time };
	for (int k = 0; k < 3; k++)
		if (!isnan(k3[k])) {
			it->key[KEY_TEMPORAL + k] = k3[k];
			it->has[KEY_TEMPORAL + k] = 1;
		}
	if (ndim && !isnan(ff->dim[0])) {
		memcpy(it->dim, ff->dim, sizeof(it->dim));
		it->ndim = ndim;
	}
}

/*
 * The tiles of a Siemens mosaic (as nibabel's MosaicWrapper and dcm2niix
 * place them): tiles of rows/m x cols/m in an m x m grid, m =
 * ceil(sqrt(NumberOfImagesInMosaic)), row-major; the position of tile 0 is
 * ImagePositionPatient moved by half the size difference between the
 * mosaic and a tile, tile k is k steps of SpacingBetweenSlices (else
 * SliceThickness, else 1 mm) along SliceNormalVector (else row x column
 * cosine). base: the instance's image from its top-level attributes.
 */
static int mosaic_tiles(const struct vol_in *x, const struct px_info *pi,
			const struct fg_frame *ff, const struct item *base,
			struct item *out, struct shape *sh, char *why, size_t whylen)
{
	uint32_t nt = (uint32_t)ff->mosaic[0], m = 1;
	while ((uint64_t)m * m < nt)
		m++;
	if (pi->rows % m || pi->cols % m) {
		say(why, whylen, "a Siemens mosaic of %u images whose %ux%u pixels do not split "
		    "into %ux%u tiles", nt, pi->cols, pi->rows, m, m);
		return 1;
	}
	sh->rows = pi->rows / m;
	sh->cols = pi->cols / m;
	sh->tpr = m;
	const double *r = base->iop, *c = base->iop + 3;
	double nrm[3] = { r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2],
			  r[0] * c[1] - r[1] * c[0] };
	if (!isnan(ff->mosaic[1]))
		memcpy(nrm, ff->mosaic + 1, sizeof(nrm));
	double step = ff->mosaic[4], t1;
	if (isnan(step) || !(step > 0))
		step = attr_ds(x, TAG_THICKNESS, &t1, 1) == 1 && t1 > 0 ? t1 : 1;
	double dr = (pi->rows - sh->rows) / 2.0, dc = (pi->cols - sh->cols) / 2.0;
	for (uint32_t k = 0; k < nt; k++) {
		out[k] = *base;
		out[k].frame = k;
		for (int a = 0; a < 3; a++)
			out[k].pos[a] = base->pos[a] + c[a] * base->spacing[0] * dr +
					r[a] * base->spacing[1] * dc + k * step * nrm[a];
	}
	return 0;
}

/* the images of one instance appended at (*v)[*n], their size in *sh;
 * 1 with why: not a volume */
static int expand(const struct vol_in *x, const struct px_info *pi, struct item **v,
		  size_t *n, size_t *cap, int *enhanced, struct shape *sh, char *why,
		  size_t whylen)
{
	void *t = NULL;
	size_t tl = 0;
	struct fg_head fh;
	struct fg_frame ff;
	uint32_t frames = pi->frames ? pi->frames : 1, count = frames;
	const char *it;
	size_t il;
	int rc = rec_blob(x->rec, x->len, FG_REC_TAG, &t, &tl);
	if (rc < 0)
		return rc;
	int table = rc == 1 && fg_head_get(t, tl, &fh) == 0;
	int mosaic = rec_attr(x->rec, x->len, TAG_IMAGE_TYPE, &it, &il) &&
		     memmem(it, il, "MOSAIC", 6);
	rc = 1;
	sh->rows = pi->rows;
	sh->cols = pi->cols;
	sh->tpr = 0;
	if (table)
		fg_frame(t, tl, &fh, 0, &ff);
	if (mosaic && (!table || frames != 1 || isnan(ff.mosaic[0]))) {
		say(why, whylen, "Siemens mosaic images without NumberOfImagesInMosaic in their "
		    "CSA image header (not demosaiced)");
		goto out;
	}
	/* at least one pixel per tile (this also bounds the allocation) */
	if (mosaic && !(ff.mosaic[0] >= 1 && ff.mosaic[0] <= (double)pi->rows * pi->cols)) {
		say(why, whylen, "a Siemens mosaic claiming %g images in %ux%u pixels",
		    ff.mosaic[0], pi->cols, pi->rows);
		goto out;
	}
	if (mosaic)
		count = (uint32_t)ff.mosaic[0];
	if (!table && frames > 1) {
		say(why, whylen, "multi-frame images without per-frame geometry (no Plane "
		    "Position/Orientation functional groups)");
		goto out;
	}
	if (table && fh.nframes != frames) {
		say(why, whylen, "the functional groups describe %u frames, NumberOfFrames %u",
		    fh.nframes, frames);
		goto out;
	}
	if (*n + count > *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		while (nc < *n + count)
			nc *= 2;
		struct item *nv = realloc(*v, nc * sizeof(**v));
		if (!nv) {
			rc = -ENOMEM;
			goto out;
		}
		*v = nv;
		*cap = nc;
	}
	for (uint32_t f = 0; f < (mosaic ? 1 : frames); f++) {
		struct item *x1 = &(*v)[*n];
		memset(x1, 0, sizeof(*x1));
		x1->in = x;
		x1->frame = f;
		x1->slope = 1;
		x1->inter = 0;
		if (!table || mosaic) {
			item_top(x, x1);
		} else {
			if (f)
				fg_frame(t, tl, &fh, f, &ff);
			item_frame(x, &ff, fh.ndim, x1);
		}
		if (!mosaic)
			(*n)++;
	}
	if (mosaic) {
		struct item base = (*v)[*n];
		if (isnan(base.pos[0]) || isnan(base.iop[0]) || isnan(base.spacing[0])) {
			say(why, whylen, "a Siemens mosaic without ImagePositionPatient, "
			    "ImageOrientationPatient or PixelSpacing");
			goto out;
		}
		if ((rc = mosaic_tiles(x, pi, &ff, &base, *v + *n, sh, why, whylen)))
			goto out;
		*n += count;
	}
	*enhanced |= table && !mosaic;
	rc = 0;
out:
	free(t);
	return rc;
}

int vol_plan_make(const struct vol_in *in, size_t n, struct vol_plan *p,
		  char *why, size_t whylen)
{
	struct item *v = NULL;
	struct shape sh0 = { 0 }, sh;
	size_t ni = 0, cap = 0;
	struct px_info pi0;
	double iop0[6] = { 0 }, sp0[2] = { 0 }, nrm[3] = { 0 };
	int rc = 1, enhanced = 0;

	memset(p, 0, sizeof(*p));
	if (n == 0) {
		say(why, whylen, "no images");
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		const struct vol_in *x = &in[i];
		struct px_info pi;
		const char *pw = NULL;
		if (px_info_from_record(x->rec, x->len, &x->h, &pi, &pw)) {
			say(why, whylen, "an image has no servable pixels (%s)", pw ? pw : "?");
			goto out;
		}
		if (pi.out_spp != 1) {
			say(why, whylen, "colour images");
			goto out;
		}
		if (i == 0) {
			pi0 = pi;
		} else if (pi.out_bytes != pi0.out_bytes || pi.out_signed != pi0.out_signed ||
			   pi.is_float != pi0.is_float) {
			say(why, whylen, "different pixel formats (%s and %s)", pi0.descr,
			    pi.descr);
			goto out;
		}
		rc = expand(x, &pi, &v, &ni, &cap, &enhanced, i ? &sh : &sh0, why, whylen);
		if (rc)
			goto out;
		rc = 1;
		if (i && (sh.tpr != 0) != (sh0.tpr != 0)) {
			say(why, whylen, "Siemens mosaics mixed with other images");
			goto out;
		}
		if (i && (sh.rows != sh0.rows || sh.cols != sh0.cols || pi.cols != pi0.cols)) {
			say(why, whylen, "different image sizes (%ux%u and %ux%u)",
			    sh0.cols, sh0.rows, sh.cols, sh.rows);
			goto out;
		}
	}
	if (ni < 2) {
		say(why, whylen, "single image");
		goto out;
	}
	for (size_t i = 0; i < ni; i++) {
		double *iop = v[i].iop, *sp = v[i].spacing;
		if (isnan(v[i].pos[0])) {
			say(why, whylen, "missing or bad ImagePositionPatient%s",
			    enhanced ? " (Plane Position functional group)" : "");
			goto out;
		}
		if (isnan(iop[0])) {
			say(why, whylen, "missing or bad ImageOrientationPatient%s",
			    enhanced ? " (Plane Orientation functional group)" : "");
			goto out;
		}
		if (isnan(sp[0]) || !(sp[0] > 0) || !(sp[1] > 0)) {
			say(why, whylen, "missing or bad PixelSpacing%s",
			    enhanced ? " (Pixel Measures functional group)" : "");
			goto out;
		}
		if (i == 0) {
			double nr = norm3(iop), nc = norm3(iop + 3);
			if (fabs(nr - 1) > 0.01 || fabs(nc - 1) > 0.01 ||
			    fabs(dot3(iop, iop + 3)) > 0.01) {
				say(why, whylen, "ImageOrientationPatient is not two orthogonal unit vectors");
				goto out;
			}
			for (int k = 0; k < 3; k++) {
				iop0[k] = iop[k] / nr;
				iop0[3 + k] = iop[3 + k] / nc;
			}
			nrm[0] = iop0[1] * iop0[5] - iop0[2] * iop0[4];
			nrm[1] = iop0[2] * iop0[3] - iop0[0] * iop0[5];
			nrm[2] = iop0[0] * iop0[4] - iop0[1] * iop0[3];
			double nn = norm3(nrm);
			for (int k = 0; k < 3; k++)
				nrm[k] /= nn;
			sp0[0] = sp[0];
			sp0[1] = sp[1];
		} else {
			for (int k = 0; k < 6; k++)
				if (fabs(iop[k] - iop0[k]) > COS_EPS) {
					say(why, whylen, "mixed orientations");
					goto out;
				}
			if (fabs(sp[0] - sp0[0]) > SPC_EPS || fabs(sp[1] - sp0[1]) > SPC_EPS) {
				say(why, whylen, "different pixel spacings");
				goto out;
			}
		}
		v[i].d = dot3(v[i].pos, nrm);
	}
	qsort(v, ni, sizeof(*v), cmp_d);

	/* group by position */
	size_t ng = 0, m = 0;
	for (size_t i = 0; i < ni;) {
		size_t j = i + 1;
		while (j < ni && v[j].d - v[j - 1].d < POS_EPS)
			j++;
		for (size_t k = i + 1; k < j; k++) {
			double dd[3] = { v[k].pos[0] - v[i].pos[0], v[k].pos[1] - v[i].pos[1],
					 v[k].pos[2] - v[i].pos[2] };
			if (norm3(dd) > 10 * POS_EPS + STEP_ABS) {
				say(why, whylen, "images in one slice plane at different in-plane positions");
				goto out;
			}
		}
		if (ng == 0)
			m = j - i;
		else if (j - i != m) {
			say(why, whylen, "duplicate positions that do not split evenly (%zu and %zu images "
			    "at different positions)", m, j - i);
			goto out;
		}
		ng++;
		i = j;
	}
	if (ng < 2) {
		say(why, whylen, "%zu images at a single slice position", ni);
		goto out;
	}
	int dim4 = VOL_4D_NONE;
	if (m > 1) {
		if (enhanced && (rc = dim_keys(v, ni, ng, m)) < 0)
			goto out;
		rc = 1;
		for (int k = 0; k < NKEYS && !dim4; k++)
			if (splits(v, ng, m, k))
				dim4 = k + 1;
		if (!dim4) {
			say(why, whylen, "%zu images at each of %zu positions, not told apart by %s",
			    m, ng, enhanced ? "DimensionIndexValues, TemporalPositionIndex, "
			    "EffectiveEchoTime or FrameAcquisitionDateTime" :
			    "TemporalPositionIdentifier, EchoNumbers or AcquisitionTime");
			goto out;
		}
		for (size_t g = 0; g < ng; g++)
			sort_group(v + g * m, m, dim4 - 1);
	}

	/* spacing: the mean step between consecutive positions, checked */
	double step[3];
	const double *first = v[0].pos, *last = v[(ng - 1) * m].pos;
	for (int k = 0; k < 3; k++)
		step[k] = (last[k] - first[k]) / (double)(ng - 1);
	double sl = norm3(step), tol = STEP_ABS + STEP_REL * sl;
	for (size_t g = 1; g < ng; g++) {
		const double *a = v[(g - 1) * m].pos, *b = v[g * m].pos;
		double dd[3] = { b[0] - a[0] - step[0], b[1] - a[1] - step[1], b[2] - a[2] - step[2] };
		if (norm3(dd) > tol) {
			say(why, whylen, "uneven slice spacing (step %.3f mm between positions %zu and %zu, "
			    "mean %.3f mm)", norm3((double[3]){ b[0] - a[0], b[1] - a[1], b[2] - a[2] }),
			    g - 1, g, sl);
			goto out;
		}
	}

	/* the plan */
	p->nx = sh0.cols;
	p->ny = sh0.rows;
	p->mosaic = sh0.tpr;
	p->src_cols = pi0.cols;
	p->nz = (uint32_t)ng;
	p->nt = (uint32_t)m;
	p->dim4 = dim4;
	p->enhanced = enhanced;
	/* NIfTI-1 dim[] is int16: a larger side cannot be written (and one
	 * volume.npy without its volume.nii would be a trap) */
	if (p->nx > INT16_MAX || p->ny > INT16_MAX || p->nz > INT16_MAX || p->nt > INT16_MAX) {
		say(why, whylen, "%u x %u x %u x %u voxels: a side above NIfTI-1's 32767 "
		    "(dim[] is 16-bit)", p->nx, p->ny, p->nz, p->nt);
		goto out;
	}
	p->in_bytes = pi0.out_bytes;
	p->in_signed = pi0.out_signed;
	p->in_float = pi0.is_float;
	p->nslices = ni;
	p->slope = v[0].slope;
	p->inter = v[0].inter;
	for (size_t i = 1; i < ni; i++)
		if (v[i].slope != p->slope || v[i].inter != p->inter)
			p->rescale_float = 1;
	if (p->rescale_float) {
		p->vox_bytes = 4;
		p->datatype = 16;
		memcpy(p->descr, "<f4", 4);
		p->slope = 1;
		p->inter = 0;
	} else {
		p->vox_bytes = pi0.out_bytes;
		memcpy(p->descr, pi0.descr, 4);
		if (pi0.is_float)
			p->datatype = pi0.out_bytes == 8 ? 64 : 16;
		else if (pi0.out_bytes == 1)
			p->datatype = pi0.out_signed ? 256 : 2;
		else if (pi0.out_bytes == 2)
			p->datatype = pi0.out_signed ? 4 : 512;
		else if (pi0.out_bytes == 4)
			p->datatype = pi0.out_signed ? 8 : 768;
		else {
			say(why, whylen, "unsupported sample size");
			goto out;
		}
	}
	p->slice_bytes = (uint64_t)p->nx * p->ny * p->vox_bytes;
	p->data_len = p->slice_bytes * ni;
	p->spacing[0] = sp0[1];
	p->spacing[1] = sp0[0];
	p->spacing[2] = fabs(dot3(step, nrm));
	/* LPS affine, then x and y negated */
	for (int r = 0; r < 3; r++) {
		double sgn = r < 2 ? -1 : 1;
		p->sform[r][0] = sgn * iop0[r] * sp0[1];
		p->sform[r][1] = sgn * iop0[3 + r] * sp0[0];
		p->sform[r][2] = sgn * step[r];
		p->sform[r][3] = sgn * first[r];
	}
	p->ids = malloc(ni * sizeof(*p->ids));
	p->frames = malloc(ni * sizeof(*p->frames));
	if (p->rescale_float) {
		p->slopes = malloc(ni * sizeof(double));
		p->inters = malloc(ni * sizeof(double));
	}
	if (!p->ids || !p->frames || (p->rescale_float && (!p->slopes || !p->inters))) {
		vol_plan_free(p);
		rc = -ENOMEM;
		goto out;
	}
	for (size_t g = 0; g < ng; g++)
		for (size_t t = 0; t < m; t++) {
			const struct item *it = &v[g * m + t];
			size_t s = t * ng + g;
			p->ids[s] = it->in->id;
			p->frames[s] = it->frame;
			if (p->rescale_float) {
				p->slopes[s] = it->slope;
				p->inters[s] = it->inter;
			}
		}
	rc = 0;
out:
	free(v);
	if (rc)
		memset(p, 0, sizeof(*p));
	return rc;
}

uint64_t vol_src_run(const struct vol_plan *p, size_t s, uint64_t off, uint64_t *src_off)
{
	uint64_t sb = (uint64_t)p->nx * p->ny * p->in_bytes;
	if (!p->mosaic) {
		*src_off = (uint64_t)p->frames[s] * sb + off;
		return sb - off;
	}
	uint64_t rb = (uint64_t)p->nx * p->in_bytes, row = off / rb, in = off % rb;
	uint32_t k = p->frames[s], tr = k / p->mosaic, tc = k % p->mosaic;
	*src_off = (((uint64_t)tr * p->ny + row) * p->src_cols + (uint64_t)tc * p->nx) *
		   p->in_bytes + in;
	return rb - in;
}

/* ---- headers ---- */

static void put16(unsigned char *b, size_t off, int16_t v) { memcpy(b + off, &v, 2); }
static void put32(unsigned char *b, size_t off, int32_t v) { memcpy(b + off, &v, 4); }
static void putf(unsigned char *b, size_t off, double v)
{
	float f = (float)v;
	memcpy(b + off, &f, 4);
}

/* nifti1_io's nifti_mat44_to_quatern for an orthonormal R (columns u0 u1 u2) */
static void quatern(double R[3][3], double *qb, double *qc, double *qd, double *qfac)
{
	double det = R[0][0] * (R[1][1] * R[2][2] - R[1][2] * R[2][1]) -
		     R[0][1] * (R[1][0] * R[2][2] - R[1][2] * R[2][0]) +
		     R[0][2] * (R[1][0] * R[2][1] - R[1][1] * R[2][0]);
	*qfac = 1;
	if (det < 0) {
		*qfac = -1;
		for (int r = 0; r < 3; r++)
			R[r][2] = -R[r][2];
	}
	double a = R[0][0] + R[1][1] + R[2][2] + 1, b, c, d;
	if (a > 0.5) {
		a = 0.5 * sqrt(a);
		b = 0.25 * (R[2][1] - R[1][2]) / a;
		c = 0.25 * (R[0][2] - R[2][0]) / a;
		d = 0.25 * (R[1][0] - R[0][1]) / a;
	} else {
		double xd = 1 + R[0][0] - (R[1][1] + R[2][2]);
		double yd = 1 + R[1][1] - (R[0][0] + R[2][2]);
		double zd = 1 + R[2][2] - (R[0][0] + R[1][1]);
		if (xd > 1) {
			b = 0.5 * sqrt(xd);
			c = 0.25 * (R[0][1] + R[1][0]) / b;
			d = 0.25 * (R[0][2] + R[2][0]) / b;
			a = 0.25 * (R[2][1] - R[1][2]) / b;
		} else if (yd > 1) {
			c = 0.5 * sqrt(yd);
			b = 0.25 * (R[0][1] + R[1][0]) / c;
			d = 0.25 * (R[1][2] + R[2][1]) / c;
			a = 0.25 * (R[0][2] - R[2][0]) / c;
		} else {
			d = 0.5 * sqrt(zd);
			b = 0.25 * (R[0][2] + R[2][0]) / d;
			c = 0.25 * (R[1][2] + R[2][1]) / d;
			a = 0.25 * (R[1][0] - R[0][1]) / d;
		}
		if (a < 0) {
			b = -b;
			c = -c;
			d = -d;
		}
	}
	*qb = b;
	*qc = c;
	*qd = d;
}

void vol_nii_header(const struct vol_plan *p, unsigned char h[VOL_NII_HDR])
{
	memset(h, 0, VOL_NII_HDR);
	put32(h, 0, 348);
	h[38] = 'r';                                  /* regular */
	int nd = p->nt > 1 ? 4 : 3;
	int16_t dim[8] = { (int16_t)nd, (int16_t)p->nx, (int16_t)p->ny, (int16_t)p->nz,
			   (int16_t)p->nt, 1, 1, 1 };
	for (int i = 0; i < 8; i++)
		put16(h, 40 + 2 * i, dim[i]);
	put16(h, 70, p->datatype);
	put16(h, 72, (int16_t)(p->vox_bytes * 8));
	/* qform: rotation from the cosines, slice axis along the normal */
	double R[3][3], qb, qc, qd, qfac;
	for (int r = 0; r < 3; r++) {
		R[r][0] = p->sform[r][0] / p->spacing[0];
		R[r][1] = p->sform[r][1] / p->spacing[1];
	}
	/* normal (RAS) = u0 x u1, pointing along the slice step */
	double nv[3] = { R[1][0] * R[2][1] - R[2][0] * R[1][1],
			 R[2][0] * R[0][1] - R[0][0] * R[2][1],
			 R[0][0] * R[1][1] - R[1][0] * R[0][1] };
	double nn = sqrt(nv[0] * nv[0] + nv[1] * nv[1] + nv[2] * nv[2]);
	double sd = nv[0] * p->sform[0][2] + nv[1] * p->sform[1][2] + nv[2] * p->sform[2][2];
	for (int r = 0; r < 3; r++)
		R[r][2] = (sd < 0 ? -1 : 1) * nv[r] / nn;
	quatern(R, &qb, &qc, &qd, &qfac);
	float pixdim[8] = { (float)qfac, (float)p->spacing[0], (float)p->spacing[1],
			    (float)p->spacing[2], 1, 1, 1, 1 };
	for (int i = 0; i < 8; i++)
		putf(h, 76 + 4 * i, pixdim[i]);
	putf(h, 108, VOL_NII_HDR);                    /* vox_offset */
	putf(h, 112, p->slope);
	putf(h, 116, p->inter);
	h[123] = 2;                                   /* xyzt_units: mm */
	char descr[80];
	snprintf(descr, sizeof(descr), "dicomfs%s%s%s", p->dim4 ? " 4-D by " : "",
		 vol_dim4_name(p->dim4, p->enhanced), p->rescale_float ? " rescaled" : "");
	memcpy(h + 148, descr, strlen(descr));
	put16(h, 252, 1);                             /* qform_code: scanner */
	put16(h, 254, 1);                             /* sform_code: scanner */
	putf(h, 256, qb);
	putf(h, 260, qc);
	putf(h, 264, qd);
	putf(h, 268, p->sform[0][3]);
	putf(h, 272, p->sform[1][3]);
	putf(h, 276, p->sform[2][3]);
	for (int r = 0; r < 3; r++)
		for (int c = 0; c < 4; c++)
			putf(h, 280 + 16 * r + 4 * c, p->sform[r][c]);
	memcpy(h + 344, "n+1\0", 4);
	/* 348..351: extension flag 0 */
}

uint32_t vol_npy_header(const struct vol_plan *p, char out[256])
{
	char dict[200], shape[80];
	if (p->nt > 1)
		snprintf(shape, sizeof(shape), "%u, %u, %u, %u", p->nt, p->nz, p->ny, p->nx);
	else
		snprintf(shape, sizeof(shape), "%u, %u, %u", p->nz, p->ny, p->nx);
	int dl = snprintf(dict, sizeof(dict),
			  "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
			  p->descr, shape);
	uint32_t total = (uint32_t)(10 + dl + 1 + 63) / 64 * 64;
	memcpy(out, "\x93NUMPY\x01\x00", 8);
	out[8] = (char)((total - 10) & 0xff);
	out[9] = (char)((total - 10) >> 8);
	memcpy(out + 10, dict, (size_t)dl);
	memset(out + 10 + dl, ' ', total - 10 - (size_t)dl - 1);
	out[total - 1] = '\n';
	return total;
}

void vol_rescale(const struct vol_plan *p, size_t s, const void *in, float *out,
		 size_t count)
{
	double a = p->slopes ? p->slopes[s] : 1, b = p->inters ? p->inters[s] : 0;
	const unsigned char *q = in;
	for (size_t i = 0; i < count; i++, q += p->in_bytes) {
		double x;
		if (p->in_float) {
			if (p->in_bytes == 8) {
				double d;
				memcpy(&d, q, 8);
				x = d;
			} else {
				float f;
				memcpy(&f, q, 4);
				x = f;
			}
		} else if (p->in_bytes == 1) {
			x = p->in_signed ? (double)*(const int8_t *)q : (double)*q;
		} else if (p->in_bytes == 2) {
			uint16_t u;
			memcpy(&u, q, 2);
			x = p->in_signed ? (double)(int16_t)u : (double)u;
		} else {
			uint32_t u;
			memcpy(&u, q, 4);
			x = p->in_signed ? (double)(int32_t)u : (double)u;
		}
		out[i] = (float)(x * a + b);
	}
}
