/* fuzz.h: what the fuzz targets share (see README.md beside this file).
 *
 * Each target defines LLVMFuzzerTestOneInput, libFuzzer's entry point, and may define
 * LLVMFuzzerInitialize. Built with clang and -fsanitize=fuzzer they are libFuzzer
 * programs; built without libFuzzer (replay.c holds a main) they run the files they are
 * given once each, which is how the plain build replays the seed corpus. */
#ifndef NNC_FUZZ_H
#define NNC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Runs step(arg) with the runtime's error exits (rt_fatal, rt_path_error, ... in
 * runtime/util.c) turned into a return: 0 when step returned, else the exit status the
 * runtime would have ended the process with. What the runtime allocated stays tracked:
 * the target calls rt_free_all() once it is done with the input. */
int fuzz_rt_call(void (*step)(void *arg), void *arg);

/* Copies of the input malloc'd to their exact size, so that ASan sees a read past them:
 * the bytes alone, or the bytes and a NUL (for readers that are given text). */
char *fuzz_copy(const uint8_t *data, size_t size);
char *fuzz_text(const uint8_t *data, size_t size);

/* A file holding the bytes, in memory (memfd), under a /proc/self/fd/N path that a reader
 * opens like any file. fuzz_close_memfile closes it. */
typedef struct FuzzMemFile {
    int fd;
    char path[64];
} FuzzMemFile;
FuzzMemFile fuzz_memfile(const uint8_t *data, size_t size);
void fuzz_close_memfile(FuzzMemFile *f);

#endif
