/* layout_chains.c: chains of layout copies joined, right after stack_product_sums in
 * plan_build. Like it, a back-end rewrite: --emit=grad and explain, which read the graph
 * before, show the concats and slices as lower.c and autodiff made them, --emit=plan what
 * runs (docs/codegen.md, "Trees of concats and chains of slices").
 *
 * A scan's stack of states, [T, n] a sample, is a balanced tree of binary concats of its
 * rows (lower.c: concat takes two operands), and its gradient the mirror tree of slices:
 * each level copies the whole stack once more, log2(T) + 1 copies each way (W6: 7 passes
 * over [64, 256] forward and 7 backward a step). Joined, each row is copied once:
 *   - a slice of a slice is one slice of the first one's operand;
 *   - a tree of concats (each inner one read by its parent only) is a sum of scatters, one
 *     per leaf, into its box of the whole: boxes that tile the whole, which the plan stores
 *     straight into the sum's one buffer with no zero fill and no adds (plan.c, "sums that
 *     accumulate" and find_tiling_sums). */
#include "plan.h"

#include <string.h>

/* ---- a slice of a slice ---- */

/* A slice of a slice that drops no axis: l (on the inner slice's result) as a slice of the
 * inner one's operand. */
static const Layout *composed(const Layout *inner, const Layout *l) {
    Layout *c = xalloc(sizeof *c);
    *c = *l;
    c->whole = inner->whole;
    for (int k = 0; k < inner->whole.rank; k++) {
        c->start[k] = inner->start[k] + inner->step[k] * l->start[k];
        c->step[k] = inner->step[k] * l->step[k];
    }
    return c;
}

static bool drops_no_axis(const Layout *l) {
    for (int k = 0; k < l->whole.rank; k++)
        if (l->drop[k]) return false;
    return true;
}

static bool plain_slice(const Value *v) {
    return v->op == OP_slice && !v->custom && v->layout;
}

/* In order, so that a chain collapses whole: the inner slice has been joined already. An
 * inner slice no one else reads is left to dead code (plan_mark_needed). */
static int join_slices(Graph *g) {
    int joined = 0;
    for (int i = 0; i < g->insts.n; i++) {
        Value *v = g->insts.v[i], *x = v->nargs ? v->args[0] : NULL;
        if (!plain_slice(v) || !plain_slice(x) || !drops_no_axis(x->layout)) continue;
        v->layout = composed(x->layout, v->layout);
        v->args[0] = x->args[0];
        joined++;
    }
    return joined;
}

/* ---- a tree of concats ---- */

static int concat_axis(const Value *v) {
    int axis = (int)v->opt[0];
    return axis < 0 ? axis + v->shape.rank : axis;
}

/* A concat inside the tree under root: along root's axis, read by its parent only, no
 * binding predict prints, and its batch axis root's. */
static bool inner_concat(const Value *v, const Value *root, const bool *bound) {
    return v->op == OP_concat && !v->custom && v->uses == 1 && !bound[v->id] &&
           v->varying == root->varying && v->shape.rank == root->shape.rank &&
           concat_axis(v) == concat_axis(root);
}

/* The leaves of the tree under root, left to right; marks its inner concats in inner[]. */
static void concat_leaves(Value *root, ValueList *leaves, bool *inner, const bool *bound) {
    ValueList stack = {0};
    vec_push(&stack, root);
    while (stack.n) {
        Value *v = stack.v[--stack.n];
        if (v == root || inner_concat(v, root, bound)) {
            inner[v->id] = true;
            vec_push(&stack, v->args[1]);
            vec_push(&stack, v->args[0]);
            continue;
        }
        vec_push(leaves, v);
    }
}

/* Leaf x's box in the whole: from `at` along axis, every other axis whole. */
static const Layout *box_layout(Shape whole, int axis, int64_t at, const Value *x) {
    Layout *l = xalloc(sizeof *l);
    l->whole = whole;
    for (int k = 0; k < whole.rank; k++) {
        l->step[k] = 1;
        l->count[k] = x->shape.dim[k];
    }
    l->start[axis] = at;
    return l;
}

static Value *made(Graph *g, ValueList *made_before, Value *v, const Value *like) {
    g->insts.n--; /* the builder appended it; it goes before the root instead */
    vec_push(made_before, v);
    v->backward = like->backward;
    v->from = like->from;
    v->rule = "a box of the joined concats";
    v->loc = like->loc;
    v->what = like->what;
    v->site = like->site;
    v->scan = like->scan;
    v->scan_step = like->scan_step;
    return v;
}

/* Rewrites root, the top of a tree of two or more concats whose leaves all have its batch
 * axis, into the sum of their boxes; false when it is no such tree. */
static bool scatter_tree(Graph *g, Value *root, bool *inner, const bool *bound,
                         ValueList *made_before) {
    ValueList leaves = {0};
    concat_leaves(root, &leaves, inner, bound);
    if (leaves.n < 3) return false; /* one concat: it copies each part once already */
    for (int i = 0; i < leaves.n; i++)
        if (leaves.v[i]->varying != root->varying) return false;
    int axis = concat_axis(root);
    Value *sum = NULL, *box = NULL;
    int64_t at = 0;
    for (int i = 0; i < leaves.n; i++) {
        Value *x = leaves.v[i];
        box =
            made(g, made_before,
                 ir_layout(g, OP_scatter, 1, &x, box_layout(root->shape, axis, at, x), NULL), root);
        at += x->shape.dim[axis];
        if (i == leaves.n - 1) break; /* the root adds the last box */
        sum = sum ? made(g, made_before, ir_build2(g, OP_add, sum, box), root) : box;
    }
    root->op = OP_add;
    root->args[0] = sum;
    root->args[1] = box;
    root->rule = "a tree of concats as the sum of its parts' boxes";
    return true;
}

static int scatter_concat_trees(Graph *g) {
    int n_ids = g->next_id, rewritten = 0;
    ir_count_uses(g);
    bool *bound = xalloc(sizeof *bound * (size_t)n_ids);
    for (int i = 0; i < g->bindings.n; i++) bound[g->bindings.v[i].v->id] = true;
    bool *inner = xalloc(sizeof *inner * (size_t)n_ids);
    ValueList *made_before = xalloc(sizeof *made_before * (size_t)n_ids);
    for (int i = g->insts.n - 1; i >= 0; i--) { /* the last first: a tree from its top */
        Value *root = g->insts.v[i];
        if (root->id >= n_ids || inner[root->id] || root->op != OP_concat || root->custom ||
            bound[root->id]) /* predict keeps a binding: a sum would be a buffer more */
            continue;
        if (scatter_tree(g, root, inner, bound, &made_before[root->id])) rewritten++;
    }
    if (rewritten) insert_made_before(g, made_before);
    ir_count_uses(g);
    return rewritten;
}

int join_layout_chains(Graph *g) {
    int joined = join_slices(g);
    return joined + scatter_concat_trees(g);
}
