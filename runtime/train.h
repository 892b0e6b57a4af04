/* train.h: the train command. */
#ifndef NNRT_TRAIN_H
#define NNRT_TRAIN_H

#include "nnrt.h"
#include "options.h"

/* Trains from the initialisers (or --init-weights), prints the final lines on stdout and
 * saves the weights. Errors exit; returns the exit status otherwise. */
int rt_cmd_train(const nnrt_model *m, const rt_options *o);

/* The starting weights: --init-weights when given, else the initialisers from the init
 * stream of the seed. */
void rt_start_weights(const nnrt_model *m, void *fixed, const char *init_weights, int64_t seed);

#endif
