#!/usr/bin/env bash
# Times the training step of the study's MLPs and CNN in grokscope and in PyTorch in one command and
# prints the ratio (PyTorch's best of 1 and 2 threads over grokscope's median).
#   tools/bench_vs_torch.sh [BUILD_DIR]      (default build/release; needs tools/setup.sh --torch)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
[[ -x "$build/bench_train_step" ]] || { echo "no $build/bench_train_step: build the release preset first" >&2; exit 1; }
# Debian's python3 carries Debian's torch; another python3 earlier on PATH may not.
py=${PYTHON:-/usr/bin/python3}
"$py" -c "import torch" 2>/dev/null || { echo "PyTorch is not installed: run tools/setup.sh --torch" >&2; exit 1; }

ours=$(mktemp)
theirs=$(mktemp)
trap 'rm -f "$ours" "$theirs"' EXIT
"$build/bench_train_step" --benchmark_repetitions=7 --benchmark_report_aggregates_only=true \
  --benchmark_format=json >"$ours" 2>/dev/null
"$py" tools/torch_train_step.py >"$theirs"
"$py" - "$ours" "$theirs" <<'PY'
import json, sys
ours = {b["run_name"].removeprefix("BM_").removesuffix("/real_time"): b["real_time"]
        for b in json.load(open(sys.argv[1]))["benchmarks"] if b.get("aggregate_name") == "median"}
lines = [json.loads(l) for l in open(sys.argv[2])]
print(f"PyTorch {lines[0]['torch']}")
print(f"{'training step':40s} {'grokscope ms':>12s} {'torch 1T ms':>11s} {'torch 2T ms':>11s} {'torch best/ours':>15s}")
for name, ms in ours.items():
    t = {l["threads"]: l["median_ms"] for l in lines[1:] if l["name"] == name}
    if not t:  # a part of the step alone (AdamW), with no PyTorch twin
        continue
    best = min(t.values())
    print(f"{name:40s} {ms:12.3f} {t[1]:11.3f} {t[2]:11.3f} {best / ms:14.2f}x")
PY
