"""Renders milvus.yaml for the local cluster from the template in the milvus==2.3.5 wheel.

usage: render_milvus_yaml.py TEMPLATE RUN_DIR KAFKA_BROKER ETCD_ENDPOINT
Writes RUN_DIR/conf/milvus.yaml and RUN_DIR/conf-querynodeN/milvus.yaml (N = 2..9: that QueryNode's port).
The deployment's own settings (deploy/milvus/user.yaml, also mounted by docker-compose.yml) are merged over the
template first; then what the local process cluster needs.
"""
import os
import re
import sys

import yaml

template, run, broker, etcd = sys.argv[1:5]
text = open(template).read()
explicit = {
    "etcd_data_dir": os.path.join(run, "etcd-embedded-unused"),
    "local_storage_dir": os.path.join(run, "data"),
    "rocksmq_data_dir": os.path.join(run, "rocksmq-unused"),
    "system_log_path": '""',
}


def placeholder(match):
    name = match.group(1).strip()
    default = match.group(3)
    if name in explicit:
        return explicit[name]
    return default.strip() if default is not None else '""'


# {{ name }}, {{ name: default }}, {{ name(type): default }}
text = re.sub(r"\{\{\s*([A-Za-z_]+)\s*(\([a-z]+\))?\s*(?::\s*([^}]*?))?\s*\}\}", placeholder, text)
config = yaml.safe_load(text)
DEPLOYMENT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy", "milvus", "user.yaml")


def merge(into, settings):
    for key, value in settings.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


with open(DEPLOYMENT) as f:
    merge(config, yaml.safe_load(f))


def put(path, value):
    node = config
    keys = path.split(".")
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value


put("etcd.endpoints", etcd)
put("etcd.use.embed", False)
put("mq.type", "kafka")
put("kafka.brokerList", broker)
put("common.storageType", "local")
put("localStorage.path", os.path.join(run, "data"))
put("minio.rootPath", "files")
put("common.session.ttl", 10)
put("common.gracefulStopTimeout", 5)
put("rootCoord.dmlChannelNum", 16)
put("proxy.port", 19530)
put("log.file.rootPath", "")
for role in ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode", "indexCoord"):
    put(role + ".ip", "127.0.0.1")

os.makedirs(os.path.join(run, "conf"), exist_ok=True)
with open(os.path.join(run, "conf", "milvus.yaml"), "w") as out:
    yaml.safe_dump(config, out, sort_keys=False)
for n in range(2, 10):  # querynodeN listens on 21123 + 10 (N - 1); querynode1 uses conf/
    put("queryNode.port", 21123 + 10 * (n - 1))
    os.makedirs(os.path.join(run, "conf-querynode%d" % n), exist_ok=True)
    with open(os.path.join(run, "conf-querynode%d" % n, "milvus.yaml"), "w") as out:
        yaml.safe_dump(config, out, sort_keys=False)
