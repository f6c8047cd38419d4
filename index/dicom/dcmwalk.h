/*
 * dcmwalk.h - find the extent of a DICOM header without a DICOM library.
 *
 * GDCM asserts (aborts the process) when a stream ends in the middle of an
 * element, so dicomfs never hands it a prefix cut at an arbitrary byte.
 * dcmwalk_header() walks the element structure of a file prefix (meta
 * group, then the data set, descending into undefined-length sequences and
 * items) and reports where the header ends: the start of the top-level Pixel
 * Data element, or the end of the data set. It validates every length
 * against the file size before using it.
 *
 * Contract:
 *   dcmwalk_header(buf, len, file_size, &r)
 *     buf/len:   the first len bytes of the file (len <= file_size).
 *   Returns
 *     0              r is filled; bytes [0, r.header_end) hold the whole
 *                    header and end on an element boundary.
 *     DFS_ENEEDMORE  the prefix is too short; r.header_end is the minimum
 *                    number of bytes to read next time (a hint, <= file_size).
 *     DFS_ENOTDICOM  neither a Part 10 preamble nor a plausible data set.
 *     DFS_ETRUNC     the file ends inside the header.
 *     DFS_ETOOBIG    a length or the nesting depth is out of range.
 *     DFS_EPARSE     the structure is not walkable (bad VR, stray delimiter).
 *   Pure function of its input: thread-safe, no allocation.
 */
#ifndef DICOMFS_DCMWALK_H
#define DICOMFS_DCMWALK_H
#include <stdint.h>
#include <stddef.h>

#define DCMWALK_MAX_DEPTH 64

struct dcmwalk_result {
	uint64_t header_end;    /* see above */
	uint64_t dataset_start; /* offset of the first data set element */
	uint64_t pixel_offset;  /* file offset of the Pixel Data value; 0: none */
	uint64_t pixel_length;  /* value length (encapsulated: to end of file) */
	uint32_t pixel_tag;     /* 0x7FE00010, 0x7FE00008, 0x7FE00009 or 0 */
	unsigned encapsulated:1;
	unsigned pixel_truncated:1; /* value runs past the end of the file */
	unsigned deflated:1;    /* data set is deflated: header_end = file size */
	unsigned has_meta:1;
	unsigned big_endian:1;
	unsigned explicit_vr:1;
	unsigned ts_mismatch:1; /* the data set is not encoded as the meta
				 * transfer syntax says (explicit/implicit),
				 * or that syntax is not one the header parser
				 * (GDCM 3.0) knows, e.g. HTJ2K: either way
				 * the data set is parsed alone */
	unsigned dicomdir:1;    /* has a Directory Record Sequence */
	unsigned meta_unordered:1; /* group 0002's tags are not strictly
				 * ascending (a tag twice: which one counts
				 * depends on the reader; dcmelem.h E1) */
	char ts[65];            /* (0002,0010) as found, or "" */
};

int dcmwalk_header(const uint8_t *buf, size_t len, uint64_t file_size,
                   struct dcmwalk_result *r);

/*
 * dcmwalk_elements(buf, len, r, fn, ctx): calls fn for each defined-length
 * top-level element before Pixel Data: tag, VR ("\0\0" when implicit),
 * offset in buf of its value, value length (all inside buf). buf/len: at
 * least the header dcmwalk_header() accepted with result r (not deflated).
 * Returns 0 or an error as dcmwalk_header. Pure, no allocation.
 */
/*
 * dcmwalk_trailer(buf, len, r): 0 when buf[0, len) (the bytes after the
 * Pixel Data element of the file r describes) is a sequence of well-formed
 * top-level elements up to its end, in r's encoding; else DFS_EPARSE (or
 * DFS_ETOOBIG / DFS_ETRUNC). Pure.
 */
int dcmwalk_trailer(const uint8_t *buf, size_t len, const struct dcmwalk_result *r);

typedef void (*dcmwalk_elem_fn)(void *ctx, uint32_t tag, const uint8_t vr[2],
				uint64_t off, uint32_t len);
int dcmwalk_elements(const uint8_t *buf, size_t len, const struct dcmwalk_result *r,
		     dcmwalk_elem_fn fn, void *ctx);

#endif
