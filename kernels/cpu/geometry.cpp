// The geometry probe's anchor problems: the t vectors of all manifolds are independent, so they
// run in parallel, each on one thread, through a Lawson–Hanson NNLS that grows the Cholesky
// factor of its passive set a row at a time.
#include <algorithm>
#include <cmath>
#include <vector>

#include <lapacke.h>

#include "kernels/anchor_terms.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/region_errors.h"

namespace gs::kernels::cpu {

namespace {

// The Cholesky factor G_PP = L Lᵀ for Lawson–Hanson's passive set P, kept as P grows: adding a
// column appends one row to L (O(k²)) instead of refactoring (O(k³)), which is what the outer
// loop does one column at a time. A column leaving P (rare) refactors the rest in their order.
// L is stored transposed (R = Lᵀ, row-major), so that the forward substitution of a new row runs
// column by column as contiguous axpys (vectorized, no chain of dependent subtractions), and the
// backward one reads rows of R. Each sum still subtracts its terms in increasing order, as the
// row-by-row forms do, so the results do not depend on the layout.
//
// The rows of L, and the entries of the forward solution y = L⁻¹ b_P, depend only on the columns
// before them: appending a column leaves them as they are, and so does dropping a column for
// every column ahead of it. Both are kept, so a solve computes y's new entries only, and a
// refactoring re-adds only the columns after the first one dropped (bit for bit what a full
// refactoring gives).
class PassiveCholesky {
 public:
  PassiveCholesky(const double* g, i64 m) : g_(g), m_(m) {}
  const std::vector<i64>& columns() const { return columns_; }

  // False when column q is numerically dependent on P (G_PP would not be positive definite).
  bool add(i64 q) {
    const std::size_t k = columns_.size(), ld = static_cast<std::size_t>(m_);
    if (r_.size() < (k + 1) * ld) r_.resize((k + 1) * ld);
    // The new row of L solves L_PP l = G_P,q: forward, a column of L (a row of R) at a time.
    sums_.resize(k);
    for (std::size_t i = 0; i < k; ++i) sums_[i] = g(q, columns_[i]);
    double diag = g(q, q);
    for (std::size_t t = 0; t < k; ++t) {
      const double* rt = r_.data() + t * ld;
      const double lt = sums_[t] / rt[t];
      r_[t * ld + k] = lt;
      diag -= lt * lt;
      for (std::size_t i = t + 1; i < k; ++i) sums_[i] -= lt * rt[i];
    }
    if (!(diag > 1e-14 * std::max(1.0, g(q, q)))) return false;
    r_[k * ld + k] = std::sqrt(diag);
    columns_.push_back(q);
    return true;
  }

  // Keeps the columns `keep` says to, in their order; false if the rest stopped being independent.
  bool keep_only(const std::vector<char>& keep) {
    std::size_t first_dropped = 0;
    while (first_dropped < columns_.size() && keep[static_cast<std::size_t>(columns_[first_dropped])]) ++first_dropped;
    std::vector<i64> readd;
    for (std::size_t i = first_dropped; i < columns_.size(); ++i)
      if (keep[static_cast<std::size_t>(columns_[i])]) readd.push_back(columns_[i]);
    columns_.resize(first_dropped);
    solved_ = std::min(solved_, first_dropped);
    for (auto q : readd)
      if (!add(q)) return false;
    return true;
  }

  // x = G_PP⁻¹ b_P, in the order of columns(); b must be the same at every call.
  void solve(const double* b, std::vector<double>& x) {
    const std::size_t k = columns_.size(), ld = static_cast<std::size_t>(m_);
    y_.resize(k);
    for (std::size_t i = solved_; i < k; ++i) {  // L y = b, the rows not solved before
      double s = b[columns_[i]];
      for (std::size_t t = 0; t < i; ++t) s -= r_[t * ld + i] * y_[t];
      y_[i] = s / r_[i * ld + i];
    }
    solved_ = k;
    x.assign(y_.begin(), y_.end());
    for (std::size_t i = k; i-- > 0;) {  // Lᵀ x = y, row by row of R
      const double* ri = r_.data() + i * ld;
      double s = x[i];
      for (std::size_t t = i + 1; t < k; ++t) s -= ri[t] * x[t];
      x[i] = s / ri[i];
    }
  }

 private:
  double g(i64 i, i64 j) const { return g_[i * m_ + j]; }
  const double* g_;
  i64 m_;
  std::vector<i64> columns_;
  std::vector<double> r_;     // R = Lᵀ: row t at t·m, its entries t..k−1 used
  std::vector<double> sums_;  // the running sums of a new row's forward substitution
  std::vector<double> y_;     // L y = b_P, solved for its first solved_ entries
  std::size_t solved_ = 0;
};

}  // namespace

void nnls_gram(const double* g, const double* aty, i64 m, double tol, double* z) {
  std::fill(z, z + m, 0.0);
  std::vector<double> x, w(static_cast<std::size_t>(m));
  std::vector<char> passive(static_cast<std::size_t>(m), 0);
  PassiveCholesky chol(g, m);
  const std::vector<i64>& p = chol.columns();  // P, in the order its columns joined
  const i64 max_outer = 3 * m + 10;
  for (i64 outer = 0; outer < max_outer; ++outer) {
    // w = Aᵀ(y − A z) = Aᵀy − G z, the negative gradient; z is nonzero on P only, and G is
    // symmetric, so G z is a sum of G's (contiguous) rows. Four rows per pass over w, each
    // entry still subtracting them in the order of P: a quarter of the loads and stores of w.
    double* wp = w.data();
    std::copy(aty, aty + m, wp);
    std::size_t c = 0;
    for (; c + 4 <= p.size(); c += 4) {
      const double z0 = z[p[c]], z1 = z[p[c + 1]], z2 = z[p[c + 2]], z3 = z[p[c + 3]];
      const double *g0 = g + p[c] * m, *g1 = g + p[c + 1] * m, *g2 = g + p[c + 2] * m, *g3 = g + p[c + 3] * m;
      for (i64 j = 0; j < m; ++j) {
        double v = wp[j];
        v -= z0 * g0[j];
        v -= z1 * g1[j];
        v -= z2 * g2[j];
        v -= z3 * g3[j];
        wp[j] = v;
      }
    }
    for (; c < p.size(); ++c) {
      const double zq = z[p[c]];
      const double* row = g + p[c] * m;
      for (i64 j = 0; j < m; ++j) wp[j] -= zq * row[j];
    }
    i64 best = -1;
    double best_w = tol;
    for (i64 j = 0; j < m; ++j)
      if (!passive[static_cast<std::size_t>(j)] && w[static_cast<std::size_t>(j)] > best_w) {
        best_w = w[static_cast<std::size_t>(j)];
        best = j;
      }
    if (best < 0) return;             // KKT: every active multiplier's gradient is ≤ tol
    if (!chol.add(best)) return;      // the new column depends on the others: z is optimal to rounding
    passive[static_cast<std::size_t>(best)] = 1;
    for (i64 inner = 0; inner < 3 * m + 10; ++inner) {
      chol.solve(aty, x);
      bool feasible = true;
      for (double v : x) feasible = feasible && v > 0;
      if (feasible) {
        for (std::size_t i = 0; i < p.size(); ++i) z[p[i]] = x[i];
        break;
      }
      // Step from z towards x as far as z stays ≥ 0; the coordinates that hit 0 leave P.
      double step = 1.0;
      for (std::size_t i = 0; i < p.size(); ++i)
        if (x[i] <= 0) step = std::min(step, z[p[i]] / (z[p[i]] - x[i]));
      for (std::size_t i = 0; i < p.size(); ++i) {
        double& zi = z[p[i]];
        zi += step * (x[i] - zi);
        if (zi <= tol) {
          zi = 0;
          passive[static_cast<std::size_t>(p[i])] = 0;
        }
      }
      if (!chol.keep_only(passive)) return;
    }
  }
}

void CpuBackend::layer_centers(const LayerClasses& l, double* mean, double* centers) {
  const i64 n = l.rows, f_count = l.features;
  std::fill(mean, mean + f_count, 0.0);
  for (i64 i = 0; i < n; ++i)
    for (i64 f = 0; f < f_count; ++f) mean[f] += l.x[i * f_count + f] / static_cast<double>(n);
  std::fill(centers, centers + l.classes * f_count, 0.0);
  for (i64 c = 0; c < l.classes; ++c) {
    const double size = l.class_first[c + 1] - l.class_first[c];
    for (i64 at = l.class_first[c]; at < l.class_first[c + 1]; ++at) {
      const double* row = l.x + static_cast<i64>(l.class_rows[at]) * f_count;
      for (i64 f = 0; f < f_count; ++f) centers[c * f_count + f] += (row[f] - mean[f]) / size;
    }
  }
}

void CpuBackend::manifold_points(const LayerClasses& l, const double* mean, const double* basis, i64 k, double* work,
                                 double* norms) {
  const i64 f_count = l.features;
  RegionErrors errors;
#pragma omp parallel for schedule(dynamic, 1)
  for (i64 c = 0; c < l.classes; ++c) errors.guard([&] {
    const i64 first = l.class_first[c], m = l.class_first[c + 1] - first;
    double* s = work + f_count * first;
    std::vector<double> point(static_cast<std::size_t>(f_count)), own_mean(static_cast<std::size_t>(f_count), 0.0);
    for (i64 p = 0; p < m; ++p) {
      const double* row = l.x + static_cast<i64>(l.class_rows[first + p]) * f_count;
      for (i64 f = 0; f < f_count; ++f) point[f] = row[f] - mean[f];
      for (i64 j = 0; j < k; ++j) {  // point − b_j (b_j · point), one direction after the other
        double d = 0;
        for (i64 f = 0; f < f_count; ++f) d += basis[f * k + j] * point[f];
        for (i64 f = 0; f < f_count; ++f) point[f] -= d * basis[f * k + j];
      }
      for (i64 f = 0; f < f_count; ++f) {
        s[f * m + p] = point[f];
        own_mean[f] += point[f] / static_cast<double>(m);
      }
    }
    double norm = 0;
    for (double v : own_mean) norm += v * v;
    norm = std::sqrt(norm);
    double spread = 0;
    for (i64 f = 0; f < f_count; ++f)
      for (i64 p = 0; p < m; ++p) {
        s[f * m + p] = (s[f * m + p] - own_mean[f]) / norm;
        spread = std::max(spread, std::abs(s[f * m + p]));
      }
    norms[2 * c] = norm;
    norms[2 * c + 1] = spread;
  });
  errors.rethrow();
}

void CpuBackend::span_coordinates(const std::vector<SpanProblem>& manifolds) {
  std::vector<double> a, tau;
  for (const SpanProblem& p : manifolds) {
    const i64 f = p.features, m = p.points;
    if (f > m) {
      // Into LAPACK's column-major layout by 32 × 32 tiles (LAPACKE's row-major path transposes
      // value by value, there and back); LAPACK's threads work inside each QR.
      a.resize(static_cast<std::size_t>(f * m));
      constexpr i64 tile = 32;
      for (i64 f0 = 0; f0 < f; f0 += tile)
        for (i64 p0 = 0; p0 < m; p0 += tile)
          for (i64 i = f0; i < std::min(f0 + tile, f); ++i)
            for (i64 j = p0; j < std::min(p0 + tile, m); ++j) a[static_cast<std::size_t>(j * f + i)] = p.work[i * m + j];
      tau.resize(static_cast<std::size_t>(m));
      const int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, static_cast<int>(f), static_cast<int>(m), a.data(), static_cast<int>(f),
                                      tau.data());
      if (info != 0) throw Error("geometry: QR of a manifold of " + std::to_string(m) + " points in " + std::to_string(f) +
                                 " dimensions failed (LAPACK info " + std::to_string(info) + ")");
      // R, the upper triangle of the first m rows, back into the work array where span_coordinate reads it.
      for (i64 r = 0; r < m; ++r)
        for (i64 j = r; j < m; ++j) p.work[r * m + j] = a[static_cast<std::size_t>(j * f + r)];
    }
    for (i64 i = 0; i < m * p.dims(); ++i) p.s[i] = span_coordinate(p, i);
  }
}

void CpuBackend::solve_anchors(const std::vector<AnchorProblem>& manifolds, double tolerance) {
  // Every (manifold, t) pair is one task; first[i] is the index of manifold i's first.
  std::vector<i64> first(manifolds.size() + 1, 0);
  for (std::size_t i = 0; i < manifolds.size(); ++i) first[i + 1] = first[i] + manifolds[i].count;
  RegionErrors errors;  // nnls_gram allocates its factor, m² values, in every task
#pragma omp parallel
  {
    std::vector<double> aty;
#pragma omp for schedule(dynamic, 4)
    for (i64 task = 0; task < first.back(); ++task) errors.guard([&] {
      const std::size_t i = static_cast<std::size_t>(std::upper_bound(first.begin(), first.end(), task) - first.begin()) - 1;
      const AnchorProblem& p = manifolds[i];
      const i64 d1 = p.dims, d = d1 - 1, m = p.points, n_t = p.count, q = task - first[i];
      const double* t = p.t + q * d1;
      const double* s = p.s;
      // The point of largest projection on t's first D coordinates (the reference's maxproj).
      i64 best = 0;
      double best_proj = -INFINITY;
      for (i64 mu = 0; mu < m; ++mu) {
        const double v = p.proj[mu * n_t + q] - s[mu * d1 + d] * t[d];
        if (v > best_proj) {
          best_proj = v;
          best = mu;
        }
      }
      double* z = p.z + q * m;
      if (t[d] + best_proj + p.kappa < 0) {  // t itself is feasible: v = t, the anchor is that point
        std::fill(z, z + m, 0.0);
        p.interior[q] = static_cast<std::int32_t>(best + 1);
        return;
      }
      p.interior[q] = 0;
      // Aᵀy with y = t + κ ê (ê the center direction, the last coordinate).
      aty.resize(static_cast<std::size_t>(m));
      for (i64 mu = 0; mu < m; ++mu) aty[static_cast<std::size_t>(mu)] = p.proj[mu * n_t + q] + p.kappa * s[mu * d1 + d];
      nnls_gram(p.gram, aty.data(), m, tolerance, z);
    });
  }
  errors.rethrow();
}

void CpuBackend::anchor_terms(const AnchorProblem& p, const double* sz, const double* gz, double* anchors,
                              double* terms) {
  const i64 d1 = p.dims, n_t = p.count;
  std::vector<double> mean(static_cast<std::size_t>(d1), 0.0);
  for (i64 q = 0; q < n_t; ++q) {
    double* anchor = anchors + q * d1;
    anchor_row(p, q, sz, gz, anchor, terms + q * anchor_term_count);
    for (i64 k = 0; k < d1; ++k) mean[static_cast<std::size_t>(k)] += anchor[k] / static_cast<double>(n_t);
  }
  for (i64 q = 0; q < n_t; ++q)
    terms[q * anchor_term_count + radius_term] = radius_term_of(anchors + q * d1, mean.data(), d1);
}

}  // namespace gs::kernels::cpu
