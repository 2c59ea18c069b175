"""Keeps the cluster young for the CLI tests when dev/test started it (AUDITD_TEST_CLUSTER_MAX_AGE, seconds).

The Kafka-API broker (Tansu) keeps its whole log in memory, and Milvus writes time ticks to every pchannel all the
time: the broker answers ever more slowly as the cluster ages (measured: the two disk-full tests take 16-18 s on a
fresh cluster, 82-146 s half an hour into CI). Before a test module starts on a cluster older than the limit, the
cluster is replaced by a fresh one (`dev/cluster down` + `up`); the old one's logs are kept beside it. Modules never
depend on another module's collections or logs."""
import os
import shutil
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLUSTER = os.path.join(ROOT, "dev", "cluster")
RUN = os.environ.get("AUDITD_CLUSTER_DIR", "/tmp/auditd-cluster")


def cluster_age():
    """Seconds since `dev/cluster up` (it writes RUN/mode once), or None without a cluster."""
    try:
        return time.time() - os.path.getmtime(os.path.join(RUN, "mode"))
    except OSError:
        return None


@pytest.fixture(scope="module", autouse=True)
def young_cluster():
    limit = os.environ.get("AUDITD_TEST_CLUSTER_MAX_AGE")
    age = cluster_age()
    if limit and "AUDITD_BROKERS" in os.environ and age is not None and age > float(limit):
        kept = "%s.logs/%s" % (RUN, time.strftime("%H%M%S"))
        shutil.copytree(os.path.join(RUN, "logs"), kept, dirs_exist_ok=True)
        print("conftest: cluster up for %.0f s (limit %s): a fresh one; old logs in %s" % (age, limit, kept),
              file=sys.stderr)
        subprocess.run([CLUSTER, "down"], check=True, capture_output=True)
        subprocess.run([CLUSTER, "up"], check=True, capture_output=True)
    yield
