/* ir.c: the op table, building IR values, and the shape rule of each op class. */
#include "ir.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the op table (ops.def) ---- */

/* scalar_NAME for every elementwise row: its FOLD expression over the operands a, b, c and
 * the options by name. A NOFOLD row gets one that op_info does not point to. */
#define NO_OPTIONS          (void)0
#define UNUSED              __attribute__((unused))
#define OPTION(n, d, valid) const double n UNUSED = opt[0]
/* (statements without a comma between them: the options pass through one more macro) */
#define OPTIONS(n1, d1, v1, n2, d2, v2)                                                            \
    const double n1 UNUSED = opt[0];                                                               \
    const double n2 UNUSED = opt[1]
#define FOLD(expression) (expression)
#define NOFOLD           NAN
#define SCALAR_FN_SRC(name, options, scalar)
#define SCALAR_FN_EW(name, options, scalar)                                                        \
    static double scalar_##name(const double x[3], const double *opt UNUSED) {                     \
        const double a UNUSED = x[0], b UNUSED = x[1], c UNUSED = x[2];                            \
        options;                                                                                   \
        return scalar;                                                                             \
    }
#define SCALAR_FN_REDUCE SCALAR_FN_SRC
#define SCALAR_FN_ROW    SCALAR_FN_SRC
#define SCALAR_FN_MATMUL SCALAR_FN_SRC
#define OP(name, arity, class, surface, options, scalar, ...)                                      \
    SCALAR_FN_##class(name, options, scalar)
#include "ops.def"
#undef OP
#undef NO_OPTIONS
#undef OPTION
#undef OPTIONS
#undef FOLD
#undef NOFOLD
#undef UNUSED

/* The row's columns as OpInfo fields. */
#define CALL(n)                         .call = #n
#define INFIX(c)                        .symbol = c
#define PREFIX(c)                       .symbol = c
#define INTERNAL                        .call = NULL
#define ANY                             false, 0, 0
#define RANGE(low, below)               true, low, below
#define NO_OPTIONS                      .n_options = 0
#define OPTION(n, d, valid)             .n_options = 1, .options = {{#n, d, valid}}
#define OPTIONS(n1, d1, v1, n2, d2, v2) .n_options = 2, .options = {{#n1, d1, v1}, {#n2, d2, v2}}
#define FOLD(expression)                true
#define NOFOLD                          false
#define SCALAR_SRC(op, fold)            .scalar = NULL
#define SCALAR_EW(op, fold)             .scalar = (fold) ? scalar_##op : NULL
#define SCALAR_REDUCE                   SCALAR_SRC
#define SCALAR_ROW                      SCALAR_SRC
#define SCALAR_MATMUL                   SCALAR_SRC
const OpInfo op_info[OP_COUNT] = {
#define OP(name_, arity_, class, surface, options, scalar, flags_, deriv_, doc_)                   \
    [OP_##name_] = {.name = #name_,                                                                \
                    .arity = arity_,                                                               \
                    .cls = OPC_##class,                                                            \
                    surface,                                                                       \
                    options,                                                                       \
                    SCALAR_##class(name_, scalar),                                                 \
                    .flags = flags_,                                                               \
                    .deriv = deriv_,                                                               \
                    .doc = doc_},
#include "ops.def"
#undef OP
};

Op op_by_call(const char *name) {
    for (int op = 0; op < OP_COUNT; op++)
        if (op_info[op].call && !strcmp(op_info[op].call, name)) return (Op)op;
    return OP_COUNT;
}

Op op_by_symbol(char symbol, int arity) {
    for (int op = 0; op < OP_COUNT; op++)
        if (op_info[op].symbol == symbol && op_info[op].arity == arity) return (Op)op;
    return OP_COUNT;
}

/* ---- shapes ---- */

static bool checked_numel(Shape s, int64_t *numel) {
    int64_t n = 1;
    for (int i = 0; i < s.rank; i++)
        if (s.dim[i] < 0 || !checked_mul(n, s.dim[i], &n)) return false;
    *numel = n;
    return true;
}

int64_t shape_numel(Shape s) {
    int64_t n;
    if (!checked_numel(s, &n)) {
        fprintf(stderr, "nnc: internal error: the shape %s has too many elements\n", shape_str(s));
        abort();
    }
    return n;
}

bool shape_fits(Shape s) {
    int64_t n;
    return checked_numel(s, &n) && n <= NNC_MAX_TENSOR_ELEMS;
}

bool shape_eq(Shape a, Shape b) {
    if (a.rank != b.rank) return false;
    for (int i = 0; i < a.rank; i++)
        if (a.dim[i] != b.dim[i]) return false;
    return true;
}

bool shape_is_suffix(Shape a, Shape b) {
    if (a.rank > b.rank) return false;
    for (int i = 0; i < a.rank; i++)
        if (a.dim[i] != b.dim[b.rank - a.rank + i]) return false;
    return true;
}

char *shape_str(Shape s) {
    char buf[128];
    int n = snprintf(buf, sizeof buf, "[");
    for (int i = 0; i < s.rank; i++)
        n +=
            snprintf(buf + n, sizeof buf - (size_t)n, "%s%lld", i ? ", " : "", (long long)s.dim[i]);
    snprintf(buf + n, sizeof buf - (size_t)n, "]");
    return xstrdup(buf);
}

Shape shape_scalar(void) {
    return (Shape){0, {0}};
}

Shape shape_make(int rank, const int64_t *dims) {
    Shape s = {rank, {0}};
    for (int i = 0; i < rank; i++) s.dim[i] = dims[i];
    return s;
}

/* ---- graphs and values ---- */

Graph *graph_new(const char *name) {
    Graph *g = xalloc(sizeof *g);
    g->name = name;
    g->next_id = 1;
    return g;
}

static Value *new_value(Graph *g, Op op, Shape shape, bool varying) {
    Value *v = xalloc(sizeof *v);
    nnc_stats.ir_values++;
    v->id = g->next_id++;
    v->op = op;
    v->shape = shape;
    v->varying = varying;
    vec_push(&g->insts, v);
    return v;
}

Value *ir_leaf(Graph *g, Op op, const char *name, Shape shape, bool varying) {
    Value *v = new_value(g, op, shape, varying);
    v->name = name;
    return v;
}

Value *ir_const(Graph *g, double num) {
    Value *v = new_value(g, OP_const, shape_scalar(), false);
    v->num = num;
    return v;
}

Value *ir_inst(Graph *g, Op op, int nargs, Value **args, Shape shape, bool varying) {
    Value *v = new_value(g, op, shape, varying);
    v->nargs = nargs;
    for (int i = 0; i < nargs; i++) v->args[i] = args[i];
    return v;
}

/* ---- shape rules: one per op class, and one per row for REDUCE and ROW ---- */

/* Elementwise: every operand's shape is a suffix of the longest one (or of the shape given,
 * for SHAPE_GIVEN ops). */
static const char *shape_ew(Op op, int nargs, Value **args, Shape *shape, bool *varying) {
    bool given = op_info[op].flags & OPF_SHAPE_GIVEN;
    Shape out = given ? *shape : args[0]->shape;
    *varying = false;
    for (int i = 0; i < nargs; i++) {
        if (!given && args[i]->shape.rank > out.rank) out = args[i]->shape;
        *varying |= args[i]->varying;
    }
    for (int i = 0; i < nargs; i++) {
        if (shape_is_suffix(args[i]->shape, out)) continue;
        if (given)
            return xprintf("cannot %s %s to %s", op_info[op].name, shape_str(args[i]->shape),
                           shape_str(out));
        return xprintf("shapes %s and %s do not match: one must be a scalar, equal to the "
                       "other, or the other's trailing dimensions",
                       shape_str(args[0]->shape), shape_str(args[1]->shape));
    }
    *shape = out;
    *varying |= (op_info[op].flags & OPF_RANDOM) != 0; /* a mask per sample */
    return NULL;
}

/* A REDUCE or ROW op's rule: the result's shape (given in *shape for SHAPE_GIVEN ops) from
 * its operands, or what does not fit. *varying is already what the class says. */
typedef const char *ShapeRule(Value **args, Shape *shape, bool *varying);

/* ---- reductions: varying as the operand's ---- */

static const char *shape_sum(Value **args, Shape *shape, bool *varying) {
    (void)args, (void)varying;
    *shape = shape_scalar();
    return NULL;
}
#define shape_mean shape_sum

static const char *shape_sum_to(Value **args, Shape *shape, bool *varying) {
    (void)varying;
    if (!shape_is_suffix(*shape, args[0]->shape))
        return xprintf("cannot sum %s down to %s", shape_str(args[0]->shape), shape_str(*shape));
    return NULL;
}

static const char *shape_batch_sum(Value **args, Shape *shape, bool *varying) {
    if (!args[0]->varying) return "batch_sum of a value that does not vary over the batch";
    *shape = args[0]->shape;
    *varying = false;
    return NULL;
}

static const char *shape_batch_mean(Value **args, Shape *shape, bool *varying) {
    if (!args[0]->varying)
        return xprintf("batch_mean needs a value that varies per sample; %s is the same for "
                       "every sample",
                       ir_value_ref(args[0]));
    *shape = args[0]->shape;
    *varying = false;
    return NULL;
}

/* ---- rows: operand 0 has rank 1 or more; varying if any operand is ---- */

static const char *shape_softmax(Value **args, Shape *shape, bool *varying) {
    (void)varying;
    *shape = args[0]->shape;
    return NULL;
}
#define shape_log_softmax shape_softmax

static const char *shape_softmax_ce(Value **args, Shape *shape, bool *varying) {
    (void)varying;
    Shape z = args[0]->shape;
    if (!shape_eq(z, args[1]->shape))
        return xprintf("logits %s and target %s must have the same shape", shape_str(z),
                       shape_str(args[1]->shape));
    *shape = shape_scalar();
    return NULL;
}

static const char *shape_softmax_grad(Value **args, Shape *shape, bool *varying) {
    (void)varying;
    if (!shape_eq(args[0]->shape, args[1]->shape)) return "gradient shape differs from the value's";
    *shape = args[0]->shape;
    return NULL;
}
#define shape_log_softmax_grad shape_softmax_grad

static const char *shape_softmax_ce_grad(Value **args, Shape *shape, bool *varying) {
    (void)varying;
    if (!shape_eq(args[0]->shape, args[1]->shape) || args[2]->shape.rank != 0)
        return "softmax_ce_grad operands do not fit";
    *shape = args[0]->shape;
    return NULL;
}

#define SHAPE_SRC(name)
#define SHAPE_EW(name)
#define SHAPE_REDUCE(name) [OP_##name] = shape_##name,
#define SHAPE_ROW(name)    [OP_##name] = shape_##name,
#define SHAPE_MATMUL(name)
static ShapeRule *const shape_rules[OP_COUNT] = {
#define OP(name, arity, class, ...) SHAPE_##class(name)
#include "ops.def"
#undef OP
};

static const char *shape_reduce(Op op, Value **args, Shape *shape, bool *varying) {
    *varying = args[0]->varying;
    return shape_rules[op](args, shape, varying);
}

static const char *shape_row(Op op, int nargs, Value **args, Shape *shape, bool *varying) {
    *varying = false;
    for (int i = 0; i < nargs; i++) *varying |= args[i]->varying;
    if (args[0]->shape.rank == 0)
        return xprintf("%s needs a vector, got a scalar", op_info[op].name);
    return shape_rules[op](args, shape, varying);
}

/* A matmul operand as the per-sample matrix it stands for. */
static void matrix_view(const Value *v, bool transpose, int64_t *rows, int64_t *cols) {
    int64_t r, c;
    if (v->shape.rank == 1) {
        r = 1;
        c = v->shape.dim[0];
    } else {
        r = v->shape.dim[0];
        c = v->shape.dim[1];
    }
    *rows = transpose ? c : r;
    *cols = transpose ? r : c;
}

static const char *shape_matmul(Value *a, Value *b, const Value *proto, Shape *shape,
                                bool *varying) {
    bool ta = proto && proto->ta, tb = proto && proto->tb, sb = proto && proto->sum_batch;
    for (int i = 0; i < 2; i++) {
        Value *v = i ? b : a;
        if (v->shape.rank < 1 || v->shape.rank > 2)
            return xprintf("@ needs vectors or matrices, got %s %s",
                           v->shape.rank ? "a tensor of shape" : "a scalar", shape_str(v->shape));
    }
    int64_t ar, ac, br, bc;
    matrix_view(a, ta, &ar, &ac);
    matrix_view(b, tb, &br, &bc);
    if (ac != br)
        return xprintf("cannot multiply %s by %s: the inner dimensions %lld and %lld differ",
                       shape_str(a->shape), shape_str(b->shape), (long long)ac, (long long)br);
    /* Keep a dimension unless it is the 1 a vector operand stood in for. */
    Shape out = shape_scalar();
    bool keep_rows = !(a->shape.rank == 1 && !ta);
    bool keep_cols = !(b->shape.rank == 1 && tb);
    if (keep_rows) out.dim[out.rank++] = ar;
    if (keep_cols) out.dim[out.rank++] = bc;
    *shape = out;
    *varying = (a->varying || b->varying) && !sb;
    if (sb && !a->varying && !b->varying) return "sum over the batch of values that do not vary";
    return NULL;
}

static const char *shape_by_class(Op op, int nargs, Value **args, const Value *proto, Shape *shape,
                                  bool *varying) {
    switch (op_info[op].cls) {
    case OPC_SRC: return "a leaf has no operands";
    case OPC_EW: return shape_ew(op, nargs, args, shape, varying);
    case OPC_REDUCE: return shape_reduce(op, args, shape, varying);
    case OPC_ROW: return shape_row(op, nargs, args, shape, varying);
    case OPC_MATMUL: return shape_matmul(args[0], args[1], proto, shape, varying);
    }
    return "unknown op";
}

const char *ir_infer_shape(Op op, int nargs, Value **args, const Value *proto, Shape *shape,
                           bool *varying) {
    if (nargs != op_info[op].arity)
        return xprintf("%s takes %d operand%s, got %d", op_info[op].name, op_info[op].arity,
                       op_info[op].arity == 1 ? "" : "s", nargs);
    const char *err = shape_by_class(op, nargs, args, proto, shape, varying);
    if (!err && !shape_fits(*shape))
        return xprintf("the result, of shape %s, has more than %lld elements, the most a tensor "
                       "may have",
                       shape_str(*shape), (long long)NNC_MAX_TENSOR_ELEMS);
    return err;
}

static Value *build(Graph *g, Op op, int nargs, Value **args, const Value *proto, Shape shape) {
    bool varying;
    const char *err = ir_infer_shape(op, nargs, args, proto, &shape, &varying);
    if (err) {
        fprintf(stderr, "nnc: internal error: building %s: %s\n", op_info[op].name, err);
        abort();
    }
    Value *v = ir_inst(g, op, nargs, args, shape, varying);
    if (proto) {
        v->ta = proto->ta;
        v->tb = proto->tb;
        v->sum_batch = proto->sum_batch;
        memcpy(v->opt, proto->opt, sizeof v->opt);
    }
    return v;
}

Value *ir_build(Graph *g, Op op, int nargs, Value **args) {
    return build(g, op, nargs, args, NULL, shape_scalar());
}

Value *ir_build1(Graph *g, Op op, Value *a) {
    return ir_build(g, op, 1, &a);
}

Value *ir_build2(Graph *g, Op op, Value *a, Value *b) {
    Value *args[2] = {a, b};
    return ir_build(g, op, 2, args);
}

Value *ir_matmul(Graph *g, Value *a, Value *b, bool ta, bool tb, bool sum_batch) {
    Value proto = {.ta = ta, .tb = tb, .sum_batch = sum_batch};
    Value *args[2] = {a, b};
    return build(g, OP_matmul, 2, args, &proto, shape_scalar());
}

Value *ir_sum_to(Graph *g, Value *a, Shape shape) {
    return build(g, OP_sum_to, 1, &a, NULL, shape);
}

Value *ir_broadcast(Graph *g, Value *a, Shape shape) {
    return build(g, OP_broadcast, 1, &a, NULL, shape);
}

void ir_matmul_dims(const Value *mm, int64_t *M, int64_t *N, int64_t *K) {
    int64_t ar, ac, br, bc;
    matrix_view(mm->args[0], mm->ta, &ar, &ac);
    matrix_view(mm->args[1], mm->tb, &br, &bc);
    *M = ar;
    *K = ac;
    *N = bc;
}

void ir_count_uses(Graph *g) {
    for (int i = 0; i < g->insts.n; i++) g->insts.v[i]->uses = 0;
    for (int i = 0; i < g->insts.n; i++) {
        Value *v = g->insts.v[i];
        for (int j = 0; j < v->nargs; j++) v->args[j]->uses++;
    }
    if (g->loss) g->loss->uses++;
    if (g->output) g->output->uses++;
    if (g->param_grads)
        for (int i = 0; i < g->params.n; i++)
            if (g->param_grads[i]) g->param_grads[i]->uses++;
    for (int i = 0; i < g->state_updates.n; i++)
        if (g->state_updates.v[i]) g->state_updates.v[i]->uses++;
}

/* The shortest text that reads back as the same double: 0.1, not 0.10000000000000001. */
const char *ir_number_str(double x) {
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    return xstrdup(buf);
}

const char *ir_value_ref(const Value *v) {
    switch (v->op) {
    case OP_input:
    case OP_target: return xprintf("$%s", v->name);
    case OP_param: return xprintf("@%s", v->name);
    case OP_state: return xprintf("&%s", v->name);
    case OP_const: return ir_number_str(v->num);
    case OP_inv_batch: return "1/B";
    default: return v->name ? xprintf("%%%s", v->name) : xprintf("%%t%d", v->id);
    }
}
