import AuditorCore
import Synchronization

/// Virtual time: sleeping advances it (and yields), nothing else does, so limits and bounds measured with
/// it do not depend on machine speed.
public final class ManualClock: AuditorClock {
    private let elapsed = Mutex(Duration.zero)
    private let startMs: Int64
    private let origin = ContinuousClock.now

    public init(_ startMs: Int64 = 1_000_000) { self.startMs = startMs }

    public func nowMs() -> Int64 { startMs + elapsed.withLock { $0 }.milliseconds64 }
    public func instant() -> ContinuousClock.Instant { origin.advanced(by: elapsed.withLock { $0 }) }
    public func sleep(for duration: Duration) async throws {
        advance(by: duration)
        await Task.yield()
    }
    /// Moves time on without sleeping.
    public func advance(by duration: Duration) { elapsed.withLock { $0 += duration } }
}
