/*
 * deid.c - PS3.15 Annex E de-identification of values, records and headers
 * (deid.h: D1..D6). The table is deid_table.c; the keyed hash is Nettle's
 * HMAC-SHA256.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <nettle/hmac.h>

#include "deid.h"
#include "error.h"
#include "record.h"
#include "tags.h"

/* dicomfs's implementation class UID in the meta groups it writes */
#define DEID_IMPL_UID "2.25.308226643768897221155499555060381344094"
#define DEID_IMPL_NAME "DICOMFS_ANON"
#define DEID_METHOD "PS3.15 E.1 Basic Profile, Rtn. Long. Modif. Dates"

/* ---- keyed hashes (D3) ---- */

static void hmac(const struct deid_key *k, const char *label, const void *v, size_t l,
		 uint8_t out[SHA256_DIGEST_SIZE])
{
	struct hmac_sha256_ctx c;
	hmac_sha256_set_key(&c, DEID_KEY_LEN, k->k);
	hmac_sha256_update(&c, strlen(label) + 1, (const uint8_t *)label);
	hmac_sha256_update(&c, l, v);
	hmac_sha256_digest(&c, SHA256_DIGEST_SIZE, out);
}

static void hex16(const uint8_t *d, char out[17])
{
	static const char hx[] = "0123456789ABCDEF";
	for (int i = 0; i < 8; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[16] = 0;
}

static size_t trim_len(const char *s, size_t l)
{
	while (l && (s[l - 1] == ' ' || s[l - 1] == 0))
		l--;
	return l;
}

void deid_uid(const struct deid_key *k, const char *uid, size_t len,
	      char out[DEID_UID_LEN + 1])
{
	uint8_t d[SHA256_DIGEST_SIZE];
	unsigned __int128 v = 0;
	char digits[40];
	hmac(k, "uid", uid, trim_len(uid, len), d);
	for (int i = 0; i < 16; i++)
		v = v << 8 | d[i];
	v |= (unsigned __int128)1 << 127;   /* 39 digits, always (D3) */
	for (int i = 38; i >= 0; i--) {
		digits[i] = (char)('0' + (int)(v % 10));
		v /= 10;
	}
	digits[39] = 0;
	snprintf(out, DEID_UID_LEN + 1, "2.25.%s", digits);
}

void deid_key_id(const struct deid_key *k, char out[17])
{
	uint8_t d[SHA256_DIGEST_SIZE];
	hmac(k, "key id", "", 0, d);
	hex16(d, out);
}

size_t deid_patient_key(const char *pid, size_t pidl, const char *pn, size_t pnl,
			struct strbuf *out)
{
	strbuf_reset(out);
	if (pidl) {
		strbuf_add(out, pid, pidl);
	} else {
		strbuf_add(out, "\0N", 2);
		strbuf_add(out, pn, pnl);
	}
	return out->len;
}

void deid_patient(const struct deid_key *k, const char *pkey, size_t len,
		  struct deid_patient *p)
{
	uint8_t d[SHA256_DIGEST_SIZE];
	hmac(k, "pid", pkey, len, d);
	hex16(d, p->pid);
	memcpy(p->pname, p->pid, sizeof(p->pid));
	hmac(k, "days", pkey, len, d);
	uint32_t r = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];
	p->days = -(365 + (int)(r % 3287));   /* 1 to 9 years back (D4) */
}

/* ---- the table (D1, D2) ---- */

const struct deid_rule *deid_rule_of(uint32_t tag)
{
	size_t lo = 0, hi = deid_ntable;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (deid_table[mid].tag == tag && deid_table[mid].mask == 0xFFFFFFFFu)
			return &deid_table[mid];
		if (deid_table[mid].tag < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* the repeating groups (50xx curves, 60xx overlays) */
	uint32_t g = tag >> 24;
	if (g == 0x50 || g == 0x60)
		for (size_t i = 0; i < deid_ntable; i++)
			if (deid_table[i].mask != 0xFFFFFFFFu &&
			    (tag & deid_table[i].mask) == deid_table[i].tag)
				return &deid_table[i];
	return NULL;
}

static int vr_is(const char *vr, const char *x)
{
	return vr && vr[0] == x[0] && vr[1] == x[1];
}

enum deid_action deid_action_of(uint32_t tag, const char *vr)
{
	switch (tag) {
	case TAG_PATIENT_ID: return DEID_PID;
	case TAG_PATIENT_NAME: return DEID_PNAME;
	case 0x00120062: case 0x00120063: case 0x00120064: case 0x00280303:
		return DEID_OURS;
	}
	if ((tag >> 16) & 1)
		return DEID_REMOVE;   /* private (D1) */
	const struct deid_rule *r = deid_rule_of(tag);
	if (!r)
		return DEID_KEEP;
	const char *v = vr ? vr : r->vr;
	if (r->moddates[0] == 'C') {
		if (vr_is(v, "DA") || vr_is(v, "DT"))
			return DEID_SHIFT;
		if (vr_is(v, "TM"))
			return DEID_KEEP;
	}
	const char *b = r->basic;
	if (strchr(b, 'U'))
		return DEID_UID;
	if (strchr(b, 'D'))
		return DEID_DUMMY;
	if (strchr(b, 'Z'))
		return DEID_EMPTY;
	if (strchr(b, 'X'))
		return DEID_REMOVE;
	return DEID_KEEP;
}

/* ---- dates (D4) ---- */



/* s[0, 8) YYYYMMDD shifted by days into out (8 bytes); 0, or -1 when it
 * is not a date */
static int shift8(const char *s, int days, char *out)
{
	long y = 0;
	unsigned m = 0, d = 0;
	for (int i = 0; i < 8; i++)
		if (s[i] < '0' || s[i] > '9')
			return -1;
	for (int i = 0; i < 4; i++)
		y = y * 10 + (s[i] - '0');
	m = (unsigned)((s[4] - '0') * 10 + (s[5] - '0'));
	d = (unsigned)((s[6] - '0') * 10 + (s[7] - '0'));
	/* years before 11 could shift before year 1 with one key and not with
	 * another: not a date for any key (D3) */
	if (m < 1 || m > 12 || d < 1 || d > 31 || y < 11)
		return -1;
	long z = tags_days_from_civil(y, m, d) + days;
	tags_civil_from_days(z, &y, &m, &d);
	if (y < 1 || y > 9999)
		return -1;
	long v[3] = { y, (long)m, (long)d };
	int w[3] = { 4, 2, 2 }, o = 8;
	for (int i = 2; i >= 0; i--)
		for (int j = 0; j < w[i]; j++, v[i] /= 10)
			out[--o] = (char)('0' + v[i] % 10);
	return 0;
}

/* one DA or DT value (or a range A-B) shifted into out; -1: not a date */
static int shift_value(const char *v, size_t l, int days, int dt, struct strbuf *out)
{
	const char *dash = dt ? NULL : memchr(v, '-', l);
	if (dash) {
		size_t a = (size_t)(dash - v);
		if (a && shift_value(v, a, days, 0, out))
			return -1;
		strbuf_addch(out, '-');
		if (l - a - 1 && shift_value(dash + 1, l - a - 1, days, 0, out))
			return -1;
		return 0;
	}
	char d8[8];
	if (l < 8 || (!dt && l != 8) || shift8(v, days, d8))
		return -1;
	strbuf_add(out, d8, 8);
	strbuf_add(out, v + 8, l - 8);
	return 0;
}

/* ---- values ---- */

static int vr_binary(const char *vr)
{
	static const char *const bin[] = { "OB", "OD", "OF", "OL", "OV", "OW", "UN",
					   "US", "SS", "UL", "SL", "FL", "FD", "AT",
					   "SV", "UV", NULL };
	for (int i = 0; bin[i]; i++)
		if (vr_is(vr, bin[i]))
			return 1;
	return 0;
}

/* the D value of a VR (D2) */
static const char *dummy_of(const char *vr)
{
	if (vr_is(vr, "DA"))
		return "19000101";
	if (vr_is(vr, "DT"))
		return "19000101000000";
	if (vr_is(vr, "TM"))
		return "000000";
	if (vr_is(vr, "IS") || vr_is(vr, "DS"))
		return "0";
	if (vr_is(vr, "AS"))
		return "000D";
	return "ANONYMOUS";
}

/* the values of v separated by '\' through fn into out, separators kept */
static int each_value(const char *v, size_t l, struct strbuf *out,
		      int (*fn)(const char *, size_t, void *, struct strbuf *), void *ctx)
{
	size_t a = 0;
	for (size_t i = 0; i <= l; i++) {
		if (i < l && v[i] != '\\')
			continue;
		if (a)
			strbuf_addch(out, '\\');
		size_t vl = trim_len(v + a, i - a);
		while (vl && v[a] == ' ') {
			a++;
			vl--;
		}
		if (vl && fn(v + a, vl, ctx, out))
			return -1;
		a = i + 1;
	}
	return 0;
}

struct vctx {
	const struct deid_key *k;
	int days, dt;
};

static int one_uid(const char *v, size_t l, void *ctx, struct strbuf *out)
{
	char u[DEID_UID_LEN + 1];
	deid_uid(((struct vctx *)ctx)->k, v, l, u);
	return strbuf_add(out, u, DEID_UID_LEN);
}

static int one_date(const char *v, size_t l, void *ctx, struct strbuf *out)
{
	struct vctx *c = ctx;
	return shift_value(v, l, c->days, c->dt, out);
}

int deid_text(const struct deid_key *k, const struct deid_patient *p, uint32_t tag,
	      const char *vr, const char *v, size_t l, struct strbuf *out)
{
	enum deid_action a = deid_action_of(tag, vr);
	const struct deid_rule *r = vr ? NULL : deid_rule_of(tag);
	const char *v_r = vr ? vr : r ? r->vr : "UN";
	struct vctx c = { k, p->days, vr_is(v_r, "DT") };
	strbuf_reset(out);
	switch (a) {
	case DEID_KEEP:
		return 0;
	case DEID_REMOVE:
	case DEID_OURS:
		return 2;
	case DEID_EMPTY:
		break;
	case DEID_DUMMY:
		if (vr_is(v_r, "UI"))
			each_value(v, l, out, one_uid, &c);
		else if (!vr_binary(v_r))
			strbuf_addstr(out, dummy_of(v_r));
		break;
	case DEID_UID:
		each_value(v, l, out, one_uid, &c);
		break;
	case DEID_SHIFT:
		if (each_value(v, l, out, one_date, &c))
			strbuf_reset(out);   /* not a date: empty (D4) */
		break;
	case DEID_PID:
		strbuf_addstr(out, p->pid);
		break;
	case DEID_PNAME:
		strbuf_addstr(out, p->pname);
		break;
	}
	return strbuf_error(out) ? -ENOMEM : 1;
}

int deid_record(const struct deid_key *k, const void *rec, size_t len,
		struct rec_buf *out)
{
	struct rec_head h;
	struct strbuf key = STRBUF_INIT, nv = STRBUF_INIT;
	struct deid_patient p;
	const char *pid = "", *pn = "", *v;
	size_t pidl = 0, pnl = 0, pos = 0, l;
	uint32_t tag;
	char vr[3] = "";
	int rc = rec_head_get(rec, len, &h);
	if (rc)
		return rc;
	rec_attr(rec, len, TAG_PATIENT_ID, &pid, &pidl);
	rec_attr(rec, len, TAG_PATIENT_NAME, &pn, &pnl);
	deid_patient_key(pid, pidl, pn, pnl, &key);
	deid_patient(k, strbuf_str(&key), key.len, &p);
	h.nattrs = 0;
	rc = rec_begin(out, &h);
	while (!rc && rec_next(rec, len, &pos, &tag, vr, &v, &l)) {
		int r = deid_text(k, &p, tag, vr, v, l, &nv);
		if (r < 0)
			rc = r;
		else if (r == 0)
			rc = rec_add(out, tag, vr, v, l);
		else if (r == 1 && nv.len)
			rc = rec_add(out, tag, vr, nv.buf, nv.len);
	}
	strbuf_release(&key);
	strbuf_release(&nv);
	if (rc)
		rec_release(out);
	return rc;
}

/* ---- the header (D5, D6) ---- */

struct elem {
	uint32_t tag;
	char vr[3];          /* "" when implicit (or an item tag) */
	size_t hlen;         /* header bytes */
	uint32_t len;        /* value length; UNDEF: undefined */
	size_t vpos;         /* value offset */
};

#define UNDEF 0xFFFFFFFFu
#define ITEM 0xFFFEE000u
#define ITEM_END 0xFFFEE00Du
#define SEQ_END 0xFFFEE0DDu

struct walk {
	const uint8_t *b;
	size_t n;
	int be;
	const struct deid_key *k;
	const struct deid_patient *p;
	struct strbuf val;     /* scratch for a new value */
	/* the top level's SOP Class / Instance UIDs (for the meta group) */
	const char *sop_class, *sop_inst;
	size_t sop_class_l, sop_inst_l;
};

static uint16_t rd16(const struct walk *w, size_t p)
{
	return w->be ? (uint16_t)(w->b[p] << 8 | w->b[p + 1])
		     : (uint16_t)(w->b[p] | w->b[p + 1] << 8);
}

static uint32_t rd32(const struct walk *w, size_t p)
{
	return w->be ? (uint32_t)w->b[p] << 24 | (uint32_t)w->b[p + 1] << 16 |
			       (uint32_t)w->b[p + 2] << 8 | w->b[p + 3]
		     : (uint32_t)w->b[p] | (uint32_t)w->b[p + 1] << 8 |
			       (uint32_t)w->b[p + 2] << 16 | (uint32_t)w->b[p + 3] << 24;
}

static void put16(struct strbuf *o, int be, uint16_t v)
{
	uint8_t x[2] = { be ? (uint8_t)(v >> 8) : (uint8_t)v, be ? (uint8_t)v : (uint8_t)(v >> 8) };
	strbuf_add(o, x, 2);
}

static void put32(struct strbuf *o, int be, uint32_t v)
{
	put16(o, be, (uint16_t)(be ? v >> 16 : v));
	put16(o, be, (uint16_t)(be ? v : v >> 16));
}

static int vr_long(const char *vr)
{
	static const char *const l[] = { "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC",
					 "UN", "UR", "UT", "SV", "UV", NULL };
	for (int i = 0; l[i]; i++)
		if (vr_is(vr, l[i]))
			return 1;
	return 0;
}

static int parse_elem(const struct walk *w, size_t pos, size_t end, int explicit,
		      struct elem *e)
{
	if (pos > end || end - pos < 8)
		return DFS_EPARSE;
	e->tag = (uint32_t)rd16(w, pos) << 16 | rd16(w, pos + 2);
	e->vr[0] = 0;
	if ((e->tag >> 16) == 0xFFFE || !explicit) {
		e->len = rd32(w, pos + 4);
		e->hlen = 8;
	} else {
		e->vr[0] = (char)w->b[pos + 4];
		e->vr[1] = (char)w->b[pos + 5];
		e->vr[2] = 0;
		if (e->vr[0] < 'A' || e->vr[0] > 'Z' || e->vr[1] < 'A' || e->vr[1] > 'Z')
			return DFS_EPARSE;
		if (vr_long(e->vr)) {
			if (end - pos < 12)
				return DFS_EPARSE;
			e->len = rd32(w, pos + 8);
			e->hlen = 12;
		} else {
			e->len = rd16(w, pos + 6);
			e->hlen = 8;
		}
	}
	e->vpos = pos + e->hlen;
	if (e->len != UNDEF && (e->len > end - e->vpos))
		return DFS_EPARSE;
	return 0;
}

static void put_head(struct strbuf *o, int be, int explicit, uint32_t tag,
		     const char *vr, uint32_t len)
{
	put16(o, be, (uint16_t)(tag >> 16));
	put16(o, be, (uint16_t)tag);
	if (!explicit || (tag >> 16) == 0xFFFE) {
		put32(o, be, len);
	} else if (vr_long(vr)) {
		strbuf_add(o, vr, 2);
		put16(o, be, 0);
		put32(o, be, len);
	} else {
		strbuf_add(o, vr, 2);
		put16(o, be, (uint16_t)len);
	}
}

/* a text element with value v (padded to even length) */
static void put_text(struct strbuf *o, int be, int explicit, uint32_t tag,
		     const char *vr, const char *v, size_t l)
{
	size_t pl = l + (l & 1);
	put_head(o, be, explicit, tag, vr, (uint32_t)pl);
	strbuf_add(o, v, l);
	if (l & 1)
		strbuf_addch(o, vr_is(vr, "UI") ? 0 : ' ');
}

static int dataset(struct walk *w, struct strbuf *o, size_t *pos, size_t end,
		   int explicit, int depth, int in_item, int top);

/* Is element e (defined length) a sequence although its VR is unknown? */
static int looks_like_seq(const struct walk *w, const struct elem *e)
{
	if (e->len == UNDEF)
		return 1;
	if (e->len < 8)
		return 0;
	return ((uint32_t)rd16(w, e->vpos) << 16 | rd16(w, e->vpos + 2)) == ITEM;
}

/* The items of a sequence whose value starts at e->vpos; *pos: after it.
 * o NULL: skipped. */
static int sequence(struct walk *w, struct strbuf *o, const struct elem *e, size_t end,
		    int explicit, int depth, size_t *pos)
{
	size_t p = e->vpos, send = e->len == UNDEF ? end : e->vpos + e->len;
	if (depth >= DEID_MAX_DEPTH)
		return DFS_ETOOBIG;
	for (;;) {
		struct elem it;
		if (e->len != UNDEF && p == send)
			break;
		int rc = parse_elem(w, p, send, 0, &it);
		if (rc)
			return rc;
		if (it.tag == SEQ_END && e->len == UNDEF) {
			p = it.vpos;
			break;
		}
		if (it.tag != ITEM)
			return DFS_EPARSE;
		if (o)
			put_head(o, w->be, explicit, ITEM, "", UNDEF);
		p = it.vpos;
		size_t iend = it.len == UNDEF ? send : it.vpos + it.len;
		rc = dataset(w, o, &p, iend, explicit, depth + 1, it.len == UNDEF, 0);
		if (rc)
			return rc;
		if (it.len != UNDEF && p != iend)
			return DFS_EPARSE;
		if (o)
			put_head(o, w->be, explicit, ITEM_END, "", 0);
	}
	if (o)
		put_head(o, w->be, explicit, SEQ_END, "", 0);
	*pos = p;
	return 0;
}

/* An undefined-length element that is not a sequence (encapsulated pixel
 * data in an item): its fragments, copied as they are when o. */
static int fragments(struct walk *w, struct strbuf *o, const struct elem *e, size_t start,
		     size_t end, size_t *pos)
{
	size_t p = e->vpos;
	for (;;) {
		struct elem it;
		int rc = parse_elem(w, p, end, 0, &it);
		if (rc || it.len == UNDEF)
			return DFS_EPARSE;
		p = it.vpos + it.len;
		if (it.tag == SEQ_END)
			break;
		if (it.tag != ITEM)
			return DFS_EPARSE;
	}
	if (o)
		strbuf_add(o, w->b + start, p - start);
	*pos = p;
	return 0;
}

/* the elements dicomfs adds to the top level (D5), those below tag `below`
 * not yet written (*next: index of the next to write) */
static void put_ours(struct walk *w, struct strbuf *o, int explicit, uint32_t below,
		     int *next)
{
	static const struct { const char *code, *meaning; } codes[] = {
		{ "113100", "Basic Application Confidentiality Profile" },
		{ "113107", "Retain Longitudinal Temporal Information Modified Dates Option" },
	};
	static const uint32_t ours[] = { 0x00120062, 0x00120063, 0x00120064, 0x00280303 };
	for (; *next < 4 && ours[*next] < below; (*next)++) {
		uint32_t t = ours[*next];
		if (t == 0x00120062) {
			put_text(o, w->be, explicit, t, "CS", "YES", 3);
		} else if (t == 0x00120063) {
			put_text(o, w->be, explicit, t, "LO", DEID_METHOD, strlen(DEID_METHOD));
		} else if (t == 0x00120064) {
			put_head(o, w->be, explicit, t, "SQ", UNDEF);
			for (size_t i = 0; i < 2; i++) {
				put_head(o, w->be, explicit, ITEM, "", UNDEF);
				put_text(o, w->be, explicit, 0x00080100, "SH", codes[i].code, 6);
				put_text(o, w->be, explicit, 0x00080102, "SH", "DCM", 3);
				put_text(o, w->be, explicit, 0x00080104, "LO", codes[i].meaning,
					 strlen(codes[i].meaning));
				put_head(o, w->be, explicit, ITEM_END, "", 0);
			}
			put_head(o, w->be, explicit, SEQ_END, "", 0);
		} else {
			put_text(o, w->be, explicit, t, "CS", "MODIFIED", 8);
		}
	}
}

/* One element e (header at pos) through its action; *pos: after it. */
static int element(struct walk *w, struct strbuf *o, size_t pos, const struct elem *e,
		   size_t end, int explicit, int depth, size_t *next)
{
	const struct deid_rule *r = deid_rule_of(e->tag);
	const char *vr = e->vr[0] ? e->vr : r ? r->vr : "UN";
	enum deid_action a = deid_action_of(e->tag, e->vr[0] ? e->vr : NULL);
	int seq = vr_is(e->vr, "SQ") || (vr_is(e->vr, "UN") && e->len == UNDEF) ||
		  (!e->vr[0] && e->tag != 0x7FE00010u &&
		   ((r && vr_is(r->vr, "SQ")) || looks_like_seq(w, e)));
	if (seq) {
		/* the content of a UN sequence is implicit VR little endian */
		int inner = vr_is(e->vr, "UN") ? 0 : explicit;
		int drop = a == DEID_REMOVE || a == DEID_OURS;
		int empty = a == DEID_EMPTY || a == DEID_DUMMY;
		if (!drop && o)
			put_head(o, w->be, explicit, e->tag, vr_is(e->vr, "UN") ? "UN" : "SQ",
				 empty ? 0 : UNDEF);
		struct strbuf *so = drop || empty ? NULL : o;
		int saved = w->be;
		if (!inner && vr_is(e->vr, "UN"))
			w->be = 0;
		int rc = sequence(w, so, e, end, inner, depth, next);
		w->be = saved;
		return rc;
	}
	if (e->len == UNDEF)
		return fragments(w, a == DEID_KEEP ? o : NULL, e, pos, end, next);
	*next = e->vpos + e->len;
	if (!o || a == DEID_REMOVE || a == DEID_OURS)
		return 0;
	if (a == DEID_KEEP) {
		strbuf_add(o, w->b + pos, e->hlen + e->len);
		/* the top level's SOP Class UID, for the meta group */
		if (e->tag == TAG_SOP_CLASS_UID && depth == 0) {
			w->sop_class = (const char *)w->b + e->vpos;
			w->sop_class_l = e->len;
		}
		return 0;
	}
	if (e->tag == TAG_SOP_INSTANCE_UID && depth == 0) {
		w->sop_inst = (const char *)w->b + e->vpos;
		w->sop_inst_l = e->len;
	}
	if (vr_binary(vr) && a != DEID_EMPTY) {
		/* D on a binary value: zeros of the same length */
		put_head(o, w->be, explicit, e->tag, vr, e->len);
		for (uint32_t i = 0; i < e->len; i++)
			strbuf_addch(o, 0);
		return 0;
	}
	int rc = deid_text(w->k, w->p, e->tag, e->vr[0] ? e->vr : NULL,
			   (const char *)w->b + e->vpos, e->len, &w->val);
	if (rc < 0)
		return rc;
	if (rc == 2)
		return 0;
	put_text(o, w->be, explicit, e->tag, vr, w->val.buf ? w->val.buf : "", w->val.len);
	return 0;
}

/* The elements from *pos to end (or to an item delimiter when in_item). */
static int dataset(struct walk *w, struct strbuf *o, size_t *pos, size_t end,
		   int explicit, int depth, int in_item, int top)
{
	int ours = 0;
	size_t p = *pos;
	while (p < end) {
		struct elem e;
		int rc = parse_elem(w, p, end, explicit, &e);
		if (rc)
			return rc;
		if (e.tag == ITEM_END) {
			if (!in_item)
				return DFS_EPARSE;
			*pos = e.vpos;
			return 0;
		}
		if ((e.tag >> 16) == 0xFFFE)
			return DFS_EPARSE;
		if (top && o)
			put_ours(w, o, explicit, e.tag, &ours);
		rc = element(w, o, p, &e, end, explicit, depth, &p);
		if (rc)
			return rc;
	}
	if (in_item && end == w->n)
		return DFS_EPARSE;   /* no item delimiter before the end */
	if (top && o)
		put_ours(w, o, explicit, 0xFFFFFFFFu, &ours);
	*pos = p;
	return 0;
}

static int is_vr_at(const uint8_t *b, size_t n, size_t p)
{
	return p + 6 <= n && b[p + 4] >= 'A' && b[p + 4] <= 'Z' && b[p + 5] >= 'A' &&
	       b[p + 5] <= 'Z';
}

int deid_header(const struct deid_key *k, const struct deid_patient *p,
		const uint8_t *buf, size_t header_end, struct strbuf *out)
{
	struct walk w = { .b = buf, .n = header_end, .k = k, .p = p, .val = STRBUF_INIT };
	struct strbuf ds = STRBUF_INIT;
	char ts[65] = "", mclass[65] = "", minst[65] = "";
	size_t pos = 0;
	int explicit = 1, rc;

	if (header_end >= 132 && memcmp(buf + 128, "DICM", 4) == 0) {
		/* the meta group: explicit VR little endian */
		pos = 132;
		while (pos + 8 <= header_end && buf[pos] == 2 && buf[pos + 1] == 0) {
			struct elem e;
			if ((rc = parse_elem(&w, pos, header_end, 1, &e)) || e.len == UNDEF)
				return rc ? rc : DFS_EPARSE;
			char *dst = e.tag == 0x00020010 ? ts : e.tag == 0x00020002 ? mclass
				  : e.tag == 0x00020003 ? minst : NULL;
			if (dst) {
				size_t l = trim_len((const char *)buf + e.vpos, e.len);
				if (l > 64)
					l = 64;
				memcpy(dst, buf + e.vpos, l);
				dst[l] = 0;
			}
			pos = e.vpos + e.len;
		}
	}
	/* the data set's encoding: the transfer syntax, unless its first
	 * element says otherwise (as dcmwalk: ts_mismatch) */
	int native = !ts[0] || strcmp(ts, "1.2.840.10008.1.2") == 0 ||
		     strcmp(ts, "1.2.840.10008.1.2.1") == 0 ||
		     strcmp(ts, "1.2.840.10008.1.2.2") == 0;
	if (strcmp(ts, "1.2.840.10008.1.2.1.99") == 0)
		return DFS_EPARSE;   /* deflated: not rewritten here */
	w.be = strcmp(ts, "1.2.840.10008.1.2.2") == 0;
	explicit = ts[0] ? strcmp(ts, "1.2.840.10008.1.2") != 0 : is_vr_at(buf, header_end, pos);
	if (pos < header_end && explicit != is_vr_at(buf, header_end, pos) && !w.be) {
		explicit = !explicit;
		if (native)
			snprintf(ts, sizeof(ts), "%s",
				 explicit ? "1.2.840.10008.1.2.1" : "1.2.840.10008.1.2");
	}
	if (!ts[0])
		snprintf(ts, sizeof(ts), "%s", explicit ? "1.2.840.10008.1.2.1" : "1.2.840.10008.1.2");

	rc = dataset(&w, &ds, &pos, header_end, explicit, 0, 0, 1);
	if (!rc && pos != header_end)
		rc = DFS_EPARSE;
	if (!rc) {
		/* the meta group (D5) */
		struct strbuf m = STRBUF_INIT;
		char uid[DEID_UID_LEN + 1];
		const char *cls = w.sop_class_l ? w.sop_class : mclass;
		size_t cls_l = w.sop_class_l ? trim_len(w.sop_class, w.sop_class_l) : strlen(mclass);
		if (w.sop_inst_l)
			deid_uid(k, w.sop_inst, w.sop_inst_l, uid);
		else
			deid_uid(k, minst, strlen(minst), uid);
		put_head(&m, 0, 1, 0x00020001, "OB", 2);
		strbuf_add(&m, "\0\1", 2);
		put_text(&m, 0, 1, 0x00020002, "UI", cls, cls_l);
		put_text(&m, 0, 1, 0x00020003, "UI", uid, DEID_UID_LEN);
		put_text(&m, 0, 1, 0x00020010, "UI", ts, strlen(ts));
		put_text(&m, 0, 1, 0x00020012, "UI", DEID_IMPL_UID, strlen(DEID_IMPL_UID));
		put_text(&m, 0, 1, 0x00020013, "SH", DEID_IMPL_NAME, strlen(DEID_IMPL_NAME));
		static const uint8_t zero[128];
		strbuf_add(out, zero, sizeof(zero));
		strbuf_add(out, "DICM", 4);
		put_head(out, 0, 1, 0x00020000, "UL", 4);
		put32(out, 0, (uint32_t)m.len);
		strbuf_add(out, m.buf, m.len);
		strbuf_add(out, ds.buf, ds.len);
		rc = strbuf_error(&m) || strbuf_error(out) || strbuf_error(&ds) ? -ENOMEM : 0;
		strbuf_release(&m);
	}
	strbuf_release(&ds);
	strbuf_release(&w.val);
	return rc;
}
