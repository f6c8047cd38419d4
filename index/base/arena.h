/*
 * arena.h - many small allocations freed together: chunks that never
 * move, so what is handed out stays where it is until arena_release.
 *
 * Invariants
 * (A1) Every pointer arena_alloc returned is valid, and 8-byte aligned,
 *      until arena_release; none is freed on its own.
 * (A2) An allocation larger than the chunk size gets a chunk of its own,
 *      kept before the chunk being filled (which goes on being filled).
 * A zeroed struct arena is an empty one. The chunk size is the caller's,
 * the same at every call on one arena.
 *
 * Errors: arena_alloc returns NULL when out of memory (the arena is intact).
 * Threading: an arena belongs to one thread.
 */
#ifndef DICOMFS_ARENA_H
#define DICOMFS_ARENA_H
#include <stddef.h>

struct arena {
	unsigned char **chunks;
	size_t nchunks, used;     /* used: bytes of the last chunk handed out */
};

void *arena_alloc(struct arena *a, size_t n, size_t chunk);
void arena_release(struct arena *a);   /* frees all; back to empty */

#endif
