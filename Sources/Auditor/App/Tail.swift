import AuditorAudit
import AuditorCore
import AuditorKafka
import AuditorMilvus
import AuditorReport
import AuditorShadow
import Logging

public struct TailOptions: Sendable {
    public var fromBeginning = false
    public var untilEnd = false
    public var collection: String?
    public var json = false
    public init(fromBeginning: Bool = false, untilEnd: Bool = false, collection: String? = nil, json: Bool = false) {
        self.fromBeginning = fromBeginning
        self.untilEnd = untilEnd
        self.collection = collection
        self.json = json
    }
}

public struct TailSummary: Sendable, Equatable {
    public var messages: [String: Int] = [:]
    public var insertedRows = 0
    public var deletedRows = 0
    public var undecodable = 0
    public var pchannels = 0
    public var kafkaErrors = 0
}

extension Application {
    /// `auditd tail`: decoded messages as lines, handed to `write` (stdout in the CLI).
    public func tail(_ options: TailOptions, write: (String) -> Void) async throws -> TailSummary {
        let reader = try walReader(fromBeginning: options.fromBeginning || options.untilEnd, untilEnd: options.untilEnd)
        try await reader.start()
        let formatter = TailFormatter(format: options.json ? .json : .text, collection: options.collection)
        var summary = TailSummary()
        summary.pchannels = reader.topics.count
        while !Task.isCancelled, let batch = try await reader.next() {
            for message in batch {
                summary.messages[message.body.kindName, default: 0] += 1
                switch message.body {
                case .insert(let insert) where formatter.matches(message.body):
                    summary.insertedRows += insert.rows.count
                case .delete(let delete) where formatter.matches(message.body): summary.deletedRows += delete.keys.count
                case .undecodable: summary.undecodable += 1
                default: break
                }
                for line in formatter.lines(for: message) { write(line) }
            }
        }
        summary.kafkaErrors = reader.errors.count
        return summary
    }
}
