import AuditorCore
import AuditorKafka
import AuditorTransport
import Foundation
import MilvusProto

/// The Milvus message types auditd interprets (common.proto `MsgType` numbering); any other type is
/// `WALBody.other` with its number.
public enum MilvusMessageType: Int, Sendable, CaseIterable {
    case createCollection = 100
    case dropCollection = 101
    case createPartition = 200
    case dropPartition = 201
    case insert = 400
    case delete = 401
    case timeTick = 1200

    /// The name Milvus 2.5+ puts in a record's `msg_type` header.
    public init?(headerName: String) {
        switch headerName {
        case "Insert": self = .insert
        case "Delete": self = .delete
        case "TimeTick": self = .timeTick
        case "CreateCollection": self = .createCollection
        case "DropCollection": self = .dropCollection
        case "CreatePartition": self = .createPartition
        case "DropPartition": self = .dropPartition
        default: return nil  // unknown name: trust MsgBase
        }
    }
}

/// Milvus data types (schema.proto numbering).
public enum MilvusDataType: Int, Sendable, Hashable, Codable, CustomStringConvertible {
    case none = 0
    case bool = 1
    case int8 = 2
    case int16 = 3
    case int32 = 4
    case int64 = 5
    case float = 10
    case double = 11
    case string = 20
    case varChar = 21
    case array = 22
    case json = 23
    case binaryVector = 100
    case floatVector = 101
    case float16Vector = 102
    case bfloat16Vector = 103

    public var description: String {
        switch self {
        case .none: return "None"
        case .bool: return "Bool"
        case .int8: return "Int8"
        case .int16: return "Int16"
        case .int32: return "Int32"
        case .int64: return "Int64"
        case .float: return "Float"
        case .double: return "Double"
        case .string: return "String"
        case .varChar: return "VarChar"
        case .array: return "Array"
        case .json: return "JSON"
        case .binaryVector: return "BinaryVector"
        case .floatVector: return "FloatVector"
        case .float16Vector: return "Float16Vector"
        case .bfloat16Vector: return "BFloat16Vector"
        }
    }

    public var isVector: Bool { rawValue >= 100 }
}

/// One field of a collection schema as seen in the log (or from DescribeCollection).
public struct FieldInfo: Sendable, Equatable, Codable {
    public var id: Int64
    public var name: String
    public var type: MilvusDataType
    public var elementType: MilvusDataType
    public var isPrimaryKey: Bool
    public var isDynamic: Bool
    public var autoID: Bool
    /// Vector dimension (type param "dim"), nil for scalars.
    public var dim: Int?
    public var maxLength: Int?

    public init(
        id: Int64, name: String, type: MilvusDataType, elementType: MilvusDataType = .none, isPrimaryKey: Bool = false,
        isDynamic: Bool = false, autoID: Bool = false, dim: Int? = nil, maxLength: Int? = nil
    ) {
        self.id = id
        self.name = name
        self.type = type
        self.elementType = elementType
        self.isPrimaryKey = isPrimaryKey
        self.isDynamic = isDynamic
        self.autoID = autoID
        self.dim = dim
        self.maxLength = maxLength
    }

    /// System fields RowID (0) and Timestamp (1) never appear in `fields_data`.
    public var isSystem: Bool { id < 100 }
}

public struct CollectionSchemaInfo: Sendable, Equatable, Codable {
    public var collectionID: Int64
    public var name: String
    public var dbName: String
    public var fields: [FieldInfo]
    public var enableDynamicField: Bool
    public var virtualChannels: [String]
    public var physicalChannels: [String]
    public var partitionIDs: [Int64]

    public init(
        collectionID: Int64, name: String, dbName: String = "", fields: [FieldInfo], enableDynamicField: Bool = false,
        virtualChannels: [String] = [], physicalChannels: [String] = [], partitionIDs: [Int64] = []
    ) {
        self.collectionID = collectionID
        self.name = name
        self.dbName = dbName
        self.fields = fields
        self.enableDynamicField = enableDynamicField
        self.virtualChannels = virtualChannels
        self.physicalChannels = physicalChannels
        self.partitionIDs = partitionIDs
    }

    public var primaryKey: FieldInfo? { fields.first(where: \.isPrimaryKey) }
    /// User fields that every insert must carry (system fields excluded).
    public var userFields: [FieldInfo] { fields.filter { !$0.isSystem } }
}

public struct InsertedRow: Sendable, Equatable {
    public var pk: PrimaryKey
    public var ts: UInt64
    public var rowID: Int64
    /// XXH3-64 over the row's canonical field encoding (docs/row-hash.md).
    public var rowHash: UInt64
    public init(pk: PrimaryKey, ts: UInt64, rowID: Int64, rowHash: UInt64) {
        self.pk = pk
        self.ts = ts
        self.rowID = rowID
        self.rowHash = rowHash
    }
}

public struct InsertMessage: Sendable, Equatable {
    public var collectionID: Int64
    public var collectionName: String
    public var partitionID: Int64
    public var partitionName: String
    /// The vchannel, e.g. by-dev-rootcoord-dml_3_4455v0.
    public var shard: String
    public var segmentID: Int64
    public var pkFieldID: Int64
    /// True when no schema was known and the pk column was inferred (lowest Int64/VarChar field id).
    public var pkInferred: Bool
    public var rows: [InsertedRow]
    public init(
        collectionID: Int64, collectionName: String, partitionID: Int64, partitionName: String, shard: String,
        segmentID: Int64, pkFieldID: Int64, pkInferred: Bool, rows: [InsertedRow]
    ) {
        self.collectionID = collectionID
        self.collectionName = collectionName
        self.partitionID = partitionID
        self.partitionName = partitionName
        self.shard = shard
        self.segmentID = segmentID
        self.pkFieldID = pkFieldID
        self.pkInferred = pkInferred
        self.rows = rows
    }
}

public struct DeletedKey: Sendable, Equatable {
    public var pk: PrimaryKey
    public var ts: UInt64
    public init(pk: PrimaryKey, ts: UInt64) {
        self.pk = pk
        self.ts = ts
    }
}

public struct DeleteMessage: Sendable, Equatable {
    public var collectionID: Int64
    public var collectionName: String
    /// -1 when the delete applies to every partition.
    public var partitionID: Int64
    public var partitionName: String
    public var shard: String
    public var keys: [DeletedKey]
    public init(
        collectionID: Int64, collectionName: String, partitionID: Int64, partitionName: String, shard: String,
        keys: [DeletedKey]
    ) {
        self.collectionID = collectionID
        self.collectionName = collectionName
        self.partitionID = partitionID
        self.partitionName = partitionName
        self.shard = shard
        self.keys = keys
    }
}

public struct DropCollectionMessage: Sendable, Equatable {
    public var collectionID: Int64
    public var collectionName: String
    public var dbName: String
    public init(collectionID: Int64, collectionName: String, dbName: String) {
        self.collectionID = collectionID
        self.collectionName = collectionName
        self.dbName = dbName
    }
}

public struct PartitionMessage: Sendable, Equatable {
    public var collectionID: Int64
    public var collectionName: String
    public var partitionID: Int64
    public var partitionName: String
    public init(collectionID: Int64, collectionName: String, partitionID: Int64, partitionName: String) {
        self.collectionID = collectionID
        self.collectionName = collectionName
        self.partitionID = partitionID
        self.partitionName = partitionName
    }
}

/// What one Kafka record of a Milvus DML topic means.
public enum WALBody: Sendable, Equatable {
    case insert(InsertMessage)
    case delete(DeleteMessage)
    case timeTick
    case createCollection(CollectionSchemaInfo)
    case dropCollection(DropCollectionMessage)
    case createPartition(PartitionMessage)
    case dropPartition(PartitionMessage)
    /// A valid Milvus message of a type auditd does not interpret, with its MsgType number.
    case other(msgType: Int)
    /// Bytes that are not a valid Milvus message (or disagree with the schema); never silently dropped.
    case undecodable(reason: String)

    public var kindName: String {
        switch self {
        case .insert: return "insert"
        case .delete: return "delete"
        case .timeTick: return "timetick"
        case .createCollection: return "create_collection"
        case .dropCollection: return "drop_collection"
        case .createPartition: return "create_partition"
        case .dropPartition: return "drop_partition"
        case .other: return "other"
        case .undecodable: return "undecodable"
        }
    }

    public var collectionID: Int64? {
        switch self {
        case .insert(let m): return m.collectionID
        case .delete(let m): return m.collectionID
        case .createCollection(let m): return m.collectionID
        case .dropCollection(let m): return m.collectionID
        case .createPartition(let m), .dropPartition(let m): return m.collectionID
        case .timeTick, .other, .undecodable: return nil
        }
    }

    public var collectionName: String? {
        switch self {
        case .insert(let m): return m.collectionName
        case .delete(let m): return m.collectionName
        case .createCollection(let m): return m.name
        case .dropCollection(let m): return m.collectionName
        case .createPartition(let m), .dropPartition(let m): return m.collectionName
        case .timeTick, .other, .undecodable: return nil
        }
    }
}

/// A decoded record with its position in the log.
public struct WALMessage: Sendable, Equatable {
    public var pchannel: String
    public var offset: Int64
    public var kafkaTimestampMs: Int64?
    /// `MsgBase.timestamp` (hybrid); 0 when the record could not be decoded.
    public var ts: UInt64
    public var sourceID: Int64
    public var body: WALBody
    public init(pchannel: String, offset: Int64, kafkaTimestampMs: Int64?, ts: UInt64, sourceID: Int64, body: WALBody) {
        self.pchannel = pchannel
        self.offset = offset
        self.kafkaTimestampMs = kafkaTimestampMs
        self.ts = ts
        self.sourceID = sourceID
        self.body = body
    }
}
