import Auditor
import AuditorTesting
import Foundation
import Logging

// auditd-bench — the numbers in docs/benchmarks.md.
//
//   auditd-bench decode --brokers B --topic T [--passes N]
//       reads every record of T into memory once, then decodes + row-hashes them N times on one core.
//   auditd-bench e2e --brokers B --topic T [--rounds N]
//       side by side, alternating: raw librdkafka consume of T (auditd's reader, no decoding), kcat,
//       and auditd's reader + decoder + row hash — each from offset 0 to the end of T.

struct Arguments {
    var mode = ""
    var brokers = ProcessInfo.processInfo.environment["AUDITD_BROKERS"] ?? "127.0.0.1:9092"
    var topic = ""
    var passes = 5
    var rounds = 3
    var rows = 200_000
    var prefix = "synth-dml"
    var jumpMs: Int64 = 0

    init() {
        var args = CommandLine.arguments.dropFirst()
        mode = args.popFirst() ?? ""
        while let flag = args.popFirst() {
            let value = args.popFirst() ?? ""
            switch flag {
            case "--brokers": brokers = value
            case "--topic": topic = value
            case "--passes": passes = Int(value) ?? passes
            case "--rounds": rounds = Int(value) ?? rounds
            case "--rows": rows = Int(value) ?? rows
            case "--prefix": prefix = value
            case "--jump-ms": jumpMs = Int64(value) ?? jumpMs
            default:
                FileHandle.standardError.write(Data("auditd-bench: unknown flag \(flag)\n".utf8))
                exit(64)
            }
        }
        guard ["decode", "e2e", "synth", "shadow", "ingest", "probe-timing"].contains(mode),
            !topic.isEmpty || ["synth", "shadow", "ingest", "probe-timing"].contains(mode)
        else {
            FileHandle.standardError.write(Data("usage: auditd-bench decode|e2e --topic T [--brokers B]\n".utf8))
            exit(64)
        }
    }
}

let logger = Logger(label: "bench")
let pollMs = Int(ProcessInfo.processInfo.environment["BENCH_POLL_MS"] ?? "500") ?? 500
/// BENCH_PROPS="k=v,k=v": extra librdkafka properties for experiments.
let extraProperties: [String: String] = Dictionary(
    (ProcessInfo.processInfo.environment["BENCH_PROPS"] ?? "").split(separator: ",").compactMap { pair in
        let kv = pair.split(separator: "=", maxSplits: 1)
        return kv.count == 2 ? (String(kv[0]), String(kv[1])) : nil
    }, uniquingKeysWith: { a, _ in a })

struct Pass {
    var records = 0
    var rows = 0
    var bytes = 0
    var seconds = 0.0
    var firstRecordSeconds = 0.0
}

/// Reads offsets [0, end) of the topic, optionally decoding every record.
func readTopic(_ brokers: String, _ topic: String, end: Int64, decode: Bool) async throws -> Pass {
    let reader = try KafkaLogReader(
        configuration: KafkaReaderConfiguration(
            brokers: brokers, groupID: "bench-\(UUID().uuidString)", properties: extraProperties),
        logger: logger)
    let marks = Watermarks(low: 0, high: end)
    var decoder = WALDecoder()
    let clock = ContinuousClock()
    let start = clock.now
    // As WALReader.start() does: learn the cluster's metadata (pchannel discovery) before starting
    // partitions. Started cold, librdkafka waits ≈ 0.5 s for a metadata refresh before the first fetch.
    _ = try await reader.listTopics(timeout: .seconds(5))
    try reader.assign([TopicPosition(topic: topic, offset: .beginning)])
    var pass = Pass()
    var done = marks.high <= marks.low
    while !done {
        for event in try await reader.poll(maxMessages: 1000, timeout: .milliseconds(pollMs)) {
            switch event {
            case .record(let record):
                if pass.records == 0 { pass.firstRecordSeconds = (clock.now - start).seconds }
                pass.records += 1
                pass.bytes += record.value?.count ?? 0
                if decode, case .insert(let insert) = decoder.decode(record).body { pass.rows += insert.rows.count }
                if record.offset + 1 >= marks.high { done = true }
            case .partitionEnd(_, _, let offset):
                if offset >= marks.high { done = true }
            case .error(let error):
                throw error
            }
        }
    }
    pass.seconds = (clock.now - start).seconds
    return pass
}

/// kcat reading `count` records from the beginning (Tansu's fetch responses never let librdkafka
/// signal partition EOF, so `-e` would wait forever; `-c` stops at the count).
func kcat(_ brokers: String, _ topic: String, count: Int64) throws -> Double {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [
        "timeout", "300", "kcat", "-C", "-b", brokers, "-t", topic, "-p", "0", "-o", "beginning", "-c", String(count),
        "-q",
    ]
    process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
    let start = ContinuousClock.now
    try process.run()
    process.waitUntilExit()
    return (ContinuousClock.now - start).seconds
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

let args = Arguments()
switch args.mode {
case "decode":
    let reader = try KafkaLogReader(
        configuration: KafkaReaderConfiguration(brokers: args.brokers, groupID: "bench-load"), logger: logger)
    let marks = try await reader.watermarks(topic: args.topic, partition: 0, timeout: .seconds(10))
    try reader.assign([TopicPosition(topic: args.topic, offset: .beginning)])
    var records: [KafkaRecord] = []
    while records.last.map({ $0.offset + 1 < marks.high }) ?? (marks.high > 0) {
        for case .record(let record) in try await reader.poll(maxMessages: 1000, timeout: .milliseconds(500)) {
            records.append(record)
        }
    }
    let inserts = records.filter {
        var d = WALDecoder()
        if case .insert = d.decode($0).body { return true }
        return false
    }
    let bytes = inserts.reduce(0) { $0 + ($1.value?.count ?? 0) }
    var rates: [Double] = []
    var rows = 0
    for _ in 0..<args.passes {
        var decoder = WALDecoder()
        rows = 0
        let start = ContinuousClock.now
        for record in inserts {
            if case .insert(let insert) = decoder.decode(record).body { rows += insert.rows.count }
        }
        rates.append(Double(rows) / (ContinuousClock.now - start).seconds)
    }
    let rate = median(rates)
    print("| records | rows | MB | passes | rows/s (median) | MB/s | rows/s per pass |")
    print("|---|---|---|---|---|---|---|")
    print(
        String(
            format: "| %d | %d | %.1f | %d | %.0f | %.0f | %@ |", inserts.count, rows, Double(bytes) / 1e6, args.passes,
            rate, rate / Double(max(rows, 1)) * Double(bytes) / 1e6,
            rates.map { String(format: "%.0f", $0) }.joined(separator: ", ")))
case "e2e":
    var raw: [Double] = []
    var kcats: [Double] = []
    var decoded: [Double] = []
    var last = Pass()
    let probe = try KafkaLogReader(
        configuration: KafkaReaderConfiguration(brokers: args.brokers, groupID: "bench-probe"), logger: logger)
    let end = try await probe.watermarks(topic: args.topic, partition: 0, timeout: .seconds(10)).high
    for _ in 0..<args.rounds {
        let rawPass = try await readTopic(args.brokers, args.topic, end: end, decode: false)
        raw.append(rawPass.seconds)
        if ProcessInfo.processInfo.environment["BENCH_VERBOSE"] != nil {
            print("raw: first record after \(rawPass.firstRecordSeconds)s, total \(rawPass.seconds)s")
        }
        kcats.append(try kcat(args.brokers, args.topic, count: end))
        last = try await readTopic(args.brokers, args.topic, end: end, decode: true)
        decoded.append(last.seconds)
    }
    let rows = Double(last.rows)
    let mb = Double(last.bytes) / 1e6
    print("| reader | median s | rows/s | MB/s | vs raw librdkafka | vs kcat |")
    print("|---|---|---|---|---|---|")
    for (name, times) in [
        ("raw librdkafka (auditd reader, no decode)", raw), ("kcat -C -c N -q", kcats),
        ("auditd decode + row hash", decoded),
    ] {
        let t = median(times)
        print(
            String(
                format: "| %@ | %.2f | %.0f | %.0f | %.2f | %.2f |", name, t, rows / t, mb / t, median(raw) / t,
                median(kcats) / t))
    }
    print("records \(last.records), rows \(last.rows), \(String(format: "%.1f", mb)) MB, rounds \(args.rounds)")
case "synth":
    // Writes a synthetic Milvus log (see SyntheticLog) to PREFIX_0, PREFIX_1 on the broker; with --jump-ms N its
    // hybrid timestamps jump by N ms halfway (clock skew as the log shows it).
    // Few requests in flight and a long socket timeout: late in a long test run Tansu answers slowly, and thousands
    // of pipelined requests timed out together (60 s), were sent again, and timed out again.
    let producer = try KafkaProducer(
        brokers: args.brokers,
        properties: [
            "linger.ms": "5", "batch.num.messages": "1", "max.in.flight.requests.per.connection": "32",
            "socket.timeout.ms": "300000",
        ])
    var log = SyntheticLog(rows: args.rows, pchannels: 2, seed: 42, topicPrefix: args.prefix)
    log.jumpMs = args.jumpMs
    var count = 0
    for record in log.records() {
        try producer.produce(topic: log.topic(record.pchannel), value: record.value, timestampMs: record.timestampMs)
        count += 1
    }
    try flushPatiently(producer)
    print("synth: \(count) records, \(args.rows) rows inserted, topics \(log.topic(0)), \(log.topic(1))")
case "shadow":
    // The shadow's own apply rate from memory: a synthetic log decoded, windowed and committed into SQLite.
    let memory = InMemoryKafkaLog()
    let synthetic = SyntheticLog(rows: args.rows, pchannels: 2, seed: 42)
    for record in synthetic.records() { memory.append(topic: synthetic.topic(record.pchannel), value: record.value) }
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bench-shadow-\(UUID().uuidString)")
    for inMemory in [true, false] {
        let store =
            inMemory ? try ShadowStore.inMemory() : try ShadowStore.open(directory: directory.path, create: true)
        let ingester = ShadowIngester(log: memory, store: store, topicPrefix: "by-dev-rootcoord-dml", logger: logger)
        let start = ContinuousClock.now
        try await ingester.start()
        while !ingester.caughtUp { try await ingester.step(timeout: .milliseconds(1)) }
        let seconds = (ContinuousClock.now - start).seconds
        let stats = ingester.stats
        print(
            String(
                format: "| %@ | %d | %d | %d | %.2f | %.0f |", inMemory ? "SQLite in memory" : "SQLite WAL file",
                stats.insertedRows, stats.deletedKeys, stats.commits, seconds, Double(stats.insertedRows) / seconds))
        try memory.assign(synthetic.topicsForReset)
    }
    let file = directory.appendingPathComponent("shadow.sqlite").path
    let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
    print("shadow file: \(size) bytes")
case "probe-timing":
    let reader = try KafkaLogReader(configuration: KafkaReaderConfiguration(brokers: args.brokers), logger: logger)
    var t = ContinuousClock.now
    let topics = try await reader.pchannelTopics(prefix: args.prefix)
    print("metadata: \((ContinuousClock.now - t).seconds)")
    for topic in topics {
        t = ContinuousClock.now
        _ = try await reader.watermarks(topic: topic, partition: 0, timeout: .seconds(10))
        print("watermarks \(topic): \((ContinuousClock.now - t).seconds)")
    }
    t = ContinuousClock.now
    try reader.assign(topics.map { TopicPosition(topic: $0, offset: .exact(0)) })
    print("assign: \((ContinuousClock.now - t).seconds)")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("probe-\(UUID().uuidString)").path
    t = ContinuousClock.now
    let store = try ShadowStore.open(directory: dir, create: true)
    print("open: \((ContinuousClock.now - t).seconds)")
    t = ContinuousClock.now
    _ = try store.checkpoints()
    print("checkpoints: \((ContinuousClock.now - t).seconds)")
case "ingest":
    // Side by side on every pchannel PREFIX_N of the broker: a raw consume to the end, then auditd's
    // ingest (decode + windows + durable shadow commits into a fresh state directory) to the same end.
    for round in 0..<args.rounds {
        let probe = try KafkaLogReader(configuration: KafkaReaderConfiguration(brokers: args.brokers), logger: logger)
        let topics = try await probe.pchannelTopics(prefix: args.prefix)
        var ends: [String: Int64] = [:]
        for topic in topics {
            ends[topic] = try await probe.watermarks(topic: topic, partition: 0, timeout: .seconds(10)).high
        }
        // raw: one client, every pchannel at once (as the ingester reads them), no decoding
        let rawStart = ContinuousClock.now
        let raw = try KafkaLogReader(configuration: KafkaReaderConfiguration(brokers: args.brokers), logger: logger)
        _ = try await raw.listTopics(timeout: .seconds(5))
        try raw.assign(topics.map { TopicPosition(topic: $0, offset: .beginning) })
        var rawRecords = 0
        var pendingTopics = Set(topics.filter { ends[$0]! > 0 })
        while !pendingTopics.isEmpty {
            for case .record(let record) in try await raw.poll(maxMessages: 1000, timeout: .milliseconds(200)) {
                rawRecords += 1
                if record.offset + 1 >= ends[record.topic]! { pendingTopics.remove(record.topic) }
            }
        }
        let rawSeconds = (ContinuousClock.now - rawStart).seconds
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "bench-ingest-\(UUID().uuidString)")
        let store = try ShadowStore.open(directory: directory.path, create: true)
        let reader = try KafkaLogReader(configuration: KafkaReaderConfiguration(brokers: args.brokers), logger: logger)
        let ingester = ShadowIngester(log: reader, store: store, topicPrefix: args.prefix, logger: logger)
        let start = ContinuousClock.now
        try await ingester.start()
        let started = (ContinuousClock.now - start).seconds
        while !ingester.caughtUp { try await ingester.step() }
        let seconds = (ContinuousClock.now - start).seconds
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let file = directory.appendingPathComponent("shadow.sqlite").path
        let size = (try? FileManager.default.attributesOfItem(atPath: file)[.size] as? Int) ?? 0
        let live = try store.summary().collections.reduce(0) { $0 + $1.liveRows }
        var pkBytes = 0
        for collection in try store.collectionIDs() {
            for row in try store.liveRows(collectionID: collection) { pkBytes += ShadowHashing.pkBytes(row.pk).count }
        }
        if round == 0 {
            print(
                "| round | records | rows inserted | raw s | ingest s | ingest/raw | rows/s | live rows | shadow bytes | bytes/live row beyond pk | max RSS MB |"
            )
            print("|---|---|---|---|---|---|---|---|---|---|---|")
        }
        print(
            String(
                format: "| %d | %d | %d | %.2f | %.2f | %.2f | %.0f | %d | %d | %.1f | %d |", round, rawRecords,
                ingester.stats.insertedRows, rawSeconds, seconds, rawSeconds / seconds,
                Double(ingester.stats.insertedRows) / seconds,
                live, size, Double(size - pkBytes) / Double(max(live, 1)), usage.ru_maxrss / 1024))
        try? FileManager.default.removeItem(at: directory)
        if ProcessInfo.processInfo.environment["BENCH_VERBOSE"] != nil {
            print(
                "ingest: start \(started) s, commits \(ingester.stats.commits), commit s \(ingester.stats.commitSeconds), poll s \(ingester.stats.pollSeconds)"
            )
        }
    }
default:
    break
}

/// Flushes, waiting up to four times 30 s: a broker busy with earlier work (or still creating the topics) may
/// need longer than one flush.
func flushPatiently(_ producer: KafkaProducer) throws {
    var attempts = 0
    while true {
        attempts += 1
        let failure: KafkaError?
        do {
            try producer.flush()
            failure = nil
        } catch {
            failure = error
        }
        guard let failure else { return }
        if attempts >= 12 { throw failure }  // 6 minutes
        FileHandle.standardError.write(Data("synth: not all delivered yet (\(failure)); waiting again\n".utf8))
    }
}
