/* sample.c: text generated a character at a time (see sample.h). The model's one-step form
 * (nnrt.h, nnrt_step) runs one character from the recurrent state the previous call left:
 * the runtime keeps that state (the carries) between calls and hands it back each time. */
#include "sample.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "checkpoint.h"
#include "files.h"
#include "model.h"
#include "rng.h"
#include "text.h"
#include "util.h"

/* ---- the descriptor ---- */

static void check_step_tensors(const nnrt_step *s, const nnrt_tensor *ts, int32_t n,
                               const char *role) {
    if (n < 0 || (n > 0 && !ts)) rt_fatal("model descriptor: bad one-step %s list", role);
    for (int32_t i = 0; i < n; i++)
        rt_check_tensor_place(&ts[i], role, s->fixed_elems, s->varying_elems);
}

const char *rt_step_missing(const nnrt_model *m) {
    if (m->step.step) return NULL;
    return m->step.missing ? m->step.missing : "it was compiled without a one-step form";
}

void rt_check_step(const nnrt_model *m) {
    const nnrt_step *s = &m->step;
    if (!s->step) return;
    if (s->fixed_elems < 0 || s->varying_elems < 0)
        rt_fatal("model descriptor: a one-step form with bad arena sizes");
    check_step_tensors(s, s->params, s->n_params, "param");
    check_step_tensors(s, s->states, s->n_states, "state");
    check_step_tensors(s, &s->input, 1, "input");
    check_step_tensors(s, &s->output, 1, "output");
    check_step_tensors(s, s->carries, s->n_carries, "carry");
    check_step_tensors(s, s->carries_out, s->n_carries, "carry");
    check_step_tensors(s, s->carries_init, s->n_carries, "carry");
    for (int32_t i = 0; i < s->n_carries; i++)
        if (s->carries_out[i].numel != s->carries[i].numel ||
            s->carries_init[i].numel != s->carries[i].numel)
            rt_fatal("model descriptor: carry '%s' changes size", s->carries[i].name);
    if (s->output.numel != m->train.vocab ||
        (s->input.numel != 1 && s->input.numel != m->train.vocab))
        rt_fatal("model descriptor: the one-step form takes %lld and gives %lld values, for a "
                 "vocabulary of %lld",
                 (long long)s->input.numel, (long long)s->output.numel, (long long)m->train.vocab);
}

/* ---- running the one-step form ---- */

typedef struct stepper {
    const nnrt_model *m;
    const nnrt_step *s;
    nnrt_ctx ctx;  /* a batch of one, in the step's own arenas */
    void *carries; /* every carry as the last call left it, one after the other */
} stepper;

static void *step_data(const stepper *st, const nnrt_tensor *t) {
    return rt_elem_ptr(t->varying ? st->ctx.varying : st->ctx.fixed, t->offset, st->m->f64);
}

/* Each of `to` (the step's params or states) gets the values of the model's tensor of the
 * same name, in the arena `fixed` the weights were loaded into. */
static void copy_by_name(const stepper *st, const void *fixed, const nnrt_tensor *from,
                         int32_t n_from, const nnrt_tensor *to, int32_t n_to, const char *role) {
    size_t esize = rt_elem_size(st->m->f64);
    for (int32_t i = 0; i < n_to; i++) {
        const nnrt_tensor *t = &to[i], *f = NULL;
        for (int32_t j = 0; j < n_from && !f; j++)
            if (strcmp(from[j].name, t->name) == 0) f = &from[j];
        if (!f || f->numel != t->numel)
            rt_fatal("model descriptor: the one-step form's %s '%s' is not one of the model's",
                     role, t->name);
        memcpy(step_data(st, t), rt_elem_cptr(fixed, f->offset, st->m->f64),
               (size_t)t->numel * esize);
    }
}

/* Copies every carry between the saved state and the step's tensors (`ts`). */
static void move_carries(const stepper *st, const nnrt_tensor *ts, int into_step) {
    size_t esize = rt_elem_size(st->m->f64);
    char *saved = st->carries;
    for (int32_t i = 0; i < st->s->n_carries; i++) {
        size_t bytes = (size_t)ts[i].numel * esize;
        if (into_step)
            memcpy(step_data(st, &ts[i]), saved, bytes);
        else
            memcpy(saved, step_data(st, &ts[i]), bytes);
        saved += bytes;
    }
}

/* One character in (its id), the next character's scores out; the carries move on. The
 * step may use its input tensors as scratch, so they are written before every call. */
static void feed(stepper *st, int32_t id) {
    const nnrt_tensor *in = &st->s->input;
    void *x = step_data(st, in);
    int f64 = st->m->f64;
    if (in->numel == 1) {
        rt_set(x, 0, f64, (double)id);
    } else {
        memset(x, 0, (size_t)in->numel * rt_elem_size(f64));
        rt_set(x, id, f64, 1.0);
    }
    move_carries(st, st->s->carries, 1);
    st->s->step(&st->ctx);
    move_carries(st, st->s->carries_out, 0);
}

/* The one-step form with the weights of `fixed`, its carries at their start: every call
 * computes each scan's first carry (it does not depend on the input), so one call with any
 * character gives them. */
static stepper start(const nnrt_model *m, const void *fixed) {
    const nnrt_step *s = &m->step;
    stepper st = {.m = m, .s = s};
    st.ctx.fixed = rt_alloc_aligned((size_t)s->fixed_elems, rt_elem_size(m->f64));
    st.ctx.varying = rt_alloc_aligned((size_t)s->varying_elems, rt_elem_size(m->f64));
    st.ctx.batch = st.ctx.batch_cap = 1;
    st.ctx.training = NNRT_INFERENCE;
    int64_t carry_elems = 0;
    for (int32_t i = 0; i < s->n_carries; i++) carry_elems += s->carries[i].numel;
    st.carries = rt_alloc_aligned((size_t)(carry_elems ? carry_elems : 1), rt_elem_size(m->f64));
    copy_by_name(&st, fixed, m->params, m->n_params, s->params, s->n_params, "param");
    copy_by_name(&st, fixed, m->states, m->n_states, s->states, s->n_states, "state");
    feed(&st, 0);
    move_carries(&st, s->carries_init, 0);
    return st;
}

static void stop(stepper *st) {
    rt_free(st->ctx.fixed);
    rt_free(st->ctx.varying);
    rt_free(st->carries);
}

/* ---- drawing ---- */

/* The next character's id among the first n scores: from softmax(scores / T), or the
 * largest (the first of equals) when T is 0. */
static int32_t draw(const stepper *st, int32_t n, double temperature, rt_rng *rng, int64_t fed) {
    const void *z = step_data(st, &st->s->output);
    int f64 = st->m->f64;
    int32_t best = 0;
    for (int32_t i = 0; i < n; i++) {
        double zi = rt_get(z, i, f64);
        if (!isfinite(zi))
            rt_fatal("the model's score of character %d is %g after %lld characters: the "
                     "weights do not give a distribution to draw from",
                     i, zi, (long long)fed);
        if (zi > rt_get(z, best, f64)) best = i;
    }
    if (temperature == 0.0) return best;
    double top = rt_get(z, best, f64), sum = 0.0;
    for (int32_t i = 0; i < n; i++) sum += exp((rt_get(z, i, f64) - top) / temperature);
    double u = rt_rng_uniform(rng) * sum;
    for (int32_t i = 0; i < n; i++) {
        u -= exp((rt_get(z, i, f64) - top) / temperature);
        if (u < 0.0) return i;
    }
    return best; /* rounding left u at 0 or just above: the largest is as good as any */
}

/* ---- the command ---- */

/* The prime's ids in the weights' vocabulary; an empty or missing prime is a newline, or
 * the vocabulary's first character when it has none. */
static int32_t *prime_ids(const rt_options *o, rt_vocab *vocab, int64_t *n) {
    if (o->prime && *o->prime) {
        int32_t *ids;
        rt_text_encode("--prime", o->prime, strlen(o->prime), vocab,
                       rt_vocab_source("the weights", o->weights), &ids, n);
        return ids;
    }
    int32_t *ids = rt_alloc(sizeof *ids);
    ids[0] = 0;
    for (int32_t i = 0; i < vocab->n; i++)
        if (vocab->chars[i] == '\n') ids[0] = i;
    *n = 1;
    return ids;
}

static void print_scores(const stepper *st) {
    const void *z = step_data(st, &st->s->output);
    for (int64_t i = 0; i < st->s->output.numel; i++)
        printf("%s%.9g", i ? "," : "", rt_get(z, i, st->m->f64));
    putchar('\n');
}

static void print_char(const rt_vocab *vocab, int32_t id) {
    char utf8[4];
    fwrite(utf8, 1, rt_put_utf8(vocab->chars[id], utf8), stdout);
}

int rt_cmd_sample(const nnrt_model *m, const rt_options *o) {
    const char *missing = rt_step_missing(m);
    if (missing) rt_fatal("model '%s' cannot sample: %s", m->name, missing);
    void *fixed = rt_new_fixed_arena(m);
    rt_stats stats;
    rt_load_weights(m, fixed, o->weights, &stats);
    rt_vocab *vocab = &stats.vocab;
    if (vocab->n == 0)
        rt_path_error(o->weights,
                      "no text vocabulary (metadata '%s'): sample prints the characters of the "
                      "vocabulary the model was trained with, and these weights were not saved "
                      "by its training",
                      RT_VOCAB_KEY);
    if (vocab->n > m->step.output.numel)
        rt_path_error(o->weights,
                      "its vocabulary has %d characters, more than model '%s' scores (%lld)",
                      vocab->n, m->name, (long long)m->step.output.numel);
    int64_t n_prime;
    int32_t *prime = prime_ids(o, vocab, &n_prime);
    rt_rng rng;
    rt_rng_seed(&rng, o->seed, RT_STREAM_SAMPLE);
    stepper st = start(m, fixed);
    for (int64_t i = 0; i < n_prime; i++) {
        feed(&st, prime[i]);
        if (o->print_scores) print_scores(&st);
    }
    for (int64_t i = 0; i < o->length; i++) {
        int32_t id = draw(&st, vocab->n, o->temperature, &rng, n_prime + i);
        if (!o->print_scores) print_char(vocab, id);
        if (i + 1 == o->length) break; /* the last character needs no scores after it */
        feed(&st, id);
        if (o->print_scores) print_scores(&st);
        rt_output_check(stdout, NULL); /* a closed pipe stops the characters */
    }
    stop(&st);
    rt_free(prime);
    rt_free(fixed);
    return 0;
}
