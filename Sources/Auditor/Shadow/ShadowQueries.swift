import AuditorCore
import AuditorKafka
import AuditorMilvus
import Foundation
import GRDB

/// Read side of the shadow: what reports, tests and (later) the audit compare against.
extension ShadowStore {
    /// A live row version of the shadow.
    public typealias LiveRow = RowVersion

    public struct BucketState: Sendable, Equatable {
        public var hashes: [UInt64]
        public var counts: [Int64]
    }

    func local(_ db: Database, _ collectionID: Int64) throws -> (id: Int64, pkIsInt: Bool)? {
        guard
            let row = try Row.fetchOne(
                db, sql: "SELECT id, pk_is_int FROM collections WHERE collection_id = ?", arguments: [collectionID])
        else { return nil }
        return (row["id"], (row["pk_is_int"] as Bool?) ?? false)
    }

    /// Every live row version of a collection (a duplicated pk appears once per version).
    public func liveRows(collectionID: Int64) throws -> [LiveRow] {
        try writer.read { db in
            guard let (coll, isInt) = try local(db, collectionID) else { return [] }
            return try Row.fetchAll(db, sql: "SELECT pk, ts, hash FROM rows WHERE coll = ?", arguments: [coll])
                .compactMap { Self.liveRow($0, isInt: isInt) }
        }
    }

    static func liveRow(_ row: Row, isInt: Bool) -> LiveRow? {
        guard let pk = ShadowHashing.primaryKey([UInt8](row["pk"] as Data), isInt: isInt) else { return nil }
        return LiveRow(pk: pk, ts: UInt64(bitPattern: row["ts"]), rowHash: UInt64(bitPattern: row["hash"]))
    }

    static func deletedKey(_ row: Row, isInt: Bool) -> DeletedKey? {
        guard let pk = ShadowHashing.primaryKey([UInt8](row["pk"] as Data), isInt: isInt) else { return nil }
        return DeletedKey(pk: pk, ts: UInt64(bitPattern: row["ts"]))
    }

    /// What the log says a collection looked like at `timestamp`, read in one transaction: the row versions
    /// live at T (live now, or removed by a delete after T) and the tombstones at or before T.
    public func expected(collectionID: Int64, at timestamp: UInt64) throws -> (
        rows: [LiveRow], tombstones: [DeletedKey]
    ) {
        try writer.read { db in
            guard let (coll, isInt) = try local(db, collectionID) else { return ([], []) }
            let window = try Self.expected(db, coll: coll, isInt: isInt, t: Int64(bitPattern: timestamp), range: .all)
            return (window.rows, window.tombstones)
        }
    }

    /// The row versions live at `t` (and those deleted after `t`) and the tombstones up to `t` of the pks in
    /// `range` (a range scan of each table's primary key).
    static func expected(_ db: Database, coll: Int64, isInt: Bool, t: Int64, range: PKRange) throws -> ExpectedWindow {
        var bounds = ""
        var keys: [any DatabaseValueConvertible] = []
        if let lower = range.lower {
            bounds += " AND pk >= ?"
            keys.append(Data(ShadowHashing.pkBytes(lower)))
        }
        if let upper = range.upper {
            bounds += " AND pk < ?"
            keys.append(Data(ShadowHashing.pkBytes(upper)))
        }
        let live = try Row.fetchAll(
            db, sql: "SELECT pk, ts, hash FROM rows WHERE coll = ? AND ts <= ?" + bounds,
            arguments: StatementArguments([coll, t] + keys)
        ).compactMap { liveRow($0, isInt: isInt) }
        let deletedAfter = try Row.fetchAll(
            db, sql: "SELECT pk, ts, hash FROM deleted_rows WHERE coll = ? AND ts <= ? AND deleted_ts > ?" + bounds,
            arguments: StatementArguments([coll, t, t] + keys)
        ).compactMap { liveRow($0, isInt: isInt) }
        let tombstones = try Row.fetchAll(
            db, sql: "SELECT pk, ts FROM tombstones WHERE coll = ? AND ts <= ?" + bounds,
            arguments: StatementArguments([coll, t] + keys)
        ).compactMap { deletedKey($0, isInt: isInt) }
        return ExpectedWindow(rows: live + deletedAfter, tombstones: tombstones)
    }

    public func tombstones(collectionID: Int64) throws -> [DeletedKey] {
        try writer.read { db in
            guard let (coll, isInt) = try local(db, collectionID) else { return [] }
            return try Row.fetchAll(db, sql: "SELECT pk, ts FROM tombstones WHERE coll = ?", arguments: [coll])
                .compactMap { Self.deletedKey($0, isInt: isInt) }
        }
    }

    /// The incrementally maintained bucket hashes.
    public func buckets(collectionID: Int64) throws -> BucketState {
        try writer.read { db in
            let count = configuration.buckets
            guard let (coll, _) = try local(db, collectionID) else {
                return BucketState(hashes: Array(repeating: 0, count: count), counts: Array(repeating: 0, count: count))
            }
            let table = try Applier.loadBuckets(db, coll: coll, count: count)
            return BucketState(hashes: table.hashes, counts: table.counts)
        }
    }

    /// The same bucket hashes recomputed from the row table (must always equal `buckets`).
    public func recomputedBuckets(collectionID: Int64) throws -> BucketState {
        let count = configuration.buckets
        var state = BucketState(hashes: Array(repeating: 0, count: count), counts: Array(repeating: 0, count: count))
        for row in try liveRows(collectionID: collectionID) {
            let pkBytes = ShadowHashing.pkBytes(row.pk)
            let bucket = ShadowHashing.bucket(pkBytes: pkBytes, buckets: count)
            state.hashes[bucket] ^= ShadowHashing.version(pkBytes: pkBytes, ts: row.ts, rowHash: row.rowHash)
            state.counts[bucket] += 1
        }
        return state
    }

    /// Collections not dropped: id and name (cheap: no row counts).
    public func liveCollections() throws -> [(id: Int64, name: String)] {
        try writer.read { db in
            try Row.fetchAll(db, sql: "SELECT collection_id, name FROM collections WHERE state = 'live' ORDER BY id")
                .map { ($0["collection_id"], $0["name"]) }
        }
    }

    /// The schemas the log gave the live collections (CreateCollection, or Milvus at bootstrap). A restarted
    /// ingest decodes with them exactly as before the restart: without them a record whose schema the log
    /// carried long before the resume position decodes schemaless, and some fields (arrays: their element
    /// type is only in the schema) cannot be decoded at all. Shadows written before the schema was kept
    /// whole have none (nil entries are skipped).
    public func liveSchemas() throws -> [CollectionSchemaInfo] {
        try writer.read { db in
            try String.fetchAll(
                db, sql: "SELECT schema_json FROM collections WHERE state = 'live' AND schema_json IS NOT NULL"
            ).compactMap { try? JSONDecoder().decode(CollectionSchemaInfo.self, from: Data($0.utf8)) }
        }
    }

    /// How a schema is kept in `collections.schema_json`: the whole CollectionSchemaInfo, keys sorted.
    static func schemaJSON(_ schema: CollectionSchemaInfo) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(schema)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    public func collectionIDs() throws -> [Int64] {
        try writer.read { db in try Int64.fetchAll(db, sql: "SELECT collection_id FROM collections ORDER BY id") }
    }

    public func summary() throws -> ShadowSummary {
        let checkpoints = try checkpoints()
        return try writer.read { db in
            var collections: [ShadowSummary.Collection] = []
            for row in try Row.fetchAll(db, sql: "SELECT * FROM collections ORDER BY id") {
                let coll: Int64 = row["id"]
                let live = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM rows WHERE coll = ?", arguments: [coll]) ?? 0
                let duplicates =
                    try Int.fetchOne(
                        db,
                        sql:
                            "SELECT COUNT(*) FROM (SELECT pk FROM rows WHERE coll = ? GROUP BY pk HAVING COUNT(*) > 1)",
                        arguments: [coll]) ?? 0
                let tombstones =
                    try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM tombstones WHERE coll = ?", arguments: [coll]) ?? 0
                let taintedOffset: Int64? = row["tainted_offset"]
                collections.append(
                    ShadowSummary.Collection(
                        id: row["collection_id"], name: row["name"], state: row["state"], liveRows: live,
                        duplicatePKs: duplicates, tombstones: tombstones, history: row["history"],
                        taintedFrom: taintedOffset.map { (row["tainted_pchannel"] ?? "", $0) }))
            }
            let findings = try Row.fetchAll(db, sql: "SELECT * FROM findings ORDER BY id").map { row in
                ShadowSummary.Finding(
                    kind: FindingKind(rawValue: row["kind"]),
                    state: FindingState(rawValue: row["state"]) ?? .suspected, pchannel: row["pchannel"],
                    collectionID: row["collection_id"], fromOffset: row["from_offset"], toOffset: row["to_offset"],
                    detail: row["detail"], firstSeenMs: row["first_seen_ms"], replicaID: row["replica_id"],
                    nodeIDs: row["node_ids"], pksJSON: row["pks"], pkCount: row["pk_count"],
                    ts: (row["ts"] as Int64?).map { UInt64(bitPattern: $0) }, lastSeenMs: row["last_seen_ms"],
                    confirmedMs: row["confirmed_ms"], resolvedMs: row["resolved_ms"],
                    windowStartMs: row["window_start_ms"], windowEndMs: row["window_end_ms"],
                    leaders: (row["leaders"] as String?).map(ShardLeaders.parse) ?? [:],
                    peerReplicaID: row["peer_replica_id"], peerNodeIDs: row["peer_node_ids"])
            }
            let coverage = try Row.fetchAll(db, sql: "SELECT * FROM coverage ORDER BY collection_id").map { row in
                AuditCoverage(
                    collectionID: row["collection_id"], sweepMs: row["sweep_ms"],
                    timestamp: UInt64(bitPattern: row["ts"]), mode: AuditMode(rawValue: row["mode"]) ?? .pk,
                    rows: row["rows"],
                    replicas: row["replicas"], replicasTotal: row["replicas_total"], slice: row["slice"],
                    buckets: row["buckets"], seconds: row["seconds"])
            }
            let quarantined = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM quarantine") ?? 0
            let outage = try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = 'kafka_unreachable_since_ms'")
            let latest = try Row.fetchOne(db, sql: "SELECT * FROM audit_rounds ORDER BY id DESC LIMIT 1").map { row in
                let notAudited: String = row["not_audited"]
                return ShadowSummary.LatestRound(
                    startedMs: row["started_ms"], finishedMs: row["finished_ms"], mode: row["mode"],
                    result: row["result"],
                    notAudited: notAudited.split(separator: "\n").map(String.init), error: row["error"])
            }
            var status: [Int64: ShadowSummary.AuditStatus] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT * FROM audit_status") {
                status[row["collection_id"]] = ShadowSummary.AuditStatus(
                    roundMs: row["round_ms"], audited: row["audited"], reason: row["reason"])
            }
            return ShadowSummary(
                collections: collections, pchannels: checkpoints.values.sorted { $0.pchannel < $1.pchannel },
                findings: findings, quarantined: quarantined, kafkaUnreachableSinceMs: outage.flatMap { Int64($0) },
                coverage: coverage, latestRound: latest, restarts: try Self.restarts(db, limit: 100),
                auditStatus: status)
        }
    }
}

extension ShadowStore {
    /// Records that `run` cannot reach the broker since `sinceMs` (nil: reachable), for `report`.
    public func recordKafkaOutage(sinceMs: Int64?) throws {
        try writer.write { db in
            if let sinceMs {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO meta (key, value) VALUES ('kafka_unreachable_since_ms', ?)",
                    arguments: [String(sinceMs)])
            } else {
                try db.execute(sql: "DELETE FROM meta WHERE key = 'kafka_unreachable_since_ms'")
            }
        }
    }

    /// Records one audit round. Findings keep their identity across rounds — one open finding per (kind,
    /// collection, replica[, peer replica]) — so `first_seen` survives; an open finding that this round did
    /// not see again is resolved only where the round judged its replica (a replica that could not be read,
    /// or a collection that could not be audited, keeps its findings open). Resolved findings older than 7
    /// days are dropped. The round's outcome is kept (the last 1,000 rounds) with each collection's status.
    public func recordAudit(findings: [AuditRecord], coverage: [AuditCoverage], round: RoundOutcome, nowMs: Int64)
        throws
    {
        try writer.write { db in
            // Every open finding this round may touch, and those it may resolve: of a collection whose replicas
            // were listed, on a replica it judged (or one no longer listed).
            var open: [String: Int64] = [:]
            var resolvable: Set<String> = []
            let touched = Set(round.collections.map(\.id)).union(findings.map(\.finding.collectionID))
            for collectionID in touched {
                let outcome = round.collections.first { $0.id == collectionID && !$0.listed.isEmpty }
                let kept = outcome.map { Set($0.listed).subtracting($0.judged) }
                for finding in try Self.openReplicaFindings(db, collectionID: collectionID) {
                    let key = Self.identity(finding.key, collectionID, finding.replica, finding.peer)
                    open[key] = finding.id
                    if let kept, !kept.contains(finding.replica) { resolvable.insert(key) }
                }
            }
            for record in findings {
                let finding = record.finding
                let key = Self.identity(
                    finding.kind.rawValue, finding.collectionID, finding.replicaID, finding.peerReplicaID)
                let state = record.state.rawValue
                let leaders = ShardLeaders.format(finding.leaders)
                let arguments: [(any DatabaseValueConvertible)?] = [
                    state, finding.evidence, finding.nodeIDs.map(String.init).joined(separator: ","),
                    Self.pksJSON(finding.pks), finding.pkCount, Int64(bitPattern: finding.timestamp), nowMs,
                    record.state == .confirmed ? nowMs : nil, record.state == .resolved ? nowMs : nil,
                    finding.windowStartMs, finding.windowEndMs, leaders,
                    finding.peerNodeIDs.isEmpty ? nil : finding.peerNodeIDs.map(String.init).joined(separator: ","),
                ]
                if let id = open.removeValue(forKey: key) {
                    try db.execute(
                        sql: """
                            UPDATE findings SET state = ?, detail = ?, node_ids = ?, pks = ?, pk_count = ?, ts = ?,
                                last_seen_ms = ?, confirmed_ms = COALESCE(confirmed_ms, ?), resolved_ms = ?,
                                window_start_ms = COALESCE(window_start_ms, ?), window_end_ms = ?, leaders = ?,
                                peer_node_ids = ?
                            WHERE id = ?
                            """, arguments: StatementArguments(arguments + [id]))
                } else {
                    try db.execute(
                        sql: """
                            INSERT INTO findings (state, detail, node_ids, pks, pk_count, ts, last_seen_ms,
                                confirmed_ms, resolved_ms, window_start_ms, window_end_ms, leaders, peer_node_ids,
                                kind, collection_id, replica_id, peer_replica_id, first_seen_ms)
                            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                            """,
                        arguments: StatementArguments(
                            arguments + [
                                finding.kind.rawValue, finding.collectionID, finding.replicaID, finding.peerReplicaID,
                                finding.windowStartMs ?? nowMs,
                            ]))
                }
            }
            for (key, id) in open where resolvable.contains(key) {
                try db.execute(
                    sql: "UPDATE findings SET state = 'resolved', resolved_ms = ? WHERE id = ?", arguments: [nowMs, id])
            }
            try Self.record(db, round: round)
            try db.execute(
                sql: "DELETE FROM findings WHERE state = 'resolved' AND resolved_ms < ?",
                arguments: [nowMs - 7 * 24 * 3600 * 1000])
            for c in coverage {
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO coverage (collection_id, sweep_ms, ts, mode, rows, replicas,
                            replicas_total, buckets, seconds, slice)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        c.collectionID, c.sweepMs, Int64(bitPattern: c.timestamp), c.mode.rawValue, c.rows, c.replicas,
                        c.replicasTotal, c.buckets, c.seconds, c.slice,
                    ])
            }
            Failpoint.pause("record")  // crash tests: kill -9 with the round half recorded
        }
    }

    /// The sample slice the last sweep of a collection read in full (nil: none yet).
    public func lastSampleSlice(collectionID: Int64) throws -> Int? {
        try writer.read { db in
            try Int.fetchOne(db, sql: "SELECT slice FROM coverage WHERE collection_id = ?", arguments: [collectionID])
        }
    }

    /// The last shard leaders seen per replica of a collection ("vchannel=nodeID@address" → replica id).
    public func replicaTopology(collectionID: Int64) throws -> [Int64: [String: String]] {
        try writer.read { db in
            var result: [Int64: [String: String]] = [:]
            for row in try Row.fetchAll(
                db, sql: "SELECT replica_id, leaders FROM replica_topology WHERE collection_id = ?",
                arguments: [collectionID])
            {
                let text: String = row["leaders"]
                result[row["replica_id"]] = ShardLeaders.parse(text)
            }
            return result
        }
    }

    public func recordTopology(collectionID: Int64, leaders: [Int64: [String: String]], nowMs: Int64) throws {
        try writer.write { db in
            for (replica, map) in leaders where !map.isEmpty {
                try db.execute(
                    sql: "INSERT OR REPLACE INTO replica_topology VALUES (?, ?, ?, ?)",
                    arguments: [collectionID, replica, ShardLeaders.format(map), nowMs])
            }
        }
    }

    /// The open (not resolved) replica findings of a collection: when each was first seen.
    public func openFindingsFirstSeen(collectionID: Int64) throws -> [String: Int64] {
        try writer.read { db in
            var result: [String: Int64] = [:]
            for finding in try Self.openReplicaFindings(db, collectionID: collectionID) where finding.peer == nil {
                result["\(finding.key)/\(finding.replica)"] = finding.firstSeenMs
            }
            return result
        }
    }

    /// Open (not resolved) replica findings of one collection; `key` is the finding's kind.
    static func openReplicaFindings(_ db: Database, collectionID: Int64) throws
        -> [(id: Int64, key: String, replica: Int64, peer: Int64?, firstSeenMs: Int64)]
    {
        try Row.fetchAll(
            db,
            sql: """
                SELECT id, kind, replica_id, peer_replica_id, first_seen_ms FROM findings
                WHERE collection_id = ? AND replica_id IS NOT NULL AND state != 'resolved'
                """, arguments: [collectionID]
        ).map { row in (row["id"], row["kind"], row["replica_id"], row["peer_replica_id"], row["first_seen_ms"]) }
    }

    /// A replica finding's identity: one open finding per kind, collection, replica (and peer replica).
    static func identity(_ kind: String, _ collection: Int64, _ replica: Int64, _ peer: Int64?) -> String {
        "\(kind)/\(collection)/\(replica)" + (peer.map { "/\($0)" } ?? "")
    }

    /// Keeps the round's outcome (the last 1,000) and each collection's latest status.
    static func record(_ db: Database, round: RoundOutcome) throws {
        try db.execute(
            sql: """
                INSERT INTO audit_rounds (started_ms, finished_ms, mode, result, collections, confirmed, not_audited,
                    error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                round.startedMs, round.finishedMs, round.mode.rawValue, round.result.rawValue, round.collections.count,
                round.confirmed, round.notAudited.joined(separator: "\n"), round.error,
            ])
        try db.execute(sql: "DELETE FROM audit_rounds WHERE id <= (SELECT MAX(id) FROM audit_rounds) - 1000")
        for collection in round.collections {
            try db.execute(
                sql: "INSERT OR REPLACE INTO audit_status VALUES (?, ?, ?, ?)",
                arguments: [
                    collection.id, round.startedMs, collection.audited, collection.reasons.joined(separator: "; "),
                ])
        }
    }

    /// Records a restart window (new or changed), keyed by collection, replica and down time; keeps 1,000.
    public func recordRestart(_ record: RestartRecord) throws {
        try writer.write { db in
            try db.execute(
                sql: """
                    INSERT INTO restarts (collection_id, replica_id, old_nodes, new_nodes, down_ms, serving_ms,
                        caught_up_ms, rows_short_max, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (collection_id, replica_id, down_ms) DO UPDATE SET old_nodes = excluded.old_nodes,
                        new_nodes = excluded.new_nodes, serving_ms = excluded.serving_ms,
                        caught_up_ms = excluded.caught_up_ms, rows_short_max = excluded.rows_short_max,
                        state = excluded.state
                    """,
                arguments: [
                    record.collectionID, record.replicaID, record.oldNodes.map(String.init).joined(separator: ","),
                    record.newNodes.map(String.init).joined(separator: ","), record.downMs, record.servingMs,
                    record.caughtUpMs, record.rowsShortMax, record.state.rawValue,
                ])
            try db.execute(sql: "DELETE FROM restarts WHERE id <= (SELECT MAX(id) FROM restarts) - 1000")
        }
    }

    public func restarts(limit: Int = 100) throws -> [RestartRecord] {
        try writer.read { db in try Self.restarts(db, limit: limit) }
    }

    static func restarts(_ db: Database, limit: Int) throws -> [RestartRecord] {
        try Row.fetchAll(db, sql: "SELECT * FROM restarts ORDER BY down_ms DESC, id DESC LIMIT ?", arguments: [limit])
            .map { row in
                func ids(_ text: String) -> [Int64] { text.split(separator: ",").compactMap { Int64($0) } }
                var record = RestartRecord(
                    collectionID: row["collection_id"], replicaID: row["replica_id"], oldNodes: ids(row["old_nodes"]),
                    downMs: row["down_ms"])
                record.newNodes = ids(row["new_nodes"])
                record.servingMs = row["serving_ms"]
                record.caughtUpMs = row["caught_up_ms"]
                record.rowsShortMax = row["rows_short_max"]
                record.state = RestartRecord.State(rawValue: row["state"]) ?? .behind
                return record
            }
    }

    /// The live versions a collection had at `timestamp` (what `count(*)` at T must answer).
    public func expectedCount(collectionID: Int64, at timestamp: UInt64) throws -> Int64 {
        try writer.read { db in
            guard let (coll, _) = try local(db, collectionID) else { return 0 }
            return try Self.expectedCount(db, coll: coll, t: Int64(bitPattern: timestamp))
        }
    }

    /// Row versions live at `t` (those deleted after `t` included), duplicates counted.
    static func expectedCount(_ db: Database, coll: Int64, t: Int64) throws -> Int64 {
        let live =
            try Int64.fetchOne(db, sql: "SELECT COUNT(*) FROM rows WHERE coll = ? AND ts <= ?", arguments: [coll, t])
            ?? 0
        let deletedAfter =
            try Int64.fetchOne(
                db, sql: "SELECT COUNT(*) FROM deleted_rows WHERE coll = ? AND ts <= ? AND deleted_ts > ?",
                arguments: [coll, t, t]) ?? 0
        return live + deletedAfter
    }

    /// A round that failed as a whole (Kafka or Milvus unreachable): kept as the latest round.
    public func recordFailedRound(_ round: RoundOutcome) throws {
        try writer.write { db in try Self.record(db, round: round) }
    }

    static func pksJSON(_ pks: [PrimaryKey]) -> String {
        "["
            + pks.map { pk -> String in
                switch pk {
                case .int(let v): return String(v)
                case .string(let v): return JSONLine.quoted(v)
                }
            }.joined(separator: ",") + "]"
    }
}
