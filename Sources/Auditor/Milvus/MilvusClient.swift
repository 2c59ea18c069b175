import AuditorCore
import AuditorKafka
import AuditorTransport
import Foundation
import MilvusProto

/// Milvus's public API (the proxy's gRPC port, default 127.0.0.1:19530), for what the log cannot tell:
/// schemas of collections whose CreateCollection left the log, replicas and their shard leaders.
public final class MilvusClient: Sendable {
    private let grpc: GRPCClient
    public var target: String { grpc.target }

    public init(target: String, transport: any GRPCTransport = CurlTransport.shared) {
        grpc = GRPCClient(target: target, transport: transport)
    }

    static let service = "milvus.proto.milvus.MilvusService"

    func check(_ status: Milvus_Proto_Milvus_Status, _ method: String) throws {
        try MilvusError.check(status, method: method, target: target)
    }

    /// Schema, channels and name of one collection, by id (or by name when `id` is nil).
    public func describeCollection(id: Int64? = nil, name: String? = nil, database: String = "") async throws
        -> CollectionSchemaInfo
    {
        var request = Milvus_Proto_Milvus_DescribeCollectionRequest()
        if let id { request.collectionID = id }
        if let name { request.collectionName = name }
        request.dbName = database
        let response = try await grpc.unary(
            "\(Self.service)/DescribeCollection", request, as: Milvus_Proto_Milvus_DescribeCollectionResponse.self)
        try check(response.status, "DescribeCollection")
        var info = try WALDecoder.collectionSchema(
            response.schema, collectionID: response.collectionID, dbName: response.dbName,
            fallbackName: response.collectionName)
        info.virtualChannels = response.virtualChannelNames
        info.physicalChannels = response.physicalChannelNames
        // 2.3.5 hides the dynamic field from DescribeCollection. It exists all the same: `$meta` was appended
        // before field ids were assigned, so it has the id after the last user field.
        if info.enableDynamicField, !info.fields.contains(where: \.isDynamic),
            let last = info.fields.filter({ !$0.isSystem }).map(\.id).max()
        {
            info.fields.append(FieldInfo(id: last + 1, name: "$meta", type: .json, isDynamic: true))
        }
        return info
    }

    public func showCollections(database: String = "") async throws -> [(name: String, id: Int64)] {
        var request = Milvus_Proto_Milvus_ShowCollectionsRequest()
        request.dbName = database
        let response = try await grpc.unary(
            "\(Self.service)/ShowCollections", request, as: Milvus_Proto_Milvus_ShowCollectionsResponse.self)
        try check(response.status, "ShowCollections")
        return Array(zip(response.collectionNames, response.collectionIds)).map { (name: $0.0, id: $0.1) }
    }
}

/// What an audit needs to know of a collection beyond the log: its schema and channels (the proxy's
/// DescribeCollection in production, a fixed table in tests).
public protocol CollectionCatalog: Sendable {
    func schema(collectionID: Int64) async throws -> CollectionSchemaInfo
}

extension MilvusClient: CollectionCatalog {
    public func schema(collectionID: Int64) async throws -> CollectionSchemaInfo {
        try await describeCollection(id: collectionID)
    }
}
