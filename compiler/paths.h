/* paths.h: where nnc finds what it ships with, relative to its own executable.
 *
 * Installed:   <exe dir>/NNC_REL_LIBDIR/libnnrt.a   <exe dir>/NNC_REL_DATADIR/stdlib/
 * Build tree:  <exe dir>/runtime/libnnrt.a         <exe dir>/stdlib/      (nnc is build/nnc)
 * libnnrt_mpi.a, when built, sits beside libnnrt.a.
 *
 * The environment variable NNC_HOME, when set, replaces the executable's folder: it names
 * an install prefix (the folder holding bin/, lib/ and share/) or a build folder (the one
 * holding nnc, runtime/ and stdlib/). Both layouts are tried, installed first. */
#ifndef NNC_PATHS_H
#define NNC_PATHS_H

/* The path of libnnrt.a, or NULL after an error saying where it was looked for. */
const char *nnc_runtime_lib(void);

/* The same for libnnrt_mpi.a (nnc --mpi). */
const char *nnc_runtime_mpi_lib(void);

/* The folder holding the stdlib's .nn files, or NULL after an error. */
const char *nnc_stdlib_dir(void);

/* Forgets what was found (it lives in the arena): for a driver that frees the arena and
 * runs again in the same process. */
void nnc_paths_forget(void);

#endif
