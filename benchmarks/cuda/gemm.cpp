// bench_cuda's GEMM tables: grokscope's SGEMM and DGEMM against cuBLAS at the study's shapes
// (GFLOP/s of both tilings and of the one the shape gets, its ratio, max error against the
// float64 reference or, for shapes too large for it, against cuBLAS), the optional TF32
// tensor-core kernel against cuBLAS's TF32 mode, and a deep dense layer's forward split along its
// depth against unsplit.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "benchmarks/cuda/tables.h"
#include "benchmarks/cuda/timing.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "kernels/backend.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/reference/reference.h"

namespace gs::bench_cuda {

namespace {

struct Shape3 {
  const char* what;
  std::int64_t m, n, k;
  bool ta, tb;
};

// A shape's operands, N(0, 1) values drawn in float64 (a, b, on the host) and rounded to the
// benchmarked dtype on the device (ad, bd); its multiply-adds, and calls enough for ~20 GFLOP.
struct GemmOperands {
  kernels::GemmShape s;
  Tensor a, b, ad, bd;
  double flops;
  int calls;
  GemmOperands(const Shape3& sh, DType dt)
      : s{sh.ta, sh.tb, sh.m, sh.n, sh.k, sh.ta ? sh.m : sh.k, sh.tb ? sh.k : sh.n, sh.n},
        a(Tensor::empty(Shape{sh.m * sh.k}, DType::f64)),
        b(Tensor::empty(Shape{sh.k * sh.n}, DType::f64)),
        flops(2.0 * double(sh.m) * double(sh.n) * double(sh.k)),
        calls(std::min(2000, std::max(1, int(2e10 / std::max(flops, 1.0))))) {
    Generator gen(5, Stream::test);
    gen.normal(a, 0, 1);
    gen.normal(b, 0, 1);
    ad = a.to(dt).to(Device::cuda);
    bd = b.to(dt).to(Device::cuda);
  }
};

template <class T>
void bench_gemm(const Cublas* cublas, const Shape3& sh, DType dt) {
  const GemmOperands operands(sh, dt);
  const auto& [s, a, b, ad, bd, flops, calls] = operands;
  Tensor c = Tensor::zeros(Shape{sh.m * sh.n}, dt, Device::cuda), c_ref = Tensor::zeros(Shape{sh.m * sh.n}, dt, Device::cuda);
  auto& be = kernels::backend(Device::cuda);
  // Both tilings, pinned in turn; the ratio is that of the one the shape gets.
  Tensor c_large = Tensor::zeros(Shape{sh.m * sh.n}, dt, Device::cuda);
  auto timed = [&](kernels::GemmTiling tiling, Tensor& out) {
    kernels::set_gemm_tiling(tiling);
    const double t = median_seconds([&] { be.gemm(dt, s, 1.0, ad.raw(), bd.raw(), 0.0, out.raw()); }, calls);
    kernels::set_gemm_tiling(kernels::GemmTiling::by_shape);
    return t;
  };
  const double small = timed(kernels::GemmTiling::small_tiles, c), large = timed(kernels::GemmTiling::large_tiles, c_large);
  const bool picks_large = dynamic_cast<kernels::cuda::CudaBackend&>(be).large_gemm_tiles(sh.m, sh.n);
  const double ours = picks_large ? large : small;
  double theirs = NAN;
  if (cublas) {
    theirs = median_seconds([&] { cublas->gemm<T>(s, static_cast<const T*>(ad.raw()), static_cast<const T*>(bd.raw()),
                                                  static_cast<T*>(c_ref.raw())); },
                            calls);
  }
  // Max error relative to the largest |reference| entry, of either tiling: against f64 truth
  // where that is cheap.
  auto got = c.to_vector();
  const auto got_large = c_large.to_vector();
  got.insert(got.end(), got_large.begin(), got_large.end());
  std::vector<double> want;
  std::string against = "f64 reference";
  if (flops <= 2e9) {
    want = reference::matmul(a.to(dt).to_vector(), b.to(dt).to_vector(), sh.m, sh.n, sh.k, sh.ta, sh.tb);
  } else if (cublas) {
    want = c_ref.to_vector();
    against = "cuBLAS";
  }
  double err = 0, scale = 0;
  for (std::size_t i = 0; i < got.size() && !want.empty(); ++i) {
    err = std::max(err, std::abs(got[i] - want[i % want.size()]));
    scale = std::max(scale, std::abs(want[i % want.size()]));
  }
  std::printf("| %s %s | %lld×%lld×%lld%s%s | %.1f | %.1f | %s | %.1f | %s | %s | %s |\n", dt == DType::f32 ? "SGEMM" : "DGEMM",
              sh.what, (long long)sh.m, (long long)sh.n, (long long)sh.k, sh.ta ? " Aᵀ" : "", sh.tb ? " Bᵀ" : "",
              flops / small * 1e-9, flops / large * 1e-9, picks_large ? "128" : "64", flops / ours * 1e-9,
              cublas ? std::to_string(flops / theirs * 1e-9).substr(0, 8).c_str() : "n/a",
              cublas ? std::to_string(theirs / ours).substr(0, 5).c_str() : "n/a",
              want.empty() ? "n/a" : (std::to_string(err / std::max(scale, 1e-300)).substr(0, 9) + " vs " + against).c_str());
}

// The TF32 tensor-core kernels (kernels/cuda/tensor_core_tile.cuh), labelled as such, against
// cuBLAS in its TF32 mode: speed, and each one's max error against the float64 product of the
// FP32 operands (or, for shapes too large for it, against our FP32 kernel), to set beside FP32's.
void bench_gemm_tf32(const Cublas* cublas, const Shape3& sh) {
  const GemmOperands operands(sh, DType::f32);
  const auto& [s, a, b, ad, bd, flops, calls] = operands;
  Tensor c = Tensor::zeros(Shape{sh.m * sh.n}, DType::f32, Device::cuda);
  Tensor c_ref = Tensor::zeros(Shape{sh.m * sh.n}, DType::f32, Device::cuda);
  auto& be = kernels::backend(Device::cuda);
  std::vector<double> want;
  std::string against = "f64 reference";
  if (flops <= 2e9) {
    want = reference::matmul(a.to(DType::f32).to_vector(), b.to(DType::f32).to_vector(), sh.m, sh.n, sh.k, sh.ta, sh.tb);
  } else {
    be.gemm(DType::f32, s, 1.0, ad.raw(), bd.raw(), 0.0, c.raw());
    want = c.to_vector();
    against = "our FP32";
  }
  auto relative_error = [&](const Tensor& got_tensor) {
    const auto got = got_tensor.to_vector();
    double err = 0, scale = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      err = std::max(err, std::abs(got[i] - want[i]));
      scale = std::max(scale, std::abs(want[i]));
    }
    return std::to_string(err / std::max(scale, 1e-300)).substr(0, 9);
  };
  kernels::set_gemm_precision(kernels::GemmPrecision::tf32);
  const double ours = median_seconds([&] { be.gemm(DType::f32, s, 1.0, ad.raw(), bd.raw(), 0.0, c.raw()); }, calls);
  kernels::set_gemm_precision(kernels::GemmPrecision::fp32);
  const bool have = cublas && cublas->tf32_handle;
  double theirs = NAN;
  if (have)
    theirs = median_seconds([&] { cublas->gemm<float>(s, static_cast<const float*>(ad.raw()), static_cast<const float*>(bd.raw()),
                                                      static_cast<float*>(c_ref.raw()), true); },
                            calls);
  std::printf("| TF32 tensor cores %s | %lld×%lld×%lld%s%s | %.1f | %s | %s | %s vs %s | %s |\n", sh.what, (long long)sh.m,
              (long long)sh.n, (long long)sh.k, sh.ta ? " Aᵀ" : "", sh.tb ? " Bᵀ" : "", flops / ours * 1e-9,
              have ? std::to_string(flops / theirs * 1e-9).substr(0, 8).c_str() : "n/a",
              have ? std::to_string(theirs / ours).substr(0, 5).c_str() : "n/a", relative_error(c).c_str(), against.c_str(),
              have ? relative_error(c_ref).c_str() : "n/a");
}

}  // namespace

// A dense layer's forward (GEMM, bias, ReLU as it stores) split along its depth, as a deep layer
// with few tiles runs, against the same launch unsplit: time per call, both.
void bench_dense_forward() {
  std::printf("\n| dense layer forward, GEMM + bias + ReLU | rows×out×in | split along the depth | unsplit | "
              "ratio (unsplit / split) |\n| --- | --- | ---: | ---: | ---: |\n");
  struct Layer {
    const char* what;
    std::int64_t rows, out, in;
  };
  for (const Layer& l : {Layer{"MLP layer 1, batch 200", 200, 200, 784}, Layer{"EMNIST MLP layer 1, batch 128", 128, 128, 784},
                         Layer{"CNN dense layer, batch 64", 64, 128, 3136}}) {
    Generator gen(9, Stream::test);
    Tensor x = Tensor::empty(Shape{l.rows, l.in}), w = Tensor::empty(Shape{l.out, l.in}), b = Tensor::empty(Shape{l.out});
    gen.normal(x, 0, 1);
    gen.normal(w, 0, 0.05);
    gen.normal(b, 0, 0.1);
    Tensor xd = x.to(Device::cuda), wd = w.to(Device::cuda), bd = b.to(Device::cuda);
    Tensor y = Tensor::empty(Shape{l.rows, l.out}, DType::f32, Device::cuda);
    auto& be = kernels::backend(Device::cuda);
    const kernels::GemmShape s{false, true, l.rows, l.out, l.in, l.in, l.in, l.out};
    auto forward = [&] { be.gemm_bias_act(DType::f32, s, xd.raw(), wd.raw(), bd.raw(), kernels::Unary::relu, y.raw()); };
    const double split = median_seconds(forward, 200);
    kernels::set_gemm_split(kernels::GemmSplit::never);
    const double whole = median_seconds(forward, 200);
    kernels::set_gemm_split(kernels::GemmSplit::by_shape);
    std::printf("| %s | %lld×%lld×%lld | %.1f µs | %.1f µs | %.2f |\n", l.what, (long long)l.rows, (long long)l.out,
                (long long)l.in, split * 1e6, whole * 1e6, whole / split);
  }
}

void gemm_tables(const Cublas* cublas) {
  std::printf("| kernel | m×n×k | GFLOP/s, 64² tiles | GFLOP/s, 128² tiles | shape gets | GFLOP/s | cuBLAS GFLOP/s | "
              "ratio (ours/cuBLAS speed) | max error / max |ref| |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
  const std::vector<Shape3> shapes{
      {"MLP forward layer 1", 200, 200, 784, false, true},   // x Wᵀ
      {"MLP forward layer 2", 200, 200, 200, false, true},
      {"MLP forward output", 200, 10, 200, false, true},
      {"MLP weight gradient", 200, 784, 200, true, false},   // gᵀ x
      {"MLP input gradient", 200, 784, 200, false, false},   // g W
      {"EMNIST MLP forward layer 1", 128, 128, 784, false, true},
      {"EMNIST MLP forward layer 2", 128, 512, 128, false, true},
      {"EMNIST MLP forward layer 3", 128, 128, 512, false, true},
      {"EMNIST MLP forward output", 128, 47, 128, false, true},
      {"EMNIST MLP weight gradient, layer 2", 512, 128, 128, true, false},
      {"CNN dense forward", 64, 128, 3136, false, true},
      {"CNN dense weight gradient", 128, 3136, 64, true, false},
      {"NTK Gram H Hᵀ, 1280 points", 1280, 1280, 200, false, true},
      {"NTK tile D_I D_Jᵀ, EMNIST layer 2, 64 points", 3008, 3008, 512, false, true},
      {"NTK Gram tile, EMNIST", 8192, 8192, 200, false, true},
      {"square", 4096, 4096, 4096, false, false},
  };
  for (const auto& s : shapes) bench_gemm<float>(cublas, s, DType::f32);
  for (const auto& s : shapes) bench_gemm<double>(cublas, s, DType::f64);
  // The NTK probe's trace kernel of a layer: an f64 product over its C · width signal columns.
  bench_gemm<double>(cublas, {"NTK trace kernel, EMNIST layer 2", 1280, 1280, 47 * 512, false, true}, DType::f64);

  std::printf("\n| TF32 kernel (optional, not the default) | m×n×k | GFLOP/s | cuBLAS TF32 GFLOP/s | ratio (ours/cuBLAS speed) | "
              "max error / max |ref| | cuBLAS TF32's |\n");
  std::printf("| --- | --- | ---: | ---: | ---: | --- | --- |\n");
  for (int i : {0, 1, 3, 10, 12, 15}) bench_gemm_tf32(cublas, shapes[static_cast<std::size_t>(i)]);
}

}  // namespace gs::bench_cuda
