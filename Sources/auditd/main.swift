import ArgumentParser
import Auditor
import Foundation
import Logging

/// Flags shared by every subcommand that talks to Kafka (same names as keys in --config).
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Config file: 'key: value' lines with the flags' names (brokers, topic-prefix, state, …).")
    var config: String?

    @Option(help: "Kafka bootstrap servers, HOST:PORT[,HOST:PORT]. Default: $AUDITD_BROKERS or 127.0.0.1:9092.")
    var brokers: String?

    @Option(help: "Milvus proxy gRPC HOST:PORT (default 127.0.0.1:19530).")
    var milvus: String?

    @Option(help: "State directory holding the shadow. Default: $AUDITD_STATE or ./auditd-state.")
    var state: String?

    @Option(help: "Milvus's etcd HOST:PORT (topology when the proxy cannot list replicas; default 127.0.0.1:2379).")
    var etcd: String?

    @Option(help: "Milvus's etcd root path (etcd.rootPath; default by-dev).")
    var etcdRoot: String?

    @Option(help: "Milvus DML topic prefix (pchannels are PREFIX_0 … PREFIX_N).")
    var topicPrefix: String?

    @Option(help: "Log level for auditd's own log on stderr (trace|debug|info|notice|warning|error|critical).")
    var logLevel: String?

    @Option(name: .customLong("kafka-property"), help: "Extra librdkafka property KEY=VALUE (repeatable).")
    var kafkaProperties: [String] = []

    /// Resolves every setting (flags > AUDITD_* > config file) and returns them with the config file they
    /// were read from; `extra`: the subcommand's own flags by key.
    func settings(_ extra: [String: String?] = [:]) throws -> (Settings, ConfigFile) {
        do {
            let file = try config.map { try ConfigFile.load(path: $0) } ?? ConfigFile()
            let flags: [String: String?] = [
                "brokers": brokers, "milvus": milvus, "state": state, "etcd": etcd, "etcd-root": etcdRoot,
                "topic-prefix": topicPrefix, "log-level": logLevel,
            ]
            let settings = try Settings.resolve(
                flags: flags.merging(extra) { $1 }, kafkaPropertyFlags: kafkaProperties,
                environment: ProcessInfo.processInfo.environment, file: file)
            return (settings, file)
        } catch let error as ApplicationError {
            throw ValidationError(error.message)
        }
    }

    func validate() throws { _ = try settings() }

    /// The application for these settings, logging to stderr (after the config file's warnings, if any).
    func application(_ extra: [String: String?] = [:]) throws -> (Application, Settings) {
        let (settings, file) = try settings(extra)
        for warning in file.warnings {
            FileHandle.standardError.write(Data("auditd: warning: \(warning)\n".utf8))
        }
        let logger = Logger(label: "auditd") { StreamLogHandler.standardError(label: $0) }
        return (buildApplication(AuditorConfiguration(settings: settings, logger: logger)), settings)
    }
}

@main
struct Auditd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auditd",
        abstract: "Kafka-aware consistency auditor for Milvus.",
        version: AuditorVersion.banner,
        subcommands: [
            Serve.self, Tail.self, Run.self, Report.self, Verify.self, Bootstrap.self, Audit.self, Rebuild.self,
        ]
    )

    /// Like ArgumentParser's main, but a usage error is one line naming the flag (no usage dump).
    static func main() async {
        ProcessMemory.limitArenas(2)
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let exit as ExitCode {
            Foundation.exit(exit.rawValue)  // the command already said why
        } catch {
            let code = exitCode(for: error)
            if code == .success || code == .validationFailure && message(for: error).isEmpty {
                exit(withError: error)  // --help, --version
            }
            let text = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
            if !text.isEmpty { FileHandle.standardError.write(Data("auditd: \(text)\n".utf8)) }
            Foundation.exit(code.rawValue)
        }
    }
}

struct Tail: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print Milvus's DML log decoded: one line per message, or JSON per row with --json.")

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "Start at the beginning of every pchannel (default: only new messages).")
    var fromBeginning = false

    @Flag(help: "Stop once every pchannel reaches the high watermark it had at start (implies --from-beginning).")
    var untilEnd = false

    @Option(help: "Only messages of this collection (name or id).")
    var collection: String?

    @Flag(help: "One JSON object per inserted/deleted row and per other message.")
    var json = false

    func run() async throws {
        let (app, _) = try connection.application()
        let out = LineWriter()
        do {
            let summary = try await app.tail(
                TailOptions(fromBeginning: fromBeginning, untilEnd: untilEnd, collection: collection, json: json)
            ) { out.write($0) }
            out.flush()
            if !json {
                let kinds = summary.messages.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                FileHandle.standardError.write(
                    Data(
                        ("tail: \(summary.pchannels) pchannels, \(kinds.joined(separator: " ")), "
                            + "rows inserted=\(summary.insertedRows) deleted=\(summary.deletedRows)\n").utf8))
            }
            if summary.kafkaErrors > 0 { throw ExitCode(3) }
        } catch let error as KafkaError {
            out.flush()
            FileHandle.standardError.write(Data("auditd tail: \(error)\n".utf8))
            throw ExitCode(error.isFatal ? 2 : 3)
        }
    }
}

/// Buffered stdout: JSON tails print hundreds of thousands of lines.
final class LineWriter {
    private var buffer: [UInt8] = []

    func write(_ line: String) {
        buffer.append(contentsOf: line.utf8)
        buffer.append(0x0A)
        if buffer.count >= 1 << 16 { flush() }
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        FileHandle.standardOutput.write(Data(buffer))
        buffer.removeAll(keepingCapacity: true)
    }
}

/// SIGTERM/SIGINT set `stop` (checked between batches and rounds); cancel the sources when done.
func stopOnSignals(_ stop: StopFlag) -> [DispatchSourceSignal] {
    [SIGTERM, SIGINT].map { signalNumber -> DispatchSourceSignal in
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
        source.setEventHandler { stop.stop() }
        source.resume()
        return source
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Follow every Milvus pchannel into the shadow (SQLite in --state), until SIGTERM/SIGINT.")

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "Consume up to the high watermarks seen at start, commit and exit.")
    var once = false

    @Option(help: "Segment-hash buckets per collection.")
    var buckets = 4096

    @Option(help: "Days to keep tombstones.")
    var tombstoneDays = 7

    func run() async throws {
        let (app, settings) = try connection.application()
        let stop = StopFlag()
        let signals = stopOnSignals(stop)
        defer { signals.forEach { $0.cancel() } }
        let interactive = isatty(STDERR_FILENO) != 0
        let options = RunOptions(
            stateDirectory: settings.stateDirectory, once: once,
            shadow: ShadowConfiguration(buckets: buckets, tombstoneRetention: .seconds(tombstoneDays * 86400)),
            milvus: settings.milvusGiven ? settings.milvus : nil)
        try await oneLineErrors("run") {
            let stats = try await app.run(options, stop: stop) { stats in
                let line =
                    "run: \(stats.records) records, \(stats.insertedRows) rows inserted, "
                    + "\(stats.deletedKeys) deletes, \(stats.commits) commits, \(stats.undecodable) undecodable"
                FileHandle.standardError.write(Data((interactive ? "\r" + line : line + "\n").utf8))
            }
            if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
            _ = stats
        }
    }
}

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the shadow: collections, pchannels (offsets, lag), findings, quarantine.")

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "JSON instead of text.")
    var json = false

    @Option(help: "Print the live rows of this collection (id) as JSON lines {pk, ts, row_hash} instead.")
    var rows: Int64?

    func run() async throws {
        let (app, settings) = try connection.application()
        try await oneLineErrors("report") {
            if let rows {
                let out = LineWriter()
                for line in try app.rowLines(stateDirectory: settings.stateDirectory, collectionID: rows) {
                    out.write(line)
                }
                out.flush()
                return
            }
            let (text, code) = try app.report(stateDirectory: settings.stateDirectory, json: json)
            print(text)
            if code != 0 { throw ExitCode(code) }
        }
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Check the shadow: bucket hashes against a recomputation; with --against, equality with another shadow.")

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Another state directory (e.g. a fresh replay) that must hold the same rows, tombstones, buckets.")
    var against: String?

    @Flag(
        help:
            "Replay the log from its beginning into a scratch shadow that stops where this one committed; both must be equal."
    )
    var replay = false

    func run() async throws {
        let (app, settings) = try connection.application()
        try await oneLineErrors("verify") {
            let problems = try await app.verify(
                stateDirectory: settings.stateDirectory, against: against, replay: replay)
            for problem in problems { print("verify: \(problem)") }
            if !problems.isEmpty { throw ExitCode(1) }
            print("verify: ok")
        }
    }
}

struct Bootstrap: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seed the shadow with a collection read from Milvus at one timestamp (when the log lost its start).")

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "Collection name or id.")
    var collection: String

    func run() async throws {
        let (app, settings) = try connection.application()
        try await oneLineErrors("bootstrap") {
            let result = try await app.bootstrap(
                collection: collection, milvus: settings.milvus, stateDirectory: settings.stateDirectory
            ) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
            print(
                "bootstrapped \(result.name) (\(result.collectionID)): \(result.rows) rows from replica "
                    + "\(result.replicaID) at ts \(result.timestamp) (\(HybridTimestamp.iso8601(result.timestamp)))")
        }
    }
}

struct Rebuild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Rebuild a damaged or distrusted shadow: move it aside (kept), replay the log, seed from Milvus what the log lost."
    )

    @OptionGroup var connection: ConnectionOptions

    func run() async throws {
        let (app, settings) = try connection.application()
        try await oneLineErrors("rebuild") {
            let result = try await app.rebuild(
                stateDirectory: settings.stateDirectory, milvus: settings.milvusGiven ? settings.milvus : nil
            ) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
            let stats = result.stats
            print(
                "rebuilt \(settings.stateDirectory): \(stats.records) records replayed, \(stats.insertedRows) rows "
                    + "inserted, \(stats.deletedKeys) deletes, \(stats.undecodable) undecodable (quarantined)")
            if let kept = result.keptAt { print("the previous shadow is kept in \(kept) (its finding history too)") }
            for seeded in result.bootstrapped {
                print(
                    "bootstrapped \(seeded.name) (\(seeded.collectionID)): \(seeded.rows) rows (the log lost its start)"
                )
            }
            for problem in result.incomplete { print("incomplete: \(problem)") }
            if !result.incomplete.isEmpty { throw ExitCode(1) }
        }
    }
}

/// Errors a user can act on (state directory, Kafka, Milvus) become one line on stderr and exit code 2.
func oneLineErrors(_ command: String, _ body: () async throws -> Void) async throws {
    func fail(_ message: String) throws -> Never {
        FileHandle.standardError.write(Data("auditd \(command): \(message)\n".utf8))
        throw ExitCode(2)
    }
    do {
        try await body()
    } catch let error as ShadowError {
        try fail(error.message)
    } catch let error where ShadowStore.storageProblem(error) != nil {
        try fail(
            "state directory: \(ShadowStore.storageProblem(error)!); the last commit is intact, start again once fixed")
    } catch let error as ApplicationError where error.kind == .configuration {
        throw ValidationError(error.message)
    } catch let error as ApplicationError {
        try fail(error.message)
    } catch let error as KafkaError {
        try fail("\(error)")
    } catch let error as TransportError {
        try fail("\(error)")
    } catch let error as MilvusError {
        try fail("\(error)")
    }
}

struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Ingest to the end of the log, read every replica at a consistent T, compare, confirm; with --once, "
            + "print the report and exit 0 (clean), 1 (confirmed findings) or 2 (could not audit).")

    @OptionGroup var connection: ConnectionOptions

    @Flag(help: "One complete round (with its confirmation re-read), then print the report and exit with its code.")
    var once = false

    @Option(help: "Seconds between rounds without --once (config key: audit-interval).")
    var interval: Int?

    @Option(help: "Seconds before the confirming re-read (config key: settle).")
    var settle: Int?

    @Option(
        help: "Seconds a replica may stay recovering before catchup_unfinished is confirmed (config: catchup-bound).")
    var catchupBound: Int?

    @Option(help: "Seconds one round follows a recovering replica until it matches (config key: watch-limit).")
    var watchLimit: Int?

    @Option(
        help: "Seconds one round keeps probing an unreachable replica (restarting node) (config: unreachable-grace).")
    var unreachableGrace: Int?

    @Option(
        help:
            "pk (pks, timestamps), full (every row's content, vectors included) or sample (pk + full for a rotating 1/16) (config: mode)."
    )
    var mode: String?

    @Option(
        help:
            "Shard reads (of all replicas of a collection) at once; pages of one shard stay in order (config: read-concurrency)."
    )
    var readConcurrency: Int?

    @Option(
        help:
            "Row versions compared at once: a collection is read and compared one pk range of this size after another (config: window-rows)."
    )
    var windowRows: Int?

    @Option(help: "Audit only this collection (name or id; repeatable). Default: every loaded collection.")
    var collection: [String] = []

    @Flag(help: "JSON report.")
    var json = false

    /// This command's flags by their config keys (they take part in the same resolution).
    var flags: [String: String?] {
        [
            "audit-interval": interval.map(String.init), "settle": settle.map(String.init),
            "catchup-bound": catchupBound.map(String.init), "watch-limit": watchLimit.map(String.init),
            "unreachable-grace": unreachableGrace.map(String.init), "mode": mode,
            "read-concurrency": readConcurrency.map(String.init), "window-rows": windowRows.map(String.init),
        ]
    }

    func validate() throws { _ = try connection.settings(flags) }

    func run() async throws {
        let (app, settings) = try connection.application(flags)
        let options = AuditOptions(
            stateDirectory: settings.stateDirectory, milvus: settings.milvus, policy: settings.auditPolicy,
            collections: collection, etcd: settings.milvusEtcd)
        var code: Int32 = 0
        try await oneLineErrors("audit") {
            if once {
                let summary = try await app.audit(options)
                FileHandle.standardError.write(Data((summary.line + "\n").utf8))
                let report = try app.shadowSummary(stateDirectory: settings.stateDirectory)
                print(app.render(report, json: json))
                code = summary.exitCode(with: report)
                return
            }
            let stop = StopFlag()
            let signals = stopOnSignals(stop)
            defer { signals.forEach { $0.cancel() } }
            try await app.auditContinuously(options, interval: settings.auditInterval, stop: stop) { round in
                switch round {
                case .success(let summary): FileHandle.standardError.write(Data((summary.line + "\n").utf8))
                case .failure(let error):
                    // a sidecar keeps auditing: this round failed (Kafka or Milvus away), the next one may not
                    FileHandle.standardError.write(Data("audit: round failed: \(error)\n".utf8))
                }
            }
        }
        if code != 0 { throw ExitCode(code) }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "The sidecar: follow the log, audit on a timer, watch QueryNode restarts, serve /metrics and /v1/report, "
            + "push confirmed findings to Alertmanager; until SIGTERM/SIGINT (then exit 0).")

    @OptionGroup var connection: ConnectionOptions

    @Option(help: "HTTP listen HOST:PORT for /metrics, /healthz, /readyz, /v1/* (default 127.0.0.1:9187).")
    var listen: String?

    @Option(help: "Seconds between audit rounds (default 60; config key audit-interval).")
    var auditInterval: Int?

    @Option(help: "Seconds between full-mode rounds (default 21600 = 6 h).")
    var fullInterval: Int?

    @Option(help: "Full-mode rounds over 'all' rows (default) or a rotating 1/N of them.")
    var fullSample: String?

    @Option(help: "Alertmanager base URL: confirmed findings are pushed to its /api/v2/alerts.")
    var alertmanager: String?

    @Option(help: "Seconds Kafka keeps the DML topics (retention headroom; default 604800 = 168 h).")
    var kafkaRetention: Int?

    @Option(help: "Seconds of auditd's own lag past which /readyz fails (default 60).")
    var readyLag: Int?

    @Option(help: "Follow QueryNode sessions in etcd for restart windows: true (default) or false.")
    var watchRestarts: String?

    @Option(help: "Seconds before the confirming re-read (config key: settle).")
    var settle: Int?

    @Option(help: "Seconds a replica may stay recovering before catchup_unfinished is confirmed.")
    var catchupBound: Int?

    @Option(help: "Seconds one round follows a recovering replica until it matches.")
    var watchLimit: Int?

    @Option(help: "Seconds one round keeps probing an unreachable replica.")
    var unreachableGrace: Int?

    @Option(help: "Shard reads at once per collection.")
    var readConcurrency: Int?

    @Option(help: "Row versions compared at once (one pk range after another).")
    var windowRows: Int?

    @Option(help: "Audit only this collection (name or id; repeatable). Default: every loaded collection.")
    var collection: [String] = []

    var flags: [String: String?] {
        [
            "listen": listen, "audit-interval": auditInterval.map(String.init),
            "full-interval": fullInterval.map(String.init), "full-sample": fullSample, "alertmanager": alertmanager,
            "kafka-retention": kafkaRetention.map(String.init), "ready-lag": readyLag.map(String.init),
            "watch-restarts": watchRestarts, "settle": settle.map(String.init),
            "catchup-bound": catchupBound.map(String.init), "watch-limit": watchLimit.map(String.init),
            "unreachable-grace": unreachableGrace.map(String.init),
            "read-concurrency": readConcurrency.map(String.init), "window-rows": windowRows.map(String.init),
        ]
    }

    func validate() throws { _ = try connection.settings(flags) }

    func run() async throws {
        let (app, _) = try connection.application(flags)
        var configuration = ServeConfiguration(application: app.configuration)
        configuration.collections = collection
        try await oneLineErrors("serve") {
            let group = try buildApplication(configuration)
            try await group.run()
        }
    }
}
