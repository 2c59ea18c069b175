import Foundation
import Logging
import Testing

@testable import Auditor
@testable import AuditorMilvus

/// The real cluster (dev/cluster up): a pymilvus workload, then auditd's library API must yield
/// exactly the inserted pks, the deletes, and row hashes equal to those dev/rowhash.py computed
/// from the client's data. Run inside the cluster's network namespace (`dev/cluster exec swift test`),
/// which sets AUDITD_BROKERS; without it these tests are skipped.
@Suite(
    "Real cluster: decoding Milvus's log",
    .enabled(
        if: ProcessInfo.processInfo.environment["AUDITD_BROKERS"] != nil, "needs dev/cluster up + dev/cluster exec"),
    .serialized)
struct TailIntegrationTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    struct Expected: Decodable {
        struct Collection: Decodable {
            struct Row: Decodable {
                var pk: PK
                var row_hash: String
            }
            var name: String
            var id: Int64
            var pk_type: String
            var shards: Int
            var replicas: Int
            var replica_nodes: [[Int64]]
            struct Field: Decodable {
                var id: Int64
                var name: String
            }
            var fields: [Field]
            var rows: [Row]
            var deleted: [PK]
        }
        var collections: [Collection]
    }

    /// A pk as JSON gives it: number or string.
    struct PK: Decodable, Hashable {
        var value: PrimaryKey
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let int = try? container.decode(Int64.self) {
                value = .int(int)
            } else {
                value = .string(try container.decode(String.self))
            }
        }
    }

    static func runWorkload(prefix: String, rows: Int, deletes: Int) throws -> Expected {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix).json")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", root.appendingPathComponent("dev/workload.py").path, "--prefix", prefix, "--rows", String(rows),
            "--batch", "20", "--deletes", String(deletes), "--out", out.path,
        ]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "workload failed"])
        }
        return try JSONDecoder().decode(Expected.self, from: Data(contentsOf: out))
    }

    @Test func libraryYieldsExactlyWhatTheClientWrote() async throws {
        let expected = try Self.runWorkload(
            prefix: "it_lib_\(UInt32.random(in: 0...UInt32.max))", rows: 5000, deletes: 500)
        #expect(expected.collections.count == 2)
        var logger = Logger(label: "it")
        logger.logLevel = .warning
        let brokers = ProcessInfo.processInfo.environment["AUDITD_BROKERS"] ?? "127.0.0.1:9092"
        let app = buildApplication(AuditorConfiguration(brokers: brokers, logger: logger))
        let reader = try app.walReader(fromBeginning: true, untilEnd: true)
        try await reader.start()
        let ids = Set(expected.collections.map(\.id))
        var inserted: [Int64: [PrimaryKey: [(hash: UInt64, ts: UInt64, shard: String, pchannel: String)]]] = [:]
        var deleted: [Int64: [PrimaryKey: UInt64]] = [:]
        var vchannels: [Int64: Set<String>] = [:]
        var undecodable: [WALMessage] = []
        while let batch = try await reader.next() {
            for message in batch {
                switch message.body {
                case .insert(let insert) where ids.contains(insert.collectionID):
                    for row in insert.rows {
                        inserted[insert.collectionID, default: [:]][row.pk, default: []].append(
                            (row.rowHash, row.ts, insert.shard, message.pchannel))
                    }
                case .delete(let delete) where ids.contains(delete.collectionID):
                    for key in delete.keys { deleted[delete.collectionID, default: [:]][key.pk] = key.ts }
                case .createCollection(let schema) where ids.contains(schema.collectionID):
                    vchannels[schema.collectionID] = Set(schema.virtualChannels)
                case .undecodable:
                    undecodable.append(message)
                default:
                    break
                }
            }
        }
        #expect(undecodable.isEmpty, "\(undecodable.prefix(3))")
        #expect(reader.errors.isEmpty, "\(reader.errors)")
        for collection in expected.collections {
            let got = inserted[collection.id] ?? [:]
            let want = Dictionary(uniqueKeysWithValues: collection.rows.map { ($0.pk.value, $0.row_hash) })
            #expect(got.count == want.count, "\(collection.name): \(got.count) pks in the log, \(want.count) inserted")
            #expect(Set(got.keys) == Set(want.keys), "\(collection.name): pk sets differ")
            let duplicates = got.filter { $0.value.count != 1 }
            #expect(duplicates.isEmpty, "\(collection.name): pks written more than once: \(duplicates.keys.prefix(5))")
            let mismatched = want.filter { pk, hash in got[pk]?.first?.hash.hex16 != hash }
            #expect(
                mismatched.isEmpty,
                "\(collection.name): \(mismatched.count) row hashes differ, e.g. \(mismatched.first.map { "\($0.key)" } ?? "")"
            )
            // every row sits in one of the collection's shards, on the pchannel that names it
            let shards = vchannels[collection.id] ?? []
            #expect(shards.count == collection.shards)
            let misplaced = got.values.flatMap { $0 }.filter {
                !shards.contains($0.shard) || !$0.shard.hasPrefix($0.pchannel + "_")
            }
            #expect(misplaced.isEmpty)
            // the deletes: exactly the deleted pks, each after its insert
            let dels = deleted[collection.id] ?? [:]
            #expect(
                Set(dels.keys) == Set(collection.deleted.map(\.value)), "\(collection.name): deleted pk sets differ")
            let early = dels.filter { pk, ts in (got[pk]?.first?.ts ?? 0) >= ts }
            #expect(early.isEmpty, "\(collection.name): deletes not after their inserts: \(early.count)")
            #expect(collection.replicas == 2)
            // one replica per QueryNode: querynode1 and querynode2 each serve a whole copy
            #expect(collection.replica_nodes.count == 2 && Set(collection.replica_nodes.flatMap { $0 }).count == 2)
        }
    }
}

@Suite(
    "Real cluster: Milvus public API over gRPC (libcurl HTTP/2)",
    .enabled(
        if: ProcessInfo.processInfo.environment["AUDITD_BROKERS"] != nil, "needs dev/cluster up + dev/cluster exec"))
struct MilvusClientIntegrationTests {
    @Test func describeAndShowCollections() async throws {
        let expected = try TailIntegrationTests.runWorkload(
            prefix: "it_api_\(UInt32.random(in: 0...UInt32.max))", rows: 40, deletes: 0)
        let client = MilvusClient(target: "127.0.0.1:19530")
        let listed = try await client.showCollections()
        for collection in expected.collections {
            #expect(listed.contains { $0.name == collection.name && $0.id == collection.id })
            let schema = try await client.describeCollection(id: collection.id)
            #expect(schema.name == collection.name)
            #expect(schema.virtualChannels.count == collection.shards)
            #expect(schema.primaryKey?.type == (collection.pk_type == "VarChar" ? .varChar : .int64))
            #expect(
                Set(schema.userFields.map(\.id)).isSuperset(
                    of: collection.fields.filter { $0.name != "$meta" }.map(\.id)))
        }
        // Milvus refuses with its own status; an unreachable proxy is a transport failure.
        let refusal = await #expect(throws: MilvusError.self) {
            _ = try await client.describeCollection(name: "no_such_collection_x")
        }
        #expect(refusal?.status?.error == .collectionNotFound, "\(String(describing: refusal))")
        let down = await #expect(throws: TransportError.self) {
            _ = try await MilvusClient(target: "127.0.0.1:1").showCollections()
        }
        #expect(down?.kind == .unavailable)
    }
}
