#!/usr/bin/env python3
"""Training across MPI ranks (docs/mpi.md): `nnc --mpi`, then `mpirun -np K ./model train`.

usage: mpi.py NNC MPIRUN CASE     (CASE not_built: mpi.py NNC - not_built)
Every case builds its model and data in a fresh temporary folder. The ranks run on this
machine (--oversubscribe: more ranks than cores is fine, the models are tiny). No case times
anything: the failure cases wait for the job with a bounded timeout and look at what it said.
"""
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time

import e2e
from e2e import Failure, read_weights, run_case


MPIRUN_FLAGS = ["--oversubscribe", "--allow-run-as-root"]

# Ctrl-C reaches the ranks as SIGTERM, and SIGKILL follows after this many seconds (default
# 1): room for the checkpoint on a loaded machine. mpirun waits that long whenever it ends a
# job, so only the case that interrupts one asks for it.
SIGKILL_LATER = ["--mca", "odls_base_sigkill_timeout", "5"]

# Bounded waits: a job that hangs fails the case instead of the suite.
TIMEOUT = 120

# Open MPI keeps memory until the process ends, in plugins it has unloaded by then, so
# LeakSanitizer (the ASan+UBSan build links the executables with it) reports every rank that
# called MPI_Init, with stacks in "<unknown module>" that no suppression can name. So the
# ranks started by mpirun run without leak checking (docs/mpi.md, "Sanitizers");
# AddressSanitizer and UBSan still check them, and every other command keeps it. Without
# sanitizers the variable is read by nobody.
JOB_ENV = dict(os.environ, ASAN_OPTIONS=":".join(
    part for part in [os.environ.get("ASAN_OPTIONS", ""), "detect_leaks=0"] if part))

MODEL = """import "nn"

model mlp {
    input  x[4]
    target y[3]
    h        = dropout(tanh(dense(x, 16)), 0.2)
    output z = dense(h, 3)
    loss     = softmax_cross_entropy(z, y)
}

train mlp {
    data      = csv("train.csv", x = 0..3, y = 4)
    optimizer = sgd(lr = 0.1, momentum = 0.9)
    batch     = 8
    epochs    = 3
    validation = 0.2
}
"""

BATCHNORM_MODEL = """import "nn"

model bn {
    input  x[4]
    target y[3]
    h        = relu(batchnorm(dense(x, 8)))
    output z = dense(h, 3)
    loss     = softmax_cross_entropy(z, y)
}

train bn {
    data      = csv("train.csv", x = 0..3, y = 4)
    optimizer = adam(lr = 0.01)
    batch     = 10
    epochs    = 2
}
"""


def env_of(cmd):
    """JOB_ENV for mpirun's command lines, else the environment as it is."""
    return JOB_ENV if os.path.basename(cmd[0]).startswith("mpi") else None


def run(cmd, cwd, want_status=0, stdin=None):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, input=stdin,
                          timeout=TIMEOUT, env=env_of(cmd))
    if want_status is not None and proc.returncode != want_status:
        raise Failure(f"{' '.join(cmd)}: exit status {proc.returncode}, wanted {want_status}\n"
                      f"--- stdout:\n{proc.stdout}--- stderr:\n{proc.stderr}")
    return proc


def write_data(path, rows, seed, bad_line=None):
    """rows of 4 numbers and a class 0..2; bad_line (1-based) holds a word instead."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(rows):
            x = [rng.uniform(-1, 1) for _ in range(4)]
            label = int(x[0] + x[1] > 0) + int(x[2] > 0.3)
            cells = [f"{v:.6f}" for v in x] + [str(label)]
            if bad_line == i + 1:
                cells[2] = "oops"
            f.write(",".join(cells) + "\n")


def build(nnc, tmp, source, name, mpi, f64=True):
    with open(os.path.join(tmp, name + ".nn"), "w") as f:
        f.write(source)
    exe = os.path.join(tmp, name + ("_mpi" if mpi else ""))
    run([nnc, name + ".nn", "-o", exe] + (["--f64"] if f64 else []) + (["--mpi"] if mpi else []),
        tmp)
    return exe


def safetensors(path):
    """[(name, dtype, raw bytes)] in the file's order."""
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    out = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out.append((name, info["dtype"], blob[8 + n + begin:8 + n + end]))
    return out


def compare(got_path, want_path, rel, what):
    got, want = read_weights(got_path), read_weights(want_path)
    if sorted(got) != sorted(want):
        raise Failure(f"{what}: tensors {sorted(got)}, wanted {sorted(want)}")
    worst = 0.0
    for name in want:
        for a, b in zip(got[name], want[name]):
            worst = max(worst, abs(a - b) / max(1.0, abs(b)))
    if worst > rel:
        raise Failure(f"{what}: relative difference {worst:.3g} from one process, wanted <= {rel}")
    return worst


def mpirun(mpirun_path, ranks, exe, args, flags=()):
    return [mpirun_path] + MPIRUN_FLAGS + list(flags) + ["-np", str(ranks), exe] + args


# ---- the same weights as one process ----

def case_same_weights(nnc, mpirun_path, tmp):
    """The global batch of 8 split among 2 and 3 ranks (shares of 4/4, 3/3/2, and the last
    batch of 2 rows leaves a rank of 3 without any) gives the weights of one process to
    1e-12 in f64: with momentum and dropout (whose masks follow the rows, not the rank), and
    with adam, clipping and an L2 penalty (applied after the ranks' gradients are added up);
    with --freeze (the frozen param keeps its bytes) and --dropout.
    The --mpi executable started without mpirun is one process, bit for bit the plain one."""
    write_data(os.path.join(tmp, "train.csv"), 82, seed=1)
    plain = build(nnc, tmp, MODEL, "mlp", mpi=False)
    mpi = build(nnc, tmp, MODEL, "mlp", mpi=True)
    variants = {"sgd": [], "adam": ["--optimizer", "adam", "--lr", "0.01", "--clip", "0.5",
                                    "--l2", "1e-3"],
                # a frozen param (its start bytes: below) and dropout's rate set at run time
                "freeze": ["--freeze", "h.W", "--dropout", "0.4"]}
    for label, extra in variants.items():
        one = f"one_{label}.safetensors"
        run([plain, "train", "--save", one] + extra, tmp)
        run([mpi, "train", "--save", f"solo_{label}.safetensors"] + extra, tmp)
        if open(os.path.join(tmp, one), "rb").read() != \
                open(os.path.join(tmp, f"solo_{label}.safetensors"), "rb").read():
            raise Failure(f"{label}: the --mpi executable without mpirun saved other weights "
                          f"than the plain one")
        for ranks in (2, 3):
            saved = f"ranks{ranks}_{label}.safetensors"
            out = run(mpirun(mpirun_path, ranks, mpi, ["train", "--save", saved] + extra), tmp)
            compare(os.path.join(tmp, saved), os.path.join(tmp, one), 1e-12,
                    f"{label}, {ranks} ranks")
            if out.stdout.count("final loss") != 1:
                raise Failure(f"{label}, {ranks} ranks: wanted one summary (rank 0's):\n"
                              f"{out.stdout}")
    run([plain, "train", "--epochs", "0", "--save", "start.safetensors"], tmp)
    start = dict((n, raw) for n, _, raw in safetensors(os.path.join(tmp, "start.safetensors")))
    for ranks in (2, 3):
        got = dict((n, raw) for n, _, raw in
                   safetensors(os.path.join(tmp, f"ranks{ranks}_freeze.safetensors")))
        if got["h.W"] != start["h.W"] or got["z.W"] == start["z.W"]:
            raise Failure(f"--freeze h.W on {ranks} ranks: h.W moved, or z.W did not")
    # train --help of the --mpi executable tells how to run it under mpirun; the plain one's
    # does not
    for exe, want in ((mpi, True), (plain, False)):
        for cmd in (["train", "--help"], ["--help"]):
            text = run([exe] + cmd, tmp).stdout
            told = "NNRT_MPI_BUCKET=BYTES" in text and "mpirun -np K" in text
            if told != want:
                raise Failure(f"{os.path.basename(exe)} {' '.join(cmd)} should "
                              f"{'' if want else 'not '}tell about mpirun:\n{text}")
    # eval is a command of one process, with or without --mpi
    want = run([plain, "eval", "--weights", "one_sgd.safetensors"], tmp).stdout
    got = run([mpi, "eval", "--weights", "ranks2_sgd.safetensors"], tmp).stdout
    loss = lambda text: float(re.search(r"^loss\s+(\S+)", text, re.M).group(1))
    if abs(loss(got) - loss(want)) > 1e-12 * max(1.0, abs(loss(want))):
        raise Failure(f"eval of the 2-rank weights:\n{got}\nwanted as one process:\n{want}")
    # and so is predict: the same weights, the same lines
    rows = "0.5,-0.2,0.9,0.1\n-0.7,0.3,0.0,0.4\n"
    want = run([plain, "predict", "--weights", "one_sgd.safetensors"], tmp, stdin=rows).stdout
    got = run([mpi, "predict", "--weights", "one_sgd.safetensors"], tmp, stdin=rows).stdout
    if got != want or len(want.splitlines()) != 2:
        raise Failure(f"predict of the --mpi executable:\n{got}\nwanted:\n{want}")


def case_sum_paths(nnc, mpirun_path, tmp):
    """The sum in shared memory (ranks on one machine, the default) and by messages
    (NNRT_MPI_SUM=messages, as across machines) add the same numbers in the same order: the
    same bytes saved, on 2 and 3 ranks, with the states of batch norm in the sum and with
    adam and clipping, in f64 and f32. By messages, in buckets that start while grad() runs
    (NNRT_MPI_BUCKET=1: a bucket at each of grad()'s hook points) and in one bucket after it
    (NNRT_MPI_BUCKET=0), the same bytes again. NNRT_MPI_SUM=shared succeeds here (all ranks
    on this machine); another value is a usage error on every rank, and so is a bucket that
    is not a number. In shared memory, steps 13-16 (every model) and 21-24 and 29-30 (the mlps'
    30) take the other ranks' params out of the caches (the trial of train.c's r->evicts),
    which changes no byte."""
    write_data(os.path.join(tmp, "train.csv"), 80, seed=3)  # whole batches: shares of 3+
    # the params: each finishes at a hook point of its own in these models
    jobs = [("mlp", MODEL, True, [], 4),
            ("mlp32", MODEL.replace("mlp", "mlp32"), False, [], 4),
            ("bn", BATCHNORM_MODEL, True, ["--optimizer", "adam", "--clip", "0.5"], 6)]
    for name, source, f64, extra, params in jobs:
        exe = build(nnc, tmp, source, name, mpi=True, f64=f64)
        for ranks in (2, 3):
            saved = {}
            for path in ("shared", "messages", None, "bucket=1", "bucket=0"):
                out = f"{name}_{ranks}_{path.replace('=', '')if path else path}.safetensors"
                flags = ["-x", f"NNRT_MPI_SUM={path}"] if path in ("shared", "messages") else []
                if path and path.startswith("bucket="):
                    flags = ["-x", "NNRT_MPI_SUM=messages", "-x", f"NNRT_MPI_BUCKET={path[7:]}"]
                proc = run(mpirun(mpirun_path, ranks, exe, ["train", "--save", out] + extra,
                                  flags), tmp)
                saved[path] = open(os.path.join(tmp, out), "rb").read()
                # a bucket a param, and the states and the step's loss in a last one
                want = {"bucket=1": f"in {params + 1} buckets a step, {params} sent while "
                                    f"grad() ran",
                        "bucket=0": "in 1 bucket a step, 0 sent while grad() ran"}.get(path)
                if want and want not in proc.stderr:
                    raise Failure(f"{name} on {ranks} ranks, NNRT_MPI_{path.upper()}: wanted "
                                  f"'{want}' in:\n{proc.stderr}")
            if any(saved[p] != saved["shared"] for p in saved):
                raise Failure(f"{name} on {ranks} ranks: the sum in shared memory and by "
                              f"messages saved other weights: "
                              f"{[p for p in saved if saved[p] != saved['shared']]}")
    proc = run(mpirun(mpirun_path, 2, exe, ["train", "--no-save"],
                      ["-x", "NNRT_MPI_SUM=messages", "-x", "NNRT_MPI_BUCKET=1M"]),
               tmp, want_status=2)
    if "NNRT_MPI_BUCKET=1M: give a number of bytes" not in proc.stderr:
        raise Failure(f"NNRT_MPI_BUCKET=1M said:\n{proc.stderr}")
    whole_lines(proc.stderr)
    proc = run(mpirun(mpirun_path, 2, exe, ["train", "--no-save"], ["-x", "NNRT_MPI_SUM=ring"]),
               tmp, want_status=2)
    if "NNRT_MPI_SUM=ring: give shared or messages, or leave it unset" not in proc.stderr:
        raise Failure(f"NNRT_MPI_SUM=ring said:\n{proc.stderr}")
    whole_lines(proc.stderr)


def whole_lines(said):
    """Every rank stops on the same usage error; each message must reach stderr whole. Written
    in pieces, two ranks' pieces interleaved ("mlp: error: mlp: error: ...")."""
    for line in said.splitlines():
        if line.count("error:") > 1:
            raise Failure(f"the ranks' messages are mixed in one line:\n{said}")


def log_columns(path, prefixes):
    """{column: [values by epoch]} of a --log CSV's columns whose names start with a prefix."""
    with open(path) as f:
        header = f.readline().strip().split(",")
        rows = [line.strip().split(",") for line in f if line.strip()]
    return {name: [float(row[i]) for row in rows] for i, name in enumerate(header)
            if name.startswith(prefixes)}


def case_slices(nnc, mpirun_path, tmp):
    """On one machine each rank adds up and updates its own slice of the elements (params cut
    mid-tensor on 3 ranks), in its own part of the optimizer's state. What reads more than a
    slice still sees the whole: --log-grad-norms and --log-update-ratios (rank 0's log) give
    one process's figures to 1e-9, in shared memory and by messages; and a checkpoint of adam
    (two slots of state) that 3 ranks write after epoch 2, rank 0 gathering every slice's state,
    resumed by one process, ends where one process that ran all 3 epochs ends, to 1e-12."""
    write_data(os.path.join(tmp, "train.csv"), 82, seed=5)
    plain = build(nnc, tmp, MODEL, "mlp", mpi=False)
    mpi = build(nnc, tmp, MODEL, "mlp", mpi=True)
    logs = ["--log-grad-norms", "--log-update-ratios", "--no-save", "--log"]
    run([plain, "train"] + logs + ["one.csv"], tmp)
    prefixes = ("grad_norm.", "update_ratio.")
    want = log_columns(os.path.join(tmp, "one.csv"), prefixes)
    if len(want) != 8 or len(want["grad_norm.h.W"]) != 3:
        raise Failure(f"one process's log has columns {sorted(want)}")
    for ranks in (2, 3):
        for path in ("shared", "messages"):
            log = f"ranks{ranks}_{path}.csv"
            run(mpirun(mpirun_path, ranks, mpi, ["train"] + logs + [log],
                       ["-x", f"NNRT_MPI_SUM={path}"]), tmp)
            got = log_columns(os.path.join(tmp, log), prefixes)
            for name, values in want.items():
                for epoch, (a, b) in enumerate(zip(got.get(name, []), values), 1):
                    if abs(a - b) > 1e-9 * max(1.0, abs(b)):
                        raise Failure(f"{ranks} ranks ({path}): {name} of epoch {epoch} is {a}, "
                                      f"one process {b}")
                if len(got.get(name, [])) != len(values):
                    raise Failure(f"{ranks} ranks ({path}): no column {name} in every row")
    adam = ["--optimizer", "adam", "--lr", "0.01"]
    run(mpirun(mpirun_path, 3, mpi, ["train", "--epochs", "2", "--checkpoint-every", "1",
                                     "--checkpoint", "ck.safetensors", "--no-save"] + adam), tmp)
    run([plain, "train", "--epochs", "3", "--save", "straight.safetensors"] + adam, tmp)
    run([plain, "train", "--epochs", "3", "--resume", "ck.safetensors", "--save",
         "resumed.safetensors"] + adam, tmp)
    compare(os.path.join(tmp, "resumed.safetensors"), os.path.join(tmp, "straight.safetensors"),
            1e-12, "adam's checkpoint of 3 ranks, resumed by one process")


# ---- every rank holds the same weights ----

def fnv1a(blob, h=0xcbf29ce484222325):
    for byte in blob:
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def case_ranks_agree(nnc, mpirun_path, tmp):
    """Each rank's checksum of its weights after training, which rank 0 prints, is the same
    on every rank and is that of the file rank 0 saved. The model has batch norm: its running
    statistics (rank 0's) reach every rank in the step's sum, so they agree too."""
    write_data(os.path.join(tmp, "train.csv"), 64, seed=2)
    mpi = build(nnc, tmp, BATCHNORM_MODEL, "bn", mpi=True, f64=False)
    out = run(mpirun(mpirun_path, 2, mpi, ["train", "--save", "bn.safetensors"]), tmp)
    m = re.search(r"^2 ranks, the same weights on each: checksum ([0-9a-f]{16}) ([0-9a-f]{16})$",
                  out.stderr, re.M)
    if not m:
        raise Failure(f"no checksum line in:\n{out.stderr}")
    tensors = safetensors(os.path.join(tmp, "bn.safetensors"))
    if not any("running" in name or "mean" in name for name, _, _ in tensors):
        raise Failure(f"no running statistics saved: {[n for n, _, _ in tensors]}")
    saved = fnv1a(b"".join(raw for _, _, raw in tensors))
    ranks = [int(m.group(1), 16), int(m.group(2), 16)]
    if ranks != [saved, saved]:
        raise Failure(f"checksums {[f'{c:016x}' for c in ranks]}, the saved file's "
                      f"{saved:016x}")


# ---- Ctrl-C and --resume ----

def wait_for(path, pattern, proc):
    """Until the file holds a match of pattern, while proc runs."""
    while proc.poll() is None:
        if os.path.exists(path) and re.search(pattern, open(path).read(), re.M):
            return
        time.sleep(0.05)
    raise Failure(f"the job ended ({proc.returncode}) before {path} had {pattern!r}")


def case_resume(nnc, mpirun_path, tmp):
    """Ctrl-C to mpirun (SIGINT) mid-run: every rank stops at the same step, rank 0 saves the
    checkpoint, and --resume on 2 ranks ends with the weights of a run that was never
    interrupted. The interrupted run asks for many epochs, so it is surely still training when
    the signal comes; the resumed one and the reference stop a few epochs after the
    checkpoint's. Epochs are long (4000 steps) and the signal goes once the first is logged,
    so the epoch it lands in, and with it what the two later runs cost, stays small on a
    loaded machine too (with 80 steps an epoch it once landed in epoch 9017)."""
    write_data(os.path.join(tmp, "train.csv"), 20000, seed=3)
    mpi = build(nnc, tmp, MODEL, "mlp", mpi=True)
    common = ["train", "--batch", "4", "--checkpoint", "ck.safetensors"]
    with open(os.path.join(tmp, "first.err"), "w") as err:
        proc = subprocess.Popen(mpirun(mpirun_path, 2, mpi, common + ["--epochs", "100000",
                                                                       "--log", "log.csv"],
                                       SIGKILL_LATER),
                                cwd=tmp, stdout=subprocess.DEVNULL, stderr=err, env=JOB_ENV)
        try:
            wait_for(os.path.join(tmp, "log.csv"), r"^1,", proc)
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
    said = open(os.path.join(tmp, "first.err")).read()
    m = re.search(r"interrupted at epoch (\d+) \((\d+) of 16000 rows\), step (\d+); saved the "
                  r"training state to ck.safetensors", said)
    if not m:
        raise Failure(f"no interruption message from rank 0:\n{said}")
    if said.count("interrupted at") != 1:
        raise Failure(f"wanted the message once (rank 0):\n{said}")
    if "continue with: mpirun -np 2 " not in said:
        raise Failure(f"the hint does not say mpirun:\n{said}")
    epochs = str(int(m.group(1)) + 2)
    run(mpirun(mpirun_path, 2, mpi, common + ["--epochs", epochs, "--resume", "ck.safetensors",
                                              "--save", "resumed.safetensors"]), tmp)
    run(mpirun(mpirun_path, 2, mpi, ["train", "--batch", "4", "--epochs", epochs,
                                     "--save", "straight.safetensors"]), tmp)
    compare(os.path.join(tmp, "resumed.safetensors"), os.path.join(tmp, "straight.safetensors"),
            0.0, f"resumed at epoch {m.group(1)}, step {m.group(3)}")


def case_resume_other_ranks(nnc, mpirun_path, tmp):
    """A checkpoint does not depend on the number of ranks: the one 2 ranks write after
    epoch 2 (--checkpoint-every 1, rank 0 alone writing), resumed by one process and by 3
    ranks, ends where one process that ran all 3 epochs ends, to 1e-12 in f64."""
    write_data(os.path.join(tmp, "train.csv"), 90, seed=8)
    plain = build(nnc, tmp, MODEL, "mlp", mpi=False)
    mpi = build(nnc, tmp, MODEL, "mlp", mpi=True)
    run(mpirun(mpirun_path, 2, mpi, ["train", "--epochs", "2", "--checkpoint-every", "1",
                                     "--checkpoint", "ck.safetensors", "--no-save"]), tmp)
    run([plain, "train", "--epochs", "3", "--save", "straight.safetensors"], tmp)
    run([plain, "train", "--epochs", "3", "--resume", "ck.safetensors", "--save",
         "one.safetensors"], tmp)
    run(mpirun(mpirun_path, 3, mpi, ["train", "--epochs", "3", "--resume", "ck.safetensors",
                                     "--save", "three.safetensors"]), tmp)
    for got in ("one", "three"):
        compare(os.path.join(tmp, got + ".safetensors"),
                os.path.join(tmp, "straight.safetensors"), 1e-12, f"resumed by {got}")


# ---- failures end the job ----

def rank_pids(parent):
    """{rank: pid} of mpirun's children, from their environment."""
    pids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != parent:
                continue
            env = open(f"/proc/{entry}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        for var in env:
            if var.startswith(b"OMPI_COMM_WORLD_RANK="):
                pids[int(var.split(b"=")[1])] = int(entry)
    return pids


def ends(pid):
    """Whether the process is gone (or a zombie) within TIMEOUT seconds: mpirun may exit
    while the rank it sent SIGTERM, then SIGKILL, is still on its way out."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def case_killed_rank(nnc, mpirun_path, tmp):
    """SIGKILL to rank 1 mid-run: mpirun ends the job, rank 0 included, and says which rank
    died of what; never a rank 0 waiting for ever in the step's sum."""
    write_data(os.path.join(tmp, "train.csv"), 400, seed=4)
    mpi = build(nnc, tmp, MODEL, "mlp", mpi=True)
    with open(os.path.join(tmp, "err"), "w") as err:
        proc = subprocess.Popen(mpirun(mpirun_path, 2, mpi, ["train", "--batch", "4", "--epochs",
                                                             "100000", "--log", "log.csv"]),
                                cwd=tmp, stdout=subprocess.DEVNULL, stderr=err, env=JOB_ENV)
        try:
            wait_for(os.path.join(tmp, "log.csv"), r"^2,", proc)
            pids = rank_pids(proc.pid)
            if sorted(pids) != [0, 1]:
                raise Failure(f"mpirun's ranks: {pids}")
            os.kill(pids[1], signal.SIGKILL)
            status = proc.wait(timeout=TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
    said = open(os.path.join(tmp, "err")).read()
    if status == 0 or not re.search(r"rank 1 .*exited on signal 9", said):
        raise Failure(f"exit status {status}, wanted the job ended naming rank 1:\n{said}")
    if not ends(pids[0]):
        raise Failure(f"rank 0 (pid {pids[0]}) still runs {TIMEOUT} s after the job ended")


def case_bad_data_rank(nnc, mpirun_path, tmp):
    """One rank fails on its data (given its own file, mpirun's MPMD form): its message, then
    the job ends on every rank with its exit status, although rank 0 had good data and waits
    in the first collective."""
    write_data(os.path.join(tmp, "train.csv"), 40, seed=5)
    write_data(os.path.join(tmp, "bad.csv"), 40, seed=5, bad_line=7)
    mpi = build(nnc, tmp, MODEL, "mlp", mpi=True)
    cmd = ([mpirun_path] + MPIRUN_FLAGS + ["-np", "1", mpi, "train", ":", "-np", "1", mpi,
                                           "train", "--data", "bad.csv"])
    proc = run(cmd, tmp, want_status=None)
    said = proc.stderr
    if proc.returncode != 1 or "bad.csv:7" not in said or "oops" not in said or \
            "rank 1 of 2 stopped with the error above; ending every rank" not in said:
        raise Failure(f"exit status {proc.returncode}, wanted 1 with rank 1's message:\n{said}")


def case_bad_gradient(nnc, mpirun_path, tmp):
    """A gradient nan under a finite loss, on the last rank's rows: every rank stops with the
    message one process gives, in shared memory and by messages, with and without clipping."""
    with open(os.path.join(tmp, "g.csv"), "w") as f:
        f.write(e2e.NAN_GRADIENT_ROWS)
    mpi = build(nnc, tmp, e2e.NAN_GRADIENT_MODEL, "g", mpi=True)
    for args in ([], ["--clip", "1"]):
        one = run([mpi, "train", "--quiet"] + args, tmp, want_status=1).stderr
        if not one.startswith("g_mpi: error: " + e2e.NAN_GRADIENT_FAULT):
            raise Failure(f"one process {args}: {one}")
        for path in ("shared", "messages"):
            said = run(mpirun(mpirun_path, 2, mpi, ["train", "--quiet"] + args,
                              ["-x", f"NNRT_MPI_SUM={path}"]), tmp, want_status=1).stderr
            if one.splitlines()[0] not in said.splitlines():
                raise Failure(f"2 ranks, {path}, {args}: wanted '{one.splitlines()[0]}' in:\n"
                              f"{said}")


def case_ranks_disagree(nnc, mpirun_path, tmp):
    """Ranks given different data would split different batches: refused before the first
    step, naming what differs; and so is standard input, which only rank 0 would read."""
    write_data(os.path.join(tmp, "train.csv"), 40, seed=6)
    write_data(os.path.join(tmp, "more.csv"), 50, seed=6)
    mpi = build(nnc, tmp, MODEL, "mlp", mpi=True)
    cmd = ([mpirun_path] + MPIRUN_FLAGS + ["-np", "1", mpi, "train", ":", "-np", "1", mpi,
                                           "train", "--data", "more.csv"])
    proc = run(cmd, tmp, want_status=None)
    if proc.returncode != 1 or "rank 1 has training rows 40, rank 0 32" not in proc.stderr:
        raise Failure(f"exit status {proc.returncode}, wanted 1 naming the rows:\n{proc.stderr}")
    # Standard input reaches rank 0 alone: --data - is refused before anything is read.
    proc = run(mpirun(mpirun_path, 2, mpi, ["train", "--data", "-"]), tmp, want_status=None)
    if proc.returncode != 2 or "--data -: under mpirun standard input reaches rank 0 alone" \
            not in proc.stderr:
        raise Failure(f"--data - under mpirun: exit status {proc.returncode}\n{proc.stderr}")


def case_plain_under_mpirun(nnc, mpirun_path, tmp):
    """A program compiled without --mpi started as 2 ranks would train twice over the same
    files: it says so instead."""
    write_data(os.path.join(tmp, "train.csv"), 40, seed=7)
    plain = build(nnc, tmp, MODEL, "mlp", mpi=False)
    proc = run(mpirun(mpirun_path, 2, plain, ["train"]), tmp, want_status=None)
    if proc.returncode != 2 or "compiled without MPI" not in proc.stderr or \
            "nnc --mpi" not in proc.stderr:
        raise Failure(f"exit status {proc.returncode}, wanted 2 and a hint:\n{proc.stderr}")


def case_not_built(nnc, mpirun_path, tmp):
    """nnc built without MPI: --mpi is an error that says how to get it, and writes nothing."""
    with open(os.path.join(tmp, "mlp.nn"), "w") as f:
        f.write(MODEL)
    proc = run([nnc, "mlp.nn", "--mpi", "-o", "mlp"], tmp, want_status=1)
    if "built without MPI" not in proc.stderr or "libopenmpi-dev" not in proc.stderr:
        raise Failure(f"nnc --mpi said:\n{proc.stderr}")
    if os.path.exists(os.path.join(tmp, "mlp")):
        raise Failure("nnc --mpi wrote an executable")


if __name__ == "__main__":
    sys.exit(run_case(globals(), sys.argv[3], os.path.abspath(sys.argv[1]), sys.argv[2]))
