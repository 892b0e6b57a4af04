/* print.c: --emit=ir and --emit=grad, the IR as teaching material.
 *
 * Forward and backward use one syntax. Each line: the instruction number, the value with
 * its per-sample shape, the operation, and a comment: in the forward pass, where in the
 * source it came from; in the backward pass, the forward step it differentiates (#N) and
 * the local derivative used. Fan-out sums name the uses they add up. */
#include "stages.h"

#include <string.h>

static const char *const init_names[] = {
    [INIT_ZEROS] = "zeros",     [INIT_ONES] = "ones", [INIT_CONST] = "const",
    [INIT_GLOROT] = "glorot",   [INIT_HE] = "he",     [INIT_NORMAL] = "normal",
    [INIT_UNIFORM] = "uniform",
};

static const char *init_str(ParamInit in) {
    switch (in.kind) {
    case INIT_CONST: return ir_number_str(in.a);
    case INIT_NORMAL: return xprintf("normal(%s, %s)", ir_number_str(in.a), ir_number_str(in.b));
    case INIT_UNIFORM: return xprintf("uniform(%s, %s)", ir_number_str(in.a), ir_number_str(in.b));
    default: return init_names[in.kind];
    }
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* A WINDOW op: every operand, then its options ("conv2d_input_grad %g, @w, stride=2, ...
 * to [3, 8, 8]" when the result's shape is given); a reshape by the shape it makes. */
static const char *window_rhs(const Value *v) {
    const OpInfo *in = &op_info[v->op];
    const char *s = in->name;
    for (int i = 0; i < v->nargs; i++)
        s = xprintf("%s%s %s", s, i ? "," : "", ir_value_ref(v->args[i]));
    if (v->op == OP_reshape) return xprintf("%s to %s", s, shape_str(v->shape));
    for (int k = 0; k < in->n_options; k++)
        s = xprintf("%s, %s=%s", s, in->options[k].name, ir_number_str(v->opt[k]));
    if (in->flags & OPF_SHAPE_GIVEN) s = xprintf("%s to %s", s, shape_str(v->shape));
    if (v->op == OP_scatter_add && (v->args[0]->varying || v->args[1]->varying))
        s = xprintf("%s  (sum over batch)", s);
    return s;
}

/* The right-hand side: "matmul $x, @h.W", "outer $x, %t9 (sum over batch)". */
static const char *rhs_str(const Value *v) {
    const char *name = op_info[v->op].name;
    if (v->op == OP_matmul) {
        const Value *a = v->args[0], *b = v->args[1];
        const char *sum = v->sum_batch ? "  (sum over batch)" : "";
        if (a->shape.rank == 1 && b->shape.rank == 1 && v->ta && !v->tb)
            return xprintf("outer %s, %s%s", ir_value_ref(a), ir_value_ref(b), sum);
        return xprintf("matmul %s%s, %s%s%s", ir_value_ref(a), v->ta ? "^T" : "", ir_value_ref(b),
                       v->tb ? "^T" : "", sum);
    }
    if (v->op == OP_batch_sum) return xprintf("sum over batch %s", ir_value_ref(v->args[0]));
    if (v->op == OP_slice) return xprintf("slice %s%s", ir_value_ref(v->args[0]), ir_layout_str(v));
    if (v->op == OP_scatter)
        return xprintf("scatter %s into zeros %s at %s", ir_value_ref(v->args[0]),
                       shape_str(v->shape), ir_layout_str(v));
    if (v->op == OP_permute)
        return xprintf("permute %s, %s", ir_value_ref(v->args[0]), ir_layout_str(v));
    if (v->op == OP_training) /* which one depends on the pass: nnrt_ctx.training */
        return xprintf("training ? %s : %s", ir_value_ref(v->args[0]), ir_value_ref(v->args[1]));
    if (v->op == OP_where)
        return xprintf("where %s > 0 ? %s : %s", ir_value_ref(v->args[0]), ir_value_ref(v->args[1]),
                       ir_value_ref(v->args[2]));
    const OpInfo *in = &op_info[v->op];
    if (in->cls == OPC_WINDOW) return window_rhs(v);
    if (in->flags & OPF_SHAPE_GIVEN)
        return xprintf("%s %s to %s", name, ir_value_ref(v->args[0]), shape_str(v->shape));
    const char *s = name;
    for (int i = 0; i < v->nargs; i++)
        s = xprintf("%s%s %s", s, i ? "," : "", ir_value_ref(v->args[i]));
    for (int k = 0; k < in->n_options; k++)
        s = xprintf("%s, %s=%s", s, in->options[k].name, ir_number_str(v->opt[k]));
    /* A backward dropout redraws the masks of its forward one. */
    if ((in->flags & OPF_RANDOM) && v->salt != v->id) s = xprintf("%s, masks of #%d", s, v->salt);
    return s;
}

static bool printable(const Value *v) {
    return op_info[v->op].cls != OPC_SRC;
}

/* "  #5   %t5 : [4]  = matmul $x, @h.W   ; comment": mark is the line's first two
 * characters ("  ", or grad-diff's "- " and "+ "). */
static void print_marked_line(FILE *out, const char *mark, const char *text, const char *comment) {
    char *line = xprintf("%s%s", mark, text);
    if (comment && *comment)
        fprintf(out, "%-72s ; %s\n", line, comment);
    else
        fprintf(out, "%s\n", line);
}

/* A line without its mark and comment: "#5   %t5 : [4]   = matmul $x, @h.W". */
static const char *line_text(const Value *v) {
    char *lhs = xprintf("#%-3d %s : %s", v->id, ir_value_ref(v), shape_str(v->shape));
    return xprintf("%-28s = %s", lhs, rhs_str(v));
}

static void print_line(FILE *out, const Value *v, const char *comment) {
    print_marked_line(out, "  ", line_text(v), comment);
}

static const char *forward_comment(const Value *v) {
    if (!v->loc.file) return "";
    return xprintf("%s:%d:%d  %s", base_name(v->loc.file->path), v->loc.line, v->loc.col,
                   v->what ? v->what : "");
}

/* "sum over uses #4, #7": the forward steps whose rules made the summed contributions. */
static const char *fanout_comment(const Value *v) {
    StrBuf s = {0};
    sb_puts(&s, "sum over uses");
    const Value *stack[64];
    int n = 0, first = 1;
    stack[n++] = v;
    while (n > 0) {
        const Value *u = stack[--n];
        if (u->op == OP_add && u->rule && !strcmp(u->rule, "sum over uses") && n < 62) {
            stack[n++] = u->args[1];
            stack[n++] = u->args[0];
            continue;
        }
        if (u->from)
            sb_printf(&s, "%s#%d", first ? " " : ", ", u->from->id);
        else
            sb_printf(&s, "%s%s", first ? " " : ", ", ir_value_ref(u));
        first = 0;
    }
    return sb_str(&s);
}

/* A value's name as math: h, h.W, x, t12. */
static const char *math_name(const Value *v) {
    return v->name ? v->name : xprintf("t%d", v->id);
}

/* On the line that completes a gradient: the chain-rule step it took,
 * "  =>  ∂cost/∂t6 = ∂cost/∂h · ∂h/∂t6". */
static const char *chain_product(const Value *v) {
    const Value *u = v->grad_of, *f = v->from;
    if (!u || !f || v->fanout) return "";
    return xprintf("  =>  ∂cost/∂%s = ∂cost/∂%s · ∂%s/∂%s", math_name(u), math_name(f),
                   math_name(f), math_name(u));
}

static void print_header(FILE *out, Graph *g) {
    fprintf(out, "model %s  (%s)\n", g->name, g->source_path ? base_name(g->source_path) : "");
    for (int i = 0; i < g->inputs.n; i++)
        fprintf(out, "  input  %s : %s\n", ir_value_ref(g->inputs.v[i]),
                shape_str(g->inputs.v[i]->shape));
    for (int i = 0; i < g->targets.n; i++)
        fprintf(out, "  target %s : %s\n", ir_value_ref(g->targets.v[i]),
                shape_str(g->targets.v[i]->shape));
    for (int i = 0; i < g->params.n; i++)
        fprintf(out, "  param  %s : %s = %s\n", ir_value_ref(g->params.v[i]),
                shape_str(g->params.v[i]->shape), init_str(g->param_inits.v[i]));
    for (int i = 0; i < g->states.n; i++)
        fprintf(out, "  state  %s : %s = %s  (not trained)\n", ir_value_ref(g->states.v[i]),
                shape_str(g->states.v[i]->shape), init_str(g->state_inits.v[i]));
    fputc('\n', out);
}

/* ---- scans: the steps between a scan's second and its last, summarised ----
 * An unrolled scan of 50 steps prints 50 look-alike blocks; by default a scan's steps 0, 1
 * and its last are printed, and each run of lines of the steps between becomes one line
 * saying which steps it stands for (--steps all prints them). */

typedef struct Steps {
    bool all;
    int *last; /* per scan (Value.scan): its last step */
    /* the run of lines left out so far */
    int hidden, scan, first_step, last_step;
    const Value *first;
} Steps;

/* Which scan's step a line belongs to (0: none): a backward line is its forward line's; a
 * sum over uses, that of the contribution it adds. */
static int scan_step_of(const Value *v, int *step) {
    for (int depth = 0; v && depth < 8; depth++) {
        if (v->scan) {
            *step = v->scan_step;
            return v->scan;
        }
        bool sum = v->op == OP_add && v->rule && !strcmp(v->rule, "sum over uses");
        v = v->from ? v->from : sum ? v->args[1] : NULL;
    }
    return 0;
}

/* The forward line of the scan's step a line belongs to: where in the source it is. */
static const Value *scan_line_of(const Value *v) {
    for (int depth = 0; v && depth < 8; depth++) {
        if (v->scan) return v;
        bool sum = v->op == OP_add && v->rule && !strcmp(v->rule, "sum over uses");
        v = v->from ? v->from : sum ? v->args[1] : NULL;
    }
    return 0;
}

static Steps steps_of(Graph *g, bool all) {
    Steps s = {.all = all};
    int n = 0;
    for (int i = 0; i < g->insts.n; i++)
        if (g->insts.v[i]->scan > n) n = g->insts.v[i]->scan;
    s.last = xalloc(sizeof *s.last * (size_t)(n + 1));
    for (int i = 0; i < g->insts.n; i++) {
        const Value *v = g->insts.v[i];
        if (v->scan && v->scan_step > s.last[v->scan]) s.last[v->scan] = v->scan_step;
    }
    return s;
}

static bool left_out(const Steps *s, const Value *v) {
    int step = 0, scan = scan_step_of(v, &step);
    return !s->all && scan && s->last[scan] >= 3 && step >= 2 && step < s->last[scan];
}

/* The line that stands for the run of lines left out, if any. */
static void flush_steps(FILE *out, Steps *s) {
    if (!s->hidden) return;
    const Value *v = s->first;
    fprintf(out,
            "  ; ... steps %d..%d of the scan at %s:%d:%d: %d lines like step 1's, with @%d .. "
            "@%d (--steps all prints them)\n",
            s->first_step, s->last_step, v->loc.file ? base_name(v->loc.file->path) : "?",
            v->loc.line, v->loc.col, s->hidden, s->first_step, s->last_step);
    s->hidden = 0;
}

/* False when v's line is left out (and counted in the run). */
static bool shown(FILE *out, Steps *s, const Value *v) {
    if (!left_out(s, v)) {
        flush_steps(out, s);
        return true;
    }
    int step = 0, scan = scan_step_of(v, &step);
    if (s->hidden && scan != s->scan) flush_steps(out, s);
    if (!s->hidden) {
        s->first = scan_line_of(v);
        s->scan = scan;
        s->first_step = s->last_step = step;
    }
    /* the lowest and the highest: backward runs the steps from the last down */
    if (step < s->first_step) s->first_step = step;
    if (step > s->last_step) s->last_step = step;
    s->hidden++;
    return false;
}

static void print_forward(FILE *out, Graph *g, Steps *steps) {
    fputs("forward {\n", out);
    for (int i = 0; i < g->n_forward; i++) {
        Value *v = g->insts.v[i];
        if (printable(v) && shown(out, steps, v)) print_line(out, v, forward_comment(v));
    }
    flush_steps(out, steps);
    fprintf(out, "  loss %s", ir_value_ref(g->loss));
    if (g->output && g->output != g->loss) fprintf(out, ", output %s", ir_value_ref(g->output));
    fputs("\n", out);
    for (int i = 0; i < g->states.n; i++)
        if (g->state_updates.v[i])
            fprintf(out, "  update %s = %s  ; after each training step\n",
                    ir_value_ref(g->states.v[i]), ir_value_ref(g->state_updates.v[i]));
    fputs("}\n", out);
}

/* Forward values that backward instructions read: what training must keep in memory. */
static void print_kept(FILE *out, Graph *g, const Steps *steps) {
    for (int i = 0; i < g->n_forward; i++) g->insts.v[i]->aux = 0;
    for (int i = g->n_forward; i < g->insts.n; i++) {
        Value *v = g->insts.v[i];
        for (int j = 0; j < v->nargs; j++) v->args[j]->aux = 1;
    }
    fputs("  ; kept from forward:", out);
    int count = 0, summarised = 0;
    for (int i = 0; i < g->n_forward; i++) {
        Value *v = g->insts.v[i];
        if (!v->aux || v->op == OP_const || v->op == OP_param || v->op == OP_state ||
            v->op == OP_inv_batch)
            continue;
        if (left_out(steps, v)) {
            summarised++;
            continue;
        }
        if (printable(v))
            fprintf(out, "%s %s (#%d)", count ? "," : "", ir_value_ref(v), v->id);
        else
            fprintf(out, "%s %s", count ? "," : "", ir_value_ref(v));
        count++;
    }
    if (summarised) fprintf(out, ", and %d values of the steps summarised below", summarised);
    fputs(count || summarised ? "\n" : " nothing\n", out);
}

/* "backward of %loss wrt @h.W, ... {", the seed, and where fns' own rules were used. */
static void print_backward_head(FILE *out, Graph *g) {
    fprintf(out, "\nbackward of %s wrt", ir_value_ref(g->loss));
    for (int i = 0; i < g->params.n; i++)
        fprintf(out, "%s %s", i ? "," : "", ir_value_ref(g->params.v[i]));
    fputs(" {\n", out);
    if (g->loss->varying)
        fputs("  ; seed: d cost/d loss = 1/B for each sample (cost = mean of the batch's losses)\n",
              out);
    else
        fputs("  ; seed: d loss/d loss = 1\n", out);
}

/* Why a backward line exists: the forward step and rule (only the step when the line
 * before, prev, had the same), or the uses a fan-out sum adds up. */
static const char *backward_comment(const Value *v, const Value *prev) {
    if (v->fanout) return fanout_comment(v);
    if (!v->from) return v->rule ? v->rule : "";
    if (prev && prev->from == v->from && prev->rule == v->rule)
        return xprintf("#%d%s", v->from->id, chain_product(v));
    return xprintf("#%d %s%s", v->from->id, v->rule ? v->rule : "", chain_product(v));
}

static void print_gradients(FILE *out, Graph *g) {
    fputs("\ngradients {\n", out);
    for (int i = 0; i < g->params.n; i++) {
        Value *gr = g->param_grads[i];
        fprintf(out, "  d cost/d %s = %s\n", ir_value_ref(g->params.v[i]),
                gr ? ir_value_ref(gr) : "0  (no gradient flows to it)");
    }
    fputs("}\n", out);
}

static void print_backward(FILE *out, Graph *g, Steps *steps) {
    print_backward_head(out, g);
    print_kept(out, g, steps);
    for (int i = 0; i < g->rule_notes.n; i++) fprintf(out, "  ; %s\n", g->rule_notes.v[i]);
    const Value *prev = NULL;
    for (int i = g->n_forward; i < g->insts.n; i++) {
        Value *v = g->insts.v[i];
        if (!printable(v) || !shown(out, steps, v)) continue;
        print_line(out, v, backward_comment(v, prev));
        prev = v;
    }
    flush_steps(out, steps);
    fputs("}\n", out);
    print_gradients(out, g);
}

void print_graph(FILE *out, Graph *g, PrintMode mode, bool all_steps) {
    Steps steps = steps_of(g, all_steps);
    print_header(out, g);
    print_forward(out, g, &steps);
    if (mode == PRINT_GRAD && g->param_grads) print_backward(out, g, &steps);
}

/* ---- --emit=grad-diff: what simplify changed ----
 * The IR as autodiff left it, line by line: a line simplify kept as it was is printed as
 * --emit=grad prints it; one it removed is marked "-" with the rule that removed it and
 * what replaced it (or "dead code"); one it rewrote (an operand replaced, a transpose read
 * through the product's flags, a name taken over) is its "-" line, with why, then its "+"
 * line as it became. */

typedef struct Before {
    const char *text; /* line_text before simplify */
    const char *ref;  /* its name then: %t12 */
    Value *args[3];   /* its operands then */
} Before;

typedef struct Diff {
    FILE *out;
    Graph *g;
    Steps steps;
    const ValueList *old;                                  /* the values before simplify */
    Before *before;                                        /* by id */
    SimplifyTrace t;                                       /* what simplify did */
    bool *kept;                                            /* by id: still in g->insts */
    int same, rewritten, identities, folded, shared, dead; /* lines, for the summary */
} Diff;

/* Why a kept line reads differently: its own rule, else the operands simplify replaced. */
static const char *rewrite_reason(const Diff *d, const Value *v) {
    if (v->id < d->t.n_ids && d->t.why[v->id]) return d->t.why[v->id];
    StrBuf s = {0};
    const Before *b = &d->before[v->id];
    for (int i = 0; i < v->nargs; i++) {
        const Value *was = b->args[i];
        const char *then = d->before[was->id].ref, *now = ir_value_ref(v->args[i]);
        bool said = false; /* mul %t5, %t5: once */
        for (int j = 0; j < i; j++) said |= b->args[j] == was;
        if (said || (was == v->args[i] && !strcmp(then, now))) continue;
        const char *why = was->id < d->t.n_ids ? d->t.why[was->id] : NULL;
        if (was == v->args[i]) /* renamed after a line it replaced */
            sb_printf(&s, "%s%s is now named %s", s.n ? "; " : "", then, now);
        else
            sb_printf(&s, "%s%s is now %s%s%s%s", s.n ? "; " : "", then, now, why ? " (" : "",
                      why ? why : "", why ? ")" : "");
    }
    if (s.n) return sb_str(&s);
    for (int i = 0; i < d->old->n; i++) { /* the line whose name it took (simplify.c, inherit) */
        const Value *u = d->old->v[i];
        if (u->id < d->t.n_ids && d->t.by[u->id] == v &&
            !strcmp(d->before[u->id].ref, ir_value_ref(v)))
            return xprintf("named %s after #%d, which it replaced", ir_value_ref(v), u->id);
    }
    return "renamed";
}

static void diff_line(Diff *d, const Value *v, bool forward) {
    const Before *b = &d->before[v->id];
    const char *comment = forward ? forward_comment(v) : backward_comment(v, NULL);
    if (d->kept[v->id]) {
        const char *now = line_text(v);
        if (!strcmp(now, b->text)) {
            d->same++;
            print_marked_line(d->out, "  ", now, comment);
            return;
        }
        d->rewritten++;
        print_marked_line(d->out, "- ", b->text, rewrite_reason(d, v));
        print_marked_line(d->out, "+ ", now, comment);
        return;
    }
    const Value *by = v->id < d->t.n_ids ? d->t.by[v->id] : NULL;
    const char *why = by ? d->t.why[v->id] : NULL;
    if (!by) {
        d->dead++;
        print_marked_line(d->out, "- ", b->text, "dead code: nothing that is kept reads it");
        return;
    }
    if (!strcmp(why, "constant folding"))
        d->folded++;
    else if (strstr(why, "(CSE)"))
        d->shared++;
    else
        d->identities++;
    print_marked_line(d->out, "- ", b->text, xprintf("%s: %s instead", why, ir_value_ref(by)));
}

static void diff_pass(Diff *d, const ValueList *old, int first, int end, bool forward) {
    for (int i = first; i < end; i++) {
        const Value *v = old->v[i];
        if (printable(v) && shown(d->out, &d->steps, v)) diff_line(d, v, forward);
    }
    flush_steps(d->out, &d->steps);
}

void print_simplify_diff(FILE *out, Graph *g, bool all_steps) {
    ValueList old = {0};
    Diff d = {.out = out, .g = g, .steps = steps_of(g, all_steps), .old = &old};
    int old_forward = g->n_forward;
    d.before = xalloc(sizeof *d.before * (size_t)g->next_id);
    for (int i = 0; i < g->insts.n; i++) {
        Value *v = g->insts.v[i];
        vec_push(&old, v);
        d.before[v->id].text = printable(v) ? line_text(v) : "";
        d.before[v->id].ref = ir_value_ref(v);
        memcpy(d.before[v->id].args, v->args, sizeof v->args);
    }
    simplify_traced(g, &d.t);
    d.kept = xalloc(sizeof *d.kept * (size_t)g->next_id);
    for (int i = 0; i < g->insts.n; i++) d.kept[g->insts.v[i]->id] = true;

    print_header(out, g);
    fputs("; what simplify changed: \"-\" a line as autodiff emitted it (--emit=grad-raw), with\n"
          "; the rule that removed or rewrote it; \"+\" the line it became (--emit=grad)\n",
          out);
    fputs("forward {\n", out);
    diff_pass(&d, &old, 0, old_forward, true);
    fputs("}\n", out);
    if (g->param_grads) {
        print_backward_head(out, g);
        for (int i = 0; i < g->rule_notes.n; i++) fprintf(out, "  ; %s\n", g->rule_notes.v[i]);
        diff_pass(&d, &old, old_forward, old.n, false);
        fputs("}\n", out);
        print_gradients(out, g);
    }
    fprintf(out,
            "\n; simplify kept %d lines as they were and rewrote %d; it removed %d by an "
            "identity,\n; %d by constant folding, %d as the same as an earlier line and %d as "
            "dead code\n",
            d.same, d.rewritten, d.identities, d.folded, d.shared, d.dead);
}
