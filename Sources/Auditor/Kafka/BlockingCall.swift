import Dispatch
import Synchronization

/// A blocking C call on a dispatch queue of its own, off Swift's cooperative pool, with a watchdog: if the call
/// has not returned `grace` after its own `timeout`, the caller gets a retriable `KafkaError` saying so. The call
/// itself cannot be abandoned: it keeps its thread, and later calls on the same serial queue wait behind it (and
/// fail the same way) until it returns.
enum BlockingCall {
    static func run<T: Sendable>(
        on queue: DispatchQueue, what: String, timeout: Duration, grace: Duration,
        _ body: @escaping @Sendable () throws(KafkaError) -> T
    ) async throws -> T {
        let limit = timeout + grace
        return try await withCheckedThrowingContinuation { continuation in
            let once = ResumeOnce(continuation)
            queue.async {
                do throws(KafkaError) {
                    once.resume(with: .success(try body()))
                } catch {
                    once.resume(with: .failure(error))
                }
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(limit.milliseconds))) {
                once.resume(
                    with: .failure(
                        KafkaError(
                            kind: .retriable, code: -185,  // RD_KAFKA_RESP_ERR__TIMED_OUT
                            message: "\(what) has not returned \(limit) after it started (its own timeout "
                                + "\(timeout)): the client is stuck; is the clock stepping?")))
            }
        }
    }
}

/// Resumes a continuation once: the first of the call and its watchdog wins.
private final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, any Error>?>

    init(_ continuation: CheckedContinuation<T, any Error>) { self.continuation = Mutex(continuation) }

    func resume(with result: Result<T, any Error>) {
        continuation.withLock { pending in
            pending?.resume(with: result)
            pending = nil
        }
    }
}
