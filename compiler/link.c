/* link.c: the training executable from the model's object file, libnnrt and OpenBLAS.
 * The C compiler runs through posix_spawn with an argument vector: no shell, so paths with
 * spaces or quotes need no escaping. */
#include "backend.h"

#include "config.h"
#include "paths.h"

#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef VEC(const char *) ArgList;

/* Configured flag strings ("-L/usr/lib/x/openblas-pthread/ -lopenblas") are words
 * separated by spaces; CMake writes no flag that contains one. */
static void push_words(ArgList *args, const char *flags) {
    const char *p = flags;
    while (*p) {
        while (*p == ' ') p++;
        const char *end = p;
        while (*end && *end != ' ') end++;
        if (end > p) vec_push(args, xstrndup(p, (size_t)(end - p)));
        p = end;
    }
}

/* NNC_CC overrides; else the compiler nnc was built with, when it is still there. */
static const char *c_compiler(void) {
    const char *cc = getenv("NNC_CC");
    if (cc && *cc) return cc;
    if (access(NNC_C_COMPILER, X_OK) == 0) return NNC_C_COMPILER;
    return "cc";
}

/* The linker writes a staging file beside the executable (OutFile, common.h), which
 * replaces it only once linked: a failed link leaves nothing behind. */
static int run_linker(const ArgList *args, const char *exe_path) {
    pid_t pid;
    int err = posix_spawnp(&pid, args->v[0], NULL, NULL, (char *const *)args->v, environ);
    if (err) {
        diag_fatal_noloc("cannot run the C compiler '%s' to link %s: %s", args->v[0], exe_path,
                         strerror(err));
        diag_hint("set NNC_CC to a C compiler that can link C programs");
        return 1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno == EINTR) continue;
        diag_fatal_noloc("waiting for '%s': %s", args->v[0], strerror(errno));
        return 1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    if (WIFEXITED(status))
        diag_fatal_noloc("linking %s failed: '%s' exited with status %d (its messages are above)",
                         exe_path, args->v[0], WEXITSTATUS(status));
    else
        diag_fatal_noloc("linking %s failed: '%s' was killed by signal %d", exe_path, args->v[0],
                         WTERMSIG(status));
    return 1;
}

static mode_t executable_mode(void) {
    mode_t mask = umask(0);
    umask(mask);
    return 0777 & ~mask;
}

/* How the executable is linked: plainly, fully static, or with MPI. */
typedef enum LinkKind { LINK_PLAIN, LINK_STATIC, LINK_MPI } LinkKind;

static int link_executable(const char *obj_path, const char *exe_path, LinkKind kind) {
    bool fully_static = kind == LINK_STATIC;
    if (kind == LINK_MPI && !NNC_MPI_LIBS[0]) {
        diag_fatal_noloc("--mpi: this nnc was built without MPI, so it has no MPI runtime to "
                         "link %s with",
                         exe_path);
        diag_hint("install Open MPI (Debian: libopenmpi-dev openmpi-bin) and build nnc again: "
                  "CMake finds it");
        return 1;
    }
    const char *runtime = kind == LINK_MPI ? nnc_runtime_mpi_lib() : nnc_runtime_lib();
    if (!runtime) return 1;
    if (fully_static && NNC_LINK_EXTRA[0]) {
        diag_fatal_noloc("--static does not work with this nnc, which was built with sanitizers "
                         "(%s)",
                         NNC_LINK_EXTRA);
        return 1;
    }
    ArgList args = {0};
    vec_push(&args, c_compiler());
    vec_push(&args, obj_path);
    vec_push(&args, runtime);
    push_words(&args, NNC_RUNTIME_LIBS);
    if (kind == LINK_MPI) push_words(&args, NNC_MPI_LIBS);
    push_words(&args, NNC_BLAS_LIBS);
#if defined(__x86_64__)
    vec_push(&args, "-lmvec"); /* the vector exp/log/sin/cos/pow the loops call */
#endif
    vec_push(&args, "-lm");
    if (fully_static) {
        vec_push(&args, "-lpthread"); /* OpenBLAS's threads */
        vec_push(&args, "-static");
    }
    push_words(&args, NNC_LINK_EXTRA);
    OutFile exe;
    if (!outfile_begin(&exe, exe_path, false)) return 1;
    vec_push(&args, "-o");
    vec_push(&args, exe.write_to);
    vec_push(&args, NULL);
    if (run_linker(&args, exe_path) != 0) {
        outfile_discard(&exe);
        return 1;
    }
    /* The linker made it executable, unless it wrote our file in place: then we do. */
    chmod(exe.write_to, executable_mode());
    return outfile_commit(&exe) ? 0 : 1;
}

int backend_link(const char *obj_path, const char *exe_path) {
    return link_executable(obj_path, exe_path, LINK_PLAIN);
}

int backend_link_static(const char *obj_path, const char *exe_path) {
    return link_executable(obj_path, exe_path, LINK_STATIC);
}

int backend_link_mpi(const char *obj_path, const char *exe_path) {
    return link_executable(obj_path, exe_path, LINK_MPI);
}
