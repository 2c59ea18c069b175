import AuditorAudit
import AuditorCore
import AuditorKafka
import AuditorMilvus
import AuditorReport
import AuditorShadow
import Foundation
import Logging

public enum AuditorVersion {
    public static let current = "0.1.0"
    /// librdkafka's version in the headers auditd was built against.
    public static var builtAgainstLibrdkafka: String { KafkaLibrary.headerVersion }
    public static var banner: String {
        "auditd \(current) (librdkafka \(KafkaLibrary.runtimeVersion) at run time, built against "
            + "\(builtAgainstLibrdkafka); xxhash \(XXH3.libraryVersion))"
    }
}

/// Everything auditd needs from the outside world, injected: Kafka, logging.
public struct AuditorConfiguration: Sendable {
    public var brokers: String
    public var topicPrefix: String
    public var kafkaProperties: [String: String]
    public var logger: Logger
    /// The Kafka seam: tests swap in an in-memory log or the librdkafka mock cluster.
    public var makeKafkaLog: @Sendable (KafkaReaderConfiguration, Logger) throws -> any KafkaLog
    /// The clock seam: every wall-time read and every sleep of the application goes through it.
    public var clock: any AuditorClock
    /// Everything else the commands take (state directory, Milvus, etcd, audit policy).
    public var settings = Settings()

    public init(
        brokers: String, topicPrefix: String = "by-dev-rootcoord-dml", kafkaProperties: [String: String] = [:],
        logger: Logger = Logger(label: "auditd"),
        makeKafkaLog: @escaping @Sendable (KafkaReaderConfiguration, Logger) throws -> any KafkaLog = {
            try KafkaLogReader(configuration: $0, logger: $1)
        },
        clock: any AuditorClock = SystemClock()
    ) {
        self.clock = clock
        self.brokers = brokers
        self.topicPrefix = topicPrefix
        self.kafkaProperties = kafkaProperties
        self.logger = logger
        self.makeKafkaLog = makeKafkaLog
    }
}

extension AuditorConfiguration {
    /// The configuration `main` builds: resolved settings, a logger at their level, the real seams.
    public init(settings: Settings, logger: Logger, clock: any AuditorClock = SystemClock()) {
        var logger = logger
        logger.logLevel = settings.logLevel
        self.init(
            brokers: settings.brokers, topicPrefix: settings.topicPrefix, kafkaProperties: settings.kafkaProperties,
            logger: logger, clock: clock)
        self.settings = settings
    }
}

/// The assembled program; `main` and the tests build it the same way.
public struct Application: Sendable {
    public let configuration: AuditorConfiguration

    public func makeKafkaLog() throws -> any KafkaLog {
        var logger = configuration.logger
        logger[metadataKey: "component"] = "kafka"
        return try configuration.makeKafkaLog(
            KafkaReaderConfiguration(brokers: configuration.brokers, properties: configuration.kafkaProperties),
            logger)
    }

    public var clock: any AuditorClock { configuration.clock }

    /// Opens the shadow in `directory` with the application's clock.
    public func openStore(_ directory: String, shadow: ShadowConfiguration = ShadowConfiguration(), create: Bool)
        throws -> ShadowStore
    {
        var shadow = shadow
        shadow.clock = clock
        return try ShadowStore.open(directory: directory, configuration: shadow, create: create)
    }

    /// The shadow a long-running writer (`serve`, `run`) adds to, checked first against its own checksums:
    /// a row changed on disk would otherwise be built on and, at the next audit, blamed on Milvus.
    public func openCheckedStore(_ directory: String, shadow: ShadowConfiguration = ShadowConfiguration()) throws
        -> ShadowStore
    {
        let store = try openStore(directory, shadow: shadow, create: true)
        let problems = try store.verify()
        if let first = problems.first {
            throw ShadowStore.untrusted(
                "'\((directory as NSString).appendingPathComponent("shadow.sqlite"))' does not match its own checksums "
                    + "(\(first)\(problems.count > 1 ? "; \(problems.count - 1) more" : ""))", directory: directory)
        }
        return store
    }

    public func walReader(fromBeginning: Bool, untilEnd: Bool) throws -> WALReader {
        WALReader(
            log: try makeKafkaLog(),
            options: WALReader.Options(
                topicPrefix: configuration.topicPrefix, fromBeginning: fromBeginning, untilEnd: untilEnd),
            logger: configuration.logger, clock: clock)
    }
}

public func buildApplication(_ configuration: AuditorConfiguration) -> Application {
    Application(configuration: configuration)
}
