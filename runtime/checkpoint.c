/* checkpoint.c: safetensors writing and reading (see checkpoint.h). */
#include "checkpoint.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "init.h"
#include "json.h"
#include "text.h"
#include "util.h"

/* The tensors that training state adds to a file besides the params: loading weights
 * skips them without a warning. */
static const char *const state_prefixes[] = {"optimizer.", "early_stopping.", "train.",
                                             "standardize."};

/* ---- a growable text buffer for the header ---- */

typedef struct text {
    char *s;
    size_t n, cap;
} text;

static void put(text *t, const char *s, size_t n) {
    if (t->n + n + 1 > t->cap) {
        size_t new_cap = t->cap ? t->cap : 256;
        while (t->n + n + 1 > new_cap) new_cap *= 2;
        t->s = rt_grow_array(t->s, t->cap, new_cap, 1);
        t->cap = new_cap;
    }
    memcpy(t->s + t->n, s, n);
    t->n += n;
    t->s[t->n] = '\0';
}

static void puts_text(text *t, const char *s) {
    put(t, s, strlen(s));
}

static void put_u64(text *t, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    puts_text(t, buf);
}

/* A JSON string: quotes, backslashes and control characters escaped. */
static void put_json_string(text *t, const char *s) {
    puts_text(t, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            put(t, esc, 2);
        } else if (c < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", c);
            puts_text(t, esc);
        } else {
            put(t, (const char *)&c, 1);
        }
    }
    puts_text(t, "\"");
}

/* ---- writing ---- */

static void put_le(unsigned char *out, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; i++) out[i] = (unsigned char)(v >> (8 * i));
}

typedef struct st_item {
    char *name;
    enum rt_st_kind kind;
    int rank;
    int64_t dims[RT_ST_MAX_RANK];
    int64_t count;
    const void *data;
} st_item;

struct rt_st_writer {
    st_item *items;
    int n, cap;
    char **meta; /* key, value, key, value, ... */
    int n_meta, cap_meta;
};

static const char *kind_dtype(enum rt_st_kind kind) {
    return kind == RT_ST_F64 ? "F64" : kind == RT_ST_F32 ? "F32" : "I64";
}
static size_t kind_size(enum rt_st_kind kind) {
    return kind == RT_ST_F32 ? 4 : 8;
}

rt_st_writer *rt_st_writer_new(void) {
    return rt_alloc(sizeof(rt_st_writer));
}

void rt_st_add(rt_st_writer *w, const char *name, enum rt_st_kind kind, int rank,
               const int64_t *dims, const void *data) {
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        w->items = rt_grow_array(w->items, (size_t)w->cap, (size_t)cap, sizeof *w->items);
        w->cap = cap;
    }
    st_item *it = &w->items[w->n++];
    it->name = rt_strdup(name);
    it->kind = kind;
    it->rank = rank;
    it->count = 1;
    for (int d = 0; d < rank; d++) {
        it->dims[d] = dims[d];
        it->count *= dims[d];
    }
    it->data = data;
}

void rt_st_meta(rt_st_writer *w, const char *key, const char *value) {
    if (w->n_meta + 2 > w->cap_meta) {
        int cap = w->cap_meta ? 2 * w->cap_meta : 32;
        w->meta = rt_grow_array(w->meta, (size_t)w->cap_meta, (size_t)cap, sizeof *w->meta);
        w->cap_meta = cap;
    }
    w->meta[w->n_meta++] = rt_strdup(key);
    w->meta[w->n_meta++] = rt_strdup(value);
}

void rt_st_writer_free(rt_st_writer *w) {
    for (int i = 0; i < w->n; i++) rt_free(w->items[i].name);
    for (int i = 0; i < w->n_meta; i++) rt_free(w->meta[i]);
    rt_free(w->items);
    rt_free(w->meta);
    rt_free(w);
}

static text header_json(const rt_st_writer *w) {
    text h = {0};
    puts_text(&h, "{\"__metadata__\":{");
    for (int i = 0; i < w->n_meta; i += 2) {
        if (i) puts_text(&h, ",");
        put_json_string(&h, w->meta[i]);
        puts_text(&h, ":");
        put_json_string(&h, w->meta[i + 1]);
    }
    puts_text(&h, "}");
    uint64_t offset = 0;
    for (int i = 0; i < w->n; i++) {
        const st_item *it = &w->items[i];
        puts_text(&h, ",");
        put_json_string(&h, it->name);
        puts_text(&h, ":{\"dtype\":\"");
        puts_text(&h, kind_dtype(it->kind));
        puts_text(&h, "\",\"shape\":[");
        for (int d = 0; d < it->rank; d++) {
            if (d) puts_text(&h, ",");
            put_u64(&h, (uint64_t)it->dims[d]);
        }
        puts_text(&h, "],\"data_offsets\":[");
        put_u64(&h, offset);
        puts_text(&h, ",");
        offset += (uint64_t)it->count * kind_size(it->kind);
        put_u64(&h, offset);
        puts_text(&h, "]}");
    }
    puts_text(&h, "}");
    /* Pad with spaces so the data starts 8-byte aligned, as the reference writer does. */
    while ((8 + h.n) % 8 != 0) puts_text(&h, " ");
    return h;
}

/* A test hook (docs/runtime.md): NNRT_TEST_KILL_SAVE_AFTER=N kills the process with
 * SIGKILL once N bytes of a file are written, as a crash in the middle of a save would. */
typedef struct sink {
    FILE *f;
    uint64_t written, kill_after;
} sink;

static void sink_write(sink *s, const void *bytes, size_t n) {
    fwrite(bytes, 1, n, s->f); /* errors are caught by rt_atomic_commit */
    s->written += n;
    if (s->kill_after && s->written >= s->kill_after) {
        fflush(s->f);
        raise(SIGKILL);
    }
}

static void write_item_data(sink *s, const st_item *it) {
    unsigned char buf[4096];
    size_t used = 0, esize = kind_size(it->kind);
    for (int64_t e = 0; e < it->count; e++) {
        uint64_t bits;
        if (it->kind == RT_ST_F32) {
            uint32_t b32;
            memcpy(&b32, (const float *)it->data + e, 4);
            bits = b32;
        } else {
            memcpy(&bits, (const char *)it->data + 8 * e, 8);
        }
        put_le(buf + used, bits, (int)esize);
        used += esize;
        if (used == sizeof buf || e + 1 == it->count) {
            sink_write(s, buf, used);
            used = 0;
        }
    }
}

void rt_st_write(const rt_st_writer *w, const char *path) {
    text h = header_json(w);
    unsigned char length[8];
    put_le(length, h.n, 8);
    rt_atomic_file af = rt_atomic_open(path);
    const char *kill = getenv("NNRT_TEST_KILL_SAVE_AFTER");
    sink s = {af.f, 0, kill ? strtoull(kill, NULL, 10) : 0};
    sink_write(&s, length, 8);
    sink_write(&s, h.s, h.n);
    for (int i = 0; i < w->n; i++) write_item_data(&s, &w->items[i]);
    rt_atomic_commit(&af);
    rt_free(h.s);
}

static void add_common_meta(rt_st_writer *w, const nnrt_model *m) {
    rt_st_meta(w, "model", m->name ? m->name : "");
    rt_st_meta(w, "producer", "nnc");
}

void rt_st_add_params(rt_st_writer *w, const nnrt_model *m, const void *fixed, const char *prefix) {
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *t = &m->params[i];
        char name[512];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        rt_st_add(w, name, m->f64 ? RT_ST_F64 : RT_ST_F32, t->rank, t->dims,
                  rt_elem_cptr(fixed, t->offset, m->f64));
    }
}

void rt_st_add_states(rt_st_writer *w, const nnrt_model *m, const void *fixed) {
    for (int32_t i = 0; i < m->n_states; i++) {
        const nnrt_tensor *t = &m->states[i];
        rt_st_add(w, t->name, m->f64 ? RT_ST_F64 : RT_ST_F32, t->rank, t->dims,
                  rt_elem_cptr(fixed, t->offset, m->f64));
    }
}

void rt_st_add_stats(rt_st_writer *w, const rt_stats *stats) {
    if (!stats || stats->n == 0) return;
    rt_st_add(w, "standardize.mean", RT_ST_F64, 1, &stats->n, stats->mean);
    rt_st_add(w, "standardize.std", RT_ST_F64, 1, &stats->n, stats->std);
}

rt_st_writer *rt_st_weights_writer(const nnrt_model *m, const void *fixed, const rt_stats *stats) {
    rt_st_writer *w = rt_st_writer_new();
    add_common_meta(w, m);
    if (stats && stats->vocab.n > 0) {
        char *vocab = rt_vocab_to_utf8(&stats->vocab);
        rt_st_meta(w, RT_VOCAB_KEY, vocab);
        rt_free(vocab);
    }
    rt_st_add_params(w, m, fixed, "");
    rt_st_add_states(w, m, fixed);
    rt_st_add_stats(w, stats);
    return w;
}

void rt_save_weights(const nnrt_model *m, const void *fixed, const rt_stats *stats,
                     const char *path) {
    rt_st_writer *w = rt_st_weights_writer(m, fixed, stats);
    rt_st_write(w, path);
    rt_st_writer_free(w);
}

/* ---- reading ----
 *
 * The header is read and checked whole before any tensor data: every dtype is known, every
 * byte range holds exactly its dtype times its shape, and the ranges tile the data section
 * from its first byte to the end of the file, without gaps or overlaps, as the reference
 * implementation requires. Then only the tensors asked for are read, at their offsets, so
 * a file with much more in it than the model uses costs no memory, and nothing from the
 * file is ever used unchecked. */

/* The most header bytes a file may have: the reference implementation's limit, so that a
 * length field that is garbage is refused before anything is read. */
#define ST_MAX_HEADER 100000000u

/* The dtypes of the format, with their sizes, for checking the byte ranges of every tensor,
 * also those the model does not read. */
typedef struct st_dtype {
    const char *name;
    unsigned size;
} st_dtype;

static const st_dtype dtypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
    {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8},
};

/* A name from the header: it may hold any character, NULs included (\u0000), so it has a
 * length; `at` is the file offset of its entry, for messages. */
typedef struct st_name {
    char *s;
    size_t len;
    uint64_t at;
} st_name;

typedef struct st_tensor {
    st_name name; /* first: the name indexes point at it */
    const st_dtype *dtype;
    int rank;
    uint64_t shape[RT_ST_MAX_RANK];
    uint64_t begin, end; /* data_offsets, relative to the start of the data */
    int used;            /* read through rt_st_read */
} st_tensor;

typedef struct st_meta {
    st_name key; /* first, as in st_tensor */
    char *value;
    size_t value_len;
} st_meta;

struct rt_st_file {
    const char *path;
    FILE *file;
    uint64_t data_start, data_len; /* file offset and length of the data section */
    st_tensor *tensors;            /* in header order */
    int n;
    const st_name **tensor_names; /* sorted, for lookups */
    st_meta *meta;
    int n_meta;
    const st_name **meta_keys;
};

/* A name as message text: escaped, and cut short when very long. */
typedef struct shown_name {
    char s[200];
} shown_name;

static shown_name show(const st_name *name) {
    shown_name out;
    rt_printable(out.s, sizeof out.s, name->s, name->len);
    return out;
}

static uint64_t get_le(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static const st_dtype *find_dtype(const char *s, size_t len) {
    for (size_t i = 0; i < sizeof dtypes / sizeof dtypes[0]; i++)
        if (rt_name_is(dtypes[i].name, s, len)) return &dtypes[i];
    return NULL;
}

static void parse_shape(rt_json *j, st_tensor *t) {
    rt_json_expect(j, '[');
    if (rt_json_accept(j, ']')) return;
    do {
        if (t->rank == RT_ST_MAX_RANK)
            rt_json_error(j, "tensor '%s' has more than %d dimensions", show(&t->name).s,
                          RT_ST_MAX_RANK);
        t->shape[t->rank++] = rt_json_uint(j);
    } while (rt_json_accept(j, ','));
    rt_json_expect(j, ']');
}

static void parse_dtype(rt_json *j, st_tensor *t) {
    uint64_t at = rt_json_offset(j);
    size_t len;
    char *name = rt_json_string(j, &len);
    t->dtype = find_dtype(name, len);
    if (!t->dtype) {
        shown_name dtype;
        rt_printable(dtype.s, sizeof dtype.s, name, len);
        rt_byte_error(j->path, at, "safetensors header: tensor '%s' has an unknown dtype '%s'",
                      show(&t->name).s, dtype.s);
    }
    rt_free(name);
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]}; other keys are skipped. */
static void parse_tensor_info(rt_json *j, st_tensor *t) {
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    rt_json_expect(j, '{');
    if (!rt_json_accept(j, '}')) {
        do {
            size_t len;
            char *key = rt_json_string(j, &len);
            rt_json_expect(j, ':');
            int *seen = rt_name_is("dtype", key, len)          ? &have_dtype
                        : rt_name_is("shape", key, len)        ? &have_shape
                        : rt_name_is("data_offsets", key, len) ? &have_offsets
                                                               : NULL;
            if (seen && *seen) rt_json_error(j, "tensor '%s' has two '%s'", show(&t->name).s, key);
            if (seen) *seen = 1;
            if (seen == &have_dtype) {
                parse_dtype(j, t);
            } else if (seen == &have_shape) {
                parse_shape(j, t);
            } else if (seen == &have_offsets) {
                rt_json_expect(j, '[');
                t->begin = rt_json_uint(j);
                rt_json_expect(j, ',');
                t->end = rt_json_uint(j);
                rt_json_expect(j, ']');
            } else {
                rt_json_skip_value(j);
            }
            rt_free(key);
        } while (rt_json_accept(j, ','));
        rt_json_expect(j, '}');
    }
    if (!have_dtype || !have_shape || !have_offsets)
        rt_json_error(j, "tensor '%s' lacks %s", show(&t->name).s,
                      !have_dtype   ? "a dtype"
                      : !have_shape ? "a shape"
                                    : "data_offsets");
}

/* The metadata object: string values are kept, others skipped. */
static void parse_metadata(rt_json *j, rt_st_file *f) {
    int cap = 0;
    rt_json_expect(j, '{');
    if (rt_json_accept(j, '}')) return;
    do {
        st_name key = {0};
        key.at = rt_json_offset(j);
        key.s = rt_json_string(j, &key.len);
        rt_json_expect(j, ':');
        if (rt_json_peek(j) != '"') {
            rt_json_skip_value(j);
            rt_free(key.s);
            continue;
        }
        if (f->n_meta == cap) {
            int new_cap = cap ? 2 * cap : 16;
            f->meta = rt_grow_array(f->meta, (size_t)cap, (size_t)new_cap, sizeof *f->meta);
            cap = new_cap;
        }
        st_meta *m = &f->meta[f->n_meta++];
        m->key = key;
        m->value = rt_json_string(j, &m->value_len);
    } while (rt_json_accept(j, ','));
    rt_json_expect(j, '}');
}

static void parse_header(rt_st_file *f, const char *json, size_t len) {
    rt_json j;
    rt_json_init(&j, f->path, json, len, 8);
    int cap = 0, have_metadata = 0;
    rt_json_expect(&j, '{');
    if (!rt_json_accept(&j, '}')) {
        do {
            st_name name = {0};
            name.at = rt_json_offset(&j);
            name.s = rt_json_string(&j, &name.len);
            rt_json_expect(&j, ':');
            if (rt_name_is("__metadata__", name.s, name.len)) {
                if (have_metadata)
                    rt_byte_error(f->path, name.at, "safetensors header: two __metadata__");
                have_metadata = 1;
                parse_metadata(&j, f);
                rt_free(name.s);
                continue;
            }
            if (f->n == cap) {
                if (cap > INT32_MAX / 2) rt_json_error(&j, "too many tensors");
                int new_cap = cap ? 2 * cap : 16;
                f->tensors =
                    rt_grow_array(f->tensors, (size_t)cap, (size_t)new_cap, sizeof *f->tensors);
                cap = new_cap;
            }
            st_tensor *t = &f->tensors[f->n++];
            t->name = name;
            parse_tensor_info(&j, t);
        } while (rt_json_accept(&j, ','));
        rt_json_expect(&j, '}');
    }
    rt_json_expect_end(&j);
}

/* ---- names: sorted once, then found by binary search ---- */

static int compare_names(const st_name *a, const st_name *b) {
    int c = memcmp(a->s, b->s, a->len < b->len ? a->len : b->len);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int compare_name_ptrs(const void *a, const void *b) {
    const st_name *x = *(const st_name *const *)a, *y = *(const st_name *const *)b;
    int c = compare_names(x, y);
    return c ? c : (x->at > y->at) - (x->at < y->at); /* equal names: in header order */
}

/* Pointers to the names of n entries of `stride` bytes that start with one, sorted; a name
 * given twice is an error at its second place. */
static const st_name **sort_names(const char *path, const void *entries, size_t stride, int n,
                                  const char *what) {
    const st_name **sorted = rt_alloc_array((size_t)n + 1, sizeof *sorted);
    for (int i = 0; i < n; i++)
        sorted[i] = (const st_name *)((const char *)entries + stride * (size_t)i);
    qsort(sorted, (size_t)n, sizeof *sorted, compare_name_ptrs);
    for (int i = 1; i < n; i++)
        if (compare_names(sorted[i - 1], sorted[i]) == 0)
            rt_byte_error(path, sorted[i]->at,
                          "safetensors header: %s '%s' appears twice (first at byte %llu)", what,
                          show(sorted[i]).s, (unsigned long long)sorted[i - 1]->at);
    return sorted;
}

static const st_name *find_name(const st_name **sorted, int n, const char *name) {
    st_name key = {(char *)name, strlen(name), 0};
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = compare_names(sorted[mid], &key);
        if (c == 0) return sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static st_tensor *find_tensor(const rt_st_file *f, const char *name) {
    return (st_tensor *)find_name(f->tensor_names, f->n, name);
}

/* ---- the byte ranges ---- */

/* Elements of a shape, or UINT64_MAX when that does not fit in 64 bits. */
static uint64_t shape_count(const st_tensor *t) {
    uint64_t count = 1;
    for (int d = 0; d < t->rank; d++) {
        if (t->shape[d] != 0 && count > UINT64_MAX / t->shape[d]) return UINT64_MAX;
        count *= t->shape[d];
    }
    return count;
}

/* "[2, 4]" */
static void format_shape(char *buf, size_t size, int rank, const uint64_t *dims) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < rank && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%llu", d ? ", " : "",
                                 (unsigned long long)dims[d]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

static void check_tensor_size(const rt_st_file *f, const st_tensor *t) {
    uint64_t count = shape_count(t), size = t->dtype->size;
    char shape[256];
    format_shape(shape, sizeof shape, t->rank, t->shape);
    if (count > UINT64_MAX / size)
        rt_byte_error(f->path, t->name.at,
                      "safetensors header: tensor '%s' has shape %s: too many elements",
                      show(&t->name).s, shape);
    if (t->end < t->begin || t->end - t->begin != count * size)
        rt_byte_error(f->path, t->name.at,
                      "safetensors header: tensor '%s' has data_offsets [%llu, %llu], but shape "
                      "%s of %s needs %llu bytes",
                      show(&t->name).s, (unsigned long long)t->begin, (unsigned long long)t->end,
                      shape, t->dtype->name, (unsigned long long)(count * size));
}

static int compare_ranges(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    if (x->begin != y->begin) return (x->begin > y->begin) - (x->begin < y->begin);
    return (x->end > y->end) - (x->end < y->end);
}

/* The ranges, in order of offset, cover the data section exactly once. */
static void check_layout(const rt_st_file *f) {
    for (int i = 0; i < f->n; i++) check_tensor_size(f, &f->tensors[i]);
    const st_tensor **by_offset = rt_alloc_array((size_t)f->n + 1, sizeof *by_offset);
    for (int i = 0; i < f->n; i++) by_offset[i] = &f->tensors[i];
    qsort(by_offset, (size_t)f->n, sizeof *by_offset, compare_ranges);
    uint64_t position = 0;
    const st_tensor *before = NULL;
    for (int i = 0; i < f->n; i++) {
        const st_tensor *t = by_offset[i];
        if (t->begin < position)
            rt_byte_error(f->path, t->name.at,
                          "safetensors header: tensor '%s' (data_offsets [%llu, %llu]) overlaps "
                          "tensor '%s' ([%llu, %llu])",
                          show(&t->name).s, (unsigned long long)t->begin,
                          (unsigned long long)t->end, show(&before->name).s,
                          (unsigned long long)before->begin, (unsigned long long)before->end);
        if (t->begin > position)
            rt_byte_error(f->path, t->name.at,
                          "safetensors header: tensor '%s' begins at data byte %llu, but the "
                          "tensors before it end at %llu (the data must have no gaps)",
                          show(&t->name).s, (unsigned long long)t->begin,
                          (unsigned long long)position);
        if (t->end > f->data_len)
            rt_byte_error(f->path, t->name.at,
                          "safetensors header: tensor '%s' has data_offsets [%llu, %llu], past the "
                          "end of the %llu bytes of data",
                          show(&t->name).s, (unsigned long long)t->begin,
                          (unsigned long long)t->end, (unsigned long long)f->data_len);
        position = t->end;
        before = t;
    }
    if (position < f->data_len)
        rt_byte_error(f->path, f->data_start + position,
                      "%llu bytes after the data of the last tensor",
                      (unsigned long long)(f->data_len - position));
    rt_free(by_offset);
}

rt_st_file *rt_st_open(const char *path) {
    rt_st_file *f = rt_alloc(sizeof *f);
    f->path = path;
    uint64_t size;
    f->file = rt_open_seekable(path, &size);
    if (size < 8)
        rt_path_error(path, "not a safetensors file: only %llu bytes", (unsigned long long)size);
    unsigned char length[8];
    rt_read_at(f->file, path, 0, length, 8);
    uint64_t header_len = get_le(length, 8);
    if (header_len > size - 8)
        rt_path_error(path,
                      "not a safetensors file: the header length %llu runs past the end "
                      "of the file (%llu bytes)",
                      (unsigned long long)header_len, (unsigned long long)size);
    if (header_len > ST_MAX_HEADER)
        rt_path_error(path,
                      "not a safetensors file: the header length %llu is more than the %u "
                      "bytes a header may have",
                      (unsigned long long)header_len, ST_MAX_HEADER);
    char *header = rt_alloc((size_t)header_len + 1);
    rt_read_at(f->file, path, 8, header, (size_t)header_len);
    parse_header(f, header, (size_t)header_len);
    rt_free(header);
    f->data_start = 8 + header_len;
    f->data_len = size - f->data_start;
    f->tensor_names = sort_names(path, f->tensors, sizeof *f->tensors, f->n, "tensor");
    f->meta_keys = sort_names(path, f->meta, sizeof *f->meta, f->n_meta, "metadata key");
    check_layout(f);
    return f;
}

void rt_st_close(rt_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) rt_free(f->tensors[i].name.s);
    for (int i = 0; i < f->n_meta; i++) {
        rt_free(f->meta[i].key.s);
        rt_free(f->meta[i].value);
    }
    rt_free(f->meta);
    rt_free(f->tensors);
    rt_free(f->tensor_names);
    rt_free(f->meta_keys);
    rt_close_seekable(f->file);
    rt_free(f);
}

const char *rt_st_meta_get(const rt_st_file *f, const char *key) {
    const st_meta *m = (const st_meta *)find_name(f->meta_keys, f->n_meta, key);
    if (!m) return NULL;
    if (strlen(m->value) != m->value_len) /* a NUL would cut the value short */
        rt_byte_error(f->path, m->key.at, "safetensors header: metadata '%s' holds a NUL character",
                      key);
    return m->value;
}

int rt_st_shape(const rt_st_file *f, const char *name, int *rank, uint64_t *dims) {
    const st_tensor *t = find_tensor(f, name);
    if (!t) return 0;
    *rank = t->rank;
    memcpy(dims, t->shape, (size_t)t->rank * sizeof *dims);
    return 1;
}

/* ---- listing a file: its tensors and metadata, whatever they are ---- */

int rt_st_count(const rt_st_file *f) {
    return f->n;
}

rt_st_info rt_st_info_at(const rt_st_file *f, int i) {
    const st_tensor *t = &f->tensors[i];
    rt_st_info info = {t->name.s, t->name.len, t->dtype->name, t->rank, {0}, shape_count(t)};
    memcpy(info.dims, t->shape, sizeof info.dims);
    return info;
}

int rt_st_meta_count(const rt_st_file *f) {
    return f->n_meta;
}

void rt_st_meta_at(const rt_st_file *f, int i, const char **key, size_t *key_len,
                   const char **value, size_t *value_len) {
    *key = f->meta[i].key.s;
    *key_len = f->meta[i].key.len;
    *value = f->meta[i].value;
    *value_len = f->meta[i].value_len;
}

int rt_st_numeric(const rt_st_file *f, int i) {
    return strncmp(f->tensors[i].dtype->name, "F8", 2) != 0;
}

/* IEEE half precision: sign, 5 bits of exponent (bias 15), 10 of fraction. */
static double half_value(uint64_t bits) {
    int exponent = (int)(bits >> 10 & 31);
    double fraction = (double)(bits & 1023), sign = bits >> 15 ? -1 : 1;
    if (exponent == 31) return fraction ? NAN : sign * INFINITY;
    if (exponent == 0) return sign * ldexp(fraction, -24);
    return sign * ldexp(1024 + fraction, exponent - 25);
}

/* One element of raw little-endian bits of a dtype, as a double. */
static double element_value(const st_dtype *dtype, uint64_t bits) {
    const char *name = dtype->name;
    unsigned bytes = dtype->size;
    if (name[0] == 'F' && bytes == 8) {
        double v;
        memcpy(&v, &bits, 8);
        return v;
    }
    if (!strcmp(name, "F32") || !strcmp(name, "BF16")) {
        uint32_t b32 = (uint32_t)(bytes == 2 ? bits << 16 : bits);
        float x;
        memcpy(&x, &b32, 4);
        return x;
    }
    if (!strcmp(name, "F16")) return half_value(bits);
    if (name[0] == 'I' && bytes < 8 && bits >> (8 * bytes - 1)) /* sign-extend */
        bits |= ~(uint64_t)0 << (8 * bytes);
    return name[0] == 'I' ? (double)(int64_t)bits : (double)bits;
}

void rt_st_read_doubles(const rt_st_file *f, int i, uint64_t first, uint64_t n, double *out) {
    const st_tensor *t = &f->tensors[i];
    unsigned esize = t->dtype->size;
    unsigned char chunk[1 << 12];
    const uint64_t per_chunk = sizeof chunk / esize;
    for (uint64_t done = 0; done < n; done += per_chunk) {
        uint64_t k = n - done < per_chunk ? n - done : per_chunk;
        rt_read_at(f->file, f->path, f->data_start + t->begin + (first + done) * esize, chunk,
                   (size_t)(k * esize));
        for (uint64_t e = 0; e < k; e++)
            out[done + e] = element_value(t->dtype, get_le(chunk + e * esize, (int)esize));
    }
}

static void check_shape(const char *path, const char *name, int rank, const int64_t *dims,
                        const st_tensor *got) {
    int same = got->rank == rank;
    for (int d = 0; same && d < got->rank; d++) same = got->shape[d] == (uint64_t)dims[d];
    if (same) return;
    uint64_t want_dims[RT_ST_MAX_RANK];
    for (int d = 0; d < rank; d++) want_dims[d] = (uint64_t)dims[d];
    char got_s[256], want_s[256];
    format_shape(got_s, sizeof got_s, got->rank, got->shape);
    format_shape(want_s, sizeof want_s, rank, want_dims);
    int transposed = rank == 2 && got->rank == 2 && got->shape[0] == want_dims[1] &&
                     got->shape[1] == want_dims[0];
    rt_path_error(path, "tensor '%s' has shape %s, the model wants %s%s", name, got_s, want_s,
                  transposed ? " (its transpose: nnc's dense W is [in, out], PyTorch's "
                               "nn.Linear weight [out, in]; docs/runtime.md, \"Dense weights and "
                               "PyTorch\")"
                             : "");
}

/* Element e of raw little-endian data of t's dtype, as a double (or its bits, for I64). */
static void convert(const unsigned char *src, uint64_t count, const st_tensor *t,
                    enum rt_st_kind kind, void *dst, uint64_t first) {
    unsigned esize = t->dtype->size;
    int file_f64 = strcmp(t->dtype->name, "F64") == 0;
    for (uint64_t e = 0; e < count; e++, src += esize) {
        uint64_t bits = get_le(src, (int)esize);
        if (kind == RT_ST_I64) {
            memcpy((int64_t *)dst + first + e, &bits, 8);
            continue;
        }
        double v;
        if (file_f64) {
            memcpy(&v, &bits, 8);
        } else {
            uint32_t b32 = (uint32_t)bits;
            float x;
            memcpy(&x, &b32, 4);
            v = x;
        }
        rt_set(dst, (int64_t)(first + e), kind == RT_ST_F64, v);
    }
}

int rt_st_read(const rt_st_file *f, const char *name, enum rt_st_kind kind, int rank,
               const int64_t *dims, void *dst) {
    st_tensor *t = find_tensor(f, name);
    if (!t) return 0;
    check_shape(f->path, name, rank, dims, t);
    const char *dtype = t->dtype->name;
    int file_i64 = strcmp(dtype, "I64") == 0;
    int file_float = strcmp(dtype, "F32") == 0 || strcmp(dtype, "F64") == 0;
    if (kind == RT_ST_I64 ? !file_i64 : !file_float)
        rt_path_error(f->path, "tensor '%s' has dtype %s; only %s %s read", name, dtype,
                      kind == RT_ST_I64 ? "I64" : "F32 and F64", kind == RT_ST_I64 ? "is" : "are");
    t->used = 1;
    /* The size was checked against the shape when the file was opened. */
    uint64_t count = shape_count(t), esize = t->dtype->size;
    unsigned char chunk[1 << 16];
    const uint64_t per_chunk = sizeof chunk / esize;
    for (uint64_t done = 0; done < count; done += per_chunk) {
        uint64_t n = count - done < per_chunk ? count - done : per_chunk;
        rt_read_at(f->file, f->path, f->data_start + t->begin + done * esize, chunk,
                   (size_t)(n * esize));
        convert(chunk, n, t, kind, dst, done);
    }
    return 1;
}

void rt_st_check_values(const rt_st_file *f, const char *name, const void *values, int64_t count,
                        int f64, int nonnegative) {
    for (int64_t e = 0; e < count; e++) {
        double v = rt_get(values, e, f64);
        if (!isfinite(v))
            rt_path_error(f->path, "tensor '%s' holds %s at element %lld", name,
                          isnan(v) ? "nan"
                          : v > 0  ? "inf"
                                   : "-inf",
                          (long long)e);
        if (nonnegative && v < 0)
            rt_path_error(f->path,
                          "tensor '%s' holds %g at element %lld; its values are never "
                          "negative",
                          name, v, (long long)e);
    }
}

void rt_st_read_params(const rt_st_file *f, const nnrt_model *m, void *fixed, const char *prefix) {
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *p = &m->params[i];
        char name[512];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        void *dst = rt_elem_ptr(fixed, p->offset, m->f64);
        if (!rt_st_read(f, name, m->f64 ? RT_ST_F64 : RT_ST_F32, p->rank, p->dims, dst))
            rt_path_error(f->path, "missing tensor '%s'", name);
        rt_st_check_values(f, name, dst, p->numel, m->f64, 0);
    }
}

void rt_st_read_states(const rt_st_file *f, const nnrt_model *m, void *fixed, int required) {
    for (int32_t i = 0; i < m->n_states; i++) {
        const nnrt_tensor *t = &m->states[i];
        void *dst = rt_elem_ptr(fixed, t->offset, m->f64);
        if (rt_st_read(f, t->name, m->f64 ? RT_ST_F64 : RT_ST_F32, t->rank, t->dims, dst))
            rt_st_check_values(f, t->name, dst, t->numel, m->f64, 0);
        else if (required)
            rt_path_error(f->path, "missing tensor '%s' (a state of the model)", t->name);
        else
            rt_init_state(m, fixed, t);
    }
}

static int is_state_tensor(const st_name *name) {
    for (size_t i = 0; i < sizeof state_prefixes / sizeof state_prefixes[0]; i++) {
        size_t n = strlen(state_prefixes[i]);
        if (name->len >= n && memcmp(name->s, state_prefixes[i], n) == 0) return 1;
    }
    return 0;
}

void rt_st_read_stats(const rt_st_file *f, int64_t n, rt_stats *stats) {
    stats->n = 0;
    stats->vocab = (rt_vocab){0, NULL};
    const char *vocab = rt_st_meta_get(f, RT_VOCAB_KEY);
    if (vocab) rt_vocab_from_utf8(f->path, RT_VOCAB_KEY, vocab, &stats->vocab);
    if (!find_tensor(f, "standardize.mean")) return;
    stats->mean = rt_alloc_array((size_t)n, sizeof(double));
    stats->std = rt_alloc_array((size_t)n, sizeof(double));
    rt_st_read(f, "standardize.mean", RT_ST_F64, 1, &n, stats->mean);
    if (!rt_st_read(f, "standardize.std", RT_ST_F64, 1, &n, stats->std))
        rt_path_error(f->path, "missing tensor 'standardize.std'");
    rt_st_check_values(f, "standardize.mean", stats->mean, n, 1, 0);
    rt_st_check_values(f, "standardize.std", stats->std, n, 1, 1);
    for (int64_t e = 0; e < n; e++)
        if (stats->std[e] == 0)
            rt_path_error(f->path,
                          "tensor 'standardize.std' holds 0 at element %lld; a standard "
                          "deviation divides",
                          (long long)e);
    stats->n = n;
}

/* One line for all the tensors the model does not know, however many: the first few by
 * name, then how many more. */
static void warn_unknown(const rt_st_file *f) {
    enum { NAMED = 3 };
    char list[4 * sizeof(shown_name)];
    size_t used = 0;
    int unknown = 0;
    list[0] = '\0';
    for (int i = 0; i < f->n; i++) {
        const st_tensor *t = &f->tensors[i];
        if (t->used || is_state_tensor(&t->name)) continue;
        if (unknown++ < NAMED)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s'%s'", used ? ", " : "",
                                     show(&t->name).s);
    }
    if (unknown == 1)
        rt_path_warning(f->path, "tensor %s is not a param of the model; ignored", list);
    else if (unknown > NAMED)
        rt_path_warning(f->path, "%d tensors are not params of the model; ignored: %s and %d more",
                        unknown, list, unknown - NAMED);
    else if (unknown > 1)
        rt_path_warning(f->path, "%d tensors are not params of the model; ignored: %s", unknown,
                        list);
}

void rt_load_weights(const nnrt_model *m, void *fixed, const char *path, rt_stats *stats) {
    rt_st_file *f = rt_st_open(path);
    rt_st_read_params(f, m, fixed, "");
    rt_st_read_states(f, m, fixed, 0);
    if (stats) rt_st_read_stats(f, rt_input_elems(m), stats);
    warn_unknown(f);
    rt_st_close(f);
}

/* "h.W, h.b" of the params whose mark is `which`, cut short when long. */
static void names_marked(const nnrt_model *m, const unsigned char *marks, int which, char *buf,
                         size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int32_t i = 0; i < m->n_params && used < size; i++)
        if (marks[i] == which)
            used += (size_t)snprintf(buf + used, size - used, "%s%s", used ? ", " : "",
                                     m->params[i].name);
}

void rt_load_matching_weights(const nnrt_model *m, void *fixed, const char *path) {
    rt_st_file *f = rt_st_open(path);
    unsigned char *loaded = rt_alloc((size_t)m->n_params + 1);
    int32_t n_loaded = 0;
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *p = &m->params[i];
        void *dst = rt_elem_ptr(fixed, p->offset, m->f64);
        if (!rt_st_read(f, p->name, m->f64 ? RT_ST_F64 : RT_ST_F32, p->rank, p->dims, dst))
            continue;
        rt_st_check_values(f, p->name, dst, p->numel, m->f64, 0);
        loaded[i] = 1;
        n_loaded++;
    }
    char kept[1024], took[1024];
    names_marked(m, loaded, 0, kept, sizeof kept);
    if (n_loaded == 0)
        rt_path_error(path,
                      "--init-weights: the file has none of the params of model '%s' (%s); its "
                      "tensors' names must be the params' names",
                      m->name, kept);
    /* search loads the file again for every trial: what it says, it says once */
    static int said;
    if (n_loaded < m->n_params && !said) {
        names_marked(m, loaded, 1, took, sizeof took);
        rt_path_warning(path,
                        "--init-weights loaded %d of the model's %d params (%s); these start "
                        "from their initialisers: %s",
                        (int)n_loaded, (int)m->n_params, took, kept);
    }
    rt_st_read_states(f, m, fixed, 0);
    if (!said) warn_unknown(f);
    said = 1;
    rt_free(loaded);
    rt_st_close(f);
}
