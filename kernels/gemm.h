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

// A dense layer y = act(x Wᵀ + b): x is rows × in, W out × in, y rows × out; all row-major, dense.
struct DenseShape {
  i64 rows = 0, in = 0, out = 0;
};

// Which block tiling a GPU backend's gemm and dense_backward use: chosen by shape (the
// default), or one pinned for the whole process by benchmarks and tests that compare the two.
// The CPU backend ignores it.
enum class GemmTiling { by_shape, small_tiles, large_tiles };
void set_gemm_tiling(GemmTiling tiling);
GemmTiling gemm_tiling();
// Whether a GPU backend may split a deep dense-layer forward with few tiles along its depth
// (by shape, the default), or never: pinned likewise by benchmarks and tests.
enum class GemmSplit { by_shape, never };
void set_gemm_split(GemmSplit split);
GemmSplit gemm_split();

// Whether a GPU backend multiplies FP32 products (gemm, gemm_bias_act, dense_backward and the
// three convolutions) in full FP32 on its CUDA cores (the default), or rounds their operands to TF32 and multiplies
// them on its tensor cores (kernels/cuda/tensor_core_tile.cuh): faster on a busy device, with a
// relative error near 2⁻¹¹ per product instead of 2⁻²⁴. FP64 products, and everything else,
// are unaffected. The CPU backend ignores it. Pinned for the whole process, like the tiling, by
// tests and benchmarks; `grokscope train --device cuda --tf32` pins it for the training steps.
enum class GemmPrecision { fp32, tf32 };
void set_gemm_precision(GemmPrecision precision);
GemmPrecision gemm_precision();
// Pins a precision for its lifetime, then puts back the one before (a run's training steps).
class ScopedGemmPrecision {
 public:
  explicit ScopedGemmPrecision(GemmPrecision precision) : before_(gemm_precision()) { set_gemm_precision(precision); }
  ~ScopedGemmPrecision() { set_gemm_precision(before_); }
  ScopedGemmPrecision(const ScopedGemmPrecision&) = delete;
  ScopedGemmPrecision& operator=(const ScopedGemmPrecision&) = delete;

 private:
  GemmPrecision before_;
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
  // A dense layer's backward pass. From the gradient g of y: gz = g ⊙ act'(y) (act relu, tanh or
  // sigmoid, each differentiated from its output y; none: gz = g), then gx = gz W, gW = gzᵀ x and
  // gb = the column sums of gz. A null gx, gw or gb is not computed. gz_scratch holds rows × out
  // values where a backend may keep gz (needed only with act).
  virtual void dense_backward(DType dtype, const DenseShape& s, std::optional<Unary> act, const void* x, const void* w,
                              const void* y, const void* g, void* gz_scratch, void* gx, void* gw, void* gb) = 0;
};

}  // namespace gs::kernels
