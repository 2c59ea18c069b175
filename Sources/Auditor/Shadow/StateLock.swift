import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The state directory's single-writer lock: an exclusive `flock` on `DIR/lock`, which holds the holder's
/// pid and command. `serve`, `run`, `audit` and `bootstrap` take it for as long as they write; a second
/// writer fails at once naming the holder. Readers (`report`, `verify`) do not take it (SQLite's WAL lets
/// them read while the writer commits). The kernel drops the lock when the process dies (kill -9 included).
/// Owns its file descriptor: closed (and the lock released) when the lock is released or deinitialized.
public final class StateLock: @unchecked Sendable {
    // The descriptor is written only by init and release, which the owner calls once.
    private var descriptor: Int32
    public let path: String

    /// Takes the lock on `directory` (created 0700 if missing) for `command`, or throws a one-line
    /// `ShadowError` naming the pid and command that hold it.
    public init(directory: String, command: String) throws {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            try FileManager.default.createDirectory(
                atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } else if !isDirectory.boolValue {
            throw ShadowError(message: "state directory '\(directory)' is a file")
        }
        path = (directory as NSString).appendingPathComponent("lock")
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw ShadowError(message: "cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            let holder = Self.holder(fd)
            close(fd)
            if busy {
                throw ShadowError(
                    message: "state directory '\(directory)' is in use by \(holder ?? "another process") "
                        + "(one writer per state directory: stop it, or give this one another --state)")
            }
            throw ShadowError(message: "cannot lock \(path): \(String(cString: strerror(errno)))")
        }
        descriptor = fd
        let text = "pid \(getpid()) (auditd \(command))\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
    }

    /// What the lock file says about its holder ("pid N (auditd serve)").
    static func holder(_ fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        let text = String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? nil : text
    }

    public func release() {
        guard descriptor >= 0 else { return }
        _ = ftruncate(descriptor, 0)
        close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}
