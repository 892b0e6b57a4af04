/* sema.c: the program's structure (imports, fns, models, train blocks) and the meaning of
 * the train block. Shapes are checked later, in lower.c, where fn calls are inlined. */
#include "stages.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool lower_is_builtin(const char *name); /* lower.c */

/* ---- imports ---- */

typedef VEC(const char *) PathList;

static const char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? xstrndup(path, (size_t)(slash - path)) : ".";
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* "nn" -> <stdlib>/nn.nn ; "layers.nn" -> next to the importing file. */
static const char *import_path(const char *name, const char *importer, const char *stdlib_dir) {
    if (ends_with(name, ".nn"))
        return name[0] == '/' ? name : xprintf("%s/%s", dir_of(importer), name);
    return xprintf("%s/%s.nn", stdlib_dir, name);
}

static bool seen_path(PathList *seen, const char *path) {
    for (int i = 0; i < seen->n; i++)
        if (strcmp(seen->v[i], path) == 0) return true;
    vec_push(seen, path);
    return false;
}

static void collect_fns(Node *file, const char *path, const char *stdlib_dir, PathList *seen,
                        NodeList *fns, int depth);

static void load_import(Node *imp, const char *importer, const char *stdlib_dir, PathList *seen,
                        NodeList *fns, int depth) {
    if (!stdlib_dir && !ends_with(imp->str, ".nn")) {
        diag_error(imp->loc, "cannot import \"%s\": the stdlib folder was not found", imp->str);
        diag_hint("set NNC_HOME to the folder that holds stdlib/");
        return;
    }
    const char *path = import_path(imp->str, importer, stdlib_dir);
    if (seen_path(seen, path)) return;
    SrcFile *src = srcfile_read(path);
    if (!src) {
        diag_error(imp->loc, "cannot import \"%s\": %s: %s", imp->str, path, strerror(errno));
        return;
    }
    Node *ast = parse_file(src);
    if (ast) collect_fns(ast, path, stdlib_dir, seen, fns, depth + 1);
}

/* Imports first (depth-first), so a file's own fns come after those it imports. */
static void collect_fns(Node *file, const char *path, const char *stdlib_dir, PathList *seen,
                        NodeList *fns, int depth) {
    for (int i = 0; i < file->body.n; i++) {
        Node *item = file->body.v[i];
        if (item->kind == ND_IMPORT) load_import(item, path, stdlib_dir, seen, fns, depth);
    }
    for (int i = 0; i < file->body.n; i++) {
        Node *item = file->body.v[i];
        if (item->kind == ND_FN) vec_push(fns, item);
    }
}

/* ---- structure ---- */

static const char *stmt_word(NodeKind k) {
    switch (k) {
    case ND_INPUT: return "input";
    case ND_TARGET: return "target";
    case ND_PARAM: return "param";
    case ND_BIND: return "a binding";
    case ND_RETURN: return "return";
    case ND_GRAD: return "grad";
    case ND_SETTING: return "a setting";
    default: return "this";
    }
}

static Node *fn_param_named(Node *fn, const char *name) {
    for (int i = 0; i < fn->params.n; i++)
        if (!strcmp(fn->params.v[i]->str, name)) return fn->params.v[i];
    return NULL;
}

/* grad u = e / grad u ~ e: after the return, one per argument, and `g` free for the rule. */
static void check_grad_rule(Node *fn, Node *rule, int index) {
    if (!fn_param_named(fn, rule->str)) {
        diag_error(rule->name_loc, "fn %s has no argument %s to give a backward rule", fn->str,
                   rule->str);
        return;
    }
    for (int j = 0; j < index; j++) {
        Node *other = fn->body.v[j];
        if (other->kind == ND_GRAD && !strcmp(other->str, rule->str)) {
            diag_error(rule->loc, "argument %s has two backward rules", rule->str);
            diag_note(other->loc, "the first is here");
        }
    }
}

static void check_g_is_free(Node *fn) {
    Node *p = fn_param_named(fn, "g");
    if (p) diag_error(p->loc, "in a fn with backward rules, g names the result's gradient");
    for (int i = 0; i < fn->body.n; i++) {
        Node *s = fn->body.v[i];
        if ((s->kind == ND_BIND || s->kind == ND_PARAM) && !strcmp(s->str, "g"))
            diag_error(s->loc, "in a fn with backward rules, g names the result's gradient");
    }
}

static void check_fn(Node *fn) {
    int ret = -1;
    bool has_rules = false;
    for (int i = 0; i < fn->body.n; i++) {
        Node *s = fn->body.v[i];
        if (s->kind == ND_INPUT || s->kind == ND_TARGET) {
            diag_error(s->loc, "%s cannot appear in a fn", stmt_word(s->kind));
            diag_hint("a fn receives tensors as arguments; declare inputs in the model");
        } else if (s->kind == ND_BIND && s->is_output) {
            diag_error(s->loc, "output cannot appear in a fn");
        } else if (s->kind == ND_RETURN && ret >= 0) {
            diag_error(s->loc, "a fn has one return");
        } else if (s->kind == ND_RETURN) {
            ret = i;
        } else if (s->kind == ND_GRAD && ret < 0) {
            diag_error(s->loc, "backward rules come after the fn's return");
        } else if (s->kind == ND_GRAD) {
            has_rules = true;
            check_grad_rule(fn, s, i);
        } else if (ret >= 0) {
            diag_error(s->loc, "only backward rules (grad ...) may follow return");
        }
    }
    if (ret < 0) diag_error(fn->loc, "fn %s has no return", fn->str);
    if (has_rules) check_g_is_free(fn);
    for (int i = 0; i < fn->params.n; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(fn->params.v[i]->str, fn->params.v[j]->str) == 0)
                diag_error(fn->params.v[i]->loc, "fn %s has two arguments named %s", fn->str,
                           fn->params.v[i]->str);
}

static void check_model(Node *model) {
    Node *loss = NULL;
    for (int i = 0; i < model->body.n; i++) {
        Node *s = model->body.v[i];
        if (s->kind == ND_RETURN) diag_error(s->loc, "return cannot appear in a model");
        if (s->kind == ND_GRAD) {
            diag_error(s->loc, "a backward rule belongs in a fn, after its return");
            diag_hint("write the computation as a fn and give it `grad ARG = ...` after return");
        }
        if (s->kind == ND_SETTING) diag_error(s->loc, "settings belong in a train block");
        if (s->kind == ND_BIND && strcmp(s->str, "loss") == 0) loss = s;
    }
    if (!loss) {
        diag_error(model->loc, "model %s has no loss", model->str);
        diag_hint("add a line such as `loss = mse(p, y)`: the per-sample value training minimises");
    }
}

static void check_unique_fns(NodeList *fns) {
    for (int i = 0; i < fns->n; i++) {
        Node *f = fns->v[i];
        if (lower_is_builtin(f->str)) {
            diag_error(f->loc, "fn %s has the name of a built-in operation", f->str);
            continue;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(fns->v[j]->str, f->str) == 0) {
                diag_error(f->loc, "fn %s is defined twice", f->str);
                diag_note(fns->v[j]->loc, "the first definition is here");
                break;
            }
    }
}

static Node *pick_model(Node *file, const char *model_name) {
    Node *found = NULL;
    int count = 0;
    for (int i = 0; i < file->body.n; i++) {
        Node *item = file->body.v[i];
        if (item->kind != ND_MODEL) continue;
        count++;
        if (model_name ? strcmp(item->str, model_name) == 0 : !found) found = item;
    }
    SrcLoc top = {file->loc.file, 1, 1};
    if (model_name && !found)
        diag_error(top, "there is no model named %s in this file", model_name);
    else if (!found)
        diag_error(top, "this file defines no model");
    else if (!model_name && count > 1) {
        diag_error(top, "this file defines %d models; choose one with --model NAME", count);
        return NULL;
    }
    return found;
}

static Node *find_train(Node *file, Node *model) {
    Node *train = NULL;
    for (int i = 0; i < file->body.n; i++) {
        Node *item = file->body.v[i];
        if (item->kind != ND_TRAIN) continue;
        bool known = false;
        for (int j = 0; j < file->body.n; j++) {
            Node *m = file->body.v[j];
            if (m->kind == ND_MODEL && strcmp(m->str, item->str) == 0) known = true;
        }
        if (!known) diag_error(item->loc, "train block for unknown model %s", item->str);
        if (model && strcmp(item->str, model->str) == 0) {
            if (train) diag_error(item->loc, "model %s has two train blocks", model->str);
            train = item;
        }
    }
    return train;
}

bool sema_program(Node *file, const char *stdlib_dir, const char *model_name, Program *out) {
    int errors = diag_error_count();
    memset(out, 0, sizeof *out);
    out->path = file->loc.file ? file->loc.file->path : "";
    PathList seen = {0};
    vec_push(&seen, out->path);
    collect_fns(file, out->path, stdlib_dir, &seen, &out->fns, 0);
    check_unique_fns(&out->fns);
    for (int i = 0; i < out->fns.n; i++) check_fn(out->fns.v[i]);
    out->model = pick_model(file, model_name);
    if (out->model) check_model(out->model);
    out->train = find_train(file, out->model);
    return diag_error_count() == errors;
}

/* ---- the train block ---- */

static bool number_of(Node *e, double *out) {
    if (e->kind == ND_NUM) {
        *out = e->num;
        return true;
    }
    if (e->kind == ND_NEG && e->lhs->kind == ND_NUM) {
        *out = -e->lhs->num;
        return true;
    }
    if (e->kind == ND_BINOP && e->op == '/') {
        double a, b;
        if (number_of(e->lhs, &a) && number_of(e->rhs, &b) && b != 0) {
            *out = a / b;
            return true;
        }
    }
    return false;
}

static bool positive_int_of(Node *e, const char *what, int64_t *out) {
    double x;
    if (!number_of(e, &x) || x != floor(x) || x < 1 || x > 1e15) {
        diag_error(e->loc, "%s must be a positive whole number", what);
        return false;
    }
    *out = (int64_t)x;
    return true;
}

static bool real_of(Node *e, const char *what, double lo, double hi, double *out) {
    double x;
    if (!number_of(e, &x) || !(x >= lo && x <= hi)) {
        diag_error(e->loc, "%s must be a number from %g to %g", what, lo, hi);
        return false;
    }
    *out = x;
    return true;
}

static bool flag_of(Node *e, const char *what, bool *out) {
    const char *s = e->kind == ND_NAME ? e->str : "";
    if (!strcmp(s, "true") || !strcmp(s, "on"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "off"))
        *out = false;
    else {
        diag_error(e->loc, "%s must be on or off", what);
        return false;
    }
    return true;
}

static Value *find_io(Graph *g, const char *name) {
    for (int i = 0; i < g->inputs.n; i++)
        if (!strcmp(g->inputs.v[i]->name, name)) return g->inputs.v[i];
    for (int i = 0; i < g->targets.n; i++)
        if (!strcmp(g->targets.v[i]->name, name)) return g->targets.v[i];
    return NULL;
}

static const char *resolve_data_path(Program *prog, Node *s) {
    if (s->kind != ND_STR) {
        diag_error(s->loc, "the data file must be a string, such as \"data.csv\"");
        return NULL;
    }
    if (s->str[0] == '/') return s->str;
    /* Relative to the .nn file, so the binary trains from any directory. */
    char *dir = realpath(dir_of(prog->path), NULL);
    const char *path = dir ? xprintf("%s/%s", dir, s->str) : s->str;
    free(dir);
    return path;
}

/* x = 0..1, y = 2 */
static void read_column_map(Graph *g, Node *kw) {
    Value *io = find_io(g, kw->str);
    if (!io) {
        diag_error(kw->loc, "%s is not an input or target of model %s", kw->str, g->name);
        return;
    }
    Node *v = kw->lhs;
    double a, b;
    bool ok = v->kind == ND_RANGE ? number_of(v->lhs, &a) && number_of(v->rhs, &b)
                                  : number_of(v, &a) && (b = a, true);
    if (!ok || a < 0 || b < a || a != floor(a) || b != floor(b) || b > 1e8) {
        diag_error(v->loc, "columns must be a column number or a range such as 0..3");
        return;
    }
    int64_t count = (int64_t)(b - a) + 1, numel = shape_numel(io->shape);
    bool class_column = io->op == OP_target && count == 1 && numel > 1;
    if (count != numel && !class_column) {
        diag_error(v->loc, "%s has %lld element%s but is given %lld column%s", kw->str,
                   (long long)numel, numel == 1 ? "" : "s", (long long)count,
                   count == 1 ? "" : "s");
        return;
    }
    vec_push(&g->train.columns, ((ColumnMap){io->name, (int)a, (int)b}));
}

/* Without column maps: inputs then targets, in declaration order, one after the other. */
static void default_columns(Graph *g) {
    int col = 0;
    for (int k = 0; k < 2; k++) {
        ValueList *list = k ? &g->targets : &g->inputs;
        for (int i = 0; i < list->n; i++) {
            int n = (int)shape_numel(list->v[i]->shape);
            vec_push(&g->train.columns, ((ColumnMap){list->v[i]->name, col, col + n - 1}));
            col += n;
        }
    }
}

static void read_data(Program *prog, Graph *g, Node *e) {
    TrainSpec *t = &g->train;
    if (e->kind != ND_CALL || (strcmp(e->str, "csv") && strcmp(e->str, "idx"))) {
        diag_error(e->loc, "data must be csv(\"file.csv\", ...) or idx(\"images\", \"labels\")");
        return;
    }
    t->data_kind = e->str;
    int positional = 0;
    for (int i = 0; i < e->args.n; i++) {
        Node *a = e->args.v[i];
        if (a->kind == ND_KWARG && !strcmp(a->str, "header"))
            flag_of(a->lhs, "header", &t->header);
        else if (a->kind == ND_KWARG && !strcmp(t->data_kind, "csv"))
            read_column_map(g, a);
        else if (a->kind == ND_KWARG)
            diag_error(a->loc, "idx data takes no column names");
        else if (positional == 0)
            t->data_path = resolve_data_path(prog, a), positional++;
        else if (positional == 1 && !strcmp(t->data_kind, "idx"))
            t->data_path2 = resolve_data_path(prog, a), positional++;
        else
            diag_error(a->loc, "unexpected argument to %s(...)", t->data_kind);
    }
    if (!positional) diag_error(e->loc, "%s(...) needs a file name", t->data_kind);
    if (!strcmp(t->data_kind, "idx") && positional < 2)
        diag_error(e->loc, "idx(...) needs an images file and a labels file");
    if (!strcmp(t->data_kind, "csv") && t->columns.n == 0) default_columns(g);
}

/* ---- settings the runtime reads as options (runtime/settings.def) ---- */

typedef enum SettingKind { SK_REAL, SK_INT, SK_ON_OFF, SK_WORD, SK_TEXT, SK_PATH } SettingKind;

static const struct {
    const char *name;
    SettingKind kind;
} setting_table[] = {
#define SETTING(name, kind, help) {#name, SK_##kind},
#include "settings.def"
#undef SETTING
};

static int find_setting(const char *name) {
    for (size_t i = 0; i < sizeof setting_table / sizeof *setting_table; i++)
        if (!strcmp(setting_table[i].name, name)) return (int)i;
    return -1;
}

static void read_option_setting(Program *prog, Graph *g, const char *name, Node *e);

/* name(k = v, ...): the name is the setting's value; each k = v is a setting of its own. */
static void read_word_call(Program *prog, Graph *g, Node *e) {
    for (int i = 0; i < e->args.n; i++) {
        Node *a = e->args.v[i];
        if (a->kind != ND_KWARG)
            diag_error(a->loc, "write %s's settings as name = value", e->str);
        else
            read_option_setting(prog, g, a->str, a->lhs);
    }
}

static const char *setting_value(Program *prog, Node *e, SettingKind kind, const char *name) {
    double x;
    bool on;
    switch (kind) {
    case SK_REAL:
        if (number_of(e, &x)) return ir_number_str(x);
        diag_error(e->loc, "%s must be a number", name);
        return NULL;
    case SK_INT:
        if (number_of(e, &x) && x == floor(x) && x >= 0 && x < 1e15) return ir_number_str(x);
        diag_error(e->loc, "%s must be a whole number", name);
        return NULL;
    case SK_ON_OFF: return flag_of(e, name, &on) ? (on ? "on" : "off") : NULL;
    case SK_WORD:
        if (e->kind == ND_NAME || e->kind == ND_CALL) return e->str;
        diag_error(e->loc, "%s must be a name, such as %s = adam", name, name);
        return NULL;
    case SK_TEXT:
        if (e->kind == ND_STR) return e->str;
        if (number_of(e, &x)) return ir_number_str(x);
        diag_error(e->loc, "%s must be a number or a string", name);
        return NULL;
    case SK_PATH: return resolve_data_path(prog, e);
    }
    return NULL;
}

static void read_option_setting(Program *prog, Graph *g, const char *name, Node *e) {
    int k = find_setting(name);
    if (k < 0) {
        diag_error(e->loc, "unknown setting %s", name);
        diag_hint("the train block's settings are listed in docs/language.md");
        return;
    }
    const char *value = setting_value(prog, e, setting_table[k].kind, name);
    if (!value) return;
    vec_push(&g->train.settings, ((Setting){setting_table[k].name, value}));
    if (setting_table[k].kind == SK_WORD && e->kind == ND_CALL) read_word_call(prog, g, e);
}

static const char *const optimizers[] = {"sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamw"};

static void read_optimizer(Program *prog, Graph *g, Node *e) {
    TrainSpec *t = &g->train;
    const char *name = e->kind == ND_CALL || e->kind == ND_NAME ? e->str : "";
    bool known = false;
    for (size_t i = 0; i < sizeof optimizers / sizeof *optimizers; i++)
        known |= !strcmp(name, optimizers[i]);
    if (!known) {
        diag_error(e->loc, "unknown optimizer");
        diag_hint("the optimizers are sgd, adagrad, adadelta, rmsprop, adam and adamw");
        return;
    }
    t->optimizer = name;
    vec_push(&t->settings, ((Setting){"optimizer", name}));
    for (int i = 0; e->kind == ND_CALL && i < e->args.n; i++) {
        Node *a = e->args.v[i];
        if (a->kind != ND_KWARG)
            diag_error(a->loc, "write optimizer settings as name = value");
        else if (!strcmp(a->str, "lr"))
            real_of(a->lhs, "lr", 0, 1e6, &t->lr);
        else if (!strcmp(a->str, "momentum"))
            real_of(a->lhs, "momentum", 0, 0.999999, &t->momentum);
        else
            read_option_setting(prog, g, a->str, a->lhs);
    }
}

static bool loss_is_classification(Program *prog) {
    static const char *const losses[] = {"bce", "bce_logits", "cross_entropy",
                                         "softmax_cross_entropy"};
    for (int i = 0; i < prog->model->body.n; i++) {
        Node *s = prog->model->body.v[i];
        if (s->kind != ND_BIND || strcmp(s->str, "loss") || s->init->kind != ND_CALL) continue;
        for (size_t k = 0; k < sizeof losses / sizeof *losses; k++)
            if (!strcmp(s->init->str, losses[k])) return true;
    }
    return false;
}

static void read_setting(Program *prog, Graph *g, Node *s) {
    TrainSpec *t = &g->train;
    const char *k = s->str;
    Node *e = s->init;
    if (!strcmp(k, "data"))
        read_data(prog, g, e);
    else if (!strcmp(k, "optimizer"))
        read_optimizer(prog, g, e);
    else if (!strcmp(k, "batch"))
        positive_int_of(e, "batch", &t->batch);
    else if (!strcmp(k, "epochs"))
        positive_int_of(e, "epochs", &t->epochs);
    else if (!strcmp(k, "steps"))
        positive_int_of(e, "steps", &t->steps);
    else if (!strcmp(k, "seed"))
        positive_int_of(e, "seed", &t->seed);
    else if (!strcmp(k, "shuffle"))
        flag_of(e, "shuffle", &t->shuffle);
    else if (!strcmp(k, "validation"))
        real_of(e, "validation", 0, 0.9, &t->validation);
    else if (!strcmp(k, "metric")) {
        if (e->kind == ND_NAME && !strcmp(e->str, "accuracy"))
            t->classification = true;
        else if (e->kind == ND_NAME && !strcmp(e->str, "none"))
            t->classification = false;
        else
            diag_error(e->loc, "metric must be accuracy or none");
    } else if (find_setting(k) >= 0) {
        read_option_setting(prog, g, k, e);
    } else {
        diag_error(s->loc, "unknown train setting %s", k);
        diag_hint("the train block's settings are listed in docs/language.md");
    }
}

/* The loss is bce_logits of the output itself: accuracy reads that output as a logit, right
 * when on the target's side of 0 rather than 0.5 (runtime/nnrt.h). */
static bool output_is_logit(Program *prog, const Graph *g) {
    for (int i = 0; i < prog->model->body.n; i++) {
        Node *s = prog->model->body.v[i];
        if (s->kind != ND_BIND || strcmp(s->str, "loss") || s->init->kind != ND_CALL) continue;
        Node *call = s->init, *z = call->args.n > 0 ? call->args.v[0] : NULL;
        return !strcmp(call->str, "bce_logits") && z && z->kind == ND_NAME && g->output &&
               g->output->name && !strcmp(z->str, g->output->name);
    }
    return false;
}

bool sema_train(Program *prog, Graph *g) {
    int errors = diag_error_count();
    TrainSpec *t = &g->train;
    t->output_logit = output_is_logit(prog, g);
    t->optimizer = "sgd";
    t->lr = 0.01;
    t->batch = 32;
    t->epochs = 10;
    t->steps = 0;
    t->seed = 1;
    t->shuffle = true;
    t->classification = loss_is_classification(prog);
    if (g->inputs.n == 0) {
        t->batch = 1;
        t->steps = 100;
    }
    for (int i = 0; prog->train && i < prog->train->body.n; i++) {
        Node *s = prog->train->body.v[i];
        for (int j = 0; j < i; j++)
            if (!strcmp(prog->train->body.v[j]->str, s->str))
                diag_error(s->loc, "%s is set twice", s->str);
        read_setting(prog, g, s);
    }
    if (g->inputs.n == 0 && t->data_kind)
        diag_error(prog->train->loc, "model %s has no inputs, so it takes no data", g->name);
    if (g->inputs.n > 0 && !t->data_kind) {
        /* No data in the file: it comes from --data at run time, columns in order. */
        t->data_kind = "csv";
        default_columns(g);
    }
    return diag_error_count() == errors;
}
