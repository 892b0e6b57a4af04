/* main.c: the entry point of every training executable. The compiled model supplies the
 * descriptor nnrt_model_desc; this picks the command and hands over to train.c or eval.c. */
#include <cblas.h>
#include <stdio.h>
#include <string.h>

#include "blas_kernels.h"
#include "eval.h"
#include "files.h"
#include "gradcheck.h"
#include "model.h"
#include "nnrt.h"
#include "options.h"
#include "ranks.h"
#include "sample.h"
#include "search.h"
#include "train.h"
#include "util.h"
#include "weights.h"

/* Output that could not be written (a full disk, a closed pipe) is a failure, not a
 * silent truncation: "PROG: error: cannot write the output: REASON", exit 1. */
static int finish_stdout(void) {
    rt_output_close(stdout, NULL);
    return 0;
}

static int run(const nnrt_model *m, rt_command cmd, const rt_options *o) {
    switch (cmd) {
    case RT_CMD_TRAIN: return rt_cmd_train(m, o);
    case RT_CMD_EVAL: return rt_cmd_eval(m, o);
    case RT_CMD_PREDICT: return rt_cmd_predict(m, o);
    case RT_CMD_GRADCHECK: return rt_cmd_gradcheck(m, o);
    case RT_CMD_SEARCH: return rt_cmd_search(m, o);
    case RT_CMD_SAMPLE: return rt_cmd_sample(m, o);
    case RT_CMD_VALUES: return rt_cmd_values(m, o);
    case RT_CMD_WEIGHTS: return rt_cmd_weights(m, o);
    default: return RT_EXIT_USAGE;
    }
}

/* `weights FILE ...` reads as `weights --weights FILE ...`: the file is the command's
 * object, given without an option name. */
static char **weights_file_as_option(int *argc, char **argv) {
    if (*argc < 3 || strncmp(argv[2], "-", 1) == 0) return argv;
    char **out = rt_alloc_array((size_t)*argc + 2, sizeof *out);
    out[0] = argv[0];
    out[1] = argv[1];
    out[2] = "--weights";
    for (int i = 2; i < *argc; i++) out[i + 1] = argv[i];
    *argc += 1;
    return out;
}

int main(int argc, char **argv) {
    rt_choose_blas_kernels(argv); /* may execute the program again, with better kernels */
    const nnrt_model *m = &nnrt_model_desc;
    rt_set_program_name(argc > 0 ? argv[0] : NULL);
    rt_check_model(m);
    /* One BLAS thread unless --threads says otherwise: a threaded GEMM may sum in a
     * different order from run to run, and by default the same seed gives the same weights
     * bit for bit. */
    openblas_set_num_threads(1);

    if (argc < 2) {
        rt_print_help(stderr, m);
        return RT_EXIT_USAGE;
    }
    const char *word = argv[1];
    if (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0 || strcmp(word, "help") == 0) {
        rt_print_help(stdout, m);
        return finish_stdout();
    }
    int cmd = rt_find_command(word);
    if (cmd < 0) {
        if (strncmp(word, "-", 1) == 0)
            rt_usage_error("expected a command (train, eval, predict, gradcheck, search, sample "
                           "or weights) before '%s'",
                           word);
        rt_suggest_command(word);
        rt_usage_error("unknown command '%s' (commands: train, eval, predict, gradcheck, search, "
                       "sample, weights)",
                       word);
    }
    if (cmd == RT_CMD_PREDICT && m->n_inputs == 0)
        rt_usage_error("model '%s' has no inputs, so nothing to predict; 'train' prints its params",
                       m->name);

    /* train under mpirun joins the job (docs/mpi.md); every other command is one process. */
    if (cmd == RT_CMD_TRAIN) rt_ranks_start();
    rt_options o;
    rt_options_defaults(m, &o);
    if (cmd == RT_CMD_WEIGHTS) argv = weights_file_as_option(&argc, argv);
    rt_options_parse(m, (rt_command)cmd, argc - 1, argv + 1, &o);
    /* Before OpenBLAS starts threads of its own, so that they inherit it too. */
    if (o.flush_denormals && !m->f64) rt_flush_denormals();
    if (o.threads != 1)
        openblas_set_num_threads(o.threads == 0 ? openblas_get_num_procs() : (int)o.threads);
    else
        rt_blas_one_thread(); /* no idle pool threads spinning beside the run */
    int status = run(m, (rt_command)cmd, &o);
    int out_status = finish_stdout();
    rt_free_all();
    return status ? status : out_status;
}
