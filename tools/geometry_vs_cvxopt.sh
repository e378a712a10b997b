#!/usr/bin/env bash
# grokscope's geometry probe against an independent NumPy + cvxopt implementation of the
# reference's per-manifold QPs (tools/geometry_cvxopt.py), on the same activations, timed in
# the same command. Both skip the center-structure removal (the reference's needs pymanopt).
#   tools/geometry_vs_cvxopt.sh [N_T]      (default 200; needs tools/setup.sh --torch for cvxopt,
#                                           data/fetch.sh for MNIST, a release build)
# The two draw different t vectors (Philox vs NumPy), so their capacities agree within their
# Monte-Carlo standard errors, not to the digit.
set -euo pipefail
cd "$(dirname "$0")/.."
n_t="${1:-200}"
py=/usr/bin/python3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$py" - "$work" <<'PY'
import sys, numpy as np
out = sys.argv[1]
# MNIST test images, the first 200 of each digit, pixels in [0, 1]: the MLP's input layer.
raw = open("data/cache/mnist/t10k-images-idx3-ubyte", "rb").read()[16:]
images = np.frombuffer(raw, np.uint8).reshape(-1, 784).astype(np.float64) / 255
labels = np.frombuffer(open("data/cache/mnist/t10k-labels-idx1-ubyte", "rb").read()[8:], np.uint8)
keep = np.concatenate([np.flatnonzero(labels == c)[:200] for c in range(10)])
np.save(f"{out}/mnist_x.npy", images[keep])
np.save(f"{out}/mnist_y.npy", labels[keep].astype(np.int32))
# Gaussian clouds as in bench_geometry: 10 classes × 200 points in 200 dimensions.
rng = np.random.default_rng(1)
centres = rng.standard_normal((10, 200))
x = np.repeat(centres, 200, axis=0) + 0.5 * rng.standard_normal((2000, 200))
np.save(f"{out}/clouds_x.npy", x)
np.save(f"{out}/clouds_y.npy", np.repeat(np.arange(10), 200).astype(np.int32))
PY
for layer in mnist clouds; do
  x="$work/${layer}_x.npy" y="$work/${layer}_y.npy"
  start=$(date +%s.%N)
  build/release/grokscope geometry --activations "$x" --labels "$y" --n-t "$n_t" --no-center-structure --json >"$work/ours.json"
  end=$(date +%s.%N)
  "$py" tools/geometry_cvxopt.py "$x" "$y" --n-t "$n_t" >"$work/theirs.json"
  "$py" - "$layer" "$start" "$end" "$work/ours.json" "$work/theirs.json" <<'PY'
import json, math, sys
layer, ours_s = sys.argv[1], float(sys.argv[3]) - float(sys.argv[2])
a, b = json.load(open(sys.argv[4])), json.load(open(sys.argv[5]))
se = math.hypot(a["capacity_se"], b["capacity_se"])
print(f"{layer}: capacity {a['capacity']:.5f} ± {a['capacity_se']:.5f} (grokscope) vs {b['capacity']:.5f} ± {b['capacity_se']:.5f} "
      f"(cvxopt): {abs(a['capacity'] - b['capacity']) / se:.2f} s.e. apart")
print(f"  radius {a['radius']:.4f} vs {b['radius']:.4f}; dimension {a['dimension']:.3f} vs {b['dimension']:.3f}")
worst = max(abs(p['capacity'] - q['capacity']) / math.hypot(p['capacity_se'], q['capacity_se'])
            for p, q in zip(a['per_class'], b['per_class']))
print(f"  per class: at most {worst:.2f} s.e. apart")
print(f"  time: grokscope {ours_s:.2f} s (whole command), cvxopt {b['seconds']:.2f} s: {b['seconds'] / ours_s:.0f}x")
PY
done
