/* stages.h: the compiler's pipeline, one entry point per stage (one file each).
 *
 *   parse     ast.c/lexer.l/parser.y  .nn text      -> AST             (ast.h)
 *   sema      sema.c                  AST + imports -> Program          names, structure
 *   lower     lower.c                 Program       -> IR (forward)     fn inlining, shapes
 *   train     sema.c                  train block   -> Graph.train      settings, columns
 *   autodiff  autodiff.c              IR forward    -> IR + backward    chain rule
 *   simplify  simplify.c              IR            -> IR               CSE, x*1, x+0, dead code
 *   print     print.c                 IR            -> text             --emit=ir / grad
 *   backend   plan.c/codegen.c/link.c IR            -> object -> exe    (backend.h)
 *
 * Each stage reports problems through diag_* (common.h) and returns false / NULL when it
 * found errors, so main.c stops before the next stage. */
#ifndef NNC_STAGES_H
#define NNC_STAGES_H

#include "ast.h"
#include "ir.h"

typedef struct Program {
    const char *path; /* the main .nn file */
    NodeList fns;     /* every fn: imported ones first, then the file's own */
    Node *model;      /* the model being compiled */
    Node *train;      /* its train block, or NULL */
} Program;

/* Loads the imports of `file` (stdlib names from stdlib_dir, "x.nn" relative to the file),
 * checks the program's structure and picks the model (model_name, or the only one). */
bool sema_program(Node *file, const char *stdlib_dir, const char *model_name, Program *out);

/* Inlines every call and checks every shape; the forward IR of the model. */
Graph *lower_model(Program *prog);

/* Reads the train block into g->train (defaults where it is silent). */
bool sema_train(Program *prog, Graph *g);

/* Appends the backward pass: g->param_grads[i] = d cost/d params[i]. Warns about params
 * that get no gradient. */
void autodiff(Graph *g);

/* CSE, algebraic identities, constant folding, dead code. Keeps loss/output/param_grads. */
void simplify(Graph *g);

typedef enum PrintMode { PRINT_FORWARD, PRINT_GRAD } PrintMode;
void print_graph(FILE *out, Graph *g, PrintMode mode);

#endif
