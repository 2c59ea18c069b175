"""failover_test: 20 records under a unique `failover_record_` prefix, concurrent clients (a thread pool, 30 s
client timeout) searching and reading the records back while a QueryNode fails — in both directions — with the
clients' availability measured and auditd's verdict at each step: the replica of the failed node unavailable (no
data finding), the restarted replica's catch-up window, clean at the end."""
import concurrent.futures
import threading
import time

from bidirectional_test import QUERYNODES, Records, skipped_without_control, wait_for


class Clients:
    """`workers` threads, each searching and reading the records back by pk (30 s timeout) until stopped."""

    def __init__(self, records, pks, workers=4):
        self.records = records
        self.pks = pks
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = self.failed = 0
        self.latencies = []
        self.errors = []
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        self.futures = [self.pool.submit(self.loop, i) for i in range(workers)]

    def loop(self, worker):
        n = 0
        while not self.stop.is_set():
            started = time.time()
            try:
                if (worker + n) % 2:
                    self.records.search(timeout=30)
                else:
                    quoted = ", ".join('"%s"' % pk for pk in self.pks[:5])
                    self.records.collection.query("detection_id in [%s]" % quoted, output_fields=["detection_id"],
                                                  timeout=30)
                with self.lock:
                    self.ok += 1
                    self.latencies.append(time.time() - started)
            except Exception as error:
                with self.lock:
                    self.failed += 1
                    self.errors.append(str(error).splitlines()[0][:120])
            n += 1
            time.sleep(0.05)

    def window(self):
        """Counters since the last call: (ok, failed, max latency s)."""
        with self.lock:
            result = (self.ok, self.failed, round(max(self.latencies), 2) if self.latencies else None)
            self.ok = self.failed = 0
            self.latencies = []
            return result

    def close(self):
        self.stop.set()
        self.pool.shutdown(wait=True)


def failover(ctx, t):
    if skipped_without_control(ctx, t):
        return
    for node in QUERYNODES:
        ctx.cluster.start(node)
    records = Records(ctx, ctx.prefix + "failover", 0)
    prefix = "failover_record_%s_" % ctx.prefix.rstrip("_")
    auditor = ctx.auditor("failover")
    clients = None
    try:
        with t.step("20 records under %s*, both replicas serving, auditd clean" % prefix) as s:
            pks = [r["detection_id"] for r in records.insert(20, prefix=prefix)]
            wait_for(records.both_replicas_serving, 120, "both replicas serving")
            verdict = auditor.audit(records.name, collection_id=records.id)
            s.verdict = verdict.as_dict()
            assert verdict.clean and verdict.coverage.get("rows") == 40, verdict
        clients = Clients(records, pks)
        with t.step("4 concurrent clients answered before any failure") as s:
            time.sleep(5)
            ok, failed, worst = clients.window()
            s.measured.update(ok=ok, failed=failed, max_latency_s=worst)
            assert ok > 0 and failed == 0, clients.errors[-3:]
        for down, up in (("querynode1", "querynode2"), ("querynode2", "querynode1")):
            with t.step("%s down under load: clients keep being answered (30 s timeout)" % down) as s:
                since_ms = time.time() * 1000
                ctx.cluster.kill(down)
                time.sleep(20)
                ok, failed, worst = clients.window()
                s.measured.update(ok=ok, failed=failed, max_latency_s=worst)
                records.insert(10, prefix=prefix)
                assert ok > 0, "no client answered with %s down: %s" % (down, clients.errors[-3:])
            with t.step("%s down: auditd names its replica unavailable, no data finding" % down) as s:
                verdict = auditor.audit(records.name, collection_id=records.id)
                s.verdict = verdict.as_dict()
                assert verdict.exit == 2 and verdict.kinds() == ["replica_unavailable"], verdict
                assert verdict.names_node_port(verdict.open[0], ctx.cluster.querynode_port(down)), verdict.open
            with t.step("%s back: auditd measures its catch-up and audits clean" % down) as s:
                ctx.cluster.start(down)
                verdict = auditor.audit(records.name, "--unreachable-grace", "120", "--watch-limit", "300",
                                        collection_id=records.id)
                s.verdict = verdict.as_dict()
                ok, failed, worst = clients.window()
                s.measured.update(clients_ok=ok, clients_failed=failed, max_latency_s=worst)
                assert verdict.clean and not verdict.data, verdict
                assert verdict.coverage.get("rows") == 2 * records.written, verdict.coverage
                windows = [f["evidence"] for f in verdict.catchups()
                           if f["state"] == "resolved" and f["evidence"]["window_start_ms"] >= since_ms]
                s.measured["catchup_windows_s"] = [
                    round((w["window_end_ms"] - w["window_start_ms"]) / 1000, 1) for w in windows]
        with t.step("every %s record served by both replicas (auditd), clients answered" % prefix) as s:
            verdict = auditor.audit(records.name, collection_id=records.id)
            s.verdict = verdict.as_dict()
            assert verdict.clean and verdict.coverage.get("rows") == 2 * records.written, verdict
            ok, failed, worst = clients.window()
            s.measured.update(clients_ok=ok, clients_failed=failed)
            assert ok > 0
    finally:
        if clients:
            clients.close()
        ctx.cluster.restore(QUERYNODES)  # leave the cluster whole
        records.drop()


def run(ctx):
    ctx.test("failover_test", "concurrent_clients_failover_both_directions", lambda t: failover(ctx, t))
