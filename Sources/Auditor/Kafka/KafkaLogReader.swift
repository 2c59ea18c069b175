import AuditorCore
import CRdKafka
import Dispatch
import Logging

/// How auditd connects to Kafka. Extra librdkafka properties may be given; the ones that make the
/// reader a plain log reader (no group join, no commits, errors instead of silent offset resets) are fixed.
public struct KafkaReaderConfiguration: Sendable {
    public var brokers: String
    public var clientID: String
    /// Unused by the reader (it uses no consumer group); kept for tools that label their clients.
    public var groupID: String
    public var properties: [String: String]
    /// Payload bytes one poll takes from librdkafka's queue at most (at least one message, whatever its size):
    /// with the queue's own bound (`queued.max.messages.kbytes`) this bounds ingest memory.
    public var pollBytes = 8 << 20

    public init(
        brokers: String, clientID: String = "auditd", groupID: String = "auditd-reader",
        properties: [String: String] = [:]
    ) {
        self.brokers = brokers
        self.clientID = clientID
        self.groupID = groupID
        self.properties = properties
    }

    var librdkafkaProperties: [(String, String)] {
        var props: [(String, String)] = [
            ("bootstrap.servers", brokers),
            ("client.id", clientID),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            // An offset outside the log is an error we report, never a silent jump to 0 or to the end.
            ("auto.offset.reset", "error"),
            ("log.queue", "true"),
            // Milvus producers allow 10 MB messages.
            ("fetch.message.max.bytes", "10485760"),
            // librdkafka's prefetch queue: the bulk of ingest memory. Measured (docs/benchmarks.md, 1M rows
            // of backlog): 16 MB reads as fast as 32 MB (8.3–8.8 s either way) with a peak RSS of 109–141 MB
            // instead of 157 MB; 8 MB is 15 % slower, 4 MB 65 %.
            ("queued.max.messages.kbytes", "16384"),
            ("topic.metadata.refresh.interval.ms", "10000"),
            ("reconnect.backoff.ms", "50"),
            ("reconnect.backoff.max.ms", "2000"),
        ]
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            props.removeAll { $0.0 == key }
            props.append((key, value))
        }
        return props
    }
}

/// The seam between auditd and a Kafka log: explicit positions on partition 0 of each topic.
public protocol KafkaLog: Sendable {
    func listTopics(timeout: Duration) async throws -> [String]
    func watermarks(topic: String, partition: Int32, timeout: Duration) async throws -> Watermarks
    /// Watermarks seen in the last fetch response (exact even where ListOffsets is not), if any.
    /// Watermarks of many topics at once; a topic missing from the answer could not be queried.
    func watermarks(topics: [String], partition: Int32, timeout: Duration) async throws -> [String: Watermarks]
    func fetchedWatermarks(topic: String, partition: Int32) -> Watermarks?
    /// The topic's configuration as the broker describes it (DescribeConfigs); empty where it says nothing.
    func topicConfig(topic: String, timeout: Duration) async throws -> [String: String]
    func assign(_ positions: [TopicPosition]) throws
    func unassign(_ positions: [TopicPosition]) throws
    /// Up to `maxMessages` events; waits at most `timeout` when nothing is ready.
    func poll(maxMessages: Int, timeout: Duration) async throws -> [KafkaEvent]
}

extension KafkaLog {
    /// Doubles without a broker describe nothing.
    public func topicConfig(topic: String, timeout: Duration) async throws -> [String: String] { [:] }

    public func watermarks(topics: [String], partition: Int32, timeout: Duration) async throws -> [String: Watermarks] {
        var result: [String: Watermarks] = [:]
        for topic in topics {
            result[topic] = try await watermarks(topic: topic, partition: partition, timeout: timeout)
        }
        return result
    }

    /// Topics named `<prefix>_<N>` (Milvus pchannels), sorted by N.
    public func pchannelTopics(prefix: String, timeout: Duration = .seconds(10)) async throws -> [String] {
        try await listTopics(timeout: timeout).compactMap { name -> (Int, String)? in
            guard name.hasPrefix(prefix + "_"), let index = Int(name.dropFirst(prefix.count + 1)), index >= 0 else {
                return nil
            }
            return (index, name)
        }.sorted { $0.0 < $1.0 }.map(\.1)
    }
}

/// A Kafka log reader over librdkafka's simple consumer: partitions started at explicit offsets (no
/// consumer group, no commits, no rebalances), batch polls that never block Swift's cooperative thread
/// pool, librdkafka logs in swift-log.
public final class KafkaLogReader: KafkaLog {
    private let handle: RdKafkaHandle
    private let blocking: DispatchQueue
    private let logger: Logger
    private let pollBytes: Int

    public init(configuration: KafkaReaderConfiguration, logger: Logger) throws(KafkaError) {
        handle = try RdKafkaHandle(role: .consumer, properties: configuration.librdkafkaProperties)
        blocking = DispatchQueue(label: "auditd.kafka.reader")
        pollBytes = configuration.pollBytes
        var logger = logger
        logger[metadataKey: "kafka.brokers"] = "\(configuration.brokers)"
        self.logger = logger
    }

    /// Runs a blocking librdkafka call on the reader's own dispatch queue, off the cooperative pool, under a
    /// watchdog (`BlockingCall`): librdkafka's timed waits are absolute deadlines on the wall clock, and a call
    /// that sleeps past its timeout (the clock stepped, a missed wakeup) must be an error the operator sees,
    /// never a silent hang.
    private func offPool<T: Sendable>(
        _ what: String, timeout: Duration, _ body: @escaping @Sendable () throws(KafkaError) -> T
    ) async throws -> T {
        try await BlockingCall.run(
            on: blocking, what: "librdkafka \(what)", timeout: timeout, grace: Self.watchdogGrace
        ) { () throws(KafkaError) in try body() }
    }

    static let watchdogGrace = Duration.seconds(10)

    private func checkFatal() throws(KafkaError) {
        if let fatal = handle.drainEvents(logger: logger).first(where: \.isFatal) {
            throw fatal
        }
    }

    public func listTopics(timeout: Duration) async throws -> [String] {
        try checkFatal()
        let handle = handle
        let ms = timeout.milliseconds
        return try await offPool("metadata", timeout: timeout) { () throws(KafkaError) in
            try handle.listTopics(timeoutMs: ms).map(\.name)
        }
    }

    public func topicConfig(topic: String, timeout: Duration) async throws -> [String: String] {
        try checkFatal()
        let handle = handle
        let ms = timeout.milliseconds
        return try await offPool("describe configs", timeout: timeout) { () throws(KafkaError) in
            try handle.describeTopicConfig(topic: topic, timeoutMs: ms)
        }
    }

    public func watermarks(topic: String, partition: Int32 = 0, timeout: Duration) async throws -> Watermarks {
        try checkFatal()
        let handle = handle
        let ms = timeout.milliseconds
        return try await offPool("query watermarks", timeout: timeout) { () throws(KafkaError) in
            try handle.queryWatermarks(topic: topic, partition: partition, timeoutMs: ms)
        }
    }

    public func watermarks(topics: [String], partition: Int32 = 0, timeout: Duration) async throws -> [String:
        Watermarks]
    {
        try checkFatal()
        let handle = handle
        let ms = timeout.milliseconds
        return try await offPool("query watermarks", timeout: timeout) { () throws(KafkaError) in
            try handle.queryWatermarks(topics: topics, partition: partition, timeoutMs: ms)
        }
    }

    public func fetchedWatermarks(topic: String, partition: Int32 = 0) -> Watermarks? {
        handle.fetchedWatermarks(topic: topic, partition: partition)
    }

    public func assign(_ positions: [TopicPosition]) throws {
        try handle.start(positions)
        for position in positions {
            logger.debug(
                "assigned", metadata: ["kafka.topic": "\(position.topic)", "kafka.offset": "\(position.offset.raw)"])
        }
    }

    public func unassign(_ positions: [TopicPosition]) throws {
        handle.stop(positions)
    }

    public func poll(maxMessages: Int = 1000, timeout: Duration) async throws -> [KafkaEvent] {
        try checkFatal()
        // A non-blocking attempt first: when messages are queued, no thread hop at all.
        let ready = handle.consumeBatch(max: maxMessages, maxBytes: pollBytes, timeoutMs: 0)
        if !ready.isEmpty { return ready }
        let (handle, bytes) = (handle, pollBytes)
        let ms = timeout.milliseconds
        let events = try await offPool("consume", timeout: timeout) { () throws(KafkaError) in
            handle.consumeBatch(max: maxMessages, maxBytes: bytes, timeoutMs: ms)
        }
        try checkFatal()
        return events
    }
}
