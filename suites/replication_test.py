"""replication_test: REPLICA=2 for the ReID workload — by the database property where the server honours it,
else per collection — verified from GetReplicas (two groups on distinct QueryNodes) and by auditd (both replicas
audited clean against the log)."""
import time

import grpc
import numpy as np

import workload

PROPERTY = "database.replica.number"


def _field(number, payload):
    key = (number << 3) | 2
    return bytes([key]) + _varint(len(payload)) + payload


def _varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data, i):
    value, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def _status(data):
    """common.Status → (error_code, reason, code)."""
    fields, i = {}, 0
    while i < len(data):
        number, wire = data[i] >> 3, data[i] & 7
        i += 1
        if wire == 0:
            fields[number], i = _read_varint(data, i)
        elif wire == 2:
            length, i = _read_varint(data, i)
            fields[number] = data[i:i + length].decode(errors="replace")
            i += length
        else:
            break
    return fields.get(1, 0), fields.get(2, ""), fields.get(3, 0)


def create_database_with_replicas(milvus, name, replicas):
    """CreateDatabase{db_name, properties=[{database.replica.number: N}]} as Milvus ≥ 2.4 clients send it
    (pymilvus 2.3 has no properties argument): raw gRPC with the request encoded here."""
    pair = _field(1, PROPERTY.encode()) + _field(2, str(replicas).encode())
    request = _field(2, name.encode()) + _field(3, pair)
    with grpc.insecure_channel(milvus) as channel:
        call = channel.unary_unary("/milvus.proto.milvus.MilvusService/CreateDatabase")
        return _status(call(request, timeout=30))


def replica_groups(collection):
    return [sorted(g.group_nodes) for g in collection.get_replicas().groups]


def run(ctx):
    ctx.test("replication_test", "replica_factor_two", lambda t: replica_factor_two(ctx, t))


def replica_factor_two(ctx, t):
    from pymilvus import Collection, connections, db, utility
    ctx.connect()
    rows = 200 if ctx.quick else 2000
    database = ctx.prefix + "replicated"
    name = ctx.prefix + "reid"
    alias = "replication"
    try:
        with t.step("database created with %s=2" % PROPERTY) as s:
            code, reason, status = create_database_with_replicas(ctx.cluster.milvus, database, 2)
            s.measured["create_database"] = "error_code %d code %d %s" % (code, status, reason)
            assert code == 0 and status == 0, "CreateDatabase with the property failed: %s" % reason
            assert database in db.list_database(), "database not listed after CreateDatabase"

        connections.connect(alias=alias, uri="http://%s" % ctx.cluster.milvus, db_name=database, timeout=30)
        with t.step("collection with the ReID schema (varchar pk max_length 100, 2048-d), index") as s:
            c = Collection(name, workload.reid_schema(2048), shards_num=2, using=alias)
            c.create_index("embedding", {"index_type": "IVF_FLAT", "metric_type": "IP", "params": {"nlist": 64}})
            pk = next(f for f in c.schema.fields if f.is_primary)
            assert pk.params.get("max_length") == 100 and c.schema.fields[1].params.get("dim") == 2048

        with t.step("replica factor from the database property, or collection-level replica_number=2") as s:
            c.load(timeout=300)  # no replica_number: the database property decides where it is honoured
            groups = replica_groups(c)
            s.measured["replicas_from_property"] = len(groups)
            if len(groups) == 2:
                path = "database property %s (honoured by the server)" % PROPERTY
            else:
                # Milvus 2.3.5 accepts the request and ignores the property (proto3 drops the unknown field):
                # the collection loads with 1 replica. Fall back to the collection-level setting.
                c.release()
                c.load(replica_number=2, timeout=300)
                path = "collection-level replica_number=2 (server %s ignores %s: loaded with %d replica)" % (
                    utility.get_server_version(using=alias), PROPERTY, len(groups))
            s.measured["path"] = path
            t.measured["replication_path"] = path

        with t.step("%d ReID rows inserted in batches of 20, flushed" % rows) as s:
            rng, nprng = ctx.rng, np.random.default_rng(ctx.seed)
            started = time.time()
            for start in range(0, rows, 20):
                c.insert([workload.reid_row(rng, nprng, i, 2048) for i in range(start, min(rows, start + 20))])
            c.flush()
            s.measured["rows_per_s"] = round(rows / (time.time() - started), 1)

        with t.step("search answers (top-k 10)") as s:
            vec = workload.rng_vector(np.random.default_rng(1), 2048)
            hits = c.search([vec], "embedding", {"metric_type": "IP", "params": {"nprobe": 16}}, limit=10,
                            timeout=60)
            assert len(hits[0]) == 10, "search returned %d hits" % len(hits[0])

        with t.step("GetReplicas: 2 replica groups on distinct QueryNodes") as s:
            groups = replica_groups(c)
            s.measured["groups"] = groups
            assert len(groups) == 2, groups
            assert not set(groups[0]) & set(groups[1]), "replica groups share a QueryNode: %s" % groups

        with t.step("auditd: 2 of 2 replicas audited clean against the log") as s:
            verdict = ctx.auditor("replication").audit(name, collection_id=c.describe()["collection_id"])
            s.verdict = verdict.as_dict()
            assert verdict.clean, verdict
            assert verdict.coverage.get("replicas") == 2 == verdict.coverage.get("replicas_total"), verdict.coverage
            assert verdict.coverage.get("rows") == 2 * rows, verdict.coverage
    finally:
        try:
            if utility.has_collection(name, using=alias):
                utility.drop_collection(name, using=alias)
            connections.disconnect(alias)
            if database in db.list_database():
                db.drop_database(database)
        except Exception:
            pass
