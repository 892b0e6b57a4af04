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
#define OPTIONS3(n1, d1, v1, n2, d2, v2, n3, d3, v3)                                               \
    OPTIONS(n1, d1, v1, n2, d2, v2);                                                               \
    const double n3 UNUSED = opt[2]
#define OPTIONS4(n1, d1, v1, n2, d2, v2, n3, d3, v3, n4, d4, v4)                                   \
    OPTIONS3(n1, d1, v1, n2, d2, v2, n3, d3, v3);                                                  \
    const double n4 UNUSED = opt[3]
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
#define SCALAR_FN_LAYOUT SCALAR_FN_SRC
#define SCALAR_FN_WINDOW SCALAR_FN_SRC
#define OP(name, arity, class, surface, options, scalar, ...)                                      \
    SCALAR_FN_##class(name, options, scalar)
#include "ops.def"
#undef OP
#undef NO_OPTIONS
#undef OPTION
#undef OPTIONS
#undef OPTIONS3
#undef OPTIONS4
#undef FOLD
#undef NOFOLD
#undef UNUSED

/* The row's columns as OpInfo fields. */
#define CALL(n)                         .call = #n
#define INFIX(c)                        .symbol = c
#define PREFIX(c)                       .symbol = c
#define SUBSCRIPT(c)                    .symbol = c
#define INTERNAL                        .call = NULL
#define ANY                             false, 0, 0
#define RANGE(low, below)               true, low, below
#define NO_OPTIONS                      .n_options = 0
#define OPTION(n, d, valid)             .n_options = 1, .options = {{#n, d, valid}}
#define OPTIONS(n1, d1, v1, n2, d2, v2) .n_options = 2, .options = {{#n1, d1, v1}, {#n2, d2, v2}}
#define OPTIONS3(n1, d1, v1, n2, d2, v2, n3, d3, v3)                                               \
    .n_options = 3, .options = {{#n1, d1, v1}, {#n2, d2, v2}, {#n3, d3, v3}}
#define OPTIONS4(n1, d1, v1, n2, d2, v2, n3, d3, v3, n4, d4, v4)                                   \
    .n_options = 4, .options = {{#n1, d1, v1}, {#n2, d2, v2}, {#n3, d3, v3}, {#n4, d4, v4}}
#define FOLD(expression)     true
#define NOFOLD               false
#define SCALAR_SRC(op, fold) .scalar = NULL
#define SCALAR_EW(op, fold)  .scalar = (fold) ? scalar_##op : NULL
#define SCALAR_REDUCE        SCALAR_SRC
#define SCALAR_ROW           SCALAR_SRC
#define SCALAR_MATMUL        SCALAR_SRC
#define SCALAR_WINDOW        SCALAR_SRC
#define SCALAR_LAYOUT        SCALAR_SRC
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

const char *ir_rule_text(Op op, int operand) {
    const char *s = op_info[op].deriv;
    for (int i = 0; i < operand; i++) {
        const char *comma = strstr(s, ", ");
        if (!comma) break;
        s = comma + 2;
    }
    const char *end = strstr(s, ", ");
    return end ? xstrndup(s, (size_t)(end - s)) : s;
}

Op op_by_call(const char *name) {
    for (int op = 0; op < OP_COUNT; op++)
        if (op_info[op].call && !strcmp(op_info[op].call, name)) return (Op)op;
    return OP_COUNT;
}

bool constant_builtin(const char *name, double *value) {
    static const struct {
        const char *name;
        double value;
    } constants[] = {{"zeros", 0}, {"ones", 1}};
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
        if (!strcmp(constants[i].name, name)) {
            *value = constants[i].value;
            return true;
        }
    return false;
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

bool shape_broadcast(Shape a, Shape b, Shape *out, int *axis_a, int *axis_b) {
    Shape r = a.rank >= b.rank ? a : b;
    for (int k = 1; k <= a.rank && k <= b.rank; k++) {
        int64_t da = a.dim[a.rank - k], db = b.dim[b.rank - k];
        if (da != db && da != 1 && db != 1) {
            *axis_a = a.rank - k;
            *axis_b = b.rank - k;
            return false;
        }
        r.dim[r.rank - k] = da == 1 ? db : da;
    }
    *out = r;
    return true;
}

Shape shape_without_leading_ones(Shape s) {
    int skip = 0;
    while (skip < s.rank && s.dim[skip] == 1) skip++;
    return shape_make(s.rank - skip, s.dim + skip);
}

bool shape_broadcasts_to(Shape a, Shape b) {
    Shape r;
    int ia, ib;
    return shape_broadcast(a, b, &r, &ia, &ib) && shape_eq(r, b);
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

/* "shapes [3] and [4] do not match: aligned on the right, axis 0 of [3] is 3 and axis 0 of
 * [4] is 4; each axis must be equal or 1 in one of them" */
static const char *broadcast_error(Shape a, Shape b, int axis_a, int axis_b) {
    return xprintf("shapes %s and %s do not match: aligned on the right, axis %d of %s is %lld "
                   "and axis %d of %s is %lld; each axis must be equal or 1 in one of them",
                   shape_str(a), shape_str(b), axis_a, shape_str(a), (long long)a.dim[axis_a],
                   axis_b, shape_str(b), (long long)b.dim[axis_b]);
}

/* Elementwise: the operands' shapes broadcast to the result's (or to the shape given, for
 * SHAPE_GIVEN ops): aligned on the right, each axis equal or 1. */
static const char *shape_ew(Op op, int nargs, Value **args, Shape *shape, bool *varying) {
    bool given = op_info[op].flags & OPF_SHAPE_GIVEN;
    Shape out = given ? *shape : args[0]->shape;
    *varying = false;
    for (int i = 0; i < nargs; i++) *varying |= args[i]->varying;
    for (int i = 0; i < nargs; i++) {
        Shape arg = args[i]->shape;
        if (given) {
            if (!shape_broadcasts_to(arg, out))
                return xprintf("cannot %s %s to %s", op_info[op].name, shape_str(arg),
                               shape_str(out));
            continue;
        }
        int axis_arg, axis_out;
        if (!shape_broadcast(out, arg, &out, &axis_out, &axis_arg))
            return broadcast_error(out, arg, axis_out, axis_arg);
    }
    *shape = out;
    *varying |= (op_info[op].flags & OPF_RANDOM) != 0; /* a mask per sample */
    return NULL;
}

/* A REDUCE or ROW op's rule: the result's shape (given in *shape for SHAPE_GIVEN ops) from
 * its operands and options, or what does not fit. *varying is already what the class says. */
typedef const char *ShapeRule(Value **args, const double *opt, Shape *shape, bool *varying);

/* ---- reductions: varying as the operand's ---- */

static const char *shape_sum(Value **args, const double *opt, Shape *shape, bool *varying) {
    (void)opt;
    (void)args, (void)varying;
    *shape = shape_scalar();
    return NULL;
}
#define shape_mean shape_sum

static const char *shape_sum_to(Value **args, const double *opt, Shape *shape, bool *varying) {
    (void)opt;
    (void)varying;
    if (!shape_broadcasts_to(*shape, args[0]->shape))
        return xprintf("cannot sum %s down to %s", shape_str(args[0]->shape), shape_str(*shape));
    return NULL;
}

static const char *shape_batch_sum(Value **args, const double *opt, Shape *shape, bool *varying) {
    (void)opt;
    if (!args[0]->varying) return "batch_sum of a value that does not vary over the batch";
    *shape = args[0]->shape;
    *varying = false;
    return NULL;
}

/* ---- reductions along one axis: opt[0] is the axis, opt[1] keepdim ---- */

/* The axis `axis` names in shape u, counted from 0; or what is wrong with it. */
static const char *axis_of(double axis, Shape u, int *out) {
    if (isnan(axis)) return "a reduction along an axis needs axis = k";
    if (u.rank == 0) return "a reduction along an axis needs a tensor, got a scalar";
    if (axis != floor(axis) || axis < -u.rank || axis >= u.rank)
        return xprintf("axis %s is out of range for shape %s: it has axes 0 to %d (-%d to -1 from "
                       "the end)",
                       ir_number_str(axis), shape_str(u), u.rank - 1, u.rank);
    *out = axis < 0 ? (int)axis + u.rank : (int)axis;
    return NULL;
}

/* sum_axis, mean_axis, max_axis, min_axis: u reduced along opt[0], kept with size 1 when
 * opt[1] (keepdim) is 1. */
static const char *shape_along_axis(Value **args, const double *opt, Shape *shape, bool *varying) {
    (void)varying;
    Shape u = args[0]->shape;
    int axis = 0;
    const char *err = axis_of(opt[0], u, &axis);
    if (err) return err;
    if (opt[1] != 0 && opt[1] != 1)
        return xprintf("keepdim must be 0 or 1, got %s", ir_number_str(opt[1]));
    Shape out = u;
    if (opt[1] != 0) {
        out.dim[axis] = 1;
    } else {
        out.rank--;
        for (int k = axis; k < out.rank; k++) out.dim[k] = u.dim[k + 1];
    }
    *shape = out;
    return NULL;
}
#define shape_sum_axis  shape_along_axis
#define shape_mean_axis shape_along_axis
#define shape_max_axis  shape_along_axis
#define shape_min_axis  shape_along_axis

/* u with an axis of size 1 put in before axis opt[0] (0 to u's rank). */
static const char *shape_unsqueeze(Value **args, const double *opt, Shape *shape, bool *varying) {
    (void)varying;
    Shape u = args[0]->shape;
    if (opt[0] != floor(opt[0]) || opt[0] < 0 || opt[0] > u.rank || u.rank == MAX_RANK)
        return xprintf("cannot put an axis at %s into shape %s", ir_number_str(opt[0]),
                       shape_str(u));
    int axis = (int)opt[0];
    Shape out = u;
    out.rank++;
    for (int k = u.rank; k > axis; k--) out.dim[k] = u.dim[k - 1];
    out.dim[axis] = 1;
    *shape = out;
    return NULL;
}

static const char *shape_batch_mean(Value **args, const double *opt, Shape *shape, bool *varying) {
    (void)opt;
    if (!args[0]->varying)
        return xprintf("batch_mean needs a value that varies per sample; %s is the same for "
                       "every sample",
                       ir_value_ref(args[0]));
    *shape = args[0]->shape;
    *varying = false;
    return NULL;
}

/* ---- rows: operand 0 has rank 1 or more; varying if any operand is ---- */

static const char *shape_softmax(Value **args, const double *opt, Shape *shape, bool *varying) {
    (void)opt;
    (void)varying;
    *shape = args[0]->shape;
    return NULL;
}
#define shape_log_softmax shape_softmax

static const char *shape_softmax_ce(Value **args, const double *opt, Shape *shape, bool *varying) {
    (void)opt;
    (void)varying;
    Shape z = args[0]->shape;
    if (!shape_eq(z, args[1]->shape))
        return xprintf("logits %s and target %s must have the same shape", shape_str(z),
                       shape_str(args[1]->shape));
    *shape = shape_scalar();
    return NULL;
}

static const char *shape_softmax_grad(Value **args, const double *opt, Shape *shape,
                                      bool *varying) {
    (void)opt;
    (void)varying;
    if (!shape_eq(args[0]->shape, args[1]->shape)) return "gradient shape differs from the value's";
    *shape = args[0]->shape;
    return NULL;
}
#define shape_log_softmax_grad shape_softmax_grad

static const char *shape_softmax_ce_grad(Value **args, const double *opt, Shape *shape,
                                         bool *varying) {
    (void)opt;
    (void)varying;
    if (!shape_eq(args[0]->shape, args[1]->shape) || args[2]->shape.rank != 0)
        return "softmax_ce_grad operands do not fit";
    *shape = args[0]->shape;
    return NULL;
}

/* ---- layout: varying if any operand is; the index map comes with the builder's proto ---- */

typedef const char *LayoutRule(Value **args, const Value *proto, Shape *shape);

Shape layout_slice_shape(const Layout *l) {
    Shape s = shape_scalar();
    for (int k = 0; k < l->whole.rank; k++)
        if (!l->drop[k]) s.dim[s.rank++] = l->count[k];
    return s;
}

bool layout_eq(const Layout *a, const Layout *b) {
    if (!a || !b) return a == b;
    if (!shape_eq(a->whole, b->whole)) return false;
    for (int k = 0; k < MAX_RANK; k++)
        if (a->start[k] != b->start[k] || a->step[k] != b->step[k] || a->count[k] != b->count[k] ||
            a->drop[k] != b->drop[k] || a->perm[k] != b->perm[k])
            return false;
    return true;
}

bool ir_axis(double a, int rank, int *axis) {
    if (a != floor(a) || a < -rank || a >= rank) return false;
    *axis = (int)a + (a < 0 ? rank : 0);
    return true;
}

/* Every index a slice takes lies inside whole. */
static bool slice_fits(const Layout *l) {
    for (int k = 0; k < l->whole.rank; k++) {
        int64_t n = l->whole.dim[k];
        if (l->count[k] < 1 || l->step[k] < 1 || l->start[k] < 0 || l->start[k] >= n) return false;
        if ((n - 1 - l->start[k]) / l->step[k] < l->count[k] - 1) return false;
        if (l->drop[k] && l->count[k] != 1) return false;
    }
    return true;
}

static const char *shape_slice(Value **args, const Value *proto, Shape *shape) {
    const Layout *l = proto->layout;
    if (!shape_eq(l->whole, args[0]->shape) || !slice_fits(l))
        return xprintf("the slice does not fit the shape %s", shape_str(args[0]->shape));
    *shape = layout_slice_shape(l);
    return NULL;
}

static const char *shape_scatter(Value **args, const Value *proto, Shape *shape) {
    const Layout *l = proto->layout;
    if (!slice_fits(l) || !shape_eq(layout_slice_shape(l), args[0]->shape))
        return xprintf("cannot scatter %s into %s", shape_str(args[0]->shape), shape_str(l->whole));
    *shape = l->whole;
    return NULL;
}

void ir_permutation(const Value *v, int perm[MAX_RANK]) {
    int rank = v->args[0]->shape.rank, a = 0, b = 0;
    if (v->op == OP_permute) {
        memcpy(perm, v->layout->perm, MAX_RANK * sizeof *perm);
        return;
    }
    for (int k = 0; k < MAX_RANK; k++) perm[k] = k;
    if (ir_axis(v->opt[0], rank, &a) && ir_axis(v->opt[1], rank, &b)) perm[a] = b, perm[b] = a;
}

/* The operand's axes in the order perm gives. */
static Shape permuted(Shape s, const int *perm) {
    Shape out = s;
    for (int k = 0; k < s.rank; k++) out.dim[k] = s.dim[perm[k]];
    return out;
}

const char *shape_axes_str(Shape s) {
    return xprintf("%s (0 to %d, or -%d to -1 from the end)", shape_str(s), s.rank - 1, s.rank);
}

static const char *shape_transpose(Value **args, const Value *proto, Shape *shape) {
    Shape u = args[0]->shape;
    int axis;
    if (u.rank < 2)
        return xprintf("transpose needs a value with at least 2 axes, got shape %s", shape_str(u));
    for (int k = 0; k < 2; k++)
        if (!ir_axis(proto->opt[k], u.rank, &axis))
            return xprintf("transpose's %s = %s is not an axis of shape %s",
                           op_info[OP_transpose].options[k].name, ir_number_str(proto->opt[k]),
                           shape_axes_str(u));
    Value v = {.op = OP_transpose, .nargs = 1, .args = {args[0]}};
    memcpy(v.opt, proto->opt, sizeof v.opt);
    int perm[MAX_RANK];
    ir_permutation(&v, perm);
    *shape = permuted(u, perm);
    return NULL;
}

static const char *shape_permute(Value **args, const Value *proto, Shape *shape) {
    Shape u = args[0]->shape;
    bool seen[MAX_RANK] = {false};
    for (int k = 0; k < u.rank; k++) {
        int p = proto->layout->perm[k];
        if (p < 0 || p >= u.rank || seen[p])
            return xprintf("permute needs each axis of shape %s once", shape_str(u));
        seen[p] = true;
    }
    *shape = permuted(u, proto->layout->perm);
    return NULL;
}

static const char *shape_concat(Value **args, const Value *proto, Shape *shape) {
    Shape a = args[0]->shape, b = args[1]->shape;
    int axis;
    if (a.rank == 0 || b.rank == 0)
        return "concat needs values with at least one axis, got a scalar";
    if (a.rank != b.rank)
        return xprintf("cannot concat %s and %s: they have different numbers of axes", shape_str(a),
                       shape_str(b));
    if (!ir_axis(proto->opt[0], a.rank, &axis))
        return xprintf("concat's axis = %s is not an axis of shape %s",
                       ir_number_str(proto->opt[0]), shape_axes_str(a));
    for (int k = 0; k < a.rank; k++)
        if (k != axis && a.dim[k] != b.dim[k])
            return xprintf("cannot concat %s and %s along axis %d: axis %d differs", shape_str(a),
                           shape_str(b), axis, k);
    *shape = a;
    shape->dim[axis] += b.dim[axis];
    return NULL;
}

#define SHAPE_SRC(name)
#define SHAPE_EW(name)
#define SHAPE_REDUCE(name) [OP_##name] = shape_##name,
#define SHAPE_ROW(name)    [OP_##name] = shape_##name,
#define SHAPE_MATMUL(name)
#define SHAPE_LAYOUT(name)
#define SHAPE_WINDOW(name)
static ShapeRule *const shape_rules[OP_COUNT] = {
#define OP(name, arity, class, ...) SHAPE_##class(name)
#include "ops.def"
#undef OP
};
#undef SHAPE_REDUCE
#undef SHAPE_ROW
#undef SHAPE_LAYOUT

#define SHAPE_REDUCE(name)
#define SHAPE_ROW(name)
#define SHAPE_LAYOUT(name) [OP_##name] = shape_##name,
static LayoutRule *const layout_rules[OP_COUNT] = {
#define OP(name, arity, class, ...) SHAPE_##class(name)
#include "ops.def"
#undef OP
};

/* The index map of a slice, scatter or permute is not optional. */
static const char *shape_layout(Op op, int nargs, Value **args, const Value *proto, Shape *shape,
                                bool *varying) {
    *varying = false;
    for (int i = 0; i < nargs; i++) *varying |= args[i]->varying;
    bool mapped = op == OP_slice || op == OP_scatter || op == OP_permute;
    if (!proto || (mapped && !proto->layout))
        return xprintf("%s needs its index map", op_info[op].name);
    return layout_rules[op](args, proto, shape);
}

static const char *shape_reduce(Op op, Value **args, const double *opt, Shape *shape,
                                bool *varying) {
    *varying = args[0]->varying;
    return shape_rules[op](args, opt, shape, varying);
}

static const char *shape_row(Op op, int nargs, Value **args, const double *opt, Shape *shape,
                             bool *varying) {
    *varying = false;
    for (int i = 0; i < nargs; i++) *varying |= args[i]->varying;
    if (args[0]->shape.rank == 0)
        return xprintf("%s needs a vector, got a scalar", op_info[op].name);
    return shape_rules[op](args, opt, shape, varying);
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

static const char *shape_window(Op op, Value **args, const Value *proto, Shape *shape,
                                bool *varying);

static const char *shape_by_class(Op op, int nargs, Value **args, const Value *proto, Shape *shape,
                                  bool *varying) {
    double defaults[OP_MAX_OPTIONS] = {0};
    for (int k = 0; k < op_info[op].n_options; k++) defaults[k] = op_info[op].options[k].value;
    const double *opt = proto ? proto->opt : defaults;
    switch (op_info[op].cls) {
    case OPC_SRC: return "a leaf has no operands";
    case OPC_EW: return shape_ew(op, nargs, args, shape, varying);
    case OPC_REDUCE: return shape_reduce(op, args, opt, shape, varying);
    case OPC_ROW: return shape_row(op, nargs, args, opt, shape, varying);
    case OPC_MATMUL: return shape_matmul(args[0], args[1], proto, shape, varying);
    case OPC_LAYOUT: return shape_layout(op, nargs, args, proto, shape, varying);
    case OPC_WINDOW: return shape_window(op, args, proto, shape, varying);
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
        v->layout = proto->layout;
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

Value *ir_layout(Graph *g, Op op, int nargs, Value **args, const Layout *layout,
                 const double *opt) {
    Value proto = {.layout = layout};
    if (opt) memcpy(proto.opt, opt, sizeof proto.opt);
    return build(g, op, nargs, args, &proto, shape_scalar());
}

Value *ir_build_options(Graph *g, Op op, Value *a, double opt0, double opt1) {
    Value proto = {.opt = {opt0, opt1}};
    return build(g, op, 1, &a, &proto, shape_scalar());
}

int ir_reduced_axis(const Value *v) {
    int axis = (int)v->opt[0];
    return axis < 0 ? axis + v->args[0]->shape.rank : axis;
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

int ir_count_dropouts(const Graph *g) {
    int n = 0;
    for (int i = 0; i < g->insts.n; i++)
        n += g->insts.v[i]->op == OP_dropout && !g->insts.v[i]->backward;
    return n;
}

/* The shortest text that reads back as the same double: 0.1, not 0.10000000000000001;
 * 1e-5, not printf's 1e-05; a whole number as one, 60, not 6e1. */
const char *ir_number_str(double x) {
    char buf[40];
    if (x == floor(x) && fabs(x) < 1e15) return xprintf("%.0f", x);
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) break;
    }
    char *e = strchr(buf, 'e');
    if (e) { /* the exponent without '+' and leading zeros */
        char *digits = e + 1 + (e[1] == '-' || e[1] == '+');
        char *first = digits;
        while (*first == '0' && first[1]) first++;
        memmove(e[1] == '+' ? e + 1 : digits, first, strlen(first) + 1);
    }
    return xstrdup(buf);
}

const char *ir_const_str(const Value *v) {
    return v->spelling ? v->spelling : ir_number_str(v->num);
}

/* The sign of an exponent, the minus of 1e-3: not an operator. */
static bool exponent_sign(const char *s, const char *c) {
    return c - s >= 2 && (c[-1] == 'e' || c[-1] == 'E') && c[-2] >= '0' && c[-2] <= '9';
}

bool ir_const_is_compound(const Value *v) {
    const char *s = v->spelling;
    if (!s) return false;
    int depth = 0;
    for (const char *c = s; *c; c++) { /* an operator outside brackets, past a leading minus */
        depth += (*c == '(' || *c == '[') - (*c == ')' || *c == ']');
        if (depth == 0 && c > s && strchr("+-*/^@ ", *c) && !exponent_sign(s, c)) return true;
    }
    return false;
}

/* One axis of a subscript: "2" (dropped), ":" (all of it), "1:5", "1:5:2", "::2". */
static const char *subscript_axis(const Layout *l, int k) {
    if (l->drop[k]) return xprintf("%lld", (long long)l->start[k]);
    int64_t stop = l->start[k] + (l->count[k] - 1) * l->step[k] + 1;
    bool from_first = l->start[k] == 0, to_last = stop >= l->whole.dim[k];
    const char *step = l->step[k] == 1 ? "" : xprintf(":%lld", (long long)l->step[k]);
    return xprintf("%s:%s%s", from_first ? "" : xprintf("%lld", (long long)l->start[k]),
                   to_last ? "" : xprintf("%lld", (long long)stop), step);
}

const char *ir_layout_str(const Value *v) {
    if (!v->layout) return "";
    StrBuf s = {0};
    if (v->op == OP_permute) {
        for (int k = 0; k < v->shape.rank; k++)
            sb_printf(&s, "%s%d", k ? ", " : "(", v->layout->perm[k]);
        sb_puts(&s, ")");
        return sb_str(&s);
    }
    for (int k = 0; k < v->layout->whole.rank; k++)
        sb_printf(&s, "%s%s", k ? ", " : "[", subscript_axis(v->layout, k));
    sb_puts(&s, "]");
    return sb_str(&s);
}

const char *ir_value_ref(const Value *v) {
    switch (v->op) {
    case OP_input:
    case OP_target: return xprintf("$%s", v->name);
    case OP_param: return xprintf("@%s", v->name);
    case OP_state: return xprintf("&%s", v->name);
    case OP_const: return ir_const_str(v);
    case OP_inv_batch: return "1/B";
    default: return v->name ? xprintf("%%%s", v->name) : xprintf("%%t%d", v->id);
    }
}

/* ---- images: convolution, pooling, reshapes (WINDOW rows) ----
 * Every rule checks its operands against the geometry the result implies, so a backward
 * instruction built with the wrong shape is caught where it is built. */

typedef const char *WindowShapeRule(Value **args, const double *opt, Shape *shape, bool *varying);

/* An option that must be a whole number of at least low ("conv2d's stride"). */
static const char *whole_option(const char *op, const char *name, double x, double low) {
    if (x == floor(x) && x >= low && x < 65536) return NULL;
    return xprintf("%s's %s must be a whole number of at least %g, got %s", op, name, low,
                   ir_number_str(x));
}

static const char *need_image(const char *op, const char *what, const Value *x) {
    if (x->shape.rank == 3) return NULL;
    return xprintf("%s's %s must be an image [C, H, W], got shape %s", op, what,
                   shape_str(x->shape));
}

/* PyTorch's output size along one axis, or 0 when the window does not fit. */
static int64_t window_out(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
    int64_t span = dil * (k - 1) + 1, room = in + 2 * pad;
    return room < span ? 0 : (room - span) / stride + 1;
}

/* [c, h_out, w_out] for an image [c, h, w] under a k x k window, or an error. */
static const char *window_shape(const char *op, Shape in, int64_t c, int64_t kh, int64_t kw,
                                const double *sp_pad_dil, Shape *out) {
    int64_t stride = (int64_t)sp_pad_dil[0], pad = (int64_t)sp_pad_dil[1],
            dil = (int64_t)sp_pad_dil[2];
    int64_t ho = window_out(in.dim[1], kh, stride, pad, dil),
            wo = window_out(in.dim[2], kw, stride, pad, dil);
    if (ho < 1 || wo < 1)
        return xprintf("%s's window of %lldx%lld (dilation %lld) does not fit in the image %s "
                       "padded by %lld",
                       op, (long long)kh, (long long)kw, (long long)dil, shape_str(in),
                       (long long)pad);
    *out = shape_make(3, (int64_t[]){c, ho, wo});
    return NULL;
}

static const char *conv_options(const char *op, const double *opt) {
    const char *err = whole_option(op, "stride", opt[0], 1);
    if (!err) err = whole_option(op, "padding", opt[1], 0);
    if (!err) err = whole_option(op, "dilation", opt[2], 1);
    return err;
}

/* The output of conv2d for the image x and the weights w [C_out, C_in, kH, kW]. */
static const char *conv_output(const char *op, Shape x, Shape w, const double *opt, Shape *out) {
    const char *err = conv_options(op, opt);
    if (err) return err;
    if (w.rank != 4)
        return xprintf("%s's weights must be [C_out, C_in, kH, kW], got shape %s", op,
                       shape_str(w));
    if (w.dim[1] != x.dim[0])
        return xprintf("%s's weights %s take %lld input channels, the image %s has %lld", op,
                       shape_str(w), (long long)w.dim[1], shape_str(x), (long long)x.dim[0]);
    return window_shape(op, x, w.dim[0], w.dim[2], w.dim[3], opt, out);
}

static const char *same_shape(const char *op, Shape got, Shape want) {
    if (shape_eq(got, want)) return NULL;
    return xprintf("%s: the gradient has shape %s, the result %s", op, shape_str(got),
                   shape_str(want));
}

static const char *shape_conv2d(Value **args, const double *opt, Shape *shape, bool *varying) {
    Value *x = args[0], *w = args[1], *b = args[2];
    const char *err = need_image("conv2d", "input", x);
    if (!err) err = conv_output("conv2d", x->shape, w->shape, opt, shape);
    if (err) return err;
    if (b->shape.rank != 0 && !shape_eq(b->shape, shape_make(1, &w->shape.dim[0])))
        return xprintf("conv2d's bias must be [%lld] (one per output channel) or a scalar, got "
                       "shape %s",
                       (long long)w->shape.dim[0], shape_str(b->shape));
    if (w->varying || b->varying)
        return "conv2d's weights and bias must be the same for every sample";
    *varying = x->varying;
    return NULL;
}

static const char *shape_conv2d_input_grad(Value **args, const double *opt, Shape *shape,
                                           bool *varying) {
    Value *g = args[0], *w = args[1];
    Shape y;
    const char *err = need_image("conv2d_input_grad", "result", &(Value){.shape = *shape});
    if (!err) err = conv_output("conv2d_input_grad", *shape, w->shape, opt, &y);
    if (!err) err = same_shape("conv2d_input_grad", g->shape, y);
    *varying = g->varying;
    return err;
}

static const char *shape_conv2d_weight_grad(Value **args, const double *opt, Shape *shape,
                                            bool *varying) {
    Value *x = args[0], *g = args[1];
    Shape y;
    const char *err = need_image("conv2d_weight_grad", "input", x);
    if (!err) err = conv_output("conv2d_weight_grad", x->shape, *shape, opt, &y);
    if (!err) err = same_shape("conv2d_weight_grad", g->shape, y);
    *varying = false;
    return err;
}

static const char *shape_conv2d_bias_grad(Value **args, const double *opt, Shape *shape,
                                          bool *varying) {
    (void)opt;
    const char *err = need_image("conv2d_bias_grad", "gradient", args[0]);
    if (!err) *shape = shape_make(1, &args[0]->shape.dim[0]);
    *varying = false;
    return err;
}

/* Pooling: kernel, stride, padding; PyTorch allows padding up to half the kernel. */
static const char *pool_output(const char *op, Shape x, const double *opt, Shape *out) {
    if (opt[0] == 0) return xprintf("%s needs its kernel size: %s(x, 2) pools 2x2 windows", op, op);
    const char *err = whole_option(op, "kernel", opt[0], 1);
    if (!err) err = whole_option(op, "stride", opt[1], 1);
    if (!err) err = whole_option(op, "padding", opt[2], 0);
    if (err) return err;
    if (2 * opt[2] > opt[0])
        return xprintf("%s's padding must be at most half the kernel, got %s for a kernel of %s",
                       op, ir_number_str(opt[2]), ir_number_str(opt[0]));
    int64_t k = (int64_t)opt[0];
    double spd[3] = {opt[1], opt[2], 1};
    return window_shape(op, x, x.dim[0], k, k, spd, out);
}

static const char *pool_rule(const char *op, Value **args, const double *opt, Shape *shape,
                             bool *varying) {
    const char *err = need_image(op, "input", args[0]);
    if (!err) err = pool_output(op, args[0]->shape, opt, shape);
    *varying = args[0]->varying;
    return err;
}

static const char *shape_max_pool2d(Value **args, const double *opt, Shape *shape, bool *varying) {
    return pool_rule("max_pool2d", args, opt, shape, varying);
}

static const char *shape_avg_pool2d(Value **args, const double *opt, Shape *shape, bool *varying) {
    return pool_rule("avg_pool2d", args, opt, shape, varying);
}

static const char *shape_max_pool2d_grad(Value **args, const double *opt, Shape *shape,
                                         bool *varying) {
    Value *x = args[0], *g = args[1];
    Shape y;
    const char *err = need_image("max_pool2d_grad", "input", x);
    if (!err) err = pool_output("max_pool2d_grad", x->shape, opt, &y);
    if (!err) err = same_shape("max_pool2d_grad", g->shape, y);
    *shape = x->shape;
    *varying = x->varying || g->varying;
    return err;
}

static const char *shape_avg_pool2d_grad(Value **args, const double *opt, Shape *shape,
                                         bool *varying) {
    Shape y;
    const char *err = need_image("avg_pool2d_grad", "result", &(Value){.shape = *shape});
    if (!err) err = pool_output("avg_pool2d_grad", *shape, opt, &y);
    if (!err) err = same_shape("avg_pool2d_grad", args[0]->shape, y);
    *varying = args[0]->varying;
    return err;
}

/* The dims are the options up to the first 0; one of them may be -1, the rest inferred. */
static const char *shape_reshape(Value **args, const double *opt, Shape *shape, bool *varying) {
    int64_t numel = shape_numel(args[0]->shape), known = 1;
    Shape out = shape_scalar();
    int infer = -1;
    for (int k = 0; k < MAX_RANK && opt[k] != 0; k++) {
        if (opt[k] == -1 && infer < 0) {
            infer = k;
        } else if (opt[k] != floor(opt[k]) || opt[k] < 1 || opt[k] > 1e9) {
            return xprintf("reshape's dimensions must be whole numbers of at least 1, or -1 "
                           "once, got %s",
                           ir_number_str(opt[k]));
        } else if (!checked_mul(known, (int64_t)opt[k], &known) || known > numel) {
            known = numel + 1;
        }
        out.dim[out.rank++] = opt[k] == -1 ? 0 : (int64_t)opt[k];
    }
    if (infer >= 0 && known <= numel && numel % known == 0) {
        out.dim[infer] = numel / known;
        known = numel;
    }
    if (known != numel) {
        StrBuf dims = {0};
        for (int k = 0; k < out.rank; k++)
            sb_printf(&dims, "%s%s", k ? ", " : "", ir_number_str(opt[k]));
        return xprintf("cannot reshape %s (%lld elements) to [%s]", shape_str(args[0]->shape),
                       (long long)numel, sb_str(&dims));
    }
    *shape = out;
    *varying = args[0]->varying;
    return NULL;
}

static const char *shape_flatten(Value **args, const double *opt, Shape *shape, bool *varying) {
    (void)opt;
    int64_t numel = shape_numel(args[0]->shape);
    *shape = shape_make(1, &numel);
    *varying = args[0]->varying;
    return NULL;
}

/* ---- token ids: take, scatter_add, one_hot ----
 * ids may have any shape that leaves room for one more axis; the table is the same for every
 * sample, so scatter_add sums its rows over the batch into the table's shape. */

static const char *ids_room(const char *op, const Value *ids) {
    if (ids->shape.rank < MAX_RANK) return NULL;
    return xprintf("%s's ids %s leave no room for the axis it adds (at most %d axes)", op,
                   shape_str(ids->shape), MAX_RANK);
}

/* ids' shape with one more axis of n at the end. */
static Shape ids_and(Shape ids, int64_t n) {
    ids.dim[ids.rank++] = n;
    return ids;
}

static const char *table_rule(const char *op, Shape table, bool varies) {
    if (table.rank != 2)
        return xprintf("%s's table must be a matrix [vocab, dim], got shape %s", op,
                       shape_str(table));
    if (varies)
        return xprintf("%s's table must be the same for every sample (a param, or computed from "
                       "params)",
                       op);
    return NULL;
}

static const char *shape_take(Value **args, const double *opt, Shape *shape, bool *varying) {
    (void)opt;
    Value *table = args[0], *ids = args[1];
    const char *err = table_rule("take", table->shape, table->varying);
    if (!err) err = ids_room("take", ids);
    if (err) return err;
    *shape = ids_and(ids->shape, table->shape.dim[1]);
    *varying = ids->varying;
    return NULL;
}

/* The result's shape, the table's, is given by the builder. */
static const char *shape_scatter_add(Value **args, const double *opt, Shape *shape, bool *varying) {
    (void)opt;
    Value *g = args[0], *ids = args[1];
    const char *err = table_rule("scatter_add", *shape, false);
    if (!err) err = ids_room("scatter_add", ids);
    if (!err) err = same_shape("scatter_add", g->shape, ids_and(ids->shape, shape->dim[1]));
    *varying = false;
    return err;
}

/* k: the ids must be exact in a 32-bit float, below 2^24. */
static const char *shape_one_hot(Value **args, const double *opt, Shape *shape, bool *varying) {
    double k = opt[0];
    if (k == 0) return "one_hot needs its number of classes: one_hot(ids, 10)";
    if (k != floor(k) || k < 1 || k > 16777216)
        return xprintf("one_hot's k must be a whole number from 1 to 2^24, got %s",
                       ir_number_str(k));
    const char *err = ids_room("one_hot", args[0]);
    if (err) return err;
    *shape = ids_and(args[0]->shape, (int64_t)k);
    *varying = args[0]->varying;
    return NULL;
}

#undef SHAPE_REDUCE
#undef SHAPE_ROW
#undef SHAPE_LAYOUT
#undef SHAPE_WINDOW
#define SHAPE_REDUCE(name)
#define SHAPE_ROW(name)
#define SHAPE_LAYOUT(name)
#define SHAPE_WINDOW(name) [OP_##name] = shape_##name,
static WindowShapeRule *const window_shape_rules[OP_COUNT] = {
#define OP(name, arity, class, ...) SHAPE_##class(name)
#include "ops.def"
#undef OP
};

static const char *shape_window(Op op, Value **args, const Value *proto, Shape *shape,
                                bool *varying) {
    double opt[OP_MAX_OPTIONS] = {0};
    for (int k = 0; k < op_info[op].n_options; k++)
        opt[k] = proto ? proto->opt[k] : op_info[op].options[k].value;
    return window_shape_rules[op](args, opt, shape, varying);
}

Value *ir_window(Graph *g, Op op, int nargs, Value **args, const double *opt, Shape shape) {
    Value proto = {0};
    memcpy(proto.opt, opt, sizeof proto.opt);
    return build(g, op, nargs, args, &proto, shape);
}

void ir_window_defaults(Op op, double *opt) {
    if ((op == OP_max_pool2d || op == OP_avg_pool2d) && opt[1] == 0) opt[1] = opt[0];
}

/* The image [c, h, w] of a shape of rank 3. */
static void image_dims(Shape s, int64_t *c, int64_t *h, int64_t *w) {
    *c = s.dim[0];
    *h = s.dim[1];
    *w = s.dim[2];
}

/* take, scatter_add, one_hot: c_in rows of length w in the table (one_hot: the k x k
 * identity), c_out ids per sample. */
static WindowGeometry ids_geometry(const Value *v) {
    const Value *ids = v->args[v->nargs - 1];
    Shape table = v->op == OP_take ? v->args[0]->shape : v->shape;
    if (v->op == OP_one_hot)
        table = shape_make(2, (int64_t[]){(int64_t)v->opt[0], (int64_t)v->opt[0]});
    WindowGeometry gm = {.c_in = table.dim[0], .w = table.dim[1], .c_out = shape_numel(ids->shape)};
    gm.h = gm.h_out = gm.w_out = gm.kh = gm.kw = gm.stride = gm.dil = 1;
    return gm;
}

WindowGeometry ir_window_geometry(const Value *v) {
    WindowGeometry gm = {0};
    Shape in = v->shape, out = v->shape, w = shape_scalar();
    const double *opt = v->opt;
    switch (v->op) {
    case OP_conv2d: in = v->args[0]->shape, w = v->args[1]->shape; break;
    case OP_conv2d_input_grad: out = v->args[0]->shape, w = v->args[1]->shape; break;
    case OP_conv2d_weight_grad:
        in = v->args[0]->shape, out = v->args[1]->shape, w = v->shape;
        break;
    case OP_conv2d_bias_grad: in = out = v->args[0]->shape; break;
    case OP_max_pool2d:
    case OP_avg_pool2d: in = v->args[0]->shape; break;
    case OP_max_pool2d_grad: out = v->args[1]->shape; break;
    case OP_avg_pool2d_grad: out = v->args[0]->shape; break;
    case OP_take:
    case OP_scatter_add:
    case OP_one_hot: return ids_geometry(v);
    default: /* reshape, flatten: numel elements in, as many out */
        gm.c_in = gm.c_out = shape_numel(v->shape);
        gm.h = gm.w = gm.h_out = gm.w_out = gm.kh = gm.kw = gm.stride = gm.dil = 1;
        return gm;
    }
    image_dims(in, &gm.c_in, &gm.h, &gm.w);
    image_dims(out, &gm.c_out, &gm.h_out, &gm.w_out);
    bool pooling = w.rank == 0;
    gm.kh = pooling ? (int64_t)opt[0] : w.dim[2];
    gm.kw = pooling ? (int64_t)opt[0] : w.dim[3];
    gm.stride = (int64_t)(pooling ? opt[1] : opt[0]);
    gm.pad = (int64_t)(pooling ? opt[2] : opt[1]);
    gm.dil = pooling ? 1 : (int64_t)opt[2];
    if (v->op == OP_conv2d_bias_grad) gm.kh = gm.kw = gm.stride = gm.dil = 1, gm.pad = 0;
    return gm;
}
