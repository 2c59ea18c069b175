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

    struct RangeResponse: Decodable {
        struct KV: Decodable {
            var key: String
            var value: String?
        }
        var kvs: [KV]?
    }

    /// Every key/value under `prefix`.
    func range(prefix: String) async throws -> [(key: String, value: Data)] {
        var end = Array(prefix.utf8)
        end[end.count - 1] += 1
        let request: [String: String] = [
            "key": Data(prefix.utf8).base64EncodedString(), "range_end": Data(end).base64EncodedString(),
        ]
        let body = try JSONEncoder().encode(request)
        let (status, bytes) = try await http.post("http://\(endpoint)/v3/kv/range", json: Array(body))
        guard status == 200 else {
            throw TransportError(
                .httpStatus(status), method: "etcd range", target: endpoint,
                message: String(decoding: bytes.prefix(200), as: UTF8.self))
        }
        let response = try JSONDecoder().decode(RangeResponse.self, from: Data(bytes))
        return (response.kvs ?? []).compactMap { kv in
            guard let key = Data(base64Encoded: kv.key).map({ String(decoding: $0, as: UTF8.self) }) else { return nil }
            return (key, kv.value.flatMap { Data(base64Encoded: $0) } ?? Data())
        }
    }

    struct Session: Decodable {
        var ServerID: Int64
        var Address: String
    }

    /// Live QueryNodes: node id → gRPC address (a restarted node registers under a new id).
    public func queryNodes() async throws -> [Int64: String] {
        var nodes: [Int64: String] = [:]
        for (_, value) in try await range(prefix: "\(rootPath)/meta/session/querynode-") {
            if let session = try? JSONDecoder().decode(Session.self, from: value) {
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
}
