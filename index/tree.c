/*
 * tree.c - build the browsable tree (nodes/names/dirents) from the records.
 *
 * Design notes
 * - Input: every REC_OK record of "files". Output: the three tree DBs,
 *   dropped and rewritten in the caller's write transaction (I4).
 * - Determinism: the result depends only on the set of records, never on
 *   scan order: instances are sorted by (patient key, study UID, series UID,
 *   SOP UID, source path); of the copies of a SOP Instance UID the wholest
 *   duplicate is served and every conflict shown (dedup_sop); display
 *   values of a directory come from its first instance in that order (the
 *   patient name: the smallest non-empty one); colliding sibling names all
 *   get a suffix derived from their own UID.
 * - Directory attributes: mtime = newest file below; mode = 0555 limited to
 *   the read bits present on some source below (r implies x); owner and
 *   group = those of the sources when they all agree, else root.
 * - The views are data: each directory level is a struct level (its key in
 *   "keys", its level files, how its children are grouped and named), and
 *   one fill() / put_listing() writes every level of patients/ and uids/.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>

#include "store.h"
#include "update.h"
#include "error.h"
#include "naming.h"
#include "pixels.h"
#include "record.h"
#include "tags.h"
#include "view.h"
#include "volreport.h"
#include "deid.h"

struct str {
	const char *s;
	size_t l;
};

struct inst {
	void *rec;            /* copy of the record; strings point into it */
	size_t rec_len;
	struct rec_head h;
	struct str rel, pkey, pname, pid, study, sdate, sdesc, acc, series, snum,
		modality, sedesc, sop, inum;
	char *pkey_buf;
	char *sop_buf;        /* a conflict's SOP identity (dedup_sop), or NULL */
	/* anon/: the de-identified values of the names (anon_prepare) */
	struct anon_names *an;
	struct str a_pid, a_pname, a_study, a_sdate, a_series, a_sop;
	int a_days;           /* the patient's date shift (deid.h D4) */
};

/* the de-identified values an anon/ name is made of (view_anon.c) */
struct anon_names {
	char pid[DEID_PID_LEN + 1], pname[DEID_PID_LEN + 1], sdate[20];
	char study[DEID_UID_LEN + 1], series[DEID_UID_LEN + 1], sop[DEID_UID_LEN + 1];
};

struct agg {
	int64_t mtime;
	uint32_t rbits;
	uint32_t uid, gid;
	int uid_mixed, gid_mixed, any;
};

struct sib {
	char name[NAME_BUF];
	struct str uid;
	size_t a, b;          /* range in the instance array */
	uint64_t id;
	uint64_t src[2];      /* the instances the name comes from (node_rec) */
};

/*
 * Staged puts: the tree DBs are empty when the build starts, so all their
 * records are collected, sorted by key and appended (MDB_APPEND), which is
 * several times faster than random inserts.
 */
struct kv {
	unsigned char *k, *v;
	size_t kl, vl;
};

struct stage {
	struct kv *v;
	size_t n, cap;
	/* the bytes of the records: an arena of 1 MiB chunks (no malloc each) */
	unsigned char **chunks;
	size_t nchunks, used;
};

#define STAGE_CHUNK ((size_t)1 << 20)

/* v (n elements of size bytes used, *cap allocated) with room for one more:
 * doubled when full (first: the first capacity); NULL when out of memory
 * (v is still valid then). */
static void *grow(void *v, size_t n, size_t *cap, size_t size, size_t first)
{
	if (n < *cap)
		return v;
	size_t c = *cap ? *cap * 2 : first;
	void *p = realloc(v, c * size);
	if (p)
		*cap = c;
	return p;
}

static unsigned char *stage_alloc(struct stage *st, size_t n)
{
	if (n > STAGE_CHUNK)
		return NULL;
	if (!st->nchunks || st->used + n > STAGE_CHUNK) {
		unsigned char **nc = realloc(st->chunks, (st->nchunks + 1) * sizeof(*nc));
		if (!nc)
			return NULL;
		st->chunks = nc;
		if (!(nc[st->nchunks] = malloc(STAGE_CHUNK)))
			return NULL;
		st->nchunks++;
		st->used = 0;
	}
	unsigned char *p = st->chunks[st->nchunks - 1] + st->used;
	st->used += (n + 7) & ~(size_t)7;
	return p;
}

static int stage_put(struct stage *st, const void *k, size_t kl, const void *v1,
		     size_t l1, const void *v2, size_t l2, const void *v3, size_t l3)
{
	struct kv *nv = grow(st->v, st->n, &st->cap, sizeof(*nv), 4096);
	if (!nv)
		return -ENOMEM;
	st->v = nv;
	struct kv *e = &st->v[st->n];
	e->kl = kl;
	e->vl = l1 + l2 + l3;
	e->k = stage_alloc(st, kl + e->vl);
	if (!e->k)
		return -ENOMEM;
	e->v = e->k + kl;
	memcpy(e->k, k, kl);
	if (l1)
		memcpy(e->v, v1, l1);
	if (l2)
		memcpy(e->v + l1, v2, l2);
	if (l3)
		memcpy(e->v + l1 + l2, v3, l3);
	st->n++;
	return 0;
}

static int cmp_kv(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	size_t l = x->kl < y->kl ? x->kl : y->kl;
	int c = memcmp(x->k, y->k, l);
	return c ? c : (x->kl < y->kl ? -1 : x->kl > y->kl);
}

static int stage_flush(struct stage *st, MDB_txn *txn, MDB_dbi dbi)
{
	int rc = 0;
	qsort(st->v, st->n, sizeof(*st->v), cmp_kv);
	for (size_t i = 0; i < st->n && !rc; i++) {
		MDB_val k = { st->v[i].kl, st->v[i].k }, d = { st->v[i].vl, st->v[i].v };
		rc = dfs_from_mdb(mdb_put(txn, dbi, &k, &d, MDB_APPEND));
	}
	return rc;
}

static void stage_release(struct stage *st)
{
	for (size_t i = 0; i < st->nchunks; i++)
		free(st->chunks[i]);
	free(st->chunks);
	st->chunks = NULL;
	st->nchunks = st->used = 0;
	free(st->v);
	st->v = NULL;
	st->n = st->cap = 0;
}

struct build {
	struct stage nodes, names, dirents;
	struct index *ix;
	MDB_txn *txn;
	uint64_t *next_id;
	struct inst *v;
	size_t n;
	uint64_t patients, studies, series;
	struct strbuf novol;   /* volreport.h: series that are not volumes */
	uint8_t flags;         /* NODE_F_* of the nodes being written */
	struct strbuf anon_excluded; /* TSV: instances left out of anon/ */
};

static int str_cmp(struct str a, struct str b)
{
	size_t l = a.l < b.l ? a.l : b.l;
	int c = l ? memcmp(a.s, b.s, l) : 0;
	return c ? c : (a.l < b.l ? -1 : a.l > b.l);
}

static int cmp_sop(const void *a, const void *b)
{
	const struct inst *x = a, *y = b;
	int c = str_cmp(x->sop, y->sop);
	return c ? c : str_cmp(x->rel, y->rel);
}

static int cmp_tree(const void *a, const void *b)
{
	const struct inst *x = a, *y = b;
	int c;
	if ((c = str_cmp(x->pkey, y->pkey)) || (c = str_cmp(x->study, y->study)) ||
	    (c = str_cmp(x->series, y->series)) || (c = str_cmp(x->sop, y->sop)))
		return c;
	return str_cmp(x->rel, y->rel);
}

static int cmp_sib(const void *a, const void *b)
{
	const struct sib *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : str_cmp(x->uid, y->uid);
}

static void agg_file(struct agg *g, const struct rec_head *h)
{
	if (!g->any) {
		g->uid = h->uid;
		g->gid = h->gid;
		g->mtime = h->mtime_ns;
		g->any = 1;
	}
	g->uid_mixed |= g->uid != h->uid;
	g->gid_mixed |= g->gid != h->gid;
	if (h->mtime_ns > g->mtime)
		g->mtime = h->mtime_ns;
	g->rbits |= h->mode & 0444;
}

static void agg_merge(struct agg *g, const struct agg *c)
{
	if (!c->any)
		return;
	if (!g->any) {
		*g = *c;
		return;
	}
	g->uid_mixed |= c->uid_mixed || g->uid != c->uid;
	g->gid_mixed |= c->gid_mixed || g->gid != c->gid;
	if (c->mtime > g->mtime)
		g->mtime = c->mtime;
	g->rbits |= c->rbits;
}

/*
 * Instances in an order: the patients/ view walks b->v as sorted (ord
 * NULL), uids/ an array of indexes into it sorted by UIDs. A field of an
 * instance is named by its offsetof(struct inst, <struct str field>).
 */
static struct inst *inst_at(const struct build *b, const size_t *ord, size_t i)
{
	return &b->v[ord ? ord[i] : i];
}

static struct str inst_str(const struct inst *in, size_t off)
{
	struct str s;
	memcpy(&s, (const char *)in + off, sizeof(s));
	return s;
}

/*
 * Split positions [a, e) of ord into runs of equal field off: one sibling
 * a run, zeroed but for its run [a, b) and its uid (the field). Returns how
 * many (*out malloc()ed, NULL when none), or -ENOMEM.
 */
static int sib_runs(const struct build *b, const size_t *ord, size_t a, size_t e,
		    size_t off, struct sib **out)
{
	struct sib *s = NULL;
	size_t n = 0, cap = 0;
	*out = NULL;
	for (size_t i = a; i < e;) {
		struct str key = inst_str(inst_at(b, ord, i), off);
		size_t j = i + 1;
		while (j < e && str_cmp(key, inst_str(inst_at(b, ord, j), off)) == 0)
			j++;
		struct sib *ns = grow(s, n, &cap, sizeof(*s), 16);
		if (!ns) {
			free(s);
			return -ENOMEM;
		}
		s = ns;
		memset(&s[n], 0, sizeof(s[n]));
		s[n].a = i;
		s[n].b = j;
		s[n].uid = key;
		n++;
		i = j;
	}
	*out = s;
	return (int)n;
}

/* ---- writing ---- */

static int put_node(struct build *b, uint64_t id, uint8_t type, uint64_t parent,
		    const char *name, const struct agg *g, uint32_t nlink,
		    uint64_t nchildren, const struct inst *in, const uint64_t *src)
{
	struct node_rec r = { 0 };
	size_t nl = strlen(name), pl = in ? in->rel.l : 0;
	unsigned char kb[8];
	int rc;

	r.type = type;
	r.flags = b->flags;
	r.parent = parent;
	r.name_len = (uint32_t)nl;
	r.path_len = (uint32_t)pl;
	r.nlink = nlink;
	r.nchildren = nchildren;
	if (src) {
		r.name_src[0] = src[0];
		r.name_src[1] = src[1];
	}
	if (in) {
		r.mode = 0444 & in->h.mode;
		r.uid = in->h.uid;
		r.gid = in->h.gid;
		r.mtime_ns = in->h.mtime_ns;
		r.size = in->h.size;
	} else {
		uint32_t rb = g->rbits;
		r.mode = type == NODE_ROOT || type == NODE_TOP ? 0555 : (rb | rb >> 2);
		r.uid = g->uid_mixed ? 0 : g->uid;
		r.gid = g->gid_mixed ? 0 : g->gid;
		r.mtime_ns = g->mtime;
	}
	be64_put(kb, id);
	rc = stage_put(&b->nodes, kb, 8, &r, sizeof(r), name, nl, pl ? in->rel.s : NULL, pl);
	return rc;
}

static int put_dirent(struct build *b, uint64_t parent, uint32_t seq,
		      uint64_t ino, const char *name)
{
	size_t nl = strlen(name);
	unsigned char kb[12], nk[8 + NAME_BUF];
	be64_put(kb, parent);
	be32_put(kb + 8, seq);
	int rc = stage_put(&b->dirents, kb, 12, &ino, 8, name, nl, NULL, 0);
	if (rc)
		return rc;
	be64_put(nk, parent);
	memcpy(nk + 8, name, nl);
	return stage_put(&b->names, nk, 8 + nl, &ino, 8, NULL, 0, NULL, 0);
}

/*
 * A directory level of a view, as data. A directory's id comes from "keys"
 * (I2): the level letter, then the parts (fields of its first instance)
 * separated by NUL bytes. Its listing is its level files, then either its
 * instances (instances(): a series) or its child directories, one a run of
 * equal field `runs`, named by name() and of level child.
 */
struct level {
	char letter;          /* P S E: patients/; u v: uids/; 0: a top directory */
	uint8_t type;         /* enum node_type */
	int nparts;
	size_t parts[3];      /* offsetof(struct inst, <struct str>) */
	const struct level_file *files;
	int (*instances)(struct build *b, const size_t *ord, uint64_t id, size_t a,
			 size_t e, struct agg *out);
	size_t runs;
	int (*name)(const struct build *b, const size_t *ord, struct sib *s, size_t n);
	const struct level *child;
	size_t counter;       /* offsetof(struct build, count of children), or 0 */
};

static int fill(struct build *b, const struct level *lv, const size_t *ord,
		uint64_t id, size_t a, size_t e, struct agg *out);

/* Persistent id of the directory of level lv whose first instance is in. */
static int key_id(struct build *b, const struct level *lv, const struct inst *in,
		  uint64_t *id)
{
	size_t len = 1;
	for (int k = 0; k < lv->nparts; k++)
		len += (k ? 1 : 0) + inst_str(in, lv->parts[k]).l;
	char *kb = malloc(len), *p = kb;
	int rc;
	if (!kb)
		return -ENOMEM;
	*p++ = lv->letter;
	for (int k = 0; k < lv->nparts; k++) {
		struct str part = inst_str(in, lv->parts[k]);
		if (k)
			*p++ = 0;
		memcpy(p, part.s, part.l);
		p += part.l;
	}
	MDB_val k = { len, kb }, d;
	rc = mdb_get(b->txn, b->ix->keys, &k, &d);
	if (rc == 0 && d.mv_size == 8) {
		memcpy(id, d.mv_data, 8);
		free(kb);
		return 0;
	}
	*id = (*b->next_id)++;
	d.mv_size = 8;
	d.mv_data = id;
	rc = dfs_from_mdb(mdb_put(b->txn, b->ix->keys, &k, &d, 0));
	free(kb);
	return rc;
}

static int reserved(const char *name, const struct level_file *lf)
{
	for (; lf && lf->name; lf++)
		if (strcmp(name, lf->name) == 0)
			return 1;
	return 0;
}

/*
 * Suffix every colliding name (and any name equal to one of the directory's
 * level files), then sort into the final listing order.
 */
static void sib_finish(struct sib *s, size_t n, const struct level_file *lf)
{
	if (!n)   /* s may be NULL (an empty anon/) */
		return;
	qsort(s, n, sizeof(*s), cmp_sib);
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && strcmp(s[i].name, s[j].name) == 0)
			j++;
		if (j - i > 1 || reserved(s[i].name, lf))
			for (size_t k = i; k < j; k++)
				name_add_suffix(s[k].name, s[k].uid.s, s[k].uid.l);
		i = j;
	}
	qsort(s, n, sizeof(*s), cmp_sib);
}

/* Write the level files of directory id (lf NULL: none) but the kinds in
 * skip; returns how many (the next seq). */
static int put_level_files(struct build *b, uint64_t id,
			   const struct level_file *lf, uint32_t skip)
{
	int n = 0;
	for (; lf && lf->name; lf++) {
		if (!(b->ix->opts.kinds & (1u << lf->kind)) || (skip & (1u << lf->kind)))
			continue;
		int rc = put_dirent(b, id, (uint32_t)n, ino_make(id, lf->kind), lf->name);
		if (rc)
			return rc;
		n++;
	}
	return n;
}

/*
 * The listing of directory dir_id: its level files lf, then its child
 * directories s[0, n) of level lv (named, not yet made unique): for each,
 * its id, its contents, its node and its dirent. Returns 0 or an error.
 */
static int put_listing(struct build *b, uint64_t dir_id, const struct level_file *lf,
		       const struct level *lv, const size_t *ord, struct sib *s,
		       size_t n, struct agg *out)
{
	sib_finish(s, n, lf);
	int rc = put_level_files(b, dir_id, lf, 0);
	uint32_t seq = rc < 0 ? 0 : (uint32_t)rc;
	rc = rc < 0 ? rc : 0;
	for (size_t i = 0; i < n && !rc; i++) {
		struct agg g = { 0 };
		uint64_t id;
		rc = key_id(b, lv, inst_at(b, ord, s[i].a), &id);
		int nsub = rc ? rc : fill(b, lv, ord, id, s[i].a, s[i].b, &g);
		rc = nsub < 0 ? nsub : 0;
		uint64_t nchildren = lv->type == NODE_SERIES ? s[i].b - s[i].a : (uint64_t)nsub;
		if (!rc)
			rc = put_node(b, id, lv->type, dir_id, s[i].name, &g,
				      2 + (uint32_t)nsub, nchildren, NULL, s[i].src);
		if (!rc)
			rc = put_dirent(b, dir_id, seq++, ino_make(id, KIND_DIR), s[i].name);
		agg_merge(out, &g);
	}
	return rc;
}

/* .npy/.png are listed when the indexed attributes describe servable
 * pixels (pixels.h: px_info_from_record); decoding may still fail (EIO) */
static int has_pixels(const struct inst *in)
{
	struct px_info pi;
	return px_info_from_record(in->rec, in->rec_len, &in->h, &pi, NULL) == 0;
}

/*
 * The files of the instances s[0, n) (s[i].a: index in b->v) in directory
 * dir_id, listed from seq on: one inode per kind, all with the instance's
 * id (I1). with_nodes: also the instance nodes (the patients/ view's;
 * uids/ lists the same inodes: nlink 2).
 */
/* anon/'s instances have ids of their own (view_anon.c): key 'a' + SOP UID */
static const struct level lv_anon_inst = {
	.letter = 'a', .nparts = 1, .parts = { offsetof(struct inst, sop) } };

static int put_instances(struct build *b, uint64_t dir_id, const struct sib *s,
			 size_t n, uint32_t seq, int with_nodes, struct agg *out)
{
	int rc = 0, anon = b->flags & NODE_F_ANON;
	for (size_t i = 0; i < n && !rc; i++) {
		struct inst *in = &b->v[s[i].a], moved;
		uint64_t id = in->h.id;
		if (anon) {
			/* a file's mtime is a date too: shifted like the patient's
			 * dates (view_anon.c) */
			moved = *in;
			moved.h.mtime_ns += (int64_t)in->a_days * 86400 * 1000000000;
			in = &moved;
			rc = key_id(b, &lv_anon_inst, in, &id);
		}
		agg_file(out, &in->h);
		/* patients/ and uids/ share the inodes (nlink 2), anon/ does not */
		if (with_nodes && !rc)
			rc = put_node(b, id, NODE_INSTANCE, dir_id, s[i].name, NULL, anon ? 1 : 2,
				      0, in, NULL);
		for (const struct level_file *f = view_instance_files; f->name && !rc; f++) {
			char fname[NAME_BUF + 8];
			unsigned k = f->kind;
			if (!(b->ix->opts.kinds & (1u << k)) ||
			    (k == KIND_JSON && !in->h.json_size) ||
			    ((k == KIND_NPY || k == KIND_PNG) && !has_pixels(in)))
				continue;
			snprintf(fname, sizeof(fname), "%s.%s", s[i].name, f->name);
			rc = put_dirent(b, dir_id, seq++, ino_make(id, k), fname);
		}
	}
	return rc;
}

static int width_of(const struct str *nums, size_t n, int min)
{
	int w = min;
	for (size_t i = 0; i < n; i++) {
		long long v;
		if (name_parse_int(nums[i].s, nums[i].l, &v) && v >= 0 &&
		    name_digits(v) > w)
			w = name_digits(v);
	}
	return w;
}

/*
 * The contents of directory id of level lv: the instances [a, e) of ord.
 * Returns its number of subdirectories, or an error.
 */
static int fill(struct build *b, const struct level *lv, const size_t *ord,
		uint64_t id, size_t a, size_t e, struct agg *out)
{
	if (lv->instances)
		return lv->instances(b, ord, id, a, e, out);
	struct sib *s;
	int n = sib_runs(b, ord, a, e, lv->runs, &s);
	if (n < 0)
		return n;
	int rc = lv->name(b, ord, s, (size_t)n);
	if (!rc)
		rc = put_listing(b, id, lv->files, lv->child, ord, s, (size_t)n, out);
	if (lv->counter)
		*(uint64_t *)(void *)((char *)b + lv->counter) += (uint64_t)n;
	free(s);
	return rc ? rc : n;
}

/* ---- patients/<patient>/<study>/<series>/<instance>.* ---- */

static int do_series(struct build *b, const size_t *ord, uint64_t series_id,
		     size_t a, size_t e, struct agg *out)
{
	size_t n = e - a;
	struct sib *s = calloc(n, sizeof(*s));
	struct str *nums = calloc(n, sizeof(*nums));
	struct vol_in *vin = calloc(n, sizeof(*vin));
	/* anon/ (view_anon.c): names from the pseudonyms; why a series is no
	 * volume is said once, for patients/ */
	int anon = b->flags & NODE_F_ANON;
	struct strbuf scratch = STRBUF_INIT;
	int rc = 0;
	if (!s || !nums || !vin) {
		rc = -ENOMEM;
		goto free_s;
	}
	for (size_t i = 0; i < n; i++)
		nums[i] = inst_at(b, ord, a + i)->inum;
	int w = width_of(nums, n, 1);
	for (size_t i = 0; i < n; i++) {
		struct inst *in = inst_at(b, ord, a + i);
		struct str sop = anon ? in->a_sop : in->sop;
		name_instance(in->inum.s, in->inum.l, w, sop.s, sop.l, s[i].name);
		s[i].uid = sop;
		s[i].a = (size_t)(in - b->v);
		vin[i] = (struct vol_in){ in->rec, in->rec_len, in->h, in->h.id };
	}
	sib_finish(s, n, view_series_files);
	/* volume.nii/.npy only for series that form a volume (volreport.h) */
	int isvol = volreport_series(b->ix, anon ? &scratch : &b->novol, series_id, vin, n);
	if (isvol < 0) {
		rc = isvol;
		goto free_s;
	}
	rc = put_level_files(b, series_id, view_series_files,
			     isvol ? 0 : (1u << KIND_VOLUME_NII | 1u << KIND_VOLUME_NPY));
	if (rc >= 0)
		rc = put_instances(b, series_id, s, n, (uint32_t)rc, 1, out);
free_s:
	free(s);
	free(nums);
	free(vin);
	strbuf_release(&scratch);
	return rc;
}

/* the series names of patients/ (anon 0) or anon/ (1: de-identified
 * UIDs, no SeriesDescription: the profile removes it, X) */
static int series_names_of(const struct build *b, const size_t *ord, struct sib *s,
			   size_t n, int anon)
{
	struct str *nums = calloc(n ? n : 1, sizeof(*nums));
	if (!nums)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		nums[i] = inst_at(b, ord, s[i].a)->snum;
	int w = width_of(nums, n, 3);
	for (size_t i = 0; i < n; i++) {
		const struct inst *in = inst_at(b, ord, s[i].a);
		struct str desc = anon ? (struct str){ "", 0 } : in->sedesc;
		struct str uid = anon ? in->a_series : in->series;
		name_series(in->snum.s, in->snum.l, w, in->modality.s, in->modality.l,
			    desc.s, desc.l, uid.s, uid.l, s[i].name);
		if (anon)
			s[i].uid = in->a_series;
		s[i].src[0] = in->h.id;
	}
	free(nums);
	return 0;
}

static int series_names(const struct build *b, const size_t *ord, struct sib *s, size_t n)
{
	return series_names_of(b, ord, s, n, 0);
}

static int study_names(const struct build *b, const size_t *ord, struct sib *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct inst *in = inst_at(b, ord, s[i].a);
		name_study(in->sdate.s, in->sdate.l, in->sdesc.s, in->sdesc.l, in->acc.s,
			   in->acc.l, in->study.s, in->study.l, s[i].name);
		s[i].src[0] = in->h.id;
	}
	return 0;
}

static int patient_names(const struct build *b, const size_t *ord, struct sib *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* the smallest non-empty PatientName of the patient */
		const struct inst *first = inst_at(b, ord, s[i].a);
		struct str name = first->pname;
		s[i].src[0] = s[i].src[1] = first->h.id;
		for (size_t j = s[i].a + 1; j < s[i].b; j++) {
			const struct inst *in = inst_at(b, ord, j);
			if (in->pname.l && (!name.l || str_cmp(in->pname, name) < 0)) {
				name = in->pname;
				s[i].src[1] = in->h.id;
			}
		}
		if (first->pid.l)
			s[i].uid = first->pid;
		name_patient(name.s, name.l, first->pid.s, first->pid.l, s[i].name);
	}
	return 0;
}

#define PARTS(...) { __VA_ARGS__ }
#define F(field) offsetof(struct inst, field)
static const struct level lv_series = {
	.letter = 'E', .type = NODE_SERIES, .nparts = 3,
	.parts = PARTS(F(pkey), F(study), F(series)), .instances = do_series };
static const struct level lv_study = {
	.letter = 'S', .type = NODE_STUDY, .nparts = 2, .parts = PARTS(F(pkey), F(study)),
	.files = view_study_files, .runs = F(series), .name = series_names,
	.child = &lv_series, .counter = offsetof(struct build, series) };
static const struct level lv_patient = {
	.letter = 'P', .type = NODE_PATIENT, .nparts = 1, .parts = PARTS(F(pkey)),
	.files = view_patient_files, .runs = F(study), .name = study_names,
	.child = &lv_study, .counter = offsetof(struct build, studies) };
static const struct level lv_patients = {
	.type = NODE_TOP, .runs = F(pkey), .name = patient_names,
	.child = &lv_patient, .counter = offsetof(struct build, patients) };

/* patients/ (ID_PATIENTS); returns the number of patients */
static int do_patients(struct build *b, struct agg *out)
{
	return fill(b, &lv_patients, NULL, ID_PATIENTS, 0, b->n, out);
}

/* ---- uids/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.* ----
 * (view_uids.c: what the view is and the names of its level files) */

static int cmp_uidview(const void *a, const void *b, void *ctx)
{
	const struct inst *v = ctx, *x = &v[*(const size_t *)a], *y = &v[*(const size_t *)b];
	int c;
	if ((c = str_cmp(x->study, y->study)) || (c = str_cmp(x->series, y->series)))
		return c;
	return str_cmp(x->sop, y->sop);
}

/* each sibling named after its uid */
static int uid_names(const struct build *b, const size_t *ord, struct sib *s, size_t n)
{
	(void)b;
	(void)ord;
	for (size_t i = 0; i < n; i++) {
		size_t l = name_sanitize(s[i].uid.s, s[i].uid.l, s[i].name, NAME_BASE_MAX + 1);
		s[i].name[l] = 0;
	}
	return 0;
}

static int uids_series(struct build *b, const size_t *ord, uint64_t ser_id,
		       size_t a, size_t e, struct agg *out)
{
	size_t n = e - a;
	struct sib *s = calloc(n ? n : 1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct inst *in = inst_at(b, ord, a + i);
		s[i].uid = in->sop;
		s[i].a = (size_t)(in - b->v);
	}
	uid_names(b, ord, s, n);
	sib_finish(s, n, view_uid_series_files);
	int rc = put_level_files(b, ser_id, view_uid_series_files, 0);
	if (rc >= 0)
		rc = put_instances(b, ser_id, s, n, (uint32_t)rc, 0, out);
	free(s);
	return rc;
}

static const struct level lv_uid_series = {
	.letter = 'v', .type = NODE_SERIES, .nparts = 2, .parts = PARTS(F(study), F(series)),
	.instances = uids_series };
static const struct level lv_uid_study = {
	.letter = 'u', .type = NODE_STUDY, .nparts = 1, .parts = PARTS(F(study)),
	.files = view_uid_study_files, .runs = F(series), .name = uid_names,
	.child = &lv_uid_series };
static const struct level lv_uids = {
	.type = NODE_TOP, .runs = F(study), .name = uid_names, .child = &lv_uid_study };
#undef F
#undef PARTS

/* uids/ (ID_UIDS); returns the number of studies */
static int do_uids(struct build *b, struct agg *out)
{
	size_t *ord = malloc((b->n ? b->n : 1) * sizeof(*ord));
	if (!ord)
		return -ENOMEM;
	for (size_t i = 0; i < b->n; i++)
		ord[i] = i;
	qsort_r(ord, b->n, sizeof(*ord), cmp_uidview, b->v);
	int rc = fill(b, &lv_uids, ord, ID_UIDS, 0, b->n, out);
	free(ord);
	return rc;
}


/* ---- anon/<patient>/<study>/<series>/<instance>.* (view_anon.c) ----
 * The patients/ shape and grouping (runs of the original keys, so ids are
 * stable whatever the key), names from de-identified values only. */

/* Why instance in stays out of anon/, or NULL (view_anon.c) */
static const char *anon_excluded(const struct build *b, const struct inst *in)
{
	const char *v;
	size_t l;
	if (in->h.flags & RECF_DEFLATED)
		return "anon: deflated data set, not de-identified";
	if (in->h.flags & (RECF_PIXEL_TRUNC | RECF_PARTIAL))
		return "anon: the source is cut short or read only partly";
	if (b->ix->opts.anon_keep_burned_in)
		return NULL;
	if (rec_attr(in->rec, in->rec_len, 0x00280301, &v, &l))
		return l == 3 && memcmp(v, "YES", 3) == 0
			       ? "anon: BurnedInAnnotation YES (-o anon_keep_burned_in shows it)"
			       : NULL;
	if ((in->modality.l == 2 && memcmp(in->modality.s, "US", 2) == 0) ||
	    (in->modality.l == 2 && memcmp(in->modality.s, "SC", 2) == 0) ||
	    (rec_attr(in->rec, in->rec_len, TAG_SOP_CLASS_UID, &v, &l) && l >= 25 &&
	     memcmp(v, "1.2.840.10008.5.1.4.1.1.7", 25) == 0))
		return "anon: no BurnedInAnnotation and a modality that usually burns in "
		       "(US, secondary capture) (-o anon_keep_burned_in shows it)";
	return NULL;
}

static struct str cstr(const char *s)
{
	struct str x = { s, strlen(s) };
	return x;
}

/* the de-identified name parts of instance in (deid.h D3, D4) */
static int anon_prepare(const struct build *b, struct inst *in, struct strbuf *tmp)
{
	const struct deid_key *k = &b->ix->anon_key;
	struct deid_patient p;
	struct anon_names *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	in->an = a;
	deid_patient(k, in->pkey.s, in->pkey.l, &p);
	in->a_days = p.days;
	memcpy(a->pid, p.pid, sizeof(a->pid));
	memcpy(a->pname, p.pname, sizeof(a->pname));
	if (deid_text(k, &p, TAG_STUDY_DATE, "DA", in->sdate.s, in->sdate.l, tmp) == 1 &&
	    tmp->len < sizeof(a->sdate))
		memcpy(a->sdate, strbuf_str(tmp), tmp->len + 1);
	deid_uid(k, in->study.s, in->study.l, a->study);
	deid_uid(k, in->series.s, in->series.l, a->series);
	deid_uid(k, in->sop.s, in->sop.l, a->sop);
	in->a_pid = cstr(a->pid);
	in->a_pname = cstr(a->pname);
	in->a_sdate = cstr(a->sdate);
	in->a_study = cstr(a->study);
	in->a_series = cstr(a->series);
	in->a_sop = cstr(a->sop);
	return 0;
}

#define F(field) offsetof(struct inst, field)
static int anon_series_names(const struct build *b, const size_t *ord, struct sib *s, size_t n)
{
	return series_names_of(b, ord, s, n, 1);
}

static int anon_study_names(const struct build *b, const size_t *ord, struct sib *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct inst *in = inst_at(b, ord, s[i].a);
		/* StudyDescription X, AccessionNumber Z: not in the name */
		name_study(in->a_sdate.s, in->a_sdate.l, "", 0, "", 0, in->a_study.s,
			   in->a_study.l, s[i].name);
		s[i].uid = in->a_study;
		s[i].src[0] = in->h.id;
	}
	return 0;
}

static int anon_patient_names(const struct build *b, const size_t *ord, struct sib *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct inst *in = inst_at(b, ord, s[i].a);
		name_patient(in->a_pname.s, in->a_pname.l, in->a_pid.s, in->a_pid.l, s[i].name);
		s[i].uid = in->a_pid;
		s[i].src[0] = s[i].src[1] = in->h.id;
	}
	return 0;
}

static const struct level lv_anon_series = {
	.letter = 'C', .type = NODE_SERIES, .nparts = 3,
	.parts = { F(pkey), F(study), F(series) }, .instances = do_series };
static const struct level lv_anon_study = {
	.letter = 'B', .type = NODE_STUDY, .nparts = 2, .parts = { F(pkey), F(study) },
	.files = view_study_files, .runs = F(series), .name = anon_series_names,
	.child = &lv_anon_series };
static const struct level lv_anon_patient = {
	.letter = 'A', .type = NODE_PATIENT, .nparts = 1, .parts = { F(pkey) },
	.files = view_patient_files, .runs = F(study), .name = anon_study_names,
	.child = &lv_anon_study };
static const struct level lv_anon = {
	.type = NODE_TOP, .runs = F(pkey), .name = anon_patient_names,
	.child = &lv_anon_patient };
#undef F

/* anon/ (ID_ANON); returns the number of patients */
static int do_anon(struct build *b, struct agg *out)
{
	struct strbuf tmp = STRBUF_INIT;
	size_t *ord = malloc((b->n ? b->n : 1) * sizeof(*ord)), n = 0;
	int rc = ord ? 0 : -ENOMEM;
	for (size_t i = 0; i < b->n && !rc; i++) {
		const char *why = anon_excluded(b, &b->v[i]);
		if (why) {
			char path[4096];
			snprintf(path, sizeof(path), "%.*s", (int)b->v[i].rel.l, b->v[i].rel.s);
			rc = strbuf_add_tsv2(&b->anon_excluded, path, why);
			continue;
		}
		rc = anon_prepare(b, &b->v[i], &tmp);
		ord[n++] = i;
	}
	strbuf_release(&tmp);
	if (!rc) {
		b->flags = NODE_F_ANON;
		rc = fill(b, &lv_anon, ord, ID_ANON, 0, n, out);
		b->flags = 0;
	}
	free(ord);
	return rc;
}

static int load(struct build *b, uint64_t *skipped, uint64_t *errors)
{
	MDB_cursor *c;
	MDB_val k, d;
	size_t cap = 0;
	int rc = mdb_cursor_open(b->txn, b->ix->files, &c);
	if (rc)
		return dfs_from_mdb(rc);
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		struct rec_head h;
		if (rec_head_get(d.mv_data, d.mv_size, &h))
			continue;
		if (h.status == REC_SKIPPED) {
			(*skipped)++;
			continue;
		}
		if (h.status != REC_OK) {
			(*errors)++;
			continue;
		}
		struct inst *nv = grow(b->v, b->n, &cap, sizeof(*nv), 1024);
		if (!nv) {
			rc = ENOMEM;
			break;
		}
		b->v = nv;
		struct inst *in = &b->v[b->n];
		memset(in, 0, sizeof(*in));
		in->rec = malloc(d.mv_size + k.mv_size);
		if (!in->rec) {
			rc = ENOMEM;
			break;
		}
		memcpy(in->rec, d.mv_data, d.mv_size);
		memcpy((char *)in->rec + d.mv_size, k.mv_data, k.mv_size);
		in->rec_len = d.mv_size;
		in->h = h;
		in->rel.s = (char *)in->rec + d.mv_size;
		in->rel.l = k.mv_size;
		/* one pass over the attributes */
		{
			size_t pos = 0, l;
			uint32_t tag;
			char vr[2];
			const char *v;
			struct str none = { "", 0 };
			in->pname = in->pid = in->study = in->sdate = in->sdesc = in->acc = none;
			in->series = in->snum = in->modality = in->sedesc = in->sop = in->inum = none;
			while (rec_next(in->rec, in->rec_len, &pos, &tag, vr, &v, &l)) {
				struct str x = { v, l };
				switch (tag) {
				case TAG_PATIENT_NAME: in->pname = x; break;
				case TAG_PATIENT_ID: in->pid = x; break;
				case TAG_STUDY_INSTANCE_UID: in->study = x; break;
				case TAG_STUDY_DATE: in->sdate = x; break;
				case TAG_STUDY_DESCRIPTION: in->sdesc = x; break;
				case TAG_ACCESSION_NUMBER: in->acc = x; break;
				case TAG_SERIES_INSTANCE_UID: in->series = x; break;
				case TAG_SERIES_NUMBER: in->snum = x; break;
				case TAG_MODALITY: in->modality = x; break;
				case TAG_SERIES_DESCRIPTION: in->sedesc = x; break;
				case TAG_SOP_INSTANCE_UID: in->sop = x; break;
				case TAG_INSTANCE_NUMBER: in->inum = x; break;
				}
			}
		}
		if (in->pid.l) {
			in->pkey = in->pid;
		} else {
			/* no PatientID: group by name, in a separate key space */
			in->pkey_buf = malloc(in->pname.l + 2);
			if (!in->pkey_buf) {
				free(in->rec);
				rc = ENOMEM;
				break;
			}
			in->pkey_buf[0] = 0;
			in->pkey_buf[1] = 'N';
			memcpy(in->pkey_buf + 2, in->pname.s, in->pname.l);
			in->pkey.s = in->pkey_buf;
			in->pkey.l = in->pname.l + 2;
		}
		b->n++;
	}
	mdb_cursor_close(c);
	if (rc == ENOMEM)
		return -ENOMEM;
	return rc == MDB_NOTFOUND ? 0 : dfs_from_mdb(rc);
}

/* ---- copies of one SOP Instance UID (issue 16) ---- */

/*
 * The item stream of encapsulated Pixel Data at [off, size) of the source
 * of in (PS3.5 A.4; encaps.h E1): items of defined length that stay in the
 * file, up to a sequence delimiter, the offset table and one fragment at
 * least. Only the 8-byte item headers are read (one small read per item,
 * at most ITEMS_MAX). 1 when it holds, else 0.
 */
#define ITEMS_MAX 1000000
static int items_whole(const struct build *b, const struct inst *in)
{
	const struct source *src = &b->ix->src;
	struct source_file f;
	char why[160];
	int be = !!(in->h.flags & RECF_BIG_ENDIAN), ok = 0;
	if (source_open(src, in->rel.s, in->rel.l, NULL, &f, why, sizeof(why)))
		return 0;
	uint64_t pos = in->h.pixel_offset, size = in->h.size;
	for (uint32_t n = 0; n < ITEMS_MAX && size - pos >= 8; n++) {
		unsigned char h[8];
		if (source_read(src, &f, h, 8, pos))
			break;
		uint32_t tag = be ? (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | h[2] << 8 | h[3]
				  : (uint32_t)h[1] << 24 | (uint32_t)h[0] << 16 | h[3] << 8 | h[2];
		uint32_t len = be ? (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | h[6] << 8 | h[7]
				  : (uint32_t)h[7] << 24 | (uint32_t)h[6] << 16 | h[5] << 8 | h[4];
		if (tag == 0xFFFEE0DD) {
			ok = n >= 2;   /* the offset table and a fragment */
			break;
		}
		if (tag != 0xFFFEE000 || len == 0xFFFFFFFF || len > size - pos - 8)
			break;
		pos += 8 + (uint64_t)len;
	}
	source_close(src, &f);
	return ok;
}

/*
 * How whole a copy is, from what the index knows without decoding (higher
 * is better): the header read whole (no RECF_PARTIAL), the pixel data not
 * cut short (no RECF_PIXEL_TRUNC), the pixel attributes describe servable
 * pixels whose native length fits Rows x Columns x frames (pixels.h:
 * px_info_from_record), and for encapsulated pixel data an item stream
 * that holds up to its sequence delimiter (items_whole: item headers only,
 * read for copies that compete).
 */
static int copy_whole(const struct build *b, const struct inst *in)
{
	int score = 0;
	if (!(in->h.flags & RECF_PARTIAL))
		score += 8;
	if (!(in->h.flags & RECF_PIXEL_TRUNC))
		score += 4;
	if (!in->h.pixel_tag || has_pixels(in))
		score += 2;
	if (!(in->h.flags & RECF_ENCAPSULATED) || (in->h.flags & RECF_DEFLATED) ||
	    !in->h.pixel_tag || (in->h.pixel_offset < in->h.size && items_whole(b, in)))
		score += 1;
	return score;
}

/* the next attribute of record rec from *pos that is not about the
 * encoding (group 0002, SpecificCharacterSet: values are stored decoded) */
static int next_meaningful(const struct inst *in, size_t *pos, uint32_t *tag,
			   const char **v, size_t *l)
{
	char vr[2];
	while (rec_next(in->rec, in->rec_len, pos, tag, vr, v, l))
		if ((*tag >> 16) != 0x0002 && *tag != 0x00080005)
			return 1;
	return 0;
}

/* the same instance: same place in patients/ and the same indexed values
 * but for the encoding (another transfer syntax or character set is the
 * same instance) */
static int same_copy(const struct inst *x, const struct inst *y)
{
	if (str_cmp(x->pkey, y->pkey) || str_cmp(x->study, y->study) ||
	    str_cmp(x->series, y->series))
		return 0;
	size_t px = 0, py = 0, lx, ly;
	uint32_t tx, ty;
	const char *vx, *vy;
	for (;;) {
		int a = next_meaningful(x, &px, &tx, &vx, &lx);
		int b = next_meaningful(y, &py, &ty, &vy, &ly);
		if (!a || !b)
			return a == b;
		if (tx != ty || lx != ly || (lx && memcmp(vx, vy, lx)))
			return 0;
	}
}

struct ranked {
	struct inst in;
	int score;
};

static int cmp_ranked(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;
	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return str_cmp(x->in.rel, y->in.rel);
}

/*
 * The copies of each SOP Instance UID among b->v (b->n updated; "dups"
 * TSV lines into dups, hidden copies counted in *ndup). Rules:
 * - Preference: the wholest copy first (copy_whole), then the smallest
 *   source path.
 * - A copy that is the same instance as a preferred one (same_copy: same
 *   patient, study and series, same indexed attributes) is a duplicate:
 *   hidden from patients/, uids/ and anon/ (reachable in sources/), one
 *   "duplicate of SOP Instance UID ... (served from ...)" line.
 * - A copy that differs (another patient, study or series, or other
 *   attribute values) is a conflict: shown too, one "conflict: ..." line.
 *   Its tree identity (the name in its series, its uids/ name, its anon/
 *   id) is "<SOP Instance UID>-conflict<n>", n = 2, 3, ... in preference
 *   order; the preferred copy keeps the bare UID. Its files (the .dcm,
 *   .json, xattrs) still show the UID the file holds.
 * Determinism: a function of the set of records (ties broken by path).
 */
static int dedup_sop(struct build *b, struct strbuf *dups, uint64_t *ndup)
{
	qsort(b->v, b->n, sizeof(*b->v), cmp_sop);
	size_t w = 0;
	for (size_t i = 0; i < b->n;) {
		size_t j = i + 1;
		while (j < b->n && str_cmp(b->v[i].sop, b->v[j].sop) == 0)
			j++;
		if (j - i == 1) {
			b->v[w++] = b->v[i++];
			continue;
		}
		size_t n = j - i, kept = 0;
		struct ranked *g = malloc(n * sizeof(*g));
		if (!g) {
			/* keep every copy (the caller frees b->v[0, b->n)) */
			while (i < b->n)
				b->v[w++] = b->v[i++];
			b->n = w;
			return -ENOMEM;
		}
		for (size_t k = 0; k < n; k++) {
			g[k].in = b->v[i + k];
			g[k].score = copy_whole(b, &g[k].in);
		}
		qsort(g, n, sizeof(*g), cmp_ranked);
		/* the kept copies go to b->v[w ...] (w <= i: room enough) */
		size_t first = w;
		for (size_t k = 0; k < n; k++) {
			struct inst *in = &g[k].in;
			const struct inst *same = NULL;
			char path[4096], why[4608];
			for (size_t m = first; m < w && !same; m++)
				if (same_copy(&b->v[m], in))
					same = &b->v[m];
			snprintf(path, sizeof(path), "%.*s", (int)in->rel.l, in->rel.s);
			if (same) {
				snprintf(why, sizeof(why),
					 "duplicate of SOP Instance UID %.*s (served from %.*s)",
					 (int)in->sop.l, in->sop.s, (int)same->rel.l, same->rel.s);
				strbuf_add_tsv2(dups, path, why);
				free(in->rec);
				free(in->pkey_buf);
				(*ndup)++;
				continue;
			}
			if (kept++) {
				const struct inst *pref = &b->v[first];
				char *nb = malloc(in->sop.l + 32);
				if (!nb) {
					/* keep what is left (the caller frees b->v[0, b->n)) */
					for (size_t r = k; r < n; r++)
						b->v[w++] = g[r].in;
					while (j < b->n)
						b->v[w++] = b->v[j++];
					b->n = w;
					free(g);
					return -ENOMEM;
				}
				int l = snprintf(nb, in->sop.l + 32, "%.*s-conflict%zu",
						 (int)in->sop.l, in->sop.s, kept);
				snprintf(why, sizeof(why),
					 "conflict: SOP Instance UID %.*s also in %.*s (%s); both shown, "
					 "this one as %s",
					 (int)in->sop.l, in->sop.s, (int)pref->rel.l, pref->rel.s,
					 str_cmp(in->pkey, pref->pkey) ? "another patient" :
					 str_cmp(in->study, pref->study) ? "another study" :
					 str_cmp(in->series, pref->series) ? "another series" :
									     "other attribute values",
					 nb);
				strbuf_add_tsv2(dups, path, why);
				in->sop_buf = nb;
				in->sop.s = nb;
				in->sop.l = (size_t)l;
			}
			b->v[w++] = *in;
		}
		free(g);
		i = j;
	}
	b->n = w;
	return 0;
}

/* ---- the root and the views (view.h) ---- */

struct tree_builder {
	struct build *b;
};

int tree_add(struct tree_builder *tb, uint64_t dir, uint32_t *pos, uint64_t id,
	     unsigned kind, const char *name)
{
	if (kind >= KIND_MAX || !(tb->b->ix->opts.kinds & (1u << kind)))
		return 0;
	if (strlen(name) >= NAME_BUF)
		return -ENAMETOOLONG;
	int rc = put_dirent(tb->b, dir, *pos, ino_make(id, kind), name);
	if (!rc)
		(*pos)++;
	return rc;
}

/* the patients/ and uids/ hierarchies as view builds: fn writes below the
 * fixed id top_id, every entry of which is a directory */
static int hierarchy(struct tree_builder *tb, const struct view *v, uint64_t top_id,
		     int (*fn)(struct build *, struct agg *), struct view_top *top)
{
	struct agg g = { 0 };
	if (v->id != top_id)
		return -EINVAL;
	int n = fn(tb->b, &g);
	if (n < 0)
		return n;
	top->nentries = (uint64_t)n;
	top->nsubdirs = (uint32_t)n;
	return 0;
}

int tree_patients(struct tree_builder *tb, const struct view *v, struct view_top *top)
{
	return hierarchy(tb, v, ID_PATIENTS, do_patients, top);
}

int tree_uids(struct tree_builder *tb, const struct view *v, struct view_top *top)
{
	return hierarchy(tb, v, ID_UIDS, do_uids, top);
}

int tree_anon(struct tree_builder *tb, const struct view *v, struct view_top *top)
{
	return hierarchy(tb, v, ID_ANON, do_anon, top);
}

static int cmp_view_name(const void *a, const void *b)
{
	const struct view *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

/* Build the views in registry order (V3), each under its own top node, then
 * the root listing them in name order (V2); all: the whole archive's
 * attributes. 0, -EINVAL for a registry that breaks (V1), or an error. */
static int build_views(struct build *b, const struct view *const *views,
		       const struct agg *all)
{
	/* unique ids in 1 .. ID_FIRST-1: at most ID_FIRST-1 views */
	const struct view *byname[ID_FIRST];
	struct tree_builder tb = { b };
	size_t n;
	int rc = 0;
	for (n = 0; views[n]; n++) {
		const struct view *v = views[n];
		if (v->id == ID_ROOT || v->id >= ID_FIRST || !v->name[0] ||
		    strchr(v->name, '/') || strlen(v->name) >= NAME_BUF || !v->build)
			return -EINVAL;
		for (size_t j = 0; j < n; j++)
			if (views[j]->id == v->id || strcmp(views[j]->name, v->name) == 0)
				return -EINVAL;
		byname[n] = v;
	}
	for (size_t i = 0; i < n && !rc; i++) {
		struct view_top top = { 0, 0 };
		rc = views[i]->build(&tb, views[i], &top);
		if (!rc)
			rc = put_node(b, views[i]->id, NODE_TOP, ID_ROOT, views[i]->name, all,
				      2 + top.nsubdirs, top.nentries, NULL, NULL);
	}
	qsort(byname, n, sizeof(*byname), cmp_view_name);
	if (!rc)
		rc = put_node(b, ID_ROOT, NODE_ROOT, ID_ROOT, "", all, 2 + (uint32_t)n, n, NULL, NULL);
	for (size_t i = 0; i < n && !rc; i++)
		rc = put_dirent(b, ID_ROOT, (uint32_t)i, ino_make(byname[i]->id, KIND_DIR),
				byname[i]->name);
	return rc;
}

/* The mtime and owner of the whole archive (V2): of all its instances, or
 * of the archive directory when there are none. */
static void archive_attrs(const struct build *b, struct agg *all)
{
	struct stat st;
	for (size_t i = 0; i < b->n; i++)
		agg_file(all, &b->v[i].h);
	if (!all->any && fstat(b->ix->archive_fd, &st) == 0) {
		all->mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		all->uid = st.st_uid;
		all->gid = st.st_gid;
		all->any = 1;
	}
}

int tree_build(struct index *ix, MDB_txn *txn, uint64_t *next_id)
{
	struct build b = { .ix = ix, .txn = txn, .next_id = next_id };
	struct strbuf dups = STRBUF_INIT;
	uint64_t skipped = 0, errors = 0, ndup = 0;
	struct agg all = { 0 };
	int rc;

	rc = load(&b, &skipped, &errors);
	if (rc)
		goto free_insts;
	/* copies of a SOP Instance UID: duplicates hidden, conflicts shown */
	if ((rc = dedup_sop(&b, &dups, &ndup)))
		goto free_insts;
	qsort(b.v, b.n, sizeof(*b.v), cmp_tree);

	MDB_dbi tree[] = { ix->nodes, ix->names, ix->dirents };
	for (size_t i = 0; i < 3; i++)
		if ((rc = dfs_from_mdb(mdb_drop(txn, tree[i], 0))))
			goto free_insts;

	archive_attrs(&b, &all);
	if ((rc = build_views(&b, ix->opts.views, &all)))
		goto free_insts;
	if ((rc = stage_flush(&b.nodes, txn, ix->nodes)) ||
	    (rc = stage_flush(&b.names, txn, ix->names)) ||
	    (rc = stage_flush(&b.dirents, txn, ix->dirents)))
		goto free_insts;
	if ((rc = meta_put_str(txn, ix->meta, "dups", strbuf_str(&dups), dups.len)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_instances", b.n)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_patients", b.patients)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_studies", b.studies)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_series", b.series)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_skipped", skipped)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_errors", errors)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_duplicates", ndup)) ||
	    (rc = volreport_store(ix, txn, &b.novol)) ||
	    (rc = meta_put_str(txn, ix->meta, "anon_excluded", strbuf_str(&b.anon_excluded),
			       b.anon_excluded.len)))
		goto free_insts;
	ix->stats.instances = b.n;
	ix->stats.patients = b.patients;
	ix->stats.studies = b.studies;
	ix->stats.series = b.series;
	ix->stats.skipped = skipped;
	ix->stats.errors = errors;
	ix->stats.duplicates = ndup;
free_insts:
	for (size_t i = 0; i < b.n; i++) {
		free(b.v[i].rec);
		free(b.v[i].pkey_buf);
		free(b.v[i].sop_buf);
		free(b.v[i].an);
	}
	free(b.v);
	stage_release(&b.nodes);
	stage_release(&b.names);
	stage_release(&b.dirents);
	strbuf_release(&dups);
	strbuf_release(&b.novol);
	strbuf_release(&b.anon_excluded);
	return rc;
}

/* ---- sources/<relative path>: every source file (view_sources.c) ---- */

struct srcent {
	char *rel;            /* the record's key (malloc()ed) */
	size_t l;
	struct rec_head h;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* the directory id of archive folder path[0, l) (I2: keys 'R' + path) */
static int src_dir_id(struct build *b, const char *path, size_t l, uint64_t *id)
{
	char *kb = malloc(l + 1);
	if (!kb)
		return -ENOMEM;
	kb[0] = 'R';
	memcpy(kb + 1, path, l);
	MDB_val k = { l + 1, kb }, d;
	int rc = mdb_get(b->txn, b->ix->keys, &k, &d);
	if (rc == 0 && d.mv_size == 8) {
		memcpy(id, d.mv_data, 8);
		free(kb);
		return 0;
	}
	*id = (*b->next_id)++;
	d.mv_size = 8;
	d.mv_data = id;
	rc = dfs_from_mdb(mdb_put(b->txn, b->ix->keys, &k, &d, 0));
	free(kb);
	return rc;
}

struct srcbuild {
	struct build *b;
	struct srcent *v;
	uint64_t *shown;      /* ids with an instance node (patients/), sorted */
	size_t nshown;
};

/*
 * Directory dir_id lists the entries v[a, e), whose paths all start with
 * the pl bytes of its own path (and '/'): its files, then its folders, in
 * key order. *nsub: its subdirectories, *nent: its entries.
 */
static int src_fill(struct srcbuild *sb, uint64_t dir_id, size_t a, size_t e, size_t pl,
		    struct agg *out, uint32_t *nsub, uint64_t *nent)
{
	struct build *b = sb->b;
	uint32_t seq = 0;
	int rc = 0;
	*nsub = 0;
	for (size_t i = a; i < e && !rc;) {
		const char *rest = sb->v[i].rel + pl;
		size_t rl = sb->v[i].l - pl;
		const char *slash = memchr(rest, '/', rl);
		size_t cl = slash ? (size_t)(slash - rest) : rl;
		char name[NAME_BUF];
		if (!cl || cl >= NAME_BUF) {   /* not a name a folder can list */
			i++;
			continue;
		}
		memcpy(name, rest, cl);
		name[cl] = 0;
		if (!slash) {
			struct srcent *f = &sb->v[i++];
			agg_file(out, &f->h);
			if (!bsearch(&f->h.id, sb->shown, sb->nshown, sizeof(uint64_t), cmp_u64)) {
				/* no instance node: a node of its own (nlink 1) */
				struct inst tmp;
				memset(&tmp, 0, sizeof(tmp));
				tmp.h = f->h;
				tmp.rel.s = f->rel;
				tmp.rel.l = f->l;
				rc = put_node(b, f->h.id, NODE_INSTANCE, dir_id, name, NULL, 1, 0,
					      &tmp, NULL);
			}
			if (!rc)
				rc = put_dirent(b, dir_id, seq++, ino_make(f->h.id, KIND_SOURCE), name);
			continue;
		}
		size_t j = i + 1;
		while (j < e && sb->v[j].l > pl + cl &&
		       memcmp(sb->v[j].rel + pl, rest, cl + 1) == 0)
			j++;
		uint64_t cid;
		struct agg g = { 0 };
		uint32_t cs = 0;
		uint64_t ce = 0;
		rc = src_dir_id(b, sb->v[i].rel, pl + cl, &cid);
		if (!rc)
			rc = src_fill(sb, cid, i, j, pl + cl + 1, &g, &cs, &ce);
		if (!rc)
			rc = put_node(b, cid, NODE_PATIENT, dir_id, name, &g, 2 + cs, ce, NULL, NULL);
		if (!rc)
			rc = put_dirent(b, dir_id, seq++, ino_make(cid, KIND_DIR), name);
		agg_merge(out, &g);
		(*nsub)++;
		i = j;
	}
	*nent = seq;
	return rc;
}

int tree_sources(struct tree_builder *tb, const struct view *v, struct view_top *top)
{
	struct build *b = tb->b;
	struct srcbuild sb = { b, NULL, NULL, 0 };
	size_t n = 0, cap = 0;
	MDB_cursor *c;
	MDB_val k, d;
	int rc;
	if (v->id != ID_SOURCES)
		return -EINVAL;
	if (!(b->ix->opts.kinds & (1u << KIND_SOURCE)))
		return 0;
	sb.shown = malloc((b->n ? b->n : 1) * sizeof(uint64_t));
	if (!sb.shown)
		return -ENOMEM;
	for (size_t i = 0; i < b->n; i++)
		sb.shown[sb.nshown++] = b->v[i].h.id;
	qsort(sb.shown, sb.nshown, sizeof(uint64_t), cmp_u64);
	if ((rc = dfs_from_mdb(mdb_cursor_open(b->txn, b->ix->files, &c))))
		goto out;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		struct rec_head h;
		if (rec_head_get(d.mv_data, d.mv_size, &h) || !h.id || !k.mv_size)
			continue;
		struct srcent *nv = grow(sb.v, n, &cap, sizeof(*nv), 1024);
		if (!nv) {
			rc = ENOMEM;
			break;
		}
		sb.v = nv;
		if (!(sb.v[n].rel = malloc(k.mv_size))) {
			rc = ENOMEM;
			break;
		}
		memcpy(sb.v[n].rel, k.mv_data, k.mv_size);
		sb.v[n].l = k.mv_size;
		sb.v[n].h = h;
		n++;
	}
	mdb_cursor_close(c);
	rc = rc == MDB_NOTFOUND ? 0 : rc == ENOMEM ? -ENOMEM : dfs_from_mdb(rc);
	if (!rc) {
		struct agg g = { 0 };
		uint32_t nsub = 0;
		uint64_t nent = 0;
		b->flags = NODE_F_SOURCE;
		rc = src_fill(&sb, ID_SOURCES, 0, n, 0, &g, &nsub, &nent);
		b->flags = 0;
		top->nentries = nent;
		top->nsubdirs = nsub;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(sb.v[i].rel);
	free(sb.v);
	free(sb.shown);
	return rc;
}
