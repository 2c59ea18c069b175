import AuditorCore
import AuditorKafka
import AuditorTransport
import Foundation
import MilvusProto
import Synchronization

/// One replica of a collection as Milvus reports it: its nodes and, per shard, the leader to ask.
public struct ReplicaInfo: Sendable, Equatable {
    public struct Shard: Sendable, Equatable {
        public var vchannel: String
        public var leaderID: Int64
        public var leaderAddress: String
        public var nodeIDs: [Int64]
        public init(vchannel: String, leaderID: Int64, leaderAddress: String, nodeIDs: [Int64]) {
            self.vchannel = vchannel
            self.leaderID = leaderID
            self.leaderAddress = leaderAddress
            self.nodeIDs = nodeIDs
        }
    }
    public var id: Int64
    public var collectionID: Int64
    public var nodeIDs: [Int64]
    public var shards: [Shard]
    /// Why the topology is incomplete (e.g. a node without a session), when it is.
    public var note: String? = nil
    public init(id: Int64, collectionID: Int64, nodeIDs: [Int64], shards: [Shard], note: String? = nil) {
        self.id = id
        self.collectionID = collectionID
        self.nodeIDs = nodeIDs
        self.shards = shards
        self.note = note
    }
}

/// A row as one replica serves it.
public struct ReplicaRow: Sendable, Equatable, Hashable {
    public var pk: PrimaryKey
    public var ts: UInt64
    /// The row hash of all user fields (docs/row-hash.md), when read in full mode.
    public var rowHash: UInt64? = nil
    public init(pk: PrimaryKey, ts: UInt64, rowHash: UInt64? = nil) {
        self.pk = pk
        self.ts = ts
        self.rowHash = rowHash
    }
}

/// Reads each replica separately at a fixed MVCC timestamp, through the replica's own shard leaders
/// (the path the proxy uses, minus its load balancer).
public final class ReplicaReader: Sendable {
    private let milvus: GRPCClient
    private let etcd: MilvusEtcd?
    let requestIDs: RequestIDs

    /// `etcd`: where to find replicas and QueryNode addresses when the proxy cannot list them.
    /// `transport`: how gRPC calls travel (libcurl unless a test swaps it); `clock` seeds request ids.
    public init(
        milvus target: String, etcd: MilvusEtcd? = nil, transport: any GRPCTransport = CurlTransport.shared,
        clock: any AuditorClock = SystemClock()
    ) {
        milvus = GRPCClient(target: target, transport: transport)
        self.transport = transport
        self.etcd = etcd
        requestIDs = RequestIDs(seed: clock.nowMs())
        self.clock = clock
    }

    /// Times page requests for the pacer and sleeps its pauses.
    let clock: any AuditorClock

    let transport: any GRPCTransport

    final class RequestIDs: Sendable {
        private let next: Mutex<Int64>
        init(seed: Int64) { next = Mutex(seed << 16) }
        func take() -> Int64 {
            next.withLock {
                $0 += 1; return $0
            }
        }
    }

    public func replicas(collectionID: Int64) async throws -> [ReplicaInfo] {
        do {
            return try await publicReplicas(collectionID: collectionID)
        } catch let error as MilvusError where error.status != nil {
            // Milvus answered but could not list every replica (2.3.5 fails GetReplicas as a whole when one
            // replica has no available node): ask etcd — unless the collection is simply not loaded.
            guard let etcd, error.status?.error?.meansNotLoaded != true,
                case let fromEtcd = try await replicasFromEtcd(etcd, collectionID: collectionID), !fromEtcd.isEmpty
            else { throw error }
            return fromEtcd
        }
    }

    func publicReplicas(collectionID: Int64) async throws -> [ReplicaInfo] {
        var request = Milvus_Proto_Milvus_GetReplicasRequest()
        request.collectionID = collectionID
        request.withShardNodes = true
        let response = try await milvus.unary(
            "milvus.proto.milvus.MilvusService/GetReplicas", request, as: Milvus_Proto_Milvus_GetReplicasResponse.self)
        try MilvusError.check(response.status, method: "GetReplicas", target: milvus.target)
        return response.replicas.map { replica in
            ReplicaInfo(
                id: replica.replicaID, collectionID: replica.collectionID, nodeIDs: replica.nodeIds,
                shards: replica.shardReplicas.map {
                    ReplicaInfo.Shard(
                        vchannel: $0.dmChannelName, leaderID: $0.leaderID, leaderAddress: $0.leaderAddr,
                        nodeIDs: $0.nodeIds)
                })
        }
    }

    func send(_ request: ReplicaRequest, to address: String, timeout: Duration) async throws
        -> Milvus_Proto_Query_RetrieveResults
    {
        let node = GRPCClient(target: address, transport: transport)
        let results = try await node.unary(
            "milvus.proto.query.QueryNode/Query", request.queryRequest(requestID: requestIDs.take()),
            as: Milvus_Proto_Query_RetrieveResults.self, timeout: timeout,
            metadata: ["serverid": String(request.leaderID)])
        try MilvusError.check(results.status, method: "QueryNode/Query", target: address)
        return results
    }

    /// The pks of a result page and each row's insert timestamp (field 1).
    package static func keysAndTimestamps(_ results: Milvus_Proto_Query_RetrieveResults) -> ([PrimaryKey], [Int64]) {
        let pks: [PrimaryKey]
        switch results.ids.idField {
        case .intID(let ids)?: pks = ids.data.map(PrimaryKey.int)
        case .strID(let ids)?: pks = ids.data.map(PrimaryKey.string)
        case nil: pks = []
        }
        let timestamps =
            results.fieldsData.first { $0.fieldID == ReplicaRequest.timestampFieldID }?.scalars.longData.data ?? []
        return (pks, timestamps)
    }

    /// `count(*)` of one shard of one replica at `timestamp`.
    public func count(
        shard: ReplicaInfo.Shard, collectionID: Int64, pkFieldID: Int64, pkIsInt: Bool, timestamp: UInt64,
        timeout: Duration = .seconds(5)
    ) async throws -> Int64 {
        let request = try ReplicaRequest(
            collectionID: collectionID, pkFieldID: pkFieldID, pkIsInt: pkIsInt, vchannel: shard.vchannel,
            leaderID: shard.leaderID, timestamp: timestamp, mode: .count)
        let results = try await send(request, to: shard.leaderAddress, timeout: timeout)
        return results.fieldsData.first?.scalars.longData.data.first ?? 0
    }

    /// Every row (pk, insert ts) of one shard of one replica at `timestamp` with a pk in `range`, in
    /// pk-ordered pages.
    public func rows(
        shard: ReplicaInfo.Shard, collectionID: Int64, pkFieldID: Int64, pkIsInt: Bool, timestamp: UInt64,
        range: PKRange = .all, pageSize: Int = 10_000, timeout: Duration = .seconds(10)
    ) async throws -> [ReplicaRow] {
        try await pages(from: shard, after: nil, maxRows: nil, pageSize: pageSize, timeout: timeout) { after, limit in
            try ReplicaRequest(
                collectionID: collectionID, pkFieldID: pkFieldID, pkIsInt: pkIsInt, vchannel: shard.vchannel,
                leaderID: shard.leaderID, timestamp: timestamp, mode: .rows(after: after, limit: limit), range: range)
        } rows: { _, pks, timestamps in
            zip(pks, timestamps).map { ReplicaRow(pk: $0, ts: $1) }
        }
    }

    /// Reads pk-ordered pages from one shard leader, starting after `start`, until a short page or
    /// `maxRows` rows; each page's size is kept near the latency budget by a `Pacer`. `request` builds the
    /// page's request (after which pk, how many rows); `rows` turns its results (with their pks and insert
    /// timestamps) into rows.
    func pages<Row>(
        from shard: ReplicaInfo.Shard, after start: PrimaryKey?, maxRows: Int?, pageSize: Int, timeout: Duration,
        request: (_ after: PrimaryKey?, _ limit: Int) throws -> ReplicaRequest,
        rows decode: (Milvus_Proto_Query_RetrieveResults, [PrimaryKey], [UInt64]) throws -> [Row]
    ) async throws -> [Row] {
        var rows: [Row] = []
        var after = start
        var pacer = Pacer(pageSize: pageSize)
        while true {
            let limit = min(pacer.pageSize, maxRows.map { $0 - rows.count } ?? Int.max)
            if limit <= 0 { return rows }
            let started = clock.instant()
            let results = try await send(try request(after, limit), to: shard.leaderAddress, timeout: timeout)
            let (pks, timestamps) = Self.keysAndTimestamps(results)
            let insertTs = pks.indices.map { $0 < timestamps.count ? UInt64(bitPattern: timestamps[$0]) : 0 }
            rows += try decode(results, pks, insertTs)
            guard pks.count >= limit, let last = pks.last else { return rows }
            after = last
            if let pause = pacer.record(clock.instant() - started) { try await clock.sleep(for: pause) }
        }
    }
}

/// A row read with all its fields, hashed like the log's inserts (docs/row-hash.md).
public typealias HashedRow = RowVersion

extension ReplicaReader {
    /// Every row of one shard of one replica at `timestamp` with a pk in `range`, with the row hash of all its
    /// user fields. `after`/`maxRows`: only the `maxRows` rows following that pk (a slice, for sample mode).
    public func fullRows(
        shard: ReplicaInfo.Shard, schema: CollectionSchemaInfo, timestamp: UInt64, range: PKRange = .all,
        after start: PrimaryKey? = nil, maxRows: Int? = nil, pageSize: Int = 500, timeout: Duration = .seconds(30)
    ) async throws -> [HashedRow] {
        guard let pk = schema.primaryKey else {
            throw MilvusError(.schemaWithoutPrimaryKey, method: "fullRows", target: shard.leaderAddress)
        }
        var builder = RowHashBuilder(capacity: 16 * 1024)
        return try await pages(from: shard, after: start, maxRows: maxRows, pageSize: pageSize, timeout: timeout) {
            after, limit in
            try ReplicaRequest(
                collectionID: schema.collectionID, pkFieldID: pk.id, pkIsInt: pk.type == .int64,
                vchannel: shard.vchannel, leaderID: shard.leaderID, timestamp: timestamp,
                mode: .fullRows(after: after, limit: limit, fieldIDs: schema.userFields.map(\.id)), range: range)
        } rows: { results, pks, timestamps in
            try Self.hashedRows(results, pks: pks, timestamps: timestamps, schema: schema, builder: &builder)
        }
    }

    /// A result page's rows with the row hash of their user fields (the pks and insert timestamps already
    /// taken from it by `keysAndTimestamps`).
    package static func hashedRows(
        _ results: Milvus_Proto_Query_RetrieveResults, pks: [PrimaryKey], timestamps: [UInt64],
        schema: CollectionSchemaInfo, builder: inout RowHashBuilder
    ) throws -> [HashedRow] {
        let columns = try results.fieldsData.filter { $0.fieldID >= 100 }
            .map { try Column($0, rows: pks.count, schema: schema) }
            .sorted { $0.fieldID < $1.fieldID }
        return try zip(pks, timestamps).enumerated().map { index, row in
            builder.reset()
            for column in columns { try column.append(row: index, to: &builder) }
            return HashedRow(pk: row.0, ts: row.1, rowHash: builder.hash)
        }
    }
}

/// Keeps each page request of a replica read near a latency budget: pages shrink when Milvus answers
/// slowly (and the reader pauses as long as the overrun, so a loaded node gets air), and grow back when it
/// answers fast. Bounds: 1/16 to 4× the configured page size, and never more than a request may ask for
/// (`ReplicaRequest.maxPage`: a larger page is refused before it is sent).
struct Pacer {
    static let budget: Duration = .milliseconds(500)
    let configured: Int
    private(set) var pageSize: Int

    init(pageSize: Int) {
        configured = min(pageSize, ReplicaRequest.maxPage)
        self.pageSize = configured
    }

    /// Records one request's latency; returns how long to pause before the next one (nil: no pause).
    mutating func record(_ latency: Duration) -> Duration? {
        if latency > Self.budget {
            pageSize = max(max(1, configured / 16), pageSize / 2)
            return latency - Self.budget
        }
        if latency < Self.budget / 4 { pageSize = min(configured * 4, ReplicaRequest.maxPage, pageSize * 2) }
        return nil
    }
}
