#!/usr/bin/env python3
"""Writes the data of the sequence examples, seeded, so that every run writes the same bytes:
adding.csv and adding_test.csv (lstm_adding.nn, adding_mlp.nn), series.csv and
series_test.csv (gru_series.nn). Each *_test.csv holds rows of the same kind, drawn with
another seed, which the examples hold out (`validation_data`) and score after training.

usage: python3 examples/sequences.py [FOLDER]     (default: the folder of this script)

adding.csv, the adding problem (Hochreiter and Schmidhuber, 1997) with T = 50: 3200 rows of
101 numbers (adding_test.csv: 1000 more). A row is 50 steps of two numbers each, a value
uniform in [0, 1] and a marker (0 or 1), in the order value_0, marker_0, value_1, marker_1,
..., so that it reads as x[50, 2]; exactly two steps are marked, one in each half of the
sequence; the last column is the sum of the two marked values, the target. Predicting the
mean, 1, scores an MSE of 1/6 (the variance of a sum of two uniform numbers).

series.csv, a noisy periodic series cut into windows: 2400 rows of 21 numbers (series_test.csv:
600 more), 20 values of the series, then the next one, the target. A row's series is
    s(t) = sin(a) + 0.5 sin(2a) + noise,  a = 2 pi t / P + phase,  noise ~ N(0, 0.1^2),
for t = 0..20, with its own period P (uniform in 6..20) and phase. No predictor can beat
the noise's MSE, 0.01.

Python 3's standard library only (random.Random(seed) draws the same numbers everywhere).
"""
import math
import os
import random
import sys

ADDING_T = 50
ADDING_ROWS = 3200
ADDING_TEST_ROWS = 1000
SERIES_WINDOW = 20
SERIES_ROWS = 2400
SERIES_TEST_ROWS = 600
SERIES_NOISE = 0.1
SERIES_PERIODS = (6, 20)


def adding_row(rng):
    values = [rng.random() for _ in range(ADDING_T)]
    marked = (rng.randrange(ADDING_T // 2), ADDING_T // 2 + rng.randrange(ADDING_T // 2))
    fields = []
    for t, v in enumerate(values):
        fields += [f"{v:.4f}", "1" if t in marked else "0"]
    # the target sums the values as written, so the data holds no rounding error
    target = sum(float(fields[2 * t]) for t in marked)
    return ",".join(fields) + f",{target:.4f}\n"


def series_row(rng):
    period = rng.uniform(*SERIES_PERIODS)
    phase = rng.uniform(0, 2 * math.pi)
    values = []
    for t in range(SERIES_WINDOW + 1):
        angle = 2 * math.pi * t / period + phase
        values.append(math.sin(angle) + 0.5 * math.sin(2 * angle) + rng.gauss(0, SERIES_NOISE))
    return ",".join(f"{v:.4f}" for v in values) + "\n"


def write(path, rows, make_row, seed):
    rng = random.Random(seed)
    with open(path, "w", newline="\n") as f:
        f.write("".join(make_row(rng) for _ in range(rows)))


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    write(os.path.join(folder, "adding.csv"), ADDING_ROWS, adding_row, seed=1)
    write(os.path.join(folder, "adding_test.csv"), ADDING_TEST_ROWS, adding_row, seed=2)
    write(os.path.join(folder, "series.csv"), SERIES_ROWS, series_row, seed=3)
    write(os.path.join(folder, "series_test.csv"), SERIES_TEST_ROWS, series_row, seed=4)


if __name__ == "__main__":
    main()
