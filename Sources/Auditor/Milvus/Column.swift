import AuditorCore
import AuditorKafka
import AuditorTransport
import Foundation
import MilvusProto

/// One `FieldData` column of an insert, validated against the row count (and the schema when known),
/// able to append any row's canonical value to a `RowHashBuilder`.
struct Column {
    enum Storage {
        case bools([Bool])
        case ints([Int32])
        case longs([Int64])
        case floats([Float])
        case doubles([Double])
        case strings([String])
        case json([Data])
        case arrays([Milvus_Proto_Schema_ScalarField], elementType: MilvusDataType)
        case rawVector(Data, bytesPerRow: Int)
    }

    let fieldID: Int64
    let type: MilvusDataType
    let storage: Storage

    var isPrimaryKeyCandidate: Bool {
        switch storage {
        case .longs: return type == .int64
        case .strings: return type == .varChar || type == .string
        default: return false
        }
    }

    init(_ field: Milvus_Proto_Schema_FieldData, rows: Int, schema: CollectionSchemaInfo?) throws {
        let id = field.fieldID
        guard let type = MilvusDataType(rawValue: field.type.rawValue), type != .none else {
            throw DecodeFailure("Insert: field \(id) has unknown data type \(field.type.rawValue)")
        }
        fieldID = id
        self.type = type
        var schemaField: FieldInfo?
        if let schema {
            guard let known = schema.fields.first(where: { $0.id == id }) else {
                throw DecodeFailure("Insert: field \(id) is not in the schema of collection \(schema.collectionID)")
            }
            guard known.type == type || (known.type.isString && type.isString) else {
                throw DecodeFailure("Insert: field \(id) '\(known.name)' is \(type), schema says \(known.type)")
            }
            schemaField = known
        }
        func mismatch(_ what: String) -> DecodeFailure {
            DecodeFailure("Insert: field \(id) (\(type)) carries \(what)")
        }
        func check(_ count: Int) throws {
            guard count == rows else {
                throw DecodeFailure("Insert: field \(id) (\(type)) has \(count) values for \(rows) rows")
            }
        }
        switch field.field {
        case .scalars(let scalars)?:
            guard !type.isVector else { throw mismatch("scalar data") }
            switch (type, scalars.data) {
            case (.bool, .boolData(let values)?):
                try check(values.data.count)
                storage = .bools(values.data)
            case (.int8, .intData(let values)?), (.int16, .intData(let values)?), (.int32, .intData(let values)?):
                try check(values.data.count)
                let range: ClosedRange<Int32> =
                    type == .int8 ? -128...127 : type == .int16 ? -32768...32767 : Int32.min...Int32.max
                if let bad = values.data.first(where: { !range.contains($0) }) {
                    throw DecodeFailure("Insert: field \(id) (\(type)) value \(bad) out of range")
                }
                storage = .ints(values.data)
            case (.int64, .longData(let values)?):
                try check(values.data.count)
                storage = .longs(values.data)
            case (.float, .floatData(let values)?):
                try check(values.data.count)
                storage = .floats(values.data)
            case (.double, .doubleData(let values)?):
                try check(values.data.count)
                storage = .doubles(values.data)
            case (.varChar, .stringData(let values)?), (.string, .stringData(let values)?):
                try check(values.data.count)
                if let maxLength = schemaField?.maxLength,
                    let long = values.data.first(where: { $0.utf8.count > maxLength })
                {
                    throw DecodeFailure(
                        "Insert: field \(id) value of \(long.utf8.count) bytes exceeds max_length \(maxLength)")
                }
                storage = .strings(values.data)
            case (.json, .jsonData(let values)?):
                try check(values.data.count)
                storage = .json(values.data)
            case (.array, .arrayData(let values)?):
                try check(values.data.count)
                var elementType = MilvusDataType(rawValue: values.elementType.rawValue) ?? .none
                if elementType == .none, let fromSchema = schemaField?.elementType { elementType = fromSchema }
                guard elementType.isArrayElement else {
                    throw DecodeFailure(
                        "Insert: field \(id) array element type \(values.elementType.rawValue) unusable")
                }
                storage = .arrays(values.data, elementType: elementType)
            default:
                throw mismatch(scalars.data.map { "\($0)".prefix(while: { $0 != "(" }).description } ?? "no data")
            }
        case .vectors(let vectors)?:
            guard type.isVector else { throw mismatch("vector data") }
            guard let dim = Int(exactly: vectors.dim), dim > 0, dim <= 65_536 else {
                throw DecodeFailure("Insert: field \(id) vector dim \(vectors.dim) is absurd")
            }
            if let expected = schemaField?.dim, expected != dim {
                throw DecodeFailure("Insert: field \(id) vector dim \(dim), schema says \(expected)")
            }
            let (expectedCount, overflow) = rows.multipliedReportingOverflow(by: dim)
            guard !overflow else { throw DecodeFailure("Insert: field \(id) rows × dim overflows") }
            switch (type, vectors.data) {
            case (.floatVector, .floatVector(let values)?):
                guard values.data.count == expectedCount * 4 else {
                    throw DecodeFailure(
                        "Insert: field \(id) has \(values.data.count / 4) floats for \(rows) rows of dim \(dim)")
                }
                storage = .rawVector(values.data, bytesPerRow: dim * 4)
            case (.binaryVector, .binaryVector(let bytes)?):
                guard dim % 8 == 0, bytes.count == expectedCount / 8 else {
                    throw DecodeFailure(
                        "Insert: field \(id) has \(bytes.count) bytes for \(rows) binary rows of dim \(dim)")
                }
                storage = .rawVector(bytes, bytesPerRow: dim / 8)
            case (.float16Vector, .float16Vector(let bytes)?), (.bfloat16Vector, .bfloat16Vector(let bytes)?):
                guard bytes.count == expectedCount * 2 else {
                    throw DecodeFailure("Insert: field \(id) has \(bytes.count) bytes for \(rows) rows of dim \(dim)")
                }
                storage = .rawVector(bytes, bytesPerRow: dim * 2)
            default:
                throw mismatch("another vector kind")
            }
        case nil:
            throw mismatch("no data")
        }
    }

    func primaryKey(row: Int) -> PrimaryKey {
        switch storage {
        case .longs(let values): return .int(values[row])
        case .strings(let values): return .string(values[row])
        default: return .int(0)  // unreachable: only candidates are chosen
        }
    }

    /// Appends `field_id | type | length | value` for this row (docs/row-hash.md).
    func append(row: Int, to builder: inout RowHashBuilder) throws {
        let typeCode = Int32(type.rawValue)
        switch storage {
        case .bools(let values):
            builder.appendFieldHeader(fieldID: fieldID, type: typeCode, length: 1)
            builder.appendScalarBool(values[row])
        case .ints(let values):
            builder.appendFieldHeader(fieldID: fieldID, type: typeCode, length: 8)
            builder.appendScalarInt(Int64(values[row]))
        case .longs(let values):
            builder.appendFieldHeader(fieldID: fieldID, type: typeCode, length: 8)
            builder.appendScalarInt(values[row])
        case .floats(let values):
            builder.appendFieldHeader(fieldID: fieldID, type: typeCode, length: 4)
            builder.appendScalarFloat(values[row])
        case .doubles(let values):
            builder.appendFieldHeader(fieldID: fieldID, type: typeCode, length: 8)
            builder.appendScalarDouble(values[row])
        case .strings(let values):
            builder.appendFieldHeader(fieldID: fieldID, type: typeCode, length: values[row].utf8.count)
            builder.appendScalarString(values[row])
        case .json(let values):
            let value = values[row]
            builder.appendFieldHeader(fieldID: fieldID, type: typeCode, length: value.count)
            builder.appendRaw(value)
        case .rawVector(let bytes, let width):
            builder.appendFieldHeader(fieldID: fieldID, type: typeCode, length: width)
            let start = bytes.startIndex + row * width
            bytes.withUnsafeBytes { raw in
                let base = raw.baseAddress.map { $0 + (start - bytes.startIndex) }
                builder.appendRaw(UnsafeRawBufferPointer(start: base, count: width))
            }
        case .arrays(let values, let elementType):
            var element = RowHashBuilder(capacity: 64)
            try Self.encodeArray(values[row], elementType: elementType, fieldID: fieldID, into: &element)
            builder.appendFieldHeader(fieldID: fieldID, type: typeCode, length: element.bytes.count)
            builder.appendRaw(element.bytes)
        }
    }

    /// Array value: element_type int32 LE | count uint32 LE | per element: length uint32 LE | scalar value.
    static func encodeArray(
        _ array: Milvus_Proto_Schema_ScalarField, elementType: MilvusDataType, fieldID: Int64,
        into out: inout RowHashBuilder
    ) throws {
        out.appendLE(Int32(elementType.rawValue))
        func header(_ count: Int) { out.appendLE(UInt32(truncatingIfNeeded: count)) }
        switch (elementType, array.data) {
        case (.bool, .boolData(let v)?):
            header(v.data.count)
            for x in v.data { out.appendLE(UInt32(1)); out.appendScalarBool(x) }
        case (.int8, .intData(let v)?), (.int16, .intData(let v)?), (.int32, .intData(let v)?):
            header(v.data.count)
            for x in v.data { out.appendLE(UInt32(8)); out.appendScalarInt(Int64(x)) }
        case (.int64, .longData(let v)?):
            header(v.data.count)
            for x in v.data { out.appendLE(UInt32(8)); out.appendScalarInt(x) }
        case (.float, .floatData(let v)?):
            header(v.data.count)
            for x in v.data { out.appendLE(UInt32(4)); out.appendScalarFloat(x) }
        case (.double, .doubleData(let v)?):
            header(v.data.count)
            for x in v.data { out.appendLE(UInt32(8)); out.appendScalarDouble(x) }
        case (.varChar, .stringData(let v)?), (.string, .stringData(let v)?):
            header(v.data.count)
            for x in v.data { out.appendLE(UInt32(truncatingIfNeeded: x.utf8.count)); out.appendScalarString(x) }
        case (_, nil):
            header(0)  // an empty array carries no oneof at all
        default:
            throw DecodeFailure(
                "Insert: field \(fieldID) array element data does not match element type \(elementType)")
        }
    }
}

extension MilvusDataType {
    var isString: Bool { self == .varChar || self == .string }
    var isArrayElement: Bool {
        switch self {
        case .bool, .int8, .int16, .int32, .int64, .float, .double, .varChar, .string: return true
        default: return false
        }
    }
}
