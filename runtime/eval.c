/* eval.c: the eval and predict commands (see eval.h). */
#include "eval.h"

#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "data.h"
#include "files.h"
#include "model.h"
#include "util.h"

/* Weights, and the standardisation statistics saved with them, which the data then gets. */
int rt_cmd_eval(const nnrt_model *m, const rt_options *o) {
    void *fixed = rt_new_fixed_arena(m);
    rt_stats stats;
    rt_load_weights(m, fixed, o->weights, &stats);
    if (m->n_inputs == 0) {
        printf("loss %.9g\n", rt_mean_loss(rt_evaluate(m, fixed, NULL, NULL, 0)));
        return 0;
    }
    rt_dataset d;
    rt_load_data_columns(m, o->data, o->columns, &d);
    rt_apply_stats(&d, &stats, m->f64);
    rt_metrics r = rt_evaluate(m, fixed, &d, NULL, d.rows);
    printf("loss %.9g\n", rt_mean_loss(r));
    if (m->train.classification) printf("accuracy %.4f\n", rt_accuracy(r));
    return 0;
}

static void print_outputs(const nnrt_model *m, const nnrt_ctx *ctx) {
    const void *out = rt_tensor_data(m, ctx, &m->output);
    int64_t n = m->output.numel;
    for (int64_t b = 0; b < ctx->batch; b++) {
        for (int64_t e = 0; e < n; e++)
            printf("%s%.9g", e ? "," : "", rt_get(out, b * n + e, m->f64));
        putchar('\n');
    }
}

int rt_cmd_predict(const nnrt_model *m, const rt_options *o) {
    void *fixed = rt_new_fixed_arena(m);
    rt_stats stats;
    rt_load_weights(m, fixed, o->weights, &stats);
    rt_dataset d;
    const char *path = o->data && strcmp(o->data, "-") != 0 ? o->data : NULL;
    rt_load_predict_data(m, path, &d);
    rt_apply_stats(&d, &stats, m->f64);
    int64_t cap = rt_eval_batch(m, d.rows);
    nnrt_ctx ctx = rt_new_ctx(m, fixed, cap);
    for (int64_t i = 0; i < d.rows; i += cap) {
        int64_t count = d.rows - i < cap ? d.rows - i : cap;
        rt_fill_batch(m, &ctx, &d, NULL, i, count, 0);
        m->predict(&ctx);
        print_outputs(m, &ctx);
        rt_output_check(stdout, NULL); /* a full disk stops the rows, with its reason */
    }
    rt_free_ctx_varying(&ctx);
    return 0;
}
