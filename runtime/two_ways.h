/* two_ways.h: which of two ways of running the same steps is faster on this machine,
 * measured on the run's own first steps. For choices that change no value, only where the
 * time goes, and whose better side differs from host to host: how a step asks for the next
 * batch's lines (lines_ahead.h), whether MPI ranks on one machine take their copies of the
 * params out of the caches (train_ranks.c).
 *
 * The first `warmup` steps take way 0 and are not counted; the next `steps` alternate the
 * ways in blocks of `block` steps, each step timed by the caller; way 1 is kept if the median
 * of its steps is below way 0's by more than RT_TWO_WAYS_MARGIN, else way 0, the default.
 * The median, so that a step an interrupt stretched does not decide; blocks that alternate,
 * so that a host that slows down for a while slows both ways alike. */
#ifndef NNRT_TWO_WAYS_H
#define NNRT_TWO_WAYS_H

#include <stdint.h>

#define RT_TWO_WAYS_MAX_STEPS 512 /* the most steps a trial times after its warm-up */
#define RT_TWO_WAYS_MARGIN    0.005

typedef struct rt_two_ways {
    int warmup, steps, block; /* the trial's shape (rt_two_ways_start) */
    int64_t timed;            /* steps timed so far, the warm-up's included */
    int decided;              /* the trial is over and `kept` is the way */
    int kept;
    int n[2]; /* the timed steps of each way */
    double seconds[2][RT_TWO_WAYS_MAX_STEPS / 2];
} rt_two_ways;

/* A trial that starts now. steps: a multiple of 2 * block, at most RT_TWO_WAYS_MAX_STEPS. */
void rt_two_ways_start(rt_two_ways *t, int warmup, int steps, int block);

/* The way the next step takes: 0 or 1. */
int rt_two_ways_next(const rt_two_ways *t);

/* Whether the trial still times steps: until then each step's time goes to
 * rt_two_ways_took. */
int rt_two_ways_timing(const rt_two_ways *t);

/* The step that took the way rt_two_ways_next gave took `seconds` (rt_now, util.h). */
void rt_two_ways_took(rt_two_ways *t, double seconds);

#endif
