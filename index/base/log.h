/*
 * log.h - one log line per event, "dicomfs: ..." in lower case, naming the
 * file concerned. To stderr while in the foreground, to syslog once the
 * process has daemonized. Thread-safe (one write per line).
 */
#ifndef DICOMFS_LOG_H
#define DICOMFS_LOG_H
void dfs_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void dfs_log_use_syslog(int on);
#endif
