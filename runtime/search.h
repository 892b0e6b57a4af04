/* search.h: the search command: training runs with settings drawn from ranges, ranked on
 * the validation rows (format in docs/runtime.md). */
#ifndef NNRT_SEARCH_H
#define NNRT_SEARCH_H

#include "nnrt.h"
#include "options.h"

int rt_cmd_search(const nnrt_model *m, const rt_options *o);

#endif
