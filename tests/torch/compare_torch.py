#!/usr/bin/python3
"""nnc's convolution and pooling against PyTorch (Debian's python3-torch, CPU).

usage: compare_torch.py NNC SOURCE_DIR CASE     (CASE: values, modules, embedding)
Exits 77 (ctest's skip) when `import torch` fails: the test needs /usr/bin/python3 with
python3-torch, which .ci/setup.sh installs for the test command only.

values   a model of conv2d (stride 2 and padding 1; padding 2 and dilation 2; stride 1 and
         padding 1, twice, which runs the direct kernels: runtime/conv.h), max_pool2d
         and avg_pool2d (kernel 3, stride 1, padding 1), compiled with --f64 and given its
         weights with --init-weights, takes one plain SGD step of lr 1 on the whole batch.
         The weights it saves are those of the same step in torch, and its predictions
         torch's forward pass with them, to 1e-10 relative: the forward values and every
         gradient. (The predictions are compared as printed, to 9 digits.)
modules  examples/cnn_digits.nn trained for an epoch (f32): its safetensors loads into
         torch.nn.Conv2d and torch.nn.Linear modules with the documented layout (a conv
         weight [C_out, C_in, k, k] as it is; a dense W [n_in, n_out] transposed) and they
         predict what the compiled model predicts.
embedding
         take and stdlib's embedding against torch.nn.Embedding in f64: ids [5] and [2, 3]
         per sample from CSV columns, with the first and last of the 7 rows and ids repeated
         within a sample and across the batch; E is read by two takes (two scatter-adds
         summed), u.E by one (plain SGD updates it inside its scatter_add). One SGD step of
         lr 1 gives W - dW for every param, compared with torch's to 1e-12, and dW itself;
         P, read as sum(P * z), gets dP = the batch's mean of z: the forward values, to
         1e-12. Then three steps with momentum 0.9 and three of Adam, to 1e-12. The
         predictions are compared as printed.
linear   the recipe of docs/runtime.md, "Dense weights and PyTorch", taken from that page and
         run as it is: examples/digits.nn trained for an epoch (f32), its weights loaded
         into torch.nn.Linear modules predict what ./digits predict prints, and the
         modules' own (torch's initialisers) saved by the recipe make ./digits predict
         what torch does; a weight saved without its transpose is refused with the hint.
         (Without the safetensors package, load_file and save_file are this file's
         read_safetensors and write_safetensors, which write F32 from float32.)
recurrent
         stdlib's lstm and gru, each stacked two deep, against torch.nn.LSTM and
         torch.nn.GRU (num_layers = 2, batch_first) in f64 on random sequences [5, 3], the
         weights converted from torch's by the recipe docs/language.md gives (Wx =
         weight_ih_lkᵀ, Wh = weight_hh_lkᵀ; lstm's b = bias_ih_lk + bias_hh_lk, gru's b =
         bias_ih_lk and bh = bias_hh_lk). One SGD step of lr 1 gives W - dW: every weight's
         gradient, converted the same way, to 1e-10 (lstm's b gets the gradient torch gives
         each of its two biases). P, read as sum(P * z), gets dP = the batch's mean of the
         outputs z [5, 7] (all hidden states of both top layers): the forward values, to
         1e-10. The predictions are compared as printed.
"""
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("compare_torch: no torch under this python; skipped")
    sys.exit(77)

torch.set_num_threads(1)


class Failure(Exception):
    pass


def run(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise Failure(f"{' '.join(cmd)}: status {p.returncode}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        dtype = {"F64": torch.float64, "F32": torch.float32}[t["dtype"]]
        out[name] = torch.frombuffer(bytearray(body[a:b]), dtype=dtype).reshape(t["shape"])
    return out


def write_safetensors(path, tensors, dtype=torch.float64):
    """Every tensor as dtype (None: each in its own, float32 or float64)."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.contiguous() if dtype is None else t.contiguous().to(dtype)
        raw = t.numpy().tobytes()
        header[name] = {"dtype": {torch.float32: "F32", torch.float64: "F64"}[t.dtype],
                        "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def predictions(out):
    rows = [line.replace(",", " ").split() for line in out.strip().splitlines()]
    return torch.tensor([[float(v) for v in r] for r in rows], dtype=torch.float64)


def close(what, got, want, rel):
    err = ((got - want).abs() / want.abs().clamp(min=1)).max().item()
    if not err <= rel:
        raise Failure(f"{what}: off by {err:.3g} (relative), wanted <= {rel:g}\n"
                      f"got  {got.flatten()[:8].tolist()}\nwant {want.flatten()[:8].tolist()}")
    print(f"  {what}: max relative difference {err:.2e}")


VALUES_MODEL = """import "nn"

model tc {
    input  x[84]
    target y[5]
    param  w1[4, 2, 3, 2] = uniform(-1, 1)
    param  b1[4]          = uniform(-1, 1)
    param  w2[3, 4, 3, 3] = uniform(-1, 1)
    param  b2[3]          = uniform(-1, 1)
    param  V1[12, 5]      = uniform(-1, 1)
    param  V2[48, 5]      = uniform(-1, 1)
    param  w3[5, 3, 3, 2] = uniform(-1, 1)
    param  b3[5]          = uniform(-1, 1)
    param  w4[2, 5, 3, 3] = uniform(-1, 1)
    param  V3[40, 5]      = uniform(-1, 1)

    image    = reshape(x, 2, 7, 6)
    h1       = conv2d(image, w1, b1, stride = 2, padding = 1)
    h2       = conv2d(tanh(h1), w2, b2, padding = 2, dilation = 2)
    p1       = max_pool2d(h2, 2)
    p2       = avg_pool2d(h2, 3, stride = 1, padding = 1)
    h3       = conv2d(tanh(h2), w3, b3, padding = 1)
    h4       = conv2d(tanh(h3), w4, 0, padding = 1)
    output z = flatten(p1) @ V1 + flatten(p2) @ V2 + flatten(h4) @ V3
    loss     = mse(z, y)
}
"""


def torch_values_model(p, x):
    image = x.reshape(-1, 2, 7, 6)
    h1 = F.conv2d(image, p["w1"], p["b1"], stride=2, padding=1)
    h2 = F.conv2d(torch.tanh(h1), p["w2"], p["b2"], padding=2, dilation=2)
    p1 = F.max_pool2d(h2, 2)
    p2 = F.avg_pool2d(h2, 3, stride=1, padding=1)
    h3 = F.conv2d(torch.tanh(h2), p["w3"], p["b3"], padding=1)
    h4 = F.conv2d(torch.tanh(h3), p["w4"], None, padding=1)
    return p1.flatten(1) @ p["V1"] + p2.flatten(1) @ p["V2"] + h4.flatten(1) @ p["V3"]


def case_values(nnc, src, tmp):
    n = 16
    g = torch.Generator().manual_seed(3)
    shapes = {"w1": (4, 2, 3, 2), "b1": (4,), "w2": (3, 4, 3, 3), "b2": (3,), "V1": (12, 5),
              "V2": (48, 5), "w3": (5, 3, 3, 2), "b3": (5,), "w4": (2, 5, 3, 3), "V3": (40, 5)}
    params = {k: torch.rand(s, generator=g, dtype=torch.float64) * 2 - 1 for k, s in shapes.items()}
    # The stride-1 branch starts small, as a trained layer would: at full size its gradients
    # make the lr-1 momentum steps below grow the weights to ~100, where rounding differences
    # between any two correct implementations reach 1e-10.
    params["V3"] *= 0.1
    x = torch.rand(n, 84, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.rand(n, 5, generator=g, dtype=torch.float64)
    with open(os.path.join(tmp, "tc.nn"), "w") as f:
        f.write(VALUES_MODEL)
    with open(os.path.join(tmp, "data.csv"), "w") as f:
        for i in range(n):
            f.write(",".join(repr(v) for v in x[i].tolist() + y[i].tolist()) + "\n")
    with open(os.path.join(tmp, "x.csv"), "w") as f:
        for i in range(n):
            f.write(",".join(repr(v) for v in x[i].tolist()) + "\n")
    write_safetensors(os.path.join(tmp, "init.safetensors"), params)
    run([nnc, "tc.nn", "--f64", "-o", "tc"], tmp)
    train = ["./tc", "train", "--data", "data.csv", "--columns", "x=0..83,y=84..88",
             "--init-weights", "init.safetensors", "--optimizer", "sgd", "--batch", str(n),
             "--shuffle", "off", "--validation", "0"]
    run(train + ["--lr", "1", "--momentum", "0", "--steps", "1", "--epochs", "1",
                 "--save", "after.safetensors"], tmp)
    # three steps with momentum: the conv weights' velocity path of the fused update
    run(train + ["--lr", "0.1", "--momentum", "0.9", "--steps", "3", "--epochs", "3",
                 "--save", "momentum.safetensors"], tmp)
    saved = read_safetensors(os.path.join(tmp, "after.safetensors"))
    got_pred = predictions(run(["./tc", "predict", "--data", "x.csv", "--weights",
                                "after.safetensors"], tmp))
    tp = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    loss = ((torch_values_model(tp, x) - y) ** 2).mean(1).mean()
    loss.backward()
    with torch.no_grad():
        after = {k: v - v.grad for k, v in tp.items()}
        want_pred = torch_values_model(after, x)
    for k in shapes:
        close(f"{k} after one step", saved[k], after[k], 1e-10)
    tp = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    sgd = torch.optim.SGD(tp.values(), lr=0.1, momentum=0.9)
    for _ in range(3):
        sgd.zero_grad()
        ((torch_values_model(tp, x) - y) ** 2).mean(1).mean().backward()
        sgd.step()
    with_momentum = read_safetensors(os.path.join(tmp, "momentum.safetensors"))
    for k in shapes:
        close(f"{k} after three steps with momentum 0.9", with_momentum[k], tp[k].detach(), 1e-10)
    # predict prints 9 significant digits: the weights above carry the 1e-10 comparison
    close("predictions (as printed)", got_pred, want_pred, 1e-8)


def case_modules(nnc, src, tmp):
    run([nnc, os.path.join(src, "examples", "cnn_digits.nn"), "-o", "cnn"], tmp)
    run(["./cnn", "train", "--epochs", "1", "--save", "cnn.safetensors"], tmp)
    w = read_safetensors(os.path.join(tmp, "cnn.safetensors"))
    rows = []
    with open(os.path.join(src, "examples", "digits.csv")) as f:
        for i, line in enumerate(f):
            if i >= 40:
                break
            rows.append([float(v) for v in line.split(",")[:64]])
    with open(os.path.join(tmp, "x.csv"), "w") as f:
        for r in rows:
            f.write(",".join(str(v) for v in r) + "\n")
    got = predictions(run(["./cnn", "predict", "--data", "x.csv", "--weights",
                           "cnn.safetensors"], tmp))
    conv1, conv2 = torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.Conv2d(16, 32, 3, padding=1)
    dense = torch.nn.Linear(128, 10)
    with torch.no_grad():
        conv1.weight.copy_(w["h1.W"]), conv1.bias.copy_(w["h1.b"])
        conv2.weight.copy_(w["h2.W"]), conv2.bias.copy_(w["h2.b"])
        dense.weight.copy_(w["z.W"].T), dense.bias.copy_(w["z.b"])
        x = torch.tensor(rows).reshape(-1, 1, 8, 8) / 16
        h = F.max_pool2d(F.relu(conv1(x)), 2)
        h = F.max_pool2d(F.relu(conv2(h)), 2)
        want = dense(h.flatten(1)).to(torch.float64)
    close("cnn_digits' predictions through torch.nn modules", got, want, 1e-4)


EMBEDDING_MODEL = """import "nn"

model emb {
    input  ids[5]
    input  grid[2, 3]
    target c[5, 3]
    param  E[7, 3]
    param  P[5, 3]

    output z = take(E, ids)
    g        = take(E, grid)
    u        = embedding(ids, 7, 3)
    loss     = sum(c * z ^ 3) + sum(P * z) + sum(tanh(g) ^ 2) + sum(c * u ^ 2)
}
"""


def torch_embedding_cost(tables, P, ids, grid, c):
    """E's gradient is the sum of two scatter-adds (z and g), u.E's one scatter-add alone:
    plain SGD updates u.E inside it."""
    z, g, u = tables["E"](ids), tables["E"](grid), tables["u.E"](ids)
    per_sample = ((c * z ** 3).sum((1, 2)) + (P * z).sum((1, 2)) +
                  (torch.tanh(g) ** 2).sum((1, 2, 3)) + (c * u ** 2).sum((1, 2)))
    return per_sample.mean(), z


def case_embedding(nnc, src, tmp):
    n, vocab = 16, 7
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, vocab, (n, 5), generator=g)
    ids[0] = torch.tensor([0, 6, 0, 6, 3])  # the first and last rows, each twice
    ids[ids == 2] = 3  # row 2 is named by grid alone: u.E's row 2 gets no gradient
    grid = torch.randint(0, vocab, (n, 2, 3), generator=g)
    grid[1] = torch.tensor([[6, 6, 6], [0, 2, 6]])
    c = torch.rand(n, 5, 3, generator=g, dtype=torch.float64) * 2 - 1
    params = {"E": torch.randn(vocab, 3, generator=g, dtype=torch.float64),
              "P": torch.rand(5, 3, generator=g, dtype=torch.float64) * 2 - 1,
              "u.E": torch.randn(vocab, 3, generator=g, dtype=torch.float64)}
    with open(os.path.join(tmp, "emb.nn"), "w") as f:
        f.write(EMBEDDING_MODEL)
    with open(os.path.join(tmp, "data.csv"), "w") as f:
        for i in range(n):
            row = ids[i].tolist() + grid[i].flatten().tolist() + c[i].flatten().tolist()
            f.write(",".join(repr(v) for v in row) + "\n")
    with open(os.path.join(tmp, "x.csv"), "w") as f:
        for i in range(n):
            f.write(",".join(str(v) for v in ids[i].tolist() + grid[i].flatten().tolist()) + "\n")
    write_safetensors(os.path.join(tmp, "init.safetensors"), params)
    run([nnc, "emb.nn", "--f64", "-o", "emb"], tmp)
    if "updated inside its scatter_add" not in run([nnc, "emb.nn", "--emit=plan"], tmp):
        raise Failure("u.E is not updated inside its scatter_add")
    train = ["./emb", "train", "--data", "data.csv", "--init-weights", "init.safetensors",
             "--batch", str(n), "--shuffle", "off", "--validation", "0"]
    run(train + ["--optimizer", "sgd", "--lr", "1", "--momentum", "0", "--steps", "1",
                 "--epochs", "1", "--save", "sgd.safetensors"], tmp)
    run(train + ["--optimizer", "sgd", "--lr", "0.1", "--momentum", "0.9", "--steps", "3",
                 "--epochs", "3", "--save", "momentum.safetensors"], tmp)
    run(train + ["--optimizer", "adam", "--lr", "0.01", "--steps", "3", "--epochs", "3",
                 "--save", "adam.safetensors"], tmp)

    def torch_model():
        tables = {}
        for name in ("E", "u.E"):
            tables[name] = torch.nn.Embedding(vocab, 3, dtype=torch.float64)
            with torch.no_grad():
                tables[name].weight.copy_(params[name])
        return tables, params["P"].clone().requires_grad_(True)

    tables, P = torch_model()
    torch_embedding_cost(tables, P, ids, grid, c)[0].backward()
    saved = read_safetensors(os.path.join(tmp, "sgd.safetensors"))
    weights = {"E": tables["E"].weight, "u.E": tables["u.E"].weight, "P": P}
    for name, w in weights.items():
        close(f"{name} - d{name} after one step of lr 1", saved[name], w.detach() - w.grad, 1e-12)
        close(f"d{name}", params[name] - saved[name], w.grad, 1e-12)
    if tables["u.E"].weight.grad[2].abs().max() != 0 or (saved["u.E"][2] != params["u.E"][2]).any():
        raise Failure("row 2 of u.E, which no id names, moved")
    with torch.no_grad():
        after = {k: torch.nn.Embedding.from_pretrained(saved[k]) for k in ("E", "u.E")}
        want_z = torch_embedding_cost(after, saved["P"], ids, grid, c)[1]
    got = predictions(run(["./emb", "predict", "--data", "x.csv", "--weights",
                           "sgd.safetensors"], tmp))
    close("predictions z = take(E, ids) (as printed)", got, want_z.reshape(n, -1), 1e-8)
    for name, make in (("momentum", lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)),
                       ("adam", lambda ps: torch.optim.Adam(ps, lr=0.01))):
        tables, P = torch_model()
        opt = make([tables["E"].weight, tables["u.E"].weight, P])
        for _ in range(3):
            opt.zero_grad()
            torch_embedding_cost(tables, P, ids, grid, c)[0].backward()
            opt.step()
        got = read_safetensors(os.path.join(tmp, f"{name}.safetensors"))
        for k, w in (("E", tables["E"].weight), ("u.E", tables["u.E"].weight), ("P", P)):
            close(f"{k} after three steps of {name}", got[k], w.detach(), 1e-12)


RECURRENT_MODEL = """import "nn"

model rec {
    input  x[5, 3]
    target y[5, 7]
    param  P[5, 7]

    h1       = lstm(x, 4)
    h2       = lstm(h1, 4)
    g1       = gru(x, 3)
    g2       = gru(g1, 3)
    output z = concat(h2, g2, axis = 1)
    loss     = mean((z - y) ^ 2) + sum(P * z)
}
"""


def nnc_recurrent_weights(lstm, gru, grads=False):
    """The documented recipe, from torch.nn.LSTM / torch.nn.GRU to stdlib's lstm / gru, one
    nnc layer per torch layer; with grads, the same for the gradients (lstm's b, the sum of
    two biases, gets the gradient of either)."""
    def get(module, name):
        t = getattr(module, name)
        return t.grad if grads else t.detach()

    out = {}
    for layer, (h, g) in enumerate((("h1", "g1"), ("h2", "g2"))):
        for nnc_name, module in ((h, lstm), (g, gru)):
            out[nnc_name + ".Wx"] = get(module, f"weight_ih_l{layer}").T
            out[nnc_name + ".Wh"] = get(module, f"weight_hh_l{layer}").T
        bih, bhh = get(lstm, f"bias_ih_l{layer}"), get(lstm, f"bias_hh_l{layer}")
        out[h + ".b"] = bih if grads else bih + bhh
        out[g + ".b"] = get(gru, f"bias_ih_l{layer}")
        out[g + ".bh"] = get(gru, f"bias_hh_l{layer}")
    return out


def recurrent(nnc, tmp, f64):
    """One SGD step of a 2-layer LSTM and GRU against torch's gradients, and predictions; in
    f32 (f64 False) from the same weights and data rounded to floats, where the steps'
    products read their packed weight (docs/codegen.md, "Products with a packed weight")."""
    n, T = 16, 5
    torch.manual_seed(7)
    lstm = torch.nn.LSTM(3, 4, num_layers=2, batch_first=True, dtype=torch.float64)
    gru = torch.nn.GRU(3, 3, num_layers=2, batch_first=True, dtype=torch.float64)
    with torch.no_grad():  # larger than torch's +-1/sqrt(hidden): the gates saturate more
        for w in list(lstm.parameters()) + list(gru.parameters()):
            w.uniform_(-1, 1)
            if not f64:
                w.copy_(w.float().double())
    g = torch.Generator().manual_seed(8)
    x = torch.rand(n, T, 3, generator=g, dtype=torch.float64) * 4 - 2
    y = torch.rand(n, T, 7, generator=g, dtype=torch.float64) * 2 - 1
    P = (torch.rand(T, 7, generator=g, dtype=torch.float64) * 2 - 1)
    if not f64:
        x, y, P = x.float().double(), y.float().double(), P.float().double()
    P.requires_grad_(True)
    params = nnc_recurrent_weights(lstm, gru)
    params["P"] = P.detach().clone()
    with open(os.path.join(tmp, "rec.nn"), "w") as f:
        f.write(RECURRENT_MODEL)
    with open(os.path.join(tmp, "data.csv"), "w") as f:
        for i in range(n):
            f.write(",".join(repr(v) for v in x[i].flatten().tolist() + y[i].flatten().tolist())
                    + "\n")
    with open(os.path.join(tmp, "x.csv"), "w") as f:
        for i in range(n):
            f.write(",".join(repr(v) for v in x[i].flatten().tolist()) + "\n")
    write_safetensors(os.path.join(tmp, "init.safetensors"), params,
                      torch.float64 if f64 else torch.float32)
    run([nnc, "rec.nn", "-o", "rec"] + (["--f64"] if f64 else []), tmp)
    run(["./rec", "train", "--data", "data.csv", "--init-weights", "init.safetensors",
         "--batch", str(n), "--shuffle", "off", "--validation", "0", "--optimizer", "sgd",
         "--lr", "1", "--momentum", "0", "--steps", "1", "--epochs", "1",
         "--save", "sgd.safetensors"], tmp)
    saved = read_safetensors(os.path.join(tmp, "sgd.safetensors"))
    got_pred = predictions(run(["./rec", "predict", "--data", "x.csv", "--weights",
                                "init.safetensors"], tmp))

    z = torch.cat((lstm(x)[0], gru(x)[0]), dim=2)
    loss = (((z - y) ** 2).mean((1, 2)) + (P * z).sum((1, 2))).mean()
    loss.backward()
    for layer in (0, 1):  # the same sum, rounded in another order
        close(f"torch's two LSTM biases' gradients of layer {layer}",
              lstm.get_parameter(f"bias_hh_l{layer}").grad,
              lstm.get_parameter(f"bias_ih_l{layer}").grad, 1e-14)
    want = nnc_recurrent_weights(lstm, gru, grads=True)
    # f32: each gradient is a difference of two floats near 1 (lr 1), good to about 1e-7
    tolerance, printed = (1e-10, 1e-8) if f64 else (1e-6, 1e-6)
    for name, grad in want.items():
        close(f"d{name}", params[name].double() - saved[name].double(), grad, tolerance)
    close("dP = the batch's mean of the forward values z",
          params["P"].double() - saved["P"].double(), P.grad, tolerance)
    close("predictions z (as printed)", got_pred, z.detach().reshape(n, -1), printed)


def case_recurrent(nnc, src, tmp):
    recurrent(nnc, tmp, True)


def case_recurrent_f32(nnc, src, tmp):
    recurrent(nnc, tmp, False)
    # every step's product with a recurrent weight reads it packed, forward and backward:
    # 4 steps after the first of each of the 4 layers, twice
    plan = run([nnc, "rec.nn", "--emit=plan"], tmp)
    packed = re.findall(r"^ +#\d+ +matmul .*, reads (\S+) packed$", plan, re.M)
    weights = sorted(set(packed))
    if len(weights) != 4 or any(packed.count(w) != 2 * (5 - 1) for w in weights):
        raise Failure(f"the products that read a packed weight: {packed}")


def recipe(src):
    """The Python block of docs/runtime.md's section "Dense weights and PyTorch"."""
    with open(os.path.join(src, "docs", "runtime.md")) as f:
        page = f.read()
    section = page[page.index("### Dense weights and PyTorch"):]
    start = section.index("```python\n") + len("```python\n")
    return section[start:section.index("```", start)]


def save_as_written(tensors, path):
    """safetensors.torch.save_file's stand-in: each tensor in its own dtype."""
    write_safetensors(path, tensors, dtype=None)


def case_linear(nnc, src, tmp):
    run([nnc, os.path.join(src, "examples", "digits.nn"), "-o", "digits"], tmp)
    run(["./digits", "train", "--epochs", "1", "--quiet"], tmp)
    code = recipe(src)
    namespace = {}
    try:
        import safetensors.torch  # noqa: F401
    except ImportError:
        code = code.replace("from safetensors.torch import load_file, save_file\n", "")
        namespace.update(load_file=read_safetensors, save_file=save_as_written)
    torch.manual_seed(3)
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        exec(compile(code, "docs/runtime.md", "exec"), namespace)
    finally:
        os.chdir(cwd)
    net, h, z = namespace["net"], namespace["h"], namespace["z"]
    with open(os.path.join(src, "examples", "digits.csv")) as f:
        rows = [[float(v) for v in line.split(",")] for line in f.read().split()[:200]]
    x = torch.tensor([r[:64] for r in rows], dtype=torch.float32)
    with open(os.path.join(tmp, "x.csv"), "w") as f:
        f.write("".join(",".join(f"{v:g}" for v in r[:64]) + "\n" for r in rows))
    with torch.no_grad():
        want = net(x / 16).double()
    got = predictions(run(["./digits", "predict", "--data", "x.csv"], tmp))
    close("nnc's weights in torch.nn.Linear: torch's scores against ./digits predict", got, want,
          1e-5)
    if (want.argmax(1) != got.argmax(1)).any():
        raise Failure("nnc's weights in torch classify rows otherwise")
    # The other way: torch's modules, reset to torch's own initialisers, saved by the recipe.
    for layer in (h, z):
        layer.reset_parameters()
    namespace["save_file"]({**namespace["linear_to_nnc"](h, "h"),
                            **namespace["linear_to_nnc"](z, "z")},
                           os.path.join(tmp, "from_torch.safetensors"))
    with torch.no_grad():
        want = net(x / 16).double()
    got = predictions(run(["./digits", "predict", "--data", "x.csv", "--weights",
                           "from_torch.safetensors"], tmp))
    close("torch's weights in nnc: ./digits predict against torch's scores", got, want, 1e-5)
    # Forgetting the transpose: refused, with the hint (z.W is [64, 10], not square).
    wrong = namespace["linear_to_nnc"](z, "z")
    wrong["z.W"] = z.weight.detach().clone()
    namespace["save_file"]({**namespace["linear_to_nnc"](h, "h"), **wrong},
                           os.path.join(tmp, "wrong.safetensors"))
    p = subprocess.run(["./digits", "predict", "--data", "x.csv", "--weights", "wrong.safetensors"],
                       cwd=tmp, capture_output=True, text=True)
    if p.returncode != 1 or "its transpose: nnc's dense W is [in, out]" not in p.stderr:
        raise Failure(f"a weight saved without its transpose: status {p.returncode}, {p.stderr}")
    print("  a weight saved without its transpose: refused with the hint")


def main():
    nnc, src, case = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            globals()["case_" + case](nnc, src, tmp)
        except Failure as e:
            print(f"FAIL: {case}: {e}")
            return 1
    print(f"compare_torch {case}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
