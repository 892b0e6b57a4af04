#!/usr/bin/env python3
"""Data-parallel workers (train --workers N, runtime/workers.c): the weights of N workers
against one worker's with the same global batch, in f64, to 1e-12 relative (the rule of
docs/runtime.md, "Data-parallel workers"); the same N twice, the same bytes; batch norm's
running statistics from worker 0's share; checkpoints and Ctrl-C; the refusals.

usage: workers.py NNC SOURCE_DIR CASE
Each case runs in a fresh temporary folder. Standard library only; no timing.
"""
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile

import e2e  # its runner, its batch-norm model and safetensors readers
from e2e import CPU_WARNING, Failure, run, without_cpu_warning


def check(cond, message):
    if not cond:
        raise Failure(message)


def read_weights(path):
    """{name: [values]} of a safetensors file's tensors, every one F64 (the params and
    states of an --f64 model)."""
    header, _ = e2e.safetensors_parts(path)
    for name, info in header.items():
        check(name == "__metadata__" or info["dtype"] == "F64", f"{path}: {name} is not F64")
    return e2e.read_weights(path)


def within(a, b, rel, what):
    """Every tensor of b within rel of a's ({name: values}), relative to its largest value."""
    check(sorted(a) == sorted(b), f"{what}: tensors {sorted(a)} and {sorted(b)}")
    for name in a:
        scale = max(1.0, max(abs(v) for v in a[name]))
        worst = max(abs(x - y) for x, y in zip(a[name], b[name]))
        check(worst <= rel * scale, f"{what}: {name} differs by {worst:g} (scale {scale:g})")


def same_weights(a_path, b_path, rel, what):
    """within() for two files of F64 tensors."""
    within(read_weights(a_path), read_weights(b_path), rel, what)


def any_weights(path):
    """{name: values} of a safetensors file's F32 and F64 tensors."""
    header, body = e2e.safetensors_parts(path)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        code, size = {"F32": ("f", 4), "F64": ("d", 8)}[info["dtype"]]
        begin, end = info["data_offsets"]
        out[name] = struct.unpack(f"<{(end - begin) // size}{code}", body[begin:end])
    return out


def compile_model(nnc, tmp, name, text):
    with open(os.path.join(tmp, name + ".nn"), "w") as f:
        f.write(text)
    run([nnc, name + ".nn", "--f64", "-o", name], tmp)
    return "./" + name


def write_csv(tmp, name, rows):
    with open(os.path.join(tmp, name), "w") as f:
        f.write("".join(",".join(repr(v) for v in row) + "\n" for row in rows))


def digits_subset(src, tmp, n):
    """The first n rows of examples/digits.csv as d.csv."""
    with open(os.path.join(src, "examples", "digits.csv")) as f:
        lines = f.read().splitlines()[:n]
    with open(os.path.join(tmp, "d.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")


def example(nnc, src, tmp, name):
    text = open(os.path.join(src, "examples", name + ".nn")).read()
    return compile_model(nnc, tmp, name, text)


def against_one_worker(exe, tmp, args, counts=(2,)):
    """Trains with one worker and with each count of workers: the weights agree to 1e-12,
    and training moved them (the runs are not trivially equal)."""
    run([exe, "train", "--quiet", *args, "--epochs", "0", "--save", "w0.st"], tmp)
    run([exe, "train", "--quiet", *args, "--save", "w1.st"], tmp)
    for n in counts:
        run([exe, "train", "--quiet", *args, "--workers", str(n), "--save", f"w{n}.st"], tmp)
        same_weights(os.path.join(tmp, "w1.st"), os.path.join(tmp, f"w{n}.st"), 1e-12,
                     f"--workers {n} against 1")
    trained = read_weights(os.path.join(tmp, "w1.st"))
    initial = read_weights(os.path.join(tmp, "w0.st"))
    check(any(trained[k] != initial[k] for k in trained), "training moved nothing")


# ---- the cases ----


def case_mlp(nnc, src, tmp):
    """examples/digits.nn: 2 and 3 workers (shares 11, 11, 10 of 32, and a last batch of 16)
    against one; the same count twice gives the same bytes."""
    exe = example(nnc, src, tmp, "digits")
    digits_subset(src, tmp, 360)  # 288 training rows: 9 batches of 32
    args = ["--data", "d.csv", "--epochs", "3", "--batch", "32"]
    against_one_worker(exe, tmp, args, counts=(2, 3))
    run([exe, "train", "--quiet", *args, "--workers", "2", "--save", "again.st"], tmp)
    same = open(os.path.join(tmp, "w2.st"), "rb").read() == open(os.path.join(tmp, "again.st"),
                                                                  "rb").read()
    check(same, "--workers 2 twice: the weights files differ")
    # A batch that does not split evenly, a last batch of 8 rows, and adam.
    args = ["--data", "d.csv", "--epochs", "2", "--batch", "35", "--optimizer", "adam",
            "--lr", "0.01"]
    against_one_worker(exe, tmp, args, counts=(2, 4))
    # Penalties and clipping by the global norm (every part's gradient before any update).
    args = ["--data", "d.csv", "--epochs", "2", "--l2", "1e-3", "--l1", "h.W=1e-4", "--clip",
            "0.5", "--momentum", "0.5", "--nesterov", "on"]
    against_one_worker(exe, tmp, args, counts=(2, 3))
    # Early stopping keeps the same epoch's weights.
    against_one_worker(exe, tmp, ["--data", "d.csv", "--epochs", "6", "--early-stopping", "on",
                                  "--patience", "1", "--lr", "0.5"])


def case_cnn(nnc, src, tmp):
    """examples/cnn_digits.nn in f64, on 160 rows."""
    exe = example(nnc, src, tmp, "cnn_digits")
    digits_subset(src, tmp, 160)
    against_one_worker(exe, tmp, ["--data", "d.csv", "--epochs", "2", "--batch", "16"])


def case_lstm(nnc, src, tmp):
    """e2e.py's running-sum model with an lstm, on 120 sequences of 8 numbers."""
    exe = compile_model(nnc, tmp, "seq", e2e.RUNSUM_MODEL % ("lstm(x, 8)", "hs[-1]"))
    rng = random.Random(3)
    write_csv(tmp, "runsum.csv", [[rng.uniform(-1, 1) for _ in range(8)] + [rng.randrange(2)]
                                  for _ in range(120)])
    against_one_worker(exe, tmp, ["--epochs", "3", "--batch", "20"])


def case_text(nnc, src, tmp):
    """examples/bigram_text.nn on the first 20000 bytes of its text: each worker cuts its
    windows from the text itself."""
    exe = example(nnc, src, tmp, "bigram_text")
    with open(os.path.join(src, "examples", "genesis.txt"), "rb") as f:
        head = f.read(20000)
    with open(os.path.join(tmp, "genesis.txt"), "wb") as f:
        f.write(head[:head.rindex(b" ")])  # whole UTF-8 characters
    against_one_worker(exe, tmp, ["--epochs", "2", "--optimizer", "sgd", "--lr", "1"],
                       counts=(2, 3))


DROPOUT_MODEL = """import "nn"
model drop {
    input  x[64]
    target y[10]
    h        = dropout(relu(dense(x / 16, 32)), 0.3)
    output z = dense(h, 10)
    loss     = softmax_cross_entropy(z, y)
}
train drop {
    data      = csv("d.csv", x = 0..63, y = 64)
    optimizer = sgd(lr = 0.1, momentum = 0.9)
    batch     = 24
    epochs    = 3
    seed      = 5
}
"""


def case_dropout(nnc, src, tmp):
    """Each row draws the same mask whichever worker runs it (nnrt_ctx.first_row)."""
    exe = compile_model(nnc, tmp, "drop", DROPOUT_MODEL)
    digits_subset(src, tmp, 240)
    against_one_worker(exe, tmp, [], counts=(2, 3))


def case_whole_set(nnc, src, tmp):
    """A batch of every training row (docs/runtime.md, "Shuffling"): one process gathers it
    at the first step and leaves it in the arena, where no step writes it; the workers gather
    their shares every step. The same weights say that the CNN, the LSTM and dropout's model
    left their inputs and targets alone, and that neither way shuffled the rows. Batch norm's
    running statistics, made from the inputs alone, are PyTorch's for that batch every step."""
    exe = example(nnc, src, tmp, "cnn_digits")
    digits_subset(src, tmp, 160)
    against_one_worker(exe, tmp, ["--data", "d.csv", "--epochs", "3", "--batch", "1000"])
    drop = compile_model(nnc, tmp, "drop", DROPOUT_MODEL)
    against_one_worker(drop, tmp, ["--epochs", "4", "--batch", "240"], counts=(2, 3))
    read = lambda name: open(os.path.join(tmp, name), "rb").read()
    run([drop, "train", "--quiet", "--epochs", "4", "--batch", "240", "--shuffle", "off",
         "--save", "off.st"], tmp)
    check(read("off.st") == read("w1.st"), "whole-set batch: --shuffle on and off differ")
    seq = compile_model(nnc, tmp, "seq", e2e.RUNSUM_MODEL % ("lstm(x, 8)", "hs[-1]"))
    rng = random.Random(3)
    write_csv(tmp, "runsum.csv", [[rng.uniform(-1, 1) for _ in range(8)] + [rng.randrange(2)]
                                  for _ in range(120)])
    against_one_worker(seq, tmp, ["--epochs", "4", "--batch", "120"])
    rows = e2e.bn_rows(23)
    bn = e2e.bn_build(nnc, tmp, rows)
    run([bn, "train", "--quiet", "--batch", "23", "--epochs", "4", "--save", "bn.st"], tmp)
    mean, var = e2e.bn_running_stats(rows, 23, 4)
    w = read_weights(os.path.join(tmp, "bn.st"))
    e2e.close_all(w["h.running_mean"], mean, 1e-13, "h.running_mean")
    e2e.close_all(w["h.running_var"], var, 1e-13, "h.running_var")


def case_batchnorm(nnc, src, tmp):
    """In the batch split, batch statistics are each share's; the running statistics are
    worker 0's share's: the first ceil(B/2) rows of each batch. e2e.py's batch-norm model
    with a 1x1 convolution after the batch norm (a convolution: no team's step, the batch is
    split), its rows and its PyTorch update, with batches of 6, 6, 6 and 5 rows: worker 0's
    shares are 3 rows each, so the running statistics are those of batches of 3 over those
    rows. The team's step (e2e.py's model as it is) computes them over the whole batch, as one
    worker does, to the same bytes."""
    rows = e2e.bn_rows(23)
    exe = e2e.bn_build(nnc, tmp, rows)
    read = lambda name: open(os.path.join(tmp, name), "rb").read()
    for optimizer in ([], ["--optimizer", "adam"]):
        run([exe, "train", "--quiet", "--batch", "6", *optimizer, "--save", "one.st"], tmp)
        run([exe, "train", "--quiet", "--batch", "6", "--workers", "2", *optimizer, "--save",
             "two.st"], tmp)
        check(read("one.st") == read("two.st"), f"{optimizer}: two workers differ from one")
    conv = e2e.BN_MODEL.replace("    p = dense(h, 1)\n",
                                "    p = dense(flatten(conv(reshape(h, 1, 1, 3), 1, 1)), 1)\n")
    check(conv != e2e.BN_MODEL, "e2e.BN_MODEL changed: no dense line to replace")
    with open(os.path.join(tmp, "bn.nn"), "w") as f:
        f.write(conv)
    run([nnc, "bn.nn", "--f64", "-o", exe], tmp)
    run([exe, "train", "--quiet", "--batch", "6", "--workers", "2", "--save", "w.st"], tmp)
    shares = [row for s in range(0, 23, 6) for row in rows[s:s + (min(6, 23 - s) + 1) // 2]]
    mean, var = e2e.bn_running_stats(shares, 3, 3)
    w = read_weights(os.path.join(tmp, "w.st"))
    e2e.close_all(w["h.running_mean"], mean, 1e-13, "h.running_mean")
    e2e.close_all(w["h.running_var"], var, 1e-13, "h.running_var")
    check(w["h.gamma"] != [1.0, 1.0, 1.0], "h.gamma did not train")
    # With one worker they are the whole batch's, and differ.
    run([exe, "train", "--quiet", "--batch", "6", "--save", "one.st"], tmp)
    check(read_weights(os.path.join(tmp, "one.st"))["h.running_mean"] != w["h.running_mean"],
          "one worker's running mean equals two workers'")


def case_train_block(nnc, src, tmp):
    """`workers = 2` in a train block is --workers 2, and the command line overrides it. A CNN,
    which splits the batch, so that 2 workers' bytes differ from 1's (an MLP's team's step
    gives one worker's bytes for any count)."""
    text = open(os.path.join(src, "examples", "cnn_digits.nn")).read()
    text = text.replace("    seed       = 7\n", "    seed       = 7\n    workers    = 2\n")
    check("workers    = 2" in text, "cnn_digits.nn changed: no seed line to add after")
    exe = compile_model(nnc, tmp, "cnn_digits", text)
    digits_subset(src, tmp, 200)
    args = ["--data", "d.csv", "--epochs", "2", "--quiet"]
    run([exe, "train", *args, "--save", "block.st"], tmp)
    run([exe, "train", *args, "--workers", "2", "--save", "option.st"], tmp)
    run([exe, "train", *args, "--workers", "1", "--save", "one.st"], tmp)
    read = lambda name: open(os.path.join(tmp, name), "rb").read()
    check(read("block.st") == read("option.st"), "workers = 2 and --workers 2 differ")
    check(read("block.st") != read("one.st"), "--workers 1 did not override the block")
    same_weights(os.path.join(tmp, "one.st"), os.path.join(tmp, "block.st"), 1e-12, "block")
    # search's trials train with the workers too
    grid = ["search", "--data", "d.csv", "--epochs", "2", "--lr", "0.01,0.1", "--strategy",
            "grid", "--quiet"]
    run([exe, *grid, "--workers", "1", "--save", "s1.st"], tmp)
    run([exe, *grid, "--save", "s2.st"], tmp)
    same_weights(os.path.join(tmp, "s1.st"), os.path.join(tmp, "s2.st"), 1e-12, "search")
    check(read("s1.st") != read("s2.st"), "search: --workers 1 did not override the block")
    help_text = run([exe, "train", "--help"], tmp).stdout
    check("--workers N" in help_text and "(default: 2)" in help_text.split("--workers N")[1]
          .splitlines()[0], help_text)


def case_resume(nnc, src, tmp):
    """A checkpoint written with workers resumes to the bytes of an uninterrupted run, with
    --log and --plot and validation on; Ctrl-C saves one too."""
    exe = example(nnc, src, tmp, "digits")
    digits_subset(src, tmp, 200)
    args = ["--data", "d.csv", "--workers", "2", "--optimizer", "adam", "--lr", "0.01",
            "--quiet"]
    run([exe, "train", *args, "--epochs", "4", "--save", "whole.st", "--log", "whole.csv",
         "--plot", "whole.svg"], tmp)
    run([exe, "train", *args, "--epochs", "2", "--checkpoint-every", "1", "--checkpoint",
         "ck.st", "--save", "half.st"], tmp)
    run([exe, "train", *args, "--epochs", "4", "--resume", "ck.st", "--save", "resumed.st"], tmp)
    read = lambda name: open(os.path.join(tmp, name), "rb").read()
    check(read("whole.st") == read("resumed.st"), "resumed weights differ from a whole run's")
    # Plain sgd, whose team keeps h.W in column blocks from its second step on, at a batch
    # (96 rows) larger than h.W's 64 columns: every step cuts its GEMMs alike, the first of
    # a run (which finds the params to block) as well as the others.
    sgd = ["--data", "d.csv", "--workers", "2", "--batch", "96", "--quiet"]
    run([exe, "train", *sgd, "--epochs", "4", "--save", "whole.st"], tmp)
    run([exe, "train", *sgd, "--epochs", "2", "--checkpoint-every", "1", "--checkpoint",
         "ck.st", "--no-save"], tmp)
    run([exe, "train", *sgd, "--epochs", "4", "--resume", "ck.st", "--save", "resumed.st"], tmp)
    check(read("whole.st") == read("resumed.st"), "sgd: resumed weights differ from a whole run's")
    log = open(os.path.join(tmp, "whole.csv")).read().splitlines()
    check(len(log) == 5 and log[0].startswith("epoch,") and "val_loss" in log[0], log)
    check(read("whole.svg").startswith(b"<svg") or b"<svg" in read("whole.svg")[:200], "plot")
    # Ctrl-C: the training state saved, and resuming ends where a whole run ends.
    long_args = ["--data", "d.csv", "--workers", "2", "--epochs", "300", "--batch", "8"]
    proc = subprocess.Popen([exe, "train", *long_args, "--checkpoint", "int.st"], cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stderr.readline()
    while CPU_WARNING.encode() in first:  # a machine of one CPU: the threads take turns
        first = proc.stderr.readline()
    check(first.startswith(b"epoch 1/"), first)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    check(proc.returncode == 130, f"exit {proc.returncode}\n{err.decode()}")
    check(b"interrupted at epoch" in err and b"saved the training state to int.st" in err, err)
    run([exe, "train", *long_args, "--resume", "int.st", "--quiet", "--save", "r.st"], tmp)
    run([exe, "train", *long_args, "--quiet", "--save", "w.st"], tmp)
    check(read("r.st") == read("w.st"), "after Ctrl-C: resumed weights differ from a whole run's")


def two_layer_mlp(name, inputs, h, g, classes, momentum, batch, seed):
    """A model of two hidden layers h and g (each (activation, width)) over a CSV of the
    inputs then the class, name.csv, trained 3 epochs with sgd."""
    return f"""import "nn"
model {name} {{
    input  x[{inputs}]
    target y[{classes}]
    h        = {h[0]}(dense(x, {h[1]}))
    g        = {g[0]}(dense(h, {g[1]}))
    output z = dense(g, {classes})
    loss     = softmax_cross_entropy(z, y)
}}
train {name} {{
    data      = csv("{name}.csv", x = 0..{inputs - 1}, y = {inputs})
    optimizer = sgd(lr = 0.05, momentum = {momentum})
    batch     = {batch}
    epochs    = 3
    seed      = {seed}
}}
"""


TEAM_MODEL = two_layer_mlp("odd", 37, ("tanh", 45), ("relu", 19), 5, momentum=0, batch=35,
                           seed=4)


SHARED_GRADIENT_MODEL = """import "nn"
model shared {
    input  x[7]
    target y[5]
    param c[5] = zeros
    param d[5] = zeros
    h        = tanh(dense(x, 9))
    output z = dense(h, 5) + c + d
    loss     = softmax_cross_entropy(z, y)
}
train shared {
    data      = csv("shared.csv", x = 0..6, y = 7)
    optimizer = adam(lr = 0.01)
    batch     = 10
    epochs    = 2
}
"""


def team_against_one(exe, tmp, args, counts, precision, what):
    """The weights of each count of workers are one worker's to 1e-12 relative in f64 and
    1e-5 in f32 (the team's GEMM blocks round OpenBLAS's sums otherwise than the whole)."""
    run([exe, "train", "--quiet", *args, "--save", "one.st"], tmp)
    for n in counts:
        run([exe, "train", "--quiet", *args, "--workers", n, "--save", "many.st"], tmp)
        within(any_weights(os.path.join(tmp, "one.st")),
               any_weights(os.path.join(tmp, "many.st")), 1e-12 if precision else 1e-5,
               f"{what}: --workers {n} against one worker")


def case_team(nnc, src, tmp):
    """An MLP: the workers split each step of the compiled plan (sgd_step_team with plain
    sgd, grad_team and the update by parts with any other optimizer), not the batch, and
    every element is computed as one worker computes it, up to the rounding of OpenBLAS's
    sums where it sums a block of a GEMM otherwise than the whole (which shapes, depends on
    the CPU's kernels; docs/runtime.md): the weights of 2, 3 and 4 workers are one worker's
    to 1e-12 relative in f64 and 1e-5 in f32, with sgd with and without momentum, adam, and
    nesterov with an l2 penalty, in batches whose rows and layers do not split evenly (35
    rows and a last batch of 30; 37, 45, 19 and 5 wide); likewise with adam a model whose
    gradients are partly copies of one another. A model with a convolution or a scan has no
    team's step (the batch is split as before)."""
    rng = random.Random(11)
    write_csv(tmp, "odd.csv", [[round(rng.uniform(-2, 2), 3) for _ in range(37)] +
                               [rng.randrange(5)] for _ in range(100)])
    with open(os.path.join(tmp, "odd.nn"), "w") as f:
        f.write(TEAM_MODEL)
    for precision in ([], ["--f64"]):
        run([nnc, "odd.nn", *precision, "-o", "odd"], tmp)
        for optimizer in (["--momentum", "0"], ["--momentum", "0.9"],
                          ["--optimizer", "adam", "--lr", "0.01"],
                          ["--momentum", "0.5", "--nesterov", "on", "--l2", "1e-3"]):
            team_against_one("./odd", tmp, optimizer, ("2", "3", "4"), precision,
                             f"{precision} {optimizer}")
        args = ["./odd", "train", "--quiet"]
        # a step that blows up stops with one worker's message
        one = run(args + ["--lr", "1e30"], tmp, want_status=1).stderr
        check("training stopped" in one, one)
        many = run(args + ["--lr", "1e30", "--workers", "2"], tmp, want_status=1).stderr
        many = without_cpu_warning(many)
        check(many == one, f"--workers 2: {many}, one worker: {one}")
    # Gradients that are copied, not computed in place: two params and a bias share one
    # gradient (the sum over the batch of dz). grad() copies them at its hook points,
    # grad_team (adam) at its end; one that copied neither would leave them stale.
    write_csv(tmp, "shared.csv", [[round(rng.uniform(-2, 2), 3) for _ in range(7)] +
                                  [rng.randrange(5)] for _ in range(60)])
    with open(os.path.join(tmp, "shared.nn"), "w") as f:
        f.write(SHARED_GRADIENT_MODEL)
    for precision in ([], ["--f64"]):
        run([nnc, "shared.nn", *precision, "-o", "shared"], tmp)
        team_against_one("./shared", tmp, [], ("2", "3"), precision,
                         f"{precision} shared gradients")
    teams = lambda exe: [run([nnc, exe, "--emit=llvm"], tmp).stdout.count(
        f"define internal void @nnc.{entry}_team(") for entry in ("sgd_step", "grad")]
    check(teams("odd.nn") == [1, 1], f"the MLP's team entries: {teams('odd.nn')}")
    for name in ("cnn_digits", "char_rnn"):
        with open(os.path.join(tmp, name + ".nn"), "w") as f:
            f.write(open(os.path.join(src, "examples", name + ".nn")).read())
        check(teams(name + ".nn") == [0, 0], f"{name} has a team's step")
    # The first layer's weight gradient takes the list of the batch's nonzero columns that
    # its X·W made in the same entry (nnrt_sgemm_tn_again), never in the team's entries,
    # whose phases may run on another thread than the one that listed them.
    with open(os.path.join(tmp, "mnist.nn"), "w") as f:
        f.write(open(os.path.join(src, "examples", "mnist.nn")).read())
    llvm = run([nnc, "mnist.nn", "--emit=llvm"], tmp).stdout
    for entry, want in (("sgd_step", True), ("grad", True), ("sgd_step_team", False),
                        ("grad_team", False)):
        body = llvm.split(f"define internal void @nnc.{entry}(")[1].split("\n}\n")[0]
        again = "call void @nnrt_sgemm_tn_again(" in body
        check(again == want, f"mnist.nn's {entry} calls nnrt_sgemm_tn_again: {again}")
        # Each layer's bias (and the first's relu) stored by its product's tiles: in one
        # thread's entries both products call nnrt_sgemm_nn_bias_relu; in the team's, the
        # first is cut into blocks (nnrt_team_sgemm_bias_relu) and the small second runs
        # whole in a solo phase.
        fused = body.count("call void @nnrt_sgemm_nn_bias_relu(")
        check(fused == (2 if want else 1), f"mnist.nn's {entry}: {fused} nnrt_sgemm_nn_bias_relu")
        blocks = body.count("call void @nnrt_team_sgemm_bias_relu(")
        check(blocks == (0 if want else 1), f"mnist.nn's {entry}: {blocks} team blocks' calls")


WIDE_MODEL = two_layer_mlp("wide", 40, ("relu", 96), ("tanh", 64), 3, momentum=0.9, batch=24,
                           seed=6)


def team_gemms(nnc, tmp, name):
    """The GEMM calls in the sgd_step_team of name.nn: (split among the team, run whole)."""
    llvm = run([nnc, name + ".nn", "--f64", "--emit=llvm"], tmp).stdout
    body = llvm.split("define internal void @nnc.sgd_step_team(")[1].split("\n}\n")[0]
    return body.count("call void @nnrt_team_dgemm("), body.count("call void @cblas_dgemm(")


def case_team_rounding(nnc, src, tmp):
    """The team's rule where OpenBLAS rounds a block of a GEMM otherwise than the whole
    (docs/runtime.md, "Data-parallel workers"): with the AVX-512 kernels the executables
    choose, this MLP's blocks at batch 24 take another of OpenBLAS's kernels than its whole
    GEMMs, so 2 and 3 workers may differ from one worker in the last bits; in f64 they
    agree to 1e-12 relative, with sgd and momentum and with adam. Its last layer's products
    run whole in one thread of the team."""
    rng = random.Random(5)
    write_csv(tmp, "wide.csv", [[round(rng.uniform(-2, 2), 3) for _ in range(40)] +
                                [rng.randrange(3)] for _ in range(90)])
    with open(os.path.join(tmp, "wide.nn"), "w") as f:
        f.write(WIDE_MODEL)
    run([nnc, "wide.nn", "--f64", "-o", "wide"], tmp)
    # Its 64 x 3 layer's products are small beside the others: one thread runs them whole
    # (codegen.c, worth_splitting); in odd.nn, whose products are all small, all are split.
    split, whole = team_gemms(nnc, tmp, "wide")
    check(split > 0 and whole > 0, f"wide.nn's team step: {split} split GEMMs, {whole} whole")
    with open(os.path.join(tmp, "odd.nn"), "w") as f:
        f.write(TEAM_MODEL)
    split, whole = team_gemms(nnc, tmp, "odd")
    check(split > 0 and whole == 0, f"odd.nn's team step: {split} split GEMMs, {whole} whole")
    for optimizer in ([], ["--optimizer", "adam", "--lr", "0.01"]):
        run(["./wide", "train", "--quiet", *optimizer, "--save", "one.st"], tmp)
        for n in ("2", "3"):
            run(["./wide", "train", "--quiet", *optimizer, "--workers", n, "--save",
                 "many.st"], tmp)
            same_weights(os.path.join(tmp, "one.st"), os.path.join(tmp, "many.st"), 1e-12,
                         f"{optimizer} --workers {n}")


PLAIN_MODEL = """import "nn"
model f {
    param x = 3
    loss = (x - 1) * (x - 1)
}
train f {
    optimizer = sgd(lr = 0.1)
    steps     = 5
    workers   = 2
}
"""


def case_errors(nnc, src, tmp):
    """What workers cannot do is refused with a message, before any training."""
    exe = example(nnc, src, tmp, "digits")
    digits_subset(src, tmp, 100)
    base = [exe, "train", "--data", "d.csv", "--quiet"]
    prog = "digits"
    cases = [
        (["--workers", "0"], "--workers must be at least 1, got '0'"),
        (["--workers", "4", "--batch", "3"],
         "--workers 4 splits each batch into 4 shares, but the batch is 3 rows: give --batch 4 "
         "or more, or fewer workers"),
        (["--workers", "2", "--batch", "1"],
         "--workers 2 splits each batch into 2 shares, but the batch is 1 row: give --batch 2 "
         "or more, or fewer workers"),
        (["--workers", "2", "--threads", "2"],
         "--workers 2 runs OpenBLAS with one thread in each worker: give --workers N or "
         "--threads N, not both"),
        (["--workers", "2", "--trace", "h.W"],
         "--trace is not available with --workers 2: run it with one worker"),
        (["--workers", "2", "--log-grad-norms", "--log", "norms.csv"],
         "--log-grad-norms is not available with --workers 2: run it with one worker"),
        (["--workers", "1000"], "--workers must be at most 256, got '1000'"),
        (["--workers", "2", "--hogwild", "2"],
         "--workers 2 and --hogwild 2 are two ways to train on several threads: give one of "
         "them"),
    ]
    for args, message in cases:
        r = run(base + args, tmp, want_status=2)
        check(f"{prog}: error: {message}" in r.stderr, f"{args}: {r.stderr}")
        check(not os.path.exists(os.path.join(tmp, "digits.safetensors")), f"{args}: saved")
    # A run that blows up stops with one worker's message, at the same step.
    for args in (["--clip", "1e300", "--lr", "1e308"], ["--optimizer", "adam", "--lr", "1e300"]):
        one = run(base + args, tmp, want_status=1).stderr
        check("training stopped" in one, one)
        for n in ("2", "3"):
            many = run(base + args + ["--workers", n], tmp, want_status=1).stderr
            many = without_cpu_warning(many)
            check(many == one, f"{args} --workers {n}: {many}, one worker: {one}")
    # A gradient nan under a finite loss: the update's loop finds it in whichever worker's
    # part it falls, with and without clipping (whose update is a phase of its own).
    g = compile_model(nnc, tmp, "g", e2e.NAN_GRADIENT_MODEL)
    with open(os.path.join(tmp, "g.csv"), "w") as f:
        f.write(e2e.NAN_GRADIENT_ROWS)
    for args in ([], ["--clip", "1"], ["--optimizer", "lion"]):
        for n in ("1", "2", "3"):
            said = run([g, "train", "--quiet", "--workers", n] + args, tmp, want_status=1).stderr
            said = without_cpu_warning(said)
            check(said.startswith("g: error: " + e2e.NAN_GRADIENT_FAULT),
                  f"{args} --workers {n}: {said}")
    f = compile_model(nnc, tmp, "f", PLAIN_MODEL)
    r = run([f, "train"], tmp, want_status=2)
    check("f: error: --workers 2: model 'f' has no inputs, so no batch to split" in r.stderr,
          r.stderr)
    r = run([f, "train", "--workers", "1"], tmp, want_status=2)
    check("--workers does not apply: model 'f' has no inputs" in r.stderr, r.stderr)
    # The train block's value is held to the option's limit by nnc, at its place in the file.
    check("    workers   = 2\n" in PLAIN_MODEL, PLAIN_MODEL)
    with open(os.path.join(tmp, "many.nn"), "w") as out:
        out.write(PLAIN_MODEL.replace("    workers   = 2\n", "    workers   = 1000\n"))
    r = run([nnc, "many.nn", "-o", "many"], tmp, want_status=1)
    check(r.stderr.startswith("many.nn:9:17: error: workers must be at most 256, got 1000\n"),
          r.stderr)


def on_one_cpu(cmd, cwd):
    """cmd's process with this process's first CPU alone to run on."""
    cpu = min(os.sched_getaffinity(0))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600,
                          preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))


def case_cpus(nnc, src, tmp):
    """More threads than the CPUs the process may use: a warning that says so, once, with
    --quiet too, and the same training; none at or below the count."""
    exe = example(nnc, src, tmp, "digits")
    digits_subset(src, tmp, 200)
    base = [exe, "train", "--data", "d.csv", "--epochs", "2", "--quiet"]
    one = on_one_cpu(base + ["--workers", "1", "--save", "one.safetensors"], tmp)
    check(one.returncode == 0 and one.stderr == "", f"--workers 1 on one CPU: {one.stderr}")
    two = on_one_cpu(base + ["--workers", "2", "--save", "two.safetensors"], tmp)
    wanted = ("digits: warning: --workers 2 starts more threads than the 1 CPU this process may "
              "use: they take turns on it, which is usually slower than --workers 1\n")
    check(two.returncode == 0 and two.stderr == wanted, f"--workers 2 on one CPU: {two.stderr!r}")
    check(two.stdout == one.stdout, f"--workers 2 on one CPU printed\n{two.stdout}\n"
          f"one worker\n{one.stdout}")
    same_weights(os.path.join(tmp, "one.safetensors"), os.path.join(tmp, "two.safetensors"),
                 1e-5, "--workers 2 on one CPU")
    hog = on_one_cpu(base + ["--hogwild", "2", "--no-save"], tmp)
    check(hog.returncode == 0 and "warning: --hogwild 2 starts more threads than the 1 CPU" in
          hog.stderr and hog.stderr.count("\n") == 1, f"--hogwild 2 on one CPU: {hog.stderr!r}")
    search = on_one_cpu([exe, "search", "--data", "d.csv", "--epochs", "1", "--lr", "0.01,0.1",
                         "--workers", "2", "--quiet", "--no-save"], tmp)
    check(search.returncode == 0 and search.stderr.startswith(wanted) and
          search.stderr.count("warning") == 1, f"search --workers 2 on one CPU: {search.stderr!r}")
    cpus = len(os.sched_getaffinity(0))
    if cpus >= 2:  # as many threads as CPUs: nothing to say
        r = run(base + ["--workers", str(min(cpus, 256)), "--no-save"], tmp)
        check(r.stderr == "", f"--workers {cpus} on {cpus} CPUs: {r.stderr!r}")


SPARSE_MODEL = """import "nn"

model sparse {
    input  x[784]
    target y[10]
    h        = relu(dense(x, 128))
    output z = dense(h, 10)
    loss     = softmax_cross_entropy(z, y)
}

train sparse {
    optimizer = sgd(lr = 0.05, momentum = 0)
    batch     = 32
    seed      = 4
}
"""


def case_sparse_team(nnc, src, tmp):
    """A first layer the team splits, on data whose zero columns change from batch to batch
    (each row's values in a window of 150 of its 784 columns): a thread's block of Xᵀ·dZ
    takes the list of nonzero columns its block of X·W made only in the same step, so two
    workers train one worker's weights, also on one CPU, where a thread often misses whole
    phases and the other runs its blocks; with momentum too (Xᵀ·dZ into the velocity)."""
    rng = random.Random(8)
    rows = []
    for _ in range(320):
        start = rng.randrange(784 - 150)
        x = [0.0] * 784
        for j in range(start, start + 150):
            if rng.random() < 0.5:
                x[j] = round(rng.uniform(0.1, 1), 2)
        rows.append([rng.randrange(10)] + x)
    write_csv(tmp, "sparse.csv", rows)
    with open(os.path.join(tmp, "sparse.nn"), "w") as f:
        f.write(SPARSE_MODEL)
    run([nnc, "sparse.nn", "-o", "sparse"], tmp)
    data = ["--data", "sparse.csv", "--columns", "y=0,x=1..784", "--epochs", "60", "--quiet"]
    for momentum in ("0", "0.9"):
        args = ["./sparse", "train", *data, "--momentum", momentum]
        run(args + ["--save", "one.st"], tmp)
        for pinned in (False, True):
            cmd = args + ["--workers", "2", "--save", "two.st"]
            r = on_one_cpu(cmd, tmp) if pinned else run(cmd, tmp)
            check(r.returncode == 0, f"--workers 2: {r.stderr}")
            within(any_weights(os.path.join(tmp, "one.st")),
                   any_weights(os.path.join(tmp, "two.st")), 1e-5,
                   f"momentum {momentum}, {'one CPU' if pinned else 'unpinned'}: --workers 2 "
                   "against one worker")


BAD_IDS_MODEL = """import "nn"

model tok {
    input  ids[4]
    target y[3]
    e        = embedding(ids, 6, 4)
    output z = dense(flatten(e), 3)
    loss     = softmax_cross_entropy(z, y)
}
"""


def case_bad_ids(nnc, src, tmp):
    """Both workers meet a bad token id in their shares at once: the process ends with one
    message, not two (the first error owns the exit; runtime/util.c), every time; and the
    message counts the sample in the whole batch (rt_ids_first_row)."""
    exe = compile_model(nnc, tmp, "tok", BAD_IDS_MODEL)
    write_csv(tmp, "bad.csv", [[1, 9, 2, 3, 1]] * 8)
    args = [exe, "train", "--data", "bad.csv", "--columns", "ids=0..3,y=4", "--batch", "8",
            "--validation", "0", "--workers", "2", "--no-save", "--quiet"]
    for attempt in range(20):
        err = run(args, tmp, want_status=1).stderr
        errors = [line for line in err.splitlines() if ": error: " in line]
        check(len(errors) == 1 and "take: token id 9" in errors[0],
              f"attempt {attempt}: wanted one error about id 9, got:\n{err}")
    # the sample is counted in the whole batch, not in the share of the worker that met it
    write_csv(tmp, "bad.csv", [[1, 2, 2, 3, 1]] * 6 + [[1, 2, 9, 3, 1]] * 2)
    err = run(args + ["--shuffle", "off"], tmp, want_status=1).stderr
    check("take: token id 9 (sample 6 of the batch, id 2 of the sample)" in err, err)


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    nnc, src, case = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    fn = globals().get("case_" + case)
    if not fn:
        print(f"workers.py: no case {case}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        try:
            fn(nnc, src, tmp)
        except Failure as e:
            print(f"workers.py {case}: FAIL: {e}", file=sys.stderr)
            return 1
    print(f"workers.py {case}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
