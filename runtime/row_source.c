/* row_source.c: predict's and eval's rows as they arrive (see row_source.h). */
#include "row_source.h"

#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "files.h"
#include "idx.h"
#include "model.h"
#include "util.h"

/* Before the column layout is made, the input is read until its first data row has come
 * whole, and then on while more is there at once, up to this much: the hints under a wrong
 * column count look at the first rows (a column of labels), as they do in a whole file. */
#define FIRST_LINES_BYTES ((size_t)1 << 20)

struct rt_row_source {
    const nnrt_model *m;
    const rt_stats *stats;
    rt_input in;
    rt_dataset data; /* the whole data set, or the batch being read */
    bool whole;      /* read whole: rows are handed on from `next` */
    bool full_batches; /* eval: a batch waits for its rows through any pause */
    int64_t next;
    /* CSV as it comes: buf[start, used) is not read as rows yet, and [start, lines_end) of
     * it is whole lines; buf[0] is the input's byte `base`; buf[used] is a NUL. */
    char *buf;
    size_t cap, start, lines_end, used;
    uint64_t base, longest; /* the longest line the buffer may hold */
    bool at_end, ended;
    rt_csv_plan plan;
    rt_csv_reader reader;
};

/* ---- reading ---- */

static _Noreturn void line_too_long(const rt_row_source *s) {
    rt_path_error(s->in.path,
                  "too large: a line of more than the %llu bytes a data file may have here "
                  "(half the memory this process may use)",
                  (unsigned long long)s->longest);
}

/* Appends what the input has next to the buffer (at_end when nothing: its end), growing the
 * buffer when the line being read fills it. */
static size_t read_piece(rt_row_source *s) {
    if (s->used + 1 == s->cap) {
        if (s->cap - 1 > s->longest) line_too_long(s);
        size_t cap = s->cap - 1 > s->longest / 2 ? (size_t)s->longest + 2 : s->cap * 2;
        s->buf = rt_grow_array(s->buf, s->cap, cap, 1);
        s->cap = cap;
    }
    size_t got = rt_input_read(&s->in, s->buf + s->used, s->cap - 1 - s->used);
    s->used += got;
    s->buf[s->used] = '\0';
    s->at_end = got == 0;
    return got;
}

static const char *last_newline(const char *p, size_t n) {
    while (n > 0)
        if (p[--n] == '\n') return p + n;
    return NULL;
}

/* The bytes from `from` on are CSV text: where its whole lines end found, and, from a pipe,
 * checked as they come (a stream of zeros stops at once). A regular file is not, as a whole
 * file is not (files.h): a NUL or a byte that is not UTF-8 is then the field that is not a
 * number, on its line, in the message train and eval give for the same file. */
static void take_text(rt_row_source *s, size_t from) {
    if (!s->in.regular) rt_csv_check_text(s->in.path, s->buf, from, s->used, s->base);
    const char *nl = last_newline(s->buf + from, s->used - from);
    if (nl) s->lines_end = (size_t)(nl - s->buf) + 1;
    if (s->at_end) s->lines_end = s->used; /* the last line, without its '\n' */
}

/* More CSV text, the lines already read dropped from the buffer first. */
static void read_text(rt_row_source *s) {
    if (s->start > 0) {
        memmove(s->buf, s->buf + s->start, s->used - s->start + 1);
        s->base += s->start;
        s->used -= s->start, s->lines_end -= s->start;
        s->start = 0;
    }
    size_t from = s->used;
    read_piece(s);
    take_text(s, from);
}

/* gzip data and IDX files, told by their first bytes, are read whole; anything else is
 * CSV. Too few bytes to tell: -1. */
static int read_whole(const char *bytes, size_t n, bool at_end) {
    int gzip = rt_starts_with(bytes, n, RT_GZIP_MAGIC, 2);
    int idx = rt_starts_with(bytes, n, RT_IDX_MAGIC, 3);
    if (n == 0 || (gzip == 0 && idx == 0)) return 0;
    if (gzip == 1 || idx == 1) return 1;
    return at_end ? 1 : -1;
}

/* Whether the first data row has come whole, and as much after it as is there at once. */
static bool first_lines_read(rt_row_source *s) {
    if (s->at_end) return true;
    rt_csv_first row;
    rt_csv_first_row(s->buf, s->lines_end, &row);
    return row.kind != RT_CSV_NO_LINES &&
           (s->used >= FIRST_LINES_BYTES || !rt_input_ready(&s->in, 0));
}

/* ---- opening ---- */

static void start_whole(rt_row_source *s, const char *columns, rt_rows_for use) {
    rt_load_rows_whole(s->m, &s->in, s->buf, s->used, s->cap, columns, use, &s->data);
    s->buf = NULL;
    s->whole = true;
    rt_apply_stats(&s->data, s->stats, s->m->f64);
}

/* CSV: the layout, from the first lines, and the reader that goes on from them. */
static void start_csv(rt_row_source *s, const char *columns, rt_rows_for use) {
    take_text(s, 0);
    while (!first_lines_read(s)) read_text(s);
    const nnrt_model *m = s->m;
    rt_rows_csv_plan(m, s->in.path, columns, use, s->buf, s->lines_end, &s->plan);
    s->data.input_elems = rt_input_elems(m);
    s->data.target_elems = use != RT_ROWS_INPUTS ? rt_target_elems(m) : 0;
    rt_csv_reader_init(&s->reader, s->in.path, &s->plan.layout, m->f64, &s->data);
}

rt_row_source *rt_open_rows(const nnrt_model *m, const char *path, const char *columns,
                            rt_rows_for use, const rt_stats *stats) {
    rt_row_source *s = rt_alloc(sizeof *s);
    *s = (rt_row_source){.m = m, .stats = stats, .full_batches = use == RT_ROWS_EVAL};
    bool idx_model = m->train.data_kind && strcmp(m->train.data_kind, "idx") == 0;
    if (use != RT_ROWS_INPUTS) {
        s->data.input_elems = rt_input_elems(m);
        s->data.target_elems = rt_target_elems(m);
        if (path && rt_load_idx_pair(m, path, &s->data)) {
            s->whole = true;
            rt_apply_stats(&s->data, stats, m->f64);
            return s;
        }
        if (idx_model && use == RT_ROWS_LOSS)
            rt_usage_error(
                "predict --loss needs the targets: for this model, --data IMAGES,LABELS");
    }
    rt_input_open(&s->in, path);
    s->longest = rt_memory_budget() / 2;
    s->cap = (size_t)1 << 16;
    s->buf = rt_alloc(s->cap);
    int whole;
    do read_piece(s);
    while ((whole = read_whole(s->buf, s->used, s->at_end)) < 0);
    if (whole)
        start_whole(s, columns, use);
    else
        start_csv(s, columns, use);
    return s;
}

/* ---- the rows ---- */

/* The rows of the whole lines there are, read until the batch is full; when they do not
 * fill it, more is read unless the input ends, or (not for full_batches) pauses with rows in
 * hand. */
static rt_rows next_streamed(rt_row_source *s, int64_t max) {
    s->data.rows = 0;
    for (;;) {
        s->start += rt_csv_read_lines(&s->reader, s->buf + s->start, s->lines_end - s->start, max);
        if (s->data.rows == max || s->at_end) break;
        if (!s->full_batches && s->data.rows > 0 && !rt_input_ready(&s->in, RT_ROWS_PAUSE_MS))
            break;
        read_text(s);
    }
    if (s->at_end && s->start == s->used && !s->ended) {
        rt_csv_reader_end(&s->reader);
        s->ended = true;
    }
    rt_apply_stats(&s->data, s->stats, s->m->f64);
    return (rt_rows){&s->data, 0, s->data.rows};
}

rt_rows rt_next_rows(rt_row_source *s, int64_t max) {
    if (!s->whole) return next_streamed(s, max);
    int64_t count = s->data.rows - s->next < max ? s->data.rows - s->next : max;
    rt_rows rows = {&s->data, s->next, count};
    s->next += count;
    return rows;
}

rt_rows rt_rows_read(rt_row_source *s) {
    if (s->whole) return (rt_rows){&s->data, s->next, 0};
    rt_apply_stats(&s->data, s->stats, s->m->f64);
    return (rt_rows){&s->data, 0, s->data.rows};
}

double rt_rows_fraction(const rt_row_source *s) {
    if (s->whole) return s->data.rows > 0 ? (double)s->next / (double)s->data.rows : 1.0;
    if (!s->in.regular || s->in.size == 0) return -1;
    double done = (double)(s->base + s->start) / (double)s->in.size;
    return done < 1 ? done : 1;
}

void rt_close_rows(rt_row_source *s) {
    rt_input_close(&s->in);
    rt_free_csv_plan(&s->plan);
    rt_free(s->data.inputs);
    rt_free(s->data.targets);
    rt_free(s->buf);
    rt_free(s);
}
