/*
 * readfloor - the "read floor" baseline for the dicomfs index benchmark.
 *
 * Reads a list of paths (from a file or stdin, NUL- or newline-separated),
 * then with N threads does open + read(first 16 KiB) + close on each path
 * and prints how many files per second that took.  This is roughly the
 * least I/O any indexer has to do to look at every file's header, so it is
 * the floor that dicomfs' index build is compared against.
 *
 * Usage: readfloor [-t THREADS] [-b BYTES] [-a] [-0] [-q] [LISTFILE|-]
 *   -t N   number of threads (default 1)
 *   -b N   bytes to read from each file (default 16384); with -a, the
 *          size of each read() call
 *   -a     read each file whole (read() until EOF): a "cat floor" without
 *          cat's per-file costs
 *   -0     list is NUL-separated (default: auto-detect; NUL if the list
 *          contains a NUL byte, otherwise newline)
 *   -q     print only the files/s figure (a single number)
 *
 * Output (default): one line of key=value pairs, e.g.
 *   files=20000 failed=0 threads=2 bytes=... seconds=0.412 files_per_second=48543 MB_per_second=...
 *
 * Build: gcc -O2 -pthread -o readfloor readfloor.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char **paths;
static size_t npaths;
static size_t readsz = 16384;
static int whole;
static atomic_size_t next_idx;
static atomic_size_t nfailed;
static atomic_ullong nbytes;

static void die(const char *msg)
{
	perror(msg);
	exit(2);
}

static char *slurp(FILE *f, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap + 1);
	if (!buf)
		die("malloc");
	for (;;) {
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (n < cap) {
			if (ferror(f))
				die("read list");
			break;
		}
		cap *= 2;
		buf = realloc(buf, cap + 1);
		if (!buf)
			die("realloc");
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static void split(char *buf, size_t len, int nulsep)
{
	size_t cap = 1024;
	char sep = nulsep ? '\0' : '\n';
	paths = malloc(cap * sizeof(*paths));
	if (!paths)
		die("malloc");
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i == len || buf[i] == sep) {
			buf[i] = '\0';
			/* strip a trailing CR from CRLF lists */
			if (!nulsep && i > start && buf[i - 1] == '\r')
				buf[i - 1] = '\0';
			if (buf[start] != '\0') {
				if (npaths == cap) {
					cap *= 2;
					paths = realloc(paths, cap * sizeof(*paths));
					if (!paths)
						die("realloc");
				}
				paths[npaths++] = buf + start;
			}
			start = i + 1;
		}
	}
}

static void *worker(void *arg)
{
	(void)arg;
	char *buf = malloc(readsz);
	unsigned long long bytes = 0;
	if (!buf)
		die("malloc");
	for (;;) {
		size_t i = atomic_fetch_add(&next_idx, 1);
		if (i >= npaths)
			break;
		int fd = open(paths[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			if (atomic_fetch_add(&nfailed, 1) < 5)
				fprintf(stderr, "readfloor: %s: %s\n", paths[i], strerror(errno));
			continue;
		}
		ssize_t r;
		do {
			r = read(fd, buf, readsz);
			if (r > 0)
				bytes += (unsigned long long)r;
		} while (whole && r > 0);
		if (r < 0 && atomic_fetch_add(&nfailed, 1) < 5)
			fprintf(stderr, "readfloor: read %s: %s\n", paths[i], strerror(errno));
		close(fd);
	}
	atomic_fetch_add(&nbytes, bytes);
	free(buf);
	return NULL;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: readfloor [-t THREADS] [-b BYTES] [-a] [-0] [-q] [LISTFILE|-]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int nthreads = 1, nulsep = -1, quiet = 0, c;
	while ((c = getopt(argc, argv, "t:b:a0qh")) != -1) {
		switch (c) {
		case 't':
			nthreads = atoi(optarg);
			if (nthreads < 1 || nthreads > 1024)
				usage();
			break;
		case 'b':
			readsz = strtoul(optarg, NULL, 10);
			break;
		case 'a':
			whole = 1;
			break;
		case '0':
			nulsep = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		default:
			usage();
		}
	}
	if (argc - optind > 1 || readsz == 0)
		usage();

	FILE *in = stdin;
	if (optind < argc && strcmp(argv[optind], "-") != 0) {
		in = fopen(argv[optind], "rb");
		if (!in)
			die(argv[optind]);
	}
	size_t len;
	char *buf = slurp(in, &len);
	if (in != stdin)
		fclose(in);
	if (nulsep < 0)
		nulsep = memchr(buf, '\0', len) != NULL;
	split(buf, len, nulsep);
	if (npaths == 0) {
		fprintf(stderr, "readfloor: empty path list\n");
		return 2;
	}

	pthread_t *th = calloc((size_t)nthreads, sizeof(*th));
	if (!th)
		die("calloc");
	double t0 = now();
	for (int i = 0; i < nthreads; i++)
		if ((errno = pthread_create(&th[i], NULL, worker, NULL)) != 0)
			die("pthread_create");
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	double secs = now() - t0;
	if (secs <= 0)
		secs = 1e-9;

	size_t failed = atomic_load(&nfailed);
	unsigned long long bytes = atomic_load(&nbytes);
	double fps = (double)(npaths - failed) / secs;
	if (quiet)
		printf("%.0f\n", fps);
	else
		printf("files=%zu failed=%zu threads=%d bytes=%llu seconds=%.6f "
		       "files_per_second=%.0f MB_per_second=%.1f\n",
		       npaths, failed, nthreads, bytes, secs, fps,
		       (double)bytes / 1e6 / secs);
	return failed ? 1 : 0;
}
