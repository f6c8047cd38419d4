/*
 * fuzz_encaps - the encapsulated Pixel Data parser (index/dicom/encaps.c):
 * encaps_scan, encaps_frames and encaps_frame_copy on an item stream, with
 * NumberOfFrames, byte order and an Extended Offset Table taken from the
 * first bytes of the input:
 *   byte 0   NumberOfFrames - 1 (1..256)
 *   byte 1   bit 0: big-endian item headers; bit 1: an EOT follows
 *   byte 2   EOT entries (when bit 1), then 8 bytes per entry
 *   rest     the item stream (the value of Pixel Data)
 * Every frame's codestream is copied into a buffer of exactly its size.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "encaps.h"

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	if (n < 3)
		return 0;
	uint32_t nframes = (uint32_t)d[0] + 1;
	int be = d[1] & 1;
	const uint8_t *eot = NULL;
	size_t eot_len = 0, pos = 2;
	if (d[1] & 2) {
		eot_len = (size_t)d[2] * 8;
		pos = 3;
		if (eot_len > n - pos)
			return 0;
		eot = d + pos;
		pos += eot_len;
	}
	/* the stream in its own allocation, so ASan sees reads past its end */
	size_t len = n - pos;
	uint8_t *p = malloc(len ? len : 1);
	if (!p)
		return 0;
	memcpy(p, d + pos, len);
	struct encaps e;
	const char *why = NULL;
	if (encaps_scan(p, len, be, &e, &why) == 0) {
		struct encaps_frame *fr = calloc(nframes, sizeof(*fr));
		if (fr && encaps_frames(p, &e, nframes, eot, eot_len, be, fr, &why) == 0) {
			uint64_t total = 0;
			for (uint32_t i = 0; i < nframes; i++) {
				uint8_t *cs = malloc(fr[i].len ? (size_t)fr[i].len : 1);
				if (!cs)
					break;
				encaps_frame_copy(p, &e, &fr[i], cs);
				total += fr[i].len;
				free(cs);
			}
			if (total > len)
				abort();   /* frames share fragments: never more than the stream */
		}
		free(fr);
	}
	encaps_free(&e);
	free(p);
	return 0;
}
