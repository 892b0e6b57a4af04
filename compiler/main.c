/* main.c: the nnc driver. Runs the stages of stages.h in order and stops at the first that
 * reports an error: a bad file never reaches the back end, so never makes a binary. */
#include "backend.h"
#include "config.h"
#include "paths.h"
#include "stages.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum Emit {
    EMIT_EXE,
    EMIT_OBJ,
    EMIT_AST,
    EMIT_IR,
    EMIT_GRAD,
    EMIT_GRAD_RAW,
    EMIT_LLVM
} Emit;

typedef struct Options {
    const char *input;
    const char *output;
    const char *model;
    Emit emit;
    int opt_level;
    bool f64;
} Options;

static const char usage[] =
    "usage: nnc FILE.nn [options]\n"
    "\n"
    "Compiles a .nn model into a native executable that trains it (run it with --help).\n"
    "\n"
    "options:\n"
    "  -o FILE         write the executable (or object, or --emit text) to FILE\n"
    "                  (default: the model file's name without .nn, in this folder)\n"
    "  -c              write an object file instead of an executable\n"
    "  --emit=STAGE    print a stage to stdout instead of compiling:\n"
    "                    ast       the syntax tree\n"
    "                    ir        the forward IR\n"
    "                    grad      forward and the derived backward IR, simplified,\n"
    "                              each backward line annotated with its chain-rule step\n"
    "                    grad-raw  the same, exactly as autodiff emitted it\n"
    "                    llvm      the optimised LLVM IR\n"
    "  -O0 -O1 -O2 -O3 optimisation level (default -O2)\n"
    "  --f64           compute in double precision (gradient checks)\n"
    "  --model NAME    the model to compile, when the file has several\n"
    "  --help          this text\n"
    "  --version       the version of nnc and of the LLVM it uses\n"
    "\n"
    "environment:\n"
    "  NNC_HOME        folder holding stdlib/ and runtime/libnnrt.a (default: found next to nnc)\n";

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
    } kinds[] = {{"ast", EMIT_AST},
                 {"ir", EMIT_IR},
                 {"grad", EMIT_GRAD},
                 {"grad-raw", EMIT_GRAD_RAW},
                 {"llvm", EMIT_LLVM}};
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (!strcmp(s, kinds[i].name)) {
            *emit = kinds[i].emit;
            return 0;
        }
    return usage_error("unknown --emit stage '%s' (ast, ir, grad, grad-raw, llvm)", s);
}

/* Returns -1 to go on, or an exit status. */
static int parse_args(int argc, char **argv, Options *o) {
    *o = (Options){.emit = EMIT_EXE, .opt_level = 2};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("nnc %s (LLVM %s)\n", NNC_VERSION, NNC_LLVM_PACKAGE_VERSION);
            return 0;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--model")) {
            if (i + 1 == argc) return usage_error("%s needs an argument", a);
            *(!strcmp(a, "-o") ? &o->output : &o->model) = argv[++i];
        } else if (!strncmp(a, "--emit=", 7)) {
            if (parse_emit(a + 7, &o->emit)) return 2;
        } else if (!strcmp(a, "-c")) {
            o->emit = EMIT_OBJ;
        } else if (a[0] == '-' && a[1] == 'O' && a[2] >= '0' && a[2] <= '3' && !a[3]) {
            o->opt_level = a[2] - '0';
        } else if (!strcmp(a, "--f64")) {
            o->f64 = true;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option %s", a);
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

static Graph *front_end(const Options *o) {
    SrcFile *src = srcfile_read(o->input);
    if (!src) {
        diag_fatal_noloc("cannot read %s: %s", o->input, strerror(errno));
        return NULL;
    }
    Node *ast = parse_file(src);
    if (!ast) return NULL;
    if (o->emit == EMIT_AST) {
        ast_print(stdout, ast);
        return NULL;
    }
    Program prog;
    if (!sema_program(ast, nnc_stdlib_dir(), o->model, &prog)) return NULL;
    Graph *g = lower_model(&prog);
    if (!g || !sema_train(&prog, g)) return NULL;
    return g;
}

static int compile_and_link(Graph *g, const Options *o) {
    BackendOptions bo = {.opt_level = o->opt_level, .f64 = o->f64};
    if (o->emit == EMIT_LLVM) {
        bo.llvm_ir_out = stdout;
        return backend_compile(g, &bo);
    }
    const char *out = o->output ? o->output : default_output(o->input, o->emit == EMIT_OBJ);
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
    if (status == 0) status = backend_link(obj, out);
    unlink(obj);
    return status;
}

static int run(const Options *o) {
    Graph *g = front_end(o);
    if (!g) return diag_error_count() ? 1 : 0;
    simplify(g);
    if (o->emit == EMIT_IR) {
        print_graph(stdout, g, PRINT_FORWARD);
        return 0;
    }
    autodiff(g);
    if (o->emit == EMIT_GRAD_RAW) {
        print_graph(stdout, g, PRINT_GRAD);
        return 0;
    }
    simplify(g);
    if (o->emit == EMIT_GRAD) {
        print_graph(stdout, g, PRINT_GRAD);
        return 0;
    }
    return compile_and_link(g, o);
}

int main(int argc, char **argv) {
    Options o;
    int status = parse_args(argc, argv, &o);
    if (status < 0) status = run(&o);
    if (fflush(stdout) != 0 && status == 0) {
        fprintf(stderr, "nnc: error: writing the output: %s\n", strerror(errno));
        status = 1;
    }
    xalloc_free_all();
    return status;
}
