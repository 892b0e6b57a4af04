/* rules.c: a fn's own backward rules (rules.h).
 *
 * At each call of a fn with rules, lowering asks for a record (rules_at_call): the fn's
 * rules rendered as text and flags (once per fn), the tensors the call was given, and, out
 * of the IR readers' sight, what evaluating a rule needs: the statements, the call, and
 * lower.c's bindings at the call. Autodiff later asks for one argument's gradient
 * (rule_gradient), which evaluates the rule through lower.c and checks what it made. */
#include "rules.h"
#include "stages.h"

#include <string.h>

/* What evaluating the rules of one call needs. */
struct RuleSite {
    Node *const *stmt;   /* per argument of the fn: its rule, or NULL (one array per fn) */
    Node *call;          /* for messages */
    const LowerCall *at; /* lower.c: the fn's bindings at the call */
};

/* A fn's rules: rendered for the IR readers, and the statements behind them. */
typedef struct FnSource {
    FnRules rendered;
    Node **stmt; /* per argument: its `grad` statement, or NULL */
} FnSource;

bool fn_has_rules(const Node *fn) {
    for (int i = 0; i < fn->body.n; i++)
        if (fn->body.v[i]->kind == ND_GRAD) return true;
    return false;
}

/* "rule of fn sign_ste: grad u ~ g  (a surrogate)": how --emit=grad and explain cite it. */
static const char *rule_text(const Node *fn, const Node *st) {
    return xprintf("rule of fn %s: grad %s %c %s%s", fn->str, st->str, st->op,
                   ast_source_text(st->init), st->op == '~' ? "  (a surrogate)" : "");
}

/* sema has checked that each rule names an argument, one rule per argument, and that the
 * arguments' names differ: a table by name finds each argument's rule in linear time. */
static FnSource *render(Node *fn) {
    int n = fn->params.n;
    FnSource *src = xalloc(sizeof *src);
    ArgRule *args = xalloc(sizeof *args * (size_t)(n + 1));
    src->stmt = xalloc(sizeof *src->stmt * (size_t)(n + 1));
    HashMap by_arg = {0};
    StrBuf written = {0};
    for (int k = 0; k < fn->body.n; k++) {
        Node *st = fn->body.v[k];
        if (st->kind != ND_GRAD) continue;
        strmap_put(&by_arg, st->str, st);
        sb_printf(&written, "%sgrad %s %c %s", written.n ? "; " : "", st->str, st->op,
                  ast_source_text(st->init));
    }
    for (int j = 0; j < n; j++) {
        Node *p = fn->params.v[j], *st = strmap_get(&by_arg, p->str);
        src->stmt[j] = st;
        args[j] = (ArgRule){.arg = p->str, .arg_loc = p->loc};
        if (st) {
            args[j].text = rule_text(fn, st);
            args[j].surrogate = st->op == '~';
        }
    }
    src->rendered = (FnRules){.fn = fn->str, .written = sb_str(&written), .nargs = n, .args = args};
    return src;
}

CustomRule *rules_at_call(HashMap *rendered, Node *fn, Node *call, Value **args,
                          const LowerCall *at) {
    FnSource *src = ptrmap_get(rendered, fn);
    if (!src) {
        src = render(fn);
        ptrmap_put(rendered, fn, src);
    }
    struct RuleSite *site = xalloc(sizeof *site);
    *site = (struct RuleSite){.stmt = src->stmt, .call = call, .at = at};
    CustomRule *rule = xalloc(sizeof *rule);
    *rule = (CustomRule){.fn = &src->rendered, .args = args, .site = site};
    return rule;
}

/* ---- applying a rule ---- */

static void warn_missing_rule(const CustomRule *r, int arg) {
    const ArgRule *a = &r->fn->args[arg];
    diag_warning(a->arg_loc, "fn %s has no backward rule for %s, so no gradient flows to it",
                 r->fn->fn, a->arg);
    diag_note(r->site->call->loc, "in the call %s", ast_source_text(r->site->call));
}

/* Under an error in what a rule made (placed on the rule): the call it was applied for. */
static void note_call(const CustomRule *r) {
    diag_note(r->site->call->loc, "in the call %s", ast_source_brief(r->site->call));
}

Value *rule_gradient(Graph *g, const CustomRule *r, int arg, Value *upstream) {
    Node *st = r->site->stmt[arg];
    Value *target = r->args[arg], *v;
    if (!target) return NULL;
    if (!st) {
        warn_missing_rule(r, arg);
        return NULL;
    }
    if (!lower_rule_body(g, r->site->at, st->init, upstream, &v) || !v) return NULL;
    if (!shape_broadcasts_to(v->shape, target->shape) &&
        !shape_broadcasts_to(target->shape, v->shape)) {
        diag_error(st->init->loc, "the backward rule for %s has shape %s, but %s has %s", st->str,
                   shape_str(v->shape), st->str, shape_str(target->shape));
        note_call(r);
        return NULL;
    }
    if (target->varying && !v->varying) {
        diag_error(st->init->loc,
                   "the backward rule for %s must use g, the gradient of %s's result", st->str,
                   r->fn->fn);
        note_call(r);
        return NULL;
    }
    if (!shape_broadcasts_to(v->shape, target->shape)) return v; /* the caller sums it down */
    return shape_eq(v->shape, target->shape) ? v : ir_broadcast(g, v, target->shape);
}
