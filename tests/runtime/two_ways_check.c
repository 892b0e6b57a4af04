/* two_ways_check.c: runtime/two_ways.c, the trial that keeps the faster of two ways. Not a
 * model. For the shapes of train.c's two trials, runs whole trials of steps timed at set
 * figures and checks the way of every step (the warm-up's way 0, then blocks that alternate)
 * and the way kept: the other way 2% faster, 2% slower, 0.2% faster (within the margin), the
 * same, with a quarter or a third of each way's steps stretched by interrupts, for steps of
 * 120 ns and of 2 ms; and that nothing changes once the trial is over. Prints "ok N" (N trials
 * run), or what differs and exits 1. */
#include <stdint.h>
#include <stdio.h>

#include "two_ways.h"

static int failures;

static void fail(const char *what, long got, long want) {
    if (failures++ < 10) fprintf(stderr, "%s: %ld, expected %ld\n", what, got, want);
}

typedef struct shape {
    int warmup, steps, block;
} shape;

/* Runs a whole trial whose steps take `usual` (way 0) or `other` (way 1) seconds, give or take
 * 1% by a fixed pattern, and every `stretched`-th step of each way (0: none) 1e6 seconds;
 * checks the way of each step; returns the way kept. */
static int trial(shape sh, double usual, double other, int stretched) {
    rt_two_ways t;
    rt_two_ways_start(&t, sh.warmup, sh.steps, sh.block);
    int64_t s = 0, n_way[2] = {0, 0};
    for (; rt_two_ways_timing(&t); s++) {
        int way = rt_two_ways_next(&t);
        int want = s >= sh.warmup && ((s - sh.warmup) / sh.block) % 2;
        if (way != want) fail("the way of a step of the trial", way, want);
        double seconds = (way ? other : usual) * (0.99 + (double)((s * 7) % 21) / 1000);
        if (s >= sh.warmup && stretched && ++n_way[way] % stretched == 0) seconds = 1e6;
        rt_two_ways_took(&t, seconds);
    }
    if (s != sh.warmup + sh.steps) fail("the steps of a trial", (long)s, sh.warmup + sh.steps);
    int kept = rt_two_ways_next(&t);
    for (int i = 0; i < 1000; i++) { /* decided: the same way whatever the steps take now */
        rt_two_ways_took(&t, i % 2 ? 1e-9 : 1e3);
        if (rt_two_ways_next(&t) != kept) fail("the way kept after the trial", !kept, kept);
    }
    return kept;
}

int main(void) {
    /* train.c's trials: the asks for the next batch, and the ranks' evictions */
    const shape shapes[] = {{64, 512, 8}, {8, 64, 4}};
    const struct {
        double usual, other;
        int stretched, kept;
    } cases[] = {
        {46e-6, 45.08e-6, 0, 1}, /* the other way 2% faster */
        {46e-6, 46.92e-6, 0, 0}, /* slower */
        {46e-6, 45.91e-6, 0, 0}, /* 0.2% faster: within the margin, the usual way */
        {46e-6, 46e-6, 0, 0},    /* the same */
        {46e-6, 45.08e-6, 4, 1}, /* a quarter of each way's steps interrupted */
        {46e-6, 46.92e-6, 3, 0}, /* a third */
        {120e-9, 117e-9, 0, 1},  /* steps of a tiny model: 2.5% faster */
        {2.2e-3, 2.0e-3, 0, 1},  /* W2's steps on 2 ranks: 9% faster */
    };
    int n = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++, n++) {
            int kept = trial(shapes[s], cases[i].usual, cases[i].other, cases[i].stretched);
            if (kept != cases[i].kept) fail("the way kept, case", (long)i, cases[i].kept);
        }
    if (failures) return 1;
    printf("ok %d\n", n);
    return 0;
}
