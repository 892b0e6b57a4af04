/* parser.y: the grammar of .nn files (docs/grammar.md describes it in words).
 *
 * A pure (reentrant) LALR(1) parser with lookahead correction (LAC), so the list of
 * expected tokens in a syntax error is exact. Syntax errors are worded by
 * yyreport_syntax_error below ("unexpected ')', expected an expression"); the lexer reports
 * its own errors and returns YYerror, which puts the parser into error recovery silently.
 *
 * Recovery: a bad statement is skipped up to the next newline, ';' or '}', a bad top-level
 * item up to the next newline or ';'. Against cascades: Bison stays quiet after an error
 * until three tokens have been read correctly, or until the rule `ok` says a statement or
 * item has clearly begun; and each line gets at most one error (lexer's or parser's).
 *
 * Every node is allocated in the arena (common.h): nothing to free on any path. */

%code top {
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
}

%code requires {
#include "ast.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* An open bracket the lexer has seen and not yet seen closed. */
typedef struct OpenBracket {
    char ch;          /* '(', '[' or '{' */
    char block;       /* for '{': 'f' fn, 'm' model, 't' train, 0 unknown */
    int line, col;
} OpenBracket;

/* Everything the lexer and the parser share while reading one file. */
typedef struct FrontState {
    SrcFile *file;
    Node *program;

    /* lexer position: the next byte to read */
    size_t off;
    int line, col;

    /* the last token returned (the parser's lookahead when it reports an error) */
    int tok;             /* its token kind, 0 before the first token */
    size_t tok_off;      /* its bytes in file->text */
    int tok_len;
    int tok_line, tok_col, tok_end_line, tok_end_col;
    int prev_tok;        /* the token before it, and where that one ended */
    int prev_end_line, prev_end_col;

    /* brackets, innermost last; newlines inside ( ) and [ ] are not statement ends */
    OpenBracket *open;
    int nopen, capopen;
    OpenBracket before;  /* the innermost open bracket before the last token ({0} if none) */
    char pending_block;  /* 'f'/'m'/'t' after fn/model/train, until the next '{' */
    int clean_close_line, clean_close_col; /* the last '}' that began its line */

    int error_line;      /* the line of the last error, to keep to one error a line */
    bool deep_reported;  /* "expression nested too deeply" said once per file */
    bool stop;           /* the lexer gives no more tokens (brackets nested too deeply) */

    /* While the lexer is on a line that has an error already, nothing it or the parser
     * reads there can be reported, and the tree is thrown away: tokens and nodes of that
     * line all share this one node, so a bad line costs no memory however long it is. It
     * lives in the arena: a node of the thrown-away tree may point to it. */
    Node *scratch;
} FrontState;
}

%code provides {
int yylex(YYSTYPE *yylval, YYLTYPE *yylloc, yyscan_t scanner);
/* lexer.l: reads one file; what parse_file (ast.c) does. */
Node *front_parse(SrcFile *file);
/* Reports an error unless its line has one already (the rest of a bad line is fallout);
 * true when shown, so the caller adds its hint. */
bool front_error(FrontState *st, SrcLoc at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A new node, or the scratch node while the current line has an error. */
Node *front_node(FrontState *st, NodeKind kind, SrcLoc loc);
}

%code {
static void yyerror(YYLTYPE *loc, yyscan_t scanner, FrontState *st, const char *msg);

static SrcLoc at(FrontState *st, int line, int col) {
    SrcLoc l = {st->file, line, col};
    return l;
}
#define FIRST(yl) at(st, (yl).first_line, (yl).first_column)
#define LAST(yl)  at(st, (yl).last_line, (yl).last_column)

Node *front_node(FrontState *st, NodeKind kind, SrcLoc loc) {
    if (st->line != st->error_line) return ast_new(kind, loc);
    Node *n = st->scratch;
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->loc = n->start = n->end = loc;
    n->str = "";
    return n;
}

bool front_error(FrontState *st, SrcLoc where, const char *fmt, ...) {
    if (st->error_line == where.line) return false;
    st->error_line = where.line;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    diag_error(where, "%s", msg);
    return true;
}

static Node *mk(FrontState *st, NodeKind kind, YYLTYPE whole) {
    Node *n = front_node(st, kind, FIRST(whole));
    n->end = LAST(whole);
    return n;
}

static int max_int(int a, int b) { return a > b ? a : b; }

/* Sets the depth of an expression node and complains (once a file) when it is absurd. */
static Node *deep(FrontState *st, Node *n, int child_depth) {
    n->depth = child_depth + 1;
    if (n == st->scratch) return n;
    if (n->depth > NNC_MAX_EXPR_DEPTH && !st->deep_reported) {
        st->deep_reported = true;
        if (front_error(st, n->loc, "expression nested too deeply"))
            diag_hint("split it into several statements");
    }
    return n;
}

static Node *binop(FrontState *st, int op, Node *lhs, Node *rhs, YYLTYPE op_loc) {
    Node *n = front_node(st, ND_BINOP, FIRST(op_loc));
    n->op = op;
    n->lhs = lhs;
    n->rhs = rhs;
    n->start = lhs->start;
    n->end = rhs->end;
    return deep(st, n, max_int(lhs->depth, rhs->depth));
}

static Node *named(FrontState *st, NodeKind kind, YYLTYPE whole, Node *name) {
    Node *n = mk(st, kind, whole);
    n->str = name->str;
    n->name_loc = name->loc;
    return n;
}

static Node *decl(FrontState *st, NodeKind kind, YYLTYPE whole, Node *name, Node *dims,
                  Node *init) {
    Node *n = named(st, kind, whole, name);
    if (dims) {
        n->dims = dims->args;
        n->has_dims = true;
    }
    n->init = init;
    return n;
}

/* grad u = expr (the derivative) or grad u ~ expr (a surrogate): a fn's own backward rule. */
static Node *grad_rule(FrontState *st, YYLTYPE whole, Node *arg, int op, Node *expr) {
    Node *n = decl(st, ND_GRAD, whole, arg, NULL, expr);
    n->op = op;
    return n;
}

/* start:stop:step inside a subscript; a part not written is NULL. */
static Node *slice_node(FrontState *st, YYLTYPE whole, Node *start, Node *stop, Node *step) {
    Node *n = mk(st, ND_SLICE, whole);
    n->lhs = start;
    n->rhs = stop;
    n->init = step;
    int d = 0;
    Node *parts[3] = {start, stop, step};
    for (int i = 0; i < 3; i++)
        if (parts[i]) {
            d = max_int(d, parts[i]->depth);
            n->end = parts[i]->end;
        }
    if (start) n->start = start->start;
    return deep(st, n, d);
}

static void push(FrontState *st, NodeList *list, Node *n) {
    if (n && n != st->scratch) vec_push(list, n);
}

/* A train block holds settings only: NAME = value becomes ND_SETTING, anything else is
 * an error here (the grammar is shared with fn and model bodies for better messages). */
static NodeList train_settings(NodeList body) {
    NodeList out = {0};
    for (int i = 0; i < body.n; i++) {
        Node *s = body.v[i];
        if (s->kind == ND_BIND && !s->is_output) {
            s->kind = ND_SETTING;
            vec_push(&out, s);
            continue;
        }
        const char *what = s->kind == ND_INPUT    ? "'input'"
                           : s->kind == ND_TARGET ? "'target'"
                           : s->kind == ND_PARAM  ? "'param'"
                           : s->kind == ND_RETURN ? "'return'"
                           : s->kind == ND_GRAD   ? "'grad'"
                           : s->kind == ND_STATE  ? "'state'"
                           : s->kind == ND_UPDATE ? "'update'"
                                                  : "'output'";
        diag_error(s->start, "%s cannot appear in a train block", what);
        diag_hint("a train block holds settings such as 'epochs = 100'");
    }
    return out;
}
}

%define api.pure full
%define parse.error custom
%define parse.lac full
%locations
%param {yyscan_t scanner}
%parse-param {FrontState *st}

%union {
    Node *node;
    NodeList list;
}

%token YYEOF 0 "end of file"
%token <node> IDENT "a name"
%token <node> NUMBER "a number"
%token <node> STRING "a string"
%token NEWLINE "a newline"
%token DOTDOT "'..'"
%token IMPORT "'import'" FN "'fn'" MODEL "'model'" TRAIN "'train'"
%token INPUT "'input'" TARGET "'target'" PARAM "'param'" OUTPUT "'output'" RETURN "'return'"
%token GRAD "'grad'"
%token STATE "'state'" UPDATE "'update'"

%type <node> item item_opt stmt stmt_opt fn_param dims expr arg subscript bound
%type <list> items stmts block fn_params fn_param_list expr_list expr_list_opt args arg_list
%type <list> subscripts

%nonassoc DOTDOT
%left '+' '-'
%left '*' '/' '@'
%precedence UMINUS
%right '^'
%precedence '['

%start program

%%

program
    : items {
        st->program = ast_new(ND_PROGRAM, at(st, 1, 1));
        st->program->body = $1;
        st->program->end = at(st, st->line, st->col);
    }
    ;

sep : NEWLINE | ';' ;

/* After an error Bison stays silent until three tokens have been read correctly, so that
 * one mistake makes one message. A statement that has clearly begun (its keyword, or
 * "name =") or an item keyword is a sure sign the parser is back on track: from there on
 * report the next mistake at once. */
ok : %empty { yyerrok; } ;

nl_opt : %empty | NEWLINE ;

items
    : item_opt              { $$ = (NodeList){0}; push(st, &$$, $1); }
    | items sep item_opt    { $$ = $1; push(st, &$$, $3); }
    ;

item_opt
    : %empty    { $$ = NULL; }
    | item
    | error     { $$ = NULL; }
    ;

item
    : IMPORT ok STRING {
        $$ = mk(st, ND_IMPORT, @$);
        $$->str = $3->str;
        $$->name_loc = $3->loc;
    }
    | FN ok IDENT '(' fn_params ')' nl_opt block {
        $$ = named(st, ND_FN, @$, $3);
        $$->params = $5;
        $$->body = $8;
    }
    | MODEL ok IDENT nl_opt block {
        $$ = named(st, ND_MODEL, @$, $3);
        $$->body = $5;
    }
    | TRAIN ok IDENT nl_opt block {
        $$ = named(st, ND_TRAIN, @$, $3);
        $$->body = train_settings($5);
    }
    ;

block
    : '{' stmts '}' {
        $$ = $2;
        /* a '}' that starts its line surely ends this block: the parser is back on track */
        if (st->clean_close_line == @3.first_line && st->clean_close_col == @3.first_column)
            yyerrok;
    }
    ;

fn_params
    : %empty            { $$ = (NodeList){0}; }
    | fn_param_list
    ;

fn_param_list
    : fn_param                      { $$ = (NodeList){0}; push(st, &$$, $1); }
    | fn_param_list ',' fn_param    { $$ = $1; push(st, &$$, $3); }
    ;

fn_param
    : IDENT         { $$ = decl(st, ND_FN_PARAM, @$, $1, NULL, NULL); $$->loc = $1->loc; }
    | IDENT dims    { $$ = decl(st, ND_FN_PARAM, @$, $1, $2, NULL); $$->loc = $1->loc; }
    ;

/* dims are returned as a throwaway node whose args are the dimension expressions */
dims : '[' expr_list_opt ']'  { $$ = mk(st, ND_INDEX, @$); $$->args = $2; } ;

stmts
    : stmt_opt              { $$ = (NodeList){0}; push(st, &$$, $1); }
    | stmts sep stmt_opt    { $$ = $1; push(st, &$$, $3); }
    ;

stmt_opt
    : %empty    { $$ = NULL; }
    | stmt
    | error     { $$ = NULL; }
    ;

stmt
    : INPUT ok IDENT dims {
        $$ = decl(st, ND_INPUT, @$, $3, $4, NULL);
        if ($4->args.n == 0)
            front_error(st, FIRST(@4), "an input needs a shape, such as %s[2]", $3->str);
    }
    | INPUT ok IDENT {
        $$ = decl(st, ND_INPUT, @$, $3, NULL, NULL);
        front_error(st, LAST(@3), "an input needs a shape, such as %s[2]", $3->str);
    }
    | TARGET ok IDENT dims {
        $$ = decl(st, ND_TARGET, @$, $3, $4, NULL);
        if ($4->args.n == 0)
            front_error(st, FIRST(@4), "a target needs a shape, such as %s[1]", $3->str);
    }
    | TARGET ok IDENT {
        $$ = decl(st, ND_TARGET, @$, $3, NULL, NULL);
        front_error(st, LAST(@3), "a target needs a shape, such as %s[1]", $3->str);
    }
    | PARAM ok IDENT                { $$ = decl(st, ND_PARAM, @$, $3, NULL, NULL); }
    | PARAM ok IDENT dims           { $$ = decl(st, ND_PARAM, @$, $3, $4, NULL); }
    | PARAM ok IDENT '=' expr       { $$ = decl(st, ND_PARAM, @$, $3, NULL, $5); }
    | PARAM ok IDENT dims '=' expr  { $$ = decl(st, ND_PARAM, @$, $3, $4, $6); }
    | STATE ok IDENT                { $$ = decl(st, ND_STATE, @$, $3, NULL, NULL); }
    | STATE ok IDENT dims           { $$ = decl(st, ND_STATE, @$, $3, $4, NULL); }
    | STATE ok IDENT '=' expr       { $$ = decl(st, ND_STATE, @$, $3, NULL, $5); }
    | STATE ok IDENT dims '=' expr  { $$ = decl(st, ND_STATE, @$, $3, $4, $6); }
    | UPDATE ok IDENT '=' expr      { $$ = decl(st, ND_UPDATE, @$, $3, NULL, $5); }
    | IDENT '=' ok expr {
        $$ = decl(st, ND_BIND, @$, $1, NULL, $4);
        $$->loc = $1->loc;
    }
    | OUTPUT ok IDENT '=' expr {
        $$ = decl(st, ND_BIND, @$, $3, NULL, $5);
        $$->loc = $3->loc;
        $$->is_output = true;
    }
    | RETURN ok expr {
        $$ = mk(st, ND_RETURN, @$);
        $$->init = $3;
    }
    | GRAD ok IDENT '=' expr        { $$ = grad_rule(st, @$, $3, '=', $5); }
    | GRAD ok IDENT '~' expr        { $$ = grad_rule(st, @$, $3, '~', $5); }
    ;

expr_list_opt
    : %empty    { $$ = (NodeList){0}; }
    | expr_list
    ;

expr_list
    : expr                  { $$ = (NodeList){0}; push(st, &$$, $1); }
    | expr_list ',' expr    { $$ = $1; push(st, &$$, $3); }
    ;

expr
    : expr DOTDOT expr {
        $$ = front_node(st, ND_RANGE, $1->start);
        $$->lhs = $1;
        $$->rhs = $3;
        $$->end = $3->end;
        $$ = deep(st, $$, max_int($1->depth, $3->depth));
    }
    | expr '+' expr     { $$ = binop(st, '+', $1, $3, @2); }
    | expr '-' expr     { $$ = binop(st, '-', $1, $3, @2); }
    | expr '*' expr     { $$ = binop(st, '*', $1, $3, @2); }
    | expr '/' expr     { $$ = binop(st, '/', $1, $3, @2); }
    | expr '@' expr     { $$ = binop(st, '@', $1, $3, @2); }
    | expr '^' expr     { $$ = binop(st, '^', $1, $3, @2); }
    | '-' expr %prec UMINUS {
        $$ = mk(st, ND_NEG, @$);
        $$->lhs = $2;
        $$ = deep(st, $$, $2->depth);
    }
    | IDENT '(' args ')' {
        $$ = mk(st, ND_CALL, @$);
        $$->str = $1->str;
        $$->name_loc = $1->loc;
        $$->args = $3;
        int d = 0;
        for (int i = 0; i < $3.n; i++) d = max_int(d, $3.v[i]->depth);
        $$ = deep(st, $$, d);
    }
    | expr '[' subscripts ']' {
        /* x[0, 1:3]: indexing binds tighter than any operator, -x[0] is -(x[0]) */
        $$ = mk(st, ND_INDEX, @$);
        $$->lhs = $1;
        $$->args = $3;
        $$->start = $1->start;
        int d = $1->depth;
        for (int i = 0; i < $3.n; i++) d = max_int(d, $3.v[i]->depth);
        $$ = deep(st, $$, d);
    }
    | '(' expr ')' {
        /* the node now spans the parentheses too; loc (an operator's place) is kept */
        $$ = $2;
        $$->start = FIRST(@1);
        $$->end = LAST(@3);
    }
    | NUMBER
    | STRING
    | IDENT
    ;

subscripts
    : subscript                 { $$ = (NodeList){0}; push(st, &$$, $1); }
    | subscripts ',' subscript  { $$ = $1; push(st, &$$, $3); }
    ;

/* an index, or a slice start:stop or start:stop:step, each part optional */
subscript
    : expr
    | bound ':' bound                   { $$ = slice_node(st, @$, $1, $3, NULL); }
    | bound ':' bound ':' bound         { $$ = slice_node(st, @$, $1, $3, $5); }
    ;

bound
    : %empty    { $$ = NULL; }
    | expr
    ;

args
    : %empty            { $$ = (NodeList){0}; }
    | arg_list
    | arg_list ','
    ;

arg_list
    : arg               { $$ = (NodeList){0}; push(st, &$$, $1); }
    | arg_list ',' arg  { $$ = $1; push(st, &$$, $3); }
    ;

arg
    : expr
    | IDENT '=' expr {
        $$ = named(st, ND_KWARG, @$, $1);
        $$->lhs = $3;
        $$ = deep(st, $$, $3->depth);
    }
    ;

%%

/* ---- syntax error messages ---- */

/* The phrases of an error message, joined as "A", "A or B", "A, B or C". */
typedef struct Phrases {
    const char *v[16];
    int n;
} Phrases;

static void add_phrase(Phrases *p, const char *s) {
    if (p->n < 16) p->v[p->n++] = s;
}

static char *join_phrases(const Phrases *p) {
    char *out = xstrdup("");
    for (int i = 0; i < p->n; i++) {
        const char *glue = i == 0 ? "" : i == p->n - 1 ? " or " : ", ";
        out = xprintf("%s%s%s", out, glue, p->v[i]);
    }
    return out;
}

/* The set of expected tokens, by their printed names. */
typedef struct TokenSet {
    const char *name[YYNTOKENS];
    bool on[YYNTOKENS];
    int n;
} TokenSet;

static int set_find(const TokenSet *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (s->on[i] && strcmp(s->name[i], name) == 0) return i;
    return -1;
}
static bool set_has(const TokenSet *s, const char *name) { return set_find(s, name) >= 0; }
static void set_del(TokenSet *s, const char *name) {
    int i = set_find(s, name);
    if (i >= 0) s->on[i] = false;
}
static bool set_has_all(const TokenSet *s, const char *const *names) {
    for (; *names; names++)
        if (!set_has(s, *names)) return false;
    return true;
}
static void set_del_all(TokenSet *s, const char *const *names) {
    for (; *names; names++) set_del(s, *names);
}

static const char *const binary_ops[] = {"'+'", "'*'", "'/'", "'@'", "'^'", NULL};
/* after a complete expression: what could extend it ('(' a call, '=' a keyword argument) */
static const char *const after_expr[] = {"'+'", "'-'", "'*'", "'/'", "'@'", "'^'", "'..'",
                                         "'('", "'='", "'['", NULL};
static const char *const expr_start[] = {"a number", "a string", "a name", "'('", "'-'", NULL};
static const char *const stmt_start[] = {"'input'", "'target'", "'param'", "'output'",
                                         "'return'", "'grad'",   "'state'", "'update'",
                                         "a name",   NULL};
static const char *const item_start[] = {"'import'", "'fn'", "'model'", "'train'", NULL};
static const char *const separators[] = {"a newline", "';'", "end of file", NULL};
static const char *const keywords[] = {"'import'", "'fn'",     "'model'",  "'train'",
                                       "'input'",  "'target'", "'param'",  "'output'",
                                       "'return'", "'grad'",   "'state'",  "'update'",
                                       NULL};

static bool is_one_of(const char *name, const char *const *names) {
    for (; *names; names++)
        if (strcmp(name, *names) == 0) return true;
    return false;
}

/* The innermost '{' the lexer has open, or NULL. */
static const OpenBracket *innermost_brace(const FrontState *st) {
    for (int i = st->nopen - 1; i >= 0; i--)
        if (st->open[i].ch == '{') return &st->open[i];
    return NULL;
}

/* How the lookahead token is named after "unexpected": the token's own text where that
 * helps ("name 'foo'"). */
static const char *found_text(const FrontState *st, yysymbol_kind_t tok) {
    const char *text = st->file->text + st->tok_off;
    int len = st->tok_len;
    const char *more = "";
    if (len > 40) {
        len = 37;
        more = "...";
    }
    switch (tok) {
    case YYSYMBOL_YYEOF: return "end of file";
    case YYSYMBOL_NEWLINE: return "end of line";
    case YYSYMBOL_IDENT: return xprintf("name '%.*s%s'", len, text, more);
    case YYSYMBOL_NUMBER: return xprintf("number '%.*s%s'", len, text, more);
    case YYSYMBOL_STRING: return xprintf("string %.*s%s", len, text, more);
    default: return yysymbol_name(tok);
    }
}

static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner, FrontState *st) {
    (void)scanner;
    yysymbol_kind_t la = yypcontext_token(ctx);
    const YYLTYPE *loc = yypcontext_location(ctx);
    SrcLoc where = FIRST(*loc);
    if (where.line == st->error_line) return 0; /* one error a line: the rest is fallout */
    st->error_line = where.line;

    yysymbol_kind_t expected[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, expected, YYNTOKENS);
    if (n < 0) n = 0;
    TokenSet set = {.n = n};
    for (int i = 0; i < n; i++) {
        set.name[i] = yysymbol_name(expected[i]);
        set.on[i] = true;
    }
    const char *la_name = yysymbol_name(la);
    const OpenBracket *brace = innermost_brace(st);
    bool in_train = brace && brace->block == 't';

    bool closing_brace =
        (la == YYSYMBOL_YYEOF || is_one_of(la_name, item_start)) && set_has(&set, "'}'");
    Phrases p = {.n = 0};
    if (closing_brace) {
        /* a block left open: the rest of what could come is beside the point */
        add_phrase(&p, "'}'");
    } else {
        bool starts = false;
        if (set_has_all(&set, binary_ops)) set_del_all(&set, after_expr);
        if (set_has_all(&set, item_start)) {
            add_phrase(&p, "'import', 'fn', 'model' or 'train'");
            set_del_all(&set, item_start);
            starts = true;
        }
        if (set_has_all(&set, stmt_start)) {
            add_phrase(&p, in_train ? "a setting such as 'epochs = 100'" : "a statement");
            set_del_all(&set, stmt_start);
            starts = true;
        }
        if (set_has_all(&set, expr_start)) {
            add_phrase(&p, "an expression");
            set_del_all(&set, expr_start);
            starts = true;
        }
        bool sep = !starts && set_has(&set, "a newline") && set_has(&set, "';'");
        if (set_has(&set, "'{'")) set_del(&set, "a newline");
        if (starts || sep) set_del_all(&set, separators);
        if (sep) set_del(&set, "'}'");
        for (int i = 0; i < set.n; i++)
            if (set.on[i]) add_phrase(&p, set.name[i]);
        if (sep && p.n == 0) {
            add_phrase(&p, brace ? "a newline or ';' after the statement" : "a newline or ';'");
        } else if (sep) {
            add_phrase(&p, "a newline");
            add_phrase(&p, "';'");
        }
    }

    const char *found = found_text(st, la);
    if (p.n == 0)
        diag_error(where, "unexpected %s", found);
    else
        diag_error(where, "unexpected %s, expected %s", found, join_phrases(&p));

    /* Point at the bracket a missing closer would match, when it is out of sight. */
    const OpenBracket *open = &st->before;
    if (open->ch) {
        char closer = open->ch == '(' ? ')' : open->ch == '[' ? ']' : '}';
        bool asked = false;
        for (int i = 0; i < p.n; i++)
            if (p.v[i][0] == '\'' && p.v[i][1] == closer && p.v[i][2] == '\'') asked = true;
        /* every error at the start of a statement could be fixed by a '}': say it only
         * when nothing else fits */
        if (closer == '}') asked = closing_brace;
        if (asked && (la == YYSYMBOL_YYEOF || open->line != where.line))
            diag_note(at(st, open->line, open->col), "to match this '%c'", open->ch);
    }

    bool name_asked = false;
    for (int i = 0; i < p.n; i++)
        if (strcmp(p.v[i], "a name") == 0) name_asked = true;
    int prev = st->prev_tok;
    if (name_asked && !closing_brace && is_one_of(la_name, keywords)) {
        diag_hint("%s is a keyword and cannot be used as a name", la_name);
    } else if (st->prev_end_line < where.line && la != YYSYMBOL_YYEOF &&
               (prev == '+' || prev == '-' || prev == '*' || prev == '/' || prev == '@' ||
                prev == '^' || prev == '=' || prev == DOTDOT)) {
        /* the newline rule joined two lines: say so */
        diag_hint("line %d ends with '%s', so the statement goes on to this line",
                  st->prev_end_line, prev == DOTDOT ? ".." : (char[]){(char)prev, '\0'});
    }
    if (strcmp(la_name, "'['") == 0 && p.n > 0 && strcmp(p.v[0], "an expression") == 0)
        diag_hint("brackets index a value, as in x[0], or give a shape in a declaration, "
                  "as in input x[2]");
    if (strcmp(la_name, "':'") == 0 && !(st->before.ch == '['))
        diag_hint("bind names with '=', as in h = tanh(x); ':' is for slices, as in x[1:3]");
    if (la == YYSYMBOL_IDENT && p.n == 1 && strcmp(p.v[0], "a string") == 0)
        diag_hint("strings are written in double quotes, as in \"%.*s\"", st->tok_len,
                  st->file->text + st->tok_off);
    if (strcmp(la_name, "'*'") == 0 && st->prev_tok == '*' && st->prev_end_line == loc->first_line &&
        st->prev_end_col == loc->first_column)
        diag_hint("write powers with '^', as in x^2");
    return 0;
}

static void yyerror(YYLTYPE *loc, yyscan_t scanner, FrontState *st, const char *msg) {
    (void)scanner;
    if (strcmp(msg, "memory exhausted") == 0) {
        if (!st->deep_reported && front_error(st, FIRST(*loc), "expression nested too deeply"))
            diag_hint("split it into several statements");
        st->deep_reported = true;
    } else {
        diag_error(FIRST(*loc), "%s", msg);
    }
}
