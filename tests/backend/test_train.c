/* test_train.c: the entry points that train. A 2-layer MLP with relu and softmax
 * cross-entropy (harness.c's build_mlp, whose backward pass is written by hand the way
 * autodiff emits it), checked
 * against the reference and against finite differences; SGD steps with and without
 * momentum, where the weight matrices are updated inside their gradient GEMMs; a model
 * without inputs; gradients that are parameters or constants; a frozen parameter. */
#include "harness.h"

#include <math.h>
#include <string.h>

static void fill_mlp(Model *m) {
    fill_leaves(m, -1, 1);
    /* targets: one-hot rows */
    const nnrt_tensor *y = model_tensor(m, "y");
    for (int64_t b = 0; b < m->ctx.batch_cap; b++)
        for (int64_t i = 0; i < y->numel; i++) tensor_set(m, y, b, i, i == b % y->numel);
}

static void check_grads(const char *label, Model *m, const Graph *g, double tol) {
    for (int i = 0; i < g->params.n; i++) {
        const nnrt_tensor *t = model_tensor(m, g->params.v[i]->name);
        if (!g->param_grads[i]) continue;
        for (int64_t k = 0; k < t->numel; k++)
            check_close(xprintf("%s d%s[%lld]", label, t->name, (long long)k), grad_get(m, t, k),
                        ref_eval(m, g->param_grads[i], 0, k), tol);
    }
}

static double cost(Model *m) {
    m->desc->forward(&m->ctx);
    double sum = 0;
    for (int64_t b = 0; b < m->ctx.batch; b++) sum += tensor_get(m, &m->desc->loss, b, 0);
    return sum / (double)m->ctx.batch;
}

/* Central differences of the batch-mean cost in f64: the hand-written backward IR and the
 * 1/B seed give the true gradient. */
static void finite_differences(Model *m) {
    const char *names[] = {"W1", "b1", "W2", "b2"};
    for (int n = 0; n < 4; n++) {
        const nnrt_tensor *t = model_tensor(m, names[n]);
        for (int64_t k = 0; k < t->numel; k += 3) {
            double p = tensor_get(m, t, 0, k), h = 1e-6;
            tensor_set(m, t, 0, k, p + h);
            double up = cost(m);
            tensor_set(m, t, 0, k, p - h);
            double down = cost(m);
            tensor_set(m, t, 0, k, p);
            m->desc->grad(&m->ctx);
            check_close(xprintf("finite difference d%s[%lld]", names[n], (long long)k),
                        grad_get(m, t, k), (up - down) / (2 * h), 1e-7);
        }
    }
}

/* One sgd_step from the model's current state, compared with p' = p - lr*(mu*v + g). */
static void check_sgd_step(const char *label, Model *m, const Graph *g, double lr, double mu,
                           double tol) {
    int n = g->params.n;
    double *want_p[8], *want_v[8];
    for (int i = 0; i < n; i++) {
        const nnrt_tensor *t = model_tensor(m, g->params.v[i]->name);
        want_p[i] = xalloc((size_t)t->numel * sizeof(double));
        want_v[i] = xalloc((size_t)t->numel * sizeof(double));
        for (int64_t k = 0; k < t->numel; k++) {
            double p = tensor_get(m, t, 0, k);
            if (!g->param_grads[i]) {
                want_p[i][k] = p;
                continue;
            }
            double grad = ref_eval(m, g->param_grads[i], 0, k);
            double v = mu == 0 ? grad : mu * velocity_get(m, t, k) + grad;
            want_v[i][k] = v;
            want_p[i][k] = p - lr * v;
        }
    }
    double want_loss = ref_eval(m, g->loss, 0, 0);
    m->desc->sgd_step(&m->ctx, lr, mu);
    check_close(xprintf("%s loss", label), tensor_get(m, &m->desc->loss, 0, 0), want_loss, tol);
    for (int i = 0; i < n; i++) {
        const nnrt_tensor *t = model_tensor(m, g->params.v[i]->name);
        for (int64_t k = 0; k < t->numel; k++) {
            check_close(xprintf("%s %s[%lld]", label, t->name, (long long)k),
                        tensor_get(m, t, 0, k), want_p[i][k], tol);
            if (mu != 0 && g->param_grads[i])
                check_close(xprintf("%s velocity of %s[%lld]", label, t->name, (long long)k),
                            velocity_get(m, t, k), want_v[i][k], tol);
        }
    }
}

/* Every momentum buffer set to x (NaN: proves momentum 0 never reads them). */
static void set_velocities(Model *m, double x) {
    for (int i = 0; i < m->desc->n_params; i++) {
        const nnrt_tensor *t = &m->desc->params[i];
        for (int64_t k = 0; t->grad_offset >= 0 && k < t->numel; k++) velocity_set(m, t, k, x);
    }
}

static void mlp_tests(bool f64, bool dW_first, int opt_level) {
    const char *label = xprintf("mlp (%s, dW %s dX, O%d)", f64 ? "f64" : "f32",
                                dW_first ? "before" : "after", opt_level);
    static const int64_t sizes[] = {6, 5, 4};
    Graph *g = build_mlp(sizes, 3, dW_first);
    Plan *plan = plan_build(g);
    check(plan->params[0].fused_update && plan->params[2].fused_update,
          "%s: the weight matrices are not updated inside their GEMMs", label);
    check(!plan->params[1].fused_update && !plan->params[3].fused_update,
          "%s: a bias is marked for a GEMM update", label);
    Model *m = model_compile(g, f64, opt_level, 8);
    if (!m) return;
    double tol = f64 ? 1e-10 : 2e-5;
    for (int64_t batch = 1; batch <= 8; batch += 6) {
        m->ctx.batch = batch;
        fill_mlp(m);
        m->desc->grad(&m->ctx);
        check_value(xprintf("%s batch %lld loss", label, (long long)batch), m, g->loss,
                    &m->desc->loss, tol);
        check_value(xprintf("%s batch %lld output", label, (long long)batch), m, g->output,
                    &m->desc->output, tol);
        check_grads(xprintf("%s batch %lld", label, (long long)batch), m, g, tol);
    }
    if (f64) finite_differences(m);
    set_velocities(m, NAN);
    for (int step = 0; step < 3; step++)
        check_sgd_step(xprintf("%s sgd step %d", label, step), m, g, 0.1, 0, tol);
    set_velocities(m, 0);
    for (int step = 0; step < 3; step++)
        check_sgd_step(xprintf("%s momentum step %d", label, step), m, g, 0.05, 0.9, tol);
    model_close(m);
}

/* A classifier whose output is its logits: the plan puts softmax_ce and softmax_ce_grad side
 * by side, and grad() and sgd_step() compute both in one pass over the rows (loops.c,
 * loss_and_grad_pair). The loss must be forward()'s bit for bit (the same operations on the
 * same values), the gradients and the step the reference's. */
static bool same_losses(const char *label, Model *m, void (*entry)(nnrt_ctx *)) {
    double want[8];
    m->desc->forward(&m->ctx);
    for (int64_t b = 0; b < m->ctx.batch; b++) want[b] = tensor_get(m, &m->desc->loss, b, 0);
    entry(&m->ctx);
    bool same = true;
    for (int64_t b = 0; b < m->ctx.batch; b++) {
        double got = tensor_get(m, &m->desc->loss, b, 0);
        same &= check(memcmp(&got, &want[b], sizeof got) == 0,
                      "%s: sample %lld's loss %.17g, forward's %.17g", label, (long long)b, got,
                      want[b]);
    }
    return same;
}

static const nnrt_model *sgd_model;
static double sgd_lr;
static void one_sgd_step(nnrt_ctx *ctx) {
    sgd_model->sgd_step(ctx, sgd_lr, 0);
}

static void loss_and_grad_in_one_pass(bool f64) {
    const char *label = f64 ? "loss and gradient in one pass (f64)"
                            : "loss and gradient in one "
                              "pass (f32)";
    static const int64_t sizes[] = {6, 5, 4};
    Graph *g = build_mlp(sizes, 3, false);
    g->output = g->loss->args[0]; /* the logits: no softmax between the loss and its gradient */
    Plan *plan = plan_build(g);
    bool side_by_side = false;
    for (int s = 0; s + 1 < plan->n_steps; s++)
        side_by_side |= plan->steps[s].insts[0] == g->loss &&
                        plan->steps[s + 1].insts[0]->op == OP_softmax_ce_grad;
    check(side_by_side, "%s: the plan does not put the gradient right after the loss", label);
    Model *m = model_compile(g, f64, 2, 8);
    if (!m) return;
    double tol = f64 ? 1e-10 : 2e-5;
    for (int64_t batch = 1; batch <= 8; batch += 6) {
        m->ctx.batch = batch;
        fill_mlp(m);
        const char *at = xprintf("%s batch %lld", label, (long long)batch);
        same_losses(at, m, m->desc->grad);
        check_value(xprintf("%s loss", at), m, g->loss, &m->desc->loss, tol);
        check_grads(at, m, g, tol);
        sgd_model = m->desc;
        sgd_lr = 0.1;
        same_losses(xprintf("%s sgd step", at), m, one_sgd_step);
    }
    check_sgd_step(xprintf("%s sgd step", label), m, g, 0.1, 0, tol);
    model_close(m);
}

/* minimise 3x^2 - 3x + 4: no inputs, nothing varies, the loss is a scalar in the fixed
 * arena; the gradient 6x - 3 is written out by hand. */
static void parabola(bool f64) {
    Graph *g = graph_new("parabola");
    Value *x = add_param(g, "x", shape_scalar());
    g->param_inits.v[0] = (ParamInit){INIT_CONST, 0.5, 0};
    Value *sq = ir_build2(g, OP_pow, x, ir_const(g, 2));
    Value *loss = ir_build2(g, OP_add,
                            ir_build2(g, OP_sub, ir_build2(g, OP_mul, ir_const(g, 3), sq),
                                      ir_build2(g, OP_mul, ir_const(g, 3), x)),
                            ir_const(g, 4));
    g->loss = g->output = loss;
    g->n_forward = g->insts.n;
    set_grad(g, "x", ir_build2(g, OP_sub, ir_build2(g, OP_mul, ir_const(g, 6), x), ir_const(g, 3)));
    Model *m = model_compile(g, f64, 2, 1);
    if (!m) return;
    const char *label = f64 ? "parabola (f64)" : "parabola (f32)";
    check(m->desc->n_inputs == 0 && !m->desc->loss.varying && m->desc->loss.rank == 0,
          "%s: the loss should be a fixed scalar", label);
    const nnrt_tensor *t = model_tensor(m, "x");
    check(t->init == NNRT_INIT_CONST && t->init_a == 0.5, "%s: initialiser lost", label);
    tensor_set(m, t, 0, 0, 2.0);
    m->desc->grad(&m->ctx);
    check_close(xprintf("%s loss at 2", label), tensor_get(m, &m->desc->loss, 0, 0), 10, 1e-6);
    check_close(xprintf("%s gradient at 2", label), grad_get(m, t, 0), 9, 1e-6);
    for (int i = 0; i < 100; i++) m->desc->sgd_step(&m->ctx, 0.1, 0);
    check_close(xprintf("%s minimum", label), tensor_get(m, t, 0, 0), 0.5, 1e-5);
    tensor_set(m, t, 0, 0, -3.0);
    for (int i = 0; i < 300; i++) m->desc->sgd_step(&m->ctx, 0.05, 0.5);
    check_close(xprintf("%s minimum with momentum", label), tensor_get(m, t, 0, 0), 0.5, 1e-5);
    m->desc->forward(&m->ctx);
    check_close(xprintf("%s lowest loss", label), tensor_get(m, &m->desc->loss, 0, 0), 3.25, 1e-6);
    model_close(m);
}

/* loss = a*b + 0*f: d/da = b and d/db = a are parameters (copied, and read before either
 * is updated); the frozen f has no gradient; c's gradient is the constant 2. */
static void odd_gradients(void) {
    Graph *g = graph_new("odd");
    Value *a = add_param(g, "a", shape_scalar()), *b = add_param(g, "b", shape_scalar());
    Value *c = add_param(g, "c", shape_scalar()), *f = add_param(g, "f", shape_scalar());
    Value *loss = ir_build2(g, OP_add, ir_build2(g, OP_mul, a, b),
                            ir_build2(g, OP_add, ir_build2(g, OP_mul, ir_const(g, 2), c),
                                      ir_build2(g, OP_mul, ir_const(g, 0), f)));
    g->loss = g->output = loss;
    set_grad(g, "a", b);
    set_grad(g, "b", a);
    set_grad(g, "c", ir_const(g, 2));
    Model *m = model_compile(g, false, 1, 1);
    if (!m) return;
    const nnrt_tensor *ta = model_tensor(m, "a"), *tb = model_tensor(m, "b");
    const nnrt_tensor *tc = model_tensor(m, "c"), *tf = model_tensor(m, "f");
    check(tf->grad_offset == -1 && tf->velocity_offset == -1, "a frozen param has buffers");
    tensor_set(m, ta, 0, 0, 3);
    tensor_set(m, tb, 0, 0, 5);
    tensor_set(m, tc, 0, 0, 1);
    tensor_set(m, tf, 0, 0, 7);
    m->desc->grad(&m->ctx);
    check_close("d loss/da = b", grad_get(m, ta, 0), 5, 0);
    check_close("d loss/db = a", grad_get(m, tb, 0), 3, 0);
    check_close("d loss/dc = 2", grad_get(m, tc, 0), 2, 0);
    m->desc->sgd_step(&m->ctx, 0.5, 0);
    check_close("a after a step", tensor_get(m, ta, 0, 0), 3 - 0.5 * 5, 0);
    check_close("b after a step (old a)", tensor_get(m, tb, 0, 0), 5 - 0.5 * 3, 0);
    check_close("c after a step", tensor_get(m, tc, 0, 0), 1 - 0.5 * 2, 0);
    check_close("frozen f", tensor_get(m, tf, 0, 0), 7, 0);
    model_close(m);
}

/* ---- grad()'s hook points (nnrt_grads_done) ---- */

typedef struct Watch {
    nnrt_grads_listener listener; /* first: nnrt_grads_done hands it back */
    Model *m;
    double **final; /* each param's gradient after grad() returned, or NULL */
    int last_point; /* the last point heard */
    int *heard_at;  /* the point at which each param's gradient was checked */
    bool in_order;
} Watch;

/* At point p every gradient whose grad_point is p or less must hold its final numbers. */
static void watch_point(nnrt_grads_listener *l, int32_t point) {
    Watch *w = (Watch *)(void *)l;
    w->in_order &= point == w->last_point + 1;
    w->last_point = point;
    for (int32_t i = 0; i < w->m->desc->n_params; i++) {
        const nnrt_tensor *t = &w->m->desc->params[i];
        if (t->grad_point <= 0 || t->grad_point > point || w->heard_at[i]) continue;
        w->heard_at[i] = point;
        for (int64_t k = 0; k < t->numel; k++)
            if (grad_get(w->m, t, k) != w->final[i][k]) {
                check(false, "d%s[%lld] at hook point %d: %g, final %g", t->name, (long long)k,
                      point, grad_get(w->m, t, k), w->final[i][k]);
                break;
            }
    }
}

/* A 3-layer MLP, and a param "e" whose gradient is b2's (so copied, not computed in place):
 * grad() calls back at points 1, 2, .. in turn; at each, the gradients it announces are
 * already final (their buffers were poisoned with NaN before); the last layer's come
 * before the first's, which is what lets a sum over ranks start early; no point comes
 * without a listener. */
static void hook_points(bool f64, bool dW_first) {
    const int64_t sizes[] = {5, 7, 6, 3};
    Graph *g = build_mlp(sizes, 4, dW_first);
    Value **grads = xalloc((size_t)(g->params.n + 1) * sizeof *grads);
    memcpy(grads, g->param_grads, (size_t)g->params.n * sizeof *grads);
    g->param_grads = grads;
    add_param(g, "e", shape1(6));
    set_grad(g, "e", g->param_grads[3]); /* b2's */
    Model *m = model_compile(g, f64, 2, 8);
    if (!m) return;
    const char *label =
        xprintf("hook points (%s, dW %s)", f64 ? "f64" : "f32", dW_first ? "first" : "last");
    fill_mlp(m);
    m->desc->grad(&m->ctx);
    int n = m->desc->n_params;
    Watch w = {
        {watch_point}, m, xalloc((size_t)n * sizeof(double *)), 0, xalloc((size_t)n * sizeof(int)),
        true};
    for (int32_t i = 0; i < n; i++) {
        const nnrt_tensor *t = &m->desc->params[i];
        w.final[i] = xalloc((size_t)t->numel * sizeof(double));
        for (int64_t k = 0; k < t->numel; k++) {
            w.final[i][k] = grad_get(m, t, k);
            grad_set(m, t, k, NAN);
        }
    }
    m->ctx.on_grads = &w.listener;
    m->desc->grad(&m->ctx);
    m->ctx.on_grads = NULL;
    int most = 0;
    for (int32_t i = 0; i < n; i++) {
        const nnrt_tensor *t = &m->desc->params[i];
        most = t->grad_point > most ? t->grad_point : most;
        check(t->grad_point > 0 && w.heard_at[i] == t->grad_point,
              "%s: d%s has hook point %d, heard at %d", label, t->name, t->grad_point,
              w.heard_at[i]);
        for (int64_t k = 0; k < t->numel; k++)
            check_close(xprintf("%s: d%s[%lld] after grad()", label, t->name, (long long)k),
                        grad_get(m, t, k), w.final[i][k], 0);
    }
    check(w.in_order && w.last_point == most && most >= 3,
          "%s: points heard in order up to %d, the last %d", label, most, w.last_point);
    check(model_tensor(m, "W3")->grad_point < model_tensor(m, "W1")->grad_point &&
              model_tensor(m, "b3")->grad_point < model_tensor(m, "W1")->grad_point,
          "%s: the last layer's gradients should be final before the first's", label);
    check(model_tensor(m, "e")->grad_point == model_tensor(m, "b2")->grad_point,
          "%s: e's gradient (b2's, copied) at another point", label);
    model_close(m);
}

int main(void) {
    for (int f64 = 0; f64 < 2; f64++) {
        mlp_tests(f64, true, f64 ? 3 : 2);
        mlp_tests(f64, false, f64 ? 1 : 0);
        parabola(f64);
        loss_and_grad_in_one_pass(f64);
    }
    odd_gradients();
    for (int f64 = 0; f64 < 2; f64++) {
        hook_points(f64, true);
        hook_points(f64, false);
    }
    return test_summary("test_train");
}
