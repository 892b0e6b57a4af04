/* json.c: the small JSON reader of json.h. Every read checks the cursor against the end,
 * so a header that lies about its contents cannot make us read past it. */
#include "json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

#define JSON_MAX_DEPTH 64

void rt_json_init(rt_json *j, const char *path, const char *text, size_t len,
                  uint64_t file_offset) {
    j->path = path;
    j->start = j->p = text;
    j->end = text + len;
    j->file_offset = file_offset;
}

void rt_json_error(const rt_json *j, const char *fmt, ...) {
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    rt_byte_error(j->path, j->file_offset + (uint64_t)(j->p - j->start), "safetensors header: %s",
                  message);
}

static void skip_ws(rt_json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int peek(rt_json *j) {
    skip_ws(j);
    return j->p < j->end ? (unsigned char)*j->p : -1;
}

int rt_json_peek(rt_json *j) {
    return peek(j);
}

int rt_json_accept(rt_json *j, char c) {
    if (peek(j) != (unsigned char)c) return 0;
    j->p++;
    return 1;
}

void rt_json_expect(rt_json *j, char c) {
    if (!rt_json_accept(j, c)) {
        if (j->p >= j->end) rt_json_error(j, "expected '%c', found the end", c);
        rt_json_error(j, "expected '%c', found '%c'", c, *j->p);
    }
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static unsigned read_hex4(rt_json *j) {
    if (j->end - j->p < 4) rt_json_error(j, "short \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = hex_digit(j->p[i]);
        if (d < 0) rt_json_error(j, "bad \\u escape");
        v = v << 4 | (unsigned)d;
    }
    j->p += 4;
    return v;
}

/* Appends code point cp as UTF-8. */
static char *put_utf8(char *out, unsigned cp) {
    if (cp < 0x80) {
        *out++ = (char)cp;
    } else if (cp < 0x800) {
        *out++ = (char)(0xC0 | cp >> 6);
        *out++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *out++ = (char)(0xE0 | cp >> 12);
        *out++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *out++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *out++ = (char)(0xF0 | cp >> 18);
        *out++ = (char)(0x80 | (cp >> 12 & 0x3F));
        *out++ = (char)(0x80 | (cp >> 6 & 0x3F));
        *out++ = (char)(0x80 | (cp & 0x3F));
    }
    return out;
}

/* After a backslash. A surrogate pair becomes one code point. */
static char *unescape(rt_json *j, char *out) {
    if (j->p >= j->end) rt_json_error(j, "unterminated string");
    char c = *j->p++;
    switch (c) {
    case '"':
    case '\\':
    case '/': *out++ = c; return out;
    case 'b': *out++ = '\b'; return out;
    case 'f': *out++ = '\f'; return out;
    case 'n': *out++ = '\n'; return out;
    case 'r': *out++ = '\r'; return out;
    case 't': *out++ = '\t'; return out;
    case 'u': break;
    default: rt_json_error(j, "bad escape '\\%c'", c);
    }
    unsigned cp = read_hex4(j);
    if (cp >= 0xD800 && cp < 0xDC00 && j->end - j->p >= 2 && j->p[0] == '\\' && j->p[1] == 'u') {
        j->p += 2;
        unsigned low = read_hex4(j);
        if (low < 0xDC00 || low > 0xDFFF) rt_json_error(j, "bad surrogate pair");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    return put_utf8(out, cp);
}

char *rt_json_string(rt_json *j) {
    rt_json_expect(j, '"');
    /* Unescaped text is never longer than the escaped text (a \u escape is 6 bytes, at
     * most 3 in UTF-8; a surrogate pair is 12, at most 4), so the raw length bounds it. */
    const char *raw_end = j->p;
    while (raw_end < j->end && *raw_end != '"') raw_end += *raw_end == '\\' ? 2 : 1;
    if (raw_end > j->end) raw_end = j->end;
    char *buf = rt_alloc((size_t)(raw_end - j->p) + 1);
    char *out = buf;
    for (;;) {
        if (j->p >= j->end) rt_json_error(j, "unterminated string");
        char c = *j->p++;
        if (c == '"') break;
        if ((unsigned char)c < 0x20) rt_json_error(j, "control character in a string");
        if (c == '\\')
            out = unescape(j, out);
        else
            *out++ = c;
    }
    *out = '\0';
    return buf;
}

uint64_t rt_json_uint(rt_json *j) {
    if (peek(j) < '0' || peek(j) > '9') rt_json_error(j, "expected a non-negative integer");
    uint64_t v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        v = v * 10 + (uint64_t)(*j->p++ - '0');
        if (v > (1ull << 53)) rt_json_error(j, "integer too large");
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        rt_json_error(j, "expected an integer");
    return v;
}

static void skip_literal(rt_json *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        rt_json_error(j, "unexpected character '%c'", *j->p);
    j->p += n;
}

static void skip_number(rt_json *j) {
    const char *begin = j->p;
    while (j->p < j->end && strchr("+-0123456789.eE", *j->p) && *j->p) j->p++;
    if (j->p == begin) rt_json_error(j, "unexpected character '%c'", *j->p);
}

static void skip_value(rt_json *j, int depth) {
    if (depth > JSON_MAX_DEPTH) rt_json_error(j, "nested too deeply");
    int c = peek(j);
    if (c < 0) rt_json_error(j, "expected a value, found the end");
    if (c == '"') {
        rt_free(rt_json_string(j));
    } else if (c == '{') {
        j->p++;
        if (rt_json_accept(j, '}')) return;
        do {
            rt_free(rt_json_string(j));
            rt_json_expect(j, ':');
            skip_value(j, depth + 1);
        } while (rt_json_accept(j, ','));
        rt_json_expect(j, '}');
    } else if (c == '[') {
        j->p++;
        if (rt_json_accept(j, ']')) return;
        do skip_value(j, depth + 1);
        while (rt_json_accept(j, ','));
        rt_json_expect(j, ']');
    } else if (c == 't') {
        skip_literal(j, "true");
    } else if (c == 'f') {
        skip_literal(j, "false");
    } else if (c == 'n') {
        skip_literal(j, "null");
    } else {
        skip_number(j);
    }
}

void rt_json_skip_value(rt_json *j) {
    skip_value(j, 0);
}

void rt_json_expect_end(rt_json *j) {
    if (peek(j) >= 0) rt_json_error(j, "unexpected '%c' after the header object", *j->p);
}
