"""Renders milvus.yaml for the local cluster from the template in the milvus==2.3.5 wheel.

usage: render_milvus_yaml.py TEMPLATE RUN_DIR KAFKA_BROKER ETCD_ENDPOINT
Writes RUN_DIR/conf/milvus.yaml and RUN_DIR/conf-querynode2/milvus.yaml (second QueryNode port).
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
put("queryNode.port", 21133)
os.makedirs(os.path.join(run, "conf-querynode2"), exist_ok=True)
with open(os.path.join(run, "conf-querynode2", "milvus.yaml"), "w") as out:
    yaml.safe_dump(config, out, sort_keys=False)
