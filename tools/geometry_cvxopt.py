#!/usr/bin/env python3
"""An independent implementation of the geometry probe's per-manifold analysis, the way the
reference (neural_manifolds_replicaMFT) computes it: one generic QP per Gaussian vector t,
solved by cvxopt, in NumPy. It skips the center-structure removal (step 2: the reference does it
with pymanopt, which Debian lacks), so it is compared with `grokscope geometry
--no-center-structure`.

    geometry_cvxopt.py X.npy y.npy [--kappa K] [--n-t N] [--seed S]

Prints one JSON object: capacity, capacity_se, radius, dimension, per_class, seconds.
Definitions (as in engine/probe/geometry.cpp and docs/geometry.md): the points minus the global
mean; per class, minus the class mean and over that mean's norm, reduced to their span, with a
center coordinate of 1 appended (S, m × (D+1)). For each t ~ N(0, I): if the point of largest
projection on t's first D coordinates already has t·s + κ < 0, t is interior; otherwise the
anchor from min ½‖v − t‖² s.t. S v ≤ −κ, whose multipliers z give s̃ = Sᵀz / Σz.
α⁻¹ = mean_t (t·s̃ + κ)₊² / ‖s̃‖²; the layer's capacity is 1 / mean(1/α_M).
"""
import argparse
import json
import sys
import time

import numpy as np

try:
    import cvxopt
    import cvxopt.solvers
except ImportError:
    print("geometry_cvxopt: needs cvxopt (Debian: python3-cvxopt; tools/setup.sh --torch installs it)", file=sys.stderr)
    sys.exit(3)


def analyze_manifold(s, kappa, t_vectors):
    m, d1 = s.shape
    d = d1 - 1
    G = cvxopt.matrix(s)
    h = cvxopt.matrix(-kappa * np.ones(m))
    P = cvxopt.spmatrix(1.0, range(d1), range(d1))
    anchors = np.empty_like(t_vectors)
    for i, t in enumerate(t_vectors):
        best = int(np.argmax(s[:, :d] @ t[:d]))
        if t[d] + s[best, :d] @ t[:d] + kappa < 0:
            anchors[i] = s[best]
            continue
        sol = cvxopt.solvers.qp(P, cvxopt.matrix(-t), G, h)
        z = np.maximum(np.array(sol["z"]).ravel(), 0)
        anchors[i] = s.T @ z / z.sum()
    dots = np.maximum((t_vectors * anchors).sum(1) + kappa, 0)
    terms = dots**2 / (anchors**2).sum(1)
    mean = terms.mean()
    capacity = 1 / mean
    capacity_se = terms.std(ddof=1) / np.sqrt(len(terms)) / mean**2
    centred = (anchors[:, :d] - anchors[:, :d].mean(0)) / anchors[:, d:d1]
    radius = np.sqrt((centred**2).sum(1).mean())
    # The reference adds 1e-12 under the anchor's root; grokscope does not (docs/geometry.md).
    cos = (t_vectors[:, :d] * anchors[:, :d]).sum(1) / (
        np.linalg.norm(t_vectors[:, :d], axis=1) * np.linalg.norm(anchors[:, :d], axis=1))
    dimension = d * cos.mean() ** 2
    return capacity, capacity_se, radius, dimension


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("x")
    parser.add_argument("y")
    parser.add_argument("--kappa", type=float, default=0.0)
    parser.add_argument("--n-t", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cvxopt.solvers.options["show_progress"] = False
    x = np.load(args.x).astype(np.float64)
    y = np.load(args.y).astype(np.int64)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    x = x - x.mean(0)
    per_class = []
    for c in range(int(y.max()) + 1):
        p = x[y == c]
        centre = p.mean(0)
        s = (p - centre) / np.linalg.norm(centre)
        if s.shape[1] > s.shape[0]:  # reduce to the span: Sᵀ = Q R, the points' coordinates are R's columns
            s = np.linalg.qr(s.T, mode="r").T
        s = np.hstack([s, np.ones((s.shape[0], 1))])
        t = rng.standard_normal((args.n_t, s.shape[1]))
        per_class.append(analyze_manifold(s, args.kappa, t))
    seconds = time.perf_counter() - start
    alphas = np.array([p[0] for p in per_class])
    inv_se = np.array([p[1] / p[0] ** 2 for p in per_class])
    mean_inv = (1 / alphas).mean()
    print(json.dumps({
        "capacity": 1 / mean_inv,
        "capacity_se": float(np.sqrt((inv_se**2).sum()) / len(alphas) / mean_inv**2),
        "radius": float(np.mean([p[2] for p in per_class])),
        "dimension": float(np.mean([p[3] for p in per_class])),
        "per_class": [{"capacity": p[0], "capacity_se": p[1], "radius": p[2], "dimension": p[3]} for p in per_class],
        "seconds": seconds,
    }))


if __name__ == "__main__":
    main()
