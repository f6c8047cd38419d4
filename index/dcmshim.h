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

#ifdef __cplusplus
}
#endif
#endif
