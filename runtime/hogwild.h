/* hogwild.h: HOGWILD! (Niu, Recht, Ré and Wright 2011), `train --hogwild N`: N threads, each
 * taking mini-batches from its own shard of the training rows and running the model's fused
 * sgd_step on the ONE set of params, without locks. Not deterministic: the threads' updates
 * interleave as the scheduler runs them. docs/runtime.md, "HOGWILD!", says why it works and
 * what it refuses. */
#ifndef NNRT_HOGWILD_H
#define NNRT_HOGWILD_H

#include <signal.h>
#include <stdint.h>

#include "data.h"
#include "model.h"
#include "nnrt.h"
#include "options.h"

typedef struct rt_hogwild rt_hogwild;

/* A usage error, saying why, when the run asks for something HOGWILD! cannot do lock-free
 * (an optimizer or a change of the gradient that needs the whole gradient before the
 * update, a trace of every step, more threads than rows). */
void rt_hogwild_check(const rt_options *o, int64_t n_train);

/* The threads of a run: thread 0 runs on `master` (the run's ctx, whose fixed arena holds THE
 * params, and whose steps write the states); each other thread gets a ctx of its own that
 * shares master's params (rt_new_sharing_ctx: its own velocity, gradients and scratch). The
 * training rows (rows[0..n_rows)) are shuffled once, seeded by o->seed as the run's first
 * shuffle (unless --shuffle off), and cut into one shard a thread. */
rt_hogwild *rt_hogwild_new(const nnrt_model *m, const rt_options *o, nnrt_ctx *master,
                           const rt_dataset *train, const int64_t *rows, int64_t n_rows,
                           int64_t batch);
void rt_hogwild_free(rt_hogwild *h);

enum rt_hogwild_end {
    RT_HOGWILD_DONE,        /* every thread went through its shard, or the step limit was hit */
    RT_HOGWILD_FAULT,       /* a step's loss was not finite: the threads stopped */
    RT_HOGWILD_INTERRUPTED, /* Ctrl-C: each thread finished the step it was in and stopped */
};

/* One epoch. In: epoch (0-based; seeds each thread's shuffle and noise), lr, step_limit (0:
 * none), steps (the run's step count so far), interrupted (set by the SIGINT handler; read by
 * thread 0 only), tick (called by thread 0 after its steps, with the rows all threads have
 * done and thread 0's metrics). Out: steps (every thread's steps counted), rows_done (by
 * all threads), metrics (of those rows: the threads' sums, added in thread order), bad_cost
 * (a FAULT's loss). */
typedef struct rt_hogwild_epoch {
    int64_t epoch;
    double lr;
    int64_t step_limit;
    int64_t steps;
    const volatile sig_atomic_t *interrupted;
    void (*tick)(void *arg, int64_t rows_done, rt_metrics thread0);
    void *tick_arg;
    int64_t rows_done;
    rt_metrics metrics;
    double bad_cost;
} rt_hogwild_epoch;

enum rt_hogwild_end rt_hogwild_run_epoch(rt_hogwild *h, rt_hogwild_epoch *e);

#endif
