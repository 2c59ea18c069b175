import AuditorCore
import AuditorKafka
import AuditorMilvus
import MilvusProto
import SwiftProtobuf
import Synchronization

/// An in-memory Kafka log (partition 0 of each topic) behind the `KafkaLog` seam, for tests and tools.
/// Supports appending while a reader follows, wiping a topic (a broker that lost its log) and retention.
public final class InMemoryKafkaLog: KafkaLog {
    struct State {
        var topics: [String: (low: Int64, records: [KafkaRecord])] = [:]
        var positions: [String: Int64] = [:]
        /// Records fetches skip (the next `count` times they would be delivered), as a broker whose later
        /// record became visible before an earlier one.
        var hidden: [String: [Int64: Int]] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    /// Appends a record value; returns its offset.
    @discardableResult
    public func append(topic: String, value: [UInt8]?, timestampMs: Int64? = nil) -> Int64 {
        state.withLock { state in
            if state.topics[topic] == nil { state.topics[topic] = (0, []) }
            let offset = state.topics[topic]!.low + Int64(state.topics[topic]!.records.count)
            // in place: no copy of the topic's records per append
            state.topics[topic]!.records.append(
                KafkaRecord(topic: topic, offset: offset, timestampMs: timestampMs, value: value))
            return offset
        }
    }

    /// The records a topic holds now (an empty array for a topic never written).
    public func records(topic: String) -> [KafkaRecord] {
        state.withLock { $0.topics[topic]?.records ?? [] }
    }

    /// The next `fetches` polls that reach `offset` of `topic` skip it and deliver what follows.
    public func hide(topic: String, offset: Int64, fetches: Int) {
        state.withLock { $0.hidden[topic, default: [:]][offset] = fetches }
    }

    /// Drops everything below `offset` (retention).
    public func truncate(topic: String, below offset: Int64) {
        state.withLock { state in
            guard var entry = state.topics[topic], offset > entry.low else { return }
            let drop = Int(min(offset - entry.low, Int64(entry.records.count)))
            entry.records.removeFirst(drop)
            entry.low += Int64(drop)
            state.topics[topic] = entry
        }
    }

    /// Replaces the topic by an empty log (a broker restarted without its data).
    public func wipe(topic: String) {
        state.withLock { $0.topics[topic] = (0, []) }
    }

    public func listTopics(timeout: Duration) async throws -> [String] {
        state.withLock { Array($0.topics.keys) }
    }

    public func watermarks(topic: String, partition: Int32, timeout: Duration) async throws -> Watermarks {
        try state.withLock { state in
            guard let entry = state.topics[topic] else {
                throw KafkaError(kind: .unknownTopic, code: 3, message: "unknown topic", topic: topic)
            }
            return Watermarks(low: entry.low, high: entry.low + Int64(entry.records.count))
        }
    }

    public func fetchedWatermarks(topic: String, partition: Int32) -> Watermarks? {
        state.withLock { state in
            state.topics[topic].map { Watermarks(low: $0.low, high: $0.low + Int64($0.records.count)) }
        }
    }

    public func assign(_ positions: [TopicPosition]) throws {
        state.withLock { state in
            for position in positions {
                let entry = state.topics[position.topic] ?? (0, [])
                switch position.offset {
                case .beginning: state.positions[position.topic] = entry.low
                case .end: state.positions[position.topic] = entry.low + Int64(entry.records.count)
                case .exact(let offset): state.positions[position.topic] = offset
                }
            }
        }
    }

    public func unassign(_ positions: [TopicPosition]) throws {
        state.withLock { state in for position in positions { state.positions[position.topic] = nil } }
    }

    public func poll(maxMessages: Int, timeout: Duration) async throws -> [KafkaEvent] {
        let events = state.withLock { state -> [KafkaEvent] in
            var events: [KafkaEvent] = []
            for topic in state.positions.keys.sorted() {
                guard var position = state.positions[topic], let entry = state.topics[topic] else { continue }
                let high = entry.low + Int64(entry.records.count)
                if position < entry.low || position > high {
                    events.append(
                        .error(
                            KafkaError(
                                kind: .offsetOutOfRange, code: 1,
                                message: "offset \(position) outside [\(entry.low), \(high))",
                                topic: topic, partition: 0, offset: position)))
                    state.positions[topic] = nil
                    continue
                }
                while position < high, events.count < maxMessages {
                    if let left = state.hidden[topic]?[position], left > 0 {
                        state.hidden[topic]?[position] = left - 1
                    } else {
                        events.append(.record(entry.records[Int(position - entry.low)]))
                    }
                    position += 1
                }
                if position == high { events.append(.partitionEnd(topic: topic, partition: 0, offset: high)) }
                state.positions[topic] = position
            }
            return events
        }
        if events.allSatisfy({ if case .partitionEnd = $0 { return true } else { return false } }) {
            try await Task.sleep(for: min(timeout, .milliseconds(5)))
        }
        return events
    }
}
