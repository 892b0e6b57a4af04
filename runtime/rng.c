/* rng.c: xoshiro256** (Blackman and Vigna), seeded through splitmix64 as its authors
 * recommend. Our own generator rather than rand(): the same seed gives the same numbers on
 * every libc, which is what makes training runs reproducible bit for bit. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

void rt_rng_seed(rt_rng *rng, int64_t seed, enum rt_stream stream) {
    /* Hash the seed first so that seeds n and n ^ stream do not share a state. */
    uint64_t x = (uint64_t)seed;
    uint64_t mixed = splitmix64(&x) ^ ((uint64_t)stream * 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&mixed);
    rng->has_spare = 0;
    rng->spare = 0.0;
}

void rt_rng_seed_part(rt_rng *rng, int64_t seed, enum rt_stream stream, uint64_t part) {
    uint64_t x = part;
    rt_rng_seed(rng, seed ^ (int64_t)splitmix64(&x), stream);
}

uint64_t rt_rng_next(rt_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rt_rng_uniform(rt_rng *rng) {
    return (double)(rt_rng_next(rng) >> 11) * 0x1.0p-53;
}

uint64_t rt_rng_below(rt_rng *rng, uint64_t n) {
    /* Reject x at or above floor(UINT64_MAX / n) * n (the top partial copy of [0, n)) so
     * every value is equally likely. That is x's copy starting above UINT64_MAX - n: the same
     * test with one division, the one the result needs (a shuffle draws once per row). */
    for (;;) {
        uint64_t x = rt_rng_next(rng), r = x % n;
        if (x - r <= UINT64_MAX - n) return r;
    }
}

double rt_rng_normal(rt_rng *rng) {
    if (rng->has_spare) {
        rng->has_spare = 0;
        return rng->spare;
    }
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = 1.0 - rt_rng_uniform(rng); /* (0, 1]: log(u1) is finite */
    double u2 = rt_rng_uniform(rng);
    double r = sqrt(-2.0 * log(u1));
    rng->spare = r * sin(two_pi * u2);
    rng->has_spare = 1;
    return r * cos(two_pi * u2);
}

void rt_rng_shuffle(rt_rng *rng, int64_t *items, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rt_rng_below(rng, (uint64_t)i + 1);
        int64_t t = items[i];
        items[i] = items[j];
        items[j] = t;
    }
}
