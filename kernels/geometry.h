#pragma once
// The geometry probe's per-manifold arithmetic (engine/probe/geometry.h), in f64: for each of
// `count` Gaussian vectors t_q, the anchor point of the manifold's QP and the terms that capacity,
// radius and dimension average over q. A manifold's arrays are in the backend's memory,
// row-major:
//   s      [points, dims]   its points, the last coordinate of each 1 (the center direction)
//   t      [count, dims]    the Gaussian vectors
//   gram   [points, points] S Sᵀ
//   proj   [points, count]  S tᵀ
//   z      [count, points]  the NNLS multipliers of each t (zero for an interior t)
//   interior [count]        μ + 1 for an interior t whose anchor is point μ, else 0
//   sz, gz [count, dims], [count, points]   z S and z G
// The solves of all manifolds of a layer go in one call, so that a GPU has them all at once.
#include <cstdint>
#include <vector>

#include "kernels/family.h"

namespace gs::kernels {

struct AnchorProblem {
  i64 dims = 0;    // D + 1
  i64 points = 0;  // m
  i64 count = 0;   // n_t
  double kappa = 0;
  const double* s = nullptr;
  const double* t = nullptr;
  const double* gram = nullptr;
  const double* proj = nullptr;
  double* z = nullptr;
  std::int32_t* interior = nullptr;
};

// One layer's activations grouped by class: the input of layer_centers and manifold_points.
struct LayerClasses {
  i64 rows = 0, features = 0, classes = 0;
  const double* x = nullptr;                  // [rows, features] row-major
  const std::int32_t* class_rows = nullptr;   // [rows]: the rows of class 0 in increasing order, then class 1's, …
  const std::int32_t* class_first = nullptr;  // [classes + 1]: class c's are class_rows[class_first[c] .. class_first[c + 1])
};

// One manifold's points, to be expressed in coordinates of their own span (span_coordinates).
struct SpanProblem {
  i64 features = 0;        // F
  i64 points = 0;          // m
  double* work = nullptr;  // [features, points] row-major (column p is point p); overwritten
  double* s = nullptr;     // out: [points, min(features, points) + 1], the anchor problem's points
  GS_HOST_DEVICE i64 dims() const { return (features > points ? points : features) + 1; }
};

// The columns of anchor_terms' `terms`, one row per t.
enum AnchorTerm : int {
  capacity_term = 0,   // (t·s̃ + κ)₊² / ‖s̃‖²
  cosine_term,         // cos(t_{1..D}, s̃_{1..D}), 0 when D = 0
  radius_term,         // ‖(s̃ − mean_q s̃)_{1..D} / s̃_{D+1}‖²
  max_violation_term,  // max_μ (s_μ·v + κ), at least 0
  min_multiplier_term, // min_μ z_μ, at most 0
  complementarity_term,// max_μ |z_μ (s_μ·v + κ)|
  anchor_term_count
};

class GeometryKernels {
 public:
  virtual ~GeometryKernels() = default;
  // For each manifold and each of its t_q: the point of largest projection on t's first D
  // coordinates (the lowest μ on a tie); if t_q is interior (t_{D+1} + that projection + κ < 0)
  // it is the anchor, interior[q] = μ + 1 and z's row is 0. Otherwise interior[q] = 0 and z's
  // row is the solution of
  //   min_{z ≥ 0} ‖Sᵀz − (t + κ ê)‖²
  // by Lawson and Hanson's active-set method on the Gram, with KKT tolerance `tolerance`.
  virtual void solve_anchors(const std::vector<AnchorProblem>& manifolds, double tolerance) = 0;
  // The mean of all rows (mean [features]) and each class's center, the mean of its rows minus
  // that mean (centers [classes, features]); the sums run over the rows in class_rows' order.
  virtual void layer_centers(const LayerClasses& layer, double* mean, double* centers) = 0;
  // Each class's manifold, span_coordinates' input: each of its rows minus `mean`, the k
  // orthonormal columns of basis [features, k] projected out one after the other, then minus the
  // class's own mean of these and divided by that mean's norm. `work` holds the classes one after
  // another, class c's as [features, m_c] row-major (column p its p-th row) from
  // features · class_first[c]. norms [classes, 2]: the norm divided by, and the largest |value|
  // of the class's work (0 when its points coincide). A zero norm leaves that class's work
  // undefined (its center lies in the basis's span).
  virtual void manifold_points(const LayerClasses& layer, const double* mean, const double* basis, i64 k, double* work,
                               double* norms) = 0;
  // For each manifold, the coordinates of its points in their own span, with the center
  // coordinate 1 appended: s[p, :] = (R[0..m−1, p], 1) where work = Q R is the Householder QR
  // (LAPACK's dgeqrf) and each row of R is signed so that its diagonal is non-negative, which
  // makes R unique for points of full rank, so the coordinates do not depend on the basis the
  // points came in. With F ≤ m the coordinates are the points themselves.
  virtual void span_coordinates(const std::vector<SpanProblem>& manifolds) = 0;
  // From one manifold's solves: each t's anchor s̃ (row q of anchors, [count, dims]) and its row
  // of terms ([count, anchor_term_count], the columns above). The mean over q is in increasing q.
  virtual void anchor_terms(const AnchorProblem& p, const double* sz, const double* gz, double* anchors,
                            double* terms) = 0;
};

}  // namespace gs::kernels
