"""kill -9 at random moments while the shadow ingests a long log: the shadow stays exact.

A synthetic Milvus log (auditd-bench synth: 200,000 rows in 10-row inserts, deletes, upserts, records
written before the time tick that closes their window, time ticks) goes to the real broker. `auditd run
--once` is killed with SIGKILL 30 times at random moments; after each kill, `auditd verify --replay`
checks the shadow's bucket hashes against a recomputation and replays the log into an empty scratch shadow
that stops on every pchannel at the time tick the crashed shadow last committed: rows, tombstones and
bucket hashes must be equal. At the end the finished shadow must equal a fresh replay of the whole log.
"""
import shutil
import sqlite3
import os
import random
import signal
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, ".build", "debug")
AUDITD = os.environ.get("AUDITD_BIN", os.path.join(BUILD, "auditd"))

pytestmark = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")


def test_thirty_kill9_leave_the_shadow_equal_to_a_fresh_replay(tmp_path):
    prefix = "crash%08x-dml" % random.getrandbits(32)
    out = subprocess.run([os.path.join(BUILD, "auditd-bench"), "synth", "--rows", "200000", "--prefix", prefix],
                         capture_output=True, text=True, check=True).stdout
    assert "200000 rows" in out
    state, fresh = tmp_path / "crashed", tmp_path / "fresh"
    run = [AUDITD, "run", "--once", "--topic-prefix", prefix]
    rng = random.Random(11)
    killed_mid_run = 0
    for i in range(30):
        process = subprocess.Popen(run + ["--state", str(state)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.6))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed_mid_run += 1
        process.wait()
        if (state / "shadow.sqlite").exists():
            check = subprocess.run([AUDITD, "verify", "--replay", "--topic-prefix", prefix, "--state", str(state)],
                                   capture_output=True, text=True, timeout=300)
            assert check.returncode == 0, "after kill %d: %s" % (i, check.stdout + check.stderr)
    assert killed_mid_run >= 24  # the kills really interrupted ingestion
    subprocess.run(run + ["--state", str(state)], check=True, stderr=subprocess.DEVNULL, timeout=600)
    subprocess.run(run + ["--state", str(fresh)], check=True, stderr=subprocess.DEVNULL, timeout=600)
    compare = subprocess.run([AUDITD, "verify", "--state", str(state), "--against", str(fresh)],
                             capture_output=True, text=True)
    assert compare.returncode == 0, compare.stdout + compare.stderr
    report = subprocess.run([AUDITD, "report", "--json", "--state", str(state)], capture_output=True, text=True)
    assert '"live_rows"' in report.stdout and '"findings":[]' in report.stdout

    # The replay check can fail: one row's timestamp changed in a copy of the shadow is caught.
    tampered = tmp_path / "tampered"
    shutil.copytree(state, tampered)
    with sqlite3.connect(tampered / "shadow.sqlite") as db:
        db.execute("UPDATE rows SET hash = hash + 1 WHERE (coll, pk, ts, seq) IN "
                   "(SELECT coll, pk, ts, seq FROM rows LIMIT 1)")
    check = subprocess.run([AUDITD, "verify", "--replay", "--topic-prefix", prefix, "--state", str(tampered)],
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 1 and "live rows" in check.stdout, check.stdout + check.stderr
