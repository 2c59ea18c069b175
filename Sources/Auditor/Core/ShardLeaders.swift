/// The shard leaders that answered for one replica: vchannel → "nodeID@address". Stored and shown as
/// "vchannel=nodeID@address,…" (sorted by vchannel).
public enum ShardLeaders {
    public static func format(_ leaders: [String: String]) -> String {
        leaders.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    public static func parse(_ text: String) -> [String: String] {
        var map: [String: String] = [:]
        for pair in text.split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
            if kv.count == 2 { map[kv[0]] = kv[1] }
        }
        return map
    }

    /// The node ids in "nodeID@address" values.
    public static func nodeIDs(_ leaders: [String: String]) -> Set<Int64> {
        Set(leaders.values.compactMap { $0.split(separator: "@").first.flatMap { Int64($0) } })
    }
}
