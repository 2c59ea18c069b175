/// Several inputs in one fuzz input: each a little-endian UInt32 length and that many bytes; a length that
/// overruns makes the rest the last frame. Lets one input hold a CreateCollection and the records after it.
enum Frames {
    static func split(_ bytes: [UInt8], max: Int) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        var index = 0
        while index < bytes.count, frames.count < max - 1 {
            guard bytes.count - index >= 4 else { break }
            let length =
                Int(bytes[index]) | Int(bytes[index + 1]) << 8 | Int(bytes[index + 2]) << 16 | Int(bytes[index + 3])
                << 24
            index += 4
            guard length <= bytes.count - index else { break }
            frames.append(Array(bytes[index..<(index + length)]))
            index += length
        }
        if index < bytes.count || frames.isEmpty { frames.append(Array(bytes[min(index, bytes.count)...])) }
        return frames
    }

    static func join(_ frames: [[UInt8]]) -> [UInt8] {
        frames.flatMap { frame -> [UInt8] in
            let n = UInt32(frame.count)
            return [UInt8(n & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n >> 16 & 0xFF), UInt8(n >> 24)] + frame
        }
    }
}
