import AuditorCore
import AuditorMilvus
import AuditorShadow
import AuditorTransport
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
    /// How many shard reads (of all replicas of a collection) run at once. Pages of one shard stay in order;
    /// each stream keeps its pages near the pacer's latency budget. 1 reads one shard after another.
    public var readConcurrency = 4
    /// Row versions compared at once: a collection is read and compared one pk range of about this many rows
    /// after another (every replica's shards for the range, then the next), so a round's memory is bounded by
    /// a range, not by the collection.
    public var windowRows = 20_000

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

/// What the shadow says one collection must look like at the cut T.
public struct ExpectedCollection: Sendable {
    public var collectionID: Int64
    public var name: String
    public var pkFieldID: Int64
    public var pkIsInt: Bool
    public var vchannels: [String]
    public var timestamp: UInt64
    /// The log's rows and deletes at T, read one pk range at a time.
    public var view: any ExpectedView
    public var buckets: Int
    /// Open findings from earlier rounds: "kind/replica" → first seen (Unix ms).
    public var firstSeen: [String: Int64]
    /// Shard leaders seen in earlier rounds, per replica (vchannel → "nodeID@address").
    public var lastLeaders: [Int64: [String: String]] = [:]
    /// Needed for full and sample modes (which fields to read and hash).
    public var schema: CollectionSchemaInfo? = nil
    /// Sample mode: which slice of each shard's pk range is read in full this round (rotates).
    public var sampleSlice = 0
    /// False when the log no longer holds the collection's whole history (retention ate records auditd never
    /// read): the comparison with the log cannot say which replica deviates, so replicas are also compared
    /// with each other and a difference is a `replica_divergence` naming both.
    public var historyComplete = true

    public init(
        collectionID: Int64, name: String, pkFieldID: Int64, pkIsInt: Bool, vchannels: [String], timestamp: UInt64,
        view: any ExpectedView, buckets: Int = 4096, firstSeen: [String: Int64] = [:]
    ) {
        self.collectionID = collectionID
        self.name = name
        self.pkFieldID = pkFieldID
        self.pkIsInt = pkIsInt
        self.vchannels = vchannels
        self.timestamp = timestamp
        self.view = view
        self.buckets = buckets
        self.firstSeen = firstSeen
    }

    /// An expected collection whose rows are at hand (held in memory).
    public init(
        collectionID: Int64, name: String, pkFieldID: Int64, pkIsInt: Bool, vchannels: [String], timestamp: UInt64,
        rows: [ShadowStore.LiveRow], tombstones: [DeletedKey], buckets: Int = 4096, firstSeen: [String: Int64] = [:]
    ) {
        self.init(
            collectionID: collectionID, name: name, pkFieldID: pkFieldID, pkIsInt: pkIsInt, vchannels: vchannels,
            timestamp: timestamp, view: InMemoryExpected(rows: rows, tombstones: tombstones, timestamp: timestamp),
            buckets: buckets, firstSeen: firstSeen)
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
    /// Replicas listed by the topology, and those read and compared with the log (the others' earlier
    /// findings stay open: not seeing them again is not seeing them clean).
    public var listedReplicas: [Int64] = []
    public var judgedReplicas: [Int64] = []
}

/// One audit of one collection, as named phases:
/// 1. **topology** and **health** (`probe`): every replica's shard leaders and their leader views.
/// 2. **watch** (`watch`): follow recovering or briefly unreachable replicas until they serve every version
///    the log has at T, or the limits run out (`RecoveryWatch`, one per replica).
/// 3. **read and compare** (`sweep`), one pk range (`AuditPolicy.windowRows`) after another: the log's rows
///    of the range from the shadow, every judgeable replica's rows of the range at T (shards and replicas
///    concurrently), each replica compared with the log (bucket digests first) and with the others; only the
///    differences are kept (counts and witnesses), so memory is bounded by one range.
/// 4. **judge** (`judge`): findings from the differences; unreachable and still-recovering replicas get
///    their findings instead.
/// 5. **confirm** (`confirm`): the ranges that differed are re-read at the same T after the settle delay.
/// The caller records the result (`Application.audit`).
public struct AuditRound: Sendable {
    public var source: any ReplicaSource
    public var policy: AuditPolicy
    public var logger: Logger
    public var clock: any AuditorClock

    public init(
        source: any ReplicaSource, policy: AuditPolicy, logger: Logger, clock: any AuditorClock = SystemClock()
    ) {
        self.source = source
        self.policy = policy
        self.logger = logger
        self.clock = clock
    }

    struct Topology {
        var probes: [ReplicaProbe]
        var health: [Int64: ReplicaHealth]
        /// GetReplicas itself failed (no replica available, shard leaders unknown).
        var error: String?

        var anyUnreachable: Bool {
            error != nil || health.values.contains { if case .unreachable = $0 { true } else { false } }
        }
    }

    /// Everything one audit works with: what the log says (`expected`) and how many versions it leaves at T.
    struct Context {
        let expected: ExpectedCollection
        /// What `count(*)` must answer.
        let expectedCount: Int64
    }

    /// A replica read at T, range by range: what it served and how it differs from the log.
    struct Served {
        var replica: ReplicaInfo
        var rows = 0
        /// Distinct pks served.
        var pks = 0
        var differences = ReplicaComparison.Differences()
    }

    struct Pair: Hashable {
        var a: Int64
        var b: Int64
    }

    /// One pass over pk ranges: every replica that answered each range, the replicas that failed one (not
    /// read further), the log's totals, replica-vs-replica differences, and the ranges where anything differed.
    struct Sweep {
        var served: [Int64: Served] = [:]
        var failures: [Int64: any Error] = [:]
        var totals = ReplicaComparison.LogTotals()
        var pairs: [Pair: ReplicaComparison.Divergence] = [:]
        var ranges: [PKRange] = []
        var dirty: [PKRange] = []
    }

    /// `listed`: the replicas as the caller just listed them (the first probe uses them instead of asking again).
    public func audit(_ expected: ExpectedCollection, listed: [ReplicaInfo]? = nil) async throws
        -> CollectionAuditResult
    {
        let startMs = clock.nowMs()
        let started = clock.instant()
        let context = Context(expected: expected, expectedCount: try await expected.view.versionCount())
        var (topology, watches) = try await watch(context, topology: await probe(expected, listed: listed))
        var result = CollectionAuditResult()
        if let error = topology.error {
            result.unjudged.append("replicas not available: \(error)")
            for (id, watch) in watches.sorted(by: { $0.key < $1.key })
            where watch.isWatched && watch.phase != .unreachable {
                result.records.append(
                    AuditRecord(catchup(expected, replicaID: id, nodeIDs: [], leaders: [:], watch: watch), .suspected))
            }
            return result
        }
        let watched = clock.instant() - started

        let reading = clock.instant()
        let judgeable = topology.probes.map(\.replica).filter {
            if case .unreachable = topology.health[$0.id] ?? .unreachable("") { return false }
            return true
        }
        let ranges = try await expected.view.windows(rows: policy.windowRows)
        let sweep = try await sweep(context, judgeable, ranges: ranges)
        let readTime = clock.instant() - reading

        let judged = await judge(context, topology, watches: &watches, sweep: sweep)
        result.records = judged.records
        result.unjudged = judged.unjudged
        result.leaders = judged.leaders
        result.listedReplicas = topology.probes.map(\.replica.id)
        result.judgedReplicas = judged.served.map(\.replica.id)

        let rows = judged.served.reduce(0) { $0 + $1.rows }
        logger.info(
            "audit sweep",
            metadata: [
                "milvus.collection": "\(expected.name)", "audit.rows": "\(rows)",
                "audit.ranges": "\(ranges.count)",
                "audit.seconds.probe_and_watch": "\(watched.secondsValue)",
                "audit.seconds.read_and_compare": "\(readTime.secondsValue)",
                "audit.seconds.total": "\(clock.seconds(since: started))",
                "audit.read_concurrency": "\(policy.readConcurrency)",
            ])
        result.coverage = AuditCoverage(
            collectionID: expected.collectionID, sweepMs: startMs, timestamp: expected.timestamp, mode: policy.mode,
            rows: rows, replicas: judged.served.count, replicasTotal: topology.probes.count,
            slice: policy.mode == .sample ? expected.sampleSlice % max(1, policy.sampleSlices) : nil,
            buckets: expected.buckets, seconds: clock.seconds(since: started))
        result.records += try await confirm(
            context, judged.pending, served: judged.served, first: sweep, judgedIn: topology)
        return result
    }

    // MARK: 1. topology and health

    func probe(_ expected: ExpectedCollection, listed: [ReplicaInfo]? = nil) async -> Topology {
        let replicas: [ReplicaInfo]
        do {
            if let listed {
                replicas = listed
            } else {
                replicas = try await source.replicas(collectionID: expected.collectionID)
            }
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

    // MARK: 2. watch

    /// Probes until no replica is catching up or unreachable, or the limits run out: `watchLimit` for
    /// replicas catching up, `unreachableGrace` for unreachable ones (a node that takes longer than
    /// `watchLimit` to come back is still waited for, up to the grace).
    func watch(_ context: Context, topology first: Topology) async throws -> (Topology, [Int64: RecoveryWatch]) {
        var topology = first
        var watches: [Int64: RecoveryWatch] = [:]
        await observe(topology, context, &watches)
        let watchStart = clock.nowMs()
        while true {
            let catchingUp = topology.probes.contains { watches[$0.replica.id]?.isCatchingUp == true }
            let elapsed = clock.nowMs() - watchStart
            // Each limit bounds its own wait: a replica catching up is followed for `watchLimit`, an
            // unreachable one (a node restarting) probed again for `unreachableGrace`.
            let follow = catchingUp && elapsed < policy.watchLimit.milliseconds64
            let wait = topology.anyUnreachable && elapsed < policy.unreachableGrace.milliseconds64
            if !follow && !wait { break }
            try await clock.sleep(for: policy.probeInterval)
            topology = await probe(context.expected)
            await observe(topology, context, &watches)
        }
        return (topology, watches)
    }

    /// Feeds one probe of every replica to its watch and performs the counts the watches ask for.
    func observe(_ topology: Topology, _ context: Context, _ watches: inout [Int64: RecoveryWatch]) async {
        let expected = context.expected
        for probe in topology.probes {
            let id = probe.replica.id
            guard let health = topology.health[id] else { continue }
            var watch = watches[id] ?? RecoveryWatch()
            let wasWatched = watch.isWatched
            let action = watch.observe(
                RecoveryWatch.Probe(health), nowMs: clock.nowMs(),
                openSinceMs: expected.firstSeen["\(ReplicaFinding.Kind.catchupUnfinished.rawValue)/\(id)"])
            if !wasWatched, health.isRecovering {
                logger.notice(
                    "replica recovering",
                    metadata: [
                        "milvus.collection": "\(expected.name)", "milvus.replica": "\(id)",
                        "audit.reason": "\(health.reason)",
                    ])
            }
            if case .count = action {
                watch.counted(
                    await count(probe.replica, expected), expected: context.expectedCount, nowMs: clock.nowMs())
            }
            if watch.isWatched { watches[id] = watch }
        }
    }

    /// Sum of per-shard `count(*)` of one replica at T (nil if a shard could not answer).
    func count(_ replica: ReplicaInfo, _ expected: ExpectedCollection) async -> Int64? {
        await source.count(
            replica, collectionID: expected.collectionID, pkFieldID: expected.pkFieldID, pkIsInt: expected.pkIsInt,
            timestamp: expected.timestamp)
    }

    // MARK: 3. read and compare

    /// Reads and compares `replicas` one pk range after another (the log's rows of the range, then every
    /// replica's, all their shards at once, at most `readConcurrency` at a time). A replica that fails a range
    /// is not read further; only differences, counts and witnesses are kept across ranges.
    func sweep(_ context: Context, _ replicas: [ReplicaInfo], ranges: [PKRange]) async throws -> Sweep {
        let expected = context.expected
        var sweep = Sweep()
        sweep.ranges = ranges
        for replica in replicas { sweep.served[replica.id] = Served(replica: replica) }
        for range in ranges {
            try Task.checkCancellation()
            let window = try await expected.view.window(range)
            let cut = ShadowCut(rows: window.rows, timestamp: expected.timestamp, buckets: expected.buckets)
            sweep.totals.add(cut)
            let reading = replicas.filter { sweep.served[$0.id] != nil }
            let reads = await readAll(reading, expected, range: range)
            var answered: [(replica: ReplicaInfo, rows: [ReplicaRow])] = []
            var differs = false
            for replica in reading {
                switch reads[replica.id] ?? .failure(ProbeError("not read")) {
                case .success(let rows):
                    let found = Self.differences(cut, window, rows)
                    sweep.served[replica.id]?.rows += rows.count
                    sweep.served[replica.id]?.pks += Set(rows.lazy.map(\.pk)).count
                    sweep.served[replica.id]?.differences.add(found)
                    differs = differs || !found.isEmpty
                    answered.append((replica, rows))
                case .failure(let error):
                    sweep.failures[replica.id] = error
                    sweep.served[replica.id] = nil
                }
            }
            for (i, a) in answered.enumerated() {
                for b in answered[(i + 1)...] {
                    let pair = Pair(a: a.replica.id, b: b.replica.id)
                    var divergence = sweep.pairs[pair] ?? ReplicaComparison.Divergence()
                    let before = divergence.differing.count
                    divergence.add(a.rows, b.rows)
                    differs = differs || divergence.differing.count > before
                    sweep.pairs[pair] = divergence
                }
            }
            if differs { sweep.dirty.append(range) }
        }
        return sweep
    }

    /// One replica's rows of a range against the log's: bucket digests first, row by row only for the
    /// buckets that differ (and the rows read in full).
    static func differences(_ cut: ShadowCut, _ window: ExpectedWindow, _ rows: [ReplicaRow])
        -> ReplicaComparison.Differences
    {
        let bad = cut.mismatchedBuckets(rows)
        let hashed = Set(rows.lazy.filter { $0.rowHash != nil }.map(\.pk))
        guard !bad.isEmpty || !hashed.isEmpty else { return ReplicaComparison.Differences() }
        return ReplicaComparison.differences(
            timestamp: cut.timestamp,
            shadowRows: window.rows.filter { bad.contains(cut.bucket($0.pk)) || hashed.contains($0.pk) },
            tombstones: window.tombstones.filter { bad.contains(cut.bucket($0.pk)) },
            served: rows.filter { bad.contains(cut.bucket($0.pk)) || $0.rowHash != nil })
    }

    /// Reads one pk range of every replica at T: all their shards at once, at most `readConcurrency` at a
    /// time. Each replica's rows come back in shard order, or the first error of its shards.
    func readAll(_ replicas: [ReplicaInfo], _ expected: ExpectedCollection, range: PKRange) async -> [Int64: Result<
        [ReplicaRow], any Error
    >] {
        let jobs = replicas.enumerated().flatMap { index, replica in
            replica.shards.indices.map { (replica: index, shard: $0) }
        }
        let results = await Bounded.map(jobs, limit: policy.readConcurrency) { [self] job in
            try await read(replicas[job.replica].shards[job.shard], expected, range: range)
        }
        var byReplica: [Int64: Result<[ReplicaRow], any Error>] = [:]
        for (index, replica) in replicas.enumerated() {
            var rows: [ReplicaRow] = []
            var failure: (any Error)?
            for (job, result) in zip(jobs, results) where job.replica == index {
                switch result {
                case .success(let shardRows): rows += shardRows
                case .failure(let error): failure = failure ?? error
                }
            }
            byReplica[replica.id] = failure.map { .failure($0) } ?? .success(rows)
        }
        return byReplica
    }

    /// One pk range of one shard of one replica at T, in the policy's mode.
    func read(_ shard: ReplicaInfo.Shard, _ expected: ExpectedCollection, range: PKRange) async throws
        -> [ReplicaRow]
    {
        if policy.mode == .full, let schema = expected.schema {
            return try await source.fullRows(
                shard: shard, schema: schema, timestamp: expected.timestamp, range: range, after: nil, maxRows: nil,
                pageSize: 500, timeout: policy.readTimeout
            ).map { ReplicaRow(pk: $0.pk, ts: $0.ts, rowHash: $0.rowHash) }
        }
        var rows = try await source.rows(
            shard: shard, collectionID: expected.collectionID, pkFieldID: expected.pkFieldID,
            pkIsInt: expected.pkIsInt, timestamp: expected.timestamp, range: range, pageSize: 10_000,
            timeout: policy.readTimeout)
        if policy.mode == .sample, let schema = expected.schema {
            try await hashSlice(of: &rows, shard: shard, schema: schema, expected, range: range)
        }
        return rows
    }

    /// Sample mode: reads one contiguous slice of the shard's pk-ordered rows of the range in full and puts
    /// the row hashes on those rows (the comparison then checks their content too).
    func hashSlice(
        of rows: inout [ReplicaRow], shard: ReplicaInfo.Shard, schema: CollectionSchemaInfo,
        _ expected: ExpectedCollection, range: PKRange
    ) async throws {
        let slices = max(1, policy.sampleSlices)
        let size = (rows.count + slices - 1) / slices
        let first = (expected.sampleSlice % slices) * size
        guard size > 0, first < rows.count else { return }
        let hashed = try await source.fullRows(
            shard: shard, schema: schema, timestamp: expected.timestamp, range: range,
            after: first > 0 ? rows[first - 1].pk : nil, maxRows: min(size, rows.count - first), pageSize: 500,
            timeout: policy.readTimeout)
        let hashes = Dictionary(hashed.map { ($0.pk, $0.rowHash) }, uniquingKeysWith: { a, _ in a })
        for index in first..<min(first + size, rows.count) { rows[index].rowHash = hashes[rows[index].pk] }
    }

    static func leaders(_ replica: ReplicaInfo) -> [String: String] {
        Dictionary(
            replica.shards.map { ($0.vchannel, "\($0.leaderID)@\($0.leaderAddress)") }, uniquingKeysWith: { a, _ in a })
    }

    // MARK: 4. judge

    struct Judged {
        var records: [AuditRecord] = []
        var unjudged: [String] = []
        var leaders: [Int64: [String: String]] = [:]
        var served: [Served] = []
        /// Data findings waiting for the confirmation re-read.
        var pending: [ReplicaFinding] = []
    }

    /// Judges every replica from its health, its watch and its sweep: unavailable, still catching up (a
    /// `catchup_unfinished`, suspected or — past `catchupBound` — confirmed), or compared with the shadow.
    func judge(_ context: Context, _ topology: Topology, watches: inout [Int64: RecoveryWatch], sweep: Sweep) async
        -> Judged
    {
        let expected = context.expected
        var judged = Judged()
        for probe in topology.probes {
            let replica = probe.replica
            let health = topology.health[replica.id] ?? .unreachable("not probed")
            if case .unreachable(let why) = health {
                judged.unjudged.append("replica \(replica.id): \(why)")
                judged.records.append(AuditRecord(unreachable(expected, replica, why: why), .suspected))
                continue
            }
            judged.leaders[replica.id] = Self.leaders(replica)
            guard let served = sweep.served[replica.id] else {
                let error = sweep.failures[replica.id] ?? ProbeError("not read")
                let lagging =
                    (error as? TransportError)?.isDeadlineExceeded == true
                    || (error as? MilvusError)?.isDeadlineExceeded == true
                let why = lagging ? "lagging: has not reached T within \(policy.readTimeout)" : "\(error)"
                judged.unjudged.append("replica \(replica.id): \(why)")
                judged.records.append(
                    AuditRecord(
                        ReplicaFinding(
                            kind: .replicaUnavailable, collectionID: expected.collectionID, replicaID: replica.id,
                            nodeIDs: replica.nodeIDs, pks: [], pkCount: 0, timestamp: expected.timestamp,
                            evidence: "replica could not be read at T: \(why)", leaders: Self.leaders(replica)),
                        .suspected))
                continue
            }
            let watch = watches[replica.id] ?? RecoveryWatch()
            if health.isRecovering, watch.isCatchingUp {
                // Still recovering when the watch ended: short answers are catch-up, not (yet) loss.
                let missing = served.differences.missing
                let finding = catchup(
                    expected, replicaID: replica.id, nodeIDs: replica.nodeIDs, leaders: Self.leaders(replica),
                    watch: watch, missing: missing.first, missingCount: missing.count)
                let overdue = clock.nowMs() - watch.sinceMs >= policy.catchupBound.milliseconds64
                judged.records.append(AuditRecord(finding, overdue ? .confirmed : .suspected))
                judged.unjudged.append("replica \(replica.id): recovering (\(watch.lastReason))")
                continue
            }
            if watch.caughtUpAtMs != nil {
                if watch.fromBehind {
                    judged.records.append(
                        AuditRecord(
                            catchup(
                                expected, replicaID: replica.id, nodeIDs: replica.nodeIDs,
                                leaders: Self.leaders(replica), watch: watch), .resolved))
                } else {
                    logger.info(
                        "replica lacked a sealed segment for a moment while serving every row (handoff)",
                        metadata: [
                            "milvus.collection": "\(expected.name)", "milvus.replica": "\(replica.id)",
                            "audit.reason": "\(watch.lastReason)",
                        ])
                }
            }
            judged.served.append(served)
        }
        judged.pending = await findings(context, judged.served, totals: sweep.totals)
        judged.pending += Self.divergences(expected, judged.served, sweep.pairs, explainedBy: judged.pending)
        return judged
    }

    /// `replica_unavailable` for a replica that cannot be asked, naming the node that served it last (the
    /// replica may have lost its node altogether).
    func unreachable(_ expected: ExpectedCollection, _ replica: ReplicaInfo, why: String) -> ReplicaFinding {
        let last = expected.lastLeaders[replica.id] ?? [:]
        let leaders = Self.leaders(replica).isEmpty ? last : Self.leaders(replica)
        var evidence = "replica cannot be asked: \(why)"
        if !last.isEmpty { evidence += "; last served by \(Set(last.values).sorted().joined(separator: ", "))" }
        return ReplicaFinding(
            kind: .replicaUnavailable, collectionID: expected.collectionID, replicaID: replica.id,
            nodeIDs: replica.nodeIDs.isEmpty ? ShardLeaders.nodeIDs(last).sorted() : replica.nodeIDs, pks: [],
            pkCount: 0, timestamp: expected.timestamp, evidence: evidence, leaders: leaders)
    }

    /// Replica-vs-replica differences, pair by pair, that the comparison with the log does not already
    /// attribute. While the history is complete the log decides which replica deviates (a replica that
    /// matches the log is right), so a pair differs only where a finding against the log names the deviating
    /// replica: that finding says it all, and no divergence names the healthy replica beside it. With an
    /// incomplete history every difference is reported as a divergence naming both replicas.
    static func divergences(
        _ expected: ExpectedCollection, _ served: [Served], _ pairs: [Pair: ReplicaComparison.Divergence],
        explainedBy logFindings: [ReplicaFinding]
    ) -> [ReplicaFinding] {
        let deviating = Set(logFindings.map(\.replicaID))
        var found: [ReplicaFinding] = []
        for (i, a) in served.enumerated() {
            for b in served[(i + 1)...] {
                if expected.historyComplete && (deviating.contains(a.replica.id) || deviating.contains(b.replica.id)) {
                    continue
                }
                let (first, second) = pairs[Pair(a: a.replica.id, b: b.replica.id)] != nil ? (a, b) : (b, a)
                guard let divergence = pairs[Pair(a: first.replica.id, b: second.replica.id)] else { continue }
                if let finding = divergence.finding(
                    collectionID: expected.collectionID, timestamp: expected.timestamp,
                    .init(id: first.replica.id, nodeIDs: first.replica.nodeIDs, rows: []),
                    .init(id: second.replica.id, nodeIDs: second.replica.nodeIDs, rows: []))
                {
                    found.append(finding)
                }
            }
        }
        return found
    }

    /// The findings of every replica read, from its differences with the log; a replica serving the log's pks
    /// is also asked its `count(*)` (do the versions add up too?), replicas concurrently, in the order of `served`.
    func findings(_ context: Context, _ served: [Served], totals: ReplicaComparison.LogTotals) async
        -> [ReplicaFinding]
    {
        let expected = context.expected
        return await Bounded.map(served, limit: policy.readConcurrency) { [self] read in
            let replica = ReplicaComparison.Replica(id: read.replica.id, nodeIDs: read.replica.nodeIDs, rows: [])
            var found = read.differences.findings(
                collectionID: expected.collectionID, timestamp: expected.timestamp, replica: replica,
                expectedCount: totals.pks, servedCount: read.pks)
            // Same pks as the log: do the versions add up too? `count(*)` counts every stored version.
            if found.isEmpty, let counted = await count(read.replica, expected) {
                found +=
                    ReplicaComparison.versions(
                        collectionID: expected.collectionID, timestamp: expected.timestamp, totals: totals,
                        replica: replica, counted: counted
                    ).map { [$0] } ?? []
            }
            return found.map {
                var finding = $0
                finding.leaders = Self.leaders(read.replica)
                return finding
            }
        }.flatMap { (try? $0.get()) ?? [] }
    }

    func catchup(
        _ expected: ExpectedCollection, replicaID: Int64, nodeIDs: [Int64], leaders: [String: String],
        watch: RecoveryWatch, missing: [PrimaryKey] = [], missingCount: Int = 0
    ) -> ReplicaFinding {
        let end = watch.caughtUpAtMs
        let seconds = Double((end ?? clock.nowMs()) - watch.sinceMs) / 1000
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

    // MARK: 5. confirm

    /// The same T, read again after the settle delay — only the pk ranges that differed in the first sweep —
    /// from the replicas still serving (or still recovering as when they were judged — a recovering replica is
    /// judged only once its exact count says it caught up; one that was serving and is recovering now,
    /// restarted in between, may answer partially: not re-read). A pending finding seen again the same is
    /// confirmed; otherwise it stays suspected and says why.
    func confirm(
        _ context: Context, _ pending: [ReplicaFinding], served: [Served], first: Sweep, judgedIn topology: Topology
    ) async throws -> [AuditRecord] {
        guard !pending.isEmpty else { return [] }
        let expected = context.expected
        try await clock.sleep(for: policy.settle)
        let again = await probe(expected)
        var notReread: [Int64: String] = [:]
        var rereadable: [ReplicaInfo] = []
        for read in served {
            let health = again.health[read.replica.id] ?? .unreachable(again.error ?? "not listed")
            let judgedRecovering = topology.health[read.replica.id]?.isRecovering == true
            guard health.isServing || health.isRecovering && judgedRecovering,
                let current = again.probes.first(where: { $0.replica.id == read.replica.id })?.replica
            else {
                notReread[read.replica.id] = health.reason
                continue
            }
            rereadable.append(current)
        }
        let sweep = try await sweep(context, rereadable, ranges: first.dirty)
        let reread = rereadable.compactMap { sweep.served[$0.id] }
        for (id, error) in sweep.failures { notReread[id] = "\(error)" }
        var confirmedNow = await findings(context, reread, totals: first.totals)
        confirmedNow += Self.divergences(expected, reread, sweep.pairs, explainedBy: confirmedNow)
        return pending.map { finding in
            let same = confirmedNow.contains {
                $0.kind == finding.kind && $0.replicaID == finding.replicaID
                    && $0.peerReplicaID == finding.peerReplicaID && $0.pks == finding.pks
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
            return record
        }
    }
}

extension ReplicaSource {
    /// Sum of the per-shard `count(*)` of one replica at `timestamp`, all shards at once; nil if a shard could
    /// not answer within `timeout`.
    public func count(
        _ replica: ReplicaInfo, collectionID: Int64, pkFieldID: Int64, pkIsInt: Bool, timestamp: UInt64,
        timeout: Duration = .seconds(2)
    ) async -> Int64? {
        let counts = await Bounded.map(replica.shards, limit: replica.shards.count) { [self] shard in
            try await count(
                shard: shard, collectionID: collectionID, pkFieldID: pkFieldID, pkIsInt: pkIsInt,
                timestamp: timestamp, timeout: timeout)
        }
        var total: Int64 = 0
        for count in counts {
            guard case .success(let n) = count else { return nil }
            total += n
        }
        return total
    }
}

/// A bounded task group: runs `body` over `items` with at most `limit` at a time; results in item order.
enum Bounded {
    static func map<Item: Sendable, Output: Sendable>(
        _ items: [Item], limit: Int, _ body: @escaping @Sendable (Item) async throws -> Output
    ) async -> [Result<Output, any Error>] {
        var results = [Result<Output, any Error>?](repeating: nil, count: items.count)
        await withTaskGroup(of: (Int, Result<Output, any Error>).self) { group in
            var next = 0
            func start() {
                let index = next
                let item = items[index]
                next += 1
                group.addTask {
                    do { return (index, .success(try await body(item))) } catch { return (index, .failure(error)) }
                }
            }
            while next < min(max(1, limit), items.count) { start() }
            for await (index, result) in group {
                results[index] = result
                if next < items.count { start() }
            }
        }
        return results.map { $0! }
    }
}
