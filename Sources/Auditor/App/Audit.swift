import AuditorAudit
import AuditorCore
import AuditorKafka
import AuditorMilvus
import AuditorReport
import AuditorShadow
import Foundation
import Logging

public struct AuditOptions: Sendable {
    public var stateDirectory: String
    public var milvus: String
    public var policy: AuditPolicy
    /// Only these collections (names or ids); empty: every loaded collection.
    public var collections: [String]
    /// Milvus's etcd, for the topology when the proxy cannot list every replica.
    public var etcd: MilvusEtcd?
    public init(
        stateDirectory: String, milvus: String, policy: AuditPolicy = AuditPolicy(), collections: [String] = [],
        etcd: MilvusEtcd? = nil
    ) {
        self.etcd = etcd
        self.stateDirectory = stateDirectory
        self.milvus = milvus
        self.policy = policy
        self.collections = collections
    }
}

public struct AuditSummary: Sendable {
    public var collections = 0
    public var replicas = 0
    public var rowsChecked = 0
    public var confirmed: [ReplicaFinding] = []
    public var suspected: [ReplicaFinding] = []
    public var resolved: [ReplicaFinding] = []
    /// What could not be audited (collections, replicas), with why.
    public var notAudited: [String] = []
    /// The round as recorded.
    public var round: RoundOutcome?
    /// 0 clean, 1 confirmed findings, 2 could not audit.
    public var exitCode: Int32 {
        if !confirmed.isEmpty { return 1 }
        return notAudited.isEmpty ? 0 : 2
    }
}

extension Application {
    /// `auditd audit --once`: ingest to the end of the log, then one `AuditRound` per loaded collection at
    /// the cut T (the last time tick the shadow applied on every pchannel of the collection).
    /// `source` and `catalog` are the seams to Milvus (the QueryNodes, the proxy); nil: the real ones.
    public func audit(
        _ options: AuditOptions, source: (any ReplicaSource)? = nil, catalog: (any CollectionCatalog)? = nil
    ) async throws -> AuditSummary {
        let startedMs = clock.nowMs()
        let lock = try StateLock(directory: options.stateDirectory, command: "audit")
        defer { lock.release() }
        // `audit` judges the shadow as it is (serve and run check its checksums before they build on it)
        let store: ShadowStore
        do {
            store = try openStore(options.stateDirectory, create: true)
            _ = try await ingest(
                RunOptions(stateDirectory: options.stateDirectory, once: true, milvus: options.milvus), store: store)
        } catch {
            await recordFailedRound(options, startedMs: startedMs, error: error)
            throw error
        }
        return try await auditShadow(options, store: store, source: source, catalog: catalog)
    }

    /// A round that failed as a whole, kept as the latest round (`report` exits 2 while it stands). Best
    /// effort: a state directory that cannot be written has its own error already.
    func recordFailedRound(_ options: AuditOptions, startedMs: Int64, error: any Error) async {
        guard let store = try? openStore(options.stateDirectory, create: false) else { return }
        _ = await recordFailedRound(store: store, mode: options.policy.mode, startedMs: startedMs, error: error)
    }

    /// Records a failed round in `store` and returns it.
    func recordFailedRound(store: ShadowStore, mode: AuditMode, startedMs: Int64, error: any Error) async
        -> RoundOutcome
    {
        let round = RoundOutcome(
            startedMs: startedMs, finishedMs: clock.nowMs(), mode: mode, collections: [], confirmed: 0,
            error: "round failed: \(error)")
        try? await store.perform { try $0.recordFailedRound(round) }
        return round
    }

    /// One round on the committed shadow at each collection's cut T (no ingest): what `serve` runs on its timer.
    public func auditShadow(
        _ options: AuditOptions, store: ShadowStore, source: (any ReplicaSource)? = nil,
        catalog: (any CollectionCatalog)? = nil
    ) async throws -> AuditSummary {
        let startedMs = clock.nowMs()
        let checkpoints = try await store.perform { try $0.checkpoints() }
        let catalog = catalog ?? MilvusClient(target: options.milvus)
        let round = AuditRound(
            source: source ?? ReplicaReader(milvus: options.milvus, etcd: options.etcd, clock: clock),
            policy: options.policy,
            logger: configuration.logger, clock: clock)
        var summary = AuditSummary()
        var records: [AuditRecord] = []
        var coverage: [AuditCoverage] = []
        var outcomes: [RoundOutcome.Collection] = []
        let wanted = Set(options.collections)
        for collection in try await store.perform({ try $0.summary().collections }) where collection.state == "live" {
            if !wanted.isEmpty && !wanted.contains(collection.name) && !wanted.contains(String(collection.id)) {
                continue
            }
            let schema: CollectionSchemaInfo
            do {
                schema = try await catalog.schema(collectionID: collection.id)
            } catch {
                summary.notAudited.append("\(collection.name) (\(collection.id)): \(error)")
                outcomes.append(
                    .init(id: collection.id, name: collection.name, listed: [], judged: [], reasons: ["\(error)"]))
                continue
            }
            let listed: [ReplicaInfo]?
            do {
                listed = try await round.source.replicas(collectionID: collection.id)
            } catch let error as MilvusError where error.status?.error?.meansNotLoaded == true {
                continue  // not loaded: no replica serves it, nothing to audit
            } catch {
                listed = nil  // e.g. no replica available (nodes down or restarting): the round probes and says so
            }
            guard let pk = schema.primaryKey else { continue }
            guard let t = ChannelCheckpoint.cut(of: schema.physicalChannels, in: checkpoints) else {
                summary.notAudited.append("\(collection.name) (\(collection.id)): no time tick applied yet")
                outcomes.append(
                    .init(
                        id: collection.id, name: collection.name, listed: [], judged: [],
                        reasons: ["no time tick applied yet"]))
                continue
            }
            let id = collection.id
            var expected = try await store.perform { store in
                var expected = ExpectedCollection(
                    collectionID: id, name: collection.name, pkFieldID: pk.id, pkIsInt: pk.type == .int64,
                    vchannels: schema.virtualChannels, timestamp: t,
                    view: try store.expectedView(collectionID: id, at: t),
                    buckets: try store.buckets(collectionID: id).hashes.count,
                    firstSeen: try store.openFindingsFirstSeen(collectionID: id))
                expected.lastLeaders = try store.replicaTopology(collectionID: id)
                expected.sampleSlice = (try store.lastSampleSlice(collectionID: id)).map { $0 + 1 } ?? 0
                return expected
            }
            expected.schema = schema
            expected.historyComplete = !collection.history.hasPrefix("incomplete")
            let result = try await round.audit(expected, listed: listed)
            let leaders = result.leaders
            try await store.perform {
                try $0.recordTopology(
                    collectionID: id, leaders: leaders, nowMs: clock.nowMs())
            }
            for (replica, leaders) in result.leaders {
                let before = Set((expected.lastLeaders[replica] ?? [:]).values)
                if !before.isEmpty && before != Set(leaders.values) {
                    configuration.logger.notice(
                        "replica leaders changed (node restart or reassignment)",
                        metadata: [
                            "milvus.collection": "\(collection.name)", "milvus.replica": "\(replica)",
                            "milvus.leaders.before": "\(before.sorted())",
                            "milvus.leaders.now": "\(Set(leaders.values).sorted())",
                        ])
                }
            }
            summary.collections += 1
            if let c = result.coverage {
                coverage.append(c)
                summary.replicas += c.replicas
                summary.rowsChecked += c.rows
            }
            summary.notAudited += result.unjudged.map { "\(collection.name) (\(collection.id)): \($0)" }
            outcomes.append(
                .init(
                    id: collection.id, name: collection.name, listed: result.listedReplicas,
                    judged: result.judgedReplicas, reasons: result.unjudged))
            for record in result.records {
                switch record.state {
                case .confirmed: summary.confirmed.append(record.finding)
                case .suspected: summary.suspected.append(record.finding)
                case .resolved: summary.resolved.append(record.finding)
                }
            }
            records += result.records
        }
        let outcome = RoundOutcome(
            startedMs: startedMs, finishedMs: clock.nowMs(), mode: options.policy.mode, collections: outcomes,
            confirmed: summary.confirmed.count)
        try await store.perform { [records, coverage] in
            try $0.recordAudit(findings: records, coverage: coverage, round: outcome, nowMs: clock.nowMs())
        }
        summary.round = outcome
        return summary
    }
}

extension AuditSummary {
    /// The one line `audit` prints per round.
    public var line: String {
        var line = "audit: \(collections) collections, \(replicas) replicas, "
        line += "\(rowsChecked) rows checked, \(confirmed.count) confirmed, "
        line += "\(suspected.count) suspected, \(resolved.count) resolved findings"
        if !notAudited.isEmpty { line += "; not audited: " + notAudited.joined(separator: "; ") }
        return line
    }

    /// `audit --once`'s exit code with the report after the round: 1 when either has confirmed findings,
    /// else the larger (2: something could not be audited).
    public func exitCode(with report: ShadowSummary) -> Int32 {
        let reportCode = ShadowReport.exitCode(report)
        if exitCode == 1 || reportCode == 1 { return 1 }
        return max(exitCode, reportCode)
    }
}

extension Application {
    /// `auditd audit` without `--once`: a round every `interval` until `stop`. A round that fails (Kafka or
    /// Milvus away) is reported to `onRound` and the next one is tried after the interval.
    public func auditContinuously(
        _ options: AuditOptions, interval: Duration, stop: StopFlag, source: (any ReplicaSource)? = nil,
        catalog: (any CollectionCatalog)? = nil, onRound: (Result<AuditSummary, any Error>) -> Void
    ) async throws {
        while !stop.isStopped && !Task.isCancelled {
            do {
                onRound(.success(try await audit(options, source: source, catalog: catalog)))
            } catch {
                onRound(.failure(error))
            }
            try await pause(interval, unless: stop)
        }
    }

    /// Sleeps on the application's clock in steps of 0.1 s, returning early once `stop` is set.
    func pause(_ duration: Duration, unless stop: StopFlag) async throws {
        var left = duration
        while left > .zero && !stop.isStopped {
            let step = min(left, .milliseconds(100))
            try await clock.sleep(for: step)
            left -= step
        }
    }
}
