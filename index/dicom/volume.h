/*
 * volume.h - which series form a volume, and the geometry of volume.nii /
 * volume.npy, in plain C (no FUSE, no LMDB): a pure function of the
 * instances' index records.
 *
 * Conventions (the README describes them for users)
 * - Images: each single-frame instance, and each frame of a multi-frame
 *   instance whose record carries a frame table (enhanced CT/MR/PET, legacy
 *   converted enhanced: fgroups.h), with that frame's Plane Position,
 *   Plane Orientation, Pixel Measures and Pixel Value Transformation (a
 *   group in neither the per-frame nor the shared items: the top-level
 *   attribute). A series may mix instances of both kinds. A Siemens mosaic
 *   (ImageType MOSAIC) gives its tiles as images (mosaic_tiles() in
 *   volume.c: the placement nibabel and dcm2niix use).
 * - Slices are ordered by the projection of ImagePositionPatient on the
 *   slice normal (row cosine x column cosine of ImageOrientationPatient),
 *   ascending; never by InstanceNumber, frame number or file name.
 * - Several images at each position (the same count at every position)
 *   make a 4-D volume, ordered by the first of these that is present in
 *   every image and distinct among the images of each position (for all
 *   but the times: the same set of values at every position):
 *   frames: DimensionIndexValues without the components that are constant
 *   at each position (stack, in-stack position; lexicographic),
 *   TemporalPositionIndex, EffectiveEchoTime, FrameAcquisitionDateTime;
 *   single frames: TemporalPositionIdentifier, EchoNumbers, AcquisitionTime.
 * - NIfTI voxel axes: i = column, j = row, k = slice (, t = volume); the
 *   data is each slice's .npy data in order (t slowest; a frame's: its
 *   part of its instance's .npy). volume.npy has shape (slices, rows,
 *   cols), (volumes, slices, rows, cols) for 4-D.
 * - Voxels: the stored values in the stored dtype with scl_slope/scl_inter
 *   = RescaleSlope/RescaleIntercept when those are equal for every image;
 *   otherwise float32 with each image's rescale applied (scl 1/0).
 * - Affine (sform, exact): columns row cosine * column spacing, column
 *   cosine * row spacing, the mean step between consecutive slice
 *   positions (so a gantry tilt is a shear), the first slice position;
 *   DICOM LPS -> NIfTI RAS (x, y negated). qform: the same rotation with
 *   the slice axis along the normal and pixdim[3] = the step along the
 *   normal (for an untilted series identical to the sform; for a tilted
 *   one the nearest rigid approximation).
 * - Not a volume (a reason in why): fewer than two slice positions, an
 *   image without servable greyscale pixels, Siemens mosaics (ImageType
 *   MOSAIC) without NumberOfImagesInMosaic in the CSA image header or
 *   whose size does not split into its tiles, mosaics mixed with other
 *   images, multi-frame instances without a frame table
 *   (no functional groups), a frame table whose frame count differs from
 *   NumberOfFrames, missing or bad ImagePositionPatient /
 *   ImageOrientationPatient / PixelSpacing, different orientations, sizes,
 *   spacings or pixel formats, uneven slice spacing, duplicate positions
 *   that do not split evenly, more than 32767 columns, rows, slice
 *   positions or time points (NIfTI-1's dim[] is int16; neither volume.nii
 *   nor volume.npy is offered).
 *
 * Everything here is thread-safe (no globals).
 */
#ifndef DICOMFS_VOLUME_H
#define DICOMFS_VOLUME_H
#include <stdint.h>
#include <stddef.h>
#include "record.h"

#define VOL_NII_HDR 352     /* 348-byte header + 4-byte extension flag */

/* in the order they are tried (volume.c enum key + 1) */
enum vol_dim4 {
	VOL_4D_NONE = 0, VOL_4D_DIMINDEX, VOL_4D_TEMPORAL, VOL_4D_ECHO, VOL_4D_ACQTIME,
};

/* One instance of the series. */
struct vol_in {
	const void *rec;          /* its index record */
	size_t len;
	struct rec_head h;
	uint64_t id;              /* instance id (opaque here) */
};

struct vol_plan {
	uint32_t nx, ny, nz, nt;  /* columns, rows, slices, volumes */
	int dim4;                 /* enum vol_dim4 */
	int enhanced;             /* some images are frames of a frame table */
	/* one instance's .npy data sample */
	uint32_t in_bytes;
	int in_signed, in_float;
	/* the volume's voxels */
	int rescale_float;        /* float32, each slice rescaled */
	double slope, inter;      /* !rescale_float: scl_slope, scl_inter */
	uint32_t vox_bytes;
	int16_t datatype;         /* NIfTI DT_* */
	char descr[4];            /* numpy dtype: "<i2" ... */
	double sform[3][4];       /* RAS, mm */
	double spacing[3];        /* column spacing, row spacing, slice step along the normal */
	uint64_t slice_bytes;     /* nx * ny * vox_bytes */
	uint64_t data_len;        /* slice_bytes * nz * nt */
	size_t nslices;           /* nz * nt */
	uint64_t *ids;            /* [t * nz + k] -> instance id */
	uint32_t *frames;         /* [t * nz + k] -> frame (mosaic: tile) of that instance */
	uint32_t mosaic;          /* Siemens mosaic: tiles per row; 0: none */
	uint32_t src_cols;        /* the instances' columns (mosaic: the whole grid) */
	double *slopes, *inters;  /* rescale_float: per slice */
};

/*
 * Decide whether the n instances form a volume; 0 and *p filled (free
 * with vol_plan_free), or 1 with a reason in why (not a volume), or
 * -ENOMEM. The result does not depend on the order of in[].
 */
int vol_plan_make(const struct vol_in *in, size_t n, struct vol_plan *p,
		  char *why, size_t whylen);
void vol_plan_free(struct vol_plan *p);
/* deep copy */
int vol_plan_copy(struct vol_plan *dst, const struct vol_plan *src);

static inline uint64_t vol_nii_size(const struct vol_plan *p)
{
	return VOL_NII_HDR + p->data_len;
}
/*
 * Where byte off (in_bytes samples, off < nx * ny * in_bytes) of slice s
 * lies in its instance's .npy data: *src_off; returns how many bytes from
 * there are contiguous in both (to the end of the slice, or of the tile
 * row for a mosaic).
 */
uint64_t vol_src_run(const struct vol_plan *p, size_t s, uint64_t off, uint64_t *src_off);

/* The NIfTI-1 header (352 bytes, little-endian). */
void vol_nii_header(const struct vol_plan *p, unsigned char out[VOL_NII_HDR]);
/* The .npy header (multiple of 64 bytes, at most 256); returns its length. */
uint32_t vol_npy_header(const struct vol_plan *p, char out[256]);

/*
 * rescale_float: convert count samples of slice s (in the instance .npy
 * layout, in_bytes each) to float32 voxels.
 */
void vol_rescale(const struct vol_plan *p, size_t s, const void *in, float *out,
		 size_t count);

/* Names of the 4-D attributes, for messages ("" for none); enhanced: the
 * functional group attribute (TemporalPositionIndex, ...). */
const char *vol_dim4_name(int dim4, int enhanced);

#endif
