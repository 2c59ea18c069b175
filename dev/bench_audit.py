"""Audit comparison rates on the local cluster (docs/benchmarks.md).

Creates <prefix>_pk (ROWS rows, varchar pk, 8-d vectors) and <prefix>_full (FULL_ROWS rows, varchar pk,
2048-d ReID vectors), both 2 shards × 2 replicas, then times `auditd audit --once` per collection in pk
mode and in full mode. The rate is the audit's own coverage figure: rows read from every replica and
compared with the shadow, divided by the seconds the sweep took (probe + reads + comparison).

  dev/cluster exec python dev/bench_audit.py --auditd .build/release/auditd --rows 200000 --full-rows 5000
"""
import argparse
import json
import os
import random
import subprocess
import tempfile
import time

import numpy as np
from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, connections, utility


def make(name, rows, dim, batch):
    if utility.has_collection(name):
        utility.drop_collection(name)
    schema = CollectionSchema([FieldSchema("detection_id", DataType.VARCHAR, is_primary=True, max_length=64),
                               FieldSchema("embedding", DataType.FLOAT_VECTOR, dim=dim)])
    c = Collection(name, schema, shards_num=2)
    c.create_index("embedding", {"index_type": "FLAT", "metric_type": "IP", "params": {}})
    c.load(replica_number=2)
    rng = np.random.default_rng(7)
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        pks = ["cam%02d-f%08d" % (i % 16, i) for i in range(start, start + n)]
        c.insert([pks, rng.standard_normal((n, dim), dtype=np.float32)])
    return c


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--auditd", default=".build/release/auditd")
    p.add_argument("--prefix", default="bench_audit")
    p.add_argument("--rows", type=int, default=200000)
    p.add_argument("--full-rows", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    connections.connect(uri="http://127.0.0.1:19530")
    t = time.time()
    make(args.prefix + "_pk", args.rows, 8, 10000)
    make(args.prefix + "_full", args.full_rows, 2048, 500)
    print("setup: %.1f s" % (time.time() - t))
    time.sleep(2)
    state = tempfile.mkdtemp(prefix="bench-audit-")
    print("| collection | rows per replica | mode | replicas | rows compared | sweep s | rows/s compared |")
    print("|---|---|---|---|---|---|---|")
    for name, mode in ((args.prefix + "_pk", "pk"), (args.prefix + "_full", "pk"), (args.prefix + "_full", "full"),
                       (args.prefix + "_pk", "full")):
        for _ in range(args.rounds):
            out = subprocess.run([args.auditd, "audit", "--once", "--json", "--settle", "1", "--mode", mode,
                                  "--collection", name, "--state", state], capture_output=True, text=True)
            report = json.loads(out.stdout)
            assert out.returncode == 0, out.stderr[-1000:]
            ids = {c["id"] for c in report["collections"] if c["name"] == name}  # a dropped namesake may be listed
            cov = next(c for c in report["coverage"] if c["collection"] in ids)
            rate = cov["rows"] / cov["seconds"]
            print("| %s | %d | %s | %d | %d | %.2f | %.0f |" % (
                name, cov["rows"] // max(cov["replicas"], 1), mode, cov["replicas"], cov["rows"], cov["seconds"], rate))


if __name__ == "__main__":
    main()
