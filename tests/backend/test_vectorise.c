/* test_vectorise.c: properties of the optimised IR that the speed depends on (never its
 * text, which differs between LLVM versions): elementwise loops and reductions become
 * vector code, and exp calls glibc's vector math (libmvec). */
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
