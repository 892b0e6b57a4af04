/* descriptor.c: nnrt_model_desc, the one global a compiled model exports, as
 * runtime/nnrt.h defines its structs: the tensors with their names, shapes, offsets and
 * initialisers, the entry points, and the train block's defaults. */
#include "codegen.h"
#include "nnrt.h"

#include <string.h>

_Static_assert(MAX_RANK == NNRT_MAX_RANK, "IR and runtime disagree on the largest rank");

/* ---- the types, from nnrt.h's field lists ---- */

/* The kinds of field nnrt.h's lists use (a kind it adds does not build here). */
typedef enum FieldKind {
    KIND_ARENA,
    KIND_STRING,
    KIND_I32,
    KIND_I64,
    KIND_U64,
    KIND_F64,
    KIND_DIMS,
    KIND_TENSOR,
    KIND_TENSORS,
    KIND_COLUMNS,
    KIND_SETTINGS,
    KIND_TRAIN,
    KIND_STEP,
    KIND_ENTRY,
    KIND_SGD_ENTRY,
} FieldKind;

/* The LLVM type of a field: the C type's layout for every kind (an arena is typed as the
 * element array it is; void * in C has the same layout). A kind that refers to another
 * struct needs that struct made first. */
static LLVMTypeRef field_type(Codegen *cg, const DescTypes *t, FieldKind kind) {
    switch (kind) {
    case KIND_ARENA: return cg->elem_ptr;
    case KIND_STRING: return cg->i8_ptr;
    case KIND_I32: return cg->i32;
    case KIND_I64:
    case KIND_U64: return cg->i64;
    case KIND_F64: return cg->f64_type;
    case KIND_DIMS: return LLVMArrayType(cg->i64, NNRT_MAX_RANK);
    case KIND_TENSOR: return t->tensor;
    case KIND_TENSORS: return compat_pointer_to(cg->ctx, t->tensor);
    case KIND_COLUMNS: return compat_pointer_to(cg->ctx, t->column);
    case KIND_SETTINGS: return compat_pointer_to(cg->ctx, t->setting);
    case KIND_TRAIN: return t->train;
    case KIND_STEP: return t->step;
    case KIND_ENTRY: return compat_pointer_to(cg->ctx, cg->entry_type);
    case KIND_SGD_ENTRY: return compat_pointer_to(cg->ctx, cg->sgd_entry_type);
    }
    codegen_internal_error("a descriptor field of no known kind");
    return NULL;
}

static LLVMTypeRef named_struct(Codegen *cg, const char *name, LLVMTypeRef *fields, unsigned n) {
    LLVMTypeRef t = LLVMStructCreateNamed(cg->ctx, name);
    LLVMStructSetBody(t, fields, n, false);
    return t;
}

#define FIELD_TYPE(kind, name) field_type(cg, t, KIND_##kind),
#define STRUCT_TYPE(c_name, FIELDS)                                                                \
    do {                                                                                           \
        LLVMTypeRef fields[] = {FIELDS(FIELD_TYPE)};                                               \
        made = named_struct(cg, #c_name, fields, sizeof fields / sizeof *fields);                  \
    } while (0)

LLVMTypeRef descriptor_ctx_type(Codegen *cg) {
    const DescTypes *t = NULL; /* nnrt_ctx refers to no other struct */
    LLVMTypeRef made;
    STRUCT_TYPE(nnrt_ctx, NNRT_CTX_FIELDS);
    return made;
}

DescTypes descriptor_types(Codegen *cg) {
    DescTypes types = {.ctx = cg->ctx_type}, *t = &types;
    LLVMTypeRef made;
    STRUCT_TYPE(nnrt_tensor, NNRT_TENSOR_FIELDS);
    t->tensor = made;
    STRUCT_TYPE(nnrt_column_map, NNRT_COLUMN_MAP_FIELDS);
    t->column = made;
    STRUCT_TYPE(nnrt_setting, NNRT_SETTING_FIELDS);
    t->setting = made;
    STRUCT_TYPE(nnrt_train_defaults, NNRT_TRAIN_DEFAULTS_FIELDS);
    t->train = made;
    STRUCT_TYPE(nnrt_step, NNRT_STEP_FIELDS);
    t->step = made;
    STRUCT_TYPE(nnrt_model, NNRT_MODEL_FIELDS);
    t->model = made;
    return types;
}

/* ---- the values ---- */

/* Each struct's fields by index and by name: a value is stored at its field's index, and a
 * field left without one is an internal error that names it. */
#define FIELD_NAME(kind, name)   #name,
#define TENSOR_FIELD(kind, name) TENSOR_##name,
enum { NNRT_TENSOR_FIELDS(TENSOR_FIELD) TENSOR_FIELDS };
static const char *const tensor_fields[] = {NNRT_TENSOR_FIELDS(FIELD_NAME)};
#define COLUMN_FIELD(kind, name) COLUMN_##name,
enum { NNRT_COLUMN_MAP_FIELDS(COLUMN_FIELD) COLUMN_FIELDS };
static const char *const column_fields[] = {NNRT_COLUMN_MAP_FIELDS(FIELD_NAME)};
#define SETTING_FIELD(kind, name) SETTING_##name,
enum { NNRT_SETTING_FIELDS(SETTING_FIELD) SETTING_FIELDS };
static const char *const setting_fields[] = {NNRT_SETTING_FIELDS(FIELD_NAME)};
#define TRAIN_FIELD(kind, name) TRAIN_##name,
enum { NNRT_TRAIN_DEFAULTS_FIELDS(TRAIN_FIELD) TRAIN_FIELDS };
static const char *const train_fields[] = {NNRT_TRAIN_DEFAULTS_FIELDS(FIELD_NAME)};
#define STEP_FIELD(kind, name) STEP_##name,
enum { NNRT_STEP_FIELDS(STEP_FIELD) STEP_FIELDS };
static const char *const step_fields[] = {NNRT_STEP_FIELDS(FIELD_NAME)};
#define MODEL_FIELD(kind, name) MODEL_##name,
enum { NNRT_MODEL_FIELDS(MODEL_FIELD) MODEL_FIELDS };
static const char *const model_fields[] = {NNRT_MODEL_FIELDS(FIELD_NAME)};

static LLVMValueRef struct_const(LLVMTypeRef type, LLVMValueRef *fields, unsigned n,
                                 const char *const *names) {
    for (unsigned i = 0; i < n; i++)
        if (!fields[i])
            codegen_internal_error(
                xprintf("the descriptor's %s.%s has no value", LLVMGetStructName(type), names[i]));
    return LLVMConstNamedStruct(type, fields, n);
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
    int64_t ids;        /* inputs and targets: nnrt_tensor.ids */
    int32_t grad_point; /* params: ParamPlan.grad_point */
} ParamFields;

static const ParamFields not_a_param = {0, 0, 0, -1, -1, false, 0, 0};

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

static LLVMValueRef tensor_const_at(Codegen *cg, const DescTypes *t, const char *name,
                                    const Value *v, Storage home, ParamFields pf) {
    LLVMValueRef dims[NNRT_MAX_RANK];
    for (int i = 0; i < NNRT_MAX_RANK; i++)
        dims[i] = int64_const(cg, i < v->shape.rank ? v->shape.dim[i] : 0);
    LLVMValueRef f[TENSOR_FIELDS] = {0};
    f[TENSOR_name] = string_const(cg, name);
    f[TENSOR_rank] = i32_const(cg, v->shape.rank);
    f[TENSOR_dims] = compat_const_array(cg->i64, dims, NNRT_MAX_RANK);
    f[TENSOR_numel] = int64_const(cg, shape_numel(v->shape));
    f[TENSOR_offset] = int64_const(cg, home.offset);
    f[TENSOR_varying] = i32_const(cg, home.arena == ARENA_VARYING);
    f[TENSOR_init] = i32_const(cg, pf.init);
    f[TENSOR_init_a] = f64_const(cg, pf.a);
    f[TENSOR_init_b] = f64_const(cg, pf.b);
    f[TENSOR_grad_offset] = int64_const(cg, pf.grad_offset);
    f[TENSOR_velocity_offset] = int64_const(cg, pf.velocity_offset);
    f[TENSOR_surrogate] = i32_const(cg, pf.surrogate);
    f[TENSOR_ids] = int64_const(cg, pf.ids);
    f[TENSOR_grad_point] = i32_const(cg, pf.grad_point);
    return struct_const(t->tensor, f, TENSOR_FIELDS, tensor_fields);
}

static LLVMValueRef tensor_const(Codegen *cg, const DescTypes *t, const char *name, const Value *v,
                                 ParamFields pf) {
    return tensor_const_at(cg, t, name, v, plan_value(cg->plan, v)->home, pf);
}

/* The bindings predict can print, where predict leaves them (plan.c). */
static LLVMValueRef binding_tensors(Codegen *cg, const DescTypes *t, int *n) {
    const Graph *g = cg->g;
    LLVMValueRef *items = xalloc((size_t)(g->bindings.n ? g->bindings.n : 1) * sizeof *items);
    *n = 0;
    for (int i = 0; i < g->bindings.n; i++) {
        Storage home = cg->plan->binding_homes[i];
        if (home.arena == ARENA_NONE) continue;
        items[(*n)++] =
            tensor_const_at(cg, t, g->bindings.v[i].name, g->bindings.v[i].v, home, not_a_param);
    }
    return array_const(cg, t->tensor, items, *n, "nnc.bindings");
}

/* The leaf whose elements `v` holds unchanged (moved by slices, transposes and reshapes),
 * or NULL when it computes new numbers. */
static const Value *moved_leaf(const Value *v) {
    while (v->op == OP_slice || v->op == OP_transpose || v->op == OP_permute ||
           v->op == OP_reshape || v->op == OP_flatten)
        v = v->args[0];
    return v->op == OP_input || v->op == OP_target ? v : NULL;
}

/* Narrows *ids to V when `leaf` reaches ids that run 0..V-1. */
static void narrow_ids(int64_t *ids, const Value *leaf, const Value *ids_arg, int64_t V) {
    if (moved_leaf(ids_arg) != leaf || V <= 0) return;
    if (*ids == 0 || V < *ids) *ids = V;
}

/* nnrt_tensor.ids of an input or target (nnrt.h): V when its values are token ids 0..V-1. */
static int64_t token_ids_of(const Graph *g, const Value *leaf) {
    int64_t ids = 0;
    for (int i = 0; i < g->n_forward; i++) {
        const Value *v = g->insts.v[i];
        if (v->op == OP_take) narrow_ids(&ids, leaf, v->args[1], v->args[0]->shape.dim[0]);
        if (v->op == OP_one_hot) narrow_ids(&ids, leaf, v->args[0], (int64_t)v->opt[0]);
    }
    const TrainSpec *ts = &g->train;
    if (ts->data_kind && !strcmp(ts->data_kind, "text") && leaf->shape.rank == 1 && ts->vocab > 0 &&
        (ids == 0 || ts->vocab < ids))
        ids = ts->vocab;
    return ids;
}

static LLVMValueRef leaf_tensors(Codegen *cg, const DescTypes *t, const ValueList *leaves,
                                 const char *name) {
    LLVMValueRef *items = xalloc((size_t)(leaves->n ? leaves->n : 1) * sizeof *items);
    for (int i = 0; i < leaves->n; i++) {
        ParamFields pf = not_a_param;
        pf.ids = token_ids_of(cg->g, leaves->v[i]);
        items[i] = tensor_const(cg, t, leaves->v[i]->name, leaves->v[i], pf);
    }
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
                          g->param_surrogate && g->param_surrogate[i],
                          0,
                          pp->grad_point};
        items[i] = tensor_const(cg, t, pp->param->name, pp->param, pf);
    }
    return array_const(cg, t->tensor, items, g->params.n, "nnc.params");
}

/* States: initialised like params, never trained (no gradient nor velocity buffer). */
static LLVMValueRef state_tensors(Codegen *cg, const DescTypes *t) {
    const Graph *g = cg->g;
    LLVMValueRef *items = xalloc((size_t)(g->states.n ? g->states.n : 1) * sizeof *items);
    for (int i = 0; i < g->states.n; i++) {
        ParamInit init = g->state_inits.v[i];
        ParamFields pf = {nnrt_init_of(init.kind), init.a, init.b, -1, -1, false, 0, 0};
        items[i] = tensor_const(cg, t, g->states.v[i]->name, g->states.v[i], pf);
    }
    return array_const(cg, t->tensor, items, g->states.n, "nnc.states");
}

static LLVMValueRef train_const(Codegen *cg, const DescTypes *t) {
    const TrainSpec *ts = &cg->g->train;
    LLVMValueRef *cols = xalloc((size_t)(ts->columns.n ? ts->columns.n : 1) * sizeof *cols);
    for (int i = 0; i < ts->columns.n; i++) {
        const ColumnMap *c = &ts->columns.v[i];
        LLVMValueRef f[COLUMN_FIELDS] = {0};
        f[COLUMN_tensor] = string_const(cg, c->tensor);
        f[COLUMN_first] = i32_const(cg, c->first);
        f[COLUMN_last] = i32_const(cg, c->last);
        cols[i] = struct_const(t->column, f, COLUMN_FIELDS, column_fields);
    }
    LLVMValueRef *settings =
        xalloc((size_t)(ts->settings.n ? ts->settings.n : 1) * sizeof *settings);
    for (int i = 0; i < ts->settings.n; i++) {
        LLVMValueRef f[SETTING_FIELDS] = {0};
        f[SETTING_name] = string_const(cg, ts->settings.v[i].name);
        f[SETTING_value] = string_const(cg, ts->settings.v[i].value);
        settings[i] = struct_const(t->setting, f, SETTING_FIELDS, setting_fields);
    }
    LLVMValueRef f[TRAIN_FIELDS] = {0};
    f[TRAIN_data_kind] = string_const(cg, ts->data_kind);
    f[TRAIN_data_path] = string_const(cg, ts->data_path);
    f[TRAIN_data_path2] = string_const(cg, ts->data_path2);
    f[TRAIN_n_columns] = i32_const(cg, ts->columns.n);
    f[TRAIN_columns] = array_const(cg, t->column, cols, ts->columns.n, "nnc.columns");
    f[TRAIN_optimizer] = string_const(cg, ts->optimizer ? ts->optimizer : "sgd");
    f[TRAIN_lr] = f64_const(cg, ts->lr);
    f[TRAIN_momentum] = f64_const(cg, ts->momentum);
    f[TRAIN_batch] = int64_const(cg, ts->batch);
    f[TRAIN_epochs] = int64_const(cg, ts->epochs);
    f[TRAIN_steps] = int64_const(cg, ts->steps);
    f[TRAIN_seed] = int64_const(cg, ts->seed);
    f[TRAIN_shuffle] = i32_const(cg, ts->shuffle);
    f[TRAIN_validation] = f64_const(cg, ts->validation);
    f[TRAIN_classification] = i32_const(cg, !ts->classification ? NNRT_ACCURACY_NONE
                                            : ts->output_logit  ? NNRT_ACCURACY_LOGIT
                                                                : NNRT_ACCURACY_PROBABILITY);
    f[TRAIN_n_settings] = i32_const(cg, ts->settings.n);
    f[TRAIN_settings] = array_const(cg, t->setting, settings, ts->settings.n, "nnc.settings");
    f[TRAIN_vocab] = int64_const(cg, ts->vocab);
    return struct_const(t->train, f, TRAIN_FIELDS, train_fields);
}

/* The carries of the one-step form: where step reads each (its input), or, by binding
 * (lower_step_form lists each carry's out and init in turn), where step leaves it
 * (first = 0) and its start (first = 1). */
static LLVMValueRef carry_tensors(Codegen *step, const DescTypes *t, int first, const char *name) {
    const Graph *g = step->g;
    LLVMValueRef *items = xalloc((size_t)g->carries.n * sizeof *items);
    for (int i = 0; i < g->carries.n; i++) {
        const Carry *c = &g->carries.v[i];
        if (first < 0) {
            items[i] = tensor_const(step, t, c->name, c->in, not_a_param);
            continue;
        }
        const NamedValue *b = &g->bindings.v[2 * i + first];
        Storage home = step->plan->binding_homes[2 * i + first];
        if (home.arena == ARENA_NONE) codegen_internal_error("a carry of the step has no home");
        items[i] = tensor_const_at(step, t, b->name, b->v, home, not_a_param);
    }
    return array_const(step, t->tensor, items, g->carries.n, name);
}

/* nnrt_step: the one-step form (step: its codegen), or all zeros and why there is none. */
static LLVMValueRef step_const(Codegen *cg, const DescTypes *t, Codegen *step, LLVMValueRef entry) {
    LLVMValueRef f[STEP_FIELDS] = {0};
    if (!step) {
        for (unsigned i = 0; i < STEP_FIELDS; i++)
            f[i] = LLVMConstNull(LLVMStructGetTypeAtIndex(t->step, i));
        const char *why = cg->g->step_missing;
        f[STEP_missing] = string_const(cg, why ? why : "it was compiled without one");
        return struct_const(t->step, f, STEP_FIELDS, step_fields);
    }
    const Graph *g = step->g;
    const Value *out = graph_output(g);
    f[STEP_missing] = string_const(cg, NULL);
    f[STEP_fixed_elems] = int64_const(cg, step->plan->fixed_elems);
    f[STEP_varying_elems] =
        int64_const(cg, step->plan->varying_elems + step->plan->predict_extra_elems);
    f[STEP_n_params] = i32_const(cg, g->params.n);
    f[STEP_params] = param_tensors(step, t);
    f[STEP_n_states] = i32_const(cg, g->states.n);
    f[STEP_states] = state_tensors(step, t);
    f[STEP_input] = tensor_const(step, t, g->inputs.v[0]->name, g->inputs.v[0], not_a_param);
    f[STEP_output] = tensor_const(step, t, out->name ? out->name : "output", out, not_a_param);
    f[STEP_n_carries] = i32_const(cg, g->carries.n);
    f[STEP_carries] = carry_tensors(step, t, -1, "nnc.step.carries");
    f[STEP_carries_out] = carry_tensors(step, t, 0, "nnc.step.carries_out");
    f[STEP_carries_init] = carry_tensors(step, t, 1, "nnc.step.carries_init");
    f[STEP_step] = entry;
    return struct_const(t->step, f, STEP_FIELDS, step_fields);
}

void emit_descriptor(Codegen *cg, LLVMValueRef *entries, LLVMValueRef *team_entries, Codegen *step,
                     LLVMValueRef step_entry) {
    const Graph *g = cg->g;
    DescTypes t = descriptor_types(cg);
    const Value *out = graph_output(g);
    LLVMValueRef f[MODEL_FIELDS] = {0};
    f[MODEL_abi_version] = i32_const(cg, NNRT_ABI_VERSION);
    f[MODEL_name] = string_const(cg, g->name);
    f[MODEL_source] = string_const(cg, g->source_path);
    f[MODEL_f64] = i32_const(cg, cg->f64);
    f[MODEL_fixed_elems] = int64_const(cg, cg->plan->fixed_elems);
    f[MODEL_varying_elems] = int64_const(cg, cg->plan->varying_elems);
    f[MODEL_n_params] = i32_const(cg, g->params.n);
    f[MODEL_params] = param_tensors(cg, &t);
    f[MODEL_n_states] = i32_const(cg, g->states.n);
    f[MODEL_states] = state_tensors(cg, &t);
    f[MODEL_n_inputs] = i32_const(cg, g->inputs.n);
    f[MODEL_inputs] = leaf_tensors(cg, &t, &g->inputs, "nnc.inputs");
    f[MODEL_n_targets] = i32_const(cg, g->targets.n);
    f[MODEL_targets] = leaf_tensors(cg, &t, &g->targets, "nnc.targets");
    f[MODEL_n_dropouts] = i32_const(cg, ir_count_dropouts(g));
    f[MODEL_output] = tensor_const(cg, &t, out->name ? out->name : "output", out, not_a_param);
    f[MODEL_loss] =
        tensor_const(cg, &t, g->loss->name ? g->loss->name : "loss", g->loss, not_a_param);
    int n_bindings;
    f[MODEL_bindings] = binding_tensors(cg, &t, &n_bindings);
    f[MODEL_n_bindings] = i32_const(cg, n_bindings);
    f[MODEL_predict_extra_elems] = int64_const(cg, cg->plan->predict_extra_elems);
    f[MODEL_forward] = entries[ENTRY_FORWARD];
    f[MODEL_predict] = entries[ENTRY_PREDICT];
    f[MODEL_grad] = entries[ENTRY_GRAD];
    f[MODEL_sgd_step] = entries[ENTRY_SGD_STEP];
    f[MODEL_grad_team] = team_entries[0]
                             ? team_entries[0]
                             : LLVMConstNull(compat_pointer_to(cg->ctx, cg->entry_type));
    f[MODEL_sgd_step_team] = team_entries[1]
                                 ? team_entries[1]
                                 : LLVMConstNull(compat_pointer_to(cg->ctx, cg->sgd_entry_type));
    f[MODEL_train] = train_const(cg, &t);
    f[MODEL_step] = step_const(cg, &t, step, step_entry);
    LLVMValueRef desc = LLVMAddGlobal(cg->mod, t.model, "nnrt_model_desc");
    LLVMSetInitializer(desc, struct_const(t.model, f, MODEL_FIELDS, model_fields));
    LLVMSetGlobalConstant(desc, true);
}
