#pragma once
// The per-t arithmetic of GeometryKernels::anchor_terms (kernels/geometry.h), one definition for
// the CPU backend and the CUDA kernels (compiled by nvcc for the device, by the host compiler
// everywhere else): each t's anchor, its KKT residuals, and its terms.
#include <cmath>

#include "kernels/geometry.h"

namespace gs::kernels {

// Entry `index` of span_coordinates' output (index = point · dims + coordinate), from the work
// array once its QR (F > m) has left R in the upper triangle.
GS_SHARED_INLINE double span_coordinate(const SpanProblem& p, i64 index) {
  const i64 m = p.points, d1 = p.dims(), point = index / d1, r = index % d1;
  if (r == d1 - 1) return 1;                           // the center coordinate
  if (p.features <= m) return p.work[r * m + point];   // feature r of the point
  if (r > point) return 0;                             // below R's diagonal
  const double v = p.work[r * m + point];
  return p.work[r * m + r] < 0 ? -v : v;               // row r signed by its diagonal
}

// The anchor s̃ of t_q (the max-projection point when t_q is interior, else Sᵀz / Σz) into
// `anchor` [dims], and every column of its row of terms but the radius's.
GS_SHARED_INLINE void anchor_row(const AnchorProblem& p, i64 q, const double* sz, const double* gz, double* anchor,
                                      double* row) {
  const i64 d1 = p.dims, d = d1 - 1, m = p.points, n_t = p.count;
  const double* t = p.t + q * d1;
  const double* z = p.z + q * m;
  double violation = 0, min_multiplier = 0, complementarity = 0;
  if (p.interior[q] > 0) {
    const double* point = p.s + (p.interior[q] - 1) * d1;
    for (i64 k = 0; k < d; ++k) anchor[k] = point[k];
    anchor[d] = 1;
  } else {
    double zsum = 0;
    for (i64 mu = 0; mu < m; ++mu) zsum += z[mu];
    for (i64 k = 0; k < d1; ++k) anchor[k] = zsum > 0 ? sz[q * d1 + k] / zsum : 0;
    // KKT of the primal: s_μ·v ≤ −κ, z ≥ 0, z_μ (s_μ·v + κ) = 0, with s_μ·v = s_μ·t − (G z)_μ.
    for (i64 mu = 0; mu < m; ++mu) {
      const double slack = p.proj[mu * n_t + q] - gz[q * m + mu] + p.kappa;
      violation = violation < slack ? slack : violation;
      min_multiplier = z[mu] < min_multiplier ? z[mu] : min_multiplier;
      const double product = fabs(z[mu] * slack);
      complementarity = complementarity < product ? product : complementarity;
    }
  }
  double ts = p.kappa, ss = 0;
  for (i64 k = 0; k < d1; ++k) {
    ts += t[k] * anchor[k];
    ss += anchor[k] * anchor[k];
  }
  const double pos = ts < 0 ? 0 : ts;
  row[capacity_term] = ss > 0 ? pos * pos / ss : 0;
  double cosine = 0;
  if (d > 0) {
    double tn = 0, sn = 0, dot = 0;
    for (i64 k = 0; k < d; ++k) {
      tn += t[k] * t[k];
      sn += anchor[k] * anchor[k];
      dot += t[k] * anchor[k];
    }
    // No ε under the root: the anchor's first D coordinates shrink as 1/κ (its spread is the
    // radius), and a fixed ε swamped them above κ ≈ 1e5, pulling the dimension down.
    cosine = sn > 0 && tn > 0 ? dot / (sqrt(tn) * sqrt(sn)) : 0;
  }
  row[cosine_term] = cosine;
  row[max_violation_term] = violation;
  row[min_multiplier_term] = min_multiplier;
  row[complementarity_term] = complementarity;
}

// ‖(s̃ − mean s̃)_{1..D} / s̃_{D+1}‖² of one anchor.
GS_SHARED_INLINE double radius_term_of(const double* anchor, const double* mean, i64 dims) {
  const i64 d = dims - 1;
  double sq = 0;
  for (i64 k = 0; k < d; ++k) {
    const double dk = (anchor[k] - mean[k]) / anchor[d];
    sq += dk * dk;
  }
  return sq;
}

}  // namespace gs::kernels
