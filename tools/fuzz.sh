#!/usr/bin/env bash
# Builds the libFuzzer target for the file readers (IDX, CIFAR, safetensors, .npy) with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer, seeds it with valid files of each kind and
# runs it. Prints the executions and whether anything crashed.
#   tools/fuzz.sh [RUNS]        (default 1000000 executions)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1000000}
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "fuzz: installing $p"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null; }
done
out=build/fuzz
mkdir -p "$out/corpus" "$out/crashes"
# The readers and what they link, without OpenMP (its pragmas are ignored: the readers use none).
sources=(tests/fuzz/fuzz_readers.cpp data/idx.cpp data/cifar.cpp engine/io/safetensors.cpp engine/io/npy.cpp engine/io/files.cpp
  engine/tensor.cpp engine/dtype.cpp engine/allocator.cpp engine/autograd.cpp engine/ops_elementwise.cpp
  engine/ops_dense.cpp engine/ops_loss.cpp kernels/backend.cpp kernels/cpu/*.cpp)
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Wno-unknown-pragmas \
  -I. -I/usr/include/openblas "${sources[@]}" -o "$out/fuzz_readers" -lfmt -lz -lopenblas -llapacke

# Seeds: one valid file per reader, prefixed with its selector byte.
python3 - "$out/corpus" <<'PY'
import json, struct, sys
d = sys.argv[1]
idx = bytes([0, 0, 8, 3]) + struct.pack(">III", 2, 3, 3) + bytes(range(18))
cifar10 = bytes([3]) + bytes(3072)
cifar100 = bytes([1, 42]) + bytes(3072)
header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "__metadata__": {"step": "0"}}).encode()
st = struct.pack("<Q", len(header)) + header + bytes(8)
npy_header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
npy_header += " " * ((64 - (10 + len(npy_header) + 1) % 64) % 64) + "\n"
npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(npy_header)) + npy_header.encode() + bytes(24)
for i, blob in enumerate([bytes([0]) + idx, bytes([1]) + cifar10, bytes([2]) + cifar100, bytes([3]) + st, bytes([4]) + npy]):
    open(f"{d}/seed{i}", "wb").write(blob)
PY
log="$out/fuzz.log"
set +e
"$out/fuzz_readers" -runs="$runs" -max_len=8192 -artifact_prefix="$out/crashes/" "$out/corpus" >"$log" 2>&1
status=$?
set -e
grep -E "^#[0-9]+ *DONE|Done [0-9]+ runs" "$log" | tail -2
crashes=$(find "$out/crashes" -type f | wc -l)
echo "fuzz: exit status $status, crash files: $crashes (log: $log)"
exit $status
