// The per-manifold MFTMA core against analytic capacities (Gardner's points, line segments,
// balls), its QP solutions against their KKT conditions, its NNLS against brute force, and its
// invariances.
#include <chrono>
#include <cmath>

#include "engine/probe/geometry.h"
#include "kernels/reference/reference.h"
#include "helpers.h"

using namespace gs;
using namespace gs::probe;

namespace {

std::vector<double> gaussians(std::int64_t count, std::uint64_t seed) {
  Generator g(seed, Stream::test);
  Tensor t = Tensor::empty(Shape{count}, DType::f64);
  g.normal(t, 0, 1);
  return t.to_vector();
}

Manifold from_points(std::int64_t d, const std::vector<std::vector<double>>& pts) {
  Manifold m{d + 1, static_cast<std::int64_t>(pts.size()), {}};
  for (const auto& p : pts) {
    m.points.insert(m.points.end(), p.begin(), p.end());
    m.points.push_back(1.0);  // the center coordinate
  }
  return m;
}

// G = AᵀA and Aᵀy for a random A (rows × m) and y.
struct NnlsProblem {
  std::vector<double> g, aty;
};

NnlsProblem random_nnls(std::int64_t rows, std::int64_t m, std::uint64_t seed) {
  auto a = test::random_values(static_cast<std::size_t>(rows * m), seed);  // column-major A
  auto y = test::random_values(static_cast<std::size_t>(rows), seed + 100);
  NnlsProblem p{std::vector<double>(static_cast<std::size_t>(m * m)), std::vector<double>(static_cast<std::size_t>(m))};
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < m; ++j)
      for (std::int64_t k = 0; k < rows; ++k) p.g[i * m + j] += a[i * rows + k] * a[j * rows + k];
    for (std::int64_t k = 0; k < rows; ++k) p.aty[i] += a[i * rows + k] * y[k];
  }
  return p;
}

void check_kkt(const ManifoldGeometry& g) {
  CHECK(g.worst.max_violation <= 1e-9);
  CHECK(g.worst.min_multiplier >= 0.0);
  CHECK(g.worst.max_complementarity <= 1e-9);
}

// Within four standard errors of the analytic value: a check that fails 1 time in ~16000.
void check_capacity(const ManifoldGeometry& g, double want) {
  CAPTURE(g.capacity);
  CAPTURE(g.capacity_se);
  CHECK(std::abs(g.capacity - want) < 4 * g.capacity_se + 1e-12);
  CHECK(g.capacity_se < 0.02 * want);  // the test has the statistical power it claims
}

}  // namespace

TEST_SUITE("geometry") {
  TEST_CASE("point manifolds: Gardner's capacity, 2 at κ = 0, 0.961205 at 0.5, 0.519572 at 1") {
    const std::int64_t n_t = 40000;
    auto t = gaussians(n_t, 1);
    Manifold point = from_points(0, {{}});
    for (auto [kappa, want] : std::vector<std::pair<double, double>>{{0.0, 2.0}, {0.5, 0.961205}, {1.0, 0.519572}}) {
      CAPTURE(kappa);
      auto g = analyze_manifold(point, kappa, t, n_t);
      check_capacity(g, want);
      check_kkt(g);
    }
  }

  TEST_CASE("line segments at κ = 0: 1 / (½ + (2/π) atan R)") {
    const std::int64_t n_t = 40000;
    auto t = gaussians(2 * n_t, 2);
    for (auto [r, want] : std::vector<std::pair<double, double>>{{0.5, 1.257597}, {2.0, 0.829991}}) {
      CAPTURE(r);
      CHECK(want == doctest::Approx(1 / (0.5 + 2 / M_PI * std::atan(r))).epsilon(1e-6));
      auto g = analyze_manifold(from_points(1, {{-r}, {r}, {0.3 * r}}), 0.0, t, n_t);  // an inner point changes nothing
      check_capacity(g, want);
      check_kkt(g);
    }
  }

  TEST_CASE("balls of radius 1 in D dimensions: 2 / (D + 1)") {
    // The circle by 720 points, the sphere by 2000 Fibonacci points: their hulls are within 0.1%
    // and 0.3% of the ball.
    const std::int64_t n_t = 20000;
    std::vector<std::vector<double>> circle, sphere;
    for (int k = 0; k < 720; ++k) circle.push_back({std::cos(2 * M_PI * k / 720), std::sin(2 * M_PI * k / 720)});
    for (int k = 0; k < 2000; ++k) {
      const double z = 1 - (2.0 * k + 1) / 2000, r = std::sqrt(1 - z * z), phi = k * M_PI * (3 - std::sqrt(5.0));
      sphere.push_back({r * std::cos(phi), r * std::sin(phi), z});
    }
    auto g2 = analyze_manifold(from_points(2, circle), 0.0, gaussians(3 * n_t, 3), n_t);
    check_capacity(g2, 2.0 / 3);
    check_kkt(g2);
    auto g3 = analyze_manifold(from_points(3, sphere), 0.0, gaussians(4 * n_t, 4), n_t);
    CHECK(std::abs(g3.capacity - 0.5) < 4 * g3.capacity_se + 0.003);
    check_kkt(g3);
    CHECK(g3.radius == doctest::Approx(1.0).epsilon(0.05));  // anchors sit on the sphere
  }

  TEST_CASE("NNLS matches the brute-force solution over every support") {
    int nonzero_optima = 0;
    for (std::uint64_t seed = 10; seed < 40; ++seed) {
      const std::int64_t rows = 3, m = 5;  // more columns than rows: a singular Gram, dependent supports
      const NnlsProblem p = random_nnls(rows, m, seed);
      auto z = nnls_gram(p.g, p.aty, m);
      for (double v : z) CHECK(v >= 0);
      const double best = reference::nnls_objective(p.g, p.aty, reference::nnls_by_supports(p.g, p.aty, m));
      nonzero_optima += best < 0;
      CHECK(reference::nnls_objective(p.g, p.aty, z) == doctest::Approx(best).epsilon(1e-10).scale(1e-12));
    }
    CHECK(nonzero_optima >= 20);  // mostly real solutions, not z = 0
  }

  // Supports of five points and more take the solver's paths for larger passive sets (w updated
  // four rows at a time); the smallest case above never reaches them. More rows than points: a
  // positive definite Gram, so that the optimal z is unique and can be compared entry by entry.
  TEST_CASE("NNLS matches the brute-force solution where it has many points") {
    int large_supports = 0;
    for (std::uint64_t seed = 50; seed < 62; ++seed) {
      const std::int64_t rows = 16, m = 14;
      const NnlsProblem p = random_nnls(rows, m, seed);
      auto z = nnls_gram(p.g, p.aty, m);
      for (double v : z) CHECK(v >= 0);
      const auto exact = reference::nnls_by_supports(p.g, p.aty, m);
      large_supports += std::count_if(exact.begin(), exact.end(), [](double v) { return v > 0; }) >= 5;
      const double best = reference::nnls_objective(p.g, p.aty, exact);
      CHECK(reference::nnls_objective(p.g, p.aty, z) == doctest::Approx(best).epsilon(1e-10).scale(1e-12));
      for (std::int64_t i = 0; i < m; ++i) CHECK(z[i] == doctest::Approx(exact[i]).epsilon(1e-8).scale(1e-10));
    }
    CHECK(large_supports >= 8);
  }

  // Too many points for brute force, as many as a probe's manifolds have: the solution is the
  // optimum where it meets the KKT conditions of min ‖A z − y‖², z ≥ 0, with w = Aᵀ(y − A z):
  // w = 0 where z > 0 and w ≤ 0 where z = 0 (w from the float64 reference product).
  TEST_CASE("NNLS meets the KKT conditions on probe-sized problems") {
    for (std::uint64_t seed = 70; seed < 76; ++seed) {
      const std::int64_t rows = 60, m = 150;
      const NnlsProblem p = random_nnls(rows, m, seed);
      auto z = nnls_gram(p.g, p.aty, m);
      double scale = 0;
      for (double v : p.aty) scale = std::max(scale, std::abs(v));
      int support = 0;
      for (std::int64_t j = 0; j < m; ++j) {
        double w = p.aty[j];
        for (std::int64_t i = 0; i < m; ++i) w -= p.g[j * m + i] * z[i];
        CAPTURE(seed);
        CAPTURE(j);
        CHECK(z[j] >= 0);
        if (z[j] > 0) {
          ++support;
          CHECK(std::abs(w) <= 1e-9 * scale);
        } else {
          CHECK(w <= 1e-9 * scale);
        }
      }
      CHECK(support >= 20);
    }
  }

  TEST_CASE("invariant to permuting points and rotating the space; identical for the same t") {
    const std::int64_t n_t = 500;
    auto t = gaussians(3 * n_t, 5);
    auto pts = std::vector<std::vector<double>>{{0.3, -0.2}, {-0.5, 0.1}, {0.2, 0.6}, {-0.1, -0.4}, {0.45, 0.05}};
    auto base = analyze_manifold(from_points(2, pts), 0.2, t, n_t);
    auto again = analyze_manifold(from_points(2, pts), 0.2, t, n_t);
    CHECK(base.capacity == again.capacity);
    std::reverse(pts.begin(), pts.end());
    auto permuted = analyze_manifold(from_points(2, pts), 0.2, t, n_t);
    CHECK(permuted.capacity == doctest::Approx(base.capacity).epsilon(1e-10));
    CHECK(permuted.radius == doctest::Approx(base.radius).epsilon(1e-10));
    CHECK(permuted.dimension == doctest::Approx(base.dimension).epsilon(1e-10));
    // Rotate points and t alike in the first D coordinates.
    const double c = std::cos(0.7), s = std::sin(0.7);
    for (auto& p : pts) p = {c * p[0] - s * p[1], s * p[0] + c * p[1]};
    auto tr = t;
    for (std::int64_t q = 0; q < n_t; ++q) {
      const double x = t[q * 3], y = t[q * 3 + 1];
      tr[q * 3] = c * x - s * y;
      tr[q * 3 + 1] = s * x + c * y;
    }
    auto rotated = analyze_manifold(from_points(2, pts), 0.2, tr, n_t);
    CHECK(rotated.capacity == doctest::Approx(base.capacity).epsilon(1e-9));
    CHECK(rotated.radius == doctest::Approx(base.radius).epsilon(1e-9));
    CHECK(rotated.dimension == doctest::Approx(base.dimension).epsilon(1e-9));
  }
}

namespace {
struct Clouds {
  std::vector<double> x;
  std::vector<std::int32_t> y;
};
// `classes` Gaussian clouds of `per_class` points in `features` dimensions, spread `spread`
// around random centers.
Clouds clouds(std::int64_t classes, std::int64_t per_class, std::int64_t features, double spread, std::uint64_t seed) {
  Generator g(seed, Stream::test);
  Tensor centers = Tensor::empty(Shape{classes * features}, DType::f64), noise = Tensor::empty(Shape{classes * per_class * features}, DType::f64);
  g.normal(centers, 0, 1);
  g.normal(noise, 0, spread);
  auto c = centers.to_vector(), e = noise.to_vector();
  Clouds out;
  for (std::int64_t k = 0; k < classes; ++k)
    for (std::int64_t p = 0; p < per_class; ++p) {
      for (std::int64_t f = 0; f < features; ++f)
        out.x.push_back(c[k * features + f] + e[(k * per_class + p) * features + f]);
      out.y.push_back(static_cast<std::int32_t>(k));
    }
  return out;
}
}  // namespace

TEST_SUITE("geometry") {
  TEST_CASE("a layer: invariant to a global scale and a rotation; tighter clouds have more capacity") {
    // 8 points in 12 dimensions: each manifold is reduced to its span (QR), which makes the
    // analysis exactly invariant to rotations of the space (with more points than dimensions it
    // is so only in distribution, the t vectors being drawn in the given coordinates).
    auto c = clouds(4, 8, 12, 0.2, 1);
    auto base = analyze_layer(c.x, 12, c.y, 4, 0.0, 300, 7);
    CHECK(base.capacity > 0);
    CHECK(base.k >= 1);
    REQUIRE(base.per_class.size() == 4);
    auto scaled = c.x;
    for (auto& v : scaled) v *= 3.5;
    auto s = analyze_layer(scaled, 12, c.y, 4, 0.0, 300, 7);
    // The center-structure optimization stops on rounding-level criteria: equal to 1e-6.
    CHECK(s.k == base.k);
    CHECK(s.capacity == doctest::Approx(base.capacity).epsilon(1e-6));
    CHECK(s.radius == doctest::Approx(base.radius).epsilon(1e-6));
    CHECK(s.center_correlation == doctest::Approx(base.center_correlation).epsilon(1e-9));
    auto rotated = c.x;  // rotate features 0 and 5 by 0.9 rad
    for (std::size_t i = 0; i < rotated.size(); i += 12) {
      const double a = rotated[i], b = rotated[i + 5];
      rotated[i] = std::cos(0.9) * a - std::sin(0.9) * b;
      rotated[i + 5] = std::sin(0.9) * a + std::cos(0.9) * b;
    }
    auto r = analyze_layer(rotated, 12, c.y, 4, 0.0, 300, 7);
    CHECK(r.k == base.k);
    CHECK(r.capacity == doctest::Approx(base.capacity).epsilon(1e-6));
    CHECK(r.dimension == doctest::Approx(base.dimension).epsilon(1e-6));
    CHECK(analyze_layer(c.x, 12, c.y, 4, 0.0, 300, 7).capacity == base.capacity);  // a seed fixes it
    auto tight = clouds(4, 30, 12, 0.2, 1), wide = clouds(4, 30, 12, 0.8, 1);
    auto t = analyze_layer(tight.x, 12, tight.y, 4, 0.0, 300, 7), w = analyze_layer(wide.x, 12, wide.y, 4, 0.0, 300, 7);
    CHECK(w.capacity < t.capacity);
    CHECK(w.radius > t.radius);
  }

  TEST_CASE("a layer: permuting the classes and the rows changes nothing beyond Monte-Carlo error") {
    // Relabel the classes by a permutation and shuffle the rows. The center correlation is a
    // symmetric function of the centers: equal up to rounding. Each manifold keeps its points
    // but meets other t vectors (drawn per class index, in other coordinates after its QR), so
    // its capacity agrees within its standard errors; so does the layer's.
    auto c = clouds(5, 40, 30, 0.4, 3);
    const std::vector<std::int32_t> relabel{3, 0, 4, 1, 2};
    std::vector<std::size_t> order(c.y.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = (i * 37) % order.size();  // 37 ⟂ 200
    std::vector<double> px;
    std::vector<std::int32_t> py;
    for (auto i : order) {
      px.insert(px.end(), c.x.begin() + static_cast<std::ptrdiff_t>(i * 30), c.x.begin() + static_cast<std::ptrdiff_t>((i + 1) * 30));
      py.push_back(relabel[static_cast<std::size_t>(c.y[i])]);
    }
    for (bool remove : {false, true}) {
      CAPTURE(remove);
      const auto removal = remove ? CenterRemoval::least_correlation() : CenterRemoval::none();
      auto base = analyze_layer(c.x, 30, c.y, 5, 0.0, 2000, 11, removal);
      auto perm = analyze_layer(px, 30, py, 5, 0.0, 2000, 11, removal);
      CHECK(perm.center_correlation == doctest::Approx(base.center_correlation).epsilon(1e-12));
      if (!remove) {
        for (std::size_t k = 0; k < 5; ++k) {
          const auto& a = base.per_class[k];
          const auto& b = perm.per_class[static_cast<std::size_t>(relabel[k])];
          CAPTURE(k);
          CHECK(std::abs(a.capacity - b.capacity) < 4 * std::hypot(a.capacity_se, b.capacity_se));
          CHECK(b.radius == doctest::Approx(a.radius).epsilon(0.05));
          CHECK(b.dimension == doctest::Approx(a.dimension).epsilon(0.1));
        }
      } else {
        CHECK(perm.k == base.k);
      }
      CHECK(std::abs(perm.capacity - base.capacity) < 4 * std::hypot(base.capacity_se, perm.capacity_se));
      CHECK(base.capacity_se < 0.02 * base.capacity);
    }
  }

  TEST_CASE("a layer: the tensor form on the activations' device equals the host form, and times its parts") {
    auto c = clouds(4, 12, 9, 0.4, 8);
    const auto from_host = analyze_layer(c.x, 9, c.y, 4, 0.0, 300, 5);
    const auto start = std::chrono::steady_clock::now();
    const auto from_tensor = analyze_layer(Tensor::from(c.x, Shape{48, 9}, DType::f64), c.y, 4, 0.0, 300, 5);
    const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(from_tensor.capacity == from_host.capacity);
    CHECK(from_tensor.radius == from_host.radius);
    CHECK(from_tensor.dimension == from_host.dimension);
    CHECK(from_tensor.k == from_host.k);
    const auto& t = from_tensor.seconds;
    CHECK(t.centers > 0);  // each part was timed (0 is the unset value)
    CHECK(t.structure > 0);
    CHECK(t.manifolds > 0);
    CHECK(t.anchors > 0);
    CHECK(t.centers + t.structure + t.manifolds + t.anchors <= total);
  }

  TEST_CASE("a layer: degenerate manifolds give defined values and a warning") {
    auto c = clouds(3, 10, 6, 0.3, 3);
    for (int p = 1; p < 10; ++p)  // class 0: every point equal to its first
      for (int f = 0; f < 6; ++f) c.x[static_cast<std::size_t>(p * 6 + f)] = c.x[static_cast<std::size_t>(f)];
    auto g = analyze_layer(c.x, 6, c.y, 3, 0.0, 2000, 4);
    REQUIRE(g.warnings.size() == 1);
    CHECK(g.warnings[0].find("class 0: all 10 points coincide") != std::string::npos);
    CHECK(std::isfinite(g.capacity));
    CHECK(std::abs(g.per_class[0].capacity - 2.0) < 4 * g.per_class[0].capacity_se);  // a point manifold
    CHECK(g.per_class[0].radius < 1e-12);  // rounding of the coinciding points
  }

  // A layer whose units have all died gives every row the same values: no direction separates the
  // classes, the geometry is undefined, and a run probing it must go on.
  TEST_CASE("a layer whose rows are all alike: NaN geometry and a warning, not an error") {
    const std::int64_t classes = 10, per_class = 6, features = 12;
    std::vector<std::int32_t> y;
    for (std::int64_t i = 0; i < classes * per_class; ++i) y.push_back(static_cast<std::int32_t>(i % classes));
    for (double value : {0.0, 0.37}) {  // dead ReLUs; a bias alone
      CAPTURE(value);
      const std::vector<double> x(static_cast<std::size_t>(classes * per_class * features), value);
      auto g = analyze_layer(x, features, y, classes, 0.0, 50, 1);
      CHECK(std::isnan(g.capacity));
      CHECK(std::isnan(g.capacity_se));
      CHECK(std::isnan(g.radius));
      CHECK(std::isnan(g.dimension));
      CHECK(std::isnan(g.center_correlation));
      CHECK(g.k == 0);
      REQUIRE(g.warnings.size() == 1);
      CHECK(g.warnings[0].find("every class center lies on the global mean") != std::string::npos);
    }
    // Classes apart by more than rounding are analysed as usual.
    auto c = clouds(3, 10, 6, 0.3, 3);
    CHECK(std::isfinite(analyze_layer(c.x, 6, c.y, 3, 0.0, 200, 4).capacity));
  }

  // Class 2's points are symmetric about the global mean, so its center is that mean exactly
  // (integers over 8 rows: every sum is exact), while classes 0 and 1 lie at ±u.
  TEST_CASE("a layer with one class centered on the global mean: NaN geometry and a warning naming it") {
    const std::vector<double> u{4, 0, 0, 0}, w0{0, 1, 0, 0}, w1{0, 0, 1, 0}, w2{0, 0, 0, 1}, w3{0, 1, 1, 0};
    std::vector<double> x;
    std::vector<std::int32_t> y;
    auto add = [&](int label, double su, const std::vector<double>& w, double sw) {
      for (std::size_t f = 0; f < 4; ++f) x.push_back(su * u[f] + sw * w[f]);
      y.push_back(label);
    };
    add(0, 1, w0, 1), add(0, 1, w0, -1), add(1, -1, w1, 1), add(1, -1, w1, -1);
    add(2, 0, w2, 1), add(2, 0, w2, -1), add(2, 0, w3, 1), add(2, 0, w3, -1);
    const auto g = analyze_layer(x, 4, y, 3, 0.0, 50, 1);
    CHECK(std::isnan(g.capacity));
    CHECK(std::isnan(g.radius));
    CHECK(std::isnan(g.dimension));
    CHECK(std::isfinite(g.center_correlation));  // the centers themselves are defined
    REQUIRE(g.warnings.size() == 1);
    CHECK(g.warnings[0].find("class 2's center lies in the removed center structure or on the global mean") != std::string::npos);
  }

  TEST_CASE("a layer: bad input is refused with the reason") {
    auto c = clouds(3, 5, 4, 0.3, 2);
    CHECK_THROWS_WITH_AS(analyze_layer(c.x, 4, c.y, 1, 0.0, 10, 1), doctest::Contains("at least 2 classes"), Error);
    auto one = c.y;
    one[0] = 2;
    for (int i = 1; i < 5; ++i) one[static_cast<std::size_t>(i)] = 1;  // class 0 keeps no point
    CHECK_THROWS_WITH_AS(analyze_layer(c.x, 4, one, 3, 0.0, 10, 1), doctest::Contains("class 0 has 0 points"), Error);
    auto nan = c.x;
    nan[3] = std::nan("");
    CHECK_THROWS_WITH_AS(analyze_layer(nan, 4, c.y, 3, 0.0, 10, 1), doctest::Contains("NaN or Inf"), Error);
    CHECK_THROWS_WITH_AS(analyze_layer(c.x, 5, c.y, 3, 0.0, 10, 1), doctest::Contains("the same number of rows"), Error);
    for (double kappa : {-0.5, std::nan(""), double(INFINITY), 2 * max_kappa})  // NaN used to give NaN capacity silently
      CHECK_THROWS_WITH_AS(analyze_layer(c.x, 4, c.y, 3, kappa, 10, 1),
                           doctest::Contains("the margin kappa must be in [0, 1000000]"), Error);
  }

  TEST_CASE("a layer: at large margins capacity goes as 1/κ², radius as 1/κ, and the dimension settles") {
    // The anchors tend to a limit whose first D coordinates shrink as 1/κ: the dimension (a
    // cosine) must not depend on their scale. A fixed ε under the cosine's root once pulled it
    // from 39.0 to 38.0 at κ = 1e6 on this layer.
    auto c = clouds(3, 40, 50, 0.7, 4);
    const auto at = [&](double kappa) { return analyze_layer(c.x, 50, c.y, 3, kappa, 100, 9, CenterRemoval::none()); };
    const auto mid = at(1e4), high = at(1e6);
    CHECK(high.dimension == doctest::Approx(mid.dimension).epsilon(1e-9));
    CHECK(1e6 * high.radius == doctest::Approx(1e4 * mid.radius).epsilon(1e-4));  // the next order is 1/κ
    CHECK(1e12 * high.capacity == doctest::Approx(1.0).epsilon(1e-6));
    CHECK(1e8 * mid.capacity == doctest::Approx(1.0).epsilon(1e-4));
  }
}

#include "engine/probe/center_structure.h"

TEST_SUITE("geometry") {
  TEST_CASE("center structure: the cost's gradient matches finite differences") {
    Matrix x{6, 5, test::random_values(30, 31)};
    Matrix v{5, 2, test::random_values(10, 32)};
    Matrix g;
    center_cost(x, v, &g);
    for (std::size_t i = 0; i < v.v.size(); ++i) {
      Matrix up = v, down = v;
      up.v[i] += 1e-6;
      down.v[i] -= 1e-6;
      CHECK(g.v[i] == doctest::Approx((center_cost(x, up) - center_cost(x, down)) / 2e-6).epsilon(1e-6).scale(1e-6));
    }
  }

  // pymanopt's stopping tests, as the reference's minimization runs them: whatever test stopped a
  // minimization holds where it stopped, and the frame it returns is orthonormal, no worse than
  // where it started, and has the cost and gradient norm it reports.
  TEST_CASE("center structure: a minimization stops where one of pymanopt's tests holds") {
    const std::int64_t p = 10;
    int by_gradient = 0, by_step = 0;
    for (std::uint64_t seed = 1; seed <= 12; ++seed)
      for (std::int64_t k : {1, 2, 4}) {
        CAPTURE(seed);
        CAPTURE(k);
        Matrix x{p, p - 1, test::random_values(static_cast<std::size_t>(p * (p - 1)), 200 + seed)};
        for (std::int64_t i = 0; i < p; ++i) x(i, 0) += 3 * static_cast<double>(i % 3);  // some shared structure
        // An orthonormal start by Gram–Schmidt.
        Matrix v0{p - 1, k, test::random_values(static_cast<std::size_t>((p - 1) * k), 300 + seed)};
        for (std::int64_t j = 0; j < k; ++j) {
          for (std::int64_t i = 0; i < j; ++i) {
            double d = 0;
            for (std::int64_t r = 0; r < p - 1; ++r) d += v0(r, i) * v0(r, j);
            for (std::int64_t r = 0; r < p - 1; ++r) v0(r, j) -= d * v0(r, i);
          }
          double norm = 0;
          for (std::int64_t r = 0; r < p - 1; ++r) norm += v0(r, j) * v0(r, j);
          for (std::int64_t r = 0; r < p - 1; ++r) v0(r, j) /= std::sqrt(norm);
        }
        const CenterFit fit = minimize_center_cost(x, v0);
        const Matrix& v = fit.v;
        for (std::int64_t i = 0; i < k; ++i)
          for (std::int64_t j = 0; j < k; ++j) {
            double d = 0;
            for (std::int64_t r = 0; r < p - 1; ++r) d += v(r, i) * v(r, j);
            CHECK(d == doctest::Approx(i == j ? 1.0 : 0.0).scale(1.0).epsilon(1e-12));
          }
        Matrix g;
        CHECK(fit.cost == doctest::Approx(center_cost(x, v, &g)).epsilon(1e-12));
        CHECK(fit.cost <= center_cost(x, v0));
        // The Riemannian gradient: the Euclidean one minus V sym(Vᵀ G).
        std::vector<double> vg(static_cast<std::size_t>(k * k), 0.0);
        for (std::int64_t a = 0; a < k; ++a)
          for (std::int64_t b = 0; b < k; ++b)
            for (std::int64_t r = 0; r < p - 1; ++r) vg[a * k + b] += v(r, a) * g(r, b);
        double norm = 0;
        for (std::int64_t r = 0; r < p - 1; ++r)
          for (std::int64_t b = 0; b < k; ++b) {
            double t = g(r, b);
            for (std::int64_t a = 0; a < k; ++a) t -= v(r, a) * 0.5 * (vg[a * k + b] + vg[b * k + a]);
            norm += t * t;
          }
        CHECK(fit.gradient_norm == doctest::Approx(std::sqrt(norm)).epsilon(1e-6).scale(1e-12));
        CHECK(fit.iterations <= 999);
        switch (fit.stop) {
          case CgStop::gradient_norm:
            CHECK(fit.gradient_norm < 1e-6);
            ++by_gradient;
            break;
          case CgStop::step_size:
            CHECK(fit.last_step < 1e-10);
            CHECK(fit.gradient_norm >= 1e-6);
            ++by_step;
            break;
          case CgStop::iterations:
            CHECK(fit.iterations == 999);
            break;
          case CgStop::non_finite:
            FAIL("a gradient stopped being finite on centers in general position");
        }
      }
    CHECK(by_gradient > 0);  // both tests are reached on these centers (20 and 13 of the 36)
    CHECK(by_step > 0);
  }

  TEST_CASE("center structure: a planted shared direction is found and removed") {
    // 10 centers in 30 dimensions: a strong common component along u plus small independent parts.
    const std::int64_t p = 10, n = 30;
    auto u = test::random_values(static_cast<std::size_t>(n), 33);
    auto a = test::random_values(static_cast<std::size_t>(p), 34, 2, 4);
    auto noise = test::random_values(static_cast<std::size_t>(p * n), 35, -0.3, 0.3);
    Matrix centers{p, n, std::vector<double>(static_cast<std::size_t>(p * n))};
    for (std::int64_t i = 0; i < p; ++i)
      for (std::int64_t j = 0; j < n; ++j) centers(i, j) = a[i] * u[j] + noise[i * n + j];
    auto s = find_center_structure(centers, 1);
    CHECK(s.k >= 1);
    CHECK(s.residual[s.k - 1] < 0.5 * s.correlation_before);
    REQUIRE(s.basis.rows == n);
    REQUIRE(s.basis.cols == s.k);
    for (std::int64_t i = 0; i < s.k; ++i)
      for (std::int64_t j = 0; j < s.k; ++j) {
        double d = 0;
        for (std::int64_t r = 0; r < n; ++r) d += s.basis(r, i) * s.basis(r, j);
        CHECK(d == doctest::Approx(i == j ? 1.0 : 0.0).scale(1.0).epsilon(1e-10));
      }
    auto again = find_center_structure(centers, 1);
    CHECK(again.k == s.k);
    CHECK(again.residual == s.residual);
    // Scaled by 2^-600 (activations that small square to below the smallest double), the same
    // structure to the last bit.
    Matrix tiny = centers;
    for (double& v : tiny.v) v = std::ldexp(v, -600);
    auto scaled = find_center_structure(tiny, 1);
    CHECK(scaled.k == s.k);
    CHECK(scaled.residual == s.residual);
    CHECK(scaled.correlation_before == s.correlation_before);
    CHECK(scaled.basis.v == s.basis.v);
  }

  // A layer with few live units puts its class centers in a span of few dimensions: the search
  // removes at most rank − 1 directions, so that the residuals keep two dimensions to compare in.
  TEST_CASE("center structure: centers in a span of few dimensions keep two of them") {
    const std::int64_t p = 10, n = 30;
    for (std::int64_t rank : {1, 2, 3})
      for (std::uint64_t seed : {1, 2, 3}) {
        CAPTURE(rank);
        CAPTURE(seed);
        const auto a = test::random_values(static_cast<std::size_t>(p * rank), seed);
        const auto b = test::random_values(static_cast<std::size_t>(rank * n), seed + 100);
        Matrix centers{p, n, std::vector<double>(static_cast<std::size_t>(p * n), 0.0)};
        for (std::int64_t i = 0; i < p; ++i)
          for (std::int64_t j = 0; j < n; ++j)
            for (std::int64_t r = 0; r < rank; ++r) centers(i, j) += a[i * rank + r] * b[r * n + j];
        for (std::int64_t j = 0; j < n; ++j) {  // the global mean out, as a layer's centers have it
          double mean = 0;
          for (std::int64_t i = 0; i < p; ++i) mean += centers(i, j) / static_cast<double>(p);
          for (std::int64_t i = 0; i < p; ++i) centers(i, j) -= mean;
        }
        const auto s = find_center_structure(centers, 1);
        CHECK(s.k <= std::max<std::int64_t>(rank - 1, 0));
        CHECK(static_cast<std::int64_t>(s.residual.size()) <= std::max<std::int64_t>(rank - 1, 0));
        CHECK(s.basis.cols == s.k);
        CHECK(std::isfinite(s.correlation_before));
        for (double r : s.residual) CHECK(std::isfinite(r));
      }
  }

  // A fixed K runs the search's own chain of warm-started minimizations up to K, so it finds the
  // search's K-th solution; its residual is checked here from the basis it returns.
  TEST_CASE("center structure: a fixed K removes that many directions, as the search's K-th solution") {
    const std::int64_t p = 10, n = 30;
    Matrix centers{p, n, test::random_values(static_cast<std::size_t>(p * n), 36)};
    const auto u = test::random_values(static_cast<std::size_t>(n), 37), w = test::random_values(static_cast<std::size_t>(n), 38);
    const auto a = test::random_values(static_cast<std::size_t>(p), 39, 2, 4), b = test::random_values(static_cast<std::size_t>(p), 40, -3, 3);
    for (std::int64_t i = 0; i < p; ++i)  // two planted shared directions
      for (std::int64_t j = 0; j < n; ++j) centers(i, j) = 0.3 * centers(i, j) + a[i] * u[j] + b[i] * w[j];
    for (std::int64_t j = 0; j < n; ++j) {
      double mean = 0;
      for (std::int64_t i = 0; i < p; ++i) mean += centers(i, j) / static_cast<double>(p);
      for (std::int64_t i = 0; i < p; ++i) centers(i, j) -= mean;
    }
    const auto searched = find_center_structure(centers, 1);
    REQUIRE(searched.residual.size() >= 4);
    for (std::int64_t k : {1, 2, 3, 4}) {
      CAPTURE(k);
      const auto fixed = find_center_structure(centers, 1, k);
      CHECK(fixed.k == k);
      CHECK(fixed.near_ties.empty());
      CHECK(fixed.correlation_before == searched.correlation_before);
      REQUIRE(fixed.residual.size() == static_cast<std::size_t>(k));
      for (std::int64_t i = 0; i < k; ++i) CHECK(fixed.residual[i] == searched.residual[i]);
      if (k == searched.k) CHECK(fixed.basis.v == searched.basis.v);
      // The centers minus their mean, with span(basis) projected out: their mean |cosine| is the residual.
      REQUIRE(fixed.basis.rows == n);
      REQUIRE(fixed.basis.cols == k);
      std::vector<std::vector<double>> left(static_cast<std::size_t>(p), std::vector<double>(static_cast<std::size_t>(n)));
      for (std::int64_t i = 0; i < p; ++i) {
        for (std::int64_t j = 0; j < n; ++j) left[i][j] = centers(i, j);
        for (std::int64_t c = 0; c < k; ++c) {
          double d = 0;
          for (std::int64_t j = 0; j < n; ++j) d += centers(i, j) * fixed.basis(j, c);
          for (std::int64_t j = 0; j < n; ++j) left[i][j] -= d * fixed.basis(j, c);
        }
      }
      double cosines = 0;
      for (std::int64_t i = 0; i < p; ++i)
        for (std::int64_t m = 0; m < p; ++m) {
          if (i == m) continue;
          double d = 0, ni = 0, nm = 0;
          for (std::int64_t j = 0; j < n; ++j) {
            d += left[i][j] * left[m][j];
            ni += left[i][j] * left[i][j];
            nm += left[m][j] * left[m][j];
          }
          cosines += std::abs(d) / std::sqrt(ni * nm);
        }
      CHECK(fixed.residual.back() == doctest::Approx(cosines / static_cast<double>(p * (p - 1))).epsilon(1e-9));
    }
    // Two planted directions: removing them leaves less correlation than removing one.
    CHECK(find_center_structure(centers, 1, 2).residual.back() < find_center_structure(centers, 1, 1).residual.back());
    CHECK_THROWS_WITH_AS(find_center_structure(centers, 1, -1), doctest::Contains("K must be 0"), Error);
  }

  TEST_CASE("center structure: a fixed K larger than the centers allow removes as many as they do") {
    const std::int64_t p = 5, n = 30;
    Matrix centers{p, n, test::random_values(static_cast<std::size_t>(p * n), 41)};
    CHECK(find_center_structure(centers, 1, 100).k == p - 2);
    // In a layer: the K removed, and a warning that says why it is fewer.
    auto c = clouds(4, 20, 12, 0.4, 5);
    const auto g = analyze_layer(c.x, 12, c.y, 4, 0.0, 100, 3, CenterRemoval::fixed(5));
    CHECK(g.k == 2);
    REQUIRE(g.warnings.size() == 1);
    CHECK(g.warnings[0].find("K is 2, not the 5 asked: 4 class centers allow at most 2 directions") != std::string::npos);
    // Two classes have no structure to remove, whatever K is asked.
    auto two = clouds(2, 20, 12, 0.4, 5);
    const auto g2 = analyze_layer(two.x, 12, two.y, 2, 0.0, 100, 3, CenterRemoval::fixed(1));
    CHECK(g2.k == 0);
    REQUIRE(g2.warnings.size() == 1);
    CHECK(g2.warnings[0].find("K is 0, not the 1 asked: 2 classes") != std::string::npos);
  }

  TEST_CASE("a layer: a fixed K equal to the searched one gives the same geometry to the bit") {
    auto c = clouds(6, 30, 20, 0.5, 8);
    const auto searched = analyze_layer(c.x, 20, c.y, 6, 0.0, 200, 2);
    REQUIRE(searched.k >= 1);
    const auto fixed = analyze_layer(c.x, 20, c.y, 6, 0.0, 200, 2, CenterRemoval::fixed(searched.k));
    CHECK(fixed.k == searched.k);
    CHECK(fixed.capacity == searched.capacity);
    CHECK(fixed.radius == searched.radius);
    CHECK(fixed.dimension == searched.dimension);
    CHECK(fixed.center_correlation == searched.center_correlation);
    const std::int64_t other = searched.k == 1 ? 2 : 1;
    const auto moved = analyze_layer(c.x, 20, c.y, 6, 0.0, 200, 2, CenterRemoval::fixed(other));
    CHECK(moved.k == other);
    CHECK(moved.capacity != searched.capacity);
    CHECK(moved.center_correlation == searched.center_correlation);  // measured before the removal
    CHECK_THROWS_WITH_AS(analyze_layer(c.x, 20, c.y, 6, 0.0, 200, 2, CenterRemoval::fixed(-2)), doctest::Contains("K must be 0"),
                         Error);
  }

  TEST_CASE("center structure: centers that all coincide have none, and no correlation") {
    Matrix centers{10, 30, std::vector<double>(300, 0.25)};
    auto s = find_center_structure(centers, 1);
    CHECK(s.k == 0);
    CHECK(std::isnan(s.correlation_before));
    CHECK(s.basis.cols == 0);
  }
}
