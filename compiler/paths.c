/* paths.c: finding libnnrt.a and the stdlib from /proc/self/exe or NNC_HOME (paths.h). */
#include "paths.h"

#include "common.h"
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What was found, kept for the run. The strings live in the arena (common.h), so
 * nnc_paths_forget() drops them when the driver frees the arena between runs. */
static const char *exe_folder, *runtime_lib, *runtime_mpi_lib, *stdlib_folder;

void nnc_paths_forget(void) {
    exe_folder = runtime_lib = runtime_mpi_lib = stdlib_folder = NULL;
}

/* The folder of the running executable; symbolic links are already resolved by the kernel,
 * so a symlinked nnc still finds the files next to the real one. */
static const char *exe_dir(void) {
    if (exe_folder) return exe_folder;
    char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) return NULL;
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    if (!slash) return NULL;
    exe_folder = slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
    return exe_folder;
}

static bool exists(const char *path, bool want_dir) {
    struct stat st;
    if (stat(path, &st) != 0) return false;
    return want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

/* The shortest spelling of a path that exists ("/usr/lib/nnc", not "/usr/bin/../lib/nnc"). */
static const char *tidy(const char *path) {
    char *real = realpath(path, NULL);
    if (!real) return path;
    const char *copy = xstrdup(real);
    free(real);
    return copy;
}

/* Looks for installed_rel (relative to a bin folder) and build_rel (relative to a build
 * folder) from NNC_HOME or the executable's folder. */
static const char *locate(const char *what, const char *installed_rel, const char *build_rel,
                          bool want_dir) {
    const char *home = getenv("NNC_HOME"), *tries[2];
    if (home && *home) {
        tries[0] = xprintf("%s/bin/%s", home, installed_rel);
        tries[1] = xprintf("%s/%s", home, build_rel);
    } else {
        const char *dir = exe_dir();
        if (!dir) {
            diag_fatal_noloc("cannot find %s: /proc/self/exe does not name the nnc executable",
                             what);
            diag_hint("set NNC_HOME to the folder nnc was installed to (its prefix)");
            return NULL;
        }
        tries[0] = xprintf("%s/%s", dir, installed_rel);
        tries[1] = xprintf("%s/%s", dir, build_rel);
    }
    for (int i = 0; i < 2; i++)
        if (exists(tries[i], want_dir)) return tidy(tries[i]);
    diag_fatal_noloc("cannot find %s: neither %s nor %s exists", what, tries[0], tries[1]);
    diag_hint("set NNC_HOME to the nnc install prefix or build folder");
    return NULL;
}

const char *nnc_runtime_lib(void) {
    if (!runtime_lib)
        runtime_lib =
            locate("the runtime library", NNC_REL_LIBDIR "/libnnrt.a", "runtime/libnnrt.a", false);
    return runtime_lib;
}

const char *nnc_runtime_mpi_lib(void) {
    if (!runtime_mpi_lib)
        runtime_mpi_lib = locate("the MPI runtime library", NNC_REL_LIBDIR "/libnnrt_mpi.a",
                                 "runtime/libnnrt_mpi.a", false);
    return runtime_mpi_lib;
}

const char *nnc_stdlib_dir(void) {
    if (!stdlib_folder)
        stdlib_folder = locate("the standard library", NNC_REL_DATADIR "/stdlib", "stdlib", true);
    return stdlib_folder;
}
