import AuditorTransport
import MilvusProto

/// Milvus's own answer status (`common.Status`): the legacy `error_code`, the 2.3+ `code` and the reason.
public struct MilvusStatus: Sendable, Equatable {
    public var errorCode: Int32
    public var code: Int32
    public var reason: String

    public init(errorCode: Int32, code: Int32, reason: String) {
        self.errorCode = errorCode
        self.code = code
        self.reason = reason
    }

    init(_ status: Milvus_Proto_Milvus_Status) {
        self.init(errorCode: status.errorCode, code: status.code, reason: status.reason)
    }

    public var isSuccess: Bool { errorCode == 0 && code == 0 }

    /// The 2.3+ error code as a known case (nil for success and for codes auditd does not act on).
    public var error: MilvusErrorCode? { MilvusErrorCode(rawValue: code) }
}

/// The Milvus 2.3 error codes (pkg/util/merr) that auditd takes decisions on.
public enum MilvusErrorCode: Int32, Sendable {
    case serviceNotReady = 1
    case serviceUnavailable = 2
    case collectionNotFound = 100
    case collectionNotLoaded = 101
    /// GetReplicas of a collection that is not loaded.
    case replicaNotFound = 400
    /// A replica without a serving node: 2.3.5's proxy then fails GetReplicas as a whole.
    case replicaNotAvailable = 401
    case channelNotFound = 500
    case channelNotAvailable = 503
    case segmentNotFound = 600
    case segmentNotLoaded = 601
    case nodeNotFound = 901
    case nodeOffline = 902
    case nodeNotAvailable = 905

    /// No replica serves the collection because it is not loaded: nothing to audit.
    public var meansNotLoaded: Bool { self == .collectionNotLoaded || self == .replicaNotFound }
}

/// A Milvus call that reached Milvus and was refused, or whose request auditd could not build.
public struct MilvusError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Milvus answered with a non-success status.
        case status(MilvusStatus)
        /// A collection schema without a primary key field (nothing to read rows by).
        case schemaWithoutPrimaryKey
    }

    public var kind: Kind
    public var method: String
    public var target: String

    public init(_ kind: Kind, method: String, target: String) {
        self.kind = kind
        self.method = method
        self.target = target
    }

    /// The status Milvus answered with, if that is what went wrong.
    public var status: MilvusStatus? {
        if case .status(let status) = kind { return status }
        return nil
    }

    /// The QueryNode gave up waiting for the request's deadline itself (its context expired while the delegator
    /// waited for tsafe to reach T): the replica is lagging, as when the call's own deadline passes first.
    /// Measured: a QueryNode whose broker traffic was cut answered `1/10001: context deadline exceeded`.
    public var isDeadlineExceeded: Bool {
        status?.reason.localizedCaseInsensitiveContains("context deadline exceeded") == true
    }

    public var description: String {
        switch kind {
        case .status(let s):
            return "grpc \(method) at \(target): Milvus error \(s.errorCode)/\(s.code): \(s.reason)"
        case .schemaWithoutPrimaryKey:
            return "grpc \(method) at \(target): schema has no pk"
        }
    }

    /// Throws unless `status` is a success.
    static func check(_ status: Milvus_Proto_Milvus_Status, method: String, target: String) throws(MilvusError) {
        let status = MilvusStatus(status)
        guard status.isSuccess else { throw MilvusError(.status(status), method: method, target: target) }
    }
}
