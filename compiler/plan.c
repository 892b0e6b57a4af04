/* plan.c: the schedule (steps in order), elementwise fusion, the fused SGD decision and the
 * static memory plan. See plan.h for what each field means and docs/codegen.md for why. */
#include "plan.h"

#include <stdlib.h>

/* Every buffer starts on a multiple of 16 elements: 64 bytes for float, so BLAS and the
 * vector loops see aligned rows (the runtime aligns both arenas to 64 bytes). */
#define ALIGN_ELEMS 16

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
 * A parameter whose whole gradient is one batch-summing matmul that nothing else reads is
 * updated by that GEMM in sgd_step (C = param, beta = 1, alpha = -lr), so the gradient of a
 * weight matrix is never stored nor read back. The GEMM must not read the parameter itself
 * (C would alias an operand), and the parameter must not be read after its update: not as
 * a root, not as another parameter's gradient, not by another fused GEMM (those run late). */

static bool reads(const Value *v, const Value *operand) {
    for (int i = 0; i < v->nargs; i++)
        if (v->args[i] == operand) return true;
    return false;
}

static void choose_fused_updates(Plan *p, const int *readers) {
    Graph *g = p->g;
    int *grad_roots = xalloc((size_t)g->next_id * sizeof *grad_roots);
    for (int i = 0; i < g->params.n; i++)
        if (grad_of_param(g, i)) grad_roots[grad_of_param(g, i)->id]++;
    for (int i = 0; i < g->params.n; i++) {
        Value *param = g->params.v[i], *gr = p->params[i].grad;
        p->params[i].fused_update = gr && gr->op == OP_matmul && gr->sum_batch &&
                                    readers[gr->id] == 0 && grad_roots[gr->id] == 1 &&
                                    !is_root_of_graph(g, gr) && !reads(gr, param) &&
                                    grad_roots[param->id] == 0 && !is_root_of_graph(g, param);
    }
    for (int i = 0; i < g->params.n; i++) {
        if (!p->params[i].fused_update) continue;
        for (int j = 0; j < g->params.n; j++)
            if (p->params[j].fused_update && reads(p->params[i].grad, g->params.v[j]))
                p->params[j].fused_update = false;
    }
}

/* ---- the schedule ----
 * First every instruction that depends on parameters and constants only (a broadcast bias,
 * a weight penalty): computed once up front, they never split a chain of per-sample
 * elementwise instructions into two loops. Then the rest of g->insts in order. Dead code
 * and leaves are left out. A fused-update GEMM then moves to just after the last
 * instruction that reads its parameter (dX = dY W^T reads W, and the autodiff may have
 * emitted dW first). The same order serves every entry point. */

static ValueList base_order(Plan *p, const bool *needed) {
    Graph *g = p->g;
    bool *per_batch = xalloc((size_t)g->next_id * sizeof *per_batch);
    ValueList hoisted = {0}, rest = {0};
    for (int i = 0; i < g->insts.n; i++) {
        Value *v = g->insts.v[i];
        per_batch[v->id] = v->varying || v->op == OP_inv_batch;
        for (int j = 0; j < v->nargs; j++) per_batch[v->id] |= per_batch[v->args[j]->id];
        if (!needed[v->id] || is_leaf(v)) continue;
        vec_push(per_batch[v->id] ? &rest : &hoisted, v);
    }
    for (int i = 0; i < rest.n; i++) vec_push(&hoisted, rest.v[i]);
    return hoisted;
}

static ValueList schedule_order(Plan *p, const bool *needed) {
    ValueList base = base_order(p, needed);
    int n_params = p->g->params.n;
    int *last_reader = xalloc((size_t)(n_params ? n_params : 1) * sizeof *last_reader);
    for (int k = 0; k < n_params; k++) last_reader[k] = -1;
    for (int i = 0; i < base.n; i++)
        for (int k = 0; k < n_params; k++) {
            const ParamPlan *pp = &p->params[k];
            if (pp->fused_update && (base.v[i] == pp->grad || reads(base.v[i], pp->param)))
                last_reader[k] = i;
        }
    ValueList order = {0};
    for (int i = 0; i < base.n; i++) {
        Value *v = base.v[i];
        bool deferred = false;
        for (int k = 0; k < n_params; k++)
            if (p->params[k].fused_update && p->params[k].grad == v && last_reader[k] > i)
                deferred = true;
        if (!deferred) vec_push(&order, v);
        for (int k = 0; k < n_params; k++)
            if (p->params[k].fused_update && last_reader[k] == i && p->params[k].grad != v)
                vec_push(&order, p->params[k].grad);
    }
    return order;
}

static StepKind step_kind_of(const Value *v) {
    switch (op_info[v->op].cls) {
    case OPC_EW: return STEP_EW_LOOP;
    case OPC_REDUCE: return STEP_REDUCE;
    case OPC_ROW: return STEP_ROW;
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
 * of 6 and 4 that no one inner loop serves. */
static bool joins_loop(const Step *prev, const Value *v) {
    if (!prev || prev->kind != STEP_EW_LOOP || op_info[v->op].cls != OPC_EW) return false;
    const Value *first = prev->insts[0];
    return first->varying == v->varying &&
           shape_eq(without_leading_ones(first->shape), without_leading_ones(v->shape));
}

static int fused_param_of(const Plan *p, const Value *v) {
    for (int k = 0; k < p->g->params.n; k++)
        if (p->params[k].fused_update && p->params[k].grad == v) return k;
    return -1;
}

static void build_steps(Plan *p, ValueList order) {
    p->steps = xalloc((size_t)(order.n ? order.n : 1) * sizeof *p->steps);
    for (int i = 0; i < order.n; i++) {
        Value *v = order.v[i];
        Step *prev = p->n_steps ? &p->steps[p->n_steps - 1] : NULL;
        if (joins_loop(prev, v)) {
            prev->insts[prev->n_insts++] = v;
            continue;
        }
        Step *s = &p->steps[p->n_steps++];
        s->kind = step_kind_of(v);
        s->insts = xalloc((size_t)(order.n - i) * sizeof *s->insts);
        s->insts[s->n_insts++] = v;
        s->update_param = s->kind == STEP_MATMUL ? fused_param_of(p, v) : -1;
    }
}

/* ---- liveness ---- */

static void pin_roots(Plan *p) {
    Graph *g = p->g;
    p->values[g->loss->id].pinned = true;
    if (g->output) p->values[g->output->id].pinned = true;
    for (int i = 0; i < g->params.n; i++)
        if (p->params[i].grad) p->values[p->params[i].grad->id].pinned = true;
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
                ValuePlan *ap = &p->values[v->args[j]->id];
                if (s > ap->last_use) ap->last_use = s;
                if (ap->step != s) read_elsewhere[v->args[j]->id] = true;
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
}

/* ---- homes ---- */

typedef struct Live {
    int64_t offset, size;
    int last_use;
} Live;

/* One arena: a pinned region grown by bumping, then buffers reused by liveness above it. */
typedef struct ArenaAlloc {
    int64_t pinned_end, high;
    VEC(Live) live; /* sorted by offset */
} ArenaAlloc;

static int64_t bump(ArenaAlloc *a, int64_t numel) {
    int64_t offset = a->pinned_end;
    a->pinned_end += align_up(numel);
    return offset;
}

static void expire(ArenaAlloc *a, int step) {
    int kept = 0;
    for (int i = 0; i < a->live.n; i++)
        if (a->live.v[i].last_use >= step) a->live.v[kept++] = a->live.v[i];
    a->live.n = kept;
}

/* First fit among the buffers still live: the lowest offset where size elements fit. */
static int64_t allocate_interval(ArenaAlloc *a, int64_t numel, int def_step, int last_use) {
    expire(a, def_step);
    int64_t size = align_up(numel), offset = a->pinned_end;
    int at = 0;
    for (; at < a->live.n; at++) {
        if (offset + size <= a->live.v[at].offset) break;
        int64_t end = a->live.v[at].offset + a->live.v[at].size;
        if (end > offset) offset = end;
    }
    vec_push(&a->live, ((Live){0}));
    for (int i = a->live.n - 1; i > at; i--) a->live.v[i] = a->live.v[i - 1];
    a->live.v[at] = (Live){offset, size, last_use};
    if (offset + size > a->high) a->high = offset + size;
    return offset;
}

static Storage home_in(ArenaAlloc *arenas, bool varying, int64_t numel) {
    Arena which = varying ? ARENA_VARYING : ARENA_FIXED;
    return (Storage){which, bump(&arenas[which], numel)};
}

/* Inputs, targets, parameters and their gradient and velocity buffers, at fixed places. */
static void place_leaves_and_param_buffers(Plan *p, ArenaAlloc *arenas) {
    Graph *g = p->g;
    ValueList *leaf_lists[] = {&g->inputs, &g->targets, &g->params};
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < leaf_lists[l]->n; i++) {
            Value *v = leaf_lists[l]->v[i];
            p->values[v->id].home = home_in(arenas, v->varying, shape_numel(v->shape));
            p->values[v->id].pinned = true;
        }
    for (int i = 0; i < g->params.n; i++) {
        ParamPlan *pp = &p->params[i];
        pp->grad_offset = pp->velocity_offset = -1;
        if (!pp->grad) continue;
        int64_t numel = shape_numel(pp->param->shape);
        pp->grad_offset = bump(&arenas[ARENA_FIXED], numel);
        pp->velocity_offset = bump(&arenas[ARENA_FIXED], numel);
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
            p->values[v->id].home = home_in(arenas, v->varying, shape_numel(v->shape));
    }
    for (int i = 0; i < g->params.n; i++) {
        Value *v = p->params[i].grad;
        if (v && !is_leaf(v) && p->values[v->id].home.arena == ARENA_NONE)
            p->values[v->id].home = home_in(arenas, false, shape_numel(v->shape));
    }
}

static void place_intermediates(Plan *p, ArenaAlloc *arenas) {
    for (int s = 0; s < p->n_steps; s++)
        for (int m = 0; m < p->steps[s].n_insts; m++) {
            Value *v = p->steps[s].insts[m];
            ValuePlan *vp = &p->values[v->id];
            if (vp->in_register || vp->home.arena != ARENA_NONE) continue;
            Arena which = v->varying ? ARENA_VARYING : ARENA_FIXED;
            vp->home.arena = which;
            vp->home.offset =
                allocate_interval(&arenas[which], shape_numel(v->shape), s, vp->last_use);
        }
}

static void assign_homes(Plan *p) {
    ArenaAlloc arenas[3] = {{0}};
    place_leaves_and_param_buffers(p, arenas);
    place_pinned_roots(p, arenas);
    for (int a = ARENA_FIXED; a <= ARENA_VARYING; a++) arenas[a].high = arenas[a].pinned_end;
    place_intermediates(p, arenas);
    p->fixed_elems = arenas[ARENA_FIXED].high;
    p->varying_elems = arenas[ARENA_VARYING].high;
}

Plan *plan_build(Graph *g) {
    if (!check_graph(g)) return NULL;
    Plan *p = xalloc(sizeof *p);
    p->g = g;
    p->values = xalloc((size_t)g->next_id * sizeof *p->values);
    p->params = xalloc((size_t)(g->params.n ? g->params.n : 1) * sizeof *p->params);
    for (int i = 0; i < g->params.n; i++) {
        p->params[i].param = g->params.v[i];
        p->params[i].grad = grad_of_param(g, i);
    }
    bool *needed = needed_by_any_root(p);
    choose_fused_updates(p, count_readers(g, needed));
    build_steps(p, schedule_order(p, needed));
    pin_roots(p);
    compute_liveness(p);
    assign_homes(p);
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
    static const char *const names[] = {"loop", "reduce", "row", "matmul"};
    return names[k];
}

void plan_print(const Plan *p, FILE *out) {
    const Graph *g = p->g;
    fprintf(out, "plan: fixed %lld elements, varying %lld elements per sample\n",
            (long long)p->fixed_elems, (long long)p->varying_elems);
    const ValueList *const leaf_lists[] = {&g->inputs, &g->targets, &g->params};
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < leaf_lists[l]->n; i++) {
            Value *v = leaf_lists[l]->v[i];
            fprintf(out, "  %-16s %-8s %s\n", ir_value_ref(v), shape_str(v->shape),
                    storage_str(plan_value(p, v)));
        }
    for (int i = 0; i < g->params.n; i++) {
        const ParamPlan *pp = &p->params[i];
        if (!pp->grad) continue;
        fprintf(out, "  grad %-11s fixed+%lld%s, velocity fixed+%lld%s\n", ir_value_ref(pp->param),
                (long long)pp->grad_offset, pp->grad_in_place ? " (in place)" : "",
                (long long)pp->velocity_offset,
                pp->fused_update ? ", updated inside its GEMM" : "");
    }
    for (int s = 0; s < p->n_steps; s++) {
        const Step *st = &p->steps[s];
        for (int m = 0; m < st->n_insts; m++) {
            const Value *v = st->insts[m];
            const ValuePlan *vp = plan_value(p, v);
            fprintf(out, "  %-6s %-6s %-16s %-10s %-8s %-22s %s\n", m ? "" : xprintf("#%d", s),
                    m ? "" : step_kind_name(st->kind), ir_value_ref(v), op_info[v->op].name,
                    shape_str(v->shape), storage_str(vp),
                    vp->pinned ? "pinned" : xprintf("read until #%d", vp->last_use));
        }
    }
}
