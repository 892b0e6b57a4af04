/* fuzz_csv.c: the CSV reader (runtime/csv.c), as train, eval and predict call it.
 *
 * Input: one byte that picks the layout and the element type, then the CSV text.
 *   bits 0-1  layout: 0 train (x = columns 0..1, y = column 2), 1 classes (x = 0..3, a class
 *             index 0..2 in column 4, stored one-hot), 2 predict (exactly 3 input columns,
 *             an empty file allowed), 3 two inputs and a target spread over 0..5
 *   bit 2     f64 (else f32)
 *
 * The text is read twice: whole, as train reads a file, and a few lines at a time into
 * batches of a few rows, as predict reads a pipe (rt_csv_read_lines). The two must agree:
 * the same exit status and, when the text is good, the same rows bit for bit. */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "util.h"

typedef struct Layout {
    rt_csv_slot slots[3];
    int n_slots;
    int32_t columns;
    int exact, allow_empty;
    int64_t input_elems, target_elems;
} Layout;

static const Layout layouts[4] = {
    {{{"x", 0, 2, 0, 0, 0}, {"y", 2, 1, 1, 0, 0}}, 2, 3, 0, 0, 2, 1},
    {{{"x", 0, 4, 0, 0, 0}, {"y", 4, 1, 1, 0, 3}}, 2, 5, 0, 0, 4, 3},
    {{{"x", 0, 3, 0, 0, 0}}, 1, 3, 1, 1, 3, 0},
    {{{"a", 0, 2, 0, 0, 0}, {"b", 3, 3, 0, 2, 0}, {"t", 2, 1, 1, 0, 0}}, 3, 6, 0, 0, 5, 1},
};

typedef struct Parse {
    const char *text;
    size_t len;
    const Layout *layout;
    int f64;
    rt_dataset data;
} Parse;

static rt_csv_layout csv_layout(const Layout *l) {
    return (rt_csv_layout){l->slots, l->n_slots,     l->columns,
                           l->exact, l->allow_empty, "the fuzz layout's columns",
                           NULL};
}

static void parse(void *arg) {
    Parse *p = arg;
    const Layout *l = p->layout;
    rt_csv_layout layout = csv_layout(l);
    p->data = (rt_dataset){.input_elems = l->input_elems, .target_elems = l->target_elems};
    rt_csv_parse("fuzz.csv", p->text, p->len, &layout, p->f64, &p->data);
    /* Every value stored must be one the reader accepted: finite, and a class one-hot. */
    int64_t n = p->data.rows * p->data.input_elems;
    for (int64_t i = 0; i < n; i++)
        if (!(rt_get(p->data.inputs, i, p->f64) == rt_get(p->data.inputs, i, p->f64))) abort();
}

/* The end of the piece that starts at `at`: `lines` whole lines on, or the text's end. */
static size_t piece_end(const Parse *p, size_t at, int lines) {
    for (; lines > 0 && at < p->len; lines--) {
        const char *nl = memchr(p->text + at, '\n', p->len - at);
        at = nl ? (size_t)(nl - p->text) + 1 : p->len;
    }
    return at;
}

/* Appends the batch's rows to p->data, whose arrays hold `room` rows. */
static void keep_rows(Parse *p, const rt_dataset *batch, int64_t *room) {
    size_t size = rt_elem_size(p->f64), in = (size_t)batch->input_elems * size,
           tg = (size_t)batch->target_elems * size;
    rt_dataset *d = &p->data;
    if (batch->rows == 0) return;
    if (d->rows + batch->rows > *room) {
        int64_t grown = 2 * (d->rows + batch->rows);
        d->inputs = rt_grow_array(d->inputs, (size_t)*room, (size_t)grown, in + 1);
        d->targets = rt_grow_array(d->targets, (size_t)*room, (size_t)grown, tg + 1);
        *room = grown;
    }
    memcpy((char *)d->inputs + (size_t)d->rows * in, batch->inputs, (size_t)batch->rows * in);
    if (tg)
        memcpy((char *)d->targets + (size_t)d->rows * tg, batch->targets, (size_t)batch->rows * tg);
    d->rows += batch->rows;
}

/* The text in pieces of 1 to 3 whole lines, each copied to a buffer of its own (so ASan
 * sees a read past a piece), read into batches of 1 to 5 rows, chosen by the text's length. */
static void parse_in_pieces(void *arg) {
    Parse *p = arg;
    const Layout *l = p->layout;
    rt_csv_layout layout = csv_layout(l);
    rt_dataset batch = {.input_elems = l->input_elems, .target_elems = l->target_elems};
    p->data = batch;
    int64_t room = 0, max_rows = 1 + (int64_t)(p->len % 5);
    rt_csv_reader r;
    rt_csv_reader_init(&r, "fuzz.csv", &layout, p->f64, &batch);
    for (size_t at = 0, end; at < p->len; at = end) {
        end = piece_end(p, at, 1 + (int)((p->len + at) % 3));
        char *piece = rt_alloc(end - at + 1);
        memcpy(piece, p->text + at, end - at);
        for (size_t done = 0; done < end - at;) {
            batch.rows = 0;
            done += rt_csv_read_lines(&r, piece + done, end - at - done, max_rows);
            keep_rows(p, &batch, &room);
        }
        rt_free(piece);
    }
    rt_csv_reader_end(&r);
}

static int same_rows(const Parse *a, const Parse *b) {
    size_t size = rt_elem_size(a->f64);
    const rt_dataset *x = &a->data, *y = &b->data;
    if (x->rows != y->rows) return 0;
    if (x->rows == 0) return 1;
    return memcmp(x->inputs, y->inputs, (size_t)(x->rows * x->input_elems) * size) == 0 &&
           (x->target_elems == 0 ||
            memcmp(x->targets, y->targets, (size_t)(x->rows * x->target_elems) * size) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    Parse whole = {.layout = &layouts[data[0] & 3], .f64 = (data[0] >> 2) & 1, .len = size - 1};
    char *text = fuzz_text(data + 1, size - 1);
    whole.text = text;
    Parse pieces = whole;
    int status = fuzz_rt_call(parse, &whole);
    if (fuzz_rt_call(parse_in_pieces, &pieces) != status) abort();
    if (status == 0 && !same_rows(&whole, &pieces)) abort();
    rt_free_all();
    free(text);
    return 0;
}
