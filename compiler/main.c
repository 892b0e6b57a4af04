/* main.c: the nnc driver. Runs the stages of stages.h in order, one call each, and stops at
 * the first that reports an error (a bad file never reaches the back end, so never makes a
 * binary) or at the one --emit asks for:
 *
 *   parse -> check -> lower -> autodiff -> simplify -> what the run writes (emit_kinds[])
 *
 *   nnc FILE.nn [options]             compile (or print a stage with --emit)
 *   nnc explain FILE.nn [--wrt NAME]  the chain rule to each param, as math
 *   nnc gradcheck FILE.nn             derived gradients against finite differences
 *
 * nnc_main() is the driver as a function (nnc.c's main() calls it, and so does the fuzzer,
 * many times in one process); run() does the work and returns the exit status. */
#include "backend.h"
#include "config.h"
#include "driver.h"
#include "paths.h"
#include "stages.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef enum Command { CMD_COMPILE, CMD_EXPLAIN, CMD_GRADCHECK } Command;

/* What a compile writes: the rows of emit_kinds[]. */
typedef enum Emit {
    EMIT_EXE,
    EMIT_OBJ,
    EMIT_AST,
    EMIT_IR,
    EMIT_GRAD,
    EMIT_GRAD_RAW,
    EMIT_GRAD_DIFF,
    EMIT_PLAN,
    EMIT_LLVM,
    EMIT_DOT,
    EMIT_SVG,
    EMIT_COUNT
} Emit;

typedef struct Options {
    Command command;
    const char *input;
    const char *output;
    const char *model;
    Emit emit;
    int opt_level;
    bool f64;
    bool dump_passes;
    bool static_link;
    bool mpi;                               /* --mpi: link with libnnrt_mpi, for mpirun */
    const char *wrt;                        /* explain */
    ExplainFormat format;                   /* explain */
    ExplainForm form;                       /* explain: --multiply, --at-sample */
    const char *at_sample, *weights, *data; /* explain --at-sample N --weights W --data F */
    const char *seed;                       /* gradcheck */
    bool all_steps;       /* --steps all: --emit=ir and grad print every step of a scan */
    const char *collapse; /* --collapse=NAME,...: --emit=dot/svg draw those calls as boxes */
} Options;

/* The stages, in the order they run; the run stops after the one its emit kind names. */
typedef enum Stage {
    STAGE_PARSE,    /* the syntax tree */
    STAGE_CHECK,    /* imports loaded, structure checked (sema) */
    STAGE_LOWER,    /* the forward IR, shapes checked, train block read */
    STAGE_AUTODIFF, /* the backward IR */
    STAGE_SIMPLIFY, /* both, simplified */
    STAGE_WRITE,    /* every stage above: the emit kind writes the result */
} Stage;

/* One run of the pipeline. */
typedef struct Run {
    const Options *o;
    const struct EmitKind *emit; /* what it writes */
    const char *out;             /* where (compile): a file, or "-" */
    Node *ast;
    Program *prog;
    Graph *g;
    int status; /* the exit status once a stage stopped the run: 1 after errors */
} Run;

typedef int Writer(Run *r); /* returns the exit status */
static Writer print_ast, print_forward, print_grad_diff, print_dot_graph, write_svg_file,
    print_plan, print_llvm, write_object, write_executable;

/* What a compile writes, and after which stage. A row without a writer prints the pass of
 * its stage, as --dump-passes does. The help text and the messages list the named rows. */
typedef struct EmitKind {
    const char *name; /* --emit=NAME; NULL: not an --emit kind (the executable, -c) */
    Stage after;      /* the last stage it needs */
    bool text;        /* text on stdout, pointed at -o FILE when there is one */
    Writer *write;
    const char *help; /* for --help; lines after the first are continued below it */
} EmitKind;

static const EmitKind emit_kinds[EMIT_COUNT] = {
    [EMIT_EXE] = {NULL, STAGE_WRITE, false, write_executable, NULL},
    [EMIT_OBJ] = {NULL, STAGE_WRITE, false, write_object, NULL},
    [EMIT_AST] = {"ast", STAGE_PARSE, true, print_ast, "the syntax tree"},
    [EMIT_IR] = {"ir", STAGE_LOWER, true, print_forward, "the forward IR"},
    [EMIT_GRAD] = {"grad", STAGE_SIMPLIFY, true, NULL,
                   "forward and the derived backward IR, simplified,\n"
                   "each backward line annotated with its chain-rule step"},
    [EMIT_GRAD_RAW] = {"grad-raw", STAGE_AUTODIFF, true, NULL,
                       "the same, exactly as autodiff emitted it"},
    [EMIT_GRAD_DIFF] = {"grad-diff", STAGE_AUTODIFF, true, print_grad_diff,
                        "what simplify changed: grad-raw's lines it removed or\n"
                        "rewrote marked -, with the rule, and + what they became"},
    [EMIT_PLAN] = {"plan", STAGE_WRITE, true, print_plan,
                   "the schedule, fused loops and memory plan"},
    [EMIT_LLVM] = {"llvm", STAGE_WRITE, true, print_llvm, "the optimised LLVM IR"},
    [EMIT_DOT] = {"dot", STAGE_WRITE, true, print_dot_graph,
                  "forward and backward graphs for Graphviz"},
    [EMIT_SVG] = {"svg", STAGE_WRITE, false, write_svg_file, "the same, drawn by Graphviz's dot"},
};

/* ---- the command line ---- */

static const char usage_head[] =
    "usage: nnc FILE.nn [options]            compile a model into a training executable\n"
    "       nnc explain FILE.nn [--wrt NAME] [--format=text|markdown]\n"
    "                                        the chain rule from the loss to each param\n"
    "       nnc explain FILE.nn --multiply   each gradient multiplied out and simplified\n"
    "       nnc explain FILE.nn --at-sample N --weights W.safetensors [--data FILE]\n"
    "                                        each gradient's numbers at sample N\n"
    "       nnc gradcheck FILE.nn [--seed N] derived gradients against finite differences\n"
    "                                        (of every model, or of --model NAME)\n"
    "\n"
    "Compiles a .nn model into a native executable that trains it (run it with --help).\n"
    "\n"
    "options (a value follows the option's name, as in --emit=grad or --emit grad):\n"
    "  -o FILE         write the executable (or object, or --emit output) to FILE\n"
    "                  (default: the model file's name without .nn, in this folder)\n"
    "  -c              write an object file instead of an executable\n"
    "  --static        link everything in (OpenBLAS too): an executable to ship to a\n"
    "                  machine with nothing installed (about 30 MB)\n"
    "  --mpi           link with MPI: `mpirun -np K ./model train` then trains on K\n"
    "                  processes, each on its share of every batch (docs/mpi.md)\n"
    "  --emit=STAGE    print a stage instead of compiling (to stdout, or to -o FILE):\n";

static const char usage_tail[] =
    "  --dump-passes   print the program after each stage (parse, lowering and shape\n"
    "                  checks, autodiff, simplify, planning), then compile as usual\n"
    "  -O0 -O1 -O2 -O3 optimisation level (default -O2)\n"
    "  --f64           compute in double precision\n"
    "  --steps all     --emit=ir and grad print every step of a scan (default: the first\n"
    "                  two and the last, the steps between summarised in a line)\n"
    "  --collapse=NAMES --emit=dot and svg frame each fn call; draw the calls of these\n"
    "                  fns (or in these bindings; comma-separated, or all) as one box\n"
    "  --model NAME    the model to compile, when the file has several\n"
    "  --help          this text\n"
    "  --version       the version of nnc and of the LLVM it uses\n"
    "\n"
    "explain options:\n"
    "  -o FILE         write the text to FILE (whole, or not at all after an error)\n"
    "  --wrt NAME      one param (default: every param)\n"
    "  --format=F      text (UTF-8, the default) or markdown (with LaTeX math)\n"
    "  --multiply      each line multiplied out: the gradients and unnamed values it\n"
    "                  reads substituted back, simplified to the named values\n"
    "  --at-sample N   each line's numbers at sample N (from 0) of the data, with the\n"
    "                  weights of --weights W.safetensors (needed) and the data of the\n"
    "                  train block or of --data FILE\n"
    "gradcheck options:\n"
    "  --seed N        seed of the points the gradients are checked at (default: the\n"
    "                  train block's seed, so the first point is where training starts)\n"
    "\n"
    "environment:\n"
    "  NNC_HOME        folder holding stdlib/ and runtime/libnnrt.a (default: found next to nnc)\n"
    "  NNC_CC          the C compiler used to link (default: the one nnc was built with)\n";

static void print_usage(void) {
    fputs(usage_head, stdout);
    for (int i = 0; i < EMIT_COUNT; i++) {
        const EmitKind *e = &emit_kinds[i];
        if (!e->name) continue;
        const char *line = e->help, *end;
        printf("%20s%-10s", "", e->name);
        for (; (end = strchr(line, '\n')); line = end + 1)
            printf("%.*s\n%30s", (int)(end - line), line, "");
        printf("%s\n", line);
    }
    fputs(usage_tail, stdout);
}

static int usage_error(const char *fmt, const char *arg) {
    fputs("nnc: error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(run nnc --help for usage)\n", stderr);
    return 2;
}

/* usage_error with "  hint: did you mean BEST?" under it when a candidate is near. */
static int usage_error_near(const char *msg, const Suggestion *near) {
    fprintf(stderr, "nnc: error: %s\n", msg);
    if (suggest_best(near)) fprintf(stderr, "  hint: did you mean %s?\n", suggest_best(near));
    fputs("(run nnc --help for usage)\n", stderr);
    return 2;
}

static int parse_emit(const char *s, Emit *emit) {
    StrBuf names = {0};
    Suggestion near = suggest_start(s);
    for (int i = 0; i < EMIT_COUNT; i++) {
        if (!emit_kinds[i].name) continue;
        if (!strcmp(s, emit_kinds[i].name)) {
            *emit = (Emit)i;
            return -1;
        }
        sb_printf(&names, "%s%s", names.n ? ", " : "", emit_kinds[i].name);
        suggest_consider(&near, emit_kinds[i].name);
    }
    return usage_error_near(xprintf("unknown --emit stage '%s' (%s)", s, sb_str(&names)), &near);
}

/* ---- the flags: one table, for parsing and for the "did you mean" of a misspelt one ----
 * A flag with a value takes it as --flag=VALUE or as the next argument, --flag VALUE. Each
 * setter returns -1 to go on, or the exit status to end with. */

typedef int FlagSetter(Options *o, const char *value);

#define FOR_COMPILE   (1u << CMD_COMPILE)
#define FOR_EXPLAIN   (1u << CMD_EXPLAIN)
#define FOR_GRADCHECK (1u << CMD_GRADCHECK)
#define FOR_ALL       (FOR_COMPILE | FOR_EXPLAIN | FOR_GRADCHECK)

/* A row without a setter stores its value in the field (a flag with a value) or sets the
 * bool field (a flag without one). */
typedef struct Flag {
    const char *name;  /* "--emit", "-o" */
    const char *value; /* what it takes ("STAGE"), or NULL: nothing */
    unsigned commands; /* FOR_ bits */
    size_t field;      /* offsetof(Options, ...), without a setter */
    FlagSetter *set;
} Flag;

#define AT(member) offsetof(Options, member)

/* -c and --emit each choose what the compile writes: both is a mistake, whichever last. */
static const char both_outputs[] = "-c writes an object file and --emit prints a stage: give one "
                                   "of them";
static int set_emit(Options *o, const char *v) {
    if (o->emit == EMIT_OBJ) return usage_error("%s", both_outputs);
    return parse_emit(v, &o->emit);
}
static int set_object(Options *o, const char *v) {
    (void)v;
    if (o->emit != EMIT_EXE && o->emit != EMIT_OBJ) return usage_error("%s", both_outputs);
    o->emit = EMIT_OBJ;
    return -1;
}
static int print_help(Options *o, const char *v) {
    (void)o, (void)v;
    print_usage();
    return 0;
}
static int print_version(Options *o, const char *v) {
    (void)o, (void)v;
    printf("nnc %s (LLVM %s)\n", NNC_VERSION, NNC_LLVM_PACKAGE_VERSION);
    return 0;
}

/* A word of a few: the index of value in words (NULL-terminated), or an error offering the
 * nearest. */
static int choose_word(const char *flag, const char *value, const char *const *words, int *out) {
    Suggestion near = suggest_start(value);
    StrBuf list = {0};
    for (int i = 0; words[i]; i++) {
        if (!strcmp(words[i], value)) {
            *out = i;
            return -1;
        }
        suggest_consider(&near, words[i]);
        sb_printf(&list, "%s%s", i ? (words[i + 1] ? ", " : " or ") : "", words[i]);
    }
    return usage_error_near(xprintf("%s takes %s, got %s", flag, sb_str(&list), value), &near);
}

static int set_format(Options *o, const char *v) {
    static const char *const formats[] = {"text", "markdown", NULL};
    int k, status = choose_word("--format", v, formats, &k);
    if (status < 0) o->format = k == 0 ? EXPLAIN_TEXT : EXPLAIN_MARKDOWN;
    return status;
}
static int set_multiply(Options *o, const char *v) {
    (void)v;
    o->form = EXPLAIN_MULTIPLIED;
    return -1;
}
static int set_at_sample(Options *o, const char *v) {
    o->form = EXPLAIN_VALUES;
    o->at_sample = v;
    return -1;
}
static int set_steps(Options *o, const char *v) {
    static const char *const steps[] = {"all", NULL};
    int k, status = choose_word("--steps", v, steps, &k);
    if (status < 0) o->all_steps = true;
    return status;
}
static int set_opt_level(Options *o, const char *flag) {
    o->opt_level = flag[2] - '0';
    return -1;
}

static const Flag flags[] = {
    {"-o", "FILE", FOR_COMPILE | FOR_EXPLAIN, AT(output), NULL},
    {"-c", NULL, FOR_COMPILE, 0, set_object},
    {"--static", NULL, FOR_COMPILE, AT(static_link), NULL},
    {"--mpi", NULL, FOR_COMPILE, AT(mpi), NULL},
    {"--emit", "STAGE", FOR_COMPILE, 0, set_emit},
    {"--collapse", "NAMES", FOR_COMPILE, AT(collapse), NULL},
    {"--dump-passes", NULL, FOR_COMPILE, AT(dump_passes), NULL},
    {"-O0", NULL, FOR_ALL, 0, set_opt_level},
    {"-O1", NULL, FOR_ALL, 0, set_opt_level},
    {"-O2", NULL, FOR_ALL, 0, set_opt_level},
    {"-O3", NULL, FOR_ALL, 0, set_opt_level},
    {"--f64", NULL, FOR_ALL, AT(f64), NULL},
    {"--steps", "all", FOR_COMPILE, 0, set_steps},
    {"--model", "NAME", FOR_ALL, AT(model), NULL},
    {"--wrt", "NAME", FOR_EXPLAIN, AT(wrt), NULL},
    {"--format", "F", FOR_EXPLAIN, 0, set_format},
    {"--multiply", NULL, FOR_EXPLAIN, 0, set_multiply},
    {"--at-sample", "N", FOR_EXPLAIN, 0, set_at_sample},
    {"--weights", "FILE", FOR_EXPLAIN, AT(weights), NULL},
    {"--data", "FILE", FOR_EXPLAIN, AT(data), NULL},
    {"--seed", "N", FOR_GRADCHECK, AT(seed), NULL},
    {"--help", NULL, FOR_ALL, 0, print_help},
    {"-h", NULL, FOR_ALL, 0, print_help},
    {"--version", NULL, FOR_ALL, 0, print_version},
};
#define N_FLAGS ((int)(sizeof flags / sizeof *flags))

static const char *const command_words[] = {
    [CMD_COMPILE] = "nnc", [CMD_EXPLAIN] = "nnc explain", [CMD_GRADCHECK] = "nnc gradcheck"};

static const Flag *find_flag(const char *name, size_t len) {
    for (int i = 0; i < N_FLAGS; i++)
        if (strlen(flags[i].name) == len && !strncmp(flags[i].name, name, len)) return &flags[i];
    return NULL;
}

/* An argument that is no flag of this command: which command it is for, or the nearest. */
static int unknown_flag(const Options *o, const char *arg, size_t len) {
    const Flag *f = find_flag(arg, len);
    if (f) {
        int c = 0;
        while (!(f->commands & (1u << c))) c++;
        return usage_error("%s", xprintf("%s is an option of %s, not of %s", f->name,
                                         command_words[c], command_words[o->command]));
    }
    const char *name = xstrndup(arg, len);
    Suggestion near = suggest_start(name);
    for (int i = 0; i < N_FLAGS; i++)
        if (flags[i].commands & (1u << o->command)) suggest_consider(&near, flags[i].name);
    return usage_error_near(xprintf("unknown option %s", name), &near);
}

/* The flag at argv[*i] (and its value, which may be the next argument). */
static int parse_flag(Options *o, int argc, char **argv, int *i) {
    const char *a = argv[*i], *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    const Flag *f = find_flag(a, len);
    if (!f || !(f->commands & (1u << o->command))) return unknown_flag(o, a, len);
    if (!f->value && eq) return usage_error("%s takes no value", f->name);
    const char *value = a;
    if (f->value && eq)
        value = eq + 1;
    else if (f->value && *i + 1 == argc)
        return usage_error("%s needs an argument", a);
    else if (f->value)
        value = argv[++*i];
    if (f->set) return f->set(o, value);
    if (f->value)
        *(const char **)((char *)o + f->field) = value;
    else
        *(bool *)((char *)o + f->field) = true;
    return -1;
}

/* A second file: the first may be a misspelt command ("nnc explian m.nn"). */
static int second_input(const Options *o, const char *second) {
    Suggestion near = suggest_start(o->input);
    if (o->command == CMD_COMPILE)
        for (int c = CMD_EXPLAIN; c <= CMD_GRADCHECK; c++)
            suggest_consider(&near, command_words[c] + strlen("nnc "));
    return usage_error_near(xprintf("one model file at a time (got a second: %s)", second), &near);
}

/* Returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, Options *o) {
    *o = (Options){.emit = EMIT_EXE, .opt_level = 2};
    int i = 1;
    if (argc > 1 && !strcmp(argv[1], "explain"))
        o->command = CMD_EXPLAIN, i++;
    else if (argc > 1 && !strcmp(argv[1], "gradcheck"))
        o->command = CMD_GRADCHECK, i++;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1]) {
            int status = parse_flag(o, argc, argv, &i);
            if (status >= 0) return status;
        } else if (o->input) {
            return second_input(o, a);
        } else {
            o->input = a;
        }
    }
    if (!o->input) return usage_error("%s", "no input file");
    if (o->model && !*o->model) return usage_error("%s", "--model needs a model's name, got ''");
    if (o->collapse && o->emit != EMIT_DOT && o->emit != EMIT_SVG)
        return usage_error("%s", "--collapse draws calls as boxes in --emit=dot and --emit=svg "
                                 "only");
    if (o->static_link && o->mpi)
        return usage_error("%s", "--static and --mpi do not go together: an MPI program uses "
                                 "the MPI libraries of the machines mpirun starts it on");
    /* what would change nothing is said, not ignored */
    const char *writes = o->emit == EMIT_OBJ ? "-c" : "--emit";
    if (o->static_link && o->emit != EMIT_EXE)
        return usage_error("--static links the executable, which %s does not write", writes);
    if (o->mpi && o->emit != EMIT_EXE)
        return usage_error("--mpi links the executable with MPI, which %s does not write", writes);
    bool prints_steps = o->emit == EMIT_IR || o->emit == EMIT_GRAD || o->emit == EMIT_GRAD_RAW ||
                        o->emit == EMIT_GRAD_DIFF || o->dump_passes;
    if (o->all_steps && !prints_steps)
        return usage_error("%s", "--steps all is for --emit=ir, grad, grad-raw and grad-diff, "
                                 "and --dump-passes");
    return -1;
}

/* ---- where the output goes ----
 * Every output is checked against the source files before anything is written (an output
 * that is one of them is refused), and written through an OutFile (common.h): complete or
 * not at all. --emit text goes to stdout, which is pointed at the output file. */

static OutFile text_out;
static bool text_redirected;

static bool emits_text(const Options *o) {
    if (o->command == CMD_EXPLAIN) return true;
    return o->command == CMD_COMPILE && emit_kinds[o->emit].text;
}

/* Once every source file is read: stdout to -o FILE for --emit text. */
static bool open_text_output(const Options *o) {
    if (!emits_text(o) || !o->output) return true;
    if (!outfile_begin(&text_out, o->output, true)) return false;
    if (text_out.write_to && !freopen(text_out.write_to, "w", stdout)) {
        diag_fatal_noloc("cannot write %s: %s", o->output, strerror(errno));
        outfile_discard(&text_out);
        return false;
    }
    text_redirected = true;
    return true;
}

/* Flushes stdout, then puts the text output in place, or removes it after a failure. */
static int finish_text_output(int status) {
    /* A write that failed earlier leaves the error flag set, nothing left to flush, and
     * (most likely) its errno. */
    bool failed = fflush(stdout) != 0 || ferror(stdout);
    if (failed && status == 0) {
        diag_fatal_noloc("cannot write %s: %s", text_redirected ? text_out.path : "the output",
                         strerror(errno ? errno : EIO));
        status = 1;
    }
    if (!text_redirected) return status;
    text_redirected = false;
    if (status != 0) {
        outfile_discard(&text_out);
        return status;
    }
    return outfile_commit(&text_out) ? 0 : 1;
}

/* Where a compile writes: -o FILE, or by default stdout for text and SVG, "xor" or "xor.o"
 * for xor.nn (in the current folder). */
static const char *output_path(const Options *o) {
    if (o->output) return o->output;
    if (o->emit == EMIT_SVG || emit_kinds[o->emit].text) return "-";
    const char *base = strrchr(o->input, '/');
    base = base ? base + 1 : o->input;
    size_t n = strlen(base);
    if (n > 3 && !strcmp(base + n - 3, ".nn")) n -= 3;
    char *name = xstrndup(base, n);
    return o->emit == EMIT_OBJ ? xprintf("%s.o", name) : name;
}

/* ---- what --dump-passes prints after each stage ---- */

static void dump_header(const Options *o, const char *stage) {
    if (o->dump_passes) printf("==== after %s ====\n", stage);
}

static void dump_ast(Run *r) {
    ast_print(stdout, r->ast);
}
static void dump_forward(Run *r) {
    print_graph(stdout, r->g, PRINT_FORWARD, r->o->all_steps);
}
static void dump_backward(Run *r) {
    print_graph(stdout, r->g, PRINT_GRAD, r->o->all_steps);
}

static const struct {
    const char *name; /* "==== after NAME ====" */
    void (*dump)(Run *r);
} passes[] = {
    [STAGE_PARSE] = {NULL, NULL}, /* the tree is printed once its imports are checked */
    [STAGE_CHECK] = {"parse", dump_ast},
    [STAGE_LOWER] = {"lowering and shape checks", dump_forward},
    [STAGE_AUTODIFF] = {"autodiff", dump_backward},
    [STAGE_SIMPLIFY] = {"simplify", dump_backward},
    [STAGE_WRITE] = {NULL, NULL}, /* the back end prints its plan itself */
};

static int print_pass(Run *r, Stage s) {
    if (!passes[s].dump) return 0;
    dump_header(r->o, passes[s].name);
    passes[s].dump(r);
    return 0;
}

/* After each stage: the run stops at the stage its emit kind names, which writes its result
 * there (in place of the pass --dump-passes would print); otherwise --dump-passes prints the
 * pass and the run goes on. */
static bool passed(Run *r, Stage s) {
    if (r->emit->after == s) {
        r->status = r->emit->write ? r->emit->write(r) : print_pass(r, s);
        return false;
    }
    if (r->o->dump_passes) print_pass(r, s);
    return true;
}

/* ---- the stages: each returns false when the run ends there (r->status says how) ---- */

static bool parse(Run *r) {
    SrcFile *src = srcfile_read(r->o->input);
    if (!src) {
        diag_fatal_noloc("cannot read %s: %s", r->o->input, srcfile_error());
        return false;
    }
    r->ast = parse_file(src);
    return r->ast && passed(r, STAGE_PARSE);
}

/* Once every source file is read, the text output can be opened: none of them is it. */
static bool check(Run *r) {
    r->prog = sema_program(r->ast, nnc_stdlib_dir());
    return r->prog && open_text_output(r->o) && passed(r, STAGE_CHECK);
}

/* One model of the program: lowered, shapes checked, train block read. */
static bool lower(Run *r, const char *model) {
    if (!sema_choose_model(r->prog, model)) return false;
    r->g = lower_model(r->prog);
    return r->g && sema_train(r->prog, r->g) && passed(r, STAGE_LOWER);
}

/* Autodiff runs on the forward IR as lowered: fns' own backward rules refer to the values
 * their call made, which simplifying first could merge away. */
static bool differentiate(Run *r) {
    int errors = diag_error_count(); /* gradcheck goes on to the next model after errors */
    autodiff(r->g);
    return diag_error_count() == errors && passed(r, STAGE_AUTODIFF); /* a rule did not fit */
}

static bool simplified(Run *r) {
    simplify(r->g);
    return passed(r, STAGE_SIMPLIFY);
}

/* ---- what a run writes ---- */

static int print_ast(Run *r) {
    if (!open_text_output(r->o)) return 1;
    ast_print(stdout, r->ast);
    return 0;
}

static int print_forward(Run *r) {
    simplify(r->g);
    print_graph(stdout, r->g, PRINT_FORWARD, r->o->all_steps);
    return 0;
}

static int print_grad_diff(Run *r) {
    print_simplify_diff(stdout, r->g, r->o->all_steps);
    return 0;
}

static int print_dot_graph(Run *r) {
    if (dot_check_collapse(r->g, r->o->collapse)) return 1;
    print_dot(stdout, r->g, r->o->collapse);
    return 0;
}

/* Graphviz writes the drawing; an OutFile puts it in place (a device is written, not
 * replaced). */
static int write_svg_file(Run *r) {
    if (dot_check_collapse(r->g, r->o->collapse)) return 1;
    if (!strcmp(r->out, "-")) return write_svg(r->g, "-", r->o->collapse);
    OutFile svg;
    if (!outfile_begin(&svg, r->out, false)) return 1;
    if (write_svg(r->g, svg.write_to, r->o->collapse) != 0) {
        outfile_discard(&svg);
        return 1;
    }
    return outfile_commit(&svg) ? 0 : 1;
}

/* The back end's options; --dump-passes prints the plan too. */
static BackendOptions backend_options(Run *r) {
    BackendOptions bo = {.opt_level = r->o->opt_level, .f64 = r->o->f64};
    if (r->o->dump_passes) {
        dump_header(r->o, "planning");
        bo.plan_out = stdout;
    }
    return bo;
}

static int print_plan(Run *r) {
    BackendOptions bo = backend_options(r);
    bo.plan_out = stdout;
    bo.llvm_ir_out = fopen("/dev/null", "w");
    int status = bo.llvm_ir_out ? backend_compile(r->g, &bo) : 1;
    if (bo.llvm_ir_out) fclose(bo.llvm_ir_out);
    return status;
}

static int print_llvm(Run *r) {
    BackendOptions bo = backend_options(r);
    bo.llvm_ir_out = stdout;
    return backend_compile(r->g, &bo);
}

/* backend_compile writes the object whole or not at all. */
static int write_object(Run *r) {
    BackendOptions bo = backend_options(r);
    bo.obj_path = r->out;
    return backend_compile(r->g, &bo);
}

/* The object in a temporary file, then the executable (which backend_link also writes
 * whole or not at all). */
static int write_executable(Run *r) {
    BackendOptions bo = backend_options(r);
    char obj[] = "/tmp/nnc-XXXXXX.o";
    int fd = mkstemps(obj, 2);
    if (fd < 0) {
        diag_fatal_noloc("cannot create a temporary file: %s", strerror(errno));
        return 1;
    }
    close(fd);
    bo.obj_path = obj;
    int status = backend_compile(r->g, &bo);
    if (status == 0 && r->o->mpi)
        status = backend_link_mpi(obj, r->out);
    else if (status == 0)
        status = r->o->static_link ? backend_link_static(obj, r->out) : backend_link(obj, r->out);
    unlink(obj);
    return status;
}

/* ---- gradcheck ---- */

/* Appends what comes out of fd to *text, until its end. */
static void read_all(int fd, StrBuf *text) {
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR)) return;
        if (n > 0) sb_add(text, buf, (size_t)n);
    }
}

/* Runs a program and returns its exit status (or 1 when it could not run); with output,
 * its standard output is read into it. */
static int run_program(char *const argv[], StrBuf *output) {
    int fds[2] = {-1, -1};
    if (output && pipe(fds) < 0) return 1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        if (output) dup2(fds[1], STDOUT_FILENO), close(fds[0]), close(fds[1]);
        execv(argv[0], argv);
        fprintf(stderr, "nnc: error: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    if (output) {
        close(fds[1]);
        read_all(fds[0], output);
        close(fds[0]);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* The model in r->g compiled in f64 into a temporary executable (named after the model, in
 * a folder of its own that is removed after), run with args (argv[0] left for it), its
 * standard output read into output when that is not NULL. The exit status, or 1. */
static int run_f64_executable(Run *r, char **args, StrBuf *output) {
    char dir[] = "/tmp/nnc-run-XXXXXX"; /* mkdtemp's template */
    if (!mkdtemp(dir)) {
        diag_fatal_noloc("cannot create a temporary folder: %s", strerror(errno));
        return 1;
    }
    Options f64 = *r->o;
    f64.f64 = true;
    Run exe = *r;
    exe.o = &f64;
    exe.out = xprintf("%s/%s", dir, r->g->name);
    int status = write_executable(&exe);
    if (status == 0) {
        args[0] = (char *)exe.out;
        status = run_program(args, output);
    }
    unlink(exe.out);
    rmdir(dir);
    return status;
}

/* gradcheck: the executable's gradcheck command compares grad() with central differences
 * of forward() (runtime/gradcheck.c). */
static int gradcheck_graph(Run *r) {
    const char *seed = r->o->seed;
    char *args[] = {NULL, "gradcheck", seed ? "--seed" : NULL, (char *)seed, NULL};
    return run_f64_executable(r, args, NULL);
}

/* ---- explain --at-sample ---- */

/* The numbers of each value explain shows, by the name explain_probes gave it. */
static const char *probed_value(void *by_name, const char *probe) {
    return strmap_get(by_name, probe);
}

/* "#g12 0.25 -1\n#v12 ...": the values command's lines, by name. */
static HashMap *read_probes(const char *text) {
    HashMap *by_name = xalloc(sizeof *by_name);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n'), *space = strchr(line, ' ');
        if (!end) end = line + strlen(line);
        if (space && space < end)
            strmap_put(by_name, xstrndup(line, (size_t)(space - line)),
                       xstrndup(space + 1, (size_t)(end - space - 1)));
        line = *end ? end + 1 : end;
    }
    return by_name;
}

static bool is_row_number(const char *s) {
    if (!*s || strlen(s) > 18) return false;
    for (const char *c = s; *c; c++)
        if (*c < '0' || *c > '9') return false;
    return true;
}

/* The model compiled in f64 with explain's values as its bindings (explain_probes); its
 * values command runs the sample through predict and prints them; explain lays them out. */
static int explain_at_sample(Run *r) {
    const Options *o = r->o;
    if (explain_probes(r->g, o->wrt)) return 1;
    r->g->probe_bindings = true;
    bool rows = r->g->inputs.n > 0;
    char *args[] = {NULL,
                    "values",
                    "--weights",
                    (char *)o->weights,
                    rows ? "--row" : NULL,
                    (char *)o->at_sample,
                    rows && o->data ? "--data" : NULL,
                    (char *)o->data,
                    NULL};
    StrBuf numbers = {0};
    int status = run_f64_executable(r, args, &numbers);
    if (status != 0) return status;
    const char *data = o->data ? o->data : r->g->train.data_path;
    ExplainRequest rq = {.wrt = o->wrt,
                         .format = o->format,
                         .form = EXPLAIN_VALUES,
                         .lookup = probed_value,
                         .lookup_ctx = read_probes(sb_str(&numbers)),
                         .at = rows ? xprintf("row %s of %s, weights %s", o->at_sample,
                                              data ? data : "the data", o->weights)
                                    : xprintf("weights %s", o->weights)};
    return explain(stdout, r->g, &rq);
}

/* ---- the pipeline ---- */

/* One model's forward IR, backward IR, simplified. */
static bool middle_end(Run *r, const char *model) {
    return lower(r, model) && differentiate(r) && simplified(r);
}

/* The one-step form `sample` runs, lowered and simplified, or why the model has none
 * (docs/codegen.md, "The one-step form"). */
static void add_step_form(Run *r) {
    r->g->step = lower_step_form(r->prog, r->g, &r->g->step_missing);
    if (r->g->step) simplify(r->g->step);
}

/* nnc FILE: the executable, or what -c or --emit asks for. */
static int compile(Run *r) {
    r->out = output_path(r->o);
    /* The check before any work: the default name of "model" is "model" itself. */
    if (!emits_text(r->o) && !output_is_not_a_source(r->out)) return 1;
    if (!middle_end(r, r->o->model)) return r->status;
    add_step_form(r);
    return r->emit->write(r);
}

static int explain_at_sample(Run *r);

/* Which form of explain the options ask for, checked before any work: 0, or 2. */
static int explain_form_fits(const Options *o) {
    if (o->at_sample && o->form != EXPLAIN_VALUES)
        return usage_error("%s", "--multiply and --at-sample are two forms: one at a time");
    if (o->at_sample && !is_row_number(o->at_sample))
        return usage_error("--at-sample takes a row number from 0, got '%s'", o->at_sample);
    if (o->at_sample && !o->weights)
        return usage_error("%s", "explain --at-sample needs --weights FILE");
    if (!o->at_sample && (o->weights || o->data))
        return usage_error("%s", "--weights and --data go with --at-sample N");
    return 0;
}

/* nnc explain FILE */
static int explain_model(Run *r) {
    if (explain_form_fits(r->o)) return 2;
    if (!middle_end(r, r->o->model)) return r->status;
    if (r->o->form == EXPLAIN_VALUES) return explain_at_sample(r);
    ExplainRequest rq = {.wrt = r->o->wrt, .format = r->o->format, .form = r->o->form};
    return explain(stdout, r->g, &rq);
}

/* nnc gradcheck FILE: the model chosen with --model, the only one, or each in turn. */
static int gradcheck(Run *r) {
    Program *prog = r->prog;
    if (r->o->model || prog->models.n <= 1)
        return middle_end(r, r->o->model) ? gradcheck_graph(r) : r->status;
    StrBuf failed = {0};
    int n_failed = 0;
    for (int i = 0; i < prog->models.n; i++) {
        const char *name = prog->models.v[i]->str;
        if (i) putchar('\n');
        if (!middle_end(r, name) || gradcheck_graph(r) != 0) {
            sb_printf(&failed, "%s%s", n_failed++ ? ", " : "", name);
            if (diag_too_many()) break;
        }
    }
    if (n_failed)
        printf("\ngradcheck: %d of %d models failed: %s\n", n_failed, prog->models.n,
               sb_str(&failed));
    else
        printf("\ngradcheck: all %d models match\n", prog->models.n);
    return n_failed ? 1 : 0;
}

static int run(const Options *o) {
    Run r = {.o = o, .emit = &emit_kinds[o->emit], .status = 1};
    if (!parse(&r) || !check(&r)) return r.status;
    switch (o->command) {
    case CMD_COMPILE: return compile(&r);
    case CMD_EXPLAIN: return explain_model(&r);
    case CMD_GRADCHECK: return gradcheck(&r);
    }
    return 1;
}

static int run_driver(int argc, char **argv) {
    Options o;
    int status = parse_args(argc, argv, &o);
    if (status < 0) status = finish_text_output(run(&o));
    stats_report();
    xalloc_free_all();
    return status;
}

/* Everything a run leaves behind, so that nnc_main can run again in the same process: the
 * error count, the arena and what points into it, where --emit output went. LLVM's
 * initialisation (codegen.c) is kept: it is once per process. */
static void reset_driver_state(void) {
    text_out = (OutFile){0};
    text_redirected = false;
    nnc_stats = (NncStats){0};
    diag_reset();
    nnc_paths_forget();
    xalloc_free_all();
}

int nnc_main(int argc, char **argv) {
    reset_driver_state();
    return run_driver(argc, argv);
}
