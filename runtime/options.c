/* options.c: the option table, parsing, and help (see options.h). */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "ranks.h"
#include "sample.h"
#include "schedule_reads.h"
#include "text.h"
#include "util.h"

enum opt_kind {
    OPT_PATH,   /* a file name */
    OPT_TEXT,   /* any text, checked where it is used (l1, l2, columns) */
    OPT_LIST,   /* text; given again, appended after a comma (freeze, set) */
    OPT_WORD,   /* one of the choices */
    OPT_INT,    /* a whole number >= min, and <= max unless max is 0 */
    OPT_REAL,   /* a finite number in [min, max) */
    OPT_ON_OFF, /* on or off */
    OPT_FLAG,   /* no value: sets an int to 1 */
    OPT_CLEAR,  /* no value: sets a path to NULL */
};

#define FOR_TRAIN     (1u << RT_CMD_TRAIN)
#define FOR_EVAL      (1u << RT_CMD_EVAL)
#define FOR_PREDICT   (1u << RT_CMD_PREDICT)
#define FOR_GRADCHECK (1u << RT_CMD_GRADCHECK)
#define FOR_SEARCH    (1u << RT_CMD_SEARCH)
#define FOR_SAMPLE    (1u << RT_CMD_SAMPLE)
#define FOR_VALUES    (1u << RT_CMD_VALUES)
#define FOR_WEIGHTS   (1u << RT_CMD_WEIGHTS)
/* What a search trial is: a training run. */
#define FOR_TRAINING (FOR_TRAIN | FOR_SEARCH)

/* What an option acts on, without which it is meaningless for a model (and not listed). */
enum option_needs {
    NEEDS_NOTHING = 0,
    NEEDS_INPUTS = 1,  /* data, epochs: a model without inputs has none */
    NEEDS_DROPOUT = 2, /* --dropout: the model's dropout(...) calls */
    NEEDS_TEXT = 3,    /* --stride: text data, cut into windows */
};

typedef struct opt_spec {
    const char *name; /* as in settings.def: '_' where the command line may write '-' */
    const char *metavar;
    enum opt_kind kind;
    size_t offset; /* of the field in rt_options */
    unsigned commands;
    int needs; /* enum option_needs: what of the model it acts on */
    double min, max;
    const char *choices; /* OPT_WORD: "a|b|c" */
    const char *help;    /* NULL: depends on the model, see help_text() */
} opt_spec;

#define AT(field) offsetof(rt_options, field)

/* The optimizers of optimizers.def as "|sgd|adagrad|..." (the choices start after the first
 * bar). */
static const char optimizer_choices[] =
#define OPTIMIZER(name, ...) "|" #name
#include "optimizers.def"
#undef OPTIMIZER
    ;

/* The schedules of schedules.def, the same way. */
static const char schedule_choices[] =
#define SCHEDULE(name, ...) "|" #name
#include "schedules.def"
#undef SCHEDULE
    ;

/* The settings of settings.def: each row becomes an entry below through SETTING(), with its
 * field in rt_options (the same name), its kind, its limits and its help, and these: the
 * commands, needs (0, 1: NEEDS_INPUTS, or a name of option_needs) and choices. A row without
 * a SPEC_ line here does not compile. */
#define SPEC(commands_, needs_, choices_)                                                          \
    .commands = commands_, .needs = needs_, .choices = choices_
#define SPEC_optimizer        SPEC(FOR_TRAINING, 0, optimizer_choices + 1)
#define SPEC_nesterov         SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_beta1            SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_beta2            SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_rho              SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_eps              SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_weight_decay     SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_schedule         SPEC(FOR_TRAINING, 0, schedule_choices + 1)
#define SPEC_step_every       SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_step_factor      SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_gamma            SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_min_lr           SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_warmup           SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_l1               SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_l2               SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_clip             SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_early_stopping   SPEC(FOR_TRAINING, 1, NULL)
#define SPEC_patience         SPEC(FOR_TRAINING, 1, NULL)
#define SPEC_monitor          SPEC(FOR_TRAINING, 1, "loss|accuracy")
#define SPEC_validation_data  SPEC(FOR_TRAINING, 1, NULL)
#define SPEC_standardize      SPEC(FOR_TRAINING, 1, NULL)
#define SPEC_checkpoint_every SPEC(FOR_TRAIN, 0, NULL)
#define SPEC_threads          SPEC(FOR_TRAINING | FOR_EVAL | FOR_PREDICT, 0, NULL)
#define SPEC_flush_denormals  SPEC(FOR_TRAINING | FOR_EVAL | FOR_PREDICT | FOR_SAMPLE, 0, NULL)
#define SPEC_workers          SPEC(FOR_TRAINING, 1, NULL)
#define SPEC_stride           SPEC(FOR_TRAINING | FOR_EVAL | FOR_PREDICT, NEEDS_TEXT, NULL)
#define SPEC_freeze           SPEC(FOR_TRAINING, 0, NULL)
#define SPEC_dropout          SPEC(FOR_TRAINING, NEEDS_DROPOUT, NULL)
#define SPEC_set              SPEC(FOR_TRAINING, 0, NULL)

#define META_REAL   "X"
#define META_INT    "N"
#define META_ON_OFF "on|off"
#define META_WORD   "NAME"
#define META_TEXT   "SPEC"
#define META_LIST   "SPEC"
#define META_PATH   "FILE"

#define SETTING(name_, kind_, min_, max_, help_)                                                   \
    {.name = #name_,                                                                               \
     .metavar = META_##kind_,                                                                      \
     .kind = OPT_##kind_,                                                                          \
     .offset = AT(name_),                                                                          \
     SPEC_##name_,                                                                                 \
     .min = min_,                                                                                  \
     .max = max_,                                                                                  \
     .help = help_},

static const opt_spec option_table[] = {
    {"data", "PATH", OPT_PATH, AT(data),
     FOR_TRAINING | FOR_EVAL | FOR_PREDICT | FOR_GRADCHECK | FOR_VALUES, 1, 0, 0, NULL, NULL},
    {"columns", "SPEC", OPT_TEXT, AT(columns), FOR_TRAINING | FOR_EVAL | FOR_PREDICT | FOR_VALUES,
     1, 0, 0, NULL, "CSV columns: x=0..3,y=label (indexes or header names)"},
    {"weights", "FILE", OPT_PATH, AT(weights),
     FOR_EVAL | FOR_PREDICT | FOR_SAMPLE | FOR_VALUES | FOR_WEIGHTS, 0, 0, 0, NULL,
     "the weights (safetensors)"},
    {"row", "N", OPT_INT, AT(row), FOR_VALUES, 1, 0, 0, NULL, "the row of the data, from 0"},
    {"name", "NAME,...", OPT_TEXT, AT(tensors), FOR_WEIGHTS, 0, 0, 0, NULL,
     "only these tensors (globs: 'h.*')"},
    {"all", NULL, OPT_FLAG, AT(print_all), FOR_WEIGHTS, 0, 0, 0, NULL,
     "every value of every tensor shown, a row a line, not a summary of the large ones"},
    {"length", "N", OPT_INT, AT(length), FOR_SAMPLE, 0, 0, 0, NULL,
     "characters to generate and print"},
    {"temperature", "T", OPT_REAL, AT(temperature), FOR_SAMPLE, 0, 0, INFINITY, NULL,
     "draw from softmax(scores / T): below 1 safer, above 1 wilder; 0: always the most "
     "likely character"},
    {"prime", "TEXT", OPT_TEXT, AT(prime), FOR_SAMPLE, 0, 0, 0, NULL,
     "the text to start from, fed a character at a time and not printed"},
    {"scores", NULL, OPT_FLAG, AT(print_scores), FOR_SAMPLE, 0, 0, 0, NULL,
     "print the scores after each character fed (a line of one number a character of "
     "the vocabulary), not the characters"},
    {"output", "NAME,...", OPT_TEXT, AT(output), FOR_PREDICT, 1, 0, 0, NULL,
     "print these bindings of the model (such as a hidden layer) instead of its output"},
    {"loss", NULL, OPT_FLAG, AT(print_loss), FOR_PREDICT, 1, 0, 0, NULL,
     "print each row's loss; a model with targets reads its rows as eval does"},
    {"classes", NULL, OPT_FLAG, AT(print_classes), FOR_PREDICT, 1, 0, 0, NULL,
     "print each row's class: the index of the largest output (one output: 0 or 1)"},
    {"probabilities", NULL, OPT_FLAG, AT(print_probabilities), FOR_PREDICT, 1, 0, 0, NULL,
     "print the class probabilities (softmax or sigmoid of logits)"},
    {"epochs", "N", OPT_INT, AT(epochs), FOR_TRAINING, 1, 0, 0, NULL,
     "passes over the training rows"},
    {"steps", "N", OPT_INT, AT(steps), FOR_TRAINING, 0, 0, 0, NULL, NULL},
    {"batch", "N", OPT_INT, AT(batch), FOR_TRAINING, 1, 1, 0, NULL, "rows per update step"},
    {"lr", "X", OPT_REAL, AT(lr), FOR_TRAINING, 0, 0, INFINITY, NULL, "learning rate"},
    {"momentum", "X", OPT_REAL, AT(momentum), FOR_TRAINING, 0, 0, 1, NULL,
     "v = momentum*v + grad, param -= lr*v"},
    {"seed", "N", OPT_INT, AT(seed), FOR_TRAINING | FOR_GRADCHECK | FOR_SAMPLE, 0, -INFINITY, 0,
     NULL, NULL},
    {"shuffle", "on|off", OPT_ON_OFF, AT(shuffle), FOR_TRAINING, 1, 0, 0, NULL,
     "shuffle the training rows every epoch (not when one batch holds them all)"},
    {"validation", "F", OPT_REAL, AT(validation), FOR_TRAINING, 1, 0, 1, NULL,
     "fraction of the rows held out for validation"},
#include "settings.def"
    {"init_weights", "FILE", OPT_PATH, AT(init_weights), FOR_TRAINING, 0, 0, 0, NULL,
     "start from the params this file has (by name); the others from their initialisers"},
    {"save", "FILE", OPT_PATH, AT(save), FOR_TRAINING, 0, 0, 0, NULL,
     "write the final weights here"},
    {"no_save", NULL, OPT_CLEAR, AT(save), FOR_TRAINING, 0, 0, 0, NULL, "do not write the weights"},
    {"checkpoint", "FILE", OPT_PATH, AT(checkpoint), FOR_TRAIN, 0, 0, 0, NULL,
     "where --checkpoint-every and Ctrl-C save the training state"},
    {"resume", "FILE", OPT_PATH, AT(resume), FOR_TRAIN, 0, 0, 0, NULL,
     "continue the training a checkpoint saved"},
    {"log", "FILE", OPT_PATH, AT(log), FOR_TRAIN, 0, 0, 0, NULL, NULL},
    {"plot", "FILE", OPT_PATH, AT(plot), FOR_TRAIN | FOR_SEARCH, 0, 0, 0, NULL,
     "an SVG of the loss and accuracy curves"},
    {"log_grad_norms", NULL, OPT_FLAG, AT(log_grad_norms), FOR_TRAIN, 0, 0, 0, NULL,
     "each param's gradient norm at the epoch's last step, in --log and --plot"},
    {"log_update_ratios", NULL, OPT_FLAG, AT(log_update_ratios), FOR_TRAIN, 0, 0, 0, NULL,
     "each param's ||update|| / ||weights|| at the epoch's last step, in --log and --plot"},
    {"trace", "NAME,...", OPT_PATH, AT(trace), FOR_TRAIN, 0, 0, 0, NULL,
     "CSV of these params and the loss at every step: NAME (its first 4 elements), "
     "NAME[i] (flat index), NAME[i, j], NAME.grad, NAME.grad[i]; negative i from the end"},
    {"trace_out", "FILE", OPT_PATH, AT(trace_out), FOR_TRAIN, 0, 0, 0, NULL,
     "where --trace writes; on stdout the final lines go to stderr"},
    {"trials", "N", OPT_INT, AT(trials), FOR_SEARCH, 0, 1, RT_MAX_TRIALS, NULL,
     "training runs to try (grid: at most this many)"},
    {"strategy", "NAME", OPT_WORD, AT(strategy), FOR_SEARCH, 0, 0, 0, "random|grid|tpe",
     "random draws, every grid point, or tpe (Tree-structured Parzen Estimator): after "
     "random ones, draws near the best trials so far"},
    {"startup_trials", "N", OPT_INT, AT(startup_trials), FOR_SEARCH, 0, 1, 0, NULL,
     "tpe: the first N trials are random draws"},
    {"folds", "K", OPT_INT, AT(folds), FOR_SEARCH, 1, 0, 0, NULL,
     "cross-validation: split the rows into K folds, train each trial K times (each fold "
     "held out once), rank on the mean; 0: off"},
    {"hogwild", "N", OPT_INT, AT(hogwild), FOR_TRAIN, 1, 0, RT_MAX_HOGWILD, NULL,
     "HOGWILD!: N threads, each on its shard of the rows, update the params without locks "
     "(plain sgd; NOT deterministic: runs differ); 0: off"},
    {"quiet", NULL, OPT_FLAG, AT(quiet), FOR_TRAINING | FOR_EVAL, 0, 0, 0, NULL,
     "no progress on stderr"},
};
#undef SETTING

#define N_OPTIONS ((int)(sizeof option_table / sizeof option_table[0]))

static const char *const command_names[RT_N_COMMANDS] = {"train",  "eval",   "predict", "gradcheck",
                                                         "search", "sample", "values",  "weights"};

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
    return (o->commands & (1u << cmd)) && (o->needs != NEEDS_INPUTS || has_inputs(m)) &&
           (o->needs != NEEDS_DROPOUT || m->n_dropouts > 0) &&
           (o->needs != NEEDS_TEXT || rt_is_text_model(m));
}

/* The commands --help lists: sample for text models (saying why not, when it cannot). */
static int command_applies(const nnrt_model *m, rt_command cmd) {
    if (cmd == RT_CMD_SAMPLE) return rt_is_text_model(m);
    if (cmd == RT_CMD_VALUES) return 0; /* nnc explain --at-sample's (docs/runtime.md) */
    return cmd != RT_CMD_PREDICT || has_inputs(m);
}

/* "--weight-decay" for "weight_decay". */
static void option_text(const opt_spec *o, char *buf, size_t size) {
    snprintf(buf, size, "--%s", o->name);
    for (char *p = buf; *p; p++)
        if (*p == '_') *p = '-';
}

/* Whether a name as written ("weight-decay", "weight_decay") is the option's. */
static int same_name(const char *name, size_t len, const char *option) {
    if (strlen(option) != len) return 0;
    for (size_t i = 0; i < len; i++) {
        char a = name[i] == '-' ? '_' : name[i];
        if (a != option[i]) return 0;
    }
    return 1;
}

static const opt_spec *find_option(const char *name, size_t len) {
    for (int i = 0; i < N_OPTIONS; i++)
        if (same_name(name, len, option_table[i].name)) return &option_table[i];
    return NULL;
}

static void set_option(const opt_spec *o, const char *value, rt_options *opts, const char *shown);

/* The train block's settings read as options; what the compiler accepted but the runtime
 * cannot is an error naming the setting. */
static void apply_settings(const nnrt_model *m, rt_options *o) {
    const nnrt_train_defaults *t = &m->train;
    if (t->n_settings < 0 || (t->n_settings > 0 && !t->settings))
        rt_fatal("model descriptor: bad settings list");
    for (int32_t i = 0; i < t->n_settings; i++) {
        const char *name = t->settings[i].name, *value = t->settings[i].value;
        if (!name || !value) rt_fatal("model descriptor: a setting without a name or value");
        const opt_spec *spec = find_option(name, strlen(name));
        if (!spec || !(spec->commands & FOR_TRAIN))
            rt_fatal("model descriptor: unknown train setting '%s'", name);
        char shown[96];
        snprintf(shown, sizeof shown, "the train block's %s", name);
        set_option(spec, value, o, shown);
    }
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
    o->optimizer = t->optimizer ? t->optimizer : "sgd";
    /* NAN: the optimizer's default (optimizers.def). */
    o->beta1 = o->beta2 = o->rho = o->eps = o->weight_decay = NAN;
    o->dropout = NAN; /* the model's own rates */
    o->schedule = "constant";
    o->step_every = 10;
    o->step_factor = 0.1;
    o->gamma = 0.95;
    o->warmup = 0;
    o->patience = 5;
    o->monitor = "loss";
    o->threads = 1;
    o->flush_denormals = 1;
    o->workers = 1;
    o->trials = 20;
    o->strategy = "random";
    o->startup_trials = 10;
    o->length = 200;
    o->temperature = 1.0;
    const char *name = m->name && *m->name ? m->name : "model";
    size_t n = strlen(name);
    char *weights = rt_alloc(n + sizeof ".safetensors");
    memcpy(weights, name, n);
    memcpy(weights + n, ".safetensors", sizeof ".safetensors");
    o->save = o->weights = weights;
    char *checkpoint = rt_alloc(n + sizeof ".ckpt.safetensors");
    memcpy(checkpoint, name, n);
    memcpy(checkpoint + n, ".ckpt.safetensors", sizeof ".ckpt.safetensors");
    o->checkpoint = checkpoint;
    apply_settings(m, o);
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
    case RT_CMD_PREDICT: return "print the model's output for each input row, as the rows come";
    case RT_CMD_GRADCHECK:
        return m->f64 ? "compare grad() with finite differences of the loss at two points"
                      : "compare grad() with finite differences (needs an f64 model)";
    case RT_CMD_SEARCH:
        return has_inputs(m) ? "train with settings drawn from ranges (--lr 1e-4..1e-1:log "
                               "--batch 16,32), rank them on the validation rows, save the "
                               "best weights"
                             : "train with settings drawn from ranges (--lr 1e-3..1:log), "
                               "rank them on the final loss, save the best weights";
    case RT_CMD_SAMPLE:
        return rt_step_missing(m)
                   ? "cannot run for this model: a model samples only when nnc could "
                     "compile its one-step form ('sample' says why not)"
                   : "generate text from saved weights, a character at a time";
    case RT_CMD_VALUES:
        return "print each binding's numbers at one row of the data (--row N), targets read, "
               "in inference mode";
    case RT_CMD_WEIGHTS:
        return "print the tensors of a safetensors file (weights FILE): names, shapes, and "
               "values or a summary";
    default: return "";
    }
}

/* "a|b|c" as "a, b or c". */
static void choices_text(const char *choices, char *buf, size_t size);

/* buf: room for a help made here. */
static const char *help_text(const opt_spec *o, const nnrt_model *m, rt_command cmd, char *buf,
                             size_t size) {
    char readers[256];
    if (o->help && rt_optim_readers(o->name, readers, sizeof readers)) {
        snprintf(buf, size, "%s: %s", readers, o->help);
        return buf;
    }
    if (cmd == RT_CMD_SEARCH && strcmp(o->name, "plot") == 0)
        return "an SVG of the trials: the metric against each searched setting, the best marked";
    if (o->help) return o->help;
    if (o->kind == OPT_WORD) {
        choices_text(o->choices, buf, size);
        return buf;
    }
    if (strcmp(o->name, "data") == 0 && m->train.data_kind && !strcmp(m->train.data_kind, "text"))
        return cmd == RT_CMD_PREDICT ? "a UTF-8 text: a line for each window"
                                     : "a UTF-8 text, gzip'd or not ('-': standard input)";
    if (strcmp(o->name, "data") == 0) {
        if (cmd == RT_CMD_PREDICT)
            return "CSV rows of the inputs' values (a pipe's rows answered as they come), or IDX "
                   "images";
        if (cmd == RT_CMD_GRADCHECK) return "the batch is its first 8 rows; random without data";
        if (m->train.data_kind && strcmp(m->train.data_kind, "idx") == 0)
            return "IMAGES,LABELS: two IDX files (gzip'd or not)";
        if (cmd == RT_CMD_EVAL) return "CSV data file, read a batch at a time ('-': standard input)";
        if (cmd == RT_CMD_VALUES) return "CSV data file, read up to the row ('-': standard input)";
        return "CSV data file ('-': standard input)";
    }
    if (strcmp(o->name, "steps") == 0)
        return has_inputs(m) ? "stop after N update steps in all; 0: no limit" : "update steps";
    if (strcmp(o->name, "seed") == 0 && cmd == RT_CMD_SAMPLE) return "seed of the characters drawn";
    if (strcmp(o->name, "seed") == 0 && cmd == RT_CMD_GRADCHECK)
        return has_inputs(m) ? "seed of the initial weights, the random point and random rows"
                             : "seed of the initial weights and the random point";
    if (strcmp(o->name, "seed") == 0)
        return !has_inputs(m)  ? "seed of the initialisers"
               : m->n_dropouts ? "seed of init, validation split, shuffling and dropout"
                               : "seed of init, validation split and shuffling";
    if (strcmp(o->name, "log") == 0)
        return has_inputs(m) ? "CSV log, a row per epoch (docs/runtime.md lists the columns)"
                             : "CSV log, a row per step: step,loss,lr,seconds";
    return "";
}

/* The default shown for an option; NULL for flags. */
static const char *default_text(const opt_spec *o, const nnrt_model *m, rt_command cmd,
                                const rt_options *d, char *buf, size_t size) {
    const char *field = (const char *)d + o->offset;
    switch (o->kind) {
    case OPT_INT: snprintf(buf, size, "%lld", (long long)*(const int64_t *)field); return buf;
    case OPT_REAL:
        if (isnan(*(const double *)field) && strcmp(o->name, "dropout") == 0) return "the model's";
        if (isnan(*(const double *)field)) /* an optimizer's setting: its row's default */
            rt_optim_default_text(o->name, d->optimizer, buf, size);
        else
            snprintf(buf, size, "%g", *(const double *)field);
        return buf;
    case OPT_ON_OFF: return *(const int *)field ? "on" : "off";
    case OPT_FLAG:
    case OPT_CLEAR: return NULL;
    case OPT_TEXT:
    case OPT_LIST:
    case OPT_WORD:
    case OPT_PATH: break;
    }
    const char *path = *(const char *const *)field;
    if (path) return path;
    if (strcmp(o->name, "trace_out") == 0) return "standard output";
    if (strcmp(o->name, "columns") == 0) return "the model's";
    if (strcmp(o->name, "prime") == 0) return "a newline";
    if (strcmp(o->name, "name") == 0) return "every tensor";
    if (strcmp(o->name, "data") != 0) return "none";
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
        char name[48], left[80], buf[8192], help[512];
        option_text(o, name, sizeof name);
        snprintf(left, sizeof left, "%s%s%s", name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        const char *def = default_text(o, m, cmd, &d, buf, sizeof buf);
        fprintf(out, "  %-24s %s", left, help_text(o, m, cmd, help, sizeof help));
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
    fprintf(out, "\n  %-24s this help; '%s COMMAND --help' shows one command\n", "-h, --help",
            prog);
    rt_ranks_print_help(out, prog);
}

/* gradcheck without data draws 8 random rows; the inputs and targets that hold token ids
 * (nnrt_tensor.ids) get whole ids, which take and one_hot accept. */
static void print_random_ids_help(FILE *out, const nnrt_model *m) {
    int shown = 0;
    for (int pass = 0; pass < 2; pass++) {
        const nnrt_tensor *t = pass ? m->targets : m->inputs;
        int32_t n = pass ? m->n_targets : m->n_inputs;
        for (int32_t i = 0; i < n; i++) {
            if (t[i].ids <= 0) continue;
            if (!shown++)
                fprintf(out,
                        "\n  Without data, gradcheck draws 8 random rows: inputs uniform(-1, 1), "
                        "but token ids\n  (they feed take, embedding or one_hot, or text data) "
                        "are whole ids:");
            fprintf(out, "%s %s 0..%lld", shown > 1 ? "," : "", t[i].name, (long long)t[i].ids - 1);
        }
    }
    if (shown) fprintf(out, ".\n");
}

void rt_print_command_help(FILE *out, const nnrt_model *m, rt_command cmd) {
    fprintf(out, "usage: %s %s%s [OPTIONS]\n\n", rt_program_name(), command_names[cmd],
            cmd == RT_CMD_WEIGHTS ? " [FILE]" : ""); /* weights FILE: --weights FILE */
    fprintf(out, "%s %s: %s.\n", rt_program_name(), command_names[cmd], command_help(m, cmd));
    print_about(out, m);
    fprintf(out, "\n%s options:\n", command_names[cmd]);
    print_options(out, m, cmd);
    if (cmd == RT_CMD_SEARCH)
        fprintf(out, "\n  Any train option with numbers may be a range LO..HI (uniform), "
                     "LO..HI:log, with :K\n  grid points (LO..HI:log:K), or a list A,B,C; "
                     "words and on|off take lists.\n");
    fprintf(out, "  %-24s %s\n", "-h, --help", "this help");
    if (cmd == RT_CMD_GRADCHECK) print_random_ids_help(out, m);
    if (applies(find_option("optimizer", strlen("optimizer")), m, cmd)) {
        fprintf(out, "\noptimizers (--optimizer NAME):\n");
        rt_optim_print_list(out);
    }
    if (cmd == RT_CMD_TRAIN) rt_ranks_print_help(out, rt_program_name());
}

/* ---- parsing ---- */

static int64_t parse_int(const char *shown, double min, double max, const char *value) {
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (end == value || *end != '\0' || errno == ERANGE)
        rt_usage_error("%s needs a whole number, got '%s'", shown, value);
    char rule[64];
    if (rt_outside_limits(1, min, max, (double)v, rule, sizeof rule))
        rt_usage_error("%s %s, got '%s'", shown, rule, value);
    return v;
}

static double parse_real(const char *shown, double min, double max, const char *value) {
    char *end;
    double v = strtod(value, &end);
    if (end == value || *end != '\0' || !isfinite(v))
        rt_usage_error("%s needs a number, got '%s'", shown, value);
    char rule[64];
    if (rt_outside_limits(0, min, max, v, rule, sizeof rule))
        rt_usage_error("%s %s, got '%s'", shown, rule, value);
    return v;
}

/* Whether word is one of "a|b|c". */
static int is_choice(const char *choices, const char *word) {
    size_t n = strlen(word);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* The hint under a word that is none of "a|b|c": the nearest of them. */
static void suggest_choice(const char *choices, const char *word) {
    Suggestion near = suggest_start(word);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        suggest_consider_n(&near, p, len);
        if (!bar) break;
        p = bar + 1;
    }
    rt_did_you_mean(&near, "");
}

static void choices_text(const char *choices, char *buf, size_t size) {
    size_t used = 0, count = 1;
    for (const char *p = choices; *p; p++) count += *p == '|';
    size_t i = 0;
    for (const char *p = choices; *p && used + 8 < size; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        const char *sep = i == 0 ? "" : i + 1 == count ? " or " : ", ";
        used += (size_t)snprintf(buf + used, size - used, "%s%.*s", sep, (int)len, p);
        if (!bar) break;
        p = bar + 1;
    }
}

/* "a,b" and "c" as "a,b,c". */
static const char *append_to_list(const char *list, const char *more) {
    if (!list) return more;
    size_t n = strlen(list), k = strlen(more);
    char *both = rt_alloc(n + k + 2);
    memcpy(both, list, n);
    both[n] = ',';
    memcpy(both + n + 1, more, k + 1);
    return both;
}

/* shown: how messages name the option ("--lr", or "the train block's lr"). */
static void set_option(const opt_spec *o, const char *value, rt_options *opts, const char *shown) {
    char *field = (char *)opts + o->offset;
    switch (o->kind) {
    case OPT_PATH:
    case OPT_TEXT: *(const char **)field = value; break;
    case OPT_LIST: *(const char **)field = append_to_list(*(const char **)field, value); break;
    case OPT_WORD:
        if (!is_choice(o->choices, value)) {
            char list[256];
            choices_text(o->choices, list, sizeof list);
            suggest_choice(o->choices, value);
            rt_usage_error("%s must be %s, got '%s'", shown, list, value);
        }
        *(const char **)field = value;
        break;
    case OPT_INT: *(int64_t *)field = parse_int(shown, o->min, o->max, value); break;
    case OPT_REAL: *(double *)field = parse_real(shown, o->min, o->max, value); break;
    case OPT_ON_OFF:
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0)
            rt_usage_error("%s needs on or off, got '%s'", shown, value);
        *(int *)field = strcmp(value, "on") == 0;
        break;
    case OPT_FLAG: *(int *)field = 1; break;
    case OPT_CLEAR: *(const char **)field = NULL; break;
    }
}

int rt_options_set(const nnrt_model *m, rt_options *o, const char *name, const char *value) {
    (void)m;
    const opt_spec *spec = find_option(name, strlen(name));
    if (!spec || !(spec->commands & FOR_TRAIN)) return 0;
    char shown[64];
    option_text(spec, shown, sizeof shown);
    set_option(spec, value, o, shown);
    return 1;
}

int rt_option_number_kind(const char *name) {
    const opt_spec *spec = find_option(name, strlen(name));
    if (!spec) return 0;
    return spec->kind == OPT_REAL ? 'r' : spec->kind == OPT_INT ? 'i' : 0;
}

/* The hint under an unknown option: the nearest option of the command. */
static void suggest_option(const nnrt_model *m, rt_command cmd, const char *name, size_t len) {
    char wanted[SUGGEST_MAX_LEN + 1];
    if (len > SUGGEST_MAX_LEN) return;
    memcpy(wanted, name, len);
    wanted[len] = '\0';
    Suggestion near = suggest_start(wanted);
    for (int i = 0; i < N_OPTIONS; i++)
        if (applies(&option_table[i], m, cmd)) suggest_consider(&near, option_table[i].name);
    const char *best = suggest_best(&near);
    if (!best) return;
    char shown[64];
    option_text(find_option(best, strlen(best)), shown, sizeof shown);
    rt_hint("did you mean %s?", shown);
}

void rt_suggest_command(const char *word) {
    Suggestion near = suggest_start(word);
    for (int c = 0; c < RT_N_COMMANDS; c++) suggest_consider(&near, command_names[c]);
    rt_did_you_mean(&near, "");
}

/* Says why an option the table knows does not apply here, or that it is unknown. */
static _Noreturn void reject_option(const nnrt_model *m, rt_command cmd, const char *arg,
                                    size_t name_len, const opt_spec *o) {
    const char *prog = rt_program_name(), *cmd_name = command_names[cmd];
    char shown[64] = "";
    if (o) option_text(o, shown, sizeof shown);
    if (o && (o->commands & (1u << cmd)) && o->needs == NEEDS_TEXT)
        rt_usage_error("%s is for text data; model '%s' reads %s", shown, m->name,
                       m->train.data_kind ? m->train.data_kind : "no data");
    if (o && (o->commands & (1u << cmd)) && o->needs == NEEDS_DROPOUT)
        rt_usage_error("%s does not apply: model '%s' has no dropout(...) (it sets the rate of "
                       "every dropout of the model)",
                       shown, m->name);
    if (o && (o->commands & (1u << cmd)))
        rt_usage_error("%s does not apply: model '%s' has no inputs", shown, m->name);
    if (o)
        rt_usage_error("%s is not an option of '%s' (see '%s %s --help')", shown, cmd_name, prog,
                       cmd_name);
    suggest_option(m, cmd, arg + 2, name_len - 2);
    rt_usage_error("unknown option '%s' (see '%s %s --help')", arg, prog, cmd_name);
}

/* search: a value with a range or a list, for an option that can vary between trials (a
 * train option: search's own, such as --trials, are one value). */
static int is_search_spec(const opt_spec *o, const char *value) {
    int variable =
        o->kind == OPT_REAL || o->kind == OPT_INT || o->kind == OPT_WORD || o->kind == OPT_ON_OFF;
    if (strcmp(o->name, "set") == 0) { /* --set x=-1..1, x=0,0.5: one param's start values */
        const char *eq = strchr(value, '=');
        variable = eq && !strchr(eq + 1, '=');
    }
    variable = variable && (o->commands & FOR_TRAIN);
    return variable && (strstr(value, "..") || strchr(value, ','));
}

/* Two search options that vary the same thing: the same option (and for --set, the same
 * param). */
static int same_search(const char *name, const char *spec, const opt_spec *o, const char *value) {
    if (strcmp(name, o->name) != 0) return 0;
    if (strcmp(name, "set") != 0) return 1;
    size_t n = (size_t)(strchr(spec, '=') - spec);
    return strncmp(spec, value, n + 1) == 0;
}

/* A single value after a range or a list of the same option: the last one given wins, as
 * between two values, so the search no longer varies it. */
static void drop_search(rt_options *o, const opt_spec *spec) {
    int kept = 0;
    for (int i = 0; i < o->n_search; i++)
        if (strcmp(o->search_names[i], spec->name) != 0) {
            o->search_names[kept] = o->search_names[i];
            o->search_specs[kept++] = o->search_specs[i];
        }
    o->n_search = kept;
}

static void add_search(rt_options *o, const opt_spec *spec, const char *value) {
    int max = (int)(sizeof o->search_names / sizeof o->search_names[0]);
    for (int i = 0; i < o->n_search; i++)
        if (same_search(o->search_names[i], o->search_specs[i], spec, value)) {
            o->search_specs[i] = value;
            return;
        }
    if (o->n_search == max) rt_usage_error("search: more than %d ranges", max);
    o->search_names[o->n_search] = spec->name;
    o->search_specs[o->n_search++] = value;
}

/* The rows of a held-out fraction or of their own file: one or the other. One given on the
 * command line overrides the other from the train block; both on the command line are a
 * mistake. */
static void choose_validation(rt_options *o, const char *fraction_given, const char *file_given) {
    if (fraction_given && file_given && o->validation > 0)
        rt_usage_error("give --validation F or --validation-data FILE, not both");
    if (file_given) o->validation = 0;
    if (fraction_given) o->validation_data = NULL;
}

/* The schedule whose own setting `name` is, or NULL. */
static const char *schedule_of_setting(const char *name) {
    for (size_t i = 0; i < sizeof schedule_reads / sizeof *schedule_reads; i++)
        for (int k = 0; k < SCHEDULE_MAX_READS && schedule_reads[i].reads[k]; k++)
            if (strcmp(schedule_reads[i].reads[k], name) == 0) return schedule_reads[i].name;
    return NULL;
}

/* The option's place in option_table (name as in settings.def). */
static ptrdiff_t option_index(const char *name) {
    return find_option(name, strlen(name)) - option_table;
}

/* A setting given on the command line that the run would not read, an error rather than a
 * value that changes nothing: a setting of other optimizers than the run's, of another
 * schedule, of early stopping when it is off. (The train block's own are nnc's to check,
 * against the block's optimizer and schedule: a run may change those.) A search that varies
 * the optimizer, the schedule or early stopping gives its settings for the trials that read
 * them. */
static void check_settings_read(const rt_options *o, rt_command cmd, const unsigned char *given,
                                const unsigned char *searched) {
    int varies_optimizer = searched[option_index("optimizer")];
    int varies_schedule = searched[option_index("schedule")];
    int varies_stopping = searched[option_index("early_stopping")];
    for (int i = 0; i < N_OPTIONS; i++) {
        if (!given[i]) continue;
        const char *name = option_table[i].name, *schedule = schedule_of_setting(name);
        char shown[64], readers[128];
        option_text(&option_table[i], shown, sizeof shown);
        if (!varies_optimizer && rt_optim_readers(name, readers, sizeof readers) &&
            !rt_optim_reads(o->optimizer, name))
            rt_usage_error("%s is read only by %s; the optimizer is %s, so it would change "
                           "nothing (give --optimizer NAME, or leave %s out)",
                           shown, readers, o->optimizer, shown);
        const char *run_schedule = o->schedule ? o->schedule : "constant";
        if (!varies_schedule && schedule && strcmp(run_schedule, schedule) != 0)
            rt_usage_error("%s is read only by the %s schedule; the schedule is %s, so it would "
                           "change nothing (give --schedule %s, or leave %s out)",
                           shown, schedule, run_schedule, schedule, shown);
        if (!varies_optimizer && strcmp(name, "nesterov") == 0 && o->nesterov && o->momentum == 0 &&
            !searched[option_index("momentum")])
            rt_usage_error("--nesterov on looks ahead along the momentum, and --momentum is 0: "
                           "it would change nothing (give --momentum above 0)");
        if (strcmp(name, "startup_trials") == 0 && strcmp(o->strategy, "tpe") != 0)
            rt_usage_error("--startup-trials is read only by --strategy tpe; the strategy is %s, "
                           "so it would change nothing (give --strategy tpe, or leave "
                           "--startup-trials out)",
                           o->strategy);
        int stopping = strcmp(name, "patience") == 0 ||
                       (strcmp(name, "monitor") == 0 && cmd != RT_CMD_SEARCH); /* search's metric */
        if (!varies_stopping && stopping && !o->early_stopping)
            rt_usage_error("%s is read only by early stopping, which is off, so it would change "
                           "nothing (give --early-stopping on, or leave %s out)",
                           shown, shown);
    }
}

void rt_options_parse(const nnrt_model *m, rt_command cmd, int argc, char **argv, rt_options *o) {
    const char *fraction_given = NULL, *file_given = NULL;
    unsigned char given[N_OPTIONS] = {0}, searched[N_OPTIONS] = {0};
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
        const opt_spec *spec = find_option(arg + 2, name_len - 2);
        if (!spec || !applies(spec, m, cmd)) reject_option(m, cmd, arg, name_len, spec);
        char shown[64];
        option_text(spec, shown, sizeof shown);
        const char *value = eq ? eq + 1 : NULL;
        if (spec->kind == OPT_FLAG || spec->kind == OPT_CLEAR) {
            if (value) rt_usage_error("%s takes no value", shown);
        } else if (!value) {
            /* A following option is a forgotten value, not a file named "--quiet". */
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0)
                rt_usage_error("%s needs a value (%s)", shown, spec->metavar);
            value = argv[++i];
        }
        if (cmd == RT_CMD_SEARCH && is_search_spec(spec, value)) {
            add_search(o, spec, value);
            searched[spec - option_table] = 1;
        } else {
            set_option(spec, value, o, shown);
            if (spec->kind != OPT_LIST && searched[spec - option_table]) { /* --set adds up */
                drop_search(o, spec);
                searched[spec - option_table] = 0;
            }
        }
        given[spec - option_table] = 1;
        if (spec->offset == AT(optimizer)) o->optimizer_given = 1;
        if (spec->offset == AT(validation)) fraction_given = value;
        if (spec->offset == AT(validation_data)) file_given = value;
    }
    choose_validation(o, fraction_given, file_given);
    check_settings_read(o, cmd, given, searched);
}
