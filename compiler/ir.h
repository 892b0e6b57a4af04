/* ir.h: the tensor IR. SSA values with per-sample shapes, built by lower.c, extended with
 * the backward pass by autodiff.c, cleaned by simplify.c, planned by plan.c and compiled
 * by codegen.c. The ops are listed once, in ops.def. */
#ifndef NNC_IR_H
#define NNC_IR_H

#include "common.h"

typedef enum Op {
#define OP(name, ...) OP_##name,
#include "ops.def"
#undef OP
    OP_COUNT
} Op;

typedef enum OpClass {
    OPC_SRC,
    OPC_EW,
    OPC_REDUCE,
    OPC_ROW,
    OPC_MATMUL,
    OPC_LAYOUT,
    OPC_WINDOW
} OpClass;

/* The flags column of ops.def. */
enum {
    OPF_FLAT = 1,        /* derivative 0 everywhere: no gradient flows through it */
    OPF_RANDOM = 2,      /* drawn per sample (dropout's masks): the result always varies */
    OPF_SHAPE_GIVEN = 4, /* the builder gives the result's shape: "broadcast %x to [2, 3]" */
    OPF_MODE = 8,        /* its value depends on whether the pass is training (training(a, b)) */
    OPF_INDICES = 16,    /* its last operand holds indices (token ids): no gradient flows to it */
};

#define OP_MAX_OPTIONS 4 /* reshape's four dims */

/* A number an op takes when compiling (leaky_relu's alpha), kept in Value.opt[]. */
typedef struct OpOption {
    const char *name;
    double value; /* when not given */
    bool checked; /* only low <= x < below is allowed */
    double low, below;
} OpOption;

/* One element's value from its operands x[0..2] and the op's options (ops.def, FOLD). */
typedef double OpScalar(const double x[3], const double *opt);

typedef struct OpInfo {
    const char *name;
    int arity;
    OpClass cls;
    const char *call; /* the built-in a .nn file calls by this name, or NULL */
    char symbol;      /* or the operator it writes: '+', '-' (sub, or neg with one operand) */
    int n_options;
    OpOption options[OP_MAX_OPTIONS];
    OpScalar *scalar;  /* NULL when it cannot be computed from numbers alone */
    unsigned flags;    /* OPF_* */
    const char *deriv; /* local derivative as printed in --emit=grad */
    const char *doc;
} OpInfo;

extern const OpInfo op_info[OP_COUNT];

/* The local derivative for operand i, as ops.def writes it ("d(a*b)/da = b, d(a*b)/db = a"
 * gives "d(a*b)/db = a" for operand 1). */
const char *ir_rule_text(Op op, int operand);
/* The op a .nn file calls by name ("softmax_cross_entropy"), or OP_COUNT. */
Op op_by_call(const char *name);
/* Built-ins that are no row of ops.def: zeros(n, ...) and ones(n, ...), a constant
 * broadcast to the shape given. True, and the constant, for their names. */
bool constant_builtin(const char *name, double *value);
/* The op an operator stands for ('*' with 2 operands, '-' with 1), or OP_COUNT. */
Op op_by_symbol(char symbol, int arity);

#define MAX_RANK 4

/* A per-sample shape. rank 0 is a scalar. */
typedef struct Shape {
    int rank;
    int64_t dim[MAX_RANK];
} Shape;

/* The element count. Every shape the IR holds has passed shape_fits, so this cannot
 * overflow (it aborts with an internal error if it would). */
int64_t shape_numel(Shape s);
/* True when the shape has at most NNC_MAX_TENSOR_ELEMS elements (checked arithmetic). */
bool shape_fits(Shape s);
bool shape_eq(Shape a, Shape b);
/* True when a is a suffix of b (a scalar is a suffix of everything). */
bool shape_is_suffix(Shape a, Shape b);
/* The shape a and b broadcast to (NumPy's rule: aligned on the right, each axis equal or 1
 * in one of them). False when they do not; then *axis_a and *axis_b are the first pair of
 * axes, from the right, that differ with neither 1. */
bool shape_broadcast(Shape a, Shape b, Shape *out, int *axis_a, int *axis_b);
/* s without its leading 1s: [1, 6] and [6] index their elements alike. */
Shape shape_without_leading_ones(Shape s);
/* True when a broadcasts to b itself. */
bool shape_broadcasts_to(Shape a, Shape b);
/* "[4]", "[8, 8]", "[]" for a scalar. Returns arena memory. */
char *shape_str(Shape s);
/* "[2, 3] (0 to 1, or -2 to -1 from the end)": a shape and the axes it has. */
const char *shape_axes_str(Shape s);
Shape shape_scalar(void);
Shape shape_make(int rank, const int64_t *dims);

/* A layout op's index map (ops.def, "layout"): which elements of the operand a slice
 * takes (or a scatter puts back), and the axis order of a permute. In the arena, shared by
 * a forward op and the backward ops made from it; zeroed where unused. */
typedef struct Layout {
    Shape whole;             /* slice, scatter: the shape of the value sliced */
    int64_t start[MAX_RANK]; /* slice, scatter: per axis of whole, the first index taken */
    int64_t step[MAX_RANK];  /* ... the distance between the indices taken (>= 1) */
    int64_t count[MAX_RANK]; /* ... how many are taken (>= 1) */
    bool drop[MAX_RANK];     /* ... an integer index: the axis is not in the slice */
    int perm[MAX_RANK];      /* permute: axis k of the result is axis perm[k] of the operand */
} Layout;

/* The shape of a slice: whole's axes with their counts, the dropped ones left out. */
Shape layout_slice_shape(const Layout *l);
/* The same index map (both NULL, or every field equal): what CSE asks. */
bool layout_eq(const Layout *a, const Layout *b);

typedef struct Value Value;
struct Value {
    int id; /* unique and stable: instruction number in the printed IR (#id) */
    Op op;
    int nargs;
    Value *args[3];
    Shape shape;  /* per sample */
    bool varying; /* has the implicit batch axis */

    double num;                 /* OP_const: the value */
    const char *spelling;       /* OP_const: as the source wrote it ("2*pi", "1e-3"), or NULL */
    double opt[OP_MAX_OPTIONS]; /* the options of ops.def's row: alpha, rate, ... */
    int salt;       /* OP_dropout: whose masks: the id of the forward dropout (codegen.md) */
    bool ta, tb;    /* OP_matmul: transpose the first / second operand */
    bool sum_batch; /* OP_matmul: sum the per-sample products over the batch */

    /* Layout ops (ops.def, "layout"): slice, scatter and permute read their index map
     * here (transpose and concat read their options). */
    const Layout *layout;

    const char *name; /* from the source ("h", "h.W", "loss"), or NULL: printed as %tN */
    SrcLoc loc;       /* source position it came from */
    const char *what; /* source text of the expression it came from, e.g. "dense(x, 4)" */

    /* Backward instructions record why they exist (printed by --emit=grad). */
    bool backward;
    Value *grad_of;   /* the value whose gradient this is (when it is the whole gradient) */
    Value *from;      /* the forward instruction whose derivative rule emitted this */
    const char *rule; /* what the rule computed, e.g. "d tanh(u)/du = 1 - tanh(u)^2" */
    int fanout;       /* >1: this is the sum of that many gradient contributions */

    struct CustomRule *custom; /* the result of a fn with its own backward rules (rules.h) */
    /* Made in a step of a scan (lower.c): which scan, 1 + its place among the model's
     * outermost scans, and the step, of that outermost scan; 0 elsewhere. The printers
     * summarise the steps that look alike. */
    int scan, scan_step;
    const struct CallSite *site; /* the innermost fn call it was inlined in, or NULL */
    bool surrogate;              /* backward: made by a surrogate rule (grad u ~ ...) */

    int uses; /* number of operand slots that refer to it; kept by ir_count_uses */
    int aux;  /* free for a pass's own bookkeeping (plan.c: buffer index) */
};

typedef VEC(Value *) ValueList;

/* One inlined call of a fn (lower.c), which the values made in it point to (Value.site):
 * --emit=dot draws each as a cluster, nested as the calls were. A step of a scan is a call
 * of its fn. */
typedef struct CallSite {
    const struct CallSite *parent; /* the call it was made in, or NULL at model level */
    int id;                        /* 1, 2, ... in the order the calls were inlined */
    const char *fn;                /* "dense" */
    const char *binding;           /* the model binding it is in ("h"), or NULL */
    const char *text;              /* the call as written, "dense(x, 4)" */
    SrcLoc loc;                    /* where it is written */
    int step;                      /* a step of a scan: 1 + its index t; 0: a plain call */
} CallSite;

/* Settings from the train block, checked by sema and copied into the binary. */
typedef struct ColumnMap {
    const char *tensor; /* input or target name */
    int first, last;    /* inclusive column range (0-based) */
} ColumnMap;

typedef struct Setting {
    const char *name, *value; /* "weight_decay", "0.01": read by the runtime as an option */
} Setting;

typedef struct TrainSpec {
    const char *data_kind;  /* "csv", "idx", "text" or NULL (no data: a function to minimise) */
    const char *data_path;  /* resolved against the .nn file's folder */
    const char *data_path2; /* idx: the labels file */
    VEC(ColumnMap) columns;
    bool header;           /* csv: first row is a header (also auto-detected at run time) */
    const char *optimizer; /* "sgd" */
    double lr, momentum;
    int64_t batch, epochs, steps, seed;
    bool shuffle;
    double validation;     /* fraction of the data held out, 0 for none */
    bool classification;   /* report accuracy */
    bool output_logit;     /* the one-value output is a logit (bce_logits): accuracy at 0 */
    VEC(Setting) settings; /* the rest (runtime/settings.def), as option values */
    int64_t vocab;         /* text: the model's vocabulary size (ids 0..vocab-1); else 0 */
} TrainSpec;

/* How a parameter starts (Graph.param_inits, parallel to Graph.params). */
typedef enum InitKind {
    INIT_ZEROS,
    INIT_ONES,
    INIT_CONST,   /* a */
    INIT_GLOROT,  /* uniform(-r, r), r = sqrt(6/(fan_in+fan_out)) */
    INIT_HE,      /* normal(0, sqrt(2/fan_in)) */
    INIT_NORMAL,  /* normal(a, b) : mean a, std b */
    INIT_UNIFORM, /* uniform(a, b) */
} InitKind;

typedef struct ParamInit {
    InitKind kind;
    double a, b;
} ParamInit;

/* A model-level binding to a tensor (`code = dense(h, 8)`): predict can print it
 * (`./model predict --output code`). */
typedef struct NamedValue {
    const char *name;
    Value *v;
} NamedValue;

/* A scan's recurrent state in the one-step form of a model (Graph.step, docs/codegen.md
 * "The one-step form"): the step reads the carry from `in`, an input the runtime fills, and
 * leaves the carry after its one step in `out`; `init` is the scan's first carry. */
typedef struct Carry {
    const char *name; /* "h.carry": after the model binding the scan is in */
    Value *in, *out, *init;
} Carry;

/* One model: its forward instructions, then (after autodiff) its backward ones. */
typedef struct Graph {
    const char *name;
    const char *source_path;
    ValueList insts;            /* every value, leaves included, in a valid order */
    int n_forward;              /* insts.v[0 .. n_forward) are the forward pass */
    ValueList inputs;           /* OP_input, in declaration order */
    ValueList targets;          /* OP_target, in declaration order */
    ValueList params;           /* OP_param, in creation order; names are unique */
    VEC(ParamInit) param_inits; /* parallel to params */
    /* Non-trainable state (OP_state leaves, docs/language.md "State"): each with how it
     * starts and the value a training step writes into it (NULL: never written). */
    ValueList states;           /* in creation order; names unique with the params' */
    VEC(ParamInit) state_inits; /* parallel to states */
    VEC(Value *) state_updates; /* parallel to states */
    Value *loss;                /* per-sample scalar */
    Value *output;              /* what predict prints (may equal loss for models without inputs) */
    /* The model's bindings to tensors, in declaration order (lower.c); simplify keeps each
     * resolved and drops those whose value is dead (no root needs it). */
    VEC(NamedValue) bindings;
    Value **param_grads;   /* after autodiff: parallel to params; NULL where no gradient flows */
    bool *param_surrogate; /* after autodiff: parallel to params; a surrogate rule shaped it */
    VEC(const char *) rule_notes; /* after autodiff: where fns' own backward rules were used */
    TrainSpec train;
    /* The one-step form `sample` runs (text models with a scan): the model lowered again for
     * windows of one character, each outermost scan over the input reading its carry from
     * an input and writing it back (carries). NULL when there is none: step_missing says
     * why. In the one-step graph itself, carries lists its recurrent state, and each
     * carry's in is also among its inputs, its out and init among its bindings. */
    struct Graph *step;
    const char *step_missing;
    VEC(Carry) carries;
    int next_id;
    /* nnc explain --at-sample (explain_probes): the bindings are explain's values, which
     * may read targets and be gradients; predict computes them all (plan.c). */
    bool probe_bindings;
    int64_t exprs_lowered; /* lower.c: expressions evaluated, to bound inlining */
    bool too_large;        /* lower.c: that bound was crossed (reported once) */
} Graph;

Graph *graph_new(const char *name);

/* Appends a leaf or an instruction. Shapes and varying are the caller's responsibility
 * (lower.c checks user shapes with ir_infer_shape first); the instruction goes at the end. */
Value *ir_leaf(Graph *g, Op op, const char *name, Shape shape, bool varying);
Value *ir_const(Graph *g, double num);
Value *ir_inst(Graph *g, Op op, int nargs, Value **args, Shape shape, bool varying);

/* Shape inference for one instruction. Returns NULL and fills *shape and *varying when the
 * operands fit and the result has at most NNC_MAX_TENSOR_ELEMS elements, or an error
 * message (arena memory) saying what does not. For matmul the
 * ta/tb/sum_batch flags are taken from `proto` (may be NULL for all false). For sum_to
 * and broadcast the wanted shape is passed in *shape. */
const char *ir_infer_shape(Op op, int nargs, Value **args, const Value *proto, Shape *shape,
                           bool *varying);

/* Builds an instruction whose shape is inferred; aborts on a shape error (for compiler-made
 * instructions, where an error is a compiler bug). */
Value *ir_build(Graph *g, Op op, int nargs, Value **args);
Value *ir_build1(Graph *g, Op op, Value *a);
Value *ir_build2(Graph *g, Op op, Value *a, Value *b);
Value *ir_matmul(Graph *g, Value *a, Value *b, bool ta, bool tb, bool sum_batch);
Value *ir_sum_to(Graph *g, Value *a, Shape shape);
Value *ir_broadcast(Graph *g, Value *a, Shape shape);
/* A layout op with its index map (slice, scatter, permute; NULL for the others) and its
 * options (NULL for none). */
Value *ir_layout(Graph *g, Op op, int nargs, Value **args, const Layout *layout, const double *opt);

/* Axis a of a value of the given rank, counted from the end when negative (-1 is the
 * last), into *axis; false when a is not a whole number in -rank .. rank-1. */
bool ir_axis(double a, int rank, int *axis);
/* The axis order of a permute or transpose v: axis k of the result is axis perm[k] of the
 * operand. */
void ir_permutation(const Value *v, int perm[MAX_RANK]);
/* op(a) with its options (sum_axis: the axis and keepdim). */
Value *ir_build_options(Graph *g, Op op, Value *a, double opt0, double opt1);
/* A reduction along an axis (sum_axis ...): the axis of its operand, counted from 0. */
int ir_reduced_axis(const Value *v);

/* ---- images: convolution, pooling, reshapes (the WINDOW rows of ops.def) ---- */

/* Builds a WINDOW instruction with the options opt[] (OP_MAX_OPTIONS of them) and, for a
 * SHAPE_GIVEN row, the result's shape; aborts on a shape error (a compiler bug). */
Value *ir_window(Graph *g, Op op, int nargs, Value **args, const double *opt, Shape shape);
/* Fills the options a .nn call left to be worked out: a pooling stride of 0 is the kernel. */
void ir_window_defaults(Op op, double *opt);
/* The geometry of a WINDOW instruction for runtime/conv.h's kernels: the image it reads
 * ([c_in, h, w]) and writes ([c_out, h_out, w_out]), the window and how it moves. A
 * reshape reads c_in = numel elements and writes as many. */
typedef struct WindowGeometry {
    int64_t c_in, h, w, c_out, kh, kw, stride, pad, dil, h_out, w_out;
} WindowGeometry;
WindowGeometry ir_window_geometry(const Value *v);

/* matmul's per-sample matrix dimensions: op(A) is [M,K], op(B) is [K,N]. */
void ir_matmul_dims(const Value *mm, int64_t *M, int64_t *N, int64_t *K);

/* Recounts Value.uses over g->insts (plus the loss/output/param_grads roots). */
void ir_count_uses(Graph *g);

/* The model's dropout(...) call sites in g->insts (not the backward pass's dropouts of
 * gradients, which share their masks): what train --dropout sets the rate of. */
int ir_count_dropouts(const Graph *g);

/* Printing. Values print as $x (input/target), @h.W (param), &h.running_mean (state), %h
 * (named), %t12 (unnamed). */
const char *ir_value_ref(const Value *v); /* arena memory */
const char *ir_number_str(double x);      /* shortest round-trip form: "0.1", "2", "1e-5" */
/* A constant as printed everywhere (--emit=ir/grad/dot, explain): as the source wrote it
 * ("2*pi", "1e-3"), or, for a number autodiff or simplify made, its shortest round-trip
 * form. */
const char *ir_const_str(const Value *v);
/* True when a constant's spelling is an expression ("2*pi", "1 - 0.9") that an infix
 * printer must put in parentheses. */
bool ir_const_is_compound(const Value *v);
/* A layout op's index map as the printers show it: a slice's or scatter's subscript
 * "[1:5, 2, ::2]" in whole's axes, a permute's order "(2, 0, 1)"; "" for the others. */
const char *ir_layout_str(const Value *v);

#endif
