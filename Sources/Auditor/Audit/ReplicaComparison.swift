import AuditorCore
import AuditorMilvus
import AuditorShadow

/// A difference between what a replica serves and what the log says it must serve, with its witness.
/// Compares one replica's rows at T with the shadow as of T (rows and deletes after T excluded).
public enum ReplicaComparison {
    public static let witnessLimit = 20

    public struct Replica: Sendable {
        public var id: Int64
        public var nodeIDs: [Int64]
        public var rows: [ReplicaRow]
        public init(id: Int64, nodeIDs: [Int64], rows: [ReplicaRow]) {
            self.id = id
            self.nodeIDs = nodeIDs
            self.rows = rows
        }
    }

    /// `totals`: the whole collection's pk counts when the rows given are only the mismatched buckets'.
    public static func compare(
        collectionID: Int64, timestamp: UInt64, shadowRows: [ShadowStore.LiveRow], tombstones: [DeletedKey],
        replica: Replica, totals: (expected: Int, served: Int)? = nil
    ) -> [ReplicaFinding] {
        // Milvus answers one row per pk: the newest live version as of T.
        var expected: [PrimaryKey: UInt64] = [:]
        var expectedHash: [PrimaryKey: UInt64] = [:]
        for row in shadowRows where row.ts <= timestamp && row.ts >= expected[row.pk] ?? 0 {
            expected[row.pk] = row.ts
            expectedHash[row.pk] = row.rowHash
        }
        var deletedAt: [PrimaryKey: UInt64] = [:]
        for key in tombstones where key.ts <= timestamp { deletedAt[key.pk] = max(deletedAt[key.pk] ?? 0, key.ts) }
        var served: [PrimaryKey: UInt64] = [:]
        var servedHash: [PrimaryKey: UInt64] = [:]
        for row in replica.rows where row.ts >= served[row.pk] ?? 0 {
            served[row.pk] = row.ts
            servedHash[row.pk] = row.rowHash
        }

        var missing: [PrimaryKey] = []
        var extra: [PrimaryKey] = []
        var resurrected: [PrimaryKey] = []
        var stale: [PrimaryKey] = []
        var altered: [PrimaryKey] = []
        for (pk, ts) in expected {
            guard let got = served[pk] else {
                missing.append(pk)
                continue
            }
            if got < ts {
                stale.append(pk)
            } else if got > ts {
                extra.append(pk)
            } else if let hash = servedHash[pk], hash != expectedHash[pk] {
                altered.append(pk)  // full mode: same version, other content
            }
        }
        for (pk, ts) in served where expected[pk] == nil {
            if let deleted = deletedAt[pk], ts < deleted { resurrected.append(pk) } else { extra.append(pk) }
        }
        func finding(_ kind: ReplicaFinding.Kind, _ pks: [PrimaryKey], _ evidence: String) -> ReplicaFinding? {
            guard !pks.isEmpty else { return nil }
            let sorted = pks.sorted()
            return ReplicaFinding(
                kind: kind, collectionID: collectionID, replicaID: replica.id, nodeIDs: replica.nodeIDs,
                pks: Array(sorted.prefix(witnessLimit)), pkCount: pks.count, timestamp: timestamp, evidence: evidence)
        }
        let expectedCount = totals?.expected ?? expected.count
        let servedCount = totals?.served ?? served.count
        return [
            finding(
                .missing, missing,
                "\(missing.count) of \(expectedCount) pks live in the log at T are not served "
                    + "(replica serves \(servedCount))"),
            finding(.resurrected, resurrected, "\(resurrected.count) pks deleted in the log before T are served"),
            finding(.stale, stale, "\(stale.count) pks served with an older insert ts than the log's newest"),
            finding(
                .extra, extra + altered,
                "\(extra.count) pks/versions served that the log never produced"
                    + (altered.isEmpty
                        ? "" : "; \(altered.count) rows with the log's pk and ts but other content (row hash)")),
        ].compactMap { $0 }
    }

    /// Bucket-first comparison: the segment-hash buckets (ShadowHashing.bucket) whose digest of
    /// (pk, newest ts) differs between the shadow as of T (its digests, computed once by `ShadowCut`) and the
    /// replica's rows. Only their rows need a row-level comparison; a clean replica costs one hash per row.
    static func mismatchedBuckets(shadowDigests: [UInt64], replicaRows: [ReplicaRow], bucketOf: (PrimaryKey) -> Int)
        -> Set<Int>
    {
        var digests = shadowDigests
        for (pk, ts) in newest(replicaRows.lazy.map { ($0.pk, $0.ts) }) {
            digests[bucketOf(pk)] ^= ShadowHashing.version(pkBytes: ShadowHashing.pkBytes(pk), ts: ts, rowHash: 0)
        }
        return Set(digests.indices.filter { digests[$0] != 0 })
    }

    /// The newest ts per pk.
    static func newest(_ versions: some Sequence<(PrimaryKey, UInt64)>) -> [PrimaryKey: UInt64] {
        var newest: [PrimaryKey: UInt64] = [:]
        for (pk, ts) in versions where ts >= newest[pk] ?? 0 { newest[pk] = ts }
        return newest
    }

    /// XOR of H(pk, ts) per bucket.
    static func digests(_ newest: [PrimaryKey: UInt64], buckets: Int, bucketOf: (PrimaryKey) -> Int) -> [UInt64] {
        var digests = [UInt64](repeating: 0, count: max(1, buckets))
        for (pk, ts) in newest {
            digests[bucketOf(pk)] ^= ShadowHashing.version(pkBytes: ShadowHashing.pkBytes(pk), ts: ts, rowHash: 0)
        }
        return digests
    }

    /// With the same pk set as the log: `counted` (the replica's `count(*)` at T) against the live versions
    /// the log leaves at T. A difference means duplicates lost or gained.
    static func versions(collectionID: Int64, cut: ShadowCut, replica: Replica, counted: Int64) -> ReplicaFinding? {
        guard counted != Int64(cut.versions) else { return nil }
        return ReplicaFinding(
            kind: .duplicatePK, collectionID: collectionID, replicaID: replica.id, nodeIDs: replica.nodeIDs,
            pks: Array(cut.duplicated.prefix(witnessLimit)), pkCount: abs(Int(counted) - cut.versions),
            timestamp: cut.timestamp,
            evidence:
                "count(*) = \(counted) but the log leaves \(cut.versions) live versions of \(cut.newest.count) pks "
                + "(\(cut.duplicated.count) pks inserted again while live)")
    }

    /// Replica-vs-replica: pks served by one and not the other (or with different ts). Symmetric: names both
    /// replicas (the lower id as `replicaID`, the other as `peerReplicaID`), neither as the culprit.
    public static func divergence(collectionID: Int64, timestamp: UInt64, _ a: Replica, _ b: Replica) -> ReplicaFinding?
    {
        let (a, b) = a.id <= b.id ? (a, b) : (b, a)
        let left = Set(a.rows)
        let right = Set(b.rows)
        let differing = Set(left.symmetricDifference(right).map(\.pk))
        guard !differing.isEmpty else { return nil }
        var finding = ReplicaFinding(
            kind: .replicaDivergence, collectionID: collectionID, replicaID: a.id, nodeIDs: a.nodeIDs,
            pks: Array(differing.sorted().prefix(witnessLimit)), pkCount: differing.count, timestamp: timestamp,
            evidence:
                "replicas \(a.id) (\(left.count) rows) and \(b.id) (\(right.count) rows) differ on \(differing.count) pks"
        )
        finding.peerReplicaID = b.id
        finding.peerNodeIDs = b.nodeIDs
        return finding
    }
}

/// The shadow as of T, computed once per audited collection and compared with every replica (and again at
/// the confirming read): newest version per pk, bucket of every pk, bucket digests, live version counts.
struct ShadowCut: Sendable {
    let timestamp: UInt64
    let buckets: Int
    let newest: [PrimaryKey: UInt64]
    private let bucketOfPK: [PrimaryKey: Int]
    let digests: [UInt64]
    /// Live versions at T, duplicates counted (what `count(*)` must answer).
    let versions: Int
    /// pks with more than one live version at T.
    let duplicated: [PrimaryKey]

    init(rows: [ShadowStore.LiveRow], timestamp: UInt64, buckets: Int) {
        self.timestamp = timestamp
        self.buckets = max(1, buckets)
        var perPK: [PrimaryKey: Int] = [:]
        var live: [(PrimaryKey, UInt64)] = []
        for row in rows where row.ts <= timestamp {
            perPK[row.pk, default: 0] += 1
            live.append((row.pk, row.ts))
        }
        versions = live.count
        duplicated = perPK.filter { $0.value > 1 }.map(\.key).sorted()
        newest = ReplicaComparison.newest(live)
        var known: [PrimaryKey: Int] = [:]
        known.reserveCapacity(newest.count)
        for pk in newest.keys {
            known[pk] = ShadowHashing.bucket(pkBytes: ShadowHashing.pkBytes(pk), buckets: self.buckets)
        }
        bucketOfPK = known
        digests = ReplicaComparison.digests(newest, buckets: self.buckets) { known[$0] ?? 0 }
    }

    func bucket(_ pk: PrimaryKey) -> Int {
        bucketOfPK[pk] ?? ShadowHashing.bucket(pkBytes: ShadowHashing.pkBytes(pk), buckets: buckets)
    }

    func mismatchedBuckets(_ rows: [ReplicaRow]) -> Set<Int> {
        ReplicaComparison.mismatchedBuckets(shadowDigests: digests, replicaRows: rows, bucketOf: bucket)
    }
}
