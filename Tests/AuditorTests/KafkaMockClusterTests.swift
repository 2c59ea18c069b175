import Auditor
import AuditorTesting
import Foundation
import Logging
import MilvusProto
import Testing

@testable import AuditorKafka
@testable import AuditorMilvus

/// The Kafka layer against librdkafka's in-process mock cluster (no broker process).
@Suite("Kafka log reader (mock cluster)", .serialized)
struct KafkaMockClusterTests {
    let logger = Logger(label: "test")

    func cluster(topics: [String]) throws -> KafkaMockCluster {
        let cluster = try KafkaMockCluster()
        for topic in topics { try cluster.createTopic(topic) }
        return cluster
    }

    func reader(_ cluster: KafkaMockCluster) throws -> KafkaLogReader {
        try KafkaLogReader(configuration: KafkaReaderConfiguration(brokers: cluster.bootstrapServers), logger: logger)
    }

    /// Polls until `done` says so or the deadline passes.
    func drain(_ reader: KafkaLogReader, until done: ([KafkaEvent]) -> Bool) async throws -> [KafkaEvent] {
        var events: [KafkaEvent] = []
        let deadline = ContinuousClock.now + .seconds(20)
        while !done(events), ContinuousClock.now < deadline {
            events += try await reader.poll(maxMessages: 100, timeout: .milliseconds(100))
        }
        return events
    }

    @Test func discoversPchannelsByPrefixInNumericOrder() async throws {
        let cluster = try cluster(topics: [
            "by-dev-rootcoord-dml_10", "by-dev-rootcoord-dml_2", "by-dev-rootcoord-dml_0", "by-dev-replicate-msg",
            "other-dml_1", "by-dev-rootcoord-dml_x",
        ])
        let reader = try reader(cluster)
        let found = try await reader.pchannelTopics(prefix: "by-dev-rootcoord-dml")
        #expect(found == ["by-dev-rootcoord-dml_0", "by-dev-rootcoord-dml_2", "by-dev-rootcoord-dml_10"])
        #expect(try await reader.pchannelTopics(prefix: "other-dml") == ["other-dml_1"])
    }

    @Test func readsRecordsWithHeadersTimestampsAndWatermarks() async throws {
        let topic = "by-dev-rootcoord-dml_0"
        let cluster = try cluster(topics: [topic])
        for i in 0..<25 {
            try cluster.produce(
                topic: topic, value: Array("value-\(i)".utf8),
                headers: [
                    KafkaHeader(name: "traceparent", value: Array("00-\(i)".utf8)),
                    KafkaHeader(name: "empty", value: nil),
                ],
                timestampMs: 1_700_000_000_000 + Int64(i))
        }
        try cluster.produce(topic: topic, value: nil)
        try cluster.flush()
        let reader = try reader(cluster)
        let marks = try await reader.watermarks(topic: topic, partition: 0, timeout: .seconds(5))
        #expect(marks == Watermarks(low: 0, high: 26))
        try reader.assign([TopicPosition(topic: topic, offset: .beginning)])
        let events = try await drain(reader) { events in
            events.contains { if case .partitionEnd = $0 { return true } else { return false } }
        }
        let records = events.compactMap { if case .record(let r) = $0 { return r } else { return nil } }
        #expect(records.map(\.offset) == Array(0..<26))
        #expect(records[3].value == Array("value-3".utf8))
        #expect(records[3].header("traceparent") == "00-3")
        #expect(records[3].headers.contains(KafkaHeader(name: "empty", value: nil)))
        #expect(records[3].timestampMs == 1_700_000_000_003)
        #expect(records[3].key == nil)
        #expect(records[25].value == nil)
        #expect(events.contains(.partitionEnd(topic: topic, partition: 0, offset: 26)))
        #expect(reader.fetchedWatermarks(topic: topic, partition: 0)?.high == 26)
    }

    @Test func startsAtAnExplicitOffset() async throws {
        let topic = "by-dev-rootcoord-dml_1"
        let cluster = try cluster(topics: [topic])
        for i in 0..<10 { try cluster.produce(topic: topic, value: [UInt8(i)]) }
        try cluster.flush()
        let reader = try reader(cluster)
        try reader.assign([TopicPosition(topic: topic, offset: .exact(7))])
        let events = try await drain(reader) {
            $0.contains { if case .partitionEnd = $0 { return true } else { return false } }
        }
        let offsets = events.compactMap { if case .record(let r) = $0 { return r.offset } else { return nil } }
        #expect(offsets == [7, 8, 9])
    }

    @Test func anOffsetOutsideTheLogIsReportedNotSkipped() async throws {
        let topic = "by-dev-rootcoord-dml_2"
        let cluster = try cluster(topics: [topic])
        for i in 0..<3 { try cluster.produce(topic: topic, value: [UInt8(i)]) }
        try cluster.flush()
        let reader = try reader(cluster)
        try reader.assign([TopicPosition(topic: topic, offset: .exact(50))])
        let events = try await drain(reader) { events in
            events.contains { if case .error = $0 { return true } else { return false } }
        }
        let errors = events.compactMap { if case .error(let e) = $0 { return e } else { return nil } }
        #expect(errors.first?.kind == .offsetOutOfRange, "\(events)")
        #expect(!events.contains { if case .record = $0 { return true } else { return false } })
    }

    @Test func badPropertyIsAConfigurationErrorNamingTheKey() {
        #expect {
            _ = try KafkaLogReader(
                configuration: KafkaReaderConfiguration(brokers: "127.0.0.1:1", properties: ["no.such.property": "1"]),
                logger: logger)
        } throws: { error in
            guard let error = error as? KafkaError else { return false }
            return error.kind == .configuration && error.message.contains("no.such.property")
        }
    }

    @Test func walReaderUntilEndDecodesEverythingAndStops() async throws {
        let topics = ["by-dev-rootcoord-dml_0", "by-dev-rootcoord-dml_1", "by-dev-rootcoord-dml_5"]
        let cluster = try cluster(topics: topics)
        var tick = Milvus_Proto_Msg_TimeTickMsg()
        tick.base = Fixtures.base(.timeTick, ts: 5)
        for (index, topic) in topics.enumerated() where index < 2 {
            let insert = Fixtures.insert(
                pks: Fixtures.longs(100, [Int64(index * 10), Int64(index * 10 + 1)]), others: [], rows: 2)
            try cluster.produce(topic: topic, value: Array(try insert.serializedData()))
            try cluster.produce(topic: topic, value: Array(try tick.serializedData()))
            try cluster.produce(topic: topic, value: [0xde, 0xad])
        }
        try cluster.flush()
        let app = buildApplication(AuditorConfiguration(brokers: cluster.bootstrapServers, logger: logger))
        let reader = try app.walReader(fromBeginning: true, untilEnd: true)
        try await reader.start()
        #expect(reader.topics == topics.sorted())
        var messages: [WALMessage] = []
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline, let batch = try await reader.next() { messages += batch }
        #expect(reader.finished)
        #expect(messages.count == 6)
        let pks = messages.flatMap { m -> [PrimaryKey] in
            if case .insert(let insert) = m.body { return insert.rows.map(\.pk) } else { return [] }
        }
        #expect(Set(pks) == [.int(0), .int(1), .int(10), .int(11)])
        let undecodable = messages.filter { $0.body.kindName == "undecodable" }
        #expect(undecodable.map(\.offset) == [2, 2])
    }
}
