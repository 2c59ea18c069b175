"""Audit sweep cost on the local cluster: concurrent reads against the sequential code, and growth with size.

  compare: one 2-shard, 2-replica collection of ROWS rows (varchar pk, 8-d vectors); each round runs, side by
           side, `auditd audit --once` of a BASE binary (the code before concurrent reads, if given) and of this
           auditd at each --read-concurrency, in pk and in full mode. The sweep time is the audit's own coverage
           figure (probe + watch + reads + comparison).
  growth:  for each size, a fresh collection of that many rows; the shadow is built by `auditd run --once`
           (timed, max RSS), then a pk audit (sweep time, max RSS of the auditd process) and the shadow's size.

  dev/cluster exec python dev/bench_scale.py compare --auditd .build/release/auditd --base /tmp/auditd-base \
      --rows 200000 --rounds 3
  dev/cluster exec python dev/bench_scale.py growth --auditd .build/release/auditd --sizes 1000000 5000000
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

from pymilvus import connections, utility

import bench_audit  # the collection maker both audit benchmarks share


def make(name, rows):
    """A 2-shard, 2-replica collection of `rows` rows (varchar pk, 8-d vectors), loaded; prints the insert time."""
    t = time.time()
    collection = bench_audit.make(name, rows, 8, 10000)
    print("  %s: %d rows inserted in %.1f s" % (name, rows, time.time() - t), flush=True)
    return collection


def timed(cmd):
    """Runs cmd under /usr/bin/time -v; returns (process, wall seconds, max RSS MB)."""
    t = time.time()
    done = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    wall = time.time() - t
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    return done, wall, (int(rss.group(1)) / 1024 if rss else float("nan"))


def audit(binary, state, name, mode, extra=()):
    cmd = [binary, "audit", "--once", "--json", "--settle", "1", "--mode", mode, "--collection", name,
           "--state", state] + list(extra)
    done, wall, rss = timed(cmd)
    out = done.stdout[done.stdout.find("{"):]
    report = json.loads(out)
    assert done.returncode == 0, done.stderr[-2000:]
    ids = {c["id"] for c in report["collections"] if c["name"] == name}
    cov = next(c for c in report["coverage"] if c["collection"] in ids)
    return cov, wall, rss


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def compare(args):
    name = args.prefix + "_cmp"
    make(name, args.rows)
    time.sleep(2)
    state = tempfile.mkdtemp(prefix="bench-scale-")
    subprocess.run([args.auditd, "run", "--once", "--state", state], check=True, capture_output=True)
    variants = []
    if args.base:
        variants.append(("before (sequential reads)", args.base, []))
    for c in args.concurrency:
        variants.append(("after, --read-concurrency %d" % c, args.auditd, ["--read-concurrency", str(c)]))
    print("| mode | auditd | rows compared (2 replicas) | sweep s (rounds) | median s | rows/s |")
    print("|---|---|---|---|---|---|")
    for mode in args.modes:
        results = {label: [] for label, _, _ in variants}
        rows = 0
        for _ in range(args.rounds):
            for label, binary, extra in variants:  # side by side, alternating
                cov, _, _ = audit(binary, state, name, mode, extra)
                rows = cov["rows"]
                results[label].append(cov["seconds"])
        for label, _, _ in variants:
            s = sorted(results[label])
            median = s[len(s) // 2]
            print("| %s | %s | %d | %s | %.2f | %.0f |" % (
                mode, label, rows, ", ".join("%.2f" % x for x in results[label]), median, rows / median), flush=True)
    shutil.rmtree(state, ignore_errors=True)


def growth(args):
    print("| live rows | ingest s | ingest max RSS MB | shadow MB | bytes/row | pk sweep s | rows/s | audit max RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        name = "%s_%d" % (args.prefix, size)
        make(name, size)
        time.sleep(2)
        state = tempfile.mkdtemp(prefix="bench-growth-")
        done, ingest_s, ingest_rss = timed([args.auditd, "run", "--once", "--state", state])
        assert done.returncode == 0, done.stderr[-2000:]
        shadow = dir_bytes(state)
        cov, _, audit_rss = audit(args.auditd, state, name, "pk")
        print("| %d | %.1f | %.0f | %.1f | %.1f | %.2f | %.0f | %.0f |" % (
            size, ingest_s, ingest_rss, shadow / 1e6, shadow / size, cov["seconds"], cov["rows"] / cov["seconds"],
            audit_rss), flush=True)
        utility.drop_collection(name)
        shutil.rmtree(state, ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--rows", type=int, default=200000)
    c.add_argument("--rounds", type=int, default=3)
    c.add_argument("--base", help="an auditd binary built from the code before concurrent reads")
    c.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    c.add_argument("--modes", nargs="+", default=["pk", "full"])
    g = sub.add_parser("growth")
    g.add_argument("--sizes", type=int, nargs="+", default=[1000000, 5000000])
    for s in (c, g):
        s.add_argument("--auditd", default=".build/release/auditd")
        s.add_argument("--prefix", default="bench_scale")
    args = p.parse_args()
    connections.connect(uri="http://127.0.0.1:19530")
    compare(args) if args.command == "compare" else growth(args)


if __name__ == "__main__":
    main()
