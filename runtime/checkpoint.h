/* checkpoint.h: safetensors files (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length, a JSON header naming each tensor's dtype, shape and byte
 * range (and a __metadata__ object of strings), then the raw little-endian data. Weights
 * files hold the params under their own names, so PyTorch and NumPy read them directly;
 * checkpoints add the training state (train_checkpoint.c) as more tensors and metadata. */
#ifndef NNRT_CHECKPOINT_H
#define NNRT_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "nnrt.h"

#define RT_ST_MAX_RANK 8

/* Element kinds, which are also the dtypes written: F32, F64, I64. */
enum rt_st_kind { RT_ST_F32, RT_ST_F64, RT_ST_I64 };

/* ---- writing: collect tensors (by pointer: they must live until the write) and metadata,
 * then write atomically ---- */
typedef struct rt_st_writer rt_st_writer;
rt_st_writer *rt_st_writer_new(void);
void rt_st_add(rt_st_writer *w, const char *name, enum rt_st_kind kind, int rank,
               const int64_t *dims, const void *data);
void rt_st_meta(rt_st_writer *w, const char *key, const char *value);
/* Every param as PREFIX + its name, in the model's type. */
void rt_st_add_params(rt_st_writer *w, const nnrt_model *m, const void *fixed, const char *prefix);
/* Every state (running statistics) under its own name, in the model's type. */
void rt_st_add_states(rt_st_writer *w, const nnrt_model *m, const void *fixed);
/* standardize.mean and standardize.std (F64), when stats->n > 0. */
void rt_st_add_stats(rt_st_writer *w, const rt_stats *stats);
/* A writer with the metadata model and producer (and text.vocab, when stats has a
 * vocabulary), the params, the states and the stats. */
rt_st_writer *rt_st_weights_writer(const nnrt_model *m, const void *fixed, const rt_stats *stats);
/* Temp file, fsync, rename: a reader sees the old file or the new one. */
void rt_st_write(const rt_st_writer *w, const char *path);
void rt_st_writer_free(rt_st_writer *w);

/* Writes the params, the states and, when stats->n > 0, the standardisation statistics. */
void rt_save_weights(const nnrt_model *m, const void *fixed, const rt_stats *stats,
                     const char *path);

/* ---- reading ---- */
typedef struct rt_st_file rt_st_file;
/* A regular file with its header parsed and checked (every tensor's dtype, shape and byte
 * range, duplicate names); a malformed one is a fatal error naming the file. The data is
 * read only by rt_st_read. */
rt_st_file *rt_st_open(const char *path);
void rt_st_close(rt_st_file *f);
/* A metadata value, or NULL; a value with a NUL character in it is a fatal error. */
const char *rt_st_meta_get(const rt_st_file *f, const char *key);
/* The rank and shape of tensor `name` (dims: RT_ST_MAX_RANK), or 0 when there is none. */
int rt_st_shape(const rt_st_file *f, const char *name, int *rank, uint64_t *dims);
/* Reads tensor `name`, which must have this shape, into dst as `kind` (F32 and F64 files
 * convert to either float kind); 0 when the file has no such tensor. */
int rt_st_read(const rt_st_file *f, const char *name, enum rt_st_kind kind, int rank,
               const int64_t *dims, void *dst);
/* The file's tensors in header order, and its metadata, for listing them (`weights`). */
typedef struct rt_st_info {
    const char *name; /* may hold NULs: name_len bytes */
    size_t name_len;
    const char *dtype; /* "F32", "I64", ... */
    int rank;
    uint64_t dims[RT_ST_MAX_RANK];
    uint64_t count; /* elements */
} rt_st_info;
int rt_st_count(const rt_st_file *f);
rt_st_info rt_st_info_at(const rt_st_file *f, int i);
int rt_st_meta_count(const rt_st_file *f);
/* Metadata i (in header order): its key and value, either may hold NULs (lengths given). */
void rt_st_meta_at(const rt_st_file *f, int i, const char **key, size_t *key_len,
                   const char **value, size_t *value_len);
/* Whether rt_st_read_doubles converts tensor i's dtype (every float and integer dtype but
 * the two F8 ones). */
int rt_st_numeric(const rt_st_file *f, int i);
/* Elements first .. first + n - 1 of tensor i as doubles (integers beyond 2^53 rounded). */
void rt_st_read_doubles(const rt_st_file *f, int i, uint64_t first, uint64_t n, double *out);
/* Every value of a tensor just read is finite (and, with nonnegative, >= 0), or a fatal
 * "PATH: error: tensor 'NAME' holds nan at element 3". */
void rt_st_check_values(const rt_st_file *f, const char *name, const void *values, int64_t count,
                        int f64, int nonnegative);
/* Every param as PREFIX + its name; a missing one, or one that is not finite, is a fatal
 * error naming it. */
void rt_st_read_params(const rt_st_file *f, const nnrt_model *m, void *fixed, const char *prefix);
/* Every state by its name; one that is not finite is a fatal error. A missing one is a fatal
 * error when required (resuming), else it takes its initial value (weights saved before
 * the model had it keep loading). */
void rt_st_read_states(const rt_st_file *f, const nnrt_model *m, void *fixed, int required);
/* The standardisation statistics of n input values (stats->n = 0 when the file has none) and
 * the text vocabulary (stats->vocab.n = 0 when none; a malformed one is a fatal error). */
void rt_st_read_stats(const rt_st_file *f, int64_t n, rt_stats *stats);

/* Reads every param and state from the file into the fixed arena (and, when stats is not
 * NULL, the standardisation statistics). Each param must be present with the model's shape
 * (a state missing from the file takes its initial value); F32 and
 * F64 data are both accepted and converted to the model's type. A file that does not fit
 * is a fatal error naming the tensor; tensors that are neither params nor training state
 * get a warning. */
void rt_load_weights(const nnrt_model *m, void *fixed, const char *path, rt_stats *stats);

/* --init-weights: the params the file has by name (with the model's shape, else a fatal
 * error), over the values already in the fixed arena (the initialisers'), and the states it
 * has. When it lacks some params, one line on stderr names those loaded and those that keep
 * their initialisers (a warning); a file with none of the params is a fatal error. Other
 * tensors get rt_load_weights's warning. */
void rt_load_matching_weights(const nnrt_model *m, void *fixed, const char *path);

#endif
