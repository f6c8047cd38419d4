/*
 * dcmelem.h - the element stream of a DICOM header in C, for the common
 * encodings: what dcmshim_walk() (GDCM) reports, without building a
 * gdcm::DataSet (issue 17: GDCM's parse was most of the index build's
 * parse phase).
 *
 * Contract
 *   dcmelem_walk(buf, len, w, bulk_min, ops, ctx)
 *     buf/len: the header bytes dcmjson hands GDCM when nothing is skipped
 *       ([0, w->header_end), dcmjson_header_range() with skip 0, not whole);
 *       w: dcmwalk_header()'s result for them.
 *     Handles a Part 10 file (preamble, "DICM", meta) whose data set is
 *       explicit or implicit VR little endian as its meta says
 *       (!ts_mismatch, !deflated, !big_endian), with defined and undefined
 *       lengths and nested sequences, when every data set is strictly
 *       ascending and nothing in it is one of the cases GDCM reads in its
 *       own way (E1-E6 in dcmelem.c).
 *   Returns
 *     0                 the whole data set was reported through ops, in the
 *                       order and with the values, VRs and offsets
 *                       dcmshim_walk(buf, len, 0, bulk_min, ...) reports
 *                       (dcmshim.h); info->partial would be 0.
 *     DCMELEM_UNHANDLED nothing was reported: the caller asks GDCM.
 *     -ENOMEM           nothing was reported.
 *   Implicit VR elements take their VR from GDCM's dictionaries through
 *   dcmshim_dict_vr() (public tags cached per process).
 *   Every length is checked against len before use: bad input is
 *   DCMELEM_UNHANDLED, never a read outside buf.
 *   Threading: reentrant (the dictionary cache is lock-free).
 */
#ifndef DICOMFS_DCMELEM_H
#define DICOMFS_DCMELEM_H
#include <stddef.h>
#include <stdint.h>
#include "dcmwalk.h"
#include "dcmshim.h"

#define DCMELEM_UNHANDLED 1

int dcmelem_walk(const uint8_t *buf, size_t len, const struct dcmwalk_result *w,
		 size_t bulk_min, const struct dcmshim_walk_ops *ops, void *ctx);

#endif
