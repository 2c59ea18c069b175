"""consistency_test (first part): data integrity (auditd full mode: every row's content hash on each replica equals
the log's, and the log's equals the client's), concurrent consistency (writers with overlapping pks, upserts and
deletes: both replicas and the shadow agree), batch atomicity (a large batch on each replica whole), checksum
verification (`auditd verify`). Data-loss detection per fault recipe is still to come."""
import random
import subprocess
import threading
import time

import numpy as np

import workload
from bidirectional_test import Records, skipped_without_control
from lib import faults
from lib.report import Skip

# (recipe number, what is done, the function); the broker wipe (recipes 4 and 5) runs last: it restarts the
# cluster from empty (Milvus waits silently after a wipe until the new log passes its old offsets — seconds on a
# young cluster, many minutes on one that ran a while)
RECIPES = [
    (1, "a sealed segment's delta_log overwritten, querynode1 restarted: its deletes come back on that replica",
     faults.recipe_overwritten_delta_log),
    (2, "a sealed segment's insert_log overwritten, querynode1 restarted: its rows missing on that replica",
     faults.recipe_overwritten_insert_log),
    (3, "a sealed segment's insert_log removed, querynode1 restarted: that replica never completes",
     faults.recipe_missing_insert_log),
    (6, "recipe 1, then a compaction: the wrong deletes on both replicas, permanently",
     faults.recipe_compacted_wrong_delta_log),
]
QUICK_RECIPES = {1}


def shadow_rows(ctx, auditor, collection_id):
    done = subprocess.run([ctx.auditd, "report", "--state", str(auditor.state), "--rows", str(collection_id)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-500:]
    import json
    return {row["pk"]: row["row_hash"] for row in map(json.loads, done.stdout.splitlines())}


def consistency(ctx, t):
    records = Records(ctx, ctx.prefix + "consistency", 0)
    auditor = ctx.auditor("consistency")
    rows = 200 if ctx.quick else 2000
    try:
        with t.step("data integrity: %d rows; the log's row hashes equal the client's" % rows) as s:
            written = records.insert(rows)
            _, fields = workload.field_table(records.collection)
            client = {row["detection_id"]: workload.expected_hash(fields, row) for row in written}
            verdict = auditor.audit(records.name, collection_id=records.id)
            assert verdict.clean, verdict
            shadow = shadow_rows(ctx, auditor, records.id)
            differing = [pk for pk in client if shadow.get(pk) != client[pk]]
            s.measured.update(rows=len(client), differing=len(differing))
            assert not differing and len(shadow) == len(client), differing[:5]

        with t.step("data integrity: every row's content on each replica equals the log's (auditd full mode)") as s:
            verdict = auditor.audit(records.name, "--mode", "full", collection_id=records.id)
            s.verdict = verdict.as_dict()
            assert verdict.clean and verdict.coverage.get("mode") == "full", verdict
            assert verdict.coverage.get("rows") == 2 * rows, verdict.coverage

        with t.step("concurrent consistency: 3 writers upserting and deleting overlapping pks") as s:
            pool = ["shared-%04d" % i for i in range(100)]
            counts = {"upserts": 0, "deletes": 0, "errors": 0}
            lock = threading.Lock()

            def writer(w):
                rng, nprng = random.Random(ctx.seed + w), np.random.default_rng(ctx.seed + w)
                for n in range(15):
                    batch = [workload.reid_row(rng, nprng, n, 2048) for _ in range(10)]
                    for row in batch:
                        row["detection_id"] = rng.choice(pool)
                    unique = list({row["detection_id"]: row for row in batch}.values())
                    try:
                        records.collection.upsert(unique, timeout=30)
                        gone = rng.sample(pool, 3)
                        records.collection.delete('detection_id in ["%s"]' % '","'.join(gone), timeout=30)
                        with lock:
                            counts["upserts"] += len(unique)
                            counts["deletes"] += 3
                    except Exception:
                        with lock:
                            counts["errors"] += 1
            threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            time.sleep(1.5)
            s.measured.update(counts)
            assert counts["errors"] == 0, counts

        with t.step("concurrent consistency: both replicas equal the log (auditd pk and full mode)") as s:
            verdict = auditor.audit(records.name, collection_id=records.id)
            full = auditor.audit(records.name, "--mode", "full", collection_id=records.id)
            s.verdict = full.as_dict()
            assert verdict.clean, verdict
            assert full.clean, full
            s.measured["live_pks_compared"] = full.coverage.get("rows")

        with t.step("batch atomicity: one batch of 1,000 rows is on each replica whole") as s:
            rng, nprng = random.Random(ctx.seed + 9), np.random.default_rng(ctx.seed + 9)
            batch = [workload.reid_row(rng, nprng, 500_000 + i, 2048) for i in range(1000)]
            records.collection.insert(batch, timeout=120)
            time.sleep(1.5)
            verdict = auditor.audit(records.name, collection_id=records.id)
            s.verdict = verdict.as_dict()
            assert verdict.clean, verdict
            shadow = shadow_rows(ctx, auditor, records.id)
            present = sum(1 for row in batch if row["detection_id"] in shadow)
            s.measured["batch_rows_in_log"] = present
            assert present == len(batch), "%d of %d rows of the batch in the log" % (present, len(batch))

        with t.step("checksum verification: the shadow's bucket hashes equal a recomputation (auditd verify)") as s:
            code, output = auditor.verify()
            s.measured["verify"] = output.strip().splitlines()[-1][:200] if output.strip() else ""
            assert code == 0, output[-500:]
    finally:
        records.drop()


def storage_faults_possible(ctx, t):
    """Storage recipes change segment files: they need the local cluster's shared storage directory."""
    if skipped_without_control(ctx, t):
        return False
    if ctx.cluster.kind != "local":
        with t.step("storage faults"):
            raise Skip("the storage recipes edit segment files: local cluster only")
        return False
    return True


def data_loss_detection(ctx, t, number, what, recipe):
    if not storage_faults_possible(ctx, t):
        return
    auditor = ctx.auditor("recipe%d" % number)
    c = faults.SegmentedCollection(ctx.prefix + "recipe%d" % number, ctx.cluster.milvus, ctx.cluster.etcd)
    try:
        with t.step("data-loss detection, recipe %d: %s" % (number, what)) as s:
            s.measured.update(recipe(c, lambda *extra: auditor.audit(c.name, *extra, collection_id=c.id).triple(),
                                     ctx.cluster.control, ctx.work))
    finally:
        c.drop()
        ctx.cluster.restore(["querynode1"])


def broker_wipe_detection(ctx, t):
    if not storage_faults_possible(ctx, t):
        return
    with t.step("a fresh cluster (after a wipe Milvus waits until the new log passes its old offsets)"):
        ctx.cluster.fresh()
    auditor = ctx.auditor("broker-wipe")
    healed = faults.SegmentedCollection(ctx.prefix + "wipe_flushed", ctx.cluster.milvus, ctx.cluster.etcd)
    lost = faults.SegmentedCollection(ctx.prefix + "wipe_lost", ctx.cluster.milvus, ctx.cluster.etcd)
    try:
        with t.step("data-loss detection, recipes 4 and 5: the broker's log wiped with rows unflushed, querynode1 "
                    "restarted (missing on that replica, healed by a flush); then the DataNode killed before a flush "
                    "(missing on both replicas)") as s:
            def audit(names, *extra):
                more = [a for n in names[1:] for a in ("--collection", n)]
                return auditor.audit(names[0], *more, *extra).triple()
            s.measured.update(faults.recipe_broker_wipe(healed, lost, audit, ctx.cluster.control))
    finally:
        healed.drop()
        lost.drop()
        ctx.cluster.restore(["kafka", "datanode", "querynode1"])


def run(ctx):
    ctx.test("consistency_test", "integrity_concurrency_atomicity_checksums", lambda t: consistency(ctx, t))
    for number, what, recipe in RECIPES:
        if not ctx.quick or number in QUICK_RECIPES:
            ctx.test("consistency_test", "data_loss_detection_recipe_%d" % number,
                     lambda t: data_loss_detection(ctx, t, number, what, recipe))
    if not ctx.quick:
        ctx.test("consistency_test", "data_loss_detection_broker_wipe", lambda t: broker_wipe_detection(ctx, t))
