#pragma once
// Mean-field theoretic manifold analysis (MFTMA; Chung, Lee & Sompolinsky, PRX 2018; Cohen et al.,
// Nat. Commun. 2020), the per-manifold core: capacity, anchor radius and anchor dimension of one
// manifold given as points, as the reference implementation (neural_manifolds_replicaMFT,
// each_manifold_analysis_D1) defines them.
//
// A manifold is m points s_μ in D+1 dimensions whose last coordinate is 1 (the center direction).
// For each Gaussian t the anchor point comes from the QP  min ½‖v − t‖²  s.t. s_μ·v ≤ −κ  (the
// reference's sign convention), solved through its dual, the non-negative least squares problem
//   min_{z ≥ 0} ‖S z − (t + κ ê)‖²,   v = t − S z,   s̃ = S z / Σ z,
// whose Gram SᵀS is shared by every t. Then (PRX 2018 eqs. 16-17, 28-29 as the reference computes):
//   α_M⁻¹ = mean_t (t·s̃ + κ)₊² / ‖s̃‖²,   R_M = √mean_t ‖(s̃ − mean s̃)_{1..D} / s̃_{D+1}‖²,
//   D_M = D · (mean_t t̂·ŝ)²  with t̂, ŝ the first D coordinates normalized.
#include <cstdint>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/probe/center_structure.h"
#include "engine/tensor.h"

namespace gs::probe {

// Column-major points: `points[(μ)·dims + k]` is coordinate k of point μ, dims = D + 1.
struct Manifold {
  std::int64_t dims = 0, count = 0;
  std::vector<double> points;
};

struct QpCheck {
  double max_violation = 0;  // of s_μ·v ≤ −κ
  double min_multiplier = 0;  // of z (must be ≥ 0)
  double max_complementarity = 0;  // max_μ |z_μ (s_μ·v + κ)|
};

struct ManifoldGeometry {
  double capacity = 0, radius = 0, dimension = 0;
  double capacity_se = 0;  // standard error of α_M from the spread of its n_t terms (delta method)
  std::int64_t interior = 0;  // t vectors needing no solve
  QpCheck worst;              // over every QP solved
};

// The largest margin κ accepted. κ is in units of a manifold's center norm (the last coordinate
// is 1), so the margins of interest are of order 1. Far above 1 the capacity tends to 1/κ², the
// radius falls as 1/κ and the dimension settles: a test holds the dimension to 1e-9 between
// κ = 1e4 and 1e6, and κ·radius and κ²·capacity close to their limits. Past 1e8 they lose about a
// digit a decade to rounding (the anchors' first D coordinates are of order 1/κ).
inline constexpr double max_kappa = 1e6;

// t_vectors: column-major [dims, n_t] standard normal draws. The anchors are solved on `device`
// (kernels/geometry.h); only the per-t terms come back.
ManifoldGeometry analyze_manifold(const Manifold& m, double kappa, const std::vector<double>& t_vectors, std::int64_t n_t,
                                  Device device = Device::cpu);
// Several manifolds, each with its own t vectors (n_t each): their anchor problems are solved in
// one call, so that a GPU has them all at once.
std::vector<ManifoldGeometry> analyze_manifolds(const std::vector<Manifold>& manifolds, double kappa,
                                                const std::vector<std::vector<double>>& t_vectors, std::int64_t n_t,
                                                Device device = Device::cpu);

// Non-negative least squares min_{z ≥ 0} ‖A z − y‖² given G = AᵀA (m × m, row-major) and Aᵀy:
// Lawson and Hanson's active-set method (1974, ch. 23), on the Gram so that many right-hand sides
// share it. Returns z.
std::vector<double> nnls_gram(const std::vector<double>& gram, const std::vector<double>& aty, std::int64_t m,
                              double tolerance = 1e-12);

}  // namespace gs::probe

namespace gs::probe {

// One layer's manifolds: the activations of each class, as in the reference's
// manifold_analysis_corr. Steps (the reference's, see docs/geometry.md):
//   1. subtract the global mean of all points; class centers;
//   2. center correlation before removal: mean |off-diagonal cosine| of the centers (minus their mean);
//   3. each manifold minus its own mean, divided by the norm of that mean, reduced to its span by
//      QR, with the center coordinate 1 appended;
//   4. per manifold, analyze_manifold with n_t seeded Gaussian vectors.
// Between 2 and 3 the centers' common low-rank structure (K dimensions, engine/probe/
// center_structure.h) is projected out of every point, as the reference does; `removal` says
// how K is chosen (the reference's rule by default), or that nothing is removed.
struct LayerGeometry {
  double capacity = 0, capacity_se = 0, radius = 0, dimension = 0;
  double center_correlation = 0;  // before the removal
  std::int64_t k = 0;             // dimensions of the removed center structure (fewer than a fixed K where the centers allow fewer)
  std::vector<std::int64_t> k_near_ties;  // other K within 1e-3 of the best residual (the capacity moves with K)
  std::vector<ManifoldGeometry> per_class;
  std::vector<std::string> warnings;  // degenerate manifolds, said once each
  // Wall-clock seconds of the analysis's parts, each ending when its results are back on the
  // host (so a GPU's queued work counts where it finishes): the centers (with the upload), the
  // center structure (host), the manifolds, and the rest (span coordinates, Gaussian vectors,
  // anchors and terms).
  struct Seconds {
    double centers = 0, structure = 0, manifolds = 0, anchors = 0;
  } seconds;
};

// activations: [n, features] (f32 or f64) on the device the analysis runs on; labels: the class of
// each row, in [0, classes). Only the class centers and the global mean (for the center
// structure, found on the host) and per-t terms come back from the device. A layer whose class
// centers all lie on the global mean (every row alike) gets NaN geometry and a warning.
LayerGeometry analyze_layer(const Tensor& activations, const std::vector<std::int32_t>& labels, std::int64_t classes,
                            double kappa, std::int64_t n_t, std::uint64_t seed, CenterRemoval removal = {});
// The same from row-major host values, analysed on `device`.
LayerGeometry analyze_layer(const std::vector<double>& activations, std::int64_t features, const std::vector<std::int32_t>& labels,
                            std::int64_t classes, double kappa, std::int64_t n_t, std::uint64_t seed,
                            CenterRemoval removal = {}, Device device = Device::cpu);

}  // namespace gs::probe
