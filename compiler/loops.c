/* loops.c: running the kernels (kernels.c). A fused loop computes the needed members of an
 * elementwise step for every element of its iteration space, reading each operand as its
 * shape relates to the loop's; a row op or a reduction is one helper function over the
 * batch. Each is an internal function with noalias pointers, called from the entry points
 * (docs/codegen.md, "Steps and fusion"). */
#include "codegen.h"

#include <string.h>

/* ---- fused elementwise loops ----
 * A loop computes the needed members of one STEP_EW_LOOP for every element of its
 * iteration space (batch x numel when it varies). How it reads an operand depends on the
 * operand's shape (which broadcasts to the result's) and on whether it varies: */

typedef enum PortKind {
    PORT_FULL,          /* same numel, same varying: element i of the loop's space */
    PORT_BROADCAST,     /* repeated: a shorter suffix, or the same numel without batch axis */
    PORT_SAMPLE_SCALAR, /* one value per sample */
    PORT_FIXED_SCALAR,  /* one value for the whole loop */
    PORT_STRIDED,       /* broadcast along an axis that is not leading: g [C,1,1] under [C,H,W] */
} PortKind;

typedef struct Port {
    const Value *v;
    PortKind kind;
    LLVMValueRef param, sample, row, scalar;
    bool row_uniform; /* strided loops: one value for the whole inner loop, in scalar */
    bool view;        /* a slice read in place: its samples are not numel apart */
} Port;

typedef struct FusedLoop {
    int step;
    bool varying;
    int64_t numel;
    Shape shape;           /* the members' shape, without leading 1s */
    ValueList members;     /* the members this entry point needs */
    VEC(Port) ports;       /* the operands read from memory */
    LLVMValueRef *value;   /* per member: its value in the current iteration */
    LLVMValueRef *out;     /* per member: its output parameter, NULL when in a register */
    LLVMValueRef *out_row; /* per member: where the current row of it goes */
    bool uses_inv_batch;
    LLVMValueRef inv_batch;
    bool uses_noise; /* a member is RANDOM (a dropout) */
    bool uses_mode;  /* a member is MODE (training(a, b)) */
    /* then the loop takes the fields of nnrt_ctx it needs */
    LLVMValueRef training, noise_seed, first_row, dropout_keep;
    LLVMValueRef is_training; /* i1, for MODE members: training is not 0 */
    Masks *masks;             /* per member, for the RANDOM ones */
    LLVMValueRef row_element; /* i64: the current row's first element, b*numel + r*L */
    LLVMValueRef element;     /* i64: the current element's place in the batch */
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
    if (!shape_is_suffix(shape_without_leading_ones(v->shape), L->shape)) return PORT_STRIDED;
    return PORT_BROADCAST;
}

/* A member in a register is stored all the same where predict keeps it as a binding. */
static bool kept_for_predict(const Codegen *cg, const Value *member) {
    return cg->entry == ENTRY_PREDICT &&
           plan_value(cg->plan, member)->predict_home.arena != ARENA_NONE;
}

bool member_stored(const Codegen *cg, const Value *member) {
    return !plan_value(cg->plan, member)->in_register || kept_for_predict(cg, member);
}

static void collect_loop(Codegen *cg, int step, FusedLoop *L) {
    const Step *st = &cg->plan->steps[step];
    memset(L, 0, sizeof *L);
    L->step = step;
    L->varying = st->insts[0]->varying;
    L->numel = shape_numel(st->insts[0]->shape);
    L->shape = shape_without_leading_ones(st->insts[0]->shape);
    for (int i = 0; i < st->n_insts; i++)
        if (cg->needed[st->insts[i]->id]) vec_push(&L->members, st->insts[i]);
    for (int i = 0; i < L->members.n; i++) {
        const Value *m = L->members.v[i];
        if (op_info[m->op].flags & OPF_RANDOM) L->uses_noise = true;
        if (op_info[m->op].flags & OPF_MODE) L->uses_mode = true;
        for (int j = 0; j < m->nargs; j++) {
            Value *a = m->args[j];
            if (a->op == OP_inv_batch) L->uses_inv_batch = true;
            if (!has_memory(a) || member_index(L, a) >= 0 || find_port(L, a)) continue;
            /* a reshape's view is a's samples as they are: read it as any operand */
            const Value *in = plan_value(cg->plan, a)->view_of;
            bool view = in && shape_numel(in->shape) != shape_numel(a->shape);
            vec_push(&L->ports, ((Port){.v = a, .kind = port_kind(L, a), .view = view}));
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
    for (int i = 0; i < L->ports.n; i++) {
        const Port *p = &L->ports.v[i];
        if ((p->kind != PORT_FULL && p->kind != PORT_FIXED_SCALAR) || (p->view && p->v->varying))
            return false;
    }
    return true;
}

/* The innermost loop runs over the shortest repeated operand, so that within it every
 * operand is read contiguously and no index needs a division. Without strided operands the
 * shapes are suffixes of one shape, so the shortest length divides every other length. */
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
    bool scalar = p->kind == PORT_SAMPLE_SCALAR || p->kind == PORT_FIXED_SCALAR;
    return scalar || p->row_uniform ? p->scalar : load_at(cg, p->row, j);
}

static void loop_body(Codegen *cg, FusedLoop *L, LLVMValueRef j) {
    if (L->uses_noise) L->element = LLVMBuildNSWAdd(cg->b, L->row_element, j, "");
    for (int i = 0; i < L->members.n; i++) {
        const Value *m = L->members.v[i];
        LLVMValueRef x[3];
        for (int k = 0; k < m->nargs; k++) x[k] = loop_operand(cg, L, m->args[k], j);
        L->value[i] = ew_kernels[m->op](cg, m, x);
        if (L->out[i]) store_at(cg, L->out_row[i], j, L->value[i]);
    }
}

/* What a RANDOM kernel (dropout) reads of the loop it is in. */
const Masks *loop_masks(Codegen *cg, const Value *v) {
    return &cg->loop->masks[member_index(cg->loop, v)];
}

LLVMValueRef loop_element(Codegen *cg) {
    return cg->loop->element;
}

LLVMValueRef loop_is_training(Codegen *cg) {
    return cg->loop->is_training;
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

/* ---- loops with operands broadcast along inner axes ----
 * g [C,1,1] under [C,H,W], or m [T,1] under [T,D], is repeated along axes that are not
 * leading, so no period serves it. The loop's axes are split in two: the trailing block on
 * which every operand is either read along (its axes equal the loop's) or constant (its
 * axes 1) is the inner loop, contiguous or uniform in each operand and free of division;
 * each axis before it costs a division by a constant once per row, to find where the row
 * starts in each operand. */

/* The inner block of the loop's shape for the operands read from memory. */
static int loop_block(const FusedLoop *L, int *last_axis) {
    Shape *shapes = xalloc((size_t)(L->ports.n + 1) * sizeof *shapes);
    int n = 0;
    for (int i = 0; i < L->ports.n; i++) {
        const Port *p = &L->ports.v[i];
        if (p->kind != PORT_SAMPLE_SCALAR && p->kind != PORT_FIXED_SCALAR)
            shapes[n++] = shape_without_leading_ones(p->v->shape);
    }
    return inner_block(L->shape, shapes, n, last_axis);
}

/* Row r of sample b: where it starts in each operand read from memory (one load for an
 * operand constant on the block) and in each stored member. */
static void set_strided_row_bases(Codegen *cg, FusedLoop *L, LLVMValueRef b, LLVMValueRef r,
                                  int block, int last, int64_t inner) {
    for (int i = 0; i < L->ports.n; i++) {
        Port *p = &L->ports.v[i];
        if (p->kind == PORT_SAMPLE_SCALAR || p->kind == PORT_FIXED_SCALAR) continue;
        Shape s = shape_without_leading_ones(p->v->shape);
        p->row = element_ptr(cg, p->sample, broadcast_row_start(cg, L->shape, s, r, block));
        p->row_uniform = !runs_along(s, L->shape, last);
        if (p->row_uniform) p->scalar = load_at(cg, p->row, int64_const(cg, 0));
    }
    LLVMValueRef out_at = LLVMBuildNSWAdd(cg->b, mul64(cg, b, int64_const(cg, L->numel)),
                                          mul64(cg, r, int64_const(cg, inner)), "");
    for (int i = 0; i < L->members.n; i++)
        if (L->out[i]) L->out_row[i] = element_ptr(cg, L->out[i], out_at);
    L->row_element = out_at;
}

/* for b < nb: for r < rows: for j < inner, with each row's start found per operand. */
static void strided_loops(Codegen *cg, FusedLoop *L, LLVMValueRef nb) {
    int last;
    int block = loop_block(L, &last);
    int64_t inner = 1;
    for (int k = block; k < L->shape.rank; k++) inner *= L->shape.dim[k];
    Loop lb, lr, lj;
    LLVMValueRef b = loop_begin(cg, &lb, nb);
    set_sample_bases(cg, L, b);
    LLVMValueRef r = loop_begin(cg, &lr, int64_const(cg, L->numel / inner));
    set_strided_row_bases(cg, L, b, r, block, last, inner);
    LLVMValueRef j = loop_begin(cg, &lj, int64_const(cg, inner));
    loop_body(cg, L, j);
    loop_end(cg, &lj, false);
    loop_end(cg, &lr, false);
    loop_end(cg, &lb, false);
}

static bool has_strided_port(const FusedLoop *L) {
    for (int i = 0; i < L->ports.n; i++)
        if (L->ports.v[i].kind == PORT_STRIDED) return true;
    return false;
}

/* The members, and which of them predict stores though they live in registers. */
static const char *loop_key(const Codegen *cg, const FusedLoop *L) {
    StrBuf key = {0};
    for (int i = 0; i < L->members.n; i++) {
        const Value *m = L->members.v[i];
        bool extra = kept_for_predict(cg, m) && plan_value(cg->plan, m)->in_register;
        sb_printf(&key, "%d%s,", m->id, extra ? "s" : "");
    }
    return sb_str(&key);
}

/* The function of a fused loop: (operands..., stored members..., [nb], [1/B], [training],
 * [noise_seed, first_row, dropout_keep]). */
static LLVMValueRef loop_function(Codegen *cg, FusedLoop *L) {
    const char *key = loop_key(cg, L);
    for (LoopVariant *v = cg->loop_variants[L->step]; v; v = v->next)
        if (!strcmp(v->members, key)) return v->fn;
    LLVMTypeRef *params = xalloc((size_t)(L->ports.n + L->members.n + 5) * sizeof *params);
    unsigned n = 0;
    for (int i = 0; i < L->ports.n; i++) params[n++] = cg->elem_ptr;
    for (int i = 0; i < L->members.n; i++)
        if (member_stored(cg, L->members.v[i])) params[n++] = cg->elem_ptr;
    if (L->varying) params[n++] = cg->i64;
    if (L->uses_inv_batch) params[n++] = cg->elem;
    if (L->uses_noise || L->uses_mode) params[n++] = cg->i32;
    if (L->uses_noise) params[n++] = cg->i64, params[n++] = cg->i64, params[n++] = cg->f64_type;
    LLVMValueRef fn = new_helper_function(cg, xprintf("nnc.loop.%d", L->step), params, n);
    unsigned k = 0;
    for (int i = 0; i < L->ports.n; i++) L->ports.v[i].param = LLVMGetParam(fn, k++);
    for (int i = 0; i < L->members.n; i++)
        if (member_stored(cg, L->members.v[i])) L->out[i] = LLVMGetParam(fn, k++);
    LLVMValueRef nb = L->varying ? LLVMGetParam(fn, k++) : int64_const(cg, 1);
    if (L->uses_inv_batch) L->inv_batch = LLVMGetParam(fn, k++);
    if (L->uses_noise || L->uses_mode) L->training = LLVMGetParam(fn, k++);
    if (L->uses_mode)
        L->is_training =
            LLVMBuildICmp(cg->b, LLVMIntNE, L->training, LLVMConstInt(cg->i32, 0, false), "");
    if (L->uses_noise) {
        L->noise_seed = LLVMGetParam(fn, k++);
        L->first_row = LLVMGetParam(fn, k++);
        L->dropout_keep = LLVMGetParam(fn, k++);
        for (int i = 0; i < L->members.n; i++)
            if (op_info[L->members.v[i]->op].flags & OPF_RANDOM)
                L->masks[i] = dropout_masks(cg, L->training, L->noise_seed, L->first_row,
                                            L->dropout_keep, L->members.v[i]);
    }
    for (int i = 0; i < L->ports.n; i++)
        if (L->ports.v[i].kind == PORT_FIXED_SCALAR)
            L->ports.v[i].scalar = load_at(cg, L->ports.v[i].param, int64_const(cg, 0));
    cg->loop = L;
    if (has_strided_port(L))
        strided_loops(cg, L, nb);
    else if (loop_is_flat(L))
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

void emit_loop_step(Codegen *cg, int step) {
    FusedLoop L;
    collect_loop(cg, step, &L);
    LLVMBasicBlockRef here = LLVMGetInsertBlock(cg->b);
    LLVMValueRef fn = loop_function(cg, &L);
    LLVMPositionBuilderAtEnd(cg->b, here);
    LLVMValueRef *args = xalloc((size_t)(L.ports.n + L.members.n + 5) * sizeof *args);
    unsigned n = 0;
    for (int i = 0; i < L.ports.n; i++) args[n++] = address_of(cg, L.ports.v[i].v);
    for (int i = 0; i < L.members.n; i++)
        if (member_stored(cg, L.members.v[i])) args[n++] = address_of(cg, L.members.v[i]);
    if (L.varying) args[n++] = cg->batch;
    if (L.uses_inv_batch) args[n++] = cg->inv_batch;
    if (L.uses_noise || L.uses_mode) args[n++] = cg->training;
    if (L.uses_noise)
        args[n++] = cg->noise_seed, args[n++] = cg->first_row, args[n++] = cg->dropout_keep;
    build_call(cg, fn, args, n);
}

/* ---- helper functions for reductions and row ops ----
 * Each gets (operands..., out, [nb]); an operand with memory is a pointer to its start,
 * 1/B comes by value and a constant is written into the function. */

/* Rows along the last axis; every leading axis and every sample is rows. With a loss
 * (softmax_ce of v's z and y, v their softmax_ce_grad: loss_and_grad_pair), its value goes to
 * loss_out in the same pass. */
static void rows_of(Codegen *cg, const Value *v, Operand *args, LLVMValueRef out, const Value *loss,
                    LLVMValueRef loss_out, LLVMValueRef nb) {
    const Value *z = v->args[0];
    int64_t C = z->shape.dim[z->shape.rank - 1], rows = shape_numel(z->shape) / C;
    Loop lb, lr;
    LLVMValueRef b = loop_begin(cg, &lb, nb);
    LLVMValueRef out_sample = element_ptr(cg, out, sample_offset(cg, v, b));
    bool to_scalar = v->shape.rank == 0; /* softmax_ce: the rows' sum, per sample */
    if (to_scalar) store_at(cg, out_sample, int64_const(cg, 0), elem_const(cg, 0));
    LLVMValueRef loss_sample = loss ? element_ptr(cg, loss_out, sample_offset(cg, loss, b)) : NULL;
    if (loss) store_at(cg, loss_sample, int64_const(cg, 0), elem_const(cg, 0));
    LLVMValueRef r = loop_begin(cg, &lr, int64_const(cg, rows));
    LLVMValueRef row_start = mul64(cg, r, int64_const(cg, C));
    Operand row[3];
    for (int k = 0; k < v->nargs; k++) {
        const Value *a = v->args[k];
        row[k] = operand_plus(cg, args[k], sample_offset(cg, a, b));
        if (shape_numel(a->shape) > 1) row[k] = operand_plus(cg, row[k], row_start);
    }
    LLVMValueRef out_row = to_scalar ? out_sample : element_ptr(cg, out_sample, row_start);
    if (loss)
        row_softmax_ce_and_grad(cg, row, loss_sample, out_row, C);
    else
        row_kernels[v->op](cg, row, out_row, C);
    loop_end(cg, &lr, false);
    loop_end(cg, &lb, false);
}

/* A helper runs over the batch when the result or an operand has one (batch_sum). */
static bool takes_batch(const Value *v) {
    bool varying = v->varying;
    for (int k = 0; k < v->nargs; k++) varying |= v->args[k]->varying;
    return varying;
}

/* A slice or a scatter: its helper is told where its box starts (layout_start). */
static bool takes_start(const Value *v) {
    return v->op == OP_slice || v->op == OP_scatter;
}

/* v's helper, named name, with loss's output after v's when loss is not NULL (rows_of). */
static LLVMValueRef op_function(Codegen *cg, const Value *v, const Value *loss, const char *name) {
    LLVMTypeRef params[7];
    unsigned n = 0;
    for (int k = 0; k < v->nargs; k++) {
        if (has_memory(v->args[k])) params[n++] = cg->elem_ptr;
        if (v->args[k]->op == OP_inv_batch) params[n++] = cg->elem;
    }
    params[n++] = cg->elem_ptr;
    if (loss) params[n++] = cg->elem_ptr;
    if (takes_batch(v)) params[n++] = cg->i64;
    if (takes_start(v)) params[n++] = cg->i64;
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
    LLVMValueRef loss_out = loss ? LLVMGetParam(fn, k++) : NULL;
    LLVMValueRef nb = takes_batch(v) ? LLVMGetParam(fn, k++) : int64_const(cg, 1);
    LLVMValueRef start = takes_start(v) ? LLVMGetParam(fn, k++) : int64_const(cg, 0);
    if (op_info[v->op].cls == OPC_ROW)
        rows_of(cg, v, args, out, loss, loss_out, nb);
    else if (op_info[v->op].cls == OPC_LAYOUT)
        layout_kernels[v->op](cg, v, args, out, nb, start);
    else
        reduce_kernels[v->op](cg, v, args, out, nb);
    LLVMBuildRetVoid(cg->b);
    return fn;
}

/* ---- a loss's value and its gradient in one pass ----
 * A training step computes softmax_ce(z, y) for the loss and then softmax_ce_grad(z, y, g)
 * for its gradient: two passes over the same rows, each finding the row's max and its exps.
 * When the two are consecutive steps, one helper does both (row_softmax_ce_and_grad); W1's
 * step: 32 rows of 10. */

/* Whether a's and b's memory may overlap: the same arena and intersecting ranges of
 * elements (a sample's in the varying arena, whose rows a value's ranges scale alike). A
 * view reads another value's memory: counted as overlapping. */
static bool may_share_memory(const Codegen *cg, const Value *a, const Value *b) {
    const ValuePlan *pa = plan_value(cg->plan, a), *pb = plan_value(cg->plan, b);
    if (pa->view_of || pb->view_of) return true;
    if (!has_memory(a) || !has_memory(b) || pa->home.arena != pb->home.arena) return false;
    int64_t a0 = pa->home.offset, b0 = pb->home.offset;
    return a0 < b0 + shape_numel(b->shape) && b0 < a0 + shape_numel(a->shape);
}

bool loss_and_grad_pair(const Codegen *cg, int step) {
    if (step < 0 || step + 1 >= cg->plan->n_steps) return false;
    const Step *st = &cg->plan->steps[step], *next = &cg->plan->steps[step + 1];
    if (st->kind != STEP_ROW || next->kind != STEP_ROW) return false;
    const Value *loss = st->insts[0], *grad = next->insts[0];
    if (loss->op != OP_softmax_ce || grad->op != OP_softmax_ce_grad ||
        grad->args[0] != loss->args[0] || grad->args[1] != loss->args[1] || !cg->needed[loss->id] ||
        !cg->needed[grad->id] || !has_memory(grad) || takes_batch(loss) != takes_batch(grad))
        return false;
    return !may_share_memory(cg, grad, loss->args[0]) &&
           !may_share_memory(cg, grad, loss->args[1]) && !may_share_memory(cg, grad, loss);
}

/* A call of v's helper fn, with loss's output when loss is not NULL. */
static void call_op_function(Codegen *cg, LLVMValueRef fn, const Value *v, const Value *loss) {
    LLVMValueRef args[7];
    unsigned n = 0;
    for (int k = 0; k < v->nargs; k++) {
        if (has_memory(v->args[k])) args[n++] = address_of(cg, v->args[k]);
        if (v->args[k]->op == OP_inv_batch) args[n++] = cg->inv_batch;
    }
    args[n++] = address_of(cg, v);
    if (loss) args[n++] = address_of(cg, loss);
    if (takes_batch(v)) args[n++] = cg->batch;
    if (takes_start(v)) args[n++] = int64_const(cg, layout_start(v->layout));
    build_call(cg, fn, args, n);
}

/* The gradient's helper with its loss's output: made once, by the first entry point that
 * needs it, and found by its name (op_fns[step] may hold the loss's own helper, made for an
 * entry point without the gradient). */
void emit_loss_and_grad_step(Codegen *cg, int step) {
    const Value *loss = cg->plan->steps[step].insts[0], *grad = cg->plan->steps[step + 1].insts[0];
    const char *name = xprintf("nnc.softmax_ce_and_grad.%d", grad->id);
    LLVMValueRef fn = LLVMGetNamedFunction(cg->mod, name);
    if (!fn) {
        LLVMBasicBlockRef here = LLVMGetInsertBlock(cg->b);
        fn = op_function(cg, grad, loss, name);
        LLVMPositionBuilderAtEnd(cg->b, here);
    }
    call_op_function(cg, fn, grad, loss);
}

void emit_op_step(Codegen *cg, int step) {
    const Value *v = cg->plan->steps[step].insts[0];
    if (!cg->op_fns[step]) {
        LLVMBasicBlockRef here = LLVMGetInsertBlock(cg->b);
        cg->op_fns[step] =
            op_function(cg, v, NULL, xprintf("nnc.%s.%d", op_info[v->op].name, v->id));
        LLVMPositionBuilderAtEnd(cg->b, here);
    }
    call_op_function(cg, cg->op_fns[step], v, NULL);
}
