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
 * Prints one line per mismatch and a summary:
 *   files F dicom D c_walk C gdcm G mismatches M
 * Exit status: 0, or 1 when any file differs, or 2 on a usage error.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

static void run_free(struct run *r)
{
	dcmjson_release(&r->a);
	dcmjson_release(&r->n);
	strbuf_release(&r->log.sb);
}

static int same_out(const struct dcmjson_out *x, const struct dcmjson_out *y)
{
	return x->len == y->len && (!x->len || !memcmp(x->buf, y->buf, x->len)) &&
	       x->nbulk == y->nbulk && x->partial == y->partial &&
	       x->charset_warn == y->charset_warn;
}

static unsigned long nfiles, ndicom, nc, ngdcm, nbad;

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
		struct run c, g;
		ndicom++;
		dcmjson_set_walker(DCMJSON_WALK_AUTO);
		run_one(d, len, &w, fd, &c);
		dcmjson_set_walker(DCMJSON_WALK_GDCM);
		run_one(d, len, &w, fd, &g);
		if (c.a.c_walk)
			nc++;
		else
			ngdcm++;
		if (c.a.c_walk != c.n.c_walk || g.a.c_walk || g.n.c_walk) {
			printf("MISMATCH %s: walker choice\n", path);
			nbad++;
		} else if (c.rc_a != g.rc_a || c.rc_n != g.rc_n) {
			printf("MISMATCH %s: rc %d/%d vs GDCM %d/%d\n", path, c.rc_a, c.rc_n,
			       g.rc_a, g.rc_n);
			nbad++;
		} else if (!same_out(&c.a, &g.a) || !same_out(&c.n, &g.n)) {
			size_t k = 0;
			while (k < c.a.len && k < g.a.len && c.a.buf[k] == g.a.buf[k])
				k++;
			size_t from = k > 60 ? k - 60 : 0;
			printf("MISMATCH %s: json (len %zu vs %zu) at byte %zu\n  C:    %.120s\n  GDCM: %.120s\n",
			       path, c.a.len, g.a.len, k,
			       c.a.buf ? c.a.buf + (from < c.a.len ? from : c.a.len) : "",
			       g.a.buf ? g.a.buf + (from < g.a.len ? from : g.a.len) : "");
			nbad++;
		} else if (c.log.sb.len != g.log.sb.len ||
			   (c.log.sb.len && memcmp(c.log.sb.buf, g.log.sb.buf, c.log.sb.len))) {
			printf("MISMATCH %s: indexed attributes\n", path);
			nbad++;
		}
		run_free(&c);
		run_free(&g);
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
	printf("files %lu dicom %lu c_walk %lu gdcm %lu mismatches %lu\n", nfiles, ndicom, nc,
	       ngdcm, nbad);
	return nbad ? 1 : 0;
}
