/// How long until Kafka retention deletes a record that a consumer has not read yet: the consumer's oldest
/// unconsumed record was written at `oldestUnconsumedMs` (its reached timestamp; Kafka's retention is by
/// record time); retention removes it at that time + `retention`. A warning before data is lost, not a
/// `retention_loss` after.
public enum RetentionHeadroom {
    /// Seconds left (negative: overdue, the record may be gone already); nil when the consumer is caught up
    /// (nothing unconsumed).
    public static func seconds(oldestUnconsumedMs: Int64?, retention: Duration, nowMs: Int64) -> Double? {
        guard let oldest = oldestUnconsumedMs else { return nil }
        let retentionMs = retention.components.seconds * 1000 + retention.components.attoseconds / 1_000_000_000_000_000
        return Double(oldest + retentionMs - nowMs) / 1000
    }
}
