import AuditorCore
import CRdKafka

/// The C-shaped owner of a librdkafka in-process mock cluster (`rd_kafka_mock_cluster_t`) and of the
/// handle that hosts it. Package-internal: `KafkaMockCluster` in AuditorTesting is the public double built on
/// it, so that only this target talks to librdkafka.
package final class RdKafkaMockCluster: @unchecked Sendable {
    private let owner: RdKafkaHandle
    private let cluster: OpaquePointer
    package let bootstrapServers: String

    package init(brokers: Int32) throws(KafkaError) {
        let owner = try RdKafkaHandle(role: .producer, properties: [("log.queue", "true")])
        guard let cluster = owner.withPointer({ rd_kafka_mock_cluster_new($0, brokers) }) else {
            throw KafkaError(kind: .fatal, code: 0, message: "rd_kafka_mock_cluster_new failed")
        }
        self.owner = owner
        self.cluster = cluster
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
    }

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
    }

    package func createTopic(_ name: String, partitions: Int32) throws(KafkaError) {
        let result = rd_kafka_mock_topic_create(cluster, name, partitions, 1)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.from(code: result, topic: name) }
    }
}
