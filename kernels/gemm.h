#pragma once
// Dense matrix product, row-major: C = alpha * op(A) * op(B) + beta * C with op(X) = X or Xᵀ;
// and the same with a dense layer's bias and activation applied as C is stored.
#include <optional>

#include "kernels/elementwise.h"
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
  // A dense layer's forward pass: C = act(op(A) op(B) + 1 biasᵀ), bias [n] (null: none), act
  // relu, tanh or sigmoid (none: the identity), with C written once. C must be dense (ldc = n).
  virtual void gemm_bias_act(DType dtype, const GemmShape& s, const void* a, const void* b, const void* bias,
                             std::optional<Unary> act, void* c) = 0;
};

}  // namespace gs::kernels
