/* progress_check.c: the work of runtime/progress.c, counted. Not a model: it drives the
 * progress of a classifier with validation rows directly, N_EPOCHS epochs, the first
 * TICKED_EPOCHS of them with N_TICKS bar ticks each, writing the log to argv[1] (about 200 KB:
 * the log's buffer is written whole and in part, up to a page boundary, several times), and
 * prints how often the clock was read:
 *   epochs E ticks T clock reads R
 * runtime_tests.py's progress_work runs it with stderr on a terminal (the bar on) and checks
 * R and every row of the log. The metrics of epoch e are fixed functions of e, so the test
 * knows each row's text (printf's formats). */
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "options.h"
#include "progress.h"

enum { N_EPOCHS = 3000, TICKED_EPOCHS = 300, N_TICKS = 20000, ROWS = 1000 };

static const nnrt_tensor inputs[] = {{.name = "x", .numel = 1, .varying = 1}};

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    nnrt_model m = {.name = "progress_check", .n_inputs = 1, .inputs = inputs};
    m.train.classification = 1;
    rt_options o;
    memset(&o, 0, sizeof o);
    o.log = argv[1];
    rt_progress *p = rt_progress_begin(&m, &o, 1, 0);
    double start = 0;
    for (int64_t e = 1; e <= N_EPOCHS; e++) {
        /* loss 1/e, accuracy e/(e+1) of the rows; validation 2/e and (e-1)/e */
        rt_metrics r = {ROWS / (double)e, (ROWS * e) / (e + 1), ROWS, ROWS};
        rt_metrics v = {2 * ROWS / (double)e, (ROWS * (e - 1)) / e, ROWS, ROWS};
        for (int64_t t = 1; e <= TICKED_EPOCHS && t <= N_TICKS; t++)
            rt_progress_tick(p, e, N_EPOCHS, t, N_TICKS, r);
        start = rt_progress_epoch(p, e, N_EPOCHS, r, &v, 0.25 / (double)e, start, NULL, NULL);
    }
    printf("epochs %d ticks %lld clock reads %lld\n", N_EPOCHS, (long long)TICKED_EPOCHS * N_TICKS,
           (long long)rt_progress_clock_reads(p));
    rt_progress_end(p);
    return 0;
}
