/* ast.h: the syntax tree that parser.y builds and sema/lower read.
 *
 * One node type for everything keeps the parser small; the comment on each kind says
 * which fields it uses. Lists are NodeList (a VEC of Node *). */
#ifndef NNC_AST_H
#define NNC_AST_H

#include "common.h"

typedef struct Node Node;
typedef VEC(Node *) NodeList;

typedef enum NodeKind {
    /* ---- expressions ---- */
    ND_NUM,   /* num: a number literal (text in str, as written) */
    ND_STR,   /* str: a string literal, quotes removed, escapes \" \\ \n \t decoded */
    ND_NAME,  /* str: an identifier */
    ND_BINOP, /* op: one of + - * / ^ @ ; lhs, rhs */
    ND_NEG,   /* lhs: unary minus operand */
    ND_CALL,  /* str: callee name; args: expressions, any of which may be ND_KWARG */
    ND_KWARG, /* str: keyword; lhs: value (only inside a call's args) */
    ND_RANGE, /* lhs .. rhs (inclusive), e.g. columns 0..1 */
    ND_INDEX, /* lhs[args]: indexing; args are expressions (an index) or ND_SLICE (the parser
               * also makes one, thrown away, for a declaration's dims) */
    ND_SLICE, /* lhs:rhs:init inside a subscript: start, stop, step; each may be NULL */

    /* ---- statements (inside fn / model / train bodies) ---- */
    ND_INPUT,   /* input str[dims] */
    ND_TARGET,  /* target str[dims] */
    ND_PARAM,   /* param str[dims] = init ; dims may be empty (a scalar); init may be NULL */
    ND_BIND,    /* str = init ; is_output when written "output str = init" */
    ND_RETURN,  /* return init */
    ND_SETTING, /* str = init inside a train block */
    ND_STATE,   /* state str[dims] = init: non-trainable state (batch norm's running mean) */
    ND_UPDATE,  /* update str = init: what a training step writes into state str */
    ND_GRAD,    /* grad str = init (op '=') or grad str ~ init (op '~'), after a fn's return:
                 * the fn's own backward rule for argument str; `g` in init is the gradient
                 * of the fn's result; '~' marks a surrogate (not the true derivative) */

    /* ---- top level ---- */
    ND_IMPORT,   /* import str */
    ND_FN,       /* fn str(params) { body } ; params are ND_FN_PARAM */
    ND_FN_PARAM, /* str, with dims (has_dims set when written x[...], even x[]) */
    ND_MODEL,    /* model str { body } */
    ND_TRAIN,    /* train str { body of ND_SETTING } */
    ND_PROGRAM,  /* body: top-level items in source order */
} NodeKind;

struct Node {
    NodeKind kind;
    SrcLoc loc;      /* where the node starts; for ND_BINOP, the operator */
    SrcLoc end;      /* one past the last character of the node (for underlining) */
    SrcLoc start;    /* where the node's source text starts: loc, except for ND_BINOP (its left
                      * operand's start) and ND_BIND written "output p = ..." (the keyword);
                      * includes enclosing parentheses: start..end of "(a + b)" spans them */
    SrcLoc name_loc; /* where str was written, for nodes that name something: ND_INPUT,
                      * ND_TARGET, ND_PARAM, ND_BIND, ND_SETTING, ND_FN, ND_FN_PARAM, ND_MODEL,
                      * ND_TRAIN, ND_KWARG, ND_CALL (the callee), ND_IMPORT (the string) */
    int depth;       /* expressions: height of the tree (a leaf is 1); the parser rejects
                      * expressions deeper than NNC_MAX_EXPR_DEPTH, so recursive walks are
                      * safe */

    double num;
    char *str;
    int op; /* ND_BINOP: '+', '-', '*', '/', '^', '@' */
    Node *lhs, *rhs;
    Node *init;

    NodeList args;   /* ND_CALL, ND_INDEX */
    NodeList dims;   /* ND_INPUT, ND_TARGET, ND_PARAM, ND_FN_PARAM: dim expressions */
    bool has_dims;   /* ND_FN_PARAM (also ND_INPUT, ND_TARGET, ND_PARAM): written with
                      * brackets, even x[] */
    bool is_output;  /* ND_BIND */
    NodeList params; /* ND_FN */
    NodeList body;   /* ND_FN, ND_MODEL, ND_TRAIN, ND_PROGRAM */

    const char *text; /* ast_source_text's result, once asked for */
};

/* The deepest expression tree the parser accepts ("expression nested too deeply"). */
#define NNC_MAX_EXPR_DEPTH 1000

/* A zeroed node in the arena with loc = start = end = loc. */
Node *ast_new(NodeKind kind, SrcLoc loc);

/* Parses one file. Returns the ND_PROGRAM, or NULL after printing errors
 * (file:line:col: error: ...). Never exits, never crashes on any input. */
Node *parse_file(SrcFile *file);

/* --emit=ast: an indented tree, one node a line, with line:col. Deterministic. */
void ast_print(FILE *out, const Node *node);

/* The node's source text (from start to end) on one line, or a short rendering: computed
 * once a node, in time linear in its length. */
const char *ast_source_text(const Node *node);

/* For messages: the same, cut to about AST_BRIEF_MAX bytes ("f(a, b, ... z)"). */
#define AST_BRIEF_MAX 80
const char *ast_source_brief(const Node *node);

#endif
