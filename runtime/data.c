/* data.c: which file feeds which tensor. Maps the descriptor's column ranges (or the IDX
 * pair) onto the readers in csv.c and idx.c. */
#include "data.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "csv.h"
#include "files.h"
#include "idx.h"
#include "text.h"
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

/* The column ranges in force: --columns first, then the descriptor's. */
typedef struct column_maps {
    nnrt_column_map *given; /* from --columns */
    int n_given;
} column_maps;

static const nnrt_column_map *find_columns(const nnrt_model *m, const column_maps *cm,
                                           const char *tensor) {
    for (int i = 0; i < cm->n_given; i++)
        if (strcmp(cm->given[i].tensor, tensor) == 0) return &cm->given[i];
    for (int32_t i = 0; i < m->train.n_columns; i++)
        if (strcmp(m->train.columns[i].tensor, tensor) == 0) return &m->train.columns[i];
    return NULL;
}

/* ---- --columns x=0..3,y=label ---- */

/* A column given by index or by header name. An index is read in 64 bits and checked, so
 * that 4294967296 is an error rather than column 0. */
static int32_t column_index(const char *path, const rt_csv_first *first, const char *text,
                            size_t len) {
    int digits = len > 0;
    for (size_t i = 0; i < len; i++) digits &= text[i] >= '0' && text[i] <= '9';
    if (digits) {
        uint64_t v = 0;
        for (size_t i = 0; i < len; i++) {
            v = v * 10 + (uint64_t)(text[i] - '0');
            if (v > RT_CSV_MAX_COLUMN)
                rt_usage_error("--columns: column %.*s is out of range (0..%d)", (int)len, text,
                               RT_CSV_MAX_COLUMN);
        }
        return (int32_t)v;
    }
    int header = first->kind == RT_CSV_HEADER || first->kind == RT_CSV_HEADER_WITH_NUMBERS;
    int64_t col = header ? rt_csv_header_column(first, text, len) : -1;
    if (col > RT_CSV_MAX_COLUMN)
        rt_usage_error("--columns: column '%.*s' of %s is column %lld, out of range (0..%d)",
                       (int)len, text, rt_display_path(path), (long long)col, RT_CSV_MAX_COLUMN);
    if (col >= 0) return (int32_t)col;
    if (!header)
        rt_usage_error("--columns: '%.*s' is not a column index, and %s has no header to name "
                       "columns%s",
                       (int)len, text, rt_display_path(path),
                       first->kind == RT_CSV_DATA_WITH_WORDS
                           ? " (its first line is data: most of its fields are numbers)"
                           : "");
    rt_usage_error("--columns: %s has no column named '%.*s'", rt_display_path(path), (int)len,
                   text);
}

static int is_data_tensor(const nnrt_model *m, const char *name, size_t len) {
    for (int32_t i = 0; i < m->n_inputs; i++)
        if (rt_name_is(m->inputs[i].name, name, len)) return 1;
    for (int32_t i = 0; i < m->n_targets; i++)
        if (rt_name_is(m->targets[i].name, name, len)) return 1;
    return 0;
}

/* TENSOR=FIRST[..LAST],...: each a column index or a header name. */
static column_maps parse_columns(const nnrt_model *m, const char *spec, const char *path,
                                 const char *text, size_t len) {
    column_maps cm = {0};
    if (!spec) return cm;
    rt_csv_first first;
    rt_csv_first_line(text, len, &first);
    int count = 1;
    for (const char *p = spec; *p; p++) count += *p == ',';
    cm.given = rt_alloc_array((size_t)count, sizeof *cm.given);
    for (const char *p = spec;;) {
        const char *comma = strchr(p, ','), *stop = comma ? comma : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (!eq) rt_usage_error("--columns: '%.*s' is not TENSOR=COLUMNS", (int)(stop - p), p);
        if (!is_data_tensor(m, p, (size_t)(eq - p)))
            rt_usage_error("--columns: model '%s' has no input or target '%.*s'", m->name,
                           (int)(eq - p), p);
        for (int k = 0; k < cm.n_given; k++) /* else the first would win, unsaid */
            if (rt_name_is(cm.given[k].tensor, p, (size_t)(eq - p)))
                rt_usage_error("--columns: '%.*s' is given twice", (int)(eq - p), p);
        const char *from = eq + 1, *dots = strstr(from, "..");
        if (dots && dots > stop) dots = NULL;
        nnrt_column_map *map = &cm.given[cm.n_given++];
        map->tensor = rt_strndup(p, (size_t)(eq - p));
        map->first = column_index(path, &first, from, (size_t)((dots ? dots : stop) - from));
        map->last =
            dots ? column_index(path, &first, dots + 2, (size_t)(stop - dots - 2)) : map->first;
        if (!comma) break;
        p = comma + 1;
    }
    return cm;
}

/* One slot per input and target, from the column ranges in force. The descriptor's ranges
 * are checked as --columns' are: in 64 bits, within 0..RT_CSV_MAX_COLUMN. */
static void add_slots(const nnrt_model *m, const column_maps *cm, const nnrt_tensor *tensors,
                      int32_t n, int is_target, rt_csv_slot *slots, int *n_slots,
                      int32_t *columns) {
    int64_t dest = 0;
    for (int32_t i = 0; i < n; i++) {
        const nnrt_tensor *t = &tensors[i];
        const nnrt_column_map *map = find_columns(m, cm, t->name);
        if (!map) rt_fatal("model descriptor: no CSV columns for '%s'", t->name);
        int given = 0;
        for (int k = 0; k < cm->n_given; k++) given |= map == &cm->given[k];
        const char *origin = given ? "--columns" : "model descriptor";
        int64_t first = map->first, last = map->last;
        if (first < 0 || last < first || last > RT_CSV_MAX_COLUMN)
            rt_fatal("%s: bad CSV column range %lld..%lld for '%s'", origin, (long long)first,
                     (long long)last, t->name);
        int64_t count = last - first + 1;
        int64_t classes = is_target && count == 1 && t->numel > 1 ? t->numel : 0;
        if (!classes && count != t->numel)
            rt_fatal("%s: '%s' has %lld values but CSV columns %lld..%lld", origin, t->name,
                     (long long)t->numel, (long long)first, (long long)last);
        slots[(*n_slots)++] =
            (rt_csv_slot){t->name, (int32_t)first, (int32_t)count, is_target, dest, classes};
        if (last + 1 > *columns) *columns = (int32_t)(last + 1);
        dest += t->numel;
    }
}

/* ---- reading data files ---- */

/* What a data file must be, for checking it as it arrives. */
enum data_kind { DATA_CSV, DATA_IDX, DATA_CSV_OR_IDX };

/* Contents as they arrive: IDX must keep to what its header promises, CSV must be text.
 * predict takes either, told apart by IDX's magic bytes 00 00 08. */
static void check_contents(const char *path, const char *bytes, size_t seen, size_t len,
                           void *state) {
    enum data_kind kind = *(const enum data_kind *)state;
    if (kind == DATA_CSV_OR_IDX) {
        int idx = rt_starts_with(bytes, len, RT_IDX_MAGIC, 3);
        if (idx < 0) return; /* too little to tell */
        kind = idx ? DATA_IDX : DATA_CSV;
    }
    if (kind == DATA_IDX)
        rt_idx_check_prefix(path, bytes, len);
    else
        rt_csv_check_text(path, bytes, seen, len, 0);
}

/* A pipe's bytes, which may be gzip data, checked once they are inflated. */
static void check_raw(const char *path, const char *bytes, size_t seen, size_t len, void *state) {
    if (rt_starts_with(bytes, len, RT_GZIP_MAGIC, 2) != 0) return;
    check_contents(path, bytes, seen, len, state);
}

/* A data file may hold at most half the memory the process may use, so that its values
 * fit in the other half: a few GB of real data on most machines, where a stream of zeros or
 * a gzip bomb stops at once (check_contents) or at that limit. */
static rt_read_limits data_file_limits(enum data_kind *kind) {
    return (rt_read_limits){rt_memory_budget() / 2, "a data file",
                            "half the memory this process may use", check_raw, kind};
}

/* A data file's bytes, inflated when it is gzip'd. */
static char *read_data_file(const char *path, size_t *len, enum data_kind kind) {
    rt_read_limits lim = data_file_limits(&kind);
    char *bytes = rt_read_file(path, len, &lim);
    lim.check = check_contents; /* what gzip data inflates to */
    return rt_inflated(path, bytes, len, &lim);
}

/* predict --loss: a first data row too short for a target's columns says that the targets
 * are missing, which the column count alone would not. */
static void check_targets_present(const nnrt_model *m, const char *path, const char *text,
                                  size_t len, const rt_csv_slot *slots, int n_slots) {
    rt_csv_first first;
    rt_csv_first_row(text, len, &first);
    if (first.kind == RT_CSV_NO_LINES) return;
    for (int i = 0; i < n_slots; i++) {
        const rt_csv_slot *t = &slots[i];
        if (!t->is_target || t->first_column + t->n_columns <= first.fields) continue;
        char where[48];
        if (t->n_columns == 1)
            snprintf(where, sizeof where, "column %d", t->first_column);
        else
            snprintf(where, sizeof where, "columns %d..%d", t->first_column,
                     t->first_column + t->n_columns - 1);
        rt_path_error(path,
                      "predict --loss needs the targets: model '%s' reads target '%s' from %s "
                      "(the model's columns, or --columns), and the rows have %lld columns",
                      m->name, t->tensor, where, (long long)first.fields);
    }
}

static const nnrt_tensor *data_tensor(const nnrt_model *m, const rt_csv_slot *slot) {
    const nnrt_tensor *list = slot->is_target ? m->targets : m->inputs;
    int32_t n = slot->is_target ? m->n_targets : m->n_inputs;
    for (int32_t i = 0; i < n; i++)
        if (!strcmp(list[i].name, slot->tensor)) return &list[i];
    return NULL;
}

/* "the model reads columns 0..8", for "expected N columns (...)"; when a tensor has several
 * dimensions, whose values are its columns row-major, each tensor's columns too:
 * "the model reads columns 0..8: x[3, 2] from 0..5, y[3] from 6..8". */
static char *columns_read(const nnrt_model *m, const rt_csv_slot *slots, int n_slots,
                          int32_t columns) {
    int several_dims = 0;
    for (int i = 0; i < n_slots; i++) {
        const nnrt_tensor *t = data_tensor(m, &slots[i]);
        several_dims |= t && t->rank > 1;
    }
    size_t size = 64 + (several_dims ? (size_t)n_slots * 640 : 0), used;
    char *what = rt_alloc(size);
    used = (size_t)snprintf(what, size, "the model reads columns 0..%d", columns - 1);
    for (int i = 0; several_dims && i < n_slots; i++) {
        const rt_csv_slot *sl = &slots[i];
        const nnrt_tensor *t = data_tensor(m, sl);
        used +=
            (size_t)snprintf(what + used, size - used, "%s%.500s[", i ? ", " : ": ", sl->tensor);
        for (int32_t d = 0; t && d < t->rank; d++)
            used += (size_t)snprintf(what + used, size - used, "%s%lld", d ? ", " : "",
                                     (long long)t->dims[d]);
        int32_t last = sl->first_column + sl->n_columns - 1;
        used += (size_t)snprintf(what + used, size - used, "] from %d", sl->first_column);
        if (last > sl->first_column)
            used += (size_t)snprintf(what + used, size - used, "..%d", last);
    }
    return what;
}

/* The slot that reads column col, or NULL. */
static const rt_csv_slot *slot_at(const rt_csv_slot *slots, int n_slots, int32_t col) {
    for (int i = 0; i < n_slots; i++)
        if (slots[i].first_column <= col && col < slots[i].first_column + slots[i].n_columns)
            return &slots[i];
    return NULL;
}

/* "--columns y=0,x=1..784": the layout with the one target in column 0 (a class index when
 * it has several values) and the inputs each moved one column on; NULL when the model has
 * not exactly one target. */
static char *label_first_columns(const rt_csv_slot *slots, int n_slots) {
    const rt_csv_slot *target = NULL;
    for (int i = 0; i < n_slots; i++)
        if (slots[i].is_target) {
            if (target) return NULL;
            target = &slots[i];
        }
    if (!target) return NULL;
    size_t size = 64 + (size_t)n_slots * 560, used;
    char *spec = rt_alloc(size);
    used = (size_t)snprintf(spec, size, "--columns %.500s=0", target->tensor);
    for (int i = 0; i < n_slots; i++) {
        const rt_csv_slot *sl = &slots[i];
        if (sl->is_target) continue;
        used += (size_t)snprintf(spec + used, size - used, ",%.500s=%d", sl->tensor,
                                 sl->first_column + 1);
        if (sl->n_columns > 1)
            used += (size_t)snprintf(spec + used, size - used, "..%d",
                                     sl->first_column + sl->n_columns);
    }
    return spec;
}

/* Training or eval data whose column 0 looks like a class label, where the model reads an
 * input (MNIST's CSV: the digit, then 784 pixels): the hint under a wrong column count or
 * class index, and the warning when there are columns to spare. NULL when it does not. */
static char *label_column_hint(const rt_csv_slot *slots, int n_slots, const char *columns_spec,
                               const char *text, size_t len) {
    const rt_csv_slot *first = slot_at(slots, n_slots, 0);
    int64_t lo, hi;
    if (columns_spec || !first || first->is_target || !rt_csv_label_column(text, len, 0, &lo, &hi))
        return NULL;
    char *spec = label_first_columns(slots, n_slots);
    if (!spec) return NULL;
    size_t size = strlen(spec) + 640;
    char *hint = rt_alloc(size);
    snprintf(hint, size,
             "column 0 holds whole numbers from %lld to %lld, like a label, but the model reads "
             "it as '%.500s'; if it is the target, pass %s",
             (long long)lo, (long long)hi, first->tensor, spec);
    rt_free(spec);
    return hint;
}

/* Rows as train and eval read them: the column maps in force (a header may name --columns'
 * columns), inputs and targets; for predict --loss, rows without the targets are an error
 * that says so. */
static void eval_plan(const nnrt_model *m, const char *path, const char *columns_spec,
                      const char *text, size_t len, bool for_loss, rt_csv_plan *out) {
    column_maps cm = parse_columns(m, columns_spec, path, text, len);
    int n_slots = 0;
    int32_t columns = 0;
    rt_csv_slot *slots = rt_alloc_array((size_t)m->n_inputs + (size_t)m->n_targets, sizeof *slots);
    add_slots(m, &cm, m->inputs, m->n_inputs, 0, slots, &n_slots, &columns);
    add_slots(m, &cm, m->targets, m->n_targets, 1, slots, &n_slots, &columns);
    if (for_loss) check_targets_present(m, path, text, len, slots, n_slots);
    char *what = columns_read(m, slots, n_slots, columns);
    char *hint = label_column_hint(slots, n_slots, columns_spec, text, len);
    *out = (rt_csv_plan){{slots, n_slots, columns, 0, for_loss, what, hint}, slots, what, hint};
}

void rt_free_csv_plan(rt_csv_plan *p) {
    rt_free(p->slots);
    rt_free(p->what);
    rt_free(p->hint);
    *p = (rt_csv_plan){0};
}

static void load_csv(const nnrt_model *m, const char *path, const char *columns_spec,
                     rt_dataset *out) {
    size_t len;
    char *text = read_data_file(path, &len, DATA_CSV);
    rt_csv_plan plan;
    eval_plan(m, path, columns_spec, text, len, false, &plan);
    rt_csv_parse(path, text, len, &plan.layout, m->f64, out);
    rt_free_csv_plan(&plan);
    rt_free(text);
}

static void load_idx(const nnrt_model *m, const char *images, const char *labels, rt_dataset *out) {
    if (m->n_inputs != 1 || m->n_targets != 1)
        rt_fatal(
            "model descriptor: IDX data needs one input and one target, the model has %d and %d",
            m->n_inputs, m->n_targets);
    size_t len;
    char *bytes = read_data_file(images, &len, DATA_IDX);
    rt_idx_parse_images(images, bytes, len, out);
    rt_free(bytes);
    bytes = read_data_file(labels, &len, DATA_IDX);
    rt_idx_parse_labels(labels, bytes, len, images, m->f64, out);
    rt_free(bytes);
}

/* "IMAGES,LABELS": two IDX files. A path that exists as written is a single (CSV) file. */
bool rt_load_idx_pair(const nnrt_model *m, const char *data, rt_dataset *out) {
    const char *comma = strchr(data, ',');
    if (!comma || comma == data || comma[1] == '\0' || access(data, F_OK) == 0) return false;
    char *images = rt_strndup(data, (size_t)(comma - data));
    load_idx(m, images, comma + 1, out);
    rt_free(images);
    return true;
}

/* The train block's data file is read when no --data is given: where it is missing (the
 * model compiled elsewhere, or its data not downloaded yet), the error says how to give
 * another. */
static void hint_if_missing(const char *path, const char *path2, const char *what) {
    if (access(path, F_OK) != 0 || (path2 && access(path2, F_OK) != 0))
        rt_hint("the model's train block names this file; give the data with --data %s", what);
}

void rt_load_training_data(const nnrt_model *m, const char *data, rt_dataset *out) {
    rt_load_data_columns(m, data, NULL, out);
}

void rt_load_data_columns(const nnrt_model *m, const char *data, const char *columns,
                          rt_dataset *out) {
    *out = (rt_dataset){0};
    const char *kind = m->train.data_kind;
    out->input_elems = rt_input_elems(m);
    out->target_elems = rt_target_elems(m);
    bool idx_model = kind && strcmp(kind, "idx") == 0;
    if (rt_is_text_model(m)) {
        if (columns) rt_usage_error("--columns is for CSV data; this model reads text");
        rt_text_data whole = rt_load_text(m, data, NULL, NULL);
        rt_text_dataset(m, whole.path, whole.ids, whole.n_ids, 0, "the text", out);
        return;
    }
    if (!kind || (!idx_model && strcmp(kind, "csv") != 0))
        rt_fatal("model descriptor: data kind '%s' is not supported (csv, idx or text)",
                 kind ? kind : "(none)");
    if (columns && idx_model)
        rt_usage_error("--columns is for CSV data; this model reads IDX files");
    if (data && rt_load_idx_pair(m, data, out)) return;
    if (data && idx_model) {
        rt_usage_error("--data for this model needs two IDX files, IMAGES,LABELS; got '%s'", data);
    } else if (data) {
        load_csv(m, rt_is_dash(data) ? NULL : data, columns, out); /* NULL: stdin */
    } else if (idx_model) {
        if (!m->train.data_path || !m->train.data_path2)
            rt_usage_error("no data files: give --data IMAGES,LABELS");
        hint_if_missing(m->train.data_path, m->train.data_path2, "IMAGES,LABELS");
        load_idx(m, m->train.data_path, m->train.data_path2, out);
    } else {
        load_csv(m, rt_train_csv_path(m), columns, out);
    }
}

const char *rt_train_csv_path(const nnrt_model *m) {
    if (!m->train.data_path) rt_usage_error("no data file: give --data PATH");
    hint_if_missing(m->train.data_path, NULL, "PATH");
    return m->train.data_path;
}

/* predict: rows with more columns than the inputs have (a training file, with its labels):
 * which to drop. Column 0 when it looks like a label, else those after the inputs'. NULL
 * when the first data row is not longer than the inputs. */
static char *extra_columns_hint(const nnrt_model *m, const char *path, const char *text, size_t len,
                                int32_t inputs) {
    rt_csv_first first;
    rt_csv_first_row(text, len, &first);
    if (first.kind == RT_CSV_NO_LINES || first.fields <= inputs) return NULL;
    const char *file = path ? path : "FILE", *prog = rt_program_name();
    size_t size = 2 * strlen(file) + strlen(prog) + 400;
    char *hint = rt_alloc(size);
    int64_t lo, hi;
    if (rt_csv_label_column(text, len, 0, &lo, &hi))
        snprintf(hint, size,
                 "column 0 holds whole numbers from %lld to %lld, like a label: predict reads "
                 "the inputs only, so drop it (cut -d, -f2- %s | ./%s predict)",
                 (long long)lo, (long long)hi, file, prog);
    else
        snprintf(hint, size,
                 "predict reads the inputs only: drop the columns after column %d (cut -d, "
                 "-f1-%d %s | ./%s predict)%s",
                 inputs - 1, inputs, file, prog,
                 m->n_targets > 0
                     ? ", or pass --loss to read them as the targets and print each row's loss"
                     : "");
    return hint;
}

/* predict's rows without targets: the inputs' columns in declaration order. */
static void inputs_plan(const nnrt_model *m, const char *path, const char *text, size_t len,
                        rt_csv_plan *out) {
    if (rt_input_elems(m) > RT_CSV_MAX_COLUMN)
        rt_fatal("model descriptor: %lld input values, more than a CSV row may have",
                 (long long)rt_input_elems(m));
    rt_csv_slot *slots = rt_alloc_array((size_t)m->n_inputs, sizeof *slots);
    int32_t column = 0;
    for (int32_t i = 0; i < m->n_inputs; i++) {
        const nnrt_tensor *t = &m->inputs[i];
        slots[i] = (rt_csv_slot){t->name, column, (int32_t)t->numel, 0, column, 0};
        column += (int32_t)t->numel;
    }
    char *hint = extra_columns_hint(m, path, text, len, column);
    *out = (rt_csv_plan){
        {slots, m->n_inputs, column, 1, 1, "the inputs' values, in declaration order", hint},
        slots,
        NULL,
        hint};
}

void rt_rows_csv_plan(const nnrt_model *m, const char *path, const char *columns, rt_rows_for use,
                      const char *text, size_t len, rt_csv_plan *out) {
    if (use == RT_ROWS_INPUTS)
        inputs_plan(m, path, text, len, out);
    else
        eval_plan(m, path, columns, text, len, use == RT_ROWS_LOSS, out);
}

void rt_load_rows_whole(const nnrt_model *m, rt_input *in, char *buf, size_t used, size_t cap,
                        const char *columns, rt_rows_for use, rt_dataset *out) {
    bool with_targets = use != RT_ROWS_INPUTS;
    enum data_kind kind = with_targets ? DATA_CSV : DATA_CSV_OR_IDX;
    rt_read_limits lim = data_file_limits(&kind);
    if (!in->regular && used > 0) lim.check(in->path, buf, 0, used, lim.state); /* read so far */
    size_t len;
    char *bytes = rt_input_rest(in, buf, used, cap, &len, &lim);
    lim.check = check_contents; /* what gzip data inflates to */
    char *text = rt_inflated(in->path, bytes, &len, &lim);
    *out = (rt_dataset){0};
    out->input_elems = rt_input_elems(m);
    out->target_elems = with_targets ? rt_target_elems(m) : 0;
    if (!with_targets && rt_idx_sniff(text, len)) {
        if (m->n_inputs != 1)
            rt_path_error(in->path, "an IDX file feeds a model with one input; this one has %d",
                          m->n_inputs);
        rt_idx_parse_images(in->path, text, len, out);
    } else {
        rt_csv_plan plan;
        rt_rows_csv_plan(m, in->path, columns, use, text, len, &plan);
        rt_csv_parse(in->path, text, len, &plan.layout, m->f64, out);
        rt_free_csv_plan(&plan);
    }
    rt_free(text);
}

/* ---- standardisation ---- */

void rt_compute_stats(const rt_dataset *d, const int64_t *rows, int64_t n, int f64, rt_stats *out) {
    int64_t k = d->input_elems;
    out->n = k;
    out->mean = rt_alloc_array((size_t)k, sizeof(double));
    out->std = rt_alloc_array((size_t)k, sizeof(double));
    for (int64_t r = 0; r < n; r++)
        for (int64_t e = 0; e < k; e++) out->mean[e] += rt_input_value(d, rows[r] * k + e, f64);
    for (int64_t e = 0; e < k; e++) out->mean[e] /= n > 0 ? (double)n : 1.0;
    /* Two passes: the sum of squared deviations does not cancel as E[x^2] - E[x]^2 can. */
    for (int64_t r = 0; r < n; r++)
        for (int64_t e = 0; e < k; e++) {
            double dev = rt_input_value(d, rows[r] * k + e, f64) - out->mean[e];
            out->std[e] += dev * dev;
        }
    for (int64_t e = 0; e < k; e++) {
        double sd = sqrt(out->std[e] / (n > 0 ? (double)n : 1.0));
        out->std[e] = sd > 0 ? sd : 1.0;
    }
}

void rt_widen_inputs(rt_dataset *d, int f64) {
    if (!d->inputs_u8) return;
    size_t n = (size_t)(d->rows * d->input_elems);
    void *wide = rt_alloc_array(n + 1, rt_elem_size(f64));
    for (size_t i = 0; i < n; i++)
        rt_set(wide, (int64_t)i, f64, rt_input_value(d, (int64_t)i, f64));
    rt_free(d->inputs);
    d->inputs = wide;
    d->inputs_u8 = 0;
}

void rt_apply_stats(rt_dataset *d, const rt_stats *s, int f64) {
    if (!s || s->n == 0) return;
    rt_widen_inputs(d, f64);
    int64_t k = d->input_elems;
    for (int64_t r = 0; r < d->rows; r++)
        for (int64_t e = 0; e < k; e++) {
            int64_t i = r * k + e;
            rt_set(d->inputs, i, f64, (rt_get(d->inputs, i, f64) - s->mean[e]) / s->std[e]);
        }
}
