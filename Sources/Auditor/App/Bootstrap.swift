import AuditorAudit
import AuditorCore
import AuditorKafka
import AuditorMilvus
import AuditorReport
import AuditorShadow
import Foundation

public struct BootstrapResult: Sendable {
    public var collectionID: Int64
    public var name: String
    public var timestamp: UInt64
    public var replicaID: Int64
    public var rows: Int
}

extension Application {
    /// `auditd bootstrap`: seed the shadow with every row of a collection read from one replica at one
    /// MVCC timestamp T (the log may no longer hold the collection's beginning); `run` then follows the
    /// log and skips the collection's records at or before T.
    public func bootstrap(
        collection: String, milvus: String, stateDirectory: String, progress: ((String) -> Void)? = nil
    ) async throws -> BootstrapResult {
        let lock = try StateLock(directory: stateDirectory, command: "bootstrap")
        defer { lock.release() }
        return try await seed(
            collection: collection, milvus: milvus, stateDirectory: stateDirectory, progress: progress)
    }

    /// `bootstrap`'s work, for a caller that holds the state directory's lock.
    func seed(
        collection: String, milvus: String, stateDirectory: String, progress: ((String) -> Void)? = nil
    ) async throws -> BootstrapResult {
        let client = MilvusClient(target: milvus)
        let id: Int64
        if let numeric = Int64(collection) {
            id = numeric
        } else if let found = try await client.showCollections().first(where: { $0.name == collection }) {
            id = found.id
        } else {
            throw ApplicationError(.bootstrap, "collection '\(collection)' not found in Milvus at \(milvus)")
        }
        let schema = try await client.describeCollection(id: id)
        let reader = ReplicaReader(milvus: milvus)
        guard let replica = try await reader.replicas(collectionID: id).first(where: { !$0.shards.isEmpty }) else {
            throw ApplicationError(.bootstrap, "collection '\(schema.name)' has no loaded replica to read")
        }
        let timestamp = clock.nowTs()
        var rows: [HashedRow] = []
        for shard in replica.shards {
            rows += try await reader.fullRows(shard: shard, schema: schema, timestamp: timestamp)
            progress?("bootstrap \(schema.name): \(rows.count) rows read (shard \(shard.vchannel))")
        }
        let store = try openStore(stateDirectory, create: true)
        try await store.perform { [rows] in try $0.bootstrap(schema: schema, rows: rows, timestamp: timestamp) }
        return BootstrapResult(
            collectionID: id, name: schema.name, timestamp: timestamp, replicaID: replica.id, rows: rows.count)
    }
}
