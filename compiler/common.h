/* common.h: what every stage of the compiler shares: limits, source locations, diagnostics,
 * memory, growable arrays and strings, hash tables, output files, work counters. */
#ifndef NNC_COMMON_H
#define NNC_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "suggest.h" /* runtime/suggest.h: "did you mean", shared with the runtime */

/* ---- limits ----
 * Every limit the compiler enforces on its input, in one place. Each is reported as a
 * located error when crossed, and docs/language.md ("Limits") states them for users. */

/* The source files of one run (the model file and everything it imports) together. */
#define NNC_MAX_SOURCE_BYTES (4 * 1024 * 1024)
/* Imports nested deeper than this (a.nn imports b.nn imports c.nn ...) are refused. */
#define NNC_MAX_IMPORT_DEPTH 64
/* Elements of one tensor, per sample: every dimension and every per-sample matrix size then
 * fits BLAS's int arguments. */
#define NNC_MAX_TENSOR_ELEMS INT64_C(2147483647)
/* Each of the two arenas of the memory plan (fixed; varying, per sample), in elements. */
#define NNC_MAX_ARENA_ELEMS (INT64_C(1) << 40)
/* Expressions lowering evaluates for one model, counting a fn's body once per call it is
 * inlined at: the size of the inlined program. */
#define NNC_MAX_INLINED_EXPRS (1 << 18)
/* Calls nested deeper than this (recursion, in practice) are refused. */
#define NNC_MAX_CALL_DEPTH 64
/* The most steps one scan unrolls (lower.c): the steps' bodies also count towards
 * NNC_MAX_INLINED_EXPRS, which a scan checks after its first step. */
#define NNC_MAX_SCAN_STEPS 4096

/* ---- checked arithmetic: false when the exact result does not fit ---- */

static inline bool checked_mul(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool checked_add(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* ---- source files and locations ---- */

typedef struct SrcFile {
    const char *path; /* as given on the command line, or the stdlib path */
    char *text;       /* whole file, NUL-terminated */
    size_t len;
    size_t *line_start; /* line_start[i]: the offset where line i + 1 begins */
    int n_lines;
    bool on_disk; /* read by srcfile_read: dev and ino identify the file */
    dev_t dev;
    ino_t ino;
} SrcFile;

typedef struct SrcLoc {
    const SrcFile *file; /* NULL for compiler-made things */
    int line, col;       /* 1-based; col counts bytes */
} SrcLoc;

/* Reads a whole regular file of at most NNC_MAX_SOURCE_BYTES (less what the run has read
 * already); NULL when it cannot, and srcfile_error() says why. Kept for the whole run. */
SrcFile *srcfile_read(const char *path);
/* Why the last srcfile_read failed: "No such file or directory", "not a regular file", ... */
const char *srcfile_error(void);
/* A file from text in memory (tests, embedded stdlib). */
SrcFile *srcfile_from_text(const char *path, const char *text);
/* The byte offset of (line, col) in f, clamped to its length: O(1). */
size_t srcfile_offset(const SrcFile *f, int line, int col);
/* The files srcfile_read has read in this run, in order. */
int srcfile_count(void);
const SrcFile *srcfile_at(int i);

/* ---- diagnostics ----
 * error/warning/note print "file:line:col: error: message", the source line and a caret
 * under the column (a long line is cut to a window around the caret). Errors are counted; a
 * stage checks diag_error_count() before the next stage runs, so one bad file reports
 * several errors but never reaches codegen. */
void diag_error(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_warning(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_note(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A hint line ("  hint: ...") under the last diagnostic. */
void diag_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "  hint: did you mean BEST?" under the last diagnostic when s found a candidate near
 * enough (suggest.h); false, printing nothing, when it did not. */
bool diag_did_you_mean(const Suggestion *s);
/* An error with no location: "nnc: error: message". */
void diag_fatal_noloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int diag_error_count(void);
/* No errors counted: for a driver that runs again in the same process. */
void diag_reset(void);
/* Errors beyond this many are not printed (the count still grows), and the parser stops. */
#define DIAG_MAX_ERRORS 20
/* True once more than DIAG_MAX_ERRORS errors were reported: stop looking for more. */
bool diag_too_many(void);
/* Held diagnostics, for a stage that tries something and only needs to know why it did not
 * work (the one-step form `sample` runs, main.c): between diag_hold and diag_release nothing
 * is printed, and errors are not counted; diag_release returns the first error as
 * "file:line:col: message", or NULL when there was none. */
void diag_hold(void);
const char *diag_release(void);
/* A message longer than this many bytes is cut, with "..." */
#define DIAG_MAX_MESSAGE 1024
/* A source line longer than this many columns is shown as a window around the caret. */
#define DIAG_MAX_LINE 160

/* ---- memory ----
 * The compiler allocates from one arena and frees it all at exit: a compiler run is short,
 * and this keeps every stage free of ownership bookkeeping. Out of memory aborts with a
 * message. */
void *xalloc(size_t size); /* zeroed */
void *xrealloc_array(void *old, size_t old_count, size_t new_count, size_t elem_size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Frees the arena and forgets everything that pointed into it (the files read). */
void xalloc_free_all(void);

/* A growable array of pointers: VEC(Foo *) list; vec_push(&list, p); list.v[i]. */
#define VEC(T)                                                                                     \
    struct {                                                                                       \
        T *v;                                                                                      \
        int n, cap;                                                                                \
    }
#define vec_push(vec, x)                                                                           \
    do {                                                                                           \
        if ((vec)->n == (vec)->cap) {                                                              \
            int new_cap_ = (vec)->cap ? 2 * (vec)->cap : 8;                                        \
            (vec)->v =                                                                             \
                xrealloc_array((vec)->v, (size_t)(vec)->cap, (size_t)new_cap_, sizeof(*(vec)->v)); \
            (vec)->cap = new_cap_;                                                                 \
        }                                                                                          \
        (vec)->v[(vec)->n++] = (x);                                                                \
    } while (0)

/* A growable string in the arena: appending is amortised O(1), so text built piece by
 * piece costs its length, not its length squared. */
typedef struct StrBuf {
    char *s;
    size_t n, cap;
} StrBuf;
void sb_add(StrBuf *b, const char *s, size_t len);
void sb_puts(StrBuf *b, const char *s);
void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text so far ("" when empty); stays valid, and grows no more once taken. */
char *sb_str(StrBuf *b);

/* ---- hash tables ----
 * One open-addressing table serves every stage: keys are strings, pointers, or anything
 * the caller hashes and compares (simplify.c's CSE compares instructions). It grows at half
 * full and lives in the arena. */
typedef struct HashEntry {
    uint64_t hash;
    const void *key; /* NULL: an empty slot */
    void *value;
} HashEntry;

typedef struct HashMap {
    HashEntry *slots;
    size_t cap, count;
} HashMap;

/* Whether the key looked for equals a stored one; NULL compares the pointers. */
typedef bool (*HashEq)(const void *wanted, const void *stored);

/* The entry of key (hash h): found, else made (value NULL) when add is set, else NULL. */
HashEntry *hash_find(HashMap *m, uint64_t h, const void *key, HashEq eq, bool add);
uint64_t hash_bytes(const void *p, size_t n);
uint64_t hash_mix(uint64_t h); /* spreads the bits of an integer or a pointer */

void *strmap_get(HashMap *m, const char *key);
void strmap_put(HashMap *m, const char *key, void *value);
void *ptrmap_get(HashMap *m, const void *key);
void ptrmap_put(HashMap *m, const void *key, void *value);

/* ---- output files ----
 * An output is written in full to a staging file beside it, then renamed over it: a failed
 * run leaves no partial file, and a file that was there stays as it was. "-" (stdout) and
 * what is not a regular file (/dev/null, a pipe) are written directly, never replaced nor
 * removed. An output that is one of the source files read (same device and inode) is
 * refused before anything is written. */
typedef struct OutFile {
    const char *path;     /* as given */
    const char *write_to; /* where the writer puts the bytes; NULL: stdout itself */
    bool staged;          /* write_to is a staging file of ours */
    bool copy_to_path;    /* staged, and copied into path (a device, stdout) at the end */
} OutFile;

/* Starts an output. stream: the writer can write to path as it goes (text); otherwise it
 * needs a file it may reopen, truncate or replace (an object, an executable). False after
 * "nnc: error: ..." */
bool outfile_begin(OutFile *o, const char *path, bool stream);
/* Puts the finished output in place (rename, or copy into a device); false after an error,
 * and then nothing is left behind. */
bool outfile_commit(OutFile *o);
/* Removes what outfile_begin made; the path itself is never touched. */
void outfile_discard(OutFile *o);
/* outfile_begin + checked writes of n bytes + outfile_commit. */
bool outfile_write_all(const char *path, const void *data, size_t n);
/* False (after an error naming both) when path is a source file this run has read. */
bool output_is_not_a_source(const char *path);

/* ---- counters of work and memory ----
 * With NNC_STATS=1 in the environment, nnc prints them when it exits (docs/architecture.md):
 * tests compare runs on inputs of growing size to check the compiler stays linear. */
typedef struct NncStats {
    int64_t source_bytes;         /* read from disk */
    int64_t tokens;               /* returned by the lexer */
    int64_t ast_nodes;            /* made by the parser */
    int64_t exprs_lowered;        /* expressions evaluated by lowering (inlined bodies each time) */
    int64_t ir_values;            /* IR values made, by every stage */
    int64_t hash_probes;          /* slots looked at by hash_find */
    int64_t plan_visits;          /* nodes visited by the memory plan's interval tree */
    int64_t largest_loop;         /* members of the largest fused elementwise loop */
    int64_t llvm_insts;           /* LLVM instructions generated, before optimisation */
    int64_t llvm_insts_optimised; /* the same after optimisation */
    int64_t arena_bytes;          /* allocated by the arena */
} NncStats;
extern NncStats nnc_stats;
/* Prints the counters to stderr when NNC_STATS is set. */
void stats_report(void);

#endif
