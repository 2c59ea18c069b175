import Foundation
import Logging
import Testing

@testable import Auditor
@testable import AuditorShadow

/// `bootstrap` reads every row (all fields) from one replica at T; the shadow then follows the log.
/// It must end up identical — rows, insert timestamps and row hashes — to a shadow built from the log.
@Suite(
    "Real cluster: bootstrap from Milvus",
    .enabled(
        if: ProcessInfo.processInfo.environment["AUDITD_BROKERS"] != nil, "needs dev/cluster up + dev/cluster exec"),
    .serialized)
struct BootstrapIntegrationTests {
    @Test func bootstrappedShadowEqualsTheLogsShadow() async throws {
        let prefix = "it_boot_\(UInt32.random(in: 0...UInt32.max))"
        let expected = try TailIntegrationTests.runWorkload(prefix: prefix, rows: 600, deletes: 60)
        try await Task.sleep(for: .seconds(1))
        var logger = Logger(label: "it")
        logger.logLevel = .warning
        let brokers = ProcessInfo.processInfo.environment["AUDITD_BROKERS"] ?? "127.0.0.1:9092"
        let app = buildApplication(AuditorConfiguration(brokers: brokers, logger: logger))
        let tmp = FileManager.default.temporaryDirectory
        let seeded = tmp.appendingPathComponent("it-boot-a-\(UUID().uuidString)").path
        let fromLog = tmp.appendingPathComponent("it-boot-b-\(UUID().uuidString)").path
        for collection in expected.collections {
            let result = try await app.bootstrap(
                collection: collection.name, milvus: "127.0.0.1:19530", stateDirectory: seeded)
            #expect(result.rows == collection.rows.count - collection.deleted.count)
        }
        // more changes after the snapshot, then both shadows follow the log
        _ = try TailIntegrationTests.runWorkload(prefix: prefix + "_later", rows: 40, deletes: 10)
        try await Task.sleep(for: .seconds(1))
        _ = try await app.run(RunOptions(stateDirectory: seeded, once: true))
        _ = try await app.run(RunOptions(stateDirectory: fromLog, once: true))
        let a = try ShadowStore.open(directory: seeded, create: false)
        let b = try ShadowStore.open(directory: fromLog, create: false)
        for collection in expected.collections {
            let seededRows = Set(try a.liveRows(collectionID: collection.id))
            let logRows = Set(try b.liveRows(collectionID: collection.id))
            #expect(seededRows.count == collection.rows.count - collection.deleted.count)
            let differing = seededRows.symmetricDifference(logRows).count
            #expect(differing == 0, "\(collection.name): \(differing) row versions differ")
            #expect(try a.buckets(collectionID: collection.id) == b.buckets(collectionID: collection.id))
            let history = try a.summary().collections.first { $0.id == collection.id }?.history
            #expect(history == "bootstrapped")
        }
        #expect(try a.verify().isEmpty)
    }
}
