/*
 * dcmwalk.c - structural walk of a DICOM header (see dcmwalk.h).
 *
 * Design notes
 * - Encoding of the data set: endianness from the transfer syntax
 *   (1.2.840.10008.1.2.2 is the only big-endian one); explicit vs implicit
 *   VR is decided from the bytes of the first data set element (two upper
 *   case letters where a VR would be), because real files lie about their
 *   transfer syntax more often than their bytes do.
 * - Only structure is interpreted: tag, VR, length; values are skipped.
 *   Undefined lengths are followed into items (FFFE,E000) and delimiters
 *   (FFFE,E00D / FFFE,E0DD); a UN of undefined length is implicit VR little
 *   endian inside (PS3.5 6.2.2); any other undefined-length element (OB/OW;
 *   Pixel Data when implicit) holds fragments, skipped item by item
 *   (issue 12: icons with compressed pixels inside sequence items).
 * - Invariant: every offset compared to the buffer length is first checked
 *   against the file size, so a huge length is DFS_ETRUNC, never a read past
 *   the buffer and never an overflow (lengths are 32-bit, offsets 64-bit).
 */
#include <string.h>
#include "dcmwalk.h"
#include "error.h"

#define TS_DEFLATE "1.2.840.10008.1.2.1.99"
#define TS_BIG     "1.2.840.10008.1.2.2"
#define TS_IMPL    "1.2.840.10008.1.2"
#define UNDEF      0xFFFFFFFFu

struct walk {
	const uint8_t *buf;
	size_t len;
	uint64_t fsize;
	int be;
	int explicit_vr;
	int *dicomdir_seen;
	dcmwalk_elem_fn visit;  /* top-level elements (dcmwalk_elements) */
	void *vctx;
};

static uint16_t rd16(const uint8_t *p, int be)
{
	return be ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

static uint32_t rd32(const uint8_t *p, int be)
{
	return be ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
		  : (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static int is_vr(const uint8_t *p)
{
	return p[0] >= 'A' && p[0] <= 'Z' && p[1] >= 'A' && p[1] <= 'Z';
}

#define VR2(a, b) ((unsigned)(a) << 8 | (unsigned)(b))

/* a VR of PS3.5 (GDCM throws on any other, then re-reads the whole data set
 * as implicit VR and allocates whatever the garbage lengths say); a switch
 * the compiler makes a table of: it runs for every element of every file */
static int vr_known(const uint8_t *p)
{
	switch (VR2(p[0], p[1])) {
	case VR2('A', 'E'): case VR2('A', 'S'): case VR2('A', 'T'): case VR2('C', 'S'):
	case VR2('D', 'A'): case VR2('D', 'S'): case VR2('D', 'T'): case VR2('F', 'D'):
	case VR2('F', 'L'): case VR2('I', 'S'): case VR2('L', 'O'): case VR2('L', 'T'):
	case VR2('O', 'B'): case VR2('O', 'D'): case VR2('O', 'F'): case VR2('O', 'L'):
	case VR2('O', 'V'): case VR2('O', 'W'): case VR2('P', 'N'): case VR2('S', 'H'):
	case VR2('S', 'L'): case VR2('S', 'Q'): case VR2('S', 'S'): case VR2('S', 'T'):
	case VR2('S', 'V'): case VR2('T', 'M'): case VR2('U', 'C'): case VR2('U', 'I'):
	case VR2('U', 'L'): case VR2('U', 'N'): case VR2('U', 'R'): case VR2('U', 'S'):
	case VR2('U', 'T'): case VR2('U', 'V'):
		return 1;
	default:
		return 0;
	}
}

/* a VR with a 4-byte length (explicit VR) */
static int vr_long(const uint8_t *p)
{
	switch (VR2(p[0], p[1])) {
	case VR2('O', 'B'): case VR2('O', 'D'): case VR2('O', 'F'): case VR2('O', 'L'):
	case VR2('O', 'V'): case VR2('O', 'W'): case VR2('S', 'Q'): case VR2('S', 'V'):
	case VR2('U', 'C'): case VR2('U', 'N'): case VR2('U', 'R'): case VR2('U', 'T'):
	case VR2('U', 'V'):
		return 1;
	default:
		return 0;
	}
}

/* Need bytes [pos, pos+n): 0, DFS_ENEEDMORE or DFS_ETRUNC. */
static int need(const struct walk *w, uint64_t pos, uint64_t n, uint64_t *hint)
{
	if (pos + n > w->fsize)
		return DFS_ETRUNC;
	if (pos + n > w->len) {
		*hint = pos + n;
		return DFS_ENEEDMORE;
	}
	return 0;
}

struct elem {
	uint32_t tag;
	uint32_t vl;
	uint8_t vr[2];
	unsigned hdr;
};

static int read_elem(const struct walk *w, uint64_t pos, int explicit_vr, int be,
		     struct elem *e, uint64_t *hint)
{
	int rc = need(w, pos, 8, hint);
	if (rc)
		return rc;
	const uint8_t *p = w->buf + pos;
	e->tag = (uint32_t)rd16(p, be) << 16 | rd16(p + 2, be);
	e->vr[0] = e->vr[1] = 0;
	if ((e->tag >> 16) == 0xFFFE || !explicit_vr) {
		e->vl = rd32(p + 4, be);
		e->hdr = 8;
		return 0;
	}
	if (!is_vr(p + 4) || !vr_known(p + 4))
		return DFS_EPARSE;
	e->vr[0] = p[4];
	e->vr[1] = p[5];
	if (vr_long(p + 4)) {
		rc = need(w, pos, 12, hint);
		if (rc)
			return rc;
		e->vl = rd32(p + 8, be);
		e->hdr = 12;
	} else {
		e->vl = rd16(p + 6, be);
		e->hdr = 8;
	}
	return 0;
}

static int walk_items(const struct walk *w, uint64_t *pos, uint64_t seq_end,
		      int explicit_vr, int be, int depth, uint64_t *hint);

/*
 * An undefined-length element that is not a sequence holds fragments
 * (encapsulated pixel data, e.g. in an Icon Image Sequence item): items of
 * defined length whose bytes are not data sets, up to a sequence delimiter.
 * Skipped without looking inside (a fragment may hold any bytes, an
 * embedded delimiter included).
 */
static int skip_fragments(const struct walk *w, uint64_t *pos, int be, uint64_t *hint)
{
	struct elem e;
	for (;;) {
		int rc = read_elem(w, *pos, 0, be, &e, hint);
		if (rc)
			return rc;
		*pos += 8;
		if (e.tag == 0xFFFEE0DD)
			return 0;
		if (e.tag != 0xFFFEE000 || e.vl == UNDEF)
			return DFS_EPARSE;
		if (*pos + e.vl > w->fsize)
			return DFS_ETRUNC;
		*pos += e.vl;
	}
}

/* Does an undefined-length element hold fragments rather than items? */
static int holds_fragments(const struct elem *e, int explicit_vr)
{
	if (explicit_vr)
		return !(e->vr[0] == 'S' && e->vr[1] == 'Q') &&
		       !(e->vr[0] == 'U' && e->vr[1] == 'N');
	return e->tag == 0x7FE00010;
}

/*
 * Walk a data set from *pos until an item delimiter (when in_item), the end
 * of the file, or (top level only) a Pixel Data tag, which is left unread.
 */
static int walk_dataset(const struct walk *w, uint64_t *pos, int explicit_vr,
			int be, int depth, int in_item, uint64_t item_end,
			uint64_t *hint)
{
	struct elem e;
	int rc;

	if (depth > DCMWALK_MAX_DEPTH)
		return DFS_ETOOBIG;
	for (;;) {
		if (in_item && item_end && *pos >= item_end)
			return *pos == item_end ? 0 : DFS_EPARSE;
		if (!in_item && *pos == w->fsize)
			return 0;
		rc = read_elem(w, *pos, explicit_vr, be, &e, hint);
		if (rc)
			return rc;
		if (e.tag == 0xFFFEE00D) {
			if (!in_item)
				return DFS_EPARSE;
			*pos += 8;
			return 0;
		}
		if ((e.tag >> 16) == 0xFFFE)
			return DFS_EPARSE;
		if (!in_item && e.tag == 0x00041220)
			w->dicomdir_seen[0] = 1;
		if (!in_item && (e.tag == 0x7FE00010 || e.tag == 0x7FE00008 ||
				 e.tag == 0x7FE00009))
			return 1; /* pixel data reached, *pos at its tag */
		if (!in_item && w->visit && e.vl != UNDEF && *pos + e.hdr + e.vl <= w->len)
			w->visit(w->vctx, e.tag, e.vr, *pos + e.hdr, e.vl);
		*pos += e.hdr;
		if (e.vl == UNDEF && holds_fragments(&e, explicit_vr)) {
			rc = skip_fragments(w, pos, be, hint);
			if (rc)
				return rc;
			continue;
		}
		if (e.vl == UNDEF) {
			int sub_explicit = explicit_vr, sub_be = be;
			if (explicit_vr && e.vr[0] == 'U' && e.vr[1] == 'N') {
				sub_explicit = 0;
				sub_be = 0;
			}
			rc = walk_items(w, pos, 0, sub_explicit, sub_be, depth + 1, hint);
			if (rc)
				return rc;
			continue;
		}
		if (*pos + e.vl > w->fsize)
			return DFS_ETRUNC;
		if (explicit_vr && e.vr[0] == 'S' && e.vr[1] == 'Q' && e.vl) {
			/* defined-length sequence: walk it (it may be in the prefix) */
			uint64_t end = *pos + e.vl;
			rc = walk_items(w, pos, end, explicit_vr, be, depth + 1, hint);
			if (rc)
				return rc;
			if (*pos != end)
				return DFS_EPARSE;
			continue;
		}
		*pos += e.vl;
		if (in_item && *pos > w->len && *pos <= w->fsize) {
			*hint = *pos + 8;
			return DFS_ENEEDMORE;
		}
	}
}

/*
 * Walk items until a sequence delimiter (seq_end == 0: undefined length) or
 * until seq_end (defined length). Returns 0 there.
 */
static int walk_items(const struct walk *w, uint64_t *pos, uint64_t seq_end,
		      int explicit_vr, int be, int depth, uint64_t *hint)
{
	struct elem e;
	int rc;

	if (depth > DCMWALK_MAX_DEPTH)
		return DFS_ETOOBIG;
	for (;;) {
		if (seq_end && *pos >= seq_end)
			return *pos == seq_end ? 0 : DFS_EPARSE;
		rc = read_elem(w, *pos, 0, be, &e, hint);
		if (rc)
			return rc;
		if (e.tag == 0xFFFEE0DD) {
			*pos += 8;
			return 0;
		}
		if (e.tag != 0xFFFEE000)
			return DFS_EPARSE;
		*pos += 8;
		if (e.vl == UNDEF) {
			rc = walk_dataset(w, pos, explicit_vr, be, depth + 1, 1, 0, hint);
		} else {
			if (*pos + e.vl > w->fsize)
				return DFS_ETRUNC;
			uint64_t end = *pos + e.vl;
			if (end > w->len) {
				*pos = end; /* skip: the item is not needed in the prefix */
				*hint = end + 8;
				if (end + 8 > w->len)
					return DFS_ENEEDMORE;
				continue;
			}
			rc = walk_dataset(w, pos, explicit_vr, be, depth + 1, 1, end, hint);
			if (rc == 0)
				*pos = end;
		}
		if (rc)
			return rc;
	}
}

/*
 * Transfer syntaxes GDCM 3.0's reader accepts in a meta header (its
 * TransferSyntax::TSType): GDCM rejects a file whose meta names another
 * (High-Throughput JPEG 2000, JPEG XL, newer video, retired JPEG
 * processes), though its data set reads like any explicit VR one.
 */
static int ts_parser_knows(const char *ts)
{
	static const char *const known[] = {
		"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99",
		"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51",
		"1.2.840.10008.1.2.4.52", "1.2.840.10008.1.2.4.53", "1.2.840.10008.1.2.4.55",
		"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80",
		"1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",
		"1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.5",
		"1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.4.94", "1.2.840.10008.1.2.4.101",
		"1.2.840.10008.1.2.4.102", "1.2.840.10008.1.2.4.103",
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (!strcmp(ts, known[i]))
			return 1;
	return 0;
}

static int plausible_group(uint16_t g)
{
	return g == 0x0002 || g == 0x0008 || (g && g <= 0x0020 && !(g & 1));
}

int dcmwalk_header(const uint8_t *buf, size_t len, uint64_t file_size,
		   struct dcmwalk_result *r)
{
	int dicomdir = 0;
	struct walk w = { buf, len, file_size, 0, 1, &dicomdir, NULL, NULL };
	uint64_t pos = 0, hint = 0;
	struct elem e;
	int rc;

	memset(r, 0, sizeof(*r));
	if (len > file_size)
		len = w.len = file_size;
	if (file_size < 8)
		return DFS_ENOTDICOM;
	if (len < 132 && file_size >= 132) {
		r->header_end = 132 < file_size ? 132 : file_size;
		return DFS_ENEEDMORE;
	}
	if (len >= 132 && memcmp(buf + 128, "DICM", 4) == 0) {
		pos = 132;
		r->has_meta = 1;
	} else if (rd16(buf, 0) == 0x0002 && is_vr(buf + 4)) {
		r->has_meta = 1;
	}
	if (r->has_meta) {
		/* File Meta Information: always explicit VR little endian */
		uint32_t last = 0;
		for (;;) {
			rc = need(&w, pos, 8, &hint);
			if (rc == DFS_ETRUNC && pos == file_size)
				break;
			if (rc)
				goto out;
			if (rd16(buf + pos, 0) != 0x0002)
				break;
			rc = read_elem(&w, pos, 1, 0, &e, &hint);
			if (rc)
				goto out;
			if (e.vl == UNDEF) {
				rc = DFS_EPARSE;
				goto out;
			}
			rc = need(&w, pos + e.hdr, e.vl, &hint);
			if (rc)
				goto out;
			if (e.tag <= last)
				r->meta_unordered = 1;
			last = e.tag;
			if (e.tag == 0x00020010) {
				size_t n = e.vl < sizeof(r->ts) ? e.vl : sizeof(r->ts) - 1;
				memcpy(r->ts, buf + pos + e.hdr, n);
				while (n && (r->ts[n - 1] == 0 || r->ts[n - 1] == ' '))
					n--;
				r->ts[n] = 0;
			}
			pos += e.hdr + e.vl;
		}
	}
	r->dataset_start = pos;
	if (strcmp(r->ts, TS_DEFLATE) == 0) {
		r->deflated = 1;
		r->header_end = file_size;
		return len < file_size ? DFS_ENEEDMORE : 0;
	}
	/* encoding of the data set, from its first element */
	if (pos == file_size) {
		r->header_end = pos;
		return DFS_ETRUNC;
	}
	rc = need(&w, pos, 8, &hint);
	if (rc)
		goto out;
	w.be = strcmp(r->ts, TS_BIG) == 0;
	if (!r->has_meta) {
		uint16_t gl = rd16(buf, 0), gb = rd16(buf, 1);
		if (plausible_group(gl))
			w.be = 0;
		else if (plausible_group(gb) && is_vr(buf + 4))
			w.be = 1;
		else
			return DFS_ENOTDICOM;
	}
	w.explicit_vr = is_vr(buf + pos + 4);
	if (r->has_meta && r->ts[0])
		r->ts_mismatch = w.explicit_vr != (strcmp(r->ts, TS_IMPL) != 0) ||
				 !ts_parser_knows(r->ts);
	r->big_endian = w.be;
	r->explicit_vr = w.explicit_vr;

	rc = walk_dataset(&w, &pos, w.explicit_vr, w.be, 0, 0, 0, &hint);
	r->dicomdir = dicomdir;
	if (rc == 1) {
		/* Pixel Data element header at pos */
		r->header_end = pos;
		rc = read_elem(&w, pos, w.explicit_vr, w.be, &e, &hint);
		if (rc)
			goto out;
		r->pixel_tag = e.tag;
		r->pixel_offset = pos + e.hdr;
		if (e.vl == UNDEF) {
			r->encapsulated = 1;
			r->pixel_length = file_size - r->pixel_offset;
		} else {
			r->pixel_length = e.vl;
			if (r->pixel_offset + e.vl > file_size) {
				r->pixel_truncated = 1;
				r->pixel_length = file_size - r->pixel_offset;
			}
		}
		return 0;
	}
	if (rc == 0) {
		r->header_end = pos;
		return 0;
	}
out:
	if (rc == DFS_ENEEDMORE) {
		if (hint > file_size)
			hint = file_size;
		r->header_end = hint;
	}
	if (!r->has_meta && (rc == DFS_EPARSE || rc == DFS_ETRUNC || rc == DFS_ETOOBIG))
		return DFS_ENOTDICOM;
	return rc;
}

int dcmwalk_elements(const uint8_t *buf, size_t len, const struct dcmwalk_result *r,
		     dcmwalk_elem_fn fn, void *ctx)
{
	int dicomdir = 0;
	uint64_t pos = r->dataset_start, hint = 0;
	if (r->deflated || len < r->header_end)
		return DFS_EPARSE;
	struct walk w = { buf, len, len, r->big_endian, r->explicit_vr, &dicomdir, fn, ctx };
	int rc = walk_dataset(&w, &pos, w.explicit_vr, w.be, 0, 0, 0, &hint);
	return rc == 1 ? 0 : rc;
}

int dcmwalk_trailer(const uint8_t *buf, size_t len, const struct dcmwalk_result *r)
{
	int dicomdir = 0;
	uint64_t pos = 0, hint = 0;
	struct walk w = { buf, len, len, r->big_endian, r->explicit_vr, &dicomdir, NULL, NULL };
	int rc = walk_dataset(&w, &pos, w.explicit_vr, w.be, 0, 0, 0, &hint);
	return rc == 0 && pos == len ? 0 : rc < 0 ? rc : DFS_EPARSE;
}
