/*
 * unit_views.c - the view registry and the root it builds (index/view.h):
 * a tiny index of two instances (real LMDB, real GDCM, no FUSE), read back
 * through the index API: the root's entries, ids and nlink, each view's top
 * directory, the level-file names, and a registry with a view of the test's
 * own (the tree-builder API, name order, computed nlink, bad registries).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "unit.h"
#include "index.h"
#include "view.h"

#define PYDICOM "/usr/lib/python3/dist-packages/pydicom/data/test_files/"
#define ALL_KINDS 0xfffffffeu

static char tmpdir[] = "/tmp/dicomfs-unit-views-XXXXXX";
static char archive[600];

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	size_t n;
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	int rc = in && out ? 0 : -1;
	while (!rc && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		rc = fwrite(buf, 1, n, out) == n ? 0 : -1;
	if (in)
		fclose(in);
	if (out && fclose(out))
		rc = -1;
	return rc;
}

/* index the archive into a fresh index dir with these views and kinds, and
 * open it for reading; NULL on failure (*rc says why: expected when
 * expect_rc is nonzero, else a failed check) */
static struct index *build(const char *name, const struct view *const *views,
			   uint32_t kinds, int expect_rc, int *rc)
{
	char idx[700], msg[512];
	struct index *ix;
	struct index_stats st;
	snprintf(idx, sizeof(idx), "%s/%s", tmpdir, name);
	struct index_opts o = { .archive = archive, .path = idx, .scan_threads = 1,
				.kinds = kinds, .views = views };
	if ((*rc = index_open(&ix, &o, msg, sizeof(msg)))) {
		CHECK(0, "index_open: %s", msg);
		return NULL;
	}
	if ((*rc = index_update(ix, &st, msg, sizeof(msg))) == 0) {
		index_close_env(ix);
		*rc = index_reopen(ix);
	}
	if (*rc) {
		index_free(ix);
		ix = NULL;
	}
	CHECK(!ix == !!expect_rc, "build %s: %d", name, *rc);
	return ix;
}

struct ent {
	uint64_t ino;
	char name[256];
};
struct listing {
	struct ent e[64];
	size_t n;
};

static int list_cb(void *ctx, uint64_t ino, const char *name, size_t nl, uint64_t next)
{
	struct listing *l = ctx;
	(void)next;
	if (l->n == 64 || nl > 255)
		return 1;
	l->e[l->n].ino = ino;
	memcpy(l->e[l->n].name, name, nl);
	l->e[l->n++].name[nl] = 0;
	return 0;
}

static void list(struct index *ix, uint64_t id, struct listing *l)
{
	l->n = 0;
	CHECK(index_readdir(ix, id, 0, list_cb, l) == 0, "readdir %llu", (unsigned long long)id);
}

/* node id: its type, parent, nlink and nchildren */
static void check_node(struct index *ix, uint64_t id, unsigned type, uint64_t parent,
		       uint32_t nlink, uint64_t nchildren, const char *name)
{
	struct node_view nv;
	int rc = index_node(ix, id, &nv);
	CHECK(rc == 0, "node %s: %d", name, rc);
	if (rc)
		return;
	CHECK(nv.rec->type == type && nv.rec->parent == parent && nv.rec->nlink == nlink &&
	      nv.rec->nchildren == nchildren && nv.rec->name_len == strlen(name) &&
	      memcmp(nv.name, name, nv.rec->name_len) == 0,
	      "node %s: type %u parent %llu nlink %u nchildren %llu", name, nv.rec->type,
	      (unsigned long long)nv.rec->parent, nv.rec->nlink,
	      (unsigned long long)nv.rec->nchildren);
	if (type == NODE_TOP || type == NODE_ROOT)
		CHECK(nv.rec->mode == 0555, "%s: mode %o", name, nv.rec->mode);
}

static void expect(const struct listing *l, size_t i, uint64_t ino, const char *name)
{
	CHECK(i < l->n && l->e[i].ino == ino && strcmp(l->e[i].name, name) == 0,
	      "entry %zu: want %s ino %llu, got %s ino %llu", i, name, (unsigned long long)ino,
	      i < l->n ? l->e[i].name : "(none)",
	      i < l->n ? (unsigned long long)l->e[i].ino : 0ULL);
}

struct want {
	uint64_t ino;
	const char *name;
};

/* directory id lists exactly want[0..n) in this order */
static void check_dir(struct index *ix, uint64_t id, const struct want *want, size_t n)
{
	struct listing l;
	list(ix, id, &l);
	CHECK(l.n == n, "dir %llu lists %zu, want %zu", (unsigned long long)id, l.n, n);
	for (size_t i = 0; i < n; i++)
		expect(&l, i, want[i].ino, want[i].name);
}

/* (V2) the root: nlink 2 + n, the n views in name order */
static void check_root(struct index *ix, const struct want *want, size_t n)
{
	check_node(ix, ID_ROOT, NODE_ROOT, ID_ROOT, 2 + (uint32_t)n, n, "");
	check_dir(ix, ID_ROOT, want, n);
}

static void test_registry(void)
{
	size_t n = view_count(view_registry);
	CHECK(n == 6, "6 views, got %zu", n);
	for (size_t i = 0; i < n; i++) {
		const struct view *v = view_registry[i];
		CHECK(v->id > ID_ROOT && v->id < ID_FIRST && v->build && v->name[0],
		      "view %s: id %llu", v->name, (unsigned long long)v->id);
		for (size_t j = 0; j < i; j++)
			CHECK(view_registry[j]->id != v->id &&
			      strcmp(view_registry[j]->name, v->name) != 0,
			      "views %s and %s collide", view_registry[j]->name, v->name);
	}
	/* (V3): the views that allocate directory ids keep their build order */
	CHECK(n >= 2 && view_registry[0]->id == ID_PATIENTS && view_registry[1]->id == ID_UIDS,
	      "patients/ then uids/ first");
	/* the instance files: .dcm first */
	CHECK_STR(index_group_files[0].ext, "dcm");
	CHECK(index_group_files[0].kind == KIND_DCM, "dcm kind");
}

static void test_default_views(void)
{
	int rc;
	struct index *ix = build("default", NULL, ALL_KINDS, 0, &rc);
	struct listing l, p;
	uint64_t ino;
	if (!ix)
		return;
	check_root(ix, (const struct want[]){
		{ ino_make(ID_DOTDIR, KIND_DIR), ".dicomfs" },
		{ ino_make(ID_ANON, KIND_DIR), "anon" },
		{ ino_make(ID_PATIENTS, KIND_DIR), "patients" },
		{ ino_make(ID_QUERY, KIND_DIR), "query" },
		{ ino_make(ID_SOURCES, KIND_DIR), "sources" },
		{ ino_make(ID_UIDS, KIND_DIR), "uids" } }, 6);
	CHECK(index_lookup(ix, ID_ROOT, "query", &ino) == 0 &&
	      ino == ino_make(ID_QUERY, KIND_DIR), "lookup query");
	CHECK(index_lookup(ix, ID_ROOT, "nothing", &ino) == -ENOENT, "lookup nothing");

	/* the tops: two patients (CT_small, MR_small), two studies */
	check_node(ix, ID_PATIENTS, NODE_TOP, ID_ROOT, 4, 2, "patients");
	check_node(ix, ID_UIDS, NODE_TOP, ID_ROOT, 4, 2, "uids");
	check_node(ix, ID_ANON, NODE_TOP, ID_ROOT, 4, 2, "anon");
	check_node(ix, ID_QUERY, NODE_TOP, ID_ROOT, 5, 3, "query");
	check_node(ix, ID_DOTDIR, NODE_TOP, ID_ROOT, 3, 4, ".dicomfs");
	check_dir(ix, ID_QUERY, (const struct want[]){
		{ ino_make(QUERY_ID_BASE + 2, KIND_QDIR), "instances" },
		{ ino_make(QUERY_ID_BASE + 1, KIND_QDIR), "series" },
		{ ino_make(QUERY_ID_BASE + 0, KIND_QDIR), "studies" } }, 3);
	check_dir(ix, ID_DOTDIR, (const struct want[]){
		{ ino_make(ID_DOTDIR, KIND_ERRORS), "errors.tsv" },
		{ ino_make(ID_DOTDIR, KIND_STATUS), "status.json" },
		{ ino_make(ID_CHANGES, KIND_CHANGES_DIR), "changes" },
		{ ino_make(ID_DOTDIR, KIND_CHANGES), "changes.jsonl" } }, 4);

	/* (V4) level files first, named by the views' tables */
	list(ix, ID_PATIENTS, &p);
	CHECK(p.n == 2, "patients lists %zu", p.n);
	if (p.n) {
		uint64_t pat = ino_id(p.e[0].ino);
		list(ix, pat, &l);
		CHECK(l.n == 3, "patient lists %zu", l.n);
		expect(&l, 0, ino_make(pat, view_patient_files[0].kind), view_patient_files[0].name);
		expect(&l, 1, ino_make(pat, view_patient_files[1].kind), view_patient_files[1].name);
		CHECK(l.n == 3 && ino_kind(l.e[2].ino) == KIND_DIR, "then the study");
		uint64_t study = l.n == 3 ? ino_id(l.e[2].ino) : 0;
		list(ix, study, &l);
		CHECK(l.n == 3 && ino_kind(l.e[2].ino) == KIND_DIR &&
		      strcmp(l.e[0].name, "study.json") == 0 &&
		      strcmp(l.e[1].name, "study.fhir.json") == 0, "study lists %zu", l.n);
		uint64_t series = l.n == 3 ? ino_id(l.e[2].ino) : 0;
		list(ix, series, &l);
		/* one instance, no volume: series.json, then the instance's files */
		CHECK(l.n >= 2 && strcmp(l.e[0].name, "series.json") == 0, "series.json first");
		const char *dot = l.n >= 2 ? strrchr(l.e[1].name, '.') : NULL;
		CHECK(dot && strcmp(dot + 1, index_group_files[0].ext) == 0 &&
		      ino_kind(l.e[1].ino) == KIND_DCM, "then <instance>.dcm");
	}
	/* uids/<study>/: study.json only (view_uids.c) */
	list(ix, ID_UIDS, &p);
	CHECK(p.n == 2, "uids lists %zu", p.n);
	if (p.n) {
		list(ix, ino_id(p.e[0].ino), &l);
		CHECK(l.n == 2 && strcmp(l.e[0].name, view_uid_study_files[0].name) == 0 &&
		      ino_kind(l.e[1].ino) == KIND_DIR, "uids study lists %zu", l.n);
	}
	index_free(ix);
}

/* ---- a view of the test's own, through the tree-builder API ---- */

#define ID_TEST 9

static int test_build(struct tree_builder *tb, const struct view *v, struct view_top *top)
{
	uint32_t pos = 0;
	int rc;
	/* a directory (the patients/ top under another name), a file, and a
	 * kind the mount below does not serve */
	if ((rc = tree_add(tb, v->id, &pos, ID_PATIENTS, KIND_DIR, "all-patients")) ||
	    (rc = tree_add(tb, v->id, &pos, v->id, KIND_STATUS, "status.json")) ||
	    (rc = tree_add(tb, v->id, &pos, v->id, KIND_ERRORS, "errors.tsv")))
		return rc;
	top->nentries = pos;
	top->nsubdirs = 1;
	return 0;
}

static const struct view test_view = { "aaa-test", ID_TEST, test_build };

static void test_own_view(void)
{
	extern const struct view view_patients, view_uids, view_query, view_dotdir;
	/* first in the registry, but it allocates no ids (V3) */
	const struct view *const views[] = { &test_view, &view_patients, &view_uids,
					     &view_query, &view_dotdir, NULL };
	int rc;
	struct index *ix = build("own", views, ALL_KINDS & ~(1u << KIND_ERRORS), 0, &rc);
	if (!ix)
		return;
	check_root(ix, (const struct want[]){
		{ ino_make(ID_DOTDIR, KIND_DIR), ".dicomfs" },
		{ ino_make(ID_TEST, KIND_DIR), "aaa-test" },
		{ ino_make(ID_PATIENTS, KIND_DIR), "patients" },
		{ ino_make(ID_QUERY, KIND_DIR), "query" },
		{ ino_make(ID_UIDS, KIND_DIR), "uids" } }, 5);
	check_node(ix, ID_TEST, NODE_TOP, ID_ROOT, 3, 2, "aaa-test");
	check_dir(ix, ID_TEST, (const struct want[]){
		{ ino_make(ID_PATIENTS, KIND_DIR), "all-patients" },
		{ ino_make(ID_TEST, KIND_STATUS), "status.json" } }, 2);
	/* errors.tsv is not served: not listed, not counted (the change feed
	 * is: the directory changes/ and changes.jsonl) */
	check_node(ix, ID_DOTDIR, NODE_TOP, ID_ROOT, 3, 3, ".dicomfs");
	index_free(ix);
}

static void test_bad_registries(void)
{
	static const struct view dup_id = { "other", ID_PATIENTS, test_build };
	static const struct view dup_name = { "patients", ID_TEST, test_build };
	static const struct view root_id = { "root", ID_ROOT, test_build };
	static const struct view big_id = { "big", ID_FIRST, test_build };
	static const struct view slash = { "a/b", ID_TEST, test_build };
	extern const struct view view_patients;
	const struct view *bad[] = { &dup_id, &dup_name, &root_id, &big_id, &slash };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct view *const views[] = { &view_patients, bad[i], NULL };
		char name[32];
		int rc;
		snprintf(name, sizeof(name), "bad%zu", i);
		struct index *ix = build(name, views, ALL_KINDS, -EINVAL, &rc);
		CHECK(rc == -EINVAL, "registry with %s refused: %d", bad[i]->name, rc);
		if (ix)
			index_free(ix);
	}
}

int main(void)
{
	/* two instances of two patients, each its own study and series */
	static const char *const sources[][2] = {
		{ "ct.dcm", PYDICOM "CT_small.dcm" }, { "mr.dcm", PYDICOM "MR_small.dcm" } };
	CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
	snprintf(archive, sizeof(archive), "%s/archive", tmpdir);
	CHECK(mkdir(archive, 0755) == 0, "mkdir archive");
	for (size_t i = 0; i < 2; i++) {
		char p[700];
		snprintf(p, sizeof(p), "%s/%s", archive, sources[i][0]);
		CHECK(copy_file(sources[i][1], p) == 0, "copy %s", sources[i][1]);
	}

	test_registry();
	test_default_views();
	test_own_view();
	test_bad_registries();

	char cmd[700];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	CHECK(system(cmd) == 0, "cleanup");
	return unit_done();
}
