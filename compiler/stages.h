/* stages.h: the compiler's pipeline, one entry point per stage (one file each).
 *
 *   parse     ast.c/lexer.l/parser.y  .nn text      -> AST             (ast.h)
 *   sema      sema.c                  AST + imports -> Program          names, structure
 *   lower     lower.c                 Program       -> IR (forward)     fn inlining, shapes
 *             rules.c                 a fn's own backward rules, rendered on the IR (rules.h)
 *   train     sema.c                  train block   -> Graph.train      settings, columns
 *   autodiff  autodiff.c              IR forward    -> IR + backward    chain rule
 *   simplify  simplify.c              IR            -> IR               CSE, x*1, x+0, dead code
 *   print     print.c                 IR            -> text             --emit=ir / grad
 *   draw      dot.c                   IR            -> Graphviz         --emit=dot / svg
 *   explain   explain.c               IR            -> math             nnc explain
 *   backend   plan.c/codegen.c/link.c IR            -> object -> exe    (backend.h)
 *
 * Each stage reports problems through diag_* (common.h) and returns false / NULL when it
 * found errors, so main.c stops before the next stage. The stages after lowering read the
 * IR only: what they need of a fn's own backward rules is on it (rules.h). */
#ifndef NNC_STAGES_H
#define NNC_STAGES_H

#include "ast.h"
#include "ir.h"

typedef struct Program {
    const char *path;       /* the main .nn file */
    Node *file;             /* its syntax tree */
    NodeList fns;           /* every fn: imported ones first, then the file's own */
    HashMap fn_by_name;     /* name -> fn */
    NodeList models;        /* the file's models, in order */
    HashMap model_by_name;  /* name -> model */
    HashMap train_by_model; /* model name -> its train block */
    HashMap param_index;    /* fn -> its arguments by name (program_fn_param) */
    Node *model;            /* the model being compiled */
    Node *train;            /* its train block, or NULL */
} Program;

/* Loads the imports of `file` (stdlib names from stdlib_dir, "x.nn" relative to the file)
 * and checks the program's structure. NULL after errors. The Program lives in the arena:
 * what lowering keeps for autodiff to evaluate fns' own backward rules with (LowerCall)
 * outlives the caller's frame. */
Program *sema_program(Node *file, const char *stdlib_dir);

/* Picks the model to compile (model_name, or the only one), its train block, and checks
 * its structure. False after errors. May be called again for another model. */
bool sema_choose_model(Program *prog, const char *model_name);

/* The index of fn's argument called name, or -1 (in time independent of the count). */
int program_fn_param(Program *prog, Node *fn, const char *name);

/* Inlines every call and checks every shape; the forward IR of the model. */
Graph *lower_model(Program *prog);

/* The one-step form of the model `full` (lowered, its train block read) that `sample` runs
 * (docs/codegen.md, "The one-step form"): the model lowered again for one character, each
 * outermost scan over the input reading its carry from an input (Graph.carries). NULL when
 * it has none, and *why says why, for the runtime's message ("it has no scan over its
 * input, ..."); nothing is reported. */
Graph *lower_step_form(Program *prog, const Graph *full, const char **why);

/* lower.c, for rules.c: what a call of a fn with backward rules leaves to evaluate its rules
 * with later, in the arena (the fn's bindings at the call, the model binding it is in, the
 * names given out). rules.h's CustomRule keeps it out of the IR readers' sight. */
typedef struct LowerCall LowerCall;

/* Evaluates e, a rule of the fn called at `at`, with g bound to upstream: instructions go at
 * the end of g. False after an error (reported, with a note of the call); otherwise *out is
 * the value, or NULL when e is the number 0. */
bool lower_rule_body(Graph *g, const LowerCall *at, Node *e, Value *upstream, Value **out);

/* Reads the train block into g->train (defaults where it is silent). */
bool sema_train(Program *prog, Graph *g);

/* Appends the backward pass: g->param_grads[i] = d cost/d params[i]. Warns about params
 * that get no gradient. */
void autodiff(Graph *g);

/* CSE, algebraic identities, constant folding, dead code. Keeps loss/output/param_grads. */
void simplify(Graph *g);

/* What simplify did, by value id (ids below n_ids): the value that replaced one (NULL:
 * kept, or dropped as dead code if no longer in g->insts), and the rule that replaced or
 * rewrote it ("x * 1 = x", "constant folding", NULL). For --emit=grad-diff. */
typedef struct SimplifyTrace {
    Value **by;
    const char **why;
    int n_ids;
} SimplifyTrace;
void simplify_traced(Graph *g, SimplifyTrace *trace);

typedef enum PrintMode { PRINT_FORWARD, PRINT_GRAD } PrintMode;
/* all_steps: every step of every scan; otherwise the steps between a scan's second and
 * last are summarised in one line each run. */
void print_graph(FILE *out, Graph *g, PrintMode mode, bool all_steps);
/* --emit=grad-diff: simplifies g (forward and backward, as autodiff left them) and prints
 * the IR before, each line simplify removed or rewrote marked with the rule, and what it
 * became. */
void print_simplify_diff(FILE *out, Graph *g, bool all_steps);

/* dot.c: --emit=dot, the forward and the derived backward graph in one Graphviz drawing,
 * each fn call a cluster; collapse (--collapse's "NAME,NAME" or "all", or NULL): the calls
 * of those fns, or in those bindings, drawn as one box each. */
void print_dot(FILE *out, Graph *g, const char *collapse);
/* 0, or 1 after reporting a name in collapse that no call of g has. */
int dot_check_collapse(Graph *g, const char *collapse);
/* dot.c: --emit=svg, that drawing rendered by Graphviz's `dot` into svg_path ("-": stdout).
 * Returns 0, or 1 after an error (one that says how to install Graphviz when it is missing). */
int write_svg(Graph *g, const char *svg_path, const char *collapse);

/* explain.c: `nnc explain`, the chain rule from the loss to one param (wrt, or every param
 * when NULL) written as math, factor by factor, with shapes. Returns 0, or 1 after an error
 * (wrt names no param). */
typedef enum ExplainFormat { EXPLAIN_TEXT, EXPLAIN_MARKDOWN } ExplainFormat;
/* What each line of a section says: the chain of gradients as autodiff derived them, each
 * gradient multiplied out (every gradient and unnamed value substituted back) and
 * simplified (algebra.h), or the numbers at one sample. */
typedef enum ExplainForm { EXPLAIN_CHAIN, EXPLAIN_MULTIPLIED, EXPLAIN_VALUES } ExplainForm;
/* EXPLAIN_VALUES: the numbers of a value, looked up by the name explain_probes gave it
 * (NULL when there are none), and what they are of ("sample 3 of xor.csv, weights
 * w.safetensors"). */
typedef const char *ExplainLookup(void *ctx, const char *probe);
typedef struct ExplainRequest {
    const char *wrt; /* one param, or NULL for each */
    ExplainFormat format;
    ExplainForm form;
    ExplainLookup *lookup;
    void *lookup_ctx;
    const char *at; /* EXPLAIN_VALUES: where the numbers come from */
} ExplainRequest;
int explain(FILE *out, Graph *g, const ExplainRequest *rq);
/* For EXPLAIN_VALUES: makes every value a line of explain's sections shows (each gradient
 * and the forward value it is of) a binding of g named "#gID" or "#vID", in place of the
 * model's own, so that an executable compiled from g with probe_bindings set computes and
 * lists them. Returns 0, or 1 after an error (wrt names no param). */
int explain_probes(Graph *g, const char *wrt);

#endif
