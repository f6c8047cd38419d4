/*
 * scan.c - walk the archive, parse what changed, write the "files" DB.
 *
 * Design notes
 * - The archive's source (source.h) walks it and yields candidates in
 *   memcmp order of their relative paths (R1), the key order of the
 *   "files" DB, so the comparison with the index is one merge. Every byte
 *   parsed is read through the source too (here and in the parsers).
 * - A candidate whose (size, mtime_ns, st_ino) equals its record is not
 *   opened at all: a remount of an unchanged archive is a stat walk.
 * - Changed files are parsed by scan_threads workers; the main thread writes
 *   their records in candidate order (a bounded reorder window), committing
 *   every BATCH records. "tree_valid" is cleared in the first write
 *   transaction and set by the one that rebuilds the tree, so a crash in
 *   between makes the next mount rebuild the tree.
 * - Parsing: read a prefix (prefix_hint: what earlier headers needed, 4 to
 *   16 KiB), let dcmwalk find the header extent, widen to it when needed
 *   (never past MAX_HEADER), then hand GDCM exactly the header.
 * - Containment: with opts.worker_exe, parsing runs in "--parse-worker"
 *   child processes of a worker pool (worker.h; one child per scan thread,
 *   address space limited, W2). Jobs go out in batches of JOB_BATCH. A job
 *   whose child dies or exceeds JOB_TIMEOUT_MS (W1) becomes an error
 *   record for that one file; the child is replaced (W4) and the rest of
 *   its batch resent. DICOMFS_INPROCESS=1 (a benchmark knob, contrib/bench/
 *   bench_containment.sh) parses in threads of the mount process instead.
 * - Symlinks, loops, walk problems: source_local.c.
 */
#include <ctype.h>
#include <errno.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include "store.h"
#include "update.h"
#include "charset.h"
#include "dcmshim.h"
#include "dcmjson.h"
#include "dcmwalk.h"
#include "error.h"
#include "fgroups.h"
#include "pixels.h"
#include "record.h"
#include "source.h"
#include "tags.h"
#include "worker.h"
#include "feed.h"

#define PREFIX      (16 * 1024)
/* The first read is the pages the headers parsed so far by this thread
 * needed, PREFIX_MIN to PREFIX (prefix_hint): a read also copies what
 * follows the header (a small image's pixels), and a 4 KiB first read of
 * the 9 KiB files of bench_index parses 8-14% faster than 16 KiB
 * (parsebench, eight alternating runs). A longer header is read on
 * (dcmwalk's DFS_ENEEDMORE) and raises the hint for the files after it. */
#define PREFIX_MIN  (4 * 1024)
static _Thread_local size_t prefix_hint = PREFIX_MIN;
#define MAX_HEADER  ((uint64_t)256 << 20)
#define BATCH       4096
/* what dcmjson reads through the fd past the header when the pixel data is
 * native: its element header (12) and a value small enough to go inline */
#define NEED_AFTER_HEADER (16 + DCMJSON_INLINE_MAX)
#ifndef PKGLIBDIR
#define PKGLIBDIR "/usr/local/lib/dicomfs"
#endif
/* weak: the fuzz harnesses link the shim directly, without its loader */
extern int dcmshim_locate(char *path, size_t len) __attribute__((weak));
#define WINDOW      1024
#define JOB_BATCH   64
#define JOB_TIMEOUT_MS 30000
#define WORKER_AS_LIMIT ((rlim_t)4 << 30)

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* a problem of the walk: one errors.tsv line (R1) */
static void walk_problem(void *ctx, const char *path, const char *why)
{
	struct index *ix = ctx;
	strbuf_add_tsv2(&ix->walk_errors, path, why);
}

/* ---- parse ---- */

struct attr_ctx {
	struct rec_buf *rec;
	char charset[256];
	size_t charset_len;
	int warn;
	int err;
};

static int vr_is(const char vr[2], const char *s)
{
	return vr[0] == s[0] && vr[1] == s[1];
}

static void attr_cb(void *ctx, uint32_t tag, const char vr[2], const char *v,
		    size_t len)
{
	struct attr_ctx *a = ctx;
	int text_trim_lead = !(vr_is(vr, "ST") || vr_is(vr, "LT") || vr_is(vr, "UT"));
	int decode = vr_is(vr, "PN") || vr_is(vr, "LO") || vr_is(vr, "SH") ||
		     vr_is(vr, "ST") || vr_is(vr, "LT") || vr_is(vr, "UT") ||
		     vr_is(vr, "UC");
	while (len && (v[len - 1] == ' ' || v[len - 1] == 0))
		len--;
	while (text_trim_lead && len && v[0] == ' ') {
		v++;
		len--;
	}
	if (tag == TAG_SPECIFIC_CHARSET) {
		a->charset_len = len < sizeof(a->charset) ? len : sizeof(a->charset) - 1;
		memcpy(a->charset, v, a->charset_len);
	}
	if (decode && len) {
		char *out = NULL;
		size_t ol = 0;
		int rc = charset_to_utf8(a->charset, a->charset_len, v, len,
					 vr_is(vr, "PN"), &out, &ol);
		if (rc < 0) {
			a->err = rc;
			return;
		}
		if (rc == DFS_WARN_CHARSET)
			a->warn = 1;
		if (rec_add(a->rec, tag, vr, out, ol))
			a->err = -ENOMEM;
		free(out);
		return;
	}
	if (rec_add(a->rec, tag, vr, v, len))
		a->err = -ENOMEM;
}

/* The walk hands binary numbers over raw (little-endian): make them text
 * as dcmshim_parse_header does ("512", "0.5\\1", values split by '\\'). */
static void attr_cb_raw(void *ctx, uint32_t tag, const char vr[2],
			const uint8_t *v, size_t len)
{
	char text[1024];
	size_t o = 0, w = 0;
	if (vr_is(vr, "US") || vr_is(vr, "SS") || vr_is(vr, "AT"))
		w = 2;
	else if (vr_is(vr, "UL") || vr_is(vr, "SL") || vr_is(vr, "FL"))
		w = 4;
	else if (vr_is(vr, "FD") || vr_is(vr, "SV") || vr_is(vr, "UV"))
		w = 8;
	if (!w) {
		attr_cb(ctx, tag, vr, (const char *)v, len);
		return;
	}
	for (size_t i = 0; i + w <= len && o + 40 < sizeof(text); i += w) {
		uint64_t u = 0;
		for (size_t k = 0; k < w; k++)
			u |= (uint64_t)v[i + k] << (8 * k);
		if (i)
			text[o++] = '\\';
		if (vr_is(vr, "US") || vr_is(vr, "UL") || vr_is(vr, "UV"))
			o += (size_t)snprintf(text + o, sizeof(text) - o, "%llu", (unsigned long long)u);
		else if (vr_is(vr, "SS"))
			o += (size_t)snprintf(text + o, sizeof(text) - o, "%d", (int16_t)u);
		else if (vr_is(vr, "SL"))
			o += (size_t)snprintf(text + o, sizeof(text) - o, "%d", (int32_t)u);
		else if (vr_is(vr, "SV"))
			o += (size_t)snprintf(text + o, sizeof(text) - o, "%lld", (long long)u);
		else if (vr_is(vr, "AT"))
			o += (size_t)snprintf(text + o, sizeof(text) - o, "%04X", (unsigned)u);
		else if (vr_is(vr, "FL")) {
			uint32_t b32 = (uint32_t)u;
			float f;
			memcpy(&f, &b32, 4);
			o += dcmjson_fmt_float(f, text + o);
		} else {
			double d;
			memcpy(&d, &u, 8);
			o += dcmjson_fmt_double(d, text + o);
		}
	}
	attr_cb(ctx, tag, vr, text, o);
}

static int no_json(void)
{
	static int v = -1;
	if (v < 0)
		v = getenv("DICOMFS_NO_JSON") != NULL;
	return v;
}

static int is_dicomdir_name(const char *rel)
{
	const char *b = strrchr(rel, '/');
	b = b ? b + 1 : rel;
	return strcasecmp(b, "DICOMDIR") == 0;
}

struct pbuf {
	uint8_t *p;
	size_t cap;
};

/* b->p[have, want) from the source (DFS_ETRUNC: shrank since the walk) */
static int pbuf_fill(struct pbuf *b, const struct source *src, const struct source_file *f,
		     size_t have, size_t want)
{
	if (want > b->cap) {
		size_t cap = (want + 65535) & ~(size_t)65535;
		uint8_t *n = realloc(b->p, cap);
		if (!n)
			return -ENOMEM;
		b->p = n;
		b->cap = cap;
	}
	return want > have ? source_read(src, f, b->p + have, want - have, have) : 0;
}

/*
 * Instances with NumberOfFrames, and Siemens mosaics (ImageType MOSAIC), get
 * the frame table of their functional groups / CSA header (fgroups.h)
 * appended to rec (its tag sorts last). A header with neither, or one the
 * walk cannot read, gets none (volume.c then says why). 0 or -ENOMEM.
 */
static int frame_table(const uint8_t *file, const struct dcmwalk_result *w,
		       struct rec_buf *rec)
{
	long long nf = 1;
	size_t skip, tl;
	int whole;
	void *t = NULL;
	const char *it;
	size_t il;
	int frames = px_attr_long(rec->data, rec->len, TAG_NUMBER_OF_FRAMES, &nf) > 0;
	int mosaic = rec_attr(rec->data, rec->len, TAG_IMAGE_TYPE, &it, &il) &&
		     memmem(it, il, "MOSAIC", 6);
	if ((!frames && !mosaic) || nf < 1 || nf > UINT32_MAX)
		return 0;
	dcmjson_header_range(w, &skip, &whole);
	int rc = fg_collect(file + skip, (size_t)w->header_end - skip, whole, (uint32_t)nf,
			    &t, &tl);
	if (rc == -ENOMEM)
		return rc;
	if (rc == 0)
		rc = rec_add_blob(rec, FG_REC_TAG, "OB", t, tl);
	free(t);
	return rc == -ENOMEM ? rc : 0;
}

/* h's file attributes from st (the walk's, or R12's at open) */
static void head_from_stat(struct rec_head *h, const struct stat *st)
{
	h->mode = st->st_mode & 07777;
	h->uid = st->st_uid;
	h->gid = st->st_gid;
	h->size = (uint64_t)st->st_size;
	h->mtime_ns = mtime_ns(st);
	h->ino = st->st_ino;
}

/* R12: c's attributes when the walk did not stat it, as far as a stat
 * tells (nothing when it fails: the record keeps zeros, and the next scan
 * sees the file as changed) */
static void head_stat(struct index *ix, const struct source_entry *c, struct rec_head *h)
{
	struct stat st;
	if (source_entry_stat(&ix->src, c, &st) == 0)
		head_from_stat(h, &st);
}

/* Parse one candidate into rec (always a complete record, maybe an error). */
static void parse_one(struct index *ix, const struct source_entry *c, uint64_t id,
		      struct pbuf *b, struct rec_buf *rec)
{
	struct rec_head h = { 0 };
	struct dcmwalk_result w;
	struct dcmshim_info info;
	struct attr_ctx a = { 0 };
	uint64_t size = (uint64_t)c->st.st_size;
	uint64_t json_size = 0, json_bulk = 0;
	struct source_file sf = { .fd = -1 };
	int rc, opened = 0;

	h.version = REC_VERSION;
	h.id = id;
	head_from_stat(&h, &c->st);
	h.status = REC_ERROR;

	rc = source_open(&ix->src, c->rel, c->rel_len, NULL, &sf, NULL, 0);
	if (rc) {
		h.err = rc;
		if (!c->st.st_mode)   /* R12: what a stat can still say */
			head_stat(ix, c, &h);
		goto out;
	}
	opened = 1;
	if (!c->st.st_mode) {   /* R12: the walk did not stat it */
		struct stat st;
		if (sf.fd < 0 || fstat(sf.fd, &st)) {
			h.err = sf.fd < 0 ? -EIO : -errno;
			goto out;
		}
		if (!S_ISREG(st.st_mode)) {   /* swapped since the listing */
			h.status = REC_SKIPPED;
			h.err = DFS_ENOTDICOM;
			goto out;
		}
		head_from_stat(&h, &st);
		size = h.size;
	}
	if (ix->src.ops->sizes_at_open)   /* R11: the walk did not know it */
		h.size = size = sf.size;
	size_t have = size < prefix_hint ? (size_t)size : prefix_hint;
	rc = pbuf_fill(b, &ix->src, &sf, 0, have);
	for (;;) {
		if (rc)
			break;
		rc = dcmwalk_header(b->p, have, size, &w);
		if (rc != DFS_ENEEDMORE)
			break;
		uint64_t want = w.header_end;
		if (want < (uint64_t)have * 4)
			want = (uint64_t)have * 4;
		if (want > size)
			want = size;
		if (want > MAX_HEADER || want <= have) {
			rc = want > MAX_HEADER ? DFS_ETOOBIG : DFS_ETRUNC;
			break;
		}
		rc = pbuf_fill(b, &ix->src, &sf, have, (size_t)want);
		have = (size_t)want;
	}
	if (!rc && w.header_end + 16 > prefix_hint && prefix_hint < PREFIX) {
		/* the header and the Pixel Data element's own (12 bytes) */
		uint64_t want = (w.header_end + 16 + 4095) & ~(uint64_t)4095;
		prefix_hint = want < PREFIX ? (size_t)want : PREFIX;
	}
	/* sf stays open for the JSON (Pixel Data extent); closed at the end */
	if (rc == DFS_ENOTDICOM) {
		h.status = REC_SKIPPED;
		h.err = rc;
		goto out;
	}
	if (rc) {
		h.err = rc;
		goto out;
	}
	h.flags |= (w.encapsulated ? RECF_ENCAPSULATED : 0) |
		   (w.pixel_truncated ? RECF_PIXEL_TRUNC : 0) |
		   (w.deflated ? RECF_DEFLATED : 0) |
		   (w.big_endian ? RECF_BIG_ENDIAN : 0) |
		   (w.explicit_vr ? RECF_EXPLICIT_VR : 0) |
		   (w.has_meta ? RECF_HAS_META : 0);
	h.pixel_offset = w.deflated ? 0 : w.pixel_offset;
	h.pixel_length = w.deflated ? 0 : w.pixel_length;
	h.pixel_tag = w.pixel_tag;
	h.header_end = w.header_end > UINT32_MAX ? UINT32_MAX : (uint32_t)w.header_end;
	if (rec_begin(rec, &h))
		goto oom;
	a.rec = rec;
	/*
	 * One GDCM parse gives both the indexed attributes and the size of the
	 * instance's .json (dcmjson_build_attrs); when that fails, or JSON is
	 * off (DICOMFS_NO_JSON=1, a benchmark knob), the attributes alone.
	 */
	const uint32_t *tags = ix->tags ? ix->tags : dfs_tag_numbers();
	size_t ntags = ix->tags ? ix->ntags : dfs_ntags;
	int parsed = 0, partial = 0;
	if (!no_json()) {
		struct dcmjson_out jo = { 0 };
		struct dcmjson_attrs at = { tags, ntags, attr_cb_raw, &a };
		/* R10: what the JSON reads through the fd: the Pixel Data element
		 * header and a small value after the header, or the whole item
		 * stream (encapsulated) or data set (deflated) */
		uint64_t need = w.encapsulated || w.deflated ? size : w.header_end + NEED_AFTER_HEADER;
		if (ix->src.ops->need &&
		    (rc = ix->src.ops->need(ix->src.inst, &sf, need < size ? need : size))) {
			h.err = rc;
			goto out;
		}
		if (dcmjson_build_attrs(b->p, have, size, &w, sf.fd, &at, &jo) == 0 && !a.err) {
			parsed = 1;
			partial = jo.partial;
			json_size = jo.len;
			json_bulk = jo.nbulk;
		} else {
			/* start the attributes again on the plain path */
			if (rec_begin(rec, &h)) {
				dcmjson_release(&jo);
				goto oom;
			}
			a.err = a.warn = 0;
			a.charset_len = 0;
		}
		dcmjson_release(&jo);
	}
	if (!parsed) {
		/* GDCM trusts the meta transfer syntax and would read garbage
		 * lengths (and allocate gigabytes) when the data set disagrees:
		 * give it the data set alone and let it detect the encoding */
		size_t skip = w.ts_mismatch ? (size_t)w.dataset_start : 0;
		rc = dcmshim_parse_header(b->p + skip, (size_t)w.header_end - skip, w.deflated,
					  tags, ntags, attr_cb, &a, &info);
		if (a.err)
			goto oom;
		if (rc) {
			h.err = rc;
			goto out_keep;
		}
		partial = info.partial;
	}
	if (partial)
		h.flags |= RECF_PARTIAL;
	if (a.warn)
		h.flags |= RECF_CHARSET_WARN;
	{
		const char *v;
		size_t l;
		int have_uids = rec_attr(rec->data, rec->len, TAG_STUDY_INSTANCE_UID, &v, &l) && l &&
				rec_attr(rec->data, rec->len, TAG_SERIES_INSTANCE_UID, &v, &l) && l &&
				rec_attr(rec->data, rec->len, TAG_SOP_INSTANCE_UID, &v, &l) && l;
		if (have_uids) {
			h.status = REC_OK;
		} else if (w.dicomdir || is_dicomdir_name(c->rel)) {
			h.status = REC_SKIPPED;
			h.err = 0;
		} else {
			h.err = DFS_ENOUID;
		}
	}
	/* enhanced multi-frame: the frame table (fgroups.h), last in the record */
	if (h.status == REC_OK && frame_table(b->p, &w, rec))
		goto oom;
	/* the size of <instance>.json, without the instance name (dcmjson.h) */
	if (h.status == REC_OK) {
		h.json_size = json_size;
		h.json_bulk = json_bulk;
	}
out_keep:
	if (opened)
		source_close(&ix->src, &sf);
	/* keep the attributes read, patch the head */
	{
		struct rec_head cur;
		memcpy(&cur, rec->data, sizeof(cur));
		h.nattrs = cur.nattrs;
		memcpy(rec->data, &h, sizeof(h));
	}
	return;
oom:
	h.err = -ENOMEM;
	h.status = REC_ERROR;
out:
	if (opened)
		source_close(&ix->src, &sf);
	h.nattrs = 0;
	if (rec_begin(rec, &h) == 0)
		return;
	rec->len = 0;
}

/* ---- the parallel part ---- */

struct job {
	struct index *ix;
	struct source_entry **todo;  /* candidates to parse, in key order */
	uint64_t *ids;
	struct rec_buf *slots;   /* WINDOW slots, slot i % WINDOW */
	int *done;
	size_t n;
	size_t next;             /* next to claim (under lock) */
	size_t written;          /* consumed by the writer (under lock) */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_size_t parsed;
	struct worker_pool *pool;  /* parser processes, or NULL (in-process) */
};

/* slot i holds its record: hand it to the writer */
static void slot_store(struct job *j, size_t i)
{
	pthread_mutex_lock(&j->lock);
	j->done[i % WINDOW] = 1;
	atomic_fetch_add(&j->parsed, 1);
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
}

/* A scan thread parsing in this process. */
static void *parse_thread(void *arg)
{
	struct job *j = arg;
	struct pbuf b = { 0 };
	for (;;) {
		pthread_mutex_lock(&j->lock);
		while (j->next < j->n && j->next >= j->written + WINDOW)
			pthread_cond_wait(&j->cond, &j->lock);
		if (j->next >= j->n) {
			pthread_mutex_unlock(&j->lock);
			break;
		}
		size_t i = j->next++;
		pthread_mutex_unlock(&j->lock);

		parse_one(j->ix, j->todo[i], j->ids[i], &b, &j->slots[i % WINDOW]);
		slot_store(j, i);
	}
	free(b.p);
	return NULL;
}

/* ---- parser processes (worker.h) ----
 * A job is a frame tagged with its index in todo: struct job_msg, then
 * the relative path. The answer is a frame with the same tag whose
 * payload is the record.
 */

struct job_msg {
	uint64_t id, size, ino;
	int64_t mtime_ns;
	uint32_t mode, uid, gid, rel_len;
};

#define MAX_RECORD (16u << 20)

/* "00080016,00100010,...": the tag list of the parser processes */
static char *tags_arg(const struct index *ix)
{
	char *s = malloc(ix->ntags * 9 + 1);
	if (!s)
		return NULL;
	size_t o = 0;
	s[0] = 0;
	for (size_t i = 0; i < ix->ntags; i++)
		o += (size_t)sprintf(s + o, "%s%08X", i ? "," : "", ix->tags[i]);
	return s;
}

static int tags_from_arg(struct index *ix, const char *arg)
{
	size_t n = 0, cap = 0;
	ix->tags = NULL;
	ix->ntags = 0;
	if (!arg)
		return 0;
	for (const char *p = arg; *p;) {
		char *end;
		unsigned long t = strtoul(p, &end, 16);
		if (end == p)
			return -EINVAL;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			uint32_t *v = realloc(ix->tags, cap * sizeof(*v));
			if (!v)
				return -ENOMEM;
			ix->tags = v;
		}
		ix->tags[n++] = (uint32_t)t;
		p = *end == ',' ? end + 1 : end;
	}
	ix->ntags = n;
	return 0;
}

/*
 * GDCM allocates (and zeroes) whatever a garbage length says, up to 4 GiB,
 * before it finds the stream too short; on a crafted 1 KiB file that is
 * gigabytes and tens of seconds per file. So per file the worker's address
 * space may only grow by JOB_AS_BASE + JOB_AS_PER_BYTE x the file size
 * (soft limit, under the hard WORKER_AS_LIMIT): such an allocation fails
 * at once (std::bad_alloc, caught in the shim: "GDCM cannot parse").
 * The limit is set on the way into GDCM (job_guard, dcmshim_set_guard), so
 * only for the files GDCM reads; the C code bounds its own allocations by
 * the file size.
 */
#define JOB_AS_BASE ((uint64_t)256 << 20)
#define JOB_AS_PER_BYTE 8
static void job_as_limit(uint64_t size)
{
#ifndef __SANITIZE_ADDRESS__
	static int fd = -2;
	char b[64];
	unsigned long long vm_pages = 0;
	if (fd == -2)
		fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? pread(fd, b, sizeof(b) - 1, 0) : -1;
	if (n <= 0)
		return;
	b[n] = 0;
	vm_pages = strtoull(b, NULL, 10);
	if (size > MAX_HEADER)
		size = MAX_HEADER;
	uint64_t lim = vm_pages * (uint64_t)sysconf(_SC_PAGESIZE) + JOB_AS_BASE +
		       JOB_AS_PER_BYTE * size;
	struct rlimit rl = { lim < WORKER_AS_LIMIT ? lim : WORKER_AS_LIMIT, WORKER_AS_LIMIT };
	setrlimit(RLIMIT_AS, &rl);
#else
	(void)size;
#endif
}

/* the current job's limit, set when GDCM is first entered for it (a file
 * the C walker reads alone costs no statm read and no setrlimit) */
static uint64_t guard_size;
static int guard_set;

static void job_guard(void *ctx)
{
	(void)ctx;
	if (!guard_set) {
		job_as_limit(guard_size);
		guard_set = 1;
	}
}

/* back to the hard limit after a job that set its own */
static void job_unguard(void)
{
	if (!guard_set)
		return;
	guard_set = 0;
#ifndef __SANITIZE_ADDRESS__
	struct rlimit rl = { WORKER_AS_LIMIT, WORKER_AS_LIMIT };
	setrlimit(RLIMIT_AS, &rl);
#endif
}

int index_parse_worker_main(const char *archive, const char *tags, char *srcopts)
{
	struct worker ch;
	struct index ix = { 0 };
	struct pbuf b = { 0 };
	struct rec_buf rec = { 0 };
	struct source_opts so = { 0 };
	char rel[PATH_MAX], msg[256];
	int rc = 0;

	worker_child_begin(&ch);   /* W3 (the limits are the pool's, W2) */
	if (tags_from_arg(&ix, tags) || (srcopts && source_opts_parse(srcopts, &so)) ||
	    source_create(archive, &so, &ix.src, msg, sizeof(msg))) {
		free(ix.tags);
		return 1;
	}
	/* GDCM (dicomfs-gdcm.so, ~0.1 s and 22 MiB of address space to load)
	 * is loaded by the first file that needs it: with the C header walker
	 * (dcmelem.h) a worker given only explicit/implicit VR little endian
	 * files never does. The per-file address space limit (job_as_limit)
	 * is set on the way into GDCM (dcmshim_set_guard), after the load. */
	dcmshim_set_guard(job_guard, NULL);
	for (;;) {
		struct worker_head hd;
		struct job_msg m;
		struct source_entry c = { 0 };
		/* answers what is done before it waits for more work (W6) */
		if (worker_recv_head(&ch, &hd))
			break;     /* end of input */
		if (hd.len < sizeof(m) || hd.len - sizeof(m) >= sizeof(rel) ||
		    worker_recv_body(&ch, &m, sizeof(m)) || m.rel_len != hd.len - sizeof(m) ||
		    worker_recv_body(&ch, rel, m.rel_len)) {
			rc = 1;
			break;
		}
		rel[m.rel_len] = 0;
		c.rel = rel;
		c.rel_len = m.rel_len;
		c.st.st_size = (off_t)m.size;
		c.st.st_mtim.tv_sec = m.mtime_ns / 1000000000;
		c.st.st_mtim.tv_nsec = m.mtime_ns % 1000000000;
		c.st.st_ino = m.ino;
		c.st.st_mode = m.mode;
		c.st.st_uid = m.uid;
		c.st.st_gid = m.gid;
		guard_size = m.size;
		parse_one(&ix, &c, m.id, &b, &rec);
		job_unguard();
		struct iovec iov = { rec.data, rec.len };
		if (worker_queue(&ch, hd.tag, 0, &iov, 1)) {
			rc = 1;
			break;
		}
	}
	if (worker_flush(&ch))
		rc = 1;
	worker_child_end(&ch);
	rec_release(&rec);
	free(b.p);
	source_destroy(&ix.src);
	free(ix.tags);
	return rc;
}

static void error_record(struct job *j, size_t i, int err, const char *why)
{
	struct source_entry *c = j->todo[i];
	struct rec_head h = { 0 };
	h.version = REC_VERSION;
	h.id = j->ids[i];
	h.status = REC_ERROR;
	h.err = err;
	head_stat(j->ix, c, &h);
	if (rec_begin(&j->slots[i % WINDOW], &h))
		j->slots[i % WINDOW].len = 0;
	dfs_log("%s: %s (%s)", c->rel, dfs_strerror(err), why);
}

/* The answer to job i into its slot: 0, or the child failed (W4). */
static int proc_answer(struct job *j, struct worker *w, size_t i)
{
	struct worker_head hd;
	struct rec_buf *res = &j->slots[i % WINDOW];
	int rc = worker_recv_head(w, &hd);   /* W1 */
	if (rc)
		return rc;
	if (hd.tag != i || hd.len > MAX_RECORD)
		return -EPROTO;
	if (hd.len > res->cap) {
		unsigned char *p = realloc(res->data, hd.len);
		if (!p)
			return -ENOMEM;
		res->data = p;
		res->cap = hd.len;
	}
	rc = worker_recv_body(w, res->data, hd.len);
	if (rc)
		return rc;
	res->len = hd.len;
	slot_store(j, i);
	return 0;
}

/*
 * Drive one parser process. Jobs go out in batches; the child answers a
 * batch at once, so when it dies the culprit is not known: the unanswered
 * jobs are then resent one at a time ("suspects"), and a child dying on a
 * single job convicts that file.
 */
static void *proc_worker(void *arg)
{
	struct job *j = arg;
	struct worker *w;
	size_t batch[JOB_BATCH], nb = 0, suspects = 0;

	if (worker_get(j->pool, &w))
		return parse_thread(arg);    /* no children (W7): in-process */
	for (;;) {
		if (nb == 0) {
			pthread_mutex_lock(&j->lock);
			while (j->next < j->n && j->next >= j->written + WINDOW)
				pthread_cond_wait(&j->cond, &j->lock);
			while (nb < JOB_BATCH && j->next < j->n &&
			       j->next < j->written + WINDOW)
				batch[nb++] = j->next++;
			pthread_mutex_unlock(&j->lock);
			if (nb == 0)
				break;
		}
		size_t send = suspects ? 1 : nb, k = 0;
		int rc = 0;
		for (size_t q = 0; q < send && !rc; q++) {
			struct source_entry *c = j->todo[batch[q]];
			struct job_msg m = { j->ids[batch[q]], (uint64_t)c->st.st_size,
					     c->st.st_ino, mtime_ns(&c->st), c->st.st_mode,
					     c->st.st_uid, c->st.st_gid, (uint32_t)c->rel_len };
			struct iovec iov[2] = { { &m, sizeof(m) }, { c->rel, c->rel_len } };
			rc = worker_queue(w, batch[q], 0, iov, 2);
		}
		while (!rc && k < send && !(rc = proc_answer(j, w, batch[k])))
			k++;
		if (!rc) {
			memmove(batch, batch + send, (nb - send) * sizeof(*batch));
			nb -= send;
			if (suspects)
				suspects--;
			continue;
		}
		/* the child died, hung or misbehaved: replace it (W4) */
		char why[96] = "";
		int st = 0;
		worker_put(j->pool, w, WORKER_KILL, &st);
		worker_status_text(st, why, sizeof(why));
		if (send == 1) {
			error_record(j, batch[0], rc == DFS_ETIMEOUT ? DFS_ETIMEOUT : DFS_ECRASH,
				     rc == DFS_ETIMEOUT ? "killed" : why);
			slot_store(j, batch[0]);
			k = 1;
			if (suspects)
				suspects--;
		} else {
			suspects = nb - k;
		}
		memmove(batch, batch + k, (nb - k) * sizeof(*batch));
		nb -= k;
		if (worker_get(j->pool, &w)) {
			/* no more children: finish in-process */
			for (size_t q = 0; q < nb; q++) {
				struct pbuf b = { 0 };
				parse_one(j->ix, j->todo[batch[q]], j->ids[batch[q]], &b,
					  &j->slots[batch[q] % WINDOW]);
				free(b.p);
				slot_store(j, batch[q]);
			}
			return parse_thread(arg);
		}
	}
	worker_put(j->pool, w, WORKER_KEEP, NULL);
	return NULL;
}

static int nproc(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/*
 * The indexed tag set: dfs_tags[] + -o index_tags + what the index already
 * holds (meta "tags": u32 array, ascending). When it grows, every record
 * lacks the new tags' values, which are only in the files: all files are
 * re-parsed (the simplest honest approach; ids and so inode numbers are
 * kept). A tag set never shrinks: a tag once added stays indexed.
 */
static int scan_tags(struct index *ix, MDB_txn *txn, int *reparse_all)
{
	MDB_val k = { 4, "tags" }, d;
	size_t nold = 0, n = dfs_ntags + ix->opts.n_extra_tags, nnew = 0;
	const uint32_t *old = NULL;
	MDB_stat fst;
	int rc = mdb_get(txn, ix->meta, &k, &d);
	if (rc == 0 && d.mv_size % 4 == 0) {
		old = d.mv_data;
		nold = d.mv_size / 4;
	}
	uint32_t *v = malloc((n + nold + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memcpy(v, dfs_tag_numbers(), dfs_ntags * sizeof(*v));
	if (ix->opts.n_extra_tags)
		memcpy(v + dfs_ntags, ix->opts.extra_tags, ix->opts.n_extra_tags * sizeof(*v));
	if (nold)
		memcpy(v + n, old, nold * sizeof(*v));
	n = tags_sort_unique(v, n + nold);
	free(ix->tags);
	ix->tags = v;
	ix->ntags = n;
	/* tags new to this index (named only when files must be re-parsed:
	 * GDCM's dictionary is not loaded for a fresh index) */
	struct strbuf added = STRBUF_INIT;
	int have_files = mdb_stat(txn, ix->files, &fst) == 0 && fst.ms_entries > 0;
	for (size_t i = 0; i < n; i++) {
		int have = 0;
		for (size_t j = 0; j < nold && !have; j++)
			have = old[j] == v[i];
		if (!have) {
			char kw[80];
			char vr[3];
			nnew++;
			if (!have_files)
				continue;
			const struct dfs_tag *dt = tags_by_tag(v[i]);
			if (dt)
				snprintf(kw, sizeof(kw), "%s", dt->keyword);
			else if (dcmdict_by_tag(v[i], vr, kw, sizeof(kw)))
				snprintf(kw, sizeof(kw), "private");
			strbuf_addf(&added, "%s%08X (%s)", added.len ? ", " : "", v[i], kw);
		}
	}
	if (nnew && have_files) {
		*reparse_all = 1;
		ix->stats.tags_reindexed = 1;
		free(ix->tags_note);
		ix->tags_note = NULL;
		if (asprintf(&ix->tags_note,
			     "the indexed tag set grew by %zu tag(s): %s; the index held %zu tags "
			     "and their values are only in the files, so all %zu indexed files "
			     "are re-parsed once (inode numbers are kept)",
			     nnew, strbuf_str(&added), nold, (size_t)fst.ms_entries) < 0)
			ix->tags_note = NULL;
		if (ix->tags_note)
			dfs_log("index '%s': %s", ix->path, ix->tags_note);
	}
	strbuf_release(&added);
	if (nnew || nold != n) {
		MDB_val dd = { n * sizeof(*v), v };
		rc = dfs_from_mdb(mdb_put(txn, ix->meta, &k, &dd, 0));
		if (rc)
			return rc;
	}
	return 0;
}

struct worker_pool *scan_pool_new(struct index *ix, int max)
{
	struct worker_pool *pool = NULL;
	if (!ix->opts.worker_exe || getenv("DICOMFS_INPROCESS"))
		return NULL;
	char *targ = tags_arg(ix);
	struct strbuf sarg = STRBUF_INIT;
	if (source_opts_arg(&ix->src_opts, &sarg) || !sarg.buf) {
		free(targ);
		targ = NULL;
	}
	const char *args[] = { "--parse-worker", ix->archive_real, targ, sarg.buf, NULL };
	struct worker_spec ws = { .exe = ix->opts.worker_exe, .args = args,
				  .as_limit = WORKER_AS_LIMIT, .max = max,
				  .timeout_ms = JOB_TIMEOUT_MS };
	if (!targ || worker_pool_new(&ws, &pool))
		pool = NULL;
	free(targ);
	strbuf_release(&sarg);
	return pool;
}

int scan_parsers(void)
{
	return 2 * nproc();
}

/* a walk problem seen by a live update: logged (walk_errors is the mount
 * scan's, read by errors.tsv while mounted) */
static void live_problem(void *ctx, const char *path, const char *why)
{
	(void)ctx;
	dfs_log("%s: %s", path, why);
}

/* the last component starts with '.' */
static int hidden_name(const char *rel)
{
	const char *b = strrchr(rel, '/');
	return (b ? b[1] : rel[0]) == '.';
}

static int push_id(struct scan_scope *sc, uint64_t id)
{
	if (sc->nupdated == sc->cupdated) {
		size_t cap = sc->cupdated ? sc->cupdated * 2 : 64;
		uint64_t *v = realloc(sc->updated, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		sc->updated = v;
		sc->cupdated = cap;
	}
	sc->updated[sc->nupdated++] = id;
	return 0;
}

/* tree_update's counts of the records a live update replaces (I11) */
static void old_status(const void *rec, size_t len, struct tree_changes *tcs)
{
	struct rec_head h;
	if (rec_head_get(rec, len, &h))
		return;
	if (h.status == REC_SKIPPED)
		tcs->old_skipped++;
	else if (h.status != REC_OK)
		tcs->old_errors++;
}

int scan_update(struct index *ix, struct scan_scope *sc, char *msg, size_t msglen)
{
	struct source_list *lists = NULL;
	size_t nlists = sc && sc->roots ? sc->nroots : 1, ncand = 0;
	const char *const full_root[] = { "" };
	const char *const *roots = sc && sc->roots ? sc->roots : full_root;
	int live = sc && sc->live;
	struct source_entry **todo = NULL;
	uint64_t *ids = NULL;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	uint64_t next_id = ID_FIRST, tree_valid = 0;
	size_t ntodo = 0, removed = 0;
	struct feed_batch fb = { 0 };
	struct tree_changes tcs = { 0 };
	double t0 = now_s();
	int rc, feed = live;

	/* GDCM is not loaded here: the parser processes load it (dcmshim.h) */
	signal(SIGPIPE, SIG_IGN); /* a dying parser must not take us with it */
	if (!live)
		index_progress_line(ix, "walk: listing '%s'", ix->archive_real);
	lists = calloc(nlists, sizeof(*lists));
	if (!lists)
		return -ENOMEM;
	/* source.h R12: no records to compare the files with (a first
	 * build): what is plainly a regular file is stat()ed when opened */
	int names_only = 0;
	if (!live) {
		MDB_txn *rt;
		MDB_stat fs0;
		if (mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &rt) == 0) {
			names_only = mdb_stat(rt, ix->files, &fs0) == 0 && fs0.ms_entries == 0;
			mdb_txn_abort(rt);
		}
	}
	for (size_t r = 0; r < nlists; r++) {
		rc = live ? source_walk_under(&ix->src, roots[r], strlen(roots[r]), &lists[r],
					      live_problem, ix)
		     : names_only ? source_walk_names(&ix->src, &lists[r], walk_problem, ix)
				  : source_walk(&ix->src, &lists[r], walk_problem, ix);   /* R1: sorted */
		if (rc) {
			snprintf(msg, msglen, "scanning '%s': %s", ix->archive_real,
				 dfs_strerror(rc));
			goto free_cands;
		}
		ncand += lists[r].n;
	}
	if (!live) {
		ix->stats.files_seen = ncand;
		ix->stats.walk_seconds = now_s() - t0;
		index_progress_line(ix, "walk: %zu files in %.2f s (%.0f files/s)", ncand,
				    ix->stats.walk_seconds, ix->stats.walk_seconds > 0 ?
				    ncand / ix->stats.walk_seconds : 0);
		store_map_fit(ix, ncand);   /* no txn yet (store.h S3) */
	}
	todo = malloc((ncand + 1) * sizeof(*todo));
	ids = malloc((ncand + 1) * sizeof(*ids));
	if (!todo || !ids) {
		rc = -ENOMEM;
		goto free_cands;
	}

	rc = dfs_from_mdb(mdb_txn_begin(ix->env, NULL, 0, &txn));
	if (rc)
		goto free_cands;
	meta_get_u64(txn, ix->meta, "next_id", &next_id);
	meta_get_u64(txn, ix->meta, "tree_valid", &tree_valid);
	/* anon/'s names depend on its key and its burned-in policy
	 * (view_anon.c): another key or policy, another tree */
	char anon_conf[32];
	deid_key_id(&ix->anon_key, anon_conf);
	strcat(anon_conf, ix->opts.anon_keep_burned_in ? " keep" : " drop");
	MDB_val ack = { 9, "anon_conf" }, acd;
	if (mdb_get(txn, ix->meta, &ack, &acd) || acd.mv_size != strlen(anon_conf) ||
	    memcmp(acd.mv_data, anon_conf, acd.mv_size))
		tree_valid = 0;
	/* the kinds listed (-o files, fs/kinds.c): other kinds, another tree */
	uint64_t tree_kinds = 0;
	if (meta_get_u64(txn, ix->meta, "tree_kinds", &tree_kinds) || tree_kinds != ix->opts.kinds)
		tree_valid = 0;
	if (next_id < ID_FIRST)
		next_id = ID_FIRST;
	int reparse_all = 0;
	if (!live) {
		rc = scan_tags(ix, txn, &reparse_all);
		if (rc)
			goto abort;
	}

	/* merge the sorted candidates with the files DB, root by root */
	MDB_stat fst;
	int append = mdb_stat(txn, ix->files, &fst) == 0 && fst.ms_entries == 0;
	/* I10: an index that has records and keeps them gets feed lines */
	if (!live)
		feed = !append && !reparse_all;
	rc = dfs_from_mdb(mdb_cursor_open(txn, ix->files, &cur));
	if (rc)
		goto abort;
	/* I9: mtimes after `young` (and not far in the future) are deferred */
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	int64_t young = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec -
			(int64_t)LIVE_STABLE_MS * 1000000;
	int64_t young_hidden = young - (int64_t)(LIVE_HIDDEN_MS - LIVE_STABLE_MS) * 1000000;
	for (size_t r = 0; r < nlists; r++) {
		struct source_list *cv = &lists[r];
		const char *root = roots[r];
		size_t rl = strlen(root);
		MDB_val k = { rl, (void *)root }, d;
		int mrc = rl ? mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE)
			     : mdb_cursor_get(cur, &k, &d, MDB_FIRST);
		size_t ci = 0;
		for (;;) {
			/* the records under root: keys with its prefix, of which
			 * those that are not below it ("a.b" for "a") are skipped */
			int in_db = mrc == 0 && k.mv_size >= rl && memcmp(k.mv_data, root, rl) == 0;
			if (in_db && !source_under(root, rl, k.mv_data, k.mv_size)) {
				mrc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
				continue;
			}
			if (ci >= cv->n && !in_db)
				break;
			int c;
			if (!in_db)
				c = -1;
			else if (ci >= cv->n)
				c = 1;
			else
				c = source_key_cmp(cv->v[ci].rel, cv->v[ci].rel_len, k.mv_data,
						   k.mv_size);
			/* I9: a file found in a directory (or a rescan) that was
			 * written moments ago may still grow: later. (A file the
			 * watch reported by name was closed or moved in, R8,
			 * unless its name is hidden: the temporary name of cp/mv
			 * and rsync, renamed right after.) */
			if (c <= 0 && live &&
			    ((cv->v[ci].rel_len != rl && mtime_ns(&cv->v[ci].st) > young) ||
			     (hidden_name(cv->v[ci].rel) && mtime_ns(&cv->v[ci].st) > young_hidden)) &&
			    mtime_ns(&cv->v[ci].st) < young + (int64_t)2000000000) {
				if (sc->defer)
					sc->defer(sc->ctx, cv->v[ci].rel, cv->v[ci].rel_len);
				ci++;
				if (c == 0)
					mrc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
				continue;
			}
			if (c < 0) {            /* new file */
				if (feed && (rc = feed_note(&fb, cv->v[ci].rel, cv->v[ci].rel_len,
							    NULL, 0)))
					goto abort;
				todo[ntodo] = &cv->v[ci];
				ids[ntodo++] = next_id++;
				ci++;
			} else if (c > 0) {     /* gone */
				if (feed && (rc = feed_note(&fb, k.mv_data, k.mv_size, d.mv_data,
							    d.mv_size)))
					goto abort;
				old_status(d.mv_data, d.mv_size, &tcs);
				rc = dfs_from_mdb(mdb_cursor_del(cur, 0));
				if (rc)
					goto abort;
				removed++;
				mrc = mdb_cursor_get(cur, &k, &d, MDB_GET_CURRENT);
				if (mrc == 0)
					continue;  /* cursor now on the next record */
				mrc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
			} else {
				struct rec_head h;
				struct source_entry *cd = &cv->v[ci];
				if (rec_head_get(d.mv_data, d.mv_size, &h) || reparse_all ||
				    (!ix->src.ops->sizes_at_open &&   /* R11 */
				     h.size != (uint64_t)cd->st.st_size) ||
				    (ix->src.ops->sizes_at_open && h.status == REC_ERROR &&
				     (h.err == -EIO || h.err == -ENOENT || h.err == -EACCES ||
				      h.err == DFS_ETIMEOUT)) ||   /* R11: not fetched: again */
				    h.mtime_ns != mtime_ns(&cd->st) || h.ino != cd->st.st_ino ||
				    h.mode != (cd->st.st_mode & 07777) || h.uid != cd->st.st_uid ||
				    h.gid != cd->st.st_gid) {
					int keep = h.version == REC_VERSION && h.id;
					if (feed && (rc = feed_note(&fb, cd->rel, cd->rel_len, d.mv_data,
								    d.mv_size)))
						goto abort;
					old_status(d.mv_data, d.mv_size, &tcs);
					if (sc && keep && (rc = push_id(sc, h.id)))
						goto abort;
					todo[ntodo] = cd;
					ids[ntodo++] = keep ? h.id : next_id++;
				}
				ci++;
				mrc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
			}
		}
	}
	mdb_cursor_close(cur);
	cur = NULL;
	if (!live)
		ix->stats.files_removed = removed;
	if (live)
		ix->stats.files_seen = ix->stats.files_seen + ntodo - sc->nupdated >= removed ?
			ix->stats.files_seen + ntodo - sc->nupdated - removed : 0;

	if (ntodo || removed || !tree_valid) {
		rc = meta_put_u64(txn, ix->meta, "tree_valid", 0);
		if (rc)
			goto abort;
	}
	double tp = now_s();
	if (ntodo && ix->opts.worker_exe && dcmshim_locate) {
		char mod[PATH_MAX];
		if (dcmshim_locate(mod, sizeof(mod))) {
			rc = -ENOENT;
			snprintf(msg, msglen, "cannot find the GDCM module dicomfs-gdcm.so next to "
				 "the executable or in %s (set DICOMFS_GDCM=PATH, or make install); "
				 "%zu files need parsing", PKGLIBDIR, ntodo);
			mdb_txn_abort(txn);
			txn = NULL;
			goto free_cands;
		}
	}
	if (ntodo) {
		struct job j = { .ix = ix, .todo = todo, .ids = ids, .n = ntodo };
		/* more parsers than cores: a cold cache leaves them waiting on I/O */
		int nt = ix->opts.scan_threads > 0 ? ix->opts.scan_threads : 2 * nproc();
		int nt_pool = nt;
		pthread_t th[256];
		double pstart = index_progress_now();
		ix->progress_last = ix->progress_t1 = 0;
		ix->progress_d1 = 0;
		if (nt > 256)
			nt = 256;
		if ((size_t)nt > ntodo)
			nt = (int)ntodo;
		j.slots = calloc(WINDOW, sizeof(*j.slots));
		j.done = calloc(WINDOW, sizeof(*j.done));
		if (!j.slots || !j.done) {
			free(j.slots);
			free(j.done);
			rc = -ENOMEM;
			goto abort;
		}
		if (live && sc->pool && *sc->pool) {
			j.pool = *sc->pool;   /* I9: kept between batches */
		} else {
			/* (without a pool: parse in-process) */
			j.pool = scan_pool_new(ix, live ? nt_pool : nt);
			if (live && sc->pool)
				*sc->pool = j.pool;
		}
		pthread_mutex_init(&j.lock, NULL);
		pthread_cond_init(&j.cond, NULL);
		int started = 0;
		for (; started < nt; started++)
			if (pthread_create(&th[started], NULL,
					   j.pool ? proc_worker : parse_thread, &j))
				break;
		if (!started) {
			rc = -EAGAIN;
			goto join;
		}
		for (size_t i = 0; i < ntodo; i++) {
			pthread_mutex_lock(&j.lock);
			while (!j.done[i % WINDOW])
				pthread_cond_wait(&j.cond, &j.lock);
			pthread_mutex_unlock(&j.lock);
			struct rec_buf *rb = &j.slots[i % WINDOW];
			MDB_val kk = { todo[i]->rel_len, todo[i]->rel };
			MDB_val dd = { rb->len, rb->data };
			/* a fresh index gets its records in key order: append */
			if (rb->len && !rc)
				rc = dfs_from_mdb(mdb_put(txn, ix->files, &kk, &dd,
							  append ? MDB_APPEND : 0));
			pthread_mutex_lock(&j.lock);
			j.done[i % WINDOW] = 0;
			j.written = i + 1;
			pthread_cond_broadcast(&j.cond);
			pthread_mutex_unlock(&j.lock);
			/* a live update is one transaction (I9): readers never see
			 * records without their tree (I4) */
			if (!rc && !live && (i + 1) % BATCH == 0) {
				rc = meta_put_u64(txn, ix->meta, "next_id", next_id);
				if (!rc)
					rc = dfs_from_mdb(store_commit(ix, txn));
				txn = NULL;
				if (!rc)
					rc = dfs_from_mdb(mdb_txn_begin(ix->env, NULL, 0, &txn));
			}
			if (!live)
				index_progress_count(ix, "parse", i + 1, ntodo, pstart, 0);
		}
		if (!live && !rc)
			index_progress_count(ix, "parse", ntodo, ntodo, pstart, 1);
join:
		for (int i = 0; i < started; i++)
			pthread_join(th[i], NULL);
		if (!live || !sc->pool)
			worker_pool_free(j.pool);   /* W8 */
		for (size_t i = 0; i < WINDOW; i++)
			rec_release(&j.slots[i]);
		free(j.slots);
		free(j.done);
		pthread_mutex_destroy(&j.lock);
		pthread_cond_destroy(&j.cond);
		if (rc)
			goto abort;
	}
	if (sc)
		sc->changed = ntodo || removed;
	if (live && !ntodo && !removed) {
		/* nothing changed (a rescan, a touch undone): no write at all */
		mdb_txn_abort(txn);
		txn = NULL;
		rc = 0;
		goto free_cands;
	}
	/* status.json's phases stay the mount's update's; a live batch's
	 * go to the scope (the counts of the tree are everybody's) */
	struct index_stats ls, *ps = live ? &ls : &ix->stats;
	if (live)
		ls = ix->stats;
	ps->files_parsed = ntodo;
	ps->parse_seconds = now_s() - tp;
	if (!live && !feed) {
		/* the walk's lists are done with (a feed's notes point into
		 * them): freed before the tree, whose memory -o build_mem
		 * bounds (index.h I13; about 200 bytes a file) */
		for (size_t r = 0; r < nlists; r++)
			source_list_free(&lists[r]);
		free(lists);
		lists = NULL;
		free(todo);
		todo = NULL;
		free(ids);
		ids = NULL;
	}
	tp = now_s();
	struct timespec c0, c1;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	rc = meta_put_u64(txn, ix->meta, "next_id", next_id);
	if (rc)
		goto abort;
	if (ntodo || removed || !tree_valid) {
		if (feed && (rc = feed_before_tree(ix, txn, &fb)))
			goto abort;
		if (live && tree_valid) {
			/* I11: only what the changed records show */
			struct tree_change *tc = calloc(fb.n ? fb.n : 1, sizeof(*tc));
			rc = tc ? 0 : -ENOMEM;
			for (size_t i = 0; i < fb.n && !rc; i++)
				tc[i] = (struct tree_change){ fb.v[i].rel, fb.v[i].rl, fb.v[i].old,
							      fb.v[i].oldlen };
			tcs.v = tc;
			tcs.n = fb.n;
			if (!rc)
				rc = tree_update(ix, txn, &next_id, &tcs, &sc->touched,
						 &sc->tree_full);
			free(tc);
		} else {
			if (sc)
				sc->tree_full = 1;
			if (!live)
				index_progress_line(ix, "tree: building it (%llu files)",
						    (unsigned long long)ix->stats.files_seen);
			/* the tree reads the records where they are in the map
			 * instead of copying them (store.h) when no record was
			 * written in this txn: none changed (a tree rebuilt on
			 * its own), or a first build's last records committed
			 * first, like every BATCH before them (tree_valid 0 says
			 * the tree is still to come, I4) */
			int in_map = !live && ((append && !feed) || (!ntodo && !removed));
			if (in_map && (ntodo || removed)) {
				rc = dfs_from_mdb(store_commit(ix, txn));
				txn = NULL;
				if (!rc) {
					ix->parsed_kept = ntodo;
					rc = dfs_from_mdb(mdb_txn_begin(ix->env, NULL, 0, &txn));
				}
				if (rc)
					goto abort;
			}
			ix->tree_recs_in_map = in_map;
			rc = live ? tree_build(ix, txn, &next_id)
				  : tree_build_split(ix, &txn, &next_id);   /* nobody reads yet */
			ix->tree_recs_in_map = 0;
		}
		if (rc)
			goto abort;
		if (feed && (rc = feed_after_tree(ix, txn, &fb)))
			goto abort;
		if (sc)
			sc->feed_lines = fb.lines;
		rc = meta_put_u64(txn, ix->meta, "next_id", next_id);
		if (!rc)
			rc = meta_put_u64(txn, ix->meta, "tree_valid", 1);
		if (!rc)
			rc = meta_put_str(txn, ix->meta, "anon_conf", anon_conf, strlen(anon_conf));
		if (!rc)
			rc = meta_put_u64(txn, ix->meta, "tree_kinds", ix->opts.kinds);
		if (rc)
			goto abort;
		ps->tree_rebuilt = 1;
	} else {
		/* unchanged: counts come from the last build */
		uint64_t v;
		if (!meta_get_u64(txn, ix->meta, "n_instances", &v)) ix->stats.instances = v;
		if (!meta_get_u64(txn, ix->meta, "n_patients", &v)) ix->stats.patients = v;
		if (!meta_get_u64(txn, ix->meta, "n_studies", &v)) ix->stats.studies = v;
		if (!meta_get_u64(txn, ix->meta, "n_series", &v)) ix->stats.series = v;
		if (!meta_get_u64(txn, ix->meta, "n_skipped", &v)) ix->stats.skipped = v;
		if (!meta_get_u64(txn, ix->meta, "n_errors", &v)) ix->stats.errors = v;
		if (!meta_get_u64(txn, ix->meta, "n_duplicates", &v)) ix->stats.duplicates = v;
	}
	ps->tree_seconds = now_s() - tp;
	if (!live)
		index_progress_line(ix, "tree: %llu instances in %llu patients / %llu studies / %llu series in %.2f s (%.0f instances/s)%s",
				    (unsigned long long)ix->stats.instances,
				    (unsigned long long)ix->stats.patients,
				    (unsigned long long)ix->stats.studies,
				    (unsigned long long)ix->stats.series, ps->tree_seconds,
				    ps->tree_seconds > 0 ? ix->stats.instances / ps->tree_seconds : 0,
				    ps->tree_rebuilt ? "" : " (unchanged: kept)");
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	ps->tree_cpu_seconds = (c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9;
	tp = now_s();
	if (!live && !ntodo && !removed && tree_valid) {
		/* nothing changed: nothing to write (nor to sync, I12) */
		mdb_txn_abort(txn);
		rc = 0;
	} else {
		rc = dfs_from_mdb(store_commit(ix, txn));
	}
	txn = NULL;
	size_t ahead, back;
	store_warm_end(ix, &ahead, &back);   /* S4: no write txn open */
	if (rc)
		goto abort;
	ps->commit_seconds = now_s() - tp;
	if (!live && ahead)
		index_progress_line(ix, "commit: %.2f s (%zu KiB of its pages read ahead, %zu KiB not used given back)",
				    ps->commit_seconds, ahead >> 10, back >> 10);
	else if (!live)
		index_progress_line(ix, "commit: %.2f s", ps->commit_seconds);
	if (sc) {
		sc->parsed = ntodo;
		sc->removed = removed;
		sc->parse_seconds = ps->parse_seconds;
		sc->tree_seconds = ps->tree_seconds;
		sc->tree_cpu_seconds = ps->tree_cpu_seconds;
		sc->commit_seconds = ps->commit_seconds;
	}
	if (!live) {
		ix->stats.scan_seconds = now_s() - t0;
		ix->stats.files_per_second = ix->stats.scan_seconds > 0 ?
			ncand / ix->stats.scan_seconds : 0;
	}
	goto free_cands;
abort:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		mdb_txn_abort(txn);
	store_warm_end(ix, NULL, NULL);
	snprintf(msg, msglen, "updating index '%s': %s", ix->path, dfs_strerror(rc));
free_cands:
	feed_release(&fb);
	for (size_t r = 0; lists && r < nlists; r++)
		source_list_free(&lists[r]);
	free(lists);
	free(todo);
	free(ids);
#ifdef __GLIBC__
	/* the walk lists, records and tree of a build are freed now, in every
	 * arena the threads used: give the pages back, or the serving mount
	 * keeps them (issue 17: 211 MiB anonymous after a first build of
	 * 100,000 files vs 35 MiB after a remount) */
	malloc_trim(0);
#endif
	return rc;
}
