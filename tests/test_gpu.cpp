// CUDA kernels against the float64 reference on fresh random inputs, outputs poisoned first.
// The runner skips this suite (exit 77) where no CUDA device is usable; see tests/main.cpp.
#include "backend_checks.h"
#include "helpers.h"
#include "kernels/reference/reference.h"

using namespace gs;

TEST_SUITE("gpu") {
  TEST_CASE("every kernel family against the float64 reference") { test::check_backend_kernels(Device::cuda); }

  TEST_CASE("host/device copies, fill and dtype conversion round-trip") {
    for (std::int64_t n : {1, 255, 256, 257, 100003}) {
      CAPTURE(n);
      Tensor host = test::random_tensor(Shape{n}, 1, DType::f64);
      Tensor dev = host.to(Device::cuda);
      CHECK(dev.to_vector() == host.to_vector());
      CHECK(dev.to(DType::f32).to_vector() == host.to(DType::f32).to_vector());
      Tensor filled = Tensor::full(Shape{n}, -3.25, DType::f32, Device::cuda);
      CHECK(filled.to_vector() == std::vector<double>(static_cast<std::size_t>(n), -3.25));
    }
  }

  TEST_CASE("activations and scaling against the reference") {
    using kernels::Unary;
    for (DType d : {DType::f32, DType::f64})
      for (std::int64_t n : {1, 257, 4097}) {
        Tensor x = test::random_tensor(Shape{n}, 2, d, -4, 4);
        auto xv = x.to_vector();
        for (auto [op, f] : std::vector<std::pair<Unary, Tensor (*)(const Tensor&)>>{
                 {Unary::relu, ops::relu}, {Unary::tanh, ops::tanh}, {Unary::sigmoid, ops::sigmoid}, {Unary::gelu, ops::gelu}}) {
          Tensor y = f(x.to(Device::cuda));
          std::vector<double> want(xv.size());
          for (std::size_t i = 0; i < xv.size(); ++i) want[i] = reference::unary(op, xv[i]);
          test::check_close(y, want, d == DType::f32 ? test::Tolerance{1e-6, 1e-5} : test::Tolerance{1e-14, 1e-13},
                            "cuda activation");
        }
        test::check_close(ops::scale(x.to(Device::cuda), 0.25), [&] {
          auto s = xv;
          for (auto& v : s) v *= 0.25;
          return s;
        }(), {0, 1e-7}, "cuda scale");
      }
  }

  TEST_CASE("training steps of the study's MLP and CNN on the GPU equal the CPU's") {
    test::check_training_matches_cpu(Device::cuda);
  }
}
