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

/// The last `capacity` samples of one consumer on one channel, at least `spacing` apart (the newest sample
/// always counts). A consumer that commits only now and then — Milvus's DataNode moves its channel checkpoint
/// when it syncs, every 10 minutes at most by default — is judged over a window longer than that period.
public struct LagWindow: Sendable {
    public let capacity: Int
    public let spacing: Duration
    private var kept: [LagSample] = []
    private var newest: LagSample?
    /// When the position or the reached timestamp moved (Unix ms), the last `capacity` times: Burrow's
    /// commit times.
    public private(set) var progress: [Int64] = []
    public var lastProgressMs: Int64? { progress.last }

    /// A silence shorter than this is never a STOP (a consumer that commits on a known period: Milvus's
    /// DataNode syncs every 10 minutes when idle).
    public let minimumSilence: Duration

    public init(capacity: Int = 10, spacing: Duration = .zero, minimumSilence: Duration = .zero) {
        self.capacity = max(2, capacity)
        self.spacing = spacing
        self.minimumSilence = minimumSilence
    }

    /// The window: the kept samples and the newest one.
    public var samples: [LagSample] {
        guard let newest, newest != kept.last else { return kept }
        return Array((kept + [newest]).suffix(capacity))
    }

    public mutating func add(_ sample: LagSample) {
        let last = newest ?? kept.last
        if last == nil || sample.position != last!.position || sample.reachedTs != last!.reachedTs {
            progress.append(sample.atMs)
            if progress.count > capacity { progress.removeFirst(progress.count - capacity) }
        }
        newest = sample
        if let last = kept.last, sample.atMs - last.atMs < spacing.milliseconds64 { return }
        kept.append(sample)
        if kept.count > capacity { kept.removeFirst(kept.count - capacity) }
    }

    /// `headTs`: the newest time tick the log holds on the channel (for the lag in seconds).
    public func evaluate(nowMs: Int64, headTs: UInt64? = nil) -> LagEvaluation {
        let samples = self.samples
        guard let newest = samples.last else {
            return LagEvaluation(status: .ok, lagMessages: 0, lagSeconds: 0, reason: "no sample yet")
        }
        let seconds: Double = {
            guard newest.backlog > 0, let headTs, headTs > newest.reachedTs else { return 0 }
            return Double(
                HybridTimestamp.physicalMilliseconds(headTs) - HybridTimestamp.physicalMilliseconds(newest.reachedTs))
                / 1000
        }()
        func result(_ status: LagStatus, _ reason: String) -> LagEvaluation {
            LagEvaluation(status: status, lagMessages: newest.lagMessages, lagSeconds: seconds, reason: reason)
        }
        for (older, newer) in zip(samples, samples.dropFirst()) where newer.position < older.position {
            return result(.rewind, "position went back from \(older.position) to \(newer.position)")
        }
        // Burrow's STOP: silent for longer than its recent progress spans.
        if newest.backlog > 0, progress.count >= 2, let lastMove = progress.last {
            let span = lastMove - progress[0]
            if nowMs - lastMove > max(span, minimumSilence.milliseconds64) {
                return result(
                    .stop, "no progress for \((nowMs - lastMove) / 1000) s with \(newest.backlog) records behind")
            }
        }
        if samples.contains(where: { $0.backlog == 0 }) { return result(.ok, "caught up within the window") }
        guard samples.count == capacity else { return result(.ok, "window not full yet") }
        if samples.allSatisfy({ $0.position == samples[0].position }) {
            return result(.stall, "not moving over the window with \(newest.backlog) records behind")
        }
        if zip(samples, samples.dropFirst()).allSatisfy({ $1.backlog >= $0.backlog }) {
            return result(
                .warn, "moving, but the backlog grew at every step (\(samples[0].backlog) → \(newest.backlog))")
        }
        return result(.ok, "moving and catching up")
    }
}
