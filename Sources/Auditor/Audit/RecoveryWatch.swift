/// One replica's recovery watch within an audit round: a pure state machine. The round feeds it each
/// probe of the replica (`observe`) and performs the action it returns — counting the replica's rows at T —
/// then feeds the count back (`counted`). Nothing here does I/O or reads a clock; times come in as values.
///
/// A replica is watched from the first probe that finds it recovering (no leader view or target yet, or
/// lacking sealed segments the other replica serves) or unreachable, until it serves every version the
/// log has at T. Rules (each one the fix of a CI incident, docs/audit.md):
/// - recovering: caught up only when `count(*)` at T is *exactly* the log's live versions. A replica still
///   loading can answer more (a segment loaded with a wrong delta log, deletes not applied yet); judging it
///   then confirmed a false resurrection. A failed or different count puts it back to catching up.
/// - serving again after recovering or being unreachable: caught up once it answers at least as many.
/// - only ever seen unreachable: a node that is down — not a catch-up (`unreachable`, never "caught up").
/// - `fromBehind`: seen reloading, unreachable, answering fewer rows than the log, or already recovering in
///   an earlier round — a catch-up worth a record. Otherwise it only lacked a sealed segment for a moment
///   while serving every row: the handoff after a flush, not a catch-up.
public struct RecoveryWatch: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        /// Not watched: serving whenever it was probed.
        case idle
        /// Seen only unreachable so far (a node down stays so; a restarting one turns recovering or serving).
        case unreachable
        /// Recovering, or serving again but not yet shown to hold every version.
        case catchingUp
        /// Holds every version the log has at T, since `atMs`.
        case caughtUp(atMs: Int64)
    }

    /// What the replica looked like in one probe (its `ReplicaHealth`, without the details).
    public enum Probe: Sendable, Equatable {
        case serving
        case recovering(reason: String, reloading: Bool)
        case unreachable(reason: String)
    }

    /// What the round must do after an observation.
    public enum Action: Sendable, Equatable {
        case none
        /// Count the replica's rows at T and call `counted`. `exactly`: only the exact number catches up.
        case count(exactly: Bool)
    }

    public private(set) var phase: Phase = .idle
    /// When the replica was first seen recovering or unreachable (Unix ms; an earlier round's first sighting
    /// when it was already recovering then).
    public private(set) var sinceMs: Int64 = 0
    /// How many rows short it was at its first count (nil: never counted).
    public private(set) var shortAtStart: Int64?
    public private(set) var lastReason = ""
    public private(set) var fromBehind = false
    private var rule: Bool?

    public init() {}

    /// Feeds one probe. `openSinceMs`: when an open `catchup_unfinished` of this replica was first seen (an
    /// earlier round), if any.
    public mutating func observe(_ probe: Probe, nowMs: Int64, openSinceMs: Int64? = nil) -> Action {
        switch (probe, phase) {
        case (.recovering(let reason, let reloading), _):
            if phase == .idle {
                sinceMs = openSinceMs ?? nowMs
                fromBehind = openSinceMs != nil
            }
            if phase == .idle || phase == .unreachable { phase = .catchingUp }
            lastReason = reason
            if reloading { fromBehind = true }
            rule = true
            return .count(exactly: true)
        case (.unreachable(let reason), .idle):
            phase = .unreachable
            sinceMs = nowMs
            lastReason = reason
            fromBehind = true
            return .none
        case (.unreachable, _), (.serving, .idle), (.serving, .caughtUp):
            return .none
        case (.serving, .unreachable), (.serving, .catchingUp):
            phase = .catchingUp
            rule = false
            return .count(exactly: false)
        }
    }

    /// Feeds the count asked for by the last `.count` action (nil: the replica could not be counted).
    /// `expected`: the live versions the log leaves at T.
    public mutating func counted(_ count: Int64?, expected: Int64, nowMs: Int64) {
        guard let exactly = rule else { return }
        rule = nil
        guard let count else {
            phase = .catchingUp
            return
        }
        if shortAtStart == nil { shortAtStart = max(0, expected - count) }
        if count < expected { fromBehind = true }
        if exactly ? count == expected : count >= expected {
            if case .caughtUp = phase { return }
            phase = .caughtUp(atMs: nowMs)
        } else {
            phase = .catchingUp
        }
    }

    public var isWatched: Bool { phase != .idle }
    /// Still catching up: the round keeps probing it (until its limits run out).
    public var isCatchingUp: Bool { phase == .catchingUp }
    public var caughtUpAtMs: Int64? {
        if case .caughtUp(let at) = phase { return at }
        return nil
    }
}

extension RecoveryWatch.Probe {
    public init(_ health: ReplicaHealth) {
        switch health {
        case .serving: self = .serving
        case .recovering(let reason, let reloading): self = .recovering(reason: reason, reloading: reloading)
        case .unreachable(let reason): self = .unreachable(reason: reason)
        }
    }
}
