/*
 * parsebench - the index build's parse step alone, side by side in one run
 * (issue 17): scan.c's parse_one() over a list of files (what a
 * --parse-worker does per file: open, read the header, walk it, the DICOM
 * JSON size and the indexed attributes, the record), with the C header
 * walker (dcmelem.h, the default) and with GDCM forced (DCMJSON_WALK_GDCM),
 * against the floor of opening and reading 16 KiB of each file. One thread,
 * warm page cache. Rounds alternate the three; medians are printed as
 * files/s of wall time and of CPU time (steadier on a loaded machine), and
 * the ratios C/GDCM and C/floor. The records of the two walkers are also
 * compared (a difference is reported and makes the exit status 1).
 *
 * Usage: parsebench LIST [ROUNDS]   LIST: file paths separated by NUL
 */
#include "../../index/scan.c"
#include <time.h>

static double now(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmpd(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmpd);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct files {
	char **p;
	size_t n;
};

static uint64_t hash_rec(const struct rec_buf *r, uint64_t h)
{
	/* the record without its head's id/ino/mtime fields: all of it is
	 * deterministic here, so hash everything */
	for (size_t i = 0; i < r->len; i++)
		h = (h ^ (uint8_t)r->data[i]) * 1099511628211ULL;
	return h;
}

static uint64_t run_parse(const struct files *f, struct source *src, int mode, double *wall,
			  double *cpu)
{
	static struct pbuf b;
	static struct rec_buf rec;
	struct index ix;
	uint64_t h = 1469598103934665603ULL;
	dcmjson_set_walker(mode);
	memset(&ix, 0, sizeof(ix));
	ix.archive_fd = AT_FDCWD;
	ix.src = *src;
	double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	for (size_t i = 0; i < f->n; i++) {
		struct source_entry c;
		struct stat st;
		memset(&c, 0, sizeof(c));
		if (stat(f->p[i], &st))
			continue;
		c.rel = f->p[i];
		c.rel_len = strlen(f->p[i]);
		c.st = st;
		parse_one(&ix, &c, i, &b, &rec);
		h = hash_rec(&rec, h);
	}
	*wall = now(CLOCK_MONOTONIC) - w0;
	*cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
	return h;
}

static void run_floor(const struct files *f, double *wall, double *cpu)
{
	static char buf[16384];
	double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	for (size_t i = 0; i < f->n; i++) {
		struct stat st;
		if (stat(f->p[i], &st))  /* as parse_one's caller has the stat */
			continue;
		int fd = open(f->p[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (read(fd, buf, sizeof(buf)) < 0)
			perror("read");
		close(fd);
	}
	*wall = now(CLOCK_MONOTONIC) - w0;
	*cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: parsebench LIST [ROUNDS]\n");
		return 2;
	}
	int rounds = argc > 2 ? atoi(argv[2]) : 3;
	if (rounds < 1 || rounds > 50)
		rounds = 3;
	FILE *lf = fopen(argv[1], "r");
	if (!lf) {
		perror(argv[1]);
		return 2;
	}
	struct files f = { 0 };
	size_t cap = 0;
	char *line = NULL;
	size_t lcap = 0;
	ssize_t k;
	while ((k = getdelim(&line, &lcap, 0, lf)) > 0) {
		if (line[k - 1] == 0)
			k--;
		if (!k)
			continue;
		if (f.n == cap) {
			cap = cap ? cap * 2 : 1024;
			f.p = realloc(f.p, cap * sizeof(*f.p));
			if (!f.p)
				return 2;
		}
		f.p[f.n++] = strndup(line, (size_t)k);
	}
	fclose(lf);
	free(line);
	if (!f.n) {
		fprintf(stderr, "parsebench: empty list\n");
		return 2;
	}
	char msg[128];
	struct source src;
	dcmshim_init();
	if (source_create("/", NULL, &src, msg, sizeof(msg))) {
		fprintf(stderr, "parsebench: %s\n", msg);
		return 2;
	}
	double fw[50], fc[50], gw[50], gc[50], cw[50], cc[50];
	if (getenv("PARSEBENCH_PROFILE")) {  /* the C walk only, for perf */
		for (int r = 0; r < rounds; r++)
			run_parse(&f, &src, DCMJSON_WALK_AUTO, &cw[0], &cc[0]);
		return 0;
	}
	uint64_t hg = 0, hc = 0;
	int differ = 0;
	/* one untimed pass of each: page cache, the GDCM module, the dictionary */
	run_floor(&f, &fw[0], &fc[0]);
	hg = run_parse(&f, &src, DCMJSON_WALK_GDCM, &gw[0], &gc[0]);
	hc = run_parse(&f, &src, DCMJSON_WALK_AUTO, &cw[0], &cc[0]);
	for (int r = 0; r < rounds; r++) {
		run_floor(&f, &fw[r], &fc[r]);
		if (run_parse(&f, &src, DCMJSON_WALK_GDCM, &gw[r], &gc[r]) != hg)
			differ = 1;
		if (run_parse(&f, &src, DCMJSON_WALK_AUTO, &cw[r], &cc[r]) != hc)
			differ = 1;
	}
	if (hg != hc)
		differ = 1;
	double n = (double)f.n;
	double Fw = n / median(fw, rounds), Fc = n / median(fc, rounds);
	double Gw = n / median(gw, rounds), Gc = n / median(gc, rounds);
	double Cw = n / median(cw, rounds), Cc = n / median(cc, rounds);
	printf("files %zu rounds %d (1 thread, warm, medians)\n", f.n, rounds);
	printf("%-34s %12s %12s\n", "", "files/s wall", "files/s cpu");
	printf("%-34s %12.0f %12.0f\n", "floor: open+read 16 KiB+close", Fw, Fc);
	printf("%-34s %12.0f %12.0f\n", "parse_one, GDCM walk (before)", Gw, Gc);
	printf("%-34s %12.0f %12.0f\n", "parse_one, C walk (dcmelem)", Cw, Cc);
	printf("ratio C/GDCM   wall %.2fx  cpu %.2fx\n", Cw / Gw, Cc / Gc);
	printf("ratio C/floor  wall %.3fx cpu %.3fx   (GDCM/floor wall %.3fx cpu %.3fx)\n",
	       Cw / Fw, Cc / Fc, Gw / Fw, Gc / Fc);
	printf("records: %s\n", differ ? "DIFFER between the walkers" : "identical");
	source_destroy(&src);
	return differ ? 1 : 0;
}
