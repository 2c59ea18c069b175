import CCurl
import Dispatch
import Foundation
import SwiftProtobuf

/// A gRPC error: transport failure (`status` nil) or a non-OK grpc-status with its message.
public struct GRPCError: Error, Sendable, CustomStringConvertible {
    public var method: String
    public var target: String
    /// grpc-status (4 = DEADLINE_EXCEEDED, 14 = UNAVAILABLE, …); nil for transport errors.
    public var status: Int?
    public var message: String
    public var description: String {
        "grpc \(method) at \(target): " + (status.map { "status \($0): " } ?? "") + message
    }
    public var isDeadlineExceeded: Bool { status == 4 || message.contains("Timeout") || message.contains("timed out") }
}

/// Unary gRPC calls over HTTP/2 with libcurl (prior knowledge, no TLS): the only libcurl user in auditd.
/// Each call runs `curl_easy_perform` on a dedicated queue, never on Swift's cooperative pool.
public final class GRPCClient: Sendable {
    public let target: String
    private let queue = DispatchQueue(label: "auditd.grpc", attributes: .concurrent)

    public init(target: String) {
        self.target = target
        _ = Self.globalInitOnce
    }

    static let globalInitOnce: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    public func unary<Response: SwiftProtobuf.Message>(
        _ method: String, _ request: some SwiftProtobuf.Message, as: Response.Type, timeout: Duration = .seconds(10),
        metadata: [String: String] = [:]
    ) async throws -> Response {
        let payload: [UInt8] = try request.serializedBytes()
        let target = target
        let bytes: [UInt8] = try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(
                    with: Result {
                        try Self.perform(
                            target: target, method: method, payload: payload, timeout: timeout, metadata: metadata)
                    })
            }
        }
        do {
            return try Response(serializedBytes: bytes)
        } catch {
            throw GRPCError(method: method, target: target, status: nil, message: "undecodable response: \(error)")
        }
    }

    /// Blocking: one HTTP/2 POST, the gRPC framing, grpc-status from the trailers.
    static func perform(target: String, method: String, payload: [UInt8], timeout: Duration, metadata: [String: String])
        throws -> [UInt8]
    {
        guard let easy = CurlEasy() else {
            throw GRPCError(method: method, target: target, status: nil, message: "curl_easy_init failed")
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
        let (code, exchange) = easy.post(
            url: url, body: framed, headers: headerLines, http2: true, timeoutMs: ms + 1000,
            connectTimeoutMs: min(ms, 3000))
        guard code == CURLE_OK else {
            let message = String(cString: curl_easy_strerror(code))
            throw GRPCError(
                method: method, target: target, status: code == CURLE_OPERATION_TIMEDOUT ? 4 : 14, message: message)
        }
        if let status = exchange.headers["grpc-status"].flatMap(Int.init), status != 0 {
            let message = exchange.headers["grpc-message"].map { $0.removingPercentEncoding ?? $0 } ?? ""
            throw GRPCError(method: method, target: target, status: status, message: message)
        }
        let body = exchange.body
        guard body.count >= 5 else {
            throw GRPCError(
                method: method, target: target, status: nil, message: "short response (\(body.count) bytes)")
        }
        guard body[0] == 0 else {
            throw GRPCError(method: method, target: target, status: nil, message: "compressed response not supported")
        }
        let size = Int(body[1]) << 24 | Int(body[2]) << 16 | Int(body[3]) << 8 | Int(body[4])
        guard body.count >= 5 + size else {
            throw GRPCError(method: method, target: target, status: nil, message: "truncated response")
        }
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

    /// What came back: the body and the response headers (trailers included), lower-cased names.
    final class Exchange {
        var body: [UInt8] = []
        var headers: [String: String] = [:]
    }

    /// Blocking: one POST. HTTP/2 with prior knowledge (gRPC) or HTTP/1.1.
    func post(
        url: String, body payload: [UInt8], headers: [String], http2: Bool, timeoutMs: Int, connectTimeoutMs: Int
    ) -> (CURLcode, Exchange) {
        let exchange = Exchange()
        let code: CURLcode = with(headers: headers) { handle, headerList in
            url.withCString { urlPointer in
                payload.withUnsafeBytes { body in
                    _ = auditd_curl_setopt_pointer(handle, CURLOPT_URL, urlPointer)
                    if http2 {
                        _ = auditd_curl_setopt_long(
                            handle, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE))
                    }
                    _ = auditd_curl_setopt_long(handle, CURLOPT_POST, 1)
                    _ = auditd_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, body.baseAddress)
                    _ = auditd_curl_setopt_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
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
                        exchange.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: size * count))
                        return size * count
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

/// Plain HTTP/1.1 JSON POSTs (etcd's v3 JSON gateway). Blocking work runs on its own queue.
public final class HTTPClient: Sendable {
    private let queue = DispatchQueue(label: "auditd.http", attributes: .concurrent)

    public init() {
        _ = GRPCClient.globalInitOnce
    }

    /// POSTs `body` to `url`; returns the status code and the body. Transport failures throw.
    public func post(_ url: String, json body: [UInt8], timeout: Duration = .seconds(5)) async throws -> (Int, [UInt8])
    {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(
                    with: Result {
                        guard let easy = CurlEasy() else {
                            throw GRPCError(method: "POST", target: url, status: nil, message: "curl_easy_init failed")
                        }
                        let ms = max(1, Int(timeout.milliseconds))
                        let (code, exchange) = easy.post(
                            url: url, body: body, headers: ["content-type: application/json", "user-agent: auditd"],
                            http2: false, timeoutMs: ms, connectTimeoutMs: min(ms, 3000))
                        guard code == CURLE_OK else {
                            throw GRPCError(
                                method: "POST", target: url, status: nil,
                                message: String(cString: curl_easy_strerror(code)))
                        }
                        var status = 0
                        easy.statusCode(&status)
                        return (status, exchange.body)
                    })
            }
        }
    }
}
