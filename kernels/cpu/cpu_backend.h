#pragma once
// The CPU backend: BLAS for GEMM, OpenMP threads for the elementwise loops that are large enough
// to pay for them. Each family's member functions live in the .cpp of that family.
#include "engine/error.h"
#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#include "kernels/backend.h"

namespace gs::kernels::cpu {

// Loops shorter than this stay on one thread: waking threads costs more than a small loop.
inline constexpr i64 parallel_grain = 1 << 15;

// Flushes subnormal inputs and results to zero on this thread for its lifetime (x86 DAZ + FTZ).
// x86 takes ~100 cycles per subnormal operand; late in a run the moment estimates of idle
// weights decay into that range, and the AdamW step of the MNIST MLP with 6% of them there takes
// 1.33 ms instead of 0.24 ms (bench_train_step, BM_adamw_step_*; 0.24 ms with this flush). The
// values affected are below 1.2e-38 (f32); nothing above changes.
class FlushSubnormals {
 public:
#if defined(__SSE__)
  FlushSubnormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }  // FTZ (bit 15), DAZ (bit 6)
  ~FlushSubnormals() { _mm_setcsr(saved_); }
#endif
  FlushSubnormals(const FlushSubnormals&) = delete;
  FlushSubnormals& operator=(const FlushSubnormals&) = delete;

 private:
#if defined(__SSE__)
  unsigned saved_;
#endif
};

// Calls f.template operator()<T>() with T the C++ type of a floating dtype.
template <class F>
void with_float_type(DType dtype, const char* entry_point, F&& f) {
  switch (dtype) {
    case DType::f32: f.template operator()<float>(); return;
    case DType::f64: f.template operator()<double>(); return;
    case DType::i32: break;
  }
  fail("{} works on f32 or f64 tensors, got {}", entry_point, dtype_name(dtype));
}

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }

  void* allocate(std::size_t bytes) override;
  void release(void* ptr) override;
  void poison(void* ptr, std::size_t bytes) override;
  void copy_from_host(void* dst, const void* host_src, std::size_t bytes) override;
  void copy_to_host(void* host_dst, const void* src, std::size_t bytes) override;
  void copy(void* dst, const void* src, std::size_t bytes) override;
  void* allocate_host(std::size_t bytes) override;
  void release_host(void* ptr) override;
  void copy_from_host_queued(void* dst, const void* host_src, std::size_t bytes) override;
  void copy_to_host_queued(void* host_dst, const void* src, std::size_t bytes) override;
  void synchronize() override;
  void fill(DType dtype, i64 n, double value, void* y) override;
  void convert(DType from, DType to, i64 n, const void* x, void* y) override;
  void gather_rows(DType dtype, i64 rows, i64 row_elements, i64 source_rows, const void* x, const std::int32_t* indices,
                   void* y) override;

  void gemm(DType dtype, const GemmShape& s, double alpha, const void* a, const void* b, double beta,
            void* c) override;
  void gemm_bias_act(DType dtype, const GemmShape& s, const void* a, const void* b, const void* bias,
                     std::optional<Unary> act, void* c) override;
  void dense_backward(DType dtype, const DenseShape& s, std::optional<Unary> act, const void* x, const void* w,
                      const void* y, const void* g, void* gz_scratch, void* gx, void* gw, void* gb) override;

  void unary(Unary op, DType dtype, i64 n, const void* x, void* y) override;
  void unary_backward(Unary op, DType dtype, i64 n, const void* x, const void* y, const void* gy,
                      void* gx) override;
  void binary(Binary op, DType dtype, const Broadcast& b, const void* x, const void* y,
              void* out) override;
  void reduce_to_operand(DType dtype, const Broadcast& b, const std::array<i64, 4>& operand_stride,
                         i64 operand_numel, double scale, const void* g_out,
                         const std::array<i64, 4>& other_stride, const void* other,
                         void* g_operand) override;
  void axpby(DType dtype, i64 n, double alpha, const void* x, double beta, void* y) override;
  void broadcast_rows(DType dtype, i64 rows, i64 cols, const void* row, void* y) override;
  void sum_rows(DType dtype, i64 rows, i64 cols, const void* x, void* y) override;
  void sum(DType dtype, i64 n, const void* x, void* y) override;

  void log_softmax(DType dtype, i64 rows, i64 cols, const void* x, void* y) override;
  void log_softmax_backward(DType dtype, i64 rows, i64 cols, const void* y, const void* gy,
                            void* gx) override;
  void cross_entropy(DType dtype, i64 rows, i64 cols, const void* x, const std::int32_t* labels, void* logp, void* out,
                     void* one, void* grad) override;
  void one_hot(DType dtype, i64 rows, i64 classes, const std::int32_t* labels, void* y) override;
  void nll_backward(DType dtype, i64 rows, i64 cols, const std::int32_t* labels, const void* g_out,
                    void* g_logp) override;
  void mse(DType dtype, i64 n, const void* a, const void* b, void* out, void* one) override;
  void mse_backward(DType dtype, i64 n, const void* a, const void* b, const void* g_out,
                    void* ga) override;
  void mse_one_hot(DType dtype, i64 rows, i64 cols, const void* x, const std::int32_t* labels, void* out,
                   void* one, void* grad) override;
  void mse_one_hot_backward(DType dtype, i64 rows, i64 cols, const void* x, const std::int32_t* labels, const void* g_out,
                            void* gx) override;
  void argmax_rows(DType dtype, i64 rows, i64 cols, const void* x, std::int32_t* out) override;
  i64 count_equal(i64 n, const std::int32_t* a, const std::int32_t* b) override;

  bool conv2d_keeps_patches() const override { return true; }
  void conv2d_forward(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* x, const void* w,
                      void* y, void* patches) override;
  void conv2d_backward_data(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* gy,
                            const void* w, void* gx) override;
  void conv2d_backward_weight(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* x,
                              const void* gy, const void* patches, void* gw) override;
  void im2col(DType dtype, const ConvGeometry& g, const void* image, void* col) override;
  void col2im(DType dtype, const ConvGeometry& g, const void* col, void* image) override;
  void max_pool2d(DType dtype, const PoolGeometry& g, const void* x, void* y,
                  std::int32_t* argmax) override;
  void max_pool2d_backward(DType dtype, const PoolGeometry& g, const void* gy,
                           const std::int32_t* argmax, void* gx) override;

  void sgd_step(DType dtype, i64 n, void* param, const void* grad, void* momentum_buffer,
                const SgdStep& s) override;
  void adam_steps(DType dtype, const std::vector<AdamTensor>& tensors, const AdamStep& s, AdamCounters* counters,
                  bool count_step) override;

  void add_gram_weighted(DType dtype, const KernelTile& tile, const void* t, const void* g, i64 ldg, void* k,
                         bool accumulate) override;
  void add_output_block(DType dtype, const KernelTile& tile, double alpha2, const void* g, i64 ldg, void* k) override;
  void dot_f64(DType dtype, i64 n, const void* x, const void* y, double* out) override;

  void layer_centers(const LayerClasses& layer, double* mean, double* centers) override;
  void manifold_points(const LayerClasses& layer, const double* mean, const double* basis, i64 k, double* work,
                       double* norms) override;
  void span_coordinates(const std::vector<SpanProblem>& manifolds) override;
  void solve_anchors(const std::vector<AnchorProblem>& manifolds, double tolerance) override;
  void anchor_terms(const AnchorProblem& p, const double* sz, const double* gz, double* anchors, double* terms) override;
};

// Non-negative least squares min_{z ≥ 0} ‖A z − y‖² given G = AᵀA (m × m, row-major) and Aᵀy, by
// Lawson and Hanson's active-set method (1974, ch. 23); z has m entries. The anchor solves call it.
void nnls_gram(const double* gram, const double* aty, i64 m, double tolerance, double* z);

}  // namespace gs::kernels::cpu
