/* data.c: which file feeds which tensor. Maps the descriptor's column ranges (or the IDX
 * pair) onto the readers in csv.c and idx.c. */
#include "data.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "csv.h"
#include "files.h"
#include "idx.h"
#include "util.h"

static int64_t total_numel(const nnrt_tensor *tensors, int32_t n) {
    int64_t sum = 0;
    for (int32_t i = 0; i < n; i++) sum += tensors[i].numel;
    return sum;
}

int64_t rt_input_elems(const nnrt_model *m) {
    return total_numel(m->inputs, m->n_inputs);
}
int64_t rt_target_elems(const nnrt_model *m) {
    return total_numel(m->targets, m->n_targets);
}

static const nnrt_column_map *find_columns(const nnrt_model *m, const char *tensor) {
    for (int32_t i = 0; i < m->train.n_columns; i++)
        if (strcmp(m->train.columns[i].tensor, tensor) == 0) return &m->train.columns[i];
    return NULL;
}

/* One slot per input and target, from the descriptor's column ranges. */
static void add_slots(const nnrt_model *m, const nnrt_tensor *tensors, int32_t n, int is_target,
                      rt_csv_slot *slots, int *n_slots, int32_t *columns) {
    int64_t dest = 0;
    for (int32_t i = 0; i < n; i++) {
        const nnrt_tensor *t = &tensors[i];
        const nnrt_column_map *map = find_columns(m, t->name);
        if (!map) rt_fatal("model descriptor: no CSV columns for '%s'", t->name);
        if (map->first < 0 || map->last < map->first)
            rt_fatal("model descriptor: bad CSV column range %d..%d for '%s'", map->first,
                     map->last, t->name);
        int32_t count = map->last - map->first + 1;
        int64_t classes = is_target && count == 1 && t->numel > 1 ? t->numel : 0;
        if (!classes && count != t->numel)
            rt_fatal("model descriptor: '%s' has %lld values but CSV columns %d..%d", t->name,
                     (long long)t->numel, map->first, map->last);
        slots[(*n_slots)++] = (rt_csv_slot){t->name, map->first, count, is_target, dest, classes};
        if (map->last + 1 > *columns) *columns = map->last + 1;
        dest += t->numel;
    }
}

/* A data file's bytes, inflated when it is gzip'd (the magic bytes 1f 8b say so). */
static char *read_data_file(const char *path, size_t *len) {
    char *bytes = rt_read_file(path, len);
    if (*len < 2 || (unsigned char)bytes[0] != 0x1f || (unsigned char)bytes[1] != 0x8b)
        return bytes;
    char *plain = rt_gunzip(path, bytes, *len, len);
    rt_free(bytes);
    return plain;
}

static void load_csv(const nnrt_model *m, const char *path, rt_dataset *out) {
    int n_slots = 0;
    int32_t columns = 0;
    rt_csv_slot *slots = rt_alloc_array((size_t)(m->n_inputs + m->n_targets), sizeof *slots);
    add_slots(m, m->inputs, m->n_inputs, 0, slots, &n_slots, &columns);
    add_slots(m, m->targets, m->n_targets, 1, slots, &n_slots, &columns);
    char what[64];
    snprintf(what, sizeof what, "the model reads columns 0..%d", columns - 1);
    rt_csv_layout layout = {slots, n_slots, columns, 0, 0, what};

    size_t len;
    char *text = read_data_file(path, &len);
    rt_csv_parse(path, text, len, &layout, m->f64, out);
    rt_free(text);
    rt_free(slots);
}

static void load_idx(const nnrt_model *m, const char *images, const char *labels, rt_dataset *out) {
    if (m->n_inputs != 1 || m->n_targets != 1)
        rt_fatal(
            "model descriptor: IDX data needs one input and one target, the model has %d and %d",
            m->n_inputs, m->n_targets);
    size_t len;
    char *bytes = read_data_file(images, &len);
    rt_idx_parse_images(images, bytes, len, m->f64, out);
    rt_free(bytes);
    bytes = read_data_file(labels, &len);
    rt_idx_parse_labels(labels, bytes, len, images, m->f64, out);
    rt_free(bytes);
}

/* "IMAGES,LABELS": two IDX files. A path that exists as written is a single (CSV) file. */
static bool split_idx_pair(const char *data, char **images, const char **labels) {
    const char *comma = strchr(data, ',');
    if (!comma || comma == data || comma[1] == '\0' || access(data, F_OK) == 0) return false;
    *images = rt_strndup(data, (size_t)(comma - data));
    *labels = comma + 1;
    return true;
}

void rt_load_training_data(const nnrt_model *m, const char *data, rt_dataset *out) {
    rt_load_data_columns(m, data, NULL, out);
}

void rt_load_data_columns(const nnrt_model *m, const char *data, const char *columns,
                          rt_dataset *out) {
    (void)columns;
    const char *kind = m->train.data_kind;
    out->input_elems = rt_input_elems(m);
    out->target_elems = rt_target_elems(m);
    bool idx_model = kind && strcmp(kind, "idx") == 0;
    if (!kind || (!idx_model && strcmp(kind, "csv") != 0))
        rt_fatal("model descriptor: data kind '%s' is not supported (csv or idx)",
                 kind ? kind : "(none)");
    char *images;
    const char *labels;
    if (data && split_idx_pair(data, &images, &labels)) {
        load_idx(m, images, labels, out);
        rt_free(images);
    } else if (data && idx_model) {
        rt_usage_error("--data for this model needs two IDX files, IMAGES,LABELS; got '%s'", data);
    } else if (data) {
        load_csv(m, data, out);
    } else if (idx_model) {
        if (!m->train.data_path || !m->train.data_path2)
            rt_usage_error("no data files: give --data IMAGES,LABELS");
        load_idx(m, m->train.data_path, m->train.data_path2, out);
    } else {
        if (!m->train.data_path) rt_usage_error("no data file: give --data PATH");
        load_csv(m, m->train.data_path, out);
    }
}

void rt_load_predict_data(const nnrt_model *m, const char *path, rt_dataset *out) {
    out->input_elems = rt_input_elems(m);
    out->target_elems = 0;
    size_t len;
    char *text = read_data_file(path, &len);
    if (rt_idx_sniff(text, len)) {
        if (m->n_inputs != 1)
            rt_path_error(path, "an IDX file feeds a model with one input; this one has %d",
                          m->n_inputs);
        rt_idx_parse_images(path, text, len, m->f64, out);
        rt_free(text);
        return;
    }
    if (out->input_elems > INT32_MAX - 1) rt_fatal("model descriptor: too many input values");
    rt_csv_slot *slots = rt_alloc_array((size_t)m->n_inputs, sizeof *slots);
    int32_t column = 0;
    for (int32_t i = 0; i < m->n_inputs; i++) {
        const nnrt_tensor *t = &m->inputs[i];
        slots[i] = (rt_csv_slot){t->name, column, (int32_t)t->numel, 0, column, 0};
        column += (int32_t)t->numel;
    }
    rt_csv_layout layout = {slots, m->n_inputs, column,
                            1,     1,           "the inputs' values, in declaration order"};
    rt_csv_parse(path, text, len, &layout, m->f64, out);
    rt_free(text);
    rt_free(slots);
}

/* ---- standardisation ---- */

void rt_compute_stats(const rt_dataset *d, const int64_t *rows, int64_t n, int f64, rt_stats *out) {
    int64_t k = d->input_elems;
    out->n = k;
    out->mean = rt_alloc_array((size_t)k, sizeof(double));
    out->std = rt_alloc_array((size_t)k, sizeof(double));
    for (int64_t r = 0; r < n; r++)
        for (int64_t e = 0; e < k; e++) out->mean[e] += rt_get(d->inputs, rows[r] * k + e, f64);
    for (int64_t e = 0; e < k; e++) out->mean[e] /= n > 0 ? (double)n : 1.0;
    /* Two passes: the sum of squared deviations does not cancel as E[x^2] - E[x]^2 can. */
    for (int64_t r = 0; r < n; r++)
        for (int64_t e = 0; e < k; e++) {
            double dev = rt_get(d->inputs, rows[r] * k + e, f64) - out->mean[e];
            out->std[e] += dev * dev;
        }
    for (int64_t e = 0; e < k; e++) {
        double sd = sqrt(out->std[e] / (n > 0 ? (double)n : 1.0));
        out->std[e] = sd > 0 ? sd : 1.0;
    }
}

void rt_apply_stats(rt_dataset *d, const rt_stats *s, int f64) {
    if (!s || s->n == 0) return;
    int64_t k = d->input_elems;
    for (int64_t r = 0; r < d->rows; r++)
        for (int64_t e = 0; e < k; e++) {
            int64_t i = r * k + e;
            rt_set(d->inputs, i, f64, (rt_get(d->inputs, i, f64) - s->mean[e]) / s->std[e]);
        }
}
