/*
 * pxdecode.h - decode one instance's pixels from its whole file in memory
 * into the .npy data layout (pixels.h). Runs in decoder processes (GDCM
 * codecs through dcmshim.h) or, as a fallback, in the mount.
 *
 * Paths (issue 12)
 * (D1) Encapsulated RLE: px_rle_decode (C).
 * (D2) Other encapsulated syntaxes: the item stream is parsed by encaps.c
 *      (Basic / Extended Offset Table, fragments, frames spanning
 *      fragments) and each frame's codestream alone is handed to the codec
 *      (dcmshim_decode_frame); GDCM never parses the item stream.
 * (D3) PALETTE COLOR: the index values are decoded as a MONOCHROME2 image
 *      would be (native bytes, D1 or D2), then looked up by palette.c from
 *      the LUT elements found by dcmwalk_elements(); the .npy holds the LUT
 *      entries (uint16 RGB). A deflated palette image is looked up by GDCM.
 * (D4) Everything else (deflated data sets): GDCM reads the whole file.
 * A syntax no codec decodes gives -EIO with the reason in msg, which goes
 * to errors.tsv: the syntax's name for those GDCM has no codec for (video,
 * JPIP, HTJ2K, JPEG XL), else the codec's failure and the frame.
 *
 * px_decode_file(file, size, pi, out, alloc, actx, msg, msglen)
 *   file/size: the whole source; pi: from the index record; out:
 *   pi->data_len bytes. alloc(actx, n): a scratch buffer of n bytes for the
 *   decoder's output (reused by the caller), or NULL.
 *   Returns 0, -ENOMEM, or -EIO with msg set. Reentrant.
 */
#ifndef DICOMFS_PXDECODE_H
#define DICOMFS_PXDECODE_H
#include <stddef.h>
#include <stdint.h>
#include "pixels.h"

typedef void *(*px_alloc_fn)(void *ctx, size_t len);

int px_decode_file(const uint8_t *file, size_t size, const struct px_info *pi,
		   unsigned char *out, px_alloc_fn alloc, void *actx,
		   char *msg, size_t msglen);

#endif
