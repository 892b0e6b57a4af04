#!/usr/bin/env python3
"""Runs nnc on every tests/errors/*.nn file and checks the errors it reports.

Each bad file says what it expects, on the line at fault:

    loss = sum(x @ W)     # expect error: 4:18: cannot multiply [3] by [4, 2]
    param w = 1           # expect warning: 2:11: gets no gradient

Each expectation must match one diagnostic `FILE:LINE:COL: error: MESSAGE` where MESSAGE
contains the text; every error nnc prints must be expected; nnc must exit with status 1
(0 when only warnings are expected) and must not write the output file.

An expectation may also name the hint printed under its diagnostic, exactly:

    a = hh + 1     # expect error: 6:9: unknown name hh  # hint: did you mean h?
"""
import os
import re
import subprocess
import sys
import tempfile

EXPECT = re.compile(r"#\s*expect (error|warning):\s*(\d+):(\d+):\s*(.*?)\s*$")
HINT = re.compile(r"\s*#\s*hint:\s*")
DIAG = re.compile(r"^(.*?):(\d+):(\d+): (error|warning|note): (.*)$")


def check(nnc, path):
    expected = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = EXPECT.search(line)
            if m:
                text, *hint = HINT.split(m.group(4), maxsplit=1)
                expected.append((m.group(1), int(m.group(2)), int(m.group(3)), text,
                                 hint[0] if hint else None))
    if not expected:
        return [f"{path}: no '# expect error:' line"]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        proc = subprocess.run([nnc, path, "-o", out], capture_output=True, text=True, timeout=60)
        made_output = os.path.exists(out)
    problems = []
    want_status = 1 if any(k == "error" for k, *_ in expected) else 0
    if proc.returncode != want_status:
        problems.append(f"exit status {proc.returncode}, wanted {want_status}")
    if want_status and made_output:
        problems.append("an output file was written despite errors")
    name = os.path.basename(path)
    got = []  # (kind, line, col, message, hints under it)
    for line in proc.stderr.splitlines():
        m = DIAG.match(line)
        if m and m.group(4) != "note":
            here = os.path.basename(m.group(1)) == name
            got.append((m.group(4), int(m.group(2)), int(m.group(3)), m.group(5), []) if here
                       else None)
        elif line.startswith("  hint: ") and got and got[-1]:
            got[-1][4].append(line[len("  hint: "):])
    got = [g for g in got if g]
    for kind, line, col, text, hint in expected:
        if not any(k == kind and l == line and c == col and text in msg and
                   (hint is None or hint in hints) for k, l, c, msg, hints in got):
            problems.append(f"missing {kind} {line}:{col}: {text}" +
                            (f" with the hint: {hint}" if hint else ""))
    for kind, line, col, msg, _ in got:
        if kind == "error" and not any(k == kind and l == line and c == col and t in msg
                                       for k, l, c, t, _ in expected):
            problems.append(f"unexpected error {line}:{col}: {msg}")
    if problems:
        problems = [f"{path}: {p}" for p in problems] + ["--- nnc said:", proc.stderr]
    return problems


def main():
    nnc, folder = sys.argv[1], sys.argv[2]
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".nn"))
    failed = 0
    for path in files:
        problems = check(nnc, path)
        if problems:
            failed += 1
            print("\n".join(problems))
        else:
            print(f"ok  {os.path.basename(path)}")
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed or not files else 0


if __name__ == "__main__":
    sys.exit(main())
