/* plot.h: train --plot FILE.svg: the loss (and accuracy) curves of training and validation,
 * one panel each, as a self-contained SVG (no scripts, fonts or files it refers to). */
#ifndef NNRT_PLOT_H
#define NNRT_PLOT_H

#include <stdint.h>

/* One row per epoch (step): these columns of the training history. */
enum { RT_HIST_LR, RT_HIST_LOSS, RT_HIST_ACC, RT_HIST_VAL_LOSS, RT_HIST_VAL_ACC, RT_HIST_COLS };

/* Writes the SVG atomically. rows[e * RT_HIST_COLS + c]; NaN marks a value not measured
 * (no validation rows). unit: "epoch" or "step". */
void rt_plot_write(const char *path, const char *title, const char *unit, const double *rows,
                   int64_t n, int classify);

#endif
