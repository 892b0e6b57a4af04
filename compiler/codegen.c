/* codegen.c: the planned graph as LLVM IR through the LLVM C API; then verification, the
 * new pass manager at the requested level for the host CPU, and an object file.
 *
 * The module holds:
 *   nnc.predict, nnc.forward, nnc.grad, nnc.sgd_step   the entry points of runtime/nnrt.h,
 *       each the slice of the plan's steps that its roots need, in schedule order;
 *   nnc.loop.N, nnc.<op>.ID                            one internal function per fused
 *       elementwise loop, row op and reduction. Their pointer parameters are noalias (the
 *       plan never gives an output the memory of a live input), so LLVM vectorises them
 *       without runtime alias checks;
 *   nnc.sgd.update, nnc.sgd.apply                      the optimizer's update loops;
 *   nnrt_model_desc                                    the descriptor.
 * Matrix products call cblas_sgemm / cblas_dgemm from the entry points. docs/codegen.md
 * describes the memory plan, the fusion rules, the BLAS mapping and the fused SGD update. */
#include "backend.h"
#include "llvm_compat.h"
#include "nnrt.h"
#include "plan.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/DebugInfo.h>
#include <llvm-c/Support.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* From cblas.h (OpenBLAS, LP64: blasint is int). */
enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef enum Entry { ENTRY_PREDICT, ENTRY_FORWARD, ENTRY_GRAD, ENTRY_SGD_STEP, ENTRY_COUNT } Entry;

static const char *const entry_names[ENTRY_COUNT] = {"predict", "forward", "grad", "sgd_step"};

/* One compiled version of a fused loop: entry points that need different members of the
 * same step get different functions. */
typedef struct LoopVariant {
    struct LoopVariant *next;
    const char *members; /* the member ids, "12,13,15" */
    LLVMValueRef fn;
} LoopVariant;

typedef struct Codegen {
    Graph *g;
    const Plan *plan;
    bool f64;
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMTypeRef elem, i1, i8, i32, i64, f64_type, void_type, elem_ptr, i8_ptr;
    LLVMTypeRef ctx_type, entry_type, sgd_entry_type;
    unsigned loop_md_kind;
    LoopVariant **loop_variants; /* per step */
    LLVMValueRef *op_fns;        /* per step: its reduction or row op function */
    LLVMValueRef sgd_update_fn, sgd_apply_fn;

    /* The entry point being emitted. */
    Entry entry;
    bool *needed; /* by Value.id */
    LLVMValueRef fixed, varying, batch, batch_cap, inv_batch, lr, momentum;
    LLVMValueRef training, noise_seed; /* nnrt_ctx's, for dropout */

    struct FusedLoop *loop; /* the fused loop being emitted: dropout reads its masks there */
} Codegen;

static void internal_error(const char *what) {
    fprintf(stderr, "nnc: internal error: %s\n", what);
    abort();
}

/* ---- small builders ---- */

static LLVMValueRef int64_const(Codegen *cg, int64_t n) {
    return LLVMConstInt(cg->i64, (unsigned long long)n, true);
}

static LLVMValueRef elem_const(Codegen *cg, double x) {
    return LLVMConstReal(cg->elem, x);
}

static unsigned elem_bytes(const Codegen *cg) {
    return cg->f64 ? 8 : 4;
}

static LLVMValueRef mul64(Codegen *cg, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildNSWMul(cg->b, a, b, "");
}

static LLVMValueRef element_ptr(Codegen *cg, LLVMValueRef base, LLVMValueRef index) {
    return LLVMBuildInBoundsGEP2(cg->b, cg->elem, base, &index, 1, "");
}

static LLVMValueRef load_at(Codegen *cg, LLVMValueRef base, LLVMValueRef index) {
    LLVMValueRef v = LLVMBuildLoad2(cg->b, cg->elem, element_ptr(cg, base, index), "");
    LLVMSetAlignment(v, elem_bytes(cg));
    return v;
}

static void store_at(Codegen *cg, LLVMValueRef base, LLVMValueRef index, LLVMValueRef value) {
    LLVMValueRef st = LLVMBuildStore(cg->b, value, element_ptr(cg, base, index));
    LLVMSetAlignment(st, elem_bytes(cg));
}

static LLVMValueRef fp_add(Codegen *cg, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFAdd(cg->b, a, b, "");
}
static LLVMValueRef fp_sub(Codegen *cg, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFSub(cg->b, a, b, "");
}
static LLVMValueRef fp_mul(Codegen *cg, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFMul(cg->b, a, b, "");
}
static LLVMValueRef fp_div(Codegen *cg, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFDiv(cg->b, a, b, "");
}
static LLVMValueRef select_if(Codegen *cg, LLVMRealPredicate pred, LLVMValueRef a, LLVMValueRef b,
                              LLVMValueRef then, LLVMValueRef otherwise) {
    return LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, pred, a, b, ""), then, otherwise, "");
}

static LLVMValueRef current_function(Codegen *cg) {
    return LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
}

static LLVMValueRef call(Codegen *cg, LLVMValueRef fn, LLVMValueRef *args, unsigned n) {
    return LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(fn), fn, args, n, "");
}

static LLVMValueRef declare_function(Codegen *cg, const char *name, LLVMTypeRef ret,
                                     LLVMTypeRef *params, unsigned n) {
    LLVMValueRef fn = LLVMGetNamedFunction(cg->mod, name);
    if (!fn) fn = LLVMAddFunction(cg->mod, name, LLVMFunctionType(ret, params, n, false));
    return fn;
}

/* llvm.<name>.f32 / .f64 with one or two operands: exp, log, sqrt, fabs, sin, cos, pow,
 * copysign. The loop vectoriser maps exp, log, sin, cos and pow to glibc's libmvec. */
static LLVMValueRef math_call(Codegen *cg, const char *name, LLVMValueRef *x, unsigned n) {
    const char *full = xprintf("llvm.%s.%s", name, cg->f64 ? "f64" : "f32");
    LLVMTypeRef params[2] = {cg->elem, cg->elem};
    return call(cg, declare_function(cg, full, cg->elem, params, n), x, n);
}
static LLVMValueRef math1(Codegen *cg, const char *name, LLVMValueRef x) {
    return math_call(cg, name, &x, 1);
}
static LLVMValueRef math2(Codegen *cg, const char *name, LLVMValueRef x, LLVMValueRef y) {
    LLVMValueRef xy[2] = {x, y};
    return math_call(cg, name, xy, 2);
}

static void add_attribute(Codegen *cg, LLVMValueRef fn, unsigned index, const char *name) {
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, index, LLVMCreateEnumAttribute(cg->ctx, kind, 0));
}

/* An internal function with noalias pointer parameters; the builder is left in its entry
 * block. */
static LLVMValueRef new_helper_function(Codegen *cg, const char *name, LLVMTypeRef *params,
                                        unsigned n) {
    LLVMValueRef fn =
        LLVMAddFunction(cg->mod, name, LLVMFunctionType(cg->void_type, params, n, false));
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    add_attribute(cg, fn, (unsigned)LLVMAttributeFunctionIndex, "nounwind");
    for (unsigned i = 0; i < n; i++)
        if (LLVMGetTypeKind(params[i]) == LLVMPointerTypeKind)
            add_attribute(cg, fn, i + 1, "noalias");
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, fn, "entry"));
    return fn;
}

/* A stack slot in the entry block (mem2reg turns it into a register). */
static LLVMValueRef entry_alloca(Codegen *cg) {
    LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(current_function(cg));
    LLVMBuilderRef at = LLVMCreateBuilderInContext(cg->ctx);
    LLVMValueRef first = LLVMGetFirstInstruction(entry);
    if (first)
        LLVMPositionBuilderBefore(at, first);
    else
        LLVMPositionBuilderAtEnd(at, entry);
    LLVMValueRef slot = LLVMBuildAlloca(at, cg->elem, "acc");
    LLVMDisposeBuilder(at);
    return slot;
}

/* ---- loops ----
 * for (i = 0; i < count; i++). A loop whose count is the constant 1 emits no loop at all;
 * its index is the constant 0. */

typedef struct Loop {
    LLVMBasicBlockRef header, exit;
    LLVMValueRef index;
    bool trivial;
} Loop;

static LLVMValueRef loop_begin(Codegen *cg, Loop *l, LLVMValueRef count) {
    memset(l, 0, sizeof *l);
    if (LLVMIsAConstantInt(count) && LLVMConstIntGetSExtValue(count) == 1) {
        l->trivial = true;
        return int64_const(cg, 0);
    }
    LLVMValueRef fn = current_function(cg);
    LLVMBasicBlockRef before = LLVMGetInsertBlock(cg->b);
    l->header = LLVMAppendBasicBlockInContext(cg->ctx, fn, "loop");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(cg->ctx, fn, "body");
    l->exit = LLVMAppendBasicBlockInContext(cg->ctx, fn, "done");
    LLVMBuildBr(cg->b, l->header);
    LLVMPositionBuilderAtEnd(cg->b, l->header);
    l->index = LLVMBuildPhi(cg->b, cg->i64, "i");
    LLVMValueRef zero = int64_const(cg, 0);
    LLVMAddIncoming(l->index, &zero, &before, 1);
    LLVMValueRef more = LLVMBuildICmp(cg->b, LLVMIntSLT, l->index, count, "");
    LLVMBuildCondBr(cg->b, more, body, l->exit);
    LLVMPositionBuilderAtEnd(cg->b, body);
    return l->index;
}

/* The loop id !{self, !{"llvm.loop.vectorize.enable", true}}: besides asking for
 * vectorisation, it lets the vectoriser reorder a floating-point reduction (on LLVM 14,
 * whose C API cannot set fast-math flags, it is the only way to say so). */
static LLVMValueRef vectorize_hint(Codegen *cg) {
    const char *name = "llvm.loop.vectorize.enable";
    LLVMMetadataRef enable[2] = {LLVMMDStringInContext2(cg->ctx, name, strlen(name)),
                                 LLVMValueAsMetadata(LLVMConstInt(cg->i1, 1, false))};
    LLVMMetadataRef self = LLVMTemporaryMDNode(cg->ctx, NULL, 0);
    LLVMMetadataRef ops[2] = {self, LLVMMDNodeInContext2(cg->ctx, enable, 2)};
    LLVMMetadataRef id = LLVMMDNodeInContext2(cg->ctx, ops, 2);
    LLVMMetadataReplaceAllUsesWith(self, id);
    return LLVMMetadataAsValue(cg->ctx, id);
}

/* Closes the loop; reduction: its body folds a floating-point sum that may be reassociated. */
static void loop_end(Codegen *cg, Loop *l, bool reduction) {
    if (l->trivial) return;
    LLVMValueRef next = LLVMBuildNSWAdd(cg->b, l->index, int64_const(cg, 1), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(cg->b);
    LLVMValueRef back = LLVMBuildBr(cg->b, l->header);
    LLVMAddIncoming(l->index, &next, &latch, 1);
    if (reduction) LLVMSetMetadata(back, cg->loop_md_kind, vectorize_hint(cg));
    LLVMPositionBuilderAtEnd(cg->b, l->exit);
}

/* ---- operands inside helper functions ----
 * A helper reads an operand through a pointer, or, for a constant or 1/B, as one value. */

typedef struct Operand {
    LLVMValueRef ptr;     /* NULL when uniform */
    LLVMValueRef uniform; /* the value of every element */
} Operand;

static LLVMValueRef operand_at(Codegen *cg, Operand o, LLVMValueRef i) {
    return o.ptr ? load_at(cg, o.ptr, i) : o.uniform;
}

static Operand operand_plus(Codegen *cg, Operand o, LLVMValueRef offset) {
    if (o.ptr) o.ptr = element_ptr(cg, o.ptr, offset);
    return o;
}

/* Where sample b of a starts, relative to a's own start. */
static LLVMValueRef sample_offset(Codegen *cg, const Value *a, LLVMValueRef b) {
    return a->varying ? mul64(cg, b, int64_const(cg, shape_numel(a->shape))) : int64_const(cg, 0);
}

static bool has_memory(const Value *a) {
    return a->op != OP_const && a->op != OP_inv_batch;
}

/* ---- addresses in the entry points ---- */

static LLVMValueRef fixed_address(Codegen *cg, int64_t offset) {
    return element_ptr(cg, cg->fixed, int64_const(cg, offset));
}

/* Where v starts: its rows of the whole batch are consecutive in the varying arena. */
static LLVMValueRef address_of(Codegen *cg, const Value *v) {
    Storage home = plan_value(cg->plan, v)->home;
    if (home.arena == ARENA_FIXED) return fixed_address(cg, home.offset);
    if (home.arena == ARENA_VARYING)
        return element_ptr(cg, cg->varying, mul64(cg, int64_const(cg, home.offset), cg->batch_cap));
    internal_error(xprintf("%s has no memory", ir_value_ref(v)));
    return NULL;
}

/* The value of a constant or 1/B in an entry point. */
static LLVMValueRef scalar_leaf(Codegen *cg, const Value *v) {
    return v->op == OP_inv_batch ? cg->inv_batch : elem_const(cg, v->num);
}

/* ---- elementwise rules: ew_NAME for every EW row of ops.def ---- */

typedef LLVMValueRef (*EwRule)(Codegen *cg, const Value *v, LLVMValueRef *x);

#define RULE_SRC(name)
#define RULE_EW(name) static LLVMValueRef ew_##name(Codegen *cg, const Value *v, LLVMValueRef *x);
#define RULE_REDUCE(name)
#define RULE_ROW(name)
#define RULE_MATMUL(name)
#define OP(name, arity, class, ...) RULE_##class(name)
#include "ops.def"
#undef OP
#undef RULE_EW

#define RULE_EW(name) [OP_##name] = ew_##name,
static const EwRule ew_rules[OP_COUNT] = {
#define OP(name, arity, class, ...) RULE_##class(name)
#include "ops.def"
#undef OP
};
#undef RULE_SRC
#undef RULE_EW
#undef RULE_REDUCE
#undef RULE_ROW
#undef RULE_MATMUL

static LLVMValueRef ew_add(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return fp_add(cg, x[0], x[1]);
}

static LLVMValueRef ew_sub(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return fp_sub(cg, x[0], x[1]);
}

static LLVMValueRef ew_mul(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return fp_mul(cg, x[0], x[1]);
}

static LLVMValueRef ew_div(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return fp_div(cg, x[0], x[1]);
}

/* Constant exponents 1, 2 and 0.5 need no pow call. */
static LLVMValueRef ew_pow(Codegen *cg, const Value *v, LLVMValueRef *x) {
    const Value *e = v->args[1];
    if (e->op == OP_const && e->num == 1) return x[0];
    if (e->op == OP_const && e->num == 2) return fp_mul(cg, x[0], x[0]);
    if (e->op == OP_const && e->num == 0.5) return math1(cg, "sqrt", x[0]);
    return math2(cg, "pow", x[0], x[1]);
}

static LLVMValueRef ew_neg(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return LLVMBuildFNeg(cg->b, x[0], "");
}

static LLVMValueRef ew_exp(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return math1(cg, "exp", x[0]);
}

static LLVMValueRef ew_log(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return math1(cg, "log", x[0]);
}

static LLVMValueRef ew_sqrt(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return math1(cg, "sqrt", x[0]);
}

static LLVMValueRef ew_abs(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return math1(cg, "fabs", x[0]);
}

static LLVMValueRef ew_sin(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return math1(cg, "sin", x[0]);
}

static LLVMValueRef ew_cos(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return math1(cg, "cos", x[0]);
}

/* tanh through exp, because libmvec's tanh is not in LLVM's vector-library tables (exp is):
 * sign(x) * (1 - e) / (1 + e) with e = exp(-2|x|). Near 0 that loses digits to the
 * subtraction, so below a threshold the Taylor series to x^13 takes over; its first
 * omitted term is below 1e-10 (f32, |x| < 0.3) or 2e-17 (f64, |x| < 0.1) of the result. */
static LLVMValueRef ew_tanh(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    static const double taylor[] = {-1.0 / 3,    2.0 / 15,         -17.0 / 315,
                                    62.0 / 2835, -1382.0 / 155925, 21844.0 / 6081075};
    LLVMValueRef one = elem_const(cg, 1), ax = math1(cg, "fabs", x[0]);
    LLVMValueRef e = math1(cg, "exp", fp_mul(cg, ax, elem_const(cg, -2)));
    LLVMValueRef far = fp_div(cg, fp_sub(cg, one, e), fp_add(cg, one, e));
    LLVMValueRef x2 = fp_mul(cg, x[0], x[0]), series = elem_const(cg, taylor[5]);
    for (int k = 4; k >= 0; k--)
        series = fp_add(cg, fp_mul(cg, series, x2), elem_const(cg, taylor[k]));
    LLVMValueRef near = fp_add(cg, x[0], fp_mul(cg, x[0], fp_mul(cg, series, x2)));
    LLVMValueRef threshold = elem_const(cg, cg->f64 ? 0.1 : 0.3);
    return select_if(cg, LLVMRealOLT, ax, threshold, near, math2(cg, "copysign", far, x[0]));
}

static LLVMValueRef ew_sigmoid(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    LLVMValueRef one = elem_const(cg, 1);
    LLVMValueRef e = math1(cg, "exp", LLVMBuildFNeg(cg->b, x[0], ""));
    return fp_div(cg, one, fp_add(cg, one, e));
}

/* relu, leaky_relu, elu, step and sign keep a NaN: `u > 0` is asked as "not u <= 0" (an
 * unordered compare), so a NaN takes the side that passes u on. A NaN must reach the loss,
 * where the runtime sees it, instead of turning into an innocent-looking 0. */
static LLVMValueRef positive_or_nan(Codegen *cg, LLVMValueRef u) {
    return LLVMBuildFCmp(cg->b, LLVMRealUGT, u, elem_const(cg, 0), "");
}

static LLVMValueRef ew_relu(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return LLVMBuildSelect(cg->b, positive_or_nan(cg, x[0]), x[0], elem_const(cg, 0), "");
}

static LLVMValueRef ew_leaky_relu(Codegen *cg, const Value *v, LLVMValueRef *x) {
    LLVMValueRef scaled = fp_mul(cg, x[0], elem_const(cg, v->opt[0]));
    return LLVMBuildSelect(cg->b, positive_or_nan(cg, x[0]), x[0], scaled, "");
}

/* exp(u) - 1 for u <= 0 without cancellation near 0, with the exp and log that vectorise.
 * Near 0 Kahan's trick: with e = exp(u) rounded, (e - 1) * u / log(e) (u itself where e
 * rounds to 1). Below -1/2 plainly e - 1, which cancels nothing there, while the trick would
 * need log(e) of an e that has lost its digits (a subnormal e^-100). The side not taken
 * (u > 0) is never used. */
static LLVMValueRef exp_minus_1(Codegen *cg, LLVMValueRef u) {
    LLVMValueRef one = elem_const(cg, 1), e = math1(cg, "exp", u);
    LLVMValueRef e_minus_1 = fp_sub(cg, e, one);
    LLVMValueRef kahan = fp_div(cg, fp_mul(cg, e_minus_1, u), math1(cg, "log", e));
    LLVMValueRef near = select_if(cg, LLVMRealOEQ, e, one, u, kahan);
    return select_if(cg, LLVMRealOLT, u, elem_const(cg, -0.5), e_minus_1, near);
}

static LLVMValueRef ew_elu(Codegen *cg, const Value *v, LLVMValueRef *x) {
    LLVMValueRef negative = fp_mul(cg, elem_const(cg, v->opt[0]), exp_minus_1(cg, x[0]));
    return LLVMBuildSelect(cg->b, positive_or_nan(cg, x[0]), x[0], negative, "");
}

/* log(1 + e) for 0 <= e <= 1 to full precision with a log that vectorises: with s = 1 + e
 * rounded, log(s) is off by the rounding (s - 1) - e, divided by s. */
static LLVMValueRef log_1_plus(Codegen *cg, LLVMValueRef e) {
    LLVMValueRef s = fp_add(cg, elem_const(cg, 1), e);
    LLVMValueRef rounding = fp_sub(cg, fp_sub(cg, s, elem_const(cg, 1)), e);
    return fp_sub(cg, math1(cg, "log", s), fp_div(cg, rounding, s));
}

/* max(u, 0) + log(1 + exp(-|u|)): exp never overflows, and softplus(-100) is e^-100, not 0. */
static LLVMValueRef ew_softplus(Codegen *cg, const Value *v, LLVMValueRef *x) {
    LLVMValueRef tail =
        log_1_plus(cg, math1(cg, "exp", LLVMBuildFNeg(cg->b, math1(cg, "fabs", x[0]), "")));
    return fp_add(cg, ew_relu(cg, v, x), tail);
}

static LLVMValueRef ew_step(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    LLVMValueRef zero = elem_const(cg, 0);
    LLVMValueRef step = select_if(cg, LLVMRealOGT, x[0], zero, elem_const(cg, 1), zero);
    return select_if(cg, LLVMRealUNO, x[0], x[0], x[0], step);
}

static LLVMValueRef ew_sign(Codegen *cg, const Value *v, LLVMValueRef *x) {
    LLVMValueRef step = ew_step(cg, v, x); /* 1, 0 or NaN */
    return select_if(cg, LLVMRealOLT, x[0], elem_const(cg, 0), elem_const(cg, -1), step);
}

static LLVMValueRef ew_where(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)v;
    return LLVMBuildSelect(cg->b, positive_or_nan(cg, x[0]), x[1], x[2], "");
}

/* The repetition is in how the loop indexes the operand. */
static LLVMValueRef ew_broadcast(Codegen *cg, const Value *v, LLVMValueRef *x) {
    (void)cg, (void)v;
    return x[0];
}

/* ---- fused elementwise loops ----
 * A loop computes the needed members of one STEP_EW_LOOP for every element of its
 * iteration space (batch x numel when it varies). How it reads an operand depends on the
 * operand's shape (a suffix of the result's) and on whether it varies: */

typedef enum PortKind {
    PORT_FULL,          /* same numel, same varying: element i of the loop's space */
    PORT_BROADCAST,     /* repeated: a shorter suffix, or the same numel without batch axis */
    PORT_SAMPLE_SCALAR, /* one value per sample */
    PORT_FIXED_SCALAR,  /* one value for the whole loop */
} PortKind;

typedef struct Port {
    const Value *v;
    PortKind kind;
    LLVMValueRef param, sample, row, scalar;
} Port;

/* A dropout member's masks in one call of its loop (docs/codegen.md, "Dropout"). */
typedef struct Masks {
    LLVMValueRef key;        /* i64: the hash of noise_seed and the salt */
    LLVMValueRef keep_below; /* i64: keep where the top 32 bits of the hash are below it */
    LLVMValueRef scale;      /* what a kept element is multiplied by */
} Masks;

typedef struct FusedLoop {
    int step;
    bool varying;
    int64_t numel;
    ValueList members;     /* the members this entry point needs */
    VEC(Port) ports;       /* the operands read from memory */
    LLVMValueRef *value;   /* per member: its value in the current iteration */
    LLVMValueRef *out;     /* per member: its output parameter, NULL when in a register */
    LLVMValueRef *out_row; /* per member: where the current row of it goes */
    bool uses_inv_batch;
    LLVMValueRef inv_batch;
    bool uses_noise;                   /* a member is a dropout */
    LLVMValueRef training, noise_seed; /* then the loop takes nnrt_ctx's two fields */
    Masks *masks;                      /* per member, for the dropouts */
    LLVMValueRef row_element;          /* i64: the current row's first element, b*numel + r*L */
    LLVMValueRef element;              /* i64: the current element's place in the batch */
} FusedLoop;

static int member_index(const FusedLoop *L, const Value *v) {
    for (int i = 0; i < L->members.n; i++)
        if (L->members.v[i] == v) return i;
    return -1;
}

static Port *find_port(FusedLoop *L, const Value *v) {
    for (int i = 0; i < L->ports.n; i++)
        if (L->ports.v[i].v == v) return &L->ports.v[i];
    return NULL;
}

static PortKind port_kind(const FusedLoop *L, const Value *v) {
    int64_t numel = shape_numel(v->shape);
    if (numel == L->numel && v->varying == L->varying) return PORT_FULL;
    if (numel == 1) return v->varying ? PORT_SAMPLE_SCALAR : PORT_FIXED_SCALAR;
    return PORT_BROADCAST;
}

static bool stored(const Codegen *cg, const Value *member) {
    return !plan_value(cg->plan, member)->in_register;
}

static void collect_loop(Codegen *cg, int step, FusedLoop *L) {
    const Step *st = &cg->plan->steps[step];
    memset(L, 0, sizeof *L);
    L->step = step;
    L->varying = st->insts[0]->varying;
    L->numel = shape_numel(st->insts[0]->shape);
    for (int i = 0; i < st->n_insts; i++)
        if (cg->needed[st->insts[i]->id]) vec_push(&L->members, st->insts[i]);
    for (int i = 0; i < L->members.n; i++) {
        const Value *m = L->members.v[i];
        if (m->op == OP_dropout) L->uses_noise = true;
        for (int j = 0; j < m->nargs; j++) {
            Value *a = m->args[j];
            if (a->op == OP_inv_batch) L->uses_inv_batch = true;
            if (!has_memory(a) || member_index(L, a) >= 0 || find_port(L, a)) continue;
            vec_push(&L->ports, ((Port){.v = a, .kind = port_kind(L, a)}));
        }
    }
    size_t n = (size_t)L->members.n;
    L->value = xalloc(n * sizeof *L->value);
    L->out = xalloc(n * sizeof *L->out);
    L->out_row = xalloc(n * sizeof *L->out_row);
    L->masks = xalloc(n * sizeof *L->masks);
}

/* One loop over everything when every operand is either read at the loop's own index or
 * the same for all: then the batch and the sample need no separate loops. */
static bool loop_is_flat(const FusedLoop *L) {
    for (int i = 0; i < L->ports.n; i++)
        if (L->ports.v[i].kind == PORT_BROADCAST || L->ports.v[i].kind == PORT_SAMPLE_SCALAR)
            return false;
    return true;
}

/* The innermost loop runs over the shortest repeated operand, so that within it every
 * operand is read contiguously and no index needs a division. Shapes are suffixes of one
 * shape, so the shortest length divides every other length. */
static int64_t inner_length(const FusedLoop *L) {
    int64_t inner = L->numel;
    for (int i = 0; i < L->ports.n; i++) {
        const Port *p = &L->ports.v[i];
        int64_t n = shape_numel(p->v->shape);
        if (p->kind == PORT_BROADCAST && n < inner) inner = n;
    }
    return inner;
}

static LLVMValueRef loop_operand(Codegen *cg, FusedLoop *L, const Value *a, LLVMValueRef j) {
    if (a->op == OP_const) return elem_const(cg, a->num);
    if (a->op == OP_inv_batch) return L->inv_batch;
    int m = member_index(L, a);
    if (m >= 0) return L->value[m];
    Port *p = find_port(L, a);
    if (p->kind == PORT_FULL || p->kind == PORT_BROADCAST) return load_at(cg, p->row, j);
    return p->scalar;
}

/* ---- dropout ----
 * A mask is never stored: it is a hash, recomputed wherever it is needed (by the backward
 * pass too). With mix() the finaliser of splitmix64 and G = 0x9E3779B97F4A7C15 its step,
 *   key  = mix(noise_seed ^ mix(salt * G))                    once per call of the loop
 *   keep = (mix(key + element * G) >> 32) < keep_below        per element
 * where element = b * numel + e is the element's place in the batch. For one key the
 * hashes of consecutive elements are consecutive outputs of splitmix64; it is all integer
 * arithmetic inside the loop, so it vectorises with the loop. */

#define SPLITMIX_STEP 0x9E3779B97F4A7C15ull

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static LLVMValueRef u64_const(Codegen *cg, uint64_t n) {
    return LLVMConstInt(cg->i64, n, false);
}

/* mix64() in the generated code. */
static LLVMValueRef emit_mix64(Codegen *cg, LLVMValueRef z) {
    static const struct {
        uint64_t shift, factor;
    } rounds[2] = {{30, 0xBF58476D1CE4E5B9ull}, {27, 0x94D049BB133111EBull}};
    for (int r = 0; r < 2; r++) {
        z = LLVMBuildXor(cg->b, z, LLVMBuildLShr(cg->b, z, u64_const(cg, rounds[r].shift), ""), "");
        z = LLVMBuildMul(cg->b, z, u64_const(cg, rounds[r].factor), "");
    }
    return LLVMBuildXor(cg->b, z, LLVMBuildLShr(cg->b, z, u64_const(cg, 31), ""), "");
}

/* While training, an element is kept with probability 1 - rate (to 2^-32) and scaled by
 * 1/(1 - rate). Otherwise every element is kept and scaled by 1: the identity, bit for bit,
 * without a second version of the loop. */
static Masks masks_of(Codegen *cg, const FusedLoop *L, const Value *v) {
    double rate = v->opt[0];
    LLVMValueRef zero = LLVMConstInt(cg->i32, 0, false);
    LLVMValueRef training = LLVMBuildICmp(cg->b, LLVMIntNE, L->training, zero, "");
    uint64_t salt = mix64((uint64_t)v->salt * SPLITMIX_STEP);
    uint64_t below = (uint64_t)llround((1 - rate) * 0x1p32);
    Masks m;
    m.key = emit_mix64(cg, LLVMBuildXor(cg->b, L->noise_seed, u64_const(cg, salt), ""));
    m.keep_below =
        LLVMBuildSelect(cg->b, training, u64_const(cg, below), u64_const(cg, 1ull << 32), "");
    m.scale =
        LLVMBuildSelect(cg->b, training, elem_const(cg, 1 / (1 - rate)), elem_const(cg, 1), "");
    return m;
}

static LLVMValueRef ew_dropout(Codegen *cg, const Value *v, LLVMValueRef *x) {
    const FusedLoop *L = cg->loop;
    const Masks *m = &L->masks[member_index(L, v)];
    LLVMValueRef step = LLVMBuildMul(cg->b, L->element, u64_const(cg, SPLITMIX_STEP), "");
    LLVMValueRef hash = emit_mix64(cg, LLVMBuildAdd(cg->b, m->key, step, ""));
    LLVMValueRef top = LLVMBuildLShr(cg->b, hash, u64_const(cg, 32), "");
    LLVMValueRef keep = LLVMBuildICmp(cg->b, LLVMIntULT, top, m->keep_below, "");
    return LLVMBuildSelect(cg->b, keep, fp_mul(cg, x[0], m->scale), elem_const(cg, 0), "");
}

static void loop_body(Codegen *cg, FusedLoop *L, LLVMValueRef j) {
    if (L->uses_noise) L->element = LLVMBuildNSWAdd(cg->b, L->row_element, j, "");
    for (int i = 0; i < L->members.n; i++) {
        const Value *m = L->members.v[i];
        LLVMValueRef x[3];
        for (int k = 0; k < m->nargs; k++) x[k] = loop_operand(cg, L, m->args[k], j);
        L->value[i] = ew_rules[m->op](cg, m, x);
        if (L->out[i]) store_at(cg, L->out_row[i], j, L->value[i]);
    }
}

static void flat_loop(Codegen *cg, FusedLoop *L, LLVMValueRef nb) {
    LLVMValueRef total = mul64(cg, nb, int64_const(cg, L->numel));
    for (int i = 0; i < L->ports.n; i++) L->ports.v[i].row = L->ports.v[i].param;
    for (int i = 0; i < L->members.n; i++) L->out_row[i] = L->out[i];
    L->row_element = int64_const(cg, 0);
    Loop lj;
    LLVMValueRef j = loop_begin(cg, &lj, total);
    loop_body(cg, L, j);
    loop_end(cg, &lj, false);
}

static void set_sample_bases(Codegen *cg, FusedLoop *L, LLVMValueRef b) {
    for (int i = 0; i < L->ports.n; i++) {
        Port *p = &L->ports.v[i];
        LLVMValueRef at = sample_offset(cg, p->v, b);
        if (p->kind == PORT_SAMPLE_SCALAR)
            p->scalar = load_at(cg, p->param, at);
        else if (p->kind != PORT_FIXED_SCALAR)
            p->sample = element_ptr(cg, p->param, at);
    }
}

static void set_row_bases(Codegen *cg, FusedLoop *L, LLVMValueRef b, LLVMValueRef row_start) {
    for (int i = 0; i < L->ports.n; i++) {
        Port *p = &L->ports.v[i];
        if (p->kind != PORT_FULL && p->kind != PORT_BROADCAST) continue;
        int64_t n = shape_numel(p->v->shape);
        LLVMValueRef at =
            n == L->numel ? row_start : LLVMBuildURem(cg->b, row_start, int64_const(cg, n), "");
        p->row = element_ptr(cg, p->sample, at);
    }
    LLVMValueRef out_at =
        LLVMBuildNSWAdd(cg->b, mul64(cg, b, int64_const(cg, L->numel)), row_start, "");
    for (int i = 0; i < L->members.n; i++)
        if (L->out[i]) L->out_row[i] = element_ptr(cg, L->out[i], out_at);
    L->row_element = out_at;
}

/* for b < nb: for r < numel/inner: for j < inner. */
static void nested_loops(Codegen *cg, FusedLoop *L, LLVMValueRef nb) {
    int64_t inner = inner_length(L);
    Loop lb, lr, lj;
    LLVMValueRef b = loop_begin(cg, &lb, nb);
    set_sample_bases(cg, L, b);
    LLVMValueRef r = loop_begin(cg, &lr, int64_const(cg, L->numel / inner));
    set_row_bases(cg, L, b, mul64(cg, r, int64_const(cg, inner)));
    LLVMValueRef j = loop_begin(cg, &lj, int64_const(cg, inner));
    loop_body(cg, L, j);
    loop_end(cg, &lj, false);
    loop_end(cg, &lr, false);
    loop_end(cg, &lb, false);
}

static const char *loop_key(const FusedLoop *L) {
    StrBuf key = {0};
    for (int i = 0; i < L->members.n; i++) sb_printf(&key, "%d,", L->members.v[i]->id);
    return sb_str(&key);
}

/* The function of a fused loop: (operands..., stored members..., [nb], [1/B]). */
static LLVMValueRef loop_function(Codegen *cg, FusedLoop *L) {
    const char *key = loop_key(L);
    for (LoopVariant *v = cg->loop_variants[L->step]; v; v = v->next)
        if (!strcmp(v->members, key)) return v->fn;
    LLVMTypeRef *params = xalloc((size_t)(L->ports.n + L->members.n + 4) * sizeof *params);
    unsigned n = 0;
    for (int i = 0; i < L->ports.n; i++) params[n++] = cg->elem_ptr;
    for (int i = 0; i < L->members.n; i++)
        if (stored(cg, L->members.v[i])) params[n++] = cg->elem_ptr;
    if (L->varying) params[n++] = cg->i64;
    if (L->uses_inv_batch) params[n++] = cg->elem;
    if (L->uses_noise) params[n++] = cg->i32, params[n++] = cg->i64;
    LLVMValueRef fn = new_helper_function(cg, xprintf("nnc.loop.%d", L->step), params, n);
    unsigned k = 0;
    for (int i = 0; i < L->ports.n; i++) L->ports.v[i].param = LLVMGetParam(fn, k++);
    for (int i = 0; i < L->members.n; i++)
        if (stored(cg, L->members.v[i])) L->out[i] = LLVMGetParam(fn, k++);
    LLVMValueRef nb = L->varying ? LLVMGetParam(fn, k++) : int64_const(cg, 1);
    if (L->uses_inv_batch) L->inv_batch = LLVMGetParam(fn, k++);
    if (L->uses_noise) {
        L->training = LLVMGetParam(fn, k++);
        L->noise_seed = LLVMGetParam(fn, k++);
        for (int i = 0; i < L->members.n; i++)
            if (L->members.v[i]->op == OP_dropout) L->masks[i] = masks_of(cg, L, L->members.v[i]);
    }
    for (int i = 0; i < L->ports.n; i++)
        if (L->ports.v[i].kind == PORT_FIXED_SCALAR)
            L->ports.v[i].scalar = load_at(cg, L->ports.v[i].param, int64_const(cg, 0));
    cg->loop = L;
    if (loop_is_flat(L))
        flat_loop(cg, L, nb);
    else
        nested_loops(cg, L, nb);
    cg->loop = NULL;
    LLVMBuildRetVoid(cg->b);
    LoopVariant *variant = xalloc(sizeof *variant);
    *variant = (LoopVariant){cg->loop_variants[L->step], key, fn};
    cg->loop_variants[L->step] = variant;
    return fn;
}

static void emit_loop_step(Codegen *cg, int step) {
    FusedLoop L;
    collect_loop(cg, step, &L);
    LLVMBasicBlockRef here = LLVMGetInsertBlock(cg->b);
    LLVMValueRef fn = loop_function(cg, &L);
    LLVMPositionBuilderAtEnd(cg->b, here);
    LLVMValueRef *args = xalloc((size_t)(L.ports.n + L.members.n + 4) * sizeof *args);
    unsigned n = 0;
    for (int i = 0; i < L.ports.n; i++) args[n++] = address_of(cg, L.ports.v[i].v);
    for (int i = 0; i < L.members.n; i++)
        if (stored(cg, L.members.v[i])) args[n++] = address_of(cg, L.members.v[i]);
    if (L.varying) args[n++] = cg->batch;
    if (L.uses_inv_batch) args[n++] = cg->inv_batch;
    if (L.uses_noise) args[n++] = cg->training, args[n++] = cg->noise_seed;
    call(cg, fn, args, n);
}

/* ---- sums and maxima along a row ---- */

typedef struct Terms {
    Operand a, b;
    LLVMValueRef shift;    /* subtracted before exp: the row's max */
    LLVMValueRef log_sum;  /* log(sum e^(a - shift)) */
    LLVMValueRef store_to; /* term_exp_shifted also stores each term here when set */
} Terms;

typedef LLVMValueRef (*TermFn)(Codegen *cg, const Terms *t, LLVMValueRef i);

static LLVMValueRef term_a(Codegen *cg, const Terms *t, LLVMValueRef i) {
    return operand_at(cg, t->a, i);
}

static LLVMValueRef term_product(Codegen *cg, const Terms *t, LLVMValueRef i) {
    return fp_mul(cg, operand_at(cg, t->a, i), operand_at(cg, t->b, i));
}

static LLVMValueRef term_exp_shifted(Codegen *cg, const Terms *t, LLVMValueRef i) {
    LLVMValueRef e = math1(cg, "exp", fp_sub(cg, operand_at(cg, t->a, i), t->shift));
    if (t->store_to) store_at(cg, t->store_to, i, e);
    return e;
}

/* -y * log_softmax(z) = y * (log(sum) - (z - max)), with a = z, b = y, shift = max and
 * log_sum = log(sum e^(z - max)): never a difference of two large numbers, and the max is
 * taken off z before anything is added to it (max + log(sum) would round to max's ulp). */
static LLVMValueRef term_cross_entropy(Codegen *cg, const Terms *t, LLVMValueRef i) {
    LLVMValueRef shifted = fp_sub(cg, operand_at(cg, t->a, i), t->shift);
    return fp_mul(cg, operand_at(cg, t->b, i), fp_sub(cg, t->log_sum, shifted));
}

/* The sum of term(i) for i < n, reassociated freely: the same binary always sums in the
 * same order, so results stay reproducible. */
static LLVMValueRef sum_terms(Codegen *cg, int64_t n, TermFn term, const Terms *t) {
    LLVMValueRef acc = entry_alloca(cg);
    LLVMBuildStore(cg->b, elem_const(cg, 0), acc);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, n));
    LLVMValueRef x = term(cg, t, i);
    LLVMValueRef sum = fp_add(cg, LLVMBuildLoad2(cg->b, cg->elem, acc, ""), x);
    compat_allow_reassociation(sum);
    LLVMBuildStore(cg->b, sum, acc);
    loop_end(cg, &l, true);
    return LLVMBuildLoad2(cg->b, cg->elem, acc, "");
}

static LLVMValueRef max_of(Codegen *cg, int64_t n, Operand a) {
    LLVMValueRef acc = entry_alloca(cg);
    LLVMBuildStore(cg->b, elem_const(cg, -INFINITY), acc);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, n));
    LLVMValueRef x = operand_at(cg, a, i), m = LLVMBuildLoad2(cg->b, cg->elem, acc, "");
    LLVMBuildStore(cg->b, select_if(cg, LLVMRealOGT, x, m, x, m), acc);
    loop_end(cg, &l, false);
    return LLVMBuildLoad2(cg->b, cg->elem, acc, "");
}

/* The row's max m and log(sum e^(z - m)): log-sum-exp is their sum, but z - lse is better
 * computed as (z - m) - log(sum), which never rounds to the ulp of a large m. */
static Terms shifted_log_sum(Codegen *cg, Operand z, int64_t n) {
    Terms t = {.a = z, .shift = max_of(cg, n, z)};
    t.log_sum = math1(cg, "log", sum_terms(cg, n, term_exp_shifted, &t));
    return t;
}

/* ---- row ops: one row of C elements; row[k] points at operand k's row ---- */

typedef void (*RowRule)(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C);

static void row_softmax(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C) {
    Terms t = {.a = row[0], .shift = max_of(cg, C, row[0]), .store_to = out};
    LLVMValueRef inv = fp_div(cg, elem_const(cg, 1), sum_terms(cg, C, term_exp_shifted, &t));
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, C));
    store_at(cg, out, i, fp_mul(cg, load_at(cg, out, i), inv));
    loop_end(cg, &l, false);
}

static void row_log_softmax(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C) {
    Terms t = shifted_log_sum(cg, row[0], C);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, C));
    LLVMValueRef shifted = fp_sub(cg, operand_at(cg, row[0], i), t.shift);
    store_at(cg, out, i, fp_sub(cg, shifted, t.log_sum));
    loop_end(cg, &l, false);
}

/* out points at the sample's loss, which sums the rows' cross-entropies. */
static void row_softmax_ce(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C) {
    Terms t = shifted_log_sum(cg, row[0], C);
    t.b = row[1];
    LLVMValueRef ce = sum_terms(cg, C, term_cross_entropy, &t);
    LLVMValueRef zero = int64_const(cg, 0);
    store_at(cg, out, zero, fp_add(cg, load_at(cg, out, zero), ce));
}

/* s * (g - rowsum(g*s)), row[0] = s, row[1] = g. */
static void row_softmax_grad(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C) {
    Terms t = {.a = row[1], .b = row[0]};
    LLVMValueRef dot = sum_terms(cg, C, term_product, &t);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, C));
    LLVMValueRef g = operand_at(cg, row[1], i), s = operand_at(cg, row[0], i);
    store_at(cg, out, i, fp_mul(cg, s, fp_sub(cg, g, dot)));
    loop_end(cg, &l, false);
}

/* g - exp(l) * rowsum(g), row[0] = l, row[1] = g. */
static void row_log_softmax_grad(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C) {
    Terms t = {.a = row[1]};
    LLVMValueRef total = sum_terms(cg, C, term_a, &t);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, C));
    LLVMValueRef p = math1(cg, "exp", operand_at(cg, row[0], i));
    store_at(cg, out, i, fp_sub(cg, operand_at(cg, row[1], i), fp_mul(cg, p, total)));
    loop_end(cg, &l, false);
}

/* g * (softmax(z) * rowsum(y) - y), row = {z, y, g}; g is one value per sample. */
static void row_softmax_ce_grad(Codegen *cg, Operand *row, LLVMValueRef out, int64_t C) {
    Terms t = {.a = row[0], .shift = max_of(cg, C, row[0]), .store_to = out};
    LLVMValueRef exp_sum = sum_terms(cg, C, term_exp_shifted, &t);
    Terms ty = {.a = row[1]};
    LLVMValueRef scale = fp_div(cg, sum_terms(cg, C, term_a, &ty), exp_sum);
    LLVMValueRef g = operand_at(cg, row[2], int64_const(cg, 0));
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, C));
    LLVMValueRef p = fp_mul(cg, load_at(cg, out, i), scale);
    store_at(cg, out, i, fp_mul(cg, g, fp_sub(cg, p, operand_at(cg, row[1], i))));
    loop_end(cg, &l, false);
}

static RowRule row_rule(Op op) {
    switch (op) {
    case OP_softmax: return row_softmax;
    case OP_log_softmax: return row_log_softmax;
    case OP_softmax_ce: return row_softmax_ce;
    case OP_softmax_grad: return row_softmax_grad;
    case OP_log_softmax_grad: return row_log_softmax_grad;
    case OP_softmax_ce_grad: return row_softmax_ce_grad;
    default: internal_error(xprintf("%s is not a row op", op_info[op].name)); return NULL;
    }
}

/* ---- helper functions for reductions and row ops ----
 * Each gets (operands..., out, [nb]); an operand with memory is a pointer to its start,
 * 1/B comes by value and a constant is written into the function. */

typedef void (*OpBody)(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                       LLVMValueRef nb);

/* Rows along the last axis; every leading axis and every sample is rows. */
static void row_op_body(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                        LLVMValueRef nb) {
    const Value *z = v->args[0];
    int64_t C = z->shape.dim[z->shape.rank - 1], rows = shape_numel(z->shape) / C;
    Loop lb, lr;
    LLVMValueRef b = loop_begin(cg, &lb, nb);
    LLVMValueRef out_sample = element_ptr(cg, out, sample_offset(cg, v, b));
    if (v->op == OP_softmax_ce) store_at(cg, out_sample, int64_const(cg, 0), elem_const(cg, 0));
    LLVMValueRef r = loop_begin(cg, &lr, int64_const(cg, rows));
    LLVMValueRef row_start = mul64(cg, r, int64_const(cg, C));
    Operand row[3];
    for (int k = 0; k < v->nargs; k++) {
        const Value *a = v->args[k];
        row[k] = operand_plus(cg, args[k], sample_offset(cg, a, b));
        if (shape_numel(a->shape) > 1) row[k] = operand_plus(cg, row[k], row_start);
    }
    LLVMValueRef out_row =
        v->op == OP_softmax_ce ? out_sample : element_ptr(cg, out_sample, row_start);
    row_rule(v->op)(cg, row, out_row, C);
    loop_end(cg, &lr, false);
    loop_end(cg, &lb, false);
}

/* sum and mean: one scalar per sample. */
static void reduce_all_body(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                            LLVMValueRef nb) {
    const Value *u = v->args[0];
    int64_t n = shape_numel(u->shape);
    Loop lb;
    LLVMValueRef b = loop_begin(cg, &lb, nb);
    Terms t = {.a = operand_plus(cg, args[0], sample_offset(cg, u, b))};
    LLVMValueRef sum = sum_terms(cg, n, term_a, &t);
    if (v->op == OP_mean) sum = fp_div(cg, sum, elem_const(cg, (double)n));
    store_at(cg, out, b, sum);
    loop_end(cg, &lb, false);
}

static void zero_fill(Codegen *cg, LLVMValueRef out, int64_t n) {
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, n));
    store_at(cg, out, i, elem_const(cg, 0));
    loop_end(cg, &l, false);
}

/* out[j] += from[j] for j < n: vectorises along j, no reassociation needed. */
static void add_into(Codegen *cg, LLVMValueRef out, Operand from, int64_t n) {
    Loop l;
    LLVMValueRef j = loop_begin(cg, &l, int64_const(cg, n));
    store_at(cg, out, j, fp_add(cg, load_at(cg, out, j), operand_at(cg, from, j)));
    loop_end(cg, &l, false);
}

/* Sums the leading axes away: out[j] = sum over r of u[r*m + j]. */
static void reduce_sum_to_body(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                               LLVMValueRef nb) {
    const Value *u = v->args[0];
    int64_t m = shape_numel(v->shape), n = shape_numel(u->shape);
    Loop lb, lr;
    LLVMValueRef b = loop_begin(cg, &lb, nb);
    LLVMValueRef out_sample = element_ptr(cg, out, sample_offset(cg, v, b));
    Operand u_sample = operand_plus(cg, args[0], sample_offset(cg, u, b));
    zero_fill(cg, out_sample, m);
    LLVMValueRef r = loop_begin(cg, &lr, int64_const(cg, n / m));
    add_into(cg, out_sample, operand_plus(cg, u_sample, mul64(cg, r, int64_const(cg, m))), m);
    loop_end(cg, &lr, false);
    loop_end(cg, &lb, false);
}

static void reduce_batch_sum_body(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out,
                                  LLVMValueRef nb) {
    int64_t n = shape_numel(v->shape);
    zero_fill(cg, out, n);
    Loop lb;
    LLVMValueRef b = loop_begin(cg, &lb, nb);
    add_into(cg, out, operand_plus(cg, args[0], sample_offset(cg, v->args[0], b)), n);
    loop_end(cg, &lb, false);
}

static OpBody op_body(Op op) {
    switch (op) {
    case OP_sum:
    case OP_mean: return reduce_all_body;
    case OP_sum_to: return reduce_sum_to_body;
    case OP_batch_sum: return reduce_batch_sum_body;
    default: return row_op_body;
    }
}

static bool takes_batch(const Value *v) {
    return v->varying || v->op == OP_batch_sum;
}

static LLVMValueRef op_function(Codegen *cg, const Value *v) {
    LLVMTypeRef params[5];
    unsigned n = 0;
    for (int k = 0; k < v->nargs; k++) {
        if (has_memory(v->args[k])) params[n++] = cg->elem_ptr;
        if (v->args[k]->op == OP_inv_batch) params[n++] = cg->elem;
    }
    params[n++] = cg->elem_ptr;
    if (takes_batch(v)) params[n++] = cg->i64;
    const char *name = xprintf("nnc.%s.%d", op_info[v->op].name, v->id);
    LLVMValueRef fn = new_helper_function(cg, name, params, n);
    Operand args[3];
    unsigned k = 0;
    for (int i = 0; i < v->nargs; i++) {
        const Value *a = v->args[i];
        args[i] = has_memory(a)           ? (Operand){LLVMGetParam(fn, k++), NULL}
                  : a->op == OP_inv_batch ? (Operand){NULL, LLVMGetParam(fn, k++)}
                                          : (Operand){NULL, elem_const(cg, a->num)};
    }
    LLVMValueRef out = LLVMGetParam(fn, k++);
    LLVMValueRef nb = takes_batch(v) ? LLVMGetParam(fn, k++) : int64_const(cg, 1);
    op_body(v->op)(cg, v, args, out, nb);
    LLVMBuildRetVoid(cg->b);
    return fn;
}

static void emit_op_step(Codegen *cg, int step) {
    const Value *v = cg->plan->steps[step].insts[0];
    if (!cg->op_fns[step]) {
        LLVMBasicBlockRef here = LLVMGetInsertBlock(cg->b);
        cg->op_fns[step] = op_function(cg, v);
        LLVMPositionBuilderAtEnd(cg->b, here);
    }
    LLVMValueRef args[5];
    unsigned n = 0;
    for (int k = 0; k < v->nargs; k++) {
        if (has_memory(v->args[k])) args[n++] = address_of(cg, v->args[k]);
        if (v->args[k]->op == OP_inv_batch) args[n++] = cg->inv_batch;
    }
    args[n++] = address_of(cg, v);
    if (takes_batch(v)) args[n++] = cg->batch;
    call(cg, cg->op_fns[step], args, n);
}

/* ---- matrix products ---- */

typedef struct Gemm {
    bool ta, tb;
    LLVMValueRef m, n, k; /* i64 */
    LLVMValueRef a, b, c;
    int64_t lda, ldb, ldc;
    LLVMValueRef alpha, beta;
} Gemm;

static void call_gemm(Codegen *cg, const Gemm *gm) {
    LLVMTypeRef params[14] = {cg->i32, cg->i32,  cg->i32,      cg->i32, cg->i32,
                              cg->i32, cg->elem, cg->elem_ptr, cg->i32, cg->elem_ptr,
                              cg->i32, cg->elem, cg->elem_ptr, cg->i32};
    const char *name = cg->f64 ? "cblas_dgemm" : "cblas_sgemm";
    LLVMValueRef fn = declare_function(cg, name, cg->void_type, params, 14);
#define I32(x)    LLVMConstInt(cg->i32, (unsigned long long)(x), true)
#define TO_I32(x) LLVMBuildTrunc(cg->b, (x), cg->i32, "")
    LLVMValueRef args[14] = {I32(CBLAS_ROW_MAJOR),
                             I32(gm->ta ? CBLAS_TRANS : CBLAS_NO_TRANS),
                             I32(gm->tb ? CBLAS_TRANS : CBLAS_NO_TRANS),
                             TO_I32(gm->m),
                             TO_I32(gm->n),
                             TO_I32(gm->k),
                             gm->alpha,
                             gm->a,
                             I32(gm->lda),
                             gm->b,
                             I32(gm->ldb),
                             gm->beta,
                             gm->c,
                             I32(gm->ldc)};
#undef I32
#undef TO_I32
    call(cg, fn, args, 14);
}

/* The matrix an operand stores per sample (before any transpose): a vector is one row. */
static void stored_matrix(const Value *v, int64_t *rows, int64_t *cols) {
    *rows = v->shape.rank == 1 ? 1 : v->shape.dim[0];
    *cols = v->shape.dim[v->shape.rank - 1];
}

/* A sample at a time: C_b = alpha op(A_b) op(B_b) + beta C_b, or, summing over the batch,
 * C = alpha sum_b op(A_b) op(B_b) + beta C (beta applies to the first product only). */
static void product_per_sample(Codegen *cg, const Value *v, const Gemm *whole) {
    Loop l;
    LLVMValueRef s = loop_begin(cg, &l, cg->batch);
    Gemm one = *whole;
    one.a = element_ptr(cg, whole->a, sample_offset(cg, v->args[0], s));
    one.b = element_ptr(cg, whole->b, sample_offset(cg, v->args[1], s));
    one.c = element_ptr(cg, whole->c, sample_offset(cg, v, s));
    if (v->sum_batch) {
        LLVMValueRef first = LLVMBuildICmp(cg->b, LLVMIntEQ, s, int64_const(cg, 0), "");
        one.beta = LLVMBuildSelect(cg->b, first, whole->beta, elem_const(cg, 1), "");
    }
    call_gemm(cg, &one);
    loop_end(cg, &l, false);
}

/* c = alpha * v + beta * c for the matmul v, in as few GEMMs as the batch layout allows
 * (docs/codegen.md, "BLAS mapping"). */
static void emit_product(Codegen *cg, const Value *v, LLVMValueRef c, LLVMValueRef alpha,
                         LLVMValueRef beta) {
    const Value *a = v->args[0], *b = v->args[1];
    int64_t M, N, K, a_rows, a_cols, b_rows, b_cols;
    ir_matmul_dims(v, &M, &N, &K);
    stored_matrix(a, &a_rows, &a_cols);
    stored_matrix(b, &b_rows, &b_cols);
    Gemm gm = {v->ta,
               v->tb,
               int64_const(cg, M),
               int64_const(cg, N),
               int64_const(cg, K),
               address_of(cg, a),
               address_of(cg, b),
               c,
               a_cols,
               b_cols,
               N,
               alpha,
               beta};
    if (!a->varying && !b->varying) {
        call_gemm(cg, &gm);
    } else if (a->varying && !b->varying && !v->ta && !v->sum_batch) {
        /* The samples' rows of A are consecutive: one [B*M, K] x [K, N] product. */
        gm.m = mul64(cg, gm.m, cg->batch);
        call_gemm(cg, &gm);
    } else if (a->varying && b->varying && v->ta && !v->tb && v->sum_batch) {
        /* sum_b A_b^T B_b = [B*K, M]^T [B*K, N]: the weight gradient X^T dY. */
        gm.k = mul64(cg, gm.k, cg->batch);
        call_gemm(cg, &gm);
    } else {
        product_per_sample(cg, v, &gm);
    }
}

/* ---- the optimizer ---- */

/* p[i] -= lr * v[i] for i < n: after a GEMM has updated the velocity v. */
static LLVMValueRef sgd_apply_function(Codegen *cg) {
    if (cg->sgd_apply_fn) return cg->sgd_apply_fn;
    LLVMBasicBlockRef here = LLVMGetInsertBlock(cg->b);
    LLVMTypeRef params[4] = {cg->elem_ptr, cg->elem_ptr, cg->i64, cg->elem};
    LLVMValueRef fn = new_helper_function(cg, "nnc.sgd.apply", params, 4);
    LLVMValueRef p = LLVMGetParam(fn, 0), v = LLVMGetParam(fn, 1), lr = LLVMGetParam(fn, 3);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, LLVMGetParam(fn, 2));
    store_at(cg, p, i, fp_sub(cg, load_at(cg, p, i), fp_mul(cg, lr, load_at(cg, v, i))));
    loop_end(cg, &l, false);
    LLVMBuildRetVoid(cg->b);
    LLVMPositionBuilderAtEnd(cg->b, here);
    return cg->sgd_apply_fn = fn;
}

/* (p, g, v, n, lr, mu): with mu == 0, p -= lr*g and v is not read (nnrt.h); otherwise
 * v = mu*v + g; p -= lr*v. */
static LLVMValueRef sgd_update_function(Codegen *cg) {
    if (cg->sgd_update_fn) return cg->sgd_update_fn;
    LLVMBasicBlockRef here = LLVMGetInsertBlock(cg->b);
    LLVMTypeRef params[6] = {cg->elem_ptr, cg->elem_ptr, cg->elem_ptr, cg->i64, cg->elem, cg->elem};
    LLVMValueRef fn = new_helper_function(cg, "nnc.sgd.update", params, 6);
    LLVMValueRef p = LLVMGetParam(fn, 0), g = LLVMGetParam(fn, 1), v = LLVMGetParam(fn, 2);
    LLVMValueRef n = LLVMGetParam(fn, 3), lr = LLVMGetParam(fn, 4), mu = LLVMGetParam(fn, 5);
    LLVMBasicBlockRef plain = LLVMAppendBasicBlockInContext(cg->ctx, fn, "plain");
    LLVMBasicBlockRef momentum = LLVMAppendBasicBlockInContext(cg->ctx, fn, "momentum");
    LLVMValueRef no_momentum = LLVMBuildFCmp(cg->b, LLVMRealOEQ, mu, elem_const(cg, 0), "");
    LLVMBuildCondBr(cg->b, no_momentum, plain, momentum);
    Loop l;
    LLVMPositionBuilderAtEnd(cg->b, plain);
    LLVMValueRef i = loop_begin(cg, &l, n);
    store_at(cg, p, i, fp_sub(cg, load_at(cg, p, i), fp_mul(cg, lr, load_at(cg, g, i))));
    loop_end(cg, &l, false);
    LLVMBuildRetVoid(cg->b);
    LLVMPositionBuilderAtEnd(cg->b, momentum);
    i = loop_begin(cg, &l, n);
    LLVMValueRef vel = fp_add(cg, fp_mul(cg, mu, load_at(cg, v, i)), load_at(cg, g, i));
    store_at(cg, v, i, vel);
    store_at(cg, p, i, fp_sub(cg, load_at(cg, p, i), fp_mul(cg, lr, vel)));
    loop_end(cg, &l, false);
    LLVMBuildRetVoid(cg->b);
    LLVMPositionBuilderAtEnd(cg->b, here);
    return cg->sgd_update_fn = fn;
}

/* The GEMM that computes a parameter's whole gradient updates the parameter itself:
 * momentum 0: p = -lr * dW + 1 * p; otherwise v = 1 * dW + mu * v, then p -= lr * v. */
static void emit_fused_update(Codegen *cg, const Step *st) {
    const ParamPlan *pp = &cg->plan->params[st->update_param];
    const Value *mm = st->insts[0];
    LLVMValueRef param = address_of(cg, pp->param);
    LLVMValueRef velocity = fixed_address(cg, pp->velocity_offset);
    LLVMValueRef fn = current_function(cg);
    LLVMBasicBlockRef plain = LLVMAppendBasicBlockInContext(cg->ctx, fn, "sgd");
    LLVMBasicBlockRef momentum = LLVMAppendBasicBlockInContext(cg->ctx, fn, "momentum");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(cg->ctx, fn, "updated");
    LLVMValueRef no_momentum =
        LLVMBuildFCmp(cg->b, LLVMRealOEQ, cg->momentum, elem_const(cg, 0), "");
    LLVMBuildCondBr(cg->b, no_momentum, plain, momentum);
    LLVMPositionBuilderAtEnd(cg->b, plain);
    emit_product(cg, mm, param, LLVMBuildFNeg(cg->b, cg->lr, ""), elem_const(cg, 1));
    LLVMBuildBr(cg->b, done);
    LLVMPositionBuilderAtEnd(cg->b, momentum);
    emit_product(cg, mm, velocity, elem_const(cg, 1), cg->momentum);
    LLVMValueRef args[4] = {param, velocity, int64_const(cg, shape_numel(pp->param->shape)),
                            cg->lr};
    call(cg, sgd_apply_function(cg), args, 4);
    LLVMBuildBr(cg->b, done);
    LLVMPositionBuilderAtEnd(cg->b, done);
}

/* Parameters not updated inside a GEMM, once every gradient is in its grad buffer. */
static void update_other_params(Codegen *cg) {
    for (int i = 0; i < cg->g->params.n; i++) {
        const ParamPlan *pp = &cg->plan->params[i];
        if (!pp->grad || pp->fused_update) continue;
        LLVMValueRef args[6] = {address_of(cg, pp->param),
                                fixed_address(cg, pp->grad_offset),
                                fixed_address(cg, pp->velocity_offset),
                                int64_const(cg, shape_numel(pp->param->shape)),
                                cg->lr,
                                cg->momentum};
        call(cg, sgd_update_function(cg), args, 6);
    }
}

/* ---- entry points ---- */

static const Value *output_of(const Graph *g) {
    return g->output ? g->output : g->loss;
}

static void mark_entry_needs(Codegen *cg, Entry e) {
    memset(cg->needed, 0, (size_t)cg->g->next_id * sizeof *cg->needed);
    plan_mark_needed(output_of(cg->g), cg->needed);
    if (e != ENTRY_PREDICT) plan_mark_needed(cg->g->loss, cg->needed);
    if (e == ENTRY_GRAD || e == ENTRY_SGD_STEP)
        for (int i = 0; i < cg->g->params.n; i++)
            plan_mark_needed(cg->plan->params[i].grad, cg->needed);
}

static bool step_needed(const Codegen *cg, const Step *st) {
    for (int i = 0; i < st->n_insts; i++)
        if (cg->needed[st->insts[i]->id]) return true;
    return false;
}

static void emit_step(Codegen *cg, int step) {
    const Step *st = &cg->plan->steps[step];
    if (!step_needed(cg, st)) return;
    switch (st->kind) {
    case STEP_EW_LOOP: emit_loop_step(cg, step); break;
    case STEP_REDUCE:
    case STEP_ROW: emit_op_step(cg, step); break;
    case STEP_MATMUL:
        if (cg->entry == ENTRY_SGD_STEP && st->update_param >= 0)
            emit_fused_update(cg, st);
        else
            emit_product(cg, st->insts[0], address_of(cg, st->insts[0]), elem_const(cg, 1),
                         elem_const(cg, 0));
        break;
    }
}

/* A loss or output that is a constant still needs its value where the caller reads it. */
static void store_constant_root(Codegen *cg, const Value *root) {
    if (!has_memory(root))
        store_at(cg, address_of(cg, root), int64_const(cg, 0), scalar_leaf(cg, root));
}

/* Gradients not computed in place (a parameter, a constant, a value shared by two
 * parameters) are copied to their grad buffers. */
static void copy_gradients(Codegen *cg) {
    for (int i = 0; i < cg->g->params.n; i++) {
        const ParamPlan *pp = &cg->plan->params[i];
        if (!pp->grad || pp->grad_in_place) continue;
        if (cg->entry == ENTRY_SGD_STEP && pp->fused_update) continue;
        LLVMValueRef to = fixed_address(cg, pp->grad_offset);
        if (!has_memory(pp->grad)) {
            store_at(cg, to, int64_const(cg, 0), scalar_leaf(cg, pp->grad));
            continue;
        }
        int64_t bytes = shape_numel(pp->grad->shape) * elem_bytes(cg);
        LLVMBuildMemCpy(cg->b, to, elem_bytes(cg), address_of(cg, pp->grad), elem_bytes(cg),
                        int64_const(cg, bytes));
    }
}

static LLVMValueRef load_ctx_field(Codegen *cg, LLVMValueRef ctx, unsigned field, LLVMTypeRef t) {
    LLVMValueRef at = LLVMBuildStructGEP2(cg->b, cg->ctx_type, ctx, field, "");
    return LLVMBuildLoad2(cg->b, t, at, "");
}

static LLVMValueRef to_elem(Codegen *cg, LLVMValueRef d) {
    return cg->f64 ? d : LLVMBuildFPTrunc(cg->b, d, cg->elem, "");
}

static LLVMValueRef emit_entry(Codegen *cg, Entry e) {
    LLVMTypeRef type = e == ENTRY_SGD_STEP ? cg->sgd_entry_type : cg->entry_type;
    LLVMValueRef fn = LLVMAddFunction(cg->mod, xprintf("nnc.%s", entry_names[e]), type);
    LLVMSetLinkage(fn, LLVMInternalLinkage);
    add_attribute(cg, fn, (unsigned)LLVMAttributeFunctionIndex, "nounwind");
    LLVMPositionBuilderAtEnd(cg->b, LLVMAppendBasicBlockInContext(cg->ctx, fn, "entry"));
    cg->entry = e;
    LLVMValueRef ctx = LLVMGetParam(fn, 0);
    cg->fixed = load_ctx_field(cg, ctx, 0, cg->elem_ptr);
    cg->varying = load_ctx_field(cg, ctx, 1, cg->elem_ptr);
    cg->batch = load_ctx_field(cg, ctx, 2, cg->i64);
    cg->batch_cap = load_ctx_field(cg, ctx, 3, cg->i64);
    cg->training = load_ctx_field(cg, ctx, 4, cg->i32);
    cg->noise_seed = load_ctx_field(cg, ctx, 5, cg->i64);
    cg->inv_batch = fp_div(cg, elem_const(cg, 1), LLVMBuildSIToFP(cg->b, cg->batch, cg->elem, ""));
    cg->lr = e == ENTRY_SGD_STEP ? to_elem(cg, LLVMGetParam(fn, 1)) : NULL;
    cg->momentum = e == ENTRY_SGD_STEP ? to_elem(cg, LLVMGetParam(fn, 2)) : NULL;
    mark_entry_needs(cg, e);
    for (int s = 0; s < cg->plan->n_steps; s++) emit_step(cg, s);
    store_constant_root(cg, output_of(cg->g));
    if (e != ENTRY_PREDICT) store_constant_root(cg, cg->g->loss);
    if (e == ENTRY_GRAD || e == ENTRY_SGD_STEP) copy_gradients(cg);
    if (e == ENTRY_SGD_STEP) update_other_params(cg);
    LLVMBuildRetVoid(cg->b);
    return fn;
}

/* ---- the descriptor: runtime/nnrt.h's structs, field by field ---- */

_Static_assert(MAX_RANK == NNRT_MAX_RANK, "IR and runtime disagree on the largest rank");

typedef struct DescTypes {
    LLVMTypeRef tensor, column, setting, train, model;
} DescTypes;

static LLVMTypeRef named_struct(Codegen *cg, const char *name, LLVMTypeRef *fields, unsigned n) {
    LLVMTypeRef t = LLVMStructCreateNamed(cg->ctx, name);
    LLVMStructSetBody(t, fields, n, false);
    return t;
}

static DescTypes descriptor_types(Codegen *cg) {
    DescTypes t;
    LLVMTypeRef s = cg->i8_ptr, i32 = cg->i32, i64 = cg->i64, d = cg->f64_type;
    LLVMTypeRef tensor[12] = {
        s, i32, LLVMArrayType(i64, NNRT_MAX_RANK), i64, i64, i32, i32, d, d, i64, i64, i32};
    t.tensor = named_struct(cg, "nnrt_tensor", tensor, 12);
    LLVMTypeRef column[3] = {s, i32, i32};
    t.column = named_struct(cg, "nnrt_column_map", column, 3);
    LLVMTypeRef setting[2] = {s, s};
    t.setting = named_struct(cg, "nnrt_setting", setting, 2);
    LLVMTypeRef train[17] = {
        s,   s, s,   i32, compat_pointer_to(cg->ctx, t.column), s, d, d, i64, i64, i64, i64,
        i32, d, i32, i32, compat_pointer_to(cg->ctx, t.setting)};
    t.train = named_struct(cg, "nnrt_train_defaults", train, 17);
    LLVMTypeRef tensors = compat_pointer_to(cg->ctx, t.tensor);
    LLVMTypeRef entry = compat_pointer_to(cg->ctx, cg->entry_type);
    LLVMTypeRef sgd = compat_pointer_to(cg->ctx, cg->sgd_entry_type);
    LLVMTypeRef model[19] = {i32,     s,     s,       i32, i64,     i64,      i32,
                             tensors, i32,   tensors, i32, tensors, t.tensor, t.tensor,
                             entry,   entry, entry,   sgd, t.train};
    t.model = named_struct(cg, "nnrt_model", model, 19);
    return t;
}

static LLVMValueRef i32_const(Codegen *cg, int64_t n) {
    return LLVMConstInt(cg->i32, (unsigned long long)n, true);
}

static LLVMValueRef f64_const(Codegen *cg, double x) {
    return LLVMConstReal(cg->f64_type, x);
}

static LLVMValueRef private_constant(Codegen *cg, LLVMValueRef init, const char *name) {
    LLVMValueRef g = LLVMAddGlobal(cg->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, true);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(g, LLVMGlobalUnnamedAddr);
    return g;
}

static LLVMValueRef string_const(Codegen *cg, const char *s) {
    if (!s) return LLVMConstNull(cg->i8_ptr);
    LLVMValueRef text = LLVMConstStringInContext(cg->ctx, s, (unsigned)strlen(s), false);
    return compat_const_pointer_as(private_constant(cg, text, ".str"), cg->i8_ptr);
}

static LLVMValueRef array_const(Codegen *cg, LLVMTypeRef elem, LLVMValueRef *items, int n,
                                const char *name) {
    LLVMTypeRef ptr = compat_pointer_to(cg->ctx, elem);
    if (n == 0) return LLVMConstNull(ptr);
    LLVMValueRef init = compat_const_array(elem, items, (unsigned)n);
    return compat_const_pointer_as(private_constant(cg, init, name), ptr);
}

typedef struct ParamFields {
    int32_t init;
    double a, b;
    int64_t grad_offset, velocity_offset;
    bool surrogate;
} ParamFields;

static const ParamFields not_a_param = {0, 0, 0, -1, -1, false};

static int32_t nnrt_init_of(InitKind k) {
    switch (k) {
    case INIT_ZEROS: return NNRT_INIT_ZEROS;
    case INIT_ONES: return NNRT_INIT_ONES;
    case INIT_CONST: return NNRT_INIT_CONST;
    case INIT_GLOROT: return NNRT_INIT_GLOROT;
    case INIT_HE: return NNRT_INIT_HE;
    case INIT_NORMAL: return NNRT_INIT_NORMAL;
    case INIT_UNIFORM: return NNRT_INIT_UNIFORM;
    }
    return NNRT_INIT_ZEROS;
}

static LLVMValueRef tensor_const(Codegen *cg, const DescTypes *t, const char *name, const Value *v,
                                 ParamFields pf) {
    LLVMValueRef dims[NNRT_MAX_RANK];
    for (int i = 0; i < NNRT_MAX_RANK; i++)
        dims[i] = int64_const(cg, i < v->shape.rank ? v->shape.dim[i] : 0);
    Storage home = plan_value(cg->plan, v)->home;
    LLVMValueRef fields[12] = {string_const(cg, name),
                               i32_const(cg, v->shape.rank),
                               compat_const_array(cg->i64, dims, NNRT_MAX_RANK),
                               int64_const(cg, shape_numel(v->shape)),
                               int64_const(cg, home.offset),
                               i32_const(cg, home.arena == ARENA_VARYING),
                               i32_const(cg, pf.init),
                               f64_const(cg, pf.a),
                               f64_const(cg, pf.b),
                               int64_const(cg, pf.grad_offset),
                               int64_const(cg, pf.velocity_offset),
                               i32_const(cg, pf.surrogate)};
    return LLVMConstNamedStruct(t->tensor, fields, 12);
}

static LLVMValueRef leaf_tensors(Codegen *cg, const DescTypes *t, const ValueList *leaves,
                                 const char *name) {
    LLVMValueRef *items = xalloc((size_t)(leaves->n ? leaves->n : 1) * sizeof *items);
    for (int i = 0; i < leaves->n; i++)
        items[i] = tensor_const(cg, t, leaves->v[i]->name, leaves->v[i], not_a_param);
    return array_const(cg, t->tensor, items, leaves->n, name);
}

static LLVMValueRef param_tensors(Codegen *cg, const DescTypes *t) {
    const Graph *g = cg->g;
    LLVMValueRef *items = xalloc((size_t)(g->params.n ? g->params.n : 1) * sizeof *items);
    for (int i = 0; i < g->params.n; i++) {
        const ParamPlan *pp = &cg->plan->params[i];
        ParamInit init = i < g->param_inits.n ? g->param_inits.v[i] : (ParamInit){INIT_ZEROS, 0, 0};
        ParamFields pf = {nnrt_init_of(init.kind),
                          init.a,
                          init.b,
                          pp->grad_offset,
                          pp->velocity_offset,
                          g->param_surrogate && g->param_surrogate[i]};
        items[i] = tensor_const(cg, t, pp->param->name, pp->param, pf);
    }
    return array_const(cg, t->tensor, items, g->params.n, "nnc.params");
}

static LLVMValueRef train_const(Codegen *cg, const DescTypes *t) {
    const TrainSpec *ts = &cg->g->train;
    LLVMValueRef *cols = xalloc((size_t)(ts->columns.n ? ts->columns.n : 1) * sizeof *cols);
    for (int i = 0; i < ts->columns.n; i++) {
        const ColumnMap *c = &ts->columns.v[i];
        LLVMValueRef f[3] = {string_const(cg, c->tensor), i32_const(cg, c->first),
                             i32_const(cg, c->last)};
        cols[i] = LLVMConstNamedStruct(t->column, f, 3);
    }
    LLVMValueRef *settings =
        xalloc((size_t)(ts->settings.n ? ts->settings.n : 1) * sizeof *settings);
    for (int i = 0; i < ts->settings.n; i++) {
        LLVMValueRef f[2] = {string_const(cg, ts->settings.v[i].name),
                             string_const(cg, ts->settings.v[i].value)};
        settings[i] = LLVMConstNamedStruct(t->setting, f, 2);
    }
    LLVMValueRef fields[17] = {
        string_const(cg, ts->data_kind),
        string_const(cg, ts->data_path),
        string_const(cg, ts->data_path2),
        i32_const(cg, ts->columns.n),
        array_const(cg, t->column, cols, ts->columns.n, "nnc.columns"),
        string_const(cg, ts->optimizer ? ts->optimizer : "sgd"),
        f64_const(cg, ts->lr),
        f64_const(cg, ts->momentum),
        int64_const(cg, ts->batch),
        int64_const(cg, ts->epochs),
        int64_const(cg, ts->steps),
        int64_const(cg, ts->seed),
        i32_const(cg, ts->shuffle),
        f64_const(cg, ts->validation),
        i32_const(cg, !ts->classification ? NNRT_ACCURACY_NONE
                      : ts->output_logit  ? NNRT_ACCURACY_LOGIT
                                          : NNRT_ACCURACY_PROBABILITY),
        i32_const(cg, ts->settings.n),
        array_const(cg, t->setting, settings, ts->settings.n, "nnc.settings")};
    return LLVMConstNamedStruct(t->train, fields, 17);
}

static void emit_descriptor(Codegen *cg, LLVMValueRef *entries) {
    const Graph *g = cg->g;
    DescTypes t = descriptor_types(cg);
    const Value *out = output_of(g);
    LLVMValueRef fields[19] = {
        i32_const(cg, NNRT_ABI_VERSION),
        string_const(cg, g->name),
        string_const(cg, g->source_path),
        i32_const(cg, cg->f64),
        int64_const(cg, cg->plan->fixed_elems),
        int64_const(cg, cg->plan->varying_elems),
        i32_const(cg, g->params.n),
        param_tensors(cg, &t),
        i32_const(cg, g->inputs.n),
        leaf_tensors(cg, &t, &g->inputs, "nnc.inputs"),
        i32_const(cg, g->targets.n),
        leaf_tensors(cg, &t, &g->targets, "nnc.targets"),
        tensor_const(cg, &t, out->name ? out->name : "output", out, not_a_param),
        tensor_const(cg, &t, g->loss->name ? g->loss->name : "loss", g->loss, not_a_param),
        entries[ENTRY_FORWARD],
        entries[ENTRY_PREDICT],
        entries[ENTRY_GRAD],
        entries[ENTRY_SGD_STEP],
        train_const(cg, &t),
    };
    LLVMValueRef desc = LLVMAddGlobal(cg->mod, t.model, "nnrt_model_desc");
    LLVMSetInitializer(desc, LLVMConstNamedStruct(t.model, fields, 19));
    LLVMSetGlobalConstant(desc, true);
}

/* ---- the module, the host target, passes and output ---- */

static void init_llvm_once(void) {
    static bool done;
    if (done) return;
    done = true;
    LLVMInitializeNativeTarget();
    LLVMInitializeNativeAsmPrinter();
#if defined(__x86_64__)
    /* Lets the loop vectoriser call glibc's vector exp/log/sin/cos/pow (libmvec, linked
     * with -lmvec). An option of the whole process: parsed once. */
    const char *const args[] = {"nnc", "-vector-library=LIBMVEC-X86"};
    LLVMParseCommandLineOptions(2, args, NULL);
#endif
}

static LLVMTargetMachineRef host_target_machine(int opt_level) {
    char *triple = LLVMGetDefaultTargetTriple(), *error = NULL;
    LLVMTargetRef target;
    if (LLVMGetTargetFromTriple(triple, &target, &error)) {
        diag_fatal_noloc("no LLVM target for %s: %s", triple, error);
        LLVMDisposeMessage(error);
        LLVMDisposeMessage(triple);
        return NULL;
    }
    static const LLVMCodeGenOptLevel levels[4] = {LLVMCodeGenLevelNone, LLVMCodeGenLevelLess,
                                                  LLVMCodeGenLevelDefault,
                                                  LLVMCodeGenLevelAggressive};
    char *cpu = LLVMGetHostCPUName(), *features = LLVMGetHostCPUFeatures();
    LLVMTargetMachineRef tm = LLVMCreateTargetMachine(
        target, triple, cpu, features, levels[opt_level], LLVMRelocPIC, LLVMCodeModelDefault);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    LLVMDisposeMessage(triple);
    return tm;
}

static void codegen_init(Codegen *cg, Graph *g, const Plan *plan, bool f64,
                         LLVMTargetMachineRef tm) {
    memset(cg, 0, sizeof *cg);
    cg->g = g;
    cg->plan = plan;
    cg->f64 = f64;
    cg->ctx = LLVMContextCreate();
    cg->mod = LLVMModuleCreateWithNameInContext(g->name ? g->name : "model", cg->ctx);
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(cg->mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(tm);
    char *layout_text = LLVMCopyStringRepOfTargetData(layout);
    LLVMSetDataLayout(cg->mod, layout_text);
    LLVMDisposeMessage(layout_text);
    LLVMDisposeTargetData(layout);
    cg->b = LLVMCreateBuilderInContext(cg->ctx);
    cg->i1 = LLVMInt1TypeInContext(cg->ctx);
    cg->i8 = LLVMInt8TypeInContext(cg->ctx);
    cg->i32 = LLVMInt32TypeInContext(cg->ctx);
    cg->i64 = LLVMInt64TypeInContext(cg->ctx);
    cg->f64_type = LLVMDoubleTypeInContext(cg->ctx);
    cg->void_type = LLVMVoidTypeInContext(cg->ctx);
    cg->elem = f64 ? cg->f64_type : LLVMFloatTypeInContext(cg->ctx);
    cg->elem_ptr = compat_pointer_to(cg->ctx, cg->elem);
    cg->i8_ptr = compat_pointer_to(cg->ctx, cg->i8);
    /* nnrt_ctx: the arenas are typed as elements here (void * in C: same layout). */
    LLVMTypeRef ctx_fields[6] = {cg->elem_ptr, cg->elem_ptr, cg->i64, cg->i64, cg->i32, cg->i64};
    cg->ctx_type = named_struct(cg, "nnrt_ctx", ctx_fields, 6);
    LLVMTypeRef ctx_ptr = compat_pointer_to(cg->ctx, cg->ctx_type);
    cg->entry_type = LLVMFunctionType(cg->void_type, &ctx_ptr, 1, false);
    LLVMTypeRef sgd_params[3] = {ctx_ptr, cg->f64_type, cg->f64_type};
    cg->sgd_entry_type = LLVMFunctionType(cg->void_type, sgd_params, 3, false);
    cg->loop_md_kind = LLVMGetMDKindIDInContext(cg->ctx, "llvm.loop", 9);
    size_t steps = (size_t)(plan->n_steps ? plan->n_steps : 1);
    cg->loop_variants = xalloc(steps * sizeof *cg->loop_variants);
    cg->op_fns = xalloc(steps * sizeof *cg->op_fns);
    cg->needed = xalloc((size_t)g->next_id * sizeof *cg->needed);
}

static void codegen_dispose(Codegen *cg) {
    LLVMDisposeBuilder(cg->b);
    LLVMDisposeModule(cg->mod);
    LLVMContextDispose(cg->ctx);
}

static int verify_module(Codegen *cg) {
    char *message = NULL;
    int broken = LLVMVerifyModule(cg->mod, LLVMReturnStatusAction, &message);
    if (broken) {
        LLVMDumpModule(cg->mod);
        fprintf(stderr, "nnc: internal error: the generated LLVM module is invalid:\n%s\n",
                message);
    }
    LLVMDisposeMessage(message);
    return broken ? 1 : 0;
}

static int optimise(Codegen *cg, LLVMTargetMachineRef tm, int opt_level) {
    LLVMPassBuilderOptionsRef options = LLVMCreatePassBuilderOptions();
    /* The C API's defaults leave the SLP vectoriser off; clang turns both on from -O2. */
    LLVMPassBuilderOptionsSetLoopVectorization(options, opt_level >= 2);
    LLVMPassBuilderOptionsSetSLPVectorization(options, opt_level >= 2);
    LLVMErrorRef err = LLVMRunPasses(cg->mod, xprintf("default<O%d>", opt_level), tm, options);
    LLVMDisposePassBuilderOptions(options);
    if (!err) return 0;
    char *message = LLVMGetErrorMessage(err);
    fprintf(stderr, "nnc: internal error: LLVM passes failed: %s\n", message);
    LLVMDisposeErrorMessage(message);
    return 1;
}

static int write_output(Codegen *cg, LLVMTargetMachineRef tm, const BackendOptions *opt) {
    if (opt->llvm_ir_out) {
        char *text = LLVMPrintModuleToString(cg->mod);
        fputs(text, opt->llvm_ir_out);
        LLVMDisposeMessage(text);
        return 0;
    }
    /* In memory first, then written with checked writes through an OutFile: LLVM's own
     * file output exits the process on a full disk and leaves a truncated file. */
    char *error = NULL;
    LLVMMemoryBufferRef object = NULL;
    if (LLVMTargetMachineEmitToMemoryBuffer(tm, cg->mod, LLVMObjectFile, &error, &object)) {
        diag_fatal_noloc("cannot make the object file %s: %s", opt->obj_path, error);
        LLVMDisposeMessage(error);
        return 1;
    }
    bool written =
        outfile_write_all(opt->obj_path, LLVMGetBufferStart(object), LLVMGetBufferSize(object));
    LLVMDisposeMemoryBuffer(object);
    return written ? 0 : 1;
}

/* For NNC_STATS (common.h): the size of what LLVM is given. */
static void count_llvm_instructions(Codegen *cg) {
    for (LLVMValueRef f = LLVMGetFirstFunction(cg->mod); f; f = LLVMGetNextFunction(f))
        for (LLVMBasicBlockRef b = LLVMGetFirstBasicBlock(f); b; b = LLVMGetNextBasicBlock(b))
            for (LLVMValueRef i = LLVMGetFirstInstruction(b); i; i = LLVMGetNextInstruction(i))
                nnc_stats.llvm_insts++;
}

int backend_compile(Graph *g, const BackendOptions *opt) {
    if (opt->opt_level < 0 || opt->opt_level > 3) {
        diag_fatal_noloc("optimisation level %d is not one of 0, 1, 2, 3", opt->opt_level);
        return 1;
    }
    Plan *plan = plan_build(g);
    if (!plan) return 1;
    if (opt->plan_out) plan_print(plan, opt->plan_out);
    init_llvm_once();
    LLVMTargetMachineRef tm = host_target_machine(opt->opt_level);
    if (!tm) return 1;
    Codegen cg;
    codegen_init(&cg, g, plan, opt->f64, tm);
    LLVMValueRef entries[ENTRY_COUNT];
    for (int e = 0; e < ENTRY_COUNT; e++) entries[e] = emit_entry(&cg, (Entry)e);
    emit_descriptor(&cg, entries);
    count_llvm_instructions(&cg);
    int rc = verify_module(&cg);
    if (!rc) rc = optimise(&cg, tm, opt->opt_level);
    if (!rc) rc = write_output(&cg, tm, opt);
    codegen_dispose(&cg);
    LLVMDisposeTargetMachine(tm);
    return rc;
}
