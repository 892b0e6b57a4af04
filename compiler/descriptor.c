/* descriptor.c: nnrt_model_desc, the one global a compiled model exports, as
 * runtime/nnrt.h defines its structs: the tensors with their names, shapes, offsets and
 * initialisers, the entry points, and the train block's defaults. */
#include "codegen.h"
#include "nnrt.h"

#include <string.h>

_Static_assert(MAX_RANK == NNRT_MAX_RANK, "IR and runtime disagree on the largest rank");

typedef struct DescTypes {
    LLVMTypeRef tensor, column, setting, train, model;
} DescTypes;

static LLVMTypeRef named_struct(Codegen *cg, const char *name, LLVMTypeRef *fields, unsigned n) {
    LLVMTypeRef t = LLVMStructCreateNamed(cg->ctx, name);
    LLVMStructSetBody(t, fields, n, false);
    return t;
}

/* nnrt_ctx: the arenas are typed as elements here (void * in C: same layout). */
LLVMTypeRef descriptor_ctx_type(Codegen *cg) {
    LLVMTypeRef ctx_fields[6] = {cg->elem_ptr, cg->elem_ptr, cg->i64, cg->i64, cg->i32, cg->i64};
    return named_struct(cg, "nnrt_ctx", ctx_fields, 6);
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

void emit_descriptor(Codegen *cg, LLVMValueRef *entries) {
    const Graph *g = cg->g;
    DescTypes t = descriptor_types(cg);
    const Value *out = graph_output(g);
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
