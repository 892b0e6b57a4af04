/* algebra.h: quotients of polynomials over named atoms, simplified by rule: what
 * `nnc explain --multiply` turns a chain of gradients into (explain.c).
 *
 * An expression is N/D: N a polynomial in expanded form (a sum of terms, each a number times
 * a product of atoms to whole powers), D a product of atoms. An atom is anything the
 * algebra does not look into, known by its text ("p", "B", "softmax(z)", "x · h.W"), or a
 * polynomial kept whole as a factor of a denominator ("1 − p"). The rules:
 *  - sums and products are expanded, like terms collected, zero terms dropped;
 *  - a sum is brought over a common denominator (the least common multiple of the two);
 *  - a factor of the denominator that divides the numerator exactly is cancelled: an atom
 *    that every term holds, or a polynomial factor, by exact polynomial division;
 *  - printed, the number and the atoms all terms share are taken out: 2(p − y)/B.
 * Products are elementwise (they commute): matrix products, reductions and calls stay
 * inside atoms. Every polynomial has at most ALG_MAX_TERMS terms and every atom's text at
 * most ALG_MAX_TEXT bytes; beyond that the expression is marked too large, and so is all
 * that is made of it, so the work stays linear in the number of expressions built. */
#ifndef NNC_ALGEBRA_H
#define NNC_ALGEBRA_H

#include "common.h"

#define ALG_MAX_TERMS 48
#define ALG_MAX_TEXT  600

/* Operator precedence of a printed expression (explain.c's too): an operand binding less
 * tightly than its place needs is parenthesised. */
enum { P_SUM = 1, P_NEG, P_PROD, P_POW, P_ATOM };

typedef struct Algebra Algebra;
typedef struct Ratio Ratio;

/* How expressions are written: plain UTF-8 text, or LaTeX. */
Algebra *alg_new(bool tex);

Ratio *alg_num(Algebra *a, double x);
/* The atom with this text (prec: how tightly the text binds, P_ATOM for a name). */
Ratio *alg_atom(Algebra *a, const char *text, int prec);
/* A name (a value of the source): written before the other atoms of a product. */
Ratio *alg_name(Algebra *a, const char *text);
/* An atom written after the others in a product (B, the batch's size: p(1 − p)B). */
Ratio *alg_atom_last(Algebra *a, const char *text);
/* Marked too large: what cannot be multiplied out (and whatever is made of it). */
Ratio *alg_too_large(Algebra *a);

Ratio *alg_add(Algebra *a, const Ratio *x, const Ratio *y);
Ratio *alg_sub(Algebra *a, const Ratio *x, const Ratio *y);
Ratio *alg_mul(Algebra *a, const Ratio *x, const Ratio *y);
Ratio *alg_div(Algebra *a, const Ratio *x, const Ratio *y);
Ratio *alg_neg(Algebra *a, const Ratio *x);
Ratio *alg_pow(Algebra *a, const Ratio *x, int k);

bool alg_is_too_large(const Ratio *x);
/* The number of terms of x's numerator. */
int alg_terms(const Ratio *x);
/* True, and the number, when x is a number. */
bool alg_is_number(const Ratio *x, double *value);
/* x written out (NULL when too large); *prec how tightly it binds. */
const char *alg_text(Algebra *a, const Ratio *x, int *prec);

#endif
