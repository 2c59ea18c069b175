"""A DetectionSuite-like workload on the local cluster, and what auditd must find in Kafka afterwards.

Creates two collections, loads both with replica_number=2, inserts rows in small batches, deletes
some, and writes the expected log content (pks, row hashes computed independently with
dev/rowhash.py, deleted pks) as JSON.

  <prefix>_reid     varchar pk (max_length 100), 2048-d FLOAT_VECTOR ReID embedding, dynamic fields
  <prefix>_scalars  int64 pk, BOOL/INT8/INT16/INT32/FLOAT/DOUBLE/VARCHAR/JSON/ARRAY fields, BINARY_VECTOR

usage: python dev/workload.py --prefix demo --rows 5000 --batch 20 --deletes 500 --out expected.json
"""
import argparse
import json
import os
import random
import struct
import sys
import threading
import time

import numpy as np
import ujson
from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, MilvusException, connections, utility

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rowhash  # noqa: E402


def reid_schema(dim):
    return CollectionSchema(
        [
            FieldSchema("detection_id", DataType.VARCHAR, is_primary=True, max_length=100),
            FieldSchema("embedding", DataType.FLOAT_VECTOR, dim=dim),
        ],
        description="DetectionSuite ReID embeddings",
        enable_dynamic_field=True,
    )


def scalars_schema():
    return CollectionSchema(
        [
            FieldSchema("id", DataType.INT64, is_primary=True),
            FieldSchema("flag", DataType.BOOL),
            FieldSchema("i8", DataType.INT8),
            FieldSchema("i16", DataType.INT16),
            FieldSchema("i32", DataType.INT32),
            FieldSchema("score", DataType.FLOAT),
            FieldSchema("weight", DataType.DOUBLE),
            FieldSchema("label", DataType.VARCHAR, max_length=64),
            FieldSchema("attrs", DataType.JSON),
            FieldSchema("tags", DataType.ARRAY, element_type=DataType.INT64, max_capacity=8),
            FieldSchema("names", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=4, max_length=16),
            FieldSchema("sig", DataType.BINARY_VECTOR, dim=32),
        ],
        description="every scalar type auditd decodes",
    )


def reid_row(rng, nprng, i, dim):
    camera = rng.randrange(16)
    vec = rng_vector(nprng, dim)
    row = {
        "detection_id": f"cam{camera:02d}-f{i:07d}-{rng.randrange(1 << 30):08x}",
        "embedding": vec,
        # dynamic fields end up in $meta
        "camera": camera,
        "frame": i,
        "bbox": [round(rng.random() * 1920, 1), round(rng.random() * 1080, 1), 64.0, 128.0],
        "confidence": round(0.5 + rng.random() / 2, 4),
        "label": "person",
    }
    return row


def rng_vector(nprng, dim):
    vec = nprng.standard_normal(dim).astype(np.float32)
    vec /= np.linalg.norm(vec)
    return vec.tolist()


def scalars_row(rng, i):
    return {
        "id": i * 7919 + rng.randrange(7919),
        "flag": rng.random() < 0.5,
        "i8": rng.randrange(-128, 128),
        "i16": rng.randrange(-32768, 32768),
        "i32": rng.randrange(-(1 << 31), 1 << 31),
        "score": rng.random() * 100,
        "weight": rng.random() * 1e6,
        "label": rng.choice(["person", "car", "bike", "bag", "übergröße"]),
        "attrs": {"zone": rng.randrange(5), "night": rng.random() < 0.3, "tags": ["a", "b"][: rng.randrange(3)]},
        "tags": [rng.randrange(-1000, 1000) for _ in range(rng.randrange(0, 8))],
        "names": [rng.choice(["x", "yy", "zzz", "é"]) for _ in range(rng.randrange(0, 4))],
        "sig": bytes(rng.randrange(256) for _ in range(4)),
    }


def field_table(collection):
    """(field_id, name, type, element_type) from DescribeCollection; $meta takes the next id."""
    described = collection.describe()
    fields = [(f["field_id"], f["name"], int(f["type"]), int(f.get("element_type", 0) or 0)) for f in described["fields"]]
    if described.get("enable_dynamic_field"):
        fields.append((max(f[0] for f in fields) + 1, "$meta", rowhash.JSON, 0))
    return described, fields


def expected_hash(fields, row):
    items = []
    names = {name for _, name, _, _ in fields}
    for field_id, name, data_type, element_type in fields:
        if name == "$meta":
            extra = {k: v for k, v in row.items() if k not in names}
            value = ujson.dumps(extra, ensure_ascii=False).encode("utf-8")  # what pymilvus sends
        elif data_type == rowhash.JSON:
            value = ujson.dumps(row[name], ensure_ascii=False).encode("utf-8")
        else:
            value = row[name]
        items.append((field_id, data_type, value, element_type))
    return rowhash.row_hash(items)


def create(name, schema, index_field, index, shards, replicas):
    if utility.has_collection(name):
        utility.drop_collection(name)
    collection = Collection(name, schema, shards_num=shards)
    try:
        collection.create_index(index_field, index)
        for attempt in range(4):
            try:
                collection.load(replica_number=replicas, timeout=300)
                return collection
            except MilvusException:
                # QueryCoord can still count a QueryNode that was just restarted ("node not found ...:
                # unrecoverable error"); it forgets it within seconds: load again, as an operator would
                if attempt == 3:
                    raise
                time.sleep(10)
    except BaseException:
        utility.drop_collection(name)  # never leave a collection that is not loaded behind
        raise


def create_reid(name, shards=2, replicas=2):
    """A fresh 2048-d ReID collection (IVF_FLAT, inner product), loaded with `replicas` replicas."""
    return create(name, reid_schema(2048), "embedding",
                  {"index_type": "IVF_FLAT", "metric_type": "IP", "params": {"nlist": 64}}, shards, replicas)


def create_scalars(name, shards=2, replicas=2):
    """A fresh collection of every scalar type (arrays included) and a binary vector, loaded with `replicas`."""
    return create(name, scalars_schema(), "sig",
                  {"index_type": "BIN_FLAT", "metric_type": "HAMMING", "params": {}}, shards, replicas)


class SeedWorkload:
    """The seed workload, in a thread until close(): 2048-d ReID rows in batches of 20, a delete of 5 live pks
    every 5th batch, an upsert of 5 every 7th; with `scalars`, also 10 rows a batch into `<name>_scalars`, a
    collection of every scalar type (Array fields decode only with their schema). Clear `running` to pause it.
    Remembers when the client's delete and upsert of each pk were acknowledged (`history`)."""

    def __init__(self, name, seed, scalars=False, pause=0.2):
        connections.connect(host="127.0.0.1", port="19530")
        self.name, self.pause = name, pause
        self.collection = create_reid(name)
        self.scalars = create_scalars(name + "_scalars") if scalars else None
        self.rng, self.nprng = random.Random(seed), np.random.default_rng(seed)
        self.pks, self.deleted_at, self.upserted_at = [], {}, {}
        self.counts = {"inserted": 0, "deleted": 0, "upserted": 0, "scalars": 0, "errors": 0}
        self.stop, self.running = threading.Event(), threading.Event()
        self.running.set()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        i = 0
        while not self.stop.is_set():
            if not self.running.wait(0.5):
                continue
            try:
                rows = [reid_row(self.rng, self.nprng, len(self.pks) + n, 2048) for n in range(20)]
                self.collection.insert(rows, timeout=30)
                self.pks += [r["detection_id"] for r in rows]
                self.counts["inserted"] += 20
                if self.scalars is not None:
                    self.scalars.insert([scalars_row(self.rng, 10 * i + n) for n in range(10)], timeout=30)
                    self.counts["scalars"] += 10
                if i % 5 == 4:
                    gone = self.rng.sample(self.pks, 5)
                    self.collection.delete("detection_id in %s" % json.dumps(gone), timeout=30)
                    self.deleted_at.update({pk: time.time() for pk in gone})
                    self.pks = [pk for pk in self.pks if pk not in gone]
                    self.counts["deleted"] += 5
                if i % 7 == 6:
                    again = [dict(reid_row(self.rng, self.nprng, n, 2048), detection_id=pk)
                             for n, pk in enumerate(self.rng.sample(self.pks, 5))]
                    self.collection.upsert(again, timeout=30)
                    self.upserted_at.update({r["detection_id"]: time.time() for r in again})
                    self.counts["upserted"] += 5
            except Exception:
                self.counts["errors"] += 1
                self.stop.wait(1)
            i += 1
            self.stop.wait(self.pause)

    def history(self, pks, started):
        """What the client itself did to these pks (seconds after `started`): the truth a finding is held to."""
        def since(at):
            return round(at - started, 1) if at is not None else None
        return {str(pk): {"deleted_at": since(self.deleted_at.get(pk)), "upserted_at": since(self.upserted_at.get(pk))}
                for pk in pks[:10]}

    def close(self, drop=True):
        self.stop.set()
        self.thread.join()
        if drop:
            for name in [self.name] + ([self.name + "_scalars"] if self.scalars is not None else []):
                utility.drop_collection(name)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--uri", default="http://127.0.0.1:19530")
    parser.add_argument("--prefix", default="demo")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--deletes", type=int, default=500)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--only", choices=["reid", "scalars"], help="create just one of the two collections")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    nprng = np.random.default_rng(args.seed)
    connections.connect(uri=args.uri)
    started = time.time()
    plans = []
    if args.only in (None, "reid"):
        reid = create(
            f"{args.prefix}_reid", reid_schema(args.dim), "embedding",
            {"index_type": "FLAT", "metric_type": "IP", "params": {}}, args.shards, args.replicas)
        plans.append((reid, lambda i: reid_row(rng, nprng, i, args.dim), "detection_id"))
    if args.only in (None, "scalars"):
        scalars = create_scalars(f"{args.prefix}_scalars", args.shards, args.replicas)
        plans.append((scalars, lambda i: scalars_row(rng, i), "id"))
    result = {"collections": []}
    for collection, make_row, pk_name in plans:
        described, fields = field_table(collection)
        replicas = collection.get_replicas()
        rows = {}
        for start in range(0, args.rows, args.batch):
            batch = [make_row(i) for i in range(start, min(args.rows, start + args.batch))]
            batch = [r for r in batch if r[pk_name] not in rows]  # unique pks
            collection.insert(batch)
            for r in batch:
                rows[r[pk_name]] = expected_hash(fields, r)
        deleted = rng.sample(sorted(rows), min(args.deletes, len(rows)))
        for start in range(0, len(deleted), 50):
            chunk = deleted[start : start + 50]
            collection.delete(f"{pk_name} in {json.dumps(chunk)}")
        result["collections"].append(
            {
                "name": collection.name,
                "id": described["collection_id"],
                "pk_type": "VarChar" if isinstance(next(iter(rows)), str) else "Int64",
                "shards": args.shards,
                "replicas": len(replicas.groups),
                "replica_nodes": [sorted(int(n) for n in g.group_nodes) for g in replicas.groups],
                "fields": [{"id": f[0], "name": f[1], "type": f[2]} for f in fields],
                "rows": [{"pk": pk, "row_hash": h} for pk, h in rows.items()],
                "deleted": deleted,
            }
        )
    with open(args.out, "w") as out:
        json.dump(result, out)
    total = sum(len(c["rows"]) for c in result["collections"])
    print(f"workload: {len(plans)} collections, {total} rows inserted in batches of {args.batch}, "
          f"{sum(len(c['deleted']) for c in result['collections'])} deleted, {time.time() - started:.1f}s -> {args.out}")


if __name__ == "__main__":
    main()
