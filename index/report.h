/*
 * report.h - the texts of .dicomfs/: status.json (what the index holds and
 * how the last update went) and errors.tsv (every source file that is not
 * served, and why), plus the problems found while mounted. Built on strbuf;
 * report.c reads the store (store.h) and volreport.h, and nothing in the
 * index calls it: fs/ does (through index.h, which includes this header).
 *
 * Design notes
 * (R1) The texts are computed on each call from the index and from the
 *      texts gathered in struct index (the update's walk problems, the
 *      mount's runtime problems); nothing is cached here.
 * (R2) errors.tsv lists, in this order: the walk problems of this update,
 *      the files whose record is not OK ("files" DB order), the duplicates
 *      (meta "dups"), the series without a volume (volreport.h), the
 *      runtime problems in order of arrival; each line "path<TAB>reason",
 *      tabs and newlines inside made spaces (strbuf_add_tsv2).
 * (R3) A runtime problem is listed once per path (the first reason wins),
 *      and logged each time.
 *
 * Errors: 0 or negative errno / DFS_* (error.h).
 * Threading: any thread while mounted; runtime problems and the decode
 * counter are guarded by struct index's err_lock / atomics.
 */
#ifndef DICOMFS_REPORT_H
#define DICOMFS_REPORT_H
#include <stddef.h>

struct index;

/* Runtime problems with a source file, shown in errors.tsv and logged. */
void index_report_error(struct index *ix, const char *relpath, const char *why);
/* A pixel decode started (fs/, for the "pixel_decodes" debug counter). */
void index_count_decode(struct index *ix);
/* malloc()ed texts of .dicomfs/status.json and .dicomfs/errors.tsv */
int index_status_json(struct index *ix, char **buf, size_t *len);
int index_errors_tsv(struct index *ix, char **buf, size_t *len);

/*
 * Progress of the mount's update, phase by phase (walk, parse, tree,
 * commit), called by the update (scan.c), never for a live batch.
 * (R4) Where: stderr as index_opts.progress says (1: one line rewritten
 *      in place with '\r' on a terminal, 2: plain lines) and every line
 *      to the log file (log.h) when there is one, even with progress 0
 *      (-o quiet). A periodic line comes at most every 0.5 s on a
 *      terminal, every 5 s otherwise (and in the log file).
 * (R5) Rates are counted from the start of their phase, and a periodic
 *      line comes only once its phase has run 1 s: the first figure a
 *      user sees is a rate over a second or more, never "1 files/s".
 * index_progress_line: one finished phase (or a note), printf-style
 * text after "dicomfs: ". index_progress_count: `done` of `total` items
 * of phase `what` started at `start` (CLOCK_MONOTONIC seconds); final
 * prints the closing line whatever the time.
 */
void index_progress_line(struct index *ix, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void index_progress_count(struct index *ix, const char *what, size_t done,
			  size_t total, double start, int final);
double index_progress_now(void);

#endif
