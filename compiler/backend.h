/* backend.h: what the driver calls once the graph holds forward and backward.
 *
 *   BackendOptions opt = {.opt_level = 2, .obj_path = "model.o"};
 *   if (backend_compile(g, &opt) || backend_link("model.o", "model")) exit(1);
 *
 * backend_compile plans memory (plan.c), lowers the graph to LLVM IR (codegen.c) with the
 * four entry points and the `nnrt_model_desc` descriptor of runtime/nnrt.h, verifies it,
 * optimises it for the host CPU and writes an object file (or prints the optimised IR).
 * backend_link turns that object into a training executable with libnnrt and OpenBLAS.
 * Both print "nnc: error: ..." (or "nnc: internal error: ...") and return 1 on failure. */
#ifndef NNC_BACKEND_H
#define NNC_BACKEND_H

#include "ir.h"

typedef struct BackendOptions {
    int opt_level;        /* 0..3: LLVM's default<On> pipeline and code generation level */
    bool f64;             /* elements are double and products call cblas_dgemm */
    const char *obj_path; /* the object file to write (unused when llvm_ir_out is set) */
    FILE *llvm_ir_out;    /* non-NULL: print the optimised module here, write no object */
    FILE *plan_out;       /* non-NULL: also print the schedule and memory plan here */
} BackendOptions;

/* g: after autodiff (g->param_grads may be NULL: then grad and sgd_step only run forward).
 * The object is written whole or not at all: a failure (a full disk) leaves no file. */
int backend_compile(Graph *g, const BackendOptions *opt);

/* Runs the C compiler this nnc was built with (NNC_CC in the environment overrides it):
 *   cc obj libnnrt.a <OpenBLAS flags> -lmvec -lm <NNC_LINK_EXTRA> -o exe
 * libnnrt.a is found by nnc_runtime_lib() (paths.h). The executable appears at exe_path
 * only when the link succeeded (it is linked beside it and renamed, common.h's OutFile);
 * a failed link leaves no file. */
int backend_link(const char *obj_path, const char *exe_path);

/* The same, linked statically (-static, libopenblas.a): an executable that runs on another
 * Linux machine of the same architecture with nothing installed (about 30 MB, because
 * Debian's OpenBLAS carries kernels for every CPU). Not with a sanitizer build. */
int backend_link_static(const char *obj_path, const char *exe_path);

/* The same with libnnrt_mpi and MPI's libraries (NNC_MPI_LIBS), for `mpirun -np K exe
 * train` (docs/mpi.md). An error when this nnc was built without MPI. */
int backend_link_mpi(const char *obj_path, const char *exe_path);

#endif
