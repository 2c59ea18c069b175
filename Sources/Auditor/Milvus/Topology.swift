import AuditorCore
import AuditorKafka
import AuditorTransport
import Foundation
import MilvusProto

/// What one shard leader says it serves for a vchannel (its `GetDataDistribution` leader view).
public struct LeaderView: Sendable, Equatable {
    public var nodeID: Int64
    public var vchannel: String
    /// 0 while the delegator has no target yet (a restarted node still loading): answers are partial.
    public var targetVersion: Int64
    /// Sealed segments the leader routes queries to.
    public var sealedSegments: Set<Int64>
    public var growingSegments: Set<Int64>

    public init(
        nodeID: Int64, vchannel: String, targetVersion: Int64, sealedSegments: Set<Int64>, growingSegments: Set<Int64>
    ) {
        self.nodeID = nodeID
        self.vchannel = vchannel
        self.targetVersion = targetVersion
        self.sealedSegments = sealedSegments
        self.growingSegments = growingSegments
    }
}

/// Where the audit reads replicas from: the real QueryNodes (`ReplicaReader`) or a test double.
public protocol ReplicaSource: Sendable {
    func replicas(collectionID: Int64) async throws -> [ReplicaInfo]
    /// The leader view of `shard` for `collectionID` on its leader node; nil if the node has none.
    func leaderView(shard: ReplicaInfo.Shard, collectionID: Int64, timeout: Duration) async throws -> LeaderView?
    func count(
        shard: ReplicaInfo.Shard, collectionID: Int64, pkFieldID: Int64, pkIsInt: Bool, timestamp: UInt64,
        timeout: Duration
    ) async throws -> Int64
    /// The rows (pk, insert ts) of one shard whose pk lies in `range`.
    func rows(
        shard: ReplicaInfo.Shard, collectionID: Int64, pkFieldID: Int64, pkIsInt: Bool, timestamp: UInt64,
        range: PKRange, pageSize: Int, timeout: Duration
    ) async throws -> [ReplicaRow]
    /// Rows with all their user fields, hashed like the log's inserts (full and sample modes): every row of
    /// `range`, or the `maxRows` of them after pk `after`.
    func fullRows(
        shard: ReplicaInfo.Shard, schema: CollectionSchemaInfo, timestamp: UInt64, range: PKRange, after: PrimaryKey?,
        maxRows: Int?, pageSize: Int, timeout: Duration
    ) async throws -> [HashedRow]
}

extension ReplicaReader: ReplicaSource {
    /// `GetDataDistribution` of one QueryNode (targetID must be its current node id).
    func distribution(nodeID: Int64, address: String, timeout: Duration) async throws
        -> Milvus_Proto_Query_GetDataDistributionResponse
    {
        var request = Milvus_Proto_Query_GetDataDistributionRequest()
        request.base.targetID = nodeID
        request.base.msgID = requestIDs.take()
        let node = GRPCClient(target: address, transport: transport)
        let response = try await node.unary(
            "milvus.proto.query.QueryNode/GetDataDistribution", request,
            as: Milvus_Proto_Query_GetDataDistributionResponse.self, timeout: timeout,
            metadata: ["serverid": String(nodeID)])
        try MilvusError.check(response.status, method: "QueryNode/GetDataDistribution", target: address)
        return response
    }

    public func leaderView(shard: ReplicaInfo.Shard, collectionID: Int64, timeout: Duration) async throws
        -> LeaderView?
    {
        let response = try await distribution(nodeID: shard.leaderID, address: shard.leaderAddress, timeout: timeout)
        guard
            let view = response.leaderViews.first(where: {
                $0.collection == collectionID && $0.channel == shard.vchannel
            })
        else { return nil }
        return LeaderView(
            nodeID: response.nodeID, vchannel: view.channel, targetVersion: view.targetVersion,
            sealedSegments: Set(view.segmentDist.keys), growingSegments: Set(view.growingSegmentIds))
    }

    /// The replicas as QueryCoord records them in etcd, with shard leaders found by asking each live node
    /// for its leader views. Used when the proxy's GetReplicas fails as a whole because one replica has no
    /// available node (Milvus 2.3.5 then answers 401 and drops every replica it had not listed yet).
    func replicasFromEtcd(_ etcd: MilvusEtcd, collectionID: Int64) async throws -> [ReplicaInfo] {
        let records = try await etcd.replicas(collectionID: collectionID)
        guard !records.isEmpty else { return [] }
        let sessions = try await etcd.queryNodes()
        var result: [ReplicaInfo] = []
        for (id, nodeIDs) in records.sorted(by: { $0.key < $1.key }) {
            var shards: [ReplicaInfo.Shard] = []
            var notes: [String] = []
            for node in nodeIDs.sorted() {
                guard let address = sessions[node] else {
                    notes.append("node \(node) has no session in etcd (down)")
                    continue
                }
                do {
                    let response = try await distribution(nodeID: node, address: address, timeout: .seconds(3))
                    for view in response.leaderViews where view.collection == collectionID {
                        shards.append(
                            ReplicaInfo.Shard(
                                vchannel: view.channel, leaderID: node, leaderAddress: address, nodeIDs: [node]))
                    }
                } catch {
                    notes.append("node \(node) at \(address): \(error)")
                }
            }
            if nodeIDs.isEmpty { notes.append("no node assigned") }
            result.append(
                ReplicaInfo(
                    id: id, collectionID: collectionID, nodeIDs: nodeIDs, shards: shards,
                    note: notes.isEmpty ? nil : notes.joined(separator: "; ")))
        }
        return result
    }
}
