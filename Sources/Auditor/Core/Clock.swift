import Foundation
import Synchronization

/// The one way auditd reads time: wall time (Unix ms, for what is stored and shown), a monotonic instant
/// (for measuring how long something took) and sleeping. `SystemClock` in production; tests use
/// `ManualClock` (AuditorTesting) and move time themselves.
public protocol AuditorClock: Sendable {
    /// Wall time in Unix milliseconds.
    func nowMs() -> Int64
    /// A monotonic instant, for durations.
    func instant() -> ContinuousClock.Instant
    func sleep(for duration: Duration) async throws
}

extension AuditorClock {
    /// Milvus hybrid timestamp of the wall time now (logical 0).
    public func nowTs() -> UInt64 { HybridTimestamp.compose(milliseconds: nowMs()) }
    /// Seconds since `start` (an `instant()` of this clock).
    public func seconds(since start: ContinuousClock.Instant) -> Double { (instant() - start).secondsValue }
}

/// The machine's clocks.
public struct SystemClock: AuditorClock {
    public init() {}
    public func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }
    public func instant() -> ContinuousClock.Instant { ContinuousClock.now }
    public func sleep(for duration: Duration) async throws { try await Task.sleep(for: duration) }
}

/// Set from a signal handler, read between batches: SIGTERM/SIGINT finish the batch, commit, exit 0.
public final class StopFlag: Sendable {
    private let stopped = Atomic<Bool>(false)
    public init() {}
    public func stop() { stopped.store(true, ordering: .relaxed) }
    public var isStopped: Bool { stopped.load(ordering: .relaxed) }
}
