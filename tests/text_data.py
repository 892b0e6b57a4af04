#!/usr/bin/env python3
"""Text data and sequence inputs, end to end: compile small models with nnc, run them on
texts and CSV files written here, and check the exact ids, windows, splits, vocabularies and
messages (docs/runtime.md, "Text" and "CSV").

usage: text_data.py NNC SOURCE_DIR CASE
"""
import json
import os
import struct
import subprocess
import sys
import tempfile


class Failure(Exception):
    pass


def run(cmd, cwd, want_status=0, stdin=None):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, input=stdin, timeout=600)
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    if want_status is not None and proc.returncode != want_status:
        raise Failure(f"{' '.join(cmd)}: exit status {proc.returncode}, wanted {want_status}\n"
                      f"--- stdout:\n{out}--- stderr:\n{err}")
    return out, err


def write(tmp, name, data):
    with open(os.path.join(tmp, name), "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def check(cond, message):
    if not cond:
        raise Failure(message)


def check_error(err, want):
    check(want in err, f"wanted the message\n  {want}\ngot\n  {err}")


def metadata(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8:8 + n])["__metadata__"]


def vocab_and_ids(text):
    """What the runtime must make of a text: its sorted characters and their ids."""
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    return vocab, [index[c] for c in text]


# An identity model on ids: p = x + w with w = 0 (the rate is 0), so predict prints each
# window's ids and mse(p, y) measures the input window against the target window.
IDS_MODEL = """import "nn"
model ids {{
    input  x[{seq}]
    target y[{seq}]
    param  w = zeros
    output p = x + w
    loss     = mse(p, y)
}}
train ids {{
    data      = text("t.txt", seq = {seq}, vocab = {vocab})
    optimizer = sgd(lr = 0)
    epochs    = 1
}}
"""


def build_ids(nnc, tmp, text, seq, vocab, name="m"):
    write(tmp, "t.txt", text)
    write(tmp, name + ".nn", IDS_MODEL.format(seq=seq, vocab=vocab))
    run([nnc, name + ".nn", "-o", name], tmp)
    return "./" + name


def windows(ids, seq, stride):
    return [(ids[s:s + seq], ids[s + 1:s + seq + 1])
            for s in range(0, len(ids) - seq, stride)]


def mean_mse(pairs):
    return sum(sum((a - b) ** 2 for a, b in zip(x, y)) / len(x) for x, y in pairs) / len(pairs)


def rows(out):
    return [[float(v) for v in line.split(",")] for line in out.split()]


def case_ids_and_windows(nnc, src, tmp):
    """predict prints the input windows: non-overlapping windows of seq, the exact ids of
    the sorted characters; eval's loss is the mean mse of input against target windows,
    which are the next characters."""
    text = "the cat sat on the mat\n" * 3
    vocab, ids = vocab_and_ids(text)
    m = build_ids(nnc, tmp, text, 5, 12)
    run([m, "train", "--save", "w.safetensors", "--quiet"], tmp)
    out, _ = run([m, "predict", "--weights", "w.safetensors", "--data", "t.txt"], tmp)
    want = windows(ids, 5, 5)
    check(rows(out) == [x for x, _ in want], f"predict printed\n{out}\nwanted {want}")
    check(rows(out)[:2] == [[10, 5, 4, 1, 3], [2, 10, 1, 9, 2]], f"first windows: {out}")
    out, _ = run([m, "eval", "--weights", "w.safetensors"], tmp)
    loss = float(out.split()[1])
    check(abs(loss - mean_mse(want)) < 1e-6 * mean_mse(want), f"eval: {out}, wanted "
          f"{mean_mse(want)}")
    # --stride 1: every window, one a character.
    out, _ = run([m, "predict", "--weights", "w.safetensors", "--data", "t.txt", "--stride",
                  "1"], tmp)
    check(rows(out) == [x for x, _ in windows(ids, 5, 1)], f"--stride 1:\n{out}")
    check(len(rows(out)) == len(ids) - 5, f"--stride 1: {len(rows(out))} windows")


def case_split_end(nnc, src, tmp):
    """--validation F holds out the last round(F * n) characters, and windows are cut within
    each part: the validation loss is the one of the tail's windows alone."""
    text = "".join(chr(ord("a") + (i * 7) % 13) for i in range(103))
    vocab, ids = vocab_and_ids(text)
    m = build_ids(nnc, tmp, text, 4, 13)
    out, _ = run([m, "train", "--validation", "0.3", "--no-save", "--quiet"], tmp)
    held = round(0.3 * len(ids))
    head, tail = ids[:len(ids) - held], ids[len(ids) - held:]
    got = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in out.splitlines()}
    want_train, want_val = mean_mse(windows(head, 4, 4)), mean_mse(windows(tail, 4, 4))
    check(abs(got["final loss"] - want_train) < 1e-6 * want_train, f"{out} (train {want_train})")
    check(abs(got["validation loss"] - want_val) < 1e-6 * want_val, f"{out} (held {want_val})")
    # A held-out end shorter than a window is an error that says so.
    _, err = run([m, "train", "--validation", "0.01", "--no-save", "--quiet"], tmp,
                 want_status=1)
    check_error(err, "t.txt: error: the held-out end of the text (--validation 0.01) has 1 "
                     "characters; a window needs 5 (seq 4, and the next character)")


UTF8_TEXT = "Grüße, naïve café — 日本語 🙂!\nçà et là.\n"


def case_utf8_vocab(nnc, src, tmp):
    """A UTF-8 text is read as characters, not bytes: the vocabulary is the sorted code
    points, saved with the weights as text.vocab, and the ids follow it."""
    vocab, ids = vocab_and_ids(UTF8_TEXT)
    check(len(UTF8_TEXT.encode()) > len(UTF8_TEXT), "the test text must be non-ASCII")
    m = build_ids(nnc, tmp, UTF8_TEXT, 6, len(vocab))
    run([m, "train", "--save", "w.safetensors", "--quiet"], tmp)
    meta = metadata(os.path.join(tmp, "w.safetensors"))
    check(meta.get("text.vocab") == "".join(vocab), f"text.vocab {meta.get('text.vocab')!r}, "
          f"wanted {''.join(vocab)!r}")
    out, _ = run([m, "predict", "--weights", "w.safetensors", "--data", "t.txt"], tmp)
    check(rows(out) == [x for x, _ in windows(ids, 6, 6)], f"predict:\n{out}")
    # Another text with the same characters in another order keeps the saved ids.
    other = "çà 🙂 日本語"
    write(tmp, "u.txt", other)
    out, _ = run([m, "predict", "--weights", "w.safetensors", "--data", "u.txt"], tmp)
    index = {c: i for i, c in enumerate(vocab)}
    check(rows(out) == [[index[c] for c in other[:6]]], f"u.txt:\n{out}")


def case_vocab_mismatch(nnc, src, tmp):
    """Weights trained on one text and used on another with a character they never saw:
    eval, predict, --init-weights and --resume all stop at that character."""
    m = build_ids(nnc, tmp, "abcabcabcab\n" * 2, 4, 8)
    run([m, "train", "--save", "w.safetensors", "--epochs", "1", "--checkpoint-every", "1",
         "--checkpoint", "c.ckpt", "--quiet"], tmp)
    write(tmp, "u.txt", "abc\nabcaXbc\n")
    where = "u.txt:2: error: column 5: character 'X' (U+0058) is not in the vocabulary (4 " \
            "characters) of the weights "
    for cmd in (["eval", "--weights", "w.safetensors", "--data", "u.txt"],
                ["predict", "--weights", "w.safetensors", "--data", "u.txt"],
                ["train", "--init-weights", "w.safetensors", "--data", "u.txt"]):
        _, err = run([m, *cmd], tmp, want_status=1)
        check_error(err, where + "w.safetensors")
    _, err = run([m, "train", "--resume", "c.ckpt", "--epochs", "2", "--data", "u.txt"], tmp,
                 want_status=1)
    check_error(err, where + "c.ckpt")
    # Weights without a vocabulary (not saved by training on text) are refused for text.
    with open(os.path.join(tmp, "w.safetensors"), "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    del header["__metadata__"]["text.vocab"]
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    write(tmp, "bare.safetensors", struct.pack("<Q", len(text)) + text + data[8 + n:])
    _, err = run([m, "eval", "--weights", "bare.safetensors"], tmp, want_status=1)
    check_error(err, "bare.safetensors: error: no text vocabulary (metadata 'text.vocab'): "
                     "model 'ids' reads text, and these weights were not saved by its training")
    # A model with a smaller vocabulary than the weights' is told so before any text is read.
    small = build_ids(nnc, tmp, "abcabcabcab\n" * 2, 4, 3, name="small")
    _, err = run([small, "eval", "--weights", "w.safetensors"], tmp, want_status=1)
    check_error(err, "small: error: the weights w.safetensors has a vocabulary of 4 characters, "
                     "more than model 'ids' takes (3)")
    # Resuming the same text continues.
    run([m, "train", "--resume", "c.ckpt", "--epochs", "2", "--quiet", "--no-save"], tmp)


def case_text_errors(nnc, src, tmp):
    """Every malformed text is a located error, never a crash."""
    m = build_ids(nnc, tmp, "abcd\n", 4, 8)
    cases = [
        (b"", "t.txt: error: the text is empty"),
        (b"abc", "t.txt: error: the text has 3 characters; a window needs 5 (seq 4, and the "
                 "next character)"),
        (b"ab\ncd\xffef\n", "t.txt:2: error: column 3: byte 0xff is not UTF-8; text data is "
                            "read as UTF-8 characters"),
        (b"ab\xc3", "t.txt:1: error: column 3: byte 0xc3 is not UTF-8"),
        (b"ab\xed\xa0\x80cdef", "t.txt:1: error: column 3: byte 0xed is not UTF-8"),
        (b"abcd\x00ef", "t.txt:1: error: column 5: a NUL byte: this is not text"),
        ("abcdef".encode("utf-16"), "t.txt:byte 0: error: the file is UTF-16 text; text "
                                    "data is read as UTF-8 (save it as UTF-8)"),
        (b"abcdefghij", "t.txt: error: the text has 10 different characters, more than the "
                        "vocabulary of model 'ids' (8)"),
    ]
    for data, want in cases:
        write(tmp, "t.txt", data)
        _, err = run([m, "train", "--no-save", "--quiet"], tmp, want_status=1)
        check_error(err, want)
    # A byte-order mark is not a character.
    write(tmp, "t.txt", b"\xef\xbb\xbfabcde")
    run([m, "train", "--save", "w.safetensors", "--quiet"], tmp)
    check(metadata(os.path.join(tmp, "w.safetensors"))["text.vocab"] == "abcde", "BOM read")
    # Usage errors.
    for args, want in (
            (["--standardize", "on"], "--standardize is for numeric inputs; text data feeds "
                                      "token ids"),
            (["--columns", "x=0..3"], "--columns is for CSV data; this model reads text")):
        _, err = run([m, "train", "--no-save", *args], tmp, want_status=2)
        check_error(err, want)


def case_gzip_text(nnc, src, tmp):
    """A gzip'd text reads as the text; so does standard input ('-' for train)."""
    import gzip
    text = "hello world\n" * 4
    m = build_ids(nnc, tmp, text, 4, 10)
    write(tmp, "t.txt.gz", gzip.compress(text.encode()))
    run([m, "train", "--save", "w.safetensors", "--quiet"], tmp)
    a, _ = run([m, "predict", "--weights", "w.safetensors", "--data", "t.txt"], tmp)
    b, _ = run([m, "predict", "--weights", "w.safetensors", "--data", "t.txt.gz"], tmp)
    check(a == b and a, f"gzip: {b} vs {a}")
    c, _ = run([m, "predict", "--weights", "w.safetensors"], tmp, stdin=text.encode())
    check(a == c, f"stdin: {c} vs {a}")
    # train --data -: the text (gzip'd too) from standard input trains the same weights
    with open(os.path.join(tmp, "w.safetensors"), "rb") as f:
        from_file = f.read()
    for data in (text.encode(), gzip.compress(text.encode())):
        run([m, "train", "--data", "-", "--save", "s.safetensors", "--quiet"], tmp, stdin=data)
        with open(os.path.join(tmp, "s.safetensors"), "rb") as f:
            check(f.read() == from_file, "train --data - saved other weights than the file")


def case_bigram(nnc, src, tmp):
    """examples/bigram_text.nn trains on the shipped Genesis text: one-hot windows through a
    60 x 60 table; the held-out loss falls from ln 60 = 4.09 nats a character to below 2.45
    (about 2.3), and the held-out accuracy, judged a character at a time, passes 0.30."""
    exe = os.path.join(tmp, "bigram_text")
    run([nnc, os.path.join(src, "examples", "bigram_text.nn"), "-o", exe], tmp)
    out, _ = run([exe, "train", "--save", "b.safetensors", "--quiet"], tmp)
    val = [float(l.split()[-1]) for l in out.splitlines() if l.startswith("validation loss")]
    check(val and val[0] / 64 < 2.45, f"held-out loss a character {val and val[0] / 64}:\n{out}")
    # Accuracy a character: the best a bigram table can do on the whole text is 0.350 (each
    # character's most frequent successor); the held-out end reaches about 0.34.
    acc = [float(l.split()[-1]) for l in out.splitlines() if l.startswith("validation accuracy")]
    check(acc and 0.30 < acc[0] < 0.36, f"held-out accuracy a character {acc}:\n{out}")
    with open(os.path.join(src, "examples", "genesis.txt"), encoding="utf-8") as f:
        vocab, _ = vocab_and_ids(f.read())
    check(metadata(os.path.join(tmp, "b.safetensors"))["text.vocab"] == "".join(vocab),
          "the vocabulary saved is not the text's")


def sanitized(exe):
    """ASan reserves terabytes of address space: no RLIMIT_AS for its executables."""
    with open(exe, "rb") as f:
        return b"__asan_init" in f.read()


def run_limited(cmd, cwd, address_space=None):
    """Runs to the end; returns (status, stderr, peak resident bytes as wait4 reports it)."""
    def limit():
        if address_space:
            import resource
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    with open(os.path.join(cwd, "run.err"), "wb") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=limit)
        _, status, usage = os.wait4(proc.pid, 0)
    with open(os.path.join(cwd, "run.err"), encoding="utf-8", errors="replace") as f:
        return os.waitstatus_to_exitcode(status), f.read(), usage.ru_maxrss * 1024


def case_large_text(nnc, src, tmp):
    """A text costs its bytes and 4 bytes a character while it is read, and windows nothing
    more: 16 MB of text evaluated as windows that overlap (--stride 1, 16 million of them)
    peaks below 5 bytes a character and a fixed 64 MB. A text file past a tenth of the
    memory budget is refused from its size."""
    m = build_ids(nnc, tmp, "abcdefgh\n" * 4, 8, 16)
    run([m, "train", "--save", "w.safetensors", "--quiet"], tmp)
    if sanitized(os.path.join(tmp, "m")):
        return
    size = 16 << 20
    with open(os.path.join(tmp, "big.txt"), "wb") as f:
        f.write(b"abcdefgh\n" * (size // 9))
    status, err, peak = run_limited([m, "eval", "--weights", "w.safetensors", "--data",
                                     "big.txt", "--stride", "1"], tmp)
    check(status == 0, err)
    check(peak < 5 * size + (64 << 20), f"peak {peak} bytes for a text of {size}")
    space = 1 << 30
    budget = min(space, os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    try:
        budget = min(budget, int(open("/sys/fs/cgroup/memory.max").read()))
    except (OSError, ValueError):
        pass
    limit = budget // 10
    with open(os.path.join(tmp, "huge.txt"), "wb") as f:  # sparse: no disk used
        f.truncate(limit + 1)
    status, err, _ = run_limited([m, "eval", "--weights", "w.safetensors", "--data",
                                  "huge.txt"], tmp, address_space=space)
    check(status == 1 and err == f"huge.txt: error: too large: {limit + 1} bytes, more than the "
          f"{limit} bytes a text file may have here (a tenth of the memory this process may "
          "use: its characters take 4 bytes each as ids)\n", err)


SEQ_CSV_MODEL = """import "nn"
model seq {
    input  x[3, 2]
    target y[3]
    param  w = zeros
    p    = x[:, 1] + w
    loss = mse(p, y)
}
train seq {
    data      = csv("d.csv")
    optimizer = sgd(lr = 0)
    epochs    = 1
}
"""


def case_csv_sequence(nnc, src, tmp):
    """input x[3, 2] and target y[3] read 6 + 3 columns a row, x row-major (column 2t + j is
    x[t, j]), y after it; token ids are stored exactly; a short row is an error at its
    line."""
    data = [[1, 2, 3, 4, 5, 6, 7, 8, 9], [0, 16777216, 0, 3, 0, 65, 16777216, 3, 64]]
    write(tmp, "d.csv", "".join(",".join(map(str, r)) + "\n" for r in data))
    write(tmp, "m.nn", SEQ_CSV_MODEL)
    run([nnc, "m.nn", "-o", "m"], tmp)
    run(["./m", "train", "--save", "w.safetensors", "--quiet"], tmp)
    out, _ = run(["./m", "eval", "--weights", "w.safetensors"], tmp)
    want = sum(sum((r[2 * t + 1] - r[6 + t]) ** 2 for t in range(3)) / 3 for r in data) / 2
    check(abs(float(out.split()[1]) - want) < 1e-6 * want, f"eval {out}, wanted {want}")
    out, _ = run(["./m", "predict", "--weights", "w.safetensors", "--output", "p"], tmp,
                 stdin=b"0,16777216,0,3,0,65\n")
    check(rows(out) == [[16777216, 3, 65]], f"predict --output p: {out}")
    write(tmp, "d.csv", "1,2,3,4,5,6,7,8,9\n1,2,3,4,5,6,7\n")
    _, err = run(["./m", "eval", "--weights", "w.safetensors"], tmp, want_status=1)
    check_error(err, "d.csv:2: error: row has 7 columns, but the first data row (line 1) has 9")
    write(tmp, "d.csv", "1,2,3,4,5,6,7\n")
    _, err = run(["./m", "eval", "--weights", "w.safetensors"], tmp, want_status=1)
    check_error(err, "d.csv:1: error: expected at least 9 columns (the model reads columns "
                     "0..8: x[3, 2] from 0..5, y[3] from 6..8), found 7")


# Per-step labelling: logits [3, 2] a row (the input itself), one class id a step.
STEP_MODEL = """import "nn"
model steps {
    input  x[3, 2]
    target y[3]
    param  w = zeros
    output z = x + w
    loss     = softmax_cross_entropy(z, one_hot(y, 2))
}
train steps {
    data      = csv("d.csv")
    optimizer = sgd(lr = 0)
    epochs    = 1
}
"""


def case_step_accuracy(nnc, src, tmp):
    """An output [3, 2] with a target [3] of class ids is judged step by step: row 1 has
    arg-maxes 0, 1, 0 against ids 0, 1, 1 (2 right), row 2 has 1, 1, 1 against 1, 1, 1 (3
    right), so accuracy is 5 / 6; the whole-output arg-max would compare one index of 6 with
    the largest id. predict --classes prints a class a step, --probabilities a softmax a
    step, on one line a sample."""
    write(tmp, "d.csv", "1,0,0,1,1,0,0,1,1\n0,1,0,2,0,3,1,1,1\n")
    write(tmp, "m.nn", STEP_MODEL)
    run([nnc, "m.nn", "-o", "m"], tmp)
    out, _ = run(["./m", "train", "--save", "w.safetensors", "--quiet"], tmp)
    check("final accuracy 0.8333" in out, f"train: {out}")
    out, _ = run(["./m", "eval", "--weights", "w.safetensors"], tmp)
    check("accuracy 0.8333" in out, f"eval: {out}")
    out, _ = run(["./m", "predict", "--weights", "w.safetensors", "--classes"], tmp,
                 stdin=b"1,0,0,1,1,0\n0,1,0,2,3,0\n")
    check(out == "0,1,0\n1,1,0\n", f"predict --classes: {out!r}")
    out, _ = run(["./m", "predict", "--weights", "w.safetensors", "--probabilities"], tmp,
                 stdin=b"1,0,0,0,0,1\n")
    e = 2.718281828459045
    want = [e / (e + 1), 1 / (e + 1), 0.5, 0.5, 1 / (e + 1), e / (e + 1)]
    got = rows(out)
    check(len(got) == 1 and len(got[0]) == 6 and
          all(abs(a - b) < 1e-6 for a, b in zip(got[0], want)),
          f"predict --probabilities: {out!r}, wanted {want}")


# ---- sample: the one-step form (docs/codegen.md, "The one-step form") ----

def utf8_chars(out):
    """The characters sample printed (it prints exactly --length of them, no newline)."""
    return list(out)


def step_scores(exe, tmp, weights, prime):
    """The scores the one-step form gives after each character of prime, a row each."""
    out, _ = run([exe, "sample", "--weights", weights, "--prime", prime, "--length", "0",
                  "--scores"], tmp)
    return rows(out)


def window_scores(exe, tmp, weights, window, seq):
    """predict's output on the window (seq characters, then the next one): seq rows."""
    write(tmp, "window.txt", window)
    out, _ = run([exe, "predict", "--weights", weights, "--data", "window.txt"], tmp)
    values = rows(out)
    check(len(values) == 1, f"predict printed {len(values)} rows for one window")
    v = len(values[0]) // seq
    return [values[0][i * v:(i + 1) * v] for i in range(seq)]


def check_same_scores(step, whole, tolerance, what):
    check(len(step) == len(whole), f"{what}: {len(step)} rows from the steps, {len(whole)} "
                                   "from the whole window")
    worst = max(abs(a - b) / max(1.0, abs(b))
                for r, w in zip(step, whole) for a, b in zip(r, w))
    check(worst <= tolerance, f"{what}: the one-step form and the whole-window forward differ "
                              f"by {worst} (allowed {tolerance})")


def case_char_rnn(nnc, src, tmp):
    """examples/char_rnn.nn (an embedding, an LSTM of 128 and a linear layer on the Genesis
    text) trains to a held-out loss below 2.0 nats a character in 2 epochs (about 1.9; the
    bigram model gets 2.3, examples/bigram_text.nn). Its one-step form, fed a window a
    character at a time, gives the scores predict gives on the whole window (1e-5 in f32),
    so the carried LSTM state is right. sample prints exactly --length characters of the
    vocabulary, the same for the same seed, others for another; with --temperature 0 the
    first is the arg-max of predict's last row after the prime."""
    exe = os.path.join(tmp, "char_rnn")
    run([nnc, os.path.join(src, "examples", "char_rnn.nn"), "-o", exe], tmp)
    # Under ASan+UBSan the run is about 10 times slower: a few steps only, and a lower bar.
    budget = ["--epochs", "1", "--steps", "20"] if sanitized(exe) else ["--epochs", "2"]
    bar = 4.0 if sanitized(exe) else 2.0
    out, _ = run([exe, "train", "--save", "w.safetensors", "--quiet"] + budget, tmp)
    val = [float(l.split()[-1]) for l in out.splitlines() if l.startswith("validation loss")]
    check(val and val[0] / 64 < bar, f"held-out loss a character {val and val[0] / 64}, "
                                     f"wanted below {bar}:\n{out}")
    with open(os.path.join(src, "examples", "genesis.txt"), encoding="utf-8") as f:
        text = f.read()
    vocab, _ = vocab_and_ids(text)
    window = text[1000:1065]
    step = step_scores(exe, tmp, "w.safetensors", window[:64])
    check_same_scores(step, window_scores(exe, tmp, "w.safetensors", window, 64), 1e-5,
                      "char_rnn in f32")
    first, _ = run([exe, "sample", "--weights", "w.safetensors", "--prime", window[:64],
                    "--length", "1", "--temperature", "0"], tmp)
    best = max(range(len(vocab)), key=lambda i: (step[-1][i], -i))
    check(first == vocab[best], f"--temperature 0 after the prime drew {first!r}, the "
                                f"arg-max of the scores is {vocab[best]!r}")
    sample = [exe, "sample", "--weights", "w.safetensors", "--prime", "And God said",
              "--length", "300"]
    a, _ = run(sample + ["--seed", "7"], tmp)
    b, _ = run(sample + ["--seed", "7"], tmp)
    c, _ = run(sample + ["--seed", "8"], tmp)
    check(len(utf8_chars(a)) == 300, f"--length 300 printed {len(a)} characters: {a!r}")
    check(set(a) <= set(vocab), f"characters outside the vocabulary: {set(a) - set(vocab)}")
    check(a == b, "the same seed drew different text")
    check(a != c and len(c) == 300, "seeds 7 and 8 drew the same text")


# Two recurrent layers (two carries: a GRU's [n] and an LSTM's [2, n]) on one-hot input.
STACKED_MODEL = """import "nn"
model m {
    input  x[6, 6]
    target y[6, 6]
    h = lstm(gru(x, 4), 3)
    param W[3, 6] = glorot
    param b[6]    = zeros
    output z = h @ W + b
    loss     = softmax_cross_entropy(z, y)
}
train m {
    data      = text("t.txt", seq = 6)
    optimizer = adam(lr = 0.05)
    batch     = 2
    epochs    = 3
}
"""


def case_sample_step_f64(nnc, src, tmp):
    """The one-step form of a GRU under an LSTM on one-hot characters, compiled in f64:
    fed a window a character at a time, it gives predict's scores on the whole window to
    1e-10, for each of several windows."""
    text = "abcde\nedcba\naabbccddee\nbadcab\n" * 3
    write(tmp, "t.txt", text)
    write(tmp, "m.nn", STACKED_MODEL)
    run([nnc, "m.nn", "--f64", "-o", "m"], tmp)
    run(["./m", "train", "--save", "w.safetensors", "--quiet"], tmp)
    for start in (0, 7, 30):
        window = text[start:start + 7]
        check_same_scores(step_scores("./m", tmp, "w.safetensors", window[:6]),
                          window_scores("./m", tmp, "w.safetensors", window, 6), 1e-10,
                          f"the window at {start} in f64")


def drop_vocab(path, to):
    """The weights file without its text.vocab metadata."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    del header["__metadata__"]["text.vocab"]
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(to, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + data[8 + n:])


# A scan whose one-step form cannot be made: the reshape needs the whole window of 6.
WHOLE_WINDOW_MODEL = STACKED_MODEL.replace("output z = h @ W + b",
                                           "output z = reshape(reshape(h, 18), 6, 3) @ W + b")


def check_cannot_sample(nnc, src, tmp, example, reason):
    """examples/EXAMPLE.nn compiled: sample says why it cannot run. Returns its --help."""
    exe = os.path.join(tmp, example)
    run([nnc, os.path.join(src, "examples", example + ".nn"), "-o", exe], tmp)
    _, err = run([exe, "sample"], tmp, 1)
    check_error(err, f"{example}: error: model '{example}' cannot sample: {reason}")
    return run([exe, "--help"], tmp)[0]


def case_sample_errors(nnc, src, tmp):
    """sample's messages: a prime character the weights never saw, weights without a
    vocabulary, bad numbers, and models that cannot sample (no scan, no text data, a layer
    that needs the whole window), each saying why; --help lists sample truthfully."""
    write(tmp, "t.txt", "abcde\nedcba\naabbccddee\nbadcab\n")
    write(tmp, "m.nn", STACKED_MODEL)
    run([nnc, "m.nn", "-o", "m"], tmp)
    run(["./m", "train", "--save", "w.safetensors", "--quiet"], tmp)
    _, err = run(["./m", "sample", "--weights", "w.safetensors", "--prime", "abX"], tmp, 1)
    check_error(err, "--prime:1: error: column 3: character 'X' (U+0058) is not in the "
                     "vocabulary (6 characters) of the weights w.safetensors")
    drop_vocab(os.path.join(tmp, "w.safetensors"), os.path.join(tmp, "nv.safetensors"))
    _, err = run(["./m", "sample", "--weights", "nv.safetensors"], tmp, 1)
    check_error(err, "nv.safetensors: error: no text vocabulary (metadata 'text.vocab')")
    for option, value, message in (("--length", "-1", "--length must be at least 0, got '-1'"),
                                   ("--length", "ten", "--length needs a whole number, got 'ten'"),
                                   ("--temperature", "-0.5",
                                    "--temperature must be at least 0, got '-0.5'"),
                                   ("--temperature", "hot",
                                    "--temperature needs a number, got 'hot'"),
                                   ("--seed", "1.5", "--seed needs a whole number, got '1.5'")):
        _, err = run(["./m", "sample", "--weights", "w.safetensors", option, value], tmp, 2)
        check_error(err, f"m: error: {message}")
    out, _ = run(["./m", "--help"], tmp)
    check("  sample     generate text from saved weights, a character at a time" in out,
          f"--help of a model that samples:\n{out}")

    write(tmp, "whole.nn", WHOLE_WINDOW_MODEL)
    run([nnc, "whole.nn", "-o", "whole"], tmp)
    _, err = run(["./whole", "sample"], tmp, 1)
    check_error(err, "whole: error: model 'm' cannot sample: its layers do not run on one "
                     "character at a time: ")
    check_error(err, "whole.nn:8:24: cannot reshape [1, 3] (3 elements) to [18]")
    out = check_cannot_sample(nnc, src, tmp, "bigram_text",
                              "it has no scan over its input, so no state to carry from one "
                              "character to the next")
    check("  sample     cannot run for this model" in out, f"--help of the bigram model:\n{out}")
    out = check_cannot_sample(nnc, src, tmp, "xor", "it does not read text data (data = "
                                                    "text(...) in its train block)")
    check("  sample " not in out and "sample options" not in out,
          f"--help of xor lists sample:\n{out}")

CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in CASES:
        sys.exit(f"usage: text_data.py NNC SOURCE_DIR CASE ({', '.join(CASES)})")
    nnc, src, name = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            CASES[name](nnc, src, tmp)
        except Failure as e:
            print(f"FAIL {name}: {e}")
            sys.exit(1)
    print(f"ok {name}")


if __name__ == "__main__":
    main()
