#!/usr/bin/env python3
"""The compiler against hostile inputs and file systems: what it reads, what it writes.

usage: front_end.py NNC SOURCE_DIR CASE

Each case runs nnc in a fresh temporary folder on files it generates there, and checks exit
statuses, messages and the files left behind. A case that needs what the machine does not
allow (mounting a small tmpfs) exits with status 77, which ctest reports as skipped.
"""
import os
import re
import stat
import subprocess
import sys
import tempfile

SKIP = 77


class Failure(Exception):
    pass


class Skipped(Exception):
    pass


def run(nnc, args, cwd, want_status=0, env=None, timeout=120):
    proc = subprocess.run([nnc] + args, cwd=cwd, capture_output=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
    proc.stdout_text = proc.stdout.decode("utf-8", "replace")
    proc.stderr_text = proc.stderr.decode("utf-8", "replace")
    if want_status is not None and proc.returncode != want_status:
        raise Failure(f"nnc {' '.join(args)}: exit status {proc.returncode}, wanted "
                      f"{want_status}\n--- stderr:\n{proc.stderr_text[:3000]}")
    return proc


def expect_in(text, wanted, what):
    if wanted not in text:
        raise Failure(f"{what}: wanted {wanted!r} in:\n{text[:3000]}")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def stats(proc):
    """The counters NNC_STATS=1 prints: {'tokens': 12, ...}."""
    m = re.search(r"^nnc: stats: (.*)$", proc.stderr_text, re.M)
    if not m:
        raise Failure(f"no stats line in:\n{proc.stderr_text[:2000]}")
    return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def entries(folder):
    return sorted(os.listdir(folder))


MODEL = """model m {
    input  x[2]
    target y[1]
    param  w[2, 1] = 0.5
    loss = sum((x @ w - y)^2)
}
"""


def is_char_device(path):
    return stat.S_ISCHR(os.stat(path).st_mode)


# ---- outputs that are inputs ----

def case_output_is_source(nnc, src, tmp):
    """nnc m.nn -o m.nn and friends: refused before anything is written."""
    write(os.path.join(tmp, "lib.nn"), "fn twice(x) {\n    return 2 * x\n}\n")
    write(os.path.join(tmp, "m.nn"),
          'import "lib.nn"\n' + MODEL.replace("sum(", "twice(sum(").replace("^2)", "^2))"))
    text = {name: read_bytes(os.path.join(tmp, name)) for name in ("m.nn", "lib.nn")}
    os.symlink("m.nn", os.path.join(tmp, "link"))
    os.link(os.path.join(tmp, "m.nn"), os.path.join(tmp, "hard.nn"))
    for args, source in ((["m.nn", "--emit=ir", "-o", "m.nn"], "m.nn"),
                         (["m.nn", "-o", "m.nn"], "m.nn"),
                         (["m.nn", "-c", "-o", "./m.nn"], "m.nn"),
                         (["m.nn", "-o", "link"], "m.nn"),
                         (["m.nn", "--emit=grad", "-o", "hard.nn"], "m.nn"),
                         (["m.nn", "-o", "lib.nn"], "lib.nn"),
                         (["m.nn", "--emit=svg", "-o", "lib.nn"], "lib.nn")):
        proc = run(nnc, args, tmp, want_status=1)
        expect_in(proc.stderr_text, f"would overwrite the source file {source}", " ".join(args))
    # A model file without .nn: its default output name is its own.
    write(os.path.join(tmp, "model"), MODEL)
    proc = run(nnc, ["model"], tmp, want_status=1)
    expect_in(proc.stderr_text, "the output model would overwrite the source file model", "nnc model")
    for name, data in text.items():
        if read_bytes(os.path.join(tmp, name)) != data:
            raise Failure(f"{name} changed")
    if read_bytes(os.path.join(tmp, "model")) != MODEL.encode():
        raise Failure("model changed")
    if sorted(entries(tmp)) != sorted(["lib.nn", "m.nn", "link", "hard.nn", "model"]):
        raise Failure(f"files left behind: {entries(tmp)}")


def case_devices(nnc, src, tmp):
    """-o /dev/null and -o - keep working; a device is written, never replaced or removed."""
    write(os.path.join(tmp, "m.nn"), MODEL)
    for args in (["--emit=ir"], ["-c"], []):
        run(nnc, ["m.nn", "-o", "/dev/null"] + args, tmp)
    if not is_char_device("/dev/null"):
        raise Failure("/dev/null is no longer a character device")
    ir = run(nnc, ["m.nn", "--emit=ir", "-o", "-"], tmp).stdout_text
    expect_in(ir, "%loss", "--emit=ir -o -")
    obj = run(nnc, ["m.nn", "-c", "-o", "-"], tmp).stdout
    if obj[:4] != b"\x7fELF":
        raise Failure(f"-c -o - wrote {obj[:16]!r}, not an ELF object")
    for args in (["--emit=grad"], ["--emit=ir"]):
        proc = run(nnc, ["m.nn", "-o", "/dev/full"] + args, tmp, want_status=1)
        expect_in(proc.stderr_text, "nnc: error: cannot write /dev/full: No space left on device",
                  "-o /dev/full")
    if not is_char_device("/dev/full"):
        raise Failure("/dev/full is no longer a character device")
    if entries(tmp) != ["m.nn"]:
        raise Failure(f"files left behind: {entries(tmp)}")


def case_failed_runs_keep_old_output(nnc, src, tmp):
    """A run that fails leaves the output file that was there as it was, and nothing else."""
    write(os.path.join(tmp, "bad.nn"), MODEL.replace("x @ w", "x @ v"))
    write(os.path.join(tmp, "m.nn"), MODEL)
    for name in ("out.txt", "out.o", "out"):
        write(os.path.join(tmp, name), "old contents\n")
    run(nnc, ["bad.nn", "--emit=ir", "-o", "out.txt"], tmp, want_status=1)
    run(nnc, ["bad.nn", "-c", "-o", "out.o"], tmp, want_status=1)
    proc = run(nnc, ["m.nn", "-o", "out"], tmp, want_status=1, env={"NNC_CC": "false"})
    expect_in(proc.stderr_text, "linking out failed", "a failed link")
    for name in ("out.txt", "out.o", "out"):
        if read_bytes(os.path.join(tmp, name)) != b"old contents\n":
            raise Failure(f"{name} was changed by a failed run")
    if entries(tmp) != ["bad.nn", "m.nn", "out", "out.o", "out.txt"]:
        raise Failure(f"files left behind: {entries(tmp)}")
    # and a run that succeeds replaces them
    run(nnc, ["m.nn", "-o", "out"], tmp)
    if read_bytes(os.path.join(tmp, "out"))[:4] != b"\x7fELF" or not os.access(
            os.path.join(tmp, "out"), os.X_OK):
        raise Failure("the executable was not written, or is not executable")


def case_full_disk(nnc, src, tmp):
    """On a full file system: "nnc: error: ..." and no file, for every kind of output."""
    disk = os.path.join(tmp, "disk")
    os.mkdir(disk)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", disk],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        raise Skipped(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        write(os.path.join(tmp, "m.nn"), MODEL)
        write(os.path.join(disk, "old.o"), "old\n")  # takes the one page there is
        for args, message in (
                (["-c", "-o", "disk/m.o"], "nnc: error: cannot write disk/m.o: No space left on device"),
                (["-c", "-o", "disk/old.o"], "nnc: error: cannot write disk/old.o: No space left on device"),
                (["-o", "disk/m"], "nnc: error: linking disk/m failed"),
                (["--emit=llvm", "-o", "disk/m.ll"], "nnc: error: cannot write disk/m.ll: No space left on device")):
            proc = run(nnc, ["m.nn"] + args, tmp, want_status=1)
            expect_in(proc.stderr_text, message, " ".join(args))
            if "LLVM ERROR" in proc.stderr_text:
                raise Failure(f"LLVM's own error leaked out:\n{proc.stderr_text}")
            if entries(disk) != ["old.o"]:
                raise Failure(f"nnc {' '.join(args)} left {entries(disk)} on the full disk")
        if read_bytes(os.path.join(disk, "old.o")) != b"old\n":
            raise Failure("a failed write changed the file it was to replace")
    finally:
        subprocess.run(["umount", disk], capture_output=True)


# ---- what nnc reads ----

def case_not_regular(nnc, src, tmp):
    """Devices, folders, pipes and oversized files are refused, at once."""
    os.mkfifo(os.path.join(tmp, "pipe.nn"))
    os.mkdir(os.path.join(tmp, "folder.nn"))
    with open(os.path.join(tmp, "big.nn"), "w") as f:
        f.write("# " + "x" * (5 << 20) + "\n")
    with open(os.path.join(tmp, "half.nn"), "w") as f:
        f.write("# " + "x" * (3 << 20) + "\n")
    write(os.path.join(tmp, "two.nn"), 'import "half.nn"\nimport "half2.nn"\n' + MODEL)
    os.link(os.path.join(tmp, "half.nn"), os.path.join(tmp, "half2.nn"))
    write(os.path.join(tmp, "half3.nn"), read_bytes(os.path.join(tmp, "half.nn")).decode())
    write(os.path.join(tmp, "three.nn"), 'import "half.nn"\nimport "half3.nn"\n' + MODEL)
    for path, message in (("/dev/zero", "cannot read /dev/zero: not a regular file"),
                          ("pipe.nn", "cannot read pipe.nn: not a regular file"),
                          ("folder.nn", "cannot read folder.nn: it is a folder"),
                          ("big.nn", "more than the 4 MiB a source file may have")):
        proc = run(nnc, [path, "-o", "out"], tmp, want_status=1, timeout=20)
        expect_in(proc.stderr_text, "nnc: error: " + message if path != "big.nn" else message,
                  path)
    # The same file imported under two names is read once; two files of 3 MiB are too many.
    run(nnc, ["two.nn", "--emit=ir", "-o", "out.txt"], tmp)
    proc = run(nnc, ["three.nn", "--emit=ir", "-o", "out.txt"], tmp, want_status=1)
    expect_in(proc.stderr_text, 'three.nn:2:1: error: cannot import "half3.nn"', "two big imports")
    expect_in(proc.stderr_text, "the 4 MiB of source nnc reads in one run", "two big imports")


def case_long_line(nnc, src, tmp):
    """A 4 MB line with an early mistake: one short message, and nothing kept per token."""
    terms = 900000
    write(os.path.join(tmp, "long.nn"),
          "model m { param w = 1; loss = w 2" + " + w" * terms + " }\n")
    proc = run(nnc, ["long.nn", "-o", "out"], tmp, want_status=1, env={"NNC_STATS": "1"})
    expect_in(proc.stderr_text, "long.nn:1:33: error: unexpected number '2'", "the error")
    diagnostics = proc.stderr_text.split("nnc: stats:")[0]
    if len(diagnostics) > 1000:
        raise Failure(f"{len(diagnostics)} bytes of messages for one error:\n{diagnostics[:2000]}")
    shown = diagnostics.splitlines()[1]
    if not shown.endswith("...") or len(shown) > 200:
        raise Failure(f"the source line is not cut: {shown[:300]!r}")
    counters = stats(proc)
    if counters["tokens"] < 2 * terms or counters["ast_nodes"] > 50:
        raise Failure(f"after the error the parser kept {counters['ast_nodes']} nodes for "
                      f"{counters['tokens']} tokens")
    # The caret stays under the mistake when the window is cut on both sides.
    line = "model m { param w = 1; loss = w" + " + w" * 900 + " 2" + " + w" * 5000 + " }"
    write(os.path.join(tmp, "mid.nn"), line + "\n")
    proc = run(nnc, ["mid.nn", "-o", "out"], tmp, want_status=1)
    expect_in(proc.stderr_text, f"mid.nn:1:{line.index(' 2') + 2}: error: unexpected number '2'",
              "the error in the middle")
    lines = proc.stderr_text.splitlines()
    source, caret = lines[1], lines[2]
    if not (source.startswith("  ...") and source.endswith("...")):
        raise Failure(f"not cut on both sides: {source!r}")
    if source[len(caret) - 1] != "2" or caret.strip() != "^":
        raise Failure(f"the caret is not under the '2':\n{source}\n{caret}")


def case_too_many_errors(nnc, src, tmp):
    """After DIAG_MAX_ERRORS errors the parser stops reading."""
    write(os.path.join(tmp, "bad.nn"), "model m {\n" + "    x = = 1\n" * 5000 + "}\n")
    proc = run(nnc, ["bad.nn", "-o", "out"], tmp, want_status=1, env={"NNC_STATS": "1"})
    errors = re.findall(r"^bad\.nn:\d+:\d+: error:", proc.stderr_text, re.M)
    if len(errors) != 20:
        raise Failure(f"{len(errors)} errors shown, wanted 20")
    expect_in(proc.stderr_text, "nnc: too many errors; stopping", "the last line")
    if stats(proc)["tokens"] > 200:
        raise Failure(f"the lexer went on for {stats(proc)['tokens']} tokens")


def case_deep_brackets(nnc, src, tmp):
    write(os.path.join(tmp, "deep.nn"),
          "model m {\n    param w = 1\n    loss = " + "(" * 200000 + "w" + ")" * 200000 + "\n}\n")
    proc = run(nnc, ["deep.nn", "-o", "out"], tmp, want_status=1, env={"NNC_STATS": "1"})
    expect_in(proc.stderr_text, "deep.nn:3:1011: error: brackets nested more than 1000 deep",
              "deep brackets")
    if len(re.findall(r": error:", proc.stderr_text)) != 1:
        raise Failure(f"more than one error:\n{proc.stderr_text[:3000]}")
    if stats(proc)["tokens"] > 2000:
        raise Failure(f"the lexer went on for {stats(proc)['tokens']} tokens")


def case_imports(nnc, src, tmp):
    """A cycle is an error that names the chain; a diamond loads the shared file once."""
    write(os.path.join(tmp, "a.nn"), 'import "b.nn"\n' + MODEL)
    write(os.path.join(tmp, "b.nn"), 'import "c.nn"\nfn fb(x) {\n    return x\n}\n')
    write(os.path.join(tmp, "c.nn"), 'import "a.nn"\n')
    proc = run(nnc, ["a.nn", "-o", "out"], tmp, want_status=1)
    expect_in(proc.stderr_text,
              "c.nn:1:8: error: import cycle: a.nn imports b.nn imports c.nn imports a.nn",
              "the cycle")
    if "defined twice" in proc.stderr_text:
        raise Failure(f"a cycle reported as duplicate fns:\n{proc.stderr_text}")
    os.mkdir(os.path.join(tmp, "sub"))
    diamond = MODEL.replace("loss = sum(", "loss = fl(1) + fr(1) + shared(sum(")
    write(os.path.join(tmp, "top.nn"), 'import "left.nn"\nimport "sub/right.nn"\n' +
          diamond.replace("^2)", "^2))"))
    write(os.path.join(tmp, "left.nn"), 'import "shared.nn"\nfn fl(x) {\n    return shared(x)\n}\n')
    write(os.path.join(tmp, "sub", "right.nn"),
          'import "../shared.nn"\nfn fr(x) {\n    return shared(x)\n}\n')
    write(os.path.join(tmp, "shared.nn"), "fn shared(x) {\n    return x\n}\n")
    proc = run(nnc, ["top.nn", "--emit=ir", "-o", "-"], tmp, env={"NNC_STATS": "1"})
    expect_in(proc.stdout_text, "%loss", "the diamond")
    files = sum(len(read_bytes(os.path.join(tmp, f)))
                for f in ("top.nn", "left.nn", "sub/right.nn", "shared.nn"))
    if stats(proc)["source_bytes"] != files:
        raise Failure(f"{stats(proc)['source_bytes']} bytes read for {files} bytes of files: "
                      "shared.nn was read twice")


def case_gradcheck_models(nnc, src, tmp):
    """nnc gradcheck checks every model of the file."""
    write(os.path.join(tmp, "two.nn"), """fn cube(u) {
    return u * u * u
    grad u = g * 3 * u * u
}
fn wrong(u) {
    return u * u
    grad u = g * u
}
model good {
    param a = 0.7
    loss = cube(a) + a
}
model bad {
    param b = 0.7
    loss = wrong(b)
}
model also_good {
    param c = 0.3
    loss = c^2
}
""")
    proc = run(nnc, ["gradcheck", "two.nn"], tmp, want_status=1)
    for name in ("good", "bad", "also_good"):
        expect_in(proc.stdout_text, f"gradcheck of model '{name}'", "every model")
    expect_in(proc.stdout_text, "gradcheck: 1 of 3 models failed: bad", "the summary")
    proc = run(nnc, ["gradcheck", "two.nn", "--model", "good"], tmp)
    if "'bad'" in proc.stdout_text:
        raise Failure("--model good checked another model too")
    write(os.path.join(tmp, "fine.nn"), "model p {\n    param a = 1\n    loss = a^2\n}\n"
          "model q {\n    param b = 2\n    loss = exp(b)\n}\n")
    proc = run(nnc, ["gradcheck", "fine.nn"], tmp)
    expect_in(proc.stdout_text, "gradcheck: all 2 models match", "the summary")


def case_many_params(nnc, src, tmp):
    """A fn with 70 arguments, some given by name: inlined, and its gradient right."""
    n = 70
    write(os.path.join(tmp, "wide.nn"),
          "fn wide(" + ", ".join(f"a{i}" for i in range(n)) + ") {\n    return " +
          " + ".join(f"{i + 1} * a{i}" for i in range(n)) + "\n}\n"
          "model m {\n    param w = 0.5\n    loss = wide(" +
          ", ".join("w" for _ in range(n - 2)) + ", a69 = w^2, a68 = w)\n}\n")
    proc = run(nnc, ["gradcheck", "wide.nn"], tmp)
    expect_in(proc.stdout_text, "gradcheck: all 1 params match", "gradcheck")


def case_backward_rules(nnc, src, tmp):
    """What a fn's backward rule calls is lowered as the forward pass is: a fn's locals are
    named after the model binding of the call. An error in a rule is the only message: the
    params it leaves without a gradient are not warned about, and gradcheck's other models
    are checked as usual."""
    write(os.path.join(tmp, "locals.nn"),
          "fn slope(u) {\n    s = sigmoid(u)\n    return s\n}\n"
          "fn softplus2(u) {\n    return log(1 + exp(u))\n    grad u = g * slope(u)\n}\n"
          "model m {\n    input x[3]\n    param a[3]\n    h = softplus2(x + a)\n"
          "    loss = sum(h)\n}\n")
    proc = run(nnc, ["locals.nn", "--emit=grad-raw"], tmp)
    expect_in(proc.stdout_text, "%h.s : [3]", "--emit=grad-raw")
    expect_in(proc.stdout_text, "= mul %h.grad, %h.s", "--emit=grad-raw")
    if "(null)" in proc.stdout_text:
        raise Failure(f"a value named (null) in:\n{proc.stdout_text}")
    proc = run(nnc, ["gradcheck", "locals.nn"], tmp)
    expect_in(proc.stdout_text, "gradcheck: all 1 params match", "gradcheck")

    write(os.path.join(tmp, "shape.nn"),
          "fn f(u[3]) {\n    return sum(u)\n    grad u = 1\n}\n"
          "model m {\n    input x[3]\n    param w[3]\n    loss = f(x * w)\n}\n")
    proc = run(nnc, ["shape.nn", "-o", "shape"], tmp, want_status=1)
    diags = re.findall(r"^shape\.nn:\d+:\d+: (?:error|warning): .*$", proc.stderr_text, re.M)
    if diags != ["shape.nn:3:14: error: the backward rule for u must use g, the gradient of f's "
                 "result"]:
        raise Failure(f"wanted one error and nothing else, got:\n{proc.stderr_text}")

    # nnc gradcheck goes on to the next model, which the error does not concern
    with open(os.path.join(tmp, "shape.nn"), "a") as f:
        f.write("model fine {\n    input x[3]\n    param w[3]\n    loss = sum(x * w)\n}\n")
    proc = run(nnc, ["gradcheck", "shape.nn"], tmp, want_status=1)
    expect_in(proc.stdout_text, "gradcheck: 1 of 2 models failed: m\n", "gradcheck")


def case_emit_kinds(nnc, src, tmp):
    """--help lists the --emit kinds, the message for an unknown one lists the same, and
    each is accepted (both lists are made from the driver's one table)."""
    usage = run(nnc, ["--help"], tmp).stdout_text
    block = usage.split("  --emit=STAGE", 1)[1].split("  --dump-passes", 1)[0]
    listed = re.findall(r"^ {20}(\S+) ", block, re.M)
    want = ["ast", "ir", "grad", "grad-raw", "grad-diff", "plan", "llvm", "dot", "svg"]
    if listed != want:
        raise Failure(f"--help lists {listed}, wanted {want}:\n{usage}")
    write(os.path.join(tmp, "m.nn"), "model m {\n    param w = 2\n    loss = (w - 1)^2\n}\n")
    proc = run(nnc, ["m.nn", "--emit=nope"], tmp, want_status=2)
    expect_in(proc.stderr_text, "unknown --emit stage 'nope' (" + ", ".join(want) + ")",
              "an unknown --emit kind")
    for kind in want[:-1]:  # svg needs Graphviz
        proc = run(nnc, ["m.nn", "--emit=" + kind], tmp)
        if not proc.stdout_text:
            raise Failure(f"--emit={kind} printed nothing")


def expect_stderr(proc, wanted, what):
    if proc.stderr_text != wanted:
        raise Failure(f"{what}:\n  wanted stderr {wanted!r}\n  got           {proc.stderr_text!r}")


def case_flags(nnc, src, tmp):
    """Every option with a value takes it as --opt=VALUE or --opt VALUE; a misspelt option, or
    a value that is none of the few it takes, gets the nearest as a hint (read from the
    driver's tables, so a new option or emit kind is offered too)."""
    write(os.path.join(tmp, "m.nn"), "model m {\n    param w = 2\n    param bias = 1\n"
          "    loss = (w - bias)^2\n}\n")
    for spaced, joined in [(["--emit", "grad"], ["--emit=grad"]),
                           (["--emit", "ir", "--steps", "all"], ["--emit=ir", "--steps=all"]),
                           (["explain", "--format", "markdown", "--wrt", "w"],
                            ["explain", "--format=markdown", "--wrt=w"])]:
        words = [a for a in spaced if a == "explain"]
        a = run(nnc, words + ["m.nn"] + [x for x in spaced if x != "explain"], tmp).stdout_text
        b = run(nnc, words + ["m.nn"] + [x for x in joined if x != "explain"], tmp).stdout_text
        if a != b or not a:
            raise Failure(f"{' '.join(spaced)} and {' '.join(joined)} printed differently:\n"
                          f"{a}\n---\n{b}")
    usage = "(run nnc --help for usage)\n"
    cases = [
        (["m.nn", "--emit", "gard"], "nnc: error: unknown --emit stage 'gard' (ast, ir, grad, "
         "grad-raw, grad-diff, plan, llvm, dot, svg)\n  hint: did you mean grad?\n"),
        (["m.nn", "--emti=grad"], "nnc: error: unknown option --emti\n"
         "  hint: did you mean --emit?\n"),
        (["m.nn", "--dump_passes"], "nnc: error: unknown option --dump_passes\n"
         "  hint: did you mean --dump-passes?\n"),
        (["m.nn", "--frobnicate"], "nnc: error: unknown option --frobnicate\n"),
        (["m.nn", "--wrt", "w"], "nnc: error: --wrt is an option of nnc explain, not of nnc\n"),
        (["m.nn", "--model", ""], "nnc: error: --model needs a model's name, got ''\n"),
        (["gradcheck", "m.nn", "-o", "g.txt"], "nnc: error: -o is an option of nnc, not of nnc "
         "gradcheck\n"),
        (["explain", "m.nn", "--format", "markdwn"], "nnc: error: --format takes text or "
         "markdown, got markdwn\n  hint: did you mean markdown?\n"),
        (["m.nn", "--steps", "al"], "nnc: error: --steps takes all, got al\n"
         "  hint: did you mean all?\n"),
        (["m.nn", "-c=1"], "nnc: error: -c takes no value\n"),
        (["explian", "m.nn"], "nnc: error: one model file at a time (got a second: m.nn)\n"
         "  hint: did you mean explain?\n"),
        # an option that would change nothing is an error, whichever order
        (["m.nn", "--emit=ir", "-c"], "nnc: error: -c writes an object file and --emit prints "
         "a stage: give one of them\n"),
        (["m.nn", "-c", "--emit=ir"], "nnc: error: -c writes an object file and --emit prints "
         "a stage: give one of them\n"),
        (["m.nn", "-c", "--static"], "nnc: error: --static links the executable, which -c "
         "does not write\n"),
        (["m.nn", "--emit=plan", "--mpi"], "nnc: error: --mpi links the executable with MPI, "
         "which --emit does not write\n"),
        (["m.nn", "--steps", "all"], "nnc: error: --steps all is for --emit=ir, grad, grad-raw "
         "and grad-diff, and --dump-passes\n"),
        (["m.nn", "--emit=plan", "--steps", "all"], "nnc: error: --steps all is for --emit=ir, "
         "grad, grad-raw and grad-diff, and --dump-passes\n"),
    ]
    for args, wanted in cases:
        expect_stderr(run(nnc, args, tmp, want_status=2), wanted + usage, " ".join(args))
    proc = run(nnc, ["explain", "m.nn", "--wrt", "bias_", "-o", "e.txt"], tmp, want_status=1)
    expect_stderr(proc, "nnc: error: model m has no param 'bias_' (its params: w, bias)\n"
                  "  hint: did you mean bias?\n", "explain --wrt bias_")
    if os.path.exists(os.path.join(tmp, "e.txt")):
        raise Failure("explain -o e.txt wrote the file of a run that failed")
    # explain -o writes what it would print (it once printed it and ignored -o)
    printed = run(nnc, ["explain", "m.nn"], tmp).stdout_text
    proc = run(nnc, ["explain", "m.nn", "-o", "e.txt"], tmp)
    with open(os.path.join(tmp, "e.txt"), encoding="utf-8") as f:
        written = f.read()
    if proc.stdout_text or written != printed or "w" not in written:
        raise Failure(f"explain -o e.txt: stdout {proc.stdout_text!r}, file {written!r}, "
                      f"printed {printed!r}")


def case_models(nnc, src, tmp):
    """A file of several models: the error names them, and a --model that is none of them
    gets the nearest (or the list)."""
    write(os.path.join(tmp, "two.nn"), "model small {\n    param w = 1\n    loss = w^2\n}\n"
          "model large {\n    param w = 1\n    loss = w^4\n}\n")
    top = "  model small {\n  ^\n"
    proc = run(nnc, ["two.nn"], tmp, want_status=1)
    expect_stderr(proc, "two.nn:1:1: error: this file defines 2 models (small and large); "
                  "choose one with --model NAME\n" + top, "two models")
    proc = run(nnc, ["two.nn", "--model", "smal"], tmp, want_status=1)
    expect_stderr(proc, "two.nn:1:1: error: there is no model named smal in this file\n" + top +
                  "  hint: did you mean small?\n", "--model smal")
    proc = run(nnc, ["two.nn", "--model=tiny"], tmp, want_status=1)
    expect_stderr(proc, "two.nn:1:1: error: there is no model named tiny in this file\n" + top +
                  "  hint: its models are: small and large\n", "--model tiny")
    run(nnc, ["two.nn", "--model", "large", "--emit", "ir"], tmp)


def main():
    nnc, src, case = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            globals()["case_" + case](nnc, src, tmp)
        except Skipped as e:
            print(f"skipped {case}: {e}")
            return SKIP
        except Failure as e:
            print(f"FAIL {case}: {e}")
            print("0 passed, 1 failed")
            return 1
    print(f"ok {case}")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
