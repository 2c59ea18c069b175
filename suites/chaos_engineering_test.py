"""chaos_engineering_test (first part): under a steady write load, seeded random restarts of Milvus roles and a
cascading failure (a QueryNode, then the DataNode, then the proxy); after each, auditd's verdict (a finding naming
the replica and what was lost, or a clean audit with the catch-up window) and whether the cluster recovered.
Resource exhaustion, the network partition and clock skew are still to come."""
import random
import threading
import time

import numpy as np

import workload
from bidirectional_test import QUERYNODES, Records, skipped_without_control, wait_for

ROLES = ["querynode1", "querynode2", "datanode", "proxy", "rootcoord", "datacoord", "querycoord", "indexnode"]


class SteadyWrites:
    """One writer inserting a batch of 20 every 0.5 s; failures while a role is down are counted, not fatal."""

    def __init__(self, records, seed):
        self.records = records
        self.stop = threading.Event()
        self.ok = self.failed = 0
        self.rng, self.nprng = random.Random(seed), np.random.default_rng(seed)
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        i = 0
        while not self.stop.is_set():
            rows = [workload.reid_row(self.rng, self.nprng, 1_000_000 + i + j, 2048) for j in range(20)]
            try:
                self.records.collection.insert(rows, timeout=20)
                self.ok += 20
                self.records.written += 20
            except Exception:
                self.failed += 1
            i += 20
            self.stop.wait(0.5)

    def close(self):
        self.stop.set()
        self.thread.join()


def recovered(ctx, records):
    return records.both_replicas_serving() and records.search_works()


def judge(ctx, t, records, auditor, what):
    """After a fault: the cluster recovers, then auditd audits both replicas clean (no data lost)."""
    with t.step("%s: cluster recovered (both replicas serving, search answers)" % what) as s:
        s.measured["recovered_after_s"] = wait_for(lambda: recovered(ctx, records), 180, "recovery after " + what)
    with t.step("%s: auditd — both replicas equal the log, no data finding" % what) as s:
        verdict = auditor.audit(records.name, "--unreachable-grace", "60", "--watch-limit", "180",
                                collection_id=records.id)
        s.verdict = verdict.as_dict()
        assert not verdict.data, verdict
        assert verdict.clean and verdict.coverage.get("replicas") == 2, verdict


def chaos(ctx, t):
    if skipped_without_control(ctx, t):
        return
    for node in QUERYNODES:
        ctx.cluster.start(node)
    records = Records(ctx, ctx.prefix + "chaos", 100)
    auditor = ctx.auditor("chaos")
    writes = None
    rng = random.Random(ctx.seed)
    t.measured["seed"] = ctx.seed
    try:
        wait_for(records.both_replicas_serving, 120, "both replicas serving")
        writes = SteadyWrites(records, ctx.seed)
        restarts = 2 if ctx.quick else 6
        for n in range(restarts):
            role = rng.choice(ROLES)
            with t.step("random restart %d of %d (seed %d): %s" % (n + 1, restarts, ctx.seed, role)) as s:
                ctx.cluster.restart(role)
                s.measured["role"] = role
            judge(ctx, t, records, auditor, "after restarting %s" % role)
        with t.step("cascading failure: querynode2, then datanode, then proxy killed 5 s apart") as s:
            for role in ("querynode2", "datanode", "proxy"):
                ctx.cluster.kill(role)
                time.sleep(5)
            s.measured.update(writes_ok=writes.ok, writes_failed=writes.failed)
        with t.step("cascading failure: roles back in reverse order") as s:
            for role in ("proxy", "datanode", "querynode2"):
                ctx.cluster.start(role)
        judge(ctx, t, records, auditor, "the cascading failure")
        with t.step("steady writes went on (failures only while roles were down)") as s:
            writes.close()
            s.measured.update(rows_written=writes.ok, batches_failed=writes.failed)
            assert writes.ok > 0
            time.sleep(1.5)
            verdict = auditor.audit(records.name, collection_id=records.id)
            s.verdict = verdict.as_dict()
            assert verdict.clean, verdict
    finally:
        if writes:
            writes.close()
        ctx.cluster.restore(ROLES)  # leave the cluster whole
        records.drop()


def run(ctx):
    ctx.test("chaos_engineering_test", "restarts_and_cascading_failures_under_writes", lambda t: chaos(ctx, t))
