"""kill -9 of the sidecar while Milvus is written to, and inside auditd's own write transactions.

- `auditd serve` is killed with SIGKILL at random moments (AUDITD_CRASH_KILLS times, default 5 in CI; the figure
  in docs/reliability.md is from 100) while a seed workload writes through Milvus — 2048-d ReID rows in
  batches of 20, deletes, upserts, REPLICA=2 — and audit rounds run every 2 s. After every kill the shadow
  must equal a fresh replay of the log to the positions it committed (`auditd verify --replay`: rows,
  tombstones, bucket hashes) and serve starts again on it.
- kill -9 inside a schema migration's transaction (failpoint `migration=v5-replica-topology`): the steps
  before it stay, that one is rolled back, and the next start completes the schema.
- kill -9 inside an audit round's record transaction (failpoint `record`): nothing of the round is kept, the
  shadow verifies, and the next audit judges the collection clean.
"""
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from test_alerting import free_port, wait_for
from test_outage import AUDITD

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "dev"))
import workload  # noqa: E402

pytestmark = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")
KILLS = int(os.environ.get("AUDITD_CRASH_KILLS", "5"))


def verify_replay(state):
    started = time.time()
    check = subprocess.run([AUDITD, "verify", "--replay", "--state", str(state)], capture_output=True, text=True,
                           timeout=600)
    return check, time.time() - started


def test_kill9_of_serve_under_a_live_workload_leaves_the_shadow_equal_to_a_fresh_replay(tmp_path):
    load = workload.SeedWorkload("crashserve_%d" % random.randrange(10**6), 17, scalars=True)
    state = tmp_path / "state"
    rng = random.Random(23)
    replay_seconds = []
    try:
        for i in range(KILLS):
            port = free_port()
            serve = subprocess.Popen([AUDITD, "serve", "--state", str(state), "--listen", "127.0.0.1:%d" % port,
                                      "--audit-interval", "2", "--milvus", "127.0.0.1:19530"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.5, 4.0))
            assert serve.poll() is None, "serve ended by itself before kill %d (exit %s)" % (i, serve.returncode)
            serve.send_signal(signal.SIGKILL)
            serve.wait()
            load.running.clear()  # the log grows only while serve runs: replays stay short
            check, seconds = verify_replay(state)
            load.running.set()
            replay_seconds.append(seconds)
            assert check.returncode == 0, "after kill %d: %s" % (i, check.stdout + check.stderr)
    finally:
        load.close()
    print("kills: %d; workload: %s; verify --replay: median %.1f s, max %.1f s" % (
        KILLS, load.counts, sorted(replay_seconds)[len(replay_seconds) // 2], max(replay_seconds)))
    assert load.counts["inserted"] > 0 and load.counts["deleted"] > 0 and load.counts["upserted"] > 0
    with sqlite3.connect(state / "shadow.sqlite") as db:
        quarantined = db.execute("SELECT pchannel, off, reason FROM quarantine LIMIT 3").fetchall()
    assert not quarantined, "records quarantined across restarts: %s" % quarantined


def wait_for_failpoint(process, log, seconds=120):
    def reached():
        assert process.poll() is None, open(log).read()[-2000:]
        return "failpoint" in open(log).read()
    wait_for(reached, seconds, "the failpoint")


def test_kill9_inside_a_schema_migration_keeps_the_steps_before_and_the_next_start_completes_it(tmp_path):
    state, log = tmp_path / "state", tmp_path / "run.log"
    env = dict(os.environ, AUDITD_FAILPOINT="migration=v5-replica-topology:120")
    with open(log, "w") as out:
        run = subprocess.Popen([AUDITD, "run", "--once", "--state", str(state)], stdout=out, stderr=out, env=env)
    try:
        wait_for_failpoint(run, log)
        run.send_signal(signal.SIGKILL)
        run.wait()
    finally:
        run.kill()
    with sqlite3.connect(state / "shadow.sqlite") as db:
        steps = [r[0] for r in db.execute("SELECT identifier FROM grdb_migrations")]
    assert steps == ["v1-shadow", "v2-bootstrap", "v3-replica-findings", "v4-finding-lifecycle"], steps
    subprocess.run([AUDITD, "run", "--once", "--state", str(state)], check=True, capture_output=True, timeout=600)
    with sqlite3.connect(state / "shadow.sqlite") as db:
        steps = [r[0] for r in db.execute("SELECT identifier FROM grdb_migrations")]
    assert len(steps) >= 9 and steps[4] == "v5-replica-topology", steps
    check, _ = verify_replay(state)
    assert check.returncode == 0, check.stdout + check.stderr


def test_kill9_inside_an_audit_rounds_record_step_keeps_nothing_of_the_round(tmp_path):
    load = workload.SeedWorkload("crashrecord_%d" % random.randrange(10**6), 29)
    time.sleep(3)
    load.stop.set()
    load.thread.join()
    time.sleep(2)  # the last writes' time ticks reach the log
    state, log = tmp_path / "state", tmp_path / "audit.log"
    audit = [AUDITD, "audit", "--once", "--json", "--state", str(state), "--collection", load.name]
    try:
        with open(log, "w") as out:
            first = subprocess.Popen(audit, stdout=out, stderr=out,
                                     env=dict(os.environ, AUDITD_FAILPOINT="record:120"))
        try:
            wait_for_failpoint(first, log, 300)
            first.send_signal(signal.SIGKILL)
            first.wait()
        finally:
            first.kill()
        with sqlite3.connect(state / "shadow.sqlite") as db:
            assert db.execute("SELECT count(*) FROM audit_rounds").fetchone()[0] == 0  # the round rolled back whole
        check, _ = verify_replay(state)
        assert check.returncode == 0, check.stdout + check.stderr
        again = subprocess.run(audit, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    finally:
        load.stop.set()
        from pymilvus import utility
        utility.drop_collection(load.name)
