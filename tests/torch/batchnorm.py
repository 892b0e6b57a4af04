#!/usr/bin/env python3
"""Batch norm and layer norm against PyTorch, in f64: forward values, gradients and the
running statistics, in training and in inference mode (docs/language.md, "State and batch
statistics").

usage: batchnorm.py NNC SOURCE_DIR CC
Exits 77 (skipped) when torch cannot be imported (Debian's python3-torch; the README's test
command installs it). The model is compiled by nnc (--f64 -c) and driven by a small C
program that calls its entry points as the runtime does (nnrt.h): grad() in NNRT_TRAINING
mode, grad() in NNRT_TRAINING_STEP mode (which writes the running statistics), then
forward() and grad() in NNRT_INFERENCE mode. Its numbers are compared with torch.nn's
BatchNorm1d (momentum 0.1, eps 1e-5) and LayerNorm (eps 1e-5) given the same weights.
"""
import os
import random
import subprocess
import sys
import tempfile

SKIP = 77
TOLERANCE = 1e-10

MODEL = """import "nn"
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

# Reads the batch and every param and state (descriptor order) from stdin; prints
# "NAME v0 v1 ..." lines, one block per mode.
DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "nnrt.h"

static double *fixed, *varying;
static nnrt_ctx ctx;

static double *at(const nnrt_tensor *t, int64_t b) {
    return t->varying ? varying + t->offset * ctx.batch_cap + b * t->numel : fixed + t->offset;
}

static void read_into(const nnrt_tensor *t, int64_t rows) {
    for (int64_t b = 0; b < rows; b++)
        for (int64_t e = 0; e < t->numel; e++)
            if (scanf("%lf", at(t, b) + e) != 1) exit(3);
}

static void print(const char *mode, const char *what, const char *name, const double *v,
                  int64_t n) {
    printf("%s %s %s", mode, what, name);
    for (int64_t i = 0; i < n; i++) printf(" %.17g", v[i]);
    printf("\n");
}

static void report(const char *mode) {
    const nnrt_model *m = &nnrt_model_desc;
    print(mode, "loss", "loss", at(&m->loss, 0), ctx.batch);
    print(mode, "output", "output", at(&m->output, 0), ctx.batch * m->output.numel);
}

static void gradients(const char *mode) {
    const nnrt_model *m = &nnrt_model_desc;
    for (int i = 0; i < m->n_params; i++)
        print(mode, "grad", m->params[i].name, fixed + m->params[i].grad_offset,
              m->params[i].numel);
}

int main(void) {
    const nnrt_model *m = &nnrt_model_desc;
    int64_t batch;
    if (scanf("%lld", (long long *)&batch) != 1 || !m->f64) return 3;
    fixed = aligned_alloc(64, ((size_t)m->fixed_elems * 8 + 63) / 64 * 64 + 64);
    varying = aligned_alloc(64, ((size_t)(m->varying_elems * batch) * 8 + 63) / 64 * 64 + 64);
    ctx = (nnrt_ctx){.fixed = fixed, .varying = varying, .batch = batch, .batch_cap = batch};
    read_into(&m->inputs[0], batch);
    read_into(&m->targets[0], batch);
    for (int i = 0; i < m->n_params; i++) read_into(&m->params[i], 1);
    for (int i = 0; i < m->n_states; i++) read_into(&m->states[i], 1);
    double *inputs = malloc((size_t)(batch * (m->inputs[0].numel + m->targets[0].numel)) * 8);
    double *in = inputs;
    for (int64_t k = 0; k < batch * m->inputs[0].numel; k++) *in++ = at(&m->inputs[0], 0)[k];
    for (int64_t k = 0; k < batch * m->targets[0].numel; k++) *in++ = at(&m->targets[0], 0)[k];
    static const struct {
        const char *name;
        int mode;
    } passes[] = {{"train", NNRT_TRAINING}, {"step", NNRT_TRAINING_STEP},
                  {"eval", NNRT_INFERENCE}};
    for (int p = 0; p < 3; p++) {
        in = inputs; /* the model may reuse the memory of its inputs: written before each call */
        for (int64_t k = 0; k < batch * m->inputs[0].numel; k++) at(&m->inputs[0], 0)[k] = *in++;
        for (int64_t k = 0; k < batch * m->targets[0].numel; k++) at(&m->targets[0], 0)[k] = *in++;
        ctx.training = passes[p].mode;
        if (passes[p].mode == NNRT_INFERENCE) {
            m->forward(&ctx);
            report(passes[p].name);
            for (int64_t k = 0, n = batch * m->inputs[0].numel; k < n; k++)
                at(&m->inputs[0], 0)[k] = inputs[k];
            for (int64_t k = 0, n = batch * m->targets[0].numel; k < n; k++)
                at(&m->targets[0], 0)[k] = inputs[batch * m->inputs[0].numel + k];
        }
        m->grad(&ctx);
        report(passes[p].name);
        gradients(passes[p].name);
        for (int i = 0; i < m->n_states; i++)
            print(passes[p].name, "state", m->states[i].name, fixed + m->states[i].offset,
                  m->states[i].numel);
    }
    return 0;
}
"""


def fail(message):
    print(f"FAIL batchnorm: {message}")
    sys.exit(1)


def build(nnc, src, cc, tmp):
    model = os.path.join(tmp, "norms.nn")
    with open(model, "w") as f:
        f.write(MODEL)
    with open(os.path.join(tmp, "driver.c"), "w") as f:
        f.write(DRIVER)
    subprocess.run([nnc, model, "--f64", "-c", "-o", os.path.join(tmp, "norms.o")], check=True)
    subprocess.run([cc, "-std=c11", "-O1", "-I", os.path.join(src, "runtime"),
                    os.path.join(tmp, "driver.c"), os.path.join(tmp, "norms.o"), "-lopenblas",
                    "-lmvec", "-lm", "-o", os.path.join(tmp, "driver")], check=True)
    return os.path.join(tmp, "driver")


def weights(rng):
    """Every param and state, in nnc's layout (dense's W is [in, out], torch's [out, in])."""
    def vec(n, lo=-1.0, hi=1.0):
        return [rng.uniform(lo, hi) for _ in range(n)]
    return {"z.W": vec(20), "z.b": vec(5), "h.gamma": vec(5, 0.5, 1.5), "h.beta": vec(5),
            "l.gamma": vec(5, 0.5, 1.5), "l.beta": vec(5), "o.W": vec(15), "o.b": vec(3),
            "h.running_mean": vec(5, -0.5, 0.5), "h.running_var": vec(5, 0.5, 2.0)}


def ours(driver, batch, x, y, w):
    order = ["z.W", "z.b", "h.gamma", "h.beta", "l.gamma", "l.beta", "o.W", "o.b",
             "h.running_mean", "h.running_var"]
    numbers = [batch] + [v for row in x for v in row] + [v for row in y for v in row]
    for name in order:
        numbers += w[name]
    proc = subprocess.run([driver], input=" ".join(repr(v) for v in numbers), text=True,
                          capture_output=True, check=True)
    got = {}
    for line in proc.stdout.splitlines():
        mode, what, name, *vals = line.split()
        got[(mode, what, name)] = [float(v) for v in vals]  # the grad pass's report wins
    return got


def theirs(torch, batch, x, y, w, training):
    """The same model in torch.nn; returns the loss per sample, outputs, gradients by nnc's
    names (in nnc's layout) and the running statistics after the pass."""
    t = torch.tensor
    lin1 = torch.nn.Linear(4, 5).double()
    bn = torch.nn.BatchNorm1d(5, momentum=0.1, eps=1e-5).double()
    ln = torch.nn.LayerNorm([5], eps=1e-5).double()
    lin2 = torch.nn.Linear(5, 3).double()
    with torch.no_grad():
        lin1.weight.copy_(t(w["z.W"], dtype=torch.float64).reshape(4, 5).T)
        lin1.bias.copy_(t(w["z.b"], dtype=torch.float64))
        bn.weight.copy_(t(w["h.gamma"], dtype=torch.float64))
        bn.bias.copy_(t(w["h.beta"], dtype=torch.float64))
        bn.running_mean.copy_(t(w["h.running_mean"], dtype=torch.float64))
        bn.running_var.copy_(t(w["h.running_var"], dtype=torch.float64))
        ln.weight.copy_(t(w["l.gamma"], dtype=torch.float64))
        ln.bias.copy_(t(w["l.beta"], dtype=torch.float64))
        lin2.weight.copy_(t(w["o.W"], dtype=torch.float64).reshape(5, 3).T)
        lin2.bias.copy_(t(w["o.b"], dtype=torch.float64))
    bn.train(training)
    xs, ys = t(x, dtype=torch.float64), t(y, dtype=torch.float64)
    o = lin2(ln(torch.tanh(bn(lin1(xs)))))
    per_sample = ((o - ys) ** 2).mean(dim=1)
    per_sample.mean().backward()
    grads = {"z.W": lin1.weight.grad.T.reshape(-1), "z.b": lin1.bias.grad,
             "h.gamma": bn.weight.grad, "h.beta": bn.bias.grad, "l.gamma": ln.weight.grad,
             "l.beta": ln.bias.grad, "o.W": lin2.weight.grad.T.reshape(-1), "o.b": lin2.bias.grad}
    return {"loss": per_sample.tolist(), "output": o.reshape(-1).tolist(),
            "grad": {k: v.tolist() for k, v in grads.items()},
            "state": {"h.running_mean": bn.running_mean.tolist(),
                      "h.running_var": bn.running_var.tolist()}}


def compare(what, got, want):
    if len(got) != len(want):
        fail(f"{what}: {len(got)} values, torch has {len(want)}")
    for i, (a, b) in enumerate(zip(got, want)):
        if abs(a - b) > TOLERANCE * max(1.0, abs(b)):
            fail(f"{what}[{i}] = {a!r}, torch says {b!r} (difference {abs(a - b):.3g})")


def main():
    nnc, src, cc = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        import torch
    except ImportError:
        print("skipped: torch cannot be imported (Debian's python3-torch)")
        return SKIP
    rng = random.Random(11)
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        driver = build(nnc, src, cc, tmp)
        for batch in (2, 7, 16):
            x = [[rng.gauss(0.5, 2.0) for _ in range(4)] for _ in range(batch)]
            y = [[rng.uniform(-1, 1) for _ in range(3)] for _ in range(batch)]
            w = weights(rng)
            got = ours(driver, batch, x, y, w)
            train = theirs(torch, batch, x, y, w, True)
            # The driver's eval passes come after its training step: the updated statistics.
            infer = theirs(torch, batch, x, y, dict(w, **train["state"]), False)
            for mode, want in (("train", train), ("eval", infer)):
                compare(f"B={batch} {mode} loss", got[(mode, "loss", "loss")], want["loss"])
                compare(f"B={batch} {mode} output", got[(mode, "output", "output")],
                        want["output"])
                checked += 2
            for name, g in train["grad"].items():
                compare(f"B={batch} train d cost/d {name}", got[("train", "grad", name)], g)
                checked += 1
            # Inference: nnc's backward pass is the training behaviour's (training(a, b)
            # passes g to a), so below the batch norm it is not eval's; from the batch
            # norm's own scale and shift on it is.
            for name in ("h.gamma", "h.beta", "l.gamma", "l.beta", "o.W", "o.b"):
                compare(f"B={batch} eval d cost/d {name}", got[("eval", "grad", name)],
                        infer["grad"][name])
                checked += 1
            for name, v in train["state"].items():
                compare(f"B={batch} {name} after a training step", got[("step", "state", name)],
                        v)
                compare(f"B={batch} {name} after a gradcheck pass", got[("train", "state", name)],
                        w[name])
                checked += 2
    print(f"ok batchnorm: {checked} comparisons with torch {torch.__version__} within "
          f"{TOLERANCE:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
