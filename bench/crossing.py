"""crossing.py: what two cores cost each other at this moment, as bench_crossing (crossing.c)
measures it: a cache line's round trip between two pinned threads, 400 KB handed both ways,
and W2's first GEMM whole on one core against its halves on both cores at once (the most a
two-core split of GEMMs can gain). On some hosts these move by minutes, and with them every
two-core ratio, so workers.py, hogwild.py and mpi.py print them before each round. Python 3
standard library only."""
import os
import subprocess


def figures(build):
    """bench_crossing's lines joined into one, or None when the build has not got it."""
    exe = os.path.join(build, "bench", "bench_crossing")
    if not os.access(exe, os.X_OK):
        return None
    out = subprocess.run([exe], capture_output=True, text=True).stdout
    return "; ".join(out.splitlines()[:3])


def report(build, round_number):
    """Prints 'round N: <figures>' before a round, when the build has bench_crossing."""
    moment = figures(build)
    if moment:
        print(f"round {round_number}: {moment}", flush=True)
