import AuditorCore

/// A consumer's lag state without thresholds, after LinkedIn Burrow's evaluator (docs/operations.md): a
/// window of the consumer's last positions with their times, judged by how they move. With Burrow's
/// idle-topic fix for Milvus: a pchannel always receives time ticks (every 200 ms), so a consumer whose only
/// backlog is time ticks — no insert, delete or DDL behind it — is caught up, not lagging.
public enum LagStatus: String, Sendable, CaseIterable {
    /// Caught up at some point of the window, or moving and catching up.
    case ok = "OK"
    /// Moving, but the backlog grew at every step of a full window.
    case warn = "WARN"
    /// Not moving over the whole window while there is a backlog.
    case stall = "STALL"
    /// No progress for longer than the window spans while there is a backlog: the consumer stopped.
    case stop = "STOP"
    /// The consumer's position went backwards.
    case rewind = "REWIND"
}

/// One observation of a consumer on one channel.
public struct LagSample: Sendable, Equatable {
    public var atMs: Int64
    /// The next offset the consumer will read (its committed position).
    public var position: Int64
    /// The log's end (high watermark) at that moment.
    public var head: Int64
    /// Hybrid timestamp the consumer has reached (its last time tick or checkpoint timestamp).
    public var reachedTs: UInt64
    /// Records behind the consumer that are not time ticks, where known (nil: count every record).
    public var dataBehind: Int64?

    public init(atMs: Int64, position: Int64, head: Int64, reachedTs: UInt64, dataBehind: Int64? = nil) {
        self.atMs = atMs
        self.position = position
        self.head = head
        self.reachedTs = reachedTs
        self.dataBehind = dataBehind
    }

    public var lagMessages: Int64 { max(0, head - position) }
    /// The backlog that counts: data records behind, else every record behind.
    var backlog: Int64 { dataBehind ?? lagMessages }
}

public struct LagEvaluation: Sendable, Equatable {
    public var status: LagStatus
    public var lagMessages: Int64
    /// How far behind the newest time tick the log holds, in seconds (0 when caught up).
    public var lagSeconds: Double
    public var reason: String
}

/// The last `capacity` samples of one consumer on one channel.
public struct LagWindow: Sendable {
    public let capacity: Int
    public private(set) var samples: [LagSample] = []
    /// When the position or the reached timestamp last moved (Unix ms).
    public private(set) var lastProgressMs: Int64?

    public init(capacity: Int = 10) { self.capacity = max(2, capacity) }

    public mutating func add(_ sample: LagSample) {
        if let last = samples.last {
            if sample.position != last.position || sample.reachedTs != last.reachedTs { lastProgressMs = sample.atMs }
        } else {
            lastProgressMs = sample.atMs
        }
        samples.append(sample)
        if samples.count > capacity { samples.removeFirst(samples.count - capacity) }
    }

    /// `headTs`: the newest time tick the log holds on the channel (for the lag in seconds).
    public func evaluate(nowMs: Int64, headTs: UInt64? = nil) -> LagEvaluation {
        guard let newest = samples.last else {
            return LagEvaluation(status: .ok, lagMessages: 0, lagSeconds: 0, reason: "no sample yet")
        }
        let seconds: Double = {
            guard newest.backlog > 0, let headTs, headTs > newest.reachedTs else { return 0 }
            return Double(HybridTimestamp.physicalMilliseconds(headTs) - HybridTimestamp.physicalMilliseconds(newest.reachedTs)) / 1000
        }()
        func result(_ status: LagStatus, _ reason: String) -> LagEvaluation {
            LagEvaluation(status: status, lagMessages: newest.lagMessages, lagSeconds: seconds, reason: reason)
        }
        for (older, newer) in zip(samples, samples.dropFirst()) where newer.position < older.position {
            return result(.rewind, "position went back from \(older.position) to \(newer.position)")
        }
        if newest.backlog > 0, let progress = lastProgressMs, samples.count >= 2 {
            let span = newest.atMs - samples[0].atMs
            if nowMs - progress > span && span > 0 {
                return result(.stop, "no progress for \((nowMs - progress) / 1000) s with \(newest.backlog) records behind")
            }
        }
        if samples.contains(where: { $0.backlog == 0 }) { return result(.ok, "caught up within the window") }
        guard samples.count >= 2 else { return result(.ok, "one sample") }
        if samples.allSatisfy({ $0.position == samples[0].position }) {
            return result(.stall, "not moving over the window with \(newest.backlog) records behind")
        }
        if samples.count == capacity, zip(samples, samples.dropFirst()).allSatisfy({ $1.backlog >= $0.backlog }) {
            return result(.warn, "moving, but the backlog grew at every step (\(samples[0].backlog) → \(newest.backlog))")
        }
        return result(.ok, "moving and catching up")
    }
}
