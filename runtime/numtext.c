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
#define BELOW_2_52      4503599627370496.0 /* 2^52 */

/* round(a * 10^k) for a >= 0, k in -22..22; 0 when the result might not be below 2^52. q is
 * a * 10^k rounded; only when its fraction is exactly one half does the sign of its error
 * (the fma, a rare call) decide. */
static int scaled(double a, int k, uint64_t *n) {
    int divide = k < 0;
    double p = pow10_exact[divide ? -k : k], q = divide ? a / p : a * p;
    if (!(q < BELOW_2_52)) return 0;
    int64_t whole = (int64_t)q; /* q >= 0 and below 2^52: its integer part, exactly */
    double f = q - (double)whole;
    *n = (uint64_t)whole;
    if (f == 0.5) {
        double err = divide ? fma(-q, p, a) : fma(a, p, -q);
        if (err > 0 || (err == 0 && (*n & 1))) ++*n;
    } else if (f > 0.5) {
        ++*n;
    }
    return 1;
}

/* "00" to "99": a division by 100 gives two digits at once. */
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
static int decimal_length(uint64_t n) {
    int bits = 64 - __builtin_clzll(n | 1);
    int t = (bits * 1233) >> 12; /* the digits of 2^bits - 1, or one more */
    int len = t + 1 - (n < pow10_u64[t]);
    return len > 0 ? len : 1;
}

/* n's decimal digits, at least `width` of them (zeros in front); returns their count.
 * Counted first, then written from the last one back into buf, a pair a division (of 32 bits
 * once n fits): no copy of a length known only at run time, which is a call to memcpy. */
static int digits(char *buf, uint64_t n, int width) {
    int len = decimal_length(n);
    if (len < width) len = width;
    char *p = buf + len;
    while (n > UINT32_MAX) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * (n % 100), 2);
        n /= 100;
    }
    uint32_t small = (uint32_t)n;
    while (small >= 100) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * (small % 100), 2);
        small /= 100;
    }
    if (small >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * small, 2);
    } else {
        *--p = (char)('0' + small);
    }
    while (p > buf) *--p = '0';
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

/* The formats a memo tells apart: %.9g, %lld, and %.Nf by its places N (0..9). */
enum { FORMAT_G9 = -1, FORMAT_INT = -2 };

static uint64_t bits_of(double v) {
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

/* The memo's text when it was last written for v itself, in this format: a column whose value
 * does not change (the lr, an accuracy of 1) costs a comparison. Else -1. */
static int recall_value(char *buf, const rt_text_memo *memo, double v, int32_t format) {
    if (!memo || memo->n == 0 || memo->format != format || memo->value_bits != bits_of(v))
        return -1;
    memcpy(buf, memo->text, sizeof memo->text); /* the whole of it: a few moves, not a call */
    return memo->len;
}

/* The memo's text when it holds these digits (then it holds them for v too); else -1. */
static int recall(char *buf, rt_text_memo *memo, uint64_t n, int32_t shape, double v) {
    if (!memo || memo->n != n + 1 || memo->shape != shape) return -1;
    memo->value_bits = bits_of(v);
    memcpy(buf, memo->text, sizeof memo->text);
    return memo->len;
}

static int remember(const char *buf, int len, rt_text_memo *memo, uint64_t n, int32_t shape,
                    double v, int32_t format) {
    if (memo && len < (int)sizeof memo->text) {
        memo->n = n + 1;
        memo->shape = shape;
        memo->len = len;
        memo->value_bits = bits_of(v);
        memo->format = format;
        memcpy(memo->text, buf, sizeof memo->text); /* buf has RT_NUMTEXT_MAX bytes */
    }
    return len;
}

/* A counter's digits (len of them and a NUL) plus one, in place: the trailing 9s become 0s
 * and the digit before them goes up, or a 1 goes in front when they were all 9s. Returns the
 * new length. */
static int increment_text(char *text, int len) {
    int i = len - 1;
    while (i >= 0 && text[i] == '9') text[i--] = '0';
    if (i >= 0) {
        text[i]++;
        return len;
    }
    memmove(text + 1, text, (size_t)len + 1);
    text[0] = '1';
    return len + 1;
}

int rt_text_int_memo(char *buf, int64_t v, rt_text_memo *memo) {
    /* n holds the last value plus one (0: nothing), which is v when v follows it. The text
     * is copied out whole and then incremented twice, in buf and in the memo, byte by byte:
     * copying the memo out right after its bytes changed would wait for them (a wide load
     * of narrow stores just made). */
    if (memo->format == FORMAT_INT && memo->n != 0 && v >= 0 && (uint64_t)v == memo->n) {
        memcpy(buf, memo->text, sizeof memo->text);
        increment_text(buf, memo->len);
        memo->len = increment_text(memo->text, memo->len);
        memo->n++;
        return memo->len;
    }
    int len = rt_text_int(buf, v);
    if (v < 0) { /* a counter is never negative: the memo keeps nothing */
        memo->n = 0;
        return len;
    }
    return remember(buf, len, memo, (uint64_t)v, 0, 0.0, FORMAT_INT);
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

/* A few digits (at most 9): a loop, where memcpy of a length known at run time is a call. */
static void copy_chars(char *to, const char *from, int n) {
    for (int i = 0; i < n; i++) to[i] = from[i];
}

/* %.9g: the 9 significant digits n (10^8 <= n < 10^9) of a value of decimal exponent x. */
static int g9_text(char *buf, int negative, uint64_t n, int x) {
    char d[9];
    digits(d, n, 9);
    int last = 8; /* trailing zeros go, and the point with them when nothing follows it */
    int at = 0;
    if (negative) buf[at++] = '-';
    if (x < -4 || x >= 9) {
        while (last > 0 && d[last] == '0') last--;
        buf[at++] = d[0];
        if (last > 0) {
            buf[at++] = '.';
            copy_chars(buf + at, d + 1, last);
            at += last;
        }
        buf[at++] = 'e';
        buf[at++] = x < 0 ? '-' : '+';
        at += digits(buf + at, (uint64_t)(x < 0 ? -x : x), 2);
    } else if (x >= 0) { /* x + 1 digits before the point */
        while (last > x && d[last] == '0') last--;
        copy_chars(buf + at, d, x + 1);
        at += x + 1;
        if (last > x) {
            buf[at++] = '.';
            copy_chars(buf + at, d + x + 1, last - x);
            at += last - x;
        }
    } else { /* 0.000ddd */
        while (d[last] == '0') last--;
        buf[at++] = '0';
        buf[at++] = '.';
        for (int i = 0; i < -x - 1; i++) buf[at++] = '0';
        copy_chars(buf + at, d, last + 1);
        at += last + 1;
    }
    buf[at] = '\0';
    return at;
}

int rt_text_g9_memo(char *buf, double v, rt_text_memo *memo) {
    int same = recall_value(buf, memo, v, FORMAT_G9);
    if (same >= 0) return same;
    double a = fabs(v);
    if (a == 0) {
        strcpy(buf, signbit(v) ? "-0" : "0");
        return (int)strlen(buf);
    }
    if (!(a >= 1e-13 && a < 1e30)) return snprintf(buf, RT_NUMTEXT_MAX, "%.9g", v);
    /* a in [2^(e2-1), 2^e2) (a is normal here): the decimal exponent x, perhaps one off
     * (below); 78913 / 2^18 is log10(2) to well within what the exponents here need. */
    uint64_t bits;
    memcpy(&bits, &a, sizeof bits);
    int e2 = (int)((bits >> 52) & 0x7ff) - 1022;
    int scaled_e = (e2 - 1) * 78913; /* floor(scaled_e / 2^18), for either sign: */
    int x = scaled_e >= 0 ? scaled_e / 262144 : -((-scaled_e + 262143) / 262144);
    for (int tries = 0; tries < 4; tries++) {
        int k = 8 - x;
        uint64_t n;
        if (k < -MAX_EXACT_POW10 || k > MAX_EXACT_POW10 || !scaled(a, k, &n)) break;
        if (n >= 1000000000u) {
            x++;
        } else if (n < 100000000u) {
            x--;
        } else {
            int32_t shape = 2 * (x + 64) + (signbit(v) != 0);
            int len = recall(buf, memo, n, shape, v);
            if (len >= 0) return len;
            return remember(buf, g9_text(buf, signbit(v) != 0, n, x), memo, n, shape, v, FORMAT_G9);
        }
    }
    return snprintf(buf, RT_NUMTEXT_MAX, "%.9g", v);
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
