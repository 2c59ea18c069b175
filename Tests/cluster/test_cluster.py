"""dev/cluster itself on the real cluster: loopback only, per-component control, readiness after restart."""
import json
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "dev"))

pytestmark = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")


def test_every_port_is_inside_a_namespace_with_only_loopback():
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(links) == 1 and ": lo:" in links[0], links
    listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, check=True).stdout
    assert "19530" in listening and "9092" in listening and "21123" in listening and "21133" in listening


def test_restarted_querynode_is_waited_for_until_counts_are_right():
    """A restarted QueryNode's replica answers wrong without errors for a while; wait_for_count waits it out."""
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, connections, utility

    import wait_count

    connections.connect(uri="http://127.0.0.1:19530")
    name = "it_restart_%d" % (time.time() * 1000)
    schema = CollectionSchema([FieldSchema("id", DataType.INT64, is_primary=True), FieldSchema("v", DataType.FLOAT_VECTOR, dim=8)])
    collection = Collection(name, schema, shards_num=2)
    collection.create_index("v", {"index_type": "FLAT", "metric_type": "L2", "params": {}})
    collection.load(replica_number=2)
    collection.insert([list(range(2000)), [[float(i % 7)] * 8 for i in range(2000)]])
    collection.flush()  # sealed segments: the restarted node must load them from storage
    collection.insert([list(range(2000, 2500)), [[1.0] * 8 for _ in range(500)]])  # and growing rows
    assert wait_count.wait_for_count(collection, 2500, consecutive=5, timeout=60)["ready_after_s"] < 60
    cluster = os.path.join(ROOT, "dev", "cluster")
    subprocess.run([cluster, "restart", "querynode2"], check=True)
    result = wait_count.wait_for_count(collection, 2500, consecutive=20, timeout=120)
    print("readiness after restart:", json.dumps(result))
    replicas = collection.get_replicas()
    assert len(replicas.groups) == 2
    utility.drop_collection(name)
