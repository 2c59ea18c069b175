import AuditorAlerting
import AuditorCore
import AuditorReport
import AuditorShadow
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// The read-only HTTP side of `serve` (Hummingbird 2): `/metrics`, `/healthz`, `/readyz`, `/v1/report`,
/// `/v1/findings?state=open|confirmed|resolved`, `/v1/restarts`. No endpoint changes state; anything else is
/// a 404 (a bad query a 400) and the service keeps running.
struct HTTPService: Service {
    let context: ServeContext

    func run() async throws {
        let router = Self.router(context, BasicRequestContext.self)
        let context = self.context
        let settings = context.settings
        let logger: Logger = {
            var logger = context.logger
            logger[metadataKey: "component"] = "http"
            return logger
        }()
        let onListening = context.configuration.onListening
        let app = Hummingbird.Application(
            router: router,
            configuration: .init(
                address: .hostname(settings.listenHost, port: settings.listenPort), serverName: "auditd"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? settings.listenPort
                logger.notice("listening", metadata: ["http.address": "\(settings.listenHost):\(port)"])
                await onListening?(port)
            }, logger: logger)
        try await app.run()
    }

    /// Every route of the HTTP side, for any request context: the server's, or an in-process probe's
    /// (`ServeHTTPProbe`: the fuzz target of the request path).
    static func router<Context: RequestContext>(_ context: ServeContext, _: Context.Type) -> Router<Context> {
        let router = Router(context: Context.self)
        router.get("metrics") { _, _ -> Response in
            Self.text(context.metrics.exposition(), type: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("healthz") { _, _ -> Response in Self.text("ok\n", type: "text/plain") }
        router.get("readyz") { _, _ -> Response in
            let (ready, body) = await Self.readiness(context)
            return Self.text(body, type: "application/json", status: ready ? .ok : .serviceUnavailable)
        }
        router.get("v1/report") { _, _ -> Response in
            do {
                let summary = try await context.store.perform { try $0.summary() }
                return Self.text(
                    ShadowReport.json(summary, nowMs: context.clock.nowMs()) + "\n", type: "application/json")
            } catch {
                return Self.error(.internalServerError, "\(error)")
            }
        }
        router.get("v1/findings") { request, _ -> Response in
            let wanted = request.uri.queryParameters.get("state") ?? "open"
            guard ["open", "confirmed", "resolved", "suspected", "all"].contains(wanted) else {
                return Self.error(.badRequest, "state must be one of open, confirmed, suspected, resolved, all")
            }
            do {
                let summary = try await context.store.perform { try $0.summary() }
                let findings = summary.findings.filter { f in
                    switch wanted {
                    case "open": f.state != .resolved
                    case "all": true
                    default: f.state.rawValue == wanted
                    }
                }
                return Self.text(
                    "{\"findings\":[" + findings.map(ShadowReport.findingJSON).joined(separator: ",") + "]}\n",
                    type: "application/json")
            } catch {
                return Self.error(.internalServerError, "\(error)")
            }
        }
        router.get("v1/restarts") { _, _ -> Response in
            do {
                let restarts = try await context.store.perform { try $0.restarts(limit: 1000) }
                let now = context.clock.nowMs()
                return Self.text(
                    "{\"restarts\":["
                        + restarts.map { ShadowReport.restartJSON($0, nowMs: now) }
                        .joined(separator: ",") + "]}\n", type: "application/json")
            } catch {
                return Self.error(.internalServerError, "\(error)")
            }
        }
        return router
    }

    static func text(_ body: String, type: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: type],
            body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        text("{\"error\":\(JSONLine.quoted(message))}\n", type: "application/json", status: status)
    }

    /// Ready: an audit round completed since start, the latest round audited everything it was asked to,
    /// Kafka reachable, and auditd's own lag within `ready-lag` on every pchannel.
    static func readiness(_ context: ServeContext) async -> (Bool, String) {
        var problems: [String] = []
        let (rounds, latest, lag, storage) = context.status.withLock {
            ($0.roundsCompleted, $0.lastRound, $0.lag, $0.storageProblem)
        }
        if rounds == 0 { problems.append("no audit round completed since start") }
        if let storage { problems.append("state directory cannot be written: \(storage)") }
        if let latest, latest.result == .incomplete || latest.result == .failed {
            problems += latest.notAudited.map { "latest round did not audit: \($0)" }
        }
        do {
            let checkpoints = try await context.store.perform { try $0.checkpoints() }
            let now = context.clock.nowMs()
            let bound = context.settings.readyLag.milliseconds64
            for (pchannel, cp) in checkpoints.sorted(by: { $0.key < $1.key }) {
                let seconds = ShadowReport.lagSeconds(cp, nowMs: now) ?? 0
                if seconds * 1000 > Double(bound) {
                    problems.append(String(format: "%@ lags %.1f s (bound %lld s)", pchannel, seconds, bound / 1000))
                }
                if let status = lag[pchannel]?.status, status == .stop || status == .stall || status == .rewind {
                    problems.append("\(pchannel) consumption \(status.rawValue)")
                }
            }
        } catch {
            problems.append("shadow unreadable: \(error)")
        }
        let body =
            "{\"ready\":\(problems.isEmpty),\"rounds\":\(rounds),\"problems\":["
            + problems.map(JSONLine.quoted).joined(separator: ",") + "]}\n"
        return (problems.isEmpty, body)
    }
}

/// serve's HTTP routes answering one request in process, without a socket: what the request path does with
/// any method and any path, for the fuzz target (`auditd-fuzz`, target `http`) and tests.
package struct ServeHTTPProbe: Sendable {
    struct Source: RequestContextSource {
        let logger: Logger
    }

    struct Context: RequestContext {
        typealias Source = ServeHTTPProbe.Source
        var coreContext: CoreRequestContextStorage
        init(source: Source) { coreContext = .init(source: source) }
    }

    final class Sink: Sendable {
        let bytes = Mutex<[UInt8]>([])
    }

    struct Collector: ResponseBodyWriter {
        let sink: Sink
        mutating func write(_ buffer: ByteBuffer) async throws {
            sink.bytes.withLock { $0 += buffer.readableBytesView }
        }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }

    private let context: ServeContext
    private let responder: RouterResponder<Context>

    /// Opens the state directory as `serve` does (locked, checked) and builds the routes on it.
    package init(_ configuration: ServeConfiguration) throws {
        context = try ServeContext(configuration)
        responder = HTTPService.router(context, Context.self).buildResponder()
    }

    /// The status and body `serve` answers; a thrown error is what the server would turn into a 500.
    package func respond(method: String, path: String) async throws -> (status: Int, body: [UInt8]) {
        let head = HTTPRequest(
            method: HTTPRequest.Method(method) ?? .get, scheme: "http", authority: "127.0.0.1", path: path)
        let response = try await responder.respond(
            to: Request(head: head, body: RequestBody(buffer: ByteBuffer())),
            context: Context(source: Source(logger: context.logger)))
        let sink = Sink()
        try await response.body.write(Collector(sink: sink))
        return (response.status.code, sink.bytes.withLock { $0 })
    }
}
