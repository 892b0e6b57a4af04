/* fuzz_csv.c: the CSV reader (runtime/csv.c), as train, eval and predict call it.
 *
 * Input: one byte that picks the layout and the element type, then the CSV text.
 *   bits 0-1  layout: 0 train (x = columns 0..1, y = column 2), 1 classes (x = 0..3, a class
 *             index 0..2 in column 4, stored one-hot), 2 predict (exactly 3 input columns,
 *             an empty file allowed), 3 two inputs and a target spread over 0..5
 *   bit 2     f64 (else f32) */
#include "fuzz.h"

#include <stdlib.h>

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

static void parse(void *arg) {
    Parse *p = arg;
    const Layout *l = p->layout;
    rt_csv_layout layout = {l->slots, l->n_slots,     l->columns,
                            l->exact, l->allow_empty, "the fuzz layout's columns",
                            NULL};
    p->data = (rt_dataset){.input_elems = l->input_elems, .target_elems = l->target_elems};
    rt_csv_parse("fuzz.csv", p->text, p->len, &layout, p->f64, &p->data);
    /* Every value stored must be one the reader accepted: finite, and a class one-hot. */
    int64_t n = p->data.rows * p->data.input_elems;
    for (int64_t i = 0; i < n; i++)
        if (!(rt_get(p->data.inputs, i, p->f64) == rt_get(p->data.inputs, i, p->f64))) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    Parse p = {.layout = &layouts[data[0] & 3], .f64 = (data[0] >> 2) & 1, .len = size - 1};
    char *text = fuzz_text(data + 1, size - 1);
    p.text = text;
    fuzz_rt_call(parse, &p);
    rt_free_all();
    free(text);
    return 0;
}
