import Auditor
import AuditorTesting
import Foundation
import MilvusProto
import SwiftProtobuf

@testable import AuditorMilvus

/// Builds Milvus wire messages the way a 2.3 proxy does, for decoder tests.
enum Fixtures {
    static let collectionID: Int64 = 4455
    static let pchannel = "by-dev-rootcoord-dml_3"
    static let shard = "by-dev-rootcoord-dml_3_4455v0"

    static func base(_ type: Milvus_Proto_Common_MsgType, ts: UInt64 = 1 << 40) -> Milvus_Proto_Common_MsgBase {
        var base = Milvus_Proto_Common_MsgBase()
        base.msgType = type
        base.timestamp = ts
        base.sourceID = 7
        return base
    }

    static func field(_ id: Int64, _ type: Milvus_Proto_Schema_DataType, name: String = "")
        -> Milvus_Proto_Schema_FieldData
    {
        var field = Milvus_Proto_Schema_FieldData()
        field.fieldID = id
        field.type = type
        field.fieldName = name.isEmpty ? "f\(id)" : name
        return field
    }

    static func longs(_ id: Int64, _ values: [Int64]) -> Milvus_Proto_Schema_FieldData {
        var f = field(id, .int64)
        f.scalars.longData.data = values
        return f
    }

    static func strings(_ id: Int64, _ values: [String]) -> Milvus_Proto_Schema_FieldData {
        var f = field(id, .varChar)
        f.scalars.stringData.data = values
        return f
    }

    static func floatVector(_ id: Int64, dim: Int, rows: Int, seed: Float = 0.5) -> Milvus_Proto_Schema_FieldData {
        var f = field(id, .floatVector)
        f.vectors.dim = Int64(dim)
        f.vectors.floatVector.data = floatBytes((0..<(dim * rows)).map { Float($0) * seed })
        return f
    }

    /// Packed little-endian floats, as a Milvus FloatArray carries them on the wire.
    static func floatBytes(_ values: [Float]) -> Data { PackedFloats.encode(values) }

    static func json(_ id: Int64, _ values: [String], dynamic: Bool = false) -> Milvus_Proto_Schema_FieldData {
        var f = field(id, .json, name: dynamic ? "$meta" : "")
        f.isDynamic = dynamic
        f.scalars.jsonData.data = values.map { Data($0.utf8) }
        return f
    }

    static func insert(
        pks: Milvus_Proto_Schema_FieldData, others: [Milvus_Proto_Schema_FieldData], rows: Int, ts: UInt64 = 1 << 40,
        collectionID: Int64 = collectionID
    ) -> Milvus_Proto_Msg_InsertRequest {
        var request = Milvus_Proto_Msg_InsertRequest()
        request.base = base(.insert, ts: ts)
        request.shardName = shard
        request.collectionName = "c"
        request.collectionID = collectionID
        request.partitionID = 1
        request.segmentID = 99
        request.numRows = UInt64(rows)
        request.timestamps = Array(repeating: ts, count: rows)
        request.rowIds = (0..<rows).map { Int64(1000 + $0) }
        request.version = .columnBased
        request.fieldsData = [pks] + others
        return request
    }

    static func delete(intPKs: [Int64], ts: UInt64 = 1 << 41) -> Milvus_Proto_Msg_DeleteRequest {
        var request = Milvus_Proto_Msg_DeleteRequest()
        request.base = base(.delete, ts: ts)
        request.shardName = shard
        request.collectionID = collectionID
        request.partitionID = -1
        request.primaryKeys.intID.data = intPKs
        request.numRows = Int64(intPKs.count)
        request.timestamps = Array(repeating: ts, count: intPKs.count)
        return request
    }

    static func createCollection(fields: [Milvus_Proto_Schema_FieldSchema], dynamic: Bool = false)
        -> Milvus_Proto_Msg_CreateCollectionRequest
    {
        var schema = Milvus_Proto_Schema_CollectionSchema()
        schema.name = "c"
        schema.fields = fields
        schema.enableDynamicField = dynamic
        var request = Milvus_Proto_Msg_CreateCollectionRequest()
        request.base = base(.createCollection)
        request.collectionID = collectionID
        request.collectionName = "c"
        request.schema = try! schema.serializedData()
        request.virtualChannelNames = [shard]
        request.physicalChannelNames = [pchannel]
        return request
    }

    static func fieldSchema(
        _ id: Int64, _ name: String, _ type: Milvus_Proto_Schema_DataType, pk: Bool = false, dim: Int? = nil,
        dynamic: Bool = false
    ) -> Milvus_Proto_Schema_FieldSchema {
        var field = Milvus_Proto_Schema_FieldSchema()
        field.fieldID = id
        field.name = name
        field.dataType = type
        field.isPrimaryKey = pk
        field.isDynamic = dynamic
        if let dim {
            var param = Milvus_Proto_Common_KeyValuePair()
            param.key = "dim"
            param.value = String(dim)
            field.typeParams = [param]
        }
        return field
    }

    static func record(_ message: some SwiftProtobuf.Message, offset: Int64 = 0, headers: [KafkaHeader] = [])
        -> KafkaRecord
    {
        KafkaRecord(
            topic: pchannel, offset: offset, timestampMs: 1_700_000_000_000, headers: headers,
            value: try! Array(message.serializedData()))
    }
}
