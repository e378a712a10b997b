// The NTK probe against brute force (J materialized through the tape, J Jᵀ), J against finite
// differences, and the kernel's and the distance's properties.
#include <lapacke.h>
#include <omp.h>

#include "engine/probe/ntk.h"
#include "engine/probe/ntk_products.h"
#include "engine/probe/ntk_stream.h"
#include "helpers.h"
#include "engine/init.h"
#include "models/models.h"

using namespace gs;
using namespace gs::probe;

namespace {

std::shared_ptr<nn::Sequential> tiny_mlp(nn::Activation act, DType dtype, double output_scale = 0.5, std::uint64_t seed = 1) {
  Generator gen(seed);
  auto net = models::make_mlp({{6, 5, 4, 3}, act, 1.5, output_scale}, gen);
  net->to(dtype);
  return net;
}

double relative_frobenius(const Tensor& a, const Tensor& b) {
  auto av = a.to_vector(), bv = b.to_vector();
  double num = 0, den = 0;
  for (std::size_t i = 0; i < av.size(); ++i) {
    num += (av[i] - bv[i]) * (av[i] - bv[i]);
    den += bv[i] * bv[i];
  }
  return std::sqrt(num / den);
}

std::vector<double> eigenvalues(const Tensor& k) {
  auto a = k.to_vector();
  const int n = static_cast<int>(k.size(0));
  std::vector<double> w(static_cast<std::size_t>(n));
  REQUIRE(LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'N', 'U', n, a.data(), n, w.data()) == 0);
  return w;
}

// Columns [begin, end) of J: one layer's parameters.
Tensor columns(const Tensor& j, std::int64_t begin, std::int64_t end) {
  auto v = j.to_vector();
  const std::int64_t rows = j.size(0), cols = j.size(1);
  std::vector<double> out;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = begin; c < end; ++c) out.push_back(v[r * cols + c]);
  return Tensor::from(out, Shape{rows, end - begin}, DType::f64);
}

Tensor gram_rows(const Tensor& j) {
  // J Jᵀ by the naive definition, in f64.
  auto v = j.to_vector();
  const std::int64_t rows = j.size(0), cols = j.size(1);
  std::vector<double> k(static_cast<std::size_t>(rows * rows), 0.0);
  for (std::int64_t a = 0; a < rows; ++a)
    for (std::int64_t b = 0; b < rows; ++b) {
      double s = 0;
      for (std::int64_t c = 0; c < cols; ++c) s += v[a * cols + c] * v[b * cols + c];
      k[a * rows + b] = s;
    }
  return Tensor::from(k, Shape{rows, rows}, DType::f64);
}

// Every column of J (one parameter) against central differences of the outputs, in f64.
void check_jacobian_by_finite_differences(nn::Sequential& net, const Tensor& x, const Tensor& j) {
  auto jv = j.to_vector();
  std::int64_t col = 0;
  NoGrad no_tape;
  for (auto& [name, p] : net.named_parameters()) {
    double* w = Tensor(p).data<double>();
    for (std::int64_t e = 0; e < p.numel(); ++e, ++col) {
      const double saved = w[e], h = 1e-6;
      w[e] = saved + h;
      auto up = net.forward(x).to_vector();
      w[e] = saved - h;
      auto down = net.forward(x).to_vector();
      w[e] = saved;
      for (std::size_t r = 0; r < up.size(); ++r)
        CHECK(jv[r * static_cast<std::size_t>(j.size(1)) + static_cast<std::size_t>(col)] ==
              doctest::Approx((up[r] - down[r]) / (2 * h)).epsilon(1e-6).scale(1e-3));
    }
  }
}

}  // namespace

TEST_SUITE("ntk") {
  TEST_CASE("the brute-force Jacobian matches central finite differences (tanh MLP, f64)") {
    auto net = tiny_mlp(nn::Activation::tanh, DType::f64);
    Tensor x = test::random_tensor(Shape{3, 6}, 2);
    Tensor j = brute_force_jacobian(*net, x);
    CHECK(j.shape() == Shape{9, net->parameter_count()});
    check_jacobian_by_finite_differences(*net, x, j);
  }

  TEST_CASE("the brute-force Jacobian of a small CNN matches central finite differences (tanh, f64)") {
    Generator gen(20);
    auto net = std::make_shared<nn::Sequential>();
    net->add(std::make_shared<nn::Conv2d>(1, 2, 3, gen, 1, 1, true, DType::f64));
    net->add(std::make_shared<nn::ActivationLayer>(nn::Activation::tanh));
    net->add(std::make_shared<nn::MaxPool2d>(2));
    net->add(std::make_shared<nn::Flatten>());
    net->add(std::make_shared<nn::Linear>(2 * 3 * 3, 3, gen, true, DType::f64));
    Tensor x = test::random_tensor(Shape{2, 1, 6, 6}, 21);
    Tensor j = brute_force_jacobian(*net, x);
    check_jacobian_by_finite_differences(*net, x, j);
  }

  TEST_CASE("the factored kernel equals J Jᵀ, layer by layer, to 1e-12 in f64") {
    for (auto act : {nn::Activation::relu, nn::Activation::tanh, nn::Activation::gelu}) {
      CAPTURE(nn::activation_name(act));
      auto net = tiny_mlp(act, DType::f64);
      Tensor x = test::random_tensor(Shape{4, 6}, 3);
      Ntk k = empirical_ntk(*net, x, {.per_layer = true});
      Tensor j = brute_force_jacobian(*net, x);
      CHECK(relative_frobenius(k.kernel, gram_rows(j)) < 1e-12);
      REQUIRE(k.per_layer.size() == 3);
      std::int64_t begin = 0;
      for (std::size_t l = 0; l < 3; ++l) {
        const std::int64_t size = net->named_parameters()[2 * l].second.numel() + net->named_parameters()[2 * l + 1].second.numel();
        CAPTURE(l);
        CHECK(relative_frobenius(k.per_layer[l], gram_rows(columns(j, begin, begin + size))) < 1e-12);
        begin += size;
      }
      CHECK(k.layer_names == std::vector<std::string>{"layers.1", "layers.3", "layers.5"});
      for (std::size_t l = 0; l < 3; ++l) CHECK(k.layer_traces[l] == doctest::Approx(trace(k.per_layer[l])).epsilon(1e-12));
      // The output layer's block is output_gram ⊗ I_C.
      auto og = k.output_gram.to_vector(), last = k.per_layer[2].to_vector();
      for (std::int64_t r = 0; r < 12; ++r)
        for (std::int64_t q = 0; q < 12; ++q)
          CHECK(last[static_cast<std::size_t>(r * 12 + q)] ==
                doctest::Approx(r % 3 == q % 3 ? og[static_cast<std::size_t>((r / 3) * 4 + q / 3)] : 0.0).epsilon(1e-13));
    }
  }

  // A tile's first layer writes its block instead of adding it (no fill); a network whose first
  // layer is its output layer, which adds to the diagonal entries alone, has its tiles filled first.
  TEST_CASE("a linear model's kernel, materialized and streamed, equals J Jᵀ") {
    Generator gen(4);
    auto net = models::make_mlp({{6, 3}, nn::Activation::relu, 1.5, 0.5}, gen);
    net->to(DType::f64);
    Tensor x = test::random_tensor(Shape{5, 6}, 5);
    const Tensor want = gram_rows(brute_force_jacobian(*net, x));
    for (std::int64_t tile : {1, 2, 64}) {
      CAPTURE(tile);
      CHECK(relative_frobenius(empirical_ntk(*net, x, {.tile_samples = tile}).kernel, want) < 1e-13);
      const auto f = kernel_factors(*net, x);
      const auto s = compare_streamed(f, f, tile);
      CHECK(std::sqrt(s.norm2_a) == doctest::Approx(frobenius_norm(want)).epsilon(1e-13));
      CHECK(s.inner == doctest::Approx(s.norm2_a).epsilon(1e-15));
    }
  }

  TEST_CASE("any tiling gives the same kernel") {
    auto net = tiny_mlp(nn::Activation::relu, DType::f64);
    Tensor x = test::random_tensor(Shape{7, 6}, 9);
    Tensor whole = empirical_ntk(*net, x, {.tile_samples = 64}).kernel;
    for (std::int64_t tile : {1, 2, 3, 5}) {
      CAPTURE(tile);
      CHECK(relative_frobenius(empirical_ntk(*net, x, {.tile_samples = tile}).kernel, whole) < 1e-15);
    }
  }

  TEST_CASE("f32 agrees with f64 to 1e-5; the kernel is symmetric and PSD; trace kernel sums the diagonal blocks") {
    auto net64 = tiny_mlp(nn::Activation::relu, DType::f64), net32 = tiny_mlp(nn::Activation::relu, DType::f32);
    Tensor x = test::random_tensor(Shape{5, 6}, 4);
    Ntk k64 = empirical_ntk(*net64, x), k32 = empirical_ntk(*net32, x.to(DType::f32));
    CHECK(relative_frobenius(k32.kernel, k64.kernel) < 1e-5);
    auto kv = k64.kernel.to_vector();
    const std::int64_t rows = 15;
    for (std::int64_t a = 0; a < rows; ++a)
      for (std::int64_t b = 0; b < rows; ++b) CHECK(kv[a * rows + b] == doctest::Approx(kv[b * rows + a]).epsilon(1e-14));
    auto w = eigenvalues(k64.kernel);
    CHECK(w.front() >= -1e-6 * w.back());
    Tensor t = trace_kernel(k64.kernel, 3);
    auto tv = t.to_vector();
    for (std::int64_t i = 0; i < 5; ++i)
      for (std::int64_t j = 0; j < 5; ++j) {
        double s = 0;
        for (int a = 0; a < 3; ++a) s += kv[(i * 3 + a) * rows + j * 3 + a];
        CHECK(tv[i * 5 + j] == doctest::Approx(s).epsilon(1e-14));
      }
    CHECK(trace(t) == doctest::Approx(trace(k64.kernel)).epsilon(1e-14));
  }

  TEST_CASE("permuting the inputs permutes the kernel") {
    auto net = tiny_mlp(nn::Activation::relu, DType::f64);
    Tensor x = test::random_tensor(Shape{4, 6}, 5);
    const std::vector<std::int64_t> perm{2, 0, 3, 1};
    std::vector<double> xp;
    auto xv = x.to_vector();
    for (auto p : perm) xp.insert(xp.end(), xv.begin() + p * 6, xv.begin() + (p + 1) * 6);
    auto k = empirical_ntk(*net, x).kernel.to_vector();
    auto kp = empirical_ntk(*net, Tensor::from(xp, Shape{4, 6}, DType::f64)).kernel.to_vector();
    for (std::int64_t i = 0; i < 4; ++i)
      for (std::int64_t j = 0; j < 4; ++j)
        for (int a = 0; a < 3; ++a)
          for (int b = 0; b < 3; ++b)
            CHECK(kp[(i * 3 + a) * 12 + j * 3 + b] == doctest::Approx(k[(perm[i] * 3 + a) * 12 + perm[j] * 3 + b]).epsilon(1e-13));
  }

  TEST_CASE("kernel distance: zero for K and cK, symmetric, accurate to 1e-4 relative down to 1e-6") {
    auto net = tiny_mlp(nn::Activation::tanh, DType::f64);
    Tensor x = test::random_tensor(Shape{6, 6}, 6);
    Tensor k = empirical_ntk(*net, x).kernel;
    CHECK(kernel_distance(k, k) == 0.0);
    CHECK(kernel_distance(k, ops::scale(k, 3.7)) < 1e-15);
    auto params = net->parameters();
    auto direction = test::random_values(static_cast<std::size_t>(net->parameter_count()), 7);
    std::vector<std::vector<double>> original;
    for (auto& p : params) original.push_back(p.to_vector());
    for (double eps : {1e-1, 1e-2, 1e-3, 3e-4, 1e-4}) {
      CAPTURE(eps);
      std::size_t at = 0;
      for (std::size_t q = 0; q < params.size(); ++q) {
        double* w = Tensor(params[q]).data<double>();
        for (std::int64_t e = 0; e < params[q].numel(); ++e) w[e] = original[q][static_cast<std::size_t>(e)] + eps * direction[at++];
      }
      Tensor k2 = empirical_ntk(*net, x).kernel;
      const double d = kernel_distance(k, k2);
      // Reference: 1 − cos in 80-bit long double from the same f64 kernels.
      auto a = k.to_vector(), b = k2.to_vector();
      long double ab = 0, aa = 0, bb = 0;
      for (std::size_t i = 0; i < a.size(); ++i) {
        ab += static_cast<long double>(a[i]) * b[i];
        aa += static_cast<long double>(a[i]) * a[i];
        bb += static_cast<long double>(b[i]) * b[i];
      }
      const double want = static_cast<double>(1.0L - ab / std::sqrt(aa * bb));
      CHECK(d == doctest::Approx(want).epsilon(1e-4));
      CHECK(kernel_distance(k2, k) == doctest::Approx(d).epsilon(1e-12));
      if (eps == 1e-4) CHECK(d < 2e-6);  // the sweep reaches the small distances it claims
    }
  }

  // The runner's pairwise matrix over every probe step's kernel: one blocked pass, the same sums.
  TEST_CASE("pairwise kernel distances: each pair's distance bit for bit, the reference's to 1e-12, for any thread count") {
    for (DType dt : {DType::f32, DType::f64})
      for (std::int64_t n : {37, 70001}) {  // below and above the size that sums in parallel
        CAPTURE(dtype_name(dt));
        CAPTURE(n);
        std::vector<Tensor> kernels;
        for (std::uint64_t seed = 1; seed <= 5; ++seed) kernels.push_back(test::random_tensor(Shape{n}, seed, dt));
        // One pair close together, as consecutive probe steps are: a distance near 1e-9.
        auto near = kernels[0].to_vector(), step = test::random_values(static_cast<std::size_t>(n), 9);
        for (std::size_t i = 0; i < near.size(); ++i) near[i] += 5e-5 * step[i];
        kernels.push_back(Tensor::from(near, Shape{n}, dt));
        std::vector<double> norms;
        for (const Tensor& k : kernels) norms.push_back(frobenius_norm(k));
        const std::vector<double> d = kernel_distances(kernels, norms);
        const std::size_t count = kernels.size();
        REQUIRE(d.size() == count * count);
        for (std::size_t a = 0; a < count; ++a)
          for (std::size_t b = 0; b < count; ++b) {
            CAPTURE(a);
            CAPTURE(b);
            if (a == b) {
              CHECK(d[a * count + b] == 0.0);
              continue;
            }
            CHECK(d[a * count + b] == d[b * count + a]);
            if (a < b) CHECK(d[a * count + b] == kernel_distance(kernels[a], norms[a], kernels[b], norms[b]));
            // ½ Σ (x/‖x‖ − y/‖y‖)² in long double from the same values.
            const auto x = kernels[a].to_vector(), y = kernels[b].to_vector();
            long double xx = 0, yy = 0, dd = 0;
            for (std::size_t i = 0; i < x.size(); ++i) xx += static_cast<long double>(x[i]) * x[i], yy += static_cast<long double>(y[i]) * y[i];
            for (std::size_t i = 0; i < x.size(); ++i) {
              const long double e = x[i] / std::sqrt(xx) - y[i] / std::sqrt(yy);
              dd += e * e;
            }
            CHECK(d[a * count + b] == doctest::Approx(static_cast<double>(dd / 2)).epsilon(1e-12));
          }
        if (n > 1000) CHECK(d[0 * count + count - 1] < 1e-8);  // the close pair is as close as meant
        const int threads = omp_get_max_threads();
        omp_set_num_threads(1);
        const std::vector<double> alone = kernel_distances(kernels, norms);
        omp_set_num_threads(threads);
        CHECK(alone == d);
      }
  }

  // The kernel of a network part whose units have all died is zero: it has no direction, and its
  // distances are NaN rather than an error that would end the run probing it.
  TEST_CASE("kernel distances: NaN in the row and column of a zero kernel, the others unchanged") {
    std::vector<Tensor> kernels{test::random_tensor(Shape{300}, 1, DType::f32), Tensor::zeros(Shape{300}, DType::f32),
                                test::random_tensor(Shape{300}, 2, DType::f32)};
    std::vector<double> norms;
    for (const Tensor& k : kernels) norms.push_back(frobenius_norm(k));
    REQUIRE(norms[1] == 0.0);
    const auto d = kernel_distances(kernels, norms);
    for (std::size_t j = 0; j < 3; ++j) {
      CHECK(std::isnan(d[1 * 3 + j]));
      CHECK(std::isnan(d[j * 3 + 1]));
    }
    CHECK(d[0 * 3 + 2] == kernel_distance(kernels[0], norms[0], kernels[2], norms[2]));
    CHECK(d[0] == 0.0);
    CHECK(std::isnan(kernel_distance(kernels[0], kernels[1])));
    CHECK_THROWS_WITH_AS(kernel_distances(kernels, {1.0, -1.0, 1.0}), doctest::Contains("norm is given as -1"), Error);
  }

  TEST_CASE("alignment with the centred one-hot labels: 1 for the target kernel itself") {
    Tensor labels = Tensor::from(std::vector<std::int32_t>{0, 2, 1, 2}, Shape{4});
    std::vector<double> y;
    for (int i : {0, 2, 1, 2})
      for (int a = 0; a < 3; ++a) y.push_back((i == a ? 1.0 : 0.0) - 1.0 / 3);
    std::vector<double> yy;
    for (double p : y)
      for (double q : y) yy.push_back(p * q);
    CHECK(kernel_alignment(Tensor::from(yy, Shape{12, 12}, DType::f64), labels, 3) == doctest::Approx(1.0).epsilon(1e-14));
    std::vector<double> eye(144, 0.0);
    for (int i = 0; i < 12; ++i) eye[static_cast<std::size_t>(i * 13)] = 1.0;
    // ⟨I, YYᵀ⟩ = ‖Y‖², ‖I‖ = √12: alignment = ‖Y‖² / (√12 ‖Y‖²) = 1/√12.
    CHECK(kernel_alignment(Tensor::from(eye, Shape{12, 12}, DType::f64), labels, 3) == doctest::Approx(1 / std::sqrt(12.0)));
  }

  TEST_CASE("convolutions and pooling: the factored kernel equals J Jᵀ, layer by layer, in f64") {
    struct Case {
      std::int64_t stride, padding;
      nn::Activation act;
    };
    for (Case t : {Case{1, 1, nn::Activation::relu}, Case{2, 0, nn::Activation::tanh}, Case{1, 0, nn::Activation::gelu}}) {
      CAPTURE(t.stride);
      CAPTURE(t.padding);
      Generator gen(11);
      auto net = std::make_shared<nn::Sequential>();
      net->add(std::make_shared<nn::Conv2d>(2, 3, 3, gen, t.stride, t.padding, true, DType::f64));
      net->add(std::make_shared<nn::ActivationLayer>(t.act));
      net->add(std::make_shared<nn::MaxPool2d>(2));
      net->add(std::make_shared<nn::Conv2d>(3, 2, 2, gen, 1, 1, true, DType::f64));
      net->add(std::make_shared<nn::ActivationLayer>(t.act));
      net->add(std::make_shared<nn::Flatten>());
      Tensor x = test::random_tensor(Shape{3, 2, 9, 9}, 12);
      std::int64_t features = 0;
      {
        NoGrad no_tape;
        features = net->forward(x).size(1);
      }
      net->add(std::make_shared<nn::Linear>(features, 4, gen, true, DType::f64));
      net->add(std::make_shared<nn::Scale>(0.7));
      Ntk k = empirical_ntk(*net, x, {.per_layer = true, .tile_samples = 2});
      Tensor j = brute_force_jacobian(*net, x);
      CHECK(relative_frobenius(k.kernel, gram_rows(j)) < 1e-12);
      REQUIRE(k.per_layer.size() == 3);
      CHECK(k.layer_names == std::vector<std::string>{"layers.0", "layers.3", "layers.6"});
      std::int64_t begin = 0;
      auto named = net->named_parameters();
      for (std::size_t l = 0; l < 3; ++l) {
        CAPTURE(l);
        const std::int64_t size = named[2 * l].second.numel() + named[2 * l + 1].second.numel();
        CHECK(relative_frobenius(k.per_layer[l], gram_rows(columns(j, begin, begin + size))) < 1e-12);
        CHECK(k.layer_traces[l] == doctest::Approx(trace(k.per_layer[l])).epsilon(1e-12));
        begin += size;
      }
    }
  }

  TEST_CASE("the study's CNN: f32 probe against the f64 brute force") {
    Generator gen(13);
    auto cnn = models::make_cnn({1, 8, 3}, gen);
    Tensor x = test::random_tensor(Shape{3, 1, 8, 8}, 14, DType::f32, 0, 1);
    Tensor k32 = empirical_ntk(*cnn, x).kernel;
    cnn->to(DType::f64);
    Tensor k64 = gram_rows(brute_force_jacobian(*cnn, x.to(DType::f64)));
    CHECK(relative_frobenius(k32, k64) < 1e-5);
  }

  TEST_CASE("the streamed comparison equals the materialized one, for MLPs and CNNs, at any tiling") {
    Tensor x = test::random_tensor(Shape{7, 6}, 15);
    auto before = tiny_mlp(nn::Activation::relu, DType::f64, 0.5, 1), after = tiny_mlp(nn::Activation::relu, DType::f64, 0.5, 2);
    Tensor ka = empirical_ntk(*before, x).kernel, kb = empirical_ntk(*after, x).kernel;
    auto fa = kernel_factors(*before, x), fb = kernel_factors(*after, x);
    for (auto method : {StreamedMethod::cheaper, StreamedMethod::tiles, StreamedMethod::sample_products})
      for (std::int64_t tile : {0, 1, 3, 64}) {  // 0: the device's choice
        CAPTURE(static_cast<int>(method));
        CAPTURE(tile);
        auto s = compare_streamed(fa, fb, tile, method);
        CHECK(std::sqrt(s.norm2_a) == doctest::Approx(frobenius_norm(ka)).epsilon(1e-12));
        CHECK(std::sqrt(s.norm2_b) == doctest::Approx(frobenius_norm(kb)).epsilon(1e-12));
        CHECK(s.distance() == doctest::Approx(kernel_distance(ka, kb)).epsilon(1e-9));
      }
    CHECK(std::abs(compare_streamed(fa, fa, 0, StreamedMethod::sample_products).distance()) < 1e-15);
    // A reference's kept ‖K‖² stands in for its products (a norm costs them a comparison); the
    // tiles compute theirs along the way.
    auto kept = fb;
    kept.norm2 = 123.0;
    CHECK(compare_streamed(fa, kept, 0, StreamedMethod::sample_products).norm2_b == 123.0);
    CHECK(compare_streamed(fa, kept, 0, StreamedMethod::tiles).norm2_b == doctest::Approx(frobenius_norm(kb) * frobenius_norm(kb)).epsilon(1e-12));
    // Chunks of M_lm(i)'s rows and bands of the Gram, partial ones included, sum as one pass does.
    const double whole = products::inner(fa, fb), norm = products::inner(fa, fa);
    for (products::Blocking blocking : {products::Blocking{1, 1}, products::Blocking{7, 3}, products::Blocking{13, 2}}) {
      CAPTURE(blocking.chunk_depth);
      CAPTURE(blocking.band_rows);
      CHECK(products::inner(fa, fb, blocking) == doctest::Approx(whole).epsilon(1e-13));
      CHECK(products::inner(fa, fa, blocking) == doctest::Approx(norm).epsilon(1e-13));
    }
    CHECK(std::abs(compare_streamed(fa, fa).distance()) < 1e-15);
    auto og = output_gram(fa).to_vector(), want = empirical_ntk(*before, x).output_gram.to_vector();
    for (std::size_t q = 0; q < og.size(); ++q) CHECK(og[q] == doctest::Approx(want[q]).epsilon(1e-14));
    Generator gen(16);
    auto cnn = models::make_cnn({1, 8, 3}, gen);
    Tensor xi = test::random_tensor(Shape{5, 1, 8, 8}, 17, DType::f32, 0, 1);
    Tensor k1 = empirical_ntk(*cnn, xi).kernel;
    auto f1 = kernel_factors(*cnn, xi);
    init::scale_parameters(*cnn, 1.1);
    Tensor k2 = empirical_ntk(*cnn, xi).kernel;
    auto f2 = kernel_factors(*cnn, xi);
    CHECK(compare_streamed(f1, f2, 2).distance() == doctest::Approx(kernel_distance(k1, k2)).epsilon(1e-4).scale(1e-7));
    CHECK_THROWS_WITH_AS(compare_streamed(f1, f2, 0, StreamedMethod::sample_products),
                         doctest::Contains("sample products need dense layers; layers.0 is a convolution"), Error);
  }

  // The per-sample products sum up to 16384 f32 products per Gram entry (the tiles: one layer's
  // width), then weight and add the entries in f64. Against the f64 tiles, on an MLP with many
  // logits for its widths (the case the products are chosen for), in f32.
  TEST_CASE("sample products in f32 agree with f64 tiles; they are chosen where they take fewer operations") {
    Generator gen(21);
    auto net = models::make_mlp({{30, 24, 64, 20}, nn::Activation::relu, 2.0, 1.0}, gen);
    Tensor x = test::random_tensor(Shape{45, 30}, 22, DType::f32, 0, 1);
    auto f32_before = kernel_factors(*net, x);
    init::scale_parameters(*net, 1.02);
    auto f32_after = kernel_factors(*net, x);
    net->to(DType::f64);
    auto f64_after = kernel_factors(*net, x.to(DType::f64));
    init::scale_parameters(*net, 1 / 1.02);
    auto f64_before = kernel_factors(*net, x.to(DType::f64));
    const auto want = compare_streamed(f64_before, f64_after, 0, StreamedMethod::tiles);
    const auto got = compare_streamed(f32_before, f32_after, 0, StreamedMethod::sample_products);
    CHECK(got.norm2_a == doctest::Approx(want.norm2_a).epsilon(1e-6));
    CHECK(got.norm2_b == doctest::Approx(want.norm2_b).epsilon(1e-6));
    CHECK(got.inner == doctest::Approx(want.inner).epsilon(1e-6));
    CHECK(want.distance() > 1e-4);
    CHECK(got.distance() == doctest::Approx(want.distance()).epsilon(1e-3));
    // The choice: EMNIST's MLP (47 logits) takes the products, the MNIST MLP and CNNs the tiles.
    Generator g2(23);
    auto emnist = models::make_mlp({{784, 128, 512, 128, 47}, nn::Activation::relu, 1.0, 1.0}, g2);
    auto mnist = models::make_mlp({{784, 200, 200, 10}, nn::Activation::relu, 1.0, 1.0}, g2);
    const Tensor images = test::random_tensor(Shape{2, 784}, 24, DType::f32, 0, 1);
    const auto emnist_factors = kernel_factors(*emnist, images), mnist_factors = kernel_factors(*mnist, images);
    for (std::size_t references : {0, 1, 2}) {
      CAPTURE(references);
      CHECK(products::cheaper(emnist_factors, references));
      CHECK_FALSE(products::cheaper(mnist_factors, references));
    }
    auto cnn = models::make_cnn({1, 8, 3}, g2);
    CHECK_FALSE(products::cheaper(kernel_factors(*cnn, test::random_tensor(Shape{2, 1, 8, 8}, 25, DType::f32, 0, 1)), 2));
  }

  TEST_CASE("a streamed comparison's tiles: about 768 rows on the CPU, 64 samples on a GPU, or as asked") {
    CHECK(streamed_tile_samples(Device::cpu, 47) == 16);  // EMNIST: 752 rows
    CHECK(streamed_tile_samples(Device::cpu, 10) == 76);
    CHECK(streamed_tile_samples(Device::cpu, 1000) == 1);
    CHECK(streamed_tile_samples(Device::cuda, 47) == 64);
    const auto f = kernel_factors(*tiny_mlp(nn::Activation::relu, DType::f64), test::random_tensor(Shape{3, 6}, 20));
    CHECK_THROWS_WITH_AS(compare_streamed(f, f, -1), doctest::Contains("tile_samples must be at least 1, or 0"), Error);
  }

  TEST_CASE("streamed companions: trace kernel, alignment, several references at once") {
    Generator gen(18);
    auto cnn = models::make_cnn({1, 8, 3, 1.0, 0.5}, gen);
    cnn->to(DType::f64);
    Tensor x = test::random_tensor(Shape{6, 1, 8, 8}, 19, DType::f64, 0, 1);
    Tensor labels = Tensor::from(std::vector<std::int32_t>{0, 1, 2, 2, 1, 0}, Shape{6});
    double yy = 0;
    for (int i : {0, 1, 2, 2, 1, 0})
      for (int a = 0; a < 3; ++a) yy += std::pow((i == a ? 1.0 : 0.0) - 1.0 / 3, 2);
    // Each layer's trace kernel against the per-logit trace of that layer's held block, and the
    // alignment's numerator against the held kernel's alignment: a CNN (convolutions' plain
    // Grams, dense layers, the output block) and an MLP of three dense layers.
    auto mlp = tiny_mlp(nn::Activation::tanh, DType::f64);
    Tensor x_mlp = test::random_tensor(Shape{6, 6}, 20);
    for (bool cnn_case : {true, false}) {
      CAPTURE(cnn_case);
      nn::Sequential& net = cnn_case ? *cnn : *mlp;
      const Tensor& xs = cnn_case ? x : x_mlp;
      Ntk held = empirical_ntk(net, xs, {.per_layer = true});
      auto f = kernel_factors(net, xs);
      const auto layers = probe::layer_trace_kernels(f);
      REQUIRE(layers.size() == held.per_layer.size());
      for (std::size_t l = 0; l < layers.size(); ++l) {
        CAPTURE(l);
        CHECK(layers[l].shape() == Shape{6, 6});
        test::check_close(layers[l], probe::trace_kernel(held.per_layer[l], 3).to_vector(), {1e-13, 1e-12},
                          "a layer's trace kernel");
        CHECK(trace(layers[l]) == doctest::Approx(held.layer_traces[l]).epsilon(1e-12));
      }
      auto t = probe::trace_kernel(f).to_vector(), want = probe::trace_kernel(held.kernel, 3).to_vector();
      for (std::size_t q = 0; q < t.size(); ++q) CHECK(t[q] == doctest::Approx(want[q]).epsilon(1e-12));
      const double alignment = kernel_alignment(held.kernel, labels, 3);
      CHECK(std::abs(alignment) > 1e-3);  // not a vacuous zero
      CHECK(target_quadratic_form(f, labels) / (frobenius_norm(held.kernel) * yy) == doctest::Approx(alignment).epsilon(1e-12));
    }
    Tensor k = empirical_ntk(*cnn, x).kernel;
    auto f = kernel_factors(*cnn, x);
    init::scale_parameters(*cnn, 1.05);
    Tensor k2 = empirical_ntk(*cnn, x).kernel;
    auto f2 = kernel_factors(*cnn, x);
    init::scale_parameters(*cnn, 1.05);
    Tensor k3 = empirical_ntk(*cnn, x).kernel;
    auto f3 = kernel_factors(*cnn, x);
    auto sums = compare_streamed(f3, {&f, &f2}, 4);
    CHECK(1 - sums.inner[0] / std::sqrt(sums.norm2 * sums.norm2_ref[0]) == doctest::Approx(kernel_distance(k3, k)).epsilon(1e-8));
    CHECK(1 - sums.inner[1] / std::sqrt(sums.norm2 * sums.norm2_ref[1]) == doctest::Approx(kernel_distance(k3, k2)).epsilon(1e-8));
    // The input Grams are the factors' own, computed once by kernel_factors: without them the
    // streamed functions say where factors come from instead of reading past the end.
    CHECK(f3.input_grams.size() == f3.layers.size());
    f2.input_grams.clear();
    CHECK_THROWS_WITH_AS(compare_streamed(f3, f2), doctest::Contains("build them with kernel_factors"), Error);
    CHECK_THROWS_WITH_AS(probe::trace_kernel(f2), doctest::Contains("0 input Grams for"), Error);
  }

  TEST_CASE("unsupported layers are named") {
    struct Odd final : nn::Module {
      Tensor forward(const Tensor& x) override { return x; }
      std::string describe() const override { return "Odd()"; }
    };
    Generator gen(1);
    auto net = std::make_shared<nn::Sequential>();
    net->add(std::make_shared<nn::Linear>(4, 3, gen));
    net->add(std::make_shared<Odd>());
    CHECK_THROWS_WITH_AS(empirical_ntk(*net, test::random_tensor(Shape{2, 4}, 8, DType::f32)),
                         doctest::Contains("Odd() is not supported"), Error);
  }
}
