/* param_pattern.h: whether a pattern of --freeze (or of a train block's freeze) names a param:
 * the name itself, or a glob (fnmatch) that matches it. The runtime's --freeze and
 * compiler/sema.c's check of a train block both ask it, so they agree on what a pattern
 * freezes. */
#ifndef NNRT_PARAM_PATTERN_H
#define NNRT_PARAM_PATTERN_H

#include <fnmatch.h>
#include <string.h>

static inline int rt_param_matches(const char *pattern, const char *name) {
    return strcmp(name, pattern) == 0 || fnmatch(pattern, name, 0) == 0;
}

#endif
