/*
 * unit_cpulat.c - fs/cpulat.c against a file standing in for
 * /dev/cpu_dma_latency (each value the module writes lands after the
 * last): no constraint at start; the first touch holds the latency asked
 * (L1), more touches take no second hold (L3); a period without a touch
 * gives it back, a touch after that takes it again; stop gives it back;
 * no device or a bad value leave it off with a reason (L2).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "../fs/cpulat.h"

#define NONE 2000000000

/* the values written so far, and how many */
static int values(const char *path, int32_t *v, int max)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, v, sizeof(*v) * (size_t)max);
	close(fd);
	return n < 0 ? -1 : (int)(n / (ssize_t)sizeof(*v));
}

static int32_t last(const char *path)
{
	int32_t v[64];
	int n = values(path, v, 64);
	return n > 0 ? v[n - 1] : -1;
}

/* waits (up to a deadline: no timing is checked) until the hold is given back */
static int released(struct cpulat *l)
{
	struct cpulat_stats s;
	for (int i = 0; i < 1000; i++) {
		cpulat_stats(l, &s);
		if (!s.held)
			return 1;
		nanosleep(&(struct timespec){ 0, 10000000L }, NULL);
	}
	return 0;
}

int main(void)
{
	char dir[] = "/tmp/unit_cpulat.XXXXXX", path[64], why[256];
	struct cpulat_stats s;
	int32_t v[64];
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof(path), "%s/dev", dir);
	close(open(path, O_WRONLY | O_CREAT, 0600));

	struct cpulat *l = cpulat_start(path, 7, 50, why, sizeof(why));
	CHECK(l != NULL, "start: %s", why);
	if (!l)
		return unit_done();
	CHECK(last(path) == NONE, "no constraint at start: %d", last(path));
	cpulat_stats(l, &s);
	CHECK(!s.held && s.holds == 0 && s.us == 7, "idle: held %d holds %llu", s.held,
	      (unsigned long long)s.holds);

	cpulat_touch(l);
	CHECK(last(path) == 7, "a touch holds 7 us: %d", last(path));
	for (int i = 0; i < 1000; i++)
		cpulat_touch(l);
	cpulat_stats(l, &s);
	CHECK(s.held && s.holds == 1, "touches while held: held %d holds %llu", s.held,
	      (unsigned long long)s.holds);
	/* the thread may have given it back (and written) if this thread
	 * stalled for a whole period: then 3 values, never more */
	int n = values(path, v, 64);
	CHECK(n == 2 || (n == 3 && v[2] == NONE), "one write per hold: %d", n);

	CHECK(released(l), "given back after a period without a touch");
	CHECK(last(path) == NONE, "released: %d", last(path));

	cpulat_touch(l);
	cpulat_stats(l, &s);
	CHECK(s.holds == 2, "held again: holds %llu", (unsigned long long)s.holds);
	n = values(path, v, 64);
	CHECK(n >= 4 && v[3] == 7, "held again: 7 us written (%d values)", n);
	cpulat_stop(l);
	CHECK(last(path) == NONE, "stop gives it back: %d", last(path));
	cpulat_touch(NULL);   /* off: nothing */

	/* L2: no device, a bad value */
	char none[64];
	snprintf(none, sizeof(none), "%s/none/dev", dir);
	l = cpulat_start(none, 0, 0, why, sizeof(why));
	CHECK(l == NULL && strstr(why, "No such file"), "no device: %s", why);
	l = cpulat_start(path, -1, 0, why, sizeof(why));
	CHECK(l == NULL && why[0], "bad value: %s", why);
	cpulat_stats(NULL, &s);
	CHECK(!s.held && !s.holds, "NULL: zero stats");

	unlink(path);
	rmdir(dir);
	return unit_done();
}
