/* weights.h: `PROG weights FILE`: the tensors of a safetensors file, named, shaped, and
 * printed whole or summarised (docs/runtime.md, "weights"). */
#ifndef NNRT_WEIGHTS_H
#define NNRT_WEIGHTS_H

#include "nnrt.h"
#include "options.h"

/* Prints the file --weights names (--name: only the tensors matching its patterns; --all:
 * every value). Returns the exit status; a file that is not safetensors is a fatal error. */
int rt_cmd_weights(const nnrt_model *m, const rt_options *o);

#endif
