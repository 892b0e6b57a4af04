/* eval.h: the eval and predict commands. */
#ifndef NNRT_EVAL_H
#define NNRT_EVAL_H

#include "nnrt.h"
#include "options.h"

/* "loss %.9g" (and "accuracy %.4f") of --weights over every row of the data. */
int rt_cmd_eval(const nnrt_model *m, const rt_options *o);

/* One CSV row of output values per input row. */
int rt_cmd_predict(const nnrt_model *m, const rt_options *o);

/* values: one row of the data (inputs and targets, read as eval reads them) through
 * predict, in inference mode, as a batch of one; then each binding on a line of its own,
 * "NAME x1 x2 ...", every number in full precision. A model compiled for `nnc explain
 * --at-sample` has as bindings the values of explain's lines, gradients among them. */
int rt_cmd_values(const nnrt_model *m, const rt_options *o);

#endif
