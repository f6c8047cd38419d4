/*
 * log.h - one log line per event, "dicomfs: ..." in lower case, naming the
 * file concerned. Thread-safe (one write per line).
 *
 * Where lines go (README "Where messages go", dicomfs.1 FILES):
 * - a log file (dfs_log_to_file, -o log=FILE): every line, with a UTC time
 *   stamp; the file is opened (O_APPEND) for each line and closed again,
 *   so a rotated or removed file is simply made anew (no SIGUSR1 needed);
 * - stderr while the process has a terminal or caller to talk to (before
 *   daemonizing, or always with -f / -d);
 * - syslog (LOG_DAEMON, "dicomfs") once daemonized, only without a log file.
 *
 * (L1) Text a user chose (a query directory name, ...) goes into a line
 *      only through dfs_log_escape: no control character, no invalid
 *      UTF-8 reaches the log, so a name cannot forge lines or terminal
 *      escapes.
 * (L2) Lines a user can cause at will (one per failed lookup) go through
 *      a struct dfs_log_limit owned by the mount: at most per_sec such
 *      lines per second; the rest are counted (dropped) and the next line
 *      let through says how many were dropped.
 */
#ifndef DICOMFS_LOG_H
#define DICOMFS_LOG_H
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

void dfs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dfs_log_use_syslog(int on);
/* Also append every line to path (made 0600 when missing). 0, or a
 * negative errno when it cannot be opened for appending now (the caller
 * reports it; nothing is changed then). path is copied (absolute paths
 * only: the daemon changes directory to /). NULL: no file. */
int dfs_log_to_file(const char *path);
/* 1 when a log file is set */
int dfs_log_has_file(void);
/* A line for the log file only (progress lines, which the terminal gets
 * its own way); nothing without a file. */
void dfs_log_file_only(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * L1: s[0,l) into out (always NUL-terminated, outlen >= 1): printable
 * ASCII and well-formed UTF-8 (but not U+0080..U+009F) as they are, '\'
 * as "\\", every other byte as "\xNN". Cut (ending "...") when out is too
 * small. Returns out.
 */
char *dfs_log_escape(const char *s, size_t l, char *out, size_t outlen);

/* L2. Threading: its own lock. */
struct dfs_log_limit {
	pthread_mutex_t lock;
	unsigned per_sec;     /* lines allowed per second */
	int64_t sec;          /* lock: the current second (CLOCK_MONOTONIC) */
	unsigned n;           /* lock: lines let through in sec */
	uint64_t dropped;     /* lock: lines dropped since the last report */
	uint64_t dropped_total; /* lock: all lines dropped */
};
void dfs_log_limit_init(struct dfs_log_limit *l, unsigned per_sec);
void dfs_log_limit_destroy(struct dfs_log_limit *l);
/* dfs_log under the limit: 1 when logged, 0 when dropped (counted). */
int dfs_log_limited(struct dfs_log_limit *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
uint64_t dfs_log_dropped(struct dfs_log_limit *l);   /* dropped_total */
#endif
