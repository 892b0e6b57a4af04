/* trace.c: train --trace (see trace.h). Everything a row needs, the element offsets and the
 * line buffer, is built when the trace opens: rows are written from inside the training
 * loop, which must not allocate. */
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "model.h"
#include "numtext.h"
#include "util.h"

/* Room for one value in a row: a comma and "%.17g" of a double ("-1.2345678901234567e-308"
 * is 24 characters). */
#define VALUE_ROOM 32

/* Room for a column's name: the param's name, ".grad" and the indices. */
#define LABEL_ROOM (64 + NNRT_MAX_RANK * 24)

struct rt_trace {
    FILE *out;
    const char *path; /* NULL: standard output */
    int f64;
    int grads; /* a column reads a gradient: rows need grad(), not forward() */
    int32_t n_columns;
    int64_t *offsets; /* of each column's element in the fixed arena */
    char *line;
    size_t line_size;
};

/* One item of the list: a param or its gradient, whole (its first RT_TRACE_ELEMS elements)
 * or one element. */
typedef struct item {
    const nnrt_tensor *param;
    int grad;
    int whole;
    int64_t element;              /* flat, row-major, when not whole */
    int n_indices;                /* as written: 1 (flat) or the param's rank */
    int64_t index[NNRT_MAX_RANK]; /* as resolved: from 0 */
} item;

static const nnrt_tensor *find_param(const nnrt_model *m, const char *name, size_t len) {
    int32_t i = rt_param_named(m, name, len);
    return i >= 0 ? &m->params[i] : NULL;
}

/* "[4, 2]", "[]" for a scalar. */
static const char *shape_text(const nnrt_tensor *t, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int32_t d = 0; d < t->rank; d++)
        n += (size_t)snprintf(buf + n, size - n, "%s%lld", d ? ", " : "", (long long)t->dims[d]);
    snprintf(buf + n, size - n, "]");
    return buf;
}

/* A whole scalar is one column; any other whole param its first RT_TRACE_ELEMS elements
 * (row-major); an element one column. */
static int64_t columns_of(const item *it) {
    if (!it->whole || it->param->rank == 0) return 1;
    return it->param->numel < RT_TRACE_ELEMS ? it->param->numel : RT_TRACE_ELEMS;
}

/* The item as one name: "x", "h.W.grad", "h.W[3]", "h.W[3][1]" (indices from 0). */
static size_t item_label(const item *it, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "%s%s", it->param->name, it->grad ? ".grad" : "");
    for (int k = 0; !it->whole && k < it->n_indices && n < size; k++)
        n += (size_t)snprintf(buf + n, size - n, "[%lld]", (long long)it->index[k]);
    return n < size ? n : size - 1;
}

/* Column e of the item's: its label, with the flat index of a whole param's element. */
static void column_label(const item *it, int64_t e, char *buf, size_t size) {
    size_t n = item_label(it, buf, size);
    if (it->whole && it->param->rank > 0) snprintf(buf + n, size - n, "[%lld]", (long long)e);
}

/* The indices written in "[i, j]" (or "[i][j]") at s[0..len) into idx; their count. */
static int parse_indices(const char *s, size_t len, const char *written, int64_t *idx) {
    int n = 0;
    size_t at = 0;
    while (at < len) {
        if (s[at] != '[')
            rt_usage_error("--trace: '%s': expected '[' after the name, got '%c'", written, s[at]);
        at++;
        for (;;) {
            while (at < len && s[at] == ' ') at++;
            char buf[32];
            size_t digits = strspn(s + at, "+-0123456789");
            if (digits > len - at) digits = len - at;
            if (digits == 0 || digits >= sizeof buf)
                rt_usage_error("--trace: '%s': an index must be a whole number", written);
            memcpy(buf, s + at, digits);
            buf[digits] = '\0';
            char *end;
            errno = 0;
            long long v = strtoll(buf, &end, 10);
            if (*end || errno)
                rt_usage_error("--trace: '%s': an index must be a whole number", written);
            if (n == NNRT_MAX_RANK)
                rt_usage_error("--trace: '%s': more than %d indices", written, NNRT_MAX_RANK);
            idx[n++] = v;
            at += digits;
            while (at < len && s[at] == ' ') at++;
            if (at < len && s[at] == ',') {
                at++;
                continue;
            }
            if (at < len && s[at] == ']') break;
            rt_usage_error("--trace: '%s': an index must be a whole number, and ']' close the "
                           "indices",
                           written);
        }
        at++;
    }
    return n;
}

/* Index v of a range of n values, negative ones counting from the end; -1 when outside. */
static int64_t resolve_index(int64_t v, int64_t n) {
    if (v < 0) v += n;
    return v >= 0 && v < n ? v : -1;
}

/* The element the indices name: one flat index, or one a dimension. */
static void resolve_element(item *it, const int64_t *idx, int n, const char *written) {
    const nnrt_tensor *t = it->param;
    char shape[128];
    shape_text(t, shape, sizeof shape);
    it->whole = 0;
    it->n_indices = n;
    if (n == 1) {
        it->element = it->index[0] = resolve_index(idx[0], t->numel);
        if (it->element < 0)
            rt_usage_error("--trace: '%s': index %lld is outside %s, which has %lld elements "
                           "(shape %s): a flat index is 0..%lld, or -%lld..-1 from the end",
                           written, (long long)idx[0], t->name, (long long)t->numel, shape,
                           (long long)t->numel - 1, (long long)t->numel);
        return;
    }
    if (n != t->rank)
        rt_usage_error("--trace: '%s': %s has shape %s: give one flat index (0..%lld) or %d "
                       "indices",
                       written, t->name, shape, (long long)t->numel - 1, t->rank);
    it->element = 0;
    for (int k = 0; k < n; k++) {
        it->index[k] = resolve_index(idx[k], t->dims[k]);
        if (it->index[k] < 0)
            rt_usage_error(
                "--trace: '%s': index %lld of axis %d is outside %s's shape %s (0..%lld, "
                "or -%lld..-1 from the end)",
                written, (long long)idx[k], k, t->name, shape, (long long)t->dims[k] - 1,
                (long long)t->dims[k]);
        it->element = it->element * t->dims[k] + it->index[k];
    }
}

/* "NAME", "NAME.grad", each with "[INDICES]" or without, at s[0..len). A param named
 * "...grad" is found as itself first. */
static item parse_item(const nnrt_model *m, const char *s, size_t len) {
    char *written = rt_strndup(s, len);
    item it = {.whole = 1};
    size_t name_len = strcspn(written, "[");
    it.param = find_param(m, s, name_len);
    static const char grad_suffix[] = ".grad";
    size_t suffix = sizeof grad_suffix - 1;
    if (!it.param && name_len > suffix &&
        strncmp(s + name_len - suffix, grad_suffix, suffix) == 0) {
        it.param = find_param(m, s, name_len - suffix);
        it.grad = 1;
    }
    if (!it.param) rt_no_such_param(m, "--trace", s, it.grad ? name_len - suffix : name_len);
    if (it.grad && it.param->grad_offset < 0)
        rt_usage_error("--trace: '%s': param '%s' has no gradient", written, it.param->name);
    int64_t idx[NNRT_MAX_RANK];
    int n = parse_indices(s + name_len, len - name_len, written, idx);
    if (n > 0) resolve_element(&it, idx, n, written);
    rt_free(written);
    return it;
}

static int same_columns(const item *a, const item *b) {
    return a->param == b->param && a->grad == b->grad && a->whole == b->whole &&
           (a->whole || a->element == b->element);
}

/* The length of the item starting at s: up to a comma outside brackets. */
static size_t item_length(const char *s) {
    size_t len = 0;
    for (int depth = 0; s[len] && (depth > 0 || s[len] != ','); len++)
        depth += s[len] == '[' ? 1 : s[len] == ']' ? -1 : 0;
    return len;
}

/* The items of "ITEM[,ITEM...]", in the order given; *n_found is their count. */
static item *resolve_items(const nnrt_model *m, const char *names, int32_t *n_found) {
    int32_t capacity = 1;
    for (const char *c = names; *c; c++) capacity += *c == ',';
    item *found = rt_alloc_array((size_t)capacity, sizeof *found);
    int32_t n = 0;
    for (const char *start = names;; start++) {
        size_t len = item_length(start);
        if (len == 0) rt_usage_error("--trace: an empty name in '%s'", names);
        item it = parse_item(m, start, len);
        for (int32_t i = 0; i < n; i++)
            if (same_columns(&found[i], &it)) {
                char label[LABEL_ROOM];
                item_label(&it, label, sizeof label);
                rt_usage_error("--trace: '%s' is named twice", label);
            }
        found[n++] = it;
        start += len;
        if (*start == '\0') break;
    }
    *n_found = n;
    return found;
}

static void write_header(rt_trace *t, const item *items, int32_t n) {
    fputs("step", t->out);
    char label[LABEL_ROOM];
    for (int32_t i = 0; i < n; i++)
        for (int64_t e = 0; e < columns_of(&items[i]); e++) {
            column_label(&items[i], e, label, sizeof label);
            fprintf(t->out, ",%s", label);
        }
    fputs(",loss\n", t->out);
}

static FILE *open_output(const char *path) {
    return path ? rt_output_open(path, 0) : stdout;
}

rt_trace *rt_trace_open(const nnrt_model *m, const rt_options *o) {
    if (!o->trace) {
        if (o->trace_out)
            rt_usage_error("--trace-out needs --trace NAME,... (the params to trace)");
        return NULL;
    }
    int32_t n_items;
    item *items = resolve_items(m, o->trace, &n_items);
    rt_trace *t = rt_alloc(sizeof *t);
    t->f64 = m->f64;
    for (int32_t i = 0; i < n_items; i++) {
        t->n_columns += (int32_t)columns_of(&items[i]);
        t->grads |= items[i].grad;
    }
    if (t->grads && !m->grad) rt_fatal("model descriptor: no grad entry point");
    t->offsets = rt_alloc_array((size_t)t->n_columns, sizeof *t->offsets);
    int32_t column = 0;
    for (int32_t i = 0; i < n_items; i++) {
        const item *it = &items[i];
        int64_t base = it->grad ? it->param->grad_offset : it->param->offset;
        int64_t first = it->whole ? 0 : it->element;
        for (int64_t e = 0; e < columns_of(it); e++) t->offsets[column++] = base + first + e;
    }
    t->line_size = VALUE_ROOM * ((size_t)t->n_columns + 2) + 2;
    t->line = rt_alloc(t->line_size);
    t->path = rt_is_dash(o->trace_out) ? NULL : o->trace_out;
    t->out = open_output(t->path);
    write_header(t, items, n_items);
    rt_output_check(t->out, t->path);
    rt_free(items);
    return t;
}

int rt_trace_on_stdout(const rt_trace *t) {
    return t && !t->path;
}

int rt_trace_needs_grad(const rt_trace *t) {
    return t && t->grads;
}
/* The fewest significant digits that read back as the same number in the model's element
 * type: exact, and as short as the numbers allow (2, 1.4, 1.04 on a parabola). */
static int format_value(char *buf, size_t size, double v, int f64) {
    return rt_text_shortest(buf, size, v, f64);
}

static size_t append_value(rt_trace *t, size_t used, double v) {
    t->line[used++] = ',';
    return used + (size_t)format_value(t->line + used, t->line_size - used, v, t->f64);
}

void rt_trace_row(rt_trace *t, int64_t step, const void *fixed, double loss) {
    size_t used = (size_t)snprintf(t->line, t->line_size, "%lld", (long long)step);
    for (int32_t i = 0; i < t->n_columns; i++)
        used = append_value(t, used, rt_get(fixed, t->offsets[i], t->f64));
    used = append_value(t, used, loss);
    t->line[used++] = '\n';
    fwrite(t->line, 1, used, t->out);
    rt_output_check(t->out, t->path);
}

void rt_trace_close(rt_trace *t) {
    if (t) rt_output_close(t->out, t->path);
}
