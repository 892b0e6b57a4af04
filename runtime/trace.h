/* trace.h: train --trace: a CSV row per update step with the named params' values (or their
 * gradients, or single elements of them) and the loss there, for plotting the path of
 * gradient descent (format in docs/runtime.md). */
#ifndef NNRT_TRACE_H
#define NNRT_TRACE_H

#include <stdint.h>

#include "nnrt.h"
#include "options.h"

/* Up to this many leading elements of a param named whole that is not a scalar get a column
 * each. */
#define RT_TRACE_ELEMS 4

typedef struct rt_trace rt_trace;

/* NULL without --trace. Otherwise resolves the items, "NAME", "NAME.grad", each optionally
 * with "[FLAT]" or "[I, J, ...]" (negative indices count from the end; an unknown name is a
 * usage error that lists the model's params, an index outside the param one that gives its
 * shape), opens --trace-out and writes the header, so that a bad name or
 * path stops the run before training, and the rows need no allocation. */
rt_trace *rt_trace_open(const nnrt_model *m, const rt_options *o);

/* Whether the rows go to stdout; train then prints its final lines on stderr. */
int rt_trace_on_stdout(const rt_trace *t);

/* Whether a column is a gradient: each row's values must then come from grad(), which
 * writes the gradients at the row's values, not forward(). */
int rt_trace_needs_grad(const rt_trace *t);

/* One row: the step, the traced values in the fixed arena, and the loss. Allocates nothing.
 * A failed write is fatal ("cannot write"). */
void rt_trace_row(rt_trace *t, int64_t step, const void *fixed, double loss);

/* Flushes, and closes a file (not standard output); a write error is fatal. */
void rt_trace_close(rt_trace *t);

#endif
