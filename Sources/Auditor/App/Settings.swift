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
    /// Row versions compared at once: bounds a round's memory (docs/benchmarks.md, sidecar budgets).
    public var windowRows = 20_000
    // serve
    /// HTTP listen address (HOST:PORT; port 0 picks a free one).
    public var listenHost = "127.0.0.1"
    public var listenPort = 9187
    /// Full-mode rounds: how often, and over how much (nil: every row; N: a rotating 1/N of the rows).
    public var fullInterval = Duration.seconds(6 * 3600)
    public var fullSample: Int? = nil
    /// Alertmanager's base URL (confirmed findings pushed to /api/v2/alerts); nil: none.
    public var alertmanager: String? = nil
    /// Kafka's retention of the DML topics, for the retention headroom (the broker may not say it).
    public var kafkaRetention = Duration.seconds(168 * 3600)
    /// `/readyz` fails while auditd's own lag exceeds this.
    public var readyLag = Duration.seconds(60)
    /// Whether to follow QueryNode sessions in etcd (restart windows).
    public var watchRestarts = true

    public init() {}

    /// Every key the config file and the environment may set.
    public static let keys: Set<String> = [
        "brokers", "topic-prefix", "state", "log-level", "milvus", "kafka-property", "settle", "catchup-bound",
        "watch-limit", "audit-interval", "unreachable-grace", "etcd", "etcd-root", "mode", "read-concurrency",
        "window-rows", "listen", "full-interval", "full-sample", "alertmanager", "kafka-retention", "ready-lag",
        "watch-restarts",
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
            ("full-interval", \.fullInterval), ("kafka-retention", \.kafkaRetention), ("ready-lag", \.readyLag),
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
        if let v = sources.value("window-rows") {
            guard let n = Int(v.text), n >= 1 else { throw v.invalid("is not a whole number of at least 1") }
            s.windowRows = n
        }
        if let v = sources.value("listen") {
            guard let colon = v.text.lastIndex(of: ":"), let port = Int(v.text[v.text.index(after: colon)...]),
                (0...65535).contains(port)
            else { throw v.invalid("is not HOST:PORT") }
            s.listenHost = String(v.text[..<colon])
            s.listenPort = port
        }
        if let v = sources.value("full-sample") {
            if v.text == "all" {
                s.fullSample = nil
            } else {
                guard let n = Int(v.text), n >= 2 else {
                    throw v.invalid("is not 'all' or a number of slices (2 or more)")
                }
                s.fullSample = n
            }
        }
        if let v = sources.value("alertmanager") {
            guard v.text.hasPrefix("http://") || v.text.hasPrefix("https://") else {
                throw v.invalid("is not an http:// or https:// URL")
            }
            s.alertmanager = v.text
        }
        if let v = sources.value("watch-restarts") {
            guard let flag = ["true": true, "false": false, "1": true, "0": false][v.text.lowercased()] else {
                throw v.invalid("is not true or false")
            }
            s.watchRestarts = flag
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
                    throw ApplicationError(
                        .configuration,
                        "\(origin): '\(Redaction.oneLine(Redaction.property(property)))' is not KEY=VALUE")
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
            ApplicationError(.configuration, "\(origin): '\(Redaction.oneLine(Redaction.url(text)))' \(why)")
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
        policy.windowRows = windowRows
        return policy
    }

    /// Milvus's etcd as these settings name it.
    public var milvusEtcd: MilvusEtcd { MilvusEtcd(endpoint: etcd, rootPath: etcdRoot) }
}
