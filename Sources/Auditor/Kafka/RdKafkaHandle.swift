import AuditorCore
import CRdKafka
import Logging
import Synchronization

/// The C-shaped layer: the one owner of an `rd_kafka_t` and its queues. Only this type frees them.
/// librdkafka handles are thread-safe; blocking calls on it are made from `BlockingExecutor`, never
/// from Swift's cooperative pool.
final class RdKafkaHandle: @unchecked Sendable {
    enum Role {
        case consumer
        case producer
    }

    private let pointer: OpaquePointer
    private let mainQueue: OpaquePointer
    /// The queue every assigned partition delivers into (nil for producers).
    let consumerQueue: OpaquePointer?
    /// Topic handles of started partitions, keyed by topic and partition; owned and freed here.
    private let started = Mutex<[TopicPartitionKey: TopicHandle]>([:])

    /// An `rd_kafka_topic_t` (thread-safe in librdkafka); freed only by `RdKafkaHandle`.
    struct TopicHandle: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    struct TopicPartitionKey: Hashable {
        var topic: String
        var partition: Int32
    }

    /// Builds the handle; on any failure everything already created is freed.
    init(role: Role, properties: [(String, String)]) throws(KafkaError) {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(kind: .fatal, code: 0, message: "rd_kafka_conf_new failed")
        }
        var errorText = [CChar](repeating: 0, count: 512)
        for (key, value) in properties {
            let result = rd_kafka_conf_set(conf, key, value, &errorText, errorText.count)
            if result != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                var reason = String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if Redaction.isSecret(property: key) { reason = Redaction.scrub(reason, secrets: [value]) }
                throw KafkaError(kind: .configuration, code: 0, message: "kafka property '\(key)': \(reason)")
            }
        }
        // Logs and errors become events on the main queue, drained into swift-log by `drainEvents`.
        rd_kafka_conf_set_events(conf, Int32(RD_KAFKA_EVENT_LOG | RD_KAFKA_EVENT_ERROR))
        let type = role == .consumer ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER
        guard let rk = rd_kafka_new(type, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)  // not taken over on failure
            let reason = String(decoding: errorText.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw KafkaError(kind: .configuration, code: 0, message: "rd_kafka_new: \(reason)")
        }
        pointer = rk
        rd_kafka_set_log_queue(rk, nil)  // route logs to the main queue
        mainQueue = rd_kafka_queue_get_main(rk)
        consumerQueue = role == .consumer ? rd_kafka_queue_new(rk) : nil
    }

    deinit {
        let topics = started.withLock { started in
            defer { started.removeAll() }
            return started
        }
        for (key, topic) in topics {
            rd_kafka_consume_stop(topic.pointer, key.partition)
            rd_kafka_topic_destroy(topic.pointer)
        }
        if let consumerQueue { rd_kafka_queue_destroy(consumerQueue) }
        rd_kafka_queue_destroy(mainQueue)
        rd_kafka_destroy(pointer)
    }

    /// Runs `body` with the `rd_kafka_t *`; the pointer must not escape it (only this type frees it).
    func withPointer<T>(_ body: (OpaquePointer) throws(KafkaError) -> T) throws(KafkaError) -> T {
        try body(pointer)
    }

    func withPointer<T>(_ body: (OpaquePointer) -> T) -> T {
        body(pointer)
    }

    /// Serves pending log and error events without blocking. Returns the errors (fatal ones included).
    func drainEvents(logger: Logger) -> [KafkaError] {
        var errors: [KafkaError] = []
        while let event = rd_kafka_queue_poll(mainQueue, 0) {
            switch Int32(rd_kafka_event_type(event)) {
            case Int32(RD_KAFKA_EVENT_LOG):
                var facility: UnsafePointer<CChar>?
                var text: UnsafePointer<CChar>?
                var level: Int32 = 6
                if rd_kafka_event_log(event, &facility, &text, &level) == 0 {
                    let message = text.map { String(cString: $0) } ?? ""
                    logger.log(
                        level: Self.logLevel(syslog: level), "\(message)",
                        metadata: ["kafka.facility": "\(facility.map { String(cString: $0) } ?? "?")"])
                }
            case Int32(RD_KAFKA_EVENT_ERROR):
                let code = rd_kafka_event_error(event)
                let text = rd_kafka_event_error_string(event).map { String(cString: $0) }
                let fatal = rd_kafka_event_error_is_fatal(event) != 0
                var error = KafkaError.from(code: code, message: text, fatal: fatal)
                if fatal, code == RD_KAFKA_RESP_ERR__FATAL {
                    var buffer = [CChar](repeating: 0, count: 512)
                    let original = rd_kafka_fatal_error(pointer, &buffer, buffer.count)
                    error.code = original.rawValue
                    error.message = String(
                        decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                }
                logger.log(
                    level: error.isFatal ? .error : .warning, "librdkafka error",
                    metadata: ["kafka.error": "\(error)"])
                errors.append(error)
            default:
                break
            }
            rd_kafka_event_destroy(event)
        }
        return errors
    }

    static func logLevel(syslog: Int32) -> Logger.Level {
        switch syslog {
        case ...2: return .critical
        case 3: return .error
        case 4: return .warning
        case 5: return .notice
        case 6: return .info
        default: return .debug
        }
    }

    /// Blocks up to `timeoutMs`: one batch from the consumer queue, bytes copied out before destroy.
    /// Up to `max` messages and about `maxBytes` of payload (at least one message): waits up to `timeoutMs`
    /// for the first, then takes what is queued without waiting.
    func consumeBatch(max: Int, maxBytes: Int = .max, timeoutMs: Int32) -> [KafkaEvent] {
        guard let consumerQueue, max > 0 else { return [] }
        var messages = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: max)
        // consume_batch_queue waits until `max` messages or the timeout: wait for the first message
        // only, then take one queued message after another until the count or the bytes are reached.
        let count = messages.withUnsafeMutableBufferPointer { buffer -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            let first = rd_kafka_consume_batch_queue(consumerQueue, Int32(timeoutMs), base, 1)
            guard first == 1 else { return first }
            var taken = 1
            var bytes = base.pointee?.pointee.len ?? 0
            while taken < max, bytes < maxBytes, rd_kafka_consume_batch_queue(consumerQueue, 0, base + taken, 1) == 1 {
                bytes += base[taken]?.pointee.len ?? 0
                taken += 1
            }
            return taken
        }
        if count < 0 {
            return [.error(KafkaError.from(code: rd_kafka_last_error()))]
        }
        var events: [KafkaEvent] = []
        events.reserveCapacity(count)
        for index in 0..<count {
            guard let message = messages[index] else { continue }
            events.append(Self.event(from: message))
            rd_kafka_message_destroy(message)
        }
        return events
    }

    private static func event(from message: UnsafeMutablePointer<rd_kafka_message_t>) -> KafkaEvent {
        let m = message.pointee
        let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
        if m.err == RD_KAFKA_RESP_ERR__PARTITION_EOF {
            return .partitionEnd(topic: topic, partition: m.partition, offset: m.offset)
        }
        if m.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            // For consumer errors the payload holds a human-readable reason.
            let text: String? =
                m.payload.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: m.len), as: UTF8.self) }
            return .error(
                KafkaError.from(code: m.err, message: text, topic: topic, partition: m.partition, offset: m.offset))
        }
        var timestampType = RD_KAFKA_TIMESTAMP_NOT_AVAILABLE
        let timestamp = rd_kafka_message_timestamp(message, &timestampType)
        var headers: [KafkaHeader] = []
        var headerList: OpaquePointer?
        if rd_kafka_message_headers(message, &headerList) == RD_KAFKA_RESP_ERR_NO_ERROR, let headerList {
            var index = 0
            var name: UnsafePointer<CChar>?
            var value: UnsafeRawPointer?
            var size = 0
            while rd_kafka_header_get_all(headerList, index, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR {
                let bytes = value.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) }
                headers.append(KafkaHeader(name: name.map { String(cString: $0) } ?? "", value: bytes))
                index += 1
            }
        }
        return .record(
            KafkaRecord(
                topic: topic,
                partition: m.partition,
                offset: m.offset,
                timestampMs: timestampType == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE ? nil : timestamp,
                key: m.key.map { Array(UnsafeRawBufferPointer(start: $0, count: m.key_len)) },
                headers: headers,
                value: m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: m.len)) }
            ))
    }

    /// Starts fetching partitions at explicit offsets into the one consumer queue. This is librdkafka's
    /// simple consumer: no consumer group at all, no coordinator, no commits, no rebalances.
    /// A partition already started is restarted at the new offset.
    func start(_ positions: [TopicPosition]) throws(KafkaError) {
        guard let consumerQueue else { throw KafkaError(kind: .fatal, code: 0, message: "not a consumer") }
        for position in positions {
            let key = TopicPartitionKey(topic: position.topic, partition: position.partition)
            stop(key)
            guard let topic = rd_kafka_topic_new(pointer, position.topic, nil) else {
                throw KafkaError.from(code: rd_kafka_last_error(), topic: position.topic)
            }
            if rd_kafka_consume_start_queue(topic, position.partition, position.offset.raw, consumerQueue) == -1 {
                let error = KafkaError.from(
                    code: rd_kafka_last_error(), topic: position.topic, partition: position.partition,
                    offset: position.offset.raw)
                rd_kafka_topic_destroy(topic)
                throw error
            }
            let handle = TopicHandle(pointer: topic)
            started.withLock { $0[key] = handle }
        }
    }

    func stop(_ positions: [TopicPosition]) {
        for position in positions { stop(TopicPartitionKey(topic: position.topic, partition: position.partition)) }
    }

    private func stop(_ key: TopicPartitionKey) {
        guard let topic = started.withLock({ $0.removeValue(forKey: key) }) else { return }
        rd_kafka_consume_stop(topic.pointer, key.partition)
        rd_kafka_topic_destroy(topic.pointer)
    }

    /// Blocking: ListOffsets for (topic, partition).
    func queryWatermarks(topic: String, partition: Int32, timeoutMs: Int32) throws(KafkaError) -> Watermarks {
        var low: Int64 = -1
        var high: Int64 = -1
        let result = rd_kafka_query_watermark_offsets(pointer, topic, partition, &low, &high, timeoutMs)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.from(code: result, topic: topic, partition: partition)
        }
        return Watermarks(low: low, high: high)
    }

    /// Blocking: a topic's configuration as the broker describes it (DescribeConfigs); empty where the broker
    /// answers without entries. Every admin object is created and destroyed within this call.
    func describeTopicConfig(topic: String, timeoutMs: Int32) throws(KafkaError) -> [String: String] {
        guard let resource = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic) else {
            throw KafkaError(kind: .fatal, code: 0, message: "rd_kafka_ConfigResource_new failed")
        }
        defer { rd_kafka_ConfigResource_destroy(resource) }
        guard let queue = rd_kafka_queue_new(pointer) else {
            throw KafkaError(kind: .fatal, code: 0, message: "rd_kafka_queue_new failed")
        }
        defer { rd_kafka_queue_destroy(queue) }
        guard let options = rd_kafka_AdminOptions_new(pointer, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS) else {
            throw KafkaError(kind: .fatal, code: 0, message: "rd_kafka_AdminOptions_new failed")
        }
        defer { rd_kafka_AdminOptions_destroy(options) }
        var errorText = [CChar](repeating: 0, count: 256)
        _ = rd_kafka_AdminOptions_set_request_timeout(options, timeoutMs, &errorText, errorText.count)
        var resources: [OpaquePointer?] = [resource]
        rd_kafka_DescribeConfigs(pointer, &resources, 1, options, queue)
        guard let event = rd_kafka_queue_poll(queue, timeoutMs + 1000) else {
            throw KafkaError(kind: .retriable, code: 0, message: "DescribeConfigs of \(topic): no answer in time")
        }
        defer { rd_kafka_event_destroy(event) }
        let error = rd_kafka_event_error(event)
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
            throw KafkaError.from(code: error, topic: topic, partition: -1)
        }
        guard let result = rd_kafka_event_DescribeConfigs_result(event) else { return [:] }
        var count = 0
        guard let described = rd_kafka_DescribeConfigs_result_resources(result, &count) else { return [:] }
        var config: [String: String] = [:]
        for index in 0..<count {
            guard let resource = described[index], rd_kafka_ConfigResource_error(resource) == RD_KAFKA_RESP_ERR_NO_ERROR
            else { continue }
            var entries = 0
            guard let list = rd_kafka_ConfigResource_configs(resource, &entries) else { continue }
            for entry in 0..<entries {
                guard let item = list[entry], let name = rd_kafka_ConfigEntry_name(item) else { continue }
                config[String(cString: name)] = rd_kafka_ConfigEntry_value(item).map { String(cString: $0) } ?? ""
            }
        }
        return config
    }

    /// Blocking: the watermarks of partition `partition` of many topics in two ListOffsets requests per
    /// broker (earliest, latest) instead of two per topic. A topic whose query failed is absent.
    func queryWatermarks(topics: [String], partition: Int32, timeoutMs: Int32) throws(KafkaError) -> [String:
        Watermarks]
    {
        guard !topics.isEmpty else { return [:] }
        func listOffsets(_ special: Int64) throws(KafkaError) -> [String: Int64] {
            guard let list = rd_kafka_topic_partition_list_new(Int32(topics.count)) else { return [:] }
            defer { rd_kafka_topic_partition_list_destroy(list) }
            for topic in topics {
                rd_kafka_topic_partition_list_add(list, topic, partition).pointee.offset = special
            }
            let result = rd_kafka_offsets_for_times(pointer, list, timeoutMs)
            guard result == RD_KAFKA_RESP_ERR_NO_ERROR else { throw KafkaError.from(code: result) }
            var offsets: [String: Int64] = [:]
            for index in 0..<Int(list.pointee.cnt) {
                let element = list.pointee.elems[index]
                guard element.err == RD_KAFKA_RESP_ERR_NO_ERROR, element.offset >= 0 else { continue }
                offsets[String(cString: element.topic)] = element.offset
            }
            return offsets
        }
        let low = try listOffsets(Int64(RD_KAFKA_OFFSET_BEGINNING))
        let high = try listOffsets(Int64(RD_KAFKA_OFFSET_END))
        var result: [String: Watermarks] = [:]
        for topic in topics {
            if let l = low[topic], let h = high[topic] { result[topic] = Watermarks(low: l, high: h) }
        }
        return result
    }

    /// Non-blocking: the watermarks from the last fetch response of an assigned partition.
    func fetchedWatermarks(topic: String, partition: Int32) -> Watermarks? {
        var low: Int64 = -1
        var high: Int64 = -1
        let result = rd_kafka_get_watermark_offsets(pointer, topic, partition, &low, &high)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 else { return nil }
        return Watermarks(low: max(low, 0), high: high)
    }

    /// Blocking: every topic name the cluster reports, with its partition count.
    func listTopics(timeoutMs: Int32) throws(KafkaError) -> [(name: String, partitions: Int32)] {
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let result = rd_kafka_metadata(pointer, 1, nil, &metadata, timeoutMs)
        guard result == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw KafkaError.from(code: result)
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        let md = metadata.pointee
        var topics: [(String, Int32)] = []
        for index in 0..<Int(md.topic_cnt) {
            let topic = md.topics[index]
            guard topic.err == RD_KAFKA_RESP_ERR_NO_ERROR, let name = topic.topic else { continue }
            topics.append((String(cString: name), topic.partition_cnt))
        }
        return topics
    }
}

/// librdkafka's version as loaded at run time (may differ from the headers we built against).
public enum KafkaLibrary {
    public static var runtimeVersion: String { String(cString: rd_kafka_version_str()) }
    /// librdkafka's version in the headers auditd was built against.
    public static var headerVersion: String {
        let v = Int(RD_KAFKA_VERSION)
        return "\((v >> 24) & 0xff).\((v >> 16) & 0xff).\((v >> 8) & 0xff)"
    }
}
