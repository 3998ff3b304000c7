#!/usr/bin/env python3
"""Benchmarks fileconsul against the Consul CLI on the same data, on a local cluster.

Run through bench/run.sh, which builds the release binary and starts the 3-agent cluster.
Every figure is the median of several runs; each fileconsul figure is shown with the Consul CLI
figure measured in the same run (the anchor) and their ratio.
"""
import base64
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
CONSUL = sys.argv[1]
ADDR = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.11:8500"
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
WORK = tempfile.mkdtemp(prefix="fileconsul-bench-")
ENV = dict(os.environ, CONSUL_HTTP_ADDR=ADDR)
rows = []


def run(cmd, cwd=None, stdin=None):
    """Runs a command; returns its wall-clock seconds."""
    start = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=ENV, input=stdin, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, stdin=None if stdin else subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed ({p.returncode}): {p.stderr.decode()[:500]}")
    return elapsed


def peak_rss_kib(cmd):
    """Peak RSS of one run of cmd, from GNU time (a parent this benchmark's size would skew
    wait4's figure: a vforked child inherits the parent's high-water mark)."""
    p = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd], env=ENV, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise SystemExit(f"{cmd} failed: {p.stderr.decode()[:500]}")
    return int(p.stderr.decode().strip().splitlines()[-1])


def create_files_floor(files):
    """Seconds this machine's disk takes to create `files` 2 KiB files in the same layout."""
    target = os.path.join(WORK, "floor")
    start = time.perf_counter()
    for i in range(files):
        d = os.path.join(target, f"d{i % 10}/e{(i // 10) % 10}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i}.conf"), "wb") as f:
            f.write(b"x" * 2048)
    elapsed = time.perf_counter() - start
    shutil.rmtree(target)
    return elapsed


def fc(prefix, base, *args):
    return [FC, "--addr", ADDR, "--prefix", prefix, "--basepath", base, *args]


def make_tree(path, files, seed):
    rng = random.Random(seed)
    names = []
    for i in range(files):
        rel = f"d{i % 10}/e{(i // 10) % 10}/f{i}.conf"
        full = os.path.join(path, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(bytes(rng.getrandbits(8) for _ in range(2048)))
        names.append(rel)
    return names


def import_json(prefix, base, names):
    entries = []
    for rel in names:
        with open(os.path.join(base, rel), "rb") as f:
            value = base64.b64encode(f.read()).decode()
        entries.append({"key": f"{prefix}/{rel}", "flags": 0, "value": value})
    return json.dumps(entries).encode()


def median(samples):
    return statistics.median(samples)


def row(name, ours, anchor_name, anchor, goal):
    ratio = anchor / ours
    rows.append((name, ours, anchor_name, anchor, ratio, goal))
    print(f"{name:<44} {ours*1000:8.1f} ms | {anchor_name:<28} {anchor*1000:8.1f} ms | {ratio:5.2f}x  ({goal})",
          flush=True)


def bench(files):
    tag = f"{files}-{os.getpid()}"
    tree = os.path.join(WORK, f"tree-{files}")
    names = make_tree(tree, files, files)
    body = import_json("x", tree, names)

    # push into an empty prefix vs consul kv import of the same keys
    ours, anchor = [], []
    for r in range(RUNS):
        shutil.rmtree(os.path.join(tree, ".fileconsul"), ignore_errors=True)
        ours.append(run(fc(f"b/push-{tag}-{r}", tree, "push")))
        data = body.replace(b'"key": "x/', f'"key": "b/import-{tag}-{r}/'.encode())
        anchor.append(run([CONSUL, "kv", "import", "-"], stdin=data))
    row(f"push {files} files into an empty prefix", median(ours), "consul kv import", median(anchor), "goal >= 8x")

    prefix = f"b/push-{tag}-0"
    shutil.rmtree(os.path.join(tree, ".fileconsul"), ignore_errors=True)
    run(fc(prefix, tree, "pull"))  # records the sync state of the pushed tree
    ours = [run(fc(prefix, tree, "status")) for _ in range(RUNS)]
    anchor = [run([CONSUL, "kv", "export", prefix + "/"]) for _ in range(RUNS)]
    row(f"status {files} files, nothing changed", median(ours), "consul kv export", median(anchor), "goal >= 4x")

    export = median(anchor)
    ours, shm = [], []
    for r in range(RUNS):
        target = os.path.join(WORK, f"pull-{files}-{r}")
        ours.append(run(fc(prefix, target, "pull")))
        shutil.rmtree(target)
        target = os.path.join("/dev/shm", f"fileconsul-bench-{os.getpid()}")
        shm.append(run(fc(prefix, target, "pull")))
        shutil.rmtree(target)
    row(f"pull {files} files into an empty directory", median(ours), "consul kv export", export, "goal >= 1x")
    row(f"pull {files} files into an empty tmpfs dir", median(shm), "consul kv export", export, "goal >= 1x")
    floor = median([create_files_floor(files) for _ in range(3)])
    row(f"pull {files} files into an empty directory", median(ours), "creating the files (python)", floor,
        "the disk's floor")

    # push after changing 1% of the files vs consul kv import of only those files
    ours, anchor = [], []
    rng = random.Random(7)
    for r in range(RUNS):
        changed = rng.sample(names, max(1, files // 100))
        for rel in changed:
            with open(os.path.join(tree, rel), "ab") as f:
                f.write(f"change {r}\n".encode())
        ours.append(run(fc(prefix, tree, "push")))
        anchor.append(run([CONSUL, "kv", "import", "-"], stdin=import_json(prefix + "-imp", tree, changed)))
    row(f"push after changing 1% of {files} files", median(ours), "consul kv import (1%)", median(anchor), "goal >= 0.67x")

    if files == 5000:
        empty = os.path.join(WORK, "rss-pull")
        push_tree = os.path.join(WORK, "rss-push")
        shutil.copytree(tree, push_tree, ignore=shutil.ignore_patterns(".fileconsul"))
        for label, cmd in [
            ("push", fc(f"b/rss-{tag}", push_tree, "push")),
            ("status", fc(prefix, tree, "status")),
            ("pull", fc(prefix, empty, "pull")),
        ]:
            kib = peak_rss_kib(cmd)
            rss.append((label, kib))
            print(f"peak RSS of {label} at {files} files: {kib/1024:.1f} MiB (goal < 25 MiB)", flush=True)


rss = []
try:
    for n in (1000, 5000):
        bench(n)
finally:
    shutil.rmtree(WORK, ignore_errors=True)

print("\n| operation | fileconsul | Consul CLI (anchor) | ratio (anchor / fileconsul) | goal |")
print("|---|---|---|---|---|")
for name, ours, anchor_name, anchor, ratio, goal in rows:
    print(f"| {name} | {ours*1000:.0f} ms | {anchor_name}: {anchor*1000:.0f} ms | {ratio:.2f}x | {goal.replace('goal ', '')} |")
for label, kib in rss:
    print(f"| peak RSS of {label}, 5000 files | {kib/1024:.1f} MiB | | | < 25 MiB |")
