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
