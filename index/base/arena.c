/* arena.c - see arena.h. */
#include <stdlib.h>

#include "arena.h"

void *arena_alloc(struct arena *a, size_t n, size_t chunk)
{
	unsigned char **nc;
	if (n > chunk) {   /* A2 */
		nc = realloc(a->chunks, (a->nchunks + 1) * sizeof(*nc));
		if (!nc)
			return NULL;
		a->chunks = nc;
		unsigned char *big = malloc(n);
		if (!big)
			return NULL;
		if (a->nchunks) {
			nc[a->nchunks] = nc[a->nchunks - 1];
			nc[a->nchunks - 1] = big;
		} else {
			nc[0] = big;
			a->used = chunk;   /* full: the next gets a new chunk */
		}
		a->nchunks++;
		return big;
	}
	if (!a->nchunks || a->used + n > chunk) {
		nc = realloc(a->chunks, (a->nchunks + 1) * sizeof(*nc));
		if (!nc)
			return NULL;
		a->chunks = nc;
		if (!(nc[a->nchunks] = malloc(chunk)))
			return NULL;
		a->nchunks++;
		a->used = 0;
	}
	unsigned char *p = a->chunks[a->nchunks - 1] + a->used;
	a->used += (n + 7) & ~(size_t)7;
	return p;
}

void arena_release(struct arena *a)
{
	for (size_t i = 0; i < a->nchunks; i++)
		free(a->chunks[i]);
	free(a->chunks);
	a->chunks = NULL;
	a->nchunks = a->used = 0;
}
