/* csv.c: reads a whole CSV text into a data set. Every field is checked to be a number,
 * every row to have the first data row's field count; the first problem ends the run with
 * "PATH:LINE: error: ...". Fields are located by pointer and length within the text, so a
 * bad file can never make us read past its end. */
#include "csv.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

typedef struct field {
    const char *p;
    size_t n;
} field;

/* Growable per-row scratch, reused across rows. */
typedef struct row_buffer {
    field *fields;
    double *values;
    size_t cap;
} row_buffer;

static int is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}
static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Decimal numbers only: [+-] digits [. digits] [e [+-] digits]. strtod would also take
 * "nan", "inf" and hex floats, none of which belong in a data file, and a header word such
 * as "inf" must not pass for a number. */
static int is_number(const char *p, size_t n) {
    size_t i = 0, digits = 0;
    if (i < n && (p[i] == '+' || p[i] == '-')) i++;
    while (i < n && is_digit(p[i])) i++, digits++;
    if (i < n && p[i] == '.') {
        i++;
        while (i < n && is_digit(p[i])) i++, digits++;
    }
    if (digits == 0) return 0;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) i++;
        size_t exp_digits = 0;
        while (i < n && is_digit(p[i])) i++, exp_digits++;
        if (exp_digits == 0) return 0;
    }
    return i == n;
}

/* How many bytes of a field to quote in a message. */
static int shown(const field *f) {
    return f->n > 40 ? 40 : (int)f->n;
}

/* Splits [p, eol) at commas into trimmed fields; 0 for a blank line. */
static size_t split_fields(const char *p, const char *eol, row_buffer *row) {
    while (eol > p && is_blank(eol[-1])) eol--;
    if (eol == p) return 0;
    size_t n = 0;
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(eol - p));
        const char *stop = comma ? comma : eol;
        const char *a = p, *b = stop;
        while (a < b && is_blank(*a)) a++;
        while (b > a && is_blank(b[-1])) b--;
        if (n == row->cap) {
            size_t new_cap = row->cap ? 2 * row->cap : 64;
            row->fields = rt_grow_array(row->fields, row->cap, new_cap, sizeof *row->fields);
            row->values = rt_grow_array(row->values, row->cap, new_cap, sizeof *row->values);
            row->cap = new_cap;
        }
        row->fields[n++] = (field){a, (size_t)(b - a)};
        if (!comma) return n;
        p = comma + 1;
    }
}

static int all_numbers(const row_buffer *row, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_number(row->fields[i].p, row->fields[i].n)) return 0;
    return 1;
}

/* Converts every field of a data row, or stops the run at the first bad one. */
static void convert_fields(const char *path, int64_t line, row_buffer *row, size_t n, int f64) {
    for (size_t i = 0; i < n; i++) {
        const field *f = &row->fields[i];
        if (f->n == 0) rt_line_error(path, line, "column %zu is empty", i);
        if (!is_number(f->p, f->n))
            rt_line_error(path, line, "column %zu: '%.*s' is not a number", i, shown(f), f->p);
        /* The field is followed by a separator, a blank or the text's final NUL, none of
         * which continue a decimal number, so strtod stops exactly at its end. */
        double v = strtod(f->p, NULL);
        if (isinf(v) || (!f64 && fabs(v) > FLT_MAX))
            rt_line_error(path, line, "column %zu: %.*s is out of range for %s", i, shown(f), f->p,
                          f64 ? "a 64-bit float" : "a 32-bit float");
        row->values[i] = v;
    }
}

static void store_slot(const char *path, int64_t line, const rt_csv_slot *slot,
                       const row_buffer *row, void *dest_row, int f64) {
    if (slot->classes > 0) {
        size_t col = (size_t)slot->first_column;
        double v = row->values[col];
        const field *f = &row->fields[col];
        if (v != floor(v))
            rt_line_error(path, line, "column %zu: class index %.*s is not a whole number", col,
                          shown(f), f->p);
        if (v < 0 || v >= (double)slot->classes)
            rt_line_error(path, line,
                          "column %zu: class index %.*s is out of range 0..%lld for '%s'", col,
                          shown(f), f->p, (long long)slot->classes - 1, slot->tensor);
        rt_set(dest_row, slot->dest + (int64_t)v, f64, 1.0);
        return;
    }
    for (int32_t c = 0; c < slot->n_columns; c++)
        rt_set(dest_row, slot->dest + c, f64, row->values[slot->first_column + c]);
}

static int64_t count_lines(const char *text, size_t len) {
    int64_t lines = 1;
    for (const char *p = text; (p = memchr(p, '\n', len - (size_t)(p - text))) != NULL; p++)
        lines++;
    return lines;
}

/* The field count rules: the first data row has the columns the layout reads, the others
 * have as many fields as the first. */
static void check_field_count(const char *path, int64_t line, const rt_csv_layout *layout, size_t n,
                              int64_t first_line, size_t first_n) {
    if (first_line == 0) {
        size_t want = (size_t)layout->columns;
        if (layout->exact ? n != want : n < want)
            rt_line_error(path, line, "expected %s%zu columns (%s), found %zu",
                          layout->exact ? "" : "at least ", want, layout->what, n);
    } else if (n != first_n) {
        rt_line_error(path, line, "row has %zu columns, but the first data row (line %lld) has %zu",
                      n, (long long)first_line, first_n);
    }
}

void rt_csv_parse(const char *path, const char *text, size_t len, const rt_csv_layout *layout,
                  int f64, rt_dataset *out) {
    int64_t max_rows = count_lines(text, len);
    size_t esize = rt_elem_size(f64);
    out->rows = 0;
    out->inputs = rt_alloc_array((size_t)max_rows * (size_t)out->input_elems, esize);
    out->targets = out->target_elems > 0
                       ? rt_alloc_array((size_t)max_rows * (size_t)out->target_elems, esize)
                       : NULL;

    row_buffer row = {0};
    int64_t line = 0, header_line = 0, first_line = 0;
    size_t first_n = 0;
    int seen_a_row = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        line++;
        size_t n = split_fields(p, eol, &row);
        p = eol < end ? eol + 1 : end;
        if (n == 0) continue;
        if (!seen_a_row) {
            seen_a_row = 1;
            if (!all_numbers(&row, n)) {
                header_line = line;
                continue;
            }
        }
        check_field_count(path, line, layout, n, first_line, first_n);
        if (first_line == 0) first_line = line, first_n = n;
        convert_fields(path, line, &row, n, f64);
        for (int s = 0; s < layout->n_slots; s++) {
            const rt_csv_slot *slot = &layout->slots[s];
            void *base = slot->is_target ? out->targets : out->inputs;
            int64_t elems = slot->is_target ? out->target_elems : out->input_elems;
            if (!base) continue; /* targets not wanted */
            store_slot(path, line, slot, &row, rt_elem_ptr(base, out->rows * elems, f64), f64);
        }
        out->rows++;
    }
    rt_free(row.fields);
    rt_free(row.values);
    if (out->rows > 0 || layout->allow_empty) return;
    if (!seen_a_row) rt_line_error(path, 1, "the file is empty");
    rt_line_error(path, header_line + 1, "no data rows after the header on line %lld",
                  (long long)header_line);
}
