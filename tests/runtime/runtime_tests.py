#!/usr/bin/env python3
"""Runtime tests: run the hand-written test models (rt_logreg, rt_softmax, rt_softmax_idx,
rt_parabola, rt_mlp and its variants, rt_kinks, all linked with libnnrt) and check what they
print and write.

    runtime_tests.py --bin DIR TEST        one test (see TESTS below); exit 0 when it passes
    runtime_tests.py --bin DIR all         every test
    runtime_tests.py --list                the test names, one a line: CMakeLists.txt makes
                                           each the ctest runtime_NAME

Standard library only. Each test runs in a fresh temporary folder, which is also the
working folder of the executables, so messages name files by short relative paths.
"""
import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import stat
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

TESTS = {}
ARGS = None


def test(fn):
    TESTS[fn.__name__] = fn
    return fn


class Failure(Exception):
    pass


class Skip(Exception):
    """The test cannot run here (say, mounting is not permitted): exit SKIP_CODE."""


SKIP_CODE = 77  # SKIP_RETURN_CODE in CMakeLists.txt


def check(cond, message):
    if not cond:
        raise Failure(message)


# ---- running the executables ----


class Result:
    def __init__(self, proc):
        self.code = proc.returncode
        self.out = proc.stdout.decode("utf-8", "replace")
        self.err = proc.stderr.decode("utf-8", "replace")

    def describe(self):
        return f"exit {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}---"


def exe(model):
    return os.path.join(ARGS.bin, "rt_" + model)


def run(model, *args, stdin=b"", expect=0, env=None):
    full_env = dict(os.environ)
    full_env.pop("NNRT_TEST_TRACE", None)
    full_env.update(env or {})
    proc = subprocess.run([exe(model), *args], input=stdin, capture_output=True,
                          timeout=60, env=full_env)
    r = Result(proc)
    if expect is not None and r.code != expect:
        raise Failure(f"rt_{model} {' '.join(args)}: expected exit {expect}\n{r.describe()}")
    return r


def expect_error(model, args, message, code=1, stdin=b""):
    """The run fails with exactly this stderr (one line) and prints nothing on stdout."""
    r = run(model, *args, stdin=stdin, expect=code)
    check(r.err == message + "\n",
          f"rt_{model} {' '.join(args)}:\n  wanted stderr: {message!r}\n  got:           {r.err!r}")
    check(r.out == "", f"rt_{model} {' '.join(args)}: stdout should be empty, got {r.out!r}")


def values(stdout):
    """{'final loss': 0.1, 'final accuracy': 1.0, ...} from 'NAME NUMBER' lines."""
    found = {}
    for line in stdout.splitlines():
        m = re.fullmatch(r"([a-z ]+) (\S+)", line)
        if m:
            found[m.group(1)] = float(m.group(2))
    return found


def close(a, b, rel=1e-6, abs_tol=0.0):
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)


# ---- data ----


def write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def write_csv(path, rows, header=None, eol="\n"):
    lines = ([header] if header else []) + [",".join(str(v) for v in row) for row in rows]
    write(path, eol.join(lines) + eol)


def device_node(name, major, minor, system):
    """A character device of the test's own (mknod, which needs root), so that a runtime
    replacing the device replaces this one, not the system's; else the system's device (which
    only root could replace)."""
    try:
        os.mknod(name, stat.S_IFCHR | 0o666, os.makedev(major, minor))
        return name
    except OSError:
        return system


def logreg_rows(n=200, seed=1):
    """Two inputs in [-1, 1], label 1 on one side of a line: separable."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x0, x1 = round(rng.uniform(-1, 1), 4), round(rng.uniform(-1, 1), 4)
        rows.append((x0, x1, 1 if x0 + 2 * x1 - 0.3 > 0 else 0))
    return rows


def softmax_rows(n=150, seed=2):
    """Four inputs, three well separated classes; the class index is the last column."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        c = i % 3
        x = [round(rng.gauss(2.0 if j == c else 0.0, 0.4), 4) for j in range(4)]
        rows.append((*x, c))
    rng.shuffle(rows)
    return rows


def idx_bytes(dims, data):
    return b"\0\0\x08" + bytes([len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


def idx_samples(n=300, seed=3):
    """2x2 u8 images: pixel c bright for class c; labels 0..2."""
    rng = random.Random(seed)
    pixels, labels = bytearray(), bytearray()
    for i in range(n):
        c = i % 3
        for j in range(4):
            base = 200 if j == c else 40
            pixels.append(max(0, min(255, base + rng.randint(-40, 40))))
        labels.append(c)
    return bytes(pixels), bytes(labels)


# ---- safetensors, independently of the runtime ----


DTYPES = {"F32": ("f", 4), "F64": ("d", 8), "F16": ("e", 2), "I64": ("q", 8)}


def read_safetensors(path):
    """Checks the layout byte by byte; returns (header, {name: (dtype, shape, values)})."""
    data = open(path, "rb").read()
    check(len(data) >= 8, f"{path}: shorter than the length field")
    (n,) = struct.unpack("<Q", data[:8])
    check(8 + n <= len(data), f"{path}: header length {n} past the end")
    check((8 + n) % 8 == 0, f"{path}: data does not start 8-byte aligned ({8 + n})")
    text = data[8:8 + n].decode("utf-8")
    header = json.loads(text)
    check(text == text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" "))),
          "header padding is not spaces")
    body = data[8 + n:]
    tensors, spans = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            check(all(isinstance(v, str) for v in info.values()), "metadata values are strings")
            continue
        check(set(info) == {"dtype", "shape", "data_offsets"}, f"{name}: keys {set(info)}")
        fmt, size = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        count = math.prod(info["shape"])
        check(end - begin == count * size, f"{name}: {end - begin} bytes for {count} values")
        tensors[name] = (info["dtype"], info["shape"],
                         struct.unpack(f"<{count}{fmt}", body[begin:end]))
        spans.append((begin, end))
    spans.sort()
    position = 0
    for begin, end in spans:
        check(begin == position, f"{path}: a gap or overlap at data byte {begin}")
        position = end
    check(position == len(body), f"{path}: {len(body) - position} bytes after the last tensor")
    return header, tensors


def write_safetensors(path, tensors, header_override=None, metadata=None):
    """tensors: {name: (dtype, shape, values)}, written in the given order."""
    header, body = ({"__metadata__": metadata} if metadata is not None else {}), b""
    for name, (dtype, shape, vals) in tensors.items():
        fmt, _ = DTYPES[dtype]
        raw = struct.pack(f"<{len(vals)}{fmt}", *vals)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(body), len(body) + len(raw)]}
        body += raw
    text = header_override if header_override is not None else json.dumps(header)
    raw_header = text.encode()
    raw_header += b" " * (-(8 + len(raw_header)) % 8)  # the data starts 8-byte aligned
    write(path, struct.pack("<Q", len(raw_header)) + raw_header + body)


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


# ---- tests ----


@test
def help():
    out = run("logreg", "--help").out
    check(out.startswith("usage: rt_logreg COMMAND [OPTIONS]\n"), out)
    for command in ("train", "eval", "predict", "gradcheck"):
        check(re.search(rf"^  {command} +\S", out, re.M), f"command {command} missing:\n{out}")
    check(re.search(r"^  gradcheck +.*needs an f64 model", out, re.M), "f32: gradcheck needs f64")
    default_data = os.path.join(ARGS.bin, "logreg_default.csv")
    wanted = [
        ("--data PATH", default_data), ("--epochs N", "50"), ("--steps N", "0"),
        ("--batch N", "8"), ("--lr X", "0.5"), ("--momentum X", "0.9"), ("--seed N", "42"),
        ("--shuffle on|off", "on"), ("--validation F", "0"), ("--init-weights FILE", "none"),
        ("--save FILE", "logreg.safetensors"), ("--log FILE", "none"),
        ("--trace NAME,...", "none"), ("--trace-out FILE", "standard output"),
        ("--weights FILE", "logreg.safetensors"),
    ]
    for option, default in wanted:
        pattern = rf"^  {re.escape(option)} +\S.*\(default: {re.escape(default)}\)$"
        check(re.search(pattern, out, re.M), f"no line for {option} (default {default}):\n{out}")
    for flag in ("--quiet", "--no-save"):
        check(re.search(rf"^  {flag} +\S", out, re.M), f"{flag} missing")

    out = run("logreg", "train", "--help").out
    check(out.startswith("usage: rt_logreg train [OPTIONS]\n"), out)
    check("--lr X" in out and "(default: 0.5)" in out and "--weights" not in out, out)
    out = run("logreg", "predict", "--help").out
    check("(default: standard input)" in out and "--epochs" not in out, out)

    r = run("logreg", expect=2)
    check(r.out == "" and r.err.startswith("usage: rt_logreg COMMAND"), r.describe())

    out = run("softmax", "--help").out
    for option, default in [("--lr X", "0.1"), ("--epochs N", "30"), ("--batch N", "10"),
                            ("--data PATH", "none"), ("--seed N", "1"),
                            ("--momentum X", "0.9")]:
        pattern = rf"^  {re.escape(option)} +\S.*\(default: {re.escape(default)}\)$"
        check(re.search(pattern, out, re.M), f"softmax: no {option} (default {default}):\n{out}")

    out = run("parabola", "--help").out
    check(re.search(r"^  --steps N +update steps \(default: 200\)$", out, re.M), out)
    check("--epochs" not in out and "--data" not in out and "--batch" not in out, out)
    check(not re.search(r"^  predict", out, re.M), "parabola lists predict")

    out = run("mlp", "gradcheck", "--help").out
    check(out.startswith("usage: rt_mlp gradcheck [OPTIONS]\n"), out)
    check(re.search(r"^  --seed N +\S.*\(default: 3\)$", out, re.M), out)
    check(re.search(r"^  --data PATH +\S.*\(default: .*mlp_default\.csv\)$", out, re.M), out)
    check("--lr" not in out and "--trace" not in out, out)
    out = run("parabola", "gradcheck", "--help").out
    check("--seed N" in out and "--data" not in out, out)


@test
def extreme_numbers():
    """Every number option of train and search at the ends of its type (the largest and
    smallest 64-bit integers, 2^62, 2^31; +-DBL_MAX, the least subnormal, 1e300) ends with exit
    0, 1 or 2 and a message: never a signal or a sanitizer's report (--steps 2^63-1 once
    overflowed, --trials 2^31 once allocated 160 GB). The options come from --help, so a new
    one is covered when it is listed."""
    write_csv("d.csv", logreg_rows(10))
    ints = ["9223372036854775807", "-9223372036854775808", "4611686018427387904", "2147483648"]
    reals = ["1.7976931348623157e308", "-1.7976931348623157e308", "4.9e-324", "1e300"]
    commands = {"train": ["--steps", "2"],
                "search": ["--lr", "0.1,0.2", "--trials", "2", "--epochs", "1", "--steps", "2"]}
    tried = 0
    for command, base in commands.items():
        listing = run("logreg", command, "--help").out
        numbers = re.findall(r"^  (--[a-z-]+) ([A-Z])\b", listing, re.M)
        check(len(numbers) > 10, f"{command} --help lists number options:\n{listing}")
        for name, metavar in numbers:
            for value in ints if metavar in "NK" else reals:
                args = [command, "--data", "d.csv", *base, "--no-save", "--quiet", name, value]
                r = run("logreg", *args, expect=None)
                say = f"rt_logreg {' '.join(args)}:\n{r.describe()}"
                check(r.code in (0, 1, 2), say)
                check("runtime error" not in r.err and "Sanitizer" not in r.err, say)
                check(r.code == 0 or re.search(r"(^|\n)\S+: error: ", r.err), say)
                tried += 1
    check(tried > 100, tried)


@test
def bad_options():
    cases = [
        (["train", "--frobnicate"], "unknown option '--frobnicate' (see 'rt_logreg train --help')"),
        (["train", "--lr", "abc"], "--lr needs a number, got 'abc'"),
        (["train", "--lr=abc"], "--lr needs a number, got 'abc'"),
        (["train", "--lr", "nan"], "--lr needs a number, got 'nan'"),
        (["train", "--epochs", "1.5"], "--epochs needs a whole number, got '1.5'"),
        (["train", "--batch", "0"], "--batch must be at least 1, got '0'"),
        (["train", "--lr", "-1"], "--lr must be at least 0, got '-1'"),
        (["train", "--validation", "1"], "--validation must be in [0, 1), got '1'"),
        (["train", "--shuffle", "maybe"], "--shuffle needs on or off, got 'maybe'"),
        (["train", "--lr"], "--lr needs a value (X)"),
        (["train", "--save", "--quiet"], "--save needs a value (FILE)"),
        (["train", "--quiet=yes"], "--quiet takes no value"),
        (["train", "extra"], "unexpected argument 'extra' (options start with --)"),
        (["train", "--weights", "w"],
         "--weights is not an option of 'train' (see 'rt_logreg train --help')"),
        (["eval", "--epochs", "3"],
         "--epochs is not an option of 'eval' (see 'rt_logreg eval --help')"),
        (["frobnicate"],
         "unknown command 'frobnicate' (commands: train, eval, predict, gradcheck, search, "
         "sample, weights)"),
        (["--lr", "1"],
         "expected a command (train, eval, predict, gradcheck, search, sample or weights) before "
         "'--lr'"),
    ]
    for args, message in cases:
        expect_error("logreg", args, "rt_logreg: error: " + message, code=2)
    # A setting the run's optimizer, schedule or early stopping (off) does not read would
    # change nothing; searching the optimizer (schedule, early stopping) lets it apply to the
    # trials that read it.
    unread = [
        (["--beta1", "0.5"], "--beta1 is read only by adam, adamw, adamax, lion; the optimizer "
         "is sgd, so it would change nothing (give --optimizer NAME, or leave --beta1 out)"),
        (["--optimizer", "adam", "--momentum", "0.5"], "--momentum is read only by sgd, rmsprop; "
         "the optimizer is adam, so it would change nothing (give --optimizer NAME, or leave "
         "--momentum out)"),
        (["--schedule", "cosine", "--gamma", "0.5"], "--gamma is read only by the exponential "
         "schedule; the schedule is cosine, so it would change nothing (give --schedule "
         "exponential, or leave --gamma out)"),
        (["--step-every", "3"], "--step-every is read only by the step schedule; the schedule "
         "is constant, so it would change nothing (give --schedule step, or leave --step-every "
         "out)"),
        (["--patience", "2"], "--patience is read only by early stopping, which is off, so it "
         "would change nothing (give --early-stopping on, or leave --patience out)"),
        (["--monitor", "accuracy"], "--monitor is read only by early stopping, which is off, "
         "so it would change nothing (give --early-stopping on, or leave --monitor out)"),
        (["--nesterov", "on", "--momentum", "0"], "--nesterov on looks ahead along the momentum, "
         "and --momentum is 0: it would change nothing (give --momentum above 0)"),
    ]
    # A typo's million trials would first allocate their table: refused, not out of memory.
    expect_error("logreg", ["search", "--lr", "0.1,0.2", "--trials", "1000001"],
                 "rt_logreg: error: --trials must be at most 1000000, got '1000001'", code=2)
    expect_error("logreg", ["search", "--lr", "0.1,0.2", "--trials", "9223372036854775807"],
                 "rt_logreg: error: --trials must be at most 1000000, got '9223372036854775807'",
                 code=2)
    expect_error("logreg", ["search", "--lr", "0.1,0.2", "--startup-trials", "5"],
                 "rt_logreg: error: --startup-trials is read only by --strategy tpe; the strategy "
                 "is random, so it would change nothing (give --strategy tpe, or leave "
                 "--startup-trials out)", code=2)
    for args, message in unread:
        for command in ("train", "search"):
            if command == "search" and args[0] == "--monitor":
                continue  # the search's own metric
            expect_error("logreg", [command, *args], "rt_logreg: error: " + message, code=2)
    # --stride cuts text into windows: not an option of a model that reads CSV, nor in its help
    for command in ("train", "eval", "predict"):
        expect_error("logreg", [command, "--stride", "2"], "rt_logreg: error: --stride is for "
                     "text data; model 'logreg' reads csv", code=2)
        check("--stride" not in run("logreg", command, "--help").out, f"{command} --help")
    write_csv("l.csv", logreg_rows())
    for flag in ("--log-grad-norms", "--log-update-ratios"):  # shown by --log and --plot alone
        expect_error("logreg", ["train", "--data", "l.csv", flag], f"rt_logreg: error: {flag} "
                     "writes columns of --log and a panel of --plot: give --log FILE or --plot "
                     "FILE", code=2)
    for args in (["--optimizer", "adam", "--beta1", "0.5"], ["--schedule", "step",
                 "--step-every", "3"], ["--early-stopping", "on", "--patience", "2",
                 "--validation", "0.25"]):
        run("logreg", "train", "--data", "l.csv", "--quiet", "--no-save", "--epochs", "1", *args)
    for args in (["--optimizer", "sgd,adam", "--beta1", "0.5"],
                 ["--schedule", "step,constant", "--step-every", "3"],
                 ["--early-stopping", "on,off", "--patience", "2", "--validation", "0.25"],
                 ["--monitor", "loss", "--lr", "0.1,0.2"]):
        run("logreg", "search", "--data", "l.csv", "--quiet", "--epochs", "1", "--trials", "2",
            *args)
    expect_error("parabola", ["train", "--epochs", "3"],
                 "rt_parabola: error: --epochs does not apply: model 'parabola' has no inputs", 2)
    expect_error("parabola", ["predict"],
                 "rt_parabola: error: model 'parabola' has no inputs, so nothing to predict; "
                 "'train' prints its params", 2)


def train_lines(stdout, classification=True, validation=False):
    pattern = r"final loss \S+\n"
    if classification:
        pattern += r"final accuracy \d\.\d{4}\n"
    if validation:
        pattern += r"validation loss \S+\n"
        if classification:
            pattern += r"validation accuracy \d\.\d{4}\n"
    check(re.fullmatch(pattern, stdout), f"stdout lines:\n{stdout}")
    return values(stdout)


EPOCH_LINE = (r"epoch {e}/{n}  loss [-+0-9.e]+  accuracy \d\.\d{{4}}  lr [-+0-9.e]+  "
              r"\d+\.\d\ds  \d+ samples/s")


@test
def logreg_converges():
    write_csv("d.csv", logreg_rows(), header="x0,x1,y")
    start = time.monotonic()
    r = run("logreg", "train", "--data", "d.csv", "--log", "log.csv", "--save", "w.safetensors")
    elapsed = time.monotonic() - start
    v = train_lines(r.out)
    check(v["final accuracy"] >= 0.95, f"accuracy {v['final accuracy']}")
    check(v["final loss"] < 0.3, f"loss {v['final loss']}")

    lines = r.err.splitlines()
    check(re.fullmatch(EPOCH_LINE.format(e=1, n=50), lines[0]), f"first line {lines[0]!r}")
    check(re.fullmatch(EPOCH_LINE.format(e=50, n=50), lines[-2]), f"last epoch {lines[-2]!r}")
    check(lines[-1] == "saved weights to w.safetensors", lines[-1])
    # At most ~10 lines per second, plus the first and the last.
    check(len(lines) - 1 <= 3 + 10 * elapsed, f"{len(lines) - 1} progress lines in {elapsed:.2f}s")

    log = open("log.csv").read().splitlines()
    check(log[0] == "epoch,loss,accuracy,lr,seconds,samples_per_second", log[0])
    rows = [row.split(",") for row in log[1:]]
    check([int(row[0]) for row in rows] == list(range(1, 51)), "log epochs")
    check(all(0 <= float(row[2]) <= 1 for row in rows), "log accuracy")
    check(all(float(row[3]) == 0.5 for row in rows), "log lr")
    check(all(float(row[5]) > 0 for row in rows), "log samples per second")
    check(float(rows[-1][1]) < float(rows[0][1]) / 2, "log loss did not fall")
    check(sorted(os.listdir(".")) == ["d.csv", "log.csv", "w.safetensors"],
          f"files left: {os.listdir('.')}")

    r = run("logreg", "train", "--data", "d.csv", "--quiet", "--no-save")
    check(r.err == "", f"--quiet printed {r.err!r}")
    check(not os.path.exists("logreg.safetensors"), "--no-save saved")


@test
def softmax_converges():
    write_csv("d.csv", softmax_rows())
    r = run("softmax", "train", "--data", "d.csv", "--validation", "0.2", "--log", "l.csv")
    v = train_lines(r.out, validation=True)
    check(v["final accuracy"] >= 0.9, f"accuracy {v['final accuracy']}")
    check(v["validation accuracy"] >= 0.85, f"validation accuracy {v['validation accuracy']}")
    check(v["validation loss"] < 0.5, f"validation loss {v['validation loss']}")
    check(os.path.exists("softmax.safetensors"), "default --save")
    check(open("l.csv").readline() ==
          "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds,samples_per_second\n",
          "log header")
    log = [line.split(",") for line in open("l.csv").read().splitlines()[1:]]
    check(len(log) == 30, f"{len(log)} log rows")
    # The last epoch's validation columns are the final validation lines' numbers.
    check(close(float(log[-1][3]), v["validation loss"], 1e-6), f"{log[-1]} vs {v}")
    check(abs(float(log[-1][4]) - v["validation accuracy"]) < 1e-4, f"{log[-1]} vs {v}")
    check(re.search(r"^epoch 30/30  loss \S+  accuracy \S+  val loss \S+  val accuracy "
                    r"\d\.\d{4}  lr 0\.1  ", r.err, re.M), r.err)


@test
def determinism():
    write_csv("l.csv", logreg_rows())
    write_csv("s.csv", softmax_rows())
    for model, data, extra in [("logreg", "l.csv", []), ("softmax", "s.csv", []),
                               ("softmax", "s.csv", ["--validation", "0.3", "--batch", "7"])]:
        runs = []
        for name, seed in [("a", "5"), ("b", "5"), ("c", "6")]:
            r = run(model, "train", "--data", data, "--seed", seed, "--save", name, "--quiet",
                    *extra)
            runs.append((r.out, open(name, "rb").read()))
        check(runs[0] == runs[1], f"{model} {extra}: same seed, different results")
        check(runs[0][1] != runs[2][1], f"{model} {extra}: the seed changed nothing")
    # The shuffle only reorders: with --shuffle off the seed still sets the initial weights.
    run("logreg", "train", "--data", "l.csv", "--shuffle", "off", "--save", "d", "--quiet")
    run("logreg", "train", "--data", "l.csv", "--shuffle", "off", "--save", "e", "--quiet")
    check(open("d", "rb").read() == open("e", "rb").read(), "--shuffle off differs")


@test
def eval_matches_train():
    write_csv("l.csv", logreg_rows(), header="x0,x1,y")
    write_csv("s.csv", softmax_rows())
    for model, data in [("logreg", "l.csv"), ("softmax", "s.csv")]:
        trained = train_lines(run(model, "train", "--data", data, "--save", "w").out)
        r = run(model, "eval", "--weights", "w", "--data", data)
        check(re.fullmatch(r"loss \S+\naccuracy \d\.\d{4}\n", r.out), r.out)
        evaluated = values(r.out)
        check(close(evaluated["loss"], trained["final loss"], 1e-6),
              f"{model}: eval loss {evaluated['loss']} vs train {trained['final loss']}")
        check(evaluated["accuracy"] == trained["final accuracy"], f"{model}: accuracy differs")
    # Without --weights, eval reads what train saved by default.
    run("logreg", "train", "--data", "l.csv", "--quiet")
    run("logreg", "eval", "--data", "l.csv")


@test
def safetensors_layout():
    write_csv("d.csv", logreg_rows())
    run("logreg", "train", "--data", "d.csv", "--save", "w.st", "--quiet")
    header, tensors = read_safetensors("w.st")
    check(header["__metadata__"] == {"model": "logreg", "producer": "nnc"}, header)
    check(list(header) == ["__metadata__", "lin.W", "lin.b"], f"header order {list(header)}")
    check(header["lin.W"] == {"dtype": "F32", "shape": [2, 1], "data_offsets": [0, 8]}, header)
    check(header["lin.b"] == {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}, header)
    raw = open("w.st", "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    check(len(raw) == 8 + n + 12, f"file length {len(raw)}")
    # The stored values are the model's: predict with them by hand.
    w, b = tensors["lin.W"][2], tensors["lin.b"][2][0]
    out = run("logreg", "predict", "--weights", "w.st", stdin=b"0.3,-0.2\n").out
    check(close(float(out), sigmoid(0.3 * w[0] - 0.2 * w[1] + b), 1e-6), out)

    run("parabola", "train", "--save", "p.st", "--quiet")
    header, tensors = read_safetensors("p.st")
    check(header["x"] == {"dtype": "F64", "shape": [], "data_offsets": [0, 8]}, header)
    check(header["v"] == {"dtype": "F64", "shape": [10], "data_offsets": [8, 88]}, header)
    check(abs(tensors["x"][2][0] - 0.5) < 1e-9, tensors["x"])


CSV_ERRORS = [
    # (model, file contents, message after "bad.csv:")
    ("logreg", "x0,x1,y\n0.1,0.2,1\n0.3,abc,0\n", "3: error: column 1: 'abc' is not a number"),
    ("logreg", "0.1,0.2,1\nnan,0.2,1\n", "2: error: column 0: 'nan' is not a number"),
    ("logreg", "0.1,0.2,1\n0.1,0x10,1\n", "2: error: column 1: '0x10' is not a number"),
    ("logreg", "0.1,0.2,1\n0.1,,1\n", "2: error: column 1 is empty"),
    ("logreg", "0.1,0.2\n0.3,0.4\n",
     "1: error: expected at least 3 columns (the model reads columns 0..2), found 2"),
    ("logreg", "a,b\n1,2\n",
     "2: error: expected at least 3 columns (the model reads columns 0..2), found 2"),
    ("logreg", "", "1: error: the file is empty"),
    ("logreg", "\n  \n\r\n", "1: error: the file is empty"),
    ("logreg", "x0,x1,y\n", "2: error: no data rows after the header on line 1"),
    ("logreg", "1,2,1\n1,2\n", "2: error: row has 2 columns, but the first data row (line 1) has 3"),
    ("logreg", "x0,x1,y\n1,2,1\n\n1,2,1,4\n",
     "4: error: row has 4 columns, but the first data row (line 2) has 3"),
    ("logreg", "1e400,0,1\n", "1: error: column 0: 1e400 is out of range for a 32-bit float"),
    ("logreg", "1e39,0,1\n", "1: error: column 0: 1e39 is out of range for a 32-bit float"),
    ("softmax", "1,2,3,4,3\n", "1: error: column 4: class index 3 is out of range 0..2 for 'y'"),
    ("softmax", "1,2,3,4,0\n1,2,3,4,-1\n",
     "2: error: column 4: class index -1 is out of range 0..2 for 'y'"),
    ("softmax", "1,2,3,4,1.5\n", "1: error: column 4: class index 1.5 is not a whole number"),
]


@test
def bad_csv():
    write_safetensors("logreg.safetensors", {"lin.W": ("F32", [2, 1], [1.0, 1.0]),
                                             "lin.b": ("F32", [1], [0.0])})
    write_safetensors("softmax.safetensors", {"fc.W": ("F64", [4, 3], [0.0] * 12),
                                              "fc.b": ("F64", [3], [0.0] * 3)})
    for model, text, message in CSV_ERRORS:
        write("bad.csv", text)
        for command in ("train", "eval"):
            expect_error(model, [command, "--data", "bad.csv"], "bad.csv:" + message)
    expect_error("logreg", ["train", "--data", "nope.csv"],
                 "nope.csv: error: cannot open: No such file or directory")
    expect_error("logreg", ["train", "--data", "."], ".: error: cannot read: Is a directory")
    # Random bytes (NULs, invalid UTF-8, stray commas): an error naming the file, no crash.
    rng = random.Random(4)
    for i in range(20):
        write("junk.csv", bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))))
        r = run("logreg", "train", "--data", "junk.csv", "--no-save", expect=1)
        check(r.err.startswith("junk.csv:") and ": error: " in r.err, r.describe())


@test
def csv_tolerance():
    rows = logreg_rows(50)
    write_csv("clean.csv", rows)
    messy = "x0 , x1 , y \r\n\r\n"
    for i, (x0, x1, y) in enumerate(rows):
        messy += f"  {x0:+}, {x1}\t,{y}.0   \r\n" + ("\n" if i % 7 == 0 else "")
    write("messy.csv", messy.rstrip("\r\n"))  # no final line end
    run("logreg", "train", "--data", "clean.csv", "--save", "w", "--quiet")
    clean = run("logreg", "eval", "--weights", "w", "--data", "clean.csv").out
    tolerated = run("logreg", "eval", "--weights", "w", "--data", "messy.csv").out
    check(clean == tolerated, f"clean:\n{clean}messy:\n{tolerated}")
    write("forms.csv", "1.,.5,1\n+1E-1,-2e+0,0\n")
    run("logreg", "eval", "--weights", "w", "--data", "forms.csv")


@test
def bad_idx():
    pixels, labels = idx_samples(30)
    images = idx_bytes([30, 2, 2], pixels)
    write("img", images)
    write("lab", idx_bytes([30], labels))
    cases = [
        ("img", b"\x01\x02\x08\x03" + images[4:],
         "img:byte 0: error: not an IDX file (it starts with 0x0102, not 0x0000)"),
        ("img", b"\0\0\x0d\x03" + images[4:],
         "img:byte 2: error: IDX element type 0x0d is not supported (only unsigned bytes, 0x08)"),
        ("img", images[:116],
         "img:byte 116: error: truncated IDX file: the header promises 120 data bytes, the file has 100"),
        ("img", images + b"12345",
         "img:byte 136: error: 5 bytes after the 120 data bytes the header promises"),
        ("img", idx_bytes([30, 3, 3], bytes(270)),
         "img:byte 8: error: each IDX sample has 9 values, the model's input wants 4"),
        ("img", b"\0\0", "img:byte 0: error: not an IDX file: 2 bytes, shorter than the header"),
        ("img", b"\0\0\x08\x03\0\0\0\x1e",
         "img:byte 8: error: truncated IDX header: 3 dimensions need 16 header bytes, the file has 8"),
        ("img", idx_bytes([0, 2, 2], b""), "img:byte 4: error: the IDX file holds no samples"),
        ("lab", idx_bytes([29], labels[:29]), "lab:byte 4: error: 29 labels, but img holds 30 images"),
        ("lab", idx_bytes([30], labels[:5] + b"\x07" + labels[6:]),
         "lab:byte 13: error: label 7 of sample 5 is out of range 0..2"),
        ("lab", idx_bytes([15, 2], labels), "lab:byte 3: error: IDX labels have 2 dimensions, expected 1"),
    ]
    for name, content, message in cases:
        good = open(name, "rb").read()
        write(name, content)
        expect_error("softmax_idx", ["train", "--data", "img,lab", "--no-save"], message)
        write(name, good)
    expect_error("softmax_idx", ["train", "--data", "img"],
                 "rt_softmax_idx: error: --data for this model needs two IDX files, IMAGES,LABELS; "
                 "got 'img'", 2)
    expect_error("softmax_idx", ["train"],
                 "rt_softmax_idx: error: no data files: give --data IMAGES,LABELS", 2)


@test
def idx_train():
    pixels, labels = idx_samples()
    write("img", idx_bytes([300, 2, 2], pixels))
    write("lab", idx_bytes([300], labels))
    trained = train_lines(run("softmax_idx", "train", "--data", "img,lab", "--save", "w").out)
    check(trained["final accuracy"] >= 0.9, trained)
    evaluated = values(run("softmax_idx", "eval", "--weights", "w", "--data", "img,lab").out)
    check(close(evaluated["loss"], trained["final loss"], 1e-6), evaluated)
    out = run("softmax_idx", "predict", "--weights", "w", "--data", "img").out.splitlines()
    check(len(out) == 300, f"{len(out)} predictions")
    correct = 0
    for line, label in zip(out, labels):
        p = [float(v) for v in line.split(",")]
        check(len(p) == 3 and close(sum(p), 1.0, 1e-6), line)
        correct += p.index(max(p)) == label
    check(abs(correct / 300 - trained["final accuracy"]) < 1e-9, "predict disagrees with train")
    # The same pixels as CSV: the IDX reader keeps the byte values as they are.
    csv = "".join(",".join(str(b) for b in pixels[4 * i:4 * i + 4]) + "\n" for i in range(3))
    again = run("softmax_idx", "predict", "--weights", "w", stdin=csv.encode()).out.splitlines()
    for a, b in zip(again, out[:3]):
        check(all(close(float(x), float(y), 1e-9) for x, y in zip(a.split(","), b.split(","))),
              f"{a} vs {b}")


# Pixels at the special points (0, 1, 127, 128, 254, 255), 7 rows: a batch of 4 leaves a last
# partial batch of 3. Labels 0 or 1 (one-hot into y[2]).
ECHO_PIXELS = [[0, 1, 255], [127, 128, 254], [255, 0, 7], [2, 3, 4], [250, 251, 252],
               [9, 8, 200], [255, 255, 255]]
ECHO_LABELS = [0, 1, 1, 0, 1, 0, 1]


def echo_rows(err):
    """The rows rt_echo's training steps saw: [(x, y)], and the batch of each step."""
    rows, steps = [], []
    for line in err.splitlines():
        if line.startswith("row "):
            x, y = line[4:].split(" | ")
            rows.append(([float(v) for v in x.split()], [float(v) for v in y.split()]))
        elif line.startswith("step "):
            steps.append(line[5:])
    return rows, steps


def f32(v):
    return struct.unpack("f", struct.pack("f", v))[0]


@test
def gather_values():
    """IDX bytes are kept as bytes and converted while a batch is gathered: every pixel
    arrives as exactly its value 0..255, in f32 and f64, in the order of the rows, the last
    partial batch included; CSV data, predict and --standardize see the same values."""
    pixels = bytes(v for row in ECHO_PIXELS for v in row)
    write("img", idx_bytes([7, 1, 3], pixels))
    write("lab", idx_bytes([7], bytes(ECHO_LABELS)))
    write_csv("d.csv", [row + [label] for row, label in zip(ECHO_PIXELS, ECHO_LABELS)])
    onehot = [[1.0, 0.0] if label == 0 else [0.0, 1.0] for label in ECHO_LABELS]
    want = [([float(v) for v in row], y) for row, y in zip(ECHO_PIXELS, onehot)]
    for model in ("echo", "echo64"):
        for data in ("img,lab", "d.csv"):
            r = run(model, "train", "--data", data, "--no-save", "--quiet", "--epochs", "2",
                    env={"NNRT_TEST_TRACE": "1"})
            rows, steps = echo_rows(r.err)
            check(steps == ["4/4", "3/4"] * 2, f"{model} {data}: steps {steps}")
            check(rows == want * 2, f"{model} {data}: rows {rows}")
        # shuffled: each row once an epoch, each exactly as stored
        r = run(model, "train", "--data", "img,lab", "--no-save", "--quiet", "--shuffle", "on",
                "--epochs", "3", env={"NNRT_TEST_TRACE": "1"})
        rows, _ = echo_rows(r.err)
        for epoch in range(3):
            seen = rows[7 * epoch:7 * epoch + 7]
            check(sorted(seen) == sorted(want) and seen != want,
                  f"{model}: shuffled epoch {epoch}: {seen}")
        # predict reads the images alone; the output is the input
        out = run(model, "predict", "--weights", "w0", "--data", "img", expect=None)
        if out.code != 0:  # no weights yet: save the (unchanged) starting ones
            run(model, "train", "--data", "img,lab", "--save", "w0", "--quiet")
            out = run(model, "predict", "--weights", "w0", "--data", "img")
        got = [[float(v) for v in line.split(",")] for line in out.out.splitlines()]
        check(got == [[float(v) for v in row] for row in ECHO_PIXELS], f"{model} predict {got}")
        os.remove("w0")
        # --standardize: (x - mean) / std in double over the bytes, then the model's type
        r = run(model, "train", "--data", "img,lab", "--no-save", "--quiet", "--epochs", "1",
                "--standardize", "on", env={"NNRT_TEST_TRACE": "1"})
        rows, _ = echo_rows(r.err)
        for col in range(3):
            values = [float(row[col]) for row in ECHO_PIXELS]
            mean = 0.0
            for v in values:
                mean += v
            mean /= len(values)
            var = 0.0
            for v in values:
                var += (v - mean) * (v - mean)
            std = math.sqrt(var / len(values)) or 1.0
            for i, v in enumerate(values):
                expect = (v - mean) / std
                expect = expect if model == "echo64" else f32(expect)
                check(rows[i][0][col] == expect,
                      f"{model} --standardize row {i} col {col}: {rows[i][0][col]} vs {expect}")


@test
def gather_wide_rows():
    """Rows of 37 bytes, long enough for the conversion's vector loops (with AVX2 8 bytes at a
    time to f32, 4 to f64; else blocks of 16) and their tails: all 256 byte values,
    each arriving as exactly its value, in f32 and f64, in order and shuffled."""
    width, n = 37, 9  # batches of 4, 4 and 1
    pixels = bytes((7 * i + 3) % 256 for i in range(width * n))  # 7 is prime to 256
    check(len(set(pixels)) == 256, "every byte value")
    labels = [i % 2 for i in range(n)]
    write("img", idx_bytes([n, 1, width], pixels))
    write("lab", idx_bytes([n], bytes(labels)))
    want = [([float(v) for v in pixels[width * i:width * (i + 1)]],
             [1.0, 0.0] if labels[i] == 0 else [0.0, 1.0]) for i in range(n)]
    for model in ("echo_wide", "echo_wide64"):
        r = run(model, "train", "--data", "img,lab", "--no-save", "--quiet", "--epochs", "1",
                env={"NNRT_TEST_TRACE": "1"})
        rows, steps = echo_rows(r.err)
        check(steps == ["4/4", "4/4", "1/4"], f"{model}: steps {steps}")
        check(rows == want, f"{model}: rows {rows}")
        r = run(model, "train", "--data", "img,lab", "--no-save", "--quiet", "--shuffle", "on",
                "--epochs", "2", env={"NNRT_TEST_TRACE": "1"})
        rows, _ = echo_rows(r.err)
        for epoch in range(2):
            seen = rows[n * epoch:n * (epoch + 1)]
            check(sorted(seen) == sorted(want) and seen != want,
                  f"{model}: shuffled epoch {epoch}: {seen}")


@test
def numtext():
    """The --log row's numbers are written by runtime/numtext.c: the same text as printf's
    %.9g, %.Nf and %lld at ties, powers of ten, the ends of its fast ranges and random values."""
    r = subprocess.run([exe("numtext_check")], capture_output=True, timeout=120)
    out = r.stdout.decode()
    check(r.returncode == 0 and re.fullmatch(r"compared \d+ texts, 0 differ\n", out), out)
    check(int(out.split()[1]) > 1000000, out)


@test
def lines_ahead():
    """The next batch's lines asked for by a step's products (runtime/lines_ahead.c): every
    line of every queued row and none beside, each ask its paced share, the rest at the end,
    all at once in a thread whose products never ask."""
    r = subprocess.run([exe("lines_ahead_check")], capture_output=True, timeout=60)
    out = r.stdout.decode()
    check(r.returncode == 0 and re.fullmatch(r"ok \d+\n", out), out + r.stderr.decode())
    check(int(out.split()[1]) > 10000, out)


@test
def two_ways():
    """The trial that keeps the faster of two ways (runtime/two_ways.c), in the shapes of
    train.c's two trials: the way of each step, the way kept for faster, slower, tied and
    interrupted steps, and no change after the trial."""
    r = subprocess.run([exe("two_ways_check")], capture_output=True, timeout=60)
    out = r.stdout.decode()
    check(r.returncode == 0 and out == "ok 16\n", out + r.stderr.decode())


@test
def tick_clock():
    """The clock of the --log rows (util.h, rt_tick_clock): the time-stamp counter where it is
    invariant, on a line steered to rt_now(); every rt_now() lies between the tick reads
    around it, within 50 us, and no read goes back."""
    r = subprocess.run([exe("tick_clock_check")], capture_output=True, timeout=60)
    out = r.stdout.decode()
    m = re.fullmatch(r"counter (\d) slope (\w+) reads (\d+) outside 0 back 0\n", out)
    check(r.returncode == 0 and m, out + r.stderr.decode())
    with open("/proc/cpuinfo") as f:
        flags = f.read().split()
    invariant = "constant_tsc" in flags and "nonstop_tsc" in flags
    check(m.group(1) == str(int(invariant)), f"invariant counter: {invariant}; {out}")
    check(m.group(2) == ("measured" if invariant else "none"), out)
    check(int(m.group(3)) > 10000, out)


@test
def packed_gemm():
    """The product a scan's steps run with a packed weight, and nnrt_sgemm_nn and
    nnrt_sgemm_tn, which read B in place and skip A's zero columns (runtime/packed_gemm.c,
    in_place_gemm.c): at every edge of the kernels' tiles, on the AVX-512 and AVX2 kernels
    where the CPU has them (exactly the sum in order of k that docs/codegen.md states, a
    skipped row of C as the whole product leaves it) and on the OpenBLAS fallback, forced:
    nothing written outside C, beta 0 never reads C, a NaN in A makes its row NaN, an
    infinity in B leaves the skipped rows alone, and a column whose one value lies late in A
    (at each edge of the groups of rows its list reads) is not skipped; nnrt_sgemm_tn_again
    takes the list of the thread's last X·W only while it is still A's; nnrt_sgemm_nn_bias_relu
    gives the bits of nnrt_sgemm_nn and the compiled bias + relu loop, NaN, infinities and
    exact zeros among the sums plus bias, and so do a team's blocks of it."""
    r = subprocess.run([exe("packed_gemm_check")], capture_output=True, timeout=300)
    out = r.stdout.decode()
    m = re.fullmatch(r"((?:path \w+\n)+)compared (\d+) products, 0 differ\n", out)
    check(r.returncode == 0 and m, out)
    paths = re.findall(r"path (\w+)", m.group(1))
    check(paths[-1] == "blas" and len(set(paths)) == len(paths), out)
    with open("/proc/cpuinfo") as f:
        flags = f.read().split()
    has = {"avx512": "avx512f" in flags, "avx2": "avx2" in flags and "fma" in flags}
    for path in ("avx512", "avx2"):
        check(has[path] == (path in paths), f"the CPU has {path}: {has[path]}; {out}")
    # 9 M x 10 N x 6 K x 9 (alpha, beta and zero columns or not, NaN) x 3 (B packed, Bᵀ
    # packed, B in place) + 2 large ones packed and 1 in place; 7 M x 7 N x 4 K x 3 (zero
    # columns) x 2 alpha x 3 beta + 4 of nnrt_sgemm_tn; a column's one value late in A:
    # 1, 2, 2, 3 and 3 x 5 rows where it lies (for 1, 7, 8, 9, 16, 17 and 65 rows) x 4 widths,
    # each through nnrt_sgemm_nn and nnrt_sgemm_tn: on each path
    nn = 9 * 10 * 6 * 9 * 3 + 3
    tn = 7 * 7 * 4 * 3 * 2 * 3 + 4
    late = (1 + 2 + 2 + 3 + 3 * 5) * 4 * 2
    again = 4 * 2  # nnrt_sgemm_tn_again after each kind of X·W before it, at two widths
    bias_relu = 4 * 3 * 3 * 3  # nnrt_sgemm_nn_bias_relu: M x K x N x (T, H, both)
    # its team's blocks (2 and 3 of them) where the kernel takes the whole: M 1, 7, 32 x K x
    # N 128 x (T, H), on the AVX-512 path
    blocks = 2 * 3 * 3 * 1 * 2 if "avx512" in paths else 0
    check(int(m.group(2)) == len(paths) * (nn + tn + late + again + bias_relu) + blocks, out)


@test
def team_gemm():
    """The blocks of a GEMM that the threads of --workers compute (runtime/workers.c) give the
    whole GEMM's elements, up to the rounding of their sums where OpenBLAS sums a block
    otherwise than the whole (which shapes, depends on the CPU's kernels)."""
    r = subprocess.run([exe("team_gemm_check")], capture_output=True, timeout=300)
    out = r.stdout.decode()
    check(r.returncode == 0 and
          re.fullmatch(r"compared \d+ GEMMs, \d+ the same bytes, 0 differ\n", out), out)
    check(int(out.split()[1]) == 3000, out)


@test
def batch_metrics():
    """A step reads its batch's losses once: the cost it checks and the epoch's running sum
    come from one pass, the bits of rt_batch_cost and of the losses added one by one (f32,
    f64, a loss per row or one for the batch, nan and inf among them). An output row's
    class is the first of its largest values (ties, nan, infinities and -0 among them). And
    the weights' check finds a nan or an infinity wherever it lies, and nothing else (the
    largest finite values, subnormals, -0)."""
    r = subprocess.run([exe("metrics_check")], capture_output=True, timeout=120)
    out = r.stdout.decode()
    check(r.returncode == 0 and
          re.fullmatch(r"compared \d+ sums, the classes of \d+ rows and the finiteness of \d+ "
                       r"arrays, 0 differ\n", out), out)
    # 2 types x 2 kinds of loss x 37 batch sizes x 53 batches x 3 comparisons
    check(int(out.split()[1]) == 2 * 2 * 37 * 53 * 3, out)
    # rows of 2..37 values: 40 drawn, and 7 special values at 3 places (2 with 2 or 3 values)
    rows = sum(40 + 7 * len(range(0, n, (n - 1) // 2 if n - 1 > 1 else 1)) for n in range(2, 38))
    check(int(out.split()[6]) == 2 * rows, out)
    # 12 special values at each place of 1..37 values, f32 and f64
    check(int(out.split()[12]) == 12 * 2 * sum(range(1, 38)), out)


@test
def progress_work():
    """Progress reads the clock once an epoch and once every so many bar ticks (the stride
    doubles while ticks come fast), not at every tick: 6 million ticks on a terminal read it
    a few thousand times at most. The log's rows are printf's text of each epoch's values,
    3000 of them: the log's buffer goes to the file several times, in part and whole."""
    master, slave = os.openpty()
    try:
        r = subprocess.run([exe("progress_check"), "log.csv"], stdout=subprocess.PIPE,
                           stderr=slave, timeout=120)
    finally:
        os.close(slave)
        os.close(master)
    out = r.stdout.decode()
    m = re.fullmatch(r"epochs (\d+) ticks (\d+) clock reads (\d+)\n", out)
    check(r.returncode == 0 and m, out)
    epochs, ticks, reads = (int(g) for g in m.groups())
    # one read at the start, one an epoch, and the ticks' reads: a stride that starts at 1
    # and doubles up to 2^20 reads about log2 of each epoch's ticks (15) an epoch at most
    check(reads <= 1 + epochs + 16 * epochs and reads < ticks // 100, out)
    lines = open("log.csv").read().splitlines()
    check(lines[0] == "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds,samples_per_second",
          lines[0])
    check(len(lines) == epochs + 1, f"{len(lines)} lines")
    rows = 1000
    for e, line in enumerate(lines[1:], start=1):
        fields = line.split(",")
        want = [str(e), "%.9g" % ((rows / e) / rows), "%.6f" % ((rows * e // (e + 1)) / rows),
                "%.9g" % ((2 * rows / e) / rows), "%.6f" % ((rows * (e - 1) // e) / rows),
                "%.9g" % (0.25 / e)]
        check(fields[:6] == want, f"row {e}: {line}, wanted {want}")
        check(re.fullmatch(r"\d+\.\d{3}", fields[6]) and re.fullmatch(r"\d+", fields[7]), line)


@test
def clock_reads():
    """A step of a fraction of a microsecond must not come with a clock read (34 ns under
    kvm-clock): the loop reads the tick clock (util.h) once an epoch, and clock_gettime only
    while that clock measures its slope (its first 10 ms) and when it steers (ten times a
    second). The trial of how to ask for the next batch (two_ways.h) times its 576 steps
    and then no more; a batch that holds every row asks for nothing and is never timed.
    rt_logreg_clocks counts every clock_gettime of libnnrt (clock_count.c)."""
    write_csv("d.csv", logreg_rows(8))
    env = dict(os.environ, CLOCK_READS_FILE="reads")
    # one step an epoch (the batch is the whole set), then eight (a batch of one row)
    for batch, epochs in ((8, 1_000_000), (1, 100_000)):
        steps = epochs * (8 // batch)
        args = ["train", "--data", "d.csv", "--batch", str(batch), "--epochs", str(epochs),
                "--shuffle", "off", "--quiet", "--no-save"]
        r = subprocess.run([exe("logreg_clocks"), *args], capture_output=True, text=True,
                           env=env, timeout=120)
        check(r.returncode == 0, r.stdout + r.stderr)
        reads = int(open("reads").read())
        # A read every step would be at least one a step. Here each run took about 0.1-0.2 s
        # and read the clock 1.6% (batch 1) and 3.2% (batch 8) as often as it stepped,
        # nearly all in the tick clock's first 10 ms: half leaves room for a machine several
        # times faster.
        check(reads < steps // 2, f"batch {batch}: {reads} clock reads in {steps} steps")


@test
def predict():
    weights = {"lin.W": ("F32", [2, 1], [1.0, -2.0]), "lin.b": ("F32", [1], [0.5])}
    write_safetensors("w32", weights)
    write_safetensors("w64", {k: ("F64", s, v) for k, (_, s, v) in weights.items()})
    wanted = [sigmoid(0.5), sigmoid(1 - 2 + 0.5), sigmoid(-0.25 + 0.5 + 0.5)]
    inputs = "0,0\n1,1\n-0.25,-0.25\n"
    write("in.csv", inputs)
    for w in ("w32", "w64"):
        for args, stdin in [([], "x0,x1\n" + inputs), ([], inputs), (["--data", "in.csv"], ""),
                            (["--data", "-"], inputs)]:
            r = run("logreg", "predict", "--weights", w, *args, stdin=stdin.encode())
            got = [float(line) for line in r.out.splitlines()]
            check(len(got) == 3 and all(close(a, b, 1e-6) for a, b in zip(got, wanted)),
                  f"{w} {args}: {r.out}")
            check(all(re.fullmatch(r"[-+0-9.e]+", line) for line in r.out.splitlines()), r.out)
    check(run("logreg", "predict", "--weights", "w32").out == "", "empty input")
    expect_error("logreg", ["predict", "--weights", "w32"],
                 "<stdin>:2: error: expected 2 columns (the inputs' values, in declaration order), "
                 "found 3\n  hint: predict reads the inputs only: drop the columns after column 1 "
                 "(cut -d, -f1-2 FILE | ./rt_logreg predict), or pass --loss to read them as the "
                 "targets and print each row's loss", stdin=b"x0,x1,y\n1,2,3\n")
    # The row before a bad one is answered (predict_streams).
    r = run("logreg", "predict", "--weights", "w32", stdin=b"1,2\n1,\n", expect=1)
    check(r.err == "<stdin>:2: error: column 1 is empty\n" and r.out.endswith("\n") and
          close(float(r.out), sigmoid(1 - 4 + 0.5), 1e-6), r.describe())

    write_csv("s.csv", softmax_rows())
    run("softmax", "train", "--data", "s.csv", "--save", "s", "--quiet")
    out = run("softmax", "predict", "--weights", "s", stdin=b"2,0,0,0\n0,0,2,0\n").out
    rows = [[float(v) for v in line.split(",")] for line in out.splitlines()]
    check(len(rows) == 2 and all(len(r) == 3 and close(sum(r), 1, 1e-9) for r in rows), out)
    check(rows[0].index(max(rows[0])) == 0 and rows[1].index(max(rows[1])) == 2, out)


def answer_line(proc, timeout=20):
    """The next line proc writes on its stdout, waiting at most timeout seconds."""
    import select
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    check(ready, f"no answer within {timeout} s")
    return proc.stdout.readline().decode()


@test
def predict_streams():
    """predict answers each row as it comes: rows written one at a time on a pipe get their
    lines before the input ends; rows before a bad one are printed, the error names its
    line counted over the whole input; memory stays small however long the input."""
    write_safetensors("w", LOGREG_W)
    # One row at a time, each answer read before the next row is written.
    for args, rows, wanted in [
            ([], ["x0,x1", "0,0", "1,1", "-0.25,-0.25"],
             [sigmoid(0.5), sigmoid(-0.5), sigmoid(0.75)]),
            (["--loss"], ["0,0,1", "1,1,0"],
             [-math.log(sigmoid(0.5)), -math.log(1 - sigmoid(-0.5))])]:
        proc = subprocess.Popen([exe("logreg"), "predict", "--weights", "w", *args],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            got = []
            for row in rows:
                proc.stdin.write(row.encode() + b"\n")
                proc.stdin.flush()
                if row[0].isalpha():
                    continue  # the header: nothing to answer
                got.append(float(answer_line(proc)))
            proc.stdin.close()
            check(proc.wait(timeout=60) == 0 and proc.stdout.read() == b"",
                  f"{args}: {proc.stderr.read()}")
        finally:
            proc.kill()
        check(all(close(a, b, 1e-6) for a, b in zip(got, wanted)) and len(got) == len(wanted),
              f"{args}: {got}, wanted {wanted}")

    # 60000 rows (many pieces and batches), then a bad one: every row before it answered,
    # as the whole input without the bad row would be, and the error at its line.
    rows = [f"{(i % 97) / 7 - 6},{(i % 89) / 5 - 8}" for i in range(60000)]
    good = "x0,x1\n" + "\n".join(rows) + "\n"
    write("good.csv", good)
    answers = run("logreg", "predict", "--weights", "w", "--data", "good.csv").out
    check(answers.count("\n") == 60000, f"{answers.count(chr(10))} rows answered")
    check(run("logreg", "predict", "--weights", "w", stdin=good.encode()).out == answers,
          "rows from standard input are answered otherwise than from a file")
    write("bad.csv", good + "1,x\n2,3\n")
    for args, stdin, path in [(["--data", "bad.csv"], b"", "bad.csv"),
                              ([], (good + "1,x\n2,3\n").encode(), "<stdin>")]:
        r = run("logreg", "predict", "--weights", "w", *args, stdin=stdin, expect=1)
        check(r.err == f"{path}:60002: error: column 1: 'x' is not a number\n", r.err)
        check(r.out == answers, f"{args}: {r.out.count(chr(10))} rows before the error")

    # Whole inputs still: an IDX file and gzip'd CSV from standard input.
    pixels, labels = idx_samples(30)
    write("img", idx_bytes([30, 2, 2], pixels))
    write("lab", idx_bytes([30], labels))
    run("softmax_idx", "train", "--data", "img,lab", "--save", "s", "--epochs", "2", "--quiet")
    from_file = run("softmax_idx", "predict", "--weights", "s", "--data", "img").out
    check(from_file.count("\n") == 30, from_file)
    check(run("softmax_idx", "predict", "--weights", "s", stdin=open("img", "rb").read()).out
          == from_file, "an IDX file on standard input")
    import gzip
    check(run("logreg", "predict", "--weights", "w", stdin=gzip.compress(good.encode())).out
          == answers, "gzip'd CSV on standard input")

    if sanitized():
        return
    # 40 MB of rows through a pipe: the memory of a batch, not of the input. (The peak a
    # child reports includes the test's own, from before its exec: compared to one row's.)
    def peak_of_rows(copies):
        with open("many.out", "wb") as out:
            proc = subprocess.Popen([exe("logreg"), "predict", "--weights", "w"],
                                    stdin=subprocess.PIPE, stdout=out, stderr=subprocess.PIPE)
            for _ in range(copies):
                proc.stdin.write(b"0.25,-0.5\n" * 100000)
            proc.stdin.close()
            _, status, usage = os.wait4(proc.pid, 0)
        check(os.waitstatus_to_exitcode(status) == 0, proc.stderr.read())
        with open("many.out", "rb") as f:
            first, size = f.readline(), os.path.getsize("many.out")
        check(close(float(first), sigmoid(0.25 + 1 + 0.5), 1e-6) and
              size == copies * 100000 * len(first), f"{size} bytes of answers, the first {first}")
        return usage.ru_maxrss * 1024
    few, many = peak_of_rows(1), peak_of_rows(40)
    check(many - few < 8 * MB, f"predict of 40 MB of rows took {many} bytes, of 1 MB {few}")
    # A line that never ends stops at the limit of a data file.
    space = 1 << 30
    limit = memory_budget(space) // 2

    def limited():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (space, space))
    proc = subprocess.Popen([exe("logreg"), "predict", "--weights", "w"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limited)
    try:
        for _ in range(limit // MB + 16):  # and then the end: a line past the limit all the same
            proc.stdin.write(b"1" * MB)
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode()
    check(proc.wait(timeout=60) == 1 and err == f"<stdin>: error: too large: a line of more than "
          f"the {limit} bytes a data file may have here (half the memory this process may use)\n",
          err)


@test
def eval_streams():
    """eval reads CSV a batch at a time: a file, standard input ('--data -') and a pipe that
    pauses in mid-batch give the same loss and accuracy, those of the rows by hand; every
    batch but the last is full however the input pauses (so the sums add up as training's
    validation adds them); a bad row's line is counted over the whole input; memory stays
    that of a batch however long the input."""
    write_safetensors("w", LOGREG_W)
    rows = [((i % 97) / 7 - 6, (i % 89) / 5 - 8, i % 2) for i in range(3000)]
    lines = [f"{a},{b},{y}\n" for a, b, y in rows]
    text = "x0,x1,y\n" + "".join(lines)
    write("d.csv", text)

    def row_at(i):  # where row i starts in text
        return len("x0,x1,y\n") + sum(map(len, lines[:i]))

    def bce(a, b, y):  # LOGREG_W: z = a - 2b + 0.5
        p = sigmoid(a - 2 * b + 0.5)
        return -math.log(p if y else 1 - p)
    loss = sum(bce(*r) for r in rows) / len(rows)
    accuracy = sum((sigmoid(a - 2 * b + 0.5) > 0.5) == (y == 1) for a, b, y in rows) / len(rows)
    trace = {"NNRT_TEST_TRACE_FORWARD": "1"}
    batches = "forward 1024/1024\nforward 1024/1024\nforward 952/1024\n"
    whole = run("logreg", "eval", "--weights", "w", "--data", "d.csv", env=trace)
    got = values(whole.out)
    check(close(got["loss"], loss, 1e-5) and got["accuracy"] == round(accuracy, 4),
          f"{whole.out} wanted loss {loss} accuracy {accuracy}")
    check(whole.err == batches, whole.err)
    r = run("logreg", "eval", "--weights", "w", "--data", "-", stdin=text.encode(), env=trace)
    check(r.out == whole.out and r.err == batches, r.describe())
    # Pauses in mid-batch (rows 500, 1500 and 2100 split in two) do not cut a batch short.
    cuts = [row_at(i) + 3 for i in (500, 1500, 2100)]
    proc = subprocess.Popen([exe("logreg"), "eval", "--weights", "w", "--data", "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **trace})
    try:
        for start, end in zip([0] + cuts, cuts + [len(text)]):
            proc.stdin.write(text[start:end].encode())
            proc.stdin.flush()
            time.sleep(0.15)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    check(out.decode() == whole.out and err.decode() == batches, f"{out!r}\n{err!r}")
    # On a terminal a status line says how far it got, erased at the end; --quiet: none.
    for quiet, wanted in [([], "\reval: 2048 rows\x1b[K"), (["--quiet"], "")]:
        main_fd, sub_fd = os.openpty()
        proc = subprocess.Popen([exe("logreg"), "eval", "--weights", "w", "--data", "-", *quiet],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=sub_fd)
        os.close(sub_fd)
        try:
            for start, end in [(0, row_at(1100)), (row_at(1100), row_at(2200)),
                               (row_at(2200), len(text))]:
                proc.stdin.write(text[start:end].encode())
                proc.stdin.flush()
                time.sleep(0.4)
            proc.stdin.close()
            out = proc.stdout.read().decode()
            proc.wait(timeout=60)
            shown = b""
            while True:
                try:
                    piece = os.read(main_fd, 4096)
                except OSError:  # EIO: the terminal's other end is closed
                    break
                if not piece:
                    break
                shown += piece
        finally:
            proc.kill()
            os.close(main_fd)
        shown = shown.decode()
        check(out == whole.out, out)
        check(shown.startswith(wanted) and shown.endswith("\r\x1b[K" if wanted else ""),
              f"{quiet}: the terminal showed {shown!r}")
    # A small file: one batch of its rows.
    write("few.csv", "".join(lines[:10]))
    r = run("logreg", "eval", "--weights", "w", "--data", "few.csv", env=trace)
    check(r.err == "forward 10/10\n", r.err)
    # A bad row after 2500: the error at its line, nothing printed.
    bad = text[:row_at(2500)] + "1,x,0\n"
    for args, stdin, path in [(["--data", "bad.csv"], b"", "bad.csv"),
                              (["--data", "-"], bad.encode(), "<stdin>")]:
        write("bad.csv", bad)
        expect_error("logreg", ["eval", "--weights", "w", *args],
                     f"{path}:2502: error: column 1: 'x' is not a number", stdin=stdin)
    # A pipe's text is checked as it comes; a file's NUL is the field it is in, as for train.
    expect_error("logreg", ["eval", "--weights", "w", "--data", "-"],
                 "<stdin>:byte 4: error: a NUL byte: this is not CSV text", stdin=b"0.1,\0,1\n")
    write("nul.csv", b"0.1,\0,1\n")
    for command in (["eval", "--weights", "w"], ["train"]):
        expect_error("logreg", [*command, "--data", "nul.csv"],
                     "nul.csv:1: error: column 1: '\\u0000' is not a number (the first line is "
                     "data, not a header: most of its fields are numbers)")

    if sanitized():
        return

    def peak_of_rows(copies):
        proc = subprocess.Popen([exe("logreg"), "eval", "--weights", "w", "--data", "-"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        for _ in range(copies):
            proc.stdin.write(b"0.25,-0.5,1\n" * 100000)
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        out = proc.stdout.read().decode()
        check(os.waitstatus_to_exitcode(status) == 0, proc.stderr.read())
        check(close(values(out)["loss"], -math.log(sigmoid(0.25 + 1 + 0.5)), 1e-5), out)
        return usage.ru_maxrss * 1024
    few, many = peak_of_rows(1), peak_of_rows(40)
    check(many - few < 8 * MB, f"eval of 48 MB of rows took {many} bytes, of 1.2 MB {few}")


@test
def stdin_data():
    """train --data -: standard input, read whole as a file is (gzip'd too), trains the same
    weights; the same for --validation-data -; both at once, standard input read twice, is a
    usage error."""
    write_csv("l.csv", logreg_rows(), header="x0,x1,y")
    text = open("l.csv", "rb").read()
    run("logreg", "train", "--data", "l.csv", "--save", "file", "--quiet")
    import gzip
    for stdin in (text, gzip.compress(text)):
        run("logreg", "train", "--data", "-", "--save", "piped", "--quiet", stdin=stdin)
        check(open("piped", "rb").read() == open("file", "rb").read(),
              "train --data - saved other weights than --data l.csv")
    held = run("logreg", "train", "--data", "l.csv", "--validation-data", "l.csv").err
    piped = run("logreg", "train", "--data", "l.csv", "--validation-data", "-", stdin=text).err
    strip = lambda err: re.sub(r"[0-9.]+s  \d+ samples/s", "", err)  # the times differ
    check("val loss" in held and strip(piped) == strip(held), f"{held}\n{piped}")
    expect_error("logreg", ["train", "--data", "-", "--validation-data", "-"],
                 "rt_logreg: error: --data - and --validation-data - both name standard input, "
                 "which can be read once: give one of them a file", 2)
    expect_error("logreg", ["train", "--data", "-"], "<stdin>:1: error: the file is empty")
    # gradcheck's batch: the first rows of standard input, named so
    rows = "".join(f"{i / 7 - 1},{i / 5 - 2},{1 - i / 9},{i % 2}\n" for i in range(12))
    r = run("mlp", "gradcheck", "--data", "-", stdin=rows.encode())
    check("batch: the first 8 rows of standard input\n" in r.out, r.out)


def random_rows_text(rng, loss):
    """A CSV text for logreg's predict (or predict --loss: a third column, the target) with
    what the reader must carry from piece to piece: a BOM, a header, CRLF ends, blank lines,
    a last line without its end, and at times a bad row, a short row or a stray header;
    and the number of rows when it has nothing bad (else None)."""
    eol = "\r\n" if rng.random() < 0.3 else "\n"
    lines, rows = [], 0
    if rng.random() < 0.5:
        lines.append("x0,x1,y" if loss else "x0 , x1")
    for _ in range(rng.randrange(1, 40)):
        row = [f"{rng.uniform(-3, 3):.{rng.randrange(1, 9)}g}" for _ in range(2)]
        if loss:
            row.append(str(rng.randrange(2)))
        lines.append(",".join(row))
        rows += 1
        if rng.random() < 0.1:
            lines.append("")
    if rng.random() < 0.3:  # something bad, somewhere
        where = rng.randrange(len(lines) + 1)
        lines.insert(where, rng.choice(["1,x" + ",1" * loss, "1" + ",0" * loss, "a,b",
                                        "1,2,3,4", "1e999,0" + ",1" * loss, ",", "1,,0"]))
        rows = None
    text = eol.join(lines) + (eol if rng.random() < 0.8 else "")
    return ("\ufeff" if rng.random() < 0.2 else "") + text, rows


@test
def predict_in_pieces():
    """Rows written to predict's standard input a few bytes at a time, now and then after a
    pause longer than predict waits for a batch to fill, print what the same text as a
    file prints: the same lines, warnings, error and exit status; a text with nothing bad
    gets a line for each of its rows."""
    rng = random.Random(11)
    write_safetensors("w", LOGREG_W)
    for case in range(40):
        args = ["--loss"] if case % 3 == 2 else []
        text, rows = random_rows_text(rng, bool(args))
        text = text.encode()
        write("rows.csv", text)
        whole = run("logreg", "predict", "--weights", "w", "--data", "rows.csv", *args,
                    expect=None)
        check(rows is None or (whole.code == 0 and whole.out.count("\n") == rows),
              f"case {case} {text!r}: {rows} rows\n{whole.describe()}")
        proc = subprocess.Popen([exe("logreg"), "predict", "--weights", "w", *args],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

        def feed():
            try:
                at = 0
                while at < len(text):
                    n = rng.randrange(1, 12)
                    proc.stdin.write(text[at:at + n])
                    proc.stdin.flush()
                    at += n
                    if rng.random() < 0.02:
                        time.sleep(0.08)  # past the 50 ms a batch waits for more rows
                proc.stdin.close()
            except BrokenPipeError:
                pass
        writer = threading.Thread(target=feed)
        writer.start()
        out, err = proc.stdout.read(), proc.stderr.read()  # a few lines of stderr at most
        writer.join()
        code = proc.wait(timeout=60)
        got = (code, out.decode(), err.decode().replace("<stdin>", "rows.csv"))
        check(got == (whole.code, whole.out, whole.err),
              f"case {case} {text!r}:\n  in pieces: {got}\n  whole:     "
              f"{(whole.code, whole.out, whole.err)}")


@test
def init_weights():
    write_csv("d.csv", logreg_rows())
    first = run("logreg", "train", "--data", "d.csv", "--save", "a", "--quiet").out
    again = run("logreg", "train", "--data", "d.csv", "--epochs", "0", "--init-weights", "a",
                "--save", "b", "--quiet").out
    check(open("a", "rb").read() == open("b", "rb").read(), "round trip changed the weights")
    check(first == again, f"final lines differ:\n{first}{again}")
    # Training on from saved weights, and from F64 weights in an F32 model.
    _, tensors = read_safetensors("a")
    write_safetensors("a64", {k: ("F64", s, v) for k, (_, s, v) in tensors.items()})
    from64 = run("logreg", "train", "--data", "d.csv", "--epochs", "0", "--init-weights", "a64",
                 "--no-save").out
    check(from64 == first, f"F64 weights:\n{from64}")
    more = train_lines(run("logreg", "train", "--data", "d.csv", "--epochs", "5",
                           "--init-weights", "a", "--no-save", "--quiet").out)
    check(more["final accuracy"] >= 0.95, more)


@test
def partial_init_weights():
    """--init-weights loads the params the file has, by name; the others keep the values the
    initialisers give them with this seed, and a warning names both; a tensor of the right
    name and the wrong shape, or a file with no param at all, is refused."""
    write_csv("d.csv", logreg_rows())
    run("logreg", "train", "--data", "d.csv", "--save", "a", "--quiet")
    run("logreg", "train", "--data", "d.csv", "--epochs", "0", "--seed", "5", "--save", "fresh",
        "--quiet")
    _, trained = read_safetensors("a")
    _, fresh = read_safetensors("fresh")
    write_safetensors("w", {"lin.W": trained["lin.W"], "other": ("F32", [1], [0.0])})
    r = run("logreg", "train", "--data", "d.csv", "--epochs", "0", "--seed", "5",
            "--init-weights", "w", "--save", "b", "--quiet")
    check(r.err == "w: warning: --init-weights loaded 1 of the model's 2 params (lin.W); these "
          "start from their initialisers: lin.b\n"
          "w: warning: tensor 'other' is not a param of the model; ignored\n", r.err)
    _, b = read_safetensors("b")
    check(b["lin.W"] == trained["lin.W"] and b["lin.b"] == fresh["lin.b"], (b, trained, fresh))
    check(b["lin.b"] != trained["lin.b"], "the seed's lin.b, not the file's")
    # search loads the file for each of its trials, and says so once.
    r = run("logreg", "search", "--data", "d.csv", "--epochs", "1", "--lr", "0.1,0.2,0.3",
            "--init-weights", "w", "--no-save", "--quiet")
    check(r.err.count("--init-weights loaded 1 of") == 1 and r.err.count("'other'") == 1, r.err)
    # A whole file: nothing said, as before.
    r = run("logreg", "train", "--data", "d.csv", "--epochs", "0", "--init-weights", "a",
            "--no-save", "--quiet")
    check(r.err == "", r.err)
    write_safetensors("w", {"lin.W": ("F32", [2], [1.0, 2.0])})
    expect_error("logreg", ["train", "--data", "d.csv", "--init-weights", "w"],
                 "w: error: tensor 'lin.W' has shape [2], the model wants [2, 1]")
    write_safetensors("w", {"W": ("F32", [2, 1], [1.0, 2.0])})
    expect_error("logreg", ["train", "--data", "d.csv", "--init-weights", "w"],
                 "w: error: --init-weights: the file has none of the params of model 'logreg' "
                 "(lin.W, lin.b); its tensors' names must be the params' names")
    # eval and predict still need every param.
    write_safetensors("w", {"lin.W": trained["lin.W"]})
    expect_error("logreg", ["eval", "--data", "d.csv", "--weights", "w"],
                 "w: error: missing tensor 'lin.b'")


@test
def set_values():
    """--set NAME=X starts params at X (a tensor filled), after the initialisers and
    --init-weights; repeated or in a list, the later wins; globs name several params."""
    write_csv("d.csv", logreg_rows())

    def start(*args):
        run("logreg", "train", "--data", "d.csv", "--epochs", "0", "--save", "s", "--quiet",
            *args)
        _, t = read_safetensors("s")
        return t["lin.W"][2], t["lin.b"][2]

    check(start("--set", "lin.b=0.25,lin.W=-1.5") == ((-1.5, -1.5), (0.25,)), "--set")
    check(start("--set", "lin.b=1", "--set", "lin.b=2")[1] == (2.0,), "the later --set wins")
    check(start("--set", "lin.*=0.5") == ((0.5, 0.5), (0.5,)), "a glob")
    run("logreg", "train", "--data", "d.csv", "--save", "a", "--quiet")
    _, trained = read_safetensors("a")
    check(start("--init-weights", "a", "--set", "lin.b=3") == (trained["lin.W"][2], (3.0,)),
          "--set after --init-weights")
    # A model without inputs: the trace's first row is the start.
    r = run("parabola", "train", "--set", "x=3", "--trace", "x", "--steps", "1", "--no-save",
            "--quiet")
    check(r.out.splitlines()[1].startswith("0,3,"), r.out)
    for args, message in [
        (["--set", "q=1"], "--set: model 'logreg' has no param 'q' (its params: lin.W, lin.b)"),
        (["--set", "lin.b=x"], "--set: 'lin.b=x' is not NAME=number (a finite number that a "
         "float holds)"),
        (["--set", "lin.b=1e39"], "--set: 'lin.b=1e39' is not NAME=number (a finite number "
         "that a float holds)"),
        (["--set", "lin.b"], "--set: 'lin.b' is not NAME=number (such as x=0.3)"),
        (["--set", "lin.b=1", "--resume", "a"], "--set starts params at a value; a resumed run "
         "continues from its checkpoint's: give --resume FILE or --set, not both"),
    ]:
        expect_error("logreg", ["train", "--data", "d.csv", *args], "rt_logreg: error: " + message,
                     code=2)

    # search sweeps start values: a list or a range after NAME=, a dim per param.
    r = run("logreg", "search", "--data", "d.csv", "--epochs", "1", "--strategy", "grid",
            "--set", "lin.b=-1,0,1", "--set", "lin.W=-2..2:2", "--save", "best", "--quiet")
    lines = r.out.splitlines()
    check(lines[0].split() == ["rank", "set", "set", "val_loss", "val_accuracy"], r.out)
    rows = sorted(tuple(line.split()[1:3]) for line in lines[1:7])
    check(rows == sorted((f"lin.b={b}", f"lin.W={w}") for b in ("-1", "0", "1")
                         for w in ("-2", "2")), rows)
    m = re.fullmatch(r"best: --set (lin.b=\S+) --set (lin.W=\S+)", lines[-1])
    check(m, lines[-1])
    run("logreg", "train", "--data", "d.csv", "--epochs", "1", "--validation", "0.2", "--set",
        m.group(1), "--set", m.group(2), "--save", "again", "--quiet")
    check(open("best", "rb").read() == open("again", "rb").read(),
          "search's best weights are what train with its values saves")


@test
def freeze():
    """--freeze: the frozen params' bytes are those they started with, the others train; with
    every optimizer, penalties, clipping and workers; the frozen params' optimizer state stays
    zero; refused with --hogwild."""
    write_csv("d.csv", mlp_rows(40))
    base = ["--data", "d.csv", "--quiet", "--seed", "3"]
    run("mlp", "train", *base, "--epochs", "0", "--save", "start")
    _, start = read_safetensors("start")
    names = list(help_optimizers())
    check(len(names) >= 8, names)
    with_momentum = help_readers("momentum")
    for optimizer in names:
        momentum = ["--momentum", "0.9"] if optimizer in with_momentum else []
        for extra in ([], ["--l2", "0.01", "--l1", "0.001", "--clip", "0.5", *momentum],
                      ["--workers", "2"]):
            args = [*base, "--epochs", "3", "--optimizer", optimizer, "--lr", "0.05", *extra]
            run("mlp", "train", *args, "--freeze", "W1,b2", "--save", "frozen",
                "--checkpoint-every", "3", "--checkpoint", "c")
            _, frozen = read_safetensors("frozen")
            what = f"--optimizer {optimizer} {' '.join(extra)}"
            check(frozen["W1"] == start["W1"] and frozen["b2"] == start["b2"],
                  f"{what}: a frozen param changed")
            check(frozen["W2"] != start["W2"] and frozen["b1"] != start["b1"],
                  f"{what}: the others did not train")
            _, state = read_safetensors("c")
            for name, (_, _, v) in state.items():
                if name.startswith("optimizer.") and name.endswith((".W1", ".b2")):
                    check(all(x == 0 for x in v), f"{what}: {name} is not zero: {v}")
    # Globs, and the train block's list: freeze adds up.
    run("mlp", "train", *base, "--epochs", "2", "--freeze", "W*", "--freeze", "b1",
        "--save", "frozen")
    _, frozen = read_safetensors("frozen")
    check({k for k in start if frozen[k] == start[k]} == {"W1", "W2", "b1"}, frozen)
    expect_error("mlp", ["train", *base, "--freeze", "W*,b*"], "rt_mlp: error: --freeze W*,b* "
                 "freezes every param of model 'mlp', which has no other state: training would "
                 "change nothing ('eval' measures a model as it is)", code=2)
    expect_error("mlp", ["train", *base, "--freeze", "W3"],
                 "rt_mlp: error: --freeze: model 'mlp' has no param 'W3' (its params: W1, b1, W2, "
                 "b2)\n  hint: did you mean W1?", code=2)
    expect_error("mlp", ["train", *base, "--freeze", "W1", "--hogwild", "2", "--optimizer",
                         "sgd", "--l2="],
                 "rt_mlp: error: --freeze cannot be honoured with --hogwild: its threads run the "
                 "model's fused sgd step, which updates every param; train without --hogwild",
                 code=2)


@test
def bad_weights():
    good = {"lin.W": ("F32", [2, 1], [1.0, -2.0]), "lin.b": ("F32", [1], [0.5])}
    cases = [
        ({"lin.W": ("F32", [1, 2], [1.0, -2.0]), "lin.b": good["lin.b"]},
         "tensor 'lin.W' has shape [1, 2], the model wants [2, 1] (its transpose: nnc's dense W "
         "is [in, out], PyTorch's nn.Linear weight [out, in]; docs/runtime.md, \"Dense weights "
         "and PyTorch\")"),
        ({"lin.W": ("F32", [2], [1.0, -2.0]), "lin.b": good["lin.b"]},
         "tensor 'lin.W' has shape [2], the model wants [2, 1]"),
        ({"lin.W": good["lin.W"]}, "missing tensor 'lin.b'"),
        ({"lin.W": good["lin.W"], "lin.b": ("F16", [1], [0.5])},
         "tensor 'lin.b' has dtype F16; only F32 and F64 are read"),
    ]
    for tensors, message in cases:
        write_safetensors("w", tensors)
        expect_error("logreg", ["predict", "--weights", "w"], "w: error: " + message)
        if "missing" not in message:  # --init-weights loads the params a file has: below
            expect_error("logreg", ["train", "--init-weights", "w", "--data", "w"],
                         "w: error: " + message)
    raw_cases = [
        (b"abc", "w: error: not a safetensors file: only 3 bytes"),
        (struct.pack("<Q", 1000) + b"{}" + bytes(10),
         "w: error: not a safetensors file: the header length 1000 runs past the end of the file "
         "(20 bytes)"),
        (struct.pack("<Q", 6) + b"{nope}", "w:byte 9: error: safetensors header: expected '\"', found 'n'"),
        (struct.pack("<Q", 4) + b"{\"a\"", "w:byte 12: error: safetensors header: expected ':', found the end"),
        (struct.pack("<Q", 3) + b"{}x", "w:byte 10: error: safetensors header: unexpected 'x' after the header object"),
        (struct.pack("<Q", 2) + b"{}", "w: error: missing tensor 'lin.W'"),
        (struct.pack("<Q", 1) + b"[", "w:byte 8: error: safetensors header: expected '{', found '['"),
    ]
    for content, message in raw_cases:
        write("w", content)
        expect_error("logreg", ["eval", "--weights", "w", "--data", "w"], message)
    header = json.dumps({
        "lin.W": {"dtype": "F32", "shape": [2, 1], "data_offsets": [0, 8]},
        "lin.b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 16]}})
    write_safetensors("w", good, header_override=header)
    expect_error("logreg", ["predict", "--weights", "w"],
                 "w:byte 76: error: safetensors header: tensor 'lin.b' has data_offsets [8, 16], "
                 "but shape [1] of F32 needs 4 bytes")
    write_safetensors("w", {**good, "extra": ("F32", [1], [0.0])})
    r = run("logreg", "predict", "--weights", "w", stdin=b"0,0\n")
    check(r.err == "w: warning: tensor 'extra' is not a param of the model; ignored\n", r.err)
    check(close(float(r.out), sigmoid(0.5), 1e-6), r.out)
    expect_error("logreg", ["predict", "--weights", "nope"],
                 "nope: error: cannot open: No such file or directory")
    expect_error("logreg", ["eval", "--data", "w"],
                 "logreg.safetensors: error: cannot open: No such file or directory")


@test
def weights_command():
    """PROG weights FILE: each tensor's name, shape, dtype, what it is, and its values (or a
    summary of many); --name picks tensors, --all prints every value; a checkpoint's training
    state is named as such; a file that is not safetensors is an error."""
    write_safetensors("w", {"x": ("F64", [], [0.5]), "v": ("F64", [10], PARABOLA_V),
                            "big": ("F32", [4, 25], [float(i) for i in range(100)]),
                            "optimizer.velocity.x": ("F64", [], [0.25]),
                            "ids": ("I64", [2, 2], [3, -1, 0, 7])},
                      metadata={"model": "parabola", "producer": "nnc"})
    r = run("parabola", "weights", "w")
    check(r.err == "", r.err)
    std = math.sqrt((100 ** 2 - 1) / 12)
    lines = r.out.splitlines()
    check(lines[0] == "w: weights of model 'parabola', saved by nnc; 5 tensors", lines[0])
    check(re.fullmatch(r"name +shape +dtype +what +values", lines[1]), lines[1])
    rows = {re.split(r"  +", line)[0]: re.split(r"  +", line)[1:] for line in lines[2:]}
    check(rows["x"] == ["scalar", "F64", "param", "0.5"], rows["x"])
    check(rows["v"] == ["[10]", "F64", "param",
                        "[0.3, -0.2, 0.25, 0.9, -0.75, 0.5, 0.125, -1, 0.6, 0.05]"], rows["v"])
    check(rows["big"] == ["[4, 25]", "F32", "not a param of model 'parabola'",
                          f"100 values: mean 49.5, std {std:.6g}, min 0, max 99; "
                          "first 0, 1, 2, 3, 4, ..."], rows["big"])
    check(rows["optimizer.velocity.x"] == ["scalar", "F64", "optimizer's velocity for x", "0.25"],
          rows["optimizer.velocity.x"])
    check(rows["ids"] == ["[2, 2]", "I64", "not a param of model 'parabola'", "[[3, -1], [0, 7]]"],
          rows["ids"])
    check(len(lines) == 7, r.out)  # no metadata beyond model and producer
    # The columns line up: every value starts where the header's "values" does.
    at = lines[1].index("values")
    check(all(line[at - 2:at] == "  " and line[at] != " " for line in lines[2:]), r.out)

    # --name (globs, a comma list) and --all: a row of the last axis a line.
    r = run("parabola", "weights", "w", "--name", "b*,x", "--all")
    lines = r.out.splitlines()
    check([re.split(r"  +", line)[0] for line in lines[2:4]] == ["x", "big"], r.out)
    check(lines[4:] == [f"  [{i}] " + ", ".join(str(25 * i + k) for k in range(25))
                        for i in range(4)], r.out)
    expect_error("parabola", ["weights", "w", "--name", "q"],
                 "rt_parabola: error: --name: w has no tensor 'q' (its tensors: x, v, big, "
                 "optimizer.velocity.x, ids)", code=2)
    usage = run("parabola", "weights", "--help").out
    check(usage.startswith("usage: rt_parabola weights [FILE] [OPTIONS]\n") and
          re.search(r"^  --name NAME,\.\.\. +only these tensors .*\(default: every tensor\)$", usage,
                    re.M), usage)
    check("  weights    print the tensors of a safetensors file" in run("parabola", "--help").out,
          "the commands of --help")
    # --weights FILE is the same; the default is what train saves.
    check(run("parabola", "weights", "--weights", "w").out == run("parabola", "weights", "w").out,
          "--weights FILE")
    run("parabola", "train", "--steps", "3", "--quiet")
    r = run("parabola", "weights")
    check(r.out.startswith("parabola.safetensors: weights of model 'parabola', saved by nnc; "
                           "2 tensors\n"), r.out)
    _, saved = read_safetensors("parabola.safetensors")
    x_line = [line for line in r.out.splitlines() if line.startswith("x ")][0]
    check(float(x_line.split()[-1]) == saved["x"][2][0], x_line)

    # A checkpoint: its heading says where training was, and each tensor what it is.
    run("parabola", "train", "--steps", "4", "--checkpoint-every", "2", "--no-save", "--quiet")
    r = run("parabola", "weights", "parabola.ckpt.safetensors")
    lines = r.out.splitlines()
    check(lines[0] == "parabola.ckpt.safetensors: a checkpoint of model 'parabola', saved by nnc "
          "after epoch 4, step 4 (optimizer sgd): the weights and the training state --resume "
          "continues from; 6 tensors", lines[0])
    what = {re.split(r"  +", line)[0]: re.split(r"  +", line)[3] for line in lines[2:8]}
    check(what == {"x": "param", "v": "param", "optimizer.velocity.x": "optimizer's velocity for x",
                   "optimizer.velocity.v": "optimizer's velocity for v",
                   "train.order": "the training rows' order this epoch",
                   "train.history": "per epoch: lr, loss, acc, val loss, val acc, epoch"}, what)
    check(lines[8] == "metadata:" and "  nnrt.epoch = 4  (epochs completed)" in lines, r.out)

    # Not safetensors: an error that says so, exit 1.
    write_csv("d.csv", logreg_rows(3))
    expect_error("parabola", ["weights", "d.csv"],
                 "d.csv: error: not a safetensors file: the header length "
                 f"{struct.unpack('<Q', open('d.csv', 'rb').read()[:8])[0]} runs past the end of "
                 f"the file ({os.path.getsize('d.csv')} bytes)")
    expect_error("parabola", ["weights", "nope"], "nope: error: cannot open: No such file or directory")


@test
def parabola():
    r = run("parabola", "train", "--log", "log.csv")
    lines = r.out.splitlines()
    check(len(lines) == 3, r.out)
    m = re.fullmatch(r"final loss (\S+)", lines[0])
    check(m and abs(float(m.group(1)) - 3.25) < 1e-9, lines[0])
    m = re.fullmatch(r"x = (\S+)", lines[1])
    check(m and abs(float(m.group(1)) - 0.5) < 1e-6, lines[1])
    m = re.fullmatch(r"v = \[((?:\S+, ){7}\S+), \.\.\.\]", lines[2])
    check(m, lines[2])
    check(all(abs(float(s) - i / 10) < 1e-6 for i, s in enumerate(m.group(1).split(", "))),
          lines[2])
    err = r.err.splitlines()
    check(re.fullmatch(r"step 1/200  loss [-+0-9.e]+  lr 0\.05  \d+\.\d\ds", err[0]), err[0])
    check(re.fullmatch(r"step 200/200  loss 3\.25  lr 0\.05  \d+\.\d\ds", err[-2]), err[-2])
    log = open("log.csv").read().splitlines()
    check(log[0] == "step,loss,lr,seconds" and len(log) == 201, log[:2])

    evaluated = run("parabola", "eval", "--weights", "parabola.safetensors").out
    check(evaluated == lines[0].replace("final loss", "loss") + "\n", evaluated)
    r = run("parabola", "train", "--steps", "3", "--no-save", "--quiet",
            env={"NNRT_TEST_TRACE": "1"})
    check(r.err == "step 1/1\n" * 3, r.err)
    r = run("parabola", "train", "--steps", "1", "--init-weights", "parabola.safetensors",
            "--no-save", "--quiet")
    check(abs(values(r.out)["final loss"] - 3.25) < 1e-9, r.out)


@test
def batches():
    write_csv("d.csv", logreg_rows(10))

    def steps(*args):
        r = run("logreg", "train", "--data", "d.csv", "--no-save", "--quiet", *args,
                env={"NNRT_TEST_TRACE": "1"})
        return r.err.split(), r.out

    got, _ = steps("--batch", "4", "--epochs", "2")
    check(got == ["step", "4/4", "step", "4/4", "step", "2/4"] * 2, got)
    got, _ = steps("--batch", "4", "--epochs", "3", "--steps", "5", "--log", "l.csv")
    check(got == ["step", "4/4", "step", "4/4", "step", "2/4", "step", "4/4", "step", "4/4"], got)
    check(len(open("l.csv").read().splitlines()) == 3, "log rows when --steps stops early")
    got, _ = steps("--batch", "100", "--epochs", "2")
    check(got == ["step", "10/10"] * 2, got)
    got, _ = steps("--batch", "4", "--epochs", "1", "--validation", "0.3")
    check(got == ["step", "4/4", "step", "3/4"], got)
    got, out = steps("--epochs", "0")
    check(got == [] and re.fullmatch(r"final loss \S+\nfinal accuracy \d\.\d{4}\n", out), out)
    expect_error("logreg", ["train", "--data", "d.csv", "--validation", "0.96"],
                 "rt_logreg: error: --validation 0.96 holds out all 10 rows", 2)
    expect_error("logreg", ["train", "--data", "d.csv", "--validation", "0.9999999"],
                 "rt_logreg: error: --validation 0.9999999 holds out all 10 rows", 2)
    # The step limit's epochs, for any limit: the largest once overflowed (UBSan).
    got, _ = steps("--batch", "4", "--epochs", "2", "--steps", "9223372036854775807")
    check(got == ["step", "4/4", "step", "4/4", "step", "2/4"] * 2, got)
    write_csv("one.csv", logreg_rows(1))
    expect_error("logreg", ["train", "--data", "one.csv", "--batch", "1", "--validation", "0.5"],
                 "rt_logreg: error: --validation 0.5 holds out all 1 row", 2)


@test
def default_data():
    path = os.path.join(ARGS.bin, "logreg_default.csv")
    write_csv(path, logreg_rows(), header="x0,x1,y")
    try:
        v = train_lines(run("logreg", "train", "--quiet").out)
        check(v["final accuracy"] >= 0.95, v)
        evaluated = values(run("logreg", "eval").out)
        check(close(evaluated["loss"], v["final loss"], 1e-6), evaluated)
        # The train block's data is an input too (the README's `--log digits.csv`, in the
        # folder of the data): never overwritten.
        before = open(path, "rb").read()
        expect_error("logreg", ["train", "--log", path],
                     f"rt_logreg: error: --log {path} is the same file as the train block's "
                     f"data {path}: writing it would destroy the input; choose another file", 2)
        check(open(path, "rb").read() == before, "the default data changed")
    finally:
        os.remove(path)
    expect_error("logreg", ["train"], f"{path}: error: cannot open: No such file or directory\n"
                 "  hint: the model's train block names this file; give the data with --data PATH")


@test
def option_hints():
    """A misspelt command, option or word gets the nearest as a hint, read from the option
    table, optimizers.def and schedules.def."""
    cases = [
        (["trian"], "unknown command 'trian' (commands: train, eval, predict, gradcheck, search, "
         "sample, weights)\n  hint: did you mean train?"),
        (["train", "--epoch", "3"], "unknown option '--epoch' (see 'rt_logreg train --help')\n"
         "  hint: did you mean --epochs?"),
        (["train", "--weight_decai=0.1"], "unknown option '--weight_decai=0.1' (see 'rt_logreg "
         "train --help')\n  hint: did you mean --weight-decay?"),
        (["train", "--schedule", "cosin"], "--schedule must be constant, step, exponential or "
         "cosine, got 'cosin'\n  hint: did you mean cosine?"),
        (["train", "--optimizer", "Adam"], None),
        (["train", "--frobnicate"], "unknown option '--frobnicate' (see 'rt_logreg train --help')"),
    ]
    for args, message in cases:
        if message is None:
            r = run("logreg", *args, expect=2)
            check(r.err.endswith("got 'Adam'\n  hint: did you mean adam?\n"), r.err)
            continue
        expect_error("logreg", args, "rt_logreg: error: " + message, 2)


@test
def label_column_hints():
    """Data whose column 0 looks like a label, where the model reads an input there, says so
    and gives the --columns that reads it as the target; predict given the label column too
    says which column to drop."""
    rows = softmax_rows()
    write_csv("train.csv", rows)
    write_csv("label_first.csv", [(r[4],) + tuple(r[:4]) for r in rows])
    first_x3 = rows[0][3]
    expect_error("softmax", ["train", "--data", "label_first.csv"],
                 f"label_first.csv:1: error: column 4: class index {first_x3} is not a whole "
                 "number\n  hint: column 0 holds whole numbers from 0 to 2, like a label, but the "
                 "model reads it as 'x'; if it is the target, pass --columns y=0,x=1..4")
    # A column to spare: the rows load, so the hint comes with a warning first.
    write_csv("spare.csv", [(r[4],) + tuple(r[:4]) + (0,) for r in rows])
    hint = ("  hint: column 0 holds whole numbers from 0 to 2, like a label, but the model "
            "reads it as 'x'; if it is the target, pass --columns y=0,x=1..4\n")
    r = run("softmax", "train", "--data", "spare.csv", expect=1)
    check(r.err == "spare.csv:1: warning: the rows have 6 columns and the model reads columns "
          "0..4\n" + hint + f"spare.csv:1: error: column 4: class index {first_x3} is not a "
          "whole number\n" + hint, r.err)
    fixed = train_lines(run("softmax", "train", "--data", "label_first.csv", "--columns",
                            "y=0,x=1..4", "--quiet", "--save", "w.safetensors").out)
    check(fixed["final accuracy"] == 1.0, fixed)
    expect_error("softmax", ["train", "--data", "label_first.csv", "--columns",
                             "y=0,x=1..4,y=5"], "rt_softmax: error: --columns: 'y' is given twice",
                 2)
    expect_error("softmax", ["predict", "--weights", "w.safetensors", "--data", "label_first.csv"],
                 "label_first.csv:1: error: expected 4 columns (the inputs' values, in "
                 "declaration order), found 5\n  hint: column 0 holds whole numbers from 0 to 2, "
                 "like a label: predict reads the inputs only, so drop it (cut -d, -f2- "
                 "label_first.csv | ./rt_softmax predict)")
    expect_error("softmax", ["predict", "--weights", "w.safetensors", "--data", "train.csv"],
                 "train.csv:1: error: expected 4 columns (the inputs' values, in declaration "
                 "order), found 5\n  hint: predict reads the inputs only: drop the columns after "
                 "column 3 (cut -d, -f1-4 train.csv | ./rt_softmax predict), or pass --loss to "
                 "read them as the targets and print each row's loss")


@test
def link_plain():
    """A training executable links as `cc model.o libnnrt.a -lz -lopenblas -lm`."""
    check(ARGS.cc and ARGS.lib and ARGS.include, "link_plain needs --cc, --lib and --include")
    flags = ARGS.extra_flags.split() if ARGS.extra_flags else []
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "logreg.c")
    subprocess.run([ARGS.cc, *flags, "-c", "-I", ARGS.include, source, "-o", "model.o"],
                   check=True)
    subprocess.run([ARGS.cc, *flags, "model.o", ARGS.lib, "-lz", "-lopenblas", "-lm", "-o", "model"],
                   check=True)
    write_csv("d.csv", logreg_rows())
    r = subprocess.run(["./model", "train", "--data", "d.csv", "--quiet"], capture_output=True,
                       text=True, timeout=60)
    check(r.returncode == 0 and values(r.stdout)["final accuracy"] >= 0.95, r.stdout + r.stderr)


# ---- train --trace ----


PARABOLA_V = [0.3, -0.2, 0.25, 0.9, -0.75, 0.5, 0.125, -1.0, 0.6, 0.05]


def parabola_loss(x, v):
    """tests/runtime/parabola.c's loss, summed in the same order."""
    loss = 3 * x * x - 3 * x + 4
    for i in range(10):
        loss += (v[i] - i / 10) * (v[i] - i / 10)
    return loss


def parabola_path(x, v, lr, momentum, steps):
    """[(x, v, loss)] at the start and after each step: p -= lr * g, or with momentum
    vel = momentum * vel + g, p -= lr * vel, as nnrt.h defines sgd_step."""
    params, vel = [x, *v], [0.0] * 11
    path = [(params[0], params[1:], parabola_loss(params[0], params[1:]))]
    for _ in range(steps):
        grads = [6 * params[0] - 3] + [2 * (params[1 + i] - i / 10) for i in range(10)]
        for i, g in enumerate(grads):
            if momentum != 0:
                vel[i] = momentum * vel[i] + g
                g = vel[i]
            params[i] -= lr * g
        path.append((params[0], params[1:], parabola_loss(params[0], params[1:])))
    return path


def trace_rows(text, header):
    """The CSV rows of a trace as floats, after checking its header line exactly."""
    lines = text.splitlines()
    check(lines and lines[0] == header, f"trace header {lines[:1]}, wanted {header!r}")
    rows = [[float(v) for v in line.split(",")] for line in lines[1:]]
    check(all(len(row) == header.count(",") + 1 for row in rows), f"ragged trace:\n{text}")
    check([row[0] for row in rows] == list(range(len(rows))), "trace steps are not 0, 1, ...")
    return rows


def write_parabola_start():
    write_safetensors("start", {"x": ("F64", [], [2.0]), "v": ("F64", [10], PARABOLA_V)})


@test
def trace_function():
    """Rows for a model without inputs against gradient descent worked out here."""
    write_parabola_start()
    header = "step,x,v[0],v[1],v[2],v[3],loss"
    for momentum in ("0", "0.5"):
        r = run("parabola", "train", "--init-weights", "start", "--lr", "0.05", "--momentum",
                momentum, "--steps", "20", "--trace", "x,v", "--no-save", "--quiet")
        rows = trace_rows(r.out, header)
        path = parabola_path(2.0, PARABOLA_V, 0.05, float(momentum), 20)
        check(len(rows) == 21, f"{len(rows)} rows for 20 steps")
        for row, (x, v, loss) in zip(rows, path):
            wanted = [x, *v[:4], loss]
            check(all(close(a, b, 1e-12, 1e-15) for a, b in zip(row[1:], wanted)),
                  f"momentum {momentum}, step {row[0]:g}: {row[1:]} vs {wanted}")
        check(rows[0][1:] == [2.0, 0.3, -0.2, 0.25, 0.9, parabola_loss(2.0, PARABOLA_V)],
              f"the starting row is not exact: {rows[0]}")
        # Shortest exact numbers: the first step of x is 2 - 0.05 * 9 = 1.55 exactly printed.
        check(r.out.splitlines()[1].startswith("0,2,0.3,-0.2,0.25,0.9,"), r.out.splitlines()[1])
        check(r.out.splitlines()[2].startswith("1,1.55,"), r.out.splitlines()[2])
        # The final lines moved to stderr, and agree with the last row.
        final = values(r.err)
        check(close(final["final loss"], rows[-1][-1], 1e-8), r.err)
        check(re.search(r"^x = \S+$", r.err, re.M) and re.search(r"^v = \[", r.err, re.M), r.err)


@test
def trace_outputs():
    """--trace-out keeps stdout for the usual lines; --log goes on alongside."""
    write_parabola_start()
    args = ["train", "--init-weights", "start", "--steps", "30", "--trace", "v,x", "--no-save"]
    to_stdout = run("parabola", *args)
    check(not re.search(r"^(final loss|x =|v =)", to_stdout.out, re.M), to_stdout.out)
    check(re.search(r"^final loss \S+\nx = \S+\nv = \[.*\]$", to_stdout.err, re.M),
          to_stdout.err)
    check(re.search(r"^step 30/30  loss", to_stdout.err, re.M), "progress lines went missing")
    header = "step,v[0],v[1],v[2],v[3],x,loss"
    rows = trace_rows(to_stdout.out, header)

    r = run("parabola", *args, "--trace-out", "t.csv", "--log", "log.csv", "--quiet")
    check(re.fullmatch(r"final loss \S+\nx = \S+\nv = \[.*\]\n", r.out), r.out)
    check(r.err == "", r.err)
    check(open("t.csv").read() == to_stdout.out, "--trace-out differs from the stdout trace")
    check(r.out.splitlines() == to_stdout.err.splitlines()[-3:], "final lines differ")
    log = [line.split(",") for line in open("log.csv").read().splitlines()]
    check(log[0] == ["step", "loss", "lr", "seconds"] and len(log) == 31, log[:2])
    # A log row has the loss the step started from, a trace row the loss after the step.
    for step in range(1, 30):
        check(close(float(log[step + 1][1]), rows[step][-1], 1e-8),
              f"step {step}: log {log[step + 1]} vs trace {rows[step]}")
    check(run("parabola", *args, "--trace-out", "-").out == to_stdout.out, "--trace-out -")


def logreg_batch(rows, w0, w1, b):
    """Mean bce loss of tests/runtime/logreg.c over rows, and its gradient."""
    loss, g = 0.0, [0.0, 0.0, 0.0]
    for x0, x1, y in rows:
        z = x0 * w0 + x1 * w1 + b
        loss += max(z, 0) - y * z + math.log1p(math.exp(-abs(z)))
        d = (sigmoid(z) - y) / len(rows)
        g = [g[0] + d * x0, g[1] + d * x1, g[2] + d]
    return loss / len(rows), g


@test
def trace_data():
    """Rows for a model with inputs: the values after each step, the loss on its batch."""
    data = logreg_rows(10)
    write_csv("d.csv", data)
    lr = 0.5
    r = run("logreg", "train", "--data", "d.csv", "--batch", "4", "--epochs", "2", "--shuffle",
            "off", "--momentum", "0", "--lr", str(lr), "--trace", "lin.b,lin.W", "--no-save")
    rows = trace_rows(r.out, "step,lin.b[0],lin.W[0],lin.W[1],loss")
    check(len(rows) == 7, f"{len(rows)} rows for 2 epochs of 3 steps")
    batches = [data[0:4], data[4:8], data[8:10]]
    for step in range(7):
        b, w0, w1, loss = rows[step][1:]
        # Row 0 is the starting point on the first batch; row k the values after step k on
        # the batch that step used.
        batch = batches[(step - 1) % 3] if step else batches[0]
        wanted, _ = logreg_batch(batch, w0, w1, b)
        check(close(loss, wanted, 1e-5), f"step {step}: loss {loss}, by hand {wanted}")
        if step:
            pb, pw0, pw1, _ = rows[step - 1][1:]
            _, g = logreg_batch(batch, pw0, pw1, pb)
            after = [pb - lr * g[2], pw0 - lr * g[0], pw1 - lr * g[1]]
            check(all(close(a, c, 1e-5, 1e-6) for a, c in zip([b, w0, w1], after)),
                  f"step {step}: {[b, w0, w1]} is not one step from {rows[step - 1]}")
    check(re.fullmatch(r"(epoch .*\n)*final loss \S+\nfinal accuracy \S+\n", r.err), r.err)

    r = run("logreg", "train", "--data", "d.csv", "--batch", "4", "--steps", "4",
            "--trace", "lin.b", "--trace-out", "t.csv", "--no-save", "--quiet")
    check(len(open("t.csv").read().splitlines()) == 6, "--steps 4: header and 5 rows")
    train_lines(r.out)
    r = run("logreg", "train", "--data", "d.csv", "--epochs", "0", "--trace", "lin.b",
            "--no-save", "--quiet")
    check(len(trace_rows(r.out, "step,lin.b[0],loss")) == 1, "--epochs 0: only step 0")


@test
def trace_elements_and_gradients():
    """Single elements (flat, per axis, negative) and gradients: a gradient's column holds
    d cost/d param at the row's values, the step the next row takes."""
    write_parabola_start()
    r = run("parabola", "train", "--init-weights", "start", "--lr", "0.05", "--momentum", "0",
            "--steps", "8", "--trace", "x.grad,v[7],v[-1],v.grad[2],x", "--no-save", "--quiet")
    rows = trace_rows(r.out, "step,x.grad,v[7],v[9],v.grad[2],x,loss")
    path = parabola_path(2.0, PARABOLA_V, 0.05, 0.0, 8)
    check(len(rows) == 9, f"{len(rows)} rows for 8 steps")
    for row, (x, v, loss) in zip(rows, path):
        wanted = [6 * x - 3, v[7], v[9], 2 * (v[2] - 0.2), x, loss]
        check(all(close(a, b, 1e-12, 1e-15) for a, b in zip(row[1:], wanted)),
              f"step {row[0]:g}: {row[1:]} vs {wanted}")
    for before, after in zip(rows, rows[1:]):  # x <- x - lr * x.grad
        check(close(after[5], before[5] - 0.05 * before[1], 1e-12), f"{before} -> {after}")
    # A matrix by row and column: lin.W is [2, 1]; its gradient on the row's batch.
    data = logreg_rows(10)
    write_csv("d.csv", data)
    args = ["train", "--data", "d.csv", "--batch", "4", "--epochs", "2", "--shuffle", "off",
            "--momentum", "0", "--lr", "0.5"]
    r = run("logreg", *args, "--trace", "lin.W[1, 0],lin.W.grad[-1][0],lin.b.grad,lin.W[0],lin.b",
            "--save", "traced", "--quiet")
    rows = trace_rows(r.out, "step,lin.W[1][0],lin.W.grad[1][0],lin.b.grad[0],lin.W[0],"
                             "lin.b[0],loss")
    batches = [data[0:4], data[4:8], data[8:10]]
    for step, (_, w1, g1, gb, w0, b, loss) in enumerate(rows):
        # Row k's gradient is at row k's values, on the batch of its loss.
        batch = batches[(step - 1) % 3] if step else batches[0]
        wanted, g = logreg_batch(batch, w0, w1, b)
        check(close(loss, wanted, 1e-5), f"step {step}: loss {loss}, by hand {wanted}")
        check(close(g1, g[1], 1e-4, 1e-6) and close(gb, g[2], 1e-4, 1e-6),
              f"step {step}: gradients {g1}, {gb}, by hand {g[1]}, {g[2]}")
    # Tracing gradients leaves the training alone: the same weights, bit for bit.
    run("logreg", *args, "--save", "plain", "--quiet")
    check(open("plain", "rb").read() == open("traced", "rb").read(),
          "--trace with a gradient changed the trained weights")


@test
def trace_errors():
    params = "rt_parabola: error: --trace: model 'parabola' has no param 'q' (its params: x, v)"
    expect_error("parabola", ["train", "--trace", "x,q"], params, 2)
    expect_error("logreg", ["train", "--trace", "lin.w"],
                 "rt_logreg: error: --trace: model 'logreg' has no param 'lin.w' "
                 "(its params: lin.W, lin.b)\n  hint: did you mean lin.W?", 2)
    expect_error("parabola", ["train", "--trace", "x,,v"],
                 "rt_parabola: error: --trace: an empty name in 'x,,v'", 2)
    expect_error("parabola", ["train", "--trace", "x,v,x"],
                 "rt_parabola: error: --trace: 'x' is named twice", 2)
    expect_error("parabola", ["train", "--trace-out", "t.csv"],
                 "rt_parabola: error: --trace-out needs --trace NAME,... (the params to trace)", 2)
    expect_error("parabola", ["train", "--trace", "x", "--trace-out", "no/t.csv"],
                 "no/t.csv: error: cannot write: No such file or directory")
    expect_error("parabola", ["eval", "--trace", "x"],
                 "rt_parabola: error: --trace is not an option of 'eval' "
                 "(see 'rt_parabola eval --help')", 2)
    check(not os.path.exists("parabola.safetensors"), "a failed run saved weights")
    # Elements: the shape and the valid range in the message.
    expect_error("parabola", ["train", "--trace", "v[10]"],
                 "rt_parabola: error: --trace: 'v[10]': index 10 is outside v, which has 10 "
                 "elements (shape [10]): a flat index is 0..9, or -10..-1 from the end", 2)
    expect_error("logreg", ["train", "--trace", "lin.W[0, 1]"],
                 "rt_logreg: error: --trace: 'lin.W[0, 1]': index 1 of axis 1 is outside "
                 "lin.W's shape [2, 1] (0..0, or -1..-1 from the end)", 2)
    expect_error("logreg", ["train", "--trace", "lin.W[0, 0, 0]"],
                 "rt_logreg: error: --trace: 'lin.W[0, 0, 0]': lin.W has shape [2, 1]: give one "
                 "flat index (0..1) or 2 indices", 2)
    expect_error("parabola", ["train", "--trace", "x,v[one]"],
                 "rt_parabola: error: --trace: 'v[one]': an index must be a whole number", 2)
    expect_error("parabola", ["train", "--trace", "v[1"],
                 "rt_parabola: error: --trace: 'v[1': an index must be a whole number, and ']' "
                 "close the indices", 2)
    expect_error("parabola", ["train", "--trace", "v[-1],v[9]"],
                 "rt_parabola: error: --trace: 'v[9]' is named twice", 2)
    expect_error("parabola", ["train", "--trace", "q.grad"],
                 "rt_parabola: error: --trace: model 'parabola' has no param 'q' "
                 "(its params: x, v)", 2)


# ---- optimizers, schedules, penalties ----


def parabola_grad(p):
    """Gradient of tests/runtime/parabola.c's loss at [x, v0..v9]."""
    return [6 * p[0] - 3] + [2 * (p[1 + i] - i / 10) for i in range(10)]


EPS = {"sgd": 0.0, "adagrad": 1e-10, "adadelta": 1e-6, "rmsprop": 1e-8, "adam": 1e-8,
       "adamw": 1e-8, "adamax": 1e-8, "lion": 0.0}


def optimizer_path(name, params, steps, lr, momentum=0.0, nesterov=False, beta1=0.9,
                   beta2=0.999, rho=0.9, eps=None, weight_decay=0.01, l1=None, l2=None,
                   clip=0.0):
    """The params after `steps` updates by the optimizer's formulas (docs/runtime.md), with
    per-element penalties l1, l2 (lists) and clipping by global norm, on the parabola."""
    p, n = list(params), len(params)
    eps = EPS[name] if eps is None else eps
    a, b = [0.0] * n, [0.0] * n  # the state slots
    for t in range(1, steps + 1):
        g = parabola_grad(p)
        for i in range(n):
            sign = (p[i] > 0) - (p[i] < 0)
            g[i] += (l1[i] if l1 else 0) * sign + (l2[i] if l2 else 0) * p[i]
        norm = math.sqrt(sum(x * x for x in g))
        if clip and norm > clip:
            g = [x * clip / norm for x in g]
        for i in range(n):
            if name == "sgd" and momentum:
                a[i] = momentum * a[i] + g[i]
                p[i] -= lr * (g[i] + momentum * a[i] if nesterov else a[i])
            elif name == "sgd":
                p[i] -= lr * g[i]
            elif name == "adagrad":
                a[i] += g[i] * g[i]
                p[i] -= lr * g[i] / (math.sqrt(a[i]) + eps)
            elif name == "adadelta":
                a[i] = rho * a[i] + (1 - rho) * g[i] * g[i]
                d = math.sqrt(b[i] + eps) / math.sqrt(a[i] + eps) * g[i]
                b[i] = rho * b[i] + (1 - rho) * d * d
                p[i] -= lr * d
            elif name == "rmsprop":
                a[i] = rho * a[i] + (1 - rho) * g[i] * g[i]
                u = g[i] / (math.sqrt(a[i]) + eps)
                if momentum:
                    b[i] = momentum * b[i] + u
                    u = b[i]
                p[i] -= lr * u
            elif name == "adamax":  # as torch.optim.Adamax
                a[i] = beta1 * a[i] + (1 - beta1) * g[i]
                b[i] = max(beta2 * b[i], abs(g[i]) + eps)
                p[i] -= lr / (1 - beta1 ** t) * (a[i] / b[i])
            elif name == "lion":  # as lucidrains/lion-pytorch
                c = beta1 * a[i] + (1 - beta1) * g[i]
                p[i] = p[i] * (1 - lr * weight_decay) - lr * ((c > 0) - (c < 0))
                a[i] = beta2 * a[i] + (1 - beta2) * g[i]
            else:  # adam, adamw
                if name == "adamw":
                    p[i] *= 1 - lr * weight_decay
                a[i] = beta1 * a[i] + (1 - beta1) * g[i]
                b[i] = beta2 * b[i] + (1 - beta2) * g[i] * g[i]
                mhat, vhat = a[i] / (1 - beta1 ** t), b[i] / (1 - beta2 ** t)
                p[i] -= lr * mhat / (math.sqrt(vhat) + eps)
    return p


def help_readers(setting, model="mlp"):
    """The optimizers that read a setting, as train --help lists them ("--momentum X  sgd,
    rmsprop: ..."): an option no optimizer of the run reads is an error."""
    out = run(model, "train", "--help").out
    line = next(l for l in out.splitlines() if l.startswith(f"  --{setting} "))
    return line.split(None, 2)[2].split(":")[0].split(", ")


def help_optimizers(model="mlp"):
    """{name: (help, paper)} of the optimizers train --help lists, a row each of
    runtime/optimizers.def, in its order: tests take the names from here."""
    out = run(model, "train", "--help").out
    check("\noptimizers (--optimizer NAME):\n" in out, out)
    rows = {}
    for line in out.split("\noptimizers (--optimizer NAME):\n")[1].splitlines():
        m = re.fullmatch(r"  ([a-z0-9_]+) +(\S.*) \((.*)\)", line)
        check(m, f"not an optimizer's line: {line!r}")
        rows[m.group(1)] = (m.group(2), m.group(3))
    check(len(rows) >= 2, out)
    return rows


def docs_table(text, heading):
    """The rows of the first table after `heading` in a docs page, as lists of cells."""
    rows, inside = [], False
    for line in text.split(heading, 1)[1].splitlines():
        if line.startswith("|"):
            inside = True
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
        elif inside:
            break
    return rows[2:]  # past the header and its rule


def parabola_after(args, steps=2):
    """[x, v0..v9] saved after `steps` updates from the start point with these options."""
    run("parabola", "train", "--init-weights", "start", "--steps", str(steps), "--save", "w",
        "--quiet", *args)
    _, tensors = read_safetensors("w")
    return [*tensors["x"][2], *tensors["v"][2]]


OPTIMIZER_CASES = [
    # (options, optimizer_path keywords)
    (["--optimizer", "sgd", "--momentum", "0", "--lr", "0.05"], dict(name="sgd", lr=0.05)),
    (["--optimizer", "sgd", "--momentum", "0.9", "--lr", "0.05"],
     dict(name="sgd", lr=0.05, momentum=0.9)),
    (["--optimizer", "sgd", "--momentum", "0.9", "--nesterov", "on", "--lr", "0.05"],
     dict(name="sgd", lr=0.05, momentum=0.9, nesterov=True)),
    (["--optimizer", "adagrad", "--lr", "0.3"], dict(name="adagrad", lr=0.3)),
    (["--optimizer", "adagrad", "--lr", "0.3", "--eps", "0.5"],
     dict(name="adagrad", lr=0.3, eps=0.5)),
    (["--optimizer", "adadelta", "--lr", "1", "--rho", "0.95"],
     dict(name="adadelta", lr=1.0, rho=0.95)),
    (["--optimizer", "rmsprop", "--lr", "0.01", "--momentum", "0"],
     dict(name="rmsprop", lr=0.01)),
    (["--optimizer", "rmsprop", "--lr", "0.01", "--momentum", "0.5", "--rho", "0.8"],
     dict(name="rmsprop", lr=0.01, momentum=0.5, rho=0.8)),
    (["--optimizer", "adam", "--lr", "0.1"], dict(name="adam", lr=0.1)),
    (["--optimizer", "adam", "--lr", "0.1", "--beta1", "0.5", "--beta2", "0.9"],
     dict(name="adam", lr=0.1, beta1=0.5, beta2=0.9)),
    (["--optimizer", "adamw", "--lr", "0.1", "--weight-decay", "0.2"],
     dict(name="adamw", lr=0.1, weight_decay=0.2)),
    (["--optimizer", "adamax", "--lr", "0.1"], dict(name="adamax", lr=0.1)),
    (["--optimizer", "adamax", "--lr", "0.1", "--beta1", "0.5", "--beta2", "0.9", "--eps", "0.01"],
     dict(name="adamax", lr=0.1, beta1=0.5, beta2=0.9, eps=0.01)),
    # lion's own betas and weight decay (lion-pytorch's): 0.9, 0.99, 0
    (["--optimizer", "lion", "--lr", "0.01"], dict(name="lion", lr=0.01, beta2=0.99,
                                                   weight_decay=0.0)),
    (["--optimizer", "lion", "--lr", "0.01", "--beta1", "0.5", "--beta2", "0.9",
      "--weight-decay", "0.3"], dict(name="lion", lr=0.01, beta1=0.5, beta2=0.9,
                                     weight_decay=0.3)),
]


@test
def optimizer_steps():
    """Two updates of each optimizer against its formulas worked out here (f64)."""
    write_parabola_start()
    start = [2.0, *PARABOLA_V]
    for args, kw in OPTIMIZER_CASES:
        got = parabola_after(args)
        wanted = optimizer_path(params=start, steps=2, **kw)
        check(all(close(a, b, 1e-12, 1e-15) for a, b in zip(got, wanted)),
              f"{' '.join(args)}:\n  got    {got}\n  wanted {wanted}")
        # The first step alone differs from the second: two steps are really two.
        one = optimizer_path(params=start, steps=1, **kw)
        check(any(not close(a, b, 1e-9) for a, b in zip(one, wanted)), f"{args}: one step")


@test
def optimizer_table():
    """Every optimizer of runtime/optimizers.def (as train --help lists them) is named by
    --optimizer's help and choices, worked out by optimizer_path, converges, and has its row
    in docs/runtime.md, citing the same paper."""
    rows = help_optimizers()
    names = list(rows)
    listed = f"{', '.join(names[:-1])} or {names[-1]}"
    out = run("mlp", "train", "--help").out
    check(re.search(rf"^  --optimizer NAME +{re.escape(listed)} \(default: adam\)$", out, re.M),
          out)
    check({kw["name"] for _, kw in OPTIMIZER_CASES} == set(names), "optimizer_steps' cases")
    check({name for name, _ in CONVERGING_RATES} == set(names), "optimizers_converge's rates")
    docs = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                             "runtime.md")).read()
    table = docs_table(docs, "### Optimizers")
    check([row[0] for row in table] == [f"`{name}`" for name in names],
          f"docs/runtime.md's Optimizers table: {[row[0] for row in table]}")
    for row in table:
        check(row[3] == rows[row[0].strip("`")][1], f"docs cite {row[3]!r} for {row[0]}")
    check(f"| `--optimizer NAME` | {', '.join(f'`{n}`' for n in names[:-1])} or `{names[-1]}` "
          "(see Optimizers) |" in docs, "docs/runtime.md's --optimizer row")
    # A setting's help names the optimizers that read it; its default is the train block's
    # optimizer's (mlp: adam), else each reader's, "NAME X, ..., others X" (logreg: sgd).
    settings = ["beta1", "beta2", "rho", "eps", "weight-decay"]
    for model, own in [("mlp", True), ("logreg", False)]:
        out = run(model, "train", "--help").out
        for setting in settings:
            m = re.search(rf"^  --{setting} X +([a-z0-9, ]+): .*\(default: (.*)\)$", out, re.M)
            check(m and set(m.group(1).split(", ")) <= set(names), f"--{setting}:\n{out}")
            readers, default = m.group(1).split(", "), m.group(2)
            if own and "adam" in readers:
                check(re.fullmatch(r"[0-9.e+-]+", default), f"{model} --{setting}: {default}")
            else:
                for part in default.split(", "):
                    check(re.fullmatch(r"[0-9.e+-]+", part) or
                          part.split()[0] in readers + ["others"], f"--{setting}: {default}")


@test
def penalties_and_clipping():
    write_parabola_start()
    start = [2.0, *PARABOLA_V]
    l2 = [0.5] + [0.1] * 10
    l1 = [0.0] + [0.2] * 10
    cases = [
        (["--lr", "0.05", "--momentum", "0", "--l2", "x=0.5,v=0.1"],
         dict(name="sgd", lr=0.05, l2=l2)),
        (["--lr", "0.05", "--momentum", "0.5", "--l1", "v=0.2", "--l2", "x=0.5,v=0.1"],
         dict(name="sgd", lr=0.05, momentum=0.5, l1=l1, l2=l2)),
        (["--optimizer", "adam", "--lr", "0.1", "--l2", "v=0.1,x=0.5"],
         dict(name="adam", lr=0.1, l2=l2)),
        # A bare number is for weights (rank >= 2): the parabola has none.
        (["--lr", "0.05", "--momentum", "0", "--l2", "3"], dict(name="sgd", lr=0.05)),
        (["--lr", "0.05", "--momentum", "0", "--clip", "1"],
         dict(name="sgd", lr=0.05, clip=1.0)),
        (["--lr", "0.05", "--momentum", "0", "--clip", "1000"],
         dict(name="sgd", lr=0.05, clip=1000.0)),
    ]
    for args, kw in cases:
        got = parabola_after(args)
        wanted = optimizer_path(params=start, steps=2, **kw)
        check(all(close(a, b, 1e-12, 1e-15) for a, b in zip(got, wanted)),
              f"{' '.join(args)}:\n  got    {got}\n  wanted {wanted}")
    # logreg: --l2 0.1 is lin.W's alone (rank 2), lin.b (rank 1) is not penalised; a name
    # overrides the bare number.
    data = logreg_rows(16)
    write_csv("d.csv", data)
    w0 = [0.5, -0.25]
    write_safetensors("s", {"lin.W": ("F32", [2, 1], w0), "lin.b": ("F32", [1], [0.1])})
    for spec, lw, lb in [("0.1", 0.1, 0.0), ("0.1,lin.b=0.3", 0.1, 0.3), ("lin.W=0", 0, 0)]:
        run("logreg", "train", "--data", "d.csv", "--init-weights", "s", "--batch", "16",
            "--epochs", "1", "--shuffle", "off", "--momentum", "0", "--lr", "0.5", "--l2", spec,
            "--save", "w", "--quiet")
        _, t = read_safetensors("w")
        _, g = logreg_batch(data, w0[0], w0[1], 0.1)
        wanted = [w0[0] - 0.5 * (g[0] + lw * w0[0]), w0[1] - 0.5 * (g[1] + lw * w0[1]),
                  0.1 - 0.5 * (g[2] + lb * 0.1)]
        got = [*t["lin.W"][2], *t["lin.b"][2]]
        check(all(close(a, b, 1e-5, 1e-6) for a, b in zip(got, wanted)),
              f"--l2 {spec}: {got} vs {wanted}")
    expect_error("logreg", ["train", "--data", "d.csv", "--l2", "lin.w=1"],
                 "rt_logreg: error: --l2: model 'logreg' has no param 'lin.w' "
                 "(its params: lin.W, lin.b)\n  hint: did you mean lin.W?", 2)
    expect_error("logreg", ["train", "--data", "d.csv", "--l1", "x"],
                 "rt_logreg: error: --l1: 'x' is not a number >= 0", 2)
    # A param or the weights' number given twice: which one wins would be a guess.
    expect_error("logreg", ["train", "--data", "d.csv", "--l2", "lin.W=0.1,lin.b=0,lin.W=0"],
                 "rt_logreg: error: --l2: 'lin.W' is named twice", 2)
    expect_error("logreg", ["train", "--data", "d.csv", "--l1", "0.1,lin.b=0,0.2"],
                 "rt_logreg: error: --l1: '0.1,lin.b=0,0.2' gives the weights' number twice", 2)


# A rate at which each optimizer fits softmax_rows in 30 epochs.
CONVERGING_RATES = [("sgd", "0.1"), ("adagrad", "0.5"), ("adadelta", "1"), ("rmsprop", "0.01"),
                    ("adam", "0.05"), ("adamw", "0.05"), ("adamax", "0.05"),
                    ("lion", "0.01")]


@test
def optimizers_converge():
    write_csv("d.csv", softmax_rows())
    for name, lr in CONVERGING_RATES:
        r = run("softmax", "train", "--data", "d.csv", "--optimizer", name, "--lr", lr,
                "--no-save", "--quiet")
        v = train_lines(r.out)
        check(v["final accuracy"] >= 0.95 and v["final loss"] < 0.3, f"{name}: {r.out}")
    write_parabola_start()
    for name, lr in [("sgd", "0.05"), ("adagrad", "0.5"), ("rmsprop", "0.01"), ("adam", "0.1")]:
        r = run("parabola", "train", "--init-weights", "start", "--optimizer", name, "--lr", lr,
                "--steps", "1500", "--no-save", "--quiet")
        # From 15.7 to within 0.01 of the minimum 3.25 (rmsprop and adam take steps of
        # about lr whatever the gradient, so they hover that close).
        check(values(r.out)["final loss"] < 3.26, f"{name}: {r.out}")


def schedule_lr(step, steps, lr, schedule="constant", warmup=0, step_every=10, step_factor=0.1,
                gamma=0.95, min_lr=0.0):
    if step <= warmup:
        return lr * step / warmup
    k = step - warmup - 1
    if schedule == "step":
        return lr * step_factor ** (k // step_every)
    if schedule == "exponential":
        return lr * gamma ** k
    if schedule == "cosine":
        span = max(1, steps - warmup)
        return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * k / span)) / 2
    return lr


@test
def schedules():
    """The rate of each epoch (step, for the parabola), as --log records it."""
    write_parabola_start()
    cases = [
        ([], {}),
        (["--schedule", "step", "--step-every", "3", "--step-factor", "0.5"],
         dict(schedule="step", step_every=3, step_factor=0.5)),
        (["--schedule", "exponential", "--gamma", "0.8"], dict(schedule="exponential", gamma=0.8)),
        (["--schedule", "cosine", "--min-lr", "0.01"], dict(schedule="cosine", min_lr=0.01)),
        (["--schedule", "cosine", "--warmup", "3"], dict(schedule="cosine", warmup=3)),
        (["--schedule", "step", "--warmup", "4", "--step-every", "2"],
         dict(schedule="step", warmup=4, step_every=2)),
    ]
    for args, kw in cases:
        run("parabola", "train", "--init-weights", "start", "--steps", "12", "--lr", "0.04",
            "--log", "log.csv", "--no-save", "--quiet", *args)
        log = [row.split(",") for row in open("log.csv").read().splitlines()]
        check(log[0] == ["step", "loss", "lr", "seconds"], log[0])
        for step in range(1, 13):
            wanted = schedule_lr(step, 12, 0.04, **kw)
            check(close(float(log[step][2]), wanted, 1e-8, 1e-15),
                  f"{args} step {step}: lr {log[step][2]}, wanted {wanted}")
    # A rate of 0 (the first warm-up... never: warm-up starts at lr/W) and the updates use
    # the logged rate: sgd with the step schedule against the formulas.
    got = parabola_after(["--lr", "0.05", "--momentum", "0", "--schedule", "step",
                          "--step-every", "1", "--step-factor", "0.5"], steps=3)
    p = [2.0, *PARABOLA_V]
    for rate in (0.05, 0.025, 0.0125):
        p = optimizer_path("sgd", p, 1, rate)
    check(all(close(a, b, 1e-12) for a, b in zip(got, p)), f"{got} vs {p}")
    # Epochs, for a model with inputs: the rate of epoch e, and the validation columns.
    write_csv("d.csv", softmax_rows())
    run("softmax", "train", "--data", "d.csv", "--epochs", "6", "--schedule", "exponential",
        "--gamma", "0.5", "--validation", "0.2", "--log", "l.csv", "--no-save", "--quiet")
    log = [row.split(",") for row in open("l.csv").read().splitlines()]
    check(log[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds",
                     "samples_per_second"], log[0])
    check([float(row[5]) for row in log[1:]] == [0.1 * 0.5 ** k for k in range(6)], log)


@test
def train_block_settings():
    """Settings of the train block are defaults that the command line overrides."""
    out = run("mlp", "train", "--help").out
    for option, default in [("--optimizer NAME", "adam"), ("--beta1 X", "0.8"),
                            ("--l2 SPEC", "W1=0.001"), ("--schedule NAME", "cosine"),
                            ("--warmup N", "2"), ("--beta2 X", "0.999"), ("--clip X", "0")]:
        pattern = rf"^  {re.escape(option)} +\S.*\(default: {re.escape(default)}\)$"
        check(re.search(pattern, out, re.M), f"no {option} (default {default}):\n{out}")
    write_csv("d.csv", mlp_rows(40))
    r = run("mlp", "train", "--data", "d.csv", "--epochs", "4", "--log", "l.csv", "--no-save",
            "--quiet")
    lrs = [float(row.split(",")[-3]) for row in open("l.csv").read().splitlines()[1:]]
    check(lrs == [schedule_lr(e, 4, 0.1, "cosine", warmup=2) for e in range(1, 5)], lrs)
    run("mlp", "train", "--data", "d.csv", "--epochs", "4", "--schedule", "constant",
        "--log", "l.csv", "--no-save", "--quiet")
    lrs = [float(row.split(",")[-3]) for row in open("l.csv").read().splitlines()[1:]]
    check(lrs == [0.05, 0.1, 0.1, 0.1], f"warm-up kept, schedule overridden: {lrs}")
    # The train block's optimizer state is in its checkpoint: adam's m and v.
    run("mlp", "train", "--data", "d.csv", "--epochs", "1", "--checkpoint-every", "1",
        "--no-save", "--quiet")
    header, _ = read_safetensors("mlp.ckpt.safetensors")
    check("optimizer.m.W1" in header and "optimizer.v.b2" in header, list(header))
    names = list(help_optimizers())
    expect_error("mlp", ["train", "--optimizer", "lbfgs"],
                 f"rt_mlp: error: --optimizer must be {', '.join(names[:-1])} or {names[-1]}, "
                 "got 'lbfgs'", 2)
    expect_error("mlp", ["train", "--beta1", "1"],
                 "rt_mlp: error: --beta1 must be in [0, 1), got '1'", 2)


@test
def faults():
    """A non-finite loss, gradient or param stops training, saying where and what helps."""
    help = "; training stopped. A lower learning rate (--lr, now {lr}) or clipping the " \
           "gradients (--clip 1) usually helps"
    expect_error("parabola", ["train", "--lr", "10", "--quiet"],
                 "rt_parabola: error: the loss became inf at step 88" + help.format(lr=10))
    env = {"PARABOLA_INF_GRAD": "3"}
    r = run("parabola", "train", "--clip", "5", "--quiet", expect=1, env=env)
    check(r.err == "rt_parabola: error: the gradient of 'v' is nan or inf at step 1" +
          help.format(lr=0.05) + "\n", r.err)
    # Every row's loop checks the gradients it reads: lion's sign() would turn an inf into a
    # finite step, and adam's m / sqrt(v) an inf into nan, so the param alone cannot tell.
    for optimizer in ("adam", "adamw", "adamax", "adagrad", "adadelta", "rmsprop", "lion"):
        r = run("parabola", "train", "--optimizer", optimizer, "--quiet", expect=1, env=env)
        check(r.err.startswith("rt_parabola: error: the gradient of 'v' is nan or inf at step "
                               "1;"), f"{optimizer}: {r.err}")
    # A gradient's fault is named before a value's: x, updated first, overflows to -inf
    # (2 - 1e308 * 9), while v's gradient is inf. Without the inf, x's own fault.
    overflow = ["--l2", "x=1e-300", "--lr", "1e308", "--quiet"]
    r = run("parabola", "train", *overflow, expect=1, env=env)
    check(r.err.startswith("rt_parabola: error: the gradient of 'v' is nan or inf at step 1;"),
          r.err)
    r = run("parabola", "train", *overflow, expect=1)
    check(r.err.startswith("rt_parabola: error: param 'x' became nan or inf after the update at "
                           "step 1;"), r.err)
    # The fused sgd_step keeps no gradient, and its step's loss is taken before the update:
    # the params, scanned after every epoch (here a step), name the one it spoiled.
    r = run("parabola", "train", "--quiet", expect=1, env=env)
    check(r.err == "rt_parabola: error: param 'v' became nan or inf by step 1 (the loss did not "
          "show it)" + help.format(lr=0.05) + "\n", r.err)
    write_csv("d.csv", logreg_rows())
    r = run("logreg", "train", "--data", "d.csv", "--lr", "1e38", "--quiet", expect=1)
    check(re.fullmatch(r"rt_logreg: error: (the loss became (nan|inf)|param 'lin\.[Wb]' became "
                       r"nan or inf, and the loss with it) at epoch 1, step \d+; training stopped\. "
                       r".*--clip 1\) usually helps\n", r.err), r.err)
    check(not os.path.exists("logreg.safetensors"), "a failed run saved weights")


FAULT_HELP = "; training stopped. A lower learning rate (--lr, now {lr}) or clipping the " \
             "gradients (--clip 1) usually helps"
# mlp.c trained by the fused sgd_step (its train block says adam, an l2 penalty, a schedule)
MLP_SGD = ["--optimizer", "sgd", "--l2", "0", "--schedule", "constant", "--warmup", "0"]


def hidden_fault(model, param, at, lr):
    return (f"rt_{model}: error: param '{param}' became nan or inf by {at} (the loss did not "
            f"show it)" + FAULT_HELP.format(lr=lr) + "\n")


@test
def nonfinite_weights():
    """The fused sgd_step is checked through its loss, which a param gone nan or inf does not
    always reach. No path that writes weights (--save, checkpoints, early stopping's best,
    Ctrl-C, search) may write such a param or end with exit 0: exit 1, files untouched."""
    write("old", b"old weights")
    # The last step makes v[3] inf (its gradient is): the step's loss was taken before it.
    for args in (["--save", "old"],
                 ["--checkpoint-every", "1", "--checkpoint", "old", "--no-save"]):
        r = run("parabola", "train", "--steps", "1", "--quiet", *args, expect=1,
                env={"PARABOLA_INF_GRAD": "3"})
        check(r.err == hidden_fault("parabola", "v", "step 1", 0.05), r.err)
        check(r.out == "" and open("old", "rb").read() == b"old weights", f"{args}: {r.out}")
    # A hidden unit whose bias goes to -inf at the first step: relu hides it from the loss
    # for good (mlp.c, MLP_DEAD_UNIT_ABOVE_LR). 40 rows, batches of 8: 5 steps an epoch.
    write_csv("m.csv", mlp_rows(40))
    common = ["--data", "m.csv", "--epochs", "3", "--batch", "8", *MLP_SGD, "--quiet"]
    dead = {"MLP_DEAD_UNIT_ABOVE_LR": "0.05"}
    run("mlp", "train", *common, "--save", "w")
    write("c", b"old checkpoint")
    saved = open("w", "rb").read()
    for args, at in (([], "epoch 1, step 5"),
                     (["--checkpoint-every", "1", "--checkpoint", "c"], "epoch 1, step 5"),
                     (["--early-stopping", "on", "--validation", "0.2"], "epoch 1, step 4")):
        r = run("mlp", "train", *common, *args, "--save", "w", expect=1, env=dead)
        check(r.err == hidden_fault("mlp", "b1", at, 0.1), f"{args}: {r.err}")
        check(open("w", "rb").read() == saved and open("c", "rb").read() == b"old checkpoint",
              f"{args}: a file changed")
    # Ctrl-C in the middle of the first epoch: the checkpoint it saves is refused too.
    r = run("mlp", "train", *common, "--checkpoint", "c", expect=1,
            env={**dead, "NNRT_TEST_SIGINT_AT_STEP": "2"})
    check(r.err == hidden_fault("mlp", "b1", "epoch 1, step 2", 0.1), r.err)
    check(open("c", "rb").read() == b"old checkpoint", "the checkpoint changed")
    # search: that trial diverged, and ranks last; the best weights saved are the other's.
    r = run("mlp", "search", *common, "--lr", "0.01,0.1", "--strategy", "grid", "--save", "best",
            env=dead)
    lines = r.out.splitlines()
    check(lines[1].split()[:2] == ["1", "0.01"] and lines[2].split() == ["2", "0.1", "diverged",
                                                                          "-"], r.out)
    again = run("mlp", "train", *common, "--lr", "0.01", "--validation", "0.2", "--save", "again")
    check(open("best", "rb").read() == open("again", "rb").read(), "best weights differ")


# ---- validation, early stopping, checkpoints ----


def log_rows(path):
    lines = open(path).read().splitlines()
    names = lines[0].split(",")
    return [dict(zip(names, map(float, line.split(",")))) for line in lines[1:]]


@test
def early_stopping():
    """Stops `patience` epochs after the best validation loss, with the best epoch's weights."""
    rows = softmax_rows(150)
    write_csv("train.csv", rows[:120])
    # Validation labels that disagree with the training rows: the more training fits them,
    # the worse the validation loss gets after a while.
    rng = random.Random(9)
    write_csv("val.csv", [(*row[:4], rng.randrange(3)) for row in rows[120:]])
    r = run("softmax", "train", "--data", "train.csv", "--validation-data", "val.csv",
            "--epochs", "200", "--early-stopping", "on", "--patience", "4", "--lr", "0.5",
            "--log", "log.csv", "--save", "w")
    log = log_rows("log.csv")
    best = min(range(len(log)), key=lambda i: log[i]["val_loss"])
    check(len(log) == best + 1 + 4 and len(log) < 200, f"{len(log)} epochs, best {best + 1}")
    check(f"early stopping: validation loss has not improved for 4 epochs\n"
          f"restored the weights of epoch {best + 1} (validation loss " in r.err, r.err)
    v = values(r.out)
    check(close(v["validation loss"], log[best]["val_loss"], 1e-7),
          f"{v['validation loss']} vs the best epoch's {log[best]['val_loss']}")
    evaluated = values(run("softmax", "eval", "--weights", "w", "--data", "val.csv").out)
    check(close(evaluated["loss"], log[best]["val_loss"], 1e-7), "saved weights are not the best")
    # Monitoring accuracy: the best is the first epoch with the highest accuracy.
    run("softmax", "train", "--data", "train.csv", "--validation-data", "val.csv",
        "--epochs", "200", "--early-stopping", "on", "--patience", "3", "--monitor", "accuracy",
        "--log", "log.csv", "--no-save", "--quiet")
    log = log_rows("log.csv")
    accs = [row["val_accuracy"] for row in log]
    best = accs.index(max(accs))
    check(len(log) == best + 1 + 3, f"accuracy: {len(log)} epochs, best {best + 1}: {accs}")
    expect_error("softmax", ["train", "--data", "train.csv", "--early-stopping", "on"],
                 "rt_softmax: error: --early-stopping needs validation rows (--validation F or "
                 "--validation-data FILE)", 2)
    expect_error("softmax", ["train", "--data", "train.csv", "--validation", "0.2",
                             "--validation-data", "val.csv"],
                 "rt_softmax: error: give --validation F or --validation-data FILE, not both", 2)
    write("bad.csv", "1,2,3,4,0\n1,2,x,4,1\n")
    expect_error("softmax", ["train", "--data", "train.csv", "--validation-data", "bad.csv"],
                 "bad.csv:2: error: column 2: 'x' is not a number")


@test
def validation_file():
    rows = softmax_rows(150)
    write_csv("train.csv", rows[:100])
    write_csv("val.csv", rows[100:], header="a,b,c,d,y")
    r = run("softmax", "train", "--data", "train.csv", "--validation-data", "val.csv",
            "--save", "w", "--quiet")
    v = train_lines(r.out, validation=True)
    evaluated = values(run("softmax", "eval", "--weights", "w", "--data", "val.csv").out)
    check(close(v["validation loss"], evaluated["loss"], 1e-9), f"{v} vs {evaluated}")
    trained = values(run("softmax", "eval", "--weights", "w", "--data", "train.csv").out)
    check(close(v["final loss"], trained["loss"], 1e-9), "the training rows are the whole file")


def resume_cases():
    return [
        ("softmax", ["--data", "s.csv", "--batch", "7", "--validation", "0.2"]),
        ("softmax", ["--data", "s.csv", "--optimizer", "adam", "--lr", "0.01", "--schedule",
                     "cosine", "--warmup", "1", "--early-stopping", "on", "--validation", "0.3"]),
        ("logreg", ["--data", "l.csv", "--optimizer", "rmsprop", "--lr", "0.01",
                    "--momentum", "0.5", "--l2", "0.01", "--clip", "1"]),
        ("parabola", ["--optimizer", "adadelta", "--lr", "1"]),
    ]


@test
def resume():
    """Train 2 epochs == train 1, then resume to 2: bit for bit, same stdout."""
    write_csv("s.csv", softmax_rows())
    write_csv("l.csv", logreg_rows())
    for model, args in resume_cases():
        count = "--steps" if model == "parabola" else "--epochs"
        whole = run(model, "train", count, "4", "--save", "whole", "--quiet", *args)
        run(model, "train", count, "2", "--checkpoint-every", "2", "--checkpoint", "c",
            "--no-save", "--quiet", *args)
        header, _ = read_safetensors("c")
        check(header["__metadata__"]["nnrt.kind"] == "checkpoint", header["__metadata__"])
        resumed = run(model, "train", count, "4", "--resume", "c", "--save", "resumed", "--quiet",
                      *args)
        check(open("whole", "rb").read() == open("resumed", "rb").read(),
              f"{model} {args}: resumed weights differ")
        check(whole.out == resumed.out, f"{model} {args}:\n{whole.out}vs\n{resumed.out}")
    expect_error("parabola", ["train", "--resume", "whole"],
                 "whole: error: not a checkpoint of this runtime: no 'nnrt.kind' in its metadata "
                 "(a weights file starts training with --init-weights)")
    run("softmax", "train", "--data", "s.csv", "--epochs", "1", "--checkpoint-every", "1",
        "--checkpoint", "c", "--no-save", "--quiet")
    # The checkpoint is a safetensors file a weights reader takes (state tensors are skipped).
    r = run("softmax", "eval", "--weights", "c", "--data", "s.csv")
    check(r.err == "", r.err)
    expect_error("softmax", ["train", "--data", "s.csv", "--resume", "c", "--optimizer", "adam"],
                 "rt_softmax: error: c was trained with --optimizer sgd; resume it with the same "
                 "optimizer", 2)


@test
def resume_every_optimizer():
    """Each optimizer's checkpoint holds its state, every slot of every param, named as
    docs/runtime.md says; resuming from it ends bit for bit where an uninterrupted run
    ends."""
    write_csv("m.csv", mlp_rows(60))
    docs = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                             "runtime.md")).read()
    slots_row = next(line for line in docs.splitlines() if line.startswith("| `optimizer.SLOT"))
    with_momentum = help_readers("momentum")
    for name in help_optimizers():
        # momentum 0.5: the slots kept only with momentum are there too
        momentum = ["--momentum", "0.5"] if name in with_momentum else []
        args = ["--data", "m.csv", "--optimizer", name, *momentum, "--quiet", *MLP_SGD_OPTIONS]
        whole = run("mlp", "train", "--epochs", "4", "--save", "whole", *args)
        run("mlp", "train", "--epochs", "2", "--checkpoint-every", "2", "--checkpoint", "c",
            "--no-save", *args)
        header, _ = read_safetensors("c")
        slots = {key.split(".")[1] for key in header if key.startswith("optimizer.")}
        check(slots and all(f"optimizer.{slot}.{param}" in header for slot in slots
                            for param in ("W1", "b1", "W2", "b2")), f"{name}: {list(header)}")
        check(name in slots_row and all(f"`{slot}`" in slots_row for slot in slots),
              f"{name}: docs/runtime.md's optimizer.SLOT.PARAM row lacks one of {slots}")
        resumed = run("mlp", "train", "--epochs", "4", "--resume", "c", "--save", "resumed", *args)
        check(open("whole", "rb").read() == open("resumed", "rb").read(),
              f"{name}: resumed weights differ")
        check(whole.out == resumed.out, f"{name}:\n{whole.out}vs\n{resumed.out}")


def interrupt(model, args, checkpoint):
    """Starts training, sends SIGINT once it is under way; returns (exit code, stderr)."""
    proc = subprocess.Popen([exe(model), "train", *args, "--checkpoint", checkpoint],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stderr.readline()  # the first epoch's line: training has begun
    check(first.startswith(b"epoch 1/"), first)
    # At once: a fast machine finishes the whole run in well under a second.
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, (first + err).decode()


@test
def sigint():
    """Ctrl-C finishes the step, saves a checkpoint that loads, and resuming from it ends
    exactly where an uninterrupted run does."""
    write_csv("l.csv", logreg_rows())
    args = ["--data", "l.csv", "--epochs", "30000", "--optimizer", "adam", "--lr", "0.01"]
    code, err = interrupt("logreg", args, "ck")
    check(code == 130, f"exit {code}\n{err}")
    m = re.search(r"^rt_logreg: interrupted at epoch (\d+) \((\d+) of 200 rows\), step (\d+); "
                  r"saved the training state to ck\n"
                  r"rt_logreg: continue with: rt_logreg train --resume ck \(and the same options\)\n\Z",
                  err, re.M)
    check(m, err)
    epoch, rows, step = map(int, m.groups())
    check(epoch < 30000 and (epoch - 1) * 25 + (rows + 7) // 8 == step, m.groups())
    header, _ = read_safetensors("ck")
    meta = header["__metadata__"]
    check(int(meta["nnrt.step"]) == step and int(meta["nnrt.pos"]) == rows % 200, meta)
    check(re.fullmatch(r"loss \S+\naccuracy \S+\n", run("logreg", "eval", "--weights", "ck",
                                                        "--data", "l.csv").out), "eval")
    whole = run("logreg", "train", *args, "--save", "whole", "--quiet")
    resumed = run("logreg", "train", *args, "--resume", "ck", "--save", "resumed", "--quiet")
    check(open("whole", "rb").read() == open("resumed", "rb").read(), "resumed weights differ")
    check(whole.out == resumed.out, f"{whole.out} vs {resumed.out}")


@test
def atomic_save():
    """A save killed part-way (NNRT_TEST_KILL_SAVE_AFTER: SIGKILL after that many bytes)
    leaves the previous file whole."""
    write_csv("l.csv", logreg_rows())
    run("logreg", "train", "--data", "l.csv", "--epochs", "1", "--save", "w", "--quiet")
    before = open("w", "rb").read()
    for after in ("5", "60", str(len(before) - 2)):
        r = run("logreg", "train", "--data", "l.csv", "--epochs", "3", "--save", "w",
                "--quiet", expect=None, env={"NNRT_TEST_KILL_SAVE_AFTER": after})
        check(r.code == -signal.SIGKILL, r.describe())
        check(open("w", "rb").read() == before, f"killed after {after} bytes: w changed")
        leftovers = [f for f in os.listdir(".") if f.startswith("w.tmp.")]
        check(len(leftovers) == 1 and os.path.getsize(leftovers[0]) >= int(after),
              f"the partial file: {leftovers}")
        os.remove(leftovers[0])
        read_safetensors("w")
    run("logreg", "train", "--data", "l.csv", "--epochs", "3", "--save", "w", "--quiet")
    check(open("w", "rb").read() != before, "a whole save replaces the file")
    # Through a symlink (the temporary file goes next to the target), and a checkpoint.
    os.mkdir("real")
    os.rename("w", "real/w")
    os.symlink("real/w", "w.link")
    before = open("real/w", "rb").read()
    for args in (["--save", "w.link"],
                 ["--checkpoint-every", "1", "--checkpoint", "w.link", "--no-save"]):
        r = run("logreg", "train", "--data", "l.csv", "--epochs", "3", "--quiet", *args,
                expect=None, env={"NNRT_TEST_KILL_SAVE_AFTER": "60"})
        check(r.code == -signal.SIGKILL, r.describe())
        check(open("real/w", "rb").read() == before and os.readlink("w.link") == "real/w",
              f"{args}: killed, yet the file changed")
        leftovers = [f for f in os.listdir("real") if f.startswith("w.tmp.")]
        check(len(leftovers) == 1, f"the partial file: {os.listdir('real')}")
        os.remove(os.path.join("real", leftovers[0]))


# ---- outputs: never an input, never a device replaced, never a silent loss ----


def snapshot(names):
    return {name: open(name, "rb").read() for name in names}


def clobber_error(out_flag, out_path, in_flag, in_path, model="logreg"):
    fix = "give another --save FILE, or --no-save" if out_flag == "--save" else "choose another file"
    return (f"rt_{model}: error: {out_flag} {out_path} is the same file as {in_flag} {in_path}: "
            f"writing it would destroy the input; {fix}")


@test
def same_file():
    """No output is the same file (device and inode, through a symlink or a hard link) as an
    input, or as another output: a usage error before anything is opened for writing."""
    write_csv("d.csv", logreg_rows())
    write_csv("v.csv", logreg_rows(50, seed=2))
    run("logreg", "train", "--data", "d.csv", "--epochs", "1", "--save", "w0", "--quiet")
    run("logreg", "train", "--data", "d.csv", "--epochs", "1", "--checkpoint-every", "1",
        "--checkpoint", "ck", "--no-save", "--quiet")
    inputs = [("--data", "d.csv"), ("--validation-data", "v.csv"), ("--init-weights", "w0"),
              ("--resume", "ck")]
    outputs = [("--save", []), ("--checkpoint", ["--checkpoint-every", "1"]), ("--log", []),
               ("--plot", []), ("--trace-out", ["--trace", "lin.b"])]
    for _, path in inputs:
        os.symlink(path, path + ".link")
        os.link(path, path + ".hard")
    before = snapshot([path for _, path in inputs])
    for out_flag, out_args in outputs:
        for in_flag, path in inputs:
            if (out_flag, in_flag) == ("--checkpoint", "--resume"):
                continue  # continuing a checkpoint in place: allowed, below
            input_args = [] if in_flag == "--data" else [in_flag, path]
            for alias in (path, path + ".link", path + ".hard"):
                expect_error("logreg", ["train", "--data", "d.csv", *input_args, *out_args,
                                        out_flag, alias],
                             clobber_error(out_flag, alias, in_flag, path), 2)
    check(snapshot(before) == before, "an input changed")
    # Resuming a checkpoint and checkpointing to the same file continues it.
    run("logreg", "train", "--data", "d.csv", "--epochs", "3", "--resume", "ck",
        "--checkpoint-every", "1", "--checkpoint", "ck.link", "--no-save", "--quiet")
    check(read_safetensors("ck")[0]["__metadata__"]["nnrt.epoch"] == "3", "ck not continued")
    # Both files of an IDX pair.
    pixels, labels = idx_samples()
    write("img", idx_bytes([300, 2, 2], pixels))
    write("lab", idx_bytes([300], labels))
    for out_flag, path, role in (("--save", "lab", "--data (labels)"),
                                 ("--log", "img", "--data (images)")):
        expect_error("softmax_idx", ["train", "--data", "img,lab", out_flag, path],
                     clobber_error(out_flag, path, role, path, "softmax_idx"), 2)
    check(open("lab", "rb").read() == idx_bytes([300], labels), "labels changed")
    # Two outputs, whether the file exists yet or not, by any name.
    os.symlink("x", "x.link")
    for a, b in ((["--log", "x"], ["--plot", "x"]),
                 (["--log", "x"], ["--trace", "lin.b", "--trace-out", "./x"]),
                 (["--checkpoint", "x"], ["--plot", "x.link"]),
                 ([], ["--log", "logreg.safetensors"])):
        first = a[-2:] if a else ["--save", "logreg.safetensors"]
        expect_error("logreg", ["train", "--data", "d.csv", *a, *b],
                     f"rt_logreg: error: {first[0]} {first[1]} and {b[-2]} {b[-1]} are the same "
                     f"file: one would overwrite the other; give each its own", 2)
        check(not os.path.exists("x"), "x was written")
    # search writes --save and --plot only.
    expect_error("logreg", ["search", "--data", "d.csv", "--lr", "0.1,0.2", "--init-weights",
                            "w0", "--save", "w0.hard"],
                 clobber_error("--save", "w0.hard", "--init-weights", "w0"), 2)
    # A device is a stream, which outputs may share: not a clash.
    null = device_node("null", 1, 3, "/dev/null")
    run("logreg", "train", "--data", "d.csv", "--epochs", "1", "--save", null, "--log", null,
        "--plot", null, "--quiet")


def read_fifo(path, proc):
    """Everything written to the FIFO at path by proc (which opens it for writing), and
    proc's result."""
    got = []
    reader = threading.Thread(target=lambda: got.append(open(path, "rb").read()))
    reader.start()
    out, err = proc.communicate(timeout=60)
    reader.join(timeout=10)
    if reader.is_alive():  # proc never opened it: a writer of our own releases the reader
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        reader.join()
    return (got[0] if got else b""), proc.returncode, err.decode()


@test
def special_outputs():
    """An output path that is a symlink is written through (its target replaced, the link
    kept); a device or a FIFO is written directly, never replaced; a folder is refused."""
    write_csv("d.csv", logreg_rows())
    train = ["train", "--data", "d.csv", "--epochs", "2", "--quiet"]
    run("logreg", *train, "--save", "plain", "--plot", "plain.svg", "--log", "plain.csv",
        "--checkpoint-every", "2", "--checkpoint", "plain.ckpt", "--trace", "lin.b",
        "--trace-out", "plain.trace")
    # Devices: a full one fails every output kind, with its reason; a null one takes them all.
    full, null = device_node("full", 1, 7, "/dev/full"), device_node("null", 1, 3, "/dev/null")
    for args in (["--save", full], ["--plot", full, "--no-save"],
                 ["--checkpoint-every", "1", "--checkpoint", full, "--no-save"],
                 ["--log", full, "--no-save"], ["--trace", "lin.b", "--trace-out", full, "--no-save"]):
        expect_error("logreg", train + args, f"{full}: error: cannot write: No space left on device")
        check(stat.S_ISCHR(os.stat(full).st_mode), f"{args}: {full} is no longer a device")
    run("logreg", *train, "--save", null, "--plot", null, "--log", null, "--checkpoint-every", "1",
        "--checkpoint", null, "--trace", "lin.b", "--trace-out", null)
    check(stat.S_ISCHR(os.stat(null).st_mode), f"{null} is no longer a device")
    # A FIFO gets the bytes a file would.
    for flag, name in (("--save", "plain"), ("--log", "plain.csv"), ("--plot", "plain.svg")):
        os.mkfifo("pipe")
        proc = subprocess.Popen([exe("logreg"), *train, "--no-save", flag, "pipe"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        data, code, err = read_fifo("pipe", proc)
        check(code == 0 and stat.S_ISFIFO(os.stat("pipe").st_mode), f"{flag}: exit {code} {err}")
        if flag == "--log":  # its seconds differ from run to run
            data, want = (re.sub(rb",[0-9.]+,[0-9]+\n", b"\n", x)
                          for x in (data, open(name, "rb").read()))
        else:
            want = open(name, "rb").read()
        check(data == want, f"{flag} through a FIFO: {data[:80]!r}")
        os.remove("pipe")
    # Symlinks, relative to their own folder, to a file or to nothing yet, in a chain: the
    # target is replaced (keeping its permissions), the links stay links.
    os.mkdir("real")
    write("real/w", b"old")
    os.chmod("real/w", 0o640)
    links = {"w.link": "real/w", "w.chain": "w.link", "real/svg.link": "new.svg",
             "ck.link": "real/ck", "log.link": "real/log.csv", "trace.link": "real/trace.csv"}
    for link, target in links.items():
        os.symlink(target, link)
    run("logreg", *train, "--save", "w.chain", "--plot", "real/svg.link", "--checkpoint-every",
        "2", "--checkpoint", "ck.link", "--log", "log.link", "--trace", "lin.b", "--trace-out",
        "trace.link")
    check(all(os.readlink(link) == target for link, target in links.items()), "a link changed")
    for target, same_as in (("real/w", "plain"), ("real/new.svg", "plain.svg"),
                            ("real/ck", "plain.ckpt"), ("real/trace.csv", "plain.trace")):
        check(open(target, "rb").read() == open(same_as, "rb").read(), f"{target} differs")
    check(log_rows("real/log.csv")[1]["loss"] == log_rows("plain.csv")[1]["loss"], "log")
    check(stat.S_IMODE(os.stat("real/w").st_mode) == 0o640, "the permissions changed")
    check(sorted(os.listdir("real")) == ["ck", "log.csv", "new.svg", "svg.link", "trace.csv",
                                         "w"], os.listdir("real"))
    # What is never written: a folder, a loop of links.
    expect_error("logreg", train + ["--save", "real"], "real: error: cannot write: Is a directory")
    os.symlink("loop", "loop")
    expect_error("logreg", train + ["--plot", "loop"],
                 "loop: error: cannot write: Too many levels of symbolic links")


class FullDisk:
    """A small tmpfs mounted on `folder`, holding the given files, then filled to the last
    byte. Skips the test when mounting is not permitted (not root, no CAP_SYS_ADMIN)."""

    def __init__(self, folder, files):
        self.folder = os.path.abspath(folder)
        self.files = files

    def __enter__(self):
        os.mkdir(self.folder)
        mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", self.folder],
                               capture_output=True, text=True)
        if mount.returncode != 0:
            raise Skip(f"cannot mount a tmpfs to fill: {mount.stderr.strip()}")
        try:
            for name, data in self.files.items():
                write(os.path.join(self.folder, name), data)
            self.fill()
        except BaseException:
            self.__exit__()
            raise
        return self

    def fill(self):
        try:
            with open(os.path.join(self.folder, "filler"), "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError as e:
            if e.errno != 28:  # ENOSPC: full, as wanted
                raise

    def __exit__(self, *exc):
        subprocess.run(["umount", self.folder], check=True)


@test
def disk_full():
    """Every output on a full disk: the run fails with the reason (exit 1), and a file that
    is replaced whole (weights, checkpoints, the plot) keeps its old contents."""
    write_csv("d.csv", logreg_rows())
    write_csv("x.csv", [row[:2] for row in logreg_rows()])
    run("logreg", "train", "--data", "d.csv", "--epochs", "1", "--save", "w", "--quiet")
    old = {"w": b"old weights", "c": b"old checkpoint", "p.svg": b"old plot"}
    train = ["train", "--data", "d.csv", "--epochs", "3", "--quiet", "--no-save"]
    full = "No space left on device"
    with FullDisk("disk", old):
        for args, path in ((["--save", "disk/w"], "disk/w"), (["--plot", "disk/p.svg"], "disk/p.svg"),
                           (["--checkpoint-every", "1", "--checkpoint", "disk/c"], "disk/c"),
                           (["--log", "disk/log.csv"], "disk/log.csv"),
                           (["--trace", "lin.b", "--trace-out", "disk/t.csv"], "disk/t.csv")):
            expect_error("logreg", train + args, f"{path}: error: cannot write: {full}")
        check(snapshot(f"disk/{name}" for name in old) == {f"disk/{k}": v for k, v in old.items()},
              "a file replaced whole changed")
        check(sorted(os.listdir("disk")) == sorted([*old, "filler", "log.csv", "t.csv"]),
              f"temporary files left: {os.listdir('disk')}")
        # search: its --save, and its table on stdout
        search = ["search", "--data", "d.csv", "--epochs", "2", "--lr", "0.1,0.5", "--strategy",
                  "grid", "--quiet"]
        r = run("logreg", *search, "--save", "disk/w", expect=1)
        check(r.err == f"disk/w: error: cannot write: {full}\n", r.err)
        check(open("disk/w", "rb").read() == old["w"], "search replaced the weights")
        # Standard output into a file on the full disk: train's lines, the trace, search's
        # table, predict's rows, eval's lines.
        for args in (train, [*train, "--trace", "lin.b"], [*search, "--no-save"],
                     ["predict", "--weights", "w", "--data", "x.csv"],
                     ["eval", "--weights", "w", "--data", "d.csv"]):
            with open("disk/out", "wb") as out:
                proc = subprocess.run([exe("logreg"), *args], stdout=out, stderr=subprocess.PIPE,
                                      timeout=60)
            err = proc.stderr.decode()
            check(proc.returncode == 1 and err.endswith(f"rt_logreg: error: cannot write the "
                                                         f"output: {full}\n"), f"{args}: {err}")
    # A log that fills the disk part-way is not cut short without a word.
    with FullDisk("disk2", {}):
        os.remove("disk2/filler")
        write("disk2/filler", b"\0" * (256 * 1024 - 8192))
        expect_error("logreg", ["train", "--data", "d.csv", "--epochs", "400", "--no-save",
                                "--log", "disk2/log.csv", "--quiet"],
                     f"disk2/log.csv: error: cannot write: {full}")
        check(0 < os.path.getsize("disk2/log.csv") <= 8192, "the log was not cut by the disk")


# ---- data: standardisation, gzip, columns by name ----


def softmax_forward(w, b, x):
    z = [sum(x[i] * w[i * 3 + j] for i in range(4)) + b[j] for j in range(3)]
    top = max(z)
    e = [math.exp(v - top) for v in z]
    return [v / sum(e) for v in e]


@test
def standardize():
    """--standardize on: the training rows' mean and std, saved with the weights and applied
    by eval and predict."""
    rows = [(x0 * 100 + 500, x1 * 0.01, x2, x3 - 7, y) for x0, x1, x2, x3, y in softmax_rows()]
    write_csv("d.csv", rows)
    r = run("softmax", "train", "--data", "d.csv", "--standardize", "on", "--validation", "0.2",
            "--save", "w", "--quiet")
    v = train_lines(r.out, validation=True)
    check(v["final accuracy"] >= 0.9, r.out)
    header, t = read_safetensors("w")
    check(header["standardize.mean"]["shape"] == [4] and header["standardize.mean"]["dtype"] ==
          "F64", header)
    # With a validation split the statistics are the training rows' only: near the whole
    # file's, not equal (checked exactly below, without a split).
    mean, std = t["standardize.mean"][2], t["standardize.std"][2]
    for c in range(4):
        col = [row[c] for row in rows]
        m_all = sum(col) / len(col)
        s_all = math.sqrt(sum((x - m_all) ** 2 for x in col) / len(col))
        check(abs(mean[c] - m_all) < 0.5 * s_all and 0.5 < std[c] / s_all < 1.5,
              f"column {c}: mean {mean[c]} std {std[c]} vs {m_all} {s_all}")
    # With no validation rows the statistics are the whole file's, exactly.
    run("softmax", "train", "--data", "d.csv", "--standardize", "on", "--save", "w2", "--quiet")
    _, t = read_safetensors("w2")
    mean, std = t["standardize.mean"][2], t["standardize.std"][2]
    for c in range(4):
        col = [row[c] for row in rows]
        m_all = sum(col) / len(col)
        s_all = math.sqrt(sum((x - m_all) ** 2 for x in col) / len(col))
        check(close(mean[c], m_all, 1e-12) and close(std[c], s_all, 1e-9), f"column {c}")
    trained = values(run("softmax", "train", "--data", "d.csv", "--standardize", "on",
                         "--save", "w2", "--quiet").out)
    evaluated = values(run("softmax", "eval", "--weights", "w2", "--data", "d.csv").out)
    check(close(evaluated["loss"], trained["final loss"], 1e-9), f"{evaluated} vs {trained}")
    out = run("softmax", "predict", "--weights", "w2",
              stdin=",".join(map(str, rows[0][:4])).encode()).out
    x = [(rows[0][c] - mean[c]) / std[c] for c in range(4)]
    wanted = softmax_forward(t["fc.W"][2], t["fc.b"][2], x)
    check(all(close(float(a), b, 1e-7) for a, b in zip(out.split(","), wanted)), f"{out} {wanted}")
    # Without standardising, the badly scaled inputs train worse in the same epochs.
    plain = values(run("softmax", "train", "--data", "d.csv", "--lr", "0.01", "--no-save",
                       "--quiet").out)
    scaled = values(run("softmax", "train", "--data", "d.csv", "--lr", "0.01", "--standardize",
                        "on", "--no-save", "--quiet").out)
    check(scaled["final loss"] < plain["final loss"], f"{scaled} vs {plain}")


@test
def gzip_data():
    """IDX (and CSV) files may be gzip'd: the same rows, the same weights bit for bit."""
    import gzip
    pixels, labels = idx_samples()
    write("img", idx_bytes([300, 2, 2], pixels))
    write("lab", idx_bytes([300], labels))
    write("img.gz", gzip.compress(idx_bytes([300, 2, 2], pixels)))
    write("lab.gz", gzip.compress(idx_bytes([300], labels)))
    run("softmax_idx", "train", "--data", "img,lab", "--save", "a", "--quiet")
    run("softmax_idx", "train", "--data", "img.gz,lab.gz", "--save", "b", "--quiet")
    check(open("a", "rb").read() == open("b", "rb").read(), "gzip'd IDX trains differently")
    run("softmax_idx", "eval", "--weights", "a", "--data", "img.gz,lab")
    check(len(run("softmax_idx", "predict", "--weights", "a", "--data", "img.gz").out
              .splitlines()) == 300, "predict on a gzip'd IDX file")
    write_csv("d.csv", softmax_rows())
    write("d.csv.gz", gzip.compress(open("d.csv", "rb").read()))
    run("softmax", "train", "--data", "d.csv", "--save", "a", "--quiet")
    run("softmax", "train", "--data", "d.csv.gz", "--save", "b", "--quiet")
    check(open("a", "rb").read() == open("b", "rb").read(), "gzip'd CSV trains differently")
    whole = gzip.compress(idx_bytes([300, 2, 2], pixels))
    write("cut.gz", whole[:len(whole) // 2])
    r = run("softmax_idx", "train", "--data", "cut.gz,lab", expect=1)
    check(re.fullmatch(r"cut\.gz: error: truncated gzip data \(\d+ bytes inflated\)\n", r.err),
          r.err)
    write("bad.gz", whole[:10] + b"\xff" * 40 + whole[50:])
    r = run("softmax_idx", "train", "--data", "bad.gz,lab", expect=1)
    check(re.fullmatch(r"bad\.gz: error: not valid gzip data: .+\n", r.err), r.err)


@test
def columns():
    """--columns maps inputs and targets to columns by index or by header name."""
    rows = softmax_rows()
    write_csv("plain.csv", rows)
    write_csv("named.csv", [(r[4], *r[:4], 0) for r in rows], header="label,a,b,c,d,extra")
    run("softmax", "train", "--data", "plain.csv", "--save", "a", "--quiet")
    run("softmax", "train", "--data", "named.csv", "--columns", "x=a..d,y=label", "--save", "b",
        "--quiet")
    check(open("a", "rb").read() == open("b", "rb").read(), "named columns read other values")
    run("softmax", "train", "--data", "named.csv", "--columns", "y=0,x=1..4", "--save", "c",
        "--quiet")
    check(open("a", "rb").read() == open("c", "rb").read(), "indexes read other values")
    evaluated = run("softmax", "eval", "--weights", "b", "--data", "named.csv", "--columns",
                    "x=a..d,y=label").out
    check(evaluated == run("softmax", "eval", "--weights", "a", "--data", "plain.csv").out,
          evaluated)
    cases = [
        (["--data", "named.csv", "--columns", "x=a..zz,y=label"],
         "rt_softmax: error: --columns: named.csv has no column named 'zz'", 2),
        (["--data", "plain.csv", "--columns", "x=a..d"],
         "rt_softmax: error: --columns: 'a' is not a column index, and plain.csv has no header "
         "to name columns", 2),
        (["--data", "named.csv", "--columns", "q=a"],
         "rt_softmax: error: --columns: model 'softmax' has no input or target 'q'", 2),
        (["--data", "named.csv", "--columns", "x=a..c"],
         "rt_softmax: error: --columns: 'x' has 4 values but CSV columns 1..3", 1),
        (["--data", "named.csv", "--columns", "x"],
         "rt_softmax: error: --columns: 'x' is not TENSOR=COLUMNS", 2),
    ]
    for args, message, code in cases:
        expect_error("softmax", ["train", *args], message, code)


# ---- inputs: bounded, checked, never silently misread ----


MB = 1 << 20


def run_measured(model, args, stdin_path=os.devnull, address_space=None):
    """Runs a model to its end; returns (Result, the child's peak resident memory in bytes,
    as wait4 reports it). address_space: an RLIMIT_AS for the child."""
    def limit():
        if address_space:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    with open("run.out", "wb") as out, open("run.err", "wb") as err, \
            open(stdin_path, "rb") as inp:
        proc = subprocess.Popen([exe(model), *args], stdin=inp, stdout=out, stderr=err,
                                preexec_fn=limit)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout, proc.stderr = open("run.out", "rb").read(), open("run.err", "rb").read()
    return Result(proc), usage.ru_maxrss * 1024


def sanitized():
    """ASan reserves terabytes of address space: no RLIMIT_AS for its executables."""
    return "-fsanitize" in (ARGS.extra_flags or "")


def memory_budget(address_space):
    """What the runtime takes for its memory under RLIMIT_AS = address_space."""
    budget = min(address_space, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    try:
        budget = min(budget, int(open("/sys/fs/cgroup/memory.max").read()))
    except (OSError, ValueError):
        pass
    return budget


def gzip_repeated(head, piece, count):
    """gzip data of head + count * piece, as concatenated members (one compressed piece,
    repeated): megabytes that inflate to gigabytes, made in a moment."""
    import gzip
    return gzip.compress(head) + gzip.compress(piece) * count


LOGREG_W = {"lin.W": ("F32", [2, 1], [1.0, -2.0]), "lin.b": ("F32", [1], [0.5])}


@test
def csv_first_line():
    """The first line is a header only when it is names: a byte-order mark is skipped, a
    first row with one bad field is an error at its line and column, never a header."""
    write_safetensors("w", LOGREG_W)
    write_csv("plain.csv", logreg_rows(20))
    rows = open("plain.csv", "rb").read()
    plain = run("logreg", "eval", "--weights", "w", "--data", "plain.csv").out
    bom = "\ufeff".encode()
    same = [("bom.csv", bom + rows), ("bom_header.csv", bom + b"x0,x1,y\r\n" + rows),
            ("quoted.csv", b'"x0","x1","y"\n' + rows), ("crlf.csv", bom + rows.replace(b"\n", b"\r\n"))]
    for name, content in same:
        write(name, content)
        r = run("logreg", "eval", "--weights", "w", "--data", name)
        check(r.out == plain and r.err == "", f"{name}:\n{r.describe()}\nwanted:\n{plain}")
    r = run("logreg", "predict", "--weights", "w", stdin=bom + b"0,0\n1,1\n")
    check(len(r.out.splitlines()) == 2, f"a row lost after a byte-order mark:\n{r.describe()}")
    # Names with a number among them: a header, said so.
    write("mixed.csv", b"x0,2019,y\n" + rows)
    r = run("logreg", "eval", "--weights", "w", "--data", "mixed.csv")
    check(r.out == plain and r.err == "mixed.csv:1: warning: taken as a header (most of its fields "
          "are not numbers), though its column 1 is the number 2019\n", r.describe())
    # Header names in quotes name columns too.
    write("named.csv", b'"label","a","b"\n' + b"".join(
        b",".join([f.split(b",")[2], *f.split(b",")[:2]]) + b"\n" for f in rows.splitlines()))
    r = run("logreg", "eval", "--weights", "w", "--data", "named.csv", "--columns", "x=a..b,y=label")
    check(r.out == plain, r.describe())
    hint = " (the first line is data, not a header: most of its fields are numbers)"
    errors = [
        ("typo.csv", b"0.1,O.2,1\n" + rows, "typo.csv:1: error: column 1: 'O.2' is not a number" + hint),
        ("bom_typo.csv", bom + b"0.5,0.2,l\n" + rows,
         "bom_typo.csv:1: error: column 2: 'l' is not a number" + hint),
        ("index.csv", b",0,1\n0,0.1,0.2\n", "index.csv:1: error: column 0 is empty"),
        ("utf16.csv", "x0,x1,y\n0,0,1\n".encode("utf-16"),
         'utf16.csv:byte 0: error: the file is UTF-16 text; CSV is read as UTF-8 (save it as "CSV UTF-8")'),
        ("nul.csv", b"0.1,\0,1\n", "nul.csv:1: error: column 1: '\\u0000' is not a number" + hint),
        ("bytes.csv", b"0.1,\xff\x01,1\n",
         "bytes.csv:1: error: column 1: '\\xff\\u0001' is not a number" + hint),
    ]
    for name, content, message in errors:
        write(name, content)
        expect_error("logreg", ["eval", "--weights", "w", "--data", name], message)
    expect_error("logreg", ["train", "--data", "typo.csv", "--columns", "x=a..b,y=2"],
                 "rt_logreg: error: --columns: 'a' is not a column index, and typo.csv has no "
                 "header to name columns (its first line is data: most of its fields are numbers)", 2)


@test
def bounded_reads():
    """Every data or weights read is bounded: devices are refused, a gzip bomb or a stream
    of zeros stops at once in little memory, and data beyond the memory limit is refused
    before it fills memory."""
    write_safetensors("w", LOGREG_W)
    write_csv("d.csv", logreg_rows(20))
    device = "/dev/zero: error: cannot read: a character device, not a file"
    expect_error("logreg", ["train", "--data", "/dev/zero"], device)
    expect_error("logreg", ["train", "--init-weights", "/dev/zero", "--data", "d.csv"], device)
    expect_error("logreg", ["eval", "--weights", "/dev/zero", "--data", "d.csv"], device)
    os.mkfifo("pipe")  # weights are read at offsets: a pipe is refused without waiting on it
    expect_error("logreg", ["predict", "--weights", "pipe"],
                 "pipe: error: cannot read: a pipe, not a file (it is read at offsets)")

    # 2 MB of gzip inflating to 2 GiB of zeros (a CSV), or to an IDX header and then zeros.
    zeros = bytes(64 * MB)
    write("bomb.csv.gz", gzip_repeated(b"", zeros, 32))
    r, peak = run_measured("logreg", ["train", "--data", "bomb.csv.gz", "--no-save"])
    check(r.code == 1 and r.err == "bomb.csv.gz:byte 0: error: a NUL byte: this is not CSV text\n",
          r.describe())
    check(peak < 256 * MB, f"a gzip bomb took {peak} bytes")
    pixels, labels = idx_samples(30)
    write("lab", idx_bytes([30], labels))
    write("img.gz", gzip_repeated(idx_bytes([30, 2, 2], pixels), zeros, 32))
    r, peak = run_measured("softmax_idx", ["train", "--data", "img.gz,lab", "--no-save"])
    check(r.code == 1 and r.err == "img.gz:byte 136: error: the data goes on after the 120 data "
          "bytes the header promises\n", r.describe())
    check(peak < 256 * MB, f"an IDX gzip bomb took {peak} bytes")
    # Standard input that never ends.
    r, peak = run_measured("logreg", ["predict", "--weights", "w"], stdin_path="/dev/zero")
    check(r.code == 1 and r.err == "<stdin>:byte 0: error: a NUL byte: this is not CSV text\n",
          r.describe())
    check(peak < 256 * MB, f"reading /dev/zero took {peak} bytes")

    # Data through a pipe is read (and checked as it comes).
    plain = run("logreg", "eval", "--weights", "w", "--data", "d.csv").out
    for content, wanted in [(open("d.csv", "rb").read(), None), (bytes(4 * MB), 1)]:
        def feed():
            try:
                with open("pipe", "wb") as f:
                    f.write(content)
            except BrokenPipeError:
                pass
        writer = threading.Thread(target=feed)
        writer.start()
        r = run("logreg", "eval", "--weights", "w", "--data", "pipe", expect=None)
        writer.join()
        if wanted is None:
            check(r.code == 0 and r.out == plain, r.describe())
        else:
            check(r.code == 1 and r.err == "pipe:byte 0: error: a NUL byte: this is not CSV text\n",
                  r.describe())

    if sanitized():
        return
    # Real-looking text past the limit: half the memory the process may use.
    space = 1 << 30
    limit = memory_budget(space) // 2
    write("text.csv.gz", gzip_repeated(b"", b"0,0,1\n" * (8 * MB // 6), 2 * limit // (8 * MB) + 1))
    r, peak = run_measured("logreg", ["train", "--data", "text.csv.gz", "--no-save"],
                           address_space=space)
    check(r.code == 1 and r.err == f"text.csv.gz: error: too large: its gzip data inflates to more "
          f"than the {limit} bytes a data file may have here (half the memory this process may "
          "use)\n", r.describe())
    with open("big.csv", "wb") as f:  # sparse: no disk used
        f.truncate(limit + 1)
    r, _ = run_measured("logreg", ["train", "--data", "big.csv", "--no-save"], address_space=space)
    check(r.code == 1 and r.err == f"big.csv: error: too large: {limit + 1} bytes, more than the "
          f"{limit} bytes a data file may have here (half the memory this process may use)\n",
          r.describe())


@test
def many_tensors():
    """A header with 400 000 tensors the model does not know: one warning line that
    summarises them, and linear work (frees that searched the allocation list took minutes
    at this size, past the harness's timeout)."""
    n = 400000
    header = {"lin.W": {"dtype": "F32", "shape": [2, 1], "data_offsets": [0, 8]},
              "lin.b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}
    for i in range(n):
        header[f"x{i}"] = {"dtype": "F32", "shape": [1], "data_offsets": [12 + 4 * i, 16 + 4 * i]}
    raw = json.dumps(header).encode()
    write("w", struct.pack("<Q", len(raw)) + raw + struct.pack("<3f", 1.0, -2.0, 0.5) + bytes(4 * n))
    r = run("logreg", "predict", "--weights", "w", stdin=b"0,0\n")
    check(r.err == f"w: warning: {n} tensors are not params of the model; ignored: 'x0', 'x1', "
          f"'x2' and {n - 3} more\n", r.err[:500])
    check(close(float(r.out), sigmoid(0.5), 1e-6), r.out)
    write_safetensors("w2", {**LOGREG_W, "a": ("F32", [1], [0.0]), "b": ("F32", [1], [0.0])})
    r = run("logreg", "predict", "--weights", "w2", stdin=b"0,0\n")
    check(r.err == "w2: warning: 2 tensors are not params of the model; ignored: 'a', 'b'\n", r.err)


def raw_safetensors(path, header, body):
    raw = header.encode() if isinstance(header, str) else header
    write(path, struct.pack("<Q", len(raw)) + raw + body)
    return raw


def byte_of(raw, text, nth=0):
    """File offset of the nth occurrence of text in a header (after the length field)."""
    at = -1
    for _ in range(nth + 1):
        at = raw.index(text.encode() if isinstance(text, str) else text, at + 1)
    return 8 + at


def entry_at(raw, name, nth=0):
    """File offset of the nth JSON string "name" in a header (name as written, escapes
    included)."""
    return byte_of(raw, '"' + name + '"', nth)


@test
def safetensors_checks():
    """Every tensor's byte range is checked against its dtype and shape and against the
    others (no overlap, no gap, nothing after the last), names are unique, and a name with
    a NUL or a control character is shown escaped."""
    body = struct.pack("<3f", 1.0, -2.0, 0.5)
    W = '"lin.W":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]}'

    def b(offsets, dtype="F32", shape="[1]", name="lin.b"):
        return f'"{name}":{{"dtype":"{dtype}","shape":{shape},"data_offsets":{offsets}}}'

    st = "safetensors header: "
    ctl = "x\\u0000\\n"  # a name with a NUL and a line feed, as JSON escapes
    cases = [
        ("{" + W + "," + b("[4,8]") + "}", body,
         lambda raw: f"w:byte {entry_at(raw, 'lin.b')}: error: {st}tensor 'lin.b' (data_offsets "
                     "[4, 8]) overlaps tensor 'lin.W' ([0, 8])"),
        ("{" + W + "," + b("[12,16]") + "}", body + bytes(4),
         lambda raw: f"w:byte {entry_at(raw, 'lin.b')}: error: {st}tensor 'lin.b' begins at data "
                     "byte 12, but the tensors before it end at 8 (the data must have no gaps)"),
        ("{" + W + "," + b("[8,12]") + "}", body + b"junk",
         lambda raw: f"w:byte {8 + len(raw) + 12}: error: 4 bytes after the data of the last tensor"),
        ("{" + W + "," + b("[12,8]") + "}", body,
         lambda raw: f"w:byte {entry_at(raw, 'lin.b')}: error: {st}tensor 'lin.b' has data_offsets "
                     "[12, 8], but shape [1] of F32 needs 4 bytes"),
        ("{" + W + "," + b("[8,12]") + "}", body[:10],
         lambda raw: f"w:byte {entry_at(raw, 'lin.b')}: error: {st}tensor 'lin.b' has data_offsets "
                     "[8, 12], past the end of the 10 bytes of data"),
        ("{" + W + "," + b("[8,12]") + "," + W.replace("[0,8]", "[12,20]") + "}", body + bytes(8),
         lambda raw: f"w:byte {entry_at(raw, 'lin.W', 1)}: error: {st}tensor 'lin.W' appears twice "
                     "(first at byte 9)"),
        ("{" + W + "," + b("[8,12]", dtype="Q7") + "}", body,
         lambda raw: f"w:byte {entry_at(raw, 'Q7')}: error: {st}tensor 'lin.b' has an unknown "
                     "dtype 'Q7'"),
        ("{" + W + "," + b("[8,12]") + "," + b("[12,12]", shape="[1099511627776,1099511627776]",
                                                  name="big") + "}", body,
         lambda raw: f"w:byte {entry_at(raw, 'big')}: error: {st}tensor 'big' has shape "
                     "[1099511627776, 1099511627776]: too many elements"),
        ("{" + W + ',"lin.b":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[8,12]}}', body,
         lambda raw: f"w:byte {byte_of(raw, 'dtype', 2) + 7}: error: {st}tensor 'lin.b' has two 'dtype'"),
        (b'{"\xff":0}', b"", lambda raw: f"w:byte 10: error: {st}byte 0xff in a string is not UTF-8"),
        ('{"\\ud800x":0}', b"",
         lambda raw: f"w:byte 16: error: {st}a high surrogate without its low half in a \\u escape"),
        ('{"__metadata__":{},"__metadata__":{}}', b"",
         lambda raw: f"w:byte {entry_at(raw, '__metadata__', 1)}: error: {st}two __metadata__"),
        ("{" + W + "," + b("[8,12]") + "," + b("[12,16]", name=ctl) + "," + b("[16,20]", name=ctl) + "}", body + bytes(8),
         lambda raw: f"w:byte {entry_at(raw, ctl, 1)}: error: {st}tensor 'x\\u0000\\u000a' appears "
                     f"twice (first at byte {entry_at(raw, ctl)})"),
        ('{"__metadata__":{"n":1-2}}', b"",
         lambda raw: f"w:byte {byte_of(raw, '-')}: error: {st}expected '}}', found '-'"),
        ('{"\0":1}', b"", lambda raw: f"w:byte 10: error: {st}control character in a string"),
        ("{" + W + "," + b("[8,12]") + "}", body[:8] + struct.pack("<f", math.nan),
         lambda raw: "w: error: tensor 'lin.b' holds nan at element 0"),
    ]
    for header, data, message in cases:
        raw = raw_safetensors("w", header, data)
        expect_error("logreg", ["predict", "--weights", "w"], message(raw))
    # The length field: past the end, or more than a header may have (a sparse file).
    raw_safetensors("w", "{}", b"")
    with open("w", "r+b") as f:
        f.write(struct.pack("<Q", 150_000_000))
        f.truncate(160_000_000)
    expect_error("logreg", ["predict", "--weights", "w"],
                 "w: error: not a safetensors file: the header length 150000000 is more than the "
                 "100000000 bytes a header may have")
    # A name with a NUL in it is not the param it starts like; messages show it escaped.
    raw_safetensors("w", "{" + W + "," + b("[8,12]", name="lin.b\\u0000") + "}", body)
    expect_error("logreg", ["predict", "--weights", "w"], "w: error: missing tensor 'lin.b'")
    raw_safetensors("w", "{" + W + "," + b("[8,12]") + "," + b("[12,16]", name="lin.b\\u0000\\u001b[2J")
                    + "}", body + bytes(4))
    r = run("logreg", "predict", "--weights", "w", stdin=b"0,0\n")
    check(r.err == "w: warning: tensor 'lin.b\\u0000\\u001b[2J' is not a param of the model; "
          "ignored\n", r.err)
    # Metadata whose value a NUL would cut short.
    raw = raw_safetensors("w", '{"__metadata__":{"nnrt.kind":"checkpoint\\u0000x"},' + W + ","
                          + b("[8,12]") + "}", body)
    expect_error("parabola", ["train", "--resume", "w"],
                 f"w:byte {entry_at(raw, 'nnrt.kind')}: error: {st}metadata 'nnrt.kind' holds "
                 "a NUL character")


@test
def columns_range():
    """Column indexes are read in 64 bits and checked, from --columns and from the
    descriptor: nothing wraps around to column 0."""
    write_csv("d.csv", logreg_rows(20))
    for spec, shown in [("x=4294967296..4294967297,y=2", "4294967296"), ("x=0..1,y=2147483647", "2147483647"),
                        ("x=0..1,y=99999999999999999999999", "99999999999999999999999")]:
        expect_error("logreg", ["train", "--data", "d.csv", "--columns", spec],
                     f"rt_logreg: error: --columns: column {shown} is out of range (0..2147483646)", 2)
    # In range but past the file: an error at the first row, without a row buffer of 2^31.
    r, peak = run_measured("logreg", ["train", "--data", "d.csv", "--columns", "x=0..1,y=2147483646"])
    check(r.code == 1 and r.err == "d.csv:1: error: expected at least 2147483647 columns (the model "
          "reads columns 0..2147483646), found 3\n", r.describe())
    check(peak < 256 * MB, f"{peak} bytes")
    expect_error("logreg_far", ["train", "--data", "d.csv"],
                 "rt_logreg_far: error: model descriptor: bad CSV column range "
                 "2147483647..2147483647 for 'y'")


@test
def batch_limit():
    """A batch whose values would pass 2^31 elements (BLAS's int) is refused before anything
    is allocated, with the largest batch the model takes."""
    write_csv("d.csv", logreg_rows(20))
    r, peak = run_measured("logreg_huge", ["train", "--data", "d.csv", "--batch", "8"])
    check(r.code == 2 and r.err == "rt_logreg_huge: error: batch 8 is too large for model "
          "'logreg': its values take 536870912 elements a sample, and a batch of them must stay "
          "below 2^31 elements (BLAS counts in int); the largest batch is 3\n", r.describe())
    check(peak < 256 * MB, f"{peak} bytes")


def edit_checkpoint(src, dst, meta=None, tensors=None, drop=()):
    """A copy of a checkpoint with some metadata values and tensors replaced."""
    header, read = read_safetensors(src)
    metadata = {**header["__metadata__"], **(meta or {})}
    kept = {k: (d, s, list(v)) for k, (d, s, v) in read.items() if k not in drop}
    for name, change in (tensors or {}).items():
        dtype, shape, values = kept[name]
        kept[name] = (dtype, shape, change(values))
    write_safetensors(dst, kept, metadata=metadata)


# The hints under a resumed run's errors: what chooses the training rows, and what --epochs
# counts (train.c, hint_same_rows and check_epoch).
ROWS_HINT = ("\n  hint: a run resumes on the training rows it was saved with: give it the same "
             "data, --validation (or --validation-data) and --seed")


def epochs_hint(done):
    return ("\n  hint: --epochs counts the epochs in all, those done included: give --epochs "
            f"{done} or more to go on from this checkpoint")


@test
def resume_checks():
    """Every value of a checkpoint is checked against what the run can have written."""
    write_csv("s.csv", softmax_rows())
    args = ["--data", "s.csv", "--validation", "0.2", "--optimizer", "adam", "--lr", "0.01",
            "--early-stopping", "on", "--quiet", "--no-save"]
    run("softmax", "train", "--epochs", "1", "--checkpoint-every", "1", "--checkpoint", "c", *args)
    header, tensors = read_safetensors("c")
    meta = header["__metadata__"]
    step, order = int(meta["nnrt.step"]), tensors["train.order"][2]
    validation_row = min(set(range(150)) - set(order))
    check(int(meta["nnrt.epoch"]) == 1 and len(order) == 120, meta)
    run("softmax", "train", "--epochs", "3", "--resume", "c", *args)  # as it is: fine
    # The inputs are standardised when resumed exactly when they were when trained.
    expect_error("softmax", ["train", "--epochs", "3", "--resume", "c", *args, "--standardize",
                             "on"], "rt_softmax: error: c was trained with --standardize off; "
                 "resume it with the same", code=2)
    run("softmax", "train", "--epochs", "1", "--checkpoint-every", "1", "--checkpoint", "cs",
        "--standardize", "on", *args)
    expect_error("softmax", ["train", "--epochs", "3", "--resume", "cs", *args],
                 "rt_softmax: error: cs was trained with --standardize on; resume it with the "
                 "same", code=2)
    run("softmax", "train", "--epochs", "3", "--resume", "cs", "--standardize", "on", *args)
    zero_rng = " ".join(["0000000000000000"] * 4) + " 0 0x0p+0"
    bad = f"is out of range"
    cases = [
        ({"nnrt.epoch": str(2 ** 62)}, {},
         f"metadata 'nnrt.epoch': {2 ** 62} {bad} 0..3 (this run trains 3 epochs)"
         f"{epochs_hint(2 ** 62)}"),
        ({"nnrt.epoch": "1000000000"}, {},
         f"metadata 'nnrt.epoch': 1000000000 {bad} 0..3 (this run trains 3 epochs)"
         f"{epochs_hint(1000000000)}"),
        ({"nnrt.epoch": ""}, {}, "metadata 'nnrt.epoch': '' is not a whole number"),
        ({"nnrt.epoch": " 1"}, {}, "metadata 'nnrt.epoch': ' 1' is not a whole number"),
        ({"nnrt.epoch": "1\n"}, {}, "metadata 'nnrt.epoch': '1\\u000a' is not a whole number"),
        ({"nnrt.epoch": "99999999999999999999"}, {},
         "metadata 'nnrt.epoch': '99999999999999999999' is not a whole number"),
        ({"nnrt.pos": "120"}, {}, f"metadata 'nnrt.pos': 120 {bad} 0..119 (rows of the current "
         "epoch done, of the training rows)" + ROWS_HINT),
        ({"nnrt.step": "-5"}, {}, f"metadata 'nnrt.step': -5 {bad} 1..120 (one step or more per "
         "epoch, one row or more per step, within --steps)" + ROWS_HINT),
        ({"nnrt.optimizer_steps": "-1"}, {}, f"metadata 'nnrt.optimizer_steps': -1 {bad} "
         f"{step}..{step} (it counts what 'nnrt.step' does)"),
        ({"nnrt.samples": "121"}, {}, f"metadata 'nnrt.samples': 121 {bad} 0..120 (the rows of the "
         "last epoch)" + ROWS_HINT),
        ({"nnrt.correct": "-1"}, {}, f"metadata 'nnrt.correct': -1 {bad} 0..120 (right predictions "
         "among 'nnrt.samples')"),
        ({"nnrt.loss_sum": "nan"}, {}, "metadata 'nnrt.loss_sum': nan is not finite"),
        ({"nnrt.loss_sum": "0x1p+1x"}, {}, "metadata 'nnrt.loss_sum': '0x1p+1x' is not a number"),
        ({"nnrt.shuffle_rng": zero_rng}, {},
         "metadata 'nnrt.shuffle_rng': an all-zero state, which the generator never has"),
        ({"nnrt.noise_rng": "-1 2 3 4 0 0x0p+0"}, {}, "metadata 'nnrt.noise_rng': '-1 2 3 4 0 "
         "0x0p+0' is not a generator state (four hex words, 0 or 1, a number)"),
        ({"nnrt.noise_rng": "1 2 3 4 2 0x0p+0"}, {}, "metadata 'nnrt.noise_rng': '1 2 3 4 2 "
         "0x0p+0' is not a generator state (four hex words, 0 or 1, a number)"),
        ({"nnrt.best_epoch": "2"}, {}, f"metadata 'nnrt.best_epoch': 2 {bad} 0..1 (an epoch done)"),
        ({"nnrt.bad_epochs": "5"}, {}, f"metadata 'nnrt.bad_epochs': 5 {bad} 0..0 (epochs since "
         "'nnrt.best_epoch')"),
        ({"nnrt.best": "nan"}, {}, "metadata 'nnrt.best': nan is not a finite number"),
        ({}, {"train.order": lambda v: [v[0], v[0]] + v[2:]},
         f"tensor 'train.order' is not an order of the training rows: element 1 names row "
         f"{order[0]}, a second time" + ROWS_HINT),
        ({}, {"train.order": lambda v: [10 ** 6] + v[1:]},
         "tensor 'train.order' is not an order of the training rows: element 0 names row 1000000, "
         "outside the data" + ROWS_HINT),
        ({}, {"train.order": lambda v: [validation_row] + v[1:]},
         f"tensor 'train.order' is not an order of the training rows: element 0 names row "
         f"{validation_row}, a validation row" + ROWS_HINT),
        ({}, {"train.history": lambda v: [math.inf] + v[1:]},
         "tensor 'train.history' holds inf at element 0, not a learning rate"),
        ({}, {"optimizer.v.fc.W": lambda v: [-1.0] + v[1:]},
         "tensor 'optimizer.v.fc.W' holds -1 at element 0; its values are never negative"),
        ({}, {"optimizer.m.fc.b": lambda v: [math.nan] + v[1:]},
         "tensor 'optimizer.m.fc.b' holds nan at element 0"),
    ]
    for meta_change, tensor_change, message in cases:
        edit_checkpoint("c", "bad", meta_change, tensor_change)
        expect_error("softmax", ["train", "--epochs", "3", "--resume", "bad", *args],
                     "bad: error: " + message)
    edit_checkpoint("c", "bad", drop=["train.history"])
    expect_error("softmax", ["train", "--epochs", "3", "--resume", "bad", *args],
                 "bad: error: missing tensor 'train.history'")
    write_safetensors("bad", {**tensors, "train.order": ("I64", [119], order[:-1])}, metadata=meta)
    expect_error("softmax", ["train", "--epochs", "3", "--resume", "bad", *args],
                 "bad: error: tensor 'train.order' is not the order of this run's 120 training rows"
                 + ROWS_HINT)
    # An epoch beyond any run's allocates nothing for it.
    edit_checkpoint("c", "bad", {"nnrt.epoch": "1000000000"})
    r, peak = run_measured("softmax", ["train", "--epochs", "3", "--resume", "bad", *args])
    check(r.code == 1 and "out of range" in r.err, r.describe())
    check(peak < 256 * MB, f"{peak} bytes")


MLP_SGD_OPTIONS = ["--l2", "0", "--schedule", "constant", "--warmup", "0"]
# (file in checkpoints/, the options it was trained with, the epochs it was saved at)
OLD_CHECKPOINTS = [
    ("mlp_adam_early_stopping",
     ["--validation", "0.25", "--early-stopping", "on", "--patience", "3"], 3),
    ("mlp_adamw", ["--optimizer", "adamw", "--weight-decay", "0.1", "--validation", "0.25"], 3),
    ("mlp_sgd_fused", ["--optimizer", "sgd", *MLP_SGD_OPTIONS], 3),
    ("mlp_sgd_nesterov", ["--optimizer", "sgd", "--nesterov", "on", *MLP_SGD_OPTIONS], 3),
    ("mlp_rmsprop_momentum",
     ["--optimizer", "rmsprop", "--lr", "0.01", "--momentum", "0.5", *MLP_SGD_OPTIONS], 3),
    ("mlp_adadelta", ["--optimizer", "adadelta", "--lr", "1", *MLP_SGD_OPTIONS], 3),
    ("mlp_adagrad", ["--optimizer", "adagrad", "--lr", "0.3", *MLP_SGD_OPTIONS], 3),
    # Ctrl-C in epoch 9: 8 epochs and 4 rows done
    ("mlp_interrupted", ["--batch", "4", "--schedule", "constant", "--warmup", "0",
                         "--validation", "0.25"], None),
]


@test
def checkpoint_documented():
    """Every metadata key and tensor of a checkpoint (each a row of train.c's table of
    fields) has its row in docs/runtime.md's table of them."""
    write_csv("m.csv", mlp_rows(60))
    run("mlp", "train", "--data", "m.csv", "--epochs", "2", "--checkpoint-every", "2",
        "--checkpoint", "c", "--no-save", "--quiet", "--validation", "0.25", "--early-stopping",
        "on")
    header, _ = read_safetensors("c")
    docs = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                             "runtime.md")).read()
    documented = set()
    for row in docs_table(docs, "is a weights file plus the training state:"):
        documented |= set(re.findall(r"`([^`]+)`", row[0].split(" (")[0]))
    params = {"W1", "b1", "W2", "b2"}
    names = set(header["__metadata__"]) - {"model", "producer"}
    for name in set(header) - {"__metadata__"} - params:
        parts = name.split(".")
        if parts[-1] in params:
            parts[-1] = "PARAM"
        if parts[0] == "optimizer":
            parts[1] = "SLOT"
        names.add(".".join(parts))
    check(names <= documented, f"not in docs/runtime.md: {sorted(names - documented)}")


def safetensors_content(path):
    """The header as JSON values (key order aside) and the data bytes."""
    header, _ = read_safetensors(path)
    data = open(path, "rb").read()
    return header, data[8 + struct.unpack("<Q", data[:8])[0]:]


@test
def old_checkpoints():
    """Checkpoints an earlier build wrote (checkpoints/README.md) resume, and end bit for bit
    where an uninterrupted run ends; a checkpoint written now holds what they hold."""
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checkpoints")
    write_csv("m.csv", mlp_rows(60))
    for name, args, saved_at in OLD_CHECKPOINTS:
        old = os.path.join(folder, name + ".safetensors")
        common = ["train", "--data", "m.csv", "--epochs", "10", "--quiet", *args]
        whole = run("mlp", *common, "--save", "whole")
        resumed = run("mlp", *common, "--resume", old, "--save", "resumed")
        check(open("whole", "rb").read() == open("resumed", "rb").read(),
              f"{name}: resumed weights differ")
        check(whole.out == resumed.out, f"{name}:\n{whole.out}vs\n{resumed.out}")
        if saved_at is None:
            continue
        run("mlp", "train", "--data", "m.csv", "--epochs", str(saved_at), "--checkpoint-every",
            str(saved_at), "--checkpoint", "now", "--no-save", "--quiet", *args)
        check(safetensors_content("now") == safetensors_content(old),
              f"{name}: {read_safetensors('now')[0]}\nvs\n{read_safetensors(old)[0]}")


@test
def idx_headers():
    """IDX headers whose dimensions overflow or disagree with the file, and random damage to
    a header: always an error at a byte, never a crash or a read past the end."""
    pixels, labels = idx_samples(30)
    write("lab", idx_bytes([30], labels))
    good = idx_bytes([30, 2, 2], pixels)
    expect_error("softmax_idx", ["train", "--data", "img,lab"],
                 "img: error: cannot open: No such file or directory")
    write("img", b"\0\0\x08\x08" + b"\xff" * 32)
    expect_error("softmax_idx", ["train", "--data", "img,lab"],
                 "img:byte 12: error: IDX dimensions are too large")
    write("img", idx_bytes([30, 65536, 65536], pixels))
    expect_error("softmax_idx", ["train", "--data", "img,lab"],
                 "img:byte 136: error: truncated IDX file: the header promises 128849018880 data "
                 "bytes, the file has 120")
    rng = random.Random(7)
    for i in range(60):
        damaged = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            damaged[rng.randrange(16)] = rng.randrange(256)
        content = bytes(damaged[:rng.choice([len(damaged), rng.randrange(len(damaged))])])
        write("img", content)
        r = run("softmax_idx", "train", "--data", "img,lab", "--no-save", "--quiet", expect=None)
        check(r.code in (0, 1) and (r.code == 0 or re.fullmatch(r"img:byte \d+: error: .+\n", r.err)),
              f"case {i} {content[:16].hex()}:\n{r.describe()}")


@test
def csv_counts():
    """Lines with millions of fields, and files of nothing but blank lines: counted in 64
    bits, kept in memory only for the columns the model reads."""
    write("commas.csv", b"," * (20 * MB) + b"\n")
    r, peak = run_measured("logreg", ["train", "--data", "commas.csv", "--no-save"])
    check(r.code == 1 and r.err == "commas.csv:1: error: column 0 is empty\n", r.describe())
    check(peak < 256 * MB, f"a line of commas took {peak} bytes")
    write("blank.csv", b" \n" * (10 * MB))
    r, peak = run_measured("logreg", ["train", "--data", "blank.csv", "--no-save"])
    check(r.code == 1 and r.err == "blank.csv:1: error: the file is empty\n", r.describe())
    check(peak < 256 * MB, f"blank lines took {peak} bytes")
    write("short.csv", b"1\n" * (10 * MB))
    r, peak = run_measured("softmax", ["train", "--data", "short.csv", "--no-save"])
    check(r.code == 1 and r.err == "short.csv:1: error: expected at least 5 columns (the model "
          "reads columns 0..4), found 1\n", r.describe())
    check(peak < 256 * MB, f"short lines took {peak} bytes")


# ---- search, plot, progress, threads ----


def noisy_logreg_rows(n=300, seed=1):
    """logreg_rows with one label in ten flipped: a huge rate overfits the noise, a tiny one
    barely moves, a middling one is clearly best."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x0, x1 = round(rng.uniform(-1, 1), 4), round(rng.uniform(-1, 1), 4)
        y = 1 if x0 + 2 * x1 - 0.3 > 0 else 0
        rows.append((x0, x1, 1 - y if rng.random() < 0.1 else y))
    return rows


SEARCH_ROW = re.compile(r" *(\d+)  (\S+) +(\S+) +(\S+)")


# A row of search's table of two options: rank, the two settings, loss, accuracy.
SEARCH_ROW2 = re.compile(r" +\d+  (\S+) +(\S+) +(\S+) +(\S+)")


@test
def search():
    write_csv("d.csv", noisy_logreg_rows())
    common = ["--data", "d.csv", "--epochs", "20"]
    r = run("logreg", "search", *common, "--lr", "1e-5,0.3,1000", "--strategy", "grid",
            "--save", "best")
    lines = r.out.splitlines()
    check(lines[0] == "rank  lr    val_loss      val_accuracy", lines[0])
    ranked = [SEARCH_ROW.fullmatch(line).groups() for line in lines[1:4]]
    check([row[1] for row in ranked] == ["0.3", "1e-5", "1000"], ranked)
    check(float(ranked[0][2]) < 0.4 and float(ranked[2][2]) > 10, ranked)
    check(lines[4] == "best: --lr 0.3", lines[4])
    trials = re.findall(r"^trial (\d)/3  --lr (\S+)  val loss (\S+)  val accuracy \S+$", r.err,
                        re.M)
    check([t[1] for t in trials] == ["1e-5", "0.3", "1000"], r.err)
    check(r.err.endswith("saved the best weights to best\n"), r.err)
    # The best weights are those of a train run with the best setting (the same split: the
    # search held out 20% of the rows for validation, as --validation 0.2 does).
    v = values(run("logreg", "train", *common, "--lr", "0.3", "--validation", "0.2", "--save",
                   "again", "--quiet").out)
    check(open("best", "rb").read() == open("again", "rb").read(), "best weights differ")
    check(close(v["validation loss"], float(ranked[0][2]), 1e-5), f"{v} vs {ranked[0]}")
    # Random: log-uniform draws over the range, seeded; the best lies in the good middle.
    r = run("logreg", "search", *common, "--lr", "1e-5..1e3:log", "--trials", "12",
            "--batch", "8,16", "--no-save", "--quiet")
    lines = r.out.splitlines()
    check(lines[0].split() == ["rank", "lr", "batch", "val_loss", "val_accuracy"], lines[0])
    rows = [line.split() for line in lines[1:13]]
    check(len(rows) == 12 and all(1e-5 <= float(row[1]) <= 1e3 for row in rows), rows)
    check({row[2] for row in rows} <= {"8", "16"}, rows)
    check(1e-3 < float(rows[0][1]) < 5, f"best lr {rows[0][1]}")
    losses = [float(row[3]) for row in rows]
    check(losses == sorted(losses), "not ranked")
    check(r.out == run("logreg", "search", *common, "--lr", "1e-5..1e3:log", "--trials", "12",
                       "--batch", "8,16", "--no-save", "--quiet").out, "not reproducible")
    # Lists drawn at random repeat: a repeat takes the results of the trial it repeats (the
    # same settings train the same weights) without training, the table shows each setting
    # once, and once every setting has been tried the search ends.
    r = run("logreg", "search", *common, "--lr", "0.1,0.3", "--batch", "8,16", "--trials", "20",
            "--no-save")
    trials = re.findall(r"^trial (\d+)/20  --lr (\S+) --batch (\S+)(?:  as trial (\d+))?  "
                        r"val loss (\S+)", r.err, re.M)
    first = {}
    for number, lr, batch, same, loss in trials:
        if (lr, batch) in first:
            check((same, loss) == first[(lr, batch)], f"trial {number} repeats:\n{r.err}")
        else:
            check(same == "", f"trial {number} is new:\n{r.err}")
            first[(lr, batch)] = (number, loss)
    check(len(first) == 4 and len(trials) > 4, r.err)
    check([int(t[0]) for t in trials] == list(range(1, len(trials) + 1)), r.err)
    check(f"search: all 4 settings tried in {len(trials)} trials; the other {20 - len(trials)} "
          "would repeat them\n" in r.err, r.err)
    rows = [SEARCH_ROW2.fullmatch(line).groups() for line in r.out.splitlines()[1:-1]]
    check(sorted((row[0], row[1]) for row in rows) == sorted(first), r.out)
    # A grid of ranges: :K points, log-spaced.
    r = run("logreg", "search", *common, "--lr", "0.001..1:log:4", "--strategy", "grid",
            "--no-save", "--quiet")
    check(sorted(float(line.split()[1]) for line in r.out.splitlines()[1:5]) ==
          [0.001, 0.01, 0.1, 1.0], r.out)
    # A grid larger than --trials says what it leaves out, before the first trial.
    r = run("logreg", "search", *common, "--lr", "0.001..1:log:4", "--batch", "8,16,32",
            "--strategy", "grid", "--trials", "5", "--no-save", "--quiet")
    check(r.err == "rt_logreg: warning: search: the grid has 12 points and --trials is 5: the "
                   "last 7 are left out, from --lr 0.01 --batch 32 on (give --trials 12 to run "
                   "them all)\n", r.err)
    check(len(r.out.splitlines()) == 1 + 5 + 1, r.out)
    expect_error("logreg", ["search", *common], "rt_logreg: error: search needs a range or a "
                 "list to search, such as --lr 1e-4..1e-1:log or --batch 16,32,64", 2)
    expect_error("logreg", ["search", *common, "--optimizer", "sgd..adam"],
                 "rt_logreg: error: search: --optimizer takes a list (a,b), not a range", 2)
    expect_error("logreg", ["search", *common, "--lr", "0..1:log"],
                 "rt_logreg: error: search: --lr: a :log range needs numbers above 0", 2)
    expect_error("logreg", ["search", *common, "--batch", "8,0"],
                 "rt_logreg: error: --batch must be at least 1, got '0'", 2)
    # The grid's points are a whole number of trials (1e300 was once cast to an int: UBSan),
    # each of :log and :K is given once, and whole numbers stay exact in a double.
    for points in ("1e300", "2.5", "0"):
        expect_error("logreg", ["search", *common, "--lr", f"0.1..0.2:{points}"],
                     "rt_logreg: error: search: --lr: the grid's points (:K) must be a whole "
                     f"number from 1 to 1000000, got '{points}'", 2)
    expect_error("logreg", ["search", *common, "--lr", "0.1..0.2:log:log"],
                 "rt_logreg: error: search: --lr: '0.1..0.2:log:log' gives :log twice", 2)
    expect_error("logreg", ["search", *common, "--lr", "0.1..0.2:3:4"],
                 "rt_logreg: error: search: --lr: '0.1..0.2:3:4' gives the grid's points twice",
                 2)
    expect_error("logreg", ["search", *common, "--batch", "1..9223372036854775807"],
                 "rt_logreg: error: search: --batch: a range of whole numbers must lie within "
                 "-2^53..2^53 (9007199254740992), got '1..9223372036854775807'", 2)
    # A single value after a range of the same option wins, as a second value would: nothing
    # is left to search (the range once stayed, and the value was silently ignored).
    expect_error("logreg", ["search", *common, "--lr", "0.1..0.2", "--lr", "0.3"],
                 "rt_logreg: error: search needs a range or a list to search, such as --lr "
                 "1e-4..1e-1:log or --batch 16,32,64", 2)
    r = run("logreg", "search", *common, "--lr", "0.3", "--lr", "0.1,0.2", "--no-save",
            "--quiet")
    check(sorted(line.split()[1] for line in r.out.splitlines()[1:3]) == ["0.1", "0.2"], r.out)
    # Search's own options take one value: a list is not a setting to vary.
    expect_error("logreg", ["search", *common, "--lr", "0.1,0.2", "--trials", "3,4"],
                 "rt_logreg: error: --trials needs a whole number, got '3,4'", 2)
    # Options that act once, as the rows are loaded, cannot vary between trials.
    for option, given in (("--validation", "0.1,0.3"), ("--threads", "1,2"),
                          ("--standardize", "on,off")):
        expect_error("logreg", ["search", *common, option, given],
                     f"rt_logreg: error: search: {option} acts once for the whole search (as "
                     "the rows are loaded, or the program starts): give it one value", 2)


PARABOLA_TRIAL = re.compile(r"^trial \d+/\d+  --lr (\S+) --momentum (\S+)  final loss (\S+)$",
                            re.M)


@test
def search_tpe():
    """TPE: after --startup-trials random ones (the random strategy's own draws), trials
    concentrate where the best are. On rt_parabola after 3 steps of sgd, the final loss as a
    function of (lr, momentum) has one good region, found here by a fine grid; the last half
    of TPE's trials lies far nearer it than the last half of random's, for the same seed."""
    common = ["--steps", "3", "--no-save"]
    ranges = ["--lr", "0.001..1:log", "--momentum", "0..0.95", "--trials", "40"]
    grid = run("parabola", "search", *common, "--quiet", "--lr", "0.001..1:log:40",
               "--momentum", "0..0.95:20", "--strategy", "grid", "--trials", "800").out
    best = grid.splitlines()[1].split()
    check(best[:3] == ["1", "0.2031", "0.35"], best)
    lr0, m0 = float(best[1]), float(best[2])

    def trials(*args):
        r = run("parabola", "search", *common, *ranges, *args)
        found = [(float(lr), float(m), float(loss)) for lr, m, loss in PARABOLA_TRIAL.findall(r.err)]
        check(len(found) == 40, r.err)
        return found, r

    def distance(t):  # in the units the search draws in: log10(lr) over 3 decades
        return math.hypot((math.log10(t[0]) - math.log10(lr0)) / 3, (t[1] - m0) / 0.95)

    rand, _ = trials("--strategy", "random")
    tpe, r = trials("--strategy", "tpe")
    check(tpe[:10] == rand[:10], f"startup trials differ:\n{tpe[:10]}\n{rand[:10]}")
    check(tpe[10:] != rand[10:], "TPE drew as random does")
    near_tpe = statistics.median(distance(t) for t in tpe[20:])
    near_rand = statistics.median(distance(t) for t in rand[20:])
    check(near_tpe < 0.5 * near_rand, f"TPE {near_tpe} vs random {near_rand}")
    loss_tpe = statistics.median(t[2] for t in tpe[20:])
    loss_rand = statistics.median(t[2] for t in rand[20:])
    check(loss_tpe < 4 < loss_rand, f"median final loss: TPE {loss_tpe}, random {loss_rand}")
    # The table ranks every trial; the best is TPE's, and better than random's best.
    rows = [line.split() for line in r.out.splitlines()[1:41]]
    check(float(rows[0][3]) == min(t[2] for t in tpe) < min(t[2] for t in rand), rows[0])
    # The same seed, the same trials; another seed, others.
    again, r2 = trials("--strategy", "tpe")
    check(again == tpe and r2.out == r.out, "TPE is not reproducible")
    other, _ = trials("--strategy", "tpe", "--seed", "8")
    check(other != tpe, "the seed changed nothing")
    # As many startup trials as trials: all random.
    check(trials("--strategy", "tpe", "--startup-trials", "40")[0] == rand, "startup 40")
    # A list: TPE picks among its values (counts plus one), on a model with inputs.
    write_csv("d.csv", noisy_logreg_rows())
    r = run("logreg", "search", "--data", "d.csv", "--epochs", "5", "--lr", "1e-4..10:log",
            "--optimizer", "sgd,adam", "--strategy", "tpe", "--trials", "16", "--startup-trials",
            "6", "--no-save", "--quiet")
    rows = [line.split() for line in r.out.splitlines()[1:17]]
    check(len(rows) == 16 and {row[2] for row in rows} <= {"sgd", "adam"}, r.out)
    check(all(1e-4 <= float(row[1]) <= 10 for row in rows), rows)
    expect_error("logreg", ["search", "--data", "d.csv", "--lr", "0.1,1", "--strategy", "bayes"],
                 "rt_logreg: error: --strategy must be random, grid or tpe, got 'bayes'", 2)
    out = run("logreg", "search", "--help").out
    for pattern in (r"--strategy NAME +random draws, every grid point, or tpe \(Tree-structured "
                    r"Parzen Estimator\): .*\(default: random\)",
                    r"--startup-trials N +tpe: the first N trials are random draws \(default: 10\)",
                    r"--folds K +cross-validation: .*\(default: 0\)"):
        check(re.search("^  " + pattern + "$", out, re.M), f"{pattern}:\n{out}")
    out = run("parabola", "search", "--help").out
    check("--startup-trials N" in out and "--folds" not in out, out)


@test
def search_no_inputs():
    """A model without inputs (a function to minimise) is searched on its final loss, the
    loss train prints after the last step: no rows, no validation."""
    out = run("parabola", "--help").out
    check(re.search(r"^  search +train with settings drawn from ranges \(--lr 1e-3\.\.1:log\), "
                    r"rank them on the final loss", out, re.M), out)
    r = run("parabola", "search", "--steps", "3", "--momentum", "0", "--lr", "0.01,0.1,0.3",
            "--strategy", "grid", "--save", "best")
    lines = r.out.splitlines()
    check(lines[0] == "rank  lr    final_loss", lines[0])
    # x after 3 steps of sgd from 2 at rate lr is 0.5 + 1.5 (1 - 6 lr)^3: 0.1 is nearest 1/6.
    ranked = [line.split() for line in lines[1:4]]
    check([row[1] for row in ranked] == ["0.1", "0.3", "0.01"], ranked)
    check(lines[4] == "best: --lr 0.1", lines[4])
    for rank, lr, loss in ranked:  # each the final loss train prints, to the digit
        v = run("parabola", "train", "--steps", "3", "--momentum", "0", "--lr", lr, "--save",
                "w" + lr, "--quiet").out.splitlines()[0]
        check(v == "final loss " + loss, f"--lr {lr}: {v} vs {loss}")
        check(f"  --lr {lr}  final loss {loss}\n" in r.err, r.err)
    check(open("best", "rb").read() == open("w0.1", "rb").read(), "best weights differ")
    expect_error("parabola", ["search", "--lr", "0.1,0.2", "--folds", "2"],
                 "rt_parabola: error: --folds does not apply: model 'parabola' has no inputs", 2)
    expect_error("parabola", ["search", "--lr", "0.1,0.2", "--validation", "0.2"],
                 "rt_parabola: error: --validation does not apply: model 'parabola' has no "
                 "inputs", 2)


@test
def search_folds():
    """--folds K: the rows are cut into K folds by a seeded permutation; each trial trains K
    times, each time on all folds but one and scored on that one, and ranks on the mean."""
    # rt_echo prints the rows each training step sees: each fold trains on the others.
    write_csv("e.csv", [[i, i * i % 7, 100 + i, i % 2] for i in range(10)])
    r = run("echo", "search", "--data", "e.csv", "--batch", "20", "--lr", "0.1,0.2",
            "--strategy", "grid", "--folds", "3", "--no-save", env={"NNRT_TEST_TRACE": "1"})
    runs = [[int(x[0]) for x, _ in echo_rows(part)[0]]
            for part in re.split(r"^trial .*fold \d/3.*\n", r.err, flags=re.M)[:-1]]
    check(len(runs) == 6 and runs[:3] == runs[3:], runs)  # the same folds for every trial
    held = [sorted(set(range(10)) - set(trained)) for trained in runs[:3]]
    check(all(trained == sorted(trained) for trained in runs), runs)  # in file order
    check(sorted(sum(held, [])) == list(range(10)), held)  # each row held out once
    check(sorted(len(h) for h in held) == [3, 3, 4], held)
    check(held != [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]], "the folds are not shuffled")
    same = run("echo", "search", "--data", "e.csv", "--batch", "20", "--lr", "0.1,0.2",
               "--strategy", "grid", "--folds", "3", "--no-save", env={"NNRT_TEST_TRACE": "1"})
    check(same.err == r.err, "the folds differ between runs of the same seed")
    other = run("echo", "search", "--data", "e.csv", "--batch", "20", "--lr", "0.1,0.2",
                "--strategy", "grid", "--folds", "3", "--no-save", "--seed", "2",
                env={"NNRT_TEST_TRACE": "1"})
    check(other.err != r.err, "another seed, the same folds")
    # --standardize: each fold by the statistics of the rows it trains on.
    r = run("echo64", "search", "--data", "e.csv", "--batch", "20", "--lr", "0.1,0.2",
            "--strategy", "grid", "--folds", "3", "--standardize", "on", "--no-save",
            env={"NNRT_TEST_TRACE": "1"})
    for part in re.split(r"^trial .*fold \d/3.*\n", r.err, flags=re.M)[:-1]:
        xs = [x for x, _ in echo_rows(part)[0]]
        for col in range(3):
            column = [x[col] for x in xs]
            mean = sum(column) / len(column)
            var = sum((v - mean) ** 2 for v in column) / len(column)
            check(abs(mean) < 1e-12 and abs(var - 1) < 1e-12, f"column {col}: {column}")

    # rt_logreg: the table has the mean and the spread of the folds' metrics.
    rows = noisy_logreg_rows(90)
    write_csv("d.csv", rows)
    common = ["--data", "d.csv", "--epochs", "5", "--folds", "3"]
    r = run("logreg", "search", *common, "--lr", "0.01,0.1,1", "--strategy", "grid", "--save",
            "best")
    lines = r.out.splitlines()
    check(lines[0] == "rank  lr    val_loss      val_loss_std  val_accuracy  val_accuracy_std",
          lines[0])
    table = {row[1]: [float(v) for v in row[2:]] for row in map(str.split, lines[1:4])}
    check(lines[4] == "best: --lr " + min(table, key=lambda lr: table[lr][0]), lines[4])
    for lr, (loss, loss_std, acc, acc_std) in table.items():
        folds = [(float(a), float(b)) for a, b in re.findall(
            rf"^trial \d/3  --lr {re.escape(lr)}  fold \d/3  val loss (\S+)  val accuracy (\S+)$",
            r.err, re.M)]
        check(len(folds) == 3, r.err)
        losses, accs = [f[0] for f in folds], [f[1] for f in folds]
        check(close(loss, statistics.fmean(losses), 1e-5), f"{lr}: {loss} vs {losses}")
        check(close(loss_std, statistics.pstdev(losses), 1e-4), f"{lr}: {loss_std} vs {losses}")
        check(close(acc, statistics.fmean(accs), 1e-3), f"{lr}: {acc} vs {accs}")
        check(close(acc_std, statistics.pstdev(accs), 1e-3, 1e-4), f"{lr}: {acc_std} vs {accs}")
    # A fold's score is that of train on the other folds' rows, validated on its own: the
    # folds of 10 rows with this seed came from rt_echo above, and depend only on the seed
    # and the count of rows.
    write_csv("d10.csv", rows[:10])
    r10 = run("logreg", "search", "--data", "d10.csv", "--epochs", "5", "--folds", "3", "--lr",
              "0.5,1", "--strategy", "grid", "--no-save", "--seed", "1", "--batch", "4")
    fold1 = float(re.search(r"^trial 1/2  --lr 0.5  fold 1/3  val loss (\S+)", r10.err,
                            re.M).group(1))
    write_csv("t.csv", [rows[i] for i in range(10) if i not in held[0]])
    write_csv("v.csv", [rows[i] for i in held[0]])
    v = values(run("logreg", "train", "--data", "t.csv", "--validation-data", "v.csv",
                   "--epochs", "5", "--lr", "0.5", "--seed", "1", "--batch", "4", "--no-save",
                   "--quiet").out)
    check(close(v["validation loss"], fold1, 1e-5), f"{v} vs fold 1: {fold1}")
    # The weights saved are the best settings trained once more on all the rows.
    best = lines[4].split()[-1]
    run("logreg", "train", "--data", "d.csv", "--epochs", "5", "--lr", best, "--validation", "0",
        "--save", "again", "--quiet")
    check(open("best", "rb").read() == open("again", "rb").read(), "best weights differ")
    check(r.err.endswith("training the best settings on all 90 rows\n"
                         "saved the best weights to best\n"), r.err)
    # ... standardised by the statistics of all of them, as train --validation 0 does.
    best = run("logreg", "search", *common, "--lr", "0.1,1", "--strategy", "grid",
               "--standardize", "on", "--save", "best", "--quiet").out.splitlines()[-1]
    run("logreg", "train", "--data", "d.csv", "--epochs", "5", "--lr", best.split()[-1],
        "--validation", "0", "--standardize", "on", "--save", "again", "--quiet")
    check(open("best", "rb").read() == open("again", "rb").read(), "standardised weights differ")
    # What makes no sense is refused.
    for args, message in [
            (["--folds", "1"], "--folds 1: cross-validation needs at least 2 folds (0: off)"),
            (["--validation-data", "d.csv"], "--folds 3 holds out each fold in turn: give "
             "--folds K or --validation-data FILE, not both"),
            (["--validation", "0.3"], "--folds 3 holds out each fold in turn: --validation F "
             "does not apply"),
            (["--early-stopping", "on"], "--folds 3 with --early-stopping: the best settings are "
             "trained again on all the rows for --save, with no validation rows to stop on; "
             "give --no-save or --early-stopping off"),
            (["--folds", "91"], "--folds 91: only 90 rows to split"),
            (["--folds", "3,5"], "--folds needs a whole number, got '3,5'")]:
        expect_error("logreg", ["search", *common, "--lr", "0.1,1", *args],
                     "rt_logreg: error: " + message, 2)
    # Early stopping works without --save (each fold stops on its own held-out rows).
    r = run("logreg", "search", *common, "--lr", "0.1,1", "--strategy", "grid",
            "--early-stopping", "on", "--no-save", "--quiet")
    check(len(r.out.splitlines()) == 4, r.out)


@test
def search_plot():
    """search --plot: a panel per setting, a dot per trial that finished at its value, on a
    log axis for a :log range and at named ticks for a list; the best ringed."""
    import xml.etree.ElementTree as ET
    ns = "{http://www.w3.org/2000/svg}"
    write_csv("d.csv", noisy_logreg_rows())
    r = run("logreg", "search", "--data", "d.csv", "--epochs", "5", "--lr", "1e-3..1e3:log",
            "--optimizer", "sgd,adam", "--trials", "12", "--plot", "p.svg", "--no-save",
            "--quiet")
    rows = [line.split() for line in r.out.splitlines()[1:13]]
    svg = ET.parse("p.svg").getroot()
    texts = [t.text for t in svg.iter(ns + "text")]
    check("--lr (log scale)" in texts and "--optimizer" in texts, texts)
    check(all(t in texts for t in ("1e-3", "1e0", "1e3", "sgd", "adam")), texts)
    dots = [(float(c.get("cx")), float(c.get("cy"))) for c in svg.iter(ns + "circle")
            if c.get("class") != "best"]
    finished = [row for row in rows if row[3] != "diverged"]
    check(len(dots) == 2 * len(finished), f"{len(dots)} dots, {len(finished)} trials")
    # The first panel's x is linear in log10(lr): 64 + 400 * (log10(lr) + 3) / 6.
    xs = sorted(x for x, _ in dots[:len(finished)])
    want = sorted(64 + 400 * (math.log10(float(row[1])) + 3) / 6 for row in finished)
    check(all(abs(a - b) < 0.06 for a, b in zip(xs, want)), f"{xs} vs {want}")
    # The second panel: sgd at x 0, adam at 1, of -0.5..1.5 over 400 pixels from 480 + 64.
    xs = {round(x, 1) for x, _ in dots[len(finished):]}
    check(xs <= {644.0, 844.0}, xs)
    best = [c for c in svg.iter(ns + "circle") if c.get("class") == "best"]
    check(len(best) == 2 and "best" in texts, best)
    bx = 64 + 400 * (math.log10(float(rows[0][1])) + 3) / 6
    check(abs(float(best[0].get("cx")) - bx) < 0.06, f"{best[0].get('cx')} vs {bx}")
    # The best has the lowest loss: the lowest dot (the largest y) of each panel.
    check(float(best[0].get("cy")) == max(y for _, y in dots[:len(finished)]), "best not lowest")
    # A model without inputs: its final loss.
    run("parabola", "search", "--steps", "3", "--lr", "0.01..0.5", "--trials", "6", "--plot",
        "q.svg", "--no-save", "--quiet")
    texts = [t.text for t in ET.parse("q.svg").getroot().iter(ns + "text")]
    check("final loss" in texts and "--lr" in texts, texts)
    expect_error("parabola", ["search", "--lr", "0.1,0.2", "--plot", "no/p.svg"],
                 "no/p.svg: error: cannot write: No such file or directory")
    expect_error("logreg", ["search", "--data", "d.csv", "--lr", "0.1,1", "--plot", "d.csv"],
                 "rt_logreg: error: --plot d.csv is the same file as --data d.csv: writing it "
                 "would destroy the input; choose another file", 2)


@test
def plot():
    import xml.etree.ElementTree as ET
    write_csv("d.csv", softmax_rows())
    run("softmax", "train", "--data", "d.csv", "--epochs", "12", "--validation", "0.2",
        "--plot", "p.svg", "--log", "l.csv", "--no-save", "--quiet")
    text = open("p.svg").read()
    check("href" not in text and "<script" not in text, "not self-contained")
    svg = ET.fromstring(text)
    ns = "{http://www.w3.org/2000/svg}"
    check(svg.tag == ns + "svg", svg.tag)
    titles = [t.text for t in svg.iter(ns + "text")]
    check("loss" in titles and "accuracy" in titles and "validation" in titles, titles)
    curves = [line.get("points").split() for line in svg.iter(ns + "polyline")]
    check(len(curves) == 4 and all(len(c) == 12 for c in curves), [len(c) for c in curves])
    # The training loss falls: its curve ends lower on the page (a larger y) than it starts.
    first, last = (float(p.split(",")[1]) for p in (curves[0][0], curves[0][-1]))
    check(last > first, f"loss curve from y {first} to {last}")
    # Without validation rows, one curve per panel; a model without accuracy, one panel.
    run("softmax", "train", "--data", "d.csv", "--epochs", "5", "--plot", "p.svg", "--no-save",
        "--quiet")
    check(len(list(ET.parse("p.svg").getroot().iter(ns + "polyline"))) == 2, "curves")
    run("parabola", "train", "--steps", "30", "--plot", "q.svg", "--no-save", "--quiet")
    svg = ET.parse("q.svg").getroot()
    check([t.text for t in svg.iter(ns + "text")].count("accuracy") == 0, "parabola accuracy")
    check(len(next(svg.iter(ns + "polyline")).get("points").split()) == 30, "30 steps")
    expect_error("softmax", ["train", "--data", "d.csv", "--plot", "no/p.svg"],
                 "no/p.svg: error: cannot write: No such file or directory")


@test
def long_history():
    """A run of more steps than the history keeps rows: memory stays fixed (every other row is
    dropped when it fills up), the plot spans the whole run, a checkpoint resumes bit for bit,
    and --steps far beyond what memory could hold a row of is not allocated up front."""
    import xml.etree.ElementTree as ET
    steps, rows_kept = 150000, 65536
    whole = run("parabola", "train", "--steps", str(steps), "--save", "whole", "--quiet",
                "--plot", "p.svg")
    svg = ET.parse("p.svg").getroot()
    points = next(svg.iter("{http://www.w3.org/2000/svg}polyline")).get("points").split()
    check(rows_kept // 2 < len(points) <= rows_kept, f"{len(points)} points")
    run("parabola", "train", "--steps", "140000", "--checkpoint-every", "140000",
        "--checkpoint", "c", "--no-save", "--quiet")
    header, tensors = read_safetensors("c")
    shape, history = header["train.history"]["shape"], tensors["train.history"][2]
    check(shape[0] <= rows_kept and shape[1] == 6, shape)
    epochs = list(history[5::6])
    check(epochs[0] == 1 and epochs[-1] == 140000 and epochs == sorted(set(epochs)), epochs[-3:])
    resumed = run("parabola", "train", "--steps", str(steps), "--resume", "c", "--save",
                  "resumed", "--quiet")
    check(open("whole", "rb").read() == open("resumed", "rb").read(), "resumed weights differ")
    check(whole.out == resumed.out, f"{whole.out} vs {resumed.out}")
    # Ten billion steps: the run starts (and is stopped) without asking for terabytes.
    proc = subprocess.Popen([exe("parabola"), "train", "--steps", "10000000000", "--no-save",
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1)
    proc.kill()
    _, status, usage = os.wait4(proc.pid, 0)
    check(os.WIFSIGNALED(status), f"it stopped by itself: {proc.stderr.read().decode()}")
    check(usage.ru_maxrss < 200 * 1024, f"peak {usage.ru_maxrss} KiB")


def pty_stderr(args, env=None):
    """What the command writes on its stderr, a pseudo-terminal."""
    import pty
    main, sub = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=sub,
                            env={**os.environ, **(env or {})})
    os.close(sub)
    chunks = []
    while True:
        try:
            data = os.read(main, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(main)
    return b"".join(chunks).decode()


@test
def progress_bar():
    """On a terminal the epoch's bar is redrawn in place; piped, lines only."""
    write_csv("d.csv", [row for _ in range(20) for row in logreg_rows()])
    screen = pty_stderr([exe("logreg"), "train", "--data", "d.csv", "--epochs", "3", "--batch",
                         "1", "--no-save"])
    check(re.search(r"\repoch 1/3 \[#*\.*\] +\d+%  loss \S+  accuracy \d\.\d{4}\x1b\[K", screen),
          repr(screen[:300]))
    # The last epoch's line follows the previous line, or (when the epoch took long enough
    # for its bar to be drawn, as on a busy machine) overwrites the bar from its start.
    check(re.search(r"[\r\n]epoch 3/3  loss \S+  accuracy \S+  lr 0\.5  \S+s  \d+ samples/s(\x1b\[K)?\r\n",
                    screen), repr(screen[-400:]))
    r = run("logreg", "train", "--data", "d.csv", "--epochs", "3", "--batch", "1", "--no-save")
    check("\r" not in r.err and "\x1b" not in r.err, repr(r.err))
    # Epochs of at least 0.2 s (10 ms a step): the bar is redrawn within each, and each ends
    # with its own line; the bar's redraws do not hide the lines in between.
    write_csv("d.csv", logreg_rows(20))
    screen = pty_stderr([exe("logreg"), "train", "--data", "d.csv", "--epochs", "4", "--batch",
                         "1", "--no-save"], {"NNRT_TEST_STEP_SLEEP_MS": "10"})
    shown = re.findall(r"epoch (\d)/4  loss", screen)
    check(shown == ["1", "2", "3", "4"], f"epoch lines {shown}: {screen!r}")


@test
def threads():
    write_csv("d.csv", softmax_rows())
    out = run("softmax", "train", "--help").out
    check(re.search(r"^  --threads N +OpenBLAS threads \(0: all cores\) \(default: 1\)$", out,
                    re.M), out)
    run("softmax", "train", "--data", "d.csv", "--save", "a", "--quiet")
    run("softmax", "train", "--data", "d.csv", "--save", "b", "--threads", "2", "--quiet")
    run("softmax", "train", "--data", "d.csv", "--save", "c", "--threads", "0", "--quiet")
    # Products this small are not split between threads, so the bits agree here.
    check(open("a", "rb").read() == open("b", "rb").read() == open("c", "rb").read(), "threads")
    expect_error("softmax", ["train", "--threads", "-1"],
                 "rt_softmax: error: --threads must be at least 0, got '-1'", 2)


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@test
def blas_kernels():
    """OpenBLAS 0.3.21 takes a CPU it does not know (Sapphire Rapids) for a Prescott and
    loads SSE3 kernels, and gives Zen 4 and Zen 5 its AVX2 kernels; the executable asks for
    the kernels the CPU can run instead
    (runtime/blas_kernels.c), and never overrides the user's OPENBLAS_CORETYPE."""
    env = {"OPENBLAS_VERBOSE": "2"}
    quiet = dict(os.environ)
    quiet.pop("OPENBLAS_CORETYPE", None)
    quiet.update(env)
    proc = subprocess.run([exe("softmax"), "train", "--help"], capture_output=True,
                          timeout=60, env=quiet)
    err = proc.stderr.decode("utf-8", "replace")
    cores = re.findall(r"^Core: (\S+)", err, re.M)
    check(proc.returncode == 0 and cores, f"no 'Core:' line from OpenBLAS\n{err}")
    flags = cpu_flags()
    if {"avx2", "fma"} <= flags:
        check(cores[-1].lower() != "prescott",
              f"an AVX2 CPU runs OpenBLAS's Prescott kernels: {cores}")
    below = ("prescott", "haswell", "zen")  # what 0.3.21 loads on CPUs it does not know
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags and cores[0].lower() in below:
        check(cores[-1] == "SkylakeX", f"an AVX-512 CPU got {cores}")
    check(len(cores) <= 2, f"executed more than once: {cores}")
    # The user's choice stands: no second execution.
    r = run("softmax", "train", "--help", env={**env, "OPENBLAS_CORETYPE": "Prescott"})
    cores = re.findall(r"^Core: (\S+)", r.err, re.M)
    check(cores == ["Prescott"], f"OPENBLAS_CORETYPE=Prescott gave {cores}")


def threads_while_reading_stdin(args, env=None):
    """The threads of rt_softmax ARGS (predict) once it waits for its input, read on fd 0,
    and the environment it then runs with; None where /proc does not show a process's
    system call. OPENBLAS_NUM_THREADS is left out of the environment unless env sets it."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"} | (env or {})
    proc = subprocess.Popen([exe("softmax"), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        for _ in range(3000):  # the process reaches its read in a few ms; 30 s at most
            try:
                with open(f"/proc/{proc.pid}/syscall") as f:
                    call = f.read().split()
            except OSError:
                return None
            if call[:2] == ["0", "0x0"]:  # read(0, ...) on x86-64
                with open(f"/proc/{proc.pid}/status") as f:
                    threads = int(re.search(r"^Threads:\s+(\d+)", f.read(), re.M).group(1))
                with open(f"/proc/{proc.pid}/environ", "rb") as f:
                    pairs = [v.decode("utf-8", "replace").partition("=")
                             for v in f.read().split(b"\0") if v]
                return threads, {k: v for k, _, v in pairs}
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        raise Failure(f"rt_softmax {' '.join(args)} never waited for its input")
    finally:
        proc.communicate(b"1,2,3,4\n", timeout=60)


@test
def blas_pool_stopped():
    """OpenBLAS starts a pool of threads when it is loaded (one per core, less the caller),
    whose idle threads spin after each call; with one thread asked for (the default) the
    runtime stops the pool (runtime/blas_kernels.c), and --threads N keeps it."""
    if os.uname().machine != "x86_64":
        raise Skip("the test reads x86-64 system call numbers")
    write_safetensors("softmax.safetensors", {"fc.W": ("F64", [4, 3], [0.0] * 12),
                                              "fc.b": ("F64", [3], [0.0] * 3)})
    seen = threads_while_reading_stdin(["predict"])
    if seen is None:
        raise Skip("/proc shows no system calls here")
    alone, env = seen
    check(alone == 1, f"predict with one BLAS thread runs {alone} threads")
    # Executed again for better kernels (OPENBLAS_CORETYPE set), the program had OpenBLAS
    # load without a pool at all; --threads N starts one all the same.
    if "OPENBLAS_CORETYPE" in env and "OPENBLAS_CORETYPE" not in os.environ:
        check(env.get("OPENBLAS_NUM_THREADS") == "1",
              f"executed again without OPENBLAS_NUM_THREADS=1: {env.get('OPENBLAS_NUM_THREADS')}")
    if (os.cpu_count() or 1) > 1:
        pooled, _ = threads_while_reading_stdin(["predict", "--threads", "2"])
        check(pooled >= 2, f"predict --threads 2 runs {pooled} threads")
        # The user's own value stays.
        _, env = threads_while_reading_stdin(["predict"], {"OPENBLAS_NUM_THREADS": "2"})
        check(env.get("OPENBLAS_NUM_THREADS") == "2",
              f"OPENBLAS_NUM_THREADS=2 became {env.get('OPENBLAS_NUM_THREADS')}")


# ---- gradcheck ----


GRADCHECK_ROW = re.compile(r"  (\S+) +(scalar|\[[0-9, ]+\]) +(\S+) +(\S+)  (\S.*)")


def gradcheck_report(out):
    """(batch line, [{param: (shape, max abs, max rel, verdict)} per point], summary line),
    checking the layout on the way."""
    lines = out.splitlines()
    check(re.fullmatch(r"gradcheck of model '\w+' \(f64\), seed -?\d+", lines[0]), lines[0])
    check(lines[1].startswith("batch: "), lines[1])
    check(lines[3] == "ok when |d - n| / max(|d|, |n|, 0.0001) <= 1e-06", lines[3])
    points, table = [], None
    for line in lines[4:]:
        if line.startswith("at "):
            table = {}
            points.append(table)
        elif table is not None and GRADCHECK_ROW.fullmatch(line) and not line.startswith(
                "  param  "):
            name, shape, abs_err, rel_err, verdict = GRADCHECK_ROW.fullmatch(line).groups()
            number = lambda text: None if text == "-" else float(text)
            table[name] = (shape, number(abs_err), number(rel_err), verdict)
        elif line == "":
            table = None
    check(len(points) == 2, f"{len(points)} points:\n{out}")
    check(lines[-2] == "", "no blank line before the summary")
    return lines[1], points, lines[-1]


def check_all_ok(out, params):
    batch, points, summary = gradcheck_report(out)
    for point in points:
        check(list(point) == list(params), f"params {list(point)}:\n{out}")
        for name, (shape, abs_err, rel_err, verdict) in point.items():
            check(shape == params[name], f"{name}: shape {shape}")
            check(verdict == "ok" and rel_err <= 1e-6 and abs_err < 1e-6, f"{name}:\n{out}")
    check(summary == f"gradcheck: all {len(params)} params match", summary)
    return batch


MLP_PARAMS = {"W1": "[3, 4]", "b1": "[4]", "W2": "[4, 2]", "b2": "[2]"}


def mlp_rows(n, seed=5):
    rng = random.Random(seed)
    return [(*(round(rng.uniform(-1, 1), 4) for _ in range(3)), rng.randrange(2))
            for _ in range(n)]


@test
def gradcheck_passes():
    r = run("softmax", "gradcheck")
    batch = check_all_ok(r.out, {"fc.W": "[4, 3]", "fc.b": "[3]"})
    check(batch == "batch: 8 random rows (the model names no data file): inputs uniform(-1, 1), "
                   "targets random classes, one-hot", batch)
    check(r.out.splitlines()[2] == "d: grad(); n: central difference of the cost (the batch's "
                                   "mean loss) through forward()", r.out)
    check("\nat the initial weights (the initialisers, seed 1):\n" in r.out, r.out)
    check("\nat a random point (every param element uniform(-1, 1), seed 1):\n" in r.out, r.out)
    check(r.err == "", r.err)

    batch = check_all_ok(run("parabola", "gradcheck", "--seed", "11").out,
                         {"x": "scalar", "v": "[10]"})
    check(batch == "batch: none, the model has no inputs", batch)

    default = os.path.join(ARGS.bin, "mlp_default.csv")
    batch = check_all_ok(run("mlp", "gradcheck").out, MLP_PARAMS)
    check(batch.startswith(f"batch: 8 random rows (cannot read {default}: No such file"), batch)
    write_csv("d.csv", mlp_rows(30), header="a,b,c,y")
    batch = check_all_ok(run("mlp", "gradcheck", "--data", "d.csv").out, MLP_PARAMS)
    check(batch == "batch: the first 8 rows of d.csv", batch)
    write_csv("five.csv", mlp_rows(5))
    batch = check_all_ok(run("mlp", "gradcheck", "--data", "five.csv").out, MLP_PARAMS)
    check(batch == "batch: the first 5 rows of five.csv", batch)
    write_csv(default, mlp_rows(12))
    try:
        batch = check_all_ok(run("mlp", "gradcheck").out, MLP_PARAMS)
    finally:
        os.remove(default)
    check(batch == f"batch: the first 8 rows of {default}", batch)

    # The seed picks the points: the same seed, the same report.
    a, b = run("mlp", "gradcheck", "--seed", "4").out, run("mlp", "gradcheck", "--seed", "4").out
    check(a == b, "gradcheck is not deterministic")
    check(a != run("mlp", "gradcheck", "--seed", "5").out, "the seed changed nothing")


@test
def gradcheck_fails():
    r = run("mlp_wrong", "gradcheck", expect=1)
    _, points, summary = gradcheck_report(r.out)
    for point in points:
        shape, abs_err, rel_err, verdict = point["b1"]
        # grad() of b1 is 1.5 times the derivative: |1.5n - n| / |1.5n| = 1/3.
        check(verdict == "FAIL" and close(rel_err, 1 / 3, 0.01), f"b1: {point['b1']}")
        for name in ("W1", "W2", "b2"):
            check(point[name][3] == "ok", f"{name}: {point[name]}")
    worst = re.findall(r"^  b1\[(\d)\]: d = (\S+), n = (\S+) \(its worst element\)$", r.out, re.M)
    check(len(worst) == 2, r.out)
    for _, d, n in worst:
        check(close(float(d), 1.5 * float(n), 1e-6), f"d {d}, n {n}")
    check(summary == "gradcheck: 1 of 4 params FAIL", summary)
    expect_error("mlp", ["gradcheck", "--data", "nope.csv"],
                 "nope.csv: error: cannot open: No such file or directory")


@test
def gradcheck_surrogate():
    r = run("mlp_surrogate", "gradcheck")
    _, points, summary = gradcheck_report(r.out)
    for point in points:
        for name in ("W1", "b1"):
            # A straight-through relu really is not the derivative: shown, not failed.
            check(point[name][3] == "surrogate" and point[name][2] > 1e-3, f"{name}: {point}")
        for name in ("W2", "b2"):
            check(point[name][3] == "ok" and point[name][2] <= 1e-6, f"{name}: {point}")
    check("\nsurrogate: the param's gradient comes from a hand-written surrogate rule (such as "
          "a straight-through estimator), not the derivative of the loss; it is shown, not "
          "counted as a failure.\n" in r.out, r.out)
    check(summary == "gradcheck: all 2 params match (2 surrogate params not checked)", summary)


@test
def gradcheck_kinks():
    r = run("kinks", "gradcheck")
    _, (start, random_point), summary = gradcheck_report(r.out)
    # relu(a) at its corner: skipped. relu(b[1] + 0.0015): its corner is inside the first
    # stencil, and a smaller step must still confirm the slope. relu(b[2] + 0.000015): inside
    # every stencil, a kink even though the innermost points do not straddle it.
    check(start["a"] == ("scalar", None, None, "ok (1 kink skipped)"), start)
    check(start["b"][3] == "ok (1 kink skipped)" and start["b"][2] <= 1e-6, start)
    check(all(v[3] == "ok" for v in random_point.values()), random_point)
    check("\nkink: the one-sided differences disagree there" in r.out, r.out)
    check(summary == "gradcheck: all 2 params match", summary)


@test
def gradcheck_errors():
    expect_error("logreg", ["gradcheck"],
                 "rt_logreg: error: gradcheck needs a model compiled with --f64 "
                 "(nnc gradcheck FILE.nn does that)", 2)
    expect_error("softmax", ["gradcheck", "--lr", "1"],
                 "rt_softmax: error: --lr is not an option of 'gradcheck' "
                 "(see 'rt_softmax gradcheck --help')", 2)
    expect_error("parabola", ["gradcheck", "--data", "x.csv"],
                 "rt_parabola: error: --data does not apply: model 'parabola' has no inputs", 2)
    expect_error("softmax", ["gradcheck", "--seed", "x"],
                 "rt_softmax: error: --seed needs a whole number, got 'x'", 2)


def main():
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the test names and exit")
    parser.add_argument("--bin", help="folder of the rt_* executables")
    parser.add_argument("--cc", help="C compiler, for link_plain")
    parser.add_argument("--lib", help="libnnrt.a, for link_plain")
    parser.add_argument("--include", help="folder of nnrt.h, for link_plain")
    parser.add_argument("--extra-flags", default="", help="compile and link flags, for link_plain")
    parser.add_argument("test", nargs="?", choices=[*TESTS, "all"])
    ARGS = parser.parse_args()
    if ARGS.list:
        print("\n".join(TESTS))
        return 0
    if not ARGS.bin or not ARGS.test:
        parser.error("give --bin DIR and a test (or all), or --list")
    ARGS.bin = os.path.abspath(ARGS.bin)
    names = list(TESTS) if ARGS.test == "all" else [ARGS.test]
    failed = skipped = 0
    for name in names:
        folder = tempfile.mkdtemp(prefix=f"nnrt-{name}-")
        os.chdir(folder)
        try:
            TESTS[name]()
            print(f"PASS {name}")
            shutil.rmtree(folder)
        except Skip as e:
            skipped += 1
            print(f"SKIP {name}: {e}")
            shutil.rmtree(folder)
        except (Failure, subprocess.SubprocessError, OSError, KeyError, ValueError) as e:
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}\n(files kept in {folder})")
    if failed:
        return 1
    return SKIP_CODE if skipped == len(names) else 0


if __name__ == "__main__":
    sys.exit(main())
