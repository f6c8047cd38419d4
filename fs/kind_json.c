/*
 * kind_json.c - <instance>.json: the instance's data set in the DICOM JSON
 * Model (index/dicom/dcmjson.h has the conventions).
 *
 * st_size comes from the index without reading the source: json_size (the
 * JSON with an empty instance name, measured when the file was indexed)
 * plus json_bulk times the bytes the name adds to each BulkDataURI. open
 * re-reads the source header, regenerates the JSON with the node's name
 * and checks it has exactly that length; a source that vanished or changed
 * is EIO for this file only (dfs_source_open: logged, listed in errors.tsv
 * with a "json: " reason). The content is
 * served from memory and stays in the page cache (keep_cache).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "dcmjson.h"
#include "dcmwalk.h"
#include "error.h"
#include "log.h"
#include "record.h"
#include "source.h"

static int json_head(struct dfs *fs, const struct node_view *nv, struct rec_head *h)
{
	const void *val;
	size_t vlen;
	if (nv->rec->type != NODE_INSTANCE || !nv->relpath)
		return -ENOENT;
	int rc = index_file_record(fs->ix, nv->relpath, nv->rec->path_len, &val, &vlen);
	if (rc)
		return rc;
	rc = rec_head_get(val, vlen, h);
	if (rc)
		return rc;
	return h->json_size ? 0 : -ENOENT;
}

static uint64_t json_len(const struct node_view *nv, const struct rec_head *h)
{
	return h->json_size + h->json_bulk * dcmjson_name_bytes(nv->name, nv->rec->name_len);
}

static int json_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
			struct stat *st)
{
	struct rec_head h;
	(void)id;
	int rc = json_head(fs, nv, &h);
	if (rc)
		return rc;
	st->st_mode = S_IFREG | (nv->rec->mode & 0444);
	st->st_nlink = nv->rec->nlink ? nv->rec->nlink : 1; /* patients/ + uids/ */
	st->st_uid = nv->rec->uid;
	st->st_gid = nv->rec->gid;
	st->st_size = (off_t)json_len(nv, &h);
	st->st_blocks = (st->st_size + 511) / 512;
	stat_times(st, nv->rec->mtime_ns);
	return 0;
}

static int json_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		     struct dfs_file *f)
{
	char rel[4096], why[160];
	struct rec_head h;
	struct source_file sf;
	struct dcmwalk_result w;
	struct dcmjson_out out = { 0 };
	uint8_t *buf = NULL;
	size_t have = 0;
	int rc;
	(void)id;

	rc = json_head(fs, nv, &h);
	if (rc)
		return rc;
	snprintf(rel, sizeof(rel), "%.*s", (int)nv->rec->path_len, nv->relpath);
	if (dfs_source_open(fs, nv, "json: ", &sf))
		return -EIO;
	/* the header, and what dcmwalk reads of the Pixel Data element */
	size_t want = (size_t)h.header_end + 16;
	for (int tries = 0; tries < 4; tries++) {
		if (want > h.size)
			want = (size_t)h.size;
		uint8_t *nb = realloc(buf, want ? want : 1);
		if (!nb) {
			rc = -ENOMEM;
			goto fail;
		}
		buf = nb;
		if (want > have && source_read(fs->src, &sf, buf + have, want - have, have)) {
			snprintf(why, sizeof(why), "json: cannot read the source header");
			goto eio;
		}
		have = want;
		rc = dcmwalk_header(buf, have, h.size, &w);
		if (rc != DFS_ENEEDMORE || w.header_end <= have)
			break;
		want = (size_t)w.header_end;
	}
	if (rc || w.header_end != h.header_end) {
		snprintf(why, sizeof(why), "json: the source header no longer reads as indexed");
		goto eio;
	}
	rc = dcmjson_build(buf, have, h.size, &w, sf.fd, nv->name, nv->rec->name_len, &out);
	if (rc || out.len != json_len(nv, &h)) {
		snprintf(why, sizeof(why),
			 "json: regenerated JSON has %zu bytes, %llu announced%s%s",
			 out.len, (unsigned long long)json_len(nv, &h), rc ? ": " : "",
			 rc ? dfs_strerror(rc) : "");
		goto eio;
	}
	free(buf);
	source_close(fs->src, &sf);
	f->buf = out.buf;
	f->len = out.len;
	return 0;
eio:
	index_report_error(fs->ix, rel, why);
	rc = -EIO;
fail:
	dcmjson_release(&out);
	free(buf);
	source_close(fs->src, &sf);
	return rc;
}

/* one regeneration per inode while open (shared_buf.h) */
static int json_open_shared(struct dfs *fs, uint64_t id, const struct node_view *nv,
			    struct dfs_file *f)
{
	return kind_buf_open_shared(fs, id, nv, f, json_open);
}

const struct kind_ops kind_json = {
	.name = "json",
	.getattr = json_getattr,
	.open = json_open_shared,
	.read = kind_buf_read,
	.release = kind_buf_release,
};
