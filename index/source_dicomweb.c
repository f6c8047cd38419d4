/*
 * source_dicomweb.c - the archive as a DICOMweb server (source.h R1..R9):
 * `dicomfs [options] http(s)://host/dicom-web MOUNTPOINT`.
 *
 * Design notes (invariants; code cites them as D1..D9)
 * (D1) Enumeration by QIDO-RS: GET {base}/studies (with
 *      NumberOfStudyRelatedInstances), then per study GET
 *      {base}/studies/{uid}/instances (with SeriesInstanceUID), each paged
 *      with limit and offset. A page shorter than asked is taken as the
 *      server's own limit, not as the end: paging stops at an empty page,
 *      at the study's instance count, or when a page repeats the previous
 *      one (a server that ignores offset). Studies are listed by
 *      DW_WALKERS threads at once. An instance's key (R1) is
 *      "<StudyUID>/<SeriesUID>/<SOPUID>", its mtime the study's
 *      StudyDate/StudyTime (UTC), its inode the FNV-1a of the key; its
 *      size is not known to QIDO-RS (R11).
 * (D2) The listing is kept in <cache_dir>/catalog.tsv. A remount lists
 *      the studies only and lists again the instances of a study whose
 *      instance count changed or that is new; the others come from the
 *      catalog (then the scan finds nothing changed: no instance request).
 *      When the server does not answer the study listing, the catalog is
 *      used as it is (an offline remount of what was indexed) and the walk
 *      reports it as a problem.
 * (D3) Bytes by WADO-RS retrieve of the instance with Accept:
 *      multipart/related; type="application/dicom"; transfer-syntax=*
 *      (the stored transfer syntax, so the .dcm is byte-identical to what
 *      was stored; Orthanc's DICOMweb plugin and dcm4chee answer it); a
 *      single-part application/dicom answer is taken as well. The part is
 *      streamed into a temporary file of the cache directory and renamed
 *      into place when whole: a cache file is always a complete instance.
 *      The index is built by the same parser as a local folder from these
 *      bytes (so the records, names, .json sizes and BulkDataURIs equal a
 *      mount of the same files; WADO-RS /metadata has no byte offsets nor
 *      file sizes): the scan's open (no expectation) stops the transfer
 *      after DW_PREFIX bytes when the part's length is known; the file is
 *      then a sparse file of the instance's size holding that prefix, not
 *      in the cache, and read() or need() (R10) fetch the whole instance
 *      when the parser wants more (a header longer than the prefix,
 *      encapsulated or deflated data, whose extent the .json needs). So
 *      uncompressed pixel data is not downloaded at index time. The
 *      parser processes fetch in parallel.
 * (D4) The cache: files "<16 hex of FNV-1a(key)>.dcm" in cache_dir, bounded
 *      by cache_bytes: a process counts what it adds and, past the bound
 *      or past 1/8 of it since its last look, lists the directory and
 *      removes the least recently used (mtime, touched on every open) down
 *      to 90%. An open fd keeps a removed file readable. Several processes
 *      (the parsers, the mount) share the directory: each may overshoot
 *      the bound by 1/8 before it looks.
 * (D5) Every request has a deadline: a read's open fails with EIO within
 *      timeout_s (default 30 s; the transfer gets 5/6 of it, the rest is
 *      margin for the kernel round trip) of its start, whatever the server does
 *      (connect timeout, transfer timeout = the time left, retries only
 *      within it); the failure is logged and listed in errors.tsv. 429 and
 *      503 are retried with backoff (Retry-After honoured when it fits),
 *      as are refused or broken connections, DW_TRIES tries at most (one
 *      while the server failed in the last DW_DOWN_S seconds); other HTTP
 *      errors are not. An instance the scan could not fetch is an error
 *      record that the next mount tries again (R11).
 * (D6) TLS verification is libcurl's default (on); cafile replaces the CA
 *      bundle. Credentials: a bearer token file re-read when its inode,
 *      size or mtime changes (tokens that expire), else basic auth from
 *      a netrc file (libcurl's, ~/.netrc unless -o netrc=). Credentials
 *      in the URL are refused (they would reach the index and the logs).
 * (D7) Connections, DNS and TLS sessions are shared by all threads of a
 *      process through one CURLSH (locks per data kind): a read reuses a
 *      kept-alive connection. Each parser process has its own.
 *      libcurl itself is loaded on the first create of a URL (curl_load.h
 *      L1, L2): no other archive maps it; dw->cu is its table.
 * (D8) The server's state (up, down, last error, counters) is the
 *      mount's: status.json shows it. Cached instances and everything in
 *      the index keep working while the server is down.
 * (D9) No per-file permissions (R9): the access model treats the archive
 *      as uniform (fs/access.h A3); files are 0444, owned by the mounting
 *      user.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "curl_load.h"
#include "source.h"
#include "error.h"
#include "log.h"
#include "strbuf.h"

#define DW_PAGE        1000        /* QIDO-RS limit asked (D1) */
#define DW_WALKERS     8           /* studies listed at once (D1) */
#define DW_TIMEOUT_S   30          /* a read's deadline (D5) */
#define DW_LIST_TIMEOUT_S 120      /* one QIDO-RS page's deadline */
#define DW_CONNECT_MS  10000
#define DW_TRIES       6           /* tries of one request at most (D5) */
#define DW_DOWN_S      10          /* after a failure, one try only for this long */
#define DW_PREFIX      (64 * 1024) /* the scan's part of an instance (D3) */
#define DW_PARTIAL     1           /* dw_get: stopped after the prefix (D3) */
#define DW_CACHE_DEFAULT ((uint64_t)1 << 30)
#define DW_JSON_MAX    ((size_t)512 << 20)
#define DW_ACCEPT_DICOM "multipart/related; type=\"application/dicom\"; transfer-syntax=*"

struct dw {
	char *base;                 /* the URL without trailing '/' */
	char *cache_dir;            /* NULL until use_dir / create (D4) */
	char *cafile, *token_file, *netrc;
	uint64_t cache_max;
	int timeout_s;
	const struct curlload *cu;  /* libcurl (curl_load.h) */
	CURLSH *share;              /* D7 */
	pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];

	pthread_mutex_t lock;       /* guards everything below */
	char *token;                /* D6: the token file's content */
	struct stat token_st;
	int state;                  /* 0 unknown, 1 up, -1 down (D8) */
	int64_t last_ok, last_fail;
	char last_error[256];
	uint64_t requests, retries, failures, bytes, hits, misses;
	uint64_t cache_used, cache_added;  /* D4 */
	int offline;                /* the walk used the catalog (D2) */
	uint64_t prefix;            /* DW_PREFIX, or DICOMFS_DW_PREFIX (a test knob) */
};

/* a scan's open of an instance fetched in part (D3, R10) */
struct dw_part {
	uint64_t have;              /* [0, have) is in the fd */
	size_t rel_len;
	char rel[];
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- libcurl (D7) ---- */

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ctx)
{
	struct dw *dw = ctx;
	(void)h;
	(void)a;
	pthread_mutex_lock(&dw->share_lock[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *ctx)
{
	struct dw *dw = ctx;
	(void)h;
	pthread_mutex_unlock(&dw->share_lock[d]);
}

/* ---- one request: a body into memory or a file (D3, D5) ---- */

struct req {
	const struct curlload *cu;  /* dw->cu, set by dw_get */
	CURL *h;
	struct strbuf *mem;         /* JSON answers */
	int fd;                     /* instance answers (D3), else -1 */
	uint64_t written;
	int mp;                     /* multipart: -1 not known yet, 0 no, 1 yes */
	char bnd[160];
	size_t bnd_len;
	struct strbuf pre;          /* before the part's body */
	int in_body;
	int64_t part_len;           /* the part's Content-Length, or -1 */
	uint64_t stop_at;           /* stop after this many body bytes, 0 never */
	int stopped;
	long retry_after;           /* seconds, from the answer's header */
	int werr;                   /* a write failed: errno */
};

/* the boundary of a multipart Content-Type, or 0 */
static int mp_boundary(const char *ct, char *bnd, size_t cap, size_t *len)
{
	if (!ct || strncasecmp(ct, "multipart/", 10))
		return 0;
	const char *p = strcasestr(ct, "boundary=");
	if (!p)
		return 0;
	p += 9;
	size_t n = 0;
	if (*p == '"') {
		p++;
		while (p[n] && p[n] != '"')
			n++;
	} else {
		while (p[n] && p[n] != ';' && p[n] != ' ' && p[n] != '\r' && p[n] != '\n')
			n++;
	}
	if (!n || n + 1 > cap)
		return 0;
	memcpy(bnd, p, n);
	bnd[n] = 0;
	*len = n;
	return 1;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* D3: enough of an instance whose length is known (else go on) */
static int stop_now(struct req *r)
{
	if (!r->stop_at || r->written < r->stop_at || r->part_len < 0 ||
	    r->written >= (uint64_t)r->part_len)
		return 0;
	r->stopped = 1;
	return 1;
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ctx)
{
	struct req *r = ctx;
	size_t len = sz * nm;
	if (r->fd < 0) {
		if (r->mem->len + len > DW_JSON_MAX || strbuf_add(r->mem, p, len))
			return 0;
		return len;
	}
	if (r->mp < 0) {
		char *ct = NULL;
		curl_off_t cl = -1;
		r->cu->easy_getinfo(r->h, CURLINFO_CONTENT_TYPE, &ct);
		r->mp = mp_boundary(ct, r->bnd, sizeof(r->bnd), &r->bnd_len);
		/* a single-part answer: the body is the instance */
		if (!r->mp &&
		    r->cu->easy_getinfo(r->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK)
			r->part_len = cl;
	}
	if (r->mp == 1 && !r->in_body) {
		/* the preamble, the first boundary and the part's headers */
		if (r->pre.len + len > 65536 || strbuf_add(&r->pre, p, len))
			return 0;
		const char *b = r->pre.buf, *end = b + r->pre.len;
		const char *d = memmem(b, r->pre.len, r->bnd, r->bnd_len);
		if (!d)
			return len;
		const char *hdr = memmem(d, (size_t)(end - d), "\r\n", 2);
		const char *body = hdr ? memmem(hdr, (size_t)(end - hdr), "\r\n\r\n", 4) : NULL;
		if (!body)
			return len;
		/* an empty header block: the blank line right after the boundary */
		body = body + 4;
		for (const char *q = hdr; q < body - 4;) {
			const char *eol = memmem(q + 2, (size_t)(body - q - 2), "\r\n", 2);
			if (!eol)
				eol = body - 4;
			if ((size_t)(eol - q) > 17 && !strncasecmp(q + 2, "Content-Length:", 15))
				r->part_len = strtoll(q + 17, NULL, 10);
			q = eol;
		}
		r->in_body = 1;
		size_t rest = (size_t)(end - body);
		int e = write_all(r->fd, body, rest);
		if (e) {
			r->werr = -e;
			return 0;
		}
		r->written += rest;
		return stop_now(r) ? 0 : len;
	}
	int e = write_all(r->fd, p, len);
	if (e) {
		r->werr = -e;
		return 0;
	}
	r->written += len;
	return stop_now(r) ? 0 : len;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ctx)
{
	struct req *r = ctx;
	size_t len = sz * nm;
	if (len > 12 && !strncasecmp(p, "Retry-After:", 12))
		r->retry_after = strtol(p + 12, NULL, 10);
	return len;
}

/* The part's length: its Content-Length, else up to the closing
 * delimiter "\r\n--boundary" near the end of what was written. */
static int mp_finish(struct req *r)
{
	if (r->mp != 1)
		return 0;
	if (!r->in_body)
		return -EPROTO;
	uint64_t len = r->written;
	if (r->part_len >= 0 && (uint64_t)r->part_len <= r->written) {
		len = (uint64_t)r->part_len;
	} else {
		char tail[4096];
		size_t n = r->written < sizeof(tail) ? (size_t)r->written : sizeof(tail);
		uint64_t at = r->written - n;
		if (pread(r->fd, tail, n, (off_t)at) != (ssize_t)n)
			return -EIO;
		size_t found = (size_t)-1;
		for (size_t i = 0; i + 4 + r->bnd_len <= n; i++)
			if (!memcmp(tail + i, "\r\n--", 4) && !memcmp(tail + i + 4, r->bnd, r->bnd_len))
				found = i;
		if (found == (size_t)-1)
			return -EPROTO;
		len = at + found;
	}
	return ftruncate(r->fd, (off_t)len) ? -errno : 0;
}

static void state_set(struct dw *dw, int ok, const char *err)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&dw->lock);
	if (ok) {
		dw->state = 1;
		dw->last_ok = ts.tv_sec;
	} else {
		dw->state = -1;
		dw->last_fail = ts.tv_sec;
		dw->failures++;
		snprintf(dw->last_error, sizeof(dw->last_error), "%s", err);
	}
	pthread_mutex_unlock(&dw->lock);
}

/* "Authorization: Bearer <token>" into hdr, or nothing (D6) */
static int auth_header(struct dw *dw, struct strbuf *hdr)
{
	struct stat st;
	if (!dw->token_file)
		return 0;
	if (stat(dw->token_file, &st))
		return -errno;
	pthread_mutex_lock(&dw->lock);
	if (!dw->token || st.st_ino != dw->token_st.st_ino || st.st_size != dw->token_st.st_size ||
	    st.st_mtim.tv_sec != dw->token_st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != dw->token_st.st_mtim.tv_nsec) {
		FILE *f = fopen(dw->token_file, "re");
		char buf[16384];
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		while (n && isspace((unsigned char)buf[n - 1]))
			n--;
		buf[n] = 0;
		size_t s = strspn(buf, " \t\r\n");
		free(dw->token);
		dw->token = f && !strpbrk(buf + s, "\r\n") ? strdup(buf + s) : NULL;
		dw->token_st = st;
	}
	if (dw->token)
		strbuf_addf(hdr, "Authorization: Bearer %s", dw->token);
	pthread_mutex_unlock(&dw->lock);
	return dw->token ? strbuf_error(hdr) : -EACCES;
}

static int sleep_until(int64_t until)
{
	int64_t d = until - now_ms();
	if (d > 0) {
		struct timespec ts = { d / 1000, (d % 1000) * 1000000 };
		while (nanosleep(&ts, &ts) && errno == EINTR)
			;
	}
	return 0;
}

/*
 * GET url with the deadline (D5): 0, -ENOENT (404), -EACCES (401/403),
 * DFS_ETIMEOUT, or -EIO; err gets one line. r's sink is reset per try.
 */
static int dw_get(struct dw *dw, const char *url, const char *accept, struct req *r,
		  int64_t deadline, char *err, size_t errlen)
{
	const struct curlload *cu = dw->cu;
	int64_t backoff = 250;
	/* D5: a server that failed in the last DW_DOWN_S gets one try, not
	 * DW_TRIES: a scan of many instances must not wait on each */
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	pthread_mutex_lock(&dw->lock);
	int tries = dw->state < 0 && rt.tv_sec - dw->last_fail < DW_DOWN_S ? 1 : DW_TRIES;
	pthread_mutex_unlock(&dw->lock);
	for (int attempt = 0;; attempt++) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			snprintf(err, errlen, "no answer before the deadline");
			state_set(dw, 0, err);
			return DFS_ETIMEOUT;
		}
		struct strbuf auth = STRBUF_INIT;
		int arc = auth_header(dw, &auth);
		if (arc) {
			snprintf(err, errlen, "bearer token file '%s': %s", dw->token_file,
				 arc == -EACCES ? "empty or unreadable" : strerror(-arc));
			strbuf_release(&auth);
			return -EACCES;
		}
		CURL *h = cu->easy_init();
		struct curl_slist *hl = NULL;
		char acc[160];
		if (!h) {
			strbuf_release(&auth);
			return -ENOMEM;
		}
		snprintf(acc, sizeof(acc), "Accept: %s", accept);
		hl = cu->slist_append(hl, acc);
		if (auth.len)
			hl = cu->slist_append(hl, auth.buf);
		strbuf_release(&auth);
		r->cu = cu;
		r->h = h;
		r->written = 0;
		r->mp = -1;
		r->in_body = 0;
		r->part_len = -1;
		r->retry_after = -1;
		r->werr = 0;
		r->stopped = 0;
		strbuf_reset(&r->pre);
		if (r->mem)
			strbuf_reset(r->mem);
		if (r->fd >= 0 && (ftruncate(r->fd, 0) || lseek(r->fd, 0, SEEK_SET) < 0)) {
			cu->slist_free_all(hl);
			cu->easy_cleanup(h);
			return -errno;
		}
		cu->easy_setopt(h, CURLOPT_URL, url);
		cu->easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		cu->easy_setopt(h, CURLOPT_SHARE, dw->share);
		cu->easy_setopt(h, CURLOPT_HTTPHEADER, hl);
		cu->easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)left);
		cu->easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
				(long)(left < DW_CONNECT_MS ? left : DW_CONNECT_MS));
		cu->easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		cu->easy_setopt(h, CURLOPT_WRITEDATA, r);
		cu->easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		cu->easy_setopt(h, CURLOPT_HEADERDATA, r);
		cu->easy_setopt(h, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		if (dw->netrc)
			cu->easy_setopt(h, CURLOPT_NETRC_FILE, dw->netrc);
		if (dw->cafile)
			cu->easy_setopt(h, CURLOPT_CAINFO, dw->cafile);
		if (r->mem)
			cu->easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
		cu->easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		CURLcode cc = cu->easy_perform(h);
		long code = 0;
		cu->easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		cu->slist_free_all(hl);
		cu->easy_cleanup(h);
		r->h = NULL;
		pthread_mutex_lock(&dw->lock);
		dw->requests++;
		dw->bytes += r->written + (r->mem ? r->mem->len : 0);
		if (attempt)
			dw->retries++;
		pthread_mutex_unlock(&dw->lock);

		int again = 0;
		if (cc == CURLE_WRITE_ERROR && r->stopped && code >= 200 && code < 300) {
			state_set(dw, 1, NULL);
			return DW_PARTIAL;   /* D3: the prefix, on purpose */
		}
		if (cc == CURLE_OK && code >= 200 && code < 300) {
			int rc = r->fd >= 0 ? mp_finish(r) : 0;
			if (rc) {
				snprintf(err, errlen, "%s: malformed multipart answer", url);
				state_set(dw, 0, err);
				return -EIO;
			}
			state_set(dw, 1, NULL);
			return 0;
		}
		if (cc == CURLE_OK) {
			snprintf(err, errlen, "%s: HTTP %ld", url, code);
			again = code == 429 || code == 503;
		} else if (r->werr) {
			snprintf(err, errlen, "cache file: %s", strerror(r->werr));
			return -r->werr;
		} else {
			snprintf(err, errlen, "%s: %s", url, cu->easy_strerror(cc));
			again = cc == CURLE_COULDNT_CONNECT || cc == CURLE_SEND_ERROR ||
				cc == CURLE_RECV_ERROR || cc == CURLE_GOT_NOTHING ||
				cc == CURLE_PARTIAL_FILE || cc == CURLE_COULDNT_RESOLVE_HOST;
		}
		if (!again || cc == CURLE_OPERATION_TIMEDOUT || attempt + 1 >= tries) {
			if (cc != CURLE_OK || code >= 500)
				state_set(dw, 0, err);
			else
				state_set(dw, 1, NULL);  /* it answered */
			if (cc == CURLE_OPERATION_TIMEDOUT)
				return DFS_ETIMEOUT;
			if (code == 404)
				return -ENOENT;
			if (code == 401 || code == 403)
				return -EACCES;
			return -EIO;
		}
		state_set(dw, 0, err);
		int64_t wait = backoff;
		if (r->retry_after >= 0 && r->retry_after * 1000 > wait)
			wait = r->retry_after * 1000;
		if (now_ms() + wait >= deadline) {
			/* no time for another try */
			return code ? -EIO : DFS_ETIMEOUT;
		}
		sleep_until(now_ms() + wait);
		backoff = backoff * 2 > 8000 ? 8000 : backoff * 2;
	}
}

/* ---- QIDO-RS (D1) ---- */

/* the first value of tag in a DICOM JSON object, as text (or NULL) */
static const char *json_first(json_object *o, const char *tag, char *buf, size_t cap)
{
	json_object *el, *v, *x;
	if (!json_object_object_get_ex(o, tag, &el) || !json_object_object_get_ex(el, "Value", &v) ||
	    json_object_get_type(v) != json_type_array || json_object_array_length(v) < 1)
		return NULL;
	x = json_object_array_get_idx(v, 0);
	if (!x)
		return NULL;
	if (json_object_get_type(x) == json_type_string)
		snprintf(buf, cap, "%s", json_object_get_string(x));
	else if (json_object_get_type(x) == json_type_int)
		snprintf(buf, cap, "%lld", (long long)json_object_get_int64(x));
	else
		return NULL;
	return buf;
}

/* a UID as it may go into a URL and a key: digits and dots only */
static int uid_ok(const char *u)
{
	size_t n = strlen(u);
	return n && n <= 64 && strspn(u, "0123456789.") == n;
}

typedef int (*qido_fn)(void *ctx, json_object *item);

/* every result of path?query, paged (D1); expected: the count, or -1 */
static int qido_all(struct dw *dw, const char *path, const char *query, int64_t expected,
		    const char *uid_tag, qido_fn fn, void *ctx, char *err, size_t errlen)
{
	struct strbuf body = STRBUF_INIT, url = STRBUF_INIT;
	struct req r = { .mem = &body, .fd = -1, .pre = STRBUF_INIT };
	int64_t offset = 0;
	char prev_first[80] = "";
	int rc = 0;
	for (;;) {
		strbuf_reset(&url);
		strbuf_addf(&url, "%s%s?limit=%d&offset=%lld%s%s", dw->base, path, DW_PAGE,
			    (long long)offset, query ? "&" : "", query ? query : "");
		if ((rc = strbuf_error(&url)))
			break;
		rc = dw_get(dw, url.buf, "application/dicom+json", &r,
			    now_ms() + DW_LIST_TIMEOUT_S * 1000, err, errlen);
		if (rc)
			break;
		json_object *a = body.len ? json_tokener_parse(strbuf_str(&body)) : NULL;
		if (body.len && (!a || json_object_get_type(a) != json_type_array)) {
			json_object_put(a);
			snprintf(err, errlen, "%s: not a JSON array", url.buf);
			rc = -EPROTO;
			break;
		}
		size_t n = a ? json_object_array_length(a) : 0;
		char first[80] = "";
		if (n)
			json_first(json_object_array_get_idx(a, 0), uid_tag, first, sizeof(first));
		/* a server that ignores offset gives the same page again */
		int repeat = n && offset && first[0] && !strcmp(first, prev_first);
		for (size_t i = 0; i < n && !rc && !repeat; i++)
			rc = fn(ctx, json_object_array_get_idx(a, i));
		json_object_put(a);
		if (rc || !n || repeat)
			break;
		snprintf(prev_first, sizeof(prev_first), "%s", first);
		offset += (int64_t)n;
		if (expected >= 0 && offset >= expected)
			break;
	}
	strbuf_release(&body);
	strbuf_release(&url);
	strbuf_release(&r.pre);
	return rc;
}

/* ---- the walk (D1, D2) ---- */

struct study {
	char uid[80];
	int64_t count;          /* NumberOfStudyRelatedInstances, -1 unknown */
	int64_t mtime_ns;
	char **keys;            /* "<series>/<sop>" */
	size_t n, cap;
	int listed;             /* keys are current */
	int rc;
	char err[256];
};

/* room for one more element of elem bytes in *v (n used of *cap) */
static int grow(void **v, size_t *cap, size_t n, size_t elem, size_t first)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : first;
	void *p = realloc(*v, c * elem);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = c;
	return 0;
}

static int study_add(struct study *s, const char *series, const char *sop)
{
	void *v = s->keys;
	int rc = grow(&v, &s->cap, s->n, sizeof(*s->keys), 64);
	s->keys = v;
	if (rc)
		return rc;
	if (asprintf(&s->keys[s->n], "%s/%s", series, sop) < 0)
		return -ENOMEM;
	s->n++;
	return 0;
}

static void study_clear(struct study *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->keys[i]);
	free(s->keys);
	s->keys = NULL;
	s->n = s->cap = 0;
}

struct studies {
	struct study *v;
	size_t n, cap;
};

static int64_t study_mtime(json_object *o)
{
	char d[32], t[32];
	struct tm tm = { 0 };
	if (!json_first(o, "00080020", d, sizeof(d)) || strlen(d) != 8 ||
	    strspn(d, "0123456789") != 8)
		return 0;
	tm.tm_year = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + d[3] - '0' - 1900;
	tm.tm_mon = (d[4] - '0') * 10 + d[5] - '0' - 1;
	tm.tm_mday = (d[6] - '0') * 10 + d[7] - '0';
	if (json_first(o, "00080030", t, sizeof(t)) && strspn(t, "0123456789") >= 6) {
		tm.tm_hour = (t[0] - '0') * 10 + t[1] - '0';
		tm.tm_min = (t[2] - '0') * 10 + t[3] - '0';
		tm.tm_sec = (t[4] - '0') * 10 + t[5] - '0';
	}
	time_t s = timegm(&tm);
	return s > 0 ? (int64_t)s * 1000000000 : 0;
}

static struct study *study_new(struct studies *ss, const char *uid)
{
	void *v = ss->v;
	int rc = grow(&v, &ss->cap, ss->n, sizeof(*ss->v), 256);
	ss->v = v;
	if (rc)
		return NULL;
	struct study *s = &ss->v[ss->n++];
	memset(s, 0, sizeof(*s));
	snprintf(s->uid, sizeof(s->uid), "%s", uid);
	return s;
}

static int on_study(void *ctx, json_object *o)
{
	struct studies *ss = ctx;
	char uid[80], cnt[32];
	if (!json_first(o, "0020000D", uid, sizeof(uid)) || !uid_ok(uid))
		return 0;   /* reported by the caller as a problem? a bad UID: left out */
	struct study *s = study_new(ss, uid);
	if (!s)
		return -ENOMEM;
	s->count = json_first(o, "00201208", cnt, sizeof(cnt)) ? strtoll(cnt, NULL, 10) : -1;
	s->mtime_ns = study_mtime(o);
	return 0;
}

static int on_instance(void *ctx, json_object *o)
{
	struct study *s = ctx;
	char se[80], sop[80];
	if (!json_first(o, "0020000E", se, sizeof(se)) || !json_first(o, "00080018", sop, sizeof(sop)) ||
	    !uid_ok(se) || !uid_ok(sop))
		return 0;
	return study_add(s, se, sop);
}

struct walkers {
	struct dw *dw;
	struct studies *ss;
	size_t next;
	pthread_mutex_t lock;
};

static void *walker(void *arg)
{
	struct walkers *w = arg;
	for (;;) {
		pthread_mutex_lock(&w->lock);
		while (w->next < w->ss->n && w->ss->v[w->next].listed)
			w->next++;
		size_t i = w->next < w->ss->n ? w->next++ : (size_t)-1;
		pthread_mutex_unlock(&w->lock);
		if (i == (size_t)-1)
			break;
		struct study *s = &w->ss->v[i];
		char path[128];
		snprintf(path, sizeof(path), "/studies/%s/instances", s->uid);
		study_clear(s);
		s->rc = qido_all(w->dw, path, "includefield=0020000E", s->count, "00080018",
				 on_instance, s, s->err, sizeof(s->err));
		s->listed = !s->rc;
	}
	return NULL;
}

/* catalog.tsv: "S\tuid\tcount\tmtime_ns" then "I\tseries/sop" lines (D2) */
static int catalog_load(struct dw *dw, struct studies *old)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/catalog.tsv", dw->cache_dir);
	FILE *f = fopen(p, "re");
	if (!f)
		return -errno;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int rc = 0;
	struct study *cur = NULL;
	while (!rc && (n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[--n] = 0;
		if (line[0] == 'S' && line[1] == '\t') {
			char uid[80];
			long long c, m;
			if (sscanf(line + 2, "%79[0-9.]\t%lld\t%lld", uid, &c, &m) != 3) {
				rc = -EINVAL;
				break;
			}
			cur = study_new(old, uid);
			if (!cur) {
				rc = -ENOMEM;
				break;
			}
			cur->count = c;
			cur->mtime_ns = m;
			cur->listed = 1;
		} else if (line[0] == 'I' && line[1] == '\t' && cur) {
			char *slash = strchr(line + 2, '/');
			if (!slash) {
				rc = -EINVAL;
				break;
			}
			*slash = 0;
			rc = study_add(cur, line + 2, slash + 1);
		} else {
			rc = -EINVAL;
		}
	}
	free(line);
	fclose(f);
	return rc;
}

static int catalog_save(struct dw *dw, const struct studies *ss)
{
	char p[PATH_MAX], t[PATH_MAX];
	snprintf(p, sizeof(p), "%s/catalog.tsv", dw->cache_dir);
	snprintf(t, sizeof(t), "%s/catalog.tsv.%d", dw->cache_dir, (int)getpid());
	FILE *f = fopen(t, "we");
	if (!f)
		return -errno;
	for (size_t i = 0; i < ss->n; i++) {
		const struct study *s = &ss->v[i];
		fprintf(f, "S\t%s\t%lld\t%lld\n", s->uid, (long long)s->count,
			(long long)s->mtime_ns);
		for (size_t k = 0; k < s->n; k++)
			fprintf(f, "I\t%s\n", s->keys[k]);
	}
	int bad = ferror(f);
	if (fclose(f) || bad || rename(t, p)) {
		unlink(t);
		return -EIO;
	}
	return 0;
}

static void studies_free(struct studies *ss)
{
	for (size_t i = 0; i < ss->n; i++)
		study_clear(&ss->v[i]);
	free(ss->v);
	ss->v = NULL;
	ss->n = ss->cap = 0;
}

static int cmp_study(const void *a, const void *b)
{
	return strcmp(((const struct study *)a)->uid, ((const struct study *)b)->uid);
}

static int cmp_entry(const void *a, const void *b)
{
	const struct source_entry *x = a, *y = b;
	return source_key_cmp(x->rel, x->rel_len, y->rel, y->rel_len);
}

static uint64_t key_hash(const char *rel, size_t len)
{
	return fnv1a(FNV1A_INIT, rel, len);
}

static int dw_walk(void *inst, struct source_list *out, source_problem_fn problem, void *ctx)
{
	struct dw *dw = inst;
	struct studies ss = { 0 }, old = { 0 };
	char err[256] = "";
	int rc;

	if (!dw->cache_dir)
		return -EINVAL;
	catalog_load(dw, &old);     /* none yet: a first mount */
	qsort(old.v, old.n, sizeof(*old.v), cmp_study);
	rc = qido_all(dw, "/studies", "includefield=00201208&includefield=00080020&includefield=00080030",
		      -1, "0020000D", on_study, &ss, err, sizeof(err));
	if (rc && old.n) {
		/* D2: offline; what was indexed stays browsable */
		dfs_log("%s: %s; using the last listing (%zu studies)", dw->base, err, old.n);
		problem(ctx, dw->base, "server did not answer the study listing: the last listing is used");
		studies_free(&ss);
		ss = old;
		old = (struct studies){ 0 };
		pthread_mutex_lock(&dw->lock);
		dw->offline = 1;
		pthread_mutex_unlock(&dw->lock);
		rc = 0;
	} else if (rc) {
		dfs_log("%s: %s", dw->base, err);
		goto out;
	} else {
		/* reuse what the catalog knows of a study whose count held (D2) */
		qsort(ss.v, ss.n, sizeof(*ss.v), cmp_study);
		/* one study UID under two patients: two results, one listing (D1) */
		size_t m = 0;
		for (size_t i = 0; i < ss.n; i++) {
			if (m && !strcmp(ss.v[m - 1].uid, ss.v[i].uid)) {
				struct study *a = &ss.v[m - 1];
				a->count = a->count < 0 || ss.v[i].count < 0 ? -1 : a->count + ss.v[i].count;
				if (ss.v[i].mtime_ns > a->mtime_ns)
					a->mtime_ns = ss.v[i].mtime_ns;
				continue;
			}
			ss.v[m++] = ss.v[i];
		}
		ss.n = m;
		for (size_t i = 0; i < ss.n; i++) {
			struct study *s = &ss.v[i];
			struct study *o = bsearch(s, old.v, old.n, sizeof(*old.v), cmp_study);
			if (o && s->count >= 0 && o->count == s->count && o->n == (size_t)s->count) {
				s->keys = o->keys;
				s->n = o->n;
				s->cap = o->cap;
				o->keys = NULL;
				o->n = o->cap = 0;
				s->listed = 1;
			}
		}
		struct walkers w = { .dw = dw, .ss = &ss };
		pthread_t th[DW_WALKERS];
		int nt = 0;
		pthread_mutex_init(&w.lock, NULL);
		for (; nt < DW_WALKERS; nt++)
			if (pthread_create(&th[nt], NULL, walker, &w))
				break;
		if (!nt)
			walker(&w);
		for (int i = 0; i < nt; i++)
			pthread_join(th[i], NULL);
		pthread_mutex_destroy(&w.lock);
		for (size_t i = 0; i < ss.n; i++) {
			struct study *s = &ss.v[i];
			if (s->rc == -ENOMEM) {
				rc = -ENOMEM;
				goto out;
			}
			if (s->rc) {
				/* a study that cannot be listed now: left out this time */
				problem(ctx, s->uid, s->err);
				dfs_log("study %s: %s", s->uid, s->err);
				s->count = -2;   /* never matches: listed again next time */
			}
		}
		if (catalog_save(dw, &ss))
			dfs_log("%s/catalog.tsv: cannot write it (the next mount lists everything again)",
				dw->cache_dir);
	}
	uid_t uid = getuid();
	gid_t gid = getgid();
	for (size_t i = 0; i < ss.n && !rc; i++) {
		struct study *s = &ss.v[i];
		for (size_t k = 0; k < s->n; k++) {
			void *v = out->v;
			rc = grow(&v, &out->cap, out->n, sizeof(*out->v), 1024);
			out->v = v;
			if (rc)
				break;
			struct source_entry *e = &out->v[out->n];
			memset(e, 0, sizeof(*e));
			if (asprintf(&e->rel, "%s/%s", s->uid, s->keys[k]) < 0) {
				rc = -ENOMEM;
				break;
			}
			e->rel_len = strlen(e->rel);
			e->st.st_mode = S_IFREG | 0444;     /* D9 */
			e->st.st_uid = uid;
			e->st.st_gid = gid;
			e->st.st_size = 0;                  /* R11 */
			e->st.st_mtim.tv_sec = s->mtime_ns / 1000000000;
			e->st.st_ino = (ino_t)key_hash(e->rel, e->rel_len);
			e->st.st_nlink = 1;
			out->n++;
		}
	}
	if (!rc) {
		qsort(out->v, out->n, sizeof(*out->v), cmp_entry);   /* R1 */
		/* R1: once each, whatever the server listed twice */
		size_t m = 0;
		for (size_t i = 0; i < out->n; i++) {
			if (m && !cmp_entry(&out->v[m - 1], &out->v[i])) {
				free(out->v[i].rel);
				continue;
			}
			out->v[m++] = out->v[i];
		}
		out->n = m;
	}
out:
	studies_free(&ss);
	studies_free(&old);
	return rc;
}

/* ---- the cache (D4) ---- */

struct cfile {
	char name[24];
	uint64_t size;
	int64_t mtime;
};

static int cmp_cfile(const void *a, const void *b)
{
	const struct cfile *x = a, *y = b;
	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* list the cache; remove the least recently used down to 90% when over */
static void cache_trim(struct dw *dw)
{
	DIR *d = opendir(dw->cache_dir);
	struct cfile *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t total = 0;
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		struct stat st;
		if (l != 20 || strcmp(de->d_name + 16, ".dcm") ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
			continue;
		void *nv = v;
		int grc = grow(&nv, &cap, n, sizeof(*v), 1024);
		v = nv;
		if (grc)
			break;
		snprintf(v[n].name, sizeof(v[n].name), "%s", de->d_name);
		v[n].size = (uint64_t)st.st_size;
		v[n].mtime = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
		total += v[n].size;
		n++;
	}
	if (total > dw->cache_max) {
		qsort(v, n, sizeof(*v), cmp_cfile);
		uint64_t goal = dw->cache_max / 10 * 9;
		for (size_t i = 0; i < n && total > goal; i++)
			if (unlinkat(dirfd(d), v[i].name, 0) == 0)
				total -= v[i].size;
	}
	closedir(d);
	free(v);
	pthread_mutex_lock(&dw->lock);
	dw->cache_used = total;
	dw->cache_added = 0;
	pthread_mutex_unlock(&dw->lock);
}

static void cache_account(struct dw *dw, uint64_t size)
{
	pthread_mutex_lock(&dw->lock);
	dw->cache_used += size;
	dw->cache_added += size;
	int trim = dw->cache_used > dw->cache_max || dw->cache_added > dw->cache_max / 8;
	pthread_mutex_unlock(&dw->lock);
	if (trim)
		cache_trim(dw);
}

/* the cache directory: made 0700 (it holds patient data, as the index) */
static int cache_setup(struct dw *dw, const char *dir, char *msg, size_t msglen)
{
	struct stat st;
	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(msg, msglen, "cache directory '%s': %s", dir, strerror(errno));
		return -errno;
	}
	if (stat(dir, &st) || !S_ISDIR(st.st_mode) || access(dir, W_OK)) {
		snprintf(msg, msglen, "cache directory '%s': not a writable directory", dir);
		return -EACCES;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		snprintf(msg, msglen, "cache directory '%s': owned by another user or open to others "
			 "(it holds patient data: make it 0700)", dir);
		return -EACCES;
	}
	free(dw->cache_dir);
	dw->cache_dir = strdup(dir);
	if (!dw->cache_dir)
		return -ENOMEM;
	cache_trim(dw);
	return 0;
}

/* ---- open, read (R2..R5, D3, D5) ---- */

#define CHANGED "source changed since it was indexed (remount to re-index)"

static int dw_open(void *inst, const char *rel, size_t rel_len, const struct source_expect *exp,
		   struct source_file *f, char *why, size_t whylen)
{
	struct dw *dw = inst;
	char key[256], path[PATH_MAX], tmp[PATH_MAX], err[320] = "";
	f->fd = -1;
	f->size = exp ? exp->size : 0;
	f->priv = NULL;
	if (rel_len >= sizeof(key) || !dw->cache_dir)
		return -ENOENT;
	memcpy(key, rel, rel_len);
	key[rel_len] = 0;
	char *se = strchr(key, '/'), *sop = se ? strchr(se + 1, '/') : NULL;
	if (!sop)
		return -ENOENT;
	*se++ = 0;
	*sop++ = 0;
	if (!uid_ok(key) || !uid_ok(se) || !uid_ok(sop))
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/%016llx.dcm", dw->cache_dir,
		 (unsigned long long)key_hash(rel, rel_len));

	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (!exp || (uint64_t)st.st_size == exp->size)) {
		futimens(fd, NULL);    /* D4: recently used */
		pthread_mutex_lock(&dw->lock);
		dw->hits++;
		pthread_mutex_unlock(&dw->lock);
		f->fd = fd;
		f->size = (uint64_t)st.st_size;
		return 0;
	}
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&dw->lock);
	dw->misses++;
	pthread_mutex_unlock(&dw->lock);

	static _Atomic unsigned seq;
	snprintf(tmp, sizeof(tmp), "%s/tmp.%d.%u", dw->cache_dir, (int)getpid(), seq++);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, sizeof(err), "cache file '%.200s': %s", tmp, strerror(errno));
		dfs_log("%.*s: %s", (int)rel_len, rel, err);
		if (why)
			snprintf(why, whylen, "%s", err);
		return -EIO;
	}
	struct strbuf url = STRBUF_INIT;
	struct req r = { .fd = fd, .pre = STRBUF_INIT };
	strbuf_addf(&url, "%s/studies/%s/series/%s/instances/%s", dw->base, key, se, sop);
	int rc = strbuf_error(&url);
	if (!exp)
		r.stop_at = dw->prefix;   /* the scan: the header is enough (D3) */
	if (!rc)
		rc = dw_get(dw, url.buf, DW_ACCEPT_DICOM, &r,
			    now_ms() + (int64_t)dw->timeout_s * 1000 * 5 / 6, err, sizeof(err));
	strbuf_release(&url);
	strbuf_release(&r.pre);
	if (rc == DW_PARTIAL) {
		/* a sparse file of the instance's size holding the prefix,
		 * kept out of the cache (R10) */
		struct dw_part *pt = malloc(sizeof(*pt) + rel_len);
		unlink(tmp);
		if (!pt || ftruncate(fd, (off_t)r.part_len)) {
			free(pt);
			close(fd);
			return -ENOMEM;
		}
		pt->have = r.written;
		pt->rel_len = rel_len;
		memcpy(pt->rel, rel, rel_len);
		f->fd = fd;
		f->size = (uint64_t)r.part_len;
		f->priv = pt;
		return 0;
	}
	if (!rc && fstat(fd, &st))
		rc = -errno;
	if (rc) {
		close(fd);
		unlink(tmp);
		dfs_log("%.*s: %s", (int)rel_len, rel, err);
		if (why)
			snprintf(why, whylen, "server: %s", err);
		return rc == -ENOENT ? -ENOENT : -EIO;
	}
	if (exp && (uint64_t)st.st_size != exp->size) {
		close(fd);
		unlink(tmp);
		if (why)
			snprintf(why, whylen, "%s", CHANGED);
		return -EIO;
	}
	if (rename(tmp, path)) {
		unlink(tmp);   /* the open fd keeps the bytes */
	} else {
		cache_account(dw, (uint64_t)st.st_size);
	}
	f->fd = fd;
	f->size = (uint64_t)st.st_size;
	return 0;
}

/* R10: the whole instance behind f's fd (its number kept: dup2) */
static int dw_need(void *inst, struct source_file *f, uint64_t upto)
{
	struct dw_part *pt = f->priv;
	struct source_expect exp = { f->size, 0, 0 };
	struct source_file whole;
	if (!pt || upto <= pt->have)
		return 0;
	int rc = dw_open(inst, pt->rel, pt->rel_len, &exp, &whole, NULL, 0);
	if (rc)
		return rc;
	rc = dup2(whole.fd, f->fd) < 0 ? -errno : 0;
	close(whole.fd);
	if (!rc)
		pt->have = f->size;
	return rc;
}

static int dw_read(void *inst, const struct source_file *f, void *buf, size_t len, uint64_t off)
{
	struct dw_part *pt = f->priv;
	if (pt && off + len > pt->have) {
		/* R7: the file is this thread's, its part state too */
		int rc = dw_need(inst, (struct source_file *)f, off + len);
		if (rc)
			return rc;
	}
	return source_pread_all(f->fd, buf, len, off);
}

static void dw_close(void *inst, struct source_file *f)
{
	(void)inst;
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	free(f->priv);
	f->priv = NULL;
}

/* ---- making it ---- */

static int dw_create(const char *spec, const struct source_opts *o, void **inst, char *msg,
		     size_t msglen)
{
	if (strncasecmp(spec, "http://", 7) && strncasecmp(spec, "https://", 8))
		return -ENOTSUP;
	const char *auth = strstr(spec, "://") + 3;
	size_t alen = strcspn(auth, "/?#");
	if (memchr(auth, '@', alen)) {
		snprintf(msg, msglen, "archive '%s': credentials in the URL are refused "
			 "(use -o netrc= or -o bearer_token_file=)", spec);
		return -EINVAL;
	}
	if (strpbrk(spec, "?# \t\r\n")) {
		snprintf(msg, msglen, "archive '%s': a DICOMweb base URL has no query, fragment or blanks",
			 spec);
		return -EINVAL;
	}
	const struct curlload *cu;
	char why[600];
	int lrc = curlload_get(&cu, why, sizeof(why));   /* curl_load.h L2 */
	if (lrc) {
		snprintf(msg, msglen, "archive '%s': %s", spec, why);
		return lrc;
	}
	struct dw *dw = calloc(1, sizeof(*dw));
	if (!dw)
		return -ENOMEM;
	dw->base = strdup(spec);
	size_t bl = dw->base ? strlen(dw->base) : 0;
	while (bl > 8 && dw->base[bl - 1] == '/')
		dw->base[--bl] = 0;
	dw->cafile = o && o->cafile ? strdup(o->cafile) : NULL;
	dw->token_file = o && o->bearer_token_file ? strdup(o->bearer_token_file) : NULL;
	dw->netrc = o && o->netrc_file ? strdup(o->netrc_file) : NULL;
	dw->cache_max = o && o->cache_bytes ? o->cache_bytes : DW_CACHE_DEFAULT;
	dw->timeout_s = o && o->timeout_s > 0 ? o->timeout_s : DW_TIMEOUT_S;
	dw->cu = cu;
	const char *pe = getenv("DICOMFS_DW_PREFIX");
	dw->prefix = pe && atoll(pe) > 0 ? (uint64_t)atoll(pe) : DW_PREFIX;
	pthread_mutex_init(&dw->lock, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&dw->share_lock[i], NULL);
	dw->share = cu->share_init();
	if (!dw->base || !dw->share) {
		*inst = dw;
		source_dicomweb.destroy(dw);
		return -ENOMEM;
	}
	cu->share_setopt(dw->share, CURLSHOPT_LOCKFUNC, share_lock);
	cu->share_setopt(dw->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	cu->share_setopt(dw->share, CURLSHOPT_USERDATA, dw);
	cu->share_setopt(dw->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	cu->share_setopt(dw->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	cu->share_setopt(dw->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	if (o && o->cache_dir) {
		int rc = cache_setup(dw, o->cache_dir, msg, msglen);
		if (rc) {
			source_dicomweb.destroy(dw);
			return rc == -ENOMEM ? rc : -EROFS;
		}
	}
	*inst = dw;
	return 0;
}

static int dw_use_dir(void *inst, const char *dir, char *msg, size_t msglen)
{
	return cache_setup(inst, dir, msg, msglen);
}

static void dw_destroy(void *inst)
{
	struct dw *dw = inst;
	if (!dw)
		return;
	if (dw->share)
		dw->cu->share_cleanup(dw->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&dw->share_lock[i]);
	pthread_mutex_destroy(&dw->lock);
	free(dw->base);
	free(dw->cache_dir);
	free(dw->cafile);
	free(dw->token_file);
	free(dw->netrc);
	free(dw->token);
	free(dw);
}

static const char *dw_name(void *inst)
{
	return ((struct dw *)inst)->base;
}

static void dw_status(void *inst, struct strbuf *t)
{
	struct dw *dw = inst;
	pthread_mutex_lock(&dw->lock);
	strbuf_addstr(t, "  \"source\": \"dicomweb\",\n  \"server\": {\"url\": ");
	strbuf_add_json_str(t, dw->base, strlen(dw->base));
	strbuf_addf(t, ", \"state\": \"%s\", \"offline_listing\": %s, \"last_ok\": %lld, "
		    "\"last_failure\": %lld, \"last_error\": ",
		    dw->state > 0 ? "up" : dw->state < 0 ? "down" : "unknown",
		    dw->offline ? "true" : "false", (long long)dw->last_ok, (long long)dw->last_fail);
	if (dw->last_error[0])
		strbuf_add_json_str(t, dw->last_error, strlen(dw->last_error));
	else
		strbuf_addstr(t, "null");
	strbuf_addf(t, ", \"requests\": %llu, \"retries\": %llu, \"failures\": %llu, "
		    "\"bytes_fetched\": %llu, \"cache_hits\": %llu, \"cache_misses\": %llu, "
		    "\"cache_bytes\": %llu, \"cache_limit\": %llu, \"cache_dir\": ",
		    (unsigned long long)dw->requests, (unsigned long long)dw->retries,
		    (unsigned long long)dw->failures, (unsigned long long)dw->bytes,
		    (unsigned long long)dw->hits, (unsigned long long)dw->misses,
		    (unsigned long long)dw->cache_used, (unsigned long long)dw->cache_max);
	if (dw->cache_dir)
		strbuf_add_json_str(t, dw->cache_dir, strlen(dw->cache_dir));
	else
		strbuf_addstr(t, "null");
	strbuf_addstr(t, "},\n");
	pthread_mutex_unlock(&dw->lock);
}

const struct source_ops source_dicomweb = {
	.name = "dicomweb",
	.create = dw_create,
	.destroy = dw_destroy,
	.walk = dw_walk,
	.open = dw_open,
	.read = dw_read,
	.close = dw_close,
	.watch = NULL,
	.can_change = 1,
	.sizes_at_open = 1,   /* R11 */
	.permissions = 0,     /* R9, D9 */
	.name_of = dw_name,
	.use_dir = dw_use_dir,
	.status = dw_status,
	.need = dw_need,
};
