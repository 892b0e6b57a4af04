/* common.c: the arena, growable strings, hash tables, source files, diagnostics with
 * carets, output files and the work counters. */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

NncStats nnc_stats;

/* ---- the arena ----
 * A list of blocks; everything is freed at once by xalloc_free_all(). */

typedef struct Block {
    struct Block *next;
    size_t used, size;
    _Alignas(16) unsigned char data[];
} Block;

static Block *blocks;

static void out_of_memory(void) {
    fputs("nnc: error: out of memory\n", stderr);
    exit(1);
}

void *xalloc(size_t size) {
    if (size > SIZE_MAX - sizeof(Block) - 16) out_of_memory();
    size = (size + 15) & ~(size_t)15;
    if (!blocks || blocks->used + size > blocks->size) {
        size_t block_size = size > (1u << 20) ? size : (1u << 20);
        Block *b = malloc(sizeof(Block) + block_size);
        if (!b) out_of_memory();
        nnc_stats.arena_bytes += (int64_t)block_size;
        b->next = blocks;
        b->used = 0;
        b->size = block_size;
        blocks = b;
    }
    void *p = blocks->data + blocks->used;
    blocks->used += size;
    memset(p, 0, size);
    return p;
}

void *xrealloc_array(void *old, size_t old_count, size_t new_count, size_t elem_size) {
    if (elem_size && new_count > SIZE_MAX / elem_size) out_of_memory();
    void *p = xalloc(new_count * elem_size);
    if (old) memcpy(p, old, old_count * elem_size);
    return p;
}

char *xstrndup(const char *s, size_t n) {
    char *p = xalloc(n + 1);
    memcpy(p, s, n);
    return p;
}

char *xstrdup(const char *s) {
    return xstrndup(s, strlen(s));
}

char *xprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = xalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

static VEC(SrcFile *) files_read;
static int64_t source_budget_used;

void xalloc_free_all(void) {
    while (blocks) {
        Block *next = blocks->next;
        free(blocks);
        blocks = next;
    }
    files_read.v = NULL;
    files_read.n = files_read.cap = 0;
    source_budget_used = 0;
}

/* ---- growable strings ---- */

void sb_add(StrBuf *b, const char *s, size_t len) {
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (b->n + len + 1 > cap) cap *= 2;
        b->s = xrealloc_array(b->s, b->cap, cap, 1);
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = '\0';
}

void sb_puts(StrBuf *b, const char *s) {
    sb_add(b, s, strlen(s));
}

void sb_printf(StrBuf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        sb_add(b, small, (size_t)n);
        return;
    }
    char *big = xalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_add(b, big, (size_t)n);
}

char *sb_str(StrBuf *b) {
    return b->s ? b->s : xstrdup("");
}

/* ---- hash tables ---- */

uint64_t hash_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t hash_bytes(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0xCBF29CE484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001B3ull;
    return hash_mix(h);
}

/* Robin Hood hashing: an entry farther from its home slot than the one it meets takes that
 * slot and moves the other on. Every entry then sits about as far from home as the average,
 * so looking up one key many times (CSE meets the same instruction again and again) costs
 * what any lookup costs. */

static size_t home_distance(const HashMap *m, size_t slot, uint64_t hash) {
    return (slot - (size_t)hash) & (m->cap - 1);
}

/* Puts e in the table from slot at (where it is dist from home); returns where it went. */
static HashEntry *place(HashMap *m, HashEntry e, size_t at, size_t dist) {
    HashEntry *placed = NULL;
    for (;; at = (at + 1) & (m->cap - 1), dist++) {
        nnc_stats.hash_probes++;
        HashEntry *slot = &m->slots[at];
        if (!slot->key) {
            *slot = e;
            return placed ? placed : slot;
        }
        size_t theirs = home_distance(m, at, slot->hash);
        if (theirs < dist) {
            HashEntry moved = *slot;
            *slot = e;
            if (!placed) placed = slot;
            e = moved;
            dist = theirs;
        }
    }
}

static void hash_grow(HashMap *m) {
    HashMap bigger = {xrealloc_array(NULL, 0, m->cap ? 2 * m->cap : 16, sizeof(HashEntry)),
                      m->cap ? 2 * m->cap : 16, m->count};
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key) place(&bigger, m->slots[i], m->slots[i].hash & (bigger.cap - 1), 0);
    *m = bigger;
}

HashEntry *hash_find(HashMap *m, uint64_t h, const void *key, HashEq eq, bool add) {
    if (add && 2 * (m->count + 1) > m->cap) hash_grow(m);
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask, dist = 0;; i = (i + 1) & mask, dist++) {
        nnc_stats.hash_probes++;
        HashEntry *e = &m->slots[i];
        /* An empty slot, or one nearer its home than key would be: key is not there. */
        if (!e->key || home_distance(m, i, e->hash) < dist) {
            if (!add) return NULL;
            m->count++;
            return place(m, (HashEntry){h, key, NULL}, i, dist);
        }
        if (e->hash == h && (eq ? eq(key, e->key) : e->key == key)) return e;
    }
}

static bool same_string(const void *a, const void *b) {
    return strcmp(a, b) == 0;
}

void *strmap_get(HashMap *m, const char *key) {
    HashEntry *e = hash_find(m, hash_bytes(key, strlen(key)), key, same_string, false);
    return e ? e->value : NULL;
}

void strmap_put(HashMap *m, const char *key, void *value) {
    hash_find(m, hash_bytes(key, strlen(key)), key, same_string, true)->value = value;
}

void *ptrmap_get(HashMap *m, const void *key) {
    HashEntry *e = hash_find(m, hash_mix((uint64_t)(uintptr_t)key), key, NULL, false);
    return e ? e->value : NULL;
}

void ptrmap_put(HashMap *m, const void *key, void *value) {
    hash_find(m, hash_mix((uint64_t)(uintptr_t)key), key, NULL, true)->value = value;
}

/* ---- source files ---- */

static void index_lines(SrcFile *f) {
    int n = 1;
    for (size_t i = 0; i < f->len; i++) n += f->text[i] == '\n';
    f->line_start = xalloc(sizeof *f->line_start * (size_t)n);
    f->n_lines = n;
    int line = 1;
    for (size_t i = 0; i < f->len; i++)
        if (f->text[i] == '\n') f->line_start[line++] = i + 1;
}

size_t srcfile_offset(const SrcFile *f, int line, int col) {
    if (line < 1) return 0;
    if (line > f->n_lines) return f->len;
    size_t off = f->line_start[line - 1] + (size_t)(col > 0 ? col - 1 : 0);
    return off < f->len ? off : f->len;
}

SrcFile *srcfile_from_text(const char *path, const char *text) {
    SrcFile *f = xalloc(sizeof *f);
    f->path = xstrdup(path);
    f->len = strlen(text);
    f->text = xstrndup(text, f->len);
    index_lines(f);
    return f;
}

static const char *read_error = "";

const char *srcfile_error(void) {
    return read_error;
}

int srcfile_count(void) {
    return files_read.n;
}

const SrcFile *srcfile_at(int i) {
    return files_read.v[i];
}

static SrcFile *read_failed(int fd, const char *why) {
    if (fd >= 0) close(fd);
    read_error = why;
    return NULL;
}

static const char *too_big(int64_t size) {
    int mib = NNC_MAX_SOURCE_BYTES >> 20;
    if (source_budget_used == 0)
        return xprintf("it is %lld bytes, more than the %d MiB a source file may have",
                       (long long)size, mib);
    return xprintf("it is %lld bytes, and with the files read before it that is more than "
                   "the %d MiB of source nnc reads in one run",
                   (long long)size, mib);
}

/* Reads at most budget bytes of fd into *out; more than that is an error. Files can grow
 * while they are read, so the size fstat gave is only where the buffer starts. */
static bool read_bounded(int fd, int64_t size_hint, int64_t budget, char **out, size_t *len,
                         const char **why) {
    size_t cap = (size_t)(size_hint < budget ? size_hint : budget) + 2;
    char *buf = xalloc(cap);
    size_t n = 0;
    for (;;) {
        if (n + 1 == cap) {
            if ((int64_t)n > budget) break;
            buf = xrealloc_array(buf, n, 2 * cap, 1);
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            *why = strerror(errno);
            return false;
        }
        if (got == 0) break;
        n += (size_t)got;
        if ((int64_t)n > budget) break;
    }
    if ((int64_t)n > budget) {
        *why = too_big((int64_t)n);
        return false;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return true;
}

SrcFile *srcfile_read(const char *path) {
    /* O_NONBLOCK: opening a named pipe must not wait for a writer; it is refused below. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return read_failed(-1, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) return read_failed(fd, strerror(errno));
    if (S_ISDIR(st.st_mode)) return read_failed(fd, "it is a folder");
    if (!S_ISREG(st.st_mode)) return read_failed(fd, "not a regular file");
    int64_t budget = NNC_MAX_SOURCE_BYTES - source_budget_used;
    if (st.st_size > budget) return read_failed(fd, too_big((int64_t)st.st_size));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    char *text;
    size_t len;
    const char *why;
    if (!read_bounded(fd, (int64_t)st.st_size, budget, &text, &len, &why))
        return read_failed(fd, why);
    close(fd);
    source_budget_used += (int64_t)len;
    nnc_stats.source_bytes += (int64_t)len;
    SrcFile *f = xalloc(sizeof *f);
    f->path = xstrdup(path);
    f->text = text;
    f->len = len;
    f->on_disk = true;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    index_lines(f);
    vec_push(&files_read, f);
    return f;
}

/* ---- diagnostics ---- */

static int error_count;

int diag_error_count(void) {
    return error_count;
}

bool diag_too_many(void) {
    return error_count > DIAG_MAX_ERRORS;
}

/* Where a cut may fall without splitting a UTF-8 character: not on a continuation byte. */
static bool char_starts(const char *p) {
    return ((unsigned char)*p & 0xC0) != 0x80;
}

/* Prints the source line of loc and a caret under its column. Tabs in the line are kept
 * in the caret line so the caret lands under the right character. A line longer than
 * DIAG_MAX_LINE shows only a window around the column, with "..." where it is cut. */
static void print_source_line(SrcLoc loc) {
    const SrcFile *f = loc.file;
    if (!f || loc.line <= 0 || loc.line > f->n_lines) return;
    const char *p = f->text + f->line_start[loc.line - 1], *end = f->text + f->len;
    if (p >= end && loc.line > 1) return;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    const char *caret = p + (loc.col > 1 ? loc.col - 1 : 0);
    if (caret > eol) caret = eol;
    const char *from = p, *to = eol;
    if (eol - p > DIAG_MAX_LINE) {
        from = caret - DIAG_MAX_LINE / 2 > p ? caret - DIAG_MAX_LINE / 2 : p;
        to = from + DIAG_MAX_LINE < eol ? from + DIAG_MAX_LINE : eol;
        if (to - from < DIAG_MAX_LINE) from = to - DIAG_MAX_LINE;
        while (from > p && !char_starts(from)) from++;
        while (to < eol && !char_starts(to)) to--;
    }
    const char *before = from > p ? "..." : "", *after = to < eol ? "..." : "";
    fprintf(stderr, "  %s%.*s%s\n  %s", before, (int)(to - from), from, after,
            *before ? "   " : "");
    for (const char *c = from; c < caret && c < to; c++) fputc(*c == '\t' ? '\t' : ' ', stderr);
    fputs("^\n", stderr);
}

/* The message, cut at DIAG_MAX_MESSAGE bytes (a message may quote the source). */
static void print_message(const char *fmt, va_list ap) {
    char msg[DIAG_MAX_MESSAGE + 1];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n > DIAG_MAX_MESSAGE) {
        char *cut = msg + DIAG_MAX_MESSAGE;
        while (cut > msg && !char_starts(cut)) cut--;
        fprintf(stderr, "%.*s...", (int)(cut - msg), msg);
    } else {
        fputs(msg, stderr);
    }
    fputc('\n', stderr);
}

static void vreport(const char *kind, SrcLoc loc, const char *fmt, va_list ap) {
    if (loc.file)
        fprintf(stderr, "%s:%d:%d: %s: ", loc.file->path, loc.line, loc.col, kind);
    else
        fprintf(stderr, "nnc: %s: ", kind);
    print_message(fmt, ap);
    print_source_line(loc);
}

static bool suppressed; /* past DIAG_MAX_ERRORS: notes and hints of hidden errors are hidden too */

static bool held;              /* between diag_hold and diag_release */
static int held_errors;        /* errors counted when the hold began */
static const char *held_first; /* the first error while held */

void diag_reset(void) {
    error_count = 0;
    suppressed = false;
    held = false;
    held_first = NULL;
}

void diag_hold(void) {
    held = true;
    held_errors = error_count;
    held_first = NULL;
}

const char *diag_release(void) {
    held = false;
    error_count = held_errors;
    suppressed = false;
    return held_first;
}

/* While held: the first error is kept as text, and nothing is printed. */
static bool hold_error(SrcLoc loc, const char *fmt, va_list ap) {
    if (!held) return false;
    if (!held_first) {
        char msg[DIAG_MAX_MESSAGE + 1];
        vsnprintf(msg, sizeof msg, fmt, ap);
        held_first = loc.file ? xprintf("%s:%d:%d: %s", loc.file->path, loc.line, loc.col, msg)
                              : xstrdup(msg);
    }
    error_count++;
    return true;
}

void diag_error(SrcLoc loc, const char *fmt, ...) {
    va_list held_ap;
    va_start(held_ap, fmt);
    bool was_held = hold_error(loc, fmt, held_ap);
    va_end(held_ap);
    if (was_held) return;
    error_count++;
    suppressed = error_count > DIAG_MAX_ERRORS;
    if (suppressed) {
        if (error_count == DIAG_MAX_ERRORS + 1) fputs("nnc: too many errors; stopping\n", stderr);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vreport("error", loc, fmt, ap);
    va_end(ap);
}

void diag_warning(SrcLoc loc, const char *fmt, ...) {
    if (held) return;
    suppressed = false;
    va_list ap;
    va_start(ap, fmt);
    vreport("warning", loc, fmt, ap);
    va_end(ap);
}

void diag_note(SrcLoc loc, const char *fmt, ...) {
    if (suppressed || held) return;
    va_list ap;
    va_start(ap, fmt);
    vreport("note", loc, fmt, ap);
    va_end(ap);
}

void diag_hint(const char *fmt, ...) {
    if (suppressed || held) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("  hint: ", stderr);
    print_message(fmt, ap);
    va_end(ap);
}

bool diag_did_you_mean(const Suggestion *s) {
    const char *best = suggest_best(s);
    if (best) diag_hint("did you mean %s?", best);
    return best != NULL;
}

void diag_fatal_noloc(const char *fmt, ...) {
    va_list held_ap;
    va_start(held_ap, fmt);
    bool was_held = hold_error((SrcLoc){0}, fmt, held_ap);
    va_end(held_ap);
    if (was_held) return;
    error_count++;
    suppressed = false;
    va_list ap;
    va_start(ap, fmt);
    fputs("nnc: error: ", stderr);
    print_message(fmt, ap);
    va_end(ap);
}

/* ---- output files ---- */

bool output_is_not_a_source(const char *path) {
    struct stat st;
    if (!strcmp(path, "-") || stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return true;
    for (int i = 0; i < files_read.n; i++) {
        const SrcFile *f = files_read.v[i];
        if (f->on_disk && f->dev == st.st_dev && f->ino == st.st_ino) {
            diag_fatal_noloc("the output %s would overwrite the source file %s", path, f->path);
            diag_hint("choose another output file with -o");
            return false;
        }
    }
    return true;
}

static mode_t creation_mode(mode_t mode) {
    mode_t mask = umask(0);
    umask(mask);
    return mode & ~mask;
}

static const char *folder_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return ".";
    return slash == path ? "/" : xstrndup(path, (size_t)(slash - path));
}

static const char *temp_folder(void) {
    const char *t = getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

/* An empty file of ours: ".NAME.nnc-XXXXXX" beside path, or in the temporary folder. */
static const char *make_staging(const char *path, bool beside) {
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char *name = !beside              ? xprintf("%s/nnc-output-XXXXXX", temp_folder())
                 : strlen(base) < 200 ? xprintf("%s/.%s.nnc-XXXXXX", folder_of(path), base)
                                      : xprintf("%s/.nnc-XXXXXX", folder_of(path));
    int fd = mkstemp(name);
    if (fd < 0) {
        diag_fatal_noloc("cannot write %s: %s", path, strerror(errno));
        return NULL;
    }
    fchmod(fd, creation_mode(0666));
    close(fd);
    return name;
}

bool outfile_begin(OutFile *o, const char *path, bool stream) {
    *o = (OutFile){.path = path, .write_to = path};
    if (!output_is_not_a_source(path)) return false;
    bool to_stdout = !strcmp(path, "-");
    struct stat st;
    bool exists = !to_stdout && stat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        diag_fatal_noloc("cannot write %s: it is a folder", path);
        return false;
    }
    bool direct = to_stdout || (exists && !S_ISREG(st.st_mode));
    if (direct && stream) {
        o->write_to = to_stdout ? NULL : path;
        return true;
    }
    o->write_to = make_staging(path, !direct);
    o->staged = o->write_to != NULL;
    o->copy_to_path = direct;
    return o->staged;
}

static bool write_fully(int fd, const char *data, size_t n) {
    while (n > 0) {
        ssize_t put = write(fd, data, n);
        if (put < 0 && errno == EINTR) continue;
        if (put <= 0) {
            if (put == 0) errno = EIO;
            return false;
        }
        data += put;
        n -= (size_t)put;
    }
    return true;
}

/* Copies the staging file into a device, a pipe or stdout: written, never replaced. */
static bool copy_into(const char *from, const char *to) {
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return false;
    bool to_stdout = !strcmp(to, "-");
    if (to_stdout) fflush(stdout);
    int out = to_stdout ? STDOUT_FILENO : open(to, O_WRONLY | O_CLOEXEC);
    bool ok = out >= 0;
    char buf[1 << 16];
    ssize_t got = 0;
    while (ok && ((got = read(in, buf, sizeof buf)) > 0 || (got < 0 && errno == EINTR)))
        if (got > 0) ok = write_fully(out, buf, (size_t)got);
    if (ok && got < 0) ok = false;
    int saved = errno;
    close(in);
    if (out >= 0 && !to_stdout && close(out) != 0 && ok) ok = false, saved = errno;
    errno = saved;
    return ok;
}

bool outfile_commit(OutFile *o) {
    if (!o->staged) return true;
    bool ok = o->copy_to_path ? copy_into(o->write_to, o->path) : rename(o->write_to, o->path) == 0;
    if (!ok) diag_fatal_noloc("cannot write %s: %s", o->path, strerror(errno));
    if (!ok || o->copy_to_path) unlink(o->write_to);
    o->staged = false;
    return ok;
}

void outfile_discard(OutFile *o) {
    if (o->staged) unlink(o->write_to);
    o->staged = false;
}

bool outfile_write_all(const char *path, const void *data, size_t n) {
    OutFile o;
    if (!outfile_begin(&o, path, false)) return false;
    int fd = open(o.write_to, O_WRONLY | O_TRUNC | O_CLOEXEC);
    bool ok = fd >= 0 && write_fully(fd, data, n);
    int saved = errno;
    if (fd >= 0 && close(fd) != 0 && ok) ok = false, saved = errno;
    if (!ok) {
        diag_fatal_noloc("cannot write %s: %s", path, strerror(saved));
        outfile_discard(&o);
        return false;
    }
    return outfile_commit(&o);
}

/* ---- counters ---- */

/* The peak resident bytes that are not file pages: the heap and stacks the compiler itself
 * grew. The peak RSS alone also counts the pages of libLLVM that happen to be mapped, which
 * depends on the page cache and varies by megabytes from run to run. File pages are only
 * added while the compiler runs, so the current count is the one at the peak. 0 where
 * /proc/self/status is missing. */
static long long peak_anon_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    long long peak_kb = -1, file_kb = 0, shmem_kb = 0;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "VmHWM: %lld", &peak_kb);
        sscanf(line, "RssFile: %lld", &file_kb);
        sscanf(line, "RssShmem: %lld", &shmem_kb);
    }
    fclose(f);
    long long anon_kb = peak_kb - file_kb - shmem_kb;
    return peak_kb < 0 || anon_kb < 0 ? 0 : anon_kb * 1024;
}

void stats_report(void) {
    const char *on = getenv("NNC_STATS");
    if (!on || !*on || !strcmp(on, "0")) return;
    const NncStats *s = &nnc_stats;
    fprintf(stderr,
            "nnc: stats: source_bytes=%lld tokens=%lld ast_nodes=%lld exprs_lowered=%lld "
            "ir_values=%lld hash_probes=%lld plan_visits=%lld largest_loop=%lld "
            "llvm_insts=%lld llvm_insts_optimised=%lld arena_bytes=%lld "
            "peak_anon_bytes=%lld\n",
            (long long)s->source_bytes, (long long)s->tokens, (long long)s->ast_nodes,
            (long long)s->exprs_lowered, (long long)s->ir_values, (long long)s->hash_probes,
            (long long)s->plan_visits, (long long)s->largest_loop, (long long)s->llvm_insts,
            (long long)s->llvm_insts_optimised, (long long)s->arena_bytes, peak_anon_bytes());
}
