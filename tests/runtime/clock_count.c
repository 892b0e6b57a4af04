/* clock_count.c: linked into a test model with -Wl,--wrap=clock_gettime, so that every
 * clock_gettime the runtime (libnnrt.a) calls is counted. At exit the count is written to
 * the file $CLOCK_READS_FILE names. runtime_tests.py's clock_reads reads it: a training loop
 * whose step takes a fraction of a microsecond must not read the clock every step. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int __real_clock_gettime(clockid_t id, struct timespec *ts);
int __wrap_clock_gettime(clockid_t id, struct timespec *ts);

static long long reads; /* the test model trains on one thread */

int __wrap_clock_gettime(clockid_t id, struct timespec *ts) {
    reads++;
    return __real_clock_gettime(id, ts);
}

__attribute__((destructor)) static void write_reads(void) {
    const char *path = getenv("CLOCK_READS_FILE");
    FILE *f = path ? fopen(path, "w") : NULL;
    if (!f) return;
    fprintf(f, "%lld\n", reads);
    fclose(f);
}
