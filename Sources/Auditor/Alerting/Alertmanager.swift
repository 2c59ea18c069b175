import AuditorCore
import AuditorShadow
import AuditorTransport
import Foundation
import Logging

/// Pushes auditd's confirmed findings to Alertmanager's API (`POST /api/v2/alerts`) for operators who route
/// alerts without Prometheus: each confirmed finding is one alert, re-sent while it stays open (with an
/// `endsAt` a few resend periods ahead, so alerts end by themselves if auditd goes away) and sent once more
/// with `endsAt` = now when it resolves.
public struct AlertmanagerPusher: Sendable {
    public var url: String
    public var stateDirectory: String
    public var resend: Duration
    let post: @Sendable (String, [UInt8]) async throws -> Int

    /// `post`: the HTTP seam (default: libcurl through `HTTPClient`).
    public init(
        url: String, stateDirectory: String, resend: Duration = .seconds(60),
        post: (@Sendable (String, [UInt8]) async throws -> Int)? = nil
    ) {
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.stateDirectory = stateDirectory
        self.resend = resend
        let client = HTTPClient()
        self.post = post ?? { url, body in try await client.post(url, json: body).0 }
    }

    /// One alert per confirmed finding: its identity (labels), and what the person paged reads.
    public struct Alert: Sendable, Equatable {
        public var labels: [String: String]
        public var annotations: [String: String]
        public var startsMs: Int64
        public var fingerprint: String {
            labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        }
    }

    /// The alerts the open confirmed findings of `summary` make.
    public func alerts(_ summary: ShadowSummary) -> [Alert] {
        let names = Dictionary(summary.collections.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        return summary.findings.filter { $0.state == .confirmed }.map { f in
            let collection = f.collectionID.map { names[$0].flatMap { $0.isEmpty ? nil : $0 } ?? String($0) } ?? ""
            var labels = [
                "alertname": "AuditdConfirmedFinding", "kind": f.kind.rawValue, "severity": Self.severity(f.kind),
                "source": "auditd",
            ]
            if !collection.isEmpty { labels["collection"] = collection }
            if let replica = f.replicaID { labels["replica"] = String(replica) }
            if let peer = f.peerReplicaID { labels["peer_replica"] = String(peer) }
            if let nodes = f.nodeIDs, !nodes.isEmpty { labels["node"] = nodes }
            if let pchannel = f.pchannel { labels["pchannel"] = pchannel }
            var target = collection.isEmpty ? "" : " in collection \(collection)"
            if let replica = f.replicaID { target += ", replica \(replica) (node \(f.nodeIDs ?? "?"))" }
            if let peer = f.peerReplicaID { target += " and replica \(peer) (node \(f.peerNodeIDs ?? "?"))" }
            let annotations = [
                "summary": "auditd confirmed \(f.kind.rawValue)\(target)",
                "description":
                    "\(f.detail). \(f.pkCount ?? 0) pks; witness pks \(f.pksJSON ?? "[]"). "
                    + "Run `auditd report --state \(stateDirectory)` for the evidence; runbook: docs/alerts.md#\(f.kind.rawValue).",
            ]
            return Alert(labels: labels, annotations: annotations, startsMs: f.confirmedMs ?? f.firstSeenMs)
        }
    }

    static func severity(_ kind: FindingKind) -> String {
        switch kind {
        case .replica(.catchupUnfinished), .replica(.replicaUnavailable), .log(.undecodable): "warning"
        default: "critical"
        }
    }

    static func rfc3339(_ ms: Int64) -> String { HybridTimestamp.iso8601(milliseconds: ms) }

    /// The JSON body for `POST /api/v2/alerts`: `firing` until `endsMs` ahead, `resolved` ending now.
    public static func body(firing: [Alert], resolved: [Alert], nowMs: Int64, endsMs: Int64) -> [UInt8] {
        func object(_ alert: Alert, ends: Int64) -> String {
            func map(_ m: [String: String]) -> String {
                "{"
                    + m.sorted { $0.key < $1.key }.map { "\(JSONLine.quoted($0.key)):\(JSONLine.quoted($0.value))" }
                    .joined(separator: ",") + "}"
            }
            return "{\"labels\":\(map(alert.labels)),\"annotations\":\(map(alert.annotations)),"
                + "\"startsAt\":\"\(rfc3339(alert.startsMs))\",\"endsAt\":\"\(rfc3339(ends))\"}"
        }
        let all = firing.map { object($0, ends: endsMs) } + resolved.map { object($0, ends: nowMs) }
        return Array(("[" + all.joined(separator: ",") + "]").utf8)
    }

    /// Sends the firing alerts and ends those that were firing at the last push (`previous`); returns what
    /// is firing now (the next call's `previous`). A failed push throws; the caller tries again next time.
    public func push(_ summary: ShadowSummary, previous: [String: Alert], nowMs: Int64) async throws -> [String: Alert]
    {
        let firing = alerts(summary)
        let now = Dictionary(firing.map { ($0.fingerprint, $0) }, uniquingKeysWith: { a, _ in a })
        let resolved = previous.filter { now[$0.key] == nil }.map(\.value)
        guard !firing.isEmpty || !resolved.isEmpty else { return now }
        let ends = nowMs + max(3 * resend.milliseconds64, 180_000)
        let status = try await post(
            "\(url)/api/v2/alerts", Self.body(firing: firing, resolved: resolved, nowMs: nowMs, endsMs: ends))
        guard status == 200 else {
            throw TransportError(
                .httpStatus(status), method: "POST /api/v2/alerts", target: url, message: "alerts refused")
        }
        return now
    }
}
