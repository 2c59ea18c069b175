"""The state directory failing under a running auditd, on a real file system (a small tmpfs mounted for the
test) while it follows a synthetic Milvus log on the real broker:

- disk full under `auditd run --once`: one line naming it, exit 2, and the shadow is an intact earlier commit
  (`verify --replay`: equal to a fresh replay to the same positions); with space again it resumes from that
  commit and ends equal to a fresh replay of the whole log (nothing skipped, nothing twice);
- disk full under `auditd serve`: it keeps running, says so in its log, on /readyz and in
  `auditd_state_writable`, and resumes by itself when there is space again;
- a read-only state directory: refused with one line (a file system cannot be remounted read-only under
  open files, so this is checked at start).
"""
import os
import random
import subprocess
import time

import pytest

from test_alerting import free_port, get, wait_for
from test_outage import AUDITD, synth

pytestmark = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def resize(mount, size, mode="rw"):
    subprocess.run(["mount", "-o", "remount,%s,size=%s" % (mode, size), str(mount)], check=True)


def test_disk_full_under_run_keeps_the_last_commit_and_resumes_from_it(tmp_path, small_disk):
    prefix = "diskfull%08x-dml" % random.getrandbits(32)
    synth(prefix, 60000)
    state = small_disk / "state"
    full = subprocess.run([AUDITD, "run", "--once", "--topic-prefix", prefix, "--state", str(state)],
                          capture_output=True, text=True, timeout=600)
    lines = [l for l in full.stderr.splitlines() if l.startswith("auditd run:")]
    assert full.returncode == 2, full.stderr[-2000:]
    assert len(lines) == 1 and "state directory: its file system is full" in lines[0], full.stderr[-2000:]
    assert "the last commit is intact" in lines[0]
    resize(small_disk, "256m")
    intact = subprocess.run([AUDITD, "verify", "--replay", "--topic-prefix", prefix, "--state", str(state)],
                            capture_output=True, text=True, timeout=600)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    committed = subprocess.run([AUDITD, "report", "--json", "--state", str(state)], capture_output=True, text=True)
    assert '"live_rows"' in committed.stdout  # something was committed before the disk filled
    subprocess.run([AUDITD, "run", "--once", "--topic-prefix", prefix, "--state", str(state)], check=True,
                   stderr=subprocess.DEVNULL, timeout=600)
    fresh = tmp_path / "fresh"
    subprocess.run([AUDITD, "run", "--once", "--topic-prefix", prefix, "--state", str(fresh)], check=True,
                   stderr=subprocess.DEVNULL, timeout=600)
    same = subprocess.run([AUDITD, "verify", "--state", str(state), "--against", str(fresh)], capture_output=True,
                          text=True)
    assert same.returncode == 0, same.stdout + same.stderr


def test_serve_reports_a_full_state_directory_and_resumes_by_itself(tmp_path, small_disk):
    prefix = "diskserve%08x-dml" % random.getrandbits(32)
    synth(prefix, 60000)
    state = small_disk / "state"
    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    serve = subprocess.Popen([AUDITD, "serve", "--topic-prefix", prefix, "--state", str(state), "--listen",
                              "127.0.0.1:%d" % port, "--audit-interval", "3600", "--watch-restarts", "false"],
                             stdout=log, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port

    def metric(name):
        for line in get(url + "/metrics")[1].splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def unwritable(why):
        status, body = get(url + "/readyz")
        return status == 503 and "state directory cannot be written: " + why in body and \
            metric("auditd_state_writable") == 0

    try:
        wait_for(lambda: get(url + "/healthz")[0] == 200, 60, "auditd serve")
        wait_for(lambda: unwritable("its file system is full"), 120, "/readyz and the metric to name the full disk")
        assert serve.poll() is None  # still running
        resize(small_disk, "256m")
        wait_for(lambda: metric("auditd_state_writable") == 1, 60, "writable again")
        serve.terminate()
        assert serve.wait(timeout=30) == 0
    finally:
        serve.kill()
        log.close()
    # a read-only state directory (a remount that needs no open file: serve is stopped): refused in one line
    resize(small_disk, "256m", "ro")
    refused = subprocess.run([AUDITD, "run", "--once", "--topic-prefix", prefix, "--state", str(state)],
                             capture_output=True, text=True, timeout=120)
    lines = [l for l in refused.stderr.splitlines() if l.startswith("auditd run:")]
    assert refused.returncode == 2 and len(lines) == 1 and str(state) in lines[0], refused.stderr[-2000:]
    resize(small_disk, "256m", "rw")
    text = open(tmp_path / "serve.log").read()
    assert "state directory cannot be written" in text and "state directory writable again" in text, text[-3000:]
    # everything written is in the shadow, once: it equals a fresh replay of the whole log
    fresh = tmp_path / "fresh"
    subprocess.run([AUDITD, "run", "--once", "--topic-prefix", prefix, "--state", str(fresh)], check=True,
                   stderr=subprocess.DEVNULL, timeout=600)
    subprocess.run([AUDITD, "run", "--once", "--topic-prefix", prefix, "--state", str(state)], check=True,
                   stderr=subprocess.DEVNULL, timeout=600)
    same = subprocess.run([AUDITD, "verify", "--state", str(state), "--against", str(fresh)], capture_output=True,
                          text=True)
    assert same.returncode == 0, same.stdout + same.stderr
