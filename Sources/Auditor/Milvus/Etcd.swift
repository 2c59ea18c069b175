import AuditorCore
import AuditorKafka
import AuditorTransport
import Foundation
import MilvusProto

/// Reads Milvus's metadata from etcd through etcd's v3 JSON gateway (`POST /v3/kv/range`): QueryNode
/// sessions (node id → address) and QueryCoord's replica records (replica → nodes). Read-only.
public struct MilvusEtcd: Sendable {
    public var endpoint: String
    /// Milvus's `etcd.rootPath` (default "by-dev"); metadata lives under `<root>/meta/`.
    public var rootPath: String
    private let http = HTTPClient()

    public init(endpoint: String, rootPath: String = "by-dev") {
        self.endpoint = endpoint
        self.rootPath = rootPath
    }

    struct Header: Decodable {
        var revision: String?
    }

    struct KV: Decodable {
        var key: String
        var value: String?
    }

    struct RangeResponse: Decodable {
        var header: Header?
        var kvs: [KV]?
    }

    /// The range request for every key under `prefix`.
    static func prefixRange(_ prefix: String) -> [String: String] {
        var end = Array(prefix.utf8)
        end[end.count - 1] += 1
        return ["key": Data(prefix.utf8).base64EncodedString(), "range_end": Data(end).base64EncodedString()]
    }

    /// Every key/value under `prefix`.
    func range(prefix: String) async throws -> [(key: String, value: Data)] {
        try await rangeWithRevision(prefix: prefix).kvs
    }

    /// Every key/value under `prefix`, and the store's revision they were read at.
    func rangeWithRevision(prefix: String) async throws -> (kvs: [(key: String, value: Data)], revision: Int64) {
        let body = try JSONEncoder().encode(Self.prefixRange(prefix))
        let (status, bytes) = try await http.post("http://\(endpoint)/v3/kv/range", json: Array(body))
        guard status == 200 else {
            throw TransportError(
                .httpStatus(status), method: "etcd range", target: endpoint,
                message: String(decoding: bytes.prefix(200), as: UTF8.self))
        }
        return try Self.rangeAnswer(bytes, endpoint: endpoint)
    }

    /// The key/values and revision of a JSON gateway range answer (keys that are not base64 are skipped).
    package static func rangeAnswer(_ bytes: [UInt8], endpoint: String) throws -> (
        kvs: [(key: String, value: Data)], revision: Int64
    ) {
        let response: RangeResponse
        do {
            response = try JSONDecoder().decode(RangeResponse.self, from: Data(bytes))
        } catch {
            throw TransportError(
                .malformedResponse, method: "etcd range", target: endpoint, message: "not an etcd range answer")
        }
        let kvs = (response.kvs ?? []).compactMap { kv -> (key: String, value: Data)? in
            guard let key = Data(base64Encoded: kv.key).map({ String(decoding: $0, as: UTF8.self) }) else { return nil }
            return (key, kv.value.flatMap { Data(base64Encoded: $0) } ?? Data())
        }
        return (kvs, response.header?.revision.flatMap { Int64($0) } ?? 0)
    }

    /// A QueryNode's session value (JSON), nil when it is not one.
    package static func session(_ value: Data) -> Session? {
        try? JSONDecoder().decode(Session.self, from: value)
    }

    package struct Session: Decodable {
        package var ServerID: Int64
        package var Address: String
        package var Stopping: Bool?
    }

    var sessionPrefix: String { "\(rootPath)/meta/session/querynode-" }

    /// Live QueryNodes: node id → gRPC address (a restarted node registers under a new id).
    public func queryNodes() async throws -> [Int64: String] {
        var nodes: [Int64: String] = [:]
        for (_, value) in try await range(prefix: sessionPrefix) {
            if let session = Self.session(value) {
                nodes[session.ServerID] = session.Address
            }
        }
        return nodes
    }

    /// QueryCoord's replicas of a collection: replica id → its node ids.
    public func replicas(collectionID: Int64) async throws -> [Int64: [Int64]] {
        var replicas: [Int64: [Int64]] = [:]
        for (_, value) in try await range(prefix: "\(rootPath)/meta/querycoord-replica/\(collectionID)/") {
            if let replica = try? Milvus_Proto_Query_Replica(serializedBytes: value) {
                replicas[replica.id] = replica.nodes
            }
        }
        return replicas
    }

    /// Live QueryNodes and the etcd revision they were read at (a watch from `revision + 1` misses nothing).
    public func queryNodeSessions() async throws -> (nodes: [Int64: String], revision: Int64) {
        let (kvs, revision) = try await rangeWithRevision(prefix: sessionPrefix)
        var nodes: [Int64: String] = [:]
        for (_, value) in kvs {
            if let session = try? JSONDecoder().decode(Session.self, from: value), session.Stopping != true {
                nodes[session.ServerID] = session.Address
            }
        }
        return (nodes, revision)
    }

    /// Follows QueryNode sessions from `revision` (etcd's watch through the JSON gateway: one JSON object per
    /// line as events happen) and hands each change to `onEvent` the moment it arrives. Returns when etcd
    /// ends the stream; throws when it cannot be opened or answers otherwise; ends when the task is cancelled.
    public func watchQueryNodes(fromRevision revision: Int64, onEvent: @escaping @Sendable (SessionEvent) -> Void)
        async throws
    {
        var request = Self.prefixRange(sessionPrefix)
        if revision > 0 { request["start_revision"] = String(revision) }
        let body = try JSONEncoder().encode(["create_request": request])
        let lines = WatchLines()
        let prefix = sessionPrefix
        let status = try await http.stream("http://\(endpoint)/v3/watch", json: Array(body)) { chunk in
            for line in lines.append(chunk) {
                for event in Self.sessionEvents(in: line, prefix: prefix) { onEvent(event) }
            }
            return true
        }
        guard status == 200 else {
            throw TransportError(.httpStatus(status), method: "etcd watch", target: endpoint, message: "watch refused")
        }
    }

    struct WatchResponse: Decodable {
        struct Result: Decodable {
            struct Event: Decodable {
                var type: String?
                var kv: KV
            }
            var events: [Event]?
        }
        var result: Result?
    }

    /// The session changes in one line of the watch stream (a line that is not one is ignored: etcd's
    /// `created` and progress answers, or garbage, which never stops the watch).
    package static func sessionEvents(in line: [UInt8], prefix: String) -> [SessionEvent] {
        guard let response = try? JSONDecoder().decode(WatchResponse.self, from: Data(line)) else { return [] }
        return (response.result?.events ?? []).compactMap { event in
            guard let key = Data(base64Encoded: event.kv.key).map({ String(decoding: $0, as: UTF8.self) }),
                key.hasPrefix(prefix), let id = Int64(key.dropFirst(prefix.count))
            else { return nil }
            if event.type == "DELETE" { return .down(nodeID: id) }
            guard let value = event.kv.value.flatMap({ Data(base64Encoded: $0) }),
                let session = try? JSONDecoder().decode(Session.self, from: value)
            else { return nil }
            return session.Stopping == true ? .down(nodeID: id) : .up(nodeID: id, address: session.Address)
        }
    }

    /// DataCoord's durable checkpoint of every vchannel: how far Milvus's consumers have persisted the log.
    public func channelCheckpoints() async throws -> [String: ChannelPosition] {
        var result: [String: ChannelPosition] = [:]
        let prefix = "\(rootPath)/meta/datacoord-meta/channel-cp/"
        for (key, value) in try await range(prefix: prefix) {
            guard let position = try? Milvus_Proto_Msg_MsgPosition(serializedBytes: value) else { continue }
            let vchannel = String(key.dropFirst(prefix.count))
            result[vchannel] = ChannelPosition(
                vchannel: vchannel, offset: KafkaMessageID.offset(position.msgID), timestamp: position.timestamp)
        }
        return result
    }
}

/// A QueryNode session appearing (a node starting, under a new id after a restart) or going away (stopped,
/// or its lease expired after a crash).
public enum SessionEvent: Sendable, Equatable {
    case up(nodeID: Int64, address: String)
    case down(nodeID: Int64)
}

/// A Milvus consumer's position on a vchannel: the Kafka offset of its pchannel and the hybrid timestamp.
public struct ChannelPosition: Sendable, Equatable {
    public var vchannel: String
    /// nil when the message id is not an 8-byte Kafka offset.
    public var offset: Int64?
    public var timestamp: UInt64
    public init(vchannel: String, offset: Int64?, timestamp: UInt64) {
        self.vchannel = vchannel
        self.offset = offset
        self.timestamp = timestamp
    }

    /// The pchannel of a vchannel (`by-dev-rootcoord-dml_0_449v0` → `by-dev-rootcoord-dml_0`).
    public var pchannel: String {
        guard let cut = vchannel.lastIndex(of: "_") else { return vchannel }
        return String(vchannel[..<cut])
    }
}

/// Milvus's Kafka message id: the offset as 8 little-endian bytes.
public enum KafkaMessageID {
    public static func offset(_ bytes: Data) -> Int64? {
        guard bytes.count == 8 else { return nil }
        var value: UInt64 = 0
        for (index, byte) in bytes.enumerated() { value |= UInt64(byte) << (8 * index) }
        return Int64(bitPattern: value)
    }
}

/// Splits a byte stream into lines (the watch's JSON objects), keeping a partial line for the next chunk.
package final class WatchLines: @unchecked Sendable {
    // Used only from the one thread of a stream's transfer.
    private var pending: [UInt8] = []

    package init() {}

    package func append(_ chunk: [UInt8]) -> [[UInt8]] {
        pending += chunk
        var lines: [[UInt8]] = []
        while let newline = pending.firstIndex(of: 0x0A) {
            let line = Array(pending[..<newline])
            pending.removeSubrange(...newline)
            if !line.isEmpty { lines.append(line) }
        }
        // A line that never ends: dropped, never grown without bound.
        if pending.count > 16 << 20 { pending.removeAll() }
        return lines
    }
}
