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

/// The shadow's view of one collection at T, read from one SQLite snapshot for the whole round (ingest goes
/// on beside it: a read transaction keeps every range consistent with the same moment), on the store's I/O
/// queue (never on Swift's cooperative pool).
public final class StoredExpected: ExpectedView {
    let store: ShadowStore
    let reader: any DatabaseReader
    let coll: Int64?
    let isInt: Bool
    let timestamp: UInt64

    init(store: ShadowStore, reader: any DatabaseReader, coll: Int64?, isInt: Bool, timestamp: UInt64) {
        self.store = store
        self.reader = reader
        self.coll = coll
        self.isInt = isInt
        self.timestamp = timestamp
    }

    /// `body` with the snapshot and the collection's local id; `unknown` if the shadow never saw the collection.
    func read<T: Sendable>(unknown: T, _ body: @escaping @Sendable (Database, Int64) throws -> T) async throws -> T {
        guard let coll else { return unknown }
        let reader = self.reader
        return try await store.perform { _ in try reader.read { db in try body(db, coll) } }
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
    /// The expected collection at `timestamp`, read range by range from one snapshot of the shadow (a file
    /// store), or from the store itself (in memory: nothing else writes it during a round).
    public func expectedView(collectionID: Int64, at timestamp: UInt64) throws -> StoredExpected {
        var reader: any DatabaseReader = writer
        if let pool = writer as? DatabasePool { reader = try pool.makeSnapshot() }
        let local = try reader.read { db in try self.local(db, collectionID) }
        return StoredExpected(
            store: self, reader: reader, coll: local?.id, isInt: local?.pkIsInt ?? false, timestamp: timestamp)
    }
}
