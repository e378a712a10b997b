#pragma once
// The tilings of the GEMM-shaped kernels (the dense GEMMs of gemm.cu and the implicit-GEMM
// convolutions of conv.cu) as policy types, so that each kernel is written once for all of them,
// and the choice between them. A tiling has its element type, tile size, depth of a slab and
// threads, a label for launch names, and tile(), which computes one tile with gemm_tile's
// contract (tiled_gemm.cuh).
#include <string>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/tensor_core_tile.cuh"
#include "kernels/cuda/tiled_gemm.cuh"
#include "kernels/gemm.h"

namespace gs::kernels::cuda {

// On the CUDA cores, TM × TN values per thread.
template <class T, int BM, int BN, int BK, int TM, int TN>
struct CudaCoreTiles {
  using type = T;
  static constexpr int bm = BM, bn = BN, bk = BK, threads = (BM / TM) * (BN / TN);
  static constexpr const char* label = BM == 128 ? "128 × 128 tiles" : "64 × 64 tiles";
  template <class LoadA, class LoadB, class Store>
  static __device__ void tile(i64 row0, i64 col0, i64 m, i64 n, i64 k_begin, i64 k_end, const LoadA& a, const LoadB& b,
                              const Store& store) {
    gemm_tile<T, bm, bn, bk, TM, TN>(row0, col0, m, n, k_begin, k_end, a, b, store);
  }
};

// FP32 on the tensor cores in TF32 (tensor_core_tile.cuh): 64 × 64 tiles of 8 warps, each warp a
// 16 × 32 part in two fragments.
struct Tf32Tiles {
  using type = float;
  static constexpr int bm = 64, bn = 64, bk = 16, threads = 256;
  static constexpr const char* label = "64 × 64 TF32 tensor-core tiles";
  template <class LoadA, class LoadB, class Store>
  static __device__ void tile(i64 row0, i64 col0, i64 m, i64 n, i64 k_begin, i64 k_end, const LoadA& a, const LoadB& b,
                              const Store& store) {
    tf32_tile<bm, bn, bk, 4, 2>(row0, col0, m, n, k_begin, k_end, a, b, store);
  }
};

// "gemm (64 × 64 tiles)": the name a launch goes by.
template <class Tiling>
std::string launch_name(const char* entry_point, const char* detail = nullptr) {
  std::string name = std::string(entry_point) + " (" + Tiling::label;
  if (detail) name += std::string(", ") + detail;
  return name + ")";
}

// Whether FP32 products of this dtype go to the tensor cores: TF32 pinned (kernels/gemm.h).
inline bool tf32_products(DType dtype) { return dtype == DType::f32 && gemm_precision() == GemmPrecision::tf32; }

// Two tilings on the CUDA cores, each of 256 threads as a 16 × 16 grid:
//   small: 64 × 64 tiles, 4 × 4 values per thread. Many blocks, for the training step's products
//          (a batch of 200 against a layer of 200 is 16 of them) and every convolution;
//   large: 128 × 128 tiles, 8 × 8 per thread. Every value read from shared memory feeds 8
//          multiply-adds instead of 4, and each operand value is read from global memory half
//          as often; for products whose large tiles still fill the device (the NTK probe's).
// FP64 holds twice the bytes per value, so the small tiling's depth is halved to keep its
// shared memory at 8 KB. Where TF32 is pinned, FP32 products take Tf32Tiles instead, whatever
// their shape. Calls f.template operator()<Tiling>().
template <class F>
void with_small_tiling(DType dtype, const char* entry_point, F&& f) {
  if (tf32_products(dtype)) return f.template operator()<Tf32Tiles>();
  if (dtype == DType::f32) return f.template operator()<CudaCoreTiles<float, 64, 64, 16, 4, 4>>();
  if (dtype == DType::f64) return f.template operator()<CudaCoreTiles<double, 64, 64, 8, 4, 4>>();
  throw Error(std::string(entry_point) + " works on f32 or f64 tensors, got " + dtype_name(dtype));
}
template <class F>
void with_tiling(DType dtype, bool large, const char* entry_point, F&& f) {
  if (!large || tf32_products(dtype)) return with_small_tiling(dtype, entry_point, f);
  if (dtype == DType::f32) return f.template operator()<CudaCoreTiles<float, 128, 128, 8, 8, 8>>();
  if (dtype == DType::f64) return f.template operator()<CudaCoreTiles<double, 128, 128, 8, 8, 8>>();
  throw Error(std::string(entry_point) + " works on f32 or f64 tensors, got " + dtype_name(dtype));
}

}  // namespace gs::kernels::cuda
