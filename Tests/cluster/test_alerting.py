"""auditd serve as the sidecar, end to end with the real operator tools from Debian's packages:

- the shipped rules pass `promtool check rules` and their unit tests (`promtool test rules`);
- `/metrics` passes `promtool check metrics`;
- on the local cluster: Prometheus scrapes `auditd serve` with the shipped rules (their `for` and
  `keep_firing_for` shortened to seconds; expressions, labels and annotations as shipped) and alerts into a real
  Alertmanager, to which auditd also pushes its confirmed findings itself (`--alertmanager`). A delta_log fault
  on querynode1's replica (../shared/docs/fault-injection.md) makes AuditdReplicaDivergence fire with the
  collection and *that* replica; no alert names the healthy replica; restoring the file resolves it. The
  QueryNode restart shows its window in /v1/restarts and in the histogram;
- every panel query of the Grafana dashboard runs against that Prometheus without an error.
"""
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from test_faults import SegmentedCollection, restart_querynode1

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUDITD = os.environ.get("AUDITD_BIN", os.path.join(ROOT, ".build", "debug", "auditd"))
RULES = os.path.join(ROOT, "deploy", "prometheus", "auditd-rules.yml")
RULE_TESTS = os.path.join(ROOT, "deploy", "prometheus", "auditd-rules.test.yml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "auditd.json")
in_cluster = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for(predicate, seconds, what):
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (OSError, ValueError, KeyError) as error:
            last = error
        time.sleep(1)
    raise AssertionError("timed out after %d s waiting for %s (last: %r)" % (seconds, what, last))


def test_shipped_rules_pass_promtool():
    check = subprocess.run(["promtool", "check", "rules", RULES], capture_output=True, text=True)
    assert check.returncode == 0 and "SUCCESS: 8 rules found" in check.stdout, check.stdout + check.stderr
    tests = subprocess.run(["promtool", "test", "rules", os.path.basename(RULE_TESTS)], capture_output=True,
                           text=True, cwd=os.path.dirname(RULE_TESTS))
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr
    # every alert of the rule file has a runbook section
    alerts = re.findall(r"- alert: (\w+)", open(RULES).read())
    runbook = open(os.path.join(ROOT, "docs", "alerts.md")).read()
    assert alerts and all("## %s" % a in runbook for a in alerts), alerts


def fast_rules(path):
    """The shipped rules with their waits in seconds (a test cannot wait minutes): same expressions."""
    text = open(RULES).read()
    text = re.sub(r"for: \d+m", "for: 2s", text)
    text = re.sub(r"keep_firing_for: \d+m", "keep_firing_for: 5s", text)
    path.write_text(text)
    return str(path)


class Stack:
    """auditd serve + Prometheus + Alertmanager, in the cluster's network namespace, on free ports."""

    def __init__(self, tmp_path, collection):
        self.tmp = tmp_path
        self.auditd_port, self.prom_port, self.am_port = free_port(), free_port(), free_port()
        self.processes = []
        am_config = tmp_path / "am.yml"
        am_config.write_text("route:\n  receiver: none\n  group_wait: 1s\n  group_interval: 1s\n"
                             "receivers:\n  - name: none\n")
        self.start("alertmanager", ["prometheus-alertmanager", "--config.file=%s" % am_config,
                                    "--storage.path=%s" % (tmp_path / "am-data"),
                                    "--web.listen-address=127.0.0.1:%d" % self.am_port, "--cluster.listen-address="])
        self.state = tmp_path / "state"
        self.start("auditd", [AUDITD, "serve", "--state", str(self.state), "--milvus", "127.0.0.1:19530",
                              "--listen", "127.0.0.1:%d" % self.auditd_port, "--audit-interval", "5", "--settle", "2",
                              "--watch-limit", "120", "--unreachable-grace", "120", "--collection", collection,
                              "--alertmanager", "http://127.0.0.1:%d" % self.am_port, "--log-level", "notice"])
        prom_config = tmp_path / "prom.yml"
        prom_config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "rule_files:\n  - %s\n" % fast_rules(tmp_path / "rules.yml")
            + "alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:%d']\n" % self.am_port
            + "scrape_configs:\n  - job_name: auditd\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
            % self.auditd_port)
        self.start("prometheus", ["prometheus", "--config.file=%s" % prom_config,
                                  "--storage.tsdb.path=%s" % (tmp_path / "prom-data"),
                                  "--web.listen-address=127.0.0.1:%d" % self.prom_port])
        wait_for(lambda: get("http://127.0.0.1:%d/healthz" % self.auditd_port)[0] == 200, 60, "auditd serve")
        wait_for(lambda: get("http://127.0.0.1:%d/-/ready" % self.prom_port)[0] == 200, 60, "prometheus")
        wait_for(lambda: get("http://127.0.0.1:%d/-/ready" % self.am_port)[0] == 200, 60, "alertmanager")

    def start(self, name, argv):
        log = open(self.tmp / ("%s.log" % name), "w")
        self.processes.append((name, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)))

    def auditd(self, path):
        status, body = get("http://127.0.0.1:%d%s" % (self.auditd_port, path))
        assert status == 200, (path, status, body)
        return json.loads(body) if body.startswith("{") else body

    def query(self, expr):
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (self.prom_port, urllib.request.quote(expr))
        status, body = get(url)
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", (expr, body)
        return answer["data"]["result"]

    def alerts(self):
        status, body = get("http://127.0.0.1:%d/api/v2/alerts?active=true&silenced=false&inhibited=false" % self.am_port)
        assert status == 200, body
        return json.loads(body)

    def log(self, name):
        return (self.tmp / ("%s.log" % name)).read_text()[-4000:]

    def stop(self):
        for _, process in reversed(self.processes):
            process.terminate()
        for name, process in self.processes:
            try:
                code = process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                code = "killed"
            if name == "auditd":
                self.auditd_exit = code


@in_cluster
def test_metrics_exposition_passes_promtool(tmp_path):
    # a log with DML in it (a fresh cluster has none): every metric family then has series to lint
    subprocess.run(["python", os.path.join(ROOT, "dev", "workload.py"), "--prefix", "it_metrics", "--rows", "40",
                    "--batch", "20", "--deletes", "4", "--out", str(tmp_path / "w.json")], check=True,
                   capture_output=True, timeout=300)
    port = free_port()
    serve = subprocess.Popen([AUDITD, "serve", "--state", str(tmp_path / "s"), "--listen", "127.0.0.1:%d" % port,
                              "--audit-interval", "3600", "--watch-restarts", "false"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: get("http://127.0.0.1:%d/healthz" % port)[0] == 200, 60, "auditd serve")
        exposition = wait_for(lambda: (lambda t: t if "auditd_consumer_lag_messages" in t else None)(
            get("http://127.0.0.1:%d/metrics" % port)[1]), 60, "lag metrics")
        check = subprocess.run(["promtool", "check", "metrics"], input=exposition, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        # a second writer on the same state directory is refused at once, naming this one
        second = subprocess.run([AUDITD, "run", "--once", "--state", str(tmp_path / "s")], capture_output=True,
                                text=True, timeout=30)
        assert second.returncode == 2 and "in use by pid %d (auditd serve)" % serve.pid in second.stderr, second.stderr
        # SIGTERM: graceful, exit 0 within 5 s
        started = time.time()
        serve.terminate()
        assert serve.wait(timeout=10) == 0, serve.stderr.read()[-2000:]
        assert time.time() - started < 5
    finally:
        serve.kill()


@in_cluster
def test_divergence_alert_fires_on_the_faulty_replica_and_resolves(tmp_path):
    c = SegmentedCollection("it_alert")
    stack = None
    try:
        a = c.insert("a", 300)
        c.flush()
        b = c.insert("b", 300)
        c.flush()
        deleted_ts = c.delete(a[:25] + b[:25])  # one delta log per sealed segment
        c.flush()
        c.wait_serving()
        c.wait_checkpoint_past(deleted_ts)
        c.wait_sealed_everywhere()
        stack = Stack(tmp_path, c.name)
        # clean first: both replicas healthy in Prometheus, nothing firing for this collection
        healthy = wait_for(lambda: (lambda r: r if len(r) == 2 and all(x["value"][1] == "1" for x in r) else None)(
            stack.query('auditd_replica_healthy{collection="%s"}' % c.name)), 120, "two healthy replicas")
        replicas = {x["metric"]["replica"] for x in healthy}
        assert stack.auditd("/readyz")["ready"] is True

        # the fault: querynode1's copy of a sealed segment's delta log replaced by another valid delta file
        deltas = c.segment_dirs("delta_log")
        assert len(deltas) == 2, deltas
        victim = sorted(glob.glob(os.path.join(deltas[0], "*")))
        donor = sorted(glob.glob(os.path.join(deltas[-1], "*")))
        backup = tmp_path / "backup"
        shutil.copytree(deltas[0], backup)
        for path in victim:
            shutil.copyfile(donor[0], path)
        restart_querynode1()

        # the restart's window: opened at the session change, closed once the replica serves every version
        window = wait_for(lambda: [r for r in stack.auditd("/v1/restarts")["restarts"] if r["collection"] == c.id],
                          180, "a restart window")
        assert window[0]["old_nodes"] and window[0]["down_ms"] > 0, window

        def confirmed_resurrection():
            findings = stack.auditd("/v1/findings?state=confirmed")["findings"]
            return [f for f in findings if f["collection"] == c.id and f["kind"] == "resurrected"]
        resurrected = wait_for(confirmed_resurrection, 300, "a confirmed resurrection")[0]
        faulty = str(resurrected["replica"])
        assert any(v.endswith(":21123") for v in resurrected["leaders"].values()), resurrected  # querynode1's
        (healthy_replica,) = replicas - {faulty}

        def fired():
            alerts = [a for a in stack.alerts() if a["labels"].get("collection") == c.name]
            by_prometheus = [a for a in alerts if a["labels"]["alertname"] == "AuditdReplicaDivergence"]
            pushed = [a for a in alerts if a["labels"]["alertname"] == "AuditdConfirmedFinding"]
            return (alerts, by_prometheus, pushed) if by_prometheus and pushed else None
        alerts, by_prometheus, pushed = wait_for(fired, 180, "the divergence alert in Alertmanager")
        assert {a["labels"]["replica"] for a in by_prometheus} == {faulty}, by_prometheus
        assert by_prometheus[0]["labels"]["kind"] == "resurrected" and by_prometheus[0]["labels"]["severity"] == "critical"
        assert c.name in by_prometheus[0]["annotations"]["summary"] and "auditd report" in \
            by_prometheus[0]["annotations"]["description"]
        assert {a["labels"]["replica"] for a in pushed} == {faulty}, pushed
        # no alert, from either path, names the healthy replica
        assert not [a for a in alerts if healthy_replica in (a["labels"].get("replica"), a["labels"].get("peer_replica"))]

        # the faulty replica never catches up (it serves more than the log): its window stays open
        assert [r for r in stack.auditd("/v1/restarts")["restarts"]
                if r["collection"] == c.id and str(r["replica"]) == faulty and not r["caught_up"]]

        # every panel of the dashboard queries without an error against this Prometheus
        dashboard = json.load(open(DASHBOARD))
        assert {v["name"] for v in dashboard["templating"]["list"]} >= {"collection", "replica", "pchannel"}
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", "1m").replace("$__range", "1h")
                expr = re.sub(r"\$\w+", ".*", expr)
                stack.query(expr)

        # restore the file and reload that replica: the finding resolves, so do the alerts
        for path in victim:
            shutil.copyfile(os.path.join(backup, os.path.basename(path)), path)
        restart_querynode1()
        wait_for(lambda: not confirmed_resurrection(), 300, "the finding to resolve")
        wait_for(lambda: not [a for a in stack.alerts() if a["labels"].get("collection") == c.name
                              and a["labels"]["alertname"] in ("AuditdReplicaDivergence", "AuditdConfirmedFinding")],
                 180, "the alerts to resolve")
        # the restored replica caught up: its window closed, and Prometheus has it in the histogram
        closed = wait_for(lambda: [r for r in stack.auditd("/v1/restarts")["restarts"]
                                   if r["collection"] == c.id and str(r["replica"]) == faulty and r["caught_up"]],
                          120, "the window to close")
        assert closed[0]["serving_ms"] and closed[0]["serving_behind_seconds"] is not None, closed
        count = wait_for(lambda: stack.query('sum(auditd_restart_serving_behind_seconds_count{collection="%s"})'
                                             % c.name), 60, "the restart histogram")
        assert float(count[0]["value"][1]) >= 1
    except Exception:
        if stack:
            print("auditd log:\n" + stack.log("auditd"))
        raise
    finally:
        if stack:
            stack.stop()
            assert stack.auditd_exit == 0, stack.log("auditd")
        c.drop()
