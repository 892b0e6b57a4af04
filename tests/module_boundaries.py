#!/usr/bin/env python3
"""The stages after lowering read the IR only (docs/architecture.md).

usage: module_boundaries.py NM LIBNNC_CORE SOURCE_DIR

autodiff.c, dot.c and explain.c must not reach into the front end: their objects in the
compiler's library call nothing that the parser, sema or lower.c defines, and their
sources name no syntax-tree type (Node, Program, ND_...). What they need of a fn's own
backward rules is rendered on the IR by rules.c (rules.h): autodiff may call rules.c to
apply a rule, dot and explain read the record only. The symbols come from `nm` on the
library, so a call through a macro or a header counts as well.
"""
import re
import subprocess
import sys

IR_READERS = ["autodiff.c", "dot.c", "explain.c"]
FRONT_END = ["ast.c", "sema.c", "lower.c", "parser.c", "lexer.c"]
# What each reader may use of rules.c besides the record's fields (none but autodiff).
MAY_CALL_RULES = {"autodiff.c": {"rule_gradient"}}
AST_NAMES = re.compile(r"\b(Node|NodeList|NodeKind|Program|ND_[A-Z_]+|ast_[a-z_]+)\b")


def symbols(nm, library):
    """{object: (defined, undefined)} for each object file of the library."""
    out = subprocess.run([nm, "-P", library], capture_output=True, text=True, check=True).stdout
    objects, current = {}, None
    for line in out.splitlines():
        # GNU nm heads a member "lib.a[x.c.o]:", llvm-nm "x.c.o:"
        m = re.match(r"^(?:.*\[(.+)\.o\]|(\S+)\.o):$", line)
        if m:
            current = objects.setdefault(m.group(1) or m.group(2), (set(), set()))
            continue
        parts = line.split()
        if current is None or len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            current[1].add(name)
        elif kind.isupper():
            current[0].add(name)
    return objects


def code_only(text):
    """The source without comments and string literals."""
    pattern = r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\''
    return re.sub(pattern, " ", text, flags=re.S)


def main():
    nm, library, src = sys.argv[1:4]
    objects = symbols(nm, library)
    problems = []
    missing = [f for f in IR_READERS + FRONT_END + ["rules.c"] if f not in objects]
    if missing:
        print(f"FAIL: not in {library}: {', '.join(missing)}")
        return 1
    front_end = {}
    for f in FRONT_END:
        for name in objects[f][0]:
            front_end[name] = f
    for reader in IR_READERS:
        for name in sorted(objects[reader][1]):
            if name in front_end:
                problems.append(f"{reader} calls {name} ({front_end[name]})")
            elif name in objects["rules.c"][0] and name not in MAY_CALL_RULES.get(reader, ()):
                problems.append(f"{reader} calls {name} (rules.c): the record on the IR says it")
        with open(f"{src}/compiler/{reader}") as fh:
            text = fh.read()
        if re.search(r'^\s*#\s*include\s*"ast\.h"', text, re.M):
            problems.append(f'{reader} includes "ast.h"')
        for m in sorted(set(AST_NAMES.findall(code_only(text)))):
            problems.append(f"{reader} names {m}, a part of the syntax tree")
    for p in problems:
        print("FAIL:", p)
    failed = {p.split()[0] for p in problems}
    print(f"{len(IR_READERS) - len(failed)} passed, {len(failed)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
