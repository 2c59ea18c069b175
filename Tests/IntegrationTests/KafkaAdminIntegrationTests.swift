import Foundation
import Logging
import Testing

@testable import Auditor
@testable import AuditorKafka

/// DescribeConfigs against the real broker (the retention headroom asks it for `retention.ms`).
@Suite(
    "Real cluster: describing DML topics",
    .enabled(
        if: ProcessInfo.processInfo.environment["AUDITD_BROKERS"] != nil, "needs dev/cluster up + dev/cluster exec"))
struct KafkaAdminIntegrationTests {
    @Test func aDMLTopicIsDescribedAndItsRetentionIfAnyIsANumber() async throws {
        let brokers = try #require(ProcessInfo.processInfo.environment["AUDITD_BROKERS"])
        let log = try KafkaLogReader(
            configuration: KafkaReaderConfiguration(brokers: brokers), logger: Logger(label: "admin-test"))
        // A fresh cluster has DML topics only once Milvus wrote to them (a collection was created): wait a little,
        // else describe a topic of our own on the same broker (DescribeConfigs is what is under test).
        var topics: [String] = []
        let deadline = ContinuousClock.now + .seconds(20)
        while topics.isEmpty && ContinuousClock.now < deadline {
            topics = (try? await log.pchannelTopics(prefix: "by-dev-rootcoord-dml", timeout: .seconds(5))) ?? []
            if topics.isEmpty { try await Task.sleep(for: .seconds(1)) }
        }
        if topics.isEmpty {
            let producer = try KafkaProducer(brokers: brokers)
            try producer.produce(topic: "auditd-it-describe", value: Array("x".utf8))
            try producer.flush()
            topics = ["auditd-it-describe"]
        }
        let topic = try #require(topics.first)
        let config = try await log.topicConfig(topic: topic, timeout: .seconds(10))
        // Tansu answers DescribeConfigs without retention.ms (auditd then uses --kafka-retention); a broker
        // that says it gives milliseconds, -1 for unlimited.
        if let retention = config["retention.ms"] { #expect(Int64(retention) != nil, "\(config)") }
    }
}
