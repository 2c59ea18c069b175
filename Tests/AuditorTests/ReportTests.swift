import Foundation
import Testing

@testable import AuditorCore
@testable import AuditorMilvus
@testable import AuditorReport
@testable import AuditorShadow

@Suite("Rendering: auditd report and auditd tail")
struct ReportTests {
    static let nowMs: Int64 = 1_764_700_000_000  // 2025-12-02T18:26:40Z
    static let tick = HybridTimestamp.compose(milliseconds: nowMs - 2_500)

    static func summary(findings: [ShadowSummary.Finding] = [], kafkaDownSince: Int64? = nil) -> ShadowSummary {
        var channel = ChannelCheckpoint(pchannel: "by-dev-rootcoord-dml_3", startOffset: 0)
        channel.nextOffset = 96
        channel.highWatermark = 100
        channel.tickTs = tick
        return ShadowSummary(
            collections: [
                .init(
                    id: 7, name: "reid", state: "live", liveRows: 20, duplicatePKs: 0, tombstones: 2,
                    history: "complete", taintedFrom: nil)
            ],
            pchannels: [channel], findings: findings, quarantined: 1, kafkaUnreachableSinceMs: kafkaDownSince,
            coverage: [
                AuditCoverage(
                    collectionID: 7, sweepMs: nowMs - 60_000, timestamp: tick, mode: .pk, rows: 40, replicas: 2,
                    replicasTotal: 2, buckets: 4096, seconds: 0.25)
            ])
    }

    static let resurrected = ShadowSummary.Finding(
        kind: .replica(.resurrected), state: .confirmed, pchannel: nil, collectionID: 7, fromOffset: nil,
        toOffset: nil, detail: "2 deleted pks served", firstSeenMs: nowMs - 30_000, replicaID: 11, nodeIDs: "5",
        pksJSON: "[\"a\",\"b\"]", pkCount: 2, ts: tick, lastSeenMs: nowMs, confirmedMs: nowMs,
        leaders: ["by-dev-rootcoord-dml_3_7v1": "5@127.0.0.1:21124", "by-dev-rootcoord-dml_2_7v0": "5@127.0.0.1:21124"])

    @Test func textShowsCollectionsLagFindingsAndCoverage() {
        let text = ShadowReport.text(Self.summary(findings: [Self.resurrected]), nowMs: Self.nowMs)
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines[0] == "collections:")
        #expect(lines[1] == "  reid (7) live: 20 live rows, 0 duplicate pks, 2 tombstones, history complete")
        #expect(lines[2] == "pchannels:")
        #expect(lines[3].hasPrefix("  by-dev-rootcoord-dml_3: offset 96 of 100 (lag 4 messages, 2.5s), last time tick"))
        #expect(lines[4] == "findings: 1 open, 0 resolved")
        #expect(
            lines[5]
                == "  [confirmed] resurrected collection 7 replica 11 node 5: 2 deleted pks served pks [\"a\",\"b\"] "
                + "leaders by-dev-rootcoord-dml_2_7v0=5@127.0.0.1:21124,by-dev-rootcoord-dml_3_7v1=5@127.0.0.1:21124")
        #expect(lines[6] == "coverage:")
        #expect(lines[7].contains("pk mode, 2 of 2 replicas, 40 rows, 4096 buckets, 0.25 s"))
        #expect(lines.last == "quarantined records: 1")
        #expect(ShadowReport.exitCode(Self.summary(findings: [Self.resurrected])) == 1)
    }

    @Test func jsonIsOneObjectWithTypedFields() throws {
        let json = ShadowReport.json(Self.summary(findings: [Self.resurrected]), nowMs: Self.nowMs)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        let finding = try #require((object["findings"] as? [[String: Any]])?.first)
        #expect(finding["kind"] as? String == "resurrected" && finding["state"] as? String == "confirmed")
        #expect(finding["replica"] as? Int == 11 && finding["pks"] as? [String] == ["a", "b"])
        #expect((finding["leaders"] as? [String: String])?["by-dev-rootcoord-dml_3_7v1"] == "5@127.0.0.1:21124")
        let channel = try #require((object["pchannels"] as? [[String: Any]])?.first)
        #expect(channel["lag_messages"] as? Int == 4 && channel["lag_seconds"] as? Double == 2.5)
        let coverage = try #require((object["coverage"] as? [[String: Any]])?.first)
        #expect(coverage["mode"] as? String == "pk" && coverage["replicas"] as? Int == 2)
        #expect((object["kafka"] as? [String: Any])?["reachable"] as? Bool == true)
    }

    @Test func exitCodes() {
        #expect(ShadowReport.exitCode(Self.summary()) == 0)
        #expect(ShadowReport.exitCode(Self.summary(kafkaDownSince: Self.nowMs - 5_000)) == 2)
        var unavailable = Self.resurrected
        unavailable.kind = .replica(.replicaUnavailable)
        unavailable.state = .suspected
        #expect(ShadowReport.exitCode(Self.summary(findings: [unavailable])) == 2)
        var resolved = Self.resurrected
        resolved.state = .resolved
        #expect(ShadowReport.exitCode(Self.summary(findings: [resolved])) == 0)
        let text = ShadowReport.text(Self.summary(kafkaDownSince: Self.nowMs - 5_000), nowMs: Self.nowMs)
        #expect(text.contains("kafka: UNREACHABLE since") && text.contains("(5 s)"))
    }

    @Test func anUnknownStoredKindStaysVisible() {
        var future = Self.resurrected
        future.kind = FindingKind(rawValue: "shard_split")
        #expect(future.kind == .unknown("shard_split"))
        #expect(ShadowReport.text(Self.summary(findings: [future]), nowMs: Self.nowMs).contains("] shard_split "))
        #expect(FindingKind(rawValue: "log_gap") == .log(.logGap))
        #expect(FindingKind(rawValue: "catchup_unfinished") == .replica(.catchupUnfinished))
    }

    // MARK: tail

    static func message(_ body: WALBody, offset: Int64 = 42) -> WALMessage {
        WALMessage(
            pchannel: "by-dev-rootcoord-dml_3", offset: offset, kafkaTimestampMs: nil, ts: 449_000_000_000_000_000,
            sourceID: 1, body: body)
    }

    static let insert = WALBody.insert(
        InsertMessage(
            collectionID: 7, collectionName: "reid", partitionID: 8, partitionName: "_default",
            shard: "by-dev-rootcoord-dml_3_7v1", segmentID: 9, pkFieldID: 100, pkInferred: false,
            rows: [
                InsertedRow(pk: .string("cam01-f1"), ts: 449_000_000_000_000_000, rowID: 1, rowHash: 0xabc),
                InsertedRow(pk: .string("cam01-f2"), ts: 449_000_000_000_000_000, rowID: 2, rowHash: 0xdef),
            ]))

    @Test func tailTextIsOneLinePerMessage() {
        let text = TailFormatter(format: .text)
        #expect(
            text.lines(for: Self.message(Self.insert))
                == [
                    "by-dev-rootcoord-dml_3 @42 insert coll=7(reid) part=8 shard=by-dev-rootcoord-dml_3_7v1 seg=9 rows=2 ts=449000000000000000 (2024-04-11T01:31:12.265Z)"
                ])
        #expect(
            text.lines(for: Self.message(.other(msgType: 402))) == [
                "by-dev-rootcoord-dml_3 @42 other msg_type=402 ts=449000000000000000 (2024-04-11T01:31:12.265Z)"
            ])
        #expect(
            text.lines(for: Self.message(.undecodable(reason: "no MsgBase at field 1")))
                == [
                    "by-dev-rootcoord-dml_3 @42 undecodable reason=\"no MsgBase at field 1\" ts=449000000000000000 (2024-04-11T01:31:12.265Z)"
                ])
        #expect(TailFormatter(format: .text, showTimeTicks: false).lines(for: Self.message(.timeTick)).isEmpty)
    }

    @Test func tailJSONIsOneObjectPerRow() throws {
        let lines = TailFormatter(format: .json).lines(for: Self.message(Self.insert))
        #expect(lines.count == 2)
        let row = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])
        #expect(row["type"] as? String == "insert" && row["pk"] as? String == "cam01-f2")
        #expect(row["row_hash"] as? String == "0000000000000def" && row["offset"] as? Int == 42)
        #expect(row["collection_name"] as? String == "reid" && row["shard"] as? String == "by-dev-rootcoord-dml_3_7v1")
    }

    @Test func tailFiltersByCollectionButNeverHidesBadInput() {
        let other = TailFormatter(format: .text, collection: "someone_else")
        #expect(other.lines(for: Self.message(Self.insert)).isEmpty)
        #expect(other.lines(for: Self.message(.timeTick)).isEmpty)
        #expect(other.lines(for: Self.message(.undecodable(reason: "x"))).count == 1)
        #expect(TailFormatter(format: .text, collection: "7").lines(for: Self.message(Self.insert)).count == 1)
        #expect(TailFormatter(format: .text, collection: "reid").lines(for: Self.message(Self.insert)).count == 1)
    }
}
