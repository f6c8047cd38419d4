/*
 * kind_dotdir.c - .dicomfs/status.json and .dicomfs/errors.tsv.
 *
 * Both are generated from the index at each look: with opens (fs.h Z1
 * off) on every open, direct_io; with zero-message opens as snapshots
 * named by inodes of their own (fs.h Z4), kept in a small table:
 * (S1) A snapshot's bytes never change; its inode is
 *      ino_make(SNAP_ID0 + seq, kind) (seq from 0, never reused): an
 *      id that is not ID_DOTDIR names a snapshot.
 * (S2) A new snapshot is made only when the bytes differ from the newest
 *      of its kind: an unchanged status file keeps its inode, so its page
 *      cache.
 * (S3) nlookup counts the entry replies that named it, minus the kernel's
 *      FORGETs; at 0 it is freed. At most SNAP_MAX are kept: past that the
 *      oldest goes (a READ of it: -ESTALE, reopen).
 * Threading: the table's mutex; no generation under it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "cpulat.h"

/* ---- generated text: status.json, errors.tsv ---- */

/* status.json with the request counts added ("requests": fs.h counts) */
static int status_make(struct dfs *fs, char **buf, size_t *len)
{
	int rc = index_status_json(fs->ix, buf, len);
	if (rc)
		return rc;
	char *b = *buf;
	size_t l = *len;
	while (l && (b[l - 1] == '\n' || b[l - 1] == ' '))
		l--;
	if (!l || b[l - 1] != '}')
		return 0;   /* not an object: as it is */
	const struct dfs_counts *c = &fs->counts;
#define LD(x) (unsigned long long)__atomic_load_n(&c->x, __ATOMIC_RELAXED)
	struct cpulat_stats cl;
	cpulat_stats(fs->cpulat, &cl);
	char lat[128] = "null";   /* cpulat.h L2, L4: off */
	if (fs->cpulat)
		snprintf(lat, sizeof(lat), "{\"us\": %ld, \"held\": %s, \"holds\": %llu}",
			 (long)cl.us, cl.held ? "true" : "false", (unsigned long long)cl.holds);
	char add[768];
	int n = snprintf(add, sizeof(add),
			 ",\n  \"requests\": {\"lookup\": %llu, \"getattr\": %llu, "
			 "\"open\": %llu, \"opendir\": %llu, \"read\": %llu, "
			 "\"readdir\": %llu, \"getxattr\": %llu, \"listxattr\": %llu, "
			 "\"forget\": %llu, \"ioctl\": %llu, \"zero_message_opens\": %s, "
			 "\"read_ahead_files\": %llu},\n  \"cpu_latency\": %s\n}\n",
			 LD(lookup), LD(getattr), LD(open), LD(opendir), LD(read),
			 LD(readdir), LD(getxattr), LD(listxattr), LD(forget), LD(ioctl),
			 fs->zero_open ? "true" : "false",
			 (unsigned long long)dfs_ra_pushed(fs), lat);
#undef LD
	char *nb = realloc(b, l - 1 + (size_t)n + 1);
	if (!nb)
		return 0;   /* without the counts */
	memcpy(nb + l - 1, add, (size_t)n + 1);
	*buf = nb;
	*len = l - 1 + (size_t)n;
	return 0;
}

static int text_make(struct dfs *fs, unsigned kind, char **buf, size_t *len)
{
	return kind == KIND_STATUS ? status_make(fs, buf, len)
				   : index_errors_tsv(fs->ix, buf, len);
}

/* ---- Z4: snapshots ---- */

#define SNAP_ID0 16
#define SNAP_MAX 64

struct snap {
	uint64_t ino;
	uint64_t nlookup;
	char *buf;
	size_t len;
	struct snap *next;   /* newest first */
};

struct dfs_snaps {
	pthread_mutex_t lock;
	uint64_t seq;
	size_t n;
	struct snap *head;
	struct snap *newest[KIND_MAX];   /* by kind (S2), or NULL */
};

int dfs_snaps_new(struct dfs *fs)
{
	struct dfs_snaps *t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	fs->snaps = t;
	return 0;
}

void dfs_snaps_free(struct dfs *fs)
{
	struct dfs_snaps *t = fs->snaps;
	if (!t)
		return;
	while (t->head) {
		struct snap *s = t->head;
		t->head = s->next;
		free(s->buf);
		free(s);
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
	fs->snaps = NULL;
}

int dfs_snap_is(uint64_t ino)
{
	unsigned k = ino_kind(ino);
	return (k == KIND_STATUS || k == KIND_ERRORS) && ino_id(ino) != ID_DOTDIR;
}

/* unlink s (lock held) and free it */
static void snap_drop_locked(struct dfs_snaps *t, struct snap *s)
{
	struct snap **pp = &t->head;
	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	t->n--;
	unsigned k = ino_kind(s->ino);
	if (t->newest[k] == s)
		t->newest[k] = NULL;
	free(s->buf);
	free(s);
}

static struct snap *snap_find_locked(struct dfs_snaps *t, uint64_t ino)
{
	for (struct snap *s = t->head; s; s = s->next)
		if (s->ino == ino)
			return s;
	return NULL;
}

int dfs_snap_take(struct dfs *fs, unsigned k, uint64_t *ino)
{
	struct dfs_snaps *t = fs->snaps;
	char *buf;
	size_t len;
	if (!t)
		return -EIO;
	int rc = text_make(fs, k, &buf, &len);
	if (rc)
		return rc;
	pthread_mutex_lock(&t->lock);
	struct snap *s = t->newest[k];
	if (s && s->len == len && memcmp(s->buf, buf, len) == 0) {   /* S2 */
		free(buf);
	} else {
		s = calloc(1, sizeof(*s));
		if (!s) {
			pthread_mutex_unlock(&t->lock);
			free(buf);
			return -ENOMEM;
		}
		s->ino = ino_make(SNAP_ID0 + t->seq++, k);
		s->buf = buf;
		s->len = len;
		s->next = t->head;
		t->head = s;
		t->n++;
		t->newest[k] = s;
		if (t->n > SNAP_MAX) {   /* S3: the oldest goes */
			struct snap *old = t->head;
			while (old->next)
				old = old->next;
			snap_drop_locked(t, old);
		}
	}
	s->nlookup++;
	*ino = s->ino;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void dfs_snap_forget(struct dfs *fs, uint64_t ino, uint64_t n)
{
	struct dfs_snaps *t = fs->snaps;
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	struct snap *s = snap_find_locked(t, ino);
	if (s) {
		s->nlookup = s->nlookup > n ? s->nlookup - n : 0;
		if (!s->nlookup)
			snap_drop_locked(t, s);
	}
	pthread_mutex_unlock(&t->lock);
}

/* copy of snapshot ino's bytes [off, off + size) into *out; its length */
static int snap_copy(struct dfs *fs, uint64_t ino, size_t size, off_t off, char **out,
		     size_t *len, size_t *total)
{
	struct dfs_snaps *t = fs->snaps;
	*out = NULL;
	*len = 0;
	if (!t || off < 0)
		return t ? -EINVAL : -ESTALE;
	pthread_mutex_lock(&t->lock);
	struct snap *s = snap_find_locked(t, ino);
	if (!s) {
		pthread_mutex_unlock(&t->lock);
		return -ESTALE;
	}
	*total = s->len;
	if ((size_t)off < s->len) {
		size_t n = s->len - (size_t)off < size ? s->len - (size_t)off : size;
		*out = malloc(n ? n : 1);
		if (!*out) {
			pthread_mutex_unlock(&t->lock);
			return -ENOMEM;
		}
		memcpy(*out, s->buf + off, n);
		*len = n;
	}
	pthread_mutex_unlock(&t->lock);
	return 0;
}

int dfs_snap_read(struct dfs *fs, uint64_t ino, fuse_req_t req, size_t size, off_t off)
{
	char *b;
	size_t n, total;
	int rc = snap_copy(fs, ino, size, off, &b, &n, &total);
	if (rc)
		return rc;
	fuse_reply_buf(req, n ? b : NULL, n);
	free(b);
	return 0;
}

static int text_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
			struct stat *st, unsigned kind)
{
	char *buf;
	size_t len;
	int rc;
	if (id != ID_DOTDIR) {   /* a snapshot (S1) */
		size_t total = 0;
		rc = snap_copy(fs, ino_make(id, kind), 0, 0, &buf, &len, &total);
		free(buf);
		if (rc)
			return rc == -ESTALE ? -ENOENT : rc;
		len = total;
	} else {
		rc = text_make(fs, kind, &buf, &len);
		if (rc)
			return rc;
		free(buf);
	}
	stat_file(st, nv, 0444, len);
	if (kind == KIND_ERRORS) {
		/* names protected sources: the mount owner's (access.h A2) */
		st->st_mode = S_IFREG | 0400;
		st->st_uid = fs->uid;
		st->st_gid = fs->gid;
	}
	return 0;
}

static int text_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		     struct dfs_file *f)
{
	(void)id;
	(void)nv;
	return text_make(fs, f->kind, &f->buf, &f->len);
}

/* a status file: regenerated on every open, never cached by the kernel
 * (with zero-message opens: Z4, snapshots) */
#define TEXT_KIND(var, nm, kind)                                               \
	static int var##_getattr(struct dfs *fs, uint64_t id,                  \
				 const struct node_view *nv, struct stat *st)  \
	{                                                                      \
		return text_getattr(fs, id, nv, st, kind);                     \
	}                                                                      \
	const struct kind_ops var = {                                          \
		.name = nm,                                                    \
		.getattr = var##_getattr,                                      \
		.open = text_open,                                             \
		.read = kind_buf_read,                                         \
		.release = kind_buf_release,                                   \
		.direct_io = 1,                                                \
		.volatile_attr = 1,                                            \
	};
TEXT_KIND(kind_status, "status.json", KIND_STATUS)
TEXT_KIND(kind_errors, "errors.tsv", KIND_ERRORS)
