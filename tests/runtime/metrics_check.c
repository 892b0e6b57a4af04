/* metrics_check.c: a batch's losses read once for two sums. rt_add_batch_metrics adds the
 * losses to the epoch's running sum and returns the batch's cost, which must be the bits of
 * rt_batch_cost and of the running sum added loss by loss, in f32 and f64, for a loss per row
 * and a loss of the whole batch, with nan and inf among the losses. And the class of an output
 * row (rt_class_of, which the accuracy counts with) must be the first of its largest values,
 * as a plain loop finds it, with ties, nan, infinities and -0 among the values. And
 * rt_any_nonfinite must say what isfinite says of every value. Not a model: a
 * descriptor with a loss tensor, filled directly. Prints how many batches and rows it
 * compared and each difference; runtime_tests.py's batch_metrics runs it. */
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

/* The class as the accuracy defines it: the first index whose value no later one exceeds
 * (v[i] > v[best], so a nan never takes the place of another value). */
static int64_t first_largest(const double *v, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static long rows_compared;

static void compare_class(const double *v, int64_t n) {
    float v32[CAP];
    for (int64_t i = 0; i < n; i++) v32[i] = (float)v[i];
    for (int f64 = 0; f64 <= 1; f64++) {
        nnrt_model m = {.name = "metrics_check", .f64 = f64};
        int64_t got = rt_class_of(&m, f64 ? (const void *)v : (const void *)v32, n);
        int64_t want = first_largest(v, n);
        rows_compared++;
        if (got != want && differ++ < 20)
            printf("differs: the class of %lld values (f64 %d, v[0] %g): %lld, wanted %lld\n",
                   (long long)n, f64, v[0], (long long)got, (long long)want);
    }
}

/* Rows of 2..CAP values drawn from a few, so that ties are common, then each special value
 * at the first, a middle and the last place. Values exact in f32, so both types agree. */
static void classes(void) {
    static const double few[] = {-1.5, 0.0, 0.25, 2.0, 2.0};
    static const double special[] = {NAN, INFINITY, -INFINITY, -0.0, 0.0, 1e-45, -3e38};
    double v[CAP];
    for (int64_t n = 2; n <= CAP; n++) {
        for (int i = 0; i < 40; i++) {
            for (int64_t k = 0; k < n; k++) v[k] = few[(int)(uniform() * 5 / 8)];
            compare_class(v, n);
        }
        for (size_t s = 0; s < sizeof special / sizeof special[0]; s++)
            for (int64_t at = 0; at < n; at += (n - 1 > 1 ? (n - 1) / 2 : 1)) {
                for (int64_t k = 0; k < n; k++) v[k] = few[(int)(uniform() * 5 / 8)];
                v[at] = special[s];
                compare_class(v, n);
            }
    }
}

static long arrays_compared;

/* rt_any_nonfinite against isfinite, value by value: n values 0.5 but one special one at each
 * place in turn (the vectorised loop's body and its tail alike). */
static void compare_finite(const double *special_value, const float *special_value32, int f64,
                           int64_t n, int64_t at) {
    double v[CAP];
    float v32[CAP];
    for (int64_t k = 0; k < n; k++) {
        v[k] = k == at ? *special_value : 0.5;
        v32[k] = k == at ? *special_value32 : 0.5f;
    }
    int want = 0;
    for (int64_t k = 0; k < n; k++) want |= f64 ? !isfinite(v[k]) : !isfinite(v32[k]);
    int got = rt_any_nonfinite(f64 ? (const void *)v : (const void *)v32, n, f64);
    arrays_compared++;
    if (got != want && differ++ < 20)
        printf("differs: any nonfinite of %lld values (f64 %d), %a at %lld: %d, wanted %d\n",
               (long long)n, f64, f64 ? v[at] : (double)v32[at], (long long)at, got, want);
}

/* The special values at each place of 1..CAP values: nan (quiet, signalling, negative, with
 * a payload), the infinities, and the finite values at the edges of the exponent's range. */
static void finiteness(void) {
    static const uint32_t specials32[] = {0x7fc00000u, 0x7f800001u, 0xffc00000u, 0x7fffffffu,
                                          0x7f800000u, 0xff800000u, 0x7f7fffffu, 0xff7fffffu,
                                          0x00000001u, 0x80000000u, 0x00000000u, 0x3f800000u};
    static const uint64_t specials64[] = {
        0x7ff8000000000000u, 0x7ff0000000000001u, 0xfff8000000000000u, 0x7fffffffffffffffu,
        0x7ff0000000000000u, 0xfff0000000000000u, 0x7fefffffffffffffu, 0xffefffffffffffffu,
        0x0000000000000001u, 0x8000000000000000u, 0x0000000000000000u, 0x3ff0000000000000u};
    for (size_t s = 0; s < sizeof specials32 / sizeof specials32[0]; s++) {
        double d;
        float f;
        memcpy(&d, &specials64[s], sizeof d);
        memcpy(&f, &specials32[s], sizeof f);
        for (int f64 = 0; f64 <= 1; f64++)
            for (int64_t n = 1; n <= CAP; n++)
                for (int64_t at = 0; at < n; at++) compare_finite(&d, &f, f64, n, at);
    }
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
    classes();
    finiteness();
    printf("compared %ld sums, the classes of %ld rows and the finiteness of %ld arrays, %ld "
           "differ\n",
           compared, rows_compared, arrays_compared, differ);
    return differ != 0;
}
