"""The shadow against the real cluster: after inserts (batches of 20), deletes, upserts and a dropped
partition, `auditd run --once` must hold exactly the rows Milvus serves (Strong count(*) and pk set)."""
import json
import os
import random
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUDITD = os.environ.get("AUDITD_BIN", os.path.join(ROOT, ".build", "debug", "auditd"))
sys.path.insert(0, os.path.join(ROOT, "dev"))

pytestmark = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")


def all_pks(collection, pk_name, is_int):
    """Every pk, paged by pk range with a limit (an unlimited query under-reports on 2.3.5)."""
    pks, last = [], None
    while True:
        expr = f"{pk_name} > {last}" if is_int and last is not None else (
            f'{pk_name} > "{last}"' if last is not None else (f"{pk_name} >= -9223372036854775807" if is_int else f'{pk_name} >= ""'))
        page = collection.query(expr, output_fields=[pk_name], limit=16000, consistency_level="Strong")
        if not page:
            return pks
        batch = sorted(r[pk_name] for r in page)
        pks += batch
        last = batch[-1]


def test_shadow_equals_what_milvus_serves(tmp_path):
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, connections

    import wait_count

    connections.connect(uri="http://127.0.0.1:19530")
    rng = random.Random(7)
    tag = "%08x" % random.getrandbits(32)
    made = []
    for is_int in (True, False):
        pk = FieldSchema("id", DataType.INT64 if is_int else DataType.VARCHAR, is_primary=True, max_length=100)
        schema = CollectionSchema([pk, FieldSchema("v", DataType.FLOAT_VECTOR, dim=8)], enable_dynamic_field=not is_int)
        c = Collection(f"sh_{tag}_{'int' if is_int else 'str'}", schema, shards_num=2)
        c.create_partition("p1")
        c.create_partition("p2")
        c.create_index("v", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
        c.load(replica_number=2)
        key = (lambda i: i * 3 + 1) if is_int else (lambda i: f"k{i:05d}")
        live = {}
        for start in range(0, 2000, 20):
            part = "p1" if (start // 20) % 2 == 0 else "p2"
            rows = [{"id": key(i), "v": [rng.random() for _ in range(8)]} for i in range(start, start + 20)]
            c.insert(rows, partition_name=part)
            for r in rows:
                live[r["id"]] = part
        deleted = rng.sample(sorted(live), 200)
        for i in range(0, 200, 50):
            c.delete(f"id in {json.dumps(deleted[i:i + 50])}")
        for pk_value in deleted:
            del live[pk_value]
        # upserts: 50 existing pks get new vectors, 50 new pks appear (all in p1)
        existing = rng.sample([k for k, p in live.items() if p == "p1"], 50)
        fresh = [key(i) for i in range(5000, 5050)]
        c.upsert([{"id": k, "v": [rng.random() for _ in range(8)]} for k in existing + fresh], partition_name="p1")
        for k in fresh:
            live[k] = "p1"
        c.release()
        c.partition("p2").drop()
        live = {k: p for k, p in live.items() if p != "p2"}
        c.load(replica_number=2)
        wait_count.wait_for_count(c, len(live), consecutive=3, timeout=60)
        made.append((c, live, is_int))
    time.sleep(1)  # a time tick after the last write, inside the log that run --once reads
    state = tmp_path / "state"
    subprocess.run([AUDITD, "run", "--once", "--state", str(state)], check=True, timeout=600)
    report = json.loads(subprocess.run(
        [AUDITD, "report", "--json", "--state", str(state)], capture_output=True, text=True, check=True).stdout)
    by_name = {c["name"]: c for c in report["collections"]}
    assert report["quarantined"] == 0 and report["findings"] == []
    for c, live, is_int in made:
        entry = by_name[c.name]
        count = c.query("", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
        assert entry["live_rows"] == count == len(live), (c.name, entry, count, len(live))
        assert entry["duplicate_pks"] == 0 and entry["history"] == "complete"
        rows = subprocess.run([AUDITD, "report", "--state", str(state), "--rows", str(entry["id"])],
                              capture_output=True, text=True, check=True).stdout.splitlines()
        shadow_pks = sorted(json.loads(line)["pk"] for line in rows)
        assert shadow_pks == sorted(all_pks(c, "id", is_int)) == sorted(live)
        c.drop()
