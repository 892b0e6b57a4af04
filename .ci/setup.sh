#!/usr/bin/env bash
# Installs the Debian packages nnc needs, if any are missing (Debian 12; run as root).
# usage: setup.sh [--sanitize] [--tests]   (--sanitize: also clang and its sanitizer and
# libFuzzer runtimes, for the ASan+UBSan build and the fuzz targets; --tests: also
# python3-torch, which tests/torch compares nnc with, and Open MPI, which nnc --mpi links
# and the mpi.* tests run: the test command asks for them, the quick start does not)
set -euo pipefail
packages=(build-essential cmake pkg-config flex bison libopenblas-dev zlib1g-dev llvm-19-dev libzstd-dev python3)
for arg in "$@"; do
  case "$arg" in
    --sanitize) packages+=(clang libclang-rt-14-dev) ;;
    --tests) packages+=(python3-torch openmpi-bin libopenmpi-dev) ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# Another process may hold the dpkg lock when a machine has just started.
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
