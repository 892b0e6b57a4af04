/* util.c: messages, tracked allocations, file reads, time (see util.h). */
#include "util.h"

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#if defined(__x86_64__)
#include <cpuid.h>
#include <x86intrin.h>
#endif
#endif

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

/* The first thread to report an error ends the process. Another that fails at the same time
 * (two workers, each with a bad id in its share) waits for that exit instead of printing a
 * second message and calling exit() again, which is undefined. The thread that owns the exit
 * may report again (its exit handler failing). */
static atomic_flag exit_claimed = ATOMIC_FLAG_INIT;
static _Thread_local bool owns_exit;

static rt_before_error_fn before_error;
static void *before_error_arg;

void rt_set_before_error(rt_before_error_fn fn, void *arg) {
    before_error = fn;
    before_error_arg = arg;
}

static void claim_exit(void) {
    if (owns_exit) return;
    if (!atomic_flag_test_and_set(&exit_claimed)) {
        owns_exit = true;
        rt_before_error_fn fn = before_error;
        before_error = NULL; /* once: an error of its own ends the run as it is */
        if (fn) fn(before_error_arg);
        return;
    }
    for (;;) pause();
}

static _Thread_local char pending_hint[512];

void rt_hint(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pending_hint, sizeof pending_hint, fmt, ap);
    va_end(ap);
}

int rt_did_you_mean(const Suggestion *s, const char *prefix) {
    const char *best = suggest_best(s);
    if (best) rt_hint("did you mean %s%s?", prefix, best);
    return best != NULL;
}

/* The text a part of a message took, from snprintf's count: at + written, or `size` once the
 * buffer is full (the parts after it then write nothing). */
static size_t text_end(int written, size_t at, size_t size) {
    return written >= 0 && (size_t)written < size - at ? at + (size_t)written : size;
}

/* The message and its hint go out in one write: stderr is unbuffered, and piece by piece the
 * ranks of an MPI job (each stopping on the same bad option) interleaved their pieces into
 * "w2: error: w2: error: ...". One that does not fit the buffer goes out in pieces. */
static void vreport(const char *prefix, const char *kind, const char *fmt, va_list ap) {
    fflush(stdout); /* keep stdout lines before the message when both go to a terminal */
    char text[8192];
    size_t size = sizeof text,
           n = text_end(snprintf(text, size, "%s: %s: ", prefix, kind), 0, size);
    va_list again;
    va_copy(again, ap);
    n = text_end(vsnprintf(text + n, size - n, fmt, again), n, size);
    va_end(again);
    n = text_end(snprintf(text + n, size - n, "\n"), n, size);
    if (pending_hint[0])
        n = text_end(snprintf(text + n, size - n, "  hint: %s\n", pending_hint), n, size);
    if (n < size) {
        fwrite(text, 1, n, stderr);
    } else {
        fprintf(stderr, "%s: %s: ", prefix, kind);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        if (pending_hint[0]) fprintf(stderr, "  hint: %s\n", pending_hint);
    }
    pending_hint[0] = '\0';
}

void rt_usage_error(const char *fmt, ...) {
    claim_exit();
    va_list ap;
    va_start(ap, fmt);
    vreport(program_name, "error", fmt, ap);
    va_end(ap);
    rt_exit(RT_EXIT_USAGE);
}

void rt_fatal(const char *fmt, ...) {
    claim_exit();
    va_list ap;
    va_start(ap, fmt);
    vreport(program_name, "error", fmt, ap);
    va_end(ap);
    rt_exit(RT_EXIT_FAILURE);
}

void rt_path_error(const char *path, const char *fmt, ...) {
    claim_exit();
    va_list ap;
    va_start(ap, fmt);
    vreport(rt_display_path(path), "error", fmt, ap);
    va_end(ap);
    rt_exit(RT_EXIT_FAILURE);
}

void rt_line_error(const char *path, int64_t line, const char *fmt, ...) {
    claim_exit();
    char prefix[4096];
    snprintf(prefix, sizeof prefix, "%s:%lld", rt_display_path(path), (long long)line);
    va_list ap;
    va_start(ap, fmt);
    vreport(prefix, "error", fmt, ap);
    va_end(ap);
    rt_exit(RT_EXIT_FAILURE);
}

void rt_byte_error(const char *path, uint64_t byte, const char *fmt, ...) {
    claim_exit();
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

void rt_line_warning(const char *path, int64_t line, const char *fmt, ...) {
    char prefix[4096];
    snprintf(prefix, sizeof prefix, "%s:%lld", rt_display_path(path), (long long)line);
    va_list ap;
    va_start(ap, fmt);
    vreport(prefix, "warning", fmt, ap);
    va_end(ap);
}

/* ---- text from files, for messages ---- */

/* The length of the well-formed UTF-8 sequence at p (at most end - p bytes), or 0: no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
size_t rt_utf8_length(const unsigned char *p, const unsigned char *end) {
    size_t avail = (size_t)(end - p);
    if (avail == 0) return 0;
    unsigned c = p[0];
    if (c < 0x80) return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xBF; /* the allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* U+D800..U+DFFF are surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (avail < n || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

/* The next character of p as message text, into out (7 bytes); sets *used to the bytes of p
 * it stands for. */
static size_t printable_char(const unsigned char *p, const unsigned char *end, char *out,
                             size_t *used) {
    size_t len = rt_utf8_length(p, end);
    *used = len ? len : 1;
    if (len == 0) return (size_t)snprintf(out, 7, "\\x%02x", *p);
    if (len == 1 && *p == '\\') return (size_t)snprintf(out, 7, "\\\\");
    if (len == 1 && (*p < 0x20 || *p == 0x7F)) return (size_t)snprintf(out, 7, "\\u%04x", *p);
    if (len == 2 && p[0] == 0xC2 && p[1] < 0xA0) /* the C1 controls, U+0080..U+009F */
        return (size_t)snprintf(out, 7, "\\u%04x", p[1]);
    memcpy(out, p, len);
    return len;
}

const char *rt_printable(char *buf, size_t size, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    size_t total = 0, used = 0, step;
    char piece[8];
    for (const unsigned char *q = p; q < end; q += step)
        total += printable_char(q, end, piece, &step);
    /* Everything, or as much as leaves room for "..." */
    size_t room = total < size ? size - 1 : size - 1 - 3;
    for (; p < end; p += step) {
        size_t len = printable_char(p, end, piece, &step);
        if (used + len > room) break;
        memcpy(buf + used, piece, len);
        used += len;
    }
    if (p < end) {
        memcpy(buf + used, "...", 3);
        used += 3;
    }
    buf[used] = '\0';
    return buf;
}

/* ---- memory ---- */

/* The cgroup (v2) memory limit of a container, or UINT64_MAX. */
static uint64_t cgroup_memory_limit(void) {
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
    if (!f) return UINT64_MAX;
    unsigned long long v;
    int ok = fscanf(f, "%llu", &v) == 1; /* "max" when there is no limit */
    fclose(f);
    return ok ? (uint64_t)v : UINT64_MAX;
}

uint64_t rt_memory_budget(void) {
    static uint64_t budget;
    if (budget) return budget;
    uint64_t b = UINT64_MAX;
    long pages = sysconf(_SC_PHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page_size > 0) b = (uint64_t)pages * (uint64_t)page_size;
    const int limits[] = {RLIMIT_AS, RLIMIT_DATA};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        struct rlimit rl;
        if (getrlimit(limits[i], &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            (uint64_t)rl.rlim_cur < b)
            b = (uint64_t)rl.rlim_cur;
    }
    uint64_t cgroup = cgroup_memory_limit();
    if (cgroup < b) b = cgroup;
    budget = b ? b : 1;
    return budget;
}

/* ---- tracked allocations ----
 *
 * Every block carries a small header just before the pointer handed out: the block's
 * index in `tracked` (which holds the handed-out pointers) and the distance back to the
 * start of the block malloc gave. Forgetting a block moves the last entry into its slot
 * and tells that block its new index, so tracking costs O(1) per allocation and per free,
 * whatever the order of the frees (a loader that frees 200 000 names oldest first must
 * not take quadratic time). LeakSanitizer counts a pointer into a block as a reference,
 * so the blocks stay reachable through `tracked`. The list is the process's, and threads
 * allocate too (a worker's first team step makes its room for a product while the main
 * thread makes the team's scratch), so it changes under `tracked_lock`; the training step
 * allocates nothing, so the lock is never taken in it. */

typedef struct block_header {
    size_t index;  /* in tracked */
    size_t offset; /* from the start of the block to the pointer handed out */
} block_header;

/* Room before the pointer handed out: the header, rounded up so the pointer keeps the
 * alignment malloc guarantees. */
#define HEADER_ROOM                                                                                \
    ((sizeof(block_header) + _Alignof(max_align_t) - 1) / _Alignof(max_align_t) *                  \
     _Alignof(max_align_t))
#define ARENA_ALIGN 64

static void **tracked;
static size_t n_tracked, cap_tracked;
static pthread_mutex_t tracked_lock = PTHREAD_MUTEX_INITIALIZER;

static block_header *header_of(void *p) {
    return (block_header *)((char *)p - sizeof(block_header));
}

static void track(void *p) {
    pthread_mutex_lock(&tracked_lock);
    if (n_tracked == cap_tracked) {
        size_t new_cap = cap_tracked ? 2 * cap_tracked : 64;
        void **grown = realloc(tracked, new_cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&tracked_lock); /* the exit frees what is tracked */
            rt_fatal("out of memory");
        }
        tracked = grown;
        cap_tracked = new_cap;
    }
    header_of(p)->index = n_tracked;
    tracked[n_tracked++] = p;
    pthread_mutex_unlock(&tracked_lock);
}

static void untrack(void *p) {
    pthread_mutex_lock(&tracked_lock);
    size_t i = header_of(p)->index;
    void *last = tracked[--n_tracked];
    tracked[i] = last;
    header_of(last)->index = i;
    pthread_mutex_unlock(&tracked_lock);
}

/* The pointer to hand out for a block from malloc that starts at base. */
static void *hand_out(void *base, size_t offset) {
    void *p = (char *)base + offset;
    header_of(p)->offset = offset;
    track(p);
    return p;
}

static void *block_start(void *p) {
    return (char *)p - header_of(p)->offset;
}

void *rt_alloc(size_t size) {
    if (size > SIZE_MAX - HEADER_ROOM) rt_fatal("out of memory (wanted %zu bytes)", size);
    /* at least a byte: a pointer one past its block would not keep the block reachable */
    void *base = calloc(1, HEADER_ROOM + (size ? size : 1));
    if (!base) rt_fatal("out of memory (wanted %zu bytes)", size);
    return hand_out(base, HEADER_ROOM);
}

void *rt_alloc_array(size_t count, size_t elem_size) {
    if (elem_size && count > SIZE_MAX / elem_size) rt_fatal("out of memory (array too large)");
    return rt_alloc(count * elem_size);
}

/* realloc keeps the contents and, for large blocks, moves pages rather than copying them,
 * so growing a buffer of gigabytes needs no second copy of it. */
void *rt_grow_array(void *old, size_t old_count, size_t new_count, size_t elem_size) {
    if (!old) return rt_alloc_array(new_count, elem_size);
    if (elem_size && new_count > (SIZE_MAX - HEADER_ROOM) / elem_size)
        rt_fatal("out of memory (array too large)");
    size_t old_size = old_count * elem_size, new_size = new_count * elem_size;
    if (header_of(old)->offset != HEADER_ROOM) { /* an arena: realloc would lose the alignment */
        void *grown = rt_alloc(new_size);
        memcpy(grown, old, old_size < new_size ? old_size : new_size);
        rt_free(old);
        return grown;
    }
    /* locked throughout: another block's untrack may write this block's index meanwhile */
    pthread_mutex_lock(&tracked_lock);
    void *base = realloc(block_start(old), HEADER_ROOM + (new_size ? new_size : 1));
    if (!base) {
        pthread_mutex_unlock(&tracked_lock);
        rt_fatal("out of memory (wanted %zu bytes)", new_size);
    }
    void *p = (char *)base + HEADER_ROOM; /* the header moved with the contents */
    tracked[header_of(p)->index] = p;
    pthread_mutex_unlock(&tracked_lock);
    if (new_size > old_size) memset((char *)p + old_size, 0, new_size - old_size);
    return p;
}

void *rt_alloc_aligned(size_t count, size_t elem_size) {
    if (elem_size && count > (SIZE_MAX - 2 * ARENA_ALIGN) / elem_size)
        rt_fatal("out of memory (arena too large)");
    size_t size = count * elem_size;
    /* aligned_alloc wants a multiple of the alignment; the header takes one more */
    size =
        (size ? (size + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN : ARENA_ALIGN) + ARENA_ALIGN;
    void *base = aligned_alloc(ARENA_ALIGN, size);
    if (!base) rt_fatal("out of memory (wanted an arena of %zu bytes)", size);
    memset(base, 0, size);
    return hand_out(base, ARENA_ALIGN);
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
    free(block_start(p));
}

/* Files a loader keeps open from one call to the next (rt_open_seekable's, which a
 * safetensors file is read through): an error exit from inside the loader leaves them open,
 * so rt_free_all closes them too. A handful at most are open at once. */
static FILE **open_files;
static size_t n_open_files, cap_open_files;

void rt_track_file(FILE *f) {
    pthread_mutex_lock(&tracked_lock);
    if (n_open_files == cap_open_files) {
        size_t new_cap = cap_open_files ? 2 * cap_open_files : 8;
        FILE **grown = realloc(open_files, new_cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&tracked_lock);
            fclose(f);
            rt_fatal("out of memory");
        }
        open_files = grown;
        cap_open_files = new_cap;
    }
    open_files[n_open_files++] = f;
    pthread_mutex_unlock(&tracked_lock);
}

void rt_untrack_file(FILE *f) {
    pthread_mutex_lock(&tracked_lock);
    for (size_t i = 0; i < n_open_files; i++)
        if (open_files[i] == f) {
            open_files[i] = open_files[--n_open_files];
            break;
        }
    pthread_mutex_unlock(&tracked_lock);
}

static void close_open_files(void) {
    for (size_t i = 0; i < n_open_files; i++) fclose(open_files[i]);
    free(open_files);
    open_files = NULL;
    n_open_files = cap_open_files = 0;
}

void rt_free_all(void) {
    close_open_files();
    for (size_t i = 0; i < n_tracked; i++) free(block_start(tracked[i]));
    free(tracked);
    tracked = NULL;
    n_tracked = cap_tracked = 0;
}

const char *rt_display_path(const char *path) {
    return path ? path : "<stdin>";
}

int rt_compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double rt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- the tick clock (util.h) ---- */

#if defined(__x86_64__)
static int counter_invariant(void) {
    unsigned a, b, c, d;
    return __get_cpuid(0x80000007, &a, &b, &c, &d) && (d & (1u << 8));
}
static uint64_t counter(void) {
    return __rdtsc();
}
#else
static int counter_invariant(void) {
    return 0;
}
static uint64_t counter(void) {
    return 0;
}
#endif

/* The counter and rt_now() read together: rt_now() between two reads of the counter, paired
 * with the tick halfway, the narrowest of a few tries kept. One try is not enough: a
 * process's first clock_gettime can take tens of microseconds (the vDSO's page coming in),
 * and a thread preempted between the reads pairs a time with a tick milliseconds away. On a
 * loaded machine a single try measured the slope over RT_TICKS_SPAN up to 50% off, and the
 * reads until the next steer were 10 ms off. */
typedef struct clock_pair {
    uint64_t first, tick, width; /* the first counter read, the tick paired, their span */
    double now;
} clock_pair;

static clock_pair read_together(void) {
    clock_pair best = {.width = UINT64_MAX};
    for (int tries = 0; tries < 3; tries++) {
        uint64_t first = counter();
        double now = rt_now();
        uint64_t width = counter() - first;
        if (width < best.width)
            best = (clock_pair){.first = first, .tick = first + width / 2, .width = width, .now = now};
    }
    return best;
}

void rt_tick_clock_start(rt_tick_clock *c) {
    *c = (rt_tick_clock){.counter = counter_invariant()};
    clock_pair p = c->counter ? read_together() : (clock_pair){.now = rt_now()};
    c->tick0 = p.tick;
    c->second0 = c->last = p.now;
}

static double not_back(rt_tick_clock *c, double now) {
    if (now < c->last) return c->last;
    return c->last = now;
}

/* The line's time at a tick (not before the line's own point: another core's counter may be
 * a little behind). */
static double line_at(const rt_tick_clock *c, uint64_t tick) {
    if (tick < c->tick_at) tick = c->tick_at;
    return c->second_at + (double)(tick - c->tick_at) * c->seconds_per_tick;
}

static double restart_line(rt_tick_clock *c, uint64_t tick, double now, double slope) {
    c->tick_at = tick;
    c->second_at = now;
    c->seconds_per_tick = slope;
    return not_back(c, now);
}

/* The time returned is the line's at the pair's first tick, not rt_now()'s: the first
 * rt_now() in a while can take a microsecond (its page of kvm-clock's data gone from the
 * caches), and that microsecond counts in the next read's time, not in this one's. A pair
 * still wider than RT_TICKS_PAIR after its tries (the thread preempted every time) steers
 * nothing: the line goes on as it was until the next steer. */
double rt_tick_clock_steer(rt_tick_clock *c) {
    if (!c->counter) return not_back(c, rt_now());
    if (c->seconds_per_tick == 0) { /* every read until the slope is measured: rt_now() alone */
        double now = rt_now();
        if (now - c->second0 < RT_TICKS_SPAN) return not_back(c, now);
    }
    clock_pair p = read_together();
    if (p.now - c->second0 < RT_TICKS_SPAN || p.tick <= c->tick0) return not_back(c, p.now);
    double measured = (p.now - c->second0) / (double)(p.tick - c->tick0);
    if ((double)p.width * measured > RT_TICKS_PAIR)
        return c->seconds_per_tick == 0 ? not_back(c, p.now) : not_back(c, line_at(c, counter()));
    if (c->seconds_per_tick == 0) return restart_line(c, p.tick, p.now, measured);
    double behind = p.now - line_at(c, p.tick);
    /* Far off (the counter stopped, or the clock was set): no steering makes up for it. */
    if (fabs(behind) > RT_TICKS_STEER / 16) return restart_line(c, p.tick, p.now, measured);
    return restart_line(c, p.first, line_at(c, p.first), measured * (1 + behind / RT_TICKS_STEER));
}

double rt_tick_clock_read(rt_tick_clock *c) {
    if (c->seconds_per_tick == 0) return rt_tick_clock_steer(c);
    return not_back(c, line_at(c, counter()));
}

/* ---- lines handed to another core ---- */

#if defined(__x86_64__)
static int has_clflushopt(void) {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 23));
}
/* clflushopt lets the lines go in any order, all at once; clflush (every x86-64 has it) one
 * after the other. */
__attribute__((target("clflushopt"))) static void evict_unordered(const char *p, const char *end) {
    for (; p < end; p += RT_CACHE_LINE) _mm_clflushopt((void *)p);
    _mm_sfence();
}
static void evict_ordered(const char *p, const char *end) {
    for (; p < end; p += RT_CACHE_LINE) _mm_clflush(p);
}
void rt_evict_lines(const void *p, size_t bytes) {
    /* cpuid leaves a virtual machine (microseconds), so it is asked once: 1 yes, 2 no */
    static _Atomic int unordered;
    int known = atomic_load_explicit(&unordered, memory_order_relaxed);
    if (!known) {
        known = has_clflushopt() ? 1 : 2;
        atomic_store_explicit(&unordered, known, memory_order_relaxed);
    }
    if (bytes == 0) return;
    const char *first = (const char *)((uintptr_t)p & ~(uintptr_t)(RT_CACHE_LINE - 1));
    const char *end = (const char *)p + bytes;
    if (known == 1)
        evict_unordered(first, end);
    else
        evict_ordered(first, end);
}
#else
void rt_evict_lines(const void *p, size_t bytes) {
    (void)p;
    (void)bytes;
}
#endif

/* ---- threads ---- */

void rt_start_thread(pthread_t *thread, void *(*fn)(void *), void *arg, const char *what) {
    sigset_t interrupt, old;
    sigemptyset(&interrupt);
    sigaddset(&interrupt, SIGINT);
    pthread_sigmask(SIG_BLOCK, &interrupt, &old);
    int err = pthread_create(thread, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) rt_fatal("%s: cannot start a thread: %s", what, strerror(err));
}

/* ---- subnormal numbers ---- */

/* A CPU computes with subnormals (below 1.2e-38 in f32) through a slow microcode path, tens
 * of times the cost of an ordinary multiply-add. Training makes them: a saturated softmax's
 * far-off probabilities and their gradients land there, and the GEMMs that read them slow
 * down (W1 on 0..255 pixels trained about 15% faster with them flushed). Flushing changes a
 * result only where it was below 1.2e-38 anyway; TensorFlow and XLA do the same on CPUs.
 * The bits live in the thread's control register, which threads started later inherit. */
void rt_flush_denormals(void) {
#if defined(__SSE2__)
    _mm_setcsr(_mm_getcsr() | _MM_FLUSH_ZERO_ON | _MM_DENORMALS_ZERO_ON);
#elif defined(__aarch64__)
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    fpcr |= UINT64_C(1) << 24; /* FZ */
    __asm__ volatile("msr fpcr, %0" : : "r"(fpcr));
#endif
}
