/* common.c: source files, diagnostics with carets, the arena. */
#include "common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
    size = (size + 15) & ~(size_t)15;
    if (!blocks || blocks->used + size > blocks->size) {
        size_t block_size = size > (1u << 20) ? size : (1u << 20);
        Block *b = malloc(sizeof(Block) + block_size);
        if (!b) out_of_memory();
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

void xalloc_free_all(void) {
    while (blocks) {
        Block *next = blocks->next;
        free(blocks);
        blocks = next;
    }
}

/* ---- source files ---- */

SrcFile *srcfile_from_text(const char *path, const char *text) {
    SrcFile *f = xalloc(sizeof *f);
    f->path = xstrdup(path);
    f->len = strlen(text);
    f->text = xstrndup(text, f->len);
    return f;
}

SrcFile *srcfile_read(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) out_of_memory();
    size_t n;
    while ((n = fread(buf + len, 1, cap - len, fp)) > 0) {
        len += n;
        if (len == cap) {
            char *bigger = realloc(buf, cap *= 2);
            if (!bigger) out_of_memory();
            buf = bigger;
        }
    }
    int failed = ferror(fp);
    int saved_errno = errno;
    fclose(fp);
    if (failed) {
        free(buf);
        errno = saved_errno ? saved_errno : EIO;
        return NULL;
    }
    SrcFile *f = xalloc(sizeof *f);
    f->path = xstrdup(path);
    f->len = len;
    f->text = xstrndup(buf, len);
    free(buf);
    return f;
}

/* ---- diagnostics ---- */

static int error_count;

int diag_error_count(void) {
    return error_count;
}

/* Prints the source line of loc and a caret under its column. Tabs in the line are kept
 * in the caret line so the caret lands under the right character. */
static void print_source_line(SrcLoc loc) {
    if (!loc.file || loc.line <= 0) return;
    const char *p = loc.file->text, *end = p + loc.file->len;
    for (int line = 1; line < loc.line && p < end; p++)
        if (*p == '\n') line++;
    if (p >= end && loc.line > 1) return;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    fprintf(stderr, "  %.*s\n  ", (int)(eol - p), p);
    for (int i = 1; i < loc.col && p + i - 1 < eol; i++)
        fputc(p[i - 1] == '\t' ? '\t' : ' ', stderr);
    fputs("^\n", stderr);
}

static void vreport(const char *kind, SrcLoc loc, const char *fmt, va_list ap) {
    if (loc.file)
        fprintf(stderr, "%s:%d:%d: %s: ", loc.file->path, loc.line, loc.col, kind);
    else
        fprintf(stderr, "nnc: %s: ", kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    print_source_line(loc);
}

static bool suppressed; /* past DIAG_MAX_ERRORS: notes and hints of hidden errors are hidden too */

void diag_reset(void) {
    error_count = 0;
    suppressed = false;
}

void diag_error(SrcLoc loc, const char *fmt, ...) {
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
    suppressed = false;
    va_list ap;
    va_start(ap, fmt);
    vreport("warning", loc, fmt, ap);
    va_end(ap);
}

void diag_note(SrcLoc loc, const char *fmt, ...) {
    if (suppressed) return;
    va_list ap;
    va_start(ap, fmt);
    vreport("note", loc, fmt, ap);
    va_end(ap);
}

void diag_hint(const char *fmt, ...) {
    if (suppressed) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("  hint: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void diag_fatal_noloc(const char *fmt, ...) {
    error_count++;
    va_list ap;
    va_start(ap, fmt);
    fputs("nnc: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}
