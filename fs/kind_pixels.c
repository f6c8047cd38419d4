/*
 * kind_pixels.c - <instance>.npy (decoded pixels) and <instance>.png (an
 * 8-bit preview of the first frame). Conventions: index/dicom/pixels.h.
 *
 * Design notes
 * - getattr derives both sizes from the indexed attributes (px_info):
 *   nothing is read or decoded.
 * - Native sources (uncompressed, not deflated): every read is a pread of
 *   the pixel bytes it needs, converted on the fly (byte swap, unpacking,
 *   masking, colour); when the stored bytes already are the .npy bytes the
 *   reply splices them from the source file. No GDCM, no copy of the file.
 * - Other sources are decoded by GDCM (dcmshim_decode_pixels) into a cache
 *   of decoded instances keyed by instance id and bounded by -o cache_size
 *   (bytes of entries no open file uses). One decode per instance at a time:
 *   later openers wait on the entry's condition variable. An open .npy
 *   holds its entry, so a file bigger than the cache is decoded once per
 *   open, not per read. Buffers of evicted entries are kept in a small pool
 *   and reused; each FUSE thread reuses its file and decoder buffers.
 * - A decode failure is EIO on open plus one errors.tsv line and log line;
 *   the failure is remembered (no retry until remount).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs.h"
#include "dcmshim.h"
#include "error.h"
#include "log.h"
#include "pixels.h"
#include "record.h"

#define PC_BUCKETS 4096
#define PC_MAX_ENTRIES 100000
#define POOL_N 4
#define TLS_KEEP ((size_t)64 << 20)   /* per-thread buffers kept up to this */

enum { PC_DECODING, PC_READY, PC_ERROR };

struct pc_entry {
	uint64_t id;
	int state, err;
	unsigned refs;
	unsigned char *buf;
	size_t len, cap;
	struct pc_entry *hnext, *prev, *next;
	pthread_cond_t cond;
};

static struct {
	pthread_mutex_t lock;
	struct pc_entry *bucket[PC_BUCKETS];
	struct pc_entry lru;        /* sentinel: next = newest */
	uint64_t bytes, cap;
	size_t n;
	struct { unsigned char *p; size_t cap; } pool[POOL_N];
	int init;
} pc = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void lru_unlink(struct pc_entry *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
}

static void lru_front(struct pc_entry *e)
{
	e->next = pc.lru.next;
	e->prev = &pc.lru;
	pc.lru.next->prev = e;
	pc.lru.next = e;
}

static void pc_init_locked(struct dfs *fs)
{
	if (pc.init)
		return;
	pc.lru.next = pc.lru.prev = &pc.lru;
	pc.cap = fs->cache_bytes;
	pc.init = 1;
}

static unsigned char *pool_take_locked(size_t need, size_t *cap)
{
	int best = -1;
	for (int i = 0; i < POOL_N; i++)
		if (pc.pool[i].p && pc.pool[i].cap >= need && pc.pool[i].cap / 2 <= need &&
		    (best < 0 || pc.pool[i].cap < pc.pool[best].cap))
			best = i;
	if (best < 0)
		return NULL;
	unsigned char *p = pc.pool[best].p;
	*cap = pc.pool[best].cap;
	pc.pool[best].p = NULL;
	return p;
}

static void pool_put_locked(unsigned char *p, size_t cap)
{
	int slot = -1;
	for (int i = 0; i < POOL_N; i++)
		if (!pc.pool[i].p) {
			slot = i;
			break;
		} else if (slot < 0 || pc.pool[i].cap < pc.pool[slot].cap) {
			slot = i;  /* replace the smallest */
		}
	if (cap > pc.cap / 2 + 1 || (pc.pool[slot].p && pc.pool[slot].cap >= cap)) {
		free(p);
		return;
	}
	free(pc.pool[slot].p);
	pc.pool[slot].p = p;
	pc.pool[slot].cap = cap;
}

static void remove_locked(struct pc_entry *e)
{
	struct pc_entry **pp = &pc.bucket[e->id % PC_BUCKETS];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	lru_unlink(e);
	if (e->buf) {
		pc.bytes -= e->cap;
		pool_put_locked(e->buf, e->cap);
	}
	pthread_cond_destroy(&e->cond);
	free(e);
	pc.n--;
}

static void evict_locked(void)
{
	struct pc_entry *e = pc.lru.prev;
	while (e != &pc.lru && (pc.bytes > pc.cap || pc.n > PC_MAX_ENTRIES)) {
		struct pc_entry *prev = e->prev;
		if (e->refs == 0 && e->state != PC_DECODING &&
		    (e->buf || pc.n > PC_MAX_ENTRIES))
			remove_locked(e);
		e = prev;
	}
}

static void pc_put(struct pc_entry *e)
{
	pthread_mutex_lock(&pc.lock);
	e->refs--;
	evict_locked();
	pthread_mutex_unlock(&pc.lock);
}

/* ---- per-thread buffers ---- */

struct tls_bufs {
	unsigned char *file, *dec;
	size_t file_cap, dec_cap;
	struct px_scratch scratch;
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_free(void *p)
{
	struct tls_bufs *t = p;
	free(t->file);
	free(t->dec);
	px_scratch_free(&t->scratch);
	free(t);
}

static void tls_make(void)
{
	pthread_key_create(&tls_key, tls_free);
}

static struct tls_bufs *tls(void)
{
	pthread_once(&tls_once, tls_make);
	struct tls_bufs *t = pthread_getspecific(tls_key);
	if (!t) {
		t = calloc(1, sizeof(*t));
		if (t)
			pthread_setspecific(tls_key, t);
	}
	return t;
}

static void tls_trim(struct tls_bufs *t)
{
	if (t->file_cap > TLS_KEEP) {
		free(t->file);
		t->file = NULL;
		t->file_cap = 0;
	}
	if (t->dec_cap > TLS_KEEP) {
		free(t->dec);
		t->dec = NULL;
		t->dec_cap = 0;
	}
}

static void *dec_alloc(void *ctx, size_t n)
{
	struct tls_bufs *t = ctx;
	if (t->dec_cap < n) {
		free(t->dec);
		t->dec = malloc(n);
		t->dec_cap = t->dec ? n : 0;
	}
	return t->dec;
}

/* ---- sources ---- */

struct src {
	int fd;
};

static int src_pread(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct src *s = ctx;
	char *p = buf;
	while (len) {
		ssize_t r = pread(s->fd, p, len, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		p += r;
		len -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* The record and pixel description of an instance node. */
static int node_info(struct dfs *fs, const struct node_view *nv, struct px_info *pi,
		     const void **rec, size_t *rlen, const char **why)
{
	struct rec_head h;
	const void *val;
	size_t vlen;
	if (nv->rec->type != NODE_INSTANCE)
		return -ENOENT;
	int rc = index_file_record(fs->ix, nv->relpath, nv->rec->path_len, &val, &vlen);
	if (rc)
		return rc;
	if (rec_head_get(val, vlen, &h))
		return -EIO;
	rc = px_info_from_record(val, vlen, &h, pi, why);
	if (rec) {
		*rec = val;
		*rlen = vlen;
	}
	return rc;
}

static void relpath(const struct node_view *nv, char *rel, size_t cap)
{
	snprintf(rel, cap, "%.*s", (int)nv->rec->path_len, nv->relpath);
}

static int open_source(struct dfs *fs, const struct node_view *nv, const char *rel)
{
	struct stat st;
	int fd = openat(index_archive_fd(fs->ix), rel, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		char why[128];
		snprintf(why, sizeof(why), "cannot open source: %s", strerror(e));
		index_report_error(fs->ix, rel, why);
		return e == ENOENT ? -ENOENT : -EIO;
	}
	if (fstat(fd, &st) || (uint64_t)st.st_size != nv->rec->size ||
	    (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != nv->rec->mtime_ns) {
		index_report_error(fs->ix, rel,
				   "source changed since it was indexed (remount to re-index)");
		close(fd);
		return -EIO;
	}
	return fd;
}

/* GDCM decode of a whole file in memory + normalization into out. */
static int decode_buffer(const void *file, size_t size, const struct px_info *pi,
			 unsigned char *out, struct tls_bufs *t, char *msg, size_t msglen)
{
	struct dcmshim_pixels px;
	const char *why = NULL;
	int rc;
	if (pi->encapsulated && pi->pixel_offset < size) {
		rc = px_rle_decode(pi, (const unsigned char *)file + pi->pixel_offset,
				   size - (size_t)pi->pixel_offset, out, &why);
		if (rc <= 0) {
			if (rc)
				snprintf(msg, msglen, "cannot decode pixel data: %s", why);
			return rc ? -EIO : 0;
		}
	}
	rc = dcmshim_decode_pixels(file, size, pi->photo == PX_PALETTE, dec_alloc, t, &px);
	if (rc == -ENOMEM)
		return rc;
	if (rc) {
		snprintf(msg, msglen, "cannot decode pixel data: %s", px.error);
		return -EIO;
	}
	struct px_decoded d = {
		.rows = px.rows, .cols = px.cols, .frames = px.frames, .spp = px.spp,
		.bits_alloc = px.bits_alloc, .pixrep = px.pixrep, .planar = px.planar,
		.is_float = px.is_float, .data = t->dec, .len = px.len,
	};
	if (!strcmp(px.photometric, "YBR_FULL"))
		d.photo = PX_YBR_FULL;
	else if (!strcmp(px.photometric, "YBR_FULL_422"))
		d.photo = PX_YBR_FULL_422;
	else if (!strcmp(px.photometric, "RGB") || !strncmp(px.photometric, "YBR_ICT", 7) ||
		 !strncmp(px.photometric, "YBR_RCT", 7))
		d.photo = PX_RGB;   /* JPEG 2000: the codec undid ICT/RCT */
	else if (!strncmp(px.photometric, "MONOCHROME", 10))
		d.photo = PX_MONO2;
	rc = px_normalize(pi, &d, out, &why);
	if (rc) {
		snprintf(msg, msglen, "cannot decode pixel data: %s (decoded %ux%ux%u, %u samples, %u bits, %s)",
			 why, px.rows, px.cols, px.frames, px.spp, px.bits_alloc, px.photometric);
		return -EIO;
	}
	return 0;
}

/* ---- decoder processes ----
 * GDCM and its codecs assert (abort) on some malformed input, so decoding
 * runs in "dicomfs --decode-worker" children: the parent passes the open
 * source (SCM_RIGHTS) and the px_info over a socketpair, the child answers
 * a status and the normalized .npy data. A child that dies or exceeds
 * WORKER_TIMEOUT_MS costs that one decode (EIO) and is replaced.
 */
#define MAX_WORKERS 8
#define WORKER_TIMEOUT_MS 120000

struct wreq {
	struct px_info pi;
	uint64_t size;
};

struct wresp {
	int32_t rc;
	char msg[220];
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int idle[MAX_WORKERS];   /* sockets of idle workers */
	pid_t idle_pid[MAX_WORKERS];
	int nidle, nlive, max, broken;
	char exe[4096];
} wp = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static int full_io(int fd, void *p, size_t n, int wr, int timeout_ms)
{
	char *c = p;
	while (n) {
		if (!wr && timeout_ms > 0) {
			struct pollfd pf = { fd, POLLIN, 0 };
			int r = poll(&pf, 1, timeout_ms);
			if (r == 0)
				return DFS_ETIMEOUT;
			if (r < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
		}
		ssize_t r = wr ? send(fd, c, n, MSG_NOSIGNAL) : read(fd, c, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EPIPE;
		c += r;
		n -= (size_t)r;
	}
	return 0;
}

static int worker_spawn(int *sock, pid_t *pid)
{
	int sv[2];
	posix_spawn_file_actions_t fa;
	char *argv[] = { wp.exe, "--decode-worker", NULL };
	extern char **environ;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	int rc = -posix_spawn(pid, wp.exe, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	if (rc) {
		close(sv[0]);
		return rc;
	}
	*sock = sv[0];
	return 0;
}

/* An idle worker (spawned when needed); -1 when none can be had. */
static int worker_get(int *sock, pid_t *pid)
{
	pthread_mutex_lock(&wp.lock);
	if (!wp.exe[0] && !wp.broken) {
		ssize_t l = readlink("/proc/self/exe", wp.exe, sizeof(wp.exe) - 1);
		/* DICOMFS_INPROCESS=1: decode in the mount process (a benchmark
		 * knob, contrib/bench/bench_containment.sh) */
		if (l <= 0 || getenv("DICOMFS_INPROCESS"))
			wp.broken = 1;
		else
			wp.exe[l] = 0;
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		wp.max = n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (int)n;
	}
	for (;;) {
		if (wp.broken) {
			pthread_mutex_unlock(&wp.lock);
			return -1;
		}
		if (wp.nidle) {
			wp.nidle--;
			*sock = wp.idle[wp.nidle];
			*pid = wp.idle_pid[wp.nidle];
			pthread_mutex_unlock(&wp.lock);
			return 0;
		}
		if (wp.nlive < wp.max) {
			wp.nlive++;
			pthread_mutex_unlock(&wp.lock);
			if (worker_spawn(sock, pid) == 0)
				return 0;
			pthread_mutex_lock(&wp.lock);
			wp.nlive--;
			wp.broken = 1;
			dfs_log("cannot start decoder processes: decoding in the mount process");
			pthread_cond_broadcast(&wp.cond);
			continue;
		}
		pthread_cond_wait(&wp.cond, &wp.lock);
	}
}

static void worker_put(int sock, pid_t pid, int ok, char *why, size_t whylen)
{
	if (!ok) {
		int st = 0;
		close(sock);
		kill(pid, SIGKILL);
		if (waitpid(pid, &st, 0) > 0 && why) {
			if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
				snprintf(why, whylen, "the decoder died on it (signal %d, %s)",
					 WTERMSIG(st), strsignal(WTERMSIG(st)));
		}
	}
	pthread_mutex_lock(&wp.lock);
	if (ok) {
		wp.idle[wp.nidle] = sock;
		wp.idle_pid[wp.nidle] = pid;
		wp.nidle++;
	} else {
		wp.nlive--;
	}
	pthread_cond_signal(&wp.cond);
	pthread_mutex_unlock(&wp.lock);
}

/* 0, -ENOMEM, -EIO (msg set), or 1: no worker, decode in-process */
static int worker_decode(int fd, uint64_t size, const struct px_info *pi,
			 unsigned char *out, char *msg, size_t msglen)
{
	int sock = -1;
	pid_t pid = 0;
	if (worker_get(&sock, &pid))
		return 1;
	struct wreq rq = { *pi, size };
	struct wresp rs;
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &rq, sizeof(rq) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	memset(cbuf, 0, sizeof(cbuf));
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	int rc = sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(rq) ? 0 : -EPIPE;
	if (!rc)
		rc = full_io(sock, &rs, sizeof(rs), 0, WORKER_TIMEOUT_MS);
	if (!rc && rs.rc == 0)
		rc = full_io(sock, out, (size_t)pi->data_len, 0, WORKER_TIMEOUT_MS);
	if (rc) {
		snprintf(msg, msglen, "cannot decode pixel data: %s",
			 rc == DFS_ETIMEOUT ? "the decoder took too long (killed)"
					    : "the decoder died on it");
		char why[160] = "";
		worker_put(sock, pid, 0, why, sizeof(why));
		if (why[0])
			snprintf(msg, msglen, "cannot decode pixel data: %s", why);
		return -EIO;
	}
	worker_put(sock, pid, 1, NULL, 0);
	if (rs.rc) {
		rs.msg[sizeof(rs.msg) - 1] = 0;
		snprintf(msg, msglen, "%s", rs.msg);
		return rs.rc == -ENOMEM ? -ENOMEM : -EIO;
	}
	return 0;
}

int dfs_decode_worker_main(void)
{
	struct rlimit core = { 0, 0 };
	struct tls_bufs t = { 0 };
	unsigned char *out = NULL;
	size_t out_cap = 0;
	int rc = 0;
	setrlimit(RLIMIT_CORE, &core);
	signal(SIGPIPE, SIG_IGN);
	for (int fd = 3; fd < 1024; fd++)
		close(fd);
	dcmshim_init();
	for (;;) {
		struct wreq rq;
		struct wresp rs;
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { &rq, sizeof(rq) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf) };
		ssize_t r = recvmsg(0, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC);
		if (r != (ssize_t)sizeof(rq)) {
			rc = r == 0 ? 0 : 1;
			break;
		}
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		int fd = -1;
		if (cm && cm->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(cm), sizeof(int));
		memset(&rs, 0, sizeof(rs));
		if (fd < 0) {
			rs.rc = -EIO;
			snprintf(rs.msg, sizeof(rs.msg), "cannot decode pixel data: no source");
		} else {
			size_t size = (size_t)rq.size;
			if (t.file_cap < size) {
				free(t.file);
				t.file = malloc(size ? size : 1);
				t.file_cap = t.file ? size : 0;
			}
			if (out_cap < rq.pi.data_len) {
				free(out);
				out = malloc((size_t)rq.pi.data_len);
				out_cap = out ? (size_t)rq.pi.data_len : 0;
			}
			struct src s = { fd };
			if (!t.file || !out)
				rs.rc = -ENOMEM;
			else if ((rs.rc = src_pread(&s, t.file, size, 0)))
				snprintf(rs.msg, sizeof(rs.msg), "cannot read source: %s",
					 dfs_strerror(rs.rc));
			else
				rs.rc = decode_buffer(t.file, size, &rq.pi, out, &t, rs.msg,
						      sizeof(rs.msg));
			close(fd);
			tls_trim(&t);
			if (out_cap > TLS_KEEP && rs.rc) {
				free(out);
				out = NULL;
				out_cap = 0;
			}
		}
		if (full_io(0, &rs, sizeof(rs), 1, 0) ||
		    (rs.rc == 0 && full_io(0, out, (size_t)rq.pi.data_len, 1, 0))) {
			rc = 1;
			break;
		}
		if (out_cap > TLS_KEEP) {
			free(out);
			out = NULL;
			out_cap = 0;
		}
	}
	/* parent gone: free what we hold (LeakSanitizer runs at exit) */
	free(t.file);
	free(t.dec);
	px_scratch_free(&t.scratch);
	free(out);
	return rc;
}

/* Decode the instance into out (pi->data_len bytes). */
static int decode_into(struct dfs *fs, const struct node_view *nv, const char *rel,
		       const struct px_info *pi, unsigned char *out)
{
	struct tls_bufs *t = tls();
	char msg[256] = "";
	int rc;

	if (!t)
		return -ENOMEM;
	int fd = open_source(fs, nv, rel);
	if (fd < 0)
		return fd;
	size_t size = (size_t)nv->rec->size;
	rc = worker_decode(fd, size, pi, out, msg, sizeof(msg));
	if (rc == 1) {
		/* no decoder process: decode here */
		if (t->file_cap < size) {
			free(t->file);
			t->file = malloc(size ? size : 1);
			t->file_cap = t->file ? size : 0;
		}
		struct src s = { fd };
		if (!t->file)
			rc = -ENOMEM;
		else if ((rc = src_pread(&s, t->file, size, 0)))
			snprintf(msg, sizeof(msg), "cannot read source: %s", dfs_strerror(rc)), rc = -EIO;
		else
			rc = decode_buffer(t->file, size, pi, out, t, msg, sizeof(msg));
		tls_trim(t);
	}
	close(fd);
	if (rc && rc != -ENOMEM)
		index_report_error(fs->ix, rel, msg[0] ? msg : "cannot decode pixel data");
	return rc == -ENOMEM ? rc : rc ? -EIO : 0;
}

/* The decoded pixels of instance id, held (pc_put when done). */
static int pc_get(struct dfs *fs, uint64_t id, const struct node_view *nv,
		  const struct px_info *pi, struct pc_entry **out)
{
	struct pc_entry *e;
	char rel[4096];
	int rc;

	pthread_mutex_lock(&pc.lock);
	pc_init_locked(fs);
	for (e = pc.bucket[id % PC_BUCKETS]; e; e = e->hnext)
		if (e->id == id)
			break;
	if (e) {
		e->refs++;
		lru_unlink(e);
		lru_front(e);
		while (e->state == PC_DECODING)
			pthread_cond_wait(&e->cond, &pc.lock);
		if (e->state == PC_ERROR) {
			rc = e->err;
			e->refs--;
			evict_locked();
			pthread_mutex_unlock(&pc.lock);
			return rc;
		}
		*out = e;
		pthread_mutex_unlock(&pc.lock);
		return 0;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		pthread_mutex_unlock(&pc.lock);
		return -ENOMEM;
	}
	e->id = id;
	e->state = PC_DECODING;
	e->refs = 1;
	pthread_cond_init(&e->cond, NULL);
	e->hnext = pc.bucket[id % PC_BUCKETS];
	pc.bucket[id % PC_BUCKETS] = e;
	lru_front(e);
	pc.n++;
	size_t need = pi->data_len ? (size_t)pi->data_len : 1;
	size_t cap = 0;
	unsigned char *buf = pool_take_locked(need, &cap);
	pthread_mutex_unlock(&pc.lock);

	if (!buf) {
		buf = malloc(need);
		cap = need;
	}
	relpath(nv, rel, sizeof(rel));
	index_count_decode(fs->ix);
	rc = buf ? decode_into(fs, nv, rel, pi, buf) : -ENOMEM;

	pthread_mutex_lock(&pc.lock);
	if (rc) {
		free(buf);
		e->state = PC_ERROR;
		e->err = rc;
		e->refs--;
		pthread_cond_broadcast(&e->cond);
		if (rc == -ENOMEM && e->refs == 0)
			remove_locked(e);   /* transient: try again next time */
		evict_locked();
		pthread_mutex_unlock(&pc.lock);
		return rc;
	}
	e->buf = buf;
	e->len = (size_t)pi->data_len;
	e->cap = cap;
	pc.bytes += cap;
	e->state = PC_READY;
	pthread_cond_broadcast(&e->cond);
	evict_locked();
	*out = e;
	pthread_mutex_unlock(&pc.lock);
	return 0;
}

/* ---- open files ---- */

struct px_open {
	struct px_info pi;
	struct pc_entry *ent;   /* decoded sources */
};

static int px_getattr_common(struct dfs *fs, const struct node_view *nv,
			     struct stat *st, int png)
{
	struct px_info pi;
	int rc = node_info(fs, nv, &pi, NULL, NULL, NULL);
	if (rc)
		return -ENOENT;
	st->st_mode = S_IFREG | (nv->rec->mode & 0444);
	st->st_nlink = nv->rec->nlink ? nv->rec->nlink : 1; /* patients/ + uids/ */
	st->st_uid = nv->rec->uid;
	st->st_gid = nv->rec->gid;
	st->st_size = (off_t)(png ? px_png_size(&pi) : pi.hdr_len + pi.data_len);
	st->st_blocks = (st->st_size + 511) / 512;
	stat_times(st, nv->rec->mtime_ns);
	return 0;
}

static int npy_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
		       struct stat *st)
{
	(void)id;
	return px_getattr_common(fs, nv, st, 0);
}

static int png_getattr(struct dfs *fs, uint64_t id, const struct node_view *nv,
		       struct stat *st)
{
	(void)id;
	return px_getattr_common(fs, nv, st, 1);
}

static int npy_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		    struct dfs_file *f)
{
	struct px_open *po = calloc(1, sizeof(*po));
	char rel[4096];
	int rc;
	if (!po)
		return -ENOMEM;
	rc = node_info(fs, nv, &po->pi, NULL, NULL, NULL);
	if (rc) {
		free(po);
		return -ENOENT;
	}
	if (po->pi.native) {
		relpath(nv, rel, sizeof(rel));
		f->fd = open_source(fs, nv, rel);
		if (f->fd < 0) {
			rc = f->fd;
			f->fd = -1;
			free(po);
			return rc;
		}
	} else {
		rc = pc_get(fs, id, nv, &po->pi, &po->ent);
		if (rc) {
			free(po);
			return rc == -ENOMEM ? rc : -EIO;
		}
	}
	f->priv = po;
	return 0;
}

static int npy_read(struct dfs *fs, struct dfs_file *f, fuse_req_t req,
		    size_t size, off_t off)
{
	struct px_open *po = f->priv;
	const struct px_info *pi = &po->pi;
	uint64_t total = pi->hdr_len + pi->data_len, o = (uint64_t)off;
	(void)fs;
	if (o >= total || !size) {
		fuse_reply_buf(req, NULL, 0);
		return 0;
	}
	if (size > total - o)
		size = (size_t)(total - o);
	size_t hpart = o < pi->hdr_len ? (size_t)(pi->hdr_len - o) : 0;
	if (hpart > size)
		hpart = size;
	uint64_t doff = o + hpart - pi->hdr_len;   /* data offset */
	size_t dlen = size - hpart;

	if (po->ent) {
		struct iovec iov[2] = {
			{ (char *)pi->hdr + o, hpart },
			{ po->ent->buf + doff, dlen } };
		if (!hpart)
			fuse_reply_iov(req, iov + 1, 1);
		else
			fuse_reply_iov(req, iov, dlen ? 2 : 1);
		return 0;
	}
	if (pi->identity) {
		struct {
			struct fuse_bufvec v;
			struct fuse_buf extra;
		} bv;
		memset(&bv, 0, sizeof(bv));
		bv.v.count = 0;
		if (hpart) {
			bv.v.buf[bv.v.count].mem = (char *)pi->hdr + o;
			bv.v.buf[bv.v.count].size = hpart;
			bv.v.count++;
		}
		if (dlen) {
			struct fuse_buf *b = bv.v.count ? &bv.extra : &bv.v.buf[0];
			b->flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY;
			b->fd = f->fd;
			b->pos = (off_t)(pi->pixel_offset + doff);
			b->size = dlen;
			bv.v.count++;
		}
		fuse_reply_data(req, &bv.v, FUSE_BUF_SPLICE_MOVE);
		return 0;
	}
	char *buf = malloc(size);
	struct tls_bufs *t = tls();
	if (!buf || !t) {
		free(buf);
		return -ENOMEM;
	}
	memcpy(buf, pi->hdr + o, hpart);
	struct src s = { f->fd };
	int rc = dlen ? px_native_read(pi, src_pread, &s, buf + hpart, doff, dlen, &t->scratch) : 0;
	if (rc) {
		free(buf);
		return -EIO;
	}
	fuse_reply_buf(req, buf, size);
	free(buf);
	return 0;
}

static void npy_release(struct dfs_file *f)
{
	struct px_open *po = f->priv;
	kind_fd_release(f);
	if (po) {
		if (po->ent)
			pc_put(po->ent);
		free(po);
	}
	f->priv = NULL;
}

static int png_open(struct dfs *fs, uint64_t id, const struct node_view *nv,
		    struct dfs_file *f)
{
	struct px_info pi;
	struct px_window w;
	const void *rec;
	size_t rlen;
	char rel[4096];
	int rc = node_info(fs, nv, &pi, &rec, &rlen, NULL);
	if (rc)
		return -ENOENT;
	px_window_from_record(rec, rlen, &w);
	uint64_t size = px_png_size(&pi);
	unsigned char *png = malloc((size_t)size);
	if (!png)
		return -ENOMEM;
	if (pi.native) {
		struct tls_bufs *t = tls();
		unsigned char *frame = malloc((size_t)pi.out_frame_bytes);
		relpath(nv, rel, sizeof(rel));
		int fd = open_source(fs, nv, rel);
		if (!t || !frame || fd < 0) {
			free(frame);
			free(png);
			if (fd >= 0)
				close(fd);
			return fd < 0 ? fd : -ENOMEM;
		}
		struct src s = { fd };
		rc = px_native_read(&pi, src_pread, &s, frame, 0, (size_t)pi.out_frame_bytes,
				    &t->scratch);
		close(fd);
		if (!rc)
			rc = px_png_write(&pi, &w, frame, png);
		free(frame);
		if (rc) {
			index_report_error(fs->ix, rel, "cannot read pixel data for the preview");
			rc = -EIO;
		}
	} else {
		struct pc_entry *e;
		rc = pc_get(fs, id, nv, &pi, &e);
		if (!rc) {
			rc = px_png_write(&pi, &w, e->buf, png);
			pc_put(e);
		}
		if (rc)
			rc = rc == -ENOMEM ? rc : -EIO;
	}
	if (rc) {
		free(png);
		return rc;
	}
	f->buf = (char *)png;
	f->len = (size_t)size;
	return 0;
}

static int png_read(struct dfs *fs, struct dfs_file *f, fuse_req_t req,
		    size_t size, off_t off)
{
	(void)fs;
	if ((uint64_t)off >= f->len) {
		fuse_reply_buf(req, NULL, 0);
		return 0;
	}
	if (size > f->len - (size_t)off)
		size = f->len - (size_t)off;
	fuse_reply_buf(req, f->buf + off, size);
	return 0;
}

static void png_release(struct dfs_file *f)
{
	free(f->buf);
	f->buf = NULL;
}

const struct kind_ops kind_npy = {
	.name = "npy",
	.getattr = npy_getattr,
	.open = npy_open,
	.read = npy_read,
	.release = npy_release,
};

const struct kind_ops kind_png = {
	.name = "png",
	.getattr = png_getattr,
	.open = png_open,
	.read = png_read,
	.release = png_release,
};

/* ---- the pipeline for other kinds (fs.h: dfs_pixsrc_*) ---- */

struct dfs_pixsrc {
	struct px_info pi;
	int fd;                 /* native */
	struct pc_entry *ent;   /* decoded */
};

int dfs_pixsrc_open(struct dfs *fs, uint64_t id, struct dfs_pixsrc **out)
{
	struct node_view nv;
	char rel[4096];
	int rc = index_node(fs->ix, id, &nv);
	if (rc)
		return rc;
	struct dfs_pixsrc *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	if (node_info(fs, &nv, &s->pi, NULL, NULL, NULL)) {
		free(s);
		return -EIO;
	}
	if (s->pi.native) {
		relpath(&nv, rel, sizeof(rel));
		s->fd = open_source(fs, &nv, rel);
		rc = s->fd < 0 ? s->fd : 0;
	} else {
		rc = pc_get(fs, id, &nv, &s->pi, &s->ent);
		if (rc && rc != -ENOMEM)
			rc = -EIO;
	}
	if (rc) {
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

const struct px_info *dfs_pixsrc_info(const struct dfs_pixsrc *s)
{
	return &s->pi;
}

int dfs_pixsrc_read(struct dfs_pixsrc *s, void *out, uint64_t off, size_t len)
{
	if (off > s->pi.data_len || len > s->pi.data_len - off)
		return -EINVAL;
	if (s->ent) {
		memcpy(out, s->ent->buf + off, len);
		return 0;
	}
	struct tls_bufs *t = tls();
	if (!t)
		return -ENOMEM;
	struct src src = { s->fd };
	return px_native_read(&s->pi, src_pread, &src, out, off, len, &t->scratch) ? -EIO : 0;
}

void dfs_pixsrc_close(struct dfs_pixsrc *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	if (s->ent)
		pc_put(s->ent);
	free(s);
}
