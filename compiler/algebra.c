/* algebra.c: quotients of polynomials over named atoms (algebra.h). A polynomial's terms are
 * kept sorted in lexicographic order of their monomials (atoms numbered as first met), which
 * is what exact division needs: divide the leading term, subtract, repeat; the division
 * is exact when nothing is left over. */
#include "algebra.h"
#include "ir.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Factor {
    int atom, exp;
} Factor;

/* A number times a product of atoms (sorted by atom, exponents > 0). */
typedef struct Term {
    double coef;
    int n;
    Factor *f;
} Term;

typedef struct Poly {
    int n;
    Term *t; /* the leading (lexicographically greatest) monomial first */
} Poly;

typedef struct Atom {
    const char *text;
    int prec;
    bool name;        /* a name: written before calls in a product, y ⊙ log(p) */
    bool last;        /* written after the others in a product: B, the batch's size */
    const Poly *poly; /* a polynomial kept whole, as a factor of denominators */
} Atom;

struct Algebra {
    bool tex;
    VEC(Atom *) atoms;
    HashMap by_key;
};

struct Ratio {
    Poly num;
    Term den; /* coef 1 */
    bool big;
};

Algebra *alg_new(bool tex) {
    Algebra *a = xalloc(sizeof *a);
    a->tex = tex;
    return a;
}

static const char *pick(const Algebra *a, const char *text, const char *tex) {
    return a->tex ? tex : text;
}

/* ---- monomials ---- */

/* Lexicographic order: at the first atom whose exponents differ, the greater exponent wins. */
static int mono_cmp(const Term *a, const Term *b) {
    int i = 0, j = 0;
    while (i < a->n || j < b->n) {
        int x = i < a->n ? a->f[i].atom : INT_MAX, y = j < b->n ? b->f[j].atom : INT_MAX;
        if (x < y) return 1;
        if (y < x) return -1;
        if (a->f[i].exp != b->f[j].exp) return a->f[i].exp > b->f[j].exp ? 1 : -1;
        i++, j++;
    }
    return 0;
}

/* The monomial a·b^sign (sign 1 multiplies, -1 divides: b must divide a), min_exps for the
 * common part (the smaller exponent of each atom both hold), max_exps for the least common
 * multiple. */
typedef enum { MONO_TIMES, MONO_OVER, MONO_GCD, MONO_LCM } MonoOp;

static Term mono_combine(const Term *a, const Term *b, MonoOp op) {
    Term r = {.coef = 1, .f = xalloc(sizeof(Factor) * (size_t)(a->n + b->n + 1))};
    int i = 0, j = 0;
    while (i < a->n || j < b->n) {
        int x = i < a->n ? a->f[i].atom : INT_MAX, y = j < b->n ? b->f[j].atom : INT_MAX;
        int ea = x <= y ? a->f[i].exp : 0, eb = y <= x ? b->f[j].exp : 0;
        int atom = x < y ? x : y, e;
        switch (op) {
        case MONO_TIMES: e = ea + eb; break;
        case MONO_OVER: e = ea - eb; break;
        case MONO_GCD: e = ea < eb ? ea : eb; break;
        default: e = ea > eb ? ea : eb; break;
        }
        if (e != 0) r.f[r.n++] = (Factor){atom, e};
        i += x <= y, j += y <= x;
    }
    return r;
}

static bool mono_divides(const Term *m, const Term *d) {
    Term q = mono_combine(m, d, MONO_OVER);
    for (int i = 0; i < q.n; i++)
        if (q.f[i].exp < 0) return false;
    return true;
}

static int degree(const Term *t) {
    int d = 0;
    for (int i = 0; i < t->n; i++) d += t->f[i].exp;
    return d;
}

/* ---- polynomials ---- */

static int term_order(const void *a, const void *b) {
    return -mono_cmp(a, b);
}

/* Sorted, like terms collected, and terms that cancelled (to rounding) dropped. */
static Poly poly_normal(Term *t, int n) {
    double scale = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(t[i].coef));
    qsort(t, (size_t)n, sizeof *t, term_order);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (k > 0 && mono_cmp(&t[k - 1], &t[i]) == 0)
            t[k - 1].coef += t[i].coef;
        else
            t[k++] = t[i];
        if (fabs(t[k - 1].coef) <= 1e-12 * scale) k--; /* cancelled: may come back */
    }
    int m = 0;
    for (int i = 0; i < k; i++)
        if (fabs(t[i].coef) > 1e-12 * scale) t[m++] = t[i];
    return (Poly){m, t};
}

static Poly poly_sum(const Poly *x, double cx, const Poly *y, double cy) {
    Term *t = xalloc(sizeof *t * (size_t)(x->n + y->n + 1));
    int n = 0;
    for (int i = 0; i < x->n; i++) t[n] = x->t[i], t[n++].coef *= cx;
    for (int i = 0; i < y->n; i++) t[n] = y->t[i], t[n++].coef *= cy;
    return poly_normal(t, n);
}

static Poly poly_times_term(const Poly *x, const Term *m) {
    Term *t = xalloc(sizeof *t * (size_t)(x->n + 1));
    for (int i = 0; i < x->n; i++) {
        t[i] = mono_combine(&x->t[i], m, MONO_TIMES);
        t[i].coef = x->t[i].coef * m->coef;
    }
    return poly_normal(t, x->n);
}

static Poly poly_mul(const Poly *x, const Poly *y) {
    Term *t = xalloc(sizeof *t * (size_t)(x->n * y->n + 1));
    int n = 0;
    for (int i = 0; i < x->n; i++)
        for (int j = 0; j < y->n; j++) {
            t[n] = mono_combine(&x->t[i], &y->t[j], MONO_TIMES);
            t[n++].coef = x->t[i].coef * y->t[j].coef;
        }
    return poly_normal(t, n);
}

static Poly poly_const(double c) {
    if (c == 0) return (Poly){0, NULL};
    Term *t = xalloc(sizeof *t);
    t->coef = c;
    return (Poly){1, t};
}

/* n / d when d divides n exactly (into *q), by the division algorithm: with one divisor
 * the remainder is unique, so a term left over means d does not divide n. */
static bool poly_divide(const Poly *n, const Poly *d, Poly *q) {
    Poly r = *n;
    Term *quot = xalloc(sizeof *quot * (size_t)(4 * ALG_MAX_TERMS + 1));
    int k = 0;
    while (r.n > 0) {
        if (k == 4 * ALG_MAX_TERMS || r.n > 4 * ALG_MAX_TERMS) return false;
        if (!mono_divides(&r.t[0], &d->t[0])) return false;
        Term t = mono_combine(&r.t[0], &d->t[0], MONO_OVER);
        t.coef = r.t[0].coef / d->t[0].coef;
        quot[k++] = t;
        Poly sub = poly_times_term(d, &t);
        r = poly_sum(&r, 1, &sub, -1);
    }
    *q = poly_normal(quot, k);
    return true;
}

/* ---- atoms ---- */

static int atom_index(Algebra *a, const char *key, const char *text, int prec, const Poly *poly) {
    int *found = strmap_get(&a->by_key, key);
    if (found) return *found;
    int *index = xalloc(sizeof *index);
    *index = a->atoms.n;
    Atom *at = xalloc(sizeof *at);
    *at = (Atom){.text = text, .prec = prec, .poly = poly};
    vec_push(&a->atoms, at);
    strmap_put(&a->by_key, key, index);
    return *index;
}

static Ratio *ratio(Poly num, Term den) {
    Ratio *r = xalloc(sizeof *r);
    r->num = num;
    r->den = den;
    r->den.coef = 1;
    r->big = num.n > ALG_MAX_TERMS;
    return r;
}

Ratio *alg_too_large(Algebra *a) {
    (void)a;
    Ratio *r = xalloc(sizeof *r);
    r->big = true;
    return r;
}

Ratio *alg_num(Algebra *a, double x) {
    (void)a;
    return ratio(poly_const(x), (Term){0});
}

static Ratio *atom_ratio(int index) {
    Term *t = xalloc(sizeof *t);
    t->coef = 1;
    t->n = 1;
    t->f = xalloc(sizeof *t->f);
    t->f[0] = (Factor){index, 1};
    return ratio((Poly){1, t}, (Term){0});
}

Ratio *alg_atom(Algebra *a, const char *text, int prec) {
    if (strlen(text) > ALG_MAX_TEXT) return alg_too_large(a);
    return atom_ratio(atom_index(a, xprintf("a:%s", text), text, prec, NULL));
}

Ratio *alg_atom_last(Algebra *a, const char *text) {
    Ratio *r = alg_atom(a, text, P_ATOM);
    if (!r->big) a->atoms.v[r->num.t[0].f[0].atom]->last = true;
    return r;
}

Ratio *alg_name(Algebra *a, const char *text) {
    Ratio *r = alg_atom(a, text, P_ATOM);
    if (!r->big) a->atoms.v[r->num.t[0].f[0].atom]->name = true;
    return r;
}

int alg_terms(const Ratio *x) {
    return x->num.n;
}

bool alg_is_too_large(const Ratio *x) {
    return x->big;
}

bool alg_is_number(const Ratio *x, double *value) {
    if (x->big || x->den.n || x->num.n > 1 || (x->num.n == 1 && x->num.t[0].n)) return false;
    *value = x->num.n ? x->num.t[0].coef : 0;
    return true;
}

/* ---- quotients ---- */

/* A denominator's monomial as a polynomial: its polynomial factors multiplied out. */
static Poly expand(const Algebra *a, const Term *m) {
    Term simple = {.coef = 1, .f = xalloc(sizeof(Factor) * (size_t)(m->n + 1))};
    Poly p = poly_const(1);
    for (int i = 0; i < m->n; i++) {
        const Poly *compound = a->atoms.v[m->f[i].atom]->poly;
        if (!compound) {
            simple.f[simple.n++] = m->f[i];
            continue;
        }
        for (int e = 0; e < m->f[i].exp; e++) p = poly_mul(&p, compound);
    }
    return poly_times_term(&p, &simple);
}

/* Cancels each factor of the denominator that divides the numerator. */
static Ratio *cancel(const Algebra *a, Poly num, Term den) {
    if (num.n == 0) return ratio(num, (Term){0});
    Term kept = {.coef = 1, .f = xalloc(sizeof(Factor) * (size_t)(den.n + 1))};
    for (int i = 0; i < den.n; i++) {
        int left = den.f[i].exp;
        const Poly *compound = a->atoms.v[den.f[i].atom]->poly;
        Term one = {.coef = 1, .n = 1, .f = &(Factor){den.f[i].atom, 1}};
        while (left > 0) {
            Poly q;
            if (compound) {
                if (!poly_divide(&num, compound, &q)) break;
            } else {
                bool all = true;
                for (int j = 0; j < num.n; j++) all &= mono_divides(&num.t[j], &one);
                if (!all) break;
                Term inverse = {.coef = 1, .n = 1, .f = &(Factor){den.f[i].atom, -1}};
                q = poly_times_term(&num, &inverse);
            }
            num = q;
            left--;
        }
        if (left) kept.f[kept.n++] = (Factor){den.f[i].atom, left};
    }
    return ratio(num, kept);
}

static bool either_big(const Ratio *x, const Ratio *y) {
    return x->big || y->big;
}

Ratio *alg_add(Algebra *a, const Ratio *x, const Ratio *y) {
    if (either_big(x, y)) return alg_too_large(a);
    Term den = mono_combine(&x->den, &y->den, MONO_LCM);
    Term fx = mono_combine(&den, &x->den, MONO_OVER), fy = mono_combine(&den, &y->den, MONO_OVER);
    Poly ex = expand(a, &fx), ey = expand(a, &fy);
    Poly nx = poly_mul(&x->num, &ex), ny = poly_mul(&y->num, &ey);
    return cancel(a, poly_sum(&nx, 1, &ny, 1), den);
}

Ratio *alg_neg(Algebra *a, const Ratio *x) {
    if (x->big) return alg_too_large(a);
    return ratio(poly_sum(&x->num, -1, &(Poly){0, NULL}, 0), x->den);
}

Ratio *alg_sub(Algebra *a, const Ratio *x, const Ratio *y) {
    return alg_add(a, x, alg_neg(a, y));
}

Ratio *alg_mul(Algebra *a, const Ratio *x, const Ratio *y) {
    if (either_big(x, y)) return alg_too_large(a);
    if (x->num.n * y->num.n > ALG_MAX_TERMS * ALG_MAX_TERMS) return alg_too_large(a);
    return cancel(a, poly_mul(&x->num, &y->num), mono_combine(&x->den, &y->den, MONO_TIMES));
}

/* The atoms every term holds (to their smallest power). */
static Term common_monomial(const Poly *p) {
    Term g = p->n ? p->t[0] : (Term){0};
    for (int i = 1; i < p->n; i++) g = mono_combine(&g, &p->t[i], MONO_GCD);
    g.coef = 1;
    return g;
}

/* A canonical key of a polynomial, to intern it as a factor. */
static const char *poly_key(const Poly *p) {
    StrBuf b = {0};
    sb_puts(&b, "p:");
    for (int i = 0; i < p->n; i++) {
        sb_printf(&b, "%.17g", p->t[i].coef);
        for (int j = 0; j < p->t[i].n; j++)
            sb_printf(&b, "*%d^%d", p->t[i].f[j].atom, p->t[i].f[j].exp);
        sb_puts(&b, ";");
    }
    return sb_str(&b);
}

static const char *sum_text(Algebra *a, const Poly *p);

/* A factor is kept with the sign that gives it more positive terms, or else a positive
 * constant: 1 − p rather than p − 1. */
static bool reads_better_negated(const Poly *p) {
    int positive = 0;
    double constant = 0;
    for (int i = 0; i < p->n; i++) {
        positive += p->t[i].coef > 0;
        if (p->t[i].n == 0) constant = p->t[i].coef;
    }
    return 2 * positive < p->n || (2 * positive == p->n && constant < 0);
}

/* 1/p as a numerator's scale and the factors of a denominator: p = c·m·P, with m the atoms
 * every term holds and P the rest scaled to a leading coefficient of 1, kept whole. */
static Ratio *reciprocal(Algebra *a, const Poly *p) {
    if (p->n == 0) return alg_too_large(a); /* a division by zero stays unwritten */
    Term m = common_monomial(p);
    double c = p->t[0].coef;
    Term den = m;
    if (p->n > 1) {
        Term inverse = mono_combine(&(Term){0}, &m, MONO_OVER);
        inverse.coef = 1 / c;
        Poly *rest = xalloc(sizeof *rest);
        *rest = poly_times_term(p, &inverse);
        if (reads_better_negated(rest)) {
            *rest = poly_sum(rest, -1, &(Poly){0, NULL}, 0);
            c = -c;
        }
        const char *text = sum_text(a, rest);
        if (!text) return alg_too_large(a);
        int index = atom_index(a, poly_key(rest), text, P_SUM, rest);
        den = mono_combine(&m, &(Term){.n = 1, .f = &(Factor){index, 1}}, MONO_TIMES);
    }
    return ratio(poly_const(1 / c), den);
}

Ratio *alg_div(Algebra *a, const Ratio *x, const Ratio *y) {
    if (either_big(x, y)) return alg_too_large(a);
    Ratio *inv = reciprocal(a, &y->num);
    if (inv->big) return inv;
    Poly ey = expand(a, &y->den);
    Poly num = poly_mul(&x->num, &ey);
    num = poly_mul(&num, &inv->num);
    return cancel(a, num, mono_combine(&x->den, &inv->den, MONO_TIMES));
}

Ratio *alg_pow(Algebra *a, const Ratio *x, int k) {
    if (k < 0) return alg_div(a, alg_num(a, 1), alg_pow(a, x, -k));
    Ratio *r = alg_num(a, 1);
    for (int i = 0; i < k && !r->big; i++) r = alg_mul(a, r, x);
    return r;
}

/* ---- writing ---- */

static const char *superscript(const Algebra *a, int e) {
    static const char *const sup[] = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};
    if (a->tex) return xprintf("^{%d}", e);
    if (e >= 0 && e <= 9) return sup[e];
    return xprintf("^%d", e);
}

static const char *paren(const Algebra *a, const char *s) {
    return a->tex ? xprintf("\\left(%s\\right)", s) : xprintf("(%s)", s);
}

/* One atom to a power, as a factor of a product. */
static const char *power_text(Algebra *a, const Factor *f, bool alone) {
    const Atom *at = a->atoms.v[f->atom];
    int need = f->exp > 1 ? P_ATOM : alone ? 0 : P_POW;
    const char *base = at->prec >= need ? at->text : paren(a, at->text);
    return f->exp > 1 ? xprintf("%s%s", base, superscript(a, f->exp)) : base;
}

/* The atoms of a monomial joined by ⊙ (NULL for none). */
/* The order atoms are written in a product: names, other atoms, polynomials, then the
 * atoms written last; each kind in the order they were met. */
static const Algebra *sorting; /* the algebra factor_order reads (qsort has no context) */

static int atom_kind(const Atom *at) {
    return at->last ? 3 : at->poly ? 2 : at->name ? 0 : 1;
}

static int factor_order(const void *pa, const void *pb) {
    const Atom *a = sorting->atoms.v[((const Factor *)pa)->atom];
    const Atom *b = sorting->atoms.v[((const Factor *)pb)->atom];
    if (atom_kind(a) != atom_kind(b)) return atom_kind(a) - atom_kind(b);
    return ((const Factor *)pa)->atom - ((const Factor *)pb)->atom;
}

static Term display_factors(const Algebra *a, const Term *m) {
    Term t = *m;
    t.f = xalloc(sizeof *t.f * (size_t)(m->n + 1));
    if (m->n) memcpy(t.f, m->f, sizeof *t.f * (size_t)m->n);
    sorting = a;
    qsort(t.f, (size_t)t.n, sizeof *t.f, factor_order);
    return t;
}

static const char *mono_text(Algebra *a, const Term *unsorted, bool with_others) {
    const char *s = NULL;
    Term sorted = display_factors(a, unsorted), *m = &sorted;
    for (int i = 0; i < m->n; i++) {
        const char *f = power_text(a, &m->f[i], m->n == 1 && !with_others);
        s = s ? xprintf("%s%s%s", s, pick(a, " ⊙ ", " \\odot "), f) : f;
    }
    return s;
}

static bool is_whole(double x) {
    return fabs(x) < 1e15 && x == floor(x);
}

/* |coef| times the monomial, as a term of a sum. */
static const char *term_text(Algebra *a, const Term *t) {
    const char *m = mono_text(a, t, false);
    double c = fabs(t->coef);
    if (!m) return ir_number_str(c);
    if (c == 1) return m;
    return xprintf("%s%s%s", ir_number_str(c), pick(a, " · ", " \\cdot "), m);
}

typedef struct Shown {
    const Term *t;
    const char *text;
} Shown;

/* Display order: positive terms first, then higher degree first, then as sorted (the
 * atoms met first, first). */
static int display_order(const void *pa, const void *pb) {
    const Shown *a = pa, *b = pb;
    if ((a->t->coef > 0) != (b->t->coef > 0)) return a->t->coef > 0 ? -1 : 1;
    if (degree(a->t) != degree(b->t)) return degree(b->t) - degree(a->t);
    return -mono_cmp(a->t, b->t);
}

static const char *sum_text(Algebra *a, const Poly *p) {
    if (p->n == 0) return "0";
    Shown *t = xalloc(sizeof *t * (size_t)p->n);
    for (int i = 0; i < p->n; i++) t[i] = (Shown){&p->t[i], term_text(a, &p->t[i])};
    qsort(t, (size_t)p->n, sizeof *t, display_order);
    StrBuf b = {0};
    for (int i = 0; i < p->n; i++) {
        const char *s = t[i].text;
        if (i == 0)
            sb_printf(&b, "%s%s", t[i].t->coef < 0 ? pick(a, "−", "-") : "", s);
        else
            sb_printf(&b, " %s %s", t[i].t->coef < 0 ? pick(a, "−", "-") : "+", s);
        if (b.n > ALG_MAX_TEXT) return NULL;
    }
    return sb_str(&b);
}

/* The number all coefficients are whole multiples of (the first term's, by display order),
 * signed when all are negative; 1 or -1 when there is none. */
static double content(const Poly *p) {
    double c0 = INFINITY;
    bool negative = true;
    for (int i = 0; i < p->n; i++) {
        c0 = fmin(c0, fabs(p->t[i].coef));
        negative &= p->t[i].coef < 0;
    }
    for (int i = 0; i < p->n; i++)
        if (!is_whole(p->t[i].coef / c0)) c0 = 1;
    return negative ? -c0 : c0;
}

/* The denominator: a whole number k (when not 1) and the factors. */
static const char *denominator_text(Algebra *a, double k, const Term *unsorted, int *pieces) {
    const char *s = k != 1 ? ir_number_str(k) : "";
    Term sorted = display_factors(a, unsorted);
    const Term *den = &sorted;
    bool short_names = true;
    for (int i = 0; i < den->n; i++) {
        const Atom *at = a->atoms.v[den->f[i].atom];
        short_names &= at->poly || (at->prec == P_ATOM && strlen(at->text) <= 2);
    }
    *pieces = (k != 1) + den->n;
    for (int i = 0; i < den->n; i++) {
        const char *f = power_text(a, &den->f[i], false);
        const char *sep = !*s ? "" : short_names && !a->tex ? "" : pick(a, " · ", " \\cdot ");
        s = xprintf("%s%s%s", s, sep, f);
    }
    return s;
}

const char *alg_text(Algebra *a, const Ratio *x, int *prec) {
    if (x->big) return NULL;
    *prec = P_ATOM;
    if (x->num.n == 0) return "0";
    double c = content(&x->num);
    Term g = x->num.n > 1 ? common_monomial(&x->num) : x->num.t[0];
    g.coef = 1;
    Term inverse = mono_combine(&(Term){0}, &g, MONO_OVER);
    inverse.coef = 1 / c;
    Poly rest = poly_times_term(&x->num, &inverse);
    bool negative = c < 0;
    c = fabs(c);
    double k = 1; /* 1/k in front goes below the line */
    if (c != 1 && is_whole(1 / c) && 1 / c <= 1e6) k = 1 / c, c = 1;
    /* the numerator's factors: the sum that is left, then the atoms all terms hold */
    const char *factors = mono_text(a, &g, rest.n > 1), *bare = NULL;
    int n_factors = g.n;
    if (rest.n > 1) {
        const char *sum = sum_text(a, &rest);
        if (!sum) return NULL;
        bool alone = !factors && c == 1 && k == 1 && !x->den.n && !negative;
        if (alone) return *prec = P_SUM, sum;
        bare = sum;
        sum = paren(a, sum);
        factors = factors ? xprintf("%s%s%s", sum, pick(a, " ⊙ ", " \\odot "), factors) : sum;
        n_factors++;
    }
    const char *num;
    int num_prec = n_factors > 1 ? P_PROD : P_ATOM;
    if (n_factors == 1 && g.n == 1)
        num_prec = g.f[0].exp > 1 ? P_POW : a->atoms.v[g.f[0].atom]->prec;
    if (!factors)
        num = ir_number_str(c);
    else if (c == 1)
        num = factors;
    else if (factors[0] == '(' || !strncmp(factors, "\\left(", 6))
        num = xprintf("%s%s", ir_number_str(c), factors), num_prec = P_PROD;
    else
        num = xprintf("%s%s%s", ir_number_str(c), pick(a, " · ", " \\cdot "), factors),
        num_prec = P_PROD;
    const char *s = num;
    *prec = num_prec;
    if (k != 1 || x->den.n) {
        int pieces;
        const char *den = denominator_text(a, k, &x->den, &pieces);
        if (a->tex) {
            s = xprintf("\\frac{%s}{%s}", num == factors && bare && !g.n ? bare : num, den);
            *prec = P_ATOM;
        } else {
            if (num_prec < P_PROD) num = paren(a, num);
            s = xprintf("%s/%s", num, pieces > 1 ? paren(a, den) : den);
            *prec = P_PROD;
        }
    }
    if (strlen(s) > ALG_MAX_TEXT) return NULL;
    if (!negative) return s;
    if (*prec < P_PROD) s = paren(a, s);
    *prec = P_NEG;
    return xprintf("%s%s", pick(a, "−", "-"), s);
}
