import AuditorCore
import AuditorMilvus
import AuditorShadow

/// Renders decoded WAL messages for `auditd tail`: one text line per message, or JSON lines
/// (one object per inserted/deleted row, one per other message).
public struct TailFormatter: Sendable {
    public enum Format: Sendable { case text, json }
    public var format: Format
    /// Keep only messages of this collection (id or name). Undecodable records are always shown.
    public var collection: String?
    public var showTimeTicks: Bool

    public init(format: Format, collection: String? = nil, showTimeTicks: Bool = true) {
        self.format = format
        self.collection = collection
        self.showTimeTicks = showTimeTicks
    }

    public func matches(_ body: WALBody) -> Bool {
        guard let collection else { return true }
        if let id = body.collectionID, String(id) == collection { return true }
        if let name = body.collectionName, !name.isEmpty, name == collection { return true }
        return false
    }

    public func lines(for message: WALMessage) -> [String] {
        switch message.body {
        case .undecodable:
            break  // never filtered: bad input must not vanish
        case .timeTick:
            if collection != nil || !showTimeTicks { return [] }
        case .other:
            if collection != nil { return [] }
        default:
            if !matches(message.body) { return [] }
        }
        switch format {
        case .text: return [text(message)]
        case .json: return json(message)
        }
    }

    func text(_ m: WALMessage) -> String {
        var line = "\(m.pchannel) @\(m.offset) \(m.body.kindName)"
        switch m.body {
        case .insert(let insert):
            line += " coll=\(insert.collectionID)"
            if !insert.collectionName.isEmpty { line += "(\(insert.collectionName))" }
            line +=
                " part=\(insert.partitionID) shard=\(insert.shard) seg=\(insert.segmentID) rows=\(insert.rows.count)"
        case .delete(let delete):
            line += " coll=\(delete.collectionID)"
            if !delete.collectionName.isEmpty { line += "(\(delete.collectionName))" }
            line += " part=\(delete.partitionID) shard=\(delete.shard) rows=\(delete.keys.count)"
        case .createCollection(let schema):
            line += " coll=\(schema.collectionID)(\(schema.name)) fields=\(schema.userFields.count)"
            if let pk = schema.primaryKey { line += " pk=\(pk.name):\(pk.type)" }
            line += " shards=\(schema.virtualChannels.count)"
        case .dropCollection(let drop):
            line += " coll=\(drop.collectionID)(\(drop.collectionName))"
        case .createPartition(let p), .dropPartition(let p):
            line += " coll=\(p.collectionID)(\(p.collectionName)) part=\(p.partitionID)(\(p.partitionName))"
        case .other(let type):
            line += " msg_type=\(type)"
        case .undecodable(let reason):
            line += " reason=\(JSONLine.quoted(reason))"
        case .timeTick:
            break
        }
        if m.ts != 0 { line += " ts=\(m.ts) (\(HybridTimestamp.iso8601(m.ts)))" }
        return line
    }

    func json(_ m: WALMessage) -> [String] {
        func base(_ type: String) -> JSONLine {
            var o = JSONLine()
            o.string("type", type)
            o.string("pchannel", m.pchannel)
            o.int("offset", m.offset)
            return o
        }
        /// A row event: where it is, which collection, partition and shard, which pk at which ts.
        func row(
            _ type: String, _ c: (id: Int64, name: String, partition: Int64, shard: String), _ pk: PrimaryKey,
            _ ts: UInt64
        )
            -> JSONLine
        {
            var o = base(type)
            o.int("collection_id", c.id)
            o.string("collection_name", c.name)
            o.int("partition_id", c.partition)
            o.string("shard", c.shard)
            o.pk("pk", pk)
            o.int("ts", ts)
            return o
        }
        switch m.body {
        case .insert(let insert):
            let c = (insert.collectionID, insert.collectionName, insert.partitionID, insert.shard)
            return insert.rows.map { r in
                var o = row("insert", c, r.pk, r.ts)
                o.int("segment_id", insert.segmentID)
                o.int("row_id", r.rowID)
                o.string("row_hash", r.rowHash.hex16)
                if insert.pkInferred { o.bool("pk_inferred", true) }
                return o.result
            }
        case .delete(let delete):
            let c = (delete.collectionID, delete.collectionName, delete.partitionID, delete.shard)
            return delete.keys.map { row("delete", c, $0.pk, $0.ts).result }
        case .timeTick:
            var o = base("timetick")
            o.int("ts", m.ts)
            return [o.result]
        case .createCollection(let schema):
            var o = base("create_collection")
            o.int("collection_id", schema.collectionID)
            o.string("collection_name", schema.name)
            if let pk = schema.primaryKey {
                o.string("pk_field", pk.name)
                o.string("pk_type", pk.type.description)
            }
            o.raw("vchannels", "[" + schema.virtualChannels.map(JSONLine.quoted).joined(separator: ",") + "]")
            o.int("ts", m.ts)
            return [o.result]
        case .dropCollection(let drop):
            var o = base("drop_collection")
            o.int("collection_id", drop.collectionID)
            o.string("collection_name", drop.collectionName)
            o.int("ts", m.ts)
            return [o.result]
        case .createPartition(let p), .dropPartition(let p):
            var o = base(m.body.kindName)
            o.int("collection_id", p.collectionID)
            o.string("collection_name", p.collectionName)
            o.int("partition_id", p.partitionID)
            o.string("partition_name", p.partitionName)
            o.int("ts", m.ts)
            return [o.result]
        case .other(let type):
            var o = base("other")
            o.int("msg_type", type)
            o.int("ts", m.ts)
            return [o.result]
        case .undecodable(let reason):
            var o = base("undecodable")
            o.string("reason", reason)
            return [o.result]
        }
    }
}
