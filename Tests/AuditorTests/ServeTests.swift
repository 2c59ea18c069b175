import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Testing

@testable import Auditor
@testable import AuditorAlerting
@testable import AuditorAudit
@testable import AuditorCore
@testable import AuditorMilvus
@testable import AuditorShadow
@testable import AuditorTesting
@testable import AuditorTransport

@Suite("Lag states (Burrow)")
struct LagWindowTests {
    static func sample(_ at: Int64, position: Int64, head: Int64, data: Int64? = nil, ts: UInt64 = 0) -> LagSample {
        LagSample(
            atMs: at * 1000, position: position, head: head, reachedTs: ts == 0 ? UInt64(position) : ts,
            dataBehind: data)
    }

    @Test func caughtUpOnceInTheWindowIsOK() {
        var window = LagWindow(capacity: 4)
        for (i, lag) in [5, 0, 7, 9].enumerated() {
            window.add(Self.sample(Int64(i * 10), position: Int64(100 + i * 10), head: Int64(100 + i * 10 + lag)))
        }
        #expect(window.evaluate(nowMs: 30_000).status == .ok)
    }

    @Test func aBacklogOfTimeTicksOnlyIsNoBacklog() {
        // Milvus writes a time tick every 200 ms: a consumer that stopped on an idle pchannel is behind by
        // ticks only — OK, not STALL (Burrow's idle-topic fix)
        var window = LagWindow(capacity: 3)
        for i in 0..<3 { window.add(Self.sample(Int64(i * 10), position: 100, head: Int64(150 + i * 50), data: 0)) }
        #expect(window.evaluate(nowMs: 20_000).status == .ok)
    }

    @Test func notMovingWithDataBehindIsStallThenStop() {
        var window = LagWindow(capacity: 3)
        window.add(Self.sample(0, position: 90, head: 100, data: 10))
        window.add(Self.sample(10, position: 100, head: 120, data: 20))
        window.add(Self.sample(20, position: 100, head: 130, data: 30))
        #expect(window.evaluate(nowMs: 20_000).status != .stall)  // moved within the window
        window.add(Self.sample(30, position: 100, head: 140, data: 40))
        #expect(window.evaluate(nowMs: 30_000).status == .stop)  // silent 20 s > its progress span (10 s)
        var stalled = LagWindow(capacity: 3, minimumSilence: .seconds(600))
        for i in 0..<4 { stalled.add(Self.sample(Int64(i * 10), position: 100, head: Int64(110 + i), data: 5)) }
        #expect(stalled.evaluate(nowMs: 30_000).status == .stall)
    }

    @Test func movingButFallingBehindIsWarnAndGoingBackIsRewind() {
        var window = LagWindow(capacity: 3)
        window.add(Self.sample(0, position: 100, head: 110))
        window.add(Self.sample(10, position: 105, head: 125))
        window.add(Self.sample(20, position: 110, head: 140))
        #expect(window.evaluate(nowMs: 20_000).status == .warn)
        window.add(Self.sample(30, position: 50, head: 140))
        #expect(window.evaluate(nowMs: 30_000).status == .rewind)
    }

    @Test func spacedWindowsKeepTheNewestSampleAndSpacedOnes() {
        var window = LagWindow(capacity: 3, spacing: .seconds(60))
        for i in 0..<10 { window.add(Self.sample(Int64(i * 10), position: Int64(100 + i), head: 200)) }
        #expect(window.samples.map(\.atMs) == [0, 60_000, 90_000])
    }
}

@Suite("Restart windows")
struct RestartTrackerTests {
    let key = RestartTracker.Key(collectionID: 9, replicaID: 2)

    @Test func downServingAgainCaughtUp() throws {
        var tracker = RestartTracker(catchupBound: .seconds(120))
        tracker.membership([key: [20], RestartTracker.Key(collectionID: 9, replicaID: 1): [10]])
        let opened = tracker.nodeDown(20, atMs: 1000)
        #expect(opened.map(\.replicaID) == [2] && opened.first?.oldNodes == [20])  // only the replica it served
        tracker.nodeUp(21, atMs: 3000)
        let unanswered = tracker.observe(key, nodes: [], answered: false, short: 0, caughtUp: false, atMs: 3500).first
        #expect(unanswered == nil)
        let servingRecord = tracker.observe(key, nodes: [21], answered: true, short: 40, caughtUp: false, atMs: 4000)
            .first
        let serving = try #require(servingRecord)
        #expect(serving.servingMs == 4000 && serving.newNodes == [21] && serving.rowsShortMax == 40 && serving.isOpen)
        _ = tracker.observe(key, nodes: [21], answered: true, short: 60, caughtUp: false, atMs: 5000)
        let doneRecord = tracker.observe(key, nodes: [21], answered: true, short: 0, caughtUp: true, atMs: 7500).first
        let done = try #require(doneRecord)
        #expect(done.state == .caughtUp && done.rowsShortMax == 60 && done.servingBehindSeconds(nowMs: 0) == 3.5)
        #expect(!tracker.needsProbing)
    }

    @Test func aRestartFasterThanTheSessionExpiryIsSeenFromTheNewNode() throws {
        var tracker = RestartTracker()
        tracker.membership([key: [20]])
        tracker.nodeUp(21, atMs: 2000)
        #expect(tracker.needsProbing)
        let recordRecord = tracker.observe(key, nodes: [21], answered: true, short: 5, caughtUp: false, atMs: 2300)
            .first
        let record = try #require(recordRecord)
        #expect(record.downMs == 2000 && record.oldNodes == [20] && record.newNodes == [21])
        // the old session expires later: same window
        let reopened = tracker.nodeDown(20, atMs: 9000)
        #expect(reopened.isEmpty)
    }

    @Test func aFastRestartOpensAWindowForEveryReplicaTheOldNodeServed() throws {
        // querynode1 (node 20) serves a replica of two collections and restarts as node 21 before its old
        // session expires: the first replica probed places the new node; the other collection's replica must
        // get its window too (it lost the same node), not wait for a session expiry that may never be seen.
        var tracker = RestartTracker()
        let other = RestartTracker.Key(collectionID: 10, replicaID: 5)
        let untouched = RestartTracker.Key(collectionID: 10, replicaID: 6)
        tracker.membership([key: [20], other: [20], untouched: [30]])
        tracker.nodeUp(21, atMs: 2000)
        let changed = tracker.observe(key, nodes: [21], answered: true, short: 5, caughtUp: false, atMs: 2300)
        #expect(changed.map(\.replicaID) == [2, 5])
        #expect(changed.allSatisfy { $0.downMs == 2000 && $0.oldNodes == [20] && $0.isOpen })
        #expect(tracker.open[untouched] == nil)
        // the other replica, probed next: its new node answers, caught up; its window closes
        let done = tracker.observe(other, nodes: [21], answered: true, short: 0, caughtUp: true, atMs: 2600)
        #expect(done.map(\.replicaID) == [5] && done.first?.state == .caughtUp && done.first?.newNodes == [21])
        #expect(tracker.nodeDown(20, atMs: 9000).isEmpty)  // the old session's expiry: the same windows
    }

    @Test func notCaughtUpWithinTheBoundIsUnfinishedButStillFollowed() throws {
        var tracker = RestartTracker(catchupBound: .seconds(10))
        tracker.membership([key: [20]])
        _ = tracker.nodeDown(20, atMs: 0)
        let lateRecord = tracker.observe(key, nodes: [21], answered: true, short: 3, caughtUp: false, atMs: 11_000)
            .first
        let late = try #require(lateRecord)
        #expect(late.state == .unfinished && late.isOpen)
        let doneRecord = tracker.observe(key, nodes: [21], answered: true, short: 0, caughtUp: true, atMs: 20_000).first
        let done = try #require(doneRecord)
        #expect(done.state == .caughtUp)
    }
}

@Suite("Alertmanager push")
struct AlertmanagerTests {
    @Test func confirmedFindingsFireAndEndWhenResolved() async throws {
        let sent = Mutex<[String]>([])
        let pusher = AlertmanagerPusher(url: "http://am:9093/", stateDirectory: "/var/lib/auditd") { url, body in
            sent.withLock { $0.append(url + " " + String(decoding: body, as: UTF8.self)) }
            return 200
        }
        var finding = ShadowSummary.Finding(
            kind: .replica(.resurrected), state: .confirmed, pchannel: nil, collectionID: 7, fromOffset: nil,
            toOffset: nil, detail: "25 pks deleted in the log before T are served", firstSeenMs: 1000)
        finding.replicaID = 2
        finding.nodeIDs = "5"
        finding.pkCount = 25
        var summary = ShadowSummary(collections: [], pchannels: [], findings: [finding], quarantined: 0)
        summary.collections = [
            ShadowSummary.Collection(
                id: 7, name: "reid", state: "live", liveRows: 1, duplicatePKs: 0, tombstones: 0, history: "complete")
        ]
        let firing = try await pusher.push(summary, previous: [:], nowMs: 5000)
        #expect(firing.count == 1)
        let first = try #require(sent.withLock { $0.first })
        #expect(first.hasPrefix("http://am:9093/api/v2/alerts ["))
        #expect(
            first.contains("\"collection\":\"reid\"") && first.contains("\"replica\":\"2\"")
                && first.contains("\"node\":\"5\""))
        #expect(first.contains("auditd report --state /var/lib/auditd") && first.contains("\"severity\":\"critical\""))
        summary.findings = []
        _ = try await pusher.push(summary, previous: firing, nowMs: 9000)
        let second = try #require(sent.withLock { $0.last })
        #expect(second.contains("\"endsAt\":\"\(HybridTimestamp.iso8601(milliseconds: 9000))\""))
    }
}

final class PortBox: Sendable {
    private let port = Mutex(0)
    var value: Int { port.withLock { $0 } }
    func set(_ value: Int) { port.withLock { $0 = value } }
}

/// A session feed the test drives: events are handed to the watcher as they are sent.
final class ScriptedSessions: SessionFeed {
    let pending = Mutex<[SessionEvent]>([])
    func queryNodeSessions() async throws -> (nodes: [Int64: String], revision: Int64) { ([10: "a", 20: "b"], 1) }
    func watchQueryNodes(fromRevision revision: Int64, onEvent: @escaping @Sendable (SessionEvent) -> Void) async throws
    {
        while !Task.isCancelled {
            let events = pending.withLock { p in
                defer { p.removeAll() }
                return p
            }
            for event in events { onEvent(event) }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
    func send(_ event: SessionEvent) { pending.withLock { $0.append(event) } }
}

@Suite("auditd serve (in-memory doubles, real HTTP)", .serialized)
struct ServeTests {
    let synthetic = SyntheticLog(rows: 200, pchannels: 1, seed: 11)

    func configuration(_ directory: String, source: FakeReplicaSource, sessions: ScriptedSessions, port: PortBox)
        throws -> ServeConfiguration
    {
        let log = InMemoryKafkaLog()
        synthetic.write(to: log)
        var settings = Settings()
        settings.stateDirectory = directory
        settings.listenPort = 0
        settings.auditInterval = .seconds(1)
        settings.settle = .milliseconds(200)
        settings.unreachableGrace = .milliseconds(100)
        settings.watchLimit = .milliseconds(300)
        var application = AuditorConfiguration(
            brokers: "in-memory:0", logger: Logger(label: "serve-test"), makeKafkaLog: { _, _ in log })
        application.settings = settings
        var configuration = ServeConfiguration(application: application)
        configuration.source = source
        configuration.catalog = StaticCatalog([try #require(synthetic.schema())])
        configuration.sessions = sessions
        configuration.milvusCheckpoints = { [:] }
        configuration.lagInterval = .milliseconds(200)
        configuration.restartProbeInterval = .milliseconds(50)
        configuration.onListening = { p in port.set(p) }
        return configuration
    }

    /// The rows the synthetic log leaves live, as a healthy replica serves them.
    func liveRows() async throws -> [ReplicaRow] {
        let log = InMemoryKafkaLog()
        synthetic.write(to: log)
        let app = buildApplication(
            AuditorConfiguration(brokers: "in-memory:0", logger: Logger(label: "t"), makeKafkaLog: { _, _ in log }))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rows-\(UUID())").path
        _ = try await app.run(RunOptions(stateDirectory: directory, once: true))
        return try app.openStore(directory, create: false).liveRows(collectionID: synthetic.collectionID).map {
            ReplicaRow(pk: $0.pk, ts: $0.ts)
        }
    }

    func get(_ port: Int, _ path: String) async throws -> (Int, String) {
        let (status, body) = try await HTTPClient().get("http://127.0.0.1:\(port)\(path)")
        return (status, String(decoding: body, as: UTF8.self))
    }

    func eventually(_ what: String, timeout: Duration = .seconds(20), _ check: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await check()) == true { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("timed out waiting for \(what)")
    }

    @Test func servesReportsMetricsRestartsAndStopsGracefully() async throws {
        let rows = try await liveRows()
        let view = LeaderView(nodeID: 10, vchannel: "", targetVersion: 3, sealedSegments: [1], growingSegments: [])
        let lost = rows[rows.count / 3]
        // replica 2 loses a row; after its node restarts it answers short for a while, then every row
        let restarted = Mutex(false)
        let answersSinceRestart = Mutex(0)
        let healthy = FakeReplicaSource.Script(view: { _ in view }, rows: { _ in rows })
        let lossy = FakeReplicaSource.Script(
            view: { _ in view },
            rows: { n in
                // after the restart it reloads: short at first, then every row (the reload brought the lost one back)
                guard restarted.withLock({ $0 }) else { return rows.filter { $0 != lost } }
                let since = answersSinceRestart.withLock { count -> Int in
                    count += 1
                    return count
                }
                return since <= 3 ? Array(rows.dropLast(5)) : rows
            }, node: { restarted.withLock { $0 } ? 21 : 20 })
        let source = FakeReplicaSource([1: healthy, 2: lossy], vchannel: synthetic.shard(0))
        let sessions = ScriptedSessions()
        let port = PortBox()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(UUID())").path
        let group = try buildApplication(try configuration(directory, source: source, sessions: sessions, port: port))
        // one writer per state directory: a second serve (or run) fails at once, naming this one
        #expect(throws: ShadowError.self) {
            _ = try buildApplication(try configuration(directory, source: source, sessions: sessions, port: PortBox()))
        }
        let running = Task { try await group.run() }
        try await eventually("listening") { port.value > 0 }
        let p = port.value
        #expect(try await get(p, "/healthz").0 == 200)
        try await eventually("a confirmed finding") {
            try await get(p, "/v1/findings?state=confirmed").1.contains("\"kind\":\"missing\"")
        }
        let (status, report) = try await get(p, "/v1/report")
        #expect(status == 200 && report.hasPrefix("{\"collections\":["))
        // the finding names replica 2 only: no divergence naming the healthy replica 1
        #expect(!report.contains("\"replica\":1,"))
        let metrics = try await get(p, "/metrics").1
        #expect(
            metrics.contains(
                "auditd_findings_open{collection=\"\("synth")\",kind=\"missing\",state=\"confirmed\",replica=\"2\",peer_replica=\"\"} 1"
            ))
        #expect(metrics.contains("# TYPE auditd_audit_round_duration_seconds histogram"))
        #expect(metrics.contains("auditd_replica_healthy{collection=\"\("synth")\",replica=\"1\"} 1"))
        #expect(try await get(p, "/v1/findings?state=bogus").0 == 400)
        #expect(try await get(p, "/nowhere").0 == 404)
        // read-only: no other method is answered on any path
        for path in ["/v1/report", "/v1/findings?state=open", "/v1/restarts", "/metrics", "/healthz", "/readyz"] {
            let (code, _) = try await HTTPClient().post("http://127.0.0.1:\(p)\(path)", json: Array("{}".utf8))
            #expect(code == 404 || code == 405, "POST \(path) answered \(code)")
        }
        #expect(try await get(p, "/healthz").0 == 200)  // still serving after bad requests
        // replica 2's node restarts: a window opens at once and closes when it answers every row again
        sessions.send(.down(nodeID: 20))
        try await Task.sleep(for: .milliseconds(300))  // the new node registers after the old session is gone
        restarted.withLock { $0 = true }
        sessions.send(.up(nodeID: 21, address: "10.0.0.2:21123"))
        try await eventually("a restart window") { try await get(p, "/v1/restarts").1.contains("\"replica\":2") }
        try await eventually("the window closed") {
            try await get(p, "/v1/restarts").1.contains("\"state\":\"caught_up\"")
        }
        let restarts = try await get(p, "/v1/restarts").1
        #expect(restarts.contains("\"old_nodes\":[20],\"new_nodes\":[21]") && restarts.contains("\"rows_short_max\":5"))
        let afterRestart = try await get(p, "/metrics").1
        #expect(
            afterRestart.contains("auditd_restarts_total{collection=\"synth\",replica=\"2\"} 1"),
            "\(afterRestart.split(separator: "\n").filter { $0.contains("restart") })")
        // SIGTERM's path: graceful shutdown, done within 5 s, the lock released
        let stopping = ContinuousClock.now
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(ContinuousClock.now - stopping < .seconds(5))
        _ = try StateLock(directory: directory, command: "test")
    }
}
