import AuditorCore
import AuditorKafka
import AuditorMilvus
import Foundation
import GRDB
import Synchronization

public struct ShadowError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}

/// The shadow: every live row's identity (pk → ts, row hash, partition, shard, offset), tombstones,
/// per-collection bucket hashes and per-pchannel checkpoints, in SQLite (WAL). One write transaction per
/// `ShadowBatch`: rows, tombstones, buckets and offsets commit together or not at all.
public final class ShadowStore: Sendable {
    let writer: any DatabaseWriter
    public let configuration: ShadowConfiguration
    /// In-memory copies of bucket tables and interned ids; touched only inside write transactions
    /// (serialized by GRDB) and dropped whenever a transaction fails.
    private let cache = Mutex(WriteCache())
    /// Where `perform` runs database work for async callers (GRDB serializes writes and lets reads overlap).
    private let io = DispatchQueue(label: "auditd.shadow.io", attributes: .concurrent)

    struct WriteCache {
        var buckets: [Int64: BucketTable] = [:]
        var names: [String: Int64] = [:]
        var collections: [Int64: CollectionEntry] = [:]
        /// Highest tombstone ts per collection: inserts newer than it need no tombstone lookup.
        var maxTombstoneTs: [Int64: Int64] = [:]
    }

    struct CollectionEntry {
        var local: Int64
        var live: Bool
        var pkIsInt: Bool?
        var pchannels: Set<String>
        /// Records of this collection at or before this ts are already in the bootstrap seed.
        var bootstrapTs: Int64 = 0
    }

    struct BucketTable {
        var hashes: [UInt64]
        var counts: [Int64]
        var dirty: Set<Int> = []
    }

    init(writer: any DatabaseWriter, configuration: ShadowConfiguration) throws {
        self.writer = writer
        self.configuration = configuration
        try ShadowSchema.migrator.migrate(writer)
    }

    /// Where `auditd rebuild` keeps a replaced shadow inside the state directory (`damaged-<UTC time>`).
    public static let asidePrefix = "damaged-"

    /// Opens (or creates) the shadow in `directory`/shadow.sqlite. A directory holding something else
    /// is refused with one line naming it.
    public static func open(directory: String, configuration: ShadowConfiguration = ShadowConfiguration(), create: Bool)
        throws -> ShadowStore
    {
        let path = (directory as NSString).appendingPathComponent("shadow.sqlite")
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard create else { throw ShadowError(message: "state directory '\(directory)' does not exist") }
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } else if !isDirectory.boolValue {
            throw ShadowError(message: "state directory '\(directory)' is a file")
        }
        let exists = FileManager.default.fileExists(atPath: path)
        if !exists {
            let foreign =
                (try? FileManager.default.contentsOfDirectory(atPath: directory))?.filter {
                    !$0.hasPrefix(".") && $0 != "lock" && !$0.hasPrefix(asidePrefix)
                } ?? []
            guard create else { throw ShadowError(message: "state directory '\(directory)' holds no auditd shadow") }
            guard foreign.isEmpty else {
                throw ShadowError(
                    message:
                        "state directory '\(directory)' is not empty and holds no auditd shadow (\(foreign.prefix(3).joined(separator: ", ")))"
                )
            }
        }
        var config = Configuration()
        config.busyMode = .timeout(10)
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: path, configuration: config)
            if exists { try checkAtOpen(pool, path: path, directory: directory) }
        } catch let error as ShadowError {
            throw error
        } catch let error as DatabaseError
            where [.SQLITE_CORRUPT, .SQLITE_NOTADB].contains(error.resultCode) && exists
        {
            throw damaged(path: path, directory: directory, why: error.message ?? "\(error.resultCode)")
        } catch {
            throw ShadowError(message: "cannot open '\(path)': \(error)")
        }
        do {
            return try ShadowStore(writer: pool, configuration: configuration)
        } catch let error as DatabaseError where [.SQLITE_CORRUPT, .SQLITE_NOTADB].contains(error.resultCode) {
            throw damaged(path: path, directory: directory, why: error.message ?? "\(error.resultCode)")
        }
    }

    /// An existing shadow is checked before anything writes to it: that it is one, that no newer auditd
    /// migrated it (this one would not know its tables), and SQLite's own structural check
    /// (`PRAGMA quick_check`: pages, b-trees, record formats; the content is checked against the bucket
    /// hashes by `verify()`).
    static func checkAtOpen(_ pool: DatabasePool, path: String, directory: String) throws {
        let (format, applied, problems) = try pool.read { db in
            let format = try? String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'format'")
            let applied = (try? ShadowSchema.migrator.appliedIdentifiers(db)) ?? []
            return (format, applied, try String.fetchAll(db, sql: "PRAGMA quick_check(3)"))
        }
        if problems != ["ok"] {
            throw damaged(path: path, directory: directory, why: problems.joined(separator: "; "))
        }
        guard format == ShadowSchema.marker else {
            throw ShadowError(message: "'\(path)' is not an auditd shadow")
        }
        let unknown = applied.subtracting(ShadowSchema.migrator.migrations)
        if !unknown.isEmpty {
            throw ShadowError(
                message: "state directory '\(directory)' was written by a newer auditd (schema steps "
                    + "\(unknown.sorted().joined(separator: ", ")) unknown to this one): run that version, or rebuild "
                    + "the shadow for this one with 'auditd rebuild --state \(directory)'")
        }
    }

    static func damaged(path: String, directory: String, why: String) -> ShadowError {
        untrusted("'\(path)' is damaged (\(why.replacingOccurrences(of: "\n", with: "; ")))", directory: directory)
    }

    /// A shadow that must not be built on: `problem`, then how to get a trusted one back.
    public static func untrusted(_ problem: String, directory: String) -> ShadowError {
        ShadowError(
            message: "\(problem): rebuild it from the log with 'auditd rebuild --state \(directory)' (the damaged "
                + "files are kept aside)")
    }

    /// One line when `error` is the state directory failing under SQLite — disk full, I/O error, read-only,
    /// permission lost — and nil for anything else. SQLite rolls such a transaction back whole: the last
    /// commit (rows and Kafka offsets together) stays intact, and ingest resumes from it once the cause is gone.
    public static func storageProblem(_ error: any Error) -> String? {
        guard let error = error as? DatabaseError else { return nil }
        let detail = error.message.map { " (\($0))" } ?? ""
        switch error.resultCode {
        case .SQLITE_FULL: return "its file system is full\(detail)"
        case .SQLITE_IOERR: return "I/O error\(detail)"
        case .SQLITE_READONLY: return "it cannot be written\(detail)"
        case .SQLITE_CANTOPEN: return "the shadow's files cannot be opened\(detail)"
        case .SQLITE_PERM, .SQLITE_AUTH: return "permission denied\(detail)"
        default: return nil
        }
    }

    public static func inMemory(configuration: ShadowConfiguration = ShadowConfiguration()) throws -> ShadowStore {
        try ShadowStore(writer: DatabaseQueue(), configuration: configuration)
    }

    // MARK: Bootstrap

    /// Seeds a collection from a snapshot read from Milvus at `timestamp`: its rows replace whatever the
    /// shadow held for it, and log records of the collection at or before `timestamp` are skipped from now on.
    public func bootstrap(schema: CollectionSchemaInfo, rows: [HashedRow], timestamp: UInt64) throws {
        let pkIsInt = schema.primaryKey.map { $0.type == .int64 }
        do {
            try writer.write { db in
                try cache.withLock { cache in
                    cache = WriteCache()  // derived state is rebuilt from the tables afterwards
                    try db.execute(
                        sql: """
                            INSERT INTO collections (collection_id, name, db, schema_json, pk_is_int, history,
                                buckets, pchannels, bootstrap_ts)
                            VALUES (?, ?, ?, ?, ?, 'bootstrapped', ?, ?, ?)
                            ON CONFLICT(collection_id) DO UPDATE SET name = excluded.name, db = excluded.db,
                                schema_json = excluded.schema_json, pk_is_int = excluded.pk_is_int,
                                history = 'bootstrapped', state = 'live', bootstrap_ts = excluded.bootstrap_ts
                            """,
                        arguments: [
                            schema.collectionID, schema.name, schema.dbName, Self.schemaJSON(schema), pkIsInt,
                            configuration.buckets, schema.physicalChannels.sorted().joined(separator: ","),
                            Int64(bitPattern: timestamp),
                        ])
                    let coll = try Int64.fetchOne(
                        db, sql: "SELECT id FROM collections WHERE collection_id = ?", arguments: [schema.collectionID])!
                    for table in ["rows", "tombstones", "buckets"] {
                        try db.execute(sql: "DELETE FROM \(table) WHERE coll = ?", arguments: [coll])
                    }
                    var apply = Applier(
                        db: db, cache: cache, buckets: configuration.buckets, pchannel: "",
                        nowMs: configuration.clock.nowMs())
                    let insert = try db.cachedStatement(
                        sql:
                            "INSERT INTO rows (coll, pk, ts, seq, hash, part, shard, off) VALUES (?, ?, ?, ?, ?, 0, 0, -1)"
                    )
                    for (index, row) in rows.enumerated() {
                        let pkBytes = ShadowHashing.pkBytes(row.pk)
                        try insert.execute(arguments: [
                            coll, Data(pkBytes), Int64(bitPattern: row.ts), Int64(index),
                            Int64(bitPattern: row.rowHash),
                        ])
                        try apply.toggle(coll, pkBytes: pkBytes, ts: row.ts, rowHash: row.rowHash, delta: 1)
                    }
                    try apply.flushBuckets()
                    cache = WriteCache()
                }
            }
        } catch {
            cache.withLock { $0 = WriteCache() }
            throw error
        }
    }

    // MARK: Checkpoints

    public func checkpoints() throws -> [String: ChannelCheckpoint] {
        try writer.read { db in
            var result: [String: ChannelCheckpoint] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM pchannels") {
                var checkpoint = ChannelCheckpoint(pchannel: row["name"], startOffset: row["resume_offset"])
                checkpoint.nextOffset = row["next_offset"]
                checkpoint.tickTs = UInt64(bitPattern: row["tick_ts"])
                checkpoint.tickOffset = row["tick_offset"]
                checkpoint.highWatermark = row["high_watermark"]
                checkpoint.lastMessageMs = row["last_message_ms"]
                checkpoint.epoch = row["epoch"]
                checkpoint.applied = Self.decodeOffsets(row["applied"])
                result[checkpoint.pchannel] = checkpoint
            }
            return result
        }
    }

    // MARK: Apply

    /// Applies one batch atomically.
    public func commit(_ batch: ShadowBatch) throws {
        try commit([batch])
    }

    /// `commit(_:)` on `queue` instead of the caller's (cooperative) thread: SQLite blocks on disk syncs.
    public func commit(_ batches: [ShadowBatch], on queue: DispatchQueue) async throws {
        try await perform(on: queue) { try $0.commit(batches) }
    }

    /// Runs `body` with this store on `queue` (default: the store's own I/O queue), never on Swift's
    /// cooperative pool: every SQLite call may block on the disk or on another process's lock.
    public func perform<T: Sendable>(
        on queue: DispatchQueue? = nil, _ body: @escaping @Sendable (ShadowStore) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            (queue ?? io).async {
                continuation.resume(with: Result { try body(self) })
            }
        }
    }

    /// Applies several batches (in order) in one transaction.
    public func commit(_ batches: [ShadowBatch]) throws {
        guard !batches.isEmpty else { return }
        do {
            try writer.write { db in
                try cache.withLock { cache in
                    var working = cache
                    for batch in batches {
                        var apply = Applier(
                            db: db, cache: working, buckets: configuration.buckets, pchannel: batch.pchannel,
                            nowMs: configuration.clock.nowMs())
                        for message in batch.messages { try apply.apply(message) }
                        for record in batch.quarantine { try apply.quarantine(record) }
                        for finding in batch.findings { try apply.record(finding) }
                        try apply.flushBuckets()
                        try Self.store(batch.checkpoint, db: db)
                        working = apply.cache
                    }
                    cache = working
                }
            }
        } catch {
            cache.withLock { $0 = WriteCache() }  // the transaction rolled back: forget derived state
            throw error
        }
    }

    static func store(_ c: ChannelCheckpoint, db: Database) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO pchannels (name, resume_offset, next_offset, tick_ts, tick_offset, high_watermark,
                    last_message_ms, epoch, applied) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET resume_offset = excluded.resume_offset,
                    next_offset = excluded.next_offset, tick_ts = excluded.tick_ts, tick_offset = excluded.tick_offset,
                    high_watermark = excluded.high_watermark, last_message_ms = excluded.last_message_ms,
                    epoch = excluded.epoch, applied = excluded.applied
                """
        ).execute(
            arguments: [
                // a consumed offset proves the log reached it: the watermark fetched before it may be older
                c.pchannel, c.resumeOffset, c.nextOffset, Int64(bitPattern: c.tickTs), c.tickOffset,
                max(c.highWatermark, c.nextOffset), c.lastMessageMs, c.epoch,
                encodeOffsets(c.applied.filter { $0 >= c.resumeOffset }),
            ])
    }

    static func encodeOffsets(_ offsets: Set<Int64>) -> Data {
        var data = Data(capacity: offsets.count * 8)
        for offset in offsets.sorted() { withUnsafeBytes(of: offset.littleEndian) { data.append(contentsOf: $0) } }
        return data
    }

    static func decodeOffsets(_ data: Data?) -> Set<Int64> {
        guard let data else { return [] }
        var result: Set<Int64> = []
        let bytes = [UInt8](data)
        var index = 0
        while index + 8 <= bytes.count {
            var value: UInt64 = 0
            for shift in 0..<8 { value |= UInt64(bytes[index + shift]) << (8 * shift) }
            result.insert(Int64(bitPattern: value))
            index += 8
        }
        return result
    }

    /// Removes tombstones older than the retention window (relative to `nowTs`, a hybrid timestamp).
    @discardableResult
    public func purgeTombstones(nowTs: UInt64) throws -> Int {
        let windowMs = configuration.tombstoneRetention.components.seconds * 1000
        let cutoff = HybridTimestamp.compose(milliseconds: HybridTimestamp.physicalMilliseconds(nowTs) - windowMs)
        return try writer.write { db in
            try db.execute(sql: "DELETE FROM tombstones WHERE ts < ?", arguments: [Int64(bitPattern: cutoff)])
            let purged = db.changesCount
            // Deleted versions matter only to a cut T before their delete, and T never goes below the lowest
            // tick; 10 minutes of margin for a round that computed its T before this purge.
            if let lowest = try Int64.fetchOne(db, sql: "SELECT MIN(tick_ts) FROM pchannels WHERE tick_ts > 0") {
                let margin = HybridTimestamp.physicalMilliseconds(UInt64(bitPattern: lowest)) - 600_000
                try db.execute(
                    sql: "DELETE FROM deleted_rows WHERE deleted_ts < ?",
                    arguments: [Int64(bitPattern: HybridTimestamp.compose(milliseconds: max(0, margin)))])
            }
            return purged
        }
    }
}
