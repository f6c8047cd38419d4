/*
 * report.c - see report.h: status.json and errors.tsv.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "report.h"
#include "store.h"
#include "error.h"
#include "record.h"
#include "volreport.h"

void index_report_error(struct index *ix, const char *relpath, const char *why)
{
	dfs_log("%s: %s", relpath, why);
	pthread_mutex_lock(&ix->err_lock);
	/* report each path once (R3) */
	size_t pl = strlen(relpath);
	int seen = 0;
	for (const char *p = ix->run_errors.buf; p && *p;) {
		const char *nl = strchr(p, '\n');
		if ((size_t)(nl - p) > pl && memcmp(p, relpath, pl) == 0 && p[pl] == '\t') {
			seen = 1;
			break;
		}
		p = nl + 1;
	}
	if (!seen)
		strbuf_add_tsv2(&ix->run_errors, relpath, why);
	pthread_mutex_unlock(&ix->err_lock);
}

void index_count_decode(struct index *ix)
{
	__atomic_add_fetch(&ix->pixel_decodes, 1, __ATOMIC_RELAXED);
}

/* The counters of status.json, in order, between "private_index" and
 * "runtime_errors". */
static const struct {
	const char *name;
	size_t off;
} counts[] = {
#define COUNT(f) { #f, offsetof(struct index_stats, f) }
	COUNT(files_seen), COUNT(files_parsed), COUNT(files_removed),
	COUNT(instances), COUNT(patients), COUNT(studies), COUNT(series),
	COUNT(skipped), COUNT(errors), COUNT(duplicates), COUNT(tree_parts),
#undef COUNT
};

/* The timings, after "built_at". */
static const struct {
	const char *name;
	size_t off;
	int decimals;
} timings[] = {
	{ "build_seconds", offsetof(struct index_stats, scan_seconds), 3 },
	{ "walk_seconds", offsetof(struct index_stats, walk_seconds), 3 },
	{ "parse_seconds", offsetof(struct index_stats, parse_seconds), 3 },
	{ "tree_seconds", offsetof(struct index_stats, tree_seconds), 3 },
	{ "tree_cpu_seconds", offsetof(struct index_stats, tree_cpu_seconds), 3 },
	{ "commit_seconds", offsetof(struct index_stats, commit_seconds), 3 },
	{ "files_per_second", offsetof(struct index_stats, files_per_second), 0 },
};

static const char *json_bool(int v) { return v ? "true" : "false"; }

/* The text of t to the caller, or -ENOMEM when an add failed (S2). */
static int hand_over(struct strbuf *t, char **buf, size_t *len)
{
	int rc = strbuf_error(t);
	if (rc) {
		strbuf_release(t);
		return rc;
	}
	*buf = strbuf_detach(t, len);
	return 0;
}

int index_status_json(struct index *ix, char **buf, size_t *len)
{
	struct strbuf t = STRBUF_INIT;
	const struct index_stats *s = &ix->stats;
	const char *sp = (const char *)s;
	uint64_t run = 0;
	pthread_mutex_lock(&ix->err_lock);
	for (const char *p = ix->run_errors.buf; p && *p; p++)
		run += *p == '\n';
	pthread_mutex_unlock(&ix->err_lock);
	strbuf_addf(&t, "{\n  \"version\": \"%s\",\n", PACKAGE_VERSION);
	/* (no space after this colon: the text has always been so) */
	strbuf_addstr(&t, "  \"archive\":");
	strbuf_add_json_str(&t, ix->archive_real, strlen(ix->archive_real));
	strbuf_addstr(&t, ",\n  \"index_path\": ");
	strbuf_add_json_str(&t, ix->path, strlen(ix->path));
	strbuf_addf(&t, ",\n  \"index_format\": \"%s\",\n  \"private_index\": %s,\n",
		    INDEX_FORMAT, json_bool(s->private_index));
	if (ix->src.ops && ix->src.ops->status)   /* a server's state */
		ix->src.ops->status(ix->src.inst, &t);
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		uint64_t v;
		memcpy(&v, sp + counts[i].off, sizeof(v));
		strbuf_addf(&t, "  \"%s\": %llu,\n", counts[i].name, (unsigned long long)v);
	}
	strbuf_addf(&t, "  \"runtime_errors\": %llu,\n  \"tree_rebuilt\": %s,\n"
		    "  \"built_at\": %lld,\n", (unsigned long long)run,
		    json_bool(s->tree_rebuilt), (long long)ix->built_at);
	for (size_t i = 0; i < sizeof(timings) / sizeof(timings[0]); i++) {
		double v;
		memcpy(&v, sp + timings[i].off, sizeof(v));
		strbuf_addf(&t, "  \"%s\": %.*f,\n", timings[i].name, timings[i].decimals, v);
	}
	strbuf_addf(&t, "  \"pixel_decodes\": %llu,\n",
		    (unsigned long long)__atomic_load_n(&ix->pixel_decodes, __ATOMIC_RELAXED));
	/* the tags the index holds (query/ can match them), and whether this
	 * mount re-parsed everything because the set grew */
	strbuf_addstr(&t, "  \"indexed_tags\": [");
	for (size_t i = 0; i < ix->ntags; i++)
		strbuf_addf(&t, "%s\"%08X\"", i ? ", " : "", ix->tags[i]);
	strbuf_addf(&t, "],\n  \"tags_reindexed\": %s,\n  \"tags_note\": ",
		    json_bool(s->tags_reindexed));
	if (ix->tags_note)
		strbuf_add_json_str(&t, ix->tags_note, strlen(ix->tags_note));
	else
		strbuf_addstr(&t, "null");
	strbuf_addstr(&t, "\n}\n");
	return hand_over(&t, buf, len);
}

/* The files whose record is not OK, in "files" order (R2). */
static int bad_records(struct index *ix, MDB_txn *txn, struct strbuf *t)
{
	MDB_cursor *c;
	MDB_val k, d;
	int rc = mdb_cursor_open(txn, ix->files, &c);
	if (rc)
		return dfs_from_mdb(rc);
	for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
		struct rec_head h;
		char path[PATH_MAX];
		if (rec_head_get(d.mv_data, d.mv_size, &h) || h.status == REC_OK)
			continue;
		snprintf(path, sizeof(path), "%.*s", (int)k.mv_size, (char *)k.mv_data);
		char why[300];
		if (h.status == REC_SKIPPED && h.err == 0)
			snprintf(why, sizeof(why), "DICOMDIR (media directory; its files are indexed directly)");
		else
			snprintf(why, sizeof(why), "%s%s",
				 h.status == REC_SKIPPED ? "skipped: " : "error: ",
				 dfs_strerror(h.err));
		strbuf_add_tsv2(t, path, why);
	}
	mdb_cursor_close(c);
	return 0;
}

int index_errors_tsv(struct index *ix, char **buf, size_t *len)
{
	struct strbuf t = STRBUF_INIT;
	MDB_val d;
	MDB_txn *txn = store_rtxn(ix);
	if (!txn)
		return -EIO;
	strbuf_addstr(&t, "path\treason\n");
	strbuf_add(&t, ix->walk_errors.buf, ix->walk_errors.len);
	int rc = bad_records(ix, txn, &t);
	if (rc) {
		strbuf_release(&t);
		return rc;
	}
	MDB_val dk = { 4, "dups" };
	if (mdb_get(txn, ix->meta, &dk, &d) == 0)
		strbuf_add(&t, d.mv_data, d.mv_size);
	volreport_errors(ix, txn, &t);
	MDB_val ak = { 13, "anon_excluded" };
	if (mdb_get(txn, ix->meta, &ak, &d) == 0)
		strbuf_add(&t, d.mv_data, d.mv_size);
	pthread_mutex_lock(&ix->err_lock);
	strbuf_add(&t, ix->run_errors.buf, ix->run_errors.len);
	pthread_mutex_unlock(&ix->err_lock);
	return hand_over(&t, buf, len);
}

/* ---- progress (R4, R5) ---- */

double index_progress_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

void index_progress_line(struct index *ix, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (ix->opts.progress == 1)
		fprintf(stderr, "\rdicomfs: indexing: %s\033[K\n", line);
	else if (ix->opts.progress)
		fprintf(stderr, "dicomfs: indexing: %s\n", line);
	dfs_log_file_only("indexing: %s", line);
}

void index_progress_count(struct index *ix, const char *what, size_t done,
			  size_t total, double start, int final)
{
	if (!ix->opts.progress && !dfs_log_has_file())
		return;
	double now = index_progress_now(), dt = now - start;
	double every = ix->opts.progress == 1 ? 0.5 : 5.0;
	if (done && !ix->progress_t1) {
		/* R5: the first item includes the parsers' start (GDCM loads
		 * in about a second): the running rate starts after it */
		ix->progress_t1 = now;
		ix->progress_d1 = done;
	}
	double dt1 = now - ix->progress_t1;
	if (!final && (!ix->progress_t1 || dt1 < 1.0 || done <= ix->progress_d1 ||
		       now - ix->progress_last < every))
		return;
	ix->progress_last = now;
	char line[256], eta[64] = "";
	double rate = final ? (dt > 0 ? done / dt : 0) : (done - ix->progress_d1) / dt1;
	if (!final && rate > 0 && total > done)
		snprintf(eta, sizeof(eta), ", about %.0f s left", (total - done) / rate);
	if (final)
		snprintf(line, sizeof(line), "%s: %zu/%zu files in %.2f s (%.0f files/s)", what,
			 done, total, dt, rate);
	else
		snprintf(line, sizeof(line), "%s: %zu/%zu files, %.0f files/s%s", what, done,
			 total, rate, eta);
	if (ix->opts.progress == 1)
		fprintf(stderr, "\rdicomfs: indexing: %s\033[K%s", line, final ? "\n" : "");
	else if (ix->opts.progress == 2)
		fprintf(stderr, "dicomfs: indexing: %s\n", line);
	dfs_log_file_only("indexing: %s", line);
}
