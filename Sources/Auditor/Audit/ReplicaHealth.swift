import AuditorCore
import AuditorMilvus
import AuditorShadow

/// Whether a replica's answers can be judged: serving, still recovering after a (re)start, or unreachable.
public enum ReplicaHealth: Sendable, Equatable {
    case serving
    /// Answers may be partial without any error: no target yet, or sealed segments missing that the other
    /// replica serves (replica-reads.md: the window after a QueryNode restart). `reloading`: some shard leader
    /// has no view or no target yet — the replica is (re)loading after a restart or reassignment; otherwise it
    /// only lacks sealed segments, as after every flush until the handoff reaches it.
    case recovering(String, reloading: Bool)
    case unreachable(String)

    public var isServing: Bool { self == .serving }
    public var isRecovering: Bool {
        if case .recovering = self { return true }
        return false
    }
    public var reason: String {
        switch self {
        case .serving: return "serving"
        case .recovering(let why, _), .unreachable(let why): return why
        }
    }
}

/// One replica as probed: its topology and, per shard, the leader view (or why it could not be had).
public struct ReplicaProbe: Sendable {
    public var replica: ReplicaInfo
    /// vchannel → the leader's view, or the error text when the leader could not be asked.
    public var views: [String: Result<LeaderView?, ProbeError>]
    public init(replica: ReplicaInfo, views: [String: Result<LeaderView?, ProbeError>]) {
        self.replica = replica
        self.views = views
    }
}

public struct ProbeError: Error, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

extension ReplicaHealth {
    /// Classifies every probed replica of one collection. `vchannels` are the collection's shards.
    public static func classify(_ probes: [ReplicaProbe], vchannels: [String]) -> [Int64: ReplicaHealth] {
        var result: [Int64: ReplicaHealth] = [:]
        for probe in probes {
            result[probe.replica.id] = health(of: probe, among: probes, vchannels: vchannels)
        }
        return result
    }

    static func health(of probe: ReplicaProbe, among probes: [ReplicaProbe], vchannels: [String]) -> ReplicaHealth {
        var recovering: [String] = []
        var reloading = false
        for vchannel in vchannels {
            guard let shard = probe.replica.shards.first(where: { $0.vchannel == vchannel }) else {
                return .unreachable(
                    "no shard leader for \(vchannel)" + (probe.replica.note.map { ": \($0)" } ?? ""))
            }
            switch probe.views[vchannel] {
            case nil:
                return .unreachable("leader \(shard.leaderID) at \(shard.leaderAddress) not probed")
            case .failure(let error)?:
                return .unreachable("leader \(shard.leaderID) at \(shard.leaderAddress): \(error.message)")
            case .success(nil)?:
                recovering.append("\(vchannel): leader \(shard.leaderID) has no view yet")
                reloading = true
            case .success(let view?)?:
                if view.targetVersion == 0 {
                    recovering.append("\(vchannel): leader \(shard.leaderID) has TargetVersion 0")
                    reloading = true
                    continue
                }
                // Sealed segments another replica's leader serves for this vchannel but this one lacks.
                let others = probes.filter { $0.replica.id != probe.replica.id }.compactMap { other -> Set<Int64>? in
                    guard case .success(let otherView?)? = other.views[vchannel], otherView.targetVersion != 0 else {
                        return nil
                    }
                    return otherView.sealedSegments
                }
                let lacking = others.reduce(into: Set<Int64>()) { $0.formUnion($1) }
                    .subtracting(view.sealedSegments).subtracting(view.growingSegments)
                if !lacking.isEmpty {
                    recovering.append(
                        "\(vchannel): leader \(shard.leaderID) lacks sealed segments \(lacking.sorted()) "
                            + "the other replica serves")
                }
            }
        }
        return recovering.isEmpty ? .serving : .recovering(recovering.joined(separator: "; "), reloading: reloading)
    }
}
