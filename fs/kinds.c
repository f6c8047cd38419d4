/*
 * kinds.c - the table of file kinds, and directories.
 * Each other kind lives in its own kind_*.c file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs.h"
#include "shared_buf.h"
#include "error.h"
#include "log.h"


/* ---- directories ---- */

static int dir_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
		       struct stat *st)
{
	(void)fs;
	(void)id;
	if (nv->rec->type == NODE_INSTANCE)
		return -ENOENT;
	st->st_mode = S_IFDIR | (nv->rec->mode & 0555);
	st->st_nlink = nv->rec->nlink;
	st->st_uid = nv->rec->uid;
	st->st_gid = nv->rec->gid;
	st->st_size = 4096;
	st->st_blocks = 8;
	stat_times(st, nv->rec->mtime_ns);
	return 0;
}

const struct kind_ops kind_dir = {
	.name = "directory",
	.getattr = dir_getattr,
};

int kind_buf_read(struct dfs *fs, struct dfs_file *f, fuse_req_t req,
		  size_t size, off_t off)
{
	(void)fs;
	if (off < 0)
		return -EINVAL;
	if ((size_t)off >= f->len)
		size = 0;
	else if (size > f->len - (size_t)off)
		size = f->len - (size_t)off;
	fuse_reply_buf(req, size ? f->buf + off : NULL, size);
	return 0;
}

void kind_buf_release(struct dfs_file *f)
{
	if (f->priv)
		shared_buf_put(f->priv);
	else
		free(f->buf);
	f->priv = NULL;
	f->buf = NULL;
}

struct gen_ctx {
	struct dfs *fs;
	uint64_t id;
	const struct node_view *nv;
	const struct dfs_file *f;
	kind_gen_fn gen;
};

static int gen_build(void *ctx, char **buf, size_t *len)
{
	struct gen_ctx *g = ctx;
	struct dfs_file tmp = *g->f;
	tmp.buf = NULL;
	tmp.len = 0;
	tmp.priv = NULL;
	int rc = g->gen(g->fs, g->id, g->nv, &tmp);
	if (rc) {
		free(tmp.buf);
		return rc;
	}
	*buf = tmp.buf;
	*len = tmp.len;
	return 0;
}

int kind_buf_open_shared(struct dfs *fs, uint64_t id, const struct node_view *nv,
			 struct dfs_file *f, kind_gen_fn gen)
{
	struct gen_ctx g = { fs, id, nv, f, gen };
	struct shared_buf *h;
	if (!fs->shared)
		return gen(fs, id, nv, f);
	int rc = shared_buf_get(fs->shared, ino_make(f->id, f->kind), gen_build, &g, &h);
	if (rc)
		return rc;
	f->buf = (char *)shared_buf_data(h, &f->len);
	f->priv = h;
	return 0;
}

const struct kind_ops *const dfs_kinds[KIND_MAX] = {
	[KIND_DIR] = &kind_dir,
	[KIND_DCM] = &kind_dcm,
	[KIND_JSON] = &kind_json,
	[KIND_STATUS] = &kind_status,
	[KIND_ERRORS] = &kind_errors,
	[KIND_NPY] = &kind_npy,
	[KIND_PNG] = &kind_png,
	[KIND_SERIES_JSON] = &kind_series_json,
	[KIND_STUDY_JSON] = &kind_study_json,
	[KIND_PATIENT_JSON] = &kind_patient_json,
	[KIND_STUDY_FHIR] = &kind_study_fhir,
	[KIND_PATIENT_FHIR] = &kind_patient_fhir,
	[KIND_QLINK_STUDY] = &kind_qother,
	[KIND_QLINK_SERIES] = &kind_qother,
	[KIND_QLINK_INSTANCE] = &kind_qother,
	[KIND_QMANIFEST_CSV] = &kind_qmanifest,
	[KIND_QMANIFEST_JSONL] = &kind_qmanifest,
	[KIND_QDIR] = &kind_qother,
	[KIND_VOLUME_NII] = &kind_volume_nii,
	[KIND_VOLUME_NPY] = &kind_volume_npy,
	[KIND_CHANGES] = &kind_changes,
	[KIND_CHANGES_DIR] = &kind_changes_dir,
	[KIND_CHANGES_SINCE] = &kind_changes,
	[KIND_SOURCE] = &kind_source,
};

/* ---- which derived files are listed (-o files, fs.h) ---- */

static const struct {
	const char *name;
	uint32_t kinds;
} file_groups[] = {
	{ "dcm", KBIT(KIND_DCM) },
	{ "json", KBIT(KIND_JSON) },
	{ "npy", KBIT(KIND_NPY) },
	{ "png", KBIT(KIND_PNG) },
	{ "level", KBIT(KIND_SERIES_JSON) | KBIT(KIND_STUDY_JSON) | KBIT(KIND_PATIENT_JSON) },
	{ "fhir", KBIT(KIND_STUDY_FHIR) | KBIT(KIND_PATIENT_FHIR) },
	{ "volume", KBIT(KIND_VOLUME_NII) | KBIT(KIND_VOLUME_NPY) },
};

int dfs_files_group(const char *word, size_t len)
{
	for (size_t i = 0; i < sizeof(file_groups) / sizeof(file_groups[0]); i++)
		if (strlen(file_groups[i].name) == len && memcmp(file_groups[i].name, word, len) == 0)
			return 1;
	return 0;
}

int dfs_files_mask(const char *list, uint32_t *mask, char *msg, size_t msglen)
{
	uint32_t all = 0, want = 0, derived = 0;
	for (unsigned k = 0; k < KIND_MAX; k++)
		if (dfs_kinds[k])
			all |= KBIT(k);
	for (size_t i = 0; i < sizeof(file_groups) / sizeof(file_groups[0]); i++)
		derived |= file_groups[i].kinds;
	if (!list) {
		*mask = all;
		return 0;
	}
	for (const char *p = list; *p;) {
		size_t l = strcspn(p, ",+");
		size_t i;
		for (i = 0; i < sizeof(file_groups) / sizeof(file_groups[0]); i++)
			if (strlen(file_groups[i].name) == l &&
			    memcmp(file_groups[i].name, p, l) == 0)
				break;
		if (i == sizeof(file_groups) / sizeof(file_groups[0])) {
			snprintf(msg, msglen, "bad -o files=%s: '%.*s' is none of dcm, json, npy, "
				 "png, level, fhir, volume", list, (int)l, p);
			return -EINVAL;
		}
		want |= file_groups[i].kinds;
		p += l;
		if (*p)
			p++;
	}
	if (!(want & KBIT(KIND_DCM))) {
		snprintf(msg, msglen, "bad -o files=%s: dcm is always listed (name it)", list);
		return -EINVAL;
	}
	*mask = (all & ~derived) | (want & all);
	return 0;
}

/* ---- the children of a directory (fs.h) ---- */

static int children_cb(void *ctx, uint64_t ino, const char *name, size_t nl,
		       uint64_t next)
{
	struct dfs_ids *x = ctx;
	(void)name;
	(void)nl;
	(void)next;
	if (!(x->mask & KBIT(ino_kind(ino))))
		return 0;
	if (x->n == x->cap) {
		size_t cap = x->cap ? x->cap * 2 : 64;
		uint64_t *nv = realloc(x->v, cap * sizeof(*nv));
		if (!nv) {
			x->err = -ENOMEM;
			return 1;
		}
		x->v = nv;
		x->cap = cap;
	}
	x->v[x->n++] = ino_id(ino);
	return 0;
}

int dfs_children(struct dfs *fs, uint64_t dir_id, uint32_t mask, struct dfs_ids *out)
{
	*out = (struct dfs_ids){ .mask = mask };
	int rc = index_readdir(fs->ix, dir_id, 0, children_cb, out);
	if (!rc)
		rc = out->err;
	if (rc) {
		free(out->v);
		*out = (struct dfs_ids){ .mask = mask };
	}
	return rc;
}
