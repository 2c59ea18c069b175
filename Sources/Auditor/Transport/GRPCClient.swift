import AuditorCore
import CCurl
import Dispatch
import Foundation
import SwiftProtobuf
import Synchronization

/// A failed call, typed by what went wrong on the way — never by its text.
public struct TransportError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Our deadline passed (libcurl's timeout) or the server answered grpc-status 4 (DEADLINE_EXCEEDED).
        case deadlineExceeded
        /// No connection (refused, reset, unreachable) or grpc-status 14 (UNAVAILABLE).
        case unavailable
        /// Any other non-OK grpc-status.
        case grpcStatus(Int)
        /// A plain HTTP answer other than 200 (etcd's JSON gateway).
        case httpStatus(Int)
        /// An answer that is not a well-formed gRPC message (short, truncated, compressed, undecodable).
        case malformedResponse
    }

    public var kind: Kind
    public var method: String
    public var target: String
    public var message: String

    public init(_ kind: Kind, method: String, target: String, message: String) {
        self.kind = kind
        self.method = method
        self.target = target
        self.message = message
    }

    /// The grpc-status this failure maps to (4 for a deadline, 14 for no connection), nil for malformed answers.
    public var grpcStatus: Int? {
        switch kind {
        case .deadlineExceeded: return 4
        case .unavailable: return 14
        case .grpcStatus(let status): return status
        case .httpStatus, .malformedResponse: return nil
        }
    }

    public var isDeadlineExceeded: Bool { kind == .deadlineExceeded }

    public var description: String {
        let target = Redaction.url(target)
        if case .httpStatus(let status) = kind { return "\(method) at \(target): HTTP \(status): \(message)" }
        return "grpc \(method) at \(target): " + (grpcStatus.map { "status \($0): " } ?? "") + message
    }
}

/// How a unary gRPC call reaches a server: libcurl over HTTP/2 in production (`CurlTransport`); a test or an
/// embedder may put anything that moves bytes in its place.
public protocol GRPCTransport: Sendable {
    /// Sends one serialized request to `method` at `target` (HOST:PORT); returns the serialized response.
    func unary(target: String, method: String, payload: [UInt8], timeout: Duration, metadata: [String: String])
        async throws -> [UInt8]
}

/// Unary gRPC calls for one server, over a `GRPCTransport`; requests and answers as protobuf messages.
public struct GRPCClient: Sendable {
    public let target: String
    public let transport: any GRPCTransport

    public init(target: String, transport: any GRPCTransport = CurlTransport.shared) {
        self.target = target
        self.transport = transport
    }

    public func unary<Response: SwiftProtobuf.Message>(
        _ method: String, _ request: some SwiftProtobuf.Message, as: Response.Type, timeout: Duration = .seconds(10),
        metadata: [String: String] = [:]
    ) async throws -> Response {
        let payload: [UInt8] = try request.serializedBytes()
        let bytes = try await transport.unary(
            target: target, method: method, payload: payload, timeout: timeout, metadata: metadata)
        do {
            return try Response(serializedBytes: bytes)
        } catch {
            throw TransportError(
                .malformedResponse, method: method, target: target, message: "undecodable response: \(error)")
        }
    }
}

/// gRPC over HTTP/2 with libcurl (prior knowledge, no TLS): the only libcurl user in auditd. Each call runs
/// `curl_easy_perform` on a dedicated queue, never on Swift's cooperative pool.
public final class CurlTransport: GRPCTransport {
    public static let shared = CurlTransport()
    private let queue = DispatchQueue(label: "auditd.grpc", attributes: .concurrent)

    public init() {
        _ = Self.globalInitOnce
    }

    static let globalInitOnce: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public func unary(target: String, method: String, payload: [UInt8], timeout: Duration, metadata: [String: String])
        async throws -> [UInt8]
    {
        // A cancelled task (a service shutting down) aborts the transfer within about a second.
        let cancelled = CancelFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                queue.async {
                    continuation.resume(
                        with: Result {
                            try Self.perform(
                                target: target, method: method, payload: payload, timeout: timeout,
                                metadata: metadata, cancelled: cancelled)
                        })
                }
            }
        } onCancel: {
            cancelled.set()
        }
    }

    /// Blocking: one HTTP/2 POST, the gRPC framing, grpc-status from the trailers.
    static func perform(
        target: String, method: String, payload: [UInt8], timeout: Duration, metadata: [String: String],
        cancelled: CancelFlag = CancelFlag()
    ) throws -> [UInt8] {
        guard let easy = CurlEasy() else {
            throw TransportError(.unavailable, method: method, target: target, message: "curl_easy_init failed")
        }
        var framed: [UInt8] = [0]
        let length = UInt32(payload.count)
        framed += [
            UInt8(length >> 24), UInt8((length >> 16) & 0xff), UInt8((length >> 8) & 0xff), UInt8(length & 0xff),
        ]
        framed += payload
        let ms = max(1, Int(timeout.milliseconds))
        var headerLines = [
            "content-type: application/grpc", "te: trailers", "grpc-timeout: \(ms)m", "user-agent: auditd",
        ]
        for (key, value) in metadata.sorted(by: { $0.key < $1.key }) { headerLines.append("\(key): \(value)") }
        let url = "http://\(target)/\(method.hasPrefix("/") ? String(method.dropFirst()) : method)"
        let exchange = CurlEasy.Exchange()
        exchange.stopped = { cancelled.isSet }
        let (code, _) = easy.post(
            url: url, body: framed, headers: headerLines, http2: true, timeoutMs: ms + 1000,
            connectTimeoutMs: min(ms, 3000), exchange: exchange)
        if code == CURLE_ABORTED_BY_CALLBACK { throw CancellationError() }
        guard code == CURLE_OK else {
            throw TransportError(
                code == CURLE_OPERATION_TIMEDOUT ? .deadlineExceeded : .unavailable, method: method, target: target,
                message: String(cString: curl_easy_strerror(code)))
        }
        if let status = exchange.headers["grpc-status"].flatMap(Int.init), status != 0 {
            let message = exchange.headers["grpc-message"].map { $0.removingPercentEncoding ?? $0 } ?? ""
            let kind: TransportError.Kind =
                switch status {
                case 4: .deadlineExceeded
                case 14: .unavailable
                default: .grpcStatus(status)
                }
            throw TransportError(kind, method: method, target: target, message: message)
        }
        return try GRPCFrame.message(in: exchange.body, method: method, target: target)
    }
}

/// The gRPC length-prefixed message framing of a response body.
public enum GRPCFrame {
    /// The one uncompressed message in `body`.
    public static func message(in body: [UInt8], method: String, target: String) throws -> [UInt8] {
        func malformed(_ message: String) -> TransportError {
            TransportError(.malformedResponse, method: method, target: target, message: message)
        }
        guard body.count >= 5 else { throw malformed("short response (\(body.count) bytes)") }
        guard body[0] == 0 else { throw malformed("compressed response not supported") }
        let size = Int(body[1]) << 24 | Int(body[2]) << 16 | Int(body[3]) << 8 | Int(body[4])
        guard body.count >= 5 + size else { throw malformed("truncated response") }
        return Array(body[5..<(5 + size)])
    }
}

/// The one owner of a `CURL *` easy handle (and the header list of its current request).
final class CurlEasy {
    private let handle: UnsafeMutableRawPointer

    init?() {
        guard let handle = curl_easy_init() else { return nil }
        self.handle = handle
    }

    deinit { curl_easy_cleanup(handle) }

    /// The HTTP status of the last transfer.
    func statusCode(_ status: inout Int) {
        var code = 0
        _ = auditd_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
        status = code
    }

    /// What came back: the body and the response headers (trailers included), lower-cased names. A streamed
    /// exchange hands each chunk to `onData` instead of keeping it (false: abort the transfer), and is aborted
    /// when `stopped` turns true (asked about once a second while idle).
    final class Exchange {
        var body: [UInt8] = []
        var headers: [String: String] = [:]
        var onData: (([UInt8]) -> Bool)?
        var stopped: (() -> Bool)?
    }

    /// Blocking: one POST. HTTP/2 with prior knowledge (gRPC) or HTTP/1.1.
    func post(
        url: String, body payload: [UInt8]?, headers: [String], http2: Bool, timeoutMs: Int, connectTimeoutMs: Int,
        exchange: Exchange = Exchange()
    ) -> (CURLcode, Exchange) {
        let code: CURLcode = with(headers: headers) { handle, headerList in
            url.withCString { urlPointer in
                (payload ?? []).withUnsafeBytes { body in
                    _ = auditd_curl_setopt_pointer(handle, CURLOPT_URL, urlPointer)
                    if http2 {
                        _ = auditd_curl_setopt_long(
                            handle, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE))
                    }
                    if payload != nil {  // nil: a GET
                        _ = auditd_curl_setopt_long(handle, CURLOPT_POST, 1)
                        _ = auditd_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, body.baseAddress)
                        _ = auditd_curl_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
                    }
                    _ = auditd_curl_setopt_pointer(handle, CURLOPT_HTTPHEADER, headerList)
                    _ = auditd_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
                    _ = auditd_curl_setopt_long(handle, CURLOPT_TIMEOUT_MS, timeoutMs)
                    _ = auditd_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, connectTimeoutMs)
                    // With the default 16 KB receive buffer, libcurl 7.88 (Debian 12) stalled ≈ 200 ms in most
                    // HTTP/2 answers above ≈ 200 KB (replica pages: 8,000 pks or 500 2048-d rows) — a 200,000-row
                    // pk read took 3.7 s of which 3.4 s waiting; with 1 MB: 1.06 s, no stall (docs/benchmarks.md).
                    _ = auditd_curl_setopt_long(handle, CURLOPT_BUFFERSIZE, 1 << 20)
                    let context = Unmanaged.passUnretained(exchange).toOpaque()
                    _ = auditd_curl_setopt_callback(handle, CURLOPT_WRITEFUNCTION) { data, size, count, user in
                        guard let data, let user else { return 0 }
                        let exchange = Unmanaged<Exchange>.fromOpaque(user).takeUnretainedValue()
                        let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
                        if let onData = exchange.onData { return onData(Array(bytes)) ? size * count : 0 }
                        exchange.body.append(contentsOf: bytes)
                        return size * count
                    }
                    if exchange.stopped != nil {
                        _ = auditd_curl_setopt_long(handle, CURLOPT_NOPROGRESS, 0)
                        _ = auditd_curl_setopt_pointer(handle, CURLOPT_XFERINFODATA, context)
                        _ = auditd_curl_setopt_xferinfo(handle) { user, _, _, _, _ in
                            guard let user else { return 0 }
                            let exchange = Unmanaged<Exchange>.fromOpaque(user).takeUnretainedValue()
                            return exchange.stopped?() == true ? 1 : 0
                        }
                    }
                    _ = auditd_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context)
                    _ = auditd_curl_setopt_callback(handle, CURLOPT_HEADERFUNCTION) { data, size, count, user in
                        guard let data, let user else { return 0 }
                        let exchange = Unmanaged<Exchange>.fromOpaque(user).takeUnretainedValue()
                        let line = String(
                            decoding: UnsafeRawBufferPointer(start: data, count: size * count), as: UTF8.self)
                        if let colon = line.firstIndex(of: ":") {
                            let key = line[..<colon].lowercased()
                            let value = line[line.index(after: colon)...].trimmingCharacters(
                                in: .whitespacesAndNewlines)
                            exchange.headers[key] = value
                        }
                        return size * count
                    }
                    _ = auditd_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context)
                    return curl_easy_perform(handle)
                }
            }
        }
        return (code, exchange)
    }

    /// Runs `body` with the handle and a header list that lives exactly as long as the call.
    func with<T>(headers: [String], _ body: (UnsafeMutableRawPointer, UnsafeMutablePointer<curl_slist>?) -> T) -> T {
        var list: UnsafeMutablePointer<curl_slist>?
        for header in headers { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }
        return body(handle, list)
    }
}

/// Plain HTTP/1.1 JSON POSTs (etcd's v3 JSON gateway, Alertmanager). Blocking work runs on its own queue.
public final class HTTPClient: Sendable {
    private let queue = DispatchQueue(label: "auditd.http", attributes: .concurrent)

    public init() {
        _ = CurlTransport.globalInitOnce
    }

    /// GETs `url`; returns the status code and the body. Transport failures throw.
    public func get(_ url: String, timeout: Duration = .seconds(5)) async throws -> (Int, [UInt8]) {
        try await request(url, body: nil, timeout: timeout)
    }

    /// POSTs `body` to `url`; returns the status code and the body. Transport failures throw.
    public func post(_ url: String, json body: [UInt8], timeout: Duration = .seconds(5)) async throws -> (Int, [UInt8])
    {
        try await request(url, body: body, timeout: timeout)
    }

    func request(_ url: String, body: [UInt8]?, timeout: Duration) async throws -> (Int, [UInt8]) {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(
                    with: Result {
                        guard let easy = CurlEasy() else {
                            throw TransportError(
                                .unavailable, method: body == nil ? "GET" : "POST", target: url,
                                message: "curl_easy_init failed")
                        }
                        let ms = max(1, Int(timeout.milliseconds))
                        let (code, exchange) = easy.post(
                            url: url, body: body, headers: ["content-type: application/json", "user-agent: auditd"],
                            http2: false, timeoutMs: ms, connectTimeoutMs: min(ms, 3000))
                        guard code == CURLE_OK else {
                            throw TransportError(
                                code == CURLE_OPERATION_TIMEDOUT ? .deadlineExceeded : .unavailable,
                                method: body == nil ? "GET" : "POST", target: url,
                                message: String(cString: curl_easy_strerror(code)))
                        }
                        var status = 0
                        easy.statusCode(&status)
                        return (status, exchange.body)
                    })
            }
        }
    }

    /// A long-lived POST whose answer is a stream (etcd's watch): each chunk of the body goes to `onData` as it
    /// arrives, until the server ends it, `onData` returns false, or the calling task is cancelled (noticed
    /// within about a second). Runs on its own thread, never on the cooperative pool. Returns the HTTP
    /// status; a transfer that failed (not one stopped on purpose) throws.
    public func stream(
        _ url: String, json body: [UInt8], connectTimeout: Duration = .seconds(3),
        onData: @escaping @Sendable ([UInt8]) -> Bool
    ) async throws -> Int {
        let cancelled = CancelFlag()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let thread = Thread {
                    continuation.resume(
                        with: Result {
                            guard let easy = CurlEasy() else {
                                throw TransportError(
                                    .unavailable, method: "POST", target: url, message: "curl_easy_init failed")
                            }
                            let exchange = CurlEasy.Exchange()
                            var stoppedByUs = false
                            exchange.onData = { chunk in
                                if cancelled.isSet || !onData(chunk) {
                                    stoppedByUs = true
                                    return false
                                }
                                return true
                            }
                            exchange.stopped = {
                                if cancelled.isSet { stoppedByUs = true }
                                return cancelled.isSet
                            }
                            let (code, _) = easy.post(
                                url: url, body: body,
                                headers: ["content-type: application/json", "user-agent: auditd"], http2: false,
                                timeoutMs: 0, connectTimeoutMs: max(1, Int(connectTimeout.milliseconds)),
                                exchange: exchange)
                            var status = 0
                            easy.statusCode(&status)
                            guard code == CURLE_OK || stoppedByUs else {
                                throw TransportError(
                                    .unavailable, method: "POST", target: url,
                                    message: String(cString: curl_easy_strerror(code)))
                            }
                            return status
                        })
                }
                thread.name = "auditd.http.stream"
                thread.start()
            }
        } onCancel: {
            cancelled.set()
        }
    }
}

/// A flag set once from any thread (task cancellation) and read by a blocking C callback.
final class CancelFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}
