"""Faults in the network and the broker while `auditd serve` audits a collection under a live workload.

auditd runs in a network namespace of its own behind a veth pair; TCP relays (dev/forward.py) on both ends carry
its traffic to the broker, the proxy, etcd and both QueryNodes, so `tc` on the veth — htb with a u32 port filter
(this kernel has no netem) — slows or cuts one of them at a time for auditd only (Milvus itself is untouched
unless the fault is the broker's
own). Each fault must give a lag state, an unreachable broker or `replica_unavailable` — never a data finding —
and auditd must recover by itself once it ends: ready again, both replicas audited clean, the broker reachable.
The times to recover are printed (`pytest -s`) for docs/reliability.md.

Opt-in (about 4 minutes): `AUDITD_LONG_TESTS=1`, or `dev/test --long`. CI keeps a frozen broker (test_outage) and
a dead and a lagging replica (test_fault_matrix) within its time budget.
"""
import os
import random
import subprocess
import sys
import time

import pytest

from sidecar import DATA_KINDS, Sidecar, clear, names_port, shape
from test_outage import CLUSTER, FAST_TIMEOUTS

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "dev"))
import workload  # noqa: E402
NS, NEAR, FAR, HOST, PEER = "auditd-nf", "nfa0", "nfb0", "10.232.0.1", "10.232.0.2"
BROKER, PROXY, ETCD, QUERYNODE1, QUERYNODE2 = 9092, 19530, 2379, 21123, 21133

pytestmark = [
    pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec"),
    pytest.mark.skipif(os.environ.get("AUDITD_LONG_TESTS") != "1", reason="opt-in: AUDITD_LONG_TESTS=1 (dev/test --long)"),
]


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


class Link:
    """The veth pair between the cluster's namespace (NEAR, HOST) and auditd's (FAR, PEER), with a rate limit per port."""

    def __init__(self, tmp_path):
        sh("ip", "netns", "del", NS, check=False)
        sh("ip", "netns", "add", NS)
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        sh("ip", "link", "del", NEAR, check=False)
        sh("ip", "link", "add", NEAR, "type", "veth", "peer", "name", FAR, "netns", NS)
        sh("ip", "addr", "add", HOST + "/30", "dev", NEAR)
        sh("ip", "-n", NS, "addr", "add", PEER + "/30", "dev", FAR)
        sh("ip", "link", "set", NEAR, "up")
        sh("ip", "-n", NS, "link", "set", FAR, "up")
        ports = [BROKER, PROXY, ETCD, QUERYNODE1, QUERYNODE2]
        forward = [sys.executable, os.path.join(ROOT, "dev", "forward.py")]
        self.relays = [
            # etcd and the broker listen on 127.0.0.1 only (Milvus's roles listen everywhere: reached directly)
            subprocess.Popen(forward + ["%s:%d=127.0.0.1:%d" % (HOST, p, p) for p in (BROKER, ETCD)],
                             stdout=open(tmp_path / "relay-near.log", "w"), stderr=subprocess.STDOUT),
            subprocess.Popen(["ip", "netns", "exec", NS] + forward + ["127.0.0.1:%d=%s:%d" % (p, HOST, p) for p in ports],
                             stdout=open(tmp_path / "relay-far.log", "w"), stderr=subprocess.STDOUT),
        ]
        deadline = time.time() + 20
        while sh("ip", "netns", "exec", NS, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/%d" % PROXY,
                 check=False).returncode != 0:
            assert time.time() < deadline, "the relays did not come up"
            time.sleep(0.2)

    def shape(self, port, rate):
        """Everything to and from `port` (both directions) held to `rate`, nothing else."""
        shape(NEAR, port, "sport", rate)
        shape(FAR, port, "dport", rate, ns=NS)

    def clear(self):
        clear(NEAR)
        clear(FAR, ns=NS)

    def close(self):
        self.clear()
        for relay in self.relays:
            relay.kill()
            relay.wait()
        sh("ip", "link", "del", NEAR, check=False)
        sh("ip", "netns", "del", NS, check=False)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("netfaults")
    link = Link(tmp)
    load = workload.SeedWorkload("netfault_%d" % random.randrange(10**6), 41)
    sidecar = Sidecar(tmp, "--brokers", "127.0.0.1:%d" % BROKER, "--milvus", "127.0.0.1:%d" % PROXY, "--etcd",
                      "127.0.0.1:%d" % ETCD, *FAST_TIMEOUTS, ns=NS, host=PEER)
    try:
        rig = type("Rig", (), dict(link=link, load=load, sidecar=sidecar, name=load.name))
        sidecar.wait_whole(rig.name, 300)
        yield rig
    finally:
        sidecar.stop()
        load.close()
        link.close()


def run_fault(rig, what, apply, heal, seconds, toggle=None):
    """Applies a fault for `seconds` (with `toggle=(on, off)`: on for `on` s, off for `off` s, again), sampling every
    2 s; heals it and waits until auditd is whole again. No data finding may have appeared since the start."""
    started_ms = int(time.time() * 1000)
    seen = []

    def sample_until(until):
        while time.time() < until:
            try:
                seen.append(rig.sidecar.states(rig.name))
            except OSError as error:
                seen.append({"http": str(error)})
            time.sleep(2)

    end = time.time() + seconds
    try:
        while time.time() < end:
            apply()
            sample_until(min(end, time.time() + (toggle[0] if toggle else seconds)))
            if toggle:
                heal()
                sample_until(min(end, time.time() + toggle[1]))
    finally:
        heal()
    recovered = rig.sidecar.wait_whole(rig.name, 240)
    data = [f for f in rig.sidecar.findings() if f["kind"] in DATA_KINDS and f["first_seen_ms"] >= started_ms]
    print("\n%s: %d s; seen %s; whole again %.1f s after it ended; data findings %d" % (
        what, seconds, summarize(seen), recovered, len(data)))
    assert not data, "%s gave data findings: %s" % (what, data)
    return seen


def summarize(seen):
    kinds = {}
    for s in seen:
        for key in ("kafka_reachable",):
            kinds.setdefault(key, set()).add(s.get(key))
        kinds.setdefault("consumer", set()).update(s.get("consumer", []))
        kinds.setdefault("replicas", set()).update(s.get("replicas", {}).values())
    return {k: sorted(str(x) for x in v) for k, v in kinds.items()}


def test_a_slow_broker_link_gives_no_data_finding(rig):
    run_fault(rig, "broker link held to 256 kbit/s", lambda: rig.link.shape(BROKER, "256kbit"), rig.link.clear, 20)


def test_a_broker_paused_past_librdkafkas_timeouts_is_unreachable_then_recovers(rig):
    seen = run_fault(rig, "broker paused (SIGSTOP) 40 s", lambda: sh(CLUSTER, "freeze", "kafka"),
                     lambda: sh(CLUSTER, "thaw", "kafka"), 40)
    assert any(s.get("kafka_reachable") == 0 for s in seen), seen


def test_etcd_unreachable_gives_no_data_finding(rig):
    run_fault(rig, "etcd unreachable (black-holed)", lambda: rig.link.shape(ETCD, "8bit"), rig.link.clear, 20)


def test_a_querynode_reachable_part_of_the_time_is_unavailable_never_a_data_finding(rig):
    # gone 30 s of every 40 s: longer than a read's deadline plus the unreachable grace (10 s + 10 s), so a round
    # in a gap must say so (the finding is the evidence; the sampled status may fall between rounds); shorter gaps
    # are ridden out (reads retried within the grace: no finding at all)
    started_ms = int(time.time() * 1000)
    seen = run_fault(rig, "querynode2 black-holed 30 s of every 40 s", lambda: rig.link.shape(QUERYNODE2, "8bit"),
                     rig.link.clear, 80, toggle=(30, 10))
    statuses = {v for s in seen for v in s.get("replicas", {}).values()}
    unavailable = [f for f in rig.sidecar.findings() if f["kind"] == "replica_unavailable"
                   and f["first_seen_ms"] >= started_ms and names_port(f, QUERYNODE2)]
    assert unavailable or statuses & {"unavailable", "recovering", "not_audited"}, (seen, rig.sidecar.findings())
    assert not [f for f in rig.sidecar.findings() if f["first_seen_ms"] >= started_ms and names_port(f, QUERYNODE1)]


def test_a_querynode_gone_for_less_than_the_grace_is_ridden_out(rig):
    seen = run_fault(rig, "querynode2 black-holed 8 s of every 16 s", lambda: rig.link.shape(QUERYNODE2, "8bit"),
                     rig.link.clear, 32, toggle=(8, 8))
    assert {v for s in seen for v in s.get("replicas", {}).values()} <= {"clean"}, seen
