/*
 * cpulat.h - the CPUs' wake-up latency held low while requests arrive
 * (issue 17: a round trip through the mount).
 *
 * Why: every FUSE request that the page cache cannot answer (a READ, a
 * LOOKUP, and the TCGETS ioctl with which Python's open() asks isatty()
 * of every file it opens buffered) wakes a daemon thread, and the reply
 * wakes the reader again. When the CPU a thread is woken on is idle, the
 * wake costs what that CPU's idle state costs to leave: on this VM (the
 * haltpoll cpuidle driver, guest polling off) a halted vCPU costs 50-300
 * µs to wake, against 11-20 µs for a CPU that polls; on bare metal, a
 * deep C-state costs tens of µs. A reader that waits for each reply (np.load
 * in a loop: one ioctl each) pays it twice per request.
 *
 * How: a PM QoS CPU latency request (the kernel's /dev/cpu_dma_latency,
 * Documentation/power/pm_qos_interface.rst): while its fd holds a value of
 * 0 µs, idle CPUs poll instead of sleeping, and a wake is a store to a
 * flag the woken CPU is already watching. The kernel drops the request
 * when the fd is closed, so nothing outlives the process, whatever way it
 * ends.
 *
 * Design notes
 * (L1) Held only while requests arrive: every request calls cpulat_touch;
 *      the hold is taken by the first request after an idle spell and given
 *      back (the default value, "no constraint", written) by the module's
 *      thread once a whole period of CPULAT_IDLE_MS went by without one.
 *      So a mount nobody reads costs nothing, and a busy one costs idle
 *      CPUs that poll, not sleep, while it is busy and for up to two
 *      periods after.
 * (L2) Never in the way: no device, no permission (it is root's, mode
 *      0600) or a failed write leave the module off, with one log line;
 *      no request ever fails or waits for it but on a write of 4 bytes
 *      (the first request after an idle spell).
 * (L3) cpulat_touch is lock-free while the hold is taken: an acquire load
 *      and, at most once per period, a relaxed store.
 * (L4) -o cpu_latency=off leaves the CPUs' idle policy alone (NULL here);
 *      -o cpu_latency=N holds N µs (the idle states that wake within N µs
 *      stay allowed). The default, auto (cpulat_auto_us), holds what keeps
 *      the CPUs' shallowest sleeping state and no deeper one: 0 under the
 *      haltpoll governor of a VM guest, which polls only for 0 (any other
 *      value halts the virtual CPU, the costly wake this is about); else
 *      the exit latency of the first idle state that is not POLL (C1 on
 *      bare metal: 1-2 µs to wake, and a server's other cores sleep in it
 *      instead of polling); 0 without cpuidle.
 * Threading: cpulat_touch and cpulat_stats from any thread; cpulat_start
 * and cpulat_stop from one thread, after any fork (the module's thread)
 * and before / after every other call. Locks: cpulat.lock guards held,
 * holds, stop and the fd's writes; recent and held are also read without
 * it (__atomic).
 */
#ifndef DFS_CPULAT_H
#define DFS_CPULAT_H

#include <stddef.h>
#include <stdint.h>

/* L1: a hold ends after a period this long without a request */
#define CPULAT_IDLE_MS 250
/* the PM QoS device (a test passes a file of its own) */
#define CPULAT_DEVICE "/dev/cpu_dma_latency"

struct cpulat;

/*
 * Open dev (NULL: CPULAT_DEVICE) and start the module's thread; us is the
 * latency held while requests arrive (0 .. 1000000), idle_ms the period
 * of L1 (0: CPULAT_IDLE_MS). Returns NULL when the module stays off (L2);
 * then why says so (not for ENOMEM, which leaves why empty).
 */
struct cpulat *cpulat_start(const char *dev, int32_t us, unsigned idle_ms,
			    char *why, size_t whylen);

/*
 * L4's auto value, read from sysfs (NULL: /sys/devices/system/cpu; a test
 * passes a tree of its own): the governor from cpuidle/current_governor
 * (or current_governor_ro), the idle states from cpu0/cpuidle/stateN/{name,
 * latency}. how (may be NULL) says which rule chose it.
 */
int32_t cpulat_auto_us(const char *sysfs_cpu, char *how, size_t howlen);

/* A request arrived (L1, L3). NULL: nothing. */
void cpulat_touch(struct cpulat *l);

struct cpulat_stats {
	int32_t us;       /* the value held */
	int held;         /* 1 while held */
	uint64_t holds;   /* holds taken since the start */
};
/* Its state now (status.json); NULL l: all zero. */
void cpulat_stats(struct cpulat *l, struct cpulat_stats *out);

/* Give the hold back, join the thread, close the fd, free. NULL: nothing. */
void cpulat_stop(struct cpulat *l);

#endif
