/* text.c: character-level text data (see text.h). The text is decoded as UTF-8 in two
 * passes over its bytes: the first checks every character and notes which occur, the second
 * stores each one's id. Ids are int32, 4 bytes a character, whatever the model's type; a
 * window becomes floats (or one-hot rows) only in the batch it is copied into. */
#include "text.h"

#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "files.h"
#include "model.h"
#include "util.h"

#define N_CODE_POINTS 0x110000u

int rt_is_text_model(const nnrt_model *m) {
    return m->train.data_kind && strcmp(m->train.data_kind, "text") == 0;
}

/* [seq] (ids) or [seq, vocab] (one-hot): whether one-hot. */
static int text_tensor_one_hot(const nnrt_tensor *t, int64_t seq, int64_t vocab) {
    if (t->rank == 1 && t->dims[0] == seq) return 0;
    if (t->rank == 2 && t->dims[0] == seq && t->dims[1] == vocab) return 1;
    rt_fatal("model descriptor: text data feeds '%s' a window of %lld characters: its shape must "
             "be [%lld] (ids) or [%lld, %lld] (one-hot)",
             t->name, (long long)seq, (long long)seq, (long long)seq, (long long)vocab);
}

rt_text_shape rt_text_shape_of(const nnrt_model *m) {
    if (m->n_inputs != 1 || m->n_targets > 1)
        rt_fatal("model descriptor: text data needs one input and at most one target, the model "
                 "has %d and %d",
                 m->n_inputs, m->n_targets);
    rt_text_shape s = {m->inputs[0].rank >= 1 ? m->inputs[0].dims[0] : 0, m->train.vocab, 0, 0};
    if (s.vocab < 1 || s.vocab > (int64_t)N_CODE_POINTS)
        rt_fatal("model descriptor: text data needs a vocabulary size of 1..%u, got %lld",
                 N_CODE_POINTS, (long long)s.vocab);
    s.input_one_hot = text_tensor_one_hot(&m->inputs[0], s.seq, s.vocab);
    if (m->n_targets == 1) s.target_one_hot = text_tensor_one_hot(&m->targets[0], s.seq, s.vocab);
    return s;
}

/* ---- reading ---- */

/* Text as it arrives (a pipe, gzip data inflating): no NUL byte, not UTF-16. */
static void check_text(const char *path, const char *bytes, size_t seen, size_t len, void *state) {
    (void)state;
    if (rt_starts_with(bytes, len, RT_GZIP_MAGIC, 2) != 0) return; /* gzip: checked inflated */
    rt_check_utf8_text(path, bytes, seen, len, 0, "text data", "UTF-8", "text");
}

/* The file's bytes, inflated when gzip'd. A tenth of the memory budget at most: the ids take
 * 4 bytes a character beside the bytes while they are encoded, so the two stay within half
 * of it, as a CSV file and its values do. */
static char *read_text_file(const char *path, size_t *len) {
    rt_read_limits lim = {rt_memory_budget() / 10, "a text file",
                          "a tenth of the memory this process may use: its characters take 4 "
                          "bytes each as ids",
                          check_text, NULL};
    return rt_inflated(path, rt_read_file(path, len, &lim), len, &lim);
}

/* ---- decoding ---- */

/* The code point of the well-formed UTF-8 sequence p[0..n). */
static uint32_t decode(const unsigned char *p, size_t n) {
    if (n == 1) return p[0];
    uint32_t c = p[0] & (0x7Fu >> n);
    for (size_t i = 1; i < n; i++) c = c << 6 | (p[i] & 0x3Fu);
    return c;
}

/* A character for a message: 'x' (escaped when it is a control character) and U+XXXX. */
typedef struct shown_char {
    char s[40];
} shown_char;

/* Character c as UTF-8 in out (room for 4 bytes); returns the number of bytes. */
size_t rt_put_utf8(uint32_t c, char *out) {
    size_t n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    static const unsigned char lead[] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (size_t i = n; i-- > 1; c >>= 6) out[i] = (char)(0x80 | (c & 0x3F));
    out[0] = (char)(n == 1 ? c : (lead[n] | c));
    return n;
}

static shown_char show_char(uint32_t c) {
    char utf8[4], printable[16];
    rt_printable(printable, sizeof printable, utf8, rt_put_utf8(c, utf8));
    shown_char out;
    snprintf(out.s, sizeof out.s, "'%s' (U+%04X)", printable, (unsigned)c);
    return out;
}

/* Walks the characters of a text, keeping the line and column (1-based, in characters) of
 * the current one for messages. */
typedef struct reader {
    const char *path;
    const unsigned char *p, *end;
    int64_t line, column;
} reader;

/* The next character, or -1 at the end; a byte that does not start a well-formed UTF-8
 * character is an error at its line and column. */
static int64_t next_char(reader *r) {
    if (r->p >= r->end) return -1;
    size_t n = rt_utf8_length(r->p, r->end);
    if (n == 0)
        rt_line_error(r->path, r->line,
                      "column %lld: byte 0x%02x is not UTF-8; text data is read as UTF-8 "
                      "characters",
                      (long long)r->column, *r->p);
    uint32_t c = decode(r->p, n);
    if (c == 0)
        rt_line_error(r->path, r->line, "column %lld: a NUL byte: this is not text",
                      (long long)r->column);
    r->p += n;
    return c;
}

/* Moves the position past character c. */
static void advance(reader *r, int64_t c) {
    if (c == '\n')
        r->line++, r->column = 1;
    else
        r->column++;
}

static reader start(const char *path, const char *bytes, size_t len) {
    reader r = {path, (const unsigned char *)bytes, (const unsigned char *)bytes + len, 1, 1};
    if (len >= 3 && memcmp(bytes, "\xEF\xBB\xBF", 3) == 0) r.p += 3; /* a byte-order mark */
    if (r.end - r.p >= 2 &&
        ((r.p[0] == 0xFF && r.p[1] == 0xFE) || (r.p[0] == 0xFE && r.p[1] == 0xFF)))
        rt_byte_error(path, 0,
                      "the file is UTF-16 text; text data is read as UTF-8 (save it as "
                      "UTF-8)");
    return r;
}

/* The id of c in the vocabulary, or -1. */
static int32_t find_char(const rt_vocab *v, uint32_t c) {
    int32_t lo = 0, hi = v->n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (v->chars[mid] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < v->n && v->chars[lo] == c ? lo : -1;
}

void rt_text_encode(const char *path, const char *bytes, size_t len, rt_vocab *vocab,
                    const char *vocab_source, int32_t **ids, int64_t *n_ids) {
    /* Pass 1: every character well-formed; how many; which occur. */
    unsigned char *seen = rt_alloc(N_CODE_POINTS / 8);
    reader r = start(path, bytes, len);
    int64_t n = 0;
    for (int64_t c; (c = next_char(&r)) >= 0; n++) {
        seen[c / 8] |= (unsigned char)(1u << (c % 8));
        advance(&r, c);
    }
    if (n == 0) rt_path_error(path, "the text is empty");
    int given = vocab->n > 0;
    if (!given) {
        int32_t count = 0;
        for (uint32_t c = 0; c < N_CODE_POINTS; c++) count += (seen[c / 8] >> (c % 8)) & 1;
        vocab->chars = rt_alloc_array((size_t)count, sizeof *vocab->chars);
        for (uint32_t c = 0; c < N_CODE_POINTS; c++)
            if ((seen[c / 8] >> (c % 8)) & 1) vocab->chars[vocab->n++] = c;
    }
    rt_free(seen);
    /* Pass 2: the ids. */
    *ids = rt_alloc_array((size_t)n, sizeof **ids);
    r = start(path, bytes, len);
    for (int64_t i = 0, c; (c = next_char(&r)) >= 0; i++) {
        int32_t id = find_char(vocab, (uint32_t)c);
        if (id < 0)
            rt_line_error(path, r.line,
                          "column %lld: character %s is not in the vocabulary (%d characters) "
                          "of %s",
                          (long long)r.column, show_char((uint32_t)c).s, vocab->n, vocab_source);
        (*ids)[i] = id;
        advance(&r, c);
    }
    *n_ids = n;
}

void rt_text_read(const nnrt_model *m, const char *path, rt_vocab *vocab, const char *vocab_source,
                  int32_t **ids, int64_t *n_ids) {
    rt_text_shape shape = rt_text_shape_of(m);
    if (vocab->n > shape.vocab)
        rt_fatal("%s has a vocabulary of %d characters, more than model '%s' takes (%lld)",
                 vocab_source, vocab->n, m->name, (long long)shape.vocab);
    size_t len;
    char *bytes = read_text_file(path, &len);
    rt_text_encode(path, bytes, len, vocab, vocab_source, ids, n_ids);
    rt_free(bytes);
    if (vocab->n > shape.vocab)
        rt_path_error(path,
                      "the text has %d different characters, more than the vocabulary of model "
                      "'%s' (%lld): declare at least %d, text(..., vocab = %d) or one-hot "
                      "%s[%lld, %d]",
                      vocab->n, m->name, (long long)shape.vocab, vocab->n, vocab->n,
                      m->inputs[0].name, (long long)shape.seq, vocab->n);
}

const char *rt_vocab_source(const char *what, const char *path) {
    size_t size = strlen(what) + strlen(rt_display_path(path)) + 2;
    char *s = rt_alloc(size);
    snprintf(s, size, "%s %s", what, rt_display_path(path));
    return s;
}

rt_text_data rt_load_text(const nnrt_model *m, const char *data, const rt_vocab *vocab,
                          const char *vocab_source) {
    rt_text_data t = {data ? data : m->train.data_path, NULL, 0, {0, NULL}};
    if (!t.path) rt_usage_error("no data file: give --data PATH");
    if (rt_is_dash(t.path)) t.path = NULL; /* standard input */
    if (vocab) t.vocab = *vocab;
    rt_text_read(m, t.path, &t.vocab, vocab_source, &t.ids, &t.n_ids);
    return t;
}

/* ---- windows ---- */

void rt_text_dataset(const nnrt_model *m, const char *path, const int32_t *ids, int64_t n,
                     int64_t stride, const char *what, rt_dataset *out) {
    rt_text_shape shape = rt_text_shape_of(m);
    if (stride == 0) stride = shape.seq;
    if (n < shape.seq + 1)
        rt_path_error(path,
                      "%s has %lld characters; a window needs %lld (seq %lld, and the next "
                      "character)",
                      what, (long long)n, (long long)shape.seq + 1, (long long)shape.seq);
    rt_text_windows *w = rt_alloc(sizeof *w);
    *w = (rt_text_windows){
        ids, n, shape.seq, stride, shape.vocab, shape.input_one_hot, shape.target_one_hot, NULL};
    memset(out, 0, sizeof *out);
    out->input_elems = rt_input_elems(m);
    out->target_elems = rt_target_elems(m);
    if (out->target_elems > 0)
        w->target_row = rt_alloc_array((size_t)out->target_elems, rt_elem_size(m->f64));
    out->rows = (n - shape.seq - 1) / stride + 1;
    out->text = w;
}

/* seq characters from ids into a tensor's row: the ids, or one-hot rows of vocab. */
static void put_window(void *dst, const int32_t *ids, int64_t seq, int64_t vocab, int one_hot,
                       int f64) {
    if (!one_hot) {
        for (int64_t t = 0; t < seq; t++) rt_set(dst, t, f64, (double)ids[t]);
        return;
    }
    memset(dst, 0, (size_t)(seq * vocab) * rt_elem_size(f64));
    for (int64_t t = 0; t < seq; t++) rt_set(dst, t * vocab + ids[t], f64, 1.0);
}

void rt_text_fill_row(const nnrt_model *m, nnrt_ctx *ctx, const rt_dataset *d, int64_t row,
                      int64_t b, int with_targets) {
    const rt_text_windows *w = d->text;
    const int32_t *start = w->ids + row * w->stride;
    const nnrt_tensor *x = &m->inputs[0];
    put_window(rt_elem_ptr(rt_tensor_data(m, ctx, x), b * x->numel, m->f64), start, w->seq,
               w->vocab, w->input_one_hot, m->f64);
    if (!with_targets || m->n_targets == 0) return;
    const nnrt_tensor *y = &m->targets[0];
    put_window(rt_elem_ptr(rt_tensor_data(m, ctx, y), b * y->numel, m->f64), start + 1, w->seq,
               w->vocab, w->target_one_hot, m->f64);
}

const void *rt_text_target_row(const nnrt_model *m, const rt_dataset *d, int64_t row) {
    const rt_text_windows *w = d->text;
    put_window(w->target_row, w->ids + row * w->stride + 1, w->seq, w->vocab, w->target_one_hot,
               m->f64);
    return w->target_row;
}

/* ---- the vocabulary in a weights file ---- */

char *rt_vocab_to_utf8(const rt_vocab *v) {
    char *s = rt_alloc((size_t)v->n * 4 + 1), *p = s;
    for (int32_t i = 0; i < v->n; i++) p += rt_put_utf8(v->chars[i], p);
    *p = '\0';
    return s;
}

void rt_vocab_from_utf8(const char *path, const char *key, const char *s, rt_vocab *out) {
    size_t len = strlen(s);
    if (len == 0) rt_path_error(path, "metadata '%s': an empty vocabulary", key);
    out->n = 0;
    out->chars = rt_alloc_array(len, sizeof *out->chars);
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        size_t n = rt_utf8_length(p, end);
        if (n == 0)
            rt_path_error(path, "metadata '%s': byte %zu is not UTF-8", key,
                          (size_t)(p - (const unsigned char *)s));
        uint32_t c = decode(p, n);
        if (out->n > 0 && c <= out->chars[out->n - 1])
            rt_path_error(path,
                          "metadata '%s': character %s follows %s: a vocabulary lists its "
                          "characters once each, in increasing order",
                          key, show_char(c).s, show_char(out->chars[out->n - 1]).s);
        out->chars[out->n++] = c;
        p += n;
    }
}

void rt_vocab_of_weights(const char *path, rt_vocab *out) {
    rt_st_file *f = rt_st_open(path);
    const char *s = rt_st_meta_get(f, RT_VOCAB_KEY);
    *out = (rt_vocab){0, NULL};
    if (s) rt_vocab_from_utf8(path, RT_VOCAB_KEY, s, out);
    rt_st_close(f);
}
