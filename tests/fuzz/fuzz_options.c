/* fuzz_options.c: a run's command line, as the runtime reads it before it opens a file:
 * rt_options_parse (every option, and search's ranges and lists), then what names the
 * model's params: --l1, --l2 and --freeze (rt_optim_new), --set (rt_set_params) and
 * --trace (rt_trace_open). The model is the hand-written one of tests/runtime/mlp.c: four
 * params, W1[3, 4], b1[4], W2[4, 2], b2[2], f64, with a train block.
 *
 * Input: one byte that picks the command (train, eval, predict, gradcheck, search, sample,
 * values, weights: rt_command's order), then the words of the command line, one a line.
 * --help and -h are left out (they print and end the process with exit 0), and the trace
 * goes to /dev/null whatever --trace-out says (no file is written). */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "init.h"
#include "model.h"
#include "optim.h"
#include "options.h"
#include "trace.h"
#include "util.h"

extern const nnrt_model nnrt_model_desc;

typedef struct CommandLine {
    rt_command cmd;
    int argc;
    char **argv;
} CommandLine;

static void read_command_line(void *arg) {
    const CommandLine *c = arg;
    const nnrt_model *m = &nnrt_model_desc;
    rt_options o;
    rt_options_defaults(m, &o);
    rt_options_parse(m, c->cmd, c->argc, c->argv, &o);
    if (c->cmd != RT_CMD_TRAIN && c->cmd != RT_CMD_SEARCH) return;
    void *fixed = rt_new_fixed_arena(m);
    if (o.set) rt_set_params(m, fixed, o.set, "--set");
    rt_optim_free(rt_optim_new(m, fixed, &o, RT_OPTIM_FUSE_WHEN_ABLE));
    if (o.trace) o.trace_out = "/dev/null";
    rt_trace_close(rt_trace_open(m, &o));
}

/* The lines of text (NUL-terminated, len bytes), each a word of argv after argv[0]. */
static char **words(char *text, size_t len, int *argc) {
    int n = 2;
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    char **argv = calloc((size_t)n + 1, sizeof *argv);
    if (!argv) abort();
    argv[0] = "fuzz";
    *argc = 1;
    for (char *p = text; len > 0;) {
        char *nl = memchr(p, '\n', len);
        if (nl) *nl = '\0';
        if (strcmp(p, "--help") != 0 && strcmp(p, "-h") != 0) argv[(*argc)++] = p;
        if (!nl) break;
        len -= (size_t)(nl + 1 - p);
        p = nl + 1;
    }
    return argv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char *text = fuzz_text(data + 1, size - 1);
    CommandLine c = {(rt_command)(data[0] % RT_N_COMMANDS), 0, NULL};
    c.argv = words(text, size - 1, &c.argc);
    fuzz_rt_call(read_command_line, &c);
    rt_free_all();
    free(c.argv);
    free(text);
    return 0;
}
