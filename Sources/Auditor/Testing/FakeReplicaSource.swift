import AuditorCore
import AuditorMilvus
import Synchronization

/// A replica source answering from scripts — per replica (ids 1, 2, …; replica N's one shard is led by node
/// N×10), the leader view and the rows it serves, as functions of how many times it was asked. For tests of
/// the audit round without a cluster.
public final class FakeReplicaSource: ReplicaSource {
    public struct Script: Sendable {
        /// probe number → leader view (nil: no view yet); throwing = leader unreachable.
        public var view: @Sendable (Int) throws -> LeaderView?
        /// data request number (counts and reads) → rows served at T; throwing = the read failed (e.g. deadline: lagging).
        public var rows: @Sendable (Int) throws -> [ReplicaRow]
        /// `count(*)` if it is not simply the number of rows served (duplicates are counted by Milvus).
        public var count: (@Sendable () -> Int64)? = nil
        /// The node serving the replica now, if not N×10 (a restarted node registers under a new id; it must
        /// stay within N×10 ..< N×10+10).
        public var node: (@Sendable () -> Int64)? = nil

        public init(
            view: @escaping @Sendable (Int) throws -> LeaderView?,
            rows: @escaping @Sendable (Int) throws -> [ReplicaRow],
            count: (@Sendable () -> Int64)? = nil, node: (@Sendable () -> Int64)? = nil
        ) {
            self.view = view
            self.rows = rows
            self.count = count
            self.node = node
        }
    }
    public let vchannel: String
    public let scripts: [Int64: Script]
    private let calls = Mutex<[String: Int]>([:])
    private let readRanges = Mutex<[Int64: [PKRange]]>([:])

    /// The pk ranges asked of a replica (row reads), in order.
    public func ranges(replica: Int64) -> [PKRange] { readRanges.withLock { $0[replica] ?? [] } }

    /// What listing the replicas throws, if anything (e.g. Milvus's "replica not found" for a collection
    /// that is not loaded).
    public let listError: (any Error)?

    /// `vchannel`: the one shard every replica serves.
    public init(
        _ scripts: [Int64: Script], vchannel: String = "by-dev-rootcoord-dml_0_9v0", listError: (any Error)? = nil
    ) {
        self.scripts = scripts
        self.vchannel = vchannel
        self.listError = listError
    }

    private func next(_ key: String) -> Int {
        calls.withLock {
            $0[key, default: 0] += 1
            return $0[key]! - 1
        }
    }

    public func replicas(collectionID: Int64) async throws -> [ReplicaInfo] {
        if let listError { throw listError }
        return scripts.keys.sorted().map { id in
            let node = scripts[id]?.node?() ?? id * 10
            return ReplicaInfo(
                id: id, collectionID: collectionID, nodeIDs: [node],
                shards: [
                    .init(vchannel: vchannel, leaderID: node, leaderAddress: "10.0.0.\(id):21123", nodeIDs: [node])
                ])
        }
    }

    public func leaderView(shard: ReplicaInfo.Shard, collectionID: Int64, timeout: Duration) async throws -> LeaderView?
    {
        let id = shard.leaderID / 10
        return try scripts[id]!.view(next("view\(id)"))
    }

    public func count(
        shard: ReplicaInfo.Shard, collectionID: Int64, pkFieldID: Int64, pkIsInt: Bool, timestamp: UInt64,
        timeout: Duration
    ) async throws -> Int64 {
        let id = shard.leaderID / 10
        if let count = scripts[id]!.count { return count() }
        return Int64(try scripts[id]!.rows(next("data\(id)")).count)
    }

    public func rows(
        shard: ReplicaInfo.Shard, collectionID: Int64, pkFieldID: Int64, pkIsInt: Bool, timestamp: UInt64,
        range: PKRange, pageSize: Int, timeout: Duration
    ) async throws -> [ReplicaRow] {
        let id = shard.leaderID / 10
        readRanges.withLock { $0[id, default: []].append(range) }
        return try scripts[id]!.rows(next("data\(id)")).filter { range.contains($0.pk) }
            .map { ReplicaRow(pk: $0.pk, ts: $0.ts) }  // pk mode: no hash
    }

    public func fullRows(
        shard: ReplicaInfo.Shard, schema: CollectionSchemaInfo, timestamp: UInt64, range: PKRange, after: PrimaryKey?,
        maxRows: Int?, pageSize: Int, timeout: Duration
    ) async throws -> [HashedRow] {
        let id = shard.leaderID / 10
        let rows = try scripts[id]!.rows(next("data\(id)")).sorted { $0.pk < $1.pk }
            .filter { row in range.contains(row.pk) && (after.map { row.pk > $0 } ?? true) }
        return rows.prefix(maxRows ?? rows.count).map { HashedRow(pk: $0.pk, ts: $0.ts, rowHash: $0.rowHash ?? 0) }
    }
}

/// A catalog answering from a fixed table of schemas; any other collection is not found.
public struct StaticCatalog: CollectionCatalog {
    public var schemas: [Int64: CollectionSchemaInfo]
    public init(_ schemas: [CollectionSchemaInfo]) {
        self.schemas = Dictionary(schemas.map { ($0.collectionID, $0) }, uniquingKeysWith: { a, _ in a })
    }

    public func schema(collectionID: Int64) async throws -> CollectionSchemaInfo {
        guard let schema = schemas[collectionID] else {
            throw MilvusError(
                .status(MilvusStatus(errorCode: 1, code: 100, reason: "collection not found[\(collectionID)]")),
                method: "DescribeCollection", target: "static")
        }
        return schema
    }
}
