/* json.h: just enough of a JSON reader for the safetensors header: a cursor over the text
 * with functions that read one token or skip one value. Any syntax error is fatal:
 * "PATH:byte N: error: safetensors header: ..." with N the offset in the file. */
#ifndef NNRT_JSON_H
#define NNRT_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_json {
    const char *path;
    const char *start, *p, *end;
    uint64_t file_offset; /* where start lies in the file, for messages */
} rt_json;

void rt_json_init(rt_json *j, const char *path, const char *text, size_t len, uint64_t file_offset);
_Noreturn void rt_json_error(const rt_json *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Skips white space; the next character, or -1 at the end. */
int rt_json_peek(rt_json *j);
/* Skips white space; consumes c and returns 1 if it comes next, else returns 0. */
int rt_json_accept(rt_json *j, char c);
/* Like accept, but an error when c does not come next. */
void rt_json_expect(rt_json *j, char c);
/* A string, unescaped, NUL-terminated in a tracked buffer; *len (when len is not NULL) is
 * its length, which counts any NULs within it (\u0000). Raw text must be UTF-8. */
char *rt_json_string(rt_json *j, size_t *len);
/* A non-negative integer of at most 2^53 (JSON numbers beyond that are not exact). */
uint64_t rt_json_uint(rt_json *j);
/* Any value, nested at most 64 deep. */
void rt_json_skip_value(rt_json *j);
/* Where the cursor is, as a file offset. */
uint64_t rt_json_offset(const rt_json *j);
/* Only white space remains. */
void rt_json_expect_end(rt_json *j);

#endif
