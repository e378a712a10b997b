#!/usr/bin/env bash
# The NTK probe (bench_ntk) against the study's method in PyTorch (tools/torch_ntk_loop.py: one
# autograd.grad per point and logit, J stacked, J Jᵀ), in one command, for the MNIST MLP on 256
# points; PyTorch's best of 1 and 2 threads.
#   tools/bench_ntk_vs_torch.sh [BUILD_DIR]     (default build/release; needs tools/setup.sh --torch)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
py=${PYTHON:-/usr/bin/python3}
[[ -x "$build/bench_ntk" ]] || { echo "no $build/bench_ntk: build the release preset first" >&2; exit 1; }
"$py" -c "import torch" 2>/dev/null || { echo "PyTorch is not installed: run tools/setup.sh --torch" >&2; exit 1; }
ours=$("$build/bench_ntk" --benchmark_filter='mlp_256/64' --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_format=json 2>/dev/null | "$py" -c "import json,sys; print(next(b['real_time'] for b in json.load(sys.stdin)['benchmarks'] if b.get('aggregate_name') == 'median'))")
t1=$("$py" tools/torch_ntk_loop.py 256 1 | "$py" -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
t2=$("$py" tools/torch_ntk_loop.py 256 2 | "$py" -c "import json,sys; print(json.load(sys.stdin)['seconds'])")
"$py" - "$ours" "$t1" "$t2" <<'PY'
import sys
ours_ms, t1, t2 = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
best = min(t1, t2)
print(f"NTK of the MNIST MLP on 256 points (K 2560 x 2560)")
print(f"  grokscope probe (kernel + distance), median: {ours_ms:.1f} ms")
print(f"  PyTorch per-logit loop: {t1:.2f} s (1 thread), {t2:.2f} s (2 threads)")
print(f"  ratio, PyTorch's best over grokscope: {best * 1e3 / ours_ms:.0f}x")
PY
