#include "CLibFuzzer.h"

/* Weak: an ordinary `swift build` links without libFuzzer, and the symbol is then null. */
extern int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *, size_t))
    __attribute__((weak));

int auditd_fuzz_run(int *argc, char ***argv, auditd_fuzz_callback callback) {
    if (!LLVMFuzzerRunDriver) return -1;
    return LLVMFuzzerRunDriver(argc, argv, callback);
}
