#!/usr/bin/env python3
"""Runs one fuzz target for a bounded time on a copy of its seed corpus (ctest label fuzz).

    run_fuzz.py --target build/fuzz_csv --corpus tests/fuzz/corpus/csv --work DIR
                [--dict FILE] [--seconds 30] [--rss-mb 2048] [--timeout 30] [--seed 1]

The seeds are copied into DIR/corpus (emptied first), which libFuzzer also grows with the
inputs it finds: the source tree is never written. Crashes, leaks, timeouts and
out-of-memory inputs land in DIR/ as crash-*, leak-*, timeout-*, oom-*; the test fails
then, and prints how to rerun the input and to keep it as a regression seed.
A fixed --seed makes a failure repeatable on the same build.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--corpus", required=True, action="append")
    ap.add_argument("--work", required=True)
    ap.add_argument("--dict")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rss-mb", type=int, default=2048)
    ap.add_argument("--timeout", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    shutil.rmtree(args.work, ignore_errors=True)
    corpus = os.path.join(args.work, "corpus")
    os.makedirs(corpus)
    seeds = 0
    for folder in args.corpus:
        for path in sorted(glob.glob(os.path.join(folder, "*"))):
            if os.path.isfile(path):
                shutil.copy(path, corpus)
                seeds += 1
    if seeds == 0:
        print(f"no seeds in {', '.join(args.corpus)}")
        return 1

    cmd = [args.target, f"-max_total_time={args.seconds}", f"-rss_limit_mb={args.rss_mb}",
           f"-timeout={args.timeout}", f"-seed={args.seed}", "-close_fd_mask=3",
           "-print_final_stats=1", f"-artifact_prefix={args.work}/"]
    if args.dict:
        cmd.append(f"-dict={args.dict}")
    cmd.append(corpus)
    print("$ " + " ".join(cmd), flush=True)
    log = os.path.join(args.work, "fuzz.log")
    # Scratch files of the target (fuzz_nnc's) stay in DIR, even when a crash ends it.
    env = dict(os.environ, TMPDIR=os.path.abspath(args.work))
    with open(log, "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()

    found = sorted(glob.glob(os.path.join(args.work, "*-*")))
    found = [p for p in found if os.path.basename(p).split("-")[0]
             in ("crash", "leak", "timeout", "oom", "slow-unit")]
    stats = [l for l in lines if l.startswith("stat::") or "DONE" in l]
    print("\n".join(stats))
    if proc.returncode == 0 and not found:
        print(f"{os.path.basename(args.target)}: {seeds} seeds, no crash, leak, timeout or "
              f"out-of-memory in {args.seconds} s")
        return 0
    print("\n".join(lines[-80:]))
    print(f"\nFAIL: {args.target} exited with status {proc.returncode}; the whole log is {log}")
    for p in found:
        print(f"  input: {p}\n  rerun: {args.target} {p}")
    print("  keep it as a regression seed: see tests/fuzz/README.md")
    return 1


if __name__ == "__main__":
    sys.exit(main())
