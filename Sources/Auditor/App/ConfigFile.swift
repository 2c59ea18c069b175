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
    /// What the operator should fix but auditd can run with (a secret in a file others can read).
    public var warnings: [String] = []

    public init(values: [String: String] = [:]) {
        self.values = values
    }

    /// Parses the file; the error is one line naming the file, line and key.
    public static func load(path: String) throws -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else {
            throw ApplicationError(.configuration, "--config: cannot read '\(path)'")
        }
        var file = try parse(text, source: path)
        var info = stat()
        if stat(path, &info) == 0, info.st_mode & 0o044 != 0, let secret = file.secretKey {
            file.warnings.append(
                "config file '\(path)' holds a secret (\(secret)) and is readable by others (mode "
                    + "\(String(info.st_mode & 0o777, radix: 8))): chmod 600 '\(path)'")
        }
        return file
    }

    /// The first key holding a secret: a credential-bearing kafka-property, or a URL with a password.
    var secretKey: String? {
        if let property = kafkaProperties.first(where: {
            Redaction.isSecret(property: String($0.prefix { $0 != "=" }))
        }) {
            return "kafka-property \(property.prefix { $0 != "=" })"
        }
        return values.first { Redaction.url($0.value) != $0.value }.map(\.key)
    }

    public static func parse(_ text: String, source: String = "config") throws -> ConfigFile {
        var file = ConfigFile()
        for (index, rawLine) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let line =
                rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first
                .map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
            if line.isEmpty { continue }
            guard let colon = line.firstIndex(of: ":") else {
                throw ApplicationError(
                    .configuration,
                    "\(source):\(index + 1): expected 'key: value', got '\(Redaction.oneLine(Redaction.property(line)))'"
                )
            }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            guard keys.contains(key) else {
                throw ApplicationError(
                    .configuration,
                    "\(source):\(index + 1): unknown key '\(Redaction.oneLine(key))' (known: \(keys.sorted().joined(separator: ", ")))"
                )
            }
            if key == "kafka-property" { file.kafkaProperties.append(value) } else { file.values[key] = value }
        }
        return file
    }
}
