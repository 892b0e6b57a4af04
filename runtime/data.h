/* data.h: a data set in memory, and loading one for a model from CSV or IDX files.
 * Values are stored row by row, inputs and targets apart, so a batch is gathered by copying
 * whole rows of each tensor: in the model's element type, except IDX images, whose inputs
 * keep their bytes and are converted as they are gathered (model.c). */
#ifndef NNRT_DATA_H
#define NNRT_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nnrt.h"

/* A text's vocabulary (text.c): its characters (Unicode code points) in increasing order; a
 * character's id is its index. n = 0: none. */
typedef struct rt_vocab {
    int32_t n;
    uint32_t *chars;
} rt_vocab;

/* Text data: rows are windows of a text's ids, gathered when a batch is filled (text.h). */
typedef struct rt_text_windows {
    const int32_t *ids;
    int64_t n_ids, seq, stride;
    int64_t vocab;                     /* the model's: the width of a one-hot row */
    int input_one_hot, target_one_hot; /* [seq, vocab] tensors, else [seq] ids */
    void *target_row;                  /* scratch: one row's targets, for accuracy */
} rt_text_windows;

typedef struct rt_dataset {
    int64_t rows;
    int64_t input_elems;         /* per row: every input's elements, in declaration order */
    int64_t target_elems;        /* per row: every target's elements (class indexes one-hot) */
    void *inputs;                /* rows * input_elems elements; NULL for text */
    int inputs_u8;               /* inputs holds unsigned bytes, not the model's elements */
    void *targets;               /* rows * target_elems elements; NULL when targets are not read */
    const rt_text_windows *text; /* text data: the windows, instead of inputs and targets */
} rt_dataset;

/* How the data was encoded, saved with the weights and applied to the data of eval and
 * predict. Standardisation statistics: per input value (inputs concatenated in declaration
 * order), the mean and the standard deviation over the training rows; n = 0: none. And for
 * text data, the vocabulary (vocab.n = 0: none). */
typedef struct rt_stats {
    int64_t n;
    double *mean, *std;
    rt_vocab vocab;
} rt_stats;

/* Elements per row of all inputs, of all targets. */
int64_t rt_input_elems(const nnrt_model *m);
int64_t rt_target_elems(const nnrt_model *m);

/* Inputs and targets for train and eval. `data` is the --data value (NULL: the
 * descriptor's path): one CSV path, or "IMAGES,LABELS" for IDX. Any problem with the files
 * is a fatal error that names the file and the line (or byte). */
void rt_load_training_data(const nnrt_model *m, const char *data, rt_dataset *out);
/* The same with --columns (NULL: the descriptor's column maps). */
void rt_load_data_columns(const nnrt_model *m, const char *data, const char *columns,
                          rt_dataset *out);

/* The train block's CSV file, read when no --data is given: a usage error when there is none,
 * with a hint when it is missing. */
const char *rt_train_csv_path(const nnrt_model *m);

/* Mean and (population) standard deviation of every input value over rows[0..n); a value
 * that never varies gets std 1, so standardising leaves it centred rather than dividing
 * by 0. */
void rt_compute_stats(const rt_dataset *d, const int64_t *rows, int64_t n, int f64, rt_stats *out);
/* Input value i (row * input_elems + column) as a double, whatever the storage. */
static inline double rt_input_value(const rt_dataset *d, int64_t i, int f64) {
    if (d->inputs_u8) return ((const unsigned char *)d->inputs)[i];
    return f64 ? ((const double *)d->inputs)[i] : (double)((const float *)d->inputs)[i];
}

/* Inputs kept as bytes become the model's elements (the same values), for code that changes
 * them in place. */
void rt_widen_inputs(rt_dataset *d, int f64);

/* x = (x - mean) / std for every input value of every row, in place (inputs kept as bytes are
 * widened first). */
void rt_apply_stats(rt_dataset *d, const rt_stats *s, int f64);

/* When data names two IDX files, "IMAGES,LABELS" (and no file of that name exists), loads
 * them and returns true; out's input_elems and target_elems must be set. */
bool rt_load_idx_pair(const nnrt_model *m, const char *data, rt_dataset *out);

/* What a source of rows reads them for: predict's inputs; predict --loss's inputs and targets
 * (a model with targets), where rows without the targets are an error that says so; or
 * eval's, as train reads them. */
typedef enum rt_rows_for { RT_ROWS_INPUTS, RT_ROWS_LOSS, RT_ROWS_EVAL } rt_rows_for;

/* The CSV rows read for `use`: the inputs' columns in declaration order, or with the targets
 * the rows as train reads them, with the column maps in force (columns: --columns, or NULL).
 * Made from the input's first lines, text[0..len): its header and its first data rows give
 * the column names and the hints. */
struct rt_csv_plan;
void rt_rows_csv_plan(const nnrt_model *m, const char *path, const char *columns, rt_rows_for use,
                      const char *text, size_t len, struct rt_csv_plan *out);

/* Rows read whole: the rest of the input, after the used bytes of buf (a tracked buffer of
 * cap bytes, taken over), within a data file's limits. gzip data is inflated; then an IDX
 * image file (told by its magic bytes) for predict's inputs, else CSV as rt_rows_csv_plan
 * says. No rows is a data set of 0 rows for predict, an error for eval. */
struct rt_input;
void rt_load_rows_whole(const nnrt_model *m, struct rt_input *in, char *buf, size_t used,
                        size_t cap, const char *columns, rt_rows_for use, rt_dataset *out);

#endif
