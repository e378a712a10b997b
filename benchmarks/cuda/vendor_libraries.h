#pragma once
// cuBLAS and cuDNN, the baselines of bench_cuda, loaded at run time (libcublas.so.13 / .12,
// libcudnn.so.9), so that the benchmark runs where only a Python wheel ships them; cudnn.h gives
// the types, nothing is linked.
#include <cudnn.h>
#include <dlfcn.h>

#include <cstdio>
#include <string>
#include <type_traits>

#include "kernels/backend.h"

namespace gs::bench_cuda {

// The few cuBLAS entry points used, by their C ABI (cublas_api.h): handles are pointers, the
// operation enum is an int (N = 0, T = 1), and every call returns a status int (0 = success).
// A second handle in CUBLAS_TF32_TENSOR_OP_MATH (3) is the baseline of the TF32 kernels.
struct Cublas {
  using Create = int (*)(void**);
  using SetMathMode = int (*)(void*, int);
  using Sgemm = int (*)(void*, int, int, int, int, int, const float*, const float*, int, const float*, int,
                        const float*, float*, int);
  using Dgemm = int (*)(void*, int, int, int, int, int, const double*, const double*, int, const double*, int,
                        const double*, double*, int);
  void* handle = nullptr;
  void* tf32_handle = nullptr;  // null where this cuBLAS has no TF32 mode
  Sgemm sgemm = nullptr;
  Dgemm dgemm = nullptr;
  std::string origin;

  bool load() {
    for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) {
      void* lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (!lib) continue;
      auto create = reinterpret_cast<Create>(dlsym(lib, "cublasCreate_v2"));
      sgemm = reinterpret_cast<Sgemm>(dlsym(lib, "cublasSgemm_v2"));
      dgemm = reinterpret_cast<Dgemm>(dlsym(lib, "cublasDgemm_v2"));
      if (create && sgemm && dgemm && create(&handle) == 0) {
        origin = name;
        auto set_math_mode = reinterpret_cast<SetMathMode>(dlsym(lib, "cublasSetMathMode"));
        if (!set_math_mode || create(&tf32_handle) != 0 || set_math_mode(tf32_handle, 3) != 0) tf32_handle = nullptr;
        return true;
      }
    }
    return false;
  }
  // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: swap the operands.
  template <class T>
  void gemm(const kernels::GemmShape& s, const T* a, const T* b, T* c, bool tf32 = false) const {
    const T one = 1, zero = 0;
    const int opa = s.transpose_b ? 1 : 0, opb = s.transpose_a ? 1 : 0;
    int status;
    if constexpr (std::is_same_v<T, float>)
      status = sgemm(tf32 ? tf32_handle : handle, opa, opb, int(s.n), int(s.m), int(s.k), &one, b, int(s.ldb), a, int(s.lda), &zero, c, int(s.ldc));
    else
      status = dgemm(handle, opa, opb, int(s.n), int(s.m), int(s.k), &one, b, int(s.ldb), a, int(s.lda), &zero, c, int(s.ldc));
    if (status != 0) std::fprintf(stderr, "cuBLAS gemm returned status %d\n", status);
  }
};

// The legacy cuDNN convolution API (cudnn_cnn.h), resolved by name.
struct Cudnn {
  decltype(&cudnnCreate) create = nullptr;
  decltype(&cudnnCreateTensorDescriptor) create_tensor = nullptr;
  decltype(&cudnnSetTensor4dDescriptor) set_tensor = nullptr;
  decltype(&cudnnCreateFilterDescriptor) create_filter = nullptr;
  decltype(&cudnnSetFilter4dDescriptor) set_filter = nullptr;
  decltype(&cudnnCreateConvolutionDescriptor) create_conv = nullptr;
  decltype(&cudnnSetConvolution2dDescriptor) set_conv = nullptr;
  decltype(&cudnnSetConvolutionMathType) set_math = nullptr;
  decltype(&cudnnGetConvolutionForwardAlgorithm_v7) pick_algorithm = nullptr;
  decltype(&cudnnGetConvolutionForwardWorkspaceSize) workspace_size = nullptr;
  decltype(&cudnnConvolutionForward) forward = nullptr;
  decltype(&cudnnGetConvolutionBackwardDataAlgorithm_v7) pick_data_algorithm = nullptr;
  decltype(&cudnnGetConvolutionBackwardDataWorkspaceSize) data_workspace_size = nullptr;
  decltype(&cudnnConvolutionBackwardData) backward_data = nullptr;
  decltype(&cudnnGetConvolutionBackwardFilterAlgorithm_v7) pick_filter_algorithm = nullptr;
  decltype(&cudnnGetConvolutionBackwardFilterWorkspaceSize) filter_workspace_size = nullptr;
  decltype(&cudnnConvolutionBackwardFilter) backward_filter = nullptr;
  cudnnHandle_t handle = nullptr;

  template <class F>
  static bool resolve(void* lib, const char* name, F& f) {
    f = reinterpret_cast<F>(dlsym(lib, name));
    return f != nullptr;
  }
  bool load() {
    void* lib = dlopen("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return false;
    const bool ok = resolve(lib, "cudnnCreate", create) && resolve(lib, "cudnnCreateTensorDescriptor", create_tensor) &&
                    resolve(lib, "cudnnSetTensor4dDescriptor", set_tensor) &&
                    resolve(lib, "cudnnCreateFilterDescriptor", create_filter) &&
                    resolve(lib, "cudnnSetFilter4dDescriptor", set_filter) &&
                    resolve(lib, "cudnnCreateConvolutionDescriptor", create_conv) &&
                    resolve(lib, "cudnnSetConvolution2dDescriptor", set_conv) &&
                    resolve(lib, "cudnnSetConvolutionMathType", set_math) &&
                    resolve(lib, "cudnnGetConvolutionForwardAlgorithm_v7", pick_algorithm) &&
                    resolve(lib, "cudnnGetConvolutionForwardWorkspaceSize", workspace_size) &&
                    resolve(lib, "cudnnConvolutionForward", forward) &&
                    resolve(lib, "cudnnGetConvolutionBackwardDataAlgorithm_v7", pick_data_algorithm) &&
                    resolve(lib, "cudnnGetConvolutionBackwardDataWorkspaceSize", data_workspace_size) &&
                    resolve(lib, "cudnnConvolutionBackwardData", backward_data) &&
                    resolve(lib, "cudnnGetConvolutionBackwardFilterAlgorithm_v7", pick_filter_algorithm) &&
                    resolve(lib, "cudnnGetConvolutionBackwardFilterWorkspaceSize", filter_workspace_size) &&
                    resolve(lib, "cudnnConvolutionBackwardFilter", backward_filter);
    return ok && create(&handle) == CUDNN_STATUS_SUCCESS;
  }
};

}  // namespace gs::bench_cuda
