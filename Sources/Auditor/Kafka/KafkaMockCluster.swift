import CRdKafka
import Logging

/// librdkafka's in-process mock cluster plus a producer into it: a broker without a broker process,
/// for unit tests and benchmarks. Produces one record per batch so ListOffsets is exact.
public final class KafkaMockCluster: @unchecked Sendable {
    private let producer: RdKafkaHandle
    private let cluster: OpaquePointer
    public let bootstrapServers: String
    private let logger: Logger

    public init(brokers: Int32 = 1, logger: Logger = Logger(label: "auditd.kafka.mock")) throws(KafkaError) {
        // The producer is created against the mock cluster that it itself hosts.
        let owner = try RdKafkaHandle(role: .producer, properties: [("log.queue", "true")])
        guard let cluster = rd_kafka_mock_cluster_new(owner.pointer, brokers) else {
            throw KafkaError(kind: .fatal, code: 0, message: "rd_kafka_mock_cluster_new failed")
        }
        let servers = String(cString: rd_kafka_mock_cluster_bootstraps(cluster))
        self.cluster = cluster
        bootstrapServers = servers
        self.logger = logger
        ownerHandle = owner
        producer = try RdKafkaHandle(
            role: .producer,
            properties: [
                ("bootstrap.servers", servers), ("linger.ms", "0"), ("batch.num.messages", "1"),
                ("message.max.bytes", "10485760"), ("log.queue", "true"),
            ])
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
        let result: rd_kafka_resp_err_t = topic.withCString { topicName in
            let headerList = rd_kafka_headers_new(headers.count)
            for header in headers {
                if let value = header.value {
                    value.withUnsafeBytes { bytes in
                        _ = rd_kafka_header_add(headerList, header.name, -1, bytes.baseAddress, bytes.count)
                    }
                } else {
                    _ = rd_kafka_header_add(headerList, header.name, -1, nil, 0)
                }
            }
            var values: [rd_kafka_vu_t] = Array(repeating: rd_kafka_vu_t(), count: 5)
            values[0].vtype = RD_KAFKA_VTYPE_TOPIC
            values[0].u.cstr = topicName
            values[1].vtype = RD_KAFKA_VTYPE_PARTITION
            values[1].u.i32 = partition
            values[2].vtype = RD_KAFKA_VTYPE_MSGFLAGS
            values[2].u.i = RD_KAFKA_MSG_F_COPY
            values[3].vtype = RD_KAFKA_VTYPE_HEADERS
            values[3].u.headers = headerList
            values[4].vtype = RD_KAFKA_VTYPE_TIMESTAMP
            values[4].u.i64 = timestampMs ?? 0
            let produce = { (payload: UnsafeRawBufferPointer?) -> rd_kafka_resp_err_t in
                var all = values
                var valueSlot = rd_kafka_vu_t()
                valueSlot.vtype = RD_KAFKA_VTYPE_VALUE
                valueSlot.u.mem.ptr = payload.flatMap { UnsafeMutableRawPointer(mutating: $0.baseAddress) }
                valueSlot.u.mem.size = payload?.count ?? 0
                all.append(valueSlot)
                let error = all.withUnsafeBufferPointer {
                    rd_kafka_produceva(self.producer.pointer, $0.baseAddress, $0.count)
                }
                guard let error else { return RD_KAFKA_RESP_ERR_NO_ERROR }
                defer { rd_kafka_error_destroy(error) }
                // headers are owned by the failed message only on success
                rd_kafka_headers_destroy(headerList)
                return rd_kafka_error_code(error)
            }
            if let value {
                return value.withUnsafeBytes { produce($0) }
            }
            return produce(nil)
        }
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.from(code: result, topic: topic) }
        rd_kafka_poll(producer.pointer, 0)
    }

    /// Blocks until every queued record is delivered (call off the cooperative pool in async code).
    public func flush(timeoutMs: Int32 = 10_000) throws(KafkaError) {
        let result = rd_kafka_flush(producer.pointer, timeoutMs)
        _ = producer.drainEvents(logger: logger)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.from(code: result) }
    }
}
