import AuditorCore
import AuditorKafka
import AuditorMilvus

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

extension ChannelCheckpoint {
    /// A collection's cut T: the lowest time tick applied on its pchannels (every record at or before it is in
    /// the shadow); nil until each of them has applied one.
    public static func cut(of pchannels: [String], in checkpoints: [String: ChannelCheckpoint]) -> UInt64? {
        guard let t = pchannels.map({ checkpoints[$0]?.tickTs ?? 0 }).min(), t > 0 else { return nil }
        return t
    }
}

public struct QuarantinedRecord: Sendable, Equatable {
    public var offset: Int64
    public var reason: String
    public var bytes: [UInt8]?
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
    /// Wall time of quarantined records and log findings.
    public var clock: any AuditorClock

    public init(
        buckets: Int = 4096, tombstoneRetention: Duration = .seconds(7 * 24 * 3600),
        clock: any AuditorClock = SystemClock()
    ) {
        self.buckets = buckets
        self.tombstoneRetention = tombstoneRetention
        self.clock = clock
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
        public var kind: FindingKind
        public var state: FindingState
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
        /// The shard leaders that answered: vchannel → "nodeID@address".
        public var leaders: [String: String] = [:]
        /// `replica_divergence`: the other replica of the pair and its nodes.
        public var peerReplicaID: Int64? = nil
        public var peerNodeIDs: String? = nil
    }
    /// The latest audit round as recorded.
    public struct LatestRound: Sendable {
        public var startedMs: Int64
        public var finishedMs: Int64
        public var mode: String
        public var result: String
        /// What it could not audit, one line each (collection, replica, why); the error of a failed round.
        public var notAudited: [String]
        public var error: String?
        /// True while the latest round left something unaudited: `report` exits 2.
        public var incomplete: Bool { result == RoundOutcome.Result.incomplete.rawValue || result == "failed" }
    }
    /// A collection's status in the latest round that looked at it.
    public struct AuditStatus: Sendable {
        public var roundMs: Int64
        public var audited: Bool
        public var reason: String
    }
    public var collections: [Collection]
    public var pchannels: [ChannelCheckpoint]
    public var findings: [Finding]
    public var quarantined: Int
    /// Set while `run` cannot reach the broker: since when (Unix ms).
    public var kafkaUnreachableSinceMs: Int64? = nil
    /// The last complete audit sweep of each collection.
    public var coverage: [AuditCoverage] = []
    public var latestRound: LatestRound? = nil
    /// QueryNode restarts per replica, newest first (the last 100).
    public var restarts: [RestartRecord] = []
    /// Per collection id: whether the latest round audited it, and why not.
    public var auditStatus: [Int64: AuditStatus] = [:]
}
