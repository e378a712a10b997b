#include "helpers.h"

using namespace gs;
using test::random_tensor;

TEST_SUITE("autograd") {
  TEST_CASE("a tensor used twice gets the sum of both paths") {
    Tensor x = Tensor::from(std::vector<double>{1, -2, 3}, Shape{3}, DType::f64);
    x.set_requires_grad();
    Tensor y = ops::sum(ops::add(ops::mul(x, x), x));  // d/dx (x² + x) = 2x + 1
    y.backward();
    CHECK(x.grad().to_vector() == std::vector<double>{3, -3, 7});
  }

  TEST_CASE("gradients accumulate across backward calls until zero_grad") {
    Tensor x = Tensor::from(std::vector<double>{2}, Shape{1}, DType::f64);
    x.set_requires_grad();
    ops::sum(ops::scale(x, 3)).backward();
    ops::sum(ops::scale(x, 3)).backward();
    CHECK(x.grad().item() == 6);
    x.zero_grad();
    CHECK_FALSE(x.grad().defined());
  }

  TEST_CASE("backward from a cotangent (the NTK probe's one-hot rows)") {
    Tensor w = random_tensor(Shape{3, 4}, 1);
    w.set_requires_grad();
    Tensor x = random_tensor(Shape{2, 4}, 2);
    Tensor y = ops::linear(x, w, Tensor());  // [2, 3]
    // Cotangent e_(1, 2): the gradient of y[1, 2] alone, which is x[1] in row 2 of W.
    Tensor e = Tensor::zeros(Shape{2, 3}, DType::f64);
    e.data<double>()[1 * 3 + 2] = 1;
    y.backward(e);
    auto g = w.grad().to_vector();
    auto xv = x.to_vector();
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 4; ++j) CHECK(g[i * 4 + j] == (i == 2 ? xv[4 + j] : 0.0));
  }

  TEST_CASE("non-scalar backward without a cotangent is refused") {
    Tensor x = random_tensor(Shape{3}, 3);
    x.set_requires_grad();
    CHECK_THROWS_WITH_AS(ops::relu(x).backward(), doctest::Contains("needs a one-element output"), Error);
    CHECK_THROWS_WITH_AS(ops::relu(x).backward(Tensor::zeros(Shape{4}, DType::f64)),
                         doctest::Contains("the cotangent is f64[4] on cpu but the output is f64[3]"), Error);
  }

  TEST_CASE("the graph is freed after backward unless retained") {
    Tensor x = random_tensor(Shape{3}, 4);
    x.set_requires_grad();
    Tensor y = ops::sum(ops::tanh(x));
    y.backward(Tensor(), /*retain_graph=*/true);
    auto once = x.grad().to_vector();
    y.backward();  // second pass allowed: the first retained the graph
    auto twice = x.grad().to_vector();
    for (std::size_t i = 0; i < once.size(); ++i) CHECK(twice[i] == doctest::Approx(2 * once[i]));
    CHECK_THROWS_WITH_AS(y.backward(), doctest::Contains("a second time"), Error);
  }

  // Taped, the losses of a training step (cross-entropy, MSE against the labels) write the gradient
  // for their seed in their own launch, and backward() from them launches nothing for it; any other
  // cotangent runs the backward kernels.
  TEST_CASE("a loss's backward from the 1 its own kernel wrote equals the backward from an explicit cotangent of 1") {
    Tensor labels = Tensor::from(std::vector<std::int32_t>{2, 0, 1}, Shape{3});
    for (DType dtype : {DType::f64, DType::f32})
      for (int which = 0; which < 3; ++which) {
        CAPTURE(which);
        CAPTURE(dtype_name(dtype));
        Tensor x = random_tensor(Shape{3, 4}, 40 + static_cast<std::uint64_t>(which)).to(dtype);
        x.set_requires_grad();
        auto loss_of = [&] {
          if (which == 0) return ops::cross_entropy(x, labels);
          if (which == 1) return ops::mse_one_hot_loss(x, labels);
          return ops::mse_loss(x, ops::one_hot(labels, 4, dtype));
        };
        Tensor loss = loss_of();
        REQUIRE(loss.grad_fn());
        REQUIRE(loss.grad_fn()->seed.defined());
        CHECK(loss.grad_fn()->seed.item() == 1);
        loss.backward(Tensor(), /*retain_graph=*/true);
        const auto implicit = x.grad().to_vector();
        x.zero_grad();
        loss.backward(Tensor(), /*retain_graph=*/true);  // the kept gradient, again: unchanged by the first pass
        CHECK(x.grad().to_vector() == implicit);
        x.zero_grad();
        loss.backward(Tensor::full(Shape{}, 1.0, dtype), /*retain_graph=*/true);
        CHECK(x.grad().to_vector() == implicit);
        x.zero_grad();
        loss.backward(Tensor::full(Shape{}, 2.5, dtype));
        const auto scaled = x.grad().to_vector();
        for (std::size_t i = 0; i < implicit.size(); ++i) CHECK(scaled[i] == doctest::Approx(2.5 * implicit[i]).epsilon(1e-6));
        CHECK(loss.grad_fn()->seed.item() == 1);  // read, never written
        NoGrad no_tape;
        CHECK_FALSE(loss_of().grad_fn());  // untaped: no seed, no node
        CHECK(loss_of().item() == loss.item());
      }
  }

  TEST_CASE("NoGrad records nothing; detach cuts the tape") {
    Tensor x = random_tensor(Shape{3}, 5);
    x.set_requires_grad();
    {
      NoGrad no_tape;
      Tensor y = ops::relu(x);
      CHECK_FALSE(y.requires_grad());
      CHECK(grad_enabled() == false);
    }
    CHECK(grad_enabled());
    CHECK_FALSE(x.detach().requires_grad());
    CHECK(ops::relu(x).requires_grad());
    Tensor c = random_tensor(Shape{3}, 6);
    CHECK_FALSE(ops::relu(c).requires_grad());
    CHECK_THROWS_WITH_AS(ops::sum(c).backward(), doctest::Contains("does not require grad"), Error);
  }

  TEST_CASE("inputs that do not require grad get none; leaves only can be marked") {
    Tensor a = random_tensor(Shape{2, 2}, 7), b = random_tensor(Shape{2, 2}, 8);
    a.set_requires_grad();
    Tensor y = ops::matmul(a, b);
    ops::sum(y).backward();
    CHECK(a.grad().defined());
    CHECK_FALSE(b.grad().defined());
    CHECK_THROWS_WITH_AS(ops::matmul(a, b).set_requires_grad(false), doctest::Contains("non-leaf"), Error);
  }

  TEST_CASE("a deep chain does not overflow the stack") {
    Tensor x = Tensor::from(std::vector<double>{1}, Shape{1}, DType::f64);
    x.set_requires_grad();
    Tensor h = x;
    for (int i = 0; i < 20000; ++i) h = ops::scale(h, 1.0);
    ops::sum(h).backward();
    CHECK(x.grad().item() == 1.0);
  }
}
