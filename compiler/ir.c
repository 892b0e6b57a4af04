/* ir.c: building IR values and the shape rule of each op class. */
#include "ir.h"

#include <stdlib.h>
#include <string.h>

const OpInfo op_info[OP_COUNT] = {
#define OP(name, arity, class, deriv, doc) [OP_##name] = {#name, arity, OPC_##class, deriv, doc},
#include "ops.def"
#undef OP
};

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

/* ---- shape rules, one per op class ---- */

/* Elementwise: every operand's shape is a suffix of the longest one. */
static const char *shape_ew(Op op, int nargs, Value **args, Shape *shape, bool *varying) {
    Shape out = op == OP_broadcast ? *shape : args[0]->shape;
    *varying = false;
    for (int i = 0; i < nargs; i++) {
        if (op != OP_broadcast && args[i]->shape.rank > out.rank) out = args[i]->shape;
        *varying |= args[i]->varying;
    }
    for (int i = 0; i < nargs; i++) {
        if (shape_is_suffix(args[i]->shape, out)) continue;
        if (op == OP_broadcast)
            return xprintf("cannot broadcast %s to %s", shape_str(args[i]->shape), shape_str(out));
        return xprintf("shapes %s and %s do not match: one must be a scalar, equal to the "
                       "other, or the other's trailing dimensions",
                       shape_str(args[0]->shape), shape_str(args[1]->shape));
    }
    *shape = out;
    *varying |= op == OP_dropout; /* a mask per sample */
    return NULL;
}

static const char *shape_reduce(Op op, Value *a, Shape *shape, bool *varying) {
    *varying = a->varying;
    switch (op) {
    case OP_sum:
    case OP_mean: *shape = shape_scalar(); return NULL;
    case OP_sum_to:
        if (!shape_is_suffix(*shape, a->shape))
            return xprintf("cannot sum %s down to %s", shape_str(a->shape), shape_str(*shape));
        return NULL;
    case OP_batch_sum:
        if (!a->varying) return "batch_sum of a value that does not vary over the batch";
        *shape = a->shape;
        *varying = false;
        return NULL;
    default: return "not a reduction";
    }
}

static const char *shape_row(Op op, int nargs, Value **args, Shape *shape, bool *varying) {
    Shape z = args[0]->shape;
    *varying = false;
    for (int i = 0; i < nargs; i++) *varying |= args[i]->varying;
    if (z.rank == 0) return xprintf("%s needs a vector, got a scalar", op_info[op].name);
    switch (op) {
    case OP_softmax:
    case OP_log_softmax: *shape = z; return NULL;
    case OP_softmax_ce:
        if (!shape_eq(z, args[1]->shape))
            return xprintf("logits %s and target %s must have the same shape", shape_str(z),
                           shape_str(args[1]->shape));
        *shape = shape_scalar();
        return NULL;
    case OP_softmax_grad:
    case OP_log_softmax_grad:
        if (!shape_eq(z, args[1]->shape)) return "gradient shape differs from the value's";
        *shape = z;
        return NULL;
    case OP_softmax_ce_grad:
        if (!shape_eq(z, args[1]->shape) || args[2]->shape.rank != 0)
            return "softmax_ce_grad operands do not fit";
        *shape = z;
        return NULL;
    default: return "not a row op";
    }
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
    case OPC_REDUCE: return shape_reduce(op, args[0], shape, varying);
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
        v->num = proto->num;
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
    case OP_const: return ir_number_str(v->num);
    case OP_inv_batch: return "1/B";
    default: return v->name ? xprintf("%%%s", v->name) : xprintf("%%t%d", v->id);
    }
}
