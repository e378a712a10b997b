#include "helpers.h"
#include "kernels/backend.h"

using namespace gs;

TEST_SUITE("tensor") {
  TEST_CASE("factories fill shape, dtype and values") {
    Tensor z = Tensor::zeros(Shape{2, 3}, DType::f64);
    CHECK(z.shape() == Shape{2, 3});
    CHECK(z.numel() == 6);
    CHECK(z.dtype() == DType::f64);
    CHECK(z.device() == Device::cpu);
    for (double v : z.to_vector()) CHECK(v == 0.0);
    Tensor f = Tensor::full(Shape{4}, 2.5, DType::f32);
    for (double v : f.to_vector()) CHECK(v == 2.5);
    Tensor s = Tensor::scalar(3.0);
    CHECK(s.rank() == 0);
    CHECK(s.numel() == 1);
    CHECK(s.item() == 3.0);
  }

  TEST_CASE("dtype conversion round-trips and truncates to i32") {
    Tensor a = Tensor::from(std::vector<double>{1.5, -2.25, 3.0}, Shape{3}, DType::f64);
    CHECK(a.to(DType::f32).to_vector() == std::vector<double>{1.5, -2.25, 3.0});
    CHECK(a.to(DType::i32).to_int_vector() == std::vector<std::int32_t>{1, -2, 3});
    Tensor tiny = Tensor::from(std::vector<double>{0.1}, Shape{1}, DType::f64);
    CHECK(tiny.to(DType::f32).item() == static_cast<double>(0.1f));
  }

  TEST_CASE("views share storage; clones do not") {
    Tensor a = Tensor::from(std::vector<double>{0, 1, 2, 3, 4, 5}, Shape{3, 2}, DType::f64);
    Tensor v = a.view(Shape{2, 3});
    CHECK(v.same_storage(a));
    v.data<double>()[0] = 42;
    CHECK(a.to_vector()[0] == 42);
    Tensor c = a.clone();
    CHECK_FALSE(c.same_storage(a));
    c.data<double>()[1] = -1;
    CHECK(a.to_vector()[1] == 1);
  }

  TEST_CASE("rows() is a window along the first dimension") {
    Tensor a = Tensor::from(std::vector<double>{0, 1, 2, 3, 4, 5, 6, 7}, Shape{4, 2}, DType::f64);
    Tensor r = a.rows(1, 3);
    CHECK(r.shape() == Shape{2, 2});
    CHECK(r.to_vector() == std::vector<double>{2, 3, 4, 5});
    CHECK(a.rows(4, 4).numel() == 0);
    CHECK_THROWS_WITH_AS(a.rows(2, 5), doctest::Contains("out of range"), Error);
  }

  TEST_CASE("shapes: rank limit, negative index, printing") {
    CHECK_THROWS_WITH_AS((Shape{1, 2, 3, 4, 5}), doctest::Contains("at most 4"), Error);
    Shape s{2, 3, 5};
    CHECK(s[-1] == 5);
    CHECK(s.str() == "[2, 3, 5]");
    CHECK_THROWS_AS(s[3], Error);
    CHECK(Tensor::zeros(Shape{2, 3}).describe() == "f32[2, 3] on cpu");
  }

  TEST_CASE("typed access checks dtype; undefined tensors say so") {
    Tensor a = Tensor::zeros(Shape{2}, DType::f32);
    CHECK_THROWS_WITH_AS(a.data<double>(), doctest::Contains("data<f64>() on a f32[2]"), Error);
    Tensor u;
    CHECK_FALSE(u.defined());
    CHECK_THROWS_WITH_AS(u.shape(), doctest::Contains("undefined tensor"), Error);
    CHECK_THROWS_WITH_AS(Tensor::from(std::vector<double>{1, 2}, Shape{3}), doctest::Contains("2 values"), Error);
  }

  TEST_CASE("the cuda device is either present or refused with the reason") {
    if (!kernels::cuda_available()) {
      CHECK_THROWS_WITH_AS(Tensor::zeros(Shape{2}, DType::f32, Device::cuda), doctest::Contains("cuda device is not available"),
                           Error);
    } else {
      Tensor t = Tensor::full(Shape{3}, 1.5, DType::f32, Device::cuda);
      CHECK(t.to_vector() == std::vector<double>{1.5, 1.5, 1.5});
    }
  }
}
