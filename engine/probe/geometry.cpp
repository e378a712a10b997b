#include "engine/probe/geometry.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace gs::probe {

namespace {

// Solves G_PP x = b_P for the passive set P by Cholesky (G_PP is positive definite: Lawson–Hanson
// keeps the passive columns independent). Returns false when it is numerically singular.
bool solve_passive(const std::vector<double>& g, std::int64_t m, const std::vector<std::int64_t>& p,
                   const std::vector<double>& b, std::vector<double>& x) {
  const std::size_t k = p.size();
  std::vector<double> l(k * k, 0.0);
  for (std::size_t i = 0; i < k; ++i)
    for (std::size_t j = 0; j <= i; ++j) {
      double s = g[static_cast<std::size_t>(p[i] * m + p[j])];
      for (std::size_t q = 0; q < j; ++q) s -= l[i * k + q] * l[j * k + q];
      if (i == j) {
        if (!(s > 1e-14 * std::max(1.0, g[static_cast<std::size_t>(p[i] * m + p[i])]))) return false;
        l[i * k + i] = std::sqrt(s);
      } else {
        l[i * k + j] = s / l[j * k + j];
      }
    }
  std::vector<double> y(k);
  for (std::size_t i = 0; i < k; ++i) {
    double s = b[static_cast<std::size_t>(p[i])];
    for (std::size_t q = 0; q < i; ++q) s -= l[i * k + q] * y[q];
    y[i] = s / l[i * k + i];
  }
  x.assign(k, 0.0);
  for (std::size_t i = k; i-- > 0;) {
    double s = y[i];
    for (std::size_t q = i + 1; q < k; ++q) s -= l[q * k + i] * x[q];
    x[i] = s / l[i * k + i];
  }
  return true;
}

}  // namespace

std::vector<double> nnls_gram(const std::vector<double>& g, const std::vector<double>& aty, std::int64_t m, double tol) {
  std::vector<double> z(static_cast<std::size_t>(m), 0.0);
  std::vector<char> passive(static_cast<std::size_t>(m), 0);
  const std::int64_t max_outer = 3 * m + 10;
  for (std::int64_t outer = 0; outer < max_outer; ++outer) {
    // w = Aᵀ(y − A z) = Aᵀy − G z, the negative gradient; z is sparse (at most D + 1 nonzeros).
    std::vector<std::int64_t> support;
    for (std::int64_t q = 0; q < m; ++q)
      if (z[static_cast<std::size_t>(q)] != 0) support.push_back(q);
    std::int64_t best = -1;
    double best_w = tol;
    for (std::int64_t j = 0; j < m; ++j) {
      if (passive[static_cast<std::size_t>(j)]) continue;
      double w = aty[static_cast<std::size_t>(j)];
      for (auto q : support) w -= g[static_cast<std::size_t>(j * m + q)] * z[static_cast<std::size_t>(q)];
      if (w > best_w) {
        best_w = w;
        best = j;
      }
    }
    if (best < 0) break;  // KKT: every active multiplier's gradient is ≤ tol
    passive[static_cast<std::size_t>(best)] = 1;
    for (int inner = 0; inner < 3 * m + 10; ++inner) {
      std::vector<std::int64_t> p;
      for (std::int64_t j = 0; j < m; ++j)
        if (passive[static_cast<std::size_t>(j)]) p.push_back(j);
      std::vector<double> x;
      if (!solve_passive(g, m, p, aty, x)) {  // the new column depends on the others: drop it
        passive[static_cast<std::size_t>(best)] = 0;
        return z;
      }
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
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < m; ++j) {
      double v = 0;
      for (std::int64_t k = 0; k < d1; ++k) v += s[i * d1 + k] * s[j * d1 + k];
      gram[static_cast<std::size_t>(i * m + j)] = v;
    }
  ManifoldGeometry out;
  std::vector<double> s_all(static_cast<std::size_t>(d1 * n_t));
  std::vector<double> aty(static_cast<std::size_t>(m)), v(static_cast<std::size_t>(d1));
  for (std::int64_t q = 0; q < n_t; ++q) {
    const double* t = tv.data() + q * d1;
    double* st = s_all.data() + q * d1;
    // The point of largest projection on t's first D coordinates (the reference's maxproj).
    std::int64_t best = 0;
    double best_proj = -INFINITY;
    for (std::int64_t mu = 0; mu < m; ++mu) {
      double p = 0;
      for (std::int64_t k = 0; k < d; ++k) p += t[k] * s[mu * d1 + k];
      if (p > best_proj) {
        best_proj = p;
        best = mu;
      }
    }
    double gt = t[d];  // t · (s_best[0:D], 1)
    for (std::int64_t k = 0; k < d; ++k) gt += t[k] * s[best * d1 + k];
    if (gt + kappa < 0) {  // t itself is feasible: v = t, the anchor is the max-projection point
      for (std::int64_t k = 0; k < d; ++k) st[k] = s[best * d1 + k];
      st[d] = 1;
      ++out.interior;
      continue;
    }
    // Aᵀy with y = t + κ ê (ê the center direction, the last coordinate).
    for (std::int64_t mu = 0; mu < m; ++mu) {
      double p = kappa * s[mu * d1 + d];
      for (std::int64_t k = 0; k < d1; ++k) p += s[mu * d1 + k] * t[k];
      aty[static_cast<std::size_t>(mu)] = p;
    }
    const auto z = nnls_gram(gram, aty, m);
    double zsum = 0;
    for (double zi : z) zsum += zi;
    for (std::int64_t k = 0; k < d1; ++k) {
      double sz = 0;
      for (std::int64_t mu = 0; mu < m; ++mu) sz += s[mu * d1 + k] * z[static_cast<std::size_t>(mu)];
      v[static_cast<std::size_t>(k)] = t[k] - sz;
      st[k] = zsum > 0 ? sz / zsum : 0;
    }
    // KKT of the primal: s_μ·v ≤ −κ, z ≥ 0, z_μ (s_μ·v + κ) = 0.
    for (std::int64_t mu = 0; mu < m; ++mu) {
      double sv = 0;
      for (std::int64_t k = 0; k < d1; ++k) sv += s[mu * d1 + k] * v[static_cast<std::size_t>(k)];
      out.worst.max_violation = std::max(out.worst.max_violation, sv + kappa);
      out.worst.min_multiplier = std::min(out.worst.min_multiplier, z[static_cast<std::size_t>(mu)]);
      out.worst.max_complementarity = std::max(out.worst.max_complementarity, std::abs(z[static_cast<std::size_t>(mu)] * (sv + kappa)));
    }
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
