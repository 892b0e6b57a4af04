/* rules.h: a fn's own backward rules (`grad u = e` or `grad u ~ e` after its return, see
 * docs/language.md), kept by one module, rules.c.
 *
 * Lowering records each call of a fn with rules on the call's result (Value.custom), and
 * renders there, once per fn, what the later stages need to know of the rules: their text
 * as printed, which arguments have one, which are surrogates. Autodiff, dot and explain read
 * that record and nothing of the syntax tree. Evaluating a rule with g bound needs the
 * program and lower.c's evaluator: rule_gradient() keeps both out of their sight.
 * Everything a record points to lives in the arena: autodiff runs after lowering returned. */
#ifndef NNC_RULES_H
#define NNC_RULES_H

#include "ir.h"

/* What a fn says about the gradient of one of its arguments. */
typedef struct ArgRule {
    const char *arg;  /* the argument's name, "u" */
    SrcLoc arg_loc;   /* where the fn declares it */
    const char *text; /* "rule of fn sign_ste: grad u ~ g  (a surrogate)"; NULL: it has no rule */
    bool surrogate;   /* written `grad u ~ ...`: not the true derivative */
} ArgRule;

/* A fn's rules, rendered once for all its calls. */
typedef struct FnRules {
    const char *fn;      /* its name, "sign_ste" */
    const char *written; /* its rules as written, in order: "grad u = g * k; grad k = g * u" */
    int nargs;
    const ArgRule *args; /* one per argument of the fn */
} FnRules;

/* One call of a fn with rules, on the call's result (Value.custom). */
typedef struct CustomRule {
    const FnRules *fn;
    Value **args;                /* per argument: the tensor the call gave it, NULL for a number */
    const struct RuleSite *site; /* rules.c: what evaluating the rules at this call needs */
} CustomRule;

/* ---- for the stages after lowering ---- */

/* What the rule for argument `arg` sends back, given g = upstream (the gradient of the
 * call's result): a value shaped like the argument, or like upstream where the argument was
 * broadcast (the caller sums it down). Instructions go at the end of g. NULL when nothing
 * flows: the argument is a number, its rule is `= 0`, it has no rule (a warning, since the
 * caller asks only for arguments that need a gradient), or the rule has an error (reported
 * where it is written, with a note of the call). */
Value *rule_gradient(Graph *g, const CustomRule *rule, int arg, Value *upstream);

/* ---- for lower.c ---- */

struct Node;
struct LowerCall; /* lower.c: a call's bindings, kept to evaluate its rules (stages.h) */

/* True when fn has backward rules. */
bool fn_has_rules(const struct Node *fn);

/* The record of one call of fn (which has rules): args per argument, as in CustomRule.args.
 * rendered maps each fn to its FnRules, made at its first call; the caller keeps it for the
 * model. Arena memory. */
CustomRule *rules_at_call(HashMap *rendered, struct Node *fn, struct Node *call, Value **args,
                          const struct LowerCall *at);

#endif
