/*
 * kind_level.c - the level files, generated from the index, and the
 * user.dicom.* extended attributes of every node.
 *
 *   series.json        one QIDO-RS series result (DICOM JSON Model)
 *   study.json         one QIDO-RS study result
 *   patient.json       one QIDO-RS-like patient result
 *   study.fhir.json    FHIR R4 ImagingStudy
 *   patient.fhir.json  FHIR R4 Patient
 *
 * Design notes
 * - Everything comes from the index (node records, dirents, file records);
 *   no source file is read. A level's value of an attribute is the first
 *   non-empty value met walking its instances in listing order (series dirs
 *   by name, instances by name), so it is a pure function of the index:
 *   byte-identical across mounts. Counts come from the tree.
 * - Content is generated on the first getattr/open of a file and kept in a
 *   small per-inode cache (content is immutable while mounted); the cache is
 *   bounded and simply emptied when full. Directory attribute sets (for the
 *   xattrs) are cached the same way under kind 0.
 * - The JSON is written by a small emitter: compact, keys in a fixed order,
 *   strings validated as UTF-8 (an invalid byte becomes U+FFFD).
 * - xattrs: user.dicom.<Keyword> for every indexed attribute of the node's
 *   level and the levels above that has a non-empty value (instances: their
 *   own record; directories and their level files: the first non-empty
 *   value below, as in the level files). Root, patients/ and .dicomfs have
 *   none. Other namespaces answer EOPNOTSUPP.
 * - FHIR ids: 16 hex digits of FNV-1a 64 over the tree's patient key
 *   (PatientID, else "\0N" + PatientName) for Patient, over that key, a NUL
 *   and the StudyInstanceUID for ImagingStudy (a study filed under two
 *   patients is two resources).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "error.h"
#include "record.h"
#include "tags.h"

#define TAG_SERIES_DATE        0x00080021u
#define TAG_SERIES_TIME        0x00080031u
#define TAG_REFERRING          0x00080090u
#define TAG_TZ_OFFSET          0x00080201u
#define TAG_PATIENT_BIRTH_DATE 0x00100030u
#define TAG_PATIENT_SEX        0x00100040u
#define TAG_BODY_PART          0x00180015u
#define TAG_STUDY_ID           0x00200010u

#define DCM_SYSTEM "http://dicom.nema.org/resources/ontology/DCM"

struct sv {
	const char *s;
	size_t l;
};

/* ---- JSON emitter ---- */

struct jb {
	char *s;
	size_t len, cap;
	int err;
	int nc;            /* a value was written: the next one needs a comma */
};

static void jb_add(struct jb *b, const char *s, size_t l)
{
	if (b->err)
		return;
	if (b->len + l + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 1024;
		while (nc < b->len + l + 1)
			nc *= 2;
		char *p = realloc(b->s, nc);
		if (!p) {
			b->err = 1;
			return;
		}
		b->s = p;
		b->cap = nc;
	}
	if (l)
		memcpy(b->s + b->len, s, l);
	b->len += l;
	b->s[b->len] = 0;
}

static void jb_c(struct jb *b, char c)
{
	jb_add(b, &c, 1);
}

static void jb_pre(struct jb *b)
{
	if (b->nc)
		jb_c(b, ',');
	b->nc = 0;
}

static void jb_open(struct jb *b, char c)
{
	jb_pre(b);
	jb_c(b, c);
	b->nc = 0;
}

static void jb_close(struct jb *b, char c)
{
	jb_c(b, c);
	b->nc = 1;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0. */
static size_t utf8_len(const unsigned char *s, size_t l)
{
	unsigned c = s[0];
	size_t n;
	unsigned lo = 0x80, hi = 0xBF;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		if (c == 0xE0)
			lo = 0xA0;
		else if (c == 0xED)
			hi = 0x9F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F;
	} else
		return 0;
	if (l < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return n;
}

static void jb_esc(struct jb *b, const char *str, size_t l)
{
	const unsigned char *s = (const unsigned char *)str;
	jb_c(b, '"');
	for (size_t i = 0; i < l;) {
		size_t run = i;
		while (run < l && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' &&
		       s[run] != '\\')
			run++;
		if (run > i) {
			jb_add(b, str + i, run - i);
			i = run;
			continue;
		}
		unsigned c = s[i];
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			jb_add(b, e, 2);
			i++;
		} else if (c < 0x20) {
			char e[8];
			switch (c) {
			case '\n': jb_add(b, "\\n", 2); break;
			case '\r': jb_add(b, "\\r", 2); break;
			case '\t': jb_add(b, "\\t", 2); break;
			case '\b': jb_add(b, "\\b", 2); break;
			case '\f': jb_add(b, "\\f", 2); break;
			default:
				snprintf(e, sizeof(e), "\\u%04x", c);
				jb_add(b, e, 6);
			}
			i++;
		} else {
			size_t n = utf8_len(s + i, l - i);
			if (n) {
				jb_add(b, str + i, n);
				i += n;
			} else {
				jb_add(b, "\\ufffd", 6);
				i++;
			}
		}
	}
	jb_c(b, '"');
}

static void jb_key(struct jb *b, const char *k)
{
	jb_pre(b);
	jb_esc(b, k, strlen(k));
	jb_c(b, ':');
	b->nc = 0;
}

static void jb_str(struct jb *b, const char *s, size_t l)
{
	jb_pre(b);
	jb_esc(b, s, l);
	b->nc = 1;
}

static void jb_raw(struct jb *b, const char *s)
{
	jb_pre(b);
	jb_add(b, s, strlen(s));
	b->nc = 1;
}

static void jb_u64(struct jb *b, uint64_t v)
{
	char t[24];
	snprintf(t, sizeof(t), "%llu", (unsigned long long)v);
	jb_raw(b, t);
}

static void jb_kstr(struct jb *b, const char *k, const char *s, size_t l)
{
	jb_key(b, k);
	jb_str(b, s, l);
}

static void jb_kcstr(struct jb *b, const char *k, const char *s)
{
	jb_kstr(b, k, s, strlen(s));
}

/* ---- small helpers on values ---- */

static struct sv sv_trim(struct sv v)
{
	while (v.l && (v.s[0] == ' ' || v.s[0] == '\t'))
		v.s++, v.l--;
	while (v.l && (v.s[v.l - 1] == ' ' || v.s[v.l - 1] == '\t' || v.s[v.l - 1] == 0))
		v.l--;
	return v;
}

/* Split v at sep: the component from *pos; returns 0 after the last one. */
static int sv_split(struct sv v, char sep, size_t *pos, struct sv *out)
{
	if (*pos > v.l)
		return 0;
	const char *p = v.l > *pos ? memchr(v.s + *pos, sep, v.l - *pos) : NULL;
	size_t e = p ? (size_t)(p - v.s) : v.l;
	out->s = v.s + *pos;
	out->l = e - *pos;
	*pos = e + 1;
	return 1;
}

static int sv_eq(struct sv a, struct sv b)
{
	return a.l == b.l && (a.l == 0 || memcmp(a.s, b.s, a.l) == 0);
}

static int sv_cmp(const void *x, const void *y)
{
	const struct sv *a = x, *b = y;
	size_t l = a->l < b->l ? a->l : b->l;
	int c = l ? memcmp(a->s, b->s, l) : 0;
	return c ? c : (a->l < b->l ? -1 : a->l > b->l);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t l)
{
	const unsigned char *s = p;
	for (size_t i = 0; i < l; i++) {
		h ^= s[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

#define FNV_INIT 0xcbf29ce484222325ull

/* JSON number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)? */
static int json_number_ok(const char *s, size_t l)
{
	size_t i = 0;
	if (i < l && s[i] == '-')
		i++;
	if (i >= l)
		return 0;
	if (s[i] == '0')
		i++;
	else if (s[i] >= '1' && s[i] <= '9')
		while (i < l && s[i] >= '0' && s[i] <= '9')
			i++;
	else
		return 0;
	if (i < l && s[i] == '.') {
		size_t d = ++i;
		while (i < l && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	if (i < l && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < l && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t d = i;
		while (i < l && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == d)
			return 0;
	}
	return i == l;
}

/* IS/DS component: a JSON number (verbatim when already valid JSON, else
 * the shortest round-tripping form), or a string when not a number. */
static void jb_decimal(struct jb *b, struct sv c)
{
	char t[64], u[64];
	c = sv_trim(c);
	if (c.l == 0) {
		jb_raw(b, "null");
		return;
	}
	if (c.l < sizeof(t) && json_number_ok(c.s, c.l)) {
		memcpy(t, c.s, c.l);
		t[c.l] = 0;
		jb_raw(b, t);
		return;
	}
	if (c.l < sizeof(t)) {
		char *end;
		memcpy(t, c.s, c.l);
		t[c.l] = 0;
		double d = strtod(t, &end);
		if (end == t + c.l && isfinite(d) && !strpbrk(t, "xXnN")) {
			for (int p = 1; p <= 17; p++) {
				snprintf(u, sizeof(u), "%.*g", p, d);
				if (strtod(u, NULL) == d)
					break;
			}
			jb_raw(b, u);
			return;
		}
	}
	jb_str(b, c.s, c.l);
}

/* ---- the index side: attribute sets of a level ---- */

/* Values by position in dfs_tags[]; pointers into the index map. */
struct agg {
	struct sv *v;
	size_t missing;
	const char *levels;
};

static int agg_init(struct agg *a, const char *levels)
{
	a->v = calloc(dfs_ntags ? dfs_ntags : 1, sizeof(*a->v));
	if (!a->v)
		return -ENOMEM;
	a->levels = levels;
	a->missing = 0;
	for (size_t i = 0; i < dfs_ntags; i++)
		if (strchr(levels, dfs_tags[i].level))
			a->missing++;
	return 0;
}

static void agg_free(struct agg *a)
{
	free(a->v);
	a->v = NULL;
}

static void agg_record(struct agg *a, const void *rec, size_t len)
{
	if (!a->missing)
		return;
	for (size_t i = 0; i < dfs_ntags; i++) {
		const char *s;
		size_t l;
		if (a->v[i].l || !strchr(a->levels, dfs_tags[i].level))
			continue;
		if (rec_attr(rec, len, dfs_tags[i].tag, &s, &l) && l) {
			a->v[i].s = s;
			a->v[i].l = l;
			a->missing--;
		}
	}
}

static struct sv agg_get(const struct agg *a, uint32_t tag)
{
	struct sv none = { "", 0 };
	const struct dfs_tag *t = tags_by_tag(tag);
	return t && a->v && a->v[t - dfs_tags].l ? a->v[t - dfs_tags] : none;
}

static struct sv rec_get(const void *rec, size_t len, uint32_t tag)
{
	struct sv v = { "", 0 };
	if (!rec_attr(rec, len, tag, &v.s, &v.l)) {
		v.s = "";
		v.l = 0;
	}
	return v;
}

static int inst_record(struct dfs *fs, uint64_t id, const void **rec, size_t *len)
{
	struct node_view nv;
	int rc = index_node(fs->ix, id, &nv);
	if (rc)
		return rc;
	if (nv.rec->type != NODE_INSTANCE)
		return DFS_EINDEX;
	return index_file_record(fs->ix, nv.relpath, nv.rec->path_len, rec, len);
}

/* Children of a directory: sub-directories, or (series) instance ids. */
struct ids {
	uint64_t *v;
	size_t n, cap;
	int dirs;
	int err;
};

static int ids_cb(void *ctx, uint64_t ino, const char *name, size_t nl,
		  uint64_t next)
{
	struct ids *c = ctx;
	unsigned k = ino_kind(ino);
	uint64_t id = ino_id(ino);
	(void)name;
	(void)nl;
	(void)next;
	if (c->dirs ? k != KIND_DIR
		    : (k != KIND_DCM && k != KIND_JSON && k != KIND_NPY && k != KIND_PNG))
		return 0;
	if (!c->dirs && c->n && c->v[c->n - 1] == id)
		return 0;   /* the other files of the same instance */
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 64;
		uint64_t *p = realloc(c->v, nc * sizeof(*p));
		if (!p) {
			c->err = -ENOMEM;
			return 1;
		}
		c->v = p;
		c->cap = nc;
	}
	c->v[c->n++] = id;
	return 0;
}

static int children(struct dfs *fs, uint64_t id, int dirs, struct ids *out)
{
	memset(out, 0, sizeof(*out));
	out->dirs = dirs;
	int rc = index_readdir(fs->ix, id, 0, ids_cb, out);
	if (!rc)
		rc = out->err;
	if (rc) {
		free(out->v);
		out->v = NULL;
		out->n = 0;
	}
	return rc;
}

/* First non-empty values below directory id (of type), in listing order. */
static int agg_walk(struct dfs *fs, uint64_t id, int type, struct agg *a)
{
	struct ids c;
	int rc;
	if (!a->missing)
		return 0;
	rc = children(fs, id, type != NODE_SERIES, &c);
	for (size_t i = 0; !rc && i < c.n && a->missing; i++) {
		if (type == NODE_SERIES) {
			const void *rec;
			size_t len;
			rc = inst_record(fs, c.v[i], &rec, &len);
			if (!rc)
				agg_record(a, rec, len);
		} else {
			struct node_view nv;
			rc = index_node(fs->ix, c.v[i], &nv);
			if (!rc)
				rc = agg_walk(fs, c.v[i], nv.rec->type, a);
		}
	}
	free(c.v);
	return rc;
}

/* Series and instances below a study or patient directory (from the tree). */
static int count_below(struct dfs *fs, uint64_t id, int type, uint64_t *nstudies,
		       uint64_t *nseries, uint64_t *ninst)
{
	struct ids c;
	int rc = children(fs, id, 1, &c);
	for (size_t i = 0; !rc && i < c.n; i++) {
		struct node_view nv;
		rc = index_node(fs->ix, c.v[i], &nv);
		if (rc)
			break;
		if (type == NODE_PATIENT) {
			(*nstudies)++;
			rc = count_below(fs, c.v[i], NODE_STUDY, nstudies, nseries, ninst);
		} else {
			(*nseries)++;
			*ninst += nv.rec->nchildren;
		}
	}
	free(c.v);
	return rc;
}

/* Everything study.json and study.fhir.json need, in one pass. */
struct inst_info {
	struct sv uid, cls, num;
};

struct series_info {
	struct agg a;
	struct inst_info *inst;
	size_t ninst;
};

struct study_info {
	struct agg a;
	struct series_info *ser;
	size_t nser, ninst;
	struct sv *mods;
	size_t nmods;
};

static void study_free(struct study_info *si)
{
	for (size_t i = 0; i < si->nser; i++) {
		agg_free(&si->ser[i].a);
		free(si->ser[i].inst);
	}
	free(si->ser);
	free(si->mods);
	agg_free(&si->a);
}

static int study_scan(struct dfs *fs, uint64_t id, struct study_info *si)
{
	struct ids ser;
	size_t modcap = 0;
	int rc;

	memset(si, 0, sizeof(*si));
	if ((rc = agg_init(&si->a, "SP")))
		return rc;
	if ((rc = children(fs, id, 1, &ser)))
		return rc;
	si->ser = calloc(ser.n ? ser.n : 1, sizeof(*si->ser));
	if (!si->ser) {
		free(ser.v);
		return -ENOMEM;
	}
	for (size_t i = 0; !rc && i < ser.n; i++) {
		struct series_info *s = &si->ser[si->nser++];
		struct ids in;
		if ((rc = agg_init(&s->a, "ES")) || (rc = children(fs, ser.v[i], 0, &in)))
			break;
		s->inst = calloc(in.n ? in.n : 1, sizeof(*s->inst));
		if (!s->inst)
			rc = -ENOMEM;
		for (size_t j = 0; !rc && j < in.n; j++) {
			const void *rec;
			size_t len;
			if ((rc = inst_record(fs, in.v[j], &rec, &len)))
				break;
			struct inst_info *ii = &s->inst[s->ninst++];
			ii->uid = rec_get(rec, len, TAG_SOP_INSTANCE_UID);
			ii->cls = rec_get(rec, len, TAG_SOP_CLASS_UID);
			ii->num = rec_get(rec, len, TAG_INSTANCE_NUMBER);
			agg_record(&s->a, rec, len);
			agg_record(&si->a, rec, len);
			struct sv m = rec_get(rec, len, TAG_MODALITY);
			size_t k;
			if (!m.l)
				continue;
			for (k = 0; k < si->nmods && !sv_eq(si->mods[k], m); k++)
				;
			if (k < si->nmods)
				continue;
			if (si->nmods == modcap) {
				modcap = modcap ? modcap * 2 : 8;
				struct sv *p = realloc(si->mods, modcap * sizeof(*p));
				if (!p) {
					rc = -ENOMEM;
					break;
				}
				si->mods = p;
			}
			si->mods[si->nmods++] = m;
		}
		si->ninst += s->ninst;
		free(in.v);
	}
	free(ser.v);
	if (si->nmods)
		qsort(si->mods, si->nmods, sizeof(*si->mods), sv_cmp);
	if (rc)
		study_free(si);
	return rc;
}

/* ---- DICOM JSON Model ---- */

static int vr_multi(const char *vr)
{
	/* VRs whose value is never split at '\' */
	return strcmp(vr, "LT") && strcmp(vr, "ST") && strcmp(vr, "UT") &&
	       strcmp(vr, "UR");
}

static void dj_attr(struct jb *b, uint32_t tag, const char *vr, struct sv v)
{
	char key[12];
	snprintf(key, sizeof(key), "%08X", tag);
	jb_key(b, key);
	jb_open(b, '{');
	jb_kcstr(b, "vr", vr);
	if (v.l) {
		struct sv c;
		size_t pos = 0;
		jb_key(b, "Value");
		jb_open(b, '[');
		while (vr_multi(vr) ? sv_split(v, '\\', &pos, &c) : (pos++ == 0 && (c = v, 1))) {
			if (!strcmp(vr, "IS") || !strcmp(vr, "DS")) {
				jb_decimal(b, c);
			} else if (!strcmp(vr, "PN")) {
				static const char *const grp[] = { "Alphabetic", "Ideographic", "Phonetic" };
				struct sv g;
				size_t gp = 0;
				int any = 0;
				for (int k = 0; k < 3 && sv_split(c, '=', &gp, &g); k++) {
					if (!g.l)
						continue;
					if (!any)
						jb_open(b, '{');
					any = 1;
					jb_kstr(b, grp[k], g.s, g.l);
				}
				if (any)
					jb_close(b, '}');
				else
					jb_raw(b, "null");
			} else if (c.l) {
				jb_str(b, c.s, c.l);
			} else {
				jb_raw(b, "null");
			}
		}
		jb_close(b, ']');
	}
	jb_close(b, '}');
}

static void dj_count(struct jb *b, uint32_t tag, uint64_t n)
{
	char t[24];
	snprintf(t, sizeof(t), "%llu", (unsigned long long)n);
	struct sv v = { t, strlen(t) };
	dj_attr(b, tag, "IS", v);
}

struct lvl_attr {
	uint32_t tag;
	const char *vr;
};

static void dj_attrs(struct jb *b, const struct agg *a, const struct lvl_attr *la,
		     size_t n)
{
	for (size_t i = 0; i < n; i++)
		dj_attr(b, la[i].tag, la[i].vr, agg_get(a, la[i].tag));
}

static int gen_series_json(struct dfs *fs, uint64_t id, struct jb *b)
{
	static const struct lvl_attr la[] = {
		{ TAG_SERIES_DATE, "DA" }, { TAG_SERIES_TIME, "TM" },
		{ TAG_MODALITY, "CS" }, { TAG_SERIES_DESCRIPTION, "LO" },
		{ TAG_BODY_PART, "CS" }, { TAG_STUDY_INSTANCE_UID, "UI" },
		{ TAG_SERIES_INSTANCE_UID, "UI" }, { TAG_SERIES_NUMBER, "IS" },
	};
	struct agg a;
	struct ids in;
	int rc = agg_init(&a, "ES");
	if (rc)
		return rc;
	rc = children(fs, id, 0, &in);
	for (size_t i = 0; !rc && i < in.n && a.missing; i++) {
		const void *rec;
		size_t len;
		rc = inst_record(fs, in.v[i], &rec, &len);
		if (!rc)
			agg_record(&a, rec, len);
	}
	if (!rc) {
		jb_open(b, '{');
		dj_attrs(b, &a, la, sizeof(la) / sizeof(la[0]));
		dj_count(b, 0x00201209, in.n);
		jb_close(b, '}');
	}
	free(in.v);
	agg_free(&a);
	return rc;
}

static int gen_study_json(struct dfs *fs, uint64_t id, struct jb *b)
{
	static const struct lvl_attr la1[] = {
		{ TAG_STUDY_DATE, "DA" }, { TAG_STUDY_TIME, "TM" },
		{ TAG_ACCESSION_NUMBER, "SH" },
	};
	static const struct lvl_attr la2[] = {
		{ TAG_REFERRING, "PN" }, { TAG_STUDY_DESCRIPTION, "LO" },
		{ TAG_PATIENT_NAME, "PN" }, { TAG_PATIENT_ID, "LO" },
		{ TAG_PATIENT_BIRTH_DATE, "DA" }, { TAG_PATIENT_SEX, "CS" },
		{ TAG_STUDY_INSTANCE_UID, "UI" }, { TAG_STUDY_ID, "SH" },
	};
	struct study_info si;
	int rc = study_scan(fs, id, &si);
	if (rc)
		return rc;
	/* ModalitiesInStudy: the distinct modalities, '\'-joined */
	struct jb m = { 0 };
	for (size_t i = 0; i < si.nmods; i++) {
		if (i)
			jb_c(&m, '\\');
		jb_add(&m, si.mods[i].s, si.mods[i].l);
	}
	struct sv mods = { m.s ? m.s : "", m.len };
	jb_open(b, '{');
	dj_attrs(b, &si.a, la1, sizeof(la1) / sizeof(la1[0]));
	dj_attr(b, 0x00080061, "CS", mods);
	dj_attrs(b, &si.a, la2, sizeof(la2) / sizeof(la2[0]));
	dj_count(b, 0x00201206, si.nser);
	dj_count(b, 0x00201208, si.ninst);
	jb_close(b, '}');
	rc = m.err ? -ENOMEM : 0;
	free(m.s);
	study_free(&si);
	return rc;
}

static int gen_patient_json(struct dfs *fs, uint64_t id, struct jb *b)
{
	static const struct lvl_attr la[] = {
		{ TAG_PATIENT_NAME, "PN" }, { TAG_PATIENT_ID, "LO" },
		{ TAG_PATIENT_BIRTH_DATE, "DA" }, { TAG_PATIENT_SEX, "CS" },
	};
	struct agg a;
	uint64_t nst = 0, nse = 0, nin = 0;
	int rc = agg_init(&a, "P");
	if (rc)
		return rc;
	rc = agg_walk(fs, id, NODE_PATIENT, &a);
	if (!rc)
		rc = count_below(fs, id, NODE_PATIENT, &nst, &nse, &nin);
	if (!rc) {
		jb_open(b, '{');
		dj_attrs(b, &a, la, sizeof(la) / sizeof(la[0]));
		dj_count(b, 0x00201200, nst);
		dj_count(b, 0x00201202, nse);
		dj_count(b, 0x00201204, nin);
		jb_close(b, '}');
	}
	agg_free(&a);
	return rc;
}

/* ---- FHIR R4 ---- */

static int digits(struct sv v, size_t at, size_t n, int *out)
{
	int x = 0;
	if (at + n > v.l)
		return 0;
	for (size_t i = at; i < at + n; i++) {
		if (v.s[i] < '0' || v.s[i] > '9')
			return 0;
		x = x * 10 + (v.s[i] - '0');
	}
	*out = x;
	return 1;
}

/* DA "YYYYMMDD" -> "YYYY-MM-DD"; 0 when not a valid date. */
static int fhir_date(struct sv v, char out[24])
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, m, d;
	v = sv_trim(v);
	if (v.l != 8 || !digits(v, 0, 4, &y) || !digits(v, 4, 2, &m) ||
	    !digits(v, 6, 2, &d))
		return 0;
	if (y < 1 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 0;
	snprintf(out, 24, "%04d-%02d-%02d", y, m, d);
	return 1;
}

/* TM "HH[MM[SS[.F{1,6}]]]" (colons tolerated) -> "hh:mm:ss[.f]". */
static int fhir_time(struct sv v, char out[24])
{
	char t[32];
	size_t n = 0;
	int h = 0, m = 0, s = 0;
	v = sv_trim(v);
	for (size_t i = 0; i < v.l && n < sizeof(t) - 1; i++)
		if (v.s[i] != ':')
			t[n++] = v.s[i];
	if (n > sizeof(t) - 2)
		return 0;
	struct sv c = { t, n };
	if (n < 2 || !digits(c, 0, 2, &h) || h > 23)
		return 0;
	if (n >= 4 && (!digits(c, 2, 2, &m) || m > 59))
		return 0;
	if (n >= 6 && (!digits(c, 4, 2, &s) || s > 60))
		return 0;
	if (n == 3 || n == 5)
		return 0;
	size_t fl = 0;
	if (n > 6) {
		if (t[6] != '.' || n == 7 || n > 13)
			return 0;
		for (size_t i = 7; i < n; i++)
			if (t[i] < '0' || t[i] > '9')
				return 0;
		fl = n - 7;
	}
	int k = snprintf(out, 24, "%02d:%02d:%02d", h, m, s);
	if (fl)
		snprintf(out + k, 24 - (size_t)k, ".%.*s", (int)fl, t + 7);
	return 1;
}

/* TimezoneOffsetFromUTC "+HHMM" / "-HHMM" -> "+hh:mm". */
static int fhir_tz(struct sv v, char out[8])
{
	int h, m;
	v = sv_trim(v);
	if (v.l != 5 || (v.s[0] != '+' && v.s[0] != '-') || !digits(v, 1, 2, &h) ||
	    !digits(v, 3, 2, &m) || h > 14 || m > 59)
		return 0;
	snprintf(out, 8, "%c%02d:%02d", v.s[0], h, m);
	return 1;
}

/* dateTime from DA + TM (+ offset): a time needs a zone in FHIR, so
 * without a valid offset only the date is given. 0: nothing valid. */
static int fhir_datetime(struct sv da, struct sv tm, struct sv tz, char out[64])
{
	char d[24], t[24], z[8];
	if (!fhir_date(da, d))
		return 0;
	if (fhir_time(tm, t) && fhir_tz(tz, z))
		snprintf(out, 64, "%sT%s%s", d, t, z);
	else
		snprintf(out, 64, "%s", d);
	return 1;
}

/* unsignedInt from an IS value; 0 when not a valid one. */
static int fhir_uint(struct sv v, unsigned long *out)
{
	char t[24], *end;
	v = sv_trim(v);
	if (!v.l || v.l >= sizeof(t))
		return 0;
	memcpy(t, v.s, v.l);
	t[v.l] = 0;
	if (t[0] == '-')
		return 0;
	unsigned long long x = strtoull(t, &end, 10);
	if (*end || x > 2147483647ull)
		return 0;
	*out = (unsigned long)x;
	return 1;
}

static void fhir_absent(struct jb *b)
{
	jb_open(b, '{');
	jb_key(b, "extension");
	jb_open(b, '[');
	jb_open(b, '{');
	jb_kcstr(b, "url", "http://hl7.org/fhir/StructureDefinition/data-absent-reason");
	jb_kcstr(b, "valueCode", "unknown");
	jb_close(b, '}');
	jb_close(b, ']');
	jb_close(b, '}');
}

static void fhir_coding(struct jb *b, const char *system, const char *prefix,
			struct sv code)
{
	code = sv_trim(code);
	if (!code.l) {
		fhir_absent(b);
		return;
	}
	jb_open(b, '{');
	jb_kcstr(b, "system", system);
	jb_key(b, "code");
	if (prefix) {
		struct jb t = { 0 };
		jb_add(&t, prefix, strlen(prefix));
		jb_add(&t, code.s, code.l);
		jb_str(b, t.s ? t.s : "", t.len);
		free(t.s);
	} else {
		jb_str(b, code.s, code.l);
	}
	jb_close(b, '}');
}

/* The components of one PN group: family^given^middle^prefix^suffix. */
struct pn {
	struct sv c[5];
};

static void pn_parse(struct sv g, struct pn *p)
{
	size_t pos = 0;
	memset(p, 0, sizeof(*p));
	for (int k = 0; k < 5; k++) {
		struct sv c;
		if (!sv_split(g, '^', &pos, &c))
			break;
		p->c[k] = sv_trim(c);
	}
}

/* "prefix given middle family suffix" */
static void pn_text(const struct pn *p, struct jb *t)
{
	static const int order[] = { 3, 1, 2, 0, 4 };
	int any = 0;
	for (int i = 0; i < 5; i++) {
		struct sv c = p->c[order[i]];
		if (!c.l)
			continue;
		if (any)
			jb_c(t, ' ');
		jb_add(t, c.s, c.l);
		any = 1;
	}
}

static void fhir_human_name(struct jb *b, struct sv g, const char *repr)
{
	struct pn p;
	struct jb t = { 0 };
	pn_parse(g, &p);
	pn_text(&p, &t);
	if (!t.len) {
		free(t.s);
		return;
	}
	jb_open(b, '{');
	if (repr) {
		jb_key(b, "extension");
		jb_open(b, '[');
		jb_open(b, '{');
		jb_kcstr(b, "url", "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation");
		jb_kcstr(b, "valueCode", repr);
		jb_close(b, '}');
		jb_close(b, ']');
	}
	jb_kstr(b, "text", t.s, t.len);
	free(t.s);
	if (p.c[0].l)
		jb_kstr(b, "family", p.c[0].s, p.c[0].l);
	if (p.c[1].l || p.c[2].l) {
		jb_key(b, "given");
		jb_open(b, '[');
		for (int k = 1; k <= 2; k++)
			if (p.c[k].l)
				jb_str(b, p.c[k].s, p.c[k].l);
		jb_close(b, ']');
	}
	static const char *const fld[] = { NULL, NULL, NULL, "prefix", "suffix" };
	for (int k = 3; k <= 4; k++) {
		if (!p.c[k].l)
			continue;
		jb_key(b, fld[k]);
		jb_open(b, '[');
		jb_str(b, p.c[k].s, p.c[k].l);
		jb_close(b, ']');
	}
	jb_close(b, '}');
}

/* The patient key of the tree: PatientID, else "\0N" + PatientName. */
static uint64_t patient_hash(struct sv pid, struct sv pname)
{
	if (pid.l)
		return fnv1a(FNV_INIT, pid.s, pid.l);
	uint64_t h = fnv1a(FNV_INIT, "\0N", 2);
	return fnv1a(h, pname.s, pname.l);
}

static void fhir_id(char out[20], uint64_t h)
{
	snprintf(out, 20, "%016llx", (unsigned long long)h);
}

static int gen_patient_fhir(struct dfs *fs, uint64_t id, struct jb *b)
{
	struct agg a;
	char pidtxt[20], d[24];
	int rc = agg_init(&a, "P");
	if (rc)
		return rc;
	rc = agg_walk(fs, id, NODE_PATIENT, &a);
	if (rc) {
		agg_free(&a);
		return rc;
	}
	struct sv pid = agg_get(&a, TAG_PATIENT_ID), name = agg_get(&a, TAG_PATIENT_NAME);
	struct sv sex = sv_trim(agg_get(&a, TAG_PATIENT_SEX));
	fhir_id(pidtxt, patient_hash(pid, name));
	jb_open(b, '{');
	jb_kcstr(b, "resourceType", "Patient");
	jb_kcstr(b, "id", pidtxt);
	struct sv tp = sv_trim(pid);
	if (tp.l) {
		jb_key(b, "identifier");
		jb_open(b, '[');
		jb_open(b, '{');
		jb_kstr(b, "value", tp.s, tp.l);
		jb_close(b, '}');
		jb_close(b, ']');
	}
	/* one HumanName per non-empty PN group (the first value only) */
	struct jb names = { 0 };
	struct sv first, g;
	size_t pos = 0, gp = 0;
	if (sv_split(name, '\\', &pos, &first)) {
		static const char *const repr[] = { NULL, "IDE", "SYL" };
		for (int k = 0; k < 3 && sv_split(first, '=', &gp, &g); k++)
			fhir_human_name(&names, g, repr[k]);
	}
	if (names.len) {
		jb_key(b, "name");
		jb_open(b, '[');
		jb_add(b, names.s, names.len);
		jb_close(b, ']');
	}
	if (names.err)
		b->err = 1;
	free(names.s);
	const char *gender = "unknown";
	if (sex.l == 1 && sex.s[0] == 'M')
		gender = "male";
	else if (sex.l == 1 && sex.s[0] == 'F')
		gender = "female";
	else if (sex.l == 1 && sex.s[0] == 'O')
		gender = "other";
	jb_kcstr(b, "gender", gender);
	if (fhir_date(agg_get(&a, TAG_PATIENT_BIRTH_DATE), d))
		jb_kcstr(b, "birthDate", d);
	jb_close(b, '}');
	agg_free(&a);
	return 0;
}

static void jb_kuid(struct jb *b, const char *key, const char *prefix, struct sv uid)
{
	struct jb t = { 0 };
	jb_add(&t, prefix, strlen(prefix));
	jb_add(&t, uid.s, uid.l);
	jb_kstr(b, key, t.s ? t.s : "", t.len);
	free(t.s);
}

static int gen_study_fhir(struct dfs *fs, uint64_t id, struct jb *b)
{
	struct study_info si;
	char sid[20], pid[20], dt[64];
	unsigned long num;
	int rc = study_scan(fs, id, &si);
	if (rc)
		return rc;
	struct sv suid = sv_trim(agg_get(&si.a, TAG_STUDY_INSTANCE_UID));
	struct sv pkey = agg_get(&si.a, TAG_PATIENT_ID);
	struct sv pname = agg_get(&si.a, TAG_PATIENT_NAME);
	uint64_t ph = patient_hash(pkey, pname);
	fhir_id(pid, ph);
	/* per patient: the same study under two patients is two resources */
	uint64_t h = fnv1a(ph, "\0", 1);
	fhir_id(sid, fnv1a(h, suid.s, suid.l));

	jb_open(b, '{');
	jb_kcstr(b, "resourceType", "ImagingStudy");
	jb_kcstr(b, "id", sid);
	jb_key(b, "identifier");
	jb_open(b, '[');
	jb_open(b, '{');
	jb_kcstr(b, "use", "official");
	jb_kcstr(b, "system", "urn:dicom:uid");
	jb_kuid(b, "value", "urn:oid:", suid);
	jb_close(b, '}');
	struct sv acc = sv_trim(agg_get(&si.a, TAG_ACCESSION_NUMBER));
	if (acc.l) {
		jb_open(b, '{');
		jb_kcstr(b, "use", "usual");
		jb_key(b, "type");
		jb_open(b, '{');
		jb_key(b, "coding");
		jb_open(b, '[');
		jb_open(b, '{');
		jb_kcstr(b, "system", "http://terminology.hl7.org/CodeSystem/v2-0203");
		jb_kcstr(b, "code", "ACSN");
		jb_close(b, '}');
		jb_close(b, ']');
		jb_close(b, '}');
		jb_kstr(b, "value", acc.s, acc.l);
		jb_close(b, '}');
	}
	jb_close(b, ']');
	jb_kcstr(b, "status", "available");
	if (si.nmods) {
		jb_key(b, "modality");
		jb_open(b, '[');
		for (size_t i = 0; i < si.nmods; i++)
			fhir_coding(b, DCM_SYSTEM, NULL, si.mods[i]);
		jb_close(b, ']');
	}
	jb_key(b, "subject");
	jb_open(b, '{');
	{
		char ref[32];
		snprintf(ref, sizeof(ref), "Patient/%s", pid);
		jb_kcstr(b, "reference", ref);
	}
	jb_close(b, '}');
	struct sv tz = agg_get(&si.a, TAG_TZ_OFFSET);
	if (fhir_datetime(agg_get(&si.a, TAG_STUDY_DATE), agg_get(&si.a, TAG_STUDY_TIME), tz, dt))
		jb_kcstr(b, "started", dt);
	{
		struct sv rp = agg_get(&si.a, TAG_REFERRING), first, g;
		size_t pos = 0, gp = 0;
		struct pn p;
		struct jb t = { 0 };
		if (sv_split(rp, '\\', &pos, &first) && sv_split(first, '=', &gp, &g)) {
			pn_parse(g, &p);
			pn_text(&p, &t);
		}
		if (t.len) {
			jb_key(b, "referrer");
			jb_open(b, '{');
			jb_kstr(b, "display", t.s, t.len);
			jb_close(b, '}');
		}
		free(t.s);
	}
	jb_key(b, "numberOfSeries");
	jb_u64(b, si.nser);
	jb_key(b, "numberOfInstances");
	jb_u64(b, si.ninst);
	struct sv desc = sv_trim(agg_get(&si.a, TAG_STUDY_DESCRIPTION));
	if (desc.l)
		jb_kstr(b, "description", desc.s, desc.l);
	if (si.nser) {
		jb_key(b, "series");
		jb_open(b, '[');
	}
	for (size_t i = 0; i < si.nser; i++) {
		const struct series_info *s = &si.ser[i];
		jb_open(b, '{');
		struct sv su = sv_trim(agg_get(&s->a, TAG_SERIES_INSTANCE_UID));
		jb_kstr(b, "uid", su.s, su.l);
		if (fhir_uint(agg_get(&s->a, TAG_SERIES_NUMBER), &num)) {
			jb_key(b, "number");
			jb_u64(b, num);
		}
		jb_key(b, "modality");
		fhir_coding(b, DCM_SYSTEM, NULL, agg_get(&s->a, TAG_MODALITY));
		struct sv sd = sv_trim(agg_get(&s->a, TAG_SERIES_DESCRIPTION));
		if (sd.l)
			jb_kstr(b, "description", sd.s, sd.l);
		jb_key(b, "numberOfInstances");
		jb_u64(b, s->ninst);
		struct sv bp = sv_trim(agg_get(&s->a, TAG_BODY_PART));
		if (bp.l) {
			jb_key(b, "bodySite");
			jb_open(b, '{');
			jb_kstr(b, "display", bp.s, bp.l);
			jb_close(b, '}');
		}
		if (fhir_datetime(agg_get(&s->a, TAG_SERIES_DATE), agg_get(&s->a, TAG_SERIES_TIME),
				  agg_get(&s->a, TAG_TZ_OFFSET).l ? agg_get(&s->a, TAG_TZ_OFFSET) : tz,
				  dt))
			jb_kcstr(b, "started", dt);
		if (s->ninst) {
			jb_key(b, "instance");
			jb_open(b, '[');
		}
		for (size_t j = 0; j < s->ninst; j++) {
			const struct inst_info *ii = &s->inst[j];
			jb_open(b, '{');
			struct sv u = sv_trim(ii->uid);
			jb_kstr(b, "uid", u.s, u.l);
			jb_key(b, "sopClass");
			fhir_coding(b, "urn:ietf:rfc:3986", "urn:oid:", ii->cls);
			if (fhir_uint(ii->num, &num)) {
				jb_key(b, "number");
				jb_u64(b, num);
			}
			jb_close(b, '}');
		}
		if (s->ninst)
			jb_close(b, ']');
		jb_close(b, '}');
	}
	if (si.nser)
		jb_close(b, ']');
	jb_close(b, '}');
	study_free(&si);
	return 0;
}

/* ---- per-inode cache of generated content ---- */

#define CACHE_BUCKETS 4096
#define CACHE_MAX_BYTES (64u << 20)

struct centry {
	uint64_t key;
	char *buf;
	size_t len;
	struct centry *next;
};

static struct centry *cache[CACHE_BUCKETS];
static size_t cache_bytes;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t cache_slot(uint64_t key)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 52) % CACHE_BUCKETS;
}

/* 1 when found: *len set, *copy (if copy) a malloc()ed copy. */
static int cache_get(uint64_t key, char **copy, size_t *len)
{
	int found = 0;
	pthread_mutex_lock(&cache_lock);
	for (struct centry *e = cache[cache_slot(key)]; e; e = e->next) {
		if (e->key != key)
			continue;
		*len = e->len;
		found = 1;
		if (copy) {
			*copy = malloc(e->len ? e->len : 1);
			if (*copy)
				memcpy(*copy, e->buf, e->len);
			else
				found = 0;
		}
		break;
	}
	pthread_mutex_unlock(&cache_lock);
	return found;
}

static void cache_flush_locked(void)
{
	for (size_t i = 0; i < CACHE_BUCKETS; i++) {
		struct centry *e = cache[i];
		while (e) {
			struct centry *n = e->next;
			free(e->buf);
			free(e);
			e = n;
		}
		cache[i] = NULL;
	}
	cache_bytes = 0;
}

/* Keep a copy of buf (best effort). */
static void cache_put(uint64_t key, const char *buf, size_t len)
{
	size_t cost = len + sizeof(struct centry);
	if (cost > CACHE_MAX_BYTES / 4)
		return;
	struct centry *n = malloc(sizeof(*n));
	char *c = malloc(len ? len : 1);
	if (!n || !c) {
		free(n);
		free(c);
		return;
	}
	memcpy(c, buf, len);
	n->key = key;
	n->buf = c;
	n->len = len;
	pthread_mutex_lock(&cache_lock);
	size_t s = cache_slot(key);
	for (struct centry *e = cache[s]; e; e = e->next) {
		if (e->key == key) {   /* another thread was faster */
			pthread_mutex_unlock(&cache_lock);
			free(c);
			free(n);
			return;
		}
	}
	if (cache_bytes + cost > CACHE_MAX_BYTES)
		cache_flush_locked();
	s = cache_slot(key);
	n->next = cache[s];
	cache[s] = n;
	cache_bytes += cost;
	pthread_mutex_unlock(&cache_lock);
}

/* ---- the file kinds ---- */

static int level_type(unsigned kind)
{
	switch (kind) {
	case KIND_SERIES_JSON: return NODE_SERIES;
	case KIND_STUDY_JSON: case KIND_STUDY_FHIR: return NODE_STUDY;
	case KIND_PATIENT_JSON: case KIND_PATIENT_FHIR: return NODE_PATIENT;
	}
	return -1;
}

/* The content of level file (id, kind); buf NULL: only the length. */
static int level_content(struct dfs *fs, uint64_t id, unsigned kind,
			 const struct node_view *nv, char **buf, size_t *len)
{
	uint64_t key = ino_make(id, kind);
	struct jb b = { 0 };
	int rc;
	if (nv->rec->type != level_type(kind))
		return -ENOENT;
	if (cache_get(key, buf, len))
		return 0;
	switch (kind) {
	case KIND_SERIES_JSON: rc = gen_series_json(fs, id, &b); break;
	case KIND_STUDY_JSON: rc = gen_study_json(fs, id, &b); break;
	case KIND_PATIENT_JSON: rc = gen_patient_json(fs, id, &b); break;
	case KIND_STUDY_FHIR: rc = gen_study_fhir(fs, id, &b); break;
	case KIND_PATIENT_FHIR: rc = gen_patient_fhir(fs, id, &b); break;
	default: rc = -ENOENT;
	}
	if (!rc)
		jb_c(&b, '\n');
	if (!rc && b.err)
		rc = -ENOMEM;
	if (rc) {
		free(b.s);
		return rc;
	}
	cache_put(key, b.s, b.len);
	*len = b.len;
	if (buf)
		*buf = b.s;
	else
		free(b.s);
	return 0;
}

static int level_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
			 struct stat *st, unsigned kind)
{
	size_t len;
	int rc = level_content(fs, id, kind, nv, NULL, &len);
	if (rc)
		return rc;
	st->st_mode = S_IFREG | (nv->rec->mode & 0444);
	st->st_nlink = 1;
	st->st_uid = nv->rec->uid;
	st->st_gid = nv->rec->gid;
	st->st_size = (off_t)len;
	st->st_blocks = (st->st_size + 511) / 512;
	stat_times(st, nv->rec->mtime_ns);
	return 0;
}

#define GETATTR(fn, kind)                                                      \
	static int fn(struct dfs *fs, uint64_t id, const struct node_view *nv, \
		      struct stat *st)                                         \
	{                                                                      \
		return level_getattr(fs, id, nv, st, kind);                    \
	}
GETATTR(series_json_getattr, KIND_SERIES_JSON)
GETATTR(study_json_getattr, KIND_STUDY_JSON)
GETATTR(patient_json_getattr, KIND_PATIENT_JSON)
GETATTR(study_fhir_getattr, KIND_STUDY_FHIR)
GETATTR(patient_fhir_getattr, KIND_PATIENT_FHIR)

static int level_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		      struct dfs_file *f)
{
	return level_content(fs, id, f->kind, nv, &f->buf, &f->len);
}

#define LEVEL_KIND(var, nm, ga)                                                \
	const struct kind_ops var = {                                          \
		.name = nm,                                                    \
		.getattr = ga,                                                 \
		.open = level_open,                                            \
		.read = kind_buf_read,                                            \
		.release = kind_buf_release,                                      \
	};
LEVEL_KIND(kind_series_json, "series.json", series_json_getattr)
LEVEL_KIND(kind_study_json, "study.json", study_json_getattr)
LEVEL_KIND(kind_patient_json, "patient.json", patient_json_getattr)
LEVEL_KIND(kind_study_fhir, "study.fhir.json", study_fhir_getattr)
LEVEL_KIND(kind_patient_fhir, "patient.fhir.json", patient_fhir_getattr)

/* ---- extended attributes: user.dicom.<Keyword> ---- */

#define XATTR_PREFIX "user.dicom."

/*
 * The attribute set of an inode as a blob of { u32 index into dfs_tags,
 * u32 length, bytes } (non-empty values only), malloc()ed. Instances: their
 * own record, every level; directories (and the files that belong to them):
 * the first non-empty values of their level and the levels above.
 */
static int attr_blob(struct dfs *fs, uint64_t ino, char **out, size_t *outlen)
{
	struct node_view nv;
	uint64_t id = ino_id(ino);
	unsigned kind = ino_kind(ino);
	const char *levels;
	struct jb b = { 0 };
	int rc;

	*out = NULL;
	*outlen = 0;
	if (kind >= KIND_MAX || !dfs_kinds[kind])
		return -ENOENT;
	if ((rc = index_node(fs->ix, id, &nv)))
		return rc;
	switch (nv.rec->type) {
	case NODE_INSTANCE: levels = "PSEI"; break;
	case NODE_SERIES: levels = "PSE"; break;
	case NODE_STUDY: levels = "PS"; break;
	case NODE_PATIENT: levels = "P"; break;
	default: return 0;   /* root, patients/, .dicomfs: none */
	}
	if (nv.rec->type != NODE_INSTANCE && cache_get(ino_make(id, 0), out, outlen))
		return 0;

	struct agg a;
	if ((rc = agg_init(&a, levels)))
		return rc;
	if (nv.rec->type == NODE_INSTANCE) {
		const void *rec;
		size_t len;
		rc = index_file_record(fs->ix, nv.relpath, nv.rec->path_len, &rec, &len);
		if (!rc)
			agg_record(&a, rec, len);
	} else {
		rc = agg_walk(fs, id, nv.rec->type, &a);
	}
	for (size_t i = 0; !rc && i < dfs_ntags; i++) {
		if (!a.v[i].l)
			continue;
		uint32_t hdr[2] = { (uint32_t)i, (uint32_t)a.v[i].l };
		jb_add(&b, (const char *)hdr, sizeof(hdr));
		jb_add(&b, a.v[i].s, a.v[i].l);
	}
	agg_free(&a);
	if (!rc && b.err)
		rc = -ENOMEM;
	if (rc) {
		free(b.s);
		return rc;
	}
	if (nv.rec->type != NODE_INSTANCE)
		cache_put(ino_make(id, 0), b.s ? b.s : "", b.len);
	*out = b.s;
	*outlen = b.len;
	return 0;
}

int dfs_xattr_list(struct dfs *fs, uint64_t ino, char **buf, size_t *len)
{
	char *blob;
	size_t bl;
	struct jb b = { 0 };
	int rc = attr_blob(fs, ino, &blob, &bl);
	*buf = NULL;
	*len = 0;
	if (rc)
		return rc;
	for (size_t p = 0; p + 8 <= bl;) {
		uint32_t hdr[2];
		memcpy(hdr, blob + p, sizeof(hdr));
		const char *kw = dfs_tags[hdr[0]].keyword;
		jb_add(&b, XATTR_PREFIX, strlen(XATTR_PREFIX));
		jb_add(&b, kw, strlen(kw) + 1);
		p += 8 + hdr[1];
	}
	free(blob);
	if (b.err) {
		free(b.s);
		return -ENOMEM;
	}
	*buf = b.s;
	*len = b.len;
	return 0;
}

int dfs_xattr_get(struct dfs *fs, uint64_t ino, const char *name, char **buf,
		  size_t *len)
{
	char *blob;
	size_t bl;
	*buf = NULL;
	*len = 0;
	/*
	 * Only the user namespace is supported: security.* (SELinux labels)
	 * and system.* (POSIX ACLs) answer EOPNOTSUPP, which `ls -l` and the
	 * ACL libraries remember per device, instead of asking again for every
	 * file (two round trips per entry).
	 */
	if (strncmp(name, "user.", 5) != 0)
		return -EOPNOTSUPP;
	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) != 0)
		return -ENODATA;
	const struct dfs_tag *t = tags_by_keyword(name + strlen(XATTR_PREFIX));
	if (!t)
		return -ENODATA;
	int rc = attr_blob(fs, ino, &blob, &bl);
	if (rc)
		return rc;
	rc = -ENODATA;
	for (size_t p = 0; p + 8 <= bl;) {
		uint32_t hdr[2];
		memcpy(hdr, blob + p, sizeof(hdr));
		if (&dfs_tags[hdr[0]] == t) {
			*buf = malloc(hdr[1] ? hdr[1] : 1);
			if (!*buf) {
				rc = -ENOMEM;
				break;
			}
			memcpy(*buf, blob + p + 8, hdr[1]);
			*len = hdr[1];
			rc = 0;
			break;
		}
		p += 8 + hdr[1];
	}
	free(blob);
	return rc;
}
