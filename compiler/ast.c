/* ast.c: syntax tree nodes, the parse entry point, and the --emit=ast printer.
 *
 * The lexer (lexer.l) and the grammar (parser.y) build the tree; docs/grammar.md
 * describes both and the printed format. */
#include "ast.h"

#include <string.h>

/* lexer.l: runs the lexer and parser over one file. */
Node *front_parse(SrcFile *file);

Node *ast_new(NodeKind kind, SrcLoc loc) {
    Node *n = xalloc(sizeof *n);
    nnc_stats.ast_nodes++;
    n->kind = kind;
    n->loc = loc;
    n->start = loc;
    n->end = loc;
    return n;
}

Node *parse_file(SrcFile *file) {
    if (!file) return NULL;
    return front_parse(file);
}

/* Text is built in a StrBuf (common.h). */
typedef StrBuf Buf;
#define buf_add  sb_add
#define buf_puts sb_puts
#define buf_str  sb_str

/* ---- expressions, inline and fully parenthesised ---- */

static void render(Buf *b, const Node *e, bool nested);

static void render_list(Buf *b, const NodeList *list) {
    for (int i = 0; i < list->n; i++) {
        if (i) buf_puts(b, ", ");
        render(b, list->v[i], false);
    }
}

static void render_string(Buf *b, const char *s) {
    buf_puts(b, "\"");
    for (; *s; s++) {
        switch (*s) {
        case '"': buf_puts(b, "\\\""); break;
        case '\\': buf_puts(b, "\\\\"); break;
        case '\n': buf_puts(b, "\\n"); break;
        case '\t': buf_puts(b, "\\t"); break;
        default: buf_add(b, s, 1);
        }
    }
    buf_puts(b, "\"");
}

/* nested: the expression is an operand of an operator, so an operator in it gets
 * parentheses. */
static void render(Buf *b, const Node *e, bool nested) {
    if (!e) {
        buf_puts(b, "<null>");
        return;
    }
    switch (e->kind) {
    case ND_NUM:
    case ND_NAME: buf_puts(b, e->str ? e->str : "?"); break;
    case ND_STR: render_string(b, e->str ? e->str : ""); break;
    case ND_BINOP: {
        char op[4] = {' ', (char)e->op, ' ', '\0'};
        if (nested) buf_puts(b, "(");
        render(b, e->lhs, true);
        buf_puts(b, op);
        render(b, e->rhs, true);
        if (nested) buf_puts(b, ")");
        break;
    }
    case ND_RANGE:
        if (nested) buf_puts(b, "(");
        render(b, e->lhs, true);
        buf_puts(b, "..");
        render(b, e->rhs, true);
        if (nested) buf_puts(b, ")");
        break;
    case ND_NEG:
        buf_puts(b, "-");
        if (e->lhs && e->lhs->kind == ND_NEG) {
            buf_puts(b, "(");
            render(b, e->lhs, false);
            buf_puts(b, ")");
        } else {
            render(b, e->lhs, true);
        }
        break;
    case ND_CALL:
        buf_puts(b, e->str);
        buf_puts(b, "(");
        render_list(b, &e->args);
        buf_puts(b, ")");
        break;
    case ND_KWARG:
        buf_puts(b, e->str);
        buf_puts(b, " = ");
        render(b, e->lhs, false);
        break;
    case ND_INDEX:
        render(b, e->lhs, true);
        buf_puts(b, "[");
        render_list(b, &e->args);
        buf_puts(b, "]");
        break;
    case ND_SLICE:
        if (e->lhs) render(b, e->lhs, true);
        buf_puts(b, ":");
        if (e->rhs) render(b, e->rhs, true);
        if (e->init) {
            buf_puts(b, ":");
            render(b, e->init, true);
        }
        break;
    default: buf_puts(b, "<statement>"); break;
    }
}

/* "name", "name[a, b]" or "name[]" */
static void render_decl(Buf *b, const Node *n) {
    buf_puts(b, n->str);
    if (n->has_dims || n->dims.n) {
        buf_puts(b, "[");
        render_list(b, &n->dims);
        buf_puts(b, "]");
    }
}

/* One line for a node (without indentation or location). */
static void render_line(Buf *b, const Node *n) {
    switch (n->kind) {
    case ND_PROGRAM: buf_puts(b, "program"); break;
    case ND_IMPORT:
        buf_puts(b, "import ");
        render_string(b, n->str);
        break;
    case ND_FN:
        buf_puts(b, "fn ");
        buf_puts(b, n->str);
        buf_puts(b, "(");
        for (int i = 0; i < n->params.n; i++) {
            if (i) buf_puts(b, ", ");
            render_decl(b, n->params.v[i]);
        }
        buf_puts(b, ")");
        break;
    case ND_FN_PARAM: render_decl(b, n); break;
    case ND_MODEL:
        buf_puts(b, "model ");
        buf_puts(b, n->str);
        break;
    case ND_TRAIN:
        buf_puts(b, "train ");
        buf_puts(b, n->str);
        break;
    case ND_INPUT:
    case ND_TARGET:
    case ND_PARAM:
    case ND_STATE:
        buf_puts(b, n->kind == ND_INPUT    ? "input "
                    : n->kind == ND_TARGET ? "target "
                    : n->kind == ND_STATE  ? "state "
                                           : "param ");
        render_decl(b, n);
        if (n->init) {
            buf_puts(b, " = ");
            render(b, n->init, false);
        }
        break;
    case ND_BIND:
    case ND_SETTING:
        buf_puts(b, n->kind == ND_SETTING ? "setting " : n->is_output ? "output " : "");
        buf_puts(b, n->str);
        buf_puts(b, " = ");
        render(b, n->init, false);
        break;
    case ND_UPDATE:
        buf_puts(b, "update ");
        buf_puts(b, n->str);
        buf_puts(b, " = ");
        render(b, n->init, false);
        break;
    case ND_RETURN:
        buf_puts(b, "return ");
        render(b, n->init, false);
        break;
    case ND_GRAD:
        buf_puts(b, "grad ");
        buf_puts(b, n->str);
        buf_puts(b, n->op == '~' ? " ~ " : " = ");
        render(b, n->init, false);
        break;
    default: render(b, n, false); break;
    }
}

static void print_node(FILE *out, const Node *n, int level) {
    Buf b = {0};
    for (int i = 0; i < level; i++) buf_puts(&b, "  ");
    render_line(&b, n);
    if (n->kind != ND_PROGRAM) {
        char at[48];
        snprintf(at, sizeof at, "  @%d:%d", n->loc.line, n->loc.col);
        buf_puts(&b, at);
    }
    fprintf(out, "%s\n", b.s);
    for (int i = 0; i < n->body.n; i++) print_node(out, n->body.v[i], level + 1);
}

void ast_print(FILE *out, const Node *node) {
    if (node) print_node(out, node, 0);
}

/* ---- source text for messages ---- */

/* The text from start to end in one line: comments dropped, a line break and the blanks
 * around it become one space. */
static char *one_line(const SrcFile *f, size_t a, size_t z) {
    Buf b = {0};
    bool in_string = false;
    for (size_t i = a; i < z; i++) {
        char c = f->text[i];
        if (in_string) {
            if (c == '\\' && i + 1 < z) {
                buf_add(&b, f->text + i, 2);
                i++;
                continue;
            }
            if (c == '"') in_string = false;
            buf_add(&b, &c, 1);
        } else if (c == '"') {
            in_string = true;
            buf_add(&b, &c, 1);
        } else if (c == '#' || c == '\n' || c == '\r') {
            while (i < z && f->text[i] != '\n') i++; /* the rest of a comment */
            while (b.n > 0 && (b.s[b.n - 1] == ' ' || b.s[b.n - 1] == '\t')) b.s[--b.n] = '\0';
            while (i + 1 < z && strchr(" \t\r\n", f->text[i + 1])) i++;
            if (i + 1 < z && b.n > 0 && b.s[b.n - 1] != '(' && b.s[b.n - 1] != '[' &&
                f->text[i + 1] != ')' && f->text[i + 1] != ']' && f->text[i + 1] != '#')
                buf_puts(&b, " ");
        } else {
            buf_add(&b, &c, 1);
        }
    }
    return buf_str(&b);
}

/* Computed once a node and kept: lowering tags every value it makes with the text of the
 * expression it comes from, and many values come from one expression. */
const char *ast_source_text(const Node *node) {
    if (!node) return "";
    if (node->text) return node->text;
    const SrcFile *f = node->start.file;
    char *text;
    if (!f || node->end.file != f) {
        Buf b = {0};
        render_line(&b, node);
        text = buf_str(&b);
    } else {
        size_t a = srcfile_offset(f, node->start.line, node->start.col);
        size_t z = srcfile_offset(f, node->end.line, node->end.col);
        text = one_line(f, a, z);
    }
    ((Node *)node)->text = text;
    return text;
}

const char *ast_source_brief(const Node *node) {
    const char *text = ast_source_text(node);
    size_t n = strlen(text);
    if (n <= AST_BRIEF_MAX) return text;
    size_t head = AST_BRIEF_MAX - 20; /* the start, "...", and the closing characters */
    while (head > 0 && (text[head] & 0xC0) == 0x80) head--;
    size_t tail = n - 16;
    while (tail < n && (text[tail] & 0xC0) == 0x80) tail++;
    return xprintf("%.*s ... %s", (int)head, text, text + tail);
}
