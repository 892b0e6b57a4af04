/* checkpoint.c: safetensors writing and reading (see checkpoint.h). */
#include "checkpoint.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "json.h"
#include "util.h"

/* The tensors that training state adds to a file besides the params: loading weights
 * skips them without a warning. */
static const char *const state_prefixes[] = {"optimizer.", "early_stopping.", "train.",
                                             "standardize."};

/* One entry of a file's header. */
typedef struct st_tensor {
    char *name;
    char *dtype;
    int rank;
    uint64_t shape[RT_ST_MAX_RANK];
    uint64_t begin, end; /* data_offsets, relative to the end of the header */
} st_tensor;

struct rt_st_file {
    const char *path;
    char *bytes;
    const unsigned char *data; /* after the header */
    uint64_t data_len;
    st_tensor *tensors;
    int n;
    char **meta; /* key, value, ... */
    int n_meta, cap_meta;
};

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

void rt_st_add_stats(rt_st_writer *w, const rt_stats *stats) {
    if (!stats || stats->n == 0) return;
    rt_st_add(w, "standardize.mean", RT_ST_F64, 1, &stats->n, stats->mean);
    rt_st_add(w, "standardize.std", RT_ST_F64, 1, &stats->n, stats->std);
}

rt_st_writer *rt_st_weights_writer(const nnrt_model *m, const void *fixed, const rt_stats *stats) {
    rt_st_writer *w = rt_st_writer_new();
    add_common_meta(w, m);
    rt_st_add_params(w, m, fixed, "");
    rt_st_add_stats(w, stats);
    return w;
}

void rt_save_weights(const nnrt_model *m, const void *fixed, const rt_stats *stats,
                     const char *path) {
    rt_st_writer *w = rt_st_weights_writer(m, fixed, stats);
    rt_st_write(w, path);
    rt_st_writer_free(w);
}

/* ---- reading ---- */

static uint64_t get_le(const unsigned char *p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static void parse_shape(rt_json *j, st_tensor *t) {
    rt_json_expect(j, '[');
    if (rt_json_accept(j, ']')) return;
    do {
        if (t->rank == RT_ST_MAX_RANK)
            rt_json_error(j, "tensor '%s' has too many dimensions", t->name);
        t->shape[t->rank++] = rt_json_uint(j);
    } while (rt_json_accept(j, ','));
    rt_json_expect(j, ']');
}

/* {"dtype": ..., "shape": [...], "data_offsets": [b, e]}; other keys are skipped. */
static void parse_tensor_info(rt_json *j, st_tensor *t) {
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    rt_json_expect(j, '{');
    if (!rt_json_accept(j, '}')) {
        do {
            char *key = rt_json_string(j);
            rt_json_expect(j, ':');
            if (strcmp(key, "dtype") == 0) {
                t->dtype = rt_json_string(j);
                have_dtype = 1;
            } else if (strcmp(key, "shape") == 0) {
                parse_shape(j, t);
                have_shape = 1;
            } else if (strcmp(key, "data_offsets") == 0) {
                rt_json_expect(j, '[');
                t->begin = rt_json_uint(j);
                rt_json_expect(j, ',');
                t->end = rt_json_uint(j);
                rt_json_expect(j, ']');
                have_offsets = 1;
            } else {
                rt_json_skip_value(j);
            }
            rt_free(key);
        } while (rt_json_accept(j, ','));
        rt_json_expect(j, '}');
    }
    if (!have_dtype || !have_shape || !have_offsets)
        rt_json_error(j, "tensor '%s' lacks %s", t->name,
                      !have_dtype   ? "a dtype"
                      : !have_shape ? "a shape"
                                    : "data_offsets");
}

/* The metadata object: string values are kept, others skipped. */
static void parse_metadata(rt_json *j, rt_st_file *f) {
    rt_json_expect(j, '{');
    if (rt_json_accept(j, '}')) return;
    do {
        char *key = rt_json_string(j);
        rt_json_expect(j, ':');
        if (rt_json_peek(j) == '"') {
            if (f->n_meta + 2 > f->cap_meta) {
                int cap = f->cap_meta ? 2 * f->cap_meta : 32;
                f->meta = rt_grow_array(f->meta, (size_t)f->cap_meta, (size_t)cap, sizeof *f->meta);
                f->cap_meta = cap;
            }
            f->meta[f->n_meta++] = key;
            f->meta[f->n_meta++] = rt_json_string(j);
        } else {
            rt_json_skip_value(j);
            rt_free(key);
        }
    } while (rt_json_accept(j, ','));
    rt_json_expect(j, '}');
}

static void parse_header(rt_st_file *f, const char *json, size_t len) {
    rt_json j;
    rt_json_init(&j, f->path, json, len, 8);
    int cap = 0;
    rt_json_expect(&j, '{');
    if (!rt_json_accept(&j, '}')) {
        do {
            char *name = rt_json_string(&j);
            rt_json_expect(&j, ':');
            if (strcmp(name, "__metadata__") == 0) {
                parse_metadata(&j, f);
                rt_free(name);
                continue;
            }
            if (f->n == cap) {
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

static const st_tensor *find_tensor(const rt_st_file *f, const char *name) {
    const st_tensor *found = NULL;
    for (int i = 0; i < f->n; i++) {
        if (strcmp(f->tensors[i].name, name) != 0) continue;
        if (found) rt_path_error(f->path, "tensor '%s' appears twice", name);
        found = &f->tensors[i];
    }
    return found;
}

/* "[2, 4]" */
static void format_shape(char *buf, size_t size, int rank, const uint64_t *dims) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < rank && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%llu", d ? ", " : "",
                                 (unsigned long long)dims[d]);
    if (used < size) snprintf(buf + used, size - used, "]");
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
    rt_path_error(path, "tensor '%s' has shape %s, the model wants %s", name, got_s, want_s);
}

rt_st_file *rt_st_open(const char *path) {
    rt_st_file *f = rt_alloc(sizeof *f);
    f->path = path;
    size_t len;
    f->bytes = rt_read_file(path, &len);
    if (len < 8) rt_path_error(path, "not a safetensors file: only %zu bytes", len);
    uint64_t header_len = get_le((const unsigned char *)f->bytes, 8);
    if (header_len > len - 8)
        rt_path_error(path,
                      "not a safetensors file: the header length %llu runs past the end "
                      "of the file (%zu bytes)",
                      (unsigned long long)header_len, len);
    parse_header(f, f->bytes + 8, (size_t)header_len);
    f->data = (const unsigned char *)f->bytes + 8 + header_len;
    f->data_len = len - 8 - header_len;
    return f;
}

void rt_st_close(rt_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) {
        rt_free(f->tensors[i].name);
        rt_free(f->tensors[i].dtype);
    }
    for (int i = 0; i < f->n_meta; i++) rt_free(f->meta[i]);
    rt_free(f->meta);
    rt_free(f->tensors);
    rt_free(f->bytes);
    rt_free(f);
}

const char *rt_st_meta_get(const rt_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i += 2)
        if (strcmp(f->meta[i], key) == 0) return f->meta[i + 1];
    return NULL;
}

int rt_st_read(const rt_st_file *f, const char *name, enum rt_st_kind kind, int rank,
               const int64_t *dims, void *dst) {
    const st_tensor *t = find_tensor(f, name);
    if (!t) return 0;
    check_shape(f->path, name, rank, dims, t);
    int file_f64 = strcmp(t->dtype, "F64") == 0, file_i64 = strcmp(t->dtype, "I64") == 0;
    int file_f32 = strcmp(t->dtype, "F32") == 0;
    if (kind == RT_ST_I64 ? !file_i64 : !(file_f64 || file_f32))
        rt_path_error(f->path, "tensor '%s' has dtype %s; only %s %s read", name, t->dtype,
                      kind == RT_ST_I64 ? "I64" : "F32 and F64", kind == RT_ST_I64 ? "is" : "are");
    uint64_t count = 1;
    for (int d = 0; d < rank; d++) count *= (uint64_t)dims[d];
    uint64_t esize = file_f32 ? 4 : 8;
    if (t->begin > t->end || t->end > f->data_len || t->end - t->begin != count * esize)
        rt_path_error(f->path,
                      "tensor '%s' has data_offsets [%llu, %llu], but %llu %s values need "
                      "%llu bytes within the %llu bytes of data",
                      name, (unsigned long long)t->begin, (unsigned long long)t->end,
                      (unsigned long long)count, t->dtype, (unsigned long long)(count * esize),
                      (unsigned long long)f->data_len);
    const unsigned char *src = f->data + t->begin;
    for (uint64_t e = 0; e < count; e++, src += esize) {
        uint64_t bits = get_le(src, (int)esize);
        if (kind == RT_ST_I64) {
            memcpy((int64_t *)dst + e, &bits, 8);
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
        rt_set(dst, (int64_t)e, kind == RT_ST_F64, v);
    }
    return 1;
}

void rt_st_read_params(const rt_st_file *f, const nnrt_model *m, void *fixed, const char *prefix) {
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *p = &m->params[i];
        char name[512];
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        if (!rt_st_read(f, name, m->f64 ? RT_ST_F64 : RT_ST_F32, p->rank, p->dims,
                        rt_elem_ptr(fixed, p->offset, m->f64)))
            rt_path_error(f->path, "missing tensor '%s'", name);
    }
}

static int is_state_tensor(const char *name) {
    for (size_t i = 0; i < sizeof state_prefixes / sizeof state_prefixes[0]; i++)
        if (strncmp(name, state_prefixes[i], strlen(state_prefixes[i])) == 0) return 1;
    return 0;
}

void rt_st_read_stats(const rt_st_file *f, int64_t n, rt_stats *stats) {
    stats->n = 0;
    const st_tensor *t = find_tensor(f, "standardize.mean");
    if (!t) return;
    stats->mean = rt_alloc_array((size_t)n, sizeof(double));
    stats->std = rt_alloc_array((size_t)n, sizeof(double));
    rt_st_read(f, "standardize.mean", RT_ST_F64, 1, &n, stats->mean);
    if (!rt_st_read(f, "standardize.std", RT_ST_F64, 1, &n, stats->std))
        rt_path_error(f->path, "missing tensor 'standardize.std'");
    stats->n = n;
}

void rt_load_weights(const nnrt_model *m, void *fixed, const char *path, rt_stats *stats) {
    rt_st_file *f = rt_st_open(path);
    rt_st_read_params(f, m, fixed, "");
    if (stats) rt_st_read_stats(f, rt_input_elems(m), stats);
    for (int i = 0; i < f->n; i++) {
        int known = is_state_tensor(f->tensors[i].name);
        for (int32_t k = 0; k < m->n_params && !known; k++)
            known = strcmp(m->params[k].name, f->tensors[i].name) == 0;
        if (!known)
            rt_path_warning(path, "tensor '%s' is not a param of the model; ignored",
                            f->tensors[i].name);
    }
    rt_st_close(f);
}
