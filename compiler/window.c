/* window.c: the WINDOW steps (convolution, pooling, reshapes) as calls of the kernels of
 * runtime/conv.h, one call per instruction over the whole batch. The kernel gets the
 * step's geometry as a constant array, its operands, its result and the scratch memory the
 * plan gave the step (plan_window_scratch). docs/codegen.md, "Convolutions". */
#include "codegen.h"
#include "conv.h"

#include <string.h>

/* The geometry as the runtime's nnrt_window (plan_window), and whether the im2col matrix is
 * in the step's scratch already: the conv2d that leaves it there ran in this entry point
 * (plan.c, keep_scratch_until). */
static nnrt_window window_of(const Codegen *cg, const Step *st) {
    nnrt_window w = plan_window(st->insts[0]);
    w.cols_ready = st->cols_from >= 0 && step_needed(cg, &cg->plan->steps[st->cols_from]);
    return w;
}

/* A private constant array of the geometry's int64 fields, in conv.h's order. */
static LLVMValueRef geometry_constant(Codegen *cg, const Step *st) {
    const Value *v = st->insts[0];
    nnrt_window w = window_of(cg, st);
#define FIELD(name) int64_const(cg, w.name),
    LLVMValueRef fields[] = {NNRT_WINDOW_FIELDS(FIELD)};
#undef FIELD
    unsigned n = (unsigned)(sizeof fields / sizeof *fields);
    LLVMValueRef init = compat_const_array(cg->i64, fields, n);
    LLVMValueRef g = LLVMAddGlobal(cg->mod, LLVMTypeOf(init), xprintf("nnc.window.%d", v->id));
    LLVMSetInitializer(g, init);
    LLVMSetGlobalConstant(g, true);
    LLVMSetLinkage(g, LLVMPrivateLinkage);
    return compat_const_pointer_as(g, compat_pointer_to(cg->ctx, cg->i64));
}

/* An operand's address; a constant (a scalar bias of 0) is stored in a stack slot first. */
static LLVMValueRef operand_address(Codegen *cg, const Value *a) {
    if (has_memory(a)) return address_of(cg, a);
    LLVMValueRef slot = entry_alloca(cg);
    LLVMBuildStore(cg->b, scalar_leaf(cg, a), slot);
    return slot;
}

static LLVMValueRef scratch_address(Codegen *cg, const Step *st) {
    if (st->scratch.arena == ARENA_NONE) return LLVMConstNull(cg->elem_ptr);
    return element_ptr(cg, cg->varying,
                       mul64(cg, int64_const(cg, st->scratch.offset), cg->batch_cap));
}

void emit_window(Codegen *cg, const Step *st, LLVMValueRef out, LLVMValueRef alpha,
                 LLVMValueRef beta) {
    const Value *v = st->insts[0];
    LLVMTypeRef params[9] = {compat_pointer_to(cg->ctx, cg->i64),
                             cg->i64,
                             cg->elem,
                             cg->elem,
                             cg->elem_ptr,
                             cg->elem_ptr,
                             cg->elem_ptr,
                             cg->elem_ptr,
                             cg->elem_ptr};
    const char *name = xprintf("nnrt_%s_%s", op_info[v->op].name, cg->f64 ? "f64" : "f32");
    LLVMValueRef fn = declare_function(cg, name, cg->void_type, params, 9);
    bool varies = false;
    for (int i = 0; i < v->nargs; i++) varies |= v->args[i]->varying;
    LLVMValueRef args[9] = {geometry_constant(cg, st),
                            varies ? cg->batch : int64_const(cg, 1),
                            alpha,
                            beta,
                            LLVMConstNull(cg->elem_ptr),
                            LLVMConstNull(cg->elem_ptr),
                            LLVMConstNull(cg->elem_ptr),
                            out,
                            scratch_address(cg, st)};
    for (int i = 0; i < v->nargs; i++) args[4 + i] = operand_address(cg, v->args[i]);
    build_call(cg, fn, args, 9);
}

void emit_window_step(Codegen *cg, int step) {
    const Step *st = &cg->plan->steps[step];
    emit_window(cg, st, address_of(cg, st->insts[0]), elem_const(cg, 1), elem_const(cg, 0));
}
