/// The findings auditd keeps: about the log (gaps, regressions, retention) and about replicas, with the
/// lifecycle state a round gives them. Shared by the shadow (which stores them), the audit (which makes
/// them) and the report (which shows them).

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

/// A finding about one replica (or a pair of replicas) of one collection.
public struct ReplicaFinding: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        /// The shadow has the pk; the replica does not serve it.
        case missing
        /// The replica serves a pk (or a version) the log never produced.
        case extra
        /// Deleted in the log, alive on the replica.
        case resurrected
        /// The replica serves an older version than the newest one in the log.
        case stale
        /// The replica holds another number of versions than the log left live (a pk inserted twice while
        /// live is stored twice by Milvus 2.3 and counted twice by `count(*)`), with the same pk set.
        case duplicatePK = "duplicate_pk"
        /// Two replicas of one collection disagree where the log cannot say which one deviates (its history
        /// is incomplete), or on something the comparison with the log does not explain. Names both replicas
        /// (`replicaID` and `peerReplicaID`); neither is the culprit. Where the log decides, the findings
        /// against the log name the deviating replica and no divergence is reported.
        case replicaDivergence = "replica_divergence"
        /// A replica could not be read at T (unreachable, or still behind T at the deadline).
        case replicaUnavailable = "replica_unavailable"
        /// A (re)started replica still behind the log: recovering, with how long and how many rows short.
        case catchupUnfinished = "catchup_unfinished"
    }

    public var kind: Kind
    public var collectionID: Int64
    public var replicaID: Int64
    public var nodeIDs: [Int64]
    /// At most `ReplicaComparison.witnessLimit` pks; `pkCount` has the total.
    public var pks: [PrimaryKey]
    public var pkCount: Int
    /// The consistent cut the replica was read at.
    public var timestamp: UInt64
    public var evidence: String
    /// Shard leaders read (vchannel → "nodeID@address"), the node evidence.
    public var leaders: [String: String] = [:]
    /// For catch-up: when the replica was first seen recovering and when it matched (Unix ms).
    public var windowStartMs: Int64? = nil
    public var windowEndMs: Int64? = nil
    /// `replica_divergence`: the other replica of the pair, and its nodes (`nodeIDs` are `replicaID`'s).
    public var peerReplicaID: Int64? = nil
    public var peerNodeIDs: [Int64] = []

    public init(
        kind: Kind, collectionID: Int64, replicaID: Int64, nodeIDs: [Int64], pks: [PrimaryKey], pkCount: Int,
        timestamp: UInt64, evidence: String, leaders: [String: String] = [:]
    ) {
        self.kind = kind
        self.collectionID = collectionID
        self.replicaID = replicaID
        self.nodeIDs = nodeIDs
        self.pks = pks
        self.pkCount = pkCount
        self.timestamp = timestamp
        self.evidence = evidence
        self.leaders = leaders
    }
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
    public var mode: AuditMode
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
        collectionID: Int64, sweepMs: Int64, timestamp: UInt64, mode: AuditMode, rows: Int, replicas: Int,
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

/// How much of each row an audit reads.
public enum AuditMode: String, Sendable, CaseIterable {
    /// pks and insert timestamps of every row.
    case pk
    /// every row's content too (row hashes, vectors included).
    case full
    /// pk mode for every row, and full mode for one slice of each shard's pk range, rotating every round.
    case sample
}

/// Any finding's kind, as stored (its raw value) and shown: one about the log or one about a replica.
/// A kind this version does not know (a state directory written by a newer auditd) stays visible as
/// `unknown` rather than vanishing.
public enum FindingKind: Sendable, Hashable, CustomStringConvertible {
    case log(LogFinding.Kind)
    case replica(ReplicaFinding.Kind)
    case unknown(String)

    public init(rawValue: String) {
        if let kind = LogFinding.Kind(rawValue: rawValue) {
            self = .log(kind)
        } else if let kind = ReplicaFinding.Kind(rawValue: rawValue) {
            self = .replica(kind)
        } else {
            self = .unknown(rawValue)
        }
    }

    public var rawValue: String {
        switch self {
        case .log(let kind): return kind.rawValue
        case .replica(let kind): return kind.rawValue
        case .unknown(let text): return text
        }
    }

    public var description: String { rawValue }
}

/// What one audit round did, kept with the round so that `report` tells the latest truth: a collection or
/// replica the latest round could not audit stays "not audited" (exit 2) until a round audits it.
public struct RoundOutcome: Sendable, Equatable {
    public struct Collection: Sendable, Equatable {
        public var id: Int64
        public var name: String
        /// Replicas listed for the collection and those read and judged against the log. `listed` empty and
        /// `reason` set: the collection itself could not be audited.
        public var listed: [Int64]
        public var judged: [Int64]
        /// Why (part of) the collection was not audited; empty when every listed replica was judged.
        public var reasons: [String]
        public var audited: Bool { reasons.isEmpty }
        public init(id: Int64, name: String, listed: [Int64], judged: [Int64], reasons: [String]) {
            self.id = id
            self.name = name
            self.listed = listed
            self.judged = judged
            self.reasons = reasons
        }
    }

    public enum Result: String, Sendable {
        /// Every collection audited, nothing confirmed.
        case clean
        /// Confirmed findings open after the round.
        case findings
        /// Something could not be audited (a replica down, recovering, no time tick yet, …).
        case incomplete
        /// The round itself failed (Kafka or Milvus unreachable).
        case failed
    }

    public var startedMs: Int64
    public var finishedMs: Int64
    public var mode: AuditMode
    public var collections: [Collection]
    public var confirmed: Int
    /// Set when the round failed as a whole.
    public var error: String?

    public init(
        startedMs: Int64, finishedMs: Int64, mode: AuditMode, collections: [Collection], confirmed: Int,
        error: String? = nil
    ) {
        self.startedMs = startedMs
        self.finishedMs = finishedMs
        self.mode = mode
        self.collections = collections
        self.confirmed = confirmed
        self.error = error
    }

    public var notAudited: [String] {
        collections.flatMap { c in c.reasons.map { "\(c.name) (\(c.id)): \($0)" } } + (error.map { [$0] } ?? [])
    }

    public var result: Result {
        if error != nil { return .failed }
        if confirmed > 0 { return .findings }
        return collections.allSatisfy(\.audited) ? .clean : .incomplete
    }
}
