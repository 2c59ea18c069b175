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
        let topics = try await log.pchannelTopics(prefix: "by-dev-rootcoord-dml")
        let topic = try #require(topics.first, "the cluster has DML topics")
        let config = try await log.topicConfig(topic: topic, timeout: .seconds(10))
        // Tansu answers DescribeConfigs without retention.ms (auditd then uses --kafka-retention); a broker
        // that says it gives milliseconds, -1 for unlimited.
        if let retention = config["retention.ms"] { #expect(Int64(retention) != nil, "\(config)") }
    }
}
