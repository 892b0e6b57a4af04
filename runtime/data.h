/* data.h: a data set in memory, and loading one for a model from CSV or IDX files.
 * Values are stored in the model's element type, row by row, inputs and targets apart, so
 * a batch is gathered by copying whole rows of each tensor. */
#ifndef NNRT_DATA_H
#define NNRT_DATA_H

#include <stdint.h>

#include "nnrt.h"

typedef struct rt_dataset {
    int64_t rows;
    int64_t input_elems;  /* per row: every input's elements, in declaration order */
    int64_t target_elems; /* per row: every target's elements (class indexes one-hot) */
    void *inputs;         /* rows * input_elems elements */
    void *targets;        /* rows * target_elems elements; NULL when targets are not read */
} rt_dataset;

/* Elements per row of all inputs, of all targets. */
int64_t rt_input_elems(const nnrt_model *m);
int64_t rt_target_elems(const nnrt_model *m);

/* Inputs and targets for train and eval. `data` is the --data value (NULL: the
 * descriptor's path): one CSV path, or "IMAGES,LABELS" for IDX. Any problem with the files
 * is a fatal error that names the file and the line (or byte). */
void rt_load_training_data(const nnrt_model *m, const char *data, rt_dataset *out);

/* Inputs only, for predict: CSV whose columns are the inputs' columns in declaration order
 * (header optional), or an IDX image file (recognised by its magic bytes). path NULL reads
 * standard input. No rows is a data set of 0 rows. */
void rt_load_predict_data(const nnrt_model *m, const char *path, rt_dataset *out);

#endif
