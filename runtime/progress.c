/* progress.c: progress lines, the terminal bar and the --log file (see progress.h). */
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "numtext.h"
#include "util.h"

#define PROGRESS_INTERVAL 0.1 /* seconds: at most ~10 lines (or redraws) a second */
#define BAR_WIDTH         24
#define LOG_BUFFER        (64 << 10) /* bytes of rows the log holds before the file has them */
#define LOG_PAGE          4096       /* the log's writes end on a multiple of it (write_pending) */
#define MAX_TICK_STRIDE   (1 << 20)  /* bar ticks between two reads of the clock, at most */

/* The log's columns whose text is kept from one row to the next (numtext.h). */
enum memo_column {
    MEMO_LOSS,
    MEMO_ACCURACY,
    MEMO_VAL_LOSS,
    MEMO_VAL_ACCURACY,
    MEMO_LR,
    MEMO_SECONDS,
    N_MEMOS
};

struct rt_progress {
    const char *unit; /* "epoch" or "step" */
    int quiet, classify, validation, terminal;
    int bar_shown; /* the bar's line is on screen, not yet ended */
    FILE *log;
    const char *log_path;
    const nnrt_model *m;
    int grad_norms;    /* --log-grad-norms: a column per param with a gradient */
    int update_ratios; /* --log-update-ratios: a column per param with a gradient */
    double start;
    int per_epoch; /* the unit is the epoch (the log has samples_per_second) */
    /* One clock each: a bar redrawn a moment ago must not hide the epoch's line. */
    double last_line, last_bar;
    /* The bar reads the clock once every tick_stride ticks: a stride that doubles while
     * reads come much faster than the interval, and halves when they come slower. */
    int64_t tick_stride, ticks_left;
    double last_tick_clock;
    int64_t clock_reads;
    rt_tick_clock clock;        /* a one-step epoch reads it every few hundred nanoseconds */
    rt_text_memo memo[N_MEMOS]; /* the log's columns whose text often repeats */
    char *pending; /* rows not written to the file yet: LOG_BUFFER bytes, and a row's room */
    size_t pending_len, pending_cap;
    size_t row_max;  /* the most bytes a row of the log takes (longest_row) */
    uint64_t log_at; /* the file's length, where pending's first byte goes */
};

static double read_clock(rt_progress *p) {
    p->clock_reads++;
    return rt_tick_clock_read(&p->clock);
}

/* For a row that is also shown (and the log flushed), at most ten times a second: the tick
 * clock is steered then (util.h). */
static double read_and_steer_clock(rt_progress *p) {
    p->clock_reads++;
    return rt_tick_clock_steer(&p->clock);
}

double rt_progress_now(rt_progress *p) {
    return read_clock(p);
}

int64_t rt_progress_clock_reads(const rt_progress *p) {
    return p->clock_reads;
}

/* Rows of the log are written into the log's own buffer, `pending`, which goes to the file
 * when it is full and when the log is flushed: a row costs its digits and no call into stdio.
 * Should the process exit (an error) between two flushes, an exit handler hands the rows on,
 * as stdio does its own buffer's.
 *
 * A full buffer is written up to the last page boundary of the file and the rest kept: a
 * write that starts or ends inside a page has the kernel fill the rest of that page first,
 * and a one-step epoch's row is written every few hundred nanoseconds (writing 100 MB to
 * ext4 in pieces of 65500 bytes took twice the system time of pieces of 65536). The stream
 * is unbuffered (rt_progress_begin), so that each fwrite is one write of these bytes. */
static rt_progress *log_at_exit;

static void write_pending(rt_progress *p, int whole) {
    size_t n = p->pending_len;
    if (!whole) {
        uint64_t end = (p->log_at + n) / LOG_PAGE * LOG_PAGE;
        n = end > p->log_at ? (size_t)(end - p->log_at) : 0;
    }
    if (n > 0) fwrite(p->pending, 1, n, p->log);
    p->log_at += n;
    p->pending_len -= n;
    memmove(p->pending, p->pending + n, p->pending_len);
}

static void write_pending_at_exit(void) {
    if (log_at_exit) write_pending(log_at_exit, 1);
}

static void write_header(rt_progress *p) {
    fprintf(p->log, "%s,loss,", p->unit);
    if (p->classify) fprintf(p->log, "accuracy,");
    if (p->validation) fprintf(p->log, p->classify ? "val_loss,val_accuracy," : "val_loss,");
    fprintf(p->log, p->per_epoch ? "lr,seconds,samples_per_second" : "lr,seconds");
    for (int32_t i = 0; p->grad_norms && i < p->m->n_params; i++)
        if (p->m->params[i].grad_offset >= 0)
            fprintf(p->log, ",grad_norm.%s", p->m->params[i].name);
    for (int32_t i = 0; p->update_ratios && i < p->m->n_params; i++)
        if (p->m->params[i].grad_offset >= 0)
            fprintf(p->log, ",update_ratio.%s", p->m->params[i].name);
    fputc('\n', p->log);
}

/* The most bytes a row takes: each column's number (RT_NUMTEXT_MAX, room for the text
 * functions' whole-word stores included) and its separator. */
static size_t longest_row(const rt_progress *p) {
    size_t columns = 5 + 2 * (size_t)p->validation + (size_t)p->per_epoch;
    for (int32_t i = 0; i < p->m->n_params; i++)
        if (p->m->params[i].grad_offset >= 0)
            columns += (size_t)(p->grad_norms != 0) + (size_t)(p->update_ratios != 0);
    return columns * (RT_NUMTEXT_MAX + 1) + 1;
}

rt_progress *rt_progress_begin(const nnrt_model *m, const rt_options *o, int has_validation,
                               int resuming) {
    rt_progress *p = rt_alloc(sizeof *p);
    p->unit = m->n_inputs > 0 ? "epoch" : "step";
    p->per_epoch = m->n_inputs > 0;
    p->quiet = o->quiet;
    p->classify = m->n_inputs > 0 && m->train.classification;
    p->validation = has_validation;
    p->terminal = !o->quiet && isatty(STDERR_FILENO);
    p->m = m;
    p->grad_norms = o->log_grad_norms;
    p->update_ratios = o->log_update_ratios;
    if (o->log) {
        struct stat st;
        int append = resuming && stat(o->log, &st) == 0 && st.st_size > 0;
        p->log_path = o->log;
        p->log = rt_output_open(o->log, append);
        setvbuf(p->log, NULL, _IONBF, 0);
        if (!append) write_header(p);
        rt_output_check(p->log, p->log_path);
        off_t end = lseek(fileno(p->log), 0, SEEK_END); /* -1 for a pipe: no pages to keep to */
        p->log_at = end > 0 ? (uint64_t)end : 0;
        p->row_max = longest_row(p);
        p->pending_cap = LOG_BUFFER + p->row_max;
        p->pending = rt_alloc(p->pending_cap);
        static int handler_set;
        if (!handler_set) atexit(write_pending_at_exit);
        handler_set = 1;
        log_at_exit = p;
    }
    rt_tick_clock_start(&p->clock);
    p->start = read_clock(p);
    p->last_line = p->last_bar = p->start - 2 * PROGRESS_INTERVAL;
    p->tick_stride = p->ticks_left = 1;
    p->last_tick_clock = p->start;
    return p;
}

/* Written so far, and written whole: a failed write is fatal now, not a log cut short. */
static void flush_log(rt_progress *p) {
    if (!p->log) return;
    write_pending(p, 1);
    fflush(p->log);
    rt_output_check(p->log, p->log_path);
}

void rt_progress_pause(rt_progress *p) {
    if (p->bar_shown) fputs("\r\033[K", stderr);
    p->bar_shown = 0;
    flush_log(p);
}

void rt_progress_tick(rt_progress *p, int64_t epoch, int64_t epochs, int64_t done, int64_t total,
                      rt_metrics r) {
    if (!p->terminal || total <= 1 || --p->ticks_left > 0) return;
    double now = read_clock(p), since = now - p->last_tick_clock;
    if (since < PROGRESS_INTERVAL / 16 && p->tick_stride < MAX_TICK_STRIDE)
        p->tick_stride *= 2;
    else if (since > PROGRESS_INTERVAL / 4 && p->tick_stride > 1)
        p->tick_stride /= 2;
    p->ticks_left = p->tick_stride;
    p->last_tick_clock = now;
    if (now - p->last_bar < PROGRESS_INTERVAL) return;
    p->last_bar = now;
    char bar[BAR_WIDTH + 1];
    int filled = (int)(BAR_WIDTH * done / total);
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    fprintf(stderr, "\r%s %lld/%lld [%s] %3d%%  loss %.6g", p->unit, (long long)epoch,
            (long long)epochs, bar, (int)(100 * done / total), rt_mean_loss(r));
    if (p->classify) fprintf(stderr, "  accuracy %.4f", rt_accuracy(r));
    fputs("\033[K", stderr);
    fflush(stderr);
    p->bar_shown = 1;
}

/* A row is written through a cursor, its room made sure of once: the text functions are
 * calls the compiler cannot see into, so a length kept in *p rather than in a register was
 * loaded, checked against the buffer and stored again around each of them. */

/* "%.9g" and the separator after it (sep 0: none); memo NULL: none. */
static char *put_g9(char *at, double v, rt_text_memo *memo, char sep) {
    at += memo ? rt_text_g9_memo(at, v, memo) : rt_text_g9(at, v);
    *at = sep;
    return at + (sep != 0);
}

static char *put_fixed(char *at, double v, int places, rt_text_memo *memo, char sep) {
    at += memo ? rt_text_fixed_memo(at, v, places, memo) : rt_text_fixed(at, v, places);
    *at = sep;
    return at + (sep != 0);
}

/* ",v" for each param with a gradient (values NULL: none). */
static char *put_per_param(const rt_progress *p, char *at, const double *values) {
    for (int32_t i = 0; values && i < p->m->n_params; i++)
        if (p->m->params[i].grad_offset >= 0) {
            *at++ = ',';
            at = put_g9(at, values[i], NULL, 0);
        }
    return at;
}

/* The same text as fprintf(log, "%lld,%.9g,%.6f,...") would write, at a fraction of its cost
 * (numtext.h): a tiny model writes a row every step. Write errors are checked when the log is
 * flushed (flush_log), a tenth of a second apart at most. */
static void log_row(rt_progress *p, int64_t epoch, rt_metrics r, const rt_metrics *v, double lr,
                    double seconds, double rate, const double *grad_norms,
                    const double *update_ratios) {
    if (p->pending_len + p->row_max > p->pending_cap) write_pending(p, 0);
    rt_text_memo *memo = p->memo;
    char *start = p->pending + p->pending_len, *at = start;
    at += rt_text_int(at, epoch);
    *at++ = ',';
    at = put_g9(at, rt_mean_loss(r), &memo[MEMO_LOSS], ',');
    if (p->classify) at = put_fixed(at, rt_accuracy(r), 6, &memo[MEMO_ACCURACY], ',');
    if (p->validation && v) {
        at = put_g9(at, rt_mean_loss(*v), &memo[MEMO_VAL_LOSS], ',');
        if (p->classify) at = put_fixed(at, rt_accuracy(*v), 6, &memo[MEMO_VAL_ACCURACY], ',');
    } else if (p->validation) {
        *at++ = ',';
        if (p->classify) *at++ = ',';
    }
    at = put_g9(at, lr, &memo[MEMO_LR], ',');
    at = put_fixed(at, seconds, 3, &memo[MEMO_SECONDS], 0);
    if (p->per_epoch) {
        *at++ = ',';
        at = put_fixed(at, rate, 0, NULL, 0);
    }
    at = put_per_param(p, at, p->grad_norms ? grad_norms : NULL);
    at = put_per_param(p, at, p->update_ratios ? update_ratios : NULL);
    *at++ = '\n';
    p->pending_len += (size_t)(at - start);
}

double rt_progress_epoch(rt_progress *p, int64_t epoch, int64_t epochs, rt_metrics r,
                         const rt_metrics *validation, double lr, double epoch_start,
                         const double *grad_norms, const double *update_ratios) {
    double now = read_clock(p);
    int show = epoch == 1 || epoch == epochs || now - p->last_line >= PROGRESS_INTERVAL;
    /* also with --quiet: the log is flushed as often */
    if (show) p->last_line = now = read_and_steer_clock(p);
    double seconds = now - p->start, epoch_seconds = now - epoch_start;
    double rate = epoch_seconds > 0 ? (double)r.samples / epoch_seconds : 0;
    if (p->log) {
        log_row(p, epoch, r, validation, lr, seconds, rate, grad_norms, update_ratios);
        if (show) flush_log(p);
    }
    if (!show || p->quiet) return now;
    if (p->bar_shown) fputs("\r", stderr);
    fprintf(stderr, "%s %lld/%lld  loss %.6g", p->unit, (long long)epoch, (long long)epochs,
            rt_mean_loss(r));
    if (p->classify) fprintf(stderr, "  accuracy %.4f", rt_accuracy(r));
    if (validation) {
        fprintf(stderr, "  val loss %.6g", rt_mean_loss(*validation));
        if (p->classify) fprintf(stderr, "  val accuracy %.4f", rt_accuracy(*validation));
    }
    fprintf(stderr, "  lr %.6g  %.2fs", lr, epoch_seconds);
    if (p->per_epoch) fprintf(stderr, "  %.0f samples/s", rate);
    fputs(p->bar_shown ? "\033[K\n" : "\n", stderr);
    p->bar_shown = 0;
    return now;
}

void rt_progress_end(rt_progress *p) {
    rt_progress_pause(p);
    if (p->log) rt_output_close(p->log, p->log_path);
    p->log = NULL;
    if (log_at_exit == p) log_at_exit = NULL;
    rt_free(p->pending);
    p->pending = NULL;
}
