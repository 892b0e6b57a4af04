/* simplify.c: make the derived IR read like a hand derivation, and cost less.
 *
 * One forward walk rewrites each instruction's operands through the replacements found so
 * far, then tries, in order: constant folding, algebraic identities (x*1, x+0, x-0, x/1,
 * x^1, --x, a broadcast or sum_to that changes nothing, a where whose choice is known, a
 * matrix transposed twice), a transposed matrix read by a product through its flags, and
 * common-subexpression elimination. A last walk drops what no root (loss, output, gradients,
 * state updates) needs. Leaves that the binary exposes (inputs, targets, params, states)
 * always stay. */
#include "stages.h"

#include <math.h>
#include <string.h>

typedef struct Simplifier {
    Graph *g;
    Value **repl;     /* by id: what the value was replaced by, or NULL */
    HashMap table;    /* CSE: instruction -> the first one like it */
    const char **why; /* by id: the rule that replaced or rewrote it (--emit=grad-diff) */
} Simplifier;

static Value *resolve(Simplifier *s, Value *v) {
    while (s->repl[v->id]) v = s->repl[v->id];
    return v;
}

static bool is_const(const Value *v, double x) {
    return v->op == OP_const && v->num == x;
}

/* x op c == x, when that keeps x's shape and batch axis. */
static bool same_type(const Value *v, const Value *x) {
    return x->varying == v->varying && shape_eq(x->shape, v->shape);
}

/* where(c, x, x) is x; where(c, a, b) with a constant c is a or b. */
static Value *where_identity(Value *v, const char **why) {
    Value *c = v->args[0], *a = v->args[1], *b = v->args[2];
    Value *chosen = a == b ? a : c->op == OP_const ? (c->num <= 0 ? b : a) : NULL;
    *why = a == b ? "where(c, x, x) = x" : "a where whose condition is a constant";
    return chosen && same_type(v, chosen) ? chosen : NULL;
}

/* transpose swaps the two axes of a matrix: perm (1, 0). */
static bool swaps_matrix(const Value *t) {
    int perm[MAX_RANK];
    if (t->op != OP_transpose || t->shape.rank != 2 || t->custom) return false;
    ir_permutation(t, perm);
    return perm[0] == 1;
}

/* The operand v equals, and the identity that says so (*why), or NULL. */
static Value *identity_of(Value *v, const char **why) {
    if (v->custom) return NULL; /* its backward rule is attached to this very value */
    Value *a = v->args[0], *b = v->nargs > 1 ? v->args[1] : NULL;
    switch (v->op) {
    case OP_mul:
        *why = "x * 1 = x";
        if (is_const(b, 1) && same_type(v, a)) return a;
        if (is_const(a, 1) && same_type(v, b)) return b;
        return NULL;
    case OP_add:
        *why = "x + 0 = x";
        if (is_const(b, 0) && same_type(v, a)) return a;
        if (is_const(a, 0) && same_type(v, b)) return b;
        return NULL;
    case OP_sub: *why = "x - 0 = x"; return is_const(b, 0) && same_type(v, a) ? a : NULL;
    case OP_div: *why = "x / 1 = x"; return is_const(b, 1) && same_type(v, a) ? a : NULL;
    case OP_pow: *why = "x ^ 1 = x"; return is_const(b, 1) && same_type(v, a) ? a : NULL;
    case OP_neg: *why = "-(-x) = x"; return a->op == OP_neg ? a->args[0] : NULL;
    case OP_broadcast:
    case OP_sum_to:
        *why = xprintf("a %s to the shape it has", op_info[v->op].name);
        return same_type(v, a) ? a : NULL;
    case OP_where: return where_identity(v, why);
    case OP_transpose: /* the same swap twice */
        *why = "a matrix transposed twice";
        return a->op == OP_transpose && swaps_matrix(v) && swaps_matrix(a) ? a->args[0] : NULL;
    default: return NULL;
    }
}

/* A matrix product reads a transposed matrix through its flags: x @ transpose(W) is one
 * GEMM with W^T and no copy of W (and the backward's g @ transpose(W)^T one with W). The
 * transpose stays only if something else reads it. */
static void read_transposes_in_place(Simplifier *s, Value *v) {
    if (v->op != OP_matmul || v->custom) return;
    for (int i = 0; i < 2; i++) {
        if (!swaps_matrix(v->args[i])) continue;
        v->args[i] = v->args[i]->args[0];
        bool *flag = i ? &v->tb : &v->ta;
        *flag = !*flag;
        s->why[v->id] = "reads the transposed matrix through its flags (no copy)";
    }
}

/* Folds an elementwise op whose operands are all constants into one, with the scalar
 * semantics of its ops.def row. The result must be one number for every sample: a broadcast
 * of a constant to a shape is not one. */
static Value *fold_constants(Simplifier *s, Value *v) {
    if (!op_info[v->op].scalar || v->custom || v->varying || v->shape.rank != 0) return NULL;
    double x[3] = {0, 0, 0};
    for (int i = 0; i < v->nargs; i++) {
        if (v->args[i]->op != OP_const) return NULL;
        x[i] = v->args[i]->num;
    }
    Value *c = ir_const(s->g, op_info[v->op].scalar(x, v->opt));
    s->g->insts.n--; /* ir_const appended it; it is re-inserted in v's place below */
    return c;
}

/* ---- CSE ---- */

static bool same_inst(const Value *a, const Value *b) {
    /* Dropouts with different salts draw different masks: never one value. */
    if (a->op != b->op || a->nargs != b->nargs || a->num != b->num || a->salt != b->salt ||
        a->ta != b->ta || a->tb != b->tb || a->sum_batch != b->sum_batch ||
        a->varying != b->varying || !shape_eq(a->shape, b->shape) ||
        !layout_eq(a->layout, b->layout))
        return false;
    for (int k = 0; k < op_info[a->op].n_options; k++)
        if (a->opt[k] != b->opt[k]) return false;
    for (int i = 0; i < a->nargs; i++)
        if (a->args[i] != b->args[i]) return false;
    return true;
}

static size_t double_bits(double x) {
    uint64_t bits;
    memcpy(&bits, &x, sizeof bits);
    return (size_t)bits;
}

static size_t inst_hash(const Value *v) {
    size_t h = (size_t)v->op * 31u + (size_t)v->nargs;
    for (int i = 0; i < v->nargs; i++) h = h * 1000003u + (size_t)v->args[i]->id;
    for (int k = 0; k < op_info[v->op].n_options; k++) h = h * 1000003u + double_bits(v->opt[k]);
    return h ^ double_bits(v->num) ^ ((size_t)v->ta << 1) ^ ((size_t)v->tb << 2) ^
           ((size_t)v->sum_batch << 3) ^ ((size_t)v->salt << 4);
}

static bool same_inst_key(const void *wanted, const void *stored) {
    return same_inst(wanted, stored);
}

/* Returns an earlier identical instruction, or records v and returns NULL. */
static Value *cse(Simplifier *s, Value *v) {
    bool leaf = op_info[v->op].cls == OPC_SRC;
    if (v->custom) return NULL;
    if (leaf && v->op != OP_const && v->op != OP_inv_batch) return NULL;
    HashEntry *e = hash_find(&s->table, hash_mix(inst_hash(v)), v, same_inst_key, true);
    if (e->value) {
        s->why[v->id] = "the same computation as an earlier line (CSE)";
        return e->value;
    }
    e->value = v;
    return NULL;
}

/* The name and story of a dropped backward value move to its replacement. */
static void inherit(Value *kept, Value *dropped) {
    if (!kept->backward || kept->name || !dropped->name) return;
    kept->name = dropped->name;
    kept->grad_of = dropped->grad_of;
    kept->fanout = dropped->fanout;
}

static void replace(Simplifier *s, Value *v, Value *by) {
    s->repl[v->id] = by;
    inherit(by, v);
}

/* ---- dead code ---- */

static void mark_live(Graph *g) {
    for (int i = 0; i < g->insts.n; i++) g->insts.v[i]->aux = 0;
    g->loss->aux = 1;
    if (g->output) g->output->aux = 1;
    for (int i = 0; g->param_grads && i < g->params.n; i++)
        if (g->param_grads[i]) g->param_grads[i]->aux = 1;
    for (int i = 0; i < g->state_updates.n; i++)
        if (g->state_updates.v[i]) g->state_updates.v[i]->aux = 1;
    for (int i = 0; i < g->carries.n; i++) /* the one-step form's state (ir.h) */
        g->carries.v[i].out->aux = g->carries.v[i].init->aux = 1;
    for (int i = g->insts.n - 1; i >= 0; i--) {
        Value *v = g->insts.v[i];
        bool exposed =
            v->op == OP_input || v->op == OP_target || v->op == OP_param || v->op == OP_state;
        if (exposed) v->aux = 1;
        for (int j = 0; v->aux && j < v->nargs; j++) v->args[j]->aux = 1;
    }
}

static void drop_dead(Graph *g) {
    mark_live(g);
    int kept = 0, kept_forward = 0;
    for (int i = 0; i < g->insts.n; i++) {
        Value *v = g->insts.v[i];
        if (!v->aux) continue;
        g->insts.v[kept++] = v;
        if (i < g->n_forward) kept_forward++;
    }
    g->insts.n = kept;
    g->n_forward = kept_forward;
}

/* The bindings predict can print follow their values' replacements; a binding whose value
 * no root needs is dropped with it (after drop_dead, aux marks what lives). */
static void resolve_bindings(Simplifier *s) {
    Graph *g = s->g;
    for (int i = 0; i < g->bindings.n; i++) g->bindings.v[i].v = resolve(s, g->bindings.v[i].v);
}

static void drop_dead_bindings(Graph *g) {
    int kept = 0;
    for (int i = 0; i < g->bindings.n; i++)
        if (g->bindings.v[i].v->aux) g->bindings.v[kept++] = g->bindings.v[i];
    g->bindings.n = kept;
}

/* A state's update that would become a param or a state itself (update a = b, or b * 1)
 * keeps its own instruction, a copy made while the pass reads it: the step changes params
 * and states before it writes the states. */
static bool *updates_to_copy(const Graph *g) {
    bool *copy = xalloc(sizeof *copy * (size_t)(g->next_id ? g->next_id : 1));
    for (int i = 0; i < g->state_updates.n; i++)
        if (g->state_updates.v[i]) copy[g->state_updates.v[i]->id] = true;
    return copy;
}

static bool keeps_memory(const Value *leaf) {
    return op_info[leaf->op].cls == OPC_SRC && leaf->op != OP_const && leaf->op != OP_inv_batch;
}

void simplify(Graph *g) {
    simplify_traced(g, NULL);
}

void simplify_traced(Graph *g, SimplifyTrace *trace) {
    Simplifier s = {.g = g};
    int max_ids = g->next_id + g->insts.n + 16; /* folding makes new constants */
    s.repl = xalloc(sizeof *s.repl * (size_t)max_ids);
    s.why = xalloc(sizeof *s.why * (size_t)max_ids);
    bool *update = updates_to_copy(g);
    int n_ids = g->next_id; /* update[] covers the values made before simplify */

    int n = g->insts.n, kept = 0, kept_forward = 0;
    for (int i = 0; i < n; i++) {
        Value *v = g->insts.v[i];
        for (int j = 0; j < v->nargs; j++) v->args[j] = resolve(&s, v->args[j]);
        read_transposes_in_place(&s, v);
        const char *identity = NULL;
        Value *by = identity_of(v, &identity);
        if (by && v->id < n_ids && update[v->id] && keeps_memory(by)) by = NULL;
        if (by) s.why[v->id] = identity;
        if (!by && g->next_id < max_ids && (by = fold_constants(&s, v)))
            s.why[v->id] = "constant folding";
        if (by && by->op == OP_const && !s.repl[by->id]) {
            Value *known = cse(&s, by);
            if (known)
                by = known;
            else
                g->insts.v[kept++] = by, kept_forward += i < g->n_forward;
        }
        if (!by) by = cse(&s, v);
        if (by) {
            replace(&s, v, by);
            continue;
        }
        g->insts.v[kept++] = v;
        if (i < g->n_forward) kept_forward++;
    }
    g->insts.n = kept;
    g->n_forward = kept_forward;
    g->loss = resolve(&s, g->loss);
    if (g->output) g->output = resolve(&s, g->output);
    for (int i = 0; g->param_grads && i < g->params.n; i++)
        if (g->param_grads[i]) g->param_grads[i] = resolve(&s, g->param_grads[i]);
    resolve_bindings(&s);
    for (int i = 0; i < g->state_updates.n; i++)
        if (g->state_updates.v[i]) g->state_updates.v[i] = resolve(&s, g->state_updates.v[i]);
    for (int i = 0; i < g->carries.n; i++) {
        g->carries.v[i].out = resolve(&s, g->carries.v[i].out);
        g->carries.v[i].init = resolve(&s, g->carries.v[i].init);
    }
    drop_dead(g);
    drop_dead_bindings(g);
    if (!trace) return;
    *trace = (SimplifyTrace){.by = s.repl, .why = s.why, .n_ids = max_ids};
    for (int id = 0; id < max_ids; id++)
        if (s.repl[id]) s.repl[id] = resolve(&s, s.repl[id]);
}
