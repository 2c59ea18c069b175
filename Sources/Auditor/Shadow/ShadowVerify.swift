import AuditorCore
import AuditorKafka
import AuditorMilvus

/// Self-checks of the shadow, and comparison of two shadows (e.g. after crashes vs a fresh replay).
extension ShadowStore {
    /// Problems found: incremental bucket hashes that differ from a recomputation over the rows.
    public func verify() throws -> [String] {
        var problems: [String] = []
        for collection in try collectionIDs() {
            let incremental = try buckets(collectionID: collection)
            let recomputed = try recomputedBuckets(collectionID: collection)
            let bad = (0..<incremental.hashes.count).filter {
                incremental.hashes[$0] != recomputed.hashes[$0] || incremental.counts[$0] != recomputed.counts[$0]
            }
            if !bad.isEmpty {
                problems.append(
                    "collection \(collection): \(bad.count) buckets differ from a recomputation, e.g. bucket \(bad[0])")
            }
        }
        return problems
    }

    /// Differences in rows, tombstones and bucket hashes between this shadow and another.
    public func differences(from other: ShadowStore) throws -> [String] {
        var problems: [String] = []
        let mine = Set(try collectionIDs())
        let theirs = Set(try other.collectionIDs())
        if mine != theirs { problems.append("collections differ: \(mine.sorted()) vs \(theirs.sorted())") }
        for collection in mine.intersection(theirs).sorted() {
            let a = try liveRows(collectionID: collection)
            let b = try other.liveRows(collectionID: collection)
            if a.count != b.count || Set(a) != Set(b) {
                problems.append(
                    "collection \(collection): live rows \(a.count) vs \(b.count), "
                        + "\(Set(a).symmetricDifference(Set(b)).count) versions differ")
            }
            let ta = Set(try tombstones(collectionID: collection).map { "\($0.pk)@\($0.ts)" })
            let tb = Set(try other.tombstones(collectionID: collection).map { "\($0.pk)@\($0.ts)" })
            if ta != tb { problems.append("collection \(collection): tombstones \(ta.count) vs \(tb.count)") }
            if try buckets(collectionID: collection) != other.buckets(collectionID: collection) {
                problems.append("collection \(collection): bucket hashes differ")
            }
        }
        return problems
    }
}
