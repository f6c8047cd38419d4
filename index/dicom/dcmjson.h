/*
 * dcmjson.h - one instance's data set in the DICOM JSON Model (PS3.18 F).
 *
 * Contract
 *   dcmjson_build(file, flen, file_size, w, fd, name, name_len, out)
 *     file/flen: the first flen bytes of the source file, flen >=
 *       w->header_end; w: dcmwalk_header()'s result for them; fd: the open
 *       source (read for the Pixel Data element header, small Pixel Data
 *       values and the extent of encapsulated Pixel Data), or -1.
 *     The header bytes handed to GDCM are exactly those the index parses
 *       (dcmjson_header_range()): [skip, header_end), whole when deflated.
 *     name: the instance's node name ("<name>.dcm" is its file in the
 *       mount); NULL/0 at index time, when names are not known.
 *     out->buf: ONE JSON object (not an array): the data set, keys
 *       "GGGGEEEE" ascending, compact, ending with "\n". out->nbulk: the
 *       number of BulkDataURIs; each carries the percent-encoded name once,
 *       so the length with a name is
 *         len(name NULL) + nbulk * dcmjson_name_bytes(name).
 *   Conventions (the README repeats them):
 *     - every element has "vr"; an empty value has no "Value";
 *     - group lengths (gggg,0000) and the File Meta group (0002) are left
 *       out; so is Data Set Trailing Padding (FFFC,FFFC); top-level
 *       elements after Pixel Data are read through fd (none when fd < 0,
 *       when the data set is deflated, when they are more than
 *       DCMJSON_TRAILER_MAX bytes or not well-formed elements);
 *     - text decoded to UTF-8 per (0008,0005) (per item when an item has
 *       its own), trailing padding removed (leading spaces too except for
 *       LT/ST/UT/UR); multi-valued VRs split on '\\'; an empty value among
 *       several is null;
 *     - PN: {"Alphabetic","Ideographic","Phonetic"} with empty groups left
 *       out;
 *     - IS/DS: JSON numbers (IS as integers, DS in the shortest form that
 *       reads back as the same double); a value that is not a valid number
 *       stays a JSON string; FL/FD in the shortest form that reads back as
 *       the same float/double, NaN/Infinity as the strings "NaN",
 *       "Infinity", "-Infinity"; AT as "GGGGEEEE";
 *     - binary VRs: up to DCMJSON_INLINE_MAX bytes "InlineBinary" (base64
 *       of the little-endian value); larger ones, and Pixel Data, as
 *       "BulkDataURI": "<name>.dcm?offset=O&length=L" with O/L the file
 *       offset and length of the value bytes as stored (a big-endian file's
 *       words stay big-endian), name percent-encoded (RFC 3986 unreserved
 *       bytes kept). A large value whose bytes cannot be located verbatim
 *       in the file (deflated data set, big-endian words) is inline.
 *   Returns 0 (out filled; info->partial style flags in out) or a negative
 *   errno / DFS_EPARSE. Deterministic: same bytes and name, same output.
 *   Threading: reentrant.
 */
#ifndef DICOMFS_DCMJSON_H
#define DICOMFS_DCMJSON_H
#include <stddef.h>
#include <stdint.h>
#include "dcmwalk.h"

#define DCMJSON_INLINE_MAX 1024
#define DCMJSON_TRAILER_MAX ((uint64_t)16 << 20)

struct dcmjson_out {
	char *buf;          /* malloc()ed, NUL-terminated at len; reused by
			     * the next build; dcmjson_release() */
	size_t len, cap;    /* cap: bytes allocated at buf */
	uint64_t nbulk;     /* BulkDataURIs written */
	int partial;        /* GDCM read the header only partly */
	int charset_warn;   /* some text could not be decoded exactly */
	int c_walk;         /* the header was walked by dcmelem (C), not GDCM */
};

/*
 * Which walker reads the header: DCMJSON_WALK_AUTO (dcmelem.h where it
 * handles the encoding, else GDCM; the default), DCMJSON_WALK_GDCM (GDCM
 * always: also set by the environment variable DICOMFS_JSON_GDCM=1, read
 * at the first build). Process-wide; for tests and the benchmarks.
 */
enum { DCMJSON_WALK_AUTO = 0, DCMJSON_WALK_GDCM = 1 };
void dcmjson_set_walker(int mode);

/* What GDCM is given: file[*skip, w->header_end), *whole (see scan.c). */
void dcmjson_header_range(const struct dcmwalk_result *w, size_t *skip,
			  int *whole);

int dcmjson_build(const uint8_t *file, size_t flen, uint64_t file_size,
		  const struct dcmwalk_result *w, int fd, const char *name,
		  size_t name_len, struct dcmjson_out *out);

/*
 * The same, also handing the top-level elements whose tags are in a->tags
 * (sorted ascending) to a->fn as they pass: value as the walk reports it
 * (text raw, binary numbers little-endian). The index uses it to take its
 * attributes and the JSON size from one GDCM parse.
 */
struct dcmjson_attrs {
	const uint32_t *tags;
	size_t ntags;
	void (*fn)(void *ctx, uint32_t tag, const char vr[2],
		   const uint8_t *value, size_t len);
	void *ctx;
};
int dcmjson_build_attrs(const uint8_t *file, size_t flen, uint64_t file_size,
			const struct dcmwalk_result *w, int fd,
			const struct dcmjson_attrs *a, struct dcmjson_out *out);
void dcmjson_release(struct dcmjson_out *out);

/* Bytes one occurrence of name adds to the JSON (percent-encoded). */
size_t dcmjson_name_bytes(const char *name, size_t len);

/* Helpers, exposed for the unit test. out: at least 32 bytes. */
size_t dcmjson_fmt_double(double v, char *out);
size_t dcmjson_fmt_float(float v, char *out);
/* base64 of in[0,n) into out (4*((n+2)/3) bytes, no terminator) */
size_t dcmjson_base64(const uint8_t *in, size_t n, char *out);
/* IS / DS value (trimmed) -> JSON number text; 0 when not a valid number */
size_t dcmjson_is(const char *s, size_t n, char *out);
size_t dcmjson_ds(const char *s, size_t n, char *out);
/* dcmjson_ds without its shortcut for plain decimals (J3 in dcmjson.c) */
size_t dcmjson_ds_general(const char *s, size_t n, char *out);

#endif
