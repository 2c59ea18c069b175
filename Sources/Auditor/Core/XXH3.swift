import CXXHash

/// XXH3-64 (seed 0): the hash of row hashes, pk buckets and version hashes. The only user of libxxhash.
public enum XXH3 {
    public static func hash64(_ bytes: [UInt8]) -> UInt64 {
        bytes.withUnsafeBytes { hash64($0) }
    }
    public static func hash64(_ buffer: UnsafeRawBufferPointer) -> UInt64 {
        XXH3_64bits(buffer.baseAddress, buffer.count)
    }
    public static var libraryVersion: String {
        let v = XXH_versionNumber()
        return "\(v / 10000).\((v / 100) % 100).\(v % 100)"
    }
}

extension UInt64 {
    /// 16 lowercase hex digits, the form row hashes take in JSON and reports.
    public var hex16: String {
        let digits = String(self, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
