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

    /// A kind of difference counted over a whole comparison, with the first `witnessLimit` pks (in pk order
    /// when added range by range in pk order).
    public struct Witnesses: Sendable, Equatable {
        public var count = 0
        public var first: [PrimaryKey] = []
        public init() {}

        mutating func add(_ pks: [PrimaryKey]) {
            count += pks.count
            if first.count < witnessLimit { first = Array((first + pks.sorted()).prefix(witnessLimit)) }
        }

        mutating func add(_ other: Witnesses) {
            count += other.count
            if first.count < witnessLimit { first = Array((first + other.first).prefix(witnessLimit)) }
        }
    }

    /// One replica's differences from the log, summed over the pk ranges compared so far.
    public struct Differences: Sendable, Equatable {
        public var missing = Witnesses()
        public var resurrected = Witnesses()
        public var stale = Witnesses()
        public var extra = Witnesses()
        /// Full mode: the log's pk and ts with other content.
        public var altered = Witnesses()
        public init() {}

        public var isEmpty: Bool { missing.count + resurrected.count + stale.count + extra.count + altered.count == 0 }

        public mutating func add(_ other: Differences) {
            missing.add(other.missing)
            resurrected.add(other.resurrected)
            stale.add(other.stale)
            extra.add(other.extra)
            altered.add(other.altered)
        }

        /// The findings these differences make; `expectedCount`/`servedCount`: the pks the log and the replica
        /// have at T over everything compared.
        public func findings(
            collectionID: Int64, timestamp: UInt64, replica: Replica, expectedCount: Int, servedCount: Int
        ) -> [ReplicaFinding] {
            func finding(_ kind: ReplicaFinding.Kind, _ found: Witnesses, _ evidence: String) -> ReplicaFinding? {
                guard found.count > 0 else { return nil }
                return ReplicaFinding(
                    kind: kind, collectionID: collectionID, replicaID: replica.id, nodeIDs: replica.nodeIDs,
                    pks: found.first, pkCount: found.count, timestamp: timestamp, evidence: evidence)
            }
            var extraAndAltered = extra
            extraAndAltered.count += altered.count
            extraAndAltered.first = Array((extra.first + altered.first).sorted().prefix(witnessLimit))
            return [
                finding(
                    .missing, missing,
                    "\(missing.count) of \(expectedCount) pks live in the log at T are not served "
                        + "(replica serves \(servedCount))"),
                finding(.resurrected, resurrected, "\(resurrected.count) pks deleted in the log before T are served"),
                finding(.stale, stale, "\(stale.count) pks served with an older insert ts than the log's newest"),
                finding(
                    .extra, extraAndAltered,
                    "\(extra.count) pks/versions served that the log never produced"
                        + (altered.count == 0
                            ? "" : "; \(altered.count) rows with the log's pk and ts but other content (row hash)")),
            ].compactMap { $0 }
        }
    }

    /// `totals`: the whole collection's pk counts when the rows given are only the mismatched buckets'.
    public static func compare(
        collectionID: Int64, timestamp: UInt64, shadowRows: [ShadowStore.LiveRow], tombstones: [DeletedKey],
        replica: Replica, totals: (expected: Int, served: Int)? = nil
    ) -> [ReplicaFinding] {
        let found = differences(
            timestamp: timestamp, shadowRows: shadowRows, tombstones: tombstones, served: replica.rows)
        return found.findings(
            collectionID: collectionID, timestamp: timestamp, replica: replica,
            expectedCount: totals?.expected
                ?? newest(shadowRows.lazy.filter { $0.ts <= timestamp }.map { ($0.pk, $0.ts) }).count,
            servedCount: totals?.served ?? Set(replica.rows.map(\.pk)).count)
    }

    /// What differs between a replica's rows and the shadow's as of T (rows and deletes after T excluded).
    public static func differences(
        timestamp: UInt64, shadowRows: [ShadowStore.LiveRow], tombstones: [DeletedKey], served rows: [ReplicaRow]
    ) -> Differences {
        // Milvus answers one row per pk. A pk inserted twice while live (a client's retry) has several live
        // versions, and Milvus 2.3.5 may answer any of them (measured: both replicas served the older of two
        // after a proxy restart): a live version is right, only one no longer live — or none — is not.
        var expected: [PrimaryKey: UInt64] = [:]
        var versions: [PrimaryKey: [UInt64: UInt64]] = [:]  // pk → live version ts → row hash
        for row in shadowRows where row.ts <= timestamp {
            versions[row.pk, default: [:]][row.ts] = row.rowHash
            expected[row.pk] = max(expected[row.pk] ?? 0, row.ts)
        }
        var deletedAt: [PrimaryKey: UInt64] = [:]
        for key in tombstones where key.ts <= timestamp { deletedAt[key.pk] = max(deletedAt[key.pk] ?? 0, key.ts) }
        var served: [PrimaryKey: UInt64] = [:]
        var servedHash: [PrimaryKey: UInt64] = [:]
        for row in rows where row.ts >= served[row.pk] ?? 0 {
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
            if got > ts {
                extra.append(pk)
            } else if let version = versions[pk]?[got] {
                if let hash = servedHash[pk], hash != version {
                    altered.append(pk)  // full mode: same version, other content
                }
            } else {
                stale.append(pk)
            }
        }
        for (pk, ts) in served where expected[pk] == nil {
            if let deleted = deletedAt[pk], ts < deleted { resurrected.append(pk) } else { extra.append(pk) }
        }
        var found = Differences()
        found.missing.add(missing)
        found.resurrected.add(resurrected)
        found.stale.add(stale)
        found.extra.add(extra)
        found.altered.add(altered)
        return found
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

    /// What the log holds at T, summed over the pk ranges compared: live versions (duplicates counted: what
    /// `count(*)` must answer), distinct pks, and pks with more than one live version.
    public struct LogTotals: Sendable, Equatable {
        public var versions = 0
        public var pks = 0
        public var duplicated = Witnesses()
        public init() {}

        mutating func add(_ cut: ShadowCut) {
            versions += cut.versions
            pks += cut.newest.count
            duplicated.add(cut.duplicated)
        }
    }

    /// With the same pk set as the log: `counted` (the replica's `count(*)` at T) against the live versions
    /// the log leaves at T. A difference means duplicates lost or gained.
    static func versions(
        collectionID: Int64, timestamp: UInt64, totals: LogTotals, replica: Replica, counted: Int64
    ) -> ReplicaFinding? {
        guard counted != Int64(totals.versions) else { return nil }
        return ReplicaFinding(
            kind: .duplicatePK, collectionID: collectionID, replicaID: replica.id, nodeIDs: replica.nodeIDs,
            pks: totals.duplicated.first, pkCount: abs(Int(counted) - totals.versions), timestamp: timestamp,
            evidence:
                "count(*) = \(counted) but the log leaves \(totals.versions) live versions of \(totals.pks) pks "
                + "(\(totals.duplicated.count) pks inserted again while live)")
    }

    /// Replica-vs-replica, summed over the pk ranges compared so far: pks served by one and not the other
    /// (or with different ts), and each side's row count.
    public struct Divergence: Sendable, Equatable {
        public var differing = Witnesses()
        public var left = 0
        public var right = 0
        public init() {}

        public mutating func add(_ a: [ReplicaRow], _ b: [ReplicaRow]) {
            let (left, right) = (Set(a), Set(b))
            differing.add(Array(Set(left.symmetricDifference(right).map(\.pk))))
            self.left += left.count
            self.right += right.count
        }

        /// Symmetric: names both replicas (the lower id as `replicaID`, the other as `peerReplicaID`), neither
        /// as the culprit. `a` is the replica whose rows were added first.
        public func finding(collectionID: Int64, timestamp: UInt64, _ a: Replica, _ b: Replica) -> ReplicaFinding? {
            guard differing.count > 0 else { return nil }
            let ((a, aRows), (b, bRows)) = a.id <= b.id ? ((a, left), (b, right)) : ((b, right), (a, left))
            var finding = ReplicaFinding(
                kind: .replicaDivergence, collectionID: collectionID, replicaID: a.id, nodeIDs: a.nodeIDs,
                pks: differing.first, pkCount: differing.count, timestamp: timestamp,
                evidence:
                    "replicas \(a.id) (\(aRows) rows) and \(b.id) (\(bRows) rows) differ on \(differing.count) pks")
            finding.peerReplicaID = b.id
            finding.peerNodeIDs = b.nodeIDs
            return finding
        }
    }

    /// Replica-vs-replica over the rows given.
    public static func divergence(collectionID: Int64, timestamp: UInt64, _ a: Replica, _ b: Replica) -> ReplicaFinding?
    {
        var found = Divergence()
        found.add(a.rows, b.rows)
        return found.finding(collectionID: collectionID, timestamp: timestamp, a, b)
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
