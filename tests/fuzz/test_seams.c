/* test_seams.c: what the fuzz targets rely on, checked without libFuzzer.
 *
 *   nnc_main (compiler/driver.h) runs many times in one process: each run starts with no
 *   errors counted, finds the stdlib again after the arena was freed, and does not remove
 *   an earlier run's --emit output when it fails.
 *   rt_set_exit_handler (runtime/util.h) turns the runtime's error exits into a return
 *   with the exit status; without a handler they still print and exit as before.
 *
 * Messages go to stderr: nnc_main points stdout at its --emit -o files. Needs NNC_HOME
 * (the build folder) for the stdlib. */
#include "fuzz.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "csv.h"
#include "driver.h"
#include "util.h"

static int failures;

static void check(int ok, const char *fmt, ...) {
    if (ok) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    failures++;
}

static char folder[] = "/tmp/nnc-test-seams-XXXXXX";

static const char *path_in(const char *name) {
    static char paths[8][256];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", folder, name);
    return p;
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* The whole file, or "" when it cannot be read (a static buffer). */
static const char *read_file(const char *path) {
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    return buf;
}

static int nnc(const char *a, const char *b, const char *c, const char *d) {
    char *argv[] = {"nnc", (char *)a, (char *)b, (char *)c, (char *)d, NULL};
    int argc = 1;
    while (argv[argc]) argc++;
    return nnc_main(argc, argv);
}

static const char good[] = "import \"nn\"\n"
                           "model m {\n"
                           "    input  x[2]\n"
                           "    target y[1]\n"
                           "    output p = sigmoid(dense(x, 1))\n"
                           "    loss     = bce(p, y)\n"
                           "}\n";

/* More errors than DIAG_MAX_ERRORS, so that the count would also stay "suppressed". */
static const char bad[] = "model m {\n"
                          "    loss = a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11 +\n"
                          "           a12 + a13 + a14 + a15 + a16 + a17 + a18 + a19 + a20 + a21 +\n"
                          "           a22 + a23\n"
                          "}\n";

static void driver_runs_again(void) {
    const char *good_nn = path_in("good.nn"), *bad_nn = path_in("bad.nn");
    const char *first = path_in("first.txt"), *second = path_in("second.txt");
    write_file(good_nn, good);
    write_file(bad_nn, bad);

    check(nnc("--emit=ir", "-o", first, good_nn) == 0, "a good file compiles");
    check(strstr(read_file(first), "loss") != NULL, "--emit=ir -o wrote the IR: '%s'",
          read_file(first));
    check(nnc("--emit=ir", bad_nn, NULL, NULL) == 1, "a file with errors fails");
    check(access(first, F_OK) == 0,
          "a failed run removes its own -o output only, not the previous run's %s", first);
    /* Errors are not carried over, and the stdlib (whose path lived in the freed arena) is
     * found again. */
    check(nnc("--emit=grad", "-o", second, good_nn) == 0,
          "a good file compiles after a run with errors");
    check(strstr(read_file(second), "d cost/d @p.W = %p.W.grad") != NULL,
          "--emit=grad -o wrote the gradient of dense's W: '%s'", read_file(second));
    check(nnc("-c", "-o", path_in("m.o"), good_nn) == 0, "and compiles to an object");
    struct stat st;
    check(stat(path_in("m.o"), &st) == 0 && st.st_size > 0, "the object file was written");
    unlink(first);
    unlink(second);
    unlink(path_in("m.o"));
    unlink(good_nn);
    unlink(bad_nn);
}

/* ---- the runtime's exit seam ---- */

static void parse_csv(void *arg) {
    const char *text = arg;
    rt_csv_slot slots[] = {{"x", 0, 2, 0, 0, 0}};
    rt_csv_layout layout = {slots, 1, 2, 1, 0, "x's columns", NULL};
    rt_dataset d = {.input_elems = 2};
    rt_csv_parse("t.csv", text, strlen(text), &layout, 0, &d);
    check(d.rows == 2 && rt_get(d.inputs, 3, 0) == 4.0, "the good CSV was read");
}

static void usage_error(void *arg) {
    rt_usage_error("bad option %s", (const char *)arg);
}

static void exit_handler_returns_status(void) {
    check(fuzz_rt_call(parse_csv, "1,2\n3,4\n") == 0, "a good CSV returns 0");
    check(fuzz_rt_call(parse_csv, "1,2\n3,x\n") == RT_EXIT_FAILURE,
          "a bad CSV returns the failure status");
    check(fuzz_rt_call(usage_error, "--x") == RT_EXIT_USAGE, "a usage error returns 2");
    rt_free_all();
}

/* Without a handler, an error still prints its message and exits with its status. */
static void exit_without_handler(void) {
    int err[2];
    if (pipe(err) != 0) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(err[1], 2);
        rt_set_program_name("prog");
        rt_set_exit_handler(NULL);
        rt_line_error("d.csv", 7, "column %d is empty", 3);
    }
    close(err[1]);
    char msg[256] = "";
    size_t len = 0;
    ssize_t n;
    while (len < sizeof msg - 1 && (n = read(err[0], msg + len, sizeof msg - 1 - len)) > 0)
        len += (size_t)n;
    msg[len] = '\0';
    close(err[0]);
    int status;
    waitpid(pid, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == RT_EXIT_FAILURE,
          "without a handler the error exits with status 1");
    check(strcmp(msg, "d.csv:7: error: column 3 is empty\n") == 0, "the message: '%s'", msg);
}

int main(void) {
    if (!mkdtemp(folder)) {
        perror("mkdtemp");
        return 1;
    }
    driver_runs_again();
    exit_handler_returns_status();
    exit_without_handler();
    rmdir(folder);
    fprintf(stderr, "test_seams: %s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
