#include <stdio.h>
#include <string.h>
#include "naming.h"
#include "strbuf.h"

int name_glob_char(char c)
{
	return c == '*' || c == '?' || c == '[' || c == ']';
}

uint64_t name_fnv1a(const char *s, size_t len)
{
	return fnv1a(FNV1A_INIT, s, len);
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if invalid or a C1
 * control (U+0080..U+009F, encoded C2 80..C2 9F): control characters too. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t len = utf8_seq_len(p, n);
	if (len == 2 && p[0] == 0xC2 && p[1] <= 0x9F)
		return 0;
	return len;
}

size_t name_sanitize(const char *in, size_t len, char *out, size_t outsz)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0, limit = outsz - 1;
	int pending_space = 0;

	if (limit > NAME_BASE_MAX)
		limit = NAME_BASE_MAX;
	for (size_t i = 0; i < len;) {
		/* the common case first: printable ASCII kept as it is (UIDs,
		 * numbers, most names), no UTF-8 decoding */
		unsigned char c = p[i];
		if (c > 0x20 && c < 0x7F && c != '/' && c != '\\' && !name_glob_char((char)c)) {
			if (o + pending_space + 1 > limit)
				break;
			if (pending_space)
				out[o++] = ' ';
			pending_space = 0;
			out[o++] = (char)c;
			i++;
			continue;
		}
		size_t n = utf8_seq(p + i, len - i);
		const char *rep = NULL;
		size_t rl = 0;
		if (n == 0) {
			rep = "\xEF\xBF\xBD"; /* U+FFFD */
			rl = 3;
			n = 1;
		} else if (n == 1 && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' ||
				      p[i] == '\r')) {
			pending_space = o > 0;
			i++;
			continue;
		} else if (n == 1 && (p[i] < 0x20 || p[i] == 0x7F || p[i] == '/' ||
				      p[i] == '\\' || name_glob_char((char)p[i]))) {
			rep = "_";
			rl = 1;
		} else if (n == 2 && p[i] == 0xC2 && p[i + 1] == 0xA0) {
			pending_space = o > 0; /* no-break space */
			i += 2;
			continue;
		} else {
			rep = (const char *)p + i;
			rl = n;
		}
		if (o + pending_space + rl > limit)
			break;
		if (pending_space)
			out[o++] = ' ';
		pending_space = 0;
		memcpy(out + o, rep, rl);
		o += rl;
		i += n;
	}
	if (o > 0 && (out[0] == '.' || out[0] == '~'))
		out[0] = '_';
	out[o] = 0;
	return o;
}

size_t name_pn_display(const char *pn, size_t len, char *out, size_t outsz)
{
	char tmp[NAME_BUF * 2];
	size_t o = 0;
	const char *end = memchr(pn, '=', len);
	if (end)
		len = (size_t)(end - pn);
	for (size_t i = 0; i < len && o + 1 < sizeof(tmp); i++)
		tmp[o++] = pn[i] == '^' ? ' ' : pn[i];
	return name_sanitize(tmp, o, out, outsz);
}

int name_parse_int(const char *s, size_t len, long long *v)
{
	size_t i = 0;
	int neg = 0;
	long long x = 0;
	while (i < len && s[i] == ' ')
		i++;
	while (len > i && (s[len - 1] == ' ' || s[len - 1] == 0))
		len--;
	if (i < len && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	if (i == len || len - i > 15)
		return 0;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		x = x * 10 + (s[i] - '0');
	}
	*v = neg ? -x : x;
	return 1;
}

int name_digits(long long v)
{
	int d = 1;
	while (v >= 10) {
		v /= 10;
		d++;
	}
	return d;
}

int name_da_digits(const char *s, size_t len, char ymd[8])
{
	static const char *const shapes[] = { "dddddddd", "dddd.dd.dd" };
	while (len && (s[len - 1] == ' ' || s[len - 1] == 0))
		len--;
	for (size_t k = 0; k < 2; k++) {
		const char *sh = shapes[k];
		size_t n = 0, i;
		if (strlen(sh) != len)
			continue;
		for (i = 0; i < len; i++) {
			if (sh[i] == 'd' && s[i] >= '0' && s[i] <= '9')
				ymd[n++] = s[i];
			else if (sh[i] != s[i])
				break;
		}
		if (i == len)
			return 1;
	}
	return 0;
}

/* Join non-empty sanitized parts with single spaces. */
static void join(char out[NAME_BUF], const char *const *parts, int n)
{
	size_t o = 0;
	out[0] = 0;
	for (int i = 0; i < n; i++) {
		size_t l = strlen(parts[i]);
		if (!l)
			continue;
		if (o && o + 1 < NAME_BASE_MAX)
			out[o++] = ' ';
		if (o + l > NAME_BASE_MAX)
			l = NAME_BASE_MAX - o;
		/* cut on a UTF-8 boundary */
		while (l && ((unsigned char)parts[i][l] & 0xC0) == 0x80)
			l--;
		memcpy(out + o, parts[i], l);
		o += l;
		out[o] = 0;
	}
	while (o && out[o - 1] == ' ')
		out[--o] = 0;
	if (o && (out[0] == '.' || out[0] == '~'))
		out[0] = '_';
}

void name_patient(const char *pn, size_t pnl, const char *id, size_t idl,
		  char out[NAME_BUF])
{
	char name[NAME_BUF], sid[NAME_BUF], idp[NAME_BUF + 2];
	name_pn_display(pn, pnl, name, sizeof(name));
	name_sanitize(id, idl, sid, sizeof(sid));
	if (name[0] && sid[0])
		snprintf(idp, sizeof(idp), "(%s)", sid);
	else
		snprintf(idp, sizeof(idp), "%s", sid);
	const char *parts[] = { name, idp };
	join(out, parts, 2);
	if (!out[0])
		snprintf(out, NAME_BUF, "Unknown patient");
}

void name_study(const char *date, size_t datel, const char *desc, size_t descl,
		const char *acc, size_t accl, const char *uid, size_t uidl,
		char out[NAME_BUF])
{
	char d[NAME_BUF], ds[NAME_BUF], a[NAME_BUF], ab[NAME_BUF + 2], ymd[8];
	if (name_da_digits(date, datel, ymd))
		snprintf(d, sizeof(d), "%.4s-%.2s-%.2s", ymd, ymd + 4, ymd + 6);
	else
		name_sanitize(date, datel, d, sizeof(d));
	name_sanitize(desc, descl, ds, sizeof(ds));
	name_sanitize(acc, accl, a, sizeof(a));
	ab[0] = 0;
	if (a[0])
		snprintf(ab, sizeof(ab), "(%s)", a);
	const char *parts[] = { d, ds, ab };
	join(out, parts, 3);
	if (!out[0]) {
		char u[NAME_BUF], tmp[NAME_BUF + 8];
		name_sanitize(uid, uidl, u, sizeof(u));
		snprintf(tmp, sizeof(tmp), "Study %s", u);
		name_sanitize(tmp, strlen(tmp), out, NAME_BUF);
	}
}

static void padded(const char *num, size_t numl, int width, char out[NAME_BUF])
{
	long long v;
	if (name_parse_int(num, numl, &v) && v >= 0)
		snprintf(out, NAME_BUF, "%0*lld", width, v);
	else
		name_sanitize(num, numl, out, NAME_BUF);
}

void name_series(const char *num, size_t numl, int width, const char *mod,
		 size_t modl, const char *desc, size_t descl, const char *uid,
		 size_t uidl, char out[NAME_BUF])
{
	char n[NAME_BUF], m[NAME_BUF], ds[NAME_BUF];
	padded(num, numl, width, n);
	name_sanitize(mod, modl, m, sizeof(m));
	name_sanitize(desc, descl, ds, sizeof(ds));
	const char *parts[] = { n, m, ds };
	join(out, parts, 3);
	if (!out[0]) {
		char u[NAME_BUF], tmp[NAME_BUF + 8];
		name_sanitize(uid, uidl, u, sizeof(u));
		snprintf(tmp, sizeof(tmp), "Series %s", u);
		name_sanitize(tmp, strlen(tmp), out, NAME_BUF);
	}
}

void name_instance(const char *num, size_t numl, int width, const char *uid,
		   size_t uidl, char out[NAME_BUF])
{
	padded(num, numl, width, out);
	if (!out[0])
		name_sanitize(uid, uidl, out, NAME_BUF);
	if (!out[0])
		snprintf(out, NAME_BUF, "instance");
}

void name_add_suffix(char name[NAME_BUF], const char *uid, size_t uidl)
{
	size_t l = strlen(name);
	if (l > NAME_BASE_MAX)
		l = NAME_BASE_MAX;
	while (l && ((unsigned char)name[l] & 0xC0) == 0x80)
		l--;
	snprintf(name + l, NAME_BUF - l, " ~%08x",
		 (unsigned)(name_fnv1a(uid, uidl) >> 32));
}
