// Bad operands give errors that name the op and the offending shapes or values; NaN propagates.
#include <algorithm>
#include <new>

#include "engine/allocator.h"
#include "helpers.h"
#include "kernels/cpu/region_errors.h"

using namespace gs;
using test::random_tensor;

TEST_SUITE("bad_input") {
  TEST_CASE("shape mismatches name the op and both shapes") {
    Tensor a = random_tensor(Shape{3, 4}, 1), b = random_tensor(Shape{5, 2}, 2);
    CHECK_THROWS_WITH_AS(ops::matmul(a, b), doctest::Contains("matmul: inner dimensions differ: [3, 4] × [5, 2]"), Error);
    CHECK_THROWS_WITH_AS(ops::add(a, b), doctest::Contains("add: shapes [3, 4] and [5, 2] do not broadcast"), Error);
    CHECK_THROWS_WITH_AS(ops::linear(a, b, Tensor()), doctest::Contains("linear: the input [3, 4] has 4 features"), Error);
    CHECK_THROWS_WITH_AS(ops::linear_activation(a, b, Tensor(), kernels::Unary::relu),
                         doctest::Contains("linear_activation: the input [3, 4] has 4 features"), Error);
    CHECK_THROWS_WITH_AS(ops::linear_activation(a, random_tensor(Shape{2, 4}, 2), Tensor(), kernels::Unary::gelu),
                         doctest::Contains("gelu's derivative needs its input"), Error);
    CHECK_THROWS_WITH_AS(ops::mse_loss(a, b), doctest::Contains("mse_loss: the prediction f64[3, 4]"), Error);
    CHECK_THROWS_WITH_AS(ops::conv2d(a, b, Tensor()), doctest::Contains("conv2d: the input must be 4-D"), Error);
    CHECK_THROWS_WITH_AS(ops::reshape(a, {5, -1}), doctest::Contains("cannot reshape"), Error);
  }

  TEST_CASE("dtype and device mismatches") {
    Tensor a = random_tensor(Shape{2, 2}, 3, DType::f32), b = random_tensor(Shape{2, 2}, 4, DType::f64);
    CHECK_THROWS_WITH_AS(ops::add(a, b), doctest::Contains("add: dtype mismatch between f32[2, 2] on cpu and f64[2, 2] on cpu"),
                         Error);
    Tensor i = Tensor::from(std::vector<std::int32_t>{1, 2}, Shape{2});
    CHECK_THROWS_WITH_AS(ops::relu(i), doctest::Contains("relu: the input is i32[2] on cpu"), Error);
  }

  TEST_CASE("labels out of range name the row and the value") {
    Tensor logits = random_tensor(Shape{3, 4}, 5);
    Tensor labels = Tensor::from(std::vector<std::int32_t>{0, 4, 1}, Shape{3});
    CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, labels),
                         doctest::Contains("label 4 at row 1 is out of range for 4 classes"), Error);
    Tensor negative = Tensor::from(std::vector<std::int32_t>{0, -1, 1}, Shape{3});
    CHECK_THROWS_WITH_AS(ops::accuracy(logits, negative), doctest::Contains("label -1 at row 1"), Error);
    Tensor short_labels = Tensor::from(std::vector<std::int32_t>{0, 1}, Shape{2});
    CHECK_THROWS_WITH_AS(ops::cross_entropy(logits, short_labels), doctest::Contains("labels must be i32[3]"), Error);
    CHECK_THROWS_WITH_AS(ops::one_hot(labels, 4), doctest::Contains("label 4 at row 1"), Error);
    CHECK_THROWS_WITH_AS(ops::mse_one_hot_loss(logits, labels), doctest::Contains("mse_one_hot_loss: label 4 at row 1"), Error);
    CHECK_THROWS_WITH_AS(ops::mse_one_hot_loss(logits, short_labels), doctest::Contains("labels must be i32[3]"), Error);
  }

  TEST_CASE("empty tensors: well-defined results or a clear refusal") {
    Tensor e = Tensor::zeros(Shape{0, 4}, DType::f64);
    CHECK(ops::relu(e).numel() == 0);
    CHECK(ops::sum(e).item() == 0.0);
    CHECK(std::isnan(ops::mean(e).item()));  // as torch.mean of an empty tensor
    Tensor w = random_tensor(Shape{3, 4}, 6);
    CHECK(ops::linear(e, w, random_tensor(Shape{3}, 7)).shape() == Shape{0, 3});
    Tensor k0 = ops::matmul(Tensor::zeros(Shape{2, 0}, DType::f64), Tensor::zeros(Shape{0, 3}, DType::f64));
    CHECK(k0.to_vector() == std::vector<double>(6, 0.0));
    CHECK_THROWS_WITH_AS(ops::cross_entropy(e, Tensor::from(std::vector<std::int32_t>{}, Shape{0})),
                         doctest::Contains("needs at least one row"), Error);
    CHECK_THROWS_WITH_AS(ops::mse_loss(e, e), doctest::Contains("is empty"), Error);
  }

  TEST_CASE("NaN in the inputs propagates to the loss and gradients without a crash") {
    Tensor x = Tensor::from(std::vector<double>{1, std::nan(""), 2, 3}, Shape{2, 2}, DType::f64);
    Tensor w = random_tensor(Shape{3, 2}, 8);
    w.set_requires_grad();
    Tensor labels = Tensor::from(std::vector<std::int32_t>{0, 2}, Shape{2});
    Tensor loss = ops::cross_entropy(ops::relu(ops::linear(x, w, Tensor())), labels);
    CHECK(std::isnan(loss.item()));
    loss.backward();
    bool any_nan = false;
    for (double g : w.grad().to_vector()) any_nan = any_nan || std::isnan(g);
    CHECK(any_nan);
    Tensor p = Tensor::from(std::vector<double>{std::nan(""), 0}, Shape{1, 2}, DType::f64);
    CHECK(std::isnan(ops::mse_loss(p, Tensor::zeros(Shape{1, 2}, DType::f64)).item()));
    CHECK(ops::argmax(p).to_int_vector()[0] == 0);  // NaN is the maximum, as torch.argmax
  }

  TEST_CASE("invalid layer and optimizer settings") {
    CHECK_THROWS_WITH_AS(ops::max_pool2d(random_tensor(Shape{1, 1, 2, 2}, 9), 3, 1), doctest::Contains("larger than the input"),
                         Error);
    CHECK_THROWS_WITH_AS(ops::conv2d(random_tensor(Shape{1, 1, 4, 4}, 10), random_tensor(Shape{1, 1, 3, 3}, 11), Tensor(), 0),
                         doctest::Contains("stride must be ≥ 1"), Error);
  }

  // An exception may not leave an OpenMP region (the process would end); kernels/cpu/region_errors.h
  // carries it out of the region to the caller.
  TEST_CASE("an error inside a parallel loop reaches the caller") {
    const std::int64_t n = 1000;
    std::vector<int> ran(static_cast<std::size_t>(n), 0);
    kernels::cpu::RegionErrors clean;
#pragma omp parallel for schedule(dynamic)
    for (std::int64_t i = 0; i < n; ++i) clean.guard([&] { ran[static_cast<std::size_t>(i)] = 1; });
    CHECK_NOTHROW(clean.rethrow());
    CHECK(std::count(ran.begin(), ran.end(), 1) == n);

    kernels::cpu::RegionErrors errors;
#pragma omp parallel
    {
      std::vector<double> scratch;
      errors.guard([&] { scratch.resize(4); });
#pragma omp for schedule(dynamic)
      for (std::int64_t i = 0; i < n; ++i)
        errors.guard([&] {
          if (i == 377) throw Error("tile 377 failed");
          scratch[0] = static_cast<double>(i);
        });
    }
    CHECK(errors.failed());
    CHECK_THROWS_WITH_AS(errors.rethrow(), doctest::Contains("tile 377 failed"), Error);
  }

  TEST_CASE("a convolution whose scratch cannot be allocated throws instead of ending the process") {
    // Two 4608² images and a 2304² kernel: each thread's im2col scratch would be 2305² × 2304²
    // doubles, 226 TB, past any machine's address space, while the tensors themselves (470 MB,
    // not poisoned, so never touched) are allocated.
    struct Unpoisoned {
      Unpoisoned() { set_allocation_poisoning(false); }
      ~Unpoisoned() { set_allocation_poisoning(true); }
    } unpoisoned;
    Tensor x = Tensor::empty(Shape{2, 1, 4608, 4608}, DType::f64), w = Tensor::empty(Shape{1, 1, 2304, 2304}, DType::f64);
    CHECK_THROWS_AS(ops::conv2d(x, w, Tensor()), std::bad_alloc);
  }
}
