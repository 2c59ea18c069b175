import AuditorCore

/// Follows QueryNode restarts per replica: a pure state machine fed with session events and with probes of
/// the affected replicas (whether a replica answered, how many rows short, whether it caught up). No I/O, no
/// clock: times come in as values. The service that drives it persists the records it returns.
public struct RestartTracker: Sendable {
    public struct Key: Hashable, Sendable {
        public var collectionID: Int64
        public var replicaID: Int64
        public init(collectionID: Int64, replicaID: Int64) {
            self.collectionID = collectionID
            self.replicaID = replicaID
        }
    }

    /// Replica membership as last seen: which nodes serve each replica.
    public private(set) var members: [Key: Set<Int64>] = [:]
    public private(set) var open: [Key: RestartRecord] = [:]
    /// Per open record, the nodes that went away.
    private var gone: [Key: Set<Int64>] = [:]
    /// Nodes that registered since the last probe showed where they serve.
    public private(set) var arrived: [Int64: Int64] = [:]
    public var catchupBound: Duration

    public init(catchupBound: Duration = .seconds(120)) { self.catchupBound = catchupBound }

    /// The replicas and their nodes, as listed (an audit round or a probe).
    public mutating func membership(_ replicas: [Key: Set<Int64>]) {
        for (key, nodes) in replicas where !nodes.isEmpty { members[key] = nodes }
    }

    /// A QueryNode's session went away: every replica it served opens a record at once.
    public mutating func nodeDown(_ nodeID: Int64, atMs: Int64) -> [RestartRecord] {
        nodeDown(nodeID, atMs: atMs, except: nil)
    }

    /// `nodeDown` for every replica the node served but `skipped`.
    private mutating func nodeDown(_ nodeID: Int64, atMs: Int64, except skipped: Key?) -> [RestartRecord] {
        var opened: [RestartRecord] = []
        for (key, nodes) in members.sorted(by: {
            ($0.key.collectionID, $0.key.replicaID) < ($1.key.collectionID, $1.key.replicaID)
        })
        where nodes.contains(nodeID) && key != skipped {
            gone[key, default: []].insert(nodeID)
            if var record = open[key] {
                if !record.oldNodes.contains(nodeID) { record.oldNodes.append(nodeID) }
                open[key] = record
                continue
            }
            let record = RestartRecord(
                collectionID: key.collectionID, replicaID: key.replicaID, oldNodes: nodes.sorted(), downMs: atMs)
            open[key] = record
            opened.append(record)
        }
        return opened
    }

    /// A QueryNode registered (a new id after a restart): the replica it joins is watched from the next probe.
    public mutating func nodeUp(_ nodeID: Int64, atMs: Int64) {
        if members.values.contains(where: { $0.contains(nodeID) }) { return }  // known already (watch resumed)
        arrived[nodeID] = atMs
    }

    /// Whether anything needs probing: an open record, or a node that arrived and has not been placed.
    public var needsProbing: Bool { !open.isEmpty || !arrived.isEmpty }

    /// One probe of one replica. `nodes`: its nodes now; `answered`: a count at T came back; `short`: rows
    /// fewer than the log's at T (when answered); `caughtUp`: holds every version the log has at T.
    /// Returns the records that changed: this replica's (opened, served again, caught up, turned unfinished)
    /// first, then those opened for other replicas of the node this one's new node replaced.
    /// A replica still served by a node that went away (a node stopping gracefully answers until it exits)
    /// is not serving *again*: only answers from the nodes that replaced it count.
    public mutating func observe(
        _ key: Key, nodes: Set<Int64>, answered: Bool, short: Int64, caughtUp: Bool, atMs: Int64
    ) -> [RestartRecord] {
        var record: RestartRecord
        var changed = false
        var elsewhere: [RestartRecord] = []
        if let existing = open[key] {
            record = existing
        } else if let joined = nodes.first(where: { arrived[$0] != nil }) {
            // A restart faster than the old session's expiry: the new node shows up first. The node it replaced
            // is as good as down for every replica it served (other collections' too): their windows open now,
            // before this arrival is consumed (its old session may expire much later, or never be seen).
            let replaced = (members[key] ?? []).subtracting(nodes).sorted()
            let downMs = arrived[joined]!
            record = RestartRecord(
                collectionID: key.collectionID, replicaID: key.replicaID, oldNodes: replaced, downMs: downMs)
            changed = true
            for node in replaced { elsewhere += nodeDown(node, atMs: downMs, except: key) }
        } else {
            if !nodes.isEmpty { members[key] = nodes }
            return []
        }
        for node in nodes where arrived[node] != nil { arrived[node] = nil }
        let stillOld = !nodes.isDisjoint(with: gone[key] ?? [])
        let answered = answered && !stillOld
        let caughtUp = caughtUp && !stillOld
        let newNodes = nodes.subtracting(record.oldNodes).sorted()
        if !newNodes.isEmpty && newNodes != record.newNodes {
            record.newNodes = newNodes
            changed = true
        }
        if !nodes.isEmpty { members[key] = nodes }
        if answered {
            if record.servingMs == nil {
                record.servingMs = atMs
                changed = true
            }
            if short > record.rowsShortMax {
                record.rowsShortMax = short
                changed = true
            }
            if caughtUp {
                record.caughtUpMs = atMs
                record.state = .caughtUp
                open[key] = nil
                gone[key] = nil
                return [record] + elsewhere
            }
        }
        if record.state == .behind && atMs - record.downMs >= catchupBound.milliseconds64 {
            record.state = .unfinished
            changed = true
        }
        open[key] = record
        return (changed ? [record] : []) + elsewhere
    }

    /// Forgets nodes that arrived but never showed up in a replica within `limit` (a node without replicas).
    public mutating func forgetArrivals(olderThan limit: Duration, nowMs: Int64) {
        arrived = arrived.filter { nowMs - $0.value < limit.milliseconds64 }
    }
}
