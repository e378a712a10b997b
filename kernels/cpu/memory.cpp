#include <algorithm>
#include <cstdlib>
#include <cstring>
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

void CpuBackend::copy_from_host(void* dst, const void* src, std::size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void CpuBackend::copy_to_host(void* dst, const void* src, std::size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}
void CpuBackend::copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes) std::memmove(dst, src, bytes);
}

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

}  // namespace gs::kernels::cpu
