"""`auditd serve` as the tests run it: a sidecar auditing every few seconds, read through its HTTP side
(/metrics, /readyz, /v1/findings) the way Prometheus and an operator would. Optionally inside a network
namespace of its own (then reached at `host`)."""
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

from test_alerting import free_port
from test_outage import AUDITD

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "suites"))
from lib.auditor import DATA_KINDS, names_port  # noqa: E402,F401  (the suites' own; tests take them from here)


class Sidecar:
    def __init__(self, tmp_path, *extra, ns=None, host="127.0.0.1", interval=5):
        self.port, self.host = free_port(), host
        self.log = open(tmp_path / "serve.log", "w")
        listen = ("0.0.0.0" if ns else "127.0.0.1") + ":%d" % self.port
        command = [AUDITD, "serve", "--state", str(tmp_path / "state"), "--listen", listen, "--audit-interval",
                   str(interval), *extra]
        if "--milvus" not in extra:
            command += ["--milvus", "127.0.0.1:19530"]
        self.process = subprocess.Popen((["ip", "netns", "exec", ns] if ns else []) + command, stdout=self.log,
                                        stderr=subprocess.STDOUT)

    def get(self, path):
        try:
            with urllib.request.urlopen("http://%s:%d%s" % (self.host, self.port, path), timeout=5) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def metrics(self):
        """{(name, frozenset(labels)): value} of the exposition."""
        out = {}
        for line in self.get("/metrics")[1].splitlines():
            found = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
            if found:
                labels = frozenset(re.findall(r'(\w+)="([^"]*)"', found.group(2) or ""))
                out[(found.group(1), labels)] = float(found.group(3))
        return out

    def findings(self, state="all"):
        return json.loads(self.get("/v1/findings?state=" + state)[1])["findings"]

    def states(self, collection):
        """The broker, auditd's own consumption and the collection's replicas, as the metrics say right now."""
        m = self.metrics()
        replicas = {dict(k[1])["replica"]: dict(k[1])["status"] for k, v in m.items()
                    if k[0] == "auditd_replica_status" and v == 1 and dict(k[1]).get("collection") == collection}
        consumer = sorted({dict(k[1])["status"] for k, v in m.items() if k[0] == "auditd_consumer_status" and v == 1})
        return {"kafka_reachable": m.get(("auditd_kafka_reachable", frozenset())), "consumer": consumer,
                "replicas": replicas}

    def wait_whole(self, collection, seconds):
        """Until ready, the broker reachable and both replicas of `collection` audited clean; returns the seconds."""
        started, deadline = time.time(), time.time() + seconds
        while True:
            assert self.process.poll() is None, "serve ended by itself"
            try:
                status, body = self.get("/readyz")
                now = self.states(collection)
            except OSError as error:  # not listening yet, or the link to it is being cut
                status, body, now = None, str(error), {}
            if status == 200 and len(now["replicas"]) == 2 and set(now["replicas"].values()) == {"clean"} \
                    and now["kafka_reachable"] == 1:
                return time.time() - started
            assert time.time() < deadline, "not whole after %d s: readyz %s %s; %s" % (seconds, status, body, now)
            time.sleep(1)

    def wait_finding(self, predicate, seconds):
        """Until a finding satisfies `predicate`; returns (it, seconds waited)."""
        started, deadline = time.time(), time.time() + seconds
        while True:
            assert self.process.poll() is None, "serve ended by itself"
            found = [f for f in self.findings() if predicate(f)]
            if found:
                return found[0], time.time() - started
            assert time.time() < deadline, "no such finding after %d s: %s" % (seconds, self.findings())
            time.sleep(1)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def shape(dev, port, match, rate, ns=None):
    """Holds `dev`'s egress to `rate` for packets whose `match` (sport or dport) is `port`, everything else
    untouched. This machine's kernel has no netem (nor prio, iptables or nftables: measured), but htb with a u32
    filter: a rate of a few kbit/s is a slow link, "8bit" (and a one-packet queue) a black hole."""
    tc = ["tc", "-n", ns] if ns else ["tc"]
    clear(dev, ns=ns)
    for args in (["qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "20"],
                 ["class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate", rate, "ceil", rate],
                 ["class", "add", "dev", dev, "parent", "1:", "classid", "1:20", "htb", "rate", "10gbit"],
                 ["qdisc", "add", "dev", dev, "parent", "1:10", "handle", "10:", "pfifo", "limit",
                  "1" if rate == "8bit" else "1000"],
                 ["filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip",
                  match, str(port), "0xffff", "flowid", "1:10"]):
        subprocess.run(tc + args, check=True, capture_output=True)


def clear(dev, ns=None):
    subprocess.run((["tc", "-n", ns] if ns else ["tc"]) + ["qdisc", "del", "dev", dev, "root"], capture_output=True)
