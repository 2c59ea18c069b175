"""A broker cut off by its network link going down while `auditd run` is mid-ingest.

The test builds its own two network namespaces joined by a veth pair: one holds a Kafka-API broker (the
cluster's Tansu binary on 10.231.0.1), the other auditd. Taking the veth link down for longer than
librdkafka's timeouts is a real network partition (no route, no FIN): auditd must report it, then resume
once the link is back, skipping and duplicating nothing (equal to a fresh replay).
"""
import json
import os
import random
import signal
import socket
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, ".build", "debug")
AUDITD = os.environ.get("AUDITD_BIN", os.path.join(BUILD, "auditd"))
CACHE = os.environ.get("AUDITD_CACHE", os.path.expanduser("~/.cache/auditd"))
NS_BROKER, NS_CLIENT = "auditd-lkb", "auditd-lkc"
BROKER = "10.231.0.1:9092"
FAST_TIMEOUTS = ["--kafka-property", "socket.timeout.ms=3000", "--kafka-property", "socket.connection.setup.timeout.ms=3000"]

pytestmark = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")


def sh(*args):
    subprocess.run(list(args), check=True, capture_output=True)


def in_client(*args):
    return ["ip", "netns", "exec", NS_CLIENT] + list(args)


@pytest.fixture
def partitioned_broker(tmp_path):
    for ns in (NS_BROKER, NS_CLIENT):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    sh("ip", "link", "add", "lkb0", "netns", NS_BROKER, "type", "veth", "peer", "name", "lkc0", "netns", NS_CLIENT)
    sh("ip", "-n", NS_BROKER, "addr", "add", "10.231.0.1/30", "dev", "lkb0")
    sh("ip", "-n", NS_CLIENT, "addr", "add", "10.231.0.2/30", "dev", "lkc0")
    sh("ip", "-n", NS_BROKER, "link", "set", "lkb0", "up")
    sh("ip", "-n", NS_CLIENT, "link", "set", "lkc0", "up")
    broker = subprocess.Popen(
        ["ip", "netns", "exec", NS_BROKER, os.path.join(CACHE, "tansu", "tansu"), "broker",
         "--listener-url", "tcp://" + BROKER, "--advertised-listener-url", "tcp://" + BROKER,
         "--storage-engine", "memory://tansu/"],
        stdout=open(tmp_path / "broker.log", "w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while subprocess.run(in_client("bash", "-c", "exec 3<>/dev/tcp/10.231.0.1/9092"),
                             capture_output=True).returncode != 0:
            assert time.time() < deadline and broker.poll() is None, "broker did not come up"
            time.sleep(0.1)
        yield
    finally:
        broker.kill()
        broker.wait()
        for ns in (NS_BROKER, NS_CLIENT):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def report(state):
    out = subprocess.run([AUDITD, "report", "--json", "--state", str(state)], capture_output=True, text=True)
    return json.loads(out.stdout)


def test_link_down_mid_ingest_is_reported_then_nothing_is_skipped_or_duplicated(tmp_path, partitioned_broker):
    prefix = "linkdown%08x-dml" % random.getrandbits(32)
    subprocess.run(in_client(os.path.join(BUILD, "auditd-bench"), "synth", "--rows", "200000", "--prefix", prefix,
                             "--brokers", BROKER), check=True, capture_output=True)
    state, fresh = tmp_path / "follow", tmp_path / "fresh"
    log = open(tmp_path / "run.log", "w")
    follower = subprocess.Popen(
        in_client(AUDITD, "run", "--brokers", BROKER, "--topic-prefix", prefix, "--state", str(state),
                  "--log-level", "info", *FAST_TIMEOUTS),
        stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(2.5)
        sh("ip", "-n", NS_CLIENT, "link", "set", "lkc0", "down")
        time.sleep(1)
        during = report(state)
        behind = [p for p in during["pchannels"] if p["offset"] < p["high_watermark"]]
        # librdkafka notices after socket.timeout.ms; auditd at its next rediscovery round, whose metadata
        # request then waits out its own 10 s timeout: poll for the report instead of guessing the delay.
        deadline = time.time() + 45
        cut_log = ""
        while "kafka unreachable" not in cut_log and time.time() < deadline:
            time.sleep(0.5)
            cut_log = open(tmp_path / "run.log").read()
        cut_report = report(state)["kafka"]
        sh("ip", "-n", NS_CLIENT, "link", "set", "lkc0", "up")
        deadline = time.time() + 120
        while any(p["offset"] < p["high_watermark"] for p in report(state)["pchannels"]):
            assert time.time() < deadline and follower.poll() is None, "auditd did not resume after the link came back"
            time.sleep(1)
    finally:
        sh("ip", "-n", NS_CLIENT, "link", "set", "lkc0", "up")
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=60) == 0  # SIGTERM: finish the batch, commit, exit 0
    log.close()
    assert behind, "the link went down after ingestion had finished: %s" % during["pchannels"]
    assert "kafka unreachable" in cut_log, cut_log[-3000:]
    assert cut_report["reachable"] is False and cut_report["unreachable_since_ms"] > 0, cut_report
    assert report(state)["kafka"] == {"reachable": True, "unreachable_since_ms": None}
    subprocess.run(in_client(AUDITD, "run", "--once", "--brokers", BROKER, "--topic-prefix", prefix,
                             "--state", str(fresh)), check=True, stderr=subprocess.DEVNULL)
    compare = subprocess.run([AUDITD, "verify", "--state", str(state), "--against", str(fresh)],
                             capture_output=True, text=True)
    assert compare.returncode == 0, compare.stdout
    assert report(state)["findings"] == []
