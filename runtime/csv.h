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

/* A layout and what it owns (data.c makes them for a model). */
typedef struct rt_csv_plan {
    rt_csv_layout layout;
    rt_csv_slot *slots;
    char *what, *hint;
} rt_csv_plan;

void rt_free_csv_plan(rt_csv_plan *p);

/* Parses text (len bytes, NUL-terminated) into out; out->input_elems and target_elems
 * must be set; the arrays are allocated here (targets only when target_elems > 0). */
void rt_csv_parse(const char *path, const char *text, size_t len, const rt_csv_layout *layout,
                  int f64, rt_dataset *out);

/* A CSV input read a piece at a time (predict, as its rows arrive): what rt_csv_parse keeps
 * from line to line (the line count, the first line's verdict, the first data row's field
 * count) kept from piece to piece, so that the rows, the line numbers and the errors are
 * those of the whole text. */
typedef struct rt_csv_reader {
    const char *path;
    const rt_csv_layout *layout;
    int f64;
    rt_dataset *out;             /* rows are added at out->rows */
    int64_t room;                /* rows out's arrays hold */
    int64_t line;                /* lines read */
    int64_t first_line;          /* the first non-blank line's number; 0 before it */
    int header;                  /* that line is a header */
    const char *first_hint;      /* said with a bad field of that line */
    int64_t data_line, data_n;   /* the first data row's line and field count; 0 before */
    struct rt_csv_field *fields; /* scratch: a row's fields and values, the columns read */
    double *values;
} rt_csv_reader;

/* out->input_elems and target_elems must be set; out's arrays are allocated as rows come
 * (out->rows and the arrays start empty) and are the caller's (rt_free) afterwards. */
void rt_csv_reader_init(rt_csv_reader *r, const char *path, const rt_csv_layout *layout, int f64,
                        rt_dataset *out);
/* Reads the lines of text[0..len), which are whole (only the input's last line may lack its
 * '\n', and then text[len] is a NUL), into out's rows, until out->rows reaches max_rows; returns
 * the bytes read, all of len unless a data row was left for the next call. */
size_t rt_csv_read_lines(rt_csv_reader *r, const char *text, size_t len, int64_t max_rows);
/* The input's end: no data rows is an error unless the layout allows it. Frees the scratch;
 * out's arrays exist even with no rows. */
void rt_csv_reader_end(rt_csv_reader *r);

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
/* The first data row: the first non-blank line, or the next one when that is a header
 * (RT_CSV_NO_LINES when there is none). */
void rt_csv_first_row(const char *text, size_t len, rt_csv_first *out);

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
 * and is not UTF-16, so a stream of zeros or a gzip bomb of them stops at once. bytes[0] is
 * byte `at` of the contents (rt_check_utf8_text). */
void rt_csv_check_text(const char *path, const char *bytes, size_t seen, size_t len, uint64_t at);

#endif
