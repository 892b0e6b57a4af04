/* option_limits.h: the most a count option takes, shared by the runtime's option table and
 * nnc's check of the train block (both read runtime/settings.def): far more than any
 * machine has cores or a search could run; a larger one is a typo that would otherwise
 * allocate or start that many. */
#ifndef NNRT_OPTION_LIMITS_H
#define NNRT_OPTION_LIMITS_H

#define RT_MAX_WORKERS      256     /* --workers */
#define RT_MAX_HOGWILD      256     /* --hogwild */
#define RT_MAX_BLAS_THREADS 1024    /* --threads: OpenBLAS takes an int, and uses its own most */
#define RT_MAX_TRIALS       1000000 /* search --trials, and a grid's points */

#include <math.h>
#include <stdio.h>

/* The one rule of an option's limits (settings.def's min and max), for the runtime's options
 * and nnc's train block alike: a real lies in [min, max) (max INFINITY: no ceiling), a whole
 * number in min..max (max 0: no ceiling). When x breaks it, writes the rule it breaks ("must
 * be at least 0", "must be in [0, 1)", "must be at most 256") into rule and returns 1. */
static inline int rt_outside_limits(int whole, double min, double max, double x, char *rule,
                                    size_t size) {
    if (x < min && (whole || isinf(max)))
        snprintf(rule, size, "must be at least %g", min);
    else if (!whole && (x < min || x >= max))
        snprintf(rule, size, "must be in [%g, %g)", min, max);
    else if (whole && max > 0 && x > max)
        snprintf(rule, size, "must be at most %.0f", max);
    else
        return 0;
    return 1;
}

#endif
