#!/usr/bin/env python3
"""The compiler stays linear: programs of size N and 4N cost at most about 4 times as much.

usage: scaling.py NNC CASE

Each case generates two programs of one shape, of sizes N and 4N, compiles both, and compares
what each run cost, counted rather than timed:
  - bytes: the compiler's peak resident memory that is not file pages (peak_anon_bytes, which
    leaves out libLLVM's pages: how many of those are mapped depends on the page cache and
    moved a run by 5 MB), less that of a run on a tiny program with the same options; and
    the compiler's own arena bytes;
  - work: the counters NNC_STATS=1 makes nnc print (docs/architecture.md): tokens, syntax
    tree nodes, expressions lowered, IR values, hash table probes, memory plan tree visits,
    LLVM instructions generated, and the size of the largest fused loop; and the bytes of
    diagnostics it printed.
Every 4N/N ratio must stay below RATIO. User CPU time is printed for people, not checked.
"""
import os
import re
import sys
import tempfile

RATIO = 6.0
# Below these a measure is noise, not growth (a few pages, a handful of probes). The peak memory
# moves in steps of 2 MB where the kernel backs the heap with transparent huge pages, so its
# slack allows a few such steps beyond one_line_error's 4 MB source read whole.
SLACK = {"anon_growth": 12 << 20, "arena_bytes": 2 << 20}
SLACK_COUNT = 64


class Failure(Exception):
    pass


def chain(n):
    """n bindings, each using the one before: the front end's and autodiff's straight line."""
    lines = ["model m {", "    input x[4]", "    param w[4] = 0.5", "    h0 = x * w"]
    lines += [f"    h{i} = h{i - 1} + w" for i in range(1, n)]
    lines += [f"    loss = sum(h{n - 1})", "}"]
    return "\n".join(lines) + "\n", ["-c", "-o", "/dev/null"]


def many_fns(n):
    """n fns: names to check for duplicates and to look up."""
    lines = [f"fn f{i}(x) {{\n    return x + {i}\n}}" for i in range(n)]
    lines.append("model m {\n    param w = 1\n    loss = f0(w) * f%d(w)\n}" % (n - 1))
    return "\n".join(lines) + "\n", ["--emit=ir", "-o", "/dev/null"]


def call_tree(n):
    """Each fn calls the next twice, about log2(n) deep: n calls inlined, bounded depth."""
    depth = max(1, round(n).bit_length() - 1)
    lines = [f"fn f{i}(x) {{\n    t = f{i + 1}(x) * 0.5\n    return t + f{i + 1}(x)\n}}"
             for i in range(depth)]
    lines.append(f"fn f{depth}(x) {{\n    return tanh(x)\n}}")
    lines.append("model m {\n    input x[3]\n    param w[3] = 0.5\n    loss = sum(f0(x * w))\n}")
    return "\n".join(lines) + "\n", ["--emit=grad", "-o", "/dev/null"]


def elementwise(n):
    """n elementwise operations on one shape: one fused loop before it was cut into pieces."""
    lines = ["model m {", "    input x[16]", "    param w[16] = 0.5", "    h0 = x * w"]
    for i in range(1, n):
        step = (f"tanh(h{i - 1}) * 0.9 + 0.1", f"h{i - 1} * h{i - 1} * 0.5",
                f"sigmoid(h{i - 1})")[i % 3]
        lines.append(f"    h{i} = {step}")
    lines += [f"    loss = sum(h{n - 1})", "}"]
    return "\n".join(lines) + "\n", ["-c", "-o", "/dev/null"]


def one_line(n):
    """A whole model on one line."""
    body = "; ".join(f"h{i} = h{i - 1} * w" for i in range(1, n))
    return ("model m { param w = 0.9; h0 = w; " + body + f"; loss = h{n - 1} }}\n",
            ["--emit=grad", "-o", "/dev/null"])


def one_line_error(n):
    """One line, a mistake at its start: the rest must cost nothing but reading it."""
    return ("model m { param w = 1; loss = w 2" + " + w" * n + " }\n",
            ["--emit=ir", "-o", "/dev/null"])


def flat_params(n):
    """n params, each behind its own flat function: n warnings, not n notes under each."""
    lines = ["model m {"] + [f"    param p{i} = 1" for i in range(n)]
    lines.append("    s0 = sign(p0)")
    lines += [f"    s{i} = s{i - 1} + sign(p{i})" for i in range(1, n)]
    lines += [f"    loss = s{n - 1} * s{n - 1}", "}"]
    return "\n".join(lines) + "\n", ["--emit=grad", "-o", "/dev/null"]


def explain_chain(n):
    """nnc explain on a chain of n bindings that all use one param: n lines, n terms in one."""
    text, _ = chain(n)
    return text, ["explain", "FILE"]


def explain_multiply(n):
    """nnc explain --multiply on the same chain: each value multiplied out once, and each
    expression capped in size (algebra.h), so the work and the text stay linear."""
    text, _ = chain(n)
    return text, ["explain", "FILE", "--multiply"]


def scan(n):
    """An LSTM layer over n steps: the same loops at every step, compiled once (see below)."""
    return ("import \"nn\"\nmodel m {\n    input x[%d, 4]\n    target y[3]\n"
            "    h = lstm(x, 8)\n    loss = sum((dense(h[-1], 3) - y) ^ 2)\n}\n" % n,
            ["-c", "-o", "/dev/null"])


def steps_share_code(small, big):
    """A scan's steps share their helper functions: from N to 4N steps the optimised module
    grows by less than the module LLVM is given (the calls of a step, not its loops again,
    each inlined and vectorised in every entry point: then it grew 4.5 times as much)."""
    grown = big["llvm_insts_optimised"] - small["llvm_insts_optimised"]
    given = big["llvm_insts"] - small["llvm_insts"]
    if grown < given:
        return None
    return (f"the optimised module grew by {grown} instructions, the generated one by "
            f"{given}: each step's loops were optimised again")


CASES = {  # shape, N: large enough that what grows is well above what every run costs
    "chain": (chain, 3000),
    "many_fns": (many_fns, 5000),
    "call_tree": (call_tree, 4096),
    "elementwise": (elementwise, 400),
    "one_line": (one_line, 6000),
    "one_line_error": (one_line_error, 250000),
    "flat_params": (flat_params, 2000),
    "explain_chain": (explain_chain, 2000),
    "explain_multiply": (explain_multiply, 2000),
    "scan": (scan, 32),
}
CHECKS = {"scan": steps_share_code}  # a further check of the two runs' counters

TINY = "model m {\n    input x[4]\n    param w[4] = 0.5\n    loss = sum(x * w)\n}\n"


def measure(nnc, path, args):
    """Runs nnc on path; returns (status, stderr, counters, user seconds)."""
    err_path = path + ".stderr"
    pid = os.fork()
    if pid == 0:
        fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 2)
        null = os.open("/dev/null", os.O_WRONLY)
        os.dup2(null, 1)
        os.environ["NNC_STATS"] = "1"
        argv = [path if a == "FILE" else a for a in args]
        if "FILE" not in args:
            argv = [path] + argv
        try:
            os.execv(nnc, [nnc] + argv)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    with open(err_path, encoding="utf-8", errors="replace") as f:
        stderr = f.read()
    m = re.search(r"^nnc: stats: (.*)$", stderr, re.M)
    if not m:
        raise Failure(f"nnc {path}: no stats line (exit status {status >> 8}):\n{stderr[:2000]}")
    counters = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    counters["stderr_bytes"] = len(stderr)  # diagnostics: one per mistake, not per pair
    return os.waitstatus_to_exitcode(status), stderr, counters, usage.ru_utime


def main():
    nnc, case = os.path.abspath(sys.argv[1]), sys.argv[2]
    shape, n = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        tiny = os.path.join(tmp, "tiny.nn")
        with open(tiny, "w") as f:
            f.write(TINY)
        for size in (n, 4 * n):
            text, args = shape(size)
            path = os.path.join(tmp, f"{case}_{size}.nn")
            with open(path, "w") as f:
                f.write(text)
            status, stderr, counters, user = measure(nnc, path, args)
            want = 1 if case == "one_line_error" else 0
            if status != want:
                print(f"FAIL {case}: nnc on {len(text)} bytes: exit status {status}, wanted "
                      f"{want}\n{stderr[:3000]}")
                return 1
            _, _, base, _ = measure(nnc, tiny, args)
            counters["anon_growth"] = max(0, counters["peak_anon_bytes"] - base["peak_anon_bytes"])
            del counters["peak_anon_bytes"]
            runs[size] = (counters, user, len(text))
        small, big = runs[n][0], runs[4 * n][0]
        print(f"{case}: N = {n} ({runs[n][2]} bytes of source), 4N ({runs[4 * n][2]} bytes); "
              f"user CPU {runs[n][1]:.2f} s and {runs[4 * n][1]:.2f} s")
        failed = []
        for key in small:
            slack = SLACK.get(key, SLACK_COUNT)
            ratio = big[key] / small[key] if small[key] else float("inf") if big[key] else 1.0
            ok = big[key] <= RATIO * small[key] + slack
            print(f"  {key:14} {small[key]:>12} {big[key]:>12}   x{ratio:.2f}{'' if ok else '  TOO MUCH'}")
            if not ok:
                failed.append(key)
        if failed:
            print(f"FAIL {case}: grew more than {RATIO} times from N to 4N: {', '.join(failed)}")
            return 1
        problem = CHECKS[case](small, big) if case in CHECKS else None
        if problem:
            print(f"FAIL {case}: {problem}")
            return 1
    print(f"ok {case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
