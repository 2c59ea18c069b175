import Auditor
import AuditorTesting
import Foundation
import Logging
import MilvusProto
import SwiftProtobuf
import Testing

@testable import AuditorShadow

/// Writes Milvus-shaped messages into an in-memory log, the way proxies and rootcoord do.
struct LogWriter {
    let log: InMemoryKafkaLog
    var topic = "by-dev-rootcoord-dml_0"
    var collectionID: Int64 = 4455

    func insert(_ pks: [Int64], ts: UInt64, partition: Int64 = 1, seed: Float = 0.5, baseTimestamp: Bool = true) {
        var request = Fixtures.insert(
            pks: Fixtures.longs(100, pks), others: [Fixtures.floatVector(101, dim: 2, rows: pks.count, seed: seed)],
            rows: pks.count, ts: ts, collectionID: collectionID)
        request.partitionID = partition
        if !baseTimestamp { request.base.timestamp = 0 }  // as Milvus 2.3.5's upsert writes it
        log.append(topic: topic, value: try! Array(request.serializedData()))
    }

    func delete(_ pks: [Int64], ts: UInt64, partition: Int64 = -1) {
        var request = Fixtures.delete(intPKs: pks, ts: ts)
        request.collectionID = collectionID
        request.partitionID = partition
        log.append(topic: topic, value: try! Array(request.serializedData()))
    }

    func tick(_ ts: UInt64) {
        var tick = Milvus_Proto_Msg_TimeTickMsg()
        tick.base = Fixtures.base(.timeTick, ts: ts)
        log.append(topic: topic, value: try! Array(tick.serializedData()))
    }

    func dropPartition(_ partition: Int64, ts: UInt64) {
        var request = Milvus_Proto_Msg_DropPartitionRequest()
        request.base = Fixtures.base(.dropPartition, ts: ts)
        request.collectionID = collectionID
        request.partitionID = partition
        log.append(topic: topic, value: try! Array(request.serializedData()))
    }

    func dropCollection(ts: UInt64) {
        var request = Milvus_Proto_Msg_DropCollectionRequest()
        request.base = Fixtures.base(.dropCollection, ts: ts)
        request.collectionID = collectionID
        log.append(topic: topic, value: try! Array(request.serializedData()))
    }

    func garbage() { log.append(topic: topic, value: [0xff, 0x01, 0x02]) }

    /// Int64 pk 100 and an Array field 101 whose data does not name its element type, as pymilvus 2.3 sends it.
    static func arrayInsert(_ pks: [Int64], ts: UInt64) -> Milvus_Proto_Msg_InsertRequest {
        var tags = Fixtures.field(101, .array)
        tags.scalars.arrayData.data = pks.map { pk in
            var element = Milvus_Proto_Schema_ScalarField()
            element.longData.data = [pk, -pk]
            return element
        }
        return Fixtures.insert(pks: Fixtures.longs(100, pks), others: [tags], rows: pks.count, ts: ts)
    }
}

@Suite("Shadow semantics")
struct ShadowTests {
    let logger = Logger(label: "test")

    /// Ingests everything currently in the log into the store; returns the ingester's stats.
    @discardableResult
    func ingest(_ log: InMemoryKafkaLog, into store: ShadowStore) async throws -> ShadowIngester.Stats {
        let ingester = ShadowIngester(log: log, store: store, topicPrefix: "by-dev-rootcoord-dml", logger: logger)
        try await ingester.start()
        while !ingester.caughtUp { try await ingester.step(timeout: .milliseconds(1)) }
        return ingester.stats
    }

    func live(_ store: ShadowStore, _ collection: Int64 = 4455) throws -> [Int64: [UInt64]] {
        var result: [Int64: [UInt64]] = [:]
        for row in try store.liveRows(collectionID: collection) {
            if case .int(let pk) = row.pk { result[pk, default: []].append(row.ts) }
        }
        return result.mapValues { $0.sorted() }
    }

    @Test func deleteHidesOnlyOlderVersions() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1, 2], ts: 10)
        w.delete([1], ts: 20)
        w.insert([1], ts: 30)
        w.insert([3], ts: 50)
        w.delete([3], ts: 50)  // same ts: the row inserted at 50 survives
        w.tick(100)
        let store = try ShadowStore.inMemory()
        try await ingest(log, into: store)
        #expect(try live(store) == [1: [30], 2: [10], 3: [50]])
        #expect(Set(try store.tombstones(collectionID: 4455).map(\.ts)) == [20, 50])
    }

    @Test func theCollectionAtACutBeforeADeleteStillHasTheDeletedRow() async throws {
        // the audit's T may lie before deletes the shadow already applied (another pchannel's tick, or ingest
        // going on during a round): at T the deleted rows were live
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1, 2, 3], ts: 10)
        w.tick(15)
        w.delete([1, 2], ts: 20)
        w.insert([1], ts: 30)
        w.tick(40)
        let store = try ShadowStore.inMemory()
        try await ingest(log, into: store)
        func at(_ t: UInt64) throws -> [Int64: [UInt64]] {
            var result: [Int64: [UInt64]] = [:]
            for row in try store.expected(collectionID: 4455, at: t).rows {
                if case .int(let pk) = row.pk { result[pk, default: []].append(row.ts) }
            }
            return result.mapValues { $0.sorted() }
        }
        #expect(try at(15) == [1: [10], 2: [10], 3: [10]])
        #expect(try at(25) == [3: [10]])
        #expect(try at(40) == [1: [30], 3: [10]])
        #expect(try store.expected(collectionID: 4455, at: 15).tombstones.isEmpty)
        #expect(try store.expected(collectionID: 4455, at: 25).tombstones.count == 2)
    }

    @Test func theExpectedViewReadsRangeByRangeWhatWasLiveAtT() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert(Array(1...10), ts: 10)
        w.tick(15)
        w.delete([3], ts: 20)
        w.insert([4], ts: 30)  // a second live version of pk 4
        w.tick(40)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("view-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try ShadowStore.open(directory: directory, create: true)
        try await ingest(log, into: store)

        let view = try store.expectedView(collectionID: 4455, at: 15)
        // rows 1, 2, 4, 4, 5 … 10 by pk: ranges of about 3 versions; both versions of pk 4 in one range
        let ranges = try await view.windows(rows: 3)
        #expect(ranges == PKRange.split(at: [.int(5), .int(8)]))
        // ingest goes on while the ranges are read: what it changes lies after T
        w.delete([5, 9], ts: 50)
        w.insert([11], ts: 55)
        w.tick(60)
        try await ingest(log, into: store)
        var seen: [PrimaryKey: [UInt64]] = [:]
        for range in ranges {
            for row in try await view.window(range).rows {
                #expect(range.contains(row.pk))
                seen[row.pk, default: []].append(row.ts)
            }
        }
        // pk 3 (deleted at 20), 5 and 9 (at 50) were live at 15; 11 and pk 4's version at 30 came after
        #expect(seen == Dictionary(uniqueKeysWithValues: (1...10).map { (PrimaryKey.int($0), [UInt64(10)]) }))
        #expect(try await view.versionCount() == 10)
        #expect(try await view.window(.all).tombstones.isEmpty)
        #expect(try await store.expectedView(collectionID: 4455, at: 60).window(.all).tombstones.count == 3)
        #expect(try await store.expectedView(collectionID: 1, at: 40).windows(rows: 3) == [.all])
    }

    @Test func upsertIsDeleteAndInsertAtOneTimestamp() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([7], ts: 10, seed: 1)
        w.delete([7], ts: 20)
        w.insert([7], ts: 20, seed: 2)
        w.tick(30)
        let store = try ShadowStore.inMemory()
        try await ingest(log, into: store)
        #expect(try live(store) == [7: [20]])
        #expect(try store.summary().collections.first?.duplicatePKs == 0)
    }

    /// Milvus 2.3.5 writes an upsert's Insert record before its Delete record (same ts, same partition).
    @Test func upsertWithInsertBeforeDeleteKeepsTheNewVersion() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1, 2], ts: 10, partition: 3, seed: 1)
        w.tick(15)
        w.insert([1, 7], ts: 20, partition: 3, seed: 2, baseTimestamp: false)
        w.delete([1, 7], ts: 20, partition: 3)
        w.tick(30)
        let store = try ShadowStore.inMemory()
        try await ingest(log, into: store)
        #expect(try live(store) == [1: [20], 2: [10], 7: [20]])
    }

    @Test func duplicatesAreCountedUntilDeleted() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([5, 6], ts: 10)
        w.insert([5], ts: 20)
        w.tick(25)
        let store = try ShadowStore.inMemory()
        try await ingest(log, into: store)
        #expect(try live(store) == [5: [10, 20], 6: [10]])
        #expect(try store.summary().collections.first?.duplicatePKs == 1)
        #expect(try store.summary().collections.first?.liveRows == 3)
        w.delete([5], ts: 30)
        w.tick(35)
        try await ingest(log, into: store)
        #expect(try live(store) == [6: [10]])
    }

    @Test func dropPartitionAndCollectionRetireRows() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1, 2], ts: 10, partition: 1)
        w.insert([3, 4], ts: 10, partition: 2)
        w.delete([3], ts: 12, partition: 1)  // partition-scoped delete does not touch partition 2
        w.dropPartition(1, ts: 20)
        w.tick(30)
        let store = try ShadowStore.inMemory()
        try await ingest(log, into: store)
        #expect(try live(store) == [3: [10], 4: [10]])
        #expect(try store.buckets(collectionID: 4455) == store.recomputedBuckets(collectionID: 4455))
        w.dropCollection(ts: 40)
        w.insert([9], ts: 45)  // after the drop nothing comes back
        w.tick(50)
        try await ingest(log, into: store)
        #expect(try live(store).isEmpty)
        #expect(try store.summary().collections.first?.state == "dropped")
    }

    @Test func droppingACollectionResolvesItsOpenReplicaFindings() async throws {
        let (log, store, _) = try await twoRowsIngested()
        let w = LogWriter(log: log)
        let unavailable = ReplicaFinding(
            kind: .replicaUnavailable, collectionID: 4455, replicaID: 2, nodeIDs: [20], pks: [], pkCount: 0,
            timestamp: 20, evidence: "replica cannot be asked")
        let other = ReplicaFinding(
            kind: .missing, collectionID: 77, replicaID: 3, nodeIDs: [30], pks: [.int(1)], pkCount: 1, timestamp: 20,
            evidence: "x")
        let round = RoundOutcome(startedMs: 1, finishedMs: 1, mode: .pk, collections: [], confirmed: 1)
        try store.recordAudit(
            findings: [AuditRecord(unavailable, .suspected), AuditRecord(other, .confirmed)], coverage: [],
            round: round, nowMs: 1)
        w.dropCollection(ts: 40 << 18)
        w.tick(50 << 18)
        try await ingest(log, into: store)
        let findings = try store.summary().findings
        let dropped = try #require(findings.first { $0.collectionID == 4455 })
        #expect(dropped.state == .resolved && dropped.resolvedMs == 40)
        #expect(dropped.detail.hasSuffix("collection dropped"))
        #expect(findings.first { $0.collectionID == 77 }?.state == .confirmed)  // another collection's stays open
    }

    @Test func recordsWaitForTheirTimeTick() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1], ts: 40)  // written before the tick, but belongs to the next window
        w.tick(30)
        let store = try ShadowStore.inMemory()
        try await ingest(log, into: store)
        #expect(try live(store).isEmpty)
        let checkpoint = try #require(try store.checkpoints()["by-dev-rootcoord-dml_0"])
        #expect(checkpoint.resumeOffset == 0 && checkpoint.tickTs == 30)
        // A restart re-reads the buffered record; the next tick applies it exactly once.
        w.tick(50)
        try await ingest(log, into: store)
        #expect(try live(store) == [1: [40]])
    }

    @Test func bucketsIncrementalEqualsRecomputedUnderRandomOps() async throws {
        var rng = SplitMix64(state: 9)
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        let store = try ShadowStore.inMemory(configuration: ShadowConfiguration(buckets: 64))
        var ts: UInt64 = 10
        for round in 0..<20 {
            for _ in 0..<30 {
                ts += 1
                let pks = (0..<Int.random(in: 1...5, using: &rng)).map { _ in Int64.random(in: 0..<200, using: &rng) }
                switch Int.random(in: 0..<10, using: &rng) {
                case 0..<6: w.insert(Array(Set(pks)), ts: ts, partition: Int64.random(in: 1...2, using: &rng))
                case 6..<9: w.delete(Array(Set(pks)), ts: ts)
                default:
                    w.delete(Array(Set(pks)), ts: ts)
                    w.insert(Array(Set(pks)), ts: ts, seed: Float(round))
                }
            }
            ts += 1
            w.tick(ts)
            try await ingest(log, into: store)
            #expect(try store.buckets(collectionID: 4455) == store.recomputedBuckets(collectionID: 4455))
        }
        // and a fresh replay of the same log gives the same shadow
        let fresh = try ShadowStore.inMemory(configuration: ShadowConfiguration(buckets: 64))
        try await ingest(log, into: fresh)
        #expect(try fresh.buckets(collectionID: 4455) == store.buckets(collectionID: 4455))
        #expect(Set(try fresh.liveRows(collectionID: 4455)) == Set(try store.liveRows(collectionID: 4455)))
    }

    @Test func aReplayStopsExactlyAtTheGivenTimeTick() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1, 2], ts: 10)  // offset 0
        w.tick(20)  // 1
        w.insert([3], ts: 30)  // 2
        w.delete([1], ts: 31)  // 3
        w.insert([5], ts: 45)  // 4: after the tick below in ts, belongs to the next window
        w.tick(40)  // 5
        w.insert([4], ts: 50)  // 6
        w.tick(60)  // 7
        for (stop, expected) in [(5, [2: [10], 3: [30]]), (-1, [:]), (1, [1: [10], 2: [10]])]
            as [(Int64, [Int64: [UInt64]])]
        {
            let store = try ShadowStore.inMemory()
            let ingester = ShadowIngester(
                log: log, store: store, topicPrefix: "by-dev-rootcoord-dml", logger: logger,
                stopAfterTick: ["by-dev-rootcoord-dml_0": stop])
            try await ingester.start()
            while !ingester.caughtUp { try await ingester.step(timeout: .milliseconds(1)) }
            #expect(try live(store) == expected, "stop after offset \(stop)")
            #expect(try store.checkpoints()["by-dev-rootcoord-dml_0"]?.tickOffset ?? -1 == stop)
        }
    }

    /// Two rows and a time tick ingested into a new store; the log, the store and pchannel 0's checkpoint.
    func twoRowsIngested() async throws -> (InMemoryKafkaLog, ShadowStore, ChannelCheckpoint) {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1, 2], ts: 10)
        w.tick(20)
        let store = try ShadowStore.inMemory()
        try await ingest(log, into: store)
        return (log, store, try #require(try store.checkpoints()["by-dev-rootcoord-dml_0"]))
    }

    @Test func reappliedRecordsAreNoOps() async throws {
        var (log, store, checkpoint) = try await twoRowsIngested()
        // Re-deliver: rewind the stored checkpoint as if the commit of the offsets had been lost.
        checkpoint.resumeOffset = 0
        checkpoint.applied = []
        try store.commit(ShadowBatch(pchannel: checkpoint.pchannel, messages: [], checkpoint: checkpoint))
        try await ingest(log, into: store)
        #expect(try live(store) == [1: [10], 2: [10]])
        #expect(try store.buckets(collectionID: 4455) == store.recomputedBuckets(collectionID: 4455))
    }

    @Test func theStoredHighWatermarkIsNeverBelowWhatWasConsumed() async throws {
        // the watermark is fetched now and then; records read since lie beyond it ("offset 96 of 95")
        var (_, store, checkpoint) = try await twoRowsIngested()
        checkpoint.nextOffset = 96
        checkpoint.highWatermark = 95
        try store.commit(ShadowBatch(pchannel: checkpoint.pchannel, messages: [], checkpoint: checkpoint))
        let stored = try #require(try store.summary().pchannels.first { $0.pchannel == checkpoint.pchannel })
        #expect(stored.highWatermark == 96 && stored.nextOffset == 96)
    }

    @Test func brokerLogRegressionIsAFindingNotNewData() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1], ts: 10)
        w.tick(20)
        w.tick(30)
        let store = try ShadowStore.inMemory()
        try await ingest(log, into: store)
        log.wipe(topic: w.topic)
        w.tick(40)
        try await ingest(log, into: store)
        let summary = try store.summary()
        #expect(summary.findings.map(\.kind) == [.log(.logRegression)])
        #expect(summary.findings.first?.toOffset == 3)
        #expect(summary.pchannels.first?.epoch == 1)
        #expect(try live(store) == [1: [10]])  // nothing re-applied, nothing lost from the shadow
    }

    @Test func aLogWipedWhileFollowingIsARegressionToo() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1], ts: 10)
        w.tick(20)
        w.tick(30)
        let store = try ShadowStore.inMemory()
        let ingester = ShadowIngester(log: log, store: store, topicPrefix: "by-dev-rootcoord-dml", logger: logger)
        try await ingester.start()
        while !ingester.caughtUp { try await ingester.step(timeout: .milliseconds(1)) }
        log.wipe(topic: w.topic)  // the broker restarts without its log while auditd follows
        w.insert([2], ts: 40)
        w.tick(50)
        for _ in 0..<5 { try await ingester.step(timeout: .milliseconds(1)) }
        try await ingester.checkWatermarks()  // idempotent once the regression was handled
        let summary = try store.summary()
        #expect(summary.findings.map(\.kind) == [.log(.logRegression)])
        #expect(summary.pchannels.first?.epoch == 1)
        #expect(try live(store) == [1: [10], 2: [40]])  // the new log's rows are followed after the report
    }

    @Test func aRecordTheBrokerDeliversAfterALaterOneIsReadAgainNotAGap() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1], ts: 10)
        w.insert([2], ts: 11)  // offset 1: not yet visible to the first fetch, offset 2 already is
        w.insert([3], ts: 12)
        w.tick(20)
        log.hide(topic: w.topic, offset: 1, fetches: 1)
        let store = try ShadowStore.inMemory()
        let stats = try await ingest(log, into: store)
        #expect(try store.summary().findings.isEmpty)
        #expect(try live(store) == [1: [10], 2: [11], 3: [12]])
        #expect(stats.gapRereads == 1)
        #expect(stats.skippedAlreadyApplied == 0)  // the records after the gap were not taken the first time
    }

    @Test func offsetsStillMissingAfterTheRereadsAreALogGap() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1], ts: 10)
        w.insert([2], ts: 11)
        w.insert([3], ts: 12)
        w.tick(20)
        log.hide(topic: w.topic, offset: 1, fetches: 100)
        let store = try ShadowStore.inMemory()
        let stats = try await ingest(log, into: store)
        let findings = try store.summary().findings
        #expect(findings.map(\.kind) == [.log(.logGap)])
        #expect(findings.first?.fromOffset == 1)
        #expect(findings.first?.toOffset == 2)
        #expect(try live(store) == [1: [10], 3: [12]])
        #expect(stats.gapRereads == ShadowIngester.maxGapRereads)
    }

    @Test func timestampsGoingBackwardsAreARegression() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1], ts: 10)
        w.tick(20)
        w.insert([2], ts: 15)  // impossible after tick 20 on the same pchannel: another log's record
        w.tick(20)  // a repeated tick is normal
        w.tick(30)
        let store = try ShadowStore.inMemory()
        try await ingest(log, into: store)
        let findings = try store.summary().findings
        #expect(findings.map(\.kind) == [.log(.logRegression)])
        #expect(findings.first?.fromOffset == 2)
    }

    @Test func aStepBackInTheLogsTimeIsOneFindingOverItsRecordsWithItsSize() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        let hour: UInt64 = 3_600_000 << 18
        w.insert([1], ts: 4 * hour)
        w.tick(4 * hour + 1)  // offset 1
        w.insert([2], ts: hour + 5)  // offsets 2-4: three hours back
        w.insert([3], ts: hour + 6)
        w.delete([1], ts: hour + 7)
        w.tick(hour + 8)  // the tick itself goes back too (offset 5), then time goes on from there
        w.insert([4], ts: hour + 9)
        w.tick(hour + 10)
        let store = try ShadowStore.inMemory()
        try await ingest(log, into: store)
        let findings = try store.summary().findings
        #expect(findings.map(\.kind) == [.log(.logRegression)])
        let finding = try #require(findings.first)
        #expect(finding.fromOffset == 2 && finding.toOffset == 6)
        #expect(finding.detail.contains("offsets 2–5") && finding.detail.contains("180.0 min back"))
        // the records are applied all the same, by their timestamps: the delete, older than pk 1's insert, misses it
        #expect(try live(store).keys.sorted() == [1, 2, 3, 4])
    }

    @Test func retentionLossIsReported() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1], ts: 10)
        w.tick(20)
        let store = try ShadowStore.inMemory()
        try await ingest(log, into: store)
        w.insert([2], ts: 30)
        w.tick(40)
        w.insert([3], ts: 50)
        w.tick(60)
        log.truncate(topic: w.topic, below: 4)  // offsets 2 and 3 gone before auditd read them
        try await ingest(log, into: store)
        let findings = try store.summary().findings
        #expect(findings.map(\.kind) == [.log(.retentionLoss)])
        #expect(findings.first?.fromOffset == 2 && findings.first?.toOffset == 4)
        #expect(try live(store) == [1: [10], 3: [50]])
    }

    @Test func undecodableIsQuarantinedAndTaints() async throws {
        let log = InMemoryKafkaLog()
        let w = LogWriter(log: log)
        w.insert([1], ts: 10)
        w.tick(20)
        w.garbage()
        w.tick(30)
        let store = try ShadowStore.inMemory()
        let stats = try await ingest(log, into: store)
        #expect(stats.undecodable == 1)
        let summary = try store.summary()
        #expect(summary.quarantined == 1)
        #expect(summary.collections.first?.taintedFrom?.offset == 2)
        #expect(summary.collections.first?.history == "incomplete")  // no CreateCollection in this log
    }

    @Test func stateDirectoryErrorsAreOneLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("auditd-foreign-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: dir.appendingPathComponent("notes.txt"))
        #expect(throws: ShadowError.self) { try ShadowStore.open(directory: dir.path, create: true) }
        #expect(throws: ShadowError.self) { try ShadowStore.open(directory: dir.path + "-missing", create: false) }
        do {
            _ = try ShadowStore.open(directory: dir.path, create: true)
        } catch let error as ShadowError {
            #expect(!error.message.contains("\n") && error.message.contains(dir.path))
        }
    }

    /// Found by the live-workload kill test: an Array field's element type is only in the schema (pymilvus 2.3
    /// sends the array data without it). After a restart past the collection's CreateCollection the ingest
    /// must still decode it: the shadow keeps the whole schema and hands it back to the decoder.
    @Test func aRestartPastCreateCollectionStillDecodesArrayFields() async throws {
        var create = Fixtures.createCollection(fields: [
            Fixtures.fieldSchema(100, "id", .int64, pk: true), Fixtures.fieldSchema(101, "tags", .array),
        ])
        var schema = try Milvus_Proto_Schema_CollectionSchema(serializedBytes: create.schema)
        schema.fields[1].elementType = .int64
        create.schema = try schema.serializedData()
        func tick(_ ts: UInt64) throws -> [UInt8] {
            var tick = Milvus_Proto_Msg_TimeTickMsg()
            tick.base = Fixtures.base(.timeTick, ts: ts)
            return try Array(tick.serializedData())
        }
        let log = InMemoryKafkaLog()
        create.base.timestamp = 5
        log.append(topic: Fixtures.pchannel, value: try Array(create.serializedData()))
        log.append(topic: Fixtures.pchannel, value: try tick(10))
        let restarted = try ShadowStore.inMemory()
        try await ingest(log, into: restarted)
        log.append(
            topic: Fixtures.pchannel, value: try Array(LogWriter.arrayInsert([1, 2, 3], ts: 20).serializedData()))
        log.append(topic: Fixtures.pchannel, value: try tick(30))
        try await ingest(log, into: restarted)  // a new ingester: what a restarted auditd runs
        let fresh = try ShadowStore.inMemory()
        try await ingest(log, into: fresh)
        #expect(try restarted.summary().quarantined == 0)
        #expect(try live(restarted) == [1: [20], 2: [20], 3: [20]])
        #expect(try restarted.differences(from: fresh).isEmpty)
    }
}

@Suite("Schemas from Milvus")
struct SchemaSourceTests {
    @Test func aCollectionFirstSeenThroughDataGetsItsSchemaFromMilvus() async throws {
        // pk is field 101 (VarChar); field 100 is an Int64 that inference would wrongly take
        let log = InMemoryKafkaLog()
        var request = Fixtures.insert(
            pks: Fixtures.longs(100, [5, 6]), others: [Fixtures.strings(101, ["a", "b"])], rows: 2, ts: 10)
        request.collectionID = 4455
        log.append(topic: "by-dev-rootcoord-dml_0", value: try Array(request.serializedData()))
        var tick = Milvus_Proto_Msg_TimeTickMsg()
        tick.base = Fixtures.base(.timeTick, ts: 20)
        log.append(topic: "by-dev-rootcoord-dml_0", value: try Array(tick.serializedData()))
        let schema = CollectionSchemaInfo(
            collectionID: 4455, name: "c",
            fields: [
                FieldInfo(id: 100, name: "n", type: .int64),
                FieldInfo(id: 101, name: "id", type: .varChar, isPrimaryKey: true),
            ])
        let store = try ShadowStore.inMemory()
        let ingester = ShadowIngester(
            log: log, store: store, topicPrefix: "by-dev-rootcoord-dml", logger: Logger(label: "test"),
            schemaSource: { id in id == 4455 ? schema : nil })
        try await ingester.start()
        while !ingester.caughtUp { try await ingester.step(timeout: .milliseconds(1)) }
        #expect(Set(try store.liveRows(collectionID: 4455).map(\.pk)) == [.string("a"), .string("b")])
        #expect(try store.summary().collections.first?.history == "incomplete")
    }

    /// Without a schema an Array field cannot be decoded: the ingest asks Milvus for it instead of quarantining.
    @Test func anInsertUndecodableWithoutItsSchemaGetsTheSchemaFromMilvus() async throws {
        let log = InMemoryKafkaLog()
        log.append(topic: Fixtures.pchannel, value: try Array(LogWriter.arrayInsert([7, 8], ts: 10).serializedData()))
        var tick = Milvus_Proto_Msg_TimeTickMsg()
        tick.base = Fixtures.base(.timeTick, ts: 20)
        log.append(topic: Fixtures.pchannel, value: try Array(tick.serializedData()))
        let schema = CollectionSchemaInfo(
            collectionID: Fixtures.collectionID, name: "c",
            fields: [
                FieldInfo(id: 100, name: "id", type: .int64, isPrimaryKey: true),
                FieldInfo(id: 101, name: "tags", type: .array, elementType: .int64),
            ])
        let store = try ShadowStore.inMemory()
        let ingester = ShadowIngester(
            log: log, store: store, topicPrefix: "by-dev-rootcoord-dml", logger: Logger(label: "test"),
            schemaSource: { id in id == Fixtures.collectionID ? schema : nil })
        try await ingester.start()
        while !ingester.caughtUp { try await ingester.step(timeout: .milliseconds(1)) }
        #expect(try store.summary().quarantined == 0)
        #expect(Set(try store.liveRows(collectionID: Fixtures.collectionID).map(\.pk)) == [.int(7), .int(8)])
    }
}
