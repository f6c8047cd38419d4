#!/usr/bin/python3
"""Read every file below a mounted dicomfs tree with parallel threads.

Usage: readall.py MOUNTPOINT [--threads N] [--allow ERRNO,...] [--skip-re RE]
                  [--times FILE]
stat + listxattr + getxattr of each entry, full read of each file; symlinks
(query views) are read with readlink and stat'ed, not followed. Prints
one line per unexpected error ("path<TAB>operation<TAB>error") and a
summary line "entries=N files=N bytes=N eio=N enoent=N"; exits 1 when an
error other than the allowed ones (default EIO) happened.
--times FILE writes one line per file read, "seconds<TAB>result<TAB>path"
(result "ok" or the errno name; seconds from open to the end of the last
read), slowest first, and adds slowest=SECONDS to the summary line.
"""
import errno
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

root = sys.argv[1]
threads = int(sys.argv[sys.argv.index('--threads') + 1]) if '--threads' in sys.argv else 8
allowed = {errno.EIO}
if '--allow' in sys.argv:
    allowed = {getattr(errno, n) for n in sys.argv[sys.argv.index('--allow') + 1].split(',')}
times_out = sys.argv[sys.argv.index('--times') + 1] if '--times' in sys.argv else None
# files (not directories) whose path matches are stat'ed but not read
skip_re = re.compile(sys.argv[sys.argv.index('--skip-re') + 1]) if '--skip-re' in sys.argv else None
lock = threading.Lock()
times = []
stats = {'entries': 0, 'files': 0, 'bytes': 0, 'eio': 0, 'enoent': 0}
bad = []


def err(path, op, e):
    with lock:
        if e.errno == errno.EIO:
            stats['eio'] += 1
        if e.errno == errno.ENOENT:
            stats['enoent'] += 1
        if e.errno not in allowed:
            bad.append('%s\t%s\t%s' % (path, op, e))


def visit(path, is_dir):
    try:
        os.lstat(path)
        for a in os.listxattr(path):
            os.getxattr(path, a)
    except OSError as e:
        err(path, 'stat/xattr', e)
    if is_dir or (skip_re and skip_re.search(path)):
        return
    t0 = time.monotonic()
    try:
        n = 0
        with open(path, 'rb') as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                n += len(b)
        with lock:
            stats['files'] += 1
            stats['bytes'] += n
            times.append((time.monotonic() - t0, 'ok', path))
    except OSError as e:
        with lock:
            times.append((time.monotonic() - t0, errno.errorcode.get(e.errno, str(e.errno)), path))
        err(path, 'read', e)


def walk(pool, d, futs):
    try:
        with os.scandir(d) as it:
            ents = list(it)
    except OSError as e:
        err(d, 'readdir', e)
        return
    for de in ents:
        with lock:
            stats['entries'] += 1
        try:
            isdir = de.is_dir(follow_symlinks=False)
            if de.is_symlink():
                # (query views): the link and its target answer; the
                # target is visited where it lives
                os.readlink(de.path)
                os.stat(de.path)
                continue
        except OSError as e:
            err(de.path, 'd_type/readlink', e)
            continue
        futs.append(pool.submit(visit, de.path, isdir))
        if isdir:
            walk(pool, de.path, futs)


with ThreadPoolExecutor(threads) as pool:
    futs = []
    walk(pool, root, futs)
    for f in futs:
        f.result()
for b in bad[:50]:
    print(b)
summary = ' '.join('%s=%d' % kv for kv in stats.items())
if times_out:
    times.sort(reverse=True)
    with open(times_out, 'w') as f:
        for t in times:
            f.write('%.3f\t%s\t%s\n' % t)
    summary += ' slowest=%.3f' % (times[0][0] if times else 0)
print(summary)
sys.exit(1 if bad else 0)
