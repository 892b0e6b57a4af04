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

int main(void) {
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
