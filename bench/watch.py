#!/usr/bin/env python3
"""Benchmarks `fileconsul watch` on the local 3-agent cluster (run through bench/run.sh watch).

* latency: one-file pushes on node 1 with watchers on nodes 2 and 3; time from the push's start
  and from its return until the file is in place on both (p50, p99);
* a 1,000-file push: applies per watcher (goal 1) and time until the last node has it, against
  the push's own time (goal 1.2x);
* 50 watchers on one node: time until the last has a one-file push;
* bytes a watcher reads from its agent for a push changing one 2 KB file in a 5,000-file tree
  (goal: at most 16 KiB above the changed bytes).
"""
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FC = os.path.join(ROOT, "target", "release", "fileconsul")
ADDRS = ["127.0.0.11:8500", "127.0.0.12:8500", "127.0.0.13:8500"]
PUSHES = int(os.environ.get("BENCH_PUSHES", "50"))
WORK = tempfile.mkdtemp(prefix="fileconsul-watchbench-")
watchers = []
results = []


def fc(addr, prefix, base, *args, **kw):
    return subprocess.run([FC, "--addr", addr, "--prefix", prefix, "--basepath", base, *args],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True, **kw)


def start_watcher(addr, prefix, base):
    os.makedirs(base, exist_ok=True)
    log = open(base + ".log", "wb")
    p = subprocess.Popen([FC, "--addr", addr, "--prefix", prefix, "--basepath", base, "--format", "json", "watch"],
                         stdout=subprocess.DEVNULL, stderr=log)
    watchers.append(p)
    return base + ".log"


def events(log):
    """The watcher's JSON Lines events so far (a line still being written is left out)."""
    out = []
    with open(log) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def wait_for(pred, timeout=60):
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        if pred():
            return time.perf_counter()
        time.sleep(0.0002)
    raise SystemExit("timed out")


def content(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def pct(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def report(name, value, goal):
    results.append((name, value, goal))
    print(f"{name}: {value} ({goal})", flush=True)


def seed_probe(name):
    """A prefix holding one file, `probe` = "start", pushed from node 1; returns (prefix, src)."""
    prefix = f"wb/{name}-{os.getpid()}"
    src = os.path.join(WORK, f"{name}-src")
    os.makedirs(src)
    with open(os.path.join(src, "probe"), "w") as f:
        f.write("start")
    fc(ADDRS[0], prefix, src, "push")
    return prefix, src


def latency():
    prefix, src = seed_probe("lat")
    bases = [os.path.join(WORK, f"lat-n{i}") for i in (2, 3)]
    logs = [start_watcher(ADDRS[i - 1], prefix, b) for i, b in zip((2, 3), bases)]
    wait_for(lambda: all(content(os.path.join(b, "probe")) == b"start" for b in bases))
    after_return, after_start, push_times = [], [], []
    for i in range(PUSHES):
        value = f"value {i}".encode()
        with open(os.path.join(src, "probe"), "wb") as f:
            f.write(value)
        t0 = time.perf_counter()
        fc(ADDRS[0], prefix, src, "push")
        t1 = time.perf_counter()
        t2 = wait_for(lambda: all(content(os.path.join(b, "probe")) == value for b in bases))
        after_return.append((t2 - t1) * 1000)
        after_start.append((t2 - t0) * 1000)
        push_times.append((t1 - t0) * 1000)
    report("one-file push: both watchers have it, after the push returns, p50",
           f"{pct(after_return, 50):.1f} ms", "goal < 10 ms")
    report("one-file push: both watchers have it, after the push returns, p99",
           f"{pct(after_return, 99):.1f} ms", "goal < 50 ms")
    report("one-file push: both watchers have it, from the push's start, p50 / p99",
           f"{pct(after_start, 50):.1f} / {pct(after_start, 99):.1f} ms",
           f"the push itself: p50 {pct(push_times, 50):.1f} ms")
    return prefix, src, bases, logs


def big_push(prefix, src, bases, logs):
    for i in range(1000):
        path = os.path.join(src, f"many/d{i % 10}/f{i}")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(os.urandom(2048))
    before = [len(events(l)) for l in logs]
    t0 = time.perf_counter()
    fc(ADDRS[0], prefix, src, "push")
    push = time.perf_counter() - t0
    last = os.path.join("many/d9/f999")
    expected = content(os.path.join(src, last))
    t_last = wait_for(lambda: all(content(os.path.join(b, last)) == expected for b in bases))
    # Wait until both have logged the apply, then count how many applies the push took.
    wait_for(lambda: all(any(e.get("event") == "applied" for e in events(l)[n:]) for l, n in zip(logs, before)))
    time.sleep(0.5)
    applies = [sum(1 for e in events(l)[n:] if e.get("event") == "applied") for l, n in zip(logs, before)]
    ratio = (t_last - t0) / push
    report("1,000-file push: applies per watcher", f"{applies}", "goal [1, 1]")
    report("1,000-file push: last node has it / push's own time",
           f"{ratio:.2f}x ({(t_last - t0) * 1000:.0f} ms vs {push * 1000:.0f} ms)", "goal <= 1.2x")


def many_watchers():
    prefix, src = seed_probe("many")
    bases = [os.path.join(WORK, f"many-w{i}") for i in range(50)]
    for b in bases:
        start_watcher(ADDRS[1], prefix, b)
    wait_for(lambda: all(content(os.path.join(b, "probe")) == b"start" for b in bases), timeout=120)
    time.sleep(1)
    with open(os.path.join(src, "probe"), "wb") as f:
        f.write(b"changed")
    t0 = time.perf_counter()
    fc(ADDRS[0], prefix, src, "push")
    t1 = time.perf_counter()
    t2 = wait_for(lambda: all(content(os.path.join(b, "probe")) == b"changed" for b in bases))
    report("50 watchers on one node: the last has a one-file push",
           f"{(t2 - t0) * 1000:.0f} ms from the push's start ({(t2 - t1) * 1000:.0f} ms after it returns)",
           "no goal set")


def bytes_per_push():
    prefix = f"wb/bytes-{os.getpid()}"
    src = os.path.join(WORK, "bytes-src")
    rng = random.Random(5)
    for i in range(5000):
        path = os.path.join(src, f"d{i % 10}/e{(i // 10) % 10}/f{i}.conf")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(rng.randbytes(2048))
    fc(ADDRS[0], prefix, src, "push")
    base = os.path.join(WORK, "bytes-w")
    log = start_watcher(ADDRS[1], prefix, base)
    wait_for(lambda: any(e.get("how") == "full" for e in events(log)), timeout=120)
    samples = []
    for r in range(5):
        before = [e for e in events(log) if e.get("event") == "applied"][-1]["bytes_read"]
        path = f"d3/e4/f{43 + r * 100}.conf"
        new = rng.randbytes(2048)
        with open(os.path.join(src, path), "wb") as f:
            f.write(new)
        fc(ADDRS[0], prefix, src, "push")
        wait_for(lambda: content(os.path.join(base, path)) == new)
        wait_for(lambda: [e for e in events(log) if e.get("event") == "applied"][-1]["bytes_read"] != before)
        after = [e for e in events(log) if e.get("event") == "applied"][-1]["bytes_read"]
        samples.append(after - before)
    median = statistics.median(samples)
    report("bytes a watcher reads for a push changing one 2 KB file of 5,000",
           f"{median:.0f} B (2048 B changed, {(median - 2048) / 1024:.1f} KiB above)", "goal <= 16 KiB above")


try:
    prefix, src, bases, logs = latency()
    big_push(prefix, src, bases, logs)
    for p in watchers:
        p.terminate()
    watchers.clear()
    many_watchers()
    for p in watchers:
        p.terminate()
    watchers.clear()
    bytes_per_push()
finally:
    for p in watchers:
        p.terminate()
    for p in watchers:
        p.wait()
    shutil.rmtree(WORK, ignore_errors=True)

print("\n| measurement | result | goal |")
print("|---|---|---|")
for name, value, goal in results:
    print(f"| {name} | {value} | {goal.replace('goal ', '')} |")
