import Foundation
import Logging

/// How an audit round treats replicas that cannot be judged yet, and how long it waits.
public struct AuditPolicy: Sendable {
    /// Delay before the confirming re-read of data findings.
    public var settle: Duration
    /// Deadline for one replica read to reach T (past it the replica is lagging, never missing rows).
    public var readTimeout: Duration
    /// How long one round follows a recovering replica (per-shard counts and leader views) until it matches.
    public var watchLimit: Duration
    /// How long an unreachable replica (node down or restarting) is probed again within one round.
    public var unreachableGrace: Duration
    /// A replica recovering for longer than this is a confirmed `catchup_unfinished`.
    public var catchupBound: Duration
    public var probeInterval: Duration
    /// `pk`: pks and insert timestamps; `full`: also every row's content (row hashes, vectors included);
    /// `sample`: pk mode plus full mode for 1/`sampleSlices` of the rows, a different slice each round.
    public var mode: AuditMode = .pk
    public var sampleSlices = 16

    public init(
        settle: Duration = .seconds(10), readTimeout: Duration = .seconds(10), watchLimit: Duration = .seconds(60),
        unreachableGrace: Duration = .seconds(10), catchupBound: Duration = .seconds(120),
        probeInterval: Duration = .milliseconds(300)
    ) {
        self.settle = settle
        self.readTimeout = readTimeout
        self.watchLimit = watchLimit
        self.unreachableGrace = unreachableGrace
        self.catchupBound = catchupBound
        self.probeInterval = probeInterval
    }
}

public enum AuditMode: String, Sendable, CaseIterable {
    /// pks and insert timestamps of every row.
    case pk
    /// every row's content too (row hashes, vectors included).
    case full
    /// pk mode for every row, and full mode for one slice of each shard's pk range, rotating every round.
    case sample
}

/// What the shadow says one collection must look like at the cut T.
public struct ExpectedCollection: Sendable {
    public var collectionID: Int64
    public var name: String
    public var pkFieldID: Int64
    public var pkIsInt: Bool
    public var vchannels: [String]
    public var timestamp: UInt64
    public var rows: [ShadowStore.LiveRow]
    public var tombstones: [DeletedKey]
    public var buckets: Int
    /// Open findings from earlier rounds: "kind/replica" → first seen (Unix ms).
    public var firstSeen: [String: Int64]
    /// Shard leaders seen in earlier rounds, per replica (vchannel → "nodeID@address").
    public var lastLeaders: [Int64: [String: String]] = [:]
    /// Needed for full and sample modes (which fields to read and hash).
    public var schema: CollectionSchemaInfo? = nil
    /// Sample mode: which slice of each shard's pk range is read in full this round (rotates).
    public var sampleSlice = 0

    public init(
        collectionID: Int64, name: String, pkFieldID: Int64, pkIsInt: Bool, vchannels: [String], timestamp: UInt64,
        rows: [ShadowStore.LiveRow], tombstones: [DeletedKey], buckets: Int = 4096, firstSeen: [String: Int64] = [:]
    ) {
        self.collectionID = collectionID
        self.name = name
        self.pkFieldID = pkFieldID
        self.pkIsInt = pkIsInt
        self.vchannels = vchannels
        self.timestamp = timestamp
        self.rows = rows
        self.tombstones = tombstones
        self.buckets = buckets
        self.firstSeen = firstSeen
    }
}

/// The outcome of auditing one collection.
public struct CollectionAuditResult: Sendable {
    public var records: [AuditRecord] = []
    public var coverage: AuditCoverage?
    /// Replicas that could not be judged (unreachable, lagging past the deadline, still recovering).
    public var unjudged: [String] = []
    /// Shard leaders seen in this round, per replica.
    public var leaders: [Int64: [String: String]] = [:]
}

/// One audit of one collection: probe every replica's leaders, follow recovering replicas until they match
/// (the recovery watch), read every replica at T, compare with the shadow and with each other, and
/// confirm data findings by a second read of the same T after the settle delay.
public struct AuditRound: Sendable {
    public var source: any ReplicaSource
    public var policy: AuditPolicy
    public var logger: Logger
    /// The clock seam: wall time in Unix ms, and sleeping.
    public var nowMs: @Sendable () -> Int64
    public var sleep: @Sendable (Duration) async throws -> Void

    public init(
        source: any ReplicaSource, policy: AuditPolicy, logger: Logger,
        nowMs: @escaping @Sendable () -> Int64 = { Int64(Date().timeIntervalSince1970 * 1000) },
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.source = source
        self.policy = policy
        self.logger = logger
        self.nowMs = nowMs
        self.sleep = sleep
    }

    struct Topology {
        var probes: [ReplicaProbe]
        var health: [Int64: ReplicaHealth]
        /// GetReplicas itself failed (no replica available, shard leaders unknown).
        var error: String?
    }

    func probe(_ expected: ExpectedCollection) async -> Topology {
        let replicas: [ReplicaInfo]
        do {
            replicas = try await source.replicas(collectionID: expected.collectionID)
        } catch {
            return Topology(probes: [], health: [:], error: "\(error)")
        }
        var probes: [ReplicaProbe] = []
        for replica in replicas {
            var views: [String: Result<LeaderView?, ProbeError>] = [:]
            for shard in replica.shards {
                do {
                    views[shard.vchannel] = .success(
                        try await source.leaderView(
                            shard: shard, collectionID: expected.collectionID, timeout: .seconds(3)))
                } catch {
                    views[shard.vchannel] = .failure(ProbeError("\(error)"))
                }
            }
            probes.append(ReplicaProbe(replica: replica, views: views))
        }
        return Topology(
            probes: probes, health: ReplicaHealth.classify(probes, vchannels: expected.vchannels), error: nil)
    }

    /// Sum of per-shard `count(*)` of one replica at T (nil if a shard could not answer).
    func count(_ replica: ReplicaInfo, _ expected: ExpectedCollection) async -> Int64? {
        var total: Int64 = 0
        for shard in replica.shards {
            guard
                let n = try? await source.count(
                    shard: shard, collectionID: expected.collectionID, pkFieldID: expected.pkFieldID,
                    pkIsInt: expected.pkIsInt, timestamp: expected.timestamp, timeout: .seconds(2))
            else { return nil }
            total += n
        }
        return total
    }

    func read(_ replica: ReplicaInfo, _ expected: ExpectedCollection) async throws -> [ReplicaRow] {
        var rows: [ReplicaRow] = []
        if policy.mode == .full, let schema = expected.schema {
            for shard in replica.shards {
                rows += try await source.fullRows(
                    shard: shard, schema: schema, timestamp: expected.timestamp, after: nil, maxRows: nil,
                    pageSize: 500, timeout: policy.readTimeout
                ).map { ReplicaRow(pk: $0.pk, ts: $0.ts, rowHash: $0.rowHash) }
            }
            return rows
        }
        for shard in replica.shards {
            var shardRows = try await source.rows(
                shard: shard, collectionID: expected.collectionID, pkFieldID: expected.pkFieldID,
                pkIsInt: expected.pkIsInt, timestamp: expected.timestamp, pageSize: 10_000,
                timeout: policy.readTimeout)
            if policy.mode == .sample, let schema = expected.schema {
                try await hashSlice(of: &shardRows, shard: shard, schema: schema, expected)
            }
            rows += shardRows
        }
        return rows
    }

    /// Sample mode: reads one contiguous slice of the shard's pk-ordered rows in full and puts the row
    /// hashes on those rows (the comparison then checks their content too).
    func hashSlice(
        of rows: inout [ReplicaRow], shard: ReplicaInfo.Shard, schema: CollectionSchemaInfo,
        _ expected: ExpectedCollection
    ) async throws {
        let slices = max(1, policy.sampleSlices)
        let size = (rows.count + slices - 1) / slices
        let first = (expected.sampleSlice % slices) * size
        guard size > 0, first < rows.count else { return }
        let hashed = try await source.fullRows(
            shard: shard, schema: schema, timestamp: expected.timestamp, after: first > 0 ? rows[first - 1].pk : nil,
            maxRows: min(size, rows.count - first), pageSize: 500, timeout: policy.readTimeout)
        let hashes = Dictionary(hashed.map { ($0.pk, $0.rowHash) }, uniquingKeysWith: { a, _ in a })
        for index in first..<min(first + size, rows.count) { rows[index].rowHash = hashes[rows[index].pk] }
    }

    static func leaders(_ replica: ReplicaInfo) -> [String: String] {
        Dictionary(
            replica.shards.map { ($0.vchannel, "\($0.leaderID)@\($0.leaderAddress)") }, uniquingKeysWith: { a, _ in a })
    }

    /// Catch-up bookkeeping of one replica during the watch.
    struct Watch {
        var sinceMs: Int64
        var shortAtStart: Int64?
        var endMs: Int64?
        var lastReason: String
        /// Only seen unreachable so far (a node down stays so; a restarting one turns recovering or serving).
        var unreachableOnly = false
        /// Seen reloading (no view or no target), unreachable, or answering fewer rows than the log has: a
        /// catch-up worth reporting. Otherwise the replica only lacked a sealed segment for a moment while
        /// serving every row — the handoff after a flush, not a catch-up.
        var caughtUpFromBehind = false
    }

    public func audit(_ expected: ExpectedCollection) async throws -> CollectionAuditResult {
        let startMs = nowMs()
        let started = ContinuousClock.now
        var result = CollectionAuditResult()
        var topology = await probe(expected)
        var watches: [Int64: Watch] = [:]
        let cut = ShadowCut(rows: expected.rows, timestamp: expected.timestamp, buckets: expected.buckets)
        let expectedCount = Int64(cut.versions)  // what `count(*)` must answer at T

        /// Counts a watched replica at T, keeps how short it was when first counted; true once it holds every
        /// live version the log has at T (`exactly`: no more either — a replica still loading can answer
        /// more rows than the log has, e.g. with deletes not applied yet).
        func caughtUp(_ id: Int64, _ replica: ReplicaInfo, exactly: Bool) async -> Bool {
            guard let counted = await count(replica, expected) else { return false }
            if watches[id]?.shortAtStart == nil { watches[id]?.shortAtStart = max(0, expectedCount - counted) }
            if counted < expectedCount { watches[id]?.caughtUpFromBehind = true }
            return exactly ? counted == expectedCount : counted >= expectedCount
        }

        // The recovery watch: follow replicas that are recovering (or briefly unreachable, e.g. restarting)
        // until they serve completely, or the limits run out.
        func note(_ topology: Topology) async {
            for probe in topology.probes {
                let id = probe.replica.id
                switch topology.health[id] {
                case .recovering(let why, let reloading)?:
                    if watches[id] == nil {
                        let since = expected.firstSeen["\(ReplicaFinding.Kind.catchupUnfinished.rawValue)/\(id)"]
                        watches[id] = Watch(
                            sinceMs: since ?? nowMs(), shortAtStart: nil, endMs: nil, lastReason: why,
                            caughtUpFromBehind: since != nil)
                        logger.notice(
                            "replica recovering",
                            metadata: [
                                "milvus.collection": "\(expected.name)", "milvus.replica": "\(id)",
                                "audit.reason": "\(why)",
                            ])
                    }
                    watches[id]?.lastReason = why
                    watches[id]?.unreachableOnly = false
                    if reloading { watches[id]?.caughtUpFromBehind = true }
                    // Still without a target, but it already serves exactly the versions the log has at T: the
                    // data has caught up (e.g. the other replica is down, so QueryCoord cannot move the target
                    // on). More rows than the log is no proof: a segment loaded with a wrong delta log answers
                    // that way while its target is still 0 — wait for the target before judging it.
                    if await caughtUp(id, probe.replica, exactly: true) {
                        if watches[id]?.endMs == nil { watches[id]?.endMs = nowMs() }
                    } else {
                        watches[id]?.endMs = nil
                    }
                case .unreachable(let why)?:
                    if watches[id] == nil {
                        watches[id] = Watch(
                            sinceMs: nowMs(), shortAtStart: nil, endMs: nil, lastReason: why, unreachableOnly: true,
                            caughtUpFromBehind: true)
                    }
                case .serving?:
                    // serving per its leader views; done once its counts match the shadow at T too
                    if let watch = watches[id], watch.endMs == nil {
                        watches[id]?.unreachableOnly = false
                        if await caughtUp(id, probe.replica, exactly: false) { watches[id]?.endMs = nowMs() }
                    }
                default: break
                }
            }
        }
        await note(topology)
        let watchStart = nowMs()
        while true {
            let recovering = topology.probes.contains {
                let id = $0.replica.id
                guard let watch = watches[id] else { return topology.health[id]?.isRecovering == true }
                return watch.endMs == nil && !watch.unreachableOnly
            }
            let unreachable =
                topology.error != nil
                || topology.health.values.contains { if case .unreachable = $0 { true } else { false } }
            let elapsed = nowMs() - watchStart
            if !recovering && !unreachable { break }
            if elapsed >= policy.watchLimit.milliseconds64 { break }
            if !recovering && elapsed >= policy.unreachableGrace.milliseconds64 { break }
            try await sleep(policy.probeInterval)
            topology = await probe(expected)
            await note(topology)
        }

        if let error = topology.error {
            result.unjudged.append("\(expected.name) (\(expected.collectionID)): replicas not available: \(error)")
            for (id, watch) in watches where !watch.unreachableOnly {
                result.records.append(
                    AuditRecord(
                        catchup(expected, replicaID: id, nodeIDs: [], leaders: [:], watch: watch, missing: []),
                        .suspected))
            }
            return result
        }

        // Read every replica at T.
        let watched = ContinuousClock.now - started  // probe + recovery watch
        var readTime = Duration.zero
        var compareTime = Duration.zero
        var served: [(replica: ReplicaInfo, rows: [ReplicaRow])] = []
        var pending: [ReplicaFinding] = []
        for probe in topology.probes {
            let replica = probe.replica
            let health = topology.health[replica.id] ?? .unreachable("not probed")
            if case .unreachable(let why) = health {
                // Name the node that served it last: the replica may have lost its node altogether.
                let last = expected.lastLeaders[replica.id] ?? [:]
                let leaders = Self.leaders(replica).isEmpty ? last : Self.leaders(replica)
                let lastNodes = Set(last.values.compactMap { $0.split(separator: "@").first.flatMap { Int64($0) } })
                var evidence = "replica cannot be asked: \(why)"
                if !last.isEmpty { evidence += "; last served by \(Set(last.values).sorted().joined(separator: ", "))" }
                result.unjudged.append("replica \(replica.id): \(why)")
                result.records.append(
                    AuditRecord(
                        ReplicaFinding(
                            kind: .replicaUnavailable, collectionID: expected.collectionID, replicaID: replica.id,
                            nodeIDs: replica.nodeIDs.isEmpty ? lastNodes.sorted() : replica.nodeIDs, pks: [],
                            pkCount: 0, timestamp: expected.timestamp, evidence: evidence, leaders: leaders),
                        .suspected))
                continue
            }
            result.leaders[replica.id] = Self.leaders(replica)
            let rows: [ReplicaRow]
            do {
                let reading = ContinuousClock.now
                rows = try await read(replica, expected)
                readTime += ContinuousClock.now - reading
            } catch {
                let lagging = (error as? GRPCError)?.isDeadlineExceeded == true
                let why = lagging ? "lagging: has not reached T within \(policy.readTimeout)" : "\(error)"
                result.unjudged.append("replica \(replica.id): \(why)")
                result.records.append(
                    AuditRecord(
                        ReplicaFinding(
                            kind: .replicaUnavailable, collectionID: expected.collectionID, replicaID: replica.id,
                            nodeIDs: replica.nodeIDs, pks: [], pkCount: 0, timestamp: expected.timestamp,
                            evidence: "replica could not be read at T: \(why)", leaders: Self.leaders(replica)),
                        .suspected))
                continue
            }
            if health.isRecovering, let watch = watches[replica.id], watch.endMs == nil {
                // Still recovering when the watch ended: short answers are catch-up, not (yet) loss.
                let missing = ReplicaComparison.compare(
                    collectionID: expected.collectionID, timestamp: expected.timestamp, shadowRows: expected.rows,
                    tombstones: expected.tombstones,
                    replica: .init(id: replica.id, nodeIDs: replica.nodeIDs, rows: rows)
                ).first { $0.kind == .missing }
                let finding = catchup(
                    expected, replicaID: replica.id, nodeIDs: replica.nodeIDs, leaders: Self.leaders(replica),
                    watch: watch, missing: missing?.pks ?? [], missingCount: missing?.pkCount ?? 0)
                let overdue = nowMs() - watch.sinceMs >= policy.catchupBound.milliseconds64
                result.records.append(AuditRecord(finding, overdue ? .confirmed : .suspected))
                result.unjudged.append("replica \(replica.id): recovering (\(watch.lastReason))")
                continue
            }
            if let watch = watches[replica.id], watch.endMs != nil {
                if watch.caughtUpFromBehind {
                    result.records.append(
                        AuditRecord(
                            catchup(
                                expected, replicaID: replica.id, nodeIDs: replica.nodeIDs,
                                leaders: Self.leaders(replica), watch: watch, missing: []), .resolved))
                } else {
                    logger.info(
                        "replica lacked a sealed segment for a moment while serving every row (handoff)",
                        metadata: [
                            "milvus.collection": "\(expected.name)", "milvus.replica": "\(replica.id)",
                            "audit.reason": "\(watch.lastReason)",
                        ])
                }
            }
            served.append((replica, rows))
            let comparing = ContinuousClock.now
            pending += await findings(expected, cut, replica: replica, rows: rows)
            compareTime += ContinuousClock.now - comparing
        }
        if let divergence = Self.divergence(expected, served) { pending.append(divergence) }
        logger.info(
            "audit sweep",
            metadata: [
                "milvus.collection": "\(expected.name)", "audit.rows": "\(served.reduce(0) { $0 + $1.rows.count })",
                "audit.seconds.probe_and_watch": "\(watched.secondsValue)",
                "audit.seconds.read": "\(readTime.secondsValue)",
                "audit.seconds.compare": "\(compareTime.secondsValue)",
                "audit.seconds.total": "\((ContinuousClock.now - started).secondsValue)",
            ])
        result.coverage = AuditCoverage(
            collectionID: expected.collectionID, sweepMs: startMs, timestamp: expected.timestamp,
            mode: policy.mode.rawValue,
            rows: served.reduce(0) { $0 + $1.rows.count }, replicas: served.count, replicasTotal: topology.probes.count,
            slice: policy.mode == .sample ? expected.sampleSlice % max(1, policy.sampleSlices) : nil,
            buckets: expected.buckets, seconds: (ContinuousClock.now - started).secondsValue)
        guard !pending.isEmpty else { return result }

        // Confirmation: the same T, read again after the settle delay, from replicas still serving.
        try await sleep(policy.settle)
        let again = await probe(expected)
        var confirmedNow: [ReplicaFinding] = []
        var reread: [(replica: ReplicaInfo, rows: [ReplicaRow])] = []
        var notReread: [Int64: String] = [:]
        for (replica, _) in served {
            let health = again.health[replica.id] ?? .unreachable(again.error ?? "not listed")
            // Serving, or still recovering as when it was judged (a recovering replica is judged only once its
            // exact count says it caught up); one that was serving and is recovering now (restarted in
            // between) may answer partially: not re-read.
            let judgedRecovering = topology.health[replica.id]?.isRecovering == true
            guard health.isServing || health.isRecovering && judgedRecovering,
                let current = again.probes.first(where: { $0.replica.id == replica.id })?.replica
            else {
                notReread[replica.id] = health.reason
                continue
            }
            let rows: [ReplicaRow]
            do {
                rows = try await self.read(current, expected)
            } catch {
                notReread[replica.id] = "\(error)"
                continue
            }
            reread.append((current, rows))
            confirmedNow += await findings(expected, cut, replica: current, rows: rows)
        }
        if let divergence = Self.divergence(expected, reread) { confirmedNow.append(divergence) }
        for finding in pending {
            let same = confirmedNow.contains {
                $0.kind == finding.kind && $0.replicaID == finding.replicaID && $0.pks == finding.pks
                    && $0.pkCount == finding.pkCount
            }
            var record = AuditRecord(finding, same ? .confirmed : .suspected)
            if !same {
                let why = notReread[finding.replicaID].map { "not re-read: \($0)" } ?? "not seen again at the re-read"
                record.finding.evidence += "; unconfirmed (\(why))"
                logger.notice(
                    "finding not confirmed",
                    metadata: [
                        "milvus.collection": "\(expected.name)", "milvus.replica": "\(finding.replicaID)",
                        "audit.kind": "\(finding.kind.rawValue)", "audit.pks": "\(finding.pkCount)",
                        "audit.reason": "\(why)",
                    ])
            }
            result.records.append(record)
        }
        return result
    }

    /// Replica-vs-replica difference between the first two replicas read, if any.
    static func divergence(_ expected: ExpectedCollection, _ read: [(replica: ReplicaInfo, rows: [ReplicaRow])])
        -> ReplicaFinding?
    {
        guard read.count >= 2 else { return nil }
        return ReplicaComparison.divergence(
            collectionID: expected.collectionID, timestamp: expected.timestamp,
            .init(id: read[0].replica.id, nodeIDs: read[0].replica.nodeIDs, rows: read[0].rows),
            .init(id: read[1].replica.id, nodeIDs: read[1].replica.nodeIDs, rows: read[1].rows))
    }

    func findings(_ expected: ExpectedCollection, _ cut: ShadowCut, replica: ReplicaInfo, rows: [ReplicaRow]) async
        -> [ReplicaFinding]
    {
        // Bucket hashes first; row-level detail only for mismatched buckets (and rows read in full).
        let bad = cut.mismatchedBuckets(rows)
        let hashed = Set(rows.lazy.filter { $0.rowHash != nil }.map(\.pk))
        var found = ReplicaComparison.compare(
            collectionID: expected.collectionID, timestamp: expected.timestamp,
            shadowRows: expected.rows.filter { bad.contains(cut.bucket($0.pk)) || hashed.contains($0.pk) },
            tombstones: expected.tombstones.filter { bad.contains(cut.bucket($0.pk)) },
            replica: .init(
                id: replica.id, nodeIDs: replica.nodeIDs,
                rows: rows.filter { bad.contains(cut.bucket($0.pk)) || $0.rowHash != nil }),
            totals: (cut.newest.count, Set(rows.map(\.pk)).count))
        // Same pks as the log: do the versions add up too? `count(*)` counts every stored version.
        if found.isEmpty, let counted = await count(replica, expected) {
            found +=
                ReplicaComparison.versions(
                    collectionID: expected.collectionID, cut: cut,
                    replica: .init(id: replica.id, nodeIDs: replica.nodeIDs, rows: rows), counted: counted
                ).map { [$0] } ?? []
        }
        return found.map {
            var finding = $0
            finding.leaders = Self.leaders(replica)
            return finding
        }
    }

    func catchup(
        _ expected: ExpectedCollection, replicaID: Int64, nodeIDs: [Int64], leaders: [String: String], watch: Watch,
        missing: [PrimaryKey], missingCount: Int = 0
    ) -> ReplicaFinding {
        let end = watch.endMs
        let seconds = Double((end ?? nowMs()) - watch.sinceMs) / 1000
        var evidence =
            end != nil
            ? String(format: "caught up after %.1f s", seconds)
            : String(format: "still recovering after %.1f s: %@", seconds, watch.lastReason)
        if let short = watch.shortAtStart { evidence += "; \(short) rows short when first seen" }
        if end == nil && missingCount > 0 { evidence += "; \(missingCount) pks not served at T" }
        var finding = ReplicaFinding(
            kind: .catchupUnfinished, collectionID: expected.collectionID, replicaID: replicaID, nodeIDs: nodeIDs,
            pks: missing, pkCount: end == nil ? missingCount : Int(watch.shortAtStart ?? 0),
            timestamp: expected.timestamp, evidence: evidence, leaders: leaders)
        finding.windowStartMs = watch.sinceMs
        finding.windowEndMs = end
        return finding
    }
}
