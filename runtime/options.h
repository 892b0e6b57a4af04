/* options.h: the command line of a training executable: its commands, and the options of
 * each with defaults taken from the descriptor's train block. One table in options.c drives
 * both parsing and --help. */
#ifndef NNRT_OPTIONS_H
#define NNRT_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "nnrt.h"

typedef enum rt_command {
    RT_CMD_TRAIN,
    RT_CMD_EVAL,
    RT_CMD_PREDICT,
    RT_CMD_GRADCHECK,
    RT_N_COMMANDS
} rt_command;

typedef struct rt_options {
    const char *data; /* NULL: the descriptor's files (train, eval, gradcheck) or stdin (predict) */
    int64_t epochs, steps, batch, seed;
    double lr, momentum, validation;
    int shuffle;
    const char *init_weights; /* NULL: the initialisers */
    const char *save;         /* NULL after --no-save */
    const char *log;          /* NULL: no log */
    const char *trace;        /* NULL: no trace; else "NAME[,NAME...]" of params */
    const char *trace_out;    /* NULL or "-": standard output */
    const char *weights;      /* eval, predict */
    int quiet;
} rt_options;

/* The command named by word, or -1. */
int rt_find_command(const char *word);
const char *rt_command_name(rt_command cmd);

/* The defaults: the descriptor's train block, and NAME.safetensors for weights. */
void rt_options_defaults(const nnrt_model *m, rt_options *o);

/* Parses argv[1..argc-1] (argv[0] is the command word) over the defaults in *o. --help
 * prints the command's help to stdout and exits 0; a bad option exits 2. */
void rt_options_parse(const nnrt_model *m, rt_command cmd, int argc, char **argv, rt_options *o);

/* Usage, every command and every option with its default. */
void rt_print_help(FILE *out, const nnrt_model *m);
/* One command's usage and options. */
void rt_print_command_help(FILE *out, const nnrt_model *m, rt_command cmd);

#endif
