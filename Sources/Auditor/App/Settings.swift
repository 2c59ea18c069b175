import AuditorAudit
import AuditorCore
import AuditorMilvus
import Logging

/// Every setting auditd takes, resolved once from its three sources: flags > environment (`AUDITD_*`) >
/// config file (`--config`, `key: value` lines) > defaults. Keys are the flags' long names; the environment
/// variable of a key is `AUDITD_` + the key upper-cased with `-` as `_` (`topic-prefix` → `AUDITD_TOPIC_PREFIX`).
/// `kafka-property` may repeat: file, then `AUDITD_KAFKA_PROPERTY` (comma-separated), then flags, the later
/// winning per property. A bad value is one error naming where it came from.
public struct Settings: Sendable, Equatable {
    public var brokers = "127.0.0.1:9092"
    public var topicPrefix = "by-dev-rootcoord-dml"
    public var stateDirectory = "auditd-state"
    public var logLevel = Logger.Level.warning
    public var kafkaProperties: [String: String] = [:]
    /// The Milvus proxy (gRPC HOST:PORT).
    public var milvus = "127.0.0.1:19530"
    /// Whether `milvus` was given (flag, environment or file): `run` asks Milvus for schemas only then.
    public var milvusGiven = false
    public var etcd = "127.0.0.1:2379"
    public var etcdRoot = "by-dev"
    // audit
    public var settle = Duration.seconds(10)
    public var catchupBound = Duration.seconds(120)
    public var watchLimit = Duration.seconds(60)
    public var unreachableGrace = Duration.seconds(10)
    public var auditInterval = Duration.seconds(60)
    public var mode = AuditMode.pk
    public var readConcurrency = 4

    public init() {}

    /// Every key the config file and the environment may set.
    public static let keys: Set<String> = [
        "brokers", "topic-prefix", "state", "log-level", "milvus", "kafka-property", "settle", "catchup-bound",
        "watch-limit", "audit-interval", "unreachable-grace", "etcd", "etcd-root", "mode", "read-concurrency",
    ]

    public static func environmentName(_ key: String) -> String {
        "AUDITD_" + key.uppercased().replacingOccurrences(of: "-", with: "_")
    }

    /// Resolves `flags` (key → value as typed; nil or absent: not given), `environment` and `file`.
    public static func resolve(
        flags: [String: String?] = [:], kafkaPropertyFlags: [String] = [], environment: [String: String] = [:],
        file: ConfigFile = ConfigFile()
    ) throws(ApplicationError) -> Settings {
        let sources = Sources(flags: flags.compactMapValues { $0 }, environment: environment, file: file)
        var s = Settings()
        if let v = sources.value("brokers") {
            guard !v.text.isEmpty, !v.text.split(separator: ",").contains(where: { !$0.contains(":") }) else {
                throw v.invalid("is not HOST:PORT[,HOST:PORT]")
            }
            s.brokers = v.text
        }
        if let v = sources.value("topic-prefix") { s.topicPrefix = v.text }
        if let v = sources.value("state") { s.stateDirectory = v.text }
        if let v = sources.value("etcd-root") { s.etcdRoot = v.text }
        if let v = sources.value("log-level") {
            guard let level = Logger.Level(rawValue: v.text) else {
                throw v.invalid("is not one of trace, debug, info, notice, warning, error, critical")
            }
            s.logLevel = level
        }
        if let v = sources.value("milvus") {
            guard v.text.contains(":") else { throw v.invalid("is not HOST:PORT") }
            s.milvus = v.text
            s.milvusGiven = true
        }
        if let v = sources.value("etcd") {
            guard v.text.contains(":") else { throw v.invalid("is not HOST:PORT") }
            s.etcd = v.text
        }
        for (key, path) in [
            ("settle", \Settings.settle), ("catchup-bound", \.catchupBound), ("watch-limit", \.watchLimit),
            ("unreachable-grace", \.unreachableGrace), ("audit-interval", \.auditInterval),
        ] {
            if let v = sources.value(key) { s[keyPath: path] = .seconds(try v.seconds()) }
        }
        if let v = sources.value("mode") {
            guard let mode = AuditMode(rawValue: v.text) else { throw v.invalid("is not one of pk, full, sample") }
            s.mode = mode
        }
        if let v = sources.value("read-concurrency") {
            guard let n = Int(v.text), n >= 1 else { throw v.invalid("is not a whole number of at least 1") }
            s.readConcurrency = n
        }
        let environmentProperties =
            environment[environmentName("kafka-property")].map {
                $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            } ?? []
        for (origin, properties) in [
            ("config file key 'kafka-property'", file.kafkaProperties),
            (environmentName("kafka-property"), environmentProperties), ("--kafka-property", kafkaPropertyFlags),
        ] {
            for property in properties {
                let parts = property.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard parts.count == 2, !parts[0].isEmpty else {
                    throw ApplicationError(.configuration, "\(origin): '\(property)' is not KEY=VALUE")
                }
                s.kafkaProperties[String(parts[0])] = String(parts[1])
            }
        }
        return s
    }

    /// One value and where it came from.
    struct Value {
        var text: String
        var origin: String

        func invalid(_ why: String) -> ApplicationError {
            ApplicationError(.configuration, "\(origin): '\(text)' \(why)")
        }

        func seconds() throws(ApplicationError) -> Int {
            guard let value = Int(text), value >= 0 else { throw invalid("is not a number of seconds") }
            return value
        }
    }

    struct Sources {
        var flags: [String: String]
        var environment: [String: String]
        var file: ConfigFile

        func value(_ key: String) -> Value? {
            if let text = flags[key] { return Value(text: text, origin: "--\(key)") }
            if let text = environment[Settings.environmentName(key)] {
                return Value(text: text, origin: Settings.environmentName(key))
            }
            if let text = file.values[key] { return Value(text: text, origin: "config file key '\(key)'") }
            return nil
        }
    }

    /// The audit policy these settings give.
    public var auditPolicy: AuditPolicy {
        var policy = AuditPolicy(
            settle: settle, watchLimit: watchLimit, unreachableGrace: unreachableGrace, catchupBound: catchupBound)
        policy.mode = mode
        policy.readConcurrency = readConcurrency
        return policy
    }

    /// Milvus's etcd as these settings name it.
    public var milvusEtcd: MilvusEtcd { MilvusEtcd(endpoint: etcd, rootPath: etcdRoot) }
}
