"""Compares `auditd tail --json` output with what dev/workload.py wrote (pks, row hashes, deletes)."""
import collections
import json
import sys

expected = json.load(open(sys.argv[1]))
inserted = collections.defaultdict(dict)
deleted = collections.defaultdict(set)
undecodable = 0
for line in open(sys.argv[2]):
    o = json.loads(line)
    if o["type"] == "insert":
        inserted[o["collection_id"]][o["pk"]] = o["row_hash"]
    elif o["type"] == "delete":
        deleted[o["collection_id"]].add(o["pk"])
    elif o["type"] == "undecodable":
        undecodable += 1
ok = undecodable == 0
for c in expected["collections"]:
    want = {r["pk"]: r["row_hash"] for r in c["rows"]}
    got = inserted[c["id"]]
    same = sum(1 for pk, h in want.items() if got.get(pk) == h)
    dels = deleted[c["id"]] == set(c["deleted"])
    ok = ok and same == len(want) == len(got) and dels
    print(f"{c['name']}: {len(got)} rows in Kafka, {same}/{len(want)} row hashes equal the client's, "
          f"deletes {'match' if dels else 'DIFFER'} ({len(deleted[c['id']])})")
print(f"undecodable records: {undecodable}")
print("OK" if ok else "MISMATCH")
sys.exit(0 if ok else 1)
