/*
 * unit_charset.c - unit test for index/dicom/charset.c.
 *
 * Expected strings were produced once with pydicom 2.3.1 (Debian
 * python3-pydicom) from the files in pydicom/data/charset_files:
 * charset.decode_bytes() on the raw element bytes, i.e. before pydicom
 * strips trailing spaces / empty PN groups (charset_to_utf8 keeps them).
 * Hand-made cases at the end cover the edge rules of charset.h.
 *
 * Build: gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -O2 -Iindex \
 *            tests/unit_charset.c index/dicom/charset.c -o /tmp/unit_charset
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "charset.h"

struct charset_case {
	const char *name;
	const char *cs;
	size_t cs_len;
	const char *in;
	size_t inlen;
	int is_pn;
	const char *want;	/* UTF-8 */
	int want_ret;
};

static const struct charset_case cases[] = {
	{ "chrArab PatientName",
	  "ISO_IR 127", sizeof("ISO_IR 127") - 1,
	  "\342\310\307\346\352^\344\346\322\307\321 ", sizeof("\342\310\307\346\352^\344\346\322\307\321 ") - 1, 1,
	  "\331\202\330\250\330\247\331\206\331\212^\331\204\331\206\330\262\330\247\330\261 ", 0 },
	{ "chrFren PatientName",
	  "ISO_IR 100", sizeof("ISO_IR 100") - 1,
	  "Buc^J\351r\364me", sizeof("Buc^J\351r\364me") - 1, 1,
	  "Buc^J\303\251r\303\264me", 0 },
	{ "chrFrenMulti OtherPatientNames",
	  "ISO_IR 100", sizeof("ISO_IR 100") - 1,
	  "Buc^J\351r\364me\134Buc^J\351r\364me ", sizeof("Buc^J\351r\364me\134Buc^J\351r\364me ") - 1, 1,
	  "Buc^J\303\251r\303\264me\134Buc^J\303\251r\303\264me ", 0 },
	{ "chrGerm PatientName",
	  "ISO_IR 100", sizeof("ISO_IR 100") - 1,
	  "\304neas^R\374diger ", sizeof("\304neas^R\374diger ") - 1, 1,
	  "\303\204neas^R\303\274diger ", 0 },
	{ "chrGreek PatientName",
	  "ISO_IR 126", sizeof("ISO_IR 126") - 1,
	  "\304\351\357\355\365\363\351\357\362 ", sizeof("\304\351\357\355\365\363\351\357\362 ") - 1, 1,
	  "\316\224\316\271\316\277\316\275\317\205\317\203\316\271\316\277\317\202 ", 0 },
	{ "chrH31 PatientName",
	  "\134ISO 2022 IR 87", sizeof("\134ISO 2022 IR 87") - 1,
	  "Yamada^Tarou=\033$B;3ED\033(B^\033$BB@O:\033(B=\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B", sizeof("Yamada^Tarou=\033$B;3ED\033(B^\033$BB@O:\033(B=\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B") - 1, 1,
	  "Yamada^Tarou=\345\261\261\347\224\260^\345\244\252\351\203\216=\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206", 0 },
	{ "chrH32 PatientName",
	  "ISO 2022 IR 13\134ISO 2022 IR 87", sizeof("ISO 2022 IR 13\134ISO 2022 IR 87") - 1,
	  "\324\317\300\336^\300\333\263=\033$B;3ED\033(J^\033$BB@O:\033(J=\033$B$d$^$@\033(J^\033$B$\077$m$&\033(J", sizeof("\324\317\300\336^\300\333\263=\033$B;3ED\033(J^\033$BB@O:\033(J=\033$B$d$^$@\033(J^\033$B$\077$m$&\033(J") - 1, 1,
	  "\357\276\224\357\276\217\357\276\200\357\276\236^\357\276\200\357\276\233\357\275\263=\345\261\261\347\224\260^\345\244\252\351\203\216=\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206", 0 },
	{ "chrHbrw PatientName",
	  "ISO_IR 138", sizeof("ISO_IR 138") - 1,
	  "\371\370\345\357^\343\341\345\370\344", sizeof("\371\370\345\357^\343\341\345\370\344") - 1, 1,
	  "\327\251\327\250\327\225\327\237^\327\223\327\221\327\225\327\250\327\224", 0 },
	{ "chrI2 PatientName",
	  "\134ISO 2022 IR 149", sizeof("\134ISO 2022 IR 149") - 1,
	  "Hong^Gildong=\033$)C\373\363^\033$)C\321\316\324\327=\033$)C\310\253^\033$)C\261\346\265\277", sizeof("Hong^Gildong=\033$)C\373\363^\033$)C\321\316\324\327=\033$)C\310\253^\033$)C\261\346\265\277") - 1, 1,
	  "Hong^Gildong=\346\264\252^\345\220\211\346\264\236=\355\231\215^\352\270\270\353\217\231", 0 },
	{ "chrJapMulti PatientName",
	  "\134ISO 2022 IR 87", sizeof("\134ISO 2022 IR 87") - 1,
	  "\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B ", sizeof("\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B ") - 1, 1,
	  "\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206 ", 0 },
	{ "chrJapMulti OtherPatientNames",
	  "\134ISO 2022 IR 87", sizeof("\134ISO 2022 IR 87") - 1,
	  "\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B\134\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B ", sizeof("\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B\134\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B ") - 1, 1,
	  "\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206\134\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206 ", 0 },
	{ "chrJapMulti AdditionalPatientHistory",
	  "\134ISO 2022 IR 87", sizeof("\134ISO 2022 IR 87") - 1,
	  "\033$B$\077$m$&\033(B", sizeof("\033$B$\077$m$&\033(B") - 1, 0,
	  "\343\201\237\343\202\215\343\201\206", 0 },
	{ "chrJapMultiExplicitIR6 PatientName",
	  "ISO 2022 IR 6\134ISO 2022 IR 87", sizeof("ISO 2022 IR 6\134ISO 2022 IR 87") - 1,
	  "\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B ", sizeof("\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B ") - 1, 1,
	  "\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206 ", 0 },
	{ "chrKoreanMulti PatientName",
	  "\134ISO 2022 IR 149", sizeof("\134ISO 2022 IR 149") - 1,
	  "\033$)C\261\350\310\361\301\337\033(B ", sizeof("\033$)C\261\350\310\361\301\337\033(B ") - 1, 1,
	  "\352\271\200\355\235\254\354\244\221 ", 0 },
	{ "chrKoreanMulti AdditionalPatientHistory",
	  "\134ISO 2022 IR 149", sizeof("\134ISO 2022 IR 149") - 1,
	  "\033$)C\261\350\310\361\301\337\033(B ", sizeof("\033$)C\261\350\310\361\301\337\033(B ") - 1, 0,
	  "\352\271\200\355\235\254\354\244\221 ", 0 },
	{ "chrRuss PatientName",
	  "ISO_IR 144", sizeof("ISO_IR 144") - 1,
	  "\273\356\332ce\334\321yp\323", sizeof("\273\356\332ce\334\321yp\323") - 1, 1,
	  "\320\233\321\216\320\272ce\320\274\320\261yp\320\263", 0 },
	{ "chrSQEncoding item PatientName",
	  "ISO 2022 IR 13\134ISO 2022 IR 87 ", sizeof("ISO 2022 IR 13\134ISO 2022 IR 87 ") - 1,
	  "\324\317\300\336^\300\333\263=\033$B;3ED\033(B^\033$BB@O:\033(B=\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B", sizeof("\324\317\300\336^\300\333\263=\033$B;3ED\033(B^\033$BB@O:\033(B=\033$B$d$^$@\033(B^\033$B$\077$m$&\033(B") - 1, 1,
	  "\357\276\224\357\276\217\357\276\200\357\276\236^\357\276\200\357\276\233\357\275\263=\345\261\261\347\224\260^\345\244\252\351\203\216=\343\202\204\343\201\276\343\201\240^\343\201\237\343\202\215\343\201\206", 0 },
	{ "chrX1 PatientName",
	  "ISO_IR 192", sizeof("ISO_IR 192") - 1,
	  "Wang^XiaoDong=\347\216\213^\345\260\217\346\235\261= ", sizeof("Wang^XiaoDong=\347\216\213^\345\260\217\346\235\261= ") - 1, 1,
	  "Wang^XiaoDong=\347\216\213^\345\260\217\346\235\261= ", 0 },
	{ "chrX2 PatientName",
	  "GB18030", sizeof("GB18030") - 1,
	  "Wang^XiaoDong=\315\365^\320\241\266\253=", sizeof("Wang^XiaoDong=\315\365^\320\241\266\253=") - 1, 1,
	  "Wang^XiaoDong=\347\216\213^\345\260\217\344\270\234=", 0 },
	{ "empty charset ASCII",
	  "", sizeof("") - 1,
	  "Smith^John", sizeof("Smith^John") - 1, 1,
	  "Smith^John", 0 },
	{ "empty charset 0xE9",
	  "", sizeof("") - 1,
	  "Ren\351", sizeof("Ren\351") - 1, 1,
	  "Ren\303\251", 0 },
	{ "ISO_IR 192 invalid",
	  "ISO_IR 192", sizeof("ISO_IR 192") - 1,
	  "A\377B", sizeof("A\377B") - 1, 0,
	  "A\357\277\275B", 1 },
	{ "ISO_IR 192 truncated/surrogate/out of range",
	  "ISO_IR 192", sizeof("ISO_IR 192") - 1,
	  "\344\270A\355\240\200\365\225Z\360\237\230\200", sizeof("\344\270A\355\240\200\365\225Z\360\237\230\200") - 1, 0,
	  "\357\277\275A\357\277\275\357\277\275\357\277\275\357\277\275\357\277\275Z\360\237\230\200", 1 },
	{ "unknown term",
	  "ISO_IR 999", sizeof("ISO_IR 999") - 1,
	  "Caf\351", sizeof("Caf\351") - 1, 0,
	  "Caf\303\251", 1 },
	{ "interior NUL, trailing spaces",
	  "ISO_IR 100", sizeof("ISO_IR 100") - 1,
	  "AB\000CD  ", sizeof("AB\000CD  ") - 1, 0,
	  "AB\357\277\275CD  ", 1 },
	{ "trailing NUL padding",
	  "", sizeof("") - 1,
	  "1.2.840.10008\000", sizeof("1.2.840.10008\000") - 1, 0,
	  "1.2.840.10008", 0 },
	{ "GBK",
	  "GBK", sizeof("GBK") - 1,
	  "\315\365^\320\241\266\253", sizeof("\315\365^\320\241\266\253") - 1, 1,
	  "\347\216\213^\345\260\217\344\270\234", 0 },
	{ "ISO_IR 13 katakana",
	  "ISO_IR 13", sizeof("ISO_IR 13") - 1,
	  "\324\317\300\336", sizeof("\324\317\300\336") - 1, 1,
	  "\357\276\224\357\276\217\357\276\200\357\276\236", 0 },
	{ "ISO-IR 100 misspelled",
	  "ISO-IR 100", sizeof("ISO-IR 100") - 1,
	  "J\351r\364me", sizeof("J\351r\364me") - 1, 1,
	  "J\303\251r\303\264me", 0 },
	{ "Latin1+Greek code extension, backslash reset",
	  "ISO 2022 IR 100\134ISO 2022 IR 126", sizeof("ISO 2022 IR 100\134ISO 2022 IR 126") - 1,
	  "Caf\351 \033-F\304\351\134\304", sizeof("Caf\351 \033-F\304\351\134\304") - 1, 0,
	  "Caf\303\251 \316\224\316\271\134\303\204", 0 },
	{ "PN = resets G1 (Korean)",
	  "\134ISO 2022 IR 149", sizeof("\134ISO 2022 IR 149") - 1,
	  "\033$)C\261\350=\261\350", sizeof("\033$)C\261\350=\261\350") - 1, 1,
	  "\352\271\200=\302\261\303\250", 0 },
	{ "CR LF resets G1 (Korean LT)",
	  "\134ISO 2022 IR 149", sizeof("\134ISO 2022 IR 149") - 1,
	  "\033$)C\261\350\015\012\261\350", sizeof("\033$)C\261\350\015\012\261\350") - 1, 0,
	  "\352\271\200\015\012\302\261\303\250", 0 },
	{ "JIS X 0212",
	  "\134ISO 2022 IR 159", sizeof("\134ISO 2022 IR 159") - 1,
	  "\033$(D0!\033(B", sizeof("\033$(D0!\033(B") - 1, 0,
	  "\344\270\202", 0 },
	{ "unknown escape",
	  "ISO 2022 IR 6", sizeof("ISO 2022 IR 6") - 1,
	  "a\033%Gb", sizeof("a\033%Gb") - 1, 0,
	  "a\357\277\275%Gb", 1 },
	{ "undeclared escape",
	  "ISO 2022 IR 100", sizeof("ISO 2022 IR 100") - 1,
	  "\033-F\304", sizeof("\033-F\304") - 1, 0,
	  "\316\224", 1 },
	{ "GB18030 4-byte",
	  "GB18030", sizeof("GB18030") - 1,
	  "\242\343\2252\2026", sizeof("\242\343\2252\2026") - 1, 0,
	  "\342\202\254\360\240\200\200", 0 },
	{ "ISO_IR 166 Thai",
	  "ISO_IR 166", sizeof("ISO_IR 166") - 1,
	  "\241\242", sizeof("\241\242") - 1, 0,
	  "\340\270\201\340\270\202", 0 },
	{ "multi-valued cs with padding",
	  "ISO 2022 IR 13\134ISO 2022 IR 87 ", sizeof("ISO 2022 IR 13\134ISO 2022 IR 87 ") - 1,
	  "\261\033$B;3\033(J", sizeof("\261\033$B;3\033(J") - 1, 0,
	  "\357\275\261\345\261\261", 0 },
};

/* Print s on one line, control characters as \xHH. */
static void print_escaped(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20)
			printf("\\x%02x", (unsigned char)*s);
		else
			putchar(*s);
	}
}

/* Strict UTF-8 check (no overlongs, surrogates or NUL). */
static int valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0, k, len;
	unsigned long cp;

	while (i < n) {
		if (!s[i])
			return 0;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			len = 2, cp = s[i] & 0x1f;
		else if (s[i] >= 0xe0 && s[i] <= 0xef)
			len = 3, cp = s[i] & 0x0f;
		else if (s[i] >= 0xf0 && s[i] <= 0xf4)
			len = 4, cp = s[i] & 0x07;
		else
			return 0;
		if (i + len > n)
			return 0;
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

/* Random bytes in every repertoire must give valid UTF-8 without NUL. */
static int check_random(void)
{
	static const char *const css[] = {
		"", "ISO_IR 100", "ISO_IR 192", "GB18030", "GBK", "ISO_IR 13",
		"ISO_IR 166", "\\ISO 2022 IR 87\\ISO 2022 IR 159",
		"ISO 2022 IR 13\\ISO 2022 IR 87", "\\ISO 2022 IR 149",
		"ISO 2022 IR 100\\ISO 2022 IR 126\\ISO 2022 IR 58",
	};
	static const char esc[] = "\x1b$B\x1b$(D\x1b(B\x1b)I\x1b$)C\x1b-F^=\\";
	unsigned int seed = 12345;
	char in[64], *out;
	size_t outlen, i, k, len;
	int ret, ok = 1;

	for (i = 0; i < 20000 && ok; i++) {
		const char *cs = css[i % (sizeof(css) / sizeof(css[0]))];

		len = (seed = seed * 1103515245 + 12345) >> 16 & 63;
		for (k = 0; k < len; k++) {
			seed = seed * 1103515245 + 12345;
			in[k] = (seed >> 16) % 4 ? (char)(seed >> 20) :
				esc[(seed >> 20) % (sizeof(esc) - 1)];
		}
		out = NULL;
		ret = charset_to_utf8(cs, strlen(cs), in, len, (int)(i & 1),
				      &out, &outlen);
		ok = (ret == 0 || ret == DFS_WARN_CHARSET) && out &&
		     strlen(out) == outlen && valid_utf8((unsigned char *)out,
							 outlen);
		free(out);
	}
	printf("%s: 20000 random values give valid UTF-8 without NUL\n",
	       ok ? "PASS" : "FAIL");
	return ok;
}

static int check_case(const struct charset_case *t)
{
	char *out = NULL;
	size_t outlen = 0;
	int ret, ok;

	ret = charset_to_utf8(t->cs, t->cs_len, t->in, t->inlen, t->is_pn,
			      &out, &outlen);
	ok = ret == t->want_ret && out && outlen == strlen(t->want) &&
	     !memcmp(out, t->want, outlen) && out[outlen] == '\0';
	printf("%s: %s (ret %d, want %d) \"", ok ? "PASS" : "FAIL",
	       t->name, ret, t->want_ret);
	print_escaped(out ? out : "(null)");
	if (!ok) {
		printf("\" want \"");
		print_escaped(t->want);
	}
	printf("\"\n");
	free(out);
	return ok;
}

int main(void)
{
	size_t i, n = sizeof(cases) / sizeof(cases[0]);
	int passed = 0, failed = 0;

	for (i = 0; i < n; i++) {
		if (check_case(&cases[i]))
			passed++;
		else
			failed++;
	}
	if (check_random())
		passed++;
	else
		failed++;
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
