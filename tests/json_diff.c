/*
 * json_diff - differential oracle for the C header walker (dcmelem.h).
 *
 * For every file named on the command line (or one per line on stdin with
 * "-"): dcmwalk_header() over the whole file, then dcmjson_build_attrs()
 * (no name, the index's attribute tags) and dcmjson_build() (a name with
 * bytes that must be percent-encoded), once with the default walker (C
 * where it handles the file) and once with GDCM forced. Both must agree
 * on the return code, the JSON bytes, nbulk, partial, charset_warn and
 * the stream of attributes the index records (tag, VR, value bytes).
 * Each walk runs in a child process: GDCM asserts (aborts) on some
 * malformed files; a file where GDCM dies and the C walker answers is
 * listed (GDCM-DIED) and counted, not a mismatch.
 * Prints one line per mismatch and a summary:
 *   files F dicom D c_walk C gdcm G mismatches M gdcm_died X gdcm_died_c_answered Y
 * Exit status: 0, or 1 when any file differs, or 2 on a usage error.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dcmjson.h"
#include "dcmshim.h"
#include "dcmwalk.h"
#include "strbuf.h"
#include "tags.h"

struct attrs_log {
	struct strbuf sb;
};

static void attr_fn(void *ctx, uint32_t tag, const char vr[2], const uint8_t *v, size_t n)
{
	struct attrs_log *l = ctx;
	strbuf_addf(&l->sb, "%08X %c%c %zu:", tag, vr[0], vr[1], n);
	strbuf_add(&l->sb, (const char *)v, n);
	strbuf_add(&l->sb, "\n", 1);
}

struct run {
	int rc_a, rc_n;
	struct dcmjson_out a, n;   /* unnamed (with attributes), named */
	struct attrs_log log;
};

static void run_one(const uint8_t *d, size_t len, const struct dcmwalk_result *w, int fd,
		    struct run *r)
{
	static const char name[] = "a b%\"\\\xc3\xa9.x";
	struct dcmjson_attrs at = { dfs_tag_numbers(), dfs_ntags, attr_fn, &r->log };
	memset(r, 0, sizeof(*r));
	r->rc_a = dcmjson_build_attrs(d, len, len, w, fd, &at, &r->a);
	r->rc_n = dcmjson_build(d, len, len, w, fd, name, sizeof(name) - 1, &r->n);
}

/* a run serialized: rc_a rc_n c_walk_a c_walk_n nbulk partial cs_warn, then
 * the three texts (unnamed JSON, named JSON, attribute log) with lengths */
static void put_bytes(struct strbuf *o, const void *p, size_t n)
{
	uint64_t l = n;
	strbuf_add(o, &l, sizeof(l));
	strbuf_add(o, p, n);
}

static void serialize(const struct run *r, struct strbuf *o)
{
	int64_t h[7] = { r->rc_a, r->rc_n, r->a.c_walk, r->n.c_walk, (int64_t)r->a.nbulk,
			 r->a.partial, r->a.charset_warn };
	int64_t h2[3] = { (int64_t)r->n.nbulk, r->n.partial, r->n.charset_warn };
	strbuf_add(o, h, sizeof(h));
	strbuf_add(o, h2, sizeof(h2));
	put_bytes(o, r->a.buf, r->a.len);
	put_bytes(o, r->n.buf, r->n.len);
	put_bytes(o, r->log.sb.buf, r->log.sb.len);
}

/*
 * One walk in a child process (GDCM aborts on some malformed input: its
 * assertions), serialized into *o. Returns 0, or -1 when the child died.
 */
static int run_isolated(const uint8_t *d, size_t len, const struct dcmwalk_result *w, int fd,
			int mode, struct strbuf *o)
{
	int p[2];
	if (pipe(p))
		return -1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct run r;
		struct strbuf b = STRBUF_INIT;
		close(p[0]);
		dcmjson_set_walker(mode);
		run_one(d, len, w, fd, &r);
		serialize(&r, &b);
		const char *q = b.buf;
		size_t left = b.len;
		while (left) {
			ssize_t k = write(p[1], q, left);
			if (k <= 0)
				_exit(3);
			q += k;
			left -= (size_t)k;
		}
		_exit(0);
	}
	close(p[1]);
	char buf[65536];
	ssize_t k;
	while ((k = read(p[0], buf, sizeof(buf))) > 0)
		strbuf_add(o, buf, (size_t)k);
	close(p[0]);
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return 0;
}

static unsigned long nfiles, ndicom, nc, ngdcm, nbad, ncrash_both, ncrash_gdcm;

static void show_diff(const char *path, const struct strbuf *c, const struct strbuf *g)
{
	size_t k = 0;
	while (k < c->len && k < g->len && c->buf[k] == g->buf[k])
		k++;
	size_t from = k > 60 ? k - 60 : 0;
	printf("MISMATCH %s: (%zu vs %zu bytes) first difference at byte %zu\n", path, c->len,
	       g->len, k);
	printf("  C:    ");
	for (size_t i = from; i < c->len && i < from + 160; i++)
		putchar(c->buf[i] >= 32 && c->buf[i] < 127 ? c->buf[i] : '.');
	printf("\n  GDCM: ");
	for (size_t i = from; i < g->len && i < from + 160; i++)
		putchar(g->buf[i] >= 32 && g->buf[i] < 127 ? g->buf[i] : '.');
	printf("\n");
}

static void check(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		if (fd >= 0)
			close(fd);
		return;
	}
	nfiles++;
	size_t len = (size_t)st.st_size;
	uint8_t *d = malloc(len ? len : 1);
	if (!d || (len && pread(fd, d, len, 0) != (ssize_t)len)) {
		free(d);
		close(fd);
		return;
	}
	struct dcmwalk_result w;
	if (dcmwalk_header(d, len, len, &w) == 0) {
		struct strbuf c = STRBUF_INIT, g = STRBUF_INIT;
		ndicom++;
		int rc = run_isolated(d, len, &w, fd, DCMJSON_WALK_AUTO, &c);
		int rg = run_isolated(d, len, &w, fd, DCMJSON_WALK_GDCM, &g);
		int64_t h[4] = { 0, 0, 0, 0 };
		if (rc == 0 && c.len >= sizeof(h))
			memcpy(h, c.buf, sizeof(h));
		int cw = rc == 0 && h[2];
		if (cw)
			nc++;
		else
			ngdcm++;
		if (rc && rg) {
			ncrash_both++;   /* GDCM died both times: no answer to compare */
		} else if (rg && cw) {
			/* the C walker answered where GDCM dies (a malformed file
			 * GDCM asserts on, the production parser contains it) */
			printf("GDCM-DIED %s (the C walker answered)\n", path);
			ncrash_gdcm++;
		} else if (rc || rg) {
			printf("MISMATCH %s: a walk died (auto %d, GDCM %d)\n", path, rc, rg);
			nbad++;
		} else if (h[2] != h[3]) {
			printf("MISMATCH %s: walker choice differs with a name\n", path);
			nbad++;
		} else {
			/* GDCM's run says c_walk 0: blank those flags, then compare */
			memset(c.buf + 2 * sizeof(int64_t), 0, 2 * sizeof(int64_t));
			if (c.len != g.len || memcmp(c.buf, g.buf, c.len)) {
				const char *dump = getenv("JSON_DIFF_DUMP");
				if (dump) {  /* the two serialized runs, to look at */
					char fn[4096];
					snprintf(fn, sizeof(fn), "%s.c", dump);
					FILE *f = fopen(fn, "w");
					if (f) { fwrite(c.buf, 1, c.len, f); fclose(f); }
					snprintf(fn, sizeof(fn), "%s.gdcm", dump);
					f = fopen(fn, "w");
					if (f) { fwrite(g.buf, 1, g.len, f); fclose(f); }
				}
				show_diff(path, &c, &g);
				nbad++;
			}
		}
		strbuf_release(&c);
		strbuf_release(&g);
	}
	free(d);
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: json_diff FILE... | json_diff - (paths on stdin)\n");
		return 2;
	}
	dcmshim_init();
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-") == 0) {
			char line[4096];
			while (fgets(line, sizeof(line), stdin)) {
				line[strcspn(line, "\n")] = 0;
				if (*line)
					check(line);
			}
		} else {
			check(argv[i]);
		}
	}
	printf("files %lu dicom %lu c_walk %lu gdcm %lu mismatches %lu gdcm_died %lu "
	       "gdcm_died_c_answered %lu\n", nfiles, ndicom, nc, ngdcm, nbad, ncrash_both,
	       ncrash_gdcm);
	return nbad ? 1 : 0;
}
