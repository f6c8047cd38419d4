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
 * - Updates in place (tree_update, index.h I11): a live batch rewrites
 *   the subtrees of the patients and studies its records touch and the
 *   listings of the tops, from what "aux" keeps of the tops' children.
 * - Speed of a full build (issue 17): every tree record is staged, then
 *   appended in key order (MDB_APPEND through one cursor). The stage comes
 *   in ascending runs, which are ordered as wholes (kv_order), so there is no full sort.
 *   The names DB is made from the staged dirents (names_flush). The records
 *   are read in place in the map when no record was written in the txn
 *   (store.h tree_recs_in_map). What is written is freed before the next
 *   DB, so LMDB's page mallocs reuse that memory. Per-record work
 *   (has_pixels, anon/'s pseudonyms and volume answers) is done once.
 *   The big arrays (instances, staged dirents and nodes, sources/'s
 *   entries) are faulted in by a thread of their own, and the pages the
 *   commits will write are put in the page cache by store.h S4's thread
 *   whenever a core is idle (from the end of load to the helper's start,
 *   and from the helper's end on).
 * - The views are data: each directory level is a struct level (its key in
 *   "keys", its level files, how its children are grouped and named), and
 *   one fill() / put_listing() writes every level of patients/ and uids/.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "arena.h"
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
	struct str burned, sop_class; /* anon_excluded's: s NULL when absent */
	char *pkey_buf;
	char *sop_buf;        /* a conflict's SOP identity (dedup_sop), or NULL */
	/* anon/: the de-identified values of the names (anon_prepare) */
	struct anon_names *an;
	struct str a_pid, a_pname, a_study, a_sdate, a_series, a_sop;
	int a_days;           /* the patient's date shift (deid.h D4) */
	uint8_t pix;          /* has_pixels(), found once by inst_load */
	uint8_t rec_shared;   /* rec is in the build's arena (not free()d) */
	int8_t vol;           /* patients/: its series is a volume (1), not (0),
				 * unknown (-1); set on the series' first instance */
	uint32_t vol_n;       /* the instances of that series in patients/ */
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
	uint64_t p;           /* the key's first 8 bytes, big-endian (sorting) */
	unsigned char *k, *v;
	size_t kl, vl;
};

struct stage {
	struct kv *v;
	size_t n, cap;
	/* the bytes of the records: chunks of STAGE_CHUNK (no malloc each) */
	struct arena mem;
};

/* below glibc's mmap threshold: a chunk freed after its stage is written
 * stays in the heap, where LMDB's pages of the next DB find it (a fresh
 * page costs a fault: NOTES) */
#define STAGE_CHUNK ((size_t)64 << 10)

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
	return arena_alloc(&st->mem, n, STAGE_CHUNK);
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
	unsigned char pb[8] = { 0 };
	memcpy(pb, k, kl < 8 ? kl : 8);
	e->p = be64_get(pb);
	if (l1)
		memcpy(e->v, v1, l1);
	if (l2)
		memcpy(e->v + l1, v2, l2);
	if (l3)
		memcpy(e->v + l1 + l2, v3, l3);
	st->n++;
	return 0;
}

/* bytewise key order (LMDB's default): the first 8 bytes as a number, then
 * the rest */
static inline int kv_cmp(const struct kv *x, const struct kv *y)
{
	if (x->p != y->p)
		return x->p < y->p ? -1 : 1;
	size_t l = x->kl < y->kl ? x->kl : y->kl;
	int c = l > 8 ? memcmp(x->k + 8, y->k + 8, l - 8) : 0;
	return c ? c : (x->kl < y->kl ? -1 : x->kl > y->kl);
}

/*
 * The order of the staged puts v[0, n), as indexes into v (*out,
 * malloc()ed). The stage comes in long ascending runs (a directory's
 * entries are put in order, between the subtrees of its children): the
 * runs (cut where the key goes down, or with by_prefix where its first 8
 * bytes change: the parent id of names and dirents) are sorted by their
 * first key and emitted whole; only where runs overlap are their entries
 * sorted one by one. 0 or -ENOMEM.
 */
struct kv_run {
	size_t a, e;
};

typedef int (*kv_cmp_fn)(const struct kv *x, const struct kv *y);

/* the name part of the names DB's key of a staged dirent (value: inode +
 * name, or a group record's inode + mask + base name: I3, its key's name
 * is the base name and a NUL, *nul) */
static const unsigned char *dirent_name(const struct kv *e, size_t *l, int *nul)
{
	uint64_t ino;
	memcpy(&ino, e->v, 8);
	*nul = ino_kind(ino) == KIND_GROUP && e->vl >= 12;
	*l = e->vl - (*nul ? 12 : 8);
	return e->v + (*nul ? 12 : 8);
}

/* the names DB's order of staged dirents (key: parent id + seq): the
 * parent id, then the key's name bytewise, shorter first */
static int kv_cmp_name(const struct kv *x, const struct kv *y)
{
	if (x->p != y->p)
		return x->p < y->p ? -1 : 1;
	size_t xl, yl;
	int xn, yn;
	const unsigned char *xs = dirent_name(x, &xl, &xn), *ys = dirent_name(y, &yl, &yn);
	size_t l = xl < yl ? xl : yl;
	int c = l ? memcmp(xs, ys, l) : 0;
	if (c)
		return c;
	if (xl != yl)   /* the shorter is a prefix: first, NUL or not (no name holds one) */
		return xl < yl ? -1 : 1;
	return xn < yn ? -1 : xn > yn;
}

static int kv_cmp_key(const struct kv *x, const struct kv *y)
{
	return kv_cmp(x, y);
}

struct kv_ctx {
	const struct kv *v;
	kv_cmp_fn cmp;
};

static int cmp_run(const void *x, const void *y, void *ctx)
{
	const struct kv_ctx *c = ctx;
	const struct kv_run *p = x, *q = y;
	int r = c->cmp(&c->v[p->a], &c->v[q->a]);
	return r ? r : (p->a < q->a ? -1 : p->a > q->a);
}

static int cmp_kv_ix(const void *x, const void *y, void *ctx)
{
	const struct kv_ctx *c = ctx;
	size_t i = *(const size_t *)x, j = *(const size_t *)y;
	int r = c->cmp(&c->v[i], &c->v[j]);
	return r ? r : (i < j ? -1 : i > j);
}

static int kv_order(const struct kv *v, size_t n, int by_prefix, kv_cmp_fn cmp,
		    size_t **out)
{
	struct kv_ctx cx = { v, cmp };
	struct kv_run *run = NULL;
	size_t nr = 0, cap = 0, *ord = malloc((n ? n : 1) * sizeof(*ord)), o = 0;
	*out = NULL;
	if (!ord)
		return -ENOMEM;
	for (size_t i = 0; i < n;) {
		size_t j = i + 1;
		while (j < n && cmp(&v[j - 1], &v[j]) < 0 && (!by_prefix || v[j].p == v[i].p))
			j++;
		struct kv_run *nrun = grow(run, nr, &cap, sizeof(*run), 1024);
		if (!nrun) {
			free(run);
			free(ord);
			return -ENOMEM;
		}
		run = nrun;
		run[nr++] = (struct kv_run){ i, j };
		i = j;
	}
	if (nr > 1)
		qsort_r(run, nr, sizeof(*run), cmp_run, &cx);
	for (size_t r = 0; r < nr;) {
		/* the region of runs r .. q-1 whose key ranges overlap */
		size_t q = r + 1, last = run[r].e - 1;
		while (q < nr && cmp(&v[run[q].a], &v[last]) <= 0) {
			if (cmp(&v[run[q].e - 1], &v[last]) > 0)
				last = run[q].e - 1;
			q++;
		}
		size_t o0 = o;
		for (size_t k = r; k < q; k++)
			for (size_t i = run[k].a; i < run[k].e; i++)
				ord[o++] = i;
		if (q - r > 1)
			qsort_r(ord + o0, o - o0, sizeof(*ord), cmp_kv_ix, &cx);
		r = q;
	}
	free(run);
	*out = ord;
	return 0;
}

/* flags: MDB_APPEND into an emptied DB (a full build), 0 (an update);
 * by_prefix: see kv_order */
static int stage_flush_by(struct stage *st, MDB_txn *txn, MDB_dbi dbi, unsigned flags,
			  int by_prefix)
{
	size_t *ord;
	MDB_cursor *c;
	int rc = kv_order(st->v, st->n, by_prefix, kv_cmp_key, &ord);
	if (rc)
		return rc;
	if ((rc = dfs_from_mdb(mdb_cursor_open(txn, dbi, &c)))) {
		free(ord);
		return rc;
	}
	for (size_t i = 0; i < st->n && !rc; i++) {
		const struct kv *e = &st->v[ord[i]];
		MDB_val k = { e->kl, e->k }, d = { e->vl, e->v };
		rc = dfs_from_mdb(mdb_cursor_put(c, &k, &d, flags));
	}
	mdb_cursor_close(c);
	free(ord);
	return rc;
}

static int stage_flush(struct stage *st, MDB_txn *txn, MDB_dbi dbi, unsigned flags)
{
	return stage_flush_by(st, txn, dbi, flags, 0);
}

/* The names DB (parent id + name -> inode): one record per staged dirent
 * (put_dirent stages only those), in name order. */
static int names_flush(struct stage *dirents, MDB_txn *txn, MDB_dbi dbi, unsigned flags)
{
	size_t *ord;
	MDB_cursor *c;
	int rc = kv_order(dirents->v, dirents->n, 1, kv_cmp_name, &ord);
	if (rc)
		return rc;
	if ((rc = dfs_from_mdb(mdb_cursor_open(txn, dbi, &c)))) {
		free(ord);
		return rc;
	}
	for (size_t i = 0; i < dirents->n && !rc; i++) {
		const struct kv *e = &dirents->v[ord[i]];
		unsigned char kb[8 + NAME_BUF + 8];
		size_t nl;
		int nul;
		const unsigned char *nm = dirent_name(e, &nl, &nul);
		if (nl + nul > sizeof(kb) - 8) {
			rc = -ENAMETOOLONG;
			break;
		}
		memcpy(kb, e->k, 8);
		memcpy(kb + 8, nm, nl);
		if (nul)
			kb[8 + nl] = 0;
		MDB_val k = { 8 + nl + nul, kb }, d = { nul ? 12 : 8, e->v };
		rc = dfs_from_mdb(mdb_cursor_put(c, &k, &d, flags));
	}
	mdb_cursor_close(c);
	free(ord);
	return rc;
}

static void stage_release(struct stage *st)
{
	arena_release(&st->mem);
	free(st->v);
	st->v = NULL;
	st->n = st->cap = 0;
}

static int u64_push(struct id_list *a, uint64_t x)
{
	uint64_t *nv = grow(a->v, a->n, &a->cap, sizeof(*nv), 64);
	if (!nv)
		return -ENOMEM;
	a->v = nv;
	a->v[a->n++] = x;
	return 0;
}

struct build {
	struct stage nodes, names, dirents;
	struct stage aux;      /* I11: top-level siblings, SOP UID index */
	struct id_list *touched;  /* tree_update: the directories listed */
	struct index *ix;
	MDB_txn *txn;
	uint64_t *next_id;
	struct inst *v;
	size_t n;
	struct stage recs;     /* tree_build: the records' copies (inst_load) */
	uint64_t patients, studies, series;
	struct strbuf novol;   /* volreport.h: series that are not volumes */
	uint8_t flags;         /* NODE_F_* of the nodes being written */
	struct strbuf anon_excluded; /* TSV: instances left out of anon/ */
	struct ahead *ahead;   /* tree_build: the helper thread (H1, H2), or
				* NULL (ahead_start) */
	struct srcent *src_v;  /* tree_build: room for sources/'s entries (one
				* per record, src_cap), faulted in ahead; or
				* NULL: sources_fill grows its own */
	size_t src_cap;
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

/* a dirent: inode, then ml bytes of mid (a group record's mask, I3), then
 * the name; the names DB's record is made from it (names_flush) */
static int stage_dirent(struct build *b, uint64_t parent, uint32_t seq, uint64_t ino,
			const void *mid, size_t ml, const char *name)
{
	unsigned char kb[12];
	if (b->touched && (!b->touched->n || b->touched->v[b->touched->n - 1] != parent) &&
	    u64_push(b->touched, parent))
		return -ENOMEM;
	be64_put(kb, parent);
	be32_put(kb + 8, seq);
	return stage_put(&b->dirents, kb, 12, &ino, 8, mid, ml, name, strlen(name));
}

static int put_dirent(struct build *b, uint64_t parent, uint32_t seq,
		      uint64_t ino, const char *name)
{
	return stage_dirent(b, parent, seq, ino, NULL, 0, name);
}

/* I3: the files of instance id in the kinds of mask, as one group record
 * under its base name */
static int put_group(struct build *b, uint64_t parent, uint32_t seq, uint64_t id,
		     uint32_t mask, const char *base)
{
	return stage_dirent(b, parent, seq, ino_make(id, KIND_GROUP), &mask, 4, base);
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

/* The id of key letter + part in "keys" (I2), not allocated: 0, 1 when
 * there is none, or an error. */
static int key_find(struct build *b, char letter, struct str part, uint64_t *id)
{
	char *kb = malloc(part.l + 1);
	if (!kb)
		return -ENOMEM;
	kb[0] = letter;
	memcpy(kb + 1, part.s, part.l);
	MDB_val k = { part.l + 1, kb }, d;
	int rc = mdb_get(b->txn, b->ix->keys, &k, &d);
	free(kb);
	if (rc == MDB_NOTFOUND || (rc == 0 && d.mv_size != 8))
		return 1;
	if (rc)
		return dfs_from_mdb(rc);
	memcpy(id, d.mv_data, 8);
	return 0;
}

/* I2: the id "keys" holds for key kb[0, len), or a new one (next_id) put
 * there. 0 or an error. */
static int key_make(struct build *b, const void *kb, size_t len, uint64_t *id)
{
	/* one descent of the B-tree, not a get and then a put: a key already
	 * there is given back by the put that refuses to replace it */
	uint64_t nid = *b->next_id;
	MDB_val k = { len, (void *)kb }, d = { 8, &nid };
	int rc = mdb_put(b->txn, b->ix->keys, &k, &d, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST && d.mv_size == 8) {
		memcpy(id, d.mv_data, 8);
		return 0;
	}
	if (rc == MDB_KEYEXIST) {   /* not an id: replaced, as a new key */
		d = (MDB_val){ 8, &nid };
		rc = mdb_put(b->txn, b->ix->keys, &k, &d, 0);
	}
	if (rc)
		return dfs_from_mdb(rc);
	*id = nid;
	(*b->next_id)++;
	return 0;
}

/* Persistent id of the directory of level lv whose first instance is in. */
static int key_id(struct build *b, const struct level *lv, const struct inst *in,
		  uint64_t *id)
{
	size_t len = 1;
	for (int k = 0; k < lv->nparts; k++)
		len += (k ? 1 : 0) + inst_str(in, lv->parts[k]).l;
	char sb[512], *kb = len <= sizeof(sb) ? sb : malloc(len), *p = kb;
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
	rc = key_make(b, kb, len, id);
	if (kb != sb)
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

/* A child directory as its parent lists it: what child_fill found below
 * it. Stored as is for the children of the hierarchy tops (I11). */
struct child {
	uint64_t id, src[2], nchildren, ninst, nstudies, nseries;
	int64_t mtime;
	uint32_t rbits, uid, gid, nsub;
	uint8_t uid_mixed, gid_mixed, any, pad;
	uint16_t base_len, uid_len;   /* I11: then the base name, the uid */
	uint32_t pad2;
};

static void child_agg(const struct child *c, struct agg *g)
{
	g->mtime = c->mtime;
	g->rbits = c->rbits;
	g->uid = c->uid;
	g->gid = c->gid;
	g->uid_mixed = c->uid_mixed;
	g->gid_mixed = c->gid_mixed;
	g->any = c->any;
}

/* The id and contents of child directory s (level lv, the run s->a ..
 * s->b of ord); *c filled, its aggregate merged into out. */
static int child_fill(struct build *b, const struct level *lv, const size_t *ord,
		      const struct sib *s, struct child *c, struct agg *out)
{
	struct agg g = { 0 };
	uint64_t st0 = b->studies, se0 = b->series;
	memset(c, 0, sizeof(*c));
	int rc = key_id(b, lv, inst_at(b, ord, s->a), &c->id);
	int nsub = rc ? rc : fill(b, lv, ord, c->id, s->a, s->b, &g);
	agg_merge(out, &g);
	if (nsub < 0)
		return nsub;
	c->src[0] = s->src[0];
	c->src[1] = s->src[1];
	c->nsub = (uint32_t)nsub;
	c->nchildren = lv->type == NODE_SERIES ? s->b - s->a : (uint64_t)nsub;
	c->ninst = s->b - s->a;
	c->nstudies = b->studies - st0;
	c->nseries = b->series - se0;
	c->mtime = g.mtime;
	c->rbits = g.rbits;
	c->uid = g.uid;
	c->gid = g.gid;
	c->uid_mixed = (uint8_t)g.uid_mixed;
	c->gid_mixed = (uint8_t)g.gid_mixed;
	c->any = (uint8_t)g.any;
	return 0;
}

/* the node of child c (of level type `type`) named name in dir_id */
static int child_node(struct build *b, uint8_t type, uint64_t dir_id,
		      const struct child *c, const char *name)
{
	struct agg g;
	child_agg(c, &g);
	return put_node(b, c->id, type, dir_id, name, &g, 2 + c->nsub, c->nchildren, NULL,
			c->src);
}

static int is_top(uint64_t id)
{
	return id == ID_PATIENTS || id == ID_UIDS || id == ID_ANON;
}

/* I11: child c of hierarchy top `top`, its name before sib_finish (base)
 * and the uid its suffix would come from */
static int aux_put_child(struct build *b, uint64_t top, struct child *c,
			 const char *base, struct str uid)
{
	unsigned char k[17];
	k[0] = 't';
	be64_put(k + 1, top);
	be64_put(k + 9, c->id);
	c->base_len = (uint16_t)strlen(base);
	c->uid_len = (uint16_t)(uid.l < 0xffff ? uid.l : 0xffff);
	return stage_put(&b->aux, k, sizeof(k), c, sizeof(*c), base, c->base_len, uid.s,
			 c->uid_len);
}

static int cmp_sib_a(const void *x, const void *y)
{
	const struct sib *p = x, *q = y;
	return p->a < q->a ? -1 : p->a > q->a;
}

/*
 * The listing of directory dir_id: its level files lf, then its child
 * directories s[0, n) of level lv (named, not yet made unique): for each,
 * its id, its contents, its node and its dirent. The children of a
 * hierarchy top are also kept in "aux" (I11). Returns 0 or an error.
 */
static int put_listing(struct build *b, uint64_t dir_id, const struct level_file *lf,
		       const struct level *lv, const size_t *ord, struct sib *s,
		       size_t n, struct agg *out)
{
	struct sib *base = NULL;   /* the names before sib_finish, by run */
	if (is_top(dir_id) && n) {
		if (!(base = malloc(n * sizeof(*base))))
			return -ENOMEM;
		memcpy(base, s, n * sizeof(*base));
		qsort(base, n, sizeof(*base), cmp_sib_a);
	}
	sib_finish(s, n, lf);
	int rc = put_level_files(b, dir_id, lf, 0);
	uint32_t seq = rc < 0 ? 0 : (uint32_t)rc;
	rc = rc < 0 ? rc : 0;
	for (size_t i = 0; i < n && !rc; i++) {
		struct child c;
		rc = child_fill(b, lv, ord, &s[i], &c, out);
		if (!rc)
			rc = child_node(b, lv->type, dir_id, &c, s[i].name);
		if (!rc)
			rc = put_dirent(b, dir_id, seq++, ino_make(c.id, KIND_DIR), s[i].name);
		if (!rc && base) {
			const struct sib *o = bsearch(&s[i], base, n, sizeof(*base), cmp_sib_a);
			rc = o ? aux_put_child(b, dir_id, &c, o->name, o->uid) : -EIO;
		}
	}
	free(base);
	return rc;
}

/* .npy/.png are listed when the indexed attributes describe servable
 * pixels (pixels.h: px_info_from_record); decoding may still fail (EIO) */
static int has_pixels(const struct inst *in)
{
	return in->pix;
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
		/* one group record for its files (index.h I3) */
		uint32_t mask = 0;
		for (const struct index_group_file *f = index_group_files; f->ext; f++) {
			unsigned k = f->kind;
			if (!(b->ix->opts.kinds & (1u << k)) ||
			    (k == KIND_JSON && !in->h.json_size) ||
			    ((k == KIND_NPY || k == KIND_PNG) && !has_pixels(in)))
				continue;
			mask |= 1u << k;
		}
		if (mask && !rc)
			rc = put_group(b, dir_id, seq++, id, mask, s[i].name);
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

/* what volume.h reads of instance in */
static struct vol_in vol_in_of(const struct inst *in)
{
	return (struct vol_in){ in->rec, in->rec_len, in->h, in->h.id };
}

static int series_volume(struct build *b, uint64_t series_id, const struct vol_in *vin,
			 size_t a, size_t n, int in_order);

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
		vin[i] = vol_in_of(in);
	}
	sib_finish(s, n, view_series_files);
	/* volume.nii/.npy only for series that form a volume (volreport.h);
	 * anon/'s series of the same instances as patients/'s: its answer */
	const struct inst *first = inst_at(b, ord, a);
	int isvol = anon && first->vol >= 0 && first->vol_n == n ? first->vol
		    : anon ? volreport_series(b->ix, &scratch, series_id, vin, n)
			   : series_volume(b, series_id, vin, (size_t)(first - b->v), n, !ord);
	if (isvol < 0) {
		rc = isvol;
		goto free_s;
	}
	if (!anon)
		for (size_t i = 0; i < n; i++) {
			struct inst *in = inst_at(b, ord, a + i);
			in->vol = (int8_t)isvol;
			in->vol_n = (uint32_t)n;
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

/* cmp_uidview, ties in index order: the order of a stable sort */
static int cmp_uidview_stable(const void *a, const void *b, void *ctx)
{
	int c = cmp_uidview(a, b, ctx);
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return c ? c : (x > y) - (x < y);
}

/* a series run of b->v (equal patient key, study and series UIDs) */
struct series_run {
	size_t a, e;
};

/* the series runs of b->v in order (*r malloc()ed); 0 or -ENOMEM */
static int series_runs(const struct build *b, struct series_run **r, size_t *nr)
{
	size_t cap = 0;
	*r = NULL;
	*nr = 0;
	for (size_t i = 0; i < b->n;) {
		const struct inst *x = &b->v[i];
		size_t j = i + 1;
		while (j < b->n && !str_cmp(x->series, b->v[j].series) &&
		       !str_cmp(x->study, b->v[j].study) && !str_cmp(x->pkey, b->v[j].pkey))
			j++;
		struct series_run *nv = grow(*r, *nr, &cap, sizeof(*nv), 64);
		if (!nv) {
			free(*r);
			*r = NULL;
			return -ENOMEM;
		}
		*r = nv;
		(*r)[(*nr)++] = (struct series_run){ i, j };
		i = j;
	}
	return 0;
}

static int cmp_series_run(const void *a, const void *b, void *ctx)
{
	const struct inst *v = ctx;
	const struct series_run *x = a, *y = b;
	int c;
	if ((c = str_cmp(v[x->a].study, v[y->a].study)) ||
	    (c = str_cmp(v[x->a].series, v[y->a].series)))
		return c;
	return (x->a > y->a) - (x->a < y->a);
}

/*
 * ord[0, b->n): b->v's indexes in uids/ order, the order of a stable sort
 * by cmp_uidview. b->v is in cmp_tree order, so each series run is already
 * in SOP order: the runs are sorted instead of the instances, and only
 * runs of one series under several patient keys (rare) are merged by a
 * sort of their own. 0 or -ENOMEM.
 */
static int uids_order(const struct build *b, size_t *ord)
{
	struct series_run *r;
	size_t nr, o = 0;
	if (series_runs(b, &r, &nr))
		return -ENOMEM;
	if (nr)
		qsort_r(r, nr, sizeof(*r), cmp_series_run, b->v);
	for (size_t k = 0; k < nr;) {
		size_t m = k + 1, start = o;
		while (m < nr && !str_cmp(b->v[r[m].a].study, b->v[r[k].a].study) &&
		       !str_cmp(b->v[r[m].a].series, b->v[r[k].a].series))
			m++;
		for (size_t q = k; q < m; q++)
			for (size_t i = r[q].a; i < r[q].e; i++)
				ord[o++] = i;
		if (m - k > 1)
			qsort_r(ord + start, o - start, sizeof(*ord), cmp_uidview_stable, b->v);
		k = m;
	}
	free(r);
	return 0;
}

/* uids/ (ID_UIDS); returns the number of studies */
static int do_uids(struct build *b, struct agg *out)
{
	size_t *ord = malloc((b->n ? b->n : 1) * sizeof(*ord));
	if (!ord)
		return -ENOMEM;
	int rc = uids_order(b, ord);
	if (!rc)
		rc = fill(b, &lv_uids, ord, ID_UIDS, 0, b->n, out);
	free(ord);
	return rc;
}


/* ---- anon/<patient>/<study>/<series>/<instance>.* (view_anon.c) ----
 * The patients/ shape and grouping (runs of the original keys, so ids are
 * stable whatever the key), names from de-identified values only. */

/* Why instance in stays out of anon/, or NULL (view_anon.c) */
static const char *anon_excluded(const struct build *b, const struct inst *in)
{
	if (in->h.flags & RECF_DEFLATED)
		return "anon: deflated data set, not de-identified";
	if (in->h.flags & (RECF_PIXEL_TRUNC | RECF_PARTIAL))
		return "anon: the source is cut short or read only partly";
	if (b->ix->opts.anon_keep_burned_in)
		return NULL;
	/* both found by inst_fields' pass over the record */
	struct str bi = in->burned, sc = in->sop_class;
	if (bi.s)
		return bi.l == 3 && memcmp(bi.s, "YES", 3) == 0
			       ? "anon: BurnedInAnnotation YES (-o anon_keep_burned_in shows it)"
			       : NULL;
	if ((in->modality.l == 2 && memcmp(in->modality.s, "US", 2) == 0) ||
	    (in->modality.l == 2 && memcmp(in->modality.s, "SC", 2) == 0) ||
	    (sc.s && sc.l >= 25 && memcmp(sc.s, "1.2.840.10008.5.1.4.1.1.7", 25) == 0))
		return "anon: no BurnedInAnnotation and a modality that usually burns in "
		       "(US, secondary capture) (-o anon_keep_burned_in shows it)";
	return NULL;
}

static struct str cstr(const char *s)
{
	struct str x = { s, strlen(s) };
	return x;
}

/* anon_prepare's memory of the instance before (in tree order, the
 * instances of one patient, study and series follow each other): what
 * depends only on values equal to its own is copied, not hashed again */
struct anon_prev {
	const struct inst *in;
	struct deid_patient p;
};

/* the de-identified name parts of instance in (deid.h D3, D4) */
static int anon_prepare(const struct build *b, struct inst *in, struct strbuf *tmp,
			struct anon_prev *prev)
{
	const struct deid_key *k = &b->ix->anon_key;
	struct deid_patient *p = &prev->p;
	const struct inst *pv = prev->in;
	const struct anon_names *pa = pv ? pv->an : NULL;
	struct anon_names *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	in->an = a;
	int same_p = pa && str_cmp(pv->pkey, in->pkey) == 0;
	if (!same_p)
		deid_patient(k, in->pkey.s, in->pkey.l, p);
	in->a_days = p->days;
	memcpy(a->pid, p->pid, sizeof(a->pid));
	memcpy(a->pname, p->pname, sizeof(a->pname));
	if (same_p && str_cmp(pv->sdate, in->sdate) == 0)
		memcpy(a->sdate, pa->sdate, sizeof(a->sdate));
	else if (deid_text(k, p, TAG_STUDY_DATE, "DA", in->sdate.s, in->sdate.l, tmp) == 1 &&
		 tmp->len < sizeof(a->sdate))
		memcpy(a->sdate, strbuf_str(tmp), tmp->len + 1);
	if (pa && str_cmp(pv->study, in->study) == 0)
		memcpy(a->study, pa->study, sizeof(a->study));
	else
		deid_uid(k, in->study.s, in->study.l, a->study);
	if (pa && str_cmp(pv->series, in->series) == 0)
		memcpy(a->series, pa->series, sizeof(a->series));
	else
		deid_uid(k, in->series.s, in->series.l, a->series);
	deid_uid(k, in->sop.s, in->sop.l, a->sop);
	prev->in = in;
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

/*
 * The instances of b->v that anon/ shows, their de-identified names made
 * (anon_prepare): their indexes into ord (*n of them), in b->v's order;
 * those it leaves out get their line in b->anon_excluded. Only those that
 * only() says yes to (only NULL: all). 0 or an error.
 */
static int anon_pick_range(const struct build *b,
			   int (*only)(const void *ctx, const struct inst *in), const void *ctx,
			   size_t lo, size_t hi, size_t *ord, size_t *n, struct strbuf *excl)
{
	struct strbuf tmp = STRBUF_INIT;
	struct anon_prev prev;
	memset(&prev, 0, sizeof(prev));
	int rc = 0;
	*n = 0;
	for (size_t i = lo; i < hi && !rc; i++) {
		if (only && !only(ctx, &b->v[i]))
			continue;
		const char *why = anon_excluded(b, &b->v[i]);
		if (why) {
			char path[4096];
			snprintf(path, sizeof(path), "%.*s", (int)b->v[i].rel.l, b->v[i].rel.s);
			rc = strbuf_add_tsv2(excl, path, why);
			continue;
		}
		rc = anon_prepare(b, &b->v[i], &tmp, &prev);
		ord[(*n)++] = i;
	}
	strbuf_release(&tmp);
	return rc;
}

static int anon_pick(struct build *b, int (*only)(const void *ctx, const struct inst *in),
		     const void *ctx, size_t *ord, size_t *n, struct strbuf *excl)
{
	return anon_pick_range(b, only, ctx, 0, b->n, ord, n, excl);
}

/*
 * The full build's helper thread (tree_build_txn, b->ahead), on the core
 * that is otherwise idle while the main thread builds the views. It does
 * H2 first (while do_patients runs), then H1 (ahead_main):
 * (H1) anon/'s pick (when anon/ is a view): its pseudonyms are most of
 *      anon/'s CPU time. It reads the instances' name fields and records
 *      and writes only their anon fields (an, a_*), which nothing else
 *      touches until anon/ is built (do_anon joins it). It goes in chunks
 *      of PICK_CHUNK instances, taken in turn (an atomic counter), each
 *      with its own part of ord and buffer of excluded lines; do_anon,
 *      when it gets there before the helper is done, takes chunks too,
 *      and ahead_join puts the parts together in chunk order: the result
 *      is anon_pick's, whichever thread made which chunk.
 * (H2) patients/'s volume answers (volreport_check), from the last
 *      series backwards, while do_series takes them from the front. Each
 *      series of patients/ (a run of equal patient key, study and series
 *      UIDs in b->v, cmp_tree order) is a slot claimed once, by a
 *      compare-and-swap from VS_TODO: by the main thread (VS_MAIN), which
 *      then answers it in line, or by the helper (VS_AHEAD), which stores
 *      the answer and sets VS_DONE under mu. So do_series waits only for a
 *      slot the helper is answering (one series at most), and the helper
 *      stops at the first slot it finds claimed (all before it are the
 *      main thread's). The helper reads only records and writes only its
 *      slots and its arena (the reasons: they never move, arena.h A1).
 *      The answers are the ones volreport_series gives in line, and the
 *      report's lines are added by do_series in series order: the index
 *      is the same whichever side answered.
 * ahead_join stops H2 (no new claim) and joins; the slots stay until
 * ahead_free, for do_series of a registry that builds anon/ first.
 */
enum { VS_TODO, VS_AHEAD, VS_MAIN, VS_DONE };

struct vol_slot {
	size_t a, n;              /* the series: b->v[a, a + n) */
	const char *why;          /* VS_DONE, isvol 0: the reason (arena) */
	int state;                /* VS_*, atomic */
	int isvol;                /* VS_DONE: volreport_check's answer */
};

/* H1 in chunks of b->v, taken in turn by the helper and, when it gets
 * there first, by do_anon; their results joined in chunk order */
#define PICK_CHUNK 1024

struct ahead {
	pthread_t th;
	int running;              /* th to be joined */
	struct build *b;
	int anon;                 /* H1 wanted */
	size_t *ord;              /* H1's pick: chunk c's at ord + c * chunk
				   * until ahead_join puts them together */
	size_t npick, pick_next;  /* chunks; the next to take (atomic) */
	size_t chunk;             /* PICK_CHUNK; 4 with DICOMFS_TREE_AHEAD=all
				   * (tests: many chunks of a small archive) */
	size_t *pick_n;           /* per chunk: how many anon/ shows */
	int *pick_rc;             /* per chunk: its status */
	struct strbuf *pick_excl; /* per chunk: its lines left out */
	struct vol_slot *vs;      /* H2: patients/'s series in order */
	size_t nvs;
	size_t vs_next;           /* main thread only: do_series' place */
	int stop;                 /* atomic: H2 claims no more */
	int all;                  /* DICOMFS_TREE_AHEAD=all (tests): the
				   * helper answers every series, do_series
				   * waits for each */
	pthread_mutex_t mu;       /* with cv: VS_DONE of a VS_AHEAD slot */
	pthread_cond_t cv;
	struct arena why;         /* the helper's reasons */
};

#define WHY_LEN 256

static void ahead_free(struct build *b);

static void vol_ahead_run(struct ahead *a)
{
	const struct build *b = a->b;
	struct vol_in *vin = NULL;
	size_t cap = 0;
	for (size_t i = a->nvs; i-- > 0;) {
		struct vol_slot *s = &a->vs[i];
		int todo = VS_TODO;
		if (__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE) ||
		    !__atomic_compare_exchange_n(&s->state, &todo, VS_AHEAD, 0, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE))
			break;
		char why[WHY_LEN] = "";
		int isvol;
		if (s->n > cap) {
			free(vin);
			cap = s->n;
			vin = malloc(cap * sizeof(*vin));
		}
		if (!vin) {
			cap = 0;
			isvol = -ENOMEM;
		} else {
			for (size_t k = 0; k < s->n; k++)
				vin[k] = vol_in_of(&b->v[s->a + k]);
			isvol = volreport_check(b->ix, vin, s->n, why, sizeof(why));
		}
		char *w = NULL;
		if (isvol == 0 && (w = arena_alloc(&a->why, strlen(why) + 1, 16384)))
			memcpy(w, why, strlen(why) + 1);
		pthread_mutex_lock(&a->mu);
		s->isvol = isvol == 0 && !w ? -ENOMEM : isvol;
		s->why = w;
		__atomic_store_n(&s->state, VS_DONE, __ATOMIC_RELEASE);
		pthread_cond_broadcast(&a->cv);
		pthread_mutex_unlock(&a->mu);
	}
	free(vin);
}

/* H1: take chunks until none is left (either thread) */
static void pick_run(struct ahead *a)
{
	const struct build *b = a->b;
	for (;;) {
		size_t c = __atomic_fetch_add(&a->pick_next, 1, __ATOMIC_RELAXED);
		if (c >= a->npick)
			break;
		size_t lo = c * a->chunk, hi = lo + a->chunk < b->n ? lo + a->chunk : b->n;
		a->pick_rc[c] = anon_pick_range(b, NULL, NULL, lo, hi, a->ord + lo, &a->pick_n[c],
						&a->pick_excl[c]);
	}
}

static void *ahead_main(void *arg)
{
	struct ahead *a = arg;
	vol_ahead_run(a);
	if (a->anon)
		pick_run(a);
	store_warm_go(a->b->ix->warm);   /* S4: this core is idle from here on */
	return NULL;
}

/* H2's slots: the series of patients/ (the runs of lv_series' parts) */
static int vol_slots(struct ahead *a)
{
	struct series_run *r;
	size_t nr;
	if (series_runs(a->b, &r, &nr) || !(a->vs = calloc(nr ? nr : 1, sizeof(*a->vs)))) {
		free(r);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nr; i++)
		a->vs[i] = (struct vol_slot){ .a = r[i].a, .n = r[i].e - r[i].a, .state = VS_TODO };
	a->nvs = nr;
	free(r);
	return 0;
}

/* views has a view built by fn */
static int views_have(const struct view *const *views,
		      int (*fn)(struct tree_builder *, const struct view *, struct view_top *))
{
	for (size_t i = 0; views && views[i]; i++)
		if (views[i]->build == fn)
			return 1;
	return 0;
}

/* Start the helper when it has work: anon/ is among views (H1), or
 * patients/ is and volumes are served (H2). b->ahead stays NULL when not
 * (or out of memory): do_anon and do_series then do it all in line. */
static void ahead_start(struct build *b, const struct view *const *views)
{
	int anon = views_have(views, tree_anon);
	int vol = views_have(views, tree_patients) &&
		  (b->ix->opts.kinds & (1u << KIND_VOLUME_NII | 1u << KIND_VOLUME_NPY));
	struct ahead *a = (anon || vol) && b->n ? calloc(1, sizeof(*a)) : NULL;
	if (!a)
		return;
	const char *knob = getenv("DICOMFS_TREE_AHEAD");
	a->b = b;   /* a->why: calloc()ed, empty */
	a->anon = anon;
	a->all = knob && strcmp(knob, "all") == 0;
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->chunk = a->all ? 4 : PICK_CHUNK;
	a->npick = anon ? (b->n + a->chunk - 1) / a->chunk : 0;
	if ((anon && (!(a->ord = malloc(b->n * sizeof(*a->ord))) ||
		      !(a->pick_n = calloc(a->npick, sizeof(*a->pick_n))) ||
		      !(a->pick_rc = calloc(a->npick, sizeof(*a->pick_rc))) ||
		      !(a->pick_excl = calloc(a->npick, sizeof(*a->pick_excl))))) ||
	    (vol && vol_slots(a))) {
		a->anon = 0;   /* nothing to join: free */
		b->ahead = a;
		ahead_free(b);
		return;
	}
	if (pthread_create(&a->th, NULL, ahead_main, a)) {
		b->ahead = a;
		ahead_free(b);
		return;
	}
	a->running = 1;
	b->ahead = a;
}

/* Stop H2 and wait for the helper: H1's ord (*ord, n) and status; NULL
 * *ord when it did not pick (anon/ not a view, or joined before). */
static int ahead_join(struct build *b, size_t **ord, size_t *n)
{
	struct ahead *a = b->ahead;
	*ord = NULL;
	if (!a || !a->running)
		return 0;
	__atomic_store_n(&a->stop, 1, __ATOMIC_RELEASE);
	pthread_join(a->th, NULL);
	a->running = 0;
	if (!a->anon)
		return 0;
	/* the chunks' picks, in order: each ord part moves down (never up) */
	int rc = 0;
	size_t w = 0;
	for (size_t c = 0; c < a->npick; c++) {
		if (a->pick_n[c])
			memmove(a->ord + w, a->ord + c * a->chunk, a->pick_n[c] * sizeof(*a->ord));
		w += a->pick_n[c];
		if (!rc)
			rc = a->pick_rc[c];
		if (!rc && a->pick_excl[c].len)
			rc = strbuf_add(&b->anon_excluded, a->pick_excl[c].buf, a->pick_excl[c].len);
	}
	*ord = a->ord;
	*n = w;
	a->ord = NULL;
	a->anon = 0;
	return rc;
}

/* do_anon before the helper is done with H1: take chunks too */
static void ahead_pick_help(struct build *b)
{
	struct ahead *a = b->ahead;
	if (a && a->running && a->anon)
		pick_run(a);
}

static void ahead_free(struct build *b)
{
	struct ahead *a = b->ahead;
	size_t *ord, n;
	if (!a)
		return;
	ahead_join(b, &ord, &n);
	free(ord);
	b->ahead = NULL;
	free(a->ord);
	free(a->vs);
	for (size_t c = 0; a->pick_excl && c < a->npick; c++)
		strbuf_release(&a->pick_excl[c]);
	free(a->pick_excl);
	free(a->pick_n);
	free(a->pick_rc);
	arena_release(&a->why);
	pthread_mutex_destroy(&a->mu);
	pthread_cond_destroy(&a->cv);
	free(a);
}

/*
 * patients/'s answer for series b->v[a, a + n) (ord NULL: in b->v order):
 * the helper's (H2), or made here; the reason line added to b->novol.
 * 1, 0 or a negative error, as volreport_series.
 */
static int series_volume(struct build *b, uint64_t series_id, const struct vol_in *vin,
			 size_t a, size_t n, int in_order)
{
	struct ahead *h = b->ahead;
	struct vol_slot *s = NULL;
	if (h && in_order) {
		while (h->vs_next < h->nvs && h->vs[h->vs_next].a < a)
			h->vs_next++;
		if (h->vs_next < h->nvs && h->vs[h->vs_next].a == a && h->vs[h->vs_next].n == n)
			s = &h->vs[h->vs_next];
	}
	int todo = VS_TODO;
	if (!s || (!h->all && __atomic_compare_exchange_n(&s->state, &todo, VS_MAIN, 0,
							  __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)))
		return volreport_series(b->ix, &b->novol, series_id, vin, n);
	if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != VS_DONE) {
		pthread_mutex_lock(&h->mu);
		while (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != VS_DONE)
			pthread_cond_wait(&h->cv, &h->mu);
		pthread_mutex_unlock(&h->mu);
	}
	if (s->isvol != 0)
		return s->isvol;
	return volreport_add(&b->novol, series_id, s->why);
}

/* anon/ (ID_ANON); returns the number of patients */
static int do_anon(struct build *b, struct agg *out)
{
	size_t *ord, n = 0;
	ahead_pick_help(b);
	int rc = ahead_join(b, &ord, &n);
	if (!ord && !rc) {
		ord = malloc((b->n ? b->n : 1) * sizeof(*ord));
		rc = ord ? anon_pick(b, NULL, NULL, ord, &n, &b->anon_excluded) : -ENOMEM;
	}
	if (!rc) {
		b->flags = NODE_F_ANON;
		rc = fill(b, &lv_anon, ord, ID_ANON, 0, n, out);
		b->flags = 0;
	}
	free(ord);
	return rc;
}

static unsigned char *stage_alloc(struct stage *st, size_t n);

/* in: the record d (source path k), copied (into arena when not NULL and
 * it fits a chunk, else malloc()ed; in_map: not copied, the caller knows
 * it stays, store.h tree_recs_in_map), its name fields parsed.
 * 0 or -ENOMEM (in is then empty). */
/* the patient key of a record without a PatientID: this, then the name */
static const char PKEY_NOID[2] = { 0, 'N' };

static int inst_fields(struct inst *in);

/* inst_load's first half: in's record and path, not its fields */
static int inst_place(struct inst *in, const MDB_val *k, const MDB_val *d,
		      const struct rec_head *h, struct stage *arena, int in_map)
{
	memset(in, 0, sizeof(*in));
	in->vol = -1;
	if (in_map) {
		in->rec = d->mv_data;
		in->rec_shared = 1;
		in->rel.s = k->mv_data;
	} else {
		if (arena && (in->rec = stage_alloc(arena, d->mv_size + k->mv_size)))
			in->rec_shared = 1;
		else
			in->rec = malloc(d->mv_size + k->mv_size);
		if (!in->rec)
			return -ENOMEM;
		memcpy(in->rec, d->mv_data, d->mv_size);
		memcpy((char *)in->rec + d->mv_size, k->mv_data, k->mv_size);
		in->rel.s = (char *)in->rec + d->mv_size;
	}
	in->rec_len = d->mv_size;
	in->h = *h;
	in->rel.l = k->mv_size;
	return 0;
}

static int inst_load(struct inst *in, const MDB_val *k, const MDB_val *d,
		     const struct rec_head *h, struct stage *arena, int in_map)
{
	int rc = inst_place(in, k, d, h, arena, in_map);
	return rc ? rc : inst_fields(in);
}

/* in's name fields, pkey and pix from its record (inst_load); touches
 * nothing but in (load runs it on two threads). 0 or -ENOMEM (in is then
 * empty). */
static int inst_fields(struct inst *in)
{
	/* one pass over the attributes */
	size_t pos = 0, l;
	uint32_t tag;
	char vr[2];
	const char *v;
	struct str none = { "", 0 };
	const char *pv[PX_ATTR_N] = { 0 };   /* px_info_from_attrs' */
	size_t pl[PX_ATTR_N] = { 0 };
	in->pname = in->pid = in->study = in->sdate = in->sdesc = in->acc = none;
	in->series = in->snum = in->modality = in->sedesc = in->sop = in->inum = none;
	in->burned = in->sop_class = (struct str){ NULL, 0 };
	while (rec_next(in->rec, in->rec_len, &pos, &tag, vr, &v, &l)) {
		struct str x = { v, l };
		if (tag == TAG_BURNED_IN && !in->burned.s)
			in->burned = x;   /* the first, as rec_attr finds it */
		if ((tag >> 16) == 0x0028) {
			for (size_t k = 0; k < PX_ATTR_N; k++)
				if (px_attr_tags[k] == tag && !pv[k]) {
					pv[k] = v;
					pl[k] = l;
				}
			continue;
		}
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
		case TAG_SOP_CLASS_UID:
			if (!in->sop_class.s)
				in->sop_class = x;
			break;
		}
	}
	if (in->pid.l) {
		in->pkey = in->pid;
	} else {
		/* no PatientID: group by name, in a separate key space */
		in->pkey_buf = malloc(in->pname.l + sizeof(PKEY_NOID));
		if (!in->pkey_buf) {
			if (!in->rec_shared)
				free(in->rec);
			memset(in, 0, sizeof(*in));
			return -ENOMEM;
		}
		memcpy(in->pkey_buf, PKEY_NOID, sizeof(PKEY_NOID));
		memcpy(in->pkey_buf + 2, in->pname.s, in->pname.l);
		in->pkey.s = in->pkey_buf;
		in->pkey.l = in->pname.l + 2;
	}
	/* .npy/.png (put_instances) and copy_whole ask it, in every view */
	struct px_info pi;
	in->pix = px_info_from_attrs(pv, pl, &in->h, &pi, NULL) == 0;
	return 0;
}

static void inst_free(struct inst *in)
{
	if (!in->rec_shared)
		free(in->rec);
	free(in->pkey_buf);
	free(in->sop_buf);
	free(in->an);
}

/*
 * A first build in parts (tree_build_parts, index.h I13): the OK records of
 * "files" fall in parts by a hash of their patient key, so a patient's
 * records are all in one part. hash[i]: the i-th record of "files" (cursor
 * order; the DB is not written while the parts are built), its patient's
 * hash with the low bit set, or 0 (not an OK record). The part being built:
 * the records whose hash is in [lo, hi].
 */
struct tree_part {
	uint64_t *hash;
	size_t n;
	uint64_t lo, hi;
	int defer_sources;        /* tree_update leaves sources/ to the last part */
};

/* whether record i of "files" is in the part being built (no parts: all) */
static int part_has(const struct tree_part *p, size_t i)
{
	return !p || (i < p->n && p->hash[i] >= p->lo && p->hash[i] <= p->hi);
}

/* the second half of load's fields (load_fields) */
struct fields_half {
	struct inst *v;
	size_t n;
	int rc;
};

static void *fields_main(void *arg)
{
	struct fields_half *f = arg;
	for (size_t i = 0; i < f->n && !f->rc; i++)
		f->rc = inst_fields(&f->v[i]);
	return NULL;
}

/* inst_fields of v[0, n): the second half on a thread of its own when
 * there is enough to share (the records are in the map and read only). */
static int load_fields(struct inst *v, size_t n)
{
	struct fields_half f = { v + n / 2, n - n / 2, 0 };
	pthread_t th;
	int started = n >= 2048 && !pthread_create(&th, NULL, fields_main, &f);
	size_t own = started ? n / 2 : n;
	int rc = 0;
	for (size_t i = 0; i < own && !rc; i++)
		rc = inst_fields(&v[i]);
	if (started) {
		pthread_join(th, NULL);
		if (!rc)
			rc = f.rc;
	}
	return rc;
}

/* the whole pages of the ranges [p, p + len) faulted in, writable, their
 * bytes left as they are (MADV_POPULATE_WRITE: another thread may be
 * writing them; a kernel without it: nothing) */
struct prefault {
	struct {
		void *p;
		size_t len;
	} r[3];
};

static void *prefault_main(void *arg)
{
#ifdef MADV_POPULATE_WRITE
	struct prefault *f = arg;
	for (size_t i = 0; i < sizeof(f->r) / sizeof(f->r[0]); i++) {
		uintptr_t pg = 4096, a = ((uintptr_t)f->r[i].p + pg - 1) & ~(pg - 1),
			  e = ((uintptr_t)f->r[i].p + f->r[i].len) & ~(pg - 1);
		if (f->r[i].p && e > a)
			madvise((void *)a, e - a, MADV_POPULATE_WRITE);
	}
#else
	(void)arg;
#endif
	return NULL;
}

static int load(struct build *b, uint64_t *skipped, uint64_t *errors)
{
	MDB_cursor *c;
	MDB_val k, d;
	size_t cap = 0;
	int in_map = b->ix->tree_recs_in_map;
	int rc = mdb_cursor_open(b->txn, b->ix->files, &c);
	if (rc)
		return dfs_from_mdb(rc);
	/* a full build knows how many there may be: the array at once (it
	 * never grows then: no realloc under the other thread), and its upper
	 * half's fresh pages faulted in by a second thread while this one
	 * fills the lower (a fresh page is dear on a VM: NOTES) */
	struct prefault pf = { 0 };
	pthread_t pth;
	int pstarted = 0;
	MDB_stat fst;
	if (!b->ix->part && !mdb_stat(b->txn, b->ix->files, &fst) && fst.ms_entries >= 4096 &&
	    (b->v = malloc(fst.ms_entries * sizeof(*b->v)))) {
		cap = fst.ms_entries;
		pf.r[0].len = cap * sizeof(*b->v) / 2;
		pf.r[0].p = (unsigned char *)b->v + cap * sizeof(*b->v) - pf.r[0].len;
		pstarted = !pthread_create(&pth, NULL, prefault_main, &pf);
	}
	size_t ri = 0;   /* the record's place in "files" (tree_part) */
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		struct rec_head h;
		ri++;
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
		if (!part_has(b->ix->part, ri - 1))
			continue;   /* another part's (tree_build_parts) */
		struct inst *nv = grow(b->v, b->n, &cap, sizeof(*nv), 1024);
		if (nv)
			b->v = nv;
		if (!nv) {
			rc = ENOMEM;
			break;
		}
		/* in the map: the fields after the loop (load_fields) */
		if (in_map ? inst_place(&nv[b->n], &k, &d, &h, NULL, 1)
			   : inst_load(&nv[b->n], &k, &d, &h, &b->recs, 0)) {
			rc = ENOMEM;
			break;
		}
		b->n++;
	}
	mdb_cursor_close(c);
	if (pstarted)
		pthread_join(pth, NULL);
	if (rc == ENOMEM)
		return -ENOMEM;
	if (rc != MDB_NOTFOUND)
		return dfs_from_mdb(rc);
	return in_map ? load_fields(b->v, b->n) : 0;
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
 * The copies of each SOP Instance UID among b->v, which the caller has put
 * in cmp_sop order (b->n updated; "dups"
 * TSV lines into dups, hidden copies counted in *ndup). The one place of
 * this policy: tree_update calls it on its subset too, which holds every
 * record of an SOP UID it touches and every copy of a shown conflict
 * (I11). Rules:
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
				inst_free(in);
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

/* I11: the SOP UID index's key of in ('s' + SOP UID + NUL + path) in *kb
 * (malloc()ed); its length, or 0 when out of memory */
static size_t sop_key(const struct inst *in, unsigned char **kb)
{
	size_t l = 2 + in->sop.l + in->rel.l;
	if (!(*kb = malloc(l)))
		return 0;
	(*kb)[0] = 's';
	memcpy(*kb + 1, in->sop.s, in->sop.l);
	(*kb)[1 + in->sop.l] = 0;
	memcpy(*kb + 2 + in->sop.l, in->rel.s, in->rel.l);
	return l;
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Store TSV text (lines ending in '\n') under meta key: the lines of old
 * (oldlen bytes) drop() does not say yes to (drop NULL: all), plus those
 * of add, sorted bytewise (I11: the order a full build and an update
 * agree on).
 */
static int tsv_store(MDB_txn *txn, MDB_dbi meta, const char *key, const char *old,
		     size_t oldlen, int (*drop)(void *ctx, const char *line, size_t len),
		     void *ctx, const struct strbuf *add, uint64_t *nlines)
{
	struct strbuf all = STRBUF_INIT, out = STRBUF_INIT;
	char **lines = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;
	for (size_t p = 0; p < oldlen;) {
		const char *nl = memchr(old + p, '\n', oldlen - p);
		size_t e = nl ? (size_t)(nl - old) + 1 : oldlen;
		if (!drop || !drop(ctx, old + p, e - p))
			strbuf_add(&all, old + p, e - p);
		p = e;
	}
	strbuf_add(&all, strbuf_str(add), add->len);
	if (strbuf_error(&all)) {
		rc = -ENOMEM;
		goto out;
	}
	for (char *p = all.buf, *end = all.buf + all.len; p && p < end;) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char **nv = grow(lines, n, &cap, sizeof(*nv), 64);
		if (!nv) {
			rc = -ENOMEM;
			goto out;
		}
		lines = nv;
		lines[n++] = p;
		if (nl)
			*nl = 0;
		p = nl ? nl + 1 : end;
	}
	if (n)
		qsort(lines, n, sizeof(*lines), cmp_line);
	if (nlines)
		*nlines = n;
	for (size_t i = 0; i < n; i++) {
		strbuf_addstr(&out, lines[i]);
		strbuf_addch(&out, '\n');
	}
	rc = strbuf_error(&out);
	if (!rc)
		rc = meta_put_str(txn, meta, key, strbuf_str(&out), out.len);
out:
	free(lines);
	strbuf_release(&all);
	strbuf_release(&out);
	return rc;
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

/* A first build's tree DBs are committed one by one (tree_build_split):
 * LMDB keeps a transaction's dirty pages in memory until its commit, so
 * the peak holds one DB's pages, not all of them (its freed pages are
 * used again by the next). */
static int split_commit(struct build *b, MDB_txn **txnp)
{
	int rc = dfs_from_mdb(store_commit(b->ix, *txnp));
	*txnp = NULL;
	if (!rc)
		rc = dfs_from_mdb(mdb_txn_begin(b->ix->env, NULL, 0, txnp));
	b->txn = *txnp;
	return rc;
}

static int tree_build_txn(struct index *ix, MDB_txn **txnp, uint64_t *next_id, int split);

int tree_build(struct index *ix, MDB_txn *txn, uint64_t *next_id)
{
	return tree_build_txn(ix, &txn, next_id, 0);
}

static int tree_build_parts(struct index *ix, MDB_txn **txnp, uint64_t *next_id,
			    size_t per_part);
static size_t tree_part_size(const struct index *ix);
static int views_known(const struct view *const *views, int has[3]);
static void *sources_room(struct build *b, size_t n, size_t *len);


int tree_build_split(struct index *ix, MDB_txn **txnp, uint64_t *next_id)
{
	/* I13: more records than the build's memory holds: in parts */
	size_t per = tree_part_size(ix);
	MDB_stat ms;
	int has[3];
	const char *knob = getenv("DICOMFS_TREE_FULL");
	ix->stats.tree_parts = 1;
	if (!mdb_stat(*txnp, ix->files, &ms) && ms.ms_entries > per &&
	    !(knob && *knob && strcmp(knob, "0")) && views_known(ix->opts.views, has))
		return tree_build_parts(ix, txnp, next_id, per);
	return tree_build_txn(ix, txnp, next_id, 1);
}

static int tree_build_txn(struct index *ix, MDB_txn **txnp, uint64_t *next_id, int split)
{
	MDB_txn *txn = *txnp;
	struct build b = { .ix = ix, .txn = txn, .next_id = next_id };
	struct strbuf dups = STRBUF_INIT;
	uint64_t skipped = 0, errors = 0, ndup = 0;
	struct agg all = { 0 };
	MDB_stat fs;
	int fs_ok = !mdb_stat(txn, ix->files, &fs);
	int rc;

	/* S4: the tree's new pages faulted into the page cache meanwhile, on
	 * what CPU the build leaves idle (a first build: nobody reads yet) */
	if (split && fs_ok)
		store_warm_start(ix, fs.ms_entries * (size_t)STORE_WARM_PER_RECORD);
	rc = load(&b, &skipped, &errors);
	if (rc)
		goto free_insts;
	store_warm_go(ix->warm);   /* S4: one core idle until the helper */
	if (b.n)
		qsort(b.v, b.n, sizeof(*b.v), cmp_sop);
	/* I11: every OK record in the SOP UID index, losers too */
	for (size_t i = 0; i < b.n && !rc; i++) {
		const struct inst *in = &b.v[i];
		unsigned char sb[512];
		size_t kl = 2 + in->sop.l + in->rel.l;
		if (kl > sizeof(sb)) {
			unsigned char *kb;
			kl = sop_key(in, &kb);
			rc = kl ? stage_put(&b.aux, kb, kl, NULL, 0, NULL, 0, NULL, 0) : -ENOMEM;
			free(kb);
			continue;
		}
		sb[0] = 's';
		memcpy(sb + 1, in->sop.s, in->sop.l);
		sb[1 + in->sop.l] = 0;
		memcpy(sb + 2 + in->sop.l, in->rel.s, in->rel.l);
		rc = stage_put(&b.aux, sb, kl, NULL, 0, NULL, 0, NULL, 0);
	}
	if (rc)
		goto free_insts;
	/* copies of a SOP Instance UID: duplicates hidden, conflicts shown */
	if ((rc = dedup_sop(&b, &dups, &ndup)))
		goto free_insts;
	if (b.n)
		qsort(b.v, b.n, sizeof(*b.v), cmp_tree);

	MDB_dbi tree[] = { ix->nodes, ix->names, ix->dirents, ix->aux };
	for (size_t i = 0; i < 4; i++)
		if ((rc = dfs_from_mdb(mdb_drop(txn, tree[i], 0))))
			goto free_insts;

	archive_attrs(&b, &all);
	/* room for what is staged, known roughly: no copy of the arrays as
	 * they grow (pages not written are never touched) */
	size_t est = b.n * 16 + 64;
	if ((b.dirents.v = malloc(est * sizeof(*b.dirents.v))))
		b.dirents.cap = est;
	if ((b.nodes.v = malloc(est / 4 * sizeof(*b.nodes.v))))
		b.nodes.cap = est / 4;
	/* what the views will likely fill of them (about 4.3 dirents and 2.1
	 * nodes an instance, index format 13) faulted in on another thread */
	struct prefault pf = { { { b.dirents.v, b.dirents.v ? (b.n * 9 / 2) * sizeof(*b.dirents.v) : 0 },
				 { b.nodes.v, b.nodes.v ? (b.n * 9 / 4) * sizeof(*b.nodes.v) : 0 },
				 { NULL, 0 } } };
	if (fs_ok && !ix->part && views_have(ix->opts.views, tree_sources))   /* I13: a part's memory is bounded */
		pf.r[2].p = sources_room(&b, fs.ms_entries, &pf.r[2].len);
	pthread_t pth;
	int pstarted = b.n >= 4096 && !pthread_create(&pth, NULL, prefault_main, &pf);
	store_warm_pause(ix->warm);   /* S4: the helper's core */
	ahead_start(&b, ix->opts.views);
	if (!b.ahead)
		store_warm_go(ix->warm);   /* S4: no helper to wait for */
	rc = build_views(&b, ix->opts.views, &all);
	ahead_free(&b);   /* before the instances it reads are freed */
	if (pstarted)
		pthread_join(pth, NULL);
	if (rc)
		goto free_insts;
	/* the stages are all that is written now: what is no longer needed
	 * is freed before each DB's pages are allocated (the heap's memory is
	 * used again instead of fresh pages) */
	size_t ninst = b.n;
	for (size_t i = 0; i < b.n; i++)
		inst_free(&b.v[i]);
	free(b.v);
	b.v = NULL;
	b.n = 0;
	stage_release(&b.recs);
	if ((rc = stage_flush(&b.nodes, txn, ix->nodes, MDB_APPEND)))
		goto free_insts;
	stage_release(&b.nodes);
	if (split && (rc = split_commit(&b, txnp)))
		goto free_insts;
	txn = *txnp;
	if ((rc = names_flush(&b.dirents, txn, ix->names, MDB_APPEND)))
		goto free_insts;
	if (split && (rc = split_commit(&b, txnp)))
		goto free_insts;
	txn = *txnp;
	if ((rc = stage_flush_by(&b.dirents, txn, ix->dirents, MDB_APPEND, 1)))
		goto free_insts;
	stage_release(&b.dirents);
	if (split && (rc = split_commit(&b, txnp)))
		goto free_insts;
	txn = *txnp;
	if ((rc = stage_flush(&b.aux, txn, ix->aux, MDB_APPEND)))
		goto free_insts;
	if ((rc = tsv_store(txn, ix->meta, "dups", NULL, 0, NULL, NULL, &dups, NULL)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_instances", ninst)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_patients", b.patients)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_studies", b.studies)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_series", b.series)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_skipped", skipped)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_errors", errors)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_duplicates", ndup)) ||
	    (rc = tsv_store(txn, ix->meta, "novolume", NULL, 0, NULL, NULL, &b.novol, NULL)) ||
	    (rc = tsv_store(txn, ix->meta, "anon_excluded", NULL, 0, NULL, NULL,
			    &b.anon_excluded, NULL)))
		goto free_insts;
	ix->stats.instances = ninst;
	ix->stats.patients = b.patients;
	ix->stats.studies = b.studies;
	ix->stats.series = b.series;
	ix->stats.skipped = skipped;
	ix->stats.errors = errors;
	ix->stats.duplicates = ndup;
free_insts:
	ahead_free(&b);   /* joined: the views are done or failed */
	for (size_t i = 0; i < b.n; i++)
		inst_free(&b.v[i]);
	free(b.v);
	stage_release(&b.nodes);
	stage_release(&b.names);
	stage_release(&b.dirents);
	stage_release(&b.aux);
	stage_release(&b.recs);
	free(b.src_v);
	strbuf_release(&dups);
	strbuf_release(&b.novol);
	strbuf_release(&b.anon_excluded);
	return rc;
}

/* ---- sources/<relative path>: every source file (view_sources.c) ---- */

static int del_prefix(MDB_txn *txn, MDB_dbi dbi, uint64_t id);
static int del_key(MDB_txn *txn, MDB_dbi dbi, const void *kb, size_t kl);


struct srcent {
	char *rel;            /* the record's key (malloc()ed, or in the map:
			       * srcbuild.in_map) */
	size_t l;
	struct rec_head h;
};

/* Room for n entries of sources_fill, kept in b->src_v; its length in
 * *len (0 when out of memory: sources_fill then grows its own). */
static void *sources_room(struct build *b, size_t n, size_t *len)
{
	*len = 0;
	if (n < 4096 || !(b->src_v = malloc(n * sizeof(*b->src_v))))
		return NULL;
	b->src_cap = n;
	*len = n * sizeof(*b->src_v);
	return b->src_v;
}

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
	int rc = key_make(b, kb, l + 1, id);
	free(kb);
	return rc;
}

struct srcbuild {
	struct build *b;
	struct srcent *v;
	uint64_t *shown;      /* ids with an instance node (patients/), sorted */
	size_t nshown;
	int in_map;           /* store.h tree_recs_in_map: keys not copied */
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

/*
 * sources/'s listing below ID_SOURCES (top: its counts). The files that
 * have an instance node (patients/) share it; the others get one of their
 * own (NODE_F_SOURCE). Which have one: b->v's (a full build), or, after
 * an update's nodes are written (from_nodes), those whose id has a node
 * in the transaction (I11).
 */
static int sources_fill(struct build *b, int from_nodes, struct view_top *top)
{
	/* b->src_v stays b's (tree_build_txn frees it after the thread that
	 * faults it in has been joined); it holds every record: never grown */
	struct srcbuild sb = { b, b->src_v, NULL, 0, b->ix->tree_recs_in_map };
	size_t n = 0, cap = b->src_v ? b->src_cap : 0, scap = 0;
	MDB_cursor *c;
	MDB_val k, d;
	int rc;
	if (!from_nodes) {
		sb.shown = malloc((b->n ? b->n : 1) * sizeof(uint64_t));
		if (!sb.shown)
			return -ENOMEM;
		for (size_t i = 0; i < b->n; i++)
			sb.shown[sb.nshown++] = b->v[i].h.id;
	}
	if ((rc = dfs_from_mdb(mdb_cursor_open(b->txn, b->ix->files, &c))))
		goto out;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		struct rec_head h;
		if (rec_head_get(d.mv_data, d.mv_size, &h) || !h.id || !k.mv_size)
			continue;
		if (from_nodes && h.status == REC_OK) {
			unsigned char ib[8];
			be64_put(ib, h.id);
			MDB_val ik = { 8, ib }, id;
			int g = mdb_get(b->txn, b->ix->nodes, &ik, &id);
			if (g && g != MDB_NOTFOUND) {
				rc = g;
				break;
			}
			if (!g) {
				uint64_t *ns = grow(sb.shown, sb.nshown, &scap, sizeof(*ns), 1024);
				if (!ns) {
					rc = ENOMEM;
					break;
				}
				sb.shown = ns;
				sb.shown[sb.nshown++] = h.id;
			}
		}
		struct srcent *nv = grow(sb.v, n, &cap, sizeof(*nv), 1024);
		if (!nv) {
			rc = ENOMEM;
			break;
		}
		sb.v = nv;
		if (sb.in_map) {
			sb.v[n].rel = k.mv_data;
		} else {
			if (!(sb.v[n].rel = malloc(k.mv_size))) {
				rc = ENOMEM;
				break;
			}
			memcpy(sb.v[n].rel, k.mv_data, k.mv_size);
		}
		sb.v[n].l = k.mv_size;
		sb.v[n].h = h;
		n++;
	}
	mdb_cursor_close(c);
	rc = rc == MDB_NOTFOUND ? 0 : rc == ENOMEM ? -ENOMEM : dfs_from_mdb(rc);
	if (!rc && sb.nshown)
		qsort(sb.shown, sb.nshown, sizeof(uint64_t), cmp_u64);
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
		if (!sb.in_map)
			free(sb.v[i].rel);
	if (sb.v != b->src_v) {   /* sb's own, or b's grown after all (realloc) */
		b->src_v = NULL;
		free(sb.v);
	}
	free(sb.shown);
	return rc;
}

int tree_sources(struct tree_builder *tb, const struct view *v, struct view_top *top)
{
	if (v->id != ID_SOURCES)
		return -EINVAL;
	if (!(tb->b->ix->opts.kinds & (1u << KIND_SOURCE)))
		return 0;
	if (tb->b->ix->part && tb->b->ix->part->defer_sources)
		return 0;   /* I13: the last part lists sources/ (sources_update) */
	return sources_fill(tb->b, 0, top);
}

/*
 * I11 for sources/: the old listing of directory dir (ID_SOURCES or a
 * folder below it) goes, with the nodes of its folders and of its files
 * that are no instance of patients/ (NODE_F_SOURCE); the folders' ids go
 * to touched (the kernel is told).
 */
static int sources_drop(struct build *b, uint64_t dir, struct id_list *touched)
{
	MDB_cursor *c;
	unsigned char kb[8];
	be64_put(kb, dir);
	MDB_val k = { 8, kb }, d;
	uint64_t *sub = NULL;
	size_t nsub = 0, cap = 0;
	int rc = dfs_from_mdb(mdb_cursor_open(b->txn, b->ix->dirents, &c)), m;
	if (rc)
		return rc;
	for (m = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	     m == 0 && k.mv_size >= 8 && memcmp(k.mv_data, kb, 8) == 0;
	     m = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		uint64_t ino;
		if (d.mv_size < 8)
			continue;
		memcpy(&ino, d.mv_data, 8);
		if (ino_kind(ino) != KIND_DIR && ino_kind(ino) != KIND_SOURCE)
			continue;
		uint64_t *nv = grow(sub, nsub, &cap, sizeof(*nv), 64);
		if (!nv) {
			m = ENOMEM;
			break;
		}
		sub = nv;
		sub[nsub++] = ino;
	}
	mdb_cursor_close(c);
	rc = m == 0 || m == MDB_NOTFOUND ? 0 : m == ENOMEM ? -ENOMEM : dfs_from_mdb(m);
	for (size_t i = 0; i < nsub && !rc; i++) {
		uint64_t id = ino_id(sub[i]);
		unsigned char ib[8];
		be64_put(ib, id);
		if (ino_kind(sub[i]) == KIND_DIR) {
			if (!(rc = sources_drop(b, id, touched)))
				rc = del_key(b->txn, b->ix->nodes, ib, 8);
			continue;
		}
		MDB_val nk = { 8, ib }, nd;
		struct node_rec r;
		int g = mdb_get(b->txn, b->ix->nodes, &nk, &nd);
		if (g == 0 && nd.mv_size >= sizeof(r)) {
			memcpy(&r, nd.mv_data, sizeof(r));
			if (r.flags & NODE_F_SOURCE)
				rc = del_key(b->txn, b->ix->nodes, ib, 8);
		} else if (g && g != MDB_NOTFOUND) {
			rc = dfs_from_mdb(g);
		}
	}
	free(sub);
	if (!rc && !(rc = del_prefix(b->txn, b->ix->dirents, dir)))
		rc = del_prefix(b->txn, b->ix->names, dir);
	if (!rc && dir != ID_SOURCES)
		rc = u64_push(touched, dir);
	return rc;
}

/*
 * I11: after an update's nodes are written, sources/ is listed anew
 * (whole: a cursor over "files", a node lookup and a dirent per file) and
 * its top node gets its counts and the archive's attributes all.
 */
static int sources_update(struct build *b, const struct view *v, const struct agg *all,
			  struct id_list *touched)
{
	struct view_top top = { 0, 0 };
	int rc;
	if (!(b->ix->opts.kinds & (1u << KIND_SOURCE)))
		return 0;
	if ((rc = sources_drop(b, ID_SOURCES, touched)) ||
	    (rc = sources_fill(b, 1, &top)))
		return rc;
	b->flags = 0;
	if ((rc = put_node(b, ID_SOURCES, NODE_TOP, ID_ROOT, v->name, all, 2 + top.nsubdirs,
			   top.nentries, NULL, NULL)))
		return rc;
	return u64_push(touched, ID_SOURCES);
}

/* ---- the incremental update (I11) ---- */

/* strings that point into records kept for the whole update */
struct strset {
	struct str *v;
	size_t n, cap;
};

static int set_add(struct strset *s, struct str x)
{
	struct str *nv = grow(s->v, s->n, &s->cap, sizeof(*nv), 64);
	if (!nv)
		return -ENOMEM;
	s->v = nv;
	s->v[s->n++] = x;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return str_cmp(*(const struct str *)a, *(const struct str *)b);
}

static void set_finish(struct strset *s)
{
	size_t w = 0;
	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), cmp_str);
	for (size_t i = 0; i < s->n; i++)
		if (!w || str_cmp(s->v[w - 1], s->v[i]))
			s->v[w++] = s->v[i];
	s->n = w;
}

static int set_has(const struct strset *s, struct str x)
{
	return s->n && bsearch(&x, s->v, s->n, sizeof(*s->v), cmp_str) != NULL;
}

/* anon_pick's filter: in's patient is in the set ctx */
static int in_patients(const void *ctx, const struct inst *in)
{
	return set_has(ctx, in->pkey);
}

static void ids_finish(struct id_list *l)
{
	size_t w = 0;
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_u64);
	for (size_t i = 0; i < l->n; i++)
		if (!w || l->v[w - 1] != l->v[i])
			l->v[w++] = l->v[i];
	l->n = w;
}

static int ids_has(const struct id_list *l, uint64_t x)
{
	return l->n && bsearch(&x, l->v, l->n, sizeof(*l->v), cmp_u64) != NULL;
}

/* An update's working set. */
struct upd {
	struct build b;           /* b.v: the records loaded (L) */
	size_t cap;
	struct inst *keep;        /* records only their strings are needed of */
	size_t nkeep, ckeep;
	struct strset P, U, S;    /* patient keys, study UIDs, SOP UIDs touched */
	struct id_list dirs_old, series_old, inst_old, ids_top[3];
	char **hot[3];            /* base names leaving or joining a top */
	size_t nhot[3], chot[3];
	char **drop_paths;        /* TSV-clean paths whose lines are redone */
	size_t ndrop, cdrop;
	char **drop_dups;
	size_t nddup, cddup;
	uint64_t ninst;           /* patients/'s instances (top_listing) */
	/* a part of a first build (I13) whose records were committed before
	 * (store.h tree_recs_in_map): "files" is not written in this txn, so
	 * records are read in place, their keys found by the cursor fc */
	int in_map;
	MDB_cursor *fc;
};

static int keep_add(struct upd *u, const MDB_val *k, const MDB_val *d,
		    const struct rec_head *h, struct inst **out)
{
	struct inst *nv = grow(u->keep, u->nkeep, &u->ckeep, sizeof(*nv), 64);
	if (!nv)
		return -ENOMEM;
	u->keep = nv;
	int rc = inst_load(&nv[u->nkeep], k, d, h, NULL, u->in_map);
	if (rc)
		return rc;
	*out = &nv[u->nkeep];
	/* read in place, only its own buffers need keeping: the slot is
	 * used again by the next (the caller is done with it by then) */
	if (!u->in_map || nv[u->nkeep].pkey_buf)
		u->nkeep++;
	return 0;
}

static int load_add(struct upd *u, const MDB_val *k, const MDB_val *d,
		    const struct rec_head *h, struct inst **out)
{
	struct inst *nv = grow(u->b.v, u->b.n, &u->cap, sizeof(*nv), 256);
	if (!nv)
		return -ENOMEM;
	u->b.v = nv;
	int rc = inst_load(&nv[u->b.n], k, d, h, NULL, u->in_map);
	if (rc)
		return rc;
	if (out)
		*out = &nv[u->b.n];
	u->b.n++;
	return 0;
}

/* the OK record of path k in "files" now: 0 (*h), 1 none / not OK */
static int files_get(struct upd *u, MDB_val *k, MDB_val *d, struct rec_head *h)
{
	int rc;
	if (u->in_map) {
		/* *k then points at the key in the map, as inst_load keeps it */
		if (!u->fc && (rc = mdb_cursor_open(u->b.txn, u->b.ix->files, &u->fc)))
			return dfs_from_mdb(rc);
		rc = mdb_cursor_get(u->fc, k, d, MDB_SET_KEY);
	} else {
		rc = mdb_get(u->b.txn, u->b.ix->files, k, d);
	}
	if (rc == MDB_NOTFOUND)
		return 1;
	if (rc)
		return dfs_from_mdb(rc);
	return rec_head_get(d->mv_data, d->mv_size, h) || h->status != REC_OK ? 1 : 0;
}

static int strv_add(char ***v, size_t *n, size_t *cap, const char *s, size_t l)
{
	char **nv = grow(*v, *n, cap, sizeof(*nv), 64);
	if (!nv)
		return -ENOMEM;
	*v = nv;
	if (!(nv[*n] = strndup(s, l)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* path as the first field of a TSV line (strbuf_add_tsv2) */
static int drop_add(char ***v, size_t *n, size_t *cap, struct str rel)
{
	struct strbuf t = STRBUF_INIT;
	char path[4096];
	snprintf(path, sizeof(path), "%.*s", (int)rel.l, rel.s);
	strbuf_add_tsv2(&t, path, "");
	int rc = strbuf_error(&t);
	if (!rc)
		rc = strv_add(v, n, cap, strbuf_str(&t), strcspn(strbuf_str(&t), "\t"));
	strbuf_release(&t);
	return rc;
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* tsv_store's drop: the line's first field is in the sorted list ctx */
struct dropv {
	char **v;
	size_t n;
};

static int drop_by_path(void *ctx, const char *line, size_t len)
{
	const struct dropv *d = ctx;
	const char *tab = memchr(line, '\t', len);
	char key[4200];
	size_t l = tab ? (size_t)(tab - line) : len;
	if (!d->n || l >= sizeof(key))
		return 0;
	memcpy(key, line, l);
	key[l] = 0;
	const char *kp = key;
	return bsearch(&kp, d->v, d->n, sizeof(*d->v), cmp_cstr) != NULL;
}

/* volreport's lines: "<series id hex>\t..." of a series in ctx */
static int drop_by_series(void *ctx, const char *line, size_t len)
{
	char hex[17];
	if (len < 17 || line[16] != '\t')
		return 0;
	memcpy(hex, line, 16);
	hex[16] = 0;
	return ids_has(ctx, strtoull(hex, NULL, 16));
}

/* delete every key of dbi that starts with the 8 bytes of id */
static int del_prefix(MDB_txn *txn, MDB_dbi dbi, uint64_t id)
{
	MDB_cursor *c;
	unsigned char kb[8];
	be64_put(kb, id);
	MDB_val k = { 8, kb }, d;
	int rc = mdb_cursor_open(txn, dbi, &c);
	if (rc)
		return dfs_from_mdb(rc);
	rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size >= 8 && memcmp(k.mv_data, kb, 8) == 0) {
		if ((rc = mdb_cursor_del(c, 0)))
			break;
		rc = mdb_cursor_get(c, &k, &d, MDB_GET_CURRENT);
		if (rc)
			rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : dfs_from_mdb(rc);
}

static int del_key(MDB_txn *txn, MDB_dbi dbi, const void *kb, size_t kl)
{
	MDB_val k = { kl, (void *)kb };
	int rc = mdb_del(txn, dbi, &k, NULL);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : dfs_from_mdb(rc);
}

/*
 * Directory dir of the old tree and everything below it: its id and those
 * of the directories below into u->dirs_old, series (if series) into
 * u->series_old, the instances listed in series directories into inst.
 */
static int walk_old(struct upd *u, uint64_t dir, int series, struct id_list *inst)
{
	unsigned char kb[8];
	be64_put(kb, dir);
	MDB_val k = { 8, kb }, d;
	struct node_rec r;
	int rc = mdb_get(u->b.txn, u->b.ix->nodes, &k, &d);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return dfs_from_mdb(rc);
	if (d.mv_size < sizeof(r))
		return -EIO;
	memcpy(&r, d.mv_data, sizeof(r));
	if ((rc = u64_push(&u->dirs_old, dir)))
		return rc;
	if (series && r.type == NODE_SERIES && (rc = u64_push(&u->series_old, dir)))
		return rc;
	struct id_list sub = { 0 };
	MDB_cursor *c;
	if ((rc = mdb_cursor_open(u->b.txn, u->b.ix->dirents, &c)))
		return dfs_from_mdb(rc);
	for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	     rc == 0 && k.mv_size >= 8 && memcmp(k.mv_data, kb, 8) == 0;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		uint64_t ino;
		if (d.mv_size < 8)
			continue;
		memcpy(&ino, d.mv_data, 8);
		uint64_t id = ino_id(ino);
		int e = 0;
		if (ino_kind(ino) == KIND_DIR)
			e = u64_push(&sub, id);
		else if (r.type == NODE_SERIES && id != dir &&
			 (!inst->n || inst->v[inst->n - 1] != id))
			e = u64_push(inst, id);
		if (e) {
			rc = e;
			break;
		}
	}
	mdb_cursor_close(c);
	rc = rc == 0 || rc == MDB_NOTFOUND ? 0 : rc < 0 ? rc : dfs_from_mdb(rc);
	for (size_t i = 0; i < sub.n && !rc; i++)
		rc = walk_old(u, sub.v[i], series, inst);
	free(sub.v);
	return rc;
}

/* the hierarchy tops: index by id */
static const uint64_t top_ids[3] = { ID_PATIENTS, ID_UIDS, ID_ANON };

/* Group key part of top t's old child: forget its aux entry (its base
 * name is hot) and walk its old subtree. */
static int old_group(struct upd *u, int t, char letter, struct str part,
		     struct id_list *inst)
{
	uint64_t id = 0;
	int rc = key_find(&u->b, letter, part, &id);
	if (rc)
		return rc < 0 ? rc : 0;
	unsigned char k[17];
	k[0] = 't';
	be64_put(k + 1, top_ids[t]);
	be64_put(k + 9, id);
	MDB_val kv = { sizeof(k), k }, d;
	rc = mdb_get(u->b.txn, u->b.ix->aux, &kv, &d);
	if (rc == 0 && d.mv_size >= sizeof(struct child)) {
		struct child c;
		memcpy(&c, d.mv_data, sizeof(c));
		if (sizeof(c) + c.base_len <= d.mv_size &&
		    (rc = strv_add(&u->hot[t], &u->nhot[t], &u->chot[t],
				   (const char *)d.mv_data + sizeof(c), c.base_len)))
			return rc;
		if ((rc = del_key(u->b.txn, u->b.ix->aux, k, sizeof(k))))
			return rc;
	} else if (rc && rc != MDB_NOTFOUND) {
		return dfs_from_mdb(rc);
	}
	if ((rc = u64_push(&u->ids_top[t], id)))
		return rc;
	return walk_old(u, id, t == 0, inst);
}

/* A new child of top t: the run [a, e) of ord, of top level lv. */
static int new_group(struct upd *u, int t, const struct level *lv, const size_t *ord,
		     size_t a, size_t e)
{
	struct build *b = &u->b;
	struct sib s;
	struct child c;
	struct agg g = { 0 };
	memset(&s, 0, sizeof(s));
	s.a = a;
	s.b = e;
	s.uid = inst_str(inst_at(b, ord, a), lv->runs);
	int rc = lv->name(b, ord, &s, 1);
	if (!rc)
		rc = child_fill(b, lv->child, ord, &s, &c, &g);
	if (!rc)
		rc = aux_put_child(b, top_ids[t], &c, s.name, s.uid);
	if (!rc)
		rc = strv_add(&u->hot[t], &u->nhot[t], &u->chot[t], s.name, strlen(s.name));
	return rc;
}

struct topent {
	struct child c;
	char *base, *uid;
};

/*
 * Rewrite the listing of top t (child level type `type`) from its aux
 * entries (I11): every name made unique again, nodes rewritten for the
 * children whose name may have changed; *all (patients/ only) merges
 * every child's aggregate, and the counts go to ix->stats.
 */
static int top_listing(struct upd *u, int t, uint8_t type, struct agg *all, uint32_t *nout)
{
	struct build *b = &u->b;
	uint64_t top = top_ids[t];
	unsigned char kb[9];
	kb[0] = 't';
	be64_put(kb + 1, top);
	MDB_val k = { 9, kb }, d;
	MDB_cursor *c;
	struct topent *e = NULL;
	struct sib *s = NULL;
	size_t n = 0, cap = 0;
	uint64_t ninst = 0, nst = 0, nse = 0;
	int rc = mdb_cursor_open(b->txn, b->ix->aux, &c);
	if (rc)
		return dfs_from_mdb(rc);
	/* the staged new entries are not in the DB yet: flush aux first */
	for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	     rc == 0 && k.mv_size == 17 && memcmp(k.mv_data, kb, 9) == 0;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		struct topent *ne = grow(e, n, &cap, sizeof(*e), 256);
		if (!ne) {
			rc = -ENOMEM;
			break;
		}
		e = ne;
		if (d.mv_size < sizeof(struct child)) {
			rc = -EIO;
			break;
		}
		memcpy(&e[n].c, d.mv_data, sizeof(e[n].c));
		const char *p = (const char *)d.mv_data + sizeof(e[n].c);
		if (sizeof(e[n].c) + e[n].c.base_len + e[n].c.uid_len > d.mv_size ||
		    e[n].c.base_len >= NAME_BUF) {
			rc = -EIO;
			break;
		}
		e[n].base = strndup(p, e[n].c.base_len);
		e[n].uid = malloc(e[n].c.uid_len + 1);
		if (!e[n].base || !e[n].uid) {
			free(e[n].base);
			free(e[n].uid);
			rc = -ENOMEM;
			break;
		}
		memcpy(e[n].uid, p + e[n].c.base_len, e[n].c.uid_len);
		n++;
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND || (rc == 0))
		rc = 0;
	else if (rc > 0)
		rc = dfs_from_mdb(rc);
	if (!rc && !(s = calloc(n ? n : 1, sizeof(*s))))
		rc = -ENOMEM;
	for (size_t i = 0; i < n && !rc; i++) {
		memcpy(s[i].name, e[i].base, e[i].c.base_len + 1);
		s[i].uid.s = e[i].uid;
		s[i].uid.l = e[i].c.uid_len;
		s[i].a = i;
	}
	if (!rc)
		sib_finish(s, n, NULL);
	if (!rc)
		rc = del_prefix(b->txn, b->ix->dirents, top);
	if (!rc)
		rc = del_prefix(b->txn, b->ix->names, top);
	if (!rc)
		rc = u64_push(b->touched, top);
	if (u->nhot[t])
		qsort(u->hot[t], u->nhot[t], sizeof(char *), cmp_cstr);
	b->flags = t == 2 ? NODE_F_ANON : 0;
	for (size_t i = 0; i < n && !rc; i++) {
		struct topent *x = &e[s[i].a];
		const char *bp = x->base;
		rc = put_dirent(b, top, (uint32_t)i, ino_make(x->c.id, KIND_DIR), s[i].name);
		if (!rc && u->nhot[t] &&
		    bsearch(&bp, u->hot[t], u->nhot[t], sizeof(char *), cmp_cstr))
			rc = child_node(b, type, top, &x->c, s[i].name);
		if (t == 0) {
			struct agg g;
			child_agg(&x->c, &g);
			agg_merge(all, &g);
			ninst += x->c.ninst;
			nst += x->c.nstudies;
			nse += x->c.nseries;
		}
	}
	b->flags = 0;
	if (t == 0) {
		u->ninst = ninst;   /* the counts, as tree_build's */
		b->patients = n;
		b->studies = nst;
		b->series = nse;
	}
	*nout = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		free(e[i].base);
		free(e[i].uid);
	}
	free(e);
	free(s);
	return rc;
}

/* The node of view/root id rewritten with the archive's attributes all
 * (V2) and, when nlink, nlink and nchildren. */
static int patch_top(struct build *b, uint64_t id, const struct agg *all, uint32_t nlink,
		     uint64_t nchildren)
{
	unsigned char kb[8];
	char name[NAME_BUF];
	be64_put(kb, id);
	MDB_val k = { 8, kb }, d;
	struct node_rec r;
	int rc = mdb_get(b->txn, b->ix->nodes, &k, &d);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return dfs_from_mdb(rc);
	if (d.mv_size < sizeof(r))
		return -EIO;
	memcpy(&r, d.mv_data, sizeof(r));
	if (r.name_len >= NAME_BUF || sizeof(r) + r.name_len > d.mv_size)
		return -EIO;
	memcpy(name, (const char *)d.mv_data + sizeof(r), r.name_len);
	name[r.name_len] = 0;
	return put_node(b, id, r.type, r.parent, name, all, nlink ? nlink : r.nlink,
			nlink ? nchildren : r.nchildren, NULL, NULL);
}

static void upd_release(struct upd *u)
{
	if (u->fc)
		mdb_cursor_close(u->fc);
	for (size_t i = 0; i < u->b.n; i++)
		inst_free(&u->b.v[i]);
	free(u->b.v);
	for (size_t i = 0; i < u->nkeep; i++)
		inst_free(&u->keep[i]);
	free(u->keep);
	free(u->P.v);
	free(u->U.v);
	free(u->S.v);
	free(u->dirs_old.v);
	free(u->series_old.v);
	free(u->inst_old.v);
	for (int t = 0; t < 3; t++) {
		free(u->ids_top[t].v);
		for (size_t i = 0; i < u->nhot[t]; i++)
			free(u->hot[t][i]);
		free(u->hot[t]);
	}
	for (size_t i = 0; i < u->ndrop; i++)
		free(u->drop_paths[i]);
	free(u->drop_paths);
	for (size_t i = 0; i < u->nddup; i++)
		free(u->drop_dups[i]);
	free(u->drop_dups);
	stage_release(&u->b.nodes);
	stage_release(&u->b.names);
	stage_release(&u->b.dirents);
	stage_release(&u->b.aux);
	strbuf_release(&u->b.novol);
	strbuf_release(&u->b.anon_excluded);
}

static int cmp_rel(const void *a, const void *b)
{
	const struct inst *x = a, *y = b;
	return str_cmp(x->rel, y->rel);
}

/* the views the update knows: patients/ (required), uids/, anon/ and
 * views whose build does not look at the records (I11) */
static int views_known(const struct view *const *views, int has[3])
{
	has[0] = has[1] = has[2] = 0;
	for (size_t i = 0; views[i]; i++) {
		if (views[i]->build == tree_patients)
			has[0] = 1;
		else if (views[i]->build == tree_uids)
			has[1] = 1;
		else if (views[i]->build == tree_anon)
			has[2] = 1;
	}
	return has[0];
}

/*
 * Every record of SOP UID sop (the SOP UID index in aux) but self's path
 * (self NULL: none), loaded into u->b.v (load_add) and its "dups" line
 * redone (drop_dups). 0 or an error.
 */
static int sop_copies(struct upd *u, MDB_txn *txn, MDB_dbi aux, struct str sop,
		      const struct str *self)
{
	size_t pl = sop.l + 2;
	unsigned char *pk = malloc(pl);
	MDB_cursor *c;
	int rc, mrc;
	if (!pk)
		return -ENOMEM;
	pk[0] = 's';
	memcpy(pk + 1, sop.s, sop.l);
	pk[pl - 1] = 0;
	MDB_val k = { pl, pk }, d;
	if ((rc = dfs_from_mdb(mdb_cursor_open(txn, aux, &c)))) {
		free(pk);
		return rc;
	}
	for (mrc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	     !rc && mrc == 0 && k.mv_size > pl && memcmp(k.mv_data, pk, pl) == 0;
	     mrc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		MDB_val fk = { k.mv_size - pl, (char *)k.mv_data + pl }, fd;
		struct rec_head h;
		struct inst *in;
		if (self && self->l == fk.mv_size && memcmp(self->s, fk.mv_data, self->l) == 0)
			continue;
		int g = files_get(u, &fk, &fd, &h);
		if (g < 0)
			rc = g;
		else if (g == 0 && !(rc = load_add(u, &fk, &fd, &h, &in)))
			rc = drop_add(&u->drop_dups, &u->nddup, &u->cddup, in->rel);
	}
	mdb_cursor_close(c);
	free(pk);
	if (!rc && mrc && mrc != MDB_NOTFOUND)
		rc = dfs_from_mdb(mrc);
	return rc;
}

/* the "duplicate of" lines (hidden copies) of meta "dups": n_duplicates,
 * as tree_build counts them (conflict lines are not duplicates) */
static int count_dups(MDB_txn *txn, MDB_dbi meta, uint64_t *n)
{
	MDB_val k = { 4, "dups" }, d;
	static const char pat[] = "\tduplicate of ";
	*n = 0;
	int rc = mdb_get(txn, meta, &k, &d);
	if (rc)
		return rc == MDB_NOTFOUND ? 0 : dfs_from_mdb(rc);
	const char *p = d.mv_data, *end = p + d.mv_size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		if (memmem(p, (size_t)(e - p), pat, sizeof(pat) - 1))
			(*n)++;
		p = e + 1;
	}
	return 0;
}

/* I13: a part's update commits what it has written so far (nobody reads
 * yet, I4), so the dirty pages of one DB are held at a time; the records
 * it reads in place stay where they are ("files" is not written). */
static int upd_split(struct upd *u, MDB_txn **txnp)
{
	if (!u->b.ix->part)
		return 0;
	if (u->fc) {
		mdb_cursor_close(u->fc);
		u->fc = NULL;
	}
	int rc = dfs_from_mdb(store_commit(u->b.ix, *txnp));
	*txnp = NULL;
	if (!rc)
		rc = dfs_from_mdb(mdb_txn_begin(u->b.ix->env, NULL, 0, txnp));
	u->b.txn = *txnp;
	return rc;
}

static int tree_update_txn(struct index *ix, MDB_txn **txnp, uint64_t *next_id,
			   const struct tree_changes *chs, struct id_list *touched, int *full);

int tree_update(struct index *ix, MDB_txn *txn, uint64_t *next_id,
		const struct tree_changes *chs, struct id_list *touched, int *full)
{
	return tree_update_txn(ix, &txn, next_id, chs, touched, full);
}

static int tree_update_txn(struct index *ix, MDB_txn **txnp, uint64_t *next_id,
			   const struct tree_changes *chs, struct id_list *touched, int *full)
{
	MDB_txn *txn = *txnp;
	const struct tree_change *ch = chs->v;
	size_t nch = chs->n;
	struct upd u;
	int has[3], rc = 0;
	const char *knob = getenv("DICOMFS_TREE_FULL");
	*full = 0;
	if ((knob && *knob && strcmp(knob, "0")) || !views_known(ix->opts.views, has)) {
		*full = 1;
		return tree_build(ix, txn, next_id);
	}
	memset(&u, 0, sizeof(u));
	u.in_map = ix->part && ix->tree_recs_in_map;
	struct build *b = &u.b;
	b->ix = ix;
	b->txn = txn;
	b->next_id = next_id;
	b->touched = touched;
	struct strbuf dups = STRBUF_INIT;
	uint64_t nskip = 0, nerr = 0;
	meta_get_u64(txn, ix->meta, "n_skipped", &nskip);
	meta_get_u64(txn, ix->meta, "n_errors", &nerr);
	nskip -= chs->old_skipped < nskip ? chs->old_skipped : nskip;
	nerr -= chs->old_errors < nerr ? chs->old_errors : nerr;

	/* 1. what the changed records were and are: P, U, S; the SOP UID
	 * index follows the records (deletions first: a path may stay) */
	for (int pass = 0; pass < 2 && !rc; pass++) {
		for (size_t i = 0; i < nch && !rc; i++) {
			struct rec_head h;
			MDB_val k = { ch[i].rl, (void *)ch[i].rel }, d;
			if (pass == 0) {
				if (!ch[i].old || rec_head_get(ch[i].old, ch[i].oldlen, &h))
					continue;
				d.mv_size = ch[i].oldlen;
				d.mv_data = (void *)ch[i].old;
			} else {
				rc = mdb_get(txn, ix->files, &k, &d);
				if (rc == MDB_NOTFOUND) {
					rc = 0;
					continue;
				}
				if (rc) {
					rc = dfs_from_mdb(rc);
					break;
				}
				if (rec_head_get(d.mv_data, d.mv_size, &h))
					continue;
			}
			if (h.status != REC_OK) {   /* load()'s counts (before: chs) */
				if (pass)
					(*(h.status == REC_SKIPPED ? &nskip : &nerr))++;
				continue;
			}
			struct inst *in;
			unsigned char *sk;
			size_t skl;
			if ((rc = keep_add(&u, &k, &d, &h, &in)))
				break;
			if ((rc = set_add(&u.P, in->pkey)) || (rc = set_add(&u.U, in->study)) ||
			    (rc = set_add(&u.S, in->sop)) ||
			    (rc = drop_add(&u.drop_paths, &u.ndrop, &u.cdrop, in->rel)) ||
			    (rc = drop_add(&u.drop_dups, &u.nddup, &u.cddup, in->rel)))
				break;
			if (!(skl = sop_key(in, &sk))) {
				rc = -ENOMEM;
				break;
			}
			if (pass == 0) {
				rc = del_key(txn, ix->aux, sk, skl);
			} else {
				MDB_val kk = { skl, sk }, dd = { 0, "" };
				rc = dfs_from_mdb(mdb_put(txn, ix->aux, &kk, &dd, 0));
			}
			free(sk);
		}
	}
	if (rc)
		goto out;
	set_finish(&u.S);

	/* 2. every record of a SOP UID in S (the winner may change) */
	for (size_t i = 0; i < u.S.n && !rc; i++)
		rc = sop_copies(&u, txn, ix->aux, u.S.v[i], NULL);
	for (size_t i = 0; i < b->n && !rc; i++)
		if ((rc = set_add(&u.P, b->v[i].pkey)) || (rc = set_add(&u.U, b->v[i].study)))
			break;
	if (rc)
		goto out;
	set_finish(&u.P);
	set_finish(&u.U);

	/* 3. the old subtrees of the patients in P and the studies in U; the
	 * instances they show are the rest of the records needed */
	struct id_list inst_u = { 0 }, inst_a = { 0 };
	for (size_t i = 0; i < u.P.n && !rc; i++) {
		rc = old_group(&u, 0, 'P', u.P.v[i], &u.inst_old);
		if (!rc && has[2])
			rc = old_group(&u, 2, 'A', u.P.v[i], &inst_a);
	}
	for (size_t i = 0; i < u.U.n && !rc && has[1]; i++)
		rc = old_group(&u, 1, 'u', u.U.v[i], &inst_u);
	for (int pass = 0; pass < 2 && !rc; pass++) {
		struct id_list *l = pass ? &inst_u : &u.inst_old;
		for (size_t i = 0; i < l->n && !rc; i++) {
			unsigned char kb[8];
			be64_put(kb, l->v[i]);
			MDB_val k = { 8, kb }, d, fd;
			struct node_rec r;
			struct rec_head h;
			int g = mdb_get(txn, ix->nodes, &k, &d);
			if (g || d.mv_size < sizeof(r))
				continue;
			memcpy(&r, d.mv_data, sizeof(r));
			if (!r.path_len || sizeof(r) + r.name_len + r.path_len > d.mv_size)
				continue;
			MDB_val fk = { r.path_len, (char *)d.mv_data + sizeof(r) + r.name_len };
			g = files_get(&u, &fk, &fd, &h);
			if (g < 0)
				rc = g;
			else if (g == 0)
				rc = load_add(&u, &fk, &fd, &h, NULL);
		}
	}
	for (size_t i = 0; i < inst_a.n && !rc; i++)
		rc = u64_push(&u.inst_old, inst_a.v[i]);
	free(inst_u.v);
	free(inst_a.v);
	if (rc)
		goto out;
	/* 3b. every copy of a SOP UID shown here: a conflict's name depends on
	 * all its copies (dedup_sop); copies outside P and U only rank (their
	 * directories are not rewritten) and their report lines are redone */
	for (size_t i = 0, n0 = b->n; i < n0 && !rc; i++) {
		struct str sop = b->v[i].sop, rel = b->v[i].rel;
		if (!set_has(&u.S, sop))
			rc = sop_copies(&u, txn, ix->aux, sop, &rel);
	}
	if (rc)
		goto out;
	/* one record a path */
	if (b->n)
		qsort(b->v, b->n, sizeof(*b->v), cmp_rel);
	size_t w = 0;
	for (size_t i = 0; i < b->n; i++) {
		if (w && str_cmp(b->v[w - 1].rel, b->v[i].rel) == 0) {
			inst_free(&b->v[i]);
			continue;
		}
		b->v[w++] = b->v[i];
	}
	b->n = w;
	/* anon/'s excluded lines of P's records are redone */
	for (size_t i = 0; i < b->n && !rc; i++)
		if (set_has(&u.P, b->v[i].pkey))
			rc = drop_add(&u.drop_paths, &u.ndrop, &u.cdrop, b->v[i].rel);
	if (rc)
		goto out;

	/* 4. the winners (S's records are all here; the others won before) */
	if (b->n)
		qsort(b->v, b->n, sizeof(*b->v), cmp_sop);
	uint64_t nhidden = 0;
	if ((rc = dedup_sop(b, &dups, &nhidden)))
		goto out;
	if (b->n)
		qsort(b->v, b->n, sizeof(*b->v), cmp_tree);

	/* 5. the old subtrees go */
	ids_finish(&u.dirs_old);
	ids_finish(&u.series_old);
	for (size_t i = 0; i < u.dirs_old.n && !rc; i++) {
		unsigned char kb[8];
		be64_put(kb, u.dirs_old.v[i]);
		if (!(rc = del_prefix(txn, ix->dirents, u.dirs_old.v[i])) &&
		    !(rc = del_prefix(txn, ix->names, u.dirs_old.v[i])) &&
		    !(rc = del_key(txn, ix->nodes, kb, 8)))
			rc = u64_push(touched, u.dirs_old.v[i]);
	}
	for (size_t i = 0; i < u.inst_old.n && !rc; i++) {
		unsigned char kb[8];
		be64_put(kb, u.inst_old.v[i]);
		rc = del_key(txn, ix->nodes, kb, 8);
	}
	if (rc)
		goto out;

	/* 6. the new subtrees: patients/ and anon/ by patient, uids/ by study */
	size_t *ord = malloc((b->n ? b->n : 1) * sizeof(*ord)), no;
	if (!ord) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < b->n && !rc;) {
		size_t j = i + 1;
		while (j < b->n && str_cmp(b->v[i].pkey, b->v[j].pkey) == 0)
			j++;
		if (set_has(&u.P, b->v[i].pkey))
			rc = new_group(&u, 0, &lv_patients, NULL, i, j);
		i = j;
	}
	if (!rc && has[1]) {
		no = 0;
		for (size_t i = 0; i < b->n; i++)
			if (set_has(&u.U, b->v[i].study))
				ord[no++] = i;
		qsort_r(ord, no, sizeof(*ord), cmp_uidview, b->v);
		for (size_t i = 0; i < no && !rc;) {
			size_t j = i + 1;
			while (j < no && str_cmp(b->v[ord[i]].study, b->v[ord[j]].study) == 0)
				j++;
			rc = new_group(&u, 1, &lv_uids, ord, i, j);
			i = j;
		}
	}
	if (!rc && has[2]) {
		rc = anon_pick(b, in_patients, &u.P, ord, &no, &b->anon_excluded);
		b->flags = NODE_F_ANON;
		for (size_t i = 0; i < no && !rc;) {
			size_t j = i + 1;
			while (j < no && str_cmp(b->v[ord[i]].pkey, b->v[ord[j]].pkey) == 0)
				j++;
			rc = new_group(&u, 2, &lv_anon, ord, i, j);
			i = j;
		}
		b->flags = 0;
	}
	free(ord);
	/* the new top entries join the old ones in "aux" */
	if (!rc)
		rc = stage_flush(&b->aux, txn, ix->aux, 0);
	if (rc)
		goto out;

	/* 7. the tops' listings, the views' and the root's attributes */
	struct agg all = { 0 };
	uint32_t ntop[3] = { 0, 0, 0 };
	static const uint8_t child_type[3] = { NODE_PATIENT, NODE_STUDY, NODE_PATIENT };
	for (int t = 0; t < 3 && !rc; t++)
		if (has[t])
			rc = top_listing(&u, t, child_type[t], &all, &ntop[t]);
	if (!all.any) {
		struct stat st;
		if (fstat(ix->archive_fd, &st) == 0) {
			all.mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
			all.uid = st.st_uid;
			all.gid = st.st_gid;
			all.any = 1;
		}
	}
	for (size_t i = 0; ix->opts.views[i] && !rc; i++) {
		uint64_t id = ix->opts.views[i]->id;
		int t = id == ID_PATIENTS ? 0 : id == ID_UIDS ? 1 : id == ID_ANON ? 2 : -1;
		rc = patch_top(b, id, &all, t < 0 ? 0 : 2 + ntop[t], t < 0 ? 0 : ntop[t]);
	}
	if (!rc)
		rc = patch_top(b, ID_ROOT, &all, 0, 0);
	if (rc)
		goto out;

	/* 8. write; the reports and counts */
	if ((rc = upd_split(&u, txnp)) || (rc = stage_flush(&b->nodes, *txnp, ix->nodes, 0)))
		goto out;
	if (ix->part)   /* what is written goes before the next DB's pages */
		stage_release(&b->nodes);
	if ((rc = upd_split(&u, txnp)) || (rc = names_flush(&b->dirents, *txnp, ix->names, 0)) ||
	    (rc = upd_split(&u, txnp)) ||
	    (rc = stage_flush_by(&b->dirents, *txnp, ix->dirents, 0, 1)))
		goto out;
	if (ix->part)
		stage_release(&b->dirents);
	if ((rc = upd_split(&u, txnp)))
		goto out;
	txn = *txnp;
	/* sources/ follows the nodes just written (sources_update) */
	for (size_t i = 0; ix->opts.views[i] && !rc; i++) {
		if (ix->opts.views[i]->id != ID_SOURCES || (ix->part && ix->part->defer_sources))
			continue;   /* a build in parts lists sources/ at its last */
		stage_release(&b->nodes);
		stage_release(&b->names);
		stage_release(&b->dirents);
		if (!(rc = sources_update(b, ix->opts.views[i], &all, touched)) &&
		    !(rc = stage_flush(&b->nodes, txn, ix->nodes, 0)) &&
		    !(rc = names_flush(&b->dirents, txn, ix->names, 0)))
			rc = stage_flush_by(&b->dirents, txn, ix->dirents, 0, 1);
	}
	if (rc)
		goto out;
	uint64_t ndup = 0;
	MDB_val mk, md;
	struct dropv dd, dp;
	if (u.nddup)
		qsort(u.drop_dups, u.nddup, sizeof(char *), cmp_cstr);
	if (u.ndrop)
		qsort(u.drop_paths, u.ndrop, sizeof(char *), cmp_cstr);
	dd.v = u.drop_dups;
	dd.n = u.nddup;
	dp.v = u.drop_paths;
	dp.n = u.ndrop;
	mk.mv_size = 4;
	mk.mv_data = "dups";
	if (mdb_get(txn, ix->meta, &mk, &md))
		md.mv_size = 0;
	rc = tsv_store(txn, ix->meta, "dups", md.mv_data, md.mv_size, drop_by_path, &dd, &dups,
		       NULL);
	if (!rc)
		rc = count_dups(txn, ix->meta, &ndup);
	mk.mv_size = 8;
	mk.mv_data = "novolume";
	if (!rc && mdb_get(txn, ix->meta, &mk, &md))
		md.mv_size = 0;
	if (!rc)
		rc = tsv_store(txn, ix->meta, "novolume", md.mv_data, md.mv_size, drop_by_series,
			       &u.series_old, &b->novol, NULL);
	mk.mv_size = 13;
	mk.mv_data = "anon_excluded";
	if (!rc && mdb_get(txn, ix->meta, &mk, &md))
		md.mv_size = 0;
	if (!rc)
		rc = tsv_store(txn, ix->meta, "anon_excluded", md.mv_data, md.mv_size,
			       drop_by_path, &dp, &b->anon_excluded, NULL);
	if (rc ||
	    (rc = meta_put_u64(txn, ix->meta, "n_instances", u.ninst)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_patients", b->patients)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_studies", b->studies)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_series", b->series)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_skipped", nskip)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_errors", nerr)) ||
	    (rc = meta_put_u64(txn, ix->meta, "n_duplicates", ndup)))
		goto out;
	ix->stats.instances = u.ninst;
	ix->stats.patients = b->patients;
	ix->stats.studies = b->studies;
	ix->stats.series = b->series;
	ix->stats.skipped = nskip;
	ix->stats.errors = nerr;
	ix->stats.duplicates = ndup;
	ids_finish(touched);
out:
	strbuf_release(&dups);
	upd_release(&u);
	return rc;
}

/* ---- a first build in parts (index.h I13) ---- */

/* The heap a part takes per instance, rounded up: the full build's is
 * 2.4-3.5 KiB (238 MB at 100,000 instances, 70 MB at 20,000: valgrind
 * massif, with the LMDB pages of one DB, tree_build_split); a part added
 * by tree_update reads its records in place, keeps one instance table and
 * commits DB by DB (upd_split): about the same (2026-12-03,
 * contrib/bench/bench_mountmem.sh). */
#define BUILD_INST_BYTES 4096
#define BUILD_MEM_DEFAULT ((uint64_t)1 << 30)

/* instances a part holds at most: -o build_mem (index_opts.build_mem) over
 * BUILD_INST_BYTES; DICOMFS_TREE_PART=N sets it (tests) */
static size_t tree_part_size(const struct index *ix)
{
	const char *knob = getenv("DICOMFS_TREE_PART");
	if (knob && *knob) {
		char *end;
		unsigned long long n = strtoull(knob, &end, 10);
		if (!*end && n)
			return (size_t)n;
	}
	uint64_t mem = ix->opts.build_mem ? ix->opts.build_mem : BUILD_MEM_DEFAULT;
	uint64_t n = mem / BUILD_INST_BYTES;
	return n < 64 ? 64 : n > SIZE_MAX ? SIZE_MAX : (size_t)n;
}

/* FNV-1a of a record's patient key (inst_load's: PatientID, or the name in
 * PKEY_NOID's key space), low bit set */
static uint64_t pkey_hash(const void *rec, size_t len)
{
	static const uint32_t tags[2] = { TAG_PATIENT_NAME, TAG_PATIENT_ID };
	const char *v[2];
	size_t l[2];
	rec_attrs(rec, len, tags, 2, v, l);
	if (l[1])
		return fnv1a(FNV1A_INIT, v[1], l[1]) | 1;
	return fnv1a(fnv1a(FNV1A_INIT, PKEY_NOID, 2), v[0] ? v[0] : "", l[0]) | 1;
}

static int cmp_u64v(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * I13: the tree of more OK records than per_part, built in parts of about
 * per_part records (a patient is never cut; one larger than a part is a
 * part of its own): the first by tree_build_txn (its records only), each
 * next one added by tree_update (I11: new records, the same result as a
 * full build), sources/ listed by the last. Each part is committed before
 * the next begins (nobody reads yet, I4); the caller commits the last.
 */
static int tree_build_parts(struct index *ix, MDB_txn **txnp, uint64_t *next_id,
			    size_t per_part)
{
	struct tree_part part = { 0 };
	uint64_t *sorted = NULL, *his = NULL;
	size_t nok = 0, nparts = 0, cap = 0;
	MDB_cursor *c;
	MDB_val k, d;
	int rc = dfs_from_mdb(mdb_cursor_open(*txnp, ix->files, &c));
	if (rc)
		return rc;
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		struct rec_head h;
		uint64_t *nv = grow(part.hash, part.n, &cap, sizeof(*nv), 4096);
		if (!nv) {
			rc = ENOMEM;
			break;
		}
		part.hash = nv;
		int ok = !rec_head_get(d.mv_data, d.mv_size, &h) && h.status == REC_OK;
		part.hash[part.n++] = ok ? pkey_hash(d.mv_data, d.mv_size) : 0;
		nok += ok;
	}
	mdb_cursor_close(c);
	rc = rc == MDB_NOTFOUND ? 0 : rc == ENOMEM ? -ENOMEM : dfs_from_mdb(rc);
	/* the parts' upper bounds: every per_part-th hash, not within a patient */
	if (!rc && (!(sorted = malloc((nok ? nok : 1) * sizeof(*sorted))) ||
		    !(his = malloc((nok ? nok : 1) * sizeof(*his)))))
		rc = -ENOMEM;
	if (!rc) {
		size_t m = 0;
		for (size_t i = 0; i < part.n; i++)
			if (part.hash[i])
				sorted[m++] = part.hash[i];
		qsort(sorted, m, sizeof(*sorted), cmp_u64v);
		for (size_t i = 0; i < m;) {
			size_t j = m - i > per_part ? i + per_part : m;
			while (j < m && sorted[j] == sorted[j - 1])
				j++;
			his[nparts++] = sorted[j - 1];
			i = j;
		}
		if (!nparts)
			his[nparts++] = UINT64_MAX;
		his[nparts - 1] = UINT64_MAX;
	}
	free(sorted);
	ix->part = &part;
	for (size_t p = 0; p < nparts && !rc; p++) {
		part.lo = p ? his[p - 1] + 1 : 0;
		part.hi = his[p];
		part.defer_sources = p + 1 < nparts;
		index_progress_line(ix, "tree: part %zu of %zu", p + 1, nparts);
		if (p == 0) {
			rc = tree_build_txn(ix, txnp, next_id, 1);
		} else {
			/* this part's records, new to the tree */
			struct tree_change *tc = NULL;
			size_t nc = 0, ccap = 0, ri = 0;
			if ((rc = dfs_from_mdb(mdb_cursor_open(*txnp, ix->files, &c))))
				break;
			for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
			     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
				size_t i = ri++;
				if (!part.hash[i] || !part_has(&part, i))
					continue;
				struct tree_change *nv = grow(tc, nc, &ccap, sizeof(*nv), 1024);
				if (!nv) {
					rc = ENOMEM;
					break;
				}
				tc = nv;
				tc[nc++] = (struct tree_change){ k.mv_data, k.mv_size, NULL, 0 };
			}
			mdb_cursor_close(c);
			rc = rc == MDB_NOTFOUND ? 0 : rc == ENOMEM ? -ENOMEM : dfs_from_mdb(rc);
			struct tree_changes tcs = { tc, nc, 0, 0 };
			struct id_list touched = { 0 };
			int full = 0;
			if (!rc)
				rc = tree_update_txn(ix, txnp, next_id, &tcs, &touched, &full);
			free(touched.v);
			free(tc);
		}
		if (!rc && p + 1 < nparts) {
			/* committed like a split build's DBs (I4: tree_valid 0) */
			rc = dfs_from_mdb(store_commit(ix, *txnp));
			*txnp = NULL;
			if (!rc)
				rc = dfs_from_mdb(mdb_txn_begin(ix->env, NULL, 0, txnp));
		}
	}
	ix->part = NULL;
	ix->stats.tree_parts = nparts;
	free(his);
	free(part.hash);
	return rc;
}
