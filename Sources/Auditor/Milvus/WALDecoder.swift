import AuditorCore
import AuditorKafka
import AuditorTransport
import Foundation
import MilvusProto
import SwiftProtobuf

/// Decodes Milvus 2.3–2.5 DML-topic records (value = one marshaled msgpb request, partition 0).
///
/// The message type comes from the `msg_type` Kafka header when Milvus sets it (2.5+), otherwise
/// from the `MsgBase` every request starts with. Nothing here traps on bad input: every failure
/// becomes `.undecodable(reason:)` with the record's position kept by the caller.
public struct WALDecoder {
    /// Schemas by collection id, learned from CreateCollection records or registered by the caller.
    public private(set) var schemas: [Int64: CollectionSchemaInfo] = [:]
    private var builder = RowHashBuilder(capacity: 16 * 1024)
    /// Upper bound on rows in one record (Milvus caps a record at 5 MiB estimated; this only stops absurd input).
    public var maxRowsPerMessage = 10_000_000

    public init(schemas: [CollectionSchemaInfo] = []) {
        for schema in schemas { self.schemas[schema.collectionID] = schema }
    }

    public mutating func register(_ schema: CollectionSchemaInfo) {
        schemas[schema.collectionID] = schema
    }

    public mutating func forget(collectionID: Int64) {
        schemas[collectionID] = nil
    }

    /// The collection of the last decoded record when it was an insert that could not be decoded without its
    /// schema (an Array field's element type is only in the schema): a caller that can ask Milvus may retry.
    public private(set) var failedWithoutSchema: Int64?

    public mutating func decode(_ record: KafkaRecord) -> WALMessage {
        failedWithoutSchema = nil
        var message = WALMessage(
            pchannel: record.topic, offset: record.offset, kafkaTimestampMs: record.timestampMs, ts: 0, sourceID: 0,
            body: .undecodable(reason: "empty"))
        guard let value = record.value, !value.isEmpty else {
            message.body = .undecodable(reason: record.value == nil ? "null value" : "empty value")
            return message
        }
        let options = BinaryDecodingOptions.discardingUnknown
        let type: Int
        do {
            let header = try Milvus_Proto_Common_MsgHeader(serializedBytes: value, options: options)
            guard header.hasBase else {
                message.body = .undecodable(reason: "no MsgBase at field 1")
                return message
            }
            message.ts = header.base.timestamp
            message.sourceID = header.base.sourceID
            type = Self.headerType(record) ?? header.base.msgType.rawValue
        } catch {
            message.body = .undecodable(reason: "not a Milvus message: \(error)")
            return message
        }
        do {
            message.body = try decodeBody(type: type, value: value, baseTimestamp: message.ts, options: options)
        } catch let failure as DecodeFailure {
            message.body = .undecodable(reason: failure.reason)
        } catch {
            message.body = .undecodable(reason: "\(Self.typeName(type)): \(error)")
        }
        if case .createCollection(let schema) = message.body { register(schema) }
        // Milvus 2.3.5's upsert path leaves MsgBase.timestamp 0 on its Insert record and sets only the
        // per-row timestamps: the record's ts is its rows' (they are all equal).
        if message.ts == 0 {
            switch message.body {
            case .insert(let insert): message.ts = insert.rows.map(\.ts).max() ?? 0
            case .delete(let delete): message.ts = delete.keys.map(\.ts).max() ?? 0
            default: break
            }
        }
        return message
    }

    /// Milvus 2.5+ names the type in a `msg_type` header (e.g. "Insert"); absent on broadcasts and in 2.3.
    static func headerType(_ record: KafkaRecord) -> Int? {
        record.header("msg_type").flatMap(MilvusMessageType.init(headerName:))?.rawValue
    }

    static func typeName(_ type: Int) -> String {
        Milvus_Proto_Common_MsgType(rawValue: type).map { "\($0)" } ?? "MsgType \(type)"
    }

    private mutating func decodeBody(
        type: Int, value: [UInt8], baseTimestamp: UInt64, options: BinaryDecodingOptions
    ) throws -> WALBody {
        switch MilvusMessageType(rawValue: type) {
        case .insert?:
            let request = try Milvus_Proto_Msg_InsertRequest(serializedBytes: value, options: options)
            do {
                return .insert(try decodeInsert(request, baseTimestamp: baseTimestamp))
            } catch {
                if schemas[request.collectionID] == nil { failedWithoutSchema = request.collectionID }
                throw error
            }
        case .delete?:
            let request = try Milvus_Proto_Msg_DeleteRequest(serializedBytes: value, options: options)
            return .delete(try decodeDelete(request, baseTimestamp: baseTimestamp))
        case .timeTick?:
            return .timeTick
        case .createCollection?:
            let request = try Milvus_Proto_Msg_CreateCollectionRequest(serializedBytes: value, options: options)
            return .createCollection(try Self.decodeCreateCollection(request, options: options))
        case .dropCollection?:
            let request = try Milvus_Proto_Msg_DropCollectionRequest(serializedBytes: value, options: options)
            return .dropCollection(
                DropCollectionMessage(
                    collectionID: request.collectionID, collectionName: request.collectionName,
                    dbName: request.dbName))
        case .createPartition?:
            return .createPartition(
                try Self.partition(Milvus_Proto_Msg_CreatePartitionRequest(serializedBytes: value, options: options)))
        case .dropPartition?:
            return .dropPartition(
                try Self.partition(Milvus_Proto_Msg_DropPartitionRequest(serializedBytes: value, options: options)))
        case nil:
            return .other(msgType: type)
        }
    }

    static func partition(_ request: some PartitionRequest) -> PartitionMessage {
        PartitionMessage(
            collectionID: request.collectionID, collectionName: request.collectionName,
            partitionID: request.partitionID, partitionName: request.partitionName)
    }

    // MARK: Insert

    private mutating func decodeInsert(_ request: Milvus_Proto_Msg_InsertRequest, baseTimestamp: UInt64) throws
        -> InsertMessage
    {
        guard request.rowData.isEmpty else {
            throw DecodeFailure("Insert: row-based payload (pre-2.2 format) is not supported")
        }
        guard let rowCount = Int(exactly: request.numRows), rowCount <= maxRowsPerMessage else {
            throw DecodeFailure("Insert: num_rows \(request.numRows) is absurd")
        }
        guard request.timestamps.isEmpty || request.timestamps.count == rowCount else {
            throw DecodeFailure("Insert: \(request.timestamps.count) timestamps for \(rowCount) rows")
        }
        guard request.rowIds.isEmpty || request.rowIds.count == rowCount else {
            throw DecodeFailure("Insert: \(request.rowIds.count) row ids for \(rowCount) rows")
        }
        guard rowCount == 0 || !request.fieldsData.isEmpty else {
            throw DecodeFailure("Insert: \(rowCount) rows but no fields_data")
        }
        let schema = schemas[request.collectionID]
        var columns: [Column] = []
        columns.reserveCapacity(request.fieldsData.count)
        for fieldData in request.fieldsData {
            columns.append(try Column(fieldData, rows: rowCount, schema: schema))
        }
        columns.sort { $0.fieldID < $1.fieldID }
        for index in columns.indices.dropFirst() where columns[index].fieldID == columns[index - 1].fieldID {
            throw DecodeFailure("Insert: field \(columns[index].fieldID) appears twice")
        }
        if let schema { try Self.checkComplete(columns, schema: schema) }
        // The pk column: from the schema, else inferred (lowest-id Int64/VarChar field).
        let pkColumnIndex: Int
        let inferred: Bool
        if let pk = schema?.primaryKey {
            guard let index = columns.firstIndex(where: { $0.fieldID == pk.id }) else {
                throw DecodeFailure("Insert: primary key field \(pk.id) '\(pk.name)' missing")
            }
            pkColumnIndex = index
            inferred = false
        } else {
            guard let index = columns.firstIndex(where: { $0.isPrimaryKeyCandidate }) else {
                throw DecodeFailure("Insert: no Int64 or VarChar column to take as primary key")
            }
            pkColumnIndex = index
            inferred = true
        }
        var rows: [InsertedRow] = []
        rows.reserveCapacity(rowCount)
        let pkColumn = columns[pkColumnIndex]
        for row in 0..<rowCount {
            builder.reset()
            for column in columns { try column.append(row: row, to: &builder) }
            rows.append(
                InsertedRow(
                    pk: pkColumn.primaryKey(row: row),
                    ts: request.timestamps.isEmpty ? baseTimestamp : request.timestamps[row],
                    rowID: request.rowIds.isEmpty ? 0 : request.rowIds[row],
                    rowHash: builder.hash))
        }
        return InsertMessage(
            collectionID: request.collectionID, collectionName: request.collectionName,
            partitionID: request.partitionID, partitionName: request.partitionName, shard: request.shardName,
            segmentID: request.segmentID, pkFieldID: pkColumn.fieldID, pkInferred: inferred, rows: rows)
    }

    private static func checkComplete(_ columns: [Column], schema: CollectionSchemaInfo) throws {
        let present = Set(columns.map(\.fieldID))
        for field in schema.userFields where !field.isDynamic && !present.contains(field.id) {
            throw DecodeFailure(
                "Insert: field \(field.id) '\(field.name)' of collection \(schema.collectionID) missing")
        }
    }

    // MARK: Delete

    private func decodeDelete(_ request: Milvus_Proto_Msg_DeleteRequest, baseTimestamp: UInt64) throws
        -> DeleteMessage
    {
        let pks: [PrimaryKey]
        switch request.primaryKeys.idField {
        case .intID(let ids)?: pks = ids.data.map(PrimaryKey.int)
        case .strID(let ids)?: pks = ids.data.map(PrimaryKey.string)
        case nil: pks = request.int64PrimaryKeys.map(PrimaryKey.int)
        }
        guard pks.count <= maxRowsPerMessage else { throw DecodeFailure("Delete: \(pks.count) keys is absurd") }
        guard request.numRows == 0 || request.numRows == Int64(pks.count) else {
            throw DecodeFailure("Delete: num_rows \(request.numRows) but \(pks.count) primary keys")
        }
        guard request.timestamps.isEmpty || request.timestamps.count == pks.count else {
            throw DecodeFailure("Delete: \(request.timestamps.count) timestamps for \(pks.count) primary keys")
        }
        if let pk = schemas[request.collectionID]?.primaryKey, let first = pks.first {
            let matches: Bool
            switch first {
            case .int: matches = pk.type == .int64
            case .string: matches = pk.type == .varChar || pk.type == .string
            }
            guard matches else {
                throw DecodeFailure("Delete: primary keys are not \(pk.type) as the schema says")
            }
        }
        var keys: [DeletedKey] = []
        keys.reserveCapacity(pks.count)
        for (index, pk) in pks.enumerated() {
            keys.append(
                DeletedKey(pk: pk, ts: request.timestamps.isEmpty ? baseTimestamp : request.timestamps[index]))
        }
        return DeleteMessage(
            collectionID: request.collectionID, collectionName: request.collectionName,
            partitionID: request.partitionID, partitionName: request.partitionName, shard: request.shardName,
            keys: keys)
    }

    // MARK: CreateCollection

    static func decodeCreateCollection(
        _ request: Milvus_Proto_Msg_CreateCollectionRequest, options: BinaryDecodingOptions
    ) throws -> CollectionSchemaInfo {
        let schema: Milvus_Proto_Schema_CollectionSchema
        do {
            schema = try Milvus_Proto_Schema_CollectionSchema(serializedBytes: request.schema, options: options)
        } catch {
            throw DecodeFailure("CreateCollection: schema bytes do not decode: \(error)")
        }
        let info = try collectionSchema(
            schema, collectionID: request.collectionID, dbName: request.dbName,
            fallbackName: request.collectionName)
        var result = info
        result.virtualChannels = request.virtualChannelNames
        result.physicalChannels = request.physicalChannelNames
        result.partitionIDs = request.partitionIds
        return result
    }

    static func collectionSchema(
        _ schema: Milvus_Proto_Schema_CollectionSchema, collectionID: Int64, dbName: String, fallbackName: String
    ) throws -> CollectionSchemaInfo {
        var fields: [FieldInfo] = []
        for field in schema.fields {
            guard let type = MilvusDataType(rawValue: field.dataType.rawValue) else {
                throw DecodeFailure(
                    "CreateCollection: field \(field.fieldID) has unknown type \(field.dataType.rawValue)")
            }
            let params = Dictionary(field.typeParams.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
            fields.append(
                FieldInfo(
                    id: field.fieldID, name: field.name, type: type,
                    elementType: MilvusDataType(rawValue: field.elementType.rawValue) ?? .none,
                    isPrimaryKey: field.isPrimaryKey, isDynamic: field.isDynamic, autoID: field.autoID,
                    dim: params["dim"].flatMap { Int($0) }, maxLength: params["max_length"].flatMap { Int($0) }))
        }
        let primaryKeys = fields.filter(\.isPrimaryKey)
        guard primaryKeys.count == 1, let pk = primaryKeys.first, pk.type == .int64 || pk.type == .varChar else {
            throw DecodeFailure("CreateCollection: schema needs exactly one Int64 or VarChar primary key")
        }
        return CollectionSchemaInfo(
            collectionID: collectionID, name: schema.name.isEmpty ? fallbackName : schema.name, dbName: dbName,
            fields: fields, enableDynamicField: schema.enableDynamicField)
    }
}

struct DecodeFailure: Error, CustomStringConvertible {
    var reason: String
    init(_ reason: String) { self.reason = reason }
    var description: String { reason }
}

extension BinaryDecodingOptions {
    static var discardingUnknown: BinaryDecodingOptions {
        var options = BinaryDecodingOptions()
        options.discardUnknownFields = true
        return options
    }
}

/// Create/DropPartitionRequest carry the same identifying fields.
protocol PartitionRequest {
    var collectionID: Int64 { get }
    var collectionName: String { get }
    var partitionID: Int64 { get }
    var partitionName: String { get }
}

extension Milvus_Proto_Msg_CreatePartitionRequest: PartitionRequest {}
extension Milvus_Proto_Msg_DropPartitionRequest: PartitionRequest {}
