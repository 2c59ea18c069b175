// auditd-fuzz: coverage-guided fuzz targets (libFuzzer) for every parser of bytes from outside auditd.
// `dev/fuzz TARGET [SECONDS]` builds it with `swift build --sanitize=fuzzer` (SwiftPM then compiles this file
// as a library and links libFuzzer's main, which calls the entry points below) and runs it; an ordinary build
// gives a binary that does nothing. Each target checks the parser's contract as well as "no crash": a
// violated contract traps and libFuzzer keeps the input. docs/reliability.md has the runs.
//
//   AUDITD_FUZZ_TARGET=wal|grpc|etcd|config|http auditd-fuzz [libFuzzer flags] [CORPUS_DIR | FILE ...]
//   AUDITD_FUZZ_SEEDS=DIR auditd-fuzz        writes the generated seed inputs under DIR/TARGET/ and exits
import Foundation

/// The target this process fuzzes, from the environment (read once).
let selectedTarget: FuzzTarget? = ProcessInfo.processInfo.environment["AUDITD_FUZZ_TARGET"].flatMap(
    FuzzTarget.init(rawValue:))

enum FuzzTarget: String, CaseIterable {
    case wal, grpc, etcd, config, http

    func run(_ bytes: [UInt8]) {
        switch self {
        case .wal: FuzzTargets.wal(bytes)
        case .grpc: FuzzTargets.grpc(bytes)
        case .etcd: FuzzTargets.etcd(bytes)
        case .config: FuzzTargets.config(bytes)
        case .http: FuzzTargets.http(bytes)
        }
    }
}

@_cdecl("LLVMFuzzerInitialize")
func fuzzerInitialize(_ argc: UnsafeMutablePointer<Int32>?, _ argv: UnsafeMutableRawPointer?) -> Int32 {
    let environment = ProcessInfo.processInfo.environment
    if let directory = environment["AUDITD_FUZZ_SEEDS"] {
        do {
            try Seeds.write(to: directory)
            exit(0)
        } catch {
            FileHandle.standardError.write(Data("auditd-fuzz: \(error)\n".utf8))
            exit(1)
        }
    }
    guard selectedTarget != nil else {
        let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")
        FileHandle.standardError.write(Data("auditd-fuzz: set AUDITD_FUZZ_TARGET=\(names)\n".utf8))
        exit(2)
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, let target = selectedTarget else { return 0 }
    target.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
