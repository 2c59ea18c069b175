"""Runs last: restarting the in-memory broker wipes every topic (Milvus's too).

A broker that comes back with its log gone must be reported as a log regression for every pchannel,
never silently re-read from offset 0 as new data — both when auditd starts after the wipe and when it
is following at the time."""
import json
import os
import random
import signal
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, ".build", "debug")
AUDITD = os.environ.get("AUDITD_BIN", os.path.join(BUILD, "auditd"))
CLUSTER = os.path.join(ROOT, "dev", "cluster")

pytestmark = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")


def test_wiped_broker_log_is_a_regression_per_pchannel(tmp_path):
    prefix = "wipe%08x-dml" % random.getrandbits(32)
    subprocess.run([os.path.join(BUILD, "auditd-bench"), "synth", "--rows", "5000", "--prefix", prefix],
                   check=True, capture_output=True)
    stopped, following = tmp_path / "stopped", tmp_path / "following"
    subprocess.run([AUDITD, "run", "--once", "--topic-prefix", prefix, "--state", str(stopped)], check=True,
                   stderr=subprocess.DEVNULL)
    follower = subprocess.Popen([AUDITD, "run", "--topic-prefix", prefix, "--state", str(following)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(5)
    subprocess.run([CLUSTER, "restart", "kafka"], check=True)
    # the new log: fewer records than auditd consumed
    subprocess.run([os.path.join(BUILD, "auditd-bench"), "synth", "--rows", "100", "--prefix", prefix],
                   check=True, capture_output=True)
    time.sleep(8)
    follower.send_signal(signal.SIGTERM)
    assert follower.wait(timeout=60) == 0
    subprocess.run([AUDITD, "run", "--once", "--topic-prefix", prefix, "--state", str(stopped)], check=True,
                   stderr=subprocess.DEVNULL)
    for state in (stopped, following):
        result = subprocess.run([AUDITD, "report", "--json", "--state", str(state)], capture_output=True, text=True)
        assert result.returncode == 1  # confirmed findings
        report = json.loads(result.stdout)
        regressions = {f["pchannel"] for f in report["findings"] if f["kind"] == "log_regression"}
        assert regressions == {prefix + "_0", prefix + "_1"}, report["findings"]
        assert all(p["epoch"] == 1 for p in report["pchannels"])


def test_broker_wipe_loses_unflushed_rows_on_a_restarted_replica_and_everywhere_once_the_datanode_dies(tmp_path):
    """Fault recipes 4 and 5 (../shared/docs/fault-injection.md): (c) the broker loses its log while rows are
    not flushed and one QueryNode restarts: that replica misses exactly those rows (the other one still has
    them), and the wipe is a log finding; a flush heals it. (d) the DataNode dies before that flush: the rows
    are gone from both replicas — a loss only a tap of the log can see."""
    import sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_faults import SegmentedCollection, audit, cluster, faults

    # A fresh cluster: after a wipe, Milvus's consumers wait silently until the new log grows past the
    # offsets they had (fault-injection.md). On a cluster that has run for a while (time ticks on every
    # pchannel) that takes many minutes; on a young one, seconds. (This is the last test: nothing after it
    # needs the old cluster.)
    subprocess.run([CLUSTER, "down"], check=True, capture_output=True)
    subprocess.run([CLUSTER, "up"], check=True, capture_output=True)

    healed, lost = SegmentedCollection("it_wipe_flushed"), SegmentedCollection("it_wipe_lost")
    state = tmp_path / "state"
    try:
        measured = faults.recipe_broker_wipe(
            healed, lost, lambda names, *extra: audit(state, names[0], *[a for n in names[1:] for a in ("--collection", n)], *extra),
            cluster)
        print(measured)
    finally:
        healed.drop()
        lost.drop()
