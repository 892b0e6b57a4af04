/* lines_ahead_check.c: runtime/lines_ahead.c's queue of the next batch's lines. Not a model.
 * Watches (rt_lines_ahead_watch) which lines a thread asks for and when: every line of every
 * queued row, its first and last byte's included, none outside them, in the rows' order; a
 * paced ask takes its share and no more; what is left goes at rt_lines_ahead_rest; a thread
 * whose products never asked, and a table past RT_LINES_AHEAD_PARTS, ask at once. Rows start
 * at every offset in a line and cross line boundaries. Prints "ok N" (N lines seen in all),
 * or what differs and exits 1. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "lines_ahead.h"
#include "util.h"

#define MAX_SEEN 100000

static const void *seen[MAX_SEEN];
static int n_seen, failures;
static long total_seen;

static void see(const void *line) {
    if (n_seen < MAX_SEEN) seen[n_seen++] = line;
    total_seen++;
}

static void fail(const char *what, long got, long want) {
    if (failures++ < 10) fprintf(stderr, "%s: %ld, expected %ld\n", what, got, want);
}

/* The lines rows[0..count) of row_bytes at base cover, in order, into want; returns how many. */
static int lines_of(const char *base, size_t row_bytes, const int64_t *rows, int64_t count,
                    const void **want) {
    int n = 0;
    for (int64_t b = 0; b < count && row_bytes > 0; b++) {
        uintptr_t first = (uintptr_t)(base + rows[b] * row_bytes);
        uintptr_t last = first + row_bytes - 1;
        for (uintptr_t l = first / RT_CACHE_LINE; l <= last / RT_CACHE_LINE; l++)
            want[n++] = (const void *)(l * RT_CACHE_LINE);
    }
    return n;
}

static void expect_seen(const char *what, const void **want, int n_want, int from) {
    if (n_seen - from != n_want) fail(what, n_seen - from, n_want);
    for (int i = 0; i < n_want && from + i < n_seen; i++)
        if (seen[from + i] != want[i]) {
            fail(what, (long)i, -1);
            break;
        }
}

int main(void) {
    static char table[64 * 1024 + 256], targets[4096 + 64];
    static const void *want[MAX_SEEN];
    const int64_t rows[] = {5, 0, 17, 5, 31, 1};
    const int64_t n_rows = 6;
    rt_lines_ahead_watch(see);

    /* Before the thread's products ever asked: all at once, at the queueing. */
    int n_want = lines_of(table + 3, 784, rows, n_rows, want);
    rt_lines_ahead_queue(table + 3, 784, rows, n_rows);
    expect_seen("asked at once", want, n_want, 0);
    rt_lines_ahead_ask(); /* the thread's products ask from now on (nothing is queued) */
    if (n_seen != n_want) fail("an ask of an empty queue", n_seen, n_want);

    for (size_t offset = 0; offset < 2 * RT_CACHE_LINE; offset += 7)
        for (int points = 1; points <= 40; points += 13) {
            size_t row_bytes = 784 + offset % 5, target_bytes = 40;
            n_seen = 0;
            int n_inputs = lines_of(table + offset, row_bytes, rows, n_rows, want);
            n_want = n_inputs +
                     lines_of(targets + offset % 64, target_bytes, rows, n_rows, want + n_inputs);
            rt_lines_ahead_queue(table + offset, row_bytes, rows, n_rows);
            rt_lines_ahead_queue(targets + offset % 64, target_bytes, rows, n_rows);
            if (n_seen != 0) fail("asked at the queueing", n_seen, 0);
            rt_lines_ahead_pace(points);
            /* each ask takes its share, at least RT_LINES_AHEAD_MIN, until none are left */
            int share = -1;
            for (int p = 0; p < points && n_seen < n_want; p++) {
                int before = n_seen;
                rt_lines_ahead_ask();
                int took = n_seen - before;
                if (share < 0) share = took;
                if (took != share && n_seen != n_want) fail("a paced ask", took, share);
            }
            if (share < RT_LINES_AHEAD_MIN) fail("the share of an ask", share, RT_LINES_AHEAD_MIN);
            if ((long)share * points < n_want)
                fail("the pace over the points", share * points, n_want);
            rt_lines_ahead_rest();
            expect_seen("the queue's lines", want, n_want, 0);

            /* Paced again halfway (a second product): shares of what is left, whose count
             * may run over by a line a row (the queue counts a row's lines rounded up). */
            n_seen = 0;
            rt_lines_ahead_queue(table + offset, row_bytes, rows, n_rows);
            rt_lines_ahead_queue(targets + offset % 64, target_bytes, rows, n_rows);
            rt_lines_ahead_pace(2);
            rt_lines_ahead_ask();
            int left = n_want - n_seen, more = 2 * (int)n_rows;
            rt_lines_ahead_pace(4);
            int before = n_seen;
            rt_lines_ahead_ask();
            if (n_seen - before > (left + more + 3) / 4 || n_seen - before < (left + 3) / 4)
                fail("a share of what is left", n_seen - before, (left + 3) / 4);
            rt_lines_ahead_rest();
            expect_seen("the queue's lines", want, n_want, 0);
            rt_lines_ahead_ask();
            rt_lines_ahead_rest();
            if (n_seen != n_want) fail("lines after the rest", n_seen, n_want);
        }

    /* Only RT_LINES_AHEAD_PARTS tables wait; another is asked for at once, the queue kept. */
    n_seen = 0;
    for (int t = 0; t < RT_LINES_AHEAD_PARTS; t++)
        rt_lines_ahead_queue(table + 64 * t, 100, rows, n_rows);
    n_want = lines_of(targets, 40, rows, 2, want);
    rt_lines_ahead_queue(targets, 40, rows, 2);
    expect_seen("a table past the queue's", want, n_want, 0);
    int extra = n_seen;
    n_want = 0;
    for (int t = 0; t < RT_LINES_AHEAD_PARTS; t++)
        n_want += lines_of(table + 64 * t, 100, rows, n_rows, want + n_want);
    rt_lines_ahead_rest();
    expect_seen("the tables kept", want, n_want, extra);

    /* Nothing to ask: no rows, rows of no bytes. */
    n_seen = 0;
    rt_lines_ahead_queue(table, 784, rows, 0);
    rt_lines_ahead_queue(table, 0, rows, n_rows);
    rt_lines_ahead_pace(0);
    rt_lines_ahead_ask();
    rt_lines_ahead_rest();
    if (n_seen != 0) fail("lines of nothing", n_seen, 0);

    if (failures) return 1;
    printf("ok %ld\n", total_seen);
    return 0;
}
