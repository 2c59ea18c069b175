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
        /// Two replicas of one collection disagree.
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
