"""`auditd tail` on the real cluster, end to end through the CLI (run via dev/test)."""
import collections
import json
import os
import random
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
AUDITD = os.environ.get("AUDITD_BIN", os.path.join(ROOT, ".build", "debug", "auditd"))

pytestmark = pytest.mark.skipif("AUDITD_BROKERS" not in os.environ, reason="needs dev/cluster up + dev/cluster exec")


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    prefix = "it_cli_%08x" % random.getrandbits(32)
    out = tmp_path_factory.mktemp("wl") / "expected.json"
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "dev", "workload.py"), "--prefix", prefix, "--rows", "2000",
         "--batch", "20", "--deletes", "200", "--out", str(out)],
        check=True,
    )
    return json.load(open(out))


def tail(*args):
    result = subprocess.run([AUDITD, "tail", *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result


def test_json_tail_yields_exactly_the_written_rows(workload):
    lines = [json.loads(line) for line in tail("--json", "--until-end").stdout.splitlines()]
    by_type = collections.Counter(o["type"] for o in lines)
    assert by_type["undecodable"] == 0
    assert by_type["timetick"] > 0 and by_type["create_collection"] >= 4
    for c in workload["collections"]:
        # REPLICA=2: two replica groups, each served by its own QueryNode
        nodes = c["replica_nodes"]
        assert len(nodes) == 2 and all(len(g) == 1 for g in nodes) and nodes[0] != nodes[1], nodes
        inserts = [o for o in lines if o["type"] == "insert" and o["collection_id"] == c["id"]]
        deletes = [o for o in lines if o["type"] == "delete" and o["collection_id"] == c["id"]]
        want = {r["pk"]: r["row_hash"] for r in c["rows"]}
        got = collections.defaultdict(list)
        for o in inserts:
            got[o["pk"]].append(o)
            for key in ("pchannel", "offset", "collection_id", "partition_id", "shard", "pk", "ts", "row_hash"):
                assert key in o
            assert o["shard"].startswith(o["pchannel"] + "_%d" % c["id"])
        assert len(inserts) == len(want) == 2000
        assert set(got) == set(want)
        assert {pk: rows[0]["row_hash"] for pk, rows in got.items()} == want
        assert sorted(map(str, (o["pk"] for o in deletes))) == sorted(map(str, c["deleted"]))
        assert all(d["ts"] > got[d["pk"]][0]["ts"] for d in deletes)
        # the 20-row batches were split across the 2 shards: no insert message holds more than 20 rows
        per_message = collections.Counter((o["pchannel"], o["offset"]) for o in inserts)
        assert max(per_message.values()) <= 20 and len(per_message) >= 2000 // 20


def test_collection_filter_and_text_mode(workload):
    c = workload["collections"][0]
    lines = [json.loads(line) for line in tail("--json", "--until-end", "--collection", c["name"]).stdout.splitlines()]
    assert lines and all(o.get("collection_id") == c["id"] for o in lines if o["type"] != "undecodable")
    assert sum(1 for o in lines if o["type"] == "insert") == 2000
    by_id = tail("--until-end", "--collection", str(c["id"]))
    text = by_id.stdout.splitlines()
    assert text and all(str(c["id"]) in line for line in text)
    assert sum(int(line.split(" rows=")[1].split()[0]) for line in text if " insert " in line) == 2000
    assert "rows inserted=2000" in by_id.stderr


def test_bad_flag_is_one_line_naming_it():
    result = subprocess.run([AUDITD, "tail", "--brokers", "nocolon"], capture_output=True, text=True)
    assert result.returncode != 0
    assert "--brokers" in result.stderr


def test_version_names_the_runtime_librdkafka():
    out = subprocess.run([AUDITD, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("auditd ") and "librdkafka 2." in out
