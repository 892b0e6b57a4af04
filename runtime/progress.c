/* progress.c: progress lines, the terminal bar and the --log file (see progress.h). */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "files.h"
#include "util.h"

#define PROGRESS_INTERVAL 0.1 /* seconds: at most ~10 lines (or redraws) a second */
#define BAR_WIDTH         24

struct rt_progress {
    const char *unit; /* "epoch" or "step" */
    int quiet, classify, validation, terminal;
    int bar_shown; /* the bar's line is on screen, not yet ended */
    FILE *log;
    const char *log_path;
    const nnrt_model *m;
    int grad_norms; /* --log-grad-norms: a column per param with a gradient */
    double start;
    /* One clock each: a bar redrawn a moment ago must not hide the epoch's line. */
    double last_line, last_bar;
};

static void write_header(rt_progress *p) {
    fprintf(p->log, "%s,loss,", p->unit);
    if (p->classify) fprintf(p->log, "accuracy,");
    if (p->validation) fprintf(p->log, p->classify ? "val_loss,val_accuracy," : "val_loss,");
    fprintf(p->log, strcmp(p->unit, "epoch") == 0 ? "lr,seconds,samples_per_second" : "lr,seconds");
    for (int32_t i = 0; p->grad_norms && i < p->m->n_params; i++)
        if (p->m->params[i].grad_offset >= 0)
            fprintf(p->log, ",grad_norm.%s", p->m->params[i].name);
    fputc('\n', p->log);
}

rt_progress *rt_progress_begin(const nnrt_model *m, const rt_options *o, int has_validation,
                               int resuming) {
    rt_progress *p = rt_alloc(sizeof *p);
    p->unit = m->n_inputs > 0 ? "epoch" : "step";
    p->quiet = o->quiet;
    p->classify = m->n_inputs > 0 && m->train.classification;
    p->validation = has_validation;
    p->terminal = !o->quiet && isatty(STDERR_FILENO);
    p->m = m;
    p->grad_norms = o->log_grad_norms;
    if (o->log) {
        struct stat st;
        int append = resuming && stat(o->log, &st) == 0 && st.st_size > 0;
        p->log_path = o->log;
        p->log = rt_output_open(o->log, append);
        if (!append) write_header(p);
        rt_output_check(p->log, p->log_path);
    }
    p->start = rt_now();
    p->last_line = p->last_bar = p->start - 2 * PROGRESS_INTERVAL;
    return p;
}

/* Written so far, and written whole: a failed write is fatal now, not a log cut short. */
static void flush_log(rt_progress *p) {
    if (!p->log) return;
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
    if (!p->terminal || total <= 1) return;
    double now = rt_now();
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

static void log_row(rt_progress *p, int64_t epoch, rt_metrics r, const rt_metrics *v, double lr,
                    double seconds, double rate, const double *grad_norms) {
    fprintf(p->log, "%lld,%.9g,", (long long)epoch, rt_mean_loss(r));
    if (p->classify) fprintf(p->log, "%.6f,", rt_accuracy(r));
    if (p->validation && v) {
        fprintf(p->log, "%.9g,", rt_mean_loss(*v));
        if (p->classify) fprintf(p->log, "%.6f,", rt_accuracy(*v));
    } else if (p->validation) {
        fprintf(p->log, p->classify ? ",," : ",");
    }
    fprintf(p->log, "%.9g,%.3f", lr, seconds);
    if (strcmp(p->unit, "epoch") == 0) fprintf(p->log, ",%.0f", rate);
    for (int32_t i = 0; p->grad_norms && grad_norms && i < p->m->n_params; i++)
        if (p->m->params[i].grad_offset >= 0) fprintf(p->log, ",%.9g", grad_norms[i]);
    fputc('\n', p->log);
}

void rt_progress_epoch(rt_progress *p, int64_t epoch, int64_t epochs, rt_metrics r,
                       const rt_metrics *validation, double lr, double epoch_seconds,
                       const double *grad_norms) {
    double now = rt_now(), seconds = now - p->start;
    double rate = epoch_seconds > 0 ? (double)r.samples / epoch_seconds : 0;
    int show = epoch == 1 || epoch == epochs || now - p->last_line >= PROGRESS_INTERVAL;
    if (p->log) {
        log_row(p, epoch, r, validation, lr, seconds, rate, grad_norms);
        rt_output_check(p->log, p->log_path);
        if (show) flush_log(p);
    }
    if (!show || p->quiet) return;
    p->last_line = now;
    if (p->bar_shown) fputs("\r", stderr);
    fprintf(stderr, "%s %lld/%lld  loss %.6g", p->unit, (long long)epoch, (long long)epochs,
            rt_mean_loss(r));
    if (p->classify) fprintf(stderr, "  accuracy %.4f", rt_accuracy(r));
    if (validation) {
        fprintf(stderr, "  val loss %.6g", rt_mean_loss(*validation));
        if (p->classify) fprintf(stderr, "  val accuracy %.4f", rt_accuracy(*validation));
    }
    fprintf(stderr, "  lr %.6g  %.2fs", lr, epoch_seconds);
    if (strcmp(p->unit, "epoch") == 0) fprintf(stderr, "  %.0f samples/s", rate);
    fputs(p->bar_shown ? "\033[K\n" : "\n", stderr);
    p->bar_shown = 0;
}

void rt_progress_end(rt_progress *p) {
    rt_progress_pause(p);
    if (p->log) rt_output_close(p->log, p->log_path);
    p->log = NULL;
}
