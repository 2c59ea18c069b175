import AuditorCore
import AuditorShadow
import Foundation

public struct RebuildResult: Sendable {
    /// Where the previous shadow's files were moved (nil: there were none).
    public var keptAt: String?
    public var stats: ShadowIngester.Stats
    /// Collections whose beginning the log no longer holds, seeded from Milvus.
    public var bootstrapped: [BootstrapResult]
    /// Such collections that could not be seeded, with why (their shadow holds only what the log still has).
    public var incomplete: [String]
}

extension Application {
    /// `auditd rebuild`: a shadow that is damaged, from a newer auditd, or distrusted is moved aside (kept for
    /// inspection, never deleted) and built again by replaying the log from its beginning; a live collection
    /// whose beginning the log no longer holds (retention) is then seeded from Milvus like `bootstrap`.
    /// Finding history is not carried over: the old file keeps it.
    public func rebuild(stateDirectory: String, milvus: String?, progress: ((String) -> Void)? = nil)
        async throws -> RebuildResult
    {
        let lock = try StateLock(directory: stateDirectory, command: "rebuild")
        defer { lock.release() }
        let keptAt = try Self.moveShadowAside(stateDirectory, nowMs: clock.nowMs())
        if let keptAt { progress?("rebuild: the previous shadow is kept in \(keptAt)") }
        let store = try openStore(stateDirectory, create: true)  // new: nothing to check yet
        let stats = try await ingest(
            RunOptions(stateDirectory: stateDirectory, once: true, milvus: milvus), store: store
        ) { progress?("rebuild: \($0.records) records replayed") }
        let summary = try await store.perform { try $0.summary() }
        var result = RebuildResult(keptAt: keptAt, stats: stats, bootstrapped: [], incomplete: [])
        for collection in summary.collections where collection.history == "incomplete" && collection.state == "live" {
            guard let milvus else {
                result.incomplete.append("\(collection.name) (\(collection.id)): the log lost its start; no --milvus")
                continue
            }
            do {
                result.bootstrapped.append(
                    try await seed(
                        collection: "\(collection.id)", milvus: milvus, stateDirectory: stateDirectory,
                        progress: progress))
            } catch {
                result.incomplete.append("\(collection.name) (\(collection.id)): \(error)")
            }
        }
        return result
    }

    /// Moves shadow.sqlite and its WAL/SHM files into `damaged-<UTC time>/` of the state directory.
    static func moveShadowAside(_ directory: String, nowMs: Int64) throws -> String? {
        let manager = FileManager.default
        let names = ["shadow.sqlite", "shadow.sqlite-wal", "shadow.sqlite-shm"].filter {
            manager.fileExists(atPath: (directory as NSString).appendingPathComponent($0))
        }
        guard !names.isEmpty else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withYear, .withMonth, .withDay, .withTime, .withTimeZone]
        let stamp = formatter.string(from: Date(timeIntervalSince1970: Double(nowMs) / 1000))
            .replacingOccurrences(of: ":", with: "")
        let aside = (directory as NSString).appendingPathComponent("\(ShadowStore.asidePrefix)\(stamp)")
        do {
            try manager.createDirectory(
                atPath: aside, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            for name in names {
                try manager.moveItem(
                    atPath: (directory as NSString).appendingPathComponent(name),
                    toPath: (aside as NSString).appendingPathComponent(name))
            }
        } catch {
            throw ShadowError(message: "cannot move the shadow aside into '\(aside)': \(error.localizedDescription)")
        }
        return aside
    }
}
