import Foundation
import Logging
import Testing

@testable import Auditor
@testable import AuditorMilvus

/// Each replica read separately at one MVCC timestamp T equals the shadow as of T.
@Suite(
    "Real cluster: per-replica reads",
    .enabled(
        if: ProcessInfo.processInfo.environment["AUDITD_BROKERS"] != nil, "needs dev/cluster up + dev/cluster exec"),
    .serialized)
struct ReplicaReadIntegrationTests {
    @Test func everyReplicaServesExactlyTheShadowAtT() async throws {
        let expected = try TailIntegrationTests.runWorkload(
            prefix: "it_rep_\(UInt32.random(in: 0...UInt32.max))", rows: 2000, deletes: 200)
        try await Task.sleep(for: .seconds(1))  // a time tick after the last write
        var logger = Logger(label: "it")
        logger.logLevel = .warning
        let brokers = ProcessInfo.processInfo.environment["AUDITD_BROKERS"] ?? "127.0.0.1:9092"
        let app = buildApplication(AuditorConfiguration(brokers: brokers, logger: logger))
        let state = FileManager.default.temporaryDirectory.appendingPathComponent("it-rep-\(UUID().uuidString)").path
        _ = try await app.run(RunOptions(stateDirectory: state, once: true))
        let store = try ShadowStore.open(directory: state, create: false)
        let checkpoints = try store.checkpoints()
        let reader = ReplicaReader(milvus: "127.0.0.1:19530")
        let milvus = MilvusClient(target: "127.0.0.1:19530")
        for collection in expected.collections {
            let schema = try await milvus.describeCollection(id: collection.id)
            let pk = try #require(schema.primaryKey)
            // T: the last time tick the shadow applied on every pchannel of the collection
            let ticks = schema.physicalChannels.compactMap { checkpoints[$0]?.tickTs }
            let t = try #require(ticks.min())
            let shadow = Set(
                try store.liveRows(collectionID: collection.id).filter { $0.ts <= t }.map {
                    ReplicaRow(pk: $0.pk, ts: $0.ts)
                })
            #expect(shadow.count == collection.rows.count - collection.deleted.count)
            let replicas = try await reader.replicas(collectionID: collection.id)
            #expect(replicas.count == 2)
            #expect(Set(replicas.flatMap(\.nodeIDs)).count == 2)  // one QueryNode each
            for replica in replicas {
                var served: [ReplicaRow] = []
                var counted: Int64 = 0
                for shard in replica.shards {
                    served += try await reader.rows(
                        shard: shard, collectionID: collection.id, pkFieldID: pk.id, pkIsInt: pk.type == .int64,
                        timestamp: t, pageSize: 700)
                    counted += try await reader.count(
                        shard: shard, collectionID: collection.id, pkFieldID: pk.id, pkIsInt: pk.type == .int64,
                        timestamp: t)
                }
                #expect(served.count == shadow.count, "replica \(replica.id) of \(collection.name)")
                #expect(Set(served) == shadow, "replica \(replica.id) of \(collection.name): pk/ts sets differ")
                #expect(counted == Int64(shadow.count))
            }
            // T before the deletes shows the deleted pks again: visibility follows T exactly
            let tombstoneTimes = try store.tombstones(collectionID: collection.id).map(\.ts)
            let early = try #require(tombstoneTimes.min()) - 1
            let replica = try #require(replicas.first)
            var before = 0
            for shard in replica.shards {
                before += try await reader.rows(
                    shard: shard, collectionID: collection.id, pkFieldID: pk.id, pkIsInt: pk.type == .int64,
                    timestamp: early
                ).count
            }
            #expect(before > shadow.count)
        }
    }
}
