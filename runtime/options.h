/* options.h: the command line of a training executable: its commands, and the options of
 * each with defaults taken from the descriptor's train block. One table in options.c drives
 * both parsing and --help. */
#ifndef NNRT_OPTIONS_H
#define NNRT_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "nnrt.h"
#include "option_limits.h"

typedef enum rt_command {
    RT_CMD_TRAIN,
    RT_CMD_EVAL,
    RT_CMD_PREDICT,
    RT_CMD_GRADCHECK,
    RT_CMD_SEARCH,
    RT_CMD_SAMPLE,
    RT_CMD_VALUES,
    RT_CMD_WEIGHTS,
    RT_N_COMMANDS
} rt_command;

/* Field names of the settings are the names in settings.def: options.c builds their
 * table entries from that file, so a setting without a field here does not compile. */
typedef struct rt_options {
    const char *data; /* NULL: the descriptor's files (train, eval, gradcheck) or stdin (predict) */
    int64_t epochs, steps, batch, seed;
    double lr, momentum, validation;
    int shuffle;
    /* settings.def */
    const char *optimizer;
    int optimizer_given; /* --optimizer on the command line, not only in the train block */
    int nesterov;
    double beta1, beta2, rho, eps, weight_decay; /* NAN: the optimizer's own default */
    const char *schedule;
    int64_t step_every;
    double step_factor, gamma, min_lr;
    int64_t warmup;
    const char *l1, *l2; /* NULL: no penalty */
    double clip;
    int early_stopping;
    int64_t patience;
    const char *monitor;
    const char *validation_data;
    int standardize;
    int64_t checkpoint_every;
    int64_t threads;
    int flush_denormals; /* f32: subnormal results and operands as 0 (rt_flush_denormals) */
    int64_t workers;     /* data-parallel threads (workers.h) */
    int64_t stride;      /* text data: 0 for seq */
    const char *freeze;  /* NULL: every param trains */
    double dropout;      /* NAN: each dropout's compiled rate */
    const char *set;     /* "NAME=X,...": params' start values, after --init-weights */
    /* runtime-only */
    const char *columns;    /* "x=a..b,y=c": column maps by index or header name */
    const char *checkpoint; /* where --checkpoint-every and Ctrl-C save */
    const char *resume;     /* a checkpoint to continue from */
    const char *plot;       /* NULL: no SVG */
    int64_t trials;         /* search */
    const char *strategy;   /* search: random, grid or tpe */
    int64_t startup_trials; /* search --strategy tpe: random trials before the model's */
    int64_t folds;          /* search: k-fold cross-validation; 0: off */
    /* search: options given a range or a list ("1e-4..1e-1:log", "16,32"), kept as written */
    int n_search;
    const char *search_names[64], *search_specs[64];
    const char *init_weights; /* NULL: the initialisers */
    const char *save;         /* NULL after --no-save */
    const char *log;          /* NULL: no log */
    const char *trace;        /* NULL: no trace; else "NAME[,NAME...]" of params */
    const char *trace_out;    /* NULL or "-": standard output */
    const char *weights;      /* eval, predict */
    const char *output;       /* predict: "NAME[,NAME...]" of bindings to print, or NULL */
    int print_loss;           /* predict --loss */
    int print_classes;        /* predict --classes */
    int print_probabilities;  /* predict --probabilities */
    int log_grad_norms;       /* train: gradient norms in the log and the plot */
    int log_update_ratios;    /* train: ||update|| / ||weights|| in the log and the plot */
    int64_t length;           /* sample: characters to print */
    double temperature;       /* sample: softmax(z / T); 0: the most likely character */
    const char *prime;        /* sample: the text to start from; NULL: a newline */
    int print_scores;         /* sample --scores */
    int64_t row;              /* values: the row of the data (from 0) */
    int print_all;            /* weights --all: every value */
    const char *tensors;      /* weights --name: NAME[,NAME...] or globs; NULL: all */
    int64_t hogwild;          /* train: HOGWILD! threads; 0: off */
    int quiet;
} rt_options;

/* The command named by word, or -1. */
int rt_find_command(const char *word);
const char *rt_command_name(rt_command cmd);
/* rt_hint("did you mean COMMAND?") for a word that is no command but near one. */
void rt_suggest_command(const char *word);

/* The defaults: the descriptor's train block, and NAME.safetensors for weights. */
void rt_options_defaults(const nnrt_model *m, rt_options *o);

/* Parses argv[1..argc-1] (argv[0] is the command word) over the defaults in *o. --help
 * prints the command's help to stdout and exits 0; a bad option exits 2. */
void rt_options_parse(const nnrt_model *m, rt_command cmd, int argc, char **argv, rt_options *o);

/* Sets one option by its name ("lr", "weight-decay" or "weight_decay") as --NAME VALUE
 * would; a bad value is a usage error naming the option. Returns 0 when no option of the
 * train command has that name. */
int rt_options_set(const nnrt_model *m, rt_options *o, const char *name, const char *value);

/* Whether the named option takes a number (REAL or INT), for search ranges. 'r', 'i', or 0
 * for the other kinds (words, on/off, text). */
int rt_option_number_kind(const char *name);

/* Usage, every command and every option with its default. */
void rt_print_help(FILE *out, const nnrt_model *m);
/* One command's usage and options. */
void rt_print_command_help(FILE *out, const nnrt_model *m, rt_command cmd);

#endif
