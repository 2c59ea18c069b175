import AuditorCore
import CRdKafka

/// A librdkafka error as data: a stable kind, librdkafka's code and name, and where it happened.
public struct KafkaError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        /// A bad configuration property: fix the flag or config key and restart.
        case configuration
        /// The client instance is unusable (librdkafka fatal error, invalid argument, auth).
        case fatal
        /// Broker down, transport failure, timeout: the operation can be tried again.
        case retriable
        /// The requested offset is outside the log (below the low watermark or past the end).
        case offsetOutOfRange
        /// The topic or partition does not exist (yet).
        case unknownTopic
    }

    public var kind: Kind
    /// `rd_kafka_resp_err_t` raw value (0 for configuration errors).
    public var code: Int32
    public var message: String
    public var topic: String?
    public var partition: Int32?
    public var offset: Int64?

    public init(
        kind: Kind, code: Int32, message: String, topic: String? = nil, partition: Int32? = nil, offset: Int64? = nil
    ) {
        self.kind = kind
        self.code = code
        self.message = message
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    public var isFatal: Bool { kind == .fatal || kind == .configuration }
    public var isRetriable: Bool { !isFatal }

    public var description: String {
        var where_ = ""
        if let topic { where_ += " topic=\(topic)" }
        if let partition { where_ += " partition=\(partition)" }
        if let offset { where_ += " offset=\(offset)" }
        return "kafka \(kind.rawValue) error (\(Self.name(code))): \(message)\(where_)"
    }

    static func name(_ code: Int32) -> String {
        guard code != 0, let cName = rd_kafka_err2name(rd_kafka_resp_err_t(code)) else { return "NO_ERROR" }
        return String(cString: cName)
    }

    /// Classifies a librdkafka response code.
    static func from(
        code raw: rd_kafka_resp_err_t, message: String? = nil, fatal: Bool = false, topic: String? = nil,
        partition: Int32? = nil, offset: Int64? = nil
    ) -> KafkaError {
        let text = message ?? String(cString: rd_kafka_err2str(raw))
        let kind: Kind
        switch raw {
        case _ where fatal:
            kind = .fatal
        case RD_KAFKA_RESP_ERR__FATAL, RD_KAFKA_RESP_ERR__INVALID_ARG, RD_KAFKA_RESP_ERR__AUTHENTICATION,
            RD_KAFKA_RESP_ERR__SSL, RD_KAFKA_RESP_ERR__NOT_IMPLEMENTED, RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE:
            kind = .fatal
        case RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE, RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
            kind = .offsetOutOfRange
        case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART, RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
            RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
            kind = .unknownTopic
        default:
            kind = .retriable
        }
        return KafkaError(
            kind: kind, code: raw.rawValue, message: text, topic: topic, partition: partition, offset: offset)
    }
}
