/*
 * pixels.h - the pixel conventions of <instance>.npy and <instance>.png,
 * in plain C (no GDCM, no FUSE): what an instance's pixels look like, the
 * .npy header, the conversion of stored samples to the .npy layout, and an
 * 8-bit PNG writer whose output size is known before any pixel is read.
 *
 * Conventions (the README describes them for users)
 * - .npy: format 1.0, header padded with spaces so the data starts at a
 *   multiple of 64; little-endian, C order. Shape (rows, cols) for one frame,
 *   (frames, rows, cols) when NumberOfFrames > 1, plus a trailing axis of 3
 *   for colour. Stored values: no rescale, no VOI. dtype from BitsAllocated
 *   and PixelRepresentation (u1 i1 u2 i2 u4 i4), f4/f8 for Float/Double
 *   Float Pixel Data, BitsAllocated 1 unpacked to u1 0/1. Bits above HighBit
 *   are cleared (unsigned) or replaced by the sign bit (signed). Colour is
 *   always interleaved RGB: planar configuration 1 is interleaved, YBR_FULL
 *   and YBR_FULL_422 converted (pydicom's formula, float, round half up,
 *   clipped), PALETTE COLOR looked up (always u2 RGB, the LUT values).
 * - .png: first frame, 8 bits, grey or RGB, zlib "stored" blocks.
 *
 * Everything here is a pure function of its arguments: thread-safe.
 * Errors: 0 or negative (error.h); *why gets a static English reason.
 */
#ifndef DICOMFS_PIXELS_H
#define DICOMFS_PIXELS_H
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

struct rec_head;

enum px_photo {
	PX_MONO1 = 1, PX_MONO2, PX_RGB, PX_YBR_FULL, PX_YBR_FULL_422,
	PX_PALETTE, PX_YBR_ICT, PX_YBR_RCT,
};

/* sane upper bound of one instance's decoded pixels */
#define PX_MAX_BYTES ((uint64_t)8 << 30)

struct px_info {
	/* from the attributes (defaults applied) */
	uint32_t rows, cols, frames;
	int multi;              /* NumberOfFrames > 1: 3-d (4-d colour) shape */
	uint32_t spp, bits_alloc, bits_stored, high_bit, pixrep, planar;
	int photo;              /* enum px_photo */
	int is_float;           /* 0, 4 (Float Pixel Data) or 8 (Double) */
	uint32_t nbits;         /* significant bits: HighBit + 1 */
	/* the source */
	int native;             /* uncompressed, served by pread */
	int encapsulated;       /* pixel_offset: start of the item sequence */
	int big_endian;         /* native data is big-endian */
	int identity;           /* native bytes == .npy data bytes */
	uint64_t pixel_offset, src_len;  /* native: where, how many bytes */
	/* the .npy */
	uint32_t out_spp;       /* 1 or 3 */
	uint32_t out_bytes;     /* per sample: 1 2 4 8 */
	int out_signed;
	char descr[4];          /* "|u1" "<i2" "<f4" ... */
	uint32_t hdr_len;       /* header bytes (multiple of 64) */
	char hdr[256];          /* the header itself */
	uint64_t frame_pixels;  /* rows * cols */
	uint64_t out_frame_bytes;
	uint64_t data_len;      /* frames * out_frame_bytes */
};

/*
 * From an instance's index record: 0, or a negative code when the pixels
 * are knowably not servable (no pixel data, truncated, missing/absurd
 * attributes, unsupported photometric interpretation, size over
 * PX_MAX_BYTES or overflowing).
 */
int px_info_from_record(const void *rec, size_t len, const struct rec_head *h,
			struct px_info *pi, const char **why);
/*
 * The same from the Image Pixel attributes it reads (all of group 0028),
 * found by a caller that walks the record anyway: v[k] (l[k] bytes) is the
 * value of tag px_attr_tags[k] (ascending), NULL when absent.
 */
#define PX_ATTR_N 10
extern const uint32_t px_attr_tags[PX_ATTR_N];
int px_info_from_attrs(const char *const *v, const size_t *l, const struct rec_head *h,
		       struct px_info *pi, const char **why);

/* Number parsing as in the index (decimal text, first of '\\' values). */
int px_attr_long(const void *rec, size_t len, uint32_t tag, long long *v);
int px_attr_double(const void *rec, size_t len, uint32_t tag, double *v);
/* px_attr_long of a value found already (rec_attrs; s NULL: absent) */
int px_value_long(const char *s, size_t l, long long *v);

/* ---- native (uncompressed) sources ---- */

/* read exactly len bytes at off of the source; 0 or negative error */
typedef int (*px_pread_fn)(void *ctx, void *buf, size_t len, uint64_t off);

/*
 * Fill out[0, len) with .npy data bytes [off, off + len) (offsets relative
 * to the start of the data, after the header), reading the source through
 * rd. scratch: a buffer the caller keeps (reused across calls).
 */
struct px_scratch {
	unsigned char *src, *dst;
	size_t src_cap, dst_cap;
};
int px_native_read(const struct px_info *pi, px_pread_fn rd, void *ctx,
		   void *out, uint64_t off, size_t len, struct px_scratch *s);
void px_scratch_free(struct px_scratch *s);

/* ---- decoded (GDCM) buffers ---- */

/* what a decoder produced */
struct px_decoded {
	uint32_t rows, cols, frames, spp, bits_alloc, pixrep, planar;
	int photo;              /* enum px_photo, 0 when unknown */
	int is_float;
	const void *data;       /* little-endian samples */
	uint64_t len;
};

/* Convert a decoded buffer into the .npy data layout (out: data_len bytes). */
int px_normalize(const struct px_info *pi, const struct px_decoded *d,
		 void *out, const char **why);

/*
 * RLE Lossless in C (GDCM 3.0 mangles multi-byte colour RLE): pix/len are
 * the encapsulated pixel data value (items) to the end of the file. Returns
 * 0, 1 when this is not RLE (first fragment has no RLE header: let GDCM
 * decode it), or a negative error with *why.
 */
int px_rle_decode(const struct px_info *pi, const unsigned char *pix, size_t len,
		  void *out, const char **why);

/* Samples in place: clear bits above nbits / sign-extend (integer types). */
void px_mask(void *data, uint64_t nsamples, uint32_t bytes, uint32_t nbits,
	     int is_signed);
/* 8-bit YBR_FULL -> RGB in place over npix pixels (pydicom's formula). */
void px_ybr_to_rgb(unsigned char *p, uint64_t npix);

/* ---- PNG ---- */

struct px_window {
	int have;               /* center/width given (width >= 1) */
	double center, width;
	double slope, intercept;
};

/* Window from the record: WindowCenter/Width (first values), Rescale. */
void px_window_from_record(const void *rec, size_t len, struct px_window *w);

/* Exact size of the .png of pi (first frame). */
uint64_t px_png_size(const struct px_info *pi);
/*
 * Write the PNG (px_png_size() bytes) of the first frame, given that frame
 * in the .npy data layout (out_frame_bytes bytes).
 */
int px_png_write(const struct px_info *pi, const struct px_window *w,
		 const void *frame, unsigned char *out);

uint32_t px_crc32(uint32_t crc, const void *buf, size_t len);
uint32_t px_adler32(uint32_t a, const void *buf, size_t len);

#endif
