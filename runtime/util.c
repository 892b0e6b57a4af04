/* util.c: messages, tracked allocations, file reads, time (see util.h). */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *program_name = "nnrt";

void rt_set_program_name(const char *argv0) {
    if (!argv0 || !*argv0) return;
    const char *slash = strrchr(argv0, '/');
    program_name = slash ? slash + 1 : argv0;
}

const char *rt_program_name(void) {
    return program_name;
}

/* ---- where the error exits go ---- */

static rt_exit_handler exit_handler;

void rt_set_exit_handler(rt_exit_handler handler) {
    exit_handler = handler;
}

static _Noreturn void rt_exit(int status) {
    if (exit_handler) exit_handler(status); /* does not return when it does its job */
    exit(status);
}

static void vreport(const char *prefix, const char *kind, const char *fmt, va_list ap) {
    fflush(stdout); /* keep stdout lines before the message when both go to a terminal */
    fprintf(stderr, "%s: %s: ", prefix, kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void rt_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(program_name, "error", fmt, ap);
    va_end(ap);
    rt_exit(RT_EXIT_USAGE);
}

void rt_fatal(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(program_name, "error", fmt, ap);
    va_end(ap);
    rt_exit(RT_EXIT_FAILURE);
}

void rt_path_error(const char *path, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(rt_display_path(path), "error", fmt, ap);
    va_end(ap);
    rt_exit(RT_EXIT_FAILURE);
}

void rt_line_error(const char *path, int64_t line, const char *fmt, ...) {
    char prefix[4096];
    snprintf(prefix, sizeof prefix, "%s:%lld", rt_display_path(path), (long long)line);
    va_list ap;
    va_start(ap, fmt);
    vreport(prefix, "error", fmt, ap);
    va_end(ap);
    rt_exit(RT_EXIT_FAILURE);
}

void rt_byte_error(const char *path, uint64_t byte, const char *fmt, ...) {
    char prefix[4096];
    snprintf(prefix, sizeof prefix, "%s:byte %llu", rt_display_path(path),
             (unsigned long long)byte);
    va_list ap;
    va_start(ap, fmt);
    vreport(prefix, "error", fmt, ap);
    va_end(ap);
    rt_exit(RT_EXIT_FAILURE);
}

void rt_path_warning(const char *path, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(rt_display_path(path), "warning", fmt, ap);
    va_end(ap);
}

/* ---- tracked allocations ---- */

static void **tracked;
static size_t n_tracked, cap_tracked;

static void track(void *p) {
    if (n_tracked == cap_tracked) {
        size_t new_cap = cap_tracked ? 2 * cap_tracked : 64;
        void **grown = realloc(tracked, new_cap * sizeof *grown);
        if (!grown) rt_fatal("out of memory");
        tracked = grown;
        cap_tracked = new_cap;
    }
    tracked[n_tracked++] = p;
}

/* Forgets p; searching from the end because the newest allocations die first. */
static void untrack(void *p) {
    for (size_t i = n_tracked; i-- > 0;) {
        if (tracked[i] == p) {
            tracked[i] = tracked[--n_tracked];
            return;
        }
    }
}

void *rt_alloc(size_t size) {
    void *p = calloc(1, size ? size : 1);
    if (!p) rt_fatal("out of memory (wanted %zu bytes)", size);
    track(p);
    return p;
}

void *rt_alloc_array(size_t count, size_t elem_size) {
    if (elem_size && count > SIZE_MAX / elem_size) rt_fatal("out of memory (array too large)");
    return rt_alloc(count * elem_size);
}

void *rt_grow_array(void *old, size_t old_count, size_t new_count, size_t elem_size) {
    void *grown = rt_alloc_array(new_count, elem_size);
    if (old) {
        memcpy(grown, old, old_count * elem_size);
        rt_free(old);
    }
    return grown;
}

void *rt_alloc_aligned(size_t count, size_t elem_size) {
    const size_t align = 64;
    if (elem_size && count > (SIZE_MAX - align) / elem_size)
        rt_fatal("out of memory (arena too large)");
    size_t size = count * elem_size;
    size = (size + align - 1) / align * align; /* aligned_alloc wants a multiple */
    if (size == 0) size = align;
    void *p = aligned_alloc(align, size);
    if (!p) rt_fatal("out of memory (wanted an arena of %zu bytes)", size);
    memset(p, 0, size);
    track(p);
    return p;
}

char *rt_strndup(const char *s, size_t n) {
    char *copy = rt_alloc(n + 1);
    memcpy(copy, s, n);
    return copy;
}

char *rt_strdup(const char *s) {
    return rt_strndup(s, strlen(s));
}

void rt_free(void *p) {
    if (!p) return;
    untrack(p);
    free(p);
}

void rt_free_all(void) {
    for (size_t i = 0; i < n_tracked; i++) free(tracked[i]);
    free(tracked);
    tracked = NULL;
    n_tracked = cap_tracked = 0;
}

const char *rt_display_path(const char *path) {
    return path ? path : "<stdin>";
}

double rt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
