/* train_checkpoint.c: checkpoints and resuming a run.
 *
 * A checkpoint is a weights file (rt_st_weights_writer) plus the fields of the table below,
 * which saving and resuming both walk. Resuming checks every value against what a run with
 * these options and this data can have written, before any of it is used: an edited,
 * corrupted or foreign checkpoint is an error naming the key ("PATH: error: metadata
 * 'nnrt.epoch': ..."), never a run that overflows, allocates without bound or trains on
 * garbage. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "plot.h"
#include "text.h"
#include "train_run.h"
#include "util.h"

#define META_MAX 160

static void meta_int(rt_st_writer *w, const char *key, int64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    rt_st_meta(w, key, buf);
}

/* Hexadecimal floating point: the exact value, read back by strtod. */
static void meta_real(rt_st_writer *w, const char *key, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%a", v);
    rt_st_meta(w, key, buf);
}

static void meta_rng(rt_st_writer *w, const char *key, const rt_rng *g) {
    char buf[META_MAX];
    snprintf(buf, sizeof buf, "%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %d %a",
             g->s[0], g->s[1], g->s[2], g->s[3], g->has_spare, g->spare);
    rt_st_meta(w, key, buf);
}

static _Noreturn void bad_meta(const char *path, const char *key, const char *fmt, ...)
    RT_FORMAT(3, 4);
static void bad_meta(const char *path, const char *key, const char *fmt, ...) {
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    rt_path_error(path, "metadata '%s': %s", key, why);
}

static const char *need_meta(const rt_st_file *f, const char *path, const char *key) {
    const char *v = rt_st_meta_get(f, key);
    if (!v)
        rt_path_error(path,
                      "not a checkpoint of this runtime: no '%s' in its metadata (a weights "
                      "file starts training with --init-weights)",
                      key);
    return v;
}

/* A metadata value as message text. */
typedef struct shown_value {
    char s[80];
} shown_value;

static shown_value show_value(const char *v) {
    shown_value out;
    rt_printable(out.s, sizeof out.s, v, strlen(v));
    return out;
}

/* A whole number as meta_int writes it: an optional '-', then digits, and nothing else. */
static int64_t parse_int(const char *path, const char *key, const char *v) {
    const char *digits = v + (*v == '-');
    size_t n = strspn(digits, "0123456789");
    errno = 0;
    long long x = n > 0 ? strtoll(v, NULL, 10) : 0;
    if (n == 0 || digits[n] != '\0' || errno == ERANGE)
        bad_meta(path, key, "'%s' is not a whole number", show_value(v).s);
    return x;
}

/* A real number as meta_real writes it (%a, or inf, -inf, nan): all of the text. */
static double parse_real(const char *path, const char *key, const char *v) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end != '\0' || *v == ' ' || *v == '\t' || *v == '\n')
        bad_meta(path, key, "'%s' is not a number", show_value(v).s);
    return x;
}

/* "W W W W S X" as meta_rng writes it: four words of 1 to 16 hex digits, the spare flag 0
 * or 1, the spare normal (finite); a state of all zeros is the one xoshiro never leaves. */
static void parse_rng(const char *path, const char *key, const char *v, rt_rng *g) {
    const char *p = v;
    const char *bad = "is not a generator state (four hex words, 0 or 1, a number)";
    uint64_t any = 0;
    for (int w = 0; w < 4; w++) {
        size_t n = strspn(p, "0123456789abcdefABCDEF");
        if (n == 0 || n > 16 || p[n] != ' ') bad_meta(path, key, "'%s' %s", show_value(v).s, bad);
        g->s[w] = strtoull(p, NULL, 16);
        any |= g->s[w];
        p += n + 1;
    }
    if ((p[0] != '0' && p[0] != '1') || p[1] != ' ')
        bad_meta(path, key, "'%s' %s", show_value(v).s, bad);
    g->has_spare = p[0] == '1';
    char *end;
    g->spare = strtod(p + 2, &end);
    if (end == p + 2 || *end != '\0' || p[2] == ' ' || !isfinite(g->spare))
        bad_meta(path, key, "'%s' %s", show_value(v).s, bad);
    if (any == 0) bad_meta(path, key, "an all-zero state, which the generator never has");
}

static void check_range(const char *path, const char *key, int64_t v, int64_t lo, int64_t hi,
                        const char *why) {
    if (v < lo || v > hi)
        bad_meta(path, key, "%lld is out of range %lld..%lld (%s)", (long long)v, (long long)lo,
                 (long long)hi, why);
}

/* a * b + c, or INT64_MAX when that does not fit. */
static int64_t bound_mul_add(int64_t a, int64_t b, int64_t c) {
    int64_t v;
    if (__builtin_mul_overflow(a, b, &v) || __builtin_add_overflow(v, c, &v)) return INT64_MAX;
    return v;
}

/* ---- what resuming accepts of each metadata field: the value read, before it is stored;
 * the fields above it in the table are in the run already ---- */

typedef union field_value {
    int64_t i;        /* INT */
    double x;         /* REAL */
    const char *text; /* TEXT */
} field_value;

static void check_kind(const run *r, const char *path, const char *key, field_value v) {
    (void)r, (void)key;
    if (strcmp(v.text, "checkpoint") != 0)
        rt_path_error(path, "not a checkpoint (its kind is '%s')", show_value(v.text).s);
}

/* A checkpoint's counts of rows beyond this run's training rows, or its order naming other
 * rows, mostly mean a run on other rows: the hint under the error says what chooses them. */
static void hint_same_rows(const run *r) {
    if (has_inputs(r))
        rt_hint("a run resumes on the training rows it was saved with: give it the same data, "
                "--validation (or --validation-data) and --seed");
}

/* A range check whose failure may be the rows' (hint_same_rows). */
static void check_rows_range(const run *r, const char *path, const char *key, int64_t v, int64_t lo,
                             int64_t hi, const char *why) {
    if (v >= lo && v <= hi) return;
    hint_same_rows(r);
    check_range(path, key, v, lo, hi, why);
}

static void check_epoch(const run *r, const char *path, const char *key, field_value v) {
    const char *unit = has_inputs(r) ? "epoch" : "step";
    if (v.i > r->epochs) /* most often a run told to train fewer than are done */
        rt_hint("--%ss counts the %ss in all, those done included: give --%ss %lld or more to "
                "go on from this checkpoint",
                unit, unit, unit, (long long)v.i);
    char why[160];
    snprintf(why, sizeof why, "this run trains %lld %s%s", (long long)r->epochs, unit,
             r->epochs == 1 ? "" : "s");
    check_range(path, key, v.i, 0, r->epochs, why);
}

static void check_pos(const run *r, const char *path, const char *key, field_value v) {
    check_rows_range(r, path, key, v.i, 0, has_inputs(r) ? r->data->n_train - 1 : 0,
                     "rows of the current epoch done, of the training rows");
}

/* At least one step per epoch, and at most one per row. */
static void check_step(const run *r, const char *path, const char *key, field_value v) {
    int64_t most = has_inputs(r) ? bound_mul_add(r->epoch, r->data->n_train, r->pos) : r->epoch;
    if (has_inputs(r) && r->o->steps > 0 && r->o->steps < most) most = r->o->steps;
    check_rows_range(r, path, key, v.i, r->epoch + (r->pos > 0), most,
                     "one step or more per epoch, one row or more per step, within --steps");
}

static void check_samples(const run *r, const char *path, const char *key, field_value v) {
    if (r->pos > 0)
        check_rows_range(r, path, key, v.i, r->pos, r->pos, "the rows of the current epoch done");
    else
        check_rows_range(r, path, key, v.i, 0, r->data->n_train, "the rows of the last epoch");
}

static void check_correct(const run *r, const char *path, const char *key, field_value v) {
    check_range(path, key, v.i, 0, r->partial.samples * rt_class_layout_of(r->m).steps,
                "right predictions among 'nnrt.samples'");
}

static void check_finite(const run *r, const char *path, const char *key, field_value v) {
    (void)r;
    if (!isfinite(v.x)) bad_meta(path, key, "%g is not finite", v.x);
}

static void check_best_epoch(const run *r, const char *path, const char *key, field_value v) {
    check_range(path, key, v.i, 0, r->epoch, "an epoch done");
}

static void check_bad_epochs(const run *r, const char *path, const char *key, field_value v) {
    check_range(path, key, v.i, 0, r->epoch - r->best_epoch, "epochs since 'nnrt.best_epoch'");
}

static void check_best(const run *r, const char *path, const char *key, field_value v) {
    if (isnan(v.x) || (r->best_epoch > 0 && !isfinite(v.x)))
        bad_meta(path, key, "%g is not %s", v.x,
                 r->best_epoch > 0 ? "a finite number" : "a number");
}

static void check_optimizer(const run *r, const char *path, const char *key, field_value v) {
    (void)key;
    if (strcmp(v.text, r->o->optimizer) != 0)
        rt_usage_error("%s was trained with --optimizer %s; resume it with the same optimizer",
                       path, show_value(v.text).s);
}

/* Every update step is one optimizer step (Adam's t). */
static void check_optimizer_steps(const run *r, const char *path, const char *key, field_value v) {
    check_range(path, key, v.i, r->step, r->step, "it counts what 'nnrt.step' does");
}

static const char *kind_text(const run *r) {
    (void)r;
    return "checkpoint";
}

static const char *optimizer_text(const run *r) {
    return r->o->optimizer;
}

/* ---- the tensor fields: each saved and read (and checked) by its own pair ---- */

static void read_params(const rt_st_file *f, const char *path, run *r) {
    (void)path;
    rt_st_read_params(f, r->m, r->fixed, "");
}

/* text.vocab: metadata the weights writer saves for a text model. The run has encoded its
 * text with the checkpoint's vocabulary already (load_text_train_data): it must be there
 * exactly when the model reads text, and be the run's. */
static void read_vocab(const rt_st_file *f, const char *path, run *r) {
    const char *saved = rt_st_meta_get(f, RT_VOCAB_KEY);
    const rt_vocab *vocab = &r->data->stats.vocab;
    if (!rt_is_text_model(r->m)) {
        if (saved)
            rt_path_error(path, "metadata '%s': a text vocabulary, and model '%s' reads no text",
                          RT_VOCAB_KEY, r->m->name);
        return;
    }
    if (!saved)
        rt_path_error(path, "no metadata '%s': this checkpoint was not trained on text",
                      RT_VOCAB_KEY);
    char *own = rt_vocab_to_utf8(vocab);
    if (strcmp(own, saved) != 0)
        rt_path_error(path, "metadata '%s': not the vocabulary the text was encoded with",
                      RT_VOCAB_KEY);
    rt_free(own);
}

/* standardize.mean and .std, saved by the weights writer when the run standardised its
 * inputs: the run that resumes must too (it computes the same statistics from the same
 * training rows), else its weights would go on learning from other values than they began
 * with. */
static void read_standardize(const rt_st_file *f, const char *path, run *r) {
    int rank;
    uint64_t dims[RT_ST_MAX_RANK];
    int saved = rt_st_shape(f, "standardize.mean", &rank, dims);
    if (saved != (r->o->standardize != 0))
        rt_usage_error("%s was trained with --standardize %s; resume it with the same", path,
                       saved ? "on" : "off");
}

/* STATE: the running statistics, saved by the weights writer; resuming needs every one. */
static void read_states(const rt_st_file *f, const char *path, run *r) {
    (void)path;
    rt_st_read_states(f, r->m, r->fixed, 1);
}

/* optimizer.SLOT.PARAM: each state slot of each param that has it (optimizers.def) */
static void slot_name(const run *r, int s, int32_t i, char *buf, size_t size) {
    snprintf(buf, size, "optimizer.%s.%s", rt_optim_slot_name(r->opt, s), r->m->params[i].name);
}

static void save_slots(rt_st_writer *w, const run *r) {
    const nnrt_model *m = r->m;
    for (int s = 0; s < rt_optim_slots(r->opt); s++)
        for (int32_t i = 0; i < m->n_params; i++) {
            const void *state = rt_optim_state(r->opt, s, i);
            if (!state) continue;
            char name[512];
            slot_name(r, s, i, name, sizeof name);
            rt_st_add(w, name, m->f64 ? RT_ST_F64 : RT_ST_F32, m->params[i].rank, m->params[i].dims,
                      state);
        }
}

static void read_slots(const rt_st_file *f, const char *path, run *r) {
    const nnrt_model *m = r->m;
    for (int s = 0; s < rt_optim_slots(r->opt); s++)
        for (int32_t i = 0; i < m->n_params; i++) {
            void *state = rt_optim_state(r->opt, s, i);
            if (!state) continue;
            char name[512];
            slot_name(r, s, i, name, sizeof name);
            if (!rt_st_read(f, name, m->f64 ? RT_ST_F64 : RT_ST_F32, m->params[i].rank,
                            m->params[i].dims, state))
                rt_path_error(path,
                              "missing tensor '%s' (was the checkpoint saved with other "
                              "optimizer options?)",
                              name);
            rt_st_check_values(f, name, state, m->params[i].numel, m->f64,
                               rt_optim_slot_nonnegative(r->opt, s));
        }
}

static void save_order(rt_st_writer *w, const run *r) {
    rt_st_add(w, "train.order", RT_ST_I64, 1, &r->data->n_train, r->order);
}

/* train.order must be an order of exactly this run's training rows: each once. */
static void read_order(const rt_st_file *f, const char *path, run *r) {
    const rt_train_data *d = r->data;
    int64_t n_train = d->n_train, rows = d->train.rows;
    int rank;
    uint64_t dims[RT_ST_MAX_RANK];
    if (!rt_st_shape(f, "train.order", &rank, dims))
        rt_path_error(path, "missing tensor 'train.order'");
    if (rank != 1 || dims[0] != (uint64_t)n_train) {
        hint_same_rows(r);
        rt_path_error(path,
                      "tensor 'train.order' is not the order of this run's %lld training rows",
                      (long long)n_train);
    }
    rt_st_read(f, "train.order", RT_ST_I64, 1, &n_train, r->order);
    unsigned char *mark = rt_alloc((size_t)rows + 1); /* 1: a training row, 2: seen */
    for (int64_t i = 0; i < n_train; i++) mark[d->train_rows[i]] = 1;
    for (int64_t i = 0; i < n_train; i++) {
        int64_t row = r->order[i];
        const char *why = row < 0 || row >= rows ? "outside the data"
                          : mark[row] == 0       ? "a validation row"
                          : mark[row] == 2       ? "a second time"
                                                 : NULL;
        if (why) {
            hint_same_rows(r);
            rt_path_error(path,
                          "tensor 'train.order' is not an order of the training rows: element "
                          "%lld names row %lld, %s",
                          (long long)i, (long long)row, why);
        }
        mark[row] = 2;
    }
    rt_free(mark);
}

static void save_history(rt_st_writer *w, const run *r) {
    int64_t dims[2] = {r->history_rows, RT_HIST_COLS};
    if (r->history_rows > 0) rt_st_add(w, "train.history", RT_ST_F64, 2, dims, r->history);
}

/* train.history: rows of RT_HIST_COLS, as many as the run can have kept (at most one per
 * epoch done, at most RT_HIST_MAX_ROWS, none before the first epoch), their epochs whole,
 * increasing and the last one the checkpoint's epoch; lr finite and >= 0, the metrics finite
 * or nan (not measured). */
static void read_history(const rt_st_file *f, const char *path, run *r) {
    if (r->epoch == 0) return;
    int rank;
    uint64_t shape[RT_ST_MAX_RANK];
    if (!rt_st_shape(f, "train.history", &rank, shape))
        rt_path_error(path, "missing tensor 'train.history'");
    uint64_t most = r->epoch < RT_HIST_MAX_ROWS ? (uint64_t)r->epoch : RT_HIST_MAX_ROWS;
    if (rank != 2 || shape[1] != RT_HIST_COLS || shape[0] < 1 || shape[0] > most)
        rt_path_error(path, "tensor 'train.history' must have 1 to %llu rows of %d (epoch %lld)",
                      (unsigned long long)most, RT_HIST_COLS, (long long)r->epoch);
    int64_t dims[2] = {(int64_t)shape[0], RT_HIST_COLS};
    rt_st_read(f, "train.history", RT_ST_F64, 2, dims, r->history);
    r->history_rows = dims[0];
    double before = 0;
    for (int64_t i = 0; i < dims[0] * RT_HIST_COLS; i++) {
        double v = r->history[i];
        int c = (int)(i % RT_HIST_COLS);
        const char *bad = NULL;
        if (c == RT_HIST_EPOCH) {
            int last = i / RT_HIST_COLS == dims[0] - 1;
            if (!(v > before && v == floor(v) && v <= (double)r->epoch) ||
                (last && v != (double)r->epoch))
                bad = "the epochs of its rows in order, ending at the checkpoint's";
            before = v;
        } else if (isinf(v) || (c == RT_HIST_LR && !(v >= 0))) {
            bad = c == RT_HIST_LR ? "a learning rate" : "a metric";
        }
        if (bad)
            rt_path_error(path, "tensor 'train.history' holds %g at element %lld, not %s", v,
                          (long long)i, bad);
    }
}

/* early_stopping.best.PARAM (and .STATE): the best epoch's weights, kept in one flat copy
 * laid out as the params and then the states are, back to back. Weight i's name, and its
 * part of the copy *at bytes in; moves *at past it. */
static char *best_param(const run *r, int32_t i, size_t *at, char *name, size_t size) {
    const nnrt_tensor *t = weight(r->m, i);
    snprintf(name, size, "early_stopping.best.%s", t->name);
    char *part = (char *)r->best_params + *at;
    *at += (size_t)t->numel * rt_elem_size(r->m->f64);
    return part;
}

static void save_best_params(rt_st_writer *w, const run *r) {
    if (!r->best_params || r->best_epoch == 0) return;
    size_t at = 0;
    for (int32_t i = 0; i < n_weights(r->m); i++) {
        const nnrt_tensor *t = weight(r->m, i);
        char name[512];
        const char *part = best_param(r, i, &at, name, sizeof name);
        rt_st_add(w, name, r->m->f64 ? RT_ST_F64 : RT_ST_F32, t->rank, t->dims, part);
    }
}

static void read_best_params(const rt_st_file *f, const char *path, run *r) {
    if (!r->best_params || r->best_epoch == 0) return;
    size_t at = 0;
    for (int32_t i = 0; i < n_weights(r->m); i++) {
        const nnrt_tensor *t = weight(r->m, i);
        char name[512];
        char *part = best_param(r, i, &at, name, sizeof name);
        if (!rt_st_read(f, name, r->m->f64 ? RT_ST_F64 : RT_ST_F32, t->rank, t->dims, part))
            rt_path_error(path, "missing tensor '%s'", name);
        rt_st_check_values(f, name, part, t->numel, r->m->f64, 0);
    }
}

/* ---- the table ---- */

enum field_type {
    FIELD_TEXT,    /* metadata: text(r) is what a run writes; check() compares */
    FIELD_INT,     /* metadata: the int64_t at `at` in the run, as meta_int writes it */
    FIELD_REAL,    /* metadata: the double at `at`, as meta_real writes it */
    FIELD_RNG,     /* metadata: the rt_rng at `at`, as meta_rng writes it (parse_rng checks) */
    FIELD_TENSORS, /* tensors (or metadata the weights writer saves): save() and read() */
};

typedef struct field {
    const char *key; /* the metadata key; for tensors, their names as docs/runtime.md has them */
    enum field_type type;
    size_t at; /* INT, REAL, RNG: offsetof(run, ...) */
    void (*check)(const run *r, const char *path, const char *key, field_value v);
    const char *(*text)(const run *r);
    void (*save)(rt_st_writer *w, const run *r); /* NULL: the weights writer's */
    void (*read)(const rt_st_file *f, const char *path, run *r);
} field;

#define IN_RUN(member) .at = offsetof(run, member)

/* In the order resuming reads them: a check may use the fields above it. */
static const field fields[] = {
    {"nnrt.kind", FIELD_TEXT, .check = check_kind, .text = kind_text},
    {"text.vocab", FIELD_TENSORS, .read = read_vocab}, /* metadata; the weights writer's */
    {"PARAM", FIELD_TENSORS, .read = read_params},
    {"STATE", FIELD_TENSORS, .read = read_states},
    {"standardize.mean", FIELD_TENSORS, .read = read_standardize}, /* and .std */
    {"nnrt.epoch", FIELD_INT, IN_RUN(epoch), .check = check_epoch},
    {"nnrt.pos", FIELD_INT, IN_RUN(pos), .check = check_pos},
    {"nnrt.step", FIELD_INT, IN_RUN(step), .check = check_step},
    {"nnrt.samples", FIELD_INT, IN_RUN(partial.samples), .check = check_samples},
    {"nnrt.correct", FIELD_INT, IN_RUN(partial.correct), .check = check_correct},
    {"nnrt.loss_sum", FIELD_REAL, IN_RUN(partial.loss_sum), .check = check_finite},
    {"nnrt.shuffle_rng", FIELD_RNG, IN_RUN(shuffle_rng)},
    {"nnrt.noise_rng", FIELD_RNG, IN_RUN(noise_rng)},
    {"nnrt.best_epoch", FIELD_INT, IN_RUN(best_epoch), .check = check_best_epoch},
    {"nnrt.bad_epochs", FIELD_INT, IN_RUN(bad_epochs), .check = check_bad_epochs},
    {"nnrt.best", FIELD_REAL, IN_RUN(best), .check = check_best},
    {"nnrt.optimizer", FIELD_TEXT, .check = check_optimizer, .text = optimizer_text},
    {"optimizer.SLOT.PARAM", FIELD_TENSORS, .save = save_slots, .read = read_slots},
    /* the optimizer's t, which is the step count: a second copy, kept for the format */
    {"nnrt.optimizer_steps", FIELD_INT, IN_RUN(step), .check = check_optimizer_steps},
    {"train.order", FIELD_TENSORS, .save = save_order, .read = read_order},
    {"train.history", FIELD_TENSORS, .save = save_history, .read = read_history},
    {"early_stopping.best.PARAM", FIELD_TENSORS, .save = save_best_params,
     .read = read_best_params},
};

static const void *field_of(const run *r, const field *fd) {
    return (const char *)r + fd->at;
}

static void *field_in(run *r, const field *fd) {
    return (char *)r + fd->at;
}

static void save_field(rt_st_writer *w, const run *r, const field *fd) {
    switch (fd->type) {
    case FIELD_TEXT: rt_st_meta(w, fd->key, fd->text(r)); break;
    case FIELD_INT: meta_int(w, fd->key, *(const int64_t *)field_of(r, fd)); break;
    case FIELD_REAL: meta_real(w, fd->key, *(const double *)field_of(r, fd)); break;
    case FIELD_RNG: meta_rng(w, fd->key, field_of(r, fd)); break;
    case FIELD_TENSORS:
        if (fd->save) fd->save(w, r);
        break;
    }
}

/* Reads a field into the run once its check has passed. */
static void read_field(const rt_st_file *f, const char *path, run *r, const field *fd) {
    if (fd->type == FIELD_TENSORS) {
        fd->read(f, path, r);
        return;
    }
    const char *text = need_meta(f, path, fd->key);
    field_value v = {0};
    switch (fd->type) {
    case FIELD_TEXT: v.text = text; break;
    case FIELD_INT: v.i = parse_int(path, fd->key, text); break;
    case FIELD_REAL: v.x = parse_real(path, fd->key, text); break;
    case FIELD_RNG: parse_rng(path, fd->key, text, field_in(r, fd)); return;
    case FIELD_TENSORS: return;
    }
    if (fd->check) fd->check(r, path, fd->key, v);
    if (fd->type == FIELD_INT) *(int64_t *)field_in(r, fd) = v.i;
    if (fd->type == FIELD_REAL) *(double *)field_in(r, fd) = v.x;
}

#define N_FIELDS ((int)(sizeof fields / sizeof fields[0]))

void rt_run_write_checkpoint(const run *r, const char *path) {
    rt_st_writer *w = rt_st_weights_writer(r->m, r->fixed, &r->data->stats);
    for (int i = 0; i < N_FIELDS; i++) save_field(w, r, &fields[i]);
    rt_st_write(w, path);
    rt_st_writer_free(w);
}

/* Continues exactly where the checkpoint stopped: params, optimizer state, counters, the
 * generators, this epoch's row order and metrics so far, early stopping's best. */
void rt_run_resume(run *r, const char *path) {
    rt_st_file *f = rt_st_open(path);
    for (int i = 0; i < N_FIELDS; i++) read_field(f, path, r, &fields[i]);
    rt_st_close(f);
    r->partial.judged = r->partial.samples * rt_class_layout_of(r->m).steps;
}
