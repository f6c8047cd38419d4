/*
 * worker.c - the pool of contained child processes (see worker.h, W1..W12).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"
#include "fdbudget.h"
#include "error.h"
#include "log.h"

#define DIRECT_READ 65536   /* payload bytes read straight into the caller's */
#define SUSPECT_NICE 10     /* W11: about a tenth of a CPU against nice 0 */

struct worker_pool {
	/* set by worker_pool_new, read-only after */
	char **argv;               /* exe, args..., NULL */
	uint64_t as_limit;
	int max, timeout_ms, get_timeout_ms, keep_idle, max_suspect;
	char *broken_msg;
	/* under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct worker **idle;      /* max slots */
	int nidle, nlive, broken;
	int nsuspect;              /* children in suspect slots (W11) */
	int fd_reserved;           /* fdbudget.h F3 */
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- the pool ---- */

int worker_pool_new(const struct worker_spec *spec, struct worker_pool **out)
{
	struct worker_pool *p = calloc(1, sizeof(*p));
	size_t n = 0;
	if (!p)
		return -ENOMEM;
	pthread_condattr_t ca;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);   /* W9: deadlines */
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	p->max = spec->max > 0 ? spec->max : 1;
	p->timeout_ms = spec->timeout_ms;
	p->get_timeout_ms = spec->get_timeout_ms;
	p->keep_idle = spec->keep_idle > 0 && spec->keep_idle < p->max ? spec->keep_idle : p->max;
	p->max_suspect = spec->max_suspect > 0 ? spec->max_suspect : p->max;
	p->as_limit = spec->as_limit;
	p->broken = !spec->exe;     /* W7 */
	while (spec->args && spec->args[n])
		n++;
	p->argv = calloc(n + 2, sizeof(*p->argv));
	p->idle = calloc((size_t)p->max, sizeof(*p->idle));
	if (!p->argv || !p->idle)
		goto oom;
	if (spec->exe && !(p->argv[0] = strdup(spec->exe)))
		goto oom;
	for (size_t i = 0; spec->exe && i < n; i++)
		if (!(p->argv[i + 1] = strdup(spec->args[i])))
			goto oom;
	if (spec->broken_msg && !(p->broken_msg = strdup(spec->broken_msg)))
		goto oom;
	if (spec->exe) {   /* F3: a channel per child alive at once */
		p->fd_reserved = p->max + p->max_suspect;
		fdb_reserve(p->fd_reserved);
	}
	*out = p;
	return 0;
oom:
	worker_pool_free(p);
	return -ENOMEM;
}

static void worker_free(struct worker *w)
{
	if (w->passed_fd >= 0)
		close(w->passed_fd);
	free(w->in.p);
	strbuf_release(&w->out);
	free(w);
}

static int reap(pid_t pid)
{
	int st = 0;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 0;
	return st;
}

void worker_pool_free(struct worker_pool *p)
{
	if (!p)
		return;
	/* W8: an idle child reads EOF and exits; all are told before the
	 * first is waited for, so that they exit side by side */
	for (int i = 0; i < p->nidle; i++)
		close(p->idle[i]->fd);
	for (int i = 0; i < p->nidle; i++) {
		reap(p->idle[i]->pid);
		worker_free(p->idle[i]);
	}
	for (char **a = p->argv; a && *a; a++)
		free(*a);
	free(p->argv);
	free(p->idle);
	free(p->broken_msg);
	fdb_unreserve(p->fd_reserved);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

/* W2: the limits, before the child can get a job */
static void apply_limits(const struct worker_pool *p, pid_t pid)
{
#ifndef __SANITIZE_ADDRESS__
	struct rlimit core = { 0, 0 };
	prlimit(pid, RLIMIT_CORE, &core, NULL);
	if (p->as_limit) {
		struct rlimit as = { (rlim_t)p->as_limit, (rlim_t)p->as_limit };
		prlimit(pid, RLIMIT_AS, &as, NULL);
	}
#else
	/* ASan reserves terabytes of shadow: no AS limit there; and its
	 * runtime sets the child's RLIMIT_CORE itself at start
	 * (disable_coredump), keeping the hard limit it read: a hard limit
	 * lowered to 0 by this prlimit in between made that setrlimit fail
	 * (EPERM) and the child die ("setrlimit() failed", one CI run) */
	(void)p;
	(void)pid;
#endif
}

static int spawn(struct worker_pool *p, struct worker **out)
{
	extern char **environ;
	posix_spawn_file_actions_t fa;
	int sv[2], rc;
	struct worker *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		rc = -errno;
		free(w);
		return rc;
	}
	/* W3: the channel on fd 0, /dev/null on 1 and 2, nothing else */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, sv[1], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	rc = -posix_spawn(&w->pid, p->argv[0], &fa, NULL, p->argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(sv[1]);
	if (rc) {
		close(sv[0]);
		free(w);
		return rc;
	}
	apply_limits(p, w->pid);
	w->fd = sv[0];
	w->passed_fd = -1;
	w->timeout_ms = p->timeout_ms;
	w->pool = p;
	*out = w;
	return 0;
}

int worker_get(struct worker_pool *p, struct worker **out)
{
	struct timespec dl;
	if (p->get_timeout_ms > 0) {   /* W9 */
		int64_t t = now_ns() + (int64_t)p->get_timeout_ms * 1000000;
		dl.tv_sec = (time_t)(t / 1000000000);
		dl.tv_nsec = (long)(t % 1000000000);
	}
	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (p->broken) {
			pthread_mutex_unlock(&p->lock);
			return -ECHILD;
		}
		if (p->nidle) {
			*out = p->idle[--p->nidle];
			pthread_mutex_unlock(&p->lock);
			return 0;
		}
		if (p->nlive < p->max) {
			p->nlive++;
			pthread_mutex_unlock(&p->lock);
			int src = spawn(p, out);
			if (src == 0)
				return 0;
			pthread_mutex_lock(&p->lock);
			p->nlive--;
			if (src == -EMFILE || src == -ENFILE) {
				/* out of fds for a moment (fdbudget.h F2): busy,
				 * not broken (W9) */
				pthread_cond_broadcast(&p->cond);
				pthread_mutex_unlock(&p->lock);
				return DFS_ETIMEOUT;
			}
			if (!p->broken && p->broken_msg)   /* W7: once */
				dfs_log("%s", p->broken_msg);
			p->broken = 1;
			pthread_cond_broadcast(&p->cond);
			continue;
		}
		if (p->get_timeout_ms <= 0)
			pthread_cond_wait(&p->cond, &p->lock);
		else if (pthread_cond_timedwait(&p->cond, &p->lock, &dl) == ETIMEDOUT) {
			pthread_mutex_unlock(&p->lock);
			return DFS_ETIMEOUT;
		}
	}
}

void worker_put(struct worker_pool *p, struct worker *w, int how, int *status)
{
	int slot = w->suspect == 2;   /* W11: in a suspect slot */
	if (how == WORKER_KEEP && !w->suspect) {
		pthread_mutex_lock(&p->lock);
		if (p->nidle < p->keep_idle) {   /* W12 */
			w->timeout_ms = p->timeout_ms;
			w->cpu_limit_ns = 0;
			p->idle[p->nidle++] = w;
			pthread_cond_signal(&p->cond);
			pthread_mutex_unlock(&p->lock);
			return;
		}
		pthread_mutex_unlock(&p->lock);
	}
	/* W4 (a child that died already keeps its status), W11, W12 */
	close(w->fd);
	kill(w->pid, SIGKILL);
	int st = reap(w->pid);
	if (status)
		*status = st;
	worker_free(w);
	pthread_mutex_lock(&p->lock);
	if (slot)
		p->nsuspect--;
	else
		p->nlive--;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void worker_set_budget(struct worker *w, int timeout_ms, int64_t cpu_ms, int suspect_ms)
{
	w->timeout_ms = timeout_ms;
	w->cpu_limit_ns = 0;
	w->suspect_deadline_ns = now_ns() + (int64_t)suspect_ms * 1000000;
	if (cpu_ms > 0 && clock_getcpuclockid(w->pid, &w->cpu_clock) == 0) {
		struct timespec ts;
		if (clock_gettime(w->cpu_clock, &ts) == 0) {
			w->cpu_start_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
			w->cpu_limit_ns = cpu_ms * 1000000;
		}
	}
}

/* CPU ns the child used since worker_set_budget, or -1 (W10) */
static int64_t cpu_used_ns(struct worker *w)
{
	struct timespec ts;
	if (!w->cpu_limit_ns || clock_gettime(w->cpu_clock, &ts))
		return -1;
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - w->cpu_start_ns;
}

int64_t worker_cpu_ms(struct worker *w)
{
	int64_t ns = cpu_used_ns(w);
	return ns < 0 ? -1 : ns / 1000000;
}

int worker_was_suspect(const struct worker *w)
{
	return w->suspect != 0;
}

/* W11: renice a suspect child and free its slot while suspects fit */
static void demote(struct worker *w)
{
	struct worker_pool *p = w->pool;
	setpriority(PRIO_PROCESS, (id_t)w->pid, SUSPECT_NICE);
	w->suspect = 1;
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	if (p->nsuspect < p->max_suspect) {
		p->nsuspect++;
		p->nlive--;
		w->suspect = 2;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
}

void worker_status_text(int st, char *buf, size_t len)
{
	if (WIFSIGNALED(st))
		snprintf(buf, len, "signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "exit status %d", WEXITSTATUS(st));
}

/* ---- the channel ---- */

/* Wait until fd is ready for ev, within the frame's deadline (W1) and the
 * job's CPU budget (W10), demoting a suspect child (W11). */
static int wait_ready(struct worker *w, short ev)
{
	if (w->timeout_ms < 0)
		return 0;   /* the child blocks in read/send */
	for (;;) {
		int64_t t = now_ns(), left = w->deadline_ns - t;
		if (w->suspect && w->suspect_deadline_ns - t < left)
			left = w->suspect_deadline_ns - t;   /* W11 */
		if (left <= 0)
			return DFS_ETIMEOUT;
		int64_t used = cpu_used_ns(w);
		if (used >= 0) {
			if (used >= w->cpu_limit_ns)
				return DFS_EBUDGET;
			if (!w->suspect && used * 2 >= w->cpu_limit_ns)
				demote(w);
			/* the next check: when the budget (or its half) could be
			 * used up at one CPU's pace; at least every 250 ms */
			int64_t next = (w->suspect ? w->cpu_limit_ns : w->cpu_limit_ns / 2) - used;
			next = next < 10000000 ? 10000000 : next > 250000000 ? 250000000 : next;
			left = left < next ? left : next;
		}
		struct pollfd pf = { w->fd, ev, 0 };
		int r = poll(&pf, 1, (int)((left + 999999) / 1000000));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

static void arm(struct worker *w)
{
	if (w->timeout_ms >= 0)
		w->deadline_ns = now_ns() + (int64_t)w->timeout_ms * 1000000;
}

/* Send all of iov (modified), the fd with the first byte (W5). */
static int send_all(struct worker *w, struct iovec *iov, int niov, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	int flags = MSG_NOSIGNAL | (w->timeout_ms >= 0 ? MSG_DONTWAIT : 0);
	while (niov && !iov->iov_len) {
		iov++;
		niov--;
	}
	while (niov || fd >= 0) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)niov };
		if (fd >= 0) {
			memset(cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf;
			mh.msg_controllen = sizeof(cbuf);
			struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		}
		ssize_t r = sendmsg(w->fd, &mh, flags);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				int rc = wait_ready(w, POLLOUT);
				if (rc)
					return rc;
				continue;
			}
			return errno == ECONNRESET ? -EPIPE : -errno;
		}
		fd = -1;
		while (niov && (size_t)r >= iov->iov_len) {
			r -= (ssize_t)iov->iov_len;
			iov++;
			niov--;
		}
		if (niov) {
			iov->iov_base = (char *)iov->iov_base + r;
			iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

int worker_flush(struct worker *w)
{
	if (!w->out.len)
		return 0;
	struct iovec iov = { w->out.buf, w->out.len };
	int rc = send_all(w, &iov, 1, -1);
	strbuf_reset(&w->out);
	return rc;
}

int worker_queue(struct worker *w, uint64_t tag, int32_t aux,
		 const struct iovec *iov, int niov)
{
	struct worker_head h = { .tag = tag, .aux = aux };
	for (int i = 0; i < niov; i++)
		h.len += iov[i].iov_len;
	strbuf_add(&w->out, &h, sizeof(h));
	for (int i = 0; i < niov; i++)
		strbuf_add(&w->out, iov[i].iov_base, iov[i].iov_len);
	return strbuf_error(&w->out);
}

int worker_send(struct worker *w, uint64_t tag, int32_t aux,
		const struct iovec *iov, int niov, int fd)
{
	struct worker_head h = { .tag = tag, .aux = aux };
	struct iovec v[9];
	if (niov > 8)
		return -EINVAL;
	arm(w);
	int rc = worker_flush(w);
	if (rc)
		return rc;
	v[0].iov_base = &h;
	v[0].iov_len = sizeof(h);
	for (int i = 0; i < niov; i++) {
		v[i + 1] = iov[i];
		h.len += iov[i].iov_len;
	}
	return send_all(w, v, niov + 1, fd);
}

/* One read; an fd that comes along is kept (child) or closed (W5). */
static ssize_t chan_read(struct worker *w, void *buf, size_t n)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { buf, n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	ssize_t r;
	int rc = wait_ready(w, POLLIN);
	if (rc)
		return rc;
	do
		r = recvmsg(w->fd, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return errno == ECONNRESET ? -EPIPE : -errno;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t nfd = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfd; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (w->pid == 0 && w->passed_fd < 0)
				w->passed_fd = fd;
			else
				close(fd);
		}
	}
	return r ? r : -EPIPE;
}

/* Make n bytes available at in.p + in.pos (flushing first, W6). */
static int need(struct worker *w, size_t n)
{
	if (w->in.len - w->in.pos >= n)
		return 0;
	int rc = worker_flush(w);
	if (rc)
		return rc;
	if (w->in.pos)
		memmove(w->in.p, w->in.p + w->in.pos, w->in.len - w->in.pos);
	w->in.len -= w->in.pos;
	w->in.pos = 0;
	if (n > w->in.cap) {
		size_t cap = n < 65536 ? 65536 : n;
		char *p = realloc(w->in.p, cap);
		if (!p)
			return -ENOMEM;
		w->in.p = p;
		w->in.cap = cap;
	}
	while (w->in.len < n) {
		ssize_t r = chan_read(w, w->in.p + w->in.len, w->in.cap - w->in.len);
		if (r < 0)
			return (int)r;
		w->in.len += (size_t)r;
	}
	return 0;
}

int worker_recv_head(struct worker *w, struct worker_head *h)
{
	arm(w);
	int rc = need(w, sizeof(*h));
	if (rc)
		return rc;
	memcpy(h, w->in.p + w->in.pos, sizeof(*h));
	w->in.pos += sizeof(*h);
	return 0;
}

int worker_recv_body(struct worker *w, void *dst, size_t n)
{
	char *d = dst;
	size_t have = w->in.len - w->in.pos;
	size_t take = have < n ? have : n;
	memcpy(d, w->in.p + w->in.pos, take);
	w->in.pos += take;
	d += take;
	n -= take;
	if (n && n < DIRECT_READ) {
		int rc = need(w, n);
		if (rc)
			return rc;
		memcpy(d, w->in.p + w->in.pos, n);
		w->in.pos += n;
		return 0;
	}
	if (n) {
		int rc = worker_flush(w);
		if (rc)
			return rc;
	}
	while (n) {
		ssize_t r = chan_read(w, d, n);
		if (r < 0)
			return (int)r;
		d += r;
		n -= (size_t)r;
	}
	return 0;
}

int worker_take_fd(struct worker *w)
{
	int fd = w->passed_fd;
	w->passed_fd = -1;
	return fd;
}

/* ---- the child's side ---- */

void worker_child_begin(struct worker *self)
{
	signal(SIGPIPE, SIG_IGN);
	/* W3: nothing of the parent (LMDB files, FUSE device) is ours */
	if (close_range(3, ~0u, 0))
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	memset(self, 0, sizeof(*self));
	self->fd = 0;
	self->passed_fd = -1;
	self->timeout_ms = -1;
}

void worker_child_end(struct worker *self)
{
	if (self->passed_fd >= 0)
		close(self->passed_fd);
	self->passed_fd = -1;
	free(self->in.p);
	self->in.p = NULL;
	strbuf_release(&self->out);
}
