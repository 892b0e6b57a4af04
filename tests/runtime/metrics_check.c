/* metrics_check.c: a batch's losses read once for two sums. rt_add_batch_metrics adds the
 * losses to the epoch's running sum and returns the batch's cost, which must be the bits of
 * rt_batch_cost and of the running sum added loss by loss, in f32 and f64, for a loss per row
 * and a loss of the whole batch, with nan and inf among the losses. Not a model: a descriptor
 * with a loss tensor, filled directly. Prints how many batches it compared and each
 * difference; runtime_tests.py's batch_metrics runs it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model.h"

enum { CAP = 37 };

static long compared, differ;

static uint64_t state = 0x2545F4914F6CDD1Du;
static double uniform(void) { /* xorshift64: losses in [0, 8) */
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (double)(state >> 11) / 9007199254740992.0 * 8;
}

static int same_bits(double a, double b) {
    return memcmp(&a, &b, sizeof a) == 0;
}

static void compare(const char *what, double ours, double want, int f64, int varying, int64_t n) {
    compared++;
    if (same_bits(ours, want)) return;
    if (differ++ < 20)
        printf("differs: %s, f64 %d, varying %d, batch %lld: %a, wanted %a\n", what, f64, varying,
               (long long)n, ours, want);
}

/* One batch of n losses (the first of them when the loss does not vary), with a nan or an
 * inf at `bad` when it is below n. */
static void batch(int f64, int varying, int64_t n, int64_t bad, double bad_value) {
    double values[CAP];
    float values32[CAP];
    for (int64_t b = 0; b < CAP; b++) {
        values[b] = b == bad ? bad_value : uniform();
        values32[b] = (float)values[b];
    }
    nnrt_model m = {.name = "metrics_check", .f64 = f64};
    m.loss = (nnrt_tensor){.name = "loss", .numel = 1, .varying = varying};
    m.output = (nnrt_tensor){.name = "out", .numel = 1, .varying = 1};
    nnrt_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.batch_cap = CAP;
    ctx.batch = n;
    ctx.varying = f64 ? (void *)values : (void *)values32;
    ctx.fixed = ctx.varying;
    rt_metrics acc = {.loss_sum = 0.25, .samples = 3};
    double running = acc.loss_sum; /* the old way: loss by loss into the running sum */
    for (int64_t b = 0; b < n; b++)
        running += f64 ? values[varying ? b : 0] : values32[varying ? b : 0];
    double cost = rt_add_batch_metrics(&m, &ctx, NULL, NULL, 0, &acc);
    compare("the cost", cost, rt_batch_cost(&m, &ctx), f64, varying, n);
    compare("the running sum", acc.loss_sum, running, f64, varying, n);
    compared++;
    if (acc.samples != 3 + n && differ++ < 20) printf("samples %lld\n", (long long)acc.samples);
}

int main(void) {
    for (int f64 = 0; f64 <= 1; f64++)
        for (int varying = 0; varying <= 1; varying++)
            for (int64_t n = 1; n <= CAP; n++) {
                for (int i = 0; i < 50; i++) batch(f64, varying, n, CAP, 0);
                batch(f64, varying, n, n / 2, NAN);
                batch(f64, varying, n, n - 1, INFINITY);
                batch(f64, varying, n, 0, -INFINITY);
            }
    printf("compared %ld sums, %ld differ\n", compared, differ);
    return differ != 0;
}
