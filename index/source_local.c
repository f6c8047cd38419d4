/*
 * source_local.c - the archive as a local folder (source.h, R1..R7).
 *
 * Design notes
 * - The walk is single-threaded (readdir + fstatat, sorted per directory),
 *   then sorted once more as a whole (a directory "a" comes before "a.b"
 *   per directory, after it in memcmp order): R1.
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
 * - can_change: yes; no watch yet (NULL): a change is found per file when
 *   it is opened (R2) and by the next mount's walk. An inotify watch
 *   would be one more function here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source.h"
#include "error.h"
#include "log.h"

struct local {
	char *real;            /* the folder's real path */
	int dirfd;
	int follow_symlinks;
};

static int local_create(const char *spec, const struct source_opts *o, void **inst,
			char *msg, size_t msglen)
{
	struct local *l = calloc(1, sizeof(*l));
	struct stat st;
	int rc;
	if (!l)
		return -ENOMEM;
	l->dirfd = -1;
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

static const char *local_name(void *inst)
{
	return ((struct local *)inst)->real;
}

static void local_destroy(void *inst)
{
	struct local *l = inst;
	if (!l)
		return;
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
};

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

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
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

static int walk_dir(struct walk *wk, const char *rel, int depth)
{
	struct local *l = wk->l;
	int dfd = rel[0] ? openat(l->dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
			 : dup(l->dirfd);
	char **names = NULL;
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
			char **p = realloc(names, cap * sizeof(*p));
			if (!p) {
				rc = -ENOMEM;
				goto free_names;
			}
			names = p;
		}
		if (!(names[n++] = strdup(de->d_name))) {
			rc = -ENOMEM;
			goto free_names;
		}
	}
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n && !rc; i++) {
		char path[PATH_MAX];
		struct stat st;
		if (snprintf(path, sizeof(path), "%s%s%s", rel, rel[0] ? "/" : "",
			     names[i]) >= (int)sizeof(path)) {
			wk->problem(wk->ctx, names[i], "path too long");
			continue;
		}
		if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW)) {
			wk->problem(wk->ctx, path, strerror(errno));
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			char full[PATH_MAX * 2], *real;
			snprintf(full, sizeof(full), "%s/%s", l->real, path);
			real = realpath(full, NULL);
			if (!real) {
				wk->problem(wk->ctx, path, "dangling symlink (not followed)");
				continue;
			}
			int in = inside_archive(l, real);
			free(real);
			if (!in && !l->follow_symlinks) {
				wk->problem(wk->ctx, path,
					    "symlink leaves the archive (not followed; see -o follow_symlinks)");
				continue;
			}
			if (fstatat(dirfd(d), names[i], &st, 0)) {
				wk->problem(wk->ctx, path, strerror(errno));
				continue;
			}
		}
		if (S_ISDIR(st.st_mode)) {
			int r = seen_add(&wk->seen, st.st_dev, st.st_ino);
			if (r < 0) {
				rc = r;
				break;
			}
			if (r == 1) {
				wk->problem(wk->ctx, path,
					    "directory already visited (symlink loop; not entered again)");
				continue;
			}
			if (depth >= 64) {
				wk->problem(wk->ctx, path, "directory nesting too deep");
				continue;
			}
			rc = walk_dir(wk, path, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			rc = entry_push(wk->out, path, &st);
		}
	}
free_names:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(d);
	return rc;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct source_entry *x = a, *y = b;
	return source_key_cmp(x->rel, x->rel_len, y->rel, y->rel_len);
}

static int local_walk(void *inst, struct source_list *out, source_problem_fn problem,
		      void *ctx)
{
	struct walk wk = { .l = inst, .out = out, .problem = problem, .ctx = ctx };
	struct stat rst;
	if (fstat(wk.l->dirfd, &rst) == 0)
		seen_add(&wk.seen, rst.st_dev, rst.st_ino);
	int rc = walk_dir(&wk, "", 0);
	free(wk.seen.dev);
	free(wk.seen.ino);
	if (!rc)
		qsort(out->v, out->n, sizeof(*out->v), cmp_entry);
	return rc;
}

/* ---- open, read (R2..R5) ---- */

#define CHANGED "source changed since it was indexed (remount to re-index)"

static int local_open(void *inst, const char *rel, size_t rel_len,
		      const struct source_expect *exp, struct source_file *f,
		      char *why, size_t whylen)
{
	struct local *l = inst;
	char path[PATH_MAX];
	struct stat st;
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	int fd, e;

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
		fd = openat(l->dirfd, path, flags);
		if (fd < 0) {
			e = errno;
			goto cannot_open;
		}
		f->fd = fd;
		return 0;
	}
	fd = openat(l->dirfd, path, flags | O_NOFOLLOW);
	if (fd < 0 && errno == ELOOP) {
		/* reached through a symlink: only the inode can tell (R3) */
		if (!exp->ino)
			goto changed;
		fd = openat(l->dirfd, path, flags);
	}
	if (fd < 0) {
		e = errno;
		goto cannot_open;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != exp->size ||
	    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != exp->mtime_ns ||
	    (exp->ino && (uint64_t)st.st_ino != exp->ino)) {
		close(fd);
		goto changed;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	f->fd = fd;
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
	(void)inst;
	return source_pread_all(f->fd, buf, len, off);
}

static void local_close(void *inst, struct source_file *f)
{
	(void)inst;
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

const struct source_ops source_local = {
	.name = "local",
	.create = local_create,
	.destroy = local_destroy,
	.walk = local_walk,
	.open = local_open,
	.read = local_read,
	.close = local_close,
	.watch = NULL,
	.can_change = 1,
	.permissions = 1,     /* R9 */
	.name_of = local_name,
};
