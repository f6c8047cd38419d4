/* unit_fdbudget.c - index/fdbudget.h (F1-F5) under a low RLIMIT_NOFILE, and
 * the local source's opens without a kept fd once the budget is spent
 * (source_local.c, F4): verified, read, and verified again per read. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdbudget.h"
#include "source.h"
#include "unit.h"

#define LIMIT 160

int main(void)
{
	struct rlimit rl = { LIMIT, LIMIT };
	int limit, cap, held;
	char dir[] = "/tmp/unit_fdbudget.XXXXXX", path[64], msg[256], why[160];

	CHECK(fdb_take() == 1, "before fdb_init every take succeeds (F1)");
	fdb_put();
	if (setrlimit(RLIMIT_NOFILE, &rl)) {
		printf("cannot set RLIMIT_NOFILE: skipped\n");
		return 77;
	}
	fdb_init();
	unsigned t = fdb_threads(128);
	fdb_stats(&limit, &cap, &held);
	CHECK(limit == LIMIT, "limit %d, want %d", limit, LIMIT);
	CHECK(t >= 2 && t < 128, "threads %u: fewer than asked under a low limit (F2)", t);
	CHECK(cap >= FDB_MIN_HELD, "cap %d >= %d held fds (F2)", cap, FDB_MIN_HELD);
	/* every fd of the budget, and 3 per thread, fit under the limit */
	CHECK(cap + FDB_PER_THREAD * (int)t + FDB_SLACK < LIMIT, "cap %d + threads %u fit", cap, t);
	fdb_reserve(10);   /* F3 */
	int cap2;
	fdb_stats(&limit, &cap2, &held);
	CHECK(cap2 == cap - 10, "a reservation of 10 lowers the cap: %d -> %d", cap, cap2);
	fdb_unreserve(10);

	/* the local source: opens keep their fd while the budget lasts */
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(path, sizeof(path), "%s/f", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, "0123456789", 10) == 10, "write the file");
	close(fd);
	struct stat st;
	CHECK(stat(path, &st) == 0, "stat");
	struct source s;
	CHECK(source_create(dir, NULL, &s, msg, sizeof(msg)) == 0, "create: %s", msg);
	struct source_expect e = { 10, (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
				   (uint64_t)st.st_ino };
	struct source_file *f = calloc((size_t)cap + 8, sizeof(*f));
	int kept = 0, lazy = 0, n = 0;
	for (int i = 0; i < cap + 8; i++, n++) {
		if (source_open(&s, "f", 1, &e, &f[i], why, sizeof(why))) {
			CHECK(0, "open %d failed: %s", i, why);
			break;
		}
		if (f[i].fd >= 0)
			kept++;
		else
			lazy++;
	}
	fdb_stats(&limit, &cap2, &held);
	CHECK(held == kept && kept <= cap, "%d kept fds counted (%d held, cap %d)", kept, held, cap);
	CHECK(lazy >= 8, "%d opens past the budget keep no fd (F4), none failed", lazy);
	CHECK(!fdb_spare(1), "no fd to spare with the budget spent (F5)");
	char buf[4] = "";
	CHECK(source_read(&s, &f[n - 1], buf, 3, 4) == 0 && memcmp(buf, "456", 3) == 0,
	      "a read without a kept fd reads the file");
	/* a changed file is caught at the read (R2 again) */
	fd = open(path, O_WRONLY | O_APPEND);
	CHECK(fd >= 0 && write(fd, "x", 1) == 1, "append");
	close(fd);
	CHECK(source_read(&s, &f[n - 1], buf, 3, 4) == -EIO, "a changed file: EIO at the read");
	for (int i = 0; i < n; i++)
		source_close(&s, &f[i]);
	fdb_stats(&limit, &cap2, &held);
	CHECK(held == 0, "every close gave its fd back: %d held", held);
	CHECK(fdb_spare(FDB_MIN_HELD), "fds to spare again");
	free(f);
	source_destroy(&s);
	unlink(path);
	rmdir(dir);
	return unit_done();
}
