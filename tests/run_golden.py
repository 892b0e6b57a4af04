#!/usr/bin/env python3
"""Compares what nnc prints for the examples with the golden files in tests/golden.

A golden file NAME.STAGE.txt holds the output of `nnc examples/NAME.nn --emit=STAGE`
(run from the source folder). On a difference the test fails with a diff. After a
deliberate change to the printer, regenerate with: run_golden.py NNC SRC GOLDEN --update
"""
import difflib
import os
import subprocess
import sys


def main():
    nnc, src, golden = sys.argv[1], sys.argv[2], sys.argv[3]
    update = "--update" in sys.argv[4:]
    files = sorted(f for f in os.listdir(golden) if f.endswith(".txt"))
    failed = 0
    for name in files:
        example, stage, _ = name.rsplit(".", 2)
        model = os.path.join("examples", example + ".nn")
        if not os.path.exists(os.path.join(src, model)):
            model = os.path.join("examples", "lessons", example + ".nn")
        proc = subprocess.run([nnc, model, "--emit=" + stage], cwd=src, capture_output=True,
                              text=True, timeout=60)
        path = os.path.join(golden, name)
        if update:
            with open(path, "w") as f:
                f.write(proc.stdout)
        with open(path) as f:
            want = f.read()
        if proc.returncode != 0 or proc.stdout != want:
            failed += 1
            print(f"FAIL {name} (exit status {proc.returncode})\n{proc.stderr}")
            sys.stdout.writelines(difflib.unified_diff(want.splitlines(True), proc.stdout.splitlines(True),
                                                       "golden/" + name, "nnc output"))
        else:
            print(f"ok  {name}")
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed or not files else 0


if __name__ == "__main__":
    sys.exit(main())
