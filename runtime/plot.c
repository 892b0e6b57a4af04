/* plot.c: the --plot SVG (see plot.h). Each panel maps epochs to x and the values to y
 * with "nice" axis ticks (1, 2 or 5 times a power of ten), draws the training curve solid
 * and the validation curve dashed, and labels both in a legend. */
#include "plot.h"

#include <math.h>
#include <stdio.h>

#include "files.h"

#define PANEL_W  480
#define PANEL_H  320
#define MARGIN_L 64
#define MARGIN_R 16
#define MARGIN_T 36
#define MARGIN_B 44

typedef struct axis {
    double lo, hi, step;
} axis;

/* A range with round ticks covering [lo, hi]. */
static axis nice_axis(double lo, double hi) {
    if (!(hi > lo)) {
        double pad = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1;
        lo -= pad;
        hi += pad;
    }
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw))), step = mag;
    if (raw / mag > 5)
        step = 10 * mag;
    else if (raw / mag > 2)
        step = 5 * mag;
    else if (raw / mag > 1)
        step = 2 * mag;
    axis a = {floor(lo / step) * step, ceil(hi / step) * step, step};
    return a;
}

typedef struct panel {
    FILE *f;
    double x0, y0; /* top left of the panel */
    axis xa, ya;
} panel;

static double px(const panel *p, double x) {
    double w = PANEL_W - MARGIN_L - MARGIN_R;
    return p->x0 + MARGIN_L + w * (x - p->xa.lo) / (p->xa.hi - p->xa.lo);
}
static double py(const panel *p, double y) {
    double h = PANEL_H - MARGIN_T - MARGIN_B;
    return p->y0 + MARGIN_T + h * (1 - (y - p->ya.lo) / (p->ya.hi - p->ya.lo));
}

static void draw_axes(const panel *p, const char *title, const char *unit) {
    FILE *f = p->f;
    double left = px(p, p->xa.lo), right = px(p, p->xa.hi);
    double top = py(p, p->ya.hi), bottom = py(p, p->ya.lo);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n",
            (left + right) / 2, p->y0 + 22, title);
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#444\"/>\n",
            left, top, right - left, bottom - top);
    for (double y = p->ya.lo; y <= p->ya.hi + p->ya.step / 2; y += p->ya.step) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                left, py(p, y), right, py(p, y));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%g</text>\n",
                left - 6, py(p, y) + 4, fabs(y) < p->ya.step / 1e6 ? 0 : y);
    }
    for (double x = p->xa.lo; x <= p->xa.hi + p->xa.step / 2; x += p->xa.step)
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">%g</text>\n",
                px(p, x), bottom + 16, x);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n",
            (left + right) / 2, bottom + 34, unit);
}

/* Column c as a polyline; NaNs break nothing, they are left out. */
static void draw_curve(const panel *p, const double *rows, int64_t n, int c, const char *color,
                       int dashed) {
    fprintf(p->f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", color,
            dashed ? " stroke-dasharray=\"6 4\"" : "");
    for (int64_t e = 0; e < n; e++) {
        double v = rows[e * RT_HIST_COLS + c];
        double x = rows[e * RT_HIST_COLS + RT_HIST_EPOCH];
        if (isfinite(v)) fprintf(p->f, "%.1f,%.1f ", px(p, x), py(p, v));
    }
    fprintf(p->f, "\"/>\n");
}

/* Top right for a loss (curves fall away from it), bottom right for an accuracy. */
static void legend(const panel *p, int with_validation, int at_bottom) {
    double x = px(p, p->xa.hi) - 130, y = p->y0 + MARGIN_T + 14;
    if (at_bottom) y = py(p, p->ya.lo) - (with_validation ? 30 : 14);
    fprintf(p->f,
            "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#1f77b4\" "
            "stroke-width=\"2\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">training</text>\n",
            x, y, x + 24, y, x + 30, y + 4);
    if (with_validation)
        fprintf(p->f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ff7f0e\" "
                "stroke-width=\"2\" stroke-dasharray=\"6 4\"/><text x=\"%.1f\" y=\"%.1f\" "
                "font-size=\"11\">validation</text>\n",
                x, y + 16, x + 24, y + 16, x + 30, y + 20);
}

static void range_of(const double *rows, int64_t n, int c1, int c2, double *lo, double *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int64_t e = 0; e < n; e++)
        for (int c = c1; c <= c2; c += c2 - c1 ? c2 - c1 : 1) {
            double v = rows[e * RT_HIST_COLS + c];
            if (!isfinite(v)) continue;
            if (v < *lo) *lo = v;
            if (v > *hi) *hi = v;
        }
    if (!isfinite(*lo)) *lo = 0, *hi = 1;
}

static void draw_panel(FILE *f, double x0, const char *title, const char *unit, const double *rows,
                       int64_t n, int c, int c_val, int accuracy) {
    double last = n > 0 ? rows[(n - 1) * RT_HIST_COLS + RT_HIST_EPOCH] : 1;
    panel p = {f, x0, 0, nice_axis(1, last > 1 ? last : 2), {0, 1, 0.2}};
    if (!accuracy) {
        double lo, hi;
        range_of(rows, n, c, c_val, &lo, &hi);
        p.ya = nice_axis(lo, hi);
    }
    int with_validation = 0;
    for (int64_t e = 0; e < n; e++) with_validation |= isfinite(rows[e * RT_HIST_COLS + c_val]);
    draw_axes(&p, title, unit);
    draw_curve(&p, rows, n, c, "#1f77b4", 0);
    if (with_validation) draw_curve(&p, rows, n, c_val, "#ff7f0e", 1);
    legend(&p, with_validation, accuracy);
}

void rt_plot_write(const char *path, const char *title, const char *unit, const double *rows,
                   int64_t n, int classify) {
    rt_atomic_file af = rt_atomic_open(path);
    FILE *f = af.f;
    int width = classify ? 2 * PANEL_W : PANEL_W;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n",
            width, PANEL_H, width, PANEL_H);
    fprintf(f, "<title>%s</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            title);
    draw_panel(f, 0, "loss", unit, rows, n, RT_HIST_LOSS, RT_HIST_VAL_LOSS, 0);
    if (classify)
        draw_panel(f, PANEL_W, "accuracy", unit, rows, n, RT_HIST_ACC, RT_HIST_VAL_ACC, 1);
    fprintf(f, "</svg>\n");
    rt_atomic_commit(&af);
}
