import AuditorCore
import AuditorKafka
import AuditorTransport
import Foundation
import MilvusProto

/// The only way auditd builds a request to a QueryNode. Two malformed requests crash a 2.3.5 QueryNode
/// (plan/is_count disagreement; an empty plan) and others silently return nothing (pk missing from an
/// output list, mvcc 0): every request comes from here, and the unit tests pin each invariant.
public struct ReplicaRequest: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        /// `count(*)` of the shard at T.
        case count
        /// Rows (pk + insert ts) of `range` with pk > `after` (nil: from the range's start), at most `limit`,
        /// in pk order.
        case rows(after: PrimaryKey?, limit: Int)
        /// Like `rows`, plus every listed user field (row hashes; vectors included).
        case fullRows(after: PrimaryKey?, limit: Int, fieldIDs: [Int64])

        var page: (after: PrimaryKey?, limit: Int)? {
            switch self {
            case .count: return nil
            case .rows(let after, let limit), .fullRows(let after, let limit, _): return (after, limit)
            }
        }
    }

    public var collectionID: Int64
    public var pkFieldID: Int64
    public var pkIsInt: Bool
    /// The shard (vchannel) to read, on the replica whose leader is `leaderID`.
    public var vchannel: String
    public var leaderID: Int64
    /// MVCC snapshot and guarantee timestamp (hybrid), never 0.
    public var timestamp: UInt64
    public var mode: Mode
    /// Only pks in this range (pages of `rows` and `fullRows`).
    public var range: PKRange

    public enum Invalid: Error, Equatable {
        case zeroTimestamp
        case badLimit(Int)
        case pkTypeMismatch
        case noVchannel
    }

    /// The most rows one page may ask for (Milvus's own result window, `proxy.maxResultWindow`).
    public static let maxPage = 16384

    public init(
        collectionID: Int64, pkFieldID: Int64, pkIsInt: Bool, vchannel: String, leaderID: Int64, timestamp: UInt64,
        mode: Mode, range: PKRange = .all
    ) throws(Invalid) {
        guard timestamp != 0 else { throw .zeroTimestamp }
        guard !vchannel.isEmpty else { throw .noVchannel }
        if let (after, limit) = mode.page {
            guard limit > 0, limit <= Self.maxPage else { throw .badLimit(limit) }
            for key in [after, range.lower, range.upper] {
                switch key {
                case .int?: if !pkIsInt { throw .pkTypeMismatch }
                case .string?: if pkIsInt { throw .pkTypeMismatch }
                case nil: break
                }
            }
        }
        self.collectionID = collectionID
        self.pkFieldID = pkFieldID
        self.pkIsInt = pkIsInt
        self.vchannel = vchannel
        self.leaderID = leaderID
        self.timestamp = timestamp
        self.mode = mode
        self.range = range
    }

    /// Field id 1 returns each row's insert timestamp.
    static let timestampFieldID: Int64 = 1

    func plan() -> Milvus_Proto_Plan_PlanNode {
        var column = Milvus_Proto_Plan_ColumnInfo()
        column.fieldID = pkFieldID
        column.dataType = pkIsInt ? .int64 : .varChar
        column.isPrimaryKey = true
        var expr = Milvus_Proto_Plan_Expr()
        var query = Milvus_Proto_Plan_QueryPlanNode()
        switch mode {
        case .count:
            expr.alwaysTrueExpr = Milvus_Proto_Plan_AlwaysTrueExpr()
            query.isCount = true
            query.limit = -1
        case .rows(let after, let limit), .fullRows(let after, let limit, _):
            // After the page's last pk, else from the range's start; up to the range's end.
            let lower = after.map { (value: $0, inclusive: false) } ?? range.lower.map { (value: $0, inclusive: true) }
            switch (lower, range.upper) {
            case (let lower?, let upper?):
                var binary = Milvus_Proto_Plan_BinaryRangeExpr()
                binary.columnInfo = column
                binary.lowerInclusive = lower.inclusive
                binary.upperInclusive = false
                binary.lowerValue = Self.value(lower.value)
                binary.upperValue = Self.value(upper)
                expr.binaryRangeExpr = binary
            case (let lower?, nil):
                expr.unaryRangeExpr = Self.unary(column, lower.inclusive ? .greaterEqual : .greaterThan, lower.value)
            case (nil, let upper?):
                expr.unaryRangeExpr = Self.unary(column, .lessThan, upper)
            case (nil, nil):
                expr.alwaysTrueExpr = Milvus_Proto_Plan_AlwaysTrueExpr()
            }
            query.isCount = false
            query.limit = Int64(limit)  // per segment
        }
        query.predicates = expr
        var plan = Milvus_Proto_Plan_PlanNode()
        plan.query = query
        plan.outputFieldIds = outputFields
        return plan
    }

    static func value(_ pk: PrimaryKey) -> Milvus_Proto_Plan_GenericValue {
        var value = Milvus_Proto_Plan_GenericValue()
        switch pk {
        case .int(let v): value.int64Val = v
        case .string(let v): value.stringVal = v
        }
        return value
    }

    static func unary(_ column: Milvus_Proto_Plan_ColumnInfo, _ op: Milvus_Proto_Plan_OpType, _ pk: PrimaryKey)
        -> Milvus_Proto_Plan_UnaryRangeExpr
    {
        var unary = Milvus_Proto_Plan_UnaryRangeExpr()
        unary.columnInfo = column
        unary.op = op
        unary.value = value(pk)
        return unary
    }

    /// pk and insert ts always (a pk missing from either list returns 0 rows), then the asked fields.
    var outputFields: [Int64] {
        switch mode {
        case .count: return []
        case .rows: return [pkFieldID, Self.timestampFieldID]
        case .fullRows(_, _, let fieldIDs):
            return [pkFieldID, Self.timestampFieldID] + fieldIDs.filter { $0 != pkFieldID && $0 >= 100 }
        }
    }

    /// The wire request: `QueryRequest{req, dml_channels=[vchannel], from_shard_leader=false, scope=All}`.
    func queryRequest(requestID: Int64) -> Milvus_Proto_Query_QueryRequest {
        var retrieve = Milvus_Proto_Query_RetrieveRequest()
        retrieve.base.msgType = .retrieve
        retrieve.base.msgID = requestID
        retrieve.base.targetID = leaderID
        retrieve.reqID = requestID
        retrieve.collectionID = collectionID
        retrieve.serializedExprPlan = (try? plan().serializedData()) ?? Data()
        retrieve.mvccTimestamp = timestamp
        retrieve.guaranteeTimestamp = timestamp
        switch mode {
        case .count:
            retrieve.isCount = true
            retrieve.limit = -1
            retrieve.outputFieldsID = []
        case .rows(_, let limit), .fullRows(_, let limit, _):
            retrieve.isCount = false
            retrieve.limit = Int64(limit)  // caps the merged result
            retrieve.outputFieldsID = outputFields
        }
        var request = Milvus_Proto_Query_QueryRequest()
        request.req = retrieve
        request.dmlChannels = [vchannel]
        request.fromShardLeader = false
        request.scope = .all
        return request
    }
}
