/* packed_operands.c: which products read a packed B (docs/codegen.md, "Products with a packed
 * weight"). backend_compile asks it after plan_build, in f32 only.
 *
 * The steps of an unrolled scan multiply the batch's states by the same weight: forward
 * h_(t-1) · Wh, backward dG_t · Whᵀ, T products each. Each is one GEMM of M = batch rows (the
 * BLAS mapping's "A varies, B does not"), and OpenBLAS packs the whole B again for each: at
 * M = 32 that is a third of the product's time. A B that does not vary over the batch keeps
 * its value from the first product that reads it to the last (a parameter is updated after
 * its last reader, an instruction's buffer is not reused before), so it is packed once, at
 * the first such product an entry point runs, and every product reads the packed form
 * (runtime/packed_gemm.h). Products are grouped by their B and whether they transpose it;
 * a group of one gains nothing (packing is what BLAS does anyway) and keeps its BLAS call:
 * an MLP's weight is read by x · W and dY · Wᵀ, one product each, and its code is as it was.
 * The packed buffers lie above everything else in the fixed arena, one per group, so that
 * no other value's home moves. */
#include "packed_gemm.h"
#include "plan.h"

#define ALIGN_ELEMS 16 /* as plan.c's buffers: 64 bytes of floats */

/* A product C = A · op(B) of a per-sample A (not transposed, not summed over the batch) and
 * a B with memory that does not vary: one GEMM of M·batch rows that may read B packed. */
static bool reads_invariant_b(const Plan *p, const Step *st) {
    if (st->kind != STEP_MATMUL || st->update_param >= 0) return false;
    const Value *v = st->insts[0];
    const Value *a = v->args[0], *b = v->args[1];
    return a->varying && !b->varying && !v->ta && !v->sum_batch &&
           plan_value(p, b)->home.arena != ARENA_NONE;
}

/* The group of a product: its B's id, twice over for op(B) = B and Bᵀ. */
static int group_key(const Value *v) {
    return 2 * v->args[1]->id + (v->tb ? 1 : 0);
}

static int new_pack(Plan *p, const Value *v) {
    int64_t M, N, K;
    ir_matmul_dims(v, &M, &N, &K);
    p->packs =
        xrealloc_array(p->packs, (size_t)p->n_packs, (size_t)p->n_packs + 1, sizeof *p->packs);
    PackedOperand *po = &p->packs[p->n_packs];
    int64_t start = (p->fixed_elems + ALIGN_ELEMS - 1) / ALIGN_ELEMS * ALIGN_ELEMS;
    *po = (PackedOperand){v->args[1], v->tb, K, N, start};
    p->fixed_elems = start + nnrt_packed_elems(K, N);
    return p->n_packs++;
}

int plan_packed_operands(Plan *p) {
    size_t keys = 2 * (size_t)p->g->next_id;
    int *readers = xalloc(keys * sizeof *readers);
    int *pack_of = xalloc(keys * sizeof *pack_of);
    for (int s = 0; s < p->n_steps; s++)
        if (reads_invariant_b(p, &p->steps[s])) readers[group_key(p->steps[s].insts[0])]++;
    for (size_t k = 0; k < keys; k++) pack_of[k] = -1;
    for (int s = 0; s < p->n_steps; s++) {
        Step *st = &p->steps[s];
        if (!reads_invariant_b(p, st)) continue;
        int key = group_key(st->insts[0]);
        if (readers[key] < 2) continue;
        if (pack_of[key] < 0) pack_of[key] = new_pack(p, st->insts[0]);
        st->pack = pack_of[key];
    }
    return p->n_packs;
}
