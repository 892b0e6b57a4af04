/* train.h: the train command, and the training run that search repeats. */
#ifndef NNRT_TRAIN_H
#define NNRT_TRAIN_H

#include <stdint.h>

#include "data.h"
#include "model.h"
#include "nnrt.h"
#include "options.h"

/* Trains from the initialisers (or --init-weights, or --resume), prints the final lines on
 * stdout and saves the weights. Errors exit; returns the exit status otherwise. */
int rt_cmd_train(const nnrt_model *m, const rt_options *o);

/* The no-clobber check of the files train (or search, which writes only --save and --plot)
 * reads and writes: no output may be an input or another output (rt_check_file_uses). A
 * clash is a usage error, before anything is opened for writing. */
void rt_check_run_files(const nnrt_model *m, const rt_options *o, int search);

/* The starting weights: the initialisers from the init stream of the seed, then the params
 * --init-weights has (partial: transfer and pre-training), then the values of --set. */
void rt_start_weights(const nnrt_model *m, void *fixed, const rt_options *o);

/* nnrt_ctx.dropout_keep for --dropout: 0 without it (each dropout's compiled rate). */
double rt_dropout_keep(const rt_options *o);

/* The rows a run trains and validates on, loaded once: the training file (one row and no
 * values for a model without inputs), the validation rows (a held-out fraction of it, or a
 * separate file), and, with --standardize, the statistics already applied to both. */
typedef struct rt_train_data {
    rt_dataset train, separate; /* separate: --validation-data (0 rows without it) */
    const rt_dataset *validation;
    int64_t *train_rows, n_train;
    int64_t *validation_rows, n_validation;
    rt_stats stats;
} rt_train_data;

void rt_load_train_data(const nnrt_model *m, const rt_options *o, rt_train_data *data);

/* A warning on stderr when --workers or --hogwild start more threads than the CPUs the
 * process may use (rank 0 only): they run, but take turns. */
void rt_warn_threads_beyond_cpus(const rt_options *o);

/* One quiet training run (search's trial) on data from fresh initial weights into fixed;
 * sets the validation metrics of the weights it ends with (the best epoch's with early
 * stopping; for a model without inputs, its final loss). Returns 0 when the loss or a gradient went
 * non-finite (or the validation loss is), 1 otherwise. */
int rt_train_trial(const nnrt_model *m, const rt_options *o, const rt_train_data *data, void *fixed,
                   rt_metrics *validation);

#endif
