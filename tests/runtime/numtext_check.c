/* numtext_check.c: runtime/numtext.c against printf. Every value of a list of special points
 * (ties at every decimal place, powers of ten and their neighbours, the ends of the fast
 * ranges, zeros, infinities, NaNs) and of a seeded random walk over all magnitudes is written
 * both ways; the program prints how many it compared and each difference, and exits 1 on any.
 * runtime_tests.py's numtext runs it. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include "numtext.h"

static long compared, differ;

static void same(const char *what, const char *ours, const char *printf_text, double v) {
    compared++;
    if (strcmp(ours, printf_text) == 0) return;
    if (differ++ < 20) printf("differs: %s of %a: '%s', printf '%s'\n", what, v, ours, printf_text);
}

/* One memo per format, as a log column has: it must never give the text of another value. */
static rt_text_memo g9_memo, fixed_memo[10];

static void one(double v) {
    char ours[RT_NUMTEXT_MAX], theirs[RT_NUMTEXT_MAX];
    rt_text_g9(ours, v);
    snprintf(theirs, sizeof theirs, "%.9g", v);
    same("%.9g", ours, theirs, v);
    for (int twice = 0; twice < 2; twice++) {
        rt_text_g9_memo(ours, v, &g9_memo);
        same("%.9g (memo)", ours, theirs, v);
    }
    for (int places = 0; places <= 9; places++) {
        rt_text_fixed(ours, v, places);
        snprintf(theirs, sizeof theirs, "%.*f", places, v);
        same("%.Nf", ours, theirs, v);
        for (int twice = 0; twice < 2; twice++) {
            rt_text_fixed_memo(ours, v, places, &fixed_memo[places]);
            same("%.Nf (memo)", ours, theirs, v);
        }
    }
}

static void both_signs(double v) {
    one(v);
    one(-v);
    one(nextafter(v, INFINITY));
    one(nextafter(v, -INFINITY));
}

static uint64_t state = 0x9E3779B97F4A7C15u;
static uint64_t next(void) { /* splitmix64 */
    uint64_t z = (state += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

/* Integers at every carry: counting up to 10^6, around 10^k for each k and the top of
 * int64_t (each length of the digits' words), negative ones, and the old counter test's
 * jumps, repeats and steps back. */
static void integer(int64_t v) {
    char ours[RT_NUMTEXT_MAX], theirs[RT_NUMTEXT_MAX];
    rt_text_int(ours, v);
    snprintf(theirs, sizeof theirs, "%" PRId64, v);
    same("%lld", ours, theirs, (double)v);
}

static void counters(void) {
    for (int64_t v = 0; v <= 1000000; v++) integer(v);
    for (int k = 1; k <= 18; k++) {
        int64_t p = 1;
        for (int i = 0; i < k; i++) p *= 10;
        for (int64_t v = p - 3; v <= p + 2; v++) {
            integer(v);
            integer(-v);
        }
    }
    for (int64_t v = INT64_MAX - 3; v < INT64_MAX; v++) integer(v);
    integer(INT64_MAX);
    integer(INT64_MIN);
    int64_t odd[] = {5, 5, 4, 6, -1, 0, 1, -10, -9, 99, 100, 98, 99, 100, 101, 7, 8};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) integer(odd[i]);
}

int main(void) {
    double specials[] = {0.0,          1.0,
                         0.5,          1.5,
                         2.5,          0.125,
                         0.375,        1e-5,
                         1e-4,         9.9999999995e-5,
                         0.1,          0.3,
                         999999999.5,  999999998.5,
                         1234567895.0, 1e9,
                         1e15,         4.5e15,
                         1e22,         1e23,
                         1e30,         1e-13,
                         1e-14,        3.14159265358979,
                         2.0 / 3.0,    1e300,
                         5e-324,       INFINITY,
                         NAN};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++) both_signs(specials[i]);
    /* ties at each place: n + 0.5 units of 10^-p, and the same at nine significant digits */
    for (int p = 0; p <= 9; p++)
        for (int64_t n = 0; n < 500; n++) both_signs(((double)n + 0.5) / pow(10, p));
    for (int e = -12; e <= 25; e++)
        for (int64_t n = 100000000; n < 100000000 + 200; n++) {
            both_signs(((double)n + 0.5) * pow(10, e - 8));
            both_signs((double)n * pow(10, e - 8));
        }
    /* random bits over every magnitude, and random short decimals (losses, rates) */
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = next();
        double v;
        memcpy(&v, &bits, sizeof v);
        one(v);
        one((double)(next() % 100000000) / pow(10, (int)(next() % 12)));
        one(ldexp((double)(next() >> 11), (int)(next() % 120) - 90));
    }
    for (int64_t v = -100000; v < 100000; v += 7) {
        char ours[RT_NUMTEXT_MAX], theirs[RT_NUMTEXT_MAX];
        rt_text_int(ours, v * 1000003);
        snprintf(theirs, sizeof theirs, "%lld", (long long)(v * 1000003));
        same("%lld", ours, theirs, (double)v);
    }
    counters();
    char ours[RT_NUMTEXT_MAX], theirs[RT_NUMTEXT_MAX];
    rt_text_int(ours, INT64_MIN);
    snprintf(theirs, sizeof theirs, "%" PRId64, INT64_MIN);
    same("%lld", ours, theirs, 0);
    printf("compared %ld texts, %ld differ\n", compared, differ);
    return differ != 0;
}
