/* llvm_compat.h: every difference between the LLVM 14 and LLVM 19 C APIs that nnc meets,
 * in one place. The rest of the back end uses only calls that exist in both: the typed
 * *2 builders (LLVMBuildLoad2, LLVMBuildInBoundsGEP2, LLVMBuildCall2), LLVMRunPasses (the
 * legacy pass manager is gone from LLVM 17), and no constant-expression builders beyond a
 * pointer cast. */
#ifndef NNC_LLVM_COMPAT_H
#define NNC_LLVM_COMPAT_H

#include <llvm-c/Core.h>
#include <llvm/Config/llvm-config.h>

/* A pointer to `elem` in address space 0. Pointers are opaque from LLVM 15 (`ptr`);
 * LLVM 14 wants the pointee type (`float*`). */
static inline LLVMTypeRef compat_pointer_to(LLVMContextRef ctx, LLVMTypeRef elem) {
#if LLVM_VERSION_MAJOR >= 15
    (void)elem;
    return LLVMPointerTypeInContext(ctx, 0);
#else
    (void)ctx;
    return LLVMPointerType(elem, 0);
#endif
}

/* A constant pointer seen as `type`: a no-op with opaque pointers; with LLVM 14's typed
 * pointers, [n x i8]* must become i8* and [n x T]* must become T*. */
static inline LLVMValueRef compat_const_pointer_as(LLVMValueRef ptr, LLVMTypeRef type) {
#if LLVM_VERSION_MAJOR >= 15
    (void)type;
    return ptr;
#else
    return LLVMConstPointerCast(ptr, type);
#endif
}

/* A constant array. LLVM 17 deprecates LLVMConstArray (unsigned length) for LLVMConstArray2. */
static inline LLVMValueRef compat_const_array(LLVMTypeRef elem, LLVMValueRef *values, unsigned n) {
#if LLVM_VERSION_MAJOR >= 17
    return LLVMConstArray2(elem, values, n);
#else
    return LLVMConstArray(elem, values, n);
#endif
}

/* Lets LLVM reassociate one floating-point add of a reduction so the loop vectorises.
 * LLVMSetFastMathFlags exists from LLVM 18; before that the C API cannot set fast-math
 * flags, and the loop hint llvm.loop.vectorize.enable (which codegen.c puts on every
 * reduction loop for both versions) is what allows the reordering. */
static inline void compat_allow_reassociation(LLVMValueRef fp_inst) {
#if LLVM_VERSION_MAJOR >= 18
    LLVMSetFastMathFlags(fp_inst, LLVMFastMathAllowReassoc);
#else
    (void)fp_inst;
#endif
}

#endif
