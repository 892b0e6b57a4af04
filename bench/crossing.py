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

# Rounds whose round trips lie this many times apart or more (sorted, neighbour to neighbour)
# are in different modes. The modes seen here were 2-5 times apart (bench/README.md: on a
# Zen 4 105-131 ns and 515-603 ns, once 47 ns; on a Zen 5 290-470 ns and 870-1160 ns), the
# rounds of one mode within 1.5 times of each other.
MODE_GAP = 2


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
    """Prints the median of the rounds' ratios over the rounds of each mode, the modes told
    apart by the round trip read just before each round (a round's mode can still change
    while it runs)."""
    rounds = sorted((t, r) for t, r in zip(trips, ratios) if t is not None)
    if not rounds:
        return
    modes = [[rounds[0]]]
    for prev, cur in zip(rounds, rounds[1:]):
        if cur[0] >= MODE_GAP * prev[0]:
            modes.append([])
        modes[-1].append(cur)
    parts = []
    for mode in modes:
        r = [ratio for _, ratio in mode]
        parts.append(f"round trip {mode[0][0]}-{mode[-1][0]} ns: {len(r)} "
                     f"round{'s' if len(r) != 1 else ''}, median {statistics.median(r):.2f} "
                     f"({min(r):.2f} to {max(r):.2f})")
    print(f"  {label} by the host's mode: " + "; ".join(parts))
