#!/usr/bin/env python3
"""The lessons of examples/lessons/, each compiled, trained and its outcome asserted.

usage: run_lesson.py NNC SOURCE_DIR CASE

Each case works in a fresh temporary folder. The reference values a lesson is checked
against are computed here from the data and the functions themselves (least squares, the
critical points of a surface by Newton's method), never copied from a training run, and the
data's constants come from examples/lessons/make_data.py itself.
Python 3 standard library only.
"""
import json
import math
import os
import random
import re
import struct
import subprocess
import sys
import tempfile


class Failure(Exception):
    pass


class Lesson:
    def __init__(self, nnc, src, tmp):
        self.nnc, self.src, self.tmp = nnc, src, tmp
        self.dir = os.path.join(src, "examples", "lessons")

    def path(self, name):
        return os.path.join(self.dir, name)

    def run(self, cmd, want_status=0, stdin=None):
        proc = subprocess.run(cmd, cwd=self.tmp, capture_output=True, text=True, input=stdin,
                              timeout=300)
        if want_status is not None and proc.returncode != want_status:
            raise Failure(f"{' '.join(cmd)}: exit status {proc.returncode}, wanted {want_status}"
                          f"\n--- stdout:\n{proc.stdout}--- stderr:\n{proc.stderr}")
        return proc

    def build(self, source, model=None):
        """Compiles examples/lessons/SOURCE (its model MODEL); returns (executable, stderr)."""
        exe = os.path.join(self.tmp, model or source[:-3])
        cmd = [self.nnc, self.path(source), "-o", exe]
        if model:
            cmd += ["--model", model]
        return exe, self.run(cmd).stderr

    def train(self, exe, *args):
        return self.run([exe, "train", "--quiet", *args]).stdout

    def weights_file(self, name):
        return os.path.join(self.tmp, name)

    def predict(self, exe, weights, rows):
        text = "".join(",".join(str(v) for v in row) + "\n" for row in rows)
        out = self.run([exe, "predict", "--weights", weights], stdin=text).stdout
        return [[float(v) for v in line.split(",")] for line in out.splitlines()]


def number(text, label):
    """The number after `label` on a line of its own: `final loss 0.0123`, `x = 0.5`."""
    m = re.search(rf"^{re.escape(label)}\s+(\S+)\s*$", text, re.M)
    if not m:
        raise Failure(f"no '{label}' line in:\n{text}")
    return float(m.group(1))


def check(ok, message):
    if not ok:
        raise Failure(message)


def read_safetensors(path):
    """{name: list of floats} from a safetensors file (F32 or F64)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    tensors = {}
    for name, t in header.items():
        start, end = t["data_offsets"]
        code, size = {"F32": ("f", 4), "F64": ("d", 8)}[t["dtype"]]
        count = (end - start) // size
        tensors[name] = list(struct.unpack_from(f"<{count}{code}", blob, 8 + n + start))
    return tensors


def make_data(lesson):
    """examples/lessons/make_data.py as a module: its constants."""
    sys.path.insert(0, lesson.dir)
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    try:
        import make_data as module
    finally:
        sys.path.pop(0)
    return module


def read_csv(path):
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip()]
    return [[float(v) for v in line.split(",")] for line in lines[1:]]


CORNERS = [(0, 0), (0, 1), (1, 0), (1, 1)]


# ---- 1. the perceptron, the signum unit and its straight-through fix ----

def case_perceptron(lesson):
    exe, _ = lesson.build("perceptron.nn")
    for data, table in (("and.csv", [0, 0, 0, 1]), ("or.csv", [0, 1, 1, 1])):
        w = lesson.weights_file(data + ".safetensors")
        out = lesson.train(exe, "--data", lesson.path(data), "--save", w)
        check(number(out, "final accuracy") == 1.0, f"perceptron on {data}: {out}")
        check(number(out, "final loss") < 0.1, f"perceptron on {data}: loss too high: {out}")
        got = [p[0] for p in lesson.predict(exe, w, CORNERS)]
        check([round(p) for p in got] == table,
              f"perceptron on {data}: predicted {got} for {CORNERS}, wanted {table}")


def case_signum(lesson):
    exe, err = lesson.build("signum.nn")
    for name in ("w", "b"):
        check(f"warning: parameter {name} gets no gradient" in err,
              f"signum.nn: no warning that {name} gets no gradient; nnc printed:\n{err}")
    check("sign(u) is flat" in err, f"signum.nn: the warning does not blame sign():\n{err}")
    w0, w1 = lesson.weights_file("w0.safetensors"), lesson.weights_file("w1.safetensors")
    before = lesson.train(exe, "--epochs", "0", "--save", w0)
    after = lesson.train(exe, "--save", w1)
    start, end = read_safetensors(w0), read_safetensors(w1)
    check(start == end, f"signum: training moved the weights from {start} to {end}")
    check(number(before, "final loss") == number(after, "final loss"),
          f"signum: the loss changed:\n{before}\n{after}")
    check(number(after, "final accuracy") < 1.0,
          f"signum: a unit that cannot train should not start out right:\n{after}")


def case_signum_ste(lesson):
    exe, err = lesson.build("signum_ste.nn")
    check("gets no gradient" not in err, f"signum_ste.nn: still warned:\n{err}")
    w0, w1 = lesson.weights_file("w0.safetensors"), lesson.weights_file("w1.safetensors")
    before = lesson.train(exe, "--epochs", "0", "--save", w0)
    out = lesson.train(exe, "--save", w1)
    check(number(before, "final accuracy") < 1.0, f"signum_ste: right before training:\n{before}")
    check(number(out, "final accuracy") == 1.0, f"signum_ste: did not learn AND:\n{out}")
    check(number(out, "final loss") == 0.0, f"signum_ste: AND learnt, but loss:\n{out}")
    got = [p[0] for p in lesson.predict(exe, w1, CORNERS)]
    check(got == [-1, -1, -1, 1], f"signum_ste: predicted {got} for {CORNERS}")
    check(read_safetensors(w0) != read_safetensors(w1), "signum_ste: weights did not move")
    # gradcheck shows the surrogate's gradients and does not count them as failures.
    out = lesson.run([lesson.nnc, "gradcheck", lesson.path("signum_ste.nn")]).stdout
    verdicts = re.findall(r"^\s+([wb])\s+\S+\s+\S+\s+\S+\s+(\S+)\s*$", out, re.M)
    check(verdicts and all(v == "surrogate" for _, v in verdicts),
          f"signum_ste: gradcheck should call w and b surrogates:\n{out}")


def case_sigmoid_rule(lesson):
    # The hand-written exact rule passes gradcheck ...
    out = lesson.run([lesson.nnc, "gradcheck", lesson.path("sigmoid_rule.nn")]).stdout
    check("all 2 params match" in out, f"sigmoid_rule: gradcheck:\n{out}")
    # ... a wrong one (g * s instead of g * s * (1 - s)) fails it ...
    with open(lesson.path("sigmoid_rule.nn")) as f:
        text = f.read()
    check("grad u = g * s * (1 - s)" in text, "sigmoid_rule.nn: the rule is not where expected")
    wrong = os.path.join(lesson.tmp, "wrong.nn")
    with open(wrong, "w") as f:
        f.write(text.replace("grad u = g * s * (1 - s)", "grad u = g * s").replace(
            'csv("and.csv"', 'csv("' + lesson.path("and.csv") + '"'))
    out = lesson.run([lesson.nnc, "gradcheck", wrong], want_status=1).stdout
    check("FAIL" in out, f"sigmoid_rule: gradcheck passed a wrong rule:\n{out}")
    # ... and training with the rule does what the built-in sigmoid does.
    exe, _ = lesson.build("sigmoid_rule.nn")
    own = lesson.train(exe, "--no-save")
    exe, _ = lesson.build("perceptron.nn")
    builtin = lesson.train(exe, "--no-save")
    check(number(own, "final accuracy") == 1.0, f"sigmoid_rule: did not learn AND:\n{own}")
    check(abs(number(own, "final loss") - number(builtin, "final loss")) < 1e-6,
          f"sigmoid_rule and perceptron differ:\n{own}\n{builtin}")


# ---- 2. XOR needs a hidden layer ----

def case_xor_linear(lesson):
    exe, _ = lesson.build("xor_linear.nn")
    out = lesson.train(exe, "--no-save")
    check(number(out, "final accuracy") <= 0.75, f"xor_linear: one unit learnt XOR?\n{out}")
    for seed in ("2", "3"):
        out = lesson.train(exe, "--no-save", "--seed", seed, "--epochs", "4000")
        check(number(out, "final accuracy") <= 0.75, f"xor_linear, seed {seed}:\n{out}")


def case_xor_hidden(lesson):
    exe, _ = lesson.build("xor_hidden.nn")
    w = lesson.weights_file("xor.safetensors")
    out = lesson.train(exe, "--save", w)
    check(number(out, "final accuracy") == 1.0, f"xor_hidden: did not learn XOR:\n{out}")
    got = [p[0] for p in lesson.predict(exe, w, CORNERS)]
    check([round(p) for p in got] == [0, 1, 1, 0], f"xor_hidden: predicted {got}")
    # The header says a 2-2-1 net can get stuck, naming --seed 3 as a start that does.
    out = lesson.train(exe, "--no-save", "--seed", "3")
    check(number(out, "final accuracy") < 1.0, f"xor_hidden: seed 3 was said to get stuck:\n{out}")


# ---- 3. gradient descent in 1D ----

TAU = 2 * math.pi


def f1(x):
    return math.cos(TAU * x) + x * x


def df1(x):
    return -TAU * math.sin(TAU * x) + 2 * x


def d2f1(x):
    return -TAU * TAU * math.cos(TAU * x) + 2


def downhill_minimum(x, step=1e-4):
    """The local minimum of f1 that walking downhill from x reaches (then Newton)."""
    direction = -1 if df1(x) > 0 else 1
    while f1(x + direction * step) < f1(x):
        x += direction * step
    for _ in range(50):
        x -= df1(x) / d2f1(x)
    return x


def case_descent_1d(lesson):
    grid = [-2 + i * 1e-4 for i in range(40001)]
    global_min = min(f1(x) for x in grid)

    exe, _ = lesson.build("descent_1d.nn", "stuck")
    out = lesson.train(exe, "--no-save")
    check(number(out, "x =") == 0.0, f"stuck: x moved from 0:\n{out}")
    check(number(out, "final loss") == 1.0, f"stuck: f(0) = 1, but:\n{out}")

    for model, start, is_global in (("local", 1.2, False), ("best", 0.2, True)):
        exe, _ = lesson.build("descent_1d.nn", model)
        out = lesson.train(exe, "--no-save")
        x, loss = number(out, "x ="), number(out, "final loss")
        target = downhill_minimum(start)
        check(abs(x - target) < 1e-3, f"{model}: x = {x}, the minimum downhill of {start} "
              f"is {target:.6f}\n{out}")
        check(abs(df1(x)) < 1e-2, f"{model}: f'({x}) = {df1(x)}, not a minimum")
        check(abs(loss - f1(target)) < 1e-4, f"{model}: final loss {loss}, f = {f1(target)}")
        check((abs(f1(target) - global_min) < 1e-6) == is_global,
              f"{model}: the lesson says this minimum is {'' if is_global else 'not '}global")


# ---- 4. gradient descent and ascent in 2D on peaks ----

def peaks(x, y):
    return (3 * (1 - x) ** 2 * math.exp(-x * x - (y + 1) ** 2)
            - 10 * (x / 5 - x ** 3 - y ** 5) * math.exp(-x * x - y * y)
            - math.exp(-(x + 1) ** 2 - y * y) / 3)


def peaks_grad(x, y, h=1e-6):
    return ((peaks(x + h, y) - peaks(x - h, y)) / (2 * h),
            (peaks(x, y + h) - peaks(x, y - h)) / (2 * h))


def peaks_hessian(x, y, h=1e-4):
    fxx = (peaks(x + h, y) - 2 * peaks(x, y) + peaks(x - h, y)) / (h * h)
    fyy = (peaks(x, y + h) - 2 * peaks(x, y) + peaks(x, y - h)) / (h * h)
    fxy = (peaks(x + h, y + h) - peaks(x + h, y - h) - peaks(x - h, y + h)
           + peaks(x - h, y - h)) / (4 * h * h)
    return fxx, fxy, fyy


def peaks_extrema():
    """The local minima and maxima of peaks in [-3, 3]^2: (kind, x, y, value).

    Grid points lower (higher) than their 8 neighbours, each refined by Newton's method on
    the gradient, with finite-difference derivatives."""
    n, lo, span = 121, -3.0, 6.0
    h = span / (n - 1)
    found = []
    for i in range(1, n - 1):
        for j in range(1, n - 1):
            x, y = lo + i * h, lo + j * h
            v = peaks(x, y)
            around = [peaks(x + a * h, y + b * h) for a in (-1, 0, 1) for b in (-1, 0, 1)
                      if a or b]
            if not (v < min(around) or v > max(around)):
                continue
            for _ in range(50):
                gx, gy = peaks_grad(x, y)
                a, b, c = peaks_hessian(x, y)
                det = a * c - b * b
                x, y = x - (c * gx - b * gy) / det, y - (a * gy - b * gx) / det
            a, b, c = peaks_hessian(x, y)
            found.append(("min" if a > 0 else "max", x, y, peaks(x, y)))
    return found


def case_peaks(lesson):
    extrema = peaks_extrema()
    minima = sorted((e for e in extrema if e[0] == "min"), key=lambda e: e[3])
    maxima = sorted((e for e in extrema if e[0] == "max"), key=lambda e: -e[3])
    check(len(minima) >= 2 and len(maxima) >= 2, f"peaks: found only {extrema}")
    for model, sign, want in (("valley", 1, lambda e: e is minima[0]),
                              ("pit", 1, lambda e: e[0] == "min" and e is not minima[0]),
                              ("summit", -1, lambda e: e is maxima[0])):
        exe, _ = lesson.build("peaks.nn", model)
        out = lesson.train(exe, "--no-save")
        x, y, loss = number(out, "x ="), number(out, "y ="), number(out, "final loss")
        near = min(extrema, key=lambda e: math.hypot(e[1] - x, e[2] - y))
        check(math.hypot(near[1] - x, near[2] - y) < 1e-3,
              f"{model}: ended at ({x}, {y}), not at an extremum; nearest {near}\n{out}")
        check(want(near), f"{model}: ended at the {near[0]} {near}, not the one the lesson "
              f"names; minima {minima}, maxima {maxima}")
        check(abs(loss - sign * near[3]) < 1e-4, f"{model}: final loss {loss}, "
              f"{'' if sign > 0 else '-'}peaks there is {sign * near[3]}")


# ---- 5. a fixed and a decaying learning rate ----

def trace(out):
    """The rows of a `--trace` CSV (after its header) as lists of floats."""
    lines = out.splitlines()
    check(lines and lines[0].startswith("step,"), f"no trace header in:\n{out}")
    return [[float(v) for v in line.split(",")] for line in lines[1:]]


def case_learning_rate(lesson):
    best = downhill_minimum(0.2)

    def path(exe, *args):
        out = lesson.run([exe, "train", "--quiet", "--no-save", "--trace", "x", *args]).stdout
        rows = trace(out)
        check(len(rows) == 101, f"learning_rate: {len(rows)} trace rows, wanted steps 0..100")
        return [r[1] for r in rows]

    # fixed, lr 0.06: 1 - lr f''(x*) < -1, so x ends bouncing between two points.
    fixed, _ = lesson.build("learning_rate.nn", "fixed")
    xs = path(fixed)
    check(abs(xs[-1] - best) > 0.1 and abs(df1(xs[-1])) > 1,
          f"learning_rate: fixed was said to bounce, but ended at x = {xs[-1]}")
    check(abs(xs[-1] - xs[-3]) < 1e-4 and abs(xs[-1] - xs[-2]) > 0.2,
          f"learning_rate: fixed should alternate between two points: {xs[-4:]}")
    check(xs[-1] < best < xs[-2] or xs[-2] < best < xs[-1],
          f"learning_rate: the two points {xs[-2:]} should straddle x* = {best}")

    # decaying: the same start rate, decayed by 0.95 a step, converges.
    decaying, _ = lesson.build("learning_rate.nn", "decaying")
    xs = path(decaying)
    check(abs(xs[-1] - best) < 1e-4, f"learning_rate: decaying ended at {xs[-1]}, not {best}")
    check(path(decaying, "--schedule", "constant") == path(fixed),
          "learning_rate: decaying with --schedule constant should be fixed, step for step")

    # a small fixed rate converges; a tiny one creeps; a fast decay freezes x short of x*.
    xs = path(fixed, "--lr", "0.01")
    check(abs(xs[-1] - best) < 1e-4, f"learning_rate: lr 0.01 ended at {xs[-1]}, not {best}")
    xs = path(fixed, "--lr", "0.001")
    check(all(a < b for a, b in zip(xs, xs[1:])) and xs[-1] < best - 1e-3,
          f"learning_rate: lr 0.001 should creep up towards {best} without reaching it: "
          f"{xs[:3]} ... {xs[-3:]}")
    xs = path(decaying, "--gamma", "0.5")
    check(abs(xs[-1] - best) > 1e-3 and abs(xs[-1] - xs[-11]) < 1e-6,
          f"learning_rate: with gamma 0.5 x should freeze short of {best}: {xs[-11]} ten steps "
          f"before the end, {xs[-1]} at the end")


# ---- 6. linear regression ----

def case_regression(lesson):
    data = make_data(lesson)
    rows = read_csv(lesson.path("line.csv"))
    check(len(rows) == data.LINE_N, f"line.csv has {len(rows)} rows, not {data.LINE_N}")
    xs, ys = [r[0] for r in rows], [r[1] for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    m_ls = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    b_ls = my - m_ls * mx

    exe, _ = lesson.build("regression.nn")
    w = lesson.weights_file("line.safetensors")
    lesson.train(exe, "--save", w)
    weights = read_safetensors(w)
    m, b = weights["m"][0], weights["b"][0]
    check(abs(m - m_ls) < 1e-3, f"regression: m = {m}, least squares gives {m_ls}")
    check(abs(b - b_ls) < 1e-3, f"regression: b = {b}, least squares gives {b_ls}")
    check(abs(m - data.M_TRUE) < 0.15, f"regression: m = {m}, the data's slope is {data.M_TRUE}")
    got = lesson.predict(exe, w, [(1,)])[0][0]
    check(abs(got - (m + b)) < 1e-5, f"regression: predict(1) = {got}, m + b = {m + b}")


# ---- 7 and 8. classifiers ----

def case_qwerties(lesson):
    exe, _ = lesson.build("qwerties.nn")
    w = lesson.weights_file("q.safetensors")
    out = lesson.train(exe, "--save", w)
    check(number(out, "validation accuracy") >= 0.95, f"qwerties: held out:\n{out}")
    # Confidently right, too: a barely trained net can sort well-separated clouds already.
    check(number(out, "validation loss") < 0.1, f"qwerties: held-out loss too high:\n{out}")
    centres = make_data(lesson).QWERTIES_CENTRES
    got = [round(p[0]) for p in lesson.predict(exe, w, centres)]
    check(got == [0, 1], f"qwerties: the cloud centres {centres} classified as {got}")


def case_clouds3(lesson):
    exe, _ = lesson.build("clouds3.nn")
    w = lesson.weights_file("c.safetensors")
    out = lesson.train(exe, "--save", w)
    check(number(out, "validation accuracy") >= 0.95, f"clouds3: held out:\n{out}")
    # Confidently right, too: a barely trained net can sort well-separated clouds already.
    check(number(out, "validation loss") < 0.1, f"clouds3: held-out loss too high:\n{out}")
    centres = make_data(lesson).CLOUDS3_CENTRES
    got = [max(range(3), key=lambda k: z[k]) for z in lesson.predict(exe, w, centres)]
    check(got == [0, 1, 2], f"clouds3: the cloud centres {centres} classified as {got}")


# ---- 9. vanishing gradients: 20 sigmoid layers, with batch norm, with residual connections ----

def grad_norm_ratios(log_path):
    """Per epoch, the gradient norm of the first layer's weights over the last layer's."""
    with open(log_path) as f:
        lines = [line.strip().split(",") for line in f if line.strip()]
    header = lines[0]
    first, last = header.index("grad_norm.h1.W"), header.index("grad_norm.h20.W")
    return [float(row[first]) / float(row[last]) for row in lines[1:]]


def case_vanishing(lesson):
    accuracy = {}
    for model in ("plain", "batchnorm", "residual"):
        exe, _ = lesson.build("vanishing.nn", model)
        log, plot = lesson.weights_file(model + ".csv"), lesson.weights_file(model + ".svg")
        out = lesson.train(exe, "--no-save", "--log-grad-norms", "--log", log, "--plot", plot)
        accuracy[model] = number(out, "validation accuracy")
        ratios = grad_norm_ratios(log)
        check(len(ratios) == 20, f"vanishing {model}: {len(ratios)} epochs in the log, wanted 20")
        if model == "plain":
            # The gradient at the first layer is many orders of magnitude below the last's
            # (about 1e-12 with the shipped seed), in every epoch.
            check(max(ratios) < 1e-6,
                  f"vanishing plain: |grad h1.W| / |grad h20.W| per epoch {ratios}, wanted < 1e-6")
            with open(plot) as f:
                svg = f.read()
            check("h1.W" in svg and "1e-" in svg,
                  "vanishing plain: the plot has no gradient-norm panel naming h1.W")
        else:
            # Both cures keep the first layer's gradient within two orders of the last's.
            check(min(ratios) > 1e-2,
                  f"vanishing {model}: |grad h1.W| / |grad h20.W| per epoch {ratios}, wanted > 1e-2")
        # Another seed: the outcome is not the luck of one initialisation.
        out = lesson.train(exe, "--no-save", "--seed", "2")
        accuracy[model + " seed 2"] = number(out, "validation accuracy")
    for suffix in ("", " seed 2"):
        plain = accuracy["plain" + suffix]
        check(plain <= 0.2, f"vanishing: the plain net learnt ({accuracy})")
        for cure in ("batchnorm", "residual"):
            got = accuracy[cure + suffix]
            check(got >= 0.8 and got >= plain + 0.5, f"vanishing: {cure} did not learn ({accuracy})")


# ---- 12. backpropagation through time; vanishing and exploding gradients in an RNN ----

def last_log_row(log_path):
    """The last row of a --log CSV as {column: value}."""
    with open(log_path) as f:
        lines = [line.strip().split(",") for line in f if line.strip()]
    return {name: float(value) for name, value in zip(lines[0], lines[-1])}


def log_rows(log_path):
    with open(log_path) as f:
        lines = [line.strip().split(",") for line in f if line.strip()]
    return [{name: float(value) for name, value in zip(lines[0], row)} for row in lines[1:]]


def case_bptt(lesson):
    src = lesson.path("bptt.nn")
    # The 5-step tanh RNN learns to carry the first value to the end.
    exe, _ = lesson.build("bptt.nn", "rnn")
    for seed in ("1", "2"):
        out = lesson.train(exe, "--no-save", "--seed", seed)
        check(number(out, "validation accuracy") >= 0.95, f"bptt rnn, seed {seed}:\n{out}")

    # explain: the recurrent weight's gradient is the sum over the 5 time steps, one a step.
    out = lesson.run([lesson.nnc, "explain", src, "--model", "rnn", "--wrt", "h.Wh"]).stdout
    check("the sum over the 5 time steps of the scan at bptt.nn:" in out and
          "one use of h.Wh a step (backpropagation through time)" in out,
          f"bptt: explain does not name the sum over the time steps:\n{out[:2000]}")
    terms = re.findall(r"#\d+ matmul: \S+ = (\S+) · h\.Wh", out)
    check(terms[:5] == ["h@3", "h@2", "h@1", "h@0", "t6"],
          f"bptt: explain's terms of the sum are {terms[:5]}, wanted one a step")

    # --emit=grad summarises steps 2..3 of the backward pass; --steps all prints them.
    def state_grads(*flags):
        out = lesson.run([lesson.nnc, src, "--model", "rnn", "--emit=grad", *flags]).stdout
        back = out[out.index("backward of"):]
        return out, re.findall(r"%h@(\d)\.grad : \[16\] += matmul %\S+, @(\S+)", back)
    out, grads = state_grads()
    check([t for t, _ in grads] == ["4", "3", "0"] and "steps 2..3 of the scan" in out,
          f"bptt: --emit=grad should print h@4, h@3, h@0's gradients and summarise 3..2: {grads}")
    _, grads = state_grads("--steps", "all")
    check(grads == [("4", "z.W^T"), ("3", "h.Wh^T"), ("2", "h.Wh^T"), ("1", "h.Wh^T"),
                    ("0", "h.Wh^T")],
          f"bptt: --steps all: each state's gradient one step back through Wh^T: {grads}")

    # Vanishing: the gradient reaching the learnt start state shrinks with the length.
    exe, _ = lesson.build("bptt.nn", "lengths")
    for seed in ("1", "2"):
        log = lesson.weights_file(f"lengths{seed}.csv")
        lesson.train(exe, "--no-save", "--seed", seed, "--log-grad-norms", "--log", log)
        row = last_log_row(log)
        h0 = [row[f"grad_norm.h{t}.h0"] for t in (5, 10, 20, 40)]
        check(h0 == sorted(h0, reverse=True) and h0[-1] < h0[0] / 100,
              f"bptt lengths, seed {seed}: |grad h0| over 5, 10, 20, 40 steps {h0}: wanted "
              "each smaller, the 40 steps' below 1/100 of the 5's")

    # Exploding: without clipping the first step's gradient is huge and training stops with
    # a non-finite loss or param; clipped, the same start learns.
    exe, _ = lesson.build("bptt.nn", "explode")
    for seed in ("1", "2"):
        log = lesson.weights_file(f"explode{seed}.csv")
        proc = lesson.run([exe, "train", "--quiet", "--no-save", "--seed", seed,
                           "--log-grad-norms", "--log", log], want_status=1)
        check("became nan" in proc.stderr and "--clip" in proc.stderr,
              f"bptt explode, seed {seed}: no stop with the advice to clip:\n{proc.stderr}")
        first = log_rows(log)[0]["grad_norm.h.Wh"]
        check(first > 100, f"bptt explode, seed {seed}: |grad h.Wh| at step 1 is {first}")
        log = lesson.weights_file(f"clipped{seed}.csv")
        out = lesson.train(exe, "--no-save", "--seed", seed, "--clip", "0.1",
                           "--log-grad-norms", "--log", log)
        check(number(out, "validation accuracy") >= 0.9, f"bptt clipped, seed {seed}:\n{out}")
        rows = log_rows(log)
        check(rows[0]["grad_norm.h.Wh"] == first and len(rows) == 300,
              f"bptt clipped, seed {seed}: the log should hold 300 steps, the first the same "
              f"unclipped norm {first}: {rows[0]}")


# ---- the data ----

def case_hogwild(lesson):
    """13. HOGWILD!: the sparse model learns each word's tone (the sign of its weight) with 1
    and with 2 threads, to the same held-out band; the dense MLP too with 2 threads."""
    data = make_data(lesson)
    tones = data.word_tones(random.Random(data.WORDS_SEED))
    exe, _ = lesson.build("hogwild.nn", "sparse")
    accuracy = {}
    for threads in (1, 2):
        w = lesson.weights_file(f"s{threads}.safetensors")
        out = lesson.train(exe, "--hogwild", str(threads), "--save", w)
        accuracy[threads] = number(out, "validation accuracy")
        weights = read_safetensors(w)["E"]
        signed = [(t, e) for t, e in zip(tones, weights) if t != 0]
        agree = sum(1 for t, e in signed if t * e > 0) / len(signed)
        check(agree >= 0.9, f"hogwild sparse, {threads} threads: the sign of {agree:.2f} of the "
              f"toned words' weights is their tone, wanted >= 0.9")
    check(min(accuracy.values()) >= 0.94 and abs(accuracy[1] - accuracy[2]) <= 0.02,
          f"hogwild sparse: held-out accuracy {accuracy}, wanted >= 0.94 and within 0.02")
    exe, _ = lesson.build("hogwild.nn", "dense")
    out = lesson.train(exe, "--hogwild", "2", "--no-save")
    check(number(out, "validation accuracy") >= 0.97, f"hogwild dense, 2 threads:\n{out}")


# ---- 14. optimizers compared on Rosenbrock's valley ----

def rosenbrock(x, y):
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2


def case_optimizers(lesson):
    """The minimum is (1, 1), where the function is 0. Plain sgd at its stable rate is far
    from it after the 2000 steps and diverges at three times the rate; momentum and adam
    reach it; every final loss is the function at the final point."""
    exe, _ = lesson.build("optimizers.nn", "valley")
    runs = {"sgd": [], "momentum": ["--momentum", "0.9"],
            "adam": ["--optimizer", "adam", "--lr", "0.1"]}
    final = {}
    for name, args in runs.items():
        out = lesson.train(exe, "--no-save", *args)
        x, y, loss = number(out, "x ="), number(out, "y ="), number(out, "final loss")
        check(abs(loss - rosenbrock(x, y)) <= 1e-5 * max(1.0, loss),
              f"{name}: final loss {loss}, rosenbrock({x}, {y}) = {rosenbrock(x, y)}")
        final[name] = (x, y, loss)
    check(final["sgd"][2] > 0.1 and final["sgd"][0] < 0.8, f"sgd got close: {final['sgd']}")
    for name in ("momentum", "adam"):
        x, y, loss = final[name]
        check(loss < 1e-6 and abs(x - 1) < 1e-3 and abs(y - 1) < 2e-3,
              f"{name} did not reach (1, 1): {final[name]}")
    out = lesson.run([exe, "train", "--quiet", "--no-save", "--lr", "0.003"], want_status=1)
    check("became nan or inf" in out.stderr, f"sgd at lr 0.003:\n{out.stderr}")


# ---- 15, 16. overfitting, penalties, dropout, early stopping ----

def case_overfitting(lesson):
    """big learns few.csv by heart (accuracy 1) while its validation loss, lowest early,
    rises; an L2 penalty and dropout each end with a lower validation loss and a higher
    validation accuracy; early stopping ends with the weights of the epoch of the lowest
    validation loss in the log."""
    big, _ = lesson.build("overfitting.nn", "big")
    log = os.path.join(lesson.tmp, "big.csv")
    plain = lesson.train(big, "--no-save", "--log", log)
    check(number(plain, "final accuracy") == 1.0, f"big did not fit the 40 points:\n{plain}")
    rows = log_rows(log)
    best = min(rows, key=lambda r: r["val_loss"])
    check(best["epoch"] < len(rows) / 4 and rows[-1]["val_loss"] > 2 * best["val_loss"],
          f"big: validation loss lowest at epoch {best['epoch']:g} ({best['val_loss']}), "
          f"{rows[-1]['val_loss']} at the end")
    dropped, _ = lesson.build("overfitting.nn", "dropped")
    for name, out in (("--l2 0.02", lesson.train(big, "--no-save", "--l2", "0.02")),
                      ("dropout", lesson.train(dropped, "--no-save"))):
        check(number(out, "validation loss") < number(plain, "validation loss") / 2 and
              number(out, "validation accuracy") > number(plain, "validation accuracy"),
              f"{name} did not generalise better:\n{out}\nthan\n{plain}")
    out = lesson.run([big, "train", "--no-save", "--early-stopping", "on", "--patience", "50"])
    restored = re.search(r"^restored the weights of epoch (\d+) ", out.stderr, re.M)
    check(restored and int(restored.group(1)) == int(best["epoch"]),
          f"early stopping did not keep epoch {best['epoch']:g}:\n{out.stderr}")
    check(abs(number(out.stdout, "validation loss") - best["val_loss"]) < 1e-6,
          f"early stopping ended at {out.stdout}, the log's best {best}")


def case_data(lesson):
    lesson.run([sys.executable, lesson.path("make_data.py"), "--check"])


def main():
    nnc, src, case = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            globals()["case_" + case](Lesson(nnc, src, tmp))
        except Failure as e:
            print(f"FAIL {case}: {e}")
            return 1
    print(f"ok {case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
