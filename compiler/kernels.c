/* kernels.c: what each op of ops.def computes, as LLVM IR: ew_NAME for every elementwise
 * row (one element from its operands' elements, inside a fused loop), row_NAME for every
 * ROW row (one row), reduce_NAME for every REDUCE row (the whole reduction). The tables at
 * the end are built from ops.def, so a row without its kernel does not build. What an
 * elementwise kernel computes is its row's FOLD expression, within rounding: tests/backend
 * checks the two against each other. loops.c runs the kernels; codegen.h has the
 * vocabulary they are written in. */
#include "codegen.h"

#include <math.h>
#include <string.h>

/* ---- elementwise ---- */

static LLVMValueRef ew_add(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return fp_add(cg, x[0], x[1]);
}

static LLVMValueRef ew_sub(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return fp_sub(cg, x[0], x[1]);
}

static LLVMValueRef ew_mul(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return fp_mul(cg, x[0], x[1]);
}

static LLVMValueRef ew_div(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return fp_div(cg, x[0], x[1]);
}

/* Constant exponents 1, 2 and 0.5 need no pow call. */
static LLVMValueRef ew_pow(Codegen *cg, const Value *v, LLVMValueRef *x) {
    const Value *e = v->args[1];
    if (e->op == OP_const && e->num == 1) return x[0];
    if (e->op == OP_const && e->num == 2) return fp_mul(cg, x[0], x[0]);
    if (e->op == OP_const && e->num == 0.5) return math1(cg, "sqrt", x[0]);
    return math2(cg, "pow", x[0], x[1]);
}

/* A NaN b is passed on; a NaN a is, because the compares below are false for it. */
static LLVMValueRef nan_of_b_or(Codegen *cg, LLVMValueRef b, LLVMValueRef r) {
    return select_if(cg, LLVMRealUNO, b, b, b, r);
}

/* a < b ? b : a: a at a tie. */
static LLVMValueRef ew_max(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return nan_of_b_or(cg, x[1], select_if(cg, LLVMRealOLT, x[0], x[1], x[1], x[0]));
}

/* b < a ? b : a: a at a tie. */
static LLVMValueRef ew_min(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return nan_of_b_or(cg, x[1], select_if(cg, LLVMRealOLT, x[1], x[0], x[1], x[0]));
}

/* a > b ? 1 : a < b ? -1 : 0, NaN where either is: compares, never a - b (inf - inf). */
static LLVMValueRef ew_cmp(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    LLVMValueRef gt = select_if(cg, LLVMRealOGT, x[0], x[1], elem_const(cg, 1), elem_const(cg, 0));
    LLVMValueRef r = select_if(cg, LLVMRealOLT, x[0], x[1], elem_const(cg, -1), gt);
    return select_if(cg, LLVMRealUNO, x[0], x[1], fp_add(cg, x[0], x[1]), r);
}

static LLVMValueRef ew_neg(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return LLVMBuildFNeg(cg->b, x[0], "");
}

static LLVMValueRef ew_exp(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return math1(cg, "exp", x[0]);
}

static LLVMValueRef ew_log(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return math1(cg, "log", x[0]);
}

static LLVMValueRef ew_sqrt(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return math1(cg, "sqrt", x[0]);
}

static LLVMValueRef ew_abs(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return math1(cg, "fabs", x[0]);
}

static LLVMValueRef ew_sin(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return math1(cg, "sin", x[0]);
}

static LLVMValueRef ew_cos(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return math1(cg, "cos", x[0]);
}

/* tanh through exp, because libmvec's tanh is not in LLVM's vector-library tables (exp is):
 * sign(x) * (1 - e) / (1 + e) with e = exp(-2|x|). Near 0 that loses digits to the
 * subtraction, so below a threshold the Taylor series to x^13 takes over; its first
 * omitted term is below 1e-10 (f32, |x| < 0.3) or 2e-17 (f64, |x| < 0.1) of the result. */
static LLVMValueRef ew_tanh(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    static const double taylor[] = {-1.0 / 3,    2.0 / 15,         -17.0 / 315,
                                    62.0 / 2835, -1382.0 / 155925, 21844.0 / 6081075};
    LLVMValueRef one = elem_const(cg, 1), ax = math1(cg, "fabs", x[0]);
    LLVMValueRef e = math1(cg, "exp", fp_mul(cg, ax, elem_const(cg, -2)));
    LLVMValueRef far = fp_div(cg, fp_sub(cg, one, e), fp_add(cg, one, e));
    LLVMValueRef x2 = fp_mul(cg, x[0], x[0]), series = elem_const(cg, taylor[5]);
    for (int k = 4; k >= 0; k--)
        series = fp_add(cg, fp_mul(cg, series, x2), elem_const(cg, taylor[k]));
    LLVMValueRef near = fp_add(cg, x[0], fp_mul(cg, x[0], fp_mul(cg, series, x2)));
    LLVMValueRef threshold = elem_const(cg, cg->f64 ? 0.1 : 0.3);
    return select_if(cg, LLVMRealOLT, ax, threshold, near, math2(cg, "copysign", far, x[0]));
}

static LLVMValueRef ew_sigmoid(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    LLVMValueRef one = elem_const(cg, 1);
    LLVMValueRef e = math1(cg, "exp", LLVMBuildFNeg(cg->b, x[0], ""));
    return fp_div(cg, one, fp_add(cg, one, e));
}

/* relu, leaky_relu, elu, step and sign keep a NaN: `u > 0` is asked as "not u <= 0" (an
 * unordered compare), so a NaN takes the side that passes u on. A NaN must reach the loss,
 * where the runtime sees it, instead of turning into an innocent-looking 0. */
static LLVMValueRef positive_or_nan(Codegen *cg, LLVMValueRef u) {
    return LLVMBuildFCmp(cg->b, LLVMRealUGT, u, elem_const(cg, 0), "");
}

/* u < lo ? lo : u, then hi < that ? hi : that: a NaN u fails both compares and stays. */
static LLVMValueRef ew_clamp(Codegen *cg, const Value *v, LLVMValueRef *x) {
    LLVMValueRef lo = elem_const(cg, v->opt[0]), hi = elem_const(cg, v->opt[1]);
    LLVMValueRef above_lo = select_if(cg, LLVMRealOLT, x[0], lo, lo, x[0]);
    return select_if(cg, LLVMRealOLT, hi, above_lo, hi, above_lo);
}

static LLVMValueRef ew_relu(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return LLVMBuildSelect(cg->b, positive_or_nan(cg, x[0]), x[0], elem_const(cg, 0), "");
}

static LLVMValueRef ew_leaky_relu(Codegen *cg, const Value *v, LLVMValueRef *x) {
    LLVMValueRef scaled = fp_mul(cg, x[0], elem_const(cg, v->opt[0]));
    return LLVMBuildSelect(cg->b, positive_or_nan(cg, x[0]), x[0], scaled, "");
}

/* exp(u) - 1 for u <= 0 without cancellation near 0, with the exp and log that vectorise.
 * Near 0 Kahan's trick: with e = exp(u) rounded, (e - 1) * u / log(e) (u itself where e
 * rounds to 1). Below -1/2 plainly e - 1, which cancels nothing there, while the trick would
 * need log(e) of an e that has lost its digits (a subnormal e^-100). The side not taken
 * (u > 0) is never used. */
static LLVMValueRef exp_minus_1(Codegen *cg, LLVMValueRef u) {
    LLVMValueRef one = elem_const(cg, 1), e = math1(cg, "exp", u);
    LLVMValueRef e_minus_1 = fp_sub(cg, e, one);
    LLVMValueRef kahan = fp_div(cg, fp_mul(cg, e_minus_1, u), math1(cg, "log", e));
    LLVMValueRef near = select_if(cg, LLVMRealOEQ, e, one, u, kahan);
    return select_if(cg, LLVMRealOLT, u, elem_const(cg, -0.5), e_minus_1, near);
}

static LLVMValueRef ew_elu(Codegen *cg, const Value *v, LLVMValueRef *x) {
    LLVMValueRef negative = fp_mul(cg, elem_const(cg, v->opt[0]), exp_minus_1(cg, x[0]));
    return LLVMBuildSelect(cg->b, positive_or_nan(cg, x[0]), x[0], negative, "");
}

/* log(1 + e) for 0 <= e <= 1 to full precision with a log that vectorises: with s = 1 + e
 * rounded, log(s) is off by the rounding (s - 1) - e, divided by s. */
static LLVMValueRef log_1_plus(Codegen *cg, LLVMValueRef e) {
    LLVMValueRef s = fp_add(cg, elem_const(cg, 1), e);
    LLVMValueRef rounding = fp_sub(cg, fp_sub(cg, s, elem_const(cg, 1)), e);
    return fp_sub(cg, math1(cg, "log", s), fp_div(cg, rounding, s));
}

/* max(u, 0) + log(1 + exp(-|u|)): exp never overflows, and softplus(-100) is e^-100, not 0. */
static LLVMValueRef ew_softplus(Codegen *cg, const Value *v, LLVMValueRef *x) {
    LLVMValueRef tail =
        log_1_plus(cg, math1(cg, "exp", LLVMBuildFNeg(cg->b, math1(cg, "fabs", x[0]), "")));
    return fp_add(cg, ew_relu(cg, v, x), tail);
}

static LLVMValueRef ew_step(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    LLVMValueRef zero = elem_const(cg, 0);
    LLVMValueRef step = select_if(cg, LLVMRealOGT, x[0], zero, elem_const(cg, 1), zero);
    return select_if(cg, LLVMRealUNO, x[0], x[0], x[0], step);
}

static LLVMValueRef ew_sign(Codegen *cg, const Value *v, LLVMValueRef *x) {
    LLVMValueRef step = ew_step(cg, v, x); /* 1, 0 or NaN */
    return select_if(cg, LLVMRealOLT, x[0], elem_const(cg, 0), elem_const(cg, -1), step);
}

static LLVMValueRef ew_where(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return LLVMBuildSelect(cg->b, positive_or_nan(cg, x[0]), x[1], x[2], "");
}

/* a while training, b otherwise: the loop reads nnrt_ctx.training once (loops.c). */
static LLVMValueRef ew_training(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return LLVMBuildSelect(cg->b, loop_is_training(cg), x[0], x[1], "");
}

/* The repetition is in how the loop indexes the operand. */
static LLVMValueRef ew_broadcast(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)cg, (void)v;
    return x[0];
}

/* ---- dropout ----
 * A mask is never stored: it is a hash, recomputed wherever it is needed (by the backward
 * pass too). With mix() the finaliser of splitmix64 and G = 0x9E3779B97F4A7C15 its step,
 *   key  = mix(noise_seed ^ mix(salt * G))                    once per call of the loop
 *   keep = (mix(key + element * G) >> 32) < keep_below        per element
 * where element = b * numel + e is the element's place in the batch. For one key the
 * hashes of consecutive elements are consecutive outputs of splitmix64; it is all integer
 * arithmetic inside the loop, so it vectorises with the loop. */

#define SPLITMIX_STEP 0x9E3779B97F4A7C15ull

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static LLVMValueRef u64_const(Codegen *cg, uint64_t n) {
    return LLVMConstInt(cg->i64, n, false);
}

/* mix64() in the generated code. */
static LLVMValueRef emit_mix64(Codegen *cg, LLVMValueRef z) {
    static const struct {
        uint64_t shift, factor;
    } rounds[2] = {{30, 0xBF58476D1CE4E5B9ull}, {27, 0x94D049BB133111EBull}};
    for (int r = 0; r < 2; r++) {
        z = LLVMBuildXor(cg->b, z, LLVMBuildLShr(cg->b, z, u64_const(cg, rounds[r].shift), ""), "");
        z = LLVMBuildMul(cg->b, z, u64_const(cg, rounds[r].factor), "");
    }
    return LLVMBuildXor(cg->b, z, LLVMBuildLShr(cg->b, z, u64_const(cg, 31), ""), "");
}

/* While training, an element is kept with probability 1 - rate (to 2^-32) and scaled by
 * 1/(1 - rate). Otherwise every element is kept and scaled by 1: the identity, bit for bit,
 * without a second version of the loop. */
Masks dropout_masks(Codegen *cg, LLVMValueRef training_flag, LLVMValueRef noise_seed,
                    const Value *v) {
    double rate = v->opt[0];
    LLVMValueRef zero = LLVMConstInt(cg->i32, 0, false);
    LLVMValueRef training = LLVMBuildICmp(cg->b, LLVMIntNE, training_flag, zero, "");
    uint64_t salt = mix64((uint64_t)v->salt * SPLITMIX_STEP);
    uint64_t below = (uint64_t)llround((1 - rate) * 0x1p32);
    Masks m;
    m.key = emit_mix64(cg, LLVMBuildXor(cg->b, noise_seed, u64_const(cg, salt), ""));
    m.keep_below =
        LLVMBuildSelect(cg->b, training, u64_const(cg, below), u64_const(cg, 1ull << 32), "");
    m.scale =
        LLVMBuildSelect(cg->b, training, elem_const(cg, 1 / (1 - rate)), elem_const(cg, 1), "");
    return m;
}

static LLVMValueRef ew_dropout(Codegen *cg, const Value *v, LLVMValueRef *x) {
    const Masks *m = loop_masks(cg, v);
    LLVMValueRef step = LLVMBuildMul(cg->b, loop_element(cg), u64_const(cg, SPLITMIX_STEP), "");
    LLVMValueRef hash = emit_mix64(cg, LLVMBuildAdd(cg->b, m->key, step, ""));
    LLVMValueRef top = LLVMBuildLShr(cg->b, hash, u64_const(cg, 32), "");
    LLVMValueRef keep = LLVMBuildICmp(cg->b, LLVMIntULT, top, m->keep_below, "");
    return LLVMBuildSelect(cg->b, keep, fp_mul(cg, x[0], m->scale), elem_const(cg, 0), "");
}

/* ---- rows ---- */

static LLVMValueRef term_a(Codegen *cg, const Terms *t, LLVMValueRef i) {
    return operand_at(cg, t->a, i);
}

static LLVMValueRef term_product(Codegen *cg, const Terms *t, LLVMValueRef i) {
    return fp_mul(cg, operand_at(cg, t->a, i), operand_at(cg, t->b, i));
}

static LLVMValueRef term_exp_shifted(Codegen *cg, const Terms *t, LLVMValueRef i) {
    LLVMValueRef e = math1(cg, "exp", fp_sub(cg, operand_at(cg, t->a, i), t->shift));
    if (t->store_to) store_at(cg, t->store_to, i, e);
    return e;
}

/* -y * log_softmax(z) = y * (log(sum) - (z - max)), with a = z, b = y, shift = max and
 * log_sum = log(sum e^(z - max)): never a difference of two large numbers, and the max is
 * taken off z before anything is added to it (max + log(sum) would round to max's ulp). */
static LLVMValueRef term_cross_entropy(Codegen *cg, const Terms *t, LLVMValueRef i) {
    LLVMValueRef shifted = fp_sub(cg, operand_at(cg, t->a, i), t->shift);
    return fp_mul(cg, operand_at(cg, t->b, i), fp_sub(cg, t->log_sum, shifted));
}

/* The row's max m and log(sum e^(z - m)): log-sum-exp is their sum, but z - lse is better
 * computed as (z - m) - log(sum), which never rounds to the ulp of a large m. */
static Terms shifted_log_sum(Codegen *cg, Operand z, int64_t n) {
    Terms t = {.a = z, .shift = max_of(cg, n, z)};
    t.log_sum = math1(cg, "log", sum_terms(cg, n, term_exp_shifted, &t));
    return t;
}

static void row_softmax(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C) {
    Terms t = {.a = row[0], .shift = max_of(cg, C, row[0]), .store_to = out};
    LLVMValueRef inv = fp_div(cg, elem_const(cg, 1), sum_terms(cg, C, term_exp_shifted, &t));
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, C));
    store_at(cg, out, i, fp_mul(cg, load_at(cg, out, i), inv));
    loop_end(cg, &l, false);
}

static void row_log_softmax(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C) {
    Terms t = shifted_log_sum(cg, row[0], C);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, C));
    LLVMValueRef shifted = fp_sub(cg, operand_at(cg, row[0], i), t.shift);
    store_at(cg, out, i, fp_sub(cg, shifted, t.log_sum));
    loop_end(cg, &l, false);
}

/* out points at the sample's loss, which sums the rows' cross-entropies. */
static void row_softmax_ce(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C) {
    Terms t = shifted_log_sum(cg, row[0], C);
    t.b = row[1];
    LLVMValueRef ce = sum_terms(cg, C, term_cross_entropy, &t);
    LLVMValueRef zero = int64_const(cg, 0);
    store_at(cg, out, zero, fp_add(cg, load_at(cg, out, zero), ce));
}

/* s * (g - rowsum(g*s)), row[0] = s, row[1] = g. */
static void row_softmax_grad(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C) {
    Terms t = {.a = row[1], .b = row[0]};
    LLVMValueRef dot = sum_terms(cg, C, term_product, &t);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, C));
    LLVMValueRef g = operand_at(cg, row[1], i), s = operand_at(cg, row[0], i);
    store_at(cg, out, i, fp_mul(cg, s, fp_sub(cg, g, dot)));
    loop_end(cg, &l, false);
}

/* g - exp(l) * rowsum(g), row[0] = l, row[1] = g. */
static void row_log_softmax_grad(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C) {
    Terms t = {.a = row[1]};
    LLVMValueRef total = sum_terms(cg, C, term_a, &t);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, C));
    LLVMValueRef p = math1(cg, "exp", operand_at(cg, row[0], i));
    store_at(cg, out, i, fp_sub(cg, operand_at(cg, row[1], i), fp_mul(cg, p, total)));
    loop_end(cg, &l, false);
}

/* g * (softmax(z) * rowsum(y) - y), row = {z, y, g}; g is one value per sample. */
static void row_softmax_ce_grad(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C) {
    Terms t = {.a = row[0], .shift = max_of(cg, C, row[0]), .store_to = out};
    LLVMValueRef exp_sum = sum_terms(cg, C, term_exp_shifted, &t);
    Terms ty = {.a = row[1]};
    LLVMValueRef scale = fp_div(cg, sum_terms(cg, C, term_a, &ty), exp_sum);
    LLVMValueRef g = operand_at(cg, row[2], int64_const(cg, 0));
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, C));
    LLVMValueRef p = fp_mul(cg, load_at(cg, out, i), scale);
    store_at(cg, out, i, fp_mul(cg, g, fp_sub(cg, p, operand_at(cg, row[1], i))));
    loop_end(cg, &l, false);
}

/* ---- reductions ---- */

/* sum and mean: one scalar per sample. */
static void sum_per_sample(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                           LLVMValueRef nb, bool mean) {
    const Value *u = v->args[0];
    int64_t n = shape_numel(u->shape);
    Loop lb;
    LLVMValueRef b = loop_begin(cg, &lb, nb);
    Terms t = {.a = operand_plus(cg, args[0], sample_offset(cg, u, b))};
    LLVMValueRef sum = sum_terms(cg, n, term_a, &t);
    if (mean) sum = fp_div(cg, sum, elem_const(cg, (double)n));
    store_at(cg, out, b, sum);
    loop_end(cg, &lb, false);
}

static void reduce_sum(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                       LLVMValueRef nb) {
    sum_per_sample(cg, v, args, out, nb, false);
}

static void reduce_mean(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                        LLVMValueRef nb) {
    sum_per_sample(cg, v, args, out, nb, true);
}

static void zero_fill(Codegen *cg, LLVMValueRef out, int64_t n) {
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, n));
    store_at(cg, out, i, elem_const(cg, 0));
    loop_end(cg, &l, false);
}

/* out[j] += from[j] for j < n: vectorises along j, no reassociation needed. */
static void add_into(Codegen *cg, LLVMValueRef out, Operand from, int64_t n) {
    Loop l;
    LLVMValueRef j = loop_begin(cg, &l, int64_const(cg, n));
    store_at(cg, out, j, fp_add(cg, load_at(cg, out, j), operand_at(cg, from, j)));
    loop_end(cg, &l, false);
}

/* Sums the leading axes away: out[j] = sum over r of u[r*m + j]. */
static void reduce_sum_to(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                          LLVMValueRef nb) {
    const Value *u = v->args[0];
    int64_t m = shape_numel(v->shape), n = shape_numel(u->shape);
    Loop lb, lr;
    LLVMValueRef b = loop_begin(cg, &lb, nb);
    LLVMValueRef out_sample = element_ptr(cg, out, sample_offset(cg, v, b));
    Operand u_sample = operand_plus(cg, args[0], sample_offset(cg, u, b));
    zero_fill(cg, out_sample, m);
    LLVMValueRef r = loop_begin(cg, &lr, int64_const(cg, n / m));
    add_into(cg, out_sample, operand_plus(cg, u_sample, mul64(cg, r, int64_const(cg, m))), m);
    loop_end(cg, &lr, false);
    loop_end(cg, &lb, false);
}

/* out[j] = sum over the batch of u[b][j]. */
static void reduce_batch_sum(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                             LLVMValueRef nb) {
    int64_t n = shape_numel(v->shape);
    zero_fill(cg, out, n);
    Loop lb;
    LLVMValueRef b = loop_begin(cg, &lb, nb);
    add_into(cg, out, operand_plus(cg, args[0], sample_offset(cg, v->args[0], b)), n);
    loop_end(cg, &lb, false);
}

/* out[j] = (sum over the batch of u[b][j]) / (nb - correction). */
static void reduce_batch_mean(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                              LLVMValueRef nb) {
    reduce_batch_sum(cg, v, args, out, nb);
    LLVMValueRef count =
        fp_sub(cg, LLVMBuildSIToFP(cg->b, nb, cg->elem, ""), elem_const(cg, v->opt[0]));
    Loop l;
    LLVMValueRef j = loop_begin(cg, &l, int64_const(cg, shape_numel(v->shape)));
    store_at(cg, out, j, fp_div(cg, load_at(cg, out, j), count));
    loop_end(cg, &l, false);
}

/* ---- the tables ---- */

#define KERNEL_SRC(name)
#define KERNEL_MATMUL(name)
#define OP(name, arity, class, ...) KERNEL_##class(name)

#define KERNEL_EW(name) [OP_##name] = ew_##name,
#define KERNEL_ROW(name)
#define KERNEL_REDUCE(name)
EwKernel *const ew_kernels[OP_COUNT] = {
#include "ops.def"
};
#undef KERNEL_EW
#undef KERNEL_ROW

#define KERNEL_EW(name)
#define KERNEL_ROW(name) [OP_##name] = row_##name,
RowKernel *const row_kernels[OP_COUNT] = {
#include "ops.def"
};
#undef KERNEL_ROW
#undef KERNEL_REDUCE

#define KERNEL_ROW(name)
#define KERNEL_REDUCE(name) [OP_##name] = reduce_##name,
ReduceKernel *const reduce_kernels[OP_COUNT] = {
#include "ops.def"
};
#undef OP
