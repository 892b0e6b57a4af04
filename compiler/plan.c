/* plan.c: the schedule (steps in order), elementwise fusion, the fused SGD decision and the
 * static memory plan. See plan.h for what each field means and docs/codegen.md for why. */
#include "plan.h"

#include <stdlib.h>
#include <string.h>

/* Every buffer starts on a multiple of 16 elements: 64 bytes for float, so BLAS and the
 * vector loops see aligned rows (the runtime aligns both arenas to 64 bytes). */
#define ALIGN_ELEMS 16

/* The most members a fused elementwise loop gets (docs/codegen.md, "Steps and fusion"). */
#define PLAN_MAX_LOOP_INSTS 128

static int64_t align_up(int64_t n) {
    return (n + ALIGN_ELEMS - 1) / ALIGN_ELEMS * ALIGN_ELEMS;
}

static bool is_leaf(const Value *v) {
    return op_info[v->op].cls == OPC_SRC;
}

static bool is_root_of_graph(const Graph *g, const Value *v) {
    return v == g->loss || v == g->output;
}

static Value *grad_of_param(const Graph *g, int i) {
    return g->param_grads ? g->param_grads[i] : NULL;
}

/* ---- invariants the back end relies on ---- */

static bool check_graph(const Graph *g) {
    if (!g->loss || g->loss->shape.rank != 0) {
        diag_fatal_noloc("internal error: the model has no scalar loss to compile");
        return false;
    }
    for (int i = 0; i < g->params.n; i++) {
        Value *p = g->params.v[i], *gr = grad_of_param(g, i);
        if (!gr) continue;
        if (gr->varying || shape_numel(gr->shape) != shape_numel(p->shape)) {
            diag_fatal_noloc("internal error: the gradient of @%s is %s%s, the parameter %s",
                             p->name, gr->varying ? "varying " : "", shape_str(gr->shape),
                             shape_str(p->shape));
            return false;
        }
    }
    return true;
}

/* ---- what the roots need ---- */

void plan_mark_needed(const Value *root, bool *needed) {
    if (!root || needed[root->id]) return;
    /* An explicit stack: unrolled recurrent nets make chains too deep for recursion. */
    VEC(const Value *) stack = {0};
    needed[root->id] = true;
    vec_push(&stack, root);
    while (stack.n > 0) {
        const Value *v = stack.v[--stack.n];
        for (int i = 0; i < v->nargs; i++) {
            if (needed[v->args[i]->id]) continue;
            needed[v->args[i]->id] = true;
            vec_push(&stack, v->args[i]);
        }
    }
}

static bool *needed_by_any_root(const Plan *p) {
    const Graph *g = p->g;
    bool *needed = xalloc((size_t)g->next_id * sizeof *needed);
    plan_mark_needed(g->loss, needed);
    plan_mark_needed(g->output, needed);
    for (int i = 0; i < g->params.n; i++) plan_mark_needed(grad_of_param(g, i), needed);
    for (int i = 0; i < g->state_updates.n; i++) plan_mark_needed(g->state_updates.v[i], needed);
    return needed;
}

/* How many needed instructions read each value (operand slots, by Value.id). */
static int *count_readers(const Graph *g, const bool *needed) {
    int *readers = xalloc((size_t)g->next_id * sizeof *readers);
    for (int i = 0; i < g->insts.n; i++) {
        Value *v = g->insts.v[i];
        if (!needed[v->id]) continue;
        for (int j = 0; j < v->nargs; j++) readers[v->args[j]->id]++;
    }
    return readers;
}

/* ---- fused SGD ----
 * A parameter whose whole gradient is one batch-summing matmul (or the one GEMM of a
 * conv2d_weight_grad, or the scatter_add of an embedding table) that nothing else reads is
 * updated by that GEMM in sgd_step (C = param, beta = 1, alpha = -lr), so the gradient of a
 * weight matrix is never stored nor read back. The GEMM must not read the parameter itself
 * (C would alias an operand), and the parameter must not be read after its update: not as
 * a root, not as another parameter's gradient, not by another fused GEMM (those run late). */

static bool reads(const Value *v, const Value *operand) {
    for (int i = 0; i < v->nargs; i++)
        if (v->args[i] == operand) return true;
    return false;
}

/* By value id: 1 + the index of the parameter it is, or 0. */
static int *index_params(const Graph *g) {
    int *param_of = xalloc((size_t)g->next_id * sizeof *param_of);
    for (int i = 0; i < g->params.n; i++) param_of[g->params.v[i]->id] = i + 1;
    return param_of;
}

static void choose_fused_updates(Plan *p, const int *readers, const int *param_of) {
    Graph *g = p->g;
    int *grad_roots = xalloc((size_t)g->next_id * sizeof *grad_roots);
    for (int i = 0; i < g->params.n; i++)
        if (grad_of_param(g, i)) grad_roots[grad_of_param(g, i)->id]++;
    for (int i = 0; i < g->params.n; i++) {
        Value *param = g->params.v[i], *gr = p->params[i].grad;
        bool one_product = gr && ((gr->op == OP_matmul && gr->sum_batch) ||
                                  gr->op == OP_conv2d_weight_grad || gr->op == OP_scatter_add);
        p->params[i].fused_update = one_product && readers[gr->id] == 0 &&
                                    grad_roots[gr->id] == 1 && !is_root_of_graph(g, gr) &&
                                    !reads(gr, param) && grad_roots[param->id] == 0 &&
                                    !is_root_of_graph(g, param);
    }
    for (int i = 0; i < g->params.n; i++) {
        if (!p->params[i].fused_update) continue;
        const Value *gr = p->params[i].grad;
        for (int k = 0; k < gr->nargs; k++) {
            int j = param_of[gr->args[k]->id] - 1;
            if (j >= 0) p->params[j].fused_update = false;
        }
    }
}

/* By value id: the parameter whose fused update the value (a GEMM) performs, or -1. */
static int *index_fused_updates(const Plan *p) {
    int *fused = xalloc((size_t)p->g->next_id * sizeof *fused);
    for (int i = 0; i < p->g->next_id; i++) fused[i] = -1;
    for (int k = 0; k < p->g->params.n; k++)
        if (p->params[k].fused_update) fused[p->params[k].grad->id] = k;
    return fused;
}

/* ---- sums that accumulate ----
 * A sum of products or scatters, such as the gradient of a weight a scan's T steps share
 * (T matmuls summed by T - 1 adds) or of a sequence the steps read a row each (T scatters
 * of [T, n] summed), would cost T buffers and a pass that adds them. Instead each term
 * computes into the sum's one buffer: the first term in the schedule writes it, the later
 * ones add to it (a GEMM's beta = 1; a scatter adds its slice, with no zeroing), and the
 * adds are not scheduled at all. A term must have the sum's shape and batch axis and no
 * other reader; an add inside the tree must have the tree as its only reader. */

static bool is_sum_term(const Value *v) {
    return v->op == OP_matmul || v->op == OP_scatter;
}

static bool same_space(const Value *a, const Value *b) {
    return a->varying == b->varying && shape_eq(a->shape, b->shape);
}

/* Values a sum must leave alone: as a term or an inner add, the roots, gradients and state
 * updates the caller reads; anywhere, a binding predict keeps in a buffer of its own (2). */
static char *mark_untouchable(const Plan *p) {
    const Graph *g = p->g;
    char *no = xalloc((size_t)g->next_id * sizeof *no);
    no[g->loss->id] = 1;
    if (g->output) no[g->output->id] = 1;
    for (int i = 0; i < g->params.n; i++)
        if (p->params[i].grad) no[p->params[i].grad->id] = 1;
    for (int i = 0; i < g->state_updates.n; i++)
        if (g->state_updates.v[i]) no[g->state_updates.v[i]->id] = 1;
    for (int i = 0; i < g->bindings.n; i++) no[g->bindings.v[i].v->id] = 2;
    return no;
}

/* An add whose operands can be inside its tree: each a term or such an add, of its shape. */
static bool sums_parts(const Value *v, const bool *part) {
    return v->op == OP_add && v->nargs == 2 && part[v->args[0]->id] && part[v->args[1]->id] &&
           same_space(v->args[0], v) && same_space(v->args[1], v);
}

/* Finds the sums, the last in the graph first (so a tree is taken whole, from its top):
 * marks each term's sum in the plan and each add in dropped[] (not scheduled). In one pass
 * over the graph, part[] says whether a value can be inside a tree (a term, or an add of
 * such values, read by nothing else and read by no caller), so the search is linear. */
static void find_accumulated_sums(Plan *p, const bool *needed, const int *readers, bool *dropped) {
    Graph *g = p->g;
    char *no = mark_untouchable(p);
    bool *part = xalloc((size_t)g->next_id * sizeof *part);
    for (int i = 0; i < g->insts.n; i++) {
        const Value *v = g->insts.v[i];
        part[v->id] = needed[v->id] && readers[v->id] == 1 && !no[v->id] &&
                      (is_sum_term(v) || sums_parts(v, part));
    }
    ValueList stack = {0};
    for (int i = g->insts.n - 1; i >= 0; i--) {
        Value *sum = g->insts.v[i];
        if (!needed[sum->id] || dropped[sum->id] || no[sum->id] == 2 || !sums_parts(sum, part))
            continue;
        stack.n = 0;
        vec_push(&stack, sum);
        while (stack.n) {
            Value *v = stack.v[--stack.n];
            if (is_sum_term(v)) {
                p->values[v->id].sum_into = sum;
                continue;
            }
            dropped[v->id] = true;
            vec_push(&stack, v->args[1]);
            vec_push(&stack, v->args[0]);
        }
    }
}

/* In schedule order: the first term of each sum writes its buffer, the others add; but
 * the scatters of a sum that they tile each store their box. */
static void mark_accumulating_terms(Plan *p) {
    bool *written = xalloc((size_t)p->g->next_id * sizeof *written);
    for (int s = 0; s < p->n_steps; s++) {
        const Value *v = p->steps[s].insts[0];
        const Value *sum = p->values[v->id].sum_into;
        if (!sum) continue;
        p->values[v->id].accumulate = written[sum->id] && !p->values[v->id].tiles;
        written[sum->id] = true;
    }
}

/* Marks the elements of a scatter's box in seen[] (by element of the whole); false when
 * one was marked already. */
static bool mark_box(const Layout *l, bool *seen) {
    int rank = l->whole.rank;
    int64_t stride[MAX_RANK], idx[MAX_RANK] = {0}, n = 1;
    for (int k = rank - 1; k >= 0; k--) {
        stride[k] = n;
        n *= l->whole.dim[k];
    }
    for (;;) {
        int64_t at = 0;
        for (int k = 0; k < rank; k++) at += (l->start[k] + idx[k] * l->step[k]) * stride[k];
        if (seen[at]) return false;
        seen[at] = true;
        int k = rank - 1;
        while (k >= 0 && ++idx[k] == l->count[k]) idx[k--] = 0;
        if (k < 0) return true;
    }
}

/* Whether the terms, all scatters, put each element of the sum in exactly one box. */
static bool scatters_tile(const Value *sum, const ValueList *terms) {
    int64_t numel = shape_numel(sum->shape), boxes = 0;
    for (int i = 0; i < terms->n; i++) {
        if (terms->v[i]->op != OP_scatter) return false;
        boxes += shape_numel(terms->v[i]->args[0]->shape);
    }
    if (boxes != numel) return false;
    bool *seen = xalloc((size_t)numel * sizeof *seen);
    for (int i = 0; i < terms->n; i++)
        if (!mark_box(terms->v[i]->layout, seen)) return false;
    return true;
}

/* A sum of scatters that tile its buffer needs no zero fill and no adds: each scatter
 * stores its box (the gradient of an LSTM step's [4n] from its four gates, of a [T, 4n]
 * sequence from its T rows). */
static void find_tiling_sums(Plan *p) {
    Graph *g = p->g;
    ValueList *terms = xalloc((size_t)g->next_id * sizeof *terms);
    for (int i = 0; i < g->insts.n; i++) {
        const Value *sum = p->values[g->insts.v[i]->id].sum_into;
        if (sum) vec_push(&terms[sum->id], g->insts.v[i]);
    }
    for (int i = 0; i < g->insts.n; i++) {
        const ValueList *t = &terms[g->insts.v[i]->id];
        if (!t->n || !scatters_tile(g->insts.v[i], t)) continue;
        for (int k = 0; k < t->n; k++) p->values[t->v[k]->id].tiles = true;
    }
}

/* ---- slices read in place ----
 * A slice copies its elements into a buffer of its own, and cuts the chain of loops around
 * it: an LSTM step copies its four gates out of the pre-activations [4n] and runs a loop per
 * gate. A slice whose elements are one contiguous run of each sample of its operand, and
 * that only fused loops read, is instead a view: it has no step and no memory, and the loops
 * read the operand in place, at the run's offset, a sample every numel(operand) elements
 * (loops.c). The gates' loops then join into one. The operand lives as long as the view's
 * readers. */

/* Where the slice's elements start in each sample of the sliced value, when they are one
 * contiguous run there: single indices on the leading axes, then at most one axis taken
 * in part with step 1, then whole axes. */
static bool contiguous_run(const Layout *l, int64_t *offset) {
    int rank = l->whole.rank, k = 0;
    while (k < rank && l->count[k] == 1) k++;
    if (k < rank && l->step[k] != 1) return false;
    for (int j = k + 1; j < rank; j++)
        if (l->start[j] != 0 || l->count[j] != l->whole.dim[j] || l->step[j] != 1) return false;
    int64_t stride = 1;
    *offset = 0;
    for (int j = rank - 1; j >= 0; j--) {
        *offset += l->start[j] * stride;
        stride *= l->whole.dim[j];
    }
    return true;
}

/* An instruction, an input or a target: not a parameter or a state, which the step updates
 * in place (a view must read what its operand was when the view was taken), and not a
 * constant, which has no memory. */
static bool never_written_in_place(const Value *x) {
    return !is_leaf(x) || x->op == OP_input || x->op == OP_target;
}

/* A reshape keeps each sample's elements in their order: when its operand has a batch axis
 * exactly when it has, it is the operand's buffer under another shape, a view at +0 whose
 * samples are numel apart either way, so that any step can read it, not only a loop. */
static bool reshape_view(const Value *v, const bool *needed, const char *no) {
    const Value *x = v->nargs ? v->args[0] : NULL;
    return (v->op == OP_reshape || v->op == OP_flatten) && !v->custom && needed[v->id] &&
           !no[v->id] && never_written_in_place(x) && v->varying == x->varying;
}

/* By value id: every needed instruction that reads it is elementwise, or a reshape that is
 * a view only loops read (and one at least). Last to first, so a reader's answer is known. */
static bool *read_by_loops_only(const Graph *g, const bool *needed, const char *no) {
    bool *only = xalloc((size_t)g->next_id * sizeof *only), *other = xalloc((size_t)g->next_id);
    for (int i = g->insts.n - 1; i >= 0; i--) {
        const Value *v = g->insts.v[i];
        if (!needed[v->id]) continue;
        bool loop = op_info[v->op].cls == OPC_EW ||
                    (reshape_view(v, needed, no) && only[v->id] && !other[v->id]);
        for (int j = 0; j < v->nargs; j++) {
            only[v->args[j]->id] |= loop;
            other[v->args[j]->id] |= !loop;
        }
    }
    for (int i = 0; i < g->next_id; i++) only[i] &= !other[i];
    return only;
}

/* Where v starts in its operand's samples when it can be a view; false when it cannot. */
static bool view_offset_in(const Value *v, const bool *needed, const char *no,
                           const bool *loops_only, int64_t *offset) {
    *offset = 0;
    if (reshape_view(v, needed, no)) return true;
    return v->op == OP_slice && !v->custom && needed[v->id] && !no[v->id] && loops_only[v->id] &&
           never_written_in_place(v->args[0]) && contiguous_run(v->layout, offset);
}

static void find_views(Plan *p, const bool *needed, bool *dropped) {
    Graph *g = p->g;
    char *no = mark_untouchable(p);
    bool *loops_only = read_by_loops_only(g, needed, no);
    for (int i = 0; i < g->insts.n; i++) {
        Value *v = g->insts.v[i];
        const Value *x = v->nargs ? v->args[0] : NULL;
        int64_t offset;
        if (!view_offset_in(v, needed, no, loops_only, &offset)) continue;
        const ValuePlan *xp = &p->values[x->id];
        const Value *base = xp->view_of ? xp->view_of : x;
        if (v->op == OP_slice && shape_numel(v->shape) == shape_numel(base->shape))
            continue; /* one loop's space */
        p->values[v->id].view_of = base;
        p->values[v->id].view_offset = xp->view_offset + offset;
        dropped[v->id] = true;
    }
}

/* What a step reads when it reads v: the value a view is in. */
static const Value *read_in(const Plan *p, const Value *v) {
    const Value *base = p->values[v->id].view_of;
    return base ? base : v;
}

/* ---- the schedule ----
 * First every instruction that depends on parameters and constants only (a broadcast bias,
 * a weight penalty): computed once up front, they never split a chain of per-sample
 * elementwise instructions into two loops. Then the rest of g->insts in order. Dead code
 * and leaves are left out. A fused-update GEMM then moves to just after the last
 * instruction that reads its parameter (dX = dY W^T reads W, and the autodiff may have
 * emitted dW first). The same order serves every entry point. */

static ValueList base_order(Plan *p, const bool *needed, const bool *dropped) {
    Graph *g = p->g;
    bool *per_batch = xalloc((size_t)g->next_id * sizeof *per_batch);
    ValueList hoisted = {0}, rest = {0};
    for (int i = 0; i < g->insts.n; i++) {
        Value *v = g->insts.v[i];
        per_batch[v->id] = v->varying || v->op == OP_inv_batch;
        for (int j = 0; j < v->nargs; j++) per_batch[v->id] |= per_batch[v->args[j]->id];
        if (!needed[v->id] || is_leaf(v) || dropped[v->id]) continue;
        vec_push(per_batch[v->id] ? &rest : &hoisted, v);
    }
    for (int i = 0; i < rest.n; i++) vec_push(&hoisted, rest.v[i]);
    return hoisted;
}

static ValueList schedule_order(Plan *p, const bool *needed, const int *param_of, const int *fused,
                                const bool *dropped) {
    ValueList base = base_order(p, needed, dropped);
    int n_params = p->g->params.n;
    /* For each fused parameter, the last instruction of base that reads it or is its GEMM. */
    int *last_reader = xalloc((size_t)(n_params ? n_params : 1) * sizeof *last_reader);
    for (int k = 0; k < n_params; k++) last_reader[k] = -1;
    for (int i = 0; i < base.n; i++) {
        Value *v = base.v[i];
        if (fused[v->id] >= 0) last_reader[fused[v->id]] = i;
        for (int j = 0; j < v->nargs; j++) {
            int k = param_of[v->args[j]->id] - 1;
            if (k >= 0 && p->params[k].fused_update) last_reader[k] = i;
        }
    }
    /* The GEMMs that go right after each instruction, in parameter order. */
    int *after = xalloc((size_t)(base.n + 1) * sizeof *after),
        *next = xalloc((size_t)(n_params ? n_params : 1) * sizeof *next);
    for (int i = 0; i < base.n; i++) after[i] = -1;
    for (int k = n_params - 1; k >= 0; k--) {
        if (!p->params[k].fused_update || last_reader[k] < 0) continue;
        next[k] = after[last_reader[k]];
        after[last_reader[k]] = k;
    }
    ValueList order = {0};
    for (int i = 0; i < base.n; i++) {
        Value *v = base.v[i];
        int own = fused[v->id];
        if (own < 0 || last_reader[own] <= i) vec_push(&order, v);
        for (int k = after[i]; k >= 0; k = next[k])
            if (p->params[k].grad != v) vec_push(&order, p->params[k].grad);
    }
    return order;
}

static StepKind step_kind_of(const Value *v) {
    switch (op_info[v->op].cls) {
    case OPC_EW: return STEP_EW_LOOP;
    case OPC_REDUCE: return STEP_REDUCE;
    case OPC_ROW: return STEP_ROW;
    case OPC_LAYOUT: return STEP_LAYOUT;
    case OPC_WINDOW: return STEP_WINDOW;
    default: return STEP_MATMUL;
    }
}

/* A shape without its leading 1s: [1, 6] and [6] index their elements alike. */
static Shape without_leading_ones(Shape s) {
    int skip = 0;
    while (skip < s.rank && s.dim[skip] == 1) skip++;
    return shape_make(s.rank - skip, s.dim + skip);
}

/* Joins v to the previous step when both are elementwise over the same iteration space:
 * the same batch axis and the same shape. The same element count is not enough: the loop
 * repeats each operand with its own period, and [4,6] + [6] and [6,4] + [4] need periods
 * of 6 and 4 that no one inner loop serves. A loop is closed at PLAN_MAX_LOOP_INSTS
 * members: LLVM's time grows faster than linearly with the size of a loop body. */
static bool joins_loop(const Step *prev, const Value *v) {
    if (!prev || prev->kind != STEP_EW_LOOP || op_info[v->op].cls != OPC_EW) return false;
    if (prev->n_insts >= PLAN_MAX_LOOP_INSTS) return false;
    const Value *first = prev->insts[0];
    return first->varying == v->varying &&
           shape_eq(without_leading_ones(first->shape), without_leading_ones(v->shape));
}

/* A step's members are consecutive in the order: each step points into it. */
static void build_steps(Plan *p, ValueList order, const int *fused) {
    p->steps = xalloc((size_t)(order.n ? order.n : 1) * sizeof *p->steps);
    for (int i = 0; i < order.n; i++) {
        Value *v = order.v[i];
        Step *prev = p->n_steps ? &p->steps[p->n_steps - 1] : NULL;
        if (joins_loop(prev, v)) {
            if (++prev->n_insts > nnc_stats.largest_loop) nnc_stats.largest_loop = prev->n_insts;
            continue;
        }
        Step *s = &p->steps[p->n_steps++];
        s->kind = step_kind_of(v);
        s->insts = &order.v[i];
        s->n_insts = 1;
        s->update_param = s->kind == STEP_MATMUL || s->kind == STEP_WINDOW ? fused[v->id] : -1;
        s->cols_from = -1;
        s->pack = -1;
    }
}

/* ---- liveness ---- */

static void pin_roots(Plan *p) {
    Graph *g = p->g;
    p->values[g->loss->id].pinned = true;
    if (g->output) p->values[g->output->id].pinned = true;
    for (int i = 0; i < g->params.n; i++)
        if (p->params[i].grad) p->values[p->params[i].grad->id].pinned = true;
    for (int i = 0; i < g->state_updates.n; i++) /* read when the step is over */
        if (g->state_updates.v[i]) p->values[g->state_updates.v[i]->id].pinned = true;
}

/* A sum's buffer is live from its first term to its last reader, and each term's is the
 * sum's: the sum takes the first term's step, and every term the sum's last use. */
static void extend_sums_over_terms(Plan *p) {
    for (int s = 0; s < p->n_steps; s++) {
        const Value *sum = p->values[p->steps[s].insts[0]->id].sum_into;
        if (!sum) continue;
        ValuePlan *sp = &p->values[sum->id];
        if (sp->step < 0) sp->step = s;
        if (sp->last_use < s) sp->last_use = s;
    }
    for (int s = 0; s < p->n_steps; s++) {
        ValuePlan *tp = &p->values[p->steps[s].insts[0]->id];
        if (tp->sum_into) tp->last_use = p->values[tp->sum_into->id].last_use;
    }
}

/* Fills step and last_use, and keeps in a register every fused-loop member that no other
 * step reads and no caller reads. */
static void compute_liveness(Plan *p) {
    Graph *g = p->g;
    bool *read_elsewhere = xalloc((size_t)g->next_id * sizeof *read_elsewhere);
    for (int i = 0; i < g->next_id; i++) p->values[i].step = -1;
    for (int s = 0; s < p->n_steps; s++)
        for (int m = 0; m < p->steps[s].n_insts; m++) {
            ValuePlan *vp = &p->values[p->steps[s].insts[m]->id];
            vp->step = vp->last_use = s;
        }
    for (int s = 0; s < p->n_steps; s++) {
        for (int m = 0; m < p->steps[s].n_insts; m++) {
            Value *v = p->steps[s].insts[m];
            for (int j = 0; j < v->nargs; j++) {
                const Value *a = read_in(p, v->args[j]);
                ValuePlan *ap = &p->values[a->id];
                if (s > ap->last_use) ap->last_use = s;
                if (ap->step != s) read_elsewhere[a->id] = true;
            }
        }
    }
    for (int s = 0; s < p->n_steps; s++) {
        if (p->steps[s].kind != STEP_EW_LOOP) continue;
        for (int m = 0; m < p->steps[s].n_insts; m++) {
            Value *v = p->steps[s].insts[m];
            p->values[v->id].in_register = !read_elsewhere[v->id] && !p->values[v->id].pinned;
        }
    }
    extend_sums_over_terms(p);
}

/* ---- homes ----
 * Each arena: a pinned region grown by bumping, then buffers reused by liveness above it,
 * first fit: a buffer goes to the lowest offset where it fits between the buffers still
 * live. The live buffers are a list in offset order; the free gaps between them are a
 * treap keyed by offset that knows the largest gap of each subtree, so finding the first
 * gap that fits, and freeing a buffer, take O(log n) rather than a scan of everything live
 * (a long chain keeps every forward value live until the backward pass). */

typedef struct Gap {
    int64_t offset, size, largest; /* largest: of the gaps in this subtree */
    uint64_t priority;
    struct Gap *left, *right;
    struct Live *owner; /* the live buffer the gap comes before */
} Gap;

typedef struct Live {
    int64_t offset, size;
    struct Live *prev, *next; /* by offset */
    Gap *gap_before;          /* the free space between prev (or the pinned region) and it */
    struct Live *expiring;    /* the next buffer whose last use is the same step */
} Live;

typedef struct ArenaAlloc {
    int64_t pinned_end, high;
    Live *first, *last;
    Gap *gaps;
    Live **expire_after; /* by step: the buffers last read there */
    int expired_below;   /* steps below this have had their buffers freed */
    uint64_t gaps_made;
    const Value *too_big; /* the value that took the arena past NNC_MAX_ARENA_ELEMS */
} ArenaAlloc;

static int64_t largest(const Gap *t) {
    return t ? t->largest : 0;
}

static void update(Gap *t) {
    t->largest = t->size;
    if (largest(t->left) > t->largest) t->largest = largest(t->left);
    if (largest(t->right) > t->largest) t->largest = largest(t->right);
}

/* Splits t into the gaps before offset (*lo) and from offset on (*hi). */
static void split(Gap *t, int64_t offset, Gap **lo, Gap **hi) {
    if (!t) {
        *lo = *hi = NULL;
        return;
    }
    nnc_stats.plan_visits++;
    if (t->offset < offset) {
        split(t->right, offset, &t->right, hi);
        *lo = t;
    } else {
        split(t->left, offset, lo, &t->left);
        *hi = t;
    }
    update(t);
}

/* Joins two treaps, every gap of a before every gap of b. */
static Gap *join(Gap *a, Gap *b) {
    if (!a || !b) return a ? a : b;
    nnc_stats.plan_visits++;
    if (a->priority > b->priority) {
        a->right = join(a->right, b);
        update(a);
        return a;
    }
    b->left = join(a, b->left);
    update(b);
    return b;
}

static Gap *add_gap(ArenaAlloc *a, int64_t offset, int64_t size, Live *owner) {
    if (size <= 0) return NULL;
    Gap *gap = xalloc(sizeof *gap);
    *gap = (Gap){offset, size, size, hash_mix(++a->gaps_made), NULL, NULL, owner};
    Gap *lo, *hi;
    split(a->gaps, offset, &lo, &hi);
    a->gaps = join(join(lo, gap), hi);
    return gap;
}

static void remove_gap(ArenaAlloc *a, Gap *gap) {
    if (!gap) return;
    Gap *lo, *mid, *hi;
    split(a->gaps, gap->offset, &lo, &mid);
    split(mid, gap->offset + 1, &mid, &hi);
    a->gaps = join(lo, hi);
}

/* The gap with the lowest offset that holds size elements, or NULL. */
static Gap *first_fit(Gap *t, int64_t size) {
    while (t && t->largest >= size) {
        nnc_stats.plan_visits++;
        if (largest(t->left) >= size)
            t = t->left;
        else if (t->size >= size)
            return t;
        else
            t = t->right;
    }
    return NULL;
}

static bool within_arena(ArenaAlloc *a, int64_t end, const Value *v) {
    if (end <= NNC_MAX_ARENA_ELEMS) return true;
    if (!a->too_big) a->too_big = v;
    return false;
}

static int64_t bump(ArenaAlloc *a, int64_t numel, const Value *v) {
    int64_t offset = a->pinned_end;
    if (within_arena(a, offset + align_up(numel), v)) a->pinned_end += align_up(numel);
    return offset;
}

/* Frees the buffers whose last use is before step. */
static void expire(ArenaAlloc *a, int step) {
    for (; a->expired_below < step; a->expired_below++) {
        for (Live *x = a->expire_after[a->expired_below]; x; x = x->expiring) {
            Live *next = x->next;
            int64_t from = x->prev ? x->prev->offset + x->prev->size : a->pinned_end;
            remove_gap(a, x->gap_before);
            if (next) {
                remove_gap(a, next->gap_before);
                next->gap_before = add_gap(a, from, next->offset - from, next);
            }
            *(x->prev ? &x->prev->next : &a->first) = next;
            *(next ? &next->prev : &a->last) = x->prev;
        }
    }
}

/* Places a buffer live from def_step to last_use at the first fit; returns its offset. */
static int64_t allocate_interval(ArenaAlloc *a, int64_t numel, int def_step, int last_use,
                                 const Value *v) {
    expire(a, def_step);
    int64_t size = align_up(numel);
    Gap *gap = first_fit(a->gaps, size);
    Live *x = xalloc(sizeof *x);
    x->size = size;
    if (gap) {
        Live *next = gap->owner;
        x->offset = gap->offset;
        x->prev = next->prev;
        x->next = next;
        remove_gap(a, gap);
        next->gap_before = add_gap(a, x->offset + size, gap->size - size, next);
    } else {
        x->offset = a->last ? a->last->offset + a->last->size : a->pinned_end;
        x->prev = a->last;
    }
    *(x->prev ? &x->prev->next : &a->first) = x;
    *(x->next ? &x->next->prev : &a->last) = x;
    x->expiring = a->expire_after[last_use];
    a->expire_after[last_use] = x;
    if (within_arena(a, x->offset + size, v) && x->offset + size > a->high)
        a->high = x->offset + size;
    return x->offset;
}

static Storage home_in(ArenaAlloc *arenas, bool varying, const Value *v) {
    Arena which = varying ? ARENA_VARYING : ARENA_FIXED;
    return (Storage){which, bump(&arenas[which], shape_numel(v->shape), v)};
}

/* Inputs, targets, parameters, states, and the parameters' gradient and velocity buffers,
 * at fixed places. */
static void place_leaves_and_param_buffers(Plan *p, ArenaAlloc *arenas) {
    Graph *g = p->g;
    ValueList *leaf_lists[] = {&g->inputs, &g->targets, &g->params, &g->states};
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < leaf_lists[l]->n; i++) {
            Value *v = leaf_lists[l]->v[i];
            p->values[v->id].home = home_in(arenas, v->varying, v);
            p->values[v->id].pinned = true;
        }
    for (int i = 0; i < g->params.n; i++) {
        ParamPlan *pp = &p->params[i];
        pp->grad_offset = pp->velocity_offset = -1;
        if (!pp->grad) continue;
        int64_t numel = shape_numel(pp->param->shape);
        pp->grad_offset = bump(&arenas[ARENA_FIXED], numel, pp->param);
        pp->velocity_offset = bump(&arenas[ARENA_FIXED], numel, pp->param);
        ValuePlan *gp = &p->values[pp->grad->id];
        if (!is_leaf(pp->grad) && gp->home.arena == ARENA_NONE) {
            gp->home = (Storage){ARENA_FIXED, pp->grad_offset};
            pp->grad_in_place = true;
        }
    }
}

/* Roots without a home yet (instructions, or a constant the caller must be able to read). */
static void place_pinned_roots(Plan *p, ArenaAlloc *arenas) {
    Graph *g = p->g;
    Value *roots[2] = {g->loss, g->output};
    for (int r = 0; r < 2; r++) {
        Value *v = roots[r];
        if (v && p->values[v->id].home.arena == ARENA_NONE)
            p->values[v->id].home = home_in(arenas, v->varying, v);
    }
    for (int i = 0; i < g->params.n; i++) {
        Value *v = p->params[i].grad;
        if (v && !is_leaf(v) && p->values[v->id].home.arena == ARENA_NONE)
            p->values[v->id].home = home_in(arenas, false, v);
    }
    for (int i = 0; i < g->state_updates.n; i++) {
        Value *v = g->state_updates.v[i];
        if (v && !is_leaf(v) && p->values[v->id].home.arena == ARENA_NONE)
            p->values[v->id].home = home_in(arenas, false, v);
    }
}

nnrt_window plan_window(const Value *v) {
    WindowGeometry gm = ir_window_geometry(v);
    nnrt_window w = {.c_in = gm.c_in,
                     .h = gm.h,
                     .w = gm.w,
                     .c_out = gm.c_out,
                     .h_out = gm.h_out,
                     .w_out = gm.w_out,
                     .kh = gm.kh,
                     .kw = gm.kw,
                     .stride = gm.stride,
                     .pad = gm.pad,
                     .dil = gm.dil};
    const Value *a = v->args[0], *b = v->nargs > 1 ? v->args[1] : NULL;
    w.a_step = a->varying ? shape_numel(a->shape) : 0;
    w.b_step = b && b->varying ? shape_numel(b->shape) : 0;
    w.bias_step = v->op == OP_conv2d && v->args[2]->shape.rank != 0;
    return w;
}

static bool is_convolution(const Value *v) {
    return v->op == OP_conv2d || v->op == OP_conv2d_input_grad || v->op == OP_conv2d_weight_grad;
}

int64_t plan_window_scratch(const Value *v) {
    if (!is_convolution(v)) return 0;
    nnrt_window w = plan_window(v);
    /* the direct kernels need theirs once per call, not per sample: a per-sample share that
     * is at least all of it is enough for any batch */
    bool direct = v->op == OP_conv2d_weight_grad ? nnrt_conv_weight_grad_is_direct(&w)
                                                 : nnrt_conv_is_direct(&w);
    if (direct) return nnrt_conv_direct_scratch(&w);
    /* the im2col matrix [C_in*kH*kW, positions] and the product [C_out, positions] */
    return (w.c_in * w.kh * w.kw + w.c_out) * w.h_out * w.w_out;
}

/* Whether a conv2d_weight_grad reads the same im2col matrix as a conv2d: the same input
 * (one that varies: the matrix is per sample) under the same window. */
static bool same_im2col(const Value *conv, const Value *weight_grad) {
    if (conv->op != OP_conv2d || weight_grad->op != OP_conv2d_weight_grad) return false;
    if (conv->args[0] != weight_grad->args[0] || !conv->args[0]->varying) return false;
    WindowGeometry a = ir_window_geometry(conv), b = ir_window_geometry(weight_grad);
    return a.c_in == b.c_in && a.h == b.h && a.w == b.w && a.kh == b.kh && a.kw == b.kw &&
           a.stride == b.stride && a.pad == b.pad && a.dil == b.dil && a.h_out == b.h_out &&
           a.w_out == b.w_out && a.c_out == b.c_out;
}

/* The last step s reads its own scratch in: a conv2d's im2col matrix is kept for the
 * weight gradients of the same input and window, which then skip their own im2col (the
 * backward pass runs in the same entry point as the forward one: it needs the loss). */
static int keep_scratch_until(Plan *p, int s) {
    int last = s;
    for (int t = s + 1; t < p->n_steps; t++)
        if (p->steps[t].kind == STEP_WINDOW &&
            same_im2col(p->steps[s].insts[0], p->steps[t].insts[0])) {
            p->steps[t].cols_from = s;
            last = t;
        }
    return last;
}

/* A WINDOW step's scratch, allocated after its result and live during the step only (or
 * until the weight gradients that share it), so it overlaps neither the operands (still
 * live) nor the result. Per sample: varying arena. */
static void place_scratch(Plan *p, int s, ArenaAlloc *arenas) {
    Step *st = &p->steps[s];
    if (st->cols_from >= 0) { /* the conv2d's: the im2col matrix is there */
        st->scratch = p->steps[st->cols_from].scratch;
        return;
    }
    int64_t numel = st->kind == STEP_WINDOW ? plan_window_scratch(st->insts[0]) : 0;
    if (numel == 0) return;
    const Value *v = st->insts[0];
    nnrt_window w = plan_window(v);
    int last = v->op == OP_conv2d && !nnrt_conv_is_direct(&w) ? keep_scratch_until(p, s) : s;
    st->scratch.arena = ARENA_VARYING;
    st->scratch.offset = allocate_interval(&arenas[ARENA_VARYING], numel, s, last, st->insts[0]);
}

static void place_intermediates(Plan *p, ArenaAlloc *arenas) {
    for (int s = 0; s < p->n_steps; s++) {
        for (int m = 0; m < p->steps[s].n_insts; m++) {
            Value *v = p->steps[s].insts[m];
            ValuePlan *vp = &p->values[v->id];
            if (vp->in_register || vp->home.arena != ARENA_NONE) continue;
            Arena which = v->varying ? ARENA_VARYING : ARENA_FIXED;
            if (vp->sum_into) { /* the sum's buffer, placed at its first term */
                ValuePlan *sp = &p->values[vp->sum_into->id];
                if (sp->home.arena == ARENA_NONE)
                    sp->home =
                        (Storage){which, allocate_interval(&arenas[which], shape_numel(v->shape), s,
                                                           sp->last_use, v)};
                vp->home = sp->home;
                continue;
            }
            vp->home.arena = which;
            vp->home.offset =
                allocate_interval(&arenas[which], shape_numel(v->shape), s, vp->last_use, v);
        }
        place_scratch(p, s, arenas);
    }
}

/* The error for an arena past NNC_MAX_ARENA_ELEMS, at the value that took it there. */
static void report_arena_too_big(const ArenaAlloc *a, bool varying) {
    const Value *v = a->too_big;
    const char *what = varying ? "per sample, for values with a batch axis"
                               : "for parameters and values without a batch axis";
    const char *msg = xprintf("the model needs more than %lld elements of memory %s",
                              (long long)NNC_MAX_ARENA_ELEMS, what);
    if (v->loc.file)
        diag_error(v->loc, "%s (%s, of shape %s, crosses that limit)", msg, ir_value_ref(v),
                   shape_str(v->shape));
    else
        diag_fatal_noloc("%s (%s, of shape %s, crosses that limit)", msg, ir_value_ref(v),
                         shape_str(v->shape));
}

static bool assign_homes(Plan *p) {
    ArenaAlloc arenas[3] = {{0}};
    for (int a = ARENA_FIXED; a <= ARENA_VARYING; a++)
        arenas[a].expire_after =
            xalloc((size_t)(p->n_steps ? p->n_steps : 1) * sizeof *arenas[a].expire_after);
    place_leaves_and_param_buffers(p, arenas);
    place_pinned_roots(p, arenas);
    for (int a = ARENA_FIXED; a <= ARENA_VARYING; a++) arenas[a].high = arenas[a].pinned_end;
    place_intermediates(p, arenas);
    p->fixed_elems = arenas[ARENA_FIXED].high;
    p->varying_elems = arenas[ARENA_VARYING].high;
    for (int a = ARENA_FIXED; a <= ARENA_VARYING; a++)
        if (arenas[a].too_big) {
            report_arena_too_big(&arenas[a], a == ARENA_VARYING);
            return false;
        }
    return true;
}

/* ---- the bindings predict prints ----
 * predict runs the slice of the shared schedule that its output and the bindings need, on
 * the shared layout, where a binding's buffer may be reused by a later step. So predict
 * keeps each binding that is not pinned in a buffer of its own, above everything the
 * shared plan places: the other entry points' code and layout stay exactly as they were,
 * and only predict's arena grows (predict_extra_elems a sample). A binding that reads a
 * target is left out: predict does not read targets; so is every binding of a model without
 * inputs, which has nothing to predict. */

static bool *mark_target_readers(const Graph *g) {
    bool *reads = xalloc((size_t)g->next_id * sizeof *reads);
    for (int i = 0; i < g->insts.n; i++) {
        const Value *v = g->insts.v[i];
        reads[v->id] = v->op == OP_target;
        for (int j = 0; j < v->nargs; j++) reads[v->id] |= reads[v->args[j]->id];
    }
    return reads;
}

static void place_bindings(Plan *p) {
    Graph *g = p->g;
    bool *reads_target = mark_target_readers(g);
    p->binding_homes = xalloc((size_t)(g->bindings.n ? g->bindings.n : 1) * sizeof(Storage));
    if (g->inputs.n == 0 && !g->probe_bindings) return; /* train prints the params */
    for (int i = 0; i < g->bindings.n; i++) {
        Value *v = g->bindings.v[i].v;
        ValuePlan *vp = &p->values[v->id];
        if (reads_target[v->id] && !g->probe_bindings) continue;
        if (vp->pinned && vp->home.arena != ARENA_NONE) {
            p->binding_homes[i] = vp->home;
            continue;
        }
        if (vp->predict_home.arena == ARENA_NONE) {
            int64_t size = align_up(shape_numel(v->shape));
            if (v->varying) {
                vp->predict_home =
                    (Storage){ARENA_VARYING, p->varying_elems + p->predict_extra_elems};
                p->predict_extra_elems += size;
            } else {
                vp->predict_home = (Storage){ARENA_FIXED, p->fixed_elems};
                p->fixed_elems += size;
            }
        }
        p->binding_homes[i] = vp->predict_home;
    }
}

/* ---- when grad() has each gradient ---- */

/* The last step that writes v: its own, or for an accumulated sum its last term's (each
 * term writes into the sum's buffer); -1 when no step does (a leaf, a constant, a view). */
static int *last_writes(const Plan *p) {
    int *last = xalloc((size_t)p->g->next_id * sizeof *last);
    for (int i = 0; i < p->g->next_id; i++) last[i] = -1;
    for (int s = 0; s < p->n_steps; s++)
        for (int m = 0; m < p->steps[s].n_insts; m++) {
            const Value *v = p->steps[s].insts[m];
            const Value *sum = p->values[v->id].sum_into;
            last[v->id] = s;
            if (sum) last[sum->id] = s;
        }
    return last;
}

/* grad()'s hook points (ParamPlan.grad_point): one after each step that finishes a
 * gradient, numbered in the schedule's order. Steps only go forward, so a gradient is
 * final once the last step that writes it is done: nothing else writes a grad buffer. */
static void number_grad_points(Plan *p) {
    int *last = last_writes(p), n_params = p->g->params.n;
    int *ready = xalloc((size_t)(n_params + 1) * sizeof *ready); /* each param's step, or -1 */
    for (int i = 0; i < n_params; i++) {
        const Value *grad = p->params[i].grad;
        ready[i] = grad && !p->values[grad->id].view_of ? last[grad->id] : -1;
        if (ready[i] >= 0) p->steps[ready[i]].grad_point = -1; /* numbered below */
    }
    for (int s = 0; s < p->n_steps; s++)
        if (p->steps[s].grad_point) p->steps[s].grad_point = ++p->n_grad_points;
    for (int i = 0; i < n_params; i++)
        p->params[i].grad_point = ready[i] >= 0 ? p->steps[ready[i]].grad_point : 0;
    /* the params by point, a counting sort */
    int n = p->n_grad_points;
    p->point_first = xalloc((size_t)(n + 2) * sizeof *p->point_first);
    p->point_params = xalloc((size_t)(n_params + 1) * sizeof *p->point_params);
    for (int i = 0; i < n_params; i++) p->point_first[p->params[i].grad_point + 1]++;
    for (int q = 1; q <= n + 1; q++) p->point_first[q] += p->point_first[q - 1];
    int *next = xalloc((size_t)(n + 1) * sizeof *next);
    memcpy(next, p->point_first, (size_t)(n + 1) * sizeof *next);
    for (int i = 0; i < n_params; i++) p->point_params[next[p->params[i].grad_point]++] = i;
}

Plan *plan_build(Graph *g) {
    if (!check_graph(g)) return NULL;
    stack_product_sums(g);
    join_layout_chains(g);
    Plan *p = xalloc(sizeof *p);
    p->g = g;
    p->values = xalloc((size_t)g->next_id * sizeof *p->values);
    p->params = xalloc((size_t)(g->params.n ? g->params.n : 1) * sizeof *p->params);
    for (int i = 0; i < g->params.n; i++) {
        p->params[i].param = g->params.v[i];
        p->params[i].grad = grad_of_param(g, i);
    }
    bool *needed = needed_by_any_root(p);
    int *param_of = index_params(g);
    int *readers = count_readers(g, needed);
    choose_fused_updates(p, readers, param_of);
    bool *dropped = xalloc((size_t)g->next_id * sizeof *dropped);
    find_accumulated_sums(p, needed, readers, dropped);
    find_tiling_sums(p);
    find_views(p, needed, dropped);
    int *fused = index_fused_updates(p);
    build_steps(p, schedule_order(p, needed, param_of, fused, dropped), fused);
    mark_accumulating_terms(p);
    pin_roots(p);
    compute_liveness(p);
    if (!assign_homes(p)) return NULL;
    place_bindings(p);
    number_grad_points(p);
    return p;
}

/* ---- printing ---- */

static const char *storage_str(const ValuePlan *vp) {
    if (vp->in_register) return "register";
    switch (vp->home.arena) {
    case ARENA_FIXED: return xprintf("fixed+%lld", (long long)vp->home.offset);
    case ARENA_VARYING: return xprintf("varying+%lld*cap", (long long)vp->home.offset);
    default: return "inline";
    }
}

static const char *step_kind_name(StepKind k) {
    static const char *const names[] = {"loop", "reduce", "row", "matmul", "layout", "window"};
    return names[k];
}

void plan_print(const Plan *p, FILE *out) {
    const Graph *g = p->g;
    fprintf(out, "plan: fixed %lld elements, varying %lld elements per sample\n",
            (long long)p->fixed_elems, (long long)p->varying_elems);
    const ValueList *const leaf_lists[] = {&g->inputs, &g->targets, &g->params, &g->states};
    for (int l = 0; l < 4; l++)
        for (int i = 0; i < leaf_lists[l]->n; i++) {
            Value *v = leaf_lists[l]->v[i];
            fprintf(out, "  %-16s %-8s %s\n", ir_value_ref(v), shape_str(v->shape),
                    storage_str(plan_value(p, v)));
        }
    for (int i = 0; i < g->insts.n; i++) {
        const Value *v = g->insts.v[i];
        const ValuePlan *vp = plan_value(p, v);
        if (vp->view_of)
            fprintf(out, "  view %-11s %-8s in %s at +%lld, read in place\n", ir_value_ref(v),
                    shape_str(v->shape), ir_value_ref(vp->view_of), (long long)vp->view_offset);
    }
    for (int i = 0; i < g->params.n; i++) {
        const ParamPlan *pp = &p->params[i];
        if (!pp->grad) continue;
        fprintf(out, "  grad %-11s fixed+%lld%s, velocity fixed+%lld%s\n", ir_value_ref(pp->param),
                (long long)pp->grad_offset, pp->grad_in_place ? " (in place)" : "",
                (long long)pp->velocity_offset,
                !pp->fused_update                ? ""
                : pp->grad->op == OP_scatter_add ? ", updated inside its scatter_add"
                                                 : ", updated inside its GEMM");
    }
    for (int i = 0; i < p->n_packs; i++) {
        const PackedOperand *po = &p->packs[i];
        fprintf(out, "  packed %-9s %s[%lld, %lld] fixed+%lld\n", ir_value_ref(po->b),
                po->tb ? "transposed " : "", (long long)po->k, (long long)po->n,
                (long long)po->offset);
    }
    for (int s = 0; s < p->n_steps; s++) {
        const Step *st = &p->steps[s];
        for (int m = 0; m < st->n_insts; m++) {
            const Value *v = st->insts[m];
            const ValuePlan *vp = plan_value(p, v);
            fprintf(out, "  %-6s %-6s %-16s %-10s %-8s %-22s %s%s%s\n", m ? "" : xprintf("#%d", s),
                    m ? "" : step_kind_name(st->kind), ir_value_ref(v), op_info[v->op].name,
                    shape_str(v->shape), storage_str(vp),
                    vp->pinned ? "pinned" : xprintf("read until #%d", vp->last_use),
                    !vp->sum_into ? ""
                    : vp->tiles   ? xprintf(", writes its part of %s", ir_value_ref(vp->sum_into))
                    : vp->accumulate ? xprintf(", adds to the sum %s", ir_value_ref(vp->sum_into))
                                     : xprintf(", starts the sum %s", ir_value_ref(vp->sum_into)),
                    st->pack < 0
                        ? ""
                        : xprintf(", reads %s packed", ir_value_ref(p->packs[st->pack].b)));
        }
    }
}
