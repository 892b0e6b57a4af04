#!/usr/bin/env python3
"""End-to-end tests: compile an example with nnc, train it, check what it learned.

usage: e2e.py NNC SOURCE_DIR CASE
Each case builds in a fresh temporary folder and runs the binary from there, so data paths
written in the .nn files must resolve against the .nn file's own folder.
"""
import json
import os
import re
import struct
import subprocess
import sys
import tempfile


class Failure(Exception):
    pass


def run(cmd, cwd, want_status=0, stdin=None):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, input=stdin, timeout=600)
    if want_status is not None and proc.returncode != want_status:
        raise Failure(f"{' '.join(cmd)}: exit status {proc.returncode}, wanted {want_status}\n"
                      f"--- stdout:\n{proc.stdout}--- stderr:\n{proc.stderr}")
    return proc


def number(text, label):
    """The number after `label` on a line of its own: `final loss 0.0123`."""
    m = re.search(rf"^{re.escape(label)}\s+(\S+)\s*$", text, re.M)
    if not m:
        raise Failure(f"no '{label}' line in:\n{text}")
    return float(m.group(1))


def build(nnc, src, example, tmp):
    exe = os.path.join(tmp, example)
    run([nnc, os.path.join(src, "examples", example + ".nn"), "-o", exe], tmp)
    return exe


def case_xor(nnc, src, tmp):
    exe = build(nnc, src, "xor", tmp)
    weights = os.path.join(tmp, "xor.safetensors")
    out = run([exe, "train", "--save", weights], tmp).stdout
    acc = number(out, "final accuracy")
    if acc != 1.0:
        raise Failure(f"xor: final accuracy {acc}, wanted 1.0\n{out}")
    # predict: the four corners, in order, from stdin
    pred = run([exe, "predict", "--weights", weights], tmp, stdin="0,0\n0,1\n1,0\n1,1\n").stdout
    values = [float(line) for line in pred.split()]
    if len(values) != 4 or [round(v) for v in values] != [0, 1, 1, 0]:
        raise Failure(f"xor: predict printed {pred!r}, wanted about 0, 1, 1, 0")
    missing = run([exe, "predict", "--weights", os.path.join(tmp, "none")], tmp, want_status=1)
    if "none" not in missing.stderr:
        raise Failure(f"predict with a missing weights file: {missing.stderr}")


def case_parabola(nnc, src, tmp):
    exe = build(nnc, src, "parabola", tmp)
    out = run([exe, "train"], tmp).stdout
    x = number(out, "x =")
    loss = number(out, "final loss")
    if abs(x - 0.5) > 1e-3:
        raise Failure(f"parabola: x = {x}, wanted 0.5 +- 1e-3\n{out}")
    if abs(loss - 3.25) > 1e-5:
        raise Failure(f"parabola: final loss {loss}, wanted f(0.5) = 3.25\n{out}")


def train_to_bar(nnc, src, tmp, example, bar):
    """Trains the example with its train block; its held-out accuracy must reach bar."""
    exe = build(nnc, src, example, tmp)
    out = run([exe, "train"], tmp).stdout
    acc = number(out, "validation accuracy")
    if acc < bar:
        raise Failure(f"{example}: held-out accuracy {acc}, wanted >= {bar}\n{out}")


def case_digits(nnc, src, tmp):
    train_to_bar(nnc, src, tmp, "digits", 0.95)


def case_cnn_digits(nnc, src, tmp):
    """The CNN reads each row of 64 pixels as an image [1, 8, 8] and beats the MLP's bar."""
    train_to_bar(nnc, src, tmp, "cnn_digits", 0.97)


CONV_INIT_MODEL = """import "nn"

model conv_init {
    input  x[50]
    target y[1]
    param  W[32, 2, 3, 3] = he
    h    = conv2d(reshape(x, 2, 5, 5), W, 0)
    loss = mse(sum(h), y)
}
"""


def case_conv_init(nnc, src, tmp):
    """He takes PyTorch's fan_in for conv weights [C_out, C_in, k, k]: C_in*k*k = 18, so
    the std is sqrt(2/18) = 0.33 (the dense rule's fan_in, 32*2*3 = 192, gave 0.10)."""
    with open(os.path.join(tmp, "m.nn"), "w") as f:
        f.write(CONV_INIT_MODEL)
    with open(os.path.join(tmp, "d.csv"), "w") as f:
        f.write("\n".join(",".join(["0"] * 51) for _ in range(4)) + "\n")
    run([nnc, "m.nn", "-o", "m"], tmp)
    run(["./m", "train", "--data", "d.csv", "--steps", "1", "--lr", "1e-30",
         "--validation", "0", "--save", "w.safetensors"], tmp)
    with open(os.path.join(tmp, "w.safetensors"), "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    a, b = header["W"]["data_offsets"]
    values = struct.unpack(f"<{(b - a) // 4}f", data[8 + n + a:8 + n + b])
    std = (sum(v * v for v in values) / len(values)) ** 0.5
    if not 0.30 < std < 0.37:
        raise Failure(f"conv weights drawn by he have std {std:.3f}, wanted about 0.333")


BAD_CSVS = {
    "not_a_number.csv": ("0,0,0\n0,1,1\n1,x,1\n1,1,0\n", 3),
    "missing_column.csv": ("0,0,0\n0,1\n1,0,1\n", 2),
    "empty.csv": ("", None),
}


def case_bad_csv(nnc, src, tmp):
    exe = build(nnc, src, "xor", tmp)
    for name, (text, line) in BAD_CSVS.items():
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(text)
        err = run([exe, "train", "--data", path], tmp, want_status=1).stderr
        where = f"{path}:{line}: error:" if line else f"{path}"
        if where not in err or "error" not in err:
            raise Failure(f"{name}: wanted an error located at '{where}', got:\n{err}")


def case_eval_matches_train(nnc, src, tmp):
    exe = build(nnc, src, "xor", tmp)
    weights = os.path.join(tmp, "xor.safetensors")
    out = run([exe, "train", "--epochs", "300", "--save", weights], tmp).stdout
    trained = number(out, "final loss")
    ev = run([exe, "eval", "--weights", weights], tmp).stdout
    evaluated = number(ev, "loss")
    if abs(trained - evaluated) > 1e-6 * max(1.0, abs(trained)):
        raise Failure(f"train said final loss {trained}, eval says {evaluated}")
    if number(out, "final accuracy") != number(ev, "accuracy"):
        raise Failure(f"accuracy differs between train and eval:\n{out}\n{ev}")


def case_determinism(nnc, src, tmp):
    exe = build(nnc, src, "digits", tmp)
    blobs = []
    for i in range(2):
        w = os.path.join(tmp, f"w{i}.safetensors")
        run([exe, "train", "--epochs", "2", "--seed", "5", "--save", w], tmp)
        with open(w, "rb") as f:
            blobs.append(f.read())
    if blobs[0] != blobs[1]:
        raise Failure("two runs with the same seed saved different weights")
    w = os.path.join(tmp, "w2.safetensors")
    run([exe, "train", "--epochs", "2", "--seed", "6", "--save", w], tmp)
    with open(w, "rb") as f:
        if f.read() == blobs[0]:
            raise Failure("a different seed saved the same weights")


LOGIT_MODEL = """import "nn"

model logit {
    input  x[1]
    target y[1]
    param  w = 1
    z = x * w
    %s
    loss = bce_logits(z, y)
}

train logit {
    data = csv("d.csv", x = 0, y = 1)
}
"""


def case_bce_logits_accuracy(nnc, src, tmp):
    """A bce_logits model outputs logits: accuracy reads them on the target's side of 0, not
    0.5. With w = 1 the output is x; the rows with x in (0, 0.5] and y = 1 are right only at
    0 (at 0.5, accuracy would be 3 of 6)."""
    with open(os.path.join(tmp, "d.csv"), "w") as f:
        f.write("0.3,1\n0.4,1\n0.1,1\n0.9,1\n-0.2,0\n-0.7,0\n")
    for name, output in (("logit", "output o = z"), ("probability", "output p = sigmoid(z)")):
        path = os.path.join(tmp, name + ".nn")
        with open(path, "w") as f:
            f.write(LOGIT_MODEL % output)
        exe = os.path.join(tmp, name)
        run([nnc, path, "-o", exe], tmp)
        out = run([exe, "train", "--epochs", "0", "--save", "w"], tmp).stdout
        acc = number(out, "final accuracy")
        if acc != 1.0:
            raise Failure(f"{name} output: final accuracy {acc}, wanted 1.0\n{out}")
        if number(run([exe, "eval", "--weights", "w"], tmp).stdout, "accuracy") != 1.0:
            raise Failure(f"{name} output: eval's accuracy differs from train's")


def needs_loader(path):
    """True when the ELF file asks for a dynamic loader (has a PT_INTERP program header)."""
    with open(path, "rb") as f:
        elf = f.read()
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        raise Failure(f"{path} is not a 64-bit ELF file")
    phoff, = struct.unpack_from("<Q", elf, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", elf, 0x36)
    types = [struct.unpack_from("<I", elf, phoff + i * phentsize)[0] for i in range(phnum)]
    return 3 in types


def case_static(nnc, src, tmp):
    dynamic = build(nnc, src, "xor", tmp)
    static = os.path.join(tmp, "xor_static")
    run([nnc, os.path.join(src, "examples", "xor.nn"), "--static", "-o", static], tmp)
    if needs_loader(static):
        raise Failure("--static made an executable that needs the dynamic loader")
    if not needs_loader(dynamic):
        raise Failure("the check cannot tell: the ordinary executable needs no loader either")
    a = run([dynamic, "train", "--no-save"], tmp).stdout
    b = run([static, "train", "--no-save"], tmp).stdout
    if a != b or number(b, "final accuracy") != 1.0:
        raise Failure(f"the static executable trains differently:\n{a}\n{b}")


def case_optimizers(nnc, src, tmp):
    """Every optimizer of the runtime (train --help lists them, a row each of
    runtime/optimizers.def) is one a train block can name, and the compiler's hint for an
    unknown one lists the same: the compiler keeps no list of its own."""
    exe = build(nnc, src, "parabola", tmp)
    block = run([exe, "train", "--help"], tmp).stdout.split("\noptimizers (--optimizer NAME):\n")
    names = [line.split()[0] for line in block[-1].splitlines()]
    if len(block) != 2 or len(names) < 2:
        raise Failure(f"no optimizers in train --help:\n{block}")
    with open(os.path.join(src, "examples", "parabola.nn")) as f:
        source = f.read()
    if "optimizer = sgd(lr = 0.05)" not in source:
        raise Failure("examples/parabola.nn no longer says optimizer = sgd(lr = 0.05)")
    model = os.path.join(tmp, "p.nn")
    for name in names + ["no_such"]:
        with open(model, "w") as f:
            f.write(source.replace("optimizer = sgd(", f"optimizer = {name}("))
        if name == "no_such":
            proc = run([nnc, model, "-o", os.path.join(tmp, "p")], tmp, want_status=1)
            hint = f"hint: the optimizers are {', '.join(names[:-1])} and {names[-1]}\n"
            if "error: unknown optimizer" not in proc.stderr or hint not in proc.stderr:
                raise Failure(f"wanted an unknown optimizer and {hint!r}:\n{proc.stderr}")
            continue
        run([nnc, model, "-o", os.path.join(tmp, "p")], tmp)
        usage = run([os.path.join(tmp, "p"), "train", "--help"], tmp).stdout
        if not re.search(rf"^  --optimizer NAME .*\(default: {name}\)$", usage, re.M):
            raise Failure(f"optimizer = {name}(...) is not the default:\n{usage}")
        out = run([os.path.join(tmp, "p"), "train", "--steps", "3", "--no-save"], tmp).stdout
        number(out, "final loss")


def main():
    nnc, src, case = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            globals()["case_" + case](nnc, src, tmp)
        except Failure as e:
            print(f"FAIL {case}: {e}")
            print("0 passed, 1 failed")
            return 1
    print(f"ok {case}")
    print("1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
