#include <stdarg.h>
#include <stdint.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>
#include "log.h"

static int use_syslog;

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
	if (use_syslog) {
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
