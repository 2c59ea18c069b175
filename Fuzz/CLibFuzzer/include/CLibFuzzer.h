#ifndef AUDITD_CLIBFUZZER_H
#define AUDITD_CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

typedef int (*auditd_fuzz_callback)(const uint8_t *data, size_t size);

/// Runs libFuzzer's driver (LLVMFuzzerRunDriver) on `callback` when the binary was linked with
/// -sanitize=fuzzer (`dev/fuzz` builds it so); returns -1 at once in an ordinary build.
int auditd_fuzz_run(int *argc, char ***argv, auditd_fuzz_callback callback);

#endif
