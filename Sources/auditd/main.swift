import ArgumentParser
import Auditor
import Foundation
import Logging

/// Flags shared by every subcommand that talks to Kafka.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "Kafka bootstrap servers, HOST:PORT[,HOST:PORT]. Default: $AUDITD_BROKERS or 127.0.0.1:9092.")
    var brokers: String?

    @Option(help: "Milvus DML topic prefix (pchannels are PREFIX_0 … PREFIX_N).")
    var topicPrefix = "by-dev-rootcoord-dml"

    @Option(help: "Log level for auditd's own log on stderr (trace|debug|info|notice|warning|error|critical).")
    var logLevel = "warning"

    @Option(name: .customLong("kafka-property"), help: "Extra librdkafka property KEY=VALUE (repeatable).")
    var kafkaProperties: [String] = []

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError(
                "--log-level: '\(logLevel)' is not one of trace, debug, info, notice, warning, error, critical")
        }
        for property in kafkaProperties where !property.contains("=") {
            throw ValidationError("--kafka-property: '\(property)' is not KEY=VALUE")
        }
        if let brokers, brokers.split(separator: ",").contains(where: { !$0.contains(":") }) {
            throw ValidationError("--brokers: '\(brokers)' is not HOST:PORT[,HOST:PORT]")
        }
    }

    func configuration() -> AuditorConfiguration {
        var logger = Logger(label: "auditd") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .warning
        var properties: [String: String] = [:]
        for property in kafkaProperties {
            let parts = property.split(separator: "=", maxSplits: 1)
            properties[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        let resolved = brokers ?? ProcessInfo.processInfo.environment["AUDITD_BROKERS"] ?? "127.0.0.1:9092"
        return AuditorConfiguration(
            brokers: resolved, topicPrefix: topicPrefix, kafkaProperties: properties, logger: logger)
    }
}

@main
struct Auditd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auditd",
        abstract: "Kafka-aware consistency auditor for Milvus.",
        version: AuditorVersion.banner,
        subcommands: [Tail.self]
    )

    /// Like ArgumentParser's main, but a usage error is one line naming the flag (no usage dump).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
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
        let app = buildApplication(connection.configuration())
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
