/* codegen.h: what the parts of the code generator share. The driver sees only backend.h.
 *
 *   emit.c        the vocabulary: constants, loads and stores, math intrinsics, counted
 *                 loops, helper functions, sums and maxima along a row, addresses
 *   kernels.c     what each op computes, one function per row of ops.def: ew_NAME,
 *                 row_NAME, reduce_NAME and layout_NAME (the part an op's author writes)
 *   loops.c       the fused elementwise loops that run the ew_ kernels, and the helper
 *                 functions that run the row_ and reduce_ kernels
 *   descriptor.c  nnrt_model_desc: runtime/nnrt.h's structs as LLVM types and constants
 *   codegen.c     the entry points, the BLAS mapping, the fused SGD update, the module and
 *                 its passes
 * docs/codegen.md describes what they generate. */
#ifndef NNC_CODEGEN_H
#define NNC_CODEGEN_H

#include "backend.h"
#include "llvm_compat.h"
#include "nnrt.h"
#include "plan.h"

#include <llvm-c/TargetMachine.h>

typedef enum Entry { ENTRY_PREDICT, ENTRY_FORWARD, ENTRY_GRAD, ENTRY_SGD_STEP, ENTRY_COUNT } Entry;

/* One compiled version of a fused loop: entry points that need different members of the
 * same step get different functions. */
typedef struct LoopVariant {
    struct LoopVariant *next;
    const char *members; /* the member ids, "12,13,15" */
    LLVMValueRef fn;
} LoopVariant;

typedef struct Codegen {
    Graph *g;
    const Plan *plan;
    const char *prefix; /* of the entry points' names: "nnc" ("nnc.step" for the one-step form) */
    bool f64;
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef elem, i1, i8, i32, i64, f64_type, void_type, elem_ptr, i8_ptr;
    LLVMTypeRef ctx_type, entry_type, sgd_entry_type;
    unsigned loop_md_kind;
    LoopVariant **loop_variants; /* per step */
    LLVMValueRef *op_fns;        /* per step: its reduction or row op function */
    LLVMValueRef sgd_update_fn, sgd_apply_fn;

    /* The entry point being emitted. */
    Entry entry;
    bool *needed;       /* by Value.id */
    bool *packed_ready; /* by Plan.packs: packed already in this entry point */
    /* by Value.id: A of an nnrt_sgemm_nn earlier in this entry point, which lists its nonzero
     * columns (nnrt_sgemm_tn_again); in_branch: emitting a product a branch may skip */
    bool *listed_in_entry, in_branch;
    LLVMValueRef fixed, varying, batch, batch_cap, inv_batch, lr, momentum;
    LLVMValueRef params;                          /* nnrt_ctx.params, or fixed when it is NULL */
    LLVMValueRef training, noise_seed, first_row; /* nnrt_ctx's, for dropout */
    LLVMValueRef dropout_keep;                    /* nnrt_ctx's: the run-time rate (a double) */
    /* sgd_step_team (codegen.c, "the team's step"): nnrt_ctx.team, and whether the step being
     * emitted is split, its GEMMs each computing this thread's part; NULL and false elsewhere. */
    LLVMValueRef team;
    bool team_split;
    /* grad: nnrt_ctx.on_grads, told at each hook point (codegen.c, "grad()'s hook points");
     * NULL in the other entry points (grad_team too), which copy every gradient at the end. */
    LLVMValueRef on_grads;

    struct FusedLoop *loop; /* the fused loop being emitted (loops.c): dropout's masks */
} Codegen;

/* Prints "nnc: internal error: what" and aborts. */
void codegen_internal_error(const char *what);

/* What predict prints: the output, or the loss of a model without one. */
static inline const Value *graph_output(const Graph *g) {
    return g->output ? g->output : g->loss;
}

/* ---- emit.c: small builders ---- */

LLVMValueRef int64_const(Codegen *cg, int64_t n);
LLVMValueRef elem_const(Codegen *cg, double x); /* in the element type */
unsigned elem_bytes(const Codegen *cg);
LLVMValueRef mul64(Codegen *cg, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef element_ptr(Codegen *cg, LLVMValueRef base, LLVMValueRef index);
LLVMValueRef load_at(Codegen *cg, LLVMValueRef base, LLVMValueRef index);
void store_at(Codegen *cg, LLVMValueRef base, LLVMValueRef index, LLVMValueRef value);
LLVMValueRef fp_add(Codegen *cg, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef fp_sub(Codegen *cg, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef fp_mul(Codegen *cg, LLVMValueRef a, LLVMValueRef b);
LLVMValueRef fp_div(Codegen *cg, LLVMValueRef a, LLVMValueRef b);
/* pred(a, b) ? then : otherwise */
LLVMValueRef select_if(Codegen *cg, LLVMRealPredicate pred, LLVMValueRef a, LLVMValueRef b,
                       LLVMValueRef then, LLVMValueRef otherwise);
LLVMValueRef current_function(Codegen *cg);
LLVMValueRef build_call(Codegen *cg, LLVMValueRef fn, LLVMValueRef *args, unsigned n);
LLVMValueRef declare_function(Codegen *cg, const char *name, LLVMTypeRef ret, LLVMTypeRef *params,
                              unsigned n);
/* llvm.<name>.f32 / .f64 with one or two operands: exp, log, sqrt, fabs, sin, cos, pow,
 * copysign. The loop vectoriser maps exp, log, sin, cos and pow to glibc's libmvec. */
LLVMValueRef math1(Codegen *cg, const char *name, LLVMValueRef x);
LLVMValueRef math2(Codegen *cg, const char *name, LLVMValueRef x, LLVMValueRef y);
void add_attribute(Codegen *cg, LLVMValueRef fn, unsigned index, const char *name);
/* An internal function with noalias pointer parameters; the builder is left in its entry
 * block. */
LLVMValueRef new_helper_function(Codegen *cg, const char *name, LLVMTypeRef *params, unsigned n);
/* A stack slot in the entry block (mem2reg turns it into a register). */
LLVMValueRef entry_alloca(Codegen *cg);

/* ---- emit.c: loops ----
 * for (i = 0; i < count; i++). A loop whose count is the constant 1 emits no loop at all;
 * its index is the constant 0. */

typedef struct Loop {
    LLVMBasicBlockRef header, exit;
    LLVMValueRef index;
    bool trivial;
} Loop;

LLVMValueRef loop_begin(Codegen *cg, Loop *l, LLVMValueRef count); /* returns the index */
/* Closes the loop; reduction: its body folds a floating-point sum that may be reassociated. */
void loop_end(Codegen *cg, Loop *l, bool reduction);

/* ---- emit.c: operands inside helper functions ----
 * A helper reads an operand through a pointer, or, for a constant or 1/B, as one value. */

typedef struct Operand {
    LLVMValueRef ptr;     /* NULL when uniform */
    LLVMValueRef uniform; /* the value of every element */
} Operand;

LLVMValueRef operand_at(Codegen *cg, Operand o, LLVMValueRef i);
Operand operand_plus(Codegen *cg, Operand o, LLVMValueRef offset);
/* Where sample b of a starts, relative to a's own start. */
LLVMValueRef sample_offset(Codegen *cg, const Value *a, LLVMValueRef b);
/* A constant and 1/B have none: they are immediates and an argument. */
bool has_memory(const Value *a);

/* ---- emit.c: sums and maxima along a row ---- */

typedef struct Terms {
    Operand a, b;
    LLVMValueRef shift;    /* subtracted before exp: the row's max */
    LLVMValueRef log_sum;  /* log(sum e^(a - shift)) */
    LLVMValueRef store_to; /* term_exp_shifted also stores each term here when set */
} Terms;

typedef LLVMValueRef (*TermFn)(Codegen *cg, const Terms *t, LLVMValueRef i);

/* The sum of term(i) for i < n, reassociated freely: the same binary always sums in the
 * same order, so results stay reproducible. */
LLVMValueRef sum_terms(Codegen *cg, int64_t n, TermFn term, const Terms *t);
LLVMValueRef max_of(Codegen *cg, int64_t n, Operand a);

/* ---- emit.c: broadcasting along inner axes ----
 * An operand broadcast along an axis that is not leading (g [C,1,1] under [C,H,W]) has no
 * period. A loop over a shape (without leading 1s) runs its trailing axes as one inner
 * block, on which each operand shape s (aligned on the right, leading 1s dropped) either
 * runs along the loop or is constant; each axis before the block is a row index. */

/* Whether s has the loop's dimension on loop axis k (which is not 1). */
bool runs_along(Shape s, Shape loop, int k);
/* The first axis of the inner block for shapes s[0..n); *last_axis: the last axis that is
 * not 1, whose status the block shares. */
int inner_block(Shape loop, const Shape *s, int n, int *last_axis);
/* Where row r (the index over the axes before block) starts among s's elements: a division
 * and a remainder by constants for each axis s runs along. */
LLVMValueRef broadcast_row_start(Codegen *cg, Shape loop, Shape s, LLVMValueRef r, int block);

/* ---- emit.c: addresses in the entry points ---- */

LLVMValueRef fixed_address(Codegen *cg, int64_t offset);
/* Where v starts: its rows of the whole batch are consecutive in the varying arena. */
LLVMValueRef address_of(Codegen *cg, const Value *v);
/* The value of a constant or 1/B in an entry point. */
LLVMValueRef scalar_leaf(Codegen *cg, const Value *v);

/* ---- kernels.c: one per row of ops.def, by class ---- */

/* One element of v from its operands' elements x[]. */
typedef LLVMValueRef EwKernel(Codegen *cg, const Value *v, LLVMValueRef *x);
/* One row of C elements: row[k] is operand k's row (or its one value), out the result's
 * row; a row op with a scalar result adds each row's value into *out. */
typedef void RowKernel(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C);
/* The whole reduction v for nb samples (1 when nothing varies): args[k] is operand k from
 * its start, out the result's start. */
typedef void ReduceKernel(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                          LLVMValueRef nb);

extern EwKernel *const ew_kernels[OP_COUNT];
extern RowKernel *const row_kernels[OP_COUNT];
/* softmax_ce and softmax_ce_grad of the same z and y, one row of both (row = {z, y, g}). */
void row_softmax_ce_and_grad(Codegen *cg, Operand *row, LLVMValueRef loss_out,
                             LLVMValueRef grad_out, int64_t C);
extern ReduceKernel *const reduce_kernels[OP_COUNT];

/* A layout op (slice, scatter, transpose, permute, concat): the whole copy for nb samples,
 * with the arguments of a ReduceKernel; a slice or scatter starts at element `start` (i64)
 * of the whole (the others are given 0). */
typedef void LayoutKernel(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                          LLVMValueRef nb, LLVMValueRef start);
extern LayoutKernel *const layout_kernels[OP_COUNT];
/* Where a slice's or scatter's box starts in the whole, in elements. A helper takes it as an
 * argument, not as a constant: the slices of the steps of a scan differ in it alone, and so
 * become one function (codegen.c, share_repeated_helpers). */
int64_t layout_start(const Layout *l);

/* A RANDOM op's masks for one call of its loop (docs/codegen.md, "Dropout"), from the
 * loop's nnrt_ctx.training, noise_seed, first_row and dropout_keep (the run-time rate). */
typedef struct Masks {
    LLVMValueRef key;        /* i64: the hash of noise_seed and the salt */
    LLVMValueRef keep_below; /* i64: keep where the top 32 bits of the hash are below it */
    LLVMValueRef scale;      /* what a kept element is multiplied by */
} Masks;

Masks dropout_masks(Codegen *cg, LLVMValueRef training, LLVMValueRef noise_seed,
                    LLVMValueRef first_row, LLVMValueRef dropout_keep, const Value *v);

/* ---- loops.c ---- */

/* The steps of the plan: a fused elementwise loop; a row op or a reduction. */
void emit_loop_step(Codegen *cg, int step);
void emit_op_step(Codegen *cg, int step);
/* Whether step computes the loss softmax_ce(z, y) and the step after it softmax_ce_grad(z,
 * y, g), both needed in the entry point being emitted and the gradient's memory apart from
 * z's and y's: then emit_loss_and_grad_step computes both in one pass over the rows, and the
 * second step is not emitted. */
bool loss_and_grad_pair(const Codegen *cg, int step);
void emit_loss_and_grad_step(Codegen *cg, int step);
/* Whether a member of a fused loop has memory the entry point writes (else it lives in a
 * register inside the loop). */
bool member_stored(const Codegen *cg, const Value *member);
/* Inside the loop being emitted: the masks it made for its RANDOM member v, and the
 * current element's place in the batch (i64). */
const Masks *loop_masks(Codegen *cg, const Value *v);
LLVMValueRef loop_element(Codegen *cg);
/* Inside the loop being emitted, for a MODE kernel: whether the pass is training (i1). */
LLVMValueRef loop_is_training(Codegen *cg);

/* ---- window.c: convolution, pooling and reshapes (runtime/conv.h's kernels) ---- */

void emit_window_step(Codegen *cg, int step);
/* Whether the entry point being emitted runs the step (it computes a value the entry's
 * roots need). */
bool step_needed(const Codegen *cg, const Step *st);
/* The step's kernel into out; alpha and beta as conv2d_weight_grad reads them (out =
 * alpha * dW + beta * out: the fused SGD update), ignored by the other kernels. */
void emit_window(Codegen *cg, const Step *st, LLVMValueRef out, LLVMValueRef alpha,
                 LLVMValueRef beta);

/* ---- codegen.c ---- */

/* A target machine for the host's CPU (NULL after an error), LLVM initialised once. */
LLVMTargetMachineRef codegen_host_target(int opt_level);

/* The types every part uses, from cg->ctx and cg->f64: the element type, the integer
 * types, nnrt_ctx and the entry points' function types. */
void codegen_types(Codegen *cg);

/* ---- descriptor.c: runtime/nnrt.h's structs, made from its field lists ---- */

/* nnrt_ctx's fields by index: CTX_fixed, CTX_batch, ... */
#define CTX_FIELD(kind, name) CTX_##name,
enum { NNRT_CTX_FIELDS(CTX_FIELD) CTX_FIELDS };
#undef CTX_FIELD

typedef struct DescTypes {
    LLVMTypeRef ctx, tensor, column, setting, train, step, model;
} DescTypes;

/* nnrt_ctx, the argument of every entry point. */
LLVMTypeRef descriptor_ctx_type(Codegen *cg);
/* The descriptor's structs (nnrt_tensor ... nnrt_model), after codegen_types. */
DescTypes descriptor_types(Codegen *cg);
/* nnrt_model_desc, pointing at the entry points (by Entry) and team_entries (grad_team and
 * sgd_step_team, or NULL when the model has none); step: the one-step form's codegen (its
 * graph and plan) and entry point, or NULL when the model has none. */
void emit_descriptor(Codegen *cg, LLVMValueRef *entries, LLVMValueRef *team_entries, Codegen *step,
                     LLVMValueRef step_entry);

#endif
