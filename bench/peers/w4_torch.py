#!/usr/bin/python3
"""W4 in PyTorch eager, to run side by side with build/bench/bench_w4 (not a test).

LeNet-5 as bench/w4.nn writes it (conv 5x5x6 padding 2, relu, 2x2 max pooling, conv 5x5x16,
relu, pooling, dense 120, 84, 10 with relu, softmax cross-entropy), batch 64, plain SGD,
f32, one thread. Prints samples/s of a training step on a batch already in memory (the
median of --repeats timed runs), as bench_w4's headline figure does.

usage: /usr/bin/python3 bench/peers/w4_torch.py [--data MNIST_FOLDER] [--repeats 5]
       [--seconds 0.3] [--epochs 0]
Its Linear layers go to the system OpenBLAS: on a CPU OpenBLAS does not know (it prints
"Core: Prescott" with OPENBLAS_VERBOSE=2), give it the kernels nnc's executables choose,
OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2), for a fair comparison.
With --epochs N it also trains N epochs on the first 8000 training images (8000/2000 split:
the next 2000 are the test set) and prints the held-out accuracy.
"""
import gzip
import os
import struct

import peer_timing  # first: one thread for OpenBLAS and OpenMP
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.c2 = nn.Conv2d(6, 16, 5)
        self.d1 = nn.Linear(400, 120)
        self.d2 = nn.Linear(120, 84)
        self.d3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = F.relu(self.d1(x.flatten(1)))
        x = F.relu(self.d2(x))
        return self.d3(x)


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def load(folder):
    if folder:
        x = read_idx(os.path.join(folder, "train-images-idx3-ubyte")).float() / 255
        y = read_idx(os.path.join(folder, "train-labels-idx1-ubyte")).long()
        return x[:10000].reshape(-1, 1, 28, 28), y[:10000]
    g = torch.Generator().manual_seed(1)
    return torch.rand(10000, 1, 28, 28, generator=g), torch.randint(0, 10, (10000,), generator=g)


def main():
    ap = peer_timing.options(lr=0.05)
    ap.add_argument("--data")
    ap.add_argument("--epochs", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(1)
    x, y = load(a.data)
    model = LeNet5()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    xb, yb = x[:64].contiguous(), y[:64].contiguous()

    def step(xs, ys):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xs), ys).backward()
        opt.step()

    k, runs = peer_timing.time_step(lambda: step(xb, yb), 64, a.repeats, a.seconds, warmup=5)
    peer_timing.report("W4 LeNet-5 b64", "samples", k, runs)
    if a.epochs:
        model = LeNet5()
        opt = torch.optim.SGD(model.parameters(), lr=a.lr)
        for _ in range(a.epochs):
            perm = torch.randperm(8000)
            for i in range(0, 8000 - 63, 64):
                idx = perm[i:i + 64]
                step(x[idx], y[idx])
        with torch.no_grad():
            acc = (model(x[8000:10000]).argmax(1) == y[8000:10000]).float().mean().item()
        print(f"  accuracy after {a.epochs} epochs on 8000 images: {acc:.4f} on the next 2000")


if __name__ == "__main__":
    main()
