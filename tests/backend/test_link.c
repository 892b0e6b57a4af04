/* test_link.c: paths.c and link.c. An NNC_HOME whose path has spaces holds a stand-in
 * libnnrt.a (a main() that runs forward and prints the loss); backend_link makes a real
 * executable of a compiled model with it, and the executable runs. Also: what a missing
 * runtime or a failed link reports. */
#include "harness.h"
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* The runtime stand-in: batch of 2, x = 1 for sample 0 and 2 for sample 1. */
static const char *const fake_runtime =
    "#include \"nnrt.h\"\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "int main(void) {\n"
    "    const nnrt_model *d = &nnrt_model_desc;\n"
    "    float *fixed = calloc((size_t)d->fixed_elems + 1, sizeof(float));\n"
    "    float *varying = calloc((size_t)d->varying_elems * 2 + 1, sizeof(float));\n"
    "    nnrt_ctx ctx = {.fixed = fixed, .varying = varying, .batch = 2, .batch_cap = 2};\n"
    "    const nnrt_tensor *x = &d->inputs[0];\n"
    "    for (int b = 0; b < 2; b++)\n"
    "        for (int i = 0; i < x->numel; i++) varying[x->offset * 2 + b * x->numel + i] = b + "
    "1;\n"
    "    d->forward(&ctx);\n"
    "    printf(\"%s %g %g\\n\", d->name, varying[d->loss.offset * 2], varying[d->loss.offset * 2 "
    "+ 1]);\n"
    "    free(fixed);\n"
    "    free(varying);\n"
    "    return 0;\n"
    "}\n";

/* Runs argv with stdout to out_path (when set); the exit status, or -1. */
static int run(const char *const *argv, const char *out_path) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (out_path)
        posix_spawn_file_actions_addopen(&actions, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], &actions, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (err) return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static bool write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return false;
    fputs(text, f);
    return fclose(f) == 0;
}

static bool build_fake_runtime(const char *home) {
    const char *dir = xprintf("%s/runtime", home), *src = xprintf("%s/main.c", dir);
    const char *obj = xprintf("%s/main.o", dir), *lib = xprintf("%s/libnnrt.a", dir);
    const char *cc[] = {"cc", "-c", "-I" NNRT_INCLUDE_DIR, src, "-o", obj, NULL};
    const char *ar[] = {"ar", "rcs", lib, obj, NULL};
    return mkdir(dir, 0755) == 0 && write_file(src, fake_runtime) && run(cc, NULL) == 0 &&
           run(ar, NULL) == 0;
}

static Graph *sum_of_squares(void) {
    Graph *g = graph_new("squares");
    Value *x = add_input(g, "x", shape1(3));
    g->loss = g->output = ir_build1(g, OP_sum, ir_build2(g, OP_mul, x, x));
    return g;
}

static void cleanup(const char *home) {
    const char *files[] = {"runtime/main.c", "runtime/main.o", "runtime/libnnrt.a",
                           "my model.o",     "my model",       "out.txt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(xprintf("%s/%s", home, files[i]));
    rmdir(xprintf("%s/runtime", home));
    rmdir(xprintf("%s/stdlib", home));
    rmdir(home);
}

int main(void) {
    char templ[] = "/tmp/nnc link test XXXXXX";
    if (!check(mkdtemp(templ) != NULL, "mkdtemp: %s", strerror(errno))) return 1;
    const char *home = templ;
    setenv("NNC_HOME", home, 1);

    fputs("(an error about the runtime library is expected here)\n", stderr);
    check(nnc_runtime_lib() == NULL, "found a runtime library in an empty NNC_HOME");
    check(mkdir(xprintf("%s/stdlib", home), 0755) == 0, "mkdir stdlib");
    const char *stdlib = nnc_stdlib_dir();
    check(stdlib && !strcmp(stdlib, xprintf("%s/stdlib", home)), "stdlib dir: %s",
          stdlib ? stdlib : "(none)");

    if (check(build_fake_runtime(home), "cannot build the stand-in runtime")) {
        const char *obj = xprintf("%s/my model.o", home), *exe = xprintf("%s/my model", home);
        BackendOptions opt = {.opt_level = 2, .obj_path = obj};
        check(backend_compile(sum_of_squares(), &opt) == 0, "compiling");
        check(backend_link(obj, exe) == 0, "linking %s", exe);
        const char *out = xprintf("%s/out.txt", home);
        const char *argv[] = {exe, NULL};
        check(run(argv, out) == 0, "running %s", exe);
        SrcFile *text = srcfile_read(out);
        check(text && !strcmp(text->text, "squares 3 12\n"), "the linked program printed %s",
              text ? text->text : "nothing");

        fputs("(a failed link is expected here)\n", stderr);
        const char *missing = xprintf("%s/no such object.o", home);
        const char *bad_exe = xprintf("%s/never", home);
        check(backend_link(missing, bad_exe) == 1, "linking a missing object succeeded");
        check(access(bad_exe, F_OK) != 0, "a failed link left %s", bad_exe);
    }
    cleanup(home);
    return test_summary("test_link");
}
