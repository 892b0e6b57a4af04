/* plot.h: train --plot FILE.svg: the loss (and accuracy) curves of training and validation,
 * one panel each, as a self-contained SVG (no scripts, fonts or files it refers to); and
 * search --plot FILE.svg: the trials' metric against each setting searched. */
#ifndef NNRT_PLOT_H
#define NNRT_PLOT_H

#include <stdint.h>

/* The training history: a row per epoch (step) with these columns; RT_HIST_EPOCH is the
 * epoch the row is of (1, 2, ...). A history keeps at most RT_HIST_MAX_ROWS rows: when it is
 * full, every other row of it is dropped (the first kept), so a long run keeps its whole span
 * in bounded memory, densest near the end. */
enum {
    RT_HIST_LR,
    RT_HIST_LOSS,
    RT_HIST_ACC,
    RT_HIST_VAL_LOSS,
    RT_HIST_VAL_ACC,
    RT_HIST_EPOCH,
    RT_HIST_COLS
};
#define RT_HIST_MAX_ROWS 65536

/* A panel of a value per param and epoch on a log scale: train --log-grad-norms (each
 * param's gradient norm) and --log-update-ratios (||update|| / ||weights||). Rows of 1 +
 * n_series columns (the epoch, then the values; NaN: not measured), at most RT_NORM_MAX_ROWS
 * rows, thinned as the history is. */
#define RT_NORM_MAX_ROWS   4096
#define RT_PLOT_MAX_PANELS 2 /* of these */

typedef struct rt_plot_norms {
    const char *title; /* "gradient norm (log scale)" */
    int n_series;
    const char *const *names; /* the params' */
    const double *rows;
    int64_t n;
} rt_plot_norms;

/* The path gradient descent took over the loss, for a model without inputs whose params hold
 * one or two numbers in all: the loss drawn as a curve over the one (1D) or as contour lines
 * over the two (2D), around the path, with the path's points on it and its start and end
 * marked. */
typedef struct rt_plot_descent {
    int dims;             /* 1 or 2 */
    const char *names[2]; /* of the axes: "x", "y", or "w[0]", "w[1]" */
    const double *points; /* n rows of dims values: the start, then after each step */
    int64_t n;            /* at least 1 */
    /* The loss at a point (dims values); may return NaN or inf, which are left out. */
    double (*loss_at)(void *arg, const double *point);
    void *arg;
} rt_plot_descent;

/* What the SVG shows. rows[r * RT_HIST_COLS + c], epochs increasing; NaN marks a value not
 * measured (no validation rows). unit: "epoch" or "step". norms: n_norms panels (at most
 * RT_PLOT_MAX_PANELS) of a value per param on a log scale, after the loss and accuracy.
 * descent: NULL, or a panel of the descent path after the loss. */
typedef struct rt_plot {
    const char *title, *unit;
    const double *rows;
    int64_t n;
    int classify;
    const rt_plot_norms *norms;
    int n_norms;
    const rt_plot_descent *descent;
} rt_plot;

/* Writes the SVG atomically. */
void rt_plot_write(const char *path, const rt_plot *plot);

/* search --plot: a panel per searched setting, a dot per trial, its metric (y) against the
 * setting's value (x). */
typedef struct rt_plot_setting {
    const char *name; /* the option's, as in rt_options ("weight_decay") */
    double lo, hi;    /* a range's ends (the x axis spans them) */
    int log;          /* a :log range: x on a log scale */
    int n_choices;    /* a list: x is a choice's index, the ticks its names; 0: a range */
    const char *const *choices;
    const double *x; /* per trial: the value, or the choice's index */
} rt_plot_setting;

/* Writes the SVG atomically. y: each trial's metric, named `metric` ("val loss"); trials
 * whose y is not finite (diverged) are left out and counted in the panel's title; trial
 * `best` is ringed and labelled. y is on a log scale when it is positive and spans a
 * factor of 100 or more. */
void rt_plot_trials(const char *path, const char *title, const char *metric,
                    const rt_plot_setting *settings, int n_settings, const double *y, int64_t n,
                    int64_t best);

#endif
