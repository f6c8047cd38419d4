/*
 * cpulat.c - the CPUs' wake-up latency held low while requests arrive
 * (cpulat.h: L1..L4).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpulat.h"

/* what "no constraint" is to the kernel (PM_QOS_CPU_LATENCY_DEFAULT_VALUE) */
#define CPULAT_NONE ((int32_t)2000000000)

struct cpulat {
	int fd;                 /* the QoS request: set once */
	int32_t us;             /* set once */
	unsigned idle_ms;       /* set once */
	pthread_t thread;       /* set once */
	pthread_mutex_t lock;
	pthread_cond_t cond;    /* signalled when held or stop is set */
	int held;               /* lock for writes; __atomic reads (L3) */
	int broken;             /* lock: a write failed, off for good (L2) */
	int stop;               /* lock */
	uint64_t holds;         /* lock */
	int recent;             /* __atomic: a request since the last check */
};

/* one value to the device (lock held) */
static int put(struct cpulat *l, int32_t v)
{
	return write(l->fd, &v, sizeof(v)) == (ssize_t)sizeof(v) ? 0 : -1;
}

static void *cpulat_main(void *arg)
{
	struct cpulat *l = arg;
	pthread_mutex_lock(&l->lock);
	while (!l->stop) {
		if (!l->held || l->broken) {
			pthread_cond_wait(&l->cond, &l->lock);
			continue;
		}
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += l->idle_ms / 1000;
		dl.tv_nsec += (long)(l->idle_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		/* a period: only stop ends it early */
		while (!l->stop &&
		       pthread_cond_timedwait(&l->cond, &l->lock, &dl) != ETIMEDOUT)
			;
		if (l->stop)
			break;
		/* L1: a request in that period keeps the hold for another */
		if (__atomic_exchange_n(&l->recent, 0, __ATOMIC_ACQ_REL))
			continue;
		if (put(l, CPULAT_NONE))
			l->broken = 1;
		__atomic_store_n(&l->held, 0, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* the first line of dir/name, without its newline, or "" */
static void read_line(const char *dir, const char *name, char *out, size_t cap)
{
	char path[512];
	out[0] = 0;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(out, (int)cap, f))
		out[strcspn(out, "\n")] = 0;
	else
		out[0] = 0;
	fclose(f);
}

int32_t cpulat_auto_us(const char *sysfs_cpu, char *how, size_t howlen)
{
	char gov[64], path[512], name[64], lat[32];
	if (!sysfs_cpu)
		sysfs_cpu = "/sys/devices/system/cpu";
	snprintf(path, sizeof(path), "%s/cpuidle", sysfs_cpu);
	read_line(path, "current_governor", gov, sizeof(gov));
	if (!gov[0])
		read_line(path, "current_governor_ro", gov, sizeof(gov));
	if (!strcmp(gov, "haltpoll")) {
		if (how)
			snprintf(how, howlen, "the haltpoll governor polls only for 0");
		return 0;
	}
	for (int i = 0; i < 16; i++) {
		snprintf(path, sizeof(path), "%s/cpu0/cpuidle/state%d", sysfs_cpu, i);
		read_line(path, "name", name, sizeof(name));
		if (!name[0])
			break;
		if (!strcmp(name, "POLL"))
			continue;
		read_line(path, "latency", lat, sizeof(lat));
		char *end;
		errno = 0;
		long v = strtol(lat, &end, 10);
		if (errno || end == lat || *end || v < 0 || v > 1000000)
			break;
		if (how)
			snprintf(how, howlen, "idle state %s wakes in %ld us", name, v);
		return (int32_t)v;
	}
	if (how)
		snprintf(how, howlen, "no idle state but polling known");
	return 0;
}

struct cpulat *cpulat_start(const char *dev, int32_t us, unsigned idle_ms,
			    char *why, size_t whylen)
{
	if (whylen)
		why[0] = 0;
	if (!dev)
		dev = CPULAT_DEVICE;
	if (us < 0 || us > 1000000) {
		snprintf(why, whylen, "bad latency %ld us", (long)us);
		return NULL;
	}
	int fd = open(dev, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whylen, "%s: %s", dev, strerror(errno));
		return NULL;
	}
	struct cpulat *l = calloc(1, sizeof(*l));
	if (!l) {
		close(fd);
		return NULL;
	}
	l->fd = fd;
	l->us = us;
	l->idle_ms = idle_ms ? idle_ms : CPULAT_IDLE_MS;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* opening added a request of no constraint; a write that fails here
	 * would fail on every request (L2) */
	if (put(l, CPULAT_NONE)) {
		snprintf(why, whylen, "%s: cannot write: %s", dev, strerror(errno));
		goto fail;
	}
	int rc = pthread_create(&l->thread, NULL, cpulat_main, l);
	if (rc) {
		snprintf(why, whylen, "cannot start its thread: %s", strerror(rc));
		goto fail;
	}
	return l;
fail:
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	close(fd);
	free(l);
	return NULL;
}

void cpulat_touch(struct cpulat *l)
{
	if (!l)
		return;
	/* L3: held, or given up for good (broken keeps held set) */
	if (__atomic_load_n(&l->held, __ATOMIC_ACQUIRE)) {
		if (!__atomic_load_n(&l->recent, __ATOMIC_RELAXED))
			__atomic_store_n(&l->recent, 1, __ATOMIC_RELAXED);
		return;
	}
	pthread_mutex_lock(&l->lock);
	if (!l->held && !l->stop) {
		if (l->broken || put(l, l->us)) {
			l->broken = 1;   /* L2: the fast path from now on, never held */
		} else {
			l->holds++;
			__atomic_store_n(&l->recent, 1, __ATOMIC_RELAXED);
			pthread_cond_signal(&l->cond);
		}
		__atomic_store_n(&l->held, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&l->lock);
}

void cpulat_stats(struct cpulat *l, struct cpulat_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	out->us = l->us;
	out->held = l->held && !l->broken;
	out->holds = l->holds;
	pthread_mutex_unlock(&l->lock);
}

void cpulat_stop(struct cpulat *l)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	l->stop = 1;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	if (l->held && !l->broken)
		put(l, CPULAT_NONE);
	close(l->fd);   /* the kernel drops the request */
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l);
}
