/* weights.c: `PROG weights FILE`: what a safetensors file holds, for a learner who wants to
 * read a regression's slope without Python. One line a tensor: its name, shape, dtype, what
 * it is to this model (a param, a state, a checkpoint's optimizer state, ...), then its
 * values when there are few, or a summary (count, mean, std, min, max, the first values)
 * when there are many. The file is read a chunk at a time, so a file of any size costs a
 * bounded amount of memory. Format: docs/runtime.md, "weights". */
#include "weights.h"

#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "numtext.h"
#include "util.h"

#define INLINE_VALUES  16 /* tensors of at most this many values are printed whole */
#define FIRST_VALUES   5  /* values a summary shows */
#define CHUNK_ELEMENTS 4096

/* ---- what a tensor is ---- */

static int is_tensor_of(const nnrt_tensor *ts, int32_t n, const char *name) {
    for (int32_t i = 0; i < n; i++)
        if (strcmp(ts[i].name, name) == 0) return 1;
    return 0;
}

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* What the tensor called `name` is, as a phrase: the file's tensor names are nnc's (params,
 * states, the training state a checkpoint adds: docs/runtime.md, "Checkpoints"). */
static void describe(const nnrt_model *m, const char *name, char *buf, size_t size) {
    if (is_tensor_of(m->params, m->n_params, name)) {
        snprintf(buf, size, "param");
    } else if (is_tensor_of(m->states, m->n_states, name)) {
        snprintf(buf, size, "state (running statistics, not trained)");
    } else if (starts_with(name, "optimizer.")) {
        const char *slot = name + strlen("optimizer."), *dot = strchr(slot, '.');
        if (dot)
            snprintf(buf, size, "optimizer's %.*s for %s", (int)(dot - slot), slot, dot + 1);
        else
            snprintf(buf, size, "optimizer state");
    } else if (starts_with(name, "early_stopping.best.")) {
        snprintf(buf, size, "%s at early stopping's best epoch",
                 name + strlen("early_stopping.best."));
    } else if (strcmp(name, "train.order") == 0) {
        snprintf(buf, size, "the training rows' order this epoch");
    } else if (strcmp(name, "train.history") == 0) {
        snprintf(buf, size, "per epoch: lr, loss, acc, val loss, val acc, epoch");
    } else if (strcmp(name, "standardize.mean") == 0) {
        snprintf(buf, size, "--standardize: each input's mean");
    } else if (strcmp(name, "standardize.std") == 0) {
        snprintf(buf, size, "--standardize: each input's std");
    } else {
        snprintf(buf, size, "not a param of model '%s'", m->name);
    }
}

/* ---- which tensors ---- */

/* Whether `name` is one of the comma-separated patterns (globs: `h.*`); marks the patterns
 * it matches in used[]. */
static int wanted(const char *patterns, const char *name, unsigned char *used) {
    if (!patterns) return 1;
    int yes = 0, k = 0;
    for (const char *p = patterns;; k++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char *one = rt_strndup(p, len);
        if (fnmatch(one, name, 0) == 0) yes = used[k] = 1;
        rt_free(one);
        if (!comma) break;
        p = comma + 1;
    }
    return yes;
}

static int count_patterns(const char *patterns) {
    int n = 1;
    for (const char *p = patterns; *p; p++) n += *p == ',';
    return n;
}

/* A pattern no tensor matched is an error that lists the file's tensors. */
static void check_patterns_used(const rt_st_file *f, const char *path, const char *patterns,
                                const unsigned char *used) {
    int k = 0;
    for (const char *p = patterns;; k++) {
        const char *comma = strchr(p, ',');
        int len = (int)(comma ? (size_t)(comma - p) : strlen(p));
        if (!used[k]) {
            char list[1024];
            size_t at = 0;
            list[0] = '\0';
            for (int i = 0; i < rt_st_count(f) && at + 8 < sizeof list; i++) {
                rt_st_info t = rt_st_info_at(f, i);
                char shown[200];
                at += (size_t)snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "",
                                       rt_printable(shown, sizeof shown, t.name, t.name_len));
            }
            rt_usage_error("--name: %s has no tensor '%.*s' (its tensors: %s)", path, len, p, list);
        }
        if (!comma) break;
        p = comma + 1;
    }
}

/* ---- values ---- */

static void put_value(FILE *out, double v, const rt_st_info *t) {
    char buf[64];
    if (t->dtype[0] == 'F' || strcmp(t->dtype, "BF16") == 0)
        rt_text_shortest(buf, sizeof buf, v, strcmp(t->dtype, "F64") == 0);
    else
        snprintf(buf, sizeof buf, "%.17g", v); /* integers: whole, exact to 2^53 */
    fputs(buf, out);
}

/* Row-major values with brackets for each axis: [[1, 2], [3, 4]]. */
static void put_nested(FILE *out, const double *v, const rt_st_info *t) {
    if (t->rank == 0) {
        put_value(out, v[0], t);
        return;
    }
    uint64_t index[RT_ST_MAX_RANK] = {0};
    for (int d = 0; d < t->rank; d++) fputc('[', out);
    for (uint64_t e = 0; e < t->count; e++) {
        put_value(out, v[e], t);
        int d = t->rank - 1; /* the axes that end here close, and open again */
        while (d >= 0 && ++index[d] == t->dims[d]) index[d--] = 0;
        int closed = t->rank - 1 - d;
        for (int k = 0; k < closed; k++) fputc(']', out);
        if (d < 0) return;
        fputs(", ", out);
        for (int k = 0; k < closed; k++) fputc('[', out);
    }
    for (int d = 0; d < t->rank; d++) fputc(']', out); /* no elements: [[]] of a [2, 0] */
}

typedef struct summary {
    uint64_t count, finite, nan;
    double mean, m2, min, max;
    double first[FIRST_VALUES];
} summary;

static summary summarise(const rt_st_file *f, int i, const rt_st_info *t, double *chunk) {
    summary s = {0};
    s.min = INFINITY;
    s.max = -INFINITY;
    for (uint64_t done = 0; done < t->count; done += CHUNK_ELEMENTS) {
        uint64_t n = t->count - done < CHUNK_ELEMENTS ? t->count - done : CHUNK_ELEMENTS;
        rt_st_read_doubles(f, i, done, n, chunk);
        for (uint64_t e = 0; e < n; e++) {
            double v = chunk[e];
            if (s.count < FIRST_VALUES) s.first[s.count] = v;
            s.count++;
            if (isnan(v)) {
                s.nan++;
                continue;
            }
            s.min = v < s.min ? v : s.min;
            s.max = v > s.max ? v : s.max;
            if (!isfinite(v)) continue;
            double delta = v - s.mean; /* Welford: no sum of squares to overflow or cancel */
            s.mean += delta / (double)++s.finite;
            s.m2 += delta * (v - s.mean);
        }
    }
    return s;
}

static void put_summary(FILE *out, const summary *s, const rt_st_info *t) {
    fprintf(out, "%llu values: mean %.6g, std %.6g, min ", (unsigned long long)s->count, s->mean,
            s->finite ? sqrt(s->m2 / (double)s->finite) : 0.0);
    put_value(out, s->min, t);
    fputs(", max ", out);
    put_value(out, s->max, t);
    if (s->nan) fprintf(out, ", %llu nan", (unsigned long long)s->nan);
    if (s->finite + s->nan < s->count)
        fprintf(out, ", %llu inf", (unsigned long long)(s->count - s->finite - s->nan));
    fputs("; first ", out);
    for (int k = 0; k < FIRST_VALUES; k++) {
        if (k) fputs(", ", out);
        put_value(out, s->first[k], t);
    }
    fputs(", ...", out);
}

/* count values from element `first` on, ", "-separated, a chunk at a time. */
static void put_run(FILE *out, const rt_st_file *f, int i, const rt_st_info *t, uint64_t first,
                    uint64_t count, double *chunk) {
    for (uint64_t done = 0; done < count; done += CHUNK_ELEMENTS) {
        uint64_t n = count - done < CHUNK_ELEMENTS ? count - done : CHUNK_ELEMENTS;
        rt_st_read_doubles(f, i, first + done, n, chunk);
        for (uint64_t e = 0; e < n; e++) {
            if (done + e) fputs(", ", out);
            put_value(out, chunk[e], t);
        }
    }
}

/* --all of a tensor of rank 2 or more: a line per row of the last axis, headed by the
 * indexes of the axes before it ("  [2, 0] 0.5, 1.5"). */
static void put_rows(FILE *out, const rt_st_file *f, int i, const rt_st_info *t, double *chunk) {
    uint64_t row = t->dims[t->rank - 1];
    uint64_t rows = row ? t->count / row : 0;
    for (uint64_t r = 0; r < rows; r++) {
        fputs("  [", out);
        for (int d = 0; d + 1 < t->rank; d++) {
            uint64_t below = 1; /* rows per step of axis d */
            for (int k = d + 1; k + 1 < t->rank; k++) below *= t->dims[k];
            fprintf(out, "%s%llu", d ? ", " : "", (unsigned long long)(r / below % t->dims[d]));
        }
        fputs("] ", out);
        put_run(out, f, i, t, r * row, row, chunk);
        fputc('\n', out);
    }
}

/* ---- the table ---- */

static void shape_text(const rt_st_info *t, char *buf, size_t size) {
    if (t->rank == 0) {
        snprintf(buf, size, "scalar");
        return;
    }
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < t->rank && used < size; d++)
        used += (size_t)snprintf(buf + used, size - used, "%s%llu", d ? ", " : "",
                                 (unsigned long long)t->dims[d]);
    if (used < size) snprintf(buf + used, size - used, "]");
}

typedef struct row_text {
    char name[200], shape[160], what[256];
} row_text;

static row_text row_of(const nnrt_model *m, const rt_st_info *t) {
    row_text r;
    rt_printable(r.name, sizeof r.name, t->name, t->name_len);
    shape_text(t, r.shape, sizeof r.shape);
    char *plain = rt_strndup(t->name, t->name_len); /* a NUL in it ends the comparison */
    describe(m, plain, r.what, sizeof r.what);
    rt_free(plain);
    return r;
}

static void print_tensor(FILE *out, const rt_st_file *f, int i, const nnrt_model *m,
                         const int *widths, int all, double *chunk) {
    rt_st_info t = rt_st_info_at(f, i);
    row_text r = row_of(m, &t);
    fprintf(out, "%-*s  %-*s  %-*s  %-*s", widths[0], r.name, widths[1], r.shape, widths[2],
            t.dtype, widths[3], r.what);
    if (!rt_st_numeric(f, i)) {
        fprintf(out, "  (%s values are not shown)\n", t.dtype);
        return;
    }
    if (all && t.rank >= 2) {
        fputc('\n', out);
        put_rows(out, f, i, &t, chunk);
        return;
    }
    fputs("  ", out);
    if (t.count <= INLINE_VALUES) {
        rt_st_read_doubles(f, i, 0, t.count, chunk);
        put_nested(out, chunk, &t);
    } else if (all) { /* rank 0 or 1 */
        fputc('[', out);
        put_run(out, f, i, &t, 0, t.count, chunk);
        fputc(']', out);
    } else {
        summary s = summarise(f, i, &t, chunk);
        put_summary(out, &s, &t);
    }
    fputc('\n', out);
}

/* "PATH: weights of model 'xor', saved by nnc", and for a checkpoint where training was. */
static void print_heading(FILE *out, const rt_st_file *f, const char *path, const nnrt_model *m) {
    const char *model = rt_st_meta_get(f, "model"), *producer = rt_st_meta_get(f, "producer");
    const char *kind = rt_st_meta_get(f, "nnrt.kind");
    int checkpoint = kind && strcmp(kind, "checkpoint") == 0;
    fprintf(out, "%s: %s", path, checkpoint ? "a checkpoint" : "weights");
    if (model) fprintf(out, " of model '%s'", model);
    if (producer) fprintf(out, ", saved by %s", producer);
    if (checkpoint) {
        const char *epoch = rt_st_meta_get(f, "nnrt.epoch"), *step = rt_st_meta_get(f, "nnrt.step");
        const char *optimizer = rt_st_meta_get(f, "nnrt.optimizer");
        fprintf(out,
                " after epoch %s, step %s (optimizer %s): the weights and the training "
                "state --resume continues from",
                epoch ? epoch : "?", step ? step : "?", optimizer ? optimizer : "?");
    }
    fprintf(out, "; %d tensor%s\n", rt_st_count(f), rt_st_count(f) == 1 ? "" : "s");
    if (model && strcmp(model, m->name) != 0)
        fprintf(out, "(this program is model '%s': the file's names may not be its params)\n",
                m->name);
}

/* What a checkpoint's metadata keys mean (docs/runtime.md, "Checkpoints"). */
static const char *const meta_meanings[][2] = {
    {"nnrt.kind", "weights or checkpoint"},
    {"nnrt.epoch", "epochs completed"},
    {"nnrt.step", "update steps made"},
    {"nnrt.pos", "rows of the current epoch done"},
    {"nnrt.samples", "the current epoch's rows so far"},
    {"nnrt.correct", "how many of them were predicted right"},
    {"nnrt.loss_sum", "their summed loss"},
    {"nnrt.optimizer", "the optimizer"},
    {"nnrt.optimizer_steps", "its step count"},
    {"nnrt.shuffle_rng", "the shuffles' generator"},
    {"nnrt.noise_rng", "dropout's generator"},
    {"nnrt.best", "early stopping's best metric"},
    {"nnrt.best_epoch", "the epoch of early stopping's best"},
    {"nnrt.bad_epochs", "epochs since then without improving"},
    {"text.vocab", "the characters, in id order"},
};

static const char *meta_meaning(const char *key, size_t len) {
    for (size_t i = 0; i < sizeof meta_meanings / sizeof meta_meanings[0]; i++)
        if (rt_name_is(meta_meanings[i][0], key, len)) return meta_meanings[i][1];
    return NULL;
}

/* The metadata beyond the heading's, a line each, long values cut short. */
static void print_metadata(FILE *out, const rt_st_file *f) {
    int shown = 0;
    for (int i = 0; i < rt_st_meta_count(f); i++) {
        const char *key, *value;
        size_t key_len, value_len;
        rt_st_meta_at(f, i, &key, &key_len, &value, &value_len);
        if (key_len == strlen(key) && (!strcmp(key, "model") || !strcmp(key, "producer"))) continue;
        char key_text[200], value_text[80];
        if (!shown++) fputs("metadata:\n", out);
        const char *meaning = meta_meaning(key, key_len);
        fprintf(out, "  %s = %s", rt_printable(key_text, sizeof key_text, key, key_len),
                rt_printable(value_text, sizeof value_text, value, value_len));
        if (meaning) fprintf(out, "  (%s)", meaning);
        fputc('\n', out);
    }
}

int rt_cmd_weights(const nnrt_model *m, const rt_options *o) {
    const char *path = o->weights;
    rt_st_file *f = rt_st_open(path);
    int n = rt_st_count(f);
    unsigned char *pick = rt_alloc((size_t)n + 1);
    unsigned char *used = o->tensors ? rt_alloc((size_t)count_patterns(o->tensors)) : NULL;
    int widths[4] = {4, 5, 5, 4};
    for (int i = 0; i < n; i++) {
        rt_st_info t = rt_st_info_at(f, i);
        char *plain = rt_strndup(t.name, t.name_len);
        pick[i] = (unsigned char)wanted(o->tensors, plain, used);
        rt_free(plain);
        if (!pick[i]) continue;
        row_text r = row_of(m, &t);
        const char *columns[4] = {r.name, r.shape, t.dtype, r.what};
        for (int c = 0; c < 4; c++)
            if ((int)strlen(columns[c]) > widths[c]) widths[c] = (int)strlen(columns[c]);
    }
    if (o->tensors) check_patterns_used(f, path, o->tensors, used);
    print_heading(stdout, f, path, m);
    printf("%-*s  %-*s  %-*s  %-*s  values\n", widths[0], "name", widths[1], "shape", widths[2],
           "dtype", widths[3], "what");
    double *chunk = rt_alloc_array(CHUNK_ELEMENTS, sizeof *chunk);
    for (int i = 0; i < n; i++)
        if (pick[i]) print_tensor(stdout, f, i, m, widths, o->print_all, chunk);
    if (!o->tensors) print_metadata(stdout, f);
    rt_free(chunk);
    rt_free(pick);
    rt_free(used);
    rt_st_close(f);
    return 0;
}
