/* row_source.h: predict's and eval's rows as they arrive. CSV from a file, a pipe or
 * standard input is read a piece at a time and handed on in batches, so that a row's answer
 * never waits for the end of the input (`tail -f rows.csv | ./model predict`) and memory
 * stays that of a batch however long the input runs. gzip data, an IDX file and an
 * IMAGES,LABELS pair are read whole, as train reads them. Rows, line numbers and errors are
 * those of the whole text; a bad row ends the run after every row before it was answered
 * (rt_rows_read). */
#ifndef NNRT_ROW_SOURCE_H
#define NNRT_ROW_SOURCE_H

#include <stdbool.h>
#include <stdint.h>

#include "data.h"
#include "nnrt.h"

/* How long the input may pause before the rows read so far are handed on without waiting
 * for a full batch: a person typing rows, or a producer that writes one at a time, gets
 * each answer this long after its row, while a file or a fast pipe fills whole batches. */
#define RT_ROWS_PAUSE_MS 50

typedef struct rt_row_source rt_row_source;

/* The rows of path (NULL: standard input), read for `use` (data.h), with --columns (NULL:
 * the model's). stats: applied to every row (NULL or n = 0: none). For eval every batch but
 * the last is full, however the input pauses: its sums then add up in the batches
 * rt_evaluate's do. */
rt_row_source *rt_open_rows(const nnrt_model *m, const char *path, const char *columns,
                            rt_rows_for use, const rt_stats *stats);

/* The next rows: data's rows first .. first + count - 1, count at most max; 0 at the end.
 * data stays valid until the next call. */
typedef struct rt_rows {
    const rt_dataset *data;
    int64_t first, count;
} rt_rows;
rt_rows rt_next_rows(rt_row_source *s, int64_t max);

/* The rows an rt_next_rows that an error is ending has read (util.h, rt_set_before_error),
 * which it will not hand on: to be answered before the error's message. */
rt_rows rt_rows_read(rt_row_source *s);

/* How much of the input the rows handed on so far hold, 0..1: of a regular file's bytes, or
 * of the rows of an input read whole; -1 when unknown (a pipe, standard input). */
double rt_rows_fraction(const rt_row_source *s);

void rt_close_rows(rt_row_source *s);

#endif
