#include <cblas.h>

#include "kernels/cpu/cpu_backend.h"

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

}  // namespace gs::kernels::cpu
