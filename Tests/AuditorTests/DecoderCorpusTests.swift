import Auditor
import AuditorTesting
import Foundation
import MilvusProto
import SwiftProtobuf
import Testing

@testable import AuditorMilvus

/// Thousands of malformed inputs thrown at the decoder: none may crash it, none may vanish.
@Suite("Decoder corpus")
struct DecoderCorpusTests {
    func validMessages() -> [[UInt8]] {
        var tick = Milvus_Proto_Msg_TimeTickMsg()
        tick.base = Fixtures.base(.timeTick)
        let inserts = [
            Fixtures.insert(
                pks: Fixtures.strings(100, (0..<10).map { "pk-\($0)" }),
                others: [
                    Fixtures.floatVector(101, dim: 16, rows: 10),
                    Fixtures.json(102, Array(repeating: "{\"k\":1}", count: 10), dynamic: true),
                ],
                rows: 10),
            Fixtures.insert(
                pks: Fixtures.longs(100, Array(0..<5)), others: [Fixtures.strings(101, ["a", "b", "c", "d", "e"])],
                rows: 5),
        ]
        let create = Fixtures.createCollection(fields: [
            Fixtures.fieldSchema(100, "id", .int64, pk: true), Fixtures.fieldSchema(101, "v", .floatVector, dim: 16),
        ])
        var out = inserts.map { try! Array($0.serializedData()) }
        out.append(try! Array(Fixtures.delete(intPKs: [1, 2, 3]).serializedData()))
        out.append(try! Array(tick.serializedData()))
        out.append(try! Array(create.serializedData()))
        return out
    }

    /// Decodes and checks the invariants every result must hold.
    func check(_ decoder: inout WALDecoder, _ bytes: [UInt8], offset: Int64, tally: inout [String: Int]) {
        let message = decoder.decode(KafkaRecord(topic: "by-dev-rootcoord-dml_0", offset: offset, value: bytes))
        #expect(message.offset == offset)
        tally[message.body.kindName, default: 0] += 1
        switch message.body {
        case .undecodable(let reason):
            #expect(!reason.isEmpty)
        case .insert(let insert):
            #expect(insert.rows.count <= bytes.count)  // never more rows than bytes
        default:
            break
        }
    }

    @Test func randomBytesNeverCrash() {
        var rng = SplitMix64(state: 1)
        var decoder = WALDecoder()
        var tally: [String: Int] = [:]
        for i in 0..<3000 {
            let length = Int.random(in: 0...512, using: &rng)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            check(&decoder, bytes, offset: Int64(i), tally: &tally)
        }
        #expect(tally.values.reduce(0, +) == 3000)
        #expect(tally["undecodable", default: 0] > 2000, "\(tally)")
    }

    @Test func truncationsAndMutationsNeverCrash() {
        var rng = SplitMix64(state: 2)
        var decoder = WALDecoder()
        var tally: [String: Int] = [:]
        var count = 0
        for valid in validMessages() {
            // every strict prefix
            for cut in stride(from: 0, to: valid.count, by: max(1, valid.count / 300)) {
                check(&decoder, Array(valid.prefix(cut)), offset: Int64(count), tally: &tally)
                count += 1
            }
            // byte mutations
            for _ in 0..<500 {
                var bytes = valid
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let index = Int.random(in: 0..<bytes.count, using: &rng)
                    bytes[index] = UInt8.random(in: 0...255, using: &rng)
                }
                check(&decoder, bytes, offset: Int64(count), tally: &tally)
                count += 1
            }
        }
        #expect(count > 3000)
        #expect(tally["undecodable", default: 0] > 0)
    }

    @Test func absurdLengthsAndDeepNesting() {
        var decoder = WALDecoder()
        var tally: [String: Int] = [:]
        // field 1 (MsgBase), length varint 2^62: the buffer cannot hold it
        let hugeLength: [UInt8] = [0x0A, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x40, 0x08, 0x90, 0x03]
        check(&decoder, hugeLength, offset: 0, tally: &tally)
        // a valid MsgBase saying Insert, then fields_data (13) with length 2^31
        var header = Milvus_Proto_Common_MsgHeader()
        header.base = Fixtures.base(.insert)
        var bytes = try! Array(header.serializedData())
        bytes += [0x6A, 0x80, 0x80, 0x80, 0x80, 0x08]
        check(&decoder, bytes, offset: 1, tally: &tally)
        // nesting deeper than the decoder allows: ArrayArray in ScalarField in ArrayArray ...
        var nested: [UInt8] = []
        for _ in 0..<200 { nested = [0x42, UInt8(min(nested.count, 127))] + nested }
        check(
            &decoder, try! Array(header.serializedData()) + [0x6A, UInt8(min(nested.count, 127))] + nested, offset: 2,
            tally: &tally)
        #expect(tally["undecodable"] == 3, "\(tally)")
    }

    @Test func schemaDisagreementsOnGeneratedRows() {
        var rng = SplitMix64(state: 3)
        var decoder = WALDecoder(schemas: [
            CollectionSchemaInfo(
                collectionID: Fixtures.collectionID, name: "c",
                fields: [
                    FieldInfo(id: 100, name: "id", type: .varChar, isPrimaryKey: true, maxLength: 8),
                    FieldInfo(id: 101, name: "v", type: .floatVector, dim: 4),
                    FieldInfo(id: 102, name: "n", type: .int16),
                ])
        ])
        var tally: [String: Int] = [:]
        var accepted = 0
        for i in 0..<1000 {
            let rows = Int.random(in: 1...5, using: &rng)
            let pkLength = Int.random(in: 1...10, using: &rng)  // > 8 violates max_length
            let dim = [4, 4, 4, 8].randomElement(using: &rng)!
            var small = Fixtures.field(102, .int16)
            small.scalars.intData.data = (0..<rows).map { _ in Int32.random(in: -40000...40000, using: &rng) }
            let request = Fixtures.insert(
                pks: Fixtures.strings(100, (0..<rows).map { _ in String(repeating: "x", count: pkLength) }),
                others: [Fixtures.floatVector(101, dim: dim, rows: rows), small], rows: rows)
            let valid =
                pkLength <= 8 && dim == 4 && small.scalars.intData.data.allSatisfy { (-32768...32767).contains($0) }
            let message = decoder.decode(Fixtures.record(request, offset: Int64(i)))
            tally[message.body.kindName, default: 0] += 1
            #expect((message.body.kindName == "insert") == valid)
            if valid { accepted += 1 }
        }
        #expect(accepted > 0 && accepted < 1000)
    }

    /// The `wal` fuzz target's seed corpus: real records captured from the local cluster's Kafka
    /// (dev/capture-wal-corpus), each file one or more frames (UInt32 LE length, bytes). Every one decodes.
    @Test func theRecordsCapturedFromMilvusAllDecode() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/corpus/wal")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        var kinds: [String: Int] = [:]
        for name in names {
            let bytes = [UInt8](try Data(contentsOf: folder.appendingPathComponent(name)))
            var decoder = WALDecoder()
            var index = 0
            var last: WALMessage?
            while index + 4 <= bytes.count {
                let length = bytes[index..<(index + 4)].reversed().reduce(0) { $0 << 8 | Int($1) }
                let value = Array(bytes[(index + 4)..<(index + 4 + length)])
                last = decoder.decode(KafkaRecord(topic: "by-dev-rootcoord-dml_0", offset: Int64(index), value: value))
                index += 4 + length
            }
            let message = try #require(last, "\(name) holds no frame")
            if case .undecodable(let reason) = message.body { Issue.record("\(name): \(reason)") }
            if case .insert(let insert) = message.body {
                #expect(!insert.rows.isEmpty, "\(name)")
                // after its CreateCollection the decoder knows the pk; alone it infers it
                #expect(insert.pkInferred == !name.hasPrefix("create+"), "\(name)")
            }
            kinds[String(name.split(separator: "-")[0]), default: 0] += 1
        }
        #expect(kinds["create+insert", default: 0] >= 2 && kinds["create+delete", default: 0] >= 2)
        #expect(kinds["tick", default: 0] >= 1 && kinds["drop", default: 0] >= 1)
    }
}
