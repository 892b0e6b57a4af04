/* options.c: the option table, parsing, and help (see options.h). */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

enum opt_kind {
    OPT_PATH,   /* a file name */
    OPT_INT,    /* a whole number >= min */
    OPT_REAL,   /* a finite number in [min, max) */
    OPT_ON_OFF, /* on or off */
    OPT_FLAG,   /* no value: sets an int to 1 */
    OPT_CLEAR,  /* no value: sets a path to NULL */
};

#define FOR_TRAIN     (1u << RT_CMD_TRAIN)
#define FOR_EVAL      (1u << RT_CMD_EVAL)
#define FOR_PREDICT   (1u << RT_CMD_PREDICT)
#define FOR_GRADCHECK (1u << RT_CMD_GRADCHECK)

typedef struct opt_spec {
    const char *name, *metavar;
    enum opt_kind kind;
    size_t offset; /* of the field in rt_options */
    unsigned commands;
    int needs_inputs; /* meaningless for a model without inputs (no data, no epochs) */
    double min, max;
    const char *help; /* NULL: depends on the model, see help_text() */
} opt_spec;

#define AT(field) offsetof(rt_options, field)

static const opt_spec option_table[] = {
    {"--data", "PATH", OPT_PATH, AT(data), FOR_TRAIN | FOR_EVAL | FOR_PREDICT | FOR_GRADCHECK, 1, 0,
     0, NULL},
    {"--weights", "FILE", OPT_PATH, AT(weights), FOR_EVAL | FOR_PREDICT, 0, 0, 0,
     "the weights (safetensors)"},
    {"--epochs", "N", OPT_INT, AT(epochs), FOR_TRAIN, 1, 0, 0, "passes over the training rows"},
    {"--steps", "N", OPT_INT, AT(steps), FOR_TRAIN, 0, 0, 0, NULL},
    {"--batch", "N", OPT_INT, AT(batch), FOR_TRAIN, 1, 1, 0, "rows per update step"},
    {"--lr", "X", OPT_REAL, AT(lr), FOR_TRAIN, 0, 0, INFINITY, "learning rate"},
    {"--momentum", "X", OPT_REAL, AT(momentum), FOR_TRAIN, 0, 0, 1,
     "momentum: v = momentum*v + grad, param -= lr*v"},
    {"--seed", "N", OPT_INT, AT(seed), FOR_TRAIN | FOR_GRADCHECK, 0, -INFINITY, 0, NULL},
    {"--shuffle", "on|off", OPT_ON_OFF, AT(shuffle), FOR_TRAIN, 1, 0, 0,
     "shuffle the training rows every epoch"},
    {"--validation", "F", OPT_REAL, AT(validation), FOR_TRAIN, 1, 0, 1,
     "fraction of the rows held out for validation"},
    {"--init-weights", "FILE", OPT_PATH, AT(init_weights), FOR_TRAIN, 0, 0, 0,
     "start from these weights, not the initialisers"},
    {"--save", "FILE", OPT_PATH, AT(save), FOR_TRAIN, 0, 0, 0, "write the final weights here"},
    {"--no-save", NULL, OPT_CLEAR, AT(save), FOR_TRAIN, 0, 0, 0, "do not write the weights"},
    {"--log", "FILE", OPT_PATH, AT(log), FOR_TRAIN, 0, 0, 0, NULL},
    {"--trace", "NAME,...", OPT_PATH, AT(trace), FOR_TRAIN, 0, 0, 0,
     "CSV of these params and the loss at every step"},
    {"--trace-out", "FILE", OPT_PATH, AT(trace_out), FOR_TRAIN, 0, 0, 0,
     "where --trace writes; on stdout the final lines go to stderr"},
    {"--quiet", NULL, OPT_FLAG, AT(quiet), FOR_TRAIN, 0, 0, 0, "no progress lines on stderr"},
};

#define N_OPTIONS ((int)(sizeof option_table / sizeof option_table[0]))

static const char *const command_names[RT_N_COMMANDS] = {"train", "eval", "predict", "gradcheck"};

int rt_find_command(const char *word) {
    for (int c = 0; c < RT_N_COMMANDS; c++)
        if (strcmp(word, command_names[c]) == 0) return c;
    return -1;
}

const char *rt_command_name(rt_command cmd) {
    return command_names[cmd];
}

static int has_inputs(const nnrt_model *m) {
    return m->n_inputs > 0;
}

static int applies(const opt_spec *o, const nnrt_model *m, rt_command cmd) {
    return (o->commands & (1u << cmd)) && (!o->needs_inputs || has_inputs(m));
}

static int command_applies(const nnrt_model *m, rt_command cmd) {
    return cmd != RT_CMD_PREDICT || has_inputs(m);
}

void rt_options_defaults(const nnrt_model *m, rt_options *o) {
    const nnrt_train_defaults *t = &m->train;
    memset(o, 0, sizeof *o);
    o->epochs = t->epochs;
    o->steps = t->steps;
    o->batch = t->batch;
    o->seed = t->seed;
    o->lr = t->lr;
    o->momentum = t->momentum;
    o->validation = t->validation;
    o->shuffle = t->shuffle != 0;
    const char *name = m->name && *m->name ? m->name : "model";
    size_t n = strlen(name);
    char *weights = rt_alloc(n + sizeof ".safetensors");
    memcpy(weights, name, n);
    memcpy(weights + n, ".safetensors", sizeof ".safetensors");
    o->save = o->weights = weights;
}

/* ---- help ---- */

static const char *command_help(const nnrt_model *m, rt_command cmd) {
    int classify = m->train.classification && has_inputs(m);
    switch (cmd) {
    case RT_CMD_TRAIN:
        return classify ? "train the model, print the final loss and accuracy, save the weights"
                        : "train the model, print the final loss, save the weights";
    case RT_CMD_EVAL:
        if (!has_inputs(m)) return "print the loss of saved weights";
        return classify ? "print the loss and accuracy of saved weights on a data set"
                        : "print the loss of saved weights on a data set";
    case RT_CMD_PREDICT: return "print the model's output for each input row";
    case RT_CMD_GRADCHECK:
        return m->f64 ? "compare grad() with finite differences of the loss at two points"
                      : "compare grad() with finite differences (needs an f64 model)";
    default: return "";
    }
}

static const char *help_text(const opt_spec *o, const nnrt_model *m, rt_command cmd) {
    if (o->help) return o->help;
    if (strcmp(o->name, "--data") == 0) {
        if (cmd == RT_CMD_PREDICT) return "CSV rows of the inputs' values, or IDX images";
        if (cmd == RT_CMD_GRADCHECK) return "the batch is its first 8 rows; random without data";
        return m->train.data_kind && strcmp(m->train.data_kind, "idx") == 0
                   ? "IMAGES,LABELS: two IDX files"
                   : "CSV data file";
    }
    if (strcmp(o->name, "--steps") == 0)
        return has_inputs(m) ? "stop after N update steps in all; 0: no limit" : "update steps";
    if (strcmp(o->name, "--seed") == 0 && cmd == RT_CMD_GRADCHECK)
        return has_inputs(m) ? "seed of the initial weights, the random point and random rows"
                             : "seed of the initial weights and the random point";
    if (strcmp(o->name, "--seed") == 0)
        return has_inputs(m) ? "seed of init, validation split and shuffling"
                             : "seed of the initialisers";
    if (strcmp(o->name, "--log") == 0) {
        if (!has_inputs(m)) return "CSV log, a row per step: step,loss,seconds";
        return m->train.classification ? "CSV log, a row per epoch: epoch,loss,accuracy,seconds"
                                       : "CSV log, a row per epoch: epoch,loss,seconds";
    }
    return "";
}

/* The default shown for an option; NULL for flags. */
static const char *default_text(const opt_spec *o, const nnrt_model *m, rt_command cmd,
                                const rt_options *d, char *buf, size_t size) {
    const char *field = (const char *)d + o->offset;
    switch (o->kind) {
    case OPT_INT: snprintf(buf, size, "%lld", (long long)*(const int64_t *)field); return buf;
    case OPT_REAL: snprintf(buf, size, "%g", *(const double *)field); return buf;
    case OPT_ON_OFF: return *(const int *)field ? "on" : "off";
    case OPT_FLAG:
    case OPT_CLEAR: return NULL;
    case OPT_PATH: break;
    }
    const char *path = *(const char *const *)field;
    if (path) return path;
    if (strcmp(o->name, "--trace-out") == 0) return "standard output";
    if (strcmp(o->name, "--data") != 0) return "none";
    if (cmd == RT_CMD_PREDICT) return "standard input";
    const nnrt_train_defaults *t = &m->train;
    if (!t->data_path) return "none";
    if (!t->data_path2) return t->data_path;
    snprintf(buf, size, "%s,%s", t->data_path, t->data_path2);
    return buf;
}

static void print_options(FILE *out, const nnrt_model *m, rt_command cmd) {
    rt_options d;
    rt_options_defaults(m, &d);
    for (int i = 0; i < N_OPTIONS; i++) {
        const opt_spec *o = &option_table[i];
        if (!applies(o, m, cmd)) continue;
        char left[64], buf[8192];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        const char *def = default_text(o, m, cmd, &d, buf, sizeof buf);
        fprintf(out, "  %-21s %s", left, help_text(o, m, cmd));
        if (def) fprintf(out, " (default: %s)", def);
        fputc('\n', out);
    }
}

static void print_about(FILE *out, const nnrt_model *m) {
    fprintf(out, "Trains and runs the model '%s'", m->name ? m->name : "?");
    if (m->source) fprintf(out, ", compiled by nnc from %s", m->source);
    fprintf(out, ".\nDefaults come from the model's train block; options override them.\n");
}

void rt_print_help(FILE *out, const nnrt_model *m) {
    const char *prog = rt_program_name();
    fprintf(out, "usage: %s COMMAND [OPTIONS]\n\n", prog);
    print_about(out, m);
    fprintf(out, "\ncommands:\n");
    for (int c = 0; c < RT_N_COMMANDS; c++)
        if (command_applies(m, (rt_command)c))
            fprintf(out, "  %-10s %s\n", command_names[c], command_help(m, (rt_command)c));
    for (int c = 0; c < RT_N_COMMANDS; c++) {
        if (!command_applies(m, (rt_command)c)) continue;
        fprintf(out, "\n%s options:\n", command_names[c]);
        print_options(out, m, (rt_command)c);
    }
    fprintf(out, "\n  %-21s this help; '%s COMMAND --help' shows one command\n", "-h, --help",
            prog);
}

void rt_print_command_help(FILE *out, const nnrt_model *m, rt_command cmd) {
    fprintf(out, "usage: %s %s [OPTIONS]\n\n", rt_program_name(), command_names[cmd]);
    fprintf(out, "%s %s: %s.\n", rt_program_name(), command_names[cmd], command_help(m, cmd));
    print_about(out, m);
    fprintf(out, "\n%s options:\n", command_names[cmd]);
    print_options(out, m, cmd);
    fprintf(out, "  %-21s %s\n", "-h, --help", "this help");
}

/* ---- parsing ---- */

static const opt_spec *find_option(const char *name, size_t len) {
    for (int i = 0; i < N_OPTIONS; i++)
        if (strlen(option_table[i].name) == len && strncmp(option_table[i].name, name, len) == 0)
            return &option_table[i];
    return NULL;
}

static int64_t parse_int(const opt_spec *o, const char *value) {
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (end == value || *end != '\0' || errno == ERANGE)
        rt_usage_error("%s needs a whole number, got '%s'", o->name, value);
    if ((double)v < o->min)
        rt_usage_error("%s must be at least %g, got '%s'", o->name, o->min, value);
    return v;
}

static double parse_real(const opt_spec *o, const char *value) {
    char *end;
    double v = strtod(value, &end);
    if (end == value || *end != '\0' || !isfinite(v))
        rt_usage_error("%s needs a number, got '%s'", o->name, value);
    if (v < o->min || v >= o->max) {
        if (isinf(o->max))
            rt_usage_error("%s must be at least %g, got '%s'", o->name, o->min, value);
        rt_usage_error("%s must be in [%g, %g), got '%s'", o->name, o->min, o->max, value);
    }
    return v;
}

static void set_option(const opt_spec *o, const char *value, rt_options *opts) {
    char *field = (char *)opts + o->offset;
    switch (o->kind) {
    case OPT_PATH: *(const char **)field = value; break;
    case OPT_INT: *(int64_t *)field = parse_int(o, value); break;
    case OPT_REAL: *(double *)field = parse_real(o, value); break;
    case OPT_ON_OFF:
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
            rt_usage_error("%s needs on or off, got '%s'", o->name, value);
        *(int *)field = strcmp(value, "on") == 0;
        break;
    case OPT_FLAG: *(int *)field = 1; break;
    case OPT_CLEAR: *(const char **)field = NULL; break;
    }
}

/* Says why an option the table knows does not apply here, or that it is unknown. */
static _Noreturn void reject_option(const nnrt_model *m, rt_command cmd, const char *arg,
                                    const opt_spec *o) {
    const char *prog = rt_program_name(), *cmd_name = command_names[cmd];
    if (o && (o->commands & (1u << cmd)))
        rt_usage_error("%s does not apply: model '%s' has no inputs", o->name, m->name);
    if (o)
        rt_usage_error("%s is not an option of '%s' (see '%s %s --help')", o->name, cmd_name, prog,
                       cmd_name);
    rt_usage_error("unknown option '%s' (see '%s %s --help')", arg, prog, cmd_name);
}

void rt_options_parse(const nnrt_model *m, rt_command cmd, int argc, char **argv, rt_options *o) {
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            rt_print_command_help(stdout, m, cmd);
            exit(0);
        }
        if (strncmp(arg, "--", 2) != 0)
            rt_usage_error("unexpected argument '%s' (options start with --)", arg);
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        const opt_spec *spec = find_option(arg, name_len);
        if (!spec || !applies(spec, m, cmd)) reject_option(m, cmd, arg, spec);
        const char *value = eq ? eq + 1 : NULL;
        if (spec->kind == OPT_FLAG || spec->kind == OPT_CLEAR) {
            if (value) rt_usage_error("%s takes no value", spec->name);
        } else if (!value) {
            /* A following option is a forgotten value, not a file named "--quiet". */
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)
                rt_usage_error("%s needs a value (%s)", spec->name, spec->metavar);
            value = argv[++i];
        }
        set_option(spec, value, o);
    }
}
