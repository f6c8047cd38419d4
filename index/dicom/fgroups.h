/*
 * fgroups.h - the per-frame geometry of enhanced multi-frame objects
 * (Enhanced CT/MR/PET, Legacy Converted Enhanced: Shared and Per-Frame
 * Functional Groups Sequences) and the tiling of Siemens mosaics, collected
 * at index time and kept in the instance's index
 * record as a "frame table" (record attribute FG_REC_TAG, in chunks: see
 * record.h rec_add_blob). volume.c reads it back with fg_frame().
 *
 * What is collected (PS3.3 C.7.6.16; the per-frame item overrides the
 * shared one, a macro in neither leaves the value absent = NaN):
 *   Plane Position (0020,9113) > ImagePositionPatient
 *   Plane Orientation (0020,9116) > ImageOrientationPatient
 *   Pixel Measures (0028,9110) > PixelSpacing
 *   Pixel Value Transformation (0028,9145) > RescaleSlope, RescaleIntercept
 *   Frame Content (0020,9111) > TemporalPositionIndex, DimensionIndexValues,
 *     FrameAcquisitionDateTime (seconds within its day + days)
 *   MR Echo (0018,9114) > EffectiveEchoTime
 * Only elements of those items at exactly that depth count: a private
 * sequence holding an ImagePositionPatient (Philips does) is ignored.
 * Siemens mosaics (top level, the same for every frame): the CSA image
 * header (0029,xx10 of the private creator "SIEMENS CSA HEADER"):
 * NumberOfImagesInMosaic, SliceNormalVector; and SpacingBetweenSlices.
 *
 * (F1) The frame table is a pure function of the header bytes; its layout
 *      (below) is host order, like the rest of the record, and covered by
 *      INDEX_FORMAT.
 * (F2) Decoding validates every size against the table's length: a corrupt
 *      table reads as "no table", never out of bounds.
 *
 * Layout: struct fg_head, then for every field (enum fg_field order) either
 * one value set (shared by all frames: bit clear in perframe) or nframes
 * value sets (bit set), each value set fg_width() doubles.
 *
 * Threading: reentrant, no globals.
 */
#ifndef DICOMFS_FGROUPS_H
#define DICOMFS_FGROUPS_H
#include <stddef.h>
#include <stdint.h>

/* a tag no indexed attribute can have (group FFFE is refused by
 * tags_parse_list) and above all of them, so records stay sorted */
#define FG_REC_TAG 0xFFFEF0F0u
#define FG_VERSION 1
#define FG_MAXDIM 8

enum fg_field {
	FG_POS, FG_IOP, FG_SPACING, FG_RESCALE, FG_TPI, FG_ECHO, FG_TIME, FG_DIM,
	FG_MOSAIC, FG_NFIELDS
};

struct fg_head {
	uint32_t version;
	uint32_t nframes;
	uint32_t ndim;            /* DimensionIndexValues per frame */
	uint32_t perframe;        /* bit f: field f has one value set per frame */
};

/* One frame (NaN: absent). */
struct fg_frame {
	double pos[3], iop[6], spacing[2];
	double slope, inter;      /* RescaleSlope, RescaleIntercept */
	double tpi;               /* TemporalPositionIndex */
	double echo;              /* EffectiveEchoTime */
	double time;              /* FrameAcquisitionDateTime, seconds */
	double dim[FG_MAXDIM];    /* DimensionIndexValues (ndim of them) */
	double mosaic[5];         /* NumberOfImagesInMosaic, SliceNormalVector,
				   * SpacingBetweenSlices */
};

/* doubles per value set of field f */
unsigned fg_width(int f, uint32_t ndim);

/*
 * Collect from the header bytes exactly as dcmjson_build gives them to
 * GDCM (buf[0, len), whole: see dcmshim_walk). nframes: NumberOfFrames
 * (at least 1). Returns 0 with a malloc()ed table in *out / *outlen, 1
 * when the header has neither functional groups nor a CSA image header
 * with NumberOfImagesInMosaic (nothing to keep), or a negative error (DFS_EPARSE, -ENOMEM).
 */
int fg_collect(const void *buf, size_t len, int whole, uint32_t nframes,
	       void **out, size_t *outlen);

/* Validate a table: 0 with *h filled, or -EINVAL (F2). */
int fg_head_get(const void *t, size_t len, struct fg_head *h);
/* Frame i of a validated table (i < h->nframes). */
void fg_frame(const void *t, size_t len, const struct fg_head *h, uint32_t i,
	      struct fg_frame *out);

/*
 * Build a table from frames in memory (the collector's last step; also the
 * unit tests'). Fields equal in every frame (NaN equal to NaN) are stored
 * once. 0 or -ENOMEM.
 */
int fg_encode(const struct fg_frame *v, uint32_t n, uint32_t ndim, void **out,
	      size_t *outlen);

/*
 * Up to max backslash-separated decimal values (DS) of s[0, l) -> out;
 * returns how many were read before the first one that is not a number.
 */
int fg_parse_ds(const char *s, size_t l, double *out, int max);

/*
 * The CSA header (Siemens "SV10" layout or the older one without the
 * name) in buf[0, len): up to max values of element name as doubles;
 * returns how many (0: absent, or the header is bad). Every length is
 * checked against len. Exposed for the unit test.
 */
int fg_csa_doubles(const uint8_t *buf, size_t len, const char *name, double *out,
		   int max);

#endif
