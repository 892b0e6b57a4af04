#!/usr/bin/env python3
"""Batch norm and layer norm against PyTorch, in f64: forward values, gradients and the
running statistics, in training and in inference mode (docs/language.md, "State and batch
statistics").

usage: batchnorm.py NNC SOURCE_DIR CC LIBNNRT [LINK_FLAGS]
Exits 77 (skipped) when torch cannot be imported (Debian's python3-torch; the README's test
command installs it). Each model is compiled by nnc (--f64 -c) and driven by a small C
program that calls its entry points as the runtime does (nnrt.h): grad() in NNRT_TRAINING
mode (gradcheck's passes: batch statistics, the state left alone), grad() in
NNRT_TRAINING_STEP mode (a step of train, which writes the running statistics; the driver
never moves the params), and forward() then grad() in NNRT_INFERENCE mode. Its numbers are
compared with torch.nn's modules given the same weights, each to 1e-10 (relative above 1):

features   stdlib `batchnorm` and `layernorm` inside a small MLP against BatchNorm1d
           (momentum 0.1, eps 1e-5) and LayerNorm([5]), for batches of 2, 7 and 16.
images     `batchnorm2d` on x [3, 2, 5] against BatchNorm2d(3): an epoch of steps over 11
           samples in batches of 4, 4, 3, each step's outputs and gradients (of the input,
           gamma and beta) and the running mean and unbiased running variance after it,
           then eval's outputs and gamma's and beta's gradients with the running statistics.
layers     `layernorm` on x [6] against LayerNorm(6) and `layernorm_last` on x [4, 3]
           against LayerNorm(3) over its rows, the gradients of the input and of gamma and
           beta, with a constant row (variance 0: eps decides the gradient of the input)
           and rows about 1e6 (a variance taken as E[x^2] - E[x]^2 fails there).

The gradient of an input is read as that of a param: the model's input is a one-hot u [N]
that picks the sample's row of a param X [N, ...] holding the whole data set (u @ X, exact
in f64), so that row i of d cost/d X is d cost/d x of sample i.
"""
import os
import random
import subprocess
import sys
import tempfile

SKIP = 77
TOLERANCE = 1e-10

# Reads a script from stdin, whitespace separated:
#   CAP                         the largest batch of any pass
#   set NAME v0 v1 ...          a param's or state's values (its numel of them)
#   MODE B v ...                a pass (train, step or eval) over a batch of B samples: every
#                               input, then every target, B rows each (descriptor order)
# and prints, for the k-th pass, "k WHAT NAME v0 v1 ..." lines: its loss and output (WHAT
# "forward" for eval's forward() call, "grad" for the grad() call), every param's gradient
# ("d") and every state ("state") after the pass.
DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "nnrt.h"

static const nnrt_model *m = &nnrt_model_desc;
static double *fixed, *varying;
static nnrt_ctx ctx;

static double *at(const nnrt_tensor *t) {
    return t->varying ? varying + t->offset * ctx.batch_cap : fixed + t->offset;
}

static void read_values(double *to, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (scanf("%lf", &to[i]) != 1) exit(3);
}

static const nnrt_tensor *find(const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    for (int i = 0; i < m->n_states; i++)
        if (!strcmp(m->states[i].name, name)) return &m->states[i];
    fprintf(stderr, "driver: no param or state %s\n", name);
    exit(4);
}

static void print(int pass, const char *what, const char *name, const double *v, int64_t n) {
    printf("%d %s %s", pass, what, name);
    for (int64_t i = 0; i < n; i++) printf(" %.17g", v[i]);
    printf("\n");
}

static void report(int pass, const char *what) {
    print(pass, what, "loss", at(&m->loss), ctx.batch);
    print(pass, what, "output", at(&m->output), ctx.batch * m->output.numel);
}

/* The batch's inputs and targets, kept: the model may reuse their memory. */
static double *data;

static const double *write_rows(const nnrt_tensor *t, const double *from) {
    memcpy(at(t), from, (size_t)(ctx.batch * t->numel) * 8);
    return from + ctx.batch * t->numel;
}

static void write_data(void) {
    const double *from = data;
    for (int i = 0; i < m->n_inputs; i++) from = write_rows(&m->inputs[i], from);
    for (int i = 0; i < m->n_targets; i++) from = write_rows(&m->targets[i], from);
}

static void run_pass(int pass, const char *mode) {
    ctx.training = !strcmp(mode, "train")  ? NNRT_TRAINING
                   : !strcmp(mode, "step") ? NNRT_TRAINING_STEP
                                           : NNRT_INFERENCE;
    write_data();
    if (ctx.training == NNRT_INFERENCE) {
        m->forward(&ctx);
        report(pass, "forward");
        write_data();
    }
    m->grad(&ctx);
    report(pass, "grad");
    for (int i = 0; i < m->n_params; i++)
        print(pass, "d", m->params[i].name, fixed + m->params[i].grad_offset, m->params[i].numel);
    for (int i = 0; i < m->n_states; i++)
        print(pass, "state", m->states[i].name, at(&m->states[i]), m->states[i].numel);
}

int main(void) {
    int64_t cap;
    if (scanf("%lld", (long long *)&cap) != 1 || !m->f64) return 3;
    fixed = aligned_alloc(64, ((size_t)m->fixed_elems * 8 + 63) / 64 * 64 + 64);
    varying = aligned_alloc(64, ((size_t)(m->varying_elems * cap) * 8 + 63) / 64 * 64 + 64);
    ctx = (nnrt_ctx){.fixed = fixed, .varying = varying, .batch_cap = cap};
    int64_t data_elems = 0;
    for (int i = 0; i < m->n_inputs; i++) data_elems += cap * m->inputs[i].numel;
    for (int i = 0; i < m->n_targets; i++) data_elems += cap * m->targets[i].numel;
    data = malloc((size_t)data_elems * 8);
    char word[256];
    for (int pass = 0; scanf("%255s", word) == 1;) {
        if (!strcmp(word, "set")) {
            if (scanf("%255s", word) != 1) return 3;
            const nnrt_tensor *t = find(word);
            read_values(fixed + t->offset, t->numel);
            continue;
        }
        long long batch;
        if (scanf("%lld", &batch) != 1 || batch < 1 || batch > cap) return 3;
        ctx.batch = batch;
        int64_t n = 0;
        for (int i = 0; i < m->n_inputs; i++) n += batch * m->inputs[i].numel;
        for (int i = 0; i < m->n_targets; i++) n += batch * m->targets[i].numel;
        read_values(data, n);
        run_pass(pass++, word);
    }
    return 0;
}
"""


def fail(message):
    print(f"FAIL batchnorm: {message}")
    sys.exit(1)


def build(nnc, src, link, tmp, name, model):
    """The model compiled by nnc and linked with the driver, libnnrt (the kernels of
    reshape, flatten, ...; the driver's main() replaces its) and the flags libnnrt was built
    with (the sanitizers'), as nnc links (compiler/link.c); returns the executable."""
    with open(os.path.join(tmp, name + ".nn"), "w") as f:
        f.write(model)
    driver_c = os.path.join(tmp, "driver.c")
    if not os.path.exists(driver_c):
        with open(driver_c, "w") as f:
            f.write(DRIVER)
    obj, exe = os.path.join(tmp, name + ".o"), os.path.join(tmp, name)
    subprocess.run([nnc, os.path.join(tmp, name + ".nn"), "--f64", "-c", "-o", obj], check=True)
    cc, libnnrt, flags = link
    subprocess.run([cc, *flags, "-std=c11", "-O1", "-I", os.path.join(src, "runtime"), driver_c,
                    obj, libnnrt, "-lz", "-lopenblas", "-lmvec", "-lm", "-o", exe], check=True)
    return exe


def ours(driver, values, passes):
    """Runs the driver: values {name: numbers} for params and states, then passes [(mode,
    tensors)], tensors a list of the inputs' then the targets' samples (descriptor order),
    each a list of per-sample lists of numbers. Returns one {(what, name): numbers} a pass."""
    script = [str(max(len(tensors[0]) for _, tensors in passes))]
    for name, v in values.items():
        script += ["set", name] + [repr(x) for x in v]
    for mode, tensors in passes:
        script += [mode, str(len(tensors[0]))]
        script += [repr(x) for samples in tensors for sample in samples for x in sample]
    proc = subprocess.run([driver], input=" ".join(script), text=True, capture_output=True)
    if proc.returncode != 0:
        fail(f"{driver} exited with status {proc.returncode}: {proc.stderr}")
    got = [{} for _ in passes]
    for line in proc.stdout.splitlines():
        k, what, name, *vals = line.split()
        got[int(k)][(what, name)] = [float(v) for v in vals]
    return got


LARGEST = {"difference": 0.0, "what": ""}  # the largest (relative above 1) difference seen


def compare(what, got, want):
    if len(got) != len(want):
        fail(f"{what}: {len(got)} values, torch has {len(want)}")
    for i, (a, b) in enumerate(zip(got, want)):
        difference = abs(a - b) / max(1.0, abs(b))
        if not difference <= TOLERANCE:
            fail(f"{what}[{i}] = {a!r}, torch says {b!r} (difference {abs(a - b):.3g})")
        if difference > LARGEST["difference"]:
            LARGEST.update(difference=difference, what=f"{what}[{i}]")
    return 1


def mse_backward(torch, o, targets):
    """nnc's mse(o, y) per sample; its backward pass from the cost, their mean."""
    per_sample = ((o - torch.tensor(targets, dtype=torch.float64)) ** 2).mean(dim=1)
    per_sample.mean().backward()
    return per_sample.tolist()


def copy_into(torch, module_param, values, dense_shape=None):
    """nnc's values into a torch module's param; a dense W [in, out] is torch's [out, in]."""
    t = torch.tensor(values, dtype=torch.float64)
    module_param.copy_(t.reshape(dense_shape).T if dense_shape else t)


# ---- features: batchnorm and layernorm in an MLP ----

FEATURES_MODEL = """import "nn"
model norms {
    input  x[4]
    target y[3]
    z = dense(x, 5)
    h = batchnorm(z)
    l = layernorm(tanh(h))
    output o = dense(l, 3)
    loss = mse(o, y)
}
"""


def features_weights(rng):
    """Every param and state, in nnc's layout (dense's W is [in, out], torch's [out, in])."""
    def vec(n, lo=-1.0, hi=1.0):
        return [rng.uniform(lo, hi) for _ in range(n)]
    return {"z.W": vec(20), "z.b": vec(5), "h.gamma": vec(5, 0.5, 1.5), "h.beta": vec(5),
            "l.gamma": vec(5, 0.5, 1.5), "l.beta": vec(5), "o.W": vec(15), "o.b": vec(3),
            "h.running_mean": vec(5, -0.5, 0.5), "h.running_var": vec(5, 0.5, 2.0)}


def features_torch(torch, x, y, w, training):
    """The same model in torch.nn; returns the loss per sample, outputs, gradients by nnc's
    names (in nnc's layout) and the running statistics after the pass."""
    lin1 = torch.nn.Linear(4, 5).double()
    bn = torch.nn.BatchNorm1d(5, momentum=0.1, eps=1e-5).double()
    ln = torch.nn.LayerNorm([5], eps=1e-5).double()
    lin2 = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        copy_into(torch, lin1.weight, w["z.W"], (4, 5))
        copy_into(torch, lin1.bias, w["z.b"])
        copy_into(torch, bn.weight, w["h.gamma"])
        copy_into(torch, bn.bias, w["h.beta"])
        copy_into(torch, bn.running_mean, w["h.running_mean"])
        copy_into(torch, bn.running_var, w["h.running_var"])
        copy_into(torch, ln.weight, w["l.gamma"])
        copy_into(torch, ln.bias, w["l.beta"])
        copy_into(torch, lin2.weight, w["o.W"], (5, 3))
        copy_into(torch, lin2.bias, w["o.b"])
    bn.train(training)
    o = lin2(ln(torch.tanh(bn(lin1(torch.tensor(x, dtype=torch.float64))))))
    per_sample = mse_backward(torch, o, y)
    grads = {"z.W": lin1.weight.grad.T.reshape(-1), "z.b": lin1.bias.grad,
             "h.gamma": bn.weight.grad, "h.beta": bn.bias.grad, "l.gamma": ln.weight.grad,
             "l.beta": ln.bias.grad, "o.W": lin2.weight.grad.T.reshape(-1), "o.b": lin2.bias.grad}
    return {"loss": per_sample, "output": o.reshape(-1).tolist(),
            "grad": {k: v.tolist() for k, v in grads.items()},
            "state": {"h.running_mean": bn.running_mean.tolist(),
                      "h.running_var": bn.running_var.tolist()}}


def case_features(torch, driver, rng):
    checked = 0
    for batch in (2, 7, 16):
        x = [[rng.gauss(0.5, 2.0) for _ in range(4)] for _ in range(batch)]
        y = [[rng.uniform(-1, 1) for _ in range(3)] for _ in range(batch)]
        w = features_weights(rng)
        got = dict(zip(("train", "step", "eval"),
                       ours(driver, w, [(mode, [x, y]) for mode in ("train", "step", "eval")])))
        train = features_torch(torch, x, y, w, True)
        # The driver's eval pass comes after its training step: the updated statistics.
        infer = features_torch(torch, x, y, dict(w, **train["state"]), False)
        for mode, want in (("train", train), ("eval", infer)):
            for what in ("loss", "output"):
                checked += compare(f"B={batch} {mode} {what}", got[mode][("grad", what)],
                                   want[what])
        for what in ("loss", "output"):
            checked += compare(f"B={batch} eval forward() {what}", got["eval"][("forward", what)],
                               infer[what])
        for name, g in train["grad"].items():
            checked += compare(f"B={batch} train d cost/d {name}", got["train"][("d", name)], g)
        # Inference: nnc's backward pass is the training behaviour's (training(a, b)
        # passes g to a), so below the batch norm it is not eval's; from the batch
        # norm's own scale and shift on it is.
        for name in ("h.gamma", "h.beta", "l.gamma", "l.beta", "o.W", "o.b"):
            checked += compare(f"B={batch} eval d cost/d {name}", got["eval"][("d", name)],
                               infer["grad"][name])
        for name, v in train["state"].items():
            checked += compare(f"B={batch} {name} after a training step",
                               got["step"][("state", name)], v)
            checked += compare(f"B={batch} {name} after a gradcheck pass",
                               got["train"][("state", name)], w[name])
    return checked


def one_hot(i, n):
    return [1.0 if k == i else 0.0 for k in range(n)]


def input_grads(data, picked, x_grad):
    """nnc's d cost/d X [N, ...] for the data set and torch's d cost/d x for the samples of
    the batch (rows `picked`): the same, with zeros in the rows of the other samples."""
    want = [[0.0] * len(data[0]) for _ in data]
    for row, i in zip(x_grad.reshape(len(picked), -1).tolist(), picked):
        want[i] = row
    return [v for r in want for v in r]


# ---- images: batchnorm2d, several training steps ----

C, H, W, SAMPLES, BATCH = 3, 2, 5, 11, 4

IMAGES_MODEL = f"""import "nn"
model images {{
    input  u[{SAMPLES}]
    target y[{C * H * W}]
    param  X[{SAMPLES}, {C * H * W}] = zeros
    h = batchnorm2d(reshape(u @ X, {C}, {H}, {W}))
    output o = flatten(h)
    loss = mse(o, y)
}}
"""


def case_images(torch, driver, rng):
    checked = 0
    # each channel its own mean and spread, so that the statistics differ per channel
    data = [[rng.gauss(2.0 * c - 1.0, 0.5 + c) for c in range(C) for _ in range(H * W)]
            for _ in range(SAMPLES)]
    targets = [[rng.uniform(-1, 1) for _ in range(C * H * W)] for _ in range(SAMPLES)]
    values = {"X": [v for r in data for v in r],
              "h.gamma": [rng.uniform(0.5, 1.5) for _ in range(C)],
              "h.beta": [rng.uniform(-1, 1) for _ in range(C)],
              "h.running_mean": [rng.uniform(-0.5, 0.5) for _ in range(C)],
              "h.running_var": [rng.uniform(0.5, 2.0) for _ in range(C)]}
    order = list(range(SAMPLES))
    rng.shuffle(order)
    batches = [order[k:k + BATCH] for k in range(0, SAMPLES, BATCH)]  # 4, 4 and 3 samples
    everyone = list(range(SAMPLES))

    def tensors(picked):
        return [[one_hot(i, SAMPLES) for i in picked], [targets[i] for i in picked]]

    got = ours(driver, values, [("step", tensors(b)) for b in batches] +
               [("eval", tensors(everyone))])

    bn = torch.nn.BatchNorm2d(C, momentum=0.1, eps=1e-5).double()
    with torch.no_grad():
        for name, p in (("gamma", bn.weight), ("beta", bn.bias),
                        ("running_mean", bn.running_mean), ("running_var", bn.running_var)):
            copy_into(torch, p, values["h." + name])

    def torch_pass(picked):
        x = torch.tensor([data[i] for i in picked], dtype=torch.float64).reshape(-1, C, H, W)
        x.requires_grad_(True)
        bn.weight.grad = bn.bias.grad = None
        o = bn(x).flatten(1)
        loss = mse_backward(torch, o, [targets[i] for i in picked])
        return {"loss": loss, "output": o.reshape(-1).tolist(), "x": x.grad,
                "h.gamma": bn.weight.grad.tolist(), "h.beta": bn.bias.grad.tolist()}

    bn.train()
    for step, picked in enumerate(batches):
        want, mine = torch_pass(picked), got[step]
        what = f"step {step + 1} (B={len(picked)})"
        for name in ("loss", "output"):
            checked += compare(f"{what} {name}", mine[("grad", name)], want[name])
        checked += compare(f"{what} d cost/d x", mine[("d", "X")],
                           input_grads(data, picked, want["x"]))
        for name in ("h.gamma", "h.beta"):
            checked += compare(f"{what} d cost/d {name}", mine[("d", name)], want[name])
        checked += compare(f"{what} h.running_mean", mine[("state", "h.running_mean")],
                           bn.running_mean.tolist())
        checked += compare(f"{what} h.running_var (unbiased)", mine[("state", "h.running_var")],
                           bn.running_var.tolist())
    bn.eval()
    want, mine = torch_pass(everyone), got[len(batches)]
    for name in ("loss", "output"):
        checked += compare(f"eval forward() {name}", mine[("forward", name)], want[name])
        checked += compare(f"eval {name}", mine[("grad", name)], want[name])
    # eval's backward pass is the training behaviour's below the batch norm (the rule of
    # training(a, b)); gamma's and beta's gradients are eval's
    for name in ("h.gamma", "h.beta"):
        checked += compare(f"eval d cost/d {name}", mine[("d", name)], want[name])
    return checked


# ---- layers: layernorm and layernorm_last, with a constant row and one about 1e6 ----

N, T, D, LAYER_SAMPLES = 6, 4, 3, 5

LAYERS_MODEL = f"""import "nn"
model layers {{
    input  u[{LAYER_SAMPLES}]
    target y[{N + T * D}]
    param  X1[{LAYER_SAMPLES}, {N}] = zeros
    param  X2[{LAYER_SAMPLES}, {T * D}] = zeros
    a = layernorm(u @ X1)
    b = layernorm_last(reshape(u @ X2, {T}, {D}))
    output o = concat(a, flatten(b))
    loss = mse(o, y)
}}
"""


def case_layers(torch, driver, rng):
    checked = 0

    def row(n):
        return [rng.gauss(0.0, 1.5) for _ in range(n)]

    def big(n, offset):
        """offset plus integers whose sum n divides: the mean is exact (1e6 has a half ulp
        of 6e-11, as large as the tolerance over a spread of 1), and a spread of about 20
        (torch takes the mean as the sum times 1/n, a few ulp off)."""
        deviations = [rng.randint(-40, 40) for _ in range(n)]
        deviations[-1] -= sum(deviations) % n
        return [offset + d for d in deviations]

    x1 = [row(N) for _ in range(LAYER_SAMPLES)]
    x1[1] = [-0.3] * N  # variance 0: the scale is 1/sqrt(eps)
    x1[3] = big(N, 1e6)
    x2 = [[row(D) for _ in range(T)] for _ in range(LAYER_SAMPLES)]
    x2[0][2] = [2.5] * D
    x2[2][1] = big(D, 1e6)
    x2[4][0] = [-0.3] * D
    x2[4][3] = big(D, -1e6)
    x2 = [[v for r in sample for v in r] for sample in x2]
    targets = [[rng.uniform(-1, 1) for _ in range(N + T * D)] for _ in range(LAYER_SAMPLES)]
    values = {"X1": [v for r in x1 for v in r], "X2": [v for r in x2 for v in r],
              "a.gamma": [rng.uniform(0.5, 1.5) for _ in range(N)],
              "a.beta": [rng.uniform(-1, 1) for _ in range(N)],
              "b.gamma": [rng.uniform(0.5, 1.5) for _ in range(D)],
              "b.beta": [rng.uniform(-1, 1) for _ in range(D)]}
    everyone = list(range(LAYER_SAMPLES))
    tensors = [[one_hot(i, LAYER_SAMPLES) for i in everyone], targets]
    got = ours(driver, values, [("train", tensors), ("eval", tensors)])

    ln1 = torch.nn.LayerNorm(N, eps=1e-5).double()
    ln2 = torch.nn.LayerNorm(D, eps=1e-5).double()
    with torch.no_grad():
        for p, name in ((ln1.weight, "a.gamma"), (ln1.bias, "a.beta"), (ln2.weight, "b.gamma"),
                        (ln2.bias, "b.beta")):
            copy_into(torch, p, values[name])
    a_in = torch.tensor(x1, dtype=torch.float64, requires_grad=True)
    b_in = torch.tensor(x2, dtype=torch.float64).reshape(-1, T, D).requires_grad_(True)
    o = torch.cat([ln1(a_in), ln2(b_in).flatten(1)], dim=1)
    loss = mse_backward(torch, o, targets)
    want = {("grad", "loss"): loss, ("grad", "output"): o.reshape(-1).tolist(),
            ("d", "X1"): a_in.grad.reshape(-1).tolist(),
            ("d", "X2"): b_in.grad.reshape(-1).tolist(),
            ("d", "a.gamma"): ln1.weight.grad.tolist(), ("d", "a.beta"): ln1.bias.grad.tolist(),
            ("d", "b.gamma"): ln2.weight.grad.tolist(), ("d", "b.beta"): ln2.bias.grad.tolist()}
    want[("forward", "loss")], want[("forward", "output")] = want[("grad", "loss")], \
        want[("grad", "output")]
    # layer norm is the same in both modes: eval's gradients are training's
    for mode, mine in zip(("train", "eval"), got):
        for key, v in want.items():
            if key[0] != "forward" or mode == "eval":
                checked += compare(f"{mode} {key[0]} {key[1]}", mine[key], v)
    return checked


CASES = (("features", FEATURES_MODEL, case_features), ("images", IMAGES_MODEL, case_images),
         ("layers", LAYERS_MODEL, case_layers))


def main():
    nnc, src = sys.argv[1], sys.argv[2]
    link = (sys.argv[3], sys.argv[4], sys.argv[5].split() if len(sys.argv) > 5 else [])
    try:
        import torch
    except ImportError:
        print("skipped: torch cannot be imported (Debian's python3-torch)")
        return SKIP
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, case in CASES:
            driver = build(nnc, src, link, tmp, name, model)
            LARGEST.update(difference=0.0, what="")
            checked = case(torch, driver, random.Random(11))
            print(f"ok {name}: {checked} comparisons with torch {torch.__version__} within "
                  f"{TOLERANCE:g}, the largest difference {LARGEST['difference']:.2g} "
                  f"({LARGEST['what']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
