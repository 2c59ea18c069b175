import AuditorCore
import AuditorKafka
import AuditorMilvus
import Foundation
import Logging
import Synchronization

/// Follows every pchannel and keeps the shadow in step: records are buffered per pchannel and applied in
/// (timestamp, offset) order once a time tick at or after their timestamp arrived on that pchannel, as
/// Milvus's own reader does. Each poll's closed windows commit in one transaction with the checkpoints.
public final class ShadowIngester {
    public struct Stats: Sendable, Equatable {
        public var records = 0
        public var appliedMessages = 0
        public var insertedRows = 0
        public var deletedKeys = 0
        public var commits = 0
        public var skippedAlreadyApplied = 0
        public var undecodable = 0
        public var findings = 0
        /// Re-reads of offsets a fetch skipped (at most `maxGapRereads` per gap before it is reported).
        public var gapRereads = 0
        /// Wall time spent in shadow commits and in polling the log (for benchmarks).
        /// Time spent waiting for commits (they overlap with the next poll).
        public var commitSeconds = 0.0
        public var pollSeconds = 0.0
        public init() {}
    }

    struct Channel {
        var checkpoint: ChannelCheckpoint
        var buffered: [WALMessage] = []
        var bufferedOffsets: Set<Int64> = []
        var raw: [Int64: [UInt8]] = [:]
        var findings: [LogFinding] = []
        /// The open regression's first record ts and its largest step back (ms), while records keep going back.
        var regressionFirstTs: UInt64 = 0
        var regressionStepMs: Int64 = 0
        /// A replay that must stop exactly where another shadow committed: the offset of the last time
        /// tick to apply (-1: apply nothing). Records after it are not read.
        var stopAfterTick: Int64?
        /// Offsets missing from a fetch are read again before they become a `log_gap`: a broker can deliver a
        /// later record before an earlier one is visible to fetches (measured on Tansu under concurrent
        /// producers: two consumers each missed a different record). `from`: the first missing offset;
        /// `rereads`: how often it was read again; `pending`: records of this pchannel are dropped until the
        /// rewind at the end of the step.
        var gap: (from: Int64, rereads: Int, pending: Bool)?
    }

    /// How often offsets missing from a fetch are read again (after 250 ms, then 500 ms) before the gap is
    /// reported.
    public static let maxGapRereads = 2

    private let follower: LogFollower
    /// Times the polls and commits (`Stats`).
    private let clock: any AuditorClock
    private let store: ShadowStore
    /// Where schemas of collections first seen through data come from (Milvus's DescribeCollection).
    private let schemaSource: (@Sendable (Int64) async -> CollectionSchemaInfo?)?
    private var lookedUp: Set<Int64> = []
    private let topicPrefix: String
    private let stopAfterTick: [String: Int64]?
    private let logger: Logger
    private var decoder = WALDecoder()
    /// The shadow's stored schemas were handed to the decoder (`start()` runs again at every rediscovery).
    private var schemasRestored = false
    /// Commits run here, one at a time and in order, while the next poll is read and decoded.
    private let committer = DispatchQueue(label: "auditd.shadow.commit")
    private var inflight: Task<Void, any Error>?
    private var channels: [String: Channel] = [:]
    public private(set) var stats = Stats()
    /// Where the offsets of records that are not time ticks are noted (lag states judge backlogs on them).
    public var dataOffsets: DataOffsets?

    public init(
        log: any KafkaLog, store: ShadowStore, topicPrefix: String, logger: Logger,
        schemaSource: (@Sendable (Int64) async -> CollectionSchemaInfo?)? = nil,
        stopAfterTick: [String: Int64]? = nil, clock: any AuditorClock = SystemClock()
    ) {
        self.clock = clock
        self.stopAfterTick = stopAfterTick
        follower = LogFollower(log: log, topicPrefix: topicPrefix, logger: logger)
        self.store = store
        self.schemaSource = schemaSource
        self.topicPrefix = topicPrefix
        self.logger = logger
    }

    /// Discovers pchannels, checks every stored position against the broker's log and starts reading.
    public func start() async throws {
        try await flush()
        let stored = try await store.perform(on: committer) { try $0.checkpoints() }
        if !schemasRestored {
            // decode as an uninterrupted ingest would: with every schema the log already gave (later schemas
            // reach this decoder through the log itself, so once per ingester is enough)
            for schema in try await store.perform(on: committer, { try $0.liveSchemas() })
            where decoder.schemas[schema.collectionID] == nil {
                decoder.register(schema)
            }
            schemasRestored = true
        }
        let new = try await follower.unfollowedTopics()
        let marks = try await follower.log.watermarks(topics: new, partition: 0, timeout: .seconds(10))
        for topic in new {
            guard let marks = marks[topic] else {
                // this topic's offsets could not be listed (yet): ask once more on its own, errors included
                try await open(topic, stored: stored[topic])
                continue
            }
            try await open(topic, stored: stored[topic], marks: marks)
        }
    }

    /// The broker said our position is outside its log: compare with what it has now and carry on from
    /// there, recording a regression (log wiped/replaced) or a retention loss — never silently.
    func recheck(_ topic: String) async throws {
        guard let channel = channels[topic] else { return }
        var known = channel.checkpoint
        known.resumeOffset = channel.buffered.map(\.offset).min() ?? channel.checkpoint.nextOffset
        channels[topic] = nil
        follower.unfollow(topic)
        try await open(topic, stored: known)
    }

    private func open(_ topic: String, stored: ChannelCheckpoint?, marks known: Watermarks? = nil) async throws {
        var start: (offset: Int64, target: Int64)?
        var pending: [ShadowBatch] = []
        do {
            let marks: Watermarks
            if let known {
                marks = known
            } else {
                marks = try await follower.log.watermarks(topic: topic, partition: 0, timeout: .seconds(10))
            }
            var checkpoint = stored ?? ChannelCheckpoint(pchannel: topic, startOffset: marks.low)
            var findings: [LogFinding] = []
            if let old = stored, marks.high < old.nextOffset {
                // The broker's log ends before offsets already consumed: it was wiped or replaced.
                findings.append(
                    LogFinding(
                        kind: .logRegression, pchannel: topic, fromOffset: marks.high, toOffset: old.nextOffset,
                        detail: "log ends at \(marks.high) but auditd had consumed up to \(old.nextOffset - 1) "
                            + "(epoch \(old.epoch)); following the new log from \(marks.low)"))
                checkpoint = ChannelCheckpoint(pchannel: topic, startOffset: marks.low)
                checkpoint.epoch = old.epoch + 1
            } else if stored != nil, marks.low > checkpoint.resumeOffset {
                findings.append(
                    LogFinding(
                        kind: .retentionLoss, pchannel: topic, fromOffset: checkpoint.resumeOffset, toOffset: marks.low,
                        detail: "offsets \(checkpoint.resumeOffset)..<\(marks.low) left the log before auditd read them"
                    ))
                checkpoint.resumeOffset = marks.low
                checkpoint.nextOffset = max(checkpoint.nextOffset, marks.low)
            }
            checkpoint.highWatermark = marks.high
            if !findings.isEmpty {
                pending.append(ShadowBatch(pchannel: topic, messages: [], checkpoint: checkpoint, findings: findings))
                stats.findings += findings.count
                for finding in findings {
                    logger.error(
                        "log finding",
                        metadata: [
                            "finding.kind": "\(finding.kind.rawValue)", "kafka.topic": "\(topic)",
                            "finding.detail": "\(finding.detail)",
                        ])
                }
            }
            var channel = Channel(checkpoint: checkpoint)
            channel.stopAfterTick = stopAfterTick.map { $0[topic] ?? -1 }
            channels[topic] = channel
            start = (checkpoint.resumeOffset, marks.high)
        }
        try await submit(pending)
        try await flush()
        if let (offset, target) = start {
            try follower.follow(topic, offset: .exact(offset), next: offset, target: target)
        }
    }

    public var topics: [String] { channels.keys.sorted() }

    /// Compares every pchannel's position with the broker's current log. Some brokers (Tansu) answer a
    /// fetch beyond the end of a replaced log with nothing at all instead of OFFSET_OUT_OF_RANGE, so a
    /// follower must look: a log that now ends before what auditd consumed is a regression.
    public func checkWatermarks() async throws {
        let all = try await follower.log.watermarks(
            topics: channels.keys.sorted(), partition: 0, timeout: .seconds(10))
        for topic in channels.keys.sorted() {
            guard let channel = channels[topic], let marks = all[topic] else { continue }
            if marks.high < channel.checkpoint.nextOffset || marks.low > channel.checkpoint.nextOffset {
                try await recheck(topic)
            } else {
                channels[topic]?.checkpoint.highWatermark = marks.high
            }
        }
    }

    /// True once every pchannel reached the high watermark it had at `start()` (a replay: its last tick).
    public var caughtUp: Bool {
        channels.allSatisfy { topic, channel in
            if let stop = channel.stopAfterTick { return channel.checkpoint.tickOffset >= stop }
            if channel.gap?.pending == true { return false }
            return follower.positions[topic]?.atEnd ?? true
        }
    }

    /// One poll: reads, buffers, closes windows at time ticks, commits. Returns the records read.
    @discardableResult
    public func step(timeout: Duration = .milliseconds(200)) async throws -> Int {
        let pollStart = clock.instant()
        let batch = try await follower.poll(maxMessages: 2000, timeout: timeout)
        stats.pollSeconds += clock.seconds(since: pollStart)
        var batches: [ShadowBatch] = []
        for record in batch.records {
            guard let channel = channels[record.topic] else { continue }
            if let stop = channel.stopAfterTick, channel.checkpoint.tickOffset >= stop { continue }
            // after offsets the broker did not deliver: read again from the first of them (a few times)
            if channel.gap?.pending == true || rereadsGap(record, channel) { continue }
            stats.records += 1
            // Already applied before a restart, or delivered twice: skip it before paying for a decode.
            if channel.checkpoint.applied.contains(record.offset) || channel.bufferedOffsets.contains(record.offset) {
                stats.skippedAlreadyApplied += 1
                continue
            }
            var message = decoder.decode(record)
            if let schemaSource, let unknown = Self.inferredCollection(message) ?? decoder.failedWithoutSchema,
                !lookedUp.contains(unknown)
            {
                // First seen through data: ask Milvus for the schema, then decode the record again exactly.
                lookedUp.insert(unknown)
                if let schema = await schemaSource(unknown) {
                    decoder.register(schema)
                    message = decoder.decode(record)
                    logger.info(
                        "schema from Milvus",
                        metadata: ["milvus.collection": "\(schema.name)", "milvus.collection_id": "\(unknown)"])
                }
            }
            if let closed = receive(record, message) { batches.append(closed) }
        }
        for (topic, offset) in batch.ends {
            if let channel = channels[topic], channel.gap?.pending != true, offset > channel.checkpoint.nextOffset {
                channels[topic]?.checkpoint.nextOffset = offset
            }
        }
        for topic in Set(batch.records.map(\.topic)) {
            // the broker's end as the last fetch saw it, for the report's lag
            if let channel = channels[topic], let high = follower.fetchedHigh(topic),
                channel.checkpoint.nextOffset >= (follower.positions[topic]?.target ?? .max)
            {
                channels[topic]?.checkpoint.highWatermark = high
            }
        }
        let outOfRange = Set(batch.errors.filter { $0.kind == .offsetOutOfRange }.compactMap(\.topic))
        try await submit(batches)
        try await rewindGaps()
        // Nothing more to read right now (or done): make everything read so far durable before returning.
        if batch.events == 0 || caughtUp { try await flush() }
        for topic in outOfRange.sorted() { try await recheck(topic) }
        return batch.events
    }

    /// A record after offsets this pchannel never delivered: unless those offsets were read again enough
    /// times already, drops it (and the rest of the pchannel's records in this poll) for a re-read.
    private func rereadsGap(_ record: KafkaRecord, _ channel: Channel) -> Bool {
        let from = channel.checkpoint.nextOffset
        guard record.offset > from else { return false }
        let rereads = channel.gap?.from == from ? channel.gap?.rereads ?? 0 : 0
        guard rereads < Self.maxGapRereads else { return false }
        channels[record.topic]?.gap = (from, rereads + 1, true)
        logger.warning(
            "offsets missing from a fetch: reading them again",
            metadata: [
                "kafka.topic": "\(record.topic)", "kafka.offset": "\(from)..<\(record.offset)",
                "reread": "\(rereads + 1)",
            ])
        return true
    }

    /// Reads again from the first missing offset, after a pause that grows with each re-read.
    private func rewindGaps() async throws {
        for topic in channels.keys.sorted() {
            guard let gap = channels[topic]?.gap, gap.pending else { continue }
            try await clock.sleep(for: .milliseconds(250 * gap.rereads))
            try follower.rewind(topic, to: gap.from)
            channels[topic]?.gap?.pending = false
            stats.gapRereads += 1
        }
    }

    /// Hands batches to the committer once the previous commit is durable (one in flight, in order).
    private func submit(_ batches: [ShadowBatch]) async throws {
        guard !batches.isEmpty else { return }
        try await flush()
        let store = store
        let committer = committer
        inflight = Task { try await store.commit(batches, on: committer) }
        stats.commits += 1
    }

    /// Waits for the commit in flight. After it returns, everything `step()` read is in the shadow.
    public func flush() async throws {
        guard let task = inflight else { return }
        inflight = nil
        let waitStart = clock.instant()
        try await task.value
        stats.commitSeconds += clock.seconds(since: waitStart)
    }

    /// The collection of an insert decoded without a schema (pk inferred).
    static func inferredCollection(_ message: WALMessage) -> Int64? {
        if case .insert(let insert) = message.body, insert.pkInferred { return insert.collectionID }
        return nil
    }

    /// Handles one decoded record; returns a batch when it closed a time-tick window.
    private func receive(_ record: KafkaRecord, _ message: WALMessage) -> ShadowBatch? {
        guard var channel = channels[record.topic] else { return nil }
        defer { channels[record.topic] = channel }
        let offset = record.offset
        if offset > channel.checkpoint.nextOffset {
            let finding = LogFinding(
                kind: .logGap, pchannel: record.topic, fromOffset: channel.checkpoint.nextOffset, toOffset: offset,
                detail: "offsets \(channel.checkpoint.nextOffset)..<\(offset) missing from the log")
            channel.findings.append(finding)
            stats.findings += 1
            logger.error(
                "log gap", metadata: ["kafka.topic": "\(record.topic)", "finding.detail": "\(finding.detail)"])
        }
        channel.checkpoint.nextOffset = max(channel.checkpoint.nextOffset, offset + 1)
        if let ms = record.timestampMs { channel.checkpoint.lastMessageMs = ms }
        // After a time tick T no record on the pchannel may carry ts <= T (ticks may repeat T). A record
        // that does belongs to another log: a wiped broker whose new log grew past auditd's position.
        let backwards: Bool
        switch message.body {
        case .timeTick: backwards = message.ts < channel.checkpoint.tickTs
        case .undecodable, .other: backwards = false
        default: backwards = message.ts != 0 && message.ts <= channel.checkpoint.tickTs
        }
        if backwards {
            let tick = channel.checkpoint.tickTs
            let stepMs = Int64(tick >> 18) - Int64(message.ts >> 18)
            if let last = channel.findings.indices.last, channel.findings[last].kind == .logRegression,
                channel.findings[last].toOffset == offset, let from = channel.findings[last].fromOffset
            {
                // the same step back, record after record: one finding over the offset range
                channel.findings[last].toOffset = offset + 1
                channel.findings[last].detail = Self.regressionDetail(
                    from: from, to: offset, firstTs: channel.regressionFirstTs, tick: tick,
                    stepMs: max(stepMs, channel.regressionStepMs))
                channel.regressionStepMs = max(stepMs, channel.regressionStepMs)
            } else {
                channel.regressionFirstTs = message.ts
                channel.regressionStepMs = stepMs
                let finding = LogFinding(
                    kind: .logRegression, pchannel: record.topic, fromOffset: offset, toOffset: offset + 1,
                    detail: Self.regressionDetail(
                        from: offset, to: offset, firstTs: message.ts, tick: tick, stepMs: stepMs))
                channel.findings.append(finding)
                stats.findings += 1
                logger.error(
                    "log regression",
                    metadata: ["kafka.topic": "\(record.topic)", "finding.detail": "\(finding.detail)"])
            }
        }
        switch message.body {
        case .timeTick:
            return closeWindow(&channel, tick: message)
        case .undecodable:
            stats.undecodable += 1
            channel.raw[offset] = record.value
            fallthrough
        default:
            dataOffsets?.note(topic: record.topic, offset: offset)
            channel.buffered.append(message)
            channel.bufferedOffsets.insert(offset)
            return nil
        }
    }

    /// What a step back in the log's time says: where, by how much, and the two things it can mean.
    static func regressionDetail(from: Int64, to: Int64, firstTs: UInt64, tick: UInt64, stepMs: Int64) -> String {
        let records = from == to ? "record at offset \(from) has" : "records at offsets \(from)–\(to) have"
        let step = stepMs >= 60_000 ? String(format: "%.1f min", Double(stepMs) / 60_000) : "\(stepMs) ms"
        return "\(records) ts <= last time tick \(tick) (first \(firstTs), up to \(step) back): "
            + "the log was replaced under auditd's position, or Milvus's timestamps stepped back"
    }

    private func closeWindow(_ channel: inout Channel, tick: WALMessage) -> ShadowBatch {
        let tickTs = tick.ts
        var ready: [WALMessage] = []
        var later: [WALMessage] = []
        for message in channel.buffered {
            // undecodable records carry no usable ts: quarantine them with this window
            if case .undecodable = message.body {
                ready.append(message)
            } else if message.ts <= tickTs {
                ready.append(message)
            } else {
                later.append(message)
            }
        }
        ready.sort { ($0.ts, $0.offset) < ($1.ts, $1.offset) }
        var quarantine: [QuarantinedRecord] = []
        var messages: [WALMessage] = []
        for message in ready {
            if case .undecodable(let reason) = message.body {
                quarantine.append(
                    QuarantinedRecord(offset: message.offset, reason: reason, bytes: channel.raw[message.offset]))
                channel.raw[message.offset] = nil
                continue
            }
            messages.append(message)
            switch message.body {
            case .insert(let insert): stats.insertedRows += insert.rows.count
            case .delete(let delete): stats.deletedKeys += delete.keys.count
            default: break
            }
        }
        stats.appliedMessages += ready.count
        channel.buffered = later
        channel.bufferedOffsets = Set(later.map(\.offset))
        var checkpoint = channel.checkpoint
        checkpoint.tickTs = tickTs
        checkpoint.tickOffset = tick.offset
        checkpoint.applied.formUnion(ready.map(\.offset))
        checkpoint.applied.insert(tick.offset)
        checkpoint.resumeOffset = later.map(\.offset).min() ?? (tick.offset + 1)
        checkpoint.applied = checkpoint.applied.filter { $0 >= checkpoint.resumeOffset }
        channel.checkpoint = checkpoint
        let findings = channel.findings
        channel.findings = []
        return ShadowBatch(
            pchannel: tick.pchannel, messages: messages, checkpoint: checkpoint, quarantine: quarantine,
            findings: findings)
    }
}

/// The offsets of the most recent records that are not time ticks, per pchannel: how many of the records
/// behind a consumer carry data (Burrow's idle-topic fix — a backlog of time ticks only is no backlog).
/// Written by the ingester, read by the lag evaluation from another task.
public final class DataOffsets: Sendable {
    private let state = Mutex<[String: [Int64]]>([:])
    public let capacity: Int

    public init(capacity: Int = 65_536) { self.capacity = capacity }

    public func note(topic: String, offset: Int64) {
        state.withLock { offsets in
            var list = offsets[topic] ?? []
            if let last = list.last, offset <= last { return }
            list.append(offset)
            if list.count > capacity { list.removeFirst(list.count - capacity) }
            offsets[topic] = list
        }
    }

    /// Data records at or after `offset` and before `end`; nil when the window noted does not reach back to
    /// `offset` (more data behind than kept: count every record then).
    public func count(topic: String, from offset: Int64, to end: Int64, consumedUpTo consumed: Int64) -> Int64? {
        state.withLock { offsets in
            let list = offsets[topic] ?? []
            if list.count >= capacity, let first = list.first, first > offset { return nil }
            // Only what the ingester has read is known: offsets beyond `consumed` are counted as data.
            let known = list.filter { $0 >= offset && $0 < min(end, consumed) }.count
            return Int64(known) + max(0, end - max(offset, consumed))
        }
    }
}
