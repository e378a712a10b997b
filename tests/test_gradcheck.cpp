// Every op's backward against central finite differences in float64. ReLU's kink at 0 and
// max-pool's ties are avoided by drawing inputs away from them (ggml's allow-list, by construction).
#include <algorithm>

#include "helpers.h"

using namespace gs;
using test::check_gradients;
using test::random_tensor;
using Inputs = std::vector<Tensor>;

namespace {
// Values in ±[0.1, 1]: no input sits within a finite-difference step of ReLU's kink.
Tensor away_from_zero(const Shape& s, std::uint64_t seed) {
  Tensor t = random_tensor(s, seed, DType::f64, 0.1, 1.0);
  auto signs = test::random_values(static_cast<std::size_t>(s.numel()), seed + 1000);
  double* p = t.data<double>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] *= signs[i] < 0 ? -1 : 1;
  return t;
}
}  // namespace

TEST_SUITE("gradcheck") {
  TEST_CASE("matmul") {
    check_gradients({random_tensor(Shape{3, 4}, 1), random_tensor(Shape{4, 5}, 2)},
                    [](const Inputs& x) { return ops::matmul(x[0], x[1]); }, "matmul");
  }

  TEST_CASE("linear, with and without bias") {
    check_gradients({random_tensor(Shape{5, 4}, 3), random_tensor(Shape{3, 4}, 4), random_tensor(Shape{3}, 5)},
                    [](const Inputs& x) { return ops::linear(x[0], x[1], x[2]); }, "linear");
    check_gradients({random_tensor(Shape{5, 4}, 6), random_tensor(Shape{3, 4}, 7)},
                    [](const Inputs& x) { return ops::linear(x[0], x[1], Tensor()); }, "linear without bias");
  }

  TEST_CASE("linear with a fused activation: relu, tanh, sigmoid") {
    // For relu, pre-activations away from its kink, half of them below it: with the bias, |x·w|
    // ≤ 1 and biases ±3; without, x > 0 and each weight row of one sign.
    auto biased = [](std::uint64_t seed) {
      return std::vector<Tensor>{random_tensor(Shape{5, 4}, seed, DType::f64, -0.5, 0.5),
                                 random_tensor(Shape{3, 4}, seed + 1, DType::f64, -0.5, 0.5),
                                 Tensor::from(std::vector<double>{3, -3, 3}, Shape{3}, DType::f64)};
    };
    auto unbiased = [](std::uint64_t seed) {
      auto w = test::random_values(12, seed + 1, 0.2, 1);
      for (std::size_t i = 4; i < 8; ++i) w[i] = -w[i];
      return std::vector<Tensor>{random_tensor(Shape{5, 4}, seed, DType::f64, 0.2, 1), Tensor::from(w, Shape{3, 4}, DType::f64)};
    };
    for (auto act : {kernels::Unary::relu, kernels::Unary::tanh, kernels::Unary::sigmoid}) {
      CAPTURE(static_cast<int>(act));
      check_gradients(biased(13), [act](const Inputs& x) { return ops::linear_activation(x[0], x[1], x[2], act); },
                      "linear_activation");
      check_gradients(unbiased(16), [act](const Inputs& x) { return ops::linear_activation(x[0], x[1], Tensor(), act); },
                      "linear_activation without bias");
    }
    Tensor zeros_then = ops::linear_activation(biased(13)[0], biased(13)[1], biased(13)[2], kernels::Unary::relu);
    const auto v = zeros_then.to_vector();
    CHECK(std::count(v.begin(), v.end(), 0.0) == 5);  // the middle output is below the kink for every row
  }

  TEST_CASE("broadcasting add, sub, mul") {
    for (auto [sa, sb] : std::vector<std::pair<Shape, Shape>>{
             {Shape{3, 4}, Shape{4}}, {Shape{2, 3, 1}, Shape{1, 5}}, {Shape{3}, Shape{2, 3}}, {Shape{2, 2}, Shape{2, 2}}}) {
      CAPTURE(sa.str());
      CAPTURE(sb.str());
      check_gradients({random_tensor(sa, 8), random_tensor(sb, 9)}, [](const Inputs& x) { return ops::add(x[0], x[1]); }, "add");
      check_gradients({random_tensor(sa, 10), random_tensor(sb, 11)}, [](const Inputs& x) { return ops::sub(x[0], x[1]); }, "sub");
      check_gradients({random_tensor(sa, 12), random_tensor(sb, 13)}, [](const Inputs& x) { return ops::mul(x[0], x[1]); }, "mul");
    }
  }

  TEST_CASE("scale and activations") {
    check_gradients({random_tensor(Shape{4, 3}, 14)}, [](const Inputs& x) { return ops::scale(x[0], -0.7); }, "scale");
    check_gradients({away_from_zero(Shape{4, 5}, 15)}, [](const Inputs& x) { return ops::relu(x[0]); }, "relu");
    check_gradients({random_tensor(Shape{4, 5}, 16, DType::f64, -3, 3)}, [](const Inputs& x) { return ops::tanh(x[0]); }, "tanh");
    check_gradients({random_tensor(Shape{4, 5}, 17, DType::f64, -3, 3)}, [](const Inputs& x) { return ops::sigmoid(x[0]); },
                    "sigmoid");
    check_gradients({random_tensor(Shape{4, 5}, 18, DType::f64, -3, 3)}, [](const Inputs& x) { return ops::gelu(x[0]); }, "gelu");
  }

  TEST_CASE("conv2d: input, weight and bias; stride and padding") {
    struct Case {
      std::int64_t n, c, h, w, co, k, stride, pad;
    };
    for (Case t : {Case{2, 2, 5, 4, 3, 3, 1, 1}, Case{1, 3, 6, 6, 2, 2, 2, 0}, Case{2, 1, 5, 5, 2, 3, 2, 1}}) {
      CAPTURE(t.stride);
      CAPTURE(t.pad);
      check_gradients({random_tensor(Shape{t.n, t.c, t.h, t.w}, 19), random_tensor(Shape{t.co, t.c, t.k, t.k}, 20),
                       random_tensor(Shape{t.co}, 21)},
                      [t](const Inputs& x) { return ops::conv2d(x[0], x[1], x[2], t.stride, t.pad); }, "conv2d");
    }
  }

  TEST_CASE("max_pool2d, windows with distinct values") {
    // A permutation of well-separated values: no ties, and a step of 1e-6 never changes a winner.
    Generator g(22, Stream::test);
    auto order = g.permutation(2 * 2 * 6 * 6);
    std::vector<double> v(order.size());
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<double>(order[i]) * 0.01;
    check_gradients({Tensor::from(v, Shape{2, 2, 6, 6}, DType::f64)},
                    [](const Inputs& x) { return ops::max_pool2d(x[0], 2, 2); }, "max_pool2d 2/2");
    check_gradients({Tensor::from(v, Shape{2, 2, 6, 6}, DType::f64)},
                    [](const Inputs& x) { return ops::max_pool2d(x[0], 3, 1); }, "max_pool2d 3/1 (overlapping)");
  }

  TEST_CASE("reshape, flatten, sum, mean") {
    check_gradients({random_tensor(Shape{2, 3, 2}, 23)}, [](const Inputs& x) { return ops::reshape(x[0], {3, 4}); }, "reshape");
    check_gradients({random_tensor(Shape{2, 3, 2, 2}, 24)}, [](const Inputs& x) { return ops::flatten(x[0]); }, "flatten");
    check_gradients({random_tensor(Shape{3, 4}, 25)}, [](const Inputs& x) { return ops::sum(x[0]); }, "sum");
    check_gradients({random_tensor(Shape{3, 4}, 26)}, [](const Inputs& x) { return ops::mean(x[0]); }, "mean");
  }

  TEST_CASE("log_softmax, cross_entropy, mse_loss, mse_one_hot_loss") {
    check_gradients({random_tensor(Shape{4, 6}, 27, DType::f64, -3, 3)}, [](const Inputs& x) { return ops::log_softmax(x[0]); },
                    "log_softmax");
    Tensor labels = Tensor::from(std::vector<std::int32_t>{2, 0, 5, 5}, Shape{4});
    check_gradients({random_tensor(Shape{4, 6}, 28, DType::f64, -3, 3)},
                    [labels](const Inputs& x) { return ops::cross_entropy(x[0], labels); }, "cross_entropy");
    check_gradients({random_tensor(Shape{4, 6}, 29), random_tensor(Shape{4, 6}, 30)},
                    [](const Inputs& x) { return ops::mse_loss(x[0], x[1]); }, "mse_loss");
    check_gradients({random_tensor(Shape{4, 6}, 36)}, [labels](const Inputs& x) { return ops::mse_one_hot_loss(x[0], labels); },
                    "mse_one_hot_loss");
  }

  TEST_CASE("a whole small network: conv, pool, flatten, linear, scale, cross-entropy") {
    Tensor labels = Tensor::from(std::vector<std::int32_t>{1, 0}, Shape{2});
    check_gradients({random_tensor(Shape{2, 1, 6, 6}, 31), random_tensor(Shape{3, 1, 3, 3}, 32), random_tensor(Shape{3}, 33),
                     random_tensor(Shape{2, 12}, 34), random_tensor(Shape{2}, 35)},
                    [labels](const Inputs& x) {
                      Tensor h = ops::tanh(ops::conv2d(x[0], x[1], x[2], 1, 1));
                      h = ops::flatten(ops::max_pool2d(h, 3, 3));
                      return ops::cross_entropy(ops::scale(ops::linear(h, x[3], x[4]), 0.5), labels);
                    },
                    "small network");
  }
}
