/* fuzz_safetensors.c: the safetensors reader (runtime/checkpoint.c and its JSON reader,
 * json.c), as --weights, --init-weights and --resume use it: the header, each param of a
 * small model in both element types, the training state's I64 tensors, the
 * standardisation statistics, the metadata, rt_load_weights and --init-weights's
 * rt_load_matching_weights as a whole, and the listing `weights FILE` reads (every tensor's
 * first values in any dtype, every metadata entry).
 *
 * The input is the file as it is on disk; it is given to the reader as a memfd, so the
 * reader opens and reads it like any file. */
#include "fuzz.h"

#include <stdlib.h>

#include "checkpoint.h"
#include "util.h"

/* The params of a small model: h = dense(x[2], 4), p = dense(h, 1), and a scalar s. */
#define FIXED_ELEMS 18
static const nnrt_tensor params[] = {
    {.name = "h.W", .rank = 2, .dims = {2, 4}, .numel = 8, .offset = 0},
    {.name = "h.b", .rank = 1, .dims = {4}, .numel = 4, .offset = 8},
    {.name = "p.W", .rank = 2, .dims = {4, 1}, .numel = 4, .offset = 12},
    {.name = "p.b", .rank = 1, .dims = {1}, .numel = 1, .offset = 16},
    {.name = "s", .rank = 0, .numel = 1, .offset = 17},
};
static const nnrt_tensor inputs[] = {{.name = "x", .rank = 1, .dims = {2}, .numel = 2}};

static nnrt_model model(int f64) {
    return (nnrt_model){.abi_version = NNRT_ABI_VERSION,
                        .name = "fuzz",
                        .f64 = f64,
                        .fixed_elems = FIXED_ELEMS,
                        .n_params = sizeof params / sizeof *params,
                        .params = params,
                        .n_inputs = 1,
                        .inputs = inputs};
}

typedef struct Read {
    const char *path;
    rt_st_file *file;
    int f64;                  /* the element type reads convert to */
    const nnrt_tensor *param; /* the one read_param reads */
    double fixed[FIXED_ELEMS];
} Read;

static void open_file(void *arg) {
    Read *r = arg;
    r->file = rt_st_open(r->path);
}

static void read_param(void *arg) {
    Read *r = arg;
    const nnrt_tensor *p = r->param;
    rt_st_read(r->file, p->name, r->f64 ? RT_ST_F64 : RT_ST_F32, p->rank, p->dims,
               rt_elem_ptr(r->fixed, p->offset, r->f64));
}

/* What --resume reads besides the params (train.c). */
static void read_state(void *arg) {
    Read *r = arg;
    int64_t order[3], n = 3, history_dims[2] = {2, 3};
    double history[6];
    rt_st_read(r->file, "train.order", RT_ST_I64, 1, &n, order);
    rt_st_read(r->file, "train.history", RT_ST_F64, 2, history_dims, history);
    rt_st_meta_get(r->file, "model");
    rt_st_meta_get(r->file, "step");
}

static void read_stats(void *arg) {
    Read *r = arg;
    rt_stats stats;
    rt_st_read_stats(r->file, 2, &stats);
}

static void read_all_params(void *arg) {
    Read *r = arg;
    nnrt_model m = model(r->f64);
    rt_st_read_params(r->file, &m, r->fixed, "optimizer.velocity.");
}

/* What `weights FILE` reads: each tensor's description and first values, the metadata. */
static void list_tensors(void *arg) {
    Read *r = arg;
    double values[64];
    for (int i = 0; i < rt_st_count(r->file); i++) {
        rt_st_info t = rt_st_info_at(r->file, i);
        if (rt_st_numeric(r->file, i))
            rt_st_read_doubles(r->file, i, 0, t.count < 64 ? t.count : 64, values);
    }
    for (int i = 0; i < rt_st_meta_count(r->file); i++) {
        const char *key, *value;
        size_t key_len, value_len;
        rt_st_meta_at(r->file, i, &key, &key_len, &value, &value_len);
    }
}

static void close_file(void *arg) {
    Read *r = arg;
    rt_st_close(r->file);
}

static void load_weights(void *arg) {
    Read *r = arg;
    nnrt_model m = model(r->f64);
    rt_stats stats = {0};
    rt_load_weights(&m, r->fixed, r->path, &stats);
}

static void load_matching_weights(void *arg) {
    Read *r = arg;
    nnrt_model m = model(r->f64);
    rt_load_matching_weights(&m, r->fixed, r->path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzMemFile file = fuzz_memfile(data, size);
    Read r = {.path = file.path};
    if (fuzz_rt_call(open_file, &r) == 0) {
        for (r.f64 = 0; r.f64 <= 1; r.f64++)
            for (size_t i = 0; i < sizeof params / sizeof *params; i++) {
                r.param = &params[i];
                fuzz_rt_call(read_param, &r);
            }
        r.f64 = 0;
        fuzz_rt_call(read_state, &r);
        fuzz_rt_call(read_stats, &r);
        fuzz_rt_call(read_all_params, &r);
        fuzz_rt_call(list_tensors, &r);
        fuzz_rt_call(close_file, &r);
        fuzz_rt_call(load_weights, &r);
        fuzz_rt_call(load_matching_weights, &r);
    }
    rt_free_all();
    fuzz_close_memfile(&file);
    return 0;
}
