/* plot.c: the --plot SVG (see plot.h). Each panel maps epochs to x and the values to y
 * with "nice" axis ticks (1, 2 or 5 times a power of ten), draws the training curve solid
 * and the validation curve dashed, and labels both in a legend. */
#include "plot.h"

#include <math.h>
#include <stdio.h>

#include "files.h"

#define PANEL_W       480
#define PANEL_H       320
#define MARGIN_L      64
#define MARGIN_R      16
#define MARGIN_T      36
#define MARGIN_B      44
#define NORM_LEGEND_W 160 /* right of the gradient norms' panel: the params' names */

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

/* y ticks as numbers, or (log_y) as the powers of ten they are the exponents of. */
static void draw_axes(const panel *p, const char *title, const char *unit, int log_y) {
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
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%s%g</text>\n",
                left - 6, py(p, y) + 4, log_y ? "1e" : "", fabs(y) < p->ya.step / 1e6 ? 0 : y);
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
    draw_axes(&p, title, unit, 0);
    draw_curve(&p, rows, n, c, "#1f77b4", 0);
    if (with_validation) draw_curve(&p, rows, n, c_val, "#ff7f0e", 1);
    legend(&p, with_validation, accuracy);
}

/* ---- gradient norms (and update ratios): one curve per param, log10 of the value on y, so
 * that norms that vanish (1e-9 in the first layers, 1e-1 in the last) all show ---- */

#define NORM_LEGEND_MAX 12 /* params named in the legend; the rest are counted */

static const char *const series_colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                            "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
#define N_SERIES_COLORS ((int)(sizeof series_colors / sizeof *series_colors))

static double norm_at(const rt_plot_norms *g, int64_t r, int s) {
    double v = g->rows[r * (1 + g->n_series) + 1 + s];
    return v > 0 && isfinite(v) ? log10(v) : NAN;
}

/* A param's name as SVG text: names are the model's identifiers, but escape anyway. */
static void plot_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else
            fputc(*s, f);
    }
}

static void norms_legend(const panel *p, const rt_plot_norms *g) {
    double x = px(p, p->xa.hi) + 8, y0 = p->y0 + MARGIN_T + 4;
    for (int s = 0; s < g->n_series && s < NORM_LEGEND_MAX; s++) {
        double y = y0 + 14.0 * s;
        fprintf(p->f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"2\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">",
                x, y, x + 18, y, series_colors[s % N_SERIES_COLORS], x + 22, y + 4);
        plot_text(p->f, g->names[s]);
        fprintf(p->f, "</text>\n");
    }
    if (g->n_series > NORM_LEGEND_MAX)
        fprintf(p->f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">and %d more</text>\n", x,
                y0 + 14.0 * NORM_LEGEND_MAX + 4, g->n_series - NORM_LEGEND_MAX);
}

static void draw_norms(FILE *f, double x0, const char *unit, const rt_plot_norms *g) {
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t r = 0; r < g->n; r++)
        for (int s = 0; s < g->n_series; s++) {
            double v = norm_at(g, r, s);
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
    if (!isfinite(lo)) lo = -1, hi = 0;
    axis ya = {floor(lo), ceil(hi) > floor(lo) ? ceil(hi) : floor(lo) + 1, 1};
    while ((ya.hi - ya.lo) / ya.step > 8) ya.step *= 2;
    ya.hi = ya.lo + ceil((ya.hi - ya.lo) / ya.step) * ya.step;
    double last = g->n > 0 ? g->rows[(g->n - 1) * (1 + g->n_series)] : 1;
    panel p = {f, x0, 0, nice_axis(1, last > 1 ? last : 2), ya};
    draw_axes(&p, g->title, unit, 1);
    for (int s = 0; s < g->n_series; s++) {
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"",
                series_colors[s % N_SERIES_COLORS]);
        for (int64_t r = 0; r < g->n; r++) {
            double v = norm_at(g, r, s), x = g->rows[r * (1 + g->n_series)];
            if (isfinite(v)) fprintf(f, "%.1f,%.1f ", px(&p, x), py(&p, v));
        }
        fprintf(f, "\"/>\n");
    }
    norms_legend(&p, g);
}

void rt_plot_write(const char *path, const char *title, const char *unit, const double *rows,
                   int64_t n, int classify, const rt_plot_norms *norms, int n_norms) {
    rt_atomic_file af = rt_atomic_open(path);
    FILE *f = af.f;
    int panels = 1 + (classify != 0);
    int width = panels * PANEL_W + n_norms * (PANEL_W + NORM_LEGEND_W);
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
    for (int k = 0; k < n_norms; k++)
        draw_norms(f, panels * PANEL_W + k * (PANEL_W + NORM_LEGEND_W), unit, &norms[k]);
    fprintf(f, "</svg>\n");
    rt_atomic_commit(&af);
}
