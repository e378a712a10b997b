#pragma once
// A CPU stand-in for the part of CUDA's warp matrix functions (<mma.h>, nvcuda::wmma) that
// kernels/cuda/tensor_core_tile.cuh uses: TF32 fragments of shape m16n16k8 with FP32
// accumulators. Found instead of CUDA's header by include order, as cuda_runtime.h is.
//
// A device spreads a fragment over the 32 lanes of a warp; here every thread holds the whole
// tile (row-major in x), and every call is that thread's own. Code that touches fragments only
// through these calls and loops over x[0, num_elements) cannot tell, and nothing here stands in
// for a barrier: a tile read from shared memory that another warp has not finished writing is
// read as the emulator's fibers left it, as on a device.
//
// What it checks, because a device would fault or give garbage (each a sticky
// cudaErrorMisalignedAddress or cudaErrorLaunchFailure, naming the call):
//   - the pointer of a load or store is 256-bit aligned, and ldm a multiple of 4 floats;
//   - the block's threads are whole warps;
//   - the elements of the TF32 fragments multiplied are TF32 values: CUDA's guide leaves the
//     product of unconverted floats undefined, so each must have passed __float_to_tf32.
// The product: each element of A·B + C is the sum in FP32, in order of depth, of products that
// are exact (two TF32 values multiply without rounding in FP32). A tensor core's adder may round
// otherwise; alike in kind, not bit for bit (docs/gpu-results.md).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "cuda_runtime.h"

namespace nvcuda::wmma {

struct row_major;
struct col_major;
struct matrix_a;
struct matrix_b;
struct accumulator;
namespace precision {
struct tf32;
}
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
  static_assert(M == 16 && N == 16 && K == 8, "the emulator models the TF32 shape m16n16k8 only");
  static_assert(std::is_same_v<Use, accumulator> ? std::is_same_v<T, float> : std::is_same_v<T, precision::tf32>,
                "the emulator models TF32 operands with FP32 accumulators only");

 public:
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  static constexpr int num_elements = rows * cols;
  float x[num_elements];
};

// Rounds to the nearest TF32 value (10 bits of mantissa), ties away from zero: PTX's
// cvt.rna.tf32.f32, which CUDA's __float_to_tf32 is. The result is a float with its low 13
// mantissa bits zero; NaN and infinity pass through.
inline float __float_to_tf32(float in) {
  if (!std::isfinite(in)) return in;
  std::uint32_t bits;
  std::memcpy(&bits, &in, sizeof bits);
  bits = (bits + 0x1000u) & ~0x1FFFu;  // half a TF32 ulp added to the magnitude, then truncated
  float out;
  std::memcpy(&out, &bits, sizeof out);
  return out;
}

namespace emulated {

// The product of fragments below is arithmetic on the thread's own registers (32 times a
// device's work, every thread computing the whole tile): left uninstrumented by the sanitizers,
// which check the loads and stores that reach memory.
#define GS_EMULATED_REGISTERS __attribute__((no_sanitize("address", "undefined")))

inline bool whole_warps(const char* call) {
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  if (threads % 32 == 0) return true;
  gs::cuda_emulator::device_fault(cudaErrorLaunchFailure, std::string(call) + " in a block of " + std::to_string(threads) +
                                                              " threads, not whole warps");
  return false;
}

inline bool addressable(const char* call, const void* p, unsigned ldm) {
  if (!whole_warps(call)) return false;
  if (reinterpret_cast<std::uintptr_t>(p) % 32 != 0 || ldm % 4 != 0) {
    gs::cuda_emulator::device_fault(
        cudaErrorMisalignedAddress,
        std::string(call) + ": the pointer must be 256-bit aligned and ldm a multiple of 4 floats, got ldm = " +
            std::to_string(ldm) + " and an address " + std::to_string(reinterpret_cast<std::uintptr_t>(p) % 32) +
            " bytes past a multiple of 32");
    return false;
  }
  return true;
}

GS_EMULATED_REGISTERS inline bool is_tf32(float v) {
  if (!std::isfinite(v)) return true;
  std::uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return (bits & 0x1FFFu) == 0;
}

template <class F>
GS_EMULATED_REGISTERS bool tf32_elements(const F& f) {
  for (float v : f.x)
    if (!is_tf32(v)) {
      gs::cuda_emulator::device_fault(cudaErrorLaunchFailure,
                                      "mma_sync: a TF32 fragment holds a float that did not pass __float_to_tf32");
      return false;
    }
  return true;
}

}  // namespace emulated

template <class Use, int M, int N, int K, class T, class Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, float value) {
  for (float& v : f.x) v = value;
}

// A TF32 operand from memory laid out as its Layout says.
template <class Use, class Layout>
void load_matrix_sync(fragment<Use, 16, 16, 8, precision::tf32, Layout>& f, const float* p, unsigned ldm) {
  using F = fragment<Use, 16, 16, 8, precision::tf32, Layout>;
  static_assert(!std::is_same_v<Layout, void>, "an operand fragment needs a layout");
  if (!emulated::addressable("load_matrix_sync", p, ldm)) return;
  for (int r = 0; r < F::rows; ++r)
    for (int c = 0; c < F::cols; ++c)
      f.x[r * F::cols + c] = std::is_same_v<Layout, row_major> ? p[r * ldm + c] : p[c * ldm + r];
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 8, float>& f, unsigned ldm, layout_t layout) {
  if (!emulated::addressable("store_matrix_sync", p, ldm)) return;
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * 16 + c];
}

template <class LayoutA, class LayoutB>
GS_EMULATED_REGISTERS void mma_sync(fragment<accumulator, 16, 16, 8, float>& d,
                                    const fragment<matrix_a, 16, 16, 8, precision::tf32, LayoutA>& a,
                                    const fragment<matrix_b, 16, 16, 8, precision::tf32, LayoutB>& b,
                                    const fragment<accumulator, 16, 16, 8, float>& c) {
  if (!emulated::whole_warps("mma_sync") || !emulated::tf32_elements(a) || !emulated::tf32_elements(b)) return;
  float out[16 * 16];
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float sum = c.x[i * 16 + j];
      for (int p = 0; p < 8; ++p) sum += a.x[i * 8 + p] * b.x[p * 16 + j];
      out[i * 16 + j] = sum;
    }
  std::memcpy(d.x, out, sizeof out);  // d may be c
}

}  // namespace nvcuda::wmma
