import AuditorCore
import AuditorShadow
import Prometheus
import Synchronization

/// auditd's Prometheus metrics (the contract is docs/operations.md): one registry per service, never a
/// global. Gauges that describe a state (open findings, replica status, lag status) are set from the latest
/// state each refresh; a label set that disappears is set to 0, so a resolved finding's series drops to 0
/// rather than freezing at its last value. Labels stay low-cardinality: never a pk.
public final class AuditorMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    private let known = Mutex<[String: Set<[String]>]>([:])

    static let roundBuckets: [Double] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800]
    static let windowBuckets: [Double] = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600]

    /// Every family with its help text and label names (fixed per family).
    enum Family: String, CaseIterable {
        case buildInfo = "auditd_build_info"
        case findingsOpen = "auditd_findings_open"
        case findingRows = "auditd_finding_rows"
        case replicaStatus = "auditd_replica_status"
        case replicaHealthy = "auditd_replica_healthy"
        case roundsTotal = "auditd_audit_rounds_total"
        case roundDuration = "auditd_audit_round_duration_seconds"
        case auditInterval = "auditd_audit_interval_seconds"
        case lastRound = "auditd_audit_last_round_timestamp_seconds"
        case lastCompleteRound = "auditd_audit_last_complete_round_timestamp_seconds"
        case lastSweep = "auditd_audit_last_complete_sweep_timestamp_seconds"
        case rowsCompared = "auditd_audit_rows_compared"
        case notAudited = "auditd_audit_not_audited"
        case ingestRecords = "auditd_ingest_records_total"
        case ingestRows = "auditd_ingest_rows_total"
        case undecodable = "auditd_ingest_undecodable_total"
        case gapRereads = "auditd_ingest_gap_rereads_total"
        case quarantined = "auditd_quarantined_records"
        case kafkaReachable = "auditd_kafka_reachable"
        case stateWritable = "auditd_state_writable"
        case consumerLagMessages = "auditd_consumer_lag_messages"
        case consumerLagSeconds = "auditd_consumer_lag_seconds"
        case consumerStatus = "auditd_consumer_status"
        case milvusLagMessages = "auditd_milvus_checkpoint_lag_messages"
        case milvusLagSeconds = "auditd_milvus_checkpoint_lag_seconds"
        case milvusStatus = "auditd_milvus_checkpoint_status"
        case retentionHeadroom = "auditd_retention_headroom_seconds"
        case retention = "auditd_kafka_retention_seconds"
        case restartsTotal = "auditd_restarts_total"
        case restartOpen = "auditd_restart_open"
        case restartBehind = "auditd_restart_serving_behind_seconds"

        var labels: [String] {
            switch self {
            case .buildInfo: ["version"]
            case .findingsOpen, .findingRows: ["collection", "kind", "state", "replica", "peer_replica"]
            case .replicaStatus: ["collection", "replica", "status"]
            case .replicaHealthy, .restartsTotal, .restartOpen, .restartBehind: ["collection", "replica"]
            case .roundsTotal: ["result"]
            case .roundDuration, .lastRound, .lastCompleteRound, .ingestRecords, .undecodable, .gapRereads,
                .quarantined,
                .kafkaReachable, .stateWritable, .auditInterval:
                []
            case .lastSweep, .rowsCompared, .notAudited: ["collection"]
            case .ingestRows: ["op"]
            case .consumerLagMessages, .consumerLagSeconds: ["pchannel"]
            case .consumerStatus: ["pchannel", "status"]
            case .milvusLagMessages, .milvusLagSeconds: ["pchannel", "vchannel"]
            case .milvusStatus: ["pchannel", "vchannel", "status"]
            case .retentionHeadroom: ["pchannel", "consumer"]
            case .retention: ["pchannel", "source"]
            }
        }

        var help: String {
            switch self {
            case .buildInfo: "auditd's version (always 1)."
            case .findingsOpen: "Open findings (suspected or confirmed) by collection, kind, state and replica."
            case .findingRows: "Primary keys involved in open findings (the finding's pk count)."
            case .replicaStatus:
                "1 for each replica's status in the latest round (clean, findings, unavailable, recovering, not_audited)."
            case .replicaHealthy: "1 when the replica was audited clean in the latest round, else 0."
            case .roundsTotal: "Audit rounds by result (clean, findings, incomplete, failed)."
            case .roundDuration: "Duration of audit rounds."
            case .auditInterval: "Seconds between audit rounds (--audit-interval)."
            case .lastRound: "Unix time the latest audit round finished."
            case .lastCompleteRound: "Unix time the latest round that audited every collection finished."
            case .lastSweep: "Unix time of the last complete sweep of each collection."
            case .rowsCompared: "Rows compared (summed over replicas) in the last complete sweep of each collection."
            case .notAudited: "1 while the latest round could not audit (part of) the collection."
            case .ingestRecords: "Kafka records ingested into the shadow."
            case .ingestRows: "Rows ingested by operation (insert, delete)."
            case .undecodable: "Records that could not be decoded (each quarantined with its offset)."
            case .gapRereads:
                "Fetches that skipped offsets and were read again from the first missing one (a gap is reported only if they stay missing)."
            case .quarantined: "Records held in the quarantine table."
            case .kafkaReachable: "1 while the Kafka broker answers auditd."
            case .stateWritable:
                "1 while the state directory takes commits; 0 from a failed write (disk full, I/O error, read-only) until one succeeds."
            case .consumerLagMessages: "auditd's own lag behind the log end, in records, per pchannel."
            case .consumerLagSeconds: "auditd's own lag behind the log's newest time tick, in seconds, per pchannel."
            case .consumerStatus: "1 for auditd's lag status per pchannel (OK, WARN, STALL, STOP, REWIND)."
            case .milvusLagMessages:
                "Records between Milvus's DataCoord channel checkpoint and the log end, per vchannel."
            case .milvusLagSeconds: "Age of Milvus's DataCoord channel checkpoint behind the log's newest time tick."
            case .milvusStatus: "1 for the lag status of Milvus's channel checkpoint per vchannel."
            case .retentionHeadroom:
                "Seconds until Kafka retention deletes the oldest record this consumer (auditd, milvus) has not consumed."
            case .retention:
                "The DML topic's retention used for the headroom; source: broker (DescribeConfigs) or flag (--kafka-retention)."
            case .restartsTotal: "QueryNode restarts seen per replica (a window opened)."
            case .restartOpen: "1 while a replica's restart window is open (not caught up)."
            case .restartBehind: "Seconds a restarted replica answered queries while not caught up."
            }
        }
    }

    public init(version: String, auditInterval: Duration = .seconds(60)) {
        set(.buildInfo, [version], 1)
        set(.auditInterval, [], Double(auditInterval.components.seconds))
        set(.lastCompleteRound, [], 0)
        set(.kafkaReachable, [], 1)
        for family in [Family.undecodable, .gapRereads] {
            registry.makeCounter(descriptor: Self.descriptor(family), labels: []).increment(by: Int64(0))
        }
        for result in ["clean", "findings", "incomplete", "failed"] {
            registry.makeCounter(descriptor: Self.descriptor(.roundsTotal), labels: labels(.roundsTotal, [result]))
                .increment(by: Int64(0))
        }
    }

    func labels(_ family: Family, _ values: [String]) -> [(String, String)] {
        Array(zip(family.labels, values))
    }

    func set(_ family: Family, _ values: [String], _ value: Double) {
        registry.makeGauge(descriptor: Self.descriptor(family), labels: labels(family, values)).set(value)
    }

    static func descriptor(_ family: Family) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: family.rawValue, unitName: "", helpText: family.help)
    }

    /// Sets a state family to exactly `values`: label sets seen before and absent now go to 0.
    func replace(_ family: Family, _ values: [[String]: Double]) {
        let gone = known.withLock { known -> Set<[String]> in
            let before = known[family.rawValue] ?? []
            known[family.rawValue] = before.union(values.keys)
            return before.subtracting(values.keys)
        }
        for labels in gone { set(family, labels, 0) }
        for (labels, value) in values { set(family, labels, value) }
    }

    func count(_ family: Family, _ values: [String], by amount: Int64) {
        guard amount > 0 else { return }
        registry.makeCounter(descriptor: Self.descriptor(family), labels: labels(family, values)).increment(by: amount)
    }

    func observe(_ family: Family, _ values: [String], _ value: Double, buckets: [Double]) {
        registry.makeValueHistogram(
            descriptor: Self.descriptor(family), labels: labels(family, values), buckets: buckets
        )
        .record(value)
    }

    /// The exposition, Prometheus text format 0.0.4.
    public func exposition() -> String { registry.emitToString() }
}

extension AuditorMetrics {
    /// Findings, coverage, quarantine and Kafka reachability from the shadow's summary; replica status from
    /// the latest round (nil: none since start — the stored latest round's collections only).
    public func refresh(summary: ShadowSummary, round: RoundOutcome?, nowMs: Int64) {
        let names = Dictionary(summary.collections.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        func name(_ id: Int64?) -> String {
            guard let id else { return "" }
            return names[id].flatMap { $0.isEmpty ? nil : $0 } ?? String(id)
        }
        var open: [[String]: Double] = [:]
        var rows: [[String]: Double] = [:]
        for f in summary.findings where f.state != .resolved {
            let labels = [
                name(f.collectionID), f.kind.rawValue, f.state.rawValue, f.replicaID.map(String.init) ?? "",
                f.peerReplicaID.map(String.init) ?? "",
            ]
            open[labels, default: 0] += 1
            rows[labels, default: 0] += Double(f.pkCount ?? 0)
        }
        replace(.findingsOpen, open)
        replace(.findingRows, rows)
        var sweep: [[String]: Double] = [:]
        var compared: [[String]: Double] = [:]
        for c in summary.coverage {
            sweep[[name(c.collectionID)]] = Double(c.sweepMs) / 1000
            compared[[name(c.collectionID)]] = Double(c.rows)
        }
        replace(.lastSweep, sweep)
        replace(.rowsCompared, compared)
        replace(
            .notAudited,
            Dictionary(summary.auditStatus.map { ([name($0.key)], $0.value.audited ? 0 : 1) }, uniquingKeysWith: max))
        set(.quarantined, [], Double(summary.quarantined))
        set(.kafkaReachable, [], summary.kafkaUnreachableSinceMs == nil ? 1 : 0)
        if let latest = summary.latestRound { set(.lastRound, [], Double(latest.finishedMs) / 1000) }
        guard let round else { return }
        var status: [[String]: Double] = [:]
        var healthy: [[String]: Double] = [:]
        let openFindings = summary.findings.filter { $0.state != .resolved }
        for collection in round.collections {
            for replica in collection.listed {
                let mine = openFindings.filter {
                    $0.collectionID == collection.id && $0.replicaID == replica && $0.peerReplicaID == nil
                }
                let value: String
                if mine.contains(where: { $0.kind == .replica(.replicaUnavailable) }) {
                    value = "unavailable"
                } else if mine.contains(where: { $0.kind == .replica(.catchupUnfinished) }) {
                    value = "recovering"
                } else if !collection.judged.contains(replica) {
                    value = "not_audited"
                } else if !mine.isEmpty
                    || openFindings.contains(where: {
                        $0.collectionID == collection.id && $0.kind == .replica(.replicaDivergence)
                            && ($0.replicaID == replica || $0.peerReplicaID == replica)
                    })
                {
                    value = "findings"
                } else {
                    value = "clean"
                }
                for candidate in ["clean", "findings", "unavailable", "recovering", "not_audited"] {
                    status[[name(collection.id), String(replica), candidate]] = candidate == value ? 1 : 0
                }
                healthy[[name(collection.id), String(replica)]] = value == "clean" ? 1 : 0
            }
        }
        replace(.replicaStatus, status)
        replace(.replicaHealthy, healthy)
    }

    public func kafkaReachable(_ reachable: Bool) { set(.kafkaReachable, [], reachable ? 1 : 0) }

    public func stateWritable(_ writable: Bool) { set(.stateWritable, [], writable ? 1 : 0) }

    /// A finished round: counted by result, its duration observed.
    public func roundFinished(_ round: RoundOutcome) {
        count(.roundsTotal, [round.result.rawValue], by: 1)
        observe(.roundDuration, [], Double(round.finishedMs - round.startedMs) / 1000, buckets: Self.roundBuckets)
        set(.lastRound, [], Double(round.finishedMs) / 1000)
        if round.result == .clean || round.result == .findings {
            set(.lastCompleteRound, [], Double(round.finishedMs) / 1000)
        }
    }

    /// Ingest progress since the last call (deltas of the ingester's counters).
    public func ingested(records: Int64, inserted: Int64, deleted: Int64, undecodable: Int64, gapRereads: Int64 = 0) {
        count(.ingestRecords, [], by: records)
        count(.gapRereads, [], by: gapRereads)
        count(.ingestRows, ["insert"], by: inserted)
        count(.ingestRows, ["delete"], by: deleted)
        count(.undecodable, [], by: undecodable)
    }

    public struct ChannelLag: Sendable {
        public var pchannel: String
        public var vchannel: String?
        public var messages: Int64
        public var seconds: Double
        public var status: String
        public init(pchannel: String, vchannel: String? = nil, messages: Int64, seconds: Double, status: String) {
            self.pchannel = pchannel
            self.vchannel = vchannel
            self.messages = messages
            self.seconds = seconds
            self.status = status
        }
    }

    static let statuses = ["OK", "WARN", "STALL", "STOP", "REWIND"]

    /// auditd's own lag per pchannel and Milvus's checkpoint lag per vchannel, with their states.
    public func lag(auditd: [ChannelLag], milvus: [ChannelLag]) {
        replace(
            .consumerLagMessages, Dictionary(auditd.map { ([$0.pchannel], Double($0.messages)) }, uniquingKeysWith: max)
        )
        replace(.consumerLagSeconds, Dictionary(auditd.map { ([$0.pchannel], $0.seconds) }, uniquingKeysWith: max))
        var status: [[String]: Double] = [:]
        for lag in auditd {
            for s in Self.statuses { status[[lag.pchannel, s]] = s == lag.status ? 1 : 0 }
        }
        replace(.consumerStatus, status)
        let keyed = milvus.map { ([$0.pchannel, $0.vchannel ?? ""], $0) }
        replace(.milvusLagMessages, Dictionary(keyed.map { ($0.0, Double($0.1.messages)) }, uniquingKeysWith: max))
        replace(.milvusLagSeconds, Dictionary(keyed.map { ($0.0, $0.1.seconds) }, uniquingKeysWith: max))
        var milvusStatus: [[String]: Double] = [:]
        for (labels, lag) in keyed {
            for s in Self.statuses { milvusStatus[labels + [s]] = s == lag.status ? 1 : 0 }
        }
        replace(.milvusStatus, milvusStatus)
    }

    /// The retention each pchannel's headroom is computed with, and where it came from.
    public func retentionUsed(_ retention: [String: (seconds: Double, source: String)]) {
        replace(
            .retention,
            Dictionary(retention.map { ([$0.key, $0.value.source], $0.value.seconds) }, uniquingKeysWith: max))
    }

    /// Retention headroom per pchannel and consumer ("auditd", "milvus"); nil: nothing unconsumed.
    public func retention(_ headroom: [(pchannel: String, consumer: String, seconds: Double?)]) {
        var values: [[String]: Double] = [:]
        for entry in headroom {
            // Caught up: the headroom is the whole retention (nothing unconsumed) — reported as +Inf would
            // break sums; the caller passes the retention itself then.
            if let seconds = entry.seconds { values[[entry.pchannel, entry.consumer]] = seconds }
        }
        replace(.retentionHeadroom, values)
    }

    /// A restart window opened or changed; `closed`: it caught up (its serving-while-behind time observed).
    public func restart(_ record: RestartRecord, opened: Bool, collection: String, nowMs: Int64) {
        let labels = [collection, String(record.replicaID)]
        if opened { count(.restartsTotal, labels, by: 1) }
        set(.restartOpen, labels, record.isOpen ? 1 : 0)
        if !record.isOpen {
            observe(.restartBehind, labels, record.servingBehindSeconds(nowMs: nowMs) ?? 0, buckets: Self.windowBuckets)
        }
    }
}
