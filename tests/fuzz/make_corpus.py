#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target and the .nn dictionary (README.md).

    make_corpus.py [--out DIR]      (default: tests/fuzz/, beside this script)
    make_corpus.py --check [--out DIR]   (writes nothing: what differs; the suite runs it)

DIR/corpus/<target>/ gets one file a seed, named after what it is, and DIR/nnc.dict the
words of the .nn language. Everything comes from the source tree (the examples, the stdlib,
tests/errors, tests/parse, the compiler's tables) or is made here, byte for byte the same
on every run: rerun it after adding examples and commit what changed. Standard library
only. The layout of each target's input is described at the top of its fuzz_*.c.
"""
import argparse
import gzip
import json
import os
import re
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


def nn_files(folder):
    path = os.path.join(ROOT, folder)
    return sorted(os.path.join(folder, n) for n in os.listdir(path) if n.endswith(".nn"))


# ---- nnc: one byte picks the command (fuzz_nnc.c's table), then the .nn text ----

N_COMMANDS = 12     # the size of fuzz_nnc.c's commands[]
FRONT_END = 7       # commands 0..6 stop before the back end; 7..11 compile


# Programs the examples do not show: IDX data, dropout, options of built-ins, a fn with its
# own backward rule, powers, the optimizer and schedule settings, two models.
EXTRA_PROGRAMS = {
    "idx_dropout": """import "nn"

model net {
    input  x[4]
    target y[3]
    h        = dropout(leaky_relu(dense(x, 8), alpha = 0.1), rate = 0.25)
    output z = dense(h, 3)
    loss     = softmax_cross_entropy(z, y)
}

train net {
    data      = idx("images.idx", "labels.idx")
    optimizer = adam(lr = 1e-3, beta1 = 0.9, beta2 = 0.999)
    schedule  = cosine(min_lr = 1e-5)
    batch     = 8
    epochs    = 3
    l2        = "h.W=1e-4"
    clip      = 1.0
}
""",
    "own_rule": """fn cube(u) {
    return u^3
    grad u = g * 3 * u^2
}

fn soft_step(u) {
    return step(u)
    grad u ~ g * sigmoid(u) * (1 - sigmoid(u))
}

model rules {
    input  x[3]
    target y[1]
    param  w[3, 1] = normal(0, 0.1)
    param  c       = 0.5
    output p = soft_step(cube(x @ w) - c)
    loss     = mean((p - y)^2) + 0.01 * sum(abs(w))
}
""",
    "two_models": """import "nn"

model a {
    input  x[2, 3]
    target y[2]
    param  v[3] = ones
    output s = sum_rows(x, v)
    loss     = mse(s, y)
}

fn sum_rows(m[r, k], v[k]) {
    return m @ v
}

model b {
    param x = 2
    loss    = (x - 1)^2 + exp(-x) + log(1 + x^2) + sqrt(x^2 + 1) + sin(x) * cos(x)
}

train b {
    optimizer = rmsprop(lr = 0.01, rho = 0.9)
    steps     = 10
}
""",
}


def nnc_seeds():
    seeds = {}
    valid = nn_files("examples") + nn_files("examples/lessons") + ["stdlib/nn.nn"]
    valid = [(os.path.basename(p)[:-3], read(p)) for p in valid]
    valid += [(name, text.encode()) for name, text in sorted(EXTRA_PROGRAMS.items())]
    # a file of several models: one program a model, picked by a first line "#model NAME"
    picked = []
    for name, text in valid:
        models = re.findall(rb"^model (\w+)", text, re.M)
        if len(models) < 2:
            picked.append((name, text))
        for m in models if len(models) > 1 else []:
            picked.append((f"{name}.{m.decode()}", b"#model " + m + b"\n" + text))
    for i, (name, text) in enumerate(picked):
        # each valid program twice: once through a front-end command, once compiled
        front, back = i % FRONT_END, FRONT_END + i % (N_COMMANDS - FRONT_END)
        seeds[f"{name}.cmd{front}"] = bytes([front]) + text
        seeds[f"{name}.cmd{back}"] = bytes([back]) + text
    bad = nn_files("tests/errors") + nn_files("tests/parse") + nn_files("tests/parse/errors")
    for i, path in enumerate(bad):
        name = os.path.basename(path)[:-3]
        seeds[f"{name}.cmd{i % N_COMMANDS}"] = bytes([i % N_COMMANDS]) + read(path)
    return seeds


def option_names(ops):
    """The names in every OPTION(...), OPTIONS(...), OPTIONS3(...) of ops.def: each triple
    (name, default, valid) starts with one; commas inside RANGE(...) do not count."""
    names = []
    for m in re.finditer(r"\bOPTIONS?\d?\(", ops):
        depth, item, items = 1, "", []
        for ch in ops[m.end():]:
            depth += (ch == "(") - (ch == ")")
            if depth == 0:
                break
            if ch == "," and depth == 1:
                items.append(item.strip())
                item = ""
            else:
                item += ch
        items.append(item.strip())
        names += [items[k] for k in range(0, len(items), 3) if re.fullmatch(r"[a-z_0-9]+", items[k])]
    return names


def nn_words():
    """Keywords, built-ins, stdlib fns, settings and the words sema.c knows, as tokens."""
    words = {"import", "fn", "model", "train", "input", "target", "param", "output", "return",
             "grad", "state", "update"}
    ops = re.sub(r"/\*.*?\*/", "", read("compiler/ops.def").decode(), flags=re.S)
    words |= set(re.findall(r"CALL\(([a-z_]+)\)", ops))
    words |= set(option_names(ops))
    words |= set(re.findall(r'"([a-z_]{2,})"', read("compiler/lower.c").decode()))
    words |= set(re.findall(r'"([a-z_]{2,})"', read("compiler/sema.c").decode()))
    words |= set(re.findall(r"^SETTING\(([a-z_0-9]+)", read("runtime/settings.def").decode(), re.M))
    words |= set(re.findall(r"^OPTIMIZER\(([a-z_0-9]+)", read("runtime/optimizers.def").decode(), re.M))
    words |= set(re.findall(r"^fn ([a-z_0-9]+)", read("stdlib/nn.nn").decode(), re.M))
    return sorted(words)


PUNCTUATION = ["..", "@", "^", "~", "=", ",", ";", ":", "(", ")", "[", "]", "{", "}", "\\x0a", "#",
               "\\\"", "1e-3", "0.5", "-1", "x[2]", "[2, 3]", "x[0, 1:3]", "[::2]", "[-1]", " = ", "g *", "grad u = g",
               "grad u ~ g", "import \\\"nn\\\"", "model m {", "train m {", "fn f(u) {",
               "csv(\\\"d.csv\\\", x = 0..1, y = 2)", "\\xef\\xbb\\xbf"]


def nn_dict():
    lines = ["# The .nn language for fuzz_nnc (-dict=): made by make_corpus.py, do not edit."]
    lines += [f'"{w}"' for w in nn_words()]
    lines += [f'"{p}"' for p in PUNCTUATION]
    return "\n".join(lines) + "\n"


# ---- csv: one byte picks the layout (bits 0-1) and f64 (bit 2), then the text ----


def csv_seeds():
    seeds = {
        "xor_header": (0, b"x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n"),
        "xor_f64_crlf": (4, b"0,0,0\r\n0,1,1\r\n\r\n1,0,1\r\n1,1,0"),
        "blanks_exponents": (0, b"  a , b ,c\n\n 1.5e3 ,\t-2 , +.5\n-0.0,1E-7,3.\n"),
        "classes": (1, b"f1,f2,f3,f4,label\n5.1,3.5,1.4,0.2,0\n4.9,3.0,1.4,0.2,1\n6.2,3.4,5.4,2.3,2\n"),
        "class_out_of_range": (1, b"1,2,3,4,3\n"),
        "class_not_whole": (5, b"1,2,3,4,1.5\n"),
        "predict": (2, b"0.5,1e-3,-2\n1,2,3\n"),
        "predict_empty": (2, b""),
        "predict_header_only": (6, b"a,b,c\n"),
        "spread": (3, b"a0,a1,t,b0,b1,b2\n1,2,0.5,3,4,5\n6,7,1,8,9,10\n"),
        "bad_number": (0, b"1,2,3\n1,x,3\n"),
        "empty_field": (0, b"1,,3\n"),
        "ragged": (0, b"1,2,3\n1,2,3,4\n"),
        "too_few": (0, b"1,2\n"),
        "out_of_range_f32": (0, b"1,2,1e39\n"),
        "huge": (4, b"1,2,1e999\n"),
        "nan_inf": (0, b"nan,inf,-inf\n"),
        "no_final_newline": (0, b"1,2,3"),
    }
    for rel in ["examples/xor.csv", "examples/lessons/line.csv", "examples/lessons/and.csv"]:
        seeds["repo_" + os.path.basename(rel)[:-4]] = (0, read(rel))
    seeds["repo_clouds3"] = (1, b"".join(read("examples/lessons/clouds3.csv").splitlines(True)[:20]))
    return {name: bytes([layout]) + text for name, (layout, text) in seeds.items()}


# ---- rows: use (bits 0-1) and batch - 1 (bits 2-4), the pieces' seed, then the text ----
# uses: 0 predict's inputs, 1 predict --loss, 2 eval; logreg's columns: x = 0..1, y = 2


def rows_seeds():
    many = b"x0,x1,y\n" + b"".join(b"%d.%d,-%d.5,%d\n" % (i % 7, i, i % 5, i % 2) for i in range(40))
    seeds = {
        "predict_header": (0 | 2 << 2, 11, b"x0,x1\n0,0\n1,1\n-0.25,0.5\n"),
        "predict_crlf_blank": (0, 3, b"\xef\xbb\xbf0.5,1\r\n\r\n2,3\r\n4,5"),
        "predict_extra_column": (0, 5, b"0,0,1\n1,1,0\n"),
        "loss": (1 | 1 << 2, 7, b"0,0,1\n1,1,0\n0.5,-0.5,1\n"),
        "loss_missing_target": (1, 9, b"0,0\n1,1\n"),
        "eval_many": (2 | 7 << 2, 200, many),
        "eval_bad_row": (2 | 3 << 2, 42, many[:200] + b"1,x,0\n" + many[200:]),
        "eval_header_only": (2, 1, b"x0,x1,y\n"),
        "eval_empty": (2, 2, b""),
        "eval_ragged": (2, 13, b"1,2,1\n1,2\n"),
        "eval_no_final_newline": (2 | 1 << 2, 77, b"1,2,1\n3,4,0"),
        "gzip": (2, 1, gz(b"x0,x1,y\n0,0,1\n1,1,0\n")),
        "nul": (0, 4, b"0.1,\0\n"),
        "utf16": (2, 6, "x0,x1,y\n0,0,1\n".encode("utf-16")),
    }
    return {name: bytes([use, seed]) + text for name, (use, seed, text) in seeds.items()}


# ---- idx: flags, values per image, images length (LE u16), images file, labels file ----


def idx_file(dims, data, type_byte=8):
    return bytes([0, 0, type_byte, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


def idx_input(flags, per_image, images, labels):
    return bytes([flags, per_image]) + struct.pack("<H", len(images)) + images + labels


def idx_seeds():
    pixels = bytes(range(0, 240, 20))  # 12 bytes: 3 images of 2x2
    images = idx_file([3, 2, 2], pixels)
    labels = idx_file([3], bytes([0, 7, 9]))
    return {
        "three_2x2": idx_input(0, 4, images, labels),
        "three_2x2_f64_onehot": idx_input(3, 4, images, labels),
        "onehot_out_of_range": idx_input(2, 4, images, idx_file([3], bytes([0, 10, 1]))),
        "rank3_samples": idx_input(1, 6, idx_file([2, 1, 2, 3], bytes(12)), idx_file([2], b"\1\2")),
        "wrong_size": idx_input(0, 5, images, labels),
        "truncated_data": idx_input(0, 4, images[:-3], labels),
        "trailing_bytes": idx_input(0, 4, images + b"\0\0", labels),
        "truncated_header": idx_input(0, 4, images[:9], labels),
        "labels_count": idx_input(0, 4, images, idx_file([2], b"\1\2")),
        "labels_rank2": idx_input(0, 4, images, idx_file([3, 1], b"\1\2\3")),
        "float_type": idx_input(0, 4, idx_file([3, 2, 2], bytes(48), 0x0D), labels),
        "no_samples": idx_input(0, 4, idx_file([0, 2, 2], b""), idx_file([0], b"")),
        "huge_dims": idx_input(0, 4, idx_file([0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF], b""), labels),
        "not_idx": idx_input(0, 4, b"1,2,3,4\n", labels),
    }


# ---- gzip: the file as on disk ----


def gz(data):
    return gzip.compress(data, mtime=0)


def gzip_seeds():
    text = read("examples/xor.csv")
    one = gz(text)
    return {
        "csv": one,
        "two_members": one + gz(b"1,1,0\n"),
        "empty": gz(b""),
        "idx": gz(idx_file([3, 2, 2], bytes(range(12)))),
        "zeros": gz(bytes(4096)),
        "truncated": one[:-6],
        "bad_crc": one[:-8] + b"\0\0\0\0" + one[-4:],
        "trailing_garbage": one + b"garbage",
        "zlib_not_gzip": b"\x78\x9c" + gz(text)[10:-8],
        "stored_block": gzip.compress(text, compresslevel=0, mtime=0),
    }


# ---- text: the length of a saved vocabulary, a spare byte, the vocabulary, the text ----


def text_input(text, vocab=b""):
    return bytes([len(vocab), 0]) + vocab + text


def text_seeds():
    genesis = read("examples/genesis.txt")[:2000]
    utf8 = "Grüße, naïve café — 日本語 🙂!\nçà et là.\n".encode()
    return {
        "genesis": text_input(genesis),
        "utf8": text_input(utf8),
        "utf8_saved_vocab": text_input(utf8, "".join(sorted(set(utf8.decode()))).encode()),
        "char_not_in_vocab": text_input(b"abcx", b"abc"),
        "vocab_unsorted": text_input(b"abc", b"cba"),
        "vocab_not_utf8": text_input(b"abc", b"a\xffb"),
        "bom": text_input(b"\xef\xbb\xbfabc"),
        "bom_then_end": text_input(b"\xef\xbb\xbf"),  # read past the end once (ASan)
        "utf16": text_input("abc".encode("utf-16")),
        "nul": text_input(b"ab\0c"),
        "surrogate": text_input(b"ab\xed\xa0\x80c"),
        "truncated": text_input(b"ab\xe6\x97"),
        "empty": text_input(b""),
    }


# ---- safetensors: the file as on disk ----

DTYPES = {"F32": ("<f", 4), "F64": ("<d", 8), "I64": ("<q", 8)}


def safetensors(tensors, metadata=None, header_extra=None):
    """tensors: (name, dtype, shape, values) in order; the data follows the header."""
    header, data = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, values in tensors:
        fmt, size = DTYPES[dtype]
        raw = b"".join(struct.pack(fmt, v) for v in values)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if header_extra:
        header.update(header_extra)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    return struct.pack("<Q", len(text)) + text + data


def params(dtype, prefix=""):
    """The params of fuzz_safetensors.c's model."""
    shapes = [("h.W", [2, 4]), ("h.b", [4]), ("p.W", [4, 1]), ("p.b", [1]), ("s", [])]
    out = []
    for name, shape in shapes:
        n = 1
        for d in shape:
            n *= d
        out.append((prefix + name, dtype, shape, [0.25 * (i + 1) for i in range(n)]))
    return out


def safetensors_seeds():
    meta = {"model": "fuzz", "producer": "nnc 0.1.0"}
    state = [("train.order", "I64", [3], [2, 0, 1]),
             ("train.history", "F64", [2, 3], [1, 0.5, 0.25, 2, 0.4, 0.2]),
             ("standardize.mean", "F64", [2], [0.5, -1]),
             ("standardize.std", "F64", [2], [1, 2])]
    weights = safetensors(params("F32"), meta)
    return {
        "weights_f32": weights,
        "weights_f64": safetensors(params("F64"), meta),
        "checkpoint": safetensors(params("F32") + params("F32", "optimizer.velocity.") + state,
                                  dict(meta, step="12", epoch="3")),
        "unknown_tensor": safetensors(params("F32") + [("extra", "F32", [1], [1])]),
        "wrong_shape": safetensors([("h.W", "F32", [4, 2], [0] * 8)] + params("F32")[1:]),
        "wrong_dtype": safetensors([("h.W", "I64", [2, 4], [0] * 8)] + params("F32")[1:]),
        "rank_9": safetensors([], header_extra={"t": {"dtype": "F32", "shape": [1] * 9,
                                                      "data_offsets": [0, 4]}}),
        "offsets_past_end": safetensors([], header_extra={"h.W": {"dtype": "F32", "shape": [2, 4],
                                                                  "data_offsets": [0, 1 << 40]}}),
        "duplicate": weights[:8] + weights[8:].replace(b'"p.b"', b'"h.b"', 1),
        "escapes": safetensors([], {"k\u00e9y": "v\n\"q\"", "n": 1, "o": {"a": [1, 2.5e3]}}),
        "header_past_end": struct.pack("<Q", 1 << 40) + b"{}",
        "empty_header": struct.pack("<Q", 2) + b"{}",
        "short": b"\x02\0\0",
        "not_json": struct.pack("<Q", 8) + b"{\"a\":[1,",
    }


# ---- options: one byte picks the command (rt_command's order), then a word a line ----

COMMANDS = ["train", "eval", "predict", "gradcheck", "search", "sample", "values", "weights"]

# Command lines of tests/runtime/mlp.c's model (params W1[3, 4], b1[4], W2[4, 2], b2[2]).
OPTION_LINES = {
    "train_rates": ("train", "--optimizer sgd --lr 0.05 --batch 8 --epochs 3 --momentum 0.9 "
                             "--nesterov on"),
    "train_adam": ("train", "--optimizer adam --beta1 0.8 --beta2 0.99 --eps 1e-7 --clip 1"),
    "train_schedule": ("train", "--schedule step --step-every 2 --step-factor 0.5 --warmup 1"),
    "train_penalties": ("train", "--l1 W1=0.01,b1=0 --l2 1e-4 --freeze b2 --freeze W*"),
    "train_set": ("train", "--set b1=0.5,W2=-1 --set b2=0"),
    "train_trace": ("train", "--trace W1[1,2],b1,W2.grad --trace-out t.csv"),
    "train_stopping": ("train", "--validation 0.25 --early-stopping on --patience 2 "
                                "--monitor accuracy"),
    "train_files": ("train", "--data d.csv --columns x=0..2,y=3 --save w.st --log log.csv "
                             "--standardize on --seed 7"),
    "train_workers": ("train", "--workers 2 --threads 1 --steps 10 --quiet"),
    "search_ranges": ("search", "--lr 1e-4..1e-1:log:4 --batch 4,8 --strategy grid "
                                "--trials 5 --folds 2"),
    "search_tpe": ("search", "--optimizer sgd --lr 0.01..0.5 --momentum 0..0.9:3 --strategy tpe "
                             "--startup-trials 3"),
    "eval": ("eval", "--weights w.st --data d.csv"),
    "predict": ("predict", "--weights w.st --classes --output h"),
    "gradcheck": ("gradcheck", "--seed 3"),
    "values": ("values", "--row 2"),
}


def options_seeds():
    return {name: bytes([COMMANDS.index(cmd)]) + "\n".join(line.split()).encode()
            for name, (cmd, line) in OPTION_LINES.items()}


TARGETS = {"nnc": nnc_seeds, "csv": csv_seeds, "idx": idx_seeds, "gzip": gzip_seeds,
           "safetensors": safetensors_seeds, "text": text_seeds, "options": options_seeds,
           "rows": rows_seeds}


def same_seed(target, made, on_disk):
    """Whether a committed seed is the one made here. gzip's seeds hold deflate's output,
    whose bytes a zlib of another version may choose otherwise: the same when they inflate to
    the same (or neither inflates, a seed that is broken on purpose)."""
    if made == on_disk or target != "gzip":
        return made == on_disk
    try:
        return gzip.decompress(made) == gzip.decompress(on_disk)
    except (OSError, EOFError, zlib.error):
        return True


def check(out):
    """What differs between the seeds made here and those in out: a line each."""
    problems = []
    for target, make in TARGETS.items():
        folder = os.path.join(out, "corpus", target)
        seeds = make()
        on_disk = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        for name in sorted(set(seeds) - on_disk):
            problems.append(f"{target}: seed '{name}' is not in {folder}")
        for name in sorted(on_disk - set(seeds)):
            problems.append(f"{target}: {folder}/{name} is no seed make_corpus.py makes")
        for name in sorted(on_disk & set(seeds)):
            with open(os.path.join(folder, name), "rb") as f:
                if not same_seed(target, seeds[name], f.read()):
                    problems.append(f"{target}: {folder}/{name} differs from the seed made now")
    with open(os.path.join(out, "nnc.dict")) as f:
        if f.read() != nn_dict():
            problems.append(f"{os.path.join(out, 'nnc.dict')} differs from the words made now")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--check", action="store_true",
                    help="write nothing: say what differs from the corpus in DIR (exit 1 if any)")
    args = ap.parse_args()
    if args.check:
        problems = check(args.out)
        for line in problems:
            print(line)
        if problems:
            print(f"make_corpus.py: the seeds are not current: run {os.path.relpath(__file__)} "
                  "and commit what changes")
        sys.exit(1 if problems else 0)
    for target, make in TARGETS.items():
        folder = os.path.join(args.out, "corpus", target)
        os.makedirs(folder, exist_ok=True)
        for old in os.listdir(folder):
            os.remove(os.path.join(folder, old))
        seeds = make()
        for name, data in seeds.items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
        print(f"{folder}: {len(seeds)} seeds, {sum(len(d) for d in seeds.values())} bytes")
    with open(os.path.join(args.out, "nnc.dict"), "w") as f:
        f.write(nn_dict())


if __name__ == "__main__":
    main()
