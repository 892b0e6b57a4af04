/* nnrt.h: the contract between a compiled model and the runtime library (libnnrt).
 *
 * nnc compiles a .nn model into an object file that defines one global,
 * `const nnrt_model nnrt_model_desc`. libnnrt holds main(): it reads the descriptor,
 * allocates the two arenas, loads data, initialises or loads parameters and calls the
 * model's entry points. The generated code never allocates and never calls the runtime
 * except for BLAS (cblas_sgemm / cblas_dgemm) and libm.
 *
 * Memory. Two arenas of elements (float, or double when f64 is set):
 *   fixed    fixed_elems elements: parameters, states, the parameters' gradients and
 *            momentum buffers, scratch for values that do not vary per sample. A tensor at `offset`
 * starts at fixed + offset. varying  varying_elems * batch_cap elements: everything with a batch
 * axis. A tensor with per-sample offset `offset` starts at varying + offset * batch_cap and holds
 *            batch_cap rows of numel elements: sample b at + b * numel.
 * Both arenas are 64-byte aligned and zeroed by the runtime before first use.
 */
#ifndef NNRT_H
#define NNRT_H

#include <stdint.h>

/* Changes with anything compiled models and libnnrt both read: the descriptor below, or the
 * kernels' arguments (version 3: the window field cols_ready of conv.h, and
 * train.vocab; version 4: nnrt_tensor.ids; version 5: nnrt_model.step; version 6:
 * nnrt_ctx.params and first_row; version 7: nnrt_ctx.dropout_keep; version 8: nnrt_ctx.team
 * and nnrt_model.sgd_step_team, grad_team; version 10: nnrt_model.n_dropouts). */
#define NNRT_ABI_VERSION 10
#define NNRT_MAX_RANK    4

/* The layout is defined once: each struct is a list of fields, NNRT_<STRUCT>_FIELDS(X)
 * with X(kind, name) a field, from which the C structs below are made, and so are the LLVM
 * types of the descriptor nnc writes (compiler/descriptor.c).
 * tests/backend/test_descriptor.c compares the two layouts field by field. A kind is a C
 * type (NNRT_C_<kind>) and an LLVM type (descriptor.c):
 *   ARENA     void *, an array of elements        STRING    const char *
 *   I32, I64  int32_t, int64_t                    U64       uint64_t
 *   F64       double                              DIMS      int64_t[NNRT_MAX_RANK]
 *   TENSOR    nnrt_tensor                         TENSORS   const nnrt_tensor *
 *   COLUMNS   const nnrt_column_map *             SETTINGS  const nnrt_setting *
 *   TRAIN     nnrt_train_defaults                 STEP      nnrt_step
 *   ENTRY     void (*)(nnrt_ctx *ctx)             SGD_ENTRY void (*)(nnrt_ctx *, double, double)
 */
#define NNRT_C_ARENA(name)       void *name
#define NNRT_C_STRING(name)      const char *name
#define NNRT_C_I32(name)         int32_t name
#define NNRT_C_I64(name)         int64_t name
#define NNRT_C_U64(name)         uint64_t name
#define NNRT_C_F64(name)         double name
#define NNRT_C_DIMS(name)        int64_t name[NNRT_MAX_RANK]
#define NNRT_C_TENSOR(name)      nnrt_tensor name
#define NNRT_C_TENSORS(name)     const nnrt_tensor *name
#define NNRT_C_COLUMNS(name)     const nnrt_column_map *name
#define NNRT_C_SETTINGS(name)    const nnrt_setting *name
#define NNRT_C_TRAIN(name)       nnrt_train_defaults name
#define NNRT_C_STEP(name)        nnrt_step name
#define NNRT_C_ENTRY(name)       void (*name)(nnrt_ctx * ctx)
#define NNRT_C_SGD_ENTRY(name)   void (*name)(nnrt_ctx * ctx, double lr, double momentum)
#define NNRT_C_FIELD(kind, name) NNRT_C_##kind(name);

/* What every entry point is called with. */
#define NNRT_CTX_FIELDS(X)                                                                         \
    X(ARENA, fixed)                                                                                \
    X(ARENA, varying)                                                                              \
    X(I64, batch)     /* samples in this call, 1 .. batch_cap */                                   \
    X(I64, batch_cap) /* rows the varying arena was allocated for */                               \
    /* Dropout: active only while training is not 0; its masks are a hash of noise_seed and the    \
     * element's place in the batch, so a backward pass (or a second forward pass, as              \
     * gradcheck makes) with the same noise_seed sees the same masks. The runtime gives each       \
     * training step a fresh noise_seed. training(a, b) is a when training is not 0. Values:       \
     * enum nnrt_mode. */                                                                          \
    X(I32, training)                                                                               \
    X(U64, noise_seed)                                                                             \
    /* Where the params live: an arena laid out as fixed, whose params are read (and updated by    \
     * sgd_step) instead of fixed's; NULL: in fixed. Workers that share one set of params each     \
     * have their own fixed arena (gradients, velocities, scratch) and point here. */              \
    X(ARENA, params)                                                                               \
    /* The place of this call's first sample in the step's whole batch, when workers split the     \
     * batch (0 otherwise): dropout numbers the elements from it, so that a sample draws the same  \
     * mask whichever worker runs it. */                                                           \
    X(I64, first_row)                                                                              \
    /* The run-time rate of dropout (train --dropout X): 0, every dropout keeps its own rate,      \
     * compiled in; else every dropout keeps an element with this probability, 1 - X in (0, 1],    \
     * and scales it by 1 / dropout_keep: the same masks and values as a model compiled with       \
     * rate X. The mask's threshold round(dropout_keep * 2^32) and the scale are computed in       \
     * double from it, as the compiler computes them from a constant rate. */                      \
    X(F64, dropout_keep)                                                                           \
    /* sgd_step_team, grad_team: this thread's place in the team that runs the step together (a    \
     * worker of runtime/workers.c, passed back to nnrt_team_*); NULL outside a team. */           \
    X(ARENA, team)                                                                                 \
    /* grad: who hears of each gradient as soon as it is final (nnrt_grads_done); NULL: nobody. */ \
    X(ARENA, on_grads)

typedef struct nnrt_ctx {
    NNRT_CTX_FIELDS(NNRT_C_FIELD)
} nnrt_ctx;

/* grad()'s hook points (docs/mpi.md, "Overlap with the backward pass"). When ctx.on_grads is
 * not NULL, grad() calls nnrt_grads_done(ctx.on_grads, p) for p = 1, 2, ... in turn, each
 * time the gradients of the params whose grad_point is p have become final in their grad
 * buffers (the schedule writes them no more), while the rest of the backward pass is still
 * to run. The listener is the runtime's: its first member says what to do. */
typedef struct nnrt_grads_listener nnrt_grads_listener;
struct nnrt_grads_listener {
    void (*done)(nnrt_grads_listener *self, int32_t point);
};
void nnrt_grads_done(void *listener, int32_t point);

/* nnrt_ctx.training. A training step (NNRT_TRAINING_STEP, the runtime's train loop) also
 * writes every state's update at the end of grad and sgd_step; gradcheck's passes
 * (NNRT_TRAINING) behave as training but leave the state alone. */
enum nnrt_mode {
    NNRT_INFERENCE = 0,     /* eval, predict, validation, the final loss, the trace */
    NNRT_TRAINING = 1,      /* batch statistics, dropout on */
    NNRT_TRAINING_STEP = 3, /* NNRT_TRAINING, and grad/sgd_step write the state's updates */
};
#define NNRT_WRITES_STATE 2 /* the bit of NNRT_TRAINING_STEP that NNRT_TRAINING lacks */

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

#define NNRT_TENSOR_FIELDS(X)                                                                      \
    X(STRING, name) /* as in the IR: "h.W", "x"; names of params are unique */                     \
    X(I32, rank)                                                                                   \
    X(DIMS, dims)   /* per sample for inputs/targets/output/loss */                                \
    X(I64, numel)   /* product of dims (1 for a scalar) */                                         \
    X(I64, offset)  /* see "Memory" above: fixed or per-sample varying offset */                   \
    X(I32, varying) /* 1: in the varying arena */                                                  \
    /* params only (else 0 / -1): */                                                               \
    X(I32, init) /* enum nnrt_init */                                                              \
    X(F64, init_a)                                                                                 \
    X(F64, init_b)                                                                                 \
    X(I64, grad_offset) /* fixed-arena offset of d cost/d param, written by grad(); -1 if none */  \
    X(I64, velocity_offset) /* fixed-arena offset of the momentum buffer used by sgd_step() */     \
    /* params only: 1 when a fn's surrogate backward rule (`grad x ~ expr`, such as a              \
     * straight-through estimator) shapes this param's gradient, which then is not the true        \
     * derivative: gradcheck reports it and does not count it as a failure. */                     \
    X(I32, surrogate)                                                                              \
    /* params only: grad()'s hook point after which this param's gradient is final in its          \
     * buffer (nnrt_grads_done); 0: only when grad() returns, or no gradient. */                   \
    X(I32, grad_point)                                                                             \
    /* inputs and targets only: V when the tensor holds token ids 0..V-1, because it reaches       \
     * the ids of take (V: the table's rows) or one_hot (V: its k), through slices and             \
     * reshapes, or is the [seq] ids of text data (V: train.vocab); the smallest V where           \
     * several; else 0. gradcheck draws such a tensor's random values as whole ids. */             \
    X(I64, ids)

typedef struct nnrt_tensor {
    NNRT_TENSOR_FIELDS(NNRT_C_FIELD)
} nnrt_tensor;

/* Which CSV columns (0-based, inclusive) feed an input or target. When a target of
 * numel k > 1 is fed by exactly one column, that column is a class index 0..k-1 and the
 * target is its one-hot encoding. */
#define NNRT_COLUMN_MAP_FIELDS(X)                                                                  \
    X(STRING, tensor)                                                                              \
    X(I32, first)                                                                                  \
    X(I32, last)

typedef struct nnrt_column_map {
    NNRT_COLUMN_MAP_FIELDS(NNRT_C_FIELD)
} nnrt_column_map;

#define NNRT_SETTING_FIELDS(X)                                                                     \
    X(STRING, name)  /* as in settings.def: "optimizer", "weight_decay" */                         \
    X(STRING, value) /* as the option would be given: "adam", "0.01", "h.W=1e-3" */

typedef struct nnrt_setting {
    NNRT_SETTING_FIELDS(NNRT_C_FIELD)
} nnrt_setting;

enum nnrt_accuracy {
    NNRT_ACCURACY_NONE = 0,
    NNRT_ACCURACY_PROBABILITY = 1,
    NNRT_ACCURACY_LOGIT = 2
};

#define NNRT_TRAIN_DEFAULTS_FIELDS(X)                                                              \
    X(STRING, data_kind)  /* "csv", "idx", "text" or NULL (model without inputs) */                \
    X(STRING, data_path)  /* absolute, or NULL */                                                  \
    X(STRING, data_path2) /* idx: labels file */                                                   \
    X(I32, n_columns)                                                                              \
    X(COLUMNS, columns)                                                                            \
    X(STRING, optimizer) /* "sgd" */                                                               \
    X(F64, lr)                                                                                     \
    X(F64, momentum)                                                                               \
    X(I64, batch)                                                                                  \
    X(I64, epochs)                                                                                 \
    X(I64, steps)                                                                                  \
    X(I64, seed)                                                                                   \
    X(I32, shuffle)                                                                                \
    X(F64, validation) /* fraction held out (the last rows after a seeded shuffle) */              \
    /* Report accuracy (nonzero), and what the output is:                                          \
     * NNRT_ACCURACY_PROBABILITY (1): probabilities; one value is right when on the target's       \
     * side of 0.5;                                                                                \
     * NNRT_ACCURACY_LOGIT (2): logits (the loss is bce_logits or softmax_cross_entropy of the     \
     * output); one value is right when on the target's side of 0. */                              \
    X(I32, classification)                                                                         \
    /* Every other setting of the train block (runtime/settings.def lists them), each read         \
     * as if it were the command-line option --NAME VALUE (NAME with '-' for '_'), before          \
     * the real command line, which overrides it. */                                               \
    X(I32, n_settings)                                                                             \
    X(SETTINGS, settings)                                                                          \
    /* Text data: the model's vocabulary size, token ids 0..vocab-1 (text(..., vocab = V), or      \
     * the last dimension of a one-hot [seq, V] input or target); 0 for other data. */             \
    X(I64, vocab)

typedef struct nnrt_train_defaults {
    NNRT_TRAIN_DEFAULTS_FIELDS(NNRT_C_FIELD)
} nnrt_train_defaults;

/* The one-step form of a text model, which `sample` runs (docs/codegen.md, "The one-step
 * form"): the model compiled a second time for windows of one character, with a plan of its
 * own (its own two arenas), each outermost scan over the input running one step from the
 * carry in `carries` and leaving the next carry in `carries_out`. The runtime copies the
 * params and states into the step's fixed arena by name, fills each carry with its
 * `carries_init` (which every call computes, as it does not depend on the input), then per
 * character writes the input, calls step, reads the output and copies carries_out into
 * carries. Every tensor is sample 0 of a batch of one (batch_cap 1). When the model has no
 * such form, step is NULL, missing says why (or is NULL too) and the rest is zero. */
#define NNRT_STEP_FIELDS(X)                                                                        \
    X(STRING, missing) /* NULL, or why: "it has no scan over its input, ..." */                    \
    X(I64, fixed_elems)                                                                            \
    X(I64, varying_elems) /* a sample: everything step reads and writes */                         \
    X(I32, n_params)                                                                               \
    X(TENSORS, params) /* the model's params, by name, at the step's own offsets */                \
    X(I32, n_states)                                                                               \
    X(TENSORS, states)                                                                             \
    X(TENSOR, input)  /* one character: [1] its id, or [1, V] its one-hot row */                   \
    X(TENSOR, output) /* the next character's scores: train.vocab values */                        \
    X(I32, n_carries)                                                                              \
    X(TENSORS, carries)      /* each scan's carry, which step reads ("h.carry") */                 \
    X(TENSORS, carries_out)  /* parallel: the carry after the step, where step leaves it */        \
    X(TENSORS, carries_init) /* parallel: the scan's first carry */                                \
    X(ENTRY, step)

typedef struct nnrt_step {
    NNRT_STEP_FIELDS(NNRT_C_FIELD)
} nnrt_step;

/* Entry points. Inputs (and targets, where used) are written by the runtime first.
 * forward:  writes loss (every sample of the batch) and output.
 * predict:  writes output and the bindings (in an arena of varying_elems +
 *           predict_extra_elems elements a sample); targets are not read.
 * grad:     forward, then d cost/d param for every param with grad_offset >= 0, where
 *           cost = mean of the batch's per-sample losses (sum when loss does not vary).
 * sgd_step: grad, and the update v = momentum*v + g; p = p - lr*v for every param
 *           (with momentum 0 the velocity is not read: p = p - lr*g). Gradients are not
 *           kept in the grad buffers by this entry point.
 * sgd_step_team, grad_team: sgd_step and grad, called by every thread of a team at once
 *           with its own ctx over the same arenas (ctx.team); each returns when the whole
 *           step is done.
 * grad and sgd_step with training = NNRT_TRAINING_STEP end by writing each state's update
 *           (computed in the same pass, from the state's old value) into the state.
 * When forward, grad or sgd_step returns, loss and output still hold this batch's forward
 * values: the runtime reads them after sgd_step for the epoch's loss and accuracy. The
 * runtime writes the inputs and targets before a call; the model never writes them (nnc
 * gives them buffers of their own, plan.c), so a batch run again as it is (a batch of the
 * whole training set, train.c) is not written again. */
#define NNRT_MODEL_FIELDS(X)                                                                       \
    X(I32, abi_version) /* NNRT_ABI_VERSION */                                                     \
    X(STRING, name)     /* model name */                                                           \
    X(STRING, source)   /* path of the .nn file it was compiled from */                            \
    X(I32, f64)         /* elements are double (1) or float (0) */                                 \
    X(I64, fixed_elems)                                                                            \
    X(I64, varying_elems)                                                                          \
    X(I32, n_params)                                                                               \
    X(TENSORS, params)                                                                             \
    /* Non-trainable state (batch norm's running statistics): in the fixed arena, with its         \
     * init (zeros, ones, a constant, ...) and grad_offset = velocity_offset = -1. Saved with      \
     * the params; never given to an optimizer. */                                                 \
    X(I32, n_states)                                                                               \
    X(TENSORS, states)                                                                             \
    X(I32, n_inputs)                                                                               \
    X(TENSORS, inputs)                                                                             \
    X(I32, n_targets)                                                                              \
    X(TENSORS, targets)                                                                            \
    X(TENSOR, output)  /* what predict writes; varying when the model has inputs */                \
    X(I32, n_dropouts) /* dropout(...) call sites: the rates train --dropout replaces */           \
    X(TENSOR, loss)    /* per-sample loss: rank 0; varying unless the model has no inputs */       \
    /* The model's bindings predict can print (`predict --output NAME`), in declaration order:     \
     * those some root needs and that read no target. Each is where it is when predict             \
     * returns; a varying one may lie past varying_elems, in predict's own part of the arena.      \
     * Two names may share one tensor (h = z). */                                                  \
    X(I32, n_bindings)                                                                             \
    X(TENSORS, bindings)                                                                           \
    /* predict's varying arena has varying_elems + predict_extra_elems elements a sample */        \
    X(I64, predict_extra_elems)                                                                    \
    X(ENTRY, forward)                                                                              \
    X(ENTRY, predict)                                                                              \
    X(ENTRY, grad)                                                                                 \
    X(SGD_ENTRY, sgd_step)                                                                         \
    /* sgd_step run by a team of threads at once, each with its own ctx over the same arenas       \
     * (ctx.team tells them apart): docs/runtime.md, "Data-parallel workers". NULL when the        \
     * model's plan is not split (the runtime then splits the batch instead). */                   \
    X(SGD_ENTRY, sgd_step_team)                                                                    \
    X(ENTRY, grad_team) /* grad run by a team likewise */                                          \
    X(TRAIN, train)                                                                                \
    X(STEP, step) /* the one-step form, for sample */

typedef struct nnrt_model {
    NNRT_MODEL_FIELDS(NNRT_C_FIELD)
} nnrt_model;

/* Defined by the compiled model. */
extern const nnrt_model nnrt_model_desc;

#endif
