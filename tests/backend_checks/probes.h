#pragma once
// The probes' kernels: the NTK's tiles, and the geometry probe's class manifolds, span
// coordinates and anchor solves. Part of tests/backend_checks.h.
#include "common.h"

namespace gs::test::backend_checks {

// The NTK probe's tile kernels against tiles built from materialized parameter gradients
// (reference::dense_layer_kernel_tile), on a tile that is off the diagonal, not square and
// inside a wider kernel (ldk > its columns, whose padding must stay as it was); and the f64 dot.
inline void ntk_tiles(Device d) {
  auto& be = kernels::backend(d);
  for (DType dt : {DType::f32, DType::f64}) {
    const std::string dtype = dtype_name(dt);
    CAPTURE(dtype);
    const std::int64_t n = 9, c = 3, out = 5, in = 4;
    const kernels::KernelTile tile{2, 3, 1, 5, c, 5 * c + 2};
    const std::int64_t rows = tile.rows(), cols = tile.cols();
    const auto dv = rounded(random_values(static_cast<std::size_t>(n * c * out), 601), dt);
    const auto hv = rounded(random_values(static_cast<std::size_t>(n * in), 602), dt);
    auto gv = reference::matmul(hv, hv, n, n, in, false, true);  // G = H Hᵀ + 1
    for (auto& v : gv) v += 1;
    gv = rounded(gv, dt);
    const std::vector<double> di(dv.begin() + tile.i0 * c * out, dv.begin() + (tile.i0 + tile.ni) * c * out);
    const std::vector<double> dj(dv.begin() + tile.j0 * c * out, dv.begin() + (tile.j0 + tile.nj) * c * out);
    Tensor t = on(d, rounded(reference::matmul(di, dj, rows, cols, out, false, true), dt), dt), g = on(d, gv, dt);
    const auto k0 = rounded(random_values(static_cast<std::size_t>(rows * tile.ldk), 603), dt);  // added to, not overwritten
    auto add_tile = [&](const reference::Array& block) {
      auto want = k0;
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t q = 0; q < cols; ++q) want[r * tile.ldk + q] += block[r * cols + q];
      return want;
    };
    Tensor k = on(d, k0, dt);
    const auto want_block = reference::dense_layer_kernel_tile(dv, hv, c, out, in, tile.i0, tile.ni, tile.j0, tile.nj);
    be.add_gram_weighted(dt, tile, t.raw(), g.raw(), n, k.raw(), true);
    check_close(k, add_tile(want_block), tol(dt, out * in), "add_gram_weighted");
    // Written, not added (a tile's first layer): NaN where the tile is, never read; the padding kept.
    auto k0_poisoned = k0;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t q = 0; q < cols; ++q) k0_poisoned[r * tile.ldk + q] = std::nan("");
    Tensor written = on(d, k0_poisoned, dt);
    be.add_gram_weighted(dt, tile, t.raw(), g.raw(), n, written.raw(), false);
    auto want_written = k0;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t q = 0; q < cols; ++q) want_written[r * tile.ldk + q] = want_block[r * cols + q];
    check_close(written, want_written, tol(dt, out * in), "add_gram_weighted, written");
    // The output layer's signals are α·δ_ab: its block is α² δ_ab (h_i·h_j + 1).
    const double alpha = 0.7;
    std::vector<double> scaled_identity(static_cast<std::size_t>(n * c * c), 0.0);
    for (std::int64_t r = 0; r < n * c; ++r) scaled_identity[r * c + r % c] = alpha;
    Tensor k2 = on(d, k0, dt);
    be.add_output_block(dt, tile, alpha * alpha, g.raw(), n, k2.raw());
    check_close(k2, add_tile(reference::dense_layer_kernel_tile(scaled_identity, hv, c, c, in, tile.i0, tile.ni, tile.j0, tile.nj)),
                tol(dt, in), "add_output_block");
    for (std::int64_t m : {1, 1000, 300001}) {  // one block, a few, many
      CAPTURE(m);
      const auto xv = rounded(random_values(static_cast<std::size_t>(m), 604), dt);
      const auto yv = rounded(random_values(static_cast<std::size_t>(m), 605), dt);
      Tensor x = on(d, xv, dt), y = on(d, yv, dt), dot = poisoned(d, 1, DType::f64), again = poisoned(d, 1, DType::f64);
      be.dot_f64(dt, m, x.raw(), y.raw(), static_cast<double*>(dot.raw()));
      be.dot_f64(dt, m, x.raw(), y.raw(), static_cast<double*>(again.raw()));
      double want = 0;
      for (std::size_t q = 0; q < xv.size(); ++q) want += xv[q] * yv[q];
      // f64 products and sums whatever the dtype: far inside f32's rounding.
      check_close(dot, {want}, {1e-13 * std::sqrt(static_cast<double>(m)), 1e-13}, "dot_f64");
      CHECK(again.item() == dot.item());
    }
  }
}

// layer_centers and manifold_points on two layers (classes of unequal sizes, rows in mixed
// order; one with more features than a CUDA block has threads) against their definitions: the
// projection as (I − B Bᵀ) at once rather than one direction after another.
inline void layer_manifolds(Device d) {
  auto& be = kernels::backend(d);
  struct Case {
    std::int64_t rows, features, classes, k;
  };
  std::uint64_t seed = 660;
  for (const Case c : {Case{23, 7, 3, 2}, Case{41, 300, 4, 3}, Case{9, 5, 2, 0}}) {
    const std::int64_t n = c.rows, f_count = c.features, classes = c.classes, k = c.k;
    CAPTURE(f_count);
    const auto x = random_values(static_cast<std::size_t>(n * f_count), ++seed, -2, 3);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 5 + i / 3) % classes);
    std::vector<std::int32_t> first(static_cast<std::size_t>(classes + 1), 0), rows;
    for (std::int64_t cl = 0; cl < classes; ++cl) {
      for (std::int64_t i = 0; i < n; ++i)
        if (labels[static_cast<std::size_t>(i)] == cl) rows.push_back(static_cast<std::int32_t>(i));
      first[static_cast<std::size_t>(cl + 1)] = static_cast<std::int32_t>(rows.size());
    }
    // An orthonormal basis [features, k]: Gram–Schmidt's Q of random columns.
    auto basis = random_values(static_cast<std::size_t>(f_count * k), ++seed, -1, 1);
    for (std::int64_t j = 0; j < k; ++j) {
      for (std::int64_t i = 0; i < j; ++i) {
        double dot = 0;
        for (std::int64_t f = 0; f < f_count; ++f) dot += basis[f * k + i] * basis[f * k + j];
        for (std::int64_t f = 0; f < f_count; ++f) basis[f * k + j] -= dot * basis[f * k + i];
      }
      double norm = 0;
      for (std::int64_t f = 0; f < f_count; ++f) norm += basis[f * k + j] * basis[f * k + j];
      for (std::int64_t f = 0; f < f_count; ++f) basis[f * k + j] /= std::sqrt(norm);
    }
    Tensor x_d = on(d, x, DType::f64), rows_d = labels_on(d, rows), first_d = labels_on(d, first);
    Tensor basis_d = k > 0 ? on(d, basis, DType::f64) : Tensor();
    Tensor mean = poisoned(d, f_count, DType::f64), centers = poisoned(d, classes * f_count, DType::f64);
    Tensor work = poisoned(d, n * f_count, DType::f64), norms = poisoned(d, 2 * classes, DType::f64);
    const kernels::LayerClasses layer{n, f_count, classes, static_cast<const double*>(x_d.raw()),
                                      static_cast<const std::int32_t*>(rows_d.raw()),
                                      static_cast<const std::int32_t*>(first_d.raw())};
    be.layer_centers(layer, static_cast<double*>(mean.raw()), static_cast<double*>(centers.raw()));
    be.manifold_points(layer, static_cast<const double*>(mean.raw()), k > 0 ? static_cast<const double*>(basis_d.raw()) : nullptr,
                       k, static_cast<double*>(work.raw()), static_cast<double*>(norms.raw()));
    std::vector<double> want_mean(static_cast<std::size_t>(f_count), 0.0), want_centers(static_cast<std::size_t>(classes * f_count), 0.0);
    for (std::int64_t f = 0; f < f_count; ++f) {
      for (std::int64_t i = 0; i < n; ++i) want_mean[f] += x[i * f_count + f];
      want_mean[f] /= static_cast<double>(n);
    }
    std::vector<double> want_work(static_cast<std::size_t>(n * f_count)), want_norms(static_cast<std::size_t>(2 * classes));
    for (std::int64_t cl = 0; cl < classes; ++cl) {
      const std::int64_t m = first[cl + 1] - first[cl];
      std::vector<double> points(static_cast<std::size_t>(m * f_count));  // [m, features]
      for (std::int64_t p = 0; p < m; ++p) {
        const std::int64_t row = rows[static_cast<std::size_t>(first[cl] + p)];
        for (std::int64_t f = 0; f < f_count; ++f) {
          points[p * f_count + f] = x[row * f_count + f] - want_mean[f];
          want_centers[cl * f_count + f] += points[p * f_count + f] / static_cast<double>(m);
        }
        std::vector<double> coefficients(static_cast<std::size_t>(k), 0.0);  // Bᵀ point
        for (std::int64_t j = 0; j < k; ++j)
          for (std::int64_t f = 0; f < f_count; ++f) coefficients[j] += basis[f * k + j] * points[p * f_count + f];
        for (std::int64_t f = 0; f < f_count; ++f)
          for (std::int64_t j = 0; j < k; ++j) points[p * f_count + f] -= basis[f * k + j] * coefficients[j];
      }
      double norm = 0, spread = 0;
      std::vector<double> own(static_cast<std::size_t>(f_count), 0.0);
      for (std::int64_t f = 0; f < f_count; ++f) {
        for (std::int64_t p = 0; p < m; ++p) own[f] += points[p * f_count + f] / static_cast<double>(m);
        norm += own[f] * own[f];
      }
      norm = std::sqrt(norm);
      for (std::int64_t f = 0; f < f_count; ++f)
        for (std::int64_t p = 0; p < m; ++p) {
          const double v = (points[p * f_count + f] - own[f]) / norm;
          want_work[f_count * first[cl] + f * m + p] = v;
          spread = std::max(spread, std::abs(v));
        }
      want_norms[2 * cl] = norm;
      want_norms[2 * cl + 1] = spread;
    }
    check_close(mean, want_mean, {1e-13, 1e-13}, "layer_centers mean");
    check_close(centers, want_centers, {1e-13, 1e-12}, "layer_centers centers");
    check_close(work, want_work, {1e-12, 1e-11}, "manifold_points points");
    check_close(norms, want_norms, {1e-13, 1e-12}, "manifold_points norms");
  }
}

// span_coordinates on manifolds in one call: more features than points (R against Gram–Schmidt's),
// more points than a CUDA block has threads, as many or fewer features (the points themselves),
// and points of deficient rank (R not unique there: its Gram must still be the points').
inline void span_coordinates(Device d) {
  auto& be = kernels::backend(d);
  struct Case {
    std::int64_t features, points;
    bool deficient;  // point 1 repeats point 0, and point 2 is zero
  };
  const std::vector<Case> cases{{13, 5, false}, {40, 7, false}, {3, 6, false}, {6, 6, false},
                                {270, 260, false}, {12, 6, true}, {9, 1, false}};
  std::vector<Tensor> work, out;
  std::vector<std::vector<double>> inputs;
  std::vector<kernels::SpanProblem> problems;
  std::uint64_t seed = 680;
  for (const Case c : cases) {
    const std::int64_t f = c.features, m = c.points;
    auto a = random_values(static_cast<std::size_t>(f * m), ++seed, -1, 1);
    if (c.deficient)
      for (std::int64_t i = 0; i < f; ++i) a[i * m + 1] = a[i * m], a[i * m + 2] = 0;
    inputs.push_back(a);
    work.push_back(on(d, a, DType::f64));
    const kernels::SpanProblem p{f, m, static_cast<double*>(work.back().raw()), nullptr};
    out.push_back(poisoned(d, m * p.dims(), DType::f64));
    problems.push_back({f, m, static_cast<double*>(work.back().raw()), static_cast<double*>(out.back().raw())});
  }
  be.span_coordinates(problems);
  for (std::size_t c = 0; c < cases.size(); ++c) {
    const std::int64_t f = cases[c].features, m = cases[c].points, d1 = problems[c].dims(), dims = d1 - 1;
    CAPTURE(f);
    CAPTURE(m);
    const auto s = out[c].to_vector();
    const auto& a = inputs[c];
    auto at = [&](std::int64_t p, std::int64_t k) { return s[static_cast<std::size_t>(p * d1 + k)]; };
    std::int64_t wrong = 0;
    for (std::int64_t p = 0; p < m; ++p) {
      wrong += at(p, dims) != 1;  // the center coordinate
      for (std::int64_t k = 0; k < dims; ++k) {
        if (f <= m) wrong += at(p, k) != a[k * m + p];  // the points themselves
        else if (k > p) wrong += at(p, k) != 0;         // R is upper triangular
        else if (k == p) wrong += !(at(p, k) >= 0);     // with a non-negative diagonal
      }
    }
    CHECK_MESSAGE(wrong == 0, wrong, " coordinates break the layout");
    if (f <= m) continue;
    if (!cases[c].deficient) {  // R is unique: against Gram–Schmidt's
      const auto want = reference::qr_r(a, f, m);
      std::vector<double> got(static_cast<std::size_t>(m * m));
      for (std::int64_t k = 0; k < m; ++k)
        for (std::int64_t p = 0; p < m; ++p) got[static_cast<std::size_t>(k * m + p)] = at(p, k);
      check_close(got, want, {1e-10, 1e-9}, "span_coordinates R");
    }
    // RᵀR = AᵀA: the coordinates keep every product between the points.
    std::vector<double> gram_r(static_cast<std::size_t>(m * m)), gram_a(static_cast<std::size_t>(m * m));
    for (std::int64_t p = 0; p < m; ++p)
      for (std::int64_t q = 0; q < m; ++q) {
        double x = 0, y = 0;
        for (std::int64_t k = 0; k < dims; ++k) x += at(p, k) * at(q, k);
        for (std::int64_t i = 0; i < f; ++i) y += a[i * m + p] * a[i * m + q];
        gram_r[static_cast<std::size_t>(p * m + q)] = x;
        gram_a[static_cast<std::size_t>(p * m + q)] = y;
      }
    check_close(gram_r, gram_a, {1e-10, 1e-9}, "span_coordinates Gram");
  }
}

// The geometry probe's anchor kernels on five manifolds solved in one call (more points than
// dimensions: a singular Gram, dependent columns; fewer; more points than a CUDA block has
// threads; a point manifold, D = 0; κ > 0), then on one of 300 points. Each t's interior test against the max projection found here;
// each solve against brute force over every support where that is small, and against its KKT
// conditions everywhere; the anchors and terms against their definitions.
inline void anchor_solves(Device d) {
  using reference::matmul;
  auto& be = kernels::backend(d);
  struct Case {
    std::int64_t dims, points, count;
    double kappa, spread;
  };
  // All manifolds in one call, as a layer's classes go; each one's inputs and device arrays.
  struct Manifold {
    Case c;
    std::vector<double> s, t, gram, proj;
    Tensor s_d, t_d, gram_d, proj_d, z_d, interior_d;
  };
  auto doubles = [](Tensor& x) { return static_cast<double*>(x.raw()); };
  std::uint64_t seed = 700;
  std::int64_t interior_total = 0;
  // Two calls: five manifolds together, then one of more points than the CUDA kernel keeps in
  // shared memory.
  for (const auto& call : {std::vector<Case>{{4, 9, 37, 0.0, 0.4}, {8, 5, 29, 0.3, 0.8}, {1, 3, 11, 0.0, 1.0},
                                             {12, 150, 23, 0.1, 0.6}, {30, 70, 9, 0.0, 2.0}},
                           std::vector<Case>{{40, 300, 7, 2.0, 0.5}}}) {
    std::vector<Manifold> manifolds;
    std::vector<kernels::AnchorProblem> problems;
    for (const Case c : call) {
      const std::int64_t d1 = c.dims, m = c.points, n_t = c.count;
      Manifold mf{c, random_values(static_cast<std::size_t>(m * d1), ++seed, -c.spread, c.spread),
                  random_values(static_cast<std::size_t>(n_t * d1), ++seed, -2, 2), {}, {}, {}, {}, {}, {}, {}, {}};
      for (std::int64_t mu = 0; mu < m; ++mu) mf.s[static_cast<std::size_t>(mu * d1 + d1 - 1)] = 1;  // the center coordinate
      mf.gram = matmul(mf.s, mf.s, m, m, d1, false, true);
      mf.proj = matmul(mf.s, mf.t, m, n_t, d1, false, true);
      mf.s_d = on(d, mf.s, DType::f64);
      mf.t_d = on(d, mf.t, DType::f64);
      mf.gram_d = on(d, mf.gram, DType::f64);
      mf.proj_d = on(d, mf.proj, DType::f64);
      mf.z_d = poisoned(d, n_t * m, DType::f64);
      mf.interior_d = labels_on(d, std::vector<std::int32_t>(static_cast<std::size_t>(n_t), -7));
      problems.push_back({d1, m, n_t, c.kappa, doubles(mf.s_d), doubles(mf.t_d), doubles(mf.gram_d), doubles(mf.proj_d),
                          doubles(mf.z_d), static_cast<std::int32_t*>(mf.interior_d.raw())});
      manifolds.push_back(std::move(mf));
    }
    be.solve_anchors(problems, 1e-12);

    for (std::size_t i = 0; i < manifolds.size(); ++i) {
      Manifold& mf = manifolds[i];
      const Case c = mf.c;
      const std::int64_t d1 = c.dims, m = c.points, n_t = c.count, dd = d1 - 1;
      CAPTURE(d1);
      CAPTURE(m);
      const auto &s = mf.s, &t = mf.t, &gram = mf.gram, &proj = mf.proj;
      const auto z = mf.z_d.to_vector();
      const auto interior = mf.interior_d.to_int_vector();
      int solved = 0;
      for (std::int64_t q = 0; q < n_t; ++q) {
        CAPTURE(q);
        std::int64_t best = 0;
        double best_proj = -INFINITY;
        for (std::int64_t mu = 0; mu < m; ++mu) {
          const double v = proj[static_cast<std::size_t>(mu * n_t + q)] - s[static_cast<std::size_t>(mu * d1 + dd)] * t[static_cast<std::size_t>(q * d1 + dd)];
          if (v > best_proj) best_proj = v, best = mu;
        }
        const std::vector<double> zq(z.begin() + q * m, z.begin() + (q + 1) * m);
        if (t[static_cast<std::size_t>(q * d1 + dd)] + best_proj + c.kappa < 0) {
          CHECK(interior[static_cast<std::size_t>(q)] == best + 1);
          check_close(zq, std::vector<double>(static_cast<std::size_t>(m), 0.0), {0, 0}, "the multipliers of an interior t");
          continue;
        }
        ++solved;
        CHECK(interior[static_cast<std::size_t>(q)] == 0);
        std::vector<double> aty(static_cast<std::size_t>(m));
        for (std::int64_t mu = 0; mu < m; ++mu)
          aty[static_cast<std::size_t>(mu)] = proj[static_cast<std::size_t>(mu * n_t + q)] + c.kappa * s[static_cast<std::size_t>(mu * d1 + dd)];
        // KKT: z ≥ 0, the gradient Aᵀy − G z ≤ 0, and 0 where z > 0.
        const auto gz = matmul(gram, zq, m, 1, m);
        for (std::int64_t mu = 0; mu < m; ++mu) {
          const double w = aty[static_cast<std::size_t>(mu)] - gz[static_cast<std::size_t>(mu)];
          CHECK(zq[static_cast<std::size_t>(mu)] >= 0);
          CHECK(w <= 1e-9);
          if (zq[static_cast<std::size_t>(mu)] > 0) CHECK(std::abs(w) <= 1e-9);
        }
        if (m <= 10) {
          const double want = reference::nnls_objective(gram, aty, reference::nnls_by_supports(gram, aty, m));
          CHECK(reference::nnls_objective(gram, aty, zq) == doctest::Approx(want).epsilon(1e-10).scale(1e-12));
        }
      }
      CHECK(solved > 0);
      interior_total += n_t - solved;

      // The terms, from these multipliers, against their definitions.
      const auto sz = matmul(z, s, n_t, d1, m), gz = matmul(z, gram, n_t, m, m);
      Tensor sz_d = on(d, sz, DType::f64), gz_d = on(d, gz, DType::f64), anchors_d = poisoned(d, n_t * d1, DType::f64),
             terms_d = poisoned(d, n_t * kernels::anchor_term_count, DType::f64);
      be.anchor_terms(problems[i], doubles(sz_d), doubles(gz_d), doubles(anchors_d), doubles(terms_d));
      std::vector<double> anchors(static_cast<std::size_t>(n_t * d1)), terms(static_cast<std::size_t>(n_t * kernels::anchor_term_count));
      std::vector<double> mean(static_cast<std::size_t>(d1), 0.0);
      for (std::int64_t q = 0; q < n_t; ++q) {
        double* a = anchors.data() + q * d1;
        double* row = terms.data() + q * kernels::anchor_term_count;
        const double* zq = z.data() + q * m;
        const double* tq = t.data() + q * d1;
        const std::int32_t point = interior[static_cast<std::size_t>(q)];
        double zsum = 0, violation = 0, min_z = 0, complementarity = 0;
        for (std::int64_t mu = 0; mu < m; ++mu) zsum += zq[mu];
        for (std::int64_t k = 0; k < d1; ++k) a[k] = point > 0 ? s[static_cast<std::size_t>((point - 1) * d1 + k)] : sz[static_cast<std::size_t>(q * d1 + k)] / zsum;
        for (std::int64_t mu = 0; point == 0 && mu < m; ++mu) {
          const double slack = proj[static_cast<std::size_t>(mu * n_t + q)] - gz[static_cast<std::size_t>(q * m + mu)] + c.kappa;
          violation = std::max(violation, slack);
          min_z = std::min(min_z, zq[mu]);
          complementarity = std::max(complementarity, std::abs(zq[mu] * slack));
        }
        double ts = c.kappa, ss = 0, tn = 0, sn = 0, dot = 0;
        for (std::int64_t k = 0; k < d1; ++k) {
          ts += tq[k] * a[k];
          ss += a[k] * a[k];
          mean[static_cast<std::size_t>(k)] += a[k] / static_cast<double>(n_t);
          if (k < dd) tn += tq[k] * tq[k], sn += a[k] * a[k], dot += tq[k] * a[k];
        }
        row[kernels::capacity_term] = std::pow(std::max(ts, 0.0), 2) / ss;
        row[kernels::cosine_term] = dd > 0 ? dot / std::sqrt(tn * (sn + 1e-12)) : 0;
        row[kernels::max_violation_term] = violation;
        row[kernels::min_multiplier_term] = min_z;
        row[kernels::complementarity_term] = complementarity;
      }
      for (std::int64_t q = 0; q < n_t; ++q) {
        double sq = 0;
        for (std::int64_t k = 0; k < dd; ++k)
          sq += std::pow((anchors[static_cast<std::size_t>(q * d1 + k)] - mean[static_cast<std::size_t>(k)]) / anchors[static_cast<std::size_t>(q * d1 + dd)], 2);
        terms[static_cast<std::size_t>(q * kernels::anchor_term_count + kernels::radius_term)] = sq;
      }
      check_close(anchors_d, anchors, {1e-13, 1e-12}, "anchor_terms: the anchors");
      check_close(terms_d, terms, {1e-12, 1e-10}, "anchor_terms: the terms");
    }
  }
  CHECK(interior_total > 0);  // the interior path ran too
}

}  // namespace gs::test::backend_checks
