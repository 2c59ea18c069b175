import AuditorAlerting
import AuditorCore
import AuditorReport
import AuditorShadow
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

/// The read-only HTTP side of `serve` (Hummingbird 2): `/metrics`, `/healthz`, `/readyz`, `/v1/report`,
/// `/v1/findings?state=open|confirmed|resolved`, `/v1/restarts`. No endpoint changes state; anything else is
/// a 404 (a bad query a 400) and the service keeps running.
struct HTTPService: Service {
    let context: ServeContext

    func run() async throws {
        let router = Router()
        let context = self.context
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
