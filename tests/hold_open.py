# hold_open.py PID N FILE...: N threads per FILE open it (and read its first
# 64 KiB) at once and keep it open; prints each open's result
# ("open I: ok|<strerror> COUNT", I the FILE's position from 1), then the peak summed VmRSS (KiB) of
# PID and its descendants sampled while the opens ran and were held
# ("peak_kib K"), and the VmRSS before ("base_kib K").
import os, sys, threading, time
pid, n, files = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
def rss_tree(p):
    tot = 0
    todo = [p]
    while todo:
        q = todo.pop()
        try:
            for l in open('/proc/%d/status' % q):
                if l.startswith('VmRSS:'):
                    tot += int(l.split()[1])
            for t in os.listdir('/proc/%d/task' % q):
                try:
                    todo += [int(c) for c in open('/proc/%d/task/%s/children' % (q, t)).read().split()]
                except OSError:
                    pass
        except OSError:
            pass
    return tot
held, results, lock = [], {}, threading.Lock()
print('base_kib', rss_tree(pid))
def opener(path, i, k):
    try:
        fd = os.open(path, os.O_RDONLY)
        os.pread(fd, 65536, 0)
        with lock:
            held.append(fd)
        r = 'ok'
    except OSError as e:
        r = e.strerror
    with lock:
        results.setdefault('%d: %s' % (i, r), []).append(k)
ts = [threading.Thread(target=opener, args=(f, i + 1, k)) for k in range(n)
      for i, f in enumerate(files)]
peak = 0
for t in ts:
    t.start()
while any(t.is_alive() for t in ts):
    peak = max(peak, rss_tree(pid))
    time.sleep(0.02)
for i in range(10):
    peak = max(peak, rss_tree(pid))
    time.sleep(0.05)
for k, v in sorted(results.items()):
    print('open', k, len(v))
print('peak_kib', peak)
for fd in held:
    os.close(fd)
