/* trace.c: train --trace (see trace.h). Everything a row needs, the element offsets and the
 * line buffer, is built when the trace opens: rows are written from inside the training
 * loop, which must not allocate. */
#include "trace.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "files.h"
#include "numtext.h"
#include "util.h"

/* Room for one value in a row: a comma and "%.17g" of a double ("-1.2345678901234567e-308"
 * is 24 characters). */
#define VALUE_ROOM 32

struct rt_trace {
    FILE *out;
    const char *path; /* NULL: standard output */
    int f64;
    int32_t n_columns;
    int64_t *offsets; /* of each column's element in the fixed arena */
    char *line;
    size_t line_size;
};

/* The model's params, "x, v, h.W", for the message about an unknown name. */
static char *param_list(const nnrt_model *m) {
    size_t size = 1;
    for (int32_t i = 0; i < m->n_params; i++) size += strlen(m->params[i].name) + 2;
    char *list = rt_alloc(size);
    for (int32_t i = 0; i < m->n_params; i++) {
        if (i) strcat(list, ", ");
        strcat(list, m->params[i].name);
    }
    return list;
}

static const nnrt_tensor *find_param(const nnrt_model *m, const char *name, size_t len) {
    for (int32_t i = 0; i < m->n_params; i++)
        if (strlen(m->params[i].name) == len && strncmp(m->params[i].name, name, len) == 0)
            return &m->params[i];
    return NULL;
}

/* A scalar is one column; anything else its first RT_TRACE_ELEMS elements (row-major). */
static int64_t columns_of(const nnrt_tensor *t) {
    if (t->rank == 0) return 1;
    return t->numel < RT_TRACE_ELEMS ? t->numel : RT_TRACE_ELEMS;
}

/* The params named in "NAME[,NAME...]", in the order given; *n_found is their count. */
static const nnrt_tensor **resolve_names(const nnrt_model *m, const char *names, int32_t *n_found) {
    int32_t capacity = 1;
    for (const char *c = names; *c; c++) capacity += *c == ',';
    const nnrt_tensor **found = rt_alloc_array((size_t)capacity, sizeof *found);
    int32_t n = 0;
    for (const char *start = names;; start++) {
        size_t len = strcspn(start, ",");
        if (len == 0) rt_usage_error("--trace: an empty name in '%s'", names);
        const nnrt_tensor *t = find_param(m, start, len);
        if (!t)
            rt_usage_error("--trace: model '%s' has no param '%.*s' (its params: %s)", m->name,
                           (int)len, start, param_list(m));
        for (int32_t i = 0; i < n; i++)
            if (found[i] == t) rt_usage_error("--trace: '%s' is named twice", t->name);
        found[n++] = t;
        start += len;
        if (*start == '\0') break;
    }
    *n_found = n;
    return found;
}

static void write_header(rt_trace *t, const nnrt_tensor **params, int32_t n) {
    fputs("step", t->out);
    for (int32_t i = 0; i < n; i++) {
        if (params[i]->rank == 0) {
            fprintf(t->out, ",%s", params[i]->name);
            continue;
        }
        for (int64_t e = 0; e < columns_of(params[i]); e++)
            fprintf(t->out, ",%s[%lld]", params[i]->name, (long long)e);
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
    int32_t n_params;
    const nnrt_tensor **params = resolve_names(m, o->trace, &n_params);
    rt_trace *t = rt_alloc(sizeof *t);
    t->f64 = m->f64;
    for (int32_t i = 0; i < n_params; i++) t->n_columns += (int32_t)columns_of(params[i]);
    t->offsets = rt_alloc_array((size_t)t->n_columns, sizeof *t->offsets);
    int32_t column = 0;
    for (int32_t i = 0; i < n_params; i++)
        for (int64_t e = 0; e < columns_of(params[i]); e++)
            t->offsets[column++] = params[i]->offset + e;
    t->line_size = VALUE_ROOM * ((size_t)t->n_columns + 2) + 2;
    t->line = rt_alloc(t->line_size);
    t->path = o->trace_out && strcmp(o->trace_out, "-") != 0 ? o->trace_out : NULL;
    t->out = open_output(t->path);
    write_header(t, params, n_params);
    rt_output_check(t->out, t->path);
    rt_free(params);
    return t;
}

int rt_trace_on_stdout(const rt_trace *t) {
    return t && !t->path;
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
