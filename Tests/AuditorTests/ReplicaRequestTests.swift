import Auditor
import Foundation
import MilvusProto
import SwiftProtobuf
import Testing

@testable import AuditorMilvus

/// Every request auditd sends to a QueryNode comes from ReplicaRequest. These tests pin the invariants
/// whose violation crashes a Milvus 2.3.5 QueryNode or silently returns nothing (replica-reads.md).
@Suite("Replica request builders")
struct ReplicaRequestTests {
    func decodedPlan(_ request: Milvus_Proto_Query_QueryRequest) throws -> Milvus_Proto_Plan_PlanNode {
        try Milvus_Proto_Plan_PlanNode(serializedBytes: request.req.serializedExprPlan)
    }

    func all() throws -> [ReplicaRequest] {
        var requests: [ReplicaRequest] = []
        for pkIsInt in [true, false] {
            let after: [PrimaryKey?] =
                pkIsInt ? [nil, .int(-5), .int(Int64.max)] : [nil, .string(""), .string("k00042")]
            for mode in [ReplicaRequest.Mode.count]
                + after.flatMap({ a in [1, 500, 16384].map { ReplicaRequest.Mode.rows(after: a, limit: $0) } })
            {
                requests.append(
                    try ReplicaRequest(
                        collectionID: 9, pkFieldID: 101, pkIsInt: pkIsInt, vchannel: "by-dev-rootcoord-dml_1_9v0",
                        leaderID: 7, timestamp: 470_000_000_000_000_000, mode: mode))
            }
        }
        return requests
    }

    @Test func planAndRequestAgreeOnIsCount() throws {
        for request in try all() {
            let wire = request.queryRequest(requestID: 1)
            let plan = try decodedPlan(wire)
            #expect(plan.query.isCount == wire.req.isCount)  // disagreement crashes the QueryNode
        }
    }

    @Test func planIsNeverEmptyAndAlwaysHasAPredicate() throws {
        for request in try all() {
            let wire = request.queryRequest(requestID: 1)
            #expect(!wire.req.serializedExprPlan.isEmpty)  // an empty plan crashes the QueryNode
            let plan = try decodedPlan(wire)
            #expect(plan.query.hasPredicates)
            #expect(plan.query.predicates.expr != nil)
        }
    }

    @Test func pkIsInBothOutputListsForRowReads() throws {
        for request in try all() where request.mode != .count {
            let wire = request.queryRequest(requestID: 1)
            let plan = try decodedPlan(wire)
            #expect(wire.req.outputFieldsID.contains(101) && plan.outputFieldIds.contains(101))
            #expect(wire.req.outputFieldsID.contains(1) && plan.outputFieldIds.contains(1))  // insert ts
        }
    }

    @Test func bothLimitsAndTimestampsAndTargetAreSet() throws {
        for request in try all() {
            let wire = request.queryRequest(requestID: 42)
            let plan = try decodedPlan(wire)
            #expect(wire.req.limit != 0 && plan.query.limit != 0)
            if let (_, limit) = request.mode.page {
                #expect(wire.req.limit == Int64(limit) && plan.query.limit == Int64(limit))
            }
            #expect(wire.req.mvccTimestamp == 470_000_000_000_000_000)
            #expect(wire.req.guaranteeTimestamp == wire.req.mvccTimestamp)
            #expect(wire.req.base.targetID == 7 && wire.req.base.msgType == .retrieve)
            #expect(wire.dmlChannels == ["by-dev-rootcoord-dml_1_9v0"])
            #expect(!wire.fromShardLeader && wire.scope == .all)
        }
    }

    @Test func pageAfterUsesThePkTypeOfTheCollection() throws {
        let request = try ReplicaRequest(
            collectionID: 9, pkFieldID: 100, pkIsInt: false, vchannel: "v", leaderID: 1, timestamp: 5,
            mode: .rows(after: .string("abc"), limit: 10))
        let plan = try decodedPlan(request.queryRequest(requestID: 1))
        guard case .unaryRangeExpr(let unary)? = plan.query.predicates.expr else {
            Issue.record("not a range")
            return
        }
        #expect(unary.op == .greaterThan && unary.value.stringVal == "abc")
        #expect(unary.columnInfo.dataType == .varChar && unary.columnInfo.isPrimaryKey)
    }

    @Test func aPkRangeBoundsEveryPage() throws {
        func predicate(_ after: PrimaryKey?, _ range: PKRange) throws -> Milvus_Proto_Plan_Expr.OneOf_Expr? {
            let request = try ReplicaRequest(
                collectionID: 9, pkFieldID: 100, pkIsInt: false, vchannel: "v", leaderID: 1, timestamp: 5,
                mode: .rows(after: after, limit: 10), range: range)
            return try decodedPlan(request.queryRequest(requestID: 1)).query.predicates.expr
        }
        // the range's first page starts at its lower bound, inclusive; later pages after the last pk; never past
        // the upper bound
        guard case .binaryRangeExpr(let first)? = try predicate(nil, PKRange(lower: .string("b"), upper: .string("d")))
        else {
            Issue.record("not a binary range")
            return
        }
        #expect(first.lowerInclusive && !first.upperInclusive)
        #expect(first.lowerValue.stringVal == "b" && first.upperValue.stringVal == "d")
        #expect(first.columnInfo.isPrimaryKey && first.columnInfo.fieldID == 100)
        guard
            case .binaryRangeExpr(let next)? = try predicate(
                .string("c"), PKRange(lower: .string("b"), upper: .string("d")))
        else {
            Issue.record("not a binary range")
            return
        }
        #expect(!next.lowerInclusive && next.lowerValue.stringVal == "c" && next.upperValue.stringVal == "d")
        guard case .unaryRangeExpr(let below)? = try predicate(nil, PKRange(lower: nil, upper: .string("d"))) else {
            Issue.record("not a range")
            return
        }
        #expect(below.op == .lessThan && below.value.stringVal == "d")
        guard case .unaryRangeExpr(let above)? = try predicate(nil, PKRange(lower: .string("b"), upper: nil)) else {
            Issue.record("not a range")
            return
        }
        #expect(above.op == .greaterEqual && above.value.stringVal == "b")
        guard case .alwaysTrueExpr? = try predicate(nil, .all) else {
            Issue.record("the whole range is not always-true")
            return
        }
        #expect(throws: ReplicaRequest.Invalid.pkTypeMismatch) {
            _ = try ReplicaRequest(
                collectionID: 1, pkFieldID: 100, pkIsInt: true, vchannel: "v", leaderID: 1, timestamp: 5,
                mode: .rows(after: nil, limit: 10), range: PKRange(lower: .string("a"), upper: nil))
        }
    }

    @Test func invalidRequestsCannotBeBuilt() {
        #expect(throws: ReplicaRequest.Invalid.zeroTimestamp) {
            _ = try ReplicaRequest(
                collectionID: 1, pkFieldID: 100, pkIsInt: true, vchannel: "v", leaderID: 1, timestamp: 0, mode: .count)
        }
        #expect(throws: ReplicaRequest.Invalid.badLimit(0)) {
            _ = try ReplicaRequest(
                collectionID: 1, pkFieldID: 100, pkIsInt: true, vchannel: "v", leaderID: 1, timestamp: 5,
                mode: .rows(after: nil, limit: 0))
        }
        #expect(throws: ReplicaRequest.Invalid.pkTypeMismatch) {
            _ = try ReplicaRequest(
                collectionID: 1, pkFieldID: 100, pkIsInt: true, vchannel: "v", leaderID: 1, timestamp: 5,
                mode: .rows(after: .string("x"), limit: 5))
        }
        #expect(throws: ReplicaRequest.Invalid.noVchannel) {
            _ = try ReplicaRequest(
                collectionID: 1, pkFieldID: 100, pkIsInt: true, vchannel: "", leaderID: 1, timestamp: 5, mode: .count)
        }
    }
}

@Suite("Read pacing")
struct PacerTests {
    @Test func pagesShrinkAndPauseWhenSlowAndGrowBackWhenFast() {
        var pacer = Pacer(pageSize: 10_000)
        #expect(pacer.record(.milliseconds(900)) == .milliseconds(400))
        #expect(pacer.pageSize == 5_000)
        for _ in 0..<10 { _ = pacer.record(.seconds(2)) }
        #expect(pacer.pageSize == 625)  // never below 1/16 of the configured size
        #expect(pacer.record(.milliseconds(200)) == nil)
        #expect(pacer.pageSize == 625)  // within budget: unchanged
        for _ in 0..<10 { _ = pacer.record(.milliseconds(10)) }
        #expect(pacer.pageSize == ReplicaRequest.maxPage)  // fast answers: grow, but never past what a request may ask
        var small = Pacer(pageSize: 500)
        for _ in 0..<10 { _ = small.record(.milliseconds(10)) }
        #expect(small.pageSize == 2_000)  // up to 4× the configured size
    }

    @Test func everyPageThePacerChoosesIsARequestTheBuilderAccepts() throws {
        // a 200k-row shard answered fast once grew pages to 20,000 and the builder refused them (badLimit)
        for configured in [1, 500, 10_000, 16_384, 50_000] {
            var pacer = Pacer(pageSize: configured)
            for latency in [10, 10, 10, 10, 900, 10, 10, 10, 2_000, 10, 10, 10, 10, 10] {
                _ = pacer.record(.milliseconds(latency))
                _ = try ReplicaRequest(
                    collectionID: 1, pkFieldID: 100, pkIsInt: true, vchannel: "v", leaderID: 1, timestamp: 1,
                    mode: .rows(after: nil, limit: pacer.pageSize))
            }
        }
    }
}
