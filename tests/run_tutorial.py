#!/usr/bin/env python3
"""docs/tutorial.md quotes real output; this re-runs every quoted command and compares.

usage: run_tutorial.py NNC SOURCE_DIR [--update]

A quoted block is an HTML comment naming a shell command, then (after blank lines, if any)
a fenced code block holding what the command printed:

    <!-- run: nnc explain examples/lessons/perceptron.nn --wrt w -->
    ```text
    ...
    ```

Every command runs with bash, in order, in one fresh temporary folder (so a block may use
an executable that an earlier block compiled), where `examples` and `stdlib` link to the
source tree's folders and `nnc` on the PATH is the compiler under test. Paths into the
source tree or the scratch folder that a command prints (an executable names the absolute
path of its data) are written relative, as `examples/...`. A block holds the
command's standard output and standard error together, as one stream; add `2>/dev/null`
or `--quiet` to a command to keep its stderr out. The warning of more threads than CPUs (a
machine of one CPU, with --workers 2) is left out. The exit status is not checked: a
command that fails differently prints differently.

Numbers in scientific notation below 1e-6 compare as equal (round-off differs between
machines). The quotes were printed with OpenBLAS's SkylakeX (AVX-512) kernels, which an
executable takes on any CPU with AVX-512 (docs/runtime.md, "BLAS kernels"); the commands run
with OPENBLAS_CORETYPE=SkylakeX there, whatever the environment says, since other kernels
round otherwise and a lesson's deep network amplifies that. On a CPU without AVX-512 the
variable is left out and numbers are not compared, only the text around them. Without --update, any block that differs from what its command prints now is
reported as a unified diff and the exit status is 1. With --update, the blocks are rewritten in place
(docs/tutorial.md) with what the commands print now.
Python 3 standard library only.
"""
import difflib
import os
import re
import subprocess
import sys
import tempfile

from e2e import without_cpu_warning  # a machine of one CPU warns that --workers 2 take turns

# The comment, then optional blank lines, then a fence (``` or ```text ...) and its body.
BLOCK = re.compile(
    r"^<!-- run: (?P<cmd>.+?) -->\n(?:[ \t]*\n)*"
    r"(?P<open>```[^\n]*\n)(?P<body>.*?)(?P<close>^```[ \t]*$)",
    re.M | re.S)


# Round-off: gradcheck's errors (1e-12, say) differ in their last digits between CPUs and
# LLVM versions. Below 1e-6 a number counts as "about zero" when blocks are compared; the
# tutorial still quotes the digits one machine printed.
TINY = re.compile(r"\b\d(?:\.\d+)?e-(?:0?[7-9]|[1-9]\d)\b")


NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
AVX512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl"}


def comparable(text, numbers):
    return TINY.sub("~0", text) if numbers else NUMBER.sub("#", text)


def with_quoted_kernels(env):
    """env with the kernels the quotes were printed with, where the CPU has them; returns
    whether it does (then numbers are compared)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(re.search(r"^flags\s*:(.*)$", f.read(), re.M).group(1).split())
    except (OSError, AttributeError):
        flags = set()
    if AVX512 <= flags:
        env["OPENBLAS_CORETYPE"] = "SkylakeX"
        return True
    env.pop("OPENBLAS_CORETYPE", None)
    return False


def run(cmd, cwd, env, src):
    proc = subprocess.run(["bash", "-c", cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)
    out = without_cpu_warning(proc.stdout)
    relative = {os.path.realpath(os.path.join(src, name)) + os.sep: name + os.sep
                for name in ("examples", "stdlib")}
    for folder in (cwd, os.path.realpath(cwd), src, os.path.realpath(src)):
        relative.setdefault(folder + os.sep, "")
    for folder in sorted(relative, key=len, reverse=True):
        out = out.replace(folder, relative[folder])
    return out


def main(argv):
    args = [a for a in argv[1:] if a != "--update"]
    update = len(args) != len(argv) - 1
    if len(args) != 2:
        print("usage: run_tutorial.py NNC SOURCE_DIR [--update]", file=sys.stderr)
        return 2
    nnc, src = os.path.abspath(args[0]), os.path.abspath(args[1])
    doc = os.path.join(src, "docs", "tutorial.md")
    with open(doc) as f:
        text = f.read()
    blocks = list(BLOCK.finditer(text))
    if not blocks:
        print(f"{doc}: no '<!-- run: ... -->' blocks")
        return 1

    with tempfile.TemporaryDirectory() as tmp:
        bindir = os.path.join(tmp, ".bin")
        os.mkdir(bindir)
        os.symlink(nnc, os.path.join(bindir, "nnc"))
        for name in ("examples", "stdlib"):
            os.symlink(os.path.join(src, name), os.path.join(tmp, name))
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
                   LC_ALL="C")
        numbers = with_quoted_kernels(env)
        if not numbers:
            print("no AVX-512 here: the numbers in the blocks are not compared")
        pieces, last, failed = [], 0, 0
        for m in blocks:
            got = run(m.group("cmd"), tmp, env, src)
            if got and not got.endswith("\n"):
                got += "\n"
            want = m.group("body")
            line = text.count("\n", 0, m.start()) + 1
            if comparable(got, numbers) != comparable(want, numbers):
                failed += 1
                if not update:
                    print(f"docs/tutorial.md:{line}: `{m.group('cmd')}` printed something else:")
                    sys.stdout.writelines(difflib.unified_diff(
                        want.splitlines(True), got.splitlines(True), "quoted", "printed now"))
                    print()
            pieces += [text[last:m.start("body")], got]
            last = m.end("body")
        pieces.append(text[last:])

    if update:
        new = "".join(pieces)
        if new != text:
            with open(doc, "w") as f:
                f.write(new)
        print(f"{len(blocks)} blocks, {failed} rewritten")
        return 0
    print(f"{len(blocks)} blocks, {len(blocks) - failed} as quoted, {failed} differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
