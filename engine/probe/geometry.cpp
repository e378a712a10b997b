#include "engine/probe/geometry.h"

#include <algorithm>
#include <cmath>

#include <cblas.h>
#include <lapacke.h>

#include <fmt/format.h>

#include "engine/error.h"
#include "engine/probe/center_structure.h"
#include "engine/rng.h"

namespace gs::probe {

namespace {

// The Cholesky factor of G_PP for Lawson–Hanson's passive set P, kept as P grows: adding a
// column appends one row (O(k²)) instead of refactoring (O(k³)), which is what the outer loop
// does one column at a time. A column leaving P (rare) refactors the rest in their order.
class PassiveCholesky {
 public:
  PassiveCholesky(const std::vector<double>& g, std::int64_t m) : g_(g), m_(m) {}
  const std::vector<std::int64_t>& columns() const { return columns_; }

  // False when column q is numerically dependent on P (G_PP would not be positive definite).
  bool add(std::int64_t q) {
    const std::size_t k = columns_.size();
    if (l_.size() < (k + 1) * static_cast<std::size_t>(m_)) l_.resize((k + 1) * static_cast<std::size_t>(m_));
    double* row = l_.data() + k * static_cast<std::size_t>(m_);
    double diag = g(q, q);
    for (std::size_t i = 0; i < k; ++i) {
      const double* li = l_.data() + i * static_cast<std::size_t>(m_);
      double s = g(q, columns_[i]);
      for (std::size_t t = 0; t < i; ++t) s -= row[t] * li[t];
      row[i] = s / li[i];
      diag -= row[i] * row[i];
    }
    if (!(diag > 1e-14 * std::max(1.0, g(q, q)))) return false;
    row[k] = std::sqrt(diag);
    columns_.push_back(q);
    return true;
  }

  // Keeps the columns `keep` says to, in their order; false if the rest stopped being independent.
  bool keep_only(const std::vector<char>& keep) {
    std::vector<std::int64_t> kept;
    for (auto q : columns_)
      if (keep[static_cast<std::size_t>(q)]) kept.push_back(q);
    columns_.clear();
    for (auto q : kept)
      if (!add(q)) return false;
    return true;
  }

  // x = G_PP⁻¹ b_P, in the order of columns().
  void solve(const std::vector<double>& b, std::vector<double>& x) const {
    const std::size_t k = columns_.size(), ld = static_cast<std::size_t>(m_);
    x.resize(k);
    for (std::size_t i = 0; i < k; ++i) {  // L y = b
      double s = b[static_cast<std::size_t>(columns_[i])];
      for (std::size_t t = 0; t < i; ++t) s -= l_[i * ld + t] * x[t];
      x[i] = s / l_[i * ld + i];
    }
    for (std::size_t i = k; i-- > 0;) {  // Lᵀ x = y
      double s = x[i];
      for (std::size_t t = i + 1; t < k; ++t) s -= l_[t * ld + i] * x[t];
      x[i] = s / l_[i * ld + i];
    }
  }

 private:
  double g(std::int64_t i, std::int64_t j) const { return g_[static_cast<std::size_t>(i * m_ + j)]; }
  const std::vector<double>& g_;
  std::int64_t m_;
  std::vector<std::int64_t> columns_;
  std::vector<double> l_;  // row i of L at i·m, its first i + 1 entries used
};

}  // namespace

std::vector<double> nnls_gram(const std::vector<double>& g, const std::vector<double>& aty, std::int64_t m, double tol) {
  std::vector<double> z(static_cast<std::size_t>(m), 0.0), x, w(static_cast<std::size_t>(m));
  std::vector<char> passive(static_cast<std::size_t>(m), 0);
  PassiveCholesky chol(g, m);
  const std::int64_t max_outer = 3 * m + 10;
  for (std::int64_t outer = 0; outer < max_outer; ++outer) {
    // w = Aᵀ(y − A z) = Aᵀy − G z, the negative gradient; z is nonzero on P only, and G is
    // symmetric, so G z is a sum of G's (contiguous) rows.
    std::copy(aty.begin(), aty.end(), w.begin());
    for (auto q : chol.columns()) {
      const double zq = z[static_cast<std::size_t>(q)];
      const double* row = g.data() + q * m;
      for (std::int64_t j = 0; j < m; ++j) w[static_cast<std::size_t>(j)] -= zq * row[j];
    }
    std::int64_t best = -1;
    double best_w = tol;
    for (std::int64_t j = 0; j < m; ++j)
      if (!passive[static_cast<std::size_t>(j)] && w[static_cast<std::size_t>(j)] > best_w) {
        best_w = w[static_cast<std::size_t>(j)];
        best = j;
      }
    if (best < 0) break;                // KKT: every active multiplier's gradient is ≤ tol
    if (!chol.add(best)) return z;      // the new column depends on the others: z is optimal to rounding
    passive[static_cast<std::size_t>(best)] = 1;
    for (int inner = 0; inner < 3 * m + 10; ++inner) {
      chol.solve(aty, x);
      const auto& p = chol.columns();
      bool feasible = true;
      for (double v : x) feasible = feasible && v > 0;
      if (feasible) {
        for (std::size_t i = 0; i < p.size(); ++i) z[static_cast<std::size_t>(p[i])] = x[i];
        break;
      }
      // Step from z towards x as far as z stays ≥ 0; the coordinates that hit 0 leave P.
      double step = 1.0;
      for (std::size_t i = 0; i < p.size(); ++i)
        if (x[i] <= 0) {
          const double zi = z[static_cast<std::size_t>(p[i])];
          step = std::min(step, zi / (zi - x[i]));
        }
      for (std::size_t i = 0; i < p.size(); ++i) {
        double& zi = z[static_cast<std::size_t>(p[i])];
        zi += step * (x[i] - zi);
        if (zi <= tol) {
          zi = 0;
          passive[static_cast<std::size_t>(p[i])] = 0;
        }
      }
      if (!chol.keep_only(passive)) return z;
    }
  }
  return z;
}

ManifoldGeometry analyze_manifold(const Manifold& mf, double kappa, const std::vector<double>& tv, std::int64_t n_t) {
  const std::int64_t d1 = mf.dims, m = mf.count, d = d1 - 1;
  GS_CHECK(d1 >= 1 && m >= 1 && static_cast<std::int64_t>(mf.points.size()) == d1 * m,
           "analyze_manifold: {} values do not make {} points of {} dimensions", mf.points.size(), m, d1);
  GS_CHECK(static_cast<std::int64_t>(tv.size()) == d1 * n_t && n_t >= 1, "analyze_manifold: t vectors must be {} × {}", d1, n_t);
  const double* s = mf.points.data();
  std::vector<double> gram(static_cast<std::size_t>(m * m));
  cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<int>(m), static_cast<int>(d1), 1.0, s,
              static_cast<int>(d1), 0.0, gram.data(), static_cast<int>(m));
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < i; ++j) gram[static_cast<std::size_t>(i * m + j)] = gram[static_cast<std::size_t>(j * m + i)];
  ManifoldGeometry out;
  std::vector<double> s_all(static_cast<std::size_t>(d1 * n_t));
  std::vector<char> interior(static_cast<std::size_t>(n_t), 0);
  std::vector<QpCheck> checks(static_cast<std::size_t>(n_t));
  const auto at = [](std::int64_t i) { return static_cast<std::size_t>(i); };
  // Every product of the points with the t vectors in one GEMM: proj[μ, q] = s_μ · t_q.
  std::vector<double> proj(at(m * n_t)), zs(at(n_t * m), 0.0);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n_t), static_cast<int>(d1), 1.0,
              s, static_cast<int>(d1), tv.data(), static_cast<int>(d1), 0.0, proj.data(), static_cast<int>(n_t));
  // The t vectors are independent: in parallel, each writing only its own slots.
#pragma omp parallel
  {
    std::vector<double> aty(at(m));
#pragma omp for schedule(dynamic, 4)
    for (std::int64_t q = 0; q < n_t; ++q) {
      const double* t = tv.data() + q * d1;
      // The point of largest projection on t's first D coordinates (the reference's maxproj).
      std::int64_t best = 0;
      double best_proj = -INFINITY;
      for (std::int64_t mu = 0; mu < m; ++mu) {
        const double p = proj[at(mu * n_t + q)] - s[mu * d1 + d] * t[d];
        if (p > best_proj) {
          best_proj = p;
          best = mu;
        }
      }
      if (t[d] + best_proj + kappa < 0) {  // t itself is feasible: v = t, the anchor is the max-projection point
        double* anchor = s_all.data() + q * d1;
        for (std::int64_t k = 0; k < d; ++k) anchor[k] = s[best * d1 + k];
        anchor[d] = 1;
        interior[at(q)] = 1;
        continue;
      }
      // Aᵀy with y = t + κ ê (ê the center direction, the last coordinate).
      for (std::int64_t mu = 0; mu < m; ++mu) aty[at(mu)] = proj[at(mu * n_t + q)] + kappa * s[mu * d1 + d];
      const auto z = nnls_gram(gram, aty, m);
      std::copy(z.begin(), z.end(), zs.begin() + q * m);
    }
  }
  // Then, again for every t at once: Sᵀz (the anchor, once normalized) and G z, from which
  // s_μ·v = s_μ·t − (G z)_μ for v = t − Sᵀz.
  std::vector<double> sz(at(n_t * d1)), gz(at(n_t * m));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n_t), static_cast<int>(d1), static_cast<int>(m), 1.0,
              zs.data(), static_cast<int>(m), s, static_cast<int>(d1), 0.0, sz.data(), static_cast<int>(d1));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n_t), static_cast<int>(m), static_cast<int>(m), 1.0,
              zs.data(), static_cast<int>(m), gram.data(), static_cast<int>(m), 0.0, gz.data(), static_cast<int>(m));
  for (std::int64_t q = 0; q < n_t; ++q) {
    if (interior[at(q)]) continue;
    const double* z = zs.data() + q * m;
    double zsum = 0;
    for (std::int64_t mu = 0; mu < m; ++mu) zsum += z[mu];
    double* anchor = s_all.data() + q * d1;
    for (std::int64_t k = 0; k < d1; ++k) anchor[k] = zsum > 0 ? sz[at(q * d1 + k)] / zsum : 0;
    // KKT of the primal: s_μ·v ≤ −κ, z ≥ 0, z_μ (s_μ·v + κ) = 0.
    QpCheck& chk = checks[at(q)];
    for (std::int64_t mu = 0; mu < m; ++mu) {
      const double sv = proj[at(mu * n_t + q)] - gz[at(q * m + mu)];
      chk.max_violation = std::max(chk.max_violation, sv + kappa);
      chk.min_multiplier = std::min(chk.min_multiplier, z[mu]);
      chk.max_complementarity = std::max(chk.max_complementarity, std::abs(z[mu] * (sv + kappa)));
    }
  }
  for (std::int64_t q = 0; q < n_t; ++q) {
    out.interior += interior[static_cast<std::size_t>(q)];
    const QpCheck& chk = checks[static_cast<std::size_t>(q)];
    out.worst.max_violation = std::max(out.worst.max_violation, chk.max_violation);
    out.worst.min_multiplier = std::min(out.worst.min_multiplier, chk.min_multiplier);
    out.worst.max_complementarity = std::max(out.worst.max_complementarity, chk.max_complementarity);
  }
  // α_M⁻¹ = mean of the terms (t·s̃ + κ)₊² / ‖s̃‖².
  std::vector<double> terms(static_cast<std::size_t>(n_t));
  double mean_dot = 0;
  std::vector<double> s_mean(static_cast<std::size_t>(d1), 0.0);
  for (std::int64_t q = 0; q < n_t; ++q) {
    const double* t = tv.data() + q * d1;
    const double* st = s_all.data() + q * d1;
    double ts = kappa, ss = 0;
    for (std::int64_t k = 0; k < d1; ++k) {
      ts += t[k] * st[k];
      ss += st[k] * st[k];
      s_mean[static_cast<std::size_t>(k)] += st[k] / static_cast<double>(n_t);
    }
    const double pos = std::max(ts, 0.0);
    terms[static_cast<std::size_t>(q)] = ss > 0 ? pos * pos / ss : 0;
    if (d > 0) {
      double tn = 0, sn = 0, dot = 0;
      for (std::int64_t k = 0; k < d; ++k) {
        tn += t[k] * t[k];
        sn += st[k] * st[k];
        dot += t[k] * st[k];
      }
      mean_dot += dot / (std::sqrt(tn) * std::sqrt(sn + 1e-12)) / static_cast<double>(n_t);
    }
  }
  double mean_term = 0, var_term = 0;
  for (double x : terms) mean_term += x / static_cast<double>(n_t);
  for (double x : terms) var_term += (x - mean_term) * (x - mean_term) / static_cast<double>(std::max<std::int64_t>(n_t - 1, 1));
  out.capacity = 1.0 / mean_term;
  // s.e. of 1/mean by the delta method: se(mean) / mean².
  out.capacity_se = std::sqrt(var_term / static_cast<double>(n_t)) / (mean_term * mean_term);
  double r2 = 0;
  for (std::int64_t q = 0; q < n_t; ++q) {
    const double* st = s_all.data() + q * d1;
    double sq = 0;
    for (std::int64_t k = 0; k < d; ++k) {
      const double dk = (st[k] - s_mean[static_cast<std::size_t>(k)]) / st[d];
      sq += dk * dk;
    }
    r2 += sq / static_cast<double>(n_t);
  }
  out.radius = std::sqrt(r2);
  out.dimension = static_cast<double>(d) * mean_dot * mean_dot;
  return out;
}

}  // namespace gs::probe

namespace gs::probe {

namespace {
double mean_abs_cosine_of_centers(const Matrix& c) {
  Matrix xb = c;
  for (std::int64_t j = 0; j < c.cols; ++j) {
    double mean = 0;
    for (std::int64_t i = 0; i < c.rows; ++i) mean += c(i, j) / static_cast<double>(c.rows);
    for (std::int64_t i = 0; i < c.rows; ++i) xb(i, j) -= mean;
  }
  double total = 0;
  for (std::int64_t a = 0; a < c.rows; ++a)
    for (std::int64_t b = 0; b < c.rows; ++b) {
      if (a == b) continue;
      double d = 0, na = 0, nb = 0;
      for (std::int64_t j = 0; j < c.cols; ++j) {
        d += xb(a, j) * xb(b, j);
        na += xb(a, j) * xb(a, j);
        nb += xb(b, j) * xb(b, j);
      }
      total += na > 0 && nb > 0 ? std::abs(d) / std::sqrt(na * nb) : 0;
    }
  return total / static_cast<double>(c.rows * (c.rows - 1));
}
}  // namespace

LayerGeometry analyze_layer(const std::vector<double>& x, std::int64_t features, const std::vector<std::int32_t>& labels,
                            std::int64_t classes, double kappa, std::int64_t n_t, std::uint64_t seed,
                            bool remove_center_structure) {
  const std::int64_t n = static_cast<std::int64_t>(labels.size());
  GS_CHECK(features >= 1 && static_cast<std::int64_t>(x.size()) == n * features,
           "geometry: {} activation values for {} labels of {} features; X and y must have the same number of rows", x.size(),
           n, features);
  GS_CHECK(classes >= 2, "geometry: needs at least 2 classes, got {}", classes);
  for (double v : x) GS_CHECK(std::isfinite(v), "geometry: the activations hold NaN or Inf");
  std::vector<std::vector<std::int64_t>> rows(static_cast<std::size_t>(classes));
  for (std::int64_t i = 0; i < n; ++i) {
    GS_CHECK(labels[i] >= 0 && labels[i] < classes, "geometry: label {} at row {} is outside 0..{}", labels[i], i, classes - 1);
    rows[static_cast<std::size_t>(labels[i])].push_back(i);
  }
  for (std::int64_t c = 0; c < classes; ++c)
    GS_CHECK(rows[static_cast<std::size_t>(c)].size() >= 2, "geometry: class {} has {} points; every class needs at least 2", c,
             rows[static_cast<std::size_t>(c)].size());

  // 1. Global mean, then class centers (of the mean-subtracted points).
  std::vector<double> mean(static_cast<std::size_t>(features), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t f = 0; f < features; ++f) mean[f] += x[i * features + f] / static_cast<double>(n);
  std::vector<double> centers(static_cast<std::size_t>(classes * features), 0.0);
  for (std::int64_t c = 0; c < classes; ++c)
    for (auto i : rows[c])
      for (std::int64_t f = 0; f < features; ++f)
        centers[c * features + f] += (x[i * features + f] - mean[f]) / static_cast<double>(rows[c].size());

  LayerGeometry out;
  // 2. The centers' common low-rank structure: found, then projected out of every point (needs
  // 3 centers in at least P − 1 dimensions; otherwise nothing is removed and K = 0).
  Matrix basis;  // N × K
  if (remove_center_structure && classes >= 3 && features >= classes - 1) {
    Matrix c{classes, features, centers};
    auto structure = find_center_structure(c, seed);
    out.center_correlation = structure.correlation_before;
    out.k = structure.k;
    out.k_near_ties = structure.near_ties;
    basis = structure.basis;
  } else {
    Matrix c{classes, features, centers};
    out.center_correlation = mean_abs_cosine_of_centers(c);
  }
  auto project_out = [&](std::vector<double>& point) {  // point − B Bᵀ point
    for (std::int64_t j = 0; j < basis.cols; ++j) {
      double d = 0;
      for (std::int64_t f = 0; f < features; ++f) d += basis(f, j) * point[static_cast<std::size_t>(f)];
      for (std::int64_t f = 0; f < features; ++f) point[static_cast<std::size_t>(f)] -= d * basis(f, j);
    }
  };

  // 3 and 4, manifold by manifold.
  double inverse_sum = 0, inverse_var = 0;
  for (std::int64_t c = 0; c < classes; ++c) {
    const auto& r = rows[static_cast<std::size_t>(c)];
    const std::int64_t m = static_cast<std::int64_t>(r.size());
    // Each point minus the global mean, with the center structure projected out; then minus the
    // manifold's own mean and over that mean's norm. Column-major [features, m].
    std::vector<double> s(static_cast<std::size_t>(features * m)), point(static_cast<std::size_t>(features));
    std::vector<double> own_mean(static_cast<std::size_t>(features), 0.0);
    for (std::int64_t p = 0; p < m; ++p) {
      for (std::int64_t f = 0; f < features; ++f) point[static_cast<std::size_t>(f)] = x[r[p] * features + f] - mean[f];
      project_out(point);
      for (std::int64_t f = 0; f < features; ++f) {
        s[p * features + f] = point[static_cast<std::size_t>(f)];
        own_mean[static_cast<std::size_t>(f)] += point[static_cast<std::size_t>(f)] / static_cast<double>(m);
      }
    }
    double center_norm = 0;
    for (double v : own_mean) center_norm += v * v;
    center_norm = std::sqrt(center_norm);
    GS_CHECK(center_norm > 0, "geometry: class {}'s center lies in the removed center structure or on the global mean; its "
             "manifold has no direction left", c);
    double spread = 0;
    for (std::int64_t p = 0; p < m; ++p)
      for (std::int64_t f = 0; f < features; ++f) {
        s[p * features + f] = (s[p * features + f] - own_mean[static_cast<std::size_t>(f)]) / center_norm;
        spread = std::max(spread, std::abs(s[p * features + f]));
      }
    // Degenerate manifolds have defined values (all points equal: a point manifold, α = 2 at
    // κ = 0; collinear points: a segment); they are worth a word, since real layers rarely do this.
    if (spread < 1e-12)
      out.warnings.push_back(fmt::format("class {}: all {} points coincide; analysed as a single point", c, m));
    std::int64_t d = features;
    std::vector<double> reduced;
    if (features > m) {  // reduce to the span: S = Q R, keep R (the coordinates in Q's basis)
      std::vector<double> a = s, tau(static_cast<std::size_t>(m));
      GS_CHECK(LAPACKE_dgeqrf(LAPACK_COL_MAJOR, static_cast<int>(features), static_cast<int>(m), a.data(),
                              static_cast<int>(features), tau.data()) == 0,
               "geometry: QR of class {} failed", c);
      d = m;
      reduced.assign(static_cast<std::size_t>(m * m), 0.0);
      for (std::int64_t p = 0; p < m; ++p)
        for (std::int64_t k = 0; k <= p; ++k) reduced[p * m + k] = a[p * features + k];  // R's column p
      // R with a non-negative diagonal is unique: the coordinates (and so the analysis with the
      // same t vectors) no longer depend on the basis the points came in.
      for (std::int64_t k = 0; k < m; ++k)
        if (reduced[k * m + k] < 0)
          for (std::int64_t p = k; p < m; ++p) reduced[p * m + k] = -reduced[p * m + k];
    } else {
      reduced = s;
    }
    Manifold mf{d + 1, m, {}};
    mf.points.reserve(static_cast<std::size_t>((d + 1) * m));
    for (std::int64_t p = 0; p < m; ++p) {
      mf.points.insert(mf.points.end(), reduced.begin() + p * d, reduced.begin() + (p + 1) * d);
      mf.points.push_back(1.0);
    }
    Generator gen(seed, static_cast<std::uint64_t>(1000 + c));  // one stream per class: stable under class subsets
    Tensor t = Tensor::empty(Shape{(d + 1) * n_t}, DType::f64);
    gen.normal(t, 0, 1);
    auto g = analyze_manifold(mf, kappa, t.to_vector(), n_t);
    inverse_sum += 1 / g.capacity;
    // s.e. of 1/α_M from that of α_M (delta method), summed as independent.
    const double inv_se = g.capacity_se / (g.capacity * g.capacity);
    inverse_var += inv_se * inv_se;
    out.radius += g.radius / static_cast<double>(classes);
    out.dimension += g.dimension / static_cast<double>(classes);
    out.per_class.push_back(g);
  }
  const double mean_inverse = inverse_sum / static_cast<double>(classes);
  out.capacity = 1 / mean_inverse;  // 1 / mean(1/α_M)
  out.capacity_se = std::sqrt(inverse_var) / static_cast<double>(classes) / (mean_inverse * mean_inverse);
  return out;
}

}  // namespace gs::probe
