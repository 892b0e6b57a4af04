/* eval.h: the eval and predict commands. */
#ifndef NNRT_EVAL_H
#define NNRT_EVAL_H

#include "nnrt.h"
#include "options.h"

/* "loss %.9g" (and "accuracy %.4f") of --weights over every row of the data. */
int rt_cmd_eval(const nnrt_model *m, const rt_options *o);

/* One CSV row of output values per input row. */
int rt_cmd_predict(const nnrt_model *m, const rt_options *o);

#endif
