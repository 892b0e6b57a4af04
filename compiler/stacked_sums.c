/* stacked_sums.c: a sum of batch-summed products, one a step, becomes one product of stacks.
 * The first thing plan_build does: --emit=grad and explain, which read the graph before,
 * show the sum over the steps as autodiff derived it, and --emit=plan the stacks.
 *
 * The gradient of a weight that the T steps of a scan share (`Wh` of an LSTM, `a_t = u_t +
 * h_(t-1) @ Wh`) is, as autodiff derives it, T products summed over the batch and added:
 *
 *     dWh = sum_t h_(t-1)^T g_t        (outer products [n] x [m], each summed over B samples)
 *
 * T GEMMs with an inner dimension of B. The same sum is one product of two stacks, row r of
 * each holding one term's operands: H [T, n] and G [T, m] per sample, dWh = H^T G summed over
 * the batch, one GEMM with an inner dimension of B*T (docs/codegen.md, "Sums over the steps:
 * one product of stacks"). A stack is itself a sum of scatters, one row each, which the plan
 * accumulates in place (plan.c, "sums that accumulate"): copying the rows costs far less than
 * the products it saves. When the g_t already lie in such a stack (an LSTM's g_t is also the
 * gradient of the projected input's row t, and that gradient is the stack of them), the
 * product reads that stack and only the h_(t-1) are copied.
 *
 * A term whose operand is known to be zero (step 0's product with a zero start state) is
 * dropped: it adds nothing. */
#include "plan.h"

#include <string.h>

/* ---- what a term is ---- */

/* A value known to be all zeros: the constant 0, or a broadcast, slice or reshape of one. */
static bool is_zero(const Value *v) {
    for (int depth = 0; depth < 8; depth++) {
        if (v->op == OP_const) return v->num == 0;
        if (v->custom || (v->op != OP_broadcast && v->op != OP_slice && v->op != OP_reshape))
            return false;
        v = v->args[0];
    }
    return false;
}

/* outer(a, g) summed over the batch, a [n] and g [m] both per sample, that the derivative
 * of a product in a scan's step made. Sums outside scans (a weight shared by two layers)
 * have few terms and keep their code: they accumulate as they did (plan.c). */
static bool stackable_term(const Value *v) {
    if (v->op != OP_matmul || v->custom || !v->ta || v->tb || !v->sum_batch) return false;
    if (!v->from || !v->from->scan) return false;
    const Value *a = v->args[0], *b = v->args[1];
    return a->varying && b->varying && a->shape.rank == 1 && b->shape.rank == 1;
}

static bool zero_term(const Value *v) {
    return v->op == OP_matmul && !v->custom && (is_zero(v->args[0]) || is_zero(v->args[1]));
}

static bool same_space(const Value *a, const Value *b) {
    return a->varying == b->varying && shape_eq(a->shape, b->shape);
}

/* An add that can be inside a tree of sum: its own operands have its shape. */
static bool sum_node(const Value *v) {
    return v->op == OP_add && !v->custom && v->nargs == 2 && same_space(v, v->args[0]) &&
           same_space(v, v->args[1]);
}

/* The leaves of the tree of adds under root (an inner add belongs to the tree when the tree
 * is its only reader and it is no binding predict prints), left to right. Marks the inner
 * adds in inner[]. */
static void tree_leaves(Value *root, ValueList *leaves, bool *inner, const bool *bound) {
    ValueList stack = {0};
    leaves->n = 0;
    vec_push(&stack, root);
    while (stack.n) {
        Value *v = stack.v[--stack.n];
        if (sum_node(v) && (v == root || (v->uses == 1 && !bound[v->id]))) {
            inner[v->id] = true;
            vec_push(&stack, v->args[1]);
            vec_push(&stack, v->args[0]);
            continue;
        }
        vec_push(leaves, v);
    }
}

/* ---- stacks: sums of scatters, one row each ---- */

/* A scatter of a vector [m] into row r of zeros [R, m]. */
static bool row_scatter(const Value *v) {
    if (v->op != OP_scatter || v->custom || !v->layout || v->shape.rank != 2) return false;
    const Layout *l = v->layout;
    return v->args[0]->shape.rank == 1 && l->drop[0] && l->count[0] == 1 && !l->drop[1] &&
           l->start[1] == 0 && l->step[1] == 1 && l->count[1] == v->shape.dim[1];
}

static const Layout *row_layout(Shape whole, int64_t row) {
    Layout *l = xalloc(sizeof *l);
    l->whole = whole;
    l->start[0] = row;
    l->step[0] = l->step[1] = 1;
    l->count[0] = 1;
    l->count[1] = whole.dim[1];
    l->drop[0] = true;
    return l;
}

/* What one rewrite makes, for the printers: each new line belongs to its term's step. */
typedef struct Rewrite {
    Graph *g;
    ValueList made;    /* the new instructions, in order: they go just before the root */
    const Value *term; /* the term whose operand is being stacked */
} Rewrite;

static Value *made(Rewrite *w, Value *v, const char *rule) {
    w->g->insts.n--; /* the builder appended it; it goes before the root instead */
    vec_push(&w->made, v);
    v->backward = true;
    v->from = w->term->from;
    v->rule = rule;
    v->loc = w->term->loc;
    v->what = w->term->what;
    v->site = w->term->site;
    v->scan = w->term->scan;
    v->scan_step = w->term->scan_step;
    return v;
}

/* Stacks operand `which` of the terms: row rows[k] of the result is terms[k]'s operand. */
static Value *stack_operand(Rewrite *w, const ValueList *terms, const int64_t *rows, int64_t R,
                            int which) {
    Value *sum = NULL;
    for (int k = 0; k < terms->n; k++) {
        w->term = terms->v[k];
        Value *x = terms->v[k]->args[which];
        Shape whole = shape_make(2, (int64_t[]){R, x->shape.dim[0]});
        Value *row = made(w, ir_layout(w->g, OP_scatter, 1, &x, row_layout(whole, rows[k]), NULL),
                          "a row of the stack of the summed products' operands");
        sum = sum ? made(w, ir_build2(w->g, OP_add, sum, row), "the stack, a row at a time") : row;
    }
    return sum;
}

/* Where values are read and placed: the graph as it was before any rewrite. */
typedef struct Index {
    const Value **reader;     /* by id: the last reader (the only one when uses == 1) */
    const Value **scatter_of; /* by id of a vector: the last scatter of it into a row */
    bool *bound;              /* by id: a binding predict prints (it must stay computed) */
    int *pos;                 /* by id: the place in g->insts */
    const Value *root;        /* the sum being rewritten */
} Index;

/* The stack the terms' second operands already lie in, if there is one: a sum of row
 * scatters into [R, m] holding each term's g in a row of its own, nothing else in those
 * rows. Its other rows may hold anything: the first stack is zero there. rows[k] is then
 * terms[k]'s row; *R the stack's rows. */
static Value *existing_stack(Graph *g, const ValueList *terms, const Index *ix, int64_t *rows,
                             int64_t *R) {
    const Value *s = ix->scatter_of[terms->v[0]->args[1]->id];
    if (!s) return NULL;
    Value *top = (Value *)s;
    while (top->uses == 1 && ix->reader[top->id] && sum_node(ix->reader[top->id]) &&
           same_space(ix->reader[top->id], top))
        top = (Value *)ix->reader[top->id];
    if (ix->pos[top->id] >= ix->pos[ix->root->id]) return NULL; /* computed after the root */
    ValueList leaves = {0};
    bool *inner = xalloc(sizeof *inner * (size_t)g->next_id);
    tree_leaves(top, &leaves, inner, ix->bound);
    *R = top->shape.dim[0];
    int64_t *row_of = xalloc(sizeof *row_of * (size_t)g->next_id); /* 1 + row, by g's id */
    bool *taken = xalloc(sizeof *taken * (size_t)*R);
    for (int i = 0; i < leaves.n; i++) {
        const Value *l = leaves.v[i];
        if (!row_scatter(l) || l->uses != 1 || !same_space(l, top)) return NULL;
        int64_t r = l->layout->start[0];
        if (taken[r]) return NULL;
        taken[r] = true;
        row_of[l->args[0]->id] = 1 + r;
    }
    memset(taken, 0, sizeof *taken * (size_t)*R);
    for (int k = 0; k < terms->n; k++) {
        int64_t r = row_of[terms->v[k]->args[1]->id] - 1;
        if (r < 0 || taken[r]) return NULL;
        taken[r] = true;
        rows[k] = r;
    }
    return top;
}

/* "sum over uses #54, #33 (#12 is 0) as one product". */
static const char *rewrite_rule(const ValueList *leaves) {
    StrBuf s = {0};
    sb_puts(&s, "sum over uses");
    for (int i = 0; i < leaves->n; i++) {
        const Value *t = leaves->v[i];
        sb_printf(&s, "%s", i ? ", " : " ");
        if (t->from)
            sb_printf(&s, "#%d", t->from->id);
        else
            sb_puts(&s, ir_value_ref(t));
        if (zero_term(t)) sb_puts(&s, " (0)");
    }
    sb_puts(&s, ", as one product of the stacks of their operands (row r: one use)");
    return sb_str(&s);
}

/* Rewrites root, the top of a tree of adds whose leaves are stackable terms of one shape
 * (two or more) and zero terms, into one product of stacks. False when it is not such a
 * tree. The new instructions are in w->made. */
static bool stack_tree(Rewrite *w, Value *root, Index *ix, bool *inner) {
    Graph *g = w->g;
    ValueList leaves = {0}, terms = {0};
    tree_leaves(root, &leaves, inner, ix->bound);
    for (int i = 0; i < leaves.n; i++) {
        Value *t = leaves.v[i];
        if (t->uses != 1 || ix->bound[t->id]) return false;
        if (zero_term(t)) continue;
        if (!stackable_term(t) || (terms.n && !same_space(t->args[0], terms.v[0]->args[0])) ||
            (terms.n && !same_space(t->args[1], terms.v[0]->args[1])))
            return false;
        vec_push(&terms, t);
    }
    if (terms.n < 2 || !same_space(root, terms.v[0])) return false;
    int64_t *rows = xalloc(sizeof *rows * (size_t)terms.n), R = terms.n;
    ix->root = root;
    Value *gs = existing_stack(g, &terms, ix, rows, &R);
    if (!gs) {
        R = terms.n;
        for (int k = 0; k < terms.n; k++) rows[k] = k;
        gs = stack_operand(w, &terms, rows, R, 1);
    }
    Value *as = stack_operand(w, &terms, rows, R, 0);
    root->op = OP_matmul;
    root->args[0] = as;
    root->args[1] = gs;
    root->ta = true;
    root->tb = false;
    root->sum_batch = true;
    root->rule = rewrite_rule(&leaves);
    root->fanout = 0;
    return true;
}

static Index index_graph(const Graph *g) {
    size_t n = (size_t)g->next_id;
    Index ix = {.reader = xalloc(sizeof *ix.reader * n),
                .scatter_of = xalloc(sizeof *ix.scatter_of * n),
                .pos = xalloc(sizeof *ix.pos * n),
                .bound = xalloc(sizeof *ix.bound * n)};
    for (int i = 0; i < g->bindings.n; i++) ix.bound[g->bindings.v[i].v->id] = true;
    for (int i = 0; i < g->insts.n; i++) {
        const Value *v = g->insts.v[i];
        ix.pos[v->id] = i;
        for (int j = 0; j < v->nargs; j++) ix.reader[v->args[j]->id] = v;
        if (row_scatter(v)) ix.scatter_of[v->args[0]->id] = v;
    }
    return ix;
}

void insert_made_before(Graph *g, ValueList *made_before) {
    ValueList order = {0};
    int n_forward = g->n_forward;
    for (int i = 0; i < g->insts.n; i++) {
        Value *v = g->insts.v[i];
        ValueList *m = &made_before[v->id];
        for (int k = 0; k < m->n; k++) vec_push(&order, m->v[k]);
        if (i < g->n_forward) n_forward += m->n;
        vec_push(&order, v);
    }
    g->insts = order;
    g->n_forward = n_forward;
}

int stack_product_sums(Graph *g) {
    int n_ids = g->next_id, rewritten = 0;
    ir_count_uses(g);
    Index ix = index_graph(g);
    bool *inner = xalloc(sizeof *inner * (size_t)n_ids);
    ValueList *made_before = xalloc(sizeof *made_before * (size_t)n_ids);
    for (int i = g->insts.n - 1; i >= 0; i--) {
        Value *root = g->insts.v[i];
        if (root->id >= n_ids || inner[root->id] || !sum_node(root)) continue;
        Rewrite w = {.g = g};
        if (!stack_tree(&w, root, &ix, inner)) continue;
        made_before[root->id] = w.made;
        rewritten++;
    }
    if (rewritten) insert_made_before(g, made_before);
    return rewritten;
}
