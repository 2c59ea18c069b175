import Auditor
import Foundation
import MilvusProto
import SwiftProtobuf
import Testing

@testable import AuditorMilvus

@Suite("WAL decoding")
struct WALDecoderTests {
    /// The example of docs/row-hash.md; the same value comes out of dev/rowhash.py.
    func goldenRow(reversed: Bool = false) -> Milvus_Proto_Msg_InsertRequest {
        var vector = Fixtures.field(101, .floatVector)
        vector.vectors.dim = 4
        vector.vectors.floatVector.data = Fixtures.floatBytes([0.5, -1.0, 2.25, 0.0])
        var array = Fixtures.field(104, .array)
        var element = Milvus_Proto_Schema_ScalarField()
        element.longData.data = [1, -2]
        array.scalars.arrayData.data = [element]
        array.scalars.arrayData.elementType = .int64
        var flag = Fixtures.field(105, .bool)
        flag.scalars.boolData.data = [true]
        var int8 = Fixtures.field(106, .int8)
        int8.scalars.intData.data = [-5]
        var float = Fixtures.field(107, .float)
        float.scalars.floatData.data = [1.5]
        var double = Fixtures.field(108, .double)
        double.scalars.doubleData.data = [-2.5]
        var binary = Fixtures.field(109, .binaryVector)
        binary.vectors.dim = 16
        binary.vectors.binaryVector = Data([0x0f, 0xf0])
        var others = [
            vector, Fixtures.strings(102, ["héllo"]), Fixtures.json(103, ["{\"a\":1}"]), array, flag, int8, float,
            double, binary,
        ]
        if reversed { others.reverse() }
        return Fixtures.insert(pks: Fixtures.longs(100, [42]), others: others, rows: 1)
    }

    @Test func goldenRowHashMatchesTheSpec() throws {
        var decoder = WALDecoder()
        for reversed in [false, true] {
            let message = decoder.decode(Fixtures.record(goldenRow(reversed: reversed)))
            guard case .insert(let insert) = message.body else {
                Issue.record("not an insert: \(message.body)")
                return
            }
            #expect(insert.rows.count == 1)
            #expect(insert.rows[0].pk == .int(42))
            #expect(insert.rows[0].rowHash.hex16 == "4e92572d5bd23dfd")
            #expect(insert.pkInferred)
        }
    }

    @Test func singleVarcharField() {
        var decoder = WALDecoder()
        let message = decoder.decode(
            Fixtures.record(Fixtures.insert(pks: Fixtures.strings(100, ["a"]), others: [], rows: 1)))
        guard case .insert(let insert) = message.body else {
            Issue.record("not an insert")
            return
        }
        #expect(insert.rows[0].rowHash.hex16 == "d2f34a9c7f77bb63")
        #expect(insert.rows[0].pk == .string("a"))
    }

    @Test func insertRowsCarryPositionAndIdentity() {
        var decoder = WALDecoder()
        let request = Fixtures.insert(
            pks: Fixtures.strings(100, ["a", "b", "c"]),
            others: [
                Fixtures.floatVector(101, dim: 8, rows: 3),
                Fixtures.json(102, ["{}", "{\"x\":1}", "{}"], dynamic: true),
            ],
            rows: 3, ts: 12345 << 18)
        let message = decoder.decode(Fixtures.record(request, offset: 17))
        #expect(message.pchannel == Fixtures.pchannel)
        #expect(message.offset == 17)
        #expect(message.ts == 12345 << 18)
        guard case .insert(let insert) = message.body else {
            Issue.record("not an insert")
            return
        }
        #expect(insert.rows.map(\.pk) == [.string("a"), .string("b"), .string("c")])
        #expect(insert.rows.map(\.ts) == [12345 << 18, 12345 << 18, 12345 << 18])
        #expect(insert.rows.map(\.rowID) == [1000, 1001, 1002])
        #expect(insert.shard == Fixtures.shard)
        #expect(insert.collectionID == Fixtures.collectionID)
        #expect(Set(insert.rows.map(\.rowHash)).count == 3)
    }

    @Test func vectorsAreHashedBitExact() {
        var decoder = WALDecoder()
        func hash(_ values: [Float]) -> UInt64? {
            var vector = Fixtures.field(101, .floatVector)
            vector.vectors.dim = 2
            vector.vectors.floatVector.data = Fixtures.floatBytes(values)
            let message = decoder.decode(
                Fixtures.record(Fixtures.insert(pks: Fixtures.longs(100, [1]), others: [vector], rows: 1)))
            if case .insert(let insert) = message.body { return insert.rows.first?.rowHash }
            return nil
        }
        // 0.0 and -0.0 compare equal as floats but are different bits.
        #expect(hash([0.0, 1]) != hash([-0.0, 1]))
        #expect(hash([1, 2]) == hash([1, 2]))
        #expect(hash([1, 2]) != hash([1, 2.0000002]))
    }

    @Test func schemaFromCreateCollectionNamesThePrimaryKey() {
        var decoder = WALDecoder()
        let create = Fixtures.createCollection(fields: [
            Fixtures.fieldSchema(0, "RowID", .int64), Fixtures.fieldSchema(1, "Timestamp", .int64),
            Fixtures.fieldSchema(100, "n", .int64), Fixtures.fieldSchema(101, "id", .varChar, pk: true),
            Fixtures.fieldSchema(102, "v", .floatVector, dim: 4),
        ])
        let created = decoder.decode(Fixtures.record(create))
        guard case .createCollection(let schema) = created.body else {
            Issue.record("not a create: \(created.body)")
            return
        }
        #expect(schema.primaryKey?.name == "id")
        #expect(schema.fields.first { $0.id == 102 }?.dim == 4)
        #expect(schema.virtualChannels == [Fixtures.shard])
        // The pk is field 101, not the lowest Int64 field.
        let insert = decoder.decode(
            Fixtures.record(
                Fixtures.insert(
                    pks: Fixtures.longs(100, [5]),
                    others: [Fixtures.strings(101, ["x"]), Fixtures.floatVector(102, dim: 4, rows: 1)], rows: 1)))
        guard case .insert(let rows) = insert.body else {
            Issue.record("not an insert: \(insert.body)")
            return
        }
        #expect(rows.rows[0].pk == .string("x"))
        #expect(!rows.pkInferred)
        // Disagreeing with the schema: wrong dim, unknown field, missing field, wrong type.
        let wrongDim = Fixtures.insert(
            pks: Fixtures.longs(100, [5]),
            others: [Fixtures.strings(101, ["x"]), Fixtures.floatVector(102, dim: 8, rows: 1)],
            rows: 1)
        let unknownField = Fixtures.insert(
            pks: Fixtures.longs(100, [5]),
            others: [
                Fixtures.strings(101, ["x"]), Fixtures.floatVector(102, dim: 4, rows: 1), Fixtures.longs(150, [1]),
            ],
            rows: 1)
        let missing = Fixtures.insert(pks: Fixtures.longs(100, [5]), others: [Fixtures.strings(101, ["x"])], rows: 1)
        let wrongType = Fixtures.insert(
            pks: Fixtures.longs(100, [5]),
            others: [Fixtures.longs(101, [1]), Fixtures.floatVector(102, dim: 4, rows: 1)],
            rows: 1)
        for (request, expected) in [
            (wrongDim, "schema says 4"), (unknownField, "not in the schema"), (missing, "missing"),
            (wrongType, "schema says VarChar"),
        ] {
            let message = decoder.decode(Fixtures.record(request))
            guard case .undecodable(let reason) = message.body else {
                Issue.record("accepted a row that disagrees with the schema: \(expected)")
                continue
            }
            #expect(reason.contains(expected), "\(reason)")
        }
    }

    /// Milvus 2.3.5's upsert writes its Insert with MsgBase.timestamp 0 and only per-row timestamps.
    @Test func insertWithoutBaseTimestampTakesItsRowsTimestamp() {
        var decoder = WALDecoder()
        var request = Fixtures.insert(pks: Fixtures.longs(100, [1, 2]), others: [], rows: 2, ts: 777)
        request.base.timestamp = 0
        let message = decoder.decode(Fixtures.record(request))
        #expect(message.ts == 777)
    }

    @Test func deletesWithIntAndStringKeys() {
        var decoder = WALDecoder()
        let ints = decoder.decode(Fixtures.record(Fixtures.delete(intPKs: [3, 4])))
        guard case .delete(let delete) = ints.body else {
            Issue.record("not a delete")
            return
        }
        #expect(delete.keys == [DeletedKey(pk: .int(3), ts: 1 << 41), DeletedKey(pk: .int(4), ts: 1 << 41)])
        #expect(delete.partitionID == -1)
        var strings = Fixtures.delete(intPKs: [])
        strings.primaryKeys.strID.data = ["a", "b", "c"]
        strings.numRows = 3
        strings.timestamps = [1, 2, 3]
        let decoded = decoder.decode(Fixtures.record(strings))
        guard case .delete(let stringDelete) = decoded.body else {
            Issue.record("not a delete")
            return
        }
        #expect(stringDelete.keys.map(\.pk) == [.string("a"), .string("b"), .string("c")])
        #expect(stringDelete.keys.map(\.ts) == [1, 2, 3])
    }

    @Test func typeComesFromHeaderWhenPresentElseMsgBase() {
        var decoder = WALDecoder()
        var tick = Milvus_Proto_Msg_TimeTickMsg()
        tick.base = Fixtures.base(.timeTick, ts: 99)
        #expect(decoder.decode(Fixtures.record(tick)).body == .timeTick)
        // A 2.5 producer names the type in a header; it wins over MsgBase (here: both say delete).
        let delete = Fixtures.record(
            Fixtures.delete(intPKs: [1]), headers: [KafkaHeader(name: "msg_type", value: Array("Delete".utf8))])
        #expect(decoder.decode(delete).body.kindName == "delete")
        var flush = Milvus_Proto_Common_MsgHeader()
        flush.base = Fixtures.base(.flush)
        #expect(decoder.decode(Fixtures.record(flush)).body == .other(msgType: 402))
        var unknown = Milvus_Proto_Common_MsgHeader()
        unknown.base.msgType = .UNRECOGNIZED(31337)
        #expect(decoder.decode(Fixtures.record(unknown)).body == .other(msgType: 31337))
    }

    @Test func ddlMessages() {
        var decoder = WALDecoder()
        var drop = Milvus_Proto_Msg_DropCollectionRequest()
        drop.base = Fixtures.base(.dropCollection)
        drop.collectionID = 9
        drop.collectionName = "gone"
        #expect(
            decoder.decode(Fixtures.record(drop)).body
                == .dropCollection(DropCollectionMessage(collectionID: 9, collectionName: "gone", dbName: "")))
        var dropPartition = Milvus_Proto_Msg_DropPartitionRequest()
        dropPartition.base = Fixtures.base(.dropPartition)
        dropPartition.collectionID = 9
        dropPartition.partitionID = 12
        dropPartition.partitionName = "p"
        guard case .dropPartition(let p) = decoder.decode(Fixtures.record(dropPartition)).body else {
            Issue.record("not a drop partition")
            return
        }
        #expect(p.partitionID == 12 && p.partitionName == "p")
        var createPartition = Milvus_Proto_Msg_CreatePartitionRequest()
        createPartition.base = Fixtures.base(.createPartition)
        createPartition.partitionID = 13
        #expect(decoder.decode(Fixtures.record(createPartition)).body.kindName == "create_partition")
    }

    @Test func inconsistentColumnsAreUndecodableWithReason() {
        var decoder = WALDecoder()
        var tooFew = Fixtures.insert(pks: Fixtures.longs(100, [1, 2]), others: [], rows: 3)
        tooFew.timestamps = [1, 1, 1]
        var badTimestamps = Fixtures.insert(pks: Fixtures.longs(100, [1]), others: [], rows: 1)
        badTimestamps.timestamps = [1, 2]
        var absurdRows = Fixtures.insert(pks: Fixtures.longs(100, [1]), others: [], rows: 1)
        absurdRows.numRows = UInt64.max
        var int8OutOfRange = Fixtures.field(101, .int8)
        int8OutOfRange.scalars.intData.data = [300]
        let outOfRange = Fixtures.insert(pks: Fixtures.longs(100, [1]), others: [int8OutOfRange], rows: 1)
        var wrongKind = Fixtures.field(101, .float)
        wrongKind.scalars.longData.data = [1]
        let mismatched = Fixtures.insert(pks: Fixtures.longs(100, [1]), others: [wrongKind], rows: 1)
        var hugeDim = Fixtures.floatVector(101, dim: 1, rows: 1)
        hugeDim.vectors.dim = Int64.max
        let absurdDim = Fixtures.insert(pks: Fixtures.longs(100, [1]), others: [hugeDim], rows: 1)
        let duplicate = Fixtures.insert(pks: Fixtures.longs(100, [1]), others: [Fixtures.longs(100, [1])], rows: 1)
        var rowBased = Fixtures.insert(pks: Fixtures.longs(100, [1]), others: [], rows: 1)
        rowBased.rowData = [Milvus_Proto_Common_Blob()]
        for request in [tooFew, badTimestamps, absurdRows, outOfRange, mismatched, absurdDim, duplicate, rowBased] {
            let message = decoder.decode(Fixtures.record(request, offset: 5))
            guard case .undecodable(let reason) = message.body else {
                Issue.record("accepted: \(request)")
                continue
            }
            #expect(!reason.isEmpty)
            #expect(message.offset == 5 && message.pchannel == Fixtures.pchannel)
        }
    }

    @Test func nullEmptyAndGarbageValues() {
        var decoder = WALDecoder()
        #expect(
            decoder.decode(KafkaRecord(topic: "t", offset: 1, value: nil)).body == .undecodable(reason: "null value"))
        #expect(
            decoder.decode(KafkaRecord(topic: "t", offset: 1, value: [])).body == .undecodable(reason: "empty value"))
        let garbage = decoder.decode(KafkaRecord(topic: "t", offset: 2, value: [0xff, 0xff, 0xff]))
        #expect(garbage.body.kindName == "undecodable")
    }
}

@Suite("Wire compatibility")
struct WireCompatibilityTests {
    /// Milvus's real FloatArray (repeated float, packed) decodes through our bytes declaration.
    @Test func packedFloatArrayReadsAsVectorBytes() throws {
        var floats = Milvus_Proto_Schema_FloatArray()
        floats.data = [1.5, -0.0, 3.25]
        let packed = try floats.serializedData()
        let asBytes = try Milvus_Proto_Schema_FloatVectorBytes(serializedBytes: packed)
        #expect(asBytes.data == Fixtures.floatBytes([1.5, -0.0, 3.25]))
    }
}
