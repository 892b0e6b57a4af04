#!/usr/bin/env python3
"""ThreadSanitizer on `train --workers 2`: the threads of the team's step share worker 0's
arenas and its ctx, and TSan must see no race at all (no suppressions).

usage: tsan_workers.py NNC CC LIBNNRT_TSAN

A small MLP compiled by nnc is linked with libnnrt built with -fsanitize=thread (the model's
code and OpenBLAS are not instrumented; the runtime's handing out of tasks, its copies of
worker 0's ctx, its gathers and its update by parts are). It trains with plain sgd (the
fused sgd_step_team, its params in column blocks) and with adam (grad_team, then the update
by parts), many short steps so that a thread often wakes after its step is over, and must
learn in both.
"""
import os
import re
import subprocess
import sys
import tempfile

from tsan_hogwild import MODEL, blobs


def fail(message):
    print(f"FAIL tsan.workers: {message}")
    sys.exit(1)


def main():
    nnc, cc, lib = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as tmp:
        # 64 hidden units: h.W's GEMMs are cut by its columns, 32 a thread, and plain sgd's
        # team keeps h.W and its momentum buffer in column blocks (workers.c).
        wide = MODEL.replace("dense(x, 16)", "dense(x, 64)")
        if wide == MODEL:
            fail("tsan_hogwild.MODEL changed: no dense(x, 16) to widen")
        with open(os.path.join(tmp, "blobs.nn"), "w") as f:
            f.write(wide)
        with open(os.path.join(tmp, "blobs.csv"), "w") as f:
            f.write(blobs(n=1200))
        subprocess.run([nnc, "blobs.nn", "-c", "-o", "blobs.o"], cwd=tmp, check=True)
        extra = ["-lmvec"] if os.uname().machine == "x86_64" else []
        subprocess.run([cc, "-fsanitize=thread", "blobs.o", lib, "-lz", "-lopenblas", *extra,
                        "-lm", "-o", "blobs"], cwd=tmp, check=True)
        env = dict(os.environ, TSAN_OPTIONS="halt_on_error=0 exitcode=66")
        for optimizer, lr in (("sgd", "0.1"), ("adam", "0.01")):
            r = subprocess.run(["./blobs", "train", "--workers", "2", "--optimizer", optimizer,
                                "--lr", lr, "--epochs", "6", "--quiet", "--no-save"],
                               cwd=tmp, env=env, capture_output=True, text=True, timeout=240)
            if r.returncode != 0 or "WARNING: ThreadSanitizer" in r.stderr:
                fail(f"{optimizer}: exit {r.returncode}\n{r.stderr[-6000:]}")
            acc = re.search(r"^validation accuracy (\S+)$", r.stdout, re.M)
            if not acc or float(acc.group(1)) < 0.9:
                fail(f"{optimizer}: the model did not learn:\n{r.stdout}")
    print("ok tsan.workers: no race with sgd's or adam's team step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
