/*
 * unit_worker.c - the contained child-process pool (index/worker.h): this
 * test spawns itself ("--child MODE") as the worker and checks framing,
 * batching, fd passing, the limits, a crash, a timeout, a broken pool, the
 * CPU budget and the demotion of a suspect child (W10, W11), the idle
 * children kept (W12).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "error.h"
#include "worker.h"

#define AS_LIMIT ((uint64_t)3 << 30)

/* ---- the child ---- */

static int child(const char *mode)
{
	struct worker ch;
	char *buf = NULL;
	worker_child_begin(&ch);
	for (;;) {
		struct worker_head h;
		if (worker_recv_head(&ch, &h))
			break;
		buf = realloc(buf, h.len + 1);
		if (!buf || worker_recv_body(&ch, buf, h.len))
			return 1;
		if (h.tag == 7 && !strcmp(mode, "crash7"))
			abort();
		if (!strcmp(mode, "sleep"))
			pause();
		if (!strcmp(mode, "spin") && h.tag >= 1000) {
			/* burn tag - 1000 ms of this process's CPU (1999: forever) */
			struct timespec ts;
			int64_t until = (int64_t)(h.tag - 1000) * 1000000, t;
			do {
				clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
				t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
			} while (t < until || h.tag == 1999);
		}
		int fd = worker_take_fd(&ch);
		int32_t aux = -1;
		if (fd >= 0) {   /* answer the passed file's first bytes */
			aux = (int32_t)pread(fd, buf, h.len, 0);
			close(fd);
		}
		if (h.tag == 99) {   /* answer the limit */
			struct rlimit rl;
			getrlimit(RLIMIT_AS, &rl);
			aux = (int32_t)(rl.rlim_cur >> 30);
		}
		struct iovec iov = { buf, h.len };
		if (worker_queue(&ch, h.tag, aux, &iov, 1))
			return 1;
	}
	worker_flush(&ch);
	worker_child_end(&ch);
	free(buf);
	return 0;
}

/* ---- the parent ---- */

static char exe[4096];

static struct worker_pool *pool(const char *mode, int timeout_ms, int max)
{
	const char *args[] = { "--child", mode, NULL };
	struct worker_spec s = { .exe = exe, .args = args, .as_limit = AS_LIMIT,
				 .max = max, .timeout_ms = timeout_ms };
	struct worker_pool *p = NULL;
	CHECK(worker_pool_new(&s, &p) == 0, "pool_new %s", mode);
	return p;
}

static int roundtrip(struct worker *w, uint64_t tag, const char *data, size_t len,
		     struct worker_head *h, char *out)
{
	int rc = worker_recv_head(w, h);
	if (rc)
		return rc;
	if (h->tag != tag || h->len != len)
		return -EPROTO;
	rc = worker_recv_body(w, out, len);
	return rc ? rc : memcmp(out, data, len) ? -EPROTO : 0;
}

static void test_echo(void)
{
	struct worker_pool *p = pool("echo", 5000, 2);
	struct worker *w;
	struct worker_head h;
	char out[64];
	CHECK(worker_get(p, &w) == 0, "get");
	/* a batch: queued, flushed by the first read (W6), answered in order */
	for (uint64_t t = 0; t < 20; t++) {
		char m[32];
		struct iovec iov = { m, (size_t)snprintf(m, sizeof(m), "job %llu", (unsigned long long)t) };
		CHECK(worker_queue(w, t, 0, &iov, 1) == 0, "queue");
	}
	for (uint64_t t = 0; t < 20; t++) {
		char m[32];
		size_t n = (size_t)snprintf(m, sizeof(m), "job %llu", (unsigned long long)t);
		CHECK(roundtrip(w, t, m, n, &h, out) == 0, "answer %llu", (unsigned long long)t);
	}
	/* a big payload, read straight into the caller's buffer */
	size_t big = 3 << 20;
	char *b = malloc(big), *r = malloc(big);
	for (size_t i = 0; i < big; i++)
		b[i] = (char)(i * 7);
	struct iovec iov = { b, big };
	CHECK(worker_send(w, 5, 0, &iov, 1, -1) == 0, "send big");
	CHECK(roundtrip(w, 5, b, big, &h, r) == 0, "big payload back intact");
	free(b);
	free(r);
	/* an fd rides with a frame (W5) */
	char path[] = "/tmp/unit_worker.XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0 && write(fd, "abcd", 4) == 4, "temp file");
	unlink(path);
	struct iovec iv = { "1234", 4 };
	CHECK(worker_send(w, 6, 0, &iv, 1, fd) == 0, "send fd");
	close(fd);
	CHECK(worker_recv_head(w, &h) == 0 && h.aux == 4 && h.len == 4 &&
	      worker_recv_body(w, out, 4) == 0 && !memcmp(out, "abcd", 4),
	      "the child read the passed fd");
	/* the address-space limit is the pool's (W2) */
	CHECK(worker_send(w, 99, 0, &iv, 1, -1) == 0 && worker_recv_head(w, &h) == 0 &&
	      worker_recv_body(w, out, 4) == 0, "limit query");
#ifndef __SANITIZE_ADDRESS__
	CHECK(h.aux == (int32_t)(AS_LIMIT >> 30), "child RLIMIT_AS %d GiB", h.aux);
#endif
	pid_t pid = w->pid;
	worker_put(p, w, WORKER_KEEP, NULL);
	struct worker *w2;
	CHECK(worker_get(p, &w2) == 0 && w2->pid == pid, "an idle child is reused");
	worker_put(p, w2, WORKER_KEEP, NULL);
	worker_pool_free(p);   /* W8: waits for it */
	CHECK(kill(pid, 0) < 0 && errno == ESRCH, "the child is gone after pool_free");
}

static void test_crash(void)
{
	struct worker_pool *p = pool("crash7", 5000, 1);
	struct worker *w;
	struct worker_head h;
	char out[16], why[96];
	int st = 0;
	struct iovec iov = { "x", 1 };
	CHECK(worker_get(p, &w) == 0, "get");
	CHECK(worker_send(w, 1, 0, &iov, 1, -1) == 0 && roundtrip(w, 1, "x", 1, &h, out) == 0,
	      "a job before the crash");
	CHECK(worker_send(w, 7, 0, &iov, 1, -1) == 0, "send the crasher");
	CHECK(worker_recv_head(w, &h) == -EPIPE, "EOF when the child dies");
	pid_t pid = w->pid;
	worker_put(p, w, WORKER_KILL, &st);
	worker_status_text(st, why, sizeof(why));
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "status: %s", why);
	CHECK(!strncmp(why, "signal 6 (", 10), "why: %s", why);
	/* replaced (W4): max 1, so get waits for nothing and spawns anew */
	CHECK(worker_get(p, &w) == 0 && w->pid != pid, "replacement child");
	CHECK(worker_send(w, 2, 0, &iov, 1, -1) == 0 && roundtrip(w, 2, "x", 1, &h, out) == 0,
	      "the replacement works");
	worker_put(p, w, WORKER_KEEP, NULL);
	worker_pool_free(p);
}

static void test_timeout(void)
{
	struct worker_pool *p = pool("sleep", 300, 1);
	struct worker *w;
	struct worker_head h;
	struct timespec t0, t1;
	struct iovec iov = { "x", 1 };
	int st = 0;
	CHECK(worker_get(p, &w) == 0, "get");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK(worker_send(w, 1, 0, &iov, 1, -1) == 0, "send");
	CHECK(worker_recv_head(w, &h) == DFS_ETIMEOUT, "a hung child: DFS_ETIMEOUT (W1)");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECK(dt >= 0.25 && dt < 3, "deadline kept: %.2f s", dt);
	worker_put(p, w, WORKER_KILL, &st);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "killed");
	worker_pool_free(p);
}

/* W10: CPU time, not wall time; W11: a suspect is reniced, leaves its
 * slot and is not reused */
static void test_budget(void)
{
	const char *args[] = { "--child", "spin", NULL };
	struct worker_spec s = { .exe = exe, .args = args, .max = 1, .timeout_ms = 60000,
				 .get_timeout_ms = 30000 };
	struct worker_pool *p = NULL;
	struct worker *w, *w2;
	struct worker_head h;
	char out[8];
	struct iovec iov = { "x", 1 };
	int st = 0;
	CHECK(worker_pool_new(&s, &p) == 0, "pool_new spin");
	/* a child spinning forever: DFS_EBUDGET once it used 300 ms of CPU,
	 * long before the 60 s wall deadline */
	CHECK(worker_get(p, &w) == 0, "get");
	worker_set_budget(w, 60000, 300, 60000);
	CHECK(worker_send(w, 1999, 0, &iov, 1, -1) == 0, "send spin");
	CHECK(worker_recv_head(w, &h) == DFS_EBUDGET, "past its CPU budget: DFS_EBUDGET");
	int64_t used = worker_cpu_ms(w);
	CHECK(used >= 300 && used < 5000, "it used %lld ms of CPU", (long long)used);
	CHECK(worker_was_suspect(w), "suspect on the way");
	worker_put(p, w, WORKER_KILL, &st);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "killed");
	/* a job that uses 200 ms of a 300 ms budget: done, but suspect (W11) */
	CHECK(worker_get(p, &w) == 0, "get");
	worker_set_budget(w, 60000, 300, 60000);
	CHECK(worker_send(w, 1200, 0, &iov, 1, -1) == 0 &&
	      roundtrip(w, 1200, "x", 1, &h, out) == 0, "a job within its budget answers");
	CHECK(worker_was_suspect(w), "past half its budget: suspect");
	errno = 0;
	int prio = getpriority(PRIO_PROCESS, (id_t)w->pid);
	CHECK(prio == 10 && errno == 0, "reniced to %d", prio);
	/* its slot is free: max is 1, yet another child starts at once */
	CHECK(worker_get(p, &w2) == 0 && w2->pid != w->pid, "a fresh child beside the suspect");
	pid_t sus = w->pid;
	worker_put(p, w, WORKER_KEEP, NULL);
	CHECK(kill(sus, 0) < 0 && errno == ESRCH, "a suspect is not kept");
	/* a job without a budget is not watched */
	CHECK(worker_send(w2, 1100, 0, &iov, 1, -1) == 0 &&
	      roundtrip(w2, 1100, "x", 1, &h, out) == 0 && !worker_was_suspect(w2),
	      "no budget: no suspicion");
	pid_t kept = w2->pid;
	worker_put(p, w2, WORKER_KEEP, NULL);
	CHECK(worker_get(p, &w) == 0 && w->pid == kept, "the good child is kept and reused");
	worker_put(p, w, WORKER_KEEP, NULL);
	worker_pool_free(p);
}

/* W12: idle children beyond keep_idle exit when given back */
static void test_keep_idle(void)
{
	const char *args[] = { "--child", "echo", NULL };
	struct worker_spec s = { .exe = exe, .args = args, .max = 3, .timeout_ms = 5000,
				 .keep_idle = 1 };
	struct worker_pool *p = NULL;
	struct worker *w[3];
	CHECK(worker_pool_new(&s, &p) == 0, "pool_new");
	for (int i = 0; i < 3; i++)
		CHECK(worker_get(p, &w[i]) == 0, "get %d", i);
	pid_t pid[3] = { w[0]->pid, w[1]->pid, w[2]->pid };
	for (int i = 0; i < 3; i++)
		worker_put(p, w[i], WORKER_KEEP, NULL);
	CHECK(kill(pid[0], 0) == 0, "one idle child kept");
	CHECK(kill(pid[1], 0) < 0 && kill(pid[2], 0) < 0, "the others are gone");
	CHECK(worker_get(p, &w[0]) == 0 && w[0]->pid == pid[0], "the kept one is reused");
	worker_put(p, w[0], WORKER_KEEP, NULL);
	worker_pool_free(p);
}

static void test_broken(void)
{
	const char *args[] = { "--child", "echo", NULL };
	struct worker_spec s = { .exe = "/nonexistent/dicomfs", .args = args, .max = 2,
				 .timeout_ms = 1000 };
	struct worker_pool *p = NULL;
	struct worker *w;
	CHECK(worker_pool_new(&s, &p) == 0, "pool_new");
	CHECK(worker_get(p, &w) < 0, "a failed spawn: no child");
	s.exe = exe;   /* (the pool copied its spec) */
	CHECK(worker_get(p, &w) < 0, "broken for good (W7)");
	worker_pool_free(p);
	s.exe = NULL;
	CHECK(worker_pool_new(&s, &p) == 0 && worker_get(p, &w) < 0,
	      "no executable: broken from the start");
	worker_pool_free(p);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--child"))
		return child(argv[2]);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return 1;
	exe[n] = 0;
	signal(SIGPIPE, SIG_IGN);
	test_echo();
	test_crash();
	test_timeout();
	test_budget();
	test_keep_idle();
	test_broken();
	return unit_done();
}
