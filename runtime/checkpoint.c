/* checkpoint.c: safetensors writing and reading (see checkpoint.h). */
#include "checkpoint.h"

#include <stdio.h>
#include <string.h>

#include "files.h"
#include "json.h"
#include "util.h"

#define ST_MAX_RANK 8

/* One entry of a file's header. */
typedef struct st_tensor {
    char *name;
    char *dtype;
    int rank;
    uint64_t shape[ST_MAX_RANK];
    uint64_t begin, end; /* data_offsets, relative to the end of the header */
} st_tensor;

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

static text header_json(const nnrt_model *m) {
    text h = {0};
    puts_text(&h, "{\"__metadata__\":{\"model\":");
    put_json_string(&h, m->name ? m->name : "");
    puts_text(&h, ",\"producer\":\"nnc\"}");
    uint64_t offset = 0, esize = rt_elem_size(m->f64);
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *t = &m->params[i];
        puts_text(&h, ",");
        put_json_string(&h, t->name);
        puts_text(&h,
                  m->f64 ? ":{\"dtype\":\"F64\",\"shape\":[" : ":{\"dtype\":\"F32\",\"shape\":[");
        for (int32_t d = 0; d < t->rank; d++) {
            if (d) puts_text(&h, ",");
            put_u64(&h, (uint64_t)t->dims[d]);
        }
        puts_text(&h, "],\"data_offsets\":[");
        put_u64(&h, offset);
        puts_text(&h, ",");
        offset += (uint64_t)t->numel * esize;
        put_u64(&h, offset);
        puts_text(&h, "]}");
    }
    puts_text(&h, "}");
    /* Pad with spaces so the data starts 8-byte aligned, as the reference writer does. */
    while ((8 + h.n) % 8 != 0) puts_text(&h, " ");
    return h;
}

static void write_param_data(FILE *f, const nnrt_model *m, const void *fixed,
                             const nnrt_tensor *t) {
    unsigned char buf[4096];
    size_t used = 0, esize = rt_elem_size(m->f64);
    for (int64_t e = 0; e < t->numel; e++) {
        if (m->f64) {
            uint64_t bits;
            memcpy(&bits, rt_elem_cptr(fixed, t->offset + e, 1), 8);
            put_le(buf + used, bits, 8);
        } else {
            uint32_t bits;
            memcpy(&bits, rt_elem_cptr(fixed, t->offset + e, 0), 4);
            put_le(buf + used, bits, 4);
        }
        used += esize;
        if (used == sizeof buf || e + 1 == t->numel) {
            fwrite(buf, 1, used, f); /* errors are caught by rt_atomic_commit */
            used = 0;
        }
    }
}

void rt_save_weights(const nnrt_model *m, const void *fixed, const char *path) {
    text h = header_json(m);
    unsigned char length[8];
    put_le(length, h.n, 8);
    rt_atomic_file af = rt_atomic_open(path);
    fwrite(length, 1, 8, af.f);
    fwrite(h.s, 1, h.n, af.f);
    for (int32_t i = 0; i < m->n_params; i++) write_param_data(af.f, m, fixed, &m->params[i]);
    rt_atomic_commit(&af);
    rt_free(h.s);
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
        if (t->rank == ST_MAX_RANK)
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

static st_tensor *parse_header(const char *path, const char *json, size_t len, int *count) {
    rt_json j;
    rt_json_init(&j, path, json, len, 8);
    st_tensor *tensors = NULL;
    int n = 0, cap = 0;
    rt_json_expect(&j, '{');
    if (!rt_json_accept(&j, '}')) {
        do {
            char *name = rt_json_string(&j);
            rt_json_expect(&j, ':');
            if (strcmp(name, "__metadata__") == 0) {
                rt_json_skip_value(&j);
                rt_free(name);
                continue;
            }
            if (n == cap) {
                int new_cap = cap ? 2 * cap : 16;
                tensors = rt_grow_array(tensors, (size_t)cap, (size_t)new_cap, sizeof *tensors);
                cap = new_cap;
            }
            st_tensor *t = &tensors[n++];
            t->name = name;
            parse_tensor_info(&j, t);
        } while (rt_json_accept(&j, ','));
        rt_json_expect(&j, '}');
    }
    rt_json_expect_end(&j);
    *count = n;
    return tensors;
}

static const st_tensor *find_tensor(const char *path, const st_tensor *ts, int n,
                                    const char *name) {
    const st_tensor *found = NULL;
    for (int i = 0; i < n; i++) {
        if (strcmp(ts[i].name, name) != 0) continue;
        if (found) rt_path_error(path, "tensor '%s' appears twice", name);
        found = &ts[i];
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

static void check_shape(const char *path, const nnrt_tensor *want, const st_tensor *got) {
    int same = got->rank == want->rank;
    for (int d = 0; same && d < got->rank; d++) same = got->shape[d] == (uint64_t)want->dims[d];
    if (same) return;
    uint64_t want_dims[NNRT_MAX_RANK];
    for (int d = 0; d < want->rank; d++) want_dims[d] = (uint64_t)want->dims[d];
    char got_s[256], want_s[256];
    format_shape(got_s, sizeof got_s, got->rank, got->shape);
    format_shape(want_s, sizeof want_s, want->rank, want_dims);
    rt_path_error(path, "tensor '%s' has shape %s, the model wants %s", want->name, got_s, want_s);
}

static void load_param(const char *path, const nnrt_model *m, void *fixed, const nnrt_tensor *p,
                       const st_tensor *t, const unsigned char *data, uint64_t data_len) {
    check_shape(path, p, t);
    int file_f64 = strcmp(t->dtype, "F64") == 0;
    if (!file_f64 && strcmp(t->dtype, "F32") != 0)
        rt_path_error(path, "tensor '%s' has dtype %s; only F32 and F64 are read", p->name,
                      t->dtype);
    uint64_t esize = file_f64 ? 8 : 4;
    if (t->begin > t->end || t->end > data_len || t->end - t->begin != (uint64_t)p->numel * esize)
        rt_path_error(path,
                      "tensor '%s' has data_offsets [%llu, %llu], but %lld %s values need "
                      "%llu bytes within the %llu bytes of data",
                      p->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                      (long long)p->numel, t->dtype, (unsigned long long)(p->numel * esize),
                      (unsigned long long)data_len);
    const unsigned char *src = data + t->begin;
    for (int64_t e = 0; e < p->numel; e++, src += esize) {
        double v;
        if (file_f64) {
            uint64_t bits = get_le(src, 8);
            memcpy(&v, &bits, 8);
        } else {
            uint32_t bits = (uint32_t)get_le(src, 4);
            float f;
            memcpy(&f, &bits, 4);
            v = f;
        }
        rt_set(fixed, p->offset + e, m->f64, v);
    }
}

void rt_load_weights(const nnrt_model *m, void *fixed, const char *path) {
    size_t len;
    char *bytes = rt_read_file(path, &len);
    if (len < 8) rt_path_error(path, "not a safetensors file: only %zu bytes", len);
    uint64_t header_len = get_le((const unsigned char *)bytes, 8);
    if (header_len > len - 8)
        rt_path_error(path,
                      "not a safetensors file: the header length %llu runs past the end "
                      "of the file (%zu bytes)",
                      (unsigned long long)header_len, len);
    int n;
    st_tensor *tensors = parse_header(path, bytes + 8, (size_t)header_len, &n);
    const unsigned char *data = (const unsigned char *)bytes + 8 + header_len;
    uint64_t data_len = len - 8 - header_len;
    for (int32_t i = 0; i < m->n_params; i++) {
        const nnrt_tensor *p = &m->params[i];
        const st_tensor *t = find_tensor(path, tensors, n, p->name);
        if (!t) rt_path_error(path, "missing tensor '%s'", p->name);
        load_param(path, m, fixed, p, t, data, data_len);
    }
    for (int i = 0; i < n; i++) {
        int known = 0;
        for (int32_t k = 0; k < m->n_params && !known; k++)
            known = strcmp(m->params[k].name, tensors[i].name) == 0;
        if (!known)
            rt_path_warning(path, "tensor '%s' is not a param of the model; ignored",
                            tensors[i].name);
    }
    for (int i = 0; i < n; i++) {
        rt_free(tensors[i].name);
        rt_free(tensors[i].dtype);
    }
    rt_free(tensors);
    rt_free(bytes);
}
