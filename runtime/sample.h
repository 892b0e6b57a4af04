/* sample.h: the sample command, text generated a character at a time by the model's
 * one-step form (nnrt.h's nnrt_step; docs/runtime.md, "Sampling"). */
#ifndef NNRT_SAMPLE_H
#define NNRT_SAMPLE_H

#include "nnrt.h"
#include "options.h"

/* Feeds --prime, then prints --length characters drawn from softmax(scores / T) with the
 * seeded generator (T = 0: the most likely each time); with --scores, prints the scores
 * after each character fed instead. */
int rt_cmd_sample(const nnrt_model *m, const rt_options *o);

/* Why the model has no one-step form to sample with, or NULL when it has one. */
const char *rt_step_missing(const nnrt_model *m);

/* Stops the run with "model descriptor: ..." when the one-step form breaks nnrt.h's rules
 * (tensors outside its arenas, carries that do not match, no entry point). */
void rt_check_step(const nnrt_model *m);

#endif
