#pragma once
// Softmax, losses and classification counts over row-major [rows, classes] logits.
#include "kernels/family.h"

namespace gs::kernels {

class LossKernels {
 public:
  virtual ~LossKernels() = default;
  virtual void log_softmax(DType dtype, i64 rows, i64 cols, const void* x, void* y) = 0;
  // gx = gy - exp(y) Σ_row gy, with y the log-softmax output.
  virtual void log_softmax_backward(DType dtype, i64 rows, i64 cols, const void* y, const void* gy,
                                    void* gx) = 0;
  // The losses (cross_entropy, mse, mse_one_hot) write their value to out[0] and, where `one` is
  // not null, 1 to one[0]: backward()'s seed, written by the loss's own launch instead of a fill of
  // its own. Where `grad` is not null they also write the gradient for that seed (a cotangent of
  // 1), the values their backward kernels write for g_out = 1, bit for bit: backward() from the
  // loss then launches nothing for it.
  //
  // Cross-entropy in one launch: logp = log_softmax(x) where logp is not null, as log_softmax
  // writes it, and out[0] = -mean_r logp[r, label_r]; grad is what nll_backward, then
  // log_softmax_backward, write. A label outside [0, cols) makes the loss NaN (and its row of grad
  // 0, as there): the ops check labels on the host, but labels on a GPU are not read back (no host
  // round trip in a step).
  virtual void cross_entropy(DType dtype, i64 rows, i64 cols, const void* x, const std::int32_t* labels, void* logp,
                             void* out, void* one, void* grad) = 0;
  // g_logp[r, c] = -g_out / rows where c = label_r, else 0.
  virtual void nll_backward(DType dtype, i64 rows, i64 cols, const std::int32_t* labels,
                            const void* g_out, void* g_logp) = 0;
  // out[0] = mean over all n elements of (a - b)², torch.nn.MSELoss()'s default reduction.
  virtual void mse(DType dtype, i64 n, const void* a, const void* b, void* out, void* one) = 0;
  // ga = 2 (a - b) g_out / n.
  virtual void mse_backward(DType dtype, i64 n, const void* a, const void* b, const void* g_out,
                            void* ga) = 0;
  // mse and mse_backward against one_hot(labels, cols), without storing the targets: the same
  // values, summed in the same order, as one_hot followed by mse (a label outside [0, cols) makes
  // the loss and its row's gradient NaN). A training step's MSE loss is then one launch, not two.
  virtual void mse_one_hot(DType dtype, i64 rows, i64 cols, const void* x, const std::int32_t* labels, void* out,
                           void* one, void* grad) = 0;
  virtual void mse_one_hot_backward(DType dtype, i64 rows, i64 cols, const void* x, const std::int32_t* labels,
                                    const void* g_out, void* gx) = 0;
  // out[r] = the first index of the row's maximum (NaN counts as maximal, as torch.argmax).
  virtual void argmax_rows(DType dtype, i64 rows, i64 cols, const void* x, std::int32_t* out) = 0;
  // y[r, c] = 1 where labels[r] == c, else 0; a label outside [0, classes) makes its row NaN.
  virtual void one_hot(DType dtype, i64 rows, i64 classes, const std::int32_t* labels, void* y) = 0;
  // The number of positions where a[i] == b[i].
  virtual i64 count_equal(i64 n, const std::int32_t* a, const std::int32_t* b) = 0;
};

}  // namespace gs::kernels
