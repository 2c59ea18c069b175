import Auditor
import Testing

@testable import AuditorAudit

@Suite("Replica comparison")
struct ReplicaComparisonTests {
    let t: UInt64 = 100

    func rows(_ pairs: [(Int64, UInt64)]) -> [ShadowStore.LiveRow] {
        pairs.map { ShadowStore.LiveRow(pk: .int($0.0), ts: $0.1, rowHash: 0) }
    }

    func served(_ pairs: [(Int64, UInt64)]) -> ReplicaComparison.Replica {
        ReplicaComparison.Replica(id: 7, nodeIDs: [3], rows: pairs.map { ReplicaRow(pk: .int($0.0), ts: $0.1) })
    }

    @Test func aHealthyReplicaHasNoFindings() {
        let findings = ReplicaComparison.compare(
            collectionID: 1, timestamp: t, shadowRows: rows([(1, 10), (2, 20), (3, 150)]),
            tombstones: [DeletedKey(pk: .int(4), ts: 50)], replica: served([(1, 10), (2, 20)]))
        #expect(findings.isEmpty)  // pk 3 was inserted after T, pk 4 deleted before T
    }

    @Test func eachKindIsNamedWithItsPks() {
        let findings = ReplicaComparison.compare(
            collectionID: 1, timestamp: t,
            shadowRows: rows([(1, 10), (2, 20), (3, 30), (5, 60), (5, 40)]),
            tombstones: [DeletedKey(pk: .int(4), ts: 50), DeletedKey(pk: .int(6), ts: 120)],
            replica: served([(1, 10), (3, 25), (4, 45), (5, 60), (9, 90)]))
        let byKind = Dictionary(uniqueKeysWithValues: findings.map { ($0.kind, $0) })
        #expect(byKind[.missing]?.pks == [.int(2)])
        #expect(byKind[.stale]?.pks == [.int(3)])
        #expect(byKind[.resurrected]?.pks == [.int(4)])
        #expect(byKind[.extra]?.pks == [.int(9)])
        #expect(findings.allSatisfy { $0.replicaID == 7 && $0.nodeIDs == [3] && $0.timestamp == t })
        // a duplicate pk (two live versions) is served once, newest version: not a finding
        #expect(byKind[.missing]?.pkCount == 1)
    }

    @Test func aPKInsertedTwiceMayBeServedAtEitherLiveVersionButNoOther() {
        // measured on Milvus 2.3.5: after a client retried an insert across a proxy restart, both replicas served
        // the older of the two live versions
        let shadow = rows([(1, 10), (1, 20), (2, 30), (2, 40)])
        #expect(
            ReplicaComparison.compare(
                collectionID: 1, timestamp: t, shadowRows: shadow, tombstones: [],
                replica: served([(1, 10), (2, 40)])
            ).isEmpty)
        let findings = ReplicaComparison.compare(
            collectionID: 1, timestamp: t, shadowRows: shadow, tombstones: [], replica: served([(1, 5), (2, 35)]))
        #expect(findings.map(\.kind) == [.stale] && findings.first?.pkCount == 2)  // not a version the log has
        // full mode: the older version's content is what it is compared with
        let hashed = [
            ShadowStore.LiveRow(pk: .int(1), ts: 10, rowHash: 111),
            ShadowStore.LiveRow(pk: .int(1), ts: 20, rowHash: 222),
        ]
        let right = ReplicaComparison.differences(
            timestamp: t, shadowRows: hashed, tombstones: [], served: [ReplicaRow(pk: .int(1), ts: 10, rowHash: 111)])
        let wrong = ReplicaComparison.differences(
            timestamp: t, shadowRows: hashed, tombstones: [], served: [ReplicaRow(pk: .int(1), ts: 10, rowHash: 222)])
        #expect(right.altered.count == 0 && wrong.altered.count == 1)
    }

    @Test func witnessesAreCappedButCounted() {
        let shadow = rows((0..<100).map { (Int64($0), 10) })
        let findings = ReplicaComparison.compare(
            collectionID: 1, timestamp: t, shadowRows: shadow, tombstones: [], replica: served([]))
        #expect(findings.first?.pks.count == ReplicaComparison.witnessLimit)
        #expect(findings.first?.pkCount == 100)
    }

    @Test func replicasThatDisagreeAreReported() {
        let a = served([(1, 10), (2, 20)])
        var b = served([(1, 10)])
        b.id = 8
        #expect(ReplicaComparison.divergence(collectionID: 1, timestamp: t, a, b)?.pks == [.int(2)])
        #expect(ReplicaComparison.divergence(collectionID: 1, timestamp: t, a, a) == nil)
    }
}

@Suite("Bucket-first comparison")
struct BucketFirstTests {
    @Test func onlyBucketsWithADifferenceAreFlagged() {
        let shadow = (1...1000).map { ShadowStore.LiveRow(pk: .int($0), ts: 10, rowHash: 0) }
        let served = shadow.map { ReplicaRow(pk: $0.pk, ts: $0.ts) }
        func bucket(_ pk: PrimaryKey) -> Int { ShadowHashing.bucket(pkBytes: ShadowHashing.pkBytes(pk), buckets: 64) }
        #expect(ShadowCut(rows: shadow, timestamp: 100, buckets: 64).mismatchedBuckets(served).isEmpty)
        var changed = served.filter { $0.pk != .int(7) }  // missing
        changed[100].ts = 5  // stale
        let bad = ShadowCut(rows: shadow, timestamp: 100, buckets: 64).mismatchedBuckets(changed)
        #expect(bad == [bucket(.int(7)), bucket(changed[100].pk)])
        // rows after T are not expected yet
        let later = shadow + [ShadowStore.LiveRow(pk: .int(5000), ts: 200, rowHash: 0)]
        #expect(ShadowCut(rows: later, timestamp: 100, buckets: 64).mismatchedBuckets(served).isEmpty)
    }
}
