/* progress.h: what training shows while it runs: a line per epoch on stderr (a live bar
 * within the epoch when stderr is a terminal), and the --log CSV. Formats in
 * docs/runtime.md. */
#ifndef NNRT_PROGRESS_H
#define NNRT_PROGRESS_H

#include <stdint.h>

#include "model.h"
#include "nnrt.h"
#include "options.h"

typedef struct rt_progress rt_progress;

/* Opens the log (appending, without a second header, when resuming into an existing one),
 * so a bad path stops the run before training. has_validation adds the validation columns. */
rt_progress *rt_progress_begin(const nnrt_model *m, const rt_options *o, int has_validation,
                               int resuming);

/* Within an epoch: redraws the bar on a terminal, at most ten times a second. done of total
 * rows; r the epoch's metrics so far. Cheap enough to call after every step: it reads the
 * clock once every so many calls, as many as take a small part of the interval. */
void rt_progress_tick(rt_progress *p, int64_t epoch, int64_t epochs, int64_t done, int64_t total,
                      rt_metrics r);

/* One epoch (a step, for a model without inputs) done: a log row always, a line on stderr
 * for the first, the last and at most ten a second otherwise. validation NULL: none.
 * epoch_start: when the epoch began (rt_progress_now()). grad_norms (--log-grad-norms, else
 * NULL) and update_ratios (--log-update-ratios, else NULL): per param, the values the log's
 * row shows for each param with a gradient. Reads the clock once (twice for a line shown:
 * the second read steers it) and returns that time, at which the next epoch can start. */
double rt_progress_epoch(rt_progress *p, int64_t epoch, int64_t epochs, rt_metrics r,
                         const rt_metrics *validation, double lr, double epoch_start,
                         const double *grad_norms, const double *update_ratios);

/* The progress's clock (util.h, rt_tick_clock), for an epoch's start that
 * rt_progress_epoch did not return. */
double rt_progress_now(rt_progress *p);

/* How many times the clock was read so far (work the tests count). */
int64_t rt_progress_clock_reads(const rt_progress *p);

/* Ends the bar's line on a terminal (before another message), and flushes the log. */
void rt_progress_pause(rt_progress *p);

/* Closes the log; a write error is fatal. */
void rt_progress_end(rt_progress *p);

#endif
