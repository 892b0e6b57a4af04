/* test_descriptor.c: the descriptor's layout is defined once, by runtime/nnrt.h's field lists;
 * C makes its structs from them and codegen (descriptor.c) its LLVM types. This checks that
 * the two agree on the host's target: every field's offset and size and every struct's
 * size, in f32 and f64 modules (the arenas are typed as elements), by LLVM's data layout
 * against offsetof() and sizeof(). And that the check would notice a struct laid out
 * differently. */
#include "codegen.h"
#include "harness.h"

#include <stddef.h>
#include <string.h>

/* One struct as C lays it out: the offset and size of each field, by nnrt.h's list. */
typedef struct CLayout {
    const char *name;
    size_t size, n;
    const size_t *offsets, *sizes;
    const char *const *fields;
} CLayout;

#define FIELD_NAME(kind, name)   #name,
#define FIELD_OFFSET(kind, name) offsetof(C_STRUCT, name),
#define FIELD_SIZE(kind, name)   sizeof(((C_STRUCT *)0)->name),
#define C_LAYOUT(c_name, FIELDS)                                                                   \
    static const size_t c_name##_offsets[] = {FIELDS(FIELD_OFFSET)};                               \
    static const size_t c_name##_sizes[] = {FIELDS(FIELD_SIZE)};                                   \
    static const char *const c_name##_fields[] = {FIELDS(FIELD_NAME)};                             \
    static const CLayout c_name##_layout = {                                                       \
        #c_name,          sizeof(c_name), sizeof c_name##_offsets / sizeof(size_t),                \
        c_name##_offsets, c_name##_sizes, c_name##_fields};

#define C_STRUCT nnrt_ctx
C_LAYOUT(nnrt_ctx, NNRT_CTX_FIELDS)
#undef C_STRUCT
#define C_STRUCT nnrt_tensor
C_LAYOUT(nnrt_tensor, NNRT_TENSOR_FIELDS)
#undef C_STRUCT
#define C_STRUCT nnrt_column_map
C_LAYOUT(nnrt_column_map, NNRT_COLUMN_MAP_FIELDS)
#undef C_STRUCT
#define C_STRUCT nnrt_setting
C_LAYOUT(nnrt_setting, NNRT_SETTING_FIELDS)
#undef C_STRUCT
#define C_STRUCT nnrt_train_defaults
C_LAYOUT(nnrt_train_defaults, NNRT_TRAIN_DEFAULTS_FIELDS)
#undef C_STRUCT
#define C_STRUCT nnrt_step
C_LAYOUT(nnrt_step, NNRT_STEP_FIELDS)
#undef C_STRUCT
#define C_STRUCT nnrt_model
C_LAYOUT(nnrt_model, NNRT_MODEL_FIELDS)
#undef C_STRUCT

/* How many ways the LLVM struct t differs from c (each reported when report is set). */
static int differences(LLVMTargetDataRef td, LLVMTypeRef t, const CLayout *c, bool report) {
    int wrong = 0;
    const char *name = LLVMGetStructName(t);
    unsigned n = LLVMCountStructElementTypes(t);
    if (n != c->n) {
        if (report) check(false, "%s: %u fields in LLVM, %zu in C", name, n, c->n);
        return 1;
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned long long offset = LLVMOffsetOfElement(td, t, i);
        unsigned long long size = LLVMABISizeOfType(td, LLVMStructGetTypeAtIndex(t, i));
        if (offset == c->offsets[i] && size == c->sizes[i]) continue;
        wrong++;
        if (report)
            check(false, "%s.%s: LLVM puts %llu bytes at %llu, C %zu bytes at %zu", c->name,
                  c->fields[i], size, offset, c->sizes[i], c->offsets[i]);
    }
    unsigned long long size = LLVMABISizeOfType(td, t);
    if (size != c->size) {
        wrong++;
        if (report) check(false, "%s: %llu bytes in LLVM, %zu in C", c->name, size, c->size);
    }
    return wrong;
}

static void check_layouts(LLVMTargetDataRef td, bool f64) {
    Codegen cg = {.f64 = f64, .ctx = LLVMContextCreate()};
    codegen_types(&cg);
    DescTypes t = descriptor_types(&cg);
    const struct {
        LLVMTypeRef type;
        const CLayout *c;
    } pairs[] = {
        {t.ctx, &nnrt_ctx_layout},
        {t.tensor, &nnrt_tensor_layout},
        {t.column, &nnrt_column_map_layout},
        {t.setting, &nnrt_setting_layout},
        {t.train, &nnrt_train_defaults_layout},
        {t.step, &nnrt_step_layout},
        {t.model, &nnrt_model_layout},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        check(!strcmp(LLVMGetStructName(pairs[i].type), pairs[i].c->name),
              "the LLVM struct %s stands for %s", LLVMGetStructName(pairs[i].type),
              pairs[i].c->name);
        differences(td, pairs[i].type, pairs[i].c, true);
    }
    LLVMContextDispose(cg.ctx);
}

/* nnrt_tensor with its first two fields swapped must be told apart from the real one. */
static void check_notices_a_swap(LLVMTargetDataRef td) {
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMTypeRef s = compat_pointer_to(ctx, LLVMInt8TypeInContext(ctx));
    LLVMTypeRef i32 = LLVMInt32TypeInContext(ctx), i64 = LLVMInt64TypeInContext(ctx);
    LLVMTypeRef d = LLVMDoubleTypeInContext(ctx), dims = LLVMArrayType(i64, NNRT_MAX_RANK);
    LLVMTypeRef fields[12] = {i32, s, dims, i64, i64, i32, i32, d, d, i64, i64, i32};
    LLVMTypeRef swapped = LLVMStructCreateNamed(ctx, "nnrt_tensor");
    LLVMStructSetBody(swapped, fields, 12, false);
    check(differences(td, swapped, &nnrt_tensor_layout, false) > 0,
          "a struct with name and rank swapped passes for nnrt_tensor");
    LLVMContextDispose(ctx);
}

int main(void) {
    LLVMTargetMachineRef tm = codegen_host_target(2);
    if (!check(tm != NULL, "no target machine for the host"))
        return test_summary("test_descriptor");
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    check_layouts(td, false);
    check_layouts(td, true);
    check_notices_a_swap(td);
    LLVMDisposeTargetData(td);
    LLVMDisposeTargetMachine(tm);
    return test_summary("test_descriptor");
}
