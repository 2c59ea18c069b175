"""`auditd audit --once` on the real cluster: a healthy cluster audits clean (exit 0); a shadow that
disagrees with both replicas yields a confirmed finding naming the replicas, nodes and pk (exit 1)."""
import json
import os
import random
import sqlite3
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUDITD = os.environ.get("AUDITD_BIN", os.path.join(ROOT, ".build", "debug", "auditd"))

pytestmark = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")


def test_healthy_cluster_audits_clean_and_a_wrong_shadow_is_confirmed(tmp_path):
    prefix = "it_audit_%08x" % random.getrandbits(32)
    out = tmp_path / "expected.json"
    subprocess.run([sys.executable, os.path.join(ROOT, "dev", "workload.py"), "--prefix", prefix, "--rows", "400",
                    "--batch", "20", "--deletes", "40", "--out", str(out)], check=True)
    expected = json.load(open(out))
    time.sleep(1)
    state = tmp_path / "state"
    # This test's own collections: others on the shared cluster may be reloading on a QueryNode an earlier test
    # restarted, which auditd rightly reports as a catch-up (seen in CI: 11 resolved catchup_unfinished findings).
    ours = [a for c in expected["collections"] for a in ("--collection", c["name"])]
    clean = subprocess.run([AUDITD, "audit", "--once", "--settle", "1", "--json", "--state", str(state), *ours],
                           capture_output=True, text=True, timeout=600)
    assert clean.returncode == 0, clean.stdout[-2000:] + clean.stderr[-2000:]
    report = json.loads(clean.stdout)
    assert report["findings"] == []
    assert "0 confirmed" in clean.stderr and "rows checked" in clean.stderr

    # Make the shadow forget one live row of the varchar collection: both replicas now serve an "extra" pk.
    reid = next(c for c in expected["collections"] if c["name"].endswith("_reid"))
    victim = next(r["pk"] for r in reid["rows"] if r["pk"] not in set(reid["deleted"]))
    db = sqlite3.connect(str(state / "shadow.sqlite"))
    coll = db.execute("SELECT id FROM collections WHERE collection_id = ?", (reid["id"],)).fetchone()[0]
    assert db.execute("DELETE FROM rows WHERE coll = ? AND pk = ?", (coll, victim.encode())).rowcount == 1
    db.commit()
    db.close()
    # Compared in pk ranges of 37 row versions (about a dozen per collection): the same finding, confirmed by
    # re-reading only the range that differed.
    wrong = subprocess.run([AUDITD, "audit", "--once", "--settle", "1", "--json", "--window-rows", "37",
                            "--state", str(state), *ours], capture_output=True, text=True, timeout=600)
    assert wrong.returncode == 1, wrong.stderr[-2000:]
    findings = json.loads(wrong.stdout)["findings"]
    extra = [f for f in findings if f["kind"] == "extra" and f["collection"] == reid["id"]]
    assert len(extra) == 2 and all(f["state"] == "confirmed" and f["pks"] == [victim] for f in extra)
    assert len({f["replica"] for f in extra}) == 2 and all(f["node"] for f in extra)


def test_full_mode_compares_every_rows_content_with_the_log(tmp_path):
    """Full mode reads every user field (2048-d vectors, dynamic fields, every scalar type) from each replica
    and hashes it like the log's inserts: a healthy cluster matches row for row; a shadow whose record of one
    row's content differs is caught in full mode on both replicas, and (rightly) not in pk mode."""
    prefix = "it_full_%08x" % random.getrandbits(32)
    out = tmp_path / "expected.json"
    subprocess.run([sys.executable, os.path.join(ROOT, "dev", "workload.py"), "--prefix", prefix, "--rows", "300",
                    "--batch", "20", "--deletes", "30", "--out", str(out)], check=True)
    expected = json.load(open(out))
    time.sleep(1.5)
    state = tmp_path / "state"
    names = []
    for c in expected["collections"]:
        names += ["--collection", c["name"]]
    full = subprocess.run([AUDITD, "audit", "--once", "--mode", "full", "--settle", "1", "--json", "--state",
                           str(state), *names], capture_output=True, text=True, timeout=600)
    assert full.returncode == 0, full.stderr[-2000:]
    report = json.loads(full.stdout)
    assert {c["mode"] for c in report["coverage"]} == {"full"}
    assert sum(c["rows"] for c in report["coverage"]) == 2 * 2 * 270  # 2 collections × 2 replicas × live rows

    reid = next(c for c in expected["collections"] if c["name"].endswith("_reid"))
    victim = next(r["pk"] for r in reid["rows"] if r["pk"] not in set(reid["deleted"]))
    db = sqlite3.connect(str(state / "shadow.sqlite"))
    coll = db.execute("SELECT id FROM collections WHERE collection_id = ?", (reid["id"],)).fetchone()[0]
    assert db.execute("UPDATE rows SET hash = hash + 1 WHERE coll = ? AND pk = ?", (coll, victim.encode())).rowcount == 1
    db.commit()
    db.close()
    pk = subprocess.run([AUDITD, "audit", "--once", "--settle", "1", "--json", "--state", str(state),
                         "--collection", reid["name"]], capture_output=True, text=True, timeout=600)
    assert pk.returncode == 0, pk.stderr[-2000:]  # pk mode does not read content
    full = subprocess.run([AUDITD, "audit", "--once", "--mode", "full", "--settle", "1", "--json", "--state",
                           str(state), "--collection", reid["name"]], capture_output=True, text=True, timeout=600)
    assert full.returncode == 1, full.stderr[-2000:]
    findings = [f for f in json.loads(full.stdout)["findings"] if f["state"] == "confirmed"]
    assert len(findings) == 2 and all(f["kind"] == "extra" and f["pks"] == [victim] for f in findings), findings
    assert all("row hash" in f["evidence"]["detail"] for f in findings)


def test_continuous_audit_runs_rounds_until_sigterm(tmp_path):
    """`auditd audit` without --once: a round every --interval seconds, each refreshing the coverage; SIGTERM
    ends it cleanly (exit 0)."""
    import signal
    prefix = "it_loop_%08x" % random.getrandbits(32)
    out = tmp_path / "expected.json"
    subprocess.run([sys.executable, os.path.join(ROOT, "dev", "workload.py"), "--prefix", prefix, "--only", "reid",
                    "--rows", "40", "--batch", "20", "--deletes", "0", "--out", str(out)], check=True)
    name = prefix + "_reid"
    state = tmp_path / "state"
    log = open(tmp_path / "audit.log", "w")
    loop = subprocess.Popen([AUDITD, "audit", "--interval", "1", "--settle", "1", "--collection", name, "--state",
                             str(state)], stdout=subprocess.DEVNULL, stderr=log)
    sweeps = set()
    deadline = time.time() + 120
    while len(sweeps) < 3 and time.time() < deadline and loop.poll() is None:
        time.sleep(0.5)
        report = subprocess.run([AUDITD, "report", "--json", "--state", str(state)], capture_output=True, text=True)
        if report.stdout.startswith("{"):
            sweeps |= {c["last_sweep_ms"] for c in json.loads(report.stdout)["coverage"]}
    loop.send_signal(signal.SIGTERM)
    assert loop.wait(timeout=120) == 0
    log.close()
    assert len(sweeps) >= 3, open(tmp_path / "audit.log").read()[-2000:]
    assert open(tmp_path / "audit.log").read().count("0 confirmed") >= 3


def test_a_shard_larger_than_any_page_is_read_whole_in_pk_and_full_mode(tmp_path):
    """60,000 rows in one shard: reads take many pages, whose size the pacer adapts to Milvus's latency. Every
    row is compared in pk mode and in full mode (a page the request builder refused — 20,000 pks once Milvus
    answered fast — made every audit of such a shard exit 2)."""
    import numpy as np
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, connections, utility
    connections.connect(uri="http://127.0.0.1:19530")
    name = "it_big_%08x" % random.getrandbits(32)
    schema = CollectionSchema([FieldSchema("detection_id", DataType.VARCHAR, is_primary=True, max_length=64),
                               FieldSchema("embedding", DataType.FLOAT_VECTOR, dim=8)])
    c = Collection(name, schema, shards_num=1)
    try:
        c.create_index("embedding", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
        c.load(replica_number=2)
        rng = np.random.default_rng(3)
        rows = 60000
        for start in range(0, rows, 10000):
            c.insert([["cam%02d-f%08d" % (i % 16, i) for i in range(start, start + 10000)],
                      rng.standard_normal((10000, 8), dtype=np.float32)])
        time.sleep(1)
        state = tmp_path / "state"
        # pk and full mode in ranges of 20,000 (the default: 3 ranges), pk mode in ranges of 7,000 (9 ranges),
        # each read in pages bounded by the range's ends
        for mode, window in (("pk", "20000"), ("full", "20000"), ("pk", "7000")):
            done = subprocess.run([AUDITD, "audit", "--once", "--mode", mode, "--settle", "1", "--json",
                                   "--window-rows", window, "--collection", name, "--state", str(state)],
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-2000:]
            report = json.loads(done.stdout)
            assert report["findings"] == [], report["findings"]
            coverage = [x for x in report["coverage"] if x["collection"] == c.describe()["collection_id"]]
            assert coverage and coverage[0]["mode"] == mode and coverage[0]["rows"] == 2 * rows, coverage
    finally:
        utility.drop_collection(name)
