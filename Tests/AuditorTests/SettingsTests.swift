import Testing

@testable import Auditor
@testable import AuditorCore

@Suite("Settings: flags > AUDITD_* > config file > defaults")
struct SettingsTests {
    static let file = try! ConfigFile.parse(
        """
        brokers: file:9092
        state: /from/file
        milvus: file:19530
        settle: 3
        mode: full
        kafka-property: security.protocol=SASL_SSL
        kafka-property: sasl.mechanism=PLAIN
        """)

    @Test func defaultsWhenNothingIsGiven() throws {
        let s = try Settings.resolve()
        #expect(s == Settings())
        #expect(s.brokers == "127.0.0.1:9092" && s.stateDirectory == "auditd-state" && !s.milvusGiven)
        #expect(s.settle == .seconds(10) && s.mode == .pk && s.readConcurrency == 4 && s.logLevel == .warning)
    }

    @Test func theFileSetsWhatNothingElseDoes() throws {
        let s = try Settings.resolve(file: Self.file)
        #expect(s.brokers == "file:9092" && s.stateDirectory == "/from/file" && s.milvus == "file:19530")
        #expect(s.milvusGiven && s.settle == .seconds(3) && s.mode == .full)
        #expect(s.kafkaProperties == ["security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"])
    }

    @Test func theEnvironmentBeatsTheFile() throws {
        let s = try Settings.resolve(
            environment: ["AUDITD_BROKERS": "env:9092", "AUDITD_STATE": "/from/env", "AUDITD_SETTLE": "7"],
            file: Self.file)
        #expect(s.brokers == "env:9092" && s.stateDirectory == "/from/env" && s.settle == .seconds(7))
        #expect(s.milvus == "file:19530")  // not in the environment: the file's
    }

    @Test func flagsBeatTheEnvironmentAndTheFile() throws {
        let s = try Settings.resolve(
            flags: ["brokers": "flag:9092", "state": nil, "settle": "1"],
            environment: ["AUDITD_BROKERS": "env:9092", "AUDITD_STATE": "/from/env"], file: Self.file)
        #expect(s.brokers == "flag:9092" && s.settle == .seconds(1))
        #expect(s.stateDirectory == "/from/env")  // a flag not given (nil) does not count
    }

    @Test func kafkaPropertiesMergeFileThenEnvironmentThenFlags() throws {
        let s = try Settings.resolve(
            kafkaPropertyFlags: ["sasl.mechanism=SCRAM-SHA-512"],
            environment: ["AUDITD_KAFKA_PROPERTY": "security.protocol=SSL, client.rack=a"], file: Self.file)
        #expect(
            s.kafkaProperties == [
                "security.protocol": "SSL", "sasl.mechanism": "SCRAM-SHA-512", "client.rack": "a",
            ])
    }

    @Test func environmentNamesFollowTheKeys() {
        #expect(Settings.environmentName("topic-prefix") == "AUDITD_TOPIC_PREFIX")
        #expect(Settings.environmentName("read-concurrency") == "AUDITD_READ_CONCURRENCY")
        #expect(ConfigFile.keys == Settings.keys)
    }

    @Test(
        arguments: [
            (["brokers": "nohostport"], [:], "--brokers: 'nohostport' is not HOST:PORT[,HOST:PORT]"),
            ([:], ["AUDITD_MILVUS": "localhost"], "AUDITD_MILVUS: 'localhost' is not HOST:PORT"),
            (
                [:], ["AUDITD_LOG_LEVEL": "loud"],
                "AUDITD_LOG_LEVEL: 'loud' is not one of trace, debug, info, notice, warning, error, critical"
            ),
            (["settle": "-1"], [:], "--settle: '-1' is not a number of seconds"),
            (["mode": "fast"], [:], "--mode: 'fast' is not one of pk, full, sample"),
            (["read-concurrency": "0"], [:], "--read-concurrency: '0' is not a whole number of at least 1"),
            ([:], ["AUDITD_WINDOW_ROWS": "lots"], "AUDITD_WINDOW_ROWS: 'lots' is not a whole number of at least 1"),
            (["listen": "9187"], [:], "--listen: '9187' is not HOST:PORT"),
            (
                [:], ["AUDITD_FULL_SAMPLE": "1"],
                "AUDITD_FULL_SAMPLE: '1' is not 'all' or a number of slices (2 or more)"
            ),
            (["alertmanager": "am:9093"], [:], "--alertmanager: 'am:9093' is not an http:// or https:// URL"),
            ([:], ["AUDITD_WATCH_RESTARTS": "maybe"], "AUDITD_WATCH_RESTARTS: 'maybe' is not true or false"),
            (["kafka-retention": "a week"], [:], "--kafka-retention: 'a week' is not a number of seconds"),
            // found by `dev/fuzz config`: a value with a newline split the refusal into two lines
            ([:], ["AUDITD_LISTEN": "0.9092\n:x"], "AUDITD_LISTEN: '0.9092\\n:x' is not HOST:PORT"),
        ] as [([String: String?], [String: String], String)])
    func aBadValueIsOneLineNamingWhereItCameFrom(
        flags: [String: String?], environment: [String: String], message: String
    ) {
        #expect(throws: ApplicationError(.configuration, message)) {
            try Settings.resolve(flags: flags, environment: environment)
        }
    }

    /// Found by `dev/fuzz config`: "\r\n" is one Character in Swift, so a file with Windows line endings was one
    /// long line, refused as an unknown key that spanned lines.
    @Test func aFileWithWindowsLineEndingsParsesLineByLine() throws {
        let file = try ConfigFile.parse("brokers: k1:9092\r\nstate: /var/lib/auditd\r\n# note\r\nsettle: 3\r\n")
        #expect(file.values == ["brokers": "k1:9092", "state": "/var/lib/auditd", "settle": "3"])
        let error = #expect(throws: ApplicationError.self) { _ = try ConfigFile.parse("brokers: k:1\r\nb0.3\r\nx: 1") }
        #expect(error?.message == "config:2: expected 'key: value', got 'b0.3'")
    }

    @Test func aBadValueInTheFileNamesTheKey() throws {
        let file = try ConfigFile.parse("watch-limit: soon")
        #expect(
            throws: ApplicationError(.configuration, "config file key 'watch-limit': 'soon' is not a number of seconds")
        ) {
            try Settings.resolve(file: file)
        }
        #expect(throws: ApplicationError(.configuration, "--kafka-property: 'novalue' is not KEY=VALUE")) {
            try Settings.resolve(kafkaPropertyFlags: ["novalue"])
        }
    }

    @Test func anUnknownFileKeyIsRefusedWithItsLine() {
        #expect(throws: ApplicationError.self) { try ConfigFile.parse("brokers: a:1\nbrokerz: b:2", source: "f.yaml") }
        do {
            _ = try ConfigFile.parse("brokers: a:1\nbrokerz: b:2", source: "f.yaml")
        } catch {
            #expect("\(error)".hasPrefix("f.yaml:2: unknown key 'brokerz'"))
        }
    }

    @Test func theSidecarsSettings() throws {
        let defaults = try Settings.resolve()
        #expect(defaults.listenHost == "127.0.0.1" && defaults.listenPort == 9187 && defaults.alertmanager == nil)
        #expect(defaults.fullInterval == .seconds(21600) && defaults.fullSample == nil && defaults.watchRestarts)
        let s = try Settings.resolve(
            environment: [
                "AUDITD_LISTEN": "0.0.0.0:0", "AUDITD_FULL_SAMPLE": "8", "AUDITD_ALERTMANAGER": "http://am:9093",
                "AUDITD_KAFKA_RETENTION": "3600", "AUDITD_WATCH_RESTARTS": "false", "AUDITD_READY_LAG": "5",
            ])
        #expect(s.listenHost == "0.0.0.0" && s.listenPort == 0 && s.fullSample == 8)
        #expect(s.alertmanager == "http://am:9093" && s.kafkaRetention == .seconds(3600) && !s.watchRestarts)
        #expect(s.readyLag == .seconds(5))
    }

    @Test func thePolicyCarriesTheAuditSettings() throws {
        let s = try Settings.resolve(
            flags: [
                "settle": "2", "watch-limit": "30", "unreachable-grace": "5", "catchup-bound": "90", "mode": "sample",
                "read-concurrency": "2", "window-rows": "5000",
            ])
        let policy = s.auditPolicy
        #expect(policy.settle == .seconds(2) && policy.watchLimit == .seconds(30))
        #expect(policy.unreachableGrace == .seconds(5) && policy.catchupBound == .seconds(90))
        #expect(policy.mode == .sample && policy.readConcurrency == 2 && policy.windowRows == 5000)
        #expect(try Settings.resolve(flags: [:]).auditPolicy.windowRows == 20_000)
    }
}
