/* plot.c: the --plot SVG (see plot.h). Each panel maps epochs to x and the values to y
 * with "nice" axis ticks (1, 2 or 5 times a power of ten), draws the training curve solid
 * and the validation curve dashed, and labels both in a legend. */
#include "plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "files.h"
#include "util.h"

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

static void plot_text(FILE *f, const char *s);

/* How x ticks read: numbers, powers of ten (log: the values are the exponents), or names
 * (ticks at 0, 1, ...). */
typedef struct x_ticks {
    int log;
    const char *const *names;
    int n_names;
} x_ticks;

static void open_x_tick(const panel *p, double x, double bottom) {
    fprintf(p->f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">", px(p, x),
            bottom + 16);
}

static void draw_x_ticks(const panel *p, double bottom, const x_ticks *t) {
    for (int k = 0; t->names && k < t->n_names; k++) {
        open_x_tick(p, k, bottom);
        plot_text(p->f, t->names[k]);
        fprintf(p->f, "</text>\n");
    }
    if (t->names) return;
    for (double x = p->xa.lo; x <= p->xa.hi + p->xa.step / 2; x += p->xa.step) {
        open_x_tick(p, x, bottom);
        fprintf(p->f, "%s%g</text>\n", t->log ? "1e" : "", x);
    }
}

/* y ticks as numbers, or (log_y) as the powers of ten they are the exponents of. */
static void draw_axes_x(const panel *p, const char *title, const char *unit, int log_y,
                        const x_ticks *xt) {
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
    draw_x_ticks(p, bottom, xt);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n",
            (left + right) / 2, bottom + 34, unit);
}

/* ... with numbers on the x axis. */
static void draw_axes(const panel *p, const char *title, const char *unit, int log_y) {
    draw_axes_x(p, title, unit, log_y, &(x_ticks){0, NULL, 0});
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

/* ---- the descent path over the loss ---- */

#define CURVE_POINTS   201 /* of the 1D loss curve */
#define CONTOUR_GRID   61  /* points a side of the 2D grid */
#define CONTOUR_LEVELS 12

/* The range the function is drawn over: the path's, widened by half its span on each side
 * and by half its size, so that the hills beside the path show. */
static axis around(const double *points, int64_t n, int dims, int k) {
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double v = points[i * dims + k];
        if (!isfinite(v)) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    if (!isfinite(lo)) lo = -1, hi = 1;
    double size = fabs(lo) > fabs(hi) ? fabs(lo) : fabs(hi);
    double pad = 0.5 * (hi - lo) > 0.5 * size ? 0.5 * (hi - lo) : 0.5 * size;
    if (!(pad > 0)) pad = 1;
    return nice_axis(lo - pad, hi + pad);
}

/* n points (x, y pairs in xy) as a polyline in the panel's pixels, with the points' exact
 * values (every digit, as the trace writes them) in data-values; pairs with a NaN or inf are
 * left out of both. */
static void values_polyline(const panel *p, const char *class_name, const char *style,
                            const double *xy, int64_t n) {
    fprintf(p->f, "<polyline class=\"%s\" fill=\"none\" %s points=\"", class_name, style);
    const char *sep = "";
    for (int64_t i = 0; i < n; i++)
        if (isfinite(xy[2 * i]) && isfinite(xy[2 * i + 1])) {
            fprintf(p->f, "%s%.2f,%.2f", sep, px(p, xy[2 * i]), py(p, xy[2 * i + 1]));
            sep = " ";
        }
    fprintf(p->f, "\" data-values=\"");
    sep = "";
    for (int64_t i = 0; i < n; i++)
        if (isfinite(xy[2 * i]) && isfinite(xy[2 * i + 1])) {
            fprintf(p->f, "%s%.17g,%.17g", sep, xy[2 * i], xy[2 * i + 1]);
            sep = " ";
        }
    fprintf(p->f, "\"/>\n");
}

static void y_label(const panel *p, const char *label) {
    double x = p->x0 + 14, y = (py(p, p->ya.lo) + py(p, p->ya.hi)) / 2;
    fprintf(p->f,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\" "
            "transform=\"rotate(-90 %.1f %.1f)\">",
            x, y, x, y);
    plot_text(p->f, label);
    fprintf(p->f, "</text>\n");
}

/* The start (green) and the end (red) as circles in pixels, each with its values as a
 * tooltip and a label. */
static void path_marker(const panel *p, const char *which, const char *color, double x, double y,
                        double loss) {
    fprintf(p->f,
            "<circle class=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\" "
            "stroke=\"black\"><title>%s: %.17g, %.17g (loss %.17g)</title></circle>\n",
            which, px(p, x), py(p, y), color, which, x, y, loss);
    fprintf(p->f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">%s</text>\n", px(p, x) + 7,
            py(p, y) - 7, which);
}

/* The path's points as (value, loss) in 1D, (x, y) in 2D. */
static void draw_path(const panel *p, const rt_plot_descent *d, const double *losses) {
    double *xy = rt_alloc_array(2 * (size_t)d->n, sizeof *xy);
    for (int64_t i = 0; i < d->n; i++) {
        xy[2 * i] = d->points[i * d->dims];
        xy[2 * i + 1] = d->dims == 1 ? losses[i] : d->points[i * d->dims + 1];
    }
    values_polyline(p, "path", "stroke=\"#d62728\" stroke-width=\"2\"", xy, d->n);
    for (int end = 0; end < 2; end++) {
        int64_t i = end ? d->n - 1 : 0;
        if (isfinite(xy[2 * i]) && isfinite(xy[2 * i + 1]))
            path_marker(p, end ? "end" : "start", end ? "#d62728" : "#2ca02c", xy[2 * i],
                        xy[2 * i + 1], losses[i]);
    }
    rt_free(xy);
}

static void draw_curve_1d(panel *p, const rt_plot_descent *d, const double *losses) {
    double curve[CURVE_POINTS][2];
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < CURVE_POINTS; i++) {
        double x = p->xa.lo + (p->xa.hi - p->xa.lo) * i / (CURVE_POINTS - 1);
        curve[i][0] = x;
        curve[i][1] = d->loss_at(d->arg, &x);
    }
    for (int64_t i = 0; i < CURVE_POINTS + d->n; i++) {
        double v = i < CURVE_POINTS ? curve[i][1] : losses[i - CURVE_POINTS];
        if (!isfinite(v)) continue;
        if (v < lo) lo = v;
        if (v > hi) hi = v;
    }
    p->ya = isfinite(lo) ? nice_axis(lo, hi) : nice_axis(0, 1);
    draw_axes(p, "the loss, and the path of descent", d->names[0], 0);
    y_label(p, "loss");
    values_polyline(p, "function", "stroke=\"#1f77b4\" stroke-width=\"1.5\"", &curve[0][0],
                    CURVE_POINTS);
}

/* Level k of n, blue (low) to red (high). */
static void level_color(int k, int n, char *buf, size_t size) {
    double t = n > 1 ? (double)k / (n - 1) : 0;
    snprintf(buf, size, "#%02x%02x%02x", (int)(40 + 200 * t),
             (int)(90 + 60 * (1 - fabs(2 * t - 1))), (int)(240 - 200 * t));
}

/* Where the level crosses the edge from corner a to corner b, by linear interpolation. */
static void crossing(const double *a, const double *b, double level, double *out) {
    double t = (level - a[2]) / (b[2] - a[2]);
    out[0] = a[0] + t * (b[0] - a[0]);
    out[1] = a[1] + t * (b[1] - a[1]);
}

static void segment(const panel *p, const double *a, const double *b) {
    fprintf(p->f, "M%.1f %.1fL%.1f %.1f", px(p, a[0]), py(p, a[1]), px(p, b[0]), py(p, b[1]));
}

/* One cell of marching squares: corners (x, y, value) in the order bottom left, bottom right,
 * top right, top left; a segment for each pair of edges the level crosses (at a saddle, the
 * pairing the cell's mean picks). */
static void contour_cell(const panel *p, const double c[4][3], double level) {
    int above[4], n_above = 0;
    for (int k = 0; k < 4; k++) n_above += above[k] = c[k][2] > level;
    if (n_above == 0 || n_above == 4) return;
    double at[4][2]; /* edge k runs from corner k to corner k + 1 */
    int n = 0;
    for (int k = 0; k < 4; k++)
        if (above[k] != above[(k + 1) % 4]) crossing(c[k], c[(k + 1) % 4], level, at[n++]);
    if (n == 2) {
        segment(p, at[0], at[1]);
        return;
    }
    /* A saddle: all four edges crossed, at[k] on edge k. When the centre is on corner 0's
     * side, corners 0 and 2 are joined through it and the lines cut off corners 1 (edges 0,
     * 1) and 3 (edges 2, 3); otherwise they cut off corners 0 (edges 3, 0) and 2 (1, 2). */
    double mean = (c[0][2] + c[1][2] + c[2][2] + c[3][2]) / 4;
    int shift = (mean > level) == above[0] ? 0 : 1;
    for (int pair = 0; pair < 2; pair++) {
        int i = (2 * pair + shift) % 4, j = (2 * pair + shift + 1) % 4;
        segment(p, at[i], at[j]);
    }
}

/* The contour levels: the values at the (k + 1/2) / CONTOUR_LEVELS quantiles of the grid's
 * finite values, so that a valley far below the walls around it (Rosenbrock's) gets its
 * share of lines; levels that repeat are dropped. Returns their count. */
static int contour_levels(const double *grid, int64_t n, double *levels) {
    double *sorted = rt_alloc_array((size_t)n, sizeof *sorted);
    int64_t finite = 0;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(grid[i])) sorted[finite++] = grid[i];
    qsort(sorted, (size_t)finite, sizeof *sorted, rt_compare_doubles);
    int count = 0;
    for (int k = 0; finite > 0 && k < CONTOUR_LEVELS; k++) {
        double level = sorted[(int64_t)((k + 0.5) / CONTOUR_LEVELS * (double)finite)];
        if (count == 0 || level > levels[count - 1]) levels[count++] = level;
    }
    rt_free(sorted);
    return count;
}

static void draw_contours_2d(panel *p, const rt_plot_descent *d) {
    p->ya = around(d->points, d->n, 2, 1);
    int g = CONTOUR_GRID;
    double *grid = rt_alloc_array((size_t)g * (size_t)g, sizeof *grid);
    for (int j = 0; j < g; j++)
        for (int i = 0; i < g; i++) {
            double point[2] = {p->xa.lo + (p->xa.hi - p->xa.lo) * i / (g - 1),
                               p->ya.lo + (p->ya.hi - p->ya.lo) * j / (g - 1)};
            grid[j * g + i] = d->loss_at(d->arg, point);
        }
    double levels[CONTOUR_LEVELS];
    int n_levels = contour_levels(grid, (int64_t)g * g, levels);
    draw_axes(p, "contours of the loss, and the path of descent", d->names[0], 0);
    y_label(p, d->names[1]);
    for (int k = 0; k < n_levels; k++) {
        double level = levels[k];
        char color[8];
        level_color(k, n_levels, color, sizeof color);
        fprintf(p->f,
                "<path class=\"contour\" fill=\"none\" stroke=\"%s\" stroke-width=\"1\" "
                "d=\"",
                color);
        for (int j = 0; j + 1 < g; j++)
            for (int i = 0; i + 1 < g; i++) {
                double c[4][3];
                static const int corner[4][2] = {{0, 0}, {1, 0}, {1, 1}, {0, 1}};
                int finite = 1;
                for (int q = 0; q < 4; q++) {
                    int ci = i + corner[q][0], cj = j + corner[q][1];
                    c[q][0] = p->xa.lo + (p->xa.hi - p->xa.lo) * ci / (g - 1);
                    c[q][1] = p->ya.lo + (p->ya.hi - p->ya.lo) * cj / (g - 1);
                    c[q][2] = grid[cj * g + ci];
                    finite &= isfinite(c[q][2]) != 0;
                }
                if (finite) contour_cell(p, c, level);
            }
        fprintf(p->f, "\"><title>loss %.6g</title></path>\n", level);
    }
    rt_free(grid);
}

/* The descent panel: the function first, the path on top. */
static void draw_descent(FILE *f, double x0, const rt_plot_descent *d) {
    double *losses = rt_alloc_array((size_t)d->n, sizeof *losses);
    for (int64_t i = 0; i < d->n; i++) losses[i] = d->loss_at(d->arg, d->points + i * d->dims);
    panel p = {f, x0, 0, around(d->points, d->n, d->dims, 0), {0, 1, 0.2}};
    if (d->dims == 1)
        draw_curve_1d(&p, d, losses);
    else
        draw_contours_2d(&p, d);
    draw_path(&p, d, losses);
    rt_free(losses);
}

void rt_plot_write(const char *path, const rt_plot *plot) {
    rt_atomic_file af = rt_atomic_open(path);
    FILE *f = af.f;
    int panels = 1 + (plot->classify != 0) + (plot->descent != NULL);
    int width = panels * PANEL_W + plot->n_norms * (PANEL_W + NORM_LEGEND_W);
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n",
            width, PANEL_H, width, PANEL_H);
    fprintf(f, "<title>%s</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            plot->title);
    const double *rows = plot->rows;
    int64_t n = plot->n;
    draw_panel(f, 0, "loss", plot->unit, rows, n, RT_HIST_LOSS, RT_HIST_VAL_LOSS, 0);
    double x = PANEL_W;
    if (plot->classify) {
        draw_panel(f, x, "accuracy", plot->unit, rows, n, RT_HIST_ACC, RT_HIST_VAL_ACC, 1);
        x += PANEL_W;
    }
    if (plot->descent) {
        draw_descent(f, x, plot->descent);
        x += PANEL_W;
    }
    for (int k = 0; k < plot->n_norms; k++)
        draw_norms(f, x + k * (PANEL_W + NORM_LEGEND_W), plot->unit, &plot->norms[k]);
    fprintf(f, "</svg>\n");
    rt_atomic_commit(&af);
}

/* ---- search --plot: a panel per setting, a dot per trial ---- */

#define TRIAL_PANELS_PER_ROW 3

/* Whole powers of ten (the exponents) covering [lo, hi], at most 8 ticks. */
static axis decade_axis(double lo, double hi) {
    axis a = {floor(lo), ceil(hi) > floor(lo) ? ceil(hi) : floor(lo) + 1, 1};
    while ((a.hi - a.lo) / a.step > 8) a.step *= 2;
    a.hi = a.lo + ceil((a.hi - a.lo) / a.step) * a.step;
    return a;
}

/* A loss that spans two orders of magnitude or more is shown on a log scale. */
static int wants_log_y(const double *y, int64_t n) {
    double lo = INFINITY, hi = -INFINITY;
    for (int64_t t = 0; t < n; t++) {
        if (!isfinite(y[t])) continue;
        if (y[t] <= 0) return 0;
        lo = fmin(lo, y[t]);
        hi = fmax(hi, y[t]);
    }
    return isfinite(lo) && hi >= 100 * lo;
}

static double trial_x(const rt_plot_setting *s, int64_t t) {
    return s->log ? log10(s->x[t]) : s->x[t];
}

static axis setting_axis(const rt_plot_setting *s) {
    if (s->n_choices > 0) return (axis){-0.5, s->n_choices - 0.5, 1};
    if (s->log) return decade_axis(log10(s->lo), log10(s->hi));
    return nice_axis(s->lo, s->hi);
}

static void draw_trials(FILE *f, double x0, double y0, const char *metric, const rt_plot_setting *s,
                        const double *y, int64_t n, int64_t best, int log_y) {
    double lo = INFINITY, hi = -INFINITY;
    int64_t diverged = 0;
    for (int64_t t = 0; t < n; t++) {
        double v = log_y ? log10(y[t]) : y[t];
        if (!isfinite(v)) {
            diverged++;
            continue;
        }
        lo = fmin(lo, v);
        hi = fmax(hi, v);
    }
    if (!isfinite(lo)) lo = 0, hi = 1;
    panel p = {f, x0, y0, setting_axis(s), log_y ? decade_axis(lo, hi) : nice_axis(lo, hi)};
    x_ticks ticks = {s->log, s->n_choices > 0 ? s->choices : NULL, s->n_choices};
    char title[160], label[96];
    if (diverged)
        snprintf(title, sizeof title, "%s (%lld diverged, not shown)", metric, (long long)diverged);
    else
        snprintf(title, sizeof title, "%s", metric);
    snprintf(label, sizeof label, "--%s%s", s->name, s->log ? " (log scale)" : "");
    for (char *c = label + 2; *c && *c != ' '; c++)
        if (*c == '_') *c = '-';
    draw_axes_x(&p, title, label, log_y, &ticks);
    for (int64_t t = 0; t < n; t++) {
        double v = log_y ? log10(y[t]) : y[t];
        if (!isfinite(v)) continue;
        fprintf(f,
                "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"#1f77b4\" "
                "fill-opacity=\"0.6\"/>\n",
                px(&p, trial_x(s, t)), py(&p, v));
    }
    if (best < 0 || best >= n || !isfinite(y[best])) return;
    double bx = px(&p, trial_x(s, best)), by = py(&p, log_y ? log10(y[best]) : y[best]);
    fprintf(f,
            "<circle class=\"best\" cx=\"%.1f\" cy=\"%.1f\" r=\"7\" fill=\"none\" "
            "stroke=\"#d62728\" stroke-width=\"2\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" "
            "fill=\"#d62728\">best</text>\n",
            bx, by, bx + 9, by - 7);
}

void rt_plot_trials(const char *path, const char *title, const char *metric,
                    const rt_plot_setting *settings, int n_settings, const double *y, int64_t n,
                    int64_t best) {
    rt_atomic_file af = rt_atomic_open(path);
    FILE *f = af.f;
    int cols = n_settings < TRIAL_PANELS_PER_ROW ? n_settings : TRIAL_PANELS_PER_ROW;
    int rows = (n_settings + TRIAL_PANELS_PER_ROW - 1) / TRIAL_PANELS_PER_ROW;
    int width = (cols > 0 ? cols : 1) * PANEL_W, height = (rows > 0 ? rows : 1) * PANEL_H;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\">\n",
            width, height, width, height);
    fprintf(f, "<title>");
    plot_text(f, title);
    fprintf(f, "</title>\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    int log_y = wants_log_y(y, n);
    for (int i = 0; i < n_settings; i++)
        draw_trials(f, (double)(i % TRIAL_PANELS_PER_ROW) * PANEL_W,
                    (double)(i / TRIAL_PANELS_PER_ROW) * PANEL_H, metric, &settings[i], y, n, best,
                    log_y);
    fprintf(f, "</svg>\n");
    rt_atomic_commit(&af);
}
