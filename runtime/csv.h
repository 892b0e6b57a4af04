/* csv.h: the CSV reader behind data.c. Rules (docs/runtime.md): comma separated numbers;
 * "\r\n" line ends, spaces and tabs around fields, blank lines and a UTF-8 byte-order mark
 * are tolerated. The first non-blank line is data when its fields are numbers, a header
 * when they are names; a line that mixes both is whichever most of its fields say, and
 * either way the reader says so (a header it warns about, data it reports the bad field
 * of), so that a data row is never dropped silently. */
#ifndef NNRT_CSV_H
#define NNRT_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"

/* The largest column index (0-based) a column map may name: nnrt.h's column maps are
 * int32, and LAST + 1 must fit too. */
#define RT_CSV_MAX_COLUMN (INT32_MAX - 1)

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
    const char *hint; /* NULL, or the hint under a wrong column count or class index */
} rt_csv_layout;

/* Parses text (len bytes, NUL-terminated) into out; out->input_elems and target_elems
 * must be set; the arrays are allocated here (targets only when target_elems > 0). */
void rt_csv_parse(const char *path, const char *text, size_t len, const rt_csv_layout *layout,
                  int f64, rt_dataset *out);

/* What the first non-blank line of a CSV text is. */
enum rt_csv_first_kind {
    RT_CSV_NO_LINES,            /* the text is blank */
    RT_CSV_DATA,                /* every non-empty field is a number */
    RT_CSV_HEADER,              /* no field is a number */
    RT_CSV_HEADER_WITH_NUMBERS, /* names and numbers, no more numbers than names: a header */
    RT_CSV_DATA_WITH_WORDS,     /* more numbers than names: data, with a bad field */
};

typedef struct rt_csv_first {
    enum rt_csv_first_kind kind;
    int64_t line;        /* 1-based */
    const char *p, *eol; /* the line, trimmed */
    int64_t fields, numbers, words;
    int64_t first_number, first_word; /* 0-based columns, or -1 */
} rt_csv_first;

void rt_csv_first_line(const char *text, size_t len, rt_csv_first *out);

/* The column of the header field named name[0..len) (double quotes around a header name do
 * not count), or -1. */
int64_t rt_csv_header_column(const rt_csv_first *header, const char *name, size_t len);

/* Whether column col of the first RT_CSV_LABEL_ROWS data rows looks like a class label:
 * whole numbers from 0 to RT_CSV_LABEL_MAX, at least two of them different; *lo and *hi get
 * the smallest and the largest. */
#define RT_CSV_LABEL_ROWS 1000
#define RT_CSV_LABEL_MAX  99
int rt_csv_label_column(const char *text, size_t len, int64_t col, int64_t *lo, int64_t *hi);

/* Checks CSV text as it arrives (files.h's rt_read_limits.check): it has no NUL bytes
 * and is not UTF-16, so a stream of zeros or a gzip bomb of them stops at once. */
void rt_csv_check_text(const char *path, const char *bytes, size_t seen, size_t len);

#endif
