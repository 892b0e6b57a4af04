/* test_plan.c: the memory plan. Any two buffers that are live at the same time must not
 * overlap and must fit their arena; buffers of values that are not must be reused.
 * Random graphs mixing every op class are planned, checked and run against the reference,
 * which exercises fusion and liveness in shapes no one wrote by hand. */
#include "harness.h"

#include <string.h>

typedef struct Region {
    const char *what;
    Arena arena;
    int64_t offset, size; /* per sample in the varying arena */
    int first, last;      /* steps during which it must keep its contents */
    const Value *value;   /* NULL for grad and velocity buffers */
    int grad_of;          /* the grad buffer of this parameter; -1 */
} Region;

typedef VEC(Region) RegionList;

enum { ALWAYS_FIRST = -1000000, ALWAYS_LAST = 1000000 };

static void add_value(RegionList *list, const Plan *p, const Value *v) {
    const ValuePlan *vp = plan_value(p, v);
    if (vp->home.arena == ARENA_NONE) return;
    bool always = vp->pinned || vp->step < 0;
    vec_push(list, ((Region){ir_value_ref(v), vp->home.arena, vp->home.offset,
                             shape_numel(v->shape), always ? ALWAYS_FIRST : vp->step,
                             always ? ALWAYS_LAST : vp->last_use, v, -1}));
}

static RegionList regions_of(const Plan *p) {
    RegionList list = {0};
    const Graph *g = p->g;
    const ValueList *leaves[] = {&g->inputs, &g->targets, &g->params};
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < leaves[l]->n; i++) add_value(&list, p, leaves[l]->v[i]);
    for (int s = 0; s < p->n_steps; s++)
        for (int m = 0; m < p->steps[s].n_insts; m++) add_value(&list, p, p->steps[s].insts[m]);
    for (int i = 0; i < g->params.n; i++) {
        const ParamPlan *pp = &p->params[i];
        if (!pp->grad) continue;
        int64_t n = shape_numel(pp->param->shape);
        vec_push(&list, ((Region){"grad buffer", ARENA_FIXED, pp->grad_offset, n, ALWAYS_FIRST,
                                  ALWAYS_LAST, NULL, i}));
        vec_push(&list, ((Region){"velocity", ARENA_FIXED, pp->velocity_offset, n, ALWAYS_FIRST,
                                  ALWAYS_LAST, NULL, -1}));
    }
    return list;
}

/* A gradient computed in place shares its parameter's grad buffer, by design; so do the
 * terms of a sum that accumulates into it, and the terms of one sum share its buffer. */
static bool same_home_by_design(const Plan *p, const Region *a, const Region *b) {
    const Value *sum_a = a->value ? plan_value(p, a->value)->sum_into : NULL;
    const Value *sum_b = b->value ? plan_value(p, b->value)->sum_into : NULL;
    if (sum_a && sum_a == sum_b) return true;
    if (a->grad_of < 0) return false;
    const ParamPlan *pp = &p->params[a->grad_of];
    return pp->grad_in_place && (b->value == pp->grad || (sum_b && sum_b == pp->grad));
}

static bool check_sound(const char *label, const Plan *p) {
    RegionList list = regions_of(p);
    bool ok = true;
    for (int i = 0; i < list.n; i++) {
        const Region *a = &list.v[i];
        int64_t limit = a->arena == ARENA_FIXED ? p->fixed_elems : p->varying_elems;
        ok &= check(a->offset >= 0 && a->offset + a->size <= limit, "%s: %s lies outside its arena",
                    label, a->what);
        for (int j = i + 1; j < list.n; j++) {
            const Region *b = &list.v[j];
            if (a->arena != b->arena || a->last < b->first || b->last < a->first) continue;
            if (same_home_by_design(p, a, b) || same_home_by_design(p, b, a)) continue;
            bool apart = a->offset + a->size <= b->offset || b->offset + b->size <= a->offset;
            ok &= check(apart, "%s: %s and %s are live together and overlap", label, a->what,
                        b->what);
        }
    }
    return ok;
}

static void mlp_plans(void) {
    static const int64_t sizes[] = {20, 16, 12, 8, 4};
    for (int dW_first = 0; dW_first < 2; dW_first++) {
        Plan *p = plan_build(build_mlp(sizes, 5, dW_first));
        check_sound("mlp", p);
        for (int i = 0; i < p->g->params.n; i++)
            check(p->params[i].fused_update == (i % 2 == 0), "mlp: %s fused %d",
                  p->g->params.v[i]->name, p->params[i].fused_update);
    }
}

/* softmax of softmax of ...: each value is dead once the next exists, so two buffers
 * besides x and the pinned output and loss suffice. */
static void reuse(void) {
    Graph *g = graph_new("reuse");
    Value *v = add_input(g, "x", shape1(64));
    for (int i = 0; i < 10; i++) v = ir_build1(g, OP_softmax, v);
    g->output = v;
    g->loss = ir_build1(g, OP_sum, v);
    Plan *p = plan_build(g);
    check_sound("reuse", p);
    check(p->varying_elems <= 64 * 4 + 16, "reuse: %lld elements per sample for a chain",
          (long long)p->varying_elems);
}

/* A scatter of rows first..first+count-1 of a [rows, cols] value, from x's rows 0.. (the
 * values keep pointers to their index maps). */
static Value *scatter_rows(Graph *g, Value *x, int64_t rows, int64_t first, int64_t count) {
    Layout *slice = xalloc(sizeof *slice), *back = xalloc(sizeof *back);
    slice->whole = x->shape;
    back->whole = shape2(rows, x->shape.dim[1]);
    for (int k = 0; k < 2; k++) {
        slice->step[k] = back->step[k] = 1;
        slice->count[k] = back->count[k] = k ? x->shape.dim[1] : count;
    }
    back->start[0] = first;
    Value *part = ir_layout(g, OP_slice, 1, &x, slice, NULL);
    return ir_layout(g, OP_scatter, 1, &part, back, NULL);
}

/* How many steps hold a term of sum, and how many of those start it rather than add. */
static void count_terms(const Plan *p, const Value *sum, int *terms, int *starts) {
    *terms = *starts = 0;
    for (int s = 0; s < p->n_steps; s++) {
        const ValuePlan *vp = plan_value(p, p->steps[s].insts[0]);
        if (vp->sum_into != sum) continue;
        check(plan_value(p, p->steps[s].insts[0])->home.offset == plan_value(p, sum)->home.offset,
              "a term of %s is not at the sum's home", ir_value_ref(sum));
        ++*terms;
        *starts += !vp->accumulate;
    }
}

static bool scheduled(const Plan *p, const Value *v) {
    for (int s = 0; s < p->n_steps; s++)
        for (int m = 0; m < p->steps[s].n_insts; m++)
            if (p->steps[s].insts[m] == v) return true;
    return false;
}

/* Compiles g (f32 and f64) and compares its loss with the reference. */
static void check_values_of(Graph *g) {
    for (int f64 = 0; f64 < 2; f64++) {
        Model *m = model_compile(g, f64, 2, 4);
        if (!m) continue;
        m->ctx.batch = 3;
        fill_leaves(m, -1, 1);
        m->desc->forward(&m->ctx);
        check_value(xprintf("%s loss (%s)", g->name, f64 ? "f64" : "f32"), m, g->loss,
                    &m->desc->loss, f64 ? 1e-12 : 1e-5);
        model_close(m);
    }
}

/* Plans g, checks that sum accumulates (terms GEMMs or scatters, one starting it) and that
 * no add of it is scheduled, and compares the loss, which reads sum, with the reference. */
static void check_sum(Graph *g, Value *sum, int want_terms) {
    Plan *p = plan_build(g);
    check_sound(g->name, p);
    int terms, starts;
    count_terms(p, sum, &terms, &starts);
    check(terms == want_terms && starts == 1, "%s: %s has %d terms, %d starting it", g->name,
          ir_value_ref(sum), terms, starts);
    check(!scheduled(p, sum), "%s: the add %s is scheduled", g->name, ir_value_ref(sum));
    check_values_of(g);
}

/* Sums of GEMMs and of scatters (a scan's shared weight gradient, the gradient of the
 * sequence its steps read a row each) accumulate into one buffer: each term computes into
 * the sum's home, the first writing and the others adding (beta 1, or a scatter that adds
 * its slice, overlapping ones included), and the adds are not scheduled; the values are
 * the reference's. A sum with a term that is no GEMM or scatter is left as it was. */
static void accumulated_sums(void) {
    /* per-sample GEMMs x W_i: [4, 5] a sample; and an add of a GEMM and an exp */
    Graph *g = graph_new("sum of x W");
    Value *x = add_input(g, "x", shape2(4, 3)), *prod[4];
    for (int i = 0; i < 4; i++)
        prod[i] =
            ir_matmul(g, x, add_param(g, xprintf("w%d", i), shape2(3, 5)), false, false, false);
    Value *sum = ir_build2(g, OP_add, prod[0], ir_build2(g, OP_add, prod[1], prod[2]));
    Value *mixed = ir_build2(g, OP_add, prod[3], ir_build1(g, OP_exp, sum));
    g->loss = ir_build2(g, OP_add, ir_build1(g, OP_sum, ir_build1(g, OP_sin, sum)),
                        ir_build1(g, OP_sum, mixed));
    check_sum(g, sum, 3);
    Plan *p = plan_build(g);
    check(scheduled(p, mixed) && !plan_value(p, prod[3])->sum_into,
          "sum of x W: an add of a GEMM and an exp became a sum");

    /* weight-gradient GEMMs summed over the batch: [3, 5], no batch axis, read by x */
    g = graph_new("sum of x^T y");
    x = add_input(g, "x", shape1(3));
    Value *y = add_input(g, "y", shape1(5));
    sum = ir_build2(g, OP_add, ir_matmul(g, x, y, true, false, true),
                    ir_matmul(g, ir_build1(g, OP_tanh, x), y, true, false, true));
    g->loss = ir_build1(g, OP_sum, ir_build1(g, OP_sin, ir_matmul(g, x, sum, false, false, false)));
    check_sum(g, sum, 2);

    /* scatters of row blocks of a [6, 3], two of them overlapping */
    g = graph_new("sum of scatters");
    x = add_input(g, "x", shape2(4, 3));
    Value *first = scatter_rows(g, x, 6, 0, 2), *second = scatter_rows(g, x, 6, 2, 4);
    sum = ir_build2(g, OP_add, ir_build2(g, OP_add, first, second), scatter_rows(g, x, 6, 3, 3));
    g->loss = ir_build1(g, OP_sum, ir_build1(g, OP_sin, sum));
    check_sum(g, sum, 3);
}

/* A sum of scatters whose boxes tile its buffer (the gradient of an LSTM step's [4n] from
 * its four gates) needs no zero fill and no adds: every term stores its box. One that
 * leaves an element out, or covers one twice, keeps the zero fill and the adds. */
static void tiling_sums(void) {
    Graph *g = graph_new("tiling scatters");
    Value *x = add_input(g, "x", shape2(4, 3));
    Value *first = scatter_rows(g, x, 6, 0, 2), *second = scatter_rows(g, x, 6, 2, 4);
    Value *sum = ir_build2(g, OP_add, second, first);
    g->loss = ir_build1(g, OP_sum, ir_build1(g, OP_sin, sum));
    Plan *p = plan_build(g);
    check(plan_value(p, first)->tiles && plan_value(p, second)->tiles &&
              !plan_value(p, first)->accumulate && !plan_value(p, second)->accumulate,
          "tiling scatters: the terms do not each store their box");
    check_values_of(g);

    g = graph_new("scatters with a gap");
    x = add_input(g, "x", shape2(4, 3));
    first = scatter_rows(g, x, 7, 0, 2), second = scatter_rows(g, x, 7, 2, 4);
    sum = ir_build2(g, OP_add, first, second);
    g->loss = ir_build1(g, OP_sum, ir_build1(g, OP_exp, sum));
    p = plan_build(g);
    check(!plan_value(p, first)->tiles && !plan_value(p, second)->tiles,
          "scatters with a gap: a term stores its box without the zero fill");
    check_values_of(g);
}

/* ---- random graphs ---- */

static Value *pick(ValueList *pool) {
    return pool->v[(int)random_uniform(0, pool->n)];
}

/* An operand for v whose shape is a suffix of v's, or v itself. */
static Value *partner(ValueList *pool, Value *v) {
    for (int tries = 0; tries < 20; tries++) {
        Value *w = pick(pool);
        if (shape_is_suffix(w->shape, v->shape)) return w;
    }
    return v;
}

static Value *random_inst(Graph *g, ValueList *pool, Value *w44) {
    static const Op unary[] = {OP_neg, OP_tanh, OP_sigmoid, OP_relu, OP_abs, OP_sin};
    static const Op binary[] = {OP_add, OP_sub, OP_mul};
    Value *a = pick(pool);
    switch ((int)random_uniform(0, 8)) {
    case 0:
    case 1: return ir_build1(g, unary[(int)random_uniform(0, 6)], a);
    case 2:
    case 3: {
        Value *b = partner(pool, a);
        bool swap = random_uniform(0, 1) < 0.5;
        return ir_build2(g, binary[(int)random_uniform(0, 3)], swap ? b : a, swap ? a : b);
    }
    case 4: return a->shape.rank ? ir_build1(g, OP_softmax, a) : ir_build1(g, OP_exp, a);
    case 5:
        return a->shape.rank == 2 ? ir_sum_to(g, a, shape1(a->shape.dim[1]))
                                  : ir_build1(g, OP_mean, a);
    case 6:
        return a->shape.rank >= 1 && a->shape.dim[a->shape.rank - 1] == 4
                   ? ir_matmul(g, a, w44, false, false, false)
                   : ir_build1(g, OP_cos, a);
    default: return a->varying ? ir_build1(g, OP_batch_sum, a) : ir_build1(g, OP_sum, a);
    }
}

static Graph *random_graph(int seed) {
    Graph *g = graph_new(xprintf("random%d", seed));
    ValueList pool = {0};
    vec_push(&pool, add_input(g, "x", shape2(3, 4)));
    vec_push(&pool, add_input(g, "u", shape1(4)));
    vec_push(&pool, add_param(g, "p", shape1(4)));
    vec_push(&pool, add_input(g, "v", shape2(2, 6))); /* as many elements as x, other periods */
    vec_push(&pool, add_param(g, "q", shape1(6)));
    vec_push(&pool, add_param(g, "s", shape_scalar()));
    Value *w44 = add_param(g, "w", shape2(4, 4));
    for (int i = 0; i < 14; i++) {
        Value *v = random_inst(g, &pool, w44); /* before vec_push, which counts it first */
        vec_push(&pool, v);
    }
    /* Everything feeds the loss, so nothing is dead. */
    Value *loss = ir_build1(g, OP_sum, pool.v[6]);
    for (int i = 7; i < pool.n; i++)
        loss = ir_build2(g, OP_add, loss, ir_build1(g, OP_sum, pool.v[i]));
    g->loss = loss;
    g->output = pool.v[pool.n - 1];
    return g;
}

static void random_graphs(void) {
    for (int seed = 0; seed < 40; seed++) {
        Graph *g = random_graph(seed);
        const char *label = g->name;
        if (!check_sound(label, plan_build(g))) continue;
        Model *m = model_compile(g, true, seed % 4, 8);
        if (!m) continue;
        m->ctx.batch = 1 + seed % 8;
        fill_leaves(m, -1, 1);
        m->desc->forward(&m->ctx);
        check_value(xprintf("%s loss", label), m, g->loss, &m->desc->loss, 1e-9);
        check_value(xprintf("%s output", label), m, g->output, &m->desc->output, 1e-9);
        model_close(m);
    }
}

int main(void) {
    mlp_plans();
    reuse();
    accumulated_sums();
    tiling_sums();
    random_graphs();
    return test_summary("test_plan");
}
