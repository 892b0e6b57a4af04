#!/usr/bin/env python3
"""Compares what nnc prints for the examples with the golden files in tests/golden.

A golden file NAME.KIND.txt holds what nnc prints for examples/NAME.nn (or
examples/lessons/NAME.nn, or tests/golden/models/NAME.nn), run from the source folder:

    NAME.STAGE.txt        nnc examples/NAME.nn --emit=STAGE       (ir, grad, dot, ...)
    NAME.explain.txt      nnc explain examples/NAME.nn
    NAME.explain-md.txt   nnc explain examples/NAME.nn --format=markdown
    NAME.explain-multiply.txt  nnc explain examples/NAME.nn --multiply
    NAME.explain-multiply-md.txt  nnc explain examples/NAME.nn --multiply --format=markdown
    NAME.grad-all.txt     nnc examples/NAME.nn --emit=grad --steps all
    NAME.explain-wrt-P.txt  nnc explain examples/NAME.nn --wrt P    (P a param: h.Wh)

On a difference the test fails with a diff. After a deliberate change to a printer,
regenerate with: run_golden.py NNC SRC GOLDEN --update

It then checks the errors of the teaching views, which have no golden file: an unknown
`explain --wrt` name, and `--emit=svg` without Graphviz (the message must say how to
install it) or with a dot that fails (no output file may be left). The SVG itself is
rendered only where Graphviz is installed: it is not a build dependency.

Last, docs/pictures.md quotes real output: each `<!-- run: nnc ARGS -->` comment is followed
by a fenced block holding what that command prints (stderr, then stdout), run from the
source folder. --update rewrites those blocks too.
"""
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile


def command(nnc, model, kind):
    if kind == "explain":
        return [nnc, "explain", model]
    if kind == "explain-md":
        return [nnc, "explain", model, "--format=markdown"]
    if kind == "explain-multiply":
        return [nnc, "explain", model, "--multiply"]
    if kind == "explain-multiply-md":
        return [nnc, "explain", model, "--multiply", "--format=markdown"]
    if kind == "grad-all":
        return [nnc, model, "--emit=grad", "--steps", "all"]
    if kind.startswith("explain-wrt-"):
        return [nnc, "explain", model, "--wrt", kind[len("explain-wrt-"):]]
    return [nnc, model, "--emit=" + kind]


def check_golden(nnc, src, golden, name, update):
    example, kind = name[:-len(".txt")].split(".", 1)
    model = os.path.join("examples", example + ".nn")
    if not os.path.exists(os.path.join(src, model)):
        model = os.path.join("examples", "lessons", example + ".nn")
    if not os.path.exists(os.path.join(src, model)):
        model = os.path.join("tests", "golden", "models", example + ".nn")
    proc = subprocess.run(command(nnc, model, kind), cwd=src, capture_output=True, text=True,
                          timeout=60)
    path = os.path.join(golden, name)
    if update:
        with open(path, "w") as f:
            f.write(proc.stdout)
    with open(path) as f:
        want = f.read()
    if proc.returncode == 0 and proc.stdout == want:
        return True
    print(f"FAIL {name} (exit status {proc.returncode})\n{proc.stderr}")
    sys.stdout.writelines(difflib.unified_diff(want.splitlines(True), proc.stdout.splitlines(True),
                                               "golden/" + name, "nnc output"))
    return False


def run(nnc, src, args, env=None, cwd=None):
    return subprocess.run([nnc] + args, cwd=cwd or src, env=env, capture_output=True, text=True,
                          timeout=60)


def expect_error(proc, status, lines):
    """Problems with a run that should have failed with exactly these stderr lines."""
    problems = []
    if proc.returncode != status:
        problems.append(f"exit status {proc.returncode}, wanted {status}")
    if proc.stdout:
        problems.append(f"printed to stdout: {proc.stdout[:200]!r}")
    if proc.stderr.splitlines() != lines:
        problems.append("stderr was:\n" + proc.stderr + "wanted:\n" + "\n".join(lines))
    return problems


def unknown_wrt(nnc, src, tmp):
    proc = run(nnc, src, ["explain", "examples/xor.nn", "--wrt", "nope"])
    return expect_error(proc, 1, ["nnc: error: model xor has no param 'nope' "
                                  "(its params: h.W, h.b, p.W, p.b)"])


def svg_without_graphviz(nnc, src, tmp):
    empty = os.path.join(tmp, "empty-bin")
    os.makedirs(empty, exist_ok=True)
    out = os.path.join(tmp, "missing.svg")
    proc = run(nnc, src, ["examples/xor.nn", "--emit=svg", "-o", out],
               env=dict(os.environ, PATH=empty))
    problems = expect_error(proc, 1, [
        "nnc: error: --emit=svg needs Graphviz's dot program, which is not installed",
        "  hint: install it with: apt-get install graphviz (or use --emit=dot and render it "
        "elsewhere)"])
    if os.path.exists(out):
        problems.append("an output file was written")
    return problems


def svg_when_dot_fails(nnc, src, tmp):
    """A dot that writes half an SVG and fails: its status is reported, no file is left."""
    bin_dir = os.path.join(tmp, "failing-bin")
    os.makedirs(bin_dir, exist_ok=True)
    fake = os.path.join(bin_dir, "dot")
    with open(fake, "w") as f:
        f.write("#!/bin/sh\ncat >/dev/null\necho '<svg partial'\nexit 3\n")
    os.chmod(fake, 0o755)
    out = os.path.join(tmp, "failed.svg")
    proc = run(nnc, src, ["examples/xor.nn", "--emit=svg", "-o", out],
               env=dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", "")))
    problems = expect_error(proc, 1, [
        "nnc: error: Graphviz's dot failed (exit status 3); no SVG was written"])
    left = [f for f in os.listdir(tmp) if f.startswith("failed.svg")]
    if left:
        problems.append(f"left behind: {left}")
    return problems


def svg_rendered(nnc, src, tmp):
    if not shutil.which("dot"):
        print("skip svg rendering: Graphviz's dot is not installed")
        return []
    out = os.path.join(tmp, "xor.svg")
    proc = run(nnc, src, ["examples/xor.nn", "--emit=svg", "-o", out])
    if proc.returncode != 0:
        return [f"exit status {proc.returncode}: {proc.stderr}"]
    with open(out) as f:
        svg = f.read()
    problems = []
    for want in ("<svg", "@h.W [2, 4]", "d cost/d @h.W"):
        if want not in svg:
            problems.append(f"the SVG does not contain {want!r}")
    return problems


def clusters(dot):
    """The fn-call clusters of a --emit=dot text: (pass, path of labels from the outermost
    call), in order; the stdlib's line numbers left out ("(nn.nn)")."""
    found, stack = [], []
    for line in dot.splitlines():
        m = re.match(r"\s*subgraph cluster_([fb])\d+ \{", line)
        if m:
            stack.append(None)
            continue
        m = re.match(r'\s*label="([^"]*)"; style="rounded,dashed"', line)
        if m and stack and stack[-1] is None:
            stack[-1] = re.sub(r"\(nn\.nn:\d+\)", "(nn.nn)", m.group(1))
            found.append(tuple(stack))
        elif re.match(r"\s*subgraph cluster_(forward|backward)", line):
            stack.append("")
        elif line.strip() == "}" and stack:
            stack.pop()
    return found


STEPS = [f"rnn_cell step {t} in h (nn.nn)" for t in range(5)]
CLUSTERS = {  # the calls of an MLP, a CNN and an RNN, each drawn in both passes
    "examples/lessons/xor_hidden.nn": [
        ("dense(x, 2) in h (xor_hidden.nn:19)",), ("dense(h, 1) in p (xor_hidden.nn:20)",),
        ("bce(p, y) in loss (xor_hidden.nn:21)",)],
    "examples/cnn_digits.nn": [
        ("conv_pad(image, 16, 3, 1) in h1 (cnn_digits.nn:14)",),
        ("maxpool(h1, 2) in p1 (cnn_digits.nn:15)",),
        ("conv_pad(p1, 32, 3, 1) in h2 (cnn_digits.nn:16)",),
        ("maxpool(h2, 2) in p2 (cnn_digits.nn:17)",),
        ("dense(flatten(p2), 10) in z (cnn_digits.nn:18)",)],
    "examples/lessons/bptt.nn --model rnn": [("rnn(x, 16) in h (bptt.nn:65)",)] + [
        ("rnn(x, 16) in h (bptt.nn:65)", step) for step in STEPS] + [
        ("dense(h[-1], 1) in z (bptt.nn:66)",), ("bce_logits(z, y) in loss (bptt.nn:67)",)],
}


def dot_clusters(nnc, src, tmp):
    """--emit=dot draws each fn call as a labelled cluster, a scan's steps inside the call
    that runs the scan, once in the forward pass and once in the backward one."""
    problems = []
    for args, want in CLUSTERS.items():
        proc = run(nnc, src, shlex.split(args) + ["--emit=dot"])
        got = [path for path in clusters(proc.stdout)]
        both = [("",) + path for path in want] * 2
        if proc.returncode != 0 or got != both:
            problems.append(f"{args}: clusters {got}, wanted {both}\n{proc.stderr}")
    return problems


def boxes(dot):
    """The collapsed calls of a --emit=dot text: {node: its title}."""
    return dict(re.findall(r"^\s*(c\d+[fb]) \[shape=box3d.*?label=<<B>([^<]*)</B>", dot, re.M))


def dot_collapsed(nnc, src, tmp):
    """--collapse=NAMES draws those calls as one box each, forward and backward, with one
    arrow from each node that feeds it; a name no call has is an error that lists them."""
    problems = []
    proc = run(nnc, src, ["examples/lessons/bptt.nn", "--model", "rnn", "--emit=dot",
                          "--collapse=rnn_cell"])
    titles = sorted(re.sub(r"\(nn\.nn:\d+\)", "(nn.nn)", t) for t in boxes(proc.stdout).values())
    want = sorted(STEPS + [f"backward of {step}" for step in STEPS])
    if titles != want:
        problems.append(f"--collapse=rnn_cell: boxes {titles}, wanted {want}")
    got = [path for path in clusters(proc.stdout) if "rnn_cell" in path[-1]]
    if got:
        problems.append(f"--collapse=rnn_cell still draws the clusters {got}")
    edges = re.findall(r"^  (\w+) -> (\w+) ", proc.stdout, re.M)
    if len(edges) != len(set(edges)) or any(a == b for a, b in edges):
        problems.append("--collapse=rnn_cell: an arrow drawn twice, or from a box to itself")
    if ("c2f", "c3f") not in edges:
        problems.append("--collapse=rnn_cell: no arrow from step 0's box to step 1's")
    for flag, count in (("all", 6), ("h,loss", 4), ("dense", 4)):
        proc = run(nnc, src, ["examples/lessons/xor_hidden.nn", "--emit=dot", "--collapse=" + flag])
        if len(boxes(proc.stdout)) != count or clusters(proc.stdout) and flag == "all":
            problems.append(f"--collapse={flag}: boxes {boxes(proc.stdout)}, wanted {count}")
    proc = run(nnc, src, ["examples/xor.nn", "--emit=dot", "--collapse=dense,nope"])
    problems += expect_error(proc, 1, [
        "nnc: error: --collapse: 'nope' names no fn that model xor calls, nor a binding",
        "  hint: the fns it calls: dense, bce (or all)"])
    proc = run(nnc, src, ["examples/xor.nn", "--emit=grad", "--collapse=dense"])
    problems += expect_error(proc, 2, [
        "nnc: error: --collapse draws calls as boxes in --emit=dot and --emit=svg only",
        "(run nnc --help for usage)"])
    return problems


def listing(out, marks):
    """The instruction lines of nnc's IR text whose first character is one of marks, without
    their mark and comment."""
    return [line[2:].split(" ; ")[0].rstrip() for line in out.splitlines()
            if line[:1] in marks and re.match(r"^. #\d+", line)]


def grad_diff_is_raw_and_grad(nnc, src, tmp):
    """--emit=grad-diff's kept and "-" lines are --emit=grad-raw's, its kept and "+" lines
    --emit=grad's, in order: the diff says exactly what simplify changed."""
    problems = []
    for args, changes in (("examples/xor.nn", True), ("examples/cnn_digits.nn", False),
                          ("examples/lessons/bptt.nn --model rnn", True),
                          ("tests/golden/models/spelled.nn", True)):
        out = {kind: run(nnc, src, shlex.split(args) + ["--emit=" + kind, "--steps", "all"]).stdout
               for kind in ("grad-diff", "grad-raw", "grad")}
        if listing(out["grad-diff"], " -") != listing(out["grad-raw"], " "):
            problems.append(f"{args}: the diff's - lines are not grad-raw's")
        if listing(out["grad-diff"], " +") != listing(out["grad"], " "):
            problems.append(f"{args}: the diff's + lines are not grad's")
        if bool(listing(out["grad-diff"], "-")) != changes:
            problems.append(f"{args}: simplify changed {'nothing' if changes else 'something'}")
    return problems


CHECKS = [unknown_wrt, svg_without_graphviz, svg_when_dot_fails, svg_rendered, dot_clusters,
          dot_collapsed, grad_diff_is_raw_and_grad]

QUOTE = re.compile(r"^<!-- run: nnc (?P<args>.+?) -->\n(?:[ \t]*\n)*"
                   r"```[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)


def check_doc(nnc, src, doc, update):
    """Problems with the output quoted in doc (a path relative to src)."""
    path = os.path.join(src, doc)
    with open(path) as f:
        text = f.read()
    problems, pieces, last = [], [], 0
    for m in QUOTE.finditer(text):
        proc = run(nnc, src, shlex.split(m.group("args")))
        got = proc.stderr + proc.stdout
        if got != m.group("body"):
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{doc}:{line}: nnc {m.group('args')} printed something else:\n" +
                            "".join(difflib.unified_diff(m.group("body").splitlines(True),
                                                         got.splitlines(True), "quoted", "now")))
        pieces += [text[last:m.start("body")], got]
        last = m.end("body")
    if update:
        with open(path, "w") as f:
            f.write("".join(pieces) + text[last:])
        return []
    return problems


def main():
    nnc, src, golden = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    update = "--update" in sys.argv[4:]
    files = sorted(f for f in os.listdir(golden) if f.endswith(".txt"))
    failed = 0
    for name in files:
        if check_golden(nnc, src, golden, name, update):
            print(f"ok  {name}")
        else:
            failed += 1
    with tempfile.TemporaryDirectory() as tmp:
        for check in CHECKS:
            problems = check(nnc, src, tmp)
            if problems:
                failed += 1
                print(f"FAIL {check.__name__}\n  " + "\n  ".join(problems))
            else:
                print(f"ok  {check.__name__}")
    problems = check_doc(nnc, src, os.path.join("docs", "pictures.md"), update)
    if problems:
        failed += 1
        print("FAIL docs/pictures.md\n" + "\n".join(problems))
    else:
        print("ok  docs/pictures.md")
    print(f"{len(files) + len(CHECKS) + 1 - failed} passed, {failed} failed")
    return 1 if failed or not files else 0


if __name__ == "__main__":
    sys.exit(main())
