#!/usr/bin/env python3
"""ThreadSanitizer on `train --hogwild 2`: the only races are the intended ones.

usage: tsan_hogwild.py NNC CC LIBNNRT_TSAN SUPPRESSIONS

A small MLP compiled by nnc is linked with libnnrt built with -fsanitize=thread (the model's
code and OpenBLAS are not instrumented; runtime/hogwild.c reports each step's accesses to the
shared params to TSan itself). Without the suppressions every report must be the params' race
(in mirror_param_access), and there must be some: the race is real and TSan sees it. With
them (tests/tsan/hogwild.supp) the run must be clean, with that suppression matched, and the
model must still learn.
"""
import os
import random
import re
import subprocess
import sys
import tempfile

MODEL = """import "nn"

model blobs {
    input  x[4]
    target y[3]
    h      = tanh(dense(x, 16))
    output z = dense(h, 3)
    loss   = softmax_cross_entropy(z, y)
}

train blobs {
    data       = csv("blobs.csv", x = 0..3, y = 4)
    optimizer  = sgd(lr = 0.1, momentum = 0.9)
    batch      = 8
    epochs     = 4
    validation = 0.2
}
"""


def fail(message):
    print(f"FAIL tsan.hogwild: {message}")
    sys.exit(1)


def blobs(n=400, seed=5):
    """Three well separated classes of 4 inputs; the class index is the last column."""
    r = random.Random(seed)
    centres = [[2, 0, 0, 1], [0, 2, 1, 0], [-2, -1, 0, 2]]
    rows = []
    for i in range(n):
        c = i % 3
        rows.append(",".join(f"{v + r.gauss(0, 0.5):.4f}" for v in centres[c]) + f",{c}")
    return "\n".join(rows) + "\n"


def train(tmp, options):
    env = dict(os.environ, TSAN_OPTIONS=options)
    return subprocess.run(["./blobs", "train", "--hogwild", "2", "--quiet", "--no-save"],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=240)


def main():
    nnc, cc, lib, supp = sys.argv[1:5]
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "blobs.nn"), "w") as f:
            f.write(MODEL)
        with open(os.path.join(tmp, "blobs.csv"), "w") as f:
            f.write(blobs())
        subprocess.run([nnc, "blobs.nn", "-c", "-o", "blobs.o"], cwd=tmp, check=True)
        extra = ["-lmvec"] if os.uname().machine == "x86_64" else []
        subprocess.run([cc, "-fsanitize=thread", "blobs.o", lib, "-lz", "-lopenblas", *extra,
                        "-lm", "-o", "blobs"], cwd=tmp, check=True)

        raw = train(tmp, "halt_on_error=0 exitcode=66")
        summaries = re.findall(r"^SUMMARY: ThreadSanitizer: (.*)$", raw.stderr, re.M)
        if raw.returncode != 66 or not summaries:
            fail(f"without suppressions, TSan saw no race on the params (exit "
                 f"{raw.returncode}):\n{raw.stderr[-3000:]}")
        others = [s for s in summaries if "mirror_param_access" not in s]
        if others:
            fail(f"races other than the params' ({len(others)} of {len(summaries)}):\n"
                 f"{raw.stderr[-6000:]}")

        clean = train(tmp, f"halt_on_error=0 exitcode=66 print_suppressions=1 suppressions={supp}")
        if clean.returncode != 0 or "WARNING: ThreadSanitizer" in clean.stderr:
            fail(f"with {supp}: exit {clean.returncode}\n{clean.stderr[-6000:]}")
        matched = re.search(r"^\s*(\d+)\s+race:mirror_param_access\s*$", clean.stderr, re.M)
        if not matched or int(matched.group(1)) < 1:
            fail(f"the suppression of the params' race was never matched:\n{clean.stderr}")
        acc = re.search(r"^validation accuracy (\S+)$", clean.stdout, re.M)
        if not acc or float(acc.group(1)) < 0.9:
            fail(f"the model did not learn:\n{clean.stdout}")
    print(f"ok tsan.hogwild: {len(summaries)} reports on the params without the suppressions, "
          f"none with them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
