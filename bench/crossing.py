"""crossing.py: what two cores cost each other at this moment, as bench_crossing (crossing.c)
measures it: a cache line's round trip between two pinned threads, 400 KB handed both ways,
and W2's first GEMM whole on one core against its halves on both cores at once (the most a
two-core split of GEMMs can gain). On some hosts these move by minutes, and with them every
two-core ratio, so workers.py, hogwild.py and mpi.py print them before each round. Python 3
standard library only."""
import os
import re
import statistics
import subprocess

# A round is in the slow mode when the round trip read before it was this many times the run's
# shortest. The modes seen here were 2-5 times apart (bench/README.md: on a Zen 4 105-131 ns
# and 515-603 ns, on a Zen 5 290-470 ns and 870-1160 ns), the rounds of one mode within 1.5
# times of each other.
SLOW_MODE_TIMES = 2


def figures(build):
    """bench_crossing's lines joined into one, or None when the build has not got it."""
    exe = os.path.join(build, "bench", "bench_crossing")
    if not os.access(exe, os.X_OK):
        return None
    out = subprocess.run([exe], capture_output=True, text=True).stdout
    return "; ".join(out.splitlines()[:3])


def report(build, round_number):
    """Prints 'round N: <figures>' before a round, when the build has bench_crossing; returns
    the round trip in ns, or None without it."""
    moment = figures(build)
    if not moment:
        return None
    print(f"round {round_number}: {moment}", flush=True)
    trip = re.search(r"round trip (\d+) ns", moment)
    return int(trip.group(1)) if trip else None


def by_mode(label, ratios, trips):
    """Prints the median of the rounds' ratios over the rounds in each mode, as the round trip
    read just before each round tells it (a round's mode can still change while it runs)."""
    known = [t for t in trips if t is not None]
    if not known:
        return
    slow_from = SLOW_MODE_TIMES * min(known)
    modes = {"fast": [], "slow": []}
    for ratio, trip in zip(ratios, trips):
        if trip is not None:
            modes["slow" if trip >= slow_from else "fast"].append(ratio)
    parts = [f"{len(r)} round{'s' if len(r) != 1 else ''} in the {mode} mode, median "
             f"{statistics.median(r):.2f} ({min(r):.2f} to {max(r):.2f})"
             for mode, r in modes.items() if r]
    print(f"  {label} by mode (slow: a round trip of {slow_from} ns or more before the round): "
          + "; ".join(parts))
