#!/usr/bin/python3
"""W5 in PyTorch eager, to run side by side with build/bench/bench_w5 (not a test).

An LSTM read many-to-one, as bench/w5.nn writes it: sequences of 50 steps of 32 values,
torch.nn.LSTM(32, 128) (one layer, h_0 = c_0 = 0), a dense layer 128 -> 10 on the last
hidden state, softmax cross-entropy; batch 32, plain SGD, f32, one thread. Prints
sequences/s of a training step on a batch already in memory (the median of --repeats timed
runs), as bench_w5's headline figure does. The data are random: the time of a step does
not depend on them.

usage: /usr/bin/python3 bench/peers/w5_torch.py [--repeats 5] [--seconds 0.3]
The LSTM runs in PyTorch's own kernels and its matrix products in the system OpenBLAS: run
it also with OPENBLAS_CORETYPE=SkylakeX (see bench/README.md, "OpenBLAS's kernel matters").
"""
import peer_timing  # first: one thread for OpenBLAS and OpenMP
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

T, D, N, CLASSES, BATCH = 50, 32, 128, 10, 32


class ManyToOne(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(D, N, batch_first=True)
        self.head = nn.Linear(N, CLASSES)

    def forward(self, x):
        hs, _ = self.lstm(x)
        return self.head(hs[:, -1])


def main():
    a = peer_timing.options(lr=0.1).parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(1)
    model = ManyToOne()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    xb = torch.rand(BATCH, T, D)
    yb = torch.randint(0, CLASSES, (BATCH,))

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        opt.step()

    k, runs = peer_timing.time_step(step, BATCH, a.repeats, a.seconds)
    peer_timing.report(f"W5 lstm{T}x{D}-{N}-{CLASSES} b{BATCH}", "samples", k, runs)


if __name__ == "__main__":
    main()
