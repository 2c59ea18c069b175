import Testing

@testable import AuditorAudit

/// The recovery watch as a pure state machine: every (phase, probe) pair, then every count outcome.
@Suite("Recovery watch (state machine)")
struct RecoveryWatchTests {
    typealias Phase = RecoveryWatch.Phase
    static let recovering = RecoveryWatch.Probe.recovering(reason: "TargetVersion 0", reloading: true)
    static let lacking = RecoveryWatch.Probe.recovering(reason: "lacks sealed segments", reloading: false)
    static let unreachable = RecoveryWatch.Probe.unreachable(reason: "connection refused")

    /// A watch brought into `phase` by real observations (the only way to get one).
    static func watch(in phase: Phase) -> RecoveryWatch {
        var watch = RecoveryWatch()
        switch phase {
        case .idle: break
        case .unreachable: _ = watch.observe(unreachable, nowMs: 100)
        case .catchingUp:
            _ = watch.observe(recovering, nowMs: 100)
            watch.counted(5, expected: 10, nowMs: 100)
        case .caughtUp:
            _ = watch.observe(recovering, nowMs: 100)
            watch.counted(10, expected: 10, nowMs: 150)
        }
        #expect(watch.phase == phase)
        return watch
    }

    struct Row: CustomTestStringConvertible {
        var from: Phase
        var probe: RecoveryWatch.Probe
        var to: Phase
        var action: RecoveryWatch.Action
        var testDescription: String { "\(from) + \(probe) → \(to), \(action)" }
    }

    /// Every phase × every probe: the phase after the observation and what the round must do.
    static let table: [Row] = [
        Row(from: .idle, probe: .serving, to: .idle, action: .none),
        Row(from: .idle, probe: recovering, to: .catchingUp, action: .count(exactly: true)),
        Row(from: .idle, probe: lacking, to: .catchingUp, action: .count(exactly: true)),
        Row(from: .idle, probe: unreachable, to: .unreachable, action: .none),
        Row(from: .unreachable, probe: .serving, to: .catchingUp, action: .count(exactly: false)),
        Row(from: .unreachable, probe: recovering, to: .catchingUp, action: .count(exactly: true)),
        Row(from: .unreachable, probe: unreachable, to: .unreachable, action: .none),
        Row(from: .catchingUp, probe: .serving, to: .catchingUp, action: .count(exactly: false)),
        Row(from: .catchingUp, probe: recovering, to: .catchingUp, action: .count(exactly: true)),
        Row(from: .catchingUp, probe: unreachable, to: .catchingUp, action: .none),
        Row(from: .caughtUp(atMs: 150), probe: .serving, to: .caughtUp(atMs: 150), action: .none),
        Row(from: .caughtUp(atMs: 150), probe: recovering, to: .caughtUp(atMs: 150), action: .count(exactly: true)),
        Row(from: .caughtUp(atMs: 150), probe: unreachable, to: .caughtUp(atMs: 150), action: .none),
    ]

    @Test(arguments: table)
    func everyPhaseAndProbe(_ row: Row) {
        var watch = Self.watch(in: row.from)
        #expect(watch.observe(row.probe, nowMs: 200) == row.action)
        #expect(watch.phase == row.to)
    }

    @Test func theTableCoversEveryPhaseAndProbe() {
        let phases: [Phase] = [.idle, .unreachable, .catchingUp, .caughtUp(atMs: 150)]
        let probes: [RecoveryWatch.Probe] = [.serving, Self.recovering, Self.unreachable]
        for phase in phases {
            for probe in probes {
                #expect(
                    Self.table.contains { $0.from == phase && $0.probe == probe }, "\(phase) + \(probe) untested")
            }
        }
    }

    @Test func aRecoveringReplicaCatchesUpOnlyOnTheExactCount() {
        var watch = RecoveryWatch()
        #expect(watch.observe(Self.recovering, nowMs: 1_000) == .count(exactly: true))
        // more rows than the log (deletes not applied yet on a segment loaded with a wrong delta log): not yet
        watch.counted(12, expected: 10, nowMs: 1_000)
        #expect(watch.phase == .catchingUp && watch.shortAtStart == 0)
        _ = watch.observe(Self.recovering, nowMs: 1_300)
        watch.counted(10, expected: 10, nowMs: 1_300)
        #expect(watch.phase == .caughtUp(atMs: 1_300))
        // a later exact count keeps the first moment it matched
        _ = watch.observe(Self.recovering, nowMs: 1_600)
        watch.counted(10, expected: 10, nowMs: 1_600)
        #expect(watch.caughtUpAtMs == 1_300)
        // a failed or different count while still recovering: catching up again
        _ = watch.observe(Self.recovering, nowMs: 1_900)
        watch.counted(nil, expected: 10, nowMs: 1_900)
        #expect(watch.phase == .catchingUp)
    }

    @Test func aServingReplicaCatchesUpOnAtLeastTheLogsCount() {
        var watch = Self.watch(in: .unreachable)
        #expect(watch.observe(.serving, nowMs: 2_000) == .count(exactly: false))
        watch.counted(11, expected: 10, nowMs: 2_000)  // duplicates count twice: at least is enough here
        #expect(watch.caughtUpAtMs == 2_000)
        #expect(watch.sinceMs == 100 && watch.shortAtStart == 0 && watch.fromBehind)
    }

    @Test func aServingReplicaThatCannotBeCountedStaysCatchingUp() {
        var watch = Self.watch(in: .catchingUp)
        _ = watch.observe(.serving, nowMs: 2_000)
        watch.counted(nil, expected: 10, nowMs: 2_000)
        #expect(watch.phase == .catchingUp && watch.isCatchingUp)
    }

    @Test func theFirstCountRecordsHowFarBehindItWas() {
        var watch = RecoveryWatch()
        _ = watch.observe(Self.lacking, nowMs: 0)
        watch.counted(7, expected: 10, nowMs: 0)
        _ = watch.observe(Self.lacking, nowMs: 300)
        watch.counted(9, expected: 10, nowMs: 300)
        #expect(watch.shortAtStart == 3 && watch.fromBehind)
    }

    @Test func aHandoffIsNotACatchUp() {
        // lacking a sealed segment for a moment while serving every row (after a flush): not from behind
        var watch = RecoveryWatch()
        _ = watch.observe(Self.lacking, nowMs: 0)
        watch.counted(10, expected: 10, nowMs: 0)
        #expect(watch.caughtUpAtMs == 0 && !watch.fromBehind)
    }

    @Test func reloadingOrAnEarlierRoundMakesItACatchUp() {
        var reloading = RecoveryWatch()
        _ = reloading.observe(Self.recovering, nowMs: 0)
        #expect(reloading.fromBehind)
        var earlier = RecoveryWatch()
        _ = earlier.observe(Self.lacking, nowMs: 5_000, openSinceMs: 1_000)
        #expect(earlier.fromBehind && earlier.sinceMs == 1_000)
        var unreachable = RecoveryWatch()
        _ = unreachable.observe(Self.unreachable, nowMs: 0)
        #expect(unreachable.fromBehind && unreachable.lastReason == "connection refused")
    }

    @Test func aCountNobodyAskedForChangesNothing() {
        var watch = Self.watch(in: .catchingUp)
        let before = watch
        watch.counted(10, expected: 10, nowMs: 9_000)
        #expect(watch == before)
    }

    @Test func probesMapFromReplicaHealth() {
        #expect(RecoveryWatch.Probe(.serving) == .serving)
        #expect(RecoveryWatch.Probe(.recovering("x", reloading: true)) == .recovering(reason: "x", reloading: true))
        #expect(RecoveryWatch.Probe(.unreachable("y")) == .unreachable(reason: "y"))
    }
}
