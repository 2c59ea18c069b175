"""The fault matrix beyond the storage recipes (those are suites/lib/faults.py, run by consistency_test and
test_faults.py): each fault made real on the live cluster while `auditd serve` audits every 5 s; the finding's
kind, the replica (node) it names, the time from the fault to the finding, and that the healthy replica gets
none. The times are printed (`pytest -s`) for docs/reliability.md.

- a dead replica: querynode2 killed → `replica_unavailable` naming querynode2, the other replica clean.
- a lagging replica: querynode2 in a network namespace of its own (dev/cluster isolate), its broker traffic
  black-holed while its gRPC still answers → its consumption stops, reads at T time out → `replica_unavailable`
  ("lagging") naming querynode2, never a data finding; resolved once the broker is back.
- a duplicate pk: the same pk inserted twice while live (Milvus 2.3 keeps and counts both versions) → no finding
  (the shadow counts the duplicate); the replicas serve it once.
"""
import json
import os
import random
import subprocess
import sys
import time

import numpy as np
import pytest

from sidecar import DATA_KINDS, Sidecar, clear, names_port, shape
from test_outage import CLUSTER

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "dev"))
import workload  # noqa: E402

QUERYNODE1, QUERYNODE2, BROKER = 21123, 21133, 9092

pytestmark = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")


def cluster(*args):
    subprocess.run([CLUSTER, *args], check=True, capture_output=True, timeout=300)


class Watched:
    """A ReID collection (2 shards, REPLICA=2) with rows, and a sidecar auditing it every 5 s."""

    def __init__(self, tmp_path, prefix, rows=200):
        from pymilvus import connections
        connections.connect(host="127.0.0.1", port="19530")
        self.name = "%s_%d" % (prefix, random.randrange(10**6))
        self.collection = workload.create_reid(self.name)
        self.rng, self.nprng = random.Random(5), np.random.default_rng(5)
        self.written = 0
        self.sidecar = None
        try:
            self.insert(rows)
            self.sidecar = Sidecar(tmp_path, "--unreachable-grace", "5", "--collection", self.name)
            self.sidecar.wait_whole(self.name, 300)
        except BaseException:
            self.close()  # later tests' sidecars audit every collection: leave none behind
            raise

    def insert(self, n, pks=None):
        rows = [workload.reid_row(self.rng, self.nprng, self.written + i, 2048) for i in range(n)]
        if pks:
            rows = [dict(r, detection_id=pk) for r, pk in zip(rows, pks)]
        self.collection.insert(rows)
        self.written += n
        return [r["detection_id"] for r in rows]

    def open_on(self, port):
        return [f for f in self.sidecar.findings("open") if f.get("replica") is not None and names_port(f, port)]

    def close(self):
        from pymilvus import utility
        if self.sidecar:
            self.sidecar.stop()
        utility.drop_collection(self.name)


def open_on(kind, port):
    """A finding of `kind` naming the node on `port`, open. `replica_unavailable` is a state, never "confirmed":
    it is open while the replica cannot be read, and the AuditdReplicaUnavailable rule pages after 5 minutes of
    it (docs/alerts.md)."""
    return lambda f: f["kind"] == kind and f["state"] != "resolved" and names_port(f, port)


def test_a_dead_replica_is_unavailable_on_its_node_only(tmp_path):
    w = Watched(tmp_path, "fm_dead")
    try:
        cluster("kill", "querynode2")
        finding, seconds = w.sidecar.wait_finding(open_on("replica_unavailable", QUERYNODE2), 180)
        assert not w.open_on(QUERYNODE1), w.open_on(QUERYNODE1)
        assert not [f for f in w.sidecar.findings() if f["kind"] in DATA_KINDS]
        cluster("start", "querynode2")
        healed = w.sidecar.wait_whole(w.name, 300)
        assert finding["kind"] == "replica_unavailable"
        print("\ndead replica: replica_unavailable on %s open %.1f s after the kill; whole %.1f s after the "
              "restart" % (finding.get("leaders"), seconds, healed))
    finally:
        cluster("start", "querynode2")
        w.close()


def test_a_lagging_replica_is_unavailable_never_a_data_finding_and_resolves(tmp_path):
    cluster("isolate", "querynode2")
    w = None
    try:
        w = Watched(tmp_path, "fm_lag")
        link = "vq12a"  # dev/cluster's veth for querynode2 (10.77.12.0/24), in the cluster's namespace
        shape(link, BROKER, "sport", "8bit")  # the node hears nothing from the broker; gRPC still answers
        w.insert(20)
        finding, seconds = w.sidecar.wait_finding(open_on("replica_unavailable", QUERYNODE2), 240)
        assert "lagging" in finding["evidence"]["detail"], finding
        assert not w.open_on(QUERYNODE1), w.open_on(QUERYNODE1)
        clear(link)
        healed = w.sidecar.wait_whole(w.name, 300)
        assert not [f for f in w.sidecar.findings() if f["kind"] in DATA_KINDS]
        print("\nlagging replica: %s open %.1f s after the broker went silent for it (%s); whole %.1f s after "
              "the broker came back" % (finding["kind"], seconds, finding["evidence"]["detail"], healed))
    finally:
        clear("vq12a")
        if w:
            w.close()
        cluster("rejoin", "querynode2")


def test_a_pk_written_twice_is_counted_not_alarmed(tmp_path):
    w = Watched(tmp_path, "fm_dup", rows=50)
    try:
        pk = w.insert(1)[0]
        w.insert(1, pks=[pk])  # the same pk again, while live: Milvus 2.3 keeps both versions
        rounds = lambda: sum(v for k, v in w.sidecar.metrics().items() if k[0] == "auditd_audit_rounds_total")
        before = rounds()
        deadline = time.time() + 120
        while rounds() < before + 3:
            assert time.time() < deadline, "no audit rounds"
            time.sleep(1)
        report = json.loads(w.sidecar.get("/v1/report")[1])
        mine = [c for c in report["collections"] if c["name"] == w.name][0]
        assert mine["duplicate_pks"] == 1 and mine["live_rows"] == w.written, mine
        assert not [f for f in w.sidecar.findings() if f.get("collection") == mine["id"]], w.sidecar.findings()
        w.sidecar.wait_whole(w.name, 60)
        print("\nduplicate pk: no finding; the shadow counts %d duplicate pk, %d live versions" % (
            mine["duplicate_pks"], mine["live_rows"]))
    finally:
        w.close()
