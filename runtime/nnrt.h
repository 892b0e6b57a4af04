/* nnrt.h: the contract between a compiled model and the runtime library (libnnrt).
 *
 * nnc compiles a .nn model into an object file that defines one global,
 * `const nnrt_model nnrt_model_desc`. libnnrt holds main(): it reads the descriptor,
 * allocates the two arenas, loads data, initialises or loads parameters and calls the
 * model's entry points. The generated code never allocates and never calls the runtime
 * except for BLAS (cblas_sgemm / cblas_dgemm) and libm.
 *
 * Memory. Two arenas of elements (float, or double when f64 is set):
 *   fixed    fixed_elems elements: parameters, their gradients, momentum buffers, scratch
 *            for values that do not vary per sample. A tensor at `offset` starts at
 *            fixed + offset.
 *   varying  varying_elems * batch_cap elements: everything with a batch axis. A tensor
 *            with per-sample offset `offset` starts at varying + offset * batch_cap and holds
 *            batch_cap rows of numel elements: sample b at + b * numel.
 * Both arenas are 64-byte aligned and zeroed by the runtime before first use.
 */
#ifndef NNRT_H
#define NNRT_H

#include <stdint.h>

#define NNRT_ABI_VERSION 1
#define NNRT_MAX_RANK    4

typedef struct nnrt_ctx {
    void *fixed;
    void *varying;
    int64_t batch;     /* samples in this call, 1 .. batch_cap */
    int64_t batch_cap; /* rows the varying arena was allocated for */
    /* Dropout: active only while training is 1; its masks are a hash of noise_seed and the
     * element's place in the batch, so a backward pass (or a second forward pass, as
     * gradcheck makes) with the same noise_seed sees the same masks. The runtime gives each
     * training step a fresh noise_seed. */
    int32_t training;
    uint64_t noise_seed;
} nnrt_ctx;

enum nnrt_init {
    NNRT_INIT_ZEROS = 0,
    NNRT_INIT_ONES = 1,
    NNRT_INIT_CONST = 2,   /* every element = a */
    NNRT_INIT_GLOROT = 3,  /* uniform(-r, r), r = sqrt(6 / (fan_in + fan_out)) */
    NNRT_INIT_HE = 4,      /* normal(0, sqrt(2 / fan_in)) */
    NNRT_INIT_NORMAL = 5,  /* normal(mean a, std b) */
    NNRT_INIT_UNIFORM = 6, /* uniform(a, b) */
};
/* fan_in, fan_out for GLOROT and HE: a scalar -> 1, 1; [n] -> 1, n (a bias);
 * [n, m] -> n, m; [a, .., n, m] -> a * .. * n, m. */

typedef struct nnrt_tensor {
    const char *name; /* as in the IR: "h.W", "x"; names of params are unique */
    int32_t rank;
    int64_t dims[NNRT_MAX_RANK]; /* per sample for inputs/targets/output/loss */
    int64_t numel;               /* product of dims (1 for a scalar) */
    int64_t offset;              /* see "Memory" above: fixed or per-sample varying offset */
    int32_t varying;             /* 1: in the varying arena */
    /* params only (else 0 / -1): */
    int32_t init; /* enum nnrt_init */
    double init_a, init_b;
    int64_t grad_offset; /* fixed-arena offset of d cost/d param, written by grad(); -1 if none */
    int64_t velocity_offset; /* fixed-arena offset of the momentum buffer used by sgd_step() */
    /* params only: 1 when a fn's surrogate backward rule (`grad x ~ expr`, such as a
     * straight-through estimator) shapes this param's gradient, which then is not the true
     * derivative: gradcheck reports it and does not count it as a failure. */
    int32_t surrogate;
} nnrt_tensor;

/* Which CSV columns (0-based, inclusive) feed an input or target. When a target of
 * numel k > 1 is fed by exactly one column, that column is a class index 0..k-1 and the
 * target is its one-hot encoding. */
typedef struct nnrt_column_map {
    const char *tensor;
    int32_t first, last;
} nnrt_column_map;

typedef struct nnrt_setting {
    const char *name;  /* as in settings.def: "optimizer", "weight_decay" */
    const char *value; /* as the option would be given: "adam", "0.01", "h.W=1e-3" */
} nnrt_setting;

enum nnrt_accuracy {
    NNRT_ACCURACY_NONE = 0,
    NNRT_ACCURACY_PROBABILITY = 1,
    NNRT_ACCURACY_LOGIT = 2
};

typedef struct nnrt_train_defaults {
    const char *data_kind;  /* "csv", "idx" or NULL (model without inputs) */
    const char *data_path;  /* absolute, or NULL */
    const char *data_path2; /* idx: labels file */
    int32_t n_columns;
    const nnrt_column_map *columns;
    const char *optimizer; /* "sgd" */
    double lr, momentum;
    int64_t batch, epochs, steps, seed;
    int32_t shuffle;
    double validation; /* fraction held out (the last rows after a seeded shuffle) */
    /* Report accuracy (nonzero), and how a one-value output is read for it:
     * NNRT_ACCURACY_PROBABILITY (1): a probability, right when on the target's side of 0.5;
     * NNRT_ACCURACY_LOGIT (2): a logit (bce_logits), right when on the target's side of 0. */
    int32_t classification;
    /* Every other setting of the train block (runtime/settings.def lists them), each read
     * as if it were the command-line option --NAME VALUE (NAME with '-' for '_'), before
     * the real command line, which overrides it. */
    int32_t n_settings;
    const nnrt_setting *settings;
} nnrt_train_defaults;

typedef struct nnrt_model {
    int32_t abi_version; /* NNRT_ABI_VERSION */
    const char *name;    /* model name */
    const char *source;  /* path of the .nn file it was compiled from */
    int32_t f64;         /* elements are double (1) or float (0) */
    int64_t fixed_elems, varying_elems;

    int32_t n_params;
    const nnrt_tensor *params;
    int32_t n_inputs;
    const nnrt_tensor *inputs;
    int32_t n_targets;
    const nnrt_tensor *targets;
    nnrt_tensor output; /* what predict writes; varying when the model has inputs */
    nnrt_tensor loss;   /* per-sample loss: rank 0; varying unless the model has no inputs */

    /* Entry points. Inputs (and targets, where used) are written by the runtime first.
     * forward:  writes loss (every sample of the batch) and output.
     * predict:  writes output only; targets are not read.
     * grad:     forward, then d cost/d param for every param with grad_offset >= 0, where
     *           cost = mean of the batch's per-sample losses (sum when loss does not vary).
     * sgd_step: grad, and the update v = momentum*v + g; p = p - lr*v for every param
     *           (with momentum 0 the velocity is not read: p = p - lr*g). Gradients are not
     *           kept in the grad buffers by this entry point.
     * When forward, grad or sgd_step returns, loss and output still hold this batch's forward
     * values: the runtime reads them after sgd_step for the epoch's loss and accuracy. The
     * runtime writes the inputs and targets before every call, so the model may reuse them. */
    void (*forward)(nnrt_ctx *ctx);
    void (*predict)(nnrt_ctx *ctx);
    void (*grad)(nnrt_ctx *ctx);
    void (*sgd_step)(nnrt_ctx *ctx, double lr, double momentum);

    nnrt_train_defaults train;
} nnrt_model;

/* Defined by the compiled model. */
extern const nnrt_model nnrt_model_desc;

#endif
