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
 *
 * Errors: 0 or -ENOMEM. Threading: the catalog's rules (catalog.h).
 */
#ifndef DICOMFS_MANIFEST_H
#define DICOMFS_MANIFEST_H
#include <stddef.h>
#include <stdint.h>

struct catalog;
struct strbuf;

/* The manifests of matches idx[0, n) of level (CAT_*) named names[i],
 * added to csv and jsonl. */
int manifest_write(struct catalog *c, int level, const uint32_t *idx,
		   char *const *names, size_t n, struct strbuf *csv,
		   struct strbuf *jsonl);

#endif
