"""What the PyTorch peers of bench/ share: one thread, the common options, and the timing of a
training step as bench_main.c times nnc's (warm-up, K steps that take about --seconds, the
median of --repeats timed runs of K steps)."""
import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def options(lr, description=None):
    """The options every peer takes: --repeats, --seconds, --lr (default lr)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--lr", type=float, default=lr)
    return ap


def time_step(step, per_step, repeats, seconds, warmup=3):
    """Calls step() warmup times, then chooses K (at least 5) so that K steps take about
    seconds, then times repeats runs of K steps: returns (K, the rates, per_step items a
    step: samples or tokens per second)."""
    for _ in range(warmup):
        step()
    t0, k = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        step()
        k += 1
    k = max(k, 5)
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(k):
            step()
        runs.append(per_step * k / (time.perf_counter() - t0))
    return k, runs


def report(what, unit, k, runs):
    """One line, as bench_main's headline: 'W5 ...: PyTorch 1.13 eager 1.15k samples/s ...'."""
    import torch
    print(f"{what}: PyTorch {torch.__version__} eager {statistics.median(runs) / 1e3:.2f}k "
          f"{unit}/s (median of {len(runs)}, {k} steps each; runs: "
          + " ".join(f"{r / 1e3:.2f}k" for r in runs) + ")")
