/* rng.h: the runtime's seeded random numbers: xoshiro256** seeded through splitmix64.
 * Independent streams are derived from one seed, so that, for example, changing the
 * validation fraction does not change the initial weights. */
#ifndef NNRT_RNG_H
#define NNRT_RNG_H

#include <stdint.h>

typedef struct rt_rng {
    uint64_t s[4];
    int has_spare; /* Box-Muller makes normals in pairs; the second waits here */
    double spare;
} rt_rng;

/* What a stream is used for; the value is mixed into the seed. */
enum rt_stream {
    RT_STREAM_INIT = 1,            /* parameter initialisers, in descriptor order */
    RT_STREAM_SPLIT = 2,           /* the permutation that picks validation rows */
    RT_STREAM_SHUFFLE = 3,         /* the per-epoch Fisher-Yates shuffles */
    RT_STREAM_GRADCHECK_POINT = 4, /* gradcheck: the random point's params */
    RT_STREAM_GRADCHECK_ROWS = 5,  /* gradcheck: random inputs and targets */
    RT_STREAM_NOISE = 6,           /* each training step's noise_seed (dropout's masks) */
    RT_STREAM_SEARCH = 7,          /* search: the random strategy's draws */
    RT_STREAM_SAMPLE = 8,          /* sample: the characters drawn */
    RT_STREAM_HOGWILD_SHUFFLE = 9, /* --hogwild: a thread's shuffles of its shard, an epoch */
    RT_STREAM_HOGWILD_NOISE = 10,  /* --hogwild: a thread's noise_seeds, an epoch */
};

void rt_rng_seed(rt_rng *rng, int64_t seed, enum rt_stream stream);
/* One of many streams of the same use: `part` (a thread and an epoch, say) is mixed in, so
 * that each part draws its own numbers, and the same ones whenever it is seeded again. */
void rt_rng_seed_part(rt_rng *rng, int64_t seed, enum rt_stream stream, uint64_t part);
uint64_t rt_rng_next(rt_rng *rng);
/* Uniform in [0, 1), 53 random bits. */
double rt_rng_uniform(rt_rng *rng);
/* Uniform integer in [0, n), unbiased; n > 0. */
uint64_t rt_rng_below(rt_rng *rng, uint64_t n);
/* Standard normal, by the Box-Muller transform. */
double rt_rng_normal(rt_rng *rng);
/* Puts items[0..n) in a uniformly random order (Fisher-Yates, from the last item down). */
void rt_rng_shuffle(rt_rng *rng, int64_t *items, int64_t n);

#endif
