/*
 * manifest.h - manifest.csv and manifest.jsonl of a query/ directory: one
 * row per match (in listing order) with its path below the mount root, its
 * link name, the UIDs down to its level, every indexed attribute of its
 * level and the levels above (a series' or study's value: the first
 * non-empty one among its instances, catalog.h), then for studies
 * ModalitiesInStudy (catalog.h C4) and the related-series / -instances
 * counts, for series the related-instances count.
 *
 * (M1) The CSV is RFC 4180 with CRLF line ends and a header line; each
 *      JSONL line is one object with the same keys in the same order,
 *      null for an empty value, the counts as numbers. Both come from the
 *      same cells, so they always agree.
 * (M2) Streamed: a manifest is never held whole. manifest_new makes one
 *      pass over the rows that counts the bytes of both files (their exact
 *      sizes) and keeps, every MANIFEST_STRIDE rows, the offsets where that
 *      row starts in each (16 bytes per stride). A read generates the rows
 *      from the checkpoint at or before its offset, in a small buffer.
 * (M3) Deterministic: the bytes of a row depend only on the catalog, the
 *      level and the rows given (all immutable while the manifest lives),
 *      so every read, by any reader at any offset, cuts the one content
 *      whose size manifest_size gives. The caller keeps the catalog and
 *      the rows alive while the manifest lives.
 * (M4) Memory of a manifest: the checkpoints, plus MANIFEST_SLOTS cached
 *      generated spans per file of at most MANIFEST_SPAN_MAX bytes each (a
 *      span that would be larger is generated for its read and not kept):
 *      manifest_bytes tells the bound, for the owner's cache budget. The
 *      bytes of a read are generated in mmap()ed buffers, of which the
 *      process keeps two of at most 2 MiB for the next reads (none in
 *      malloc's per-thread heaps, which would keep them).
 *
 * Errors: 0 or -ENOMEM. Threading: manifest_new on one thread; then
 * manifest_read from any thread (the span cache has its own lock); the
 * catalog's rules (catalog.h).
 */
#ifndef DICOMFS_MANIFEST_H
#define DICOMFS_MANIFEST_H
#include <stddef.h>
#include <stdint.h>

struct catalog;
struct strbuf;

#define MANIFEST_STRIDE 16
#define MANIFEST_SLOTS 2
#define MANIFEST_SPAN_MAX ((size_t)192 << 10)

enum { MANIFEST_CSV = 0, MANIFEST_JSONL = 1 };

/* The matches of a query: idx[i] at the level, named npool + noff[i]. */
struct manifest_rows {
	const uint32_t *idx;
	const char *npool;
	const uint32_t *noff;
	size_t n;
};

struct manifest;

/* The manifests of rows at level (CAT_*) of c: sized, not generated (M2). */
int manifest_new(struct catalog *c, int level, const struct manifest_rows *rows,
		 struct manifest **out);
void manifest_free(struct manifest *m);
/* The exact size of file fmt (MANIFEST_CSV / MANIFEST_JSONL). */
uint64_t manifest_size(const struct manifest *m, int fmt);
/* The most memory m may hold (M4). */
size_t manifest_bytes(const struct manifest *m);
/* Hands the bytes of a read to the caller (p NULL when n is 0); its
 * return value is manifest_read's. */
typedef int (*manifest_reply_fn)(void *ctx, const char *p, size_t n);
/*
 * Up to size bytes of file fmt at off, given to reply (once, unless an
 * error comes first; 0 bytes at or after the end). reply's result, or
 * -ENOMEM (or -EIO: the content came out other than sized, which M3 rules
 * out) without calling it.
 */
int manifest_read(struct manifest *m, int fmt, uint64_t off, size_t size,
		  manifest_reply_fn reply, void *ctx);

#endif
