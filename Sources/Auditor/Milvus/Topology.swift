import Foundation

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
    func rows(
        shard: ReplicaInfo.Shard, collectionID: Int64, pkFieldID: Int64, pkIsInt: Bool, timestamp: UInt64,
        pageSize: Int, timeout: Duration
    ) async throws -> [ReplicaRow]
}

extension ReplicaReader: ReplicaSource {
    public func leaderView(shard: ReplicaInfo.Shard, collectionID: Int64, timeout: Duration) async throws
        -> LeaderView?
    {
        var request = Milvus_Proto_Query_GetDataDistributionRequest()
        request.base.targetID = shard.leaderID
        request.base.msgID = requestIDs.take()
        let node = GRPCClient(target: shard.leaderAddress)
        let response = try await node.unary(
            "milvus.proto.query.QueryNode/GetDataDistribution", request,
            as: Milvus_Proto_Query_GetDataDistributionResponse.self, timeout: timeout,
            metadata: ["serverid": String(shard.leaderID)])
        if response.status.errorCode != 0 || response.status.code != 0 {
            throw GRPCError(
                method: "QueryNode/GetDataDistribution", target: shard.leaderAddress, status: nil,
                message: "Milvus error \(response.status.errorCode)/\(response.status.code): \(response.status.reason)")
        }
        guard
            let view = response.leaderViews.first(where: {
                $0.collection == collectionID && $0.channel == shard.vchannel
            })
        else { return nil }
        return LeaderView(
            nodeID: response.nodeID, vchannel: view.channel, targetVersion: view.targetVersion,
            sealedSegments: Set(view.segmentDist.keys), growingSegments: Set(view.growingSegmentIds))
    }
}
