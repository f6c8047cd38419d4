/*
 * access.c - the access model of access.h (A1-A5).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

#include "access.h"
#include "log.h"
#include "record.h"
#include "strbuf.h"

#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif

#define CACHE_BITS 16
#define NLOCKS 64

struct aent {
	uint64_t id;       /* node id + 1; 0: empty */
	uint64_t gh;
	uint32_t uid;
	int32_t t;         /* monotonic seconds when decided */
	int ok;
};

struct dfs_access {
	int uniform;
	int can_switch;        /* A5 */
	uid_t fsuid0;
	gid_t fsgid0;
	int ngroups0;
	gid_t groups0[ACCESS_MAX_GROUPS];
	pthread_mutex_t locks[NLOCKS];
	struct aent *tab;      /* locks[slot % NLOCKS] */
};

static int32_t now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int32_t)ts.tv_sec;
}

/* ---- mount time: uniform or mixed (A3) ---- */

static int has_acl(int afd, const char *rel)
{
	char p[PATH_MAX + 32];
	if (rel[0])
		snprintf(p, sizeof(p), "/proc/self/fd/%d/%s", afd, rel);
	else
		snprintf(p, sizeof(p), "/proc/self/fd/%d/.", afd);
	ssize_t n = lgetxattr(p, "system.posix_acl_access", NULL, 0);
	return n >= 0 || (errno != ENODATA && errno != ENOTSUP);
}

/* readable by others, directory searchable, no ACL */
static int dir_public(int afd, const char *rel)
{
	struct stat st;
	if (rel[0] ? fstatat(afd, rel, &st, 0) : fstat(afd, &st))
		return 0;
	return (st.st_mode & 0005) == 0005 && !has_acl(afd, rel);
}

struct uscan {
	int afd;
	int mixed;
	char last[PATH_MAX];   /* the last directory found public */
	size_t lastlen;
	uint64_t files;
};

static int uscan_file(void *ctx, const char *rel, size_t len, const void *val,
		      size_t vlen)
{
	struct uscan *u = ctx;
	struct rec_head h;
	char p[PATH_MAX];
	if (vlen < sizeof(h) || len >= sizeof(p))
		return 0;
	memcpy(&h, val, sizeof(h));
	if (h.status != REC_OK)
		return 0;
	u->files++;
	memcpy(p, rel, len);
	p[len] = 0;
	if (!(h.mode & 0004) || has_acl(u->afd, p)) {
		u->mixed = 1;
		return 1;
	}
	/* the directories on the path not yet seen (relpath order keeps a
	 * directory's files together) */
	char *slash = strrchr(p, '/');
	size_t dl = slash ? (size_t)(slash - p) : 0;
	if (dl == u->lastlen && memcmp(p, u->last, dl) == 0)
		return 0;
	for (size_t i = 0; i <= dl; i++) {
		if (i < dl && p[i] != '/')
			continue;
		/* prefix p[0, i) */
		if (i <= u->lastlen && memcmp(p, u->last, i) == 0 &&
		    (i == u->lastlen || u->last[i] == '/'))
			continue;
		char c = p[i];
		p[i] = 0;
		int ok = dir_public(u->afd, p);
		p[i] = c;
		if (!ok) {
			u->mixed = 1;
			return 1;
		}
	}
	memcpy(u->last, p, dl);
	u->last[dl] = 0;
	u->lastlen = dl;
	return 0;
}

int dfs_access_shared_opts(const struct fuse_args *args)
{
	for (int i = 0; i < args->argc; i++) {
		const char *p = args->argv[i];
		if (strncmp(p, "-o", 2) == 0)
			p += 2;
		/* comma-separated options (a "\," is no separator: close enough,
		 * a false match only costs speed) */
		for (const char *t = p; t; t = strchr(t, ',') ? strchr(t, ',') + 1 : NULL)
			if (strncmp(t, "allow_other", 11) == 0 && (t[11] == ',' || !t[11]))
				return 1;
	}
	return 0;
}

int dfs_access_init(struct dfs *fs)
{
	struct dfs_access *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	struct uscan u = { .afd = index_archive_fd(fs->ix) };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!fs->allow_other)
		;   /* A6 */
	else if (!fs->src->ops->permissions)
		;   /* a server: no per-file permissions, uniform (A3, source.h R9) */
	else if (!dir_public(u.afd, ""))
		u.mixed = 1;
	else if (index_files_scan(fs->ix, uscan_file, &u) < 0)
		u.mixed = 1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	a->uniform = !u.mixed;
	a->fsuid0 = (uid_t)syscall(SYS_setfsuid, -1);
	a->fsgid0 = (gid_t)syscall(SYS_setfsgid, -1);
	a->ngroups0 = getgroups(ACCESS_MAX_GROUPS, a->groups0);
	a->can_switch = geteuid() == 0 && a->ngroups0 >= 0;
	for (int i = 0; i < NLOCKS; i++)
		pthread_mutex_init(&a->locks[i], NULL);
	if (!a->uniform) {
		a->tab = calloc((size_t)1 << CACHE_BITS, sizeof(*a->tab));
		if (!a->tab) {
			free(a);
			return -ENOMEM;
		}
		/* the kernel shares dentries, attributes, readdir and symlink
		 * caches between users (A3) */
		fs->timeout = 0;
		dfs_log("access: mixed archive: checking every request of other users, "
			"kernel caches off (%.3f s)%s",
			(double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
			a->can_switch ? "" : "; not root: other users see nothing");
	}
	fs->access = a;
	return 0;
}

void dfs_access_fini(struct dfs *fs)
{
	struct dfs_access *a = fs->access;
	if (!a)
		return;
	for (int i = 0; i < NLOCKS; i++)
		pthread_mutex_destroy(&a->locks[i]);
	free(a->tab);
	free(a);
	fs->access = NULL;
}

int dfs_access_uniform(const struct dfs *fs)
{
	return !fs->access || fs->access->uniform;
}

/* ---- the caller ---- */

void dfs_caller(struct dfs *fs, fuse_req_t req, struct dfs_caller *c)
{
	const struct fuse_ctx *x = fuse_req_ctx(req);
	c->uid = x->uid;
	c->gid = x->gid;
	c->owner = x->uid == 0 || x->uid == fs->uid;
	c->all = c->owner || dfs_access_uniform(fs);
	c->ngroups = -1;
	c->gh = 0;
	c->req = req;
}

/* the supplementary groups, read on first need; 0 or -1 (deny) */
static int caller_groups(struct dfs_caller *c)
{
	if (c->ngroups >= 0)
		return 0;
	int n = fuse_req_getgroups(c->req, ACCESS_MAX_GROUPS, c->groups);
	if (n < 0 || n > ACCESS_MAX_GROUPS)
		return -1;
	c->ngroups = n;
	uint64_t h = fnv1a(FNV1A_INIT, &c->uid, sizeof(c->uid));
	h = fnv1a(h, &c->gid, sizeof(c->gid));
	c->gh = fnv1a(h, c->groups, (size_t)n * sizeof(gid_t));
	return 0;
}

/* ---- the check (A1) ---- */

static int check_source(struct dfs *fs, struct dfs_caller *c, const char *rel, size_t len)
{
	struct dfs_access *a = fs->access;
	char p[PATH_MAX];
	int afd = index_archive_fd(fs->ix);
	if (!a->can_switch || len >= sizeof(p))
		return 0;
	memcpy(p, rel, len);
	p[len] = 0;
	if (syscall(SYS_setgroups, c->ngroups, c->groups))
		return 0;
	int ok = 0;
	syscall(SYS_setfsgid, c->gid);
	syscall(SYS_setfsuid, c->uid);
	if ((uid_t)syscall(SYS_setfsuid, -1) == c->uid &&
	    (gid_t)syscall(SYS_setfsgid, -1) == c->gid)
		ok = syscall(SYS_faccessat2, afd, "", X_OK, AT_EACCESS | AT_EMPTY_PATH) == 0 &&
		     syscall(SYS_faccessat2, afd, p, R_OK, AT_EACCESS) == 0;
	syscall(SYS_setfsuid, a->fsuid0);
	syscall(SYS_setfsgid, a->fsgid0);
	if (syscall(SYS_setgroups, a->ngroups0, a->groups0) ||
	    (uid_t)syscall(SYS_setfsuid, -1) != a->fsuid0 ||
	    (gid_t)syscall(SYS_setfsgid, -1) != a->fsgid0) {
		/* never go on with a caller's credentials */
		dfs_log("access: cannot restore the daemon's credentials");
		abort();
	}
	return ok;
}

static struct aent *slot(struct dfs_access *a, const struct dfs_caller *c, uint64_t id,
			 pthread_mutex_t **lk)
{
	uint64_t h = (c->gh ^ (id * 0x9E3779B97F4A7C15ULL)) * 0xff51afd7ed558ccdULL;
	size_t i = (size_t)(h >> (64 - CACHE_BITS));
	*lk = &a->locks[i % NLOCKS];
	return &a->tab[i];
}

static int cache_get(struct dfs_access *a, const struct dfs_caller *c, uint64_t id)
{
	pthread_mutex_t *lk;
	struct aent *e = slot(a, c, id, &lk);
	int r = -1;
	pthread_mutex_lock(lk);
	if (e->id == id + 1 && e->gh == c->gh && e->uid == c->uid &&
	    now_s() - e->t < ACCESS_TTL)
		r = e->ok;
	pthread_mutex_unlock(lk);
	return r;
}

static void cache_put(struct dfs_access *a, const struct dfs_caller *c, uint64_t id, int ok)
{
	pthread_mutex_t *lk;
	struct aent *e = slot(a, c, id, &lk);
	pthread_mutex_lock(lk);
	*e = (struct aent){ id + 1, c->gh, c->uid, now_s(), ok };
	pthread_mutex_unlock(lk);
}

static int node_ok(struct dfs *fs, struct dfs_caller *c, uint64_t id, int depth);

/* every instance below directory id readable (A2) */
static int dir_ok(struct dfs *fs, struct dfs_caller *c, uint64_t id, int depth)
{
	struct dfs_ids w;
	if (depth > 8)
		return 0;
	/* level files carry the directory's id and the other files of an
	 * instance its id: the subdirectories and the .dcm list each once */
	if (dfs_children(fs, id, KBIT(KIND_DIR) | KBIT(KIND_DCM), &w))
		return 0;
	int ok = 1;
	for (size_t i = 0; i < w.n && ok; i++)
		ok = node_ok(fs, c, w.v[i], depth + 1);
	free(w.v);
	return ok;
}

static int node_ok(struct dfs *fs, struct dfs_caller *c, uint64_t id, int depth)
{
	struct dfs_access *a = fs->access;
	struct node_view nv;
	if (caller_groups(c))
		return 0;
	int r = cache_get(a, c, id);
	if (r >= 0)
		return r;
	if (index_node(fs->ix, id, &nv))
		return 0;
	switch (nv.rec->type) {
	case NODE_INSTANCE:
		r = check_source(fs, c, nv.relpath, nv.rec->path_len);
		break;
	case NODE_PATIENT: case NODE_STUDY: case NODE_SERIES:
		r = dir_ok(fs, c, id, depth);
		break;
	default:
		return 1;   /* the root and the views' top directories */
	}
	cache_put(a, c, id, r);
	return r;
}

int dfs_access_ino(struct dfs *fs, struct dfs_caller *c, uint64_t ino)
{
	unsigned k = ino_kind(ino);
	if (k == KIND_ERRORS)
		return c->owner;
	if (c->all || k == KIND_STATUS)
		return 1;
	if (dfs_view_of(k))
		return dfs_access_query(fs, c);
	return node_ok(fs, c, ino_id(ino), 0);
}

int dfs_access_query(struct dfs *fs, struct dfs_caller *c)
{
	if (c->all)
		return 1;
	if (caller_groups(c))
		return 0;
	/* keyed apart from the node ids (patients/ itself is visible) */
	const uint64_t key = UINT64_MAX - 1;
	int r = cache_get(fs->access, c, key);
	if (r < 0) {
		r = dir_ok(fs, c, ID_PATIENTS, 0);
		cache_put(fs->access, c, key, r);
	}
	return r;
}
