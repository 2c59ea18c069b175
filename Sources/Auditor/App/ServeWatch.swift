import AuditorAlerting
import AuditorAudit
import AuditorCore
import AuditorKafka
import AuditorMilvus
import AuditorReport
import AuditorShadow
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

// MARK: restart watch

/// Follows QueryNode sessions in Milvus's etcd (a watch, not a poll per round) and, the moment a node of a
/// replica leaves or a new one registers, probes that replica until it holds every version the log has at
/// the shadow's cut: each restart becomes a `RestartRecord` (down, serving again, caught up, rows short).
struct RestartWatchService: Service {
    let context: ServeContext
    let events = SessionEvents()

    init(context: ServeContext) { self.context = context }

    var feed: (any SessionFeed)? {
        guard context.settings.watchRestarts else { return nil }
        return context.configuration.sessions ?? context.settings.milvusEtcd
    }

    func run() async throws {
        guard let feed else {
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await watch(feed) }
                group.addTask { await probeLoop() }
                await group.waitForAll()
            }
        }
    }

    /// Sessions as they change; after a broken watch, the sessions read again are compared with those known
    /// so that nothing that happened in between is missed.
    func watch(_ feed: any SessionFeed) async {
        var known: [Int64: String]?
        while !Task.isCancelled {
            do {
                let (nodes, revision) = try await feed.queryNodeSessions()
                let now = context.clock.nowMs()
                if let before = known {
                    for id in before.keys where nodes[id] == nil { events.append(.down(nodeID: id), at: now) }
                    for (id, address) in nodes where before[id] == nil {
                        events.append(.up(nodeID: id, address: address), at: now)
                    }
                }
                known = nodes
                let clock = context.clock
                try await feed.watchQueryNodes(fromRevision: revision + 1) { [events] event in
                    events.append(event, at: clock.nowMs())
                }
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                context.logger.warning("etcd session watch failed; retrying", metadata: ["error": "\(error)"])
            }
            try? await context.clock.sleep(for: .seconds(1))
        }
    }

    func probeLoop() async {
        var tracker = RestartTracker(catchupBound: context.settings.catchupBound)
        var lastMembership: Int64?
        var schemas: [Int64: CollectionSchemaInfo] = [:]
        while !Task.isCancelled {
            let now = context.clock.nowMs()
            let pending = events.drain()
            // Membership every 30 s (every second until there is one): a node going away is looked up in the
            // membership from before it went (a listing after it may already show its replacement); a node
            // not known yet asks for a fresh listing first.
            let unknownDown = pending.contains {
                if case .down(let node) = $0.0 { !tracker.members.values.contains { $0.contains(node) } } else { false }
            }
            let interval: Int64 = tracker.members.isEmpty ? 1000 : 30_000
            if lastMembership.map({ now - $0 > interval }) ?? true || unknownDown {
                if let members = await membership() { tracker.membership(members) }
                lastMembership = now
            }
            for (event, at) in pending {
                switch event {
                case .down(let node):
                    context.logger.notice("QueryNode session gone", metadata: ["milvus.node": "\(node)"])
                    for record in tracker.nodeDown(node, atMs: at) { await persist(record, opened: true, &schemas) }
                case .up(let node, let address):
                    context.logger.notice(
                        "QueryNode session registered",
                        metadata: ["milvus.node": "\(node)", "milvus.address": "\(address)"])
                    tracker.nodeUp(node, atMs: at)
                }
            }
            if tracker.needsProbing {
                await probe(&tracker, &schemas)
                tracker.forgetArrivals(olderThan: .seconds(300), nowMs: context.clock.nowMs())
                try? await context.clock.sleep(for: context.configuration.restartProbeInterval)
            } else {
                try? await context.clock.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Every replica of every live collection with its nodes (nil when Milvus cannot be asked).
    func membership() async -> [RestartTracker.Key: Set<Int64>]? {
        guard var collections = try? await context.store.perform({ try $0.liveCollections() }) else { return nil }
        let wanted = Set(context.configuration.collections)
        if !wanted.isEmpty {
            collections = collections.filter { wanted.contains($0.name) || wanted.contains(String($0.id)) }
        }
        var members: [RestartTracker.Key: Set<Int64>] = [:]
        for collection in collections {
            guard let replicas = try? await context.source.replicas(collectionID: collection.id) else { continue }
            for replica in replicas {
                members[RestartTracker.Key(collectionID: collection.id, replicaID: replica.id)] = Set(replica.nodeIDs)
            }
        }
        return members
    }

    /// One probe of every replica with an open window or a newly registered node: a count at the shadow's
    /// cut T against the live versions the log has at T. Caught up: exactly the log's count, as the audit's
    /// recovery watch judges a recovering replica (a replica loading with a wrong delta log answers more).
    func probe(_ tracker: inout RestartTracker, _ schemas: inout [Int64: CollectionSchemaInfo]) async {
        let collections = Set(tracker.open.keys.map(\.collectionID)).union(
            tracker.arrived.isEmpty ? [] : Set(tracker.members.keys.map(\.collectionID)))
        guard let checkpoints = try? await context.store.perform({ try $0.checkpoints() }) else { return }
        for collectionID in collections.sorted() {
            guard let schema = await schema(collectionID, &schemas), let pk = schema.primaryKey else { continue }
            guard let t = ChannelCheckpoint.cut(of: schema.physicalChannels, in: checkpoints) else { continue }
            guard
                let expected = try? await context.store.perform({
                    try $0.expectedCount(collectionID: collectionID, at: t)
                })
            else { continue }
            let replicas = (try? await context.source.replicas(collectionID: collectionID)) ?? []
            var seen: Set<Int64> = []
            for replica in replicas {
                let key = RestartTracker.Key(collectionID: collectionID, replicaID: replica.id)
                let nodes = Set(replica.nodeIDs)
                guard tracker.open[key] != nil || !nodes.isDisjoint(with: tracker.arrived.keys) else { continue }
                seen.insert(replica.id)
                // A replica listed without shards answers nothing (not 0 rows).
                let count =
                    replica.shards.isEmpty
                    ? nil
                    : await context.source.count(
                        replica, collectionID: collectionID, pkFieldID: pk.id, pkIsInt: pk.type == .int64, timestamp: t)
                let at = context.clock.nowMs()
                let wasOpen = tracker.open[key] != nil
                for record in tracker.observe(
                    key, nodes: nodes, answered: count != nil, short: max(0, expected - (count ?? 0)),
                    caughtUp: count == expected, atMs: at)
                {
                    let own = record.collectionID == collectionID && record.replicaID == replica.id
                    await persist(record, opened: !own || !wasOpen, &schemas)
                }
            }
            // Replicas with an open window that Milvus did not list (no node serves them yet): not answering.
            for key in tracker.open.keys where key.collectionID == collectionID && !seen.contains(key.replicaID) {
                for record in tracker.observe(
                    key, nodes: [], answered: false, short: 0, caughtUp: false, atMs: context.clock.nowMs())
                {
                    await persist(record, opened: false, &schemas)
                }
            }
        }
    }

    func schema(_ id: Int64, _ schemas: inout [Int64: CollectionSchemaInfo]) async -> CollectionSchemaInfo? {
        if let known = schemas[id] { return known }
        guard let schema = try? await context.catalog.schema(collectionID: id) else { return nil }
        schemas[id] = schema
        return schema
    }

    func persist(_ record: RestartRecord, opened: Bool, _ schemas: inout [Int64: CollectionSchemaInfo]) async {
        do {
            try await context.store.perform { try $0.recordRestart(record) }
        } catch {
            context.logger.error("restart record not stored", metadata: ["error": "\(error)"])
        }
        let name = await schema(record.collectionID, &schemas)?.name ?? String(record.collectionID)
        context.metrics.restart(record, opened: opened, collection: name, nowMs: context.clock.nowMs())
        context.logger.notice(
            "replica restart window",
            metadata: [
                "milvus.collection": "\(name)", "milvus.replica": "\(record.replicaID)",
                "milvus.nodes.old": "\(record.oldNodes)", "milvus.nodes.new": "\(record.newNodes)",
                "restart.state": "\(record.state.rawValue)", "restart.rows_short_max": "\(record.rowsShortMax)",
                "restart.serving_behind_seconds": "\(record.servingBehindSeconds(nowMs: context.clock.nowMs()) ?? 0)",
            ])
    }
}

/// Session events as they arrive, drained by the probe loop.
final class SessionEvents: Sendable {
    private let queue = Mutex<[(SessionEvent, Int64)]>([])
    func append(_ event: SessionEvent, at ms: Int64) { queue.withLock { $0.append((event, ms)) } }
    func drain() -> [(SessionEvent, Int64)] {
        queue.withLock { queue in
            defer { queue.removeAll() }
            return queue
        }
    }
}

// MARK: lag and retention

/// Every `lagInterval`: auditd's own consumption per pchannel and Milvus's DataCoord checkpoints per
/// vchannel against the log's end, as Burrow-style lag states, and the retention headroom of both.
struct LagService: Service {
    let context: ServeContext

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            var own: [String: LagWindow] = [:]
            var milvus: [String: LagWindow] = [:]
            var kafka: (any KafkaLog)?
            var retention = Retention()
            while !Task.isCancelled {
                if kafka == nil { kafka = try? context.app.makeKafkaLog() }
                await retention.refresh(kafka, context)
                await evaluate(kafka, &own, &milvus, retention: retention)
                try await context.clock.sleep(for: context.configuration.lagInterval)
            }
        }
    }

    /// Each DML topic's retention: `retention.ms` as the broker describes it (DescribeConfigs, asked every 10
    /// minutes), else `--kafka-retention` (the local Tansu broker describes topics without it). nil: unlimited.
    struct Retention {
        var byTopic: [String: (duration: Duration?, source: String)] = [:]
        var askedMs: Int64?

        mutating func refresh(_ kafka: (any KafkaLog)?, _ context: ServeContext) async {
            let now = context.clock.nowMs()
            if let asked = askedMs, now - asked < 600_000 { return }
            guard let topics = try? await context.store.perform({ try Array($0.checkpoints().keys) }), !topics.isEmpty
            else { return }
            askedMs = now
            for topic in topics {
                let described = try? await kafka?.topicConfig(topic: topic, timeout: .seconds(5))
                if let text = described?["retention.ms"], let ms = Int64(text) {
                    byTopic[topic] = (ms < 0 ? nil : .milliseconds(ms), "broker")
                } else {
                    byTopic[topic] = (context.settings.kafkaRetention, "flag")
                }
            }
        }

        func of(_ topic: String, _ context: ServeContext) -> Duration? {
            byTopic[topic].map(\.duration) ?? context.settings.kafkaRetention
        }
    }

    func evaluate(
        _ kafka: (any KafkaLog)?, _ own: inout [String: LagWindow], _ milvus: inout [String: LagWindow],
        retention: Retention
    ) async {
        guard let checkpoints = try? await context.store.perform({ try $0.checkpoints() }) else { return }
        // The log's end from the broker itself (a stuck ingest must not hide its own lag).
        var heads: [String: Int64] = [:]
        if let kafka, !checkpoints.isEmpty,
            let marks = try? await kafka.watermarks(
                topics: checkpoints.keys.sorted(), partition: 0, timeout: .seconds(5))
        {
            heads = marks.mapValues(\.high)
        }
        let now = context.clock.nowMs()
        var ownLags: [AuditorMetrics.ChannelLag] = []
        var evaluations: [String: LagEvaluation] = [:]
        var headroom: [(pchannel: String, consumer: String, seconds: Double?)] = []
        for (pchannel, cp) in checkpoints.sorted(by: { $0.key < $1.key }) {
            let head = max(heads[pchannel] ?? cp.highWatermark, cp.nextOffset)
            var window = own[pchannel] ?? LagWindow()
            window.add(
                LagSample(
                    atMs: now, position: cp.nextOffset, head: head, reachedTs: cp.tickTs,
                    dataBehind: context.dataOffsets.count(
                        topic: pchannel, from: cp.nextOffset, to: head, consumedUpTo: cp.nextOffset)))
            own[pchannel] = window
            let evaluation = window.evaluate(nowMs: now)
            evaluations[pchannel] = evaluation
            ownLags.append(
                .init(
                    pchannel: pchannel, messages: evaluation.lagMessages,
                    seconds: ShadowReport.lagSeconds(cp, head: head, nowMs: now) ?? 0,
                    status: evaluation.status.rawValue))
            if let kept = retention.of(pchannel, context), cp.tickTs > 0 {
                headroom.append(
                    (
                        pchannel, "auditd",
                        RetentionHeadroom.seconds(
                            oldestUnconsumedMs: HybridTimestamp.physicalMilliseconds(cp.tickTs), retention: kept,
                            nowMs: now)
                    ))
            }
        }
        var milvusLags: [AuditorMetrics.ChannelLag] = []
        var milvusEvaluations: [String: LagEvaluation] = [:]
        let positions: [String: ChannelPosition]
        do {
            positions = try await
                (context.configuration.milvusCheckpoints ?? {
                    try await context.settings.milvusEtcd.channelCheckpoints()
                })()
        } catch {
            positions = [:]
        }
        var oldestMilvus: [String: UInt64] = [:]
        for (vchannel, position) in positions.sorted(by: { $0.key < $1.key }) {
            let pchannel = position.pchannel
            guard let cp = checkpoints[pchannel], let offset = position.offset else { continue }
            let head = max(heads[pchannel] ?? cp.highWatermark, cp.nextOffset)
            let next = offset + 1  // the checkpoint is the position of the last record it covers
            // Milvus's DataNode moves its checkpoint when it syncs (every 10 min when idle, by default): judged
            // over 30 samples a minute apart, and silent for 15 min before a STOP.
            var window =
                milvus[vchannel] ?? LagWindow(capacity: 30, spacing: .seconds(60), minimumSilence: .seconds(900))
            window.add(
                LagSample(
                    atMs: now, position: next, head: head, reachedTs: position.timestamp,
                    dataBehind: context.dataOffsets.count(
                        topic: pchannel, from: next, to: head, consumedUpTo: cp.nextOffset)))
            milvus[vchannel] = window
            let evaluation = window.evaluate(nowMs: now, headTs: cp.tickTs)
            milvusEvaluations[vchannel] = evaluation
            milvusLags.append(
                .init(
                    pchannel: pchannel, vchannel: vchannel, messages: evaluation.lagMessages,
                    seconds: evaluation.lagSeconds, status: evaluation.status.rawValue))
            oldestMilvus[pchannel] = min(oldestMilvus[pchannel] ?? .max, position.timestamp)
        }
        for (pchannel, ts) in oldestMilvus {
            guard let kept = retention.of(pchannel, context) else { continue }
            headroom.append(
                (
                    pchannel, "milvus",
                    RetentionHeadroom.seconds(
                        oldestUnconsumedMs: HybridTimestamp.physicalMilliseconds(ts), retention: kept, nowMs: now)
                ))
        }
        context.metrics.retentionUsed(
            retention.byTopic.compactMapValues { entry in
                entry.duration.map { (seconds: Double($0.components.seconds), source: entry.source) }
            })
        context.metrics.lag(auditd: ownLags, milvus: milvusLags)
        context.metrics.retention(headroom)
        context.status.withLock {
            $0.lag = evaluations
            $0.milvusLag = milvusEvaluations
        }
    }
}
