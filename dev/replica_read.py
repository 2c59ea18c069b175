#!/usr/bin/env python3
"""A second opinion on auditd's findings: reads given pks from every replica of a collection at one timestamp T,
each replica separately, without auditd's code.

It follows the verified recipe of ../shared/docs/replica-reads.md: the proxy's GetReplicas (with shard nodes),
then for each replica and each of its shards the shard leader's QueryNode/Query with a term expression on the
pk at mvcc_timestamp = guarantee_timestamp = T. Messages come from the project's .proto files (Milvus's field
numbers), compiled with Debian's protoc into a cache directory on first use: this process must not import
pymilvus (its own copies of common.proto & co. would clash in protobuf's descriptor pool).

    dev/replica_read.py --milvus 127.0.0.1:19530 --collection NAME --ts T --pks '["a","b"]'

prints {"collection_id", "pk_field", "replicas": [{"id", "nodes", "rows": {pk: ts}, "errors": [...]}]}.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROTOS = os.path.join(ROOT, "Sources", "Auditor", "MilvusProto")
MILVUS = "/milvus.proto.milvus.MilvusService/"
QUERYNODE = "/milvus.proto.query.QueryNode/Query"
RETRIEVE, DATA_SCOPE_ALL, INT64, VARCHAR = 506, 1, 5, 21


def compiled_protos():
    """The project's protos as Python modules (compiled once per content into the cache)."""
    names = sorted(n for n in os.listdir(PROTOS) if n.endswith(".proto"))
    digest = hashlib.sha256(b"".join(open(os.path.join(PROTOS, n), "rb").read() for n in names)).hexdigest()[:16]
    cache = os.path.join(os.environ.get("AUDITD_CACHE", os.path.expanduser("~/.cache/auditd")), "pyproto-" + digest)
    if not os.path.exists(os.path.join(cache, "query_pb2.py")):
        os.makedirs(cache + ".tmp", exist_ok=True)
        subprocess.run(["protoc", "-I", PROTOS, "--python_out=" + cache + ".tmp", *names], check=True)
        os.replace(cache + ".tmp", cache)
    sys.path.insert(0, cache)


def unary(grpc, channel, method, request, response_type, timeout):
    call = channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response_type.FromString)
    return call(request, timeout=timeout)


def read(milvus, collection, ts, pks, timeout=30.0):
    import grpc
    import common_pb2
    import milvus_pb2
    import plan_pb2
    import query_pb2

    proxy = grpc.insecure_channel(milvus)
    described = unary(grpc, proxy, MILVUS + "DescribeCollection",
                      milvus_pb2.DescribeCollectionRequest(collection_name=collection), milvus_pb2.DescribeCollectionResponse,
                      timeout)
    if described.status.error_code or described.status.code:
        raise RuntimeError("DescribeCollection %s: %s" % (collection, described.status.reason))
    pk = next(f for f in described.schema.fields if f.is_primary_key)
    replicas = unary(grpc, proxy, MILVUS + "GetReplicas",
                     milvus_pb2.GetReplicasRequest(collectionID=described.collectionID, with_shard_nodes=True),
                     milvus_pb2.GetReplicasResponse, timeout)
    if replicas.status.error_code or replicas.status.code:
        raise RuntimeError("GetReplicas %s: %s" % (collection, replicas.status.reason))

    values = [plan_pb2.GenericValue(int64_val=int(k)) if pk.data_type == INT64 else plan_pb2.GenericValue(string_val=str(k))
              for k in pks]
    plan = plan_pb2.PlanNode(
        query=plan_pb2.QueryPlanNode(
            predicates=plan_pb2.Expr(term_expr=plan_pb2.TermExpr(
                column_info=plan_pb2.ColumnInfo(field_id=pk.fieldID, data_type=pk.data_type, is_primary_key=True),
                values=values)),
            limit=len(pks) * 4 + 16),
        output_field_ids=[pk.fieldID, 1])
    out = {"collection_id": described.collectionID, "pk_field": pk.name, "ts": ts, "replicas": []}
    for n, replica in enumerate(sorted(replicas.replicas, key=lambda r: r.replicaID)):
        rows, errors = {}, []
        for shard in replica.shard_replicas:
            request = query_pb2.QueryRequest(
                req=query_pb2.RetrieveRequest(
                    base=common_pb2.MsgBase(msg_type=RETRIEVE, msgID=n + 1, targetID=shard.leaderID),
                    reqID=n + 1, collectionID=described.collectionID, serialized_expr_plan=plan.SerializeToString(),
                    output_fields_id=[pk.fieldID, 1], mvcc_timestamp=ts, guarantee_timestamp=ts,
                    limit=len(pks) * 4 + 16),
                dml_channels=[shard.dm_channel_name], from_shard_leader=False, scope=DATA_SCOPE_ALL)
            try:
                with grpc.insecure_channel(shard.leader_addr) as leader:
                    result = unary(grpc, leader, QUERYNODE, request, query_pb2.RetrieveResults, timeout)
            except grpc.RpcError as error:
                errors.append("%s %s: %s" % (shard.dm_channel_name, shard.leader_addr, error.code()))
                continue
            if result.status.error_code or result.status.code:
                errors.append("%s %s: %s" % (shard.dm_channel_name, shard.leader_addr, result.status.reason))
                continue
            ids = list(result.ids.int_id.data) if result.ids.HasField("int_id") else list(result.ids.str_id.data)
            stamps = next((list(f.scalars.long_data.data) for f in result.fields_data if f.field_id == 1), [])
            for i, key in enumerate(ids):
                rows[str(key)] = stamps[i] if i < len(stamps) else None
        out["replicas"].append({"id": replica.replicaID, "nodes": sorted(replica.node_ids), "rows": rows,
                                "errors": errors})
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--milvus", default="127.0.0.1:19530")
    parser.add_argument("--collection", required=True)
    parser.add_argument("--ts", type=int, required=True)
    parser.add_argument("--pks", required=True, help="JSON list of primary keys")
    args = parser.parse_args()
    compiled_protos()
    print(json.dumps(read(args.milvus, args.collection, args.ts, json.loads(args.pks))))


if __name__ == "__main__":
    main()
