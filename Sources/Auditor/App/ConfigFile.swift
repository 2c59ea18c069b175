import AuditorAudit
import AuditorCore
import AuditorKafka
import AuditorMilvus
import AuditorReport
import AuditorShadow
import Foundation

/// `--config FILE`: flat `key: value` lines (YAML subset; `#` comments), keys named like the flags.
public struct ConfigFile: Sendable, Equatable {
    /// The keys a file may set: the same as the flags and the environment (`Settings.keys`).
    public static var keys: Set<String> { Settings.keys }
    public var values: [String: String] = [:]
    public var kafkaProperties: [String] = []

    public init(values: [String: String] = [:]) {
        self.values = values
    }

    /// Parses the file; the error is one line naming the file, line and key.
    public static func load(path: String) throws -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw ApplicationError(.configuration, "--config: cannot read '\(path)'")
        }
        return try parse(text, source: path)
    }

    public static func parse(_ text: String, source: String = "config") throws -> ConfigFile {
        var file = ConfigFile()
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line =
                rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first
                .map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
            if line.isEmpty { continue }
            guard let colon = line.firstIndex(of: ":") else {
                throw ApplicationError(.configuration, "\(source):\(index + 1): expected 'key: value', got '\(line)'")
            }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            guard keys.contains(key) else {
                throw ApplicationError(
                    .configuration,
                    "\(source):\(index + 1): unknown key '\(key)' (known: \(keys.sorted().joined(separator: ", ")))"
                )
            }
            if key == "kafka-property" { file.kafkaProperties.append(value) } else { file.values[key] = value }
        }
        return file
    }
}
