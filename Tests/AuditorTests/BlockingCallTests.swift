import Dispatch
import Foundation
import Testing

@testable import AuditorKafka

@Suite("Blocking C calls under a watchdog")
struct BlockingCallTests {
    @Test func aCallStuckPastItsTimeoutIsAnErrorNotAHang() async throws {
        let queue = DispatchQueue(label: "test.blocking")
        let release = DispatchSemaphore(value: 0)
        do {
            _ = try await BlockingCall.run(
                on: queue, what: "librdkafka metadata", timeout: .milliseconds(100), grace: .milliseconds(200)
            ) { () throws(KafkaError) in
                release.wait()  // a wait that ignores its timeout
                return 1
            }
            Issue.record("a stuck call returned")
        } catch let error as KafkaError {
            #expect(error.kind == .retriable && error.message.contains("librdkafka metadata has not returned"))
        }
        // the error came while the call is still blocked: it returns only after this
        release.signal()
    }

    @Test func aCallThatReturnsInTimeGivesItsResultOrItsError() async throws {
        let queue = DispatchQueue(label: "test.blocking")
        let value = try await BlockingCall.run(
            on: queue, what: "x", timeout: .milliseconds(100), grace: .milliseconds(100)
        ) { () throws(KafkaError) in 7 }
        #expect(value == 7)
        await #expect(throws: KafkaError.self) {
            try await BlockingCall.run(on: queue, what: "x", timeout: .milliseconds(100), grace: .milliseconds(100)) {
                () throws(KafkaError) -> Int in
                throw KafkaError(kind: .unknownTopic, code: 3, message: "no such topic")
            }
        }
        try await Task.sleep(for: .milliseconds(400))  // the watchdog fires after the result: nothing happens
    }
}
