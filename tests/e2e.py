#!/usr/bin/env python3
"""End-to-end tests: compile an example with nnc, train it, check what it learned.

usage: e2e.py NNC SOURCE_DIR CASE
Each case builds in a fresh temporary folder and runs the binary from there, so data paths
written in the .nn files must resolve against the .nn file's own folder.
"""
import json
import math
import os
import random
import re
import signal
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


# The runtime's warning of more --workers or --hogwild threads than CPUs (train.c): a
# machine of one CPU prints it for 2 threads, one of two CPUs for 3.
CPU_WARNING = "starts more threads than the"


def without_cpu_warning(stderr):
    """stderr without that warning."""
    return "".join(line for line in stderr.splitlines(keepends=True) if CPU_WARNING not in line)


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


def case_train_block_overrides(nnc, src, tmp):
    """`lr = 0.1` at the top of a train block is the rate optimizer = sgd(lr = 0.1) gives; a
    --validation-data FILE on the command line overrides the block's validation fraction, and
    --validation its validation file; both on the command line are refused."""
    model = ("model m {\n    input x[1]\n    target y[1]\n    param w = 0\n"
             "    loss = (sum(x) * w - sum(y))^2\n}\n")
    rng = random.Random(3)
    rows = [(round(rng.uniform(-1, 1), 4),) for _ in range(40)]
    for name, part in [("d.csv", rows[:30]), ("v.csv", rows[30:])]:
        with open(os.path.join(tmp, name), "w") as f:
            f.write("".join(f"{x},{3 * x}\n" for (x,) in part))
    outputs = []
    for settings in ["lr = 0.1", "optimizer = sgd(lr = 0.1)"]:
        with open(os.path.join(tmp, "m.nn"), "w") as f:
            f.write(model + f"train m {{\n    data = csv(\"d.csv\")\n    {settings}\n"
                    "    validation = 0.2\n    batch = 4\n    epochs = 3\n    shuffle = off\n}\n")
        exe = os.path.join(tmp, "m")
        run([nnc, os.path.join(tmp, "m.nn"), "-o", exe], tmp)
        help_text = run([exe, "train", "--help"], tmp).stdout
        if not re.search(r"^  --lr X .*\(default: 0\.1\)$", help_text, re.M):
            raise Failure(f"{settings}: --lr's default is not 0.1:\n{help_text}")
        outputs.append(run([exe, "train", "--no-save", "--quiet"], tmp).stdout)
    if outputs[0] != outputs[1]:
        raise Failure(f"lr = 0.1 and sgd(lr = 0.1) trained differently:\n{outputs[0]}\n{outputs[1]}")
    # Before, the block's fraction and the file together were refused; the file's rows are
    # now the validation rows: eval of the saved weights on them gives the same loss.
    out = run([exe, "train", "--validation-data", "v.csv", "--save", "w.safetensors",
               "--quiet"], tmp).stdout
    evaluated = run([exe, "eval", "--weights", "w.safetensors", "--data", "v.csv"], tmp).stdout
    if number(out, "validation loss") != number(evaluated, "loss"):
        raise Failure(f"the validation rows are not v.csv's:\n{out}\n---\n{evaluated}")
    both = run([exe, "train", "--validation", "0.2", "--validation-data", "v.csv"], tmp,
               want_status=2).stderr
    if both != "m: error: give --validation F or --validation-data FILE, not both\n":
        raise Failure(f"both on the command line: {both!r}")


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


LAYOUT_MODEL = """
model m {
    input  x[2, 3]
    param  p = 0
    output o = concat(transpose(x)[::2], permute(x, 1, 0)[1:2], x[-1:, :2][0][-1] + transpose(x)[:1], axis = 0) + p
    loss = sum(o * o)
}
"""


def case_layout_predict(nnc, src, tmp):
    """Indexing, transpose, permute and concat move the right elements, sample by sample,
    through the compiled predict: for x = [[1, 2, 3], [4, 5, 6]], x^T[::2] is rows (1, 4)
    and (3, 6), permute(x, 1, 0)[1:2] the row (2, 5), and x[-1:, :2][0][-1] + x^T[:1] is
    5 + (1, 4)."""
    del src
    model = os.path.join(tmp, "layout.nn")
    with open(model, "w") as f:
        f.write(LAYOUT_MODEL)
    exe = os.path.join(tmp, "layout")
    run([nnc, model, "-o", exe], tmp)
    header = json.dumps({"p": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]}}).encode()
    weights = os.path.join(tmp, "w.safetensors")
    with open(weights, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + struct.pack("<f", 0))
    rows = "1,2,3,4,5,6\n10,20,30,40,50,60\n"
    out = run([exe, "predict", "--weights", weights], tmp, stdin=rows).stdout.split()
    want = ["1,4,3,6,2,5,6,9", "10,40,30,60,20,50,60,90"]
    if out != want:
        raise Failure(f"predict printed {out}, wanted {want}")


LAYOUT_GRAD_MODEL = """
model m {
    input  x[2, 3, 4]
    param  w[2, 3, 4]
    h = permute(x * w, 2, 0, 1)
    c = concat(h[0], w[:, :, -1], axis = 1)
    loss = sum(c ^ 2)
}
"""


TRANSPOSED_WEIGHT_MODEL = """
model m {
    input  x[3]
    target y[2]
    param  W[2, 3] = uniform(-1, 1)
    param  V[4, 2] = uniform(-1, 1)
    h = tanh(x @ transpose(W))
    z = transpose(V @ transpose(transpose(W)))
    loss = sum((h - y) ^ 2) + sum(z[:, 0] * x)
}
"""


# ---- batch norm: running statistics (state), modes, weights files, resume ----

BN_MODEL = """import "nn"
model bn {
    input  x[3]
    target y[1]
    h = batchnorm(x)
    p = dense(h, 1)
    loss = mse(p, y)
}
train bn {
    data    = csv("bn.csv", x = 0..2, y = 3)
    batch   = 5
    epochs  = 3
    shuffle = off
    optimizer = sgd(lr = 0.1, momentum = 0.9)
}
"""


# ---- predict: bindings, the loss, classes and probabilities ----

def read_safetensors(path):
    """{name: (shape, [values])} of an F32 or F64 safetensors file."""
    import json
    with open(path, "rb") as f:
        blob = f.read()
    n, = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + n])
    tensors = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        begin, end = t["data_offsets"]
        code, size = ("<f", 4) if t["dtype"] == "F32" else ("<d", 8)
        data = blob[8 + n + begin:8 + n + end]
        tensors[name] = (t["shape"], [struct.unpack_from(code, data, i)[0]
                                      for i in range(0, len(data), size)])
    return tensors


def dense(x, layer, w):
    """x @ W + b of the stdlib's dense layer, from the weights file."""
    (n, units), W = w[layer + ".W"]
    _, b = w[layer + ".b"]
    return [sum(x[i] * W[i * units + j] for i in range(n)) + b[j] for j in range(units)]


def linear(x, layer, w):
    """x @ W of the stdlib's linear layer."""
    (n, units), W = w[layer + ".W"]
    return [sum(x[i] * W[i * units + j] for i in range(n)) for j in range(units)]


def rows_of(text):
    return [[float(v) for v in line.split(",")] for line in text.splitlines()]


def close(a, b, tol=1e-5):
    return len(a) == len(b) and all(abs(x - y) <= tol * max(1.0, abs(y)) for x, y in zip(a, b))


PROBE_MODEL = """import "nn"

model probe {
    input  x[3]
    target y[2]
    a = x * 2                   # read only inside its fused loop: a register in training
    u = linear(a + 1, 4)        # its memory is the next product's once tanh has read it
    b = tanh(u)
    c = tanh(dense(b, 4))
    d = tanh(dense(c, 4))
    output z = dense(d, 2)
    err  = z - y                # reads the target: predict cannot print it
    loss = sum(err^2)
}

train probe {
    data  = csv("d.csv", x = 0..2, y = 3..4)
    batch = 4
}
"""

FIXED_MODEL = """model fixed {
    input  x[2]
    target y[1]
    param  w[2] = ones
    w3 = w * 3
    output p = sum(x * w3)
    loss = (p - sum(y))^2
}

train fixed {
    data = csv("d.csv", x = 0..1, y = 2)
}
"""

PROBE_ROWS = [[0.5, -1.0, 2.0], [0.0, 0.25, -0.75], [1.5, 1.0, 0.5]]


def case_predict_bindings(nnc, src, tmp):
    """predict --output prints any named binding the inputs determine, one row per sample,
    with the values a forward pass computes from the weights (in a register in training, or
    in a buffer a later step reuses: predict keeps it all the same)."""
    with open(os.path.join(tmp, "probe.nn"), "w") as f:
        f.write(PROBE_MODEL)
    with open(os.path.join(tmp, "d.csv"), "w") as f:
        f.write("".join(",".join(map(str, r + [0, 1])) + "\n" for r in PROBE_ROWS))
    exe = os.path.join(tmp, "probe")
    run([nnc, os.path.join(tmp, "probe.nn"), "-o", exe], tmp)
    run([exe, "train", "--epochs", "0", "--save", "w"], tmp)
    w = read_safetensors(os.path.join(tmp, "w"))
    rows = "".join(",".join(map(str, r)) + "\n" for r in PROBE_ROWS)
    want = {"a": [], "u": [], "b": [], "c": [], "d": [], "z": []}
    for x in PROBE_ROWS:
        a = [2 * v for v in x]
        u = linear([v + 1 for v in a], "u", w)
        b = [math.tanh(v) for v in u]
        c = [math.tanh(v) for v in dense(b, "c", w)]
        d = [math.tanh(v) for v in dense(c, "d", w)]
        for name, value in zip("aubcdz", (a, u, b, c, d, dense(d, "z", w))):
            want[name].append(value)
    for names in ("a", "u", "b", "c", "d", "z", "u,d", "z,a"):
        got = rows_of(run([exe, "predict", "--weights", "w", "--output", names], tmp,
                          stdin=rows).stdout)
        expected = [sum((want[n][i] for n in names.split(",")), []) for i in range(3)]
        if len(got) != 3 or not all(close(g, e) for g, e in zip(got, expected)):
            raise Failure(f"predict --output {names}: {got}, wanted {expected}")
    plain = run([exe, "predict", "--weights", "w"], tmp, stdin=rows).stdout
    if plain != run([exe, "predict", "--weights", "w", "--output", "z"], tmp, stdin=rows).stdout:
        raise Failure("predict and predict --output z print different rows")
    err = run([exe, "predict", "--weights", "w", "--output", "err"], tmp, want_status=2,
              stdin=rows).stderr
    if err != "probe: error: --output: model 'probe' has no binding 'err' " \
              "(its bindings: a, u, b, c, d, z)\n":
        raise Failure(f"an unknown --output name: {err!r}")
    err = run([exe, "predict", "--weights", "w", "--output", "z", "--loss"], tmp,
              want_status=2, stdin=rows).stderr
    if "give one of --output, --loss, --classes and --probabilities" not in err:
        raise Failure(f"--output with --loss: {err!r}")
    # a binding of params alone has no batch axis: the same values on every row
    with open(os.path.join(tmp, "fixed.nn"), "w") as f:
        f.write(FIXED_MODEL)
    run([nnc, os.path.join(tmp, "fixed.nn"), "-o", os.path.join(tmp, "fixed")], tmp)
    run([os.path.join(tmp, "fixed"), "train", "--epochs", "0", "--save", "fw"], tmp)
    got = run([os.path.join(tmp, "fixed"), "predict", "--weights", "fw", "--output", "w3,p"], tmp,
              stdin="1,2\n3,4\n").stdout
    if got != "3,3,9\n3,3,21\n":
        raise Failure(f"predict --output w3,p of a binding without a batch axis: {got!r}")


def digits_rows(src, with_label):
    with open(os.path.join(src, "examples", "digits.csv")) as f:
        lines = f.read().split()
    return [line if with_label else line.rsplit(",", 1)[0] for line in lines]


def softmax(z):
    top = max(z)
    e = [math.exp(v - top) for v in z]
    return [v / sum(e) for v in e]


def case_predict_loss_and_classes(nnc, src, tmp):
    """predict --loss prints each row's loss (eval's loss is their mean) and says so when
    the targets are missing; --classes and --probabilities read logits as the loss does."""
    exe = build(nnc, src, "digits", tmp)
    run([exe, "train", "--epochs", "2", "--save", "w"], tmp)
    data = os.path.join(src, "examples", "digits.csv")
    losses = [float(v) for v in
              run([exe, "predict", "--weights", "w", "--loss", "--data", data], tmp).stdout.split()]
    ev = run([exe, "eval", "--weights", "w", "--data", data], tmp).stdout
    if len(losses) != 1797 or not close([sum(losses) / len(losses)], [number(ev, "loss")], 1e-5):
        raise Failure(f"predict --loss: {len(losses)} rows averaging "
                      f"{sum(losses) / max(1, len(losses))}; eval says\n{ev}")
    by_name = run([exe, "predict", "--weights", "w", "--loss", "--columns", "x=0..63,y=64"], tmp,
                  stdin="\n".join(digits_rows(src, True)) + "\n").stdout
    if [float(v) for v in by_name.split()] != losses:
        raise Failure("predict --loss --columns x=0..63,y=64 from stdin prints other losses")
    pixels = "\n".join(digits_rows(src, False)[:5]) + "\n"
    err = run([exe, "predict", "--weights", "w", "--loss"], tmp, want_status=1,
              stdin=pixels).stderr
    if err != "<stdin>: error: predict --loss needs the targets: model 'digits' reads target " \
              "'y' from column 64 (the model's columns, or --columns), and the rows have 64 " \
              "columns\n":
        raise Failure(f"predict --loss without targets: {err!r}")
    outputs = rows_of(run([exe, "predict", "--weights", "w"], tmp, stdin=pixels).stdout)
    classes = run([exe, "predict", "--weights", "w", "--classes"], tmp, stdin=pixels).stdout
    probs = rows_of(run([exe, "predict", "--weights", "w", "--probabilities"], tmp,
                        stdin=pixels).stdout)
    if classes.split() != [str(z.index(max(z))) for z in outputs]:
        raise Failure(f"--classes {classes.split()} is not the argmax of {outputs}")
    if not all(close(p, softmax(z), 1e-6) for p, z in zip(probs, outputs)) or len(probs) != 5:
        raise Failure(f"--probabilities {probs} is not the softmax of the logits {outputs}")
    # one output: a logit gets its sigmoid and is a class at 0; a probability is as it is
    with open(os.path.join(tmp, "d.csv"), "w") as f:
        f.write("0.3,1\n0.4,1\n0.1,1\n0.9,1\n-0.2,0\n-0.7,0\n")
    xs = "0.3\n-0.2\n2\n"
    for name, output, probabilities in (
            ("logit", "output o = z", [1 / (1 + math.exp(-x)) for x in (0.3, -0.2, 2)]),
            ("probability", "output p = sigmoid(z)", [1 / (1 + math.exp(-x)) for x in (0.3, -0.2, 2)])):
        path = os.path.join(tmp, name + ".nn")
        with open(path, "w") as f:
            f.write(LOGIT_MODEL % output)
        exe = os.path.join(tmp, name)
        run([nnc, path, "-o", exe], tmp)
        run([exe, "train", "--epochs", "0", "--save", "w1"], tmp)
        got = [float(v) for v in run([exe, "predict", "--weights", "w1", "--probabilities"], tmp,
                                     stdin=xs).stdout.split()]
        if not close(got, probabilities, 1e-6):
            raise Failure(f"{name}: --probabilities {got}, wanted {probabilities}")
        got = run([exe, "predict", "--weights", "w1", "--classes"], tmp, stdin=xs).stdout
        if got.split() != ["1", "0", "1"]:
            raise Failure(f"{name}: --classes {got.split()}, wanted 1, 0, 1")
    exe = build(nnc, src, "autoencoder", tmp)
    err = run([exe, "predict", "--weights", "w", "--classes"], tmp, want_status=2,
              stdin=pixels).stderr
    if "error: --classes is for classifiers, and model 'autoencoder' is not one" not in err:
        raise Failure(f"--classes of a model that is no classifier: {err!r}")
    err = run([exe, "predict", "--weights", "w", "--loss", "--columns", "x=0..63"], tmp,
              want_status=2, stdin=pixels).stderr
    if "error: --columns is for predict --loss of a model with targets" not in err:
        raise Failure(f"--columns for a model without targets: {err!r}")


def case_autoencoder(nnc, src, tmp):
    """examples/autoencoder.nn: the reconstruction error falls 5x from the untrained
    weights', the code is 8 numbers a row, and random-noise images reconstruct >= 5x worse
    than real digits (medians of predict --loss, the anomaly score)."""
    import random
    import statistics
    exe = build(nnc, src, "autoencoder", tmp)
    start = number(run([exe, "train", "--epochs", "0", "--no-save"], tmp).stdout, "final loss")
    trained = number(run([exe, "train", "--save", "w"], tmp).stdout, "final loss")
    if not trained * 5 <= start:
        raise Failure(f"autoencoder: the loss went from {start} to {trained}, wanted 5x lower")
    digits = "\n".join(digits_rows(src, False)[:300]) + "\n"
    rng = random.Random(9)
    noise = "".join(",".join(str(rng.randint(0, 16)) for _ in range(64)) + "\n"
                    for _ in range(300))
    codes = rows_of(run([exe, "predict", "--weights", "w", "--output", "code"], tmp,
                        stdin=digits).stdout)
    if len(codes) != 300 or any(len(c) != 8 for c in codes):
        raise Failure(f"predict --output code: {len(codes)} rows of {set(map(len, codes))} numbers")
    scores = {}
    for name, rows in (("digits", digits), ("noise", noise)):
        out = run([exe, "predict", "--weights", "w", "--loss"], tmp, stdin=rows).stdout
        scores[name] = [float(v) for v in out.split()]
        if len(scores[name]) != 300:
            raise Failure(f"predict --loss printed {len(scores[name])} rows of {name}")
    real, odd = statistics.median(scores["digits"]), statistics.median(scores["noise"])
    if not odd >= 5 * real:
        raise Failure(f"autoencoder: median anomaly score {odd} of noise, {real} of digits: "
                      f"wanted >= 5x")


IMAGE_MODEL = """model pixels {
    input  x%s
    target y[1]
    param  w%s = ones
    output s = sum(x * w)
    loss   = sum((s - y)^2)
}

train pixels {
    data = idx("img", "lab")
}
"""


def case_layout_grad(nnc, src, tmp):
    """--emit=grad shows the backward of each layout op as the textbook has it: concat's
    gradient is the two slices of g, a subscript's a scatter into zeros at the same places
    (negative indices resolved), permute's the inverse order."""
    del src
    model = os.path.join(tmp, "g.nn")
    with open(model, "w") as f:
        f.write(LAYOUT_GRAD_MODEL)
    text = run([nnc, model, "--emit=grad"], tmp).stdout
    backward = text[text.index("backward of"):]
    wanted = [
        # (a slice of a named value is named after it: h[0] is h[0, :, :])
        r"%h\[0\]\.grad : \[2, 3\] += slice %c\.grad\[:, :3\] +; #7 d concat\(a,b\)/da: g's slice where a went",
        r"%t18 : \[2, 3\] += slice %c\.grad\[:, 3:\] +; #7 d concat\(a,b\)/db: g's slice where b went",
        r"= scatter %w\[:, :, 3\]\.grad into zeros \[2, 3, 4\] at \[:, :, 3\] ; #6 d x\[s\]/dx = scatter of g into zeros at s",
        r"%h\.grad : \[4, 2, 3\] += scatter %h\[0\]\.grad into zeros \[4, 2, 3\] at \[0, :, :\]",
        r"%t3\.grad : \[2, 3, 4\] += permute %h\.grad, \(1, 2, 0\) +; #4 d permute\(u\)/du: permute of g by the inverse order",
    ]
    for pattern in wanted:
        if not re.search(pattern, backward):
            raise Failure(f"--emit=grad has no line matching {pattern!r}:\n{backward}")
    # A transposed matrix is read by the product through its flags: no copy, forward or back.
    with open(model, "w") as f:
        f.write(TRANSPOSED_WEIGHT_MODEL)
    text = run([nnc, model, "--emit=grad"], tmp).stdout
    for pattern in [r"%t6 : \[2\] += matmul \$x, @W\^T ", r"%t10 : \[4, 3\] += matmul @V, @W ",
                    r"%V\.grad : \[4, 2\] += matmul %z\.grad\^T, @W\^T "]:
        if not re.search(pattern, text):
            raise Failure(f"--emit=grad has no line matching {pattern!r}:\n{text}")
    if re.search(r"= transpose @W", text):
        raise Failure(f"a transpose of W is still copied:\n{text}")


def idx_file(dims, data):
    return bytes([0, 0, 8, len(dims)]) + struct.pack(">%dI" % len(dims), *dims) + bytes(data)


def case_idx_image_shape(nnc, src, tmp):
    """IDX images of 2x2 feed an input declared [1, 2, 2] as they feed one declared [4]:
    row-major, the same values (w = 1: the output is each image's sum); 3x3 images are an
    error that says how many values the input wanted."""
    with open(os.path.join(tmp, "img"), "wb") as f:
        f.write(idx_file([3, 2, 2], range(12)))
    with open(os.path.join(tmp, "lab"), "wb") as f:
        f.write(idx_file([3], [1, 2, 3]))
    with open(os.path.join(tmp, "img9"), "wb") as f:
        f.write(idx_file([2, 3, 3], range(18)))
    for shape in ("[1, 2, 2]", "[4]"):
        with open(os.path.join(tmp, "m.nn"), "w") as f:
            f.write(IMAGE_MODEL % (shape, shape))
        run([nnc, os.path.join(tmp, "m.nn"), "-o", os.path.join(tmp, "m")], tmp)
        exe = os.path.join(tmp, "m")
        out = run([exe, "train", "--epochs", "0", "--save", "w"], tmp).stdout
        # sums 6, 22, 38 against labels 1, 2, 3: (25 + 400 + 1225) / 3
        if abs(number(out, "final loss") - 550.0) > 1e-3:
            raise Failure(f"x{shape}: {out}")
        got = run([exe, "predict", "--weights", "w", "--data", "img"], tmp).stdout
        if got.split() != ["6", "22", "38"]:
            raise Failure(f"x{shape}: predict on the IDX images printed {got!r}")
        err = run([exe, "train", "--data", "img9,lab", "--no-save"], tmp, want_status=1).stderr
        wanted = "img9:byte 8: error: each IDX sample has 9 values, the model's input wants 4\n"
        if err != wanted:
            raise Failure(f"x{shape}, 3x3 images: {err!r}, wanted {wanted!r}")


NORMS_MODEL = """model lin {
    input  x[2]
    target y[1]
    param  W[2, 1] = ones
    param  b[1]    = zeros
    output p = x @ W + b        # W's update is fused into its gradient's GEMM
    loss   = sum((p - y)^2)
}

train lin {
    data      = csv("d.csv", x = 0..1, y = 2)
    optimizer = sgd(lr = 0.05)
    batch     = 2
    epochs    = 2
    shuffle   = off
}
"""

NORMS_ROWS = [[1.0, 2.0, 1.0], [0.5, -1.0, 2.0], [2.0, 1.0, -1.0]]


def lin_gradient(W, b, rows):
    """d cost / d (W, b) for the mean over rows of (x W + b - y)^2."""
    gW, gb = [0.0, 0.0], 0.0
    for x0, x1, y in rows:
        r = 2 * (x0 * W[0] + x1 * W[1] + b - y) / len(rows)
        gW, gb = [gW[0] + r * x0, gW[1] + r * x1], gb + r
    return gW, gb


def lin_last_steps():
    """NORMS_MODEL's two epochs of plain SGD, by hand: for each epoch's last step, the
    gradient (gW, gb), and W, b before and after it."""
    W, b, last = [1.0, 1.0], 0.0, []
    for epoch in range(2):
        for batch in (NORMS_ROWS[:2], NORMS_ROWS[2:]):
            gW, gb = lin_gradient(W, b, batch)
            before = (W, b)
            W, b = [W[0] - 0.05 * gW[0], W[1] - 0.05 * gW[1]], b - 0.05 * gb
        last.append((gW, gb, before, (W, b)))
    return last


def build_lin(nnc, tmp):
    with open(os.path.join(tmp, "lin.nn"), "w") as f:
        f.write(NORMS_MODEL)
    with open(os.path.join(tmp, "d.csv"), "w") as f:
        f.write("".join(",".join(map(str, r)) + "\n" for r in NORMS_ROWS))
    exe = os.path.join(tmp, "lin")
    run([nnc, os.path.join(tmp, "lin.nn"), "-o", exe], tmp)
    return exe


def check_same_weights(tmp, plain, other, option):
    with open(os.path.join(tmp, plain), "rb") as a, open(os.path.join(tmp, other), "rb") as b:
        if a.read() != b.read():
            raise Failure(f"{option} changed the trained weights")


def case_grad_norms(nnc, src, tmp):
    """train --log-grad-norms: a column per param in --log with the norm of its gradient at
    each epoch's last step (worked out here by hand through plain SGD), a panel in --plot;
    the weights are the same bits as without the option."""
    exe = build_lin(nnc, tmp)
    run([exe, "train", "--quiet", "--save", "plain", "--log", "plain.csv", "--plot", "plain.svg"],
        tmp)
    run([exe, "train", "--quiet", "--save", "norms", "--log", "norms.csv", "--plot", "norms.svg",
         "--log-grad-norms"], tmp)
    check_same_weights(tmp, "plain", "norms", "--log-grad-norms")
    want = [[math.hypot(*gW), abs(gb)] for gW, gb, _, _ in lin_last_steps()]
    with open(os.path.join(tmp, "norms.csv")) as f:
        header, *rows = f.read().splitlines()
    with open(os.path.join(tmp, "plain.csv")) as f:
        plain_header = f.readline().strip()
    if header != plain_header + ",grad_norm.W,grad_norm.b":
        raise Failure(f"--log-grad-norms log header: {header!r}")
    got = [[float(v) for v in row.split(",")[-2:]] for row in rows]
    if len(got) != 2 or not all(close(g, w, 1e-5) for g, w in zip(got, want)):
        raise Failure(f"gradient norms {got}, wanted {want}")
    with open(os.path.join(tmp, "norms.svg")) as f:
        svg = f.read()
    with open(os.path.join(tmp, "plain.svg")) as f:
        plain = f.read()
    import xml.dom.minidom
    xml.dom.minidom.parseString(svg)
    if "gradient norm (log scale)" not in svg or svg.count("<polyline") != plain.count("<polyline") + 2 \
            or ">W</text>" not in svg or ">b</text>" not in svg:
        raise Failure(f"--plot with --log-grad-norms has no panel of the two params' norms:\n{svg}")
    if "gradient norm" in plain:
        raise Failure("--plot without --log-grad-norms drew gradient norms")


def case_update_ratios(nnc, src, tmp):
    """train --log-update-ratios: a column per param in --log with ||update|| / ||weights||
    at each epoch's last step (worked out here by hand through plain SGD), a panel in
    --plot next to the gradient norms'; the weights are the same bits as without it."""
    exe = build_lin(nnc, tmp)
    run([exe, "train", "--quiet", "--save", "plain", "--log", "plain.csv"], tmp)
    run([exe, "train", "--quiet", "--save", "ratios", "--log", "ratios.csv", "--plot",
         "ratios.svg", "--log-grad-norms", "--log-update-ratios"], tmp)
    check_same_weights(tmp, "plain", "ratios", "--log-update-ratios")
    want = []
    for _, _, (old_W, old_b), (W, b) in lin_last_steps():
        dW = math.hypot(W[0] - old_W[0], W[1] - old_W[1])
        want.append([dW / math.hypot(*old_W), abs(b - old_b) / abs(old_b)])
    with open(os.path.join(tmp, "ratios.csv")) as f:
        header, *rows = f.read().splitlines()
    with open(os.path.join(tmp, "plain.csv")) as f:
        plain_header = f.readline().strip()
    wanted_header = plain_header + ",grad_norm.W,grad_norm.b,update_ratio.W,update_ratio.b"
    if header != wanted_header:
        raise Failure(f"log header {header!r}, wanted {wanted_header!r}")
    got = [[float(v) for v in row.split(",")[-2:]] for row in rows]
    if len(got) != 2 or not all(close(g, w, 1e-4) for g, w in zip(got, want)):
        raise Failure(f"update ratios {got}, wanted {want}")
    with open(os.path.join(tmp, "ratios.svg")) as f:
        svg = f.read()
    import xml.dom.minidom
    xml.dom.minidom.parseString(svg)
    if "gradient norm (log scale)" not in svg or "||update|| / ||weights|| (log scale)" not in svg:
        raise Failure(f"--plot has no panels of gradient norms and update ratios:\n{svg}")
    if svg.count(">W</text>") != 2 or svg.count(">b</text>") != 2:
        raise Failure(f"--plot: each panel names its two params:\n{svg}")


def svg_elements(svg, tag, class_name):
    import xml.dom.minidom
    doc = xml.dom.minidom.parseString(svg)
    return [e for e in doc.getElementsByTagName(tag) if e.getAttribute("class") == class_name]


def f32(v):
    return struct.unpack("f", struct.pack("f", v))[0]


def value_pairs(element):
    return [tuple(float(v) for v in pair.split(",")) for pair in
            element.getAttribute("data-values").split()]


def check_drawn_as_values(element, what):
    """The polyline's pixels are one linear map of its data-values (to their 2 decimals)."""
    pixels = [tuple(float(v) for v in pair.split(",")) for pair in
              element.getAttribute("points").split()]
    values = value_pairs(element)
    if len(pixels) != len(values) or len(values) < 2:
        raise Failure(f"{what}: {len(pixels)} points drawn, {len(values)} values")
    for k in (0, 1):
        lo = min(range(len(values)), key=lambda i: values[i][k])
        hi = max(range(len(values)), key=lambda i: values[i][k])
        if values[hi][k] == values[lo][k]:
            continue
        scale = (pixels[hi][k] - pixels[lo][k]) / (values[hi][k] - values[lo][k])
        for v, p in zip(values, pixels):
            if abs(pixels[lo][k] + scale * (v[k] - values[lo][k]) - p[k]) > 0.05:
                raise Failure(f"{what}: point {p} is not drawn where {v} belongs")


def descent_run(nnc, src, tmp, model, params):
    exe = os.path.join(tmp, model)
    lessons = os.path.join(src, "examples", "lessons")
    run([nnc, os.path.join(lessons, params[0]), "--model", model, "-o", exe], tmp)
    plotted = run([exe, "train", "--quiet", "--no-save", "--trace", params[1], "--trace-out",
                   model + ".csv", "--plot", model + ".svg"], tmp).stdout
    plain = run([exe, "train", "--quiet", "--no-save"], tmp).stdout
    if plotted != plain:  # the panel's grid of losses leaves the final weights alone
        raise Failure(f"{model}: with --plot the run ends with\n{plotted}without\n{plain}")
    with open(os.path.join(tmp, model + ".csv")) as f:
        rows = [[float(v) for v in line.split(",")] for line in f.read().splitlines()[1:]]
    with open(os.path.join(tmp, model + ".svg")) as f:
        return rows, f.read()


def check_markers(svg, first, last, what):
    """The start and the end are marked, with the path's first and last values."""
    for name, row in (("start", first), ("end", last)):
        marks = svg_elements(svg, "circle", name)
        if len(marks) != 1:
            raise Failure(f"{what}: {len(marks)} '{name}' markers")
        title = marks[0].getElementsByTagName("title")[0].firstChild.data
        got = [float(v) for v in re.findall(r"-?[\d.]+(?:e[-+]?\d+)?", title)]
        if [f32(v) for v in got[:2]] != [f32(v) for v in row]:
            raise Failure(f"{what}: the {name} marker says {title!r}, the trace {row}")


def case_descent_plot(nnc, src, tmp):
    """--plot of a model without inputs draws the function around the path of descent: a
    curve in 1D, contour lines in 2D, the path's points exactly the trace's, start and end
    marked; models with inputs or with more than two numbers of params get no such panel."""
    rows, svg = descent_run(nnc, src, tmp, "local", ("descent_1d.nn", "x"))
    path = svg_elements(svg, "polyline", "path")
    if len(path) != 1:
        raise Failure(f"1D: {len(path)} path polylines")
    got = value_pairs(path[0])
    want = [(x, loss) for _, x, loss in rows]
    if len(got) != len(want) or any(f32(a) != f32(c) or f32(b) != f32(d)
                                    for (a, b), (c, d) in zip(got, want)):
        raise Failure(f"1D: the path's (x, loss) {got[:3]}... are not the trace's {want[:3]}...")
    check_drawn_as_values(path[0], "1D path")
    curve = svg_elements(svg, "polyline", "function")
    if len(curve) != 1:
        raise Failure(f"1D: {len(curve)} function curves")
    points = value_pairs(curve[0])
    if len(points) != 201 or not (points[0][0] < 1.2 and points[-1][0] > 1.43):
        raise Failure(f"1D: the curve spans {points[0]}..{points[-1]} in {len(points)} points")
    for x, y in points:
        if abs(y - (math.cos(2 * math.pi * x) + x * x)) > 1e-4:
            raise Failure(f"1D: the curve has f({x}) = {y}")
    check_drawn_as_values(curve[0], "1D curve")
    check_markers(svg, want[0], want[-1], "1D")

    rows, svg = descent_run(nnc, src, tmp, "valley", ("peaks.nn", "x,y"))
    got = value_pairs(svg_elements(svg, "polyline", "path")[0])
    want = [(x, y) for _, x, y, _ in rows]
    if len(got) != 301 or any(f32(a) != f32(c) or f32(b) != f32(d)
                              for (a, b), (c, d) in zip(got, want)):
        raise Failure(f"2D: the path's (x, y) {got[:3]}... are not the trace's {want[:3]}...")
    contours = svg_elements(svg, "path", "contour")
    if len(contours) != 12 or not all(c.getAttribute("d").startswith("M") for c in contours):
        raise Failure(f"2D: {len(contours)} contour levels, wanted 12 with lines")
    check_markers(svg, want[0], want[-1], "2D")

    three = os.path.join(tmp, "three.nn")
    with open(three, "w") as f:
        f.write("model three {\n    param a = 1\n    param b = 2\n    param c = 3\n"
                "    loss = a^2 + b^2 + c^2\n}\n\ntrain three {\n    steps = 3\n}\n")
    run([nnc, three, "-o", os.path.join(tmp, "three")], tmp)
    run([os.path.join(tmp, "three"), "train", "--quiet", "--no-save", "--plot", "three.svg"], tmp)
    with open(os.path.join(tmp, "three.svg")) as f:
        if "path of descent" in f.read():
            raise Failure("a model with three params drew a descent path")


def bn_rows(n, seed=7):
    """Three features of unlike means and scales, and a target."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x = [rng.gauss(2, 0.5), rng.gauss(-1, 3), rng.uniform(0, 10)]
        rows.append(x + [0.3 * x[0] - 0.1 * x[1] + 0.05 * x[2] + rng.gauss(0, 0.1)])
    return rows


def bn_build(nnc, tmp, rows):
    with open(os.path.join(tmp, "bn.nn"), "w") as f:
        f.write(BN_MODEL)
    with open(os.path.join(tmp, "bn.csv"), "w") as f:
        f.write("".join(",".join(repr(v) for v in row) + "\n" for row in rows))
    exe = os.path.join(tmp, "bn")
    run([nnc, os.path.join(tmp, "bn.nn"), "--f64", "-o", exe], tmp)
    return exe


def bn_running_stats(rows, batch, epochs):
    """PyTorch's BatchNorm1d update, step by step over consecutive batches: momentum 0.1,
    the batch's unbiased variance (B - 1)."""
    mean, var = [0.0] * 3, [1.0] * 3
    for _ in range(epochs):
        for start in range(0, len(rows), batch):
            chunk = [r[:3] for r in rows[start:start + batch]]
            for j in range(3):
                m = 0.0
                for r in chunk:
                    m += r[j]
                m /= len(chunk)
                ss = 0.0
                for r in chunk:
                    ss += (r[j] - m) * (r[j] - m)
                mean[j] = 0.9 * mean[j] + 0.1 * m
                var[j] = 0.9 * var[j] + 0.1 * (ss / (len(chunk) - 1))
    return mean, var


def bn_predict(w, x, with_state=True):
    """The model in inference mode, from a weights file's tensors: running statistics."""
    mean = w["h.running_mean"] if with_state else [0.0] * 3
    var = w["h.running_var"] if with_state else [1.0] * 3
    h = [w["h.gamma"][j] * ((x[j] - mean[j]) / (var[j] + 1e-5) ** 0.5) + w["h.beta"][j]
         for j in range(3)]
    return sum(h[j] * w["p.W"][j] for j in range(3)) + w["p.b"][0]


def safetensors_parts(path):
    """The header (JSON) and the data section of a safetensors file."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def read_weights(path, prefix=""):
    """{name: values} of the F64 tensors of a safetensors file whose names start so."""
    header, body = safetensors_parts(path)
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or not name.startswith(prefix) or info["dtype"] != "F64":
            continue
        begin, end = info["data_offsets"]
        out[name] = list(struct.unpack(f"<{(end - begin) // 8}d", body[begin:end]))
    return out


def write_safetensors(path, header, parts):
    """header without data_offsets, and each tensor's raw bytes, in the same order."""
    body = b""
    for name, raw in parts.items():
        header[name]["data_offsets"] = [len(body), len(body) + len(raw)]
        body += raw
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + body)


def drop_tensor(src, dst, dropped):
    """A copy of a safetensors file without one of its tensors."""
    header, body = safetensors_parts(src)
    kept = {name: info for name, info in header.items() if name != dropped}
    parts = {name: body[info["data_offsets"][0]:info["data_offsets"][1]]
             for name, info in kept.items() if name != "__metadata__"}
    write_safetensors(dst, kept, parts)


def close_all(got, want, rel, what):
    for i, (a, b) in enumerate(zip(got, want)):
        if abs(a - b) > rel * max(1.0, abs(b)):
            raise Failure(f"{what}[{i}] = {a!r}, wanted {b!r}")
    if len(got) != len(want):
        raise Failure(f"{what}: {len(got)} values, wanted {len(want)}")


DROPOUT_COUNT_MODEL = """model count {
    input  x[4000]
    param  w = ones
    loss   = sum(dropout(x * w, RATE))
}
train count {
    data      = csv("ones.csv", x = 0..3999)
    optimizer = sgd(lr = 0)
    batch     = 1
    epochs    = 1
    seed      = 3
}
"""

DROPOUT_MLP = """import "nn"
model drop {
    input  x[64]
    target y[10]
    h        = dropout(relu(dense(x / 16, 32)), RATE)
    g        = dropout(tanh(dense(h, 16)), RATE)
    output z = dense(g, 10)
    loss     = softmax_cross_entropy(z, y)
}
train drop {
    data      = csv("d.csv", x = 0..63, y = 64)
    optimizer = sgd(lr = 0.1, momentum = 0.9)
    batch     = 24
    epochs    = 2
    seed      = 5
}
"""


def compile_text(nnc, tmp, name, text, *flags):
    with open(os.path.join(tmp, name + ".nn"), "w") as f:
        f.write(text)
    run([nnc, name + ".nn", *flags, "-o", name], tmp)
    return os.path.join(tmp, name)


def case_dropout_rate(nnc, src, tmp):
    """train --dropout X: every dropout's rate at run time. The fraction of elements kept is
    1 - X (counted through the loss: the sum of a dropout of 4000 ones is kept / (1 - X)),
    and the weights are the bits of a model compiled with rate X, in f32 and f64, with
    workers too, and from the train block's dropout = X. A dropout compiled with rate 0
    drops nothing and takes the run's rate too; a model without dropout takes no --dropout
    (its help does not list it)."""
    with open(os.path.join(tmp, "ones.csv"), "w") as f:
        f.write(",".join(["1"] * 4000) + "\n")
    exe = compile_text(nnc, tmp, "count", DROPOUT_COUNT_MODEL.replace("RATE", "0.5"))
    for rate in (None, 0.3, 0.8, 0.0):
        args = [] if rate is None else ["--dropout", str(rate)]
        run([exe, "train", "--quiet", "--no-save", "--log", "log.csv", *args], tmp)
        with open(os.path.join(tmp, "log.csv")) as f:
            loss = float(f.read().splitlines()[1].split(",")[1])
        keep = 1 - (0.5 if rate is None else rate)
        kept = loss * keep / 4000
        if abs(kept - keep) > 0.025 or (rate == 0.0 and loss != 4000):
            raise Failure(f"--dropout {rate}: kept {kept} of the elements, wanted {keep}")
    with open(os.path.join(tmp, "d.csv"), "w") as f:
        f.write("\n".join(digits_rows(src, True)[:120]) + "\n")
    for flags in ([], ["--f64"]):
        at = {r: compile_text(nnc, tmp, f"drop{r}", DROPOUT_MLP.replace("RATE", r), *flags)
              for r in ("0.5", "0.3", "0")}
        plain = DROPOUT_MLP.replace("dropout(relu(dense(x / 16, 32)), RATE)",
                                    "relu(dense(x / 16, 32))")
        at["none"] = compile_text(nnc, tmp, "dropnone",
                                  plain.replace("dropout(tanh(dense(h, 16)), RATE)",
                                                "tanh(dense(h, 16))"), *flags)
        for extra in ([], ["--workers", "2"]):
            base = ["train", "--quiet", *extra]
            run([at["0.3"], *base, "--save", "compiled.st"], tmp)
            run([at["0.5"], *base, "--dropout", "0.3", "--save", "override.st"], tmp)
            run([at["0.5"], *base, "--save", "own.st"], tmp)
            read = lambda name: open(os.path.join(tmp, name), "rb").read()
            what = f"{' '.join(flags + extra)}"
            if read("compiled.st") != read("override.st"):
                raise Failure(f"{what}: --dropout 0.3 differs from a model compiled with 0.3")
            if read("own.st") == read("override.st"):
                raise Failure(f"{what}: --dropout 0.3 trained as the compiled 0.5")
            run([at["0"], *base, "--dropout", "0.3", "--save", "from_zero.st"], tmp)
            if read("compiled.st") != read("from_zero.st"):
                raise Failure(f"{what}: --dropout 0.3 on dropouts of rate 0 differs from 0.3")
            run([at["0"], *base, "--save", "zero.st"], tmp)
            run([at["none"], *base, "--save", "none.st"], tmp)
            if read("zero.st") != read("none.st"):
                raise Failure(f"{what}: dropouts of rate 0 changed the training")
    block = DROPOUT_MLP.replace("RATE", "0.5").replace("    seed      = 5\n",
                                                       "    seed      = 5\n    dropout   = 0.3\n")
    exe = compile_text(nnc, tmp, "block", block, "--f64")  # as at["0.3"], compiled last
    run([exe, "train", "--quiet", "--save", "block.st"], tmp)
    run([at["0.3"], "train", "--quiet", "--save", "compiled.st"], tmp)
    if read("block.st") != read("compiled.st"):
        raise Failure("dropout = 0.3 in the train block differs from a model compiled with 0.3")
    help_text = run([exe, "train", "--help"], tmp).stdout
    if "(default: 0.3)" not in [l for l in help_text.splitlines() if "--dropout" in l][0]:
        raise Failure(f"--help does not show the train block's dropout:\n{help_text}")
    bad = run([exe, "train", "--dropout", "1"], tmp, want_status=2)
    if bad.stderr != f"{os.path.basename(exe)}: error: --dropout must be in [0, 1), got '1'\n":
        raise Failure(f"--dropout 1: {bad.stderr!r}")
    none = at["none"]
    want = (f"{os.path.basename(none)}: error: --dropout does not apply: model 'drop' has no "
            "dropout(...) (it sets the rate of every dropout of the model)\n")
    for command in (["train", "--dropout", "0.3"], ["search", "--dropout", "0.1..0.5"]):
        bad = run([none, *command], tmp, want_status=2)
        if bad.stderr != want:
            raise Failure(f"{' '.join(command)} without dropout: {bad.stderr!r}")
    help_text = run([none, "train", "--help"], tmp).stdout
    if "dropout" in help_text:
        raise Failure(f"--help of a model without dropout speaks of dropout:\n{help_text}")


def case_watching_leaves_states(nnc, src, tmp):
    """--log-grad-norms, --log-update-ratios and a --trace of gradients measure the run
    without changing it: with batch norm's running statistics too, the saved weights and
    states are the same bits as without them."""
    exe = bn_build(nnc, tmp, bn_rows(20))
    run([exe, "train", "--quiet", "--save", "plain"], tmp)
    for name, args in (("norms", ["--log-grad-norms", "--log", "n.csv"]),
                       ("ratios", ["--log-update-ratios", "--log", "r.csv"]),
                       ("trace", ["--trace", "p.W.grad,h.gamma", "--trace-out", "t.csv"])):
        run([exe, "train", "--quiet", "--save", name, *args], tmp)
        check_same_weights(tmp, "plain", name, " ".join(args))


def case_batchnorm_running_stats(nnc, src, tmp):
    """Training updates the running statistics as PyTorch's BatchNorm1d does; they are saved
    in the weights file; neither the optimizer nor weight decay moves them (fused sgd, and
    adamw with a large decay, give the same)."""
    rows = bn_rows(23)  # batches of 5, 5, 5, 5, 3
    exe = bn_build(nnc, tmp, rows)
    mean, var = bn_running_stats(rows, 5, 3)
    for args in (["--save", "sgd.safetensors"],
                 ["--optimizer", "adamw", "--lr", "0.05", "--weight-decay", "0.5", "--save",
                  "adamw.safetensors"]):
        run([exe, "train", "--quiet", *args], tmp)
        w = read_weights(os.path.join(tmp, args[-1]))
        close_all(w["h.running_mean"], mean, 1e-13, f"{args[-1]}: h.running_mean")
        close_all(w["h.running_var"], var, 1e-13, f"{args[-1]}: h.running_var")
        if w["h.gamma"] == [1.0, 1.0, 1.0]:
            raise Failure(f"{args[-1]}: h.gamma did not train")


def case_batchnorm_inference(nnc, src, tmp):
    """eval, predict and the final loss use the running statistics (predictions checked
    against the model computed here from the weights file); a weights file without the
    states loads, and they keep their start (mean 0, variance 1)."""
    rows = bn_rows(23)
    exe = bn_build(nnc, tmp, rows)
    out = run([exe, "train", "--save", "w.safetensors"], tmp).stdout
    w = read_weights(os.path.join(tmp, "w.safetensors"))
    want_loss = sum((bn_predict(w, r) - r[3]) ** 2 for r in rows) / len(rows)
    final = number(out, "final loss")
    if abs(final - want_loss) > 1e-8 * want_loss:
        raise Failure(f"final loss {final}, wanted {want_loss} (running statistics)\n{out}")
    evaluated = number(run([exe, "eval", "--weights", "w.safetensors"], tmp).stdout, "loss")
    if abs(evaluated - want_loss) > 1e-8 * want_loss:
        raise Failure(f"eval: loss {evaluated}, wanted {want_loss}")
    # One row at a time and all together: a prediction does not depend on its batch.
    queries = [r[:3] for r in rows[:7]]
    text = "".join(",".join(repr(v) for v in q) + "\n" for q in queries)
    together = [float(v) for v in run([exe, "predict", "--weights", "w.safetensors"], tmp,
                                      stdin=text).stdout.split()]
    close_all(together, [bn_predict(w, q) for q in queries], 1e-8, "predict")
    alone = [float(run([exe, "predict", "--weights", "w.safetensors"], tmp,
                       stdin=",".join(repr(v) for v in q) + "\n").stdout) for q in queries[:2]]
    close_all(alone, together[:2], 1e-9, "predict of one row")
    # Weights saved before the model had its states: they keep their start.
    drop_tensor(os.path.join(tmp, "w.safetensors"), os.path.join(tmp, "old1.safetensors"),
                "h.running_mean")
    drop_tensor(os.path.join(tmp, "old1.safetensors"), os.path.join(tmp, "old.safetensors"),
                "h.running_var")
    got = [float(v) for v in run([exe, "predict", "--weights", "old.safetensors"], tmp,
                                 stdin=text).stdout.split()]
    close_all(got, [bn_predict(w, q, with_state=False) for q in queries], 1e-8,
              "predict without states in the file")


def case_batchnorm_resume(nnc, src, tmp):
    """A checkpoint holds the states, and a resumed run ends bit for bit where the
    uninterrupted one does; a checkpoint without them cannot resume."""
    rows = bn_rows(23)
    exe = bn_build(nnc, tmp, rows)
    run([exe, "train", "--quiet", "--epochs", "4", "--save", "straight.safetensors"], tmp)
    run([exe, "train", "--quiet", "--epochs", "2", "--checkpoint-every", "2", "--checkpoint",
         "c.safetensors", "--no-save"], tmp)
    w = read_weights(os.path.join(tmp, "c.safetensors"), "h.")
    close_all(w["h.running_mean"], bn_running_stats(rows, 5, 2)[0], 1e-13,
              "checkpoint: h.running_mean")
    run([exe, "train", "--quiet", "--epochs", "4", "--resume", "c.safetensors", "--save",
         "resumed.safetensors"], tmp)
    a = open(os.path.join(tmp, "straight.safetensors"), "rb").read()
    b = open(os.path.join(tmp, "resumed.safetensors"), "rb").read()
    if a != b:
        raise Failure("the resumed run's weights differ from the uninterrupted run's")
    drop_tensor(os.path.join(tmp, "c.safetensors"), os.path.join(tmp, "nostate.safetensors"),
                "h.running_mean")
    proc = run([exe, "train", "--quiet", "--epochs", "4", "--resume", "nostate.safetensors",
                "--no-save"], tmp, want_status=1)
    if "missing tensor 'h.running_mean' (a state of the model)" not in proc.stderr:
        raise Failure(f"resuming without a state: {proc.stderr}")


def case_batchnorm_printed(nnc, src, tmp):
    """What the learner reads: the states with their start, the updates, the mode choice and
    the derived backward pass through the batch's mean (1/B a factor there, not the seed)."""
    bn_build(nnc, tmp, bn_rows(5))
    model = os.path.join(tmp, "bn.nn")
    ir = run([nnc, model, "--emit=ir"], tmp).stdout
    for want in ("  state  &h.running_mean : [3] = zeros  (not trained)\n",
                 "  state  &h.running_var : [3] = ones  (not trained)\n",
                 "  update &h.running_mean = %h.running_mean.update  ; after each training step\n",
                 "= batch_mean $x, correction=0 ", "= batch_mean %t10, correction=1 ",
                 "= sub $x, &h.running_mean ", "= training ? %t28 : %t33 "):
        if want not in ir:
            raise Failure(f"--emit=ir has no {want!r}:\n{ir}")
    with open(model, "w") as f:
        f.write(BN_MODEL.replace("h = batchnorm(x)", "h = batchnorm(dense(x, 3))"))
    grad = run([nnc, model, "--emit=grad"], tmp).stdout
    if not re.search(r"= mul %h\.m\.grad, 1/B +; #\d+ d batch_mean\(u\)/du_b = 1/\(B - correction\)",
                     grad):
        raise Failure(f"--emit=grad: no batch_mean rule line:\n{grad}")
    dot = run([nnc, model, "--emit=dot"], tmp).stdout
    if not re.search(r'shape=folder, .*<B>&amp;h\.running_mean \[3\]</B>', dot):
        raise Failure(f"--emit=dot does not draw the state as a folder:\n{dot}")
    explained = run([nnc, "explain", model], tmp).stdout
    if "∂cost/∂h.m · 1/B" not in explained or "∂cost/∂h.m · ∂cost/∂h.m" in explained:
        raise Failure(f"explain: batch_mean's 1/B is not a factor:\n{explained}")


def case_state_counter(nnc, src, tmp):
    """A scalar state that counts the update steps, and a state set to a constant: every
    training step writes them (the fused sgd_step and an optimizer of the runtime alike);
    --init-weights loads them. Updates that are a state or a param as it stands."""
    with open(os.path.join(tmp, "cnt.nn"), "w") as f:
        f.write("""import "nn"
model cnt {
    input  x[2]
    target y[1]
    state steps = 0
    state five[3]
    update steps = steps + 1
    update five = 5
    loss = mse(dense(x, 1), y)
}
train cnt {
    data   = csv("cnt.csv", x = 0..1, y = 2)
    batch  = 4
    epochs = 3
}
""")
    rng = random.Random(1)
    with open(os.path.join(tmp, "cnt.csv"), "w") as f:
        f.write("".join(f"{rng.random()},{rng.random()},{rng.random()}\n" for _ in range(10)))
    exe = os.path.join(tmp, "cnt")
    run([nnc, os.path.join(tmp, "cnt.nn"), "--f64", "-o", exe], tmp)
    for optimizer in ("sgd", "adam"):
        run([exe, "train", "--quiet", "--optimizer", optimizer, "--save", "w.safetensors"], tmp)
        w = read_weights(os.path.join(tmp, "w.safetensors"))
        if w["steps"] != [9.0] or w["five"] != [5.0] * 3:  # 3 epochs of batches 4, 4, 2
            raise Failure(f"{optimizer}: steps {w['steps']}, five {w['five']}")
    run([exe, "train", "--quiet", "--epochs", "0", "--init-weights", "w.safetensors", "--save",
         "again.safetensors"], tmp)
    if read_weights(os.path.join(tmp, "again.safetensors"))["steps"] != [9.0]:
        raise Failure("--init-weights did not load the state, or a run of no steps moved it")
    # Updates read the params and states as the pass saw them, before the step changed them.
    with open(os.path.join(tmp, "swap.nn"), "w") as f:
        f.write("""model swap {
    input  x[2]
    target y[1]
    param  w[2, 1]
    state  a = 1
    state  b = 2
    state  w_seen[2, 1]
    update a = b
    update b = a * 1
    update w_seen = w
    loss = sum((x @ w - y)^2)
}
train swap {
    data = csv("cnt.csv", x = 0..1, y = 2)
    batch = 4
}
""")
    exe = os.path.join(tmp, "swap")
    run([nnc, os.path.join(tmp, "swap.nn"), "--f64", "-o", exe], tmp)
    run([exe, "train", "--quiet", "--steps", "3", "--save", "three.safetensors"], tmp)
    run([exe, "train", "--quiet", "--steps", "2", "--save", "two.safetensors"], tmp)
    three = read_weights(os.path.join(tmp, "three.safetensors"))
    two = read_weights(os.path.join(tmp, "two.safetensors"))
    if (three["a"], three["b"], two["a"], two["b"]) != ([2.0], [1.0], [1.0], [2.0]):
        raise Failure(f"a, b after 3 steps {three['a']}, {three['b']}, after 2 {two['a']}, {two['b']}")
    if three["w_seen"] != two["w"] or three["w"] == two["w"]:
        raise Failure(f"w_seen after 3 steps {three['w_seen']}: w after 2 was {two['w']}")


# A gradient that is nan while the loss is finite: at the row x = 0, sqrt's derivative is inf
# and x * s's derivative in s is 0, so s's gradient is 0 * inf. Only the optimizer's own check
# (its update loop reads every gradient) can find it. NAN_GRADIENT_ROWS puts that row in the
# second batch of 4, on the last rank or worker of 2 or 3.
NAN_GRADIENT_MODEL = """import "nn"
model g {
    input  x[1]
    target y[1]
    param  s = 1
    output p = sqrt(x * s)
    loss     = mse(p, y)
}
train g {
    data      = csv("g.csv", x = 0, y = 1)
    optimizer = adam(lr = 0.01)
    batch     = 4
    epochs    = 2
    shuffle   = false
}
"""
NAN_GRADIENT_ROWS = "x,y\n1,1\n4,2\n9,3\n2,1\n3,2\n5,2\n6,2\n0,0\n"
NAN_GRADIENT_FAULT = "the gradient of 's' is nan or inf at epoch 1, step 2; training stopped"


RUNSUM_MODEL = """import "nn"
model runsum {
    input  x[8, 1]
    target y[1]
    hs = %s
    output p = sigmoid(dense(%s, 1))
    loss = bce(p, y)
}
train runsum {
    data       = csv("runsum.csv", x = 0..7, y = 8)
    optimizer  = adam(lr = 0.01)
    batch      = 32
    epochs     = 30
    validation = 0.25
}
"""


def train_sequence_models(nnc, tmp, label, models):
    """Writes runsum.csv's rows, a list of 8 numbers each, labelled by label(row); compiles
    RUNSUM_MODEL for each (name, layer, read) and trains it, saving NAME.safetensors.
    Returns each model's held-out accuracy."""
    rng = random.Random(3)
    rows = [[rng.uniform(-1, 1) for _ in range(8)] for _ in range(2000)]
    with open(os.path.join(tmp, "runsum.csv"), "w") as f:
        f.write("".join(",".join(f"{v:.4f}" for v in x) + f",{label(x)}\n" for x in rows))
    accuracy = {}
    for name, layer, read in models:
        with open(os.path.join(tmp, name + ".nn"), "w") as f:
            f.write(RUNSUM_MODEL % (layer, read))
        exe = os.path.join(tmp, name)
        run([nnc, os.path.join(tmp, name + ".nn"), "-o", exe], tmp)
        out = run([exe, "train", "--save", name + ".safetensors"], tmp).stdout
        accuracy[name] = number(out, "validation accuracy")
    return accuracy


def param_shapes(path):
    header, _ = safetensors_parts(path)
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def case_rnn_running_sum(nnc, src, tmp):
    """The sign of the running sum of 8 numbers uniform(-1, 1), learned by stdlib's tanh rnn
    from the state after the last step (a scan over the sequence): held-out accuracy >= 0.9.
    A model that sees only the last number cannot pass: it stays below 0.75 (the last number
    predicts the sign of the sum about 62% of the time)."""
    accuracy = train_sequence_models(nnc, tmp, lambda x: int(sum(x) > 0),
                                     (("rnn", "rnn(x, 8)", "hs[-1]"), ("last", "x[-1]", "hs")))
    if accuracy["rnn"] < 0.9 or accuracy["last"] >= 0.75:
        raise Failure(f"held-out accuracy: rnn {accuracy['rnn']} (wanted >= 0.9), last step "
                      f"only {accuracy['last']} (wanted < 0.75)")
    shapes = param_shapes(os.path.join(tmp, "rnn.safetensors"))
    if shapes != {"hs.Wx": [1, 8], "hs.b": [8], "hs.Wh": [8, 8], "p.W": [8, 1], "p.b": [1]}:
        raise Failure(f"rnn's params (one set for all 8 steps): {shapes}")
    ups, downs = [[0.5] * 8, [-0.5] * 8]
    pred = run([os.path.join(tmp, "rnn"), "predict", "--weights", "rnn.safetensors"], tmp,
               stdin="\n".join(",".join(map(str, r)) for r in (ups, downs)) + "\n").stdout
    p = [float(v) for v in pred.split()]
    if len(p) != 2 or not (p[0] > 0.9 and p[1] < 0.1):
        raise Failure(f"predict on sums +4 and -4: {pred!r}")


def case_lstm_stacked(nnc, src, tmp):
    """Two stdlib lstm layers stacked, lstm(lstm(x, 8), 8), learn the sign of the first of 8
    numbers uniform(-1, 1) from the top layer's state after the last step: the first layer
    must carry it through 7 distracting steps. Held-out accuracy >= 0.95. A model that sees
    the sequence without its order (its mean) stays below 0.75 (the mean's sign predicts the
    first number's about 62% of the time). Each layer has its own params (the second call's
    named with _2)."""
    accuracy = train_sequence_models(nnc, tmp, lambda x: int(x[0] > 0),
                                     (("stacked", "lstm(lstm(x, 8), 8)", "hs[-1]"),
                                      ("mean", "mean(x, axis = 0)", "hs")))
    if accuracy["stacked"] < 0.95 or accuracy["mean"] >= 0.75:
        raise Failure(f"held-out accuracy: stacked lstm {accuracy['stacked']} (wanted >= 0.95), "
                      f"order-blind mean {accuracy['mean']} (wanted < 0.75)")
    shapes = param_shapes(os.path.join(tmp, "stacked.safetensors"))
    want = {"hs.Wx": [1, 32], "hs.b": [32], "hs.Wh": [8, 32], "hs.Wx_2": [8, 32],
            "hs.b_2": [32], "hs.Wh_2": [8, 32], "p.W": [8, 1], "p.b": [1]}
    if shapes != want:
        raise Failure(f"the stacked lstm's params: {shapes}, wanted {want}")
    # each layer projects its whole input sequence in one product; only h @ Wh is in a step
    ir = run([nnc, os.path.join(tmp, "stacked.nn"), "--emit=ir", "--steps", "all"], tmp).stdout
    products = re.findall(r": (\[[0-9, ]+\]) += matmul \S+, @(\S+)", ir)
    counts = {k: products.count(k) for k in set(products)}
    if counts != {("[8, 32]", "hs.Wx"): 1, ("[8, 32]", "hs.Wx_2"): 1, ("[32]", "hs.Wh"): 8,
                  ("[32]", "hs.Wh_2"): 8, ("[1]", "p.W"): 1}:
        raise Failure(f"the stacked lstm's products (shape, weight): {counts}")
    # lstm's states h = scan(...)[:, 0] stack each step's h, not its [2, 8] carry (h and c):
    # no [k, 2, 8] is built; the first layer's [8, 8] is built once, the top layer's (read
    # at hs[-1] alone) not at all. A stack is a concat, or the one buffer of a tree of
    # concats whose rows are scatters that each write their part of it (layout_chains.c)
    plan = run([nnc, os.path.join(tmp, "stacked.nn"), "--emit=plan"], tmp).stdout
    stacks = re.findall(r" concat +(\[[0-9, ]+\])", plan)
    stacks += [shape for shape, _ in sorted(set(re.findall(
        r" scatter +(\[[0-9, ]+\]) .*, writes its part of (%\S+)$", plan, re.M)))
        if shape.startswith("[8, ")]
    if any(shape.endswith(", 2, 8]") for shape in stacks) or stacks.count("[8, 8]") != 1:
        raise Failure(f"the stacked lstm's concats: {sorted(stacks)}")
    # ... and each of its rows is copied once, not once a level of the tree of concats that
    # lower.c joins it with ([4, 8]: a [2, 8] is also a carry), nor its gradient's rows once
    # a level of slices; a reshape (a step's h and c as rows of its carry) copies nothing: it
    # is a view (docs/codegen.md)
    rows = re.findall(r" scatter +\[8, 8\] .*, writes its part of (%\S+)$", plan, re.M)
    levels = re.findall(r"^ +#\d+ +\S+ +\S+ +(?:concat|slice) +\[[3-7], 8\]", plan, re.M)
    reshapes = re.findall(r"^ +#\d+ +\S+ +\S+ +reshape ", plan, re.M)
    if len(rows) != 8 or len(set(rows)) != 1 or levels or reshapes:
        raise Failure(f"the first layer's stack: {len(rows)} rows written in place, "
                      f"{len(levels)} levels of concats or slices, {len(reshapes)} reshapes "
                      f"copied; wanted 8, 0 and 0")


SCAN_PLAN_MODEL = """import "nn"
model seq {
    input  x[6, 3]
    target y[2]
    h        = %s(x, 4)
    output z = dense(h[-1], 2)
    loss     = softmax_cross_entropy(z, y)
}
"""


def plan_of(nnc, tmp, name, text):
    with open(os.path.join(tmp, name + ".nn"), "w") as f:
        f.write(text)
    return run([nnc, name + ".nn", "--emit=plan"], tmp).stdout


def case_scan_plan(nnc, src, tmp):
    """How the back end runs the steps of a scan (docs/codegen.md): the gradient of the
    recurrent weight Wh, a sum of one product per step, is one product of two stacks (its
    6 - 1 terms: step 0 multiplies the zero start state, so it has none; the LSTM's stack of
    the gates' gradients is that of its projected input's, [6, 16]); the LSTM's gate
    slices are views that the step's one gate loop reads in place, with no copy, and the
    scatters of their gradients store their parts of the step's gradient, with no zero fill."""
    # the lstm's stack of the h_(t-1) [6, 4] has row 0 zero (step 0's term is left out), the
    # gru's [5, 4] is the 5 rows of its own: they tile it
    stack_rows = {"lstm": ["starts the sum"] + ["adds to the sum"] * 4,
                  "gru": ["writes its part of"] * 5}
    for cell, gates in (("lstm", 4), ("gru", 3)):
        plan = plan_of(nnc, tmp, cell, SCAN_PLAN_MODEL % cell)
        products = re.findall(r"^ +#\d+ +matmul +%h\.Wh\.grad +matmul +\[4, (\d+)\]", plan, re.M)
        terms = re.findall(r"(?:starts|adds to) the sum %h\.Wh\.grad", plan)
        if products != [str(4 * gates)] or terms:
            raise Failure(f"{cell}: the gradient of h.Wh is {len(products)} product(s) and "
                          f"{len(terms)} accumulated terms, wanted one product:\n{plan}")
        stacks = re.findall(r"scatter +\[[56], 4\] .*(starts the sum|adds to the sum|writes its "
                            r"part of)", plan)
        if stacks != stack_rows[cell]:
            raise Failure(f"{cell}: the stack of the states h_(t-1) is {stacks}, wanted the 5 "
                          f"rows of steps 1..5 in one buffer")
    plan = plan_of(nnc, tmp, "lstm", SCAN_PLAN_MODEL % "lstm")
    views = re.findall(r"^  view %h\.a@(\d)\[", plan, re.M)
    gate_copies = re.findall(r" layout +%h\.a@\d\[", plan)
    if sorted(views) != sorted(str(t) for t in range(6) for _ in range(4)) or gate_copies:
        raise Failure(f"the lstm's gates: views of steps {views}, copies {gate_copies}")
    # the gradient of a step's [16] is its four gates' scatters, which tile it: each stores
    # its part, with no zero fill and no adds
    parts = re.findall(r"scatter +\[16\] .*(writes its part of|the sum) %h\.a@\d\.grad", plan)
    if parts != ["writes its part of"] * 24:
        raise Failure(f"the lstm's gate gradients: {parts}")
    gate_loops = re.findall(r"^ +#\d+ +loop +%h\.i@\d +sigmoid", plan, re.M)
    forget_in_it = re.findall(r"^ {16}%h\.f@\d +sigmoid", plan, re.M)
    if len(gate_loops) != 6 or len(forget_in_it) != 6:
        raise Failure(f"the lstm's gates: {len(gate_loops)} loops that start with the input "
                      f"gate, {len(forget_in_it)} forget gates inside them; wanted 6 and 6")


def case_batchnorm_early_stopping(nnc, src, tmp):
    """Early stopping restores the best epoch's states with its params: the run ends with
    the weights file a run stopped at that epoch writes, byte for byte."""
    exe = bn_build(nnc, tmp, bn_rows(40))
    proc = run([exe, "train", "--validation", "0.25", "--early-stopping", "on", "--patience",
                "2", "--epochs", "30", "--save", "stopped.safetensors"], tmp)
    out = proc.stdout + proc.stderr
    m = re.search(r"^restored the weights of epoch (\d+) ", out, re.M)
    if not m or int(m.group(1)) >= 28:
        raise Failure(f"early stopping did not stop early:\n{out}")
    run([exe, "train", "--quiet", "--validation", "0.25", "--epochs", m.group(1), "--save",
         "best.safetensors"], tmp)
    a = open(os.path.join(tmp, "stopped.safetensors"), "rb").read()
    b = open(os.path.join(tmp, "best.safetensors"), "rb").read()
    if a != b:
        raise Failure("the weights early stopping restored are not the best epoch's")


MLP_PLAN_MODEL = """import "nn"
model mlp {
    input  x[6]
    target y[3]
    h        = relu(dense(x, 5))
    h2       = relu(dense(h, 5))
    output z = dense(h2, 3)
    loss     = softmax_cross_entropy(z, y)
}
"""


def case_scan_packed(nnc, src, tmp):
    """The products of a scan's steps with its recurrent weight read it packed (docs/codegen.md,
    "Products with a packed weight"): h_(t-1) @ Wh forward and dG_t @ Wh^T backward, the 5 steps
    after the first (step 0's state is zero) and the 5 gradients of the states, each form packed
    once, in a buffer of its own past every other fixed value. A weight that one product reads
    each way (the dense layers) keeps its BLAS calls, and so do the products of an MLP."""
    plan = plan_of(nnc, tmp, "lstm", SCAN_PLAN_MODEL % "lstm")
    packs = re.findall(r"^  packed (\S+) +(transposed )?\[(\d+), (\d+)\] fixed\+(\d+)$", plan, re.M)
    fixed = int(re.match(r"plan: fixed (\d+) elements", plan).group(1))
    if [p[:4] for p in packs] != [("@h.Wh", "", "4", "16"), ("@h.Wh", "transposed ", "16", "4")]:
        raise Failure(f"the lstm's packed weights: {packs}\n{plan}")
    # each form is K x N, its N rounded up to the kernel's 32 columns
    homes = re.findall(r"(?:fixed|velocity fixed)\+(\d+)", plan.split("  packed")[0])
    if int(packs[0][4]) < max(int(h) for h in homes) or int(packs[1][4]) < int(packs[0][4]) + 4 * 32 \
            or fixed < int(packs[1][4]) + 16 * 32:
        raise Failure(f"the packed forms overlap other values: {packs}, fixed {fixed}\n{plan}")
    readers = re.findall(r"^ +#\d+ +matmul +\S+ +matmul +\[(\d+)\] .*reads @h\.Wh packed$", plan,
                         re.M)
    if readers != ["16"] * 5 + ["4"] * 5:
        raise Failure(f"the products that read h.Wh packed: {readers}\n{plan}")
    if re.search(r"@z\.W packed|@h\.Wx packed", plan):
        raise Failure(f"a weight read once each way is packed:\n{plan}")
    # f64 has no kernel: its products stay cblas_dgemm calls, and no buffer is reserved
    plan64 = run([nnc, "lstm.nn", "--f64", "--emit=plan"], tmp).stdout
    fixed64 = int(re.match(r"plan: fixed (\d+) elements", plan64).group(1))
    if "packed" in plan64 or (fixed64 + 15) // 16 * 16 != int(packs[0][4]):
        raise Failure(f"the f64 plan packs, or its fixed arena is not the f32 one's without the "
                      f"packed forms:\n{plan64}")
    plan = plan_of(nnc, tmp, "mlp", MLP_PLAN_MODEL)
    if "packed" in plan:
        raise Failure(f"an MLP's products read a packed weight:\n{plan}")


BN2D_MODEL = """import "nn"
model bn2d {
    input  x[2, 2, 3]
    target y[1]
    h = batchnorm2d(x)
    p = dense(flatten(h), 1)
    loss = mse(p, y)
}
train bn2d {
    data    = csv("bn2d.csv", x = 0..11, y = 12)
    batch   = 3
    epochs  = 2
    shuffle = off
    optimizer = sgd(lr = 0.1)
}
"""


def case_batchnorm2d_running_stats(nnc, src, tmp):
    """stdlib's batchnorm2d updates its running statistics per channel over the batch and
    the positions as PyTorch's BatchNorm2d does: the unbiased variance divides by B*h*w - 1,
    also for a last batch of one sample (7 rows in batches of 3, 3, 1)."""
    rng = random.Random(5)
    rows = [[rng.gauss(c * 3 - 1, 1 + c) for c in (0, 1) for _ in range(6)] + [rng.gauss(0, 1)]
            for _ in range(7)]
    with open(os.path.join(tmp, "bn2d.nn"), "w") as f:
        f.write(BN2D_MODEL)
    with open(os.path.join(tmp, "bn2d.csv"), "w") as f:
        f.write("".join(",".join(repr(v) for v in row) + "\n" for row in rows))
    exe = os.path.join(tmp, "bn2d")
    run([nnc, os.path.join(tmp, "bn2d.nn"), "--f64", "-o", exe], tmp)
    run([exe, "train", "--quiet", "--save", "w.safetensors"], tmp)
    mean, var = [0.0, 0.0], [1.0, 1.0]
    for _ in range(2):
        for start in range(0, len(rows), 3):
            for c in (0, 1):
                vals = [v for r in rows[start:start + 3] for v in r[c * 6:c * 6 + 6]]
                m = sum(vals) / len(vals)
                unbiased = sum((v - m) ** 2 for v in vals) / (len(vals) - 1)
                mean[c] = 0.9 * mean[c] + 0.1 * m
                var[c] = 0.9 * var[c] + 0.1 * unbiased
    w = read_weights(os.path.join(tmp, "w.safetensors"))
    close_all(w["h.running_mean"], mean, 1e-13, "h.running_mean")
    close_all(w["h.running_var"], var, 1e-13, "h.running_var")


def case_batchnorm_one_row_batch(nnc, src, tmp):
    """A last batch of one row has no unbiased variance: the run stops and says why, rather
    than save a running variance that is not a number."""
    rows = bn_rows(21)  # batches of 5, 5, 5, 5, 1
    exe = bn_build(nnc, tmp, rows)
    proc = run([exe, "train", "--quiet", "--save", "w.safetensors"], tmp, want_status=1)
    want = ("state 'h.running_var' became nan or inf by epoch 1, step 5 (the loss did not "
            "show it); training stopped. An unbiased variance")
    if want not in proc.stderr or os.path.exists(os.path.join(tmp, "w.safetensors")):
        raise Failure(f"a batch of one row: {proc.stderr}")


TOKENS_MODEL = """import "nn"

model tok {
    input  ids[4]
    target y[3]                 # one class column: one-hot
    e        = embedding(ids, 6, 4)
    output z = dense(flatten(e), 3)
    loss     = softmax_cross_entropy(z, y)
}

train tok {
    data       = csv("tokens.csv", ids = 0..3, y = 4)
    optimizer  = sgd(lr = 0.5)
    batch      = 16
    epochs     = 30
    validation = 0.25
    seed       = 3
}
"""

# The same rows through a dense layer on the ids as numbers: no embedding.
TOKENS_BASELINE = TOKENS_MODEL.replace("e        = embedding(ids, 6, 4)\n", "").replace(
    "dense(flatten(e), 3)", "dense(ids, 3)")


def tokens_csv(path, rows, seed=5):
    """Four token ids 0..5 a row, then the class: the first id mod 3. Classes 0, 1 and 2 each
    take two ids that are not neighbours, so no function linear in the id separates them."""
    r = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(rows):
            ids = [r.randrange(6) for _ in range(4)]
            f.write(",".join(str(v) for v in ids + [ids[0] % 3]) + "\n")


def case_embedding_tokens(nnc, src, tmp):
    """Integer inputs read from CSV columns: ids [4] -> embedding -> flatten -> dense ->
    softmax_cross_entropy learns class = first id mod 3 to held-out accuracy 1.0 with plain
    SGD (E updated inside its scatter_add), SGD with momentum and Adam (E's gradient in its
    grad buffer), where a dense layer on the raw ids stays below 0.75. predict reads the ids
    as CSV and picks the class; --emit=grad shows E's gradient as one scatter_add summed
    over the batch."""
    tokens_csv(os.path.join(tmp, "tokens.csv"), 600)
    with open(os.path.join(tmp, "tok.nn"), "w") as f:
        f.write(TOKENS_MODEL)
    with open(os.path.join(tmp, "base.nn"), "w") as f:
        f.write(TOKENS_BASELINE)
    grad = run([nnc, "tok.nn", "--emit=grad"], tmp).stdout
    if not re.search(r"%e\.E\.grad : \[6, 4\]\s+= scatter_add \S+, \$ids to \[6, 4\]  \(sum over batch\)", grad):
        raise Failure(f"no scatter_add for e.E in --emit=grad:\n{grad}")
    plan = run([nnc, "tok.nn", "--emit=plan"], tmp).stdout
    if "updated inside its scatter_add" not in plan:
        raise Failure(f"plain SGD does not update e.E inside its scatter_add:\n{plan}")
    run([nnc, "tok.nn", "-o", "tok"], tmp)
    for flags in (["--optimizer", "sgd"], ["--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05"],
                  ["--optimizer", "adam", "--lr", "0.02"]):
        out = run(["./tok", "train", "--save", "tok.safetensors", *flags], tmp).stdout
        acc = number(out, "validation accuracy")
        if acc < 1.0:
            raise Failure(f"tok {' '.join(flags)}: held-out accuracy {acc}, wanted 1.0\n{out}")
    pred = run(["./tok", "predict", "--weights", "tok.safetensors", "--classes"], tmp,
               stdin="0,5,5,5\n4,0,0,0\n5,1,2,3\n3,3,3,3\n").stdout
    if pred.split() != ["0", "1", "2", "0"]:
        raise Failure(f"predict --classes printed {pred!r}, wanted 0 1 2 0")
    run([nnc, "base.nn", "-o", "base"], tmp)
    out = run(["./base", "train", "--no-save"], tmp).stdout
    if number(out, "validation accuracy") >= 0.75:
        raise Failure(f"a dense layer on the raw ids learned the rule: the test shows nothing\n{out}")


# Ids into an embedding, class ids per step into one_hot: no data file.
EMBED_NO_DATA = """import "nn"
model emb {
    input  ids[4]
    target y[4]
    e        = embedding(ids, 6, 3)
    param W[3, 5] = glorot
    output z = e @ W
    loss     = softmax_cross_entropy(z, one_hot(y, 5))
}
"""


def case_gradcheck_token_ids(nnc, src, tmp):
    """gradcheck without data draws the inputs and targets that feed take or one_hot as whole
    ids below the table's rows or one_hot's k (nnrt_tensor.ids), not uniform(-1, 1), which
    take would refuse: the embedding model passes, and --help and the batch line say so."""
    with open(os.path.join(tmp, "emb.nn"), "w") as f:
        f.write(EMBED_NO_DATA)
    run([nnc, "emb.nn", "--f64", "-o", "emb"], tmp)
    out = run(["./emb", "gradcheck"], tmp).stdout
    want = ("batch: 8 random rows (the model names no data file): inputs uniform(-1, 1), "
            "targets token ids; token ids instead: ids 0..5, y 0..4\n")
    if want not in out or "gradcheck: all 2 params match" not in out:
        raise Failure(f"gradcheck printed\n{out}\nwanted the line\n{want}")
    helptext = run(["./emb", "gradcheck", "--help"], tmp).stdout
    if "are whole ids: ids 0..5, y 0..4." not in helptext:
        raise Failure(f"gradcheck --help does not name the ids:\n{helptext}")


def case_token_ids_exact(nnc, src, tmp):
    """Token ids stay exact in f32 up to 2^24 - 1: the CSV reader copies the columns of
    `input ids[3]` as they are, so ids - 16777200 is 15, 1 and 0 (eval's loss, from the data
    file, is their sum 16; predict's rows from stdin print them), not the neighbours a
    rounding would give."""
    with open(os.path.join(tmp, "ex.nn"), "w") as f:
        f.write("""model ex {
    input  ids[3]
    target y[1]
    param  w = 0
    output o = ids - 16777200 + w
    loss = sum(o) * sum(y)
}
""")
    run([nnc, "ex.nn", "-o", "ex"], tmp)
    with open(os.path.join(tmp, "d.csv"), "w") as f:
        f.write("16777215,16777201,16777200,1\n")
    run(["./ex", "train", "--data", "d.csv", "--lr", "0", "--epochs", "1", "--save", "w.safetensors"], tmp)
    out = run(["./ex", "predict", "--weights", "w.safetensors"], tmp,
              stdin="16777215,16777201,16777200\n").stdout
    loss = number(run(["./ex", "eval", "--data", "d.csv", "--weights", "w.safetensors"], tmp).stdout,
                  "loss")
    if out.split() != ["15,1,0"] or loss != 16:
        raise Failure(f"ids 16777215, 16777201, 16777200 minus 16777200: predict printed {out!r}, "
                      f"wanted 15,1,0; eval's loss (their sum) {loss}, wanted 16")


# Ids that name no row of the table, each a data row of its own, and what the error says.
BAD_IDS = {
    "6": "take: token id 6 (sample 0 of the batch, id 1 of the sample) is not a whole number "
         "in 0..5: ids index the 6 rows of the table",
    "-1": "take: token id -1 (sample 0 of the batch, id 1 of the sample) is not a whole number in 0..5",
    "2.5": "take: token id 2.5 (sample 0 of the batch, id 1 of the sample) is not a whole number in 0..5",
}


def case_embedding_bad_ids(nnc, src, tmp):
    """An id outside 0..vocab-1 or not whole stops train and predict with an error that
    names it, as PyTorch raises; one_hot's ids likewise."""
    with open(os.path.join(tmp, "tok.nn"), "w") as f:
        f.write(TOKENS_MODEL)
    run([nnc, "tok.nn", "-o", "tok"], tmp)
    for bad, message in BAD_IDS.items():
        with open(os.path.join(tmp, "bad.csv"), "w") as f:
            f.write(f"1,{bad},2,3,1\n")
        err = run(["./tok", "train", "--data", "bad.csv", "--validation", "0"], tmp,
                  want_status=1).stderr
        if f"tok: error: {message}" not in err:
            raise Failure(f"id {bad}: wanted 'tok: error: {message}', got:\n{err}")
    tokens_csv(os.path.join(tmp, "tokens.csv"), 40)
    run(["./tok", "train", "--data", "tokens.csv", "--epochs", "1", "--save", "w.safetensors"], tmp)
    err = run(["./tok", "predict", "--weights", "w.safetensors"], tmp, want_status=1,
              stdin="0,1,2,3\n0,1,7,3\n").stderr
    want = "take: token id 7 (sample 1 of the batch, id 2 of the sample) is not a whole number in 0..5"
    if want not in err:
        raise Failure(f"predict with the id 7: wanted '{want}', got:\n{err}")
    with open(os.path.join(tmp, "hot.nn"), "w") as f:
        f.write("""model hot {
    input  ids[2]
    target y[2, 3]
    param  w = 1
    output p = one_hot(ids, 3) * w
    loss = sum((p - y) ^ 2)
}
""")
    run([nnc, "hot.nn", "-o", "hot"], tmp)
    with open(os.path.join(tmp, "hot.csv"), "w") as f:
        f.write("0,2,1,0,0,0,0,1\n3,0,0,0,0,1,0,0\n")
    err = run(["./hot", "train", "--data", "hot.csv", "--shuffle", "off", "--batch", "2"], tmp,
              want_status=1).stderr
    want = "one_hot: token id 3 (sample 1 of the batch, id 0 of the sample) is not a whole number in 0..2"
    if want not in err:
        raise Failure(f"one_hot with the id 3: wanted '{want}', got:\n{err}")


def train_generated(nnc, src, tmp, example):
    """Writes the sequence examples' data into tmp with examples/sequences.py, compiles a
    copy of the example there (its data paths resolve against its own folder) and trains it
    with its train block. Returns the held-out loss (its validation_data)."""
    run([sys.executable, os.path.join(src, "examples", "sequences.py"), tmp], tmp)
    with open(os.path.join(src, "examples", example + ".nn")) as f, \
            open(os.path.join(tmp, example + ".nn"), "w") as g:
        g.write(f.read())
    run([nnc, example + ".nn", "-o", example], tmp)
    return number(run(["./" + example, "train"], tmp).stdout, "validation loss")


def read_rows(path):
    with open(path) as f:
        return [[float(v) for v in line.split(",")] for line in f]


def case_adding_lstm(nnc, src, tmp):
    """The adding problem, T = 50: stdlib's lstm reads the 50 steps (value, marker) and its
    last state predicts the sum of the two marked values; held-out MSE < 0.01, where always
    answering the mean (1) scores about 1/6. The data: every row holds exactly two markers,
    one in each half, and its target is the sum of the two marked values."""
    mse = train_generated(nnc, src, tmp, "lstm_adding")
    if mse >= 0.01:
        raise Failure(f"lstm_adding: held-out MSE {mse}, wanted < 0.01")
    for row in read_rows(os.path.join(tmp, "adding_test.csv")):
        marked = [t for t in range(50) if row[2 * t + 1] == 1]
        if (len(row) != 101 or sum(row[1:100:2]) != 2 or marked[0] >= 25 or marked[1] < 25
                or abs(row[100] - row[2 * marked[0]] - row[2 * marked[1]]) > 1e-9):
            raise Failure(f"adding_test.csv: a row that is not an adding problem: {row}")


def case_adding_mlp(nnc, src, tmp):
    """An MLP on the same 100 numbers, flattened, with more weights than the LSTM and the same
    training, does not learn the adding problem: its held-out MSE stays at the constant
    guess's (about 0.16, ten times the LSTM's bar and more)."""
    mse = train_generated(nnc, src, tmp, "adding_mlp")
    if mse < 0.1:
        raise Failure(f"adding_mlp: held-out MSE {mse}, wanted >= 0.1 (the MLP is the "
                      f"example of what does not learn the adding problem)")


def case_gru_series(nnc, src, tmp):
    """Next value of a noisy periodic series whose period changes from row to row, from a
    window of 20 values: stdlib's gru reaches held-out MSE < 0.02 (the noise alone costs 0.01),
    where repeating the window's last value scores about 0.3 on the same rows."""
    mse = train_generated(nnc, src, tmp, "gru_series")
    rows = read_rows(os.path.join(tmp, "series_test.csv"))
    last = sum((row[20] - row[19]) ** 2 for row in rows) / len(rows)
    if mse >= 0.02 or last < 0.2:
        raise Failure(f"gru_series: held-out MSE {mse}, wanted < 0.02; repeating the last "
                      f"value scores {last}, wanted >= 0.2")


def hogwild_accuracy(exe, tmp, threads, *args):
    out = run([exe, "train", "--quiet", "--no-save", "--hogwild", str(threads), *args], tmp).stdout
    return number(out, "validation accuracy")


def case_hogwild_digits(nnc, src, tmp):
    """--hogwild 2 reaches the accuracy band of one thread on the digits after the same 30
    epochs (runs differ: the bar is a band, not bits), and its step count counts both threads'
    steps: 2 shards of 719 rows in batches of 32 are 2 * 23 steps an epoch."""
    exe = build(nnc, src, "digits", tmp)
    one = hogwild_accuracy(exe, tmp, 1)
    two = hogwild_accuracy(exe, tmp, 2)
    if one < 0.95 or two < 0.95 or abs(one - two) > 0.02:
        raise Failure(f"held-out accuracy: 1 thread {one}, 2 threads {two}; wanted both >= 0.95 "
                      f"and within 0.02")
    run([exe, "train", "--quiet", "--no-save", "--hogwild", "2", "--epochs", "2",
         "--checkpoint-every", "2", "--checkpoint", "c"], tmp)
    meta = safetensors_metadata(os.path.join(tmp, "c"))
    if meta["nnrt.step"] != "92" or meta["nnrt.epoch"] != "2" or meta["nnrt.samples"] != "1438":
        raise Failure(f"the checkpoint after 2 epochs of 2 threads: {meta}")


def safetensors_metadata(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n])["__metadata__"]


HOGWILD_REFUSALS = [
    (["--optimizer", "adam"], "--hogwild runs the model's fused sgd step in each thread, "
     "lock-free; --optimizer adam needs each step's whole gradient before its update, which no "
     "thread holds: use --optimizer sgd (with --momentum if you like)"),
    (["--nesterov", "on"], "--hogwild: Nesterov momentum needs each step's whole gradient "
     "before its update, which the fused lock-free step never holds: use --nesterov off"),
    (["--l2", "1e-4"], "--hogwild: a penalty (--l1, --l2) is added to the whole gradient before "
     "the update, which the fused lock-free step never holds"),
    (["--clip", "1"], "--hogwild: --clip scales the whole gradient by its norm before the "
     "update, which the fused lock-free step never holds: use --clip 0"),
    (["--trace", "h.W"], "--hogwild: --trace writes the params after every step, and "
     "HOGWILD!'s threads change them at any time: trace a run without --hogwild"),
    (["--log-grad-norms", "--log", "norms.csv"],
     "--hogwild: --log-grad-norms measures the gradient of the epoch's "
     "last step, and HOGWILD! has a last step in every thread"),
    (["--threads", "2"], "--hogwild 2 runs 2 threads of its own: OpenBLAS's threads "
     "(--threads 2) would fight them for the cores; give --threads 1"),
    (["--hogwild", "300"], "--hogwild must be at most 256, got '300'"),
    (["--hogwild", "3", "--validation", "0.999"], "--hogwild 3: more threads than the 2 "
     "training rows (a thread needs a shard of at least one row)"),
]


def case_hogwild_errors(nnc, src, tmp):
    """What HOGWILD! cannot do lock-free is refused, saying why, before any training; --help
    says that its runs are not deterministic."""
    exe = build(nnc, src, "digits", tmp)
    for args, message in HOGWILD_REFUSALS:
        p = run([exe, "train", "--hogwild", "2", *args, "--no-save"], tmp, want_status=2)
        if p.stderr != f"digits: error: {message}\n" or p.stdout:
            raise Failure(f"--hogwild 2 {' '.join(args)}: {p.stderr!r}")
    # The optimizer the train block names is called so, not --optimizer.
    autoencoder = build(nnc, src, "autoencoder", tmp)
    p = run([autoencoder, "train", "--hogwild", "2", "--no-save"], tmp, want_status=2)
    wanted = ("autoencoder: error: --hogwild runs the model's fused sgd step in each thread, "
              "lock-free; the train block's optimizer adam needs each step's whole gradient "
              "before its update, which no thread holds: give --optimizer sgd (with --momentum "
              "if you like)\n")
    if p.stderr != wanted or p.stdout:
        raise Failure(f"--hogwild 2 with the train block's adam: {p.stderr!r}")
    helped = run([exe, "train", "--help"], tmp).stdout
    if "--hogwild N" not in helped or "NOT deterministic: runs differ" not in helped:
        raise Failure(f"train --help on --hogwild:\n{helped}")
    p = run(["./digits", "train", "--hogwild", "2", "--epochs", "0", "--no-save"], tmp)
    if number(p.stdout, "validation accuracy") > 0.3:
        raise Failure(f"--epochs 0 trained:\n{p.stdout}")


def case_hogwild_interrupt(nnc, src, tmp):
    """Ctrl-C: each thread ends its step, the state is saved once they have joined (every
    update in the params, pos the rows done), and a run resumed from it finishes."""
    exe = build(nnc, src, "digits", tmp)
    args = ["--hogwild", "2", "--epochs", "100000", "--lr", "0.01", "--no-save"]
    proc = subprocess.Popen([exe, "train", *args, "--checkpoint", "c"], cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stderr.readline()
    while CPU_WARNING in first:  # a machine of one CPU: the threads take turns
        first = proc.stderr.readline()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    m = re.search(r"^digits: interrupted at epoch (\d+) \((\d+) of 1438 rows\), step (\d+); "
                  r"saved the training state to c\n"
                  r"digits: continue with: digits train --resume c \(and the same options\)\n",
                  err, re.M)
    if proc.returncode != 130 or not first.startswith("epoch 1/") or not m:
        raise Failure(f"exit {proc.returncode}\n{first}{err}")
    epoch, rows, step = map(int, m.groups())
    meta = safetensors_metadata(os.path.join(tmp, "c"))
    if (int(meta["nnrt.step"]) != step or int(meta["nnrt.pos"]) != rows or
            int(meta["nnrt.samples"]) != (rows or 1438) or int(meta["nnrt.epoch"]) != epoch - 1 or
            not 46 * (epoch - 1) <= step <= 46 * epoch):
        raise Failure(f"{m.groups()}: {meta}")
    note = "(--hogwild: the threads' updates of this epoch so far are in the saved weights; " \
           "a run resumed with --hogwild starts the epoch again)"
    if (note in err) != (rows > 0):
        raise Failure(f"the note on the epoch's rows (pos {rows}):\n{err}")
    out = run([exe, "train", *args[:2], "--epochs", str(epoch + 30), "--lr", "0.01", "--resume",
               "c", "--quiet", "--no-save"], tmp).stdout
    if number(out, "validation accuracy") < 0.95:
        raise Failure(f"resumed:\n{out}")


def run_case(cases, case, *args):
    """cases["case_" + case](*args, tmp) in a fresh temporary folder, its outcome printed the
    way ctest's log reads it; returns the exit status. tests/mpi.py runs its cases so too."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            cases["case_" + case](*args, tmp)
        except Failure as e:
            print(f"FAIL {case}: {e}")
            print("0 passed, 1 failed")
            return 1
    print(f"ok {case}")
    print("1 passed, 0 failed")
    return 0


EXPLAIN_MODEL = """import "nn"
model m {
    input  x[3]
    target y[1]
    h        = tanh(dense(x, 2))
    output p = sigmoid(dense(h, 1))
    loss     = bce(p, y)
}
"""


def explain_lines(text):
    """{name: numbers} of explain --at-sample's lines: "∂cost/∂p" for a gradient's line,
    "p" for the value's line under it."""
    got, last = {}, None
    for line in text.splitlines():
        m = re.match(r"^  (∂cost/∂\S+)\s+= (.+?)\s+\[[\d, ]*\]$", line)
        if m:
            got[m.group(1)] = m.group(2)
            continue
        m = re.match(r"^      (\S+) = (.+)$", line)  # "t10 = h · p.W = 5.67": the numbers last
        if m:
            got[m.group(1)] = m.group(2).rsplit(" = ", 1)[-1]
    return got


def numbers_of(text):
    return [float(x) for x in text.strip("[]").split(", ")]


def case_explain_at_sample(nnc, src, tmp):
    """explain --at-sample: each line's numbers at one row equal the gradient worked out by
    hand here, from the weights file the test writes and the row it reads."""
    with open(os.path.join(tmp, "m.nn"), "w") as f:
        f.write(EXPLAIN_MODEL)
    rows = [[0.5, -1.0, 2.0, 1], [1.5, 0.25, -0.5, 0], [-0.75, 1.25, 0.5, 1], [2, 1, 0, 0]]
    with open(os.path.join(tmp, "d.csv"), "w") as f:
        f.write("".join(",".join(str(v) for v in r) + "\n" for r in rows))
    W1 = [[0.3, -0.2], [0.1, 0.4], [-0.5, 0.25]]
    b1, W2, b2 = [0.05, -0.1], [[0.7], [-1.2]], [0.2]
    tensors = {"h.W": ([3, 2], sum(W1, [])), "h.b": ([2], b1), "p.W": ([2, 1], sum(W2, [])),
               "p.b": ([1], b2)}
    write_safetensors(os.path.join(tmp, "w.safetensors"),
                      {n: {"dtype": "F64", "shape": sh} for n, (sh, _) in tensors.items()},
                      {n: struct.pack(f"<{len(v)}d", *v) for n, (_, v) in tensors.items()})
    out = run([nnc, "explain", "m.nn", "--at-sample", "2", "--weights", "w.safetensors",
               "--data", "d.csv"], tmp).stdout
    # by hand: the forward pass, then the chain rule, at row 2
    x, y, eps = rows[2][:3], rows[2][3], 1e-7
    a = [sum(x[i] * W1[i][j] for i in range(3)) + b1[j] for j in range(2)]
    h = [math.tanh(v) for v in a]
    z = sum(h[i] * W2[i][0] for i in range(2)) + b2[0]
    p = 1 / (1 + math.exp(-z))
    dp = -y / (p + eps) + (1 - y) / (1 - p + eps)
    dz = dp * p * (1 - p)
    dh = [W2[i][0] * dz for i in range(2)]
    da = [dh[j] * (1 - h[j] ** 2) for j in range(2)]
    want = {"∂cost/∂p": [dp], "p": [p], "∂cost/∂h": dh, "h": h, "∂cost/∂p.W": [v * dz for v in h],
            "∂cost/∂p.b": [dz], "∂cost/∂h.b": da,
            "∂cost/∂h.W": [x[i] * da[j] for i in range(3) for j in range(2)],
            "h.W": sum(W1, []), "∂cost/∂loss": [1]}
    got = explain_lines(out)
    for name, values in want.items():
        if name not in got:
            raise Failure(f"explain --at-sample printed no line for {name}:\n{out}")
        close_all(numbers_of(got[name]), values, 1e-5, name)
    # what it needs, said before any work
    err = run([nnc, "explain", "m.nn", "--at-sample", "2"], tmp, want_status=2).stderr
    if "needs --weights" not in err:
        raise Failure(f"--at-sample without --weights: {err}")
    err = run([nnc, "explain", "m.nn", "--at-sample", "two", "--weights", "w.safetensors"], tmp,
              want_status=2).stderr
    if "row number" not in err:
        raise Failure(f"--at-sample two: {err}")
    err = run([nnc, "explain", "m.nn", "--at-sample", "9", "--weights", "w.safetensors",
               "--data", "d.csv"], tmp, want_status=2).stderr
    if "row 9 is past the data: it has 4 rows (0 to 3)" not in err:
        raise Failure(f"--at-sample past the data: {err}")


def case_values_streams(nnc, src, tmp):
    """values reads CSV a batch at a time up to its row and no further: row N of a long file
    (in its second batch), of the same file on standard input and of a file holding that row
    alone print the same numbers; a pipe left open past the row's batch is answered; a row
    past the data is an error that counts the rows."""
    exe = build(nnc, src, "digits", tmp)
    run([exe, "train", "--epochs", "1", "--save", "w", "--quiet"], tmp)
    with open(os.path.join(src, "examples", "digits.csv")) as f:
        lines = f.readlines()
    rows = lines * 2  # 3594 rows: batches of 1024
    with open(os.path.join(tmp, "big.csv"), "w") as f:
        f.writelines(rows)
    with open(os.path.join(tmp, "one.csv"), "w") as f:
        f.write(rows[2500])

    def values(*args, stdin=None):
        return run([exe, "values", "--weights", "w", *args], tmp, stdin=stdin).stdout
    alone = values("--data", "one.csv")
    if not alone.startswith("h ") or values("--data", "big.csv", "--row", "2500") != alone:
        raise Failure(f"row 2500 of big.csv is not the row alone:\n{alone}")
    if values("--data", "-", "--row", "2500", stdin="".join(rows)) != alone:
        raise Failure("row 2500 on standard input differs")
    if values("--data", "big.csv", "--row", "5") == values("--data", "big.csv", "--row", "6"):
        raise Failure("rows 5 and 6 print the same numbers")
    proc = subprocess.Popen([exe, "values", "--weights", "w", "--data", "-", "--row", "5"],
                            cwd=tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.stdin.write("".join(rows[:1100]))  # a batch and more (within a pipe's buffer)
        proc.stdin.flush()  # and left open
        proc.wait(timeout=60)
        out, err = proc.stdout.read(), proc.stderr.read()
    except subprocess.TimeoutExpired:
        raise Failure("values --row 5 waited for the rest of an open pipe")
    finally:
        proc.kill()
        proc.stdin.close()
    if proc.returncode != 0 or out != values("--data", "big.csv", "--row", "5"):
        raise Failure(f"values --row 5 from an open pipe: exit {proc.returncode}\n{out}{err}")
    err = run([exe, "values", "--weights", "w", "--data", "big.csv", "--row", "3594"], tmp,
              want_status=2).stderr
    if "row 3594 is past the data: it has 3594 rows (0 to 3593)" not in err:
        raise Failure(f"values past the data: {err}")


def case_explain_examples(nnc, src, tmp):
    """explain --multiply and --at-sample on the examples and lessons with a CNN and an RNN:
    no crash, a line for every gradient, big expressions summarised."""
    for example, model in (("cnn_digits", None), ("lessons/bptt", "rnn"), ("digits", None)):
        path = os.path.join(src, "examples", example + ".nn")
        args = ["--model", model] if model else []
        out = run([nnc, "explain", path, "--multiply"] + args, tmp).stdout
        if "∂cost/∂loss = 1/B" not in out:
            raise Failure(f"explain --multiply {example}: no seed line\n{out[:2000]}")
        if len(out) > 2_000_000:
            raise Failure(f"explain --multiply {example}: {len(out)} bytes")
        exe = os.path.join(tmp, "model")
        run([nnc, path, "-o", exe] + args, tmp)
        run([exe, "train", "--steps", "1", "--save", "w.safetensors", "--quiet"], tmp)
        out = run([nnc, "explain", path, "--at-sample", "1", "--weights", "w.safetensors"] + args,
                  tmp).stdout
        if "(not computed)" in out or not re.search(r"^  ∂cost/∂loss\s+= 1\s", out, re.M):
            raise Failure(f"explain --at-sample {example}:\n{out[:3000]}")


TINY_MODEL = """model tiny {
    input  x[1]
    target y[1]
    param  w[1] = ones
    output p = x * 1e-30 * w
    loss = (sum(p) - sum(y))^2
}

train tiny {
    data = csv("d.csv", x = 0, y = 1)
    batch = 2
    BLOCK
}
"""


def case_flush_denormals(nnc, src, tmp):
    """f32 runs flush subnormals (below 1.2e-38) to 0 by default; --flush-denormals off, and
    flush_denormals = off in the train block, keep IEEE gradual underflow; f64 never flushes.
    A product of 1e-10 and 1e-30 is 1e-40, a subnormal in f32; so is the loss (1e-20)^2."""
    with open(os.path.join(tmp, "d.csv"), "w") as f:
        f.write("1e10,0\n1e10,0\n")
    f32_kept = "9.9999461e-41"  # 1e-40 in f32
    for block, flags, ext, kept in (("", [], "flushed", "0"),
                                    ("", ["--flush-denormals", "off"], "kept", f32_kept),
                                    ("flush_denormals = off", [], "block", f32_kept),
                                    ("", ["--f64"], "f64", "1e-40")):
        compiled, runtime = (flags, []) if ext == "f64" else ([], flags)
        exe = compile_text(nnc, tmp, "tiny_" + ext, TINY_MODEL.replace("BLOCK", block), *compiled)
        for workers in (["--workers", "1"], ["--workers", "2"]):
            out = run([exe, "train", "--epochs", "1", "--save", "w", "--quiet", *runtime,
                       *workers], tmp).stdout
            if out != f"final loss {kept}\n":
                raise Failure(f"{ext} {workers}: {out!r}, wanted final loss {kept}")
        got = run([exe, "predict", "--weights", "w", *runtime], tmp, stdin="1e-10\n").stdout
        if got != kept + "\n":
            raise Failure(f"{ext}: predict of 1e-10 * 1e-30 printed {got!r}, wanted {kept}")


def main():
    nnc, src, case = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    return run_case(globals(), case, nnc, src)


if __name__ == "__main__":
    sys.exit(main())
