/*
 * fdbudget.c - the process's fd budget (fdbudget.h F1..F6). Process-wide
 * by nature (the fd table is): one static state under one mutex.
 */
#include <dirent.h>
#include <pthread.h>
#include <sys/resource.h>

#include "fdbudget.h"

#define FDB_LATER 16          /* fds the mount opens after fdb_init (F2) */
#define FDB_CHANNELS_GUESS 32 /* worker channels reserved later (F2, F3) */

static struct {
	pthread_mutex_t lock;
	int inited;
	int limit;      /* RLIMIT_NOFILE (F1) */
	int own;        /* the process's own fds (F6) */
	unsigned threads;
	int reserved;   /* F3 */
	int held;       /* F4 */
} fdb = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int count_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	if (!d)
		return 64;   /* unknown: a guess on the safe side */
	while (readdir(d))
		n++;
	closedir(d);
	return n > 3 ? n - 3 : n;   /* ".", "..", the DIR's own */
}

static int cap_locked(void)
{
	return fdb.limit - fdb.own - FDB_SLACK - FDB_PER_THREAD * (int)fdb.threads -
	       fdb.reserved;
}

void fdb_init(void)
{
	struct rlimit rl;
	int lim = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur < rl.rlim_max) {   /* F1 */
			struct rlimit up = { rl.rlim_max, rl.rlim_max };
			if (setrlimit(RLIMIT_NOFILE, &up) == 0)
				rl.rlim_cur = rl.rlim_max;
		}
		lim = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1 << 30) ? 1 << 30
									     : (int)rl.rlim_cur;
	}
	int own = count_open();
	pthread_mutex_lock(&fdb.lock);
	fdb.limit = lim;
	fdb.own = own + FDB_LATER;
	fdb.inited = 1;
	pthread_mutex_unlock(&fdb.lock);
}

unsigned fdb_threads(unsigned want)
{
	pthread_mutex_lock(&fdb.lock);
	if (fdb.inited) {
		int room = fdb.limit - fdb.own - FDB_SLACK - FDB_CHANNELS_GUESS - FDB_MIN_HELD;
		int t = room / FDB_PER_THREAD;
		if (t < 2)
			t = 2;
		if ((unsigned)t < want)
			want = (unsigned)t;
		fdb.threads = want;
	}
	pthread_mutex_unlock(&fdb.lock);
	return want;
}

void fdb_serving(void)
{
	int n = count_open();
	pthread_mutex_lock(&fdb.lock);
	if (fdb.inited)
		fdb.own = n - fdb.held;   /* F6; live channels count as own: safe */
	pthread_mutex_unlock(&fdb.lock);
}

void fdb_reserve(int n)
{
	pthread_mutex_lock(&fdb.lock);
	fdb.reserved += n;
	pthread_mutex_unlock(&fdb.lock);
}

void fdb_unreserve(int n)
{
	pthread_mutex_lock(&fdb.lock);
	fdb.reserved -= n;
	pthread_mutex_unlock(&fdb.lock);
}

int fdb_take(void)
{
	int ok = 1;
	pthread_mutex_lock(&fdb.lock);
	if (fdb.inited) {
		ok = fdb.held < cap_locked();
		if (ok)
			fdb.held++;
	}
	pthread_mutex_unlock(&fdb.lock);
	return ok;
}

void fdb_put(void)
{
	pthread_mutex_lock(&fdb.lock);
	if (fdb.inited && fdb.held > 0)
		fdb.held--;
	pthread_mutex_unlock(&fdb.lock);
}

static __thread int fdb_tl_transient;

int fdb_transient(int on)
{
	int was = fdb_tl_transient;
	fdb_tl_transient = on;
	return was;
}

int fdb_is_transient(void)
{
	return fdb_tl_transient;
}

int fdb_spare(int n)
{
	int ok = 1;
	pthread_mutex_lock(&fdb.lock);
	if (fdb.inited)
		ok = cap_locked() - fdb.held >= n;
	pthread_mutex_unlock(&fdb.lock);
	return ok;
}

void fdb_stats(int *limit, int *cap, int *held)
{
	pthread_mutex_lock(&fdb.lock);
	*limit = fdb.inited ? fdb.limit : 0;
	*cap = fdb.inited ? cap_locked() : 0;
	*held = fdb.held;
	pthread_mutex_unlock(&fdb.lock);
}

int fdb_counting(void)
{
	pthread_mutex_lock(&fdb.lock);
	int on = fdb.inited;
	pthread_mutex_unlock(&fdb.lock);
	return on;
}
