/* lower.c: a model's AST becomes forward IR.
 *
 * Lowering is an evaluator: it walks the model's statements, evaluates each expression to
 * either a compile-time number or an IR value, and inlines every fn call, binding the
 * fn's shape names (x[n] binds n) from the arguments it is given. Because a fn's shapes are
 * known only at its call site, shape checking happens here, with the error placed on the
 * expression at fault and a note for each call on the way there. */
#include "rules.h"
#include "stages.h"

#include <math.h>
#include <string.h>

/* What an expression evaluates to. */
typedef struct LVal {
    enum { LV_ERROR, LV_NUM, LV_TENSOR } kind;
    double num;
    Value *v;
    /* A number as the source wrote it ("0.1", "2*pi"), which its constant is printed as,
     * or NULL; literal: that text is the expression's own (not a name's value). */
    const char *text;
    bool literal;
} LVal;

static const LVal lv_error = {LV_ERROR, 0, NULL, NULL, false};
static LVal lv_num(double x) {
    return (LVal){LV_NUM, x, NULL, NULL, false};
}
static LVal lv_tensor(Value *v) {
    return (LVal){LV_TENSOR, 0, v, NULL, false};
}

/* A number folded at e from operands (2*pi, -0.5, sqrt(2)) keeps e's text when every
 * operand was written out; one computed from a name's value (2*k) is printed as a value. */
static LVal lv_folded(Node *e, const LVal *args, int nargs, double x) {
    for (int i = 0; i < nargs; i++)
        if (!args[i].literal) return lv_num(x);
    return (LVal){LV_NUM, x, NULL, ast_source_text(e), true};
}

typedef struct Binding {
    const char *name;
    LVal val;
    Node *decl;
} Binding;

/* The names bound in a model or in one inlined call; a backward rule's scope binds g and
 * sees the call's names through parent. */
typedef struct Scope {
    struct Scope *parent;
    VEC(Binding) names; /* in binding order */
    HashMap index;      /* name -> 1 + its place in names, once there are SCOPE_SCAN_MAX */
} Scope;

/* A scope this small is searched by a scan: most inlined calls bind a few names, and a
 * table for each would cost more than it saves. */
#define SCOPE_SCAN_MAX 8

/* What lowering one model keeps in tables: in the arena, since fns' backward rules are
 * evaluated with them during autodiff, after lower_model has returned. */
typedef struct Tables {
    HashMap names;   /* every IR name given out -> the next suffix to try for it */
    HashMap inlined; /* fn -> how many times its body has been inlined */
    HashMap warned;  /* nodes already warned about */
    HashMap rules;   /* fn with backward rules -> its rules, rendered (rules.c) */
    HashMap scans;   /* a scan's stacked result -> its ScanResult, for hs[t] */
    HashMap unknown; /* names and fns reported unknown ("f()" for a fn): said once each */
    int n_scans;     /* scans unrolled so far */
    int n_sites;     /* fn calls inlined so far (CallSite.id) */
} Tables;

/* What a scan made: its carries after each step, stacked into one value. */
typedef struct ScanResult {
    int64_t steps;
    Value **carries; /* carries[t]: the carry after step t, which hs[t] is */
} ScanResult;

/* A scan being unrolled (call_scan): its steps share the params its fn declares. */
typedef struct ScanSite {
    struct ScanSite *parent; /* the scan this one is in a step of, or NULL */
    int id;                  /* 1 + its place among the model's scans */
    int64_t step;            /* the step being unrolled */
    ValueList params;        /* the params step 0 declared, in the order it declared them */
    const CallSite *outside; /* the call the scan is in, where its shared params are drawn */
    int next;                /* in a later step: the next of them its declarations take */
} ScanSite;

typedef struct Lower {
    Program *prog;
    Graph *g;
    const char *prefix;        /* the model-level binding being evaluated: names params "h.W" */
    const char *binding;       /* the IR name of the binding being evaluated ("h", "h.z@3") */
    const char *step;          /* inside scan steps: "@3" ("@1@3" for a scan in a scan's step) */
    ScanSite *scan;            /* the innermost scan being unrolled, or NULL */
    Node *site;                /* the model-level expression the current IR comes from */
    NodeList calls;            /* fn calls being inlined, outermost first: notes for errors */
    const CallSite *call_site; /* the innermost of them, which the values made get */
    Tables *t;
    bool in_rule;   /* evaluating a fn's backward rule, during autodiff */
    bool step_form; /* lowering the one-step form: windows of one character (lower_step_form) */
} Lower;

/* A call of a fn with backward rules, kept to evaluate them with (stages.h). */
struct LowerCall {
    Program *prog;
    Tables *t;
    Scope *scope;       /* the fn's arguments and locals at the call */
    Node *call;         /* for the note under an error */
    const char *prefix; /* the model binding the call is in: names a rule's fns' locals */
};

/* ---- folding: ops on numbers stay numbers ---- */

static bool all_numbers(const LVal *args, int n) {
    for (int i = 0; i < n; i++)
        if (args[i].kind != LV_NUM) return false;
    return true;
}

/* `exp(1)` or `2*3` is a number: the op's scalar semantics in ops.def (NaN included: the
 * semantics are codegen's, so relu(NaN) is NaN here too), when every operand is one. */
static bool fold(Op op, const LVal *args, int nargs, const double *opt, double *out) {
    if (!op_info[op].scalar || !all_numbers(args, nargs)) return false;
    double x[3] = {0, 0, 0};
    for (int i = 0; i < nargs; i++) x[i] = args[i].num;
    *out = op_info[op].scalar(x, opt);
    return true;
}

/* ---- errors ---- */

static void lower_error(Lower *L, SrcLoc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The calls that led here, innermost first; a deep recursion shows only its top. */
static void note_calls(Lower *L) {
    int shown = 0;
    for (int i = L->calls.n - 1; i >= 0 && shown < 3; i--, shown++)
        diag_note(L->calls.v[i]->loc, "in the call %s", ast_source_brief(L->calls.v[i]));
    if (L->calls.n > shown)
        diag_note(L->calls.v[0]->loc, "... %d calls deep, from here", L->calls.n);
}

/* A warning at loc, once per node however often its fn is inlined. */
static bool lower_warning(Lower *L, Node *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool lower_warning(Lower *L, Node *at, const char *fmt, ...) {
    if (ptrmap_get(&L->t->warned, at)) return false;
    ptrmap_put(&L->t->warned, at, at);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_warning(at->loc, "%s", msg);
    note_calls(L);
    return true;
}

static void lower_error(Lower *L, SrcLoc loc, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_error(loc, "%s", msg);
    note_calls(L);
}

/* ---- names ---- */

/* base, or base_2, base_3, ...: the first not given out yet. Each name remembers the next
 * suffix to try for it, so n values of one name cost n steps in all, not n^2. */
static const char *unique_name(Lower *L, const char *base) {
    HashMap *names = &L->t->names;
    intptr_t next = (intptr_t)strmap_get(names, base);
    if (!next) {
        strmap_put(names, base, (void *)(intptr_t)2);
        return base;
    }
    const char *name;
    do name = xprintf("%s_%ld", base, (long)next++);
    while (strmap_get(names, name));
    strmap_put(names, base, (void *)next);
    strmap_put(names, name, (void *)(intptr_t)2);
    return name;
}

/* Gives a computed value the name it was bound to. A model-level name wins over a fn
 * local's; leaves keep theirs (`a = x` is an alias). */
static void name_value(Lower *L, Value *v, const char *name, bool model_level) {
    if (op_info[v->op].cls == OPC_SRC) return;
    if (v->name && (!model_level || !strchr(v->name, '.'))) return;
    v->name = unique_name(L, name);
}

static Binding *lookup_here(Scope *s, const char *name) {
    if (s->names.n <= SCOPE_SCAN_MAX) {
        for (int i = 0; i < s->names.n; i++)
            if (!strcmp(s->names.v[i].name, name)) return &s->names.v[i];
        return NULL;
    }
    intptr_t at = (intptr_t)strmap_get(&s->index, name);
    return at ? &s->names.v[at - 1] : NULL;
}

/* Adds a binding (its name is not bound in s yet). */
static void add_binding(Scope *s, Binding b) {
    vec_push(&s->names, b);
    if (s->names.n == SCOPE_SCAN_MAX + 1) /* the scan gets too long: index every name */
        for (int i = 0; i < s->names.n; i++)
            strmap_put(&s->index, s->names.v[i].name, (void *)(intptr_t)(i + 1));
    else if (s->names.n > SCOPE_SCAN_MAX)
        strmap_put(&s->index, b.name, (void *)(intptr_t)s->names.n);
}

static Binding *lookup(Scope *s, const char *name) {
    for (; s; s = s->parent) {
        Binding *b = lookup_here(s, name);
        if (b) return b;
    }
    return NULL;
}

static bool bind(Lower *L, Scope *s, Node *decl, const char *name, LVal val) {
    Binding *old = lookup_here(s, name);
    if (old) {
        lower_error(L,
                    !decl                 ? L->site->loc
                    : decl->name_loc.line ? decl->name_loc
                                          : decl->loc,
                    "%s is already defined", name);
        if (old->decl) diag_note(old->decl->loc, "%s was defined here", name);
        return false;
    }
    add_binding(s, (Binding){name, val, decl});
    return true;
}

/* A declaration that failed still binds its name, to an error that later uses pass on
 * without a message: one mistake, one error. */
static void bind_failed(Scope *s, Node *decl) {
    if (!lookup_here(s, decl->str)) add_binding(s, (Binding){decl->str, lv_error, decl});
}

/* A name bound nowhere is reported once: its later uses (and those in every other call of
 * the fn it is in) are quiet, as those of a declaration that failed are. The hint offers the
 * nearest name in sight. */
static void unknown_name(Lower *L, Scope *s, Node *e) {
    if (strmap_get(&L->t->unknown, e->str)) return;
    strmap_put(&L->t->unknown, e->str, e);
    lower_error(L, e->loc, "unknown name %s", e->str);
    Suggestion near = suggest_start(e->str);
    for (; s; s = s->parent)
        for (int i = s->names.n - 1; i >= 0; i--) suggest_consider(&near, s->names.v[i].name);
    diag_did_you_mean(&near);
}

/* ---- values ---- */

static const ScanSite *outermost_scan(const ScanSite *s) {
    while (s->parent) s = s->parent;
    return s;
}

/* Records where an instruction came from in the user's file. */
static Value *tag(Lower *L, Value *v) {
    if (L->site && !v->what) {
        v->loc = L->site->loc;
        v->what = ast_source_text(L->site);
    }
    if (!v->site) v->site = L->call_site;
    const ScanSite *outermost = L->scan ? outermost_scan(L->scan) : NULL;
    if (outermost && !v->scan) {
        v->scan = outermost->id;
        v->scan_step = (int)outermost->step;
    }
    return v;
}

static Value *as_value(Lower *L, LVal x) {
    if (x.kind != LV_NUM) return x.v;
    Value *c = ir_const(L->g, x.num);
    c->spelling = x.text;
    return c;
}

/* Builds op(args) after checking shapes; errors at `at`. */
static LVal build_op(Lower *L, Node *at, Op op, int nargs, LVal *args, const Value *proto) {
    Value *vals[3];
    for (int i = 0; i < nargs; i++) {
        if (args[i].kind == LV_ERROR) return lv_error;
        vals[i] = as_value(L, args[i]);
    }
    Shape shape = shape_scalar();
    bool varying;
    const char *err = ir_infer_shape(op, nargs, vals, proto, &shape, &varying);
    if (err) {
        lower_error(L, at->loc, "%s", err);
        return lv_error;
    }
    Value *v = ir_inst(L->g, op, nargs, vals, shape, varying);
    if (proto) {
        v->ta = proto->ta;
        v->tb = proto->tb;
        v->layout = proto->layout;
        memcpy(v->opt, proto->opt, sizeof v->opt);
    }
    return lv_tensor(tag(L, v));
}

static LVal eval(Lower *L, Scope *s, Node *e);

static LVal eval_binop(Lower *L, Scope *s, Node *e) {
    LVal ab[2]; /* one at a time: the order of an initializer list's evaluations is open */
    ab[0] = eval(L, s, e->lhs);
    ab[1] = eval(L, s, e->rhs);
    if (ab[0].kind == LV_ERROR || ab[1].kind == LV_ERROR) return lv_error;
    Op op = op_by_symbol((char)e->op, 2);
    if (op == OP_COUNT) {
        lower_error(L, e->loc, "internal error: the operator %c has no row in ops.def", e->op);
        return lv_error;
    }
    double folded;
    if (fold(op, ab, 2, NULL, &folded)) return lv_folded(e, ab, 2, folded);
    if (op == OP_pow && ab[1].kind == LV_TENSOR && ab[1].v->shape.rank != 0) {
        lower_error(L, e->loc, "the exponent of ^ must be a scalar, got shape %s",
                    shape_str(ab[1].v->shape));
        return lv_error;
    }
    if (op != OP_matmul) return build_op(L, e, op, 2, ab, NULL);
    /* x @ v with a vector on the right is a matrix-vector product: v is a column. */
    Value proto = {.tb = ab[1].kind == LV_TENSOR && ab[1].v->shape.rank == 1};
    if (ab[0].kind == LV_NUM || ab[1].kind == LV_NUM) {
        lower_error(L, e->loc, "@ needs vectors or matrices, got a number");
        return lv_error;
    }
    return build_op(L, e, op, 2, ab, &proto);
}

static LVal eval_neg(Lower *L, Scope *s, Node *e) {
    LVal a = eval(L, s, e->lhs);
    Op op = op_by_symbol('-', 1);
    double folded;
    if (fold(op, &a, 1, NULL, &folded)) return lv_folded(e, &a, 1, folded);
    return build_op(L, e, op, 1, &a, NULL);
}

/* ---- calls ---- */

static Node *find_fn(Lower *L, const char *name) {
    return strmap_get(&L->prog->fn_by_name, name);
}

/* ---- built-ins: the rows of ops.def with a CALL ---- */

/* Reads option k of op from the argument a into *out; false after an error. */
static bool read_option(Lower *L, Scope *s, Op op, int k, Node *a, double *out) {
    const OpOption *o = &op_info[op].options[k];
    Node *e = a->kind == ND_KWARG ? a->lhs : a;
    LVal x = eval(L, s, e);
    if (x.kind != LV_NUM) {
        if (x.kind == LV_TENSOR) lower_error(L, e->loc, "%s must be a number", o->name);
        return false;
    }
    /* (dropout's rate 1 would drop everything and scale by 1/0) */
    if (o->checked && !(x.num >= o->low && x.num < o->below)) {
        lower_error(L, e->loc, "%s's %s must be at least %s and below %s, got %s", op_info[op].call,
                    o->name, ir_number_str(o->low), ir_number_str(o->below), ir_number_str(x.num));
        return false;
    }
    *out = x.num;
    return true;
}

/* Which option an argument gives: by name, or the one after the operands at its place among
 * the positional arguments. -1 when it is an operand or nothing the op takes. */
static int option_slot(Op op, const Node *a, int positional) {
    const OpInfo *in = &op_info[op];
    if (a->kind == ND_KWARG) {
        for (int k = 0; k < in->n_options; k++)
            if (!strcmp(a->str, in->options[k].name)) return k;
        return -1;
    }
    int k = positional - in->arity;
    return k >= 0 && k < in->n_options ? k : -1;
}

/* A RANDOM op (dropout(x, rate)): one mask per sample needs a value with samples. Rate 0
 * drops nothing, but stays: train --dropout X sets the rate of every dropout of the model. */
static LVal build_random(Lower *L, Node *call, Op op, LVal x, const Value *proto) {
    if (x.kind == LV_ERROR) return lv_error;
    if (x.kind == LV_NUM || !x.v->varying) {
        const char *what = x.kind == LV_NUM ? "a number" : ir_value_ref(x.v);
        lower_error(L, call->loc,
                    "%s needs a value that varies per sample; %s is the same for every sample",
                    op_info[op].call, what);
        return lv_error;
    }
    LVal r = build_op(L, call, op, 1, &x, proto);
    if (r.kind == LV_TENSOR) r.v->salt = r.v->id; /* each call site its own masks */
    return r;
}

/* softmax over a single element is 1 whatever its input (log_softmax 0, and so is the loss
 * of softmax_cross_entropy): such a model compiles and trains, and can never learn. */
static void warn_one_class(Lower *L, Node *call, Op op, LVal x) {
    const char *always = op == OP_softmax       ? "is always 1"
                         : op == OP_log_softmax ? "is always 0"
                         : op == OP_softmax_ce  ? "is always 0"
                                                : NULL;
    if (!always || x.kind != LV_TENSOR || x.v->shape.rank == 0) return;
    if (x.v->shape.dim[x.v->shape.rank - 1] != 1) return;
    if (lower_warning(L, call, "%s over one element %s: nothing can be learned through it",
                      op_info[op].call, always))
        diag_hint("for two classes, use one output with sigmoid and bce (or bce_logits)");
}

/* "relu takes 1 argument", "clamp takes 1 argument, then the numbers lo, hi" */
static bool too_many_arguments(Lower *L, Node *at, Op op) {
    const OpInfo *in = &op_info[op];
    StrBuf then = {0};
    for (int k = 0; k < in->n_options; k++)
        sb_printf(&then, "%s%s",
                  k                    ? ", "
                  : in->n_options == 1 ? ", then the number "
                                       : ", then the numbers ",
                  in->options[k].name);
    lower_error(L, at->loc, "%s takes %d argument%s%s", in->call, in->arity,
                in->arity == 1 ? "" : "s", in->n_options ? sb_str(&then) : "");
    return false;
}

/* Under an arity error: the later rows of the same name, which a call takes by naming their
 * first option ("with axis = k, max is the largest element along one axis ..."). */
static void hint_other_rows(Op op) {
    for (int other = op + 1; other < OP_COUNT; other++)
        if (op_info[other].call && !strcmp(op_info[other].call, op_info[op].call) &&
            op_info[other].n_options > 0)
            diag_hint("with %s = ..., %s(x, ...) is the %s", op_info[other].options[0].name,
                      op_info[op].call, op_info[other].doc);
}

/* The operands into args[], the options into proto->opt[]; false after an error. */
static bool read_builtin_arguments(Lower *L, Scope *s, Node *call, Op op, LVal *args,
                                   Value *proto) {
    const OpInfo *in = &op_info[op];
    bool given[OP_MAX_OPTIONS] = {false};
    for (int k = 0; k < in->n_options; k++) proto->opt[k] = in->options[k].value;
    int n = 0, positional = 0;
    for (int i = 0; i < call->args.n; i++) {
        Node *a = call->args.v[i];
        int k = option_slot(op, a, positional);
        if (a->kind != ND_KWARG) positional++;
        if (k < 0 && (a->kind == ND_KWARG || n == in->arity)) return too_many_arguments(L, a, op);
        if (k < 0) {
            args[n++] = eval(L, s, a);
            continue;
        }
        if (given[k]) {
            lower_error(L, a->loc, "%s's %s is given twice", in->call, in->options[k].name);
            return false;
        }
        given[k] = true;
        if (!read_option(L, s, op, k, a, &proto->opt[k])) return false;
    }
    if (n < in->arity) {
        lower_error(L, call->loc, "%s takes %d argument%s, got %d", in->call, in->arity,
                    in->arity == 1 ? "" : "s", n);
        hint_other_rows(op);
        return false;
    }
    return true;
}

static LVal call_permute(Lower *L, Scope *s, Node *call);
static LVal call_concat(Lower *L, Scope *s, Node *call);

static LVal call_builtin(Lower *L, Scope *s, Node *call, Op op) {
    if (op == OP_permute) return call_permute(L, s, call);
    if (op == OP_concat) return call_concat(L, s, call);
    LVal args[3];
    Value proto = {0};
    if (!read_builtin_arguments(L, s, call, op, args, &proto)) return lv_error;
    if (op_info[op].cls == OPC_WINDOW) ir_window_defaults(op, proto.opt);
    int n = op_info[op].arity;
    if (op_info[op].flags & OPF_RANDOM) return build_random(L, call, op, args[0], &proto);
    warn_one_class(L, call, op, args[0]);
    double folded;
    if (fold(op, args, n, proto.opt, &folded)) return lv_folded(call, args, n, folded);
    return build_op(L, call, op, n, args, &proto);
}

/* ---- layout: subscripts, permute and concat ---- */

/* A number a layout op needs (an index, a bound, an axis): a whole number known when
 * compiling; false after an error. */
static bool whole_number(Lower *L, Scope *s, Node *e, const char *what, int64_t *out) {
    LVal x = eval(L, s, e);
    if (x.kind == LV_ERROR) return false;
    if (x.kind == LV_TENSOR) {
        lower_error(L, e->loc, "%s must be a number known when compiling, got a tensor of shape %s",
                    what, shape_str(x.v->shape));
        diag_hint("indexing picks the same elements of every sample: indices and axes are "
                  "numbers, or names bound to numbers");
        return false;
    }
    if (x.num != floor(x.num) || fabs(x.num) > 1e15) {
        lower_error(L, e->loc, "%s must be a whole number, got %s", what, ir_number_str(x.num));
        return false;
    }
    *out = (int64_t)x.num;
    return true;
}

/* An integer index into axis k of length n: counted from the end when negative. */
static bool read_index(Lower *L, Scope *s, Node *e, int k, int64_t n, Layout *l) {
    int64_t i;
    if (!whole_number(L, s, e, "an index", &i)) return false;
    if (i < -n || i >= n) {
        lower_error(L, e->loc, "index %lld is out of range for axis %d, of size %lld", (long long)i,
                    k, (long long)n);
        diag_hint("the indices of that axis go from 0 to %lld, or from -%lld to -1 counting "
                  "from the end",
                  (long long)(n - 1), (long long)n);
        return false;
    }
    l->start[k] = i < 0 ? i + n : i;
    l->step[k] = l->count[k] = 1;
    l->drop[k] = true;
    return true;
}

/* A slice bound as Python reads it: from the end when negative, then clamped to 0..n. */
static bool read_bound(Lower *L, Scope *s, Node *e, int64_t n, int64_t absent, int64_t *out) {
    *out = absent;
    if (!e) return true;
    if (!whole_number(L, s, e, "a slice bound", out)) return false;
    if (*out < 0) *out += n;
    *out = *out < 0 ? 0 : *out > n ? n : *out;
    return true;
}

/* start:stop:step along axis k of length n. */
static bool read_slice(Lower *L, Scope *s, Node *e, int k, int64_t n, Layout *l) {
    int64_t start, stop, step = 1;
    if (e->init && !whole_number(L, s, e->init, "a slice's step", &step)) return false;
    if (step < 1) {
        lower_error(L, e->init->loc, "a slice's step must be at least 1, got %lld",
                    (long long)step);
        diag_hint("as in PyTorch, slices go forwards only");
        return false;
    }
    if (!read_bound(L, s, e->lhs, n, 0, &start) || !read_bound(L, s, e->rhs, n, n, &stop))
        return false;
    if (stop <= start) {
        lower_error(L, e->loc, "the slice %s takes nothing of axis %d, of size %lld",
                    ast_source_text(e), k, (long long)n);
        diag_hint("a tensor has at least one element along every axis");
        return false;
    }
    l->start[k] = start;
    l->step[k] = step;
    l->count[k] = (stop - start + step - 1) / step;
    return true;
}

static bool is_whole_axis(const Layout *l, int k) {
    return !l->drop[k] && l->start[k] == 0 && l->step[k] == 1 && l->count[k] == l->whole.dim[k];
}

static LVal stack_carries(Lower *L, Node *call, Value **carries, int64_t steps);

/* hs[:, i, ...] of a scan's stack: every step's carry sliced by the other indices, and those
 * stacked, which is a scan result of its own (so hs[:, 0][-1] is a slice of the last carry).
 * Slicing the stack would copy every carry whole into it, and its gradient every carry's;
 * lstm's hidden states are such a slice of its [t, 2, n] carries. l slices the stack and
 * takes its first axis whole. */
static LVal slice_each_carry(Lower *L, Node *e, const ScanResult *scanned, const Layout *l) {
    Layout *per_step = xalloc(sizeof *per_step);
    per_step->whole = scanned->carries[0]->shape;
    for (int k = 1; k < l->whole.rank; k++) {
        per_step->start[k - 1] = l->start[k];
        per_step->step[k - 1] = l->step[k];
        per_step->count[k - 1] = l->count[k];
        per_step->drop[k - 1] = l->drop[k];
    }
    Value proto = {.layout = per_step};
    Value **sliced = xalloc(sizeof *sliced * (size_t)scanned->steps);
    for (int64_t t = 0; t < scanned->steps; t++) {
        LVal carry = lv_tensor(scanned->carries[t]);
        LVal c = build_op(L, e, OP_slice, 1, &carry, &proto);
        if (c.kind == LV_ERROR) return lv_error;
        sliced[t] = c.v;
    }
    LVal stacked = stack_carries(L, e, sliced, scanned->steps);
    if (stacked.kind == LV_TENSOR) {
        ScanResult *r = xalloc(sizeof *r);
        *r = (ScanResult){scanned->steps, sliced};
        ptrmap_put(&L->t->scans, stacked.v, r);
    }
    return stacked;
}

/* x[i, a:b:k, ...] over the per-sample axes: one slice op (ops.def, "layout"). Axes not
 * written are taken whole; a subscript that takes everything is x itself. */
static LVal eval_index(Lower *L, Scope *s, Node *e) {
    LVal x = eval(L, s, e->lhs);
    if (x.kind == LV_ERROR) return lv_error;
    if (x.kind == LV_NUM || x.v->shape.rank == 0) {
        lower_error(L, e->loc, "cannot index %s: it is %s", ast_source_brief(e->lhs),
                    x.kind == LV_NUM ? "a number" : "one number per sample");
        return lv_error;
    }
    Shape shape = x.v->shape;
    if (e->args.n > shape.rank) {
        lower_error(L, e->args.v[shape.rank]->loc,
                    "too many indices: %s has %d ax%s per sample, of shape %s, and is given %d",
                    ast_source_brief(e->lhs), shape.rank, shape.rank == 1 ? "is" : "es",
                    shape_str(shape), e->args.n);
        diag_hint("the batch axis is implicit and never indexed: x[0] is the first element of "
                  "each sample");
        return lv_error;
    }
    Layout *l = xalloc(sizeof *l);
    ScanResult *scanned = ptrmap_get(&L->t->scans, x.v);
    if (scanned && e->args.n == 1 && e->args.v[0]->kind != ND_SLICE) {
        /* hs[t] of a scan's result is the carry after step t itself, not a slice of the
         * stack: a model that reads only hs[-1] needs no stack at all */
        if (!read_index(L, s, e->args.v[0], 0, scanned->steps, l)) return lv_error;
        return lv_tensor(scanned->carries[l->start[0]]);
    }
    l->whole = shape;
    bool everything = true;
    for (int k = 0; k < shape.rank; k++) {
        Node *a = k < e->args.n ? e->args.v[k] : NULL;
        l->step[k] = 1;
        l->count[k] = shape.dim[k];
        bool ok = !a                    ? true
                  : a->kind == ND_SLICE ? read_slice(L, s, a, k, shape.dim[k], l)
                                        : read_index(L, s, a, k, shape.dim[k], l);
        if (!ok) return lv_error;
        everything &= is_whole_axis(l, k);
    }
    if (everything) return x;
    if (scanned && is_whole_axis(l, 0)) return slice_each_carry(L, e, scanned, l);
    Value proto = {.layout = l};
    return build_op(L, e, OP_slice, 1, &x, &proto);
}

/* permute(x, 2, 0, 1): the operand, then every axis of it once, in the new order. */
static LVal call_permute(Lower *L, Scope *s, Node *call) {
    if (call->args.n == 0 || call->args.v[0]->kind == ND_KWARG) {
        lower_error(L, call->loc, "permute takes a value, then its axes in the new order");
        return lv_error;
    }
    LVal x = eval(L, s, call->args.v[0]);
    if (x.kind == LV_ERROR) return lv_error;
    int rank = x.kind == LV_TENSOR ? x.v->shape.rank : 0, given = call->args.n - 1;
    Shape shape = x.kind == LV_TENSOR ? x.v->shape : shape_scalar();
    if (given != rank || rank == 0) {
        lower_error(L, call->loc, "permute of a value of shape %s needs its %d ax%s, got %d",
                    shape_str(shape), rank, rank == 1 ? "is" : "es", given);
        diag_hint("as torch.permute: permute(x, 2, 0, 1) puts axis 2 first");
        return lv_error;
    }
    Layout *l = xalloc(sizeof *l);
    bool seen[MAX_RANK] = {false}, identity = true;
    for (int k = 0; k < rank; k++) {
        Node *a = call->args.v[k + 1];
        int64_t n;
        int axis;
        if (a->kind == ND_KWARG) {
            lower_error(L, a->loc, "permute has no argument named %s", a->str);
            return lv_error;
        }
        if (!whole_number(L, s, a, "an axis", &n)) return lv_error;
        if (!ir_axis((double)n, rank, &axis)) {
            lower_error(L, a->loc, "%lld is not an axis of shape %s", (long long)n,
                        shape_axes_str(shape));
            return lv_error;
        }
        if (seen[axis]) {
            lower_error(L, a->loc, "axis %lld is given twice", (long long)n);
            diag_hint("permute takes every axis once: permute(x, 1, 0) swaps the two axes of a "
                      "matrix");
            return lv_error;
        }
        seen[axis] = true;
        l->perm[k] = axis;
        identity &= axis == k;
    }
    if (identity) return x;
    Value proto = {.layout = l};
    return build_op(L, call, OP_permute, 1, &x, &proto);
}

/* concat(a, b, axis = 1), concat(a, b, 1), and concat(a, b, c, axis = 1) as
 * concat(concat(a, b), c): the operands are the tensors, a number after them the axis. */
static LVal call_concat(Lower *L, Scope *s, Node *call) {
    VEC(LVal) parts = {0};
    Node *axis_node = NULL;
    for (int i = 0; i < call->args.n; i++) {
        Node *a = call->args.v[i];
        if (a->kind == ND_KWARG && strcmp(a->str, "axis")) {
            lower_error(L, a->loc, "concat has no argument named %s", a->str);
            return lv_error;
        }
        bool last_positional = a->kind != ND_KWARG && i == call->args.n - 1 && parts.n >= 2;
        LVal x = a->kind == ND_KWARG ? lv_num(0) : eval(L, s, a);
        if (x.kind == LV_ERROR) return lv_error;
        if (a->kind == ND_KWARG || (x.kind == LV_NUM && last_positional)) {
            if (axis_node) {
                lower_error(L, a->loc, "concat's axis is given twice");
                return lv_error;
            }
            axis_node = a->kind == ND_KWARG ? a->lhs : a;
            continue;
        }
        if (x.kind == LV_NUM) {
            lower_error(L, a->loc, "concat joins tensors; %s is a number", ast_source_brief(a));
            diag_hint("give the axis last, or by name: concat(a, b, axis = 1)");
            return lv_error;
        }
        vec_push(&parts, x);
    }
    if (parts.n < 2) {
        lower_error(L, call->loc, "concat takes at least 2 values, got %d", parts.n);
        return lv_error;
    }
    Value proto = {.opt = {op_info[OP_concat].options[0].value}};
    int64_t axis;
    if (axis_node && !whole_number(L, s, axis_node, "concat's axis", &axis)) return lv_error;
    if (axis_node) proto.opt[0] = (double)axis;
    LVal joined = parts.v[0];
    for (int i = 1; i < parts.n && joined.kind != LV_ERROR; i++) {
        LVal pair[2] = {joined, parts.v[i]};
        joined = build_op(L, call, OP_concat, 2, pair, &proto);
    }
    return joined;
}

static bool positive_dim(Lower *L, Scope *s, Node *e, int64_t *out) {
    LVal d = eval(L, s, e);
    if (d.kind == LV_ERROR) return false;
    if (d.kind != LV_NUM || d.num != floor(d.num) || d.num < 1 || d.num > 1e9) {
        lower_error(L, e->loc, "a dimension must be a positive whole number");
        return false;
    }
    *out = (int64_t)d.num;
    return true;
}

/* Binds fn parameter `p` to argument value `arg`: x[n, m] checks the rank and binds or
 * checks n and m. */
static bool bind_fn_param(Lower *L, Scope *fs, Node *fn, Node *p, LVal arg, Node *arg_node) {
    if (arg.kind == LV_ERROR) return false;
    if (p->has_dims) {
        Shape sh = arg.kind == LV_NUM ? shape_scalar() : arg.v->shape;
        if (sh.rank != p->dims.n) {
            lower_error(L, arg_node->loc, "%s's argument %s must have %d dimension%s, got shape %s",
                        fn->str, p->str, p->dims.n, p->dims.n == 1 ? "" : "s", shape_str(sh));
            return false;
        }
        for (int d = 0; d < p->dims.n; d++) {
            Node *dim = p->dims.v[d];
            if (dim->kind == ND_NAME && !lookup(fs, dim->str)) {
                bind(L, fs, dim, dim->str, lv_num((double)sh.dim[d]));
                continue;
            }
            int64_t want;
            if (!positive_dim(L, fs, dim, &want)) return false;
            if (want != sh.dim[d]) {
                lower_error(L, arg_node->loc,
                            "%s's argument %s must have dimension %d equal to %lld, got shape %s",
                            fn->str, p->str, d + 1, (long long)want, shape_str(sh));
                return false;
            }
        }
    }
    return bind(L, fs, p, p->str, arg);
}

static void lower_stmt(Lower *L, Scope *s, Node *st, bool model_level);

/* ---- fns with their own backward rule (rules.c) ---- */

/* Records the fn's rules on the call's result, so that autodiff applies them instead of
 * differentiating its body. The result must be computed inside this call: a rule on a value
 * that exists elsewhere (an argument returned as it is) would change that value's gradient
 * everywhere. */
static void attach_rule(Lower *L, Node *fn, Node *call, Scope *fs, LVal *vals, LVal result,
                        int first_new_id) {
    if (result.kind != LV_TENSOR || result.v->id < first_new_id || result.v->custom) {
        lower_error(L, call->loc, "%s has backward rules, so its result must be computed in it",
                    fn->str);
        return;
    }
    LowerCall *at = xalloc(sizeof *at);
    *at = (LowerCall){.prog = L->prog, .t = L->t, .scope = fs, .call = call, .prefix = L->prefix};
    Value **args = xalloc(sizeof *args * (size_t)(fn->params.n + 1));
    for (int j = 0; j < fn->params.n; j++) args[j] = vals[j].kind == LV_TENSOR ? vals[j].v : NULL;
    result.v->custom = rules_at_call(&L->t->rules, fn, call, args, at);
}

bool lower_rule_body(Graph *g, const LowerCall *at, Node *e, Value *upstream, Value **out) {
    Lower L = {
        .prog = at->prog, .g = g, .prefix = at->prefix, .site = e, .t = at->t, .in_rule = true};
    Scope s = {.parent = at->scope}; /* g, and the fn's bindings at the call */
    bind(&L, &s, NULL, "g", lv_tensor(upstream));
    vec_push(&L.calls, at->call);
    LVal r = eval(&L, &s, e);
    *out = NULL;
    if (r.kind == LV_ERROR) return false;
    if (r.kind == LV_NUM && r.num == 0) return true; /* grad u = 0: nothing flows */
    *out = as_value(&L, r);
    return true;
}

/* Which parameter each argument of the call fills: positional first, then by name.
 * Arguments are evaluated here; false after an error. */
static bool match_arguments(Lower *L, Scope *s, Node *call, Node *fn, Node **given, LVal *vals) {
    int npos = 0;
    for (int i = 0; i < call->args.n; i++) {
        Node *a = call->args.v[i];
        int slot;
        if (a->kind == ND_KWARG) {
            slot = program_fn_param(L->prog, fn, a->str);
            if (slot < 0) {
                lower_error(L, a->loc, "%s has no argument named %s", fn->str, a->str);
                return false;
            }
        } else {
            slot = npos++;
            if (slot >= fn->params.n) {
                lower_error(L, a->loc, "%s takes %d argument%s", fn->str, fn->params.n,
                            fn->params.n == 1 ? "" : "s");
                return false;
            }
        }
        if (given[slot]) {
            lower_error(L, a->loc, "%s's argument %s is given twice", fn->str,
                        fn->params.v[slot]->str);
            return false;
        }
        given[slot] = a;
        vals[slot] = eval(L, s, a->kind == ND_KWARG ? a->lhs : a);
        if (vals[slot].kind == LV_ERROR) return false;
    }
    for (int j = 0; j < fn->params.n; j++)
        if (!given[j]) {
            lower_error(L, call->loc, "%s needs its argument %s", fn->str, fn->params.v[j]->str);
            return false;
        }
    return true;
}

/* The call being inlined, for the values it makes (step: 1 + a scan's step, or 0). */
static CallSite *new_call_site(Lower *L, Node *call, Node *fn, int64_t step) {
    CallSite *c = xalloc(sizeof *c);
    *c = (CallSite){.parent = L->call_site,
                    .id = ++L->t->n_sites,
                    .fn = fn->str,
                    .binding = L->prefix,
                    .text = ast_source_brief(call),
                    .loc = call->loc,
                    .step = (int)step};
    return c;
}

/* fn's body inlined at call with its parameters bound to vals (given: the argument each
 * came from, for errors); step: 1 + the scan's step it is, or 0. */
static LVal inline_fn(Lower *L, Node *call, Node *fn, Node **given, LVal *vals, int64_t step) {
    intptr_t times = (intptr_t)ptrmap_get(&L->t->inlined, fn);
    ptrmap_put(&L->t->inlined, fn, (void *)(times + 1));
    const CallSite *outer_call_site = L->call_site;
    L->call_site = new_call_site(L, call, fn, step);

    Node *outer_site = L->site;
    if (L->calls.n == 0) L->site = call;
    vec_push(&L->calls, call);
    Scope *fs = xalloc(sizeof *fs); /* kept: a backward rule evaluates in it later */
    int first_new_id = L->g->next_id;
    LVal result = lv_error;
    bool ok = true;
    for (int j = 0; j < fn->params.n && ok; j++)
        ok = bind_fn_param(L, fs, fn, fn->params.v[j], vals[j], given[j]);
    for (int i = 0; ok && i < fn->body.n; i++) {
        Node *st = fn->body.v[i];
        if (st->kind == ND_RETURN) {
            result = eval(L, fs, st->init);
            break;
        }
        int errors = diag_error_count();
        lower_stmt(L, fs, st, false);
        ok = diag_error_count() == errors;
    }
    if (result.kind != LV_ERROR && fn_has_rules(fn))
        attach_rule(L, fn, call, fs, vals, result, first_new_id);
    L->calls.n--;
    L->site = outer_site;
    L->call_site = outer_call_site;
    return result;
}

static bool call_too_deep(Lower *L, Node *call, Node *fn) {
    if (L->calls.n < NNC_MAX_CALL_DEPTH) return false;
    lower_error(L, call->loc, "calls nest more than %d deep (is %s recursive?)", NNC_MAX_CALL_DEPTH,
                fn->str);
    return true;
}

static LVal call_fn(Lower *L, Scope *s, Node *call, Node *fn) {
    if (call_too_deep(L, call, fn)) return lv_error;
    size_t n = (size_t)fn->params.n + 1;
    Node **given = xalloc(n * sizeof *given);
    LVal *vals = xalloc(n * sizeof *vals);
    if (!match_arguments(L, s, call, fn, given, vals)) return lv_error;
    return inline_fn(L, call, fn, given, vals, 0);
}

/* ---- scan(f, init, xs, ...): a recurrence, unrolled (docs/language.md, "Recurrences") ----
 * carry_0 = init, carry_t+1 = f(carry_t, xs[t], ys[t], ...) for t < T, the length of the
 * sequences' first axis; the result is the carries after each step stacked, [T, ...]. Each
 * step is an ordinary inlined call of f, so backpropagation through time is autodiff on the
 * unrolled IR; the steps share f's params (shared_param). */

/* The fn a scan steps with: its first argument, by name. NULL after an error. */
static Node *scan_fn(Lower *L, Node *call, int sequences) {
    Node *a = call->args.v[0];
    Node *fn = a->kind == ND_NAME ? find_fn(L, a->str) : NULL;
    if (!fn) {
        double unused;
        bool builtin = a->kind == ND_NAME &&
                       (op_by_call(a->str) != OP_COUNT || constant_builtin(a->str, &unused));
        lower_error(L, a->loc, "scan's first argument must name a fn, got %s%s",
                    ast_source_brief(a), builtin ? ", a built-in" : "");
        diag_hint("write the step as a fn of the carry and one row of each sequence: "
                  "fn step(h[n], xt[d]) { return tanh(...) }, then scan(step, init, xs)");
        return NULL;
    }
    if (fn->params.n != 1 + sequences) {
        lower_error(L, a->loc,
                    "scan passes %s the carry and a row of each of its %d sequence%s, %d "
                    "argument%s; fn %s takes %d",
                    fn->str, sequences, sequences == 1 ? "" : "s", 1 + sequences,
                    sequences ? "s" : "", fn->str, fn->params.n);
        diag_note(fn->loc, "fn %s is defined here", fn->str);
        return NULL;
    }
    return fn;
}

/* A sequence a scan steps along: a tensor with a first axis, whose length is the scan's. */
static bool scan_sequence(Lower *L, Node *a, LVal x, int64_t *steps) {
    if (x.kind == LV_ERROR) return false;
    if (x.kind == LV_NUM || x.v->shape.rank == 0) {
        lower_error(L, a->loc, "scan steps along the first axis of %s, which has none: it is %s",
                    ast_source_brief(a), x.kind == LV_NUM ? "a number" : "one number per sample");
        diag_hint("a sequence is a per-sample tensor [T, ...]: `input x[T, d]`; the batch axis "
                  "is implicit and never scanned");
        return false;
    }
    int64_t t = x.v->shape.dim[0];
    if (*steps && t != *steps) {
        lower_error(L, a->loc,
                    "scan's sequences must have the same length: %s has %lld steps "
                    "(shape %s), the first sequence %lld",
                    ast_source_brief(a), (long long)t, shape_str(x.v->shape), (long long)*steps);
        return false;
    }
    if (t > NNC_MAX_SCAN_STEPS) {
        lower_error(L, a->loc, "scan unrolls at most %d steps; %s has %lld", NNC_MAX_SCAN_STEPS,
                    ast_source_brief(a), (long long)t);
        diag_hint("every step is a copy of the fn's body in the compiled model: cut the "
                  "sequence into shorter windows");
        return false;
    }
    *steps = t;
    return true;
}

/* xs[t], named after the fn parameter it fills: hs.xt@3. */
static LVal sequence_row(Lower *L, Node *at, LVal x, int64_t t, const char *name) {
    Layout *l = xalloc(sizeof *l);
    l->whole = x.v->shape;
    for (int k = 0; k < l->whole.rank; k++) {
        l->step[k] = 1;
        l->count[k] = l->whole.dim[k];
    }
    l->start[0] = t;
    l->count[0] = 1;
    l->drop[0] = true;
    Value proto = {.layout = l};
    LVal row = build_op(L, at, OP_slice, 1, &x, &proto);
    if (row.kind == LV_TENSOR) name_value(L, row.v, name, false);
    return row;
}

/* The carry a step returned must be the carry it was given, shape for shape. */
static bool same_carry(Lower *L, Node *call, Node *fn, LVal init, LVal carry) {
    if (carry.kind == LV_ERROR) return false;
    Shape want = init.kind == LV_TENSOR ? init.v->shape : shape_scalar();
    Shape got = carry.kind == LV_TENSOR ? carry.v->shape : shape_scalar();
    if (shape_eq(want, got)) return true;
    lower_error(L, call->args.v[1]->loc,
                "scan's carry must keep its shape: it starts as %s, and %s returns %s",
                shape_str(want), fn->str, shape_str(got));
    for (int i = 0; i < fn->body.n; i++)
        if (fn->body.v[i]->kind == ND_RETURN)
            diag_note(fn->body.v[i]->loc, "%s returns its new carry here", fn->str);
    return false;
}

/* After the first step: the steps to come would take the model past NNC_MAX_INLINED_EXPRS.
 * Said at the scan, before unrolling them, with the size of a step. */
static bool steps_fit(Lower *L, Node *call, Node *fn, int64_t steps, int64_t per_step) {
    int64_t after = L->g->exprs_lowered + per_step * (steps - 1);
    if (after <= NNC_MAX_INLINED_EXPRS) return true;
    lower_error(L, call->loc,
                "scan unrolls %lld steps of %lld expressions each: more than the %d "
                "expressions a model may have once its fns are inlined",
                (long long)steps, (long long)per_step, NNC_MAX_INLINED_EXPRS);
    diag_hint("shorten the sequence, or make fn %s smaller", fn->str);
    L->g->too_large = true;
    return false;
}

/* The carries stacked along a new first axis: each carry as [1, ...], joined by concats
 * that pair neighbours level by level, so a value is copied log2(T) times, not T. */
static LVal stack_carries(Lower *L, Node *call, Value **carries, int64_t steps) {
    Value *first = carries[0];
    if (first->shape.rank + 1 > MAX_RANK) {
        lower_error(L, call->args.v[1]->loc,
                    "scan stacks its carries along a new axis, and a "
                    "carry of shape %s would make %d axes, more than %d",
                    shape_str(first->shape), first->shape.rank + 1, MAX_RANK);
        return lv_error;
    }
    LVal *level = xalloc(sizeof *level * (size_t)steps);
    Value reshape = {.opt = {1}};
    for (int k = 0; k < first->shape.rank; k++) reshape.opt[k + 1] = (double)first->shape.dim[k];
    for (int64_t t = 0; t < steps; t++) {
        LVal c = lv_tensor(carries[t]);
        level[t] = build_op(L, call, OP_reshape, 1, &c, &reshape);
        if (level[t].kind == LV_ERROR) return lv_error;
    }
    Value concat = {.opt = {0}};
    for (int64_t n = steps; n > 1; n = (n + 1) / 2)
        for (int64_t i = 0; i < n; i += 2) {
            level[i / 2] =
                i + 1 < n ? build_op(L, call, OP_concat, 2, &level[i], &concat) : level[i];
            if (level[i / 2].kind == LV_ERROR) return lv_error;
        }
    return level[0];
}

/* One step of the scan: f(carry, xs[t], ...), named @t. */
static LVal scan_step(Lower *L, Node *call, Node *fn, LVal carry, const LVal *seqs, int64_t t) {
    int n = fn->params.n;
    Node **given = xalloc(sizeof *given * (size_t)n);
    LVal *vals = xalloc(sizeof *vals * (size_t)n);
    const char *outer_step = L->step;
    L->step = xprintf("%s@%lld", outer_step ? outer_step : "", (long long)t);
    given[0] = call->args.v[1];
    vals[0] = carry;
    for (int k = 1; k < n; k++) {
        given[k] = call->args.v[k + 1];
        const char *name = xprintf("%s.%s%s", L->binding, fn->params.v[k]->str, L->step);
        vals[k] = sequence_row(L, given[k], seqs[k], t, name);
    }
    LVal next = inline_fn(L, call, fn, given, vals, t + 1);
    if (next.kind == LV_TENSOR) name_value(L, next.v, xprintf("%s%s", L->binding, L->step), true);
    L->step = outer_step;
    return next;
}

/* In the one-step form, a scan over the input's characters runs one step, from the carry
 * the previous call left (docs/codegen.md, "The one-step form"): its first carry is read
 * from an input, `h.carry`, which the runtime fills; init stays a value of the graph, so
 * that the runtime can start from it. NULL (after an error) when the scan cannot be run
 * that way. */
static Carry *carry_from_state(Lower *L, Node *call, LVal init, int64_t steps) {
    if (steps != 1) {
        lower_error(L, call->args.v[2]->loc,
                    "with one character of input this scan would run %lld steps, not one: "
                    "it does not step along the input's characters",
                    (long long)steps);
        return NULL;
    }
    Value *first = as_value(L, init);
    if (first->varying) {
        lower_error(L, call->args.v[1]->loc,
                    "the scan's first carry depends on the input, so it is no state to carry "
                    "from one character to the next");
        return NULL;
    }
    vec_push(&L->g->carries, ((Carry){0}));
    Carry *c = &L->g->carries.v[L->g->carries.n - 1];
    c->name = unique_name(L, xprintf("%s.carry", L->binding));
    c->in = ir_leaf(L->g, OP_input, c->name, first->shape, true);
    c->in->loc = call->loc;
    c->init = first;
    vec_push(&L->g->inputs, c->in);
    return c;
}

static LVal call_scan(Lower *L, Scope *s, Node *call) {
    for (int i = 0; i < call->args.n; i++)
        if (call->args.v[i]->kind == ND_KWARG) {
            lower_error(L, call->args.v[i]->loc, "scan has no argument named %s",
                        call->args.v[i]->str);
            return lv_error;
        }
    if (call->args.n < 3) {
        lower_error(L, call->loc,
                    "scan takes a fn, the first carry and at least one sequence: "
                    "scan(f, init, xs), got %d argument%s",
                    call->args.n, call->args.n == 1 ? "" : "s");
        return lv_error;
    }
    int sequences = call->args.n - 2;
    Node *fn = scan_fn(L, call, sequences);
    if (!fn || call_too_deep(L, call, fn)) return lv_error;
    LVal *seqs = xalloc(sizeof *seqs * (size_t)(sequences + 1));
    LVal carry = eval(L, s, call->args.v[1]);
    if (carry.kind == LV_ERROR) return lv_error;
    int64_t steps = 0;
    for (int k = 1; k <= sequences; k++) {
        seqs[k] = eval(L, s, call->args.v[k + 1]);
        if (!scan_sequence(L, call->args.v[k + 1], seqs[k], &steps)) return lv_error;
    }
    const char *outer_binding = L->binding;
    if (!L->binding) L->binding = "scan"; /* (a backward rule's scan) */
    Carry *state = NULL;
    if (L->step_form && !L->scan && seqs[1].v->varying) {
        state = carry_from_state(L, call, carry, steps);
        if (!state) return lv_error;
        carry = lv_tensor(state->in);
    }
    LVal init = carry;
    Value **carries = xalloc(sizeof *carries * (size_t)steps);
    ScanSite site = {.parent = L->scan, .id = ++L->t->n_scans, .outside = L->call_site};
    L->scan = &site;
    for (int64_t t = 0; t < steps; t++) {
        int64_t before = L->g->exprs_lowered;
        site.step = t;
        site.next = 0;
        carry = scan_step(L, call, fn, carry, seqs, t);
        if (!same_carry(L, call, fn, init, carry) ||
            (t == 0 && !steps_fit(L, call, fn, steps, L->g->exprs_lowered - before))) {
            carry = lv_error;
            break;
        }
        carries[t] = as_value(L, carry);
    }
    L->scan = site.parent;
    L->binding = outer_binding;
    if (carry.kind == LV_ERROR) return lv_error;
    if (state) state->out = carries[steps - 1];
    LVal stacked = stack_carries(L, call, carries, steps);
    if (stacked.kind == LV_TENSOR) {
        ScanResult *r = xalloc(sizeof *r);
        *r = (ScanResult){steps, carries};
        ptrmap_put(&L->t->scans, stacked.v, r);
    }
    return stacked;
}

/* Whether every option the call names is one of op's. */
static bool takes_named_options(Op op, const Node *call) {
    for (int i = 0; i < call->args.n; i++)
        if (call->args.v[i]->kind == ND_KWARG && option_slot(op, call->args.v[i], 0) < 0)
            return false;
    return true;
}

/* The row of ops.def a built-in call means: a name may have several (ops.def, "reductions
 * along one axis"), and the call takes the first whose options include every option it
 * names: max(a, b) is the elementwise max, max(x, axis = 1) the reduction. OP_COUNT when
 * the name is no built-in's. */
static Op builtin_row(const Node *call) {
    Op first = op_by_call(call->str);
    for (int op = first; op < OP_COUNT; op++)
        if (op_info[op].call && !strcmp(op_info[op].call, call->str) &&
            takes_named_options((Op)op, call))
            return (Op)op;
    return first;
}

/* zeros(3, 4), ones(C, 1, 1): the constant broadcast to the shape given, which does not
 * vary and has no gradient. */
static LVal constant_tensor(Lower *L, Scope *s, Node *call, double value) {
    if (call->args.n == 0 || call->args.n > MAX_RANK) {
        lower_error(L, call->loc, "%s takes the shape: 1 to %d dimensions, as %s(3, 4)", call->str,
                    MAX_RANK, call->str);
        return lv_error;
    }
    Shape shape = shape_scalar();
    for (int i = 0; i < call->args.n; i++) {
        Node *a = call->args.v[i];
        if (a->kind == ND_KWARG) {
            lower_error(L, a->loc, "%s takes the shape's dimensions, not %s", call->str, a->str);
            return lv_error;
        }
        if (!positive_dim(L, s, a, &shape.dim[shape.rank++])) return lv_error;
    }
    Value *c = ir_const(L->g, value);
    bool varying;
    const char *err = ir_infer_shape(OP_broadcast, 1, &c, NULL, &shape, &varying);
    if (err) {
        lower_error(L, call->loc, "%s", err);
        return lv_error;
    }
    return lv_tensor(tag(L, ir_inst(L->g, OP_broadcast, 1, &c, shape, varying)));
}

/* An unknown fn is reported at its first call only; the hint offers the nearest of the
 * program's fns and the built-ins. */
static void unknown_fn(Lower *L, Node *call) {
    const char *key = xprintf("%s()", call->str);
    if (strmap_get(&L->t->unknown, key)) return;
    strmap_put(&L->t->unknown, key, call);
    lower_error(L, call->loc, "unknown function %s", call->str);
    if (!strcmp(call->str, "dense") || !strcmp(call->str, "mse") || !strcmp(call->str, "bce")) {
        diag_hint("%s is in the standard library: add `import \"nn\"` at the top", call->str);
        return;
    }
    Suggestion near = suggest_start(call->str);
    for (int i = 0; i < L->prog->fns.n; i++) suggest_consider(&near, L->prog->fns.v[i]->str);
    for (int op = 0; op < OP_COUNT; op++) suggest_consider(&near, op_info[op].call);
    suggest_consider(&near, "zeros");
    suggest_consider(&near, "ones");
    suggest_consider(&near, "scan");
    diag_did_you_mean(&near);
}

static LVal eval_call(Lower *L, Scope *s, Node *call) {
    if (!strcmp(call->str, "scan")) return call_scan(L, s, call);
    double constant;
    if (constant_builtin(call->str, &constant)) return constant_tensor(L, s, call, constant);
    Op op = builtin_row(call);
    if (op != OP_COUNT) return call_builtin(L, s, call, op);
    Node *fn = find_fn(L, call->str);
    if (fn) return call_fn(L, s, call, fn);
    unknown_fn(L, call);
    return lv_error;
}

/* "f1 -> f2 -> f3": the fns of the calls being inlined, the middle left out when long. */
static const char *call_chain(Lower *L) {
    StrBuf b = {0};
    for (int i = 0; i < L->calls.n; i++) {
        if (L->calls.n > 12 && i == 5) {
            sb_printf(&b, " -> ... (%d more)", L->calls.n - 10);
            i = L->calls.n - 5;
        }
        sb_printf(&b, "%s%s", i ? " -> " : "", L->calls.v[i]->str);
    }
    return sb_str(&b);
}

/* The fn whose body has been inlined the most times so far. */
static Node *most_inlined(Lower *L, intptr_t *times) {
    Node *fn = NULL;
    *times = 0;
    for (size_t i = 0; i < L->t->inlined.cap; i++) {
        HashEntry *e = &L->t->inlined.slots[i];
        if (e->key && (intptr_t)e->value > *times) {
            fn = (Node *)e->key;
            *times = (intptr_t)e->value;
        }
    }
    return fn;
}

/* Every call is inlined, so a fn that calls the next one twice doubles the program at
 * each level: counting the expressions evaluated bounds the time and memory of lowering
 * (and of every stage after it) whatever the fns do. */
static bool within_size_limit(Lower *L, Node *e) {
    nnc_stats.exprs_lowered++;
    if (++L->g->exprs_lowered <= NNC_MAX_INLINED_EXPRS) return true;
    if (L->g->too_large) return false;
    L->g->too_large = true;
    const char *chain = call_chain(L);
    lower_error(L, e->loc,
                "the model is too large once its fns are inlined: more than %d expressions%s%s",
                NNC_MAX_INLINED_EXPRS, *chain ? ", in the calls " : "", chain);
    intptr_t times;
    Node *fn = most_inlined(L, &times);
    if (fn)
        diag_hint("fn %s was inlined %ld times: each call copies the fn's body, so a fn that "
                  "calls another twice doubles it; compute a value once and reuse its name",
                  fn->str, (long)times);
    return false;
}

static LVal eval(Lower *L, Scope *s, Node *e) {
    if (!within_size_limit(L, e)) return lv_error;
    Node *outer_site = L->site;
    if (L->calls.n == 0) L->site = e; /* inside a fn, the outermost call stays the site */
    LVal r = lv_error;
    switch (e->kind) {
    case ND_NUM: r = (LVal){LV_NUM, e->num, NULL, ast_source_text(e), true}; break;
    case ND_NAME: {
        Binding *b = lookup(s, e->str);
        /* a name bound to a number prints as the number's text; pi unless something is
         * bound to that name */
        if (b)
            r = b->val, r.literal = false;
        else if (!strcmp(e->str, "pi"))
            r = (LVal){LV_NUM, M_PI, NULL, "pi", true};
        else
            unknown_name(L, s, e);
        break;
    }
    case ND_BINOP: r = eval_binop(L, s, e); break;
    case ND_NEG: r = eval_neg(L, s, e); break;
    case ND_CALL: r = eval_call(L, s, e); break;
    case ND_INDEX: r = eval_index(L, s, e); break;
    case ND_SLICE: lower_error(L, e->loc, "a slice is written only inside brackets"); break;
    case ND_STR: lower_error(L, e->loc, "a string is not a value here"); break;
    case ND_RANGE: lower_error(L, e->loc, "a range is not a value here"); break;
    default: lower_error(L, e->loc, "this is not an expression"); break;
    }
    L->site = outer_site;
    return r;
}

/* ---- statements ---- */

static bool init_number(Node *e, int index, double *out) {
    if (e->kind != ND_CALL || index >= e->args.n) return false;
    Node *a = e->args.v[index];
    if (a->kind == ND_NUM)
        *out = a->num;
    else if (a->kind == ND_NEG && a->lhs->kind == ND_NUM)
        *out = -a->lhs->num;
    else
        return false;
    return true;
}

/* glorot | he | zeros | ones | NUMBER | normal(std) | normal(mean, std) | uniform(a, b) */
static bool read_init(Lower *L, Scope *s, Node *e, ParamInit *init) {
    static const struct {
        const char *name;
        InitKind kind;
    } named[] = {
        {"glorot", INIT_GLOROT}, {"he", INIT_HE}, {"zeros", INIT_ZEROS}, {"ones", INIT_ONES}};
    *init = (ParamInit){INIT_GLOROT, 0, 0};
    if (!e) return true;
    for (size_t i = 0; e->kind == ND_NAME && i < sizeof named / sizeof *named; i++)
        if (!strcmp(e->str, named[i].name)) {
            init->kind = named[i].kind;
            return true;
        }
    if (e->kind == ND_CALL && !strcmp(e->str, "normal")) {
        init->kind = INIT_NORMAL;
        if (e->args.n == 1 && init_number(e, 0, &init->b)) return true;
        if (e->args.n == 2 && init_number(e, 0, &init->a) && init_number(e, 1, &init->b))
            return true;
    } else if (e->kind == ND_CALL && !strcmp(e->str, "uniform")) {
        init->kind = INIT_UNIFORM;
        if (e->args.n == 2 && init_number(e, 0, &init->a) && init_number(e, 1, &init->b) &&
            init->a < init->b)
            return true;
    } else if (e->kind != ND_CALL) {
        int errors = diag_error_count();
        LVal x = eval(L, s, e);
        if (x.kind == LV_NUM) {
            init->kind = INIT_CONST;
            init->a = x.num;
            return true;
        }
        if (diag_error_count() != errors) return false;
    }
    lower_error(L, e->loc,
                "a param starts as glorot, he, zeros, ones, a number, normal(std), "
                "normal(mean, std) or uniform(low, high)");
    return false;
}

static bool read_dims(Lower *L, Scope *s, Node *decl, Shape *shape) {
    *shape = shape_scalar();
    if (decl->dims.n > MAX_RANK) {
        lower_error(L, decl->loc, "at most %d dimensions are supported", MAX_RANK);
        return false;
    }
    for (int i = 0; i < decl->dims.n; i++)
        if (!positive_dim(L, s, decl->dims.v[i], &shape->dim[shape->rank++])) return false;
    if (!shape_fits(*shape)) {
        lower_error(L, decl->loc, "%s%s has more than %lld elements, the most a tensor may have",
                    decl->str, shape_str(*shape), (long long)NNC_MAX_TENSOR_ELEMS);
        return false;
    }
    return true;
}

/* The name a fn's declaration gets in the IR: "h.W" for `param W` in `h = dense(...)`. */
static const char *declared_name(Lower *L, Node *st, bool model_level) {
    const char *base = model_level || !L->prefix ? st->str : xprintf("%s.%s", L->prefix, st->str);
    return unique_name(L, base);
}

/* Not inside a backward rule: autodiff is running, and the params and states (and the
 * params' gradients) are counted already. */
static bool can_declare(Lower *L, Scope *s, Node *st, const char *what) {
    if (!L->in_rule) return true;
    lower_error(L, st->loc, "fn %s declares %s %s, so a backward rule cannot call it",
                L->calls.v[L->calls.n - 1]->str, what, st->str);
    bind_failed(s, st);
    return false;
}

/* The leaf a param or state declaration makes, named and bound. */
static Value *declared_leaf(Lower *L, Scope *s, Node *st, bool model_level, Op op, Shape shape) {
    Value *v = ir_leaf(L->g, op, declared_name(L, st, model_level), shape, false);
    v->loc = st->loc;
    v->site = L->call_site;
    bind(L, s, st, st->str, lv_tensor(v));
    return v;
}

/* The param a declaration makes or, in a scan's step after the first, the one the first
 * step's same declaration made: the steps of a scan share their weights. Every step runs
 * the same fn on operands of the same shapes, so it declares the same params in the same
 * order, and its k-th declaration takes step 0's k-th param. Step 0 of a scan inside a
 * later step of another takes its params from the outer scan the same way. */
static Value *shared_param(Lower *L, ScanSite *site, Node *st, bool model_level, Shape shape,
                           ParamInit init) {
    if (site && site->step > 0) {
        Value *p = site->next < site->params.n ? site->params.v[site->next++] : NULL;
        if (!p || !shape_eq(p->shape, shape)) {
            lower_error(L, st->loc,
                        "internal error: step %lld of a scan declares params its "
                        "first step did not",
                        (long long)site->step);
            return NULL;
        }
        return p;
    }
    Value *p;
    if (site) {
        p = shared_param(L, site->parent, st, model_level, shape, init);
        if (p) vec_push(&site->params, p);
        return p;
    }
    p = ir_leaf(L->g, OP_param, declared_name(L, st, model_level), shape, false);
    p->loc = st->loc;
    p->site = L->scan ? outermost_scan(L->scan)->outside : L->call_site; /* steps share it */
    vec_push(&L->g->params, p);
    vec_push(&L->g->param_inits, init);
    return p;
}

static void lower_param(Lower *L, Scope *s, Node *st, bool model_level) {
    if (!can_declare(L, s, st, "param")) return;
    Shape shape;
    ParamInit init;
    Value *p = NULL;
    if (read_dims(L, s, st, &shape) && read_init(L, s, st->init, &init))
        p = shared_param(L, L->scan, st, model_level, shape, init);
    if (p)
        bind(L, s, st, st->str, lv_tensor(p));
    else
        bind_failed(s, st);
}

/* ---- state: declared like a param, written by a training step's update ---- */

/* zeros (the default), ones or a number: a state draws nothing, so adding one leaves the
 * params' random start as it was, and a weights file without it can load. */
static bool read_state_init(Lower *L, Scope *s, Node *e, ParamInit *init) {
    if (!e) return true;
    if (e->kind == ND_NAME && (!strcmp(e->str, "zeros") || !strcmp(e->str, "ones"))) {
        init->kind = e->str[0] == 'z' ? INIT_ZEROS : INIT_ONES;
        return true;
    }
    int errors = diag_error_count();
    bool unbound = e->kind == ND_NAME && !lookup(s, e->str); /* glorot, he */
    LVal x = e->kind == ND_CALL || unbound ? lv_error : eval(L, s, e);
    if (x.kind == LV_NUM) {
        *init = (ParamInit){INIT_CONST, x.num, 0};
        return true;
    }
    if (diag_error_count() == errors)
        lower_error(L, e->loc, "a state starts as zeros, ones or a number");
    return false;
}

static void lower_state(Lower *L, Scope *s, Node *st, bool model_level) {
    if (!can_declare(L, s, st, "state")) return;
    if (L->scan) { /* one update per state and training step: which step's would it be? */
        Node *call = L->calls.v[L->calls.n - 1]; /* f's body is inlined under scan(f, ...) */
        const char *fn = strcmp(call->str, "scan") ? call->str : call->args.v[0]->str;
        lower_error(L, st->loc, "fn %s declares state %s, so a scan cannot step it", fn, st->str);
        diag_hint("a scan's steps share their params; a state (batch norm's running "
                  "statistics) would need one update per step");
        bind_failed(s, st);
        return;
    }
    Shape shape;
    ParamInit init = {INIT_ZEROS, 0, 0};
    if (!read_dims(L, s, st, &shape) || !read_state_init(L, s, st->init, &init)) {
        bind_failed(s, st);
        return;
    }
    vec_push(&L->g->states, declared_leaf(L, s, st, model_level, OP_state, shape));
    vec_push(&L->g->state_inits, init);
    vec_push(&L->g->state_updates, NULL);
}

static int state_index(const Graph *g, const Value *v) {
    for (int i = 0; i < g->states.n; i++)
        if (g->states.v[i] == v) return i;
    return -1;
}

/* update NAME = e: e, the same for every sample and of the state's shape (or broadcast to
 * it), is what a training step writes into the state once its pass is done. */
static void lower_update(Lower *L, Scope *s, Node *st) {
    Binding *b = lookup_here(s, st->str);
    LVal val = eval(L, s, st->init);
    if (!b || b->val.kind != LV_TENSOR || val.kind == LV_ERROR) return; /* reported */
    Value *state = b->val.v;
    int at = state_index(L->g, state);
    if (at < 0) return; /* sema: not a state */
    Value *v = as_value(L, val);
    if (v->varying) {
        lower_error(L, st->init->start,
                    "the update of state %s varies per sample; a state holds one value for "
                    "the whole batch",
                    state->name);
        diag_hint("reduce it over the batch first, such as batch_mean(...)");
        return;
    }
    if (!shape_is_suffix(v->shape, state->shape)) {
        lower_error(L, st->init->start, "the update of state %s%s has shape %s", state->name,
                    shape_str(state->shape), shape_str(v->shape));
        return;
    }
    /* A param or a state as it stands is copied when the pass reads it: the step changes
     * them before the states are written (simplify keeps the copy, simplify.c). */
    bool leaf = op_info[v->op].cls == OPC_SRC && v->op != OP_const;
    if (leaf || !shape_eq(v->shape, state->shape)) {
        v = ir_broadcast(L->g, v, state->shape);
        v->loc = st->init->start;
        v->what = ast_source_text(st->init);
    }
    if (op_info[v->op].cls != OPC_SRC && !v->name)
        v->name = unique_name(L, xprintf("%s.update", state->name));
    L->g->state_updates.v[at] = v;
}

static void lower_io(Lower *L, Scope *s, Node *st) {
    Shape shape;
    if (!read_dims(L, s, st, &shape)) {
        bind_failed(s, st);
        return;
    }
    bool input = st->kind == ND_INPUT;
    if (L->step_form && shape.rank > 0) shape.dim[0] = 1; /* a text window of one character */
    Value *v = ir_leaf(L->g, input ? OP_input : OP_target, unique_name(L, st->str), shape, true);
    v->loc = st->loc;
    vec_push(input ? &L->g->inputs : &L->g->targets, v);
    bind(L, s, st, st->str, lv_tensor(v));
}

static void lower_bind(Lower *L, Scope *s, Node *st, bool model_level) {
    const char *outer_prefix = L->prefix, *outer_binding = L->binding;
    if (model_level) L->prefix = st->str;
    /* h.z@3: the local z of a fn inlined in binding h, in step 3 of a scan */
    const char *name =
        model_level ? st->str : xprintf("%s.%s%s", L->prefix, st->str, L->step ? L->step : "");
    L->binding = name;
    LVal val = eval(L, s, st->init);
    L->prefix = outer_prefix;
    L->binding = outer_binding;
    if (val.kind == LV_ERROR) {
        bind_failed(s, st);
        return;
    }
    if (val.kind == LV_TENSOR) name_value(L, val.v, name, model_level);
    if (!bind(L, s, st, st->str, val)) return;
    if (model_level && st->is_output) {
        if (val.kind != LV_TENSOR)
            lower_error(L, st->loc, "the output must be a tensor");
        else if (L->g->output)
            lower_error(L, st->loc, "a model has one output");
        else
            L->g->output = val.v;
    }
}

static void lower_stmt(Lower *L, Scope *s, Node *st, bool model_level) {
    switch (st->kind) {
    case ND_PARAM: lower_param(L, s, st, model_level); break;
    case ND_STATE: lower_state(L, s, st, model_level); break;
    case ND_UPDATE: lower_update(L, s, st); break;
    case ND_INPUT:
    case ND_TARGET: lower_io(L, s, st); break;
    case ND_BIND: lower_bind(L, s, st, model_level); break;
    default: break; /* sema has reported anything else */
    }
}

/* ---- the model ---- */

/* Marks (in aux) every value that depends on a target. */
static void mark_target_dependence(Graph *g) {
    for (int i = 0; i < g->insts.n; i++) {
        Value *v = g->insts.v[i];
        v->aux = v->op == OP_target;
        for (int j = 0; j < v->nargs; j++) v->aux |= v->args[j]->aux;
    }
}

/* Without `output`, predict prints the last model binding that does not use a target. */
static Value *default_output(Lower *L, Scope *model_scope) {
    Graph *g = L->g;
    if (g->inputs.n == 0) return g->loss;
    mark_target_dependence(g);
    for (int i = model_scope->names.n - 1; i >= 0; i--) {
        Binding *b = &model_scope->names.v[i];
        if (b->decl->kind == ND_BIND && b->val.kind == LV_TENSOR && !b->val.v->aux &&
            b->val.v->varying)
            return b->val.v;
    }
    return g->inputs.v[0];
}

/* An unnamed slice of a named value is called after it and its subscript, h@0[0] or
 * h.a@1[6:] (whole trailing axes left out), so that --emit=grad and nnc explain read
 * ∂cost/∂h.a@1[6:], a piece of a named vector, rather than ∂cost/∂t41: the gate
 * pre-activations of an LSTM step, the rows of its carry. Done after lowering, so that
 * every name a binding gave stays. */
static void name_slices(Lower *L) {
    for (int i = 0; i < L->g->insts.n; i++) {
        Value *v = L->g->insts.v[i];
        if (v->op != OP_slice || v->name || !v->args[0]->name) continue;
        char *sub = xprintf("%s", ir_layout_str(v));
        for (size_t n = strlen(sub); n > 4 && !strcmp(sub + n - 4, ", :]"); n -= 3)
            strcpy(sub + n - 4, "]");
        v->name = unique_name(L, xprintf("%s%s", v->args[0]->name, sub));
    }
}

/* The model's bindings to tensors, which predict can print by name. */
static void collect_bindings(Graph *g, const Scope *model_scope) {
    for (int i = 0; i < model_scope->names.n; i++) {
        const Binding *b = &model_scope->names.v[i];
        if (b->decl->kind == ND_BIND && b->val.kind == LV_TENSOR)
            vec_push(&g->bindings, ((NamedValue){b->name, b->val.v}));
    }
}

static void check_loss(Lower *L, Scope *s) {
    Binding *b = lookup(s, "loss");
    if (!b || b->val.kind == LV_ERROR) return;
    if (b->val.kind == LV_NUM) {
        lower_error(L, b->decl->loc, "the loss is a constant: nothing can be learned from it");
        return;
    }
    Value *loss = b->val.v;
    if (loss->shape.rank != 0) {
        lower_error(L, b->decl->loc, "the loss must be one number per sample, got shape %s",
                    shape_str(loss->shape));
        diag_hint("reduce it with sum(...) or mean(...)");
        return;
    }
    if (op_info[loss->op].cls == OPC_SRC) {
        lower_error(L, b->decl->loc, "the loss is %s itself; it must be computed from the params",
                    ir_value_ref(loss));
        return;
    }
    L->g->loss = loss;
}

static Graph *lower_graph(Program *prog, bool step_form) {
    int errors = diag_error_count();
    Lower L = {.prog = prog,
               .g = graph_new(prog->model->str),
               .t = xalloc(sizeof(Tables)),
               .step_form = step_form};
    L.g->source_path = prog->path;
    Scope model_scope = {0};
    for (int i = 0; i < prog->model->body.n; i++) {
        L.site = NULL;
        lower_stmt(&L, &model_scope, prog->model->body.v[i], true);
    }
    check_loss(&L, &model_scope);
    if (diag_error_count() != errors) return NULL;
    if (!L.g->output) L.g->output = default_output(&L, &model_scope);
    name_slices(&L);
    collect_bindings(L.g, &model_scope);
    L.g->n_forward = L.g->insts.n;
    return L.g;
}

Graph *lower_model(Program *prog) {
    return lower_graph(prog, false);
}

/* ---- the one-step form (docs/codegen.md, "The one-step form") ---- */

/* Why the one-step form of the lowered model `full` cannot be made, before lowering it. */
static const char *step_form_refused(const Graph *full) {
    const TrainSpec *ts = &full->train;
    if (!ts->data_kind || strcmp(ts->data_kind, "text") != 0)
        return "it does not read text data (data = text(...) in its train block)";
    if (full->inputs.n != 1 || full->inputs.v[0]->shape.rank == 0)
        return "it has no sequence input";
    return NULL;
}

/* Why the lowered one-step graph `step` does not serve `sample`, or NULL when it does. */
static const char *step_form_unusable(const Graph *full, const Graph *step) {
    if (step->carries.n == 0)
        return "it has no scan over its input, so no state to carry from one character to the "
               "next";
    int64_t numel = shape_numel(step->output->shape);
    if (!step->output->varying || numel != full->train.vocab)
        return xprintf("its output for one character has shape %s, not one score for each of "
                       "the %lld characters of its vocabulary",
                       shape_str(step->output->shape), (long long)full->train.vocab);
    return NULL;
}

Graph *lower_step_form(Program *prog, const Graph *full, const char **why) {
    *why = step_form_refused(full);
    if (*why) return NULL;
    diag_hold(); /* a model without a step form compiles as before: its errors are not ours */
    Graph *step = lower_graph(prog, true);
    const char *error = diag_release();
    if (!step) {
        *why = xprintf("its layers do not run on one character at a time: %s",
                       error ? error : "(no message)");
        return NULL;
    }
    *why = step_form_unusable(full, step);
    if (*why) return NULL;
    step->bindings.n = 0; /* what the step leaves for the runtime: each carry, and its start */
    for (int i = 0; i < step->carries.n; i++) {
        Carry *c = &step->carries.v[i];
        vec_push(&step->bindings, ((NamedValue){xprintf("%s.out", c->name), c->out}));
        vec_push(&step->bindings, ((NamedValue){xprintf("%s.init", c->name), c->init}));
    }
    return step;
}
