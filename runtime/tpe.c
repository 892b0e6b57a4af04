/* tpe.c: the next value of one setting by the Tree-structured Parzen Estimator (see tpe.h).
 * A range's densities are Parzen estimators: a mixture of normals cut to [lo, hi], one at
 * each trial's value and one wide "prior" at the middle (so that no part of the range ever
 * has density 0), each kernel as wide as the larger gap to its neighbours (the adaptive
 * bandwidth of the paper's reference implementation). A list's densities are the choices'
 * counts plus one (so that a choice no trial took keeps a chance). */
#include "tpe.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int64_t rt_tpe_good_count(int64_t n) {
    if (n <= 0) return 0;
    int64_t good = (int64_t)ceil(RT_TPE_GOOD_FRACTION * (double)n);
    if (good > RT_TPE_MAX_GOOD) good = RT_TPE_MAX_GOOD;
    return good < 1 ? 1 : good;
}

/* ---- a range: Parzen estimators ---- */

typedef struct parzen {
    int64_t n; /* kernels: the values and the prior, in increasing order of their centres */
    double *mu, *sigma;
    double *log_scale; /* -log(sigma * the mass of the kernel inside [lo, hi]) */
    double lo, hi;
} parzen;

/* log(Phi(b) - Phi(a)) for a < b: the mass of a standard normal in [a, b]. */
static double log_mass(double a, double b) {
    double mass = 0.5 * (erfc(-b / sqrt(2)) - erfc(-a / sqrt(2)));
    return log(mass > 0 ? mass : 1e-300);
}

static parzen parzen_fit(const double *x, int64_t n, double lo, double hi) {
    parzen p = {n + 1,
                rt_alloc_array((size_t)n + 1, sizeof(double)),
                rt_alloc_array((size_t)n + 1, sizeof(double)),
                rt_alloc_array((size_t)n + 1, sizeof(double)),
                lo,
                hi};
    double width = hi - lo, prior = (lo + hi) / 2;
    if (n > 0) memcpy(p.mu, x, (size_t)n * sizeof *x);
    p.mu[n] = prior;
    qsort(p.mu, (size_t)p.n, sizeof *p.mu, rt_compare_doubles);
    /* Narrow where values crowd, wide where they are sparse; never narrower than a
     * fraction of the range (a single good value would otherwise be a spike) nor wider
     * than the range. */
    double min_sigma = width / fmin(RT_TPE_MIN_WIDTH, (double)n + 2);
    int prior_done = 0;
    for (int64_t i = 0; i < p.n; i++) {
        double left = i > 0 ? p.mu[i - 1] : lo, right = i + 1 < p.n ? p.mu[i + 1] : hi;
        double sigma = fmax(p.mu[i] - left, right - p.mu[i]);
        if (!prior_done && p.mu[i] == prior) { /* the prior spans the range */
            sigma = width;
            prior_done = 1;
        }
        p.sigma[i] = fmin(fmax(sigma, min_sigma), width);
        p.log_scale[i] =
            -log(p.sigma[i]) - log_mass((lo - p.mu[i]) / p.sigma[i], (hi - p.mu[i]) / p.sigma[i]);
    }
    return p;
}

static void parzen_free(parzen *p) {
    rt_free(p->mu);
    rt_free(p->sigma);
    rt_free(p->log_scale);
}

/* log of the density at x, up to a constant both densities share (log sqrt(2 pi)); summed
 * as log-sum-exp, since far kernels underflow. */
static double parzen_log_density(const parzen *p, double x) {
    double top = -INFINITY;
    for (int64_t i = 0; i < p->n; i++) {
        double z = (x - p->mu[i]) / p->sigma[i], t = -0.5 * z * z + p->log_scale[i];
        if (t > top) top = t;
    }
    double sum = 0;
    for (int64_t i = 0; i < p->n; i++) {
        double z = (x - p->mu[i]) / p->sigma[i];
        sum += exp(-0.5 * z * z + p->log_scale[i] - top);
    }
    return top + log(sum) - log((double)p->n);
}

/* A kernel picked uniformly, then a normal draw from it inside [lo, hi] (a kernel's centre
 * lies in the range and it is at most the range wide, so a draw lands inside at least a
 * third of the time; after 64 misses, the centre). */
static double parzen_draw(const parzen *p, rt_rng *rng) {
    int64_t i = (int64_t)rt_rng_below(rng, (uint64_t)p->n);
    for (int tries = 0; tries < 64; tries++) {
        double x = p->mu[i] + p->sigma[i] * rt_rng_normal(rng);
        if (x >= p->lo && x <= p->hi) return x;
    }
    return p->mu[i];
}

static double range_next(const rt_tpe_setting *s, const double *good, int64_t n_good,
                         const double *bad, int64_t n_bad, rt_rng *rng) {
    if (!(s->hi > s->lo)) return s->lo;
    parzen l = parzen_fit(good, n_good, s->lo, s->hi), g = parzen_fit(bad, n_bad, s->lo, s->hi);
    double best = s->lo, best_ratio = -INFINITY;
    for (int c = 0; c < RT_TPE_CANDIDATES; c++) {
        double x = parzen_draw(&l, rng);
        double ratio = parzen_log_density(&l, x) - parzen_log_density(&g, x);
        if (ratio > best_ratio) { /* the first of equals */
            best = x;
            best_ratio = ratio;
        }
    }
    parzen_free(&l);
    parzen_free(&g);
    return best;
}

/* ---- a list: counts ---- */

/* p[c] = (trials that took choice c + 1) / (n + choices). */
static double *choice_density(int n_choices, const double *x, int64_t n) {
    double *p = rt_alloc_array((size_t)n_choices, sizeof *p);
    for (int c = 0; c < n_choices; c++) p[c] = 1;
    for (int64_t i = 0; i < n; i++) {
        int64_t c = (int64_t)x[i];
        if (c >= 0 && c < n_choices) p[c] += 1;
    }
    for (int c = 0; c < n_choices; c++) p[c] /= (double)n + n_choices;
    return p;
}

static int choice_draw(const double *p, int n_choices, rt_rng *rng) {
    double u = rt_rng_uniform(rng), sum = 0;
    for (int c = 0; c < n_choices; c++) {
        sum += p[c];
        if (u < sum) return c;
    }
    return n_choices - 1;
}

static double choice_next(const rt_tpe_setting *s, const double *good, int64_t n_good,
                          const double *bad, int64_t n_bad, rt_rng *rng) {
    double *l = choice_density(s->n_choices, good, n_good);
    double *g = choice_density(s->n_choices, bad, n_bad);
    int best = 0;
    double best_ratio = -INFINITY;
    for (int c = 0; c < RT_TPE_CANDIDATES; c++) {
        int x = choice_draw(l, s->n_choices, rng);
        double ratio = log(l[x]) - log(g[x]);
        if (ratio > best_ratio) { /* the first of equals */
            best = x;
            best_ratio = ratio;
        }
    }
    rt_free(l);
    rt_free(g);
    return best;
}

double rt_tpe_next(const rt_tpe_setting *s, const double *good, int64_t n_good, const double *bad,
                   int64_t n_bad, rt_rng *rng) {
    if (s->n_choices > 0) return choice_next(s, good, n_good, bad, n_bad, rng);
    return range_next(s, good, n_good, bad, n_bad, rng);
}
