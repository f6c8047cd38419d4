/*
 * charset.c - DICOM Specific Character Set (0008,0005) to UTF-8.
 *
 * Design notes:
 * - charset_sets[] describes every graphic character set we know: ISO-IR
 *   number used in the defined terms, ISO 2022 escape sequence (PS3.3
 *   C.12-3/C.12-4), G0 or G1, and the glibc iconv charset for its bytes.
 * - Pure ASCII values are copied.  Stand-alone repertoires (ISO_IR 192,
 *   GB18030, GBK, and ISO_IR 13, read as CP932 since real files carry full
 *   Shift_JIS there) are decoded in one pass, as pydicom does.  UTF-8 is
 *   validated here (glibc accepts F5..F7 leads), one U+FFFD per maximal
 *   invalid subsequence, like Python.
 * - Everything else goes through a small ISO 2022 G0/G1 state machine that
 *   rewrites bytes to EUC and batches them per iconv charset: JIS X 0208
 *   in G0 gets the high bit (EUC-JP), JIS X 0212 also SS3, JIS X 0201
 *   katakana in G1 gets SS2; KS X 1001 / GB 2312 in G1 already are EUC-KR
 *   / EUC-CN.  ESC ( J (JIS X 0201 Roman) is read as ASCII, like pydicom.
 * - The value 1 state is restored at control characters, '\\' and, for
 *   PN, '^' and '=' (PS3.5 6.1.2.5.3), except inside two-byte G0 text.
 * - Undecodable bytes, interior NULs and unknown escapes give U+FFFD,
 *   escapes to sets not named in (0008,0005) are honoured; all of these
 *   return DFS_WARN_CHARSET.  Trailing NUL padding is stripped silently.
 * - iconv descriptors live in the per-call context (reentrant).
 */
#include "charset.h"
#include "strbuf.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ESC 0x1b
#define G0 0
#define G1 1

struct charset_set {
	unsigned short ir;	/* ISO-IR number of the term, 0: none */
	const char *esc;	/* escape sequence after ESC, NULL: stand-alone */
	const char *code;	/* iconv charset, NULL: plain ASCII */
	unsigned char g;	/* G0 or G1 */
	unsigned char wide;	/* two 7-bit bytes per character (G0 only) */
	unsigned char ss;	/* EUC single shift prefix, 0: none */
};

enum { CS_ASCII, CS_ROMAN, CS_LATIN1, CS_KANA, CS_GB18030, CS_GBK, CS_CP932 };

static const struct charset_set charset_sets[] = {
	[CS_ASCII]   = {   6, "(B",  NULL,          G0, 0, 0 },
	[CS_ROMAN]   = {   0, "(J",  NULL,          G0, 0, 0 },
	[CS_LATIN1]  = { 100, "-A",  "ISO-8859-1",  G1, 0, 0 },
	[CS_KANA]    = {  13, ")I",  "EUC-JP",      G1, 0, 0x8e },
	[CS_GB18030] = {   0, NULL,  "GB18030",     G1, 0, 0 },
	[CS_GBK]     = {   0, NULL,  "GBK",         G1, 0, 0 },
	[CS_CP932]   = {   0, NULL,  "CP932",       G1, 0, 0 },
	{ 192, NULL,  "UTF-8",       G1, 0, 0 },
	{ 101, "-B",  "ISO-8859-2",  G1, 0, 0 },
	{ 109, "-C",  "ISO-8859-3",  G1, 0, 0 },
	{ 110, "-D",  "ISO-8859-4",  G1, 0, 0 },
	{ 126, "-F",  "ISO-8859-7",  G1, 0, 0 },
	{ 127, "-G",  "ISO-8859-6",  G1, 0, 0 },
	{ 138, "-H",  "ISO-8859-8",  G1, 0, 0 },
	{ 144, "-L",  "ISO-8859-5",  G1, 0, 0 },
	{ 148, "-M",  "ISO-8859-9",  G1, 0, 0 },
	{ 166, "-T",  "TIS-620",     G1, 0, 0 },
	{ 203, "-b",  "ISO-8859-15", G1, 0, 0 },
	{  87, "$B",  "EUC-JP",      G0, 1, 0 },
	{ 159, "$(D", "EUC-JP",      G0, 1, 0x8f },
	{ 149, "$)C", "EUC-KR",      G1, 0, 0 },
	{  58, "$)A", "EUC-CN",      G1, 0, 0 },
};

#define CS_NSETS ((int)(sizeof(charset_sets) / sizeof(charset_sets[0])))


struct charset_ctx {
	struct strbuf out, run;	/* UTF-8 out; run: bytes queued for iconv */
	const char *run_code;	/* iconv charset of the bytes in run */
	iconv_t cd;
	const char *cd_code;	/* charset cd was opened for */
	unsigned long declared;	/* bitmask of charset_sets[] named in 0008,0005 */
	int init_g0, init_g1;	/* state restored at delimiters */
	int is_pn, warn;
};

static int charset_fffd(struct charset_ctx *c)
{
	c->warn = 1;
	return strbuf_add(&c->out, "\xef\xbf\xbd", 3);
}

/* Convert n bytes in charset code and append them to c->out. */
static int charset_iconv(struct charset_ctx *c, const char *code,
			 const char *in, size_t n)
{
	size_t extra = 4 * n + 4;

	if (c->cd_code != code) {
		if (c->cd != (iconv_t)-1)
			iconv_close(c->cd);
		c->cd = iconv_open("UTF-8", code);
		c->cd_code = c->cd == (iconv_t)-1 ? NULL : code;
	}
	while (n > 0) {
		char *ip = (char *)in, *op;
		size_t ol, r = (size_t)-1;

		if (strbuf_grow(&c->out, extra))
			return -ENOMEM;
		op = c->out.buf + c->out.len;
		ol = c->out.alloc - c->out.len - 1;
		errno = EILSEQ;		/* without gconv module: all fail */
		if (c->cd != (iconv_t)-1)
			r = iconv(c->cd, &ip, &n, &op, &ol);
		c->out.len = op - c->out.buf;
		c->out.buf[c->out.len] = 0;	/* strbuf (S1) */
		in = ip;
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG) {
			extra *= 2;
			continue;
		}
		/* EILSEQ/EINVAL: replace one byte (our charsets are stateless) */
		if (charset_fffd(c))
			return -ENOMEM;
		in++;
		n--;
	}
	return 0;
}

static int charset_flush(struct charset_ctx *c)
{
	size_t n = c->run.len;

	c->run.len = 0;
	return n ? charset_iconv(c, c->run_code, c->run.buf, n) : 0;
}

/* Queue bytes (optionally prefixed by an EUC single shift) for code. */
static int charset_queue(struct charset_ctx *c, const char *code,
			 unsigned char ss, const unsigned char *s, size_t n)
{
	char tmp[3];
	size_t k = 0, i;

	if (c->run_code != code && charset_flush(c))
		return -ENOMEM;
	c->run_code = code;
	if (ss)
		tmp[k++] = (char)ss;
	for (i = 0; i < n; i++)
		tmp[k++] = (char)(s[i] | 0x80);
	return strbuf_add(&c->run, tmp, k);
}

/* Match the escape sequence after ESC; returns set index or -1. */
static int charset_match_esc(const unsigned char *p, size_t n, size_t *len)
{
	int i;

	for (i = 0; i < CS_NSETS; i++) {
		const char *e = charset_sets[i].esc;

		*len = e ? strlen(e) : 0;
		if (*len && *len <= n && !memcmp(p, e, *len))
			return i;
	}
	return -1;
}

/* Decode a value containing escape sequences (ISO 2022 code extension). */
static int charset_decode_2022(struct charset_ctx *c,
			       const unsigned char *p, size_t n)
{
	int g0 = c->init_g0, g1 = c->init_g1, s, ret = 0;
	size_t i = 0, len;

	while (i < n && !ret) {
		const struct charset_set *w0 = &charset_sets[g0];
		const struct charset_set *w1 = &charset_sets[g1];
		unsigned char b = p[i++];
		int wide = w0->wide && b > 0x20 && b < 0x7f;

		if (b >= 0x80 && (!w1->ss || (b >= 0xa1 && b <= 0xdf))) {
			ret = charset_queue(c, w1->code, w1->ss, &b, 1);
			continue;
		}
		if (wide && i < n && p[i] > 0x20 && p[i] < 0x7f) {
			ret = charset_queue(c, w0->code, w0->ss, p + i - 1, 2);
			i++;
			continue;
		}
		ret = charset_flush(c);
		s = b == ESC ? charset_match_esc(p + i, n - i, &len) : -1;
		if (ret) {
			break;
		} else if (s >= 0) {	/* designate a set to G0 or G1 */
			c->warn |= !(c->declared & 1UL << s);
			*(charset_sets[s].g == G0 ? &g0 : &g1) = s;
			i += len;
		} else if (b == ESC || !b || b >= 0x80 || wide) {
			ret = charset_fffd(c);	/* also lone byte, bad kana */
		} else {
			if (b < 0x20 || b == '\\' ||
			    (c->is_pn && (b == '^' || b == '='))) {
				g0 = c->init_g0;
				g1 = c->init_g1;
			}
			ret = strbuf_add(&c->out, (char *)&b, 1);
		}
	}
	return ret ? ret : charset_flush(c);
}

/*
 * Validate UTF-8, copying valid sequences.  Like Python, each maximal
 * prefix of a valid sequence that is cut short becomes one U+FFFD.
 */
static int charset_decode_utf8(struct charset_ctx *c,
			       const unsigned char *p, size_t n)
{
	size_t i = 0, k, len;
	unsigned char b, lo, hi;

	if (strbuf_grow(&c->out, 3 * n))
		return -ENOMEM;
	while (i < n) {
		b = p[i];
		lo = b == 0xe0 ? 0xa0 : b == 0xf0 ? 0x90 : 0x80;
		hi = b == 0xed ? 0x9f : b == 0xf4 ? 0x8f : 0xbf;
		len = b && b < 0x80 ? 1 : b < 0xc2 ? 0 : b < 0xe0 ? 2 :
		      b < 0xf0 ? 3 : b < 0xf5 ? 4 : 0;
		for (k = 1; k < len && i + k < n; k++) {
			if (p[i + k] < lo || p[i + k] > hi)
				break;
			lo = 0x80;
			hi = 0xbf;
		}
		if (k == len) {		/* len 0 (bad lead byte) has k 1 */
			memcpy(c->out.buf + c->out.len, p + i, len);
		} else {
			memcpy(c->out.buf + c->out.len, "\xef\xbf\xbd", 3);
			len = 3;
			c->warn = 1;
		}
		c->out.len += len;
		i += k;
	}
	c->out.buf[c->out.len] = 0;	/* strbuf (S1) */
	return 0;
}

/* Decode in one pass with code, replacing interior NULs by U+FFFD. */
static int charset_decode_whole(struct charset_ctx *c, const char *code,
				const char *p, size_t n)
{
	if (!strcmp(code, "UTF-8"))
		return charset_decode_utf8(c, (const unsigned char *)p, n);
	while (n > 0) {
		const char *nul = memchr(p, 0, n);
		size_t k = nul ? (size_t)(nul - p) : n;

		if (charset_iconv(c, code, p, k) || (nul && charset_fffd(c)))
			return -ENOMEM;
		k += nul != NULL;
		p += k;
		n -= k;
	}
	return 0;
}

static int charset_eq(const char *t, size_t n, const char *s)
{
	return strlen(s) == n && !strncasecmp(t, s, n);
}

/*
 * Resolve one defined term to a charset_sets[] index, or -1 if unknown.
 * Like pydicom, any single character is accepted as separator in
 * "ISO_IR nnn" and "ISO 2022 IR nnn" (e.g. "ISO-IR 100", "ISO IR 100").
 */
static int charset_lookup(const char *t, size_t n)
{
	size_t pos = 4;
	unsigned int ir = 0;
	int i, iso2022 = 0;

	if (n == 0)
		return CS_ASCII;
	if (charset_eq(t, n, "GB18030"))
		return CS_GB18030;
	if (charset_eq(t, n, "GBK") || charset_eq(t, n, "ISO 2022 GBK"))
		return CS_GBK;
	if (charset_eq(t, n, "ISO 2022 58"))
		t = "ISO 2022 IR 58", n = 14;
	if (n < 8 || strncasecmp(t, "ISO", 3))
		return -1;
	if (n > 12 && !strncmp(t + 4, "2022", 4)) {
		iso2022 = 1;
		pos = 9;
	}
	if (strncasecmp(t + pos, "IR", 2) || pos + 3 >= n || n - pos > 6)
		return -1;
	for (pos += 3; pos < n; pos++) {
		if (t[pos] < '0' || t[pos] > '9')
			return -1;
		ir = ir * 10 + (unsigned int)(t[pos] - '0');
	}
	if (ir == 13 && !iso2022)
		return CS_CP932;
	for (i = 0; i < CS_NSETS; i++)
		if (charset_sets[i].ir == ir)
			return i;
	return -1;
}

int charset_to_utf8(const char *specific_charset, size_t cs_len,
		    const char *in, size_t inlen, int is_pn,
		    char **out, size_t *outlen)
{
	struct charset_ctx c = { .cd = (iconv_t)-1, .is_pn = is_pn,
				 .init_g0 = CS_ASCII, .init_g1 = CS_LATIN1,
				 .declared = 1UL << CS_ASCII | 1UL << CS_ROMAN };
	const char *cs = specific_charset ? specific_charset : "";
	size_t cs_n = specific_charset ? cs_len : 0;
	const char *whole = NULL;
	size_t i, start, end, vm = 0;
	int s, simple = 1, ret;

	/* Parse the backslash-separated terms, trimming space padding. */
	for (start = 0; start <= cs_n; start = end + 1, vm++) {
		for (end = start; end < cs_n && cs[end] != '\\'; end++)
			;
		for (i = end; i > start && (cs[i - 1] == ' ' || !cs[i - 1]); i--)
			;
		while (start < i && cs[start] == ' ')
			start++;
		s = charset_lookup(cs + start, i - start);
		if (s < 0) {
			c.warn = 1;	/* unknown: ISO_IR 100 for value 1 */
			s = vm ? -1 : CS_LATIN1;
		}
		if (s < 0 || (vm && (whole || !charset_sets[s].esc)))
			continue;	/* stand-alone sets allow no extension */
		c.declared |= 1UL << s;
		if (!charset_sets[s].esc)
			whole = charset_sets[s].code;
		else if (!vm && charset_sets[s].g == G1)
			c.init_g1 = s;
	}

	while (inlen && !in[inlen - 1])	/* NUL padding (UI style) */
		inlen--;
	for (i = 0; i < inlen; i++)
		if ((unsigned char)in[i] >= 0x80 || in[i] == ESC || !in[i])
			simple = 0;

	if (simple)
		ret = strbuf_add(&c.out, in, inlen);
	else if (whole)
		ret = charset_decode_whole(&c, whole, in, inlen);
	else
		ret = charset_decode_2022(&c, (const unsigned char *)in, inlen);
	if (!ret)
		ret = strbuf_add(&c.out, "", 1);
	if (ret)
		goto free_out;

	*out = c.out.buf;
	if (outlen)
		*outlen = c.out.len - 1;
	ret = c.warn ? DFS_WARN_CHARSET : 0;
	goto free_ctx;

free_out:
	strbuf_release(&c.out);
free_ctx:
	strbuf_release(&c.run);
	if (c.cd != (iconv_t)-1)
		iconv_close(c.cd);
	return ret;
}
