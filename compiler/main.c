/* main.c: the nnc driver. Runs the stages of stages.h in order and stops at the first that
 * reports an error: a bad file never reaches the back end, so never makes a binary.
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
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef enum Command { CMD_COMPILE, CMD_EXPLAIN, CMD_GRADCHECK } Command;

typedef enum Emit {
    EMIT_EXE,
    EMIT_OBJ,
    EMIT_AST,
    EMIT_IR,
    EMIT_GRAD,
    EMIT_GRAD_RAW,
    EMIT_PLAN,
    EMIT_LLVM,
    EMIT_DOT,
    EMIT_SVG,
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
    const char *wrt;      /* explain */
    ExplainFormat format; /* explain */
    const char *seed;     /* gradcheck */
} Options;

static const char usage[] =
    "usage: nnc FILE.nn [options]            compile a model into a training executable\n"
    "       nnc explain FILE.nn [--wrt NAME] [--format=text|markdown]\n"
    "                                        the chain rule from the loss to each param\n"
    "       nnc gradcheck FILE.nn [--seed N] derived gradients against finite differences\n"
    "                                        (of every model, or of --model NAME)\n"
    "\n"
    "Compiles a .nn model into a native executable that trains it (run it with --help).\n"
    "\n"
    "options:\n"
    "  -o FILE         write the executable (or object, or --emit output) to FILE\n"
    "                  (default: the model file's name without .nn, in this folder)\n"
    "  -c              write an object file instead of an executable\n"
    "  --static        link everything in (OpenBLAS too): an executable to ship to a\n"
    "                  machine with nothing installed (about 30 MB)\n"
    "  --emit=STAGE    print a stage instead of compiling (to stdout, or to -o FILE):\n"
    "                    ast       the syntax tree\n"
    "                    ir        the forward IR\n"
    "                    grad      forward and the derived backward IR, simplified,\n"
    "                              each backward line annotated with its chain-rule step\n"
    "                    grad-raw  the same, exactly as autodiff emitted it\n"
    "                    plan      the schedule, fused loops and memory plan\n"
    "                    llvm      the optimised LLVM IR\n"
    "                    dot       forward and backward graphs for Graphviz\n"
    "                    svg       the same, drawn by Graphviz's dot\n"
    "  --dump-passes   print the program after each stage (parse, lowering and shape\n"
    "                  checks, autodiff, simplify, planning), then compile as usual\n"
    "  -O0 -O1 -O2 -O3 optimisation level (default -O2)\n"
    "  --f64           compute in double precision\n"
    "  --model NAME    the model to compile, when the file has several\n"
    "  --help          this text\n"
    "  --version       the version of nnc and of the LLVM it uses\n"
    "\n"
    "explain options:\n"
    "  --wrt NAME      one param (default: every param)\n"
    "  --format=F      text (UTF-8, the default) or markdown (with LaTeX math)\n"
    "gradcheck options:\n"
    "  --seed N        seed of the points the gradients are checked at (default: the\n"
    "                  train block's seed, so the first point is where training starts)\n"
    "\n"
    "environment:\n"
    "  NNC_HOME        folder holding stdlib/ and runtime/libnnrt.a (default: found next to nnc)\n"
    "  NNC_CC          the C compiler used to link (default: the one nnc was built with)\n";

static int usage_error(const char *fmt, const char *arg) {
    fputs("nnc: error: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n(run nnc --help for usage)\n", stderr);
    return 2;
}

static int parse_emit(const char *s, Emit *emit) {
    static const struct {
        const char *name;
        Emit emit;
    } kinds[] = {{"ast", EMIT_AST},           {"ir", EMIT_IR},     {"grad", EMIT_GRAD},
                 {"grad-raw", EMIT_GRAD_RAW}, {"plan", EMIT_PLAN}, {"llvm", EMIT_LLVM},
                 {"dot", EMIT_DOT},           {"svg", EMIT_SVG}};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (!strcmp(s, kinds[i].name)) {
            *emit = kinds[i].emit;
            return 0;
        }
    return usage_error("unknown --emit stage '%s' (ast, ir, grad, grad-raw, plan, llvm, dot, svg)",
                       s);
}

static bool takes_value(const char *a) {
    return !strcmp(a, "-o") || !strcmp(a, "--model") || !strcmp(a, "--wrt") || !strcmp(a, "--seed");
}

static int parse_option(Options *o, const char *a, const char *value) {
    if (!strcmp(a, "-o"))
        o->output = value;
    else if (!strcmp(a, "--model"))
        o->model = value;
    else if (!strcmp(a, "--wrt") && o->command == CMD_EXPLAIN)
        o->wrt = value;
    else if (!strcmp(a, "--seed") && o->command == CMD_GRADCHECK)
        o->seed = value;
    else if (!strncmp(a, "--emit=", 7) && o->command == CMD_COMPILE)
        return parse_emit(a + 7, &o->emit);
    else if (!strcmp(a, "--format=text") && o->command == CMD_EXPLAIN)
        o->format = EXPLAIN_TEXT;
    else if (!strcmp(a, "--format=markdown") && o->command == CMD_EXPLAIN)
        o->format = EXPLAIN_MARKDOWN;
    else if (!strcmp(a, "-c") && o->command == CMD_COMPILE)
        o->emit = EMIT_OBJ;
    else if (!strcmp(a, "--dump-passes") && o->command == CMD_COMPILE)
        o->dump_passes = true;
    else if (!strcmp(a, "--static") && o->command == CMD_COMPILE)
        o->static_link = true;
    else if (a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' && !a[3])
        o->opt_level = a[2] - '0';
    else if (!strcmp(a, "--f64"))
        o->f64 = true;
    else
        return usage_error("unknown option %s", a);
    return 0;
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
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("nnc %s (LLVM %s)\n", NNC_VERSION, NNC_LLVM_PACKAGE_VERSION);
            return 0;
        } else if (takes_value(a)) {
            if (i + 1 == argc) return usage_error("%s needs an argument", a);
            if (parse_option(o, a, argv[++i])) return 2;
        } else if (a[0] == '-' && a[1]) {
            if (parse_option(o, a, NULL)) return 2;
        } else if (o->input) {
            return usage_error("one model file at a time (got a second: %s)", a);
        } else {
            o->input = a;
        }
    }
    if (!o->input) return usage_error("%s", "no input file");
    return -1;
}

/* xor.nn -> xor (in the current folder). */
static const char *default_output(const char *input, bool object) {
    const char *base = strrchr(input, '/');
    base = base ? base + 1 : input;
    size_t n = strlen(base);
    if (n > 3 && !strcmp(base + n - 3, ".nn")) n -= 3;
    char *name = xstrndup(base, n);
    return object ? xprintf("%s.o", name) : name;
}

static void dump_header(const Options *o, const char *stage) {
    if (o->dump_passes) printf("==== after %s ====\n", stage);
}

/* ---- where the output goes ----
 * Every output is checked against the source files before anything is written (an output
 * that is one of them is refused), and written through an OutFile (common.h): complete or
 * not at all. --emit text goes to stdout, which is pointed at the output file. */

static OutFile text_out;
static bool text_redirected;

static bool emits_text(const Options *o) {
    return o->command == CMD_COMPILE && o->emit != EMIT_EXE && o->emit != EMIT_OBJ &&
           o->emit != EMIT_SVG;
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

/* ---- the stages ---- */

/* The model file, parsed, with its imports loaded: NULL after errors (or after --emit=ast,
 * which stops there). */
static Program *front_end(const Options *o, int *status) {
    *status = 1;
    SrcFile *src = srcfile_read(o->input);
    if (!src) {
        diag_fatal_noloc("cannot read %s: %s", o->input, srcfile_error());
        return NULL;
    }
    Node *ast = parse_file(src);
    if (!ast) return NULL;
    if (o->emit == EMIT_AST) {
        if (!open_text_output(o)) return NULL;
        ast_print(stdout, ast);
        *status = 0;
        return NULL;
    }
    Program *prog = sema_program(ast, nnc_stdlib_dir());
    if (!prog || !open_text_output(o)) return NULL;
    if (o->dump_passes) {
        dump_header(o, "parse");
        ast_print(stdout, ast);
    }
    *status = 0;
    return prog;
}

/* One model of the program: lowered, shapes checked, train block read. */
static Graph *lower(Program *prog, const char *model) {
    if (!sema_choose_model(prog, model)) return NULL;
    Graph *g = lower_model(prog);
    if (!g || !sema_train(prog, g)) return NULL;
    return g;
}

/* The stages from the forward IR to the simplified backward IR, printing what is asked.
 * Autodiff runs on the forward IR as lowered: fns' own backward rules refer to the values
 * their call made, which simplifying first could merge away. */
static bool middle_end(Graph *g, const Options *o) {
    if (o->emit == EMIT_IR) {
        simplify(g);
        print_graph(stdout, g, PRINT_FORWARD);
        return false;
    }
    if (o->dump_passes) {
        dump_header(o, "lowering and shape checks");
        print_graph(stdout, g, PRINT_FORWARD);
    }
    autodiff(g);
    if (diag_error_count()) return false; /* a fn's backward rule did not fit */
    if (o->emit == EMIT_GRAD_RAW || o->dump_passes) {
        dump_header(o, "autodiff");
        print_graph(stdout, g, PRINT_GRAD);
        if (o->emit == EMIT_GRAD_RAW) return false;
    }
    simplify(g);
    if (o->emit == EMIT_GRAD || o->dump_passes) {
        dump_header(o, "simplify");
        print_graph(stdout, g, PRINT_GRAD);
        if (o->emit == EMIT_GRAD) return false;
    }
    return true;
}

/* The object (backend_compile writes it whole or not at all), then the executable (the
 * same for backend_link). */
static int compile_and_link(Graph *g, const Options *o, const char *out) {
    BackendOptions bo = {.opt_level = o->opt_level, .f64 = o->f64};
    if (o->dump_passes) {
        dump_header(o, "planning");
        bo.plan_out = stdout;
    }
    if (o->emit == EMIT_PLAN) {
        bo.plan_out = stdout;
        bo.llvm_ir_out = fopen("/dev/null", "w");
        int status = bo.llvm_ir_out ? backend_compile(g, &bo) : 1;
        if (bo.llvm_ir_out) fclose(bo.llvm_ir_out);
        return status;
    }
    if (o->emit == EMIT_LLVM) {
        bo.llvm_ir_out = stdout;
        return backend_compile(g, &bo);
    }
    if (o->emit == EMIT_OBJ) {
        bo.obj_path = out;
        return backend_compile(g, &bo);
    }
    char obj[] = "/tmp/nnc-XXXXXX.o";
    int fd = mkstemps(obj, 2);
    if (fd < 0) {
        diag_fatal_noloc("cannot create a temporary file: %s", strerror(errno));
        return 1;
    }
    close(fd);
    bo.obj_path = obj;
    int status = backend_compile(g, &bo);
    if (status == 0)
        status = o->static_link ? backend_link_static(obj, out) : backend_link(obj, out);
    unlink(obj);
    return status;
}

/* Graphviz writes the drawing; an OutFile puts it in place (a device is written, not
 * replaced). */
static int emit_svg(Graph *g, const char *path) {
    if (!strcmp(path, "-")) return write_svg(g, "-");
    OutFile svg;
    if (!outfile_begin(&svg, path, false)) return 1;
    if (write_svg(g, svg.write_to) != 0) {
        outfile_discard(&svg);
        return 1;
    }
    return outfile_commit(&svg) ? 0 : 1;
}

/* Runs a program and returns its exit status (or 1 when it could not run). */
static int run_program(char *const argv[]) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        execv(argv[0], argv);
        fprintf(stderr, "nnc: error: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

/* nnc gradcheck: compile in f64 into a temporary executable and run its gradcheck command,
 * which compares grad() with central differences of forward() (runtime/gradcheck.c). */
static int gradcheck_graph(Graph *g, const Options *o) {
    char dir[] = "/tmp/nnc-gradcheck-XXXXXX";
    if (!mkdtemp(dir)) {
        diag_fatal_noloc("cannot create a temporary folder: %s", strerror(errno));
        return 1;
    }
    Options compile = *o;
    compile.f64 = true;
    compile.emit = EMIT_EXE;
    const char *exe = xprintf("%s/%s", dir, g->name);
    int status = compile_and_link(g, &compile, exe);
    if (status == 0) {
        char *argv[] = {(char *)exe, "gradcheck", o->seed ? "--seed" : NULL, (char *)o->seed, NULL};
        status = run_program(argv);
    }
    unlink(exe);
    rmdir(dir);
    return status;
}

/* The backward pass of one model, for explain and gradcheck. */
static Graph *differentiated(Program *prog, const char *model) {
    Graph *g = lower(prog, model);
    if (!g) return NULL;
    autodiff(g);
    if (diag_error_count()) return NULL;
    simplify(g);
    return g;
}

/* nnc gradcheck FILE: the model chosen with --model, the only one, or each in turn. */
static int gradcheck(Program *prog, const Options *o) {
    if (o->model || prog->models.n <= 1) {
        Graph *g = differentiated(prog, o->model);
        return g ? gradcheck_graph(g, o) : 1;
    }
    StrBuf failed = {0};
    int n_failed = 0;
    for (int i = 0; i < prog->models.n; i++) {
        const char *name = prog->models.v[i]->str;
        if (i) putchar('\n');
        Graph *g = differentiated(prog, name);
        if (!g || gradcheck_graph(g, o) != 0) {
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

/* Compiles the model, or prints the stage --emit asks for. */
static int compile(Program *prog, const Options *o) {
    const char *out = o->output             ? o->output
                      : o->emit == EMIT_SVG ? "-"
                                            : default_output(o->input, o->emit == EMIT_OBJ);
    /* The check before any work: the default name of "model" is "model" itself. */
    if (!emits_text(o) && !output_is_not_a_source(out)) return 1;
    Graph *g = lower(prog, o->model);
    if (!g) return 1;
    if (!middle_end(g, o)) return diag_error_count() ? 1 : 0;
    if (o->emit == EMIT_DOT) {
        print_dot(stdout, g);
        return 0;
    }
    if (o->emit == EMIT_SVG) return emit_svg(g, out);
    return compile_and_link(g, o, out);
}

static int run(const Options *o) {
    int status;
    Program *prog = front_end(o, &status);
    if (!prog) return status;
    switch (o->command) {
    case CMD_EXPLAIN: {
        Graph *g = differentiated(prog, o->model);
        return g ? explain(stdout, g, o->wrt, o->format) : 1;
    }
    case CMD_GRADCHECK: return gradcheck(prog, o);
    case CMD_COMPILE: return compile(prog, o);
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
