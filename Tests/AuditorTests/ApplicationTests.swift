import Foundation
import Logging
import Testing

@testable import Auditor
@testable import AuditorTesting

/// The application end to end with in-memory doubles only: a synthetic Milvus log in an in-memory Kafka log,
/// replicas answering from scripts, a fixed catalog, virtual time.
@Suite("Application (in-memory doubles)")
struct ApplicationTests {
    let synthetic = SyntheticLog(rows: 300, pchannels: 1, seed: 5)
    let clock = ManualClock(1_900_000_000_000)

    func application() -> (Application, String) {
        let log = InMemoryKafkaLog()
        synthetic.write(to: log)
        let app = buildApplication(
            AuditorConfiguration(
                brokers: "in-memory:0", logger: Logger(label: "test"), makeKafkaLog: { _, _ in log }, clock: clock))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("app-\(UUID())").path
        return (app, directory)
    }

    static let policy = AuditPolicy(
        settle: .seconds(1), readTimeout: .seconds(1), watchLimit: .milliseconds(300),
        unreachableGrace: .milliseconds(100), catchupBound: .seconds(120), probeInterval: .milliseconds(5))

    /// The rows the log leaves live, as a replica serving all of them answers.
    func served(by app: Application, in directory: String) async throws -> [ReplicaRow] {
        _ = try await app.run(RunOptions(stateDirectory: directory, once: true))
        let store = try app.openStore(directory, create: false)
        let tick = try #require(try store.checkpoints()[synthetic.topic(0)]?.tickTs)
        let live = try store.liveRows(collectionID: synthetic.collectionID)
        try #require(!live.isEmpty && live.allSatisfy { $0.ts <= tick }, "the log ends with a time tick")
        return live.map { ReplicaRow(pk: $0.pk, ts: $0.ts) }
    }

    func audit(_ app: Application, _ directory: String, _ source: FakeReplicaSource) async throws -> AuditSummary {
        let catalog = StaticCatalog([try #require(synthetic.schema())])
        return try await app.audit(
            AuditOptions(stateDirectory: directory, milvus: "unused:1", policy: Self.policy), source: source,
            catalog: catalog)
    }

    @Test func oneWriterPerStateDirectory() async throws {
        let (app, directory) = application()
        let held = try StateLock(directory: directory, command: "serve")
        let error = await #expect(throws: ShadowError.self) {
            _ = try await app.run(RunOptions(stateDirectory: directory, once: true))
        }
        #expect(error?.message.contains("in use by pid \(getpid()) (auditd serve)") == true)
        await #expect(throws: ShadowError.self) {
            _ = try await app.audit(AuditOptions(stateDirectory: directory, milvus: "unused:1", policy: Self.policy))
        }
        held.release()
        _ = try await app.run(RunOptions(stateDirectory: directory, once: true))  // free again
        var info = stat()
        #expect(stat(directory, &info) == 0 && info.st_mode & 0o777 == 0o700)
    }

    @Test func aHealthyClusterAuditsCleanAndTheReportSaysSo() async throws {
        let (app, directory) = application()
        let rows = try await served(by: app, in: directory)
        let healthy = FakeReplicaSource.Script(view: { _ in Self.view }, rows: { _ in rows })
        let summary = try await audit(
            app, directory, FakeReplicaSource([1: healthy, 2: healthy], vchannel: synthetic.shard(0)))
        #expect(summary.exitCode == 0 && summary.collections == 1 && summary.replicas == 2)
        #expect(summary.rowsChecked == 2 * rows.count && summary.notAudited.isEmpty)
        let report = try app.report(stateDirectory: directory, json: false)
        #expect(report.exitCode == 0)
        #expect(report.text.contains("synth (777): last complete sweep"))
        #expect(report.text.contains("pk mode, 2 of 2 replicas, \(2 * rows.count) rows"))
    }

    @Test func aRowMissingOnOneReplicaIsConfirmedOnThatReplicaOnly() async throws {
        let (app, directory) = application()
        let rows = try await served(by: app, in: directory)
        let lost = rows[rows.count / 2]
        let healthy = FakeReplicaSource.Script(view: { _ in Self.view }, rows: { _ in rows })
        let lossy = FakeReplicaSource.Script(view: { _ in Self.view }, rows: { _ in rows.filter { $0 != lost } })
        let summary = try await audit(
            app, directory, FakeReplicaSource([1: healthy, 2: lossy], vchannel: synthetic.shard(0)))
        let missing = try #require(summary.confirmed.first { $0.kind == .missing })
        #expect(missing.replicaID == 2 && missing.pks == [lost.pk] && missing.nodeIDs == [20])
        #expect(!summary.confirmed.contains { $0.replicaID == 1 })  // the healthy replica is never named
        #expect(summary.exitCode == 1)
        let (json, code) = try app.report(stateDirectory: directory, json: true)
        #expect(code == 1 && json.contains("\"kind\":\"missing\",\"state\":\"confirmed\""))
    }

    @Test func aCollectionThatIsNotLoadedIsNotAudited() async throws {
        let (app, directory) = application()
        _ = try await served(by: app, in: directory)
        let notLoaded = MilvusError(
            .status(MilvusStatus(errorCode: 15, code: 400, reason: "replica not found")), method: "GetReplicas",
            target: "proxy")
        let summary = try await audit(
            app, directory, FakeReplicaSource([:], vchannel: synthetic.shard(0), listError: notLoaded))
        #expect(summary.collections == 0 && summary.exitCode == 0 && summary.notAudited.isEmpty)
    }

    @Test func continuousAuditingStopsWhenAsked() async throws {
        let (app, directory) = application()
        let rows = try await served(by: app, in: directory)
        let healthy = FakeReplicaSource.Script(view: { _ in Self.view }, rows: { _ in rows })
        let source = FakeReplicaSource([1: healthy, 2: healthy], vchannel: synthetic.shard(0))
        let catalog = StaticCatalog([try #require(synthetic.schema())])
        let stop = StopFlag()
        var rounds: [Int32] = []
        let started = clock.nowMs()
        try await app.auditContinuously(
            AuditOptions(stateDirectory: directory, milvus: "unused:1", policy: Self.policy), interval: .seconds(60),
            stop: stop, source: source, catalog: catalog
        ) { round in
            rounds.append((try? round.get())?.exitCode ?? -1)
            if rounds.count == 3 { stop.stop() }
        }
        #expect(rounds == [0, 0, 0])
        // two full intervals between the three rounds, and the stop cut the third pause short
        #expect(clock.nowMs() - started >= 120_000 && clock.nowMs() - started < 180_000)
    }

    static let view = LeaderView(
        nodeID: 10, vchannel: "", targetVersion: 3, sealedSegments: [1], growingSegments: [])
}
