/* op_coverage.c: every op a .nn file can write is checked where random points and special
 * points are. For each row of ops.def with a surface (a CALL, an operator or a subscript):
 *   - tests/gradcheck/ops/NAME.nn exists (NAME: the call's name, or the op's for an
 *     operator or a subscript, and for a row that shares its call's name with an earlier row,
 *     as max_axis does max's) and uses the op, so `gradcheck.NAME` compares its derivative
 *     with finite differences (a subscript is used where an expression, after '=', indexes
 *     a name or a bracketed value; a row that shares its name is used when the model names
 *     its options);
 *   - an op called by name that computes values appears in the cases of
 *     tests/special/test_special.c, as "NAME(" in a case's expression, so its value and
 *     derivative are checked at 0, at branch boundaries, at ±inf and NaN, in f32 and f64.
 *     A LAYOUT op (transpose, permute, concat) only moves elements: it has no special
 *     points, and its gradcheck model checks its borders (first and last elements, each
 *     axis) instead. A WINDOW op (convolution, pooling, reshapes) has its special points,
 *     the borders, strides and ties, in its gradcheck model and test_ops's cases;
 *   - an op called by name has its line in docs/language.md's table of built-in
 *     operations (a word of a `code span` in a row of the table that follows
 *     "**Built-in operations**").
 * The op list is the table itself: a new row without its tests fails here, by name. */
#include "ir.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void fail(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, "FAIL: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    failures++;
}

/* The whole file, or NULL. */
static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    StrBuf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) sb_printf(&b, "%.*s", (int)n, chunk);
    fclose(f);
    return sb_str(&b);
}

/* Whether text calls name: "name(" not preceded by a letter, digit or '_' (so relu( is not
 * found in leaky_relu(). */
static bool calls(const char *text, const char *name) {
    size_t len = strlen(name);
    for (const char *p = strstr(text, name); p; p = strstr(p + 1, name)) {
        bool starts = p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
        if (starts && p[len] == '(') return true;
    }
    return false;
}

/* The text of test_special.c's table of cases. */
static const char *special_cases(void) {
    const char *path = NNC_SOURCE_DIR "/tests/special/test_special.c";
    char *text = read_text(path);
    if (!text) {
        fail("cannot read %s%s", path, "");
        return "";
    }
    char *start = strstr(text, "static const Case cases[] = {");
    char *end = start ? strstr(start, "\n};") : NULL;
    if (!end) {
        fail("%s has no table `static const Case cases[] = {...};`%s", path, "");
        return "";
    }
    *end = '\0';
    return start;
}

/* The rows of docs/language.md's table of built-in operations. */
static const char *builtins_table(void) {
    const char *path = NNC_SOURCE_DIR "/docs/language.md";
    char *text = read_text(path);
    char *start = text ? strstr(text, "**Built-in operations**") : NULL;
    char *table = start ? strstr(start, "\n|") : NULL;
    if (!table) {
        fail("%s has no table after **Built-in operations**%s", path, "");
        return "";
    }
    char *end = strstr(table, "\n\n");
    if (end) *end = '\0';
    return table;
}

/* Whether a row of the table names the op: as a call "name(", or as a word of a code span
 * such as `exp log sqrt`. */
static bool documents(const char *table, const char *name) {
    if (calls(table, name)) return true;
    size_t len = strlen(name);
    for (const char *p = strstr(table, name); p; p = strstr(p + 1, name)) {
        bool starts = p[-1] == '`' || p[-1] == ' ';
        bool ends = p[len] == '`' || p[len] == ' ';
        if (starts && ends) return true;
    }
    return false;
}

/* Whether text indexes something in an expression: "h[" or ")[" after an '=' of its line
 * (a declaration's shape, param W[2] = ..., comes before the '='). */
static bool subscripts(const char *text) {
    for (const char *p = strchr(text, '['); p; p = strchr(p + 1, '[')) {
        if (p == text || !(isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == ')')) continue;
        const char *line = p;
        while (line > text && line[-1] != '\n') line--;
        const char *eq = memchr(line, '=', (size_t)(p - line));
        if (eq) return true;
    }
    return false;
}

/* Whether the model names every option of op (max(x, axis = 1) is max_axis, not max). */
static bool names_options(const char *model, Op op) {
    for (int k = 0; k < op_info[op].n_options; k++)
        if (!strstr(model, xprintf("%s = ", op_info[op].options[k].name))) return false;
    return true;
}

static void check_gradcheck_file(Op op) {
    const OpInfo *in = &op_info[op];
    bool shared = in->call && op_by_call(in->call) != op;
    const char *name = in->call && !shared ? in->call : in->name;
    const char *path = xprintf("%s/tests/gradcheck/ops/%s.nn", NNC_SOURCE_DIR, name);
    char *model = read_text(path);
    if (!model) {
        fail("%s: no finite-difference check %s", in->name, path);
        return;
    }
    bool uses = in->call            ? calls(model, in->call)
                : in->symbol == '[' ? subscripts(model)
                                    : strchr(model, in->symbol) != NULL;
    if (shared) uses = uses && names_options(model, op);
    if (!uses) fail("%s: %s does not use it", in->name, path);
}

int main(void) {
    const char *cases = special_cases();
    const char *docs = builtins_table();
    int ops = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        const OpInfo *in = &op_info[op];
        if (!in->call && !in->symbol) continue; /* only the compiler makes it */
        ops++;
        check_gradcheck_file((Op)op);
        if (in->call && in->cls != OPC_LAYOUT && in->cls != OPC_WINDOW && !calls(cases, in->call))
            fail("%s: no case of tests/special/test_special.c calls %s(", in->name, in->call);
        if (in->call && !documents(docs, in->call))
            fail("%s: docs/language.md's table of built-in operations has no `%s`", in->name,
                 in->call);
    }
    printf("op_coverage: %d ops a .nn file can write, %d without their tests\n", ops, failures);
    return failures ? 1 : 0;
}
