#pragma once
// Dense matrix product, row-major: C = alpha * op(A) * op(B) + beta * C with op(X) = X or Xᵀ.
#include "kernels/family.h"

namespace gs::kernels {

struct GemmShape {
  bool transpose_a = false, transpose_b = false;
  i64 m = 0, n = 0, k = 0;  // op(A) is m×k, op(B) is k×n, C is m×n
  i64 lda = 0, ldb = 0, ldc = 0;
};

class GemmKernels {
 public:
  virtual ~GemmKernels() = default;
  virtual void gemm(DType dtype, const GemmShape& s, double alpha, const void* a, const void* b,
                    double beta, void* c) = 0;
};

}  // namespace gs::kernels
