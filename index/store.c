/*
 * store.c - see store.h: the environment's life cycle, the index
 * directory and its lock, the meta DB and the read side of the index.
 * The invariants (I1).. are in index.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <dirent.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nettle/sha2.h>

#include "store.h"
#include "error.h"
#include "log.h"
#include "naming.h"

/* ---- LMDB codes and the meta DB ---- */

int dfs_from_mdb(int rc)
{
	switch (rc) {
	case 0: return 0;
	case MDB_NOTFOUND: return -ENOENT;
	case MDB_MAP_FULL: return -ENOSPC;
	case MDB_CORRUPTED: case MDB_INVALID: case MDB_VERSION_MISMATCH:
	case MDB_PAGE_NOTFOUND: case MDB_BAD_TXN:
		return DFS_EINDEX;
	default:
		return rc > 0 ? -EIO : rc;
	}
}

/* The u64 stored under key k of dbi (meta values, names -> inode). */
static int get_u64(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, uint64_t *v)
{
	MDB_val d;
	int rc = mdb_get(txn, dbi, k, &d);
	if (rc)
		return dfs_from_mdb(rc);
	if (d.mv_size != 8)
		return DFS_EINDEX;
	memcpy(v, d.mv_data, 8);
	return 0;
}

int meta_get_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t *v)
{
	MDB_val k = { strlen(key), (void *)key };
	return get_u64(txn, dbi, &k, v);
}

int meta_put_u64(MDB_txn *txn, MDB_dbi dbi, const char *key, uint64_t v)
{
	return meta_put_str(txn, dbi, key, (const char *)&v, 8);
}

int meta_put_str(MDB_txn *txn, MDB_dbi dbi, const char *key, const char *v,
		 size_t len)
{
	MDB_val k = { strlen(key), (void *)key }, d = { len, (void *)v };
	return dfs_from_mdb(mdb_put(txn, dbi, &k, &d, 0));
}

/* ---- the index directory and its lock ---- */

/* One directory of the index path that this user trusts (S1, store.h): a directory
 * (a symlink only when this user owns it), owned by the effective uid and
 * not writable by group or others. */
static int dir_trusted(const char *path, char *msg, size_t msglen)
{
	struct stat st;
	if (lstat(path, &st)) {
		int e = errno;
		snprintf(msg, msglen, "index directory '%s': %s", path, strerror(e));
		return -e;
	}
	uid_t me = geteuid();
	if (S_ISLNK(st.st_mode) && st.st_uid != me) {
		snprintf(msg, msglen,
			 "index directory '%s' is a symlink owned by uid %u, not by uid %u (this user); refusing it (remove it or choose another with -o index=)",
			 path, (unsigned)st.st_uid, (unsigned)me);
		return -EACCES;
	}
	if (S_ISLNK(st.st_mode) && stat(path, &st)) {
		int e = errno;
		snprintf(msg, msglen, "index directory '%s': %s", path, strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(msg, msglen, "index directory '%s': %s", path, strerror(ENOTDIR));
		return -ENOTDIR;
	}
	if (st.st_uid != me) {
		snprintf(msg, msglen,
			 "index directory '%s' is owned by uid %u, not by uid %u (this user); refusing it (remove it or choose another with -o index=)",
			 path, (unsigned)st.st_uid, (unsigned)me);
		return -EACCES;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(msg, msglen,
			 "index directory '%s' is writable by group or others (mode %04o); refusing it (chmod go-w it or choose another with -o index=)",
			 path, (unsigned)(st.st_mode & 07777));
		return -EACCES;
	}
	return 0;
}

/* mkdir -p with mode 0700; every component at or below `trust_from`
 * (a prefix length of path) must pass dir_trusted, whether made now or
 * found. */
static int mkdir_p(const char *path, size_t trust_from, char *msg, size_t msglen)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
		snprintf(msg, msglen, "index directory '%s': %s", path,
			 strerror(ENAMETOOLONG));
		return -ENAMETOOLONG;
	}
	size_t n = strlen(tmp);
	while (n > 1 && tmp[n - 1] == '/')
		tmp[--n] = 0;
	for (char *p = tmp + 1;; p++) {
		if (*p && *p != '/')
			continue;
		char c = *p;
		*p = 0;
		if (mkdir(tmp, 0700) && errno != EEXIST) {
			int e = errno;
			snprintf(msg, msglen, "index directory '%s': %s", tmp, strerror(e));
			return -e;
		}
		if ((size_t)(p - tmp) > trust_from) {
			int rc = dir_trusted(tmp, msg, msglen);
			if (rc)
				return rc;
		}
		*p = c;
		if (!c)
			return 0;
	}
}

/* The cache root (store.h store_dir): base gets it; its length, or -1
 * with msg set (and errno) when there is no home directory. */
static int cache_root(char *base, size_t blen, char *msg, size_t msglen)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int n;
	if (geteuid() == 0 && !xdg) {
		n = snprintf(base, blen, "/var/cache");
	} else if (xdg && *xdg) {
		n = snprintf(base, blen, "%s", xdg);
	} else {
		char pwbuf[4096];
		struct passwd pw, *pwp = NULL;
		if (!home || !*home) {
			if (getpwuid_r(getuid(), &pw, pwbuf, sizeof(pwbuf), &pwp) == 0 &&
			    pwp && pwp->pw_dir && *pwp->pw_dir == '/')
				home = pwp->pw_dir;
		}
		if (!home || !*home) {
			snprintf(msg, msglen,
				 "no index directory: HOME and XDG_CACHE_HOME are unset and uid %u has no home directory; choose one with -o index=",
				 (unsigned)getuid());
			errno = ENOENT;
			return -1;
		}
		n = snprintf(base, blen, "%s/.cache", home);
	}
	if (n < 0 || n >= (int)blen) {
		snprintf(msg, msglen, "index directory: %s", strerror(ENAMETOOLONG));
		errno = ENAMETOOLONG;
		return -1;
	}
	return n;
}

/* The default index directory; *trust_from is the length of the cache root
 * (the components under it are checked). NULL with msg set when there is
 * no home directory to put it in. */
static char *default_dir(const char *archive_real, size_t *trust_from, char *msg,
			 size_t msglen)
{
	char base[PATH_MAX], name[NAME_BUF], *out = NULL;
	int n = cache_root(base, sizeof(base), msg, msglen);
	if (n < 0)
		return NULL;
	*trust_from = (size_t)n;
	const char *slash = strrchr(archive_real, '/');
	const char *bn = slash && slash[1] ? slash + 1 : "root";
	name_sanitize(bn, strlen(bn), name, 64);
	uint64_t h = fnv1a(FNV1A_INIT, archive_real, strlen(archive_real));
	if (asprintf(&out, "%s/dicomfs/%s-%016llx", base, name, (unsigned long long)h) < 0) {
		errno = ENOMEM;
		return NULL;
	}
	return out;
}

int store_dir(const char *given, const char *archive_real, const char *in_use,
	      char **out, char *msg, size_t msglen)
{
	char *p = NULL;
	int rc;
	if (in_use) {
		const char *tmp = getenv("TMPDIR");
		if (asprintf(&p, "%s/dicomfs-index-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
			return -ENOMEM;
		rc = mkdtemp(p) ? 0 : -errno;
		if (rc)
			snprintf(msg, msglen,
				 "index '%s' is in use and no private index could be made: %s",
				 in_use, strerror(-rc));
		else
			rc = dir_trusted(p, msg, msglen);
	} else {
		size_t trust_from = 0;
		if (given) {
			p = strdup(given);
			if (!p)
				return -ENOMEM;
			trust_from = strlen(p);
			while (trust_from > 1 && p[trust_from - 1] == '/')
				trust_from--;
			/* only the directory itself: its parents are the user's choice */
			char *sl = memrchr(p, '/', trust_from);
			trust_from = sl ? (size_t)(sl - p) : 0;
		} else {
			p = default_dir(archive_real, &trust_from, msg, msglen);
			if (!p)
				return errno == ENOMEM ? -ENOMEM : -errno;
		}
		rc = mkdir_p(p, trust_from, msg, msglen);
		size_t ml = strlen(msg);
		if (rc && !given && !strstr(msg, "-o index=") && ml < msglen)
			snprintf(msg + ml, msglen - ml, " (the default place; choose another with -o index=)");
	}
	if (rc) {
		free(p);
		return rc;
	}
	*out = p;
	return 0;
}

#define SERVING "serving"
/* how long a new mount waits for the lock of a mount that is closing */
#define LOCK_WAIT_MS 10000

/* a mount that has just been unmounted lets go of "serving" when its FUSE
 * loop sees it, a few ms after umount returns */
#define SERVING_GRACE_MS 300

/*
 * I5: the lock is busy. A mount that is serving holds "serving" (shared):
 * then 0 once it has held it for SERVING_GRACE_MS. Otherwise its holder
 * is an update, or a mount that was just unmounted and is closing (its
 * last sync, I12, can take seconds): the lock is tried every 10 ms for
 * LOCK_WAIT_MS, while nobody serves; 1 when it was taken.
 */
static int lock_wait(struct index *ix)
{
	char sp[PATH_MAX];
	snprintf(sp, sizeof(sp), "%s/" SERVING, ix->path);
	for (int i = 0, said = 0, served = 0; i < LOCK_WAIT_MS / 10; i++) {
		int sfd = open(sp, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		int serving = 0;
		if (sfd >= 0) {
			serving = flock(sfd, LOCK_EX | LOCK_NB) != 0;
			close(sfd);   /* the test's lock goes with it */
		}
		served = serving ? served + 1 : 0;
		if (served > SERVING_GRACE_MS / 10)
			return 0;
		if (!serving && i >= 50 && !said++)   /* said after 0.5 s */
			dfs_log("index '%s' is locked by a mount that is not serving (closing, or "
				"still indexing): waiting up to %d s for it", ix->path,
				LOCK_WAIT_MS / 1000);
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		if (flock(ix->lock_fd, LOCK_EX | LOCK_NB) == 0)
			return 1;
	}
	return 0;
}

int index_serving(struct index *ix, int on)
{
	if (!on) {
		if (ix->serving_fd >= 0)
			close(ix->serving_fd);
		ix->serving_fd = -1;
		return 0;
	}
	if (ix->serving_fd >= 0)
		return 0;
	char sp[PATH_MAX];
	snprintf(sp, sizeof(sp), "%s/" SERVING, ix->path);
	int fd = open(sp, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_SH)) {   /* a waiter's test holds it for a moment */
		int e = errno;
		close(fd);
		return -e;
	}
	ix->serving_fd = fd;
	return 0;
}

/* Take the update lock of ix->path exclusively (I5); when another mount
 * holds it, switch to a private index directory. */
static int lock_take(struct index *ix, char *msg, size_t msglen)
{
	char lp[PATH_MAX];
	snprintf(lp, sizeof(lp), "%s/lock", ix->path);
	ix->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ix->lock_fd < 0) {
		snprintf(msg, msglen, "cannot create index lock '%s': %s", lp,
			 strerror(errno));
		return -errno;
	}
	if (flock(ix->lock_fd, LOCK_EX | LOCK_NB) == 0) {
		futimens(ix->lock_fd, NULL);   /* "last used" (index_cache_list) */
		return 0;
	}
	if (errno != EWOULDBLOCK) {
		snprintf(msg, msglen, "cannot lock index '%s': %s", lp, strerror(errno));
		return -errno;
	}
	if (!ix->private_index && lock_wait(ix)) {
		futimens(ix->lock_fd, NULL);
		return 0;
	}
	/* another mount serves this index: build a private one */
	close(ix->lock_fd);
	ix->lock_fd = -1;
	char *p;
	int rc = store_dir(NULL, NULL, ix->path, &p, msg, msglen);
	if (rc)
		return rc;
	dfs_log("index '%s' is in use by another mount; using a private index '%s' for this mount",
		ix->path, p);
	free(ix->path);
	ix->path = p;
	ix->private_index = 1;
	ix->stats.private_index = 1;
	return lock_take(ix, msg, msglen);
}

/* ---- environment ---- */

/* This thread's read transaction (I6): begun on first use, reset at the
 * end of each request (index_request_end), renewed on the next use. */
struct rtxn {
	MDB_txn *txn;
	int active;
	struct index *ix;
};

/* ---- the reader gate and the map's size (S3, store.h) ---- */

static void gate_deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* A read txn begins: 0, or -1 when a growth kept it waiting too long.
 * The common path is two atomic operations (seq_cst, paired with
 * store_map_grow's: either the reader sees map_growing, or the grower
 * sees the reader counted); the lock only when a growth runs. */
static int gate_enter(struct index *ix)
{
	for (;;) {
		__atomic_add_fetch(&ix->map_readers, 1, __ATOMIC_SEQ_CST);
		if (!__atomic_load_n(&ix->map_growing, __ATOMIC_SEQ_CST))
			return 0;
		__atomic_sub_fetch(&ix->map_readers, 1, __ATOMIC_SEQ_CST);
		struct timespec dl;
		int rc = 0;
		gate_deadline(&dl, STORE_GATE_WAIT_MS);
		pthread_mutex_lock(&ix->map_lock);
		while (__atomic_load_n(&ix->map_growing, __ATOMIC_SEQ_CST) && !rc)
			rc = pthread_cond_timedwait(&ix->map_cond, &ix->map_lock, &dl);
		pthread_mutex_unlock(&ix->map_lock);
		if (rc)
			return -1;
	}
}

static void gate_leave(struct index *ix)
{
	__atomic_sub_fetch(&ix->map_readers, 1, __ATOMIC_SEQ_CST);
}

static void txn_destroy(void *p)
{
	struct rtxn *r = p;
	if (r->txn)
		mdb_txn_abort(r->txn);
	if (r->active)
		gate_leave(r->ix);
	free(r);
}

static size_t round_mib(size_t v)
{
	size_t m = ((size_t)1 << 20) - 1;
	return v > SIZE_MAX - m ? SIZE_MAX & ~m : (v + m) & ~m;
}

/* RLIMIT_AS in bytes, 0 when unlimited */
static size_t as_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		return (size_t)rl.rlim_cur;
	return 0;
}

static size_t data_size(const char *dir)
{
	char p[PATH_MAX];
	struct stat st;
	snprintf(p, sizeof(p), "%s/data.mdb", dir);
	return stat(p, &st) == 0 ? (size_t)st.st_size : 0;
}

/* $DICOMFS_INDEX_MAP_MIB in bytes, or 0 */
static size_t map_override(void)
{
	const char *e = getenv("DICOMFS_INDEX_MAP_MIB");
	unsigned long long m = e && *e ? strtoull(e, NULL, 10) : 0;
	return m && m < ((size_t)1 << 44) ? (size_t)m << 20 : 0;
}

/* The size an environment opens with (S3). */
static size_t map_start(const struct index *ix)
{
	size_t used = data_size(ix->path), o = map_override();
	if (o)
		return o > used ? o : round_mib(used + ((size_t)1 << 20));
	return round_mib(2 * used > MAP_MIN ? 2 * used : MAP_MIN);
}

/* Is there address space for len more bytes? (mdb_env_set_mapsize leaves
 * the environment without a map when mmap fails: ask first.) */
static int as_room(size_t len)
{
	if (!len)
		return 1;
	void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	munmap(p, len);
	return 1;
}

static size_t map_now(struct index *ix)
{
	MDB_envinfo info;
	return mdb_env_info(ix->env, &info) == 0 ? info.me_mapsize : 0;
}

static int env_open_size(struct index *ix, int rdonly, size_t map);

/* Remap to `want` bytes, or less (down to cur + 1 MiB) when the address
 * space is short; called with no txn in this process. The size reached,
 * or 0 when not even that fits (the environment is unchanged then). */
static size_t map_resize(struct index *ix, size_t cur, size_t want)
{
	size_t step = ((size_t)1 << 20);
	while (want > cur && !as_room(want - cur)) {
		if (want - cur <= step)
			return 0;
		want = cur + round_mib((want - cur) / 2);
	}
	if (want <= cur)
		return 0;
	int rc = mdb_env_set_mapsize(ix->env, want);
	if (rc) {
		/* the environment lost its map: open it again as it was */
		mdb_env_close(ix->env);
		ix->env = NULL;
		if (env_open_size(ix, 0, cur))
			dfs_log("index '%s': cannot map the index again after a failed growth", ix->path);
		return 0;
	}
	return want;
}

void store_map_fit(struct index *ix, size_t nfiles)
{
	if (!ix->env || map_override())   /* the override: growth on demand only */
		return;
	size_t cur = map_now(ix);
	size_t want = round_mib(nfiles * MAP_PER_FILE + MAP_MIN);
	if (want <= cur)
		return;
	size_t got = map_resize(ix, cur, want);
	if (got < want) {
		size_t lim = as_limit();
		if (lim)
			dfs_log("index '%s': %zu files want a %zu MiB LMDB map; the address-space limit (RLIMIT_AS, ulimit -v = %zu MiB) leaves room for %zu MiB; it grows when needed",
				ix->path, nfiles, want >> 20, lim >> 20, (got ? got : cur) >> 20);
		else
			dfs_log("index '%s': %zu files want a %zu MiB LMDB map; only %zu MiB could be mapped; it grows when needed",
				ix->path, nfiles, want >> 20, (got ? got : cur) >> 20);
	}
}

static int grow_result(struct index *ix, size_t cur, size_t got, char *msg, size_t msglen);

/* Only the update's thread (before the mount) or the live thread grows:
 * one grower at a time (I5). */
int store_map_grow(struct index *ix, char *msg, size_t msglen)
{
	size_t cur = map_now(ix);
	size_t want = round_mib(cur + (cur > MAP_MIN ? cur : MAP_MIN));
	/* wait for a moment without readers, letting new ones in meanwhile
	 * (no request fails while the snapshots drain: they are counted,
	 * the grower polls); then shut new ones out (map_growing) and wait
	 * for the few that slipped in to leave; only then remap */
	int64_t waited_ms = 0;
	unsigned readers = 1;
	while (waited_ms < STORE_GROW_WAIT_MS) {
		if (!__atomic_load_n(&ix->map_readers, __ATOMIC_SEQ_CST)) {
			__atomic_store_n(&ix->map_growing, 1, __ATOMIC_SEQ_CST);
			/* requests are short: the ones that counted themselves
			 * just now leave within the gate's own deadline */
			for (int i = 0; i < STORE_GATE_WAIT_MS / 2 &&
			     __atomic_load_n(&ix->map_readers, __ATOMIC_SEQ_CST); i++) {
				struct timespec ms = { 0, 1000000 };
				nanosleep(&ms, NULL);
			}
			readers = __atomic_load_n(&ix->map_readers, __ATOMIC_SEQ_CST);
			if (!readers)
				break;
			pthread_mutex_lock(&ix->map_lock);
			__atomic_store_n(&ix->map_growing, 0, __ATOMIC_SEQ_CST);
			pthread_cond_broadcast(&ix->map_cond);
			pthread_mutex_unlock(&ix->map_lock);
		}
		struct timespec ms = { 0, 10000000 };
		nanosleep(&ms, NULL);
		waited_ms += 10;
	}
	if (!readers) {
		size_t got = map_resize(ix, cur, want);
		pthread_mutex_lock(&ix->map_lock);
		__atomic_store_n(&ix->map_growing, 0, __ATOMIC_SEQ_CST);
		pthread_cond_broadcast(&ix->map_cond);
		pthread_mutex_unlock(&ix->map_lock);
		return grow_result(ix, cur, got, msg, msglen);
	}
	readers = __atomic_load_n(&ix->map_readers, __ATOMIC_SEQ_CST);
	snprintf(msg, msglen,
		 "index '%s': the LMDB map (%zu MiB) is full and cannot grow while %u snapshot(s) of the mount hold it; unmount and mount again to grow it",
		 ix->path, cur >> 20, readers);
	return -EBUSY;
}

/* store_map_grow's answer once the remap was tried (got: 0 failed) */
static int grow_result(struct index *ix, size_t cur, size_t got, char *msg, size_t msglen)
{
	if (!got) {
		size_t lim = as_limit();
		if (lim)
			snprintf(msg, msglen,
				 "index '%s': the LMDB map (%zu MiB) is full and the address-space limit (RLIMIT_AS, ulimit -v = %zu MiB) leaves no room to grow it: raise the limit",
				 ix->path, cur >> 20, lim >> 20);
		else
			snprintf(msg, msglen, "index '%s': the LMDB map (%zu MiB) is full and cannot grow (no address space)",
				 ix->path, cur >> 20);
		return -ENOSPC;
	}
	dfs_log("index '%s': LMDB map grown from %zu to %zu MiB", ix->path, cur >> 20, got >> 20);
	return 0;
}

static int env_open(struct index *ix, int rdonly)
{
	return env_open_size(ix, rdonly, map_start(ix));
}

static int env_open_size(struct index *ix, int rdonly, size_t map)
{
	MDB_txn *txn;
	int rc;
	size_t start = map, floor = round_mib(data_size(ix->path) + ((size_t)1 << 20));
	for (;;) {
		rc = mdb_env_create(&ix->env);
		if (rc)
			return dfs_from_mdb(rc);
		mdb_env_set_maxdbs(ix->env, 12);
		mdb_env_set_maxreaders(ix->env, 1024);
		mdb_env_set_mapsize(ix->env, map);
		rc = mdb_env_open(ix->env, ix->path,
				  MDB_NOTLS | MDB_NOSYNC | (rdonly ? MDB_RDONLY : 0), 0600);
		if (rc != ENOMEM || map <= floor)
			break;
		mdb_env_close(ix->env);
		ix->env = NULL;
		map = map / 2 > floor ? round_mib(map / 2) : floor;
	}
	if (rc == ENOMEM) {
		mdb_env_close(ix->env);
		ix->env = NULL;
		return -ENOMEM;   /* index_open: the map-size line */
	}
	if (!rc && map < start && !rdonly)
		dfs_log("index '%s': the address-space limit (RLIMIT_AS, ulimit -v = %zu MiB) leaves room for a %zu MiB LMDB map only (wanted %zu MiB); it grows when needed",
			ix->path, as_limit() >> 20, map >> 20, start >> 20);
	if (rc)
		goto close_env;
	int dead;
	mdb_reader_check(ix->env, &dead);
	rc = mdb_txn_begin(ix->env, NULL, rdonly ? MDB_RDONLY : 0, &txn);
	if (rc)
		goto close_env;
	unsigned fl = rdonly ? 0 : MDB_CREATE;     /* the named DBs (I3) */
	if ((rc = mdb_dbi_open(txn, "meta", fl, &ix->meta)) ||
	    (rc = mdb_dbi_open(txn, "files", fl, &ix->files)) ||
	    (rc = mdb_dbi_open(txn, "keys", fl, &ix->keys)) ||
	    (rc = mdb_dbi_open(txn, "nodes", fl, &ix->nodes)) ||
	    (rc = mdb_dbi_open(txn, "names", fl, &ix->names)) ||
	    (rc = mdb_dbi_open(txn, "dirents", fl, &ix->dirents)) ||
	    (rc = mdb_dbi_open(txn, "changes", fl, &ix->changes)) ||
	    (rc = mdb_dbi_open(txn, "aux", fl, &ix->aux))) {
		mdb_txn_abort(txn);
		goto close_env;
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		goto close_env;
	return 0;
close_env:
	mdb_env_close(ix->env);
	ix->env = NULL;
	return dfs_from_mdb(rc);
}

/* ---- I12: commits not yet on disk ---- */

static void env_remove_files(const char *path);

#define UNSYNCED "unsynced"

/* This boot's id (/proc/sys/kernel/random/boot_id), "" when unknown */
static void boot_id(char id[64])
{
	id[0] = 0;
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, id, 63);
	close(fd);
	id[n > 0 ? n : 0] = 0;
	id[strcspn(id, "\n")] = 0;
}

static void dir_sync(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

static int mark_unsynced(struct index *ix)
{
	char p[PATH_MAX], id[64];
	snprintf(p, sizeof(p), "%s/" UNSYNCED, ix->path);
	boot_id(id);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	size_t l = strlen(id);
	int ok = write(fd, id, l) == (ssize_t)l && fsync(fd) == 0;
	close(fd);
	if (!ok)
		return -EIO;
	dir_sync(ix->path);
	ix->unsynced = 1;
	return 0;
}

int store_commit(struct index *ix, MDB_txn *txn)
{
	if (!ix->unsynced && mark_unsynced(ix)) {
		static int said;
		if (!said++)
			dfs_log("index '%s': cannot write its '" UNSYNCED "' marker: a system crash before the index is on disk may go unnoticed",
				ix->path);
	}
	return mdb_txn_commit(txn);
}

void store_sync(struct index *ix)
{
	if (!ix->unsynced || !ix->env || mdb_env_sync(ix->env, 1))
		return;
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/" UNSYNCED, ix->path);
	if (unlink(p) == 0 || errno == ENOENT)
		dir_sync(ix->path);
	ix->unsynced = 0;
}

/* At open (the exclusive lock held): a marker of this boot means a writer
 * died with its commits in the page cache: they are synced (after the
 * environment opens); of another boot, or unreadable, that the machine
 * stopped before they reached the disk: the index may be torn, and is
 * removed to be built again. */
static void unsynced_check(struct index *ix)
{
	char p[PATH_MAX], id[64], had[64];
	snprintf(p, sizeof(p), "%s/" UNSYNCED, ix->path);
	int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return;
	ssize_t n = read(fd, had, sizeof(had) - 1);
	close(fd);
	had[n > 0 ? n : 0] = 0;
	boot_id(id);
	if (id[0] && strcmp(id, had) == 0) {
		ix->unsynced = 1;
		return;
	}
	dfs_log("index '%s' was being written when the machine stopped (its last commits may not be on disk); rebuilding it",
		ix->path);
	env_remove_files(ix->path);
	unlink(p);
	dir_sync(ix->path);
}

/* Check format and archive; wipe everything when they do not match (I7). */
static int env_validate(struct index *ix)
{
	MDB_txn *txn;
	MDB_val k = { 6, "format" }, d;
	int rc = mdb_txn_begin(ix->env, NULL, 0, &txn);
	if (rc)
		return dfs_from_mdb(rc);
	int ok = 0;
	rc = mdb_get(txn, ix->meta, &k, &d);
	if (rc == 0 && d.mv_size == strlen(INDEX_FORMAT) &&
	    memcmp(d.mv_data, INDEX_FORMAT, d.mv_size) == 0) {
		MDB_val ka = { 7, "archive" };
		rc = mdb_get(txn, ix->meta, &ka, &d);
		ok = rc == 0 && d.mv_size == strlen(ix->archive_real) &&
		     memcmp(d.mv_data, ix->archive_real, d.mv_size) == 0;
	}
	if (!ok) {
		MDB_stat st;
		mdb_stat(txn, ix->files, &st);
		if (st.ms_entries)
			dfs_log("index '%s' was built by another version or for another archive; rebuilding",
				ix->path);
		MDB_dbi all[] = { ix->meta, ix->files, ix->keys, ix->nodes,
				  ix->names, ix->dirents, ix->changes, ix->aux };
		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
			rc = mdb_drop(txn, all[i], 0);
			if (rc)
				goto abort;
		}
		if ((rc = meta_put_str(txn, ix->meta, "format", INDEX_FORMAT,
				       strlen(INDEX_FORMAT))) ||
		    (rc = meta_put_str(txn, ix->meta, "archive", ix->archive_real,
				       strlen(ix->archive_real))) ||
		    (rc = meta_put_u64(txn, ix->meta, "next_id", ID_FIRST)) ||
		    (rc = meta_put_u64(txn, ix->meta, "tree_valid", 0)))
			goto abort_dfs;
		ix->stats.index_fresh = 1;
		return dfs_from_mdb(store_commit(ix, txn));
	}
	return dfs_from_mdb(mdb_txn_commit(txn));
abort:
	rc = dfs_from_mdb(rc);
abort_dfs:
	mdb_txn_abort(txn);
	return rc;
}

static void env_remove_files(const char *path)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/data.mdb", path);
	unlink(p);
	snprintf(p, sizeof(p), "%s/lock.mdb", path);
	unlink(p);
}

/* ---- anon/'s key (index/views/view_anon.c) ---- */

#define ANON_KEY_MIN 16
#define ANON_KEY_MAX 4096

/* read a whole small file; its byte count, or a negative errno */
static ssize_t anon_read_small(const char *path, uint8_t *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	size_t n = 0;
	while (n < cap) {
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = -errno;
			close(fd);
			return e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	return n == cap ? -EFBIG : (ssize_t)n;
}

/* "anon.key" in the index directory: made once (O_EXCL, 0600) */
static int anon_default_key(const char *dir, char *path, size_t plen, char *msg, size_t msglen)
{
	uint8_t k[DEID_KEY_LEN];
	snprintf(path, plen, "%s/anon.key", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno;
	if (getrandom(k, sizeof(k), 0) != (ssize_t)sizeof(k) ||
	    write(fd, k, sizeof(k)) != (ssize_t)sizeof(k) || fsync(fd)) {
		int e = errno ? -errno : -EIO;
		close(fd);
		unlink(path);
		snprintf(msg, msglen, "anon key '%s': cannot make it: %s", path, strerror(-e));
		return e;
	}
	close(fd);
	return 0;
}

/* anon/'s key (view_anon.c) into ix->anon_key: opts.anon_key_file, or
 * "anon.key" in the index directory, made the first time. 0, or an error
 * with msg set. */
static int anon_key_load(struct index *ix, char *msg, size_t msglen)
{
	char path[4096];
	uint8_t buf[ANON_KEY_MAX];
	struct stat st;
	int rc = 0;
	if (ix->opts.anon_key_file)
		snprintf(path, sizeof(path), "%s", ix->opts.anon_key_file);
	else if ((rc = anon_default_key(ix->path, path, sizeof(path), msg, msglen)))
		return msg[0] ? rc : (snprintf(msg, msglen, "anon key in '%s': %s", ix->path,
					       strerror(-rc)), rc);
	ssize_t n = anon_read_small(path, buf, sizeof(buf));
	if (n < 0) {
		snprintf(msg, msglen, "anon key '%s': %s", path,
			 n == -EFBIG ? "larger than 4 KiB" : strerror((int)-n));
		return (int)n;
	}
	if (n < ANON_KEY_MIN) {
		snprintf(msg, msglen, "anon key '%s': shorter than %d bytes", path, ANON_KEY_MIN);
		return -EINVAL;
	}
	if (!ix->opts.anon_key_file && stat(path, &st) == 0 && (st.st_mode & 077))
		chmod(path, 0600);
	struct sha256_ctx c;
	sha256_init(&c);
	sha256_update(&c, (size_t)n, buf);
	sha256_digest(&c, DEID_KEY_LEN, ix->anon_key.k);
	memset(buf, 0, sizeof(buf));
	return 0;
}

const struct deid_key *index_anon_key(const struct index *ix)
{
	return &ix->anon_key;
}

int index_open(struct index **out, const struct index_opts *o, char *msg,
	       size_t msglen)
{
	struct index *ix = calloc(1, sizeof(*ix));
	int rc;

	if (!ix)
		return -ENOMEM;
	ix->opts = *o;
	ix->archive_fd = -1;
	ix->lock_fd = -1;
	ix->serving_fd = -1;
	pthread_mutex_init(&ix->err_lock, NULL);
	pthread_mutex_init(&ix->map_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ix->map_cond, &ca);
	pthread_condattr_destroy(&ca);
	/* the source first: it knows the archive's stable name (source.h) */
	ix->src_opts = o->source;
	ix->src_opts.follow_symlinks = o->follow_symlinks;
	rc = source_create(o->archive, &ix->src_opts, &ix->src, msg, msglen);
	if (rc)
		goto free_ix;
	ix->archive_real = strdup(ix->src.ops->name_of(ix->src.inst));
	if (!ix->archive_real) {
		rc = -ENOMEM;
		goto free_ix;
	}
	if (ix->src.ops->permissions) {
		/* a folder: the access model and the tree's fallback mtime use it */
		ix->archive_fd = open(ix->archive_real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (ix->archive_fd < 0) {
			rc = -errno;
			snprintf(msg, msglen, "archive '%s': %s", o->archive, strerror(errno));
			goto free_ix;
		}
	}
	rc = store_dir(o->path, ix->archive_real, NULL, &ix->path, msg, msglen);
	if (rc) {
		rc = rc == -ENOMEM ? rc : -EROFS;
		goto free_ix;
	}
	if (ix->src.ops->use_dir) {
		/* the source's own files (a server's instance cache) */
		if (!ix->src_opts.cache_dir) {
			if (asprintf(&ix->src_cache_dir, "%s/cache", ix->path) < 0) {
				ix->src_cache_dir = NULL;
				rc = -ENOMEM;
				goto free_ix;
			}
			ix->src_opts.cache_dir = ix->src_cache_dir;
		}
		rc = ix->src.ops->use_dir(ix->src.inst, ix->src_opts.cache_dir, msg, msglen);
		if (rc) {
			rc = rc == -ENOMEM ? rc : -EROFS;
			goto free_ix;
		}
	}
	/* beside the shared index even when this mount gets a private one */
	rc = anon_key_load(ix, msg, msglen);
	if (rc) {
		rc = rc == -ENOMEM ? rc : -EROFS;
		goto free_ix;
	}
	rc = lock_take(ix, msg, msglen);
	if (rc) {
		rc = -EROFS;
		goto free_ix;
	}
	unsynced_check(ix);   /* I12 */
	int dead_writer = ix->unsynced;   /* its commits are synced below */
	rc = env_open(ix, 0);
	if (rc == DFS_EINDEX) {
		dfs_log("index '%s' is corrupt; rebuilding it", ix->path);
		env_remove_files(ix->path);
		rc = env_open(ix, 0);
	}
	if (!rc)
		rc = env_validate(ix);
	if (!rc && dead_writer)
		store_sync(ix);   /* I12: a dead writer's commits of this boot (a
				   * new index's first commit, env_validate's, is
				   * synced with the build, by the same marker) */
	if (rc == -ENOMEM && !ix->env) {
		struct rlimit rl;
		char lim[64] = "unlimited";
		if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
			snprintf(lim, sizeof(lim), "%llu MiB",
				 (unsigned long long)(rl.rlim_cur >> 20));
		snprintf(msg, msglen,
			 "index '%s': cannot map the LMDB index (%zu MiB of address space for %zu MiB of data; the address-space limit RLIMIT_AS, ulimit -v, is %s): raise the limit",
			 ix->path, round_mib(data_size(ix->path) + ((size_t)1 << 20)) >> 20,
			 data_size(ix->path) >> 20, lim);
		rc = -EROFS;
		goto free_ix;
	}
	if (rc) {
		snprintf(msg, msglen, "index '%s': %s", ix->path, dfs_strerror(rc));
		rc = -EROFS;
		goto free_ix;
	}
	*out = ix;
	return 0;
free_ix:
	index_free(ix);
	return rc;
}

/* (I8): before fork(); every FUSE thread has ended, so the only read txn
 * left to end is this thread's. */
void index_close_env(struct index *ix)
{
	if (ix->txn_key_ok) {
		struct rtxn *r = pthread_getspecific(ix->txn_key);
		if (r)
			txn_destroy(r);
		pthread_setspecific(ix->txn_key, NULL);
		__atomic_store_n(&ix->map_readers, 0, __ATOMIC_SEQ_CST);
		pthread_key_delete(ix->txn_key);
		ix->txn_key_ok = 0;
	}
	if (ix->env)
		mdb_env_close(ix->env);
	ix->env = NULL;
}

int index_reopen(struct index *ix)
{
	/* live: the mount's one writer (I5) needs a writable environment, and
	 * room for live batches: growing while mounted waits for every
	 * snapshot (S3), and the catalog keeps one, so the map gets MAP_MIN
	 * beyond what the index holds from the start */
	size_t map = map_start(ix), used = data_size(ix->path);
	if (ix->opts.live && map < used + MAP_MIN && !map_override())
		map = round_mib(used + MAP_MIN);
	int rc = env_open_size(ix, !ix->opts.live, map);
	if (rc)
		return rc;
	if (pthread_key_create(&ix->txn_key, txn_destroy))
		return -EAGAIN;
	ix->txn_key_ok = 1;
	return 0;
}

void index_free(struct index *ix)
{
	if (!ix)
		return;
	/* I12: a commit nobody has synced (an index opened, its first commit
	 * made, and closed without an update or a mount's sync) */
	if (ix->env && ix->unsynced && !ix->private_index)
		store_sync(ix);
	index_close_env(ix);
	if (ix->private_index && ix->path) {
		char p[PATH_MAX];
		env_remove_files(ix->path);
		snprintf(p, sizeof(p), "%s/lock", ix->path);
		unlink(p);
		snprintf(p, sizeof(p), "%s/" UNSYNCED, ix->path);
		unlink(p);
		snprintf(p, sizeof(p), "%s/" SERVING, ix->path);
		unlink(p);
		rmdir(ix->path);
	}
	index_serving(ix, 0);
	if (ix->lock_fd >= 0)
		close(ix->lock_fd);
	if (ix->archive_fd >= 0)
		close(ix->archive_fd);
	source_destroy(&ix->src);
	strbuf_release(&ix->walk_errors);
	strbuf_release(&ix->run_errors);
	pthread_mutex_destroy(&ix->err_lock);
	pthread_mutex_destroy(&ix->map_lock);
	pthread_cond_destroy(&ix->map_cond);
	free(ix->archive_real);
	free(ix->src_cache_dir);
	free(ix->path);
	free(ix->tags);
	free(ix->tags_note);
	free(ix);
}

const char *index_path(const struct index *ix) { return ix->path; }
void index_tags(const struct index *ix, const uint32_t **tags, size_t *n)
{
	*tags = ix->tags;
	*n = ix->ntags;
}
int index_archive_fd(const struct index *ix) { return ix->archive_fd; }
const struct source *index_source(const struct index *ix) { return &ix->src; }
const struct index_stats *index_stats(const struct index *ix) { return &ix->stats; }

/* ---- read side: one snapshot per thread and request (I6) ---- */

MDB_txn *store_rtxn(struct index *ix)
{
	struct rtxn *r = pthread_getspecific(ix->txn_key);
	if (r && r->txn) {
		if (!r->active) {
			if (gate_enter(ix))
				return NULL;
			if (mdb_txn_renew(r->txn)) {
				gate_leave(ix);
				return NULL;
			}
			r->active = 1;
		}
		return r->txn;
	}
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return NULL;
		r->ix = ix;
		if (pthread_setspecific(ix->txn_key, r)) {
			free(r);
			return NULL;
		}
	}
	if (gate_enter(ix))
		return NULL;
	if (mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &r->txn)) {
		r->txn = NULL;
		gate_leave(ix);
		return NULL;
	}
	r->active = 1;
	return r->txn;
}

void index_request_end(struct index *ix)
{
	if (!ix->txn_key_ok)
		return;
	struct rtxn *r = pthread_getspecific(ix->txn_key);
	if (r && r->txn && r->active) {
		mdb_txn_reset(r->txn);
		r->active = 0;
		gate_leave(ix);
	}
}

/* A snapshot keeps its place in the reader gate (S3) until freed. */
struct index_snap {
	MDB_txn *txn;
	struct index *ix;
};

struct index_snap *index_snap_take(struct index *ix)
{
	struct index_snap *s = malloc(sizeof(*s));
	if (!s || !store_rtxn(ix)) {
		free(s);
		return NULL;
	}
	struct rtxn *r = pthread_getspecific(ix->txn_key);
	s->txn = r->txn;
	s->ix = ix;
	r->txn = NULL;
	r->active = 0;
	return s;
}

uint64_t index_snap_id(const struct index_snap *s)
{
	return s ? (uint64_t)mdb_txn_id(s->txn) : 0;
}

void index_snap_free(struct index_snap *s)
{
	if (!s)
		return;
	mdb_txn_abort(s->txn);
	gate_leave(s->ix);
	free(s);
}

int index_node(struct index *ix, uint64_t id, struct node_view *nv)
{
	unsigned char kb[8];
	MDB_val k = { 8, kb }, d;
	MDB_txn *t = store_rtxn(ix);
	if (!t)
		return -EIO;
	be64_put(kb, id);
	int rc = mdb_get(t, ix->nodes, &k, &d);
	if (rc)
		return dfs_from_mdb(rc);
	if (d.mv_size < sizeof(struct node_rec))
		return DFS_EINDEX;
	nv->rec = d.mv_data;
	if (sizeof(struct node_rec) + (uint64_t)nv->rec->name_len +
	    nv->rec->path_len > d.mv_size)
		return DFS_EINDEX;
	/* pointers into the map: valid while this thread's txn lives (I6) */
	nv->name = (const char *)d.mv_data + sizeof(struct node_rec);
	nv->relpath = nv->name + nv->rec->name_len;
	return 0;
}

/* I3: an instance's files, in listing order (view.h V4: <instance>.<ext>) */
const struct index_group_file index_group_files[] = {
	{ KIND_DCM, "dcm" }, { KIND_JSON, "json" }, { KIND_NPY, "npy" },
	{ KIND_PNG, "png" }, { 0, NULL } };

int index_lookup(struct index *ix, uint64_t parent_id, const char *name,
		 uint64_t *ino)
{
	unsigned char kb[8 + NAME_BUF + 1];
	size_t nl = strlen(name);
	MDB_txn *t = store_rtxn(ix);
	if (!t)
		return -EIO;
	if (nl > NAME_MAX_BYTES)
		return -ENAMETOOLONG;
	be64_put(kb, parent_id);
	memcpy(kb + 8, name, nl);
	MDB_val k = { 8 + nl, kb };
	int rc = get_u64(t, ix->names, &k, ino);
	if (rc != -ENOENT)
		return rc;
	/* I3: <base>.<ext> of an instance's group record (base + NUL) */
	for (const struct index_group_file *f = index_group_files; f->ext; f++) {
		size_t el = strlen(f->ext);
		if (nl < el + 2 || name[nl - el - 1] != '.' || memcmp(name + nl - el, f->ext, el))
			continue;
		kb[8 + nl - el - 1] = 0;
		MDB_val gk = { 8 + nl - el, kb }, d;
		int g = mdb_get(t, ix->names, &gk, &d);
		if (g)
			return g == MDB_NOTFOUND ? -ENOENT : dfs_from_mdb(g);
		uint64_t gi;
		uint32_t mask;
		if (d.mv_size != 12)
			return DFS_EINDEX;
		memcpy(&gi, d.mv_data, 8);
		memcpy(&mask, (const char *)d.mv_data + 8, 4);
		if (ino_kind(gi) != KIND_GROUP || !(mask & (1u << f->kind)))
			return -ENOENT;
		*ino = ino_make(ino_id(gi), f->kind);
		return 0;
	}
	return -ENOENT;
}

int index_readdir(struct index *ix, uint64_t dir_id, uint64_t pos,
		  index_dirent_fn fn, void *ctx)
{
	unsigned char kb[12];
	MDB_cursor *c;
	MDB_txn *t = store_rtxn(ix);
	if (!t)
		return -EIO;
	/* I3: a position is a record's << 3 | a file's place in its group */
	if ((pos >> 3) > UINT32_MAX)
		return 0;
	be64_put(kb, dir_id);
	be32_put(kb + 8, (uint32_t)(pos >> 3));
	MDB_val k = { 12, kb }, d;
	int rc = mdb_cursor_open(t, ix->dirents, &c);
	if (rc)
		return dfs_from_mdb(rc);
	rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
	while (rc == 0) {
		if (k.mv_size != 12 || be64_get(k.mv_data) != dir_id)
			break;
		if (d.mv_size < 8) {
			rc = DFS_EINDEX;
			goto close_cursor;
		}
		uint64_t ino;
		memcpy(&ino, d.mv_data, 8);
		uint64_t p = be32_get((const unsigned char *)k.mv_data + 8);
		unsigned skip = p == pos >> 3 ? (unsigned)(pos & 7) : 0;
		if (ino_kind(ino) != KIND_GROUP) {
			if (!skip && fn(ctx, ino, (const char *)d.mv_data + 8, d.mv_size - 8,
					(p << 3) + 1))
				break;
		} else {
			uint32_t mask;
			char name[NAME_BUF + 16];
			size_t bl = d.mv_size - 12;
			if (d.mv_size < 12 || bl > NAME_BUF) {
				rc = DFS_EINDEX;
				goto close_cursor;
			}
			memcpy(&mask, (const char *)d.mv_data + 8, 4);
			memcpy(name, (const char *)d.mv_data + 12, bl);
			int stop = 0;
			/* (skip may be any 0..7: a directory's offset is the user's
			 * to set, lseek) */
			for (unsigned j = 0; index_group_files[j].ext && !stop; j++) {
				const struct index_group_file *f = &index_group_files[j];
				if (j < skip || !(mask & (1u << f->kind)))
					continue;
				size_t el = strlen(f->ext);
				name[bl] = '.';
				memcpy(name + bl + 1, f->ext, el);
				stop = fn(ctx, ino_make(ino_id(ino), f->kind), name, bl + 1 + el,
					  (p << 3 | j) + 1);
			}
			if (stop)
				break;
		}
		rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
	}
	rc = rc == MDB_NOTFOUND ? 0 : dfs_from_mdb(rc);
close_cursor:
	mdb_cursor_close(c);
	return rc;
}

int index_source_dir(struct index *ix, const char *relpath, size_t len, uint64_t *dir_id)
{
	size_t dl = len;
	while (dl && relpath[dl - 1] != '/')
		dl--;
	if (!dl) {
		*dir_id = ID_SOURCES;
		return 0;
	}
	dl--;   /* the directory's path, without its '/' */
	MDB_txn *t = store_rtxn(ix);
	char kb[PATH_MAX + 1];
	if (!t)
		return -EIO;
	if (dl + 1 > sizeof(kb))
		return -ENOENT;
	kb[0] = 'R';   /* tree.c src_dir_id: keys of sources/'s directories (I2) */
	memcpy(kb + 1, relpath, dl);
	MDB_val k = { dl + 1, kb }, d;
	int rc = mdb_get(t, ix->keys, &k, &d);
	if (rc || d.mv_size != 8)
		return rc == MDB_NOTFOUND || !rc ? -ENOENT : dfs_from_mdb(rc);
	memcpy(dir_id, d.mv_data, 8);
	return 0;
}

int index_file_record(struct index *ix, const char *relpath, size_t len,
		      const void **val, size_t *vlen)
{
	MDB_txn *t = store_rtxn(ix);
	if (!t)
		return -EIO;
	MDB_val k = { len, (void *)relpath }, d;
	int rc = mdb_get(t, ix->files, &k, &d);
	if (rc)
		return dfs_from_mdb(rc);
	*val = d.mv_data;
	*vlen = d.mv_size;
	return 0;
}

int index_files_scan(struct index *ix, index_file_fn fn, void *ctx)
{
	MDB_cursor *c;
	MDB_txn *t = store_rtxn(ix);
	if (!t)
		return -EIO;
	MDB_val k, d;
	int rc = mdb_cursor_open(t, ix->files, &c);
	if (rc)
		return dfs_from_mdb(rc);
	rc = mdb_cursor_get(c, &k, &d, MDB_FIRST);
	while (rc == 0) {
		if (fn(ctx, k.mv_data, k.mv_size, d.mv_data, d.mv_size))
			break;
		rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
	}
	rc = rc == MDB_NOTFOUND || rc == 0 ? 0 : dfs_from_mdb(rc);
	mdb_cursor_close(c);
	return rc;
}

/* ---- the cache of indexes (index_cache_list) ---- */

/* The names an index directory holds (store_dir, anon.key, a server's
 * cache/): a directory holding anything else is never removed. */
static int known_entry(const char *n)
{
	return !strcmp(n, "data.mdb") || !strcmp(n, "lock.mdb") || !strcmp(n, "lock") ||
	       !strcmp(n, "anon.key") || !strcmp(n, "cache") || !strcmp(n, UNSYNCED) ||
	       !strcmp(n, SERVING);
}

/* rm -r of dir (files and directories owned by us; no symlink followed) */
static int remove_tree(int parent, const char *name)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return unlinkat(parent, name, 0) ? -errno : 0;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && !rc)
			rc = remove_tree(dirfd(d), e->d_name);
	closedir(d);
	if (!rc && unlinkat(parent, name, AT_REMOVEDIR))
		rc = -errno;
	return rc;
}

/* bytes under dir (allocated blocks) */
static uint64_t tree_bytes(int parent, const char *name)
{
	struct stat st;
	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW))
		return 0;
	uint64_t b = (uint64_t)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode))
		return b;
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return b;
	}
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			b += tree_bytes(dirfd(d), e->d_name);
	closedir(d);
	return b;
}

/* meta "archive" and "format" of the index in dir (read-only), "?" when
 * it cannot be read */
static void index_meta(const char *dir, char *archive, size_t alen, char *format, size_t flen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta;
	snprintf(archive, alen, "?");
	snprintf(format, flen, "?");
	if (data_size(dir) == 0 || mdb_env_create(&env))
		return;
	mdb_env_set_maxdbs(env, 12);
	mdb_env_set_mapsize(env, round_mib(data_size(dir) + ((size_t)1 << 20)));
	if (mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0600) == 0 &&
	    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
		MDB_val k = { 7, "archive" }, d;
		if (mdb_dbi_open(txn, "meta", 0, &meta) == 0) {
			if (mdb_get(txn, meta, &k, &d) == 0)
				snprintf(archive, alen, "%.*s", (int)d.mv_size, (char *)d.mv_data);
			k.mv_size = 6;
			k.mv_data = "format";
			if (mdb_get(txn, meta, &k, &d) == 0)
				snprintf(format, flen, "%.*s", (int)d.mv_size, (char *)d.mv_data);
		}
		mdb_txn_abort(txn);
	}
	mdb_env_close(env);
}

int index_cache_list(FILE *out, int prune, long older_days, char *msg, size_t msglen)
{
	char root[PATH_MAX], dir[PATH_MAX + 16];
	int n = cache_root(root, sizeof(root), msg, msglen);
	if (n < 0)
		return -errno;
	snprintf(dir, sizeof(dir), "%s/dicomfs", root);
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT) {
			fprintf(out, "# no index under %s\n", dir);
			return 0;
		}
		int e = errno;
		snprintf(msg, msglen, "cache directory '%s': %s", dir, strerror(e));
		return -e;
	}
	fprintf(out, "# %s %s\n", prune ? "pruning" : "indexes under", dir);
	fprintf(out, "index\tarchive\tsize_mib\tlast_used\tformat\tarchive_exists\tin_use%s\n",
		prune ? "\taction" : "");
	time_t now = time(NULL);
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d))) {
		char path[PATH_MAX * 2], p[PATH_MAX * 2 + 16], archive[PATH_MAX], format[64];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
			continue;
		/* in use: a mount holds "lock" (shared) or an update (exclusive), I5 */
		snprintf(p, sizeof(p), "%s/lock", path);
		int lfd = open(p, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		int in_use = lfd >= 0 && flock(lfd, LOCK_EX | LOCK_NB) != 0;
		/* last used: "lock" is touched by every mount (lock_take), data.mdb
		 * by every write; lock.mdb changes when anyone (this listing too)
		 * opens the environment, the directory when a file is added: not a
		 * use (the directory's own mtime only when neither file exists) */
		time_t used = 0;
		const char *names[] = { "lock", "data.mdb" };
		for (size_t i = 0; i < 2; i++) {
			struct stat fs;
			snprintf(p, sizeof(p), "%s/%s", path, names[i]);
			if (stat(p, &fs) == 0 && fs.st_mtime > used)
				used = fs.st_mtime;
		}
		if (!used)
			used = st.st_mtime;
		index_meta(path, archive, sizeof(archive), format, sizeof(format));
		int is_url = !strncasecmp(archive, "http://", 7) || !strncasecmp(archive, "https://", 8);
		const char *exists = is_url || !strcmp(archive, "?") ? "unknown" :
				     stat(archive, &st) == 0 && S_ISDIR(st.st_mode) ? "yes" : "no";
		char when[32];
		struct tm tm;
		localtime_r(&used, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
		double mib = tree_bytes(AT_FDCWD, path) / 1048576.0;
		const char *action = "";
		if (prune) {
			int old = older_days >= 0 && now - used > older_days * 86400L;
			int gone = !strcmp(exists, "no");
			int foreign = 0;
			DIR *id = opendir(path);
			struct dirent *f;
			while (id && (f = readdir(id)))
				if (f->d_name[0] != '.' || (strcmp(f->d_name, ".") && strcmp(f->d_name, "..")))
					foreign |= !known_entry(f->d_name);
			if (id)
				closedir(id);
			if (!gone && !old)
				action = "kept";
			else if (in_use)
				action = "kept (in use by a mount)";
			else if (foreign)
				action = "kept (holds files dicomfs did not make)";
			else if (remove_tree(AT_FDCWD, path) == 0)
				action = gone ? "removed (archive gone)" : "removed (unused too long)";
			else {
				action = "kept (cannot remove it)";
				rc = -EIO;
			}
		}
		fprintf(out, "%s\t%s\t%.1f\t%s\t%s\t%s\t%s%s%s\n", path, archive, mib, when,
			format, exists, in_use ? "yes" : "no", prune ? "\t" : "", action);
		if (lfd >= 0)
			close(lfd);
	}
	closedir(d);
	if (rc)
		snprintf(msg, msglen, "some indexes could not be removed");
	return rc;
}


/* ---- the page cache ahead of the writer (store.h S4) ---- */

#define WARM_CHUNK (64 << 10)
#define WARM_MIN ((size_t)4 << 20)   /* below: nothing worth a thread */

struct store_warm {
	pthread_t th;
	int fd;                       /* LMDB's data file (not ours to close) */
	off_t from, len;              /* the range read: from the end of the
				       * pages of the last commit */
	pthread_mutex_t mu;           /* with cv: go and stop */
	pthread_cond_t cv;
	int go, stop;                 /* under mu; both also read atomically */
	size_t done;                  /* bytes read: the thread's until joined */
	int all;                      /* DICOMFS_STORE_WARM=all: read to the end */
};

static void *warm_main(void *arg)
{
	struct store_warm *w = arg;
	char *buf = malloc(WARM_CHUNK);
	if (!buf || fallocate(w->fd, 0, w->from, w->len)) {
		free(buf);
		return NULL;
	}
	for (off_t o = w->from; o < w->from + w->len; o += WARM_CHUNK) {
		if (!__atomic_load_n(&w->go, __ATOMIC_ACQUIRE)) {
			pthread_mutex_lock(&w->mu);
			while (!w->go && !w->stop)
				pthread_cond_wait(&w->cv, &w->mu);
			pthread_mutex_unlock(&w->mu);
		}
		ssize_t got;
		if (__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE) ||
		    (got = pread(w->fd, buf, WARM_CHUNK, o)) <= 0)
			break;
		w->done += (size_t)got;
	}
	free(buf);
	return NULL;
}

void store_warm_start(struct index *ix, size_t bytes)
{
	struct store_warm *w;
	struct statvfs vfs;
	MDB_envinfo info;
	MDB_stat ms;
	int fd;
	const char *knob = getenv("DICOMFS_STORE_WARM");
	if (knob && strcmp(knob, "all") == 0 && bytes < WARM_MIN)
		bytes = WARM_MIN;   /* tests: a small archive warmed too */
	if (ix->warm || !ix->env || bytes < WARM_MIN || mdb_env_get_fd(ix->env, &fd) ||
	    mdb_env_info(ix->env, &info) || mdb_env_stat(ix->env, &ms) || fstatvfs(fd, &vfs) ||
	    (unsigned long long)vfs.f_bavail * vfs.f_frsize / 4 < bytes)
		return;
	if (!(w = calloc(1, sizeof(*w))))
		return;
	w->fd = fd;
	w->all = knob && strcmp(knob, "all") == 0;
	w->from = (off_t)(info.me_last_pgno + 1) * ms.ms_psize;   /* the last commit's end */
	w->len = (off_t)bytes;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	if (pthread_create(&w->th, NULL, warm_main, w)) {
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
		free(w);
		return;
	}
	ix->warm = w;
}

static void warm_signal(struct store_warm *w, int stop, int go)
{
	pthread_mutex_lock(&w->mu);
	if (stop)
		__atomic_store_n(&w->stop, 1, __ATOMIC_RELEASE);
	else
		__atomic_store_n(&w->go, go, __ATOMIC_RELEASE);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void store_warm_go(struct store_warm *w)
{
	if (w)
		warm_signal(w, 0, 1);
}

void store_warm_pause(struct store_warm *w)
{
	if (w)
		warm_signal(w, 0, 0);
}

void store_warm_end(struct index *ix, size_t *ahead, size_t *back)
{
	struct store_warm *w = ix->warm;
	MDB_envinfo info;
	MDB_stat ms;
	struct stat st;
	size_t dummy;
	if (!ahead)
		ahead = &dummy;
	if (!back)
		back = &dummy;
	*ahead = *back = 0;
	if (!w)
		return;
	warm_signal(w, !w->all, 1);   /* tests: the whole range, whatever the timing */
	pthread_join(w->th, NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	ix->warm = NULL;
	*ahead = w->done;
	if (ix->env && !mdb_env_info(ix->env, &info) && !mdb_env_stat(ix->env, &ms) &&
	    !fstat(w->fd, &st)) {
		off_t used = (off_t)(info.me_last_pgno + 1) * ms.ms_psize;
		if (st.st_size > used) {
			if (ftruncate(w->fd, used))
				dfs_log("index '%s': cannot give back %lld bytes beyond its pages: %s",
					ix->path, (long long)(st.st_size - used), strerror(errno));
			else
				*back = (size_t)(st.st_size - used);
		}
	}
	free(w);
}
