/* tpe.h: the Tree-structured Parzen Estimator (Bergstra et al., "Algorithms for
 * Hyper-Parameter Optimization", 2011), one setting at a time, for search --strategy tpe.
 *
 * The trials so far are split into good (the best fraction of them) and bad (the rest). For
 * one setting, a density l(x) is fitted to the good trials' values and g(x) to the bad
 * ones'; candidates are drawn from l, and the one where l(x)/g(x) is largest is the next
 * value: where good trials were, and bad ones were not. The parameters are the constants
 * below (docs/runtime.md, "Search"). Every draw comes from the rng given: the same trials
 * and the same stream give the same value. */
#ifndef NNRT_TPE_H
#define NNRT_TPE_H

#include <stdint.h>

#include "rng.h"

#define RT_TPE_GOOD_FRACTION 0.25 /* the good trials: the best quarter, rounded up... */
#define RT_TPE_MAX_GOOD      25   /* ... and at most this many */
#define RT_TPE_CANDIDATES    24   /* values drawn from l(x), of which the best l/g is taken */
#define RT_TPE_MIN_WIDTH     100  /* a kernel is at least 1/min(100, n + 2) of the range wide */

/* How many of n trials that finished count as good (1 at least when n > 0). */
int64_t rt_tpe_good_count(int64_t n);

/* One setting: a range [lo, hi] of numbers (already log'd for a log range: the densities
 * are fitted where the search draws uniformly), or a list of n_choices (values are the
 * choices' indexes). */
typedef struct rt_tpe_setting {
    int n_choices; /* 0: a range */
    double lo, hi;
} rt_tpe_setting;

/* The next value of the setting, from the good trials' values good[0..n_good) and the bad
 * trials' bad[0..n_bad) (either may be empty). A range's value is in [lo, hi]; a list's is a
 * choice's index. */
double rt_tpe_next(const rt_tpe_setting *s, const double *good, int64_t n_good, const double *bad,
                   int64_t n_bad, rt_rng *rng);

#endif
