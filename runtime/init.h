/* init.h: parameter initialisers (enum nnrt_init in nnrt.h). */
#ifndef NNRT_INIT_H
#define NNRT_INIT_H

#include "nnrt.h"
#include "rng.h"

/* Fills every param in the fixed arena by its initialiser, in descriptor order, drawing
 * from rng (element by element, in memory order). */
void rt_init_params(const nnrt_model *m, void *fixed, rt_rng *rng);

/* States start at a constant (zeros, ones or a number; rt_check_model checks): they draw
 * nothing, so a model's params start the same with or without them. rt_init_params sets
 * them too, after the params. */
int rt_init_is_constant(int32_t init);
void rt_init_state(const nnrt_model *m, void *fixed, const nnrt_tensor *t);
void rt_init_states(const nnrt_model *m, void *fixed);

/* --set NAME=X[,NAME=X...]: each named param (an exact name or a glob) filled with X, in
 * order, so a later item wins. An item that is not NAME=number, or names no param, is a
 * usage error naming `option` ("--set", "the train block's set"). */
void rt_set_params(const nnrt_model *m, void *fixed, const char *spec, const char *option);

/* fan_in and fan_out of a param per the rule in nnrt.h. */
void rt_fans(const nnrt_tensor *t, double *fan_in, double *fan_out);

/* The initialiser's name as the .nn file spells it ("glorot"), for messages; NULL when the
 * code is unknown. */
const char *rt_init_name(int32_t init);

#endif
