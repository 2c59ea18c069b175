"""The sidecar's budgets (docs/benchmarks.md), measured on the local cluster with a release build:

  idle CPU of `auditd serve` (between rounds), its RSS with ROWS live rows (idle after a round, and the peak of a
  round), a /metrics scrape, ingest throughput while rounds run against without, and how soon a QueryNode
  restart is recorded after its session changes in etcd.

  dev/cluster exec python dev/bench_serve.py --auditd .build/release/auditd --rows 1000000

The collection (2 shards, 2 replicas, varchar pk, 8-d vectors) is made once and kept (--keep) for re-runs.
"""
import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

from pymilvus import connections, utility

import bench_audit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get(url, timeout=30):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def metric(text, name):
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
            seen = True
    return total if seen else None


def proc(pid):
    """(cpu seconds, RSS MB, peak RSS MB) of a process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = hwm = 0.0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return cpu, rss, hwm


class Serve:
    def __init__(self, binary, port, *extra):
        self.state = tempfile.mkdtemp(prefix="bench-serve-")
        self.port = port
        self.log = open(os.path.join(self.state, "..", os.path.basename(self.state) + ".log"), "w")
        self.started = time.time()
        self.process = subprocess.Popen([binary, "serve", "--state", self.state, "--milvus", "127.0.0.1:19530",
                                         "--listen", "127.0.0.1:%d" % port, "--log-level", "notice", *extra],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self.wait(lambda: self.metrics() is not None, 60)

    def metrics(self):
        try:
            return get("http://127.0.0.1:%d/metrics" % self.port, timeout=5)
        except OSError:
            return None

    def wait(self, predicate, seconds):
        deadline = time.time() + seconds
        while time.time() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.2)
        raise SystemExit("timed out")

    def caught_up(self, rows_at_least):
        """Every row of the log inserted into the shadow and every pchannel within 3 s of its newest tick
        (time ticks keep arriving: the record lag is never 0 everywhere at once)."""
        text = self.metrics() or ""
        rows = 0.0
        for line in text.splitlines():
            if line.startswith('auditd_ingest_rows_total{op="insert"}'):
                rows = float(line.rsplit(" ", 1)[1])
        lags = [float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith("auditd_consumer_lag_seconds{")]
        return rows >= rows_at_least and lags and max(lags) < 3

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.state, ignore_errors=True)


def ingest_time(binary, port, rows, *extra):
    """Seconds from start until auditd inserted `rows` rows and caught up, and the rounds run meanwhile."""
    serve = Serve(binary, port, *extra)
    serve.wait(lambda: serve.caught_up(rows), 900)
    seconds = time.time() - serve.started
    rounds = metric(serve.metrics(), "auditd_audit_rounds_total") or 0
    serve.stop()
    return seconds, rounds


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--auditd", default=".build/release/auditd")
    p.add_argument("--rows", type=int, default=1000000)
    p.add_argument("--name", default="bench_serve")
    p.add_argument("--keep", action="store_true", help="reuse the collection if it exists")
    p.add_argument("--serve-arg", action="append", default=[], help="an extra argument of `auditd serve` (repeatable)")
    p.add_argument("--memory-only", action="store_true", help="only part 1: memory, idle CPU, scrape")
    args = p.parse_args()
    connections.connect(uri="http://127.0.0.1:19530")
    if not (args.keep and utility.has_collection(args.name)):
        t = time.time()
        bench_audit.make(args.name, args.rows, 8, 10000).flush()
        print("collection %s: %d rows in %.1f s" % (args.name, args.rows, time.time() - t), flush=True)
    port = 9290
    results = {"rows": args.rows}

    # 1. a round's peak memory, the idle RSS after it, idle CPU, scrape time
    # The first round runs 5 s after start, on what is ingested by then; the second (after the interval) on
    # the whole collection: its peak is the one that counts.
    serve = Serve(args.auditd, port, "--audit-interval", "150", "--collection", args.name, *args.serve_arg)
    serve.wait(lambda: serve.caught_up(args.rows), 900)
    _, rss_ingested, hwm_ingest = proc(serve.process.pid)
    results["ingest_done_s"] = round(time.time() - serve.started, 1)
    results["rss_peak_ingest_mb"] = round(hwm_ingest, 1)
    results["rss_after_ingest_mb"] = round(rss_ingested, 1)
    # the RSS while the second round runs (VmHWM keeps the ingest's peak), sampled every 0.1 s
    sampled = []
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            sampled.append(proc(serve.process.pid)[1])
            time.sleep(0.1)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    serve.wait(lambda: (metric(serve.metrics(), "auditd_audit_rounds_total") or 0) >= 2, 900)
    sampling.set()
    sampler.join()
    results["rss_peak_round_mb"] = round(max(sampled), 1)
    cpu0, rss, hwm = proc(serve.process.pid)
    text = serve.metrics()
    results["rows_compared_last_round"] = metric(text, "auditd_audit_rows_compared")
    results["second_round_done_s"] = round(time.time() - serve.started, 1)
    results["round_seconds_both_rounds"] = round(metric(text, "auditd_audit_round_duration_seconds_sum"), 2)
    results["rss_peak_mb"] = round(hwm, 1)
    time.sleep(5)
    cpu0, rss, _ = proc(serve.process.pid)
    t0 = time.time()
    time.sleep(60)
    cpu1, rss_idle, _ = proc(serve.process.pid)
    results["idle_cpu_percent_of_a_core"] = round(100 * (cpu1 - cpu0) / (time.time() - t0), 2)
    results["rss_idle_mb"] = round(rss_idle, 1)
    samples = []
    for _ in range(300):
        t = time.perf_counter()
        get("http://127.0.0.1:%d/metrics" % port)
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    results["scrape_ms_p50"] = round(statistics.median(samples), 2)
    results["scrape_ms_p99"] = round(samples[int(len(samples) * 0.99) - 1], 2)
    results["scrape_bytes"] = len(get("http://127.0.0.1:%d/metrics" % port))
    print(json.dumps(results), flush=True)
    if args.memory_only:
        serve.stop()
        return

    # 2. restart detection: an independent etcd watch against auditd's record of the same session change
    watch = subprocess.Popen(["etcdctl", "--endpoints", "127.0.0.1:2379", "watch", "--prefix",
                              "by-dev/meta/session/querynode-"], stdout=subprocess.PIPE, text=True)
    seen = []

    def read():
        for line in watch.stdout:
            if line.strip() in ("PUT", "DELETE"):
                seen.append((line.strip(), time.time()))
    threading.Thread(target=read, daemon=True).start()
    time.sleep(1)
    subprocess.run([os.path.join(ROOT, "dev", "cluster"), "restart", "querynode2"], check=True,
                   capture_output=True)
    restarts = serve.wait(lambda: [r for r in json.loads(get("http://127.0.0.1:%d/v1/restarts" % port))["restarts"]
                                   if r["caught_up"]], 300)
    watch.terminate()
    first_event = min(t for kind, t in seen)
    record = min(restarts, key=lambda r: r["down_ms"])
    results["restart_detected_after_session_change_ms"] = round(record["down_ms"] - first_event * 1000, 1)
    results["restart_window"] = {k: record[k] for k in ("old_nodes", "new_nodes", "serving_behind_seconds",
                                                        "rows_short_max", "state")}
    serve.stop()
    print(json.dumps(results), flush=True)

    # 3. ingest throughput from scratch with rounds running all along, against rounds that audit nothing
    print(json.dumps(results), flush=True)
    rows = args.rows
    without, _ = ingest_time(args.auditd, port, rows, "--audit-interval", "1", "--collection", "none_such")
    with_rounds, rounds = ingest_time(args.auditd, port, rows, "--audit-interval", "1", "--collection", args.name)
    results["ingest_seconds_without_rounds"] = round(without, 1)
    results["ingest_seconds_with_rounds"] = round(with_rounds, 1)
    results["rounds_during_ingest"] = int(rounds)
    results["ingest_ratio_with_over_without"] = round(without / with_rounds, 3)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
