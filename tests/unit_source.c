/*
 * unit_source.c - the local folder source (index/source.h): walk order and
 * problems, open-and-verify (R2), nothing swapped in blocks or passes
 * (R3), full reads (R4).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include "unit.h"
#include "error.h"
#include "source.h"

/* what the watch reported, one path a line (R8) */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static char seen[8192];

static void seen_cb(void *ctx, const char *rel, size_t len)
{
	(void)ctx;
	pthread_mutex_lock(&seen_lock);
	size_t o = strlen(seen);
	if (o + len + 2 < sizeof(seen)) {
		memcpy(seen + o, rel, len);
		seen[o + len] = '\n';
		seen[o + len + 1] = 0;
	}
	pthread_mutex_unlock(&seen_lock);
}

/* 1 once the watch reported rel (polls; gives up after 10 s: an event
 * that never comes, not a timing) */
/* rel ending in '/' matches any path below it */
static int wait_seen_ms(const char *rel, int ms)
{
	char line[256];
	size_t rl = strlen(rel);
	snprintf(line, sizeof(line), rl && rel[rl - 1] == '/' ? "\n%s" : "\n%s\n", rel);
	for (int i = 0; i < ms / 10; i++) {
		pthread_mutex_lock(&seen_lock);
		char all[sizeof(seen) + 1];
		snprintf(all, sizeof(all), "\n%s", seen);
		int found = strstr(all, line) != NULL;
		pthread_mutex_unlock(&seen_lock);
		if (found)
			return 1;
		usleep(10000);
	}
	return 0;
}

static int wait_seen(const char *rel)
{
	return wait_seen_ms(rel, 10000);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

#define CHANGED "source changed since it was indexed (remount to re-index)"

static char dir[64];
static char probs[2048];

static void problem(void *ctx, const char *path, const char *why)
{
	(void)ctx;
	size_t l = strlen(probs);
	snprintf(probs + l, sizeof(probs) - l, "%s: %s\n", path, why);
}

static void put(const char *rel, const char *data)
{
	char p[256];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	FILE *f = fopen(p, "w");
	fputs(data, f);
	fclose(f);
	/* one mtime for all: only the inode tells same-sized files apart */
	struct timespec ts[2] = { { 1000000000, 5 }, { 1000000000, 5 } };
	utimensat(AT_FDCWD, p, ts, 0);
}

static struct source_expect expect(const char *rel)
{
	char p[256];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	stat(p, &st);
	struct source_expect e = { (uint64_t)st.st_size,
				   (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
				   st.st_ino };
	return e;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	struct source s;
	struct source_list l = { 0 };
	struct source_file f;
	char msg[256], why[256], p[256], q[256], buf[16];

	snprintf(dir, sizeof(dir), "/tmp/unit_source.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(p, sizeof(p), "%s/a", dir);
	mkdir(p, 0755);
	put("b", "bbbb");
	put("a.b", "ab");
	put("a/x", "xxxx");
	put("a/y", "yyyy");
	put("z", "zz");
	snprintf(p, sizeof(p), "%s/l", dir);
	CHECK(symlink("z", p) == 0, "symlink l");
	snprintf(p, sizeof(p), "%s/loop", dir);
	CHECK(symlink(".", p) == 0, "symlink loop");
	snprintf(p, sizeof(p), "%s/dang", dir);
	CHECK(symlink("nope", p) == 0, "symlink dang");
	snprintf(p, sizeof(p), "%s/out", dir);
	CHECK(symlink("/proc/self/status", p) == 0, "symlink out");
	snprintf(p, sizeof(p), "%s/fifo", dir);
	CHECK(mkfifo(p, 0644) == 0, "fifo");

	CHECK(source_create("/nonexistent/dir", NULL, &s, msg, sizeof(msg)) == -ENOENT,
	      "a missing folder");
	CHECK(strstr(msg, "/nonexistent/dir") != NULL, "msg: %s", msg);
	CHECK(source_create(dir, NULL, &s, msg, sizeof(msg)) == 0, "create: %s", msg);
	CHECK_STR(s.ops->name, "local");
	CHECK(s.ops->can_change && s.ops->watch && s.ops->unwatch && s.ops->walk_under,
	      "can change, watched (R8)");

	/* R1: regular files only, in memcmp order ("a.b" before "a/x") */
	CHECK(source_walk(&s, &l, problem, NULL) == 0, "walk");
	const char *want[] = { "a.b", "a/x", "a/y", "b", "l", "z" };
	CHECK(l.n == 6, "%zu files", l.n);
	for (size_t i = 0; i < l.n && i < 6; i++)
		CHECK_STR(l.v[i].rel, want[i]);
	CHECK(l.n >= 5 && l.v[4].st.st_ino == l.v[5].st.st_ino, "l is followed to z");
	CHECK(strstr(probs, "dang: dangling symlink (not followed)\n") != NULL, "%s", probs);
	CHECK(strstr(probs, "loop: directory already visited") != NULL, "%s", probs);
	CHECK(strstr(probs, "out: symlink leaves the archive") != NULL, "%s", probs);
	source_list_free(&l);

	/* walk_under: the files at a path only (not "a.b" for "a") */
	CHECK(source_walk_under(&s, "a", 1, &l, problem, NULL) == 0 && l.n == 2 &&
	      !strcmp(l.v[0].rel, "a/x") && !strcmp(l.v[1].rel, "a/y"), "under a: %zu", l.n);
	source_list_free(&l);
	CHECK(source_walk_under(&s, "a/y", 3, &l, problem, NULL) == 0 && l.n == 1 &&
	      !strcmp(l.v[0].rel, "a/y"), "under a/y: %zu", l.n);
	source_list_free(&l);
	CHECK(source_walk_under(&s, "gone/x", 6, &l, problem, NULL) == 0 && l.n == 0,
	      "under a path that is gone: nothing");
	source_list_free(&l);
	CHECK(source_walk_under(&s, "", 0, &l, problem, NULL) == 0 && l.n == 6,
	      "under \"\": everything, again (%zu)", l.n);
	source_list_free(&l);

	/* R8: the watch reports a directory made (and the files in it later
	 * by name when written and closed), a file moved in, one removed */
	CHECK(s.ops->watch(s.inst, seen_cb, NULL) == 0, "watch");
	snprintf(p, sizeof(p), "%s/a/new", dir);
	CHECK(mkdir(p, 0755) == 0, "mkdir");
	/* the new directory's watch is added when its event is handled: a
	 * file written before that is found by walking the directory, one
	 * written after is reported by name */
	CHECK(wait_seen("a/new"), "watch reported a/new (got: %s)", seen);
	int named = 0;
	for (int i = 0; i < 50 && !named; i++) {
		char r[64];
		snprintf(r, sizeof(r), "a/new/f%d", i);
		snprintf(p, sizeof(p), "%s/%s", dir, r);
		write_file(p, "ffff");
		named = wait_seen_ms("a/new/", 100);
	}
	CHECK(named, "a file written in the new directory is reported by name");
	snprintf(p, sizeof(p), "%s/moved", dir);
	write_file(p, "mmmm");
	snprintf(q, sizeof(q), "%s/a/m", dir);
	CHECK(rename(p, q) == 0, "move in");
	snprintf(p, sizeof(p), "%s/a.b", dir);
	CHECK(unlink(p) == 0, "rm");
	const char *events[] = { "a/m", "a.b" };
	for (size_t i = 0; i < 2; i++)
		CHECK(wait_seen(events[i]), "watch reported %s (got: %s)", events[i], seen);
	s.ops->unwatch(s.inst);

	/* R2: the indexed file opens; R4: whole reads or DFS_ETRUNC */
	struct source_expect e = expect("b");
	CHECK(source_open(&s, "b", 1, &e, &f, why, sizeof(why)) == 0, "open b: %s", why);
	CHECK(f.fd >= 0, "an fd (R5)");
	CHECK(source_read(&s, &f, buf, 4, 0) == 0 && !memcmp(buf, "bbbb", 4), "read");
	CHECK(source_read(&s, &f, buf, 4, 2) == DFS_ETRUNC, "short read: DFS_ETRUNC");
	CHECK(!(fcntl(f.fd, F_GETFL) & O_NONBLOCK), "O_NONBLOCK cleared for splice");
	source_close(&s, &f);
	struct source_expect bad = e;
	bad.mtime_ns++;
	why[0] = 0;
	CHECK(source_open(&s, "b", 1, &bad, &f, why, sizeof(why)) == -EIO, "other mtime");
	CHECK_STR(why, CHANGED);
	bad = e;
	bad.size++;
	CHECK(source_open(&s, "b", 1, &bad, &f, why, sizeof(why)) == -EIO, "other size");
	bad = e;
	bad.ino++;
	CHECK(source_open(&s, "b", 1, &bad, &f, why, sizeof(why)) == -EIO, "other inode");
	CHECK(source_open(&s, "gone", 4, &e, &f, why, sizeof(why)) == -ENOENT, "gone");
	CHECK_STR(why, "cannot open source: No such file or directory");

	/* an indexed file reached through a symlink: verified by its inode */
	struct source_expect ez = expect("z");
	CHECK(source_open(&s, "l", 1, &ez, &f, why, sizeof(why)) == 0, "l: %s", why);
	source_close(&s, &f);
	ez.ino = 0;
	CHECK(source_open(&s, "l", 1, &ez, &f, why, sizeof(why)) == -EIO,
	      "through a symlink without an indexed inode: EIO");

	/* R3: a FIFO swapped in: EIO at once, no block */
	snprintf(p, sizeof(p), "%s/fifo", dir);
	snprintf(q, sizeof(q), "%s/b", dir);
	CHECK(rename(p, q) == 0, "swap in a FIFO");
	double t0 = now();
	CHECK(source_open(&s, "b", 1, &e, &f, why, sizeof(why)) == -EIO, "FIFO: EIO");
	CHECK(now() - t0 < 1, "FIFO: no block");
	/* a symlink to a same-sized file with the same mtime swapped in */
	struct source_expect ex = expect("a/x");
	snprintf(p, sizeof(p), "%s/a/x", dir);
	unlink(p);
	CHECK(symlink("y", p) == 0, "swap in a symlink");
	CHECK(source_open(&s, "a/x", 3, &ex, &f, why, sizeof(why)) == -EIO, "symlink: EIO");
	CHECK_STR(why, CHANGED);
	/* the scan's open (no expectation) follows, does not verify */
	CHECK(source_open(&s, "a/x", 3, NULL, &f, why, sizeof(why)) == 0, "scan open");
	CHECK(source_read(&s, &f, buf, 4, 0) == 0 && !memcmp(buf, "yyyy", 4), "scan read");
	source_close(&s, &f);
	/* the scan's opens keep the last directory open (source_local.c
	 * scan_openat; no fd budget here, as in a parser process): the same
	 * files whatever order the directories come in */
	snprintf(p, sizeof(p), "%s/c", dir);
	CHECK(mkdir(p, 0755) == 0, "mkdir c");
	put("c/q", "qqqq");
	const struct { const char *rel, *text; } seq[] = {
		{ "a/y", "yyyy" }, { "a/m", "mmmm" }, { "c/q", "qqqq" }, { "a/y", "yyyy" },
		{ "z", "zz" }, { "a/m", "mmmm" } };
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		memset(buf, 0, sizeof(buf));
		CHECK(source_open(&s, seq[i].rel, strlen(seq[i].rel), NULL, &f, why,
				  sizeof(why)) == 0 &&
		      source_read(&s, &f, buf, strlen(seq[i].text), 0) == 0 &&
		      !memcmp(buf, seq[i].text, strlen(seq[i].text)),
		      "scan open %zu (%s): %.4s", i, seq[i].rel, buf);
		source_close(&s, &f);
	}
	CHECK(source_open(&s, "a/nope", 6, NULL, &f, why, sizeof(why)) == -ENOENT,
	      "a file gone from the cached directory: ENOENT");
	CHECK(source_open(&s, "nodir/x", 7, NULL, &f, why, sizeof(why)) == -ENOENT,
	      "a directory that is not there: ENOENT");
	CHECK(source_open(&s, "c/q", 3, NULL, &f, why, sizeof(why)) == 0, "c/q again");
	source_close(&s, &f);
	source_destroy(&s);
	/* another archive with the same names: its own files, not the cached
	 * directory of the one before */
	char dir2[300];
	snprintf(dir2, sizeof(dir2), "%s/c/other", dir);
	snprintf(p, sizeof(p), "%s/c", dir2);
	CHECK(mkdir(dir2, 0755) == 0 && mkdir(p, 0755) == 0, "mkdir other/c");
	snprintf(p, sizeof(p), "%s/c/q", dir2);
	write_file(p, "2222");
	CHECK(source_create(dir2, NULL, &s, msg, sizeof(msg)) == 0, "create other: %s", msg);
	memset(buf, 0, sizeof(buf));
	CHECK(source_open(&s, "c/q", 3, NULL, &f, why, sizeof(why)) == 0 &&
	      source_read(&s, &f, buf, 4, 0) == 0 && !memcmp(buf, "2222", 4),
	      "another archive's c/q: %.4s", buf);
	source_close(&s, &f);
	source_destroy(&s);

	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		return 1;
	return unit_done();
}
