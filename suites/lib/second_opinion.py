"""A second opinion on a finding of auditd: both replicas read directly at the finding's T for its pks, by
dev/replica_read.py (its own gRPC reader, no auditd code; a subprocess, since it cannot share a process with
pymilvus). Used by dev/soak for every confirmed finding and by the suites' verdicts."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def direct_check(finding, names, milvus="127.0.0.1:19530"):
    """Reads both replicas at the finding's T for its pks: does what they hold show the finding?"""
    pks = finding.get("pks") or []
    ts = (finding.get("evidence") or {}).get("ts")
    name = names.get(finding.get("collection"))
    if not pks or not ts or not name:
        return {"verdict": "unverifiable", "why": "no pks, T or collection name in the finding"}
    pks = pks[:50]
    done = subprocess.run([sys.executable, os.path.join(ROOT, "dev", "replica_read.py"), "--milvus", milvus,
                           "--collection", name, "--ts", str(ts), "--pks", json.dumps(pks)],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return {"verdict": "unverifiable", "why": done.stderr.strip()[-300:]}
    read = json.loads(done.stdout)
    by_id = {r["id"]: r for r in read["replicas"]}
    named = by_id.get(finding.get("replica"))
    if named is None or named["errors"]:
        return {"verdict": "unverifiable", "why": "replica %s: %s" % (finding.get("replica"),
                                                                      named["errors"] if named else "not listed")}
    held = named["rows"]
    keys = [str(pk) for pk in pks]
    kind = finding["kind"]
    if kind == "missing":
        shown = all(k not in held for k in keys)
    elif kind in ("extra", "resurrected", "duplicate_pk"):
        shown = all(k in held for k in keys)
    elif kind == "stale":
        peer = [r for r in read["replicas"] if r["id"] != finding.get("replica") and not r["errors"]]
        shown = all(k in held for k in keys) and (not peer or any(held[k] != peer[0]["rows"].get(k) for k in keys))
    elif kind == "replica_divergence":
        peer = by_id.get(finding.get("peer_replica"))
        shown = peer is not None and any(held.get(k) != peer["rows"].get(k) for k in keys)
    else:
        return {"verdict": "unverifiable", "why": "kind %s" % kind}
    return {"verdict": "confirmed" if shown else "FALSE POSITIVE",
            "read": {str(r["id"]): {k: r["rows"].get(k) for k in keys[:5]} for r in read["replicas"]}}
