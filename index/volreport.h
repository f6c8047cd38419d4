/*
 * volreport.h - the index side of volumes: at tree-build time decide which
 * series directories list volume.nii / volume.npy, and keep the reasons
 * of the others (meta DB key "novolume") for .dicomfs/errors.tsv.
 * Used by tree.c (volreport_series, volreport_store, in the tree build's
 * write transaction) and report.c (volreport_errors, read side).
 */
#ifndef DICOMFS_VOLREPORT_H
#define DICOMFS_VOLREPORT_H
#include <lmdb.h>
#include "store.h"
#include "strbuf.h"
#include "volume.h"

/*
 * Series series_id with instances in[0, n): returns 1 when it is a volume
 * (and a volume kind is served), 0 when not (its reason appended to
 * report as "<id hex>\t<reason>\n"), or a negative error.
 */
int volreport_series(struct index *ix, struct strbuf *report, uint64_t series_id,
		     const struct vol_in *in, size_t n);
/*
 * The two halves of volreport_series, for a caller that decides before it
 * knows the series' id (tree.c's helper thread): volreport_check answers
 * 1, 0 (the reason in why; "" when no volume kind is served: nothing to
 * report) or a negative error, reading nothing but in and ix->opts
 * (thread-safe: many may run at once); volreport_add appends the reason
 * line of series_id to report, none for "" (0 or -ENOMEM).
 */
int volreport_check(const struct index *ix, const struct vol_in *in, size_t n, char *why,
		    size_t whylen);
int volreport_add(struct strbuf *report, uint64_t series_id, const char *why);
/* Store the report in the meta DB (tree build transaction). */
int volreport_store(struct index *ix, MDB_txn *txn, const struct strbuf *report);
/* Append "patients/<series path>\tno volume: <reason>" lines to out. */
void volreport_errors(struct index *ix, MDB_txn *txn, struct strbuf *out);

#endif
