/* fuzz_nnc.c: the whole compiler, through the driver nnc_main (compiler/driver.h), so that
 * what the command does between the stages is fuzzed too.
 *
 * Input: one byte that picks the command (below), then the .nn file. The file is written
 * to a scratch folder made at start-up in $TMPDIR or /tmp (imports such as "nn" come from
 * the stdlib next to this executable, or NNC_HOME) and the command runs on it with its output going
 * to that folder. Commands that link or run a program (an executable, gradcheck, svg) are left out:
 * they would spend the time in the C compiler rather than in nnc.
 *
 * A file whose first line is "#model NAME" (a comment to nnc) is compiled with --model NAME,
 * which a file of several models needs.
 *
 * With NNC_FUZZ_SHOW=1 in the environment each input's command line is printed, so that a
 * crash can be rerun with nnc itself:  tail -c +2 CRASH > crash.nn && nnc ARGS crash.nn */
#include "fuzz.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"

/* ASan reads this at start-up: a read of a stack frame that has returned is reported as
 * such (a Program of main.c's front_end read by autodiff was one), rather than as
 * whatever the reused stack happens to hold. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
    return "detect_stack_use_after_return=1";
}

/* Whatever follows in a command is added after the options: "-o OUT" where it says
 * OUT_TEXT or OUT_OBJ. */
enum { NO_OUT, OUT_TEXT, OUT_OBJ };

static const struct Command {
    const char *args[4];
    int out;
} commands[] = {
    {{"--emit=ast"}, OUT_TEXT},
    {{"--emit=ir"}, OUT_TEXT},
    {{"--emit=grad"}, OUT_TEXT},
    {{"--emit=grad-raw"}, OUT_TEXT},
    {{"--emit=dot"}, OUT_TEXT},
    {{"explain"}, NO_OUT},
    {{"explain", "--format=markdown"}, NO_OUT},
    {{"--emit=plan", "-O0"}, OUT_TEXT},
    {{"-c", "-O0"}, OUT_OBJ},
    {{"-c", "--f64", "-O1"}, OUT_OBJ},
    {{"--emit=llvm", "-O2"}, OUT_TEXT},
    {{"--dump-passes", "-c", "-O0"}, OUT_OBJ},
};
#define N_COMMANDS (sizeof commands / sizeof *commands)

static char scratch[4096], input_path[4200], text_path[4200], obj_path[4200];
static int show;

static void remove_scratch(void) {
    unlink(input_path);
    unlink(text_path);
    unlink(obj_path);
    rmdir(scratch);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/fuzz_nnc-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(scratch)) {
        perror("fuzz_nnc: mkdtemp");
        exit(1);
    }
    snprintf(input_path, sizeof input_path, "%s/input.nn", scratch);
    snprintf(text_path, sizeof text_path, "%s/out.txt", scratch);
    snprintf(obj_path, sizeof obj_path, "%s/out.o", scratch);
    atexit(remove_scratch);
    const char *s = getenv("NNC_FUZZ_SHOW");
    show = s && *s && strcmp(s, "0") != 0;
    return 0;
}

/* NAME from a first line "#model NAME", into name (of size n); false without one. */
static bool model_line(const uint8_t *data, size_t size, char *name, size_t n) {
    static const char tag[] = "#model ";
    size_t t = sizeof tag - 1, len = 0;
    if (size <= t || memcmp(data, tag, t) != 0) return false;
    while (t + len < size && len + 1 < n && (isalnum(data[t + len]) || data[t + len] == '_')) len++;
    memcpy(name, data + t, len);
    name[len] = '\0';
    return len > 0;
}

static void write_input(const uint8_t *data, size_t size) {
    FILE *f = fopen(input_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
        perror(input_path);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const struct Command *c = &commands[data[0] % N_COMMANDS];
    write_input(data + 1, size - 1);

    char *argv[16];
    int argc = 0;
    argv[argc++] = "nnc";
    for (int i = 0; i < 4 && c->args[i]; i++) argv[argc++] = (char *)c->args[i];
    if (c->out != NO_OUT) {
        argv[argc++] = "-o";
        argv[argc++] = c->out == OUT_OBJ ? obj_path : text_path;
    }
    char model[33];
    if (model_line(data + 1, size - 1, model, sizeof model)) {
        argv[argc++] = "--model";
        argv[argc++] = model;
    }
    argv[argc++] = input_path;
    argv[argc] = NULL;
    if (show) {
        for (int i = 0; i < argc; i++) fprintf(stderr, "%s%s", i ? " " : "fuzz_nnc: ", argv[i]);
        fputc('\n', stderr);
    }

    nnc_main(argc, argv);
    /* --emit -o points stdout at out.txt; back to nowhere, so that what the next command
     * prints (explain, --dump-passes) does not pile up in a file that may be unlinked. */
    fflush(stdout);
    if (!show && !freopen("/dev/null", "w", stdout)) abort();
    return 0;
}
