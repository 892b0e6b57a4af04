/* harness.h: compiling hand-built IR graphs with the back end and running them in-process.
 *
 * model_compile() runs backend_compile() to an object file, links it into a shared object
 * with OpenBLAS and libmvec, dlopen()s it and allocates the two arenas of runtime/nnrt.h,
 * so a test calls the entry points of nnrt_model_desc directly and compares what they
 * write with values computed in plain C. */
#ifndef NNC_TEST_HARNESS_H
#define NNC_TEST_HARNESS_H

#include "backend.h"
#include "ir.h"
#include "nnrt.h"
#include "plan.h"

typedef struct Model {
    void *handle;
    const nnrt_model *desc;
    nnrt_ctx ctx;
    const char *dir; /* a scratch folder: model.o, model.so */
} Model;

/* NULL (after a message, counted as a failure) when compiling or loading fails. */
Model *model_compile(Graph *g, bool f64, int opt_level, int64_t batch_cap);
void model_close(Model *m);

/* A tensor of the descriptor by name: params, inputs, targets, then output and loss. */
const nnrt_tensor *model_tensor(const Model *m, const char *name);
double tensor_get(const Model *m, const nnrt_tensor *t, int64_t sample, int64_t i);
void tensor_set(Model *m, const nnrt_tensor *t, int64_t sample, int64_t i, double x);
/* d cost / d param[i] as written by grad(), and the momentum buffer. */
double grad_get(const Model *m, const nnrt_tensor *param, int64_t i);
void grad_set(Model *m, const nnrt_tensor *param, int64_t i, double x);
double velocity_get(const Model *m, const nnrt_tensor *param, int64_t i);
void velocity_set(Model *m, const nnrt_tensor *param, int64_t i, double x);
/* Fills every element of every sample with uniform numbers in [lo, hi). */
void tensor_fill_random(Model *m, const nnrt_tensor *t, double lo, double hi);

/* A deterministic uniform number in [lo, hi). */
double random_uniform(double lo, double hi);

/* ---- graph building ---- */
Shape shape1(int64_t a);
Shape shape2(int64_t a, int64_t b);
Shape shape3(int64_t a, int64_t b, int64_t c);
Value *add_input(Graph *g, const char *name, Shape s);
Value *add_target(Graph *g, const char *name, Shape s);
Value *add_param(Graph *g, const char *name, Shape s);
/* Sets g->param_grads[i] for the param called name. */
void set_grad(Graph *g, const char *name, Value *grad);

/* ---- the reference ---- */
/* Element i of sample `sample` of v, evaluated in double from the leaves' values in m. */
double ref_eval(const Model *m, const Value *v, int64_t sample, int64_t i);
/* What dropout v multiplies element i of sample `sample` by under m->ctx: 0, 1/(1-rate),
 * or 1 when not training. */
double ref_dropout_factor(const Model *m, const Value *v, int64_t sample, int64_t i);
/* Compares every element of tensor t (every sample of the running batch) with v. */
bool check_value(const char *label, const Model *m, const Value *v, const nnrt_tensor *t,
                 double tol);
/* Random values in [lo, hi) for every input, target and param. */
void fill_leaves(Model *m, double lo, double hi);

typedef struct ForwardCase {
    bool f64;
    int opt_level;
    double lo, hi;           /* range of the random leaves */
    double tol;              /* 0: the default for f32 */
    void (*tweak)(Model *m); /* may set special values after the random fill */
    int64_t batch;           /* samples; 0: 5 */
} ForwardCase;

/* Makes result the output (and its sum the loss), compiles, fills the leaves, runs forward
 * and predict with a batch of fc->batch (5) in arenas for 3 more, and compares with
 * ref_eval. */
bool check_forward(const char *label, Graph *g, Value *result, const ForwardCase *fc);

/* An MLP: sizes[0] inputs x, sizes[n-1] one-hot targets y, a dense layer (Wl, bl) between
 * consecutive sizes, relu between layers, loss = softmax_ce, output = softmax; then its
 * backward pass written by hand the way autodiff emits it (seed 1/B). dW_first: the
 * gradient of a weight comes before dh = dz W^T reads that weight. */
Graph *build_mlp(const int64_t *sizes, int n, bool dW_first);

/* ---- checks ---- */
extern int test_failures;
/* |got - want| <= tol * max(1, |want|); prints and counts a failure otherwise. */
bool check_close(const char *what, double got, double want, double tol);
bool check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "<program>: N failures" or "ok" and returns the exit status. */
int test_summary(const char *program);

#endif
