import AuditorCore
import AuditorKafka
import AuditorMilvus

/// How the shadow identifies rows: pk bytes, segment-hash buckets and per-version hashes.
///
/// - pk bytes: Int64 as 8 bytes big-endian with the sign bit flipped (so byte order = numeric order),
///   VarChar as its UTF-8 bytes. The collection's pk type says which.
/// - bucket(pk) = XXH3-64(pk bytes) mod S (S = 4,096 by default).
/// - version hash H(pk, ts, row hash) = XXH3-64(pk bytes ‖ ts uint64 LE ‖ row hash uint64 LE).
/// - bucket hash = XOR of H over the bucket's live row versions (TicTac-style, order-free, incremental).
public enum ShadowHashing {
    public static func pkBytes(_ pk: PrimaryKey) -> [UInt8] {
        switch pk {
        case .int(let value):
            let flipped = UInt64(bitPattern: value) ^ (1 << 63)
            return withUnsafeBytes(of: flipped.bigEndian) { Array($0) }
        case .string(let value):
            return Array(value.utf8)
        }
    }

    public static func primaryKey(_ bytes: [UInt8], isInt: Bool) -> PrimaryKey? {
        if isInt {
            guard bytes.count == 8 else { return nil }
            let raw = bytes.reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
            return .int(Int64(bitPattern: raw ^ (1 << 63)))
        }
        return String(validating: bytes, as: UTF8.self).map(PrimaryKey.string)
    }

    public static func bucket(pkBytes: [UInt8], buckets: Int) -> Int {
        let h = pkBytes.withUnsafeBytes { XXH3.hash64($0) }
        return Int(h % UInt64(buckets))
    }

    public static func version(pkBytes: [UInt8], ts: UInt64, rowHash: UInt64) -> UInt64 {
        var bytes = pkBytes
        withUnsafeBytes(of: ts.littleEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: rowHash.littleEndian) { bytes.append(contentsOf: $0) }
        return bytes.withUnsafeBytes { XXH3.hash64($0) }
    }
}
