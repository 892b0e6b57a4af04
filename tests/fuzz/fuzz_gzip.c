/* fuzz_gzip.c: gzip'd data files (rt_gunzip in runtime/files.c): one member or several
 * concatenated, truncated or corrupt. The input is the file as it is on disk. */
#include "fuzz.h"

#include <stdlib.h>

#include "files.h"
#include "util.h"

typedef struct Inflate {
    const char *bytes;
    size_t len;
} Inflate;

/* A bomb must stop at the limit, well inside the fuzzer's memory limit. */
static const rt_read_limits limits = {.limit = 64 << 20, .what = "a data file", .why = "fuzzing"};

static void inflate_all(void *arg) {
    Inflate *z = arg;
    size_t out_len;
    char *out = rt_gunzip("fuzz.gz", z->bytes, z->len, &out_len, &limits);
    if (out[out_len] != '\0') abort(); /* the promise of files.h: NUL-terminated */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *bytes = fuzz_copy(data, size);
    Inflate z = {bytes, size};
    fuzz_rt_call(inflate_all, &z);
    rt_free_all();
    free(bytes);
    return 0;
}
