import Auditor
import AuditorMilvus
import AuditorShadow
import AuditorTransport
import Foundation
import Logging
import MilvusProto
import SwiftProtobuf
import Synchronization

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

    /// serve's HTTP request path: any method, any path and query reach the routes as the server hands them
    /// over (first byte: the method; the rest: the path). Only GET may succeed (the endpoints are read-only),
    /// every answer is one of the statuses serve documents, and a 200 from `/v1/` or `/readyz` is JSON.
    static func http(_ bytes: [UInt8]) {
        let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]
        let method = methods[Int(bytes.first ?? 0) % methods.count]
        let text = String(decoding: bytes.dropFirst(), as: UTF8.self)
        let path = text.hasPrefix("/") ? text : "/" + text
        let probe = HTTPFuzzState.probe
        let outcome = HTTPFuzzState.Outcome()
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                let answer = try await probe.respond(method: method, path: path)
                outcome.value.withLock { $0 = .success(answer) }
            } catch {
                outcome.value.withLock { $0 = .failure(error) }
            }
            done.signal()
        }
        done.wait()  // libFuzzer's own thread, not the cooperative pool
        switch outcome.value.withLock({ $0 }) {
        case .success(let answer):
            guard [200, 400, 404, 405, 503].contains(answer.status) else {
                fatalError("\(method) \(path) answered \(answer.status)")
            }
            if answer.status == 200, method != "GET", method != "HEAD" {
                fatalError("\(method) \(path) succeeded on a read-only endpoint")
            }
            let route = path.split(separator: "?", maxSplits: 1).first.map(String.init) ?? path
            if answer.status == 200, method == "GET", route.hasPrefix("/v1/") || route == "/readyz",
                (try? JSONSerialization.jsonObject(with: Data(answer.body))) == nil
            {
                fatalError("\(method) \(path) answered 200 with a body that is not JSON")
            }
        case .failure(let error):
            fatalError("\(method) \(path) threw (the server's 500): \(error)")
        case nil:
            fatalError("no answer")
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

/// The shadow the `http` target's probe serves: a state directory made once per process, holding one
/// collection seeded with rows, opened the way `serve` opens it.
enum HTTPFuzzState {
    final class Outcome: Sendable {
        let value = Mutex<Result<(status: Int, body: [UInt8]), any Error>?>(nil)
    }

    static let probe: ServeHTTPProbe = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "auditd-fuzz-http-\(getpid())"
        ).path
        do {
            let store = try ShadowStore.open(directory: directory, create: true)
            let rows = (0..<50).map { HashedRow(pk: .string("pk-\($0)"), ts: 1 << 40, rowHash: UInt64($0) * 7919) }
            try store.bootstrap(schema: FuzzTargets.defaultSchema, rows: rows, timestamp: 1 << 41)
            var settings = Settings()
            settings.stateDirectory = directory
            var logger = Logger(label: "auditd-fuzz")
            logger.logLevel = .critical
            return try ServeHTTPProbe(
                ServeConfiguration(application: AuditorConfiguration(settings: settings, logger: logger)))
        } catch {
            fatalError("auditd-fuzz: http state: \(error)")
        }
    }()
}
