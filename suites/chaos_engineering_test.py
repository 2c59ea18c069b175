"""chaos_engineering_test (first part): under a steady write load, seeded random restarts of Milvus roles and a
cascading failure (a QueryNode, then the DataNode, then the proxy); after each, auditd's verdict (a finding naming
the replica and what was lost, or a clean audit with the catch-up window) and whether the cluster recovered.
Then resource exhaustion (a QueryNode held to a memory limit until the kernel kills it, a QueryNode starved of CPU,
the storage volume full under the DataNode) and clock skew (auditd under libfaketime; logs whose hybrid timestamps
jump ahead and back), and a network partition (a QueryNode in its own network namespace behind a veth pair, the
link cut and restored)."""
import os
import random
import threading
import time

import numpy as np

import workload
from bidirectional_test import QUERYNODES, Records, skipped_without_control, unavailable_verdict, wait_for
from lib.cluster import ControlUnavailable
from lib.report import Skip
from performance_test import ProcSampler

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


def judge(ctx, t, records, auditor, what, supervised=()):
    """After a fault: the cluster recovers, then auditd audits both replicas clean (no data lost). `supervised`
    roles are started again whenever their process is gone, as compose's `restart: unless-stopped` would (a
    QueryNode starved of CPU loses its etcd session and exits — later than the fault itself)."""
    with t.step("%s: cluster recovered (both replicas serving, search answers)" % what) as s:
        restarted = set()

        def supervise_and_check():
            for role in supervised:
                if ctx.cluster.pid(role) is None:
                    restarted.add(role)
                    try:
                        ctx.cluster.start(role)
                    except Exception:
                        pass  # e.g. the old process was still exiting: the next look starts it again
            return recovered(ctx, records)
        s.measured["recovered_after_s"] = wait_for(supervise_and_check, 180, "recovery after " + what)
        if restarted:
            s.measured["restarted_after_exiting"] = sorted(restarted)
    with t.step("%s: auditd — both replicas equal the log, no data finding" % what) as s:
        verdict = auditor.audit(records.name, "--unreachable-grace", "60", "--watch-limit", "180",
                                collection_id=records.id)
        s.verdict = verdict.as_dict()
        records.kept = records.kept or bool(verdict.data)  # the evidence stays for whoever reads the report
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


def bulk_insert(records, rows, batch=500):
    """Inserts `rows` rows in batches of `batch` (2048-d: 4 MB a batch); returns the rows written."""
    done = 0
    while done < rows:
        records.insert_quiet(batch)
        done += batch
    return done


def resource_faults_possible(ctx, t):
    if skipped_without_control(ctx, t):
        return False
    try:
        ctx.cluster.unlimit("querynode2")
    except ControlUnavailable as why:
        with t.step("resource faults"):
            raise Skip(str(why))
        return False
    return True


def resource_exhaustion(ctx, t):
    if not resource_faults_possible(ctx, t):
        return
    records = Records(ctx, ctx.prefix + "exhaust", 100)
    auditor = ctx.auditor("exhaust")
    try:
        wait_for(records.both_replicas_serving, 120, "both replicas serving")
        # auditd knows each replica's node from its earlier rounds (as the sidecar always has): once a dead node
        # has left the cluster's view, that is what names it
        judge(ctx, t, records, auditor, "before the faults")
        with t.step("memory: querynode2 held to its RSS + 96 MB, 2048-d rows written until it fails") as s:
            pid = ctx.cluster.pid("querynode2")
            limit = int(ProcSampler.read(pid)["rss"] * 2**20) + 96 * 2**20
            ctx.cluster.limit("querynode2", memory=limit)
            started, written = time.time(), 0
            while written < 60_000 and _alive(pid):
                written += bulk_insert(records, 1000)
            s.measured.update(limit_mb=limit // 2**20, rows_until_killed=written,
                              killed_after_s=round(time.time() - started, 1))
            wait_for(lambda: not _alive(pid), 60, "querynode2 ended by the OOM killer")
            s.measured["oom_kills"] = _oom_kills("querynode2")
        with t.step("memory: auditd names querynode2's replica unavailable, the other replica whole") as s:
            time.sleep(1.5)
            unavailable_verdict(ctx, s, records, auditor, "querynode2", "--unreachable-grace", "5")
        with t.step("memory: querynode2 back without the limit") as s:
            ctx.cluster.unlimit("querynode2")
            ctx.cluster.start("querynode2")
        judge(ctx, t, records, auditor, "the memory exhaustion")

        with t.step("CPU: querynode1 held to 2 % of one CPU for 30 s under writes") as s:
            ctx.cluster.limit("querynode1", cpu=2)
            writes = SteadyWrites(records, ctx.seed + 1)
            try:
                started = time.time()
                try:
                    records.search(timeout=30)
                    s.measured["search_s"] = round(time.time() - started, 1)
                except Exception as error:
                    s.measured["search"] = "failed after %.1f s: %s" % (time.time() - started, type(error).__name__)
                time.sleep(max(0, 30 - (time.time() - started)))
            finally:
                writes.close()
            s.measured.update(rows_written=writes.ok, batches_failed=writes.failed)
        with t.step("CPU: auditd while querynode1 starves — no data finding") as s:
            verdict = auditor.audit(records.name, "--unreachable-grace", "5", "--watch-limit", "20",
                                    collection_id=records.id)
            s.verdict = verdict.as_dict()
            assert not verdict.data, verdict
            assert verdict.exit in (0, 2), verdict
        with t.step("CPU: querynode1's limit lifted") as s:
            ctx.cluster.unlimit("querynode1")
            ctx.cluster.restore(QUERYNODES)
        judge(ctx, t, records, auditor, "the CPU starvation", supervised=QUERYNODES)

        with t.step("disk: the storage volume filled; 2,000 rows written; a flush cannot complete") as s:
            ctx.cluster.fill_storage()
            bulk_insert(records, 2000)
            started = time.time()
            try:
                records.collection.flush(timeout=30)
                s.measured["flush"] = "returned after %.1f s" % (time.time() - started)
            except Exception as error:
                s.measured["flush"] = "failed after %.1f s: %s" % (time.time() - started, type(error).__name__)
            time.sleep(1.5)
        with t.step("disk: auditd while the DataNode cannot write — no data finding (the rows are in the log and "
                    "in the replicas' growing segments)") as s:
            verdict = auditor.audit(records.name, "--unreachable-grace", "10", collection_id=records.id)
            s.verdict = verdict.as_dict()
            assert not verdict.data and verdict.exit in (0, 2), verdict
            s.measured["replicas_audited"] = verdict.coverage.get("replicas")
        with t.step("disk: space freed; the DataNode restarted if it quit (as its supervisor would); the flush "
                    "completes") as s:
            ctx.cluster.free_storage()
            # Milvus 2.3.5's DataNode exits after its flush retries fail ("flush pack with error, DataNode quit
            # now"): the rows it held are still in the log, which a new DataNode replays from the checkpoint
            s.measured["datanode_quit"] = ctx.cluster.pid("datanode") is None
            ctx.cluster.start("datanode")
            started = time.time()
            records.collection.flush(timeout=300)
            s.measured["flush_s"] = round(time.time() - started, 1)
        with t.step("disk: querynode1 restarted (loads the flushed segments from storage)") as s:
            ctx.cluster.restart("querynode1")
        judge(ctx, t, records, auditor, "the full disk", supervised=(*QUERYNODES, "datanode"))
    finally:
        for role in QUERYNODES:
            try:
                ctx.cluster.unlimit(role)
            except Exception:
                pass
        try:
            ctx.cluster.free_storage()
        except Exception:
            pass
        ctx.cluster.restore(ROLES)
        records.drop()


SKEWED = "Milvus's own processes: Go reads the clock through the vDSO, which libfaketime does not reach (measured: " \
         "etcd under faketime -f +3h logs the real time); on one machine they share the kernel's clock"


def synthetic_log(ctx, work, name, jump_ms):
    """A synthetic Milvus log (auditd-bench synth) whose hybrid timestamps jump by `jump_ms` halfway, followed by
    auditd from its start: (exit of `report`, the report)."""
    import json
    import subprocess
    bench = os.path.join(os.path.dirname(ctx.auditd), "auditd-bench")
    if not os.path.exists(bench):
        raise Skip("auditd-bench is not built beside %s" % ctx.auditd)
    prefix = "%s%s-dml" % (ctx.prefix, name)
    state = os.path.join(work, "state-" + name)
    subprocess.run([bench, "synth", "--rows", "2000", "--prefix", prefix, "--jump-ms", str(jump_ms),
                    "--brokers", ctx.cluster.brokers], check=True, capture_output=True, timeout=300)
    done = subprocess.run([ctx.auditd, "run", "--once", "--topic-prefix", prefix, "--state", state, "--brokers",
                           ctx.cluster.brokers], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-800:]
    done = subprocess.run([ctx.auditd, "report", "--json", "--state", state], capture_output=True, text=True,
                          timeout=300)
    verify = subprocess.run([ctx.auditd, "verify", "--state", state], capture_output=True, text=True, timeout=300)
    return done.returncode, json.loads(done.stdout), verify.returncode, prefix


def clock_skew(ctx, t):
    if skipped_without_control(ctx, t):
        return
    import shutil
    t.measured["skewed"] = "auditd's clock (libfaketime, ±3 h); the hybrid timestamps of a log auditd reads " \
                           "(jumping 3 h ahead and 3 h back)"
    t.measured["not_skewed"] = SKEWED
    records = Records(ctx, ctx.prefix + "skew", 100)
    try:
        wait_for(records.both_replicas_serving, 120, "both replicas serving")
        if shutil.which("faketime"):
            # A misset machine clock moves the wall clock only: CLOCK_MONOTONIC stays true (FAKETIME_DONT_FAKE_
            # MONOTONIC=1). libfaketime cannot reach librdkafka's timed waits (C11 cnd_timedwait → glibc's internal
            # pthread_cond_timedwait with an absolute wall-clock deadline, not interposed): with the clock 3 h back
            # every deadline has already passed and Kafka calls time out at once. Measured 3 h ahead: waits sleep
            # for hours (auditd's watchdog turns the stuck metadata call into an error after 20 s, then librdkafka's
            # own teardown spins) — not run here; the report says so. What auditd must do under the skew it can be
            # given: fail loudly and soon, never hang, never call it a data finding.
            with t.step("clock skew: auditd under faketime -3h (wall clock) — librdkafka's waits cannot be skewed "
                        "with it: auditd ends within 120 s, loudly, with no data finding") as s:
                skewed = ctx.auditor("skew-3h", ["env", "FAKETIME_DONT_FAKE_MONOTONIC=1", "faketime", "-f", "-3h"])
                started = time.time()
                verdict = skewed.audit(records.name, "--log-level", "info", collection_id=records.id, timeout=120)
                s.verdict = verdict.as_dict()
                s.measured.update(seconds=round(time.time() - started, 1), exit=verdict.exit,
                                  said=verdict.stderr.strip().splitlines()[-1][-220:] if verdict.stderr else "")
                assert verdict.exit is not None and not verdict.data, verdict
                assert verdict.exit == 0 and verdict.clean or "imed out" in verdict.stderr or \
                    "has not returned" in verdict.stderr, verdict
            t.measured["faketime_+3h"] = "not run: librdkafka's waits sleep for hours (see the suite's comment)"
        else:
            with t.step("clock skew: auditd under faketime"):
                raise Skip("faketime is not installed (Debian package faketime)")

        with t.step("clock skew: a log whose timestamps jump 3 h ahead — followed without a finding") as s:
            code, report, verified, prefix = synthetic_log(ctx, ctx.work, "jump-ahead", 3 * 3_600_000)
            s.measured.update(findings=len(report["findings"]), verify_exit=verified,
                              history=[c["history"] for c in report["collections"]])
            assert code == 0 and not report["findings"] and verified == 0, report["findings"][:3]
            assert all(p["lag_messages"] == 0 for p in report["pchannels"]), report["pchannels"]
        with t.step("clock skew: a log whose timestamps step 3 h back — one log_regression per pchannel over "
                    "exactly the records that went back, rows still applied") as s:
            code, report, verified, prefix = synthetic_log(ctx, ctx.work, "step-back", -3 * 3_600_000)
            regressions = [f for f in report["findings"] if f["kind"] == "log_regression"]
            s.measured.update(findings=[(f["pchannel"], f["evidence"]["from_offset"], f["evidence"]["to_offset"])
                                        for f in regressions], verify_exit=verified)
            assert code == 1 and len(regressions) == 2, report["findings"][:4]
            assert {f["pchannel"] for f in regressions} == {prefix + "_0", prefix + "_1"}, regressions
            assert all("180.0 min back" in f["evidence"]["detail"] for f in regressions), regressions
            assert verified == 0
    finally:
        ctx.cluster.restore(QUERYNODES)
        records.drop()


def network_partition(ctx, t):
    if not resource_faults_possible(ctx, t):
        return
    records = Records(ctx, ctx.prefix + "partition", 100)
    auditor = ctx.auditor("partition")
    isolated = False
    try:
        wait_for(records.both_replicas_serving, 120, "both replicas serving")
        with t.step("partition: querynode2 restarted in a network namespace of its own, behind a veth pair") as s:
            ctx.cluster.control("isolate", "querynode2")
            isolated = True
            s.measured["serving_after_s"] = wait_for(lambda: recovered(ctx, records), 180, "querynode2 serving "
                                                     "across the link")
        judge(ctx, t, records, auditor, "querynode2 behind the link")
        writes = SteadyWrites(records, ctx.seed + 2)
        try:
            with t.step("partition: the link cut for 30 s under writes; search answers from the other replica") as s:
                ctx.cluster.control("cut", "querynode2")
                started = time.time()
                s.measured["search_after_s"] = wait_for(records.search_works, 60, "a search answer with the link cut")
                time.sleep(max(0, 15 - (time.time() - started)))
            with t.step("partition: auditd names querynode2's replica unavailable, the other replica whole") as s:
                writes_before = records.written
                time.sleep(1.5)
                verdict = auditor.audit(records.name, "--unreachable-grace", "5", collection_id=records.id)
                s.verdict = verdict.as_dict()
                assert verdict.exit == 2 and verdict.kinds() == ["replica_unavailable"], verdict
                assert verdict.names_node_port(verdict.open[0], 21133), verdict.open[0].get("leaders")
                assert verdict.coverage.get("replicas") == 1 and verdict.coverage.get("rows") >= writes_before, (
                    verdict.coverage)
                time.sleep(max(0, 30 - (time.time() - started)))
            with t.step("partition: the link restored") as s:
                ctx.cluster.control("heal", "querynode2")
                s.measured["querynode2_survived"] = ctx.cluster.pid("querynode2") is not None
        finally:
            writes.close()
            s.measured.update(rows_written=writes.ok, batches_failed=writes.failed)
        with t.step("partition: querynode2 back in the cluster's namespace") as s:
            ctx.cluster.control("rejoin", "querynode2")
            isolated = False
        judge(ctx, t, records, auditor, "the partition")
    finally:
        if isolated:
            try:
                ctx.cluster.control("rejoin", "querynode2")
            except Exception:
                pass
        ctx.cluster.restore(ROLES)
        records.drop()


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def _oom_kills(role):
    """The kernel's OOM kills in the role's memory group (cgroup v1 memory.oom_control / v2 memory.events)."""
    for path in ("/sys/fs/cgroup/memory/auditd-%s/memory.oom_control" % role,
                 "/sys/fs/cgroup/auditd-%s/memory.events" % role):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except OSError:
            continue
    return None


def run(ctx):
    ctx.test("chaos_engineering_test", "restarts_and_cascading_failures_under_writes", lambda t: chaos(ctx, t))
    ctx.test("chaos_engineering_test", "resource_exhaustion_memory_cpu_disk", lambda t: resource_exhaustion(ctx, t))
    ctx.test("chaos_engineering_test", "network_partition", lambda t: network_partition(ctx, t))
    ctx.test("chaos_engineering_test", "clock_skew", lambda t: clock_skew(ctx, t))
