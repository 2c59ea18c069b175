import Foundation

/// Named points inside auditd's write transactions where a crash test can hold the process (like etcd's
/// gofail or TiKV's fail-rs) and `kill -9` it at exactly that moment. Enabled only by the environment:
/// `AUDITD_FAILPOINT=NAME[=DETAIL][:SECONDS]` — e.g. `migration=v5-replica-topology:60` pauses at the end of
/// that schema step, before its commit; `record` in the audit round's record transaction. Unset (always, in
/// production) a point costs one environment lookup.
public enum Failpoint {
    public static let variable = "AUDITD_FAILPOINT"

    /// Pauses here when the environment names this point (and detail); says so on stderr first.
    public static func pause(_ name: String, _ detail: String = "") {
        guard let spec = ProcessInfo.processInfo.environment[variable], !spec.isEmpty else { return }
        let (point, seconds) = parse(spec)
        guard point == name || (!detail.isEmpty && point == "\(name)=\(detail)") else { return }
        FileHandle.standardError.write(Data("auditd: failpoint \(point) reached; pausing \(seconds) s\n".utf8))
        Thread.sleep(forTimeInterval: seconds)
    }

    static func parse(_ spec: String) -> (point: String, seconds: Double) {
        guard let colon = spec.lastIndex(of: ":"), let seconds = Double(spec[spec.index(after: colon)...]) else {
            return (spec, 30)
        }
        return (String(spec[..<colon]), seconds)
    }
}
