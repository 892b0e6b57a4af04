#!/usr/bin/env python3
"""make_data.py: writes the small CSV data sets of the lessons in examples/lessons/.

    python3 examples/lessons/make_data.py           # (re)write the CSVs next to this script
    python3 examples/lessons/make_data.py --check   # exit 1 if a shipped CSV differs

Python 3 standard library only. Every set is drawn from its own random.Random(seed) with a
fixed seed, and normal variates come from the Box-Muller transform written out below (not
random.gauss), so the files are the same, byte for byte, on every Python 3. The tests
import the constants below (M_TRUE, the cloud centres) instead of repeating them.

| file          | rows | columns           | what                                               |
| ------------- | ---- | ----------------- | -------------------------------------------------- |
| and.csv       | 4    | x1,x2,y           | the truth table of AND                             |
| or.csv        | 4    | x1,x2,y           | the truth table of OR                              |
| xor.csv       | 4    | x1,x2,y           | the truth table of XOR                             |
| line.csv      | 50   | x,y               | y = M_TRUE * x + normal noise (std NOISE)          |
| qwerties.csv  | 200  | x1,x2,label       | two Gaussian clouds in 2D, labels 0 and 1          |
| clouds3.csv   | 300  | x1,x2,label       | three Gaussian clouds in 2D, labels 0, 1, 2        |
| memory.csv    | 300  | x0..x39,first     | sequences of 40 random -1/1; first: 1 if x0 is 1   |
| words.csv     | 2000 | w0..w5,liked      | 6 word ids of WORDS_VOCAB; liked: their tones' sum |
| few.csv       | 40   | x1,x2,inside      | points in a square, inside a circle, some flipped  |
| many.csv      | 400  | x1,x2,inside      | more of the same: few.csv's held-out rows          |
"""
import math
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# line.csv: the slope the regression lesson should recover.
M_TRUE = 2.5
NOISE = 0.5
LINE_N = 50
LINE_SEED = 6

# qwerties.csv: two clouds of QWERTIES_PER points each, standard deviation CLOUD_STD.
QWERTIES_CENTRES = [(-1.5, -1.0), (1.5, 1.0)]
QWERTIES_PER = 100
QWERTIES_SEED = 7

# clouds3.csv: three clouds of CLOUDS3_PER points each.
CLOUDS3_CENTRES = [(-2.0, -1.0), (2.0, -1.0), (0.0, 2.5)]
CLOUDS3_PER = 100
CLOUDS3_SEED = 8

CLOUD_STD = 0.8

# memory.csv: MEMORY_N sequences of MEMORY_T values, each -1 or 1 with equal odds; the label
# says whether the first was 1, so a recurrent net must carry it to the end of the sequence.
MEMORY_T = 40
MEMORY_N = 300
MEMORY_SEED = 10

# words.csv: "reviews" of WORDS_PER word ids drawn from WORDS_VOCAB words, each word with a
# hidden tone, +1, -1 or 0 (a third each); liked is 1 when the tones of a review add up to more
# than 0. Reviews whose tones add up to 0 are drawn again. The HOGWILD! lesson: a step on one
# review changes the weights of its 6 words only, of 500.
WORDS_VOCAB = 500
WORDS_PER = 6
WORDS_N = 2000
WORDS_SEED = 11

# few.csv and many.csv: points uniform in [-FEW_HALF, FEW_HALF]^2, inside = 1 within
# FEW_RADIUS of the centre, and each label flipped with probability FEW_FLIP. A big net can
# learn few.csv's 40 points by heart, flips and all; many.csv's 400 show what it got wrong.
FEW_HALF = 2.0
FEW_RADIUS = 1.6
FEW_FLIP = 0.1
FEW_N = 40
MANY_N = 400
FEW_SEED = 12


def normal(rng):
    """One standard normal variate (Box-Muller; 1 - random() is never 0)."""
    u1, u2 = 1.0 - rng.random(), rng.random()
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def truth_table(op):
    return "x1,x2,y\n" + "".join(f"{a},{b},{op(a, b)}\n" for a in (0, 1) for b in (0, 1))


def line():
    rng = random.Random(LINE_SEED)
    rows = ["x,y"]
    for _ in range(LINE_N):
        x = rng.uniform(-2.0, 2.0)
        y = M_TRUE * x + NOISE * normal(rng)
        rows.append(f"{x:.4f},{y:.4f}")
    return "\n".join(rows) + "\n"


def clouds(centres, per, seed):
    """Points of every cloud, interleaved (cloud 0, 1, ..., 0, 1, ...), each with its label."""
    rng = random.Random(seed)
    rows = ["x1,x2,label"]
    for _ in range(per):
        for label, (cx, cy) in enumerate(centres):
            x1 = cx + CLOUD_STD * normal(rng)
            x2 = cy + CLOUD_STD * normal(rng)
            rows.append(f"{x1:.4f},{x2:.4f},{label}")
    return "\n".join(rows) + "\n"


def memory():
    rng = random.Random(MEMORY_SEED)
    rows = [",".join(f"x{t}" for t in range(MEMORY_T)) + ",first"]
    for _ in range(MEMORY_N):
        xs = [rng.choice((-1, 1)) for _ in range(MEMORY_T)]
        rows.append(",".join(str(v) for v in xs) + f",{(xs[0] + 1) // 2}")
    return "\n".join(rows) + "\n"


def word_tones(rng):
    """Each word's hidden tone, the first draws of words.csv's generator."""
    return [rng.choice((-1, 0, 1)) for _ in range(WORDS_VOCAB)]


def words():
    rng = random.Random(WORDS_SEED)
    tone = word_tones(rng)
    rows = [",".join(f"w{i}" for i in range(WORDS_PER)) + ",liked"]
    while len(rows) <= WORDS_N:
        ids = [rng.randrange(WORDS_VOCAB) for _ in range(WORDS_PER)]
        total = sum(tone[i] for i in ids)
        if total != 0:
            rows.append(",".join(str(i) for i in ids) + f",{int(total > 0)}")
    return "\n".join(rows) + "\n"


def circle(n, seed):
    rng = random.Random(seed)
    rows = ["x1,x2,inside"]
    for _ in range(n):
        x1, x2 = rng.uniform(-FEW_HALF, FEW_HALF), rng.uniform(-FEW_HALF, FEW_HALF)
        inside = int(x1 * x1 + x2 * x2 < FEW_RADIUS * FEW_RADIUS)
        if rng.random() < FEW_FLIP:
            inside = 1 - inside
        rows.append(f"{x1:.4f},{x2:.4f},{inside}")
    return "\n".join(rows) + "\n"


def files():
    return {
        "and.csv": truth_table(lambda a, b: a & b),
        "or.csv": truth_table(lambda a, b: a | b),
        "xor.csv": truth_table(lambda a, b: a ^ b),
        "line.csv": line(),
        "qwerties.csv": clouds(QWERTIES_CENTRES, QWERTIES_PER, QWERTIES_SEED),
        "clouds3.csv": clouds(CLOUDS3_CENTRES, CLOUDS3_PER, CLOUDS3_SEED),
        "memory.csv": memory(),
        "words.csv": words(),
        "few.csv": circle(FEW_N, FEW_SEED),
        "many.csv": circle(MANY_N, FEW_SEED + 1),
    }


def main(argv):
    check = argv[1:] == ["--check"]
    if argv[1:] and not check:
        print(f"usage: {argv[0]} [--check]", file=sys.stderr)
        return 2
    stale = []
    for name, text in files().items():
        path = os.path.join(HERE, name)
        if check:
            try:
                with open(path, newline="") as f:
                    if f.read() != text:
                        stale.append(name)
            except FileNotFoundError:
                stale.append(name)
        else:
            with open(path, "w", newline="") as f:
                f.write(text)
    if stale:
        print("differ from what make_data.py writes: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
