import Auditor
import AuditorTesting
import Foundation
import Logging
import Synchronization
import Testing

@testable import AuditorAudit
@testable import AuditorShadow

@Suite("Audit round (fake replicas)")
struct AuditRoundTests {
    static let t: UInt64 = 1_000
    static let shadow = (1...10).map { ShadowStore.LiveRow(pk: .int($0), ts: 500, rowHash: 0) }
    static let all = shadow.map { ReplicaRow(pk: $0.pk, ts: $0.ts) }
    static func view(target: Int64 = 3, sealed: Set<Int64> = [1]) -> LeaderView {
        LeaderView(
            nodeID: 1, vchannel: "by-dev-rootcoord-dml_0_9v0", targetVersion: target, sealedSegments: sealed,
            growingSegments: [])
    }
    static let healthy = FakeReplicaSource.Script(view: { _ in view() }, rows: { _ in all })

    func round(_ source: FakeReplicaSource, nowMs: Int64 = 1_000_000, policy: AuditPolicy? = nil) -> AuditRound {
        AuditRound(
            source: source,
            policy: policy
                ?? AuditPolicy(
                    settle: .zero, readTimeout: .seconds(1), watchLimit: .milliseconds(300),
                    unreachableGrace: .milliseconds(100), catchupBound: .seconds(120), probeInterval: .milliseconds(5)),
            logger: Logger(label: "test"), clock: ManualClock(nowMs))
    }

    func expected(firstSeen: [String: Int64] = [:], tombstones: [DeletedKey] = []) -> ExpectedCollection {
        ExpectedCollection(
            collectionID: 9, name: "c", pkFieldID: 100, pkIsInt: true, vchannels: ["by-dev-rootcoord-dml_0_9v0"],
            timestamp: Self.t, rows: Self.shadow, tombstones: tombstones, firstSeen: firstSeen)
    }

    func states(_ result: CollectionAuditResult) -> [String] {
        result.records.map { "\($0.finding.kind.rawValue)/\($0.finding.replicaID)/\($0.state.rawValue)" }.sorted()
    }

    @Test func healthyReplicasGiveNoFindingAndFullCoverage() async throws {
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: Self.healthy])).audit(expected())
        #expect(result.records.isEmpty)
        #expect(result.unjudged.isEmpty)
        #expect(result.coverage?.replicas == 2 && result.coverage?.rows == 20)
    }

    @Test func pureLagNeverConfirmsAnything() async throws {
        // replica 2 has not reached T: its reads time out (the delegator waits for tsafe), nothing is lost
        let lagging = FakeReplicaSource.Script(
            view: { _ in Self.view() },
            rows: { _ in
                throw TransportError(.deadlineExceeded, method: "Query", target: "x", message: "deadline exceeded")
            })
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: lagging])).audit(expected())
        #expect(states(result) == ["replica_unavailable/2/suspected"])
        #expect(!result.records.contains { $0.state == .confirmed })
        #expect(result.unjudged.first?.contains("lagging") == true)
    }

    @Test func aQueryNodeThatTimesOutItselfIsLaggingToo() async throws {
        // the QueryNode's own context expires first: it answers a status, not a gRPC DEADLINE_EXCEEDED
        let lagging = FakeReplicaSource.Script(
            view: { _ in Self.view() },
            rows: { _ in
                throw MilvusError(
                    .status(MilvusStatus(errorCode: 1, code: 10001, reason: "context deadline exceeded")),
                    method: "QueryNode/Query", target: "10.77.12.2:21133")
            })
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: lagging])).audit(expected())
        #expect(states(result) == ["replica_unavailable/2/suspected"])
        #expect(result.unjudged.first?.contains("lagging") == true)
    }

    @Test func lossOnAServingReplicaIsConfirmedWithItsPksAndLeader() async throws {
        let lossy = FakeReplicaSource.Script(view: { _ in Self.view() }, rows: { _ in Array(Self.all.dropFirst(3)) })
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: lossy])).audit(expected())
        #expect(states(result) == ["missing/2/confirmed"])  // the log says which replica lost rows: no divergence
        let missing = try #require(result.records.first { $0.finding.kind == .missing }?.finding)
        #expect(missing.pks == [.int(1), .int(2), .int(3)])
        #expect(missing.leaders == ["by-dev-rootcoord-dml_0_9v0": "20@10.0.0.2:21123"])
    }

    @Test func aDifferenceGoneAtTheSecondReadStaysSuspected() async throws {
        let flaky = FakeReplicaSource.Script(
            view: { _ in Self.view() }, rows: { n in n == 0 ? Array(Self.all.dropFirst()) : Self.all })
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: flaky])).audit(expected())
        #expect(!result.records.isEmpty)
        #expect(result.records.allSatisfy { $0.state == .suspected })
    }

    @Test func resurrectedRowsOnOneReplicaOnly() async throws {
        let deleted = [DeletedKey(pk: .int(11), ts: 600), DeletedKey(pk: .int(12), ts: 600)]
        let back = FakeReplicaSource.Script(
            view: { _ in Self.view() },
            rows: { _ in Self.all + [ReplicaRow(pk: .int(11), ts: 400), ReplicaRow(pk: .int(12), ts: 400)] })
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: back])).audit(expected(tombstones: deleted))
        #expect(states(result) == ["resurrected/2/confirmed"])
        // no finding names the healthy replica 1 (the CI incident: a divergence carried its id)
        #expect(!result.records.contains { $0.finding.replicaID == 1 })
        #expect(result.records.first { $0.finding.kind == .resurrected }?.finding.pks == [.int(11), .int(12)])
    }

    @Test func aRecoveringReplicaIsWatchedUntilItMatchesThenResolved() async throws {
        // TargetVersion 0 and half the rows for the first probes, then complete: the restart window
        let recovering = FakeReplicaSource.Script(
            view: { n in n < 3 ? Self.view(target: 0, sealed: []) : Self.view() },
            rows: { n in n < 2 ? Array(Self.all.prefix(5)) : Self.all })
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: recovering])).audit(expected())
        #expect(states(result) == ["catchup_unfinished/2/resolved"])
        let catchup = try #require(result.records.first?.finding)
        #expect(catchup.windowStartMs != nil && catchup.windowEndMs != nil)
        #expect(catchup.evidence.contains("caught up") && catchup.evidence.contains("5 rows short"))
        #expect(result.unjudged.isEmpty)
    }

    @Test func aRestartingReplicaUnreachableThenServingIsMeasuredAsCatchUp() async throws {
        let restarting = FakeReplicaSource.Script(
            view: { n in
                if n < 2 { throw TransportError(.unavailable, method: "x", target: "y", message: "connection refused") }
                return Self.view()
            },
            rows: { n in n < 1 ? Array(Self.all.prefix(2)) : Self.all })
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: restarting])).audit(expected())
        #expect(states(result) == ["catchup_unfinished/2/resolved"])
        #expect(result.records.first?.finding.evidence.contains("8 rows short") == true)
    }

    @Test func aNodeSlowerToComeBackThanTheWatchLimitIsWaitedForUpToTheGrace() async throws {
        // CI, fault test (b): the restarted QueryNode led no shard for longer than --watch-limit 15 although
        // --unreachable-grace was 120. Each limit bounds its own wait: unreachable for ~1 s (200 probes of
        // 5 ms), then reloading (target 0) and short: a catch-up, not `replica_unavailable`.
        let slow = FakeReplicaSource.Script(
            view: { n in
                if n < 200 {
                    throw TransportError(.unavailable, method: "x", target: "y", message: "connection refused")
                }
                return Self.view(target: 0, sealed: [])
            },
            rows: { _ in Array(Self.all.prefix(4)) })
        let policy = AuditPolicy(
            settle: .zero, readTimeout: .seconds(1), watchLimit: .milliseconds(300), unreachableGrace: .seconds(5),
            catchupBound: .seconds(120), probeInterval: .milliseconds(5))
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: slow]), policy: policy).audit(expected())
        #expect(states(result) == ["catchup_unfinished/2/suspected"])
    }

    @Test func aReplicaWithoutTargetThatServesEverythingHasCaughtUp() async throws {
        // TargetVersion stays 0 (QueryCoord cannot move the target while the other replica is down), but the
        // replica answers every row at T: caught up, compared like a serving replica, no open finding.
        let noTarget = FakeReplicaSource.Script(
            view: { _ in Self.view(target: 0, sealed: []) }, rows: { _ in Self.all })
        let down = FakeReplicaSource.Script(
            view: { _ in throw TransportError(.unavailable, method: "x", target: "y", message: "connection refused") },
            rows: { _ in throw TransportError(.unavailable, method: "x", target: "y", message: "connection refused") })
        let result = try await round(FakeReplicaSource([1: down, 2: noTarget])).audit(expected())
        #expect(states(result) == ["catchup_unfinished/2/resolved", "replica_unavailable/1/suspected"])
        #expect(result.coverage?.replicas == 1 && result.coverage?.rows == 10)
    }

    @Test func aReplicaWithoutTargetServingMoreThanTheLogIsJudgedOnlyOnceItHasATarget() async throws {
        // A segment loaded with a wrong delta log: the restarted replica answers deleted rows while its target is
        // still 0. More rows than the log is not "caught up"; once the target arrives the resurrection is a
        // serving replica's finding and the re-read confirms it (CI once judged it early and never confirmed).
        let deleted = [DeletedKey(pk: .int(11), ts: 600)]
        let back = Self.all + [ReplicaRow(pk: .int(11), ts: 400)]
        let reloaded = FakeReplicaSource.Script(
            view: { n in n < 4 ? Self.view(target: 0, sealed: []) : Self.view() }, rows: { _ in back })
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: reloaded])).audit(
            expected(tombstones: deleted))
        #expect(
            states(result) == [
                "catchup_unfinished/2/resolved", "resurrected/2/confirmed",
            ])
        #expect(result.records.first { $0.finding.kind == .resurrected }?.finding.pks == [.int(11)])
    }

    @Test func aReplicaWithoutTargetIsNotJudgedOnRowsItStillHasToDelete() async throws {
        // Loading: the deleted row is still there while the target is 0, gone once the target arrives. Judging
        // it early would report a resurrection that never was.
        let probes = Mutex(0)
        let deleted = [DeletedKey(pk: .int(11), ts: 600)]
        let loading = FakeReplicaSource.Script(
            view: { n in
                probes.withLock { $0 = n }
                return n < 4 ? Self.view(target: 0, sealed: []) : Self.view()
            },
            rows: { _ in probes.withLock { $0 } < 4 ? Self.all + [ReplicaRow(pk: .int(11), ts: 400)] : Self.all })
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: loading])).audit(
            expected(tombstones: deleted))
        #expect(states(result) == ["catchup_unfinished/2/resolved"])
    }

    @Test func aReplicaRestartedBetweenTheReadsIsNotReReadWhileItReloads() async throws {
        // Replica 2 counts complete early in the watch (ended), is serving when judged (probe 1), then reloads
        // (TargetVersion 0) at the confirmation: answers now may be partial, so no re-read and no confirmation.
        let slow = FakeReplicaSource.Script(
            view: { n in n < 2 ? Self.view(target: 0, sealed: []) : Self.view() },
            rows: { n in n < 1 ? Array(Self.all.prefix(5)) : Self.all })
        let flapping = FakeReplicaSource.Script(
            view: { n in n == 1 ? Self.view() : Self.view(target: 0, sealed: []) },
            rows: { _ in Array(Self.all.dropFirst(3)) }, count: { 10 })
        let result = try await round(FakeReplicaSource([1: slow, 2: flapping])).audit(expected())
        let missing = try #require(result.records.first { $0.finding.kind == .missing })
        #expect(missing.state == .suspected)
        #expect(
            missing.finding.evidence.contains("not re-read: ") && missing.finding.evidence.contains("TargetVersion 0"))
    }

    @Test func aHandoffAfterAFlushIsNoCatchUp() async throws {
        // Right after a flush one leader lists the new sealed segment, the other not yet, while both serve every
        // row: the audit waits for the handoff and reports nothing.
        let handingOff = FakeReplicaSource.Script(
            view: { n in n < 2 ? Self.view(sealed: []) : Self.view() }, rows: { _ in Self.all })
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: handingOff])).audit(expected())
        #expect(result.records.isEmpty)
        #expect(result.unjudged.isEmpty && result.coverage?.replicas == 2)
    }

    @Test func aFindingTheReReadCouldNotCheckSaysWhy() async throws {
        let lossy = FakeReplicaSource.Script(
            view: { n in
                if n > 0 { throw TransportError(.unavailable, method: "x", target: "y", message: "connection refused") }
                return Self.view()
            }, rows: { _ in Array(Self.all.dropFirst(3)) })
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: lossy])).audit(expected())
        let missing = try #require(result.records.first { $0.finding.kind == .missing })
        #expect(missing.state == .suspected)
        #expect(missing.finding.evidence.contains("unconfirmed (not re-read: "))
    }

    @Test func aReplicaThatNeverCompletesIsSuspectedThenConfirmedAfterTheBound() async throws {
        let stuck = FakeReplicaSource.Script(
            view: { _ in Self.view(target: 0, sealed: []) }, rows: { _ in Array(Self.all.prefix(4)) })
        let young = try await round(FakeReplicaSource([1: Self.healthy, 2: stuck])).audit(expected())
        #expect(states(young) == ["catchup_unfinished/2/suspected"])
        #expect(young.records.first?.finding.pkCount == 6)
        // first seen 200 s ago (bound 120 s): escalates
        let old = try await round(FakeReplicaSource([1: Self.healthy, 2: stuck]), nowMs: 1_000_000)
            .audit(expected(firstSeen: ["catchup_unfinished/2": 800_000]))
        #expect(states(old) == ["catchup_unfinished/2/confirmed"])
    }

    @Test func aReplicaLackingSealedSegmentsTheOtherServesIsRecovering() {
        let probes = [1, 2].map { id in
            ReplicaProbe(
                replica: ReplicaInfo(
                    id: Int64(id), collectionID: 9, nodeIDs: [],
                    shards: [.init(vchannel: "v", leaderID: Int64(id), leaderAddress: "a", nodeIDs: [])]),
                views: ["v": .success(Self.view(sealed: id == 1 ? [1, 2] : [1]))])
        }
        let health = ReplicaHealth.classify(probes, vchannels: ["v"])
        #expect(health[1] == .serving)
        #expect(health[2]?.isRecovering == true)
        #expect(health[2]?.reason.contains("[2]") == true)
    }

    @Test func fullModeFindsAlteredContentThatPkModeCannotSee() async throws {
        var rows = Self.all
        rows[2].rowHash = 0xdead  // same pk and ts, other content (the shadow's row hash is 0)
        let altered = rows
        let changed = FakeReplicaSource.Script(view: { _ in Self.view() }, rows: { _ in altered })
        var expected = expected()
        expected.schema = CollectionSchemaInfo(
            collectionID: 9, name: "c", dbName: "", fields: [], enableDynamicField: false, virtualChannels: [],
            physicalChannels: [], partitionIDs: [])
        let pk = try await round(FakeReplicaSource([1: Self.healthy, 2: changed])).audit(expected)
        #expect(pk.records.isEmpty)
        var policy = AuditPolicy(
            settle: .zero, readTimeout: .seconds(1), watchLimit: .milliseconds(300),
            unreachableGrace: .milliseconds(100), probeInterval: .milliseconds(5))
        policy.mode = .full
        let full = try await round(FakeReplicaSource([1: Self.healthy, 2: changed]), policy: policy).audit(expected)
        #expect(states(full) == ["extra/2/confirmed"])
        let extra = try #require(full.records.first { $0.finding.kind == .extra }?.finding)
        #expect(extra.pks == [.int(3)] && extra.evidence.contains("row hash"))
        #expect(full.coverage?.mode == .full)
    }

    @Test func sampleModeChecksARotatingSliceInFull() async throws {
        var rows = Self.all
        rows[7].rowHash = 0xbad  // pk 8: in the third quarter of the pk range
        let altered = rows
        let changed = FakeReplicaSource.Script(view: { _ in Self.view() }, rows: { _ in altered })
        var policy = AuditPolicy(
            settle: .zero, readTimeout: .seconds(1), watchLimit: .milliseconds(300),
            unreachableGrace: .milliseconds(100), probeInterval: .milliseconds(5))
        policy.mode = .sample
        policy.sampleSlices = 4  // 10 rows: slices of 3 → pks 1–3, 4–6, 7–9, 10
        var expected = expected()
        expected.schema = CollectionSchemaInfo(collectionID: 9, name: "c", fields: [])
        var seen: [Int: [String]] = [:]
        for slice in 0..<4 {
            expected.sampleSlice = slice
            let result = try await round(FakeReplicaSource([1: Self.healthy, 2: changed]), policy: policy)
                .audit(expected)
            seen[slice] = states(result)
            #expect(result.coverage?.slice == slice && result.coverage?.mode == .sample)
        }
        #expect(seen[0] == [] && seen[1] == [] && seen[3] == [])
        #expect(seen[2] == ["extra/2/confirmed"])
    }

    @Test func versionsLostOrGainedAreDuplicatePKFindings() async throws {
        // the log inserted pk 1 twice while live: Milvus keeps and counts both versions
        var shadow = Self.shadow
        shadow.append(ShadowStore.LiveRow(pk: .int(1), ts: 600, rowHash: 0))
        var expected = expected()
        expected.view = InMemoryExpected(rows: shadow, tombstones: [], timestamp: Self.t)
        let served = Self.all.map { $0.pk == .int(1) ? ReplicaRow(pk: $0.pk, ts: 600) : $0 }
        let keeps = FakeReplicaSource.Script(view: { _ in Self.view() }, rows: { _ in served }, count: { 11 })
        let lost = FakeReplicaSource.Script(view: { _ in Self.view() }, rows: { _ in served }, count: { 10 })
        let result = try await round(FakeReplicaSource([1: keeps, 2: lost])).audit(expected)
        #expect(states(result) == ["duplicate_pk/2/confirmed"])
        let finding = try #require(result.records.first?.finding)
        #expect(finding.pks == [.int(1)] && finding.pkCount == 1 && finding.evidence.contains("count(*) = 10"))
    }

    @Test func withAnIncompleteHistoryADivergenceNamesBothReplicasAndNeitherAsCulprit() async throws {
        let lossy = FakeReplicaSource.Script(view: { _ in Self.view() }, rows: { _ in Array(Self.all.dropFirst(3)) })
        var expected = expected()
        expected.historyComplete = false
        let result = try await round(FakeReplicaSource([2: lossy, 1: Self.healthy])).audit(expected)
        let divergence = try #require(result.records.first { $0.finding.kind == .replicaDivergence }?.finding)
        #expect(divergence.replicaID == 1 && divergence.peerReplicaID == 2 && divergence.pkCount == 3)
        #expect(divergence.nodeIDs != divergence.peerNodeIDs)
        #expect(result.records.first { $0.finding.kind == .replicaDivergence }?.state == .confirmed)
    }

    @Test func aCollectionIsComparedRangeByRangeAndOnlyDifferingRangesAreReadAgain() async throws {
        // replica 2 lost pks 5 and 9; ranges of about 3 rows: [-∞, 4) [4, 7) [7, 10) [10, +∞)
        let lost: Set<PrimaryKey> = [.int(5), .int(9)]
        let lossy = FakeReplicaSource.Script(
            view: { _ in Self.view() }, rows: { _ in Self.all.filter { !lost.contains($0.pk) } })
        var policy = AuditPolicy(
            settle: .zero, readTimeout: .seconds(1), watchLimit: .milliseconds(300),
            unreachableGrace: .milliseconds(100), probeInterval: .milliseconds(5))
        policy.windowRows = 3
        let source = FakeReplicaSource([1: Self.healthy, 2: lossy])
        let result = try await round(source, policy: policy).audit(expected())
        #expect(states(result) == ["missing/2/confirmed"])
        let missing = try #require(result.records.first?.finding)
        #expect(missing.pks == [.int(5), .int(9)] && missing.pkCount == 2)
        #expect(missing.evidence.hasPrefix("2 of 10 pks live in the log at T are not served (replica serves 8)"))
        #expect(result.coverage?.rows == 18)
        let ranges = PKRange.split(at: [.int(4), .int(7), .int(10)])
        #expect(source.ranges(replica: 2) == ranges + [ranges[1], ranges[2]])
        #expect(source.ranges(replica: 1) == ranges + [ranges[1], ranges[2]])

        // the same loss with an incomplete history: one divergence over all ranges, naming both replicas
        var incomplete = expected()
        incomplete.historyComplete = false
        let again = try await round(FakeReplicaSource([1: Self.healthy, 2: lossy]), policy: policy).audit(incomplete)
        let divergence = try #require(again.records.first { $0.finding.kind == .replicaDivergence })
        #expect(divergence.state == .confirmed && divergence.finding.pks == [.int(5), .int(9)])
        #expect(divergence.finding.evidence == "replicas 1 (10 rows) and 2 (8 rows) differ on 2 pks")
    }

    @Test func stringKeysAreOrderedByTheirBytesAsMilvusOrdersThem() {
        // Swift's String order compares normalized scalars: "é" < "e\u{301}x" (NFC "éx"); by bytes (Milvus, the
        // shadow's index) "e\u{301}x" (65 CC 81 78) comes first, before "é" (C3 A9)
        let keys: [PrimaryKey] = [.string("z"), .string("é"), .string("a"), .string("Z"), .string("e\u{301}x")]
        let bytes = keys.map { Array($0.description.utf8) }.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(keys.sorted().map { Array($0.description.utf8) } == bytes)
        #expect(PKRange(lower: .string("b"), upper: .string("é")).contains(.string("z")))
        #expect(!PKRange(lower: .string("b"), upper: .string("z")).contains(.string("é")))
    }

    @Test func anUnreachableReplicaIsReportedNeverAsData() async throws {
        let down = FakeReplicaSource.Script(
            view: { _ in throw TransportError(.unavailable, method: "x", target: "y", message: "connection refused") },
            rows: { _ in throw TransportError(.unavailable, method: "x", target: "y", message: "connection refused") })
        let result = try await round(FakeReplicaSource([1: Self.healthy, 2: down])).audit(expected())
        #expect(states(result) == ["replica_unavailable/2/suspected"])
    }
}

@Suite("Finding lifecycle")
struct FindingLifecycleTests {
    static func round(_ collections: [RoundOutcome.Collection], confirmed: Int = 0, at ms: Int64) -> RoundOutcome {
        RoundOutcome(startedMs: ms, finishedMs: ms, mode: .pk, collections: collections, confirmed: confirmed)
    }
    static let judgedBoth = RoundOutcome.Collection(id: 9, name: "c", listed: [1, 2], judged: [1, 2], reasons: [])

    @Test func findingsKeepFirstSeenAndResolveWhenGone() throws {
        let store = try ShadowStore.inMemory()
        let finding = ReplicaFinding(
            kind: .missing, collectionID: 9, replicaID: 2, nodeIDs: [20], pks: [.int(1)], pkCount: 1, timestamp: 5,
            evidence: "x")
        try store.recordAudit(
            findings: [AuditRecord(finding, .suspected)], coverage: [], round: Self.round([Self.judgedBoth], at: 1000),
            nowMs: 1000)
        try store.recordAudit(
            findings: [AuditRecord(finding, .confirmed)], coverage: [],
            round: Self.round([Self.judgedBoth], confirmed: 1, at: 2000), nowMs: 2000)
        var f = try #require(try store.summary().findings.first)
        #expect(f.state == .confirmed && f.firstSeenMs == 1000 && f.confirmedMs == 2000 && f.lastSeenMs == 2000)
        #expect(try store.openFindingsFirstSeen(collectionID: 9) == ["missing/2": 1000])
        try store.recordAudit(findings: [], coverage: [], round: Self.round([Self.judgedBoth], at: 3000), nowMs: 3000)
        f = try #require(try store.summary().findings.first)
        #expect(f.state == .resolved && f.resolvedMs == 3000)
        #expect(try store.summary().findings.count == 1)
        #expect(ShadowReport.exitCode(try store.summary()) == 0)
    }

    @Test func aReplicaTheRoundCouldNotReadKeepsItsFindingsAndTheReportSaysNotAudited() throws {
        let store = try ShadowStore.inMemory()
        let missing = ReplicaFinding(
            kind: .missing, collectionID: 9, replicaID: 2, nodeIDs: [20], pks: [.int(1)], pkCount: 1, timestamp: 5,
            evidence: "x")
        try store.recordAudit(
            findings: [AuditRecord(missing, .confirmed)], coverage: [],
            round: Self.round([Self.judgedBoth], confirmed: 1, at: 1000), nowMs: 1000)
        // replica 2's node is killed: the next round lists it but cannot read it
        let down = ReplicaFinding(
            kind: .replicaUnavailable, collectionID: 9, replicaID: 2, nodeIDs: [20], pks: [], pkCount: 0, timestamp: 6,
            evidence: "replica cannot be asked")
        let partial = RoundOutcome.Collection(
            id: 9, name: "c", listed: [1, 2], judged: [1], reasons: ["replica 2: connection refused"])
        try store.recordAudit(
            findings: [AuditRecord(down, .suspected)], coverage: [], round: Self.round([partial], at: 2000),
            nowMs: 2000)
        let summary = try store.summary()
        #expect(summary.findings.filter { $0.state != .resolved }.count == 2)  // missing/2 stays open
        #expect(ShadowReport.exitCode(summary) == 1)
        // the collection could not be audited at all (every QueryNode down): nothing resolves, report exits 2
        try store.recordAudit(findings: [], coverage: [], round: Self.round([Self.judgedBoth], at: 3000), nowMs: 3000)
        let gone = RoundOutcome.Collection(
            id: 9, name: "c", listed: [], judged: [], reasons: ["replicas not available: no QueryNode"])
        try store.recordAudit(findings: [], coverage: [], round: Self.round([gone], at: 4000), nowMs: 4000)
        let after = try store.summary()
        #expect(after.findings.allSatisfy { $0.state == .resolved })
        #expect(after.latestRound?.result == "incomplete" && after.auditStatus[9]?.audited == false)
        #expect(ShadowReport.exitCode(after) == 2)
        let text = ShadowReport.text(after, nowMs: 5000)
        #expect(text.contains("NOT AUDITED in the latest round") && text.contains("no QueryNode"))
        #expect(ShadowReport.json(after, nowMs: 5000).contains("\"latest_round\":{\"started_ms\":4000"))
        // a clean round again: exit 0
        try store.recordAudit(findings: [], coverage: [], round: Self.round([Self.judgedBoth], at: 6000), nowMs: 6000)
        #expect(ShadowReport.exitCode(try store.summary()) == 0)
        // a round that failed as a whole (Kafka away) stands as the latest: exit 2
        try store.recordFailedRound(
            RoundOutcome(startedMs: 7000, finishedMs: 7000, mode: .pk, collections: [], confirmed: 0, error: "kafka"))
        #expect(ShadowReport.exitCode(try store.summary()) == 2)
    }

    @Test func aDivergenceIsOneFindingPerPairAndShowsBothReplicas() throws {
        let store = try ShadowStore.inMemory()
        var divergence = ReplicaFinding(
            kind: .replicaDivergence, collectionID: 9, replicaID: 1, nodeIDs: [10], pks: [.int(1)], pkCount: 1,
            timestamp: 5, evidence: "differ")
        divergence.peerReplicaID = 2
        divergence.peerNodeIDs = [20]
        for ms: Int64 in [1000, 2000] {
            try store.recordAudit(
                findings: [AuditRecord(divergence, .confirmed)], coverage: [],
                round: Self.round([Self.judgedBoth], confirmed: 1, at: ms), nowMs: ms)
        }
        let summary = try store.summary()
        #expect(summary.findings.count == 1)
        #expect(summary.findings.first?.peerReplicaID == 2 && summary.findings.first?.peerNodeIDs == "20")
        #expect(ShadowReport.json(summary, nowMs: 3000).contains("\"replica\":1,\"node\":\"10\",\"peer_replica\":2"))
        #expect(ShadowReport.text(summary, nowMs: 3000).contains("replica 1 node 10 and replica 2 node 20"))
    }
}
