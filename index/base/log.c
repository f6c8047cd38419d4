#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include "log.h"

/* Process-wide by nature (one stderr, one syslog connection): set on the
 * main thread before any other thread starts, read-only afterwards. */
static int use_syslog;
static char *log_file;

int dfs_log_to_file(const char *path)
{
	if (!path) {
		free(log_file);
		log_file = NULL;
		return 0;
	}
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	free(log_file);
	log_file = p;
	return 0;
}

int dfs_log_has_file(void)
{
	return log_file != NULL;
}

/* text (without "dicomfs: " and newline) to the log file, time-stamped */
static void file_line(const char *text)
{
	char line[2200];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ", &tm);
	int m = snprintf(line + n, sizeof(line) - n, " dicomfs[%ld]: %s\n", (long)getpid(), text);
	if (m < 0)
		return;
	n += (size_t)m < sizeof(line) - n ? (size_t)m : sizeof(line) - n - 1;
	if (n && line[n - 1] != '\n')
		line[n - 1] = '\n';
	int fd = open(log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return;
	if (write(fd, line, n) < 0) {
		/* nowhere left to say it */
	}
	close(fd);
}

void dfs_log_file_only(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	if (!log_file)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n >= 0)
		file_line(line);
}

void dfs_log_use_syslog(int on)
{
	if (on && !use_syslog)
		openlog("dicomfs", LOG_PID, LOG_DAEMON);
	use_syslog = on;
}

void dfs_log(const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + 9, sizeof(line) - 10, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (log_file)
		file_line(line + 9);
	if (use_syslog) {
		if (!log_file)
			syslog(LOG_WARNING, "%s", line + 9);
		return;
	}
	memcpy(line, "dicomfs: ", 9);
	size_t len = strlen(line);
	line[len++] = '\n';
	if (write(STDERR_FILENO, line, len) < 0)
		return;
}

/* The length of the well-formed UTF-8 sequence at s (2..4), or 0; C1
 * controls (U+0080..U+009F) count as not printable (0). */
static size_t utf8_ok(const unsigned char *s, size_t l)
{
	size_t n;
	uint32_t c;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, c = s[0] & 0x07;
	else
		return 0;
	if (n > l)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && (c < 0x10000 || c > 0x10ffff)) ||
	    (c >= 0xd800 && c <= 0xdfff) || c <= 0x9f)
		return 0;
	return n;
}

char *dfs_log_escape(const char *str, size_t l, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t o = 0;
	if (!outlen)
		return out;
	for (size_t i = 0; i < l;) {
		char tmp[8];
		size_t n, k;
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\') {
			tmp[0] = (char)s[i];
			n = 1, k = 1;
		} else if (s[i] == '\\') {
			memcpy(tmp, "\\\\", 2);
			n = 2, k = 1;
		} else if ((k = utf8_ok(s + i, l - i))) {
			memcpy(tmp, s + i, k);
			n = k;
		} else {
			snprintf(tmp, sizeof(tmp), "\\x%02x", s[i]);
			n = 4, k = 1;
		}
		if (o + n + 4 > outlen) {
			/* no room for this and a "...": cut */
			size_t m = outlen - 1 - o < 3 ? outlen - 1 - o : 3;
			memcpy(out + o, "...", m);
			o += m;
			break;
		}
		memcpy(out + o, tmp, n);
		o += n;
		i += k;
	}
	out[o] = 0;
	return out;
}

void dfs_log_limit_init(struct dfs_log_limit *l, unsigned per_sec)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
	l->per_sec = per_sec;
	l->sec = -1;
}

void dfs_log_limit_destroy(struct dfs_log_limit *l)
{
	pthread_mutex_destroy(&l->lock);
}

uint64_t dfs_log_dropped(struct dfs_log_limit *l)
{
	pthread_mutex_lock(&l->lock);
	uint64_t d = l->dropped_total;
	pthread_mutex_unlock(&l->lock);
	return d;
}

int dfs_log_limited(struct dfs_log_limit *l, const char *fmt, ...)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t report = 0;
	pthread_mutex_lock(&l->lock);
	if (ts.tv_sec != l->sec) {
		l->sec = ts.tv_sec;
		l->n = 0;
	}
	if (l->n >= l->per_sec) {
		l->dropped++;
		l->dropped_total++;
		pthread_mutex_unlock(&l->lock);
		return 0;
	}
	l->n++;
	report = l->dropped;
	l->dropped = 0;
	pthread_mutex_unlock(&l->lock);
	char line[2048];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return 0;
	if (report)
		dfs_log("%llu similar lines dropped (at most %u a second)",
			(unsigned long long)report, l->per_sec);
	dfs_log("%s", line);
	return 1;
}
