// auditd-fuzz: coverage-guided fuzz targets (libFuzzer) for every parser of bytes from outside auditd.
// Built and run by `dev/fuzz TARGET [SECONDS]` (swift build --sanitize=fuzzer); in an ordinary build it
// only says so. Each target checks the parser's contract as well as "no crash": a violated contract traps,
// and libFuzzer keeps the input. docs/reliability.md has the runs.
//
//   auditd-fuzz TARGET [libFuzzer flags] [CORPUS_DIR ...]   fuzz (or, given files, run just those inputs)
//   auditd-fuzz seed DIR                                      write generated seed inputs under DIR/TARGET/
import AuditorMilvus
import AuditorTransport
import CLibFuzzer
import Foundation

let targets: [String: auditd_fuzz_callback] = [
    "wal": { data, size in
        FuzzTargets.wal(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    },
    "grpc": { data, size in
        FuzzTargets.grpc(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    },
    "etcd": { data, size in
        FuzzTargets.etcd(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    },
    "config": { data, size in
        FuzzTargets.config(Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    },
]

let arguments = CommandLine.arguments
if arguments.count == 3, arguments[1] == "seed" {
    do {
        try Seeds.write(to: arguments[2])
    } catch {
        FileHandle.standardError.write(Data("auditd-fuzz: \(error)\n".utf8))
        exit(1)
    }
    exit(0)
}
guard arguments.count >= 2, let callback = targets[arguments[1]] else {
    FileHandle.standardError.write(
        Data(
            ("usage: auditd-fuzz TARGET [libFuzzer flags] [CORPUS ...] | auditd-fuzz seed DIR\n"
                + "targets: \(targets.keys.sorted().joined(separator: " "))\n").utf8))
    exit(2)
}
// libFuzzer sees the program name and everything after the target.
var driverArguments = ([arguments[0]] + arguments.dropFirst(2)).map { strdup($0) }
var argc = Int32(driverArguments.count)
let status = driverArguments.withUnsafeMutableBufferPointer { buffer -> Int32 in
    var argv = buffer.baseAddress
    return auditd_fuzz_run(&argc, &argv, callback)
}
if status == -1 {
    FileHandle.standardError.write(
        Data("auditd-fuzz: not built with libFuzzer; run it through dev/fuzz TARGET [SECONDS]\n".utf8))
    exit(2)
}
exit(status)
