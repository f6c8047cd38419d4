/*
 * unit_cpulat.c - fs/cpulat.c against a file standing in for
 * /dev/cpu_dma_latency (each value the module writes lands after the
 * last): no constraint at start; the first touch holds the latency asked
 * (L1), more touches take no second hold (L3); a period without a touch
 * gives it back, a touch after that takes it again; stop gives it back;
 * no device or a bad value leave it off with a reason (L2); the auto
 * value of L4 from sysfs trees made here (haltpoll: 0; else the first
 * idle state that is not POLL; none: 0).
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

static void put_file(const char *dir, const char *rel, const char *text)
{
	char p[512], cmd[600];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", p);
	if (system(cmd) != 0)
		return;
	FILE *f = fopen(p, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static void test_auto(const char *dir)
{
	char root[256], how[128];
	snprintf(root, sizeof(root), "%s/sys", dir);
	/* bare metal: POLL, C1 (2 us), C6 (133 us) under menu */
	put_file(root, "cpuidle/current_governor", "menu\n");
	put_file(root, "cpu0/cpuidle/state0/name", "POLL\n");
	put_file(root, "cpu0/cpuidle/state0/latency", "0\n");
	put_file(root, "cpu0/cpuidle/state1/name", "C1\n");
	put_file(root, "cpu0/cpuidle/state1/latency", "2\n");
	put_file(root, "cpu0/cpuidle/state2/name", "C6\n");
	put_file(root, "cpu0/cpuidle/state2/latency", "133\n");
	CHECK(cpulat_auto_us(root, how, sizeof(how)) == 2 && strstr(how, "C1"),
	      "menu: C1's 2 us (%s)", how);
	/* a VM guest's haltpoll: 0, whatever its states say */
	put_file(root, "cpuidle/current_governor", "haltpoll\n");
	CHECK(cpulat_auto_us(root, how, sizeof(how)) == 0 && strstr(how, "haltpoll"),
	      "haltpoll: 0 (%s)", how);
	/* a read-only governor file, no state but POLL */
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	CHECK(system(cmd) == 0, "rm");
	put_file(root, "cpuidle/current_governor_ro", "teo\n");
	put_file(root, "cpu0/cpuidle/state0/name", "POLL\n");
	CHECK(cpulat_auto_us(root, NULL, 0) == 0, "only POLL: 0");
	/* no cpuidle at all */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	CHECK(system(cmd) == 0, "rm");
	CHECK(cpulat_auto_us(root, how, sizeof(how)) == 0, "no cpuidle: 0 (%s)", how);
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

	test_auto(dir);
	unlink(path);
	rmdir(dir);
	return unit_done();
}
