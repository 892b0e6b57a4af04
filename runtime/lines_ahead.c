/* lines_ahead.c: a thread's queue of cache lines to ask for (lines_ahead.h). */
#include "lines_ahead.h"

#include "util.h"

typedef struct rows_table {
    const char *base;
    size_t row_bytes;
    const int64_t *rows;
    int64_t count;
} rows_table;

/* The queue: tables part[0..n_parts), read from (at_part, at_row, line .. last). */
typedef struct lines_queue {
    rows_table part[RT_LINES_AHEAD_PARTS];
    int n_parts, at_part;
    int64_t at_row;
    uintptr_t line, last; /* the row's next line to ask for and its last; line > last: none */
    int64_t lines_left;   /* queued and not yet asked for, about (a row's lines rounded up) */
    int64_t per_ask;      /* lines a call of rt_lines_ahead_ask */
    int products_ask;     /* whether this thread's products have called rt_lines_ahead_ask */
} lines_queue;

static _Thread_local lines_queue queue = {.line = 1, .per_ask = RT_LINES_AHEAD_MIN};
static _Thread_local void (*watch)(const void *line);

/* Moves the cursor to the next row holding lines (line > last once the queue is empty). */
static void next_row(lines_queue *q) {
    while (q->at_part < q->n_parts) {
        const rows_table *t = &q->part[q->at_part];
        if (q->at_row < t->count && t->row_bytes > 0) {
            uintptr_t p = (uintptr_t)(t->base + (size_t)t->rows[q->at_row++] * t->row_bytes);
            q->line = p & ~(uintptr_t)(RT_CACHE_LINE - 1);
            q->last = (p + t->row_bytes - 1) & ~(uintptr_t)(RT_CACHE_LINE - 1);
            return;
        }
        q->at_part++;
        q->at_row = 0;
    }
    q->n_parts = q->at_part = 0;
    q->line = 1;
    q->last = 0;
    q->lines_left = 0;
}

static void ask(lines_queue *q, int64_t n) {
    while (n > 0) {
        if (q->line > q->last) {
            next_row(q);
            if (q->line > q->last) return;
        }
        rt_prefetch_line((const char *)q->line);
        if (watch) watch((const void *)q->line);
        q->line += RT_CACHE_LINE;
        q->lines_left--;
        n--;
    }
}

void rt_lines_ask_now(const void *base, size_t row_bytes, const int64_t *rows, int64_t count) {
    /* a queue of its own, asked for at once, leaves the thread's queue as it is */
    lines_queue now = {.part = {{base, row_bytes, rows, count}}, .n_parts = 1, .line = 1};
    if (count > 0) ask(&now, INT64_MAX);
}

void rt_lines_ahead_queue(const void *base, size_t row_bytes, const int64_t *rows, int64_t count) {
    lines_queue *q = &queue;
    if (count <= 0) return;
    if (!q->products_ask || q->n_parts == RT_LINES_AHEAD_PARTS) {
        rt_lines_ask_now(base, row_bytes, rows, count);
        return;
    }
    q->part[q->n_parts++] = (rows_table){base, row_bytes, rows, count};
    q->lines_left += count * (int64_t)((row_bytes + RT_CACHE_LINE - 1) / RT_CACHE_LINE + 1);
}

void rt_lines_ahead_pace(int64_t points) {
    lines_queue *q = &queue;
    int64_t per = points > 0 ? (q->lines_left + points - 1) / points : q->lines_left;
    q->per_ask = per > RT_LINES_AHEAD_MIN ? per : RT_LINES_AHEAD_MIN;
}

void rt_lines_ahead_ask(void) {
    lines_queue *q = &queue;
    q->products_ask = 1;
    ask(q, q->per_ask);
}

void rt_lines_ahead_rest(void) {
    ask(&queue, INT64_MAX);
}

void rt_lines_ahead_watch(void (*seen)(const void *line)) {
    watch = seen;
}
