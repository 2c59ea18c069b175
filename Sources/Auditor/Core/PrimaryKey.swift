import Foundation

/// A Milvus primary key: Int64 or VarChar. Ordered as Milvus and the shadow's index order them: ints
/// numerically, strings by their UTF-8 bytes (Swift's own `String <` orders by Unicode scalars, which differs
/// for some non-ASCII keys and would put a pk range's boundary elsewhere than Milvus's `pk < "…"`).
public enum PrimaryKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    case int(Int64)
    case string(String)

    public var description: String {
        switch self {
        case .int(let value): return String(value)
        case .string(let value): return value
        }
    }

    public static func < (lhs: PrimaryKey, rhs: PrimaryKey) -> Bool {
        switch (lhs, rhs) {
        case (.int(let a), .int(let b)): return a < b
        case (.string(let a), .string(let b)): return a.utf8.lexicographicallyPrecedes(b.utf8)
        case (.int, .string): return true
        case (.string, .int): return false
        }
    }
}

/// A half-open range of primary keys in `PrimaryKey` order: from `lower` (inclusive) up to `upper`
/// (exclusive); nil is unbounded. An audit compares a collection one range after another, so its memory is
/// bounded by a range's rows, not the collection's.
public struct PKRange: Sendable, Hashable, CustomStringConvertible {
    public var lower: PrimaryKey?
    public var upper: PrimaryKey?

    public static let all = PKRange(lower: nil, upper: nil)

    public init(lower: PrimaryKey?, upper: PrimaryKey?) {
        self.lower = lower
        self.upper = upper
    }

    public func contains(_ pk: PrimaryKey) -> Bool {
        if let lower, pk < lower { return false }
        if let upper, !(pk < upper) { return false }
        return true
    }

    /// Consecutive ranges covering every pk, split at `boundaries` (ascending, distinct).
    public static func split(at boundaries: [PrimaryKey]) -> [PKRange] {
        var ranges: [PKRange] = []
        var lower: PrimaryKey? = nil
        for boundary in boundaries {
            ranges.append(PKRange(lower: lower, upper: boundary))
            lower = boundary
        }
        ranges.append(PKRange(lower: lower, upper: nil))
        return ranges
    }

    public var description: String {
        "[\(lower.map { "\($0)" } ?? "-∞"), \(upper.map { "\($0)" } ?? "+∞"))"
    }
}

/// Milvus hybrid (TSO) timestamp helpers: physical milliseconds << 18 | logical counter.
public enum HybridTimestamp {
    public static func physicalMilliseconds(_ ts: UInt64) -> Int64 { Int64(ts >> 18) }
    public static func logical(_ ts: UInt64) -> UInt64 { ts & 0x3FFFF }
    public static func compose(milliseconds: Int64, logical: UInt64 = 0) -> UInt64 {
        (UInt64(max(0, milliseconds)) << 18) | (logical & 0x3FFFF)
    }
    /// ISO-8601 UTC with milliseconds, for humans.
    public static func iso8601(_ ts: UInt64) -> String {
        iso8601(milliseconds: physicalMilliseconds(ts))
    }
    public static func iso8601(milliseconds ms: Int64) -> String {
        let seconds = Double(ms) / 1000
        let date = Date(timeIntervalSince1970: seconds)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let millis = Int(((ms % 1000) + 1000) % 1000)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", c.year ?? 0, c.month ?? 0, c.day ?? 0, c.hour ?? 0,
            c.minute ?? 0, c.second ?? 0, millis)
    }
}

/// One version of one row: its pk, insert timestamp and row hash (docs/row-hash.md) — as the shadow keeps it
/// (`ShadowStore.LiveRow`) and as a replica answers it read in full (`HashedRow`).
public struct RowVersion: Sendable, Equatable, Hashable {
    public var pk: PrimaryKey
    public var ts: UInt64
    public var rowHash: UInt64
    public init(pk: PrimaryKey, ts: UInt64, rowHash: UInt64) {
        self.pk = pk
        self.ts = ts
        self.rowHash = rowHash
    }
}
