/* csv.h: the CSV reader behind data.c. Rules (docs/runtime.md): comma separated numbers;
 * "\r\n" line ends, spaces and tabs around fields, and blank lines are tolerated; the first
 * non-blank line is a header, and skipped, when any of its fields is not a number. */
#ifndef NNRT_CSV_H
#define NNRT_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"

/* Where one input's or target's values come from in a row. */
typedef struct rt_csv_slot {
    const char *tensor;   /* for messages */
    int32_t first_column; /* 0-based */
    int32_t n_columns;
    int is_target;   /* stored in the data set's targets, else its inputs */
    int64_t dest;    /* element offset of the tensor within a row of that array */
    int64_t classes; /* > 0: one column holding a class index 0..classes-1, stored one-hot */
} rt_csv_slot;

typedef struct rt_csv_layout {
    const rt_csv_slot *slots;
    int n_slots;
    int32_t columns;  /* columns the slots read: 0 .. columns-1 */
    int exact;        /* rows have exactly `columns` fields (else at least that many) */
    int allow_empty;  /* a file without data rows is 0 rows rather than an error */
    const char *what; /* what the columns are, for "expected N columns (...)" messages */
} rt_csv_layout;

/* Parses text (len bytes, NUL-terminated) into out; out->input_elems and target_elems
 * must be set; the arrays are allocated here (targets only when target_elems > 0). */
void rt_csv_parse(const char *path, const char *text, size_t len, const rt_csv_layout *layout,
                  int f64, rt_dataset *out);

#endif
