import AuditorCore
import AuditorMilvus
import AuditorShadow
import Foundation

/// Renders `auditd report`: per collection and per pchannel, text or JSON.
public enum ShadowReport {
    static func iso(_ ms: Int64) -> String { HybridTimestamp.iso8601(HybridTimestamp.compose(milliseconds: ms)) }

    /// `auditd report`'s exit code: 1 confirmed findings open; 2 something could not be audited (Kafka
    /// unreachable, the latest round left a collection or replica unaudited or failed, a replica unavailable
    /// or still recovering, history incomplete); 0 clean.
    public static func exitCode(_ s: ShadowSummary) -> Int32 {
        let open = s.findings.filter { $0.state != .resolved }
        if open.contains(where: { $0.state == .confirmed }) { return 1 }
        if s.kafkaUnreachableSinceMs != nil { return 2 }
        if s.latestRound?.incomplete == true { return 2 }
        if open.contains(where: { $0.kind == .replica(.replicaUnavailable) || $0.kind == .replica(.catchupUnfinished) })
        {
            return 2
        }
        if s.collections.contains(where: { $0.state == "live" && $0.history.hasPrefix("incomplete") }) { return 2 }
        return 0
    }

    /// auditd's lag on one pchannel in seconds: 0 when it read up to `head` (default: the stored high
    /// watermark), else how old its last applied time tick is; nil before any tick.
    public static func lagSeconds(_ checkpoint: ChannelCheckpoint, head: Int64? = nil, nowMs: Int64) -> Double? {
        guard checkpoint.tickTs > 0 else { return nil }
        if checkpoint.nextOffset >= head ?? checkpoint.highWatermark { return 0 }
        return max(0, Double(nowMs - HybridTimestamp.physicalMilliseconds(checkpoint.tickTs)) / 1000)
    }

    /// One finding as JSON (`report --json`, `/v1/findings`).
    public static func findingJSON(_ f: ShadowSummary.Finding) -> String {
        var o = JSONLine()
        o.string("kind", f.kind.rawValue)
        o.string("state", f.state.rawValue)
        if let p = f.pchannel { o.string("pchannel", p) } else { o.null("pchannel") }
        if let c = f.collectionID { o.int("collection", c) } else { o.null("collection") }
        if let replica = f.replicaID { o.int("replica", replica) } else { o.null("replica") }
        if let nodes = f.nodeIDs { o.string("node", nodes) } else { o.null("node") }
        if let peer = f.peerReplicaID {
            o.int("peer_replica", peer)
            o.string("peer_node", f.peerNodeIDs ?? "")
        }
        o.raw("pks", f.pksJSON ?? "[]")
        o.int("pk_count", f.pkCount ?? 0)
        if !f.leaders.isEmpty {
            o.raw(
                "leaders",
                "{"
                    + f.leaders.sorted { $0.key < $1.key }.map {
                        "\(JSONLine.quoted($0.key)):\(JSONLine.quoted($0.value))"
                    }.joined(separator: ",") + "}")
        }
        var evidence = JSONLine()
        if let ts = f.ts { evidence.int("ts", ts) }
        if let start = f.windowStartMs { evidence.int("window_start_ms", start) }
        if let end = f.windowEndMs { evidence.int("window_end_ms", end) }
        if let from = f.fromOffset { evidence.int("from_offset", from) }
        if let to = f.toOffset { evidence.int("to_offset", to) }
        evidence.string("detail", f.detail)
        o.raw("evidence", evidence.result)
        o.int("first_seen_ms", f.firstSeenMs)
        for (key, value) in [
            ("last_seen_ms", f.lastSeenMs), ("confirmed_ms", f.confirmedMs), ("resolved_ms", f.resolvedMs),
        ] {
            if let value { o.int(key, value) } else { o.null(key) }
        }
        return o.result
    }

    public static func json(_ s: ShadowSummary, nowMs: Int64) -> String {
        let collections = s.collections.map { c -> String in
            var o = JSONLine()
            o.string("name", c.name)
            o.int("id", c.id)
            o.string("state", c.state)
            o.int("live_rows", c.liveRows)
            o.int("duplicate_pks", c.duplicatePKs)
            o.int("tombstones", c.tombstones)
            o.string("history", c.history)
            if let tainted = c.taintedFrom {
                o.raw(
                    "tainted_from", "{\"pchannel\":\(JSONLine.quoted(tainted.pchannel)),\"offset\":\(tainted.offset)}")
            } else {
                o.null("tainted_from")
            }
            return o.result
        }
        let pchannels = s.pchannels.map { p -> String in
            var o = JSONLine()
            o.string("name", p.pchannel)
            o.int("offset", p.nextOffset)
            o.int("resume_offset", p.resumeOffset)
            o.int("high_watermark", p.highWatermark)
            o.int("lag_messages", max(0, p.highWatermark - p.nextOffset))
            if let lag = lagSeconds(p, nowMs: nowMs) {
                o.raw("lag_seconds", String(format: "%.3f", lag))
            } else {
                o.null("lag_seconds")
            }
            o.int("last_time_tick", p.tickTs)
            o.int("epoch", p.epoch)
            return o.result
        }
        let findings = s.findings.map(findingJSON)
        let coverage = s.coverage.map { c -> String in
            var o = JSONLine()
            o.int("collection", c.collectionID)
            o.int("last_sweep_ms", c.sweepMs)
            o.int("ts", c.timestamp)
            o.string("mode", c.mode.rawValue)
            o.int("rows", c.rows)
            o.int("replicas", c.replicas)
            o.int("replicas_total", c.replicasTotal)
            o.int("buckets", c.buckets)
            o.raw("seconds", String(format: "%.3f", c.seconds))
            if let slice = c.slice { o.int("sample_slice", slice) }
            if let status = s.auditStatus[c.collectionID] { o.raw("latest_round", statusJSON(status)) }
            return o.result
        }
        // Collections the latest rounds looked at but never swept completely.
        let unswept = s.auditStatus.filter { id, _ in !s.coverage.contains { $0.collectionID == id } }
            .sorted { $0.key < $1.key }.map { id, status -> String in
                var o = JSONLine()
                o.int("collection", id)
                o.null("last_sweep_ms")
                o.raw("latest_round", statusJSON(status))
                return o.result
            }
        let restarts = s.restarts.map { restartJSON($0, nowMs: nowMs) }
        var round = "null"
        if let r = s.latestRound {
            var o = JSONLine()
            o.int("started_ms", r.startedMs)
            o.int("finished_ms", r.finishedMs)
            o.string("mode", r.mode)
            o.string("result", r.result)
            o.raw("not_audited", "[" + r.notAudited.map(JSONLine.quoted).joined(separator: ",") + "]")
            if let error = r.error { o.string("error", error) } else { o.null("error") }
            round = o.result
        }
        return "{\"collections\":[\(collections.joined(separator: ","))],"
            + "\"pchannels\":[\(pchannels.joined(separator: ","))],"
            + "\"findings\":[\(findings.joined(separator: ","))],"
            + "\"coverage\":[\((coverage + unswept).joined(separator: ","))],\"latest_round\":\(round),"
            + "\"restarts\":[\(restarts.joined(separator: ","))],"
            + "\"quarantined\":\(s.quarantined),"
            + "\"kafka\":{\"reachable\":\(s.kafkaUnreachableSinceMs == nil),"
            + "\"unreachable_since_ms\":\(s.kafkaUnreachableSinceMs.map(String.init) ?? "null")}}"
    }

    /// One restart window as JSON (also `/v1/restarts`).
    public static func restartJSON(_ r: RestartRecord, nowMs: Int64) -> String {
        var o = JSONLine()
        o.int("collection", r.collectionID)
        o.int("replica", r.replicaID)
        o.raw("old_nodes", "[" + r.oldNodes.map(String.init).joined(separator: ",") + "]")
        o.raw("new_nodes", "[" + r.newNodes.map(String.init).joined(separator: ",") + "]")
        o.int("down_ms", r.downMs)
        if let serving = r.servingMs { o.int("serving_ms", serving) } else { o.null("serving_ms") }
        if let caughtUp = r.caughtUpMs { o.int("caught_up_ms", caughtUp) } else { o.null("caught_up_ms") }
        if let behind = r.servingBehindSeconds(nowMs: nowMs) {
            o.raw("serving_behind_seconds", String(format: "%.3f", behind))
        } else {
            o.null("serving_behind_seconds")
        }
        o.int("rows_short_max", r.rowsShortMax)
        o.string("state", r.state.rawValue)
        o.raw("caught_up", r.caughtUpMs != nil ? "true" : "false")
        return o.result
    }

    /// One restart window as a line of text.
    public static func restartText(_ r: RestartRecord, nowMs: Int64) -> String {
        var line =
            "collection \(r.collectionID) replica \(r.replicaID): node \(r.oldNodes.map(String.init).joined(separator: ","))"
            + (r.newNodes.isEmpty ? "" : " → \(r.newNodes.map(String.init).joined(separator: ","))")
            + " down \(iso(r.downMs))"
        if let serving = r.servingMs { line += ", serving again \(iso(serving))" }
        if let caughtUp = r.caughtUpMs {
            line += ", caught up \(iso(caughtUp))"
        } else {
            line += r.state == .unfinished ? ", NOT caught up (catch-up unfinished)" : ", not caught up yet"
        }
        if let behind = r.servingBehindSeconds(nowMs: nowMs) {
            line += String(format: "; served queries %.1f s while behind", behind)
        }
        if r.rowsShortMax > 0 { line += ", up to \(r.rowsShortMax) rows short" }
        return line
    }

    static func statusJSON(_ status: ShadowSummary.AuditStatus) -> String {
        var o = JSONLine()
        o.int("at_ms", status.roundMs)
        o.raw("audited", status.audited ? "true" : "false")
        o.string("reason", status.reason)
        return o.result
    }

    public static func text(_ s: ShadowSummary, nowMs: Int64) -> String {
        var lines: [String] = ["collections:"]
        if s.collections.isEmpty { lines.append("  (none seen yet)") }
        for c in s.collections {
            var line =
                "  \(c.name.isEmpty ? "?" : c.name) (\(c.id)) \(c.state): \(c.liveRows) live rows, "
                + "\(c.duplicatePKs) duplicate pks, \(c.tombstones) tombstones, history \(c.history)"
            if let t = c.taintedFrom { line += ", TAINTED from \(t.pchannel)@\(t.offset)" }
            lines.append(line)
        }
        if let since = s.kafkaUnreachableSinceMs {
            lines.append(
                "kafka: UNREACHABLE since \(HybridTimestamp.iso8601(HybridTimestamp.compose(milliseconds: since))) "
                    + "(\(max(0, nowMs - since) / 1000) s)")
        }
        lines.append("pchannels:")
        for p in s.pchannels {
            let lag = lagSeconds(p, nowMs: nowMs).map { String(format: "%.1fs", $0) } ?? "?"
            lines.append(
                "  \(p.pchannel): offset \(p.nextOffset) of \(p.highWatermark) (lag \(max(0, p.highWatermark - p.nextOffset)) "
                    + "messages, \(lag)), last time tick \(p.tickTs)"
                    + (p.tickTs > 0 ? " (\(HybridTimestamp.iso8601(p.tickTs)))" : "")
                    + (p.epoch > 0 ? ", epoch \(p.epoch)" : ""))
        }
        let open = s.findings.filter { $0.state != .resolved }.count
        lines.append(
            "findings: \(s.findings.isEmpty ? "none" : "\(open) open, \(s.findings.count - open) resolved")")
        for f in s.findings {
            var where_ = f.pchannel ?? ""
            if let c = f.collectionID { where_ += " collection \(c)" }
            if let r = f.replicaID { where_ += " replica \(r) node \(f.nodeIDs ?? "?")" }
            if let peer = f.peerReplicaID { where_ += " and replica \(peer) node \(f.peerNodeIDs ?? "?")" }
            var line =
                "  [\(f.state.rawValue)] \(f.kind.rawValue)\(where_.isEmpty ? "" : " " + where_.trimmingCharacters(in: .whitespaces)): \(f.detail)"
            if let pks = f.pksJSON, pks != "[]" { line += " pks \(pks)" }
            if !f.leaders.isEmpty { line += " leaders \(ShardLeaders.format(f.leaders))" }
            if let resolved = f.resolvedMs { line += " (resolved \(iso(resolved)))" }
            lines.append(line)
        }
        lines.append("coverage:")
        if s.coverage.isEmpty && s.auditStatus.isEmpty { lines.append("  (no audit yet)") }
        func latest(_ id: Int64) -> String {
            guard let status = s.auditStatus[id], !status.audited else { return "" }
            return "; NOT AUDITED in the latest round (\(iso(status.roundMs))): \(status.reason)"
        }
        for c in s.coverage {
            let name = s.collections.first { $0.id == c.collectionID }?.name ?? "?"
            lines.append(
                "  \(name) (\(c.collectionID)): last complete sweep \(iso(c.sweepMs)) at T \(c.timestamp), "
                    + "\(c.mode.rawValue) mode, \(c.replicas) of \(c.replicasTotal) replicas, \(c.rows) rows, "
                    + "\(c.buckets) buckets, " + String(format: "%.2f s", c.seconds) + latest(c.collectionID))
        }
        for (id, _) in s.auditStatus.sorted(by: { $0.key < $1.key })
        where !s.coverage.contains(where: { $0.collectionID == id }) {
            let name = s.collections.first { $0.id == id }?.name ?? "?"
            lines.append("  \(name) (\(id)): never swept completely" + latest(id))
        }
        if let r = s.latestRound {
            var line = "latest round: \(iso(r.startedMs)), \(r.mode) mode, \(r.result)"
            if !r.notAudited.isEmpty { line += "; not audited: " + r.notAudited.joined(separator: "; ") }
            lines.append(line)
        }
        if !s.restarts.isEmpty {
            lines.append("restarts (newest first):")
            for r in s.restarts.prefix(20) { lines.append("  " + restartText(r, nowMs: nowMs)) }
        }
        lines.append("quarantined records: \(s.quarantined)")
        return lines.joined(separator: "\n")
    }
}
