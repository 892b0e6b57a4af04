/* codegen.c: the planned graph as LLVM IR through the LLVM C API; then verification, the
 * new pass manager at the requested level for the host CPU, and an object file.
 *
 * The module holds:
 *   nnc.predict, nnc.forward, nnc.grad, nnc.sgd_step   the entry points of runtime/nnrt.h,
 *       each the slice of the plan's steps that its roots need, in schedule order;
 *   nnc.loop.N, nnc.<op>.ID                            one internal function per fused
 *       elementwise loop, row op and reduction. Their pointer parameters are noalias (the
 *       plan never gives an output the memory of a live input), so LLVM vectorises them
 *       without runtime alias checks;
 *   nnc.sgd.update, nnc.sgd.apply                      the optimizer's update loops;
 *   nnrt_model_desc                                    the descriptor.
 * Matrix products call cblas_sgemm / cblas_dgemm from the entry points, or, for the steps of
 * a scan that share a weight, runtime/packed_gemm.h's product with it packed. This file holds
 * the entry points, the BLAS mapping, the fused SGD update and the module's passes and
 * output; codegen.h lists the other parts. docs/codegen.md describes the memory plan, the
 * fusion rules, the BLAS mapping and the fused SGD update. */
#include "codegen.h"

#include "in_place_gemm.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Support.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* From cblas.h (OpenBLAS, LP64: blasint is int). The team's GEMM reads CBLAS_CONJ_TRANS for A
 * as runtime/in_place_gemm.h's NNRT_TRANS_DATA: Aᵀ, A the model's data. */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112, CBLAS_CONJ_TRANS = 113 };

static const char *const entry_names[ENTRY_COUNT] = {"predict", "forward", "grad", "sgd_step"};

/* ---- matrix products ---- */

typedef struct Gemm {
    bool ta, tb;
    bool data_kernel;     /* A is one of the model's inputs, the shape nnrt_sgemm_tn's (below) */
    const Value *a_value; /* A's value when the product is one call on the whole of it, or NULL */
    LLVMValueRef m, n, k; /* i64 */
    LLVMValueRef a, b, c;
    int64_t lda, ldb, ldc;
    LLVMValueRef alpha, beta;
} Gemm;

/* A product in f32 through the runtime's own kernels (runtime/in_place_gemm.h), which read
 * B in place where the CPU and the product's shape make them the faster, else call
 * cblas_sgemm; name is
 *   nnrt_sgemm_nn  C = alpha·A·B + beta·C, nothing transposed (X·W), skipping A's zero
 *                  columns;
 *   nnrt_sgemm_tn  C = alpha·Aᵀ·B + beta·C with A the model's data (a first layer's weight
 *                  gradient Xᵀ·dZ; zeros_of_data), skipping the rows of C that A's zero columns
 *                  leave as they are; nnrt_sgemm_tn_again where an nnrt_sgemm_nn on the same
 *                  value came earlier in the entry point, which lists those columns already
 *                  (marked in listed_in_entry; not in the team's entry, whose phases may run
 *                  on other threads, nor behind a branch that may skip the nnrt_sgemm_nn).
 * A value is never written once computed, and a model's inputs never, so A is unchanged.
 * Otherwise: A computed A (an activation) rarely has a column of zeros, and there OpenBLAS
 * measured a little faster; so did it at shapes the kernel never takes (nnrt_sgemm_tn_shape_fits),
 * which W3's step, at 270 ns, showed by the calls between (its products are now loops of the
 * step: small_or_gemm, below). */
static void call_runtime_sgemm(Codegen *cg, const char *name, const Gemm *gm) {
    LLVMTypeRef params[11] = {cg->i64,      cg->i64, cg->i64,  cg->elem,     cg->elem_ptr, cg->i64,
                              cg->elem_ptr, cg->i64, cg->elem, cg->elem_ptr, cg->i64};
    LLVMValueRef fn = declare_function(cg, name, cg->void_type, params, 11);
    LLVMValueRef args[11] = {gm->m,
                             gm->n,
                             gm->k,
                             gm->alpha,
                             gm->a,
                             int64_const(cg, gm->lda),
                             gm->b,
                             int64_const(cg, gm->ldb),
                             gm->beta,
                             gm->c,
                             int64_const(cg, gm->ldc)};
    build_call(cg, fn, args, 11);
}

/* A split step of sgd_step_team calls nnrt_team_sgemm (dgemm) instead, which has the
 * arguments of cblas_sgemm with the team member in place of the (row-major) order and
 * computes this thread's block of C (runtime/workers.h). */
static void call_gemm(Codegen *cg, const Gemm *gm) {
    bool tn_data = !cg->f64 && gm->ta && !gm->tb && gm->data_kernel;
    bool whole_in_one_thread = !cg->team && gm->a_value && !cg->in_branch;
    if (!cg->f64 && !cg->team_split && !gm->ta && !gm->tb) {
        call_runtime_sgemm(cg, "nnrt_sgemm_nn", gm);
        if (whole_in_one_thread) cg->listed_in_entry[gm->a_value->id] = true;
        return;
    }
    if (!cg->team_split && tn_data) {
        bool again = whole_in_one_thread && cg->listed_in_entry[gm->a_value->id];
        call_runtime_sgemm(cg, again ? "nnrt_sgemm_tn_again" : "nnrt_sgemm_tn", gm);
        return;
    }
    LLVMTypeRef params[14] = {cg->i32, cg->i32,  cg->i32,      cg->i32, cg->i32,
                              cg->i32, cg->elem, cg->elem_ptr, cg->i32, cg->elem_ptr,
                              cg->i32, cg->elem, cg->elem_ptr, cg->i32};
    const char *name = cg->f64 ? "cblas_dgemm" : "cblas_sgemm";
    if (cg->team_split) {
        params[0] = cg->i8_ptr;
        name = cg->f64 ? "nnrt_team_dgemm" : "nnrt_team_sgemm";
    }
    LLVMValueRef fn = declare_function(cg, name, cg->void_type, params, 14);
#define I32(x)    LLVMConstInt(cg->i32, (unsigned long long)(x), true)
#define TO_I32(x) LLVMBuildTrunc(cg->b, (x), cg->i32, "")
    LLVMValueRef args[14] = {cg->team_split ? cg->team : I32(CBLAS_ROW_MAJOR),
                             I32(tn_data && cg->team_split ? CBLAS_CONJ_TRANS
                                 : gm->ta                  ? CBLAS_TRANS
                                                           : CBLAS_NO_TRANS),
                             I32(gm->tb ? CBLAS_TRANS : CBLAS_NO_TRANS),
                             TO_I32(gm->m),
                             TO_I32(gm->n),
                             TO_I32(gm->k),
                             gm->alpha,
                             gm->a,
                             I32(gm->lda),
                             gm->b,
                             I32(gm->ldb),
                             gm->beta,
                             gm->c,
                             I32(gm->ldc)};
#undef I32
#undef TO_I32
    build_call(cg, fn, args, 14);
}

/* The matrix an operand stores per sample (before any transpose): a vector is one row. */
static void stored_matrix(const Value *v, int64_t *rows, int64_t *cols) {
    *rows = v->shape.rank == 1 ? 1 : v->shape.dim[0];
    *cols = v->shape.dim[v->shape.rank - 1];
}

/* A sample at a time: C_b = alpha op(A_b) op(B_b) + beta C_b, or, summing over the batch,
 * C = alpha sum_b op(A_b) op(B_b) + beta C (beta applies to the first product only). */
static void product_per_sample(Codegen *cg, const Value *v, const Gemm *whole) {
    Loop l;
    LLVMValueRef s = loop_begin(cg, &l, cg->batch);
    Gemm one = *whole;
    one.a_value = NULL; /* a sample's part of A */
    one.a = element_ptr(cg, whole->a, sample_offset(cg, v->args[0], s));
    one.b = element_ptr(cg, whole->b, sample_offset(cg, v->args[1], s));
    one.c = element_ptr(cg, whole->c, sample_offset(cg, v, s));
    if (v->sum_batch) {
        LLVMValueRef first = LLVMBuildICmp(cg->b, LLVMIntEQ, s, int64_const(cg, 0), "");
        one.beta = LLVMBuildSelect(cg->b, first, whole->beta, elem_const(cg, 1), "");
    }
    call_gemm(cg, &one);
    loop_end(cg, &l, false);
}

/* Whether emit_product computes the matmul v in one GEMM over the whole batch. */
static bool product_is_one_gemm(const Value *v) {
    const Value *a = v->args[0], *b = v->args[1];
    return (!a->varying && !b->varying) || (a->varying && !b->varying && !v->ta && !v->sum_batch) ||
           (a->varying && b->varying && v->ta && !v->tb && v->sum_batch);
}

/* Whether v's zero columns are its data's: a model input, or one scaled by a constant
 * (x / 255, 0.5 * x), which the models of image data do first. */
static bool zeros_of_data(const Value *v) {
    if (v->op == OP_input) return true;
    if ((v->op != OP_mul && v->op != OP_div) || v->nargs != 2) return false;
    const Value *x = v->args[0], *c = v->args[1];
    if (v->op == OP_mul && x->op == OP_const) x = v->args[1], c = v->args[0];
    return c->op == OP_const && c->num != 0 && isfinite(c->num) && zeros_of_data(x);
}

/* ---- products too small for a BLAS call ----
 *
 * A call of cblas_sgemm costs 20-140 ns before it multiplies anything (argument checks, the
 * choice of a kernel, for Aᵀ·B a buffer under a lock and packing): W3's five products of 8 to
 * 16 multiply-adds a sample took 330 ns of its 390 ns step on a Zen 4. A product of at most
 * SMALL_PRODUCT_MACS multiply-adds a sample and SMALL_PRODUCT_TOTAL over the batch is emitted
 * as loops instead: the dimension that grows with the batch is a loop, the others are
 * unrolled. Each element is summed over k in order from 0, then alpha·sum + beta·C (beta 0
 * reads no C), with no fused multiply-add: the same arithmetic whichever dimension is the
 * loop, so a team thread or a rank gets one worker's bits for the same rows. Past the total,
 * OpenBLAS's kernels win (a 4-16-3 MLP at batch 16 and 32 ran up to 1.4x slower with 1024
 * and 2048), so the batch is compared at run time and larger ones call BLAS. */
#define SMALL_PRODUCT_MACS  64
#define SMALL_PRODUCT_TOTAL 512

static bool product_is_small(const Value *v) {
    int64_t M, N, K;
    ir_matmul_dims(v, &M, &N, &K);
    return M * N * K <= SMALL_PRODUCT_MACS;
}

/* Element (r, c) of op(X), X row-major with leading dimension ld (transposed when t). */
static LLVMValueRef op_element(Codegen *cg, LLVMValueRef x, bool t, int64_t ld, LLVMValueRef r,
                               LLVMValueRef c) {
    LLVMValueRef row = t ? c : r, col = t ? r : c;
    return load_at(cg, x, LLVMBuildNSWAdd(cg->b, mul64(cg, row, int64_const(cg, ld)), col, ""));
}

/* sum + op(A)[i, k] · op(B)[k, j] */
static LLVMValueRef multiply_add(Codegen *cg, const Gemm *gm, LLVMValueRef sum, LLVMValueRef i,
                                 LLVMValueRef j, LLVMValueRef k) {
    LLVMValueRef a = op_element(cg, gm->a, gm->ta, gm->lda, i, k);
    return fp_add(cg, sum, fp_mul(cg, a, op_element(cg, gm->b, gm->tb, gm->ldb, k, j)));
}

/* C[i, j] = alpha·sum + beta·C[i, j], C not read where beta is 0. */
static void store_product(Codegen *cg, const Gemm *gm, LLVMValueRef i, LLVMValueRef j,
                          LLVMValueRef sum) {
    LLVMValueRef at = LLVMBuildNSWAdd(cg->b, mul64(cg, i, int64_const(cg, gm->ldc)), j, "");
    LLVMValueRef value = fp_mul(cg, gm->alpha, sum);
    bool no_c =
        LLVMIsAConstantFP(gm->beta) && LLVMConstRealGetDouble(gm->beta, &(LLVMBool){0}) == 0;
    if (!no_c) {
        LLVMValueRef with_c = fp_add(cg, value, fp_mul(cg, gm->beta, load_at(cg, gm->c, at)));
        value = select_if(cg, LLVMRealOEQ, gm->beta, elem_const(cg, 0), value, with_c);
    }
    store_at(cg, gm->c, at, value);
}

/* The loops of a small product whose dimensions M, N, K (per sample) grow with the batch
 * along `along` ('m': A's rows, 'k': the sum, as in Xᵀ·dZ; 0: none). */
static void emit_small_loops(Codegen *cg, const Gemm *gm, int64_t M, int64_t N, int64_t K,
                             char along) {
    Loop l;
    if (along == 'k') { /* the M·N sums side by side, one pass over k */
        LLVMValueRef sums[SMALL_PRODUCT_MACS];
        for (int64_t e = 0; e < M * N; e++) {
            sums[e] = entry_alloca(cg);
            LLVMBuildStore(cg->b, elem_const(cg, 0), sums[e]);
        }
        LLVMValueRef k = loop_begin(cg, &l, gm->k);
        for (int64_t e = 0; e < M * N; e++) {
            LLVMValueRef sum = LLVMBuildLoad2(cg->b, cg->elem, sums[e], "");
            LLVMBuildStore(
                cg->b, multiply_add(cg, gm, sum, int64_const(cg, e / N), int64_const(cg, e % N), k),
                sums[e]);
        }
        loop_end(cg, &l, false);
        for (int64_t e = 0; e < M * N; e++)
            store_product(cg, gm, int64_const(cg, e / N), int64_const(cg, e % N),
                          LLVMBuildLoad2(cg->b, cg->elem, sums[e], ""));
        return;
    }
    LLVMValueRef i = loop_begin(cg, &l, along == 'm' ? gm->m : int64_const(cg, M));
    for (int64_t j = 0; j < N; j++) {
        LLVMValueRef sum = elem_const(cg, 0);
        for (int64_t k = 0; k < K; k++)
            sum = multiply_add(cg, gm, sum, i, int64_const(cg, j), int64_const(cg, k));
        store_product(cg, gm, i, int64_const(cg, j), sum);
    }
    loop_end(cg, &l, false);
}

/* The product gm: loops when it is small (product_is_small) and its multiply-adds over the
 * batch at most SMALL_PRODUCT_TOTAL, else a GEMM. */
static void small_or_gemm(Codegen *cg, const Value *v, const Gemm *gm, char along) {
    if (cg->team_split || !product_is_small(v)) {
        call_gemm(cg, gm);
        return;
    }
    int64_t M, N, K;
    ir_matmul_dims(v, &M, &N, &K);
    if (!along) {
        emit_small_loops(cg, gm, M, N, K, along);
        return;
    }
    LLVMValueRef fn = current_function(cg);
    LLVMBasicBlockRef loops = LLVMAppendBasicBlockInContext(cg->ctx, fn, "small_product");
    LLVMBasicBlockRef gemm = LLVMAppendBasicBlockInContext(cg->ctx, fn, "gemm");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(cg->ctx, fn, "product_done");
    int64_t most = SMALL_PRODUCT_TOTAL / (M * N * K > 0 ? M * N * K : 1);
    LLVMValueRef few = LLVMBuildICmp(cg->b, LLVMIntSLE, cg->batch, int64_const(cg, most), "");
    LLVMBuildCondBr(cg->b, few, loops, gemm);
    LLVMPositionBuilderAtEnd(cg->b, loops);
    emit_small_loops(cg, gm, M, N, K, along);
    LLVMBuildBr(cg->b, done);
    LLVMPositionBuilderAtEnd(cg->b, gemm);
    cg->in_branch = true; /* a later product cannot count on this one's list */
    call_gemm(cg, gm);
    cg->in_branch = false;
    LLVMBuildBr(cg->b, done);
    LLVMPositionBuilderAtEnd(cg->b, done);
}

/* c = alpha * v + beta * c for the matmul v, in as few GEMMs as the batch layout allows
 * (docs/codegen.md, "BLAS mapping"). */
/* The matmul v as one sample's product, c = alpha * v + beta * c: its operands, their
 * strides and its M, N, K as they are stored. */
static Gemm sample_gemm(Codegen *cg, const Value *v, LLVMValueRef c, LLVMValueRef alpha,
                        LLVMValueRef beta) {
    const Value *a = v->args[0], *b = v->args[1];
    int64_t M, N, K, a_rows, a_cols, b_rows, b_cols;
    ir_matmul_dims(v, &M, &N, &K);
    stored_matrix(a, &a_rows, &a_cols);
    stored_matrix(b, &b_rows, &b_cols);
    return (Gemm){v->ta,
                  v->tb,
                  zeros_of_data(a) && nnrt_sgemm_tn_shape_fits(M, N),
                  product_is_one_gemm(v) ? a : NULL,
                  int64_const(cg, M),
                  int64_const(cg, N),
                  int64_const(cg, K),
                  address_of(cg, a),
                  address_of(cg, b),
                  c,
                  a_cols,
                  b_cols,
                  N,
                  alpha,
                  beta};
}

static void emit_product(Codegen *cg, const Value *v, LLVMValueRef c, LLVMValueRef alpha,
                         LLVMValueRef beta) {
    const Value *a = v->args[0], *b = v->args[1];
    Gemm gm = sample_gemm(cg, v, c, alpha, beta);
    if (!a->varying && !b->varying) {
        small_or_gemm(cg, v, &gm, 0);
    } else if (a->varying && !b->varying && !v->ta && !v->sum_batch) {
        /* The samples' rows of A are consecutive: one [B*M, K] x [K, N] product. */
        gm.m = mul64(cg, gm.m, cg->batch);
        small_or_gemm(cg, v, &gm, 'm');
    } else if (a->varying && b->varying && v->ta && !v->tb && v->sum_batch) {
        /* sum_b A_b^T B_b = [B*K, M]^T [B*K, N]: the weight gradient X^T dY. */
        gm.k = mul64(cg, gm.k, cg->batch);
        small_or_gemm(cg, v, &gm, 'k');
    } else {
        product_per_sample(cg, v, &gm);
    }
}

/* ---- a forward product's bias and relu, stored by its tiles ----
 * A layer's X·W is read by one fused loop, the next step, computing t = X·W + b and relu(t):
 * the loop reads the product back from memory to store two values of the same size. When
 * that loop computes nothing else and nothing else reads X·W, nnrt_sgemm_nn_bias_relu stores
 * t and relu(t) from the product's tiles while the sums are in registers (the same bits:
 * runtime/in_place_gemm.h), X·W itself is never stored and the loop is not emitted. W1's
 * step: 0.6 µs of the 2.3 its passes beside the products took (bench/README.md). In the
 * team's entries a product cut into blocks calls nnrt_team_sgemm_bias_relu, whose blocks
 * each store theirs, so the loop does not run in a solo phase. Not in f64. */
typedef struct BiasRelu {
    const Value *bias, *t, *h; /* t = X·W + bias, h = relu(t) or NULL */
} BiasRelu;

/* Whether m is X·W + bias, the bias a vector over the product's N columns. */
static bool adds_bias(const Value *m, const Value *product, const Value **bias) {
    if (m->op != OP_add || m->nargs != 2) return false;
    const Value *b = m->args[0] == product ? m->args[1] : m->args[0];
    int64_t N = product->shape.dim[product->shape.rank - 1];
    if ((m->args[0] != product && m->args[1] != product) || b == product) return false;
    if (b->varying || b->shape.rank != 1 || b->shape.dim[0] != N || !has_memory(b)) return false;
    *bias = b;
    return true;
}

/* Whether step is such a product, in the entry point being emitted, and the loop after it
 * the one it folds in: then it is emitted by emit_bias_relu_product and the loop not at all. */
static bool bias_relu_after(const Codegen *cg, int step, BiasRelu *br) {
    const Step *st = &cg->plan->steps[step];
    const Value *v = st->insts[0];
    if (cg->f64 || st->kind != STEP_MATMUL || st->pack >= 0 || !step_needed(cg, st) ||
        step + 1 >= cg->plan->n_steps)
        return false;
    if (v->ta || v->tb || v->sum_batch || !v->args[0]->varying || v->args[1]->varying ||
        product_is_small(v) || v->uses != 1 || v == graph_output(cg->g) || v == cg->g->loss ||
        plan_value(cg->plan, v)->predict_home.arena != ARENA_NONE)
        return false;
    const Step *next = &cg->plan->steps[step + 1];
    if (next->kind != STEP_EW_LOOP || !step_needed(cg, next)) return false;
    *br = (BiasRelu){0};
    for (int i = 0; i < next->n_insts; i++) {
        const Value *m = next->insts[i];
        if (!cg->needed[m->id]) continue;
        if (!br->t && adds_bias(m, v, &br->bias))
            br->t = m;
        else if (br->t && !br->h && m->op == OP_relu && m->args[0] == br->t)
            br->h = m;
        else
            return false;
    }
    bool t_stored = member_stored(cg, br->t), h_stored = br->h && member_stored(cg, br->h);
    /* the team's blocks store one of the two (nnrt_team_sgemm_bias_relu) */
    if (cg->team && t_stored && h_stored) return false;
    return t_stored || h_stored;
}

/* The product over the batch's rows, as emit_product's one GEMM of them (C unused); in a
 * team's split step, its blocks (nnrt_team_sgemm_bias_relu, with the team member first and
 * the sizes as int, as nnrt_team_sgemm has them). */
static void emit_bias_relu_product(Codegen *cg, const Value *v, const BiasRelu *br) {
    Gemm gm = sample_gemm(cg, v, NULL, elem_const(cg, 1), elem_const(cg, 0));
    bool team = cg->team_split;
    LLVMTypeRef p = cg->elem_ptr, n = team ? cg->i32 : cg->i64;
    LLVMTypeRef params[12] = {cg->i8_ptr, n, n, n, p, n, p, n, p, p, p, n};
    LLVMValueRef none = LLVMConstPointerNull(p);
    LLVMValueRef size[6] = {
        mul64(cg, gm.m, cg->batch), gm.n, gm.k, int64_const(cg, gm.lda), int64_const(cg, gm.ldb),
        int64_const(cg, gm.ldc)};
    for (int i = 0; team && i < 6; i++) size[i] = LLVMBuildTrunc(cg->b, size[i], cg->i32, "");
    LLVMValueRef args[12] = {cg->team,
                             size[0],
                             size[1],
                             size[2],
                             gm.a,
                             size[3],
                             gm.b,
                             size[4],
                             address_of(cg, br->bias),
                             member_stored(cg, br->t) ? address_of(cg, br->t) : none,
                             br->h && member_stored(cg, br->h) ? address_of(cg, br->h) : none,
                             size[5]};
    int skip = team ? 0 : 1; /* one thread's call has no member */
    const char *name = team ? "nnrt_team_sgemm_bias_relu" : "nnrt_sgemm_nn_bias_relu";
    LLVMValueRef fn = declare_function(cg, name, cg->void_type, params + skip, 12 - skip);
    build_call(cg, fn, args + skip, 12 - skip);
    /* listed as by sgemm_nn, for this thread's Xᵀ·dZ (the team's threads keep their own) */
    if (!cg->team && !cg->in_branch) cg->listed_in_entry[v->args[0]->id] = true;
}

/* Whether the step before computes step too: a product storing its bias and relu
 * (bias_relu_after), or a loss computing its gradient (loss_and_grad_pair). */
static bool folded_into_previous(const Codegen *cg, int step) {
    BiasRelu br;
    return step > 0 && (bias_relu_after(cg, step - 1, &br) || loss_and_grad_pair(cg, step - 1));
}

/* c = alpha * v + beta * c for a product whose B the plan packs (Step.pack; docs/codegen.md,
 * "Products with a packed weight"): the first such product of the entry point packs B, every
 * one reads the packed form. f32 only: an f64 plan packs nothing (backend_compile). */
static void emit_packed_product(Codegen *cg, const Step *st, LLVMValueRef c, LLVMValueRef alpha,
                                LLVMValueRef beta) {
    const Value *v = st->insts[0], *a = v->args[0], *b = v->args[1];
    const PackedOperand *po = &cg->plan->packs[st->pack];
    int64_t M, N, K, a_rows, a_cols, b_rows, b_cols;
    ir_matmul_dims(v, &M, &N, &K);
    stored_matrix(a, &a_rows, &a_cols);
    stored_matrix(b, &b_rows, &b_cols);
    LLVMValueRef packed = fixed_address(cg, po->offset);
    LLVMValueRef tb = LLVMConstInt(cg->i32, v->tb ? 1 : 0, false);
    if (!cg->packed_ready[st->pack]) {
        LLVMTypeRef params[6] = {cg->i64, cg->i64, cg->elem_ptr, cg->i64, cg->i32, cg->elem_ptr};
        LLVMValueRef fn = declare_function(cg, "nnrt_sgemm_pack", cg->void_type, params, 6);
        LLVMValueRef args[6] = {int64_const(cg, K),
                                int64_const(cg, N),
                                address_of(cg, b),
                                int64_const(cg, b_cols),
                                tb,
                                packed};
        build_call(cg, fn, args, 6);
        cg->packed_ready[st->pack] = true;
    }
    LLVMTypeRef params[13] = {cg->i64,  cg->i64,      cg->i64, cg->elem, cg->elem_ptr,
                              cg->i64,  cg->elem_ptr, cg->i64, cg->i32,  cg->elem_ptr,
                              cg->elem, cg->elem_ptr, cg->i64};
    LLVMValueRef fn = declare_function(cg, "nnrt_sgemm_packed", cg->void_type, params, 13);
    LLVMValueRef args[13] = {mul64(cg, int64_const(cg, M), cg->batch),
                             int64_const(cg, N),
                             int64_const(cg, K),
                             alpha,
                             address_of(cg, a),
                             int64_const(cg, a_cols),
                             address_of(cg, b),
                             int64_const(cg, b_cols),
                             tb,
                             packed,
                             beta,
                             c,
                             int64_const(cg, N)};
    build_call(cg, fn, args, 13);
}

/* 0, or 1 for a term that adds to the sum it accumulates into (plan.h, sum_into). */
static LLVMValueRef product_beta(Codegen *cg, const Value *v) {
    return elem_const(cg, plan_value(cg->plan, v)->accumulate ? 1 : 0);
}

/* ---- the team's step (sgd_step_team) ---- */

/* A call of void nnrt_team_NAME(member) (runtime/workers.h). */
static LLVMValueRef team_call(Codegen *cg, const char *name, LLVMTypeRef ret) {
    LLVMValueRef fn = declare_function(cg, xprintf("nnrt_team_%s", name), ret, &cg->i8_ptr, 1);
    return build_call(cg, fn, &cg->team, 1);
}

/* What follows, up to end_solo(the block returned), runs in one thread of the team, once
 * every thread's part of what came before is done: in whichever thread claims it first. */
static LLVMBasicBlockRef begin_solo(Codegen *cg) {
    LLVMValueRef mine = team_call(cg, "solo", cg->i32);
    LLVMValueRef yes = LLVMBuildICmp(cg->b, LLVMIntNE, mine, LLVMConstInt(cg->i32, 0, false), "");
    LLVMValueRef here = current_function(cg);
    LLVMBasicBlockRef solo = LLVMAppendBasicBlockInContext(cg->ctx, here, "solo");
    LLVMBasicBlockRef after = LLVMAppendBasicBlockInContext(cg->ctx, here, "team");
    LLVMBuildCondBr(cg->b, yes, solo, after);
    LLVMPositionBuilderAtEnd(cg->b, solo);
    return after;
}

static void end_solo(Codegen *cg, LLVMBasicBlockRef after) {
    team_call(cg, "done", cg->void_type);
    LLVMBuildBr(cg->b, after);
    LLVMPositionBuilderAtEnd(cg->b, after);
}

/* ---- the optimizer ---- */

/* p[i] -= lr * v[i] for i < n: after a GEMM has updated the velocity v. */
static LLVMValueRef sgd_apply_function(Codegen *cg) {
    if (cg->sgd_apply_fn) return cg->sgd_apply_fn;
    LLVMBasicBlockRef here = LLVMGetInsertBlock(cg->b);
    LLVMTypeRef params[4] = {cg->elem_ptr, cg->elem_ptr, cg->i64, cg->elem};
    LLVMValueRef fn = new_helper_function(cg, "nnc.sgd.apply", params, 4);
    LLVMValueRef p = LLVMGetParam(fn, 0), v = LLVMGetParam(fn, 1), lr = LLVMGetParam(fn, 3);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, LLVMGetParam(fn, 2));
    store_at(cg, p, i, fp_sub(cg, load_at(cg, p, i), fp_mul(cg, lr, load_at(cg, v, i))));
    loop_end(cg, &l, false);
    LLVMBuildRetVoid(cg->b);
    LLVMPositionBuilderAtEnd(cg->b, here);
    return cg->sgd_apply_fn = fn;
}

/* (p, g, v, n, lr, mu): with mu == 0, p -= lr*g and v is not read (nnrt.h); otherwise
 * v = mu*v + g; p -= lr*v. */
static LLVMValueRef sgd_update_function(Codegen *cg) {
    if (cg->sgd_update_fn) return cg->sgd_update_fn;
    LLVMBasicBlockRef here = LLVMGetInsertBlock(cg->b);
    LLVMTypeRef params[6] = {cg->elem_ptr, cg->elem_ptr, cg->elem_ptr, cg->i64, cg->elem, cg->elem};
    LLVMValueRef fn = new_helper_function(cg, "nnc.sgd.update", params, 6);
    LLVMValueRef p = LLVMGetParam(fn, 0), g = LLVMGetParam(fn, 1), v = LLVMGetParam(fn, 2);
    LLVMValueRef n = LLVMGetParam(fn, 3), lr = LLVMGetParam(fn, 4), mu = LLVMGetParam(fn, 5);
    LLVMBasicBlockRef plain = LLVMAppendBasicBlockInContext(cg->ctx, fn, "plain");
    LLVMBasicBlockRef momentum = LLVMAppendBasicBlockInContext(cg->ctx, fn, "momentum");
    LLVMValueRef no_momentum = LLVMBuildFCmp(cg->b, LLVMRealOEQ, mu, elem_const(cg, 0), "");
    LLVMBuildCondBr(cg->b, no_momentum, plain, momentum);
    Loop l;
    LLVMPositionBuilderAtEnd(cg->b, plain);
    LLVMValueRef i = loop_begin(cg, &l, n);
    store_at(cg, p, i, fp_sub(cg, load_at(cg, p, i), fp_mul(cg, lr, load_at(cg, g, i))));
    loop_end(cg, &l, false);
    LLVMBuildRetVoid(cg->b);
    LLVMPositionBuilderAtEnd(cg->b, momentum);
    i = loop_begin(cg, &l, n);
    LLVMValueRef vel = fp_add(cg, fp_mul(cg, mu, load_at(cg, v, i)), load_at(cg, g, i));
    store_at(cg, v, i, vel);
    store_at(cg, p, i, fp_sub(cg, load_at(cg, p, i), fp_mul(cg, lr, vel)));
    loop_end(cg, &l, false);
    LLVMBuildRetVoid(cg->b);
    LLVMPositionBuilderAtEnd(cg->b, here);
    return cg->sgd_update_fn = fn;
}

/* c = alpha * the step's weight gradient + beta * c: a matmul, or conv2d_weight_grad's GEMM. */
static void emit_gradient_product(Codegen *cg, const Step *st, LLVMValueRef c, LLVMValueRef alpha,
                                  LLVMValueRef beta) {
    if (st->kind == STEP_WINDOW)
        emit_window(cg, st, c, alpha, beta);
    else
        emit_product(cg, st->insts[0], c, alpha, beta);
}

/* The GEMM that computes a parameter's whole gradient updates the parameter itself:
 * momentum 0: p = -lr * dW + 1 * p; otherwise v = 1 * dW + mu * v, then p -= lr * v. */
static void emit_fused_update(Codegen *cg, const Step *st) {
    const ParamPlan *pp = &cg->plan->params[st->update_param];
    LLVMValueRef param = address_of(cg, pp->param);
    LLVMValueRef velocity = fixed_address(cg, pp->velocity_offset);
    LLVMValueRef fn = current_function(cg);
    LLVMBasicBlockRef plain = LLVMAppendBasicBlockInContext(cg->ctx, fn, "sgd");
    LLVMBasicBlockRef momentum = LLVMAppendBasicBlockInContext(cg->ctx, fn, "momentum");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(cg->ctx, fn, "updated");
    LLVMValueRef no_momentum =
        LLVMBuildFCmp(cg->b, LLVMRealOEQ, cg->momentum, elem_const(cg, 0), "");
    LLVMBuildCondBr(cg->b, no_momentum, plain, momentum);
    LLVMPositionBuilderAtEnd(cg->b, plain);
    emit_gradient_product(cg, st, param, LLVMBuildFNeg(cg->b, cg->lr, ""), elem_const(cg, 1));
    LLVMBuildBr(cg->b, done);
    LLVMPositionBuilderAtEnd(cg->b, momentum);
    emit_gradient_product(cg, st, velocity, elem_const(cg, 1), cg->momentum);
    LLVMValueRef args[4] = {param, velocity, int64_const(cg, shape_numel(pp->param->shape)),
                            cg->lr};
    if (cg->team_split) { /* once the whole velocity is there, in one thread */
        LLVMBasicBlockRef after = begin_solo(cg);
        build_call(cg, sgd_apply_function(cg), args, 4);
        end_solo(cg, after);
    } else {
        build_call(cg, sgd_apply_function(cg), args, 4);
    }
    LLVMBuildBr(cg->b, done);
    LLVMPositionBuilderAtEnd(cg->b, done);
}

/* Parameters not updated inside a GEMM, once every gradient is in its grad buffer. */
static void update_other_params(Codegen *cg) {
    for (int i = 0; i < cg->g->params.n; i++) {
        const ParamPlan *pp = &cg->plan->params[i];
        if (!pp->grad || pp->fused_update) continue;
        LLVMValueRef args[6] = {address_of(cg, pp->param),
                                fixed_address(cg, pp->grad_offset),
                                fixed_address(cg, pp->velocity_offset),
                                int64_const(cg, shape_numel(pp->param->shape)),
                                cg->lr,
                                cg->momentum};
        build_call(cg, sgd_update_function(cg), args, 6);
    }
}

/* ---- state updates ---- */

/* state = its update, once the pass is over: every instruction that read the old state
 * has run. A constant update is stored into each element; anything else is copied. */
static void write_state(Codegen *cg, const Value *state, const Value *update) {
    LLVMValueRef to = address_of(cg, state);
    int64_t n = shape_numel(state->shape);
    if (update == state) return;
    if (!has_memory(update)) {
        Loop l;
        LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, n));
        store_at(cg, to, i, scalar_leaf(cg, update));
        loop_end(cg, &l, false);
        return;
    }
    LLVMBuildMemCpy(cg->b, to, elem_bytes(cg), address_of(cg, update), elem_bytes(cg),
                    int64_const(cg, n * elem_bytes(cg)));
}

/* In a training step (nnrt_ctx.training has NNRT_WRITES_STATE), every state takes its
 * update; gradcheck's passes and every other call leave the state as it was. */
static void write_state_updates(Codegen *cg) {
    const Graph *g = cg->g;
    bool any = false;
    for (int i = 0; i < g->state_updates.n; i++) any |= g->state_updates.v[i] != NULL;
    if (!any) return;
    LLVMValueRef fn = current_function(cg);
    LLVMBasicBlockRef write = LLVMAppendBasicBlockInContext(cg->ctx, fn, "write_state");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(cg->ctx, fn, "state_written");
    LLVMValueRef bit =
        LLVMBuildAnd(cg->b, cg->training, LLVMConstInt(cg->i32, NNRT_WRITES_STATE, false), "");
    LLVMValueRef step = LLVMBuildICmp(cg->b, LLVMIntNE, bit, LLVMConstInt(cg->i32, 0, false), "");
    LLVMBuildCondBr(cg->b, step, write, done);
    LLVMPositionBuilderAtEnd(cg->b, write);
    for (int i = 0; i < g->state_updates.n; i++)
        if (g->state_updates.v[i]) write_state(cg, g->states.v[i], g->state_updates.v[i]);
    LLVMBuildBr(cg->b, done);
    LLVMPositionBuilderAtEnd(cg->b, done);
}

/* ---- entry points ---- */

/* predict computes the bindings it can print too (plan.c, "the bindings predict prints"). */
static void mark_bindings_needed(Codegen *cg) {
    for (int i = 0; i < cg->g->bindings.n; i++)
        if (cg->plan->binding_homes[i].arena != ARENA_NONE)
            plan_mark_needed(cg->g->bindings.v[i].v, cg->needed);
}

/* A binding that is a constant gets its value where predict keeps it. */
static void store_constant_bindings(Codegen *cg) {
    for (int i = 0; i < cg->g->bindings.n; i++) {
        const Value *v = cg->g->bindings.v[i].v;
        if (!has_memory(v) && cg->plan->binding_homes[i].arena != ARENA_NONE)
            store_at(cg, address_of(cg, v), int64_const(cg, 0), scalar_leaf(cg, v));
    }
}

static void mark_entry_needs(Codegen *cg, Entry e) {
    memset(cg->needed, 0, (size_t)cg->g->next_id * sizeof *cg->needed);
    plan_mark_needed(graph_output(cg->g), cg->needed);
    if (e == ENTRY_PREDICT) mark_bindings_needed(cg);
    if (e != ENTRY_PREDICT) plan_mark_needed(cg->g->loss, cg->needed);
    if (e == ENTRY_GRAD || e == ENTRY_SGD_STEP) {
        for (int i = 0; i < cg->g->params.n; i++)
            plan_mark_needed(cg->plan->params[i].grad, cg->needed);
        for (int i = 0; i < cg->g->state_updates.n; i++)
            plan_mark_needed(cg->g->state_updates.v[i], cg->needed);
    }
}

bool step_needed(const Codegen *cg, const Step *st) {
    for (int i = 0; i < st->n_insts; i++)
        if (cg->needed[st->insts[i]->id]) return true;
    return false;
}

static void emit_step(Codegen *cg, int step) {
    const Step *st = &cg->plan->steps[step];
    BiasRelu br;
    if (!step_needed(cg, st) || folded_into_previous(cg, step)) return;
    if (bias_relu_after(cg, step, &br)) {
        emit_bias_relu_product(cg, st->insts[0], &br);
        return;
    }
    switch (st->kind) {
    case STEP_EW_LOOP: emit_loop_step(cg, step); break;
    case STEP_ROW:
        if (loss_and_grad_pair(cg, step))
            emit_loss_and_grad_step(cg, step);
        else
            emit_op_step(cg, step);
        break;
    case STEP_REDUCE:
    case STEP_LAYOUT: emit_op_step(cg, step); break;
    case STEP_MATMUL:
    case STEP_WINDOW:
        if (cg->entry == ENTRY_SGD_STEP && st->update_param >= 0)
            emit_fused_update(cg, st);
        else if (st->kind == STEP_WINDOW)
            emit_window_step(cg, step);
        else if (st->pack >= 0)
            emit_packed_product(cg, st, address_of(cg, st->insts[0]), elem_const(cg, 1),
                                product_beta(cg, st->insts[0]));
        else
            emit_product(cg, st->insts[0], address_of(cg, st->insts[0]), elem_const(cg, 1),
                         product_beta(cg, st->insts[0]));
        break;
    }
}

/* A loss or output that is a constant still needs its value where the caller reads it. */
static void store_constant_root(Codegen *cg, const Value *root) {
    if (!has_memory(root))
        store_at(cg, address_of(cg, root), int64_const(cg, 0), scalar_leaf(cg, root));
}

/* A gradient not computed in place (a parameter, a constant, a value shared by two
 * parameters) is copied to its grad buffer. */
static void copy_gradient(Codegen *cg, const ParamPlan *pp) {
    LLVMValueRef to = fixed_address(cg, pp->grad_offset);
    if (!has_memory(pp->grad)) {
        store_at(cg, to, int64_const(cg, 0), scalar_leaf(cg, pp->grad));
        return;
    }
    int64_t bytes = shape_numel(pp->grad->shape) * elem_bytes(cg);
    LLVMBuildMemCpy(cg->b, to, elem_bytes(cg), address_of(cg, pp->grad), elem_bytes(cg),
                    int64_const(cg, bytes));
}

/* The copies left for the end: all of them, but in grad, those its hook points made. */
static void copy_gradients(Codegen *cg) {
    for (int i = 0; i < cg->g->params.n; i++) {
        const ParamPlan *pp = &cg->plan->params[i];
        if (!pp->grad || pp->grad_in_place) continue;
        if (cg->entry == ENTRY_SGD_STEP && pp->fused_update) continue;
        if (cg->on_grads && pp->grad_point > 0) continue;
        copy_gradient(cg, pp);
    }
}

/* ---- grad()'s hook points ----
 *
 * After a step that finishes one or more gradients (plan.c, ParamPlan.grad_point), grad
 * copies those not computed in place to their buffers and, when nnrt_ctx.on_grads is set,
 * calls nnrt_grads_done(on_grads, point) (runtime/nnrt.h): a sum over MPI ranks can start
 * moving them while the rest of the backward pass runs (docs/mpi.md). Without a listener
 * it costs a load and a branch a point. */
static void tell_grads_done(Codegen *cg, int point) {
    LLVMValueRef here = current_function(cg);
    LLVMBasicBlockRef tell = LLVMAppendBasicBlockInContext(cg->ctx, here, "tell");
    LLVMBasicBlockRef after = LLVMAppendBasicBlockInContext(cg->ctx, here, "told");
    LLVMBuildCondBr(cg->b, LLVMBuildIsNotNull(cg->b, cg->on_grads, ""), tell, after);
    LLVMPositionBuilderAtEnd(cg->b, tell);
    LLVMTypeRef types[2] = {cg->i8_ptr, cg->i32};
    LLVMValueRef fn = declare_function(cg, "nnrt_grads_done", cg->void_type, types, 2);
    LLVMValueRef args[2] = {cg->on_grads, LLVMConstInt(cg->i32, (unsigned long long)point, false)};
    build_call(cg, fn, args, 2);
    LLVMBuildBr(cg->b, after);
    LLVMPositionBuilderAtEnd(cg->b, after);
}

static void after_grad_step(Codegen *cg, int s) {
    int point = cg->plan->steps[s].grad_point;
    if (!cg->on_grads || point == 0) return;
    const Plan *plan = cg->plan;
    for (int k = plan->point_first[point]; k < plan->point_first[point + 1]; k++) {
        const ParamPlan *pp = &plan->params[plan->point_params[k]];
        if (!pp->grad_in_place) copy_gradient(cg, pp);
    }
    tell_grads_done(cg, point);
}

static LLVMValueRef load_ctx_field(Codegen *cg, LLVMValueRef ctx, unsigned field, LLVMTypeRef t) {
    LLVMValueRef at = LLVMBuildStructGEP2(cg->b, cg->ctx_type, ctx, field, "");
    return LLVMBuildLoad2(cg->b, t, at, "");
}

static LLVMValueRef to_elem(Codegen *cg, LLVMValueRef d) {
    return cg->f64 ? d : LLVMBuildFPTrunc(cg->b, d, cg->elem, "");
}

/* A function of the entry's type: internal, nounwind, its builder at its entry block, and
 * the context's fields loaded into cg (each function reads them from its own parameters). */
static LLVMValueRef begin_function(Codegen *cg, const char *name, Entry e) {
    LLVMTypeRef type = e == ENTRY_SGD_STEP ? cg->sgd_entry_type : cg->entry_type;
    LLVMValueRef fn = LLVMAddFunction(cg->mod, name, type);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    add_attribute(cg, fn, (unsigned)LLVMAttributeFunctionIndex, "nounwind");
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, fn, "entry"));
    LLVMValueRef ctx = LLVMGetParam(fn, 0);
    cg->fixed = load_ctx_field(cg, ctx, CTX_fixed, cg->elem_ptr);
    cg->varying = load_ctx_field(cg, ctx, CTX_varying, cg->elem_ptr);
    cg->batch = load_ctx_field(cg, ctx, CTX_batch, cg->i64);
    cg->batch_cap = load_ctx_field(cg, ctx, CTX_batch_cap, cg->i64);
    cg->training = load_ctx_field(cg, ctx, CTX_training, cg->i32);
    cg->noise_seed = load_ctx_field(cg, ctx, CTX_noise_seed, cg->i64);
    cg->first_row = load_ctx_field(cg, ctx, CTX_first_row, cg->i64);
    cg->dropout_keep = load_ctx_field(cg, ctx, CTX_dropout_keep, cg->f64_type);
    LLVMValueRef params = load_ctx_field(cg, ctx, CTX_params, cg->elem_ptr);
    LLVMValueRef shared = LLVMBuildIsNotNull(cg->b, params, "");
    cg->params = LLVMBuildSelect(cg->b, shared, params, cg->fixed, "params");
    cg->inv_batch = fp_div(cg, elem_const(cg, 1), LLVMBuildSIToFP(cg->b, cg->batch, cg->elem, ""));
    cg->on_grads = e == ENTRY_GRAD ? load_ctx_field(cg, ctx, CTX_on_grads, cg->i8_ptr) : NULL;
    cg->lr = e == ENTRY_SGD_STEP ? to_elem(cg, LLVMGetParam(fn, 1)) : NULL;
    cg->momentum = e == ENTRY_SGD_STEP ? to_elem(cg, LLVMGetParam(fn, 2)) : NULL;
    return fn;
}

/* The plan's steps a function holds at most. LLVM's optimiser takes time superlinear in a
 * function's size (its dominator trees), and an unrolled scan plans thousands of steps:
 * beyond this, the steps go into functions of this many each (never inlined back), which
 * the entry calls in turn, so compile time grows linearly with a scan's length. */
#define STEPS_PER_FUNCTION 256

/* Steps [from, to) in a function of their own, called from the entry fn. */
static void emit_steps_apart(Codegen *cg, LLVMValueRef entry, Entry e, int from, int to) {
    LLVMBasicBlockRef at = LLVMGetInsertBlock(cg->b);
    LLVMValueRef part = begin_function(
        cg, xprintf("%s.%s.steps%d", cg->prefix, entry_names[e], from / STEPS_PER_FUNCTION), e);
    add_attribute(cg, part, (unsigned)LLVMAttributeFunctionIndex, "noinline");
    for (int s = from; s < to; s++) {
        emit_step(cg, s);
        after_grad_step(cg, s);
    }
    LLVMBuildRetVoid(cg->b);
    LLVMPositionBuilderAtEnd(cg->b, at);
    LLVMValueRef args[3];
    unsigned n = LLVMCountParams(entry);
    for (unsigned i = 0; i < n; i++) args[i] = LLVMGetParam(entry, i);
    build_call(cg, part, args, n);
}

static LLVMValueRef emit_entry(Codegen *cg, Entry e) {
    LLVMValueRef fn = begin_function(cg, xprintf("%s.%s", cg->prefix, entry_names[e]), e);
    cg->entry = e;
    mark_entry_needs(cg, e);
    memset(cg->packed_ready, 0, (size_t)cg->plan->n_packs * sizeof *cg->packed_ready);
    memset(cg->listed_in_entry, 0, (size_t)cg->g->next_id * sizeof *cg->listed_in_entry);
    int n_steps = cg->plan->n_steps;
    if (n_steps <= STEPS_PER_FUNCTION) {
        for (int s = 0; s < n_steps; s++) {
            emit_step(cg, s);
            after_grad_step(cg, s);
        }
    } else {
        Codegen at_entry = *cg; /* the entry's loads of the context, for what follows */
        for (int s = 0; s < n_steps; s += STEPS_PER_FUNCTION)
            emit_steps_apart(cg, fn, e, s,
                             s + STEPS_PER_FUNCTION < n_steps ? s + STEPS_PER_FUNCTION : n_steps);
        cg->fixed = at_entry.fixed;
        cg->varying = at_entry.varying;
        cg->batch = at_entry.batch;
        cg->batch_cap = at_entry.batch_cap;
        cg->training = at_entry.training;
        cg->noise_seed = at_entry.noise_seed;
        cg->first_row = at_entry.first_row;
        cg->dropout_keep = at_entry.dropout_keep;
        cg->params = at_entry.params;
        cg->inv_batch = at_entry.inv_batch;
        cg->on_grads = at_entry.on_grads;
        cg->lr = at_entry.lr;
        cg->momentum = at_entry.momentum;
    }
    store_constant_root(cg, graph_output(cg->g));
    if (e == ENTRY_PREDICT) store_constant_bindings(cg);
    if (e != ENTRY_PREDICT) store_constant_root(cg, cg->g->loss);
    if (e == ENTRY_GRAD || e == ENTRY_SGD_STEP) copy_gradients(cg);
    if (e == ENTRY_SGD_STEP) update_other_params(cg);
    if (e == ENTRY_GRAD || e == ENTRY_SGD_STEP) write_state_updates(cg);
    LLVMBuildRetVoid(cg->b);
    return fn;
}

/* ---- the team's entry points ----
 *
 * sgd_step_team is sgd_step run by every thread of a team at once, over the same arenas
 * (grad_team likewise grad: each GEMM's block writes its block of the gradient)
 * (docs/codegen.md, "The team's step"). It is a sequence of phases: a matmul that is one
 * GEMM over the batch is a phase of its own, split into blocks of the product (in sgd each
 * block's GEMM updates its block of the param), unless it is small (worth_splitting); the
 * steps between two such matmuls are one phase, run by one thread. A phase starts once the
 * one before is done (runtime/workers.c), so no thread reads what another is still writing,
 * nor writes memory another is still reading. Each element is computed by the same
 * arithmetic as in sgd_step, up to the rounding of OpenBLAS's sums where it sums a block
 * otherwise than the whole (docs/runtime.md, "Data-parallel workers"). */

/* Whether step st is one GEMM over the batch (which the team can cut into blocks). */
static bool step_is_one_gemm(const Step *st) {
    return st->kind == STEP_MATMUL && product_is_one_gemm(st->insts[0]);
}

/* A product of fewer multiply-adds a sample than this costs less than a phase's wait (a
 * round trip between two cores, 0.3-1 us): in a plan that also has larger ones, the team
 * runs it whole in one thread, in the solo phase around it (W1's 128 x 10 layer). All the
 * products over one param have its size a sample (X·W, dZ·Wᵀ and Xᵀ·dZ over a W of K x N:
 * K·N each), so a param's GEMMs are all split or all whole. */
#define SPLIT_MIN_MACS 2048

static bool worth_splitting(const Step *st) {
    int64_t M, N, K;
    ir_matmul_dims(st->insts[0], &M, &N, &K);
    return M * N * K >= SPLIT_MIN_MACS;
}

static bool has_large_gemm(const Plan *plan) {
    for (int s = 0; s < plan->n_steps; s++)
        if (step_is_one_gemm(&plan->steps[s]) && worth_splitting(&plan->steps[s])) return true;
    return false;
}

/* Whether the model gets a team's step: every step that holds a GEMM is one GEMM over the
 * batch, and no step is a scan's (whose many small steps would sync more than they share).
 * Otherwise the entry is NULL and the runtime splits the batch instead. */
static bool plan_splits(const Plan *plan) {
    bool any = false;
    for (int s = 0; s < plan->n_steps; s++) {
        const Step *st = &plan->steps[s];
        for (int i = 0; i < st->n_insts; i++)
            if (st->insts[i]->scan) return false;
        if (st->kind == STEP_WINDOW || (st->kind == STEP_MATMUL && !step_is_one_gemm(st)))
            return false;
        any |= step_is_one_gemm(st);
    }
    return any && plan->n_steps <= STEPS_PER_FUNCTION;
}

/* The phases of the plan's steps; the last, a solo phase, is left open (*solo: its end). A
 * product small enough to be loops of the step (product_is_small) is never split. */
static void emit_team_phases(Codegen *cg, LLVMBasicBlockRef *solo) {
    *solo = NULL;
    bool small_whole = has_large_gemm(cg->plan);
    for (int s = 0; s < cg->plan->n_steps; s++) {
        const Step *st = &cg->plan->steps[s];
        if (!step_needed(cg, st) || folded_into_previous(cg, s)) continue;
        if (step_is_one_gemm(st) && !product_is_small(st->insts[0]) &&
            (worth_splitting(st) || !small_whole)) {
            if (*solo) end_solo(cg, *solo);
            *solo = NULL;
            cg->team_split = true;
            emit_step(cg, s);
            cg->team_split = false;
        } else {
            if (!*solo) *solo = begin_solo(cg);
            emit_step(cg, s);
        }
    }
}

/* grad_team or sgd_step_team: the team's form of entry e (ENTRY_GRAD or ENTRY_SGD_STEP). */
static LLVMValueRef emit_team_entry(Codegen *cg, Entry e) {
    if (!plan_splits(cg->plan)) return NULL;
    LLVMValueRef fn = begin_function(cg, xprintf("%s.%s_team", cg->prefix, entry_names[e]), e);
    cg->entry = e;
    cg->on_grads = NULL; /* grad_team has no hook points */
    cg->team = load_ctx_field(cg, LLVMGetParam(fn, 0), CTX_team, cg->i8_ptr);
    mark_entry_needs(cg, e);
    LLVMBasicBlockRef solo;
    emit_team_phases(cg, &solo);
    if (!solo) solo = begin_solo(cg);
    /* the tail of the entry (emit_entry) */
    store_constant_root(cg, graph_output(cg->g));
    store_constant_root(cg, cg->g->loss);
    copy_gradients(cg);
    if (e == ENTRY_SGD_STEP) update_other_params(cg);
    write_state_updates(cg);
    end_solo(cg, solo);
    team_call(cg, "sync", cg->void_type); /* every phase done when the entry returns */
    LLVMBuildRetVoid(cg->b);
    cg->team = NULL;
    return fn;
}

/* ---- the module, the host target, passes and output ---- */

static void init_llvm_once(void) {
    static bool done;
    if (done) return;
    done = true;
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
#if defined(__x86_64__)
    /* Lets the loop vectoriser call glibc's vector exp/log/sin/cos/pow (libmvec, linked
     * with -lmvec). An option of the whole process: parsed once. */
    const char *const args[] = {"nnc", "-vector-library=LIBMVEC-X86"};
    LLVMParseCommandLineOptions(2, args, NULL);
#endif
}

LLVMTargetMachineRef codegen_host_target(int opt_level) {
    init_llvm_once();
    char *triple = LLVMGetDefaultTargetTriple(), *error = NULL;
    LLVMTargetRef target;
    if (LLVMGetTargetFromTriple(triple, &target, &error)) {
        diag_fatal_noloc("no LLVM target for %s: %s", triple, error);
        LLVMDisposeMessage(error);
        LLVMDisposeMessage(triple);
        return NULL;
    }
    static const LLVMCodeGenOptLevel levels[4] = {LLVMCodeGenLevelNone, LLVMCodeGenLevelLess,
                                                  LLVMCodeGenLevelDefault,
                                                  LLVMCodeGenLevelAggressive};
    char *cpu = LLVMGetHostCPUName(), *features = LLVMGetHostCPUFeatures();
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(
        target, triple, cpu, features, levels[opt_level], LLVMRelocPIC, LLVMCodeModelDefault);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    LLVMDisposeMessage(triple);
    return tm;
}

void codegen_types(Codegen *cg) {
    cg->i1 = LLVMInt1TypeInContext(cg->ctx);
    cg->i8 = LLVMInt8TypeInContext(cg->ctx);
    cg->i32 = LLVMInt32TypeInContext(cg->ctx);
    cg->i64 = LLVMInt64TypeInContext(cg->ctx);
    cg->f64_type = LLVMDoubleTypeInContext(cg->ctx);
    cg->void_type = LLVMVoidTypeInContext(cg->ctx);
    cg->elem = cg->f64 ? cg->f64_type : LLVMFloatTypeInContext(cg->ctx);
    cg->elem_ptr = compat_pointer_to(cg->ctx, cg->elem);
    cg->i8_ptr = compat_pointer_to(cg->ctx, cg->i8);
    cg->ctx_type = descriptor_ctx_type(cg);
    LLVMTypeRef ctx_ptr = compat_pointer_to(cg->ctx, cg->ctx_type);
    cg->entry_type = LLVMFunctionType(cg->void_type, &ctx_ptr, 1, false);
    LLVMTypeRef sgd_params[3] = {ctx_ptr, cg->f64_type, cg->f64_type};
    cg->sgd_entry_type = LLVMFunctionType(cg->void_type, sgd_params, 3, false);
}

static void codegen_plan_tables(Codegen *cg);

static void codegen_init(Codegen *cg, Graph *g, const Plan *plan, bool f64,
                         LLVMTargetMachineRef tm) {
    memset(cg, 0, sizeof *cg);
    cg->g = g;
    cg->plan = plan;
    cg->prefix = "nnc";
    cg->f64 = f64;
    cg->ctx = LLVMContextCreate();
    cg->mod = LLVMModuleCreateWithNameInContext(g->name ? g->name : "model", cg->ctx);
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(cg->mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(tm);
    char *layout_text = LLVMCopyStringRepOfTargetData(layout);
    LLVMSetDataLayout(cg->mod, layout_text);
    LLVMDisposeMessage(layout_text);
    LLVMDisposeTargetData(layout);
    cg->b = LLVMCreateBuilderInContext(cg->ctx);
    codegen_types(cg);
    cg->loop_md_kind = LLVMGetMDKindIDInContext(cg->ctx, "llvm.loop", 9);
    codegen_plan_tables(cg);
}

/* What the code generator keeps per step of the plan and per value of the graph. */
static void codegen_plan_tables(Codegen *cg) {
    size_t steps = (size_t)(cg->plan->n_steps ? cg->plan->n_steps : 1);
    cg->loop_variants = xalloc(steps * sizeof *cg->loop_variants);
    cg->op_fns = xalloc(steps * sizeof *cg->op_fns);
    cg->needed = xalloc((size_t)cg->g->next_id * sizeof *cg->needed);
    cg->packed_ready =
        xalloc((size_t)(cg->plan->n_packs ? cg->plan->n_packs : 1) * sizeof *cg->packed_ready);
    cg->listed_in_entry = xalloc((size_t)cg->g->next_id * sizeof *cg->listed_in_entry);
}

/* The one-step form's entry point, nnc.step.predict (docs/codegen.md, "The one-step
 * form"): predict of the step graph with its own plan, in the model's module. */
static LLVMValueRef emit_step_form(const Codegen *model, Codegen *step, Graph *g,
                                   const Plan *plan) {
    *step = *model;
    step->g = g;
    step->plan = plan;
    step->prefix = "nnc.step";
    step->sgd_update_fn = step->sgd_apply_fn = NULL;
    step->loop = NULL;
    codegen_plan_tables(step);
    return emit_entry(step, ENTRY_PREDICT);
}

static void codegen_dispose(Codegen *cg) {
    LLVMDisposeBuilder(cg->b);
    LLVMDisposeModule(cg->mod);
    LLVMContextDispose(cg->ctx);
}

static int verify_module(Codegen *cg) {
    char *message = NULL;
    int broken = LLVMVerifyModule(cg->mod, LLVMReturnStatusAction, &message);
    if (broken) {
        LLVMDumpModule(cg->mod);
        fprintf(stderr, "nnc: internal error: the generated LLVM module is invalid:\n%s\n",
                message);
    }
    LLVMDisposeMessage(message);
    return broken ? 1 : 0;
}

/* The calls of fn from other functions, but the one-step form's: a helper the step shares
 * with the training code is inlined into it as it was without the step. */
static int count_calls(LLVMValueRef fn) {
    int calls = 0;
    for (LLVMUseRef u = LLVMGetFirstUse(fn); u; u = LLVMGetNextUse(u)) {
        LLVMValueRef call = LLVMGetUser(u);
        if (!LLVMIsACallInst(call)) continue;
        size_t len;
        const char *caller =
            LLVMGetValueName2(LLVMGetBasicBlockParent(LLVMGetInstructionParent(call)), &len);
        if (strncmp(caller, "nnc.step.", 9) != 0) calls++;
    }
    return calls;
}

/* An unrolled scan plans the same loops for every step: the same helper functions, called
 * with other addresses. LLVM's mergefunc folds the copies into one; a helper then called
 * from each entry point more than twice serves several steps, and is kept out of line, so
 * that LLVM optimises and vectorises it once, not once for each step in each entry (a
 * 50-step LSTM layer: 30 s before, 2.2 s after; the training step runs as fast). Two equal
 * layers of an MLP are still inlined, as before. */
static LLVMErrorRef share_repeated_helpers(Codegen *cg, LLVMTargetMachineRef tm,
                                           LLVMPassBuilderOptionsRef options) {
    LLVMErrorRef err = LLVMRunPasses(cg->mod, "mergefunc", tm, options);
    if (err) return err;
    for (LLVMValueRef f = LLVMGetFirstFunction(cg->mod); f; f = LLVMGetNextFunction(f))
        if (LLVMGetLinkage(f) == LLVMInternalLinkage && count_calls(f) > 2 * ENTRY_COUNT)
            add_attribute(cg, f, (unsigned)LLVMAttributeFunctionIndex, "noinline");
    return NULL;
}

static int optimise(Codegen *cg, LLVMTargetMachineRef tm, int opt_level) {
    LLVMPassBuilderOptionsRef options = LLVMCreatePassBuilderOptions();
    /* The C API's defaults leave the SLP vectoriser off; clang turns both on from -O2. */
    LLVMPassBuilderOptionsSetLoopVectorization(options, opt_level >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(options, opt_level >= 2);
    LLVMErrorRef err = opt_level > 0 ? share_repeated_helpers(cg, tm, options) : NULL;
    if (!err) err = LLVMRunPasses(cg->mod, xprintf("default<O%d>", opt_level), tm, options);
    LLVMDisposePassBuilderOptions(options);
    if (!err) return 0;
    char *message = LLVMGetErrorMessage(err);
    fprintf(stderr, "nnc: internal error: LLVM passes failed: %s\n", message);
    LLVMDisposeErrorMessage(message);
    return 1;
}

static int write_output(Codegen *cg, LLVMTargetMachineRef tm, const BackendOptions *opt) {
    if (opt->llvm_ir_out) {
        char *text = LLVMPrintModuleToString(cg->mod);
        fputs(text, opt->llvm_ir_out);
        LLVMDisposeMessage(text);
        return 0;
    }
    /* In memory first, then written with checked writes through an OutFile: LLVM's own
     * file output exits the process on a full disk and leaves a truncated file. */
    char *error = NULL;
    LLVMMemoryBufferRef object = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, cg->mod, LLVMObjectFile, &error, &object)) {
        diag_fatal_noloc("cannot make the object file %s: %s", opt->obj_path, error);
        LLVMDisposeMessage(error);
        return 1;
    }
    bool written =
        outfile_write_all(opt->obj_path, LLVMGetBufferStart(object), LLVMGetBufferSize(object));
    LLVMDisposeMemoryBuffer(object);
    return written ? 0 : 1;
}

/* For NNC_STATS (common.h): the size of the module, before and after optimisation. */
static int64_t count_llvm_instructions(Codegen *cg) {
    int64_t n = 0;
    for (LLVMValueRef f = LLVMGetFirstFunction(cg->mod); f; f = LLVMGetNextFunction(f))
        for (LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(f); b; b = LLVMGetNextBasicBlock(b))
            for (LLVMValueRef i = LLVMGetFirstInstruction(b); i; i = LLVMGetNextInstruction(i)) n++;
    return n;
}

int backend_compile(Graph *g, const BackendOptions *opt) {
    if (opt->opt_level < 0 || opt->opt_level > 3) {
        diag_fatal_noloc("optimisation level %d is not one of 0, 1, 2, 3", opt->opt_level);
        return 1;
    }
    Plan *plan = plan_build(g);
    if (!plan) return 1;
    if (!opt->f64) plan_packed_operands(plan);
    if (opt->plan_out) plan_print(plan, opt->plan_out);
    Plan *step_plan = g->step ? plan_build(g->step) : NULL;
    if (g->step && !step_plan) return 1;
    if (step_plan && !opt->f64) plan_packed_operands(step_plan);
    LLVMTargetMachineRef tm = codegen_host_target(opt->opt_level);
    if (!tm) return 1;
    Codegen cg;
    codegen_init(&cg, g, plan, opt->f64, tm);
    LLVMValueRef entries[ENTRY_COUNT];
    for (int e = 0; e < ENTRY_COUNT; e++) entries[e] = emit_entry(&cg, (Entry)e);
    LLVMValueRef team_entries[2] = {emit_team_entry(&cg, ENTRY_GRAD),
                                    emit_team_entry(&cg, ENTRY_SGD_STEP)};
    Codegen step;
    LLVMValueRef step_entry = step_plan ? emit_step_form(&cg, &step, g->step, step_plan) : NULL;
    emit_descriptor(&cg, entries, team_entries, step_plan ? &step : NULL, step_entry);
    nnc_stats.llvm_insts += count_llvm_instructions(&cg);
    int rc = verify_module(&cg);
    if (!rc) rc = optimise(&cg, tm, opt->opt_level);
    if (!rc) nnc_stats.llvm_insts_optimised += count_llvm_instructions(&cg);
    if (!rc) rc = write_output(&cg, tm, opt);
    codegen_dispose(&cg);
    LLVMDisposeTargetMachine(tm);
    return rc;
}
