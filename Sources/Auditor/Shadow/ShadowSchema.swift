import AuditorCore
import AuditorKafka
import AuditorMilvus
import GRDB

/// The shadow's SQLite schema: append-only, named migrations.
enum ShadowSchema {
    static let marker = "auditd-shadow"

    /// Each step runs in its own transaction; the `migration` failpoint (crash tests) pauses at its end, before
    /// the commit.
    static func register(
        _ migrator: inout DatabaseMigrator, _ identifier: String, _ body: @escaping @Sendable (Database) throws -> Void
    ) {
        migrator.registerMigration(identifier) { db in
            try body(db)
            Failpoint.pause("migration", identifier)
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        register(&migrator, "v1-shadow") { db in
            try db.execute(
                sql: """
                    CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
                    -- Interned names (shards, partitions) so rows carry small integers.
                    CREATE TABLE names (id INTEGER PRIMARY KEY, value TEXT NOT NULL UNIQUE);
                    CREATE TABLE collections (
                        id INTEGER PRIMARY KEY,
                        collection_id INTEGER NOT NULL UNIQUE,
                        name TEXT NOT NULL DEFAULT '',
                        db TEXT NOT NULL DEFAULT '',
                        schema_json TEXT,
                        pk_is_int INTEGER,
                        state TEXT NOT NULL DEFAULT 'live',
                        dropped_ts INTEGER,
                        history TEXT NOT NULL DEFAULT 'complete',
                        tainted_pchannel TEXT,
                        tainted_offset INTEGER,
                        pchannels TEXT NOT NULL DEFAULT '',
                        buckets INTEGER NOT NULL);
                    CREATE TABLE rows (
                        coll INTEGER NOT NULL,
                        pk BLOB NOT NULL,
                        ts INTEGER NOT NULL,
                        seq INTEGER NOT NULL,
                        hash INTEGER NOT NULL,
                        part INTEGER NOT NULL,
                        shard INTEGER NOT NULL,
                        off INTEGER NOT NULL,
                        PRIMARY KEY (coll, pk, ts, seq)) WITHOUT ROWID;
                    CREATE TABLE tombstones (
                        coll INTEGER NOT NULL,
                        pk BLOB NOT NULL,
                        ts INTEGER NOT NULL,
                        shard INTEGER NOT NULL,
                        off INTEGER NOT NULL,
                        PRIMARY KEY (coll, pk, ts)) WITHOUT ROWID;
                    CREATE INDEX tombstones_by_ts ON tombstones (ts);
                    CREATE TABLE buckets (
                        coll INTEGER NOT NULL,
                        bucket INTEGER NOT NULL,
                        hash INTEGER NOT NULL,
                        count INTEGER NOT NULL,
                        PRIMARY KEY (coll, bucket)) WITHOUT ROWID;
                    CREATE TABLE pchannels (
                        name TEXT PRIMARY KEY NOT NULL,
                        resume_offset INTEGER NOT NULL,
                        next_offset INTEGER NOT NULL,
                        tick_ts INTEGER NOT NULL DEFAULT 0,
                        tick_offset INTEGER NOT NULL DEFAULT -1,
                        high_watermark INTEGER NOT NULL DEFAULT 0,
                        last_message_ms INTEGER,
                        epoch INTEGER NOT NULL DEFAULT 0,
                        -- offsets >= resume_offset already applied: sorted int64 little endian, 8 bytes each
                        applied BLOB);
                    CREATE TABLE quarantine (
                        pchannel TEXT NOT NULL,
                        off INTEGER NOT NULL,
                        reason TEXT NOT NULL,
                        bytes BLOB,
                        seen_ms INTEGER NOT NULL,
                        PRIMARY KEY (pchannel, off));
                    CREATE TABLE findings (
                        id INTEGER PRIMARY KEY,
                        kind TEXT NOT NULL,
                        state TEXT NOT NULL,
                        pchannel TEXT,
                        collection_id INTEGER,
                        from_offset INTEGER,
                        to_offset INTEGER,
                        detail TEXT NOT NULL,
                        first_seen_ms INTEGER NOT NULL);
                    """)
            try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('format', ?)", arguments: [marker])
        }
        register(&migrator, "v2-bootstrap") { db in
            // Seeded from Milvus at this ts: log records of the collection at or before it are in the seed.
            try db.execute(sql: "ALTER TABLE collections ADD COLUMN bootstrap_ts INTEGER")
        }
        register(&migrator, "v3-replica-findings") { db in
            for column in [
                "replica_id INTEGER", "node_ids TEXT", "pks TEXT", "pk_count INTEGER", "ts INTEGER",
                "confirmed_ms INTEGER",
            ] {
                try db.execute(sql: "ALTER TABLE findings ADD COLUMN \(column)")
            }
        }
        register(&migrator, "v4-finding-lifecycle") { db in
            // suspected → confirmed → resolved; one open finding per (kind, collection, replica).
            for column in [
                "last_seen_ms INTEGER", "resolved_ms INTEGER", "window_start_ms INTEGER", "window_end_ms INTEGER",
                "leaders TEXT",
            ] {
                try db.execute(sql: "ALTER TABLE findings ADD COLUMN \(column)")
            }
            try db.execute(
                sql: """
                    CREATE TABLE coverage (
                        collection_id INTEGER PRIMARY KEY,
                        sweep_ms INTEGER NOT NULL,
                        ts INTEGER NOT NULL,
                        mode TEXT NOT NULL,
                        rows INTEGER NOT NULL,
                        replicas INTEGER NOT NULL,
                        replicas_total INTEGER NOT NULL,
                        buckets INTEGER NOT NULL,
                        seconds REAL NOT NULL)
                    """)
        }
        register(&migrator, "v5-replica-topology") { db in
            // The last shard leaders seen per replica: evidence when a replica's node is gone, and restarts.
            try db.execute(
                sql: """
                    CREATE TABLE replica_topology (
                        collection_id INTEGER NOT NULL,
                        replica_id INTEGER NOT NULL,
                        leaders TEXT NOT NULL,
                        seen_ms INTEGER NOT NULL,
                        PRIMARY KEY (collection_id, replica_id))
                    """)
        }
        register(&migrator, "v6-sample-slice") { db in
            try db.execute(sql: "ALTER TABLE coverage ADD COLUMN slice INTEGER")
        }
        register(&migrator, "v7-peer-replica-and-rounds") { db in
            // A divergence names both replicas; the latest round says what it could not audit, and why.
            try db.execute(sql: "ALTER TABLE findings ADD COLUMN peer_replica_id INTEGER")
            try db.execute(sql: "ALTER TABLE findings ADD COLUMN peer_node_ids TEXT")
            try db.execute(
                sql: """
                    CREATE TABLE audit_rounds (
                        id INTEGER PRIMARY KEY,
                        started_ms INTEGER NOT NULL,
                        finished_ms INTEGER NOT NULL,
                        mode TEXT NOT NULL,
                        result TEXT NOT NULL,
                        collections INTEGER NOT NULL,
                        confirmed INTEGER NOT NULL,
                        not_audited TEXT NOT NULL,
                        error TEXT);
                    CREATE TABLE audit_status (
                        collection_id INTEGER PRIMARY KEY,
                        round_ms INTEGER NOT NULL,
                        audited INTEGER NOT NULL,
                        reason TEXT NOT NULL);
                    """)
        }
        register(&migrator, "v8-deleted-rows") { db in
            // Row versions removed by a delete, kept until every pchannel's time tick passed the delete: the
            // audit's cut T may lie before a delete the shadow already applied (T is the lowest tick of a
            // collection's pchannels, and ingest goes on while a round runs); at T those rows were live.
            try db.execute(
                sql: """
                    CREATE TABLE deleted_rows (
                        coll INTEGER NOT NULL,
                        pk BLOB NOT NULL,
                        ts INTEGER NOT NULL,
                        seq INTEGER NOT NULL,
                        hash INTEGER NOT NULL,
                        deleted_ts INTEGER NOT NULL,
                        PRIMARY KEY (coll, pk, ts, seq)) WITHOUT ROWID;
                    CREATE INDEX deleted_rows_by_deleted_ts ON deleted_rows (deleted_ts);
                    """)
        }
        register(&migrator, "v9-restarts") { db in
            // Every QueryNode restart per replica: down, serving again, caught up (docs/operations.md).
            try db.execute(
                sql: """
                    CREATE TABLE restarts (
                        id INTEGER PRIMARY KEY,
                        collection_id INTEGER NOT NULL,
                        replica_id INTEGER NOT NULL,
                        old_nodes TEXT NOT NULL,
                        new_nodes TEXT NOT NULL,
                        down_ms INTEGER NOT NULL,
                        serving_ms INTEGER,
                        caught_up_ms INTEGER,
                        rows_short_max INTEGER NOT NULL,
                        state TEXT NOT NULL,
                        UNIQUE (collection_id, replica_id, down_ms));
                    """)
        }
        return migrator
    }
}
