#pragma once
// Convolution by im2col + GEMM, and 2-D max pooling. Images are [C, H, W] planes, row-major.
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
