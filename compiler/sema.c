/* sema.c: the program's structure (imports, fns, models, train blocks) and the meaning of
 * the train block. Shapes are checked later, in lower.c, where fn calls are inlined. */
#include "stages.h"

#include "option_limits.h"
#include "optim_settings.h"
#include "param_pattern.h"
#include "schedule_reads.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- imports ----
 * A file is known by its device and inode, not by how it was named: "d/../a.nn", "a.nn" and
 * a symbolic link to it are one file. A file imported again while it is still being loaded
 * closes a cycle, an error that names the chain; one imported again after it was loaded (a
 * diamond: b.nn and c.nn both import d.nn) is not loaded twice. */

typedef struct FileId {
    dev_t dev;
    ino_t ino;
} FileId;

typedef struct Loading {
    const char *name; /* how the chain names it: the path given, or the import's string */
    Node *import;     /* the import statement that loaded it (NULL for the model file) */
    bool done;
} Loading;

typedef struct Loader {
    const char *stdlib_dir;
    NodeList *fns;
    HashMap files;        /* FileId -> Loading */
    VEC(Loading *) chain; /* the files being loaded, the model file first */
} Loader;

static bool same_file_id(const void *a, const void *b) {
    return memcmp(a, b, sizeof(FileId)) == 0;
}

static HashEntry *file_entry(Loader *ld, dev_t dev, ino_t ino, bool add) {
    FileId *id = xalloc(sizeof *id); /* zeroed, so padding hashes and compares alike */
    id->dev = dev;
    id->ino = ino;
    return hash_find(&ld->files, hash_bytes(id, sizeof *id), id, same_file_id, add);
}

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
    if (!ends_with(name, ".nn")) return xprintf("%s/%s.nn", stdlib_dir, name);
    if (name[0] == '/' || !strchr(importer, '/')) return name;
    return xprintf("%s/%s", dir_of(importer), name);
}

static void collect_fns(Loader *ld, Node *file, const char *path);

/* "a.nn imports b.nn imports a.nn", from the file that is imported again. */
static void report_cycle(Loader *ld, Node *imp, Loading *again) {
    int from = 0;
    while (ld->chain.v[from] != again) from++;
    StrBuf b = {0};
    for (int i = from; i < ld->chain.n; i++) sb_printf(&b, "%s imports ", ld->chain.v[i]->name);
    sb_puts(&b, imp->str);
    diag_error(imp->name_loc, "import cycle: %s", sb_str(&b));
    for (int i = from + 1, shown = 0; i < ld->chain.n && shown < 8; i++, shown++)
        diag_note(ld->chain.v[i]->import->name_loc, "%s imports %s here", ld->chain.v[i - 1]->name,
                  ld->chain.v[i]->name);
    diag_hint("a file may import another only if that one does not import it back");
}

static void load_import(Loader *ld, Node *imp, const char *importer) {
    if (!ld->stdlib_dir && !ends_with(imp->str, ".nn")) {
        diag_error(imp->loc, "cannot import \"%s\": the stdlib folder was not found", imp->str);
        diag_hint("set NNC_HOME to the folder that holds stdlib/");
        return;
    }
    const char *path = import_path(imp->str, importer, ld->stdlib_dir);
    struct stat st;
    HashEntry *known = stat(path, &st) == 0 ? file_entry(ld, st.st_dev, st.st_ino, false) : NULL;
    if (known) {
        Loading *l = known->value;
        if (!l->done) report_cycle(ld, imp, l);
        return; /* loaded already: a diamond */
    }
    if (ld->chain.n > NNC_MAX_IMPORT_DEPTH) {
        diag_error(imp->loc, "imports nest more than %d deep", NNC_MAX_IMPORT_DEPTH);
        return;
    }
    SrcFile *src = srcfile_read(path);
    if (!src) {
        diag_error(imp->loc, "cannot import \"%s\": %s: %s", imp->str, path, srcfile_error());
        return;
    }
    Loading *l = xalloc(sizeof *l);
    *l = (Loading){imp->str, imp, false};
    file_entry(ld, src->dev, src->ino, true)->value = l;
    Node *ast = parse_file(src);
    vec_push(&ld->chain, l);
    if (ast) collect_fns(ld, ast, path);
    ld->chain.n--;
    l->done = true;
}

/* Imports first (depth-first), so a file's own fns come after those it imports. */
static void collect_fns(Loader *ld, Node *file, const char *path) {
    for (int i = 0; i < file->body.n && !diag_too_many(); i++) {
        Node *item = file->body.v[i];
        if (item->kind == ND_IMPORT) load_import(ld, item, path);
    }
    for (int i = 0; i < file->body.n; i++) {
        Node *item = file->body.v[i];
        if (item->kind == ND_FN) vec_push(ld->fns, item);
    }
}

static void load_program(Program *prog, Node *file, const char *stdlib_dir) {
    Loader ld = {.stdlib_dir = stdlib_dir, .fns = &prog->fns};
    Loading *top = xalloc(sizeof *top);
    *top = (Loading){prog->path, NULL, false};
    const SrcFile *f = file->loc.file;
    if (f && f->on_disk) file_entry(&ld, f->dev, f->ino, true)->value = top;
    vec_push(&ld.chain, top);
    collect_fns(&ld, file, prog->path);
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
    case ND_STATE: return "state";
    case ND_UPDATE: return "update";
    case ND_SETTING: return "a setting";
    default: return "this";
    }
}

/* The index of fn's argument called name, or -1. A fn with many arguments gets a table
 * (made once, kept in the Program), so matching names stays linear in the calls. */
int program_fn_param(Program *prog, Node *fn, const char *name) {
    enum { SCAN_BELOW = 9 };
    if (fn->params.n < SCAN_BELOW) {
        for (int i = 0; i < fn->params.n; i++)
            if (!strcmp(fn->params.v[i]->str, name)) return i;
        return -1;
    }
    HashMap *index = ptrmap_get(&prog->param_index, fn);
    if (!index) {
        index = xalloc(sizeof *index);
        for (int i = fn->params.n - 1; i >= 0; i--) /* the first of two equal names wins */
            strmap_put(index, fn->params.v[i]->str, (void *)(intptr_t)(i + 1));
        ptrmap_put(&prog->param_index, fn, index);
    }
    return (int)(intptr_t)strmap_get(index, name) - 1;
}

/* grad u = e / grad u ~ e: after the return, one per argument, and `g` free for the rule. */
static void check_grad_rule(Program *prog, Node *fn, Node *rule, HashMap *rules) {
    if (program_fn_param(prog, fn, rule->str) < 0) {
        diag_error(rule->name_loc, "fn %s has no argument %s to give a backward rule", fn->str,
                   rule->str);
        return;
    }
    Node *first = strmap_get(rules, rule->str);
    if (first) {
        diag_error(rule->loc, "argument %s has two backward rules", rule->str);
        diag_note(first->loc, "the first is here");
        return;
    }
    strmap_put(rules, rule->str, rule);
}

static void check_g_is_free(Program *prog, Node *fn) {
    int p = program_fn_param(prog, fn, "g");
    if (p >= 0)
        diag_error(fn->params.v[p]->loc,
                   "in a fn with backward rules, g names the result's gradient");
    for (int i = 0; i < fn->body.n; i++) {
        Node *s = fn->body.v[i];
        if ((s->kind == ND_BIND || s->kind == ND_PARAM) && !strcmp(s->str, "g"))
            diag_error(s->loc, "in a fn with backward rules, g names the result's gradient");
    }
}

/* `update NAME = e` names a state declared before it in the same fn (or model), and a
 * state has one update: what a training step writes must not depend on statement order. */
static void check_updates(Node *owner) {
    HashMap states = {0}, updated = {0};
    for (int i = 0; i < owner->body.n; i++) {
        Node *s = owner->body.v[i];
        if (s->kind == ND_STATE) strmap_put(&states, s->str, s);
        if (s->kind != ND_UPDATE) continue;
        Node *first = strmap_get(&updated, s->str);
        if (!strmap_get(&states, s->str)) {
            diag_error(s->name_loc,
                       "update of %s, which is not a state declared before it in %s %s", s->str,
                       owner->kind == ND_FN ? "fn" : "model", owner->str);
            diag_hint("declare it first, such as `state %s[n] = zeros`; params are trained, "
                      "not updated",
                      s->str);
        } else if (first) {
            diag_error(s->name_loc, "state %s has two updates", s->str);
            diag_note(first->loc, "the first is here");
        } else {
            strmap_put(&updated, s->str, s);
        }
    }
}

static void check_unique_params(Node *fn) {
    HashMap seen = {0};
    for (int i = 0; i < fn->params.n; i++) {
        Node *p = fn->params.v[i];
        if (strmap_get(&seen, p->str))
            diag_error(p->loc, "fn %s has two arguments named %s", fn->str, p->str);
        else
            strmap_put(&seen, p->str, p);
    }
}

static void check_fn(Program *prog, Node *fn) {
    int ret = -1;
    bool has_rules = false;
    HashMap rules = {0}; /* argument -> its backward rule */
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
            check_grad_rule(prog, fn, s, &rules);
        } else if (ret >= 0) {
            diag_error(s->loc, "only backward rules (grad ...) may follow return");
        }
    }
    if (ret < 0) diag_error(fn->loc, "fn %s has no return", fn->str);
    if (has_rules) check_g_is_free(prog, fn);
    check_unique_params(fn);
    check_updates(fn);
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
    check_updates(model);
    if (!loss) {
        diag_error(model->loc, "model %s has no loss", model->str);
        diag_hint("add a line such as `loss = mse(p, y)`: the per-sample value training minimises");
    }
}

/* Fills prog->fn_by_name; a name used twice, or a built-in's name, is an error. */
static void index_fns(Program *prog) {
    for (int i = 0; i < prog->fns.n; i++) {
        Node *f = prog->fns.v[i];
        double unused;
        if (op_by_call(f->str) != OP_COUNT || constant_builtin(f->str, &unused) ||
            !strcmp(f->str, "scan")) {
            diag_error(f->loc, "fn %s has the name of a built-in operation", f->str);
            continue;
        }
        Node *first = strmap_get(&prog->fn_by_name, f->str);
        if (first) {
            diag_error(f->loc, "fn %s is defined twice", f->str);
            diag_note(first->loc, "the first definition is here");
            continue;
        }
        strmap_put(&prog->fn_by_name, f->str, f);
    }
}

/* The file's models (by name, each once) and the train block of each. */
static void index_models(Program *prog, Node *file) {
    for (int i = 0; i < file->body.n; i++) {
        Node *item = file->body.v[i];
        if (item->kind != ND_MODEL) continue;
        Node *first = strmap_get(&prog->model_by_name, item->str);
        if (first) {
            diag_error(item->name_loc, "model %s is defined twice", item->str);
            diag_note(first->loc, "the first definition is here");
            continue;
        }
        strmap_put(&prog->model_by_name, item->str, item);
        vec_push(&prog->models, item);
    }
    for (int i = 0; i < file->body.n; i++) {
        Node *item = file->body.v[i];
        if (item->kind != ND_TRAIN) continue;
        if (!strmap_get(&prog->model_by_name, item->str)) {
            diag_error(item->loc, "train block for unknown model %s", item->str);
            continue;
        }
        if (strmap_get(&prog->train_by_model, item->str)) {
            diag_error(item->loc, "model %s has two train blocks", item->str);
            continue;
        }
        strmap_put(&prog->train_by_model, item->str, item);
    }
}

Program *sema_program(Node *file, const char *stdlib_dir) {
    int errors = diag_error_count();
    Program *prog = xalloc(sizeof *prog); /* CustomRule.prog points here long after sema */
    prog->path = file->loc.file ? file->loc.file->path : "";
    prog->file = file;
    load_program(prog, file, stdlib_dir);
    index_fns(prog);
    for (int i = 0; i < prog->fns.n; i++) check_fn(prog, prog->fns.v[i]);
    index_models(prog, file);
    return diag_error_count() == errors ? prog : NULL;
}

/* "a, b and c": the file's models, in order. */
static const char *model_names(Program *prog) {
    StrBuf b = {0};
    for (int i = 0; i < prog->models.n; i++)
        sb_printf(&b, "%s%s",
                  i == 0                    ? ""
                  : i + 1 == prog->models.n ? " and "
                                            : ", ",
                  prog->models.v[i]->str);
    return sb_str(&b);
}

static void no_such_model(Program *prog, SrcLoc top, const char *name) {
    diag_error(top, "there is no model named %s in this file", name);
    Suggestion near = suggest_start(name);
    for (int i = 0; i < prog->models.n; i++) suggest_consider(&near, prog->models.v[i]->str);
    if (!diag_did_you_mean(&near) && prog->models.n)
        diag_hint("its model%s: %s", prog->models.n == 1 ? " is" : "s are", model_names(prog));
}

bool sema_choose_model(Program *prog, const char *model_name) {
    int errors = diag_error_count();
    SrcLoc top = {prog->file->loc.file, 1, 1};
    Node *model = NULL;
    if (model_name) {
        model = strmap_get(&prog->model_by_name, model_name);
        if (!model) no_such_model(prog, top, model_name);
    } else if (prog->models.n == 0) {
        diag_error(top, "this file defines no model");
    } else if (prog->models.n > 1) {
        diag_error(top, "this file defines %d models (%s); choose one with --model NAME",
                   prog->models.n, model_names(prog));
    } else {
        model = prog->models.v[0];
    }
    prog->model = model;
    prog->train = model ? strmap_get(&prog->train_by_model, model->str) : NULL;
    if (model) check_model(model);
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

/* The most a whole-number setting may be: every such count fits a double exactly, and
 * products of them stay far from int64's end. */
#define MAX_WHOLE_SETTING 1e15

/* "from 1 to 10^15, got 2.5": the range, and the number given when it is one. */
static void whole_number_error(Node *e, const char *what, int low) {
    double x;
    if (number_of(e, &x))
        diag_error(e->loc, "%s must be a whole number from %d to 10^15, got %s", what, low,
                   ir_number_str(x));
    else
        diag_error(e->loc, "%s must be a whole number from %d to 10^15", what, low);
}

static bool positive_int_of(Node *e, const char *what, int64_t *out) {
    double x;
    if (!number_of(e, &x) || x != floor(x) || x < 1 || x > MAX_WHOLE_SETTING) {
        whole_number_error(e, what, 1);
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
    if (!s->str[0]) {
        diag_error(s->loc, "the data file name is empty");
        return NULL;
    }
    if (s->str[0] == '/') return s->str;
    /* Relative to the .nn file, so the binary trains from any directory. */
    char *dir = realpath(dir_of(prog->path), NULL);
    const char *path = dir ? xprintf("%s/%s", dir, s->str) : s->str;
    free(dir);
    return path;
}

/* Whether the train block's column maps give tensor its columns. */
static bool has_column_map(const Graph *g, const char *tensor) {
    for (int i = 0; i < g->train.columns.n; i++)
        if (!strcmp(g->train.columns.v[i].tensor, tensor)) return true;
    return false;
}

/* x = 0..1, y = 2 */
static void read_column_map(Graph *g, Node *kw) {
    Value *io = find_io(g, kw->str);
    if (!io) {
        diag_error(kw->loc, "%s is not an input or target of model %s", kw->str, g->name);
        return;
    }
    if (has_column_map(g, io->name)) {
        diag_error(kw->loc, "%s is given columns twice", kw->str);
        return;
    }
    Node *v = kw->lhs;
    double a, b;
    bool ok = v->kind == ND_RANGE ? number_of(v->lhs, &a) && number_of(v->rhs, &b)
                                  : number_of(v, &a) && (b = a, true);
    if (!ok) {
        diag_error(v->loc, "columns must be a column number or a range such as 0..3");
        return;
    }
    if (a < 0 || b < a || a != floor(a) || b != floor(b) || b > 1e8) {
        const char *got = v->kind == ND_RANGE
                              ? xprintf("%s..%s", ir_number_str(a), ir_number_str(b))
                              : ir_number_str(a);
        diag_error(v->loc,
                   "columns are whole numbers from 0 to 10^8, the first no larger than the "
                   "last, got %s",
                   got);
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
    int64_t col = 0;
    for (int k = 0; k < 2; k++) {
        ValueList *list = k ? &g->targets : &g->inputs;
        for (int i = 0; i < list->n; i++) {
            Value *v = list->v[i];
            int64_t n = shape_numel(v->shape);
            if (col + n - 1 > INT32_MAX) { /* column numbers are ints in the binary */
                diag_error(v->loc, "%s would take the data's columns past column %d", v->name,
                           INT32_MAX);
                return;
            }
            vec_push(&g->train.columns, ((ColumnMap){v->name, (int)col, (int)(col + n - 1)}));
            col += n;
        }
    }
}

/* Column maps name every input and target, or none (default_columns): a tensor left out
 * would have nothing to read. */
static void require_every_column(Graph *g, Node *call) {
    for (int k = 0; k < 2; k++) {
        ValueList *list = k ? &g->targets : &g->inputs;
        for (int i = 0; i < list->n; i++) {
            if (has_column_map(g, list->v[i]->name)) continue;
            diag_error(call->loc, "csv(...) gives no columns for %s %s", k ? "target" : "input",
                       list->v[i]->name);
            diag_hint("give every input and target its columns (%s = 3, or 0..3), or "
                      "none: then they take the columns in declaration order",
                      list->v[i]->name);
        }
    }
}

/* ---- text("file.txt", seq = 64, stride = 1, vocab = 65) ----
 * Windows of seq characters feed the one input, the next characters the target (at most
 * one): each [seq] (token ids) or [seq, V] (one-hot rows, V the model's vocabulary). */

/* A text tensor's window length (its first dimension) and, for [seq, V], V (else 0); false
 * with an error when its shape is neither. */
static bool text_tensor(const Value *v, int64_t *seq, int64_t *vocab) {
    if (v->shape.rank == 1 || v->shape.rank == 2) {
        *seq = v->shape.dim[0];
        *vocab = v->shape.rank == 2 ? v->shape.dim[1] : 0;
        return true;
    }
    diag_error(v->loc,
               "text data feeds %s windows of characters: declare it %s[seq] (token ids) "
               "or %s[seq, vocab] (one-hot rows), not %s",
               v->name, v->name, v->name, shape_str(v->shape));
    return false;
}

/* The window, and the vocabulary the model declares: text(..., vocab = V), the V of its
 * one-hot tensors, or both when they agree. */
static void check_text_shapes(Graph *g, Node *call, int64_t seq_given, Node *vocab_node) {
    TrainSpec *t = &g->train;
    if (g->inputs.n != 1 || g->targets.n > 1) {
        diag_error(call->loc,
                   "text data needs a model with one input and at most one target; "
                   "model %s has %d and %d",
                   g->name, g->inputs.n, g->targets.n);
        return;
    }
    int64_t seq, vocab, seq2 = 0, vocab2 = 0;
    if (!text_tensor(g->inputs.v[0], &seq, &vocab)) return;
    if (g->targets.n == 1 && !text_tensor(g->targets.v[0], &seq2, &vocab2)) return;
    if (g->targets.n == 1 && seq2 != seq) {
        diag_error(g->targets.v[0]->loc, "the target's window (%lld) must be the input's (%lld)",
                   (long long)seq2, (long long)seq);
        return;
    }
    if (seq_given && seq_given != seq)
        diag_error(call->loc, "seq = %lld, but input %s takes windows of %lld characters",
                   (long long)seq_given, g->inputs.v[0]->name, (long long)seq);
    if (vocab && vocab2 && vocab != vocab2)
        diag_error(g->targets.v[0]->loc, "the one-hot target has %lld classes, the input %lld",
                   (long long)vocab2, (long long)vocab);
    int64_t declared = vocab ? vocab : vocab2;
    if (t->vocab && declared && t->vocab != declared)
        diag_error(vocab_node->loc, "vocab = %lld, but the one-hot %s has %lld",
                   (long long)t->vocab, vocab ? "input" : "target", (long long)declared);
    if (!t->vocab) t->vocab = declared;
    if (!t->vocab) {
        diag_error(call->loc,
                   "text data: say the model's vocabulary size, text(\"f.txt\", seq = "
                   "%lld, vocab = 65), or declare its input one-hot, %s[%lld, 65]",
                   (long long)seq, g->inputs.v[0]->name, (long long)seq);
        diag_hint("token ids run from 0 to vocab - 1; the runtime checks the text fits");
    }
}

static void read_text_data(Program *prog, Graph *g, Node *e) {
    TrainSpec *t = &g->train;
    t->data_kind = "text";
    int64_t seq = 0, stride = 0;
    Node *vocab_node = NULL;
    int positional = 0;
    for (int i = 0; i < e->args.n; i++) {
        Node *a = e->args.v[i];
        if (a->kind != ND_KWARG && positional++ == 0)
            t->data_path = resolve_data_path(prog, a);
        else if (a->kind != ND_KWARG)
            diag_error(a->loc, "text(...) takes one file");
        else if (!strcmp(a->str, "seq"))
            positive_int_of(a->lhs, "seq", &seq);
        else if (!strcmp(a->str, "stride") && positive_int_of(a->lhs, "stride", &stride))
            vec_push(&t->settings, ((Setting){"stride", ir_number_str((double)stride)}));
        else if (!strcmp(a->str, "vocab") && positive_int_of(a->lhs, "vocab", &t->vocab))
            vocab_node = a->lhs;
        else if (strcmp(a->str, "seq") && strcmp(a->str, "stride") && strcmp(a->str, "vocab"))
            diag_error(a->loc, "text(...) takes seq, stride and vocab, not %s", a->str);
    }
    if (!positional) diag_error(e->loc, "text(...) needs a file name");
    check_text_shapes(g, e, seq, vocab_node);
}

static void read_data(Program *prog, Graph *g, Node *e) {
    TrainSpec *t = &g->train;
    if (e->kind == ND_CALL && !strcmp(e->str, "text")) {
        read_text_data(prog, g, e);
        return;
    }
    if (e->kind != ND_CALL || (strcmp(e->str, "csv") && strcmp(e->str, "idx"))) {
        diag_error(e->loc, "data must be csv(\"file.csv\", ...), idx(\"images\", \"labels\") or "
                           "text(\"file.txt\", seq = 64)");
        return;
    }
    t->data_kind = e->str;
    int positional = 0, errors = diag_error_count();
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
    /* a column map in error was left out: not "no columns" again */
    if (!strcmp(t->data_kind, "csv") && diag_error_count() == errors) require_every_column(g, e);
}

/* ---- settings the runtime reads as options (runtime/settings.def) ---- */

typedef enum SettingKind {
    SK_REAL,
    SK_INT,
    SK_ON_OFF,
    SK_WORD,
    SK_TEXT,
    SK_LIST, /* a string, as SK_TEXT: the runtime adds a second one to it */
    SK_PATH
} SettingKind;

/* The runtime's limits of each, checked here where the block writes it (settings.def). */
static const struct {
    const char *name;
    SettingKind kind;
    double min, max; /* REAL: [min, max); INT: from min, and to max unless max is 0 */
} setting_table[] = {
#define SETTING(name, kind, min, max, help) {#name, SK_##kind, min, max},
#include "settings.def"
#undef SETTING
};
#define N_SETTINGS (sizeof setting_table / sizeof *setting_table)

static int find_setting(const char *name) {
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!strcmp(setting_table[i].name, name)) return (int)i;
    return -1;
}

/* The runtime's optimizers and schedules, a row each in runtime/optimizers.def and
 * runtime/schedules.def, NULL-terminated. */
static const char *const optimizers[] = {
#define OPTIMIZER(name, ...) #name,
#include "optimizers.def"
#undef OPTIMIZER
    NULL};
static const char *const schedules[] = {
#define SCHEDULE(name, ...) #name,
#include "schedules.def"
#undef SCHEDULE
    NULL};

/* The settings each optimizer reads (optimizers.def's reads), and each schedule's own
 * (schedules.def): a setting of the block that its optimizer or schedule does not read is
 * an error (check_settings_read), as the runtime's for an option. */
typedef struct OptimizerReads {
#define READ_FLAG(s) bool s;
    OPTIM_SETTINGS(READ_FLAG)
#undef READ_FLAG
} OptimizerReads;
static const struct {
    const char *name;
    size_t at;
} optimizer_settings[] = {
#define SETTING_AT(s) {#s, offsetof(OptimizerReads, s)},
    OPTIM_SETTINGS(SETTING_AT)
#undef SETTING_AT
};
#define SHARED       true
#define DEFAULT(x)   true
#define UNPAREN(...) __VA_ARGS__
static const struct {
    const char *name;
    OptimizerReads reads;
} optimizer_reads[] = {
#define OPTIMIZER(name, reads, ...) {#name, {UNPAREN reads}},
#include "optimizers.def"
#undef OPTIMIZER
};
#undef SHARED
#undef DEFAULT
#undef UNPAREN

/* The word settings whose words the compiler checks: a typo is found before training. */
static const struct {
    const char *setting;
    const char *const *words;
} known_words[] = {{"optimizer", optimizers}, {"schedule", schedules}};

/* Whether word is one the setting takes; if not, an error at e offers the nearest, or says
 * them all. */
static bool check_word(const char *setting, const char *const *words, const char *word, Node *e) {
    for (int i = 0; words[i]; i++)
        if (!strcmp(words[i], word)) return true;
    diag_error(e->loc, "unknown %s %s", setting, word);
    Suggestion near = suggest_start(word);
    for (int i = 0; words[i]; i++) suggest_consider(&near, words[i]);
    if (diag_did_you_mean(&near)) return false;
    StrBuf list = {0};
    for (int i = 0; words[i]; i++)
        sb_printf(&list, "%s%s", i == 0 ? "" : words[i + 1] ? ", " : " and ", words[i]);
    diag_hint("the %ss are %s", setting, sb_str(&list));
    return false;
}

static bool known_word(const char *setting, const char *word, Node *e) {
    for (size_t i = 0; i < sizeof known_words / sizeof *known_words; i++)
        if (!strcmp(known_words[i].setting, setting))
            return check_word(setting, known_words[i].words, word, e);
    return true;
}

/* ---- the train block ----
 * Settings are read from the top of the block and from inside optimizer(...) and
 * schedule(...), each at most once wherever it is written: `lr = 0.1` beside
 * `optimizer = sgd(lr = 0.2)` is a mistake, not an override. */

typedef struct TrainReader {
    Program *prog;
    Graph *g;
    HashMap given; /* setting name -> where it was given */
} TrainReader;

typedef void SettingReader(TrainReader *tr, Node *e);

/* False (after an error) when name was given before. */
static bool given_once(TrainReader *tr, const char *name, Node *at) {
    Node *first = strmap_get(&tr->given, name);
    if (first) {
        diag_error(at->loc, "%s is set twice", name);
        diag_note(first->loc, "the first is here");
        return false;
    }
    strmap_put(&tr->given, name, at);
    return true;
}

static void read_lr(TrainReader *tr, Node *e) {
    real_of(e, "lr", 0, 1e6, &tr->g->train.lr);
}
static void read_momentum(TrainReader *tr, Node *e) {
    real_of(e, "momentum", 0, 0.999999, &tr->g->train.momentum);
}

/* The optimizer's own settings beside settings.def's, both at the top of the block and in
 * optimizer(...): the runtime's --lr and --momentum. */
static const struct {
    const char *name;
    SettingReader *read;
} rate_settings[] = {{"lr", read_lr}, {"momentum", read_momentum}};

static void read_word_call(TrainReader *tr, Node *e);

/* A number within setting k's limits (as the runtime words it), or false with an error. */
static bool within_limits(Node *e, int k, double x) {
    char rule[64];
    if (!rt_outside_limits(setting_table[k].kind == SK_INT, setting_table[k].min,
                           setting_table[k].max, x, rule, sizeof rule))
        return true;
    diag_error(e->loc, "%s %s, got %s", setting_table[k].name, rule, ir_number_str(x));
    return false;
}

static const char *setting_value(Program *prog, Node *e, int k) {
    double x;
    bool on;
    const char *name = setting_table[k].name;
    switch (setting_table[k].kind) {
    case SK_REAL:
        if (!number_of(e, &x)) {
            diag_error(e->loc, "%s must be a number", name);
            return NULL;
        }
        return within_limits(e, k, x) ? ir_number_str(x) : NULL;
    case SK_INT: /* as digits, which the runtime's options read (not 1e+15) */
        if (!number_of(e, &x) || x != floor(x) || x < 0 || x > MAX_WHOLE_SETTING) {
            whole_number_error(e, name, 0);
            return NULL;
        }
        return within_limits(e, k, x) ? xprintf("%lld", (long long)x) : NULL;
    case SK_ON_OFF: return flag_of(e, name, &on) ? (on ? "on" : "off") : NULL;
    case SK_WORD:
        if (e->kind == ND_NAME || e->kind == ND_CALL)
            return known_word(name, e->str, e) ? e->str : NULL;
        diag_error(e->loc, "%s must be a name, such as %s = adam", name, name);
        return NULL;
    case SK_TEXT:
    case SK_LIST:
        if (e->kind == ND_STR) return e->str;
        if (number_of(e, &x)) return ir_number_str(x);
        diag_error(e->loc, "%s must be a number or a string", name);
        return NULL;
    case SK_PATH: return resolve_data_path(prog, e);
    }
    return NULL;
}

static void suggest_named_settings(Suggestion *near) {
    for (size_t i = 0; i < sizeof rate_settings / sizeof *rate_settings; i++)
        suggest_consider(near, rate_settings[i].name);
    for (size_t i = 0; i < N_SETTINGS; i++) suggest_consider(near, setting_table[i].name);
}

/* lr, momentum or a setting of settings.def, given as name = e; false when the name is none
 * of them (nothing is reported). */
static bool read_named_setting(TrainReader *tr, const char *name, Node *e, Node *at) {
    for (size_t i = 0; i < sizeof rate_settings / sizeof *rate_settings; i++)
        if (!strcmp(rate_settings[i].name, name)) {
            if (given_once(tr, name, at)) rate_settings[i].read(tr, e);
            return true;
        }
    int k = find_setting(name);
    if (k < 0) return false;
    if (!given_once(tr, name, at)) return true;
    const char *value = setting_value(tr->prog, e, k);
    if (!value) return true;
    vec_push(&tr->g->train.settings, ((Setting){setting_table[k].name, value}));
    if (setting_table[k].kind == SK_WORD && e->kind == ND_CALL) read_word_call(tr, e);
    return true;
}

/* name(k = v, ...): the name is the setting's value; each k = v is a setting of its own. */
static void read_word_call(TrainReader *tr, Node *e) {
    for (int i = 0; i < e->args.n; i++) {
        Node *a = e->args.v[i];
        if (a->kind != ND_KWARG) {
            diag_error(a->loc, "write %s's settings as name = value", e->str);
        } else if (!read_named_setting(tr, a->str, a->lhs, a)) {
            diag_error(a->loc, "unknown setting %s", a->str);
            Suggestion near = suggest_start(a->str);
            suggest_named_settings(&near);
            if (!diag_did_you_mean(&near))
                diag_hint("the train block's settings are listed in docs/language.md");
        }
    }
}

static void read_optimizer(TrainReader *tr, Node *e) {
    TrainSpec *t = &tr->g->train;
    if (e->kind != ND_CALL && e->kind != ND_NAME) {
        diag_error(e->loc, "optimizer must be a name, such as optimizer = adam(lr = 0.001)");
        return;
    }
    if (!check_word("optimizer", optimizers, e->str, e)) return;
    t->optimizer = e->str;
    vec_push(&t->settings, ((Setting){"optimizer", e->str}));
    if (e->kind == ND_CALL) read_word_call(tr, e);
}

static void read_data_setting(TrainReader *tr, Node *e) {
    read_data(tr->prog, tr->g, e);
}
static void read_batch(TrainReader *tr, Node *e) {
    positive_int_of(e, "batch", &tr->g->train.batch);
}
static void read_epochs(TrainReader *tr, Node *e) {
    positive_int_of(e, "epochs", &tr->g->train.epochs);
}
static void read_steps(TrainReader *tr, Node *e) {
    positive_int_of(e, "steps", &tr->g->train.steps);
}
static void read_seed(TrainReader *tr, Node *e) {
    positive_int_of(e, "seed", &tr->g->train.seed);
}
static void read_shuffle(TrainReader *tr, Node *e) {
    flag_of(e, "shuffle", &tr->g->train.shuffle);
}
static void read_validation(TrainReader *tr, Node *e) {
    real_of(e, "validation", 0, 0.9, &tr->g->train.validation);
}
static void read_metric(TrainReader *tr, Node *e) {
    TrainSpec *t = &tr->g->train;
    if (e->kind == ND_NAME && !strcmp(e->str, "accuracy"))
        t->classification = true;
    else if (e->kind == ND_NAME && !strcmp(e->str, "none"))
        t->classification = false;
    else
        diag_error(e->loc, "metric must be accuracy or none");
}

/* The settings only the top of a train block takes (besides lr, momentum and settings.def's),
 * in the order docs/language.md lists them. */
static const struct {
    const char *name;
    SettingReader *read;
} block_settings[] = {
    {"data", read_data_setting}, {"optimizer", read_optimizer},   {"batch", read_batch},
    {"epochs", read_epochs},     {"steps", read_steps},           {"seed", read_seed},
    {"shuffle", read_shuffle},   {"validation", read_validation}, {"metric", read_metric},
};
#define N_BLOCK_SETTINGS (sizeof block_settings / sizeof *block_settings)

static void read_setting(TrainReader *tr, Node *s) {
    for (size_t i = 0; i < N_BLOCK_SETTINGS; i++)
        if (!strcmp(block_settings[i].name, s->str)) {
            if (given_once(tr, s->str, s)) block_settings[i].read(tr, s->init);
            return;
        }
    if (read_named_setting(tr, s->str, s->init, s)) return;
    diag_error(s->loc, "unknown train setting %s", s->str);
    Suggestion near = suggest_start(s->str);
    for (size_t i = 0; i < N_BLOCK_SETTINGS; i++) suggest_consider(&near, block_settings[i].name);
    suggest_named_settings(&near);
    if (!diag_did_you_mean(&near))
        diag_hint("the train block's settings are listed in docs/language.md");
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

/* The loss is bce_logits or softmax_cross_entropy of the output itself: the output is
 * logits. Accuracy reads a one-value output as a logit, right when on the target's side of
 * 0 rather than 0.5, and predict --probabilities applies the sigmoid or softmax
 * (runtime/nnrt.h). */
static bool output_is_logit(Program *prog, const Graph *g) {
    for (int i = 0; i < prog->model->body.n; i++) {
        Node *s = prog->model->body.v[i];
        if (s->kind != ND_BIND || strcmp(s->str, "loss") || s->init->kind != ND_CALL) continue;
        Node *call = s->init, *z = call->args.n > 0 ? call->args.v[0] : NULL;
        bool on_logits =
            !strcmp(call->str, "bce_logits") || !strcmp(call->str, "softmax_cross_entropy");
        return on_logits && z && z->kind == ND_NAME && g->output && g->output->name &&
               !strcmp(z->str, g->output->name);
    }
    return false;
}

/* The value the block gives a settings.def setting, or NULL. */
static const char *block_setting(const Graph *g, const char *name) {
    for (int i = 0; i < g->train.settings.n; i++)
        if (!strcmp(g->train.settings.v[i].name, name)) return g->train.settings.v[i].value;
    return NULL;
}

/* A setting of the block that the block's optimizer or schedule, or early stopping when it
 * is off, does not read: it would change nothing, so it is reported where it is written. */
static void check_settings_read(TrainReader *tr) {
    const TrainSpec *t = &tr->g->train;
    for (size_t s = 0; s < sizeof optimizer_settings / sizeof *optimizer_settings; s++) {
        Node *at = strmap_get(&tr->given, optimizer_settings[s].name);
        if (!at) continue;
        StrBuf readers = {0};
        bool read = false;
        for (size_t o = 0; o < sizeof optimizer_reads / sizeof *optimizer_reads; o++) {
            const bool *reads =
                (const bool *)((const char *)&optimizer_reads[o].reads + optimizer_settings[s].at);
            if (!*reads) continue;
            sb_printf(&readers, "%s%s", readers.n ? ", " : "", optimizer_reads[o].name);
            read |= !strcmp(optimizer_reads[o].name, t->optimizer);
        }
        if (!read)
            diag_error(at->loc,
                       "%s is read only by %s; the optimizer is %s, so it would change "
                       "nothing",
                       optimizer_settings[s].name, sb_str(&readers), t->optimizer);
    }
    const char *schedule = block_setting(tr->g, "schedule");
    if (!schedule) schedule = "constant";
    for (size_t k = 0; k < sizeof schedule_reads / sizeof *schedule_reads; k++)
        for (int r = 0; r < SCHEDULE_MAX_READS && schedule_reads[k].reads[r]; r++) {
            const char *name = schedule_reads[k].reads[r];
            Node *at = strmap_get(&tr->given, name);
            if (at && strcmp(schedule, schedule_reads[k].name) != 0)
                diag_error(at->loc,
                           "%s is read only by the %s schedule; the schedule is %s, so "
                           "it would change nothing",
                           name, schedule_reads[k].name, schedule);
        }
    Node *patience = strmap_get(&tr->given, "patience");
    const char *stopping = block_setting(tr->g, "early_stopping");
    if (patience && !(stopping && !strcmp(stopping, "on")))
        diag_error(patience->loc, "patience is read only by early stopping, which is off, so it "
                                  "would change nothing (early_stopping = on)");
    Node *nesterov = strmap_get(&tr->given, "nesterov");
    const char *look_ahead = block_setting(tr->g, "nesterov");
    if (nesterov && look_ahead && !strcmp(look_ahead, "on") && !strcmp(t->optimizer, "sgd") &&
        t->momentum == 0)
        diag_error(nesterov->loc, "nesterov = on looks ahead along the momentum, and momentum is "
                                  "0, so it would change nothing (momentum above 0)");
}

/* The block's freeze: each name or glob must match a param (as the runtime's --freeze), and
 * freezing every param of a model with no other state would leave training nothing to do. */
static void check_freeze(TrainReader *tr) {
    Node *at = strmap_get(&tr->given, "freeze");
    const char *spec = block_setting(tr->g, "freeze");
    if (!at || !spec) return;
    const ValueList *params = &tr->g->params;
    bool *frozen = xalloc(((size_t)params->n + 1) * sizeof *frozen);
    for (const char *p = spec;;) {
        const char *comma = strchr(p, ',');
        char *one = xstrndup(p, comma ? (size_t)(comma - p) : strlen(p));
        if (!*one) {
            diag_error(at->loc, "freeze: an empty name in \"%s\" (NAME[,NAME...])", spec);
            return;
        }
        bool found = false;
        for (int i = 0; i < params->n; i++)
            if (rt_param_matches(one, params->v[i]->name)) found = frozen[i] = true;
        if (!found) {
            diag_error(at->loc, "freeze: model %s has no param %s", tr->g->name, one);
            Suggestion near = suggest_start(one);
            for (int i = 0; i < params->n; i++) suggest_consider(&near, params->v[i]->name);
            diag_did_you_mean(&near);
        }
        if (!comma) break;
        p = comma + 1;
    }
    int free_params = 0;
    for (int i = 0; i < params->n; i++) free_params += !frozen[i];
    if (free_params == 0 && params->n > 0 && tr->g->states.n == 0)
        diag_error(at->loc,
                   "freeze = \"%s\" freezes every param of model %s, which has no other state: "
                   "training would change nothing",
                   spec, tr->g->name);
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
    TrainReader tr = {prog, g, {0}};
    for (int i = 0; prog->train && i < prog->train->body.n; i++)
        read_setting(&tr, prog->train->body.v[i]);
    Node *fraction = strmap_get(&tr.given, "validation");
    if (fraction && t->validation > 0 && strmap_get(&tr.given, "validation_data"))
        diag_error(fraction->loc, "validation holds out a fraction of the rows, and "
                                  "validation_data gives rows of their own: give one of them");
    if (g->inputs.n == 0 && t->data_kind)
        diag_error(prog->train->loc, "model %s has no inputs, so it takes no data", g->name);
    check_settings_read(&tr);
    check_freeze(&tr);
    Node *rate = strmap_get(&tr.given, "dropout");
    if (rate && ir_count_dropouts(g) == 0)
        diag_error(rate->loc,
                   "model %s has no dropout(...): dropout sets the rate of every dropout "
                   "of the model, and it has none",
                   g->name);
    bool text = t->data_kind && !strcmp(t->data_kind, "text");
    for (int i = 0; i < t->settings.n && !text; i++)
        if (!strcmp(t->settings.v[i].name, "stride"))
            diag_error(prog->train->loc, "stride is for text data: text(\"f.txt\", seq = 64, "
                                         "stride = 1)");
    if (g->inputs.n > 0 && !t->data_kind) {
        /* No data in the file: it comes from --data at run time, columns in order. */
        t->data_kind = "csv";
        default_columns(g);
    }
    return diag_error_count() == errors;
}
