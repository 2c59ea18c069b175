import AuditorCore

/// One Kafka record, copied out of librdkafka's buffers.
public struct KafkaRecord: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// Milliseconds since the epoch (CreateTime or LogAppendTime), nil when the broker gave none.
    public var timestampMs: Int64?
    public var key: [UInt8]?
    public var headers: [KafkaHeader]
    /// nil for a record with a NULL value (a tombstone in Kafka terms).
    public var value: [UInt8]?

    public init(
        topic: String, partition: Int32 = 0, offset: Int64, timestampMs: Int64? = nil, key: [UInt8]? = nil,
        headers: [KafkaHeader] = [], value: [UInt8]?
    ) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestampMs = timestampMs
        self.key = key
        self.headers = headers
        self.value = value
    }

    /// The first header with this name, as UTF-8 text (nil if absent, NULL or not UTF-8).
    public func header(_ name: String) -> String? {
        guard let header = headers.first(where: { $0.name == name }), let value = header.value else { return nil }
        return String(validating: value, as: UTF8.self)
    }
}

public struct KafkaHeader: Sendable, Equatable {
    public var name: String
    public var value: [UInt8]?
    public init(name: String, value: [UInt8]?) {
        self.name = name
        self.value = value
    }
}

/// What one poll of the log reader yields, in the order librdkafka delivered it.
public enum KafkaEvent: Sendable, Equatable {
    case record(KafkaRecord)
    /// The reader reached the end of this partition's log; `offset` is the next offset to be written.
    case partitionEnd(topic: String, partition: Int32, offset: Int64)
    /// A per-partition error; the reader keeps going (fatal errors are thrown instead).
    case error(KafkaError)
}

/// Where to start reading a partition.
public enum KafkaOffset: Sendable, Hashable {
    case beginning
    case end
    case exact(Int64)

    var raw: Int64 {
        switch self {
        case .beginning: return -2  // RD_KAFKA_OFFSET_BEGINNING
        case .end: return -1  // RD_KAFKA_OFFSET_END
        case .exact(let offset): return offset
        }
    }
}

public struct TopicPosition: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: KafkaOffset
    public init(topic: String, partition: Int32 = 0, offset: KafkaOffset) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }
}

/// Low watermark = first offset still in the log; high watermark = next offset to be written.
public struct Watermarks: Sendable, Hashable, CustomStringConvertible {
    public var low: Int64
    public var high: Int64
    public init(low: Int64, high: Int64) {
        self.low = low
        self.high = high
    }
    public var description: String { "[\(low), \(high))" }
}
