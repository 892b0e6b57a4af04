/* emit.c: the vocabulary the code generator writes LLVM IR in (codegen.h): constants,
 * loads and stores, math intrinsics, counted loops, helper functions, sums and maxima along
 * a row, and where a value lives in the entry points. */
#include "codegen.h"

#include <llvm-c/DebugInfo.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void codegen_internal_error(const char *what) {
    fprintf(stderr, "nnc: internal error: %s\n", what);
    abort();
}

/* ---- small builders ---- */

LLVMValueRef int64_const(Codegen *cg, int64_t n) {
    return LLVMConstInt(cg->i64, (unsigned long long)n, true);
}

LLVMValueRef elem_const(Codegen *cg, double x) {
    return LLVMConstReal(cg->elem, x);
}

unsigned elem_bytes(const Codegen *cg) {
    return cg->f64 ? 8 : 4;
}

LLVMValueRef mul64(Codegen *cg, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildNSWMul(cg->b, a, b, "");
}

LLVMValueRef element_ptr(Codegen *cg, LLVMValueRef base, LLVMValueRef index) {
    return LLVMBuildInBoundsGEP2(cg->b, cg->elem, base, &index, 1, "");
}

LLVMValueRef load_at(Codegen *cg, LLVMValueRef base, LLVMValueRef index) {
    LLVMValueRef v = LLVMBuildLoad2(cg->b, cg->elem, element_ptr(cg, base, index), "");
    LLVMSetAlignment(v, elem_bytes(cg));
    return v;
}

void store_at(Codegen *cg, LLVMValueRef base, LLVMValueRef index, LLVMValueRef value) {
    LLVMValueRef st = LLVMBuildStore(cg->b, value, element_ptr(cg, base, index));
    LLVMSetAlignment(st, elem_bytes(cg));
}

LLVMValueRef fp_add(Codegen *cg, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFAdd(cg->b, a, b, "");
}
LLVMValueRef fp_sub(Codegen *cg, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFSub(cg->b, a, b, "");
}
LLVMValueRef fp_mul(Codegen *cg, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFMul(cg->b, a, b, "");
}
LLVMValueRef fp_div(Codegen *cg, LLVMValueRef a, LLVMValueRef b) {
    return LLVMBuildFDiv(cg->b, a, b, "");
}
LLVMValueRef select_if(Codegen *cg, LLVMRealPredicate pred, LLVMValueRef a, LLVMValueRef b,
                       LLVMValueRef then, LLVMValueRef otherwise) {
    return LLVMBuildSelect(cg->b, LLVMBuildFCmp(cg->b, pred, a, b, ""), then, otherwise, "");
}

LLVMValueRef current_function(Codegen *cg) {
    return LLVMGetBasicBlockParent(LLVMGetInsertBlock(cg->b));
}

LLVMValueRef build_call(Codegen *cg, LLVMValueRef fn, LLVMValueRef *args, unsigned n) {
    return LLVMBuildCall2(cg->b, LLVMGlobalGetValueType(fn), fn, args, n, "");
}

LLVMValueRef declare_function(Codegen *cg, const char *name, LLVMTypeRef ret, LLVMTypeRef *params,
                              unsigned n) {
    LLVMValueRef fn = LLVMGetNamedFunction(cg->mod, name);
    if (!fn) fn = LLVMAddFunction(cg->mod, name, LLVMFunctionType(ret, params, n, false));
    return fn;
}

/* llvm.<name>.f32 / .f64 with one or two operands: exp, log, sqrt, fabs, sin, cos, pow,
 * copysign. The loop vectoriser maps exp, log, sin, cos and pow to glibc's libmvec. */
static LLVMValueRef math_call(Codegen *cg, const char *name, LLVMValueRef *x, unsigned n) {
    const char *full = xprintf("llvm.%s.%s", name, cg->f64 ? "f64" : "f32");
    LLVMTypeRef params[2] = {cg->elem, cg->elem};
    return build_call(cg, declare_function(cg, full, cg->elem, params, n), x, n);
}
LLVMValueRef math1(Codegen *cg, const char *name, LLVMValueRef x) {
    return math_call(cg, name, &x, 1);
}
LLVMValueRef math2(Codegen *cg, const char *name, LLVMValueRef x, LLVMValueRef y) {
    LLVMValueRef xy[2] = {x, y};
    return math_call(cg, name, xy, 2);
}

void add_attribute(Codegen *cg, LLVMValueRef fn, unsigned index, const char *name) {
    unsigned kind = LLVMGetEnumAttributeKindForName(name, strlen(name));
    LLVMAddAttributeAtIndex(fn, index, LLVMCreateEnumAttribute(cg->ctx, kind, 0));
}

/* An internal function with noalias pointer parameters; the builder is left in its entry
 * block. */
LLVMValueRef new_helper_function(Codegen *cg, const char *name, LLVMTypeRef *params, unsigned n) {
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
LLVMValueRef entry_alloca(Codegen *cg) {
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

/* ---- loops ---- */

LLVMValueRef loop_begin(Codegen *cg, Loop *l, LLVMValueRef count) {
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
void loop_end(Codegen *cg, Loop *l, bool reduction) {
    if (l->trivial) return;
    LLVMValueRef next = LLVMBuildNSWAdd(cg->b, l->index, int64_const(cg, 1), "");
    LLVMBasicBlockRef latch = LLVMGetInsertBlock(cg->b);
    LLVMValueRef back = LLVMBuildBr(cg->b, l->header);
    LLVMAddIncoming(l->index, &next, &latch, 1);
    if (reduction) LLVMSetMetadata(back, cg->loop_md_kind, vectorize_hint(cg));
    LLVMPositionBuilderAtEnd(cg->b, l->exit);
}

/* ---- operands inside helper functions ---- */

LLVMValueRef operand_at(Codegen *cg, Operand o, LLVMValueRef i) {
    return o.ptr ? load_at(cg, o.ptr, i) : o.uniform;
}

Operand operand_plus(Codegen *cg, Operand o, LLVMValueRef offset) {
    if (o.ptr) o.ptr = element_ptr(cg, o.ptr, offset);
    return o;
}

/* Where sample b of a starts, relative to a's own start: a view's samples are those of the
 * value it is in. */
LLVMValueRef sample_offset(Codegen *cg, const Value *a, LLVMValueRef b) {
    const Value *in = plan_value(cg->plan, a)->view_of;
    int64_t stride = shape_numel((in ? in : a)->shape);
    return a->varying ? mul64(cg, b, int64_const(cg, stride)) : int64_const(cg, 0);
}

bool has_memory(const Value *a) {
    return a->op != OP_const && a->op != OP_inv_batch;
}

/* ---- sums and maxima along a row ---- */

/* The sum of term(i) for i < n, reassociated freely: the same binary always sums in the
 * same order, so results stay reproducible. */
LLVMValueRef sum_terms(Codegen *cg, int64_t n, TermFn term, const Terms *t) {
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

LLVMValueRef max_of(Codegen *cg, int64_t n, Operand a) {
    LLVMValueRef acc = entry_alloca(cg);
    LLVMBuildStore(cg->b, elem_const(cg, -INFINITY), acc);
    Loop l;
    LLVMValueRef i = loop_begin(cg, &l, int64_const(cg, n));
    LLVMValueRef x = operand_at(cg, a, i), m = LLVMBuildLoad2(cg->b, cg->elem, acc, "");
    LLVMBuildStore(cg->b, select_if(cg, LLVMRealOGT, x, m, x, m), acc);
    loop_end(cg, &l, false);
    return LLVMBuildLoad2(cg->b, cg->elem, acc, "");
}

/* ---- broadcasting along inner axes ---- */

bool runs_along(Shape s, Shape loop, int k) {
    int at = k - (loop.rank - s.rank);
    return at >= 0 && s.dim[at] == loop.dim[k] && loop.dim[k] > 1;
}

int inner_block(Shape loop, const Shape *s, int n, int *last_axis) {
    int last = loop.rank - 1;
    while (last > 0 && loop.dim[last] == 1) last--;
    *last_axis = last;
    int start = last;
    for (int k = last - 1; k >= 0; k--) {
        bool same = true;
        for (int i = 0; i < n && same; i++)
            same = loop.dim[k] == 1 || runs_along(s[i], loop, k) == runs_along(s[i], loop, last);
        if (!same) break;
        start = k;
    }
    return start;
}

LLVMValueRef broadcast_row_start(Codegen *cg, Shape loop, Shape s, LLVMValueRef r, int block) {
    LLVMValueRef at = int64_const(cg, 0);
    int64_t rows_after = 1, stride = 1; /* rows per index step; s's elements per index step */
    for (int k = loop.rank - 1; k >= block; k--)
        if (runs_along(s, loop, k)) stride *= loop.dim[k];
    for (int k = block - 1; k >= 0; k--) {
        if (runs_along(s, loop, k)) {
            LLVMValueRef index = LLVMBuildUDiv(cg->b, r, int64_const(cg, rows_after), "");
            index = LLVMBuildURem(cg->b, index, int64_const(cg, loop.dim[k]), "");
            at = LLVMBuildNSWAdd(cg->b, at, mul64(cg, index, int64_const(cg, stride)), "");
            stride *= loop.dim[k];
        }
        rows_after *= loop.dim[k];
    }
    return at;
}

/* ---- addresses in the entry points ---- */

LLVMValueRef fixed_address(Codegen *cg, int64_t offset) {
    return element_ptr(cg, cg->fixed, int64_const(cg, offset));
}

/* Where v starts: its rows of the whole batch are consecutive in the varying arena. */
LLVMValueRef address_of(Codegen *cg, const Value *v) {
    const ValuePlan *vp = plan_value(cg->plan, v);
    if (vp->view_of) /* read in place */
        return element_ptr(cg, address_of(cg, vp->view_of), int64_const(cg, vp->view_offset));
    Storage home = plan_value(cg->plan, v)->home;
    if (cg->entry == ENTRY_PREDICT && plan_value(cg->plan, v)->predict_home.arena != ARENA_NONE)
        home = plan_value(cg->plan, v)->predict_home; /* a binding predict keeps */
    if (v->op == OP_param) return element_ptr(cg, cg->params, int64_const(cg, home.offset));
    if (home.arena == ARENA_FIXED) return fixed_address(cg, home.offset);
    if (home.arena == ARENA_VARYING)
        return element_ptr(cg, cg->varying, mul64(cg, int64_const(cg, home.offset), cg->batch_cap));
    codegen_internal_error(xprintf("%s has no memory", ir_value_ref(v)));
    return NULL;
}

/* The value of a constant or 1/B in an entry point. */
LLVMValueRef scalar_leaf(Codegen *cg, const Value *v) {
    return v->op == OP_inv_batch ? cg->inv_batch : elem_const(cg, v->num);
}
