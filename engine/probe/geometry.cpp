#include "engine/probe/geometry.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "engine/error.h"
#include "engine/probe/center_structure.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "kernels/backend.h"
#include "kernels/cpu/cpu_backend.h"

namespace gs::probe {

std::vector<double> nnls_gram(const std::vector<double>& g, const std::vector<double>& aty, std::int64_t m, double tol) {
  GS_CHECK(m >= 0 && static_cast<std::int64_t>(g.size()) == m * m && static_cast<std::int64_t>(aty.size()) == m,
           "nnls_gram: a {}-point problem needs a {} × {} Gram and {} right-hand values, got {} and {}", m, m, m, m,
           g.size(), aty.size());
  std::vector<double> z(static_cast<std::size_t>(m));
  kernels::cpu::nnls_gram(g.data(), aty.data(), m, tol, z.data());
  return z;
}

namespace {

double* doubles(Tensor& x) { return static_cast<double*>(x.raw()); }

// One manifold's arrays on the device (kernels/geometry.h names them).
struct ManifoldArrays {
  Tensor s, t, gram, proj, z, interior;
  kernels::AnchorProblem problem(double kappa) {
    return {s.size(1), s.size(0), t.size(0), kappa, doubles(s), doubles(t), doubles(gram), doubles(proj), doubles(z),
            static_cast<std::int32_t*>(interior.raw())};
  }
};

// From the n_t rows of per-t terms: capacity, its standard error, radius, dimension, KKT residuals.
ManifoldGeometry summarize(const std::vector<double>& term, const std::vector<std::int32_t>& inside, std::int64_t n_t,
                           std::int64_t d) {
  ManifoldGeometry out;
  double mean_term = 0, var_term = 0, mean_cosine = 0, r2 = 0;
  const auto column = [&](std::int64_t q, int c) {
    return term[static_cast<std::size_t>(q * kernels::anchor_term_count + c)];
  };
  for (std::int64_t q = 0; q < n_t; ++q) {
    out.interior += inside[static_cast<std::size_t>(q)] > 0;
    out.worst.max_violation = std::max(out.worst.max_violation, column(q, kernels::max_violation_term));
    out.worst.min_multiplier = std::min(out.worst.min_multiplier, column(q, kernels::min_multiplier_term));
    out.worst.max_complementarity = std::max(out.worst.max_complementarity, column(q, kernels::complementarity_term));
    mean_cosine += column(q, kernels::cosine_term) / static_cast<double>(n_t);
    mean_term += column(q, kernels::capacity_term) / static_cast<double>(n_t);
  }
  // α_M⁻¹ = mean of the terms (t·s̃ + κ)₊² / ‖s̃‖².
  for (std::int64_t q = 0; q < n_t; ++q) {
    const double x = column(q, kernels::capacity_term);
    var_term += (x - mean_term) * (x - mean_term) / static_cast<double>(std::max<std::int64_t>(n_t - 1, 1));
    r2 += column(q, kernels::radius_term) / static_cast<double>(n_t);
  }
  out.capacity = 1.0 / mean_term;
  // s.e. of 1/mean by the delta method: se(mean) / mean².
  out.capacity_se = std::sqrt(var_term / static_cast<double>(n_t)) / (mean_term * mean_term);
  out.radius = std::sqrt(r2);
  out.dimension = static_cast<double>(d) * mean_cosine * mean_cosine;
  return out;
}

}  // namespace

namespace {

// The analysis of manifolds whose points (`points[i]`, [m, D + 1], the last coordinate 1) are on
// the device already; everything stays there until the per-t terms (n_t × 6 values per
// manifold) come back for the averages.
std::vector<ManifoldGeometry> analyze_points(std::vector<Tensor> points, double kappa,
                                             const std::vector<std::vector<double>>& t_vectors, std::int64_t n_t,
                                             Device device) {
  GS_CHECK(kappa >= 0 && kappa <= max_kappa, "geometry: the margin kappa must be in [0, {}], got {}", max_kappa, kappa);
  auto& be = kernels::backend(device);
  const auto f64 = DType::f64;
  std::vector<ManifoldArrays> arrays;
  std::vector<kernels::AnchorProblem> problems;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const std::int64_t m = points[i].size(0), d1 = points[i].size(1);
    ManifoldArrays a{std::move(points[i]), Tensor::from(t_vectors[i], Shape{n_t, d1}, f64, device),
                     Tensor::empty(Shape{m, m}, f64, device), Tensor::empty(Shape{m, n_t}, f64, device),
                     Tensor::empty(Shape{n_t, m}, f64, device), Tensor::empty(Shape{n_t}, DType::i32, device)};
    // G = S Sᵀ, and every product of the points with the t vectors: proj[μ, q] = s_μ · t_q.
    be.gemm(f64, {false, true, m, m, d1, d1, d1, m}, 1.0, a.s.raw(), a.s.raw(), 0.0, a.gram.raw());
    be.gemm(f64, {false, true, m, n_t, d1, d1, d1, n_t}, 1.0, a.s.raw(), a.t.raw(), 0.0, a.proj.raw());
    problems.push_back(a.problem(kappa));
    arrays.push_back(std::move(a));
  }
  be.solve_anchors(problems, 1e-12);  // every manifold's t vectors at once
  std::vector<ManifoldGeometry> out;
  for (std::size_t i = 0; i < arrays.size(); ++i) {
    ManifoldArrays& a = arrays[i];
    const std::int64_t m = a.s.size(0), d1 = a.s.size(1);
    // Sᵀz (the anchor, once normalized) and G z, from which s_μ·v = s_μ·t − (G z)_μ for v = t − Sᵀz.
    Tensor sz = Tensor::empty(Shape{n_t, d1}, f64, device), gz = Tensor::empty(Shape{n_t, m}, f64, device);
    be.gemm(f64, {false, false, n_t, d1, m, m, d1, d1}, 1.0, a.z.raw(), a.s.raw(), 0.0, sz.raw());
    be.gemm(f64, {false, false, n_t, m, m, m, m, m}, 1.0, a.z.raw(), a.gram.raw(), 0.0, gz.raw());
    Tensor anchors = Tensor::empty(Shape{n_t, d1}, f64, device);
    Tensor terms = Tensor::empty(Shape{n_t, kernels::anchor_term_count}, f64, device);
    be.anchor_terms(problems[i], doubles(sz), doubles(gz), doubles(anchors), doubles(terms));
    out.push_back(summarize(terms.to_vector(), a.interior.to_int_vector(), n_t, d1 - 1));
  }
  return out;
}

}  // namespace

std::vector<ManifoldGeometry> analyze_manifolds(const std::vector<Manifold>& manifolds, double kappa,
                                                const std::vector<std::vector<double>>& t_vectors, std::int64_t n_t,
                                                Device device) {
  GS_CHECK(t_vectors.size() == manifolds.size(), "analyze_manifolds: {} sets of t vectors for {} manifolds",
           t_vectors.size(), manifolds.size());
  GS_CHECK(n_t >= 1, "analyze_manifolds: needs at least one t vector, got n_t = {}", n_t);
  std::vector<Tensor> points;
  for (std::size_t i = 0; i < manifolds.size(); ++i) {
    const Manifold& mf = manifolds[i];
    const std::int64_t d1 = mf.dims, m = mf.count;
    GS_CHECK(d1 >= 1 && m >= 1 && static_cast<std::int64_t>(mf.points.size()) == d1 * m,
             "analyze_manifold: {} values do not make {} points of {} dimensions", mf.points.size(), m, d1);
    GS_CHECK(static_cast<std::int64_t>(t_vectors[i].size()) == d1 * n_t, "analyze_manifold: t vectors must be {} × {}", d1,
             n_t);
    points.push_back(Tensor::from(mf.points, Shape{m, d1}, DType::f64, device));
  }
  return analyze_points(std::move(points), kappa, t_vectors, n_t, device);
}

ManifoldGeometry analyze_manifold(const Manifold& m, double kappa, const std::vector<double>& t_vectors, std::int64_t n_t,
                                  Device device) {
  return analyze_manifolds({m}, kappa, {t_vectors}, n_t, device).front();
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
                            CenterRemoval removal, Device device) {
  const std::int64_t n = static_cast<std::int64_t>(labels.size());
  GS_CHECK(features >= 1 && static_cast<std::int64_t>(x.size()) == n * features,
           "geometry: {} activation values for {} labels of {} features; X and y must have the same number of rows", x.size(),
           n, features);
  return analyze_layer(Tensor::from(x, Shape{n, features}, DType::f64, device), labels, classes, kappa, n_t, seed,
                       removal);
}

LayerGeometry analyze_layer(const Tensor& activations, const std::vector<std::int32_t>& labels, std::int64_t classes,
                            double kappa, std::int64_t n_t, std::uint64_t seed, CenterRemoval removal) {
  const std::int64_t n = static_cast<std::int64_t>(labels.size());
  GS_CHECK(activations.rank() == 2 && activations.size(0) == n && activations.size(1) >= 1,
           "geometry: the activations are {} for {} labels; they must be [rows, features] with one row per label",
           activations.describe(), n);
  GS_CHECK(classes >= 2, "geometry: needs at least 2 classes, got {}", classes);
  auto lap = [last = std::chrono::steady_clock::now()]() mutable {  // seconds since the previous lap
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - last).count();
    last = now;
    return s;
  };
  const std::int64_t features = activations.size(1);
  const Device device = activations.device();
  // The rows of each class, class after class, as the kernels take them (kernels/geometry.h).
  std::vector<std::int32_t> class_first(static_cast<std::size_t>(classes + 1), 0), class_rows(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    GS_CHECK(labels[i] >= 0 && labels[i] < classes, "geometry: label {} at row {} is outside 0..{}", labels[i], i, classes - 1);
    ++class_first[static_cast<std::size_t>(labels[i]) + 1];
  }
  for (std::int64_t c = 0; c < classes; ++c) {
    GS_CHECK(class_first[c + 1] >= 2, "geometry: class {} has {} points; every class needs at least 2", c, class_first[c + 1]);
    class_first[c + 1] += class_first[c];
  }
  {
    std::vector<std::int32_t> next(class_first.begin(), class_first.end() - 1);
    for (std::int64_t i = 0; i < n; ++i) class_rows[static_cast<std::size_t>(next[labels[i]]++)] = static_cast<std::int32_t>(i);
  }
  const Tensor x = activations.dtype() == DType::f64 ? activations : activations.to(DType::f64);
  const Tensor rows_d = Tensor::from(class_rows, Shape{n}, device), first_d = Tensor::from(class_first, Shape{classes + 1}, device);
  const kernels::LayerClasses layer{n, features, classes, static_cast<const double*>(x.raw()),
                                    static_cast<const std::int32_t*>(rows_d.raw()),
                                    static_cast<const std::int32_t*>(first_d.raw())};
  auto& be = kernels::backend(device);

  // 1. Global mean, then class centers (of the mean-subtracted points). Only the centers come back.
  Tensor mean = Tensor::empty(Shape{features}, DType::f64, device);
  Tensor centers_d = Tensor::empty(Shape{classes, features}, DType::f64, device);
  be.layer_centers(layer, doubles(mean), doubles(centers_d));
  const std::vector<double> centers = centers_d.to_vector();
  // A NaN or Inf anywhere in X makes its feature's mean, and so that feature of every center, one.
  for (double v : centers)
    GS_CHECK(std::isfinite(v), "geometry: the activations hold NaN or Inf (or values so large that their sum overflows)");

  LayerGeometry out;
  // Class centers that coincide with the global mean, to rounding (every row equal, as in a layer
  // whose units have all died): no direction separates the classes, and the layer's geometry is
  // undefined. It is reported as NaN, and the run that probes it goes on.
  {
    const std::vector<double> mean_host = mean.to_vector();
    double largest = 0, spread = 0, scale = 0;  // sums of squares after scaling by the largest entry
    for (double v : centers) largest = std::max(largest, std::fabs(v));
    for (double v : mean_host) largest = std::max(largest, std::fabs(v));
    for (double v : centers) spread += (v / largest) * (v / largest);
    for (double v : mean_host) scale += (v / largest) * (v / largest);
    if (!(largest > 0) || spread <= 1e-20 * static_cast<double>(classes) * scale) {
      out.warnings.push_back("every class center lies on the global mean (the rows are all alike, as in a layer whose "
                             "units have all died): the layer's capacity, radius, dimension and center correlation are NaN");
      out.capacity = out.capacity_se = out.radius = out.dimension = out.center_correlation = std::nan("");
      return out;
    }
  }
  out.seconds.centers = lap();
  // 2. The centers' common low-rank structure, found on the host from the P × N centers, then
  // projected out of every point (needs 3 centers in at least P − 1 dimensions; otherwise
  // nothing is removed and K = 0).
  Matrix basis;  // N × K
  GS_CHECK(removal.k >= 0, "geometry: the center structure's K must be 0 (the K of least residual correlation) or at "
                           "least 1, got {}", removal.k);
  if (removal.remove && classes >= 3 && features >= classes - 1) {
    Matrix c{classes, features, centers};
    auto structure = find_center_structure(c, seed, removal.k);
    out.center_correlation = structure.correlation_before;
    out.k = structure.k;
    out.k_near_ties = structure.near_ties;
    basis = structure.basis;
    if (removal.k > 0 && structure.k < removal.k)
      out.warnings.push_back(fmt::format("the center structure's K is {}, not the {} asked: {} class centers{} allow "
                                         "at most {} direction{}", structure.k, removal.k, classes,
                                         structure.k < classes - 2 ? " in this few dimensions" : "", structure.k,
                                         structure.k == 1 ? "" : "s"));
  } else {
    Matrix c{classes, features, centers};
    out.center_correlation = mean_abs_cosine_of_centers(c);
    if (removal.remove && removal.k > 0)
      out.warnings.push_back(fmt::format("the center structure's K is 0, not the {} asked: {} classes in {} features have "
                                         "none to remove (it needs 3 classes or more, in at least classes − 1 features)",
                                         removal.k, classes, features));
  }

  out.seconds.structure = lap();
  // 3. Every class's points with the structure projected out, minus their own mean and over
  // that mean's norm; then their coordinates in their own span.
  const Tensor basis_d = basis.cols > 0 ? Tensor::from(basis.v, Shape{features, basis.cols}, DType::f64, device) : Tensor();
  Tensor work = Tensor::empty(Shape{n, features}, DType::f64, device), norms_d = Tensor::empty(Shape{classes, 2}, DType::f64, device);
  be.manifold_points(layer, doubles(mean), basis.cols > 0 ? static_cast<const double*>(basis_d.raw()) : nullptr, basis.cols,
                     doubles(work), doubles(norms_d));
  const std::vector<double> norms = norms_d.to_vector();
  out.seconds.manifolds = lap();
  std::vector<Tensor> points;
  std::vector<kernels::SpanProblem> spans;
  std::vector<std::vector<double>> t_vectors;
  // A class whose center lies in the removed structure or on the global mean (every class, in a
  // layer whose units have all died) has no direction to measure along: the layer's capacity,
  // radius and dimension are undefined, NaN, and the run that probes it goes on.
  for (std::int64_t c = 0; c < classes; ++c)
    if (!(norms[2 * c] > 0)) {
      out.warnings.push_back(fmt::format("class {}'s center lies in the removed center structure or on the global mean, so "
                                         "its manifold has no direction left: the layer's capacity, radius and dimension "
                                         "are NaN (a layer whose units have all died does this)", c));
      out.capacity = out.capacity_se = out.radius = out.dimension = std::nan("");
      return out;
    }
  for (std::int64_t c = 0; c < classes; ++c) {
    const std::int64_t m = class_first[c + 1] - class_first[c];
    // Degenerate manifolds have defined values (all points equal: a point manifold, α = 2 at
    // κ = 0; collinear points: a segment); they are worth a word, since real layers rarely do this.
    if (norms[2 * c + 1] < 1e-12)
      out.warnings.push_back(fmt::format("class {}: all {} points coincide; analysed as a single point", c, m));
    kernels::SpanProblem span{features, m, doubles(work) + features * class_first[c], nullptr};
    points.push_back(Tensor::empty(Shape{m, span.dims()}, DType::f64, device));
    span.s = doubles(points.back());
    spans.push_back(span);
    Generator gen(seed, static_cast<std::uint64_t>(1000 + c));  // one stream per class: stable under class subsets
    Tensor t = Tensor::empty(Shape{span.dims() * n_t}, DType::f64);
    gen.normal(t, 0, 1);
    t_vectors.push_back(t.to_vector());
  }
  be.span_coordinates(spans);  // `work` lives until the analysis is done: the device may still read it

  // 4. Every class's anchors at once.
  out.per_class = analyze_points(std::move(points), kappa, t_vectors, n_t, device);
  out.seconds.anchors = lap();
  double inverse_sum = 0, inverse_var = 0;
  for (const ManifoldGeometry& g : out.per_class) {
    inverse_sum += 1 / g.capacity;
    // s.e. of 1/α_M from that of α_M (delta method), summed as independent.
    const double inv_se = g.capacity_se / (g.capacity * g.capacity);
    inverse_var += inv_se * inv_se;
    out.radius += g.radius / static_cast<double>(classes);
    out.dimension += g.dimension / static_cast<double>(classes);
  }
  const double mean_inverse = inverse_sum / static_cast<double>(classes);
  out.capacity = 1 / mean_inverse;  // 1 / mean(1/α_M)
  out.capacity_se = std::sqrt(inverse_var) / static_cast<double>(classes) / (mean_inverse * mean_inverse);
  return out;
}

}  // namespace gs::probe
