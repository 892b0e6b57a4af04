/* dot.c: --emit=dot and --emit=svg, the forward pass and the backward pass autodiff derived
 * from it, as one Graphviz drawing.
 *
 * Forward values are blue, backward ones orange; inputs, targets and params have shapes of
 * their own. Every arrow goes from an operand to the instruction that reads it. The dashed
 * ones run from a forward value into the backward pass: they are what training must keep
 * from the forward pass. Constants are written into the labels instead of being drawn
 * (1 - u, u ^ 2), which keeps the picture about the values that flow. Each backward node
 * cites the forward step it differentiates and the local derivative used (#7 d tanh(u)/du =
 * 1 - tanh(u)^2), as --emit=grad does; the params' gradients are bold.
 *
 * Each fn call (a dense, a bce, one step of an unrolled scan) is a cluster of its own, named
 * after the call and nested as the calls were, in the forward pass and again, mirrored, in
 * the backward one (a backward value belongs to the call of the forward step it
 * differentiates). --collapse=NAME,... draws each call of those fns (or in those bindings,
 * or every call: all) as one box, the arrows into and out of it kept.
 *
 * --emit=svg pipes the same text into Graphviz's `dot -Tsvg`. Graphviz is not a build
 * dependency, so a machine without it gets a message saying how to install it. */
#include "rules.h"
#include "stages.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define FORWARD_FILL  "#dceaf7"
#define FORWARD_LINE  "#3b6ea5"
#define LEAF_FILL     "#bcd6f0"
#define BACKWARD_FILL "#fde3c8"
#define BACKWARD_LINE "#c8651b"
#define PARAM_GRAD    "#f6b477"
#define KEPT_LINE     "#7f9fbf"
#define NOTE_COLOR    "#555555"

/* ---- escaping ---- */

/* Text inside an HTML-like label: & < > " are markup there. */
static const char *html(const char *s) {
    size_t n = 0;
    for (const char *c = s; *c; c++) n += strchr("&<>\"", *c) ? 6 : 1;
    char *out = xalloc(n + 1), *p = out;
    for (const char *c = s; *c; c++) {
        const char *entity = *c == '&'   ? "&amp;"
                             : *c == '<' ? "&lt;"
                             : *c == '>' ? "&gt;"
                             : *c == '"' ? "&quot;"
                                         : NULL;
        if (entity)
            p += strlen(strcpy(p, entity));
        else
            *p++ = *c;
    }
    return out;
}

/* A double-quoted attribute: \ and " are escaped; a newline becomes dot's \n. */
static const char *quoted(const char *s) {
    char *out = xalloc(2 * strlen(s) + 3), *p = out;
    *p++ = '"';
    for (const char *c = s; *c; c++) {
        if (*c == '\n') {
            *p++ = '\\', *p++ = 'n';
            continue;
        }
        if (*c == '\\' || *c == '"') *p++ = '\\';
        *p++ = *c;
    }
    *p++ = '"';
    return out;
}

/* ---- what a node says ---- */

static bool drawn(const Value *v) {
    return v->op != OP_const;
}

static const char *base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The operands drawn as arrows are a, b, c (the letters of the rules in ops.def: d(a*b)/da);
 * a lone one is u (d tanh(u)/du); constants are written in, as the source wrote them. */
static const char *operand_name(const Value *v, int i) {
    const Value *a = v->args[i];
    if (!drawn(a))
        return ir_const_is_compound(a) ? xprintf("(%s)", ir_const_str(a)) : ir_const_str(a);
    int count = 0, index = 0;
    for (int j = 0; j < v->nargs; j++) {
        if (j < i && v->args[j] == a) return operand_name(v, j);
        bool first_use = true;
        for (int k = 0; k < j; k++) first_use &= v->args[k] != v->args[j];
        if (drawn(v->args[j]) && first_use) index += j < i, count++;
    }
    if (count == 1) return "u";
    return xprintf("%c", 'a' + index);
}

static const char *matmul_label(const Value *v) {
    const char *a = operand_name(v, 0), *b = operand_name(v, 1);
    return xprintf("%s%s%s @ %s%s", v->sum_batch ? "Σ batch " : "", a, v->ta ? "ᵀ" : "", b,
                   v->tb ? "ᵀ" : "");
}

/* An option as the graph writes it: "α = 0.2", "rate = 0.5". */
static const char *option_label(const char *name, double value) {
    return xprintf("%s = %s", strcmp(name, "alpha") ? name : "α", ir_number_str(value));
}

/* The operation in a line: "tanh", "a @ b", "1 - u", "u ^ 2", "leaky_relu, α = 0.2". */
static const char *op_label(const Value *v) {
    const OpInfo *in = &op_info[v->op];
    if (v->op == OP_matmul) return matmul_label(v);
    if (v->op == OP_slice) return xprintf("%s%s", operand_name(v, 0), ir_layout_str(v));
    if (v->layout) return xprintf("%s %s", in->name, ir_layout_str(v));
    if (in->symbol && v->nargs == 2)
        return xprintf("%s %c %s", operand_name(v, 0), in->symbol, operand_name(v, 1));
    if (in->symbol && v->nargs == 1) return xprintf("%c%s", in->symbol, operand_name(v, 0));
    if (v->op == OP_where)
        return xprintf("%s > 0 ? %s : %s", operand_name(v, 0), operand_name(v, 1),
                       operand_name(v, 2));
    if (v->op == OP_batch_sum) return "Σ batch";
    if (v->op == OP_reshape) return xprintf("reshape to %s", shape_str(v->shape));
    if (in->flags & OPF_SHAPE_GIVEN && in->cls != OPC_WINDOW)
        return xprintf("%s to %s", in->name, shape_str(v->shape));
    const char *label = in->name;
    for (int k = 0; k < in->n_options; k++)
        label = xprintf("%s, %s", label, option_label(in->options[k].name, v->opt[k]));
    if ((in->flags & OPF_RANDOM) && v->salt != v->id)
        label = xprintf("%s, masks of #%d", label, v->salt);
    return label;
}

/* "%h [4]", "@h.W [2, 4]", "$x [2]" */
static const char *value_title(const Value *v) {
    return xprintf("%s %s", ir_value_ref(v), shape_str(v->shape));
}

/* The small line under a backward node: why it is there. */
static const char *backward_note(const Value *v) {
    if (v->op == OP_inv_batch) return "d cost/d loss: cost = mean of the B losses";
    if (v->fanout > 1 && v->grad_of)
        return xprintf("sum over the %d uses of %s", v->fanout, ir_value_ref(v->grad_of));
    if (v->rule && !strcmp(v->rule, "sum over uses")) return "partial sum over uses";
    if (v->from) return xprintf("#%d %s", v->from->id, v->rule ? v->rule : "");
    return v->rule ? v->rule : "";
}

static const char *source_note(const Value *v) {
    if (!v->loc.file) return "";
    return xprintf("%s:%d:%d%s%s", base_name(v->loc.file->path), v->loc.line, v->loc.col,
                   v->what ? " " : "", v->what ? v->what : "");
}

/* ---- nodes ---- */

typedef struct Drawing {
    FILE *out;
    Graph *g;
    bool *forward; /* by id: a forward value */
    int *param_of; /* by id: 1 + the index of the param whose gradient it is, or 0 */
    /* The fn calls (CallSite), by CallSite.id (0: none, the model itself). */
    const CallSite **at; /* by value id: the call it is drawn in (site_of) */
    int n_sites;
    const CallSite **sites;
    int *first_child, *next_sibling; /* the calls made in each, in order */
    const CallSite **box;            /* the collapsed call it is drawn in, or NULL */
    int *first_value, *next_value;   /* by site id / insts index: the values of a pass */
    bool *used;                      /* by site id: holds values of the pass being drawn */
    HashMap edges;                   /* "v3>c7f": arrows drawn already (into a box) */
    int indent;                      /* of a node's line: 4, and 2 more a cluster deep */
} Drawing;

/* ---- fn calls: clusters, and boxes when collapsed ---- */

static int call_depth(const CallSite *c) {
    int depth = 0;
    for (; c; c = c->parent) depth++;
    return depth;
}

/* The innermost call both a and b are in (NULL: the model). */
static const CallSite *common_call(const CallSite *a, const CallSite *b) {
    int da = call_depth(a), db = call_depth(b);
    for (; da > db; da--) a = a->parent;
    for (; db > da; db--) b = b->parent;
    while (a != b) a = a->parent, b = b->parent;
    return a;
}

/* The call a value is drawn in: a forward value's own; a backward value's that of the
 * forward step it differentiates, or of the value whose gradient it sums; a partial sum
 * over uses, the innermost call its terms are all in (the scan, for a weight's steps). */
static const CallSite *find_site(const Drawing *d, const Value *v) {
    if (d->forward[v->id]) return v->site;
    if (v->from) return v->from->site;
    if (v->grad_of) return v->grad_of->site;
    if (!v->rule || strcmp(v->rule, "sum over uses")) return NULL;
    const CallSite *c = d->at[v->args[0]->id];
    for (int i = 1; i < v->nargs; i++) c = common_call(c, d->at[v->args[i]->id]);
    return c;
}

static const CallSite *site_of(const Drawing *d, const Value *v) {
    return d->at[v->id];
}

/* "dense(x, 4) in h (xor.nn:7)", "rnn_cell step 3 in h (nn.nn:120)" */
static const char *site_label(const CallSite *c) {
    const char *what = c->step ? xprintf("%s step %d", c->fn, c->step - 1) : c->text;
    const char *in = c->binding ? xprintf(" in %s", c->binding) : "";
    if (!c->loc.file) return xprintf("%s%s", what, in);
    return xprintf("%s%s (%s:%d)", what, in, base_name(c->loc.file->path), c->loc.line);
}

/* Whether --collapse's list (NAME,NAME,... or all) names the call's fn or binding. */
static bool named_in(const char *list, const CallSite *c) {
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if ((n == 3 && !strncmp(p, "all", 3)) || (strlen(c->fn) == n && !strncmp(p, c->fn, n)) ||
            (c->binding && strlen(c->binding) == n && !strncmp(p, c->binding, n)))
            return true;
        p += n + (p[n] == ',');
    }
    return false;
}

/* The calls of the graph's values, the tree they form, and which are drawn as a box: the
 * outermost of the calls --collapse names. */
static void find_sites(Drawing *d, const char *collapse) {
    Graph *g = d->g;
    d->at = xalloc(sizeof *d->at * (size_t)g->next_id);
    for (int i = 0; i < g->insts.n; i++) /* operands first: a sum's terms before it */
        d->at[g->insts.v[i]->id] = find_site(d, g->insts.v[i]);
    for (int i = 0; i < g->insts.n; i++) /* a call's parents have smaller ids */
        if (d->at[g->insts.v[i]->id] && d->at[g->insts.v[i]->id]->id > d->n_sites)
            d->n_sites = d->at[g->insts.v[i]->id]->id;
    size_t n = (size_t)d->n_sites + 1;
    d->sites = xalloc(sizeof *d->sites * n);
    d->first_child = xalloc(sizeof *d->first_child * n);
    d->next_sibling = xalloc(sizeof *d->next_sibling * n);
    d->box = xalloc(sizeof *d->box * n);
    d->first_value = xalloc(sizeof *d->first_value * n);
    d->used = xalloc(sizeof *d->used * n);
    d->next_value = xalloc(sizeof *d->next_value * (size_t)(g->insts.n + 1));
    for (int i = 0; i < g->insts.n; i++)
        for (const CallSite *c = d->at[g->insts.v[i]->id]; c && !d->sites[c->id]; c = c->parent)
            d->sites[c->id] = c;
    int *last_child = xalloc(sizeof *last_child * n);
    for (int id = 1; id <= d->n_sites; id++) { /* a call's id is above its parent's */
        const CallSite *c = d->sites[id];
        if (!c) continue;
        int parent = c->parent ? c->parent->id : 0;
        if (last_child[parent])
            d->next_sibling[last_child[parent]] = id;
        else
            d->first_child[parent] = id;
        last_child[parent] = id;
        const CallSite *outer_box = c->parent ? d->box[c->parent->id] : NULL;
        d->box[id] = outer_box ? outer_box : collapse && named_in(collapse, c) ? c : NULL;
    }
}

/* The name of the node a value is drawn as: its own, or its collapsed call's box. */
static const char *node_ref(const Drawing *d, const Value *v) {
    const CallSite *c = site_of(d, v);
    const CallSite *box = c ? d->box[c->id] : NULL;
    if (box) return xprintf("c%d%c", box->id, d->forward[v->id] ? 'f' : 'b');
    return xprintf("v%d", v->id);
}

static void label_line(FILE *out, const char *text, const char *font) {
    if (font)
        fprintf(out, "<BR/><FONT POINT-SIZE=\"9\" COLOR=\"%s\">%s</FONT>", font, html(text));
    else
        fprintf(out, "<BR/>%s", html(text));
}

/* Data flows in at an input (a house upside down), the target is what it is compared with,
 * a param is stored (a cylinder), a state too but never trained (a folder: a record kept);
 * an instruction is a box. */
static const char *node_shape(const Value *v) {
    switch (v->op) {
    case OP_input: return "invhouse";
    case OP_target: return "house";
    case OP_param: return "cylinder";
    case OP_state: return "folder";
    default: return "box";
    }
}

static void forward_node(Drawing *d, const Value *v) {
    bool leaf = op_info[v->op].cls == OPC_SRC;
    const char *shape = node_shape(v);
    fprintf(d->out, "%*sv%d [shape=%s, style=\"%s\", fillcolor=\"%s\", color=\"%s\"", d->indent, "",
            v->id, shape, leaf ? "filled" : "rounded,filled", leaf ? LEAF_FILL : FORWARD_FILL,
            FORWARD_LINE);
    if (v == d->g->loss) fputs(", peripheries=2", d->out);
    fprintf(d->out, ", label=<<B>%s</B>", html(value_title(v)));
    if (!leaf) {
        const char *op = xprintf("#%d %s", v->id, op_label(v));
        /* a fn's own backward rules, which autodiff used instead of its body */
        if (v->custom) op = xprintf("%s  (fn %s)", op, v->custom->fn->fn);
        label_line(d->out, op, NULL);
        if (v->custom) label_line(d->out, v->custom->fn->written, NOTE_COLOR);
    } else {
        label_line(d->out, op_info[v->op].name, NOTE_COLOR);
    }
    if (v == d->g->loss) label_line(d->out, "the loss", NOTE_COLOR);
    if (v == d->g->output && v != d->g->loss) label_line(d->out, "the output", NOTE_COLOR);
    fprintf(d->out, ">, tooltip=%s];\n", quoted(source_note(v)));
}

static void backward_node(Drawing *d, const Value *v) {
    int param = d->param_of[v->id];
    fprintf(d->out, "%*sv%d [shape=box, style=\"rounded,filled\", fillcolor=\"%s\", color=\"%s\"",
            d->indent, "", v->id, param ? PARAM_GRAD : BACKWARD_FILL, BACKWARD_LINE);
    if (param) fputs(", penwidth=2.5", d->out);
    const char *title = v->op == OP_inv_batch ? "seed 1/B" : value_title(v);
    fprintf(d->out, ", label=<<B>%s</B>", html(title));
    if (v->op != OP_inv_batch) label_line(d->out, xprintf("#%d %s", v->id, op_label(v)), NULL);
    label_line(d->out, backward_note(v), NOTE_COLOR);
    if (param)
        fprintf(d->out, "<BR/><B>%s</B>",
                html(xprintf("d cost/d %s", ir_value_ref(d->g->params.v[param - 1]))));
    const char *tip = v->from ? xprintf("differentiates #%d, %s", v->from->id, source_note(v->from))
                              : backward_note(v);
    fprintf(d->out, ">, tooltip=%s];\n", quoted(tip));
}

/* ---- edges ---- */

/* False for an arrow inside a box, or one drawn already: a box has one arrow from each
 * node (or box) that feeds it. */
static bool new_edge(Drawing *d, const char *from, const char *to) {
    if (!strcmp(from, to)) return false;
    if (from[0] == 'v' && to[0] == 'v') return true; /* between two values: once each */
    const char *key = xprintf("%s>%s", from, to);
    if (strmap_get(&d->edges, key)) return false;
    strmap_put(&d->edges, key, (void *)key);
    return true;
}

static void edges_into(Drawing *d, const Value *v) {
    bool backward = !d->forward[v->id];
    const char *to = node_ref(d, v);
    for (int i = 0; i < v->nargs; i++) {
        const Value *a = v->args[i];
        bool repeat = false;
        for (int j = 0; j < i; j++) repeat |= v->args[j] == a;
        if (!drawn(a) || repeat) continue;
        const char *from = node_ref(d, a);
        if (!new_edge(d, from, to)) continue;
        const char *name = operand_name(v, i);
        for (int j = i + 1; j < v->nargs; j++)
            if (v->args[j] == a) name = xprintf("%s,%s", name, operand_name(v, j));
        if (!backward)
            fprintf(d->out, "  %s -> %s [color=\"%s\"", from, to, FORWARD_LINE);
        else if (d->forward[a->id])
            fprintf(d->out, "  %s -> %s [color=\"%s\", style=dashed, constraint=false", from, to,
                    KEPT_LINE);
        else /* drawn upwards, so the backward pass mirrors the forward one */
            fprintf(d->out, "  %s -> %s [dir=back, color=\"%s\"", to, from, BACKWARD_LINE);
        if (strcmp(name, "u") && to[0] == 'v') fprintf(d->out, ", label=\" %s\"", name);
        fputs("];\n", d->out);
    }
}

/* ---- the drawing ---- */

static void print_header(Drawing *d) {
    Graph *g = d->g;
    const char *file = g->source_path ? base_name(g->source_path) : "";
    fprintf(d->out,
            "digraph %s {\n"
            "  graph [fontname=\"Helvetica\", fontsize=12, labelloc=t, newrank=true, "
            "nodesep=0.3, ranksep=0.35,\n"
            "         label=%s];\n"
            "  node [fontname=\"Helvetica\", fontsize=11, margin=\"0.12,0.04\"];\n"
            "  edge [fontname=\"Helvetica\", fontsize=9, arrowsize=0.7];\n",
            quoted(g->name),
            quoted(xprintf("model %s (%s): forward (blue) and the backward pass autodiff "
                           "derived (orange)\ndashed: forward values the backward pass reads; "
                           "bold: the params' gradients",
                           g->name, file)));
}

/* A collapsed call: one box for its values in one pass, with its params (forward) or
 * their gradients (backward) named. */
static void box_node(Drawing *d, const CallSite *c, bool forward) {
    Graph *g = d->g;
    int count = 0;
    const char *params = "";
    int first = forward ? 0 : g->n_forward, end = forward ? g->n_forward : g->insts.n;
    for (int i = first; i < end; i++) {
        const Value *v = g->insts.v[i];
        const CallSite *at = site_of(d, v);
        if (!drawn(v) || !at || d->box[at->id] != c) continue;
        count++;
        if (forward && v->op == OP_param)
            params = xprintf("%s%s%s", params, *params ? ", " : "", value_title(v));
        if (!forward && d->param_of[v->id])
            params = xprintf("%s%sd cost/d %s", params, *params ? ", " : "",
                             ir_value_ref(g->params.v[d->param_of[v->id] - 1]));
    }
    fprintf(d->out,
            "%*sc%d%c [shape=box3d, style=\"filled\", fillcolor=\"%s\", color=\"%s\", "
            "label=<<B>%s</B>",
            d->indent, "", c->id, forward ? 'f' : 'b', forward ? FORWARD_FILL : BACKWARD_FILL,
            forward ? FORWARD_LINE : BACKWARD_LINE,
            html(xprintf("%s%s", forward ? "" : "backward of ", site_label(c))));
    label_line(d->out, xprintf("fn %s, %d values collapsed", c->fn, count), NOTE_COLOR);
    if (*params)
        fprintf(d->out, "<BR/>%s%s%s", forward ? "" : "<B>", html(params), forward ? "" : "</B>");
    fprintf(d->out, ">, tooltip=%s];\n", quoted(xprintf("fn %s", c->fn)));
}

static void value_node(Drawing *d, const Value *v, bool forward) {
    if (forward)
        forward_node(d, v);
    else
        backward_node(d, v);
}

/* A call's cluster: its values, then the calls made in it; a collapsed call is a box. */
static void site_cluster(Drawing *d, int id, bool forward, int depth) {
    const CallSite *c = d->sites[id];
    d->indent = 2 * depth;
    if (d->box[id] == c) {
        box_node(d, c, forward);
        return;
    }
    fprintf(d->out,
            "%*ssubgraph cluster_%c%d {\n%*slabel=%s; style=\"rounded,dashed\"; "
            "color=\"%s\";\n",
            2 * depth, "", forward ? 'f' : 'b', id, 2 * depth + 2, "", quoted(site_label(c)),
            NOTE_COLOR);
    d->indent = 2 * depth + 2;
    for (int i = d->first_value[id]; i; i = d->next_value[i])
        value_node(d, d->g->insts.v[i - 1], forward);
    for (int child = d->first_child[id]; child; child = d->next_sibling[child])
        if (d->used[child]) site_cluster(d, child, forward, depth + 1);
    fprintf(d->out, "%*s}\n", 2 * depth, "");
}

/* Which calls hold values of the pass, and those values, per call, in order (index + 1). */
static void collect_pass(Drawing *d, int first, int end) {
    memset(d->used, 0, sizeof *d->used * (size_t)(d->n_sites + 1));
    memset(d->first_value, 0, sizeof *d->first_value * (size_t)(d->n_sites + 1));
    for (int i = end - 1; i >= first; i--) {
        const Value *v = d->g->insts.v[i];
        if (!drawn(v)) continue;
        const CallSite *c = site_of(d, v);
        int id = c ? c->id : 0;
        d->next_value[i + 1] = d->first_value[id];
        d->first_value[id] = i + 1;
        for (; c && !d->used[c->id]; c = c->parent) d->used[c->id] = true;
    }
}

static void print_cluster(Drawing *d, bool forward) {
    Graph *g = d->g;
    fprintf(d->out,
            "  subgraph cluster_%s {\n    label=%s; style=\"rounded\"; color=\"%s\"; "
            "fontcolor=\"%s\";\n",
            forward ? "forward" : "backward", forward ? "\"forward\"" : "\"backward\"",
            forward ? FORWARD_LINE : BACKWARD_LINE, forward ? FORWARD_LINE : BACKWARD_LINE);
    collect_pass(d, forward ? 0 : g->n_forward, forward ? g->n_forward : g->insts.n);
    d->indent = 4;
    for (int i = d->first_value[0]; i; i = d->next_value[i])
        value_node(d, g->insts.v[i - 1], forward);
    for (int id = d->first_child[0]; id; id = d->next_sibling[id])
        if (d->used[id]) site_cluster(d, id, forward, 2);
    fputs("  }\n", d->out);
}

/* The backward pass starts where the forward one ends: the seed beside the loss. */
static void print_seed(Drawing *d) {
    for (int i = d->g->n_forward; i < d->g->insts.n; i++) {
        Value *seed = d->g->insts.v[i];
        if (seed->op != OP_inv_batch) continue;
        const char *loss = node_ref(d, d->g->loss), *start = node_ref(d, seed);
        fprintf(d->out, "  { rank=same; %s; %s; }\n", loss, start);
        fprintf(d->out, "  %s -> %s [style=dotted, color=\"%s\", constraint=false];\n", loss, start,
                BACKWARD_LINE);
    }
}

/* 0, or 1 after an error: a name --collapse gives that no call has. */
int dot_check_collapse(Graph *g, const char *collapse) {
    if (!collapse) return 0;
    StrBuf calls = {0};
    HashMap listed = {0};
    for (int i = 0; i < g->insts.n; i++)
        for (const CallSite *c = g->insts.v[i]->site; c; c = c->parent)
            if (!strmap_get(&listed, c->fn)) {
                strmap_put(&listed, c->fn, (void *)c);
                sb_printf(&calls, "%s%s", calls.n ? ", " : "", c->fn);
            }
    for (const char *p = collapse; *p;) {
        size_t n = strcspn(p, ",");
        const char *name = xstrndup(p, n);
        bool found = !strcmp(name, "all") || strmap_get(&listed, name);
        for (int i = 0; !found && i < g->insts.n; i++)
            for (const CallSite *c = g->insts.v[i]->site; c && !found; c = c->parent)
                found = c->binding && !strcmp(c->binding, name);
        if (!found) {
            diag_fatal_noloc("--collapse: '%s' names no fn that model %s calls, nor a binding",
                             name, g->name);
            diag_hint("the fns it calls: %s (or all)", calls.n ? sb_str(&calls) : "none");
            return 1;
        }
        p += n + (p[n] == ',');
    }
    return 0;
}

void print_dot(FILE *out, Graph *g, const char *collapse) {
    Drawing d = {.out = out, .g = g};
    d.forward = xalloc(sizeof *d.forward * (size_t)g->next_id);
    d.param_of = xalloc(sizeof *d.param_of * (size_t)g->next_id);
    for (int i = 0; i < g->n_forward; i++) d.forward[g->insts.v[i]->id] = true;
    for (int i = 0; g->param_grads && i < g->params.n; i++)
        if (g->param_grads[i] && !d.forward[g->param_grads[i]->id] &&
            !d.param_of[g->param_grads[i]->id])
            d.param_of[g->param_grads[i]->id] = i + 1;
    find_sites(&d, collapse);
    print_header(&d);
    print_cluster(&d, true);
    if (g->n_forward < g->insts.n) print_cluster(&d, false);
    for (int i = 0; i < g->insts.n; i++)
        if (drawn(g->insts.v[i])) edges_into(&d, g->insts.v[i]);
    print_seed(&d);
    fputs("}\n", out);
}

/* ---- --emit=svg ---- */

/* The path of `dot` on PATH, or NULL: looked up here rather than left to exec, so that a
 * missing Graphviz is reported before any output file is made. */
static const char *find_dot(void) {
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/bin:/bin";
    for (const char *p = path;; p++) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *candidate = xprintf("%.*s/dot", (int)len, len ? p : ".");
        struct stat st;
        if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode) && access(candidate, X_OK) == 0)
            return candidate;
        if (!end) return NULL;
        p = end;
    }
}

/* Writes the drawing into dot's stdin. A dot that exits early must not kill nnc with
 * SIGPIPE: its exit status says what went wrong. */
static bool feed(Graph *g, const char *collapse, int fd) {
    void (*old)(int) = signal(SIGPIPE, SIG_IGN);
    FILE *pipe_out = fdopen(fd, "w");
    bool ok = pipe_out != NULL;
    if (pipe_out) {
        print_dot(pipe_out, g, collapse);
        ok = fclose(pipe_out) == 0;
    } else {
        close(fd);
    }
    signal(SIGPIPE, old);
    return ok;
}

/* Runs dot -Tsvg with the drawing on its stdin and its stdout on out_fd. Returns dot's exit
 * status, or -1 when it could not be started. */
static int run_dot(Graph *g, const char *collapse, const char *dot, int out_fd) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO);
    if (out_fd != STDOUT_FILENO) posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    char *argv[] = {"dot", "-Tsvg", NULL};
    pid_t pid;
    fflush(stdout);
    int err = posix_spawn(&pid, dot, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[0]);
    if (err != 0) {
        close(fds[1]);
        errno = err;
        return -1;
    }
    bool fed = feed(g, collapse, fds[1]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    if (!WIFEXITED(status)) return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    /* dot read less than the whole drawing yet claimed success: still a failure */
    return WEXITSTATUS(status) == 0 && !fed ? 1 : WEXITSTATUS(status);
}

/* A temporary file beside the output, renamed over it once dot has succeeded: a failed run
 * leaves no partial SVG (and an older one where it was). */
static int open_temporary(const char *svg_path, char **tmp_path) {
    *tmp_path = xprintf("%s.XXXXXX", svg_path);
    int fd = mkstemp(*tmp_path);
    if (fd < 0) return -1;
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    return fd;
}

int write_svg(Graph *g, const char *svg_path, const char *collapse) {
    const char *dot = find_dot();
    if (!dot) {
        diag_fatal_noloc("--emit=svg needs Graphviz's dot program, which is not installed");
        diag_hint("install it with: apt-get install graphviz (or use --emit=dot and render it "
                  "elsewhere)");
        return 1;
    }
    bool to_stdout = !strcmp(svg_path, "-");
    char *tmp_path = NULL;
    int fd = to_stdout ? STDOUT_FILENO : open_temporary(svg_path, &tmp_path);
    if (fd < 0) {
        diag_fatal_noloc("cannot write %s: %s", svg_path, strerror(errno));
        return 1;
    }
    int status = run_dot(g, collapse, dot, fd);
    if (status < 0) diag_fatal_noloc("cannot run %s: %s", dot, strerror(errno));
    if (status > 0)
        diag_fatal_noloc("Graphviz's dot failed (exit status %d)%s", status,
                         to_stdout ? "" : "; no SVG was written");
    if (to_stdout) return status != 0;
    close(fd);
    if (status == 0 && rename(tmp_path, svg_path) == 0) return 0;
    if (status == 0) diag_fatal_noloc("cannot write %s: %s", svg_path, strerror(errno));
    unlink(tmp_path);
    return 1;
}
