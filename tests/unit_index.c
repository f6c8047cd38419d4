/*
 * unit_index.c - record encoding, the header walker, and the incremental
 * index logic, the tree updated in place by a live batch against a full
 * build (index.h I11) (real LMDB, real GDCM, no FUSE).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "dcmwalk.h"
#include "error.h"
#include "index.h"
#include "record.h"
#include "store.h"
#include "log.h"
#include "strbuf.h"

#define PYDICOM "/usr/lib/python3/dist-packages/pydicom/data/test_files/"

static int count_lines(const char *s, const char *needle);

static void test_record(void)
{
	struct rec_buf b = { 0 };
	struct rec_head h = { .version = REC_VERSION, .id = 42, .size = 1234 }, g;
	const char *v;
	size_t l;
	CHECK(rec_begin(&b, &h) == 0, "begin");
	CHECK(rec_add(&b, 0x00100010, "PN", "Doe^John", 8) == 0, "add");
	CHECK(rec_add(&b, 0x00200013, "IS", "7", 1) == 0, "add");
	CHECK(rec_head_get(b.data, b.len, &g) == 0 && g.id == 42 && g.nattrs == 2,
	      "head roundtrip");
	CHECK(rec_attr(b.data, b.len, 0x00100010, &v, &l) && l == 8 &&
	      !memcmp(v, "Doe^John", 8), "attr PN");
	CHECK(rec_attr(b.data, b.len, 0x00200013, &v, &l) && l == 1 && *v == '7', "attr IS");
	CHECK(!rec_attr(b.data, b.len, 0x00080060, &v, &l), "absent attr");
	/* a truncated record never reads out of bounds */
	for (size_t cut = 0; cut < b.len; cut++)
		(void)rec_attr(b.data, cut, 0x00200013, &v, &l);
	CHECK(!rec_attr(b.data, b.len - 1, 0x00200013, &v, &l), "truncated record");
	CHECK(rec_head_get(b.data, 10, &g) == -EINVAL, "short head");
	/* rec_attrs: rec_attr's answers in one pass (first of a repeated tag) */
	CHECK(rec_add(&b, 0x00100010, "PN", "Roe^Jane", 8) == 0, "add again");
	const uint32_t tags[4] = { 0x00200013, 0x00080060, 0x00100010, 0x00200013 };
	const char *vs[4];
	size_t ls[4];
	CHECK(rec_attrs(b.data, b.len, tags, 4, vs, ls) == 3, "rec_attrs count");
	CHECK(vs[0] && ls[0] == 1 && *vs[0] == '7' && !vs[1] && ls[1] == 0 &&
	      vs[2] && ls[2] == 8 && !memcmp(vs[2], "Doe^John", 8) && vs[3] == vs[0],
	      "rec_attrs values");
	for (size_t cut = 0; cut < b.len; cut++)
		(void)rec_attrs(b.data, cut, tags, 4, vs, ls);
	CHECK(rec_attrs(b.data, b.len - 1, tags, 4, vs, ls) == 3 && vs[2] && ls[2] == 8,
	      "rec_attrs of a truncated record: what is whole before the cut");
	CHECK(rec_attrs(b.data, sizeof(struct rec_head) + 8 + 4, tags, 4, vs, ls) == 0 &&
	      !vs[0] && !vs[2], "rec_attrs of a record cut in its first value");
	rec_release(&b);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = NULL;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc(*len + 1);
	if (p && fread(p, 1, *len, f) != *len) {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

static void test_walk(void)
{
	struct dcmwalk_result r;
	size_t len;
	uint8_t *p = slurp(PYDICOM "CT_small.dcm", &len);
	CHECK(p != NULL, "read CT_small");
	if (!p)
		return;
	/* pydicom: Pixel Data value of CT_small.dcm starts at 6300 (element at 6288) */
	CHECK(dcmwalk_header(p, len, len, &r) == 0, "walk whole");
	CHECK(r.header_end == 6288 && r.pixel_offset == 6300 && r.pixel_length == 32768 &&
	      r.pixel_tag == 0x7FE00010 && r.has_meta && r.explicit_vr,
	      "pixel data at %llu/%llu len %llu", (unsigned long long)r.header_end,
	      (unsigned long long)r.pixel_offset, (unsigned long long)r.pixel_length);
	/* every prefix either needs more or gives the same answer */
	int bad = 0;
	for (size_t cut = 0; cut < 6400; cut += 37) {
		int rc = dcmwalk_header(p, cut, len, &r);
		if (rc == DFS_ENEEDMORE && r.header_end > cut && r.header_end <= len)
			continue;
		if (rc == 0 && r.header_end == 6288)
			continue;
		bad++;
	}
	CHECK(bad == 0, "prefixes: %d bad", bad);
	/* a file cut inside the header is truncated, not "need more" */
	CHECK(dcmwalk_header(p, 3000, 3000, &r) == DFS_ETRUNC, "truncated header");
	/* a huge length field is caught */
	uint8_t *q = malloc(len);
	memcpy(q, p, len);
	q[136 + 4] = 0xff; /* (0002,0000) UL value: irrelevant; break (0002,0001) VL */
	(void)dcmwalk_header(q, len, len, &r);
	free(q);
	free(p);

	const char *text = "Hello, this is not DICOM at all.\n";
	CHECK(dcmwalk_header((const uint8_t *)text, strlen(text), strlen(text), &r) ==
	      DFS_ENOTDICOM, "text");
	CHECK(dcmwalk_header((const uint8_t *)"", 0, 0, &r) == DFS_ENOTDICOM, "empty");

	p = slurp(PYDICOM "MR_small_bigendian.dcm", &len);
	if (p) {
		CHECK(dcmwalk_header(p, len, len, &r) == 0 && r.big_endian &&
		      r.header_end == 1504 && r.pixel_offset == 1516, "big endian: end %llu", (unsigned long long)r.header_end);
		free(p);
	}
	p = slurp(PYDICOM "JPEG2000.dcm", &len);
	if (p) {
		CHECK(dcmwalk_header(p, len, len, &r) == 0 && r.encapsulated &&
		      r.header_end == 3022 && r.pixel_offset == 3034, "encapsulated: end %llu", (unsigned long long)r.header_end);
		free(p);
	}
}

static int copy_file(const char *from, const char *to)
{
	size_t len;
	uint8_t *p = slurp(from, &len);
	if (!p)
		return -1;
	FILE *f = fopen(to, "wb");
	int rc = f && fwrite(p, 1, len, f) == len ? 0 : -1;
	if (f)
		fclose(f);
	free(p);
	return rc;
}

static int update(const char *archive, const char *idx, struct index_stats *st)
{
	struct index *ix;
	struct index_opts o = { .archive = archive, .path = idx, .scan_threads = 2 };
	char msg[512];
	int rc = index_open(&ix, &o, msg, sizeof(msg));
	if (rc) {
		printf("index_open: %s\n", msg);
		return rc;
	}
	rc = index_update(ix, st, msg, sizeof(msg));
	if (rc)
		printf("index_update: %s\n", msg);
	index_free(ix);
	return rc;
}

/* A temporary dir (from its XXXXXX template) with dir/archive/a.dcm
 * (CT_small); 0 or -1. */
static int make_archive(char *dir, char arch[600])
{
	char p[700];
	if (!mkdtemp(dir)) {
		CHECK(0, "mkdtemp");
		return -1;
	}
	snprintf(arch, 600, "%s/archive", dir);
	mkdir(arch, 0755);
	snprintf(p, sizeof(p), "%s/a.dcm", arch);
	CHECK(copy_file(PYDICOM "CT_small.dcm", p) == 0, "copy");
	return 0;
}

static void test_incremental(void)
{
	char dir[] = "/tmp/dicomfs-unit-XXXXXX", arch[600], idx[600], p[700];
	struct index_stats st;
	if (make_archive(dir, arch))
		return;
	snprintf(idx, sizeof(idx), "%s/index", dir);
	snprintf(p, sizeof(p), "%s/b", arch);
	CHECK(copy_file(PYDICOM "MR_small.dcm", p) == 0, "copy");
	snprintf(p, sizeof(p), "%s/junk.txt", arch);
	CHECK(copy_file("/etc/hostname", p) == 0 || copy_file("/etc/passwd", p) == 0, "copy");

	CHECK(update(arch, idx, &st) == 0, "first build");
	CHECK(st.files_seen == 3 && st.files_parsed == 3 && st.instances == 2 &&
	      st.skipped == 1 && st.tree_rebuilt, "first: seen %llu parsed %llu inst %llu skip %llu",
	      (unsigned long long)st.files_seen, (unsigned long long)st.files_parsed,
	      (unsigned long long)st.instances, (unsigned long long)st.skipped);

	CHECK(update(arch, idx, &st) == 0, "unchanged");
	CHECK(st.files_parsed == 0 && !st.tree_rebuilt && st.instances == 2,
	      "unchanged remount parsed %llu", (unsigned long long)st.files_parsed);

	/* change one (new mtime), remove one, add one */
	snprintf(p, sizeof(p), "%s/a.dcm", arch);
	struct timeval tv[2] = { { 1000000, 0 }, { 1000000, 0 } };
	utimes(p, tv);
	snprintf(p, sizeof(p), "%s/b", arch);
	unlink(p);
	snprintf(p, sizeof(p), "%s/sub", arch);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sub/c", arch);
	copy_file(PYDICOM "rtplan.dcm", p);
	CHECK(update(arch, idx, &st) == 0, "changed");
	CHECK(st.files_parsed == 2 && st.files_removed == 1 && st.tree_rebuilt &&
	      st.instances == 2, "changed: parsed %llu removed %llu inst %llu",
	      (unsigned long long)st.files_parsed, (unsigned long long)st.files_removed,
	      (unsigned long long)st.instances);

	/* a corrupt index is rebuilt, not trusted */
	snprintf(p, sizeof(p), "%s/data.mdb", idx);
	FILE *f = fopen(p, "r+b");
	if (f) {
		char junk[8192];
		memset(junk, 0x5a, sizeof(junk));
		fwrite(junk, 1, sizeof(junk), f);
		fclose(f);
	}
	CHECK(update(arch, idx, &st) == 0, "corrupt index rebuilt");
	CHECK(st.files_parsed == 3 && st.instances == 2, "rebuilt parsed %llu",
	      (unsigned long long)st.files_parsed);

	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0, "cleanup");
}


/* The feed (I10) read back: all of it into a malloc()ed string. */
static char *feed_all(struct index *ix, uint64_t from)
{
	struct index_feed f;
	if (index_feed_info(ix, &f) || f.end < from)
		return NULL;
	char *b = calloc(1, f.end - from + 1);
	size_t got = 0;
	if (b && index_feed_read(ix, from, b, f.end - from, &got) == 0 && got == f.end - from)
		return b;
	free(b);
	return NULL;
}

/* A remount's update writes feed lines for what changed while unmounted
 * (I10): none on the first build, then created / deleted lines with
 * consecutive numbers; since-offsets point at line starts. */
static void test_feed(void)
{
	char dir[] = "/tmp/dicomfs-unit-XXXXXX", arch[600], idx[600], p[700], msg[256];
	struct index *ix;
	struct index_feed f;
	if (make_archive(dir, arch))
		return;
	snprintf(idx, sizeof(idx), "%s/index", dir);
	CHECK(update(arch, idx, NULL) == 0, "first build");
	snprintf(p, sizeof(p), "%s/b.dcm", arch);
	CHECK(copy_file(PYDICOM "MR_small.dcm", p) == 0, "copy");
	CHECK(update(arch, idx, NULL) == 0, "added");
	snprintf(p, sizeof(p), "%s/a.dcm", arch);
	unlink(p);
	CHECK(update(arch, idx, NULL) == 0, "removed");

	struct index_opts o = { .archive = arch, .path = idx };
	CHECK(index_open(&ix, &o, msg, sizeof(msg)) == 0, "open: %s", msg);
	index_close_env(ix);
	CHECK(index_reopen(ix) == 0, "reopen");
	CHECK(index_feed_info(ix, &f) == 0 && f.first_seq == 1 && f.last_seq == 6 &&
	      f.first_off == 0, "feed: seq %llu..%llu", (unsigned long long)f.first_seq,
	      (unsigned long long)f.last_seq);
	char *all = feed_all(ix, 0);
	CHECK(all && count_lines(all, "\n") == 6, "6 lines");
	const char *want[] = {
		"{\"seq\":1,", "\"action\":\"created\",\"level\":\"study\"",
		"{\"seq\":3,", "\"action\":\"created\",\"level\":\"instance\"",
		"{\"seq\":4,", "\"action\":\"deleted\",\"level\":\"instance\"",
		"{\"seq\":6,", "\"action\":\"deleted\",\"level\":\"study\"",
	};
	for (size_t i = 0; all && i < sizeof(want) / sizeof(want[0]); i += 2) {
		const char *l = strstr(all, want[i]);
		const char *e = l ? strchr(l, '\n') : NULL;
		CHECK(l && e && memmem(l, (size_t)(e - l), want[i + 1], strlen(want[i + 1])),
		      "line %s has %s", want[i], want[i + 1]);
	}
	CHECK(all && strstr(all, "\"source\":\"b.dcm\"") && strstr(all, "\"source\":\"a.dcm\""),
	      "sources named");
	uint64_t off;
	CHECK(index_feed_offset(ix, 3, &off) == 0, "offset");
	char *tail = feed_all(ix, off);
	CHECK(tail && strncmp(tail, "{\"seq\":4,", 9) == 0 && count_lines(tail, "\n") == 3,
	      "since 3: %.20s", tail ? tail : "(null)");
	CHECK(index_feed_offset(ix, 6, &off) == 0 && off == f.end, "since the last: the end");
	free(all);
	free(tail);
	index_free(ix);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0, "cleanup");
}

/* ---- the tree updated in place (I11) equals a full build ---- */

struct dump {
	struct index *ix;
	struct strbuf *out;
	uint64_t dirs[4096];
	size_t nd;
};

static int dump_ent(void *ctx, uint64_t ino, const char *name, size_t nl, uint64_t next)
{
	struct dump *d = ctx;
	struct node_view nv;
	(void)next;
	strbuf_addf(d->out, "  %u %.*s", ino_kind(ino), (int)nl, name);
	if (ino_kind(ino) == KIND_DCM && index_node(d->ix, ino_id(ino), &nv) == 0)
		strbuf_addf(d->out, " nlink %u size %llu mtime %lld", nv.rec->nlink,
			    (unsigned long long)nv.rec->size, (long long)nv.rec->mtime_ns);
	strbuf_addch(d->out, '\n');
	if (ino_kind(ino) == KIND_DIR && ino_id(ino) < QUERY_ID_BASE && d->nd < 4096)
		d->dirs[d->nd++] = ino_id(ino);
	return 0;
}

/* The tree of ix as text, without ids: every directory from the root
 * (its node's attributes, then its listing in order), depth first. */
static void dump_tree(struct index *ix, struct strbuf *out)
{
	struct dump *d = calloc(1, sizeof(*d));
	if (!d)
		return;
	d->ix = ix;
	d->out = out;
	d->dirs[d->nd++] = ID_ROOT;
	while (d->nd) {
		uint64_t id = d->dirs[--d->nd];
		struct node_view nv;
		if (index_node(ix, id, &nv) == 0)
			strbuf_addf(out, "dir %.*s type %u nlink %u mode %o mtime %lld n %llu\n",
				    (int)nv.rec->name_len, nv.name, nv.rec->type, nv.rec->nlink, nv.rec->mode,
				    (long long)nv.rec->mtime_ns,
				    (unsigned long long)nv.rec->nchildren);
		size_t before = d->nd;
		index_readdir(ix, id, 0, dump_ent, d);
		/* depth first in listing order */
		for (size_t a = before, b = d->nd; b > a + 1; a++, b--) {
			uint64_t t = d->dirs[a];
			d->dirs[a] = d->dirs[b - 1];
			d->dirs[b - 1] = t;
		}
	}
	const struct index_stats *st = index_stats(ix);
	strbuf_addf(out, "instances %llu patients %llu studies %llu series %llu dups %llu skipped %llu errors %llu\n",
		    (unsigned long long)st->instances, (unsigned long long)st->patients,
		    (unsigned long long)st->studies, (unsigned long long)st->series,
		    (unsigned long long)st->duplicates, (unsigned long long)st->skipped,
		    (unsigned long long)st->errors);
	index_request_end(ix);
	free(d);
}

struct applied {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int batches;
};

static void live_applied_cb(void *ctx, const struct index_applied *a)
{
	struct applied *w = ctx;
	(void)a;
	pthread_mutex_lock(&w->lock);
	w->batches++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* queue path rel as a watch would and wait (30 s at most) for its batch */
static int live_apply(struct index *ix, struct applied *w, const char *rel)
{
	struct timespec ts;
	pthread_mutex_lock(&w->lock);
	int want = w->batches + 1, rc = 0;
	pthread_mutex_unlock(&w->lock);
	index_live_note(ix, rel, strlen(rel));
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	pthread_mutex_lock(&w->lock);
	while (w->batches < want && rc == 0)
		rc = pthread_cond_timedwait(&w->cond, &w->lock, &ts);
	pthread_mutex_unlock(&w->lock);
	return w->batches >= want ? 0 : -1;
}

/* a file of the archive, its mtime in the past (not deferred, I9) */
static int put_old(const char *arch, const char *rel, const char *from)
{
	char p[900];
	struct timeval tv[2] = { { 1500000000, 0 }, { 1500000000, 0 } };
	snprintf(p, sizeof(p), "%s/%s", arch, rel);
	if (copy_file(from, p))
		return -1;
	return utimes(p, tv);
}

static void test_tree_update(void)
{
	char dir[] = "/tmp/dicomfs-unit-XXXXXX", arch[600], idx[600], idx2[600], key[700],
		p[900], msg[256];
	struct index *ix;
	struct applied w = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	if (make_archive(dir, arch))
		return;
	snprintf(idx, sizeof(idx), "%s/index", dir);
	snprintf(idx2, sizeof(idx2), "%s/index2", dir);
	snprintf(key, sizeof(key), "%s/anon.key", idx);
	CHECK(put_old(arch, "b.dcm", PYDICOM "MR_small.dcm") == 0, "copy");
	CHECK(put_old(arch, "dup.dcm", PYDICOM "MR_small.dcm") == 0, "copy");

	struct index_opts o = { .archive = arch, .path = idx, .live = 1, .scan_threads = 2 };
	CHECK(index_open(&ix, &o, msg, sizeof(msg)) == 0, "open: %s", msg);
	CHECK(index_update(ix, NULL, msg, sizeof(msg)) == 0, "first build: %s", msg);
	index_close_env(ix);
	CHECK(index_reopen(ix) == 0, "reopen");
	setenv("DICOMFS_NO_WATCH", "1", 1);   /* the test queues the paths */
	struct index_live_ops ops = { .applied = live_applied_cb, .ctx = &w };
	CHECK(index_live_start(ix, 0, &ops, msg, sizeof(msg)) == 0, "live: %s", msg);
	unsetenv("DICOMFS_NO_WATCH");
	/* a new patient; a duplicate that wins (a smaller path); one that is
	 * then removed with the study it was alone in; a replacement */
	snprintf(p, sizeof(p), "%s/sub", arch);
	mkdir(p, 0755);
	CHECK(put_old(arch, "sub/c", PYDICOM "rtplan.dcm") == 0 && live_apply(ix, &w, "sub/c") == 0,
	      "arrival");
	CHECK(put_old(arch, "a0.dcm", PYDICOM "MR_small.dcm") == 0 &&
	      live_apply(ix, &w, "a0.dcm") == 0, "winning duplicate");
	snprintf(p, sizeof(p), "%s/a.dcm", arch);
	CHECK(unlink(p) == 0 && live_apply(ix, &w, "a.dcm") == 0, "removal");
	CHECK(put_old(arch, "b.dcm", PYDICOM "rtplan.dcm") == 0 && live_apply(ix, &w, "b.dcm") == 0,
	      "replacement");
	struct strbuf t1 = STRBUF_INIT, t2 = STRBUF_INIT;
	dump_tree(ix, &t1);
	index_live_stop(ix);
	index_free(ix);

	struct index_opts o2 = { .archive = arch, .path = idx2, .anon_key_file = key,
				 .scan_threads = 2 };
	CHECK(index_open(&ix, &o2, msg, sizeof(msg)) == 0, "open fresh: %s", msg);
	CHECK(index_update(ix, NULL, msg, sizeof(msg)) == 0, "fresh build: %s", msg);
	index_close_env(ix);
	CHECK(index_reopen(ix) == 0, "reopen fresh");
	dump_tree(ix, &t2);
	index_free(ix);
	CHECK(t1.len > 200 && strstr(strbuf_str(&t1), "dups 2"), "a tree with two duplicates: %s",
	      strbuf_str(&t1));
	CHECK(t1.len == t2.len && memcmp(strbuf_str(&t1), strbuf_str(&t2), t1.len) == 0,
	      "the tree updated in place equals a full build:\n%s\n---- full:\n%s",
	      strbuf_str(&t1), strbuf_str(&t2));
	strbuf_release(&t1);
	strbuf_release(&t2);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0, "cleanup");
}

static int count_lines(const char *s, const char *needle)
{
	int n = 0;
	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* The store (directory, lock, private index, reopen) and the reports
 * (status.json, errors.tsv, runtime problems) through the public API. */
static void test_store_reports(void)
{
	char dir[] = "/tmp/dicomfs-unit-XXXXXX", arch[600], cache[600], p[700];
	if (make_archive(dir, arch))
		return;
	snprintf(cache, sizeof(cache), "%s/cache", dir);
	snprintf(p, sizeof(p), "%s/junk.txt", arch);
	FILE *f = fopen(p, "w");
	if (f) {
		fputs("not DICOM\n", f);
		fclose(f);
	}
	char *old_xdg = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
	char *old_tmp = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
	setenv("XDG_CACHE_HOME", cache, 1);
	setenv("TMPDIR", dir, 1);

	/* the default directory: <XDG_CACHE_HOME>/dicomfs/<basename>-<16 hex> */
	struct index *ix = NULL, *ix2 = NULL;
	struct index_opts o = { .archive = arch, .scan_threads = 1 };
	char msg[512] = "";
	CHECK(index_open(&ix, &o, msg, sizeof(msg)) == 0, "open default: %s", msg);
	if (!ix)
		goto out;
	char want[700];
	snprintf(want, sizeof(want), "%s/dicomfs/archive-", cache);
	const char *path = index_path(ix);
	CHECK(strncmp(path, want, strlen(want)) == 0 && strlen(path) == strlen(want) + 16,
	      "default index path %s", path);
	struct stat st;
	CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700,
	      "default index directory made 0700");
	CHECK(index_update(ix, NULL, msg, sizeof(msg)) == 0, "update: %s", msg);

	/* the index is in use (shared lock) by a mount that serves: a second
	 * one goes private (I5; after 0.3 s, not the 10 s it would wait for a
	 * mount that is closing) */
	CHECK(index_serving(ix, 1) == 0, "serving");
	CHECK(index_open(&ix2, &o, msg, sizeof(msg)) == 0, "open second: %s", msg);
	index_serving(ix, 0);
	if (ix2) {
		char priv[700];
		snprintf(priv, sizeof(priv), "%s/dicomfs-index-", dir);
		CHECK(strncmp(index_path(ix2), priv, strlen(priv)) == 0 &&
		      index_stats(ix2)->private_index, "private index %s", index_path(ix2));
		snprintf(priv, sizeof(priv), "%s", index_path(ix2));
		index_free(ix2);
		CHECK(stat(priv, &st) != 0, "private index removed");
	}

	/* the mount: reopen read-only, twice (I8) */
	index_close_env(ix);
	CHECK(index_reopen(ix) == 0, "reopen");
	index_close_env(ix);
	CHECK(index_reopen(ix) == 0, "reopen again");

	index_report_error(ix, "a.dcm", "changed\tsince\nindexing");
	index_report_error(ix, "a.dcm", "another reason");   /* once per path (R3) */
	index_report_error(ix, "a.dc", "a prefix is another path");
	index_count_decode(ix);
	char *buf = NULL;
	size_t len = 0;
	CHECK(index_status_json(ix, &buf, &len) == 0 && buf && strlen(buf) == len, "status.json");
	if (buf) {
		char real[700], line[800];
		CHECK(realpath(arch, real) != NULL, "realpath");
		snprintf(line, sizeof(line), "\n  \"archive\":\"%s\",\n", real);
		CHECK(strstr(buf, line) != NULL, "status archive line");
		CHECK(strncmp(buf, "{\n  \"version\": \"", 16) == 0 &&
		      strcmp(buf + len - 3, "\n}\n") == 0, "status.json framing");
		CHECK(strstr(buf, "\n  \"files_seen\": 2,\n  \"files_parsed\": 2,\n") != NULL &&
		      strstr(buf, "\n  \"instances\": 1,\n") != NULL &&
		      strstr(buf, "\n  \"skipped\": 1,\n") != NULL, "status counts");
		CHECK(strstr(buf, "\n  \"runtime_errors\": 2,\n  \"tree_rebuilt\": true,\n"
			     "  \"built_at\": ") != NULL, "status runtime errors");
		CHECK(strstr(buf, "\n  \"pixel_decodes\": 1,\n") != NULL, "status decodes");
		CHECK(strstr(buf, "\n  \"tags_note\": null\n}\n") != NULL, "status tags note");
		free(buf);
	}
	buf = NULL;
	CHECK(index_errors_tsv(ix, &buf, &len) == 0 && buf && strlen(buf) == len, "errors.tsv");
	if (buf) {
		const char *head = "path\treason\njunk.txt\tskipped: not a DICOM file\n";
		CHECK(strncmp(buf, head, strlen(head)) == 0, "errors.tsv head: %s", buf);
		CHECK(count_lines(buf, "a.dcm\tchanged since indexing\n") == 1 &&
		      count_lines(buf, "another reason") == 0 &&
		      count_lines(buf, "a.dc\ta prefix is another path\n") == 1,
		      "errors.tsv runtime lines: %s", buf);
		free(buf);
	}
out:
	index_free(ix);
	if (old_xdg)
		setenv("XDG_CACHE_HOME", old_xdg, 1);
	else
		unsetenv("XDG_CACHE_HOME");
	if (old_tmp)
		setenv("TMPDIR", old_tmp, 1);
	else
		unsetenv("TMPDIR");
	free(old_xdg);
	free(old_tmp);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0, "cleanup");
}

/* store_dir (S1): made 0700 and owned; foreign or group/other-writable
 * directories refused with one line; no HOME never means /tmp/.cache. */
static void test_store_dir(void)
{
	char dir[] = "/tmp/unit_index_dir.XXXXXX", p[600], msg[512], *out = NULL;
	struct stat st;
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	uid_t other = geteuid() == 65534 ? 65533 : 65534;

	snprintf(p, sizeof(p), "%s/a/b/idx", dir);
	msg[0] = 0;
	CHECK(store_dir(p, NULL, NULL, &out, msg, sizeof(msg)) == 0, "given: %s", msg);
	CHECK(out && strcmp(out, p) == 0, "given path returned");
	CHECK(stat(p, &st) == 0 && (st.st_mode & 07777) == 0700 &&
	      st.st_uid == geteuid(), "made 0700 and owned: %o", st.st_mode);
	free(out);
	out = NULL;
	/* existing and fine: used as it is */
	CHECK(store_dir(p, NULL, NULL, &out, msg, sizeof(msg)) == 0, "reuse: %s", msg);
	free(out);
	out = NULL;

	/* group-writable: refused */
	chmod(p, 0770);
	msg[0] = 0;
	int rc = store_dir(p, NULL, NULL, &out, msg, sizeof(msg));
	CHECK(rc == -EACCES && !out, "group-writable refused: %d", rc);
	CHECK(strstr(msg, "writable by group or others") && !strchr(msg, '\n'),
	      "one clear line: %s", msg);
	chmod(p, 0703);
	CHECK(store_dir(p, NULL, NULL, &out, msg, sizeof(msg)) == -EACCES,
	      "other-writable refused");
	chmod(p, 0700);

	if (geteuid() == 0) {
		/* another owner: refused (also a symlink of another owner) */
		CHECK(chown(p, other, other) == 0, "chown");
		msg[0] = 0;
		rc = store_dir(p, NULL, NULL, &out, msg, sizeof(msg));
		CHECK(rc == -EACCES && !out, "foreign owner refused: %d", rc);
		CHECK(strstr(msg, "is owned by uid") && strstr(msg, "-o index="),
		      "owner line: %s", msg);
		CHECK(chown(p, 0, 0) == 0, "chown back");
		char ln[640];
		snprintf(ln, sizeof(ln), "%s/link", dir);
		CHECK(symlink(p, ln) == 0, "symlink");
		CHECK(lchown(ln, other, other) == 0, "lchown");
		CHECK(store_dir(ln, NULL, NULL, &out, msg, sizeof(msg)) == -EACCES &&
		      strstr(msg, "symlink owned by uid"), "foreign symlink refused: %s", msg);

		/* the default place: a pre-made <cache>/dicomfs of another owner */
		char cache[640], sub[700];
		snprintf(cache, sizeof(cache), "%s/cache", dir);
		snprintf(sub, sizeof(sub), "%s/dicomfs", cache);
		mkdir(cache, 0755);
		mkdir(sub, 0700);
		CHECK(chown(sub, other, other) == 0, "chown sub");
		setenv("XDG_CACHE_HOME", cache, 1);
		msg[0] = 0;
		rc = store_dir(NULL, "/srv/arch", NULL, &out, msg, sizeof(msg));
		CHECK(rc == -EACCES && !out && strstr(msg, sub), "foreign cache parent refused: %s", msg);
		CHECK(chown(sub, 0, 0) == 0 && chmod(sub, 0777) == 0, "chmod sub");
		rc = store_dir(NULL, "/srv/arch", NULL, &out, msg, sizeof(msg));
		CHECK(rc == -EACCES && strstr(msg, "writable"), "writable cache parent refused: %s", msg);
		chmod(sub, 0700);
		rc = store_dir(NULL, "/srv/arch", NULL, &out, msg, sizeof(msg));
		CHECK(rc == 0 && out && strncmp(out, sub, strlen(sub)) == 0,
		      "default under XDG_CACHE_HOME: %s", out ? out : msg);
		free(out);
		out = NULL;

		/* HOME and XDG_CACHE_HOME unset, not root: the passwd home of the
		 * real uid (nobody: /nonexistent), never /tmp/.cache */
		struct stat t0;
		int had_tmp_cache = stat("/tmp/.cache/dicomfs", &t0) == 0;
		int fd[2];
		CHECK(pipe(fd) == 0, "pipe");
		pid_t pid = fork();
		if (pid == 0) {
			close(fd[0]);
			unsetenv("XDG_CACHE_HOME");
			unsetenv("HOME");
			if (setgid(65534) || setuid(65534))
				_exit(2);
			char m[512] = "";
			char *o = NULL;
			int r = store_dir(NULL, "/srv/arch", NULL, &o, m, sizeof(m));
			if (write(fd[1], m, strlen(m)) < 0)
				_exit(3);
			_exit(r == 0 ? 0 : 1);
		}
		close(fd[1]);
		char m[512] = "";
		ssize_t n = read(fd[0], m, sizeof(m) - 1);
		m[n > 0 ? n : 0] = 0;
		close(fd[0]);
		int ws;
		waitpid(pid, &ws, 0);
		CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 1, "no HOME as nobody: refused (%d): %s", ws, m);
		CHECK(!strstr(m, "/tmp/") && (strstr(m, "-o index=") || strstr(m, "/nonexistent")),
		      "no HOME: a line about the passwd home or -o index=: %s", m);
		CHECK(had_tmp_cache || stat("/tmp/.cache/dicomfs", &t0) != 0,
		      "no /tmp/.cache/dicomfs made");
		unsetenv("XDG_CACHE_HOME");
	}
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0, "cleanup");
}

/* log.h L1 (escaping) and L2 (the limit) */
static void test_log_escape(void)
{
	char out[64];
	const char in[] = "a\x1b[31m\n\\\x7f\xc3\xa9\xc2\x85\xff\xe2\x82";
	dfs_log_escape(in, sizeof(in) - 1, out, sizeof(out));
	CHECK_STR(out, "a\\x1b[31m\\x0a\\\\\\x7f\xc3\xa9\\xc2\\x85\\xff\\xe2\\x82");
	dfs_log_escape("abcdefghijklmnop", 16, out, 10);
	CHECK(strlen(out) <= 9 && strstr(out, "...") && strncmp(out, "abc", 3) == 0,
	      "cut: %s", out);
	struct dfs_log_limit l;
	dfs_log_limit_init(&l, 3);
	int logged = 0;
	for (int i = 0; i < 10; i++)
		logged += dfs_log_limited(&l, "unit_index: limited line %d", i);
	CHECK(logged >= 3 && logged <= 6 && dfs_log_dropped(&l) == (uint64_t)(10 - logged),
	      "limit: %d logged, %llu dropped", logged,
	      (unsigned long long)dfs_log_dropped(&l));
	dfs_log_limit_destroy(&l);
}

/* one listing entry, then stop (index_readdir resumed from its next) */
struct one_ent {
	uint64_t ino, next;
	char name[300];
	int got;
};

static int one_cb(void *ctx, uint64_t ino, const char *name, size_t nl, uint64_t next)
{
	struct one_ent *e = ctx;
	e->ino = ino;
	e->next = next;
	snprintf(e->name, sizeof(e->name), "%.*s", (int)nl, name);
	e->got = 1;
	return 1;
}

struct all_ents {
	struct strbuf text;
	uint64_t ino[1024];
	char name[1024][256];
	size_t n;
};

static int all_cb(void *ctx, uint64_t ino, const char *name, size_t nl, uint64_t next)
{
	struct all_ents *a = ctx;
	strbuf_addf(&a->text, "%llu %.*s %llu\n", (unsigned long long)ino, (int)nl, name,
		    (unsigned long long)next);
	if (a->n < 1024 && nl < 256) {
		a->ino[a->n] = ino;
		snprintf(a->name[a->n++], 256, "%.*s", (int)nl, name);
	}
	return 0;
}

/*
 * index.h I3: an instance's files are one group record. Every directory
 * of patients/ read whole equals the same directory read one entry at a
 * time, each read resumed from the last entry's position (the kernel's
 * readdir with a small buffer); every name looks up to its inode; a file
 * an instance does not have (or a base name alone) looks up to ENOENT.
 */
static void test_group_listing(void)
{
	char dir[] = "/tmp/dicomfs-unit-XXXXXX", arch[600], idx[600], msg[256];
	struct index *ix;
	if (make_archive(dir, arch))
		return;
	CHECK(put_old(arch, "b.dcm", PYDICOM "MR_small.dcm") == 0, "copy");
	CHECK(put_old(arch, "c.dcm", PYDICOM "rtplan.dcm") == 0, "copy");
	snprintf(idx, sizeof(idx), "%s/index", dir);
	struct index_opts o = { .archive = arch, .path = idx, .scan_threads = 2,
				 .kinds = ~0u };
	CHECK(index_open(&ix, &o, msg, sizeof(msg)) == 0, "open: %s", msg);
	CHECK(index_update(ix, NULL, msg, sizeof(msg)) == 0, "build: %s", msg);
	index_close_env(ix);
	CHECK(index_reopen(ix) == 0, "reopen");
	uint64_t stack[256];
	size_t ns = 0, ndirs = 0, nfiles = 0, groups = 0;
	int json = 0, nojson = 0;
	stack[ns++] = ID_PATIENTS;
	struct all_ents *a = calloc(1, sizeof(*a));
	while (ns && a) {
		uint64_t id = stack[--ns];
		a->text = (struct strbuf)STRBUF_INIT;
		a->n = 0;
		CHECK(index_readdir(ix, id, 0, all_cb, a) == 0, "readdir %llu", (unsigned long long)id);
		struct strbuf one = STRBUF_INIT;
		struct one_ent e = { 0 };
		uint64_t pos = 0;
		for (int i = 0; i < 10000; i++) {
			e.got = 0;
			CHECK(index_readdir(ix, id, pos, one_cb, &e) == 0, "readdir at %llu",
			      (unsigned long long)pos);
			if (!e.got)
				break;
			strbuf_addf(&one, "%llu %s %llu\n", (unsigned long long)e.ino, e.name,
				    (unsigned long long)e.next);
			CHECK(e.next > pos, "positions grow");
			pos = e.next;
		}
		/* any offset a user may seek to: a record's place 7 is past its
		 * files (no group has 8), the listing goes on with the next */
		for (uint64_t r = 0; r < 3; r++) {
			e.got = 0;
			CHECK(index_readdir(ix, id, r << 3 | 7, one_cb, &e) == 0, "readdir at %llu",
			      (unsigned long long)(r << 3 | 7));
			CHECK(!e.got || e.next > (r + 1) << 3, "after offset %llu: %s at %llu",
			      (unsigned long long)(r << 3 | 7), e.name, (unsigned long long)e.next);
		}
		CHECK(one.len == a->text.len && !memcmp(strbuf_str(&one), strbuf_str(&a->text), one.len),
		      "directory %llu read one entry at a time:\n%s\n---- whole:\n%s",
		      (unsigned long long)id, strbuf_str(&one), strbuf_str(&a->text));
		strbuf_release(&one);
		for (size_t i = 0; i < a->n; i++) {
			uint64_t ino = 0;
			CHECK(index_lookup(ix, id, a->name[i], &ino) == 0 && ino == a->ino[i],
			      "lookup of %s", a->name[i]);
			unsigned k = ino_kind(ino);
			CHECK(k != KIND_GROUP, "no group inode is shown");
			if (k == KIND_DIR && ns < 256) {
				stack[ns++] = ino_id(ino);
				ndirs++;
			}
			if (k != KIND_DCM)
				continue;
			groups++;
			/* its base name alone, and the files it may lack */
			char base[256], nm[280];
			snprintf(base, sizeof(base), "%.*s", (int)strlen(a->name[i]) - 4, a->name[i]);
			CHECK(index_lookup(ix, id, base, &ino) == -ENOENT, "a base name alone: %s", base);
			snprintf(nm, sizeof(nm), "%s.json", base);
			if (index_lookup(ix, id, nm, &ino) == 0)
				json++;
			else
				nojson++;
			snprintf(nm, sizeof(nm), "%s.txt", base);
			CHECK(index_lookup(ix, id, nm, &ino) == -ENOENT, "no such file: %s", nm);
		}
		nfiles += a->n;
		strbuf_release(&a->text);
		index_request_end(ix);
	}
	free(a);
	CHECK(ndirs >= 3 && groups >= 2 && json >= 2 && nojson == 0 && nfiles > groups * 2,
	      "a tree was read: %zu directories, %zu instances (%d with .json), %zu entries",
	      ndirs, groups, json, nfiles);
	index_free(ix);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	CHECK(system(cmd) == 0, "cleanup");
}

/* store.h S4: the page cache read ahead of the writer changes no byte of
 * the index, and what LMDB did not use of its range is given back: data.mdb
 * ends at its last page in use, with or without a commit into the range */
static void test_store_warm(void)
{
	char dir[] = "/tmp/dicomfs-unit-XXXXXX", arch[600], idx[700], p[800];
	if (make_archive(dir, arch))
		return;
	snprintf(idx, sizeof(idx), "%s/idx", dir);
	snprintf(p, sizeof(p), "%s/data.mdb", idx);
	struct index *ix = NULL;
	struct index_opts o = { .archive = arch, .path = idx, .scan_threads = 1 };
	char msg[512] = "";
	CHECK(index_open(&ix, &o, msg, sizeof(msg)) == 0, "open: %s", msg);
	if (!ix)
		return;
	CHECK(index_update(ix, NULL, msg, sizeof(msg)) == 0, "update: %s", msg);
	setenv("DICOMFS_STORE_WARM", "all", 1);   /* the whole range read at the end */
	MDB_envinfo info;
	MDB_stat ms;
	struct stat st;
	size_t ahead = 1, back = 1, big = (size_t)1 << 20;
	for (int write = 0; write < 2; write++) {
		store_warm_start(ix, (size_t)8 << 20);
		CHECK(ix->warm != NULL, "warm %d started", write);
		store_warm_go(ix->warm);
		unsigned char *v = malloc(big);
		MDB_txn *txn = NULL;
		if (write && v) {
			/* a commit whose pages land in the range, read or not yet */
			for (size_t i = 0; i < big; i++)
				v[i] = (unsigned char)(i * 7 + 3);
			MDB_val k = { 9, "warm-test" }, d = { big, v };
			CHECK(mdb_txn_begin(ix->env, NULL, 0, &txn) == 0 &&
			      mdb_put(txn, ix->meta, &k, &d, 0) == 0 && store_commit(ix, txn) == 0,
			      "a commit into the range");
		}
		store_warm_end(ix, &ahead, &back);
		/* pread stops at the end of the file: the range was there */
		CHECK(ix->warm == NULL && ahead == (size_t)8 << 20,
		      "warm %d: data.mdb extended and all of its range read (%zu)", write, ahead);
		CHECK(mdb_env_info(ix->env, &info) == 0 && mdb_env_stat(ix->env, &ms) == 0 &&
		      stat(p, &st) == 0 &&
		      st.st_size == (off_t)(info.me_last_pgno + 1) * ms.ms_psize,
		      "warm %d: data.mdb is its %zu pages (%lld bytes)", write,
		      (size_t)info.me_last_pgno + 1, (long long)st.st_size);
		CHECK(back > 0 && (write ? back < ((size_t)8 << 20) - big : back == (size_t)8 << 20),
		      "warm %d: %zu bytes given back", write, back);
		if (write && v) {
			MDB_val k = { 9, "warm-test" }, d;
			CHECK(mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn) == 0 &&
			      mdb_get(txn, ix->meta, &k, &d) == 0 && d.mv_size == big &&
			      memcmp(d.mv_data, v, big) == 0,
			      "the value committed into the range reads back whole");
			mdb_txn_abort(txn);
		}
		free(v);
	}
	unsetenv("DICOMFS_STORE_WARM");
	/* no warm: nothing to end */
	store_warm_end(ix, &ahead, &back);
	CHECK(ahead == 0 && back == 0, "no warm: nothing read, nothing given back");
	/* the index still opens and is unchanged: an update parses nothing */
	struct index_stats stt;
	CHECK(index_update(ix, &stt, msg, sizeof(msg)) == 0 && stt.files_parsed == 0,
	      "update after the warms: %s", msg);
	index_free(ix);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd)) {
	}
}

int main(void)
{
	test_record();
	test_walk();
	test_incremental();
	test_feed();
	test_tree_update();
	test_group_listing();
	test_store_reports();
	test_store_warm();
	test_store_dir();
	test_log_escape();
	return unit_done();
}
