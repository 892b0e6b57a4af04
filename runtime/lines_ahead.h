/* lines_ahead.h: the next batch's rows, asked for a few cache lines at a time from inside a
 * step's products rather than all at once before it.
 *
 * Asking for a batch's rows is cheap only while the core has room for the misses in flight:
 * a burst of 400-odd prefetches (W1's 32 digits, their labels) stalls on that room until the
 * lines arrive, 2% of W1's training loop on a Zen 4 (perf). Queued instead, the first layer's
 * update product (Xᵀ·dZ, in_place_gemm.c) asks for two or so lines before each of its tiles,
 * where the misses hide behind the multiply-adds; what is left when the step returns is asked
 * for then. W1's loop: 2% more samples a second (bench/README.md).
 *
 * One queue a thread. A thread whose products never asked (a model without those kernels)
 * keeps asking all at once before its step, where the lines have the whole step to arrive. */
#ifndef NNRT_LINES_AHEAD_H
#define NNRT_LINES_AHEAD_H

#include <stddef.h>
#include <stdint.h>

/* Queues the lines of rows[0..count) of a table of row_bytes a row at base (up to
 * RT_LINES_AHEAD_PARTS tables between two rt_lines_ahead_rest), or, in a thread whose
 * products have not asked for queued lines, asks for them now. rows must stay unchanged until
 * rt_lines_ahead_rest. */
#define RT_LINES_AHEAD_PARTS 2
void rt_lines_ahead_queue(const void *base, size_t row_bytes, const int64_t *rows, int64_t count);

/* Asks for the lines of rows[0..count) of a table of row_bytes a row at base, now. */
void rt_lines_ask_now(const void *base, size_t row_bytes, const int64_t *rows, int64_t count);

/* Spreads the queued lines over the next `points` calls of rt_lines_ahead_ask, at least
 * RT_LINES_AHEAD_MIN a call: a product calls it with the number of its tiles. */
#define RT_LINES_AHEAD_MIN 2
void rt_lines_ahead_pace(int64_t points);

/* Asks for the next few queued lines; a product calls it between its tiles. */
void rt_lines_ahead_ask(void);

/* Asks for every line still queued: after the step, before anything may change the rows. */
void rt_lines_ahead_rest(void);

/* Calls seen(line) for each line this thread asks for from a queue (NULL: none): a test's
 * view of what would be asked, which a prefetch does not show. */
void rt_lines_ahead_watch(void (*seen)(const void *line));

#endif
