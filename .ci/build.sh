#!/usr/bin/env bash
# Configures and builds nnc, its runtime and the tests. usage: build.sh [--sanitize]
# The plain build goes to build/ (the default C compiler), the ASan+UBSan one to build-asan/
# with clang, which also builds the libFuzzer targets of tests/fuzz (NNC_FUZZ).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
flags=()
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  flags=(-DNNC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=clang)
fi
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
