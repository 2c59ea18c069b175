import AuditorCore
import Logging

/// Follows the pchannels of a Kafka log (`<prefix>_N`, partition 0): finds them, keeps each one's position
/// and tells when every one reached the end of the log as it was when it was opened. The one follower of
/// `auditd tail` (through `WALReader`) and of the shadow ingester; what they do with the records is theirs.
public final class LogFollower {
    /// Where one pchannel stands.
    public struct Position: Sendable, Equatable {
        public var topic: String
        /// The high watermark when the pchannel was opened: the end of the log "as it was at start".
        public var target: Int64
        /// The next offset to read.
        public var next: Int64
        /// The broker said there is nothing more right now (partition EOF, or a fetch whose high watermark is
        /// at `next`).
        public var reachedEnd: Bool
        /// Read up to `target` and seen the end.
        public var atEnd: Bool { next >= target && reachedEnd }
    }

    /// What one poll brought.
    public struct Batch: Sendable {
        /// Records of followed pchannels (partition 0), in the order the log delivered them.
        public var records: [KafkaRecord] = []
        /// Pchannels whose end was reached, with the offset after their last record.
        public var ends: [(topic: String, offset: Int64)] = []
        /// Errors the log reported for single partitions (reading goes on).
        public var errors: [KafkaError] = []
        /// The number of events the poll returned (records of any partition, ends, errors).
        public var events = 0
    }

    public let log: any KafkaLog
    public let topicPrefix: String
    private let logger: Logger
    public private(set) var positions: [String: Position] = [:]

    public init(log: any KafkaLog, topicPrefix: String, logger: Logger) {
        self.log = log
        self.topicPrefix = topicPrefix
        self.logger = logger
    }

    public var topics: [String] { positions.keys.sorted() }

    /// Every pchannel followed reached its end.
    public var atEnd: Bool { positions.values.allSatisfy(\.atEnd) }

    /// Pchannels under the prefix that are not followed yet, in numeric order.
    public func unfollowedTopics() async throws -> [String] {
        try await log.pchannelTopics(prefix: topicPrefix).filter { positions[$0] == nil }
    }

    /// Starts reading `topic` at `offset`; `next` is the offset that means (`.exact` gives it; for `.beginning`
    /// and `.end` the watermarks do), `target` the end of the log now.
    public func follow(_ topic: String, offset: KafkaOffset, next: Int64, target: Int64) throws {
        positions[topic] = Position(topic: topic, target: target, next: next, reachedEnd: next >= target)
        try log.assign([TopicPosition(topic: topic, offset: offset)])
        logger.debug("following", metadata: ["kafka.topic": "\(topic)", "kafka.offset": "\(offset.raw)"])
    }

    /// Reads `topic` again from `offset` (before its position): the records after it are delivered again.
    public func rewind(_ topic: String, to offset: Int64) throws {
        guard var position = positions[topic] else { return }
        position.next = offset
        position.reachedEnd = false
        positions[topic] = position
        try log.assign([TopicPosition(topic: topic, offset: .exact(offset))])
        logger.debug("rewound", metadata: ["kafka.topic": "\(topic)", "kafka.offset": "\(offset)"])
    }

    /// Forgets a pchannel (its records are ignored until it is followed again).
    public func unfollow(_ topic: String) {
        positions[topic] = nil
    }

    /// The high watermark the last fetch of `topic` reported, if any.
    public func fetchedHigh(_ topic: String) -> Int64? {
        log.fetchedWatermarks(topic: topic, partition: 0)?.high
    }

    /// One poll of the log; positions move with the records and ends it brings.
    public func poll(maxMessages: Int, timeout: Duration) async throws -> Batch {
        let events = try await log.poll(maxMessages: maxMessages, timeout: timeout)
        var batch = Batch(events: events.count)
        var touched: Set<String> = []
        for event in events {
            switch event {
            case .record(let record):
                guard record.partition == 0, var position = positions[record.topic] else { continue }
                position.next = max(position.next, record.offset + 1)
                positions[record.topic] = position
                touched.insert(record.topic)
                batch.records.append(record)
            case .partitionEnd(let topic, _, let offset):
                guard var position = positions[topic] else { continue }
                position.next = max(position.next, offset)
                position.reachedEnd = true
                positions[topic] = position
                batch.ends.append((topic, offset))
            case .error(let error):
                logger.warning("kafka partition error", metadata: ["kafka.error": "\(error)"])
                batch.errors.append(error)
            }
        }
        // Some brokers (Tansu) send no partition EOF: a fetch whose high watermark we reached is the end too.
        for topic in touched {
            guard var position = positions[topic], position.next >= position.target, let high = fetchedHigh(topic)
            else { continue }
            if position.next >= high { position.reachedEnd = true }
            positions[topic] = position
        }
        return batch
    }
}
