/* strbuf.c - see strbuf.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"

int strbuf_grow(struct strbuf *sb, size_t extra)
{
	if (sb->failed)
		return -ENOMEM;
	if (extra > SIZE_MAX / 2 - sb->len)
		goto fail;
	size_t need = sb->len + extra + 1;
	if (need <= sb->alloc)
		return 0;
	size_t cap = sb->alloc ? sb->alloc : 256;
	while (cap < need)
		cap *= 2;
	char *p = realloc(sb->buf, cap);
	if (!p)
		goto fail;
	if (!sb->buf)
		p[0] = 0;
	sb->buf = p;
	sb->alloc = cap;
	return 0;
fail:
	sb->failed = 1;
	return -ENOMEM;
}

int strbuf_add(struct strbuf *sb, const void *data, size_t len)
{
	int rc = strbuf_grow(sb, len);
	if (rc)
		return rc;
	if (len)
		memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = 0;
	return 0;
}

int strbuf_addstr(struct strbuf *sb, const char *s)
{
	return strbuf_add(sb, s, strlen(s));
}

int strbuf_addch(struct strbuf *sb, char c)
{
	return strbuf_add(sb, &c, 1);
}

int strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	char small[256];
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return strbuf_add(sb, small, (size_t)n);
	int rc = strbuf_grow(sb, (size_t)n);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
	return 0;
}

void strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = 0;
}

void strbuf_release(struct strbuf *sb)
{
	free(sb->buf);
	*sb = (struct strbuf)STRBUF_INIT;
}

char *strbuf_detach(struct strbuf *sb, size_t *len)
{
	char *p = sb->buf;
	if (len)
		*len = sb->len;
	*sb = (struct strbuf)STRBUF_INIT;
	return p;
}

size_t utf8_seq_len(const unsigned char *s, size_t l)
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

int strbuf_add_json_str(struct strbuf *sb, const char *str, size_t l)
{
	const unsigned char *s = (const unsigned char *)str;
	strbuf_addch(sb, '"');
	for (size_t i = 0; i < l;) {
		size_t run = i;
		while (run < l && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' &&
		       s[run] != '\\')
			run++;
		if (run > i) {
			strbuf_add(sb, str + i, run - i);
			i = run;
			continue;
		}
		unsigned c = s[i];
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			strbuf_add(sb, e, 2);
			i++;
		} else if (c < 0x20) {
			switch (c) {
			case '\n': strbuf_add(sb, "\\n", 2); break;
			case '\r': strbuf_add(sb, "\\r", 2); break;
			case '\t': strbuf_add(sb, "\\t", 2); break;
			case '\b': strbuf_add(sb, "\\b", 2); break;
			case '\f': strbuf_add(sb, "\\f", 2); break;
			default: strbuf_addf(sb, "\\u%04x", c);
			}
			i++;
		} else {
			size_t n = utf8_seq_len(s + i, l - i);
			if (n) {
				strbuf_add(sb, str + i, n);
				i += n;
			} else {
				strbuf_add(sb, "\\ufffd", 6);
				i++;
			}
		}
	}
	strbuf_addch(sb, '"');
	return strbuf_error(sb);
}

int strbuf_add_csv(struct strbuf *sb, const char *s, size_t l)
{
	if (!memchr(s, ',', l) && !memchr(s, '"', l) && !memchr(s, '\n', l) &&
	    !memchr(s, '\r', l))
		return strbuf_add(sb, s, l);
	strbuf_addch(sb, '"');
	for (size_t i = 0; i < l; i++) {
		if (s[i] == '"')
			strbuf_addch(sb, '"');
		strbuf_addch(sb, s[i]);
	}
	return strbuf_addch(sb, '"');
}

static void add_clean(struct strbuf *sb, const char *s)
{
	for (; *s; s++)
		strbuf_addch(sb, (*s == '\t' || *s == '\n' || *s == '\r') ? ' ' : *s);
}

int strbuf_add_tsv2(struct strbuf *sb, const char *a, const char *b)
{
	add_clean(sb, a);
	strbuf_addch(sb, '\t');
	add_clean(sb, b);
	return strbuf_addch(sb, '\n');
}

uint64_t fnv1a(uint64_t h, const void *p, size_t l)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < l; i++) {
		h ^= c[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}
