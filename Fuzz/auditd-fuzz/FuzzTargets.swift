import Auditor
import AuditorMilvus
import AuditorTransport
import Foundation
import MilvusProto
import SwiftProtobuf

/// The fuzz targets. Each feeds outside bytes to one parser the way auditd does and checks what the parser
/// promises besides not crashing.
enum FuzzTargets {
    static let pchannel = "by-dev-rootcoord-dml_0"

    /// Milvus's Kafka records (up to 4 per input, so a CreateCollection can precede the records it
    /// explains): every record decodes to a message at its own position, an undecodable one with a reason
    /// (it is quarantined with it), and decoded rows are consistent.
    static func wal(_ bytes: [UInt8]) {
        var decoder = WALDecoder()
        decoder.maxRowsPerMessage = 100_000
        for (index, value) in Frames.split(bytes, max: 4).enumerated() {
            let offset = Int64(index) + 1000
            let message = decoder.decode(KafkaRecord(topic: pchannel, offset: offset, value: value))
            guard message.pchannel == pchannel, message.offset == offset else {
                fatalError("decoded message lost its position: \(message.pchannel)@\(message.offset)")
            }
            switch message.body {
            case .undecodable(let reason):
                if reason.isEmpty { fatalError("undecodable record without a reason") }
            case .insert(let insert):
                if insert.rows.count > decoder.maxRowsPerMessage { fatalError("more rows than the bound") }
            default:
                break
            }
        }
    }

    /// A QueryNode's gRPC answer to a replica read: the framed body, the RetrieveResults in it, the pks and
    /// insert timestamps, and every row's content hash under a schema (the input's first frame, a
    /// CreateCollection, or a ReID-like default).
    static func grpc(_ bytes: [UInt8]) {
        let frames = Frames.split(bytes, max: 2)
        var schema = defaultSchema
        if frames.count == 2 {
            var decoder = WALDecoder()
            if case .createCollection(let given) = decoder.decode(
                KafkaRecord(topic: pchannel, offset: 0, value: frames[0])
            ).body {
                schema = given
            }
        }
        guard let payload = try? GRPCFrame.message(in: frames[frames.count - 1], method: "fuzz", target: "fuzz"),
            let results = try? Milvus_Proto_Query_RetrieveResults(
                serializedBytes: payload, options: BinaryDecodingOptions())
        else { return }
        let (pks, timestamps) = ReplicaReader.keysAndTimestamps(results)
        var builder = RowHashBuilder(capacity: 1024)
        if let rows = try? ReplicaReader.hashedRows(
            results, pks: pks, timestamps: timestamps.map { UInt64(bitPattern: $0) }, schema: schema,
            builder: &builder)
        {
            if rows.count != min(pks.count, timestamps.count) { fatalError("rows do not match pks and timestamps") }
        }
    }

    /// etcd through its JSON gateway: a range answer, the watch stream cut into two chunks at an input-chosen
    /// point, a QueryNode session value, DataCoord's channel checkpoint and QueryCoord's replica (protobuf).
    static func etcd(_ bytes: [UInt8]) {
        if let (kvs, _) = try? MilvusEtcd.rangeAnswer(bytes, endpoint: "fuzz") {
            for kv in kvs { _ = MilvusEtcd.session(kv.value) }
        }
        let lines = WatchLines()
        let cut = bytes.isEmpty ? 0 : Int(bytes[0]) % (bytes.count + 1)
        let chunks = [Array(bytes[..<cut]), Array(bytes[cut...])]
        let prefix = "by-dev/meta/session/querynode-"
        var total = 0
        for chunk in chunks {
            for line in lines.append(chunk) {
                if line.contains(0x0A) || line.isEmpty { fatalError("a watch line holds a newline or is empty") }
                total += line.count
                _ = MilvusEtcd.sessionEvents(in: line, prefix: prefix)
            }
        }
        if total > bytes.count { fatalError("watch lines hold more bytes than the stream") }
        _ = MilvusEtcd.session(Data(bytes))
        if let position = try? Milvus_Proto_Msg_MsgPosition(serializedBytes: bytes) {
            _ = KafkaMessageID.offset(position.msgID)
        }
        _ = try? Milvus_Proto_Query_Replica(serializedBytes: bytes)
    }

    /// A config file and AUDITD_* environment (the input's text before the first NUL is the file; after
    /// it, NAME=VALUE entries separated by 0x01): every refusal is one line, as the CLI prints it.
    static func config(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        let parts = text.split(separator: "\u{0}", maxSplits: 1, omittingEmptySubsequences: false)
        var environment: [String: String] = [:]
        if parts.count == 2 {
            for entry in parts[1].split(separator: "\u{1}") {
                let pair = entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                if pair.count == 2 { environment[String(pair[0])] = String(pair[1]) }
            }
        }
        do {
            let file = try ConfigFile.parse(String(parts[0]), source: "fuzz.yaml")
            _ = try Settings.resolve(environment: environment, file: file)
        } catch let error as ApplicationError {
            if error.message.contains("\n") { fatalError("a refusal spans lines: \(error.message)") }
        } catch {
            fatalError("a refusal that is not an ApplicationError: \(error)")
        }
    }

    /// A ReID-like collection: varchar pk, 8-d float vector, scalars, JSON, dynamic field.
    static let defaultSchema = CollectionSchemaInfo(
        collectionID: 1, name: "fuzz",
        fields: [
            FieldInfo(id: 100, name: "id", type: .varChar, isPrimaryKey: true, maxLength: 100),
            FieldInfo(id: 101, name: "embedding", type: .floatVector, dim: 8),
            FieldInfo(id: 102, name: "camera", type: .int64),
            FieldInfo(id: 103, name: "score", type: .double),
            FieldInfo(id: 104, name: "attrs", type: .json),
            FieldInfo(id: 105, name: "$meta", type: .json, isDynamic: true),
        ], enableDynamicField: true)
}
