#pragma once
// Convolution of a batch of images, its two gradients, the im2col / col2im pair the NTK probe's
// convolution factors use, and 2-D max pooling. Images are [C, H, W] planes, row-major; filters
// [Co, C, kh, kw], as PyTorch's. The cpu backend convolves by im2col + BLAS GEMM per image, the
// CUDA backend by implicit GEMM over the whole batch (patches gathered on the fly, one launch).
#include "kernels/family.h"

namespace gs::kernels {

struct ConvGeometry {
  i64 channels = 0, height = 0, width = 0;
  i64 kernel_h = 0, kernel_w = 0, stride = 1, padding = 0;
  constexpr i64 out_h() const { return (height + 2 * padding - kernel_h) / stride + 1; }
  constexpr i64 out_w() const { return (width + 2 * padding - kernel_w) / stride + 1; }
  constexpr i64 patch_size() const { return channels * kernel_h * kernel_w; }  // rows of the column matrix
};

struct PoolGeometry {
  i64 planes = 0, height = 0, width = 0;  // planes = N * C
  i64 kernel = 2, stride = 2;
  constexpr i64 out_h() const { return (height - kernel) / stride + 1; }
  constexpr i64 out_w() const { return (width - kernel) / stride + 1; }
};

class ConvKernels {
 public:
  virtual ~ConvKernels() = default;
  // Whether conv2d_forward builds patch matrices it can leave for conv2d_backward_weight (the
  // cpu's im2col: keeping them spares the backward pass rebuilding them); false where they are
  // gathered on the fly (CUDA's implicit GEMM), which needs no such buffer.
  virtual bool conv2d_keeps_patches() const = 0;
  // y [images, Co, oh, ow] = the cross-correlation of x [images, C, H, W] with w [Co, C, kh, kw],
  // no bias (y is overwritten). patches: null, or where a backend that keeps patches leaves each
  // image's im2col matrix ([images, patch_size, oh·ow]).
  virtual void conv2d_forward(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* x,
                              const void* w, void* y, void* patches) = 0;
  // gx [images, C, H, W] = ∂⟨gy, y⟩/∂x for gy [images, Co, oh, ow] (gx is overwritten).
  virtual void conv2d_backward_data(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* gy,
                                    const void* w, void* gx) = 0;
  // gw [Co, C, kh, kw] = ∂⟨gy, y⟩/∂w, summed over images and pixels in an order that depends on
  // the sizes only, never on timing (gw is overwritten). patches: null, or what conv2d_forward
  // left there for this x.
  virtual void conv2d_backward_weight(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* x,
                                      const void* gy, const void* patches, void* gw) = 0;
  // col[(c, ky, kx), (oy, ox)] = x[c, oy*stride + ky - pad, ox*stride + kx - pad] (0 outside).
  virtual void im2col(DType dtype, const ConvGeometry& g, const void* image, void* col) = 0;
  // image = Σ of col's entries back onto the pixels they came from (image is overwritten).
  virtual void col2im(DType dtype, const ConvGeometry& g, const void* col, void* image) = 0;
  // y = max over each window; argmax holds the winner's flat index within its plane.
  virtual void max_pool2d(DType dtype, const PoolGeometry& g, const void* x, void* y,
                          std::int32_t* argmax) = 0;
  virtual void max_pool2d_backward(DType dtype, const PoolGeometry& g, const void* gy,
                                   const std::int32_t* argmax, void* gx) = 0;
};

}  // namespace gs::kernels
