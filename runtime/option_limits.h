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

#endif
