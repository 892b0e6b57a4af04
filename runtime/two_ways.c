/* two_ways.c: the faster of two ways, measured (two_ways.h). */
#include "two_ways.h"

#include <stdlib.h>

#include "util.h"

void rt_two_ways_start(rt_two_ways *t, int warmup, int steps, int block) {
    if (block < 1 || steps < 2 * block || steps % (2 * block) || steps > RT_TWO_WAYS_MAX_STEPS)
        rt_fatal("internal error: a trial of two ways of %d steps in blocks of %d", steps, block);
    *t = (rt_two_ways){.warmup = warmup, .steps = steps, .block = block};
}

/* Steps of the trial proper (after the warm-up) alternate ways block by block: 0, 1, 0, ... */
static int way_of(const rt_two_ways *t, int64_t step_of_trial) {
    return (int)((step_of_trial / t->block) % 2);
}

int rt_two_ways_next(const rt_two_ways *t) {
    if (t->decided) return t->kept;
    int64_t s = t->timed - t->warmup;
    return s >= 0 && way_of(t, s);
}

int rt_two_ways_timing(const rt_two_ways *t) {
    return !t->decided;
}

/* The median of a way's steps: a step that an interrupt or a page fault stretched moves it no
 * more than any other step above the middle. */
static double median(double *values, int n) {
    qsort(values, (size_t)n, sizeof *values, rt_compare_doubles);
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

static void decide(rt_two_ways *t) {
    double usual = median(t->seconds[0], t->n[0]);
    double other = median(t->seconds[1], t->n[1]);
    t->kept = other < usual * (1 - RT_TWO_WAYS_MARGIN);
    t->decided = 1;
}

void rt_two_ways_took(rt_two_ways *t, double seconds) {
    if (t->decided) return;
    int64_t s = t->timed++ - t->warmup;
    if (s < 0) return;
    int way = way_of(t, s);
    if (t->n[way] < t->steps / 2) t->seconds[way][t->n[way]++] = seconds;
    if (s + 1 == t->steps) decide(t);
}
