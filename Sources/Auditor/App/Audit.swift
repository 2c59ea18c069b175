import Foundation
import Logging

public struct AuditOptions: Sendable {
    public var stateDirectory: String
    public var milvus: String
    /// Delay before the confirming re-read (default 10 s).
    public var settle: Duration
    /// Deadline for one replica read to reach T (past it: the replica is lagging, not missing rows).
    public var readTimeout: Duration
    public init(
        stateDirectory: String, milvus: String, settle: Duration = .seconds(10), readTimeout: Duration = .seconds(10)
    ) {
        self.stateDirectory = stateDirectory
        self.milvus = milvus
        self.settle = settle
        self.readTimeout = readTimeout
    }
}

public struct AuditSummary: Sendable {
    public var collections = 0
    public var replicas = 0
    public var rowsChecked = 0
    public var confirmed: [ReplicaFinding] = []
    public var suspected: [ReplicaFinding] = []
    /// Collections that could not be audited, with why.
    public var notAudited: [String] = []
    /// 0 clean, 1 confirmed findings, 2 could not audit.
    public var exitCode: Int32 {
        if !confirmed.isEmpty { return 1 }
        return notAudited.isEmpty ? 0 : 2
    }
}

extension Application {
    /// `auditd audit --once`: ingest to the end of the log, read every replica of every loaded collection
    /// at a cut T both the shadow and the replica have seen, compare, re-read after `settle` to confirm.
    public func audit(_ options: AuditOptions) async throws -> AuditSummary {
        _ = try await run(RunOptions(stateDirectory: options.stateDirectory, once: true, milvus: options.milvus))
        let store = try ShadowStore.open(directory: options.stateDirectory, create: false)
        let checkpoints = try store.checkpoints()
        let client = MilvusClient(target: options.milvus)
        let reader = ReplicaReader(milvus: options.milvus)
        var summary = AuditSummary()
        var audited: [Int64] = []
        var recorded: [(finding: ReplicaFinding, confirmed: Bool)] = []
        for collection in try store.summary().collections where collection.state == "live" {
            let schema: CollectionSchemaInfo
            let replicas: [ReplicaInfo]
            do {
                schema = try await client.describeCollection(id: collection.id)
                replicas = try await reader.replicas(collectionID: collection.id)
            } catch let error as GRPCError where error.message.contains("replica not found") {
                continue  // not loaded: no replica serves it, nothing to audit
            } catch {
                summary.notAudited.append("\(collection.name) (\(collection.id)): \(error)")
                continue
            }
            guard !replicas.isEmpty else { continue }  // not loaded: nothing serves it
            guard let pk = schema.primaryKey else { continue }
            // The cut: the last time tick the shadow applied on every pchannel of the collection.
            let ticks = schema.physicalChannels.map { checkpoints[$0]?.tickTs ?? 0 }
            guard let t = ticks.min(), t > 0 else {
                summary.notAudited.append("\(collection.name) (\(collection.id)): no time tick applied yet")
                continue
            }
            audited.append(collection.id)
            summary.collections += 1
            let shadowRows = try store.liveRows(collectionID: collection.id)
            let tombstones = try store.tombstones(collectionID: collection.id)
            func readAll() async -> ([ReplicaComparison.Replica], [ReplicaFinding]) {
                var read: [ReplicaComparison.Replica] = []
                var unavailable: [ReplicaFinding] = []
                for replica in replicas {
                    do {
                        var rows: [ReplicaRow] = []
                        for shard in replica.shards {
                            rows += try await reader.rows(
                                shard: shard, collectionID: collection.id, pkFieldID: pk.id, pkIsInt: pk.type == .int64,
                                timestamp: t, timeout: options.readTimeout)
                        }
                        read.append(ReplicaComparison.Replica(id: replica.id, nodeIDs: replica.nodeIDs, rows: rows))
                    } catch {
                        unavailable.append(
                            ReplicaFinding(
                                kind: .replicaUnavailable, collectionID: collection.id, replicaID: replica.id,
                                nodeIDs: replica.nodeIDs, pks: [], pkCount: 0, timestamp: t,
                                evidence: "replica could not be read at T: \(error)"))
                    }
                }
                return (read, unavailable)
            }
            func findings(_ read: [ReplicaComparison.Replica]) -> [ReplicaFinding] {
                var all = read.flatMap {
                    ReplicaComparison.compare(
                        collectionID: collection.id, timestamp: t, shadowRows: shadowRows, tombstones: tombstones,
                        replica: $0)
                }
                if read.count >= 2,
                    let d = ReplicaComparison.divergence(
                        collectionID: collection.id, timestamp: t, read[0], read[1])
                {
                    all.append(d)
                }
                return all
            }
            let (first, firstUnavailable) = await readAll()
            summary.replicas += first.count
            summary.rowsChecked += first.reduce(0) { $0 + $1.rows.count }
            let suspected = findings(first) + firstUnavailable
            if suspected.isEmpty { continue }
            // Confirmation: the same cut T, read again after the settle delay.
            try await Task.sleep(for: options.settle)
            let (second, secondUnavailable) = await readAll()
            let again = findings(second) + secondUnavailable
            for finding in again {
                let confirmed = suspected.contains {
                    $0.kind == finding.kind && $0.replicaID == finding.replicaID && $0.pks == finding.pks
                        && $0.pkCount == finding.pkCount
                }
                // Unreachable replicas are reported, never as confirmed data loss.
                let isData = finding.kind != .replicaUnavailable
                if confirmed && isData { summary.confirmed.append(finding) } else { summary.suspected.append(finding) }
                recorded.append((finding, confirmed && isData))
            }
        }
        try store.recordAudit(
            collections: audited, findings: recorded, nowMs: Int64(Date().timeIntervalSince1970 * 1000))
        return summary
    }
}
