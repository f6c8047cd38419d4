/*
 * dcmshim.h - the only door to GDCM (C++). Plain C interface.
 *
 * Contract
 *   dcmshim_init()  once per process before any other call (silences GDCM's
 *                   own stderr tracing). Idempotent.
 *   dcmshim_parse_header(buf, len, whole, tags, ntags, fn, ctx, info)
 *                   parses the DICOM header held in buf[0, len) with GDCM
 *                   (the bytes must end on an element boundary: see
 *                   dcmwalk.h; GDCM aborts on a torn element). whole: buf
 *                   is the whole file and GDCM reads all of it (deflated
 *                   data sets: GDCM asserts when skipping inflated pixels).
 *                   For each tag
 *                   of tags[] (sorted ascending) present at the top level of
 *                   the data set, calls fn(ctx, tag, vr, value, length):
 *                     - vr is the element's VR, or the dictionary VR when the
 *                       file is implicit VR ("UN" if unknown);
 *                     - string VRs: the raw value bytes, padding included
 *                       (the caller trims and decodes the character set);
 *                     - binary numbers (US UL SS SL FL FD SV UV AT): decimal
 *                       text, values separated by '\\', already byte-swapped;
 *                     - SQ and bulk binary VRs: not reported.
 *                   SpecificCharacterSet (0008,0005), when requested, is
 *                   reported before any other tag.
 *   Returns 0, or DFS_EPARSE when GDCM rejects the header (info->error holds
 *   GDCM's reason). info->partial is set when GDCM stopped early but
 *   returned elements (they were reported).
 *
 * Every C++ exception is caught here; none crosses this interface.
 * Threading: reentrant; no shared mutable state after dcmshim_init().
 */
#ifndef DICOMFS_DCMSHIM_H
#define DICOMFS_DCMSHIM_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Loading. The implementation (the dcmshim*.cc files, GDCM and its C++
 * runtime) is a separate module, dicomfs-gdcm.so, that index/dicom/gdcm/dcmshim_load.c
 * loads with dlopen() on the first call of any function below: GDCM costs
 * ~0.1 s of relocations and static set-up per process, and a remount of an
 * unchanged archive, or a mount that only serves .dcm files, never needs
 * it. The module is looked for at $DICOMFS_GDCM, next to the executable
 * (the build tree), then in PKGLIBDIR (installed). dcmshim_load() returns
 * 0 or -ENOENT (the module or GDCM is missing: every call then fails with
 * DFS_EPARSE, and the reason is logged once).
 * Inside the module the functions carry a dcmshim_gdcm_ prefix, so that the
 * executable's trampolines cannot interpose on them.
 */
#ifdef DCMSHIM_MODULE
#define dcmshim_init dcmshim_gdcm_init
#define dcmshim_parse_header dcmshim_gdcm_parse_header
#define dcmshim_walk dcmshim_gdcm_walk
#define dcmshim_decode_pixels dcmshim_gdcm_decode_pixels
#define dcmshim_decode_frame dcmshim_gdcm_decode_frame
#define dcmshim_dict_vr dcmshim_gdcm_dict_vr
#else
int dcmshim_load(void);
/* Where the module is (0), or -ENOENT; does not load it. */
int dcmshim_locate(char *path, size_t len);
/*
 * dcmshim_set_guard(fn, ctx): fn(ctx) runs before each entry into GDCM's
 * reader or decoders (dcmshim_parse_header, dcmshim_walk,
 * dcmshim_decode_pixels, dcmshim_decode_frame; not the dictionary), after
 * the module is loaded. scan.c's parse worker sets its per-file address
 * space limit there, so a file GDCM never reads costs no limit (issue 17).
 * Process-wide; fn NULL: none. Set it before any thread uses the shim.
 */
void dcmshim_set_guard(void (*fn)(void *ctx), void *ctx);
#endif

typedef void (*dcmshim_attr_fn)(void *ctx, uint32_t tag, const char vr[2],
				const char *value, size_t len);

struct dcmshim_info {
	int partial;
	char ts[65];      /* data set transfer syntax as GDCM understood it */
	char error[160];
};

void dcmshim_init(void);
int dcmshim_parse_header(const void *buf, size_t len, int whole,
			 const uint32_t *tags, size_t ntags, dcmshim_attr_fn fn,
			 void *ctx, struct dcmshim_info *info);

/*
 * dcmshim_walk(buf, len, whole, bulk_min, ops, ctx, info)
 *   parses buf[0, len) as dcmshim_parse_header() does (same rules for buf
 *   and whole) and reports the WHOLE data set, depth first, in tag order
 *   (GDCM keeps each data set sorted):
 *     element(tag, vr, value, len, offset) for every element that is not a
 *       sequence. vr: the element's VR; implicit VR files: the dictionary VR
 *       (private tags: GDCM's private dictionary by creator, else "UN");
 *       "US or SS" is resolved with PixelRepresentation (this data set or an
 *       enclosing one; US when absent), "OB or OW" is OW, LUT Data (0028,3006)
 *       is US when LUTDescriptor[0] == 1, else OW. A UN element whose
 *       dictionary VR is known (public, or private by its creator; private
 *       creators are LO) is reported with that VR (as pydicom does).
 *       value: text VRs raw (padding included, character set not decoded);
 *       binary VRs (numbers and OB/OW/OF/OD/OL/OV/UN) in LITTLE-ENDIAN byte
 *       order whatever the transfer syntax; an encapsulated value (fragments)
 *       as its encoded item stream without the sequence delimiter.
 *       offset: for binary VRs with len >= bulk_min, the position in buf of
 *       bytes identical to value (verified byte for byte), else -1; always
 *       -1 when whole (deflated: buf does not hold the values).
 *     charset(value, len) first in every data set (top level or item) that
 *       has (0008,0005), before its other elements (it is reported again as
 *       an element in tag order);
 *     seq_begin(tag) / item_begin() ... item_end() / seq_end(tag) around
 *       sequences and their items.
 *   Group lengths (gggg,0000), the File Meta group (0002) and item/delimiter
 *   tags (FFFE,xxxx) are not reported. Any callback may be NULL.
 *   whole == 2: buf holds a data set without Pixel Data (a header followed
 *   by the elements after Pixel Data, dcmjson.c): GDCM reads all of it, and
 *   offsets are found as when whole == 0.
 *   Returns 0 or DFS_EPARSE, info as for dcmshim_parse_header (partial: GDCM
 *   stopped early; what it read was reported).
 */
struct dcmshim_walk_ops {
	void (*element)(void *ctx, uint32_t tag, const char vr[2],
			const uint8_t *value, size_t len, int64_t offset);
	void (*charset)(void *ctx, const char *value, size_t len);
	void (*seq_begin)(void *ctx, uint32_t tag);
	void (*seq_end)(void *ctx, uint32_t tag);
	void (*item_begin)(void *ctx);
	void (*item_end)(void *ctx);
};

int dcmshim_walk(const void *buf, size_t len, int whole, size_t bulk_min,
		 const struct dcmshim_walk_ops *ops, void *ctx,
		 struct dcmshim_info *info);

/*
 * dcmshim_dict_vr(tag, creator, creator_len, vr) (dcmdict.cc): the VR
 *   dcmshim_walk() gives an implicit VR element (before "US or SS" and the
 *   like are resolved), from GDCM's dictionaries: private tags by the value
 *   of their private creator element in the same data set (creator: its raw
 *   bytes, NULL when there is none; GDCM's DataSet::GetPrivateCreator()
 *   rules: cut at the first NUL, trailing spaces removed). vr: two
 *   characters, "UN" when unknown; the combined VRs as "xs" (US or SS),
 *   "xw" (US or SS or OW, US or OW) and "bw" (OB or OW). Returns 0, or
 *   DFS_EPARSE (exception, module missing). Reentrant.
 */
int dcmshim_dict_vr(uint32_t tag, const char *creator, size_t creator_len, char vr[2]);

/*
 * Pixels (index/dicom/gdcm/dcmshim_pixels.cc).
 *   dcmshim_decode_pixels(buf, len, palette, alloc, ctx, px)
 *                   decodes the pixel data of the whole file held in
 *                   buf[0, len) with gdcm::ImageReader (every transfer
 *                   syntax GDCM reads: native, deflated, RLE, JPEG, JPEG-LS,
 *                   JPEG 2000). palette: apply a PALETTE COLOR lookup table
 *                   (the result is RGB). The decoded bytes (little-endian,
 *                   as GDCM lays them out: planar configuration and colour
 *                   space in px) go to alloc(ctx, n), which returns a buffer
 *                   of at least n bytes or NULL. Returns 0, -ENOMEM, or
 *                   DFS_EPARSE with px->error set. Reentrant.
 */
struct dcmshim_pixels {
	uint32_t rows, cols, frames, spp;
	uint32_t bits_alloc, bits_stored, pixrep, planar;
	int is_float;             /* 0, 4 or 8 */
	char photometric[32];     /* of the decoded buffer */
	uint64_t len;             /* bytes written */
	char error[160];
};
typedef void *(*dcmshim_alloc_fn)(void *ctx, size_t len);
int dcmshim_decode_pixels(const void *buf, size_t len, int palette,
			  dcmshim_alloc_fn alloc, void *ctx,
			  struct dcmshim_pixels *px);

/*
 * dcmshim_decode_frame(cs, len, f, alloc, ctx, px)
 *   decodes ONE frame's codestream cs[0, len) (the fragments of that frame,
 *   concatenated: index/dicom/encaps.h) with the GDCM codec of transfer
 *   syntax f->ts, the image described by f (no DICOM parse: GDCM never sees
 *   the item stream). Output as dcmshim_decode_pixels (px->frames == 1).
 *   Returns 0, -ENOMEM, or DFS_EPARSE with px->error set. Reentrant.
 */
struct dcmshim_frame {
	const char *ts;           /* transfer syntax UID */
	const char *photometric;  /* as in the data set */
	uint32_t rows, cols, spp, bits_alloc, bits_stored, high_bit, pixrep, planar;
};
int dcmshim_decode_frame(const void *cs, size_t len, const struct dcmshim_frame *f,
			 dcmshim_alloc_fn alloc, void *ctx, struct dcmshim_pixels *px);

#ifdef __cplusplus
}
#endif
#endif
