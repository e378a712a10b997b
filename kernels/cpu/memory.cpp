#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "kernels/cpu/cpu_backend.h"

namespace gs::kernels::cpu {

namespace {
constexpr std::size_t alignment = 64;  // a cache line, and enough for any SIMD load

template <class To, class From>
void convert_typed(i64 n, const From* x, To* y) {
  for (i64 i = 0; i < n; ++i) y[i] = static_cast<To>(x[i]);
}

template <class To>
void convert_from(DType from, i64 n, const void* x, To* y) {
  switch (from) {
    case DType::f32: convert_typed(n, static_cast<const float*>(x), y); return;
    case DType::f64: convert_typed(n, static_cast<const double*>(x), y); return;
    case DType::i32: convert_typed(n, static_cast<const std::int32_t*>(x), y); return;
  }
}
}  // namespace

void* CpuBackend::allocate(std::size_t bytes) {
  std::size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, rounded == 0 ? alignment : rounded);
  if (!p) fail("out of host memory allocating {} bytes", bytes);
  return p;
}

void CpuBackend::release(void* ptr) { std::free(ptr); }
void CpuBackend::poison(void* ptr, std::size_t bytes) { std::memset(ptr, 0xff, bytes); }

void CpuBackend::copy_from_host(void* dst, const void* src, std::size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void CpuBackend::copy_to_host(void* dst, const void* src, std::size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void CpuBackend::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes) std::memmove(dst, src, bytes);
}
void* CpuBackend::allocate_host(std::size_t bytes) { return allocate(bytes); }
void CpuBackend::release_host(void* ptr) { release(ptr); }
void CpuBackend::copy_from_host_queued(void* dst, const void* src, std::size_t bytes) { copy_from_host(dst, src, bytes); }
void CpuBackend::copy_to_host_queued(void* dst, const void* src, std::size_t bytes) { copy_to_host(dst, src, bytes); }
void CpuBackend::synchronize() {}

void CpuBackend::fill(DType dtype, i64 n, double value, void* y) {
  switch (dtype) {
    case DType::f32: std::fill_n(static_cast<float*>(y), n, static_cast<float>(value)); return;
    case DType::f64: std::fill_n(static_cast<double*>(y), n, value); return;
    case DType::i32:
      std::fill_n(static_cast<std::int32_t*>(y), n, static_cast<std::int32_t>(value));
      return;
  }
}

void CpuBackend::convert(DType from, DType to, i64 n, const void* x, void* y) {
  switch (to) {
    case DType::f32: convert_from(from, n, x, static_cast<float*>(y)); return;
    case DType::f64: convert_from(from, n, x, static_cast<double*>(y)); return;
    case DType::i32: convert_from(from, n, x, static_cast<std::int32_t*>(y)); return;
  }
}

namespace {
template <class T>
void gather_typed(i64 rows, i64 row_elements, i64 source_rows, const T* x, const std::int32_t* indices, T* y, T missing) {
  for (i64 r = 0; r < rows; ++r) {
    const i64 from = indices[r];
    T* out = y + r * row_elements;
    if (from >= 0 && from < source_rows)
      std::copy_n(x + from * row_elements, row_elements, out);
    else
      std::fill_n(out, row_elements, missing);
  }
}
}  // namespace

void CpuBackend::gather_rows(DType dtype, i64 rows, i64 row_elements, i64 source_rows, const void* x,
                             const std::int32_t* indices, void* y) {
  switch (dtype) {
    case DType::f32:
      gather_typed(rows, row_elements, source_rows, static_cast<const float*>(x), indices, static_cast<float*>(y),
                   std::numeric_limits<float>::quiet_NaN());
      return;
    case DType::f64:
      gather_typed(rows, row_elements, source_rows, static_cast<const double*>(x), indices, static_cast<double*>(y),
                   std::numeric_limits<double>::quiet_NaN());
      return;
    case DType::i32:
      gather_typed(rows, row_elements, source_rows, static_cast<const std::int32_t*>(x), indices,
                   static_cast<std::int32_t*>(y), std::int32_t{-1});
      return;
  }
}

}  // namespace gs::kernels::cpu
