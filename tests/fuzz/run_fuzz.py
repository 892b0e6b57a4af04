#!/usr/bin/env python3
"""Runs a fuzz target on its seeds: once each (replay), or fuzzing for a bounded time.

    run_fuzz.py --target build/fuzz_csv --seeds tests/fuzz/corpus/csv
                --seeds tests/fuzz/regressions/csv --work DIR [--open-bugs FILE]
                [--dict FILE] [--seconds 30] [--rss-mb 2048] [--timeout 30] [--seed 1]
    run_fuzz.py --replay --target build/tests/fuzz/fuzz_replay_csv --seeds ... [--open-bugs FILE]

Fuzzing: the seeds are copied into DIR/corpus (emptied first), which libFuzzer also grows
with the inputs it finds: the source tree is never written. Crashes, leaks, timeouts and
out-of-memory inputs land in DIR/ as crash-*, leak-*, timeout-*, oom-*, and fail the test,
which prints how to rerun the input and to keep it as a regression seed.

Except the bugs of --open-bugs (open_bugs.txt): found, with their reproducer in
regressions/, but not fixed yet. Their reproducers are left out of the seeds (and of the
replay), and an input whose report matches one of them goes to DIR/open/ while fuzzing goes
on for the rest of the time: a bug that is known does not fail the run, a new one does.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time

FINDINGS = ("crash", "leak", "timeout", "oom")
MAX_RESTARTS = 20
HERE = os.path.dirname(os.path.abspath(__file__))


def read_open_bugs(path, target):
    """(reproducer path, regex) of each open bug of target: lines 'TARGET REPRODUCER REGEX',
    the reproducer relative to this folder."""
    bugs = []
    if not path:
        return bugs
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, reproducer, regex = line.split(None, 2)
            if name == target:
                bugs.append((os.path.join(HERE, reproducer), re.compile(regex, re.M)))
    return bugs


def seed_files(folders, open_bugs):
    skip = {os.path.realpath(b[0]) for b in open_bugs}
    files = []
    for folder in folders:
        for path in sorted(glob.glob(os.path.join(folder, "*"))):
            if os.path.isfile(path) and os.path.realpath(path) not in skip:
                files.append(path)
    return files


def findings(work):
    return sorted(p for p in glob.glob(os.path.join(work, "*-*"))
                  if os.path.basename(p).split("-")[0] in FINDINGS)


def replay(args, files):
    proc = subprocess.run([args.target] + files)
    print(f"{os.path.basename(args.target)}: {len(files)} seeds, "
          + ("each ran" if proc.returncode == 0 else f"exit status {proc.returncode}"))
    return 0 if proc.returncode == 0 else 1


def fuzz(args, files, open_bugs):
    name = os.path.basename(args.target)
    work = os.path.abspath(args.work)
    shutil.rmtree(work, ignore_errors=True)
    corpus = os.path.join(work, "corpus")
    os.makedirs(corpus)
    for path in files:
        shutil.copy(path, corpus)

    # Scratch files of the target (fuzz_nnc's) stay in DIR, even when a crash ends it.
    env = dict(os.environ, TMPDIR=work)
    deadline = time.monotonic() + args.seconds
    known = 0
    for run in range(MAX_RESTARTS + 1):
        seconds = max(1, round(deadline - time.monotonic()))
        cmd = [args.target, f"-max_total_time={seconds}", f"-rss_limit_mb={args.rss_mb}",
               f"-timeout={args.timeout}", f"-seed={args.seed + run}", "-close_fd_mask=3",
               "-print_final_stats=1", f"-artifact_prefix={work}/"]
        if args.dict:
            cmd.append(f"-dict={args.dict}")
        cmd.append(corpus)
        print("$ " + " ".join(cmd), flush=True)
        log = os.path.join(work, f"fuzz-{run}.log")
        with open(log, "w") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        with open(log, errors="replace") as f:
            report = f.read()
        found = findings(work)
        if proc.returncode == 0 and not found:
            print("\n".join(l for l in report.splitlines() if l.startswith("stat::")))
            print(f"{name}: {len(files)} seeds, no new crash, leak, timeout or out-of-memory "
                  f"in {args.seconds} s ({known} inputs showed open bugs)")
            return 0
        bug = next((b for b in open_bugs if b[1].search(report)), None)
        if not found or not bug:
            return failure(args.target, proc.returncode, report, log, found)
        os.makedirs(os.path.join(work, "open"), exist_ok=True)
        for p in found:
            shutil.move(p, os.path.join(work, "open", os.path.basename(p)))
        known += 1
        print(f"{name}: an input showed the open bug of {os.path.relpath(bug[0], HERE)} "
              "(open_bugs.txt); fuzzing on", flush=True)
        if time.monotonic() >= deadline:
            break
    print(f"{name}: {len(files)} seeds, only open bugs found in {args.seconds} s "
          f"({known} inputs)")
    return 0


def failure(target, status, report, log, found):
    print("\n".join(report.splitlines()[-80:]))
    print(f"\nFAIL: {target} exited with status {status}; the whole log is {log}")
    for p in found:
        print(f"  input: {p}\n  rerun: {target} {p}")
    print("  keep it as a regression seed: see tests/fuzz/README.md")
    return 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--seeds", required=True, action="append", help="a folder of seeds")
    ap.add_argument("--replay", action="store_true")
    ap.add_argument("--work")
    ap.add_argument("--dict")
    ap.add_argument("--open-bugs")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rss-mb", type=int, default=2048)
    ap.add_argument("--timeout", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    name = os.path.basename(args.target)
    name = name[len("fuzz_replay_"):] if args.replay else name[len("fuzz_"):]
    open_bugs = read_open_bugs(args.open_bugs, name)
    files = seed_files(args.seeds, open_bugs)
    if not files:
        print(f"no seeds in {', '.join(args.seeds)}")
        return 1
    if args.replay:
        return replay(args, files)
    if not args.work:
        ap.error("--work is needed to fuzz")
    return fuzz(args, files, open_bugs)


if __name__ == "__main__":
    sys.exit(main())
