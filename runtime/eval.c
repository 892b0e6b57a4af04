/* eval.c: the eval and predict commands (see eval.h). */
#include "eval.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "data.h"
#include "files.h"
#include "model.h"
#include "row_source.h"
#include "text.h"
#include "util.h"

/* A text model's data: every window of the text (path NULL: the train block's file, or for
 * predict standard input), encoded with the vocabulary saved with the weights, which the
 * weights must have. */
static void load_text_windows(const nnrt_model *m, const rt_options *o, const char *path,
                              int stdin_default, const rt_stats *stats, rt_dataset *d) {
    if (o->columns) rt_usage_error("--columns is for CSV data; this model reads text");
    if (stats->vocab.n == 0)
        rt_path_error(o->weights,
                      "no text vocabulary (metadata '%s'): model '%s' reads text, and these "
                      "weights were not saved by its training",
                      RT_VOCAB_KEY, m->name);
    const char *source = rt_vocab_source("the weights", o->weights);
    rt_text_data text = {path, NULL, 0, stats->vocab};
    if (path || !stdin_default)
        text = rt_load_text(m, path, &stats->vocab, source);
    else
        rt_text_read(m, NULL, &text.vocab, source, &text.ids, &text.n_ids);
    rt_text_dataset(m, text.path, text.ids, text.n_ids, o->stride, "the text", d);
}

/* The rows eval reads (inputs and targets: the train block's data, or --data), with the
 * standardisation statistics saved with the weights applied. */
static void load_eval_rows(const nnrt_model *m, const rt_options *o, const rt_stats *stats,
                           rt_dataset *d) {
    if (rt_is_text_model(m))
        load_text_windows(m, o, o->data, 0, stats, d);
    else
        rt_load_data_columns(m, o->data, o->columns, d);
    rt_apply_stats(d, stats, m->f64);
}

static bool reads_csv(const nnrt_model *m) {
    return m->train.data_kind && strcmp(m->train.data_kind, "csv") == 0;
}

/* The CSV --data names: the train block's file without it, standard input for '-'. */
static const char *csv_path(const nnrt_model *m, const rt_options *o) {
    if (!o->data) return rt_train_csv_path(m);
    return rt_is_dash(o->data) ? NULL : o->data;
}

/* A status line on a terminal while eval reads (its rows, and how far through a file), a few
 * times a second, erased at the end: a file of gigabytes takes minutes. Nowhere else: a log
 * or a pipe reading stderr gets nothing. */
#define EVAL_PROGRESS_INTERVAL 0.25

typedef struct eval_progress {
    bool on, shown;
    double last;
} eval_progress;

static eval_progress begin_eval_progress(const rt_options *o) {
    eval_progress p = {!o->quiet && isatty(STDERR_FILENO), false, 0};
    if (p.on) p.last = rt_now();
    return p;
}

static void show_eval_progress(eval_progress *p, int64_t rows, double fraction) {
    if (!p->on) return;
    double now = rt_now();
    if (now - p->last < EVAL_PROGRESS_INTERVAL) return;
    p->last = now;
    p->shown = true;
    fprintf(stderr, "\reval: %lld rows", (long long)rows);
    if (fraction >= 0) fprintf(stderr, " (%d%%)", (int)(100 * fraction));
    fputs("\033[K", stderr);
    fflush(stderr);
}

static void end_eval_progress(eval_progress *p) {
    if (p->shown) fputs("\r\033[K", stderr);
    p->shown = false;
}

static void end_eval_progress_hook(void *p) { /* an error's message gets a line of its own */
    end_eval_progress(p);
}

/* eval's metrics over CSV rows read a batch at a time (row_source.h): the memory of a batch
 * whatever the file's length. The batches are rt_evaluate's, full but for the last, so the
 * sums come out as those of the whole file read at once, and of training's validation. */
static rt_metrics evaluate_streamed(const nnrt_model *m, void *fixed, const rt_options *o,
                                    const rt_stats *stats) {
    eval_progress progress = begin_eval_progress(o);
    rt_set_before_error(end_eval_progress_hook, &progress);
    rt_row_source *rows = rt_open_rows(m, csv_path(m, o), o->columns, RT_ROWS_EVAL, stats);
    int64_t most = rt_eval_batch(m, RT_EVAL_CHUNK);
    nnrt_ctx ctx = {0}; /* made for the first batch, the largest but for a fault */
    rt_metrics r = {0};
    for (;;) {
        rt_rows b = rt_next_rows(rows, most);
        if (b.count == 0) break;
        if (b.count > ctx.batch_cap) {
            if (ctx.varying) rt_free_ctx_varying(&ctx);
            ctx = rt_new_ctx(m, fixed, b.count);
        }
        rt_fill_batch(m, &ctx, b.data, NULL, b.first, b.count, 1);
        m->forward(&ctx);
        rt_add_batch_metrics(m, &ctx, b.data, NULL, b.first, &r);
        show_eval_progress(&progress, r.samples, rt_rows_fraction(rows));
    }
    rt_set_before_error(NULL, NULL);
    end_eval_progress(&progress);
    rt_close_rows(rows);
    if (ctx.varying) rt_free_ctx_varying(&ctx);
    return r;
}

/* Weights, and the standardisation statistics saved with them, which the data then gets. CSV
 * is read as it comes ('-': standard input); text and IDX data are read whole. */
int rt_cmd_eval(const nnrt_model *m, const rt_options *o) {
    void *fixed = rt_new_fixed_arena(m);
    rt_stats stats;
    rt_load_weights(m, fixed, o->weights, &stats);
    if (m->n_inputs == 0) {
        printf("loss %.9g\n", rt_mean_loss(rt_evaluate(m, fixed, NULL, NULL, 0)));
        return 0;
    }
    rt_metrics r;
    if (reads_csv(m)) {
        r = evaluate_streamed(m, fixed, o, &stats);
    } else {
        rt_dataset d;
        load_eval_rows(m, o, &stats, &d);
        r = rt_evaluate(m, fixed, &d, NULL, d.rows);
    }
    printf("loss %.9g\n", rt_mean_loss(r));
    if (m->train.classification) printf("accuracy %.4f\n", rt_accuracy(r));
    return 0;
}

/* ---- predict ----
 * One line per row: the output (default), the named bindings (--output), the loss (--loss),
 * the class (--classes) or the class probabilities (--probabilities). */

typedef enum print_kind {
    PRINT_OUTPUT,
    PRINT_BINDINGS,
    PRINT_LOSS,
    PRINT_CLASSES,
    PRINT_PROBABILITIES
} print_kind;

typedef struct predict_plan {
    print_kind kind;
    const nnrt_tensor **shown; /* the tensors printed, in order */
    int n_shown;
} predict_plan;

static print_kind chosen_kind(const rt_options *o) {
    int chosen = (o->output != NULL) + o->print_loss + o->print_classes + o->print_probabilities;
    if (chosen > 1)
        rt_usage_error("predict prints one thing a row: give one of --output, --loss, --classes "
                       "and --probabilities");
    return o->output                ? PRINT_BINDINGS
           : o->print_loss          ? PRINT_LOSS
           : o->print_classes       ? PRINT_CLASSES
           : o->print_probabilities ? PRINT_PROBABILITIES
                                    : PRINT_OUTPUT;
}

static const nnrt_tensor *find_binding(const nnrt_model *m, const char *name, size_t len) {
    for (int32_t i = 0; i < m->n_bindings; i++)
        if (rt_name_is(m->bindings[i].name, name, len)) return &m->bindings[i];
    return NULL;
}

static _Noreturn void unknown_binding(const nnrt_model *m, const char *name, size_t len) {
    size_t size = 64;
    for (int32_t i = 0; i < m->n_bindings; i++) size += strlen(m->bindings[i].name) + 2;
    char *names = rt_alloc(size), *p = names;
    for (int32_t i = 0; i < m->n_bindings; i++)
        p += sprintf(p, "%s%s", i ? ", " : "", m->bindings[i].name);
    if (m->n_bindings == 0) strcpy(names, "none that predict can compute");
    rt_usage_error("--output: model '%s' has no binding '%.*s' (its bindings: %s)", m->name,
                   (int)len, name, names);
}

/* "code" or "h,code": each a binding of the descriptor. */
static void parse_output_names(const nnrt_model *m, const char *spec, predict_plan *pp) {
    int count = 1;
    for (const char *p = spec; *p; p++) count += *p == ',';
    pp->shown = rt_alloc_array((size_t)count, sizeof *pp->shown);
    for (const char *p = spec;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) rt_usage_error("--output: an empty name in '%s'", spec);
        const nnrt_tensor *t = find_binding(m, p, len);
        if (!t) unknown_binding(m, p, len);
        pp->shown[pp->n_shown++] = t;
        if (!end) break;
        p = end + 1;
    }
}

/* --classes and --probabilities read the output as the model's loss does (nnrt.h). */
static void check_classifier(const nnrt_model *m, const char *option) {
    if (m->train.classification == NNRT_ACCURACY_NONE)
        rt_usage_error("%s is for classifiers, and model '%s' is not one (its loss is not bce, "
                       "bce_logits, cross_entropy or softmax_cross_entropy, and its train block "
                       "does not say metric = accuracy)",
                       option, m->name);
}

static predict_plan plan_predict(const nnrt_model *m, const rt_options *o) {
    predict_plan pp = {chosen_kind(o), NULL, 0};
    if (o->columns && !(pp.kind == PRINT_LOSS && m->n_targets > 0))
        rt_usage_error("--columns is for predict --loss of a model with targets; otherwise "
                       "predict reads the inputs' values in declaration order");
    if (pp.kind == PRINT_BINDINGS) parse_output_names(m, o->output, &pp);
    if (pp.kind == PRINT_CLASSES) check_classifier(m, "--classes");
    if (pp.kind == PRINT_PROBABILITIES) check_classifier(m, "--probabilities");
    return pp;
}

static void print_values(const nnrt_model *m, const nnrt_ctx *ctx, const nnrt_tensor *t, int64_t b,
                         int first) {
    const void *data = rt_tensor_data(m, ctx, t);
    int64_t n = t->numel, at = t->varying ? b * n : 0;
    for (int64_t e = 0; e < n; e++)
        printf("%s%.9g", first && e == 0 ? "" : ",", rt_get(data, at + e, m->f64));
}

/* Logits become probabilities: a sigmoid for one, a softmax (shifted by the largest) for
 * several; an output that already is probabilities is printed as it is. `first`: the
 * sample's first value, printed without a comma before it. */
static void print_step_probabilities(const nnrt_model *m, const void *out, int64_t n, int first) {
    int logits = m->train.classification == NNRT_ACCURACY_LOGIT;
    if (!logits || n == 1) {
        for (int64_t i = 0; i < n; i++) {
            double x = rt_get(out, i, m->f64);
            printf("%s%.9g", first && i == 0 ? "" : ",", logits ? 1.0 / (1.0 + exp(-x)) : x);
        }
        return;
    }
    double top = rt_get(out, 0, m->f64), sum = 0.0;
    for (int64_t i = 1; i < n; i++)
        if (rt_get(out, i, m->f64) > top) top = rt_get(out, i, m->f64);
    for (int64_t i = 0; i < n; i++) sum += exp(rt_get(out, i, m->f64) - top);
    for (int64_t i = 0; i < n; i++)
        printf("%s%.9g", first && i == 0 ? "" : ",", exp(rt_get(out, i, m->f64) - top) / sum);
}

/* One sample's classes or probabilities, step by step (rt_class_layout_of): an output [T, V]
 * prints T class ids, or T rows of V probabilities one after the other, on one line. */
static void print_steps(const nnrt_model *m, const void *out, print_kind kind) {
    rt_class_layout l = rt_class_layout_of(m);
    for (int64_t s = 0; s < l.steps; s++) {
        const void *row = rt_elem_cptr(out, s * l.classes, m->f64);
        if (kind == PRINT_CLASSES)
            printf("%s%lld", s ? "," : "", (long long)rt_class_of(m, row, l.classes));
        else
            print_step_probabilities(m, row, l.classes, s == 0);
    }
}

static void print_rows(const nnrt_model *m, const nnrt_ctx *ctx, const predict_plan *pp) {
    const void *out = rt_tensor_data(m, ctx, &m->output);
    int64_t n = m->output.numel;
    for (int64_t b = 0; b < ctx->batch; b++) {
        switch (pp->kind) {
        case PRINT_OUTPUT: print_values(m, ctx, &m->output, b, 1); break;
        case PRINT_LOSS: print_values(m, ctx, &m->loss, b, 1); break;
        case PRINT_BINDINGS:
            for (int i = 0; i < pp->n_shown; i++) print_values(m, ctx, pp->shown[i], b, i == 0);
            break;
        case PRINT_CLASSES:
        case PRINT_PROBABILITIES: print_steps(m, rt_elem_cptr(out, b * n, m->f64), pp->kind); break;
        }
        putchar('\n');
    }
}

/* The model run on rows as they come, a batch at a time, each answered as soon as it has
 * run (standard output flushed), so that a pipe's reader sees them as they are made. */
typedef struct predictor {
    const nnrt_model *m;
    const predict_plan *pp;
    void *fixed;
    nnrt_ctx ctx; /* made for the first batch, larger for a larger one */
    int loss, with_targets;
    rt_row_source *rows;
} predictor;

/* The batch predict runs at most, as eval's. */
static int64_t most_rows(const predictor *p) {
    return p->loss ? rt_eval_batch(p->m, RT_EVAL_CHUNK) : rt_predict_batch(p->m, RT_EVAL_CHUNK);
}

static void make_room(predictor *p, int64_t count) {
    if (count <= p->ctx.batch_cap) return;
    const nnrt_model *m = p->m;
    int64_t most = most_rows(p);
    int64_t cap = 2 * p->ctx.batch_cap > count ? 2 * p->ctx.batch_cap : count;
    if (cap > most) cap = most;
    if (p->ctx.varying) rt_free_ctx_varying(&p->ctx);
    p->ctx = p->loss ? rt_new_ctx(m, p->fixed, cap) : rt_new_predict_ctx(m, p->fixed, cap);
}

static void predict_rows(predictor *p, const rt_dataset *d, int64_t first, int64_t count) {
    const nnrt_model *m = p->m;
    make_room(p, count);
    rt_fill_batch(m, &p->ctx, d, NULL, first, count, p->with_targets);
    if (p->loss)
        m->forward(&p->ctx);
    else
        m->predict(&p->ctx);
    print_rows(m, &p->ctx, p->pp);
    fflush(stdout);
    rt_output_check(stdout, NULL); /* a full disk stops the rows, with its reason */
}

/* A bad row (or a failed read) ends the run: the rows read before it are answered first. */
static void answer_rows_read(void *arg) {
    predictor *p = arg;
    rt_rows r = rt_rows_read(p->rows);
    if (r.count > 0) predict_rows(p, r.data, r.first, r.count);
}

int rt_cmd_predict(const nnrt_model *m, const rt_options *o) {
    predict_plan pp = plan_predict(m, o);
    predictor p = {m, &pp, rt_new_fixed_arena(m), {0}, pp.kind == PRINT_LOSS, 0, NULL};
    p.with_targets = p.loss && m->n_targets > 0;
    rt_stats stats;
    rt_load_weights(m, p.fixed, o->weights, &stats);
    const char *path = rt_is_dash(o->data) ? NULL : o->data;
    int64_t most = most_rows(&p);
    if (rt_is_text_model(m)) { /* every window of the text: read whole */
        rt_dataset d;
        load_text_windows(m, o, path, 1, &stats, &d);
        rt_apply_stats(&d, &stats, m->f64);
        for (int64_t i = 0; i < d.rows; i += most)
            predict_rows(&p, &d, i, d.rows - i < most ? d.rows - i : most);
    } else {
        p.rows = rt_open_rows(m, path, o->columns, p.with_targets ? RT_ROWS_LOSS : RT_ROWS_INPUTS,
                              &stats);
        for (;;) {
            rt_set_before_error(answer_rows_read, &p);
            rt_rows r = rt_next_rows(p.rows, most);
            rt_set_before_error(NULL, NULL);
            if (r.count == 0) break;
            predict_rows(&p, r.data, r.first, r.count);
        }
        rt_close_rows(p.rows);
    }
    if (p.ctx.varying) rt_free_ctx_varying(&p.ctx);
    return 0;
}

/* ---- values ---- */

static _Noreturn void row_past_data(int64_t row, int64_t rows) {
    rt_usage_error("row %lld is past the data: it has %lld row%s (0 to %lld)", (long long)row,
                   (long long)rows, rows == 1 ? "" : "s", (long long)rows - 1);
}

/* Row `row` of CSV read a batch at a time up to it (the rest is not read), into ctx. */
static void fill_csv_row(const nnrt_model *m, const rt_options *o, const rt_stats *stats,
                         nnrt_ctx *ctx) {
    rt_row_source *rows = rt_open_rows(m, csv_path(m, o), o->columns, RT_ROWS_EVAL, stats);
    int64_t seen = 0;
    for (;;) {
        rt_rows b = rt_next_rows(rows, RT_EVAL_CHUNK);
        if (b.count == 0) row_past_data(o->row, seen);
        if (o->row < seen + b.count) {
            rt_fill_batch(m, ctx, b.data, NULL, b.first + (o->row - seen), 1, m->n_targets > 0);
            break;
        }
        seen += b.count;
    }
    rt_close_rows(rows);
}

int rt_cmd_values(const nnrt_model *m, const rt_options *o) {
    void *fixed = rt_new_fixed_arena(m);
    rt_stats stats;
    rt_load_weights(m, fixed, o->weights, &stats);
    nnrt_ctx ctx = rt_new_predict_ctx(m, fixed, 1);
    if (m->n_inputs > 0 && reads_csv(m)) {
        fill_csv_row(m, o, &stats, &ctx);
    } else if (m->n_inputs > 0) {
        rt_dataset d;
        load_eval_rows(m, o, &stats, &d);
        if (o->row >= d.rows) row_past_data(o->row, d.rows);
        rt_fill_batch(m, &ctx, &d, NULL, o->row, 1, m->n_targets > 0);
    }
    m->predict(&ctx);
    for (int32_t i = 0; i < m->n_bindings; i++) {
        const nnrt_tensor *t = &m->bindings[i];
        const void *data = rt_tensor_data(m, &ctx, t);
        printf("%s", t->name);
        for (int64_t e = 0; e < t->numel; e++) printf(" %.17g", rt_get(data, e, m->f64));
        putchar('\n');
    }
    rt_free_ctx_varying(&ctx);
    return 0;
}
