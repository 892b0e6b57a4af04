/* tick_clock_check.c: runtime/util.c's tick clock (util.h, rt_tick_clock) against rt_now().
 * Not a model. For 0.4 s it reads the tick clock, then rt_now(), then the tick clock again,
 * and steers it every 0.1 s as the progress does. Every rt_now() must lie between the two
 * tick reads around it (give or take SLACK: the two clocks are only steered together), and
 * no read may go back. Preemption between the reads only widens the interval, so the check
 * holds on a loaded machine. Prints
 *   counter C slope S reads N outside 0 back 0
 * runtime_tests.py's tick_clock checks the line, and that C is 1 exactly when the CPU says
 * its time-stamp counter is invariant (/proc/cpuinfo's constant_tsc and nonstop_tsc). */
#include <stdio.h>

#include "util.h"

#define SECONDS 0.4
#define SLACK   50e-6

int main(void) {
    rt_tick_clock c;
    rt_tick_clock_start(&c);
    double start = rt_now(), last_steer = start, prev = 0;
    long reads = 0, outside = 0, back = 0;
    for (;;) {
        double before = rt_tick_clock_read(&c), now = rt_now(), after = rt_tick_clock_read(&c);
        reads += 2;
        back += before < prev || after < before;
        prev = after;
        if (now < before - SLACK || now > after + SLACK) {
            if (outside++ < 5)
                fprintf(stderr, "rt_now() %.9f outside [%.9f, %.9f]\n", now, before, after);
        }
        if (now - last_steer >= 0.1) {
            double steered = rt_tick_clock_steer(&c);
            back += steered < prev;
            prev = steered;
            last_steer = now;
        }
        if (now - start >= SECONDS) break;
    }
    printf("counter %d slope %s reads %ld outside %ld back %ld\n", c.counter,
           c.seconds_per_tick > 0 ? "measured" : "none", reads, outside, back);
    return 0;
}
