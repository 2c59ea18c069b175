import AuditorCore
import AuditorKafka
import AuditorMilvus
import Foundation
import MilvusProto
import SwiftProtobuf

/// A synthetic Milvus 2.3 DML log, byte-compatible with what proxies and rootcoord write: one collection
/// (int64 pk, 8-d float vector) over N pchannels, inserts of 10 rows, deletes, upserts (Delete + Insert at
/// one timestamp), records written before a time tick that belong to the next window (several proxies),
/// and time ticks. Used by the crash test and the ingest benchmark.
public struct SyntheticLog: Sendable {
    public struct Record: Sendable {
        public var pchannel: Int
        public var value: [UInt8]
        public var timestampMs: Int64
    }

    public var rows: Int
    public var pchannels: Int
    public var seed: UInt64
    public var collectionID: Int64 = 777
    public var topicPrefix: String
    /// Once half the rows are written, the log's physical clock jumps by this many ms (negative: back) — a
    /// skewed timestamp oracle as auditd would see it.
    public var jumpMs: Int64 = 0

    public init(rows: Int, pchannels: Int = 2, seed: UInt64 = 1, topicPrefix: String = "by-dev-rootcoord-dml") {
        self.rows = rows
        self.pchannels = pchannels
        self.seed = seed
        self.topicPrefix = topicPrefix
    }

    public func topic(_ index: Int) -> String { "\(topicPrefix)_\(index)" }
    public func shard(_ index: Int) -> String { "\(topic(index))_\(collectionID)v\(index)" }

    /// Every record of the log, in write order.
    public func records() -> [Record] {
        var records: [Record] = []
        var rng = SplitMix64(state: seed)
        var ms: Int64 = 1_800_000_000_000
        var logical: UInt64 = 0
        func nextTs() -> UInt64 {
            logical += 1
            if logical >= 1 << 17 {
                ms += 1
                logical = 0
            }
            return HybridTimestamp.compose(milliseconds: ms, logical: logical)
        }
        func emit(_ channel: Int, _ message: some SwiftProtobufMessage) {
            records.append(
                Record(pchannel: channel, value: (try? Array(message.serializedData())) ?? [], timestampMs: ms))
        }
        // CreateCollection, broadcast to every pchannel.
        var schema = Milvus_Proto_Schema_CollectionSchema()
        schema.name = "synth"
        var pk = Milvus_Proto_Schema_FieldSchema()
        pk.fieldID = 100
        pk.name = "id"
        pk.dataType = .int64
        pk.isPrimaryKey = true
        var vector = Milvus_Proto_Schema_FieldSchema()
        vector.fieldID = 101
        vector.name = "v"
        vector.dataType = .floatVector
        var dim = Milvus_Proto_Common_KeyValuePair()
        dim.key = "dim"
        dim.value = "8"
        vector.typeParams = [dim]
        schema.fields = [pk, vector]
        var create = Milvus_Proto_Msg_CreateCollectionRequest()
        create.base.msgType = .createCollection
        create.base.timestamp = nextTs()
        create.collectionID = collectionID
        create.collectionName = "synth"
        create.schema = (try? schema.serializedData()) ?? Data()
        create.virtualChannelNames = (0..<pchannels).map(shard)
        create.physicalChannelNames = (0..<pchannels).map(topic)
        for channel in 0..<pchannels { emit(channel, create) }

        func insert(_ pks: [Int64], channel: Int, ts: UInt64) -> Milvus_Proto_Msg_InsertRequest {
            var request = Milvus_Proto_Msg_InsertRequest()
            request.base.msgType = .insert
            request.base.timestamp = ts
            request.shardName = shard(channel)
            request.collectionName = "synth"
            request.collectionID = collectionID
            request.partitionID = collectionID + 1
            request.segmentID = collectionID + 2
            request.numRows = UInt64(pks.count)
            request.timestamps = Array(repeating: ts, count: pks.count)
            request.rowIds = pks
            request.version = .columnBased
            var pkField = Milvus_Proto_Schema_FieldData()
            pkField.fieldID = 100
            pkField.type = .int64
            pkField.scalars.longData.data = pks
            var vectorField = Milvus_Proto_Schema_FieldData()
            vectorField.fieldID = 101
            vectorField.type = .floatVector
            vectorField.vectors.dim = 8
            let values = (0..<(pks.count * 8)).map { _ in Float(rng.next() % 10_000) / 100 }
            vectorField.vectors.floatVector.data = PackedFloats.encode(values)
            request.fieldsData = [pkField, vectorField]
            return request
        }
        func delete(_ pks: [Int64], channel: Int, ts: UInt64) -> Milvus_Proto_Msg_DeleteRequest {
            var request = Milvus_Proto_Msg_DeleteRequest()
            request.base.msgType = .delete
            request.base.timestamp = ts
            request.shardName = shard(channel)
            request.collectionID = collectionID
            request.partitionID = -1
            request.primaryKeys.intID.data = pks
            request.numRows = Int64(pks.count)
            request.timestamps = Array(repeating: ts, count: pks.count)
            return request
        }
        var written: [[Int64]] = Array(repeating: [], count: pchannels)
        var nextPK: Int64 = 1
        var inserted = 0
        var sinceTick = 0
        var early: [(Int, Milvus_Proto_Msg_InsertRequest)] = []
        var jumped = false
        while inserted < rows {
            let channel = Int(rng.next() % UInt64(pchannels))
            let ts = nextTs()
            switch rng.next() % 10 {
            case 0 where written[channel].count > 20:
                // delete 5 earlier pks of this shard
                let pks = (0..<5).map { _ in written[channel][Int(rng.next() % UInt64(written[channel].count))] }
                emit(channel, delete(Array(Set(pks)), channel: channel, ts: ts))
            case 1 where written[channel].count > 20:
                // upsert 5 earlier pks: Delete + Insert at the same ts
                let pks = Array(
                    Set((0..<5).map { _ in written[channel][Int(rng.next() % UInt64(written[channel].count))] }))
                emit(channel, delete(pks, channel: channel, ts: ts))
                emit(channel, insert(pks, channel: channel, ts: ts))
            case 2:
                // a second proxy's insert that lands before the tick but belongs to the next window
                let pks = (0..<10).map { nextPK + Int64($0) }
                nextPK += 10
                inserted += 10
                written[channel] += pks
                early.append((channel, insert(pks, channel: channel, ts: ts + (1 << 18) * 1000)))
            default:
                let pks = (0..<10).map { nextPK + Int64($0) }
                nextPK += 10
                inserted += 10
                written[channel] += pks
                emit(channel, insert(pks, channel: channel, ts: ts))
            }
            sinceTick += 1
            if sinceTick >= 8 {
                sinceTick = 0
                for (channel, request) in early { emit(channel, request) }
                early = []
                ms += 200
                logical = 0
                var tick = Milvus_Proto_Msg_TimeTickMsg()
                tick.base.msgType = .timeTick
                tick.base.timestamp = nextTs()
                for channel in 0..<pchannels { emit(channel, tick) }
                // the early records' ts (+1 s) are closed only by ticks ≥ 1 s later
                if jumpMs != 0, !jumped, inserted >= rows / 2 {
                    jumped = true
                    ms += jumpMs
                }
            }
        }
        // Close every window: ticks past everything written.
        for (channel, request) in early { emit(channel, request) }
        ms += 2000
        logical = 0
        for _ in 0..<2 {
            var tick = Milvus_Proto_Msg_TimeTickMsg()
            tick.base.msgType = .timeTick
            tick.base.timestamp = nextTs()
            for channel in 0..<pchannels { emit(channel, tick) }
            ms += 200
        }
        return records
    }

}

/// SplitMix64: a small seeded generator, so synthetic logs and test corpora are reproducible.
/// A small seeded random generator (SplitMix64): the same sequence for the same seed, on every machine.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Float vectors as a Milvus FloatArray carries them on the wire: packed little-endian binary32.
/// Float vectors as Milvus packs them: little-endian binary32, one after another.
public enum PackedFloats {
    public static func encode(_ values: [Float]) -> Data {
        var data = Data(capacity: values.count * 4)
        for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
        return data
    }
}

typealias SwiftProtobufMessage = SwiftProtobuf.Message

extension SyntheticLog {
    /// Positions that rewind every topic of this log to its beginning (benchmarks replay it).
    public var topicsForReset: [TopicPosition] {
        (0..<pchannels).map { TopicPosition(topic: topic($0), offset: .beginning) }
    }
}

extension SyntheticLog {
    /// The collection's schema as its CreateCollection record carries it (what DescribeCollection would say).
    public func schema() -> CollectionSchemaInfo? {
        guard let first = records().first else { return nil }
        var decoder = WALDecoder()
        let message = decoder.decode(KafkaRecord(topic: topic(first.pchannel), offset: 0, value: first.value))
        if case .createCollection(let schema) = message.body { return schema }
        return nil
    }

    /// Appends every record to an in-memory log, each pchannel to its topic.
    public func write(to log: InMemoryKafkaLog) {
        for record in records() {
            _ = log.append(topic: topic(record.pchannel), value: record.value, timestampMs: record.timestampMs)
        }
    }
}
