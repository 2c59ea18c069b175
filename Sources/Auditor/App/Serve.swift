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

/// Where QueryNode sessions come from: Milvus's etcd (`MilvusEtcd`) or a test double.
public protocol SessionFeed: Sendable {
    /// The live QueryNodes and the revision they were read at.
    func queryNodeSessions() async throws -> (nodes: [Int64: String], revision: Int64)
    /// Every session change from `revision` on, as it happens; returns when the feed ends.
    func watchQueryNodes(fromRevision revision: Int64, onEvent: @escaping @Sendable (SessionEvent) -> Void)
        async throws
}

extension MilvusEtcd: SessionFeed {}

/// Everything `auditd serve` is built from: the application's configuration (settings, Kafka, clock,
/// logger) and the seams to Milvus, its etcd and Alertmanager (nil: the real ones).
public struct ServeConfiguration: Sendable {
    public var application: AuditorConfiguration
    public var source: (any ReplicaSource)?
    public var catalog: (any CollectionCatalog)?
    public var sessions: (any SessionFeed)?
    /// DataCoord's channel checkpoints (Milvus's consumers); nil: read from etcd.
    public var milvusCheckpoints: (@Sendable () async throws -> [String: ChannelPosition])?
    public var alertPost: (@Sendable (String, [UInt8]) async throws -> Int)?
    /// Called with the HTTP port once the server listens (port 0 in the settings picks a free one).
    public var onListening: (@Sendable (Int) async -> Void)?
    /// Only these collections (names or ids); empty: every loaded collection.
    public var collections: [String] = []
    /// How often lag states and retention headroom are evaluated.
    public var lagInterval = Duration.seconds(10)
    /// How often restarted replicas are probed while a restart window is open.
    public var restartProbeInterval = Duration.milliseconds(300)

    public init(application: AuditorConfiguration) { self.application = application }

    var settings: Settings { application.settings }
}

/// What the services of one `serve` share: the state directory (locked), the shadow, the metrics, and the
/// service's own status (rounds since start, lag states) for `/readyz`.
final class ServeContext: Sendable {
    let app: Application
    let configuration: ServeConfiguration
    let lock: StateLock
    let store: ShadowStore
    let metrics: AuditorMetrics
    /// Milvus's replicas and schemas: one reader for every service (the real ones unless configured).
    let source: any ReplicaSource
    let catalog: any CollectionCatalog
    let dataOffsets = DataOffsets()
    let status = Mutex(Status())
    let logger: Logger

    struct Status {
        var startedMs: Int64 = 0
        var roundsCompleted = 0
        var lastRound: RoundOutcome?
        var lastFullMs: Int64 = 0
        var lastStats = ShadowIngester.Stats()
        /// Records were ingested since the allocator last returned freed pages.
        var ingestedSinceTrim = false
        var lag: [String: LagEvaluation] = [:]
        var milvusLag: [String: LagEvaluation] = [:]
        var alerts: [String: AlertmanagerPusher.Alert] = [:]
        /// Why the state directory refuses commits (disk full, I/O error, read-only); nil while it takes them.
        var storageProblem: String?
    }

    init(_ configuration: ServeConfiguration) throws {
        self.configuration = configuration
        app = buildApplication(configuration.application)
        logger = configuration.application.logger
        lock = try StateLock(directory: configuration.settings.stateDirectory, command: "serve")
        store = try app.openCheckedStore(configuration.settings.stateDirectory)
        metrics = AuditorMetrics(version: AuditorVersion.current, auditInterval: configuration.settings.auditInterval)
        let settings = configuration.settings
        source =
            configuration.source
            ?? ReplicaReader(milvus: settings.milvus, etcd: settings.milvusEtcd, clock: configuration.application.clock)
        catalog = configuration.catalog ?? MilvusClient(target: settings.milvus)
        let now = app.clock.nowMs()
        status.withLock {
            $0.startedMs = now
            $0.lastFullMs = now
        }
    }

    var settings: Settings { configuration.settings }
    var clock: any AuditorClock { app.clock }

    /// Metrics from the shadow's current summary (after a round, at start); returns the summary read.
    @discardableResult
    func refreshMetrics() async -> ShadowSummary? {
        do {
            let summary = try await store.perform { try $0.summary() }
            let round = status.withLock { $0.lastRound }
            metrics.refresh(summary: summary, round: round, nowMs: clock.nowMs())
            return summary
        } catch {
            logger.warning("metrics refresh failed", metadata: ["error": "\(error)"])
            return nil
        }
    }
}

/// `auditd serve`: one `ServiceGroup` of ingest, audit timer, restart watch, lag evaluation and the HTTP
/// server; SIGTERM/SIGINT shut it down gracefully (a round in flight is cancelled, the last commit
/// finishes). Takes the state directory's lock at once: a second writer fails here, naming the holder.
public func buildApplication(_ configuration: ServeConfiguration) throws -> ServiceGroup {
    let context = try ServeContext(configuration)
    let services: [any Service] = [
        IngestService(context: context), AuditService(context: context), RestartWatchService(context: context),
        LagService(context: context), HTTPService(context: context),
    ]
    return ServiceGroup(
        configuration: ServiceGroupConfiguration(
            services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
            gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [],
            logger: configuration.application.logger))
}

// MARK: ingest

/// Follows every pchannel into the shadow, as `run` does; the only writer of the shadow's rows. Retries
/// while Kafka is away (the outage is recorded for the report and the metrics).
struct IngestService: Service {
    let context: ServeContext

    func run() async throws {
        let stop = StopFlag()
        let settings = context.settings
        try await withGracefulShutdownHandler {
            while !stop.isStopped && !Task.isCancelled {
                do {
                    _ = try await context.app.ingest(
                        RunOptions(
                            stateDirectory: settings.stateDirectory,
                            milvus: settings.milvusGiven ? settings.milvus : nil),
                        stop: stop, store: context.store, dataOffsets: context.dataOffsets
                    ) { stats in noteProgress(stats) }
                    return
                } catch let error as KafkaError where error.isRetriable {
                    context.logger.error("kafka unreachable; retrying", metadata: ["error": "\(error)"])
                    let since = context.clock.nowMs()
                    try? await context.store.perform { try $0.recordKafkaOutage(sinceMs: since) }
                    context.metrics.kafkaReachable(false)
                    try? await context.app.pause(.seconds(2), unless: stop)
                } catch let error where ShadowStore.storageProblem(error) != nil {
                    // Nothing half-written: the transaction rolled back. A new ingest resumes from the last commit.
                    let problem = ShadowStore.storageProblem(error)!
                    context.logger.error(
                        "state directory cannot be written; ingest paused, retrying every 5 s",
                        metadata: ["error": "\(problem)", "state": "\(settings.stateDirectory)"])
                    context.status.withLock { $0.storageProblem = problem }
                    context.metrics.stateWritable(false)
                    try? await context.app.pause(.seconds(5), unless: stop)
                }
            }
        } onGracefulShutdown: {
            stop.stop()
        }
    }

    /// Counter deltas since the last progress report (a restarted ingest starts its counters over).
    func noteProgress(_ stats: ShadowIngester.Stats) {
        let (last, burstEnded) = context.status.withLock { status in
            let last = status.lastStats
            status.lastStats = stats
            // data, not time ticks (those keep arriving on an idle log)
            let reading = stats.insertedRows + stats.deletedKeys != last.insertedRows + last.deletedKeys
            defer { status.ingestedSinceTrim = reading }
            return (last, status.ingestedSinceTrim && !reading)
        }
        // A burst of records (a backlog, a bulk insert) is over: give the pages it freed back, as a round does.
        if burstEnded { ProcessMemory.trim() }
        if stats.commits > 0 {
            let recovered = context.status.withLock { status in
                defer { status.storageProblem = nil }
                return status.storageProblem
            }
            if let recovered {
                context.logger.warning("state directory writable again", metadata: ["was": "\(recovered)"])
            }
            context.metrics.stateWritable(true)
        }
        let base = stats.records >= last.records ? last : ShadowIngester.Stats()
        context.metrics.ingested(
            records: Int64(stats.records - base.records), inserted: Int64(stats.insertedRows - base.insertedRows),
            deleted: Int64(stats.deletedKeys - base.deletedKeys),
            undecodable: Int64(stats.undecodable - base.undecodable),
            gapRereads: Int64(stats.gapRereads - base.gapRereads))
        context.metrics.kafkaReachable(true)
    }
}

// MARK: audit

/// A round every `audit-interval` on the committed shadow (never re-ingesting, never blocking ingest): pk
/// mode, and full mode every `full-interval` (over everything, or a rotating 1/`full-sample` of the rows).
/// After each round: metrics, and confirmed findings pushed to Alertmanager when configured.
struct AuditService: Service {
    let context: ServeContext

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                // The first round soon after start (readiness waits for it), then on the interval.
                await context.refreshMetrics()
                try await context.clock.sleep(for: min(context.settings.auditInterval, .seconds(5)))
                while !Task.isCancelled {
                    await round()
                    try await context.clock.sleep(for: context.settings.auditInterval)
                }
            }
        } catch is CancellationError {
            return  // shutting down
        }
    }

    func round() async {
        let settings = context.settings
        let clock = context.clock
        let startedMs = clock.nowMs()
        var policy = settings.auditPolicy
        policy.mode = .pk
        let full = context.status.withLock { startedMs - $0.lastFullMs >= settings.fullInterval.milliseconds64 }
        if full {
            policy.mode = settings.fullSample == nil ? .full : .sample
            policy.sampleSlices = settings.fullSample ?? policy.sampleSlices
        }
        let options = AuditOptions(
            stateDirectory: settings.stateDirectory, milvus: settings.milvus, policy: policy,
            collections: context.configuration.collections, etcd: settings.milvusEtcd)
        let outcome: RoundOutcome
        do {
            let summary = try await context.app.auditShadow(
                options, store: context.store, source: context.source, catalog: context.catalog)
            outcome =
                summary.round
                ?? RoundOutcome(
                    startedMs: startedMs, finishedMs: clock.nowMs(), mode: policy.mode, collections: [], confirmed: 0)
            context.logger.info("audit round", metadata: ["audit.summary": "\(summary.line)"])
        } catch is CancellationError {
            return
        } catch {
            if Task.isCancelled { return }
            outcome = await context.app.recordFailedRound(
                store: context.store, mode: policy.mode, startedMs: startedMs, error: error)
            context.logger.error("audit round failed", metadata: ["error": "\(error)"])
        }
        context.status.withLock {
            $0.lastRound = outcome
            $0.roundsCompleted += 1
            if full && outcome.result != .failed { $0.lastFullMs = startedMs }
        }
        // Its findings and coverage first: whoever sees the round counted sees what it found.
        let summary = await context.refreshMetrics()
        context.metrics.roundFinished(outcome)
        if let summary { await pushAlerts(summary) }
        // A round holds one pk range's rows at a time; give the freed pages back between rounds.
        ProcessMemory.trim()
    }

    /// Pushes the confirmed findings of `summary` (the one the metrics were just refreshed from).
    func pushAlerts(_ summary: ShadowSummary) async {
        guard let url = context.settings.alertmanager else { return }
        let pusher = AlertmanagerPusher(
            url: url, stateDirectory: context.settings.stateDirectory, resend: context.settings.auditInterval,
            post: context.configuration.alertPost)
        do {
            let previous = context.status.withLock { $0.alerts }
            let firing = try await pusher.push(summary, previous: previous, nowMs: context.clock.nowMs())
            context.status.withLock { $0.alerts = firing }
        } catch {
            context.logger.warning(
                "alertmanager push failed", metadata: ["error": "\(error)", "url": "\(Redaction.url(url))"])
        }
    }
}
