import AuditorCore
import CRdKafka
import Logging

/// A plain producer for tools and tests (synthetic logs, the mock cluster). auditd itself never writes
/// to Milvus's topics. One record per batch by default, so ListOffsets stays exact on every broker.
public final class KafkaProducer: @unchecked Sendable {
    private let handle: RdKafkaHandle
    private let logger: Logger

    public init(brokers: String, properties: [String: String] = [:], logger: Logger = Logger(label: "auditd.producer"))
        throws(KafkaError)
    {
        var props: [(String, String)] = [
            ("bootstrap.servers", brokers), ("linger.ms", "0"), ("batch.num.messages", "1"),
            ("message.max.bytes", "10485760"), ("log.queue", "true"),
        ]
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            props.removeAll { $0.0 == key }
            props.append((key, value))
        }
        handle = try RdKafkaHandle(role: .producer, properties: props)
        self.logger = logger
    }

    /// Queues one record; call `flush` to wait for delivery. Waits for queue space when it is full.
    public func produce(
        topic: String, partition: Int32 = 0, value: [UInt8]?, headers: [KafkaHeader] = [], timestampMs: Int64? = nil
    ) throws(KafkaError) {
        while true {
            let result = send(
                topic: topic, partition: partition, value: value, headers: headers, timestampMs: timestampMs)
            if result == RD_KAFKA_RESP_ERR__QUEUE_FULL {
                _ = handle.withPointer { rd_kafka_poll($0, 10) }
                continue
            }
            guard result == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.from(code: result, topic: topic) }
            _ = handle.withPointer { rd_kafka_poll($0, 0) }
            return
        }
    }

    private func send(topic: String, partition: Int32, value: [UInt8]?, headers: [KafkaHeader], timestampMs: Int64?)
        -> rd_kafka_resp_err_t
    {
        topic.withCString { topicName in
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
            var values: [rd_kafka_vu_t] = Array(repeating: rd_kafka_vu_t(), count: 6)
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
            values[5].vtype = RD_KAFKA_VTYPE_VALUE
            let produce = { (payload: UnsafeRawBufferPointer?) -> rd_kafka_resp_err_t in
                var all = values
                all[5].u.mem.ptr = payload.flatMap { UnsafeMutableRawPointer(mutating: $0.baseAddress) }
                all[5].u.mem.size = payload?.count ?? 0
                let error = all.withUnsafeBufferPointer { list in
                    self.handle.withPointer { rd_kafka_produceva($0, list.baseAddress, list.count) }
                }
                guard let error else { return RD_KAFKA_RESP_ERR_NO_ERROR }
                defer { rd_kafka_error_destroy(error) }
                rd_kafka_headers_destroy(headerList)  // not taken over when producing failed
                return rd_kafka_error_code(error)
            }
            if let value { return value.withUnsafeBytes { produce($0) } }
            return produce(nil)
        }
    }

    /// Blocks until every queued record is delivered (call off the cooperative pool in async code).
    public func flush(timeoutMs: Int32 = 30_000) throws(KafkaError) {
        let result = handle.withPointer { rd_kafka_flush($0, timeoutMs) }
        _ = handle.drainEvents(logger: logger)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.from(code: result) }
    }
}
