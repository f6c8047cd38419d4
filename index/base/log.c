#include <stdarg.h>
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
