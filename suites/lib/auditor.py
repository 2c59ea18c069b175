"""auditd as the judge of the data: `auditd audit --once` against the cluster, its exit code and its findings
for each replica. Every verdict a suite gives about data comes from here, never from `count(*)` (which answers
wrong without an error for seconds after every QueryNode restart: ../shared/docs/replica-reads.md)."""
import json
import os
import subprocess

from .second_opinion import direct_check

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA_KINDS = {"missing", "extra", "resurrected", "stale", "duplicate_pk", "replica_divergence"}


def names_port(finding, port):
    """Whether a finding names the replica served (last) through the QueryNode listening on `port`."""
    return any(str(v).endswith(":%d" % port) for v in (finding.get("leaders") or {}).values())


def default_binary():
    """AUDITD_BIN, else the newer of the release and debug builds."""
    if os.environ.get("AUDITD_BIN"):
        return os.environ["AUDITD_BIN"]
    builds = [os.path.join(ROOT, ".build", kind, "auditd") for kind in ("release", "debug")]
    built = [b for b in builds if os.path.exists(b)]
    return max(built, key=os.path.getmtime) if built else builds[1]


class Verdict:
    def __init__(self, code, report, stderr, collection_id=None, milvus=None):
        self.exit = code
        self.milvus = milvus
        self.report = report
        self.stderr = stderr
        findings = report.get("findings", [])
        if collection_id is not None:
            findings = [f for f in findings if f.get("collection") == collection_id]
        self.findings = findings
        self.open = [f for f in findings if f["state"] != "resolved" and f.get("replica") is not None]
        self.data = [f for f in self.open if f["kind"] in DATA_KINDS]
        coverage = [c for c in report.get("coverage", []) if collection_id is None or c["collection"] == collection_id]
        self.coverage = coverage[0] if coverage else {}

    @property
    def clean(self):
        return self.exit == 0 and not self.open

    def triple(self):
        """(exit, report, stderr), the form the fault recipes (lib/faults.py) judge."""
        return self.exit, self.report, self.stderr

    def catchups(self):
        return [f for f in self.findings if f["kind"] == "catchup_unfinished"]

    def kinds(self):
        return sorted(f["kind"] for f in self.open)

    def as_dict(self):
        return {"exit": self.exit,
                "open": [{"kind": f["kind"], "replica": f["replica"], "peer_replica": f.get("peer_replica"),
                          "state": f["state"], "node": f.get("node"), "pks": f.get("pk_count"),
                          "leaders": f.get("leaders")} for f in self.open],
                "replicas": self.coverage.get("replicas"), "replicas_total": self.coverage.get("replicas_total"),
                "rows": self.coverage.get("rows"),
                "catchups": [f.get("evidence") for f in self.catchups()],
                "direct_read": self.second_opinions()}

    def second_opinions(self):
        """Each confirmed data finding held against a direct read of both replicas at its T (no auditd code)."""
        if not self.milvus:
            return []
        names = {c["id"]: c["name"] for c in self.report.get("collections", [])}
        checked = []
        for f in self.data:
            if f["state"] == "confirmed":
                opinion = direct_check(f, names, self.milvus)
                checked.append({"kind": f["kind"], "replica": f["replica"], "verdict": opinion["verdict"],
                                "detail": opinion.get("read") or opinion.get("why")})
        return checked

    def names_node_port(self, finding, port):
        return names_port(finding, port)

    def __repr__(self):
        return "auditd exit %s, open %s%s" % (self.exit, self.kinds(),
                                             ("; " + self.stderr.strip()[-800:]) if self.exit not in (0, 1, 2) else "")


class Auditor:
    def __init__(self, binary, state, cluster, wrapper=()):
        self.binary = binary
        self.state = state
        self.cluster = cluster
        self.wrapper = list(wrapper)  # e.g. ["faketime", "-f", "+3h"]

    def base(self):
        return ["--state", str(self.state), "--brokers", self.cluster.brokers, "--milvus", self.cluster.milvus,
                "--etcd", self.cluster.etcd]

    def audit(self, collection=None, *extra, collection_id=None, timeout=900):
        """`auditd audit --once` (ingest up to the log's end, then one round) of one collection or all."""
        command = [*self.wrapper, self.binary, "audit", "--once", "--json", "--settle", "2", *self.base(), *extra]
        if collection:
            command += ["--collection", collection]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as expired:
            stderr = expired.stderr.decode(errors="replace") if isinstance(expired.stderr, bytes) else \
                (expired.stderr or "")
            return Verdict(None, {}, stderr + "\nauditd did not end within %d s" % timeout, collection_id)
        report = json.loads(done.stdout) if done.stdout.startswith("{") else {}
        return Verdict(done.returncode, report, done.stderr, collection_id, self.cluster.milvus)

    def verify(self):
        done = subprocess.run([*self.wrapper, self.binary, "verify", "--state", str(self.state)], capture_output=True,
                              text=True, timeout=900)
        return done.returncode, done.stdout + done.stderr
