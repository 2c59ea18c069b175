import AuditorAudit
import AuditorCore
import AuditorKafka
import AuditorMilvus
import AuditorReport
import AuditorShadow
import Foundation
import Logging
import Synchronization

public struct RunOptions: Sendable {
    public var stateDirectory: String
    /// Consume up to the high watermarks seen at start, commit, exit.
    public var once: Bool
    public var shadow: ShadowConfiguration
    /// Milvus proxy (gRPC, HOST:PORT) asked for schemas of collections whose CreateCollection is not in the log.
    public var milvus: String?
    public init(
        stateDirectory: String, once: Bool = false, shadow: ShadowConfiguration = ShadowConfiguration(),
        milvus: String? = nil
    ) {
        self.stateDirectory = stateDirectory
        self.once = once
        self.shadow = shadow
        self.milvus = milvus
    }
}

extension Application {
    /// `auditd run`: follows every pchannel into the shadow until stopped (or, with `once`, until the
    /// end of the log as it was at start).
    public func run(
        _ options: RunOptions, stop: StopFlag = StopFlag(), progress: ((ShadowIngester.Stats) -> Void)? = nil
    )
        async throws -> ShadowIngester.Stats
    {
        let lock = try StateLock(directory: options.stateDirectory, command: options.once ? "run --once" : "run")
        defer { lock.release() }
        return try await ingest(options, stop: stop, progress: progress)
    }

    /// `run`'s loop, for a caller that holds the state directory's lock.
    func ingest(
        _ options: RunOptions, stop: StopFlag = StopFlag(), store given: ShadowStore? = nil,
        dataOffsets: DataOffsets? = nil, progress: ((ShadowIngester.Stats) -> Void)? = nil
    ) async throws -> ShadowIngester.Stats {
        let store = try given ?? openCheckedStore(options.stateDirectory, shadow: options.shadow)
        let logger = configuration.logger
        let schemaSource: (@Sendable (Int64) async -> CollectionSchemaInfo?)? = options.milvus.map { target in
            let client = MilvusClient(target: target)
            return { id in
                do {
                    return try await client.describeCollection(id: id)
                } catch {
                    logger.warning(
                        "DescribeCollection failed", metadata: ["milvus.collection_id": "\(id)", "error": "\(error)"])
                    return nil
                }
            }
        }
        let ingester = ShadowIngester(
            log: try makeKafkaLog(), store: store, topicPrefix: configuration.topicPrefix, logger: configuration.logger,
            schemaSource: schemaSource, clock: clock)
        ingester.dataOffsets = dataOffsets
        try await ingester.start()
        try await store.perform { try $0.recordKafkaOutage(sinceMs: nil) }
        var lastDiscovery = clock.instant()
        var lastProgress = clock.instant()
        var lastPurge = clock.instant() - .seconds(3600)
        var unreachableSince: ContinuousClock.Instant?
        while !stop.isStopped && !Task.isCancelled {
            if options.once && ingester.caughtUp { break }
            try await ingester.step()
            let now = clock.instant()
            if !options.once, now - lastDiscovery > .seconds(5) {
                lastDiscovery = now
                do {
                    try await ingester.start()  // picks up pchannels created since
                    try await ingester.checkWatermarks()  // a wiped or truncated log, even if the broker is silent
                    if let since = unreachableSince {
                        try await store.perform { try $0.recordKafkaOutage(sinceMs: nil) }
                        configuration.logger.error(
                            "kafka reachable again",
                            metadata: ["kafka.outage_seconds": "\((now - since).secondsValue)"])
                        unreachableSince = nil
                    }
                } catch let error as KafkaError where error.isRetriable {
                    // The broker is down or frozen: report it, keep what is committed, try again.
                    if unreachableSince == nil {
                        unreachableSince = now
                        let sinceMs = clock.nowMs()
                        try await store.perform { try $0.recordKafkaOutage(sinceMs: sinceMs) }
                    }
                    configuration.logger.error(
                        "kafka unreachable",
                        metadata: [
                            "kafka.error": "\(error)",
                            "kafka.outage_seconds": "\((now - (unreachableSince ?? now)).secondsValue)",
                        ])
                }
            }
            if now - lastProgress > .seconds(2) {
                progress?(ingester.stats)
                lastProgress = now
            }
            if now - lastPurge > .seconds(600) {
                let nowTs = clock.nowTs()
                let purged = try await store.perform { try $0.purgeTombstones(nowTs: nowTs) }
                if purged > 0 {
                    configuration.logger.info("purged tombstones", metadata: ["shadow.purged": "\(purged)"])
                }
                lastPurge = now
            }
        }
        try await ingester.flush()
        progress?(ingester.stats)
        return ingester.stats
    }

    /// `auditd report` for the shadow (read-only; works while `run` is running).
    public func shadowSummary(stateDirectory: String) throws -> ShadowSummary {
        try openStore(stateDirectory, create: false).summary()
    }
}

extension Application {
    /// `auditd report --rows ID`: the shadow's live rows of one collection as JSON lines {pk, ts, row_hash}.
    public func rowLines(stateDirectory: String, collectionID: Int64) throws -> [String] {
        try openStore(stateDirectory, create: false).liveRows(collectionID: collectionID).map { row in
            var o = JSONLine()
            o.pk("pk", row.pk)
            o.int("ts", row.ts)
            o.string("row_hash", row.rowHash.hex16)
            return o.result
        }
    }

    /// `auditd report`: the shadow rendered as text or JSON, and the report's exit code.
    public func report(stateDirectory: String, json: Bool) throws -> (text: String, exitCode: Int32) {
        let summary = try shadowSummary(stateDirectory: stateDirectory)
        return (render(summary, json: json), ShadowReport.exitCode(summary))
    }

    /// A summary as `auditd report` prints it, at the application's clock.
    public func render(_ summary: ShadowSummary, json: Bool) -> String {
        let nowMs = clock.nowMs()
        return json ? ShadowReport.json(summary, nowMs: nowMs) : ShadowReport.text(summary, nowMs: nowMs)
    }
}
