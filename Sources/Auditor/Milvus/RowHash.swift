import AuditorCore
import AuditorKafka
import AuditorTransport
import Foundation
import MilvusProto

/// Builds the canonical byte string of one row and hashes it with XXH3-64 (seed 0).
/// The layout is specified in docs/row-hash.md; keep the two in step (a version bump if it changes).
///
/// Row = concatenation, over the row's fields in ascending field id, of
///   field_id: int64 LE | data_type: int32 LE | length: uint32 LE | value bytes (see `appendScalar`).
package struct RowHashBuilder {
    private(set) var bytes: [UInt8] = []

    package init(capacity: Int = 1024) {
        bytes.reserveCapacity(capacity)
    }

    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
    }

    mutating func appendFieldHeader(fieldID: Int64, type: Int32, length: Int) {
        appendLE(fieldID)
        appendLE(type)
        appendLE(UInt32(truncatingIfNeeded: length))
    }

    mutating func appendLE<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func appendRaw(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    mutating func appendRaw<C: Collection<UInt8>>(_ raw: C) {
        bytes.append(contentsOf: raw)
    }

    var hash: UInt64 {
        bytes.withUnsafeBytes { XXH3.hash64($0) }
    }
}

extension RowHashBuilder {
    /// Canonical value encodings of scalars:
    /// Bool 1 byte; Int8/16/32/64 as int64 LE; Float binary32 LE bits; Double binary64 LE bits;
    /// String/VarChar UTF-8; JSON the text bytes exactly as sent.
    mutating func appendScalarBool(_ value: Bool) { bytes.append(value ? 1 : 0) }
    mutating func appendScalarInt(_ value: Int64) { appendLE(value) }
    mutating func appendScalarFloat(_ value: Float) { appendLE(value.bitPattern) }
    mutating func appendScalarDouble(_ value: Double) { appendLE(value.bitPattern) }
    mutating func appendScalarString(_ value: String) {
        var value = value
        value.withUTF8 { bytes.append(contentsOf: $0) }
    }
}
