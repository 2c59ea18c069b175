"""bidirectional_test: the seed's failover sequence with auditd as the oracle. 10 ReID records; querynode1 down
→ search answers within 60 s, auditd: the replica it served unavailable, no data finding; querynode1 back and
querynode2 down → the same for querynode2; both down → search fails as expected, auditd cannot audit; all back →
auditd follows the recovery, measures each restarted replica's catch-up window, then audits clean. Rows are
written while nodes are down so catch-up has work to do."""
import random
import time

import numpy as np

import workload
from lib.report import Skip

QUERYNODES = ("querynode1", "querynode2")


class Records:
    """A ReID collection (2 shards, REPLICA=2) written in small batches."""

    def __init__(self, ctx, name, rows):
        ctx.connect()
        self.name = name
        self.collection = workload.create_reid(name)
        self.rng = random.Random(ctx.seed)
        self.nprng = np.random.default_rng(ctx.seed)
        self.written = 0
        self.kept = False  # set by a step whose verdict confirmed a data finding: drop() leaves it
        if rows:
            self.insert(rows)
        self.id = self.collection.describe()["collection_id"]

    def rows(self, n, prefix=None):
        rows = [workload.reid_row(self.rng, self.nprng, self.written + i, 2048) for i in range(n)]
        for row in rows if prefix else []:
            row["detection_id"] = prefix + row["detection_id"]
        return rows

    def insert(self, n, prefix=None):
        rows = self.rows(n, prefix)
        self.collection.insert(rows)
        self.written += n
        time.sleep(1.5)  # time ticks past the insert reach the log, so the audit's T includes it
        return rows

    def insert_quiet(self, n):
        """Inserts n rows without waiting for the time tick (bulk loads; `insert` waits)."""
        self.collection.insert(self.rows(n), timeout=120)
        self.written += n

    def search(self, timeout=60):
        vec = workload.rng_vector(self.nprng, 2048)
        hits = self.collection.search([vec], "embedding", {"metric_type": "IP", "params": {"nprobe": 16}},
                                      limit=3, timeout=timeout)
        return len(hits[0]) > 0

    def search_works(self):
        try:
            return self.search(timeout=10)
        except Exception:
            return False

    def both_replicas_serving(self):
        try:
            groups = self.collection.get_replicas().groups
            return len(groups) == 2 and all(g.shards and all(s.shard_leader > 0 for s in g.shards) for g in groups)
        except Exception:
            return False

    def drop(self):
        """Drops the collection — unless a step kept it as evidence of a confirmed data finding."""
        from pymilvus import utility
        if self.kept:
            print("   kept collection %s: evidence of a confirmed data finding" % self.name, flush=True)
            return
        try:
            utility.drop_collection(self.name)
        except Exception:
            pass


def wait_for(predicate, seconds, what):
    started = time.time()
    while not predicate():
        assert time.time() - started < seconds, "timed out after %d s waiting for %s" % (seconds, what)
        time.sleep(0.5)
    return round(time.time() - started, 1)


def skipped_without_control(ctx, t):
    """On a cluster auditd's runner may not restart (external without a control command): one SKIP step."""
    if ctx.cluster.destructive:
        return False
    with t.step("cluster control"):
        raise Skip("%s cluster without control: QueryNode failover needs --allow-destructive and "
                   "--control-command" % ctx.cluster.kind)
    return True


def one_down(ctx, t, records, auditor, down, up):
    """`down` killed (and `up` serving): search works, auditd names `down`'s replica unavailable, no data finding."""
    with t.step("%s down: search answers within 60 s" % down) as s:
        ctx.cluster.kill(down)
        s.measured["search_after_s"] = wait_for(records.search_works, 60, "a search answer with %s down" % down)
        records.insert(10)
    with t.step("%s down: auditd names its replica unavailable, no data finding" % down) as s:
        return unavailable_verdict(ctx, s, records, auditor, down)


def unavailable_verdict(ctx, s, records, auditor, down, *extra):
    """auditd's verdict with `down`'s QueryNode gone: exit 2, one `replica_unavailable` naming that node, the
    other replica read whole (every row written so far, once), no data finding."""
    port = ctx.cluster.querynode_port(down)
    verdict = auditor.audit(records.name, *extra, collection_id=records.id)
    s.verdict = verdict.as_dict()
    assert verdict.exit == 2, verdict
    assert verdict.kinds() == ["replica_unavailable"], verdict
    assert verdict.names_node_port(verdict.open[0], port), "the finding names another node: %s" % (
        verdict.open[0].get("leaders"))
    assert verdict.coverage.get("replicas") == 1 and verdict.coverage.get("rows") == records.written, (
        verdict.coverage)
    assert not verdict.data, verdict
    return verdict


def bidirectional(ctx, t):
    if skipped_without_control(ctx, t):
        return
    for node in QUERYNODES:
        ctx.cluster.start(node)  # already running is fine
    records = Records(ctx, ctx.prefix + "bidir", 10)
    auditor = ctx.auditor("bidirectional")
    try:
        with t.step("10 records, both replicas serving, auditd clean") as s:
            wait_for(records.both_replicas_serving, 120, "both replicas serving")
            verdict = auditor.audit(records.name, collection_id=records.id)
            s.verdict = verdict.as_dict()
            assert verdict.clean and verdict.coverage.get("replicas") == 2, verdict

        one_down(ctx, t, records, auditor, "querynode1", "querynode2")
        with t.step("querynode1 back: both replicas serving") as s:
            ctx.cluster.start("querynode1")
            s.measured["serving_after_s"] = wait_for(records.both_replicas_serving, 120, "querynode1 serving")
        one_down(ctx, t, records, auditor, "querynode2", "querynode1")

        with t.step("both QueryNodes down: search fails as expected") as s:
            ctx.cluster.kill("querynode1")
            s.measured["failed_after_s"] = wait_for(lambda: not records.search_works(), 90,
                                                    "search to fail with both QueryNodes down")
            records.insert(10)  # the log (and the DataNode) still take writes
        with t.step("both QueryNodes down: auditd cannot audit (exit 2), no data finding") as s:
            verdict = auditor.audit(records.name, "--unreachable-grace", "3", collection_id=records.id)
            s.verdict = verdict.as_dict()
            assert verdict.exit == 2, verdict
            assert set(verdict.kinds()) == {"replica_unavailable"}, verdict

        with t.step("full recovery: auditd follows the catch-up and audits clean") as s:
            for node in QUERYNODES:
                ctx.cluster.start(node)
            verdict = auditor.audit(records.name, "--unreachable-grace", "120", "--watch-limit", "300",
                                    collection_id=records.id)
            s.verdict = verdict.as_dict()
            assert verdict.clean, verdict
            assert not verdict.data, verdict
            windows = [f["evidence"] for f in verdict.catchups() if f["state"] == "resolved"]
            assert windows, "no catch-up window measured: %s" % verdict.findings
            for w in windows:
                assert w["window_end_ms"] >= w["window_start_ms"], w
            s.measured["catchup_windows_s"] = [round((w["window_end_ms"] - w["window_start_ms"]) / 1000, 1)
                                               for w in windows]
            assert verdict.coverage.get("replicas") == 2, verdict.coverage
            assert verdict.coverage.get("rows") == 2 * records.written, verdict.coverage
        with t.step("search answers again within 60 s of the recovery; auditd clean again") as s:
            # The proxy routes searches by QueryCoord's distribution, which follows the nodes' own recovery by a
            # few seconds ("channel not available"): auditd, reading each replica at T, was clean before it.
            s.measured["search_after_s"] = wait_for(records.search_works, 60, "a search answer after recovery")
            verdict = auditor.audit(records.name, collection_id=records.id)
            s.verdict = verdict.as_dict()
            assert verdict.clean, verdict
    finally:
        ctx.cluster.restore(QUERYNODES)  # leave the cluster whole
        records.drop()


def run(ctx):
    ctx.test("bidirectional_test", "querynode_failover_both_directions", lambda t: bidirectional(ctx, t))
