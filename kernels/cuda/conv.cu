// Convolution as implicit GEMM: the batch's forward pass and both gradients are each one tiled
// GEMM (tiled_gemm.cuh) whose image operand is gathered on the fly, so no column matrix is
// written and a layer is one launch, not one per image. The weight gradient's depth (images ×
// pixels) is split across blocks and the partial sums added in split order by a second kernel:
// deterministic, no atomics. Also im2col / col2im (the NTK probe's convolution factors) and 2-D
// max pooling; col2im and the pooling backward gather (one thread per input pixel, in the CPU
// backend's order) rather than scatter with atomics, so they are deterministic too.
//
// Every convolution takes the GEMMs' small tiling for now (tilings.cuh: 64 × 64, 4 × 4 per thread,
// half the depth for f64), or their TF32 tensor-core tiles where TF32 is pinned. Shapes to tune
// against cuDNN in bench_cuda once a GPU run has timed them.
#include <algorithm>
#include <climits>
#include <string>

#include "kernels/cuda/tilings.cuh"

namespace gs::kernels::cuda {

namespace {

// Index arithmetic of the gathers in 32 bits (a 64-bit division costs several 32-bit ones);
// conv_shape() below refuses tensors too large for that.
using u32 = unsigned;

// The sizes a convolution's gathers need, as 32-bit values.
struct ConvShape {
  u32 channels, height, width, kernel_h, kernel_w, stride, padding;
  u32 out_h, out_w, filters;
  __device__ u32 taps() const { return kernel_h * kernel_w; }
  __device__ u32 pixels() const { return out_h * out_w; }
};

// B[(c, ky, kx), (image, oy, ox)] = x[image, c, oy·stride + ky − pad, ox·stride + kx − pad]: the
// column matrices of all images side by side (forward; along the pixels).
template <class T>
struct ImagePatches {
  const T* x;
  ConvShape s;
  bool along_k;
  __device__ T operator()(i64 p, i64 j) const {
    const u32 tap = static_cast<u32>(p) % s.taps(), c = static_cast<u32>(p) / s.taps();
    const u32 pixel = static_cast<u32>(j) % s.pixels(), image = static_cast<u32>(j) / s.pixels();
    return at(c, tap, image, pixel);
  }
  __device__ T at(u32 c, u32 tap, u32 image, u32 pixel) const {
    const int iy = static_cast<int>((pixel / s.out_w) * s.stride + tap / s.kernel_w) - static_cast<int>(s.padding);
    const int ix = static_cast<int>((pixel % s.out_w) * s.stride + tap % s.kernel_w) - static_cast<int>(s.padding);
    if (iy < 0 || ix < 0 || iy >= static_cast<int>(s.height) || ix >= static_cast<int>(s.width)) return T(0);
    return x[((image * s.channels + c) * s.height + static_cast<u32>(iy)) * s.width + static_cast<u32>(ix)];
  }
};

// The same patches indexed the other way round, B[(image, oy, ox), (c, ky, kx)]: the weight
// gradient's operand, whose depth runs over images and pixels (contiguous along it).
template <class T>
struct PatchesByPixel {
  ImagePatches<T> patches;
  bool along_k;
  __device__ T operator()(i64 p, i64 j) const {
    const u32 pixel = static_cast<u32>(p) % patches.s.pixels(), image = static_cast<u32>(p) / patches.s.pixels();
    const u32 tap = static_cast<u32>(j) % patches.s.taps(), c = static_cast<u32>(j) / patches.s.taps();
    return patches.at(c, tap, image, pixel);
  }
};

// A[c, (co, ky, kx)] = w[co, c, ky, kx]: the filters seen from their input channel (input gradient).
template <class T>
struct FiltersByInput {
  const T* w;
  ConvShape s;
  bool along_k;
  __device__ T operator()(i64 i, i64 p) const {
    const u32 tap = static_cast<u32>(p) % s.taps(), co = static_cast<u32>(p) / s.taps();
    return w[(co * s.channels + static_cast<u32>(i)) * s.taps() + tap];
  }
};

// B[(co, ky, kx), (image, iy, ix)] = gy[image, co, oy, ox] where oy·stride − pad + ky = iy (and
// likewise ox), 0 where no output pixel's window puts tap (ky, kx) on (iy, ix).
template <class T>
struct OutputGradsByTap {
  const T* gy;
  ConvShape s;
  bool along_k;
  __device__ T operator()(i64 p, i64 j) const {
    const u32 tap = static_cast<u32>(p) % s.taps(), co = static_cast<u32>(p) / s.taps();
    const u32 in_pixels = s.height * s.width;
    const u32 pixel = static_cast<u32>(j) % in_pixels, image = static_cast<u32>(j) / in_pixels;
    const int ty = static_cast<int>(pixel / s.width + s.padding) - static_cast<int>(tap / s.kernel_w);
    const int tx = static_cast<int>(pixel % s.width + s.padding) - static_cast<int>(tap % s.kernel_w);
    if (ty < 0 || tx < 0) return T(0);
    const u32 uy = static_cast<u32>(ty), ux = static_cast<u32>(tx);
    if (uy % s.stride != 0 || ux % s.stride != 0 || uy / s.stride >= s.out_h || ux / s.stride >= s.out_w) return T(0);
    return gy[((image * s.filters + co) * s.out_h + uy / s.stride) * s.out_w + ux / s.stride];
  }
};

// A[co, (image, oy, ox)] = gy[image, co, oy, ox] (weight gradient).
template <class T>
struct OutputGradsByFilter {
  const T* gy;
  ConvShape s;
  bool along_k;
  __device__ T operator()(i64 i, i64 p) const {
    const u32 pixel = static_cast<u32>(p) % s.pixels(), image = static_cast<u32>(p) / s.pixels();
    return gy[(image * s.filters + static_cast<u32>(i)) * s.pixels() + pixel];
  }
};

// y[image, co, pixel] = Σ_(c,ky,kx) w[co, (c,ky,kx)] · patches: m = filters, n = images · pixels.
template <class Tiling, class T = typename Tiling::type>
__global__ void __launch_bounds__(Tiling::threads)
    conv2d_forward_kernel(ConvShape s, i64 images, const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y) {
  begin_after_preceding_kernels();
  const i64 patch = static_cast<i64>(s.channels) * s.kernel_h * s.kernel_w, pixels = static_cast<i64>(s.out_h) * s.out_w;
  const i64 row0 = static_cast<i64>(blockIdx.y) * Tiling::bm, col0 = static_cast<i64>(blockIdx.x) * Tiling::bn;
  Tiling::tile(row0, col0, s.filters, images * pixels, 0, patch, dense_a(w, patch, false), ImagePatches<T>{x, s, false},
               [&](i64 co, i64 j, T value) { y[((j / pixels) * s.filters + co) * pixels + j % pixels] = value; });
}

// gx[image, c, pixel] = Σ_(co,ky,kx) w[co, c, ky, kx] · gy at the output pixel that tap puts on it:
// m = channels, n = images · height · width, depth = filters · taps.
template <class Tiling, class T = typename Tiling::type>
__global__ void __launch_bounds__(Tiling::threads)
    conv2d_backward_data_kernel(ConvShape s, i64 images, const T* __restrict__ gy, const T* __restrict__ w,
                                T* __restrict__ gx) {
  begin_after_preceding_kernels();
  const i64 in_pixels = static_cast<i64>(s.height) * s.width;
  const i64 row0 = static_cast<i64>(blockIdx.y) * Tiling::bm, col0 = static_cast<i64>(blockIdx.x) * Tiling::bn;
  Tiling::tile(row0, col0, s.channels, images * in_pixels, 0, static_cast<i64>(s.filters) * s.kernel_h * s.kernel_w,
               FiltersByInput<T>{w, s, true}, OutputGradsByTap<T>{gy, s, false}, [&](i64 c, i64 j, T value) {
                 gx[((j / in_pixels) * s.channels + c) * in_pixels + j % in_pixels] = value;
               });
}

// Split blockIdx.z of gw = Σ_(image,pixel) gy ⊗ patches over its slice [z·chunk, (z+1)·chunk) of
// the depth, into partial[z] (or straight into gw when there is one split).
template <class Tiling, class T = typename Tiling::type>
__global__ void __launch_bounds__(Tiling::threads)
    conv2d_backward_weight_kernel(ConvShape s, i64 images, i64 chunk, const T* __restrict__ x,
                                  const T* __restrict__ gy, T* __restrict__ partial) {
  begin_after_preceding_kernels();
  const i64 patch = static_cast<i64>(s.channels) * s.kernel_h * s.kernel_w;
  const i64 depth = images * s.out_h * s.out_w, begin = static_cast<i64>(blockIdx.z) * chunk;
  T* out = partial + static_cast<i64>(blockIdx.z) * s.filters * patch;
  const i64 row0 = static_cast<i64>(blockIdx.y) * Tiling::bm, col0 = static_cast<i64>(blockIdx.x) * Tiling::bn;
  Tiling::tile(row0, col0, s.filters, patch, begin, begin + chunk < depth ? begin + chunk : depth,
               OutputGradsByFilter<T>{gy, s, true}, PatchesByPixel<T>{ImagePatches<T>{x, s, true}, true},
               [&](i64 co, i64 q, T value) { out[co * patch + q] = value; });
}

// gw[q] = Σ_z partial[z][q], z in order, in f64.
template <class T>
__global__ void sum_splits_kernel(i64 n, i64 splits, const T* __restrict__ partial, T* __restrict__ gw) {
  begin_after_preceding_kernels();
  const i64 q = blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x;
  if (q >= n) return;
  double acc = 0;
  for (i64 z = 0; z < splits; ++z) acc += static_cast<double>(partial[z * n + q]);
  gw[q] = static_cast<T>(acc);
}

__device__ inline i64 global_index() { return blockIdx.x * static_cast<i64>(blockDim.x) + threadIdx.x; }

// One thread per column-matrix entry (c, ky, kx, oy, ox).
template <class T>
__global__ void im2col_kernel(ConvGeometry g, const T* image, T* col) {
  begin_after_preceding_kernels();
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
  begin_after_preceding_kernels();
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
  begin_after_preceding_kernels();
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
  begin_after_preceding_kernels();
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

namespace {

// The 32-bit shape of a convolution, refusing (with the sizes and the fix) a batch whose
// tensors have 2³¹ elements or more.
ConvShape conv_shape(const char* what, const ConvGeometry& g, i64 images, i64 filters) {
  const i64 largest = std::max({images * g.channels * g.height * g.width, images * filters * g.out_h() * g.out_w(),
                                filters * g.patch_size()});
  if (largest >= INT_MAX)
    throw Error(std::string(what) + ": a tensor of " + std::to_string(largest) +
                " elements is too large for the CUDA convolution's 32-bit indexing; convolve fewer images at once");
  auto u = [](i64 v) { return static_cast<u32>(v); };
  return {u(g.channels), u(g.height), u(g.width), u(g.kernel_h), u(g.kernel_w), u(g.stride), u(g.padding),
          u(g.out_h()), u(g.out_w()), u(filters)};
}

// How many slices the weight gradient's depth is cut into: enough blocks for about two waves of
// an H200's 132 SMs, each slice at least eight slabs deep, all partials within the scratch. A
// function of the sizes only, so the sum's order never changes between runs.
i64 weight_splits(i64 tiles, i64 depth, i64 slab, std::size_t partial_bytes) {
  constexpr i64 target_blocks = 264;
  i64 splits = std::max<i64>(1, target_blocks / std::max<i64>(1, tiles));
  splits = std::min(splits, std::max<i64>(1, depth / (8 * slab)));
  splits = std::min<i64>(splits, static_cast<i64>(split_scratch_bytes / std::max<std::size_t>(1, partial_bytes)));
  return std::max<i64>(1, splits);
}

}  // namespace

void CudaBackend::conv2d_forward(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* x,
                                 const void* w, void* y, void* /*patches: gathered on the fly, none kept*/) {
  const i64 outputs = images * filters * g.out_h() * g.out_w();
  if (outputs == 0) return;
  const ConvShape s = conv_shape("conv2d_forward", g, images, filters);
  with_small_tiling(dtype, "conv2d_forward", [&]<class P>() {
    using T = typename P::type;
    const i64 n = images * g.out_h() * g.out_w();
    const dim3 grid(static_cast<unsigned>((n + P::bn - 1) / P::bn), static_cast<unsigned>((filters + P::bm - 1) / P::bm));
    launch(launch_name<P>("conv2d_forward").c_str(), outputs, grid, P::threads, conv2d_forward_kernel<P>, s, images,
           static_cast<const T*>(x), static_cast<const T*>(w), static_cast<T*>(y));
  });
}

void CudaBackend::conv2d_backward_data(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* gy,
                                       const void* w, void* gx) {
  const i64 n = images * g.height * g.width;
  if (n * g.channels == 0) return;
  const ConvShape s = conv_shape("conv2d_backward_data", g, images, filters);
  with_small_tiling(dtype, "conv2d_backward_data", [&]<class P>() {
    using T = typename P::type;
    const dim3 grid(static_cast<unsigned>((n + P::bn - 1) / P::bn), static_cast<unsigned>((g.channels + P::bm - 1) / P::bm));
    launch(launch_name<P>("conv2d_backward_data").c_str(), n * g.channels, grid, P::threads,
           conv2d_backward_data_kernel<P>, s, images, static_cast<const T*>(gy), static_cast<const T*>(w),
           static_cast<T*>(gx));
  });
}

void CudaBackend::conv2d_backward_weight(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* x,
                                         const void* gy, const void* /*patches: none kept*/, void* gw) {
  const i64 patch = g.patch_size(), weights = filters * patch, depth = images * g.out_h() * g.out_w();
  if (weights == 0) return;
  if (depth == 0) return fill(dtype, weights, 0.0, gw);
  const ConvShape s = conv_shape("conv2d_backward_weight", g, images, filters);
  with_small_tiling(dtype, "conv2d_backward_weight", [&]<class P>() {
    using T = typename P::type;
    const i64 tiles_n = (patch + P::bn - 1) / P::bn, tiles_m = (filters + P::bm - 1) / P::bm;
    i64 splits = weight_splits(tiles_n * tiles_m, depth, P::bk, static_cast<std::size_t>(weights) * sizeof(T));
    // Each slice a whole number of slabs; the count again from the rounded length.
    const i64 chunk = split_chunk(depth, splits, P::bk);
    splits = (depth + chunk - 1) / chunk;
    T* partial = splits == 1 ? static_cast<T*>(gw) : static_cast<T*>(split_scratch());
    const dim3 grid(static_cast<unsigned>(tiles_n), static_cast<unsigned>(tiles_m), static_cast<unsigned>(splits));
    launch(launch_name<P>("conv2d_backward_weight").c_str(), weights * splits, grid, P::threads,
           conv2d_backward_weight_kernel<P>, s, images, chunk, static_cast<const T*>(x), static_cast<const T*>(gy),
           partial);
    if (splits > 1)
      launch("conv2d_backward_weight (sum of splits)", weights, blocks_for(weights), threads_per_block,
             sum_splits_kernel<T>, weights, splits, static_cast<const T*>(partial), static_cast<T*>(gw));
  });
}

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
