/*
 * source_local.c - the archive as a local folder (source.h, R1..R7).
 *
 * Design notes
 * - The walk is single-threaded (readdir + fstatat, sorted per directory;
 *   walk_names, R12: no fstatat of what d_type says is a regular file),
 *   then put in R1's order as a whole (a directory "a" comes before "a.b"
 *   per directory, after it in memcmp order): checked in one pass and
 *   sorted only when such a pair occurs (sort_entries). A parallel walk
 *   of the top-level entries is tried first (local_walk_par, below).
 * - Symlinks are followed when they stay inside the archive (or always
 *   with -o follow_symlinks); a directory seen twice (by device and inode)
 *   is a loop and is not entered again; nesting stops at 64 levels.
 * - open with an expectation (R2, R3): O_NOFOLLOW | O_NONBLOCK, so a
 *   symlink or FIFO swapped in neither redirects nor blocks. As the walk
 *   follows symlinks, an indexed file may be reached through one: then
 *   (ELOOP) it is opened again following the link, still non-blocking,
 *   and accepted only when it is a regular file with the indexed inode,
 *   size and mtime (a record without an inode cannot be verified so: EIO).
 *   O_NONBLOCK is cleared once verified (it must not reach splice).
 * - can_change: yes. watch (R8): inotify on every directory (IN_ONLYDIR,
 *   symlinks not followed), one thread blocked in poll() (no CPU while
 *   idle); a path is reported on close_write, moved_to/from, delete,
 *   attrib (mode, owner: the access model and the records change) and on
 *   create only for what is complete at once (a link, a directory); a
 *   directory created or moved in gets its watches and is reported once.
 *   A queue overflow reports "" (re-walk everything). Files reached only
 *   through a symlinked directory are not watched there (a rescan finds
 *   them). Out of watches (ENOSPC): the caller polls (-o rescan).
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fdbudget.h"
#include "source.h"
#include "error.h"
#include "log.h"

struct lwatch;

struct local {
	char *real;            /* the folder's real path */
	int dirfd;
	int follow_symlinks;
	struct lwatch *watch;  /* the watch thread's (R7), or NULL */
	int64_t walk_ns;       /* CLOCK_REALTIME when the last whole walk
				* began (0: none): watch's catch-up (R8) */
	uint64_t gen;          /* this instance among all of the process
				* (scan_openat's cache) */
};

static int local_create(const char *spec, const struct source_opts *o, void **inst,
			char *msg, size_t msglen)
{
	struct local *l = calloc(1, sizeof(*l));
	struct stat st;
	int rc;
	if (!l)
		return -ENOMEM;
	static uint64_t gens;
	l->dirfd = -1;
	l->gen = __atomic_add_fetch(&gens, 1, __ATOMIC_RELAXED);
	l->follow_symlinks = o ? o->follow_symlinks : 0;
	l->real = realpath(spec, NULL);
	if (!l->real || stat(l->real, &st) || !S_ISDIR(st.st_mode)) {
		rc = l->real ? -ENOTDIR : -errno;
		goto fail;
	}
	l->dirfd = open(l->real, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (l->dirfd < 0) {
		rc = -errno;
		goto fail;
	}
	*inst = l;
	return 0;
fail:
	snprintf(msg, msglen, "archive '%s': %s", spec, strerror(-rc));
	free(l->real);
	free(l);
	return rc;
}

static void local_unwatch(void *inst);

static const char *local_name(void *inst)
{
	return ((struct local *)inst)->real;
}

static void local_destroy(void *inst)
{
	struct local *l = inst;
	if (!l)
		return;
	local_unwatch(l);
	if (l->dirfd >= 0)
		close(l->dirfd);
	free(l->real);
	free(l);
}

/* ---- walk (R1) ---- */

struct seen {
	dev_t *dev;
	ino_t *ino;
	size_t n, cap;
};

struct walk {
	struct local *l;
	struct source_list *out;
	struct seen seen;
	source_problem_fn problem;
	void *ctx;
	/* a parallel walk (local_walk): the directories seen are shared
	 * (*shared under *lock); a symlink to a directory or a directory seen
	 * twice stops it (WALK_SERIAL), the serial walk then decides */
	struct seen *shared;
	pthread_mutex_t *lock;
	int names_only;       /* R12: a regular file by its d_type, no stat */
};

#define WALK_SERIAL 1

static int seen_add(struct seen *s, dev_t d, ino_t i)
{
	for (size_t k = 0; k < s->n; k++)
		if (s->dev[k] == d && s->ino[k] == i)
			return 1;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		dev_t *nd = realloc(s->dev, cap * sizeof(*nd));
		if (!nd)
			return -ENOMEM;
		s->dev = nd;
		ino_t *ni = realloc(s->ino, cap * sizeof(*ni));
		if (!ni)
			return -ENOMEM;
		s->ino = ni;
		s->cap = cap;
	}
	s->dev[s->n] = d;
	s->ino[s->n++] = i;
	return 0;
}

/* a directory's entry: its name and d_type (DT_UNKNOWN: not said) */
struct dent {
	char *name;
	unsigned char type;
};

static int cmp_dent(const void *a, const void *b)
{
	return strcmp(((const struct dent *)a)->name, ((const struct dent *)b)->name);
}

static int entry_push(struct source_list *l, const char *rel, const struct stat *st)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		struct source_entry *p = realloc(l->v, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		l->v = p;
		l->cap = cap;
	}
	struct source_entry *e = &l->v[l->n];
	e->rel = strdup(rel);
	if (!e->rel)
		return -ENOMEM;
	e->rel_len = strlen(rel);
	e->st = *st;
	l->n++;
	return 0;
}

static int inside_archive(const struct local *l, const char *real)
{
	size_t n = strlen(l->real);
	if (strcmp(l->real, "/") == 0)
		return 1;
	return strncmp(real, l->real, n) == 0 && (real[n] == '/' || real[n] == 0);
}

static int walk_dir(struct walk *wk, const char *rel, int depth);

/* A new open file of the archive folder: a dup() of dirfd would share its
 * directory offset, left at the end by the previous walk (a rescan, a
 * watch started after the mount's walk would then see nothing). */
static int root_open(const struct local *l)
{
	return openat(l->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* One entry of a directory (dfd, name; path from the archive root): a
 * regular file is pushed, a directory walked, a symlink followed when it
 * stays inside the archive (or with follow_symlinks). */
static int walk_entry(struct walk *wk, int dfd, const char *name, const char *path,
		      int depth, unsigned char type)
{
	struct local *l = wk->l;
	struct stat st;
	if (wk->names_only && type == DT_REG) {   /* R12: stat at open */
		memset(&st, 0, sizeof(st));
		return entry_push(wk->out, path, &st);
	}
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW)) {
		wk->problem(wk->ctx, path, strerror(errno));
		return 0;
	}
	if (S_ISLNK(st.st_mode)) {
		char full[PATH_MAX * 2], *real;
		snprintf(full, sizeof(full), "%s/%s", l->real, path);
		real = realpath(full, NULL);
		if (!real) {
			wk->problem(wk->ctx, path, "dangling symlink (not followed)");
			return 0;
		}
		int in = inside_archive(l, real);
		free(real);
		if (!in && !l->follow_symlinks) {
			wk->problem(wk->ctx, path,
				    "symlink leaves the archive (not followed; see -o follow_symlinks)");
			return 0;
		}
		if (fstatat(dfd, name, &st, 0)) {
			wk->problem(wk->ctx, path, strerror(errno));
			return 0;
		}
		if (wk->shared && S_ISDIR(st.st_mode))
			return WALK_SERIAL;
	}
	if (S_ISDIR(st.st_mode)) {
		int r;
		if (wk->shared) {
			pthread_mutex_lock(wk->lock);
			r = seen_add(wk->shared, st.st_dev, st.st_ino);
			pthread_mutex_unlock(wk->lock);
			if (r == 1)
				return WALK_SERIAL;
		} else {
			r = seen_add(&wk->seen, st.st_dev, st.st_ino);
		}
		if (r < 0)
			return r;
		if (r == 1) {
			wk->problem(wk->ctx, path,
				    "directory already visited (symlink loop; not entered again)");
			return 0;
		}
		if (depth >= 64) {
			wk->problem(wk->ctx, path, "directory nesting too deep");
			return 0;
		}
		return walk_dir(wk, path, depth + 1);
	}
	if (S_ISREG(st.st_mode))
		return entry_push(wk->out, path, &st);
	return 0;
}

static int walk_dir(struct walk *wk, const char *rel, int depth)
{
	struct local *l = wk->l;
	int dfd = rel[0] ? openat(l->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
			 : root_open(l);   /* not dup(): its offset is shared */
	struct dent *names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (dfd < 0) {
		wk->problem(wk->ctx, rel, strerror(errno));
		dfs_log("%s: cannot open directory: %s", rel, strerror(errno));
		return 0;
	}
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct dent *p = realloc(names, cap * sizeof(*p));
			if (!p) {
				rc = -ENOMEM;
				goto free_names;
			}
			names = p;
		}
		names[n].type = de->d_type;
		if (!(names[n++].name = strdup(de->d_name))) {
			rc = -ENOMEM;
			goto free_names;
		}
	}
	if (n)   /* an empty directory: names may be NULL */
		qsort(names, n, sizeof(*names), cmp_dent);
	for (size_t i = 0; i < n && !rc; i++) {
		char path[PATH_MAX];
		if (snprintf(path, sizeof(path), "%s%s%s", rel, rel[0] ? "/" : "",
			     names[i].name) >= (int)sizeof(path)) {
			wk->problem(wk->ctx, names[i].name, "path too long");
			continue;
		}
		rc = walk_entry(wk, dirfd(d), names[i].name, path, depth, names[i].type);
	}
free_names:
	for (size_t i = 0; i < n; i++)
		free(names[i].name);
	free(names);
	closedir(d);
	return rc;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct source_entry *x = a, *y = b;
	return source_key_cmp(x->rel, x->rel_len, y->rel, y->rel_len);
}

/* R1's order for the whole list: the walk's per-directory order is
 * already it but where a name sorts before a sibling directory's that it
 * prefixes ("a.b" and "a/"): checked in one pass, sorted only then. */
static void sort_entries(struct source_list *l)
{
	for (size_t i = 1; i < l->n; i++)
		if (cmp_entry(&l->v[i - 1], &l->v[i]) > 0) {
			qsort(l->v, l->n, sizeof(*l->v), cmp_entry);
			return;
		}
}

/* source_list_free's twin (source.c calls us: no call back, index_layers.sh) */
static void list_free(struct source_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].rel);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static int local_walk_serial(struct local *l, struct source_list *out,
			     source_problem_fn problem, void *ctx, int names_only)
{
	struct walk wk = { .l = l, .out = out, .problem = problem, .ctx = ctx,
			   .names_only = names_only };
	struct stat rst;
	if (fstat(wk.l->dirfd, &rst) == 0)
		seen_add(&wk.seen, rst.st_dev, rst.st_ino);
	int rc = walk_dir(&wk, "", 0);
	free(wk.seen.dev);
	free(wk.seen.ino);
	if (!rc)
		sort_entries(out);
	return rc;
}

/*
 * The parallel walk (issue 17: a remount of an unchanged archive is a
 * walk): the entries of the archive folder are items, walked by
 * WALK_THREADS threads, each item into a list and a problem log of its
 * own, joined in item order afterwards, so that the result (and the order
 * of the problems) is the serial walk's. Where the serial walk's answer
 * would depend on the order (a symlink to a directory, a directory
 * reached twice: R1's "once"), the parallel walk gives up and the serial
 * one runs.
 */
#define WALK_THREADS 2

struct wproblem {
	char *path, *why;
};

struct witem {
	char *name;
	unsigned char type;   /* its d_type */
	struct source_list out;
	struct wproblem *pv;
	size_t np, cp;
	int rc;
};

struct wpar {
	struct local *l;
	int rootfd;
	struct witem *items;
	size_t n, next;
	int stop;             /* WALK_SERIAL or an error: the others stop too */
	struct seen seen;
	pthread_mutex_t lock;
	int names_only;       /* R12 */
};

static void wproblem_add(void *ctx, const char *path, const char *why)
{
	struct witem *it = ctx;
	if (it->np == it->cp) {
		size_t cap = it->cp ? it->cp * 2 : 8;
		struct wproblem *p = realloc(it->pv, cap * sizeof(*p));
		if (!p)
			return;   /* the problem goes unreported (out of memory) */
		it->pv = p;
		it->cp = cap;
	}
	struct wproblem *w = &it->pv[it->np];
	if (!(w->path = strdup(path)) || !(w->why = strdup(why))) {
		free(w->path);
		return;
	}
	it->np++;
}

static void *wpar_main(void *arg)
{
	struct wpar *wp = arg;
	for (;;) {
		pthread_mutex_lock(&wp->lock);
		size_t i = wp->stop ? wp->n : wp->next++;
		pthread_mutex_unlock(&wp->lock);
		if (i >= wp->n)
			break;
		struct witem *it = &wp->items[i];
		struct walk wk = { .l = wp->l, .out = &it->out, .problem = wproblem_add,
				   .ctx = it, .shared = &wp->seen, .lock = &wp->lock,
				   .names_only = wp->names_only };
		it->rc = walk_entry(&wk, wp->rootfd, it->name, it->name, 0, it->type);
		if (it->rc) {
			pthread_mutex_lock(&wp->lock);
			wp->stop = it->rc;
			pthread_mutex_unlock(&wp->lock);
		}
	}
	return NULL;
}

/* 1: walked (rc in *rc), 0: the serial walk must (nothing reported) */
static int local_walk_par(struct local *l, struct source_list *out,
			  source_problem_fn problem, void *ctx, int *rc, int names_only)
{
	struct wpar wp = { .l = l, .rootfd = root_open(l), .names_only = names_only };
	struct dent *names = NULL;
	size_t cap = 0;
	int done = 0;
	if (wp.rootfd < 0)
		return 0;
	DIR *d = fdopendir(wp.rootfd);
	if (!d) {
		close(wp.rootfd);
		return 0;
	}
	struct dirent *de;
	size_t n = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct dent *p = realloc(names, cap * sizeof(*p));
			if (!p)
				goto out;
			names = p;
		}
		names[n].type = de->d_type;
		if (!(names[n].name = strdup(de->d_name)))
			goto out;
		n++;
	}
	if (n < 2)   /* nothing to share */
		goto out;
	qsort(names, n, sizeof(*names), cmp_dent);
	if (!(wp.items = calloc(n, sizeof(*wp.items))))
		goto out;
	for (size_t i = 0; i < n; i++) {
		wp.items[i].name = names[i].name;
		wp.items[i].type = names[i].type;
	}
	wp.n = n;
	struct stat rst;
	if (fstat(l->dirfd, &rst) == 0 && seen_add(&wp.seen, rst.st_dev, rst.st_ino) < 0)
		goto out;
	pthread_mutex_init(&wp.lock, NULL);
	pthread_t th[WALK_THREADS];
	int started = 0;
	for (; started < WALK_THREADS; started++)
		if (pthread_create(&th[started], NULL, wpar_main, &wp))
			break;
	if (!started)
		wpar_main(&wp);
	for (int t = 0; t < started; t++)
		pthread_join(th[t], NULL);
	pthread_mutex_destroy(&wp.lock);
	if (wp.stop == WALK_SERIAL)
		goto out;
	done = 1;
	*rc = wp.stop;
	for (size_t i = 0; i < n && !*rc; i++) {
		struct witem *it = &wp.items[i];
		for (size_t k = 0; k < it->np; k++)
			problem(ctx, it->pv[k].path, it->pv[k].why);
		if (out->cap < out->n + it->out.n) {
			size_t c = out->cap ? out->cap : 1024;
			while (c < out->n + it->out.n)
				c *= 2;
			struct source_entry *p = realloc(out->v, c * sizeof(*p));
			if (!p) {
				*rc = -ENOMEM;
				break;
			}
			out->v = p;
			out->cap = c;
		}
		if (it->out.n)
			memcpy(out->v + out->n, it->out.v, it->out.n * sizeof(*out->v));
		out->n += it->out.n;
		free(it->out.v);   /* the entries moved to out */
		it->out.v = NULL;
		it->out.n = 0;
	}
	if (!*rc)
		sort_entries(out);
out:
	for (size_t i = 0; i < wp.n; i++) {
		struct witem *it = &wp.items[i];
		list_free(&it->out);
		for (size_t k = 0; k < it->np; k++) {
			free(it->pv[k].path);
			free(it->pv[k].why);
		}
		free(it->pv);
	}
	free(wp.items);
	for (size_t i = 0; i < n; i++)
		free(names[i].name);
	free(names);
	free(wp.seen.dev);
	free(wp.seen.ino);
	closedir(d);
	return done;
}

static int walk_mode(struct local *l, struct source_list *out, source_problem_fn problem,
		     void *ctx, int names_only)
{
	int rc;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	l->walk_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	if (local_walk_par(l, out, problem, ctx, &rc, names_only)) {
		if (rc)
			list_free(out);
		return rc;
	}
	list_free(out);
	return local_walk_serial(l, out, problem, ctx, names_only);
}

static int local_walk(void *inst, struct source_list *out, source_problem_fn problem,
		      void *ctx)
{
	return walk_mode(inst, out, problem, ctx, 0);
}

/* R12: a file whose d_type says regular is listed without fstatat */
static int local_walk_names(void *inst, struct source_list *out, source_problem_fn problem,
			    void *ctx)
{
	return walk_mode(inst, out, problem, ctx, 1);
}

static int local_stat(void *inst, const char *rel, size_t rel_len, struct stat *st)
{
	const struct local *l = inst;
	char path[PATH_MAX];
	if (rel_len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, rel, rel_len);
	path[rel_len] = 0;
	return fstatat(l->dirfd, path, st, 0) ? -errno : 0;
}

static int local_walk_under(void *inst, const char *rel, size_t rel_len,
			    struct source_list *out, source_problem_fn problem, void *ctx)
{
	struct walk wk = { .l = inst, .out = out, .problem = problem, .ctx = ctx };
	char path[PATH_MAX], parent[PATH_MAX];
	struct stat rst;
	if (!rel_len)
		return local_walk(inst, out, problem, ctx);
	if (rel_len >= sizeof(path))
		return 0;
	memcpy(path, rel, rel_len);
	path[rel_len] = 0;
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	int depth = 0;
	for (const char *p = path; *p; p++)
		depth += *p == '/';
	snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - path) : 0, path);
	int pfd = parent[0] ? openat(wk.l->dirfd, parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
			    : root_open(wk.l);
	if (pfd < 0)
		return 0;    /* gone: nothing below it */
	if (fstat(wk.l->dirfd, &rst) == 0)
		seen_add(&wk.seen, rst.st_dev, rst.st_ino);
	struct stat st;
	int rc = 0;
	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		rc = walk_entry(&wk, pfd, name, path, depth, DT_UNKNOWN);
	close(pfd);
	free(wk.seen.dev);
	free(wk.seen.ino);
	if (!rc && out->n)   /* (out->v is NULL when nothing is there) */
		sort_entries(out);
	return rc;
}

/* ---- watch (R8): inotify on every directory ---- */

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | \
		    IN_CREATE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | \
		    IN_EXCL_UNLINK | IN_ONLYDIR)

struct lwatch {
	struct local *l;
	int ifd, stopfd;         /* inotify; eventfd that ends the thread */
	pthread_t thread;
	source_change_fn fn;
	void *ctx;
	char **path;             /* wd -> directory (relative; "" the root) */
	size_t npath;
	int full;                /* the watch limit was reached */
	int64_t since_ns;        /* while local_watch adds the first watches:
				  * the walk's start (R8's catch-up), else 0 */
};

static int lw_add(struct lwatch *w, const char *rel);
static void lw_report(struct lwatch *w, const char *rel);
#define CATCHUP_NS 20000000   /* 20 ms: ext4's coarse clock is a jiffy */

/* Watch directory rel and every directory below it (symlinks are not
 * followed: a linked directory is watched where it really lives, if
 * inside the archive). -ENOSPC: out of watches. */
static int lw_add_tree(struct lwatch *w, const char *rel, int depth)
{
	int rc = lw_add(w, rel);
	if (rc || depth >= 64)
		return rc == -ENOENT || rc == -ENOTDIR || rc == -EACCES ? 0 : rc;
	int dfd = rel[0] ? openat(w->l->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
				  O_NOFOLLOW)
			 : root_open(w->l);
	if (dfd < 0)
		return 0;
	/* R8's catch-up: a directory changed since the walk began (a file
	 * created, renamed or removed in it before its watch existed) is
	 * reported; a timestamp is a clock tick coarse at most (CATCHUP_NS) */
	struct stat dst;
	if (w->since_ns && fstat(dfd, &dst) == 0 &&
	    (int64_t)dst.st_mtim.tv_sec * 1000000000 + dst.st_mtim.tv_nsec >=
		    w->since_ns - CATCHUP_NS)
		lw_report(w, rel);
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return 0;
	}
	struct dirent *de;
	while (!rc && (de = readdir(d))) {
		if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
			continue;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (de->d_type == DT_UNKNOWN &&
		    (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode)))
			continue;
		char path[PATH_MAX];
		if (snprintf(path, sizeof(path), "%s%s%s", rel, rel[0] ? "/" : "",
			     de->d_name) >= (int)sizeof(path))
			continue;
		rc = lw_add_tree(w, path, depth + 1);
	}
	closedir(d);
	return rc;
}

static int lw_add(struct lwatch *w, const char *rel)
{
	char full[PATH_MAX * 2];
	snprintf(full, sizeof(full), "%s%s%s", w->l->real, rel[0] ? "/" : "", rel);
	int wd = inotify_add_watch(w->ifd, full, WATCH_MASK | IN_DONT_FOLLOW);
	if (wd < 0)
		return -errno;
	if ((size_t)wd >= w->npath) {
		size_t n = (size_t)wd * 2 + 64;
		char **p = realloc(w->path, n * sizeof(*p));
		if (!p)
			return -ENOMEM;
		memset(p + w->npath, 0, (n - w->npath) * sizeof(*p));
		w->path = p;
		w->npath = n;
	}
	char *c = strdup(rel);
	if (!c)
		return -ENOMEM;
	free(w->path[wd]);
	w->path[wd] = c;
	return 0;
}

/* Stop watching rel and everything below it (moved out or deleted). */
static void lw_remove_tree(struct lwatch *w, const char *rel)
{
	size_t rl = strlen(rel);
	for (size_t wd = 0; wd < w->npath; wd++) {
		if (!w->path[wd] || !source_under(rel, rl, w->path[wd], strlen(w->path[wd])))
			continue;
		inotify_rm_watch(w->ifd, (int)wd);
		free(w->path[wd]);
		w->path[wd] = NULL;
	}
}

static void lw_report(struct lwatch *w, const char *rel)
{
	w->fn(w->ctx, rel, strlen(rel));
}

static void lw_event(struct lwatch *w, const struct inotify_event *ev)
{
	if (ev->mask & IN_Q_OVERFLOW) {
		lw_report(w, "");    /* events were lost: re-walk everything */
		return;
	}
	if (ev->wd < 0 || (size_t)ev->wd >= w->npath || !w->path[ev->wd])
		return;
	const char *dir = w->path[ev->wd];
	if (ev->mask & IN_IGNORED) {
		free(w->path[ev->wd]);
		w->path[ev->wd] = NULL;
		return;
	}
	if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
		if (!dir[0])
			lw_report(w, "");   /* the archive itself went away */
		return;                     /* else its parent reported it */
	}
	if (!ev->len)
		return;
	char rel[PATH_MAX];
	if (snprintf(rel, sizeof(rel), "%s%s%s", dir, dir[0] ? "/" : "", ev->name) >=
	    (int)sizeof(rel))
		return;
	if (ev->mask & IN_ISDIR) {
		if (ev->mask & (IN_MOVED_FROM | IN_DELETE))
			lw_remove_tree(w, rel);
		if (ev->mask & (IN_CREATE | IN_MOVED_TO)) {
			int rc = lw_add_tree(w, rel, 0);
			if (rc == -ENOSPC && !w->full) {
				w->full = 1;
				dfs_log("inotify watch limit reached (fs.inotify.max_user_watches): new directories are found by -o rescan only");
			}
		}
		lw_report(w, rel);   /* one path for a whole directory (R8) */
		return;
	}
	if (ev->mask & IN_CREATE) {
		/* a new empty file is being written: close_write tells when it
		 * is done; a link or a file made in place (ln, mknod) is now */
		struct stat st;
		if (fstatat(w->l->dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode) && st.st_size == 0 && st.st_nlink == 1)
			return;
	}
	lw_report(w, rel);
}

static void *lw_main(void *arg)
{
	struct lwatch *w = arg;
	char buf[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd pf[2] = { { w->ifd, POLLIN, 0 }, { w->stopfd, POLLIN, 0 } };
	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[1].revents)
			break;
		ssize_t n = read(w->ifd, buf, sizeof(buf));
		if (n <= 0) {
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			break;
		}
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;
			lw_event(w, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
	return NULL;
}

static void lw_free(struct lwatch *w)
{
	if (w->ifd >= 0)
		close(w->ifd);
	if (w->stopfd >= 0)
		close(w->stopfd);
	for (size_t i = 0; i < w->npath; i++)
		free(w->path[i]);
	free(w->path);
	free(w);
}

static int local_watch(void *inst, source_change_fn fn, void *ctx)
{
	struct local *l = inst;
	struct lwatch *w = calloc(1, sizeof(*w));
	int rc;
	if (!w)
		return -ENOMEM;
	w->l = l;
	w->fn = fn;
	w->ctx = ctx;
	w->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	w->stopfd = eventfd(0, EFD_CLOEXEC);
	if (w->ifd < 0 || w->stopfd < 0) {
		rc = -errno;
		lw_free(w);
		return rc == -EMFILE ? -ENOSPC : rc;
	}
	w->since_ns = l->walk_ns;
	rc = lw_add_tree(w, "", 0);
	w->since_ns = 0;
	if (!rc && (rc = -pthread_create(&w->thread, NULL, lw_main, w)) == 0) {
		l->watch = w;
		return 0;
	}
	lw_free(w);
	return rc;
}

static void local_unwatch(void *inst)
{
	struct local *l = inst;
	struct lwatch *w = l->watch;
	if (!w)
		return;
	uint64_t one = 1;
	if (write(w->stopfd, &one, sizeof(one)) != sizeof(one))
		dfs_log("cannot stop the inotify thread: %s", strerror(errno));
	pthread_join(w->thread, NULL);
	l->watch = NULL;
	lw_free(w);
}

/* ---- open, read (R2..R5) ---- */

#define CHANGED "source changed since it was indexed (remount to re-index)"

/* An open file verified against exp (R2, R3): 0 with *fdp, -EIO (changed:
 * *changed set) or -errno. */
static int local_open_verified(const struct local *l, const char *path,
			       const struct source_expect *exp, int *fdp, int *changed)
{
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	struct stat st;
	*changed = 0;
	int fd = openat(l->dirfd, path, flags | O_NOFOLLOW);
	if (fd < 0 && errno == ELOOP) {
		/* reached through a symlink: only the inode can tell (R3) */
		if (!exp->ino) {
			*changed = 1;
			return -EIO;
		}
		fd = openat(l->dirfd, path, flags);
	}
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != exp->size ||
	    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != exp->mtime_ns ||
	    (exp->ino && (uint64_t)st.st_ino != exp->ino)) {
		close(fd);
		*changed = 1;
		return -EIO;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	*fdp = fd;
	return 0;
}

/* fdbudget.h F4: f->priv of a file whose fd is counted as held, or a
 * struct local_lazy: a file opened without keeping an fd (the budget was
 * spent), reopened and verified per read. */
static const char local_held_mark;
struct local_lazy {
	struct source_expect exp;
	char path[];
};

/*
 * The scan's open in a parser process (R2; fdbudget.h F1: nothing is
 * counted there). Files come in walk order, a directory's files together:
 * the directory of the previous file stays open (O_PATH), and a file of
 * the same directory is found by its last name alone instead of a lookup
 * of every component (parsebench: -6 to -11% CPU at four components). The
 * same names resolve the same way (symlinks followed as openat does), but
 * a directory renamed meanwhile is still the one opened: its files are
 * then read where they went, and the walk after the change (live.c)
 * re-indexes them. One per thread, closed when the directory changes or
 * the thread ends; not in the mount process, whose fds are a budget
 * (fdbudget.h F6).
 */
struct scan_dir {
	uint64_t gen;          /* struct local's gen */
	int fd;
	size_t len;
	char path[PATH_MAX];
};
static pthread_key_t scan_dir_key;
static pthread_once_t scan_dir_once = PTHREAD_ONCE_INIT;
static int scan_dir_ok;

static void scan_dir_free(void *p)
{
	struct scan_dir *d = p;
	if (d->fd >= 0)
		close(d->fd);
	free(d);
}

static void scan_dir_init(void)
{
	scan_dir_ok = pthread_key_create(&scan_dir_key, scan_dir_free) == 0;
}

static int scan_openat(const struct local *l, char *path, int flags)
{
	char *slash = strrchr(path, '/');
	struct scan_dir *d;
	if (!slash || fdb_counting() || pthread_once(&scan_dir_once, scan_dir_init) ||
	    !scan_dir_ok)
		return openat(l->dirfd, path, flags);
	if (!(d = pthread_getspecific(scan_dir_key))) {
		if (!(d = malloc(sizeof(*d))))
			return openat(l->dirfd, path, flags);
		d->fd = -1;
		if (pthread_setspecific(scan_dir_key, d)) {
			free(d);
			return openat(l->dirfd, path, flags);
		}
	}
	size_t dl = (size_t)(slash - path);
	if (d->fd < 0 || d->gen != l->gen || d->len != dl || memcmp(d->path, path, dl)) {
		if (d->fd >= 0)
			close(d->fd);
		*slash = 0;
		d->fd = openat(l->dirfd, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
		*slash = '/';
		d->gen = l->gen;
		d->len = dl;
		memcpy(d->path, path, dl);
		if (d->fd < 0)
			return openat(l->dirfd, path, flags);
	}
	return openat(d->fd, slash + 1, flags);
}

static int local_open(void *inst, const char *rel, size_t rel_len,
		      const struct source_expect *exp, struct source_file *f,
		      char *why, size_t whylen)
{
	struct local *l = inst;
	char path[PATH_MAX];
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	int fd, e, changed;

	f->fd = -1;
	f->size = exp ? exp->size : 0;
	f->priv = NULL;
	if (rel_len >= sizeof(path)) {
		e = ENAMETOOLONG;
		goto cannot_open;
	}
	memcpy(path, rel, rel_len);
	path[rel_len] = 0;
	/* the scan: the walk has just looked at it (R2) */
	if (!exp) {
		fd = scan_openat(l, path, flags);
		if (fd < 0) {
			e = errno;
			goto cannot_open;
		}
		f->fd = fd;
		return 0;
	}
	int transient = fdb_is_transient();   /* fdbudget.h F4 */
	int held = transient ? 0 : fdb_take();
	int rc = local_open_verified(l, path, exp, &fd, &changed);
	if (rc && (rc == -EMFILE || rc == -ENFILE) && held && !transient) {
		/* the budget's slack is gone (F2): go without an fd */
		fdb_put();
		held = 0;
		rc = local_open_verified(l, path, exp, &fd, &changed);
	}
	if (rc) {
		if (held)
			fdb_put();
		if (changed)
			goto changed;
		e = -rc;
		goto cannot_open;
	}
	if (held || transient) {
		f->fd = fd;
		f->priv = held ? (void *)&local_held_mark : NULL;
		return 0;
	}
	/* F4: verified; reopened per read */
	close(fd);
	struct local_lazy *z = malloc(sizeof(*z) + rel_len + 1);
	if (!z) {
		e = ENOMEM;
		goto cannot_open;
	}
	z->exp = *exp;
	memcpy(z->path, path, rel_len + 1);
	f->priv = z;
	return 0;
changed:
	if (why)
		snprintf(why, whylen, "%s", CHANGED);
	return -EIO;
cannot_open:
	if (why)
		snprintf(why, whylen, "cannot open source: %s", strerror(e));
	if (!exp)
		return -e;
	return e == ENOENT ? -ENOENT : -EIO;
}

static int local_read(void *inst, const struct source_file *f, void *buf, size_t len,
		      uint64_t off)
{
	if (f->fd < 0 && f->priv && f->priv != &local_held_mark) {
		/* F4: a transient fd, verified again (R2) */
		const struct local_lazy *z = f->priv;
		int fd, changed;
		int rc = local_open_verified(inst, z->path, &z->exp, &fd, &changed);
		if (rc)
			return changed ? -EIO : rc;
		rc = source_pread_all(fd, buf, len, off);
		close(fd);
		return rc;
	}
	return source_pread_all(f->fd, buf, len, off);
}

static void local_close(void *inst, struct source_file *f)
{
	(void)inst;
	if (f->fd >= 0)
		close(f->fd);
	if (f->priv == &local_held_mark)
		fdb_put();
	else
		free(f->priv);
	f->priv = NULL;
	f->fd = -1;
}

const struct source_ops source_local = {
	.name = "local",
	.create = local_create,
	.destroy = local_destroy,
	.walk = local_walk,
	.walk_names = local_walk_names,
	.stat = local_stat,
	.open = local_open,
	.read = local_read,
	.close = local_close,
	.watch = local_watch,
	.unwatch = local_unwatch,
	.walk_under = local_walk_under,
	.can_change = 1,
	.permissions = 1,     /* R9 */
	.name_of = local_name,
};
