/* gradcheck.h: the gradcheck command. */
#ifndef NNRT_GRADCHECK_H
#define NNRT_GRADCHECK_H

#include "nnrt.h"
#include "options.h"

/* Compares every param element's gradient from grad() with a central difference of the
 * cost through forward(), at the initial weights and at a random point, and prints a table
 * per point (docs/runtime.md). Needs an f64 model (exit 2 otherwise). Returns 1 when a param
 * not marked surrogate fails, else 0. */
int rt_cmd_gradcheck(const nnrt_model *m, const rt_options *o);

#endif
