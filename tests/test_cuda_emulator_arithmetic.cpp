// The emulated kernels' arithmetic (test_cuda_emulator.cpp says why these exist): fused
// multiply-adds as nvcc's, math functions an ulp off the host's, TF32 conversion and tensor-core
// fragments as a device's.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "cuda_emulator_tools.h"
#include "helpers.h"
#include "mma.h"  // the emulator's, kernels/cuda/emulator/

namespace {

// One TF32 product of tensor-core fragments, a (16 × 8) times b (8 × 16) into c (16 × 16), all
// row-major, a read `shift` floats past its start; the operands rounded to TF32 if `convert`.
__global__ void tf32_product_kernel(int shift, bool convert, const float* a, const float* b, float* c) {
  namespace wmma = nvcuda::wmma;
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
  wmma::fill_fragment(acc, 0.0f);
  wmma::load_matrix_sync(fa, a + shift, 8);
  wmma::load_matrix_sync(fb, b, 16);
  if (convert) {
    for (int e = 0; e < fa.num_elements; ++e) fa.x[e] = wmma::__float_to_tf32(fa.x[e]);
    for (int e = 0; e < fb.num_elements; ++e) fb.x[e] = wmma::__float_to_tf32(fb.x[e]);
  }
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

}  // namespace

TEST_SUITE("cuda_emulator") {
  // nvcc fuses a·b + c into one rounding (--fmad=true, its default); so do the emulated kernels
  // where the CPU has FMA (the top-level CMakeLists.txt). A DGEMM of −1·1 + a·a with a = 1 + 2⁻³⁰
  // tells the two apart: fused, a·a keeps its 2⁻⁶⁰ and the sum is 2⁻²⁹ + 2⁻⁶⁰; rounded first, 2⁻²⁹.
  TEST_CASE("the emulated kernels fuse multiply-adds as nvcc does") {
#if !defined(GROKSCOPE_EMULATED_FMA)
    MESSAGE("skipped: this CPU has no FMA, so the emulated kernels round every product");
#else
    const double a = 1 + std::ldexp(1.0, -30);
    gs::Tensor x = gs::Tensor::from(std::vector<double>{-1, a}, gs::Shape{2}, gs::DType::f64, gs::Device::cuda);
    gs::Tensor y = gs::Tensor::from(std::vector<double>{1, a}, gs::Shape{2}, gs::DType::f64, gs::Device::cuda);
    gs::Tensor out = gs::Tensor::empty(gs::Shape{1}, gs::DType::f64, gs::Device::cuda);
    gs::kernels::backend(gs::Device::cuda).gemm(gs::DType::f64, {false, false, 1, 1, 2, 2, 1, 1}, 1.0, x.raw(), y.raw(), 0.0,
                                                 out.raw());
    CHECK(out.to_vector()[0] == std::ldexp(1.0, -29) + std::ldexp(1.0, -60));
#endif
  }

  // The device's tanh (like exp, log and erf) may be off by an ulp or two; the emulated kernels'
  // is the host's moved by an ulp for about two arguments in three (cuda_runtime.h), so that no
  // test leans on the CPU's libm. Through a kernel: within an ulp of the host's, and not always on it.
  TEST_CASE("the emulated kernels' tanh is within an ulp of the host's, as the device's need not equal it") {
    const i64 n = 1000;
    std::vector<double> values(static_cast<std::size_t>(n));
    for (i64 i = 0; i < n; ++i) values[static_cast<std::size_t>(i)] = -3.0 + 6.0 * static_cast<double>(i) / static_cast<double>(n - 1);
    gs::Tensor x = gs::Tensor::from(values, gs::Shape{n}, gs::DType::f32, gs::Device::cuda);
    gs::Tensor y = gs::Tensor::empty(gs::Shape{n}, gs::DType::f32, gs::Device::cuda);
    gs::kernels::backend(gs::Device::cuda).unary(gs::kernels::Unary::tanh, gs::DType::f32, n, x.raw(), y.raw());
    const auto xs = x.to_vector(), ys = y.to_vector();
    i64 moved = 0, farther = 0;
    for (i64 i = 0; i < n; ++i) {
      const float host = std::tanh(static_cast<float>(xs[static_cast<std::size_t>(i)]));
      const float device = static_cast<float>(ys[static_cast<std::size_t>(i)]);
      moved += device != host;
      farther += device != host && device != std::nextafter(host, -INFINITY) && device != std::nextafter(host, INFINITY);
    }
    CHECK(farther == 0);
    CHECK(moved > n / 2);
    CHECK(moved < n);
  }

  // CUDA's __float_to_tf32 is PTX's cvt.rna.tf32.f32: to the nearest value with 10 bits of
  // mantissa, ties away from zero. 1 + 2⁻¹¹ is a tie: away gives 1 + 2⁻¹⁰, to even would give 1.
  TEST_CASE("the emulated TF32 conversion rounds to nearest, ties away from zero, as PTX's cvt.rna") {
    using nvcuda::wmma::__float_to_tf32;
    const float tie = 1.0f + std::ldexp(1.0f, -11), ulp = std::ldexp(1.0f, -10);
    CHECK(__float_to_tf32(tie) == 1.0f + ulp);
    CHECK(__float_to_tf32(-tie) == -(1.0f + ulp));
    CHECK(__float_to_tf32(std::nextafter(tie, 0.0f)) == 1.0f);
    CHECK(__float_to_tf32(1.0f + 3 * std::ldexp(1.0f, -11)) == 1.0f + 2 * ulp);  // a tie, away from zero
    CHECK(__float_to_tf32(1.0f + ulp) == 1.0f + ulp);                               // already TF32
    CHECK(__float_to_tf32(std::ldexp(1.0f, -130)) == std::ldexp(1.0f, -130));      // subnormal, in TF32 too
    CHECK(__float_to_tf32(std::ldexp(1.0f, -140)) == 0.0f);  // under half TF32's smallest subnormal, 2⁻¹³⁶
    CHECK(std::isinf(__float_to_tf32(INFINITY)));
    CHECK(std::isnan(__float_to_tf32(NAN)));
    // Into the exponent: the largest mantissa rounds up to the next power of two.
    CHECK(__float_to_tf32(std::nextafter(2.0f, 0.0f)) == 2.0f);
    // And as the tests' own rounding (tests/helpers.h, in double arithmetic) on floats of every
    // exponent, subnormals included.
    std::uint64_t state = 12345;
    int disagree = 0;
    for (int i = 0; i < 200000; ++i) {
      state = state * 6364136223846793005ULL + 1442695040888963407ULL;
      auto bits = static_cast<std::uint32_t>(state >> 32);
      if ((bits & 0x7F800000u) == 0x7F800000u) continue;  // infinity and NaN: above
      float x;
      std::memcpy(&x, &bits, sizeof x);
      disagree += static_cast<double>(__float_to_tf32(x)) != gs::test::tf32(x);
    }
    CHECK(disagree == 0);
  }

  // The tensor-core product: exact products of TF32 values summed in FP32; and what a device
  // refuses (misaligned fragments, unconverted operands, a block of partial warps) is a sticky fault.
  TEST_CASE("emulated TF32 fragments multiply as a tensor core, and fault where a device would") {
    struct Clear {
      ~Clear() { gs::cuda_emulator::clear_fault(); }
    } clear;
    std::vector<float> a(16 * 8 + 1), b(8 * 16);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = 0.25f * static_cast<float>(static_cast<int>(i % 7) - 3) + 1.0f / 1024;
    for (std::size_t i = 0; i < b.size(); ++i) b[i] = 0.5f * static_cast<float>(static_cast<int>(i % 5) - 2) + std::ldexp(1.0f, -13);
    float* da = device_array<float>(a.size());
    float* db = device_array<float>(b.size());
    float* dc = device_array<float>(16 * 16);
    REQUIRE(cudaMemcpy(da, a.data(), a.size() * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(db, b.data(), b.size() * sizeof(float), cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(error_of([&] { launch("tf32_product", 256, 1, 32, tf32_product_kernel, 0, true, da, db, dc); }) == "");
    const auto c = to_host(dc, 16 * 16);
    // Beside b's nonzero values (0.5 and 1 in magnitude) its 2⁻¹³ is below half of TF32's ulp and
    // rounds away; where b is 2⁻¹³ alone it stays. a's 2⁻¹⁰ stays, as TF32 holds it at a's
    // magnitudes below 1. Each product is then exact.
    double worst = 0;
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) {
        double want = 0;
        for (int p = 0; p < 8; ++p) {
          const double bv = 0.5 * (((p * 16 + j) % 5) - 2) + (((p * 16 + j) % 5) == 2 ? std::ldexp(1.0, -13) : 0.0);
          want += static_cast<double>(a[static_cast<std::size_t>(i * 8 + p)]) * bv;
        }
        worst = std::max(worst, std::abs(c[static_cast<std::size_t>(i * 16 + j)] - want));
      }
    CHECK(worst <= 8 * std::ldexp(1.0, -21));  // 8 FP32 roundings of sums below 8; b unrounded would be 2⁻¹³ off

    auto fault_of = [&](int shift, bool convert, unsigned threads) {
      const std::string e = error_of([&] { launch("tf32_product", 256, 1, threads, tf32_product_kernel, shift, convert, da, db, dc); });
      gs::cuda_emulator::clear_fault();
      return e;
    };
    const std::string misaligned = fault_of(1, true, 32);
    CHECK(misaligned.find("load_matrix_sync: the pointer must be 256-bit aligned") != std::string::npos);
    CHECK(misaligned.find("in tf32_product") != std::string::npos);
    CHECK(fault_of(0, false, 32).find("did not pass __float_to_tf32") != std::string::npos);
    CHECK(fault_of(0, true, 48).find("not whole warps") != std::string::npos);
    CHECK(fault_of(0, true, 64) == "");
    cudaFree(da);
    cudaFree(db);
    cudaFree(dc);
  }
}
