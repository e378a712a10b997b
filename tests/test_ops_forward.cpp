// Every op's forward in f32 and f64 against the float64 reference in kernels/reference.
#include "helpers.h"
#include "kernels/reference/reference.h"

using namespace gs;
using test::check_close;
using test::random_tensor;
using test::Tolerance;

namespace {
// f32 carries ~7 digits: allow a few ulps per accumulated term; f64 is near-exact.
Tolerance tolerance_for(DType d, double terms = 1) {
  return d == DType::f32 ? Tolerance{1e-6 * terms, 1e-5} : Tolerance{1e-13 * terms, 1e-12};
}
}  // namespace

TEST_SUITE("ops_forward") {
  TEST_CASE("matmul and linear, odd sizes") {
    for (DType d : {DType::f32, DType::f64}) {
      for (auto [m, k, n] : std::vector<std::array<std::int64_t, 3>>{{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {64, 1, 31}}) {
        CAPTURE(m);
        CAPTURE(k);
        CAPTURE(n);
        Tensor a = random_tensor(Shape{m, k}, 1, d), b = random_tensor(Shape{k, n}, 2, d);
        check_close(ops::matmul(a, b), reference::matmul(a.to_vector(), b.to_vector(), m, n, k), tolerance_for(d, k),
                    "matmul");
        Tensor w = random_tensor(Shape{n, k}, 3, d), bias = random_tensor(Shape{n}, 4, d);
        auto want = reference::matmul(a.to_vector(), w.to_vector(), m, n, k, false, true);
        auto bv = bias.to_vector();
        check_close(ops::linear(a, w, Tensor()), want, tolerance_for(d, k), "linear without bias");
        for (std::int64_t i = 0; i < m; ++i)
          for (std::int64_t j = 0; j < n; ++j) want[i * n + j] += bv[j];
        check_close(ops::linear(a, w, bias), want, tolerance_for(d, k), "linear");
        // With the activation fused: the same values as the two ops, bit for bit.
        for (auto act : {kernels::Unary::relu, kernels::Unary::tanh, kernels::Unary::sigmoid}) {
          auto fused = ops::linear_activation(a, w, bias, act).to_vector();
          auto apart = ops::linear(a, w, bias);
          apart = act == kernels::Unary::relu ? ops::relu(apart) : act == kernels::Unary::tanh ? ops::tanh(apart) : ops::sigmoid(apart);
          CHECK(fused == apart.to_vector());
          auto with_act = want;
          for (double& v : with_act) v = reference::unary(act, v);
          check_close(ops::linear_activation(a, w, bias, act), with_act, tolerance_for(d, k), "linear_activation");
        }
      }
    }
  }

  TEST_CASE("activations") {
    using kernels::Unary;
    for (DType d : {DType::f32, DType::f64}) {
      Tensor x = random_tensor(Shape{7, 13}, 5, d, -4, 4);
      auto xv = x.to_vector();
      for (auto [op, f] : std::vector<std::pair<Unary, Tensor (*)(const Tensor&)>>{
               {Unary::relu, ops::relu}, {Unary::tanh, ops::tanh}, {Unary::sigmoid, ops::sigmoid}, {Unary::gelu, ops::gelu}}) {
        std::vector<double> want(xv.size());
        for (std::size_t i = 0; i < xv.size(); ++i) want[i] = reference::unary(op, xv[i]);
        check_close(f(x), want, tolerance_for(d), "activation " + std::to_string(static_cast<int>(op)));
      }
    }
  }

  TEST_CASE("relu is 0 at 0 and propagates NaN") {
    Tensor x = Tensor::from(std::vector<double>{0.0, -0.0, std::nan(""), 2.0}, Shape{4}, DType::f32);
    auto y = ops::relu(x).to_vector();
    CHECK(y[0] == 0.0);
    CHECK(y[1] == 0.0);
    CHECK(std::isnan(y[2]));
    CHECK(y[3] == 2.0);
  }

  TEST_CASE("broadcasting add, sub, mul") {
    for (DType d : {DType::f32, DType::f64}) {
      Tensor a = random_tensor(Shape{4, 3, 5}, 6, d);
      Tensor b = random_tensor(Shape{3, 1}, 7, d);
      auto av = a.to_vector(), bv = b.to_vector();
      std::vector<double> sum(av.size()), diff(av.size()), prod(av.size());
      for (std::int64_t i = 0; i < 4; ++i)
        for (std::int64_t j = 0; j < 3; ++j)
          for (std::int64_t k = 0; k < 5; ++k) {
            std::size_t at = (i * 3 + j) * 5 + k;
            sum[at] = av[at] + bv[j];
            diff[at] = av[at] - bv[j];
            prod[at] = av[at] * bv[j];
          }
      check_close(ops::add(a, b), sum, tolerance_for(d), "add");
      check_close(ops::sub(a, b), diff, tolerance_for(d), "sub");
      check_close(ops::mul(a, b), prod, tolerance_for(d), "mul");
      // b - a broadcasts the other way: operand order matters for sub.
      std::vector<double> rdiff(diff.size());
      for (std::size_t i = 0; i < diff.size(); ++i) rdiff[i] = -diff[i];
      check_close(ops::sub(b, a), rdiff, tolerance_for(d), "sub, reversed");
      check_close(ops::scale(a, -2.5), [&] {
        std::vector<double> s(av);
        for (auto& v : s) v *= -2.5;
        return s;
      }(), tolerance_for(d), "scale");
    }
  }

  TEST_CASE("conv2d against direct convolution") {
    struct Case {
      std::int64_t n, c, h, w, co, k, stride, pad;
    };
    for (DType d : {DType::f32, DType::f64})
      for (Case t : {Case{2, 3, 7, 6, 4, 3, 1, 1}, Case{1, 1, 5, 5, 2, 3, 2, 0}, Case{3, 2, 8, 9, 5, 2, 2, 1},
                     Case{1, 4, 4, 4, 3, 1, 1, 0}}) {
        CAPTURE(t.k);
        CAPTURE(t.stride);
        CAPTURE(t.pad);
        Tensor x = random_tensor(Shape{t.n, t.c, t.h, t.w}, 8, d);
        Tensor w = random_tensor(Shape{t.co, t.c, t.k, t.k}, 9, d);
        Tensor b = random_tensor(Shape{t.co}, 10, d);
        auto want = reference::conv2d(x.to_vector(), w.to_vector(), b.to_vector(), t.n, t.c, t.h, t.w, t.co, t.k, t.k,
                                      t.stride, t.pad);
        Tensor y = ops::conv2d(x, w, b, t.stride, t.pad);
        CHECK(y.shape() == Shape{t.n, t.co, (t.h + 2 * t.pad - t.k) / t.stride + 1, (t.w + 2 * t.pad - t.k) / t.stride + 1});
        check_close(y, want, tolerance_for(d, static_cast<double>(t.c * t.k * t.k)), "conv2d");
      }
  }

  TEST_CASE("max_pool2d") {
    for (DType d : {DType::f32, DType::f64}) {
      Tensor x = random_tensor(Shape{2, 3, 7, 6}, 11, d);
      check_close(ops::max_pool2d(x, 2, 2), reference::max_pool2d(x.to_vector(), 6, 7, 6, 2, 2), {0, 0}, "pool 2/2");
      check_close(ops::max_pool2d(x, 3, 1), reference::max_pool2d(x.to_vector(), 6, 7, 6, 3, 1), {0, 0}, "pool 3/1");
    }
  }

  TEST_CASE("log_softmax, cross_entropy and mse") {
    for (DType d : {DType::f32, DType::f64}) {
      Tensor x = random_tensor(Shape{9, 47}, 12, d, -6, 6);
      check_close(ops::log_softmax(x), reference::log_softmax(x.to_vector(), 9, 47), tolerance_for(d, 4), "log_softmax");
      std::vector<std::int32_t> labels{0, 46, 3, 3, 17, 8, 22, 1, 45};
      Tensor y = Tensor::from(labels, Shape{9});
      check_close(ops::cross_entropy(x, y), {reference::cross_entropy(x.to_vector(), labels, 9, 47)}, tolerance_for(d, 4),
                  "cross_entropy");
      Tensor t = random_tensor(Shape{9, 47}, 13, d);
      check_close(ops::mse_loss(x, t), {reference::mse(x.to_vector(), t.to_vector())}, tolerance_for(d, 4), "mse");
    }
  }

  TEST_CASE("mse is the mean over all elements, as torch.nn.MSELoss()") {
    // ((1-0)² + (2-0)² + (3-1)² + (4-1)²) / 4 = (1 + 4 + 4 + 9) / 4 = 4.5, not a per-row mean (9).
    Tensor p = Tensor::from(std::vector<double>{1, 2, 3, 4}, Shape{2, 2}, DType::f64);
    Tensor t = Tensor::from(std::vector<double>{0, 0, 1, 1}, Shape{2, 2}, DType::f64);
    CHECK(ops::mse_loss(p, t).item() == 4.5);
    // Labels {1, 0} are the targets {0, 1, 1, 0}: (1 + 1 + 4 + 16) / 4.
    CHECK(ops::mse_one_hot_loss(p, Tensor::from(std::vector<std::int32_t>{1, 0}, Shape{2})).item() == 5.5);
  }

  TEST_CASE("sum, mean, argmax, accuracy, one_hot") {
    Tensor x = Tensor::from(std::vector<double>{1, 5, 2, 7, 0, 7, -1, -3, -2}, Shape{3, 3}, DType::f32);
    CHECK(ops::sum(x).item() == 16);
    CHECK(ops::mean(x).item() == doctest::Approx(16.0 / 9));
    CHECK(ops::argmax(x).to_int_vector() == std::vector<std::int32_t>{1, 0, 0});  // ties: the first
    Tensor labels = Tensor::from(std::vector<std::int32_t>{1, 2, 0}, Shape{3});
    CHECK(ops::accuracy(x, labels) == doctest::Approx(2.0 / 3));
    CHECK(ops::one_hot(labels, 4).to_vector() == std::vector<double>{0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0});
  }

  TEST_CASE("reshape and flatten keep the elements in order") {
    Tensor x = random_tensor(Shape{2, 3, 4}, 14, DType::f64);
    CHECK(ops::reshape(x, {4, -1}).shape() == Shape{4, 6});
    CHECK(ops::flatten(x).shape() == Shape{2, 12});
    CHECK(ops::flatten(x).to_vector() == x.to_vector());
  }

  TEST_CASE("gather_rows takes whole rows by index, in the indices' order, and names a bad index") {
    Tensor x = random_tensor(Shape{5, 2, 3}, 15, DType::f32);
    const auto xv = x.to_vector();
    Tensor picked = ops::gather_rows(x, Tensor::from(std::vector<std::int32_t>{4, 0, 4}, Shape{3}));
    CHECK(picked.shape() == Shape{3, 2, 3});
    CHECK(picked.dtype() == DType::f32);
    std::vector<double> want(xv.begin() + 24, xv.end());
    want.insert(want.end(), xv.begin(), xv.begin() + 6);
    want.insert(want.end(), xv.begin() + 24, xv.end());
    CHECK(picked.to_vector() == want);
    Tensor labels = Tensor::from(std::vector<std::int32_t>{7, 8, 9}, Shape{3});
    CHECK(ops::gather_rows(labels, Tensor::from(std::vector<std::int32_t>{2, 1}, Shape{2})).to_int_vector() ==
          std::vector<std::int32_t>{9, 8});
    CHECK(ops::gather_rows(x, Tensor::from(std::vector<std::int32_t>{}, Shape{0})).shape() == Shape{0, 2, 3});
    CHECK_THROWS_WITH_AS(ops::gather_rows(x, Tensor::from(std::vector<std::int32_t>{1, 5}, Shape{2})),
                         doctest::Contains("gather_rows: index 5 at position 1 is out of range for 5 rows"), Error);
    CHECK_THROWS_WITH_AS(ops::gather_rows(x, Tensor::from(std::vector<double>{1}, Shape{1})),
                         doctest::Contains("gather_rows: indices must be i32[m]"), Error);
  }
}

#include "backend_checks.h"

TEST_SUITE("ops_forward") {
  TEST_CASE("the cpu backend's kernels against the reference (the checks the gpu suite runs on cuda)") {
    test::check_backend_kernels(Device::cpu);
  }
}
