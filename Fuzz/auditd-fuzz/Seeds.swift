import Foundation
import MilvusProto
import SwiftProtobuf

/// Generated seed inputs for the targets whose bytes cannot be captured from Kafka (the `wal` corpus is
/// captured from the local cluster by dev/capture-wal-corpus).
enum Seeds {
    static func write(to directory: String) throws {
        let seeds: [(String, String, [UInt8])] = [
            ("grpc", "retrieve-varchar", try grpcBody(rows: 3)),
            ("grpc", "retrieve-empty", try grpcBody(rows: 0)),
            ("etcd", "range-sessions", Array(rangeAnswer.utf8)),
            ("etcd", "watch-stream", Array(watchStream.utf8)),
            ("config", "file-and-environment", Array(config.utf8)),
            ("http", "findings-confirmed", [0] + Array("/v1/findings?state=confirmed".utf8)),
            ("http", "findings-bad-state", [0] + Array("/v1/findings?state=%zz&state=all".utf8)),
            ("http", "report", [0] + Array("/v1/report".utf8)),
            ("http", "restarts", [0] + Array("/v1/restarts".utf8)),
            ("http", "readyz", [0] + Array("/readyz".utf8)),
            ("http", "metrics", [0] + Array("/metrics".utf8)),
            ("http", "post-report", [2] + Array("/v1/report".utf8)),
        ]
        for (target, name, bytes) in seeds {
            let folder = (directory as NSString).appendingPathComponent(target)
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            try Data(bytes).write(to: URL(fileURLWithPath: (folder as NSString).appendingPathComponent(name)))
        }
    }

    /// A QueryNode's framed answer with `rows` rows of `FuzzTargets.defaultSchema`.
    static func grpcBody(rows: Int) throws -> [UInt8] {
        var results = Milvus_Proto_Query_RetrieveResults()
        let pks = (0..<rows).map { "person-\($0)" }
        results.ids.strID.data = pks
        var ts = Milvus_Proto_Schema_FieldData()
        ts.fieldID = 1
        ts.type = .int64
        ts.scalars.longData.data = (0..<rows).map { Int64(449_000_000_000_000_000 + $0) }
        var pk = Milvus_Proto_Schema_FieldData()
        pk.fieldID = 100
        pk.type = .varChar
        pk.scalars.stringData.data = pks
        var vector = Milvus_Proto_Schema_FieldData()
        vector.fieldID = 101
        vector.type = .floatVector
        vector.vectors.dim = 8
        vector.vectors.floatVector.data = Data(
            (0..<(rows * 8)).flatMap { withUnsafeBytes(of: (Float($0) / 10).bitPattern.littleEndian, Array.init) })
        var camera = Milvus_Proto_Schema_FieldData()
        camera.fieldID = 102
        camera.type = .int64
        camera.scalars.longData.data = (0..<rows).map(Int64.init)
        var score = Milvus_Proto_Schema_FieldData()
        score.fieldID = 103
        score.type = .double
        score.scalars.doubleData.data = (0..<rows).map { Double($0) * 0.5 }
        var attrs = Milvus_Proto_Schema_FieldData()
        attrs.fieldID = 104
        attrs.type = .json
        attrs.scalars.jsonData.data = (0..<rows).map { Data("{\"zone\":\($0)}".utf8) }
        var meta = attrs
        meta.fieldID = 105
        meta.isDynamic = true
        results.fieldsData = [ts, pk, vector, camera, score, attrs, meta]
        let payload = [UInt8](try results.serializedData())
        let n = UInt32(payload.count)
        return [0, UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + payload
    }

    static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    static var session: String {
        "{\"ServerID\":7,\"ServerName\":\"querynode\",\"Address\":\"127.0.0.1:21123\",\"Exclusive\":false,\"Stopping\":false}"
    }

    static var rangeAnswer: String {
        "{\"header\":{\"revision\":\"1234\"},\"kvs\":[{\"key\":\"\(base64("by-dev/meta/session/querynode-7"))\","
            + "\"value\":\"\(base64(session))\",\"mod_revision\":\"1200\"}],\"count\":\"1\"}"
    }

    static var watchStream: String {
        "\u{0}{\"result\":{\"header\":{\"revision\":\"1\"},\"created\":true}}\n"
            + "{\"result\":{\"events\":[{\"kv\":{\"key\":\"\(base64("by-dev/meta/session/querynode-8"))\","
            + "\"value\":\"\(base64(session))\"}}]}}\n"
            + "{\"result\":{\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"\(base64("by-dev/meta/session/querynode-7"))\"}}]}}\n"
    }

    static var config: String {
        "brokers: 127.0.0.1:9092\nstate: /var/lib/auditd\nmilvus: 127.0.0.1:19530\naudit-interval: 30\n"
            + "kafka-property: security.protocol=SASL_SSL\nkafka-property: sasl.password=hunter2\n"
            + "alertmanager: http://127.0.0.1:9093\n\u{0}AUDITD_SETTLE=5\u{1}AUDITD_MODE=full\u{1}AUDITD_LISTEN=0.0.0.0:9187"
    }
}
