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

    private let follower: LogFollower
    private let options: Options
    private let clock: any AuditorClock
    public private(set) var decoder: WALDecoder
    /// Errors the log reported for single partitions (the reader kept going).
    public private(set) var errors: [KafkaError] = []
    private var lastDiscovery: ContinuousClock.Instant?
    private var discoveredOnce = false

    public init(
        log: any KafkaLog, options: Options, decoder: WALDecoder = WALDecoder(), logger: Logger,
        clock: any AuditorClock = SystemClock()
    ) {
        self.clock = clock
        follower = LogFollower(log: log, topicPrefix: options.topicPrefix, logger: logger)
        self.options = options
        self.decoder = decoder
    }

    public var topics: [String] { follower.topics }
    /// Per-pchannel progress toward the end of the log.
    public var progress: [String: LogFollower.Position] { follower.positions }

    /// Discovers the pchannels, records their high watermarks and assigns them.
    public func start() async throws {
        try await discover()
    }

    private func discover() async throws {
        lastDiscovery = clock.instant()
        for topic in try await follower.unfollowedTopics() {
            let marks = try await follower.log.watermarks(topic: topic, partition: 0, timeout: .seconds(10))
            // A pchannel that appears while following is read from its beginning.
            let fromStart = options.fromBeginning || discoveredOnce
            try follower.follow(
                topic, offset: fromStart ? .beginning : .end, next: fromStart ? marks.low : marks.high,
                target: marks.high)
        }
        discoveredOnce = true
    }

    /// True once `untilEnd` is set and every pchannel reached its start-time high watermark.
    public var finished: Bool {
        options.untilEnd && follower.atEnd
    }

    /// The next decoded records, or nil when `untilEnd` is satisfied. May return an empty array.
    public func next() async throws -> [WALMessage]? {
        if finished { return nil }
        if !options.untilEnd, let last = lastDiscovery, clock.instant() - last >= options.rediscoverInterval {
            try await discover()
        }
        let batch = try await follower.poll(maxMessages: options.batchSize, timeout: options.pollTimeout)
        errors += batch.errors
        return batch.records.map { decoder.decode($0) }
    }
}
