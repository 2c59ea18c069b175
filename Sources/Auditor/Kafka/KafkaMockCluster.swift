import CRdKafka
import Logging

/// librdkafka's in-process mock cluster plus a producer into it: a broker without a broker process,
/// for unit tests and benchmarks. Produces one record per batch so ListOffsets is exact.
public final class KafkaMockCluster: @unchecked Sendable {
    private let producer: KafkaProducer
    private let cluster: OpaquePointer
    public let bootstrapServers: String

    public init(brokers: Int32 = 1, logger: Logger = Logger(label: "auditd.kafka.mock")) throws(KafkaError) {
        // The producer is created against the mock cluster that it itself hosts.
        let owner = try RdKafkaHandle(role: .producer, properties: [("log.queue", "true")])
        guard let cluster = rd_kafka_mock_cluster_new(owner.pointer, brokers) else {
            throw KafkaError(kind: .fatal, code: 0, message: "rd_kafka_mock_cluster_new failed")
        }
        let servers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        self.cluster = cluster
        bootstrapServers = servers
        ownerHandle = owner
        producer = try KafkaProducer(brokers: servers, logger: logger)
    }

    private let ownerHandle: RdKafkaHandle

    deinit {
        rd_kafka_mock_cluster_destroy(cluster)
    }

    public func createTopic(_ name: String, partitions: Int32 = 1) throws(KafkaError) {
        let result = rd_kafka_mock_topic_create(cluster, name, partitions, 1)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.from(code: result, topic: name) }
    }

    /// Queues one record; call `flush` to wait for delivery.
    public func produce(
        topic: String, partition: Int32 = 0, value: [UInt8]?, headers: [KafkaHeader] = [], timestampMs: Int64? = nil
    ) throws(KafkaError) {
        try producer.produce(
            topic: topic, partition: partition, value: value, headers: headers, timestampMs: timestampMs)
    }

    /// Blocks until every queued record is delivered (call off the cooperative pool in async code).
    public func flush(timeoutMs: Int32 = 10_000) throws(KafkaError) {
        try producer.flush(timeoutMs: timeoutMs)
    }
}
