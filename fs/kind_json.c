/*
 * kind_json.c - <instance>.json: the instance's data set in the DICOM JSON
 * Model (index/dicom/dcmjson.h has the conventions).
 *
 * st_size comes from the index without reading the source: json_size (the
 * JSON with an empty instance name, measured when the file was indexed)
 * plus json_bulk times the bytes the name adds to each BulkDataURI. open
 * has a decoder process (never the mount process: K1, fs.h) re-read the
 * source header and regenerate the JSON with the node's name, and checks
 * it has exactly that length; a source that vanished or changed, or that
 * kills the generator, is EIO for this file only (logged, listed in
 * errors.tsv with a "json: " reason). The content is
 * served from memory and stays in the page cache (keep_cache).
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs.h"
#include "dcmjson.h"
#include "dcmwalk.h"
#include "error.h"
#include "fdbudget.h"
#include "log.h"
#include "record.h"
#include "source.h"
#include "worker.h"

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

static int anon_json(struct dfs *fs, uint64_t id, const struct node_view *nv,
		     char **out, size_t *len);

static int json_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
			struct stat *st)
{
	struct rec_head h;
	int rc = json_head(fs, nv, &h);
	if (rc)
		return rc;
	if (nv->rec->flags & NODE_F_ANON) {
		size_t len;
		if ((rc = anon_json(fs, id, nv, NULL, &len)))
			return rc;
		stat_file(st, nv, nv->rec->mode & 0444, len);
		return 0;
	}
	st->st_mode = S_IFREG | (nv->rec->mode & 0444);
	st->st_nlink = nv->rec->nlink ? nv->rec->nlink : 1; /* patients/ + uids/ */
	st->st_uid = nv->rec->uid;
	st->st_gid = nv->rec->gid;
	st->st_size = (off_t)json_len(nv, &h);
	st->st_blocks = (st->st_size + 511) / 512;
	stat_times(st, nv->rec->mtime_ns);
	return 0;
}

/* ---- generation: only ever in a decoder process ----
 * GDCM asserts (aborts) on some malformed input, and a source can change
 * under the mount with the same size and mtime; so the JSON is generated
 * in the mount's decoder pool (worker.h, the children of kind_pixels.c),
 * never in the mount process (K1, fs.h). A request is one frame with tag
 * DFS_WJOB_JSON: struct wjson, the node name, and, for a source without an
 * fd (source.h R5), the header bytes the parent read; otherwise the open
 * source rides along (SCM_RIGHTS, W5). The answer is one frame: aux 0 and
 * the JSON, or aux = the error and a message of at most JMSG bytes. A
 * child that dies or misses its deadline costs this one open (EIO and an
 * errors.tsv line) and is replaced (W4).
 */
struct wjson {
	uint64_t size;          /* the source's size (indexed) */
	uint64_t header_end;    /* as indexed */
	uint64_t len;           /* the JSON's announced length, or JSON_LEN_ANY
				 * (anon/: known once made) */
	uint32_t name_len;      /* node name bytes that follow */
	uint32_t have;          /* header bytes that follow (no fd), or 0 */
};

#define JMSG 160
#define JSON_LEN_ANY UINT64_MAX
#define JNAME_MAX 4096

/* The header (and what dcmwalk reads of the Pixel Data element) into
 * *buf: read through src/sf when sf is not NULL, else the *have bytes at *buf as given.
 * 0, -ENOMEM, or -EIO with why set. */
static int json_header(const struct source *src, const struct source_file *sf,
		       uint64_t size, uint64_t header_end, uint8_t **buf, size_t *have,
		       struct dcmwalk_result *w, char *why, size_t whylen)
{
	size_t want = (size_t)header_end + 16;
	int rc = DFS_ENEEDMORE;
	for (int tries = 0; tries < 4; tries++) {
		if (want > size)
			want = (size_t)size;
		if (sf && want > *have) {
			uint8_t *nb = realloc(*buf, want ? want : 1);
			if (!nb)
				return -ENOMEM;
			*buf = nb;
			if (source_read(src, sf, *buf + *have, want - *have, *have)) {
				snprintf(why, whylen, "json: cannot read the source header");
				return -EIO;
			}
			*have = want;
		}
		rc = dcmwalk_header(*buf, *have, size, w);
		if (!sf || rc != DFS_ENEEDMORE || w->header_end <= *have)
			break;
		want = (size_t)w->header_end;
	}
	if (rc || w->header_end != header_end) {
		snprintf(why, whylen, "json: the source header no longer reads as indexed");
		return -EIO;
	}
	return 0;
}

/* The decoder-process side of a DFS_WJOB_JSON frame (fs.h). */
int dfs_json_worker_job(struct worker *ch, const struct worker_head *hd)
{
	const struct source fdsrc = { &source_local, NULL };   /* R5 */
	struct wjson rq;
	struct dcmwalk_result w;
	struct dcmjson_out out = { 0 };
	char name[JNAME_MAX], why[JMSG] = "";
	uint8_t *buf = NULL;
	size_t have = 0;
	int fd = worker_take_fd(ch), st;
	if (hd->len < sizeof(rq) || worker_recv_body(ch, &rq, sizeof(rq)) ||
	    rq.name_len >= sizeof(name) ||
	    hd->len != sizeof(rq) + rq.name_len + rq.have ||
	    (fd >= 0) == (rq.have > 0) ||
	    worker_recv_body(ch, name, rq.name_len))
		goto protocol;
	if (rq.have) {
		buf = malloc(rq.have);
		if (!buf || worker_recv_body(ch, buf, rq.have))
			goto protocol;
		have = rq.have;
	}
	struct source_file sf = { .fd = fd, .size = rq.size };
	st = json_header(&fdsrc, fd >= 0 ? &sf : NULL, rq.size, rq.header_end, &buf,
			 &have, &w, why, sizeof(why));
	if (!st) {
		st = dcmjson_build(buf, have, rq.size, &w, fd, name, rq.name_len, &out);
		if (st)
			snprintf(why, sizeof(why), "json: cannot regenerate the JSON: %s",
				 dfs_strerror(st));
		else if (rq.len != JSON_LEN_ANY && out.len != rq.len) {
			snprintf(why, sizeof(why),
				 "json: regenerated JSON has %zu bytes, %llu announced",
				 out.len, (unsigned long long)rq.len);
			st = -EIO;
		}
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	struct iovec iov = st ? (struct iovec){ why, strlen(why) }
			      : (struct iovec){ out.buf, out.len };
	int rc = worker_send(ch, DFS_WJOB_JSON, st ? (st == -ENOMEM ? -ENOMEM : -EIO) : 0,
			     &iov, 1, -1);
	dcmjson_release(&out);
	return rc ? 1 : 0;
protocol:
	if (fd >= 0)
		close(fd);
	free(buf);
	return 1;
}

/* The mount side: the JSON of nv into *out (json_len bytes). 0, -ENOMEM,
 * or -EIO with why set. */
static int json_round_trip(struct dfs *fs, const struct node_view *nv,
			   const struct wjson *rqp, const uint8_t *hdr, size_t have, int fd,
			   char **out, size_t *outlen, char *why, size_t whylen);

static int json_in_worker(struct dfs *fs, const struct node_view *nv,
			  const struct rec_head *h, const struct source_file *sf,
			  char **out, size_t *outlen, char *why, size_t whylen)
{
	struct wjson rq = { h->size, h->header_end, json_len(nv, h), nv->rec->name_len, 0 };
	struct dcmwalk_result w;
	uint8_t *hdr = NULL;
	size_t have = 0;
	int rc;
	if (nv->rec->name_len >= JNAME_MAX) {
		snprintf(why, whylen, "json: the node name is too long");
		return -EIO;
	}
	if (sf->fd < 0) {
		/* no fd to pass (R5): the header bytes go along; dcmwalk is
		 * dicomfs's own code, not GDCM */
		rc = json_header(fs->src, sf, h->size, h->header_end, &hdr, &have, &w,
				 why, whylen);
		if (rc)
			return rc;
		if (have > UINT32_MAX) {
			free(hdr);
			snprintf(why, whylen, "json: the header is too large");
			return -EIO;
		}
		rq.have = (uint32_t)have;
	}
	rc = json_round_trip(fs, nv, &rq, hdr, have, sf->fd, out, outlen, why, whylen);
	free(hdr);
	return rc;
}

/* One DFS_WJOB_JSON job: request rq, the node name, the header bytes hdr
 * (have of them, or the source's fd), answered into *out. 0, -ENOMEM, or
 * -EIO with why set. */
static int json_round_trip(struct dfs *fs, const struct node_view *nv,
			   const struct wjson *rqp, const uint8_t *hdr, size_t have, int fd,
			   char **out, size_t *outlen, char *why, size_t whylen)
{
	struct worker_pool *pool = dfs_pixels_decoders(fs);
	struct wjson rq = *rqp;
	struct worker_head hd;
	struct worker *wk;
	char *res = NULL;
	int rc;
	if (!pool || worker_get(pool, &wk)) {
		snprintf(why, whylen, "json: no decoder process could be started");
		return -EIO;
	}
	struct iovec iov[3] = { { &rq, sizeof(rq) },
				{ (void *)nv->name, nv->rec->name_len },
				{ (void *)hdr, have } };
	rc = worker_send(wk, DFS_WJOB_JSON, 0, iov, 3, fd);
	if (!rc)
		rc = worker_recv_head(wk, &hd);
	if (!rc && (hd.tag != DFS_WJOB_JSON ||
		    hd.len != (hd.aux || rq.len == JSON_LEN_ANY ? hd.len : rq.len) ||
		    (hd.aux && hd.len >= JMSG)))
		rc = -EPROTO;
	if (!rc) {
		res = malloc(hd.len + 1);
		if (!res) {
			/* the answer cannot be drained: the child goes */
			worker_put(pool, wk, WORKER_KILL, NULL);
			return -ENOMEM;
		}
		rc = worker_recv_body(wk, res, hd.len);
	}
	if (rc) {
		int st = 0;
		free(res);
		worker_put(pool, wk, WORKER_KILL, &st);
		if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
			snprintf(why, whylen,
				 "json: the generator process died on it (signal %d, %s)",
				 WTERMSIG(st), strsignal(WTERMSIG(st)));
		else
			snprintf(why, whylen, "json: %s",
				 rc == DFS_ETIMEOUT ? "the generator process took too long (killed)"
						    : "the generator process died on it");
		return -EIO;
	}
	worker_put(pool, wk, WORKER_KEEP, NULL);
	res[hd.len] = 0;
	if (hd.aux) {
		snprintf(why, whylen, "%s", res);
		free(res);
		return hd.aux == -ENOMEM ? -ENOMEM : -EIO;
	}
	*out = res;
	*outlen = hd.len;
	return 0;
}

static int json_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		     struct dfs_file *f)
{
	char rel[4096], why[JMSG + 32] = "";
	struct rec_head h;
	struct source_file sf;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	rc = json_head(fs, nv, &h);
	if (rc)
		return rc;
	if (nv->rec->flags & NODE_F_ANON) {
		if ((rc = anon_json(fs, id, nv, &buf, &len)))
			return rc;
		f->buf = buf;
		f->len = len;
		return 0;
	}
	snprintf(rel, sizeof(rel), "%.*s", (int)nv->rec->path_len, nv->relpath);
	int tr = fdb_transient(1);   /* fdbudget.h F4: closed before we return */
	if (dfs_source_open(fs, nv, "json: ", &sf)) {
		fdb_transient(tr);
		return -EIO;
	}
	rc = json_in_worker(fs, nv, &h, &sf, &buf, &len, why, sizeof(why));
	source_close(fs->src, &sf);
	fdb_transient(tr);
	if (rc) {
		if (rc != -ENOMEM)
			index_report_error(fs->ix, rel, why[0] ? why : "json: cannot regenerate the JSON");
		return rc == -ENOMEM ? rc : -EIO;
	}
	f->buf = buf;
	f->len = len;
	return 0;
}

/* anon/ (kind_anon.c N3): the JSON of the anon .dcm's header, made by a
 * decoder process from the de-identified bytes; kept in the level cache
 * (getattr needs its length). out NULL: the length only. */
static int anon_json(struct dfs *fs, uint64_t id, const struct node_view *nv,
		     char **out, size_t *len)
{
	char why[JMSG + 32] = "";
	uint8_t *hdr;
	size_t have;
	uint64_t hlen, total;
	char *buf = NULL;
	if (dfs_level_cache_get(fs, ino_make(id, KIND_JSON), out, len))
		return 0;
	if (nv->rec->name_len >= JNAME_MAX)
		return -EIO;
	/* the anon .dcm as a sparse memory file for the decoder process: its
	 * header and what dcmjson reads after it (the Pixel Data element's
	 * header, a value small enough to be inline); the rest reads as
	 * zeros, so encapsulated pixel data runs to the end, as served (N1) */
	int rc = dfs_anon_dcm_prefix(fs, id, nv, DCMJSON_INLINE_MAX + 32, &hdr, &have, &hlen,
				     &total);
	if (rc)
		return rc;
	int mfd = memfd_create("dicomfs-anon-json", MFD_CLOEXEC);
	if (mfd < 0 || ftruncate(mfd, (off_t)total) ||
	    pwrite(mfd, hdr, have, 0) != (ssize_t)have) {
		snprintf(why, sizeof(why), "json: anon: no memory file: %s", strerror(errno));
		rc = -EIO;
	} else {
		struct wjson rq = { total, hlen, JSON_LEN_ANY, nv->rec->name_len, 0 };
		rc = json_round_trip(fs, nv, &rq, NULL, 0, mfd, &buf, len, why, sizeof(why));
	}
	if (mfd >= 0)
		close(mfd);
	free(hdr);
	if (rc) {
		char rel[4096];
		snprintf(rel, sizeof(rel), "%.*s", (int)nv->rec->path_len, nv->relpath);
		if (rc != -ENOMEM)
			index_report_error(fs->ix, rel, why[0] ? why : "json: anon: cannot make the JSON");
		return rc == -ENOMEM ? rc : -EIO;
	}
	dfs_level_cache_put(fs, ino_make(id, KIND_JSON), buf, *len);
	if (out)
		*out = buf;
	else
		free(buf);
	return 0;
}

const struct kind_ops kind_json =
	KIND_GENERATED("json", json_getattr, json_open);
