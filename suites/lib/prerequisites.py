"""What a qualification run needs before it starts, checked and printed as a table: Milvus reachable (and its
version), two QueryNodes, Kafka and etcd reachable, auditd built, free memory and disk."""
import base64
import json
import os
import shutil
import socket
import subprocess
import urllib.request


def _hostport(text):
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def _etcd_count(etcd, prefix):
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = json.dumps({"key": base64.b64encode(prefix.encode()).decode(),
                       "range_end": base64.b64encode(end.encode()).decode(), "count_only": True}).encode()
    request = urllib.request.Request("http://%s/v3/kv/range" % etcd, data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(json.load(response).get("count", 0))


def check(cluster, auditd, report_dir, min_memory_gb=2.0, min_disk_gb=2.0):
    """[{check, ok, detail}] in a fixed order."""
    results = []

    def add(name, fn):
        try:
            ok, detail = fn()
        except Exception as error:  # each check reports its own failure as one line
            ok, detail = False, "%s: %s" % (type(error).__name__, error)
        results.append({"check": name, "ok": bool(ok), "detail": detail})

    def milvus():
        from pymilvus import connections, utility
        connections.connect(alias="prereq", uri="http://%s" % cluster.milvus, timeout=10)
        try:
            return True, "%s, server %s" % (cluster.milvus, utility.get_server_version(using="prereq"))
        finally:
            connections.disconnect("prereq")

    def querynodes():
        n = _etcd_count(cluster.etcd, "%s/meta/session/querynode-" % cluster.etcd_root)
        return n >= 2, "%d QueryNode sessions in etcd (2 needed for REPLICA=2)" % n

    def kafka():
        first = cluster.brokers.split(",")[0]
        socket.create_connection(_hostport(first), timeout=3).close()
        return True, cluster.brokers

    def etcd():
        with urllib.request.urlopen("http://%s/health" % cluster.etcd, timeout=5) as response:
            health = json.load(response)
        return health.get("health") == "true", "%s health %s" % (cluster.etcd, health.get("health"))

    def built():
        done = subprocess.run([auditd, "--version"], capture_output=True, text=True, timeout=30)
        return done.returncode == 0, "%s (%s)" % (auditd, done.stdout.strip() or done.stderr.strip()[:100])

    def memory():
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:")) / 1048576
        return available >= min_memory_gb, "%.1f GB available (%.0f GB needed)" % (available, min_memory_gb)

    def disk():
        os.makedirs(report_dir, exist_ok=True)
        free = shutil.disk_usage(report_dir).free / 1e9
        return free >= min_disk_gb, "%.0f GB free under %s (%.0f GB needed)" % (free, report_dir, min_disk_gb)

    add("milvus reachable", milvus)
    add("two QueryNodes", querynodes)
    add("kafka reachable", kafka)
    add("etcd reachable", etcd)
    add("auditd built", built)
    add("free memory", memory)
    add("free disk", disk)
    return results


def table(results):
    width = max(len(r["check"]) for r in results)
    lines = ["%-*s  %-7s  %s" % (width, "prerequisite", "status", "detail")]
    lines += ["%-*s  %-7s  %s" % (width, r["check"], "ok" if r["ok"] else "MISSING", r["detail"]) for r in results]
    return "\n".join(lines)
