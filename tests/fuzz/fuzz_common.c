/* fuzz_common.c: the runtime seam and the helpers of fuzz.h. */
#include "fuzz.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"

/* One call at a time: the targets are single-threaded and never nest calls. */
static jmp_buf back_to_caller;
static volatile int exit_status;

static void return_to_caller(int status) {
    exit_status = status;
    longjmp(back_to_caller, 1);
}

int fuzz_rt_call(void (*step)(void *arg), void *arg) {
    exit_status = 0;
    rt_set_exit_handler(return_to_caller);
    if (setjmp(back_to_caller) == 0) step(arg);
    rt_set_exit_handler(NULL);
    return exit_status;
}

char *fuzz_copy(const uint8_t *data, size_t size) {
    char *bytes = malloc(size ? size : 1);
    if (!bytes) abort();
    if (size) memcpy(bytes, data, size);
    return bytes;
}

char *fuzz_text(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) abort();
    if (size) memcpy(text, data, size);
    text[size] = '\0';
    return text;
}

FuzzMemFile fuzz_memfile(const uint8_t *data, size_t size) {
    FuzzMemFile f = {.fd = memfd_create("fuzz-input", MFD_CLOEXEC)};
    if (f.fd < 0) {
        perror("fuzz: memfd_create");
        abort();
    }
    for (size_t done = 0; done < size;) {
        ssize_t n = write(f.fd, data + done, size - done);
        if (n <= 0) {
            perror("fuzz: writing the input to a memfd");
            abort();
        }
        done += (size_t)n;
    }
    snprintf(f.path, sizeof f.path, "/proc/self/fd/%d", f.fd);
    return f;
}

void fuzz_close_memfile(FuzzMemFile *f) {
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
}
