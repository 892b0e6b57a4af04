#!/usr/bin/env bash
# The README's first command: install what is missing, build everything, and train
# examples/xor.nn end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup.sh
bash .ci/build.sh
echo
echo "$ build/nnc examples/xor.nn -o build/xor && build/xor train"
build/nnc examples/xor.nn -o build/xor
build/xor train
