/*
 * encaps.h - the item stream of encapsulated Pixel Data (PS3.5 A.4), in
 * plain C: fragments, Basic and Extended Offset Tables, and which fragments
 * make up each frame, so that a codec is handed exactly one frame's
 * codestream (issue 12: GDCM's own parser misreads some item streams, e.g.
 * one whose fragment holds the bytes of a sequence delimiter).
 *
 * Rules (as pydicom's generate_pixel_data_frame / get_frame_offsets)
 * (E1) The stream is items (FFFE,E000) of defined length up to a sequence
 *      delimiter (FFFE,E0DD). The first item is the Basic Offset Table
 *      (may be empty); the others are fragments. Only item headers are
 *      read: a fragment's bytes are never interpreted as structure.
 * (E2) A stream that ends without a delimiter (at the end of the buffer,
 *      or at bytes that are not an item header, e.g. trailing padding) ends
 *      there; encaps.delimited tells which.
 * (E3) Frames: the Extended Offset Table (7FE0,0001) when given, else a
 *      non-empty Basic Offset Table: offsets (from the first fragment's
 *      item tag) that must each name the start of a fragment, ascending;
 *      frame i is the fragments from offset i up to offset i+1. A table
 *      that does not fit the fragments is ignored (the rules below apply).
 *      Without a usable table: one frame = every fragment; as many
 *      fragments as frames = one each; more fragments than frames = a
 *      frame ends with a fragment whose bytes end with the EOI/EOC marker
 *      FF D9 (trailing 00 padding allowed); else an error.
 * (E4) Every offset and length is checked against the buffer before use;
 *      counts are bounded by the buffer size (each item is >= 8 bytes).
 *
 * Threading: pure functions of their arguments.
 * Errors: 0 or a negative code (error.h) with *why a static English reason.
 */
#ifndef DICOMFS_ENCAPS_H
#define DICOMFS_ENCAPS_H
#include <stddef.h>
#include <stdint.h>

struct encaps_frag {
	uint64_t off;      /* offset in the buffer of the fragment's bytes */
	uint32_t len;
};

struct encaps {
	struct encaps_frag *frag;   /* fragments (the BOT excluded); malloc()ed */
	size_t nfrag;
	uint64_t bot_off;           /* the BOT's bytes */
	uint32_t bot_len;
	uint64_t end;               /* bytes of the stream, delimiter included */
	int delimited;              /* ended with (FFFE,E0DD) (E2) */
};

struct encaps_frame {
	uint32_t first, count;      /* fragments [first, first + count) */
	uint64_t len;               /* sum of their lengths */
};

/* Scan the item stream p[0, len) (the value of Pixel Data), be: big-endian
 * item headers. Fills e (encaps_free() it, also after an error). */
int encaps_scan(const uint8_t *p, size_t len, int be, struct encaps *e,
		const char **why);
void encaps_free(struct encaps *e);

/*
 * The fragments of each of nframes frames (E3) into fr[0, nframes).
 * eot/eot_len: the value of (7FE0,0001) Extended Offset Table (OV, 64-bit
 * offsets, little-endian), or NULL/0.
 */
int encaps_frames(const uint8_t *p, const struct encaps *e, uint32_t nframes,
		  const uint8_t *eot, size_t eot_len, int be,
		  struct encaps_frame *fr, const char **why);

/* Copy frame fr's codestream (its fragments, concatenated) to out
 * (fr->len bytes). */
void encaps_frame_copy(const uint8_t *p, const struct encaps *e,
		       const struct encaps_frame *fr, uint8_t *out);

#endif
