#include <algorithm>
#include <limits>
#include <vector>

#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/region_errors.h"

namespace gs::kernels::cpu {

// The batched convolutions, image by image: im2col into a [patch, pixels] buffer, then one BLAS
// GEMM with the filters. The forward pass and the input gradient give each thread whole images
// (one image's GEMM is too small to spread over threads, and its im2col would run on one while
// the others wait); BLAS called inside the parallel region runs on the calling thread, and
// computes each element as it does threaded, so the results do not depend on the thread count.
// The weight gradient sums over the images in order, on all threads per GEMM, so that its sum
// is deterministic.
namespace {

struct ImageStrides {
  std::size_t in, out, bytes;  // elements per input image and per output image; bytes per element
};

ImageStrides strides_of(DType dtype, const ConvGeometry& g, i64 filters) {
  return {static_cast<std::size_t>(g.channels * g.height * g.width), static_cast<std::size_t>(filters * g.out_h() * g.out_w()),
          dtype_size(dtype)};
}

}  // namespace

void CpuBackend::conv2d_forward(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* x,
                                const void* w, void* y, void* patches) {
  const i64 pixels = g.out_h() * g.out_w(), patch = g.patch_size();
  const ImageStrides st = strides_of(dtype, g, filters);
  const std::size_t col_bytes = static_cast<std::size_t>(patch * pixels) * st.bytes;
  RegionErrors errors;
#pragma omp parallel if (images > 1)
  {
    std::vector<char> scratch;
    errors.guard([&] { scratch.resize(patches ? 0 : col_bytes); });
#pragma omp for schedule(static)
    for (i64 i = 0; i < images; ++i) errors.guard([&] {  // y_i = W col_i
      char* col = patches ? static_cast<char*>(patches) + static_cast<std::size_t>(i) * col_bytes : scratch.data();
      im2col(dtype, g, static_cast<const char*>(x) + static_cast<std::size_t>(i) * st.in * st.bytes, col);
      gemm(dtype, {false, false, filters, pixels, patch, patch, pixels, pixels}, 1.0, w, col, 0.0,
           static_cast<char*>(y) + static_cast<std::size_t>(i) * st.out * st.bytes);
    });
  }
  errors.rethrow();
}

void CpuBackend::conv2d_backward_data(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* gy,
                                      const void* w, void* gx) {
  const i64 pixels = g.out_h() * g.out_w(), patch = g.patch_size();
  const ImageStrides st = strides_of(dtype, g, filters);
  RegionErrors errors;
#pragma omp parallel if (images > 1)
  {
    std::vector<char> col;
    errors.guard([&] { col.resize(static_cast<std::size_t>(patch * pixels) * st.bytes); });
#pragma omp for schedule(static)
    for (i64 i = 0; i < images; ++i) errors.guard([&] {  // gx_i = col2im(Wᵀ gy_i)
      gemm(dtype, {true, false, patch, pixels, filters, patch, pixels, pixels}, 1.0, w,
           static_cast<const char*>(gy) + static_cast<std::size_t>(i) * st.out * st.bytes, 0.0, col.data());
      col2im(dtype, g, col.data(), static_cast<char*>(gx) + static_cast<std::size_t>(i) * st.in * st.bytes);
    });
  }
  errors.rethrow();
}

void CpuBackend::conv2d_backward_weight(DType dtype, const ConvGeometry& g, i64 images, i64 filters, const void* x,
                                        const void* gy, const void* patches, void* gw) {
  const i64 pixels = g.out_h() * g.out_w(), patch = g.patch_size();
  const ImageStrides st = strides_of(dtype, g, filters);
  const std::size_t col_bytes = static_cast<std::size_t>(patch * pixels) * st.bytes;
  std::vector<char> scratch(patches ? 0 : col_bytes);
  fill(dtype, filters * patch, 0.0, gw);
  for (i64 i = 0; i < images; ++i) {  // gw += gy_i col_iᵀ, images in order
    const char* col = patches ? static_cast<const char*>(patches) + static_cast<std::size_t>(i) * col_bytes : scratch.data();
    if (!patches)
      im2col(dtype, g, static_cast<const char*>(x) + static_cast<std::size_t>(i) * st.in * st.bytes, scratch.data());
    gemm(dtype, {false, true, filters, patch, pixels, pixels, pixels, patch}, 1.0,
         static_cast<const char*>(gy) + static_cast<std::size_t>(i) * st.out * st.bytes, col, 1.0, gw);
  }
}

namespace {

// The output columns ox whose input column ox·stride + kx − padding lies inside the image:
// [begin, end), so that im2col and col2im copy that range without a test per value (the same
// values, in the same order).
struct ColumnRange {
  i64 begin, end, offset;  // offset = kx − padding: input column = ox·stride + offset
};
ColumnRange inside_columns(const ConvGeometry& g, i64 kx, i64 ow) {
  const i64 offset = kx - g.padding;
  const i64 begin = std::min(ow, offset >= 0 ? 0 : (-offset + g.stride - 1) / g.stride);
  const i64 end = g.width - offset <= 0 ? begin : std::clamp((g.width - offset + g.stride - 1) / g.stride, begin, ow);
  return {begin, end, offset};
}

}  // namespace

void CpuBackend::im2col(DType dtype, const ConvGeometry& g, const void* imagev, void* colv) {
  with_float_type(dtype, "im2col", [&]<class T>() {
    auto image = static_cast<const T*>(imagev);
    auto col = static_cast<T*>(colv);
    const i64 oh = g.out_h(), ow = g.out_w();
    for (i64 c = 0; c < g.channels; ++c)
      for (i64 ky = 0; ky < g.kernel_h; ++ky)
        for (i64 kx = 0; kx < g.kernel_w; ++kx) {
          T* row = col + ((c * g.kernel_h + ky) * g.kernel_w + kx) * oh * ow;
          const T* plane = image + c * g.height * g.width;
          const ColumnRange r = inside_columns(g, kx, ow);
          for (i64 oy = 0; oy < oh; ++oy) {
            const i64 iy = oy * g.stride + ky - g.padding;
            T* out = row + oy * ow;
            if (iy < 0 || iy >= g.height) {
              std::fill_n(out, ow, T(0));
              continue;
            }
            const T* in = plane + iy * g.width;  // input column ox·stride + offset ≥ 0 for ox ≥ begin
            std::fill_n(out, r.begin, T(0));
            if (g.stride == 1)
              std::copy(in + r.begin + r.offset, in + r.end + r.offset, out + r.begin);
            else
              for (i64 ox = r.begin; ox < r.end; ++ox) out[ox] = in[ox * g.stride + r.offset];
            std::fill_n(out + r.end, ow - r.end, T(0));
          }
        }
  });
}

void CpuBackend::col2im(DType dtype, const ConvGeometry& g, const void* colv, void* imagev) {
  with_float_type(dtype, "col2im", [&]<class T>() {
    auto col = static_cast<const T*>(colv);
    auto image = static_cast<T*>(imagev);
    const i64 oh = g.out_h(), ow = g.out_w();
    std::fill_n(image, g.channels * g.height * g.width, T(0));
    for (i64 c = 0; c < g.channels; ++c)
      for (i64 ky = 0; ky < g.kernel_h; ++ky)
        for (i64 kx = 0; kx < g.kernel_w; ++kx) {
          const T* row = col + ((c * g.kernel_h + ky) * g.kernel_w + kx) * oh * ow;
          T* plane = image + c * g.height * g.width;
          const ColumnRange r = inside_columns(g, kx, ow);
          for (i64 oy = 0; oy < oh; ++oy) {
            const i64 iy = oy * g.stride + ky - g.padding;
            if (iy < 0 || iy >= g.height) continue;
            T* out = plane + iy * g.width;
            const T* in = row + oy * ow;
            if (g.stride == 1)
              for (i64 ox = r.begin; ox < r.end; ++ox) out[ox + r.offset] += in[ox];
            else
              for (i64 ox = r.begin; ox < r.end; ++ox) out[ox * g.stride + r.offset] += in[ox];
          }
        }
  });
}

namespace {

// One pooling window's next value, in window order: the first maximum wins, and the first NaN
// wins over everything (torch's max_pool2d propagates NaN). Two selects and no logic on the
// comparisons, so that a loop over windows vectorizes: while best is a number, v replaces it
// unless v <= best (a NaN v does); once best is NaN, nothing replaces it.
template <class T>
inline void pick(T v, std::int32_t idx, T& best, std::int32_t& at) {
  const bool open = best == best;
  const T candidate = open ? v : best;
  const std::int32_t candidate_at = open ? idx : at;
  const bool keep = v <= best;
  best = keep ? best : candidate;
  at = keep ? at : candidate_at;
}

// One plane's max pooling. K and S > 0 fix the window and the stride at compile time (the
// study's 2 × 2, stride 2), which lets the loop over a row's windows vectorize.
template <class T, int K, int S>
void pool_plane(const T* plane, const PoolGeometry& g, T* y, std::int32_t* argmax) {
  const i64 kernel = K > 0 ? K : g.kernel, stride = S > 0 ? S : g.stride, width = g.width;
  const i64 oh = g.out_h(), ow = g.out_w();
  for (i64 oy = 0; oy < oh; ++oy) {
    const T* row = plane + oy * stride * width;
    const std::int32_t row_at = static_cast<std::int32_t>(oy * stride * width);  // planes are < 2^31 values
    T* y_row = y + oy * ow;
    std::int32_t* at_row = argmax + oy * ow;
    for (i64 ox = 0; ox < ow; ++ox) {
      const std::int32_t corner = row_at + static_cast<std::int32_t>(ox * stride);
      T best = -std::numeric_limits<T>::infinity();
      std::int32_t at = corner;
      for (i64 ky = 0; ky < kernel; ++ky)
        for (i64 kx = 0; kx < kernel; ++kx)
          pick(row[ky * width + ox * stride + kx], corner + static_cast<std::int32_t>(ky * width + kx), best, at);
      y_row[ox] = best;
      at_row[ox] = at;
    }
  }
}

}  // namespace

void CpuBackend::max_pool2d(DType dtype, const PoolGeometry& g, const void* xv, void* yv,
                            std::int32_t* argmax) {
  with_float_type(dtype, "max_pool2d", [&]<class T>() {
    auto x = static_cast<const T*>(xv);
    auto y = static_cast<T*>(yv);
    const i64 in = g.height * g.width, out = g.out_h() * g.out_w();
#pragma omp parallel for if (g.planes * in > parallel_grain)
    for (i64 p = 0; p < g.planes; ++p) {
      if (g.kernel == 2 && g.stride == 2)
        pool_plane<T, 2, 2>(x + p * in, g, y + p * out, argmax + p * out);
      else
        pool_plane<T, 0, 0>(x + p * in, g, y + p * out, argmax + p * out);
    }
  });
}

void CpuBackend::max_pool2d_backward(DType dtype, const PoolGeometry& g, const void* gyv,
                                     const std::int32_t* argmax, void* gxv) {
  with_float_type(dtype, "max_pool2d_backward", [&]<class T>() {
    auto gy = static_cast<const T*>(gyv);
    auto gx = static_cast<T*>(gxv);
    const i64 outs = g.out_h() * g.out_w();
    std::fill_n(gx, g.planes * g.height * g.width, T(0));
    for (i64 p = 0; p < g.planes; ++p)
      for (i64 o = 0; o < outs; ++o) gx[p * g.height * g.width + argmax[p * outs + o]] += gy[p * outs + o];
  });
}

}  // namespace gs::kernels::cpu
