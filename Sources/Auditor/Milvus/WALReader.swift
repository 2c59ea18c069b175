import AuditorCore
import AuditorKafka
import AuditorTransport
import Logging
import MilvusProto

/// Follows every Milvus pchannel (`<prefix>_N`, partition 0) in a Kafka log and decodes its records.
/// Used by `auditd tail`, the shadow ingester and the tests through the library API.
public final class WALReader {
    public struct Options: Sendable {
        public var topicPrefix: String
        public var fromBeginning: Bool
        /// Stop once every pchannel reached the high watermark it had when `start()` ran.
        public var untilEnd: Bool
        /// How often to look for pchannels created later (not with `untilEnd`).
        public var rediscoverInterval: Duration
        public var pollTimeout: Duration
        public var batchSize: Int

        public init(
            topicPrefix: String = "by-dev-rootcoord-dml", fromBeginning: Bool = true, untilEnd: Bool = false,
            rediscoverInterval: Duration = .seconds(5), pollTimeout: Duration = .milliseconds(200),
            batchSize: Int = 1000
        ) {
            self.topicPrefix = topicPrefix
            self.fromBeginning = fromBeginning
            self.untilEnd = untilEnd
            self.rediscoverInterval = rediscoverInterval
            self.pollTimeout = pollTimeout
            self.batchSize = batchSize
        }
    }

    /// Per-pchannel progress toward the end of the log.
    public struct ChannelProgress: Sendable, Equatable {
        public var topic: String
        /// High watermark at start (the `untilEnd` target).
        public var target: Int64
        /// Next offset to read.
        public var next: Int64
        public var reachedEnd: Bool
        public var done: Bool { next >= target && reachedEnd }
    }

    private let log: any KafkaLog
    private let options: Options
    private let logger: Logger
    private let clock = ContinuousClock()
    public private(set) var decoder: WALDecoder
    public private(set) var progress: [String: ChannelProgress] = [:]
    /// Errors the log reported for single partitions (the reader kept going).
    public private(set) var errors: [KafkaError] = []
    private var lastDiscovery: ContinuousClock.Instant?

    public init(log: any KafkaLog, options: Options, decoder: WALDecoder = WALDecoder(), logger: Logger) {
        self.log = log
        self.options = options
        self.decoder = decoder
        self.logger = logger
    }

    public var topics: [String] { progress.keys.sorted() }

    /// Discovers the pchannels, records their high watermarks and assigns them.
    public func start() async throws {
        try await discover()
    }

    private func discover() async throws {
        lastDiscovery = clock.now
        let found = try await log.pchannelTopics(prefix: options.topicPrefix)
        var positions: [TopicPosition] = []
        for topic in found where progress[topic] == nil {
            let marks = try await log.watermarks(topic: topic, partition: 0, timeout: .seconds(10))
            // A pchannel that appears while following is read from its beginning.
            let fromStart = options.fromBeginning || discoveredOnce
            let next = fromStart ? marks.low : marks.high
            progress[topic] = ChannelProgress(
                topic: topic, target: marks.high, next: next, reachedEnd: next >= marks.high)
            positions.append(TopicPosition(topic: topic, offset: fromStart ? .beginning : .end))
            logger.debug(
                "pchannel", metadata: ["kafka.topic": "\(topic)", "kafka.watermarks": "\(marks)"])
        }
        discoveredOnce = true
        if !positions.isEmpty { try log.assign(positions) }
    }

    private var discoveredOnce = false

    /// True once `untilEnd` is set and every pchannel reached its start-time high watermark.
    public var finished: Bool {
        options.untilEnd && progress.values.allSatisfy(\.done)
    }

    /// The next decoded records, or nil when `untilEnd` is satisfied. May return an empty array.
    public func next() async throws -> [WALMessage]? {
        if finished { return nil }
        if !options.untilEnd, let last = lastDiscovery, clock.now - last >= options.rediscoverInterval {
            try await discover()
        }
        let events = try await log.poll(maxMessages: options.batchSize, timeout: options.pollTimeout)
        var messages: [WALMessage] = []
        messages.reserveCapacity(events.count)
        for event in events {
            switch event {
            case .record(let record):
                guard record.partition == 0 else { continue }
                if var channel = progress[record.topic] {
                    channel.next = max(channel.next, record.offset + 1)
                    if channel.next >= channel.target, options.untilEnd,
                        let fetched = log.fetchedWatermarks(topic: record.topic, partition: 0),
                        channel.next >= fetched.high
                    {
                        channel.reachedEnd = true
                    }
                    progress[record.topic] = channel
                }
                messages.append(decoder.decode(record))
            case .partitionEnd(let topic, _, let offset):
                if var channel = progress[topic] {
                    channel.next = max(channel.next, offset)
                    channel.reachedEnd = true
                    progress[topic] = channel
                }
            case .error(let error):
                errors.append(error)
                logger.warning("kafka partition error", metadata: ["kafka.error": "\(error)"])
            }
        }
        return messages
    }
}
