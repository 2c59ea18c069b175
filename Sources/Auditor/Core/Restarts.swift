/// One QueryNode restart as a replica lived it: when its node went away, when the replica answered queries
/// again, and when it held every version the log has — the window between the last two is the one in which
/// Milvus answers queries wrong without an error (replica-reads.md: 1.7–16 s after each restart measured).
public struct RestartRecord: Sendable, Equatable {
    public enum State: String, Sendable {
        /// Down, or answering but not caught up yet, within the catch-up bound.
        case behind
        /// Caught up: the window is closed.
        case caughtUp = "caught_up"
        /// Not caught up within the catch-up bound (still followed: it may yet catch up).
        case unfinished
    }

    public var collectionID: Int64
    public var replicaID: Int64
    /// The replica's nodes before the restart and after (a restarted QueryNode registers under a new id).
    public var oldNodes: [Int64]
    public var newNodes: [Int64]
    public var downMs: Int64
    /// First answer to a query after the node went away.
    public var servingMs: Int64?
    public var caughtUpMs: Int64?
    /// The most rows the replica answered short of the log while serving (0: never short).
    public var rowsShortMax: Int64
    public var state: State

    public init(collectionID: Int64, replicaID: Int64, oldNodes: [Int64], downMs: Int64) {
        self.collectionID = collectionID
        self.replicaID = replicaID
        self.oldNodes = oldNodes
        newNodes = []
        self.downMs = downMs
        rowsShortMax = 0
        state = .behind
    }

    public var isOpen: Bool { caughtUpMs == nil }

    /// Seconds the replica answered queries while not caught up (so far, while open).
    public func servingBehindSeconds(nowMs: Int64) -> Double? {
        guard let serving = servingMs else { return nil }
        return Double(max(0, (caughtUpMs ?? nowMs) - serving)) / 1000
    }
}
