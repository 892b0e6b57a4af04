#!/usr/bin/env python3
"""Front-end tests: run `nnc --emit=ast` on every .nn file under a folder.

  run.py NNC FOLDER [--update]

- Any other file must parse, and nnc's output must be its golden x.ast beside it byte for
  byte (--update writes the goldens).
- A file with lines `# expect error: LINE:COL: message` must fail, and nnc must report
  exactly those errors (in that order, nothing more; notes and hints are not checked).
"""
import os
import re
import subprocess
import sys

EXPECT = re.compile(r"#\s*expect error:\s*(\d+):(\d+):\s*(.*?)\s*$")
REPORTED = re.compile(r":(\d+):(\d+): error: (.*)$")


def run(nnc, path):
    p = subprocess.run([nnc, "--emit=ast", path], capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def check(nnc, path, update):
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        expected = [(int(m[1]), int(m[2]), m[3]) for m in map(EXPECT.search, f) if m]
    rc, out, err = run(nnc, path)
    if rc < 0 or rc > 1 or "Sanitizer" in err or "runtime error" in err:
        return f"crashed (exit {rc}):\n{err}"
    if expected:
        got = [(int(m[1]), int(m[2]), m[3]) for m in map(REPORTED.search, err.splitlines()) if m]
        if rc == 0:
            return "expected errors, but it compiled"
        if got != expected:
            want = "\n".join(f"  {l}:{c}: {m}" for l, c, m in expected)
            have = "\n".join(f"  {l}:{c}: {m}" for l, c, m in got)
            return f"errors differ\nwanted:\n{want}\ngot:\n{have}\nfull output:\n{err}"
        return None
    golden = path[:-3] + ".ast"
    if rc != 0:
        return f"failed:\n{err}"
    if not os.path.exists(golden) and not update:
        return f"no golden {os.path.basename(golden)} (run with --update to write it)"
    if update:
        with open(golden, "w") as f:
            f.write(out)
        return None
    with open(golden) as f:
        want = f.read()
    if out != want:
        import difflib
        diff = "".join(difflib.unified_diff(want.splitlines(True), out.splitlines(True),
                                            golden, "nnc --emit=ast"))
        return f"output differs from the golden:\n{diff}"
    return None


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    nnc, folder = sys.argv[1], sys.argv[2]
    update = "--update" in sys.argv[3:]
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs
                   if f.endswith(".nn"))
    failed = 0
    for path in files:
        problem = check(nnc, path, update)
        if problem:
            failed += 1
            print(f"FAIL {os.path.relpath(path, folder)}: {problem}")
        else:
            print(f"ok   {os.path.relpath(path, folder)}")
    print(f"{len(files) - failed} of {len(files)} passed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
