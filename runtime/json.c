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

/* The character at the cursor, for "found 'x'" (escaped: it may be a NUL or not UTF-8). */
static const char *found(const rt_json *j, char *buf, size_t size) {
    size_t n = rt_utf8_length((const unsigned char *)j->p, (const unsigned char *)j->end);
    return rt_printable(buf, size, j->p, n ? n : 1);
}

void rt_json_expect(rt_json *j, char c) {
    if (!rt_json_accept(j, c)) {
        if (j->p >= j->end) rt_json_error(j, "expected '%c', found the end", c);
        char buf[16];
        rt_json_error(j, "expected '%c', found '%s'", c, found(j, buf, sizeof buf));
    }
}

uint64_t rt_json_offset(const rt_json *j) {
    return j->file_offset + (uint64_t)(j->p - j->start);
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

/* After a backslash. A surrogate pair becomes one code point; half of one is not a
 * character, and not UTF-8 when encoded, so it is an error. */
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
    default: {
        char buf[16];
        j->p--;
        rt_json_error(j, "bad escape '\\%s'", found(j, buf, sizeof buf));
    }
    }
    unsigned cp = read_hex4(j);
    if (cp >= 0xDC00 && cp <= 0xDFFF) rt_json_error(j, "a lone low surrogate in a \\u escape");
    if (cp >= 0xD800 && cp < 0xDC00) {
        if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
            rt_json_error(j, "a high surrogate without its low half in a \\u escape");
        j->p += 2;
        unsigned low = read_hex4(j);
        if (low < 0xDC00 || low > 0xDFFF) rt_json_error(j, "bad surrogate pair");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    return put_utf8(out, cp);
}

char *rt_json_string(rt_json *j, size_t *len) {
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
        unsigned char c = (unsigned char)*j->p;
        if (c == '"') break;
        if (c < 0x20) rt_json_error(j, "control character in a string");
        if (c == '\\') {
            j->p++;
            out = unescape(j, out);
            continue;
        }
        /* JSON text is UTF-8 (RFC 8259); so is a safetensors header */
        size_t n = rt_utf8_length((const unsigned char *)j->p, (const unsigned char *)j->end);
        if (n == 0) rt_json_error(j, "byte 0x%02x in a string is not UTF-8", c);
        memcpy(out, j->p, n);
        out += n;
        j->p += n;
    }
    j->p++;
    *out = '\0';
    if (len) *len = (size_t)(out - buf);
    return buf;
}

static int is_digit(const rt_json *j) {
    return j->p < j->end && *j->p >= '0' && *j->p <= '9';
}

uint64_t rt_json_uint(rt_json *j) {
    if (peek(j) < '0' || peek(j) > '9') rt_json_error(j, "expected a non-negative integer");
    if (*j->p == '0' && j->end - j->p > 1 && j->p[1] >= '0' && j->p[1] <= '9')
        rt_json_error(j, "a number with a leading zero");
    uint64_t v = 0;
    while (is_digit(j)) {
        v = v * 10 + (uint64_t)(*j->p++ - '0');
        if (v > (1ull << 53)) rt_json_error(j, "integer too large");
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
        rt_json_error(j, "expected an integer");
    return v;
}

static void skip_literal(rt_json *j, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0) {
        char buf[16];
        rt_json_error(j, "unexpected character '%s'", found(j, buf, sizeof buf));
    }
    j->p += n;
}

static void skip_digits(rt_json *j) {
    if (!is_digit(j)) rt_json_error(j, "a number lacks digits");
    while (is_digit(j)) j->p++;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static void skip_number(rt_json *j) {
    if (j->p < j->end && *j->p == '-') j->p++;
    if (!is_digit(j)) {
        char buf[16];
        if (j->p >= j->end) rt_json_error(j, "expected a value, found the end");
        rt_json_error(j, "unexpected character '%s'", found(j, buf, sizeof buf));
    }
    if (*j->p == '0')
        j->p++;
    else
        skip_digits(j);
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        skip_digits(j);
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        skip_digits(j);
    }
}

static void skip_value(rt_json *j, int depth) {
    if (depth > JSON_MAX_DEPTH) rt_json_error(j, "nested too deeply");
    int c = peek(j);
    if (c < 0) rt_json_error(j, "expected a value, found the end");
    if (c == '"') {
        rt_free(rt_json_string(j, NULL));
    } else if (c == '{') {
        j->p++;
        if (rt_json_accept(j, '}')) return;
        do {
            rt_free(rt_json_string(j, NULL));
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
    char buf[16];
    if (peek(j) >= 0)
        rt_json_error(j, "unexpected '%s' after the header object", found(j, buf, sizeof buf));
}
