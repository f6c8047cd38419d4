/*
 * dcmelem.c - the element stream of a DICOM header in C (see dcmelem.h).
 *
 * Design notes
 * - Two passes: parse() walks the bytes into an event list (element,
 *   charset, sequence and item boundaries), refusing anything it is not
 *   sure GDCM reads the same way; only when the whole data set parsed are
 *   the events replayed to the caller's ops. So a refusal reports nothing
 *   and the caller's GDCM walk starts from a clean state.
 * - What GDCM 3.0's reader does that the replay mirrors (dcmshim_walk.cc):
 *   each data set in tag order (we require it strictly ascending, so
 *   GDCM's sorting and its dropping of duplicates never matter);
 *   (0008,0005) reported first in its data set; group lengths, group 0002
 *   and FFFE tags not reported; implicit VR from the dictionary, "US or SS"
 *   by the PixelRepresentation of the nearest data set holding one (the
 *   whole data set, elements after included, as GDCM has it parsed), LUT
 *   Data by LUTDescriptor[0] of its own data set, "OB or OW" as OW; an
 *   implicit undefined-length element is a sequence, a defined-length one
 *   whose dictionary VR is SQ is parsed as a sequence (GetValueAsSQ);
 *   bulk offsets found by the same search as dcmshim_walk.cc's locate()
 *   (not the true offset: the same answer, byte for byte).
 * - Refused (DCMELEM_UNHANDLED), left to GDCM:
 *   (E1) no "DICM" preamble, deflated, big endian, ts_mismatch, no or an
 *        unknown transfer syntax, meta tags not strictly ascending (a
 *        transfer syntax twice: GDCM keeps the first, dcmwalk the last);
 *   (E2) tags not strictly ascending in a data set; groups 0000-0007 other
 *        than 0004 in the data set; FFFE tags other than items and their
 *        delimiters where they belong; a top-level tag >= (7FE0,0008);
 *        a sequence under a group length tag, SpecificCharacterSet,
 *        PixelRepresentation or LUTDescriptor;
 *   (E3) explicit VR: an unknown VR, UN of undefined length or whose
 *        dictionary VR is SQ (GDCM reads those as sequences, CP-246; other
 *        UN elements take their dictionary VR, as in the shim), non-zero
 *        reserved bytes, an undefined length on anything but SQ
 *        (fragments);
 *   (E4) implicit VR: an undefined length on (7FE0,0010), a private
 *        creator that is a sequence, a defined-length SQ value that does
 *        not parse as items;
 *   (E5) the lengths GDCM patches (explicit UL of length 6 in group 0009,
 *        (00FF,4AA5), (01F7,1070), (031E,0324), odd lengths inside
 *        defined-length items, item length 63, sequence lengths 444/778),
 *        a non-zero item delimiter length, a sequence delimiter in a
 *        defined-length sequence;
 *   (E6) anything that runs past the buffer, a nesting deeper than
 *        DCMWALK_MAX_DEPTH, a big-endian host.
 * - Invariant (L1): every read is preceded by a check of its end against
 *   the limit in force (the buffer, or the end of the enclosing
 *   defined-length item / sequence / value); offsets are size_t and a
 *   32-bit length is compared as limit - pos, never added first.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dcmelem.h"

#define UNDEF 0xFFFFFFFFu
#define UNH DCMELEM_UNHANDLED

enum { EV_NONE, EV_ELEM, EV_CHARSET, EV_SEQ_BEGIN, EV_SEQ_END, EV_ITEM_BEGIN,
       EV_ITEM_END };

struct ev {
	uint32_t tag;
	uint32_t len;
	size_t off;         /* value offset in buf */
	uint32_t ds;        /* data set holding it */
	uint8_t kind;
	char vr[2];
};

struct dsi {
	uint32_t parent;    /* UINT32_MAX: top level */
	uint32_t first_ev;  /* its first event (the charset slot) */
	uint8_t pr_state;   /* PixelRepresentation: 0 absent, 1 unusable, 2 pr_val */
	uint8_t lut_state;  /* LUTDescriptor, the same */
	uint16_t pr_val, lut_val;
};

struct st {
	const uint8_t *buf;
	size_t len;
	int explicit_vr;
	struct ev *ev;
	size_t nev, evcap;
	struct dsi *ds;
	size_t nds, dscap;
	struct ev ev_local[256];
	struct dsi ds_local[32];
};

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[1] << 8 | p[0]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static int vr_eq(const char *vr, const char *s)
{
	return vr[0] == s[0] && vr[1] == s[1];
}

/* the VRs GDCM 3.0 knows, 32-bit length ones flagged */
static int vr_lookup(const uint8_t *p, int *long_len)
{
	static const char kv[] = "AEASATCSDADSDTFDFLISLOLTPNSHSLSSSTTMUIULUS";
	static const char lv[] = "OBODOFOLOVOWSQSVUCUNURUTUV";
	for (size_t i = 0; i + 1 < sizeof(kv); i += 2)
		if (p[0] == kv[i] && p[1] == kv[i + 1]) {
			*long_len = 0;
			return 1;
		}
	for (size_t i = 0; i + 1 < sizeof(lv); i += 2)
		if (p[0] == lv[i] && p[1] == lv[i + 1]) {
			*long_len = 1;
			return 1;
		}
	return 0;  /* unknown (E3) */
}

static int vr_binary(const char *vr)
{
	return vr_eq(vr, "OB") || vr_eq(vr, "OW") || vr_eq(vr, "OF") || vr_eq(vr, "OD") ||
	       vr_eq(vr, "OL") || vr_eq(vr, "OV") || vr_eq(vr, "UN");
}

/* ---- events ---- */

static struct ev *ev_push(struct st *s, uint8_t kind, uint32_t tag, uint32_t ds)
{
	if (s->nev == s->evcap) {
		size_t cap = s->evcap * 2;
		struct ev *n;
		if (s->ev == s->ev_local) {
			n = malloc(cap * sizeof(*n));
			if (n)
				memcpy(n, s->ev, s->nev * sizeof(*n));
		} else {
			n = realloc(s->ev, cap * sizeof(*n));
		}
		if (!n)
			return NULL;
		s->ev = n;
		s->evcap = cap;
	}
	struct ev *e = &s->ev[s->nev++];
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->tag = tag;
	e->ds = ds;
	return e;
}

static int ds_new(struct st *s, uint32_t parent, uint32_t *id)
{
	if (s->nds == s->dscap) {
		size_t cap = s->dscap * 2;
		struct dsi *n;
		if (s->ds == s->ds_local) {
			n = malloc(cap * sizeof(*n));
			if (n)
				memcpy(n, s->ds, s->nds * sizeof(*n));
		} else {
			n = realloc(s->ds, cap * sizeof(*n));
		}
		if (!n)
			return -ENOMEM;
		s->ds = n;
		s->dscap = cap;
	}
	*id = (uint32_t)s->nds;
	struct dsi *d = &s->ds[s->nds++];
	memset(d, 0, sizeof(*d));
	d->parent = parent;
	d->first_ev = (uint32_t)s->nev;
	return 0;
}

/* ---- the dictionary (implicit VR) ---- */

#define DICT_SLOTS 4096
static _Atomic uint64_t dict_cache[DICT_SLOTS];

static int dict_public(uint32_t tag, char vr[2])
{
	uint32_t h = (tag * 2654435761u) >> 20;
	for (unsigned i = 0; i < 8; i++) {
		uint64_t v = atomic_load_explicit(&dict_cache[(h + i) % DICT_SLOTS],
						  memory_order_relaxed);
		if (!v)
			break;
		if ((uint32_t)(v >> 32) == tag) {
			vr[0] = (char)(v >> 16);
			vr[1] = (char)(v >> 8);
			return 0;
		}
	}
	if (dcmshim_dict_vr(tag, NULL, 0, vr))
		return UNH;
	uint64_t nv = (uint64_t)tag << 32 | (uint64_t)(uint8_t)vr[0] << 16 |
		      (uint64_t)(uint8_t)vr[1] << 8 | 1;
	for (unsigned i = 0; i < 8; i++) {
		uint64_t exp = 0;
		_Atomic uint64_t *slot = &dict_cache[(h + i) % DICT_SLOTS];
		if (atomic_compare_exchange_strong_explicit(slot, &exp, nv, memory_order_relaxed,
							    memory_order_relaxed) ||
		    (uint32_t)(exp >> 32) == tag)
			break;
	}
	return 0;
}

/* the private creator of tag in data set d: the element's event, or NULL */
static int find_creator(const struct st *s, uint32_t d, uint32_t tag, const struct ev **out)
{
	uint32_t ct = (tag & 0xFFFF0000u) | ((tag & 0xFFFF) >> 8);
	*out = NULL;
	for (size_t i = s->nev; i-- > s->ds[d].first_ev;) {
		const struct ev *e = &s->ev[i];
		if (e->ds != d || e->tag != ct)
			continue;
		if (e->kind == EV_ELEM) {
			*out = e;
			return 0;
		}
		if (e->kind == EV_SEQ_BEGIN)
			return UNH;  /* (E4) */
	}
	return 0;
}

static int dict_vr(const struct st *s, uint32_t d, uint32_t tag, char vr[2])
{
	if (!((tag >> 16) & 1))
		return dict_public(tag, vr);
	const struct ev *c;
	if (find_creator(s, d, tag, &c))
		return UNH;
	if (dcmshim_dict_vr(tag, c ? (const char *)s->buf + c->off : NULL, c ? c->len : 0, vr))
		return UNH;
	return 0;
}

/* ---- parse ---- */

enum { DS_TOP, DS_DEF, DS_UNDEF };

static int parse_dataset(struct st *s, size_t *pos, size_t end, int mode,
			 uint32_t parent, int depth, uint32_t *out_ds);

/*
 * Items of a sequence from *pos: up to end (defined length) or a
 * sequence delimiter (end == 0, limit: the enclosing limit).
 */
static int parse_items(struct st *s, size_t *pos, size_t end, size_t limit,
		       uint32_t parent, int depth)
{
	int defined = end != 0;
	if (defined)
		limit = end;
	for (;;) {
		if (defined && *pos == end)
			return 0;
		if (*pos > limit || limit - *pos < 8)
			return UNH;
		const uint8_t *p = s->buf + *pos;
		uint32_t tag = (uint32_t)rd16(p) << 16 | rd16(p + 2);
		uint32_t vl = rd32(p + 4);
		*pos += 8;
		if (tag == 0xFFFEE0DD) {
			if (defined || vl != 0)
				return UNH;  /* (E5) */
			return 0;
		}
		if (tag != 0xFFFEE000)
			return UNH;
		if (!ev_push(s, EV_ITEM_BEGIN, 0, parent))
			return -ENOMEM;
		int rc;
		uint32_t d;
		if (vl == UNDEF) {
			rc = parse_dataset(s, pos, limit, DS_UNDEF, parent, depth + 1, &d);
		} else {
			if (vl == 63 || vl > limit - *pos)
				return UNH;  /* (E5), (L1) */
			rc = parse_dataset(s, pos, *pos + vl, DS_DEF, parent, depth + 1, &d);
		}
		if (rc)
			return rc;
		if (!ev_push(s, EV_ITEM_END, 0, parent))
			return -ENOMEM;
	}
}

/* a sequence element: value [v, v+vl) or undefined (vl == UNDEF) */
static int parse_seq(struct st *s, size_t *pos, uint32_t tag, uint32_t vl, size_t limit,
		     uint32_t d, int depth, int in_def)
{
	/* GDCM reads these as byte values wherever they are; a group length
	 * is never reported, a sequence under its tag neither (E2) */
	if (tag == 0x00080005 || tag == 0x00280103 || tag == 0x00283002 || !(tag & 0xFFFF))
		return UNH;
	if (!ev_push(s, EV_SEQ_BEGIN, tag, d))
		return -ENOMEM;
	if (vl == UNDEF) {
		int rc = parse_items(s, pos, 0, limit, d, depth);
		if (rc)
			return rc;
	} else if (vl) {
		if (vl == 444 || vl == 778 || vl > limit - *pos || (in_def && (vl & 1)))
			return UNH;  /* (E5), (L1) */
		size_t end = *pos + vl;
		int rc = parse_items(s, pos, end, end, d, depth);
		if (rc)
			return rc;
		if (*pos != end)
			return UNH;
	}
	if (!ev_push(s, EV_SEQ_END, tag, d))
		return -ENOMEM;
	return 0;
}

static void note_special(struct st *s, uint32_t d, uint32_t tag, size_t off, uint32_t vl)
{
	struct dsi *x = &s->ds[d];
	if (tag == 0x00280103) {
		x->pr_state = vl >= 2 ? 2 : 1;
		if (vl >= 2)
			x->pr_val = rd16(s->buf + off);
	} else if (tag == 0x00283002) {
		x->lut_state = vl >= 2 ? 2 : 1;
		if (vl >= 2)
			x->lut_val = rd16(s->buf + off);
	}
}

/*
 * A data set from *pos: DS_TOP up to s->len, DS_DEF up to end exactly,
 * DS_UNDEF up to an item delimiter (limit: end).
 */
static int parse_dataset(struct st *s, size_t *pos, size_t end, int mode,
			 uint32_t parent, int depth, uint32_t *out_ds)
{
	uint32_t d;
	uint32_t prev = 0;
	int first = 1, rc;
	size_t limit = mode == DS_TOP ? s->len : end;
	int in_def = mode == DS_DEF;

	if (depth > DCMWALK_MAX_DEPTH)
		return UNH;  /* (E6) */
	if (ds_new(s, parent, &d))
		return -ENOMEM;
	*out_ds = d;
	size_t cs_slot = s->nev;
	if (!ev_push(s, EV_NONE, 0, d))   /* the charset, when the data set has one */
		return -ENOMEM;
	for (;;) {
		if (mode != DS_UNDEF && *pos == limit)
			return 0;
		if (*pos > limit || limit - *pos < 8)
			return UNH;  /* (E6) */
		const uint8_t *p = s->buf + *pos;
		uint32_t tag = (uint32_t)rd16(p) << 16 | rd16(p + 2);
		uint16_t group = (uint16_t)(tag >> 16);
		if (group == 0xFFFE) {
			if (mode == DS_UNDEF && tag == 0xFFFEE00D && rd32(p + 4) == 0) {
				*pos += 8;
				return 0;
			}
			return UNH;  /* (E2), (E5) */
		}
		if ((!first && tag <= prev) || (group < 8 && group != 4) ||
		    (mode == DS_TOP && tag >= 0x7FE00008))
			return UNH;  /* (E2) */
		first = 0;
		prev = tag;
		if (tag == 0x00FF4AA5 || tag == 0x01F71070 || tag == 0x031E0324)
			return UNH;  /* (E5) */
		char vr[2] = { 0, 0 };
		uint32_t vl;
		size_t hdr;
		if (s->explicit_vr) {
			int long_len;
			if (!vr_lookup(p + 4, &long_len))
				return UNH;  /* (E3) */
			vr[0] = (char)p[4];
			vr[1] = (char)p[5];
			if (long_len) {
				if (limit - *pos < 12)
					return UNH;
				if (p[6] || p[7])
					return UNH;  /* (E3) */
				vl = rd32(p + 8);
				hdr = 12;
			} else {
				vl = rd16(p + 6);
				hdr = 8;
				if (vl == 6 && group == 0x0009 && vr_eq(vr, "UL"))
					return UNH;  /* (E5) */
			}
		} else {
			vl = rd32(p + 4);
			hdr = 8;
		}
		*pos += hdr;
		/* explicit UN: GDCM reads a sequence of undefined length (CP-246)
		 * and the walker reinterprets a dictionary SQ: refused (E3); any
		 * other gets the dictionary VR, as dcmshim_walk.cc's dict_vr() */
		int un = s->explicit_vr && vr_eq(vr, "UN");
		if (un && vl == UNDEF)
			return UNH;
		if (s->explicit_vr && vr_eq(vr, "SQ")) {
			if (tag == 0x7FE00010)
				return UNH;
			rc = parse_seq(s, pos, tag, vl, limit, d, depth, in_def);
			if (rc)
				return rc;
			continue;
		}
		if (vl == UNDEF) {
			if (s->explicit_vr || tag == 0x7FE00010)
				return UNH;  /* (E3), (E4) */
			/* implicit, undefined length: a sequence whatever its VR */
			rc = parse_seq(s, pos, tag, vl, limit, d, depth, in_def);
			if (rc)
				return rc;
			continue;
		}
		if (vl > limit - *pos || (in_def && (vl & 1)))
			return UNH;  /* (L1), (E5) */
		size_t off = *pos;
		if (un && (tag & 0xFFFF)) {
			if ((rc = dict_vr(s, d, tag, vr)))
				return rc;
			if (vr_eq(vr, "SQ"))
				return UNH;  /* (E3) */
		}
		if (!s->explicit_vr) {
			if ((tag & 0xFFFF) == 0) {
				vr[0] = 'U';
				vr[1] = 'L';  /* a group length: not reported */
			} else if ((rc = dict_vr(s, d, tag, vr))) {
				return rc;
			}
			if (vr_eq(vr, "SQ")) {
				/* a defined-length value read as items (E4) */
				rc = parse_seq(s, pos, tag, vl, *pos + vl, d, depth, 1);
				if (rc)
					return rc;
				continue;
			}
		}
		*pos += vl;
		if ((tag & 0xFFFF) == 0)
			continue;  /* group length */
		struct ev *e = ev_push(s, EV_ELEM, tag, d);
		if (!e)
			return -ENOMEM;
		e->off = off;
		e->len = vl;
		e->vr[0] = vr[0];
		e->vr[1] = vr[1];
		if (tag == 0x00080005) {
			struct ev *c = &s->ev[cs_slot];
			c->kind = EV_CHARSET;
			c->off = off;
			c->len = vl;
		}
		note_special(s, d, tag, off, vl);
	}
}

/* ---- replay ---- */

/* dcmshim_walk.cc's find_at(): where GDCM's walker says a value is */
static int64_t find_at(const uint8_t *buf, size_t len, uint32_t tag, const uint8_t *v,
		       size_t vl, size_t from, size_t to)
{
	for (int be = 0; be < 2; be++) {
		uint8_t pat[4];
		if (be) {
			pat[0] = (uint8_t)(tag >> 24); pat[1] = (uint8_t)(tag >> 16);
			pat[2] = (uint8_t)(tag >> 8); pat[3] = (uint8_t)tag;
		} else {
			pat[0] = (uint8_t)(tag >> 16); pat[1] = (uint8_t)(tag >> 24);
			pat[2] = (uint8_t)tag; pat[3] = (uint8_t)(tag >> 8);
		}
		size_t pos = from;
		while (pos + 8 <= to) {
			const uint8_t *hit = memmem(buf + pos, to - pos, pat, 4);
			if (!hit)
				break;
			size_t q = (size_t)(hit - buf);
			pos = q + 1;
			if (q + 8 > len)
				break;
			size_t cands[2];
			int nc = 0;
			const uint8_t *h = buf + q;
			uint32_t l32 = be ? (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 |
					    (uint32_t)h[6] << 8 | h[7] : rd32(h + 4);
			uint16_t l16 = be ? (uint16_t)(h[6] << 8 | h[7]) : rd16(h + 6);
			if (l32 == vl)
				cands[nc++] = q + 8;
			else if (l16 == vl)
				cands[nc++] = q + 8;
			if (q + 12 <= len && h[6] == 0 && h[7] == 0) {
				uint32_t l = be ? (uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 |
						  (uint32_t)h[10] << 8 | h[11] : rd32(h + 8);
				if (l == vl)
					cands[nc++] = q + 12;
			}
			for (int c = 0; c < nc; c++)
				if (cands[c] + vl <= len && !memcmp(buf + cands[c], v, vl))
					return (int64_t)cands[c];
		}
	}
	return -1;
}

static int64_t locate(const struct st *s, size_t *cursor, size_t bulk_min, uint32_t tag,
		      const uint8_t *v, size_t vl)
{
	if (vl < bulk_min || vl == 0 || vl > s->len)
		return -1;
	int64_t off = find_at(s->buf, s->len, tag, v, vl, *cursor, s->len);
	if (off < 0 && *cursor)
		off = find_at(s->buf, s->len, tag, v, vl, 0, s->len);
	if (off >= 0)
		*cursor = (size_t)off + vl;
	return off;
}

/* dcmshim_walk.cc's resolve() for the combined dictionary VRs */
static void resolve(const struct st *s, struct ev *e)
{
	if (vr_eq(e->vr, "xs")) {
		uint32_t d = e->ds;
		int ss = 0;
		for (;;) {
			const struct dsi *x = &s->ds[d];
			if (x->pr_state) {
				ss = x->pr_state == 2 && x->pr_val == 1;
				break;
			}
			if (x->parent == UINT32_MAX)
				break;
			d = x->parent;
		}
		memcpy(e->vr, ss ? "SS" : "US", 2);
	} else if (vr_eq(e->vr, "xw")) {
		const struct dsi *x = &s->ds[e->ds];
		int us = e->tag == 0x00283006 && x->lut_state == 2 && x->lut_val == 1;
		memcpy(e->vr, us ? "US" : "OW", 2);
	} else if (vr_eq(e->vr, "bw")) {
		memcpy(e->vr, "OW", 2);
	}
}

static void replay(struct st *s, size_t bulk_min, const struct dcmshim_walk_ops *ops,
		   void *ctx)
{
	size_t cursor = 0;
	for (size_t i = 0; i < s->nev; i++) {
		struct ev *e = &s->ev[i];
		const uint8_t *v = s->buf + e->off;
		switch (e->kind) {
		case EV_ELEM: {
			resolve(s, e);
			int64_t off = vr_binary(e->vr) ? locate(s, &cursor, bulk_min, e->tag, v, e->len)
						       : -1;
			if (ops->element)
				ops->element(ctx, e->tag, e->vr, v, e->len, off);
			break;
		}
		case EV_CHARSET:
			if (ops->charset)
				ops->charset(ctx, (const char *)v, e->len);
			break;
		case EV_SEQ_BEGIN:
			if (ops->seq_begin)
				ops->seq_begin(ctx, e->tag);
			break;
		case EV_SEQ_END:
			if (ops->seq_end)
				ops->seq_end(ctx, e->tag);
			break;
		case EV_ITEM_BEGIN:
			if (ops->item_begin)
				ops->item_begin(ctx);
			break;
		case EV_ITEM_END:
			if (ops->item_end)
				ops->item_end(ctx);
			break;
		default:
			break;
		}
	}
}

static int host_le(void)
{
	const uint16_t one = 1;
	return *(const uint8_t *)&one == 1;
}

int dcmelem_walk(const uint8_t *buf, size_t len, const struct dcmwalk_result *w,
		 size_t bulk_min, const struct dcmshim_walk_ops *ops, void *ctx)
{
	/* (E1), (E6) */
	if (!host_le() || !w->has_meta || w->deflated || w->big_endian || w->ts_mismatch ||
	    w->meta_unordered ||
	    !w->ts[0] || len < 132 || memcmp(buf + 128, "DICM", 4) ||
	    w->dataset_start < 132 || w->dataset_start > len || len != w->header_end)
		return UNH;
	struct st *s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->buf = buf;
	s->len = len;
	s->explicit_vr = w->explicit_vr;
	s->ev = s->ev_local;
	s->nev = 0;
	s->evcap = sizeof(s->ev_local) / sizeof(s->ev_local[0]);
	s->ds = s->ds_local;
	s->nds = 0;
	s->dscap = sizeof(s->ds_local) / sizeof(s->ds_local[0]);
	size_t pos = (size_t)w->dataset_start;
	uint32_t top;
	int rc = parse_dataset(s, &pos, len, DS_TOP, UINT32_MAX, 0, &top);
	if (rc == 0)
		replay(s, bulk_min ? bulk_min : 1, ops, ctx);
	if (s->ev != s->ev_local)
		free(s->ev);
	if (s->ds != s->ds_local)
		free(s->ds);
	free(s);
	return rc;
}
