import AuditorKafka
import Logging

/// librdkafka's in-process mock cluster plus a producer into it: a broker without a broker process,
/// for unit tests and benchmarks. Produces one record per batch so ListOffsets is exact.
public final class KafkaMockCluster: Sendable {
    private let cluster: RdKafkaMockCluster
    private let producer: KafkaProducer
    public var bootstrapServers: String { cluster.bootstrapServers }

    public init(brokers: Int32 = 1, logger: Logger = Logger(label: "auditd.kafka.mock")) throws(KafkaError) {
        // The producer is created against the mock cluster that its owner handle hosts.
        cluster = try RdKafkaMockCluster(brokers: brokers)
        producer = try KafkaProducer(brokers: cluster.bootstrapServers, logger: logger)
    }

    public func createTopic(_ name: String, partitions: Int32 = 1) throws(KafkaError) {
        try cluster.createTopic(name, partitions: partitions)
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
