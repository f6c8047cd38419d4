/*
 * jsonw.h - a JSON structure writer on top of a strbuf: the commas and the
 * nesting of objects and arrays, so a producer only says what comes next
 * (open, key, value, close). Strings go through strbuf_add_json_str, so the
 * output is valid JSON and valid UTF-8 whatever the input bytes.
 *
 * Output is compact (no white space), in the order the calls come: the
 * level files and FHIR resources are written with it and must be
 * byte-identical on every run.
 *
 * Design notes
 * (W1) One flag is the whole state: `comma` says a value has been written
 *      at the current depth, so the next value (or key) needs a ','. An
 *      open clears it (first member of the new object/array), a close sets
 *      it (the container is a value of its parent), a key clears it (its
 *      value follows the ':'). No stack is needed because a close is always
 *      followed, at the parent depth, by a value position that already had
 *      a value (the container itself).
 * (W2) The writer does not check the grammar (key outside an object, close
 *      without open): callers are fixed code paths, covered by tests.
 * (W3) Errors are the strbuf's (S2 in strbuf.h): sticky -ENOMEM; write
 *      freely, check jsonw_error() once at the end.
 *
 * Threading: a jsonw and its strbuf belong to one thread.
 */
#ifndef DICOMFS_JSONW_H
#define DICOMFS_JSONW_H
#include <stddef.h>
#include <stdint.h>
#include "strbuf.h"

struct jsonw {
	struct strbuf *sb;   /* the output; appended to, never reset */
	int comma;           /* (W1) */
};

/* Start writing at the end of sb (a fresh value: no comma first). */
void jsonw_init(struct jsonw *w, struct strbuf *sb);

void jsonw_open_obj(struct jsonw *w);    /* '{' */
void jsonw_close_obj(struct jsonw *w);   /* '}' */
void jsonw_open_arr(struct jsonw *w);    /* '[' */
void jsonw_close_arr(struct jsonw *w);   /* ']' */
/* "k": (the next call writes its value) */
void jsonw_key(struct jsonw *w, const char *k);
/* a string value: s[0, l) escaped (strbuf_add_json_str) */
void jsonw_str(struct jsonw *w, const char *s, size_t l);
void jsonw_cstr(struct jsonw *w, const char *s);
/* a value written verbatim: must already be JSON ("null", "12") */
void jsonw_raw(struct jsonw *w, const char *s);
void jsonw_u64(struct jsonw *w, uint64_t v);
/*
 * An IS/DS component: trimmed of spaces and tabs (and trailing NULs);
 * empty -> null; already a JSON number -> verbatim; a number strtod reads
 * whole (e.g. "+07", ".5") -> the shortest %g that reads back the same;
 * anything else -> a JSON string.
 */
void jsonw_decimal(struct jsonw *w, const char *s, size_t l);

/* "k":"s" */
void jsonw_kstr(struct jsonw *w, const char *k, const char *s, size_t l);
void jsonw_kcstr(struct jsonw *w, const char *k, const char *s);

/* 0, or -ENOMEM when any write failed (W3) */
static inline int jsonw_error(const struct jsonw *w) { return strbuf_error(w->sb); }

#endif
