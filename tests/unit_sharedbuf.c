/*
 * unit_sharedbuf.c - fs/shared_buf.c: sharing while held (SB1, SB3), the
 * idle entries of zero-message opens (SB7: found again without a build,
 * bounded to cap / SB_IDLE_SHARE with the newest kept, aged out by
 * shared_bufs_sweep after SB_IDLE_MS, freed by retire and linger off) and
 * the room they give back to builds (SB4).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unit.h"
#include "../fs/shared_buf.h"

struct ctx {
	int builds;
	size_t len;
	char fill;
};

static int build(void *p, char **buf, size_t *len)
{
	struct ctx *c = p;
	c->builds++;
	*buf = malloc(c->len ? c->len : 1);
	if (!*buf)
		return -ENOMEM;
	memset(*buf, c->fill, c->len);
	*len = c->len;
	return 0;
}

static void usage(struct shared_bufs *t, uint64_t *bytes, size_t *n)
{
	shared_bufs_usage(t, bytes, n);
}

int main(void)
{
	struct shared_bufs *t;
	struct shared_buf *h, *h2;
	struct ctx c = { 0, 1000, 'a' };
	uint64_t bytes;
	size_t n, len;

	/* without linger: freed at the last put (SB3) */
	CHECK(shared_bufs_new(4000, &t) == 0, "new");
	CHECK(shared_buf_get(t, 1, build, &c, &h) == 0, "get");
	CHECK(shared_buf_get(t, 1, build, &c, &h2) == 0 && h2 == h && c.builds == 1,
	      "a second holder shares (builds %d)", c.builds);
	shared_buf_put(h2);
	shared_buf_put(h);
	usage(t, &bytes, &n);
	CHECK(bytes == 0 && n == 0, "no linger: freed (bytes %llu, n %zu)",
	      (unsigned long long)bytes, n);

	/* linger: an idle entry is found again without a build (SB7) */
	shared_bufs_linger(t, 1);
	c.builds = 0;
	CHECK(shared_buf_get(t, 1, build, &c, &h) == 0, "get");
	shared_buf_put(h);
	usage(t, &bytes, &n);
	CHECK(bytes == 1000 && n == 1, "idle entry kept (bytes %llu, n %zu)",
	      (unsigned long long)bytes, n);
	CHECK(shared_buf_get(t, 1, build, &c, &h) == 0 && c.builds == 1,
	      "found again without a build (builds %d)", c.builds);
	const char *d = shared_buf_data(h, &len);
	CHECK(len == 1000 && d[0] == 'a' && d[999] == 'a', "same content");
	shared_buf_put(h);

	/* idle bytes <= cap / SB_IDLE_SHARE (1000): a second idle entry pushes
	 * the older one out, the newest stays even when alone above it */
	c.fill = 'b';
	CHECK(shared_buf_get(t, 2, build, &c, &h) == 0, "get 2");
	shared_buf_put(h);
	usage(t, &bytes, &n);
	CHECK(bytes == 1000 && n == 1, "the older idle entry went (bytes %llu, n %zu)",
	      (unsigned long long)bytes, n);
	c.builds = 0;
	CHECK(shared_buf_get(t, 2, build, &c, &h) == 0 && c.builds == 0, "key 2 still idle");
	shared_buf_put(h);
	CHECK(shared_buf_get(t, 1, build, &c, &h) == 0 && c.builds == 1, "key 1 rebuilt");
	d = shared_buf_data(h, &len);
	CHECK(d[0] == 'b', "rebuilt by this build");
	shared_buf_put(h);
	c.len = 3000;   /* larger than the idle share: kept while the newest */
	c.builds = 0;
	CHECK(shared_buf_get(t, 3, build, &c, &h) == 0, "get 3 (3000 bytes)");
	shared_buf_put(h);
	CHECK(shared_buf_get(t, 3, build, &c, &h) == 0 && c.builds == 1,
	      "the newest idle entry stays above the idle share (builds %d)", c.builds);

	/* SB4: a build evicts idle entries before it waits (cap 4000: 3000
	 * held + 1000 idle at most; a 1000-byte build fits only after the
	 * idle ones go) */
	c.len = 1000;
	c.builds = 0;
	CHECK(shared_buf_get(t, 4, build, &c, &h2) == 0 && c.builds == 1,
	      "a build finds room (idle entries evicted first)");
	shared_buf_put(h2);
	shared_buf_put(h);

	/* SB6: retire frees the idle entries */
	shared_bufs_retire(t);
	usage(t, &bytes, &n);
	CHECK(bytes == 0 && n == 0, "retired: nothing idle (bytes %llu, n %zu)",
	      (unsigned long long)bytes, n);

	/* the sweep: idle for SB_IDLE_MS, then freed */
	CHECK(shared_buf_get(t, 5, build, &c, &h) == 0, "get 5");
	shared_buf_put(h);
	shared_bufs_sweep(t);
	usage(t, &bytes, &n);
	CHECK(n == 1, "a fresh idle entry survives the sweep (n %zu)", n);
	struct timespec ts = { SB_IDLE_MS / 1000 + 1, 0 };
	nanosleep(&ts, NULL);
	shared_bufs_sweep(t);
	usage(t, &bytes, &n);
	CHECK(bytes == 0 && n == 0, "an entry idle longer than SB_IDLE_MS is swept (n %zu)", n);

	/* linger off frees the idle entries */
	CHECK(shared_buf_get(t, 6, build, &c, &h) == 0, "get 6");
	shared_buf_put(h);
	shared_bufs_linger(t, 0);
	usage(t, &bytes, &n);
	CHECK(bytes == 0 && n == 0, "linger off: freed (n %zu)", n);
	shared_bufs_free(t);
	return unit_done();
}
