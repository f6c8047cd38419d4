/*
 * dcmjson.c - the DICOM JSON Model of one instance (see dcmjson.h).
 *
 * Design notes
 * - A hand-written emitter: the output must be byte-identical on every run
 *   (its length is announced in st_size before anyone reads it), and a
 *   general JSON library would add allocations and its own formatting.
 * - The C walker (dcmelem.h) reports the data set in tag order where it
 *   handles the encoding, exactly as GDCM's dcmshim_walk() would (which
 *   reads the rest: tests/json_diff.sh holds the two to the same bytes); the
 *   emitter keeps one frame per open object (data set / item) or sequence:
 *   whether a comma is due, and the character set in force (an item
 *   inherits its parent's unless it has its own (0008,0005)).
 * - Top-level Pixel Data is outside the bytes GDCM is given; it is written
 *   from the dcmwalk result, in its place in tag order.
 * - Top-level elements after Pixel Data (digital signatures, private groups
 *   written last; issue 12) are read through fd when the bytes after the
 *   Pixel Data value walk as well-formed elements (dcmwalk_trailer) and
 *   are at most DCMJSON_TRAILER_MAX; GDCM then reads them in a second walk,
 *   as a small Part 10 buffer of their own (a meta group naming the
 *   encoding dcmwalk found, then the trailer bytes; dcmshim_walk whole ==
 *   2), so a header GDCM reads differently from dcmwalk can never run on
 *   into them. Offsets map back to the trailer's place in the file. Data
 *   Set Trailing Padding (FFFC,FFFC) is left out.
 * (J1) The text goes into a strbuf (strbuf.h) that adopts the caller's
 *      out->buf (allocated by an earlier call: out->cap is its size) and
 *      hands it back, so a caller building many instances reuses one
 *      buffer. out->buf is NUL-terminated at out->len.
 * (J3) Decimal strings take a shortcut to the same digits (dcmjson_ds).
 * (J2) Strings are escaped by strbuf_add_json_str: they are ASCII without
 *      NUL or charset_to_utf8() output (valid UTF-8, no NUL), so the
 *      result is the plain JSON escaping (" \ and controls), nothing
 *      replaced.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dcmjson.h"
#include "dcmelem.h"
#include "dcmshim.h"
#include "charset.h"
#include "error.h"
#include "strbuf.h"

#define MAX_FRAMES 160
#define CS_MAX 128

struct frame {
	unsigned char seq;    /* 1: a sequence, 0: an object */
	unsigned char count;  /* members (objects) / items (sequences) so far, capped */
	unsigned char cs_len;
	char cs[CS_MAX];
};

struct em {
	struct dcmjson_out *o;
	struct strbuf sb;     /* the output; o->buf adopted, handed back (J1) */
	const char *name;
	size_t name_len;
	int depth;            /* index of the innermost frame */
	int overflow;         /* frames deeper than MAX_FRAMES are dropped */
	int err;
	struct frame f[MAX_FRAMES];
	/* top-level Pixel Data, written when its place comes */
	int px_pending;
	uint32_t px_tag;
	char px_vr[2];
	uint64_t px_off, px_len;
	int px_be;
	uint64_t tr_off;      /* file offset of the elements after Pixel Data; 0: none */
	int64_t delta;        /* file offset = offset in the walked buffer + delta */
	int fd;
	const struct dcmjson_attrs *attrs;  /* or NULL */
};

/* ---- output ---- */

static void put(struct em *e, const char *s, size_t n)
{
	strbuf_add(&e->sb, s, n);
}

static void puts_(struct em *e, const char *s)
{
	strbuf_addstr(&e->sb, s);
}

/* a JSON string of decoded text: valid UTF-8 (charset.h), so the escaper's
 * U+FFFD replacement never applies (J2) */
static void put_str(struct em *e, const char *s, size_t n)
{
	strbuf_add_json_str(&e->sb, s, n);
}

static size_t fmt_u64(uint64_t v, char *out)
{
	char t[24];
	size_t n = 0, o = 0;
	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		out[o++] = t[--n];
	return o;
}

static void put_u64(struct em *e, uint64_t v)
{
	char b[24];
	put(e, b, fmt_u64(v, b));
}

/* ---- helpers (exposed for the unit test) ---- */

/* shortest digits that read back (rt), then fixed notation for decimal
 * exponents -4..15 and scientific beyond, as Python's repr() does */
static size_t fmt_shortest(double v, int maxp, int is_float, char *out)
{
	char e[40];
	int p = 1;
	if (v == 0)  /* "-0" would read back as the integer 0 */
		return (size_t)sprintf(out, signbit(v) ? "-0.0" : "0");
	for (; p <= maxp; p++) {
		snprintf(e, sizeof(e), "%.*e", p - 1, v);
		if (is_float ? strtof(e, NULL) == (float)v : strtod(e, NULL) == v)
			break;
	}
	if (p > maxp)
		p = maxp;
	const char *x = strchr(e, 'e');
	int ex = x ? atoi(x + 1) : 0;
	if (ex >= -4 && ex < 16) {
		int dec = p - 1 - ex;
		return (size_t)snprintf(out, 32, "%.*f", dec > 0 ? dec : 0, v);
	}
	/* d.ddde+XX -> d.ddde+XX (C keeps at least two exponent digits) */
	return (size_t)snprintf(out, 32, "%s", e);
}

size_t dcmjson_fmt_double(double v, char *out)
{
	if (isnan(v))
		return (size_t)sprintf(out, "\"NaN\"");
	if (isinf(v))
		return (size_t)sprintf(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
	return fmt_shortest(v, 17, 0, out);
}

size_t dcmjson_fmt_float(float v, char *out)
{
	if (isnan(v))
		return (size_t)sprintf(out, "\"NaN\"");
	if (isinf(v))
		return (size_t)sprintf(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
	return fmt_shortest((double)v, 9, 1, out);
}

size_t dcmjson_base64(const uint8_t *in, size_t n, char *out)
{
	static const char t[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0, i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = t[v >> 18];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = t[(v >> 6) & 63];
		out[o++] = t[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = t[v >> 18];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = t[v >> 18];
		out[o++] = t[(v >> 12) & 63];
		out[o++] = t[(v >> 6) & 63];
		out[o++] = '=';
	}
	return o;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

size_t dcmjson_is(const char *s, size_t n, char *out)
{
	size_t i = 0;
	int neg = 0;
	if (n == 0 || n > 20)
		return 0;
	if (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == n)
		return 0;
	unsigned long long v = 0;
	for (; i < n; i++) {
		if (!is_digit(s[i]))
			return 0;
		if (v > (9007199254740991ULL - (unsigned)(s[i] - '0')) / 10)
			return 0; /* beyond 2^53: not exact in JSON readers */
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0)
		neg = 0;
	return (size_t)sprintf(out, "%s%llu", neg ? "-" : "", v);
}

/*
 * (J3) A DS of plain decimal digits ([+-]d*.d*, no exponent) with at most
 * 15 significant digits, not zero, whose leading digit's decimal exponent
 * is in -4..15: its shortest round-trip form is the decimal itself (DBL_DIG
 * is 15: two such decimals never share a double), written as fmt_shortest
 * writes it: fixed notation, no leading zeros in the integer part ("0"
 * when empty), no trailing zeros in the fraction, no '+'. Returns 0 when
 * the value is not of that shape (the general path then decides).
 */
static size_t ds_fast(const char *s, size_t n, char *out)
{
	size_t i = 0, o = 0;
	int neg = 0;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	size_t ib = i;
	while (i < n && is_digit(s[i]))
		i++;
	size_t ie = i, fb = i, fe = i;
	if (i < n && s[i] == '.') {
		fb = ++i;
		while (i < n && is_digit(s[i]))
			i++;
		fe = i;
	}
	if (i != n || (ie == ib && fe == fb))
		return 0;
	while (ib < ie && s[ib] == '0')
		ib++;
	while (fe > fb && s[fe - 1] == '0')
		fe--;
	int ex;
	size_t sig;
	if (ib < ie) {
		ex = (int)(ie - ib) - 1;
		sig = fe > fb ? (ie - ib) + (fe - fb) : ie - ib;
		if (fe == fb) {  /* trailing zeros of the integer are not significant */
			size_t z = ie;
			while (z > ib && s[z - 1] == '0')
				z--;
			sig = z - ib;
		}
	} else {
		size_t z = fb;
		while (z < fe && s[z] == '0')
			z++;
		if (z == fe)
			return 0;  /* zero: the general path ("0" or "-0.0") */
		ex = -(int)(z - fb) - 1;
		sig = fe - z;
	}
	if (sig > 15 || ex < -4 || ex >= 16)
		return 0;
	if (neg)
		out[o++] = '-';
	if (ib == ie) {
		out[o++] = '0';
	} else {
		memcpy(out + o, s + ib, ie - ib);
		o += ie - ib;
	}
	if (fe > fb) {
		out[o++] = '.';
		memcpy(out + o, s + fb, fe - fb);
		o += fe - fb;
	}
	out[o] = 0;
	return o;
}

size_t dcmjson_ds(const char *s, size_t n, char *out)
{
	if (n && n < 40) {
		size_t f = ds_fast(s, n, out);
		if (f)
			return f;
	}
	return dcmjson_ds_general(s, n, out);
}

size_t dcmjson_ds_general(const char *s, size_t n, char *out)
{
	/* [+-]? (d+ (.d*)? | .d+) ([eE][+-]?d+)? */
	size_t i = 0, digits = 0;
	char tmp[64];
	if (n == 0 || n >= sizeof(tmp))
		return 0;
	if (s[i] == '+' || s[i] == '-')
		i++;
	while (i < n && is_digit(s[i]))
		i++, digits++;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && is_digit(s[i]))
			i++, digits++;
	}
	if (!digits)
		return 0;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t ed = 0;
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < n && is_digit(s[i]))
			i++, ed++;
		if (!ed)
			return 0;
	}
	if (i != n)
		return 0;
	memcpy(tmp, s, n);
	tmp[n] = 0;
	double v = strtod(tmp, NULL);
	if (!isfinite(v))
		return 0;
	return dcmjson_fmt_double(v, out);
}

size_t dcmjson_name_bytes(const char *name, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			   is_digit((char)c) || c == '-' || c == '.' || c == '_' || c == '~';
		n += keep ? 1 : 3;
	}
	return n;
}

static void put_name(struct em *e)
{
	static const char hex[] = "0123456789ABCDEF";
	for (size_t i = 0; i < e->name_len; i++) {
		unsigned char c = (unsigned char)e->name[i];
		int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			   is_digit((char)c) || c == '-' || c == '.' || c == '_' || c == '~';
		if (keep) {
			put(e, (const char *)&c, 1);
		} else {
			char p[3] = { '%', hex[c >> 4], hex[c & 15] };
			put(e, p, 3);
		}
	}
}

/* ---- values ---- */

static int vr_is(const char vr[2], const char *s)
{
	return vr[0] == s[0] && vr[1] == s[1];
}

static int vr_bytes(const char vr[2])
{
	return vr_is(vr, "OB") || vr_is(vr, "OW") || vr_is(vr, "OF") ||
	       vr_is(vr, "OD") || vr_is(vr, "OL") || vr_is(vr, "OV") ||
	       vr_is(vr, "UN");
}

static void put_bulk_uri(struct em *e, uint64_t off, uint64_t len)
{
	puts_(e, ",\"BulkDataURI\":\"");
	put_name(e);
	puts_(e, ".dcm?offset=");
	put_u64(e, off);
	puts_(e, "&length=");
	put_u64(e, len);
	put(e, "\"", 1);
	e->o->nbulk++;
}

static void put_inline(struct em *e, const uint8_t *v, size_t n)
{
	puts_(e, ",\"InlineBinary\":\"");
	if (strbuf_grow(&e->sb, 4 * ((n + 2) / 3)))
		return;
	e->sb.len += dcmjson_base64(v, n, e->sb.buf + e->sb.len);
	e->sb.buf[e->sb.len] = 0;
	put(e, "\"", 1);
}

static void member_begin(struct em *e, uint32_t tag, const char vr[2])
{
	static const char hex[] = "0123456789ABCDEF";
	struct frame *f = &e->f[e->depth];
	char k[24];
	size_t o = 0;
	if (f->count)
		k[o++] = ',';
	k[o++] = '"';
	for (int sh = 28; sh >= 0; sh -= 4)
		k[o++] = hex[(tag >> sh) & 15];
	memcpy(k + o, "\":{\"vr\":\"", 9);
	o += 9;
	k[o++] = vr[0];
	k[o++] = vr[1];
	k[o++] = '"';
	f->count = 1;
	put(e, k, o);
}

/* decode text per the character set in force; *out malloc()ed or NULL when
 * v is used as is */
static int decode(struct em *e, const char *v, size_t n, int is_pn, char **out,
		  size_t *ol)
{
	int plain = 1;
	for (size_t i = 0; i < n && plain; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c >= 0x80 || c == 0x1B || c == 0)
			plain = 0;
	}
	*out = NULL;
	if (plain)
		return 0;
	const struct frame *f = &e->f[e->depth];
	int rc = charset_to_utf8(f->cs, f->cs_len, v, n, is_pn, out, ol);
	if (rc < 0)
		return rc;
	if (rc == DFS_WARN_CHARSET)
		e->o->charset_warn = 1;
	return 0;
}

static size_t trim_right(const char *s, size_t n)
{
	while (n && (s[n - 1] == ' ' || s[n - 1] == 0))
		n--;
	return n;
}

static void put_pn(struct em *e, const char *s, size_t n)
{
	/* s: one value, Alphabetic=Ideographic=Phonetic */
	static const char *const key[3] = { "Alphabetic", "Ideographic", "Phonetic" };
	size_t a = 0;
	int g = 0, any = 0;
	put(e, "{", 1);
	for (size_t i = 0; i <= n && g < 3; i++) {
		if (i < n && !(s[i] == '=' && g < 2))
			continue;
		size_t l = trim_right(s + a, i - a);
		if (l) {
			if (any)
				put(e, ",", 1);
			put(e, "\"", 1);
			puts_(e, key[g]);
			puts_(e, "\":");
			put_str(e, s + a, l);
			any = 1;
		}
		a = i + 1;
		g++;
	}
	put(e, "}", 1);
}

static void put_text(struct em *e, const char vr[2], const uint8_t *raw, size_t n)
{
	const char *v = (const char *)raw;
	int single = vr_is(vr, "LT") || vr_is(vr, "ST") || vr_is(vr, "UT") || vr_is(vr, "UR");
	int keep_lead = vr_is(vr, "LT") || vr_is(vr, "ST") || vr_is(vr, "UT");
	int is_pn = vr_is(vr, "PN"), is_is = vr_is(vr, "IS"), is_ds = vr_is(vr, "DS");
	char *dec = NULL;
	size_t dl = 0;

	n = trim_right(v, n);
	if (!keep_lead && single)
		while (n && v[0] == ' ')
			v++, n--;
	if (n == 0)
		return;
	int rc = decode(e, v, n, is_pn, &dec, &dl);
	if (rc < 0) {
		e->err = rc;
		return;
	}
	if (dec) {
		v = dec;
		n = trim_right(dec, dl);
	}
	puts_(e, ",\"Value\":[");
	size_t a = 0;
	int first = 1;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && (single || v[i] != '\\'))
			continue;
		const char *s = v + a;
		size_t l = i - a;
		a = i + 1;
		if (!first)
			put(e, ",", 1);
		first = 0;
		l = trim_right(s, l);
		if (!keep_lead)
			while (l && s[0] == ' ')
				s++, l--;
		if (!l) {
			puts_(e, "null");
			continue;
		}
		char num[40];
		size_t nl = 0;
		if (is_is)
			nl = dcmjson_is(s, l, num);
		else if (is_ds)
			nl = dcmjson_ds(s, l, num);
		if (nl)
			put(e, num, nl);
		else if (is_pn)
			put_pn(e, s, l);
		else
			put_str(e, s, l);
	}
	put(e, "]", 1);
	free(dec);
}

static uint64_t rd_le(const uint8_t *p, unsigned w)
{
	uint64_t v = 0;
	for (unsigned i = w; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static void put_numbers(struct em *e, const char vr[2], const uint8_t *v, size_t n)
{
	unsigned w = vr_is(vr, "US") || vr_is(vr, "SS") ? 2 :
		     vr_is(vr, "FD") || vr_is(vr, "SV") || vr_is(vr, "UV") ? 8 : 4;
	size_t cnt = n / w;
	if (!cnt)
		return;
	puts_(e, ",\"Value\":[");
	for (size_t i = 0; i < cnt; i++) {
		char b[40];
		size_t bl;
		uint64_t x = rd_le(v + i * w, w);
		if (vr_is(vr, "AT")) {
			bl = (size_t)sprintf(b, "\"%04X%04X\"", (unsigned)(x & 0xFFFF),
					     (unsigned)(x >> 16));
		} else if (vr_is(vr, "US") || vr_is(vr, "UL") || vr_is(vr, "UV")) {
			bl = fmt_u64(x, b);
		} else if (vr_is(vr, "SS")) {
			bl = (size_t)sprintf(b, "%d", (int)(int16_t)x);
		} else if (vr_is(vr, "SL")) {
			bl = (size_t)sprintf(b, "%d", (int)(int32_t)x);
		} else if (vr_is(vr, "SV")) {
			bl = (size_t)sprintf(b, "%lld", (long long)(int64_t)x);
		} else if (vr_is(vr, "FL")) {
			uint32_t u = (uint32_t)x;
			float f;
			memcpy(&f, &u, 4);
			bl = dcmjson_fmt_float(f, b);
		} else {
			double d;
			memcpy(&d, &x, 8);
			bl = dcmjson_fmt_double(d, b);
		}
		if (i)
			put(e, ",", 1);
		put(e, b, bl);
	}
	put(e, "]", 1);
}

/* ---- Pixel Data ---- */

static void pixel_flush(struct em *e)
{
	if (!e->px_pending)
		return;
	e->px_pending = 0;
	member_begin(e, e->px_tag, e->px_vr);
	if (e->px_len) {
		if (e->px_len > DCMJSON_INLINE_MAX) {
			put_bulk_uri(e, e->px_off, e->px_len);
		} else {
			uint8_t b[DCMJSON_INLINE_MAX];
			ssize_t r = e->fd >= 0 ? pread(e->fd, b, (size_t)e->px_len,
						       (off_t)e->px_off) : -1;
			if (r != (ssize_t)e->px_len) {
				e->err = r < 0 ? -EIO : DFS_ETRUNC;
			} else {
				unsigned w = vr_is(e->px_vr, "OW") ? 2 : vr_is(e->px_vr, "OF") ? 4 :
					     vr_is(e->px_vr, "OD") ? 8 : 1;
				if (e->px_be && w > 1)
					for (size_t i = 0; i + w <= (size_t)r; i += w)
						for (unsigned a = 0, z = w - 1; a < z; a++, z--) {
							uint8_t t = b[i + a];
							b[i + a] = b[i + z];
							b[i + z] = t;
						}
				put_inline(e, b, (size_t)r);
			}
		}
	}
	put(e, "}", 1);
}

/* the extent of encapsulated Pixel Data: items up to the sequence delimiter
 * (*delim set when found) */
static uint64_t encap_length(int fd, uint64_t off, uint64_t fsize, int be, int *delim)
{
	uint64_t pos = off;
	for (unsigned n = 0; fd >= 0 && n < 1000000 && pos + 8 <= fsize; n++) {
		uint8_t h[8];
		if (pread(fd, h, 8, (off_t)pos) != 8)
			break;
		uint16_t g = be ? (uint16_t)(h[0] << 8 | h[1]) : (uint16_t)(h[1] << 8 | h[0]);
		uint16_t el = be ? (uint16_t)(h[2] << 8 | h[3]) : (uint16_t)(h[3] << 8 | h[2]);
		uint32_t l = be ? (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 | (uint32_t)h[6] << 8 | h[7]
				: (uint32_t)h[7] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[5] << 8 | h[4];
		if (g != 0xFFFE)
			break;
		if (el == 0xE0DD) {
			*delim = 1;
			return pos - off;
		}
		if (el != 0xE000 || l == 0xFFFFFFFFu)
			break;
		pos += 8 + (uint64_t)l;
	}
	return fsize - off;  /* no delimiter found: to the end of the file */
}

static void pixel_setup(struct em *e, const uint8_t *file, size_t flen,
			uint64_t fsize, const struct dcmwalk_result *w)
{
	if (!w->pixel_tag || w->deflated || !w->pixel_offset || w->pixel_offset > fsize)
		return;
	e->px_pending = 1;
	e->px_tag = w->pixel_tag;
	e->px_off = w->pixel_offset;
	e->px_be = w->big_endian;
	int delim = 0;
	if (w->encapsulated) {
		e->px_len = encap_length(e->fd, w->pixel_offset, fsize, w->big_endian, &delim);
		if (delim && w->pixel_offset + e->px_len + 8 < fsize)
			e->tr_off = w->pixel_offset + e->px_len + 8;
	} else {
		e->px_len = w->pixel_length < fsize - w->pixel_offset ? w->pixel_length
								      : fsize - w->pixel_offset;
		if (!w->pixel_truncated && w->pixel_offset + w->pixel_length < fsize)
			e->tr_off = w->pixel_offset + w->pixel_length;
	}
	const char *vr = w->encapsulated ? "OB" : w->pixel_tag == 0x7FE00008 ? "OF" :
			 w->pixel_tag == 0x7FE00009 ? "OD" : "OW";
	uint8_t h[8];
	if (w->explicit_vr) {
		const uint8_t *p = NULL;
		if (flen >= w->header_end + 8)
			p = file + w->header_end;
		else if (e->fd >= 0 && pread(e->fd, h, 8, (off_t)w->header_end) == 8)
			p = h;
		if (p && p[4] >= 'A' && p[4] <= 'Z' && p[5] >= 'A' && p[5] <= 'Z')
			vr = (const char *)p + 4;
	}
	e->px_vr[0] = vr[0];
	e->px_vr[1] = vr[1];
}

/* ---- walk callbacks ---- */

static int enter(struct em *e, int seq)
{
	if (e->overflow || e->depth + 1 >= MAX_FRAMES) {
		e->overflow++;
		return 0;
	}
	struct frame *p = &e->f[e->depth], *f = &e->f[++e->depth];
	f->seq = (unsigned char)seq;
	f->count = 0;
	f->cs_len = p->cs_len;
	memcpy(f->cs, p->cs, p->cs_len);
	return 1;
}

static int leave(struct em *e)
{
	if (e->overflow) {
		e->overflow--;
		return 0;
	}
	e->depth--;
	return 1;
}

static void before_member(struct em *e, uint32_t tag)
{
	if (e->depth == 0 && e->px_pending && tag >= e->px_tag)
		pixel_flush(e);
}

static int tag_wanted(const struct dcmjson_attrs *a, uint32_t tag)
{
	size_t lo = 0, hi = a->ntags;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (a->tags[mid] == tag)
			return 1;
		if (a->tags[mid] < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

static void cb_element(void *ctx, uint32_t tag, const char vr[2],
		       const uint8_t *v, size_t n, int64_t off)
{
	struct em *e = ctx;
	if (e->depth == 0 && tag == 0xFFFCFFFC)
		return;   /* Data Set Trailing Padding */
	if (e->attrs && e->depth == 0 && !e->overflow && tag_wanted(e->attrs, tag))
		e->attrs->fn(e->attrs->ctx, tag, vr, v, n);
	if (e->overflow || e->err)
		return;
	before_member(e, tag);
	if (e->depth == 0 && tag == e->px_tag)
		return;
	member_begin(e, tag, vr);
	if (vr_bytes(vr)) {
		if (n > DCMJSON_INLINE_MAX && off >= 0)
			put_bulk_uri(e, (uint64_t)(off + e->delta), n);
		else if (n)
			put_inline(e, v, n);
	} else if (vr_is(vr, "US") || vr_is(vr, "SS") || vr_is(vr, "UL") ||
		   vr_is(vr, "SL") || vr_is(vr, "FL") || vr_is(vr, "FD") ||
		   vr_is(vr, "SV") || vr_is(vr, "UV") || vr_is(vr, "AT")) {
		put_numbers(e, vr, v, n);
	} else if (vr_is(vr, "SQ")) {
		/* an SQ the shim could not open as one: no value */
	} else {
		put_text(e, vr, v, n);
	}
	put(e, "}", 1);
}

static void cb_charset(void *ctx, const char *v, size_t n)
{
	struct em *e = ctx;
	if (e->overflow)
		return;
	struct frame *f = &e->f[e->depth];
	n = trim_right(v, n);
	f->cs_len = (unsigned char)(n < CS_MAX ? n : CS_MAX);
	memcpy(f->cs, v, f->cs_len);
}

static void cb_seq_begin(void *ctx, uint32_t tag)
{
	struct em *e = ctx;
	if (e->overflow || e->err) {
		if (e->overflow)
			e->overflow++;
		else
			enter(e, 1);
		return;
	}
	before_member(e, tag);
	member_begin(e, tag, "SQ");
	enter(e, 1);
}

static void cb_seq_end(void *ctx, uint32_t tag)
{
	struct em *e = ctx;
	(void)tag;
	if (e->overflow) {
		leave(e);
		return;
	}
	if (e->f[e->depth].count)
		put(e, "]", 1);
	put(e, "}", 1);
	leave(e);
}

static void cb_item_begin(void *ctx)
{
	struct em *e = ctx;
	if (e->overflow) {
		e->overflow++;
		return;
	}
	struct frame *s = &e->f[e->depth];
	puts_(e, s->count ? ",{" : ",\"Value\":[{");
	s->count = 1;
	enter(e, 0);
}

static void cb_item_end(void *ctx)
{
	struct em *e = ctx;
	if (e->overflow) {
		leave(e);
		return;
	}
	put(e, "}", 1);
	leave(e);
}

static const struct dcmshim_walk_ops walk_ops = {
	.element = cb_element,
	.charset = cb_charset,
	.seq_begin = cb_seq_begin,
	.seq_end = cb_seq_end,
	.item_begin = cb_item_begin,
	.item_end = cb_item_end,
};

static int dcmjson_build_named(const uint8_t *file, size_t flen, uint64_t file_size,
			       const struct dcmwalk_result *w, int fd, const char *name,
			       size_t name_len, const struct dcmjson_attrs *a,
			       struct dcmjson_out *out);

/*
 * The elements after Pixel Data as a Part 10 buffer of their own
 * (malloc()ed; *len, *prefix: bytes before the trailer), or NULL (none,
 * not well-formed, too big, unreadable).
 */
static uint8_t *trailer_buffer(struct em *e, uint64_t fsize, const struct dcmwalk_result *w,
			       size_t *len, size_t *prefix)
{
	if (!e->tr_off || e->fd < 0 || w->deflated || e->tr_off >= fsize ||
	    fsize - e->tr_off > DCMJSON_TRAILER_MAX)
		return NULL;
	/* the encoding dcmwalk found, whatever the meta said */
	const char *ts = !w->explicit_vr ? "1.2.840.10008.1.2" :
			 w->big_endian ? "1.2.840.10008.1.2.2" : "1.2.840.10008.1.2.1";
	uint8_t meta[192] = { 0 };
	size_t tl = (size_t)(fsize - e->tr_off), ul = strlen(ts), vl = (ul + 1) & ~(size_t)1;
	size_t m = 128;
	memcpy(meta + m, "DICM", 4);
	m += 4;
	/* (0002,0000) UL group length, (0002,0010) UI transfer syntax */
	static const uint8_t gl[8] = { 2, 0, 0, 0, 'U', 'L', 4, 0 };
	memcpy(meta + m, gl, 8);
	uint32_t glv = (uint32_t)(8 + vl);
	for (int k = 0; k < 4; k++)
		meta[m + 8 + (size_t)k] = (uint8_t)(glv >> (8 * k));
	m += 12;
	static const uint8_t tsh[6] = { 2, 0, 0x10, 0, 'U', 'I' };
	memcpy(meta + m, tsh, 6);
	meta[m + 6] = (uint8_t)vl;
	meta[m + 7] = 0;
	memcpy(meta + m + 8, ts, ul);
	m += 8 + vl;
	uint8_t *b = malloc(m + tl);
	if (b && pread(e->fd, b + m, tl, (off_t)e->tr_off) == (ssize_t)tl &&
	    dcmwalk_trailer(b + m, tl, w) == 0) {
		memcpy(b, meta, m);
		*len = m + tl;
		*prefix = m;
		return b;
	}
	free(b);
	return NULL;
}

/* close what a walk left open (an exception cuts it short) */
static void close_open(struct em *e)
{
	while (e->overflow)
		leave(e);
	while (e->depth > 0) {
		if (e->f[e->depth].seq) {
			if (e->f[e->depth].count)
				put(e, "]", 1);
			put(e, "}", 1);
		} else {
			put(e, "}", 1);
		}
		e->depth--;
	}
}

static _Atomic int walker_mode = -1;

void dcmjson_set_walker(int mode)
{
	atomic_store(&walker_mode, mode);
}

static int walker(void)
{
	int m = atomic_load_explicit(&walker_mode, memory_order_relaxed);
	if (m < 0) {
		const char *v = getenv("DICOMFS_JSON_GDCM");
		m = v && *v && strcmp(v, "0") ? DCMJSON_WALK_GDCM : DCMJSON_WALK_AUTO;
		atomic_store(&walker_mode, m);
	}
	return m;
}

void dcmjson_header_range(const struct dcmwalk_result *w, size_t *skip, int *whole)
{
	/* as parse_one (scan.c): GDCM trusts the meta transfer syntax, so a
	 * data set that disagrees is given alone, to be detected as such */
	*skip = w->ts_mismatch ? (size_t)w->dataset_start : 0;
	*whole = w->deflated;
}

int dcmjson_build(const uint8_t *file, size_t flen, uint64_t file_size,
		  const struct dcmwalk_result *w, int fd, const char *name,
		  size_t name_len, struct dcmjson_out *out)
{
	return dcmjson_build_named(file, flen, file_size, w, fd, name, name_len,
				   NULL, out);
}

int dcmjson_build_attrs(const uint8_t *file, size_t flen, uint64_t file_size,
			const struct dcmwalk_result *w, int fd,
			const struct dcmjson_attrs *a, struct dcmjson_out *out)
{
	return dcmjson_build_named(file, flen, file_size, w, fd, NULL, 0, a, out);
}

static int dcmjson_build_named(const uint8_t *file, size_t flen, uint64_t file_size,
			       const struct dcmwalk_result *w, int fd, const char *name,
			       size_t name_len, const struct dcmjson_attrs *a,
			       struct dcmjson_out *out)
{
	struct dcmshim_info info;
	struct em *e;
	size_t skip;
	int whole, rc;

	out->len = 0;
	out->nbulk = 0;
	out->partial = 0;
	out->charset_warn = 0;
	out->c_walk = 0;
	if (flen < w->header_end)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->o = out;
	/* (J1) the caller's buffer is reused: strbuf's (S1) holds for it */
	e->sb.buf = out->buf;
	e->sb.alloc = out->cap;
	if (e->sb.buf)
		e->sb.buf[0] = 0;
	e->name = name ? name : "";
	e->name_len = name ? name_len : 0;
	e->fd = fd;
	e->attrs = a;
	dcmjson_header_range(w, &skip, &whole);
	e->delta = (int64_t)skip;
	pixel_setup(e, file, flen, file_size, w);
	put(e, "{", 1);
	/* the C walker where it is sure to give what GDCM gives (dcmelem.h) */
	rc = DCMELEM_UNHANDLED;
	if (!skip && !whole && walker() == DCMJSON_WALK_AUTO)
		rc = dcmelem_walk(file, (size_t)w->header_end, w, DCMJSON_INLINE_MAX + 1,
				  &walk_ops, e);
	if (rc == 0) {
		memset(&info, 0, sizeof(info));
		out->c_walk = 1;
	} else if (rc == DCMELEM_UNHANDLED) {
		rc = dcmshim_walk(file + skip, (size_t)w->header_end - skip, whole,
				  DCMJSON_INLINE_MAX + 1, &walk_ops, e, &info);
	}
	if (rc == 0) {
		out->partial = info.partial;
		close_open(e);
		size_t tlen = 0, prefix = 0;
		uint8_t *tb = trailer_buffer(e, file_size, w, &tlen, &prefix);
		if (tb) {
			struct dcmshim_info ti;
			e->delta = (int64_t)e->tr_off - (int64_t)prefix;
			if (dcmshim_walk(tb, tlen, 2, DCMJSON_INLINE_MAX + 1, &walk_ops, e, &ti) == 0)
				out->partial |= ti.partial;
			close_open(e);
			free(tb);
		}
		pixel_flush(e);
		put(e, "}\n", 2);
	}
	if (!rc)
		rc = e->err ? e->err : strbuf_error(&e->sb);
	out->buf = e->sb.buf;
	out->cap = e->sb.alloc;
	out->len = rc ? 0 : e->sb.len;
	free(e);
	return rc;
}

void dcmjson_release(struct dcmjson_out *out)
{
	free(out->buf);
	out->buf = NULL;
	out->len = out->cap = 0;
}
