/*
 * kind_volume.c - volume.nii (NIfTI-1, single file) and volume.npy of a
 * series whose instances form a volume. Geometry, slice order and the
 * headers: index/dicom/volume.h; which series: decided at tree-build time
 * (index/volreport.c), the same function recomputed here from the records.
 *
 * Design notes
 * - The plan (slice order, sizes, affine) comes from the indexed
 *   attributes only: getattr and reading the header read no source file
 *   and decode nothing. Plans are cached per series (immutable while
 *   mounted; the cache is emptied when full).
 * - Data bytes of slice s are the .npy data bytes of frame frames[s] of
 *   instance ids[s], or of tile frames[s] of a mosaic, row by row
 *   (vol_src_run), converted to float32 when the rescale differs between
 *   slices: a read
 *   touches only the slices it overlaps, through the pixel pipeline of
 *   kind_pixels.c (pread for uncompressed sources, the shared decode cache
 *   otherwise). An open file keeps a few open instance sources (fd or held
 *   decode-cache entry), keyed by instance (the frames of an enhanced
 *   multi-frame object share one), so sequential reads do not reopen them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "pixels.h"
#include "record.h"
#include "volume.h"

#define PLAN_BUCKETS 256
#define PLAN_MAX 1024
#define NSLOTS 4

/* ---- plans ---- */

struct pentry {
	uint64_t id;
	int ok;                 /* a volume */
	struct vol_plan p;
	struct pentry *next;
};

/* fs->vcache: the plans of series, at most PLAN_MAX (then emptied) */
struct dfs_vcache {
	pthread_mutex_t lock;
	struct pentry *b[PLAN_BUCKETS];   /* lock */
	size_t n;                          /* lock */
};

/* every entry freed; lock held or no other user */
static void vcache_clear(struct dfs_vcache *vc)
{
	for (size_t i = 0; i < PLAN_BUCKETS; i++)
		while (vc->b[i]) {
			struct pentry *x = vc->b[i];
			vc->b[i] = x->next;
			if (x->ok)
				vol_plan_free(&x->p);
			free(x);
		}
	vc->n = 0;
}

int dfs_volume_init(struct dfs *fs)
{
	fs->vcache = calloc(1, sizeof(*fs->vcache));
	if (!fs->vcache)
		return -ENOMEM;
	pthread_mutex_init(&fs->vcache->lock, NULL);
	return 0;
}

void dfs_volume_drop(struct dfs *fs)
{
	struct dfs_vcache *vc = fs->vcache;
	if (!vc)
		return;
	pthread_mutex_lock(&vc->lock);
	vcache_clear(vc);
	pthread_mutex_unlock(&vc->lock);
}

void dfs_volume_fini(struct dfs *fs)
{
	if (!fs->vcache)
		return;
	vcache_clear(fs->vcache);
	pthread_mutex_destroy(&fs->vcache->lock);
	free(fs->vcache);
	fs->vcache = NULL;
}

/* 0 (a volume), 1 (not), or a negative error */
static int plan_compute(struct dfs *fs, uint64_t series_id, struct vol_plan *p)
{
	struct dfs_ids ids;
	struct vol_in *in = NULL;
	int rc = dfs_children(fs, series_id, KBIT(KIND_DCM), &ids);
	if (!rc && !(in = calloc(ids.n ? ids.n : 1, sizeof(*in))))
		rc = -ENOMEM;
	for (size_t i = 0; i < ids.n && !rc; i++) {
		struct node_view nv;
		rc = index_node(fs->ix, ids.v[i], &nv);
		if (!rc && nv.rec->type != NODE_INSTANCE)
			rc = -EIO;
		if (!rc)
			rc = index_file_record(fs->ix, nv.relpath, nv.rec->path_len, &in[i].rec,
					       &in[i].len);
		if (!rc && rec_head_get(in[i].rec, in[i].len, &in[i].h))
			rc = -EIO;
		in[i].id = ids.v[i];
	}
	if (!rc)
		rc = vol_plan_make(in, ids.n, p, NULL, 0);
	free(in);
	free(ids.v);
	return rc;
}

/* A copy of the plan of series_id: 0, -ENOENT (not a volume) or an error. */
static int plan_get(struct dfs *fs, uint64_t series_id, struct vol_plan *out)
{
	struct dfs_vcache *vc = fs->vcache;
	struct pentry *e;
	int rc;
	pthread_mutex_lock(&vc->lock);
	for (e = vc->b[series_id % PLAN_BUCKETS]; e; e = e->next)
		if (e->id == series_id)
			break;
	if (e) {
		rc = e->ok ? vol_plan_copy(out, &e->p) : -ENOENT;
		pthread_mutex_unlock(&vc->lock);
		return rc;
	}
	pthread_mutex_unlock(&vc->lock);

	struct vol_plan p;
	rc = plan_compute(fs, series_id, &p);
	if (rc < 0)
		return rc;
	e = calloc(1, sizeof(*e));
	if (!e) {
		if (rc == 0)
			vol_plan_free(&p);
		return -ENOMEM;
	}
	e->id = series_id;
	e->ok = rc == 0;
	if (e->ok)
		e->p = p;
	pthread_mutex_lock(&vc->lock);
	if (vc->n >= PLAN_MAX)
		vcache_clear(vc);
	e->next = vc->b[series_id % PLAN_BUCKETS];
	vc->b[series_id % PLAN_BUCKETS] = e;
	vc->n++;
	rc = e->ok ? vol_plan_copy(out, &e->p) : -ENOENT;
	pthread_mutex_unlock(&vc->lock);
	return rc;
}

/* ---- open files ---- */

struct vslot {
	uint64_t id;            /* the instance (several slices when multi-frame) */
	struct dfs_pixsrc *src;
	unsigned refs;
	uint64_t used;
};

struct vopen {
	struct vol_plan p;
	unsigned char hdr[VOL_NII_HDR > 256 ? VOL_NII_HDR : 256];
	uint32_t hdr_len;
	pthread_mutex_t lock;
	struct vslot slot[NSLOTS];
	uint64_t tick;
};

static int vol_getattr_common(struct dfs *fs, uint64_t id, const struct node_view *nv,
			      struct stat *st, int npy)
{
	struct vol_plan p;
	if (nv->rec->type != NODE_SERIES)
		return -ENOENT;
	int rc = plan_get(fs, id, &p);
	if (rc)
		return rc;
	char h[256];
	uint64_t hl = npy ? vol_npy_header(&p, h) : VOL_NII_HDR;
	st->st_mode = S_IFREG | (nv->rec->mode & 0444);
	st->st_nlink = 1;
	st->st_uid = nv->rec->uid;
	st->st_gid = nv->rec->gid;
	st->st_size = (off_t)(hl + p.data_len);
	st->st_blocks = (st->st_size + 511) / 512;
	stat_times(st, nv->rec->mtime_ns);
	vol_plan_free(&p);
	return 0;
}

static int nii_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
		       struct stat *st)
{
	return vol_getattr_common(fs, id, nv, st, 0);
}

static int npy_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
		       struct stat *st)
{
	return vol_getattr_common(fs, id, nv, st, 1);
}

static int vol_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		    struct dfs_file *f)
{
	if (nv->rec->type != NODE_SERIES)
		return -ENOENT;
	struct vopen *vo = calloc(1, sizeof(*vo));
	if (!vo)
		return -ENOMEM;
	int rc = plan_get(fs, id, &vo->p);
	if (rc) {
		free(vo);
		return rc;
	}
	if (f->kind == KIND_VOLUME_NII) {
		vol_nii_header(&vo->p, vo->hdr);
		vo->hdr_len = VOL_NII_HDR;
	} else {
		vo->hdr_len = vol_npy_header(&vo->p, (char *)vo->hdr);
	}
	pthread_mutex_init(&vo->lock, NULL);
	f->priv = vo;
	return 0;
}

/* The source of slice s's instance, held (slot_put when done). */
static int slot_get(struct dfs *fs, struct vopen *vo, size_t s, struct vslot **out,
		    struct dfs_pixsrc **own)
{
	uint64_t id = vo->p.ids[s];
	*own = NULL;
	pthread_mutex_lock(&vo->lock);
	for (int i = 0; i < NSLOTS; i++)
		if (vo->slot[i].src && vo->slot[i].id == id) {
			vo->slot[i].refs++;
			vo->slot[i].used = ++vo->tick;
			*out = &vo->slot[i];
			pthread_mutex_unlock(&vo->lock);
			return 0;
		}
	pthread_mutex_unlock(&vo->lock);

	struct dfs_pixsrc *src;
	int rc = dfs_pixsrc_open(fs, id, &src);
	if (rc)
		return rc;
	const struct px_info *pi = dfs_pixsrc_info(src);
	uint32_t m = vo->p.mosaic ? vo->p.mosaic : 1;
	if (pi->rows != vo->p.ny * m || pi->cols != vo->p.src_cols || pi->cols != vo->p.nx * m ||
	    pi->out_bytes != vo->p.in_bytes ||
	    pi->out_frame_bytes != (uint64_t)pi->rows * pi->cols * vo->p.in_bytes ||
	    vo->p.frames[s] >= (vo->p.mosaic ? m * m : pi->frames ? pi->frames : 1)) {
		dfs_pixsrc_close(src);
		return -EIO;
	}
	struct dfs_pixsrc *drop = NULL;
	pthread_mutex_lock(&vo->lock);
	struct vslot *best = NULL;
	for (int i = 0; i < NSLOTS; i++) {
		struct vslot *x = &vo->slot[i];
		if (x->src && x->id == id) {     /* another reader was quicker */
			x->refs++;
			x->used = ++vo->tick;
			*out = x;
			pthread_mutex_unlock(&vo->lock);
			dfs_pixsrc_close(src);
			return 0;
		}
		if (x->refs == 0 && (!best || !x->src || (best->src && x->used < best->used)))
			best = x;
	}
	if (!best) {
		/* every slot busy: use it unshared */
		pthread_mutex_unlock(&vo->lock);
		*own = src;
		*out = NULL;
		return 0;
	}
	drop = best->src;
	best->src = src;
	best->id = id;
	best->refs = 1;
	best->used = ++vo->tick;
	*out = best;
	pthread_mutex_unlock(&vo->lock);
	dfs_pixsrc_close(drop);
	return 0;
}

static void slot_put(struct vopen *vo, struct vslot *x, struct dfs_pixsrc *own)
{
	if (own) {
		dfs_pixsrc_close(own);
		return;
	}
	pthread_mutex_lock(&vo->lock);
	x->refs--;
	pthread_mutex_unlock(&vo->lock);
}

/* Slice s's .npy bytes [off, off + len) from its instance's (vol_src_run). */
static int src_read(const struct vol_plan *p, struct dfs_pixsrc *src, size_t s,
		    unsigned char *out, uint64_t off, size_t len)
{
	while (len) {
		uint64_t so, run = vol_src_run(p, s, off, &so);
		size_t n = run < len ? (size_t)run : len;
		int rc = dfs_pixsrc_read(src, out, so, n);
		if (rc)
			return rc;
		out += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* Fill out with data bytes [off, off + len) of slice s (within the slice). */
static int slice_read(struct dfs *fs, struct vopen *vo, size_t s, unsigned char *out,
		      uint64_t off, size_t len)
{
	struct vslot *x;
	struct dfs_pixsrc *own;
	const struct vol_plan *p = &vo->p;
	int rc = slot_get(fs, vo, s, &x, &own);
	if (rc)
		return rc;
	struct dfs_pixsrc *src = own ? own : x->src;
	if (!p->rescale_float) {
		rc = src_read(p, src, s, out, off, len);
	} else {
		uint64_t v0 = off / 4, v1 = (off + len + 3) / 4;
		size_t nv = (size_t)(v1 - v0);
		unsigned char *tmp = malloc(nv * p->in_bytes + nv * 4);
		if (!tmp) {
			rc = -ENOMEM;
		} else {
			float *f = (float *)(tmp + nv * p->in_bytes);
			rc = src_read(p, src, s, tmp, v0 * p->in_bytes, nv * p->in_bytes);
			if (!rc) {
				vol_rescale(p, s, tmp, f, nv);
				memcpy(out, (unsigned char *)f + (off - v0 * 4), len);
			}
			free(tmp);
		}
	}
	slot_put(vo, x, own);
	return rc;
}

static int vol_read(struct dfs *fs, struct dfs_file *f, fuse_req_t req, size_t size,
		    off_t off)
{
	struct vopen *vo = f->priv;
	const struct vol_plan *p = &vo->p;
	uint64_t total = vo->hdr_len + p->data_len, o = (uint64_t)off;
	if (off < 0)
		return -EINVAL;
	if (o >= total || !size) {
		fuse_reply_buf(req, NULL, 0);
		return 0;
	}
	if (size > total - o)
		size = (size_t)(total - o);
	unsigned char *buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	size_t done = 0;
	if (o < vo->hdr_len) {
		done = (size_t)(vo->hdr_len - o) < size ? (size_t)(vo->hdr_len - o) : size;
		memcpy(buf, vo->hdr + o, done);
	}
	int rc = 0;
	while (done < size && !rc) {
		uint64_t d = o + done - vo->hdr_len;
		size_t s = (size_t)(d / p->slice_bytes);
		uint64_t in = d % p->slice_bytes;
		size_t n = size - done;
		if (n > p->slice_bytes - in)
			n = (size_t)(p->slice_bytes - in);
		rc = slice_read(fs, vo, s, buf + done, in, n);
		done += n;
	}
	if (rc) {
		free(buf);
		return rc == -ENOMEM ? rc : -EIO;
	}
	fuse_reply_buf(req, (const char *)buf, size);
	free(buf);
	return 0;
}

static void vol_release(struct dfs_file *f)
{
	struct vopen *vo = f->priv;
	if (!vo)
		return;
	for (int i = 0; i < NSLOTS; i++)
		dfs_pixsrc_close(vo->slot[i].src);
	pthread_mutex_destroy(&vo->lock);
	vol_plan_free(&vo->p);
	free(vo);
	f->priv = NULL;
}

const struct kind_ops kind_volume_nii =
	KIND_OPS("volume.nii", nii_getattr, vol_open, vol_read, vol_release);

const struct kind_ops kind_volume_npy =
	KIND_OPS("volume.npy", npy_getattr, vol_open, vol_read, vol_release);
