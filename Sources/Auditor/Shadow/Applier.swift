import AuditorCore
import AuditorKafka
import AuditorMilvus
import Foundation
import GRDB

/// Applies decoded WAL messages to the shadow tables inside one write transaction, keeping the bucket
/// hashes in step (Milvus semantics: docs/semantics.md).
struct Applier {
    let db: Database
    var cache: ShadowStore.WriteCache
    let buckets: Int
    let pchannel: String
    /// Wall time of this transaction (Unix ms): when quarantined records and log findings were seen.
    let nowMs: Int64

    init(db: Database, cache: ShadowStore.WriteCache, buckets: Int, pchannel: String, nowMs: Int64) {
        self.nowMs = nowMs
        self.db = db
        self.cache = cache
        self.buckets = buckets
        self.pchannel = pchannel
    }

    mutating func apply(_ message: WALMessage) throws {
        // A bootstrapped collection already holds every change at or before its snapshot ts.
        switch message.body {
        case .insert, .delete, .dropPartition:
            if let id = message.body.collectionID, message.ts != 0,
                Int64(bitPattern: message.ts) <= (try collection(id).bootstrapTs)
            {
                return
            }
        default:
            break
        }
        switch message.body {
        case .createCollection(let schema):
            try createCollection(schema, ts: message.ts)
        case .insert(let insert):
            try applyInsert(insert, offset: message.offset)
        case .delete(let delete):
            try applyDelete(delete, offset: message.offset)
        case .dropPartition(let partition):
            try dropPartition(partition)
        case .dropCollection(let drop):
            try dropCollection(drop.collectionID, ts: message.ts)
        case .createPartition, .timeTick, .other:
            break
        case .undecodable(let reason):
            try quarantine(QuarantinedRecord(offset: message.offset, reason: reason, bytes: nil))
        }
    }

    // MARK: interning

    mutating func name(_ value: String) throws -> Int64 {
        if let id = cache.names[value] { return id }
        if let id = try Int64.fetchOne(db, sql: "SELECT id FROM names WHERE value = ?", arguments: [value]) {
            cache.names[value] = id
            return id
        }
        try db.execute(sql: "INSERT INTO names (value) VALUES (?)", arguments: [value])
        let id = db.lastInsertedRowID
        cache.names[value] = id
        return id
    }

    mutating func collection(_ collectionID: Int64, name: String = "", pkIsInt: Bool? = nil) throws
        -> ShadowStore.CollectionEntry
    {
        if var entry = cache.collections[collectionID] {
            if entry.pkIsInt == nil, let pkIsInt {
                entry.pkIsInt = pkIsInt
                try db.execute(
                    sql: "UPDATE collections SET pk_is_int = ? WHERE id = ?", arguments: [pkIsInt, entry.local])
                cache.collections[collectionID] = entry
            }
            return entry
        }
        if let row = try Row.fetchOne(
            db, sql: "SELECT id, state, pk_is_int, pchannels, bootstrap_ts FROM collections WHERE collection_id = ?",
            arguments: [collectionID])
        {
            var entry = ShadowStore.CollectionEntry(
                local: row["id"], live: (row["state"] as String) == "live", pkIsInt: row["pk_is_int"],
                pchannels: Set(((row["pchannels"] as String?) ?? "").split(separator: ",").map(String.init)),
                bootstrapTs: (row["bootstrap_ts"] as Int64?) ?? 0)
            cache.collections[collectionID] = entry
            if entry.pkIsInt == nil, pkIsInt != nil { entry = try collection(collectionID, pkIsInt: pkIsInt) }
            return entry
        }
        // First seen through data, not through CreateCollection: its beginning is not in the log we read.
        try db.execute(
            sql: """
                INSERT INTO collections (collection_id, name, pk_is_int, history, buckets, pchannels)
                VALUES (?, ?, ?, 'incomplete', ?, '')
                """,
            arguments: [collectionID, name, pkIsInt, buckets])
        let entry = ShadowStore.CollectionEntry(
            local: db.lastInsertedRowID, live: true, pkIsInt: pkIsInt, pchannels: [])
        cache.collections[collectionID] = entry
        return entry
    }

    mutating func notePchannel(_ collectionID: Int64) throws {
        guard var entry = cache.collections[collectionID], !entry.pchannels.contains(pchannel) else { return }
        entry.pchannels.insert(pchannel)
        cache.collections[collectionID] = entry
        try db.execute(
            sql: "UPDATE collections SET pchannels = ? WHERE id = ?",
            arguments: [entry.pchannels.sorted().joined(separator: ","), entry.local])
    }

    // MARK: DDL

    mutating func createCollection(_ schema: CollectionSchemaInfo, ts: UInt64) throws {
        let pkIsInt = schema.primaryKey.map { $0.type == .int64 }
        let summary = ShadowStore.schemaJSON(schema)
        if cache.collections[schema.collectionID] == nil,
            try Int64.fetchOne(
                db, sql: "SELECT id FROM collections WHERE collection_id = ?", arguments: [schema.collectionID]) == nil
        {
            try db.execute(
                sql: """
                    INSERT INTO collections (collection_id, name, db, schema_json, pk_is_int, history, buckets, pchannels)
                    VALUES (?, ?, ?, ?, ?, 'complete', ?, '')
                    """,
                arguments: [schema.collectionID, schema.name, schema.dbName, summary, pkIsInt, buckets])
        } else {
            // CreateCollection is broadcast to each pchannel of the collection: later copies only refresh.
            try db.execute(
                sql: """
                    UPDATE collections SET name = ?, db = ?, schema_json = ?, pk_is_int = COALESCE(pk_is_int, ?)
                    WHERE collection_id = ?
                    """,
                arguments: [schema.name, schema.dbName, summary, pkIsInt, schema.collectionID])
            cache.collections[schema.collectionID] = nil
        }
        _ = try collection(schema.collectionID)
        try notePchannel(schema.collectionID)
    }

    mutating func dropCollection(_ collectionID: Int64, ts: UInt64) throws {
        let entry = try collection(collectionID)
        try db.execute(
            sql: "UPDATE collections SET state = 'dropped', dropped_ts = ? WHERE id = ?",
            arguments: [Int64(bitPattern: ts), entry.local])
        try db.execute(sql: "DELETE FROM rows WHERE coll = ?", arguments: [entry.local])
        try db.execute(sql: "DELETE FROM tombstones WHERE coll = ?", arguments: [entry.local])
        try db.execute(sql: "DELETE FROM buckets WHERE coll = ?", arguments: [entry.local])
        // A dropped collection has no replicas left to be wrong: its open replica findings end with it (at the
        // drop's physical time), or `report` would page for a collection that no longer exists.
        try db.execute(
            sql: """
                UPDATE findings SET state = 'resolved', resolved_ms = ?, detail = detail || '; collection dropped'
                WHERE collection_id = ? AND replica_id IS NOT NULL AND state != 'resolved'
                """,
            arguments: [Int64(ts >> 18), collectionID])
        cache.buckets[entry.local] = nil
        cache.collections[collectionID]?.live = false
    }

    mutating func dropPartition(_ partition: PartitionMessage) throws {
        let entry = try collection(partition.collectionID)
        let part = try name(String(partition.partitionID))
        let removed = try Row.fetchAll(
            db, sql: "DELETE FROM rows WHERE coll = ? AND part = ? RETURNING pk, ts, hash",
            arguments: [entry.local, part])
        for row in removed {
            try toggle(
                entry.local, pkBytes: [UInt8](row["pk"] as Data), ts: UInt64(bitPattern: row["ts"]),
                rowHash: UInt64(bitPattern: row["hash"]), delta: -1)
        }
    }

    // MARK: rows

    mutating func applyInsert(_ insert: InsertMessage, offset: Int64) throws {
        let pkIsInt = insert.rows.first.map { if case .int = $0.pk { return true } else { return false } }
        let entry = try collection(insert.collectionID, name: insert.collectionName, pkIsInt: pkIsInt)
        guard entry.live else { return }
        try notePchannel(insert.collectionID)
        let part = try name(String(insert.partitionID))
        let shard = try name(insert.shard)
        let statement = try db.cachedStatement(
            sql:
                "INSERT OR IGNORE INTO rows (coll, pk, ts, seq, hash, part, shard, off) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        let tombstone = try db.cachedStatement(
            sql: "SELECT 1 FROM tombstones WHERE coll = ? AND pk = ? AND ts > ? LIMIT 1")
        let newestTombstone = try maxTombstoneTs(entry.local)
        for (index, row) in insert.rows.enumerated() {
            let pkBytes = ShadowHashing.pkBytes(row.pk)
            let ts = Int64(bitPattern: row.ts)
            // A delete with a later ts already applied hides this version (it was dead on arrival).
            if ts < newestTombstone, try Bool.fetchOne(tombstone, arguments: [entry.local, Data(pkBytes), ts]) == true {
                continue
            }
            // seq is deterministic (offset, row index): re-applying a record inserts nothing.
            let seq = offset << 20 | Int64(index)
            try statement.execute(arguments: [
                entry.local, Data(pkBytes), ts, seq, Int64(bitPattern: row.rowHash), part, shard, offset,
            ])
            if db.changesCount == 1 {
                try toggle(entry.local, pkBytes: pkBytes, ts: row.ts, rowHash: row.rowHash, delta: 1)
            }
        }
    }

    mutating func applyDelete(_ delete: DeleteMessage, offset: Int64) throws {
        let pkIsInt = delete.keys.first.map { if case .int = $0.pk { return true } else { return false } }
        let entry = try collection(delete.collectionID, name: delete.collectionName, pkIsInt: pkIsInt)
        guard entry.live else { return }
        try notePchannel(delete.collectionID)
        let shard = try name(delete.shard)
        let allPartitions = delete.partitionID == -1
        let part = allPartitions ? 0 : try name(String(delete.partitionID))
        let remove = try db.cachedStatement(
            sql: allPartitions
                ? "DELETE FROM rows WHERE coll = ? AND pk = ? AND ts < ? RETURNING ts, seq, hash"
                : "DELETE FROM rows WHERE coll = ? AND pk = ? AND ts < ? AND part = ? RETURNING ts, seq, hash")
        let keep = try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO deleted_rows (coll, pk, ts, seq, hash, deleted_ts) VALUES (?, ?, ?, ?, ?, ?)")
        let tombstone = try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO tombstones (coll, pk, ts, shard, off) VALUES (?, ?, ?, ?, ?)")
        for key in delete.keys {
            let pkBytes = ShadowHashing.pkBytes(key.pk)
            let ts = Int64(bitPattern: key.ts)
            let arguments: StatementArguments =
                allPartitions ? [entry.local, Data(pkBytes), ts] : [entry.local, Data(pkBytes), ts, part]
            for removed in try Row.fetchAll(remove, arguments: arguments) {
                let (removedTs, seq, hash): (Int64, Int64, Int64) = (removed["ts"], removed["seq"], removed["hash"])
                try keep.execute(arguments: [entry.local, Data(pkBytes), removedTs, seq, hash, ts])
                try toggle(
                    entry.local, pkBytes: pkBytes, ts: UInt64(bitPattern: removed["ts"]),
                    rowHash: UInt64(bitPattern: removed["hash"]), delta: -1)
            }
            try tombstone.execute(arguments: [entry.local, Data(pkBytes), ts, shard, offset])
            cache.maxTombstoneTs[entry.local] = max(try maxTombstoneTs(entry.local), ts)
        }
    }

    mutating func maxTombstoneTs(_ coll: Int64) throws -> Int64 {
        if let known = cache.maxTombstoneTs[coll] { return known }
        let value = try Int64.fetchOne(db, sql: "SELECT MAX(ts) FROM tombstones WHERE coll = ?", arguments: [coll]) ?? 0
        cache.maxTombstoneTs[coll] = value
        return value
    }

    // MARK: buckets

    mutating func toggle(_ coll: Int64, pkBytes: [UInt8], ts: UInt64, rowHash: UInt64, delta: Int64) throws {
        if cache.buckets[coll] == nil { cache.buckets[coll] = try Self.loadBuckets(db, coll: coll, count: buckets) }
        let bucket = ShadowHashing.bucket(pkBytes: pkBytes, buckets: buckets)
        let version = ShadowHashing.version(pkBytes: pkBytes, ts: ts, rowHash: rowHash)
        cache.buckets[coll]!.hashes[bucket] ^= version
        cache.buckets[coll]!.counts[bucket] += delta
        cache.buckets[coll]!.dirty.insert(bucket)
    }

    static func loadBuckets(_ db: Database, coll: Int64, count: Int) throws -> ShadowStore.BucketTable {
        var table = ShadowStore.BucketTable(
            hashes: Array(repeating: 0, count: count), counts: Array(repeating: 0, count: count))
        for row in try Row.fetchAll(
            db, sql: "SELECT bucket, hash, count FROM buckets WHERE coll = ?", arguments: [coll])
        {
            let bucket: Int = row["bucket"]
            guard bucket < count else { continue }
            table.hashes[bucket] = UInt64(bitPattern: row["hash"])
            table.counts[bucket] = row["count"]
        }
        return table
    }

    mutating func flushBuckets() throws {
        let statement = try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO buckets (coll, bucket, hash, count) VALUES (?, ?, ?, ?)")
        for (coll, table) in cache.buckets where !table.dirty.isEmpty {
            for bucket in table.dirty.sorted() {
                try statement.execute(arguments: [
                    coll, bucket, Int64(bitPattern: table.hashes[bucket]), table.counts[bucket],
                ])
            }
            cache.buckets[coll]!.dirty = []
        }
    }

    // MARK: bad input and log findings

    mutating func quarantine(_ record: QuarantinedRecord) throws {
        try db.execute(
            sql: "INSERT OR IGNORE INTO quarantine (pchannel, off, reason, bytes, seen_ms) VALUES (?, ?, ?, ?, ?)",
            arguments: [
                pchannel, record.offset, record.reason, record.bytes.map { Data($0) },
                nowMs,
            ])
        // Every collection this pchannel carries may have lost a change: taint them from here on.
        try db.execute(
            sql: """
                UPDATE collections SET tainted_pchannel = ?, tainted_offset = ?
                WHERE tainted_offset IS NULL AND (',' || pchannels || ',') LIKE ?
                """,
            arguments: [pchannel, record.offset, "%," + pchannel + ",%"])
    }

    mutating func record(_ finding: LogFinding) throws {
        try db.execute(
            sql: """
                INSERT INTO findings (kind, state, pchannel, collection_id, from_offset, to_offset, detail, first_seen_ms)
                VALUES (?, 'confirmed', ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                finding.kind.rawValue, finding.pchannel, finding.collectionID, finding.fromOffset, finding.toOffset,
                finding.detail, nowMs,
            ])
    }
}
