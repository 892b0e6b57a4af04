/* util.h: what every part of the runtime shares: the program name used in messages, fatal
 * errors with the exit codes docs/runtime.md promises, tracked allocations, element access
 * for the model's element type and a wall clock. */
#ifndef NNRT_UTIL_H
#define NNRT_UTIL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "suggest.h" /* "did you mean", shared with the compiler */

#define RT_EXIT_FAILURE 1 /* bad data, weights or files */
#define RT_EXIT_USAGE   2 /* bad command line */

#define RT_FORMAT(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))

/* The bytes of a cache line on the CPUs the runtime is built for (x86-64, arm64). */
enum { RT_CACHE_LINE = 64 };

/* Asks for the cache line holding p. GCC 12 deletes a loop whose body is nothing but
 * __builtin_prefetch (as if it did nothing), so on x86 the instruction is written out. */
static inline void rt_prefetch_line(const char *p) {
#if defined(__x86_64__) || defined(__i386__)
    __asm__ volatile("prefetcht0 %0" : : "m"(*p));
#else
    __builtin_prefetch(p);
#endif
}

void rt_set_program_name(const char *argv0);
const char *rt_program_name(void);

/* A hint for the next error or warning this thread reports: printed under its message as
 * "  hint: ...", as the compiler prints its hints. */
void rt_hint(const char *fmt, ...) RT_FORMAT(1, 2);
/* rt_hint("did you mean PREFIXBEST?") when s found a candidate near enough (suggest.h);
 * false, setting nothing, when it did not. */
int rt_did_you_mean(const Suggestion *s, const char *prefix);

/* "PROG: error: ...", exit 2. */
_Noreturn void rt_usage_error(const char *fmt, ...) RT_FORMAT(1, 2);
/* "PROG: error: ...", exit 1. */
_Noreturn void rt_fatal(const char *fmt, ...) RT_FORMAT(1, 2);
/* "PATH: error: ...", exit 1. */
_Noreturn void rt_path_error(const char *path, const char *fmt, ...) RT_FORMAT(2, 3);
/* "PATH:LINE: error: ...", exit 1 (LINE is 1-based). */
_Noreturn void rt_line_error(const char *path, int64_t line, const char *fmt, ...) RT_FORMAT(3, 4);
/* "PATH:byte N: error: ...", exit 1 (N is a 0-based file offset). */
_Noreturn void rt_byte_error(const char *path, uint64_t byte, const char *fmt, ...) RT_FORMAT(3, 4);
/* "PATH: warning: ..." */
void rt_path_warning(const char *path, const char *fmt, ...) RT_FORMAT(2, 3);
/* "PATH:LINE: warning: ..." */
void rt_line_warning(const char *path, int64_t line, const char *fmt, ...) RT_FORMAT(3, 4);

/* s[0..n) as text for a message, in buf (size bytes, at least 10): control characters and
 * NULs as JSON escapes (\u0000), a backslash as \\, bytes that are not UTF-8 as \xff, and
 * "..." at the end when it does not fit. Returns buf. */
const char *rt_printable(char *buf, size_t size, const char *s, size_t n);
/* The length of the well-formed UTF-8 sequence that starts at p, or 0. */
size_t rt_utf8_length(const unsigned char *p, const unsigned char *end);

/* Bytes of memory the process may use: the smallest of the machine's physical memory,
 * the address-space and data limits (ulimit -v, -d) and a container's cgroup limit. */
uint64_t rt_memory_budget(void);

/* The error exits above print their message, then end the process with exit(status). A
 * program that reads many inputs in one process (the fuzz targets in tests/fuzz/) sets a
 * handler instead, which gets the status and must not return: it longjmps back and calls
 * rt_free_all(). Should it return, exit(status) follows. NULL: exit again. */
typedef void (*rt_exit_handler)(int status);
void rt_set_exit_handler(rt_exit_handler handler);

/* What to do when an error is about to end the run, before its message is printed: predict
 * answers the rows it has read, so that every row before a bad one gets its line
 * (row_source.h). Called once, by the thread that reports the error; an error of its own
 * then ends the run at once. NULL: nothing. */
typedef void (*rt_before_error_fn)(void *arg);
void rt_set_before_error(rt_before_error_fn fn, void *arg);

/* Allocations are tracked in one global list, so an error exit from deep inside a loader
 * leaves nothing unreachable (LeakSanitizer stays quiet) and main() frees all at the end.
 * Out of memory is a fatal error. All of them return zeroed memory. */
void *rt_alloc(size_t size);
void *rt_alloc_array(size_t count, size_t elem_size);
void *rt_grow_array(void *old, size_t old_count, size_t new_count, size_t elem_size);
/* 64-byte aligned, for the arenas (the generated code may use aligned vector loads). */
void *rt_alloc_aligned(size_t count, size_t elem_size);
char *rt_strdup(const char *s);
char *rt_strndup(const char *s, size_t n);
void rt_free(void *p);
/* Frees every tracked allocation and closes every tracked file (below). */
void rt_free_all(void);
/* A file kept open from one call to the next (files.c, rt_open_seekable), which rt_free_all
 * closes should an error exit leave it open; untracked before it is closed. */
void rt_track_file(FILE *f);
void rt_untrack_file(FILE *f);

/* Elements of the model's type: double when f64 is set, float otherwise. */
/* Whether text[0..len) is name: a name in a list written "a,b=c" against a table's. */
static inline int rt_name_is(const char *name, const char *text, size_t len) {
    return strlen(name) == len && memcmp(name, text, len) == 0;
}

/* Whether bytes[0..len) start with magic[0..n): 1 yes, 0 no, -1 too few bytes to tell (all
 * there are agree), for formats told apart by their first bytes (gzip, IDX). */
static inline int rt_starts_with(const char *bytes, size_t len, const char *magic, size_t n) {
    if (memcmp(bytes, magic, len < n ? len : n) != 0) return 0;
    return len >= n ? 1 : -1;
}

static inline size_t rt_elem_size(int f64) {
    return f64 ? sizeof(double) : sizeof(float);
}
static inline double rt_get(const void *base, int64_t i, int f64) {
    return f64 ? ((const double *)base)[i] : (double)((const float *)base)[i];
}
static inline void rt_set(void *base, int64_t i, int f64, double v) {
    if (f64)
        ((double *)base)[i] = v;
    else
        ((float *)base)[i] = (float)v;
}
static inline void *rt_elem_ptr(void *base, int64_t i, int f64) {
    return (char *)base + (size_t)i * rt_elem_size(f64);
}
static inline const void *rt_elem_cptr(const void *base, int64_t i, int f64) {
    return (const char *)base + (size_t)i * rt_elem_size(f64);
}

/* How files are named in messages: "<stdin>" for NULL. */
const char *rt_display_path(const char *path);

/* Whether a path option is "-": standard input where the option names data to read, standard
 * output where it names a file to write (rt_input_open and rt_display_path take NULL). */
static inline int rt_is_dash(const char *path) {
    return path && strcmp(path, "-") == 0;
}

/* Seconds on a monotonic clock. */
double rt_now(void);

/* qsort's comparison of doubles, ascending (NaN compares equal to everything). */
int rt_compare_doubles(const void *a, const void *b);

/* Seconds on rt_now()'s clock for a caller that reads it every few hundred nanoseconds (the
 * --log row of a tiny model's epoch), where clock_gettime itself is a part to count (34 ns
 * under kvm-clock). On x86-64 with an invariant time-stamp counter (one rate on every core
 * and in every power state), a read is the counter, a third of that, on a line of seconds
 * against ticks. The line's slope is measured against rt_now() from the start, over the first
 * RT_TICKS_SPAN seconds (every read is rt_now() until then), and again at each
 * rt_tick_clock_steer: the line goes on from where it is, steered to meet rt_now()'s clock
 * RT_TICKS_STEER seconds later, so that no read jumps (rt_now() is slewed by NTP and the
 * counter is not: they drift apart by microseconds a second). Steered ten times a second,
 * a read is within a few microseconds of rt_now(). Elsewhere every read is rt_now(). Reads
 * never go back. */
#define RT_TICKS_SPAN  0.01
#define RT_TICKS_STEER 0.1
#define RT_TICKS_PAIR  10e-6 /* the widest pairing of the counter and rt_now() a steer uses */
typedef struct rt_tick_clock {
    int counter;    /* the time-stamp counter is used */
    uint64_t tick0; /* the counter and the time at the start: the slope's base */
    double second0;
    uint64_t tick_at; /* a point of the line, and its slope (0: not measured yet) */
    double second_at, seconds_per_tick;
    double last; /* the latest time read */
} rt_tick_clock;
void rt_tick_clock_start(rt_tick_clock *c);
double rt_tick_clock_read(rt_tick_clock *c);
/* A read that also measures the slope again (it reads rt_now()): now and then, at most ten
 * times a second. */
double rt_tick_clock_steer(rt_tick_clock *c);

/* Takes the lines of p[0..bytes) out of every core's caches (written back where changed):
 * for memory another core is about to write, whose stores then need not take this core's
 * copies away one line at a time. Changes no value; does nothing off x86-64. */
void rt_evict_lines(const void *p, size_t bytes);

/* Starts a thread running fn(arg) that never receives Ctrl-C: SIGINT stays with the main
 * thread, whose handler the training loop polls. `what` names the option in the error
 * ("--workers 2") when the thread cannot start. */
void rt_start_thread(pthread_t *thread, void *(*fn)(void *), void *arg, const char *what);

/* From here on, on this thread and the threads it starts: subnormal results are 0 and
 * subnormal operands read as 0 (x86's FTZ and DAZ bits; FZ on AArch64; nothing elsewhere). */
void rt_flush_denormals(void);

/* One turn of a spin-wait: tells the CPU this is a spin (x86 `pause`, Arm `yield`), which
 * frees the core's resources for its sibling and saves power (workers.c, mpi.c). */
static inline void rt_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
