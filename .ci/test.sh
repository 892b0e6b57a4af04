#!/usr/bin/env bash
# The README's second command: install what is missing, build, and run the whole test
# suite with ctest. usage: test.sh [--sanitize]   (ASan+UBSan build with clang in
# build-asan/, where the suite includes a 30 s run of each fuzz target: ctest -L fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh "$@" --tests
bash .ci/build.sh "$@"
dir=build
[ "${1:-}" = "--sanitize" ] && dir=build-asan
cd "$dir"
ctest --output-on-failure -j"$(nproc)"
