#!/usr/bin/env bash
# Configures and builds nnc, its runtime and the tests. usage: build.sh [--sanitize]
# The plain build goes to build/, the ASan+UBSan one to build-asan/.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build
flags=()
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  flags=(-DNNC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
fi
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
