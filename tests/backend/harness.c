/* harness.c: see harness.h. */
#include "harness.h"

#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int test_failures;

bool check(bool ok, const char *fmt, ...) {
    if (ok) return true;
    test_failures++;
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return false;
}

/* Equal values are close, infinities included (inf - inf is NaN). */
bool check_close(const char *what, double got, double want, double tol) {
    double scale = fabs(want) > 1 ? fabs(want) : 1;
    bool ok = got == want || fabs(got - want) <= tol * scale || (isnan(got) && isnan(want));
    return check(ok, "%s: got %.9g, want %.9g (tolerance %g)", what, got, want, tol);
}

int test_summary(const char *program) {
    if (test_failures) {
        fprintf(stderr, "%s: %d failure%s\n", program, test_failures,
                test_failures == 1 ? "" : "s");
        return 1;
    }
    printf("%s: ok\n", program);
    return 0;
}

double random_uniform(double lo, double hi) {
    static uint64_t state = 0x2545F4914F6CDD1Dull;
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (double)(state >> 11) / 9007199254740992.0;
}

/* ---- graphs ---- */

Shape shape1(int64_t a) {
    return shape_make(1, (int64_t[]){a});
}
Shape shape2(int64_t a, int64_t b) {
    return shape_make(2, (int64_t[]){a, b});
}

Shape shape3(int64_t a, int64_t b, int64_t c) {
    return shape_make(3, (int64_t[]){a, b, c});
}

Value *add_input(Graph *g, const char *name, Shape s) {
    Value *v = ir_leaf(g, OP_input, name, s, true);
    vec_push(&g->inputs, v);
    return v;
}

Value *add_target(Graph *g, const char *name, Shape s) {
    Value *v = ir_leaf(g, OP_target, name, s, true);
    vec_push(&g->targets, v);
    return v;
}

Value *add_param(Graph *g, const char *name, Shape s) {
    Value *v = ir_leaf(g, OP_param, name, s, false);
    vec_push(&g->params, v);
    vec_push(&g->param_inits, ((ParamInit){INIT_GLOROT, 0, 0}));
    return v;
}

void set_grad(Graph *g, const char *name, Value *grad) {
    if (!g->param_grads) g->param_grads = xalloc((size_t)g->params.n * sizeof *g->param_grads);
    for (int i = 0; i < g->params.n; i++)
        if (!strcmp(g->params.v[i]->name, name)) g->param_grads[i] = grad;
}

static Value *backward(Value *v) {
    v->backward = true;
    return v;
}

Graph *build_mlp(const int64_t *sizes, int n, bool dW_first) {
    Graph *g = graph_new("mlp");
    Value *x = add_input(g, "x", shape1(sizes[0]));
    Value *y = add_target(g, "y", shape1(sizes[n - 1]));
    Value **W = xalloc((size_t)n * sizeof *W), **z = xalloc((size_t)n * sizeof *z);
    Value *h = x, **hs = xalloc((size_t)n * sizeof *hs);
    for (int l = 1; l < n; l++) {
        hs[l - 1] = h;
        W[l] = add_param(g, xprintf("W%d", l), shape2(sizes[l - 1], sizes[l]));
        Value *b = add_param(g, xprintf("b%d", l), shape1(sizes[l]));
        z[l] = ir_build2(g, OP_add, ir_matmul(g, h, W[l], false, false, false), b);
        h = l < n - 1 ? ir_build1(g, OP_relu, z[l]) : z[l];
    }
    g->loss = ir_build2(g, OP_softmax_ce, z[n - 1], y);
    g->output = ir_build1(g, OP_softmax, z[n - 1]);
    g->n_forward = g->insts.n;
    Value *seed = backward(ir_leaf(g, OP_inv_batch, NULL, shape_scalar(), false));
    Value *dz = backward(
        ir_inst(g, OP_softmax_ce_grad, 3, (Value *[]){z[n - 1], y, seed}, z[n - 1]->shape, true));
    for (int l = n - 1; l >= 1; l--) {
        set_grad(g, xprintf("b%d", l), backward(ir_build1(g, OP_batch_sum, dz)));
        Value *dh = NULL;
        if (!dW_first && l > 1) dh = backward(ir_matmul(g, dz, W[l], false, true, false));
        set_grad(g, xprintf("W%d", l), backward(ir_matmul(g, hs[l - 1], dz, true, false, true)));
        if (dW_first && l > 1) dh = backward(ir_matmul(g, dz, W[l], false, true, false));
        if (l > 1) dz = backward(ir_build2(g, OP_mul, dh, ir_build1(g, OP_step, z[l - 1])));
    }
    return g;
}

/* ---- compiling and loading ---- */

static int run(const char *const *argv) {
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], NULL, NULL, (char *const *)argv, environ);
    if (err) return check(false, "cannot run %s: %s", argv[0], strerror(err)), 1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/* cc -shared model.o libnnrt.a <OpenBLAS> -lmvec -lm -o model.so (libnnrt for the kernels
 * of runtime/conv.h that image models call; nothing else of it is pulled in) */
static int link_shared(const char *obj, const char *so) {
    const char *argv[16];
    int n = 0;
    argv[n++] = "cc";
    argv[n++] = "-shared";
    argv[n++] = obj;
    argv[n++] = NNRT_LIBRARY;
    char *blas = xstrdup(NNC_BLAS_LIBS);
    for (char *word = strtok(blas, " "); word && n < 12; word = strtok(NULL, " ")) argv[n++] = word;
    argv[n++] = "-lmvec";
    argv[n++] = "-lm";
    argv[n++] = "-o";
    argv[n++] = so;
    argv[n] = NULL;
    return run(argv);
}

static void *zeroed_arena(int64_t elems, size_t elem_size) {
    size_t bytes = ((size_t)(elems > 0 ? elems : 1) * elem_size + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes);
    memset(p, 0, bytes);
    return p;
}

Model *model_compile(Graph *g, bool f64, int opt_level, int64_t batch_cap) {
    char templ[] = "/tmp/nnc-backend-test-XXXXXX";
    if (!check(mkdtemp(templ) != NULL, "mkdtemp: %s", strerror(errno))) return NULL;
    Model *m = xalloc(sizeof *m);
    m->dir = xstrdup(templ);
    const char *obj = xprintf("%s/model.o", m->dir), *so = xprintf("%s/model.so", m->dir);
    BackendOptions opt = {.opt_level = opt_level, .f64 = f64, .obj_path = obj};
    if (!check(backend_compile(g, &opt) == 0, "backend_compile failed for %s", g->name) ||
        !check(link_shared(obj, so) == 0, "linking %s failed", so))
        return NULL;
    m->handle = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!check(m->handle != NULL, "dlopen: %s", dlerror())) return NULL;
    m->desc = dlsym(m->handle, "nnrt_model_desc");
    if (!check(m->desc != NULL, "no nnrt_model_desc in %s", so)) return NULL;
    size_t elem = f64 ? sizeof(double) : sizeof(float);
    m->ctx.fixed = zeroed_arena(m->desc->fixed_elems, elem);
    m->ctx.varying = zeroed_arena(m->desc->varying_elems * batch_cap, elem);
    m->ctx.batch = m->ctx.batch_cap = batch_cap;
    return m;
}

void model_close(Model *m) {
    if (!m) return;
    free(m->ctx.fixed);
    free(m->ctx.varying);
    if (m->handle) dlclose(m->handle);
    unlink(xprintf("%s/model.o", m->dir));
    unlink(xprintf("%s/model.so", m->dir));
    rmdir(m->dir);
}

const nnrt_tensor *model_tensor(const Model *m, const char *name) {
    const nnrt_model *d = m->desc;
    for (int i = 0; i < d->n_params; i++)
        if (!strcmp(d->params[i].name, name)) return &d->params[i];
    for (int i = 0; i < d->n_inputs; i++)
        if (!strcmp(d->inputs[i].name, name)) return &d->inputs[i];
    for (int i = 0; i < d->n_targets; i++)
        if (!strcmp(d->targets[i].name, name)) return &d->targets[i];
    if (!strcmp(d->output.name, name)) return &d->output;
    if (!strcmp(d->loss.name, name)) return &d->loss;
    fprintf(stderr, "harness: no tensor %s\n", name);
    abort();
}

/* Element index in the arena of element i of sample `sample`. */
static int64_t element_index(const Model *m, const nnrt_tensor *t, int64_t sample, int64_t i) {
    if (!t->varying) return t->offset + i;
    return t->offset * m->ctx.batch_cap + sample * t->numel + i;
}

static double arena_get(const Model *m, bool varying, int64_t at) {
    void *base = varying ? m->ctx.varying : m->ctx.fixed;
    return m->desc->f64 ? ((double *)base)[at] : ((float *)base)[at];
}

static void arena_set(Model *m, bool varying, int64_t at, double x) {
    void *base = varying ? m->ctx.varying : m->ctx.fixed;
    if (m->desc->f64)
        ((double *)base)[at] = x;
    else
        ((float *)base)[at] = (float)x;
}

double tensor_get(const Model *m, const nnrt_tensor *t, int64_t sample, int64_t i) {
    return arena_get(m, t->varying, element_index(m, t, sample, i));
}

void tensor_set(Model *m, const nnrt_tensor *t, int64_t sample, int64_t i, double x) {
    arena_set(m, t->varying, element_index(m, t, sample, i), x);
}

double grad_get(const Model *m, const nnrt_tensor *param, int64_t i) {
    return arena_get(m, false, param->grad_offset + i);
}

void grad_set(Model *m, const nnrt_tensor *param, int64_t i, double x) {
    arena_set(m, false, param->grad_offset + i, x);
}

double velocity_get(const Model *m, const nnrt_tensor *param, int64_t i) {
    return arena_get(m, false, param->velocity_offset + i);
}

void velocity_set(Model *m, const nnrt_tensor *param, int64_t i, double x) {
    arena_set(m, false, param->velocity_offset + i, x);
}

void tensor_fill_random(Model *m, const nnrt_tensor *t, double lo, double hi) {
    int64_t samples = t->varying ? m->ctx.batch_cap : 1;
    for (int64_t b = 0; b < samples; b++)
        for (int64_t i = 0; i < t->numel; i++) tensor_set(m, t, b, i, random_uniform(lo, hi));
}
