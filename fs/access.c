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
#include "view.h"

#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif

#define CACHE_BITS 16
#define NLOCKS 64
/* A7: the uniform archive is checked again every RESCAN_MIN seconds or
 * RESCAN_FACTOR times as long as the last check took, whichever is longer
 * (at most 1/RESCAN_FACTOR of a core) */
#define RESCAN_MIN 10
#define RESCAN_FACTOR 20

enum { ST_NONE = 0, ST_PART = 1, ST_FULL = 2 };

/* what caller gh/uid may see of node id - 1 (A2) */
struct aent {
	uint64_t id;       /* node id + 1; 0: empty */
	uint64_t gh;
	uint32_t uid;
	int32_t t;         /* monotonic seconds when decided */
	uint32_t gen;      /* dfs_access.gen when decided */
	int32_t state;     /* ST_*: instances below readable: none, some, all */
	uint32_t vsub;     /* a directory: its subdirectories the caller sees */
	int64_t vmtime;    /* newest instance the caller can read below */
};

struct dfs_access {
	int uniform;           /* atomic: 1 until found mixed (A3, A7) */
	uint32_t gen;          /* atomic: bumped when the archive changed (A4) */
	int can_switch;        /* A5 */
	uid_t fsuid0;
	gid_t fsgid0;
	int ngroups0;
	gid_t groups0[ACCESS_MAX_GROUPS];
	pthread_mutex_t locks[NLOCKS];
	struct aent *tab;      /* locks[slot % NLOCKS]; NULL without allow_other */
	/* the recheck thread (A7) */
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	int wstop;             /* wlock */
	int wnow;              /* wlock: dfs_access_changed asked */
	int threaded;
	pthread_t thread;
	/* A9: a caller in no group whose uid owns nothing: "anyone" */
	struct dfs_caller anyone;
};

static int32_t now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int32_t)ts.tv_sec;
}

/* ---- uniform or mixed (A3, A7) ---- */

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

/* readable by others (a directory: and searchable), no ACL */
static int path_public(int afd, const char *rel, mode_t need)
{
	struct stat st;
	if (rel[0] ? fstatat(afd, rel, &st, AT_SYMLINK_NOFOLLOW) : fstat(afd, &st))
		return 0;
	return (st.st_mode & need) == need && !has_acl(afd, rel);
}

struct uscan {
	int afd;
	int fresh;             /* stat each file now (A7), not the index's mode */
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
	if (u->fresh ? !path_public(u->afd, p, 0004) : (!(h.mode & 0004) || has_acl(u->afd, p))) {
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
		int ok = path_public(u->afd, p, 0005);
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

/* 1 when the archive is mixed; *secs: how long the check took */
static int archive_mixed(struct dfs *fs, int fresh, double *secs)
{
	struct uscan u = { .afd = index_archive_fd(fs->ix), .fresh = fresh };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!fs->src->ops->permissions)
		;   /* a server: no per-file permissions, uniform (A3, source.h R9) */
	else if (!path_public(u.afd, "", 0005))
		u.mixed = 1;
	else if (index_files_scan(fs->ix, uscan_file, &u) < 0)
		u.mixed = 1;
	index_request_end(fs->ix);   /* no snapshot kept between checks (I6) */
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	return u.mixed;
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

/* From now on the archive is mixed (A3, A7): checks on, kernel caches off
 * for new replies, and the cached tree dropped (d_invalidate of each top
 * directory prunes what the kernel cached below it). Never on a FUSE
 * thread: the notifications wait for the kernel's directory locks. */
static void make_mixed(struct dfs *fs, double secs, const char *why)
{
	struct dfs_access *a = fs->access;
	__atomic_store_n(&a->uniform, 0, __ATOMIC_SEQ_CST);
	dfs_log("access: mixed archive%s: checking every request of other users, "
		"kernel caches off (%.3f s)%s", why, secs,
		a->can_switch ? "" : "; not root: other users see nothing");
	if (!fs->se)
		return;
	for (size_t i = 0; view_registry[i]; i++) {
		const char *n = view_registry[i]->name;
		fuse_lowlevel_notify_inval_entry(fs->se, FUSE_ROOT_ID, n, strlen(n));
	}
	fuse_lowlevel_notify_inval_inode(fs->se, FUSE_ROOT_ID, 0, 0);
}

/* A7: while uniform, check again from time to time or when told */
static void *recheck_main(void *arg)
{
	struct dfs *fs = arg;
	struct dfs_access *a = fs->access;
	double last = 0;
	pthread_mutex_lock(&a->wlock);
	while (!a->wstop && __atomic_load_n(&a->uniform, __ATOMIC_SEQ_CST)) {
		struct timespec dl;
		double wait = last * RESCAN_FACTOR > RESCAN_MIN ? last * RESCAN_FACTOR : RESCAN_MIN;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += (time_t)wait;
		while (!a->wstop && !a->wnow &&
		       pthread_cond_timedwait(&a->wcond, &a->wlock, &dl) == 0)
			;
		if (a->wstop)
			break;
		a->wnow = 0;
		pthread_mutex_unlock(&a->wlock);
		if (archive_mixed(fs, 1, &last))
			make_mixed(fs, last, " (changed while mounted)");
		pthread_mutex_lock(&a->wlock);
	}
	pthread_mutex_unlock(&a->wlock);
	return NULL;
}

int dfs_access_init(struct dfs *fs)
{
	struct dfs_access *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	double secs = 0;
	int mixed = fs->allow_other && archive_mixed(fs, 0, &secs);   /* A6 */
	a->uniform = 1;
	a->fsuid0 = (uid_t)syscall(SYS_setfsuid, -1);
	a->fsgid0 = (gid_t)syscall(SYS_setfsgid, -1);
	a->ngroups0 = getgroups(ACCESS_MAX_GROUPS, a->groups0);
	a->can_switch = geteuid() == 0 && a->ngroups0 >= 0;
	for (int i = 0; i < NLOCKS; i++)
		pthread_mutex_init(&a->locks[i], NULL);
	pthread_mutex_init(&a->wlock, NULL);
	pthread_cond_init(&a->wcond, NULL);
	a->anyone.uid = (uid_t)-2;
	a->anyone.gid = (gid_t)-2;
	a->anyone.ngroups = 0;
	a->anyone.anyone = 1;
	a->anyone.gh = fnv1a(fnv1a(FNV1A_INIT, &a->anyone.uid, sizeof(uid_t)),
			     &a->anyone.gid, sizeof(gid_t));
	fs->access = a;
	if (!fs->allow_other)
		return 0;
	a->tab = calloc((size_t)1 << CACHE_BITS, sizeof(*a->tab));
	if (!a->tab) {
		dfs_access_fini(fs);
		return -ENOMEM;
	}
	if (mixed) {
		make_mixed(fs, secs, "");
		return 0;
	}
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_destroy(&a->wcond);
	pthread_cond_init(&a->wcond, &ca);
	pthread_condattr_destroy(&ca);
	a->threaded = pthread_create(&a->thread, NULL, recheck_main, fs) == 0;
	if (!a->threaded)
		make_mixed(fs, secs, " (cannot watch for changes)");
	return 0;
}

void dfs_access_changed(struct dfs *fs)
{
	struct dfs_access *a = fs->access;
	if (!a)
		return;
	__atomic_add_fetch(&a->gen, 1, __ATOMIC_RELEASE);   /* A4: answers anew */
	if (!a->threaded)
		return;
	pthread_mutex_lock(&a->wlock);
	a->wnow = 1;
	pthread_cond_signal(&a->wcond);
	pthread_mutex_unlock(&a->wlock);
}

void dfs_access_fini(struct dfs *fs)
{
	struct dfs_access *a = fs->access;
	if (!a)
		return;
	if (a->threaded) {
		pthread_mutex_lock(&a->wlock);
		a->wstop = 1;
		pthread_cond_signal(&a->wcond);
		pthread_mutex_unlock(&a->wlock);
		pthread_join(a->thread, NULL);
	}
	for (int i = 0; i < NLOCKS; i++)
		pthread_mutex_destroy(&a->locks[i]);
	pthread_mutex_destroy(&a->wlock);
	pthread_cond_destroy(&a->wcond);
	free(a->tab);
	free(a);
	fs->access = NULL;
}

int dfs_access_uniform(const struct dfs *fs)
{
	return !fs->access || __atomic_load_n(&fs->access->uniform, __ATOMIC_SEQ_CST);
}

double dfs_timeout(const struct dfs *fs)
{
	return dfs_access_uniform(fs) ? fs->timeout : 0;
}

/* ---- the caller ---- */

void dfs_caller(struct dfs *fs, fuse_req_t req, struct dfs_caller *c)
{
	const struct fuse_ctx *x = fuse_req_ctx(req);
	c->uid = x->uid;
	c->gid = x->gid;
	c->owner = x->uid == 0 || x->uid == fs->uid;
	c->all = c->owner || dfs_access_uniform(fs);
	c->anyone = 0;
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

/* A9: the source and every directory from the archive down to it readable
 * (searchable) by others, none with an ACL (a named user may be denied) */
static int anyone_reads(int afd, char *p)
{
	if (!path_public(afd, "", 0001) || !path_public(afd, p, 0004))
		return 0;
	for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
		*s = 0;
		int ok = path_public(afd, p, 0001);
		*s = '/';
		if (!ok)
			return 0;
	}
	return 1;
}

static int check_source(struct dfs *fs, struct dfs_caller *c, const char *rel, size_t len)
{
	struct dfs_access *a = fs->access;
	char p[PATH_MAX];
	int afd = index_archive_fd(fs->ix);
	if (!a->can_switch || len >= sizeof(p))
		return 0;
	memcpy(p, rel, len);
	p[len] = 0;
	if (c->anyone)
		return anyone_reads(afd, p);
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

static int cache_get(struct dfs_access *a, const struct dfs_caller *c, uint64_t id,
		     struct aent *out)
{
	pthread_mutex_t *lk;
	struct aent *e = slot(a, c, id, &lk);
	int r = 0;
	pthread_mutex_lock(lk);
	if (e->id == id + 1 && e->gh == c->gh && e->uid == c->uid &&
	    now_s() - e->t < ACCESS_TTL &&
	    e->gen == __atomic_load_n(&a->gen, __ATOMIC_ACQUIRE)) {
		*out = *e;
		r = 1;
	}
	pthread_mutex_unlock(lk);
	return r;
}

static void cache_put(struct dfs_access *a, const struct dfs_caller *c, uint64_t id,
		      struct aent *v)
{
	pthread_mutex_t *lk;
	struct aent *e = slot(a, c, id, &lk);
	v->id = id + 1;
	v->gh = c->gh;
	v->uid = c->uid;
	v->t = now_s();
	v->gen = __atomic_load_n(&a->gen, __ATOMIC_ACQUIRE);
	pthread_mutex_lock(lk);
	*e = *v;
	pthread_mutex_unlock(lk);
}

static int is_dir_type(unsigned t)
{
	return t == NODE_PATIENT || t == NODE_STUDY || t == NODE_SERIES;
}

static int node_state(struct dfs *fs, struct dfs_caller *c, uint64_t id, int depth,
		      struct aent *out);

/* A2: a directory's name is seen by who can read the instances it comes
 * from (node_rec.name_src), or all of its instances */
static int dir_visible(struct dfs *fs, struct dfs_caller *c, const struct node_view *nv,
		       const struct aent *st, int depth)
{
	if (st->state == ST_FULL)
		return 1;
	if (st->state == ST_NONE)
		return 0;
	for (int i = 0; i < 2; i++) {
		struct aent s;
		uint64_t src = nv->rec->name_src[i];
		if (src && (node_state(fs, c, src, depth + 1, &s) || s.state != ST_FULL))
			return 0;
	}
	return 1;
}

/* the instances below directory id (A2): none, some or all readable */
static int dir_state(struct dfs *fs, struct dfs_caller *c, uint64_t id, int depth,
		     struct aent *out)
{
	struct dfs_ids w;
	if (depth > 8)
		return -ELOOP;
	/* level files carry the directory's id and the other files of an
	 * instance its id: the subdirectories and the .dcm list each once
	 * (sources/: the source files) */
	int rc = dfs_children(fs, id, KBIT(KIND_DIR) | KBIT(KIND_DCM) | KBIT(KIND_SOURCE), &w);
	if (rc)
		return rc;
	int any = 0, all = 1;
	for (size_t i = 0; i < w.n && !rc; i++) {
		struct aent s;
		struct node_view nv;
		uint64_t cid = w.v[i];
		if ((rc = node_state(fs, c, cid, depth + 1, &s)))
			break;
		any |= s.state != ST_NONE;
		all &= s.state == ST_FULL;
		if (s.state != ST_NONE && s.vmtime > out->vmtime)
			out->vmtime = s.vmtime;
		if (s.state != ST_NONE && !index_node(fs->ix, cid, &nv) &&
		    is_dir_type(nv.rec->type) && dir_visible(fs, c, &nv, &s, depth + 1))
			out->vsub++;
	}
	free(w.v);
	out->state = !any ? ST_NONE : all ? ST_FULL : ST_PART;
	return rc;
}

static int node_state(struct dfs *fs, struct dfs_caller *c, uint64_t id, int depth,
		      struct aent *out)
{
	struct dfs_access *a = fs->access;
	struct node_view nv;
	int rc;
	memset(out, 0, sizeof(*out));
	if (caller_groups(c))
		return -EACCES;
	if (cache_get(a, c, id, out))
		return 0;
	if ((rc = index_node(fs->ix, id, &nv)))
		return rc;
	if (nv.rec->type == NODE_INSTANCE) {
		out->state = check_source(fs, c, nv.relpath, nv.rec->path_len) ? ST_FULL : ST_NONE;
		out->vmtime = nv.rec->mtime_ns;
	} else if (is_dir_type(nv.rec->type)) {
		if ((rc = dir_state(fs, c, id, depth, out)))
			return rc;
	} else {
		out->state = ST_FULL;   /* the root and the views' top directories */
		return 0;
	}
	cache_put(a, c, id, out);
	return 0;
}

/* any kind but KIND_DIR asks for a directory's derived data: all of it
 * readable (and its name visible) */
#define KIND_WHOLE KIND_SERIES_JSON

/* what kind k of node id shows: the name (KIND_DIR) or derived data */
static int node_ok(struct dfs *fs, struct dfs_caller *c, uint64_t id, unsigned k)
{
	struct node_view nv;
	struct aent s;
	if (index_node(fs->ix, id, &nv) || !(is_dir_type(nv.rec->type) ||
					     nv.rec->type == NODE_INSTANCE))
		return 1;   /* the root, the views' tops (or gone: the kind says) */
	if (node_state(fs, c, id, 0, &s))
		return 0;
	if (nv.rec->type == NODE_INSTANCE)
		return s.state == ST_FULL;
	if (k != KIND_DIR && s.state != ST_FULL)
		return 0;   /* level files, FHIR, volumes: every instance (A2) */
	return dir_visible(fs, c, &nv, &s, 0);
}

int dfs_access_path(struct dfs *fs, struct dfs_caller *c, uint64_t id)
{
	struct node_view nv;
	if (c->all)
		return 1;
	if (!node_ok(fs, c, id, KIND_DCM))
		return 0;
	for (int depth = 0; depth < 8; depth++) {
		if (index_node(fs->ix, id, &nv))
			return 0;
		if (!is_dir_type(nv.rec->type) && nv.rec->type != NODE_INSTANCE)
			return 1;
		id = nv.rec->parent;
		if (!node_ok(fs, c, id, KIND_DIR))
			return 0;
	}
	return 0;
}

int dfs_access_ino(struct dfs *fs, struct dfs_caller *c, uint64_t ino)
{
	unsigned k = ino_kind(ino);
	if (k == KIND_ERRORS || k == KIND_CHANGES || k == KIND_CHANGES_DIR ||
	    k == KIND_CHANGES_SINCE)
		return c->owner;   /* the feed names every instance (kind_changes.c) */
	if (c->all || k == KIND_STATUS)
		return 1;
	if (k == KIND_QLINK_STUDY || k == KIND_QLINK_SERIES || k == KIND_QLINK_INSTANCE)
		return dfs_access_path(fs, c, ino_id(ino) &
				       (((uint64_t)1 << QLINK_DEPTH_SHIFT) - 1));
	if (dfs_view_of(k))
		return 1;   /* query/ filters its answers per caller (A8) */
	return node_ok(fs, c, ino_id(ino), k);
}

double dfs_access_timeout(struct dfs *fs, uint64_t ino)
{
	struct dfs_access *a = fs->access;
	if (dfs_access_uniform(fs))
		return fs->timeout;
	unsigned k = ino_kind(ino);
	if (k == KIND_ERRORS || dfs_view_of(k))
		return 0;
	/* A9: what anyone sees whole is the same for every caller (a
	 * directory: as its derived files, all of it readable) */
	struct dfs_caller any = a->anyone;
	struct node_view nv;
	if (index_node(fs->ix, ino_id(ino), &nv))
		return 0;
	return node_ok(fs, &any, ino_id(ino), k == KIND_DIR ? KIND_WHOLE : k) ? ACCESS_TTL : 0;
}

int dfs_access_attrs(struct dfs *fs, struct dfs_caller *c, uint64_t ino)
{
	unsigned k = ino_kind(ino);
	if (c->all || k != KIND_DIR)
		return dfs_access_ino(fs, c, ino);
	/* a directory's attributes come from all of its instances (A2) */
	return node_ok(fs, c, ino_id(ino), KIND_WHOLE);
}

void dfs_access_stat(struct dfs *fs, struct dfs_caller *c, uint64_t ino, struct stat *st)
{
	struct node_view nv;
	struct aent s;
	if (c->all || ino_kind(ino) != KIND_DIR || index_node(fs->ix, ino_id(ino), &nv) ||
	    !is_dir_type(nv.rec->type) || node_state(fs, c, ino_id(ino), 0, &s) ||
	    s.state != ST_PART)
		return;
	/* what a partly readable directory shows is its readable part's */
	if (nv.rec->type != NODE_SERIES)
		st->st_nlink = 2 + s.vsub;
	stat_times(st, s.vmtime);
}

int dfs_access_filtered(struct dfs_caller *c)
{
	if (c->all)
		return 0;
	caller_groups(c);   /* sets c->gh (a failure denies every node later) */
	return 1;
}
