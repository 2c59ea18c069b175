"""Broker outages while `auditd run` follows the log.

- frozen broker (SIGSTOP for longer than librdkafka's request timeouts, then SIGCONT): auditd reports it
  and then resumes, skipping and duplicating nothing (the shadow equals a fresh replay).
- (test_zz_broker_restart.py) a broker that comes back without its log is a log regression per pchannel.
"""
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
FAST_TIMEOUTS = ["--kafka-property", "socket.timeout.ms=3000", "--kafka-property", "socket.connection.setup.timeout.ms=3000"]

pytestmark = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")


def synth(prefix, rows):
    done = subprocess.run([os.path.join(BUILD, "auditd-bench"), "synth", "--rows", str(rows), "--prefix", prefix],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_frozen_broker_is_reported_then_nothing_is_skipped_or_duplicated(tmp_path):
    prefix = "outage%08x-dml" % random.getrandbits(32)
    synth(prefix, 20000)
    state, fresh = tmp_path / "follow", tmp_path / "fresh"
    log = open(tmp_path / "run.log", "w")
    follower = subprocess.Popen(
        [AUDITD, "run", "--topic-prefix", prefix, "--state", str(state), "--log-level", "info"] + FAST_TIMEOUTS,
        stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(2)
        subprocess.run([CLUSTER, "freeze", "kafka"], check=True)
        time.sleep(12)  # > socket.timeout.ms: requests time out, librdkafka reports the broker down
        subprocess.run([CLUSTER, "thaw", "kafka"], check=True)
        time.sleep(12)  # a rediscovery round (every 5 s) after the thaw notices the broker is back
    finally:
        subprocess.run([CLUSTER, "thaw", "kafka"], check=False)
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=60) == 0  # SIGTERM: finish the batch, commit, exit 0
    log.close()
    text = open(tmp_path / "run.log").read()
    assert "librdkafka error" in text and ("timed out" in text.lower() or "down" in text.lower()), text[-2000:]
    subprocess.run([AUDITD, "run", "--once", "--topic-prefix", prefix, "--state", str(state)], check=True,
                   stderr=subprocess.DEVNULL)
    subprocess.run([AUDITD, "run", "--once", "--topic-prefix", prefix, "--state", str(fresh)], check=True,
                   stderr=subprocess.DEVNULL)
    compare = subprocess.run([AUDITD, "verify", "--state", str(state), "--against", str(fresh)],
                             capture_output=True, text=True)
    assert compare.returncode == 0, compare.stdout
