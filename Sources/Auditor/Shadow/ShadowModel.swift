/// Per-pchannel progress, committed in the same transaction as the rows it produced.
public struct ChannelCheckpoint: Sendable, Equatable {
    public var pchannel: String
    /// Where to start reading after a restart: the first offset whose record is not applied yet
    /// (records read before the last time tick but belonging to a later window are read again).
    public var resumeOffset: Int64
    /// The next offset expected from the log (for gap detection).
    public var nextOffset: Int64
    /// The last time tick applied on this pchannel and its offset.
    public var tickTs: UInt64
    public var tickOffset: Int64
    public var highWatermark: Int64
    /// Kafka timestamp of the last record read (lag in seconds).
    public var lastMessageMs: Int64?
    /// Incremented when the broker's log went backwards and auditd started over on the new log.
    public var epoch: Int
    /// Offsets ≥ `resumeOffset` that are already applied (skipped when read again).
    public var applied: Set<Int64>

    public init(pchannel: String, startOffset: Int64) {
        self.pchannel = pchannel
        resumeOffset = startOffset
        nextOffset = startOffset
        tickTs = 0
        tickOffset = -1
        highWatermark = 0
        lastMessageMs = nil
        epoch = 0
        applied = []
    }
}

public struct QuarantinedRecord: Sendable, Equatable {
    public var offset: Int64
    public var reason: String
    public var bytes: [UInt8]?
}

/// Something wrong with the log itself (as opposed to a replica): gaps, regressions, retention loss.
public struct LogFinding: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// Offsets skipped inside a log that auditd was reading.
        case logGap = "log_gap"
        /// The broker's log ends before offsets auditd already consumed (a wiped or replaced log).
        case logRegression = "log_regression"
        /// Messages removed by retention before auditd read them.
        case retentionLoss = "retention_loss"
        case undecodable
    }

    public var kind: Kind
    public var pchannel: String
    public var collectionID: Int64?
    public var fromOffset: Int64?
    public var toOffset: Int64?
    public var detail: String

    public init(
        kind: Kind, pchannel: String, collectionID: Int64? = nil, fromOffset: Int64? = nil, toOffset: Int64? = nil,
        detail: String
    ) {
        self.kind = kind
        self.pchannel = pchannel
        self.collectionID = collectionID
        self.fromOffset = fromOffset
        self.toOffset = toOffset
        self.detail = detail
    }
}

/// One atomic step of the shadow: the records of one closed time-tick window of one pchannel, in
/// apply order, with the checkpoint that follows them.
public struct ShadowBatch: Sendable {
    public var pchannel: String
    public var messages: [WALMessage]
    public var checkpoint: ChannelCheckpoint
    public var quarantine: [QuarantinedRecord]
    public var findings: [LogFinding]

    public init(
        pchannel: String, messages: [WALMessage], checkpoint: ChannelCheckpoint, quarantine: [QuarantinedRecord] = [],
        findings: [LogFinding] = []
    ) {
        self.pchannel = pchannel
        self.messages = messages
        self.checkpoint = checkpoint
        self.quarantine = quarantine
        self.findings = findings
    }
}

public struct ShadowConfiguration: Sendable {
    /// Segment-hash buckets per collection.
    public var buckets: Int
    /// How long tombstones are kept (default 7 days, the seed's Kafka retention).
    public var tombstoneRetention: Duration

    public init(buckets: Int = 4096, tombstoneRetention: Duration = .seconds(7 * 24 * 3600)) {
        self.buckets = buckets
        self.tombstoneRetention = tombstoneRetention
    }
}

/// What `auditd report` shows about the shadow.
public struct ShadowSummary: Sendable {
    public struct Collection: Sendable {
        public var id: Int64
        public var name: String
        public var state: String
        public var liveRows: Int
        public var duplicatePKs: Int
        public var tombstones: Int
        public var history: String
        public var taintedFrom: (pchannel: String, offset: Int64)?
    }
    public struct Finding: Sendable {
        public var kind: String
        public var state: String
        public var pchannel: String?
        public var collectionID: Int64?
        public var fromOffset: Int64?
        public var toOffset: Int64?
        public var detail: String
        public var firstSeenMs: Int64
        public var replicaID: Int64? = nil
        public var nodeIDs: String? = nil
        /// JSON array of witness pks.
        public var pksJSON: String? = nil
        public var pkCount: Int? = nil
        public var ts: UInt64? = nil
        public var lastSeenMs: Int64? = nil
        public var confirmedMs: Int64? = nil
        public var resolvedMs: Int64? = nil
        /// Catch-up window (Unix ms): first seen recovering, and when it matched (nil: not yet).
        public var windowStartMs: Int64? = nil
        public var windowEndMs: Int64? = nil
        /// "vchannel=nodeID@address,…": the shard leaders that answered.
        public var leaders: String? = nil
    }
    public var collections: [Collection]
    public var pchannels: [ChannelCheckpoint]
    public var findings: [Finding]
    public var quarantined: Int
    /// Set while `run` cannot reach the broker: since when (Unix ms).
    public var kafkaUnreachableSinceMs: Int64? = nil
    /// The last complete audit sweep of each collection.
    public var coverage: [AuditCoverage] = []
}

/// A finding's place in its lifecycle.
public enum FindingState: String, Sendable {
    case suspected, confirmed, resolved
}

/// One finding of an audit round with the state the round gave it.
public struct AuditRecord: Sendable {
    public var finding: ReplicaFinding
    public var state: FindingState
    public init(_ finding: ReplicaFinding, _ state: FindingState) {
        self.finding = finding
        self.state = state
    }
}

/// What one complete sweep of a collection covered.
public struct AuditCoverage: Sendable, Equatable {
    public var collectionID: Int64
    public var sweepMs: Int64
    /// The cut T the replicas were read at.
    public var timestamp: UInt64
    public var mode: String
    /// Rows read, summed over replicas.
    public var rows: Int
    /// Replicas read completely, of all replicas listed.
    public var replicas: Int
    public var replicasTotal: Int
    public var buckets: Int
    public var seconds: Double
    /// Sample mode: the slice read in full in this sweep.
    public var slice: Int?
    public init(
        collectionID: Int64, sweepMs: Int64, timestamp: UInt64, mode: String, rows: Int, replicas: Int,
        replicasTotal: Int, slice: Int? = nil, buckets: Int, seconds: Double
    ) {
        self.slice = slice
        self.collectionID = collectionID
        self.sweepMs = sweepMs
        self.timestamp = timestamp
        self.mode = mode
        self.rows = rows
        self.replicas = replicas
        self.replicasTotal = replicasTotal
        self.buckets = buckets
        self.seconds = seconds
    }
}
