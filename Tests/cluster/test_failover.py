"""The seed's bidirectional failover sequence, with auditd as the oracle.

10 rows → querynode1 down (search still works; auditd: the replica on querynode1 unavailable, no data
finding, exit 2) → querynode1 back, querynode2 down (the same for querynode2; the replica on the restarted
querynode1 audits clean) → both down (search fails; auditd exit 2) → all back (auditd follows the recovery,
measures the catch-up, then audits clean: exit 0). Rows are written while nodes are down so catch-up has
work to do.
"""
import json
import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUDITD = os.environ.get("AUDITD_BIN", os.path.join(ROOT, ".build", "debug", "auditd"))
CLUSTER = os.path.join(ROOT, "dev", "cluster")
sys.path.insert(0, os.path.join(ROOT, "dev"))

pytestmark = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")

DATA_KINDS = {"missing", "extra", "resurrected", "stale", "duplicate_pk", "replica_divergence"}


def cluster(*args):
    subprocess.run([CLUSTER, *args], check=True, capture_output=True)


class Workload:
    def __init__(self, prefix, tmp_path):
        out = tmp_path / "expected.json"
        subprocess.run([sys.executable, os.path.join(ROOT, "dev", "workload.py"), "--prefix", prefix, "--only",
                        "reid", "--rows", "10", "--batch", "10", "--deletes", "0", "--out", str(out)], check=True)
        from pymilvus import Collection, connections
        import workload
        connections.connect(uri="http://127.0.0.1:19530")
        self.name = prefix + "_reid"
        self.collection = Collection(self.name)
        self.workload = workload
        self.rng = random.Random(5)
        self.nprng = np.random.default_rng(5)
        self.written = 10

    def insert(self, n):
        rows = [self.workload.reid_row(self.rng, self.nprng, self.written + i, 2048) for i in range(n)]
        self.collection.insert(rows)
        self.written += n
        time.sleep(1.5)  # let time ticks past the insert reach the log, so the audit's T includes it

    def search_works(self):
        try:
            vec = self.workload.rng_vector(self.nprng, 2048)
            hits = self.collection.search([vec], "embedding", {"metric_type": "IP", "params": {}}, limit=3,
                                          timeout=10)
            return len(hits[0]) > 0
        except Exception:
            return False

    def both_replicas_serving(self):
        try:
            groups = self.collection.get_replicas().groups
            return len(groups) == 2 and all(g.shards and all(s.shard_leader > 0 for s in g.shards) for g in groups)
        except Exception:
            return False


def wait_for(predicate, seconds, what):
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, "timed out waiting for " + what
        time.sleep(0.5)


def audit(state, name, *extra):
    done = subprocess.run([AUDITD, "audit", "--once", "--json", "--settle", "2", "--collection", name, "--state",
                           str(state), *extra], capture_output=True, text=True, timeout=900)
    report = json.loads(done.stdout) if done.stdout.startswith("{") else {}
    return done.returncode, report, done.stderr


def open_findings(report):
    return [f for f in report.get("findings", []) if f["state"] != "resolved" and f["replica"] is not None]


def served_by(finding, port):
    return any(v.endswith(":%d" % port) for v in (finding.get("leaders") or {}).values())


def test_bidirectional_failover_with_auditd_as_oracle(tmp_path):
    for node in ("querynode1", "querynode2"):
        cluster("start", node)  # idempotent: already running is fine
    w = Workload("it_failover_%08x" % random.getrandbits(32), tmp_path)
    state = tmp_path / "state"
    wait_for(w.both_replicas_serving, 120, "both replicas serving")
    code, report, err = audit(state, w.name)
    assert code == 0 and open_findings(report) == [], err[-2000:]
    coverage = report["coverage"][0]
    assert coverage["replicas"] == 2 and coverage["rows"] == 20

    try:
        # 1. querynode1 down: search still works; the replica it served is unavailable; no data finding
        cluster("kill", "querynode1")
        wait_for(w.search_works, 90, "search with querynode1 down")
        w.insert(10)
        code, report, err = audit(state, w.name)
        assert code == 2, err[-2000:]
        found = open_findings(report)
        assert [f["kind"] for f in found] == ["replica_unavailable"], found
        assert served_by(found[0], 21123), found  # names the node that served it: querynode1
        assert report["coverage"][0]["replicas"] == 1 and report["coverage"][0]["rows"] == 20

        # 2. querynode1 back, querynode2 down
        cluster("start", "querynode1")
        wait_for(w.both_replicas_serving, 120, "querynode1's replica serving again")
        cluster("kill", "querynode2")
        wait_for(w.search_works, 90, "search with querynode2 down")
        w.insert(10)
        code, report, err = audit(state, w.name)
        assert code == 2, err[-2000:]
        found = open_findings(report)
        assert [f["kind"] for f in found] == ["replica_unavailable"], found
        assert served_by(found[0], 21133), found
        assert report["coverage"][0]["replicas"] == 1 and report["coverage"][0]["rows"] == 30
        assert not [f for f in report["findings"] if f["kind"] in DATA_KINDS]

        # 3. both down: search fails, auditd cannot audit
        cluster("kill", "querynode1")
        wait_for(lambda: not w.search_works(), 90, "search to fail with both QueryNodes down")
        w.insert(10)  # the log (and the DataNode) still take writes
        code, report, err = audit(state, w.name, "--unreachable-grace", "3")
        assert code == 2, err[-2000:]
        assert {f["kind"] for f in open_findings(report)} == {"replica_unavailable"}

        # 4. all back: auditd follows the recovery, measures the catch-up, then audits clean
        cluster("start", "querynode1")
        cluster("start", "querynode2")
        code, report, err = audit(state, w.name, "--unreachable-grace", "120", "--watch-limit", "300")
        assert code == 0, err[-3000:]
        assert open_findings(report) == [], report["findings"]
        catchups = [f for f in report["findings"] if f["kind"] == "catchup_unfinished" and f["state"] == "resolved"]
        assert catchups, report["findings"]
        for f in catchups:
            window = f["evidence"]
            assert window["window_end_ms"] >= window["window_start_ms"], f
        assert report["coverage"][0]["replicas"] == 2 and report["coverage"][0]["rows"] == 2 * w.written
        assert not [f for f in report["findings"] if f["kind"] in DATA_KINDS]
        code, report, err = audit(state, w.name)
        assert code == 0 and open_findings(report) == [], err[-2000:]
    finally:
        for node in ("querynode1", "querynode2"):
            subprocess.run([CLUSTER, "start", node], capture_output=True)  # leave the cluster whole
