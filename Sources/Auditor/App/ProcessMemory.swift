#if canImport(Glibc)
    /// glibc's `malloc_trim` and `mallopt` (malloc.h is not in Swift's Glibc module).
    @_silgen_name("malloc_trim")
    private func glibcMallocTrim(_ pad: Int) -> Int32
    @_silgen_name("mallopt")
    private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

/// The process's allocator settings (glibc; no-ops elsewhere).
public enum ProcessMemory {
    /// At most `arenas` malloc arenas. glibc's default (8 per core) gives every thread that allocates its own
    /// arena, each keeping freed pages: measured with `auditd serve` at 1M rows, 2 arenas instead of 16 took
    /// the ingest's peak from 212 to 184 MB and the idle RSS from 83 to 61 MB at the same throughput
    /// (docs/benchmarks.md). Call before other threads start.
    public static func limitArenas(_ arenas: Int32) {
        #if canImport(Glibc)
            _ = glibcMallopt(-8, arenas)  // M_ARENA_MAX
        #endif
    }

    /// Returns freed heap pages to the system.
    public static func trim() {
        #if canImport(Glibc)
            _ = glibcMallocTrim(0)
        #endif
    }
}
