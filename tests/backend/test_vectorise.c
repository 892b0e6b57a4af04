/* test_vectorise.c: properties of the optimised IR that the speed depends on (never its
 * text, which differs between LLVM versions): elementwise loops and reductions become
 * vector code, exp calls glibc's vector math (libmvec), and a layout op's copy is vector
 * code or memcpy, never a gather. */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

static char *optimised_ir(Graph *g, int opt_level) {
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    BackendOptions opt = {.opt_level = opt_level, .llvm_ir_out = out};
    check(backend_compile(g, &opt) == 0, "compiling %s", g->name);
    fclose(out);
    return text;
}

/* A layout op's walk copies whole contiguous runs: vector loads and stores, or memcpy. The
 * model is layout ops only, its loss an element of a param (no loop over the batch), so
 * whatever vector code the module has is the walks'. */
static void layout_copies_vectorise(void) {
    Graph *g = graph_new("layout");
    Value *x = add_input(g, "x", shape2(4, 64)), *y = add_input(g, "y", shape2(4, 64));
    Layout *rows = xalloc(sizeof *rows), *first = xalloc(sizeof *first);
    rows->whole = x->shape;
    rows->start[0] = 1, rows->count[0] = 2, rows->count[1] = 64;
    rows->step[0] = rows->step[1] = 1;
    Value *slice = ir_layout(g, OP_slice, 1, &x, rows, NULL);
    Value *args[2] = {slice, y};
    double axis0[OP_MAX_OPTIONS] = {0};
    Value *joined = ir_layout(g, OP_concat, 2, args, NULL, axis0);
    Value *p = add_param(g, "p", shape1(2));
    first->whole = p->shape;
    first->step[0] = first->count[0] = 1, first->drop[0] = true;
    g->output = joined;
    g->loss = ir_layout(g, OP_slice, 1, &p, first, NULL);
    char *ir = optimised_ir(g, 2);
    check(strstr(ir, " x float>") || strstr(ir, "memcpy"),
          "slice and concat copy element by element");
    check(!strstr(ir, "gather") && !strstr(ir, "scatter"),
          "slice and concat read or write with strides: their contiguous axes were not merged");
    free(ir);
}

/* An operand with a 1 on an inner axis (a gain per channel [C,1,1], a mean per row [T,1])
 * is read once a row: the inner loop multiplies (subtracts) whole vectors. */
static void inner_axes(void) {
    Graph *g = graph_new("inner axes");
    Value *x = add_input(g, "x", shape3(4, 16, 16)), *gain = add_param(g, "g", shape3(4, 1, 1));
    Value *y = add_input(g, "y", shape2(16, 32)), *m = add_input(g, "m", shape2(16, 1));
    Value *scaled = ir_build2(g, OP_mul, x, gain), *centred = ir_build2(g, OP_sub, y, m);
    g->output = scaled;
    g->loss = ir_build2(g, OP_add, ir_build1(g, OP_sum, scaled), ir_build1(g, OP_sum, centred));
    char *ir = optimised_ir(g, 2);
    check(strstr(ir, "fmul <") != NULL, "x * g[C,1,1] is not vector code");
    check(strstr(ir, "fsub <") != NULL, "y - m[T,1] is not vector code");
    free(ir);
}

int main(void) {
    layout_copies_vectorise();
    inner_axes();
    Graph *g = graph_new("vectorise");
    Value *x = add_input(g, "x", shape1(256)), *b = add_param(g, "b", shape1(256));
    Value *h = ir_build1(g, OP_exp, ir_build1(g, OP_relu, ir_build2(g, OP_add, x, b)));
    g->output = h;
    g->loss = ir_build1(g, OP_sum, h);
    char *ir = optimised_ir(g, 2);
    check(strstr(ir, " x float>") != NULL, "no vector of floats in the optimised module");
#if defined(__x86_64__)
    check(strstr(ir, "@_ZGV") != NULL, "exp does not call libmvec");
#endif
    check(strstr(ir, "vector.reduce.fadd") != NULL, "the sum is not a vector reduction");
    free(ir);
    ir = optimised_ir(g, 0);
    check(strstr(ir, "@nnrt_model_desc") != NULL, "no descriptor at -O0");
    free(ir);
    return test_summary("test_vectorise");
}
