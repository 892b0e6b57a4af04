/* test_ops.c: every row of ops.def, compiled and compared with the reference interpreter, in
 * f32 and f64: each elementwise op over each way an operand can be broadcast, each reduction
 * and row op over each operand its shape rule takes. The ops come from the table: a new row
 * is tested without a line here, and a row this file cannot build a case for is a failure.
 * (Leaves are every test's inputs; matmul has test_matmul.c.) */
#include "harness.h"

#include <math.h>
#include <string.h>

static bool f64_mode;

static ForwardCase range(double lo, double hi) {
    return (ForwardCase){.f64 = f64_mode, .opt_level = 2, .lo = lo, .hi = hi};
}

static const char *label(const char *what, Op op) {
    return xprintf("%s %s (%s)", what, op_info[op].name, f64_mode ? "f64" : "f32");
}

/* Exact zeros and the values where the tanh formula switches, in every sample. */
static void special_values(Model *m) {
    static const double x[6] = {0, 1e-3, -0.29, 0.31, 0.0999, -20};
    const nnrt_tensor *t = model_tensor(m, "x");
    for (int64_t b = 0; b < m->ctx.batch_cap; b++)
        for (int i = 0; i < 6 && i < t->numel; i++) tensor_set(m, t, b, i, x[i] * (b + 1));
}

/* A MODE op (training(a, b)) is checked in both modes. */
static void training_mode(Model *m) {
    m->ctx.training = NNRT_TRAINING;
}

/* Where an op is defined: (0.1, 3) for one that is NaN at -1 (log, sqrt), else (-3, 3) with
 * the special values. */
static bool positive_domain(Op op) {
    double x[3] = {-1, 1, 1}, opt[OP_MAX_OPTIONS] = {0};
    return op_info[op].scalar && isnan(op_info[op].scalar(x, opt));
}

/* An op's options: the defaults, with ±0.5 for an infinite one (so that clamp clamps). */
static void set_options(Value *v) {
    const OpInfo *in = &op_info[v->op];
    for (int k = 0; k < in->n_options; k++) {
        double d = in->options[k].value;
        v->opt[k] = isinf(d) ? copysign(0.5, d) : d;
    }
}

static void unary_op(Op op) {
    Graph *g = graph_new("unary");
    bool given = op_info[op].flags & OPF_SHAPE_GIVEN;
    Value *x = add_input(g, "x", given ? shape1(3) : shape2(2, 3));
    Shape shape = shape2(2, 3);
    bool varying;
    const char *err = ir_infer_shape(op, 1, &x, NULL, &shape, &varying);
    if (!check(err == NULL, "unary %s: %s", op_info[op].name, err)) return;
    Value *r = ir_inst(g, op, 1, &x, shape, varying);
    set_options(r);
    if (op_info[op].flags & OPF_RANDOM) r->salt = r->id;
    ForwardCase fc = positive_domain(op) ? range(0.1, 3) : range(-3, 3);
    if (!positive_domain(op)) fc.tweak = special_values;
    check_forward(label(given ? "x [3] to [2,3]" : "unary", op), g, r, &fc);
}

/* The second operand of a binary op, in each shape and batch relation to x [2,3]. */
typedef struct Partner {
    const char *what;
    Value *(*make)(Graph *g);
} Partner;

static Value *param_suffix(Graph *g) {
    return add_param(g, "b", shape1(3));
}
static Value *param_same(Graph *g) {
    return add_param(g, "b", shape2(2, 3));
}
static Value *param_scalar(Graph *g) {
    return add_param(g, "b", shape_scalar());
}
static Value *input_scalar(Graph *g) {
    return add_input(g, "b", shape_scalar());
}
static Value *input_suffix(Graph *g) {
    return add_input(g, "b", shape1(3));
}
static Value *input_same(Graph *g) {
    return add_input(g, "b", shape2(2, 3));
}
static Value *param_column(Graph *g) {
    return add_param(g, "b", shape2(2, 1));
}
static Value *input_column(Graph *g) {
    return add_input(g, "b", shape2(2, 1));
}
static Value *input_row(Graph *g) {
    return add_input(g, "b", shape2(1, 3));
}
static Value *constant(Graph *g) {
    return ir_const(g, 1.75);
}
static Value *inverse_batch(Graph *g) {
    return ir_leaf(g, OP_inv_batch, NULL, shape_scalar(), false);
}

static const Partner partners[] = {
    {"param [3]", param_suffix},   {"param [2,3]", param_same}, {"param []", param_scalar},
    {"input []", input_scalar},    {"input [3]", input_suffix}, {"input [2,3]", input_same},
    {"const", constant},           {"1/B", inverse_batch},      {"param [2,1]", param_column},
    {"input [2,1]", input_column}, {"input [1,3]", input_row},
};

static void binary_op(Op op) {
    for (size_t p = 0; p < sizeof partners / sizeof partners[0]; p++)
        for (int swap = 0; swap < 2; swap++) {
            Graph *g = graph_new("binary");
            Value *x = add_input(g, "x", shape2(2, 3)), *y = partners[p].make(g);
            Value *r = swap ? ir_build2(g, op, y, x) : ir_build2(g, op, x, y);
            set_options(r);
            ForwardCase fc = range(0.5, 2);
            const char *what =
                xprintf("%s %s", swap ? "partner, x" : "x, partner", partners[p].what);
            check_forward(label(what, op), g, r, &fc);
            if (!(op_info[op].flags & OPF_MODE)) continue;
            fc.tweak = training_mode; /* the harness's passes are not training otherwise */
            check_forward(label(xprintf("%s, training", what), op), g, r, &fc);
        }
}

/* op(x, a, b) (where's c > 0 ? a : b): x [2,3] (with exact zeros) first, each partner as
 * either other operand, the remaining one an input [3] or the constant 0. */
static void ternary_op(Op op) {
    for (size_t p = 0; p < sizeof partners / sizeof partners[0]; p++)
        for (int swap = 0; swap < 3; swap++) {
            Graph *g = graph_new("ternary");
            Value *x = add_input(g, "x", shape2(2, 3)), *y = partners[p].make(g);
            Value *other = swap == 2 ? ir_const(g, 0) : add_input(g, "z", shape1(3));
            Value *args[3] = {x, swap ? y : other, swap ? other : y};
            Value *r = ir_build(g, op, 3, args);
            set_options(r);
            ForwardCase fc = range(-2, 2);
            fc.tweak = special_values;
            const char *what = xprintf("%s %s", swap ? "x, partner, other" : "x, other, partner",
                                       partners[p].what);
            check_forward(label(what, op), g, r, &fc);
        }
}

static void elementwise_op(Op op) {
    switch (op_info[op].arity) {
    case 1: unary_op(op); return;
    case 2: binary_op(op); return;
    case 3: ternary_op(op); return;
    default:
        check(false, "%s: no elementwise case for %d operands", op_info[op].name,
              op_info[op].arity);
    }
}

static void constant_powers(void) {
    static const double exponents[] = {1, 2, 0.5, 3, -1.5};
    for (size_t k = 0; k < sizeof exponents / sizeof exponents[0]; k++) {
        Graph *g = graph_new("pow");
        Value *x = add_input(g, "x", shape1(7));
        Value *r = ir_build2(g, OP_pow, x, ir_const(g, exponents[k]));
        ForwardCase fc = range(0.2, 3);
        check_forward(label(xprintf("x ^ %g", exponents[k]), OP_pow), g, r, &fc);
    }
}

/* Nothing varies: the loop runs once over the parameters. */
static void fixed_only(void) {
    Graph *g = graph_new("fixed");
    Value *a = add_param(g, "a", shape2(2, 3)), *b = add_param(g, "b", shape1(3));
    Value *r = ir_build1(g, OP_tanh, ir_build2(g, OP_mul, a, b));
    ForwardCase fc = range(-2, 2);
    check_forward(label("params only", OP_mul), g, r, &fc);
}

/* A chain of five ops in one loop, with a bias, a value used twice and a broadcast of a
 * parameter (computed before the loop, as it does not vary). */
static void fused_chain(void) {
    Graph *g = graph_new("chain");
    Value *x = add_input(g, "x", shape2(4, 8)), *b = add_param(g, "b", shape1(8));
    Value *t1 = ir_build2(g, OP_add, x, b);
    Value *t2 = ir_build1(g, OP_tanh, t1);
    Value *t3 = ir_build2(g, OP_mul, t2, t2);
    Value *t4 = ir_build2(g, OP_sub, t3, ir_broadcast(g, b, shape2(4, 8)));
    Value *r = ir_build1(g, OP_sigmoid, t4);
    g->output = r;
    g->loss = ir_build1(g, OP_sum, r);
    Plan *plan = plan_build(g);
    const Step *loop = &plan->steps[plan_value(plan, t1)->step];
    check(plan_value(plan, r)->step == plan_value(plan, t1)->step && loop->n_insts == 5,
          "the chain is not one fused loop");
    check(plan_value(plan, t2)->in_register && plan_value(plan, t3)->in_register,
          "values used only inside the loop still have memory");
    check(!plan_value(plan, r)->in_register, "the output lives in a register");
    ForwardCase fc = range(-2, 2);
    check_forward(label("fused chain", OP_tanh), g, r, &fc);
}

/* Two chains with as many elements but other shapes, [4,6] + [6] and [6,4] + [4], one after
 * the other: each repeats its bias with its own period. */
static void same_count_other_shape(void) {
    Graph *g = graph_new("shapes");
    Value *x = add_input(g, "x", shape2(4, 6)), *b = add_param(g, "b", shape1(6));
    Value *u = add_input(g, "u", shape2(6, 4)), *c = add_param(g, "c", shape1(4));
    Value *r1 = ir_build2(g, OP_mul, x, b), *r2 = ir_build2(g, OP_mul, u, c);
    Value *r = ir_build2(g, OP_add, ir_build1(g, OP_sum, r1), ir_build1(g, OP_sum, r2));
    ForwardCase fc = range(-2, 2);
    check_forward(label("[4,6] and [6,4] side by side", OP_mul), g, r, &fc);
}

/* Size-1 axes that are not leading: [3,1,4] with [2,1] is [3,2,4], each operand repeated
 * along an inner axis, in a loop with a suffix operand, a value per sample and a member
 * used twice; and an image [C,H,W] scaled per channel by [C,1,1]. */
static void inner_axes(void) {
    Graph *g = graph_new("inner axes");
    Value *x = add_input(g, "x", shape3(3, 1, 4)), *a = add_param(g, "a", shape2(2, 1));
    Value *c = add_input(g, "c", shape_scalar()), *h = add_param(g, "h", shape1(4));
    Value *t = ir_build2(g, OP_add, x, a);
    Value *u = ir_build2(g, OP_mul, ir_build2(g, OP_sub, t, h), c);
    Value *r = ir_build2(g, OP_mul, u, ir_build1(g, OP_tanh, u));
    ForwardCase fc = range(-2, 2);
    check_forward(label("[3,1,4] + [2,1]", OP_add), g, r, &fc);

    g = graph_new("per channel");
    Value *img = add_input(g, "x", shape3(3, 2, 5)), *gain = add_param(g, "g", shape3(3, 1, 1));
    Value *m = add_input(g, "m", shape3(3, 2, 1));
    r = ir_build2(g, OP_sub, ir_build2(g, OP_mul, img, gain), m);
    check_forward(label("[3,2,5] * [3,1,1] - [3,2,1]", OP_mul), g, r, &fc);
}

/* Builds op(args) into g when its shape rule takes the operands (*shape: the shape given,
 * for SHAPE_GIVEN ops); NULL when it does not. */
static Value *build_if_fits(Graph *g, Op op, Value **args, Shape shape) {
    bool varying;
    if (ir_infer_shape(op, op_info[op].arity, args, NULL, &shape, &varying)) return NULL;
    Value *v = ir_inst(g, op, op_info[op].arity, args, shape, varying);
    set_options(v);
    return v;
}

/* The operand of a reduction, and for a SHAPE_GIVEN one (sum_to) the shape it gives. */
static const struct {
    const char *what;
    bool param, given;
    Shape from, to;
} reduce_cases[] = {
    {"input [2,3]", false, false, {2, {2, 3}}, {0}},
    {"param [2,3]", true, false, {2, {2, 3}}, {0}},
    {"input [] (one element)", false, false, {0}, {0}},
    {"input [2,3] to [3]", false, true, {2, {2, 3}}, {1, {3}}},
    {"input [2,3] to []", false, true, {2, {2, 3}}, {0}},
    {"input [2,3] to [2,3]", false, true, {2, {2, 3}}, {2, {2, 3}}},
    {"param [4,3] to [3]", true, true, {2, {4, 3}}, {1, {3}}},
    {"input [2,3] to [2,1]", false, true, {2, {2, 3}}, {2, {2, 1}}},
    {"input [3,2,4] to [3,1,1]", false, true, {3, {3, 2, 4}}, {3, {3, 1, 1}}},
    {"param [3,2,4] to [3,1,4]", true, true, {3, {3, 2, 4}}, {3, {3, 1, 4}}},
    {"input [3,2,4] to [2,1]", false, true, {3, {3, 2, 4}}, {2, {2, 1}}},
};

/* A reduction along an axis (its first option; keepdim its second, when it has one): over
 * every axis of an input [2,3,4] and of a param [3,5], counted from the front and from the
 * end, with and without keepdim, and along an axis of size 1. */
static void axis_op(Op op) {
    static const struct {
        const char *what;
        bool param;
        Shape from;
    } operands[] = {
        {"input [2,3,4]", false, {3, {2, 3, 4}}},
        {"param [3,5]", true, {2, {3, 5}}},
        {"input [3,1]", false, {2, {3, 1}}},
    };
    int tested = 0;
    for (size_t k = 0; k < sizeof operands / sizeof operands[0]; k++)
        for (int axis = -3; axis <= 3; axis++)
            for (int keepdim = 0; keepdim <= (op_info[op].n_options > 1); keepdim++) {
                Graph *g = graph_new("axis");
                Value *x = operands[k].param ? add_param(g, "x", operands[k].from)
                                             : add_input(g, "x", operands[k].from);
                Value proto = {.opt = {axis, keepdim}};
                Shape shape = shape_scalar();
                bool varying;
                if (ir_infer_shape(op, 1, &x, &proto, &shape, &varying)) continue;
                Value *r = ir_inst(g, op, 1, &x, shape, varying);
                r->opt[0] = axis;
                r->opt[1] = keepdim;
                ForwardCase fc = range(-2, 2);
                const char *what =
                    xprintf("%s axis %d%s", operands[k].what, axis, keepdim ? " keepdim" : "");
                check_forward(label(what, op), g, r, &fc);
                tested++;
            }
    check(tested > 0, "%s: no case along an axis fits it", op_info[op].name);
}

/* Each case the reduction's shape rule takes. */
static void reduce_op(Op op) {
    int tested = 0;
    if (op_info[op].n_options > 0 && !strcmp(op_info[op].options[0].name, "axis")) {
        axis_op(op);
        return;
    }
    bool given = op_info[op].flags & OPF_SHAPE_GIVEN;
    for (size_t k = 0; k < sizeof reduce_cases / sizeof reduce_cases[0]; k++) {
        if (reduce_cases[k].given != given) continue;
        Graph *g = graph_new("reduce");
        Value *x = reduce_cases[k].param ? add_param(g, "x", reduce_cases[k].from)
                                         : add_input(g, "x", reduce_cases[k].from);
        Value *r = build_if_fits(g, op, &x, reduce_cases[k].to);
        if (!r) continue;
        ForwardCase fc = range(-2, 2);
        check_forward(label(reduce_cases[k].what, op), g, r, &fc);
        tested++;
    }
    check(tested > 0, "%s: no reduction case fits it", op_info[op].name);
}

/* The operands a row op may take after its first, z: by z's shape, or one per sample. */
typedef struct RowOperand {
    const char *what;
    Value *(*make)(Graph *g, Shape z, int k);
} RowOperand;

static const char *operand_name(int k) {
    return xprintf("y%d", k);
}
static Value *target_like(Graph *g, Shape z, int k) {
    return add_target(g, operand_name(k), z);
}
static Value *input_like(Graph *g, Shape z, int k) {
    return add_input(g, operand_name(k), z);
}
static Value *param_like(Graph *g, Shape z, int k) {
    return add_param(g, operand_name(k), z);
}
static Value *input_per_sample(Graph *g, Shape z, int k) {
    (void)z;
    return add_input(g, operand_name(k), shape_scalar());
}
static Value *inverse_batch_like(Graph *g, Shape z, int k) {
    (void)z, (void)k;
    return inverse_batch(g);
}
static Value *constant_half(Graph *g, Shape z, int k) {
    (void)z, (void)k;
    return ir_const(g, 0.5);
}

static const RowOperand row_operands[] = {
    {"target", target_like},        {"input", input_like},       {"param", param_like},
    {"input []", input_per_sample}, {"1/B", inverse_batch_like}, {"const", constant_half},
};
#define N_ROW_OPERANDS (int)(sizeof row_operands / sizeof row_operands[0])

/* A row op of z (an input [3,5], or a param [2,5]) and, after it, every combination of the
 * row operands its shape rule takes. */
static void row_op(Op op) {
    int n = op_info[op].arity, combos = 1, tested = 0;
    for (int k = 1; k < n; k++) combos *= N_ROW_OPERANDS;
    for (int z_param = 0; z_param < 2; z_param++)
        for (int c = 0; c < combos; c++) {
            Graph *g = graph_new("row");
            Value *args[3];
            args[0] = z_param ? add_param(g, "z", shape2(2, 5)) : add_input(g, "z", shape2(3, 5));
            const char *what = z_param ? "z param [2,5]" : "z [3,5]";
            for (int k = 1, rest = c; k < n; k++, rest /= N_ROW_OPERANDS) {
                const RowOperand *o = &row_operands[rest % N_ROW_OPERANDS];
                args[k] = o->make(g, args[0]->shape, k);
                what = xprintf("%s, %s", what, o->what);
            }
            Value *r = build_if_fits(g, op, args, shape_scalar());
            if (!r) continue;
            ForwardCase fc = range(-3, 3);
            check_forward(label(what, op), g, r, &fc);
            tested++;
        }
    check(tested > 0, "%s: no row case fits it", op_info[op].name);
}

/* ---- layout ops: each over an input, a param, and for concat a mix ---- */

/* x[1:3, ::2] of a [3,4], or x[-1, 1] (both axes dropped), as a Layout. */
static const Layout *slice_map(bool drop) {
    Layout *l = xalloc(sizeof *l);
    l->whole = shape2(3, 4);
    for (int k = 0; k < 2; k++) l->step[k] = l->count[k] = 1;
    if (drop) {
        l->start[0] = 2, l->start[1] = 1;
        l->drop[0] = l->drop[1] = true;
    } else {
        l->start[0] = 1, l->count[0] = 2, l->step[1] = 2, l->count[1] = 2;
    }
    return l;
}

static Value *layout_operand(Graph *g, const char *name, bool param, Shape s) {
    return param ? add_param(g, name, s) : add_input(g, name, s);
}

static void layout_case(Op op, const char *what, Graph *g, Value **args, const Layout *l,
                        const double *opt) {
    Value *r = ir_layout(g, op, op_info[op].arity, args, l, opt);
    ForwardCase fc = range(-3, 3);
    check_forward(label(what, op), g, r, &fc);
}

static void layout_op(Op op) {
    static const int orders[2][MAX_RANK] = {{2, 0, 1}, {1, 0}};
    static const double swaps[2][OP_MAX_OPTIONS] = {{-2, -1}, {0, 2}};
    for (int param = 0; param < 2; param++) {
        Graph *g = graph_new("layout");
        const char *from = param ? "param" : "input";
        switch (op) {
        case OP_slice:
        case OP_scatter:
            for (int drop = 0; drop < 2; drop++) {
                const Layout *l = slice_map(drop);
                Value *x = layout_operand(g, xprintf("x%d", drop), param,
                                          op == OP_slice ? l->whole : layout_slice_shape(l));
                layout_case(op, xprintf("%s %s", from, drop ? "[-1, 1]" : "[1:3, ::2]"), g, &x, l,
                            NULL);
            }
            break;
        case OP_permute: {
            Layout *l = xalloc(sizeof *l);
            memcpy(l->perm, orders[param], sizeof l->perm);
            Shape s = param ? shape2(2, 3) : (Shape){3, {2, 3, 4}};
            Value *x = layout_operand(g, "x", param, s);
            layout_case(
                op,
                xprintf("%s %s", from, ir_layout_str(&(Value){.op = op, .layout = l, .shape = s})),
                g, &x, l, NULL);
            break;
        }
        case OP_transpose:
            for (int k = 0; k < 2; k++) {
                Value *x = layout_operand(g, xprintf("x%d", k), param, (Shape){3, {2, 3, 4}});
                layout_case(op, xprintf("%s a=%g b=%g", from, swaps[k][0], swaps[k][1]), g, &x,
                            NULL, swaps[k]);
            }
            break;
        case OP_concat:
            for (int axis = -1; axis <= 0; axis++) {
                Shape sb = axis ? shape2(2, 1) : shape2(1, 3);
                Value *args[2] = {layout_operand(g, xprintf("a%d", -axis), param, shape2(2, 3)),
                                  add_input(g, xprintf("b%d", -axis), sb)};
                double opt[OP_MAX_OPTIONS] = {axis};
                layout_case(op, xprintf("%s [2,3] and input, axis %d", from, axis), g, args, NULL,
                            opt);
            }
            break;
        default: check(false, "%s: no layout case builds it", op_info[op].name);
        }
    }
}

/* ---- images: every WINDOW row, at its borders (padding), strides and dilations, over a
 * batch and on operands that are the same for every sample ---- */

/* Every element of x rounded down to a whole number: windows full of ties. */
static void ties(Model *m) {
    const nnrt_tensor *t = model_tensor(m, "x");
    int64_t samples = t->varying ? m->ctx.batch_cap : 1;
    for (int64_t b = 0; b < samples; b++)
        for (int64_t i = 0; i < t->numel; i++)
            tensor_set(m, t, b, i, floor(tensor_get(m, t, b, i)));
}

/* Ties, a NaN (the window holding it is NaN, its gradient goes to the NaN) and a window
 * of -inf (the gradient goes to its first element) in channel 1 of each [C, 5, 5]. */
static void ties_nan_inf(Model *m) {
    ties(m);
    const nnrt_tensor *t = model_tensor(m, "x");
    int64_t samples = t->varying ? m->ctx.batch_cap : 1;
    for (int64_t b = 0; b < samples; b++) {
        tensor_set(m, t, b, 25 + 7, NAN);
        for (int k = 0; k < 4; k++) tensor_set(m, t, b, 25 + 15 + (k / 2) * 5 + k % 2, -INFINITY);
    }
}

/* The same in rows of 18 windows and more, which the vector units take 16 at a time: in
 * channel 1 of each [C, 4, 37], a NaN in window 10 of the first row of windows and a
 * window of -inf at 15 of the second (the last column is in no window). */
static void wide_ties_nan_inf(Model *m) {
    ties(m);
    const nnrt_tensor *t = model_tensor(m, "x");
    int64_t samples = t->varying ? m->ctx.batch_cap : 1, w = 37, channel = 4 * w;
    for (int64_t b = 0; b < samples; b++) {
        tensor_set(m, t, b, channel + w + 21, NAN);
        for (int k = 0; k < 4; k++)
            tensor_set(m, t, b, channel + (2 + k / 2) * w + 30 + k % 2, -INFINITY);
    }
}

/* Whole numbers below 5 in x, the ids of the take, scatter_add and one_hot cases: the
 * first and last rows, and ids repeated within a sample and across the batch. */
static void ids_below_5(Model *m) {
    static const int pattern[] = {0, 4, 0, 2, 4, 1, 3};
    const nnrt_tensor *t = model_tensor(m, "x");
    int64_t samples = t->varying ? m->ctx.batch_cap : 1;
    for (int64_t b = 0; b < samples; b++)
        for (int64_t i = 0; i < t->numel; i++) tensor_set(m, t, b, i, pattern[(b + i) % 7]);
}

typedef struct WindowCase {
    Op op;
    const char *what;
    bool x_param, g_param;
    void (*tweak)(Model *m);
    Shape x, w; /* the image; conv2d's weights (rank 0: pooling); for ids: the ids, the table */
    double opt[OP_MAX_OPTIONS];
    int bias; /* conv2d: 1 a param [C_out], 0 the constant 0.5 */
} WindowCase;

/* A case a line (two for the long ones). */
/* clang-format off */
static const WindowCase window_cases[] = {
    {OP_conv2d, "x [2,7,6] w [3,2,3,2] stride 2 padding 1", false, false, NULL,
     {3, {2, 7, 6}}, {4, {3, 2, 3, 2}}, {2, 1, 1}, 1},
    {OP_conv2d, "x [1,6,6] w [2,1,3,3] padding 2 dilation 2 bias 0.5", false, false, NULL,
     {3, {1, 6, 6}}, {4, {2, 1, 3, 3}}, {1, 2, 2}, 0},
    {OP_conv2d, "x param [2,5,5]", true, false, NULL,
     {3, {2, 5, 5}}, {4, {2, 2, 2, 2}}, {1, 0, 1}, 1},
    {OP_conv2d_input_grad, "x [2,7,6] w [3,2,3,2] stride 2 padding 1", false, false, NULL,
     {3, {2, 7, 6}}, {4, {3, 2, 3, 2}}, {2, 1, 1}, 1},
    {OP_conv2d_input_grad, "g param, padding 2 dilation 2", false, true, NULL,
     {3, {1, 6, 6}}, {4, {2, 1, 3, 3}}, {1, 2, 2}, 1},
    {OP_conv2d_weight_grad, "x [2,7,6] g [3,4,4] stride 2 padding 1", false, false, NULL,
     {3, {2, 7, 6}}, {4, {3, 2, 3, 2}}, {2, 1, 1}, 1},
    {OP_conv2d_weight_grad, "x param, dilation 2", true, false, NULL,
     {3, {1, 6, 6}}, {4, {2, 1, 3, 3}}, {1, 2, 2}, 1},
    /* stride 1 without dilation: the direct kernels (runtime/conv.h, nnrt_conv_is_direct);
     * rows wider than 16 lanes, a last block of fewer than 4 channels, kH != kW */
    {OP_conv2d, "direct: x [2,5,19] w [5,2,3,2] padding 1", false, false, NULL,
     {3, {2, 5, 19}}, {4, {5, 2, 3, 2}}, {1, 1, 1}, 1},
    {OP_conv2d, "direct: x [1,4,4] w [1,1,2,3] bias 0.5, x param", true, false, NULL,
     {3, {1, 4, 4}}, {4, {1, 1, 2, 3}}, {1, 0, 1}, 0},
    /* blocks of 8 and of 6 channels (conv.h: 4, 6 or 8, the fewest wasted), odd heights */
    {OP_conv2d, "direct: x [3,7,5] w [16,3,3,3] padding 1, blocks of 8", false, false, NULL,
     {3, {3, 7, 5}}, {4, {16, 3, 3, 3}}, {1, 1, 1}, 1},
    {OP_conv2d_input_grad, "direct: x [6,9,17] w [4,6,3,3] padding 2, blocks of 6", false,
     false, NULL, {3, {6, 9, 17}}, {4, {4, 6, 3, 3}}, {1, 2, 1}, 1},
    {OP_conv2d_input_grad, "direct: x [3,6,18] w [6,3,3,3] padding 1", false, false, NULL,
     {3, {3, 6, 18}}, {4, {6, 3, 3, 3}}, {1, 1, 1}, 1},
    {OP_conv2d_input_grad, "direct: x [2,5,5] w [1,2,2,3] g param", false, true, NULL,
     {3, {2, 5, 5}}, {4, {1, 2, 2, 3}}, {1, 0, 1}, 1},
    /* a tile skips the kernel rows that read only the padding's zero rows (conv_kernels.inc,
     * rows_inside): dy padded by 4 rows, a 5-row image padded by 2, odd last rows; rows of 7
     * and 6 store whole vectors that spill into the rows below (tile_width) */
    {OP_conv2d_input_grad, "direct: x [3,9,7] w [5,3,5,5], zero rows skipped", false, false,
     NULL, {3, {3, 9, 7}}, {4, {5, 3, 5, 5}}, {1, 0, 1}, 1},
    {OP_conv2d, "direct: x [2,5,6] w [3,2,5,5] padding 2, zero rows skipped", false, false, NULL,
     {3, {2, 5, 6}}, {4, {3, 2, 5, 5}}, {1, 2, 1}, 1},
    {OP_conv2d_weight_grad, "direct: x [2,5,19] w [5,2,3,2] padding 1", false, false, NULL,
     {3, {2, 5, 19}}, {4, {5, 2, 3, 2}}, {1, 1, 1}, 1},
    {OP_conv2d_weight_grad, "direct: x [1,7,7] w [6,1,5,5] padding 2, x param", true, false, NULL,
     {3, {1, 7, 7}}, {4, {6, 1, 5, 5}}, {1, 2, 1}, 1},
    /* by taps in blocks of 4 and chunks of 6 kernel columns, the 12th computed and dropped */
    {OP_conv2d_weight_grad, "direct: x [1,4,14] w [4,1,2,11] padding 1", false, false, NULL,
     {3, {1, 4, 14}}, {4, {4, 1, 2, 11}}, {1, 1, 1}, 1},
    {OP_conv2d_weight_grad, "stride 1, K 54 > 32: im2col, x [6,5,5] w [3,6,3,3]", false, false,
     NULL, {3, {6, 5, 5}}, {4, {3, 6, 3, 3}}, {1, 0, 1}, 1},
    /* K > 32 with at least 8 output channels: the weight gradient by channels (conv.h,
     * nnrt_conv_weight_grad_by_channels); a full vector of 16 channels with padding and an odd
     * row, a second vector 4 channels full, kW 7 (the widest) with x the same for every
     * sample, and kW 8 past it (im2col) */
    {OP_conv2d_weight_grad, "by channels: x [4,6,9] w [16,4,3,3] padding 1", false, false,
     NULL, {3, {4, 6, 9}}, {4, {16, 4, 3, 3}}, {1, 1, 1}, 1},
    {OP_conv2d_weight_grad, "by channels: x [2,7,11] w [20,2,4,5]", false, false,
     NULL, {3, {2, 7, 11}}, {4, {20, 2, 4, 5}}, {1, 0, 1}, 1},
    {OP_conv2d_weight_grad, "by channels: x param [1,9,8] w [8,1,7,7] padding 3", true, false,
     NULL, {3, {1, 9, 8}}, {4, {8, 1, 7, 7}}, {1, 3, 1}, 1},
    {OP_conv2d_weight_grad, "kW 8: im2col, x [3,4,10] w [8,3,2,8]", false, false,
     NULL, {3, {3, 4, 10}}, {4, {8, 3, 2, 8}}, {1, 0, 1}, 1},
    {OP_conv2d_bias_grad, "g [3,4,4]", false, false, NULL,
     {3, {2, 7, 6}}, {4, {3, 2, 3, 2}}, {2, 1, 1}, 1},
    {OP_max_pool2d, "x [3,5,5] kernel 2 with ties", false, false, ties,
     {3, {3, 5, 5}}, {0}, {2, 2, 0}, 0},
    {OP_max_pool2d, "x [3,5,5] kernel 2 with ties, a NaN, -inf", false, false, ties_nan_inf,
     {3, {3, 5, 5}}, {0}, {2, 2, 0}, 0},
    {OP_max_pool2d, "x [2,4,37] kernel 2 with ties, a NaN, -inf", false, false,
     wide_ties_nan_inf, {3, {2, 4, 37}}, {0}, {2, 2, 0}, 0},
    {OP_max_pool2d, "x [2,6,5] kernel 3 stride 2 padding 1", false, false, NULL,
     {3, {2, 6, 5}}, {0}, {3, 2, 1}, 0},
    {OP_max_pool2d, "x [3,5,5] kernel 3 stride 1 padding 1, ties, a NaN, -inf", false, false,
     ties_nan_inf, {3, {3, 5, 5}}, {0}, {3, 1, 1}, 0},
    {OP_max_pool2d_grad, "x [3,5,5] kernel 2 with ties", false, false, ties,
     {3, {3, 5, 5}}, {0}, {2, 2, 0}, 0},
    {OP_max_pool2d_grad, "x [3,5,5] kernel 2 with ties, a NaN, -inf", false, false, ties_nan_inf,
     {3, {3, 5, 5}}, {0}, {2, 2, 0}, 0},
    {OP_max_pool2d_grad, "x [2,4,37] kernel 2 with ties, a NaN, -inf", false, false,
     wide_ties_nan_inf, {3, {2, 4, 37}}, {0}, {2, 2, 0}, 0},
    {OP_max_pool2d_grad, "x [2,6,5] kernel 3 stride 1 padding 1, ties, g param", false, true, ties,
     {3, {2, 6, 5}}, {0}, {3, 1, 1}, 0},
    {OP_avg_pool2d, "x [2,6,5] kernel 3 stride 2 padding 1", false, false, NULL,
     {3, {2, 6, 5}}, {0}, {3, 2, 1}, 0},
    {OP_avg_pool2d, "x param [1,4,4] kernel 2", true, false, NULL,
     {3, {1, 4, 4}}, {0}, {2, 2, 0}, 0},
    {OP_avg_pool2d_grad, "g [2,3,3] kernel 3 stride 2 padding 1", false, false, NULL,
     {3, {2, 6, 5}}, {0}, {3, 2, 1}, 0},
    {OP_reshape, "x [2,3,4] to [4, -1]", false, false, NULL, {3, {2, 3, 4}}, {0}, {4, -1}, 0},
    {OP_reshape, "x param [6] to [2,3]", true, false, NULL, {1, {6}}, {0}, {2, 3}, 0},
    {OP_flatten, "x [2,3,4]", false, false, NULL, {3, {2, 3, 4}}, {0}, {0}, 0},
    {OP_take, "E [5,3] ids [4]", false, false, ids_below_5, {1, {4}}, {2, {5, 3}}, {0}, 0},
    {OP_take, "E [5,2] ids [2,3]", false, false, ids_below_5, {2, {2, 3}}, {2, {5, 2}}, {0}, 0},
    {OP_take, "E [5,3] ids param [3]", true, false, ids_below_5, {1, {3}}, {2, {5, 3}}, {0}, 0},
    {OP_take, "E [5,4] one id", false, false, ids_below_5, {0}, {2, {5, 4}}, {0}, 0},
    {OP_scatter_add, "g [6,3] ids [6] to [5,3]", false, false, ids_below_5,
     {1, {6}}, {2, {5, 3}}, {0}, 0},
    {OP_scatter_add, "g param [2,3,2] ids [2,3] to [5,2]", false, true, ids_below_5,
     {2, {2, 3}}, {2, {5, 2}}, {0}, 0},
    {OP_scatter_add, "g [3] one id to [5,3]", false, false, ids_below_5,
     {0}, {2, {5, 3}}, {0}, 0},
    {OP_one_hot, "ids [4] k 5", false, false, ids_below_5, {1, {4}}, {0}, {5}, 0},
    {OP_one_hot, "ids [2,3] k 5", false, false, ids_below_5, {2, {2, 3}}, {0}, {5}, 0},
    {OP_one_hot, "ids param [3] k 6", true, false, ids_below_5, {1, {3}}, {0}, {6}, 0},
};
/* clang-format on */

/* The forward op a gradient case stands for: its result is the gradient's shape. */
static Shape forward_shape(const WindowCase *c, Graph *g) {
    Value *x = add_input(g, "shape_of_x", c->x), *args[3] = {x, NULL, NULL};
    Op op = c->w.rank ? OP_conv2d : OP_max_pool2d;
    if (c->w.rank) args[1] = add_param(g, "shape_of_w", c->w), args[2] = ir_const(g, 0);
    return ir_window(g, op, op_info[op].arity, args, c->opt, shape_scalar())->shape;
}

/* take, scatter_add, one_hot: x holds the ids, w is the table. */
static Value *ids_case(Graph *g, const WindowCase *c) {
    Value *ids = c->x_param ? add_param(g, "x", c->x) : add_input(g, "x", c->x);
    if (c->op == OP_one_hot) return ir_window(g, c->op, 1, &ids, c->opt, shape_scalar());
    if (c->op == OP_take)
        return ir_window(g, c->op, 2, (Value *[]){add_param(g, "w", c->w), ids}, c->opt,
                         shape_scalar());
    Shape y = c->x;
    y.dim[y.rank++] = c->w.dim[1];
    Value *dy = c->g_param ? add_param(g, "dy", y) : add_input(g, "dy", y);
    return ir_window(g, c->op, 2, (Value *[]){dy, ids}, c->opt, c->w);
}

static Value *window_case(Graph *g, const WindowCase *c) {
    if (c->op == OP_take || c->op == OP_scatter_add || c->op == OP_one_hot) return ids_case(g, c);
    Value *x = c->x_param ? add_param(g, "x", c->x) : add_input(g, "x", c->x);
    Value *w = c->w.rank ? add_param(g, "w", c->w) : NULL;
    Shape y = c->op == OP_reshape || c->op == OP_flatten ? c->x : forward_shape(c, g);
    Value *dy = c->g_param ? add_param(g, "dy", y) : add_input(g, "dy", y);
    Value *b = c->bias ? add_param(g, "b", shape1(c->w.dim[0])) : ir_const(g, 0.5);
    switch (c->op) {
    case OP_conv2d: return ir_window(g, c->op, 3, (Value *[]){x, w, b}, c->opt, shape_scalar());
    case OP_conv2d_input_grad: return ir_window(g, c->op, 2, (Value *[]){dy, w}, c->opt, c->x);
    case OP_conv2d_weight_grad: return ir_window(g, c->op, 2, (Value *[]){x, dy}, c->opt, c->w);
    case OP_conv2d_bias_grad: return ir_window(g, c->op, 1, &dy, c->opt, shape_scalar());
    case OP_max_pool2d_grad:
        return ir_window(g, c->op, 2, (Value *[]){x, dy}, c->opt, shape_scalar());
    case OP_avg_pool2d_grad: return ir_window(g, c->op, 1, &dy, c->opt, c->x);
    default: return ir_window(g, c->op, 1, &x, c->opt, shape_scalar());
    }
}

static void window_op(Op op) {
    int tested = 0;
    for (size_t k = 0; k < sizeof window_cases / sizeof window_cases[0]; k++) {
        const WindowCase *c = &window_cases[k];
        if (c->op != op) continue;
        Graph *g = graph_new("window");
        Value *r = window_case(g, c);
        ForwardCase fc = range(-3, 3);
        fc.tweak = c->tweak;
        check_forward(label(c->what, op), g, r, &fc);
        tested++;
    }
    check(tested > 0, "%s: no case of window_cases[] tests it", op_info[op].name);
}

/* Every row of ops.def, by class. */
static void every_op(void) {
    for (int op = 0; op < OP_COUNT; op++) switch (op_info[op].cls) {
        case OPC_SRC: break;    /* the leaves of every case */
        case OPC_MATMUL: break; /* test_matmul.c */
        case OPC_EW: elementwise_op((Op)op); break;
        case OPC_REDUCE: reduce_op((Op)op); break;
        case OPC_ROW: row_op((Op)op); break;
        case OPC_LAYOUT: layout_op((Op)op); break;
        case OPC_WINDOW: window_op((Op)op); break;
        }
}

/* Large logits must not overflow: softmax subtracts the row's maximum. */
static void large_logits(Model *m) {
    const nnrt_tensor *t = model_tensor(m, "z");
    for (int64_t b = 0; b < m->ctx.batch_cap; b++)
        for (int64_t i = 0; i < t->numel; i++) tensor_set(m, t, b, i, 500.0 + 40 * (double)i);
}

static void stable_rows(void) {
    for (int k = 0; k < 2; k++) {
        Graph *g = graph_new("stable");
        Value *z = add_input(g, "z", shape1(4)), *y = add_target(g, "y", shape1(4));
        Value *r = k ? ir_build2(g, OP_softmax_ce, z, y) : ir_build1(g, OP_softmax, z);
        ForwardCase fc = range(0, 1);
        fc.tweak = large_logits;
        check_forward(label("logits near 600", r->op), g, r, &fc);
    }
}

int main(void) {
    for (int mode = 0; mode < 2; mode++) {
        f64_mode = mode;
        every_op();
        constant_powers();
        fixed_only();
        fused_chain();
        same_count_other_shape();
        inner_axes();
        stable_rows();
    }
    return test_summary("test_ops");
}
