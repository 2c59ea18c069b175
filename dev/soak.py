"""The soak: no false alarms over time (run through dev/soak, inside the local cluster's namespace).

For --minutes N: a seed workload writes continuously (2048-d ReID rows in batches of 20, deletes, upserts, and a
collection of every scalar type with Array fields); a random QueryNode is restarted every --restart-min..max
seconds; the ReID collection is flushed now and then; `auditd serve` audits every --audit-interval seconds.
Every confirmed data finding is checked by a direct read of both replicas at the finding's T
(dev/replica_read.py, independent of auditd's code): a confirmed finding the direct read does not show is a
false positive. At the end the workload stops, auditd gets a quiet period (until every window is caught up, at
most --quiet s), and every QueryNode restart must be a restart window auditd recorded and saw caught up. auditd's RSS is sampled every 10 s: after the warm-up (the
first 10 minutes, or a third of a shorter run) it must grow less than 10 % (runs under 20 minutes only report it).

Writes soak.json and soak.md under --out; exit 0 when the soak passes.
"""
import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "dev"))
sys.path.insert(0, ROOT)
import workload  # noqa: E402
from suites.lib.auditor import DATA_KINDS, default_binary  # noqa: E402
from suites.lib.second_opinion import direct_check  # noqa: E402

QUERYNODES = ["querynode1", "querynode2"]


def log(message):
    print("%s soak: %s" % (time.strftime("%H:%M:%S"), message), flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def strong_read(load, finding, names):
    """The pks a Strong-consistency query through the proxy returns (any replica: the proxy picks)."""
    name, pks = names.get(finding.get("collection")), (finding.get("pks") or [])[:50]
    if not name or not pks:
        return None
    collection, field = (load.collection, "detection_id") if name == load.name else (load.scalars, "id")
    try:
        rows = collection.query("%s in %s" % (field, json.dumps(pks)), output_fields=[field],
                                consistency_level="Strong", limit=len(pks) * 4, timeout=30)
        return sorted(str(r[field]) for r in rows)
    except Exception as error:
        return "query failed: %s" % error


class Serve:
    def __init__(self, binary, state, interval, log_path):
        self.port = free_port()
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [binary, "serve", "--state", state, "--listen", "127.0.0.1:%d" % self.port, "--audit-interval",
             "%g" % interval, "--milvus", "127.0.0.1:19530"], stdout=self.log, stderr=self.log)

    def get(self, path, timeout=10):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=timeout) as answer:
            return answer.read().decode()

    def metric(self, name):
        total = 0.0
        for line in self.get("/metrics").splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def restart_windows(serve, ours):
    records = json.loads(serve.get("/v1/restarts"))
    records = records if isinstance(records, list) else records.get("restarts", [])
    return [r for r in records if r["collection"] in ours]


def uncovered(records, ours, restarts):
    """Collections with fewer restarted nodes in their windows than QueryNode restarts. Each restart takes one
    replica of every collection down (REPLICA=2 on 2 QueryNodes); a restart while that replica's window is still
    open joins the window (its old nodes grow) instead of opening another one."""
    old = {c: set() for c in ours}
    for r in records:
        old[r["collection"]].update(r["old_nodes"])
    return {c: len(nodes) for c, nodes in old.items() if len(nodes) < restarts}


def all_caught_up(serve, ours, restarts):
    try:
        records = restart_windows(serve, ours)
    except Exception:
        return False
    return not uncovered(records, ours, restarts) and all(r["caught_up"] for r in records)


def main():
    parser = argparse.ArgumentParser(prog="dev/soak")
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--restart-min", type=float, default=60)
    parser.add_argument("--restart-max", type=float, default=300)
    parser.add_argument("--flush-every", type=float, default=150, help="mean seconds between flushes")
    parser.add_argument("--audit-interval", type=float, default=30)
    parser.add_argument("--quiet", type=float, default=300,
                        help="at most this many seconds after the load for the last catch-ups to end (the quiet period "
                        "ends sooner once every restart window is caught up)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--drop", action="store_true", help="drop the collections even after confirmed findings")
    args = parser.parse_args()
    out = args.out or os.path.join(ROOT, "reports", "soak-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    os.makedirs(out, exist_ok=True)
    rng = random.Random(args.seed)
    binary = default_binary()
    log("seed %d, %.1f min, auditd %s, output %s" % (args.seed, args.minutes, binary, out))

    load = workload.SeedWorkload("soak_%d_reid" % args.seed, args.seed, scalars=True, pause=0.5)
    ours = {load.collection.describe()["collection_id"], load.scalars.describe()["collection_id"]}
    serve = Serve(binary, os.path.join(out, "state"), args.audit_interval, os.path.join(out, "serve.log"))
    started = time.time()
    end = started + args.minutes * 60
    next_restart = started + rng.uniform(args.restart_min, args.restart_max)
    next_flush = started + rng.expovariate(1 / args.flush_every)
    restarts, flushes, samples, checked, events = [], [], [], {}, []
    names = {}
    try:
        while time.time() < end + args.quiet:
            now = time.time()
            if serve.process.poll() is not None:
                raise RuntimeError("auditd serve ended by itself (exit %s)" % serve.process.returncode)
            if now < end and now >= next_restart:
                node = rng.choice(QUERYNODES)
                log("restart %s" % node)
                subprocess.run([os.path.join(ROOT, "dev", "cluster"), "restart", node], check=True,
                               capture_output=True, timeout=300)
                restarts.append({"node": node, "at": round(time.time() - started, 1)})
                next_restart = time.time() + rng.uniform(args.restart_min, args.restart_max)
            if now < end and now >= next_flush:
                try:
                    load.collection.flush(timeout=120)
                    flushes.append(round(time.time() - started, 1))
                except Exception as error:
                    events.append("flush failed: %s" % error)
                next_flush = time.time() + rng.expovariate(1 / args.flush_every)
            if now >= end and not load.stop.is_set():
                log("load stops; up to %d s quiet for the last catch-ups" % args.quiet)
                load.stop.set()
            if now >= end and all_caught_up(serve, ours, len(restarts)):
                log("every restart window caught up %.0f s after the load stopped" % (now - end))
                break
            try:
                samples.append((round(now - started, 1), rss_kib(serve.process.pid)))
                report = json.loads(serve.get("/v1/report"))
                names.update({c["id"]: c["name"] for c in report["collections"]})
                for finding in report["findings"]:
                    key = (finding["kind"], finding.get("collection"), finding.get("replica"),
                           (finding.get("evidence") or {}).get("ts"), finding.get("first_seen_ms"))
                    if finding["state"] == "confirmed" and finding["kind"] in DATA_KINDS and key not in checked:
                        checked[key] = dict(finding=finding, check=direct_check(finding, names),
                                            at=round(now - started, 1),
                                            client=load.history(finding.get("pks") or [], started),
                                            proxy_strong=strong_read(load, finding, names))
                        log("confirmed %s on replica %s (%s pks): direct read %s" % (
                            finding["kind"], finding.get("replica"), finding.get("pk_count"),
                            checked[key]["check"]["verdict"]))
            except Exception as error:
                events.append("%.0f s: monitor: %s" % (now - started, error))
            time.sleep(10)
        rounds = serve.metric("auditd_audit_rounds_total")
        final = json.loads(serve.get("/v1/report"))
        records = restart_windows(serve, ours)
    finally:
        serve.stop()
        kept = bool(checked) and not args.drop
        load.close(drop=not kept)
        if kept:
            log("kept %s and %s_scalars: confirmed findings to look at (--drop drops them anyway)" % (
                load.name, load.name))

    not_caught_up = [r for r in records if not r["caught_up"]]
    findings = [f for f in final["findings"] if f.get("collection") in ours or f.get("collection") is None]
    by_kind = {}
    for f in findings:
        by_kind.setdefault("%s/%s" % (f["kind"], f["state"]), 0)
        by_kind["%s/%s" % (f["kind"], f["state"])] += 1
    false_positives = [c for c in checked.values() if c["check"]["verdict"] == "FALSE POSITIVE"]
    # Growth is the trend of the working set, not its peaks (a full sweep lifts RSS for one round): the median of
    # the last 10 minutes under load (a third of a shorter run) against the median of the 5 minutes after the
    # warm-up (the first 10 minutes, or a third). Peaks and the RSS after the quiet period are reported beside it.
    warm = min(600.0, args.minutes * 60 / 3)
    span = min(600.0, args.minutes * 60 / 3)
    load_end = args.minutes * 60

    def median(values):
        values = sorted(values)
        return values[len(values) // 2] if values else None
    early = median([r for t, r in samples if warm <= t < warm + span / 2])
    late = median([r for t, r in samples if load_end - span <= t < load_end])
    growth = (late / early - 1) * 100 if early and late else None
    peak = max([r for t, r in samples if t >= warm], default=None)
    after_quiet = samples[-1][1] if samples else None
    problems = []
    if false_positives:
        problems.append("%d confirmed findings a direct replica read does not show" % len(false_positives))
    short = uncovered(records, ours, len(restarts))
    if short:
        problems.append("restart windows cover %s restarted nodes of %d QueryNode restarts (by collection)" % (
            ", ".join("%s: %d" % (names.get(c, c), n) for c, n in sorted(short.items())), len(restarts)))
    if not_caught_up:
        problems.append("%d restart windows never caught up" % len(not_caught_up))
    if growth is not None and growth >= 10 and args.minutes >= 20:  # a shorter run only reports it
        problems.append("auditd RSS grew %.1f %% after the warm-up" % growth)
    if final.get("quarantined"):
        problems.append("%d records quarantined" % final["quarantined"])
    result = {
        "seed": args.seed, "minutes": args.minutes, "auditd": binary, "audit_interval_s": args.audit_interval,
        "workload": load.counts, "restarts": restarts, "flushes": flushes, "rounds": rounds,
        "restart_windows": records, "findings_by_kind_state": by_kind,
        "confirmed_data_findings_checked": list(checked.values()), "false_positives": len(false_positives),
        "rss_kib": samples, "rss_warmup_s": warm, "rss_growth_after_warmup_pct": growth,
        "rss_median_after_warmup_kib": early, "rss_median_last_kib": late, "rss_peak_kib": peak,
        "rss_after_quiet_kib": after_quiet,
        "quarantined": final.get("quarantined"), "monitor_events": events[-50:], "problems": problems,
        "passed": not problems,
    }
    with open(os.path.join(out, "soak.json"), "w") as f:
        json.dump(result, f, indent=1)
    minute_rss = {}
    for t, r in samples:
        minute_rss.setdefault(int(t // 60), r)
    lines = [
        "# Soak: %.0f min, seed %d — %s" % (args.minutes, args.seed, "PASSED" if not problems else "FAILED"),
        "",
        "| figure | value |", "|---|---|",
        "| workload | %(inserted)d ReID rows, %(deleted)d deletes, %(upserted)d upserts, %(scalars)d Array-field rows,"
        " %(errors)d client errors |" % load.counts,
        "| QueryNode restarts | %d (%s) |" % (len(restarts), ", ".join("%s@%ss" % (r["node"], r["at"]) for r in restarts)),
        "| flushes | %d |" % len(flushes),
        "| audit rounds (every %g s) | %d |" % (args.audit_interval, rounds),
        "| restart windows recorded / caught up | %d / %d |" % (len(records), len(records) - len(not_caught_up)),
        "| findings (kind/state) | %s |" % (", ".join("%s %d" % kv for kv in sorted(by_kind.items())) or "none"),
        "| confirmed data findings / checked by a direct read / false positives | %d / %d / %d |" % (
            len(checked), sum(1 for c in checked.values() if c["check"]["verdict"] != "unverifiable"),
            len(false_positives)),
        "| auditd RSS: median after the warm-up (%.0f s) → median of the last %.0f s under load | %s |" % (
            warm, span, "n/a" if growth is None else "%d → %d KiB (%+.1f %%); peak %d KiB; %d KiB after the quiet "
            "period" % (early, late, growth, peak, after_quiet)),
        "| RSS by minute (KiB) | %s |" % " ".join("%d:%d" % kv for kv in sorted(minute_rss.items())),
        "",
    ] + ["- problem: " + p for p in problems]
    with open(os.path.join(out, "soak.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
