import AuditorAudit
import AuditorCore
import AuditorKafka
import AuditorMilvus
import AuditorReport
import AuditorShadow
import Foundation
import Logging

extension Application {
    /// `auditd verify --replay`: replays the log from its beginning into a new, temporary shadow that stops
    /// on every pchannel exactly at the time tick the given shadow last committed, and returns how the two
    /// differ (empty: the shadow is what a fresh replay to the same positions builds).
    public func replayDifferences(stateDirectory: String) async throws -> [String] {
        let store = try openStore(stateDirectory, create: false)
        let checkpoints = try await store.perform { try $0.checkpoints() }
        if let replaced = checkpoints.values.first(where: { $0.epoch > 0 }) {
            throw ApplicationError(
                .replay, "cannot replay: the log of \(replaced.pchannel) was replaced since (epoch \(replaced.epoch))")
        }
        let collections = try await store.perform { try $0.summary().collections }
        if let seeded = collections.first(where: { $0.history == "bootstrapped" }) {
            throw ApplicationError(.replay, "cannot replay: collection \(seeded.name) was bootstrapped from Milvus")
        }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            "auditd-replay-\(UUID().uuidString)"
        ).path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let fresh = try openStore(scratch, create: true)
        let ingester = ShadowIngester(
            log: try makeKafkaLog(), store: fresh, topicPrefix: configuration.topicPrefix,
            logger: configuration.logger, stopAfterTick: checkpoints.mapValues(\.tickOffset), clock: clock)
        try await ingester.start()
        var idle = 0
        while !ingester.caughtUp {
            // a log that ends before the committed tick cannot reproduce it: give up after 30 s of silence
            idle = try await ingester.step() == 0 ? idle + 1 : 0
            if idle > 150 {
                throw ApplicationError(.replay, "cannot replay: the log ends before the shadow's positions")
            }
        }
        return try await store.perform { try $0.differences(from: fresh) }
    }
}

extension Application {
    /// `auditd verify`: the shadow's bucket hashes against a recomputation; with `against`, equality with
    /// another shadow; with `replay`, equality with a fresh replay of the log. Empty: no problem found.
    public func verify(stateDirectory: String, against: String? = nil, replay: Bool = false) async throws -> [String] {
        let store = try openStore(stateDirectory, create: false)
        var problems = try store.verify()
        if let against { problems += try store.differences(from: openStore(against, create: false)) }
        if replay { problems += try await replayDifferences(stateDirectory: stateDirectory) }
        return problems
    }
}
