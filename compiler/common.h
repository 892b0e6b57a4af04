/* common.h: what every stage of the compiler shares: source locations, diagnostics,
 * memory, growable arrays. */
#ifndef NNC_COMMON_H
#define NNC_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- source files and locations ---- */

typedef struct SrcFile {
    const char *path; /* as given on the command line, or the stdlib path */
    char *text;       /* whole file, NUL-terminated */
    size_t len;
} SrcFile;

typedef struct SrcLoc {
    const SrcFile *file; /* NULL for compiler-made things */
    int line, col;       /* 1-based; col counts bytes */
} SrcLoc;

/* Reads a whole file; NULL (and errno set) when it cannot. Kept for the whole run. */
SrcFile *srcfile_read(const char *path);
/* A file from text in memory (tests, embedded stdlib). */
SrcFile *srcfile_from_text(const char *path, const char *text);

/* ---- diagnostics ----
 * error/warning/note print "file:line:col: error: message", the source line and a caret
 * under the column. Errors are counted; a stage checks diag_error_count() before the next
 * stage runs, so one bad file reports several errors but never reaches codegen. */
void diag_error(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_warning(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void diag_note(SrcLoc loc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A hint line ("  hint: ...") under the last diagnostic. */
void diag_hint(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An error with no location: "nnc: error: message". */
void diag_fatal_noloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int diag_error_count(void);
/* No errors counted: for a driver that runs again in the same process. */
void diag_reset(void);
/* Errors beyond this many are not printed (the count still grows). */
#define DIAG_MAX_ERRORS 20

/* ---- memory ----
 * The compiler allocates from one arena and frees it all at exit: a compiler run is short,
 * and this keeps every stage free of ownership bookkeeping. Out of memory aborts with a
 * message. */
void *xalloc(size_t size); /* zeroed */
void *xrealloc_array(void *old, size_t old_count, size_t new_count, size_t elem_size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
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

#endif
