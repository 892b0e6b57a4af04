/* csv.c: reads CSV text into a data set, whole or a piece of whole lines at a time (predict
 * as its rows arrive: rt_csv_reader). Every field is checked to be a number, every row to
 * have the first data row's field count; the first problem ends the run with
 * "PATH:LINE: error: ...". Fields are located by pointer and length within the text, so a
 * bad file can never make us read past its end, and nothing is kept per field beyond the
 * columns the model reads, so a line of a billion commas costs no memory. */
#include "csv.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "util.h"

typedef struct rt_csv_field {
    const char *p;
    size_t n;
} field;

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

/* A field as message text: escaped (it may hold NULs or bytes that are not UTF-8) and cut
 * to about 40 characters. */
typedef struct shown_field {
    char s[48];
} shown_field;

static shown_field show(const field *f) {
    shown_field out;
    rt_printable(out.s, sizeof out.s, f->p, f->n);
    return out;
}

/* ---- lines and fields ---- */

/* A UTF-8 byte-order mark, which spreadsheets write at the start of a CSV file. */
static const char bom[] = "\xEF\xBB\xBF";

static void skip_bom(const char **text, size_t *len) {
    if (*len >= 3 && memcmp(*text, bom, 3) == 0) *text += 3, *len -= 3;
}

/* The fields of one line, in order. */
typedef struct fields {
    const char *p, *eol;
    int done;
} fields;

/* Starts on [p, eol) with the line's trailing blanks cut; 0 for a blank line. */
static int fields_start(fields *it, const char *p, const char *eol) {
    while (eol > p && is_blank(eol[-1])) eol--;
    it->p = p;
    it->eol = eol;
    it->done = eol == p;
    return !it->done;
}

/* The next field, trimmed; 0 after the last. */
static int next_field(fields *it, field *f) {
    if (it->done) return 0;
    const char *comma = memchr(it->p, ',', (size_t)(it->eol - it->p));
    const char *stop = comma ? comma : it->eol, *a = it->p, *b = stop;
    while (a < b && is_blank(*a)) a++;
    while (b > a && is_blank(b[-1])) b--;
    *f = (field){a, (size_t)(b - a)};
    if (comma)
        it->p = comma + 1;
    else
        it->done = 1;
    return 1;
}

static int64_t count_fields(const char *p, const char *eol) {
    int64_t n = 1;
    while ((p = memchr(p, ',', (size_t)(eol - p))) != NULL) p++, n++;
    return n;
}

static const char *line_end(const char *p, const char *end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    return eol ? eol : end;
}

/* ---- the first line: header or data ---- */

static enum rt_csv_first_kind classify(const rt_csv_first *c) {
    if (c->words == 0) return RT_CSV_DATA;
    if (c->numbers == 0) return RT_CSV_HEADER;
    return c->numbers > c->words ? RT_CSV_DATA_WITH_WORDS : RT_CSV_HEADER_WITH_NUMBERS;
}

void rt_csv_first_line(const char *text, size_t len, rt_csv_first *out) {
    memset(out, 0, sizeof *out);
    out->first_number = out->first_word = -1;
    skip_bom(&text, &len);
    const char *p = text, *end = text + len;
    fields it;
    for (;;) {
        if (p >= end) return; /* RT_CSV_NO_LINES */
        const char *eol = line_end(p, end);
        out->line++;
        if (fields_start(&it, p, eol)) break;
        p = eol + 1;
    }
    out->p = it.p;
    out->eol = it.eol;
    field f;
    for (int64_t col = 0; next_field(&it, &f); col++) {
        out->fields++;
        if (f.n == 0) continue; /* an empty name is no evidence either way */
        if (is_number(f.p, f.n)) {
            if (out->numbers++ == 0) out->first_number = col;
        } else if (out->words++ == 0) {
            out->first_word = col;
        }
    }
    out->kind = classify(out);
}

void rt_csv_first_row(const char *text, size_t len, rt_csv_first *out) {
    rt_csv_first_line(text, len, out);
    if (out->kind != RT_CSV_HEADER && out->kind != RT_CSV_HEADER_WITH_NUMBERS) return;
    const char *end = text + len, *nl = memchr(out->eol, '\n', (size_t)(end - out->eol));
    int64_t header_line = out->line;
    rt_csv_first_line(nl ? nl + 1 : end, nl ? (size_t)(end - nl - 1) : 0, out);
    out->line += header_line;
}

int64_t rt_csv_header_column(const rt_csv_first *header, const char *name, size_t len) {
    fields it;
    fields_start(&it, header->p, header->eol);
    field f;
    for (int64_t col = 0; next_field(&it, &f); col++) {
        if (f.n >= 2 && f.p[0] == '"' && f.p[f.n - 1] == '"') f.p++, f.n -= 2;
        if (f.n == len && memcmp(f.p, name, len) == 0) return col;
    }
    return -1;
}

/* What the messages of a text check call CSV and how they ask for it. */
static const char csv_format[] = "CSV", csv_save_as[] = "\"CSV UTF-8\"";

void rt_csv_check_text(const char *path, const char *bytes, size_t seen, size_t len, uint64_t at) {
    rt_check_utf8_text(path, bytes, seen, len, at, csv_format, csv_save_as, "CSV text");
}

/* The field col of the line from p to eol, or 0. */
static int field_at(const char *p, const char *eol, int64_t col, field *f) {
    fields it;
    fields_start(&it, p, eol);
    for (int64_t i = 0; next_field(&it, f); i++)
        if (i == col) return 1;
    return 0;
}

int rt_csv_label_column(const char *text, size_t len, int64_t col, int64_t *lo, int64_t *hi) {
    skip_bom(&text, &len);
    rt_csv_first first;
    rt_csv_first_line(text, len, &first);
    int header = first.kind == RT_CSV_HEADER || first.kind == RT_CSV_HEADER_WITH_NUMBERS;
    int64_t line = 0, rows = 0;
    *lo = RT_CSV_LABEL_MAX + 1, *hi = -1;
    fields it;
    for (const char *p = text, *end = text + len; p < end && rows < RT_CSV_LABEL_ROWS;) {
        const char *eol = line_end(p, end), *start = p;
        p = eol + 1;
        line++;
        if (!fields_start(&it, start, eol) || (header && line == first.line)) continue;
        field f;
        if (!field_at(it.p, it.eol, col, &f) || !is_number(f.p, f.n)) return 0;
        double v = strtod(f.p, NULL);
        if (v != floor(v) || v < 0 || v > RT_CSV_LABEL_MAX) return 0;
        if ((int64_t)v < *lo) *lo = (int64_t)v;
        if ((int64_t)v > *hi) *hi = (int64_t)v;
        rows++;
    }
    return rows > 0 && *hi > *lo;
}

/* ---- data rows ---- */

/* Converts every field of a data row, or stops the run at the first bad one; keeps the
 * columns the model reads. hint: said after a bad field's message (or ""). */
static void convert_fields(const rt_csv_reader *r, const fields *row, const char *hint) {
    fields it = *row;
    field f;
    for (int64_t i = 0; next_field(&it, &f); i++) {
        if (f.n == 0) rt_line_error(r->path, r->line, "column %lld is empty%s", (long long)i, hint);
        if (!is_number(f.p, f.n))
            rt_line_error(r->path, r->line, "column %lld: '%s' is not a number%s", (long long)i,
                          show(&f).s, hint);
        /* The field is followed by a separator, a blank or the text's final NUL, none of
         * which continue a decimal number, so strtod stops exactly at its end. */
        double v = strtod(f.p, NULL);
        if (isinf(v) || (!r->f64 && fabs(v) > FLT_MAX))
            rt_line_error(r->path, r->line, "column %lld: %s is out of range for %s", (long long)i,
                          show(&f).s, r->f64 ? "a 64-bit float" : "a 32-bit float");
        if (i < r->layout->columns) {
            r->fields[i] = f;
            r->values[i] = v;
        }
    }
}

static void store_slot(const rt_csv_reader *r, const rt_csv_slot *slot, void *dest_row) {
    const char *hint = r->layout->hint;
    if (slot->classes > 0) {
        int32_t col = slot->first_column;
        double v = r->values[col];
        const field *f = &r->fields[col];
        if (v != floor(v)) {
            if (hint) rt_hint("%s", hint);
            rt_line_error(r->path, r->line, "column %d: class index %s is not a whole number", col,
                          show(f).s);
        }
        if (v < 0 || v >= (double)slot->classes) {
            if (hint) rt_hint("%s", hint);
            rt_line_error(r->path, r->line,
                          "column %d: class index %s is out of range 0..%lld for '%s'", col,
                          show(f).s, (long long)slot->classes - 1, slot->tensor);
        }
        rt_set(dest_row, slot->dest + (int64_t)v, r->f64, 1.0);
        return;
    }
    for (int32_t c = 0; c < slot->n_columns; c++)
        rt_set(dest_row, slot->dest + c, r->f64, r->values[slot->first_column + c]);
}

/* The field count rules: the first data row has the columns the layout reads, the others
 * have as many fields as the first. */
static void check_field_count(const rt_csv_reader *r, int64_t n) {
    const rt_csv_layout *layout = r->layout;
    if (r->data_line == 0) {
        int64_t want = layout->columns;
        if (layout->hint && n != want) rt_hint("%s", layout->hint);
        if (layout->exact ? n != want : n < want)
            rt_line_error(r->path, r->line, "expected %s%lld columns (%s), found %lld",
                          layout->exact ? "" : "at least ", (long long)want, layout->what,
                          (long long)n);
        /* More columns than the model reads, the first like a label: its data is not what
         * the model thinks it is, though every row loads. */
        if (layout->hint && n > want)
            rt_line_warning(r->path, r->line, "the rows have %lld columns and %s", (long long)n,
                            layout->what);
    } else if (n != r->data_n) {
        rt_line_error(r->path, r->line,
                      "row has %lld columns, but the first data row (line %lld) has %lld",
                      (long long)n, (long long)r->data_line, (long long)r->data_n);
    }
}

/* Non-blank lines: at most that many data rows. */
static int64_t count_rows(const char *text, size_t len) {
    int64_t rows = 0;
    fields it;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *eol = line_end(p, end);
        rows += fields_start(&it, p, eol);
        p = eol + 1;
    }
    return rows;
}

static size_t row_bytes(int64_t elems, int f64) {
    if (elems < 0 || (uint64_t)elems > SIZE_MAX / rt_elem_size(f64))
        rt_fatal("model descriptor: rows of %lld values are too large", (long long)elems);
    return (size_t)elems * rt_elem_size(f64);
}

/* The data set's arrays grow as rows come (never beyond max_rows), so memory follows the
 * rows actually read rather than what the file's size might hold. */
static void make_room(rt_csv_reader *r, int64_t max_rows) {
    rt_dataset *out = r->out;
    if (out->rows < r->room) return;
    int64_t room = r->room < 512 ? 1024 : 2 * r->room;
    if (room > max_rows) room = max_rows;
    out->inputs = rt_grow_array(out->inputs, (size_t)r->room, (size_t)room,
                                row_bytes(out->input_elems, r->f64));
    if (out->target_elems > 0)
        out->targets = rt_grow_array(out->targets, (size_t)r->room, (size_t)room,
                                     row_bytes(out->target_elems, r->f64));
    r->room = room;
}

static void store_row(rt_csv_reader *r, int64_t max_rows) {
    make_room(r, max_rows);
    rt_dataset *out = r->out;
    if (out->targets) /* a class index sets one value of its row: the rest must be 0 */
        memset(rt_elem_ptr(out->targets, out->rows * out->target_elems, r->f64), 0,
               row_bytes(out->target_elems, r->f64));
    for (int i = 0; i < r->layout->n_slots; i++) {
        const rt_csv_slot *slot = &r->layout->slots[i];
        void *base = slot->is_target ? out->targets : out->inputs;
        int64_t elems = slot->is_target ? out->target_elems : out->input_elems;
        if (!base) continue; /* targets not wanted */
        store_slot(r, slot, rt_elem_ptr(base, out->rows * elems, r->f64));
    }
    out->rows++;
}

/* What the first line is, said where it matters: a header that also has numbers is
 * warned about; data with names in it gets a hint with its error. */
static const char *first_line_verdict(const char *path, const rt_csv_first *first) {
    if (first->kind == RT_CSV_HEADER_WITH_NUMBERS) {
        fields it;
        fields_start(&it, first->p, first->eol);
        field f = {0};
        for (int64_t col = 0; next_field(&it, &f) && col < first->first_number; col++) continue;
        rt_line_warning(path, first->line,
                        "taken as a header (most of its fields are not numbers), though its "
                        "column %lld is the number %s",
                        (long long)first->first_number, show(&f).s);
    }
    return first->kind == RT_CSV_DATA_WITH_WORDS
               ? " (the first line is data, not a header: most of its fields are numbers)"
               : "";
}

/* The first non-blank line, line r->line + 1, [p, eol) and not blank: header or data. */
static void judge_first_line(rt_csv_reader *r, const char *p, const char *eol) {
    rt_csv_first first;
    rt_csv_first_line(p, (size_t)(eol - p), &first);
    first.line = r->first_line = r->line + 1;
    r->first_hint = first_line_verdict(r->path, &first);
    r->header = first.kind == RT_CSV_HEADER || first.kind == RT_CSV_HEADER_WITH_NUMBERS;
}

/* One data row, the line r->line, whose fields it starts. */
static void read_row(rt_csv_reader *r, const fields *row, int64_t max_rows) {
    int64_t n = count_fields(row->p, row->eol);
    check_field_count(r, n);
    if (r->data_line == 0) {
        r->data_line = r->line, r->data_n = n;
        r->fields = rt_alloc_array((size_t)r->layout->columns + 1, sizeof *r->fields);
        r->values = rt_alloc_array((size_t)r->layout->columns + 1, sizeof *r->values);
    }
    convert_fields(r, row, r->line == r->first_line ? r->first_hint : "");
    store_row(r, max_rows);
}

void rt_csv_reader_init(rt_csv_reader *r, const char *path, const rt_csv_layout *layout, int f64,
                        rt_dataset *out) {
    *r = (rt_csv_reader){.path = path, .layout = layout, .f64 = f64, .out = out};
    row_bytes(out->input_elems, f64);
    row_bytes(out->target_elems, f64);
    out->rows = 0;
    out->inputs = out->targets = NULL;
}

size_t rt_csv_read_lines(rt_csv_reader *r, const char *text, size_t len, int64_t max_rows) {
    const char *p = text, *end = text + len;
    if (r->line == 0 && r->first_line == 0) {
        /* UTF-16 (its BOM is on the first line, so in the first call's text); NUL bytes are
         * the caller's to check as the text arrives, or fields that are not numbers. */
        rt_check_not_utf16(r->path, text, len, csv_format, csv_save_as);
        skip_bom(&p, &len);
        end = p + len;
    }
    fields it;
    while (p < end) {
        const char *eol = line_end(p, end), *next = eol < end ? eol + 1 : end;
        int blank = !fields_start(&it, p, eol);
        if (!blank && r->first_line == 0) judge_first_line(r, p, eol);
        int data = !blank && !(r->header && r->line + 1 == r->first_line);
        if (data && r->out->rows >= max_rows) break; /* the row is the next call's */
        r->line++;
        if (data) read_row(r, &it, max_rows);
        p = next;
    }
    return (size_t)(p - text);
}

void rt_csv_reader_end(rt_csv_reader *r) {
    rt_dataset *out = r->out;
    rt_free(r->fields);
    rt_free(r->values);
    r->fields = NULL, r->values = NULL;
    if (!out->inputs) { /* the arrays exist even with no rows */
        out->inputs = rt_alloc(1);
        if (out->target_elems > 0) out->targets = rt_alloc(1);
    }
    if (r->data_line > 0 || r->layout->allow_empty) return; /* rows, in this batch or before */
    if (r->first_line == 0) rt_line_error(r->path, 1, "the file is empty");
    rt_line_error(r->path, r->first_line + 1, "no data rows after the header on line %lld",
                  (long long)r->first_line);
}

void rt_csv_parse(const char *path, const char *text, size_t len, const rt_csv_layout *layout,
                  int f64, rt_dataset *out) {
    rt_csv_reader r;
    rt_csv_reader_init(&r, path, layout, f64, out);
    rt_csv_read_lines(&r, text, len, count_rows(text, len));
    rt_csv_reader_end(&r);
}
