import AuditorCore
import AuditorMilvus
import Foundation
import GRDB

/// What the log says one collection holds at the cut T, read one pk range at a time: an audit never holds a
/// whole collection (1M rows of pks and versions would be hundreds of MB), only one range's rows.
public protocol ExpectedView: Sendable {
    /// Consecutive pk ranges covering every pk, each with about `rows` row versions (in pk order).
    func windows(rows: Int) async throws -> [PKRange]
    /// The row versions live at T (and those deleted after T) and the deletes up to T, of the pks in `range`.
    func window(_ range: PKRange) async throws -> ExpectedWindow
    /// Live versions at T, duplicates counted (what `count(*)` must answer).
    func versionCount() async throws -> Int64
}

public struct ExpectedWindow: Sendable {
    public var rows: [ShadowStore.LiveRow]
    public var tombstones: [DeletedKey]
    public init(rows: [ShadowStore.LiveRow], tombstones: [DeletedKey]) {
        self.rows = rows
        self.tombstones = tombstones
    }
}

/// Split points of sorted keys so that each range holds about `rows` of them; repeated keys (versions of one
/// pk) stay in one range.
func windowBoundaries<Key: Equatable>(rows: Int, _ next: () throws -> Key?) rethrows -> [Key] {
    var boundaries: [Key] = []
    var inWindow = 0
    var previous: Key?
    while let key = try next() {
        if inWindow >= max(1, rows), key != previous {
            boundaries.append(key)
            inWindow = 0
        }
        inWindow += 1
        previous = key
    }
    return boundaries
}

/// An expected collection held in memory (tests, and callers that already have the rows).
public struct InMemoryExpected: ExpectedView {
    public var rows: [ShadowStore.LiveRow]
    public var tombstones: [DeletedKey]
    public var timestamp: UInt64

    public init(rows: [ShadowStore.LiveRow], tombstones: [DeletedKey], timestamp: UInt64) {
        self.rows = rows
        self.tombstones = tombstones
        self.timestamp = timestamp
    }

    public func windows(rows size: Int) async throws -> [PKRange] {
        var keys = rows.map(\.pk).sorted().makeIterator()
        return PKRange.split(at: windowBoundaries(rows: size) { keys.next() })
    }

    public func window(_ range: PKRange) async throws -> ExpectedWindow {
        ExpectedWindow(
            rows: rows.filter { range.contains($0.pk) }, tombstones: tombstones.filter { range.contains($0.pk) })
    }

    public func versionCount() async throws -> Int64 {
        Int64(rows.lazy.filter { $0.ts <= timestamp }.count)
    }
}

/// The shadow's view of one collection at T, one short read transaction per range, on the store's I/O queue
/// (never on Swift's cooperative pool). Ingest goes on beside it and changes nothing at or before T: it adds
/// versions after T, and a delete after T moves a version to `deleted_rows`, which keeps it for T (a range's
/// tables are read in one transaction, and a pk never changes range). Those are purged 10 minutes behind the
/// lowest tick only, far behind any round's T. No snapshot held for the whole round: a long-lived reader would
/// keep SQLite from checkpointing its WAL while ingest writes (measured: ingest at half speed with rounds
/// running back to back).
public final class StoredExpected: ExpectedView {
    let store: ShadowStore
    let coll: Int64?
    let isInt: Bool
    let timestamp: UInt64

    init(store: ShadowStore, coll: Int64?, isInt: Bool, timestamp: UInt64) {
        self.store = store
        self.coll = coll
        self.isInt = isInt
        self.timestamp = timestamp
    }

    /// `body` in one read transaction with the collection's local id; `unknown` if the shadow never saw the collection.
    func read<T: Sendable>(unknown: T, _ body: @escaping @Sendable (Database, Int64) throws -> T) async throws -> T {
        guard let coll else { return unknown }
        return try await store.perform { store in try store.writer.read { db in try body(db, coll) } }
    }

    public func windows(rows size: Int) async throws -> [PKRange] {
        let isInt = self.isInt
        let boundaries: [PrimaryKey] = try await read(unknown: []) { db, coll in
            // One pass over the pk index; only the boundaries are kept.
            let sql = "SELECT pk FROM rows WHERE coll = ? ORDER BY pk"
            let keys = try Data.fetchCursor(db, sql: sql, arguments: [coll])
            return try windowBoundaries(rows: size) { try keys.next() }
                .compactMap { ShadowHashing.primaryKey([UInt8]($0), isInt: isInt) }
        }
        return PKRange.split(at: boundaries)
    }

    public func window(_ range: PKRange) async throws -> ExpectedWindow {
        let (isInt, t) = (self.isInt, Int64(bitPattern: timestamp))
        return try await read(unknown: ExpectedWindow(rows: [], tombstones: [])) { db, coll in
            try ShadowStore.expected(db, coll: coll, isInt: isInt, t: t, range: range)
        }
    }

    public func versionCount() async throws -> Int64 {
        let t = Int64(bitPattern: timestamp)
        return try await read(unknown: 0) { db, coll in try ShadowStore.expectedCount(db, coll: coll, t: t) }
    }
}

extension ShadowStore {
    /// The expected collection at `timestamp`, read range by range.
    public func expectedView(collectionID: Int64, at timestamp: UInt64) throws -> StoredExpected {
        let local = try writer.read { db in try self.local(db, collectionID) }
        return StoredExpected(
            store: self, coll: local?.id, isInt: local?.pkIsInt ?? false, timestamp: timestamp)
    }
}
