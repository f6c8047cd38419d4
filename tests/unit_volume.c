/* unit_volume.c - volume grouping, ordering, affine and headers (index/dicom/volume.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "unit.h"
#include "record.h"
#include "fgroups.h"
#include "volume.h"

#define MAXI 64

struct img {
	double pos[3];
	const char *iop;      /* NULL: axial */
	const char *spacing;  /* NULL: "0.5\\0.75" */
	int rows, cols;       /* 0: 4 x 3 */
	int tpi, echo;        /* 0: absent */
	const char *acq;      /* NULL: absent */
	const char *slope, *inter;
	int frames;
	int no_ipp;
	const char *itype;    /* ImageType, NULL: absent */
};

static struct rec_buf bufs[MAXI];
static struct vol_in ins[MAXI];

static void add(struct rec_buf *b, uint32_t tag, const char *vr, const char *v)
{
	rec_add(b, tag, vr, v, strlen(v));
}

/* records sorted by tag, as the index stores them */
static void mk(size_t i, const struct img *m)
{
	struct rec_head h;
	char t[128];
	memset(&h, 0, sizeof(h));
	h.version = REC_VERSION;
	h.pixel_tag = 0x7FE00010;
	h.pixel_offset = 0x100;
	h.pixel_length = 1 << 20;
	h.id = 1000 + i;
	rec_release(&bufs[i]);
	rec_begin(&bufs[i], &h);
	if (m->itype)
		add(&bufs[i], 0x00080008, "CS", m->itype);
	if (m->acq)
		add(&bufs[i], 0x00080032, "TM", m->acq);
	if (m->echo) {
		snprintf(t, sizeof(t), "%d", m->echo);
		add(&bufs[i], 0x00180086, "IS", t);
	}
	if (!m->no_ipp) {
		snprintf(t, sizeof(t), "%.6f\\%.6f\\%.6f", m->pos[0], m->pos[1], m->pos[2]);
		add(&bufs[i], 0x00200032, "DS", t);
	}
	add(&bufs[i], 0x00200037, "DS", m->iop ? m->iop : "1\\0\\0\\0\\1\\0");
	if (m->tpi) {
		snprintf(t, sizeof(t), "%d", m->tpi);
		add(&bufs[i], 0x00200100, "IS", t);
	}
	if (m->frames) {
		snprintf(t, sizeof(t), "%d", m->frames);
		add(&bufs[i], 0x00280008, "IS", t);
	}
	snprintf(t, sizeof(t), "%d", m->rows ? m->rows : 4);
	add(&bufs[i], 0x00280010, "US", t);
	snprintf(t, sizeof(t), "%d", m->cols ? m->cols : 3);
	add(&bufs[i], 0x00280011, "US", t);
	add(&bufs[i], 0x00280030, "DS", m->spacing ? m->spacing : "0.5\\0.75");
	add(&bufs[i], 0x00280100, "US", "16");
	add(&bufs[i], 0x00280101, "US", "16");
	add(&bufs[i], 0x00280102, "US", "15");
	add(&bufs[i], 0x00280103, "US", "1");
	if (m->inter)
		add(&bufs[i], 0x00281052, "DS", m->inter);
	if (m->slope)
		add(&bufs[i], 0x00281053, "DS", m->slope);
	ins[i].rec = bufs[i].data;
	ins[i].len = bufs[i].len;
	rec_head_get(bufs[i].data, bufs[i].len, &ins[i].h);
	ins[i].id = h.id;
}

static int plan(size_t n, struct vol_plan *p, char *why)
{
	why[0] = 0;
	return vol_plan_make(ins, n, p, why, 256);
}

static int near(double a, double b) { return fabs(a - b) < 1e-6; }

static void test_axial_shuffled(void)
{
	struct img m = { 0 };
	struct vol_plan p;
	char why[256];
	/* positions z = 10, 12.5, 15, ... given in a scrambled order */
	int order[5] = { 3, 0, 4, 1, 2 };
	for (size_t i = 0; i < 5; i++) {
		m.pos[0] = -20;
		m.pos[1] = -30;
		m.pos[2] = 10 + 2.5 * order[i];
		mk(i, &m);
	}
	int rc = plan(5, &p, why);
	CHECK(rc == 0, "axial: rc %d (%s)", rc, why);
	if (rc)
		return;
	CHECK(p.nx == 3 && p.ny == 4 && p.nz == 5 && p.nt == 1, "dims %u %u %u %u", p.nx, p.ny,
	      p.nz, p.nt);
	for (size_t k = 0; k < 5; k++)
		CHECK(p.ids[k] == 1000 + (size_t)(k == 0 ? 1 : k == 1 ? 3 : k == 2 ? 4 : k == 3 ? 0 : 2),
		      "slice %zu is id %llu", k, (unsigned long long)p.ids[k]);
	/* RAS: x, y negated; column spacing 0.75 along +x (LPS) */
	CHECK(near(p.sform[0][0], -0.75) && near(p.sform[1][1], -0.5) && near(p.sform[2][2], 2.5),
	      "diag %g %g %g", p.sform[0][0], p.sform[1][1], p.sform[2][2]);
	CHECK(near(p.sform[0][3], 20) && near(p.sform[1][3], 30) && near(p.sform[2][3], 10),
	      "offset %g %g %g", p.sform[0][3], p.sform[1][3], p.sform[2][3]);
	CHECK(p.datatype == 4 && p.vox_bytes == 2 && !p.rescale_float, "dtype %d", p.datatype);
	CHECK(p.data_len == 3 * 4 * 5 * 2, "data_len %llu", (unsigned long long)p.data_len);
	unsigned char h[VOL_NII_HDR];
	vol_nii_header(&p, h);
	int32_t sz;
	int16_t dim[8], dt;
	float vo, srow[4], qb, qc, qd, pd[8];
	memcpy(&sz, h, 4);
	memcpy(dim, h + 40, 16);
	memcpy(&dt, h + 70, 2);
	memcpy(&vo, h + 108, 4);
	memcpy(srow, h + 280, 16);
	memcpy(&qb, h + 256, 4);
	memcpy(&qc, h + 260, 4);
	memcpy(&qd, h + 264, 4);
	memcpy(pd, h + 76, 32);
	CHECK(sz == 348 && dim[0] == 3 && dim[1] == 3 && dim[2] == 4 && dim[3] == 5 && dt == 4,
	      "header dims");
	CHECK(vo == 352.0f && memcmp(h + 344, "n+1", 4) == 0, "vox_offset / magic");
	CHECK(srow[0] == -0.75f && srow[3] == 20.0f, "srow_x %g %g", srow[0], srow[3]);
	/* LPS->RAS of an axial: rotation by 180 degrees about z: quaternion (0,0,0,1) */
	CHECK(fabsf(qb) < 1e-6 && fabsf(qc) < 1e-6 && fabsf(qd - 1) < 1e-6 && pd[0] == 1.0f,
	      "quatern %g %g %g qfac %g", qb, qc, qd, pd[0]);
	CHECK(near(pd[3], 2.5), "pixdim3 %g", pd[3]);
	char nh[256];
	uint32_t nl = vol_npy_header(&p, nh);
	nh[nl - 1] = 0;
	CHECK(nl % 64 == 0 && strstr(nh + 10, "'shape': (5, 4, 3)") && strstr(nh + 10, "'<i2'"),
	      "npy header %u %s", nl, nh + 10);
	vol_plan_free(&p);
}

static void test_tilt_and_oblique(void)
{
	struct img m = { 0 };
	struct vol_plan p;
	char why[256];
	/* gantry tilt: positions step along z and y (shear) */
	for (size_t i = 0; i < 4; i++) {
		m.pos[0] = 0;
		m.pos[1] = 0.5 * (double)i;
		m.pos[2] = 3.0 * (double)i;
		mk(i, &m);
	}
	int rc = plan(4, &p, why);
	CHECK(rc == 0, "tilt: %s", why);
	if (!rc) {
		CHECK(near(p.sform[1][2], -0.5) && near(p.sform[2][2], 3), "tilt step %g %g",
		      p.sform[1][2], p.sform[2][2]);
		CHECK(near(p.spacing[2], 3), "tilt spacing %g", p.spacing[2]);
		vol_plan_free(&p);
	}
	/* oblique: rotated about x by 30 degrees; slices along the normal */
	double c = cos(M_PI / 6), s = sin(M_PI / 6);
	char iop[128];
	snprintf(iop, sizeof(iop), "1\\0\\0\\0\\%.8f\\%.8f", c, s);
	m.iop = iop;
	double n[3] = { 0, -s, c };   /* row x col */
	for (size_t i = 0; i < 4; i++) {
		for (int k = 0; k < 3; k++)
			m.pos[k] = 5 + 2.0 * (double)(3 - i) * n[k];
		mk(i, &m);
	}
	rc = plan(4, &p, why);
	CHECK(rc == 0, "oblique: %s", why);
	if (!rc) {
		CHECK(p.ids[0] == 1003, "oblique first slice id %llu", (unsigned long long)p.ids[0]);
		CHECK(near(p.sform[1][2], 2 * s) && near(p.sform[2][2], 2 * c), "oblique step");
		CHECK(near(p.spacing[2], 2), "oblique spacing %g", p.spacing[2]);
		vol_plan_free(&p);
	}
}

static void test_4d(void)
{
	struct img m = { 0 };
	struct vol_plan p;
	char why[256];
	size_t n = 0;
	for (int t = 3; t >= 1; t--)
		for (int z = 0; z < 4; z++) {
			m.pos[2] = z * 2.0;
			m.tpi = t;
			mk(n++, &m);
		}
	int rc = plan(n, &p, why);
	CHECK(rc == 0 && p.nz == 4 && p.nt == 3 && p.dim4 == VOL_4D_TEMPORAL, "4-D tpi: %s", why);
	if (!rc) {
		/* volume t=0 (TPI 1) slice 0: made at t=1 -> index 8 */
		CHECK(p.ids[0] == 1008 && p.ids[4 * 2 + 3] == 1003, "4-D order");
		unsigned char h[VOL_NII_HDR];
		int16_t dim[8];
		vol_nii_header(&p, h);
		memcpy(dim, h + 40, 16);
		CHECK(dim[0] == 4 && dim[4] == 3, "4-D header dims");
		vol_plan_free(&p);
	}
	/* echoes instead */
	n = 0;
	m.tpi = 0;
	for (int e = 1; e <= 2; e++)
		for (int z = 0; z < 3; z++) {
			m.pos[2] = z;
			m.echo = e;
			mk(n++, &m);
		}
	rc = plan(n, &p, why);
	CHECK(rc == 0 && p.dim4 == VOL_4D_ECHO && p.nt == 2, "4-D echo: %s", why);
	if (!rc)
		vol_plan_free(&p);
	/* duplicates without a distinguishing attribute */
	n = 0;
	m.echo = 0;
	for (int e = 1; e <= 2; e++)
		for (int z = 0; z < 3; z++) {
			m.pos[2] = z;
			mk(n++, &m);
		}
	rc = plan(n, &p, why);
	CHECK(rc == 1 && strstr(why, "not told apart"), "dups: %d %s", rc, why);
	/* uneven counts */
	rc = plan(5, &p, why);
	CHECK(rc == 1 && strstr(why, "do not split evenly"), "uneven: %d %s", rc, why);
	/* acquisition time */
	n = 0;
	static const char *acq[2][3] = { { "101500.5", "101501", "101502" },
					 { "101600", "101601.25", "101602" } };
	for (int e = 0; e < 2; e++)
		for (int z = 0; z < 3; z++) {
			m.pos[2] = z;
			m.acq = acq[1 - e][z];
			mk(n++, &m);
		}
	rc = plan(n, &p, why);
	CHECK(rc == 0 && p.dim4 == VOL_4D_ACQTIME && p.ids[0] == 1003, "4-D acq: %s", why);
	if (!rc)
		vol_plan_free(&p);
}

static void test_rejects(void)
{
	struct img m = { 0 };
	struct vol_plan p;
	char why[256];
	mk(0, &m);
	CHECK(plan(1, &p, why) == 1 && strstr(why, "single image"), "single: %s", why);
	m.pos[2] = 1;
	m.iop = "0\\1\\0\\0\\0\\-1";
	mk(1, &m);
	CHECK(plan(2, &p, why) == 1 && strstr(why, "mixed orientations"), "mixed: %s", why);
	m.iop = NULL;
	m.rows = 5;
	mk(1, &m);
	CHECK(plan(2, &p, why) == 1 && strstr(why, "different image sizes"), "sizes: %s", why);
	m.rows = 0;
	m.no_ipp = 1;
	mk(1, &m);
	CHECK(plan(2, &p, why) == 1 && strstr(why, "ImagePositionPatient"), "no ipp: %s", why);
	m.no_ipp = 0;
	m.frames = 3;
	mk(1, &m);
	CHECK(plan(2, &p, why) == 1 && strstr(why, "multi-frame"), "frames: %s", why);
	m.frames = 0;
	/* uneven spacing: 0, 1, 3 */
	m.pos[2] = 1;
	mk(1, &m);
	m.pos[2] = 3;
	mk(2, &m);
	CHECK(plan(3, &p, why) == 1 && strstr(why, "uneven slice spacing"), "spacing: %s", why);
	/* same position only */
	m.pos[2] = 0;
	m.tpi = 1;
	mk(0, &m);
	m.tpi = 2;
	mk(1, &m);
	CHECK(plan(2, &p, why) == 1 && strstr(why, "single slice position"), "one pos: %s", why);
	/* NIfTI-1 dim[] is int16: 32767 columns are fine, 32768 are not */
	struct img w = { 0 };
	w.rows = 1;
	w.cols = 32767;
	mk(0, &w);
	w.pos[2] = 1;
	mk(1, &w);
	CHECK(plan(2, &p, why) == 0 && p.nx == 32767, "32767 columns: %s", why);
	vol_plan_free(&p);
	w.cols = 40000;
	mk(1, &w);
	w.pos[2] = 0;
	mk(0, &w);
	CHECK(plan(2, &p, why) == 1 && strstr(why, "32767"), "40000 columns: %s", why);
	w.cols = 1;
	w.rows = 65535;
	mk(0, &w);
	w.pos[2] = 1;
	mk(1, &w);
	CHECK(plan(2, &p, why) == 1 && strstr(why, "32767"), "65535 rows: %s", why);
}

static void test_rescale(void)
{
	struct img m = { 0 };
	struct vol_plan p;
	char why[256];
	for (size_t i = 0; i < 3; i++) {
		m.pos[2] = (double)i;
		m.slope = "2";
		m.inter = "-1024";
		mk(i, &m);
	}
	int rc = plan(3, &p, why);
	CHECK(rc == 0 && !p.rescale_float && p.slope == 2 && p.inter == -1024, "same rescale");
	if (!rc)
		vol_plan_free(&p);
	m.slope = "0.5";
	m.pos[2] = 1;
	mk(1, &m);
	rc = plan(3, &p, why);
	CHECK(rc == 0 && p.rescale_float && p.datatype == 16 && p.vox_bytes == 4, "float rescale: %d %s", rc, why);
	if (!rc) {
		int16_t in[2] = { 10, -4 };
		float out[2];
		vol_rescale(&p, 1, in, out, 2);
		CHECK(out[0] == -1019.0f && out[1] == -1026.0f, "rescaled %g %g", out[0], out[1]);
		vol_rescale(&p, 0, in, out, 2);
		CHECK(out[0] == -1004.0f, "rescaled slice 0 %g", out[0]);
		vol_plan_free(&p);
	}
}

/* instance i becomes a multi-frame one with frames v[0, n) (a frame table) */
static void mk_frames(size_t i, const struct fg_frame *v, uint32_t n, uint32_t ndim,
		      size_t cut)
{
	struct img m = { 0 };
	void *t;
	size_t tl;
	m.frames = (int)n;
	m.no_ipp = 1;
	mk(i, &m);
	CHECK(fg_encode(v, n, ndim, &t, &tl) == 0, "fg_encode");
	rec_add_blob(&bufs[i], FG_REC_TAG, "OB", t, tl - cut);
	free(t);
	ins[i].rec = bufs[i].data;
	ins[i].len = bufs[i].len;
}

static void frame_at(struct fg_frame *f, double z, double tpi, double stack, double instack)
{
	for (size_t k = 0; k < sizeof(*f) / sizeof(double); k++)
		((double *)f)[k] = NAN;
	f->pos[0] = 1;
	f->pos[1] = 2;
	f->pos[2] = z;
	memcpy(f->iop, (double[6]){ 1, 0, 0, 0, 1, 0 }, sizeof(f->iop));
	f->spacing[0] = 0.5;
	f->spacing[1] = 0.75;
	f->tpi = tpi;
	f->dim[0] = stack;
	f->dim[1] = instack;
	f->dim[2] = tpi;
}

static void test_enhanced(void)
{
	struct fg_frame v[6];
	struct vol_plan p;
	char why[256];
	/* 3 positions x 2 temporal positions, stored scrambled */
	static const int z[6] = { 2, 0, 1, 2, 0, 1 }, t[6] = { 2, 1, 2, 1, 2, 1 };
	for (int f = 0; f < 6; f++)
		frame_at(&v[f], 10 + 4.0 * z[f], t[f], 1, z[f] + 1);
	mk_frames(0, v, 6, 3, 0);
	int rc = plan(1, &p, why);
	CHECK(rc == 0 && p.nz == 3 && p.nt == 2 && p.dim4 == VOL_4D_DIMINDEX && p.enhanced,
	      "enhanced 4-D: rc %d nz %u nt %u dim4 %d (%s)", rc, p.nz, p.nt, p.dim4, why);
	if (!rc) {
		/* slice t * nz + k is the frame at position k, time t */
		for (size_t s = 0; s < 6; s++) {
			uint32_t f = p.frames[s];
			CHECK(p.ids[s] == 1000 && f < 6 && z[f] == (int)(s % 3) && t[f] == (int)(s / 3) + 1,
			      "slice %zu is frame %u", s, f);
		}
		CHECK(near(p.sform[2][2], 4) && near(p.sform[2][3], 10) && p.data_len == 6 * 24,
		      "enhanced affine %g %g", p.sform[2][2], p.sform[2][3]);
		vol_plan_free(&p);
	}
	/* without DimensionIndexValues: TemporalPositionIndex */
	for (int f = 0; f < 6; f++)
		v[f].dim[0] = v[f].dim[1] = v[f].dim[2] = NAN;
	mk_frames(0, v, 6, 0, 0);
	rc = plan(1, &p, why);
	CHECK(rc == 0 && p.dim4 == VOL_4D_TEMPORAL && p.nt == 2, "by TemporalPositionIndex: %s", why);
	if (!rc) {
		CHECK(strcmp(vol_dim4_name(p.dim4, p.enhanced), "TemporalPositionIndex") == 0, "name");
		vol_plan_free(&p);
	}
	/* a per-frame rescale: float32 */
	for (int f = 0; f < 6; f++) {
		v[f].slope = 1 + f;
		v[f].inter = 0;
	}
	mk_frames(0, v, 6, 0, 0);
	rc = plan(1, &p, why);
	CHECK(rc == 0 && p.rescale_float, "per-frame rescale: %s", why);
	if (!rc)
		vol_plan_free(&p);
	/* a cut table is no table (F2) */
	mk_frames(0, v, 6, 0, 8);
	CHECK(plan(1, &p, why) == 1 && strstr(why, "without per-frame geometry"), "cut: %s", why);
	/* frame count disagrees with NumberOfFrames */
	{
		struct img m = { 0 };
		void *tb;
		size_t tl;
		m.frames = 6;
		mk(0, &m);
		fg_encode(v, 5, 0, &tb, &tl);
		rec_add_blob(&bufs[0], FG_REC_TAG, "OB", tb, tl);
		free(tb);
		ins[0].rec = bufs[0].data;
		ins[0].len = bufs[0].len;
	}
	CHECK(plan(1, &p, why) == 1 && strstr(why, "5 frames"), "count: %s", why);
	/* a table over 64 KiB: chunks, read back whole; 3000 slices */
	size_t n = 3000;
	struct fg_frame *big = malloc(n * sizeof(*big));
	for (size_t f = 0; f < n; f++)
		frame_at(&big[f], 0.5 * (double)(n - 1 - f), NAN, NAN, NAN);
	mk_frames(0, big, (uint32_t)n, 0, 0);
	void *tb = NULL;
	size_t tl = 0;
	struct fg_head fh;
	CHECK(rec_blob(ins[0].rec, ins[0].len, FG_REC_TAG, &tb, &tl) == 1 && tl > 65535 &&
	      fg_head_get(tb, tl, &fh) == 0 && fh.nframes == n, "blob of %zu bytes", tl);
	free(tb);
	rc = plan(1, &p, why);
	CHECK(rc == 0 && p.nz == n && p.frames[0] == n - 1 && p.frames[n - 1] == 0,
	      "3000 frames: %s", why);
	if (!rc)
		vol_plan_free(&p);
	free(big);
}

/* a CSA header (SV10 layout) with the elements name[i] = values[i] */
static size_t csa_put(uint8_t *b, const char *const *name, const char *const *vals, int n)
{
	size_t o = 0;
	uint32_t u;
	memcpy(b, "SV10\4\3\2\1", 8);
	o = 8;
	u = (uint32_t)n;
	memcpy(b + o, &u, 4);
	u = 77;
	memcpy(b + o + 4, &u, 4);
	o += 8;
	for (int t = 0; t < n; t++) {
		/* values: ';'-separated items */
		char tmp[128];
		snprintf(tmp, sizeof(tmp), "%s", vals[t]);
		int nitems = 1;
		for (char *c = tmp; *c; c++)
			nitems += *c == ';';
		memset(b + o, 0, 84);
		memcpy(b + o, name[t], strlen(name[t]));
		int32_t w[5] = { nitems, 0, 3, nitems, 77 };
		memcpy(b + o + 64, &w[0], 4);
		memcpy(b + o + 68, "DS\0\0", 4);
		memcpy(b + o + 72, &w[2], 12);
		o += 84;
		char *save = NULL;
		for (char *it = strtok_r(tmp, ";", &save); it; it = strtok_r(NULL, ";", &save)) {
			int32_t x[4] = { (int32_t)strlen(it) + 1, (int32_t)strlen(it) + 1, 77, 0 };
			memcpy(b + o, x, 16);
			o += 16;
			memset(b + o, 0, ((size_t)x[1] + 3) & ~(size_t)3);
			memcpy(b + o, it, strlen(it));
			o += ((size_t)x[1] + 3) & ~(size_t)3;
		}
	}
	return o;
}

static void test_csa_and_mosaic(void)
{
	static const char *const names[] = { "EchoLinePosition", "NumberOfImagesInMosaic",
					     "SliceNormalVector" };
	static const char *const vals[] = { "64", "4", "0;0.6;0.8" };
	uint8_t b[1024];
	double d[3] = { 0 };
	size_t len = csa_put(b, names, vals, 3);
	CHECK(fg_csa_doubles(b, len, "NumberOfImagesInMosaic", d, 1) == 1 && d[0] == 4,
	      "CSA mosaic count %g", d[0]);
	CHECK(fg_csa_doubles(b, len, "SliceNormalVector", d, 3) == 3 && d[1] == 0.6 && d[2] == 0.8,
	      "CSA normal %g %g %g", d[0], d[1], d[2]);
	CHECK(fg_csa_doubles(b, len, "Missing", d, 3) == 0, "CSA absent");
	/* every cut of the header: no overrun (ASan), never more than found */
	for (size_t cut = 0; cut < len; cut++)
		CHECK(fg_csa_doubles(b, cut, "SliceNormalVector", d, 3) <= 3, "cut %zu", cut);

	/* a 6x4 mosaic of 4 tiles of 3x2: 2 mosaics (4-D by TPI) */
	struct fg_frame f;
	for (size_t k = 0; k < sizeof(f) / sizeof(double); k++)
		((double *)&f)[k] = NAN;
	double mos[5] = { 4, 0, 0, 1, 2.5 };
	memcpy(f.mosaic, mos, sizeof(mos));
	struct vol_plan p;
	char why[256];
	for (size_t i = 0; i < 2; i++) {
		struct img m = { 0 };
		void *t;
		size_t tl;
		m.itype = "ORIGINAL\\PRIMARY\\M\\ND\\MOSAIC";
		m.rows = 4;
		m.cols = 6;
		m.tpi = (int)i + 1;
		mk(i, &m);
		fg_encode(&f, 1, 0, &t, &tl);
		rec_add_blob(&bufs[i], FG_REC_TAG, "OB", t, tl);
		free(t);
		ins[i].rec = bufs[i].data;
		ins[i].len = bufs[i].len;
	}
	int rc = plan(2, &p, why);
	CHECK(rc == 0 && p.nx == 3 && p.ny == 2 && p.nz == 4 && p.nt == 2 && p.mosaic == 2 &&
	      p.src_cols == 6, "mosaic: rc %d %ux%ux%ux%u (%s)", rc, p.nx, p.ny, p.nz, p.nt, why);
	if (!rc) {
		/* tile 0 at IPP + half the size difference: column spacing 0.75 x
		 * 1.5 along x, row spacing 0.5 x 1 along y; 2.5 mm steps along z */
		CHECK(near(p.sform[0][3], -1.125) && near(p.sform[1][3], -0.5) &&
		      near(p.sform[2][3], 0) && near(p.sform[2][2], 2.5),
		      "mosaic origin %g %g %g step %g", p.sform[0][3], p.sform[1][3], p.sform[2][3],
		      p.sform[2][2]);
		/* slice 3 (tile 3: grid row 1, column 1), its row 1 */
		uint64_t so, run = vol_src_run(&p, 3, 3 * 2 + 2, &so);
		CHECK(p.frames[3] == 3 && so == ((1 * 2 + 1) * 6 + 3) * 2 + 2 && run == 4,
		      "tile offset %llu run %llu", (unsigned long long)so, (unsigned long long)run);
		vol_plan_free(&p);
	}
	/* 5 images do not tile 6x4 in 3x3 */
	f.mosaic[0] = 5;
	{
		void *t;
		size_t tl;
		struct img m = { 0 };
		m.itype = "ORIGINAL\\PRIMARY\\M\\ND\\MOSAIC";
		m.rows = 4;
		m.cols = 6;
		mk(0, &m);
		fg_encode(&f, 1, 0, &t, &tl);
		rec_add_blob(&bufs[0], FG_REC_TAG, "OB", t, tl);
		free(t);
		ins[0].rec = bufs[0].data;
		ins[0].len = bufs[0].len;
		CHECK(plan(1, &p, why) == 1 && strstr(why, "do not split"), "untileable: %s", why);
		/* no CSA count */
		mk(0, &m);
		CHECK(plan(1, &p, why) == 1 && strstr(why, "NumberOfImagesInMosaic"), "no CSA: %s", why);
	}
}

int main(void)
{
	test_csa_and_mosaic();
	test_enhanced();
	test_axial_shuffled();
	test_tilt_and_oblique();
	test_4d();
	test_rejects();
	test_rescale();
	for (size_t i = 0; i < MAXI; i++)
		rec_release(&bufs[i]);
	return unit_done();
}
