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
from bidirectional_test import Records


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


def run(ctx):
    ctx.test("consistency_test", "integrity_concurrency_atomicity_checksums", lambda t: consistency(ctx, t))
