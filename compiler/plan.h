/* plan.h: the schedule and the static memory plan that codegen.c follows.
 *
 * The plan orders the instructions every entry point may run (one shared schedule; each
 * entry point runs the slice its roots need), groups them into steps (a fused elementwise
 * loop, or one reduction / row op / matrix product), and gives every value that needs memory
 * a home in one of the two arenas of runtime/nnrt.h. All entry points share one layout, so
 * the offsets in the model descriptor hold for each of them. docs/codegen.md explains why
 * the rules are what they are. */
#ifndef NNC_PLAN_H
#define NNC_PLAN_H

#include "conv.h"
#include "ir.h"

typedef enum Arena {
    ARENA_NONE,    /* no memory: a constant, or a value that lives in a register */
    ARENA_FIXED,   /* fixed + offset */
    ARENA_VARYING, /* varying + offset * batch_cap, batch_cap rows of numel elements */
} Arena;

typedef struct Storage {
    Arena arena;
    int64_t offset; /* in elements */
} Storage;

typedef enum StepKind {
    STEP_EW_LOOP, /* consecutive elementwise instructions over one iteration space */
    STEP_REDUCE,
    STEP_ROW,
    STEP_MATMUL,
    STEP_LAYOUT, /* a copy of elements by an index map (slice, transpose, concat, ...) */
    STEP_WINDOW, /* a convolution, pooling or reshape: a kernel of runtime/conv.c */
} StepKind;

typedef struct Step {
    StepKind kind;
    Value **insts; /* members in schedule order; exactly one unless STEP_EW_LOOP */
    int n_insts;
    /* STEP_MATMUL (or a conv2d_weight_grad STEP_WINDOW) in sgd_step: index of the
     * parameter whose update this product performs (its whole gradient), or -1. */
    int update_param;
    /* STEP_WINDOW: the kernel's scratch memory (the im2col matrix), live during the step
     * only; ARENA_NONE when it needs none. A conv2d's lives on until the last
     * conv2d_weight_grad that shares it (cols_from). */
    Storage scratch;
    /* A conv2d_weight_grad: the step of the conv2d of the same input and window whose
     * scratch it takes, the im2col matrix already in it when that step ran; -1 when none. */
    int cols_from;
    /* STEP_MATMUL: the packed operand (Plan.packs) this product reads its B from, packed once
     * per call of an entry point (docs/codegen.md, "Products with a packed weight"); -1: BLAS. */
    int pack;
    /* grad(): the hook point after this step (1, 2, ...: ParamPlan.grad_point), or 0. */
    int grad_point;
} Step;

/* A product's B that does not vary over the batch and is read by two or more products of
 * a per-sample A (the steps of a scan: h_(t-1) · Wh, dG_t · Whᵀ): its packed form
 * (runtime/packed_gemm.h), op(B) K × N, at fixed + offset. */
typedef struct PackedOperand {
    const Value *b;
    bool tb;
    int64_t k, n;
    int64_t offset; /* fixed arena, nnrt_packed_elems(k, n) elements */
} PackedOperand;

typedef struct ParamPlan {
    Value *param;
    Value *grad;             /* NULL when no gradient flows to it */
    int64_t grad_offset;     /* fixed arena; -1 without a gradient */
    int64_t velocity_offset; /* fixed arena; -1 without a gradient */
    bool grad_in_place;      /* the gradient is computed straight into the grad buffer */
    bool fused_update;       /* sgd_step updates it inside the GEMM that computes the gradient */
    /* grad() calls the runtime back (nnrt_grads_done) at hook points 1, 2, ..., each after
     * the step that finishes one or more gradients, in the schedule's order: the point after
     * which this gradient is final in its buffer; 0 when it is only at grad()'s return (no
     * gradient, or one no step writes last: a leaf, a constant, a view). docs/mpi.md,
     * "Overlap with the backward pass". */
    int grad_point;
} ParamPlan;

typedef struct ValuePlan {
    Storage home;
    int step;         /* the step that computes it; -1 for leaves */
    int last_use;     /* the last step that reads it */
    bool pinned;      /* read by an entry point's caller or kept across steps: never reused */
    bool in_register; /* produced and consumed inside one fused loop only: no memory */
    /* A binding predict prints: where predict keeps it, in a buffer of its own above
     * everything the shared plan places (ARENA_NONE: at its home, or not a binding). */
    Storage predict_home;
    /* An accumulated sum (docs/codegen.md, "Sums that accumulate"): a term (a matmul or a
     * scatter) of a tree of adds computes straight into the sum's buffer, the first term
     * in the schedule writing it and every later one adding to it (accumulate: beta = 1,
     * or a scatter that adds into its slice). The adds themselves are not scheduled.
     * sum_into is that sum for a term, NULL otherwise. */
    const Value *sum_into;
    bool accumulate;
    /* A scatter of a sum whose scatters tile its buffer (each element in exactly one box,
     * as an LSTM step's four gates in the gradient of its [4n]): it stores its box, with
     * no zero fill and no add, and so does every other term of that sum. */
    bool tiles;
    /* A view (docs/codegen.md, "Slices read in place"): a slice that takes one contiguous
     * run of each sample of its operand, and that only fused loops read, is no step and has
     * no memory of its own. It is read at view_of's home plus view_offset elements, a sample
     * every numel(view_of) elements (view_of is never a view itself); NULL otherwise. */
    const Value *view_of;
    int64_t view_offset;
} ValuePlan;

typedef struct Plan {
    Graph *g;
    Step *steps;
    int n_steps;
    ValuePlan *values; /* indexed by Value.id */
    ParamPlan *params; /* parallel to g->params */
    int64_t fixed_elems, varying_elems;
    /* Parallel to g->bindings: where each is when predict returns; ARENA_NONE for one
     * predict cannot compute (it reads a target). */
    Storage *binding_homes;
    int64_t predict_extra_elems; /* predict's varying arena: varying_elems + these, a sample */
    PackedOperand *packs;
    int n_packs;
    /* grad()'s hook points (ParamPlan.grad_point): the params finished at point q are
     * point_params[point_first[q] .. point_first[q + 1]), q = 1 .. n_grad_points. */
    int n_grad_points;
    int *point_params, *point_first;
} Plan;

/* stacked_sums.c, the first thing plan_build does: each tree of adds of two or more
 * batch-summed outer products (the steps' terms of a shared weight's gradient) becomes one
 * product of two stacks of their operands; terms with a zero operand are left out. The
 * printers and explain read the graph before: they show the sum over the steps. Returns
 * how many sums it rewrote. */
int stack_product_sums(Graph *g);

/* packed_operands.c, after plan_build in f32 (runtime/packed_gemm.h has no f64 kernel): the
 * products that read a packed B (Step.pack, Plan.packs), each packed form in a buffer of its
 * own above everything else in the fixed arena. Returns how many operands it packs. */
int plan_packed_operands(Plan *p);

/* For the rewrites before the plan: puts made_before[v->id], the instructions a rewrite made
 * for v, just before v in g->insts (stacked_sums.c). */
void insert_made_before(Graph *g, ValueList *made_before);

/* layout_chains.c, right after stack_product_sums: a slice of a slice becomes one slice,
 * and a tree of concats the sum of its parts' boxes (scatters that tile it). The printers
 * and explain read the graph before. Returns how many it joined. */
int join_layout_chains(Graph *g);

/* Builds the plan; NULL after an error: the graph breaks an IR invariant the back end relies
 * on ("internal error"), or an arena would hold more than NNC_MAX_ARENA_ELEMS elements. */
Plan *plan_build(Graph *g);

static inline const ValuePlan *plan_value(const Plan *p, const Value *v) {
    return &p->values[v->id];
}

/* A WINDOW instruction's geometry as its runtime kernel takes it (runtime/conv.h; cols_ready
 * is codegen's), and the scratch elements per sample the kernel needs. */
nnrt_window plan_window(const Value *v);
int64_t plan_window_scratch(const Value *v);

/* Marks in needed[] (indexed by Value.id) every value that root depends on, root included. */
void plan_mark_needed(const Value *root, bool *needed);

/* The steps, their members and every home, one line each: for debugging and the curious. */
void plan_print(const Plan *p, FILE *out);

#endif
