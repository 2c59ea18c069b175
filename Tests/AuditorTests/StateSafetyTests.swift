import Foundation
import GRDB
import Logging
import Testing

@testable import Auditor
@testable import AuditorShadow
@testable import AuditorTesting

/// The state directory under damage: flipped bytes, a changed row, a torn WAL, a newer auditd's schema, a
/// failing disk — detected at start with one line that says what to do, and `rebuild` recovers.
@Suite("State safety")
struct StateSafetyTests {
    let synthetic = SyntheticLog(rows: 400, pchannels: 1, seed: 9)

    func application(_ log: InMemoryKafkaLog? = nil) -> (Application, InMemoryKafkaLog, String) {
        let log = log ?? InMemoryKafkaLog()
        if log.records(topic: synthetic.topic(0)).isEmpty { synthetic.write(to: log) }
        let app = buildApplication(
            AuditorConfiguration(
                brokers: "in-memory:0", logger: Logger(label: "test"), makeKafkaLog: { _, _ in log },
                clock: ManualClock(1_900_000_000_000)))
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("state-\(UUID())").path
        return (app, log, directory)
    }

    func shadowPath(_ directory: String) -> String { (directory as NSString).appendingPathComponent("shadow.sqlite") }

    @Test func flippedPagesAreRefusedAtStartAndRebuildRecovers() async throws {
        let (app, _, directory) = application()
        _ = try await app.run(RunOptions(stateDirectory: directory, once: true))
        let before = try app.openStore(directory, create: false).liveRows(collectionID: synthetic.collectionID)
        // Every page after the first gets a garbage b-tree header (the store is closed: no WAL remains).
        let handle = try #require(FileHandle(forUpdatingAtPath: shadowPath(directory)))
        let size = try handle.seekToEnd()
        for page in stride(from: UInt64(4096), to: size, by: 4096) {
            try handle.seek(toOffset: page)
            handle.write(Data(repeating: 0xA5, count: 16))
        }
        try handle.close()
        let error = await #expect(throws: ShadowError.self) {
            _ = try await app.run(RunOptions(stateDirectory: directory, once: true))
        }
        let message = try #require(error?.message)
        #expect(message.contains("is damaged") && message.contains("auditd rebuild --state \(directory)"))
        #expect(!message.contains("\n"))

        let result = try await app.rebuild(stateDirectory: directory, milvus: nil)
        let kept = try #require(result.keptAt)
        #expect(FileManager.default.fileExists(atPath: (kept as NSString).appendingPathComponent("shadow.sqlite")))
        #expect(result.stats.insertedRows > 0 && result.incomplete.isEmpty)
        let store = try app.openStore(directory, create: false)
        #expect(try store.verify().isEmpty)
        #expect(Set(try store.liveRows(collectionID: synthetic.collectionID)) == Set(before))
        _ = try await app.run(RunOptions(stateDirectory: directory, once: true))  // a writer takes it again
    }

    @Test func aRowChangedOnDiskFailsTheChecksumsAtStart() async throws {
        let (app, _, directory) = application()
        _ = try await app.run(RunOptions(stateDirectory: directory, once: true))
        try await app.openStore(directory, create: false).writer.write { db in
            try db.execute(
                sql:
                    "UPDATE rows SET hash = hash + 1 WHERE (coll, pk, ts, seq) IN (SELECT coll, pk, ts, seq FROM rows LIMIT 1)"
            )
        }
        let error = await #expect(throws: ShadowError.self) {
            _ = try await app.run(RunOptions(stateDirectory: directory, once: true))
        }
        #expect(error?.message.contains("does not match its own checksums") == true)
        #expect(error?.message.contains("auditd rebuild --state \(directory)") == true)
        _ = try await app.rebuild(stateDirectory: directory, milvus: nil)
        #expect(try app.openStore(directory, create: false).verify().isEmpty)
    }

    @Test func aShadowFromANewerAuditdIsRefusedNamingTheUnknownStep() async throws {
        let (app, _, directory) = application()
        _ = try await app.run(RunOptions(stateDirectory: directory, once: true))
        try await app.openStore(directory, create: false).writer.write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99-from-the-future')")
        }
        for create in [true, false] {
            let error = #expect(throws: ShadowError.self) { _ = try app.openStore(directory, create: create) }
            #expect(error?.message.contains("written by a newer auditd (schema steps v99-from-the-future") == true)
        }
    }

    /// kill -9 (or a disk) may leave a WAL cut anywhere: SQLite drops the torn commit and every later one, the
    /// shadow is exactly an earlier state (rows with their offsets), and ingest resumes from there to the same end.
    @Test func aTruncatedWALLeavesAnEarlierIntactStateAndIngestResumes() async throws {
        let half = InMemoryKafkaLog()
        let full = InMemoryKafkaLog()
        synthetic.write(to: full)
        let topic = synthetic.topic(0)
        let records = full.records(topic: topic)
        half.append(topic: topic, value: records[0].value ?? [])
        let (app, _, directory) = application(half)
        let live = try app.openStore(directory, create: true)  // held open: its WAL is not checkpointed away
        // eight ingests, eight or more commits, each moving the offsets
        for chunk in stride(from: 1, to: records.count / 2, by: records.count / 16) {
            for record in records[chunk..<min(chunk + records.count / 16, records.count / 2)] {
                half.append(topic: topic, value: record.value ?? [])
            }
            _ = try await app.ingest(RunOptions(stateDirectory: directory, once: true), store: live)
        }
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("torn-\(UUID())").path
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        for name in ["shadow.sqlite", "shadow.sqlite-wal"] {
            try FileManager.default.copyItem(
                atPath: (directory as NSString).appendingPathComponent(name),
                toPath: (copy as NSString).appendingPathComponent(name))
        }
        let wal = (copy as NSString).appendingPathComponent("shadow.sqlite-wal")
        let walSize = try #require(FileManager.default.attributesOfItem(atPath: wal)[.size] as? Int)
        #expect(walSize > 10_000)
        try #require(truncate(wal, off_t(walSize * 2 / 3 + 1500)) == 0)  // cut inside a frame, two thirds in

        let (resumed, _, _) = application(full)
        let torn = try resumed.openStore(copy, create: false)
        #expect(try torn.verify().isEmpty)
        // the torn commit and those after it are gone (possibly every one), an earlier state stands
        let tornOffset = try torn.checkpoints()[topic]?.nextOffset ?? -1
        let liveOffset = try #require(try live.checkpoints()[topic]?.nextOffset)
        #expect(tornOffset < liveOffset)
        _ = try await resumed.run(RunOptions(stateDirectory: copy, once: true))
        let (fresh, _, freshDirectory) = application(full)
        _ = try await fresh.run(RunOptions(stateDirectory: freshDirectory, once: true))
        #expect(
            try resumed.openStore(copy, create: false).differences(from: fresh.openStore(freshDirectory, create: false))
                .isEmpty)
    }

    @Test func storageFailuresAreNamedAndOthersAreNot() {
        #expect(ShadowStore.storageProblem(DatabaseError(resultCode: .SQLITE_FULL))?.contains("full") == true)
        #expect(ShadowStore.storageProblem(DatabaseError(resultCode: .SQLITE_IOERR_WRITE))?.contains("I/O") == true)
        #expect(ShadowStore.storageProblem(DatabaseError(resultCode: .SQLITE_READONLY)) != nil)
        #expect(ShadowStore.storageProblem(DatabaseError(resultCode: .SQLITE_CONSTRAINT)) == nil)
        #expect(ShadowStore.storageProblem(ShadowError(message: "x")) == nil)
    }
}

@Suite("Secrets")
struct SecretTests {
    @Test func credentialPropertiesAndURLPasswordsAreMasked() {
        #expect(Redaction.property("sasl.password=hunter2") == "sasl.password=****")
        #expect(Redaction.property("ssl.key.password=abc") == "ssl.key.password=****")
        #expect(Redaction.property("sasl.oauthbearer.client.secret=s3") == "sasl.oauthbearer.client.secret=****")
        #expect(Redaction.property("security.protocol=SASL_SSL") == "security.protocol=SASL_SSL")
        #expect(Redaction.property("sasl.password:hunter2") == "sasl.password:****")
        #expect(Redaction.property("sasl.password hunter2") == "sasl.password ****")
        #expect(Redaction.url("https://ops:hunter2@am.example:9093/api") == "https://ops:****@am.example:9093/api")
        #expect(Redaction.url("http://127.0.0.1:9093") == "http://127.0.0.1:9093")
    }

    @Test func refusalsNeverEchoASecret() {
        for (flags, file) in [
            (["sasl.password:hunter2"], ConfigFile()),
            ([], try! ConfigFile.parse("kafka-property: sasl.password hunter2")),
        ] {
            let error = #expect(throws: ApplicationError.self) {
                _ = try Settings.resolve(kafkaPropertyFlags: flags, file: file)
            }
            #expect(error.map { !$0.message.contains("hunter2") } == true)
        }
        let badLine = #expect(throws: ApplicationError.self) { _ = try ConfigFile.parse("sasl.password hunter2") }
        #expect(badLine.map { !$0.message.contains("hunter2") } == true)
        let badURL = #expect(throws: ApplicationError.self) {
            _ = try Settings.resolve(flags: ["alertmanager": "ftp://ops:hunter2@am:9093"])
        }
        #expect(badURL.map { !$0.message.contains("hunter2") && $0.message.contains("alertmanager") } == true)
    }

    @Test func aConfigFileWithASecretThatOthersCanReadGetsAWarning() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("auditd-\(UUID()).yaml").path
        try "brokers: b:9092\nkafka-property: sasl.password=hunter2\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        let warning = try #require(try ConfigFile.load(path: path).warnings.first)
        #expect(warning.contains("readable by others (mode 644)") && warning.contains("chmod 600"))
        #expect(!warning.contains("hunter2"))
        chmod(path, 0o600)
        #expect(try ConfigFile.load(path: path).warnings.isEmpty)
        try "brokers: b:9092\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        #expect(try ConfigFile.load(path: path).warnings.isEmpty)  // nothing secret in it
    }

    @Test func aSecretRefusedByLibrdkafkaIsNotEchoed() {
        // librdkafka quotes an invalid value; for a secret property the value is masked.
        #expect(
            Redaction.scrub("Invalid value \"hunter2\" for configuration property", secrets: ["hunter2"])
                == "Invalid value \"****\" for configuration property")
    }
}
