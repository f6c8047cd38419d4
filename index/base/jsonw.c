/* jsonw.c - see jsonw.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"

void jsonw_init(struct jsonw *w, struct strbuf *sb)
{
	w->sb = sb;
	w->comma = 0;
}

/* a value or key position: the comma due (W1) */
static void pre(struct jsonw *w)
{
	if (w->comma)
		strbuf_addch(w->sb, ',');
	w->comma = 0;
}

static void open_(struct jsonw *w, char c)
{
	pre(w);
	strbuf_addch(w->sb, c);
}

static void close_(struct jsonw *w, char c)
{
	strbuf_addch(w->sb, c);
	w->comma = 1;
}

void jsonw_open_obj(struct jsonw *w) { open_(w, '{'); }
void jsonw_close_obj(struct jsonw *w) { close_(w, '}'); }
void jsonw_open_arr(struct jsonw *w) { open_(w, '['); }
void jsonw_close_arr(struct jsonw *w) { close_(w, ']'); }

void jsonw_key(struct jsonw *w, const char *k)
{
	pre(w);
	strbuf_add_json_str(w->sb, k, strlen(k));
	strbuf_addch(w->sb, ':');
}

void jsonw_str(struct jsonw *w, const char *s, size_t l)
{
	pre(w);
	strbuf_add_json_str(w->sb, s, l);
	w->comma = 1;
}

void jsonw_cstr(struct jsonw *w, const char *s)
{
	jsonw_str(w, s, strlen(s));
}

void jsonw_raw(struct jsonw *w, const char *s)
{
	pre(w);
	strbuf_addstr(w->sb, s);
	w->comma = 1;
}

void jsonw_u64(struct jsonw *w, uint64_t v)
{
	pre(w);
	strbuf_addf(w->sb, "%llu", (unsigned long long)v);
	w->comma = 1;
}

void jsonw_kstr(struct jsonw *w, const char *k, const char *s, size_t l)
{
	jsonw_key(w, k);
	jsonw_str(w, s, l);
}

void jsonw_kcstr(struct jsonw *w, const char *k, const char *s)
{
	jsonw_kstr(w, k, s, strlen(s));
}

/* JSON number grammar: -?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)? */
static int number_ok(const char *s, size_t l)
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

void jsonw_decimal(struct jsonw *w, const char *s, size_t l)
{
	char t[64], u[64];
	while (l && (s[0] == ' ' || s[0] == '\t'))
		s++, l--;
	while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == 0))
		l--;
	if (l == 0) {
		jsonw_raw(w, "null");
		return;
	}
	if (l < sizeof(t)) {
		memcpy(t, s, l);
		t[l] = 0;
		if (number_ok(s, l)) {
			jsonw_raw(w, t);
			return;
		}
		char *end;
		double d = strtod(t, &end);
		if (end == t + l && isfinite(d) && !strpbrk(t, "xXnN")) {
			for (int p = 1; p <= 17; p++) {
				snprintf(u, sizeof(u), "%.*g", p, d);
				if (strtod(u, NULL) == d)
					break;
			}
			jsonw_raw(w, u);
			return;
		}
	}
	jsonw_str(w, s, l);
}
