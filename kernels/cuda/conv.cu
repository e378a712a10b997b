// im2col / col2im for convolution as GEMM, and 2-D max pooling. col2im and the pooling backward
// gather (one thread per input pixel, its contributions in the CPU backend's order) rather than
// scatter with atomics, so they are deterministic.
#include "kernels/cuda/cuda_backend.h"

namespace gs::kernels::cuda {

namespace {

__device__ inline i64 global_index() { return blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; }

// One thread per column-matrix entry (c, ky, kx, oy, ox).
template <class T>
__global__ void im2col_kernel(ConvGeometry g, const T* image, T* col) {
  const i64 oh = g.out_h(), ow = g.out_w();
  const i64 total = g.patch_size() * oh * ow;
  const i64 i = global_index();
  if (i >= total) return;
  const i64 ox = i % ow, oy = (i / ow) % oh, rest = i / (ow * oh);
  const i64 kx = rest % g.kernel_w, ky = (rest / g.kernel_w) % g.kernel_h, c = rest / (g.kernel_w * g.kernel_h);
  const i64 iy = oy * g.stride + ky - g.padding, ix = ox * g.stride + kx - g.padding;
  col[i] = (iy >= 0 && iy < g.height && ix >= 0 && ix < g.width) ? image[(c * g.height + iy) * g.width + ix] : T(0);
}

template <class T>
__global__ void col2im_kernel(ConvGeometry g, const T* col, T* image) {
  const i64 oh = g.out_h(), ow = g.out_w();
  const i64 i = global_index();
  if (i >= g.channels * g.height * g.width) return;
  const i64 ix = i % g.width, iy = (i / g.width) % g.height, c = i / (g.width * g.height);
  T acc = T(0);
  for (i64 ky = 0; ky < g.kernel_h; ++ky) {
    const i64 ty = iy + g.padding - ky;
    if (ty < 0 || ty % g.stride != 0 || ty / g.stride >= oh) continue;
    for (i64 kx = 0; kx < g.kernel_w; ++kx) {
      const i64 tx = ix + g.padding - kx;
      if (tx < 0 || tx % g.stride != 0 || tx / g.stride >= ow) continue;
      acc += col[(((c * g.kernel_h + ky) * g.kernel_w + kx) * oh + ty / g.stride) * ow + tx / g.stride];
    }
  }
  image[i] = acc;
}

template <class T>
__global__ void max_pool2d_kernel(PoolGeometry g, const T* x, T* y, std::int32_t* argmax) {
  const i64 oh = g.out_h(), ow = g.out_w();
  const i64 i = global_index();
  if (i >= g.planes * oh * ow) return;
  const i64 ox = i % ow, oy = (i / ow) % oh, p = i / (ow * oh);
  const T* plane = x + p * g.height * g.width;
  T best = -INFINITY;
  i64 at = (oy * g.stride) * g.width + ox * g.stride;
  for (i64 ky = 0; ky < g.kernel; ++ky)
    for (i64 kx = 0; kx < g.kernel; ++kx) {
      const i64 idx = (oy * g.stride + ky) * g.width + ox * g.stride + kx;
      const T v = plane[idx];
      if (v > best || v != v) {  // NaN propagates, as torch's max_pool2d
        best = v;
        at = idx;
        if (v != v) goto done;
      }
    }
done:
  y[i] = best;
  argmax[i] = static_cast<std::int32_t>(at);
}

// One thread per input pixel: the gradients of the windows whose winner it is, windows in order.
template <class T>
__global__ void max_pool2d_backward_kernel(PoolGeometry g, const T* gy, const std::int32_t* argmax, T* gx) {
  const i64 oh = g.out_h(), ow = g.out_w();
  const i64 i = global_index();
  if (i >= g.planes * g.height * g.width) return;
  const i64 within = i % (g.height * g.width), p = i / (g.height * g.width);
  const i64 iy = within / g.width, ix = within % g.width;
  // Windows oy with oy·stride ≤ iy < oy·stride + kernel, likewise ox.
  const i64 oy_lo = iy >= g.kernel ? (iy - g.kernel) / g.stride + 1 : 0, oy_hi = iy / g.stride < oh - 1 ? iy / g.stride : oh - 1;
  const i64 ox_lo = ix >= g.kernel ? (ix - g.kernel) / g.stride + 1 : 0, ox_hi = ix / g.stride < ow - 1 ? ix / g.stride : ow - 1;
  T acc = T(0);
  for (i64 oy = oy_lo; oy <= oy_hi; ++oy)
    for (i64 ox = ox_lo; ox <= ox_hi; ++ox) {
      const i64 o = (p * oh + oy) * ow + ox;
      if (argmax[o] == within) acc += gy[o];
    }
  gx[i] = acc;
}

}  // namespace

void CudaBackend::im2col(DType dtype, const ConvGeometry& g, const void* image, void* col) {
  const i64 total = g.patch_size() * g.out_h() * g.out_w();
  if (total == 0) return;
  with_float(dtype, "im2col", [&]<class T>() {
    launch("im2col", total, blocks_for(total), threads_per_block, im2col_kernel<T>, g, static_cast<const T*>(image),
           static_cast<T*>(col));
  });
}

void CudaBackend::col2im(DType dtype, const ConvGeometry& g, const void* col, void* image) {
  const i64 pixels = g.channels * g.height * g.width;
  if (pixels == 0) return;
  with_float(dtype, "col2im", [&]<class T>() {
    launch("col2im", pixels, blocks_for(pixels), threads_per_block, col2im_kernel<T>, g, static_cast<const T*>(col),
           static_cast<T*>(image));
  });
}

void CudaBackend::max_pool2d(DType dtype, const PoolGeometry& g, const void* x, void* y, std::int32_t* argmax) {
  const i64 outs = g.planes * g.out_h() * g.out_w();
  if (outs == 0) return;
  with_float(dtype, "max_pool2d", [&]<class T>() {
    launch("max_pool2d", outs, blocks_for(outs), threads_per_block, max_pool2d_kernel<T>, g, static_cast<const T*>(x),
           static_cast<T*>(y), argmax);
  });
}

void CudaBackend::max_pool2d_backward(DType dtype, const PoolGeometry& g, const void* gy, const std::int32_t* argmax,
                                      void* gx) {
  const i64 pixels = g.planes * g.height * g.width;
  if (pixels == 0) return;
  with_float(dtype, "max_pool2d_backward", [&]<class T>() {
    launch("max_pool2d_backward", pixels, blocks_for(pixels), threads_per_block, max_pool2d_backward_kernel<T>, g,
           static_cast<const T*>(gy), argmax, static_cast<T*>(gx));
  });
}

}  // namespace gs::kernels::cuda
