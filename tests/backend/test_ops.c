/* test_ops.c: every elementwise op, reduction and row op, compiled and compared with the
 * reference interpreter, in f32 and f64, over each way an operand can be broadcast. */
#include "harness.h"

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

static bool positive_domain(Op op) {
    return op == OP_log || op == OP_sqrt;
}

static void unary_ops(void) {
    static const Op ops[] = {OP_neg,      OP_exp,  OP_log,     OP_sqrt,     OP_abs,        OP_sin,
                             OP_cos,      OP_tanh, OP_sigmoid, OP_relu,     OP_leaky_relu, OP_elu,
                             OP_softplus, OP_sign, OP_step,    OP_broadcast};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        Op op = ops[k];
        Graph *g = graph_new("unary");
        Value *x = add_input(g, "x", shape2(2, 3));
        Value *r = op == OP_broadcast ? ir_broadcast(g, x, shape2(2, 3)) : ir_build1(g, op, x);
        r->opt[0] = 0.1; /* leaky_relu's and elu's alpha */
        ForwardCase fc = positive_domain(op) ? range(0.1, 3) : range(-3, 3);
        if (!positive_domain(op)) fc.tweak = special_values;
        check_forward(label("unary", op), g, r, &fc);
    }
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
static Value *constant(Graph *g) {
    return ir_const(g, 1.75);
}
static Value *inverse_batch(Graph *g) {
    return ir_leaf(g, OP_inv_batch, NULL, shape_scalar(), false);
}

static const Partner partners[] = {
    {"param [3]", param_suffix}, {"param [2,3]", param_same}, {"param []", param_scalar},
    {"input []", input_scalar},  {"input [3]", input_suffix}, {"input [2,3]", input_same},
    {"const", constant},         {"1/B", inverse_batch},
};

static void binary_ops(void) {
    static const Op ops[] = {OP_add, OP_sub, OP_mul, OP_div, OP_pow};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        for (size_t p = 0; p < sizeof partners / sizeof partners[0]; p++)
            for (int swap = 0; swap < 2; swap++) {
                Graph *g = graph_new("binary");
                Value *x = add_input(g, "x", shape2(2, 3)), *y = partners[p].make(g);
                Value *r = swap ? ir_build2(g, ops[k], y, x) : ir_build2(g, ops[k], x, y);
                ForwardCase fc = range(0.5, 2);
                const char *what =
                    xprintf("%s %s", swap ? "partner, x" : "x, partner", partners[p].what);
                check_forward(label(what, ops[k]), g, r, &fc);
            }
}

/* where(x, a, b): the condition x [2,3] (with exact zeros), each partner as either branch,
 * the other branch an input [3] or the constant 0. */
static void where_op(void) {
    for (size_t p = 0; p < sizeof partners / sizeof partners[0]; p++)
        for (int swap = 0; swap < 3; swap++) {
            Graph *g = graph_new("where");
            Value *x = add_input(g, "x", shape2(2, 3)), *y = partners[p].make(g);
            Value *other = swap == 2 ? ir_const(g, 0) : add_input(g, "z", shape1(3));
            Value *args[3] = {x, swap ? y : other, swap ? other : y};
            Value *r = ir_build(g, OP_where, 3, args);
            ForwardCase fc = range(-2, 2);
            fc.tweak = special_values;
            const char *what = xprintf("%s %s", swap ? "x, partner, other" : "x, other, partner",
                                       partners[p].what);
            check_forward(label(what, OP_where), g, r, &fc);
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

static void reductions(void) {
    struct {
        const char *what;
        Op op;
        bool param;
        Shape from, to;
    } cases[] = {
        {"input [2,3]", OP_sum, false, shape2(2, 3), {0}},
        {"input [2,3]", OP_mean, false, shape2(2, 3), {0}},
        {"param [2,3]", OP_sum, true, shape2(2, 3), {0}},
        {"input [] (one element)", OP_mean, false, shape_scalar(), {0}},
        {"input [2,3] to [3]", OP_sum_to, false, shape2(2, 3), shape1(3)},
        {"input [2,3] to []", OP_sum_to, false, shape2(2, 3), shape_scalar()},
        {"input [2,3] to [2,3]", OP_sum_to, false, shape2(2, 3), shape2(2, 3)},
        {"param [4,3] to [3]", OP_sum_to, true, shape2(4, 3), shape1(3)},
        {"input [2,3]", OP_batch_sum, false, shape2(2, 3), {0}},
        {"input []", OP_batch_sum, false, shape_scalar(), {0}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Graph *g = graph_new("reduce");
        Value *x =
            cases[k].param ? add_param(g, "x", cases[k].from) : add_input(g, "x", cases[k].from);
        Value *r =
            cases[k].op == OP_sum_to ? ir_sum_to(g, x, cases[k].to) : ir_build1(g, cases[k].op, x);
        ForwardCase fc = range(-2, 2);
        check_forward(label(cases[k].what, cases[k].op), g, r, &fc);
    }
}

static void row_ops(void) {
    for (int k = 0; k < 10; k++) {
        Graph *g = graph_new("row");
        Value *z = k == 9 ? add_param(g, "z", shape2(2, 5)) : add_input(g, "z", shape2(3, 5));
        Value *y = k == 8 ? add_param(g, "y", z->shape) : add_target(g, "y", z->shape);
        Value *r = NULL;
        const char *what = "z [3,5]";
        switch (k) {
        case 0: r = ir_build1(g, OP_softmax, z); break;
        case 1: r = ir_build1(g, OP_log_softmax, z); break;
        case 2: r = ir_build2(g, OP_softmax_ce, z, y); break;
        case 3:
            r = ir_build2(g, OP_softmax_grad, ir_build1(g, OP_softmax, z),
                          add_input(g, "g", z->shape));
            break;
        case 4:
            r = ir_build2(g, OP_log_softmax_grad, ir_build1(g, OP_log_softmax, z),
                          add_input(g, "g", z->shape));
            break;
        case 5:
            r = ir_inst(g, OP_softmax_ce_grad, 3,
                        (Value *[]){z, y, ir_leaf(g, OP_inv_batch, NULL, shape_scalar(), false)},
                        z->shape, true);
            what = "z, y, 1/B";
            break;
        case 6:
            r = ir_inst(g, OP_softmax_ce_grad, 3,
                        (Value *[]){z, y, add_input(g, "g", shape_scalar())}, z->shape, true);
            what = "z, y, g varying";
            break;
        case 7:
            r = ir_inst(g, OP_softmax_ce_grad, 3, (Value *[]){z, y, ir_const(g, 0.5)}, z->shape,
                        true);
            what = "z, y, const";
            break;
        case 8:
            r = ir_build2(g, OP_softmax_ce, z, y);
            what = "z varying, y param";
            break;
        case 9:
            r = ir_build1(g, OP_softmax, z);
            what = "z param";
            break;
        }
        ForwardCase fc = range(-3, 3);
        check_forward(label(what, r->op), g, r, &fc);
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
        unary_ops();
        binary_ops();
        where_op();
        constant_powers();
        fixed_only();
        fused_chain();
        same_count_other_shape();
        reductions();
        row_ops();
        stable_rows();
    }
    return test_summary("test_ops");
}
