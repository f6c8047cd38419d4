/*
 * strbuf.h - the one growable text buffer of dicomfs (after git's strbuf),
 * with the JSON string escaper, the CSV cell writer and FNV-1a that every
 * text producer (status.json, errors.tsv, DICOM JSON, level files, FHIR,
 * manifests, query link targets) shares.
 *
 * Invariants
 * (S1) buf is NULL (nothing added yet) or NUL-terminated at buf[len];
 *      len < alloc whenever buf != NULL.
 * (S2) Allocation failure is sticky: once an add fails, `failed` is set, the
 *      buffer keeps what it had, and every later add is a no-op returning
 *      -ENOMEM. So a producer may add freely and check once at the end
 *      (strbuf_error), as the level writers do.
 * (S3) Nothing in here knows JSON structure (commas, nesting): writers that
 *      need it keep their own state beside a strbuf.
 *
 * Errors: the add functions return 0 or -ENOMEM (see S2).
 * Threading: a strbuf belongs to one thread; none of these functions keep
 * global state.
 */
#ifndef DICOMFS_STRBUF_H
#define DICOMFS_STRBUF_H
#include <stddef.h>
#include <stdint.h>

struct strbuf {
	char *buf;
	size_t len;
	size_t alloc;
	int failed;
};
#define STRBUF_INIT { 0, 0, 0, 0 }

/* room for extra more bytes (plus the NUL) without another allocation */
int strbuf_grow(struct strbuf *sb, size_t extra);
int strbuf_add(struct strbuf *sb, const void *data, size_t len);
int strbuf_addstr(struct strbuf *sb, const char *s);
int strbuf_addch(struct strbuf *sb, char c);
int strbuf_addf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* 0, or -ENOMEM when any add on sb failed (S2) */
static inline int strbuf_error(const struct strbuf *sb) { return sb->failed ? -12 : 0; }
/* the text, never NULL ("" when empty) */
static inline const char *strbuf_str(const struct strbuf *sb) { return sb->buf ? sb->buf : ""; }
void strbuf_reset(struct strbuf *sb);           /* len 0, keeps the memory */
void strbuf_release(struct strbuf *sb);         /* frees; back to STRBUF_INIT */
/* hands over the malloc()ed text (NULL if empty); sb is reset to empty */
char *strbuf_detach(struct strbuf *sb, size_t *len);

/*
 * A JSON string literal (with the quotes) of s[0, len): " and \ escaped,
 * \n \r \t \b \f short, other controls as \u00XX, valid UTF-8 copied, every
 * byte of an invalid UTF-8 sequence as \ufffd. So the output is always
 * valid JSON and valid UTF-8, whatever the input.
 */
int strbuf_add_json_str(struct strbuf *sb, const char *s, size_t len);
/* Length of the valid UTF-8 sequence at s (1..4, at most len), or 0. */
size_t utf8_seq_len(const unsigned char *s, size_t len);

/*
 * One CSV cell (RFC 4180): quoted when it holds , " CR or LF, with "
 * doubled.
 */
int strbuf_add_csv(struct strbuf *sb, const char *s, size_t len);

/* One TSV line "a<TAB>b\n", tabs and newlines inside a or b made spaces. */
int strbuf_add_tsv2(struct strbuf *sb, const char *a, const char *b);

/* 64-bit FNV-1a: start with FNV1A_INIT, chain by passing the last value. */
#define FNV1A_INIT 0xcbf29ce484222325ULL
uint64_t fnv1a(uint64_t h, const void *p, size_t len);

#endif
