/// Duration in the units the C libraries, clocks and reports use.
extension Duration {
    /// Whole milliseconds.
    public var milliseconds64: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
    /// Whole milliseconds, clamped to what librdkafka's and libcurl's `int` timeouts take.
    public var milliseconds: Int32 { Int32(clamping: max(0, milliseconds64)) }
    public var secondsValue: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
