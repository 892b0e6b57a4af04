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
 *   key  = mix(noise_seed ^ mix(salt * G)) + first_row * numel * G   once per call of the loop
 *   keep = (mix(key + element * G) >> 32) < keep_below               per element
 * where element = b * numel + e is the element's place in the call's batch; first_row (the
 * call's first sample in the step's whole batch, nnrt_ctx) moves the numbering on so that
 * a sample's mask does not depend on how workers split the batch. For one key the
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

/* keep, the probability of keeping an element, as a double: nnrt_ctx.dropout_keep when the
 * runtime sets one (train --dropout), else 1 - the rate compiled in. Then the threshold
 * round(keep * 2^32) and the scale 1 / keep are computed from it in double, exactly as they
 * were from the constant when compiling: a run-time rate gives the bits a model compiled
 * with that rate gives, and without one the compiled rate gives the bits it always did. */
static LLVMValueRef keep_probability(Codegen *cg, LLVMValueRef dropout_keep, double rate) {
    LLVMValueRef compiled = LLVMConstReal(cg->f64_type, 1 - rate);
    LLVMValueRef given =
        LLVMBuildFCmp(cg->b, LLVMRealONE, dropout_keep, LLVMConstReal(cg->f64_type, 0), "");
    return LLVMBuildSelect(cg->b, given, dropout_keep, compiled, "keep");
}

static LLVMValueRef keep_threshold(Codegen *cg, LLVMValueRef keep) {
    LLVMTypeRef f64 = cg->f64_type;
    LLVMValueRef round = declare_function(cg, "llvm.round.f64", f64, &f64, 1);
    LLVMValueRef scaled = LLVMBuildFMul(cg->b, keep, LLVMConstReal(f64, 0x1p32), "");
    return LLVMBuildFPToUI(cg->b, build_call(cg, round, &scaled, 1), cg->i64, "");
}

/* While training, an element is kept with probability keep (to 2^-32) and scaled by 1/keep.
 * Otherwise every element is kept and scaled by 1: the identity, bit for bit, without a
 * second version of the loop. */
Masks dropout_masks(Codegen *cg, LLVMValueRef training_flag, LLVMValueRef noise_seed,
                    LLVMValueRef first_row, LLVMValueRef dropout_keep, const Value *v) {
    LLVMValueRef zero = LLVMConstInt(cg->i32, 0, false);
    LLVMValueRef training = LLVMBuildICmp(cg->b, LLVMIntNE, training_flag, zero, "");
    uint64_t salt = mix64((uint64_t)v->salt * SPLITMIX_STEP);
    LLVMValueRef keep = keep_probability(cg, dropout_keep, v->opt[0]);
    LLVMValueRef below = keep_threshold(cg, keep);
    LLVMValueRef scale = LLVMBuildFDiv(cg->b, LLVMConstReal(cg->f64_type, 1), keep, "");
    if (!cg->f64) scale = LLVMBuildFPTrunc(cg->b, scale, cg->elem, "");
    Masks m;
    m.key = emit_mix64(cg, LLVMBuildXor(cg->b, noise_seed, u64_const(cg, salt), ""));
    uint64_t row_step = (uint64_t)shape_numel(v->shape) * SPLITMIX_STEP;
    m.key =
        LLVMBuildAdd(cg->b, m.key, LLVMBuildMul(cg->b, first_row, u64_const(cg, row_step), ""), "");
    m.keep_below = LLVMBuildSelect(cg->b, training, below, u64_const(cg, 1ull << 32), "");
    m.scale = LLVMBuildSelect(cg->b, training, scale, elem_const(cg, 1), "");
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

/* softmax_ce and its softmax_ce_grad of the same z and y in one pass (a training step's loss
 * value and its gradient, docs/codegen.md, "Rows and reductions"): the row's max and its
 * exps once, each exp stored into the gradient's row as softmax_ce_grad stores it, the sum's
 * log for the loss; then the loss as row_softmax_ce adds it, and the gradient as
 * row_softmax_ce_grad finishes it. The same operations as the two kernels', so the same
 * values. row = {z, y, g}; loss_out points at the sample's loss. The gradient's row must
 * not be z's or y's memory: z is read again after the exps are stored. */
void row_softmax_ce_and_grad(Codegen *cg, Operand *row, LLVMValueRef loss_out,
                             LLVMValueRef grad_out, int64_t C) {
    Terms t = {.a = row[0], .shift = max_of(cg, C, row[0]), .store_to = grad_out};
    LLVMValueRef exp_sum = sum_terms(cg, C, term_exp_shifted, &t);
    t.log_sum = math1(cg, "log", exp_sum);
    t.b = row[1];
    t.store_to = NULL;
    LLVMValueRef ce = sum_terms(cg, C, term_cross_entropy, &t);
    LLVMValueRef zero = int64_const(cg, 0);
    store_at(cg, loss_out, zero, fp_add(cg, load_at(cg, loss_out, zero), ce));
    Terms ty = {.a = row[1]};
    LLVMValueRef scale = fp_div(cg, sum_terms(cg, C, term_a, &ty), exp_sum);
    LLVMValueRef g = operand_at(cg, row[2], zero);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, C));
    LLVMValueRef p = fp_mul(cg, load_at(cg, grad_out, i), scale);
    store_at(cg, grad_out, i, fp_mul(cg, g, fp_sub(cg, p, operand_at(cg, row[1], i))));
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

static void zero_fill_n(Codegen *cg, LLVMValueRef out, LLVMValueRef n) {
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, n);
    store_at(cg, out, i, elem_const(cg, 0));
    loop_end(cg, &l, false);
}

static void zero_fill(Codegen *cg, LLVMValueRef out, int64_t n) {
    zero_fill_n(cg, out, int64_const(cg, n));
}

/* out[j] += from[j] for j < n: vectorises along j, no reassociation needed. */
static void add_into(Codegen *cg, LLVMValueRef out, Operand from, int64_t n) {
    Loop l;
    LLVMValueRef j = loop_begin(cg, &l, int64_const(cg, n));
    store_at(cg, out, j, fp_add(cg, load_at(cg, out, j), operand_at(cg, from, j)));
    loop_end(cg, &l, false);
}

/* Sums u down to out's shape where out is 1 on an inner axis (m [T,1] from [T,D]): the
 * rows of u's inner block (codegen.h) either add into out's row along it, or, where out is
 * constant on the block, add their sum into one element of out. */
static void sum_to_inner_axes(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                              LLVMValueRef nb) {
    const Value *u = v->args[0];
    Shape U = shape_without_leading_ones(u->shape), O = shape_without_leading_ones(v->shape);
    int last, block = inner_block(U, &O, 1, &last);
    int64_t inner = 1;
    for (int k = block; k < U.rank; k++) inner *= U.dim[k];
    bool along = runs_along(O, U, last);
    Loop lb, lr;
    LLVMValueRef b = loop_begin(cg, &lb, nb);
    LLVMValueRef out_sample = element_ptr(cg, out, sample_offset(cg, v, b));
    Operand u_sample = operand_plus(cg, args[0], sample_offset(cg, u, b));
    zero_fill(cg, out_sample, shape_numel(O));
    LLVMValueRef r = loop_begin(cg, &lr, int64_const(cg, shape_numel(U) / inner));
    LLVMValueRef out_row = element_ptr(cg, out_sample, broadcast_row_start(cg, U, O, r, block));
    Operand u_row = operand_plus(cg, u_sample, mul64(cg, r, int64_const(cg, inner)));
    if (along) {
        add_into(cg, out_row, u_row, inner);
    } else {
        Terms t = {.a = u_row};
        LLVMValueRef zero = int64_const(cg, 0);
        store_at(cg, out_row, zero,
                 fp_add(cg, load_at(cg, out_row, zero), sum_terms(cg, inner, term_a, &t)));
    }
    loop_end(cg, &lr, false);
    loop_end(cg, &lb, false);
}

/* Sums the leading axes away: out[j] = sum over r of u[r*m + j]. */
static void reduce_sum_to(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                          LLVMValueRef nb) {
    const Value *u = v->args[0];
    if (!shape_is_suffix(shape_without_leading_ones(v->shape),
                         shape_without_leading_ones(u->shape))) {
        sum_to_inner_axes(cg, v, args, out, nb);
        return;
    }
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

/* ---- layout: copies by an index map ----
 * Every layout op is one or two walks: for each sample, for each element of a box of up
 * to MAX_RANK axes, one element is read at `from` + sum i_k * from_stride[k] and written
 * at `to` + sum i_k * to_stride[k]. The axes are generated as nested counted loops, the
 * last innermost; axes of length 1 are left out and neighbours that are contiguous on
 * both sides are merged, so a slice of whole rows or a concat is a few long loops that
 * vectorise, not one per element. */

typedef struct Walk {
    int rank;
    int64_t count[MAX_RANK];
    LLVMValueRef from_at, to_at; /* i64 element offsets where the box starts; NULL: 0 */
    int64_t from_stride[MAX_RANK], to_stride[MAX_RANK];
    bool add_into; /* add each element to what `to` holds rather than overwrite it */
} Walk;

/* Row-major strides of a shape, in elements. */
static void strides_of(Shape s, int64_t *stride) {
    int64_t n = 1;
    for (int k = s.rank - 1; k >= 0; k--) {
        stride[k] = n;
        n *= s.dim[k];
    }
}

/* Leaves out axes of length 1 and merges an axis into the next when that walks both
 * sides contiguously. */
static Walk simplified(Walk w) {
    Walk out = {.from_at = w.from_at, .to_at = w.to_at, .add_into = w.add_into};
    for (int k = 0; k < w.rank; k++) {
        if (w.count[k] == 1) continue;
        int last = out.rank - 1;
        if (last >= 0 && out.from_stride[last] == w.from_stride[k] * w.count[k] &&
            out.to_stride[last] == w.to_stride[k] * w.count[k]) {
            out.count[last] *= w.count[k];
            out.from_stride[last] = w.from_stride[k];
            out.to_stride[last] = w.to_stride[k];
            continue;
        }
        out.count[out.rank] = w.count[k];
        out.from_stride[out.rank] = w.from_stride[k];
        out.to_stride[out.rank] = w.to_stride[k];
        out.rank++;
    }
    return out;
}

static LLVMValueRef plus_scaled(Codegen *cg, LLVMValueRef at, LLVMValueRef i, int64_t stride) {
    return LLVMBuildNSWAdd(cg->b, at, mul64(cg, i, int64_const(cg, stride)), "");
}

static void walk_axes(Codegen *cg, const Walk *w, int k, Operand from, LLVMValueRef to,
                      LLVMValueRef from_at, LLVMValueRef to_at) {
    if (k == w->rank) {
        LLVMValueRef x = operand_at(cg, from, from_at);
        if (w->add_into) x = fp_add(cg, load_at(cg, to, to_at), x);
        store_at(cg, to, to_at, x);
        return;
    }
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, w->count[k]));
    walk_axes(cg, w, k + 1, from, to, plus_scaled(cg, from_at, i, w->from_stride[k]),
              plus_scaled(cg, to_at, i, w->to_stride[k]));
    loop_end(cg, &l, false);
}

/* The walk w from operand u (read from `from`) into v's memory at out, sample by sample;
 * an operand that does not vary is read for every sample. */
static void copy_by_walk(Codegen *cg, const Value *v, const Value *u, Operand from,
                         LLVMValueRef out, LLVMValueRef nb, Walk w) {
    w = simplified(w);
    Loop lb;
    LLVMValueRef b = loop_begin(cg, &lb, nb);
    Operand from_sample = operand_plus(cg, from, sample_offset(cg, u, b));
    LLVMValueRef to_sample = element_ptr(cg, out, sample_offset(cg, v, b));
    LLVMValueRef zero = int64_const(cg, 0);
    walk_axes(cg, &w, 0, from_sample, to_sample, w.from_at ? w.from_at : zero,
              w.to_at ? w.to_at : zero);
    loop_end(cg, &lb, false);
}

int64_t layout_start(const Layout *l) {
    int64_t whole_stride[MAX_RANK], at = 0;
    strides_of(l->whole, whole_stride);
    for (int k = 0; k < l->whole.rank; k++) at += l->start[k] * whole_stride[k];
    return at;
}

/* The walk over a slice's box from `start` on: `sliced` side strided through whole, `packed`
 * side contiguous (the slice's own elements). */
static Walk slice_walk(const Layout *l, bool from_whole, LLVMValueRef start) {
    Walk w = {.rank = l->whole.rank};
    int64_t whole_stride[MAX_RANK], packed_stride[MAX_RANK], n = 1;
    strides_of(l->whole, whole_stride);
    for (int k = w.rank - 1; k >= 0; k--) {
        packed_stride[k] = n;
        n *= l->count[k];
    }
    for (int k = 0; k < w.rank; k++) {
        w.count[k] = l->count[k];
        int64_t sliced = l->step[k] * whole_stride[k];
        w.from_stride[k] = from_whole ? sliced : packed_stride[k];
        w.to_stride[k] = from_whole ? packed_stride[k] : sliced;
    }
    (from_whole ? &w.from_at : &w.to_at)[0] = start;
    return w;
}

static void layout_slice(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                         LLVMValueRef nb, LLVMValueRef start) {
    copy_by_walk(cg, v, v->args[0], args[0], out, nb, slice_walk(v->layout, true, start));
}

/* Zeros, then the slice's elements at their places; or, for a term that adds to the sum
 * it accumulates into (plan.h, sum_into), the slice's elements added at their places; or,
 * for a term of a sum its scatters tile, the slice's elements alone. */
static void layout_scatter(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                           LLVMValueRef nb, LLVMValueRef start) {
    Walk w = slice_walk(v->layout, false, start);
    const ValuePlan *vp = plan_value(cg->plan, v);
    w.add_into = vp->accumulate;
    if (!w.add_into && !vp->tiles)
        zero_fill_n(cg, out, mul64(cg, nb, int64_const(cg, shape_numel(v->shape))));
    copy_by_walk(cg, v, v->args[0], args[0], out, nb, w);
}

/* Result-ordered: axis k of the result reads along axis perm[k] of the operand. */
static void layout_permute(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                           LLVMValueRef nb, LLVMValueRef start) {
    (void)start;
    int perm[MAX_RANK];
    int64_t from_stride[MAX_RANK];
    ir_permutation(v, perm);
    strides_of(v->args[0]->shape, from_stride);
    Walk w = {.rank = v->shape.rank};
    strides_of(v->shape, w.to_stride);
    for (int k = 0; k < w.rank; k++) {
        w.count[k] = v->shape.dim[k];
        w.from_stride[k] = from_stride[perm[k]];
    }
    copy_by_walk(cg, v, v->args[0], args[0], out, nb, w);
}
#define layout_transpose layout_permute

/* a's elements into the first a.dim[axis] places along the axis, then b's. */
static void layout_concat(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                          LLVMValueRef nb, LLVMValueRef start) {
    (void)start;
    int axis = 0;
    ir_axis(v->opt[0], v->shape.rank, &axis);
    int64_t to_stride[MAX_RANK];
    strides_of(v->shape, to_stride);
    for (int i = 0; i < 2; i++) {
        const Value *u = v->args[i];
        Walk w = {.rank = u->shape.rank};
        strides_of(u->shape, w.from_stride);
        for (int k = 0; k < w.rank; k++) {
            w.count[k] = u->shape.dim[k];
            w.to_stride[k] = to_stride[k];
        }
        w.to_at = int64_const(cg, i ? v->args[0]->shape.dim[axis] * to_stride[axis] : 0);
        copy_by_walk(cg, v, u, args[i], out, nb, w);
    }
}

/* ---- reductions along one axis ----
 * u is outer x n x inner around the axis (n its length), and the result outer x inner,
 * keepdim or not; over the batch the outer rows of every sample are consecutive. */

typedef enum AxisFold { FOLD_SUM, FOLD_MAX, FOLD_MIN } AxisFold;

/* max: a < b ? b : a, min: b < a ? b : a, then b where b is NaN (ew_max, ew_min): NaN if
 * either is, as torch.amax. */
static LLVMValueRef fold_two(Codegen *cg, AxisFold f, LLVMValueRef a, LLVMValueRef b) {
    if (f == FOLD_SUM) return fp_add(cg, a, b);
    LLVMValueRef pick = f == FOLD_MAX ? select_if(cg, LLVMRealOLT, a, b, b, a)
                                      : select_if(cg, LLVMRealOLT, b, a, b, a);
    return nan_of_b_or(cg, b, pick);
}

/* Along the last axis (inner = 1): a sum is a row sum, reassociated and vectorised; a max or
 * min keeps the NaN-passing compare of fold_two, one element after the other. */
static LLVMValueRef fold_row(Codegen *cg, AxisFold f, Operand row, int64_t n) {
    if (f == FOLD_SUM) {
        Terms t = {.a = row};
        return sum_terms(cg, n, term_a, &t);
    }
    LLVMValueRef acc = entry_alloca(cg);
    LLVMBuildStore(cg->b, operand_at(cg, row, int64_const(cg, 0)), acc);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, n - 1));
    LLVMValueRef x = operand_at(cg, row, LLVMBuildNSWAdd(cg->b, i, int64_const(cg, 1), ""));
    LLVMBuildStore(cg->b, fold_two(cg, f, LLVMBuildLoad2(cg->b, cg->elem, acc, ""), x), acc);
    loop_end(cg, &l, false);
    return LLVMBuildLoad2(cg->b, cg->elem, acc, "");
}

/* out[j] = fold over i < n of u[i*inner + j]: the first slice copied, the others folded into
 * it along j (vectorised, no reassociation). */
static void fold_slices(Codegen *cg, AxisFold f, Operand u, LLVMValueRef out, int64_t n,
                        int64_t inner) {
    Loop lj, li, lk;
    LLVMValueRef j = loop_begin(cg, &lj, int64_const(cg, inner));
    store_at(cg, out, j, operand_at(cg, u, j));
    loop_end(cg, &lj, false);
    LLVMValueRef i = loop_begin(cg, &li, int64_const(cg, n - 1));
    Operand slice = operand_plus(
        cg, u,
        mul64(cg, LLVMBuildNSWAdd(cg->b, i, int64_const(cg, 1), ""), int64_const(cg, inner)));
    LLVMValueRef k = loop_begin(cg, &lk, int64_const(cg, inner));
    store_at(cg, out, k, fold_two(cg, f, load_at(cg, out, k), operand_at(cg, slice, k)));
    loop_end(cg, &lk, false);
    loop_end(cg, &li, false);
}

/* out[j] /= n for j < inner. */
static void divide(Codegen *cg, LLVMValueRef out, int64_t inner, int64_t n) {
    Loop lj;
    LLVMValueRef j = loop_begin(cg, &lj, int64_const(cg, inner));
    store_at(cg, out, j, fp_div(cg, load_at(cg, out, j), elem_const(cg, (double)n)));
    loop_end(cg, &lj, false);
}

/* sum_axis, mean_axis, max_axis, min_axis: one kernel, the fold picked by the op. */
static void reduce_along_axis(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                              LLVMValueRef nb) {
    AxisFold f = v->op == OP_max_axis ? FOLD_MAX : v->op == OP_min_axis ? FOLD_MIN : FOLD_SUM;
    bool mean = v->op == OP_mean_axis;
    Shape u = v->args[0]->shape;
    int axis = ir_reduced_axis(v);
    int64_t n = u.dim[axis], inner = 1, outer = 1;
    for (int k = 0; k < axis; k++) outer *= u.dim[k];
    for (int k = axis + 1; k < u.rank; k++) inner *= u.dim[k];
    LLVMValueRef rows = mul64(cg, nb, int64_const(cg, outer)); /* nb is 1 when u does not vary */
    Loop lo;
    LLVMValueRef o = loop_begin(cg, &lo, rows);
    Operand from = operand_plus(cg, args[0], mul64(cg, o, int64_const(cg, n * inner)));
    LLVMValueRef to = element_ptr(cg, out, mul64(cg, o, int64_const(cg, inner)));
    if (inner == 1)
        store_at(cg, to, int64_const(cg, 0), fold_row(cg, f, from, n));
    else
        fold_slices(cg, f, from, to, n, inner);
    if (mean) divide(cg, to, inner, n);
    loop_end(cg, &lo, false);
}

#define reduce_sum_axis  reduce_along_axis
#define reduce_mean_axis reduce_along_axis
#define reduce_max_axis  reduce_along_axis
#define reduce_min_axis  reduce_along_axis

/* The same elements under a shape with one more axis of size 1: a copy. */
static void reduce_unsqueeze(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                             LLVMValueRef nb) {
    int64_t n = shape_numel(v->shape);
    LLVMValueRef total = v->varying ? mul64(cg, nb, int64_const(cg, n)) : int64_const(cg, n);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, total);
    store_at(cg, out, i, operand_at(cg, args[0], i));
    loop_end(cg, &l, false);
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
#define KERNEL_LAYOUT(name)
#define KERNEL_WINDOW(name)         /* window.c: a kernel of runtime/conv.c */
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
#undef KERNEL_REDUCE
#undef KERNEL_LAYOUT

#define KERNEL_REDUCE(name)
#define KERNEL_LAYOUT(name) [OP_##name] = layout_##name,
LayoutKernel *const layout_kernels[OP_COUNT] = {
#include "ops.def"
};
#undef OP
