#!/usr/bin/python3
"""W6 in PyTorch eager, to run side by side with build/bench/bench_w6 and bench_w6g (not a
test).

A character LSTM (--cell lstm) or GRU (--cell gru), as bench/w6.nn and w6g.nn write it:
windows of 64 token ids of a vocabulary of 65, one-hot, torch.nn.LSTM(65, 256) or
torch.nn.GRU(65, 256) (one layer, zero start state), a dense layer 256 -> 65 at every step,
softmax cross-entropy summed over the 64 steps and averaged over the batch (as nnc's loss
is); batch 32, plain SGD, f32, one thread. Prints tokens/s (sequences/s x 64) of a training
step on a batch already in memory (the median of --repeats timed runs), as bench_w6's
headline figure does. The tokens are random: the time of a step does not depend on them.

usage: /usr/bin/python3 bench/peers/w6_torch.py [--cell lstm|gru] [--repeats 5]
       [--seconds 0.3]
Run it also with OPENBLAS_CORETYPE=SkylakeX (see bench/README.md, "OpenBLAS's kernel
matters").
"""
import peer_timing  # first: one thread for OpenBLAS and OpenMP
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

T, VOCAB, N, BATCH = 64, 65, 256, 32


class CharModel(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(VOCAB, N, batch_first=True)
        self.head = nn.Linear(N, VOCAB)

    def forward(self, ids):
        hs, _ = self.rnn(F.one_hot(ids, VOCAB).float())
        return self.head(hs)


def main():
    ap = peer_timing.options(lr=0.05)
    ap.add_argument("--cell", choices=("lstm", "gru"), default="lstm")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(1)
    model = CharModel(a.cell)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    xb = torch.randint(0, VOCAB, (BATCH, T))
    yb = torch.randint(0, VOCAB, (BATCH, T))

    def step():
        opt.zero_grad(set_to_none=True)
        z = model(xb)
        loss = F.cross_entropy(z.reshape(-1, VOCAB), yb.reshape(-1), reduction="sum") / BATCH
        loss.backward()
        opt.step()

    k, runs = peer_timing.time_step(step, BATCH * T, a.repeats, a.seconds)
    name = "W6" if a.cell == "lstm" else "W6G"
    peer_timing.report(f"{name} {a.cell}{T}x{VOCAB}-{N}-{VOCAB} b{BATCH}", "tokens", k, runs)


if __name__ == "__main__":
    main()
