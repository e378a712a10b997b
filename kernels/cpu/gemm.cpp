#include <cblas.h>
#include <fmt/format.h>
#ifdef _OPENMP  // the fuzz target builds the CPU kernels without OpenMP
#include <omp.h>
#endif

#include <string>

#include "kernels/cpu/cpu_backend.h"

namespace gs::kernels {

std::string cpu_description() {
  const std::string config = openblas_get_config();
  const auto end = config.find_last_not_of(' ');  // OpenBLAS pads it with a space
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
#else
  const int threads = 1;
#endif
  return fmt::format("{}; OpenMP threads: {}", config.substr(0, end == std::string::npos ? 0 : end + 1), threads);
}

}  // namespace gs::kernels

namespace gs::kernels::cpu {

void CpuBackend::gemm(DType dtype, const GemmShape& s, double alpha, const void* a, const void* b,
                      double beta, void* c) {
  if (s.m == 0 || s.n == 0) return;
  auto ta = s.transpose_a ? CblasTrans : CblasNoTrans;
  auto tb = s.transpose_b ? CblasTrans : CblasNoTrans;
  // BLAS with k = 0 scales C by beta, as the product of empty matrices should.
  switch (dtype) {
    case DType::f32:
      cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(s.m), static_cast<int>(s.n),
                  static_cast<int>(s.k), static_cast<float>(alpha), static_cast<const float*>(a),
                  static_cast<int>(s.lda), static_cast<const float*>(b), static_cast<int>(s.ldb),
                  static_cast<float>(beta), static_cast<float*>(c), static_cast<int>(s.ldc));
      return;
    case DType::f64:
      cblas_dgemm(CblasRowMajor, ta, tb, static_cast<int>(s.m), static_cast<int>(s.n),
                  static_cast<int>(s.k), alpha, static_cast<const double*>(a),
                  static_cast<int>(s.lda), static_cast<const double*>(b), static_cast<int>(s.ldb),
                  beta, static_cast<double*>(c), static_cast<int>(s.ldc));
      return;
    case DType::i32: break;
  }
  fail("gemm works on f32 or f64 tensors, got {}", dtype_name(dtype));
}

void CpuBackend::gemm_bias_act(DType dtype, const GemmShape& s, const void* a, const void* b, const void* bias,
                               std::optional<Unary> act, void* c) {
  GS_CHECK(s.ldc == s.n, "gemm_bias_act: C must be dense, got ldc = {} for {} columns", s.ldc, s.n);
  // BLAS cannot apply either as it stores; the bias goes in first so that the GEMM adds onto it
  // (beta = 1), and the activation runs over C in place while it is still in cache.
  if (bias) broadcast_rows(dtype, s.m, s.n, bias, c);
  gemm(dtype, s, 1.0, a, b, bias ? 1.0 : 0.0, c);
  if (act) unary(*act, dtype, s.m * s.n, c, c);
}

void CpuBackend::dense_backward(DType dtype, const DenseShape& s, std::optional<Unary> act, const void* x,
                                const void* w, const void* y, const void* g, void* gz_scratch, void* gx, void* gw,
                                void* gb) {
  // Unfused: BLAS reads its operands from memory, so gz is materialized first.
  const void* gz = g;
  if (act) {
    GS_CHECK(*act != Unary::gelu, "dense_backward: gelu's derivative needs its input, not its output");
    GS_CHECK(y && gz_scratch, "dense_backward: an activation needs the layer's output and gz_scratch");
    unary_backward(*act, dtype, s.rows * s.out, y, y, g, gz_scratch);  // relu reads y as its input: y > 0 iff z > 0
    gz = gz_scratch;
  }
  if (gx) gemm(dtype, {false, false, s.rows, s.in, s.out, s.out, s.in, s.in}, 1.0, gz, w, 0.0, gx);
  if (gw) gemm(dtype, {true, false, s.out, s.in, s.rows, s.out, s.in, s.in}, 1.0, gz, x, 0.0, gw);
  if (gb) sum_rows(dtype, s.rows, s.out, gz, gb);
}

}  // namespace gs::kernels::cpu
