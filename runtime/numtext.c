/* numtext.c: printf's conversions of the --log row, without printf (numtext.h).
 *
 * A decimal text of v with k digits after the point is the integer nearest v * 10^k (ties to
 * even, as glibc rounds an exact tie), written out. For 10^k exact in a double (k <= 22) and a
 * result below 2^52, that integer is found exactly: the product v * P rounded, p, its error
 * e = fma(v, P, -p) (exact: the error of a product is a double), and the part of p after its
 * integer part, f, which is exact because p < 2^52. f and 0.5 are both multiples of p's unit
 * in the last place, so f != 0.5 decides alone (|e| is at most half that unit); f == 0.5 is
 * decided by the sign of e, and e == 0 is a true tie. Dividing by 10^k (for %.9g of values of
 * 10^9 and more) is the same with the remainder of the division, fma(-q, Q, v), for e. Values
 * outside these ranges, zeros, infinities and NaNs go to snprintf. */
#include "numtext.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
#define MAX_EXACT_POW10 22

/* 10^-13 .. 10^30, each the double nearest it: the powers of ten that split the exponents of
 * the values %.9g writes without snprintf (1e-13 <= |v| < 1e30). */
#define POW10_G9_FIRST (-13)
static const double pow10_g9[] = {
    1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0,  1e1,
    1e2,   1e3,   1e4,   1e5,   1e6,  1e7,  1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17,  1e18,  1e19,  1e20,  1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30};
/* The steps of a conversion, each a few instructions, inlined into it: a call each cost a
 * one-step epoch's row more than the steps themselves. */
#define INLINE     inline __attribute__((always_inline))
#define BELOW_2_52 4503599627370496.0 /* 2^52 */

/* round(a * 10^k) for a >= 0, k in -22..22; 0 when the result might not be below 2^52. q is
 * a * 10^k rounded; only when its fraction is exactly one half does the sign of its error
 * (the fma, a rare call) decide. */
static INLINE int scaled(double a, int k, uint64_t *n) {
    int divide = k < 0;
    double p = pow10_exact[divide ? -k : k], q = divide ? a / p : a * p;
    if (!(q < BELOW_2_52)) return 0;
    int64_t whole = (int64_t)q; /* q >= 0 and below 2^52: its integer part, exactly */
    double f = q - (double)whole;
    /* rounding up or down is the data's coin toss: an addition, not a jump to mispredict;
     * the exact half is rare */
    *n = (uint64_t)whole + (f > 0.5);
    if (f == 0.5) {
        double err = divide ? fma(-q, p, a) : fma(a, p, -q);
        *n += err > 0 || (err == 0 && (*n & 1));
    }
    return 1;
}

/* "00" to "99": the two digits of a %.9g exponent. */
static const char digit_pairs[] = "00010203040506070809101112131415161718192021222324252627282930"
                                  "31323334353637383940414243444546474849505152535455565758596061"
                                  "62636465666768697071727374757677787980818283848586878889909192"
                                  "93949596979899";

static const uint64_t pow10_u64[] = {1u,
                                     10u,
                                     100u,
                                     1000u,
                                     10000u,
                                     100000u,
                                     1000000u,
                                     10000000u,
                                     100000000u,
                                     1000000000u,
                                     10000000000u,
                                     100000000000u,
                                     1000000000000u,
                                     10000000000000u,
                                     100000000000000u,
                                     1000000000000000u,
                                     10000000000000000u,
                                     100000000000000000u,
                                     1000000000000000000u,
                                     10000000000000000000u};

/* How many decimal digits n has (1 for 0): from its bit length, log10(2) being about
 * 1233 / 2^12, then one comparison, in place of a comparison a digit. */
static INLINE int decimal_length(uint64_t n) {
    int bits = 64 - __builtin_clzll(n | 1);
    int t = (bits * 1233) >> 12; /* the digits of 2^bits - 1, or one more */
    int len = t + 1 - (n < pow10_u64[t]);
    return len > 0 ? len : 1;
}

/* The eight decimal digits of v < 10^8 (zeros in front) as byte values 0..9, the first in
 * the lowest byte: all eight at once, each step splitting every lane of the word in two
 * (4 + 4 digits, then 2 + 2 in each half, then 1 + 1), where a loop takes a division a digit.
 * Each reciprocal is exact over its lanes' range: (g * 10486) >> 20 is g / 100 for g < 10^4,
 * (h * 103) >> 10 is h / 10 for h < 100, and no lane's product reaches the next lane. */
static INLINE uint64_t eight_digits(uint32_t v) {
    uint64_t x = (v / 10000) | ((uint64_t)(v % 10000) << 32);
    uint64_t hundreds = ((x * 10486) >> 20) & 0x0000007F0000007Fu;
    x = hundreds | ((x - hundreds * 100) << 16);
    uint64_t tens = ((x * 103) >> 10) & 0x000F000F000F000Fu;
    return tens | ((x - tens * 10) << 8);
}

#define ASCII_ZEROS 0x3030303030303030u /* '0' in every byte */

/* The word's eight bytes at p, its lowest first (the first digit's). */
static INLINE void store8(char *p, uint64_t w) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    memcpy(p, &w, 8);
}

/* n's decimal digits, at least `width` of them (zeros in front); returns their count. The
 * first 1..8 digits are written as a word of eight bytes, then the rest eight at a time, each
 * store a constant size (no call to memcpy): buf must have room for 7 bytes past the digits,
 * which every caller's RT_NUMTEXT_MAX has (a text here is a few dozen bytes at most). */
static INLINE int digits(char *buf, uint64_t n, int width) {
    int len = decimal_length(n);
    if (len < width) len = width;
    int chunks = (len - 1) / 8, first = len - 8 * chunks; /* a uint64_t has 20 digits at most */
    uint32_t chunk[2];
    for (int c = chunks - 1; c >= 0; c--) {
        chunk[c] = (uint32_t)(n % 100000000u);
        n /= 100000000u;
    }
    store8(buf, (eight_digits((uint32_t)n) + ASCII_ZEROS) >> (8 * (8 - first)));
    for (int c = 0; c < chunks; c++)
        store8(buf + first + 8 * c, eight_digits(chunk[c]) + ASCII_ZEROS);
    return len;
}

int rt_text_int(char *buf, int64_t v) {
    int at = 0;
    uint64_t mag = (uint64_t)v;
    if (v < 0) {
        buf[at++] = '-';
        mag = 0 - mag;
    }
    at += digits(buf + at, mag, 1);
    buf[at] = '\0';
    return at;
}

/* The formats a memo tells apart: %.9g, and %.Nf by its places N (0..9). */
enum { FORMAT_G9 = -1 };

static uint64_t bits_of(double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

/* The memo's text when it was last written for v itself, in this format: a column whose value
 * does not change (the lr, an accuracy of 1) costs a comparison. Else -1. */
static int recall_value(char *buf, const rt_text_memo *memo, double v, int32_t format) {
    if (!memo || memo->len == 0 || memo->format != format || memo->value_bits != bits_of(v))
        return -1;
    memcpy(buf, memo->text, sizeof memo->text); /* the whole of it: a few moves, not a call */
    return memo->len;
}

/* The memo's text when it holds these digits (then it holds them for v too); else -1. */
static int recall(char *buf, rt_text_memo *memo, uint64_t n, int32_t shape, double v) {
    if (!memo || memo->len == 0 || memo->n != n + 1 || memo->shape != shape) return -1;
    memo->value_bits = bits_of(v);
    memcpy(buf, memo->text, sizeof memo->text);
    return memo->len;
}

/* Notes the digits of v. The text is kept only when the same digits come twice in a row: a
 * column whose text changes every row (a loss) then copies nothing, where a copy read the
 * text right after the narrow stores that wrote it, and waited for them. */
static int remember(const char *buf, int len, rt_text_memo *memo, uint64_t n, int32_t shape,
                    double v, int32_t format) {
    if (!memo) return len;
    int again = memo->n == n + 1 && memo->shape == shape && memo->format == format;
    memo->n = n + 1;
    memo->shape = shape;
    memo->value_bits = bits_of(v);
    memo->format = format;
    memo->len = 0;
    if (again && len < (int)sizeof memo->text) {
        memo->len = len;
        memcpy(memo->text, buf, sizeof memo->text); /* buf has RT_NUMTEXT_MAX bytes */
    }
    return len;
}

int rt_text_fixed_memo(char *buf, double v, int places, rt_text_memo *memo) {
    int same = recall_value(buf, memo, v, places);
    if (same >= 0) return same;
    uint64_t n;
    if (places < 0 || places > 9 || !isfinite(v) || !scaled(fabs(v), places, &n))
        return snprintf(buf, RT_NUMTEXT_MAX, "%.*f", places, v);
    int32_t shape = 2 * places + (signbit(v) != 0);
    int len = recall(buf, memo, n, shape, v);
    if (len >= 0) return len;
    int at = 0;
    if (signbit(v)) buf[at++] = '-'; /* printf writes -0.000 for -0.0001 and for -0.0 */
    if (places == 0) { /* a rate's whole number: no division (by a unit of 1, still a div) */
        at += digits(buf + at, n, 1);
    } else {
        uint64_t unit = (uint64_t)pow10_exact[places];
        at += digits(buf + at, n / unit, 1);
        buf[at++] = '.';
        at += digits(buf + at, n % unit, places);
    }
    buf[at] = '\0';
    return remember(buf, at, memo, n, shape, v, places);
}

int rt_text_fixed(char *buf, double v, int places) {
    return rt_text_fixed_memo(buf, v, places, NULL);
}

/* %.9g: the 9 significant digits n (10^8 <= n < 10^9) of a value of decimal exponent x,
 * -13 <= x <= 29 (rt_text_g9_memo's range). The digits are made at once (eight_digits), the
 * trailing zeros found from the word's leading zero bits, and every piece stored with a fixed
 * size, the length then moved on by what it keeps: no loop over the digits, no branch on
 * them. Stores reach at most 16 bytes past the text (RT_NUMTEXT_MAX has the room). */
static int g9_text(char *buf, int negative, uint64_t n, int x) {
    uint64_t rest = eight_digits((uint32_t)(n % 100000000u));
    /* the digits after the first up to the last that is not 0: a 0 digit is a 0 byte */
    int kept = rest ? 8 - __builtin_clzll(rest) / 8 : 0;
    char d[24] = {0}; /* the nine digits, and room for fixed-size copies from any of them */
    d[0] = (char)('0' + n / 100000000u);
    store8(d + 1, rest + ASCII_ZEROS);
    int at = 0;
    if (negative) buf[at++] = '-';
    if (x < -4 || x >= 9) { /* d.ddde-xx */
        buf[at++] = d[0];
        buf[at] = '.';
        memcpy(buf + at + 1, d + 1, 8);
        at += kept > 0 ? kept + 1 : 0;
        buf[at++] = 'e';
        buf[at++] = x < 0 ? '-' : '+';
        memcpy(buf + at, digit_pairs + 2 * (x < 0 ? -x : x), 2);
        at += 2;
    } else if (x >= 0) { /* x + 1 digits before the point, the point only when digits follow */
        memcpy(buf + at, d, 16);
        at += x + 1;
        buf[at] = '.';
        memcpy(buf + at + 1, d + x + 1, 8);
        at += kept > x ? kept - x + 1 : 0;
    } else { /* 0.000ddd */
        memcpy(buf + at, "0.000", 5);
        at += 1 - x; /* "0." and -x - 1 zeros */
        memcpy(buf + at, d, 16);
        at += kept + 1;
    }
    buf[at] = '\0';
    return at;
}

/* The 9 significant digits of a, 1e-13 <= a < 1e30, as an integer n (10^8 <= n < 10^9), and
 * its decimal exponent x; 0 when they cannot be found exactly here (then snprintf writes it).
 * a is in [2^(e2-1), 2^e2) (a is normal here): x is the floor of (e2 - 1) log10(2) or one
 * more, which a comparison with the power of ten between them tells (78913 / 2^18 is log10(2)
 * to well within what these exponents need); the loop still corrects x should the rounded
 * power of ten have misled it, or the rounding carried into a tenth digit. */
static INLINE int g9_digits(double a, int *x_out, uint64_t *n_out) {
    uint64_t bits;
    memcpy(&bits, &a, sizeof bits);
    int e2 = (int)((bits >> 52) & 0x7ff) - 1022;
    int scaled_e = (e2 - 1) * 78913; /* floor(scaled_e / 2^18), for either sign: */
    int x = scaled_e >= 0 ? scaled_e / 262144 : -((-scaled_e + 262143) / 262144);
    x += a >= pow10_g9[x + 1 - POW10_G9_FIRST];
    for (int tries = 0; tries < 4; tries++) {
        int k = 8 - x;
        uint64_t n;
        if (k < -MAX_EXACT_POW10 || k > MAX_EXACT_POW10 || !scaled(a, k, &n)) return 0;
        if (n >= 1000000000u) {
            x++;
        } else if (n < 100000000u) {
            x--;
        } else {
            *x_out = x;
            *n_out = n;
            return 1;
        }
    }
    return 0;
}

int rt_text_g9_memo(char *buf, double v, rt_text_memo *memo) {
    int same = recall_value(buf, memo, v, FORMAT_G9);
    if (same >= 0) return same;
    double a = fabs(v);
    if (a == 0) {
        strcpy(buf, signbit(v) ? "-0" : "0");
        return (int)strlen(buf);
    }
    int x;
    uint64_t n;
    if (!(a >= 1e-13 && a < 1e30) || !g9_digits(a, &x, &n))
        return snprintf(buf, RT_NUMTEXT_MAX, "%.9g", v);
    int32_t shape = 2 * (x + 64) + (signbit(v) != 0);
    int len = recall(buf, memo, n, shape, v);
    if (len >= 0) return len;
    return remember(buf, g9_text(buf, signbit(v) != 0, n, x), memo, n, shape, v, FORMAT_G9);
}

int rt_text_g9(char *buf, double v) {
    return rt_text_g9_memo(buf, v, NULL);
}

int rt_text_shortest(char *buf, size_t size, double v, int f64) {
    if (!isfinite(v)) return snprintf(buf, size, "%g", v);
    int n = 0;
    for (int digits = 1; digits <= (f64 ? 17 : 9); digits++) {
        n = snprintf(buf, size, "%.*g", digits, v);
        double back = strtod(buf, NULL);
        if (f64 ? back == v : (float)back == (float)v) break;
    }
    /* 10, not 1e+01: a number from 10 to 1e17 keeps its digits before the point. */
    const char *e = strchr(buf, 'e');
    int exponent = e ? atoi(e + 1) : -1;
    if (exponent >= 1 && exponent < 17) n = snprintf(buf, size, "%.*g", exponent + 1, v);
    return n;
}
