/* explain.c: `nnc explain`, the chain rule from the cost to each param, written as math.
 *
 * The explanation is read off the backward pass autodiff derived and simplify cleaned, not
 * derived a second time, so it shows what the binary computes. Starting at a param's
 * gradient, every backward value that is a whole gradient (Value.grad_of) is one line,
 * ∂cost/∂v = its expression; the gradients that expression reads are factors that get lines
 * of their own further down. Backward values that are not whole gradients (a rule's local
 * derivative, one contribution to a fan-out sum) are written out inside the line using them.
 *
 * Three things the backward IR leaves implicit are made explicit:
 *  - pass-through steps: t = u + b hands its gradient to u unchanged, so no instruction
 *    computes ∂cost/∂u; a line ∂cost/∂u = ∂cost/∂t says where it comes from;
 *  - fan-out: a value used twice gets the sum of two contributions; each term is matched
 *    with the use of the value it comes from;
 *  - the seed: ∂cost/∂loss is 1/B (the cost is the batch mean), not an instruction.
 * Each section ends with the chain rule as one product of local derivatives over the forward
 * graph, with a sum where the paths from the param to the loss split and meet again. */
#include "algebra.h"
#include "rules.h"
#include "stages.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Expr {
    const char *s;
    int prec;
    const char *negated; /* a negation: the operand, ready to follow a minus sign */
    const char *sign;    /* a product: its sign (⊙ or ·), which another sign must not join */
} Expr;

/* Something said under a line: the forward step it differentiates (with the local derivative
 * used), the term of a fan-out sum it explains, or words. */
typedef struct Note {
    const char *term;
    const Value *step;
    const char *rule;
    const char *text;
} Note;

typedef enum ItemKind { ITEM_GRAD, ITEM_PASS, ITEM_SAME, ITEM_SEED } ItemKind;

/* One line of a section: ∂cost/∂of = expr. */
typedef struct Item {
    ItemKind kind;
    Value *of;   /* the forward value whose gradient the line gives */
    Value *grad; /* the backward value computing it */
    Value *via;  /* ITEM_PASS: of's one user, which hands its gradient on unchanged;
                  * ITEM_GRAD: of's one user, when grad is another value's gradient that
                  * simplify found computed alike (so it is that user's rule, read for of) */
    const char *expr;
    VEC(Note) notes;
    int order; /* where the line goes: see item_order */
} Item;

typedef VEC(const char *) StrList;

typedef struct Explainer {
    FILE *out;
    Graph *g;
    bool tex;
    int n_ids;
    int *pos;           /* by id: index among the forward values, -1 for backward ones */
    bool *needs;        /* by id: depends on a param, so autodiff differentiates it */
    bool *reaches;      /* by id: a gradient flows to it from the loss */
    ValueList *grads;   /* by id: the operands the instruction's derivative rule feeds */
    ValueList *users;   /* by id: the instructions feeding it a gradient contribution */
    int *enter, *leave; /* by id: a walk of the pass-through forest (see passes_to) */
    bool *dep;          /* by id, per section: depends on the section's param */
    Value **ipdom;      /* by id, per section: the first value every path to the loss meets */
    bool *seen;         /* by id, per section: has a line */
    VEC(Item) items;    /* per section */
    ValueList where;    /* unnamed forward values the line being rendered mentions */
    const Value *line;  /* the gradient value whose line is being rendered */
    const ExplainRequest *rq;
    Algebra *alg;       /* EXPLAIN_MULTIPLIED */
    Ratio **multiplied; /* by id: the value multiplied out, once made */
    StrList *given;     /* by id: what multiplying it out took as given */
    StrList assumed;    /* per section: what multiplying out took as given */
} Explainer;

static const char *pick(const Explainer *ex, const char *text, const char *tex) {
    return ex->tex ? tex : text;
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static bool is_forward(const Explainer *ex, const Value *v) {
    return v->id < ex->n_ids && ex->pos[v->id] >= 0;
}

/* ---- names ---- */

/* "x", "h.W", "t6" for an unnamed value; in LaTeX x, \mathit{h.W}, t_{6}. */
static const char *name_of(const Explainer *ex, const Value *v) {
    if (!v->name) return xprintf(ex->tex ? "t_{%d}" : "t%d", v->id);
    if (!ex->tex) return v->name;
    if (strlen(v->name) == 1 && isalpha((unsigned char)v->name[0])) return v->name;
    char *s = xalloc(2 * strlen(v->name) + 1), *p = s;
    for (const char *c = v->name; *c; c++) {
        if (strchr("_#$%&{}", *c)) *p++ = '\\';
        *p++ = *c;
    }
    return xprintf("\\mathit{%s}", s);
}

/* ∂num/∂den: "∂cost/∂h", or \frac{\partial \mathrm{cost}}{\partial h}. */
static const char *partial(const Explainer *ex, const char *num, const char *den) {
    return ex->tex ? xprintf("\\frac{\\partial %s}{\\partial %s}", num, den)
                   : xprintf("∂%s/∂%s", num, den);
}

static const char *cost_name(const Explainer *ex) {
    return pick(ex, "cost", "\\mathrm{cost}");
}

static const char *grad_ref(const Explainer *ex, const Value *v) {
    return partial(ex, cost_name(ex), name_of(ex, v));
}

static Expr expr(const char *s, int prec) {
    return (Expr){.s = s, .prec = prec};
}

static Expr atom(const char *s) {
    return expr(s, P_ATOM);
}

/* A number: "1e-07" becomes 10^{-7} in LaTeX; a negative one is a negation. */
static Expr number(const Explainer *ex, double x) {
    const char *s = ir_number_str(x < 0 ? -x : x);
    const char *e = strchr(s, 'e');
    if (ex->tex && e) {
        const char *mant = xstrndup(s, (size_t)(e - s));
        int exp10 = atoi(e + 1);
        s = !strcmp(mant, "1") ? xprintf("10^{%d}", exp10)
                               : xprintf("%s \\cdot 10^{%d}", mant, exp10);
    }
    /* 1/n, as a mean's derivative has it, reads better than 0.16666666666666666 */
    double inverse = 1 / (x < 0 ? -x : x);
    if (strlen(s) > 8 && inverse >= 2 && inverse <= 1e6 && inverse == (double)(int64_t)inverse &&
        1 / inverse == (x < 0 ? -x : x))
        s = ex->tex ? xprintf("\\frac{1}{%s}", ir_number_str(inverse))
                    : xprintf("1/%s", ir_number_str(inverse));
    if (x >= 0) return expr(s, ex->tex || !strchr(s, '/') ? P_ATOM : P_PROD);
    return (Expr){.s = xprintf("%s%s", pick(ex, "−", "-"), s), .prec = P_NEG, .negated = s};
}

/* ---- expressions ---- */

static const char *wrap(const Explainer *ex, Expr e, int min_prec) {
    if (e.prec >= min_prec) return e.s;
    return ex->tex ? xprintf("\\left(%s\\right)", e.s) : xprintf("(%s)", e.s);
}

static const char *fn_call(const Explainer *ex, const char *name, const char *arg) {
    static const char *const tex_fns[] = {"exp", "log", "sin", "cos", "tanh"};
    if (!ex->tex) return xprintf("%s(%s)", name, arg);
    for (size_t i = 0; i < sizeof tex_fns / sizeof *tex_fns; i++)
        if (!strcmp(name, tex_fns[i])) return xprintf("\\%s\\left(%s\\right)", name, arg);
    char *escaped = xalloc(2 * strlen(name) + 1), *p = escaped;
    for (const char *c = name; *c; c++) {
        if (*c == '_') *p++ = '\\';
        *p++ = *c;
    }
    return xprintf("\\operatorname{%s}\\left(%s\\right)", escaped, arg);
}

/* a^b, with small whole exponents as superscripts: h², h³. */
static Expr power(const Explainer *ex, Expr base, const Value *exponent, Expr e) {
    static const char *const sup[] = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};
    const char *b = wrap(ex, base, P_ATOM);
    if (ex->tex) return expr(xprintf("{%s}^{%s}", b, e.s), P_POW);
    double n = exponent->op == OP_const ? exponent->num : -1;
    if (n >= 2 && n <= 9 && n == (int)n) return expr(xprintf("%s%s", b, sup[(int)n]), P_POW);
    return expr(xprintf("%s^%s", b, wrap(ex, e, P_ATOM)), P_POW);
}

static Expr product(const Explainer *ex, const Value *v, Expr a, Expr b, bool elementwise) {
    if (v->nargs == 2 && v->args[0] == v->args[1]) {
        Value two = {.op = OP_const, .num = 2};
        return power(ex, a, &two, atom("2"));
    }
    const char *sign = elementwise ? pick(ex, " ⊙ ", " \\odot ") : pick(ex, " · ", " \\cdot ");
    int right = b.sign && strcmp(b.sign, sign) ? P_POW : P_PROD;
    return (Expr){.s = xprintf("%s%s%s", wrap(ex, a, P_PROD), sign, wrap(ex, b, right)),
                  .prec = P_PROD,
                  .sign = sign};
}

static Expr sum_expr(const Explainer *ex, Expr a, Expr b) {
    if (b.negated) return expr(xprintf("%s %s %s", a.s, pick(ex, "−", "-"), b.negated), P_SUM);
    return expr(xprintf("%s + %s", a.s, b.s), P_SUM);
}

static Expr negation(const Explainer *ex, Expr a) {
    const char *inner = wrap(ex, a, P_PROD);
    return (Expr){.s = xprintf("%s%s", pick(ex, "−", "-"), inner), .prec = P_NEG, .negated = inner};
}

static const char *batch_sum_sign(const Explainer *ex) {
    return pick(ex, "Σ_batch ", "\\sum_{\\mathrm{batch}} ");
}

static const char *transposed(const Explainer *ex, Expr a, bool t) {
    const char *s = wrap(ex, a, t ? P_ATOM : P_PROD);
    return t ? xprintf("%s%s", s, pick(ex, "ᵀ", "^{\\top}")) : s;
}

static Expr matrix_product(const Explainer *ex, const Value *v, Expr a, Expr b) {
    const char *s = xprintf("%s%s%s", transposed(ex, a, v->ta), pick(ex, " · ", " \\cdot "),
                            v->tb ? transposed(ex, b, true) : wrap(ex, b, P_POW));
    if (!v->sum_batch) return expr(s, P_PROD);
    return expr(xprintf("%s%s", batch_sum_sign(ex), s), P_SUM);
}

/* The rows ops of the backward pass, written as their one-line docs in ops.def say. */
static Expr row_grad(const Explainer *ex, const Value *v, const Expr *a) {
    const char *x = wrap(ex, a[0], P_POW), *y = wrap(ex, a[1], P_POW);
    const char *times = pick(ex, " ⊙ ", " \\odot "), *minus = pick(ex, " − ", " - ");
    const char *rowsum = pick(ex, "rowsum", "\\operatorname{rowsum}");
    switch (v->op) {
    case OP_softmax_grad:
        return atom(xprintf("%s%s(%s%s%s(%s%s%s))", x, times, y, minus, rowsum, y, times, x));
    case OP_log_softmax_grad:
        return expr(xprintf("%s%s%s%s%s(%s)", y, minus, fn_call(ex, "exp", x), times, rowsum, y),
                    P_SUM);
    default: /* softmax_ce_grad: z, y, g, where g is one number per sample */
        return expr(xprintf("%s%s(%s%s%s(%s)%s%s)", wrap(ex, a[2], P_POW),
                            pick(ex, " · ", " \\cdot "), fn_call(ex, "softmax", x), times, rowsum,
                            y, minus, y),
                    P_PROD);
    }
}

static Expr reduction(const Explainer *ex, const Value *v, Expr a) {
    switch (v->op) {
    case OP_sum: return expr(xprintf("%s%s", pick(ex, "Σ ", "\\sum "), wrap(ex, a, P_PROD)), P_SUM);
    case OP_mean: return atom(fn_call(ex, "mean", a.s));
    case OP_batch_sum: return expr(xprintf("%s%s", batch_sum_sign(ex), wrap(ex, a, P_PROD)), P_SUM);
    default: /* sum_to */
        return atom(ex->tex ? xprintf("\\operatorname{sum\\_to}_{%s}\\left(%s\\right)",
                                      shape_str(v->shape), a.s)
                            : xprintf("sum_to(%s, %s)", a.s, shape_str(v->shape)));
    }
}

/* where(c, a, b): "a ⊙ [c > 0]" when b is 0 (an Iverson bracket: 1 where c > 0, else 0),
 * else "(c > 0 ? a : b)". */
static Expr selection(const Explainer *ex, const Value *v, const Expr *a) {
    const char *cond = xprintf("%s > 0", wrap(ex, a[0], P_SUM));
    if (v->args[2]->op == OP_const && v->args[2]->num == 0)
        return expr(xprintf("%s%s[%s]", wrap(ex, a[1], P_PROD), pick(ex, " ⊙ ", " \\odot "), cond),
                    P_PROD);
    return atom(ex->tex ? xprintf("\\left(%s \\;?\\; %s : %s\\right)", cond, a[1].s, a[2].s)
                        : xprintf("(%s ? %s : %s)", cond, a[1].s, a[2].s));
}

/* "u", "z, y", "u, 0.2": the operands, then the options (ops.def); a backward dropout
 * applies its forward one's masks. A reshape's options are its dims up to a 0 that ends
 * them, and one may be -1: the shape it made says them all, "reshape(g, 32, 2, 2)". */
static const char *call_arguments(const Value *v, const Expr *a) {
    const char *s = a[0].s;
    for (int i = 1; i < v->nargs; i++) s = xprintf("%s, %s", s, a[i].s);
    if (v->op == OP_reshape)
        for (int k = 0; k < v->shape.rank; k++)
            s = xprintf("%s, %lld", s, (long long)v->shape.dim[k]);
    else
        for (int k = 0; k < op_info[v->op].n_options; k++)
            s = xprintf("%s, %s", s, ir_number_str(v->opt[k]));
    if (v->layout) s = xprintf("%s, %s", s, ir_layout_str(v));
    if ((op_info[v->op].flags & OPF_RANDOM) && v->salt != v->id)
        s = xprintf("%s, masks of #%d", s, v->salt);
    return s;
}

/* An instruction written as math over its rendered operands a[]. */
static Expr render_op(const Explainer *ex, const Value *v, const Expr *a) {
    bool scalar = v->nargs == 2 && (v->args[0]->shape.rank == 0 || v->args[1]->shape.rank == 0);
    switch (v->op) {
    case OP_add: return sum_expr(ex, a[0], a[1]);
    case OP_sub:
        return expr(xprintf("%s %s %s", a[0].s, pick(ex, "−", "-"), wrap(ex, a[1], P_PROD)), P_SUM);
    case OP_mul: return product(ex, v, a[0], a[1], !scalar);
    case OP_div:
        if (ex->tex) return atom(xprintf("\\frac{%s}{%s}", a[0].s, a[1].s));
        return expr(xprintf("%s / %s", wrap(ex, a[0], P_PROD), wrap(ex, a[1], P_POW)), P_PROD);
    case OP_pow: return power(ex, a[0], v->args[1], a[1]);
    case OP_neg: return negation(ex, a[0]);
    case OP_abs:
        return atom(ex->tex ? xprintf("\\lvert %s \\rvert", a[0].s) : xprintf("|%s|", a[0].s));
    case OP_sqrt:
        return atom(ex->tex ? xprintf("\\sqrt{%s}", a[0].s) : xprintf("sqrt(%s)", a[0].s));
    case OP_broadcast: return a[0]; /* the line's shape says where it spreads to */
    case OP_where: return selection(ex, v, a);
    case OP_sum:
    case OP_mean:
    case OP_batch_sum:
    case OP_sum_to: return reduction(ex, v, a[0]);
    case OP_matmul: return matrix_product(ex, v, a[0], a[1]);
    case OP_softmax_grad:
    case OP_log_softmax_grad:
    case OP_softmax_ce_grad: return row_grad(ex, v, a);
    default: return atom(fn_call(ex, op_info[v->op].name, call_arguments(v, a)));
    }
}

/* A forward value by name; an unnamed instruction is also defined under the line. */
static Expr forward_ref(Explainer *ex, const Value *v, bool define) {
    if (v->op == OP_const && v->spelling && !ex->tex) /* as the source wrote it: 2*pi */
        return expr(v->spelling, ir_const_is_compound(v) ? P_SUM
                                 : v->spelling[0] == '-' ? P_NEG
                                                         : P_ATOM);
    if (v->op == OP_const) return number(ex, v->num);
    if (define && !v->name && op_info[v->op].cls != OPC_SRC) {
        bool listed = false;
        for (int i = 0; i < ex->where.n; i++) listed |= ex->where.v[i] == v;
        if (!listed) vec_push(&ex->where, (Value *)v);
    }
    return atom(name_of(ex, v));
}

/* "h = tanh(t6)", "p = sign_ste(t6)" for a fn with its own backward rule. */
static const char *definition(Explainer *ex, const Value *v) {
    if (v->custom) {
        const CustomRule *r = v->custom;
        const char *args = "";
        for (int j = 0; j < r->fn->nargs; j++)
            args = xprintf("%s%s%s", args, j ? ", " : "",
                           r->args[j] ? name_of(ex, r->args[j]) : r->fn->args[j].arg);
        return xprintf("%s = %s", name_of(ex, v), fn_call(ex, r->fn->fn, args));
    }
    Expr a[3];
    for (int i = 0; i < v->nargs; i++) a[i] = forward_ref(ex, v->args[i], false);
    return xprintf("%s = %s", name_of(ex, v), render_op(ex, v, a).s);
}

/* ---- the gradient flow over the forward graph ---- */

static void push_unique(ValueList *list, Value *v) {
    for (int i = 0; i < list->n; i++)
        if (list->v[i] == v) return;
    vec_push(list, v);
}

/* The operands v's derivative rule sends a gradient to: every operand of an ordinary op,
 * none of a flat one (sign, step, one_hot), all but the ids of take, the arguments a fn's
 * own backward rule names. */
static void find_grad_operands(Explainer *ex, Value *v) {
    ValueList *list = &ex->grads[v->id];
    if (v->custom) {
        const CustomRule *r = v->custom;
        for (int j = 0; j < r->fn->nargs; j++)
            if (r->args[j] && r->fn->args[j].text) push_unique(list, r->args[j]);
        return;
    }
    if (op_info[v->op].cls == OPC_SRC || (op_info[v->op].flags & OPF_FLAT)) return;
    int operands = op_info[v->op].flags & OPF_INDICES ? v->nargs - 1 : v->nargs;
    for (int j = 0; j < operands; j++) push_unique(list, v->args[j]);
}

/* needs, reaches and users, as autodiff walks them. */
static void trace_flow(Explainer *ex) {
    Graph *g = ex->g;
    for (int i = 0; i < g->n_forward; i++) {
        Value *v = g->insts.v[i];
        ex->pos[v->id] = i;
        bool needs = v->op == OP_param;
        for (int j = 0; j < v->nargs; j++) needs |= ex->needs[v->args[j]->id];
        ex->needs[v->id] = needs;
        find_grad_operands(ex, v);
    }
    ex->reaches[g->loss->id] = true;
    for (int i = g->n_forward - 1; i >= 0; i--) {
        Value *v = g->insts.v[i];
        if (!ex->reaches[v->id] || !ex->needs[v->id]) continue;
        for (int j = 0; j < ex->grads[v->id].n; j++) ex->reaches[ex->grads[v->id].v[j]->id] = true;
    }
    for (int i = 0; i < g->n_forward; i++) {
        Value *v = g->insts.v[i];
        if (!ex->reaches[v->id] || !ex->needs[v->id]) continue;
        for (int j = 0; j < ex->grads[v->id].n; j++)
            vec_push(&ex->users[ex->grads[v->id].v[j]->id], v);
    }
}

/* True when from's gradient is to's: each value on the way has one user, which hands its
 * gradient on (t = u + b), so autodiff made no instruction for it. */
static bool passes_to(const Explainer *ex, const Value *from, const Value *to) {
    if (from == to) return true;
    if (from->id >= ex->n_ids || to->id >= ex->n_ids) return false;
    return ex->enter[to->id] < ex->enter[from->id] && ex->leave[from->id] <= ex->leave[to->id];
}

/* A forward value with exactly one user hands its gradient to that user: following those
 * links from each value makes a forest, and passes_to(from, to) asks whether `to` is an
 * ancestor of `from` in it. One depth-first walk numbers each value when it is entered and
 * left, so that each question costs O(1) (walking up the chain for each line of a chain of N
 * bindings was O(N^2)). */
static void number_pass_forest(Explainer *ex) {
    int n = ex->n_ids;
    int *parent = xalloc(sizeof *parent * (size_t)n), *first = xalloc(sizeof *first * (size_t)n);
    int *next = xalloc(sizeof *next * (size_t)n), *stack = xalloc(sizeof *stack * (size_t)n);
    ex->enter = xalloc(sizeof *ex->enter * (size_t)n);
    ex->leave = xalloc(sizeof *ex->leave * (size_t)n);
    for (int i = 0; i < n; i++) parent[i] = first[i] = -1;
    for (int i = 0; i < ex->g->n_forward; i++) {
        Value *v = ex->g->insts.v[i];
        if (is_forward(ex, v) && ex->users[v->id].n == 1) parent[v->id] = ex->users[v->id].v[0]->id;
    }
    for (int i = 0; i < n; i++)
        if (parent[i] >= 0) next[i] = first[parent[i]], first[parent[i]] = i;
    int clock = 0;
    for (int root = 0; root < n; root++) {
        if (parent[root] >= 0) continue;
        int top = 0;
        stack[top++] = root;
        ex->enter[root] = clock++;
        while (top > 0) {
            int v = stack[top - 1], child = first[v];
            if (child < 0) {
                ex->leave[v] = clock++;
                top--;
                continue;
            }
            first[v] = next[child]; /* visited: the next sibling waits its turn */
            ex->enter[child] = clock++;
            stack[top++] = child;
        }
    }
}

/* The local derivative of user for operand x: its ops.def text, or the fn's own rule. */
static const char *rule_for(const Value *user, const Value *x) {
    if (user->custom) {
        const CustomRule *r = user->custom;
        for (int j = 0; j < r->fn->nargs; j++)
            if (r->args[j] == x && r->fn->args[j].text) return r->fn->args[j].text;
        return NULL;
    }
    int operand = 0;
    while (operand < user->nargs - 1 && user->args[operand] != x) operand++;
    const char *s = op_info[user->op].deriv;
    for (int i = 0; i < operand && strstr(s, ", "); i++) s = strstr(s, ", ") + 2;
    const char *end = strstr(s, ", ");
    return *s ? (end ? xstrndup(s, (size_t)(end - s)) : s) : NULL;
}

/* ---- lines ---- */

static void add_note(Item *it, const char *term, const Value *step, const char *rule,
                     const char *text) {
    vec_push(&it->notes, ((Note){term, step, rule, text}));
}

static int new_item(Explainer *ex, ItemKind kind, Value *of, Value *grad, Value *via) {
    ex->seen[of->id] = true;
    vec_push(&ex->items, ((Item){.kind = kind, .of = of, .grad = grad, .via = via}));
    return ex->items.n - 1;
}

/* An add autodiff made to sum the contributions of a value's uses. */
static bool is_fanout_sum(const Value *v) {
    return v->op == OP_add && v->rule && !strcmp(v->rule, "sum over uses");
}

/* The forward value a gradient value is the whole gradient of (the seed: the loss's). */
static Value *gradient_of(const Explainer *ex, const Value *grad) {
    return grad->op == OP_inv_batch ? ex->g->loss : grad->grad_of;
}

/* Queues the line for ∂cost/∂of, which the backward value grad computes. grad may be the
 * whole gradient of another value: of's gradient passes to that one unchanged (a line per
 * step on the way), or simplify found the two computed alike and kept one. */
static void want_gradient(Explainer *ex, Value *of, Value *grad) {
    while (!ex->seen[of->id]) {
        Value *whole = gradient_of(ex, grad);
        if (of == ex->g->loss && grad->op == OP_inv_batch) {
            new_item(ex, ITEM_SEED, of, grad, NULL);
        } else if (!whole || whole == of) {
            new_item(ex, ITEM_GRAD, of, grad, NULL);
        } else if (passes_to(ex, of, whole)) {
            Value *via = ex->users[of->id].v[0];
            new_item(ex, ITEM_PASS, of, grad, via);
            of = via;
            continue;
        } else if (is_forward(ex, of) && ex->users[of->id].n == 1 && !is_fanout_sum(grad)) {
            new_item(ex, ITEM_GRAD, of, grad, ex->users[of->id].v[0]);
        } else {
            new_item(ex, ITEM_SAME, of, grad, NULL);
            of = whole;
            continue;
        }
        return;
    }
}

static bool is_gradient_leaf(const Explainer *ex, const Value *v) {
    return v != ex->line && (v->op == OP_inv_batch || (v->backward && v->grad_of));
}

/* In the rule of batch_mean, 1/B is not the seed but a local factor: the result's gradient
 * shared out over the batch's samples (a batch_mean's own gradient never is the seed: it
 * does not vary). */
static bool is_local_inv_batch(const Value *v, const Value *from) {
    return v->op == OP_inv_batch && from && from->op == OP_batch_mean;
}

/* A whole gradient inside an expression, seen from the forward step `from` whose rule read
 * it: the rule read the gradient of its own result, whatever value that turned out to be
 * (passed on unchanged from further down, or shared by simplify). With a constant seed
 * (a loss that does not vary) a gradient can be a plain function of forward values, which
 * simplify may share with a rule's local derivative, so there only a pass-through counts. */
static Expr gradient_factor(Explainer *ex, Value *grad, Value *from) {
    Value *whole = gradient_of(ex, grad), *target = whole;
    if (from && from != whole && is_forward(ex, from) &&
        (ex->g->loss->varying || passes_to(ex, from, whole)))
        target = from;
    want_gradient(ex, target, grad);
    return expr(grad_ref(ex, target), P_POW);
}

/* A backward expression: whole gradients are factors, forward values names, the rest is
 * written out. `from` is the forward step whose rule the whole expression is, even where
 * simplify shares a piece of it with another rule's (Value.from names whichever was first). */
static Expr render(Explainer *ex, Value *v, Value *from, int depth) {
    if (is_local_inv_batch(v, from)) return atom(pick(ex, "1/B", "\\frac{1}{B}"));
    if (is_gradient_leaf(ex, v)) return gradient_factor(ex, v, from);
    if (!v->backward || depth > 40) return forward_ref(ex, v, true);
    Expr a[3];
    for (int i = 0; i < v->nargs; i++) a[i] = render(ex, v->args[i], from, depth + 1);
    return render_op(ex, v, a);
}

static void add_where_notes(Explainer *ex, Item *it, const Value *step) {
    for (int i = 0; i < ex->where.n; i++) {
        if (ex->where.v[i] == step) continue; /* the note on the step defines it */
        const char *def = definition(ex, ex->where.v[i]);
        add_note(it, NULL, NULL, NULL,
                 ex->tex ? xprintf("where $%s$ (step #%d)", def, ex->where.v[i]->id)
                         : xprintf("where %s  (#%d)", def, ex->where.v[i]->id));
    }
    ex->where.n = 0;
}

/* The terms of a fan-out sum, in the order autodiff added them. A term may itself be a
 * whole gradient that is a sum (of a value passing its gradient on): that one is a term. */
static void flatten_sum(Explainer *ex, Value *v, ValueList *terms) {
    if (!is_fanout_sum(v) || is_gradient_leaf(ex, v) || terms->n > 64) {
        vec_push(terms, v);
        return;
    }
    flatten_sum(ex, v->args[0], terms);
    flatten_sum(ex, v->args[1], terms);
}

static bool is_user(const Explainer *ex, const Value *of, const Value *u) {
    for (int i = 0; i < ex->users[of->id].n; i++)
        if (ex->users[of->id].v[i] == u) return true;
    return false;
}

/* The use of `of` a gradient contribution comes from, or NULL when the term no longer says:
 * simplify folded it into a constant, or shares it with an identical contribution that
 * another step's rule made. A whole gradient passed on unchanged comes from the use it is
 * the gradient of, or else from one that passes its gradient to that one. */
static Value *use_of_term(const Explainer *ex, const Value *of, const Value *term) {
    const ValueList *users = &ex->users[of->id];
    if (!is_gradient_leaf(ex, term))
        return term->from && is_user(ex, of, term->from) ? term->from : NULL;
    Value *whole = gradient_of(ex, term);
    for (int i = 0; i < users->n; i++)
        if (users->v[i] == whole) return whole;
    for (int i = 0; i < users->n; i++)
        if (passes_to(ex, users->v[i], whole)) return users->v[i];
    return NULL;
}

/* Why a term claims no use: simplify folded it into a constant, or shares it with the step
 * that made an identical contribution first. When one such term and one unclaimed use are
 * left over, they belong together (uses[i] is set). */
static void match_leftover(const Explainer *ex, const Value *of, const ValueList *terms,
                           Value **uses, const char **why) {
    ValueList unclaimed = {0};
    int left = 0;
    for (int i = 0; i < ex->users[of->id].n; i++) {
        Value *u = ex->users[of->id].v[i];
        bool claimed = false;
        for (int j = 0; j < terms->n; j++) claimed |= uses[j] == u;
        if (!claimed) vec_push(&unclaimed, u);
    }
    for (int i = 0; i < terms->n; i++) left += !uses[i];
    for (int i = 0; i < terms->n; i++) {
        if (uses[i]) continue;
        const Value *t = terms->v[i];
        why[i] = t->op == OP_const ? "simplify folded into a constant"
                 : t->from
                     ? xprintf("simplify shares with #%d, which computes it alike", t->from->id)
                     : "simplify shares with another step";
        if (left == 1 && unclaimed.n == 1) uses[i] = unclaimed.v[0];
    }
}

/* The use term i stands for. */
static const Value *use_of(const ValueList *terms, Value **uses, int i) {
    return uses[i] ? uses[i] : terms->v[i]->from;
}

/* How many different steps of one scan the uses were made in, and that scan's first use
 * (for its place in the source); 0 when a use is outside a scan or in another scan. Linear:
 * a weight of a long scan has a use in each of its thousands of steps. */
static int scan_steps_of(const ValueList *terms, Value **uses, const Value **first) {
    int scan = 0, last_step = 0;
    *first = NULL;
    for (int i = 0; i < terms->n; i++) {
        const Value *u = use_of(terms, uses, i);
        if (!u || !u->scan || (scan && u->scan != scan)) return 0;
        scan = u->scan;
        if (u->scan_step > last_step) last_step = u->scan_step;
        if (!*first) *first = u;
    }
    bool *seen = xalloc(((size_t)last_step + 1) * sizeof *seen);
    int steps = 0;
    for (int i = 0; i < terms->n; i++) {
        int step = use_of(terms, uses, i)->scan_step;
        steps += !seen[step];
        seen[step] = true;
    }
    return steps;
}

/* "the sum over the 3 uses of h.W:", or for a weight the steps of a scan share, the sum
 * that backpropagation through time is: "the sum over the 3 time steps of the scan at
 * m.nn:16:10, one use of hs.Wh a step (backpropagation through time):". */
static const char *fanout_heading(const Explainer *ex, const Value *of, const ValueList *terms,
                                  Value **uses) {
    const char *name = xprintf("%s%s%s", ex->tex ? "$" : "", name_of(ex, of), ex->tex ? "$" : "");
    const Value *first;
    int steps = scan_steps_of(terms, uses, &first);
    if (steps < 2) return xprintf("the sum over the %d uses of %s:", terms->n, name);
    const char *at = first->loc.file ? xprintf(" at %s:%d:%d", base_name(first->loc.file->path),
                                               first->loc.line, first->loc.col)
                                     : "";
    if (steps == terms->n)
        return xprintf("the sum over the %d time steps of the scan%s, one use of %s a step "
                       "(backpropagation through time):",
                       steps, at, name);
    return xprintf("the sum over the %d uses of %s in %d time steps of the scan%s "
                   "(backpropagation through time):",
                   terms->n, name, steps, at);
}

/* ∂cost/∂of = the sum of its uses' contributions: one note per term, naming the use. */
static void render_fanout(Explainer *ex, int k, Value *of, Value *grad) {
    ValueList terms = {0};
    flatten_sum(ex, grad, &terms);
    Value **uses = xalloc(sizeof *uses * (size_t)terms.n);
    const char **why = xalloc(sizeof *why * (size_t)terms.n);
    const char **shown = xalloc(sizeof *shown * (size_t)terms.n);
    for (int i = 0; i < terms.n; i++) uses[i] = use_of_term(ex, of, terms.v[i]);
    match_leftover(ex, of, &terms, uses, why);
    StrBuf sum = {0}; /* a value used N times: N terms, appended rather than re-copied */
    for (int i = 0; i < terms.n; i++) {
        Value *t = terms.v[i], *use = uses[i] ? uses[i] : t->from;
        Expr e = is_gradient_leaf(ex, t) ? gradient_factor(ex, t, use) : render(ex, t, use, 0);
        if (i == 0)
            sb_puts(&sum, e.s);
        else if (e.negated)
            sb_printf(&sum, " %s %s", pick(ex, "−", "-"), e.negated);
        else
            sb_printf(&sum, " + %s", e.s);
        shown[i] = e.s;
    }
    Item *it = &ex->items.v[k];
    it->expr = sb_str(&sum);
    add_note(it, NULL, NULL, NULL, fanout_heading(ex, of, &terms, uses));
    for (int i = 0; i < terms.n; i++) {
        if (uses[i])
            add_note(it, shown[i], uses[i], rule_for(uses[i], of),
                     why[i] ? xprintf("whose contribution %s", why[i]) : NULL);
        else
            add_note(it, shown[i], NULL, NULL, xprintf("a contribution %s", why[i]));
    }
    add_where_notes(ex, it, NULL);
}

static void render_gradient(Explainer *ex, int k) {
    Value *of = ex->items.v[k].of, *grad = ex->items.v[k].grad, *user = ex->items.v[k].via;
    ex->line = grad;
    if (is_fanout_sum(grad) && !user) {
        render_fanout(ex, k, of, grad);
        return;
    }
    if (!grad->backward) ex->line = NULL; /* a leaf: the seed, a constant */
    Value *step = user ? user : grad->from;
    Expr e = render(ex, grad, step, 0);
    Item *it = &ex->items.v[k];
    it->expr = e.s;
    if (step) add_note(it, NULL, step, user ? rule_for(user, of) : grad->rule, NULL);
    if (grad->op == OP_const) add_note(it, NULL, NULL, NULL, "simplify folded it into a constant");
    add_where_notes(ex, it, step);
}

static void render_item(Explainer *ex, int k) {
    Item *it = &ex->items.v[k];
    switch (it->kind) {
    case ITEM_SEED:
        it->expr = ex->g->loss->varying ? pick(ex, "1/B", "\\frac{1}{B}") : "1";
        add_note(it, NULL, NULL, NULL,
                 ex->g->loss->varying
                     ? "the seed: the cost is the mean of the batch's B per-sample losses"
                     : "the seed: the loss does not vary per sample, so the cost is the loss");
        break;
    case ITEM_PASS: {
        Value *via = it->via;
        it->expr = grad_ref(ex, via);
        const char *rule = rule_for(via, it->of);
        add_note(it, NULL, via, rule, "which hands its gradient on unchanged");
        break;
    }
    case ITEM_SAME: {
        Value *whole = gradient_of(ex, it->grad);
        it->expr = grad_ref(ex, whole);
        add_note(it, NULL, NULL, NULL,
                 xprintf("the same value: simplify found %s%s%s computed alike and kept one",
                         ex->tex ? "$" : "", grad_ref(ex, whole), ex->tex ? "$" : ""));
        break;
    }
    case ITEM_GRAD: render_gradient(ex, k); break;
    }
}

/* Top to bottom: the param, then the forward values in order, the loss's seed last. Each
 * line then reads only gradients defined below it. */
static int item_order(const Explainer *ex, const Item *it) {
    if (it->kind == ITEM_SEED) return ex->g->n_forward + 1;
    if (it->of->op == OP_param) return -1;
    return ex->pos[it->of->id];
}

static int compare_items(const void *a, const void *b) {
    int ka = ((const Item *)a)->order, kb = ((const Item *)b)->order;
    return (ka > kb) - (ka < kb);
}

/* ---- the chain rule in one line ---- */

/* The first value every path from v to the loss goes through (v's immediate
 * post-dominator), found as in Cooper, Harvey and Kennedy's dominance algorithm. */
static Value *meet(const Explainer *ex, Value *a, Value *b) {
    while (a != b) {
        while (ex->pos[a->id] < ex->pos[b->id]) a = ex->ipdom[a->id];
        while (ex->pos[b->id] < ex->pos[a->id]) b = ex->ipdom[b->id];
    }
    return a;
}

/* dep and ipdom for one param; returns the number of paths from it to the loss. */
static double trace_paths(Explainer *ex, Value *param) {
    Graph *g = ex->g;
    double *paths = xalloc(sizeof *paths * (size_t)ex->n_ids);
    for (int i = 0; i < g->n_forward; i++) {
        Value *v = g->insts.v[i];
        bool dep = v == param;
        for (int j = 0; j < ex->grads[v->id].n; j++) dep |= ex->dep[ex->grads[v->id].v[j]->id];
        ex->dep[v->id] = dep;
    }
    for (int i = g->n_forward - 1; i >= 0; i--) {
        Value *v = g->insts.v[i];
        if (!ex->dep[v->id] || !ex->reaches[v->id]) continue;
        Value *d = NULL;
        for (int j = 0; j < ex->users[v->id].n; j++) {
            Value *u = ex->users[v->id].v[j];
            d = d ? meet(ex, d, u) : u;
            paths[v->id] += paths[u->id];
        }
        ex->ipdom[v->id] = d;
        if (v == g->loss) paths[v->id] = 1;
    }
    return paths[param->id];
}

typedef struct Chain {
    VEC(char) text;
    bool after_factor;
} Chain;

static void chain_put(Chain *c, const char *s) {
    for (; *s; s++) vec_push(&c->text, *s);
}

static void chain_factor(const Explainer *ex, Chain *c, const char *factor) {
    if (c->after_factor) chain_put(c, pick(ex, " · ", " \\cdot "));
    chain_put(c, factor);
    c->after_factor = true;
}

/* Appends ∂to/∂v as local derivatives, the one nearest the loss first; where v's paths
 * split, a sum over them up to where they meet again. */
static void chain_from(const Explainer *ex, Chain *c, Value *v, Value *to) {
    const ValueList *users = &ex->users[v->id];
    if (v == to || users->n == 0) return;
    if (users->n == 1) {
        chain_from(ex, c, users->v[0], to);
        chain_factor(ex, c, partial(ex, name_of(ex, users->v[0]), name_of(ex, v)));
        return;
    }
    Value *meet_at = ex->ipdom[v->id];
    chain_from(ex, c, meet_at, to);
    chain_factor(ex, c, pick(ex, "(", "\\left("));
    for (int i = 0; i < users->n; i++) {
        if (i) chain_put(c, " + ");
        c->after_factor = false;
        chain_from(ex, c, users->v[i], meet_at);
        chain_factor(ex, c, partial(ex, name_of(ex, users->v[i]), name_of(ex, v)));
    }
    chain_put(c, pick(ex, ")", "\\right)"));
}

#define MAX_CHAIN_PATHS 16

/* "∂cost/∂h.W = ∂cost/∂loss · ∂loss/∂t26 · … · ∂t5/∂h.W", or NULL with *paths set when
 * there are too many paths to write out. */
static const char *chain_rule(Explainer *ex, Value *param, double *paths) {
    *paths = trace_paths(ex, param);
    if (*paths > MAX_CHAIN_PATHS) return NULL;
    Chain c = {0};
    chain_factor(ex, &c, partial(ex, cost_name(ex), name_of(ex, ex->g->loss)));
    chain_from(ex, &c, param, ex->g->loss);
    vec_push(&c.text, '\0');
    return xprintf("%s = %s", grad_ref(ex, param), c.text.v);
}

/* ---- the chain multiplied out ----
 * Each gradient written in forward values the source names: every gradient it reads and
 * every unnamed forward value substituted back, then simplified by algebra.c's rules.
 * What those rules cannot look into (a matrix product, a reduction, a call) is an atom
 * whose operands are multiplied out in turn. Two things are taken as given, and each
 * section says so when it did: a tiny constant (|c| <= 1e-5) added to keep a log or a
 * division finite is 0, and a one-hot target's row sums to 1. */

#define GUARD_LIMIT 1e-5

static Ratio *multiply_out(Explainer *ex, Value *v);

static void add_unique(StrList *list, const char *what) {
    for (int i = 0; i < list->n; i++)
        if (!strcmp(list->v[i], what)) return;
    vec_push(list, what);
}

/* Multiplying v out took this as given (each section that shows v says so). */
static void assume(Explainer *ex, const Value *v, const char *what) {
    if (v->id < ex->n_ids) add_unique(&ex->given[v->id], what);
}

/* A constant added only to keep a log or a division away from 0 (bce's 1e-7). */
static bool is_guard(const Value *v) {
    return v->op == OP_const && v->num != 0 && fabs(v->num) <= GUARD_LIMIT;
}

static Ratio *without_guard(Explainer *ex, const Value *v, const Value *guard, Value *rest) {
    assume(ex, v,
           xprintf("%s, added to keep a log or a division finite, is taken as 0",
                   ir_number_str(guard->num)));
    return multiply_out(ex, rest);
}

/* A target the train block reads from one class column: each row is one-hot. */
static bool is_one_hot(const Explainer *ex, const Value *y) {
    if (y->op != OP_target || shape_numel(y->shape) < 2) return false;
    for (int i = 0; i < ex->g->train.columns.n; i++) {
        const ColumnMap *c = &ex->g->train.columns.v[i];
        if (!strcmp(c->tensor, y->name) && c->first == c->last) return true;
    }
    return false;
}

static bool as_expr(Explainer *ex, Value *v, Expr *e) {
    int prec;
    const char *s = alg_text(ex->alg, multiply_out(ex, v), &prec);
    if (!s) return false;
    *e = expr(s, prec);
    if (prec == P_NEG) e->negated = s + strlen(pick(ex, "−", "-"));
    return true;
}

/* An atom: the instruction written with its operands multiplied out. */
static Ratio *atom_of(Explainer *ex, Value *v) {
    Expr a[3];
    for (int i = 0; i < v->nargs; i++)
        if (!as_expr(ex, v->args[i], &a[i])) return alg_too_large(ex->alg);
    Expr e = render_op(ex, v, a);
    return alg_atom(ex->alg, e.s, e.prec);
}

/* softmax_ce_grad(z, y, g) = g ⊙ (softmax(z) ⊙ rowsum(y) − y). */
static Ratio *softmax_ce_gradient(Explainer *ex, Value *v) {
    Algebra *A = ex->alg;
    Expr z, y;
    if (!as_expr(ex, v->args[0], &z) || !as_expr(ex, v->args[1], &y)) return alg_too_large(A);
    Ratio *rowsum = alg_atom(A, fn_call(ex, "rowsum", y.s), P_ATOM);
    if (v->args[1]->op == OP_one_hot) {
        rowsum = alg_num(A, 1); /* a row of one_hot(ids) holds one 1 */
    } else if (is_one_hot(ex, v->args[1])) {
        rowsum = alg_num(A, 1);
        assume(ex, v,
               xprintf("rowsum(%s) = 1: %s is one-hot (the train block reads it from one "
                       "class column)",
                       y.s, y.s));
    }
    Ratio *softmax = alg_atom(A, fn_call(ex, "softmax", z.s), P_ATOM);
    Ratio *inner = alg_sub(A, alg_mul(A, softmax, rowsum), multiply_out(ex, v->args[1]));
    return alg_mul(A, multiply_out(ex, v->args[2]), inner);
}

/* where(c, a, 0) = a ⊙ [c > 0], the bracket an atom. */
static Ratio *selection_out(Explainer *ex, Value *v) {
    Expr c;
    if (!v->args[2] || v->args[2]->op != OP_const || v->args[2]->num != 0 ||
        !as_expr(ex, v->args[0], &c))
        return atom_of(ex, v);
    Ratio *bracket = alg_atom(ex->alg, xprintf("[%s > 0]", wrap(ex, c, P_SUM)), P_ATOM);
    return alg_mul(ex->alg, multiply_out(ex, v->args[1]), bracket);
}

/* sigmoid(−u) = 1 − sigmoid(u): one atom for both, so that their sums cancel (bce_logits'
 * gradient, y ⊙ sigmoid(−z) + y ⊙ sigmoid(z), is y). A −u the source named keeps its name. */
static Ratio *sigmoid_out(Explainer *ex, Value *v) {
    Value *u = v->args[0];
    Expr inner;
    if (u->op != OP_neg || u->name || !as_expr(ex, u->args[0], &inner)) return atom_of(ex, v);
    Ratio *sigmoid = alg_atom(ex->alg, fn_call(ex, op_info[OP_sigmoid].name, inner.s), P_ATOM);
    return alg_sub(ex->alg, alg_num(ex->alg, 1), sigmoid);
}

static Ratio *convert(Explainer *ex, Value *v) {
    Algebra *A = ex->alg;
    if (v->op == OP_const) return alg_num(A, v->num);
    if (v->op == OP_inv_batch) return alg_div(A, alg_num(A, 1), alg_atom_last(A, "B"));
    if (!v->backward && (v->name || op_info[v->op].cls == OPC_SRC))
        return alg_name(A, name_of(ex, v));
    Value **a = v->args;
    /* the operands in order, so that atoms are met left to right, whatever order a compiler
     * evaluates the arguments of alg_add(A, multiply_out(..), multiply_out(..)) in */
    for (int i = 0; i < v->nargs; i++) multiply_out(ex, a[i]);
    switch (v->op) {
    case OP_add:
        if (is_guard(a[1]) && a[0]->op != OP_const) return without_guard(ex, v, a[1], a[0]);
        if (is_guard(a[0]) && a[1]->op != OP_const) return without_guard(ex, v, a[0], a[1]);
        return alg_add(A, multiply_out(ex, a[0]), multiply_out(ex, a[1]));
    case OP_sub:
        if (is_guard(a[1]) && a[0]->op != OP_const) return without_guard(ex, v, a[1], a[0]);
        return alg_sub(A, multiply_out(ex, a[0]), multiply_out(ex, a[1]));
    case OP_mul: return alg_mul(A, multiply_out(ex, a[0]), multiply_out(ex, a[1]));
    case OP_div: return alg_div(A, multiply_out(ex, a[0]), multiply_out(ex, a[1]));
    case OP_neg: return alg_neg(A, multiply_out(ex, a[0]));
    case OP_pow:
        /* a power of a sum stays whole, (p − y)², rather than expanded */
        if (a[1]->op == OP_const && fabs(a[1]->num) <= 9 && a[1]->num == floor(a[1]->num) &&
            (a[1]->num < 2 || alg_terms(multiply_out(ex, a[0])) < 2))
            return alg_pow(A, multiply_out(ex, a[0]), (int)a[1]->num);
        return atom_of(ex, v);
    case OP_broadcast: return multiply_out(ex, a[0]); /* the line's shape says where to */
    case OP_where: return selection_out(ex, v);
    case OP_sigmoid: return sigmoid_out(ex, v);
    case OP_softmax_ce_grad: return softmax_ce_gradient(ex, v);
    default: return atom_of(ex, v);
    }
}

/* v multiplied out, made once: a value read by many lines (and many values) is one
 * expression of bounded size, so the work is linear in the graph. */
static Ratio *multiply_out(Explainer *ex, Value *v) {
    if (v->id >= ex->n_ids) return convert(ex, v);
    if (ex->multiplied[v->id]) return ex->multiplied[v->id];
    ex->multiplied[v->id] = convert(ex, v);
    for (int i = 0; i < v->nargs; i++) { /* what its operands took as given, it did too */
        const StrList *from = &ex->given[v->args[i]->id];
        for (int j = 0; ex->multiplied[v->args[i]->id] && j < from->n; j++)
            add_unique(&ex->given[v->id], from->v[j]);
    }
    return ex->multiplied[v->id];
}

/* Every instruction, operands first (insts is in a valid order), so that multiplying one out
 * finds its operands done: no recursion as deep as the model (a chain of 2000 layers), and
 * atoms are met in the order of the source, whichever param a section is about. */
static void multiply_all(Explainer *ex) {
    for (int i = 0; i < ex->g->insts.n; i++) /* a leaf when first read, as in a + b */
        if (op_info[ex->g->insts.v[i]->op].cls != OPC_SRC) multiply_out(ex, ex->g->insts.v[i]);
}

static const char *too_large_text(const Explainer *ex) {
    return ex->tex ? "\\text{(too large to multiply out)}" : "(too large to multiply out)";
}

/* The right-hand side of an item multiplied out. */
static const char *multiplied_text(Explainer *ex, const Item *it) {
    if (it->kind == ITEM_SEED && !it->grad)
        return ex->g->loss->varying ? pick(ex, "1/B", "\\frac{1}{B}") : "1";
    int prec;
    const char *s = alg_text(ex->alg, multiply_out(ex, it->grad), &prec);
    for (int i = 0; i < ex->given[it->grad->id].n; i++)
        add_unique(&ex->assumed, ex->given[it->grad->id].v[i]);
    return s ? s : too_large_text(ex);
}

/* "t17 = 1 − p + 1e-07": a guarded value's definition keeps its guard. */
static const char *guarded_definition(Explainer *ex, Value *of) {
    Expr a[2];
    for (int i = 0; i < 2; i++)
        if (of->args[i]->op == OP_const)
            a[i] = number(ex, of->args[i]->num);
        else if (!as_expr(ex, of->args[i], &a[i]))
            a[i] = atom(too_large_text(ex));
    return xprintf("%s = %s", name_of(ex, of), render_op(ex, of, a).s);
}

/* "where t11 = h · p.W + p.b" for a line about an unnamed forward value. */
static const char *definition_out(Explainer *ex, Value *of) {
    if (of->name || op_info[of->op].cls == OPC_SRC) return NULL;
    if ((of->op == OP_add || of->op == OP_sub) && (is_guard(of->args[0]) || is_guard(of->args[1])))
        return guarded_definition(ex, of); /* the guard is what the line is about */
    int prec;
    const char *s = alg_text(ex->alg, multiply_out(ex, of), &prec);
    return xprintf("%s = %s", name_of(ex, of), s ? s : too_large_text(ex));
}

/* ---- output ---- */

static int text_width(const char *s) {
    int n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static const char *where_str(const Value *v) {
    if (!v->loc.file) return NULL;
    return xprintf("%s:%d:%d%s%s", base_name(v->loc.file->path), v->loc.line, v->loc.col,
                   v->what ? " " : "", v->what ? v->what : "");
}

static const char *step_name(const Value *v) {
    return v->custom ? xprintf("fn %s", v->custom->fn->fn) : op_info[v->op].name;
}

#define NOTE_WIDTH 100

/* "#7 tanh: h = tanh(t6)    rule: ...    at xor.nn:10:16 tanh(...)": the parts that do not
 * fit in NOTE_WIDTH columns go on lines of their own. */
static void print_note_text(Explainer *ex, const Note *n, int term_width) {
    const char *indent = n->term ? "        " : "      ";
    const char *parts[3] = {
        n->term ? xprintf("%s%*s  ", n->term, term_width - text_width(n->term), "") : "", NULL,
        NULL};
    if (n->step)
        parts[0] = xprintf("%s#%d %s: %s%s%s", parts[0], n->step->id, step_name(n->step),
                           definition(ex, n->step), n->text ? ", " : "", n->text ? n->text : "");
    else if (n->text)
        parts[0] = xprintf("%s%s", parts[0], n->text);
    /* autodiff words a fn's own rule as "rule of fn f: grad u = ..." */
    if (n->step && n->rule)
        parts[1] = strncmp(n->rule, "rule of ", 8) ? xprintf("rule: %s", n->rule) : n->rule;
    if (n->step && where_str(n->step)) parts[2] = xprintf("at %s", where_str(n->step));
    int col = text_width(indent) + text_width(parts[0]);
    fprintf(ex->out, "%s%s", indent, parts[0]);
    for (int i = 1; i < 3; i++) {
        if (!parts[i]) continue;
        if (col + 4 + text_width(parts[i]) > NOTE_WIDTH) {
            fprintf(ex->out, "\n%s  %s", indent, parts[i]);
            col = text_width(indent) + 2 + text_width(parts[i]);
        } else {
            fprintf(ex->out, "    %s", parts[i]);
            col += 4 + text_width(parts[i]);
        }
    }
    fputc('\n', ex->out);
}

/* Inline code in Markdown: a fence longer than any run of backticks inside. */
static const char *code(const char *s) {
    int run = 0, longest = 0;
    for (const char *c = s; *c; c++) {
        run = *c == '`' ? run + 1 : 0;
        if (run > longest) longest = run;
    }
    char *fence = xalloc((size_t)longest + 2);
    memset(fence, '`', (size_t)longest + 1);
    const char *pad = longest ? " " : "";
    return xprintf("%s%s%s%s%s", fence, pad, s, pad, fence);
}

static void print_note_markdown(Explainer *ex, const Note *n) {
    fputs(n->term ? "  - " : "- ", ex->out);
    if (n->term) fprintf(ex->out, "$%s$: ", n->term);
    if (!n->step) {
        fprintf(ex->out, "%s\n", n->text ? n->text : "");
        return;
    }
    fprintf(ex->out, "step #%d %s: $%s$", n->step->id, code(step_name(n->step)),
            definition(ex, n->step));
    if (n->text) fprintf(ex->out, ", %s", n->text);
    if (n->rule) fprintf(ex->out, "; rule %s", code(n->rule));
    if (n->step->loc.file)
        fprintf(ex->out, "; at %s:%d:%d", base_name(n->step->loc.file->path), n->step->loc.line,
                n->step->loc.col);
    if (n->step->what) fprintf(ex->out, " %s", code(n->step->what));
    fputc('\n', ex->out);
}

#define SHAPE_COLUMN 64

static const char *values_text(Explainer *ex, const char *probe);
static bool is_computed(const Value *v);

/* What a line says its value is: the chain's expression, multiplied out, or numbers. */
static const char *item_rhs(Explainer *ex, Item *it) {
    switch (ex->rq->form) {
    case EXPLAIN_MULTIPLIED: return multiplied_text(ex, it);
    case EXPLAIN_VALUES:
        if (!is_computed(it->grad)) /* the seed, or a constant: at B = 1, 1/B is 1 */
            return it->grad && it->grad->op == OP_const ? ir_number_str(it->grad->num) : "1";
        return values_text(ex, xprintf("#g%d", it->of->id));
    default: return it->expr;
    }
}

/* Under a line of the other forms: the unnamed value it is about, multiplied out, or the
 * forward value's own numbers. */
static const char *item_extra(Explainer *ex, Item *it) {
    if (ex->rq->form == EXPLAIN_MULTIPLIED) {
        const char *def = definition_out(ex, it->of);
        return def ? xprintf(ex->tex ? "where $%s$" : "where %s", def) : NULL;
    }
    if (!is_computed(it->of)) return NULL;
    const char *numbers = values_text(ex, xprintf("#v%d", it->of->id));
    /* an unnamed value says what it is: "t10 = h · p.W = 5.67" */
    const char *what = it->of->name || op_info[it->of->op].cls == OPC_SRC ? name_of(ex, it->of)
                                                                          : definition(ex, it->of);
    return xprintf(ex->tex ? "$%s = %s$" : "%s = %s", what, numbers);
}

static void print_items_text(Explainer *ex) {
    int lhs_width = 0;
    for (int i = 0; i < ex->items.n; i++) {
        int w = text_width(grad_ref(ex, ex->items.v[i].of));
        if (w > lhs_width) lhs_width = w;
    }
    for (int i = 0; i < ex->items.n; i++) {
        Item *it = &ex->items.v[i];
        const char *lhs = grad_ref(ex, it->of);
        const char *line =
            xprintf("  %s%*s = %s", lhs, lhs_width - text_width(lhs), "", item_rhs(ex, it));
        int pad = SHAPE_COLUMN - text_width(line);
        fprintf(ex->out, "%s%*s%s\n", line, pad > 2 ? pad : 2, "", shape_str(it->of->shape));
        if (ex->rq->form != EXPLAIN_CHAIN) {
            const char *extra = item_extra(ex, it);
            if (extra) fprintf(ex->out, "      %s\n", extra);
            continue;
        }
        int term_width = 0;
        for (int j = 0; j < it->notes.n; j++)
            if (it->notes.v[j].term && text_width(it->notes.v[j].term) > term_width)
                term_width = text_width(it->notes.v[j].term);
        for (int j = 0; j < it->notes.n; j++) print_note_text(ex, &it->notes.v[j], term_width);
    }
}

static void print_items_markdown(Explainer *ex) {
    for (int i = 0; i < ex->items.n; i++) {
        Item *it = &ex->items.v[i];
        fprintf(ex->out, "$$%s = %s$$\n\n", grad_ref(ex, it->of), item_rhs(ex, it));
        fprintf(ex->out, "Shape %s.\n\n", code(shape_str(it->of->shape)));
        if (ex->rq->form != EXPLAIN_CHAIN) {
            const char *extra = item_extra(ex, it);
            if (extra) fprintf(ex->out, "- %s\n\n", extra);
            continue;
        }
        for (int j = 0; j < it->notes.n; j++) print_note_markdown(ex, &it->notes.v[j]);
        fputc('\n', ex->out);
    }
}

/* What multiplying out took as given, under the section. */
static void print_assumed(Explainer *ex) {
    if (ex->assumed.n) fputs(ex->tex ? "Taken as given:\n\n" : "\n", ex->out);
    for (int i = 0; i < ex->assumed.n; i++)
        fprintf(ex->out, ex->tex ? "- %s\n" : "  taken as given: %s\n", ex->assumed.v[i]);
}

static void print_chain(Explainer *ex, Value *param) {
    double paths;
    const char *chain = chain_rule(ex, param, &paths);
    if (!chain) {
        fprintf(ex->out,
                ex->tex ? "The chain rule in one line would be a sum over %.0f paths from `%s` to "
                          "the loss; the lines above add them up step by step.\n"
                        : "\n  chain rule: a sum over %.0f paths from %s to the loss, too many to "
                          "write as one line; the lines above add them up step by step\n",
                paths, param->name);
        return;
    }
    if (ex->tex)
        fprintf(ex->out, "The chain rule in one line:\n\n$$%s$$\n", chain);
    else
        fprintf(ex->out, "\n  chain rule: %s\n", chain);
}

/* ---- params without a gradient ---- */

/* The flat steps (sign, step, a fn without a rule for the argument) where the gradient on
 * its way from the loss to the param stops. */
static void find_blockers(Explainer *ex, Value *param, ValueList *blockers, bool *affects) {
    Graph *g = ex->g;
    bool *dep = ex->dep;
    for (int i = 0; i < g->n_forward; i++) {
        Value *v = g->insts.v[i];
        bool d = v == param;
        for (int j = 0; j < v->nargs; j++) d |= dep[v->args[j]->id];
        dep[v->id] = d;
        if (!d || v == param || !ex->reaches[v->id]) continue;
        bool passed = false;
        for (int j = 0; j < ex->grads[v->id].n; j++) passed |= dep[ex->grads[v->id].v[j]->id];
        if (!passed) vec_push(blockers, v);
    }
    *affects = dep[g->loss->id];
}

static void explain_no_gradient(Explainer *ex, Value *param) {
    ValueList blockers = {0};
    bool affects;
    find_blockers(ex, param, &blockers, &affects);
    const char *name = ex->tex ? code(param->name) : param->name;
    if (!affects) {
        fprintf(ex->out, "%s%s does not affect the loss, so it gets no gradient.\n",
                ex->tex ? "" : "  ", name);
        return;
    }
    fprintf(ex->out,
            "%s%s gets no gradient: every path from it to the loss goes through a step whose "
            "derivative is zero:\n%s",
            ex->tex ? "" : "  ", name, ex->tex ? "\n" : "");
    Item it = {0};
    for (int i = 0; i < blockers.n; i++) {
        Value *b = blockers.v[i];
        const char *rule = b->custom
                               ? xprintf("fn %s has no backward rule for it", b->custom->fn->fn)
                           : op_info[b->op].flags & OPF_INDICES /* flat in its ids alone */
                               ? xprintf("%s (flat)", ir_rule_text(b->op, b->nargs - 1))
                               : xprintf("%s (flat)", op_info[b->op].deriv);
        add_note(&it, NULL, b, rule, NULL);
    }
    for (int i = 0; i < it.notes.n; i++) {
        if (ex->tex)
            print_note_markdown(ex, &it.notes.v[i]);
        else
            print_note_text(ex, &it.notes.v[i], 0);
    }
}

/* ---- sections ---- */

static void reset_section(Explainer *ex) {
    size_t n = (size_t)ex->n_ids;
    memset(ex->seen, 0, n * sizeof *ex->seen);
    memset(ex->dep, 0, n * sizeof *ex->dep);
    memset(ex->ipdom, 0, n * sizeof *ex->ipdom);
    ex->items.n = 0;
    ex->assumed.n = 0;
}

static void print_section_header(Explainer *ex, Value *param, bool surrogate) {
    const char *at = param->loc.file ? xprintf("%s:%d:%d", base_name(param->loc.file->path),
                                               param->loc.line, param->loc.col)
                                     : NULL;
    if (ex->tex) {
        fprintf(ex->out, "\n## %s %s\n\n", code(param->name), code(shape_str(param->shape)));
        if (at) fprintf(ex->out, "The param declared at %s.", at);
        if (surrogate)
            fputs(" A surrogate rule (`grad u ~ ...`) shapes its gradient: it is not the true "
                  "derivative.",
                  ex->out);
        fputs(at || surrogate ? "\n\n" : "", ex->out);
        return;
    }
    fprintf(ex->out, "\n%s %s", grad_ref(ex, param), shape_str(param->shape));
    if (at) fprintf(ex->out, "  (the param declared at %s)", at);
    fputc('\n', ex->out);
    if (surrogate)
        fputs("  note: a surrogate rule (grad u ~ ...) shapes this gradient: it is not the true "
              "derivative\n",
              ex->out);
    fputc('\n', ex->out);
}

/* The lines of param index's section, in order; false when no gradient reaches it. */
static bool collect_section(Explainer *ex, int index) {
    Graph *g = ex->g;
    Value *param = g->params.v[index];
    reset_section(ex);
    Value *grad = g->param_grads ? g->param_grads[index] : NULL;
    if (!grad) return false;
    ex->line = NULL;
    want_gradient(ex, param, grad);
    if (!ex->seen[g->loss->id]) new_item(ex, ITEM_SEED, g->loss, NULL, NULL);
    for (int k = 0; k < ex->items.n; k++) render_item(ex, k);
    for (int k = 0; k < ex->items.n; k++) ex->items.v[k].order = item_order(ex, &ex->items.v[k]);
    qsort(ex->items.v, (size_t)ex->items.n, sizeof *ex->items.v, compare_items);
    return true;
}

static void explain_param(Explainer *ex, int index) {
    Graph *g = ex->g;
    Value *param = g->params.v[index];
    print_section_header(ex, param, g->param_surrogate && g->param_surrogate[index]);
    if (!collect_section(ex, index)) {
        reset_section(ex);
        explain_no_gradient(ex, param);
        return;
    }
    if (ex->tex)
        print_items_markdown(ex);
    else
        print_items_text(ex);
    if (ex->rq->form == EXPLAIN_CHAIN) print_chain(ex, param);
    if (ex->rq->form == EXPLAIN_MULTIPLIED) print_assumed(ex);
}

/* ---- numbers at one sample ---- */

#define VALUES_SHOWN 6

/* "0.25", "[0.1, -0.2, 0.3]", or the first few of many and how many there are. */
static const char *values_text(Explainer *ex, const char *probe) {
    const char *line = ex->rq->lookup ? ex->rq->lookup(ex->rq->lookup_ctx, probe) : NULL;
    if (!line) return "(not computed)";
    StrBuf b = {0};
    int n = 0;
    double largest = 0;
    for (const char *p = line; *p;) {
        char *end;
        double x = strtod(p, &end);
        if (end == p) break;
        if (n < VALUES_SHOWN) sb_printf(&b, "%s%.6g", n ? ", " : "", x == 0 ? 0 : x); /* no -0 */
        if (fabs(x) > largest || isnan(x)) largest = fabs(x);
        n++;
        p = end;
    }
    const char *s = n == 1              ? sb_str(&b)
                    : n <= VALUES_SHOWN ? xprintf("[%s]", sb_str(&b))
                                        : xprintf("[%s, …] (%d numbers, the largest |x| %.6g)",
                                                  sb_str(&b), n, largest);
    return ex->tex ? xprintf("\\text{%s}", s) : s;
}

static void print_header(Explainer *ex) {
    Graph *g = ex->g;
    const char *file = g->source_path ? base_name(g->source_path) : g->name;
    if (ex->rq->form != EXPLAIN_CHAIN) {
        const char *what =
            ex->rq->form == EXPLAIN_MULTIPLIED
                ? "each line of its chain (nnc explain %s)\nmultiplied out: the gradients and "
                  "the unnamed values it reads substituted back and\nsimplified, down to the "
                  "values the source names; B is the batch's size."
                : "each line of its chain (nnc explain %s) with its numbers at one sample\n"
                  "(%s),\ncomputed in f64 as predict computes (no dropout; batch norm's running "
                  "statistics),\nand under it the numbers of the value it is the gradient of. "
                  "The cost is that\nsample's loss (B = 1).";
        fprintf(ex->out,
                ex->tex ? "# The gradients of model `%s` (%s)\n\n" : "model %s (%s): ", g->name,
                file);
        const char *said = xprintf(what, file, ex->rq->at ? ex->rq->at : "");
        fprintf(ex->out, "%c%s", ex->tex ? toupper((unsigned char)said[0]) : said[0], said + 1);
        fputs(ex->tex ? "\n"
                      : "\n  ⊙ multiplies elementwise, · is a matrix product (or a product with a "
                        "number),\n  ᵀ transposes, Σ_batch sums over the batch's samples; shapes "
                        "are per sample.\n",
              ex->out);
        return;
    }
    if (ex->tex) {
        fprintf(ex->out,
                "# The chain rule in model `%s`\n\n"
                "How the gradient of the cost reaches each param of `%s` (%s), read off the "
                "backward pass nnc derived (`nnc %s --emit=grad`). Each equation defines one "
                "gradient in terms of gradients defined below it, down to the seed. "
                "$\\odot$ multiplies elementwise, $\\cdot$ is a matrix product (or a product "
                "with a number), $^{\\top}$ transposes, $\\sum_{\\mathrm{batch}}$ sums over the "
                "batch's samples; shapes are per sample.\n",
                g->name, g->name, file, file);
        return;
    }
    fprintf(ex->out,
            "model %s (%s): how the gradient of the cost reaches each param, read off the\n"
            "backward pass nnc derived (nnc %s --emit=grad). Each line defines one gradient\n"
            "in terms of gradients defined below it, down to the seed.\n"
            "  ⊙ multiplies elementwise, · is a matrix product (or a product with a number),\n"
            "  ᵀ transposes, Σ_batch sums over the batch's samples; shapes are per sample.\n",
            g->name, file, file);
}

static int find_param(Graph *g, const char *wrt) {
    if (wrt[0] == '@') wrt++;
    for (int i = 0; i < g->params.n; i++)
        if (!strcmp(g->params.v[i]->name, wrt)) return i;
    return -1;
}

static int unknown_param(Graph *g, const char *wrt) {
    const char *list = "";
    for (int i = 0; i < g->params.n; i++)
        list = xprintf("%s%s%s", list, i ? ", " : "", g->params.v[i]->name);
    diag_fatal_noloc("model %s has no param '%s' (%s%s)", g->name, wrt,
                     g->params.n ? "its params: " : "it has no params", list);
    Suggestion near = suggest_start(wrt[0] == '@' ? wrt + 1 : wrt);
    for (int i = 0; i < g->params.n; i++) suggest_consider(&near, g->params.v[i]->name);
    diag_did_you_mean(&near);
    return 1;
}

static Explainer *new_explainer(FILE *out, Graph *g, const ExplainRequest *rq) {
    Explainer *ex = xalloc(sizeof *ex);
    *ex = (Explainer){
        .out = out, .g = g, .tex = rq->format == EXPLAIN_MARKDOWN, .n_ids = g->next_id, .rq = rq};
    size_t n = (size_t)ex->n_ids;
    ex->pos = xalloc(n * sizeof *ex->pos);
    for (size_t i = 0; i < n; i++) ex->pos[i] = -1;
    ex->needs = xalloc(n * sizeof *ex->needs);
    ex->reaches = xalloc(n * sizeof *ex->reaches);
    ex->grads = xalloc(n * sizeof *ex->grads);
    ex->users = xalloc(n * sizeof *ex->users);
    ex->dep = xalloc(n * sizeof *ex->dep);
    ex->ipdom = xalloc(n * sizeof *ex->ipdom);
    ex->seen = xalloc(n * sizeof *ex->seen);
    ex->multiplied = xalloc(n * sizeof *ex->multiplied);
    ex->given = xalloc(n * sizeof *ex->given);
    ex->alg = alg_new(ex->tex);
    trace_flow(ex);
    number_pass_forest(ex);
    return ex;
}

int explain(FILE *out, Graph *g, const ExplainRequest *rq) {
    int only = rq->wrt ? find_param(g, rq->wrt) : -1;
    if (rq->wrt && only < 0) return unknown_param(g, rq->wrt);
    Explainer *ex = new_explainer(out, g, rq);
    if (rq->form == EXPLAIN_MULTIPLIED) multiply_all(ex);
    print_header(ex);
    if (!g->params.n)
        fputs(ex->tex ? "\nThe model has no params.\n" : "\n(the model has no params)\n", out);
    for (int i = 0; i < g->params.n; i++)
        if (only < 0 || i == only) explain_param(ex, i);
    return 0;
}

/* A value the executable computes (a constant or 1/B explain writes itself). */
static bool is_computed(const Value *v) {
    return v && v->op != OP_const && v->op != OP_inv_batch;
}

static void add_probe(Graph *g, HashMap *names, const char *kind, const Value *of, Value *v) {
    const char *name = xprintf("#%s%d", kind, of->id);
    if (!is_computed(v) || strmap_get(names, name)) return;
    strmap_put(names, name, v);
    vec_push(&g->bindings, ((NamedValue){name, v}));
}

int explain_probes(Graph *g, const char *wrt) {
    int only = wrt ? find_param(g, wrt) : -1;
    if (wrt && only < 0) return unknown_param(g, wrt);
    ExplainRequest rq = {.form = EXPLAIN_VALUES};
    Explainer *ex = new_explainer(NULL, g, &rq);
    HashMap names = {0};
    g->bindings.n = 0;
    for (int i = 0; i < g->params.n; i++) {
        if ((only >= 0 && i != only) || !collect_section(ex, i)) continue;
        for (int k = 0; k < ex->items.n; k++) {
            Item *it = &ex->items.v[k];
            add_probe(g, &names, "g", it->of, it->grad);
            add_probe(g, &names, "v", it->of, it->of);
        }
    }
    return 0;
}
