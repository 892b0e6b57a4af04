/* autodiff.c: the backward pass, by the chain rule, on the IR.
 *
 * Reverse mode: walk the forward instructions last to first. Each value's gradient is the
 * sum of the contributions its users made; each op's rule (grad_NAME below, one per row of
 * ops.def) turns the gradient of its result into contributions to its operands: the
 * vector-Jacobian product. Every instruction emitted records the forward instruction and
 * the rule it came from, so --emit=grad can say why it is there.
 *
 * The cost is the mean of the per-sample losses over the batch, so the seed d cost/d loss_i
 * is 1/B (OP_inv_batch); a model without inputs has one loss, and the seed is 1.
 *
 * Only values that depend on a param are differentiated: inputs get no gradient, which is
 * what keeps dX = dY W^T out of the first layer. */
#include "rules.h"
#include "stages.h"

#include <stdlib.h>
#include <string.h>

typedef VEC(Value *) Contribs;

typedef struct AD {
    Graph *g;
    Contribs *contribs; /* by forward value id: gradient contributions */
    bool *needs;        /* by forward value id: depends on a param */
    int n_ids;
    Value *from;             /* the forward instruction whose rule is running */
    int operand;             /* which operand the rule is differentiating for */
    const char *custom_text; /* set while a fn's own rule runs: annotate() cites it */
    bool *tainted;           /* by forward value id: a surrogate rule lies on a path to the loss */
    VEC(Value *) zero_rules; /* sign/step instructions a gradient stopped at */
} AD;

static Value *annotate(AD *ad, Value *v) {
    if (v->backward || op_info[v->op].cls == OPC_SRC) return v;
    v->backward = true;
    v->from = ad->from;
    v->rule = ad->custom_text ? ad->custom_text
              : ad->from      ? ir_rule_text(ad->from->op, ad->operand)
                              : NULL;
    v->loc = ad->from ? ad->from->loc : v->loc;
    return v;
}

/* ---- emitting backward instructions ---- */

static Value *E1(AD *ad, Op op, Value *a) {
    return annotate(ad, ir_build1(ad->g, op, a));
}
static Value *E2(AD *ad, Op op, Value *a, Value *b) {
    return annotate(ad, ir_build2(ad->g, op, a, b));
}
static Value *C(AD *ad, double x) {
    return ir_const(ad->g, x);
}
static Value *MM(AD *ad, Value *a, Value *b, bool ta, bool tb, bool sum_batch) {
    return annotate(ad, ir_matmul(ad->g, a, b, ta, tb, sum_batch));
}

static bool wants(AD *ad, Value *v, int i) {
    Value *a = v->args[i];
    return a->id < ad->n_ids && ad->needs[a->id];
}

/* Undoes broadcasting: a gradient shaped like the result, for an operand that broadcast to
 * it (or did not vary), is summed over the axes the operand was repeated along. */
static Value *reduce_like(AD *ad, Value *grad, Value *operand) {
    if (!shape_eq(grad->shape, operand->shape))
        grad = annotate(ad, ir_sum_to(ad->g, grad, operand->shape));
    if (grad->varying && !operand->varying) grad = E1(ad, OP_batch_sum, grad);
    return grad;
}

static void contribute(AD *ad, Value *v, int i, Value *grad) {
    Value *a = v->args[i];
    ad->operand = i;
    grad = reduce_like(ad, annotate(ad, grad), a);
    vec_push(&ad->contribs[a->id], grad);
}

/* ---- the rules: d(result)/d(operand) times the result's gradient g ---- */

typedef void GradRule(AD *ad, Value *v, Value *g);

static void grad_leaf(AD *ad, Value *v, Value *g) {
    (void)ad, (void)v, (void)g;
}
#define grad_input     grad_leaf
#define grad_target    grad_leaf
#define grad_param     grad_leaf
#define grad_const     grad_leaf
#define grad_inv_batch grad_leaf
#define grad_state     grad_leaf

static void grad_add(AD *ad, Value *v, Value *g) {
    if (wants(ad, v, 0)) contribute(ad, v, 0, g);
    if (wants(ad, v, 1)) contribute(ad, v, 1, g);
}

static void grad_sub(AD *ad, Value *v, Value *g) {
    if (wants(ad, v, 0)) contribute(ad, v, 0, g);
    if (wants(ad, v, 1)) ad->operand = 1, contribute(ad, v, 1, E1(ad, OP_neg, g));
}

static void grad_mul(AD *ad, Value *v, Value *g) {
    if (wants(ad, v, 0)) ad->operand = 0, contribute(ad, v, 0, E2(ad, OP_mul, g, v->args[1]));
    if (wants(ad, v, 1)) ad->operand = 1, contribute(ad, v, 1, E2(ad, OP_mul, g, v->args[0]));
}

static void grad_div(AD *ad, Value *v, Value *g) {
    Value *b = v->args[1];
    if (wants(ad, v, 0)) ad->operand = 0, contribute(ad, v, 0, E2(ad, OP_div, g, b));
    if (wants(ad, v, 1)) { /* -a/b^2 = -(a/b)/b = -v/b */
        ad->operand = 1;
        contribute(ad, v, 1, E1(ad, OP_neg, E2(ad, OP_mul, g, E2(ad, OP_div, v, b))));
    }
}

/* where(c, x, 0): x where c > 0, else exactly 0. The branch not taken contributes nothing,
 * even where x is inf or NaN there (see OP_where in ops.def). */
static Value *taken_where(AD *ad, Value *c, Value *x) {
    Value *args[3] = {c, x, C(ad, 0)};
    return annotate(ad, ir_build(ad->g, OP_where, 3, args));
}

/* d(a^b)/da = b*a^(b-1), which is exactly 0 where b = 0 (a^0 is 1 for every a, even where
 * a^-1 is inf). d(a^b)/db = a^b*log(a), exactly 0 where a = 0 (0^b is 0 for every b > 0,
 * even though log(0) is -inf). PyTorch makes the same choices. */
static void grad_pow(AD *ad, Value *v, Value *g) {
    Value *a = v->args[0], *b = v->args[1];
    if (wants(ad, v, 0) && !(b->op == OP_const && b->num == 0)) {
        ad->operand = 0;
        Value *b_minus_1 = b->op == OP_const ? C(ad, b->num - 1) : E2(ad, OP_sub, b, C(ad, 1));
        Value *local = E2(ad, OP_mul, b, E2(ad, OP_pow, a, b_minus_1));
        Value *d = E2(ad, OP_mul, g, local);
        if (b->op != OP_const) d = taken_where(ad, E1(ad, OP_abs, b), d);
        contribute(ad, v, 0, d);
    }
    if (wants(ad, v, 1) && !(a->op == OP_const && a->num == 0)) {
        ad->operand = 1;
        Value *local = E2(ad, OP_mul, v, E1(ad, OP_log, a));
        Value *d = E2(ad, OP_mul, g, local);
        if (a->op != OP_const) d = taken_where(ad, E1(ad, OP_abs, a), d);
        contribute(ad, v, 1, d);
    }
}

/* where(c, x, y) */
static Value *W(AD *ad, Value *c, Value *x, Value *y) {
    Value *args[3] = {c, x, y};
    return annotate(ad, ir_build(ad->g, OP_where, 3, args));
}

/* max and min give g to the operand they chose, 0 to the other and g/2 to each at a tie
 * (PyTorch's choice); where either is NaN, both get g (where's NaN condition takes its first
 * branch, as PyTorch's masks do). cmp, not a - b, decides: inf = inf is a tie. */
static void choice_rule(AD *ad, Value *v, Value *g, bool larger) {
    for (int i = 0; i < 2; i++) {
        if (!wants(ad, v, i)) continue;
        ad->operand = i;
        Value *self = v->args[i], *other = v->args[1 - i];
        Value *wins = larger ? E2(ad, OP_cmp, self, other) : E2(ad, OP_cmp, other, self);
        Value *loses = larger ? E2(ad, OP_cmp, other, self) : E2(ad, OP_cmp, self, other);
        Value *half = E2(ad, OP_mul, g, C(ad, 0.5));
        Value *at_tie = W(ad, loses, C(ad, 0), half);
        contribute(ad, v, i, W(ad, wins, g, at_tie));
    }
}
static void grad_max(AD *ad, Value *v, Value *g) {
    choice_rule(ad, v, g, true);
}
static void grad_min(AD *ad, Value *v, Value *g) {
    choice_rule(ad, v, g, false);
}

/* Unary rules: g times the local derivative. */
static void unary(AD *ad, Value *v, Value *g, Value *local) {
    contribute(ad, v, 0, E2(ad, OP_mul, g, local));
}

static bool start_unary(AD *ad, Value *v) {
    ad->operand = 0;
    return wants(ad, v, 0);
}

static void grad_neg(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v)) contribute(ad, v, 0, E1(ad, OP_neg, g));
}
static void grad_exp(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v)) unary(ad, v, g, v);
}
static void grad_log(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v)) contribute(ad, v, 0, E2(ad, OP_div, g, v->args[0]));
}
static void grad_sqrt(AD *ad, Value *v, Value *g) {
    if (!start_unary(ad, v)) return;
    Value *two = C(ad, 2);
    contribute(ad, v, 0, E2(ad, OP_div, g, E2(ad, OP_mul, two, v)));
}
/* g*sign(u) where |u| > 0; at u = 0 the subgradient 0, exactly, whatever g is. */
static void grad_abs(AD *ad, Value *v, Value *g) {
    if (!start_unary(ad, v)) return;
    Value *signed_g = E2(ad, OP_mul, g, E1(ad, OP_sign, v->args[0]));
    contribute(ad, v, 0, taken_where(ad, v, signed_g));
}
static void grad_sin(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v)) unary(ad, v, g, E1(ad, OP_cos, v->args[0]));
}
static void grad_cos(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v)) unary(ad, v, g, E1(ad, OP_neg, E1(ad, OP_sin, v->args[0])));
}
/* Rules build operands one statement at a time: C leaves the order of evaluation of a call's
 * arguments open, and instruction numbers (printed by --emit=grad) must not depend on it. */
static void grad_tanh(AD *ad, Value *v, Value *g) {
    if (!start_unary(ad, v)) return;
    Value *one = C(ad, 1);
    Value *square = E2(ad, OP_mul, v, v);
    unary(ad, v, g, E2(ad, OP_sub, one, square));
}
static void grad_sigmoid(AD *ad, Value *v, Value *g) {
    if (!start_unary(ad, v)) return;
    Value *one = C(ad, 1);
    Value *one_minus = E2(ad, OP_sub, one, v);
    unary(ad, v, g, E2(ad, OP_mul, v, one_minus));
}
/* g where u > 0, else exactly 0: a relu that is off passes nothing back, even an inf (from
 * sqrt(relu(u)), say). At u = 0 the derivative is 0, as in PyTorch. The test reads relu(u),
 * not u: relu(u) > 0 exactly where u > 0, and a NaN u gives a NaN relu(u), which where treats
 * as u's. So u need not be kept for the backward pass: the next layer's weight gradient
 * keeps relu(u) anyway (PyTorch's relu keeps its result for the same reason). */
static void grad_relu(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v)) contribute(ad, v, 0, taken_where(ad, v, g));
}
static void grad_leaky_relu(AD *ad, Value *v, Value *g) {
    if (!start_unary(ad, v)) return;
    Value *scaled = E2(ad, OP_mul, g, C(ad, v->opt[0]));
    Value *args[3] = {v->args[0], g, scaled};
    contribute(ad, v, 0, annotate(ad, ir_build(ad->g, OP_where, 3, args)));
}
/* u > 0 ? g : g*alpha*exp(u). The exp of the side not taken may overflow (u > 88.7 in f32):
 * where drops it instead of multiplying it by 0. At u = 0 the derivative is alpha*exp(0). */
static void grad_elu(AD *ad, Value *v, Value *g) {
    if (!start_unary(ad, v)) return;
    Value *u = v->args[0];
    Value *alpha = C(ad, v->opt[0]);
    Value *local = E2(ad, OP_mul, alpha, E1(ad, OP_exp, u));
    Value *scaled = E2(ad, OP_mul, g, local);
    Value *args[3] = {u, g, scaled};
    contribute(ad, v, 0, annotate(ad, ir_build(ad->g, OP_where, 3, args)));
}
/* g where lo <= u <= hi (the bounds pass it, as in PyTorch), else exactly 0; 0 where u is
 * NaN. */
static void grad_clamp(AD *ad, Value *v, Value *g) {
    if (!start_unary(ad, v)) return;
    Value *u = v->args[0], *lo = C(ad, v->opt[0]), *hi = C(ad, v->opt[1]);
    Value *below = E2(ad, OP_cmp, lo, u), *above = E2(ad, OP_cmp, u, hi);
    Value *not_above = W(ad, above, C(ad, 0), g);
    contribute(ad, v, 0, W(ad, below, C(ad, 0), not_above));
}
static void grad_softplus(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v)) unary(ad, v, g, E1(ad, OP_sigmoid, v->args[0]));
}
/* FLAT ops (sign, step): no gradient flows through them. Remember where it stopped. */
static void grad_flat(AD *ad, Value *v, Value *g) {
    (void)g;
    if (start_unary(ad, v)) vec_push(&ad->zero_rules, v);
}
#define grad_sign grad_flat
#define grad_step grad_flat
/* The masks are a hash of the step's noise_seed, the salt and the element's place in the
 * batch (docs/codegen.md), so the backward pass recomputes them: the same dropout, applied
 * to g. Nothing is kept from the forward pass. The hash numbers the elements of v's shape,
 * so g is brought to it first. */
static void grad_dropout(AD *ad, Value *v, Value *g) {
    if (!start_unary(ad, v)) return;
    Value *upstream =
        shape_eq(g->shape, v->shape) ? g : annotate(ad, ir_broadcast(ad->g, g, v->shape));
    Value *masked = E1(ad, OP_dropout, upstream);
    memcpy(masked->opt, v->opt, sizeof v->opt);
    masked->salt = v->salt;
    contribute(ad, v, 0, masked);
}
/* The backward pass differentiates the training behaviour: training(a, b) passes g to a, and
 * nothing to b (what eval and predict compute is never trained through). */
static void grad_training(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v)) contribute(ad, v, 0, g);
}
static void grad_broadcast(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v)) contribute(ad, v, 0, g); /* contribute sums over the repeats */
}

static void grad_sum(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v))
        contribute(ad, v, 0, annotate(ad, ir_broadcast(ad->g, g, v->args[0]->shape)));
}
static void grad_mean(AD *ad, Value *v, Value *g) {
    if (!start_unary(ad, v)) return;
    Value *scaled = E2(ad, OP_mul, g, C(ad, 1.0 / (double)shape_numel(v->args[0]->shape)));
    contribute(ad, v, 0, annotate(ad, ir_broadcast(ad->g, scaled, v->args[0]->shape)));
}
static void grad_sum_to(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v))
        contribute(ad, v, 0, annotate(ad, ir_broadcast(ad->g, g, v->args[0]->shape)));
}

/* ---- reductions along one axis ---- */

/* r, a result of v (or its gradient), with v's axis back as size 1 when v dropped it, so that
 * it broadcasts against v's operand. */
static Value *with_axis(AD *ad, Value *v, Value *r) {
    if (v->opt[1] != 0) return r; /* keepdim */
    return annotate(ad, ir_build_options(ad->g, OP_unsqueeze, r, ir_reduced_axis(v), 0));
}

/* d/du: g repeated along the axis, times `scale`. */
static void spread_rule(AD *ad, Value *v, Value *g, double scale) {
    if (!start_unary(ad, v)) return;
    Value *scaled = scale == 1 ? g : E2(ad, OP_mul, g, C(ad, scale));
    Value *back = with_axis(ad, v, scaled);
    contribute(ad, v, 0, annotate(ad, ir_broadcast(ad->g, back, v->args[0]->shape)));
}
static void grad_sum_axis(AD *ad, Value *v, Value *g) {
    spread_rule(ad, v, g, 1);
}
static void grad_mean_axis(AD *ad, Value *v, Value *g) {
    spread_rule(ad, v, g, 1.0 / (double)v->args[0]->shape.dim[ir_reduced_axis(v)]);
}

/* The elements equal to the max (or min) share g evenly, as torch.amax and torch.amin do:
 * hit = [u = m] (cmp, so inf = inf is a tie), d/du = hit * g / (sum of hit along the axis).
 * At a tie of two, that half is what central differences see. */
static void extreme_rule(AD *ad, Value *v, Value *g) {
    if (!start_unary(ad, v)) return;
    Value *u = v->args[0], *m = with_axis(ad, v, v);
    Value *differs = E1(ad, OP_abs, E2(ad, OP_cmp, u, m));
    Value *hit = W(ad, differs, C(ad, 0), C(ad, 1));
    Value *count = annotate(ad, ir_build_options(ad->g, OP_sum_axis, hit, ir_reduced_axis(v), 1));
    Value *share = E2(ad, OP_div, with_axis(ad, v, g), count);
    contribute(ad, v, 0, E2(ad, OP_mul, hit, share));
}
#define grad_max_axis extreme_rule
#define grad_min_axis extreme_rule

/* m = sum_b u_b / (B - c): every sample's u_b gets g/(B - c), written with 1/B (a value per
 * sample) as g*(1/B) or, with Bessel's correction c = 1, g*((1/B)/(1 - 1/B)). */
static void grad_batch_mean(AD *ad, Value *v, Value *g) {
    if (!start_unary(ad, v)) return;
    Value *share = ir_leaf(ad->g, OP_inv_batch, NULL, shape_scalar(), true);
    double c = v->opt[0];
    if (c != 0)
        share = E2(ad, OP_div, share, E2(ad, OP_sub, C(ad, 1), E2(ad, OP_mul, C(ad, c), share)));
    contribute(ad, v, 0, E2(ad, OP_mul, g, share));
}

/* These appear only in backward passes, which are not differentiated again. */
static void grad_backward_only(AD *ad, Value *v, Value *g) {
    (void)ad, (void)g;
    fprintf(stderr,
            "nnc: internal error: %s is not differentiable (it belongs to backward passes)\n",
            op_info[v->op].name);
    abort();
}
#define grad_batch_sum        grad_backward_only
#define grad_where            grad_backward_only
#define grad_cmp              grad_backward_only
#define grad_softmax_grad     grad_backward_only
#define grad_log_softmax_grad grad_backward_only
#define grad_softmax_ce_grad  grad_backward_only
#define grad_scatter          grad_backward_only
#define grad_unsqueeze        grad_backward_only

static void grad_softmax(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v)) contribute(ad, v, 0, E2(ad, OP_softmax_grad, v, g));
}
static void grad_log_softmax(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v)) contribute(ad, v, 0, E2(ad, OP_log_softmax_grad, v, g));
}
static void grad_softmax_ce(AD *ad, Value *v, Value *g) {
    Value *z = v->args[0], *y = v->args[1];
    if (wants(ad, v, 0)) {
        ad->operand = 0;
        Value *args[3] = {z, y, g};
        contribute(ad, v, 0, annotate(ad, ir_build(ad->g, OP_softmax_ce_grad, 3, args)));
    }
    if (wants(ad, v, 1)) {
        ad->operand = 1;
        contribute(ad, v, 1, E1(ad, OP_neg, E2(ad, OP_mul, g, E1(ad, OP_log_softmax, z))));
    }
}

/* C = op(A) @ op(B). With G the gradient of C as the matrix C is (a rank-1 C that stands for
 * a column [M,1] is G = g^T):
 *   d op(A) = G op(B)^T      d op(B) = op(A)^T G
 * and a transposed operand takes the transpose of that. A weight that does not vary while
 * the product does gets the sum over the batch: one GEMM, X^T dY. */
static void grad_matmul(AD *ad, Value *v, Value *g) {
    Value *a = v->args[0], *b = v->args[1];
    if (v->shape.rank == 0) { /* a dot product: plain elementwise rules */
        if (wants(ad, v, 0)) ad->operand = 0, contribute(ad, v, 0, E2(ad, OP_mul, g, b));
        if (wants(ad, v, 1)) ad->operand = 1, contribute(ad, v, 1, E2(ad, OP_mul, g, a));
        return;
    }
    int64_t M, N, K;
    ir_matmul_dims(v, &M, &N, &K);
    bool tg = v->shape.rank == 1 && N == 1 && !(a->shape.rank == 1 && !v->ta);
    if (wants(ad, v, 0)) {
        ad->operand = 0;
        bool sb = v->varying && !a->varying;
        Value *d = v->ta ? MM(ad, b, g, v->tb, !tg, sb) : MM(ad, g, b, tg, !v->tb, sb);
        vec_push(&ad->contribs[a->id], d);
    }
    if (wants(ad, v, 1)) {
        ad->operand = 1;
        bool sb = v->varying && !b->varying;
        Value *d = v->tb ? MM(ad, g, a, !tg, v->ta, sb) : MM(ad, a, g, !v->ta, tg, sb);
        vec_push(&ad->contribs[b->id], d);
    }
}

/* ---- layout: the same elements moved back ---- */

static Value *LAYOUT(AD *ad, Op op, Value *a, const Layout *layout, const double *opt) {
    return annotate(ad, ir_layout(ad->g, op, 1, &a, layout, opt));
}

/* A slice passes g back to the places it took and 0 everywhere else: a scatter with the
 * same index map. */
static void grad_slice(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v)) contribute(ad, v, 0, LAYOUT(ad, OP_scatter, g, v->layout, NULL));
}

/* A swap of two axes undoes itself. */
static void grad_transpose(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v)) contribute(ad, v, 0, LAYOUT(ad, OP_transpose, g, NULL, v->opt));
}

/* Axis k of the result was axis perm[k] of the operand: g goes back by the inverse order. */
static void grad_permute(AD *ad, Value *v, Value *g) {
    if (!start_unary(ad, v)) return;
    Layout *inverse = xalloc(sizeof *inverse);
    for (int k = 0; k < v->shape.rank; k++) inverse->perm[v->layout->perm[k]] = k;
    contribute(ad, v, 0, LAYOUT(ad, OP_permute, g, inverse, NULL));
}

/* Each operand gets the slice of g where its elements went: a's first along the axis,
 * then b's. */
static void grad_concat(AD *ad, Value *v, Value *g) {
    int axis = 0;
    ir_axis(v->opt[0], v->shape.rank, &axis);
    for (int i = 0; i < 2; i++) {
        if (!wants(ad, v, i)) continue;
        ad->operand = i;
        Layout *part = xalloc(sizeof *part);
        part->whole = v->shape;
        for (int k = 0; k < v->shape.rank; k++) {
            part->step[k] = 1;
            part->count[k] = v->args[i]->shape.dim[k];
        }
        part->start[axis] = i ? v->args[0]->shape.dim[axis] : 0;
        contribute(ad, v, i, LAYOUT(ad, OP_slice, g, part, NULL));
    }
}
/* ---- images: convolution, pooling, reshapes ----
 * The textbook rules, each one instruction that runtime/conv.c runs over the whole batch:
 * y = conv2d(x, w, b) gives dx = the full convolution of g with the flipped kernel,
 * dw = the correlation of x with g summed over the batch, db = g summed over the batch
 * and the positions. */

static Value *WIN(AD *ad, Op op, int nargs, Value **args, const double *opt, Shape shape) {
    return annotate(ad, ir_window(ad->g, op, nargs, args, opt, shape));
}

static void grad_conv2d(AD *ad, Value *v, Value *g) {
    Value *x = v->args[0], *w = v->args[1];
    if (wants(ad, v, 0)) {
        ad->operand = 0;
        contribute(ad, v, 0, WIN(ad, OP_conv2d_input_grad, 2, (Value *[]){g, w}, v->opt, x->shape));
    }
    if (wants(ad, v, 1)) {
        ad->operand = 1;
        contribute(ad, v, 1,
                   WIN(ad, OP_conv2d_weight_grad, 2, (Value *[]){x, g}, v->opt, w->shape));
    }
    if (wants(ad, v, 2)) {
        ad->operand = 2;
        contribute(ad, v, 2, WIN(ad, OP_conv2d_bias_grad, 1, &g, v->opt, shape_scalar()));
    }
}
#define grad_conv2d_input_grad  grad_backward_only
#define grad_conv2d_weight_grad grad_backward_only
#define grad_conv2d_bias_grad   grad_backward_only

static void grad_max_pool2d(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v))
        contribute(
            ad, v, 0,
            WIN(ad, OP_max_pool2d_grad, 2, (Value *[]){v->args[0], g}, v->opt, shape_scalar()));
}
static void grad_avg_pool2d(AD *ad, Value *v, Value *g) {
    if (start_unary(ad, v))
        contribute(ad, v, 0, WIN(ad, OP_avg_pool2d_grad, 1, &g, v->opt, v->args[0]->shape));
}
#define grad_max_pool2d_grad grad_backward_only
#define grad_avg_pool2d_grad grad_backward_only

/* g reshaped back to the operand's shape (its dims are reshape's options). */
static void grad_reshape(AD *ad, Value *v, Value *g) {
    if (!start_unary(ad, v)) return;
    Shape back = v->args[0]->shape;
    double dims[OP_MAX_OPTIONS] = {0};
    for (int k = 0; k < back.rank; k++) dims[k] = (double)back.dim[k];
    contribute(ad, v, 0, WIN(ad, OP_reshape, 1, &g, dims, shape_scalar()));
}
#define grad_flatten grad_reshape

/* ---- token ids ----
 * take(E, ids) sends g to E's rows: dE = scatter_add of g's rows at ids, summed over the
 * batch (one kernel; ids named twice add up). Ids are indices, not numbers: d/d ids = 0, and
 * a param reached only through them gets the warning of a flat function, as with sign. */
static void grad_take(AD *ad, Value *v, Value *g) {
    Value *table = v->args[0], *ids = v->args[1];
    if (wants(ad, v, 0)) {
        ad->operand = 0;
        double none[OP_MAX_OPTIONS] = {0};
        contribute(ad, v, 0, WIN(ad, OP_scatter_add, 2, (Value *[]){g, ids}, none, table->shape));
    }
    if (wants(ad, v, 1)) vec_push(&ad->zero_rules, v);
}
#define grad_scatter_add grad_backward_only
#define grad_one_hot     grad_flat

/* ---- a fn's own backward rule (rules.h) ---- */

/* Instead of differentiating the fn's body, apply its own rules, with g the gradient of the
 * call's result. */
static void apply_custom_rule(AD *ad, Value *v, Value *g) {
    const CustomRule *r = v->custom;
    for (int j = 0; j < r->fn->nargs; j++) {
        Value *a = r->args[j];
        if (!a || a->id >= ad->n_ids || !ad->needs[a->id]) continue;
        const ArgRule *rule = &r->fn->args[j];
        int first = ad->g->insts.n;
        Value *c = rule_gradient(ad->g, r, j, g);
        if (!c) continue; /* grad u = 0, no rule (warned), or an error already reported */
        ad->custom_text = rule->text;
        for (int k = first; k < ad->g->insts.n; k++)
            annotate(ad, ad->g->insts.v[k])->surrogate = rule->surrogate;
        /* A rule that passes g on unchanged makes no instruction: say so here. */
        const char *passed_on =
            c->id < ad->n_ids || c->grad_of
                ? xprintf(": d cost/d %s = %s", ir_value_ref(a), ir_value_ref(c))
                : "";
        const char *path = v->loc.file ? v->loc.file->path : "";
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        vec_push(&ad->g->rule_notes, xprintf("%s:%d:%d %s%s", base, v->loc.line, v->loc.col,
                                             ad->custom_text, passed_on));
        c = reduce_like(ad, c, a);
        ad->custom_text = NULL;
        vec_push(&ad->contribs[a->id], c);
        ad->tainted[a->id] |= rule->surrogate || ad->tainted[v->id];
    }
}

static GradRule *const rules[OP_COUNT] = {
#define OP(name, ...) [OP_##name] = grad_##name,
#include "ops.def"
#undef OP
};

/* ---- the walk ---- */

/* The whole gradient of v: its contributions summed ("fan-out"). */
static Value *total_gradient(AD *ad, Value *v) {
    Contribs *c = &ad->contribs[v->id];
    if (c->n == 0) return NULL;
    Value *sum = c->v[0];
    ad->from = NULL;
    for (int i = 1; i < c->n; i++) {
        sum = annotate(ad, ir_build2(ad->g, OP_add, sum, c->v[i]));
        sum->rule = "sum over uses";
    }
    /* One contribution may be another value's whole gradient passed on unchanged (t = u + b):
     * that value's own fan-out count stays. */
    if (c->n > 1) sum->fanout = c->n;
    if (!sum->grad_of && op_info[sum->op].cls != OPC_SRC) {
        sum->grad_of = v;
        if (!sum->name || sum->fanout)
            sum->name = xprintf("%s.grad", v->name ? v->name : xprintf("t%d", v->id));
    }
    return sum;
}

static void mark_needs(AD *ad) {
    for (int i = 0; i < ad->g->insts.n; i++) {
        Value *v = ad->g->insts.v[i];
        bool needs = v->op == OP_param;
        for (int j = 0; j < v->nargs; j++) needs |= ad->needs[v->args[j]->id];
        ad->needs[v->id] = needs;
    }
}

/* Marks (in aux) the forward values the loss depends on. */
static void mark_reaches_loss(Graph *g) {
    for (int i = 0; i < g->n_forward; i++) g->insts.v[i]->aux = 0;
    g->loss->aux = 1;
    for (int i = g->n_forward - 1; i >= 0; i--) {
        Value *v = g->insts.v[i];
        for (int j = 0; v->aux && j < v->nargs; j++) v->args[j]->aux = 1;
    }
}

#define FLAT_NOTES 3 /* flat functions named under a warning; the rest are counted */

static bool same_site(const Value *a, const Value *b) {
    return a->op == b->op && a->loc.file == b->loc.file && a->loc.line == b->loc.line &&
           a->loc.col == b->loc.col;
}

/* Where gradients stopped: the first FLAT_NOTES distinct call sites (a fn inlined many times
 * has one) and how many more flat operations there are, found once and said under each
 * warning: a model with many flat params and many flat calls prints their sum, not their
 * product. */
typedef struct FlatNotes {
    Value *shown[FLAT_NOTES];
    int n_shown, more;
} FlatNotes;

static FlatNotes find_flat_functions(const AD *ad) {
    FlatNotes f = {0};
    for (int k = 0; k < ad->zero_rules.n; k++) {
        Value *z = ad->zero_rules.v[k];
        bool seen = false;
        for (int j = 0; j < f.n_shown; j++) seen |= same_site(f.shown[j], z);
        if (seen) continue;
        if (f.n_shown == FLAT_NOTES)
            f.more++;
        else
            f.shown[f.n_shown++] = z;
    }
    return f;
}

static void note_flat_functions(const FlatNotes *f) {
    for (int j = 0; j < f->n_shown; j++) {
        const Value *v = f->shown[j];
        const char *name = op_info[v->op].name;
        if (op_info[v->op].flags & OPF_INDICES) /* flat in its ids alone */
            diag_note(v->loc, "%s passes no gradient to its ids: %s", name,
                      ir_rule_text(v->op, v->nargs - 1));
        else
            diag_note(v->loc, "%s(u) is flat: d %s(u)/du = 0", name, name);
    }
    if (f->more) diag_hint("and %d more flat operation%s", f->more, f->more == 1 ? "" : "s");
}

static void warn_missing_gradients(AD *ad) {
    Graph *g = ad->g;
    mark_reaches_loss(g);
    FlatNotes flat = find_flat_functions(ad);
    for (int i = 0; i < g->params.n; i++) {
        Value *p = g->params.v[i];
        if (g->param_grads[i]) continue;
        if (!p->aux) {
            diag_warning(p->loc, "parameter %s does not affect the loss; it will not change",
                         p->name);
            continue;
        }
        diag_warning(p->loc,
                     "parameter %s gets no gradient: every path from it to the loss goes "
                     "through a function whose derivative is zero",
                     p->name);
        note_flat_functions(&flat);
    }
}

void autodiff(Graph *g) {
    int errors = diag_error_count();
    AD ad = {.g = g, .n_ids = g->next_id};
    ad.contribs = xalloc(sizeof *ad.contribs * (size_t)ad.n_ids);
    ad.needs = xalloc(sizeof *ad.needs * (size_t)ad.n_ids);
    ad.tainted = xalloc(sizeof *ad.tainted * (size_t)ad.n_ids);
    mark_needs(&ad);
    g->param_grads = xalloc(sizeof *g->param_grads * (size_t)(g->params.n + 1));
    g->n_forward = g->insts.n;

    /* The seed is per sample (each sample's loss has its own gradient, 1/B), so it varies:
     * a param reached from it directly then gets the sum over the batch, B * 1/B. */
    Value *seed =
        g->loss->varying ? ir_leaf(g, OP_inv_batch, NULL, shape_scalar(), true) : ir_const(g, 1);
    if (ad.needs[g->loss->id]) vec_push(&ad.contribs[g->loss->id], seed);

    for (int i = g->n_forward - 1; i >= 0; i--) {
        Value *v = g->insts.v[i];
        if (!ad.needs[v->id] || op_info[v->op].cls == OPC_SRC) continue;
        Value *grad = total_gradient(&ad, v);
        if (!grad) continue;
        ad.from = v;
        if (v->custom) {
            apply_custom_rule(&ad, v, grad);
            continue;
        }
        rules[v->op](&ad, v, grad);
        for (int j = 0; j < v->nargs; j++) ad.tainted[v->args[j]->id] |= ad.tainted[v->id];
    }
    g->param_surrogate = xalloc(sizeof *g->param_surrogate * (size_t)(g->params.n + 1));
    for (int i = 0; i < g->params.n; i++) {
        g->param_grads[i] = total_gradient(&ad, g->params.v[i]);
        g->param_surrogate[i] = g->param_grads[i] && ad.tainted[g->params.v[i]->id];
    }
    /* A rule that failed sends nothing back: that is not the param's problem. */
    if (diag_error_count() == errors) warn_missing_gradients(&ad);
}
